#!/usr/bin/env bash
# The viewer's committed assets (../assets) must be what its sources build to (./test.sh runs this).
# npm ci installs exactly package-lock.json, only when node_modules was not installed from this
# very lock file; then build.mjs --check builds into a temp dir and compares byte for byte.
# Idempotent: it writes nothing outside node_modules and gen/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "viewer: node and npm are required to check the assets (apt-get install nodejs npm)" >&2
  exit 1
fi
stamp=node_modules/.sharerpc-package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "viewer: npm ci in src/ShareRpc.Viewer/web"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
node build.mjs --check
