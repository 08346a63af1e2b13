#!/usr/bin/env bash
# The README's second command: the whole test suite. Builds (release, into
# build/) and runs every test, then builds the CPU library and tests with
# AddressSanitizer and UndefinedBehaviorSanitizer (into build-asan/, leak
# checking on) and runs them again, then fuzzes the file readers for a minute
# (scripts/fuzz.sh). --no-sanitize skips both.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build -j"$jobs" --output-on-failure
# the Python tests (interop with PyPI's safetensors), in install-deps.sh's .venv
[ -x .venv/bin/python ] || { echo "test: no .venv: run scripts/install-deps.sh first"; exit 1; }
NABLA_LIB="$PWD/build/libnabla.so" .venv/bin/python -m pytest -q tests/python

if [ "${1:-}" != "--no-sanitize" ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNABLA_SANITIZE=ON -DNABLA_CUDA=OFF \
          -DNABLA_BENCHMARKS=OFF
    cmake --build build-asan -j"$jobs"
    # allocator_may_return_null lets the out-of-memory tests see a failed allocation
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan -j"$jobs" --output-on-failure
    scripts/fuzz.sh 60
fi
echo "test: all suites passed"
