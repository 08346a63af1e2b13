// BatchNorm's stage kernels over x contiguous [N, C, S] (src/ops/norm.c has
// the formulas): a block per channel for the statistics and the backward
// sums (accumulated in double, merged with warp shuffles), a thread per
// element for the two elementwise stages.
#include "cuda.cuh"

typedef struct nb_bn_args {
    const char *a, *b, *params; // stats: x; apply: x; backward: g, x; then the packed [k, C]
    char *out;
    nb_dtype a_dtype, b_dtype, params_dtype, out_dtype;
    int64_t n, channels, s;
} nb_bn_args;

__device__ __forceinline__ double nb_bn_param(const nb_bn_args &a, int row, int64_t c) {
    return nb_load<double>(a.params + (row * a.channels + c) * nb_size_of(a.params_dtype),
                           a.params_dtype);
}

// stats: out[0][c] = mean, out[1][c] = m2; backward reduce: sum g, sum g xhat.
__global__ void nb_bn_reduce(nb_bn_args a, bool stats) {
    int64_t count = a.n * a.s;
    for (int64_t c = blockIdx.x; c < a.channels; c += gridDim.x) {
        double first = 0, second = 0;
        double mean = stats ? 0 : nb_bn_param(a, 0, c), invstd = stats ? 0 : nb_bn_param(a, 1, c);
        for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
            int64_t at = ((i / a.s) * a.channels + c) * a.s + i % a.s;
            double v = nb_load<double>(a.a + at * nb_size_of(a.a_dtype), a.a_dtype);
            if (stats) {
                first += v;
                second += v * v;
            } else {
                double x = nb_load<double>(a.b + at * nb_size_of(a.b_dtype), a.b_dtype);
                first += v;
                second += v * (x - mean) * invstd;
            }
        }
        first = nb_block_sum(first);
        second = nb_block_sum(second);
        if (threadIdx.x == 0) {
            double m = first / (double)count;
            double one = stats ? m : first, two = stats ? fmax(second - (double)count * m * m, 0.0) : second;
            nb_store<double>(a.out + c * nb_size_of(a.out_dtype), a.out_dtype, one);
            nb_store<double>(a.out + (a.channels + c) * nb_size_of(a.out_dtype), a.out_dtype, two);
        }
    }
}

// apply: (x - mean) invstd w + b; backward apply: w invstd / n (n g - sum_g - xhat sum_gx).
__global__ void nb_bn_elementwise(nb_bn_args a, bool backward) {
    int64_t total = a.n * a.channels * a.s, step = (int64_t)gridDim.x * blockDim.x;
    double count = (double)(a.n * a.s);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        int64_t c = i / a.s % a.channels;
        double mean = nb_bn_param(a, 0, c), invstd = nb_bn_param(a, 1, c), w = nb_bn_param(a, 2, c);
        double v = nb_load<double>(a.a + i * nb_size_of(a.a_dtype), a.a_dtype), y;
        if (backward) {
            double x = nb_load<double>(a.b + i * nb_size_of(a.b_dtype), a.b_dtype);
            y = w * invstd / count *
                (count * v - nb_bn_param(a, 3, c) - (x - mean) * invstd * nb_bn_param(a, 4, c));
        } else {
            y = (v - mean) * invstd * w + nb_bn_param(a, 3, c);
        }
        nb_store<double>(a.out + i * nb_size_of(a.out_dtype), a.out_dtype, y);
    }
}

nb_status nb__cuda_batch_norm(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_batch_norm", args->out->storage->device.index, &ctx));
    bool stats = args->op == NB_OP_BATCH_NORM_STATS;
    const nb_tensor *x = stats || args->op == NB_OP_BATCH_NORM_APPLY ? args->in[0] : args->in[1];
    nb_bn_args a = {};
    a.a = nb__data(args->in[0]);
    a.a_dtype = args->in[0]->dtype;
    if (args->n_in == 3) {
        a.b = nb__data(args->in[1]);
        a.b_dtype = args->in[1]->dtype;
    }
    if (!stats) {
        const nb_tensor *params = args->in[args->n_in - 1];
        a.params = nb__data(params);
        a.params_dtype = params->dtype;
    }
    a.out = nb__data(args->out);
    a.out_dtype = args->out->dtype;
    a.n = x->shape[0];
    a.channels = x->shape[1];
    a.s = nb__numel(x->ndim - 2, x->shape + 2);
    if (stats || args->op == NB_OP_BATCH_NORM_BACKWARD_REDUCE) {
        unsigned blocks = (unsigned)(a.channels < 65535 ? a.channels : 65535);
        nb_bn_reduce<<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(a, stats);
    } else {
        unsigned blocks = nb__cuda_blocks(&ctx, nb_numel(x), NB_CUDA_THREADS);
        nb_bn_elementwise<<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
            a, args->op == NB_OP_BATCH_NORM_BACKWARD_APPLY);
    }
    return nb__cuda_launched("nb_batch_norm");
}

// ---- layer_norm and rms_norm over rows of D (src/ops/norm.c has the
// formulas): a block per row, statistics in the compute type (f32 for f16
// and bf16) and the row read from L1/L2 on its later passes. The weight and
// bias gradients are column sums: each block of the second kernel sums a
// chunk of rows for 256 columns into partials, which a last kernel adds up
// in chunk order (no atomics, so the sums do not depend on timing). ----

template <typename T>
__global__ void nb_row_norm_forward(const T *x, const T *w, const T *b, T *y, nb_compute_t<T> *stats,
                                    int64_t rows, int64_t d, double eps, bool rms) {
    using C = nb_compute_t<T>;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * d;
        C sum = 0, squares = 0;
        for (int64_t k = threadIdx.x; k < d && !rms; k += blockDim.x) sum += nb_to_compute<C>(xr[k]);
        C mean = rms ? (C)0 : nb_block_sum(sum) / (C)d;
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C centered = nb_to_compute<C>(xr[k]) - mean;
            squares += centered * centered;
        }
        C rstd = (C)1 / sqrt(nb_block_sum(squares) / (C)d + (C)eps);
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C v = (nb_to_compute<C>(xr[k]) - mean) * rstd;
            if (w) v *= nb_to_compute<C>(w[k]);
            if (b) v += nb_to_compute<C>(b[k]);
            y[r * d + k] = nb_to_storage<T>(v);
        }
        if (threadIdx.x == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = rstd;
        }
    }
}

template <typename T>
__global__ void nb_row_norm_backward(const T *g, const T *x, const T *w, const nb_compute_t<T> *stats,
                                     T *dx, int64_t rows, int64_t d, bool rms) {
    using C = nb_compute_t<T>;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *gr = g + r * d, *xr = x + r * d;
        C mean = stats[2 * r], rstd = stats[2 * r + 1], sum_gw = 0, sum_gwx = 0;
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C gw = nb_to_compute<C>(gr[k]) * (w ? nb_to_compute<C>(w[k]) : (C)1);
            sum_gw += gw;
            sum_gwx += gw * (nb_to_compute<C>(xr[k]) - mean) * rstd;
        }
        C a = rms ? (C)0 : nb_block_sum(sum_gw) / (C)d, c = nb_block_sum(sum_gwx) / (C)d;
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C gw = nb_to_compute<C>(gr[k]) * (w ? nb_to_compute<C>(w[k]) : (C)1);
            C xhat = (nb_to_compute<C>(xr[k]) - mean) * rstd;
            dx[r * d + k] = nb_to_storage<T>(rstd * (gw - a - xhat * c));
        }
    }
}

// partial[chunk][0][k] = sum of g xhat, partial[chunk][1][k] = sum of g, over the chunk's rows.
template <typename T>
__global__ void nb_row_norm_param_partials(const T *g, const T *x, const nb_compute_t<T> *stats,
                                           nb_compute_t<T> *partial, int64_t rows, int64_t d,
                                           int64_t rows_per_chunk) {
    using C = nb_compute_t<T>;
    int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (k >= d) return;
    int64_t first = chunk * rows_per_chunk, last = min(rows, first + rows_per_chunk);
    C sum_gx = 0, sum_g = 0;
    for (int64_t r = first; r < last; r++) {
        C gv = nb_to_compute<C>(g[r * d + k]);
        sum_gx += gv * (nb_to_compute<C>(x[r * d + k]) - stats[2 * r]) * stats[2 * r + 1];
        sum_g += gv;
    }
    partial[(chunk * 2) * d + k] = sum_gx;
    partial[(chunk * 2 + 1) * d + k] = sum_g;
}

template <typename C>
__global__ void nb_row_norm_add_partials(const C *partial, C *dparams, int64_t chunks, int64_t d) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= 2 * d) return;
    C total = 0;
    for (int64_t chunk = 0; chunk < chunks; chunk++) total += partial[chunk * 2 * d + i];
    dparams[i] += total;
}

template <typename T> static nb_status row_norm(const nb_op_args *args, nb_cuda_ctx *ctx) {
    using C = nb_compute_t<T>;
    const char *fn = nb__op_fn(args->op);
    bool backward = args->op == NB_OP_LAYER_NORM_BACKWARD || args->op == NB_OP_RMS_NORM_BACKWARD;
    bool rms = args->op == NB_OP_RMS_NORM || args->op == NB_OP_RMS_NORM_BACKWARD;
    const nb_tensor *stats = args->in[3];
    int64_t rows = stats->shape[0], d = nb_numel(args->out) / rows;
    unsigned blocks = (unsigned)(rows < 65535 ? rows : 65535);
    auto data = [](const nb_tensor *t) { return t ? (const T *)nb__data(t) : (const T *)nullptr; };
    if (!backward) {
        nb_row_norm_forward<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(
            data(args->in[0]), data(args->in[1]), data(args->in[2]), (T *)nb__data(args->out),
            (C *)nb__data(stats), rows, d, args->attrs.norm.eps, rms);
        return nb__cuda_launched(fn);
    }
    const T *g = data(args->in[0]), *x = data(args->in[1]);
    const C *saved = (const C *)nb__data(stats);
    nb_row_norm_backward<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(
        g, x, data(args->in[2]), saved, (T *)nb__data(args->out), rows, d, rms);
    NB_TRY(nb__cuda_launched(fn));
    const nb_tensor *dparams = args->in[4];
    if (!dparams) return NB_OK;
    int64_t chunks = rows < 256 ? rows : 256, per_chunk = (rows + chunks - 1) / chunks;
    void *partial, *block;
    NB_TRY(nb__cuda_scratch(fn, ctx, (size_t)(chunks * 2 * d) * sizeof(C), &partial, &block));
    dim3 grid((unsigned)((d + NB_CUDA_THREADS - 1) / NB_CUDA_THREADS), (unsigned)chunks);
    nb_row_norm_param_partials<T><<<grid, NB_CUDA_THREADS, 0, ctx->handle>>>(g, x, saved, (C *)partial,
                                                                           rows, d, per_chunk);
    nb_row_norm_add_partials<C><<<(unsigned)((2 * d + NB_CUDA_THREADS - 1) / NB_CUDA_THREADS),
                                  NB_CUDA_THREADS, 0, ctx->handle>>>((const C *)partial,
                                                                     (C *)nb__data(dparams), chunks, d);
    nb_status status = nb__cuda_launched(fn);
    nb__cuda_free(partial, (size_t)(chunks * 2 * d) * sizeof(C), nb_cuda(ctx->device), block);
    return status;
}

nb_status nb__cuda_layer_norm(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(nb__op_fn(args->op), args->out->storage->device.index, &ctx));
    nb_status status = NB_OK;
    NB_CUDA_FLOAT_SWITCH(args->out->dtype, T, status = row_norm<T>(args, &ctx));
    return status;
}
