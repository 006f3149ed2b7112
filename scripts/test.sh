#!/usr/bin/env bash
# Runs every onnxc test on a fresh machine:
#   bash scripts/test.sh
# 1. installs system and Python dependencies if missing (protobuf-c; onnx==1.16.2 and onnxruntime),
# 2. `swift test` — unit, golden and end-to-end tests (no Python needed),
# 3. the ONNX Runtime round-trip check: every testdata model, the onnx wheel's classic models and all 1282
#    backend node-test models are re-encoded with `onnxc optimize -O0`, compared field by field with the onnx
#    package, and run in ONNX Runtime before and after, requiring bit-identical outputs,
# 4. ONNX conformance: `onnxc test` over the 1282 node tests and the 9 classic models against the committed
#    lists in testdata/conformance, shape inference against onnx.shape_inference, and `onnxc run` against
#    ONNX Runtime on the BERT-style encoder, `onnxc optimize -O1/-O2` output checked in ONNX Runtime, and
#    `onnxc quantize` output (static and dynamic) run in ONNX Runtime against the int8 .oxc,
# 5. `onnxc prune` output checked in ONNX Runtime against the original with the removed channels masked.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
python3 -c "import onnx, onnxruntime, numpy; assert onnx.__version__ == '1.16.2'" 2>/dev/null \
    || python3 -m pip install -q "onnx==1.16.2" onnxruntime numpy

swift test
bash scripts/fetch-onnx-tests.sh
# The release binary: setup.sh built it, and release builds catch lifetime bugs debug builds hide.
python3 scripts/check_roundtrip.py --onnxc .build/release/onnxc
# ONNX conformance: every test the committed list names must pass; excluded ones carry their reason.
.build/release/onnxc test testdata/node --expected testdata/conformance/node.txt | tail -3
.build/release/onnxc test testdata/light --expected testdata/conformance/light.txt
# The same suites through the runtime's -O2 pipeline (folding, fusions, onnxc's own fused ops): no pass may
# change an answer the unoptimized run gets right.
.build/release/onnxc test testdata/node --expected testdata/conformance/node.txt -O2 | tail -3
.build/release/onnxc test testdata/light --expected testdata/conformance/light.txt -O2 | tail -1
# And through the compiled path: emit, write .oxc bytes, read them back, run the program.
.build/release/onnxc test testdata/node --expected testdata/conformance/node.txt -O2 --compiled | tail -3
.build/release/onnxc test testdata/light --expected testdata/conformance/light.txt -O2 --compiled | tail -1
# Shape inference against onnx.shape_inference, with declared shapes stripped so onnxc infers them itself.
python3 scripts/check_shape_inference.py --onnxc .build/release/onnxc --strip -q testdata/models testdata/exported testdata/node testdata/light
python3 scripts/compare_models.py --onnxc .build/release/onnxc --levels 0,2,c testdata/exported/bert_tiny.onnx
# -O1/-O2 output is standard ONNX that ONNX Runtime runs with the original's outputs.
python3 scripts/check_optimize.py --onnxc .build/release/onnxc testdata/models testdata/exported
# `onnxc quantize` output (static QDQ, and --dynamic with recurrent ops) runs in ONNX Runtime with the int8 .oxc's answers.
python3 scripts/check_quantize.py --onnxc .build/release/onnxc
# Pruning: every pruned model equals the original with the removed channels masked, in ONNX Runtime, with the
# original's output shapes (the torchvision models are checked too when scripts/export_torchvision.py made them).
python3 scripts/prune_check.py --onnxc .build/release/onnxc
