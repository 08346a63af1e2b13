/* unfold (im2col) and fold (col2im) kernels; src/ops/conv.c builds the
 * convolutions from them and matmul. unfold only moves elements, so it works
 * on any dtype by element size; fold sums in double, a plane per thread. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* Copies the row oy of one (channel, kernel offset) block into dst: Wo
 * elements of `size` bytes sampled along x with the window's stride. */
#define DEFINE_SAMPLE_ROW(T)                                                                 \
    static void sample_row_##T(char *dst, const char *src_row, int64_t x_stride,             \
                               const nb_window *w, int64_t kx) {                             \
        T *out = (T *)dst;                                                                   \
        const T *in = (const T *)src_row;                                                    \
        for (int64_t ox = 0; ox < w->out[1]; ox++) {                                          \
            int64_t x = ox * w->stride[1] - w->padding[1] + kx * w->dilation[1];              \
            out[ox] = x >= 0 && x < w->in[1] ? in[x * x_stride] : (T)0;                      \
        }                                                                                    \
    }
DEFINE_SAMPLE_ROW(uint8_t)
DEFINE_SAMPLE_ROW(uint16_t)
DEFINE_SAMPLE_ROW(uint32_t)
DEFINE_SAMPLE_ROW(uint64_t)

typedef void (*sample_fn)(char *, const char *, int64_t, const nb_window *, int64_t);

nb_status nb__cpu_unfold(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_tensor *col = args->out;
    const nb_window *w = &args->attrs.window;
    int64_t batch = x->shape[0], channels = x->shape[1];
    int64_t kernel = (int64_t)w->kernel[0] * w->kernel[1], positions = w->out[0] * w->out[1];
    size_t size = nb_dtype_size(x->dtype);
    sample_fn sample = size == 1 ? sample_row_uint8_t : size == 2 ? sample_row_uint16_t
                       : size == 4 ? sample_row_uint32_t : sample_row_uint64_t;
    int64_t items = channels * kernel * batch;
#pragma omp parallel for schedule(static) if (items * positions >= NB_CPU_PARALLEL_MIN)
    for (int64_t item = 0; item < items; item++) {
        int64_t r = item / batch, n = item % batch;
        int64_t c = r / kernel, ky = (r % kernel) / w->kernel[1], kx = r % w->kernel[1];
        char *dst = nb__data(col) + (r * batch + n) * positions * (int64_t)size;
        const char *plane = nb__data(x) + (n * x->strides[0] + c * x->strides[1]) * (int64_t)size;
        for (int64_t oy = 0; oy < w->out[0]; oy++) {
            int64_t y = oy * w->stride[0] - w->padding[0] + ky * w->dilation[0];
            char *row = dst + oy * w->out[1] * (int64_t)size;
            if (y < 0 || y >= w->in[0])
                memset(row, 0, (size_t)w->out[1] * size);
            else
                sample(row, plane + y * x->strides[2] * (int64_t)size, x->strides[3], w, kx);
        }
    }
    return NB_OK;
}

/* Adds one column row (Wo values) into the plane's row y. */
static void scatter_row(double *plane_row, const double *values, const nb_window *w, int64_t kx) {
    for (int64_t ox = 0; ox < w->out[1]; ox++) {
        int64_t x = ox * w->stride[1] - w->padding[1] + kx * w->dilation[1];
        if (x >= 0 && x < w->in[1]) plane_row[x] += values[ox];
    }
}

nb_status nb__cpu_fold(const nb_op_args *args) {
    const nb_tensor *col = args->in[0]; /* [C*kh*kw, N, L], any strides */
    nb_tensor *x = args->out;           /* [N, C, H, W], contiguous */
    const nb_window *w = &args->attrs.window;
    int64_t batch = x->shape[0], channels = x->shape[1], pixels = w->in[0] * w->in[1];
    int64_t kernel = (int64_t)w->kernel[0] * w->kernel[1];
    size_t col_size = nb_dtype_size(col->dtype), x_size = nb_dtype_size(x->dtype);
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (nb_numel(col) >= NB_CPU_PARALLEL_MIN)
    {
        double *plane = nb__malloc((size_t)(pixels + w->out[1]) * sizeof *plane);
        failed = !plane;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < batch * channels; item++) {
            if (!plane) continue;
            int64_t n = item / channels, c = item % channels;
            double *values = plane + pixels;
            memset(plane, 0, (size_t)pixels * sizeof *plane);
            for (int64_t k = 0; k < kernel; k++) {
                int64_t r = c * kernel + k, ky = k / w->kernel[1], kx = k % w->kernel[1];
                for (int64_t oy = 0; oy < w->out[0]; oy++) {
                    int64_t y = oy * w->stride[0] - w->padding[0] + ky * w->dilation[0];
                    if (y < 0 || y >= w->in[0]) continue;
                    int64_t at = r * col->strides[0] + n * col->strides[1] +
                                 oy * w->out[1] * col->strides[2];
                    nb__cpu_convert(NB_F64, values, 1, col->dtype,
                                    nb__data(col) + at * (int64_t)col_size, col->strides[2],
                                    w->out[1]);
                    scatter_row(plane + y * w->in[1], values, w, kx);
                }
            }
            nb__cpu_convert(x->dtype, nb__data(x) + item * pixels * (int64_t)x_size, 1, NB_F64,
                            plane, 1, pixels);
        }
        free(plane);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "nb_fold: out of host memory for a plane of %lld",
             (long long)pixels);
    return NB_OK;
}

/* ---- depthwise convolution: input channel c feeds output channels
 * c*m .. c*m + m - 1 (m = C_out / C), one kernel each. A work item takes
 * NB_DW_LANES input channels at once, laid out [row][column][lane] in a
 * zero-padded block (oneDNN's blocked nChw8c layout): each multiply-add then
 * runs across the lanes as one vector, with no bounds tests, for any stride,
 * padding and dilation, and small planes (7 x 7) cost no more per element
 * than large ones. ---- */

#define NB_DW_LANES 8

typedef struct depthwise_plan {
    const nb_window *w;
    const nb_tensor *x, *g, *weight; /* weight is NULL for the weight gradient */
    nb_tensor *out;
    int64_t batch, channels, m, kk;
    int64_t rows, cols; /* the padded input block: input (y, x) at (y + padding[0], x + padding[1]) */
} depthwise_plan;

/* Lanes l < lanes of a block hold channel first + l * step. */
typedef struct lane_map {
    int64_t first, step;
    int lanes;
} lane_map;

#define L NB_DW_LANES
#define DEFINE_DEPTHWISE(T, RD)                                                                   \
    /* block[(y + top) * cols + x + left][l] = plane (n, lane l's channel) of t; the rest 0 */  \
    static void load_block_##T(const nb_tensor *t, int64_t n, lane_map lanes, T *restrict block, \
                               int64_t rows, int64_t cols, int64_t top, int64_t left) {           \
        int64_t h = t->shape[2], wd = t->shape[3], sx = t->strides[3];                           \
        size_t size = nb_dtype_size(t->dtype);                                                   \
        bool covered = lanes.lanes == L && top == 0 && left == 0 && rows == h && cols == wd;     \
        if (!covered) /* a zero border, or unused lanes */                                      \
            memset(block, 0, (size_t)(rows * cols * L) * sizeof(T));                             \
        for (int l = 0; l < lanes.lanes; l++) {                                                  \
            int64_t c = lanes.first + l * lanes.step;                                            \
            for (int64_t y = 0; y < h; y++) {                                                    \
                const char *src = nb__data(t) + (n * t->strides[0] + c * t->strides[1] +         \
                                                 y * t->strides[2]) * (int64_t)size;             \
                T *dst = block + ((y + top) * cols + left) * L + l;                              \
                if (t->dtype != RD) {                                                            \
                    nb__cpu_convert(RD, dst, L, t->dtype, src, sx, wd);                          \
                    continue;                                                                    \
                }                                                                                \
                const T *row = (const T *)src;                                                   \
                for (int64_t x = 0; x < wd; x++) dst[x * L] = row[x * sx];                       \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    /* The inverse into the contiguous [N, C, H, W] tensor t, lanes < lanes only. */              \
    static void store_block_##T(nb_tensor *t, int64_t n, lane_map lanes, const T *restrict block, \
                                int64_t cols, int64_t top, int64_t left) {                       \
        int64_t h = t->shape[2], wd = t->shape[3];                                               \
        size_t size = nb_dtype_size(t->dtype);                                                   \
        for (int l = 0; l < lanes.lanes; l++) {                                                  \
            int64_t c = lanes.first + l * lanes.step;                                            \
            for (int64_t y = 0; y < h; y++) {                                                    \
                char *dst = nb__data(t) + ((n * t->shape[1] + c) * h + y) * wd * (int64_t)size;  \
                const T *src = block + ((y + top) * cols + left) * L + l;                        \
                if (t->dtype != RD) {                                                            \
                    nb__cpu_convert(t->dtype, dst, 1, RD, src, L, wd);                           \
                    continue;                                                                    \
                }                                                                                \
                T *row = (T *)dst;                                                               \
                for (int64_t x = 0; x < wd; x++) row[x] = src[x * L];                            \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    /* taps[tap][l] = the kernel of lane l's output channel; unused lanes 0 */                    \
    static void load_taps_##T(const nb_tensor *weight, int64_t kk, lane_map lanes,                \
                              T *restrict taps) {                                                \
        size_t size = nb_dtype_size(weight->dtype);                                              \
        memset(taps, 0, (size_t)(kk * L) * sizeof(T));                                           \
        for (int l = 0; l < lanes.lanes; l++)                                                    \
            nb__cpu_convert(RD, taps + l, L, weight->dtype,                                      \
                            nb__data(weight) + (lanes.first + l * lanes.step) * kk * (int64_t)size, \
                            1, kk);                                                              \
    }                                                                                            \
    /* y[oy][ox] = sum over taps of taps[tap] * x at the tap's reach. Taps go       \
     * outermost: the adds of one tap are independent, where a per-pixel sum       \
     * over taps would wait on each add's latency. */                                 \
    static void forward_block_##T(const nb_window *w, int64_t cols, const T *restrict x,         \
                                  const T *restrict taps, T *restrict y) {                       \
        memset(y, 0, (size_t)(w->out[0] * w->out[1] * L) * sizeof(T));                          \
        for (int ky = 0; ky < w->kernel[0]; ky++)                                                \
            for (int kx = 0; kx < w->kernel[1]; kx++) {                                          \
                const T *tap = taps + (ky * w->kernel[1] + kx) * L;                              \
                for (int64_t oy = 0; oy < w->out[0]; oy++) {                                     \
                    const T *from = x + ((oy * w->stride[0] + ky * w->dilation[0]) * cols +      \
                                         kx * w->dilation[1]) * L;                               \
                    T *to = y + oy * w->out[1] * L;                                              \
                    for (int64_t ox = 0; ox < w->out[1]; ox++)                                   \
                        for (int l = 0; l < L; l++)                                              \
                            to[ox * L + l] += tap[l] * from[ox * w->stride[1] * L + l];          \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
    /* dx at each tap's reach += taps[tap] * g[oy][ox], taps outermost as above */              \
    static void input_grad_block_##T(const nb_window *w, int64_t cols, const T *restrict g,      \
                                     const T *restrict taps, T *restrict dx) {                   \
        for (int ky = 0; ky < w->kernel[0]; ky++)                                                \
            for (int kx = 0; kx < w->kernel[1]; kx++) {                                          \
                const T *tap = taps + (ky * w->kernel[1] + kx) * L;                              \
                for (int64_t oy = 0; oy < w->out[0]; oy++) {                                     \
                    T *to = dx + ((oy * w->stride[0] + ky * w->dilation[0]) * cols +             \
                                  kx * w->dilation[1]) * L;                                      \
                    const T *grad = g + oy * w->out[1] * L;                                      \
                    for (int64_t ox = 0; ox < w->out[1]; ox++)                                   \
                        for (int l = 0; l < L; l++)                                              \
                            to[ox * w->stride[1] * L + l] += tap[l] * grad[ox * L + l];          \
                }                                                                                \
            }                                                                                    \
    }                                                                                            \
    /* dk[tap] += sum over outputs of g[oy][ox] * x at the tap's reach */                        \
    static void weight_grad_block_##T(const nb_window *w, int64_t cols, const T *restrict g,     \
                                      const T *restrict x, T *restrict dk) {                     \
        for (int64_t oy = 0; oy < w->out[0]; oy++)                                               \
            for (int64_t ox = 0; ox < w->out[1]; ox++) {                                         \
                const T *grad = g + (oy * w->out[1] + ox) * L;                                   \
                for (int ky = 0; ky < w->kernel[0]; ky++)                                        \
                    for (int kx = 0; kx < w->kernel[1]; kx++) {                                  \
                        const T *from = x + ((oy * w->stride[0] + ky * w->dilation[0]) * cols +  \
                                             ox * w->stride[1] + kx * w->dilation[1]) * L;       \
                        T *to = dk + (ky * w->kernel[1] + kx) * L;                               \
                        for (int l = 0; l < L; l++) to[l] += grad[l] * from[l];                  \
                    }                                                                            \
            }                                                                                    \
    }                                                                                            \
    /* One item: input channels c0 .. c0 + lanes - 1, of sample n (forward and                  \
     * input gradient) or summed over the batch (weight gradient). scratch                      \
     * holds the padded block xb, an output block gb, the taps and dk. */                       \
    static void depthwise_item_##T(const nb_op_args *args, const depthwise_plan *p, int64_t n,   \
                                   int64_t c0, T *restrict scratch) {                            \
        const nb_window *w = p->w;                                                               \
        int64_t ho = w->out[0], wo = w->out[1], top = w->padding[0], left = w->padding[1];       \
        int lanes = (int)(p->channels - c0 < L ? p->channels - c0 : L);                          \
        lane_map inputs = {c0, 1, lanes};                                                        \
        T *xb = scratch, *gb = xb + p->rows * p->cols * L, *taps = gb + ho * wo * L;             \
        T *dk = taps + p->kk * L;                                                                \
        switch (args->op) {                                                                      \
        case NB_OP_DEPTHWISE_CONV2D:                                                             \
            load_block_##T(p->x, n, inputs, xb, p->rows, p->cols, top, left);                    \
            for (int64_t j = 0; j < p->m; j++) {                                                 \
                lane_map outputs = {c0 * p->m + j, p->m, lanes};                                 \
                load_taps_##T(p->weight, p->kk, outputs, taps);                                  \
                forward_block_##T(w, p->cols, xb, taps, gb);                                     \
                store_block_##T(p->out, n, outputs, gb, wo, 0, 0);                               \
            }                                                                                    \
            return;                                                                              \
        case NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD:                                                  \
            memset(xb, 0, (size_t)(p->rows * p->cols * L) * sizeof(T));                          \
            for (int64_t j = 0; j < p->m; j++) {                                                 \
                lane_map outputs = {c0 * p->m + j, p->m, lanes};                                 \
                load_taps_##T(p->weight, p->kk, outputs, taps);                                  \
                load_block_##T(p->g, n, outputs, gb, ho, wo, 0, 0);                              \
                input_grad_block_##T(w, p->cols, gb, taps, xb);                                  \
            }                                                                                    \
            store_block_##T(p->out, n, inputs, xb, p->cols, top, left);                          \
            return;                                                                              \
        default: /* weight gradient: dk holds m kernels of taps, summed over the batch */       \
            memset(dk, 0, (size_t)(p->m * p->kk * L) * sizeof(T));                               \
            for (int64_t b = 0; b < p->batch; b++) {                                             \
                load_block_##T(p->x, b, inputs, xb, p->rows, p->cols, top, left);                \
                for (int64_t j = 0; j < p->m; j++) {                                             \
                    lane_map outputs = {c0 * p->m + j, p->m, lanes};                             \
                    load_block_##T(p->g, b, outputs, gb, ho, wo, 0, 0);                          \
                    weight_grad_block_##T(w, p->cols, gb, xb, dk + j * p->kk * L);               \
                }                                                                                \
            }                                                                                    \
            size_t size = nb_dtype_size(p->out->dtype);                                          \
            for (int64_t j = 0; j < p->m; j++)                                                   \
                for (int l = 0; l < lanes; l++)                                                  \
                    nb__cpu_convert(p->out->dtype,                                               \
                                    nb__data(p->out) +                                           \
                                        ((c0 + l) * p->m + j) * p->kk * (int64_t)size,           \
                                    1, RD, dk + j * p->kk * L + l, L, p->kk);                    \
        }                                                                                        \
    }

DEFINE_DEPTHWISE(float, NB_F32)
DEFINE_DEPTHWISE(double, NB_F64)
#undef L

/* The block extent along d: room for every input (after the padding) and
 * for the reach of the last output's last tap. */
static int64_t block_extent(const nb_window *w, int d) {
    int64_t inputs = w->padding[d] + w->in[d];
    int64_t reach = (w->out[d] - 1) * w->stride[d] + (int64_t)(w->kernel[d] - 1) * w->dilation[d] + 1;
    return inputs > reach ? inputs : reach;
}

nb_status nb__cpu_depthwise(const nb_op_args *args) {
    const nb_tensor *a = args->in[0], *b = args->in[1];
    bool forward = args->op == NB_OP_DEPTHWISE_CONV2D;
    bool weight_grad = args->op == NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD;
    depthwise_plan p = {.w = &args->attrs.window, .out = args->out};
    /* forward (x, weight), input grad (g, weight), weight grad (g, x) */
    p.x = forward ? a : weight_grad ? b : args->out;
    p.g = forward ? args->out : a;
    p.weight = weight_grad ? NULL : b;
    p.batch = p.x->shape[0];
    p.channels = p.x->shape[1];
    p.m = p.g->shape[1] / p.channels;
    p.kk = (int64_t)p.w->kernel[0] * p.w->kernel[1];
    p.rows = block_extent(p.w, 0);
    p.cols = block_extent(p.w, 1);
    int64_t blocks = (p.channels + NB_DW_LANES - 1) / NB_DW_LANES;
    int64_t items = weight_grad ? blocks : p.batch * blocks;
    int64_t scratch = (p.rows * p.cols + p.w->out[0] * p.w->out[1] + p.kk + p.m * p.kk) * NB_DW_LANES;
    bool wide = nb__cpu_compute_dtype(args->out->dtype) == NB_F64;
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (nb_numel(p.x) >= NB_CPU_PARALLEL_MIN)
    {
        void *buffer = nb__malloc((size_t)scratch * (wide ? sizeof(double) : sizeof(float)));
        failed = !buffer;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            if (!buffer) continue;
            int64_t n = weight_grad ? 0 : item / blocks, c0 = (item % blocks) * NB_DW_LANES;
            if (wide)
                depthwise_item_double(args, &p, n, c0, buffer);
            else
                depthwise_item_float(args, &p, n, c0, buffer);
        }
        free(buffer);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "nb_conv2d: out of host memory for a %lld x %lld block",
             (long long)p.rows, (long long)p.cols);
    return NB_OK;
}
