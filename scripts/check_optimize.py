#!/usr/bin/env python3
"""Check that `onnxc optimize -O1` and `-O2` write standard ONNX that ONNX Runtime runs with unchanged outputs.

Usage:
    python3 scripts/check_optimize.py --onnxc .build/release/onnxc [MODEL.onnx or DIR ...]

Default models: testdata/models, testdata/exported and .cache/models. For each model ONNX Runtime can run and
each level, the optimized model must load in ONNX Runtime and give, on the same seeded inputs (symbolic dims:
batch 2, seq 16, others 1), outputs of the same dtype and shape with max|opt - ref| <= 1e-4 * max|ref| + 1e-6.
Prints one line per model and level (nodes before -> after) and a closing `N passed, M failed`.
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

from compare_models import inputs_for

ROOT = Path(__file__).resolve().parent.parent


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check(onnxc: str, path: Path, level: int) -> tuple[bool, str]:
    model = onnx.load(str(path), load_external_data=False)
    try:
        reference_session = session(path)
    except Exception as error:  # noqa: BLE001 - ORT's exceptions have no common base worth naming
        return True, f"skip: ONNX Runtime cannot load the original ({str(error).splitlines()[0][:100]})"
    feeds = inputs_for(model, {"batch": 2, "seq": 16}, np.random.default_rng(0))
    try:
        reference = reference_session.run(None, feeds)
    except Exception as error:  # noqa: BLE001
        return True, f"skip: ONNX Runtime cannot run the original ({str(error).splitlines()[0][:100]})"
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "optimized.onnx"
        run = subprocess.run([onnxc, "optimize", str(path), f"-O{level}", "-o", str(out), "--json"], capture_output=True, text=True)
        if run.returncode != 0:
            return False, run.stderr.strip().splitlines()[0] if run.stderr else f"exit {run.returncode}"
        nodes = f"{len(model.graph.node)} -> {len(onnx.load(str(out), load_external_data=False).graph.node)} nodes"
        try:
            actual = session(out).run(None, feeds)
        except Exception as error:  # noqa: BLE001
            return False, f"ONNX Runtime rejects the optimized model: {str(error).splitlines()[0][:160]}"
    for index, (a, r) in enumerate(zip(actual, reference)):
        if a.dtype != r.dtype or a.shape != r.shape:
            return False, f"output {index}: {a.dtype}{a.shape}, expected {r.dtype}{r.shape}"
        if r.dtype.kind in "fc" and r.size:
            # NaN must stay NaN and infinities stay the same infinity; the tolerance applies to finite values.
            finite = np.isfinite(r)
            special_ok = np.all((np.isnan(a) & np.isnan(r)) | (a == r) | finite)
            error = float(np.max(np.abs(a[finite].astype(np.float64) - r[finite]))) if finite.any() else 0.0
            bound = 1e-4 * (float(np.max(np.abs(r[finite]))) if finite.any() else 0.0) + 1e-6
            if not special_ok or not error <= bound:
                return False, f"output {index}: max error {error:.3g} over bound {bound:.3g} (non-finite match: {special_ok})"
        elif not np.array_equal(a, r):
            return False, f"output {index}: values differ"
    return True, nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.paths or [ROOT / "testdata/models", ROOT / "testdata/exported", ROOT / ".cache/models"]
    models = []
    for path in paths:
        models += sorted(path.rglob("*.onnx")) if path.is_dir() else [path]
    passed = failed = 0
    for path in models:
        for level in (1, 2):
            ok, detail = check(args.onnxc, path, level)
            print(f"{'ok  ' if ok else 'FAIL'} {path.name} -O{level}: {detail}", flush=True)
            passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
