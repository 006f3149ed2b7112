#!/usr/bin/env python3
"""Issue 6's resnet50 int8 targets: onnxc's int8 .oxc against ONNX Runtime running its own QDQ int8 model of the
same network, in the same run: latency, size, and top-1 agreement with the fp32 model.

ORT's onnxruntime.quantization imports ml_dtypes, which `pip install onnxruntime` does not bring: `pip install ml_dtypes`.

Usage:
    python3 scripts/bench_int8.py --onnxc .build/release/onnxc [--model .cache/models/resnet50.onnx]
                                  [--calibration-images 16] [--calibration-method minmax|percentile|entropy]
                                  [--threads 2] [--runs 30] [--warmup 5] [--rounds 3] [--seed 0]
                                  [--no-ort-preprocess] [--markdown FILE] [--work DIR]

The model is scripts/export_torchvision.py's resnet50 (random weights; input `input` f32[batch,3,224,224], batch
symbolic). The script makes --calibration-images seeded images, f32[N,3,224,224] standard normal noise (what an
ImageNet-normalized image looks like per channel), into calib.npz (key `input`), and then:
  - ORT fp32: the model with its batch fixed to 1 (r50_b1.onnx; ORT's quantizer wants known shapes);
  - ORT int8: onnxruntime.quantization.shape_inference.quant_pre_process on r50_b1.onnx (ORT's recommended
    pre-processing: symbolic shape inference and its graph optimizations; --no-ort-preprocess skips it), then
    quantize_static: QDQ, per_channel=True, activations QUInt8, weights QInt8, calibrated on the same images one
    at a time with MinMax (or --calibration-method);
  - onnxc int8: `onnxc compile MODEL -O int8 --calibration-data calib.npz --input-shape input=1x3x224x224
    [--calibration-method M] -o r50_int8.oxc`;
  - onnxc fp32: `onnxc compile MODEL --input-shape input=1x3x224x224 -o r50_fp32.oxc` (the default -O2).
Latency, alternating the four in --rounds rounds so that load on the machine hits all alike. Each round: a new ORT
InferenceSession (CPU EP, ORT_ENABLE_ALL, intra_op_num_threads = --threads, inter_op 1) for fp32 and then int8,
--warmup untimed runs and --runs timed ones on the first calibration image (ORT ms: the median over all rounds'
runs); then `onnxc bench X.oxc --threads N --runs R --warmup W --json --input input=IMAGE.npy` for fp32 and int8
(the median of the rounds' median_ms).
Ratios (lower is better; the issue's targets in brackets): onnxc int8 / ORT int8 latency [<= 1.0, goal <= 0.8];
int8 .oxc bytes / fp32 .onnx bytes (the original model and its external data) [<= 0.27]. Agreement: for every
calibration image, whether each variant's top-1 class equals ORT fp32's (onnxc's .oxc files run one image per
`onnxc run`, their batch pinned to 1), and the median over images of |logits - fp32 logits| / |fp32 logits|
(random weights make near-ties between classes likely, so top-1 alone can move with little error).

An onnxc command that fails (not built yet, an error, a timeout) fills its cells with "failed: <the first line of
its stderr that mentions an error>" and the script goes on; it then exits with status 1 after printing the table.
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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization.shape_inference import quant_pre_process

from bench_vs_ort import machine, onnx_bytes
from quant_bits import METHODS, ORT_DEFAULTS, ORT_ISSUE_SETTING, Outcome, ort_quantize, ort_session, run_onnxc

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Variant:
    name: str
    size_bytes: int = 0
    times_ms: list[float] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)
    failure: str = ""

    @property
    def latency(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms and not self.failure else None


def fix_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """The model with the first dim of every graph input and output set to `batch` (value_info dropped: its
    symbolic batch would contradict)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in list(fixed.graph.input) + list(fixed.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    del fixed.graph.value_info[:]
    return fixed


def time_ort(session: ort.InferenceSession, feeds: dict, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def oxc_logits(onnxc: str, oxc: Path, images: list[Path], threads: int, out_dir: Path, timeout: float) -> tuple[list[np.ndarray], Outcome]:
    """The logits of each image from one `onnxc run` per image."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logits = []
    for image in images:
        for old in out_dir.glob("*.npy"):
            old.unlink()
        outcome = run_onnxc([onnxc, "run", str(oxc), "--input", f"input={image}", "--output-dir", str(out_dir),
                             "--threads", str(threads)], timeout)
        if not outcome.ok:
            return [], outcome
        written = sorted(out_dir.glob("*.npy"))
        if len(written) != 1:
            return [], Outcome(False, error=f"onnxc run wrote {len(written)} outputs, expected 1")
        logits.append(np.load(written[0]))
    return logits, Outcome(True)


def agreement(variant: Variant, reference: list[np.ndarray]) -> tuple[str, str]:
    if variant.failure or not variant.logits:
        return "—", "—"
    same = sum(int(a.argmax() == b.argmax()) for a, b in zip(variant.logits, reference))
    errors = [float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b)) for a, b in zip(variant.logits, reference)]
    return f"{same}/{len(reference)}", f"{statistics.median(errors):.4f}"


def tables(variants: list[Variant], reference: list[np.ndarray], fp32_onnx_bytes: int) -> list[str]:
    ort_int8 = variants[1].latency
    lines = ["| variant | size MB | size / fp32 .onnx (int8 .oxc ≤ 0.27) | median ms | / ORT int8 (onnxc int8 ≤ 1.0, goal ≤ 0.8) "
             "| top-1 = ORT fp32 | median logit rel. error |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in variants:
        top1, error = agreement(v, reference) if v is not variants[0] else ("—", "—")
        if v.failure and not v.size_bytes:
            lines.append(f"| {v.name} | {v.failure} | — | — | — | — | — |")
            continue
        size = f"{v.size_bytes / 1e6:.2f} | {v.size_bytes / fp32_onnx_bytes:.3f}"
        latency = v.latency
        if latency is None:
            lines.append(f"| {v.name} | {size} | {v.failure} | — | {top1} | {error} |")
            continue
        ratio = f"{latency / ort_int8:.2f}" if ort_int8 else "—"
        lines.append(f"| {v.name} | {size} | {latency:.2f} | {ratio} | {top1} | {error} |")
    ort_fp32, onnxc_fp32, onnxc_int8 = variants[0].latency, variants[2].latency, variants[3].latency
    lines.append("")
    if ort_fp32 and ort_int8:
        lines.append(f"ORT int8 speed-up over ORT fp32: {ort_fp32 / ort_int8:.2f}x.")
    if onnxc_fp32 and onnxc_int8:
        lines.append(f"onnxc int8 speed-up over onnxc fp32: {onnxc_fp32 / onnxc_int8:.2f}x.")
    if onnxc_int8 and ort_int8:
        lines.append(f"onnxc int8 / ORT int8 latency: {onnxc_int8 / ort_int8:.3f} (target ≤ 1.0, goal ≤ 0.8).")
    if variants[3].size_bytes:
        lines.append(f"int8 .oxc / fp32 .onnx size: {variants[3].size_bytes / fp32_onnx_bytes:.3f} (target ≤ 0.27).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True, help="the onnxc binary")
    parser.add_argument("--model", type=Path, default=ROOT / ".cache/models/resnet50.onnx")
    parser.add_argument("--calibration-images", type=int, default=16)
    parser.add_argument("--calibration-method", choices=list(METHODS), help="for both quantizers (default: MinMax for ORT, onnxc's own)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the engines this many times; medians are over all rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ort-preprocess", action="store_true", help="quantize with ORT without quant_pre_process")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per onnxc command")
    parser.add_argument("--work", type=Path, help="keep the models and images here (default: a temporary folder)")
    parser.add_argument("--markdown", type=Path, help="also write the table, the command line, date and versions to this file")
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model}: missing (run scripts/export_torchvision.py resnet50)")

    model = onnx.load(str(args.model))
    name = model.graph.input[0].name
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    pin = "x".join(map(str, [1] + shape))
    failed = False
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(args.seed)
        images = rng.standard_normal((args.calibration_images, *shape), dtype=np.float32)
        calibration = work / "calib.npz"
        np.savez(calibration, **{name: images})
        image_files = []
        for index, image in enumerate(images):
            image_files.append(work / f"image_{index}.npy")
            np.save(image_files[-1], image[None])
        feeds = {name: images[:1]}

        fp32 = work / f"{args.model.stem}_b1.onnx"
        onnx.save(fix_batch(model, 1), str(fp32))
        del model
        source = fp32
        if not args.no_ort_preprocess:
            source = work / f"{args.model.stem}_b1_pre.onnx"
            quant_pre_process(str(fp32), str(source))
        ort_int8 = work / f"{args.model.stem}_ort_int8.onnx"
        method = args.calibration_method or "minmax"
        start = time.perf_counter()
        ort_quantize(source, ort_int8, {name: images}, batch=1, method=method)
        print(f"ORT int8 ({ORT_ISSUE_SETTING}, {method}"
              f"{'' if args.no_ort_preprocess else ', after quant_pre_process'}): {time.perf_counter() - start:.1f} s", flush=True)

        variants = [Variant("ORT fp32 (.onnx, batch 1)", fp32.stat().st_size), Variant("ORT int8 (QDQ .onnx)", ort_int8.stat().st_size),
                    Variant("onnxc fp32 (.oxc, -O2)"), Variant("onnxc int8 (.oxc, -O int8)")]
        oxc_files = {2: work / "r50_fp32.oxc", 3: work / "r50_int8.oxc"}
        method_flag = ["--calibration-method", args.calibration_method] if args.calibration_method else []
        compiles = {2: [args.onnxc, "compile", str(args.model), "--input-shape", f"{name}={pin}", "-o", str(oxc_files[2])],
                    3: [args.onnxc, "compile", str(args.model), "-O", "int8", "--calibration-data", str(calibration),
                        "--input-shape", f"{name}={pin}"] + method_flag + ["-o", str(oxc_files[3])]}
        for index, arguments in compiles.items():
            start = time.perf_counter()
            outcome = run_onnxc(arguments, args.timeout)
            if outcome.ok:
                variants[index].size_bytes = oxc_files[index].stat().st_size
                print(f"{variants[index].name}: compiled in {time.perf_counter() - start:.1f} s", flush=True)
                variants[index].logits, outcome = oxc_logits(args.onnxc, oxc_files[index], image_files, args.threads,
                                                             work / f"out_{index}", args.timeout)
            if not outcome.ok:
                variants[index].failure, failed = outcome.cell, True
                print(f"{variants[index].name}: {outcome.cell}", flush=True)

        for variant, path in zip(variants[:2], (fp32, ort_int8)):
            session = ort_session(path, args.threads)
            variant.logits = [session.run(None, {name: image[None]})[0][0] for image in images]
            del session
        reference = variants[0].logits
        variants[2].logits = [a[0] for a in variants[2].logits]
        variants[3].logits = [a[0] for a in variants[3].logits]

        for round_index in range(args.rounds):
            for variant, path in zip(variants[:2], (fp32, ort_int8)):
                session = ort_session(path, args.threads)
                variant.times_ms += time_ort(session, feeds, args.warmup, args.runs)
                del session
            for index in (2, 3):
                variant = variants[index]
                if variant.failure:
                    continue
                outcome = run_onnxc([args.onnxc, "bench", str(oxc_files[index]), "--json", "--threads", str(args.threads),
                                     "--runs", str(args.runs), "--warmup", str(args.warmup), "--input", f"{name}={image_files[0]}"],
                                    args.timeout)
                if not outcome.ok:
                    variant.failure, failed = outcome.cell, True
                    continue
                variant.times_ms.append(json.loads(outcome.stdout.strip().splitlines()[-1])["median_ms"])
            print(f"round {round_index + 1}: " + ", ".join(f"{v.name} {v.latency:.2f} ms" if v.latency else f"{v.name} —"
                                                          for v in variants), flush=True)

    lines = tables(variants, reference, onnx_bytes(args.model, onnx.load(str(args.model), load_external_data=False)))
    print()
    print("\n".join(lines))
    if args.markdown:
        command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix()] + sys.argv[1:])
        header = [f"`python3 {command}`", "",
                  f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; ONNX Runtime {ort.__version__} "
                  f"(CPU EP, ORT_ENABLE_ALL); {args.threads} threads; {args.rounds} rounds of {args.runs} runs after "
                  f"{args.warmup} warm-up; {args.calibration_images} calibration images; {machine()}.", "",
                  f"ORT int8: {ORT_ISSUE_SETTING}, {method}"
                  f"{'' if args.no_ort_preprocess else ', after quant_pre_process'} (ORT {ORT_DEFAULTS}).", ""]
        args.markdown.write_text("\n".join(header + lines) + "\n")
        print(f"wrote {args.markdown}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
