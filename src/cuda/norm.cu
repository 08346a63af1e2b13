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

__device__ double nb_block_sum_double(double v) {
    __shared__ double partial[32];
    for (int width = 16; width > 0; width /= 2) v += __shfl_down_sync(0xffffffffu, v, width);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x == 0)
        for (unsigned w = 1; w < blockDim.x / 32; w++) v += partial[w];
    __syncthreads();
    return v; // valid in thread 0
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
        first = nb_block_sum_double(first);
        second = nb_block_sum_double(second);
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
    a.s = nb_numel(x) / (a.n * a.channels);
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
