#!/usr/bin/env bash
# Installs what the conformance tests (tests/ShareRpc.Conformance.Tests) need, idempotently:
#   - Debian packages: grpcio + protobuf for /usr/bin/python3, protoc and the grpc python plugin
#   - npm packages in tests/conformance/node (grpc-js, proto-loader, buf) with `npm ci`, which
#     installs exactly the committed package-lock.json and never rewrites it
#   - the python stubs of protos/sharerpc/v1/share_rpc.proto in tests/conformance/python/gen
# Safe to run repeatedly: does nothing that is already done.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing=()
/usr/bin/python3 -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null || missing+=(python3-protobuf)
dpkg -s python3-grpc-tools >/dev/null 2>&1 || missing+=(python3-grpc-tools)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[[ -x /usr/bin/grpc_python_plugin ]] || missing+=(protobuf-compiler-grpc)
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: node and npm are required (apt-get install nodejs npm)" >&2
  exit 1
fi
if [[ ! -d "$here/node/node_modules" ]]; then
  echo "setup.sh: npm ci in tests/conformance/node"
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

"$here/python/generate.sh"
echo "setup.sh: conformance prerequisites ready"
