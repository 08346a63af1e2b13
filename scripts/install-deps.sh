#!/usr/bin/env bash
# Installs what nabla needs on Debian: a C toolchain, CMake, OpenBLAS (its
# OpenMP build, which shares nabla's thread pool),
# googletest, OpenMP (with gcc), OpenMPI (the communicator), ccache, zlib, clang with libFuzzer (the fuzz
# targets), PyPI's cuobjdump (the kernel resource check), the Fashion-MNIST data set
# (/usr/share/datasets/fashion-mnist) and the King James Bible (bible-kjv). Runs apt-get through sudo when not root.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config ccache libopenblas-dev libopenblas-openmp-dev \
    libgtest-dev zlib1g-dev clang libclang-rt-14-dev libomp-dev libopenmpi-dev openmpi-bin \
    libcjson-dev libdlpack-dev \
    dataset-fashion-mnist bible-kjv >/dev/null
# cuobjdump for the kernel resource check (tests/kernel_resources.py), from PyPI
python3 -m pip install --quiet nvidia-cuda-cuobjdump 2>/dev/null ||
    echo "install-deps: no pip for nvidia-cuda-cuobjdump; the kernel resource check will skip"
echo "install-deps: done"
