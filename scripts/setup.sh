#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds nabla (release,
# into build/) and runs the main job, the fit_mlp demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
build/examples/fit_mlp
