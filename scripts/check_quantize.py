#!/usr/bin/env python3
"""`onnxc quantize` writes standard ONNX that ONNX Runtime runs, with the answers of onnxc's own int8 `.oxc`.

Usage:
    python3 scripts/check_quantize.py --onnxc .build/release/onnxc [--work DIR]

Cases (all shipped in testdata):
  - digits_cnn, static (calibrated on testdata/quant/digits_calib.npz): the QDQ model in ORT and the int8 `.oxc`
    (`onnxc compile -O int8`) must pick the same class on at least 449 of the 450 evaluation images (an image on a
    near-tie may flip by the one requantization rounding step the two are allowed to differ by);
  - digits_cnn and recurrent.onnx (LSTM, GRU, RNN), `--dynamic` / `-O int8-dynamic`: the ONNX output must load and
    run in ORT (CPU EP), and its outputs and the `.oxc`'s must both stay within 5 % of the float model's largest
    output magnitude (the `.oxc` quantizes activations per run, the ONNX output only the weights, for recurrent ops).
Exits 1 on the first failed case after printing every case. Part of scripts/test.sh; needs onnxruntime.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def onnxc(binary: str, *arguments: str) -> None:
    run = subprocess.run([binary, *arguments], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"onnxc {' '.join(arguments[:2])}: {run.stderr.strip()}")


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def oxc_run(binary: str, oxc: Path, name: str, array: np.ndarray, work: Path, outputs: list[str]) -> list[np.ndarray]:
    folder = work / (oxc.stem + "_out")
    np.save(work / (oxc.stem + "_in.npy"), array)
    onnxc(binary, "run", str(oxc), "--input", f"{name}={work / (oxc.stem + '_in.npy')}", "--output-dir", str(folder))
    return [np.load(folder / f"{output}.npy") for output in outputs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="check_quantize_"))
    work.mkdir(parents=True, exist_ok=True)
    failures = []

    digits = ROOT / "testdata/models/digits_cnn.onnx"
    calibration = ROOT / "testdata/quant/digits_calib.npz"
    evaluation = np.load(ROOT / "testdata/quant/digits_eval.npz")["input"]
    onnxc(args.onnxc, "quantize", str(digits), "--calibration-data", str(calibration), "-o", str(work / "digits_qdq.onnx"))
    onnxc(args.onnxc, "compile", str(digits), "-O", "int8", "--calibration-data", str(calibration), "-o", str(work / "digits_int8.oxc"))
    qdq = ort_run(work / "digits_qdq.onnx", {"input": evaluation})[0].argmax(axis=1)
    ours = oxc_run(args.onnxc, work / "digits_int8.oxc", "input", evaluation, work, ["logits"])[0].argmax(axis=1)
    agree = int((qdq == ours).sum())
    print(f"{'ok  ' if agree >= len(qdq) - 1 else 'FAIL'} digits_cnn static: ORT on the QDQ model and the int8 .oxc agree on {agree}/{len(qdq)} images")
    if agree < len(qdq) - 1:
        failures.append("digits static")

    recurrent = ROOT / "testdata/models/recurrent.onnx"
    features = np.random.default_rng(0).standard_normal((5, 2, 12)).astype(np.float32)
    cases = [(digits, "input", evaluation, ["logits"]), (recurrent, "features", features, ["tags", "state", "lstm_c"])]
    for model, name, array, outputs in cases:
        reference = ort_run(model, {name: array})
        onnxc(args.onnxc, "quantize", str(model), "--dynamic", "-o", str(work / f"{model.stem}_dyn.onnx"))
        onnxc(args.onnxc, "compile", str(model), "-O", "int8-dynamic", "-o", str(work / f"{model.stem}_dyn.oxc"))
        for label, results in (("ONNX in ORT", ort_run(work / f"{model.stem}_dyn.onnx", {name: array})),
                               (".oxc", oxc_run(args.onnxc, work / f"{model.stem}_dyn.oxc", name, array, work, outputs))):
            errors = [float(np.abs(r - e).max() / max(float(np.abs(e).max()), 1e-6)) for r, e in zip(results, reference)]
            good = all(e <= 0.05 for e in errors)
            print(f"{'ok  ' if good else 'FAIL'} {model.stem} dynamic, {label}: largest error per output, relative to its magnitude, "
                  + ", ".join(f"{e:.4f}" for e in errors))
            if not good:
                failures.append(f"{model.stem} dynamic {label}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
