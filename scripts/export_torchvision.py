#!/usr/bin/env python3
"""Export torchvision models to ONNX for onnxc's model-level checks and benchmarks.

Usage:
    pip install torch torchvision onnx==1.16.2
    python3 scripts/export_torchvision.py [--out .cache/models] [--opset 17] [NAME ...]

Weights are randomly initialized with a fixed seed (no network access is needed, and the graphs are what
matter), the batch dimension is symbolic (`batch`), and each model is written as OUT/NAME.onnx. These models
are tens of megabytes, so they are not committed; scripts regenerate them when needed. Never needed by CI or
`swift test`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision

# name -> (constructor, input shape). A mix of the layer patterns real CNN exports contain: residual adds,
# depthwise convs, channel shuffles, concats, squeeze-excite, hard-swish, and a transformer encoder.
MODELS = {
    "resnet18": (torchvision.models.resnet18, (1, 3, 224, 224)),
    "resnet50": (torchvision.models.resnet50, (1, 3, 224, 224)),
    "mobilenet_v2": (torchvision.models.mobilenet_v2, (1, 3, 224, 224)),
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, (1, 3, 224, 224)),
    "squeezenet1_1": (torchvision.models.squeezenet1_1, (1, 3, 224, 224)),
    "shufflenet_v2_x0_5": (torchvision.models.shufflenet_v2_x0_5, (1, 3, 224, 224)),
    "densenet121": (torchvision.models.densenet121, (1, 3, 224, 224)),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, (1, 3, 224, 224)),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True), (1, 3, 224, 224)),
    "vit_b_16": (torchvision.models.vit_b_16, (1, 3, 224, 224)),
}


def export(name: str, out: Path, opset: int) -> Path:
    constructor, shape = MODELS[name]
    torch.manual_seed(0)
    model = constructor().eval()
    path = out / f"{name}.onnx"
    torch.onnx.export(
        model, torch.randn(*shape), str(path), opset_version=opset, dynamo=False,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(MODELS), help="models to export (default: all)")
    parser.add_argument("--out", type=Path, default=Path(".cache/models"))
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        if name not in MODELS:
            parser.error(f"unknown model {name}; choose from {', '.join(MODELS)}")
        path = export(name, args.out, args.opset)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
