"""Shared by scripts/quant_accuracy.py and scripts/bench_int8.py: ONNX Runtime's own static quantizer with the
settings issue 6 compares against, ORT sessions as the benchmarks run them, and onnxc commands that may fail
without stopping a benchmark (a failed step becomes a table cell, the other rows still run).

ONNX Runtime's quantizer needs `ml_dtypes` (`pip install ml_dtypes`), which onnxruntime does not install itself.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

# What quantize_static does when called with nothing but a model and a data reader (onnxruntime 1.32), printed
# next to the results so a reader knows that the ORT row compared against is not ORT's out-of-the-box setting.
ORT_DEFAULTS = ("quantize_static defaults: QDQ format, per_channel=False (per-tensor weights), activations QInt8, "
                "weights QInt8 (WeightSymmetric=True), ActivationSymmetric=False, reduce_range=False, MinMax calibration")
# The setting issue 6 measures against: the scheme onnxc uses by default (weights int8 symmetric per output
# channel, activations 8-bit asymmetric per tensor).
ORT_ISSUE_SETTING = "QDQ, per_channel=True, activations QUInt8, weights QInt8"

METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}


class NpzReader(CalibrationDataReader):
    """Feeds calibration samples (axis 0 of every array) to ORT's calibrator, `batch` samples per run."""

    def __init__(self, feeds: dict[str, np.ndarray], batch: int) -> None:
        self.feeds, self.batch = feeds, batch
        self.count = min(len(a) for a in feeds.values())
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.count:
            return None
        start, self.position = self.position, min(self.position + self.batch, self.count)
        return {name: np.ascontiguousarray(a[start:self.position]) for name, a in self.feeds.items()}

    def rewind(self) -> None:
        self.position = 0


def ort_quantize(model: Path, out: Path, feeds: dict[str, np.ndarray], *, batch: int, method: str = "minmax",
                 defaults: bool = False, percentile: float | None = None) -> None:
    """ORT's QDQ int8 model of `model`: the issue's setting, or (defaults=True) quantize_static's own defaults."""
    extra = {"CalibPercentile": percentile} if method == "percentile" and percentile is not None else {}
    reader = NpzReader(feeds, batch)
    if defaults:
        quantize_static(str(model), str(out), reader, calibrate_method=METHODS[method], extra_options=extra)
    else:
        quantize_static(str(model), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=METHODS[method], extra_options=extra)


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU session as the benchmarks time ORT: ORT_ENABLE_ALL (QDQ groups become ORT's integer kernels),
    intra_op_num_threads = threads, inter_op 1."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class Outcome:
    """One onnxc command: its stdout when it succeeded, else `error`, one line for a table cell."""

    ok: bool
    stdout: str = ""
    error: str = ""

    @property
    def cell(self) -> str:
        return f"failed: {self.error}".replace("|", "\\|")


def first_error_line(stderr: str) -> str:
    """The line of stderr that says what went wrong: the first one mentioning an error (a progress bar may come
    before it), else the first non-empty one."""
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "no message")


def run_onnxc(arguments: list[str], timeout: float) -> Outcome:
    """Run one onnxc command; a missing binary, a non-zero exit or a timeout become a failed Outcome."""
    try:
        run = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as error:
        return Outcome(False, error=str(error))
    except subprocess.TimeoutExpired:
        return Outcome(False, error=f"timed out after {timeout:.0f} s: {' '.join(arguments[1:3])}")
    if run.returncode != 0:
        return Outcome(False, error=f"{first_error_line(run.stderr)} (exit {run.returncode})")
    return Outcome(True, stdout=run.stdout)
