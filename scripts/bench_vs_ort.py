#!/usr/bin/env python3
"""Compiled onnxc (.oxc) against ONNX Runtime, in the same run, on the same inputs: the issue's speed, load,
start-up, memory and size targets.

Usage:
    python3 scripts/bench_vs_ort.py --onnxc .build/release/onnxc [--threads 2] [--runs 30] [--warmup 5]
                                    [--rounds 3] [--process-runs 2] [--markdown FILE] [MODEL.onnx ...]

Default models: .cache/models/{resnet50,mobilenet_v2,efficientnet_b0,yolo_tiny}.onnx (scripts/export_torchvision.py)
and testdata/exported/bert_tiny.onnx at seq 128, all batch 1. For each model the script writes seeded inputs
(.npy), compiles it (`onnxc compile -O2 --input-shape ...`, batch and seq pinned), checks the compiled outputs
against ORT's (max |oxc - ort| <= 1e-3 * max|ort| + 1e-4), then measures, alternating the two engines in
--rounds rounds so that load on the machine hits both alike. Each round:
  - ORT latency, in this process: a new InferenceSession (CPU EP, ORT_ENABLE_ALL, intra_op_num_threads =
    --threads, inter_op 1), timed ("warm session ms": onnxruntime already initialized by earlier sessions);
    --warmup untimed runs, then --runs timed runs ("ORT ms" is the median over all rounds' runs);
  - ORT start-up, in a fresh Python process (the script ORT_CHILD below) that imports numpy and onnxruntime,
    then times its session creation with the same options ("session ms": the first session of a process, as
    onnxc's load is the first load of its process) and its first run ("first run ms"), writes the outputs with
    np.save ("process start → output ms", from spawn to the last output written), runs --warmup + --runs more
    times and reports its peak RSS;
  - onnxc: `onnxc bench MODEL.oxc --json` (median latency over --runs after --warmup; "load ms" is the bench's
    load_ms: open the .oxc, verify every CRC, build the runnable model; peak RSS);
  - onnxc start-up: --process-runs `onnxc run MODEL.oxc --input ... --output-dir DIR` subprocesses, wall time
    from spawn to exit: process start, load, input .npy reading, one run and every output .npy written.
Ratios (lower is better; the issue's targets in brackets): onnxc / ORT latency; load = onnxc load ms / ORT
session ms [<= 0.02]; start = onnxc start-to-output ms / (ORT session ms + ORT first run ms) [<= 0.35]; size =
.oxc bytes / (.onnx bytes + its external data files) [<= 1.02]. The ORT side of both start-up ratios leaves out
the Python interpreter's start and the imports, which the last column includes. Timings are medians over rounds.

Memory: onnxc's peak RSS is `bench --json` peak_rss_bytes (the bench process: load, --warmup + --runs runs).
ORT's is the fresh Python process's above (session, 1 + --warmup + --runs runs), the highest of the rounds:
VmHWM from /proc/self/status, not resource.getrusage().ru_maxrss, because a child's ru_maxrss survives exec and
so starts at the parent's peak (this script holds ORT sessions: a child of it reports several hundred MB it never had).
That figure includes the Python interpreter, numpy and onnxruntime themselves; a second subprocess that only
imports them measures that baseline, which the table gives separately (and subtracted, in parentheses). Never
part of `swift test`: timings on shared machines are noise unless both engines run side by side.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from compare_models import inputs_for

ROOT = Path(__file__).resolve().parent.parent
DIMS = {"batch": 1, "seq": 128}

# The ORT side of the memory and start-up measurement, run as `python3 -c ORT_CHILD ...` so that nothing of
# this process (its sessions, its imports) is in the child's address space. argv: model, inputs .npz, threads,
# runs, output folder, the parent's time.time() just before the spawn.
ORT_CHILD = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
model, inputs, threads, runs, out, spawned = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
imported = time.time()
feeds = dict(np.load(inputs))
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
start = time.perf_counter()
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
session_ms = (time.perf_counter() - start) * 1e3
start = time.perf_counter()
outputs = session.run(None, feeds)
first_run_ms = (time.perf_counter() - start) * 1e3
for i, value in enumerate(outputs):
    np.save(f"{out}/{i}.npy", value)
first_output_ms = (time.time() - spawned) * 1e3
for _ in range(runs):
    session.run(None, feeds)
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"import_ms": (imported - spawned) * 1e3, "session_ms": session_ms, "first_run_ms": first_run_ms,
                  "start_to_output_ms": first_output_ms, "peak_rss_bytes": hwm}))
"""

# Peak RSS of the interpreter with numpy and onnxruntime imported and nothing else.
BASELINE_CHILD = r"""
import numpy, onnxruntime
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


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


def onnxc_start_to_output(onnxc: str, oxc: Path, inputs: list[str], threads: int, out_dir: Path) -> float:
    """Wall ms of one `onnxc run` process, from spawn to exit (its outputs are written before it exits)."""
    for old in out_dir.glob("*.npy"):
        old.unlink()
    start = time.perf_counter()
    run = subprocess.run([onnxc, "run", str(oxc), "--threads", str(threads), "--output-dir", str(out_dir)] + inputs,
                         capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1e3
    if run.returncode != 0 or not any(out_dir.glob("*.npy")):
        raise RuntimeError(f"onnxc run: {run.stderr.strip()}")
    return elapsed


def ort_child(path: Path, inputs_npz: Path, threads: int, runs: int, out_dir: Path) -> dict:
    out_dir.mkdir(exist_ok=True)
    spawned = time.time()
    run = subprocess.run([sys.executable, "-c", ORT_CHILD, str(path), str(inputs_npz), str(threads), str(runs), str(out_dir), repr(spawned)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"ORT subprocess: {run.stderr.strip()}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def ort_baseline_rss() -> int:
    run = subprocess.run([sys.executable, "-c", BASELINE_CHILD], capture_output=True, text=True, check=True)
    return int(run.stdout.strip())


def onnx_bytes(path: Path, model: onnx.ModelProto) -> int:
    """The .onnx file plus every external data file its initializers name."""
    locations = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            locations.update(entry.value for entry in tensor.external_data if entry.key == "location")
    return path.stat().st_size + sum((path.parent / location).stat().st_size for location in locations)


@dataclass
class Row:
    name: str
    arena_mb: float
    onnx_bytes: int
    oxc_bytes: int
    ort_ms: list[float] = field(default_factory=list)
    onnxc_ms: list[float] = field(default_factory=list)
    warm_session_ms: list[float] = field(default_factory=list)
    session_ms: list[float] = field(default_factory=list)
    first_run_ms: list[float] = field(default_factory=list)
    ort_process_ms: list[float] = field(default_factory=list)
    load_ms: list[float] = field(default_factory=list)
    start_ms: list[float] = field(default_factory=list)
    onnxc_rss: int = 0
    ort_rss: int = 0

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


def mib(n: int) -> str:
    return f"{n / 2**20:.0f}"


def tables(rows: list[Row], baseline_rss: int) -> list[str]:
    lines = ["| model | ORT ms | onnxc ms | onnxc / ORT | arena MB |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ort_ms, onnxc_ms = r.median("ort_ms"), r.median("onnxc_ms")
        lines.append(f"| {r.name} | {ort_ms:.2f} | {onnxc_ms:.2f} | {onnxc_ms / ort_ms:.2f} | {r.arena_mb:.1f} |")
    lines += ["", "| model | ORT session ms | ORT warm session ms | ORT first run ms | onnxc load ms | load ratio (≤ 0.02) "
              "| onnxc start → output ms | ORT session + first run ms | start ratio (≤ 0.35) | ORT process start → output ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        session, first, load, start = r.median("session_ms"), r.median("first_run_ms"), r.median("load_ms"), r.median("start_ms")
        lines.append(f"| {r.name} | {session:.1f} | {r.median('warm_session_ms'):.1f} | {first:.1f} | {load:.2f} | {load / session:.3f} "
                     f"| {start:.1f} | {session + first:.1f} | {start / (session + first):.3f} | {r.median('ort_process_ms'):.0f} |")
    lines += ["", f"| model | onnxc peak RSS MiB | ORT peak RSS MiB (minus the {mib(baseline_rss)} MiB import baseline) "
              "| .onnx MB | .oxc MB | size ratio (≤ 1.02) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r.name} | {mib(r.onnxc_rss)} | {mib(r.ort_rss)} ({mib(r.ort_rss - baseline_rss)}) "
                     f"| {r.onnx_bytes / 1e6:.2f} | {r.oxc_bytes / 1e6:.2f} | {r.oxc_bytes / r.onnx_bytes:.3f} |")
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the engines this many times; medians are over all rounds")
    parser.add_argument("--process-runs", type=int, default=2, help="`onnxc run` processes timed per round (start to output written)")
    parser.add_argument("--markdown", type=Path, help="also write the tables, the command line, date and versions to this file")
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    models = args.models or [ROOT / f".cache/models/{n}.onnx" for n in ("resnet50", "mobilenet_v2", "efficientnet_b0", "yolo_tiny")] \
        + [ROOT / "testdata/exported/bert_tiny.onnx"]
    rows: list[Row] = []
    failed = False
    baseline_rss = ort_baseline_rss()
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
            feeds_npz = Path(work) / "feeds.npz"
            np.savez(feeds_npz, **feeds)
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
            del session
            row = Row(path.stem, report["arena_bytes"] / 1e6, onnx_bytes(path, model), oxc.stat().st_size)
            for _ in range(args.rounds):
                start = time.perf_counter()
                session = ort_session(path, args.threads)
                row.warm_session_ms.append((time.perf_counter() - start) * 1e3)
                time_ort(session, feeds, args.warmup)
                row.ort_ms += time_ort(session, feeds, args.runs)
                del session
                child = ort_child(path, feeds_npz, args.threads, args.warmup + args.runs, Path(work) / "ort_out")
                row.session_ms.append(child["session_ms"])
                row.first_run_ms.append(child["first_run_ms"])
                row.ort_process_ms.append(child["start_to_output_ms"])
                row.ort_rss = max(row.ort_rss, child["peak_rss_bytes"])
                result = onnxc_bench(args.onnxc, oxc, inputs, args.runs, args.warmup, args.threads)
                row.onnxc_ms.append(result["median_ms"])
                row.load_ms.append(result["load_ms"])
                row.onnxc_rss = max(row.onnxc_rss, result["peak_rss_bytes"])
                for _ in range(args.process_runs):
                    row.start_ms.append(onnxc_start_to_output(args.onnxc, oxc, inputs, args.threads, out_dir))
            rows.append(row)
            print(f"{row.name}: ORT {row.median('ort_ms'):.2f} ms, onnxc {row.median('onnxc_ms'):.2f} ms; "
                  f"load {row.median('load_ms'):.2f} ms vs ORT session {row.median('session_ms'):.1f} ms; "
                  f"start to output {row.median('start_ms'):.1f} ms", flush=True)
    lines = tables(rows, baseline_rss)
    print()
    print("\n".join(lines))
    print(f"\nORT peak RSS includes the interpreter + numpy + onnxruntime import baseline of {mib(baseline_rss)} MiB.")
    if args.markdown:
        command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix()] + sys.argv[1:])
        header = [f"`python3 {command}`", "",
                  f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; ONNX Runtime {ort.__version__} "
                  f"(CPU EP, ORT_ENABLE_ALL); {args.threads} threads; {args.rounds} rounds of {args.runs} runs after "
                  f"{args.warmup} warm-up; {machine()}.", ""]
        footer = ["", f"ORT peak RSS is a fresh Python process's (VmHWM), including the interpreter + numpy + onnxruntime "
                      f"import baseline of {mib(baseline_rss)} MiB; in parentheses, minus that baseline."]
        args.markdown.write_text("\n".join(header + lines + footer) + "\n")
        print(f"wrote {args.markdown}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
