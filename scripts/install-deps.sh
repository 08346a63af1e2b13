#!/usr/bin/env bash
# Installs what nabla needs on Debian: a C toolchain, CMake, OpenBLAS (its
# OpenMP build, which shares nabla's thread pool),
# googletest, OpenMP (with gcc), OpenMPI (the communicator), ccache, zlib, clang with libFuzzer (the fuzz
# targets), PyPI's cuobjdump (the kernel resource check), the Fashion-MNIST data set
# (/usr/share/datasets/fashion-mnist), the King James Bible (bible-kjv), cJSON and DLPack (safetensors
# files, tensor exchange), and in .venv numpy, pytest and safetensors (the Python tests), scikit-build-core
# (pip install of the Python package), tqdm and matplotlib (the Python examples). Runs apt-get
# through sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config ccache libopenblas-dev libopenblas-openmp-dev \
    libgtest-dev zlib1g-dev clang libclang-rt-14-dev libomp-dev libopenmpi-dev openmpi-bin \
    libcjson-dev libdlpack-dev python3-venv python3-dev \
    dataset-fashion-mnist bible-kjv >/dev/null
# cuobjdump for the kernel resource check (tests/kernel_resources.py), from PyPI
python3 -m pip install --quiet nvidia-cuda-cuobjdump 2>/dev/null ||
    echo "install-deps: no pip for nvidia-cuda-cuobjdump; the kernel resource check will skip"
# The Python tests' packages, in a virtual environment of the project's own
# (.venv; it sees Debian's packages too, python3-torch among them when installed, which was
# built against numpy 1: hence numpy < 2)
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
.venv/bin/python -m pip install --quiet --upgrade "numpy<2" pytest "safetensors>=0.8,<0.9" \
    "scikit-build-core>=0.10" tqdm matplotlib
echo "install-deps: done"
