#!/usr/bin/env bash
# Builds the GPU run's binaries here (no GPU needed) for sm_90 with cuDNN and
# packs them, so a lent machine spends its minutes running, not compiling:
#   benchmarks/gpu/prebuild.sh [ARCHIVE]     # default build-prebuilt/nabla-sm90.tar.gz
# then carry the archive and run benchmarks/gpu/run.sh --prebuilt ARCHIVE there.
# Every binary finds libnabla.so through a RUNPATH relative to $ORIGIN; the
# CUDA, cuDNN and OpenBLAS libraries come from that machine (run.sh points
# LD_LIBRARY_PATH at them). A binary built on this image may still fail to
# load there: run.sh then says so, and building there (without --prebuilt)
# is the fallback. The lent machine has no MPI, so the archive is built
# without the communicator (-DNABLA_MPI=OFF): a libnabla.so needing
# libmpi.so would load nowhere there; nor with the OpenMP OpenBLAS's
# liblapack.so.3 (-DNABLA_BLAS_COMPANIONS=OFF), which .gpudeps does not carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
archive="${1:-build-prebuilt/nabla-sm90.tar.gz}"
cmake -S . -B build-prebuilt -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DNABLA_CUDNN=ON -DNABLA_MPI=OFF -DNABLA_BLAS_COMPANIONS=OFF -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON >build-prebuilt.configure.log 2>&1 ||
    { tail -20 build-prebuilt.configure.log; exit 1; }
mv build-prebuilt.configure.log build-prebuilt/configure.log
cmake --build build-prebuilt -j"$(nproc)" >/dev/null
# libnabla.so needs cJSON (safetensors headers), which the lent machine lacks:
# it travels beside libnabla.so (run.sh puts that folder on LD_LIBRARY_PATH)
cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 build-prebuilt/
# and the DLPack header, for the Python extension run.sh compiles there
mkdir -p build-prebuilt/include/dlpack && cp /usr/include/dlpack/dlpack.h build-prebuilt/include/dlpack/
files=$(cd build-prebuilt && ls libnabla.so* libcjson.so.1 include/dlpack/dlpack.h configure.log tests/test_* benchmarks/bench_* \
        examples/train_cnn examples/train_gpt examples/fit_mlp 2>/dev/null | grep -v '\.cmake$')
mkdir -p "$(dirname "$archive")"
tar -C build-prebuilt -czf "$archive" $files
du -h "$archive" | awk '{print "prebuild: " $2 " (" $1 "): carry it and run benchmarks/gpu/run.sh --prebuilt " $2}'
