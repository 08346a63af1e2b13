/* 2-D pooling over images [N, C, H, W]. max_pool2d's kernel finds the index
 * (y * W + x in the plane) of each window's maximum (the first NaN, else the
 * first maximum); the values are gathered with those indices, so the gradient
 * is gather's (a scatter-add into the chosen positions). Average pooling
 * divides by the kernel area, padding included (PyTorch's default), or, when
 * adaptive, by the size of each bin [floor(i H / Ho), ceil((i + 1) H / Ho));
 * its gradient spreads g / divisor over each window (a kernel of its own). */
#include <string.h>

#include "../core/internal.h"

static nb_status pool_window(const char *fn, const nb_tensor *x, const int *kernel,
                             const int *stride, const int *padding, nb_window *w) {
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(nb_dtype_is_float(x->dtype), NB_ERR_DTYPE, "%s: needs a float x, got %s", fn,
             nb_dtype_name(x->dtype));
    NB_CHECK(x->ndim == 4, NB_ERR_SHAPE, "%s: needs x [N, C, H, W], got %s", fn,
             nb__tensor_shape_str(x));
    NB_CHECK(kernel && kernel[0] >= 1 && kernel[1] >= 1, NB_ERR_INVALID,
             "%s: needs a kernel of at least [1,1]", fn);
    memset(w, 0, sizeof *w);
    for (int d = 0; d < 2; d++) {
        w->kernel[d] = kernel[d];
        w->stride[d] = stride ? stride[d] : kernel[d];
        w->padding[d] = padding ? padding[d] : 0;
        w->dilation[d] = 1;
        w->in[d] = x->shape[2 + d];
        NB_CHECK(w->stride[d] >= 1 && w->padding[d] >= 0 && 2 * w->padding[d] <= kernel[d],
                 NB_ERR_INVALID,
                 "%s: needs stride >= 1 and 0 <= padding <= kernel / 2, got kernel [%d,%d], "
                 "stride [%d,%d], padding [%d,%d]", fn, kernel[0], kernel[1],
                 stride ? stride[0] : kernel[0], stride ? stride[1] : kernel[1],
                 padding ? padding[0] : 0, padding ? padding[1] : 0);
        w->out[d] = (w->in[d] + 2 * w->padding[d] - kernel[d]) / w->stride[d] + 1;
        NB_CHECK(w->in[d] + 2 * w->padding[d] >= kernel[d], NB_ERR_SHAPE,
                 "%s: kernel [%d,%d] does not fit x %s with padding [%d,%d]", fn, kernel[0],
                 kernel[1], nb__tensor_shape_str(x), w->padding[0], w->padding[1]);
    }
    return NB_OK;
}

/* Runs op's kernel from in into a new [N, C, w->out] (or [N, C, w->in]
 * for the backward) tensor of dtype. */
static nb_status run_pool(nb_op op, const nb_tensor *in, const nb_window *w, nb_dtype dtype,
                          const int64_t *spatial, nb_tensor **out) {
    int64_t shape[4] = {in->shape[0], in->shape[1], spatial[0], spatial[1]};
    nb_op_args args = {.op = op, .dtype = in->dtype, .in = {in}, .n_in = 1};
    args.attrs.window = *w;
    return nb__dispatch_new(nb__op_fn(op), &args, 4, shape, dtype, out);
}

static nb_tensor *max_pool(const char *fn, const nb_tensor *x, const int kernel[2],
                           const int stride[2], const int padding[2], nb_tensor **indices) {
    nb_window w;
    if (pool_window(fn, x, kernel, stride, padding, &w) != NB_OK) return NULL;
    nb_tensor *index = NULL;
    if (run_pool(NB_OP_MAX_POOL2D, x, &w, NB_I64, w.out, &index) != NB_OK) return NULL;
    nb_scratch s = {0};
    int64_t flat_x[3] = {x->shape[0], x->shape[1], w.in[0] * w.in[1]};
    int64_t flat_i[3] = {x->shape[0], x->shape[1], w.out[0] * w.out[1]};
    nb_tensor *picked = nb__keep(&s, nb_gather(nb__keep(&s, nb_reshape(x, 3, flat_x)), 2,
                                               nb__keep(&s, nb_reshape(index, 3, flat_i))));
    nb_tensor *values = nb__keep(&s, nb_reshape(picked, 4, index->shape)), *out = NULL;
    if (nb__scratch_finish(&s, values, &out) != NB_OK) {
        nb_release(index);
        return NULL;
    }
    if (indices) *indices = index;
    else nb_release(index);
    return out;
}

nb_tensor *nb_max_pool2d_with_indices(const nb_tensor *x, const int kernel[2], const int stride[2],
                                      const int padding[2], nb_tensor **indices) {
    return max_pool("nb_max_pool2d_with_indices", x, kernel, stride, padding, indices);
}

nb_tensor *nb_max_pool2d(const nb_tensor *x, const int kernel[2], const int stride[2],
                         const int padding[2]) {
    return max_pool("nb_max_pool2d", x, kernel, stride, padding, NULL);
}

static nb_status avg_pool_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                   nb_tensor **grads) {
    (void)needs;
    const nb_window *w = &node->attrs.window;
    return run_pool(NB_OP_AVG_POOL2D_BACKWARD, g, w, g->dtype, w->in, &grads[0]);
}

static nb_tensor *avg_pool(const nb_tensor *x, const nb_window *w) {
    nb_tensor *out = NULL;
    nb_status status = run_pool(NB_OP_AVG_POOL2D, x, w, x->dtype, w->out, &out);
    nb_attrs attrs = {.window = *w};
    if (status == NB_OK) status = nb__record(out, NB_OP_AVG_POOL2D, 1, &x, &attrs, avg_pool_backward);
    return nb__unwrap(status, out);
}

nb_tensor *nb_avg_pool2d(const nb_tensor *x, const int kernel[2], const int stride[2],
                         const int padding[2]) {
    nb_window w;
    if (pool_window("nb_avg_pool2d", x, kernel, stride, padding, &w) != NB_OK) return NULL;
    return avg_pool(x, &w);
}

nb_tensor *nb_adaptive_avg_pool2d(const nb_tensor *x, int64_t out_h, int64_t out_w) {
    const int unit[2] = {1, 1};
    nb_window w;
    if (pool_window("nb_adaptive_avg_pool2d", x, unit, unit, NULL, &w) != NB_OK) return NULL;
    if (out_h < 1 || out_w < 1) {
        nb__error(NB_ERR_INVALID, "nb_adaptive_avg_pool2d: needs an output of at least 1x1, got "
                  "%lldx%lld", (long long)out_h, (long long)out_w);
        return NULL;
    }
    w.adaptive = 1;
    w.out[0] = out_h;
    w.out[1] = out_w;
    const char *outer = nb__enter("nb_adaptive_avg_pool2d");
    nb_tensor *out = avg_pool(x, &w);
    nb__leave(outer);
    return out;
}

nb_tensor *nb_global_avg_pool2d(const nb_tensor *x) {
    if (!x || x->ndim != 4) {
        nb__error(x ? NB_ERR_SHAPE : NB_ERR_INVALID, "nb_global_avg_pool2d: needs x [N, C, H, W]%s%s",
                  x ? ", got " : "", x ? nb__tensor_shape_str(x) : "");
        return NULL;
    }
    int dims[2] = {2, 3};
    return nb_mean(x, 2, dims, true);
}
