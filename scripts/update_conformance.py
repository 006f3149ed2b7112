#!/usr/bin/env python3
"""Rewrite a conformance list (testdata/conformance/*.txt) from an `onnxc test --json` run.

Usage:
    python3 scripts/update_conformance.py --onnxc .build/release/onnxc testdata/node testdata/conformance/node.txt

Every test that passes becomes a must-pass line. Every test that fails becomes `- name  # reason`: a reason
already written in the list is kept (edit those by hand to explain *why*, e.g. "ORT and onnxc disagree with
the reference on ..."), otherwise the failure message is used. The list only grows: if a test the list
requires now fails, the script stops with an error instead of excluding it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def read(path: Path) -> tuple[set[str], dict[str, str]]:
    must, excluded = set(), {}
    if not path.exists():
        return must, excluded
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            name, _, reason = line[1:].partition("#")
            excluded[name.strip()] = reason.strip()
        else:
            must.add(line)
    return must, excluded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnxc", required=True)
    parser.add_argument("tests", type=Path, help="folder of test folders")
    parser.add_argument("list", type=Path, help="conformance list to rewrite")
    args = parser.parse_args()
    run = subprocess.run([args.onnxc, "test", str(args.tests), "--json"], capture_output=True, text=True)
    if run.returncode not in (0, 1):
        sys.exit(f"onnxc test failed: {run.stderr}")
    results = json.loads(run.stdout)["tests"]
    must, excluded = read(args.list)
    regressions = [t["test"] for t in results if t["test"] in must and not t["passed"]]
    if regressions:
        sys.exit("error: tests the list requires now fail (fix them; the list only grows): " + " ".join(regressions))
    lines = [f"# {args.tests.name} conformance: `name` must pass; `- name  # reason` is excluded, with why.",
             "# Regenerate with scripts/update_conformance.py; it never drops a must-pass test."]
    for test in sorted(results, key=lambda t: t["test"]):
        name = test["test"]
        if test["passed"]:
            lines.append(name)
        else:
            reason = excluded.get(name) or " ".join(test["detail"].split())[:160] or "fails"
            lines.append(f"- {name}  # {reason}")
    args.list.parent.mkdir(parents=True, exist_ok=True)
    args.list.write_text("\n".join(lines) + "\n")
    passed = sum(t["passed"] for t in results)
    print(f"{args.list}: {passed} must pass, {len(results) - passed} excluded")


if __name__ == "__main__":
    main()
