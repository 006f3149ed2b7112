#!/usr/bin/env python3
"""Export torchvision models and a small BERT-style encoder to ONNX for onnxc's model-level checks.

Usage:
    pip install torch torchvision onnx==1.16.2
    python3 scripts/export_torchvision.py [--out .cache/models] [--opset 17] [NAME ...]

Weights are random with a fixed seed, scaled so activations stay alive through the network (`randomize`):
no network access is needed, and outputs are far from zero so comparisons mean something. The batch dimension is symbolic (`batch`), and each model is written as OUT/NAME.onnx. These models
are tens of megabytes, so they are not committed; scripts regenerate them when needed. Never needed by CI or
`swift test`. The small BERT-style encoder (`bert_tiny`, 0.6 MB) is the exception: a copy is committed as
testdata/exported/bert_tiny.onnx so CI can check a transformer with dynamic batch and sequence.
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
    "shufflenet_v2_x1_0": (torchvision.models.shufflenet_v2_x1_0, (1, 3, 224, 224)),
    "convnext_tiny": (torchvision.models.convnext_tiny, (1, 3, 224, 224)),
    "densenet121": (torchvision.models.densenet121, (1, 3, 224, 224)),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, (1, 3, 224, 224)),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True), (1, 3, 224, 224)),
    "vit_b_16": (torchvision.models.vit_b_16, (1, 3, 224, 224)),
}


class EncoderLayer(torch.nn.Module):
    """A post-norm BERT layer written with explicit reshapes, so the export keeps batch and sequence dynamic
    (torch.nn.MultiheadAttention bakes the traced sequence length into its reshapes)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.norm1 = torch.nn.LayerNorm(width)
        self.ff = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width))
        self.norm2 = torch.nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, w = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (w // self.heads) ** 0.5 + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, w)
        x = self.norm1(x + self.out(context))
        return self.norm2(x + self.ff(x))


class TinyBert(torch.nn.Module):
    """A BERT-style encoder: token + position embeddings, LayerNorm, 2 post-norm layers with GELU and an
    additive attention mask, a pooled tanh head. About 0.6 MB, with dynamic batch and sequence length."""

    def __init__(self, vocab: int = 1000, width: int = 64, heads: int = 4, layers: int = 2, max_len: int = 128):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, width)
        self.positions = torch.nn.Embedding(max_len, width)
        self.norm = torch.nn.LayerNorm(width)
        self.layers = torch.nn.ModuleList(EncoderLayer(width, heads) for _ in range(layers))
        self.pool = torch.nn.Linear(width, width)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        hidden = self.norm(self.tokens(input_ids) + self.positions(positions))
        bias = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        for layer in self.layers:
            hidden = layer(hidden, bias)
        return hidden, torch.tanh(self.pool(hidden[:, 0]))


class ConvBlock(torch.nn.Sequential):
    """Conv + BatchNorm + SiLU, the unit of YOLOv5/v8-style detectors."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1):
        super().__init__(torch.nn.Conv2d(cin, cout, k, s, k // 2, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.SiLU())


class C2f(torch.nn.Module):
    """YOLOv8's CSP block: split the channels in two, run bottlenecks on one half, concatenate every stage."""

    def __init__(self, cin: int, cout: int, n: int = 1):
        super().__init__()
        self.hidden = cout // 2
        self.cv1 = ConvBlock(cin, 2 * self.hidden)
        self.cv2 = ConvBlock((2 + n) * self.hidden, cout)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(ConvBlock(self.hidden, self.hidden, 3), ConvBlock(self.hidden, self.hidden, 3)) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).split((self.hidden, self.hidden), 1))
        for block in self.blocks:
            parts.append(parts[-1] + block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.cv1 = ConvBlock(channels, channels // 2)
        self.cv2 = ConvBlock(channels * 2, channels)
        self.pool = torch.nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class TinyYolo(torch.nn.Module):
    """A small YOLOv8-like detector (backbone, SPPF, FPN with nearest upsampling, three detect heads whose
    outputs are flattened and concatenated): the Concat/Split/Resize-heavy graph detectors export."""

    def __init__(self, classes: int = 80, width: int = 16):
        super().__init__()
        w = width
        self.stem = torch.nn.Sequential(ConvBlock(3, w, 3, 2), ConvBlock(w, 2 * w, 3, 2), C2f(2 * w, 2 * w))
        self.p3 = torch.nn.Sequential(ConvBlock(2 * w, 4 * w, 3, 2), C2f(4 * w, 4 * w, 2))
        self.p4 = torch.nn.Sequential(ConvBlock(4 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w, 2))
        self.p5 = torch.nn.Sequential(ConvBlock(8 * w, 16 * w, 3, 2), C2f(16 * w, 16 * w), SPPF(16 * w))
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(24 * w, 8 * w)
        self.top3 = C2f(12 * w, 4 * w)
        self.heads = torch.nn.ModuleList(torch.nn.Conv2d(c, 4 + classes, 1) for c in (4 * w, 8 * w, 16 * w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        t4 = self.top4(torch.cat((self.up(p5), p4), 1))
        t3 = self.top3(torch.cat((self.up(t4), p3), 1))
        outputs = [head(f).flatten(2) for head, f in zip(self.heads, (t3, t4, p5))]
        boxes_and_scores = torch.cat(outputs, 2)
        boxes, scores = boxes_and_scores.split((4, boxes_and_scores.shape[1] - 4), 1)
        return torch.cat((boxes, scores.sigmoid()), 1)


MODELS["yolo_tiny"] = (TinyYolo, (1, 3, 320, 320))


def export_bert(path: Path, opset: int) -> None:
    torch.manual_seed(0)
    model = TinyBert().eval()
    ids = torch.randint(0, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    torch.onnx.export(
        model, (ids, mask), str(path), opset_version=opset, dynamo=False,
        input_names=["input_ids", "attention_mask"], output_names=["hidden", "pooled"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "hidden": {0: "batch", 1: "seq"}, "pooled": {0: "batch"}},
    )


def randomize(model: torch.nn.Module) -> None:
    """Replace torchvision's initialization (zeroed heads, identity BatchNorm statistics) by random values at
    a scale that keeps activations alive through the whole network, so outputs are far from zero and a
    comparison with ONNX Runtime measures something."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.normal_(0, 0.1)
            elif isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                if getattr(module, "weight", None) is not None:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0, 0.1)
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.normal_(0, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2 and ("class_token" in name or "pos_embedding" in name):
                parameter.normal_(0, 0.02)


def export(name: str, out: Path, opset: int) -> Path:
    if name == "bert_tiny":
        path = out / "bert_tiny.onnx"
        export_bert(path, opset)
        return path
    constructor, shape = MODELS[name]
    torch.manual_seed(0)
    model = constructor().eval()
    randomize(model)
    path = out / f"{name}.onnx"
    torch.onnx.export(
        model, torch.randn(*shape), str(path), opset_version=opset, dynamo=False,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(MODELS) + ["bert_tiny"], help="models to export (default: all)")
    parser.add_argument("--out", type=Path, default=Path(".cache/models"))
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        if name not in MODELS and name != "bert_tiny":
            parser.error(f"unknown model {name}; choose from {', '.join(MODELS)}")
        path = export(name, args.out, args.opset)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
