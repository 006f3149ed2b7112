#!/usr/bin/env python3
"""Compares onnxc's shape inference with onnx.shape_inference on ONNX models.

For every model given (files or folders of .onnx files), runs `onnxc dump MODEL --format json`, collects each
value's inferred dtype and shape (main graph and subgraphs), runs onnx.shape_inference.infer_shapes on the
same file, and compares every value both sides know:
  - element types must be equal;
  - ranks must be equal;
  - per dim: two numbers must be equal; two symbols must be equal; a number against a symbol, or anything
    against an unknown dim, is not compared (onnx and onnxc name data-dependent dims differently, and onnxc
    writes symbolic expressions such as `batch*3` where onnx has none).
Prints each mismatch and a closing `N passed, M failed` line (one check per value compared); exits 1 on a
mismatch.

With --strip, declared output shapes and value_info are removed before onnxc sees the model, so the check
measures onnxc's own inference against onnx's (the onnx package's node tests are a good corpus:
python3 -c "import onnx, os; print(os.path.dirname(onnx.__file__))"/backend/test/data/node).

With --bind h=224 (repeatable), onnx sees the model with input dim `h` fixed to 224 while onnxc sees it
symbolic, and onnxc's expressions (`(h+1)/2`) are evaluated with h=224 before comparing.

Usage: scripts/check_shape_inference.py [--strip] [--bind NAME=VALUE]... [-q] [-v] [--onnxc PATH] MODEL_OR_DIR...
"""
import argparse
import json
import os
import subprocess
import sys

import onnx
from onnx import TensorProto


def onnx_dims(type_proto):
    if not type_proto.HasField("tensor_type"):
        return None, None
    tt = type_proto.tensor_type
    dtype = TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else None
    if not tt.HasField("shape"):
        return dtype, None
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dtype, dims


def onnx_types(graph, out):
    # Only node results are compared: graph inputs and initializers are given, not inferred.
    for vi in list(graph.output) + list(graph.value_info):
        out[vi.name] = onnx_dims(vi.type)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                onnx_types(attr.g, out)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    onnx_types(g, out)


def onnxc_types(graph, out):
    for key in ("inputs", "outputs", "value_info"):
        for vi in graph.get(key, []):
            if "dtype" in vi:
                out[vi["name"]] = (vi["dtype"], vi["shape"])
    for node in graph.get("nodes", []):
        for value in node.get("attributes", {}).values():
            if isinstance(value, dict) and "graph" in value:
                onnxc_types(value["graph"], out)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and "graph" in item:
                        onnxc_types(item["graph"], out)


def plain(symbol):
    return not any(c in symbol for c in "+-*/()")


# Differences that are understood and not onnxc's errors: (model folder, value name prefix) → why.
KNOWN_DIFFERENCES = {
    ("test_affine_grid_3d_expanded", "AffineGrid_test_affine_grid_3d_expanded_function_"):
        "Split num_outputs=4 of 5 elements in an If branch not taken: onnx gives [2,2,2,-1], onnxc [2,2,1,0]",
    ("test_affine_grid_3d_align_corners_expanded", "AffineGrid_test_affine_grid_3d_align_corners_expanded_function_"):
        "Split num_outputs=4 of 5 elements in an If branch not taken: onnx gives [2,2,2,-1], onnxc [2,2,1,0]",
    ("test_sequence_map_identity_1_sequence", "out0"):
        "SequenceMap body: onnx renames the body's declared dim N to the caller's M; onnxc keeps N",
}

BINDINGS = {}


def evaluate(dim):
    """An onnxc dim expression (`(h+1)/2*3`) with the --bind values substituted; unchanged when not evaluable."""
    if not isinstance(dim, str) or not BINDINGS:
        return dim
    names = "".join(c if c.isalnum() or c == "_" else " " for c in dim).split()
    if not all(n.isdigit() or n in BINDINGS for n in names):
        return dim
    try:
        # onnxc's `/` is floor division of non-negative sizes.
        return int(eval(dim.replace("/", "//"), {"__builtins__": {}}, dict(BINDINGS)))
    except Exception:  # noqa: BLE001 - a malformed expression is simply not compared
        return dim


def bound_copy(path, directory):
    """A copy of the model whose input dims named in --bind get those numbers, for onnx's reference shapes."""
    model = onnx.load(path, load_external_data=False)
    for vi in model.graph.input:
        if vi.type.HasField("tensor_type"):
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_param") and d.dim_param in BINDINGS:
                    d.dim_value = BINDINGS[d.dim_param]
    target = os.path.join(directory, f".bound-{os.getpid()}-{os.path.basename(path)}")
    onnx.save(model, target)
    return target


def compare(name, ours, theirs):
    """Returns None when consistent, else a message."""
    (odt, oshape), (tdt, tshape) = ours, theirs
    if oshape is not None:
        oshape = [evaluate(d) for d in oshape]
    if odt and tdt and odt != "UNDEFINED" and odt != tdt:
        return f"{name}: dtype {odt} vs onnx {tdt}"
    if oshape is None or tshape is None:
        return None
    if len(oshape) != len(tshape):
        return f"{name}: shape {oshape} vs onnx {tshape} (rank)"
    for a, b in zip(oshape, tshape):
        if a is not None and (b is None or (isinstance(b, str) and b.startswith("unk__"))):
            MORE_PRECISE[0] += 1
        if isinstance(a, int) and isinstance(b, int) and a != b:
            return f"{name}: shape {oshape} vs onnx {tshape}"
        # onnx names the dims it cannot relate `unk__N`; only the model's own symbols are compared.
        # onnxc's expressions (`batch*seq`) are not compared with a name the model gave the same dim.
        if isinstance(a, str) and isinstance(b, str) and a != b and not b.startswith("unk__") and plain(a) and plain(b):
            return f"{name}: shape {oshape} vs onnx {tshape} (symbols)"
    return None


# Values onnx gives a shape and onnxc gives none (not even a rank): not failures (onnxc may not cover the op),
# not counted as passed either; listed with -v.
MISSING = []
# Dims onnxc knows (a number or an expression) where onnx has none or made up an `unk__` name.
MORE_PRECISE = [0]
KNOWN = []


def short(path):
    """`test_conv/model.onnx`: the file with its folder, enough to find it."""
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def stripped_copy(path, directory):
    """A copy of the model with value_info dropped and graph output shapes cleared (in every graph), so
    onnxc must infer every shape itself instead of keeping the declared ones."""
    model = onnx.load(path, load_external_data=False)

    def strip(graph):
        del graph.value_info[:]
        for output in graph.output:
            if output.type.HasField("tensor_type"):
                output.type.tensor_type.ClearField("shape")
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    strip(attr.g)
                for g in attr.graphs:
                    strip(g)

    strip(model.graph)
    # Beside the original, so that external data files (named relative to the model) are still found.
    target = os.path.join(directory, f".stripped-{os.getpid()}-{os.path.basename(path)}")
    onnx.save(model, target)
    return target


def check(path, onnxc, strip=False):
    target = path
    if strip:
        target = stripped_copy(path, os.path.dirname(os.path.abspath(path)))
    try:
        result = subprocess.run([onnxc, "dump", target, "--format", "json"], capture_output=True, text=True)
    finally:
        if strip:
            os.remove(target)
    if result.returncode != 0:
        return 0, [f"{path}: onnxc dump failed: {result.stderr.strip()[:300]}"]
    ours = {}
    onnxc_types(json.loads(result.stdout)["graph"], ours)
    warnings = [line for line in result.stderr.splitlines() if "shape inference" in line]
    reference = bound_copy(path, os.path.dirname(os.path.abspath(path))) if BINDINGS else path
    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(reference, load_external_data=False))
    except Exception as error:  # noqa: BLE001 - onnx's own inference may reject a model
        return 0, [f"{path}: onnx.shape_inference failed: {error}"]
    finally:
        if BINDINGS:
            os.remove(reference)
    theirs = {}
    onnx_types(model.graph, theirs)
    passed, failures = 0, [f"{short(path)}: {w}" for w in warnings]
    for name, their_type in theirs.items():
        if name not in ours or (ours[name][1] is None and their_type[1] is not None):
            if their_type[1] is not None:
                MISSING.append(f"{short(path)}: {name} (onnx: {their_type[1]})")
            continue
        message = compare(name, ours[name], their_type)
        folder = os.path.basename(os.path.dirname(path))
        known = next((why for (f, prefix), why in KNOWN_DIFFERENCES.items() if f == folder and name.startswith(prefix)), None)
        if message and known:
            KNOWN.append(f"{short(path)}: {message} — known: {known}")
        elif message:
            failures.append(f"{short(path)}: {message}")
        else:
            passed += 1
    return passed, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "onnxc"))
    parser.add_argument("--strip", action="store_true",
                        help="clear the models' declared output shapes and value_info before running onnxc, and "
                             "compare with onnx's result on the original (checks onnxc's own inference)")
    parser.add_argument("--bind", action="append", default=[], metavar="NAME=VALUE",
                        help="give onnx the model with input dim NAME fixed to VALUE, and evaluate onnxc's symbolic "
                             "expressions with it: checks expressions such as (h+1)/2 numerically")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-model line")
    parser.add_argument("-v", "--verbose", action="store_true", help="list values onnx shapes and onnxc does not")
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    for binding in args.bind:
        name, _, value = binding.partition("=")
        BINDINGS[name] = int(value)
    paths = []
    for item in args.models:
        if os.path.isdir(item):
            for root, _, files in sorted(os.walk(item)):
                paths += sorted(os.path.join(root, f) for f in files if f.endswith(".onnx"))
        else:
            paths.append(item)
    total_passed, total_failed = 0, 0
    for path in paths:
        passed, failures = check(path, args.onnxc, strip=args.strip)
        for failure in failures:
            print(failure)
        if not args.quiet:
            print(f"{os.path.basename(path)}: {passed} passed, {len(failures)} failed", file=sys.stderr)
        total_passed += passed
        total_failed += len(failures)
    if args.verbose:
        for line in MISSING:
            print("not inferred:", line)
    for line in KNOWN:
        print(line, file=sys.stderr)
    print(f"{len(MISSING)} values shaped by onnx only; {MORE_PRECISE[0]} dims known to onnxc only; "
          f"{len(KNOWN)} known differences", file=sys.stderr)
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
