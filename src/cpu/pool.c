/* Pooling kernels, a plane per iteration, read into a double buffer. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"


/* The index of window (oy, ox)'s maximum: the first NaN, else the first max. */
static int64_t window_max(const double *plane, const nb_window *w, int64_t oy, int64_t ox) {
    int64_t y0, y1, x0, x1, best = -1;
    nb_window_range(w, 0, oy, &y0, &y1);
    nb_window_range(w, 1, ox, &x0, &x1);
    for (int64_t y = y0; y < y1; y++)
        for (int64_t x = x0; x < x1; x++) {
            double v = plane[y * w->in[1] + x];
            if (best >= 0 && plane[best] != plane[best]) return best;
            if (best < 0 || v > plane[best] || v != v) best = y * w->in[1] + x;
        }
    return best;
}

static double window_mean(const double *plane, const nb_window *w, int64_t oy, int64_t ox) {
    int64_t y0, y1, x0, x1;
    double area = (double)nb_window_range(w, 0, oy, &y0, &y1) * (double)nb_window_range(w, 1, ox, &x0, &x1);
    double sum = 0;
    for (int64_t y = y0; y < y1; y++)
        for (int64_t x = x0; x < x1; x++) sum += plane[y * w->in[1] + x];
    return sum / area;
}

/* Calls fn for each plane p = (n, c) of src with `in`, the plane as
 * doubles, and `out`, a buffer of out_pixels doubles. */
typedef void (*plane_fn)(const nb_op_args *args, int64_t p, const double *in, double *out);

static nb_status for_each_plane(const char *fn_name, const nb_op_args *args, int64_t out_pixels,
                                plane_fn fn) {
    const nb_tensor *src = args->in[0];
    int64_t planes = src->shape[0] * src->shape[1], in_pixels = src->shape[2] * src->shape[3];
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (planes * in_pixels >= NB_CPU_PARALLEL_MIN)
    {
        double *in = nb__malloc((size_t)(in_pixels + out_pixels) * sizeof *in);
        failed = !in;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            if (!in) continue;
            nb__cpu_load_plane(src, p / src->shape[1], p % src->shape[1], NB_F64, in);
            fn(args, p, in, in + in_pixels);
        }
        free(in);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "%s: out of host memory for a plane of %lld", fn_name,
             (long long)in_pixels);
    return NB_OK;
}

static void max_plane(const nb_op_args *args, int64_t p, const double *in, double *out) {
    (void)out;
    const nb_window *w = &args->attrs.window;
    int64_t pixels = w->out[0] * w->out[1], *index = (int64_t *)nb__data(args->out) + p * pixels;
    for (int64_t i = 0; i < pixels; i++) index[i] = window_max(in, w, i / w->out[1], i % w->out[1]);
}

static void avg_plane(const nb_op_args *args, int64_t p, const double *in, double *out) {
    const nb_window *w = &args->attrs.window;
    nb_tensor *y = args->out;
    int64_t pixels = w->out[0] * w->out[1];
    for (int64_t i = 0; i < pixels; i++) out[i] = window_mean(in, w, i / w->out[1], i % w->out[1]);
    nb__cpu_convert(y->dtype, nb__data(y) + p * pixels * (int64_t)nb_dtype_size(y->dtype), 1,
                    NB_F64, out, 1, pixels);
}

/* A plane of g [Ho, Wo] spread over [H, W]: each window gets g / divisor. */
static void avg_backward_plane(const nb_op_args *args, int64_t p, const double *in, double *out) {
    const nb_window *w = &args->attrs.window;
    nb_tensor *dx = args->out;
    int64_t in_pixels = w->in[0] * w->in[1], out_pixels = w->out[0] * w->out[1];
    memset(out, 0, (size_t)in_pixels * sizeof *out);
    for (int64_t i = 0; i < out_pixels; i++) {
        int64_t y0, y1, x0, x1;
        double area = (double)nb_window_range(w, 0, i / w->out[1], &y0, &y1) *
                      (double)nb_window_range(w, 1, i % w->out[1], &x0, &x1);
        for (int64_t y = y0; y < y1; y++)
            for (int64_t x = x0; x < x1; x++) out[y * w->in[1] + x] += in[i] / area;
    }
    nb__cpu_convert(dx->dtype, nb__data(dx) + p * in_pixels * (int64_t)nb_dtype_size(dx->dtype), 1,
                    NB_F64, out, 1, in_pixels);
}

nb_status nb__cpu_max_pool2d(const nb_op_args *args) {
    return for_each_plane("nb_max_pool2d", args, 0, max_plane);
}

nb_status nb__cpu_avg_pool2d(const nb_op_args *args) {
    const nb_window *w = &args->attrs.window;
    return for_each_plane("nb_avg_pool2d", args, w->out[0] * w->out[1], avg_plane);
}

nb_status nb__cpu_avg_pool2d_backward(const nb_op_args *args) {
    const nb_window *w = &args->attrs.window;
    return for_each_plane("nb_avg_pool2d", args, w->in[0] * w->in[1], avg_backward_plane);
}
