// softmax and log_softmax along one dim of a contiguous input seen as
// [outer, size, inner]. All paths follow the CPU's rules: the maximum skips
// NaN, an all -inf row shifts by 0 (NaN out, as PyTorch), and a NaN or +inf
// in a row makes the whole row NaN (exp(inf - inf) enters the sum).
//  - inner == 1, rows of up to 32 values a thread (32,768 f32 values in a
//    1024-thread block): the row is held in registers (rows.cuh), read once
//    with 16-byte loads, its maximum and sum merged by shuffles (shared memory
//    only across warps), one exp per element, written once. In f32, f16 and
//    bf16 the exp is exp2f with log2(e) folded into the shift (one MUFU.EX2
//    instead of expf's range reduction) and the sum's reciprocal multiplies.
//  - inner == 1, longer rows: a block per row. One pass reads the row,
//    keeps it in shared memory when it fits, and folds a running (max, sum)
//    per thread, rescaling the sum when the max grows (Milakov and
//    Gimelshein, "Online normalizer calculation for softmax", 2018); the
//    block merges the pairs, then the row is written once.
//  - inner > 1: a thread per column, the same running pair over the column
//    (neighbouring threads read neighbouring columns), then the write.
#include "online.cuh"
#include "rows.cuh"

#define NB_SOFTMAX_CACHE_BYTES (48 << 10)

// exp(d) for d = v - max <= 0: exp2f(d * log2(e)) in float (max relative
// error about 2 ulp plus the product's rounding, |d| * 2^-24), exp in double.
__device__ __forceinline__ float nb_exp_shifted(float d) { return exp2f(d * 1.4426950408889634f); }
__device__ __forceinline__ double nb_exp_shifted(double d) { return exp(d); }

template <typename T, int K>
__global__ void __launch_bounds__(1024)
    nb_softmax_held(const T *x, T *y, int64_t rows, int size, int team_threads, bool log_space, bool packed) {
    using A = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    __shared__ A maxes[32], sums[32];
    nb_row_team team = nb_row_team_of(team_threads);
    int64_t step = (int64_t)gridDim.x * team.per_block;
    for (int64_t first = (int64_t)blockIdx.x * team.per_block; first < rows; first += step) {
        int64_t row = first + team.index;
        bool valid = row < rows;
        const T *in = x + (valid ? row : 0) * size;
        A v[K][V];
        nb_row_load<T, K>(in, valid ? size : 0, packed, team, -(A)INFINITY, v);
        A max = -(A)INFINITY;
#pragma unroll
        for (int k = 0; k < K; k++)
#pragma unroll
            for (int j = 0; j < V; j++) max = nb_max_op()(max, v[k][j]);
        max = nb_row_reduce(max, team, maxes, nb_max_op());
        if (max == -(A)INFINITY) max = 0;
        A sum = 0;
#pragma unroll
        for (int k = 0; k < K; k++)
#pragma unroll
            for (int j = 0; j < V; j++) {
                v[k][j] -= max;
                A e = nb_exp_shifted(v[k][j]);
                sum += e;
                if (!log_space) v[k][j] = e;
            }
        sum = nb_row_reduce(sum, team, sums, nb_add_op());
        A scale = (A)1 / sum, shift = log(sum);
#pragma unroll
        for (int k = 0; k < K; k++)
#pragma unroll
            for (int j = 0; j < V; j++) v[k][j] = log_space ? v[k][j] - shift : v[k][j] * scale;
        if (valid) nb_row_store<T, K>(y + row * size, size, packed, team, v);
    }
}

template <typename A>
__device__ __forceinline__ A nb_softmax_value(A v, nb_running<A> r, A log_sum, A scale, bool log_space) {
    return log_space ? v - log_sum : exp(v - r.max) * scale;
}

// The CPU's sum includes exp(inf - inf) = NaN when the maximum is +inf; the
// running pair skips it (its sum restarts at 1), so it is put back here.
template <typename A> __device__ __forceinline__ nb_running<A> nb_softmax_totals(nb_running<A> r) {
    if (r.max == (A)INFINITY) r.sum = (A)NAN;
    return r;
}

template <typename T>
__global__ void nb_softmax_rows(const T *x, T *y, int64_t rows, int64_t size, bool log_space, bool cached,
                                bool packed) {
    using A = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    extern __shared__ double nb_softmax_shared[];
    A *cache = (A *)nb_softmax_shared;
    int64_t packs = packed ? size / V : 0;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T *in = x + row * size;
        T *out = y + row * size;
        nb_running<A> r = {-(A)INFINITY, 0};
        for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
            nb_pack<T, V> pack = ((const nb_pack<T, V> *)in)[p];
            for (int j = 0; j < V; j++) {
                A v = nb_to_compute<A>(pack.v[j]);
                if (cached) cache[p * V + j] = v;
                r = nb_running_add(r, v);
            }
        }
        for (int64_t i = packs * V + threadIdx.x; i < size; i += blockDim.x) {
            A v = nb_to_compute<A>(in[i]);
            if (cached) cache[i] = v;
            r = nb_running_add(r, v);
        }
        r = nb_softmax_totals(nb_block_running(r));
        A log_sum = r.max + log(r.sum), scale = (A)1 / r.sum;
        for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
            nb_pack<T, V> pack, source;
            if (!cached) source = ((const nb_pack<T, V> *)in)[p];
            for (int j = 0; j < V; j++) {
                A v = cached ? cache[p * V + j] : nb_to_compute<A>(source.v[j]);
                pack.v[j] = nb_to_storage<T>(nb_softmax_value(v, r, log_sum, scale, log_space));
            }
            ((nb_pack<T, V> *)out)[p] = pack;
        }
        for (int64_t i = packs * V + threadIdx.x; i < size; i += blockDim.x) {
            A v = cached ? cache[i] : nb_to_compute<A>(in[i]);
            out[i] = nb_to_storage<T>(nb_softmax_value(v, r, log_sum, scale, log_space));
        }
        __syncthreads(); // the cache is reused by the next row
    }
}

template <typename T>
__global__ void nb_softmax_columns(const T *x, T *y, int64_t outer, int64_t size, int64_t inner,
                                   bool log_space) {
    using A = nb_compute_t<T>;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < outer * inner; c += stride) {
        int64_t start = (c / inner) * size * inner + c % inner;
        nb_running<A> r = {-(A)INFINITY, 0};
        for (int64_t i = 0; i < size; i++) r = nb_running_add(r, nb_to_compute<A>(x[start + i * inner]));
        r = nb_softmax_totals(r);
        A log_sum = r.max + log(r.sum), scale = (A)1 / r.sum;
        for (int64_t i = 0; i < size; i++) {
            A v = nb_to_compute<A>(x[start + i * inner]);
            y[start + i * inner] = nb_to_storage<T>(nb_softmax_value(v, r, log_sum, scale, log_space));
        }
    }
}

template <typename T>
static void launch_softmax(const nb_cuda_ctx *ctx, const nb_tensor *x, nb_tensor *out,
                           int64_t outer, int64_t size, int64_t inner, bool log_space) {
    const T *in = (const T *)nb__data(x);
    T *o = (T *)nb__data(out);
    if (inner > 1) {
        unsigned blocks = nb__cuda_blocks(ctx, outer * inner, NB_CUDA_THREADS);
        nb_softmax_columns<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(in, o, outer, size,
                                                                           inner, log_space);
        return;
    }
    using A = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    bool packed = size % V == 0 && (uintptr_t)in % 16 == 0 && (uintptr_t)o % 16 == 0;
    int64_t rows = outer;
    nb_row_layout layout = nb_row_layout_of(size, V, nb_held_values<A>() / V);
    if (layout.held) {
        unsigned threads = nb_row_block_threads(layout.threads);
        int64_t groups = (rows + threads / layout.threads - 1) / (threads / layout.threads);
        int64_t most = (int64_t)ctx->multiprocessors * (2048 / threads);
        unsigned blocks = (unsigned)(groups < most ? groups : most);
        NB_ROW_PACKS_SWITCH(layout.packs, K, if constexpr (K * V <= nb_held_values<A>()) {
            nb_softmax_held<T, K><<<blocks, threads, 0, ctx->handle>>>(in, o, rows, (int)size, layout.threads,
                                                                       log_space, packed);
        });
        return;
    }
    /* the row cache shares the default 48 KiB with the block reduction's static buffers */
    const cudaFuncAttributes &limits = nb_kernel_limits<nb_softmax_rows<T>>();
    bool cached = size * (int64_t)sizeof(A) + (int64_t)limits.sharedSizeBytes <= NB_SOFTMAX_CACHE_BYTES;
    unsigned threads = nb_block_threads<nb_softmax_rows<T>>(1024);
    unsigned blocks = (unsigned)(rows < (int64_t)ctx->multiprocessors * 32 ? rows
                                                                           : ctx->multiprocessors * 32);
    size_t shared = cached ? (size_t)size * sizeof(A) : 0;
    nb_softmax_rows<T><<<blocks, threads, shared, ctx->handle>>>(in, o, rows, size, log_space, cached,
                                                                 packed);
}

nb_status nb__cuda_softmax(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    int dim = args->attrs.axis.dim;
    int64_t size = x->ndim ? x->shape[dim] : 1;
    int64_t inner = x->ndim ? nb__numel(x->ndim - dim - 1, x->shape + dim + 1) : 1;
    int64_t outer = nb_numel(x) / size / inner;
    bool log_space = args->op == NB_OP_LOG_SOFTMAX;
    NB_CUDA_FLOAT_SWITCH(x->dtype, T, launch_softmax<T>(&ctx, x, out, outer, size, inner, log_space));
    return nb__cuda_launched(fn);
}
