"""Helpers shared by gen_testdata.py and check_roundtrip.py: exact, bitwise numpy views of ONNX
TensorProtos, and the ONNX Runtime session both scripts use as the reference.

Usage (from a script in this folder):
    from onnx_bits import tensor_bits
    same = arrays_identical(tensor_bits(a), tensor_bits(b))

onnx 1.16's numpy_helper.to_array is not enough for bit-exact comparisons: under NumPy 2 it fails on
float8 values in raw_data (int8 overflow) and on complex values in float_data/double_data, and it widens
bfloat16 and float8 to float32, which hides differences between NaN encodings. tensor_bits() returns
the stored bit patterns for those types instead (uint16 for bfloat16, uint8 for float8, one int8/uint8
per element for int4/uint4, raw bytes for strings) and defers to to_array for everything else.
External data must already be loaded into raw_data (onnx.load does that by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

# Types whose values are stored as bit patterns, and the unsigned integer type that holds one pattern.
_BIT_PATTERN_TYPES = {
    TensorProto.BFLOAT16: np.dtype("<u2"),
    TensorProto.FLOAT8E4M3FN: np.dtype("u1"),
    TensorProto.FLOAT8E4M3FNUZ: np.dtype("u1"),
    TensorProto.FLOAT8E5M2: np.dtype("u1"),
    TensorProto.FLOAT8E5M2FNUZ: np.dtype("u1"),
}


def tensor_bits(tensor: TensorProto) -> np.ndarray:
    """The tensor's elements as a numpy array whose bytes are exactly the stored values (see module doc)."""
    dims = tuple(tensor.dims)
    data_type = tensor.data_type
    has_raw = tensor.HasField("raw_data")
    if data_type == TensorProto.STRING:
        return np.array(list(tensor.string_data), dtype=object).reshape(dims)
    if data_type in _BIT_PATTERN_TYPES:
        storage = _BIT_PATTERN_TYPES[data_type]
        if has_raw:
            return np.frombuffer(tensor.raw_data, storage).reshape(dims)
        return np.asarray(tensor.int32_data, np.int64).astype(storage).reshape(dims)
    if data_type in (TensorProto.UINT4, TensorProto.INT4):
        packed = (np.frombuffer(tensor.raw_data, np.uint8) if has_raw
                  else np.asarray(tensor.int32_data, np.int64).astype(np.uint8))
        # Element 2k is the low nibble of byte k, element 2k+1 the high nibble.
        nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(-1)[: int(np.prod(dims, dtype=np.int64))]
        if data_type == TensorProto.INT4:
            return ((nibbles.astype(np.int8) ^ 8) - 8).reshape(dims)
        return nibbles.reshape(dims)
    if data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128) and not has_raw:
        # Real and imaginary parts interleaved in float_data (complex64) or double_data (complex128).
        pairs, part = ((tensor.float_data, np.float32) if data_type == TensorProto.COMPLEX64
                       else (tensor.double_data, np.float64))
        return np.asarray(pairs, part).view(helper.tensor_dtype_to_np_dtype(data_type)).reshape(dims)
    return numpy_helper.to_array(tensor)


def arrays_identical(a, b) -> bool:
    """Same dtype, same shape and bit-identical elements (so NaN equals NaN, and -0.0 differs from 0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def ort_session(path: Path) -> ort.InferenceSession:
    """A single-threaded CPU session with graph optimizations off, so outputs are the model's own."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: failures surface as exceptions with the same message
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def is_topologically_sorted(graph: onnx.GraphProto) -> bool:
    """Whether no node reads a value that a later node of the same graph produces."""
    later = {o for node in graph.node for o in node.output if o}
    for node in graph.node:
        if any(i in later for i in node.input):
            return False
        later.difference_update(node.output)
    return True
