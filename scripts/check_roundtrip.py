#!/usr/bin/env python3
"""Check that `onnxc optimize -O0` re-encodes ONNX models without changing them.

Usage:
    python3 scripts/check_roundtrip.py --onnxc .build/debug/onnxc [MODEL_OR_DIR ...]

Without paths it checks testdata/models and testdata/exported, plus testdata/light/*/model.onnx and testdata/node/*/model.onnx when
scripts/fetch-onnx-tests.sh has fetched them; a directory argument means every *.onnx below it. Needs
numpy, onnx==1.16.2 and onnxruntime.

For each model it runs `onnxc optimize MODEL -O0 -o OUT.onnx` in a temporary folder and then:
  1. compares OUT with MODEL using the onnx package: ir_version, producer name and version, opset
     imports ("" and "ai.onnx" are the same domain), model metadata_props, model-local function names,
     and, in the main graph and recursively in every subgraph, the inputs and outputs (names and types),
     initializers and sparse initializers (name, data type, dims and bit-identical values) and the nodes
     (same order unless MODEL's nodes are not topologically sorted, in which case they are matched by
     outputs; op_type, domain, name, inputs, outputs and attributes compared by value);
  2. runs `onnxc dump MODEL --format json` and checks that it lists as many main-graph nodes as MODEL has;
  3. if ONNX Runtime can load MODEL, runs MODEL and OUT in it (no graph optimizations, one thread) on the
     same inputs (a node test's test_data_set_0/input_*.pb, otherwise random data from a fixed seed with
     every symbolic dim set to 2) and requires outputs of the same dtype and shape with bit-identical
     values. (ONNX Runtime seeds random ops that have no `seed` the same way in every session, so the
     node tests of Bernoulli, RandomUniform and the like compare too.)

Prints one line per model, `PATH: ok`, `PATH: FAIL: reason` or `PATH: skip: reason` (structure matched but
ONNX Runtime cannot load or run MODEL), then `N passed, M failed, K skipped`; exits 1 if any failed.
A model onnxc rejects (for example with `error: ...` for something it does not support) fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import AttributeProto, TensorProto, helper

from onnx_bits import arrays_identical, is_topologically_sorted, ort_session, tensor_bits

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
SEED = 0
SYMBOLIC_DIM = 2
ONNXC_TIMEOUT = 300  # seconds for one onnxc command
MAX_REPORTED_DIFFERENCES = 3


# --------------------------------------------------------------------------------------------------
# Structural comparison with the onnx package
# --------------------------------------------------------------------------------------------------

def domain_key(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def compare_tensors(a: TensorProto, b: TensorProto, where: str) -> list[str]:
    if a.name != b.name:
        return [f"{where}: name {a.name!r} became {b.name!r}"]
    if a.data_type != b.data_type or list(a.dims) != list(b.dims):
        return [f"{where}: {helper.tensor_dtype_to_string(a.data_type)}{list(a.dims)} became "
                f"{helper.tensor_dtype_to_string(b.data_type)}{list(b.dims)}"]
    try:
        same = arrays_identical(tensor_bits(a), tensor_bits(b))
    except Exception as error:  # noqa: BLE001 - undecodable data is a difference, not a crash
        return [f"{where}: cannot decode the data ({error})"]
    return [] if same else [f"{where}: the values differ"]


def compare_sparse(a: onnx.SparseTensorProto, b: onnx.SparseTensorProto, where: str) -> list[str]:
    if list(a.dims) != list(b.dims):
        return [f"{where}: dims {list(a.dims)} became {list(b.dims)}"]
    return compare_tensors(a.values, b.values, f"{where} values") + compare_tensors(a.indices, b.indices, f"{where} indices")


def compare_lists(a: list, b: list, where: str, compare) -> list[str]:
    if len(a) != len(b):
        return [f"{where}: {len(a)} elements became {len(b)}"]
    return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare(x, y, f"{where}[{i}]")]


def compare_attributes(a: AttributeProto, b: AttributeProto, where: str) -> list[str]:
    if a.type != b.type:
        return [f"{where}: type {AttributeProto.AttributeType.Name(a.type)} became {AttributeProto.AttributeType.Name(b.type)}"]
    if a.ref_attr_name or b.ref_attr_name:
        return [] if a.ref_attr_name == b.ref_attr_name else [f"{where}: ref_attr_name {a.ref_attr_name!r} became {b.ref_attr_name!r}"]
    va, vb = helper.get_attribute_value(a), helper.get_attribute_value(b)
    kind = a.type
    if kind == AttributeProto.TENSOR:
        return compare_tensors(va, vb, where)
    if kind == AttributeProto.TENSORS:
        return compare_lists(va, vb, where, compare_tensors)
    if kind == AttributeProto.SPARSE_TENSOR:
        return compare_sparse(va, vb, where)
    if kind == AttributeProto.SPARSE_TENSORS:
        return compare_lists(va, vb, where, compare_sparse)
    if kind == AttributeProto.GRAPH:
        return compare_graphs(va, vb, where)
    if kind == AttributeProto.GRAPHS:
        return compare_lists(va, vb, where, compare_graphs)
    if kind in (AttributeProto.FLOAT, AttributeProto.FLOATS):
        # AttributeProto floats are float32: compare their bits, so NaN matches NaN and -0.0 differs from 0.0.
        same = arrays_identical(np.asarray(va, np.float32), np.asarray(vb, np.float32))
    else:  # INT(S), STRING(S), TYPE_PROTO(S) and UNDEFINED compare with ==
        same = va == vb
    return [] if same else [f"{where}: {va!r} became {vb!r}"]


def compare_nodes(a: onnx.NodeProto, b: onnx.NodeProto, where: str) -> list[str]:
    where = f"{where} node {a.name or a.op_type!r}"
    differences = []
    for field in ("op_type", "name", "input", "output"):
        va, vb = getattr(a, field), getattr(b, field)
        if not isinstance(va, str):
            va, vb = list(va), list(vb)
        if va != vb:
            differences.append(f"{where}: {field} {va!r} became {vb!r}")
    if domain_key(a.domain) != domain_key(b.domain):
        differences.append(f"{where}: domain {a.domain!r} became {b.domain!r}")
    attrs_a = {attr.name: attr for attr in a.attribute}
    attrs_b = {attr.name: attr for attr in b.attribute}
    if attrs_a.keys() != attrs_b.keys():
        differences.append(f"{where}: attributes {sorted(attrs_a)} became {sorted(attrs_b)}")
    else:
        for name, attr in attrs_a.items():
            differences += compare_attributes(attr, attrs_b[name], f"{where} attribute {name}")
    return differences



def compare_value_infos(a: onnx.ValueInfoProto, b: onnx.ValueInfoProto, where: str) -> list[str]:
    if a.name != b.name:
        return [f"{where}: name {a.name!r} became {b.name!r}"]
    if a.type != b.type:
        return [f"{where} {a.name!r}: type {helper.printable_type(a.type)} became {helper.printable_type(b.type)}"]
    return []


def compare_graphs(a: onnx.GraphProto, b: onnx.GraphProto, where: str = "graph") -> list[str]:
    """Differences between two graphs (and, through node attributes, their subgraphs)."""
    differences = compare_lists(list(a.input), list(b.input), f"{where} inputs", compare_value_infos)
    differences += compare_lists(list(a.output), list(b.output), f"{where} outputs", compare_value_infos)

    for kind, ta, tb, key, compare in (
        ("initializer", a.initializer, b.initializer, lambda t: t.name, compare_tensors),
        ("sparse initializer", a.sparse_initializer, b.sparse_initializer, lambda t: t.values.name, compare_sparse),
    ):
        by_name_a, by_name_b = {key(t): t for t in ta}, {key(t): t for t in tb}
        if by_name_a.keys() != by_name_b.keys():
            missing, extra = sorted(by_name_a.keys() - by_name_b.keys()), sorted(by_name_b.keys() - by_name_a.keys())
            differences.append(f"{where}: {kind}s missing {missing[:5]}, added {extra[:5]}")
        else:
            for name, tensor in by_name_a.items():
                differences += compare(tensor, by_name_b[name], f"{where} {kind} {name!r}")

    nodes_a, nodes_b = list(a.node), list(b.node)
    if len(nodes_a) != len(nodes_b):
        return differences + [f"{where}: {len(nodes_a)} nodes became {len(nodes_b)}"]
    if not is_topologically_sorted(a):
        # Sorting an unsorted graph is a legitimate re-encoding: match nodes by their outputs instead.
        by_outputs = {tuple(node.output): node for node in nodes_b}
        unmatched = [node.name or node.op_type for node in nodes_a if tuple(node.output) not in by_outputs]
        if unmatched:
            return differences + [f"{where}: no node with the outputs of {unmatched[:5]}"]
        nodes_b = [by_outputs[tuple(node.output)] for node in nodes_a]
    for node_a, node_b in zip(nodes_a, nodes_b):
        differences += compare_nodes(node_a, node_b, where)
        if len(differences) >= MAX_REPORTED_DIFFERENCES:
            break
    return differences


def compare_models(a: onnx.ModelProto, b: onnx.ModelProto) -> list[str]:
    differences = []
    for field in ("ir_version", "producer_name", "producer_version"):
        if getattr(a, field) != getattr(b, field):
            differences.append(f"{field} {getattr(a, field)!r} became {getattr(b, field)!r}")
    opsets_a = {domain_key(o.domain): o.version for o in a.opset_import}
    opsets_b = {domain_key(o.domain): o.version for o in b.opset_import}
    if opsets_a != opsets_b:
        differences.append(f"opset imports {opsets_a} became {opsets_b}")
    props_a = sorted((p.key, p.value) for p in a.metadata_props)
    props_b = sorted((p.key, p.value) for p in b.metadata_props)
    if props_a != props_b:
        differences.append(f"metadata_props {props_a} became {props_b}")
    functions_a = [(f.domain, f.name) for f in a.functions]
    functions_b = [(f.domain, f.name) for f in b.functions]
    if sorted(functions_a) != sorted(functions_b):
        differences.append(f"model-local functions {functions_a} became {functions_b}")
    return differences + compare_graphs(a.graph, b.graph)


# --------------------------------------------------------------------------------------------------
# onnxc
# --------------------------------------------------------------------------------------------------

def run_onnxc(onnxc: str, *args: str) -> tuple[str | None, str]:
    """Run onnxc; return (None, stdout) on success or (reason, stdout) on failure."""
    command = [onnxc, *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=ONNXC_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"`onnxc {args[0]}` timed out after {ONNXC_TIMEOUT} s", ""
    if done.returncode == 0:
        return None, done.stdout
    if done.returncode < 0:
        return f"`onnxc {args[0]}` crashed (signal {-done.returncode})", done.stdout
    lines = done.stderr.strip().splitlines()
    message = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "no message")
    return f"`onnxc {args[0]}` exited {done.returncode}: {message}", done.stdout


def check_dump(onnxc: str, path: Path, model: onnx.ModelProto) -> str | None:
    failure, stdout = run_onnxc(onnxc, "dump", str(path), "--format", "json")
    if failure:
        return failure
    try:
        nodes = json.loads(stdout)["graph"]["nodes"]
    except (ValueError, KeyError, TypeError) as error:
        return f"`onnxc dump --format json` printed no graph.nodes ({error!r})"
    if len(nodes) != len(model.graph.node):
        return f"`onnxc dump` lists {len(nodes)} nodes, the model has {len(model.graph.node)}"
    return None


# --------------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------------



def load_test_value(path: Path, value_type: onnx.TypeProto):
    """A node test's input_K.pb, decoded the way onnx's backend test runner does."""
    content = path.read_bytes()
    if value_type.HasField("sequence_type"):
        return onnx.numpy_helper.to_list(onnx.SequenceProto.FromString(content))
    if value_type.HasField("optional_type"):
        return onnx.numpy_helper.to_optional(onnx.OptionalProto.FromString(content))
    return onnx.numpy_helper.to_array(TensorProto.FromString(content))


def random_value(rng: np.random.Generator, value_type: onnx.TypeProto) -> np.ndarray:
    tensor_type = value_type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else SYMBOLIC_DIM for d in tensor_type.shape.dim]
    np_dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    if np_dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if np_dtype == object:
        return np.array([f"s{i}" for i in rng.integers(0, 10, shape).ravel()], dtype=object).reshape(shape)
    if np.issubdtype(np_dtype, np.integer):
        return np.asarray(rng.integers(0, 4, shape), np_dtype)
    return np.asarray(rng.standard_normal(shape), np_dtype)


def model_inputs(path: Path, model: onnx.ModelProto) -> dict:
    initializers = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    data_set = path.parent / "test_data_set_0"
    if path.name == "model.onnx" and data_set.is_dir():
        files = sorted(data_set.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        return {info.name: load_test_value(file, info.type) for info, file in zip(graph_inputs, files)}
    rng = np.random.default_rng(SEED)
    for info in graph_inputs:
        if not info.type.HasField("tensor_type"):
            raise ValueError(f"input {info.name!r} is not a tensor, so no random value can be made for it")
    return {info.name: random_value(rng, info.type) for info in graph_inputs}


def values_identical(a, b) -> bool:
    """Bit-identical ONNX Runtime results: arrays, sequences (lists), maps (dicts) and empty optionals (None)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and arrays_identical(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_identical(a[k], b[k]) for k in a)
    return type(a) is type(b) and (a is None or arrays_identical(np.asarray(a), np.asarray(b)))


def same_types(a, b) -> bool:
    """Same dtype and shape (recursively), ignoring the values."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_types(x, y) for x, y in zip(a, b))
    return type(a) is type(b)


def describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return type(value).__name__


def compare_in_ort(path: Path, out: Path, model: onnx.ModelProto) -> tuple[str, str]:
    """Return ("ok" | "skip" | "FAIL", detail) for running MODEL and OUT in ONNX Runtime."""
    try:
        original = ort_session(path)
    except Exception as error:  # noqa: BLE001 - whatever ORT rejects, the model is skipped
        return "skip", f"onnxruntime cannot load the original: {first_line(error)}"
    try:
        inputs = model_inputs(path, model)
        expected = original.run(None, inputs)
    except Exception as error:  # noqa: BLE001
        return "skip", f"onnxruntime cannot run the original: {first_line(error)}"
    try:
        actual = ort_session(out).run(None, inputs)
    except Exception as error:  # noqa: BLE001 - the original ran, so this is onnxc's fault
        return "FAIL", f"onnxruntime cannot run onnxc's output: {first_line(error)}"
    names = [o.name for o in original.get_outputs()]
    if len(actual) != len(expected):
        return "FAIL", f"onnxc's output has {len(actual)} outputs in onnxruntime, the original {len(expected)}"
    differing = [i for i, (e, a) in enumerate(zip(expected, actual)) if not values_identical(e, a)]
    if not differing:
        return "ok", ""
    i = differing[0]
    if not same_types(expected[i], actual[i]):
        return "FAIL", f"output {names[i]!r} is {describe(actual[i])}, expected {describe(expected[i])}"
    return "FAIL", f"output {names[i]!r} differs from the original's ({len(differing)} of {len(names)} outputs differ)"


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

def first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def check(job: tuple[str, str]) -> tuple[str, str, str]:
    """Check one model; return (path, status, detail) with status "ok", "FAIL" or "skip"."""
    onnxc, name = job
    path = Path(name)
    try:
        model = onnx.load(str(path))
    except Exception as error:  # noqa: BLE001 - not onnxc's fault
        return name, "skip", f"the onnx package cannot load it: {first_line(error)}"
    with tempfile.TemporaryDirectory(prefix="onnxc-roundtrip-") as folder:
        out = Path(folder) / "out.onnx"
        failure, _ = run_onnxc(onnxc, "optimize", str(path), "-O0", "-o", str(out))
        if failure:
            return name, "FAIL", failure
        if not out.is_file():
            return name, "FAIL", "`onnxc optimize` exited 0 but wrote no output"
        try:
            reencoded = onnx.load(str(out))
        except Exception as error:  # noqa: BLE001
            return name, "FAIL", f"the onnx package cannot load onnxc's output: {first_line(error)}"
        differences = compare_models(model, reencoded)
        if differences:
            return name, "FAIL", "; ".join(differences[:MAX_REPORTED_DIFFERENCES])
        failure = check_dump(onnxc, path, model)
        if failure:
            return name, "FAIL", failure
        status, detail = compare_in_ort(path, out, model)
        return name, status, detail


def default_paths() -> list[Path]:
    testdata = ROOT / "testdata"
    return ([testdata / "models", testdata / "exported"] + sorted((testdata / "light").glob("*/model.onnx"))
            + sorted((testdata / "node").glob("*/model.onnx")))


def collect(paths: list[Path]) -> list[Path]:
    models = []
    for path in paths:
        if path.is_dir():
            models += sorted(path.rglob("*.onnx"))
        elif path.is_file():
            models.append(path)
        else:
            sys.exit(f"error: {path}: no such file or directory")
    return models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnxc", required=True, help="path of the onnxc binary")
    parser.add_argument("paths", nargs="*", type=Path, help="models or folders (default: testdata models)")
    args = parser.parse_args()
    onnxc = str(Path(args.onnxc).resolve())
    if not Path(onnxc).is_file():
        sys.exit(f"error: {args.onnxc}: no such file")
    ort.set_default_logger_severity(4)

    models = collect(args.paths or default_paths())
    counts = {"ok": 0, "FAIL": 0, "skip": 0}
    with multiprocessing.Pool(WORKERS) as pool:
        for name, status, detail in pool.imap(check, [(onnxc, str(m)) for m in models]):
            counts[status] += 1
            detail = " ".join(detail.split())  # one line per model, whatever the messages contain
            shown = Path(name).resolve()
            shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else Path(name)
            if status == "ok":
                print(f"{shown}: ok" + (f" ({detail})" if detail else ""), flush=True)
            else:
                print(f"{shown}: {status}: {detail}", flush=True)
    print(f"{counts['ok']} passed, {counts['FAIL']} failed, {counts['skip']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
