#!/usr/bin/env bash
# The one test command (README). Installs what the tests need, idempotently, lints the
# protos, checks the viewer's built assets against their sources, builds, runs every test
# project, and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# 1. Prerequisites of the conformance peers: apt (python grpcio, protoc + grpc plugin), npm (grpc-js, buf), python stubs.
bash tests/conformance/setup.sh || { echo "test.sh: setup failed"; echo "0 passed, 1 failed"; exit 1; }

# 1b. PostgreSQL binaries (the PostgreSQL store's tests run on a throwaway cluster, below).
bash tests/postgres/setup.sh || { echo "test.sh: postgres setup failed"; echo "0 passed, 1 failed"; exit 1; }

# 1c. Debian's Chromium for the viewer's browser tests (tests/ShareRpc.Viewer.Tests).
bash tests/viewer/setup.sh || { echo "test.sh: chromium setup failed"; echo "0 passed, 1 failed"; exit 1; }

# 1d. dotnet-counters as a global tool, for the real-process metrics test (tests/ShareRpc.Client.Tests/CountersTests.cs).
bash tests/diagnostics/setup.sh || { echo "test.sh: dotnet-counters setup failed"; echo "0 passed, 1 failed"; exit 1; }

# 1e. strace, for the LiteDB outbox's fsync test (tests/ShareRpc.Client.Tests/LiteDbFsyncTraceTests.cs).
bash tests/diagnostics/strace.sh || { echo "test.sh: strace setup failed"; echo "0 passed, 1 failed"; exit 1; }

# 2. The contract lints clean under buf STANDARD (buf.yaml).
buf=tests/conformance/node/node_modules/.bin/buf
if ! "$buf" lint; then
  echo "test.sh: buf lint failed"; echo "0 passed, 1 failed"; exit 1
fi
echo "buf lint: clean"

# 2b. The viewer's committed assets are what its TypeScript sources build to (npm ci + esbuild).
if ! bash src/ShareRpc.Viewer/web/check.sh; then
  echo "test.sh: the viewer's committed assets differ from their sources, or did not build"; echo "0 passed, 1 failed"; exit 1
fi

# 3. Build once.
if ! dotnet build ShareRpc.sln -c Release -nologo -clp:ErrorsOnly; then
  echo "test.sh: build failed"; echo "0 passed, 1 failed"; exit 1
fi

# 4. One throwaway PostgreSQL cluster for the whole run (initdb in a temp dir, 127.0.0.1 and a
# free port, no system service touched), stopped on exit. Tests make a fresh database each.
# fsync off (PG_FAST): the tests kill servers, never the database; benchmarks keep fsync on.
pgdir=$(mktemp -d /tmp/sharerpc-test-pg.XXXXXX)
pgport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'bash tests/postgres/pg-cluster.sh stop "$pgdir" >/dev/null 2>&1 || true' EXIT
if ! SHARERPC_TEST_PG=$(PG_FAST=1 bash tests/postgres/pg-cluster.sh start "$pgdir" "$pgport"); then
  echo "test.sh: could not start the throwaway PostgreSQL cluster"; echo "0 passed, 1 failed"; exit 1
fi
export SHARERPC_TEST_PG
echo "postgres: throwaway cluster on 127.0.0.1:$pgport ($pgdir)"

passed=0 failed=0 skipped=0
log=$(mktemp)
# 5. Each test project.
for proj in tests/*/*.Tests.csproj; do
  echo "== $proj"
  dotnet test "$proj" -c Release --no-build -nologo 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # "Passed!  - Failed:     0, Passed:   115, Skipped:     0, Total:   115, ..."
  line=$(grep -E '^(Passed|Failed)!' "$log" | tail -n 1)
  if [[ -z "$line" ]]; then
    echo "test.sh: $proj printed no summary (exit $rc): counted as one failure"
    failed=$((failed + 1)); continue
  fi
  p=$(sed -E 's/.*Passed: *([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*Failed: *([0-9]+),.*/\1/' <<<"$line")
  s=$(sed -E 's/.*Skipped: *([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [[ $rc -ne 0 && $f -eq 0 ]]; then
    echo "test.sh: $proj exited $rc with no failed test: counted as one failure"
    failed=$((failed + 1))
  fi
done
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
