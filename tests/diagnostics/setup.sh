#!/usr/bin/env bash
# Makes sure dotnet-counters is installed as a global .NET tool (~/.dotnet/tools/dotnet-counters):
# the real-process test reads the ShareRpc.Server and ShareRpc.Client meters with it
# (tests/ShareRpc.Client.Tests/CountersTests.cs). Idempotent: an installed tool is kept as it is.
set -euo pipefail
tool="$HOME/.dotnet/tools/dotnet-counters"
if [[ -x "$tool" ]]; then
  echo "dotnet-counters: $("$tool" --version 2>/dev/null | head -n 1) ($tool)"
  exit 0
fi
echo "dotnet-counters: installing the global tool"
# "install" fails if another run installed it meanwhile; "update" then finds it (and keeps it current).
dotnet tool install --global dotnet-counters >/dev/null || dotnet tool update --global dotnet-counters >/dev/null
[[ -x "$tool" ]] || { echo "dotnet-counters: installed, but $tool is missing" >&2; exit 1; }
echo "dotnet-counters: $("$tool" --version 2>/dev/null | head -n 1) ($tool)"
