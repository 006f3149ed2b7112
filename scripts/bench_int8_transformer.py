#!/usr/bin/env python3
"""int8 on a transformer encoder: onnxc's `-O int8` and `-O int8-dynamic` against ONNX Runtime's static QDQ and
dynamic quantizers of the same model, in the same run — latency, size, and error against the fp32 model.

ORT's onnxruntime.quantization imports ml_dtypes, which `pip install onnxruntime` does not bring: `pip install ml_dtypes`.

Usage:
    python3 scripts/bench_int8_transformer.py --onnxc .build/release/onnxc [--model testdata/exported/bert_tiny.onnx]
                                              [--seq 128] [--vocab 1000] [--calibration-samples 8] [--eval-samples 8]
                                              [--threads 2] [--runs 300] [--warmup 20] [--rounds 3] [--seed 0]
                                              [--markdown FILE] [--work DIR]

The model takes `input_ids` and `attention_mask` (int64 [batch, seq]); the script makes seeded samples of --seq token
ids below --vocab (an all-ones mask for calibration; the evaluation samples mask a random tail of each sequence)
into calib.npz and then builds:
  - ORT fp32: the model;
  - ORT int8 static: quant_pre_process, then quantize_static (QDQ, per_channel=True, activations QUInt8, weights
    QInt8, MinMax) on the calibration samples one at a time;
  - ORT int8 dynamic: quant_pre_process, then quantize_dynamic (weights QInt8);
  - onnxc fp32 / int8 / int8-dynamic: `onnxc compile MODEL [-O int8 --calibration-data calib.npz | -O int8-dynamic]
    --input-shape input_ids=1xSEQ --input-shape attention_mask=1xSEQ`.
Latency alternates the six in --rounds rounds: ORT a session per round (CPU EP, ORT_ENABLE_ALL, --threads
intra-op), --warmup untimed and --runs timed runs on the first evaluation sample; onnxc `onnxc bench X.oxc
--threads N --runs R --warmup W --json`. Error: over the evaluation samples, the largest |y − y_fp32| of each output
relative to that output's largest |y_fp32| (ORT fp32 as the reference). Sizes are the model files' bytes.
Never part of `swift test`: timings on shared machines are noise unless the engines run side by side.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from bench_int8 import time_ort
from bench_vs_ort import machine
from quant_bits import ort_quantize, ort_session, run_onnxc

ROOT = Path(__file__).resolve().parent.parent


def samples(rng: np.random.Generator, count: int, seq: int, vocab: int, masked: bool) -> list[dict[str, np.ndarray]]:
    result = []
    for _ in range(count):
        ids = rng.integers(0, vocab, (1, seq)).astype(np.int64)
        mask = np.ones((1, seq), np.int64)
        if masked:
            mask[:, int(rng.integers(seq // 2, seq + 1)):] = 0
        result.append({"input_ids": ids, "attention_mask": mask})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "testdata/exported/bert_tiny.onnx")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=1000, help="token ids are drawn below this")
    parser.add_argument("--calibration-samples", type=int, default=8)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--work", type=Path, help="keep the models and samples here (default: a temporary folder)")
    parser.add_argument("--markdown", type=Path, help="also write the table, the command line, date and versions to this file")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="onnxc_int8_transformer_"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    calibration = samples(rng, args.calibration_samples, args.seq, args.vocab, masked=False)
    evaluation = samples(rng, args.eval_samples, args.seq, args.vocab, masked=True)
    np.savez(work / "calib.npz", **{k: np.concatenate([s[k] for s in calibration]) for k in calibration[0]})
    for i, s in enumerate(evaluation):
        for k, v in s.items():
            np.save(work / f"eval_{i}_{k}.npy", v)

    pre = work / "model_pre.onnx"
    quant_pre_process(str(args.model), str(pre))
    ort_static, ort_dynamic = work / "ort_static.onnx", work / "ort_dynamic.onnx"
    ort_quantize(pre, ort_static, {k: np.concatenate([s[k] for s in calibration]) for k in calibration[0]}, batch=1)
    quantize_dynamic(str(pre), str(ort_dynamic), weight_type=QuantType.QInt8)

    shapes = ["--input-shape", f"input_ids=1x{args.seq}", "--input-shape", f"attention_mask=1x{args.seq}"]
    onnxc_variants = {"onnxc fp32": [], "onnxc int8": ["-O", "int8", "--calibration-data", str(work / "calib.npz")],
                      "onnxc int8-dynamic": ["-O", "int8-dynamic"]}
    files = {"ORT fp32": args.model, "ORT int8 static (QDQ)": ort_static, "ORT int8 dynamic": ort_dynamic}
    failures: dict[str, str] = {}
    for name, options in onnxc_variants.items():
        oxc = work / (name.replace(" ", "_") + ".oxc")
        outcome = run_onnxc([args.onnxc, "compile", str(args.model), *options, *shapes, "-o", str(oxc)], args.timeout)
        if outcome.ok:
            files[name] = oxc
        else:
            failures[name] = outcome.cell

    feeds = evaluation[0]
    inputs = ["--input", f"input_ids={work / 'eval_0_input_ids.npy'}", "--input", f"attention_mask={work / 'eval_0_attention_mask.npy'}"]
    times: dict[str, list[float]] = {name: [] for name in files}
    for _ in range(args.rounds):
        for name, path in files.items():
            if path.suffix == ".onnx":
                times[name].append(statistics.median(time_ort(ort_session(path, args.threads), feeds, args.warmup, args.runs)))
                continue
            outcome = run_onnxc([args.onnxc, "bench", str(path), *inputs, "--threads", str(args.threads), "--runs", str(args.runs),
                                 "--warmup", str(args.warmup), "--json"], args.timeout)
            if outcome.ok:
                times[name].append(json.loads(outcome.stdout.strip().splitlines()[-1])["median_ms"])
            else:
                failures[name] = outcome.cell

    reference = ort_session(args.model, args.threads)
    outputs = [o.name for o in reference.get_outputs()]
    errors: dict[str, list[float]] = {}
    for name, path in files.items():
        if name in failures:
            continue
        worst = [0.0] * len(outputs)
        session = ort_session(path, args.threads) if path.suffix == ".onnx" else None
        for i, s in enumerate(evaluation):
            expected = reference.run(None, s)
            if session:
                got = session.run(None, s)
            else:
                out = work / f"out_{name.replace(' ', '_')}"
                outcome = run_onnxc([args.onnxc, "run", str(path), "--input", f"input_ids={work / f'eval_{i}_input_ids.npy'}",
                                     "--input", f"attention_mask={work / f'eval_{i}_attention_mask.npy'}", "--output-dir", str(out)], args.timeout)
                if not outcome.ok:
                    failures[name] = outcome.cell
                    break
                got = [np.load(out / f"{o}.npy") for o in outputs]
            for k, (a, b) in enumerate(zip(got, expected)):
                worst[k] = max(worst[k], float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30)))
        errors[name] = worst

    fp32_bytes = args.model.stat().st_size
    lines = [f"| variant | size MB | size / fp32 | median ms per round | max error ({' / '.join(outputs)}) |", "| --- | --- | --- | --- | --- |"]
    for name, path in files.items():
        if name in failures:
            lines.append(f"| {name} | {failures[name]} | — | — | — |")
            continue
        size = path.stat().st_size
        lines.append(f"| {name} | {size / 1e6:.2f} | {size / fp32_bytes:.3f} | {' / '.join(f'{t:.3f}' for t in times[name])} | "
                     f"{' / '.join(f'{e:.4f}' for e in errors[name])} |")
    for name, cell in failures.items():
        if name not in files:
            lines.append(f"| {name} | {cell} | — | — | — |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        command = " ".join(shlex.quote(a) for a in ["python3", "scripts/bench_int8_transformer.py", *sys.argv[1:]])
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        args.markdown.write_text(f"`{command}`\n\n{stamp}; ONNX Runtime {ort.__version__}; {args.threads} threads; {args.rounds} rounds of "
                                 f"{args.runs} runs after {args.warmup} warm-up; {machine()}.\n\n{table}\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
