#!/usr/bin/env bash
# Installs what onnxc needs on a fresh Debian machine and builds it in release mode.
#   bash scripts/setup.sh
# System packages: protobuf-c (runtime library and the protoc-c generator), zlib (`.npz` archives) and graphviz
# (to render dumps).
# The float32 kernels (Sources/CKernels) are self-contained C: no BLAS or oneDNN package is needed to build or run.
# (scripts/bench_kernels.py --install adds OpenBLAS, BLIS and oneDNN, and with --conv XNNPACK and oneDNN, for the
# kernel comparisons only.)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
pkg-config --exists libprotobuf-c 2>/dev/null || need+=(libprotobuf-c-dev)
command -v protoc-c >/dev/null 2>&1 || need+=(protobuf-c-compiler)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The Swift runtime is linked statically, and nothing imports Foundation: a process then starts in about 3 ms
# instead of 6–8 (see Package.swift), most of `onnxc run` on a small model.
swift build -c release --product onnxc --static-swift-stdlib
echo "built $(pwd)/.build/release/onnxc" >&2
