// softmax and log_softmax along one dim of a contiguous input seen as
// [outer, size, inner].
//  - inner == 1 (the last dim): a block per row. One pass reads the row
//    (16 bytes per load), keeps it in shared memory when it fits, and folds a
//    running (max, sum) per thread, rescaling the sum when the max grows
//    (Milakov and Gimelshein, "Online normalizer calculation for softmax",
//    2018); the block merges the pairs, then the row is written once.
//  - inner > 1: a thread per column, the same running pair over the column
//    (neighbouring threads read neighbouring columns), then the write.
#include "map.cuh"
#include "online.cuh"

#define NB_SOFTMAX_CACHE_BYTES (48 << 10)

template <typename A> __device__ __forceinline__ A nb_softmax_value(A v, nb_running<A> r, A log_sum, bool log_space) {
    return log_space ? v - log_sum : exp(v - r.max) / r.sum;
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
        r = nb_block_running(r);
        A log_sum = r.max + log(r.sum);
        for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
            nb_pack<T, V> pack, source;
            if (!cached) source = ((const nb_pack<T, V> *)in)[p];
            for (int j = 0; j < V; j++) {
                A v = cached ? cache[p * V + j] : nb_to_compute<A>(source.v[j]);
                pack.v[j] = nb_to_storage<T>(nb_softmax_value(v, r, log_sum, log_space));
            }
            ((nb_pack<T, V> *)out)[p] = pack;
        }
        for (int64_t i = packs * V + threadIdx.x; i < size; i += blockDim.x) {
            A v = cached ? cache[i] : nb_to_compute<A>(in[i]);
            out[i] = nb_to_storage<T>(nb_softmax_value(v, r, log_sum, log_space));
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
        A log_sum = r.max + log(r.sum);
        for (int64_t i = 0; i < size; i++) {
            A v = nb_to_compute<A>(x[start + i * inner]);
            y[start + i * inner] = nb_to_storage<T>(nb_softmax_value(v, r, log_sum, log_space));
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
    /* the row cache shares the default 48 KiB with the block reduction's static buffers */
    const cudaFuncAttributes &limits = nb_kernel_limits<nb_softmax_rows<T>>();
    bool cached = size * (int64_t)sizeof(A) + (int64_t)limits.sharedSizeBytes <= NB_SOFTMAX_CACHE_BYTES;
    unsigned threads = 32;
    while (threads < 1024 && (int64_t)threads * V * 4 < size) threads *= 2;
    threads = nb_block_threads<nb_softmax_rows<T>>(threads);
    int64_t rows = outer;
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
