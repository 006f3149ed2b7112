#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/{onnx.pb-c.c,include/onnx.pb-c.h} from schemas/onnx.proto with protoc-c
# (Debian: protobuf-c-compiler). The output is committed; CI runs this and fails if git sees a difference.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc-c >/dev/null || { echo "error: protoc-c not found — apt-get install protobuf-c-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path=schemas --c_out="$tmp" schemas/onnx.proto
mv "$tmp/onnx.pb-c.c" Sources/ONNXProto/onnx.pb-c.c
mv "$tmp/onnx.pb-c.h" Sources/ONNXProto/include/onnx.pb-c.h
echo "regenerated Sources/ONNXProto from schemas/onnx.proto ($(protoc-c --version | head -1))"
