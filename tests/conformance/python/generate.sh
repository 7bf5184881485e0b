#!/usr/bin/env bash
# Generates the python stubs of the sharerpc.v1 contract (protos/sharerpc/v1/share_rpc.proto)
# into tests/conformance/python/gen/ (git-ignored): gen/sharerpc/v1/share_rpc_pb2.py and
# share_rpc_pb2_grpc.py, imported as `from sharerpc.v1 import ...` with gen/ on sys.path.
# Idempotent: regenerates only when the proto (or this script) is newer than the stamp.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="$(cd "$here/../../../protos" && pwd)"
proto="$protos/sharerpc/v1/share_rpc.proto"
gen="$here/gen"
stamp="$gen/.stamp"
if [[ -f "$stamp" && ! "$here/generate.sh" -nt "$stamp" && ! "$proto" -nt "$stamp" ]]; then
  exit 0
fi
command -v protoc >/dev/null || { echo "generate.sh: protoc missing (apt-get install protobuf-compiler)" >&2; exit 1; }
plugin=/usr/bin/grpc_python_plugin
[[ -x "$plugin" ]] || { echo "generate.sh: $plugin missing (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }
# Generate next to gen/ and swap it in, so a concurrent reader never sees half a package.
tmp="$(mktemp -d "$here/.gen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# google/protobuf/timestamp.proto comes from protoc's own include dir (/usr/include).
protoc -I "$protos" --python_out="$tmp" --grpc_out="$tmp" --plugin=protoc-gen-grpc="$plugin" "$proto"
touch "$tmp/.stamp"
chmod 755 "$tmp" # mktemp makes it 0700
rm -rf "$gen"
mv "$tmp" "$gen"
trap - EXIT
