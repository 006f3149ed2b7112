#!/usr/bin/env python3
"""Compiled onnxc (.oxc) against ONNX Runtime, in the same run, on the same inputs: the issue's speed target.

Usage:
    python3 scripts/bench_vs_ort.py --onnxc .build/release/onnxc [--threads 2] [--runs 30] [--warmup 5]
                                    [--markdown docs/...] [MODEL.onnx ...]

Default models: .cache/models/{resnet50,mobilenet_v2,efficientnet_b0,yolo_tiny}.onnx (scripts/export_torchvision.py)
and testdata/exported/bert_tiny.onnx at seq 128, all batch 1. For each model the script writes seeded inputs
(.npy), compiles it (`onnxc compile -O2 --input-shape ...`, batch and seq pinned), checks the compiled outputs
against ORT's (max |oxc - ort| <= 1e-3 * max|ort| + 1e-4), then times, alternating the two engines in rounds so
that load on the machine hits both alike:
  - onnxc: `onnxc bench MODEL.oxc --json` (median, p90, min over --runs after --warmup; load time; peak RSS);
  - ORT:   an InferenceSession (CPU EP, ORT_ENABLE_ALL, intra_op_num_threads = --threads), median over --runs.
Prints a markdown table: model | ORT ms | onnxc ms | ratio (onnxc / ORT, lower is better) | load ms | arena MB.
Never part of `swift test`: timings on shared machines are noise unless both engines run side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from compare_models import inputs_for

ROOT = Path(__file__).resolve().parent.parent
DIMS = {"batch": 1, "seq": 128}


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_ort(session: ort.InferenceSession, feeds: dict, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def onnxc_bench(onnxc: str, oxc: Path, inputs: list[str], runs: int, warmup: int, threads: int) -> dict:
    arguments = [onnxc, "bench", str(oxc), "--json", "--runs", str(runs), "--warmup", str(warmup), "--threads", str(threads)] + inputs
    run = subprocess.run(arguments, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip())
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the engines this many times; medians are over all rounds")
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    models = args.models or [ROOT / f".cache/models/{n}.onnx" for n in ("resnet50", "mobilenet_v2", "efficientnet_b0", "yolo_tiny")] \
        + [ROOT / "testdata/exported/bert_tiny.onnx"]
    rows = []
    failed = False
    for path in models:
        if not path.exists():
            print(f"skip {path}: missing (run scripts/export_torchvision.py)", file=sys.stderr)
            continue
        model = onnx.load(str(path), load_external_data=False)
        feeds = inputs_for(model, DIMS, np.random.default_rng(0))
        with tempfile.TemporaryDirectory() as work:
            inputs, pins = [], []
            for name, array in feeds.items():
                file = Path(work) / f"{len(inputs)}.npy"
                np.save(file, array)
                inputs += ["--input", f"{name}={file}"]
                pins += ["--input-shape", f"{name}={'x'.join(map(str, array.shape))}"]
            oxc = Path(work) / (path.stem + ".oxc")
            compile_run = subprocess.run([args.onnxc, "compile", str(path), "-O2", "-o", str(oxc), "--json"] + pins,
                                         capture_output=True, text=True)
            if compile_run.returncode != 0:
                print(f"FAIL {path.name}: compile: {compile_run.stderr.strip()}", flush=True)
                failed = True
                continue
            report = json.loads(compile_run.stdout)
            session = ort_session(path, args.threads)
            reference = session.run(None, feeds)
            out_dir = Path(work) / "out"
            out_dir.mkdir()
            run = subprocess.run([args.onnxc, "run", str(oxc), "--output-dir", str(out_dir)] + inputs, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"FAIL {path.name}: run: {run.stderr.strip()}", flush=True)
                failed = True
                continue
            worst = 0.0
            for output, expected in zip(session.get_outputs(), reference):
                name = "".join(c if c.isalnum() or c in "._-" else "_" for c in output.name)
                actual = np.load(out_dir / f"{name}.npy")
                error = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
                bound = 1e-3 * float(np.max(np.abs(expected))) + 1e-4 if expected.size else 1e-4
                worst = max(worst, error / bound)
            if worst > 1:
                print(f"FAIL {path.name}: compiled outputs differ from ORT's ({worst:.2f}x the bound)", flush=True)
                failed = True
            time_ort(session, feeds, args.warmup)
            ort_times, onnxc_medians, result = [], [], {}
            for _ in range(args.rounds):
                ort_times += time_ort(session, feeds, args.runs)
                result = onnxc_bench(args.onnxc, oxc, inputs, args.runs, args.warmup, args.threads)
                onnxc_medians.append(result["median_ms"])
            ort_ms = statistics.median(ort_times)
            onnxc_ms = statistics.median(onnxc_medians)
            rows.append((path.stem, ort_ms, onnxc_ms, onnxc_ms / ort_ms, result["load_ms"], report["arena_bytes"] / 1e6,
                         result["peak_rss_bytes"] / 2**20))
            print(f"{path.stem}: ORT {ort_ms:.2f} ms, onnxc {onnxc_ms:.2f} ms, ratio {onnxc_ms / ort_ms:.2f}", flush=True)
    print()
    print(f"| model | ORT ms | onnxc ms | onnxc / ORT | onnxc load ms | arena MB | onnxc peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row[0]} | {row[1]:.2f} | {row[2]:.2f} | {row[3]:.2f} | {row[4]:.1f} | {row[5]:.1f} | {row[6]:.0f} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
