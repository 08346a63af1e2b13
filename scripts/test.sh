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
# the Python tests, in install-deps.sh's .venv: the package of the build tree (build/python/nabla;
# python/tests), once more with CPython's debug allocator (bad reference counts and writes show
# there), and the ctypes tests of interop with PyPI's safetensors and PyTorch (tests/python)
[ -x .venv/bin/python ] || { echo "test: no .venv: run scripts/install-deps.sh first"; exit 1; }
NABLA_PYTHON_DIR="$PWD/build/python" .venv/bin/python -m pytest -q python/tests
NABLA_PYTHON_DIR="$PWD/build/python" PYTHONMALLOC=debug .venv/bin/python -m pytest -q python/tests
NABLA_LIB="$PWD/build/libnabla.so" .venv/bin/python -m pytest -q tests/python
# nabla.distributed on 2 ranks (skipped by the runs above, which are not under mpirun)
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
OMPI_MCA_btl_vader_single_copy_mechanism=none NABLA_PYTHON_DIR="$PWD/build/python" \
    mpirun -np 2 .venv/bin/python -m pytest -q -p no:cacheprovider python/tests/distributed

if [ "${1:-}" != "--no-sanitize" ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNABLA_SANITIZE=ON -DNABLA_CUDA=OFF \
          -DNABLA_BENCHMARKS=OFF
    cmake --build build-asan -j"$jobs"
    # allocator_may_return_null lets the out-of-memory tests see a failed allocation
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan -j"$jobs" --output-on-failure
    # the extension under ASan: the interpreter is not instrumented, so the runtime is preloaded
    # (with libstdc++, whose __cxa_throw ASan must find for PyTorch's exceptions) and leak checking
    # (which CPython's own allocations would flood) is off
    LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 NABLA_PYTHON_DIR="$PWD/build-asan/python" \
        .venv/bin/python -m pytest -q python/tests
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
    OMPI_MCA_btl_vader_single_copy_mechanism=none \
    LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)" \
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 NABLA_PYTHON_DIR="$PWD/build-asan/python" \
        mpirun -np 2 .venv/bin/python -m pytest -q -p no:cacheprovider python/tests/distributed
    scripts/fuzz.sh 60
fi
echo "test: all suites passed"
