#!/usr/bin/env python3
"""Train the small CNN of issue 6's int8 accuracy target on scikit-learn's bundled 8x8 digits and export it.

Usage:
    python3 scripts/train_digits.py [--epochs 60] [--seed 0]

Needs torch, onnx, onnxruntime and scikit-learn (`pip install scikit-learn`; the digits set ships inside it, no
network). Writes:

    testdata/models/digits_cnn.onnx   the trained network, opset 17, input `input` f32[batch,1,8,8] (pixels / 16,
                                      so in [0, 1]), output `logits` f32[batch,10]; batch is symbolic
    testdata/quant/digits_calib.npz   `input`: 200 training images f32[200,1,8,8], the calibration set
    testdata/quant/digits_eval.npz    `input` f32[n,1,8,8] and `labels` int64[n]: the held-out test split

The split is stratified, 25 % held out (450 of 1797 images), random_state 0; the calibration images are the
first 200 of a seeded permutation of the training split, so they never overlap the evaluation images. The
network (about 14 k parameters, ~60 KB as ONNX):

    Conv(1->16, 3x3, pad 1) + BN + ReLU          8x8
    Conv(16->32, 3x3, pad 1) + BN + ReLU         8x8
    MaxPool 2x2                                  4x4
    Conv(32->32, 3x3, pad 1) + BN, Add (residual from the pool), ReLU
    GlobalAveragePool, Linear(32->10)

Training is deterministic on the CPU: fixed seeds for torch, numpy and the batch order, one thread,
torch.use_deterministic_algorithms(True), and no data augmentation, so re-running reproduces the same weights
(given the same torch version). The legacy TorchScript exporter (dynamo=False) folds every BatchNormalization
into its Conv (eval mode, do_constant_folding), so the graph is Conv/Relu/MaxPool/Add/GlobalAveragePool/
Flatten/Gemm. The script prints the test accuracy of the exported model in ONNX Runtime, the number the
quantization benchmark (scripts/quant_accuracy.py) measures drops against, and fails below 97 %.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "testdata/models/digits_cnn.onnx"
QUANT = ROOT / "testdata/quant"
CALIBRATION_SAMPLES = 200
MIN_ACCURACY = 97.0


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.block = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.relu(x + self.block(x))
        return self.head(torch.flatten(self.pool(x), 1))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean() * 100)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=order).split(64):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: loss {total / len(x):.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seed_everything(args.seed)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, stratify=labels, random_state=0)
    print(f"digits: {len(x_train)} training, {len(x_test)} test images")

    model = DigitsCNN()
    train(model, torch.from_numpy(x_train), torch.from_numpy(y_train), args.epochs, args.seed)
    model.eval()
    with torch.no_grad():
        torch_accuracy = accuracy(model(torch.from_numpy(x_test)).numpy(), y_test)

    MODEL.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, torch.from_numpy(x_test[:1]), str(MODEL), opset_version=17, dynamo=False, do_constant_folding=True,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx.checker.check_model(onnx.load(str(MODEL)), full_check=True)

    QUANT.mkdir(parents=True, exist_ok=True)
    calibration = x_train[np.random.default_rng(args.seed).permutation(len(x_train))[:CALIBRATION_SAMPLES]]
    np.savez(QUANT / "digits_calib.npz", input=np.ascontiguousarray(calibration))
    np.savez(QUANT / "digits_eval.npz", input=np.ascontiguousarray(x_test), labels=y_test)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    ort_accuracy = accuracy(session.run(["logits"], {"input": x_test})[0], y_test)
    nodes = ", ".join(sorted({node.op_type for node in onnx.load(str(MODEL)).graph.node}))
    print(f"wrote {MODEL.relative_to(ROOT)} ({MODEL.stat().st_size} bytes; ops {nodes}), "
          f"{(QUANT / 'digits_calib.npz').relative_to(ROOT)}, {(QUANT / 'digits_eval.npz').relative_to(ROOT)}")
    print(f"test accuracy: torch {torch_accuracy:.2f} %, ONNX Runtime {ort_accuracy:.2f} % "
          f"({int(round(ort_accuracy * len(y_test) / 100))}/{len(y_test)})")
    if ort_accuracy < MIN_ACCURACY:
        raise SystemExit(f"test accuracy {ort_accuracy:.2f} % is below {MIN_ACCURACY} %")


if __name__ == "__main__":
    main()
