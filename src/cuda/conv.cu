// Convolutions on CUDA. With cuDNN, conv2d and conv_transpose2d run as
// cuDNN convolutions (forward, backward data, backward filter); without it
// (and for f64) src/ops/conv.c builds them from the unfold (im2col) and
// fold (col2im) kernels here and cuBLASLt matmuls. unfold moves elements by
// size (any dtype); fold gathers, for each image pixel, the column entries
// whose windows cover it (no atomics), summing in the compute type.
// Depthwise convolutions have kernels of their own; with cuDNN both are
// timed once per shape and the faster is kept.
#include <string.h>

#include "cuda.cuh"

#ifdef NABLA_WITH_CUDNN
#include <cudnn.h>
#endif

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
        col[i] = inside ? x[nb_offset4(g.strides, n, c, y, xx)] : T(0);
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
// c*m .. c*m + m - 1, one kh x kw kernel each. Index math is 32-bit when
// every tensor's offsets fit (I = uint32_t), and the common 3x3 windows with
// stride 1 or 2 and no dilation are compiled with the window as constants
// (K = 3, S = 1 or 2; K = S = 0 reads them at run time). The forward of
// those, on planes at least 16 wide, stages each block's input tile in
// shared memory, so each input value is read from memory once per block
// instead of up to 9 times through L1. ----

#define NB_DW_TILE_X 32
#define NB_DW_TILE_Y 8

typedef struct nb_depthwise_args {
    const char *a, *b; // forward: x, weight; input grad: g, weight; weight grad: g, x
    char *out;
    nb_cuda_geometry ga, gb;
    int64_t batch, channels, outs;
    nb_window w;
} nb_depthwise_args;

template <typename T, typename I>
__device__ __forceinline__ nb_compute_t<T> nb_at4(const char *base, const nb_cuda_geometry &g, I n, I c, I y, I x) {
    I at = n * (I)g.strides[0] + c * (I)g.strides[1] + y * (I)g.strides[2] + x * (I)g.strides[3];
    return nb_to_compute<nb_compute_t<T>>(((const T *)base)[at]);
}

// The window's kernel size, stride and dilation along dim d: the template's
// constants when set, else the run-time values.
template <int K> __device__ __forceinline__ int nb_dw_kernel(const nb_window &w, int d) { return K ? K : w.kernel[d]; }
template <int S> __device__ __forceinline__ int nb_dw_stride(const nb_window &w, int d) { return S ? S : w.stride[d]; }
template <int K> __device__ __forceinline__ int nb_dw_dilation(const nb_window &w, int d) { return K ? 1 : w.dilation[d]; }

// A thread per output element: y[n, oc, oy, ox].
template <typename T, typename I, int K, int S>
__global__ void nb_depthwise_forward(nb_depthwise_args a, I total) {
    using C = nb_compute_t<T>;
    const nb_window &w = a.w;
    I m = (I)(a.outs / a.channels), oh = (I)w.out[0], ow = (I)w.out[1], outs = (I)a.outs;
    int kh = nb_dw_kernel<K>(w, 0), kw = nb_dw_kernel<K>(w, 1);
    int sh = nb_dw_stride<S>(w, 0), sw = nb_dw_stride<S>(w, 1);
    int dh = nb_dw_dilation<K>(w, 0), dw = nb_dw_dilation<K>(w, 1);
    I step = (I)gridDim.x * blockDim.x;
    for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < total; i += step) {
        I ox = i % ow, rest = i / ow, oy = rest % oh, plane = rest / oh, oc = plane % outs, n = plane / outs;
        I c = oc / m;
        C sum = 0;
#pragma unroll
        for (int ky = 0; ky < kh; ky++) {
            int64_t y = (int64_t)oy * sh - w.padding[0] + ky * dh;
            if (y < 0 || y >= w.in[0]) continue;
#pragma unroll
            for (int kx = 0; kx < kw; kx++) {
                int64_t x = (int64_t)ox * sw - w.padding[1] + kx * dw;
                if (x < 0 || x >= w.in[1]) continue;
                sum += nb_at4<T, I>(a.b, a.gb, oc, 0, ky, kx) * nb_at4<T, I>(a.a, a.ga, n, c, (I)y, (I)x);
            }
        }
        ((T *)a.out)[i] = nb_to_storage<T>(sum);
    }
}

// The 3x3 forward with stride S: a block of NB_DW_TILE_Y x NB_DW_TILE_X
// outputs of one (n, oc) plane at a time, its input tile (zero outside the
// image) in shared memory and the plane's 9 weights in registers.
template <typename T, int S>
__global__ void __launch_bounds__(NB_DW_TILE_X *NB_DW_TILE_Y) nb_depthwise_forward_tile(nb_depthwise_args a,
                                                                                     uint32_t planes) {
    using C = nb_compute_t<T>;
    constexpr int RY = (NB_DW_TILE_Y - 1) * S + 3, RX = (NB_DW_TILE_X - 1) * S + 3;
    __shared__ C tile[RY][RX];
    const nb_window &w = a.w;
    uint32_t m = (uint32_t)(a.outs / a.channels), outs = (uint32_t)a.outs;
    int tx = threadIdx.x % NB_DW_TILE_X, ty = threadIdx.x / NB_DW_TILE_X;
    int oy = blockIdx.y * NB_DW_TILE_Y + ty, ox = blockIdx.x * NB_DW_TILE_X + tx;
    int top = blockIdx.y * NB_DW_TILE_Y * S - w.padding[0], left = blockIdx.x * NB_DW_TILE_X * S - w.padding[1];
    for (uint32_t plane = blockIdx.z; plane < planes; plane += gridDim.z) {
        uint32_t oc = plane % outs, n = plane / outs, c = oc / m;
        for (int e = threadIdx.x; e < RY * RX; e += blockDim.x) {
            int y = top + e / RX, x = left + e % RX;
            bool inside = y >= 0 && y < w.in[0] && x >= 0 && x < w.in[1];
            tile[e / RX][e % RX] = inside ? nb_at4<T, uint32_t>(a.a, a.ga, n, c, y, x) : (C)0;
        }
        C k[3][3];
#pragma unroll
        for (int ky = 0; ky < 3; ky++)
#pragma unroll
            for (int kx = 0; kx < 3; kx++) k[ky][kx] = nb_at4<T, uint32_t>(a.b, a.gb, oc, 0, ky, kx);
        __syncthreads();
        if (oy < w.out[0] && ox < w.out[1]) {
            C sum = 0;
#pragma unroll
            for (int ky = 0; ky < 3; ky++)
#pragma unroll
                for (int kx = 0; kx < 3; kx++) sum += k[ky][kx] * tile[ty * S + ky][tx * S + kx];
            ((T *)a.out)[((int64_t)plane * w.out[0] + oy) * w.out[1] + ox] = nb_to_storage<T>(sum);
        }
        __syncthreads(); // the tile is refilled for the next plane
    }
}

// A thread per input element: dx[n, c, y, x] gathers the taps that read it.
template <typename T, typename I, int K, int S>
__global__ void nb_depthwise_input_grad(nb_depthwise_args a, I total) {
    using C = nb_compute_t<T>;
    const nb_window &w = a.w;
    I m = (I)(a.outs / a.channels), h = (I)w.in[0], wd = (I)w.in[1], channels = (I)a.channels;
    int kh = nb_dw_kernel<K>(w, 0), kw = nb_dw_kernel<K>(w, 1);
    int sh = nb_dw_stride<S>(w, 0), sw = nb_dw_stride<S>(w, 1);
    int dh = nb_dw_dilation<K>(w, 0), dw = nb_dw_dilation<K>(w, 1);
    I step = (I)gridDim.x * blockDim.x;
    for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < total; i += step) {
        I x = i % wd, rest = i / wd, y = rest % h, plane = rest / h, c = plane % channels, n = plane / channels;
        C sum = 0;
        for (I j = 0; j < m; j++) {
            I oc = c * m + j;
#pragma unroll
            for (int ky = 0; ky < kh; ky++) {
                int64_t top = (int64_t)y + w.padding[0] - ky * dh;
                if (top < 0 || top % sh || top / sh >= w.out[0]) continue;
#pragma unroll
                for (int kx = 0; kx < kw; kx++) {
                    int64_t left = (int64_t)x + w.padding[1] - kx * dw;
                    if (left < 0 || left % sw || left / sw >= w.out[1]) continue;
                    sum += nb_at4<T, I>(a.b, a.gb, oc, 0, ky, kx) *
                           nb_at4<T, I>(a.a, a.ga, n, oc, (I)(top / sh), (I)(left / sw));
                }
            }
        }
        ((T *)a.out)[i] = nb_to_storage<T>(sum);
    }
}

// A block per weight element (oc, ky, kx): its threads sum g * x over the
// batch and output positions.
template <typename T, typename I> __global__ void nb_depthwise_weight_grad(nb_depthwise_args a) {
    using C = nb_compute_t<T>;
    const nb_window &w = a.w;
    I m = (I)(a.outs / a.channels), kw = w.kernel[1], kk = (I)w.kernel[0] * kw;
    I ow = (I)w.out[1], positions = (I)(w.out[0] * w.out[1]), count = (I)a.batch * positions;
    for (I e = blockIdx.x; e < (I)a.outs * kk; e += gridDim.x) {
        I oc = e / kk, ky = e % kk / kw, kx = e % kw;
        C sum = 0;
        for (I i = threadIdx.x; i < count; i += blockDim.x) {
            I n = i / positions, oy = i % positions / ow, ox = i % ow;
            int64_t y = (int64_t)oy * w.stride[0] - w.padding[0] + (int64_t)ky * w.dilation[0];
            int64_t x = (int64_t)ox * w.stride[1] - w.padding[1] + (int64_t)kx * w.dilation[1];
            if (y >= 0 && y < w.in[0] && x >= 0 && x < w.in[1])
                sum += nb_at4<T, I>(a.a, a.ga, n, oc, oy, ox) * nb_at4<T, I>(a.b, a.gb, n, oc / m, (I)y, (I)x);
        }
        sum = nb_block_sum(sum);
        if (threadIdx.x == 0) ((T *)a.out)[e] = nb_to_storage<T>(sum);
    }
}

// The largest element offset of t plus one (its strides are not negative).
static int64_t extent_of(const nb_tensor *t) {
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++) last += (t->shape[d] - 1) * t->strides[d];
    return nb_numel(t) ? last + 1 : 0;
}

// The stride both dims of a 3x3 window without dilation share (1 or 2), or
// 0 for every other window.
static int square_3x3_stride(const nb_window &w) {
    bool three = w.kernel[0] == 3 && w.kernel[1] == 3 && w.dilation[0] == 1 && w.dilation[1] == 1;
    return three && w.stride[0] == w.stride[1] && (w.stride[0] == 1 || w.stride[0] == 2) ? w.stride[0] : 0;
}

template <typename T, typename I, int K, int S>
static void launch_depthwise_kernel(const nb_op_args *args, const nb_cuda_ctx *ctx, const nb_depthwise_args &a) {
    I total = (I)nb_numel(args->out);
    unsigned blocks = nb__cuda_blocks(ctx, (int64_t)total, NB_CUDA_THREADS);
    if (args->op == NB_OP_DEPTHWISE_CONV2D)
        nb_depthwise_forward<T, I, K, S><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a, total);
    else
        nb_depthwise_input_grad<T, I, K, S><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a, total);
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
    const int64_t limit = (int64_t)1 << 31;
    bool small = extent_of(args->in[0]) < limit && extent_of(args->in[1]) < limit && nb_numel(args->out) < limit;
    int stride = square_3x3_stride(a.w);
    if (args->op == NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD) {
        int64_t total = nb_numel(args->out);
        unsigned blocks = (unsigned)(total < 65535 ? total : 65535);
        if (small) nb_depthwise_weight_grad<T, uint32_t><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a);
        else nb_depthwise_weight_grad<T, int64_t><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a);
    } else if (small && stride && args->op == NB_OP_DEPTHWISE_CONV2D && a.w.out[1] >= 16) {
        int64_t planes = a.batch * a.outs;
        dim3 grid((unsigned)((a.w.out[1] + NB_DW_TILE_X - 1) / NB_DW_TILE_X),
                  (unsigned)((a.w.out[0] + NB_DW_TILE_Y - 1) / NB_DW_TILE_Y),
                  (unsigned)(planes < 65535 ? planes : 65535));
        if (stride == 1)
            nb_depthwise_forward_tile<T, 1><<<grid, NB_DW_TILE_X * NB_DW_TILE_Y, 0, ctx->handle>>>(a, (uint32_t)planes);
        else
            nb_depthwise_forward_tile<T, 2><<<grid, NB_DW_TILE_X * NB_DW_TILE_Y, 0, ctx->handle>>>(a, (uint32_t)planes);
    } else if (small && stride == 1) {
        launch_depthwise_kernel<T, uint32_t, 3, 1>(args, ctx, a);
    } else if (small && stride == 2) {
        launch_depthwise_kernel<T, uint32_t, 3, 2>(args, ctx, a);
    } else if (small) {
        launch_depthwise_kernel<T, uint32_t, 0, 0>(args, ctx, a);
    } else {
        launch_depthwise_kernel<T, int64_t, 0, 0>(args, ctx, a);
    }
}

static nb_status launch_own_depthwise(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    NB_CUDA_FLOAT_SWITCH(args->out->dtype, T, launch_depthwise<T>(args, ctx));
    return nb__cuda_launched("nb_conv2d");
}

#ifdef NABLA_WITH_CUDNN
// ---- cuDNN convolutions ----
//
// Through cuDNN 9's backend (graph) API: a graph of one convolution per
// shape and direction; the heuristics' first NB_DNN_CANDIDATES engine
// configurations whose workspace stays within NB_DNN_WORKSPACE are each
// timed on the call's own tensors (as torch.backends.cudnn.benchmark; this
// first call per shape waits for the GPU), and the fastest plan is cached.
// Configurations that down-convert inputs or reduce in reduced precision
// are skipped, and f32 uses tensor-core (TF32) engines only when
// nb_cuda_set_tf32 allows it. The handle attributes used (rather than
// cuDNN 9.8's device properties) keep every cuDNN 9 release working.

#define NB_DNN_WORKSPACE ((int64_t)1 << 30)
#define NB_DNN_CANDIDATES 8
#define NB_DNN_TIMED_RUNS 3
#define NB_DNN_MAX_DESCRIPTORS (8 + NB_DNN_CANDIDATES)

enum { DNN_FORWARD, DNN_DATA, DNN_FILTER };
enum { DNN_X = 1, DNN_W, DNN_Y }; // the unique ids of the image, the weight and the response

// A failed cuDNN call as a status: "not supported" ones (the 3000s) as
// NB_ERR_UNSUPPORTED, on which the caller falls back to nabla's kernels.
static nb_status dnn_error(const char *fn, cudnnStatus_t status, const char *call) {
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    nb_status code = status / 1000 == CUDNN_STATUS_NOT_SUPPORTED / 1000 ? NB_ERR_UNSUPPORTED
                                                                          : NB_ERR_DEVICE;
    return nb__error(code, "%s: cuDNN error %s in %s%s%s", fn, cudnnGetErrorString(status), call,
                     detail[0] ? ": " : "", detail);
}

#define NB_DNN_TRY(fn, call)                                                              \
    do {                                                                                  \
        cudnnStatus_t nb_dnn_status_ = (call);                                            \
        if (nb_dnn_status_ != CUDNN_STATUS_SUCCESS) return dnn_error((fn), nb_dnn_status_, #call); \
    } while (0)
#define NB_DNN_SET(fn, desc, name, type, count, value) \
    NB_DNN_TRY(fn, cudnnBackendSetAttribute((desc), (name), (type), (count), (value)))

// Per direction: the operation and the attributes naming its image (x or
// dx), weight (w or dw), response (y or dy), convolution, alpha and beta.
typedef struct dnn_direction {
    cudnnBackendDescriptorType_t type;
    cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
} dnn_direction;

static const dnn_direction directions[3] = {
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
};

// Everything a plan depends on (zeroed padding: it is compared as bytes).
typedef struct dnn_key {
    int device, direction, dtype, tf32, deterministic;
    int64_t dims[3][4]; // x [N, C, H, W], w [K, C/G, kh, kw], y [N, K, Ho, Wo]
    int64_t align[3];
    int64_t pre[2], post[2], stride[2], dilation[2];
} dnn_key;

typedef struct dnn_choice {
    cudnnBackendDescriptor_t plan; // NULL: cuDNN has no engine for the shape
    int64_t workspace;
    bool own; // depthwise: nabla's kernel is faster
} dnn_choice;

static void destroy_plan(void *value) {
    dnn_choice *choice = (dnn_choice *)value;
    if (choice->plan) cudnnBackendDestroyDescriptor(choice->plan);
}

static nb_shape_cache dnn_plans = NB_SHAPE_CACHE(dnn_key, dnn_choice, 512, destroy_plan);
// A cuDNN handle serves one thread at a time: plan searches and executions
// hold this lock (executions only queue work).
static pthread_mutex_t dnn_lock = PTHREAD_MUTEX_INITIALIZER;
static cudnnHandle_t dnn_handles[NB_CUDA_MAX_DEVICES];

// The descriptors of one plan search, destroyed together.
typedef struct dnn_descriptors {
    cudnnBackendDescriptor_t items[NB_DNN_MAX_DESCRIPTORS];
    int count;
} dnn_descriptors;

static nb_status dnn_create(const char *fn, dnn_descriptors *d, cudnnBackendDescriptorType_t type,
                            cudnnBackendDescriptor_t *out) {
    NB_ASSERT(d->count < NB_DNN_MAX_DESCRIPTORS);
    NB_DNN_TRY(fn, cudnnBackendCreateDescriptor(type, out));
    d->items[d->count++] = *out;
    return NB_OK;
}

static void dnn_destroy_all(dnn_descriptors *d) {
    for (int i = 0; i < d->count; i++) cudnnBackendDestroyDescriptor(d->items[i]);
    d->count = 0;
}

static cudnnDataType_t dnn_type(int dtype) {
    return dtype == NB_F16 ? CUDNN_DATA_HALF : dtype == NB_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

// A packed NCHW tensor of key's operand i.
static nb_status dnn_tensor(const char *fn, dnn_descriptors *d, const dnn_key *key, int i,
                            cudnnBackendDescriptor_t *out) {
    const int64_t *dims = key->dims[i];
    int64_t strides[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
    int64_t uid = DNN_X + i;
    cudnnDataType_t type = dnn_type(key->dtype);
    NB_TRY(dnn_create(fn, d, CUDNN_BACKEND_TENSOR_DESCRIPTOR, out));
    NB_DNN_SET(fn, *out, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &key->align[i]);
    NB_DNN_TRY(fn, cudnnBackendFinalize(*out));
    return NB_OK;
}

static nb_status dnn_convolution(const char *fn, dnn_descriptors *d, const dnn_key *key,
                                 cudnnBackendDescriptor_t *out) {
    int64_t spatial = 2;
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    NB_TRY(dnn_create(fn, d, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, out));
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, key->pre);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, key->post);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, key->dilation);
    NB_DNN_SET(fn, *out, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, key->stride);
    NB_DNN_TRY(fn, cudnnBackendFinalize(*out));
    return NB_OK;
}

// The operation graph of key's convolution: y = conv(x, w) in its direction.
static nb_status dnn_graph(const char *fn, dnn_descriptors *d, cudnnHandle_t handle,
                           const dnn_key *key, cudnnBackendDescriptor_t *graph) {
    const dnn_direction *dir = &directions[key->direction];
    cudnnBackendDescriptor_t tensors[3], conv, op;
    for (int i = 0; i < 3; i++) NB_TRY(dnn_tensor(fn, d, key, i, &tensors[i]));
    NB_TRY(dnn_convolution(fn, d, key, &conv));
    float alpha = 1, beta = 0;
    NB_TRY(dnn_create(fn, d, dir->type, &op));
    NB_DNN_SET(fn, op, dir->x, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tensors[0]);
    NB_DNN_SET(fn, op, dir->w, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tensors[1]);
    NB_DNN_SET(fn, op, dir->y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tensors[2]);
    NB_DNN_SET(fn, op, dir->conv, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
    NB_DNN_SET(fn, op, dir->alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
    NB_DNN_SET(fn, op, dir->beta, CUDNN_TYPE_FLOAT, 1, &beta);
    NB_DNN_TRY(fn, cudnnBackendFinalize(op));
    NB_TRY(dnn_create(fn, d, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, graph));
    NB_DNN_SET(fn, *graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op);
    NB_DNN_SET(fn, *graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    NB_DNN_TRY(fn, cudnnBackendFinalize(*graph));
    return NB_OK;
}

// Whether an engine configuration keeps the numerics nabla promises (and,
// with nb_use_deterministic_algorithms, repeats bit for bit).
static bool dnn_numerics_allowed(cudnnBackendDescriptor_t config, const dnn_key *key) {
    cudnnBackendDescriptor_t engine;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &engine) != CUDNN_STATUS_SUCCESS)
        return false;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t count = 0, got = 0;
    bool ok = cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine) ==
                  CUDNN_STATUS_SUCCESS &&
              cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                       CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT,
                                       &count, notes) == CUDNN_STATUS_SUCCESS;
    for (int64_t i = 0; ok && i < count; i++) {
        bool tf32 = key->dtype == NB_F32 && !key->tf32 && notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE;
        bool racy = key->deterministic && notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC;
        ok = !tf32 && !racy && notes[i] != CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS &&
             notes[i] != CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION;
    }
    cudnnBackendDestroyDescriptor(engine);
    return ok;
}

// Runs plan on the tensors at ptrs (x, w, y) with workspace.
static nb_status dnn_execute(const char *fn, cudnnHandle_t handle, cudnnBackendDescriptor_t plan,
                             void *const *ptrs, void *workspace) {
    cudnnBackendDescriptor_t pack;
    NB_DNN_TRY(fn, cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    int64_t uids[3] = {DNN_X, DNN_W, DNN_Y};
    cudnnStatus_t status = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                                    CUDNN_TYPE_VOID_PTR, 3, ptrs);
    if (status == CUDNN_STATUS_SUCCESS)
        status = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                                          CUDNN_TYPE_INT64, 3, uids);
    if (status == CUDNN_STATUS_SUCCESS)
        status = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                          CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (status == CUDNN_STATUS_SUCCESS) status = cudnnBackendFinalize(pack);
    if (status == CUDNN_STATUS_SUCCESS) status = cudnnBackendExecute(handle, plan, pack);
    cudnnBackendDestroyDescriptor(pack);
    NB_DNN_TRY(fn, status);
    return NB_OK;
}

// Milliseconds per run of run() on stream (after one untimed run), or -1
// when a run fails.
template <typename F> static float time_runs(cudaStream_t stream, F run) {
    cudaEvent_t start, stop;
    if (cudaEventCreate(&start) != cudaSuccess) return -1;
    if (cudaEventCreate(&stop) != cudaSuccess) {
        cudaEventDestroy(start);
        return -1;
    }
    float ms = -1;
    bool ok = run() == NB_OK && cudaEventRecord(start, stream) == cudaSuccess;
    for (int i = 0; ok && i < NB_DNN_TIMED_RUNS; i++) ok = run() == NB_OK;
    if (ok && cudaEventRecord(stop, stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess &&
        cudaEventElapsedTime(&ms, start, stop) == cudaSuccess)
        ms /= NB_DNN_TIMED_RUNS;
    else
        ms = -1;
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return ms;
}

// Runs plan once on ptrs with a workspace of its size from the pool.
static nb_status dnn_run(const char *fn, const nb_cuda_ctx *ctx, cudnnHandle_t handle,
                         cudnnBackendDescriptor_t plan, int64_t workspace_size, void *const *ptrs) {
    void *workspace = NULL, *block = NULL;
    if (workspace_size > 0)
        NB_TRY(nb__cuda_scratch(fn, ctx, (size_t)workspace_size, &workspace, &block));
    nb_status status = dnn_execute(fn, handle, plan, ptrs, workspace);
    if (workspace) nb__cuda_free(workspace, (size_t)workspace_size, nb_cuda(ctx->device), block);
    return status;
}

// The execution plan of config, timed on ptrs; NULL (and no error) when the
// engine cannot take the graph or needs too much workspace.
static cudnnBackendDescriptor_t dnn_timed_plan(const char *fn, const nb_cuda_ctx *ctx,
                                               cudnnHandle_t handle,
                                               cudnnBackendDescriptor_t config,
                                               void *const *ptrs, int64_t *workspace, float *ms) {
    cudnnBackendDescriptor_t plan;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) !=
        CUDNN_STATUS_SUCCESS)
        return NULL;
    int64_t got = 0;
    bool ok = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                       &handle) == CUDNN_STATUS_SUCCESS &&
              cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config) ==
                  CUDNN_STATUS_SUCCESS &&
              cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS &&
              cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                       CUDNN_TYPE_INT64, 1, &got, workspace) ==
                  CUDNN_STATUS_SUCCESS &&
              *workspace <= NB_DNN_WORKSPACE;
    if (ok) {
        int64_t size = *workspace;
        *ms = time_runs(ctx->handle, [&] { return dnn_run(fn, ctx, handle, plan, size, ptrs); });
        ok = *ms >= 0;
    }
    if (!ok) {
        cudnnBackendDestroyDescriptor(plan);
        return NULL;
    }
    return plan;
}

// Times the heuristics' candidates of mode and keeps the fastest in choice
// (whose time *best_ms holds).
static nb_status dnn_try_mode(const char *fn, const nb_cuda_ctx *ctx, cudnnHandle_t handle,
                              cudnnBackendDescriptor_t graph, const dnn_key *key,
                              cudnnBackendHeurMode_t mode, void *const *ptrs, dnn_choice *choice,
                              float *best_ms) {
    dnn_descriptors d = {};
    cudnnBackendDescriptor_t heuristics, configs[NB_DNN_CANDIDATES];
    nb_status status = dnn_create(fn, &d, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heuristics);
    for (int i = 0; status == NB_OK && i < NB_DNN_CANDIDATES; i++)
        status = dnn_create(fn, &d, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &configs[i]);
    int64_t found = 0; // a mode that cannot take the graph finds none
    if (status == NB_OK &&
        cudnnBackendSetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendSetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1,
                                 &mode) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendFinalize(heuristics) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendGetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, NB_DNN_CANDIDATES, &found,
                                 configs) != CUDNN_STATUS_SUCCESS)
        found = 0;
    for (int64_t i = 0; status == NB_OK && i < found; i++) {
        if (!dnn_numerics_allowed(configs[i], key)) continue;
        int64_t workspace = 0;
        float ms = 0;
        cudnnBackendDescriptor_t plan = dnn_timed_plan(fn, ctx, handle, configs[i], ptrs, &workspace, &ms);
        if (!plan) continue;
        if (choice->plan && ms >= *best_ms) {
            cudnnBackendDestroyDescriptor(plan);
            continue;
        }
        destroy_plan(choice);
        choice->plan = plan;
        choice->workspace = workspace;
        *best_ms = ms;
    }
    dnn_destroy_all(&d);
    return status;
}

// The fastest plan for key (NULL when no engine takes it), and for a
// depthwise convolution whether nabla's kernel beats it.
static nb_status dnn_search(const char *fn, const nb_op_args *args, const nb_cuda_ctx *ctx,
                            cudnnHandle_t handle, const dnn_key *key, void *const *ptrs,
                            bool depthwise, dnn_choice *choice) {
    dnn_descriptors d = {};
    cudnnBackendDescriptor_t graph;
    float best_ms = 0;
    *choice = dnn_choice{};
    nb_status status = dnn_graph(fn, &d, handle, key, &graph);
    if (status == NB_OK)
        status = dnn_try_mode(fn, ctx, handle, graph, key, CUDNN_HEUR_MODE_A, ptrs, choice, &best_ms);
    if (status == NB_OK && !choice->plan)
        status = dnn_try_mode(fn, ctx, handle, graph, key, CUDNN_HEUR_MODE_FALLBACK, ptrs, choice,
                              &best_ms);
    dnn_destroy_all(&d);
    if (status == NB_ERR_UNSUPPORTED) status = NB_OK; // the shape is left to nabla's kernels
    if (status != NB_OK || !depthwise) return status;
    float own_ms = time_runs(ctx->handle, [&] { return launch_own_depthwise(args, ctx); });
    choice->own = !choice->plan || (own_ms >= 0 && own_ms <= best_ms);
    return NB_OK;
}

// The padding after the image along d that gives the window's output size
// (equal to the padding before unless the sizes need less or more), or -1.
static int64_t post_padding(const nb_window *w, int d) {
    int64_t span = (int64_t)(w->kernel[d] - 1) * w->dilation[d] + 1;
    int64_t pads[2] = {w->padding[d], (w->out[d] - 1) * w->stride[d] + span - w->in[d] - w->padding[d]};
    for (int i = 0; i < 2; i++) {
        int64_t room = w->in[d] + w->padding[d] + pads[i] - span;
        if (pads[i] >= 0 && room >= 0 && room / w->stride[d] + 1 == w->out[d]) return pads[i];
    }
    return -1;
}

// The largest power of two up to 16 dividing p's address.
static int64_t dnn_alignment(const void *p) {
    int64_t a = 16;
    while (a > 1 && (uintptr_t)p % (uintptr_t)a) a /= 2;
    return a;
}

static int direction_of(nb_op op) {
    switch (op) {
    case NB_OP_CONV2D_INPUT_GRAD: case NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD: return DNN_DATA;
    case NB_OP_CONV2D_WEIGHT_GRAD: case NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD: return DNN_FILTER;
    default: return DNN_FORWARD;
    }
}

// args' convolution through cuDNN; for a depthwise one, *own is set instead
// when nabla's kernel is the faster (or cuDNN cannot run it). Inputs that
// are not contiguous are copied first.
static nb_status dnn_convolve(const nb_op_args *args, const nb_cuda_ctx *ctx, bool depthwise,
                              bool *own) {
    const char *fn = "nb_conv2d";
    const nb_window *w = &args->attrs.window;
    int direction = direction_of(args->op);
    // per direction, which operand (0: in[0], 1: in[1], 2: out) plays the
    // image x, the weight w and the response y: forward (x, w) -> y,
    // backward data (dy, w) -> dx, backward filter (dy, x) -> dw
    static const int roles[3][3] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0}};
    const nb_tensor *operands[3] = {args->in[0], args->in[1], args->out};
    nb_tensor *copies[2] = {NULL, NULL};
    nb_status status = NB_OK;
    if (nb_numel(operands[0]) == 0 || nb_numel(operands[1]) == 0) // an empty batch: zeros
        status = nb__error(NB_ERR_UNSUPPORTED, "%s: cuDNN takes no empty operands", fn);
    for (int i = 0; i < 2 && status == NB_OK; i++) {
        if (nb__is_contiguous(operands[i])) continue;
        status = nb__tensor_new(fn, operands[i]->ndim, operands[i]->shape, operands[i]->dtype,
                                operands[i]->storage->device, &copies[i]);
        if (status == NB_OK) status = nb__copy_into(copies[i], operands[i]);
        operands[i] = copies[i];
    }
    dnn_key key;
    memset(&key, 0, sizeof key);
    key.device = ctx->device;
    key.direction = direction;
    key.dtype = args->out->dtype;
    key.tf32 = nb_cuda_tf32_enabled();
    key.deterministic = nb_deterministic_algorithms_enabled();
    void *ptrs[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3 && status == NB_OK; i++) {
        const nb_tensor *t = operands[roles[direction][i]];
        memcpy(key.dims[i], t->shape, sizeof key.dims[i]);
        ptrs[i] = nb__data(t);
        key.align[i] = dnn_alignment(ptrs[i]);
    }
    for (int d = 0; d < 2; d++) {
        key.pre[d] = w->padding[d];
        key.post[d] = post_padding(w, d);
        key.stride[d] = w->stride[d];
        key.dilation[d] = w->dilation[d];
        if (key.post[d] < 0 && status == NB_OK)
            status = nb__error(NB_ERR_UNSUPPORTED, "%s: cuDNN cannot pad to this window", fn);
    }
    dnn_choice choice = {};
    pthread_mutex_lock(&dnn_lock);
    if (status == NB_OK && !dnn_handles[ctx->device]) {
        cudnnStatus_t created = cudnnCreate(&dnn_handles[ctx->device]);
        if (created != CUDNN_STATUS_SUCCESS) status = dnn_error(fn, created, "cudnnCreate");
    }
    cudnnHandle_t handle = dnn_handles[ctx->device];
    if (status == NB_OK) {
        cudnnStatus_t set = cudnnSetStream(handle, ctx->handle);
        if (set != CUDNN_STATUS_SUCCESS) status = dnn_error(fn, set, "cudnnSetStream");
    }
    if (status == NB_OK && !nb__shape_cache_get(&dnn_plans, &key, &choice)) {
        status = dnn_search(fn, args, ctx, handle, &key, ptrs, depthwise, &choice);
        if (status == NB_OK) nb__shape_cache_put(&dnn_plans, &key, &choice);
    }
    if (status == NB_OK && depthwise && choice.own) *own = true;
    else if (status == NB_OK && !choice.plan)
        status = nb__error(NB_ERR_UNSUPPORTED, "%s: cuDNN has no engine for x %s, weight %s", fn,
                           nb__shape_str(4, key.dims[0]), nb__shape_str(4, key.dims[1]));
    else if (status == NB_OK)
        status = dnn_run(fn, ctx, handle, choice.plan, choice.workspace, ptrs);
    pthread_mutex_unlock(&dnn_lock);
    if (depthwise && status == NB_ERR_UNSUPPORTED) { // nabla's kernel takes every shape
        *own = true;
        status = NB_OK;
    }
    nb_release(copies[0]); // stream order keeps the copies alive long enough
    nb_release(copies[1]);
    return status;
}

// conv2d_direct and its gradients (registered only with cuDNN).
nb_status nb__cuda_conv(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_conv2d", args->out->storage->device.index, &ctx));
    bool own = false;
    return dnn_convolve(args, &ctx, false, &own);
}
#endif

nb_status nb__cuda_depthwise(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_conv2d", args->out->storage->device.index, &ctx));
#ifdef NABLA_WITH_CUDNN
    if (args->out->dtype != NB_F64) {
        bool own = false;
        NB_TRY(dnn_convolve(args, &ctx, true, &own));
        if (!own) return NB_OK;
    }
#endif
    return launch_own_depthwise(args, &ctx);
}
