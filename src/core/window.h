/* Index arithmetic of sliding windows, shared by the CPU and CUDA kernels of
 * unfold/fold (im2col/col2im) and pooling. Plain inline C, like philox.h. */
#ifndef NABLA_WINDOW_H
#define NABLA_WINDOW_H

#include <stdint.h>

#include "philox.h" /* NB_HOST_DEVICE */

/* A 2-D window: kernel, stride, padding before (top, left), dilation; the
 * input (in) and output (out) spatial sizes. Adaptive pooling windows
 * instead cover [floor(i in / out), ceil((i + 1) in / out)). */
typedef struct nb_window {
    int64_t in[2], out[2];
    int kernel[2], stride[2], padding[2], dilation[2];
    int adaptive;
    int groups; /* convolutions */
} nb_window;

/* Rows (d = 0) or columns (d = 1) [*first, *last) of output position i's
 * window, clipped to the input; returns the unclipped length (the divisor of
 * an average that counts padding). */
NB_HOST_DEVICE static inline int64_t nb_window_range(const nb_window *w, int d, int64_t i,
                                                     int64_t *first, int64_t *last) {
    int64_t lo, hi;
    if (w->adaptive) {
        lo = i * w->in[d] / w->out[d];
        hi = ((i + 1) * w->in[d] + w->out[d] - 1) / w->out[d];
    } else {
        lo = i * w->stride[d] - w->padding[d];
        hi = lo + (int64_t)(w->kernel[d] - 1) * w->dilation[d] + 1;
    }
    *first = lo < 0 ? 0 : lo;
    *last = hi > w->in[d] ? w->in[d] : hi;
    return hi - lo;
}

/* Output positions [*first, *last) along d whose windows may hold input
 * position p (a superset: callers test each). */
NB_HOST_DEVICE static inline void nb_window_covering(const nb_window *w, int d, int64_t p,
                                                     int64_t *first, int64_t *last) {
    int64_t lo, hi;
    if (w->adaptive) {
        lo = p * w->out[d] / w->in[d] - 1;
        hi = (p + 1) * w->out[d] / w->in[d] + 2;
    } else { /* i * stride - padding <= p  and  i * stride - padding + span > p */
        int64_t span = (int64_t)(w->kernel[d] - 1) * w->dilation[d] + 1;
        int64_t top = p + w->padding[d];
        lo = top - span + 1 <= 0 ? 0 : (top - span + 1 + w->stride[d] - 1) / w->stride[d];
        hi = top / w->stride[d] + 1;
    }
    *first = lo < 0 ? 0 : lo;
    *last = hi > w->out[d] ? w->out[d] : hi;
}

#endif
