#!/usr/bin/env bash
# Fetches the ONNX backend test data of onnx==1.16.2 from PyPI into git-ignored folders:
#   bash scripts/fetch-onnx-tests.sh
#   testdata/node/   the 1282 node tests (model.onnx + test_data_set_*/input_N.pb, output_N.pb)
#   testdata/light/  the 9 classic models as test folders: model.onnx, and test_data_set_0 with the input the
#                    onnx backend runner feeds them (arange(n)/n, unknown dims as 1) and the output shipped
#                    beside each model (computed by onnx's reference evaluator)
# The wheel is downloaded once (`pip download --no-deps`) into .cache/wheels and unpacked with Python's
# zipfile; nothing is installed. Idempotent: each target is replaced as a whole, through a staging folder.
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.16.2
expected_node_tests=1282
mkdir -p .cache/wheels
wheel=$(ls .cache/wheels/onnx-$version-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: -d .cache/wheels "onnx==$version"
    wheel=$(ls .cache/wheels/onnx-$version-*.whl | head -1)
fi

python3 - "$wheel" "$expected_node_tests" <<'PY'
import io, shutil, sys, zipfile
from pathlib import Path

wheel, expected = sys.argv[1], int(sys.argv[2])
prefix = "onnx/backend/test/data/"
staging = Path(".cache/onnx-tests.tmp")
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as archive:
    for entry in archive.namelist():
        if entry.startswith(prefix + "node/") or entry.startswith(prefix + "light/"):
            target = staging / entry[len(prefix):]
            if entry.endswith("/"):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(entry))

# The light models ship only model + expected output; build test folders with the runner's input.
light = staging / "light"
folders = staging / "light_tests"
for model in sorted(light.glob("light_*.onnx")):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    name = model.stem
    folder = folders / name / "test_data_set_0"
    folder.mkdir(parents=True)
    shutil.copy(model, folders / name / "model.onnx")
    proto = onnx.load(model)
    initializers = {i.name for i in proto.graph.initializer}
    index = 0
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        data = (np.arange(n).reshape(shape) / n).astype(np.float32)
        (folder / f"input_{index}.pb").write_bytes(numpy_helper.from_array(data).SerializeToString())
        index += 1
    for k, _ in enumerate(proto.graph.output):
        expected_output = light / f"{name}_output_{k}.pb"
        shutil.copy(expected_output, folder / f"output_{k}.pb")

count = sum(1 for p in (staging / "node").iterdir() if p.is_dir())
if count != expected:
    sys.exit(f"error: {count} node tests in the wheel, expected {expected}")
for source, target in ((staging / "node", Path("testdata/node")), (folders, Path("testdata/light"))):
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(str(source), str(target))
shutil.rmtree(staging)
print(f"testdata/node: {count} node tests; testdata/light: {len(list(Path('testdata/light').iterdir()))} model tests (onnx {sys.argv[1].split('/')[-1]})")
PY
