#!/usr/bin/env python3
"""Compare `onnxc run` with ONNX Runtime on real models, at several input sizes.

Usage:
    python3 scripts/compare_models.py --onnxc .build/release/onnxc [--levels 0,2] [MODEL.onnx ...]

Default models: testdata/exported/bert_tiny.onnx and every .cache/models/*.onnx (make those with
scripts/export_torchvision.py). For each model and each input size (symbolic dims: batch 1 and 2, seq 8 and 16,
other symbols 1), random inputs with a fixed seed are written as .npy (token ids below 1000, masks of ones),
ONNX Runtime (all optimizations off) computes the reference, `onnxc run --output-dir` computes ours, and every
output must satisfy max|ours - ref| <= 1e-3 * max|ref| + 1e-5. Prints one line per model and size with the
error, and a closing `N passed, M failed`; exits 1 if any failed. `--levels` runs onnxc at each optimization level
(`onnxc run -O`: the runtime pipeline, with onnxc's fused ops), so every pass is checked against ORT too; the
level `c` compiles the model (`onnxc compile -O2` with every input's shape pinned, so the memory plan covers all
intermediates) and runs the `.oxc`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
SIZES = [{"batch": 1, "seq": 8}, {"batch": 2, "seq": 16}]
TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32,
         onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.BOOL: np.bool_}


def inputs_for(model: onnx.ModelProto, size: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    initializers = {i.name for i in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else size.get(d.dim_param, 1) for d in tensor.shape.dim]
        dtype = TYPES[tensor.elem_type]
        if "mask" in value.name:
            feeds[value.name] = np.ones(shape, dtype)
        elif np.issubdtype(dtype, np.integer):
            feeds[value.name] = rng.integers(0, 1000, shape).astype(dtype)
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def is_dynamic(model: onnx.ModelProto) -> bool:
    return any(d.dim_param for v in model.graph.input for d in v.type.tensor_type.shape.dim)


def compare(onnxc: str, path: Path, levels: list[str]) -> list[tuple[str, bool, str]]:
    model = onnx.load(str(path), load_external_data=False)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    results = []
    for size, level in [(size, level) for size in (SIZES if is_dynamic(model) else SIZES[:1]) for level in levels]:
        label = f"{path.name} {'compiled' if level == 'c' else '-O' + level} {size if is_dynamic(model) else 'static'}"
        feeds = inputs_for(model, size, np.random.default_rng(0))
        reference = session.run(None, feeds)
        with tempfile.TemporaryDirectory() as work:
            inputs, pins = [], []
            for name, array in feeds.items():
                file = Path(work) / f"in_{len(inputs)}.npy"
                np.save(file, array)
                inputs += ["--input", f"{name}={file}"]
                pins += ["--input-shape", f"{name}={'x'.join(map(str, array.shape))}"]
            target = str(path)
            if level == "c":
                target = str(Path(work) / (path.stem + ".oxc"))
                compiled = subprocess.run([onnxc, "compile", str(path), "-o", target] + pins, capture_output=True, text=True)
                if compiled.returncode != 0:
                    results.append((label, False, "compile: " + (compiled.stderr.strip().splitlines() or ["?"])[0]))
                    continue
            arguments = [onnxc, "run", target] + ([] if level == "c" else [f"-O{level}"]) + ["--output-dir", work] + inputs
            run = subprocess.run(arguments, capture_output=True, text=True)
            if run.returncode != 0:
                results.append((label, False, run.stderr.strip().splitlines()[0] if run.stderr else f"exit {run.returncode}"))
                continue
            worst = ""
            ok = True
            for output, expected in zip(session.get_outputs(), reference):
                name = "".join(c if c.isalnum() or c in "._-" else "_" for c in output.name)
                actual = np.load(Path(work) / f"{name}.npy")
                if actual.shape != expected.shape:
                    ok, worst = False, f"{output.name}: shape {actual.shape}, expected {expected.shape}"
                    break
                error = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
                bound = 1e-3 * float(np.max(np.abs(expected))) + 1e-5 if expected.size else 1e-5
                worst += f"{output.name}: max err {error:.3g} (bound {bound:.3g}) "
                ok = ok and error <= bound
            results.append((label, ok, worst.strip()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--levels", default="0", help="comma-separated onnxc optimization levels to check (default 0)")
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    levels = args.levels.split(",")
    models = args.models or [ROOT / "testdata/exported/bert_tiny.onnx"] + sorted((ROOT / ".cache/models").glob("*.onnx"))
    passed = failed = 0
    for path in models:
        for label, ok, detail in compare(args.onnxc, path, levels):
            print(f"{'ok  ' if ok else 'FAIL'} {label}: {detail}", flush=True)
            passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
