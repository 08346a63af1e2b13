// Rotary position embedding: one thread per (row, pair) of x [..., S, D]
// rotates (x[i], x[i + D/2]) by (offset + s) base^(-2i/D) (the sin negated
// for the inverse): the angle in float (as PyTorch's Llama code computes it)
// for f32, f16 and bf16, in double for f64.
#include "cuda.cuh"

template <typename T>
__global__ void nb_rope_kernel(const T *x, T *y, int64_t pairs, int64_t seq, int64_t half,
                               int64_t offset, double log_base, bool inverse) {
    using C = nb_compute_t<T>;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < pairs;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = e / half, i = e % half;
        C angle = (C)(offset + row % seq) * exp(-(C)log_base * (C)i / (C)half);
        C c = cos(angle), s = inverse ? -sin(angle) : sin(angle);
        const T *in = x + row * 2 * half;
        C x1 = nb_to_compute<C>(in[i]), x2 = nb_to_compute<C>(in[i + half]);
        y[row * 2 * half + i] = nb_to_storage<T>(x1 * c - x2 * s);
        y[row * 2 * half + i + half] = nb_to_storage<T>(x2 * c + x1 * s);
    }
}

nb_status nb__cuda_rope(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_rope", args->out->storage->device.index, &ctx));
    const nb_tensor *x = args->in[0];
    int64_t half = x->shape[x->ndim - 1] / 2, seq = x->shape[x->ndim - 2];
    int64_t pairs = nb_numel(x) / 2;
    unsigned blocks = nb__cuda_blocks(&ctx, pairs, NB_CUDA_THREADS);
    NB_CUDA_FLOAT_SWITCH(x->dtype, T,
                         nb_rope_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
                             (const T *)nb__data(x), (T *)nb__data(args->out), pairs, seq, half,
                             args->attrs.rope.offset, log(args->attrs.rope.base),
                             args->attrs.rope.inverse));
    return nb__cuda_launched("nb_rope");
}
