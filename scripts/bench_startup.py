#!/usr/bin/env python3
"""Process start-up of one or more onnxc binaries, interleaved so that a noisy host affects them alike.

    python3 scripts/bench_startup.py --onnxc OLD --onnxc NEW [--runs 40] -- run model.oxc --input x=x.npy --output-dir out

Each round spawns every binary once with the same arguments (after `--`) and times spawn to exit; prints the median
and minimum per binary. Used for the start-up numbers in docs/benchmarks.md (bench_vs_ort.py measures the start of
one binary against ONNX Runtime's session; this compares builds of onnxc with each other).
"""
import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnxc", action="append", required=True, help="a binary to time (repeat to compare)")
    parser.add_argument("--runs", type=int, default=40, help="rounds; each spawns every binary once")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="-- then the onnxc arguments")
    args = parser.parse_args()
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    times: dict[str, list[float]] = {binary: [] for binary in args.onnxc}
    for _ in range(args.runs):
        for binary in args.onnxc:
            start = time.perf_counter()
            done = subprocess.run([binary] + arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = (time.perf_counter() - start) * 1e3
            if done.returncode != 0:
                sys.exit(f"{binary} {' '.join(arguments)}: exit {done.returncode}: {done.stderr.decode().strip()}")
            times[binary].append(elapsed)
    for binary, values in times.items():
        print(f"{binary}: median {statistics.median(values):.2f} ms, min {min(values):.2f} ms over {len(values)} runs")


if __name__ == "__main__":
    main()
