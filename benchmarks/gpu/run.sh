#!/usr/bin/env bash
# What a session with a lent GPU runs: builds nabla with CUDA for the GPU's
# architecture (incrementally: a warm machine keeps build-gpu/), then the
# parts asked for, all but smoke by default:
#   smoke      only what needs the GPU, in few processes: the CUDA op and
#              gradient cases, test_cuda, the CUDA attention and GPT tests,
#              the half-precision gradient check; then core and attention
#              with --quick (the first call of a session)
#   tests      the whole test suite (every op case on CUDA included), test_cuda
#   core       bench_cuda beside benchmarks/torch_ops.py (core ops, softmax,
#              LayerNorm and RMSNorm, matmul)
#   attention  the fused attention beside scaled_dot_product_attention
#   conv       convolutions and BatchNorm in f32 and bf16 at batch 64 and 256
#   python     the Python package on the GPU: python/tests/test_cuda.py
#              (moves, ops, autograd, DLPack with PyTorch and CuPy, modules,
#              the GPT in bf16, the Python examples on CUDA), test_gpt.py
#   cnn        the CNN example beside its PyTorch twin
#   gpt        the GPT example at the GPT-2 small shape (12 layers, 768 wide,
#              12 heads, context 1024) beside its PyTorch twin
# and writes the logs and comparison tables to the output folder. --quick
# shortens every part. A device call runs at most 10 minutes: run the parts
# in several calls, e.g. --parts smoke, then conv,cnn, then gpt (the plan in
# docs/cuda.md). Each part prints its wall time.
#
#   benchmarks/gpu/run.sh [OUT_DIR] [--quick] [--parts LIST] [--prebuilt ARCHIVE]
#   # OUT_DIR defaults to $OUT, else gpu-out/; LIST is comma-separated;
#   # ARCHIVE is benchmarks/gpu/prebuild.sh's, unpacked instead of building
#
# On the lent machine: run ../shared/tools/gpu-deps.sh here first, carry
# .gpudeps, and this script sources .gpudeps/env.sh itself.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-gpu-out}"
quick=""
parts="tests,core,attention,conv,cnn,gpt"
prebuilt=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick="--quick" ;;
    --parts) parts="$2"; shift ;;
    --prebuilt) prebuilt="$2"; shift ;;
    -*) echo "usage: benchmarks/gpu/run.sh [OUT_DIR] [--quick] [--parts LIST] [--prebuilt ARCHIVE]" >&2
        exit 2 ;;
    *) out="$1" ;;
    esac
    shift
done
wants() { [[ ",$parts," == *",$1,"* ]]; }
# smoke implies core and attention, both quick
if wants smoke; then parts="$parts,core,attention"; quick="--quick"; fi
part_start=0
begin_part() { part_start=$(date +%s); }
end_part() { echo "part $1: $(($(date +%s) - part_start)) s" | tee -a "$out/device.txt"; }
mkdir -p "$out"
[ -f .gpudeps/env.sh ] && source .gpudeps/env.sh
# Decompressed copies of the data set: the loader reads them first, so a
# build without zlib (headers the GPU machine may lack) reads them too.
if [ -n "${NABLA_FASHION_MNIST_DIR:-}" ] && [ -d "$NABLA_FASHION_MNIST_DIR" ]; then
    raw="${TMPDIR:-/tmp}/nabla-fashion-mnist"
    mkdir -p "$raw"
    python3 - "$NABLA_FASHION_MNIST_DIR" "$raw" <<'PY'
import gzip, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    if name.endswith(".gz"):
        with gzip.open(os.path.join(src, name)) as f, open(os.path.join(dst, name[:-3]), "wb") as g:
            shutil.copyfileobj(f, g)
PY
    export NABLA_FASHION_MNIST_DIR="$raw"
fi
# cuDNN: the toolkit's when it has one, else the wheel PyTorch brings.
if [ -z "${CUDNN_ROOT:-}" ] && ! ls /usr/local/cuda/include/cudnn.h >/dev/null 2>&1; then
    CUDNN_ROOT=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null) &&
        export CUDNN_ROOT && export LD_LIBRARY_PATH="$CUDNN_ROOT/lib:${LD_LIBRARY_PATH:-}"
fi
arch="${CUDA_ARCH:-90}"
status=0

{
    nvidia-smi || true
    nvcc --version | tail -1
    echo "CUDNN_ROOT=${CUDNN_ROOT:-}"
} >"$out/device.txt" 2>&1

start=$(date +%s)
if [ -n "$prebuilt" ]; then # binaries built elsewhere for sm_90 (benchmarks/gpu/prebuild.sh)
    export LD_LIBRARY_PATH="$PWD/build-gpu:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
    mkdir -p build-gpu && tar -C build-gpu -xzf "$prebuilt" || { echo "cannot unpack $prebuilt"; exit 1; }
    cp build-gpu/configure.log "$out/configure.log"
    build-gpu/tests/test_cuda --gtest_list_tests >/dev/null 2>"$out/load.log" ||
        { echo "the prebuilt binaries do not load here (run without --prebuilt):"; cat "$out/load.log"; exit 1; }
else
    # cuDNN is required here: a run without it would time the GEMM fallback
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" -DNABLA_CUDNN=ON \
          >"$out/configure.log" 2>&1 &&
        cmake --build build-gpu -j"$(nproc)" >"$out/build.log" 2>&1 || { echo "build failed"; tail -30 "$out/build.log"; exit 1; }
fi
echo "build: $(($(date +%s) - start)) s" | tee -a "$out/device.txt"
grep "nabla:" "$out/configure.log" | tee -a "$out/device.txt"
grep -q "nabla: cuDNN ON" "$out/configure.log" || { echo "cuDNN is not in this build: stopping"; exit 1; }

# The tests that need the GPU: a few processes, the results in the logs.
gpu_tests() {
    build-gpu/tests/test_ops --gtest_filter='*Cuda*' >"$out/test_ops_cuda.log" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED)|tests ran" "$out/test_ops_cuda.log" || true
    build-gpu/tests/test_cuda >"$out/test_cuda.log" 2>&1 || status=1
    grep -E "^\[ cuda|^\[  (PASSED|FAILED)" "$out/test_cuda.log" || true
    build-gpu/tests/test_transformer --gtest_filter='Cuda*:Gpt*' >"$out/test_transformer.log" 2>&1 || status=1
    grep -E "^\[ cuda|OK|FAILED" "$out/test_transformer.log" || true
    build-gpu/tests/test_regressions --gtest_filter='*HalfPrecision*' >"$out/test_regressions.log" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED)" "$out/test_regressions.log" || true
    build-gpu/tests/test_sort --gtest_filter='*Cuda*' >"$out/test_sort.log" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED)" "$out/test_sort.log" || true
}

# The Python package over build-gpu's libnabla: the build's own extension when
# it made one for this python3, else one compiled here (a prebuilt archive's
# is for the building machine's Python), with the DLPack header it carries.
python_package() {
    local dir=build-gpu/python suffix pyinc dlpack=""
    suffix=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    mkdir -p "$dir/nabla" && cp -r python/nabla/. "$dir/nabla/"
    [ -f "$dir/nabla/_C$suffix" ] && return 0
    pyinc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    [ -f build-gpu/include/dlpack/dlpack.h ] && dlpack="-Ibuild-gpu/include -DNBP_WITH_DLPACK"
    gcc -std=c11 -O2 -shared -fPIC -fvisibility=hidden -Iinclude -I"$pyinc" $dlpack python/src/*.c \
        -Lbuild-gpu -lnabla -Wl,-rpath,"$PWD/build-gpu" -o "$dir/nabla/_C$suffix" >"$out/python_build.log" 2>&1
}

if wants python; then
    begin_part
    if python_package; then
        NABLA_PYTHON_DIR="$PWD/build-gpu/python" PYTHONUNBUFFERED=1 python3 -m pytest -q -rs -p no:cacheprovider \
            python/tests/test_cuda.py python/tests/test_gpt.py >"$out/pytest_cuda.log" 2>&1 || status=1
        tail -15 "$out/pytest_cuda.log"
    else
        echo "the Python extension did not build:"; tail -20 "$out/python_build.log"; status=1
    fi
    end_part python
fi

if wants smoke; then
    begin_part
    NABLA_POISON_ALLOC=1 NABLA_DETERMINISTIC=1 gpu_tests
    end_part smoke
fi

if wants tests; then
    begin_part
    if [ -n "$prebuilt" ]; then
        NABLA_POISON_ALLOC=1 NABLA_DETERMINISTIC=1 gpu_tests
    else
        ctest --test-dir build-gpu -j4 --output-on-failure >"$out/ctest.log" 2>&1 || status=1
        tail -5 "$out/ctest.log"
        gpu_tests
    fi
    end_part tests
fi

if wants core; then
    begin_part
    build-gpu/benchmarks/bench_cuda $quick >"$out/bench_nabla.jsonl" 2>"$out/bench_nabla.err" || status=1
    python3 benchmarks/torch_ops.py $quick >"$out/bench_torch.jsonl" 2>"$out/bench_torch.err" || status=1
    python3 benchmarks/gpu/compare.py "$out/bench_nabla.jsonl" "$out/bench_torch.jsonl" \
        | tee "$out/compare.md"
    end_part core
fi

if wants attention; then
    begin_part
    seq=8192
    [ -n "$quick" ] && seq=2048
    build-gpu/benchmarks/bench_attention --device cuda --max-seq $seq \
        >"$out/attention_nabla.jsonl" 2>"$out/attention_nabla.err" || status=1
    for backend in flash cudnn; do
        python3 benchmarks/torch_attention.py --backend $backend --max-seq $seq \
            >"$out/attention_torch_$backend.jsonl" 2>"$out/attention_torch_$backend.err" || status=1
        python3 benchmarks/gpu/compare.py "$out/attention_nabla.jsonl" "$out/attention_torch_$backend.jsonl" \
            | tee "$out/attention_$backend.md"
    done
    end_part attention
fi

if wants conv; then
    begin_part
    batches="64 256"
    [ -n "$quick" ] && batches="64"
    for dtype in f32 bf16; do
        for batch in $batches; do
            tag="conv_${dtype}_b${batch}"
            build-gpu/benchmarks/bench_conv --device cuda --dtype $dtype --batch $batch \
                >"$out/${tag}_nabla.jsonl" 2>"$out/${tag}_nabla.err" || status=1
            python3 benchmarks/torch_conv.py --device cuda --dtype $dtype --batch $batch \
                >"$out/${tag}_torch.jsonl" 2>"$out/${tag}_torch.err" || status=1
            python3 benchmarks/gpu/compare.py "$out/${tag}_nabla.jsonl" "$out/${tag}_torch.jsonl" \
                >"$out/${tag}.md"
        done
    done
    cat "$out"/conv_*.md
    end_part conv
fi

if wants cnn; then
    begin_part
    epochs=10
    [ -n "$quick" ] && epochs=1
    build-gpu/examples/train_cnn --device cuda --epochs $epochs --csv "$out/train_cnn_loss.csv" \
        >"$out/train_cnn.log" 2>&1 || status=1
    python3 benchmarks/torch_cnn.py --device cuda --epochs $epochs >"$out/torch_cnn.log" 2>&1 || status=1
    grep -h "test accuracy\|test_accuracy" "$out/train_cnn.log" "$out/torch_cnn.log"
    end_part cnn
fi

if wants gpt; then
    begin_part
    steps=300 every=100
    [ -n "$quick" ] && steps=30 every=30
    gpt="--layers 12 --dim 768 --heads 12 --context 1024 --batch 8 --steps $steps --eval-every $every"
    build-gpu/examples/train_gpt --device cuda $gpt --sample 200 >"$out/train_gpt.log" 2>&1 || status=1
    python3 benchmarks/torch_gpt.py --device cuda $gpt >"$out/torch_gpt.log" 2>&1 || status=1
    grep -h "^done" "$out/train_gpt.log" "$out/torch_gpt.log"
    end_part gpt
fi
exit $status
