#!/usr/bin/env python3
"""Compare `onnxc optimize` with onnxslim and onnxsim: node count, wall time and peak memory per model.

Usage:
    swift build -c release --product onnxc
    pip install onnxslim onnxsim          # either may be missing: its columns then read "n/a"
    python3 scripts/compare_simplifiers.py [--onnxc .build/release/onnxc] [-O 2] [--timeout 1800] [MODEL.onnx or DIR ...]

Default models: every *.onnx in .cache/models and testdata/exported (relative to the repository root); files
with the same bytes are measured once. Each tool runs on each model in its own subprocess with its default
settings (onnxc as `onnxc optimize MODEL -O2 -o OUT`, the Python tools as `python -m onnxslim MODEL OUT` and
`python -m onnxsim MODEL OUT`), one at a time, so wall time includes process start-up and model loading and
saving, and peak MB is the largest resident set of the subprocess and the processes it waited for (wait4's
ru_maxrss). Nodes are counted in the written model, subgraphs included; "fail" marks a tool that exited with
an error or ran past the timeout. Models and tools are visited in sorted, fixed order; only the times and
memory vary between runs.

Prints a markdown table
    model | nodes (orig / onnxc / onnxslim / onnxsim) | time s (onnxc / onnxslim / onnxsim) |
    peak MB (onnxc / onnxslim / onnxsim) | model MB
and a closing summary line.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = [ROOT / ".cache" / "models", ROOT / "testdata" / "exported"]
PYTHON_TOOLS = ["onnxslim", "onnxsim"]


@dataclass
class Run:
    nodes: int | None = None  # None: the tool failed
    seconds: float | None = None
    peak_mb: float | None = None
    error: str = ""


def count_nodes(graph: onnx.GraphProto) -> int:
    total = 0
    for node in graph.node:
        total += 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                total += count_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                total += sum(count_nodes(g) for g in attribute.graphs)
    return total


TIME = Path("/usr/bin/time")


def kill_tree(pid: int) -> None:
    """Kills `pid` and its children (the tool under /usr/bin/time), by process id."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        kill_tree(int(child))
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def measure(command: list[str], timeout: float) -> tuple[int, float, float, str]:
    """Runs `command`; returns (exit status, wall seconds, peak resident MB, last line of stderr).

    Peak memory comes from GNU time's %M when /usr/bin/time exists: a child forked straight from this script
    inherits its high-water mark (Linux keeps ru_maxrss across exec), which would count the models this script
    loaded. Without it, wait4's ru_maxrss is used, an upper bound.
    """
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        report = Path(work) / "time.txt"
        wrapped = [str(TIME), "-f", "%M", "-o", str(report)] + command if TIME.exists() else command
        start = time.perf_counter()
        process = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.perf_counter() - start > timeout:
                timed_out = True
                kill_tree(process.pid)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: keep Popen from waiting again
        peak_kb = float(usage.ru_maxrss)
        if TIME.exists() and report.exists():
            numbers = [line for line in report.read_text().split() if line.isdigit()]
            if numbers:
                peak_kb = float(numbers[-1])
        if timed_out:
            return -9, elapsed, peak_kb / 1024, f"timed out after {timeout:g} s"
        code = process.returncode
        err.seek(0)
        lines = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
        return code, elapsed, peak_kb / 1024, (lines[-1][:160] if lines else "")


def run_tool(tool: str, onnxc: str, level: int, model: Path, timeout: float) -> Run:
    with tempfile.TemporaryDirectory() as work:
        output = Path(work) / "out.onnx"
        if tool == "onnxc":
            command = [onnxc, "optimize", str(model), f"-O{level}", "-o", str(output)]
        else:
            command = [sys.executable, "-m", tool, str(model), str(output)]
        code, seconds, peak, message = measure(command, timeout)
        if code != 0 or not output.exists():
            return Run(seconds=seconds, peak_mb=peak, error=message or f"exit {code}")
        try:
            nodes = count_nodes(onnx.load(str(output), load_external_data=False).graph)
        except Exception as error:  # noqa: BLE001 - any unreadable output counts as a failure
            return Run(seconds=seconds, peak_mb=peak, error=f"unreadable output: {error}")
        return Run(nodes=nodes, seconds=seconds, peak_mb=peak)


def models_from(arguments: list[str]) -> list[Path]:
    candidates: list[Path] = []
    for item in [Path(a) for a in arguments] or DEFAULT_DIRS:
        if item.is_dir():
            candidates.extend(sorted(p for p in item.glob("*.onnx") if p.is_file()))
        elif item.is_file():
            candidates.append(item)
        elif arguments:
            sys.exit(f"error: {item} is not a file or directory")
    seen: set[str] = set()
    models: list[Path] = []
    for path in candidates:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            models.append(path)
    return sorted(models, key=lambda p: (p.name, str(p)))


def cell(values: list[str]) -> str:
    return " / ".join(values)


def fmt_nodes(run: Run | None) -> str:
    if run is None:
        return "n/a"
    return str(run.nodes) if run.nodes is not None else "fail"


def fmt_float(run: Run | None, field: str, digits: int) -> str:
    if run is None:
        return "n/a"
    value = getattr(run, field)
    return f"{value:.{digits}f}" if value is not None else "fail"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model files or directories (default: .cache/models, testdata/exported)")
    parser.add_argument("--onnxc", default=str(ROOT / ".build" / "release" / "onnxc"), help="the onnxc binary")
    parser.add_argument("-O", dest="level", type=int, default=2, help="onnxc optimization level (default 2)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a tool run counts as failed")
    args = parser.parse_args()

    if not os.access(args.onnxc, os.X_OK):
        sys.exit(f"error: no onnxc binary at {args.onnxc} (build it with `swift build -c release --product onnxc` or pass --onnxc)")
    available = {tool: importlib.util.find_spec(tool) is not None for tool in PYTHON_TOOLS}
    for tool, ok in available.items():
        if not ok:
            print(f"note: {tool} is not installed (pip install {tool}); its columns read n/a", file=sys.stderr)
    models = models_from(args.models)
    if not models:
        sys.exit("error: no models found")

    tools = ["onnxc"] + PYTHON_TOOLS
    print(f"| model | nodes (orig / onnxc / onnxslim / onnxsim) | time s (onnxc / onnxslim / onnxsim) "
          f"| peak MB (onnxc / onnxslim / onnxsim) | model MB |")
    print("| --- | --- | --- | --- | --- |")
    totals = {tool: [0.0, 0, 0] for tool in tools}  # seconds, nodes, failures
    peaks = {tool: 0.0 for tool in tools}
    original_total = 0
    failures: list[str] = []
    for model in models:
        original = count_nodes(onnx.load(str(model), load_external_data=False).graph)
        original_total += original
        runs: dict[str, Run | None] = {}
        for tool in tools:
            if tool != "onnxc" and not available[tool]:
                runs[tool] = None
                continue
            run = run_tool(tool, args.onnxc, args.level, model, args.timeout)
            runs[tool] = run
            totals[tool][0] += run.seconds or 0
            peaks[tool] = max(peaks[tool], run.peak_mb or 0)
            if run.nodes is None:
                totals[tool][2] += 1
                failures.append(f"{model.name}: {tool}: {run.error}")
            else:
                totals[tool][1] += run.nodes
        size = model.stat().st_size / 1e6
        print(f"| {model.stem} | {cell([str(original)] + [fmt_nodes(runs[t]) for t in tools])} "
              f"| {cell([fmt_float(runs[t], 'seconds', 2) for t in tools])} "
              f"| {cell([fmt_float(runs[t], 'peak_mb', 0) for t in tools])} | {size:.1f} |", flush=True)

    if failures:
        print()
        for line in failures:
            print(f"failed: {line}")
    parts = []
    for tool in tools:
        if tool != "onnxc" and not available[tool]:
            parts.append(f"{tool} n/a")
            continue
        seconds, nodes, failed = totals[tool]
        note = f", {failed} failed" if failed else ""
        parts.append(f"{tool} {nodes} nodes in {seconds:.1f} s, peak {peaks[tool]:.0f} MB{note}")
    print(f"\n{len(models)} models, {original_total} nodes originally (-O{args.level} for onnxc): " + "; ".join(parts)
          + " (node totals count successful runs only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
