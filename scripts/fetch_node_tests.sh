#!/usr/bin/env bash
# Copies the ONNX backend test data out of the onnx 1.16.2 Python package:
#   bash scripts/fetch_node_tests.sh
#   onnx/backend/test/data/node  -> testdata/node   (1282 test dirs: model.onnx + test_data_set_*/)
#   onnx/backend/test/data/light -> testdata/light  (classic CNNs with ConstantOfShape weights)
# Both targets are git-ignored. Uses the onnx installed for python3 if it is 1.16.2, otherwise installs
# onnx==1.16.2 into a venv under .cache/ (git-ignored). Idempotent: each target is replaced as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.16.2
expected_node_tests=1282
python=python3
if [ "$("$python" -c 'import onnx; print(onnx.__version__)' 2>/dev/null || true)" != "$version" ]; then
    venv=.cache/onnx-$version
    if [ ! -x "$venv/bin/python" ] || [ "$("$venv/bin/python" -c 'import onnx; print(onnx.__version__)' 2>/dev/null || true)" != "$version" ]; then
        echo "installing onnx==$version into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q "onnx==$version"
    fi
    python=$venv/bin/python
fi
data=$("$python" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data"))')

# Copy into git-ignored .cache/, then swap it in, so an interrupted run never leaves a half-filled target.
copy() {
    local source=$1 target=$2 staging
    [ -d "$source" ] || { echo "error: $source not found in the onnx package" >&2; exit 1; }
    staging=.cache/$(basename "$target").tmp
    mkdir -p .cache
    rm -rf "$staging"
    cp -R "$source" "$staging"
    rm -rf "$target"
    mv "$staging" "$target"
}
copy "$data/node" testdata/node
copy "$data/light" testdata/light

count=$(find testdata/node -mindepth 1 -maxdepth 1 -type d | wc -l)
if [ "$count" -ne "$expected_node_tests" ]; then
    echo "error: testdata/node has $count test dirs, expected $expected_node_tests (onnx $version)" >&2
    exit 1
fi
echo "testdata/node: $count node tests; testdata/light: $(find testdata/light -name '*.onnx' | wc -l) models (onnx $version)"
