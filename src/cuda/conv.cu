// unfold (im2col) and fold (col2im) kernels; src/ops/conv.c builds the
// convolutions from them and cuBLASLt matmuls. unfold moves elements by
// size (any dtype); fold gathers, for each image pixel, the column entries
// whose windows cover it (no atomics), summing in the compute type.
#include "cuda.cuh"

typedef struct nb_image_geometry {
    int64_t strides[4]; // of the image [N, C, H, W], in elements
    int64_t batch, channels;
} nb_image_geometry;

template <typename T>
__global__ void nb_unfold_kernel(const T *x, nb_image_geometry g, nb_window w, T *col, int64_t total) {
    int64_t kernel = (int64_t)w.kernel[0] * w.kernel[1], positions = w.out[0] * w.out[1];
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        int64_t l = i % positions, n = i / positions % g.batch, r = i / positions / g.batch;
        int64_t c = r / kernel, ky = r % kernel / w.kernel[1], kx = r % w.kernel[1];
        int64_t y = l / w.out[1] * w.stride[0] - w.padding[0] + ky * w.dilation[0];
        int64_t xx = l % w.out[1] * w.stride[1] - w.padding[1] + kx * w.dilation[1];
        bool inside = y >= 0 && y < w.in[0] && xx >= 0 && xx < w.in[1];
        col[i] = inside ? x[n * g.strides[0] + c * g.strides[1] + y * g.strides[2] + xx * g.strides[3]]
                        : T(0);
    }
}

template <typename T>
__global__ void nb_fold_kernel(const T *col, nb_cuda_geometry cg, nb_window w, T *x, int64_t batch,
                               int64_t channels) {
    using C = nb_compute_t<T>;
    int64_t pixels = w.in[0] * w.in[1], total = batch * channels * pixels;
    int64_t kernel = (int64_t)w.kernel[0] * w.kernel[1];
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        nb_nchw at = nb_nchw_of(i, channels, w.in);
        int64_t n = at.n, c = at.c, y = at.y, xx = at.x;
        C sum = 0;
        for (int64_t ky = 0; ky < w.kernel[0]; ky++) {
            int64_t top = y + w.padding[0] - ky * w.dilation[0];
            if (top < 0 || top % w.stride[0]) continue;
            int64_t oy = top / w.stride[0];
            if (oy >= w.out[0]) continue;
            for (int64_t kx = 0; kx < w.kernel[1]; kx++) {
                int64_t left = xx + w.padding[1] - kx * w.dilation[1];
                if (left < 0 || left % w.stride[1]) continue;
                int64_t ox = left / w.stride[1];
                if (ox >= w.out[1]) continue;
                int64_t r = c * kernel + ky * w.kernel[1] + kx;
                sum += nb_to_compute<C>(col[r * cg.strides[0] + n * cg.strides[1] +
                                            (oy * w.out[1] + ox) * cg.strides[2]]);
            }
        }
        x[i] = nb_to_storage<T>(sum);
    }
}

nb_status nb__cuda_unfold(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_unfold", args->out->storage->device.index, &ctx));
    nb_image_geometry g = {{x->strides[0], x->strides[1], x->strides[2], x->strides[3]},
                           x->shape[0], x->shape[1]};
    int64_t total = nb_numel(args->out);
    unsigned blocks = nb__cuda_blocks(&ctx, total, NB_CUDA_THREADS);
    NB_CUDA_SWITCH(x->dtype, T,
                   (nb_unfold_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
                       (const T *)nb__data(x), g, args->attrs.window, (T *)nb__data(args->out),
                       total)));
    return nb__cuda_launched("nb_unfold");
}

nb_status nb__cuda_fold(const nb_op_args *args) {
    const nb_tensor *col = args->in[0];
    nb_tensor *x = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_fold", x->storage->device.index, &ctx));
    unsigned blocks = nb__cuda_blocks(&ctx, nb_numel(x), NB_CUDA_THREADS);
    nb_cuda_geometry cg = nb__cuda_geometry(col);
    NB_CUDA_FLOAT_SWITCH(x->dtype, T,
                         (nb_fold_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
                             (const T *)nb__data(col), cg, args->attrs.window, (T *)nb__data(x),
                             x->shape[0], x->shape[1])));
    return nb__cuda_launched("nb_fold");
}

// ---- depthwise convolution: input channel c feeds output channels
// c*m .. c*m + m - 1, one kh x kw kernel each ----

typedef struct nb_depthwise_args {
    const char *a, *b; // forward: x, weight; input grad: g, weight; weight grad: g, x
    char *out;
    nb_cuda_geometry ga, gb;
    int64_t batch, channels, outs;
    nb_window w;
} nb_depthwise_args;

template <typename T>
__device__ __forceinline__ nb_compute_t<T> nb_at4(const char *base, const nb_cuda_geometry &g,
                                                  int64_t n, int64_t c, int64_t y, int64_t x) {
    const T *p = (const T *)base;
    return nb_to_compute<nb_compute_t<T>>(
        p[n * g.strides[0] + c * g.strides[1] + y * g.strides[2] + x * g.strides[3]]);
}

// A thread per output element: y[n, oc, oy, ox].
template <typename T> __global__ void nb_depthwise_forward(nb_depthwise_args a, int64_t total) {
    using C = nb_compute_t<T>;
    const nb_window &w = a.w;
    int64_t m = a.outs / a.channels, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        nb_nchw at = nb_nchw_of(i, a.outs, w.out);
        int64_t n = at.n, oc = at.c, oy = at.y, ox = at.x;
        const T *k = (const T *)a.b + oc * w.kernel[0] * w.kernel[1];
        C sum = 0;
        for (int ky = 0; ky < w.kernel[0]; ky++) {
            int64_t y = oy * w.stride[0] - w.padding[0] + ky * w.dilation[0];
            if (y < 0 || y >= w.in[0]) continue;
            for (int kx = 0; kx < w.kernel[1]; kx++) {
                int64_t x = ox * w.stride[1] - w.padding[1] + kx * w.dilation[1];
                if (x < 0 || x >= w.in[1]) continue;
                sum += nb_to_compute<C>(k[ky * w.kernel[1] + kx]) * nb_at4<T>(a.a, a.ga, n, oc / m, y, x);
            }
        }
        ((T *)a.out)[i] = nb_to_storage<T>(sum);
    }
}

// A thread per input element: dx[n, c, y, x] gathers the taps that read it.
template <typename T> __global__ void nb_depthwise_input_grad(nb_depthwise_args a, int64_t total) {
    using C = nb_compute_t<T>;
    const nb_window &w = a.w;
    int64_t m = a.outs / a.channels, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        nb_nchw at = nb_nchw_of(i, a.channels, w.in);
        int64_t n = at.n, c = at.c, y = at.y, x = at.x;
        C sum = 0;
        for (int64_t j = 0; j < m; j++) {
            int64_t oc = c * m + j;
            const T *k = (const T *)a.b + oc * w.kernel[0] * w.kernel[1];
            for (int ky = 0; ky < w.kernel[0]; ky++) {
                int64_t top = y + w.padding[0] - ky * w.dilation[0];
                if (top < 0 || top % w.stride[0] || top / w.stride[0] >= w.out[0]) continue;
                for (int kx = 0; kx < w.kernel[1]; kx++) {
                    int64_t left = x + w.padding[1] - kx * w.dilation[1];
                    if (left < 0 || left % w.stride[1] || left / w.stride[1] >= w.out[1]) continue;
                    sum += nb_to_compute<C>(k[ky * w.kernel[1] + kx]) *
                           nb_at4<T>(a.a, a.ga, n, oc, top / w.stride[0], left / w.stride[1]);
                }
            }
        }
        ((T *)a.out)[i] = nb_to_storage<T>(sum);
    }
}

// A block per weight element (oc, ky, kx): its threads sum g * x over the
// batch and output positions.
template <typename T> __global__ void nb_depthwise_weight_grad(nb_depthwise_args a) {
    using C = nb_compute_t<T>;
    __shared__ C partial[32];
    const nb_window &w = a.w;
    int64_t m = a.outs / a.channels, kk = (int64_t)w.kernel[0] * w.kernel[1];
    int64_t positions = w.out[0] * w.out[1], count = a.batch * positions;
    for (int64_t e = blockIdx.x; e < a.outs * kk; e += gridDim.x) {
        int64_t oc = e / kk, ky = e % kk / w.kernel[1], kx = e % w.kernel[1];
        C sum = 0;
        for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
            int64_t n = i / positions, oy = i % positions / w.out[1], ox = i % w.out[1];
            int64_t y = oy * w.stride[0] - w.padding[0] + ky * w.dilation[0];
            int64_t x = ox * w.stride[1] - w.padding[1] + kx * w.dilation[1];
            if (y >= 0 && y < w.in[0] && x >= 0 && x < w.in[1])
                sum += nb_at4<T>(a.a, a.ga, n, oc, oy, ox) * nb_at4<T>(a.b, a.gb, n, oc / m, y, x);
        }
        for (int width = 16; width > 0; width /= 2) sum += __shfl_down_sync(0xffffffffu, sum, width);
        if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (unsigned k = 1; k < blockDim.x / 32; k++) sum += partial[k];
            ((T *)a.out)[e] = nb_to_storage<T>(sum);
        }
        __syncthreads();
    }
}

template <typename T> static void launch_depthwise(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    nb_depthwise_args a;
    a.a = nb__data(args->in[0]);
    a.b = nb__data(args->in[1]);
    a.out = nb__data(args->out);
    a.ga = nb__cuda_geometry(args->in[0]);
    a.gb = nb__cuda_geometry(args->in[1]);
    a.w = args->attrs.window;
    const nb_tensor *x = args->op == NB_OP_DEPTHWISE_CONV2D ? args->in[0]
                         : args->op == NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD ? args->in[1] : args->out;
    const nb_tensor *g = args->op == NB_OP_DEPTHWISE_CONV2D ? args->out : args->in[0];
    a.batch = x->shape[0];
    a.channels = x->shape[1];
    a.outs = g->shape[1];
    int64_t total = nb_numel(args->out);
    unsigned blocks = nb__cuda_blocks(ctx, total, NB_CUDA_THREADS);
    switch (args->op) {
    case NB_OP_DEPTHWISE_CONV2D:
        nb_depthwise_forward<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a, total);
        break;
    case NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD:
        nb_depthwise_input_grad<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a, total);
        break;
    default:
        nb_depthwise_weight_grad<T><<<(unsigned)(total < 65535 ? total : 65535), NB_CUDA_THREADS, 0,
                                      ctx->handle>>>(a);
        break;
    }
}

nb_status nb__cuda_depthwise(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_conv2d", args->out->storage->device.index, &ctx));
    NB_CUDA_FLOAT_SWITCH(args->out->dtype, T, launch_depthwise<T>(args, &ctx));
    return nb__cuda_launched("nb_conv2d");
}
