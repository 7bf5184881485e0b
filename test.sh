#!/usr/bin/env bash
# The one test command (README). Installs what the tests need, idempotently, lints the
# protos, builds, runs every test project, and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# 1. Prerequisites: apt (python grpcio, protoc + grpc plugin), npm (grpc-js, buf), python stubs.
bash tests/interop/setup.sh || { echo "test.sh: setup failed"; echo "0 passed, 1 failed"; exit 1; }

# 2. The contract lints clean under buf STANDARD (buf.yaml).
buf=tests/interop/node/node_modules/.bin/buf
if ! "$buf" lint; then
  echo "test.sh: buf lint failed"; echo "0 passed, 1 failed"; exit 1
fi
echo "buf lint: clean"

# 3. Build once, then run each test project.
if ! dotnet build ShareRpc.sln -c Release -nologo -clp:ErrorsOnly; then
  echo "test.sh: build failed"; echo "0 passed, 1 failed"; exit 1
fi

passed=0 failed=0 skipped=0
log=$(mktemp)
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
