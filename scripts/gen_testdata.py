#!/usr/bin/env python3
"""Generate onnxc's test models, their ONNX Runtime reference outputs and a corpus of broken files.

Usage:
    python3 scripts/gen_testdata.py

Needs Python 3 with numpy, onnx==1.16.2 and onnxruntime (CPU). Writes, after deleting what an earlier
run wrote (testdata/node and testdata/light, filled by fetch-onnx-tests.sh, and the models of FOREIGN_MODELS,
made by other scripts, are left alone):

    testdata/models/NAME.onnx            small models built with onnx.helper, checked with
                                         onnx.checker.check_model(full_check=True) unless noted
    testdata/reference/NAME/             for each model ONNX Runtime runs: input_K.npy, output_K.npy
                                         (K = position in the graph's input/output list) and meta.json
    testdata/manifest.json               one entry per model: node and initializer counts, whether
                                         ONNX Runtime runs it and, if not, why
    testdata/bad/                        files onnxc must reject, a README.md describing each and
                                         expected_errors.json (file -> substring of the expected error;
                                         substrings already in the file are kept, new files get a guess)

The output is deterministic: every random number comes from a fixed seed and ONNX Runtime runs with
one thread and no graph optimizations, so re-running the script reproduces the same bytes (given the
same onnx, onnxruntime and numpy versions).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from onnx_bits import arrays_identical, is_topologically_sorted, ort_session, tensor_bits

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
MODELS = TESTDATA / "models"
REFERENCE = TESTDATA / "reference"
BAD = TESTDATA / "bad"

PRODUCER = {"producer_name": "onnxc-testdata", "producer_version": "1.0"}
# Values given to symbolic dimensions when making reference inputs; any other symbolic dim gets 2.
DIM_VALUES = {"batch": 2, "seq": 5}
DEFAULT_DIM = 2
INPUT_SEED = 0
SIZE_BUDGET = 3 * 1024 * 1024
BAD_FILE_LIMIT = 20 * 1024
# Models in testdata/models that other scripts make (and the manifest does not list): regenerating leaves them.
FOREIGN_MODELS = {"digits_cnn.onnx": "scripts/train_digits.py", "pruning_zoo.onnx": "scripts/gen_pruning_zoo.py"}


# --------------------------------------------------------------------------------------------------
# Small helpers for building graphs
# --------------------------------------------------------------------------------------------------

def make_model(graph: onnx.GraphProto, opset: int = 17, ir_version: int = 8,
               extra_opsets: tuple[tuple[str, int], ...] = (), **fields) -> onnx.ModelProto:
    """A ModelProto with the testdata producer, the default-domain opset and any extra domains."""
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version, **PRODUCER, **fields)


def weight(rng: np.random.Generator, name: str, shape: tuple[int, ...], scale: float | None = None) -> TensorProto:
    """A float32 initializer of normal random values, scaled by 1/sqrt(fan-in) unless `scale` is given."""
    if scale is None:
        scale = 1.0 / math.sqrt(int(np.prod(shape[1:])) or 1)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def const(name: str, array) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def tensor_info(name: str, elem_type: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def float_info(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def add_props(proto, props: dict[str, str]) -> None:
    """Append metadata_props entries to any proto that has the field (IR 10 added it to many)."""
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)


def all_graphs(graph: onnx.GraphProto):
    """`graph` and every subgraph nested in its nodes' GRAPH and GRAPHS attributes, depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)):
                yield from all_graphs(sub)



# --------------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------------

def build_tiny_cnn() -> onnx.ModelProto:
    """Conv+Relu, MaxPool, Conv+BatchNorm+Relu, GlobalAveragePool, Flatten, Gemm, Softmax."""
    rng = np.random.default_rng(0)
    initializers = [
        weight(rng, "conv1.weight", (8, 3, 3, 3)),
        weight(rng, "conv1.bias", (8,), 0.1),
        weight(rng, "conv2.weight", (16, 8, 3, 3)),
        weight(rng, "conv2.bias", (16,), 0.1),
        const("bn2.weight", rng.uniform(0.5, 1.5, 16).astype(np.float32)),
        weight(rng, "bn2.bias", (16,), 0.1),
        weight(rng, "bn2.running_mean", (16,), 0.1),
        const("bn2.running_var", rng.uniform(0.5, 1.5, 16).astype(np.float32)),
        weight(rng, "fc.weight", (10, 16)),
        weight(rng, "fc.bias", (10,), 0.1),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["conv1_out"], ["relu1_out"], "relu1"),
        node("MaxPool", ["relu1_out"], ["pool1_out"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["pool1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], "conv2", kernel_shape=[3, 3]),
        node("BatchNormalization", ["conv2_out", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var"],
             ["bn2_out"], "bn2", epsilon=1e-5),
        node("Relu", ["bn2_out"], ["relu2_out"], "relu2"),
        node("GlobalAveragePool", ["relu2_out"], ["gap_out"], "gap"),
        node("Flatten", ["gap_out"], ["flatten_out"], "flatten", axis=1),
        node("Gemm", ["flatten_out", "fc.weight", "fc.bias"], ["logits"], "fc", transB=1),
        node("Softmax", ["logits"], ["output"], "softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [float_info("input", ["batch", 3, 16, 16])], [float_info("output", ["batch", 10])], initializers,
        value_info=[float_info("pool1_out", ["batch", 8, 8, 8]), float_info("conv2_out", ["batch", 16, 6, 6]),
                    float_info("flatten_out", ["batch", 16])],
        doc_string="A tiny image classifier with random weights.")
    model = make_model(graph, doc_string="onnxc test model: a tiny CNN (3x16x16 image -> 10 classes).")
    helper.set_model_props(model, {"author": "onnxc", "license": "MIT"})
    return model


def mlp_graph(name: str) -> onnx.GraphProto:
    """x[1,32] -> MatMul -> Add -> Relu -> MatMul -> Add -> y[1,10]."""
    rng = np.random.default_rng(1)
    initializers = [weight(rng, "fc1.weight", (32, 64), 1 / math.sqrt(32)), weight(rng, "fc1.bias", (64,), 0.1),
                    weight(rng, "fc2.weight", (64, 10), 1 / math.sqrt(64)), weight(rng, "fc2.bias", (10,), 0.1)]
    node = helper.make_node
    nodes = [
        node("MatMul", ["x", "fc1.weight"], ["fc1_mm"], "fc1_matmul"),
        node("Add", ["fc1_mm", "fc1.bias"], ["fc1_out"], "fc1_add"),
        node("Relu", ["fc1_out"], ["relu_out"], "relu"),
        node("MatMul", ["relu_out", "fc2.weight"], ["fc2_mm"], "fc2_matmul"),
        node("Add", ["fc2_mm", "fc2.bias"], ["y"], "fc2_add"),
    ]
    return helper.make_graph(nodes, name, [float_info("x", [1, 32])], [float_info("y", [1, 10])], initializers)


def build_mlp() -> onnx.ModelProto:
    return make_model(mlp_graph("mlp"))


def build_external() -> onnx.ModelProto:
    """The MLP again; `save_model` moves its initializers to model.onnx.data."""
    return make_model(mlp_graph("mlp_external"), doc_string="initializers stored in model.onnx.data")


# One sample list per ONNX tensor data type of onnx 1.16: edge values (extremes, -0, inf, NaN,
# subnormals) where the type has them. UINT4/INT4 have an odd count to exercise the half-byte padding.
DTYPE_SAMPLES: dict[int, list] = {
    TensorProto.FLOAT: [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 3.4028235e38, 1e-45],
    TensorProto.UINT8: [0, 1, 127, 128, 255],
    TensorProto.INT8: [-128, -1, 0, 1, 127],
    TensorProto.UINT16: [0, 1, 32768, 65535],
    TensorProto.INT16: [-32768, -1, 0, 1, 32767],
    TensorProto.INT32: [-2**31, -1, 0, 1, 2**31 - 1],
    TensorProto.INT64: [-2**63, -1, 0, 1, 2**63 - 1],
    TensorProto.STRING: [b"", b"hello", "\u00fcn\u00efc\u00f6d\u00e9".encode(), b"tab\tnul\x00end"],
    TensorProto.BOOL: [True, False, True],
    TensorProto.FLOAT16: [0.0, -0.0, 1.5, -2.25, math.inf, math.nan, 65504.0, 6e-8],
    TensorProto.DOUBLE: [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 1.7976931348623157e308, 5e-324],
    TensorProto.UINT32: [0, 1, 2**31, 2**32 - 1],
    TensorProto.UINT64: [0, 1, 2**63, 2**64 - 1],
    TensorProto.COMPLEX64: [1 + 2j, -0.5 - 0j, complex(math.nan, math.inf)],
    TensorProto.COMPLEX128: [1 + 2j, -0.5 - 0j, complex(math.inf, -1e-300)],
    TensorProto.BFLOAT16: [0.0, -0.0, 1.5, -2.25, math.inf, math.nan, 3.0e38],
    TensorProto.FLOAT8E4M3FN: [0.0, -0.0, 1.5, -2.25, 448.0, math.nan],
    TensorProto.FLOAT8E4M3FNUZ: [0.0, 1.5, -2.25, 240.0, math.nan],
    TensorProto.FLOAT8E5M2: [0.0, -0.0, 1.5, -2.25, 57344.0, math.inf, math.nan],
    TensorProto.FLOAT8E5M2FNUZ: [0.0, 1.5, -2.25, 57344.0, math.nan],
    TensorProto.UINT4: [0, 1, 7, 8, 15],
    TensorProto.INT4: [-8, -1, 0, 1, 7],
}
assert len(DTYPE_SAMPLES) == 22 and set(DTYPE_SAMPLES) == set(helper.get_all_tensor_dtypes())

# Types whose values ONNX Runtime's Python API cannot hand back as numpy arrays or whose Identity it
# lacks: the ORT-runnable variant casts them to float first.
CAST_FOR_ORT = {TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ,
                TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ, TensorProto.UINT4, TensorProto.INT4}
COMPLEX_TYPES = {TensorProto.COMPLEX64, TensorProto.COMPLEX128}


# bfloat16 and float8 bit patterns, converted without saturation so that inf stays inf where the type
# has one (onnx.helper.make_tensor saturates float8, turning inf into the largest finite value).
BIT_PATTERN_ENCODERS = {
    TensorProto.BFLOAT16: (np.dtype("<u2"), helper.float32_to_bfloat16),
    TensorProto.FLOAT8E4M3FN: (np.dtype("u1"), lambda v: helper.float32_to_float8e4m3(v, saturate=False)),
    TensorProto.FLOAT8E4M3FNUZ: (np.dtype("u1"), lambda v: helper.float32_to_float8e4m3(v, uz=True, saturate=False)),
    TensorProto.FLOAT8E5M2: (np.dtype("u1"), lambda v: helper.float32_to_float8e5m2(v, saturate=False)),
    TensorProto.FLOAT8E5M2FNUZ: (np.dtype("u1"),
                                 lambda v: helper.float32_to_float8e5m2(v, fn=True, uz=True, saturate=False)),
}


def raw_bytes(data_type: int, values: list) -> bytes:
    """The little-endian raw_data encoding of `values` (not STRING, which has none)."""
    if data_type in BIT_PATTERN_ENCODERS:
        storage, encode = BIT_PATTERN_ENCODERS[data_type]
        return np.array([encode(np.float32(v)) for v in values], storage).tobytes()
    if data_type in (TensorProto.UINT4, TensorProto.INT4):
        return helper.pack_float32_to_4bit(values, signed=data_type == TensorProto.INT4).tobytes()
    np_dtype = helper.tensor_dtype_to_np_dtype(data_type).newbyteorder("<")
    return np.asarray(values, dtype=np_dtype).tobytes()


def typed_tensor(name: str, data_type: int, values: list) -> TensorProto:
    """A 1-D tensor of `values` stored in the typed field that data_type uses (int32_data for the bit
    patterns of bfloat16 and float8, one pattern per int32)."""
    if data_type in BIT_PATTERN_ENCODERS:
        tensor = TensorProto(name=name, data_type=data_type, dims=[len(values)])
        tensor.int32_data.extend(np.frombuffer(raw_bytes(data_type, values), BIT_PATTERN_ENCODERS[data_type][0]).tolist())
        return tensor
    return helper.make_tensor(name, data_type, [len(values)], values)


def dtype_initializers(for_ort: bool) -> list[TensorProto]:
    """Initializers covering every data type, each both in raw_data and in its typed field (STRING has
    no raw form), plus a 2-D, a zero-sized and two scalar tensors. `for_ort` drops the complex types
    (ORT cannot even load them) and the string that is not UTF-8 (ORT's Python API decodes strings)."""
    tensors = []
    for data_type, values in DTYPE_SAMPLES.items():
        if for_ort and data_type in COMPLEX_TYPES:
            continue
        type_name = helper.tensor_dtype_to_string(data_type).removeprefix("TensorProto.").lower()
        typed = typed_tensor(f"{type_name}_typed", data_type, values)
        tensors.append(typed)
        if data_type == TensorProto.STRING:
            if not for_ort:
                tensors.append(helper.make_tensor("string_binary", data_type, [2], [b"\xff\xfe", b"\x80"]))
            continue
        raw = helper.make_tensor(f"{type_name}_raw", data_type, [len(values)], raw_bytes(data_type, values), raw=True)
        assert arrays_identical(tensor_bits(raw), tensor_bits(typed)), type_name
        tensors.append(raw)
    tensors += [
        helper.make_tensor("float_matrix_raw", TensorProto.FLOAT, [2, 3], raw_bytes(TensorProto.FLOAT, range(6)), raw=True),
        helper.make_tensor("float_empty_raw", TensorProto.FLOAT, [0, 3], b"", raw=True),
        helper.make_tensor("int64_empty_typed", TensorProto.INT64, [0], []),
        helper.make_tensor("int64_scalar_typed", TensorProto.INT64, [], [42]),
        helper.make_tensor("double_scalar_raw", TensorProto.DOUBLE, [], raw_bytes(TensorProto.DOUBLE, [-0.5]), raw=True),
    ]
    return tensors


def dtype_graph(name: str, for_ort: bool) -> onnx.GraphProto:
    """Each initializer goes through an Identity (or, for ORT, a Cast to float) to a graph output."""
    initializers = dtype_initializers(for_ort)
    nodes, outputs = [], []
    for tensor in initializers:
        out = f"{tensor.name}_out"
        if for_ort and tensor.data_type in CAST_FOR_ORT:
            nodes.append(helper.make_node("Cast", [tensor.name], [out], f"cast_{tensor.name}", to=TensorProto.FLOAT))
            out_type = TensorProto.FLOAT
        else:
            nodes.append(helper.make_node("Identity", [tensor.name], [out], f"identity_{tensor.name}"))
            out_type = tensor.data_type
        outputs.append(tensor_info(out, out_type, list(tensor.dims)))
    return helper.make_graph(nodes, name, [], outputs, initializers)


def build_all_dtypes() -> onnx.ModelProto:
    return make_model(dtype_graph("all_dtypes", for_ort=False), opset=21, ir_version=10,
                      doc_string="Initializers of every ONNX 1.16 tensor data type, raw and typed.")


def build_all_dtypes_ort() -> onnx.ModelProto:
    return make_model(dtype_graph("all_dtypes_ort", for_ort=True), opset=21, ir_version=10,
                      doc_string="all_dtypes without complex types, with float8/bfloat16/int4 cast to float for ORT.")


def build_attributes() -> onnx.ModelProto:
    """Standard ops carrying every attribute kind a standard op can carry: FLOAT, INT, STRING, TENSOR,
    GRAPH (an If whose branches read outer-scope values), FLOATS, INTS, STRINGS, SPARSE_TENSOR and
    TYPE_PROTO (Optional's `type`)."""
    node = helper.make_node
    sparse = helper.make_sparse_tensor(
        const("c_sparse_values", np.array([1.5, -2.0, 4.0], np.float32)),
        const("c_sparse_indices", np.array([1, 5, 10], np.int64)), [3, 4])
    then_branch = helper.make_graph(
        [node("Mul", ["leaky", "c_tensor"], ["then_out"], "then_mul")], "then_branch", [],
        [float_info("then_out", [1, 2, 4, 4])])
    else_branch = helper.make_graph(
        [node("Neg", ["transposed"], ["else_out"], "else_neg")], "else_branch", [],
        [float_info("else_out", [1, 2, 4, 4])])
    nodes = [
        node("Constant", [], ["c_float"], "const_float", value_float=0.25),
        node("Constant", [], ["c_int"], "const_int", value_int=-7),
        node("Constant", [], ["c_string"], "const_string", value_string="hello"),
        node("Constant", [], ["c_floats"], "const_floats", value_floats=[1.0, -0.5, 3.25]),
        node("Constant", [], ["c_ints"], "const_ints", value_ints=[1, -2, 3, 2**40]),
        node("Constant", [], ["c_strings"], "const_strings", value_strings=["a", "bc", ""]),
        node("Constant", [], ["c_tensor"], "const_tensor", value=const("c_tensor_value", np.array([[[[2.0]], [[-1.0]]]], np.float32))),
        node("Constant", [], ["c_sparse"], "const_sparse", sparse_value=sparse),
        # ORT hands a sparse Constant that is a graph output back as a SparseTensor, not an ndarray.
        node("Identity", ["c_sparse"], ["c_sparse_dense"], "sparse_to_dense"),
        node("LeakyRelu", ["x"], ["leaky"], "leaky_relu", alpha=0.2),
        node("Transpose", ["leaky"], ["transposed"], "transpose", perm=[0, 1, 3, 2]),
        node("Pad", ["transposed", "pads"], ["padded"], "pad_reflect", mode="reflect"),
        node("Softmax", ["padded"], ["softmax_out"], "softmax", axis=1),
        node("If", ["flag"], ["if_out"], "if", then_branch=then_branch, else_branch=else_branch),
        node("Optional", [], ["empty_optional"], "optional_none",
             type=helper.make_tensor_type_proto(TensorProto.FLOAT, [2, 2])),
        node("OptionalHasElement", ["empty_optional"], ["has_element"], "has_element"),
    ]
    graph = helper.make_graph(
        nodes, "attributes",
        [float_info("x", [1, 2, 4, 4]), tensor_info("flag", TensorProto.BOOL, [])],
        [float_info("c_float", []), tensor_info("c_int", TensorProto.INT64, []),
         tensor_info("c_string", TensorProto.STRING, []), float_info("c_floats", [3]),
         tensor_info("c_ints", TensorProto.INT64, [4]), tensor_info("c_strings", TensorProto.STRING, [3]),
         float_info("c_tensor", [1, 2, 1, 1]), float_info("c_sparse_dense", [3, 4]),
         float_info("softmax_out", [1, 2, 6, 6]), float_info("if_out", [1, 2, 4, 4]),
         tensor_info("has_element", TensorProto.BOOL, [])],
        [const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    return make_model(graph)


def build_attribute_kinds_parse_only() -> onnx.ModelProto:
    """A custom-domain op carrying all 14 attribute kinds, including the list kinds (TENSORS, GRAPHS,
    SPARSE_TENSORS, TYPE_PROTOS) no standard op uses. ONNX Runtime has no kernel for it."""
    def branch(name: str, op: str) -> onnx.GraphProto:
        # Each subgraph reads the outer-scope value `x`.
        return helper.make_graph([helper.make_node(op, ["x"], [f"{name}_out"], f"{name}_node")], name, [],
                                 [float_info(f"{name}_out", [2, 3])])

    def sparse(seed: int) -> onnx.SparseTensorProto:
        return helper.make_sparse_tensor(const(f"sparse{seed}_values", np.array([seed, -seed], np.float32)),
                                         const(f"sparse{seed}_indices", np.array([[0, 1], [1, 2]], np.int64)), [2, 3])

    custom = helper.make_node(
        "Custom", ["x"], ["y"], "custom", domain="com.example",
        f=0.5, i=-3, s="text", t=const("t_value", np.array([1, 2, 3], np.int32)), g=branch("g_body", "Relu"),
        floats=[0.5, math.inf, -0.0], ints=[-1, 0, 2**62], strings=["x", "", "\u00e9"],
        tensors=[const("tensors_0", np.array([1.0], np.float16)), const("tensors_1", np.array([[True, False]]))],
        graphs=[branch("graphs_0", "Neg"), branch("graphs_1", "Abs")],
        sparse_tensor=sparse(1), sparse_tensors=[sparse(2), sparse(3)],
        tp=helper.make_tensor_type_proto(TensorProto.INT8, ["n", 4]),
        type_protos=[helper.make_tensor_type_proto(TensorProto.FLOAT, None),
                     helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.STRING, [])),
                     helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.DOUBLE, [1]))])
    graph = helper.make_graph([custom], "attribute_kinds", [float_info("x", [2, 3])], [float_info("y", [2, 3])])
    return make_model(graph, extra_opsets=(("com.example", 1),))


def build_control_flow() -> onnx.ModelProto:
    """A Loop whose body reads the outer-scope initializer `loop_step`, a Scan computing a running sum,
    and an If on the Loop's result whose branches read outer-scope values."""
    node = helper.make_node
    loop_body = helper.make_graph(
        [node("Identity", ["cond_in"], ["cond_out"], "loop_cond_identity"),
         node("Add", ["v_in", "loop_step"], ["v_out"], "loop_add"),
         node("Cast", ["iter"], ["iter_f"], "loop_cast", to=TensorProto.FLOAT),
         node("Mul", ["v_out", "iter_f"], ["scan_elem"], "loop_mul")],
        "loop_body",
        [tensor_info("iter", TensorProto.INT64, []), tensor_info("cond_in", TensorProto.BOOL, []), float_info("v_in", [3])],
        [tensor_info("cond_out", TensorProto.BOOL, []), float_info("v_out", [3]), float_info("scan_elem", [3])])
    scan_body = helper.make_graph(
        [node("Add", ["state_in", "x_t"], ["state_out"], "scan_add"),
         node("Identity", ["state_out"], ["scan_elem_out"], "scan_identity")],
        "scan_body", [float_info("state_in", [3]), float_info("x_t", [3])],
        [float_info("state_out", [3]), float_info("scan_elem_out", [3])])
    then_branch = helper.make_graph([node("Mul", ["scan_final", "loop_step"], ["then_out"], "then_mul")],
                                    "then_branch", [], [float_info("then_out", [3])])
    else_branch = helper.make_graph([node("Sub", ["scan_final", "loop_step"], ["else_out"], "else_sub")],
                                    "else_branch", [], [float_info("else_out", [3])])
    nodes = [
        node("Loop", ["loop_trip_count", "loop_cond", "x"], ["loop_final", "loop_scan"], "loop", body=loop_body),
        node("Scan", ["scan_init", "xs"], ["scan_final", "scan_cumsum"], "scan", body=scan_body, num_scan_inputs=1),
        node("ReduceSum", ["loop_final"], ["loop_sum"], "reduce_sum", keepdims=0),
        node("Greater", ["loop_sum", "zero"], ["is_positive"], "greater"),
        node("If", ["is_positive"], ["if_out"], "if", then_branch=then_branch, else_branch=else_branch),
    ]
    initializers = [
        const("loop_trip_count", np.array(3, np.int64)), const("loop_cond", np.array(True)),
        const("loop_step", np.array([0.5, -1.0, 2.0], np.float32)), const("scan_init", np.zeros(3, np.float32)),
        const("zero", np.array(0.0, np.float32)),
    ]
    graph = helper.make_graph(
        nodes, "control_flow", [float_info("x", [3]), float_info("xs", [4, 3])],
        [float_info("loop_final", [3]), float_info("loop_scan", [3, 3]), float_info("scan_final", [3]),
         float_info("scan_cumsum", [4, 3]), float_info("if_out", [3])], initializers)
    return make_model(graph)


def build_local_function() -> onnx.ModelProto:
    """A model-local function custom.fn.LinearRelu(X, W, B) = LeakyRelu(X·W + B, alpha=@alpha), with a
    default alpha, called once with alpha given and once relying on the default."""
    alpha_ref = helper.make_attribute_ref("alpha", AttributeProto.FLOAT)
    alpha_ref.ref_attr_name = "alpha"  # make_attribute_ref (onnx 1.16) leaves ref_attr_name unset
    leaky = helper.make_node("LeakyRelu", ["Z"], ["Y"], "leaky")
    leaky.attribute.append(alpha_ref)
    function = helper.make_function(
        "custom.fn", "LinearRelu", ["X", "W", "B"], ["Y"],
        [helper.make_node("MatMul", ["X", "W"], ["XW"], "matmul"), helper.make_node("Add", ["XW", "B"], ["Z"], "add"), leaky],
        [helper.make_opsetid("", 17)], attribute_protos=[helper.make_attribute("alpha", 0.01)],
        doc_string="LeakyRelu(X @ W + B)")
    rng = np.random.default_rng(2)
    initializers = [weight(rng, "layer1.weight", (8, 16)), weight(rng, "layer1.bias", (16,), 0.1),
                    weight(rng, "layer2.weight", (16, 4)), weight(rng, "layer2.bias", (4,), 0.1)]
    nodes = [
        helper.make_node("LinearRelu", ["x", "layer1.weight", "layer1.bias"], ["hidden"], "layer1", domain="custom.fn", alpha=0.2),
        helper.make_node("LinearRelu", ["hidden", "layer2.weight", "layer2.bias"], ["y"], "layer2", domain="custom.fn"),
    ]
    graph = helper.make_graph(nodes, "local_function", [float_info("x", ["batch", 8])], [float_info("y", ["batch", 4])],
                              initializers)
    return make_model(graph, extra_opsets=(("custom.fn", 1),), functions=[function])


def unsorted_graph() -> onnx.GraphProto:
    """A small diamond-shaped graph, its nodes in topological order."""
    node = helper.make_node
    nodes = [
        node("Relu", ["x"], ["a"], "relu"),
        node("Sigmoid", ["x"], ["b"], "sigmoid"),
        node("Add", ["a", "b"], ["c"], "add"),
        node("Mul", ["c", "w"], ["d"], "mul"),
        node("Neg", ["d"], ["e"], "neg"),
        node("Sub", ["e", "a"], ["y"], "sub"),
    ]
    return helper.make_graph(nodes, "unsorted", [float_info("x", [2, 4])], [float_info("y", [2, 4])],
                             [const("w", np.array([1.0, -2.0, 0.5, 3.0], np.float32))])


def build_unsorted() -> onnx.ModelProto:
    """The sorted graph passes the checker; its nodes are then stored out of order."""
    model = make_model(unsorted_graph())
    onnx.checker.check_model(model, full_check=True)
    permuted = [model.graph.node[i] for i in (4, 2, 5, 0, 3, 1)]
    del model.graph.node[:]
    model.graph.node.extend(permuted)
    assert not is_topologically_sorted(model.graph)
    return model


def build_sparse_initializer() -> onnx.ModelProto:
    """y = x * sparse_w + sparse_b, sparse_w in COO form ([nnz, rank] indices), sparse_b with linear indices."""
    sparse_w = helper.make_sparse_tensor(
        const("sparse_w", np.array([2.0, -1.0, 0.5, 3.0], np.float32)),
        const("sparse_w_indices", np.array([[0, 0], [1, 3], [2, 1], [3, 4]], np.int64)), [4, 5])
    sparse_b = helper.make_sparse_tensor(
        const("sparse_b", np.array([10.0, -10.0], np.float32)), const("sparse_b_indices", np.array([1, 4], np.int64)), [5])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "sparse_w"], ["scaled"], "mul"),
         helper.make_node("Add", ["scaled", "sparse_b"], ["y"], "add")],
        "sparse_initializer", [float_info("x", [4, 5])], [float_info("y", [4, 5])], sparse_initializer=[sparse_w, sparse_b])
    return make_model(graph)


def build_symbolic_dims() -> onnx.ModelProto:
    """x[batch, seq, 16] -> Transpose -> MatMul -> y[seq, batch, 8] -> Reshape -> z[tokens, 8]."""
    rng = np.random.default_rng(3)
    node = helper.make_node
    graph = helper.make_graph(
        [node("Transpose", ["x"], ["x_t"], "transpose", perm=[1, 0, 2]),
         node("MatMul", ["x_t", "proj.weight"], ["y"], "matmul"),
         node("Reshape", ["y", "flat_shape"], ["z"], "reshape")],
        "symbolic_dims", [float_info("x", ["batch", "seq", 16])],
        [float_info("y", ["seq", "batch", 8]), float_info("z", ["tokens", 8])],
        [weight(rng, "proj.weight", (16, 8)), const("flat_shape", np.array([-1, 8], np.int64))],
        value_info=[float_info("x_t", ["seq", "batch", 16])])
    return make_model(graph)


def build_multi_output() -> onnx.ModelProto:
    """Split into 3, TopK with both outputs, Clip with its optional `min` input empty, Dropout with its
    optional `mask` output empty, and an LSTM with empty optional inputs and its first output empty."""
    rng = np.random.default_rng(4)
    node = helper.make_node
    nodes = [
        node("Split", ["x"], ["s0", "s1", "s2"], "split", axis=2),
        node("TopK", ["x", "k"], ["topk_values", "topk_indices"], "topk", axis=-1),
        node("Clip", ["x", "", "clip_max"], ["clipped"], "clip"),
        node("Dropout", ["clipped"], ["dropped", ""], "dropout"),
        node("LSTM", ["dropped", "lstm.W", "lstm.R", "", "", "lstm.initial_h"], ["", "lstm_h"], "lstm", hidden_size=4),
    ]
    initializers = [
        const("k", np.array([2], np.int64)), const("clip_max", np.array(0.5, np.float32)),
        weight(rng, "lstm.W", (1, 16, 6)), weight(rng, "lstm.R", (1, 16, 4)), weight(rng, "lstm.initial_h", (1, 2, 4), 0.1),
    ]
    graph = helper.make_graph(
        nodes, "multi_output", [float_info("x", [3, 2, 6])],
        [float_info("s0", [3, 2, 2]), float_info("s1", [3, 2, 2]), float_info("s2", [3, 2, 2]),
         float_info("topk_values", [3, 2, 2]), tensor_info("topk_indices", TensorProto.INT64, [3, 2, 2]),
         float_info("dropped", [3, 2, 6]), float_info("lstm_h", [1, 2, 4])], initializers)
    return make_model(graph)


def build_recurrent() -> onnx.ModelProto:
    """A small speech-style tagger: features [seq, batch, 12] -> bidirectional LSTM (peepholes, per-row lengths)
    -> GRU (linear_before_reset = 0, the product after the reset gate) -> reverse RNN from a given state -> the
    per-step tags and the RNN's final state. Exercises the recurrent ops' every branch in one model."""
    rng = np.random.default_rng(7)
    i, h1, h2, h3 = 12, 16, 12, 8

    def scaled(name, shape, fan_in):
        return const(name, (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32))

    initializers = [
        scaled("lstm.W", (2, 4 * h1, i), i), scaled("lstm.R", (2, 4 * h1, h1), h1), scaled("lstm.B", (2, 8 * h1), 10),
        scaled("lstm.P", (2, 3 * h1), 10), const("lstm.lengths", np.array([5, 3], np.int32)),
        const("merged", np.array([0, 0, 2 * h1], np.int64)),
        scaled("gru.W", (1, 3 * h2, 2 * h1), 2 * h1), scaled("gru.R", (1, 3 * h2, h2), h2), scaled("gru.B", (1, 6 * h2), 10),
        const("axis1", np.array([1], np.int64)),
        scaled("rnn.W", (1, h3, h2), h2), scaled("rnn.R", (1, h3, h3), h3), scaled("rnn.B", (1, 2 * h3), 10),
        scaled("rnn.h0", (1, 2, h3), 2),
    ]
    node = helper.make_node
    nodes = [
        node("LSTM", ["features", "lstm.W", "lstm.R", "lstm.B", "lstm.lengths", "", "", "lstm.P"], ["lstm_y", "lstm_h", "lstm_c"],
             "lstm", hidden_size=h1, direction="bidirectional"),
        node("Transpose", ["lstm_y"], ["lstm_t"], "lstm_transpose", perm=[0, 2, 1, 3]),
        node("Reshape", ["lstm_t", "merged"], ["lstm_out"], "lstm_merge"),
        node("GRU", ["lstm_out", "gru.W", "gru.R", "gru.B"], ["gru_y"], "gru", hidden_size=h2),
        node("Squeeze", ["gru_y", "axis1"], ["gru_out"], "gru_squeeze"),
        node("RNN", ["gru_out", "rnn.W", "rnn.R", "rnn.B", "", "rnn.h0"], ["rnn_y", "state"], "rnn", hidden_size=h3, direction="reverse"),
        node("Squeeze", ["rnn_y", "axis1"], ["tags"], "rnn_squeeze"),
    ]
    graph = helper.make_graph(
        nodes, "recurrent", [float_info("features", ["seq", 2, i])],
        [float_info("tags", ["seq", 2, h3]), float_info("state", [1, 2, h3]), float_info("lstm_c", [2, 2, h1])], initializers,
        doc_string="LSTM, GRU and RNN with random weights.")
    return make_model(graph, doc_string="onnxc test model: bidirectional LSTM -> GRU -> reverse RNN over 12 features.")


def build_doc_and_metadata() -> onnx.ModelProto:
    """doc_string and metadata_props on everything that has them in IR 10, type and dim denotations,
    and a quantization_annotation on the graph."""
    node = helper.make_node
    nodes = [
        node("QuantizeLinear", ["x", "q_scale", "q_zero_point"], ["q"], "quantize", doc_string="quantize the input"),
        node("DequantizeLinear", ["q", "q_scale", "q_zero_point"], ["dq"], "dequantize", doc_string="and back"),
        node("Mul", ["dq", "gain"], ["y"], "mul", doc_string="apply the gain"),
    ]
    for i, n in enumerate(nodes):
        add_props(n, {"node_index": str(i), "source": f"layer{i}.py:{10 * i + 1}"})
    initializers = [const("q_scale", np.array(0.05, np.float32)), const("q_zero_point", np.array(128, np.uint8)),
                    const("gain", np.array([1.0, 2.0, -1.0, 0.5], np.float32))]
    for t in initializers:
        t.doc_string = f"the {t.name} tensor"
        add_props(t, {"origin": "hand-written", "name_again": t.name})

    x = float_info("x", [1, 4])
    x.doc_string = "the input features"
    x.type.denotation = "TENSOR"
    x.type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    x.type.tensor_type.shape.dim[1].denotation = "DATA_CHANNEL"
    add_props(x, {"unit": "volts"})
    y = float_info("y", [1, 4])
    y.doc_string = "the output"
    y.type.denotation = "TENSOR"
    add_props(y, {"unit": "volts"})
    q = tensor_info("q", TensorProto.UINT8, [1, 4])
    q.doc_string = "quantized input"
    add_props(q, {"quantized": "true"})

    graph = helper.make_graph(nodes, "doc_and_metadata", [x], [y], initializers, doc_string="the main graph",
                              value_info=[q])
    add_props(graph, {"graph_key": "graph value", "empty": ""})
    annotation = graph.quantization_annotation.add(tensor_name="q")
    annotation.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="q_scale")
    annotation.quant_parameter_tensor_names.add(key="ZERO_POINT_TENSOR", value="q_zero_point")
    model = make_model(graph, opset=21, ir_version=10, doc_string="documentation and metadata everywhere",
                       domain="ai.onnxc.test", model_version=3)
    helper.set_model_props(model, {"author": "onnxc", "license": "MIT", "unicode": "\u2713 \u00fc"})
    return model


@dataclass
class ModelSpec:
    """One model of testdata/models."""
    name: str                              # path under testdata/models without ".onnx"
    build: Callable[[], onnx.ModelProto]
    check: str = "full"                    # onnx.checker.check_model on the saved file: "full" adds
                                           # full_check=True (strict shape inference), "none" skips it
    ort: str = "required"                  # "required": must run in ORT; "try": record whether it does;
                                           # "never": parse-only by design (see `reason`)
    reason: str = ""
    external_data: str = ""                # if set, save all initializers to this file beside the model


MODEL_SPECS = [
    ModelSpec("tiny_cnn", build_tiny_cnn),
    ModelSpec("mlp", build_mlp),
    ModelSpec("all_dtypes", build_all_dtypes, ort="try"),
    ModelSpec("all_dtypes_ort", build_all_dtypes_ort),
    ModelSpec("attributes", build_attributes),
    ModelSpec("attribute_kinds_parse_only", build_attribute_kinds_parse_only, ort="never",
              reason="com.example.Custom is a made-up op with no implementation; the model exists to carry "
                     "every attribute kind, including TENSORS, GRAPHS, SPARSE_TENSORS and TYPE_PROTOS"),
    ModelSpec("control_flow", build_control_flow),
    ModelSpec("local_function", build_local_function),
    ModelSpec("unsorted", build_unsorted, check="none"),
    # Shape inference types a sparse initializer as sparse_tensor(float), which no standard op accepts,
    # so full_check fails; ONNX Runtime densifies sparse initializers when it loads the model.
    ModelSpec("sparse_initializer", build_sparse_initializer, check="basic", ort="try"),
    ModelSpec("external/model", build_external, external_data="model.onnx.data"),
    ModelSpec("symbolic_dims", build_symbolic_dims),
    ModelSpec("multi_output", build_multi_output),
    ModelSpec("doc_and_metadata", build_doc_and_metadata),
    ModelSpec("recurrent", build_recurrent),
]


# --------------------------------------------------------------------------------------------------
# Saving, checking, ONNX Runtime references and the manifest
# --------------------------------------------------------------------------------------------------

def save(spec: ModelSpec) -> Path:
    path = MODELS / f"{spec.name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    model = spec.build()
    if spec.external_data:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=spec.external_data, size_threshold=0)
    else:
        path.write_bytes(model.SerializeToString())
    if spec.check != "none":
        onnx.checker.check_model(str(path), full_check=spec.check == "full")
    return path




def random_input(rng: np.random.Generator, info: onnx.ValueInfoProto) -> np.ndarray:
    """Random data for a tensor graph input; symbolic dims take their DIM_VALUES value."""
    tensor_type = info.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else DIM_VALUES.get(d.dim_param, DEFAULT_DIM)
             for d in tensor_type.shape.dim]
    np_dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    if np_dtype == np.bool_:
        values = rng.random(shape) < 0.5
    elif np.issubdtype(np_dtype, np.integer):
        values = rng.integers(0, 4, shape)
    else:
        values = rng.standard_normal(shape)
    return np.asarray(values, np_dtype)  # an array even for scalars (dims [])


def describe(name: str, array: np.ndarray) -> dict:
    return {"name": name, "dtype": "string" if array.dtype.kind in "USO" else array.dtype.name,
            "shape": list(array.shape)}


def write_reference(spec: ModelSpec, path: Path, model: onnx.ModelProto) -> None:
    """Run the model in ORT on seeded random inputs and save inputs, outputs and meta.json."""
    rng = np.random.default_rng(INPUT_SEED)
    inputs = {info.name: random_input(rng, info) for info in model.graph.input}
    session = ort_session(path)
    outputs = session.run(None, inputs)
    # ORT hands strings back as object arrays; store them as numpy unicode so loading needs no pickle.
    outputs = [out.astype(str) if out.dtype == object else out for out in outputs]
    folder = REFERENCE / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    for k, array in enumerate(inputs.values()):
        np.save(folder / f"input_{k}.npy", array, allow_pickle=False)
    for k, array in enumerate(outputs):
        np.save(folder / f"output_{k}.npy", array, allow_pickle=False)
    meta = {
        "model": f"models/{spec.name}.onnx",
        "seed": INPUT_SEED,
        "dim_values": DIM_VALUES,
        "onnxruntime": ort.__version__,
        "inputs": [describe(name, array) for name, array in inputs.items()],
        "outputs": [describe(o.name, array) for o, array in zip(session.get_outputs(), outputs)],
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def generate_models() -> list[dict]:
    """Write every model and its reference; return the manifest entries."""
    manifest = []
    for spec in MODEL_SPECS:
        path = save(spec)
        model = onnx.load(str(path))
        reason = spec.reason
        if spec.ort != "never":
            try:
                write_reference(spec, path, model)
            except Exception as error:  # noqa: BLE001 - any ORT failure makes the model parse-only
                if spec.ort == "required":
                    raise RuntimeError(f"{spec.name}: ONNX Runtime failed: {error}") from error
                message = first_line(error).replace(str(path), path.relative_to(TESTDATA).as_posix())
                reason = f"onnxruntime {ort.__version__} cannot run it: {message}"
        manifest.append({
            "model": f"models/{spec.name}.onnx",
            "node_count": len(model.graph.node),
            "node_count_total": sum(len(g.node) for g in all_graphs(model.graph)),
            "initializer_count": len(model.graph.initializer),
            "runs_in_ort": not reason,
            "reason": reason,
        })
        print(f"models/{spec.name}.onnx: " + ("runs in ORT" if not reason else f"parse-only ({reason})"))
    return manifest


# --------------------------------------------------------------------------------------------------
# Broken files
# --------------------------------------------------------------------------------------------------

def small_model(nodes, initializers=(), outputs=None) -> onnx.ModelProto:
    """A model around `nodes`, never checked: input x[2,2], output y[2,2] unless `outputs` are given."""
    graph = helper.make_graph(nodes, "bad", [float_info("x", [2, 2])],
                              outputs if outputs is not None else [float_info("y", [2, 2])], list(initializers))
    return make_model(graph)


def uses_weight(tensor: TensorProto) -> onnx.ModelProto:
    """y = x + `tensor`: the model is fine except for whatever is wrong with the tensor."""
    return small_model([helper.make_node("Add", ["x", tensor.name], ["y"], "add")], [tensor])


def external_tensor(location: str, offset: int = 0, length: int = 16) -> TensorProto:
    """A float [2,2] initializer `w` whose data lives in an external file."""
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2 (an embedded message, string or bytes)."""
    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


def nested_if_model(depth: int) -> bytes:
    """A model whose main graph holds an If whose then-branch holds an If … `depth` levels deep, each
    else-branch an Identity of the outer-scope input `c` (ONNX Runtime runs this shape at small depths).

    Python's protobuf refuses messages nested this deep (upb's depth limit is 100), so the nesting is
    spliced in as bytes: each level serializes an If node without its then_branch and appends the
    then_branch attribute (NodeProto field 5, holding AttributeProto field 6 = the inner graph).
    Protobuf allows fields in any order, so the result is an ordinary ModelProto. Subgraph outputs
    carry no type (allowed in subgraphs) to keep the file small."""
    def untyped(name: str) -> onnx.ValueInfoProto:
        return onnx.ValueInfoProto(name=name)

    def identity_graph(name: str, out: str) -> onnx.GraphProto:
        return onnx.GraphProto(name=name, node=[helper.make_node("Identity", ["c"], [out])], output=[untyped(out)])

    body = identity_graph("t", f"t{depth + 1}").SerializeToString()
    for level in range(depth, 0, -1):
        out = f"o{level}"
        then_branch = AttributeProto(name="then_branch", type=AttributeProto.GRAPH).SerializeToString()
        if_node = helper.make_node("If", ["b"], [out], else_branch=identity_graph("e", f"e{level}")).SerializeToString()
        if level > 1:
            graph = onnx.GraphProto(name="t", output=[untyped(out)])
        else:
            graph = onnx.GraphProto(name="deep_nesting", output=[float_info(out, [])],
                                    input=[tensor_info("b", TensorProto.BOOL, []), float_info("c", [])])
        body = (graph.SerializeToString()
                + length_delimited(1, if_node + length_delimited(5, then_branch + length_delimited(6, body))))
    header = make_model(onnx.GraphProto())
    header.ClearField("graph")
    return header.SerializeToString() + length_delimited(7, body)


def bad_files() -> list[tuple[str, bytes, str, str]]:
    """(file name, content, what it breaks, expected error substring) for every broken file."""
    tiny_cnn = (MODELS / "tiny_cnn.onnx").read_bytes()
    relu = [helper.make_node("Relu", ["x"], ["y"], "relu")]

    no_graph = onnx.ModelProto(ir_version=8, **PRODUCER)
    no_graph.opset_import.add(domain="", version=17)

    bad_attribute = helper.make_node("LeakyRelu", ["x"], ["y"], "leaky")
    bad_attribute.attribute.add(name="alpha")

    files = [
        ("empty.onnx", b"", "0 bytes", "empty"),
        ("random_bytes.onnx", np.random.default_rng(1234).bytes(4096), "4 KB of seeded random bytes",
         "not a valid ONNX protobuf file"),
        ("truncated.onnx", tiny_cnn[: len(tiny_cnn) * 6 // 10], "tiny_cnn.onnx cut at 60 % of its length", "truncated"),
        ("truncated_header.onnx", tiny_cnn[:5], "the first 5 bytes of tiny_cnn.onnx", "truncated"),
        ("not_a_model.onnx", const("w", np.arange(6, dtype=np.float32).reshape(2, 3)).SerializeToString(),
         "a serialized TensorProto; read as a ModelProto, its `name` lands in the opset_import field and is "
         "not a valid message there", "not a valid ONNX protobuf file"),
        ("graph_only.onnx", small_model(relu).graph.SerializeToString(),
         "a serialized GraphProto; it decodes as a ModelProto with no ir_version and no graph", "not an ONNX model"),
        ("valueinfo_only.onnx", float_info("x", ["batch", 3]).SerializeToString(),
         "a serialized ValueInfoProto; it decodes as a ModelProto with no ir_version and no graph",
         "not an ONNX model"),
        ("no_graph.onnx", no_graph.SerializeToString(), "a ModelProto with ir_version and opset_import but no graph",
         "has no graph"),
        ("missing_input_ref.onnx",
         small_model([helper.make_node("Add", ["x", "ghost"], ["y"], "add")]).SerializeToString(),
         "a node reads `ghost`, which no input, initializer or node defines", "not defined"),
        ("missing_initializer_data.onnx",
         uses_weight(TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4])).SerializeToString(),
         "initializer `w` has dims [4,4] and no data at all", "no data"),
        ("short_raw_data.onnx",
         uses_weight(TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], raw_data=bytes(10))).SerializeToString(),
         "initializer `w` has dims [4,4] (64 bytes of float) but 10 bytes of raw_data", "raw_data"),
        ("negative_dim.onnx",
         uses_weight(TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[-1, 3], raw_data=bytes(12))).SerializeToString(),
         "initializer `w` has dims [-1,3]", "negative dimension"),
        ("overflow_dims.onnx",
         uses_weight(TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**40] * 3, raw_data=bytes(16))).SerializeToString(),
         "initializer `w` has dims [2^40,2^40,2^40] (2^120 elements) and 16 bytes of raw_data: "
         "the element count overflows 64 bits, and nothing that large may be allocated", "overflow"),
        ("cycle.onnx",
         small_model([helper.make_node("Add", ["x", "b"], ["a"], "node_a"),
                      helper.make_node("Relu", ["a"], ["b"], "node_b"),
                      helper.make_node("Identity", ["b"], ["y"], "out")]).SerializeToString(),
         "node_a reads node_b's output and node_b reads node_a's", "cycle"),
        ("duplicate_output.onnx",
         small_model([helper.make_node("Relu", ["x"], ["y"], "relu"),
                      helper.make_node("Neg", ["x"], ["y"], "neg")]).SerializeToString(),
         "two nodes both define `y`: the graph is not in SSA form", "defined more than once"),
        ("external_escape.onnx", uses_weight(external_tensor("../../etc/passwd")).SerializeToString(),
         "external data location `../../etc/passwd` climbs out of the model's folder", "'..' is not allowed"),
        ("external_absolute.onnx", uses_weight(external_tensor("/etc/passwd")).SerializeToString(),
         "external data location is the absolute path `/etc/passwd`", "absolute paths are not allowed"),
        ("external_missing.onnx", uses_weight(external_tensor("missing.bin")).SerializeToString(),
         "external data location `missing.bin` does not exist", "not found"),
        ("external_short.onnx", uses_weight(external_tensor("external_short.bin", offset=8)).SerializeToString(),
         "tensor `w` wants bytes 8..24 of external_short.bin, which has only 16 bytes", "too short"),
        ("external_short.bin", bytes(range(16)), "the 16-byte data file of external_short.onnx", ""),
        ("unknown_dtype.onnx",
         uses_weight(TensorProto(name="w", data_type=99, dims=[4], raw_data=bytes(16))).SerializeToString(),
         "initializer `w` has data_type 99, which is no ONNX type", "unknown tensor data type 99"),
        ("deep_nesting.onnx", nested_if_model(200),
         "200 Ifs, each in the then-branch of the one before: subgraphs nest 200 levels (over 600 protobuf "
         "messages) deep; otherwise valid",
         "nest deeper than"),
        ("bad_attribute.onnx", small_model([bad_attribute]).SerializeToString(),
         "LeakyRelu's attribute `alpha` has a name but no type and no value", "no type and no value"),
        ("undefined_graph_output.onnx",
         small_model(relu, outputs=[float_info("y", [2, 2]), float_info("nowhere", [2, 2])]).SerializeToString(),
         "graph output `nowhere` is produced by no node, input or initializer", "never defined"),
    ]
    return files


def generate_bad(curated_errors: dict[str, str]) -> None:
    """Write the broken files, README.md and expected_errors.json. `curated_errors` (the previous
    expected_errors.json) wins over the guesses in bad_files(): its substrings have been matched to
    onnxc's actual messages by hand."""
    BAD.mkdir(parents=True)
    readme = ["# Broken files", "",
              "Generated by `scripts/gen_testdata.py`. onnxc must reject every `.onnx` file here with a clear",
              "error (`error: FILE: …`, exit code 1) and must not crash, hang or allocate without bound.",
              "`expected_errors.json` maps each file to a substring its error message should contain.", "",
              "| file | what is wrong |", "| --- | --- |"]
    expected = {}
    for name, content, what, substring in bad_files():
        assert len(content) < BAD_FILE_LIMIT, f"{name} is {len(content)} bytes"
        (BAD / name).write_bytes(content)
        readme.append(f"| `{name}` | {what} |")
        if name.endswith(".onnx"):
            expected[name] = curated_errors.get(name, substring)
    (BAD / "README.md").write_text("\n".join(readme) + "\n")
    (BAD / "expected_errors.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"bad/: {len(expected)} broken models")


def write_npz_fixtures() -> None:
    """testdata/npz: the same arrays saved by numpy.savez (stored members) and numpy.savez_compressed (deflated),
    for the `.npz` reader's tests (Tests/OnnxcCLITests/NPZArchiveTests.swift)."""
    folder = TESTDATA / "npz"
    folder.mkdir(exist_ok=True)
    arrays = {
        "x": (np.arange(6, dtype=np.float32) - 2.5).reshape(2, 3),
        "ids": np.array([7, -1, 1 << 40], dtype=np.int64),
        "flags": np.array([[True, False], [False, True]]),
        "zeros": np.zeros((64, 64), dtype=np.float32),
    }
    np.savez(folder / "stored.npz", **arrays)
    np.savez_compressed(folder / "compressed.npz", **arrays)


def main() -> None:
    expected_errors = BAD / "expected_errors.json"
    curated_errors = json.loads(expected_errors.read_text()) if expected_errors.is_file() else {}
    kept = {name: (MODELS / name).read_bytes() for name in FOREIGN_MODELS if (MODELS / name).is_file()}
    for stale in (MODELS, REFERENCE, BAD):
        shutil.rmtree(stale, ignore_errors=True)
    MODELS.mkdir(parents=True)
    for name, data in kept.items():
        (MODELS / name).write_bytes(data)
    manifest = generate_models()
    (TESTDATA / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    generate_bad(curated_errors)
    write_npz_fixtures()
    size = sum(p.stat().st_size for d in (MODELS, REFERENCE, BAD) for p in d.rglob("*") if p.is_file())
    print(f"testdata (models, reference, bad): {size} bytes")
    assert size < SIZE_BUDGET, "testdata is over its size budget"


if __name__ == "__main__":
    main()
