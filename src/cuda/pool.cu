// Pooling kernels: a thread per output element for max (its window's index:
// the first NaN, else the first maximum) and average pooling; the average's
// backward takes a thread per input element and gathers g / divisor from the
// windows covering it (no atomics).
#include "cuda.cuh"

template <typename T>
__global__ void nb_max_pool_kernel(const T *x, nb_cuda_geometry g, nb_window w, int64_t *index,
                                   int64_t total) {
    using C = nb_compute_t<T>;
    int64_t step = (int64_t)gridDim.x * blockDim.x, channels = g.shape[1];
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        nb_nchw at = nb_nchw_of(i, channels, w.out);
        int64_t n = at.n, c = at.c, oy = at.y, ox = at.x, y0, y1, x0, x1, best = -1;
        C best_value = 0;
        nb_window_range(&w, 0, oy, &y0, &y1);
        nb_window_range(&w, 1, ox, &x0, &x1);
        for (int64_t y = y0; y < y1 && !(best >= 0 && best_value != best_value); y++)
            for (int64_t xx = x0; xx < x1; xx++) {
                C v = nb_to_compute<C>(x[nb_offset4(g.strides, n, c, y, xx)]);
                if (best < 0 || v > best_value || v != v) {
                    best = y * w.in[1] + xx;
                    best_value = v;
                    if (v != v) break;
                }
            }
        index[i] = best;
    }
}

template <typename T>
__global__ void nb_avg_pool_kernel(const T *x, nb_cuda_geometry g, nb_window w, T *out,
                                   int64_t total) {
    using C = nb_compute_t<T>;
    int64_t step = (int64_t)gridDim.x * blockDim.x, channels = g.shape[1];
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        nb_nchw at = nb_nchw_of(i, channels, w.out);
        int64_t n = at.n, c = at.c, oy = at.y, ox = at.x, y0, y1, x0, x1;
        C area = (C)nb_window_range(&w, 0, oy, &y0, &y1) * (C)nb_window_range(&w, 1, ox, &x0, &x1);
        C sum = 0;
        for (int64_t y = y0; y < y1; y++)
            for (int64_t xx = x0; xx < x1; xx++) sum += nb_to_compute<C>(x[nb_offset4(g.strides, n, c, y, xx)]);
        out[i] = nb_to_storage<T>(sum / area);
    }
}

template <typename T>
__global__ void nb_avg_pool_backward_kernel(const T *grad, nb_cuda_geometry g, nb_window w, T *dx,
                                            int64_t total) {
    using C = nb_compute_t<T>;
    int64_t step = (int64_t)gridDim.x * blockDim.x, channels = g.shape[1];
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += step) {
        nb_nchw at = nb_nchw_of(i, channels, w.in);
        int64_t n = at.n, c = at.c, y = at.y, xx = at.x;
        int64_t oy0, oy1, ox0, ox1;
        nb_window_covering(&w, 0, y, &oy0, &oy1);
        nb_window_covering(&w, 1, xx, &ox0, &ox1);
        C sum = 0;
        for (int64_t oy = oy0; oy < oy1; oy++) {
            int64_t y0, y1;
            C height = (C)nb_window_range(&w, 0, oy, &y0, &y1);
            if (y < y0 || y >= y1) continue;
            for (int64_t ox = ox0; ox < ox1; ox++) {
                int64_t x0, x1;
                C width = (C)nb_window_range(&w, 1, ox, &x0, &x1);
                if (xx < x0 || xx >= x1) continue;
                sum += nb_to_compute<C>(grad[nb_offset4(g.strides, n, c, oy, ox)]) / (height * width);
            }
        }
        dx[i] = nb_to_storage<T>(sum);
    }
}

template <typename T> static void launch(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    const nb_tensor *in = args->in[0];
    nb_cuda_geometry g = nb__cuda_geometry(in);
    int64_t total = nb_numel(args->out);
    unsigned blocks = nb__cuda_blocks(ctx, total, NB_CUDA_THREADS);
    const T *src = (const T *)nb__data(in);
    switch (args->op) {
    case NB_OP_MAX_POOL2D:
        nb_max_pool_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(
            src, g, args->attrs.window, (int64_t *)nb__data(args->out), total);
        break;
    case NB_OP_AVG_POOL2D:
        nb_avg_pool_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(
            src, g, args->attrs.window, (T *)nb__data(args->out), total);
        break;
    default:
        nb_avg_pool_backward_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(
            src, g, args->attrs.window, (T *)nb__data(args->out), total);
        break;
    }
}

nb_status nb__cuda_pool(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, args->out->storage->device.index, &ctx));
    NB_CUDA_FLOAT_SWITCH(args->in[0]->dtype, T, launch<T>(args, &ctx));
    return nb__cuda_launched(fn);
}
