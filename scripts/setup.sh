#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds nabla (release,
# into build/), installs the Python package nabla into the project's virtual
# environment .venv (pip install ., built by scikit-build-core in build/pip),
# and runs the main job: train_cnn, one epoch of a small CNN on Fashion-MNIST
# (on the GPU when one is present, else on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install --quiet --no-build-isolation .
build/examples/train_cnn "$@"
