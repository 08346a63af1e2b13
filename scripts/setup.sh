#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds nabla (release,
# into build/) and runs the main job: train_cnn, one epoch of a small CNN on
# Fashion-MNIST (on the GPU when one is present, else on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
build/examples/train_cnn "$@"
