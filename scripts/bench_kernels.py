#!/usr/bin/env python3
"""Benchmark our CKernels against the field's libraries (Debian packages) on the shapes onnxc's models produce, at
1 and 2 threads, in GFLOP/s. Not part of `swift test`.

Usage:
    python3 scripts/bench_kernels.py [--threads 1,2] [--repeat 3] [--install]
    python3 scripts/bench_kernels.py --conv [--threads 1,2] [--repeat 3] [--install] [--layer NAME ...]
    python3 scripts/bench_kernels.py --int8 [--threads 1,2] [--repeat 3] [--install] [--layer NAME ...]
    python3 scripts/bench_kernels.py --int8-dot
    [--seconds S] (the first three modes)

GEMM (default): scripts/bench_kernels/bench_gemm.c, our kernel against OpenBLAS, BLIS and oneDNN's sgemm.
--conv: scripts/bench_kernels/bench_conv.c, our channels-last and channels-first convolutions against XNNPACK's
NHWC convolution and oneDNN's convolution primitive, bias and ReLU fused in all; --layer keeps the layers whose
name contains NAME (repeatable).
--int8: the same layers quantized (bench_conv --int8), in GOP/s: our quantized kernels on the AVX-512 VNNI and AVX2
paths, our float kernel for scale, XNNPACK's qc8 convolution, oneDNN's int8 primitive, and oneDNN capped at AVX2
(DNNL_MAX_CPU_ISA=AVX2, always in a process of its own: the cap must be set before oneDNN's first call); the err
columns are the largest difference from our scalar path in output units.
--int8-dot: scripts/bench_kernels/bench_int8_dot.c, the inner loops an int8 kernel can use, alone, on one core.

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
    "int8": {
        "source": ["bench_conv.c", "bench_conv_libs.c"],
        "packages": ["libxnnpack-dev", "libdnnl-dev"],
        "libraries": ["ours", "xnnpack", "dnnl", "dnnl-avx2"],
        "thread_variables": ["ONNXC_NUM_THREADS", "OMP_NUM_THREADS"],
        "rounds": 3,
    },
    "int8-dot": {
        "source": ["bench_int8_dot.c"],
        "packages": [],
        "libraries": [],
        "thread_variables": [],
        "rounds": 5,
    },
}


def build(mode: str) -> Path:
    """Compiles the mode's benchmark with every C kernel into .build/bench_kernels/<mode>."""
    OUT.mkdir(parents=True, exist_ok=True)
    binary = OUT / mode
    compiler = os.environ.get("CC") or shutil.which("clang") or "cc"
    sources = [str(ROOT / "scripts/bench_kernels" / name) for name in MODES[mode]["source"]]
    if mode != "int8-dot":
        sources += sorted(glob.glob(str(KERNELS / "*.c")))
    # CK_CFLAGS: extra flags for an A/B build, e.g. -DCK_CONV_A_BLOCK_BYTES=1000000000 to turn a threshold off.
    extra = os.environ.get("CK_CFLAGS", "").split()
    subprocess.run([compiler, *KERNEL_FLAGS, *extra, "-I", str(KERNELS / "include"), *sources, "-o", str(binary),
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
    parser.add_argument("--int8", action="store_true", help="quantized convolutions")
    parser.add_argument("--int8-dot", action="store_true", help="the int8 inner loops alone")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the libraries above one thread")
    parser.add_argument("--seconds", type=float, help="least seconds of calls per timing round (BENCH_SECONDS)")
    parser.add_argument("--layer", action="append", default=[], help="--conv: layers whose name contains this")
    args = parser.parse_args()
    mode = "int8-dot" if args.int8_dot else "int8" if args.int8 else "conv" if args.conv else "gemm"
    spec = MODES[mode]
    if args.install:
        subprocess.run(["apt-get", "install", "-y", "-qq", *spec["packages"]], check=True)
    binary = build(mode)
    if mode == "int8-dot":
        output = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.strip().splitlines()
        print("\n1 thread, the register tile alone (K = 512, operands in L1), best of 5 rounds:\n")
        print("| " + " | ".join(output[0].split("\t")) + " |")
        print("|---|---|---|")
        for line in output[1:]:
            print("| " + " | ".join(line.split("\t")) + " |")
        return
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
            prefix = [str(binary)] + (["--int8"] if mode == "int8" else [])
            return prefix + (["--libs", library] if library else []) + args.layer

        if threads == 1 and mode == "int8":
            # oneDNN capped at AVX2 cannot share a process with the uncapped one.
            runs = [command("ours,xnnpack,dnnl"), command("dnnl-avx2")]
        elif threads == 1:
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
        unit = "GOP/s" if mode == "int8" else "GFLOP/s"
        print(f"\n{threads} thread{'s' if threads > 1 else ''}, {unit} ({how}):\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    if mode == "conv":
        print("\nerr: largest |y − ref| / (1 + |ref|) against a direct convolution in double.")
    if mode == "int8":
        print("\nerr: largest |y − ours| in output units against our scalar path (TFLite's requantization).")
    if notes:
        print("\nNotes (the programs' standard error):\n")
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    main()
