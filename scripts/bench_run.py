#!/usr/bin/env python3
"""Time `onnxc run` against ONNX Runtime in the same run, and show where onnxc's time goes.

Usage:
    python3 scripts/bench_run.py --onnxc .build/release/onnxc [--threads 2] [--runs 5] [-O 2] [--baseline OTHER_ONNXC] [MODEL.onnx ...]

Default models: .cache/models/{resnet18,resnet50,mobilenet_v2,squeezenet1_1}.onnx and
testdata/exported/bert_tiny.onnx, batch 1 (seq 16). For each model: ONNX Runtime (all graph optimizations on,
`--threads` intra-op threads) runs once to warm up, then `--runs` times; onnxc's execution time is the
`total` line of `onnxc run --profile` (execution only, not model loading), median of `--runs` processes, taking turns with
ORT's runs so load from other processes hits both alike, with
`-O` passed on and ONNXC_NUM_THREADS set to `--threads` (the CKernels GEMM pool). `--baseline` times a second
onnxc binary (say, a build of main) the same way in the same run, for before/after tables.
Prints a markdown table (model, ORT ms, onnxc ms, ratio) and onnxc's top op types for each model.
The interpreter is not the compiled path: these numbers are the baseline the .oxc work improves on.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def feeds_for(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path), load_external_data=False)
    rng = np.random.default_rng(0)
    feeds = {}
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else {"batch": 1, "seq": 16}.get(d.dim_param, 1) for d in tensor.shape.dim]
        if tensor.elem_type == onnx.TensorProto.INT64:
            feeds[value.name] = np.ones(shape, np.int64) if "mask" in value.name else rng.integers(0, 1000, shape)
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-O", dest="level", type=int, default=0, help="optimization level passed to onnxc run")
    parser.add_argument("--baseline", help="another onnxc binary to time the same way (before/after)")
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    models = args.models or [ROOT / f".cache/models/{n}.onnx" for n in ("resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1")] \
        + [ROOT / "testdata/exported/bert_tiny.onnx"]
    rows, profiles = [], []
    for path in models:
        feeds = feeds_for(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, feeds)
        with tempfile.TemporaryDirectory() as work:
            inputs = []
            for name, array in feeds.items():
                file = Path(work) / f"{name}.in.npy"
                np.save(file, array)
                inputs += ["--input", f"{name}={file}"]
            env = dict(os.environ, ONNXC_NUM_THREADS=str(args.threads))

            def timed(binary: str) -> tuple[float, str]:
                arguments = [binary, "run", str(path), "--profile", "--output-dir", work, *inputs]
                if args.level:
                    arguments.append(f"-O{args.level}")
                run = subprocess.run(arguments, capture_output=True, text=True, check=True, env=env)
                return float(re.search(r"total ([0-9.]+) ms", run.stderr).group(1)), run.stderr

            # ORT, onnxc and the baseline take turns, so load from other processes hits them alike.
            ort_times, ours, befores, last = [], [], [], ""
            for _ in range(args.runs):
                start = time.perf_counter()
                session.run(None, feeds)
                ort_times.append((time.perf_counter() - start) * 1e3)
                t, last = timed(args.onnxc)
                ours.append(t)
                if args.baseline:
                    befores.append(timed(args.baseline)[0])
            x = statistics.median(ours)
            before = statistics.median(befores) if args.baseline else None
        o = statistics.median(ort_times)
        if before is None:
            rows.append(f"| {path.stem} | {o:.1f} | {x:.1f} | {x / o:.1f}× |")
        else:
            rows.append(f"| {path.stem} | {o:.1f} | {before:.1f} | {x:.1f} | {before / o:.1f}× | {x / o:.1f}× |")
        top = [line for line in last.splitlines()[1:6]]
        profiles.append(f"{path.stem}:\n" + "\n".join("    " + line for line in top))
    if args.baseline:
        print("| model | ORT ms | baseline ms | onnxc ms | baseline / ORT | onnxc / ORT |\n|---|---|---|---|---|---|")
    else:
        print("| model | ORT ms | onnxc run ms | onnxc / ORT |\n|---|---|---|---|")
    print("\n".join(rows))
    print("\nwhere onnxc's time goes (op, calls, ms, % of run):")
    print("\n".join(profiles))


if __name__ == "__main__":
    main()
