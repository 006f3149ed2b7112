#!/usr/bin/env python3
"""Write testdata/models/pruning_zoo.onnx: one small CNN with every structure channel pruning must follow, so that
CI checks them in ONNX Runtime without the torchvision exports (scripts/prune_check.py runs it).

    python3 scripts/gen_pruning_zoo.py

Input `input` f32[batch, 3, 16, 16], output `logits` f32[batch, 10]; random weights (seed 0), opset 17, ~60 kB:

    stem     Conv 3→16 3×3 + BatchNormalization + Relu
    mbconv   Conv 1×1 16→32 + Clip (ReLU6), depthwise 3×3 (group 32), squeeze-excitation (GlobalAveragePool →
             Conv 32→8 → Relu → Conv 8→32 → Sigmoid → Mul), Conv 1×1 32→16, residual Add with the stem
    c2f      Conv 1×1 16→32, Split [16, 16], two Conv 3×3 on the second half with a residual Add, Concat of
             the halves and the sum (48 channels, one half used twice), Conv 1×1 48→24
    up/down  MaxPool 2×2, ConvTranspose 24→12 stride 2, Resize (nearest, scales 1, 1, 0.5, 0.5), Pad of the
             spatial axes, Slice of channels 2..10, Conv 3×3 stride 2 8→16
    head     Flatten (16 channels × 4×4 pixels) → Gemm 256→10
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata/models/pruning_zoo.onnx"


def main() -> None:
    rng = np.random.default_rng(0)
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def weight(name: str, shape: tuple[int, ...], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        values = (rng.standard_normal(shape) * (scale if scale is not None else 1 / np.sqrt(fan_in))).astype(np.float32)
        inits.append(numpy_helper.from_array(values, name))
        return name

    def const(name: str, array) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv(x: str, name: str, cin: int, cout: int, k: int, group: int = 1, stride: int = 1) -> str:
        nodes.append(helper.make_node("Conv", [x, weight(name + ".w", (cout, cin // group, k, k)), weight(name + ".b", (cout,), 0.1)],
                                      [name], name=name, kernel_shape=[k, k], pads=[k // 2] * 4, group=group, strides=[stride, stride]))
        return name

    def op(kind: str, inputs: list[str], name: str, **attributes) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attributes))
        return name

    # stem
    x = conv("input", "stem.conv", 3, 16, 3)
    bn = [const("stem.bn." + p, v.astype(np.float32)) for p, v in (("scale", rng.uniform(0.5, 1.5, 16)), ("bias", rng.standard_normal(16) * 0.1),
                                                                    ("mean", rng.standard_normal(16) * 0.1), ("var", rng.uniform(0.5, 1.5, 16)))]
    stem = op("Relu", [op("BatchNormalization", [x] + bn, "stem.bn")], "stem.relu")
    # mbconv with squeeze-excitation and a residual
    e = op("Clip", [conv(stem, "mb.expand", 16, 32, 1), const("six.lo", np.float32(0)), const("six.hi", np.float32(6))], "mb.relu6")
    d = op("Clip", [conv(e, "mb.dw", 32, 32, 3, group=32), "six.lo", "six.hi"], "mb.dw.relu6")
    s = op("GlobalAveragePool", [d], "mb.se.pool")
    s = op("Sigmoid", [conv(op("Relu", [conv(s, "mb.se.reduce", 32, 8, 1)], "mb.se.relu"), "mb.se.expand", 8, 32, 1)], "mb.se.gate")
    mb = op("Add", [stem, conv(op("Mul", [d, s], "mb.se.mul"), "mb.project", 32, 16, 1)], "mb.add")
    # c2f: Split, residual on one half, Concat using that half twice
    c = conv(mb, "c2f.cv1", 16, 32, 1)
    nodes.append(helper.make_node("Split", [c, const("c2f.split", np.array([16, 16], np.int64))], ["c2f.a", "c2f.b"], name="c2f.split", axis=1))
    r = op("Add", ["c2f.b", conv(op("Relu", [conv("c2f.b", "c2f.m0", 16, 16, 3)], "c2f.m0.relu"), "c2f.m1", 16, 16, 3)], "c2f.add")
    c = conv(op("Concat", ["c2f.a", "c2f.b", r], "c2f.cat", axis=1), "c2f.cv2", 48, 24, 1)
    # down, up, resize back, pad, slice channels
    p = op("MaxPool", [c], "pool", kernel_shape=[2, 2], strides=[2, 2])
    nodes.append(helper.make_node("ConvTranspose", [p, weight("up.w", (24, 12, 2, 2)), weight("up.b", (12,), 0.1)], ["up"], name="up", strides=[2, 2]))
    z = op("Resize", ["up", "", const("resize.scales", np.array([1, 1, 0.5, 0.5], np.float32))], "resize", mode="nearest")
    z = op("Pad", [z, const("pad.pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], "pad")
    z = op("Slice", [z, const("slice.starts", np.array([2], np.int64)), const("slice.ends", np.array([10], np.int64)),
                     const("slice.axes", np.array([1], np.int64))], "slice")
    z = op("Relu", [conv(z, "down", 8, 16, 3, stride=3)], "down.relu")
    # head
    f = op("Flatten", [z], "flatten", axis=1)
    nodes.append(helper.make_node("Gemm", [f, weight("head.w", (10, 256)), weight("head.b", (10,), 0.1)], ["logits"], name="head", transB=1))

    graph = helper.make_graph(nodes, "pruning_zoo", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="scripts/gen_pruning_zoo.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
