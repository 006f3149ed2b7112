#!/usr/bin/env python3
"""Recurrent models against ONNX Runtime in the same run: float LSTM and GRU, and -O int8-dynamic against ORT's
quantize_dynamic (which turns LSTM into its DynamicQuantizeLSTM contrib op and leaves GRU in float).

ORT's onnxruntime.quantization imports ml_dtypes, which `pip install onnxruntime` does not bring: `pip install ml_dtypes`.

Usage:
    python3 scripts/bench_recurrent.py --onnxc .build/release/onnxc [--steps 100] [--input-size 128] [--hidden 256]
                                       [--layers 2] [--threads 2] [--runs 100] [--warmup 20] [--rounds 3]
                                       [--markdown FILE] [--work DIR]

For each cell (LSTM, GRU) the script writes a stack of --layers single-direction layers (random weights scaled
by 1/sqrt(fan-in), as a trained layer's; input `x` f32[steps, 1, input-size]; output the last layer's Y), then:
  - ORT fp32: the model as is; ORT int8: onnxruntime.quantization.quantize_dynamic (QInt8 weights, its defaults);
  - onnxc fp32: `onnxc compile MODEL -o cell.oxc`; onnxc int8: `onnxc compile MODEL -O int8-dynamic -o cell_int8.oxc`.
Latency, the four variants alternating in --rounds rounds: a new ORT session (CPU EP, ORT_ENABLE_ALL,
intra_op_num_threads = --threads) with --warmup untimed and --runs timed runs, then `onnxc bench X.oxc --json`
(medians of the rounds' medians). Accuracy: the largest |Y − Y_fp32| of each int8 variant against ORT fp32 on one
seeded input (hidden states lie in (−1, 1)). Sizes: file bytes. Never part of `swift test`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from bench_vs_ort import machine, onnxc_bench, ort_session, time_ort

GATES = {"LSTM": 4, "GRU": 3}


def build(cell: str, steps: int, inputs: int, hidden: int, layers: int, path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes, initializers, x, width = [], [], "x", inputs
    for layer in range(layers):
        g = GATES[cell]
        w = (rng.standard_normal((1, g * hidden, width)) / np.sqrt(width)).astype(np.float32)
        r = (rng.standard_normal((1, g * hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
        b = (rng.standard_normal((1, 2 * g * hidden)) * 0.1).astype(np.float32)
        names = [f"W{layer}", f"R{layer}", f"B{layer}"]
        initializers += [numpy_helper.from_array(a, n) for a, n in zip((w, r, b), names)]
        nodes.append(helper.make_node(cell, [x] + names, [f"Y{layer}"], f"{cell.lower()}{layer}", hidden_size=hidden))
        initializers.append(numpy_helper.from_array(np.array([1], np.int64), f"axis{layer}"))
        nodes.append(helper.make_node("Squeeze", [f"Y{layer}", f"axis{layer}"], [f"S{layer}"]))
        x, width = f"S{layer}", hidden
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, cell.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, inputs])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [steps, 1, hidden])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def onnxc(arguments: list[str]) -> str:
    run = subprocess.run(arguments, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:3])}: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    return run.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown")
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_recurrent_"))
    work.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(1).standard_normal((args.steps, 1, args.input_size)).astype(np.float32)
    np.save(work / "x.npy", x)
    feeds = {"x": x}
    bench_inputs = ["--input", f"x={work / 'x.npy'}"]

    rows = []
    for cell in GATES:
        name = cell.lower()
        model = work / f"{name}.onnx"
        build(cell, args.steps, args.input_size, args.hidden, args.layers, model)
        ort_int8 = work / f"{name}_ort_int8.onnx"
        quantize_dynamic(str(model), str(ort_int8), weight_type=QuantType.QInt8)
        fp32_oxc, int8_oxc = work / f"{name}.oxc", work / f"{name}_int8.oxc"
        onnxc([args.onnxc, "compile", str(model), "-o", str(fp32_oxc)])
        onnxc([args.onnxc, "compile", str(model), "-O", "int8-dynamic", "-o", str(int8_oxc)])
        times: dict[str, list[float]] = {"ort": [], "ort_int8": [], "onnxc": [], "onnxc_int8": []}
        for _ in range(args.rounds):
            for key, path in (("ort", model), ("ort_int8", ort_int8)):
                session = ort_session(path, args.threads)
                for _ in range(args.warmup):
                    session.run(None, feeds)
                times[key].append(statistics.median(time_ort(session, feeds, args.runs)))
            for key, path in (("onnxc", fp32_oxc), ("onnxc_int8", int8_oxc)):
                times[key].append(onnxc_bench(args.onnxc, path, bench_inputs, args.runs, args.warmup, args.threads)["median_ms"])
        reference = ort_session(model, args.threads).run(None, feeds)[0]
        ort_q = ort_session(ort_int8, args.threads).run(None, feeds)[0]
        outputs = work / f"{name}_out"
        onnxc([args.onnxc, "run", str(int8_oxc), "--output-dir", str(outputs)] + bench_inputs)
        ours = np.load(outputs / "y.npy")
        ms = {k: statistics.median(v) for k, v in times.items()}
        ort_ops = sorted({n.op_type for n in onnx.load(str(ort_int8)).graph.node if n.op_type in ("LSTM", "GRU", "DynamicQuantizeLSTM")})
        rows.append((cell, ms, float(np.abs(ours - reference).max()), float(np.abs(ort_q - reference).max()),
                     model.stat().st_size, int8_oxc.stat().st_size, ort_int8.stat().st_size, ", ".join(ort_ops)))

    shape = f"{args.layers} layers, {args.steps} steps, batch 1, input {args.input_size}, hidden {args.hidden}"
    lines = [f"Recurrent models ({shape}), {args.threads} threads, {datetime.date.today()}, {machine()}:", "",
             "| model | ORT fp32 ms | onnxc fp32 ms | ratio | ORT int8 ms (its op) | onnxc int8 ms | ratio | max error int8: onnxc / ORT | "
             "size int8 / fp32: onnxc / ORT |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cell, ms, ours, theirs, fp32_bytes, oxc_bytes, ort_bytes, ort_ops in rows:
        lines.append(f"| {cell} | {ms['ort']:.3f} | {ms['onnxc']:.3f} | {ms['onnxc'] / ms['ort']:.2f} | {ms['ort_int8']:.3f} ({ort_ops}) | "
                     f"{ms['onnxc_int8']:.3f} | {ms['onnxc_int8'] / ms['ort_int8']:.2f} | {ours:.4f} / {theirs:.4f} | "
                     f"{oxc_bytes / fp32_bytes:.3f} / {ort_bytes / fp32_bytes:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
