#!/usr/bin/env bash
# Makes sure Debian's strace is installed: the LiteDB outbox's durability test traces a real `sharerpc append`
# and checks its fsync calls (tests/ShareRpc.Client.Tests/LiteDbFsyncTraceTests.cs). Idempotent: does nothing
# when it is there.
set -euo pipefail
if [[ -x /usr/bin/strace ]]; then
  echo "strace: $(/usr/bin/strace -V 2>/dev/null | head -n 1)"
  exit 0
fi
echo "strace: installing Debian's strace"
sudo=""; [[ "$(id -u)" != "0" ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq strace >/dev/null
[[ -x /usr/bin/strace ]] || { echo "strace: install finished but /usr/bin/strace is missing" >&2; exit 1; }
echo "strace: $(/usr/bin/strace -V 2>/dev/null | head -n 1)"
