#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (into build-fuzz/,
# the library instrumented with ASan and UBSan) and runs each for SECONDS
# (default 60) from its seed corpus, copied so that new inputs stay out of
# the tree. Skips with a message when clang or libFuzzer is missing.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! command -v clang >/dev/null || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
    echo "fuzz: skipped: clang with libFuzzer (Debian's clang and libclang-rt-14-dev) is not installed"
    exit 0
fi
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNABLA_FUZZ=ON \
    -DNABLA_CUDA=OFF -DNABLA_TESTS=OFF -DNABLA_BENCHMARKS=OFF -DNABLA_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_idx fuzz_safetensors >/dev/null
corpus=""
trap 'rm -rf "$corpus"' EXIT
for target in idx safetensors; do
    corpus="$(mktemp -d)"
    cp tests/fuzz/${target}_corpus/* "$corpus"/
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        build-fuzz/tests/fuzz/fuzz_$target -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus" 2>&1 | grep -E "^(#|stat::number_of_executed_units|stat::new_units_added|==|SUMMARY)|Done" | tail -5
    rm -rf "$corpus"
    echo "fuzz: fuzz_$target ran ${seconds} s without a failure"
done
