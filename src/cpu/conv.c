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
        double *plane = malloc((size_t)(pixels + w->out[1]) * sizeof *plane);
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

/* ---- depthwise convolution: each input channel c feeds output channels
 * c*m .. c*m + m - 1 (m = C_out / C), one kernel each; planes in double ---- */


/* The outputs [*first, *last) along d whose tap at offset reads inside the
 * input: 0 <= o * stride - padding + offset < in. */
static void tap_range(const nb_window *w, int d, int64_t offset, int64_t *first, int64_t *last) {
    int64_t shift = offset - w->padding[d], s = w->stride[d];
    int64_t lo = shift >= 0 ? 0 : (-shift + s - 1) / s;
    int64_t hi = w->in[d] - shift <= 0 ? 0 : (w->in[d] - shift - 1) / s + 1;
    *first = lo;
    *last = hi < w->out[d] ? hi : w->out[d];
}

/* For each tap (ky, kx) and each output (oy, ox) whose tap reads inside the
 * image, runs body with iy, ix (the input read) and tap; the ranges, from
 * bounds (tap_bounds), keep the inner loop free of branches. */
#define FOR_EACH_TAP(w, bounds, body)                                                         \
    for (int64_t ky = 0; ky < (w)->kernel[0]; ky++) {                                         \
        for (int64_t kx = 0; kx < (w)->kernel[1]; kx++) {                                     \
            int64_t tap = ky * (w)->kernel[1] + kx;                                           \
            int64_t oy0 = (bounds)[tap][0], oy1 = (bounds)[tap][1];                           \
            int64_t ox0 = (bounds)[tap][2], ox1 = (bounds)[tap][3];                           \
            int64_t sx = (w)->stride[1], bx = kx * (w)->dilation[1] - (w)->padding[1];        \
            for (int64_t oy = oy0; oy < oy1; oy++) {                                          \
                int64_t iy = oy * (w)->stride[0] - (w)->padding[0] + ky * (w)->dilation[0];   \
                for (int64_t ox = ox0; ox < ox1; ox++) {                                      \
                    int64_t ix = ox * sx + bx;                                                \
                    body                                                                      \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }

/* Each tap's output rows [0], [1] and columns [2], [3] that read inside the
 * image, worked out once per call (the divisions would cost more than a
 * small plane's arithmetic). */
static void tap_bounds(const nb_window *w, int64_t (*bounds)[4]) {
    for (int64_t ky = 0; ky < w->kernel[0]; ky++)
        for (int64_t kx = 0; kx < w->kernel[1]; kx++) {
            int64_t *b = bounds[ky * w->kernel[1] + kx];
            tap_range(w, 0, ky * w->dilation[0], &b[0], &b[1]);
            tap_range(w, 1, kx * w->dilation[1], &b[2], &b[3]);
        }
}

/* The operands of a depthwise kernel: forward a = x, b = weight; input grad
 * a = g, b = weight; weight grad a = g, b = x. */
typedef struct depthwise_operands {
    const nb_tensor *x, *g, *weight;
    int64_t batch, channels, outs, m, kk, in_pixels, out_pixels;
    const int64_t (*bounds)[4];
    bool padded;        /* stride 1 and padding <= (k-1)d: through a zero-padded plane */
    int64_t pad_pixels, acc_pixels; /* that plane's size, then its accumulator's */
} depthwise_operands;

/* One work item in compute type real (RD its dtype): a (sample, channel)
 * plane for forward and input grad, an output channel for the weight grad.
 * xp, gp and k hold an input plane, an output plane and a kernel. */
#define DEFINE_DEPTHWISE_ITEM(name, real, RD)                                                      \
    /* pad (hp x wp) = the plane src (h x wd) placed at row top, column left,                   \
     * zeros around it. */                                                                       \
    static void pad_plane_##name(const real *restrict src, int64_t h, int64_t wd,                \
                                 real *restrict pad, int64_t hp, int64_t wp, int64_t top,        \
                                 int64_t left) {                                                 \
        for (int64_t r = 0; r < hp; r++) {                                                       \
            int64_t sy = r - top;                                                                \
            for (int64_t c = 0; c < wp; c++) {                                                   \
                int64_t sx = c - left;                                                           \
                bool inside = sy >= 0 && sy < h && sx >= 0 && sx < wd;                           \
                pad[r * wp + c] = inside ? src[sy * wd + sx] : (real)0;                          \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    /* Stride 1 weight gradient of one sample: x zero-padded into pad as for the                \
     * forward, g laid into rows of the padded width (gw, zeros past the row),                  \
     * then each tap is one dot product: k[tap] += sum g * x shifted by the tap. */             \
    static void weight_grad_padded_##name(const nb_window *w, const real *restrict x,            \
                                          const real *restrict g, real *restrict k,              \
                                          real *restrict pad, real *restrict gw) {               \
        int64_t ho = w->out[0], wo = w->out[1];                                                  \
        int64_t hp = ho + (int64_t)(w->kernel[0] - 1) * w->dilation[0];                          \
        int64_t wp = wo + (int64_t)(w->kernel[1] - 1) * w->dilation[1];                          \
        pad_plane_##name(x, w->in[0], w->in[1], pad, hp, wp, w->padding[0], w->padding[1]);    \
        for (int64_t oy = 0; oy < ho; oy++)                                                      \
            for (int64_t c = 0; c < wp; c++) gw[oy * wp + c] = c < wo ? g[oy * wo + c] : (real)0; \
        int64_t span = (ho - 1) * wp + wo;                                                       \
        for (int64_t ky = 0; ky < w->kernel[0]; ky++)                                            \
            for (int64_t kx = 0; kx < w->kernel[1]; kx++) {                                      \
                const real *from = pad + ky * w->dilation[0] * wp + kx * w->dilation[1];         \
                real sum = 0;                                                                    \
                _Pragma("omp simd reduction(+ : sum)")                                           \
                for (int64_t i = 0; i < span; i++) sum += gw[i] * from[i];                       \
                k[ky * w->kernel[1] + kx] += sum;                                                \
            }                                                                                    \
    }                                                                                            \
    /* Stride 1 input gradient: acc (H rows of W + (kw-1)dw) += g convolved with                \
     * the flipped kernel, g zero-padded into pad by (k-1)d - p before and after:               \
     * dx[y][x] = sum k[i][j] g[y + p - i d][x + p - j d]. */                                    \
    static void input_grad_padded_##name(const nb_window *w, const real *restrict g,             \
                                         const real *restrict k, real *restrict acc,             \
                                         real *restrict pad) {                                   \
        int64_t h = w->in[0], wd = w->in[1];                                                     \
        int64_t ey = (int64_t)(w->kernel[0] - 1) * w->dilation[0];                               \
        int64_t ex = (int64_t)(w->kernel[1] - 1) * w->dilation[1];                               \
        int64_t hp = h + ey, wp = wd + ex, top = ey - w->padding[0], left = ex - w->padding[1];  \
        pad_plane_##name(g, w->out[0], w->out[1], pad, hp, wp, top, left);                     \
        int64_t span = (h - 1) * wp + wd;                                                        \
        for (int64_t ky = 0; ky < w->kernel[0]; ky++)                                            \
            for (int64_t kx = 0; kx < w->kernel[1]; kx++) {                                      \
                real tap = k[ky * w->kernel[1] + kx];                                            \
                const real *from = pad + (ey - ky * w->dilation[0]) * wp + (ex - kx * w->dilation[1]); \
                for (int64_t i = 0; i < span; i++) acc[i] += tap * from[i];                      \
            }                                                                                    \
    }                                                                                            \
    /* Stride 1: y = the plane x (zero-padded into pad, Hp x Wp) convolved with k,              \
     * each tap one long loop over acc (Ho rows of Wp, the border columns                       \
     * computed and dropped), which vectorizes even for 7 x 7 planes. */                        \
    static void forward_padded_##name(const nb_window *w, const real *restrict x,                \
                                      const real *restrict k, real *restrict y,                  \
                                      real *restrict pad, real *restrict acc) {                  \
        int64_t ho = w->out[0], wo = w->out[1];                                                  \
        int64_t hp = ho + (int64_t)(w->kernel[0] - 1) * w->dilation[0];                          \
        int64_t wp = wo + (int64_t)(w->kernel[1] - 1) * w->dilation[1];                          \
        pad_plane_##name(x, w->in[0], w->in[1], pad, hp, wp, w->padding[0], w->padding[1]);    \
        int64_t span = (ho - 1) * wp + wo;                                                       \
        for (int64_t i = 0; i < span; i++) acc[i] = 0;                                           \
        for (int64_t ky = 0; ky < w->kernel[0]; ky++)                                            \
            for (int64_t kx = 0; kx < w->kernel[1]; kx++) {                                      \
                real tap = k[ky * w->kernel[1] + kx];                                            \
                const real *from = pad + ky * w->dilation[0] * wp + kx * w->dilation[1];         \
                for (int64_t i = 0; i < span; i++) acc[i] += tap * from[i];                      \
            }                                                                                    \
        for (int64_t oy = 0; oy < ho; oy++)                                                      \
            for (int64_t ox = 0; ox < wo; ox++) y[oy * wo + ox] = acc[oy * wp + ox];             \
    }                                                                                            \
    /* k[tap] += sum over outputs of g * the input the tap reads, per tap */                    \
    static void weight_grad_taps_##name(const nb_window *w, const int64_t (*bounds)[4],          \
                                        const real *restrict xp, const real *restrict gp,        \
                                        real *restrict k) {                                      \
        for (int64_t ky = 0; ky < w->kernel[0]; ky++) {                                          \
            for (int64_t kx = 0; kx < w->kernel[1]; kx++) {                                      \
                const int64_t *b = bounds[ky * w->kernel[1] + kx];                               \
                int64_t oy0 = b[0], oy1 = b[1], ox0 = b[2], ox1 = b[3], sx = w->stride[1];       \
                real sum = 0;                                                                    \
                for (int64_t oy = oy0; oy < oy1; oy++) {                                         \
                    int64_t iy = oy * w->stride[0] - w->padding[0] + ky * w->dilation[0];        \
                    const real *g = gp + oy * w->out[1];                                         \
                    int64_t base = iy * w->in[1] + kx * w->dilation[1] - w->padding[1];          \
                    _Pragma("omp simd reduction(+ : sum)")                                       \
                    for (int64_t ox = ox0; ox < ox1; ox++) sum += g[ox] * xp[base + ox * sx];    \
                }                                                                                \
                k[ky * w->kernel[1] + kx] += sum;                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void name(const nb_op_args *args, const depthwise_operands *d, int64_t item,         \
                     real *restrict xp, real *restrict gp, real *restrict k) {                 \
        const nb_window *w = &args->attrs.window;                                                 \
        nb_tensor *out = args->out;                                                               \
        size_t size = nb_dtype_size(out->dtype);                                                  \
        size_t wsize = d->weight ? nb_dtype_size(d->weight->dtype) : 0;                           \
        if (args->op == NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD) { /* sum over the batch */            \
            int64_t oc = item, c = oc / d->m;                                                     \
            for (int64_t t = 0; t < d->kk; t++) k[t] = 0;                                         \
            for (int64_t n = 0; n < d->batch; n++) {                                              \
                const real *xs = nb__cpu_plane(d->x, n, c, RD, xp);                               \
                const real *gs = nb__cpu_plane(d->g, n, oc, RD, gp);                              \
                if (d->padded)                                                                    \
                    weight_grad_padded_##name(w, xs, gs, k, k + d->kk, k + d->kk + d->pad_pixels); \
                else                                                                              \
                    weight_grad_taps_##name(w, d->bounds, xs, gs, k);                             \
            }                                                                                     \
            nb__cpu_convert(out->dtype, nb__data(out) + oc * d->kk * (int64_t)size, 1, RD, k, 1, d->kk); \
            return;                                                                               \
        }                                                                                         \
        int64_t n = item / d->channels, c = item % d->channels;                                   \
        bool forward = args->op == NB_OP_DEPTHWISE_CONV2D, direct = out->dtype == RD;             \
        /* input grad: the plane of dx, written in place when out is of the compute type */      \
        real *restrict dx = direct && !forward                                                    \
                                ? (real *)(nb__data(out) + item * d->in_pixels * (int64_t)size)  \
                                : xp;                                                             \
        const real *restrict x = forward ? nb__cpu_plane(d->x, n, c, RD, xp) : NULL;              \
        if (!forward && d->padded) {                                                              \
            real *acc = k + d->kk + d->pad_pixels;                                                \
            for (int64_t i = 0; i < d->acc_pixels; i++) acc[i] = 0;                               \
        } else if (!forward) {                                                                    \
            for (int64_t i = 0; i < d->in_pixels; i++) dx[i] = 0;                                 \
        }                                                                                         \
        for (int64_t j = 0; j < d->m; j++) {                                                      \
            int64_t oc = c * d->m + j;                                                            \
            nb__cpu_convert(RD, k, 1, d->weight->dtype,                                           \
                            nb__data(d->weight) + oc * d->kk * (int64_t)wsize, 1, d->kk);         \
            if (forward) {                                                                        \
                char *at = nb__data(out) + (n * d->outs + oc) * d->out_pixels * (int64_t)size;    \
                real *restrict y = direct ? (real *)at : gp;                                      \
                if (d->padded) {                                                                  \
                    forward_padded_##name(w, x, k, y, k + d->kk, k + d->kk + d->pad_pixels);      \
                } else {                                                                          \
                    for (int64_t i = 0; i < d->out_pixels; i++) y[i] = 0;                         \
                    FOR_EACH_TAP(w, d->bounds, y[oy * w->out[1] + ox] += k[tap] * x[iy * w->in[1] + ix];) \
                }                                                                                 \
                if (!direct) nb__cpu_convert(out->dtype, at, 1, RD, gp, 1, d->out_pixels);        \
            } else if (d->padded) { /* input grad: each output channel's share into acc */   \
                input_grad_padded_##name(w, nb__cpu_plane(d->g, n, oc, RD, gp), k, k + d->kk +  \
                                         d->pad_pixels, k + d->kk);                               \
            } else { /* input grad: scatter each output channel's gradient back */                \
                const real *restrict g = nb__cpu_plane(d->g, n, oc, RD, gp);                      \
                FOR_EACH_TAP(w, d->bounds, dx[iy * w->in[1] + ix] += k[tap] * g[oy * w->out[1] + ox];)      \
            }                                                                                     \
        }                                                                                         \
        if (!forward && d->padded) { /* acc rows (of the padded width) into dx */                 \
            const real *acc = k + d->kk + d->pad_pixels;                                          \
            int64_t wp = w->in[1] + (int64_t)(w->kernel[1] - 1) * w->dilation[1];                 \
            for (int64_t y = 0; y < w->in[0]; y++)                                                \
                for (int64_t x = 0; x < w->in[1]; x++) dx[y * w->in[1] + x] = acc[y * wp + x];    \
        }                                                                                         \
        if (!forward && !direct)                                                                  \
            nb__cpu_convert(out->dtype, nb__data(out) + item * d->in_pixels * (int64_t)size, 1,   \
                            RD, xp, 1, d->in_pixels);                                             \
    }

DEFINE_DEPTHWISE_ITEM(depthwise_item_f32, float, NB_F32)
DEFINE_DEPTHWISE_ITEM(depthwise_item_f64, double, NB_F64)

nb_status nb__cpu_depthwise(const nb_op_args *args) {
    const nb_window *w = &args->attrs.window;
    const nb_tensor *a = args->in[0], *b = args->in[1];
    bool weight_grad = args->op == NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD;
    depthwise_operands d;
    d.x = args->op == NB_OP_DEPTHWISE_CONV2D ? a : weight_grad ? b : args->out;
    d.g = args->op == NB_OP_DEPTHWISE_CONV2D ? args->out : a;
    d.weight = weight_grad ? NULL : b;
    d.batch = d.x->shape[0];
    d.channels = d.x->shape[1];
    d.outs = d.g->shape[1];
    d.m = d.outs / d.channels;
    d.kk = (int64_t)w->kernel[0] * w->kernel[1];
    d.in_pixels = w->in[0] * w->in[1];
    d.out_pixels = w->out[0] * w->out[1];
    int64_t items = weight_grad ? d.outs : d.batch * d.channels;
    bool wide = nb__cpu_compute_dtype(args->out->dtype) == NB_F64;
    int64_t (*bounds)[4] = malloc((size_t)d.kk * sizeof *bounds);
    NB_CHECK(bounds, NB_ERR_OOM, "nb_conv2d: out of host memory for %lld taps", (long long)d.kk);
    tap_bounds(w, bounds);
    d.bounds = (const int64_t (*)[4])bounds;
    /* the padded planes: forward pads x to the outputs' reach, the input
     * gradient pads g by (k-1)d - p, which must not be negative */
    bool input_grad = args->op == NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD;
    int64_t ey = (int64_t)(w->kernel[0] - 1) * w->dilation[0];
    int64_t ex = (int64_t)(w->kernel[1] - 1) * w->dilation[1];
    d.padded = w->stride[0] == 1 && w->stride[1] == 1 &&
               (!input_grad || (w->padding[0] <= ey && w->padding[1] <= ex));
    int64_t rows = input_grad ? w->in[0] : w->out[0], cols = input_grad ? w->in[1] : w->out[1];
    d.pad_pixels = d.padded ? (rows + ey) * (cols + ex) : 0;
    d.acc_pixels = d.padded ? rows * (cols + ex) : 0;
    int64_t scratch = d.in_pixels + d.out_pixels + d.kk + d.pad_pixels + d.acc_pixels;
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (nb_numel(d.x) >= NB_CPU_PARALLEL_MIN)
    {
        double *buffer = malloc((size_t)scratch * sizeof(double));
        failed = !buffer;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            if (!buffer) continue;
            if (wide) {
                double *xp = buffer;
                depthwise_item_f64(args, &d, item, xp, xp + d.in_pixels, xp + d.in_pixels + d.out_pixels);
            } else {
                float *xp = (float *)buffer;
                depthwise_item_f32(args, &d, item, xp, xp + d.in_pixels, xp + d.in_pixels + d.out_pixels);
            }
        }
        free(buffer);
    }
    free(bounds);
    NB_CHECK(!failed, NB_ERR_OOM, "nb_conv2d: out of host memory for a plane of %lld",
             (long long)d.in_pixels);
    return NB_OK;
}
