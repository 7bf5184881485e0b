#!/usr/bin/env bash
# Generates the grpc.testing python modules into tests/interop/python/gen/ (git-ignored).
# Idempotent: regenerates only when a proto (or this script) is newer than the stamp.
# The modules are written flat (gen/messages_pb2.py, gen/test_pb2_grpc.py, ...) because
# protoc would otherwise place them in a `grpc/testing` package that shadows grpcio's `grpc`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="$here/../protos"
gen="$here/gen"
stamp="$gen/.stamp"
if [[ -f "$stamp" && ! "$here/generate.sh" -nt "$stamp" ]] \
   && [[ -z "$(find "$protos" -name '*.proto' -newer "$stamp")" ]]; then
  exit 0
fi
command -v protoc >/dev/null || { echo "generate.sh: protoc missing (apt-get install protobuf-compiler)" >&2; exit 1; }
plugin=/usr/bin/grpc_python_plugin
[[ -x "$plugin" ]] || { echo "generate.sh: $plugin missing (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc -I "$protos" --python_out="$tmp" --grpc_out="$tmp" --plugin=protoc-gen-grpc="$plugin" \
  "$protos"/grpc/testing/empty.proto "$protos"/grpc/testing/messages.proto "$protos"/grpc/testing/test.proto
rm -rf "$gen"
mkdir -p "$gen"
for f in "$tmp"/grpc/testing/*.py; do
  sed -E 's/^from grpc\.testing import ([A-Za-z0-9_]+)/import \1/' "$f" > "$gen/$(basename "$f")"
done
touch "$stamp"
