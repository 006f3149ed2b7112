#!/usr/bin/env python3
"""Issue 7's accuracy target: the digits CNN pruned at 0.25, onnxc with and without least-squares refit, against
Torch-Pruning's magnitude pruner on the same network, none of them fine-tuned.

    pip install torch torch-pruning      # not needed by the product or CI
    python3 scripts/prune_digits.py --onnxc .build/release/onnxc [--ratio 0.25]

The network is testdata/models/digits_cnn.onnx (scripts/train_digits.py; its BatchNormalizations are folded into
the convolutions by the exporter). For Torch-Pruning the script rebuilds it as a torch module with the ONNX
weights (checked: same logits as ONNX Runtime to 1e-5), prunes it with tp.pruner.MagnitudePruner (L1 and L2,
per-layer ratio, the classifier ignored — the same groups onnxc forms) and evaluates it in torch. onnxc's
models are evaluated by `onnxc prune --eval-data`, and run again in ONNX Runtime here. Accuracy is top-1 on the
450 held-out images of testdata/quant/digits_eval.npz; calibration uses the 200 images of digits_calib.npz.
"""
import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch_pruning as tp
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "testdata/models/digits_cnn.onnx"
CALIB = ROOT / "testdata/quant/digits_calib.npz"
EVAL = ROOT / "testdata/quant/digits_eval.npz"


class FoldedDigitsCNN(nn.Module):
    """scripts/train_digits.py's DigitsCNN with each BatchNormalization folded into the convolution before it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.block = nn.Conv2d(32, 32, 3, padding=1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv2(torch.relu(self.conv1(x)))), 2)
        x = torch.relu(x + self.block(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def load_torch() -> FoldedDigitsCNN:
    graph = onnx.load(str(MODEL)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    layers = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    model = FoldedDigitsCNN().eval()
    for module, node in zip([model.conv1, model.conv2, model.block, model.head], layers):
        module.weight.data = torch.from_numpy(weights[node.input[1]].copy())
        module.bias.data = torch.from_numpy(weights[node.input[2]].copy())
    return model


def ort_accuracy(path: Path, x: np.ndarray, labels: np.ndarray) -> float:
    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return float((logits.argmax(1) == labels).mean())


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", default=str(ROOT / ".build/release/onnxc"))
    parser.add_argument("--ratio", type=float, default=0.25)
    args = parser.parse_args()
    data = np.load(EVAL)
    x, labels = data["input"], data["labels"]
    base = ort_accuracy(MODEL, x, labels)

    reference = load_torch()
    with torch.no_grad():
        logits = reference(torch.from_numpy(x)).numpy()
    onnx_logits = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(logits - onnx_logits).max() < 1e-4, "the torch rebuild does not match the ONNX model"
    full_params = parameters(reference)

    rows = [("unpruned", full_params, base)]
    for p in (1, 2):
        model = load_torch()
        pruner = tp.pruner.MagnitudePruner(model, torch.from_numpy(x[:1]), importance=tp.importance.MagnitudeImportance(p=p),
                                           pruning_ratio=args.ratio, ignored_layers=[model.head])
        pruner.step()
        with torch.no_grad():
            accuracy = float((model(torch.from_numpy(x)).numpy().argmax(1) == labels).mean())
        rows.append((f"Torch-Pruning {tp.__version__} MagnitudePruner L{p}", parameters(model), accuracy))

    with tempfile.TemporaryDirectory() as work:
        for criterion in ("l1", "l2"):
            for refit in (False, True):
                out = Path(work) / f"{criterion}_{refit}.onnx"
                command = [args.onnxc, "prune", str(MODEL), "--ratio", str(args.ratio), "--criterion", criterion,
                           "--eval-data", str(EVAL), "--json", "-o", str(out)] + (["--calibration-data", str(CALIB)] if refit else [])
                report = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)["pruning"]
                # The same file in ONNX Runtime must give what onnxc measured.
                accuracy = ort_accuracy(out, x, labels)
                assert abs(accuracy - report["accuracy_after"]) < 1e-9, (accuracy, report["accuracy_after"])
                weights = sum(numpy_helper.to_array(i).size for i in onnx.load(str(out)).graph.initializer
                              if i.data_type == onnx.TensorProto.FLOAT)
                rows.append((f"onnxc prune --criterion {criterion}" + (" --calibration-data (least-squares refit)" if refit else ""),
                             weights, accuracy))

    print(f"digits CNN, ratio {args.ratio}, no fine-tuning; top-1 on {len(labels)} held-out images\n")
    print("| method | params | accuracy | change |")
    print("|---|---|---|---|")
    for name, params, accuracy in rows:
        print(f"| {name} | {params} | {100 * accuracy:.2f} % | {100 * (accuracy - base):+.2f} |")


if __name__ == "__main__":
    main()
