#!/usr/bin/env python3
"""Benchmark our CKernels against the field's libraries (Debian packages) on the shapes onnxc's models produce, at
1 and 2 threads, in GFLOP/s. Not part of `swift test`.

Usage:
    python3 scripts/bench_kernels.py [--threads 1,2] [--repeat 3] [--install]
    python3 scripts/bench_kernels.py --conv [--threads 1,2] [--repeat 3] [--install] [--layer NAME ...]
    [--seconds S] (either mode)

GEMM (default): scripts/bench_kernels/bench_gemm.c, our kernel against OpenBLAS, BLIS and oneDNN's sgemm.
--conv: scripts/bench_kernels/bench_conv.c, our channels-last and channels-first convolutions against XNNPACK's
NHWC convolution and oneDNN's convolution primitive, bias and ReLU fused in all; --layer keeps the layers whose
name contains NAME (repeatable).

Each program is built with our C kernels compiled in (every Sources/CKernels/*.c, with the flags SwiftPM gives
that target) into .build/bench_kernels/; the libraries are dlopen'ed at run time, and a missing one prints "-"
(--install first runs `apt-get install` for the mode's packages: the product itself needs none of them). The
program runs once per thread count with every library's thread variable set, and the script prints markdown
tables. At one thread the libraries run interleaved shape by shape in one process, so load from other processes
hits them alike; at more, each library runs in its own process (pools that spin after a call would steal the next
library's cores). --seconds sets the least time of one timing round (BENCH_SECONDS; 0.1 s for GEMM, 0.2 s for
convolutions by default): a tiny value only checks that everything runs and agrees with the reference.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".build/bench_kernels"
KERNELS = ROOT / "Sources/CKernels"
# SwiftPM's release flags for the CKernels target (Package.swift adds none of its own), with the toolchain's clang:
# no -march, since the kernels choose AVX2 or AVX-512 per function (target attributes) at run time.
KERNEL_FLAGS = ["-O2", "-DSWIFT_PACKAGE=1", "-fno-omit-frame-pointer"]

MODES = {
    "gemm": {
        "source": ["bench_gemm.c"],
        "packages": ["libopenblas-dev", "libblis-dev", "libdnnl-dev"],
        "libraries": ["ours", "openblas", "blis", "dnnl"],
        "thread_variables": ["ONNXC_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_NUM_THREADS"],
        "rounds": 5,
    },
    "conv": {
        "source": ["bench_conv.c", "bench_conv_libs.c"],
        "packages": ["libxnnpack-dev", "libdnnl-dev"],
        "libraries": ["ours", "xnnpack", "dnnl"],
        # XNNPACK's pthreadpool takes bench_conv's count, ONNXC_NUM_THREADS.
        "thread_variables": ["ONNXC_NUM_THREADS", "OMP_NUM_THREADS"],
        "rounds": 3,
    },
}


def build(mode: str) -> Path:
    """Compiles the mode's benchmark with every C kernel into .build/bench_kernels/<mode>."""
    OUT.mkdir(parents=True, exist_ok=True)
    binary = OUT / mode
    compiler = os.environ.get("CC") or shutil.which("clang") or "cc"
    sources = [str(ROOT / "scripts/bench_kernels" / name) for name in MODES[mode]["source"]]
    sources += sorted(glob.glob(str(KERNELS / "*.c")))
    subprocess.run([compiler, *KERNEL_FLAGS, "-I", str(KERNELS / "include"), *sources, "-o", str(binary),
                    "-ldl", "-lpthread", "-lm"], check=True)
    return binary


def merge(tables: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """One table from several runs' tab-separated outputs: each numeric cell keeps its largest value (the best rate,
    the worst error), a "-" gives way to any number."""
    header = tables[0][0].split("\t")
    rows = [line.split("\t") for line in tables[0][1:]]
    for table in tables[1:]:
        for row, line in zip(rows, table[1:]):
            for i, cell in enumerate(line.split("\t")[1:], start=1):
                if cell != "-" and (row[i] == "-" or float(cell) > float(row[i])):
                    row[i] = cell
    return header, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conv", action="store_true", help="convolutions instead of GEMM")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the libraries above one thread")
    parser.add_argument("--seconds", type=float, help="least seconds of calls per timing round (BENCH_SECONDS)")
    parser.add_argument("--layer", action="append", default=[], help="--conv: layers whose name contains this")
    args = parser.parse_args()
    mode = "conv" if args.conv else "gemm"
    spec = MODES[mode]
    if args.install:
        subprocess.run(["apt-get", "install", "-y", "-qq", *spec["packages"]], check=True)
    binary = build(mode)
    notes: list[str] = []
    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ)
        for variable in spec["thread_variables"]:
            env[variable] = str(threads)
        if args.seconds is not None:
            env["BENCH_SECONDS"] = str(args.seconds)
        # bench_gemm takes the libraries as its argument, bench_conv after --libs, then layer names.
        def command(library: str | None) -> list[str]:
            if mode == "gemm":
                return [str(binary)] + ([library] if library else [])
            return [str(binary)] + (["--libs", library] if library else []) + args.layer

        if threads == 1:
            runs = [command(None)]
        else:
            # One process per library: OpenMP, OpenBLAS and pthreadpool workers spin after each call and would take
            # the cores the next library in an interleaved run needs.
            # The sequence runs --repeat times and each cell keeps its best, so every library gets a chance at a
            # quiet moment of a shared machine.
            runs = [command(library) for _ in range(args.repeat) for library in spec["libraries"]]
        outputs = [subprocess.run(run, env=env, capture_output=True, text=True, check=True) for run in runs]
        for output in outputs:
            notes += [line for line in output.stderr.splitlines() if line not in notes]
        header, rows = merge([output.stdout.strip().splitlines() for output in outputs])
        rounds = spec["rounds"]
        how = (f"best of {rounds} interleaved rounds" if threads == 1
               else f"best of {rounds} rounds × {args.repeat} passes, one process per library")
        print(f"\n{threads} thread{'s' if threads > 1 else ''}, GFLOP/s ({how}):\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    if mode == "conv":
        print("\nerr: largest |y − ref| / (1 + |ref|) against a direct convolution in double.")
    if notes:
        print("\nNotes (the programs' standard error):\n")
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    main()
