#!/usr/bin/env python3
"""Benchmark single-precision GEMM on the shapes onnxc's models produce: our CKernels kernel against OpenBLAS,
BLIS and oneDNN (Debian packages), at 1 and 2 threads, in GFLOP/s. Not part of `swift test`.

Usage:
    python3 scripts/bench_kernels.py [--threads 1,2] [--repeat 3] [--install]

Builds scripts/bench_kernels/bench_gemm.c with gcc into .build/bench_kernels/gemm (our kernel compiled in; the
libraries are dlopen'ed at run time, and a missing one is skipped; --install first runs
`apt-get install libopenblas-dev libblis-dev libdnnl-dev`: the product itself needs none of them), runs it once per
thread count with every library's thread variable set, and prints markdown tables. At one thread the libraries
run interleaved shape by shape in one process, so load from other processes hits them alike; at more, each
library runs in its own process (pools that spin after a call would steal the next library's cores). Each cell
is the best of 5 rounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".build/bench_kernels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the libraries above one thread")
    args = parser.parse_args()
    if args.install:
        subprocess.run(["apt-get", "install", "-y", "-qq", "libopenblas-dev", "libblis-dev", "libdnnl-dev"], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    binary = OUT / "gemm"
    subprocess.run(["gcc", "-O2", "-I", str(ROOT / "Sources/CKernels/include"), str(ROOT / "scripts/bench_kernels/bench_gemm.c"),
                    str(ROOT / "Sources/CKernels/ckernels.c"), "-o", str(binary), "-ldl", "-lpthread", "-lm"], check=True)
    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ)
        for variable in ("ONNXC_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_NUM_THREADS"):
            env[variable] = str(threads)
        if threads == 1:
            runs = [[str(binary)]]
        else:
            # One process per library: OpenMP and OpenBLAS workers spin after each call and would take the cores
            # the next library in an interleaved run needs.
            # The sequence runs --repeat times and each cell keeps its best, so every library gets a chance at a
            # quiet moment of a shared machine.
            runs = [[str(binary), lib] for _ in range(args.repeat) for lib in ("ours", "openblas", "blis", "dnnl")]
        tables = [subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines() for run in runs]
        header = tables[0][0].split("\t")
        rows = [line.split("\t") for line in tables[0][1:]]
        for table in tables[1:]:
            for row, line in zip(rows, table[1:]):
                cells = line.split("\t")
                for i in range(4, len(cells) - 1):
                    if cells[i] != "-" and (row[i] == "-" or float(cells[i]) > float(row[i])):
                        row[i] = cells[i]
                row[-1] = f"{max(float(row[-1]), float(cells[-1])):.1e}"
        how = "best of 5 interleaved rounds" if threads == 1 else f"best of 5 rounds × {args.repeat} passes, one process per library"
        print(f"\n{threads} thread{'s' if threads > 1 else ''}, GFLOP/s ({how}):\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
