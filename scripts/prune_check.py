#!/usr/bin/env python3
"""Checks and measures `onnxc prune` on real models with ONNX Runtime as the oracle.

    python3 scripts/prune_check.py --onnxc .build/release/onnxc [--ratio 0.3] [--round-to N] [--bench] [--models a.onnx ...]

For each model (default: testdata/models/digits_cnn.onnx, testdata/models/pruning_zoo.onnx (scripts/gen_pruning_zoo.py:
BatchNorm, depthwise, squeeze-excitation, Split/Concat with a half used twice, ConvTranspose, Resize, Pad, a
channel Slice, Flatten into Gemm), testdata/exported/bert_tiny.onnx and, when exported
by scripts/export_torchvision.py, .cache/models/{resnet18,resnet50,mobilenet_v2,efficientnet_b0,yolo_tiny}.onnx):

1. `onnxc prune MODEL --ratio R --json` (no calibration data, so no refit);
2. the *masked* model: the original (canonicalized by `onnxc optimize -O1`, whose node names the report uses)
   with the removed channels zeroed in every consumer's weight slice, using the positions the report lists.
   Removing a channel is exactly the same as its consumers ignoring it, so ORT must give the pruned and the
   masked model the same outputs (to float rounding) — an end-to-end check of the groups, Concat/Split offsets,
   Flatten blocks and every rewritten attribute;
3. ORT runs the pruned model: graph output shapes must equal the original's;
4. reports parameters removed, and with --bench the compiled (.oxc) latency of pruned vs unpruned.

Exits non-zero on any mismatch.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_models import inputs_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIMS = {"batch": 1, "seq": 128}


def run(arguments: list[str]) -> str:
    done = subprocess.run(arguments, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout


def masked(model: onnx.ModelProto, removed: list[dict]) -> onnx.ModelProto:
    nodes = {n.name: n for n in model.graph.node}
    inits = {i.name: i for i in model.graph.initializer}
    for entry in removed:
        node = nodes[entry["layer"]]
        positions = entry["inputs"]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if not positions or (node.op_type == "Conv" and group != 1):
            continue  # a depthwise layer's removed channels reach only consumers that are masked
        w = numpy_helper.to_array(inits[node.input[1]]).copy()
        if node.op_type == "Conv":
            w[:, positions] = 0
        elif node.op_type == "ConvTranspose":
            w[positions] = 0
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            if trans_b:
                w[:, positions] = 0
            else:
                w[positions] = 0
        else:
            w[positions] = 0
        name = node.input[1] + "_masked_" + str(len(model.graph.initializer))
        model.graph.initializer.append(numpy_helper.from_array(w, name))
        node.input[1] = name
    return model


def session(model, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # the masked models leave the replaced weights unused; ORT warns about each
    source = model if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(str(source) if isinstance(source, Path) else source, options, providers=["CPUExecutionProvider"])


def compiled(onnxc: str, model: Path, feeds: dict, work: Path, tag: str) -> list[str]:
    """Compiles `model` with its inputs pinned; returns the `onnxc bench` command for it."""
    inputs, pins = [], []
    for i, (name, array) in enumerate(feeds.items()):
        file = work / f"{tag}_{i}.npy"
        np.save(file, array)
        inputs += ["--input", f"{name}={file}"]
        pins += ["--input-shape", f"{name}={'x'.join(map(str, array.shape))}"]
    oxc = work / f"{tag}.oxc"
    run([onnxc, "compile", str(model), "-O2", "-o", str(oxc)] + pins)
    return [onnxc, "bench", str(oxc), "--json", "--runs", "40", "--warmup", "5", "--threads", "2"] + inputs


def bench(commands: list[list[str]], rounds: int = 3) -> list[float]:
    """The best median of `rounds` interleaved runs of each command (the machine is shared and noisy)."""
    best = [float("inf")] * len(commands)
    for _ in range(rounds):
        for i, command in enumerate(commands):
            best[i] = min(best[i], json.loads(run(command).strip().splitlines()[-1])["median_ms"])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", default=str(ROOT / ".build/release/onnxc"))
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--bench", action="store_true", help="also time pruned vs unpruned .oxc (2 threads, best median of 3 interleaved rounds)")
    parser.add_argument("--round-to", type=int, default=1, help="passed to onnxc prune")
    parser.add_argument("--models", nargs="*", type=Path)
    args = parser.parse_args()
    models = args.models or [ROOT / "testdata/models/digits_cnn.onnx", ROOT / "testdata/models/pruning_zoo.onnx",
                             ROOT / "testdata/exported/bert_tiny.onnx"] + \
        [ROOT / f".cache/models/{n}.onnx" for n in ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "yolo_tiny")]
    failed = False
    print("| model | params before | after | removed | groups pruned | max err (pruned vs masked) | output shapes |"
          + (" oxc ms unpruned | pruned | speed-up |" if args.bench else ""))
    print("|---|---|---|---|---|---|---|" + ("---|---|---|" if args.bench else ""))
    for path in models:
        if not path.exists():
            print(f"skip {path}: missing (run scripts/export_torchvision.py)", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            canonical, pruned = work / "canonical.onnx", work / "pruned.onnx"
            run([args.onnxc, "optimize", str(path), "-O1", "-o", str(canonical)])
            report = json.loads(run([args.onnxc, "prune", str(path), "--ratio", str(args.ratio), "--round-to", str(args.round_to), "--json", "-o", str(pruned)]))["pruning"]
            original = onnx.load(str(canonical))
            feeds = inputs_for(original, DIMS, np.random.default_rng(0))
            if path.name == "digits_cnn.onnx":
                feeds = {"input": np.load(ROOT / "testdata/quant/digits_eval.npz")["input"][:64]}
            onnx.checker.check_model(onnx.load(str(pruned)))
            reference = session(masked(original, report["removed_channels"])).run(None, feeds)
            outputs = session(pruned).run(None, feeds)
            full = session(canonical).run(None, feeds)
            shapes_ok = all(a.shape == b.shape for a, b in zip(full, outputs))
            error = max(float(np.abs(a - b).max() / max(1e-6, float(np.abs(a).max()))) for a, b in zip(reference, outputs))
            ok = shapes_ok and error <= 1e-4
            failed |= not ok
            before, after = report["params_before"], report["params_after"]
            groups = report["groups"]
            row = (f"| {path.stem} | {before / 1e6:.3f} M | {after / 1e6:.3f} M | {100 * (1 - after / before):.1f} % "
                   f"| {sum(g['channels_after'] < g['channels_before'] for g in groups)} of {len(groups)} | {error:.1e} "
                   f"| {'same' if shapes_ok else 'DIFFERENT'} |")
            if args.bench:
                t0, t1 = bench([compiled(args.onnxc, canonical, feeds, work, "unpruned"), compiled(args.onnxc, pruned, feeds, work, "pruned")])
                row += f" {t0:.2f} | {t1:.2f} | {t0 / t1:.2f}× |"
            print(row + ("" if ok else " **FAIL**"), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
