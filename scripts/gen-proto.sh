#!/usr/bin/env bash
# Regenerates Sources/ONNXProto from the pinned schemas with protoc-c (Debian: protobuf-c-compiler):
#   onnx.pb-c.{c,h}       from schemas/onnx.proto       (models, tensors)
#   onnx-data.pb-c.{c,h}  from schemas/onnx-data.proto  (SequenceProto/OptionalProto/MapProto test data)
# onnx-data.proto imports "onnx/onnx-ml.proto"; the generator sees schemas/onnx.proto under that name (the two
# differ only in the deprecated Opaque type, which onnx-data does not use), and the generated include is
# pointed at our onnx.pb-c.h. The output is committed; CI runs this and fails if git sees a difference.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc-c >/dev/null || { echo "error: protoc-c not found — apt-get install protobuf-c-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data/onnx" "$tmp/out"
protoc-c --proto_path=schemas --c_out="$tmp/out" schemas/onnx.proto
# A separate run: protoc must not see onnx.proto and its stand-in onnx/onnx-ml.proto together.
cp schemas/onnx.proto "$tmp/data/onnx/onnx-ml.proto"
cp schemas/onnx-data.proto "$tmp/data/onnx-data.proto"
protoc-c --proto_path="$tmp/data" --c_out="$tmp/out" "$tmp/data/onnx-data.proto"
sed -i 's|#include "onnx/onnx-ml.pb-c.h"|#include "onnx.pb-c.h"|' "$tmp/out/onnx-data.pb-c.h"
mv "$tmp/out/onnx.pb-c.c" "$tmp/out/onnx-data.pb-c.c" Sources/ONNXProto/
mv "$tmp/out/onnx.pb-c.h" "$tmp/out/onnx-data.pb-c.h" Sources/ONNXProto/include/
echo "regenerated Sources/ONNXProto from schemas/ ($(protoc-c --version | head -1))"
