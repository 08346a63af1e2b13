/* Convolutions through unfold (im2col) and GEMM, as Caffe and PyTorch's CPU
 * path do. The unfold kernel lays the receptive fields out as columns,
 * col[(c * kh + i) * kw + j][n][oy * Wo + ox] = x[n][c][oy*sh - ph + i*dh][ox*sw - pw + j*dw]
 * (0 outside x), and fold sums columns back into an image (its adjoint).
 * With groups G, the columns are [G, Cg*kh*kw, N*L] and the weights
 * [G, Og, Cg*kh*kw], so a convolution is one batched matmul per chunk of the
 * batch (chunks keep the columns under NB_CONV_COLUMN_BUDGET elements):
 *   conv2d            y = W @ unfold(x)
 *     backward        dW = g @ unfold(x)^T,  dx = fold(W^T @ g)
 *   conv_transpose2d  y = fold(W^T @ x)   (the input gradient of conv2d)
 *     backward        dx = W @ unfold(g),  dW = x @ unfold(g)^T
 * and the bias gradient is g summed over batch and positions. The backward
 * recomputes the columns chunk by chunk instead of keeping them.
 * Without groups the product runs per sample on a strided view of the
 * columns ([n, C*kh*kw, L] inside [C*kh*kw, n, L]), so the output lands in
 * [N, C_out, L] order without a copy; a 1x1 convolution with stride 1 and no
 * padding skips unfold and multiplies x itself. Depthwise convolutions
 * (groups == C_in) have direct kernels for forward, input and weight
 * gradients. A backend may also have direct kernels for every convolution
 * (CUDA's cuDNN): conv2d_direct, conv2d_input_grad and conv2d_weight_grad,
 *   conv2d            y = direct(x, W)
 *     backward        dx = input_grad(g, W),  dW = weight_grad(g, x)
 *   conv_transpose2d  y = input_grad(x, W)
 *     backward        dx = direct(g, W),  dW = weight_grad(x, g)
 * used when it has them for the dtype; where they answer NB_ERR_UNSUPPORTED
 * (a shape the library cannot run) the GEMM path takes over. */
#include <limits.h>
#include <string.h>

#include "../core/internal.h"

#define NB_CONV_COLUMN_BUDGET ((int64_t)1 << 24)
#define K(expr) nb__keep(s, (expr))

/* ---- the kernels ---- */

/* col [C*kh*kw, N, out_h*out_w] from x [N, C, in_h, in_w]. */
static nb_status unfold_kernel(const nb_tensor *x, const nb_window *w, nb_tensor **col) {
    int64_t shape[3] = {x->shape[1] * w->kernel[0] * w->kernel[1], x->shape[0],
                        w->out[0] * w->out[1]};
    nb_op_args args = {.op = NB_OP_UNFOLD, .dtype = x->dtype, .in = {x}, .n_in = 1};
    args.attrs.window = *w;
    return nb__dispatch_new("nb_unfold", &args, 3, shape, x->dtype, col);
}

/* x [n, c, in_h, in_w] summed from col [c*kh*kw, n, out_h*out_w] (any strides). */
static nb_status fold_kernel(const nb_tensor *col, const nb_window *w, int64_t n, int64_t c,
                             nb_tensor **x) {
    int64_t shape[4] = {n, c, w->in[0], w->in[1]};
    nb_op_args args = {.op = NB_OP_FOLD, .dtype = col->dtype, .in = {col}, .n_in = 1};
    args.attrs.window = *w;
    return nb__dispatch_new("nb_fold", &args, 4, shape, col->dtype, x);
}

/* ---- arguments ---- */

/* Output size of a window along one dim, or -1 when the kernel does not fit. */
static int64_t out_size(int64_t in, int kernel, int stride, int64_t pad_total, int dilation) {
    int64_t span = (int64_t)(kernel - 1) * dilation + 1, padded; /* span < 2^62 */
    if (__builtin_add_overflow(in, pad_total, &padded)) padded = INT64_MAX; /* the shape check fails */
    return padded < span ? -1 : (padded - span) / stride + 1;
}

static nb_status check_pairs(const char *fn, const int *stride, const int *padding,
                             const int *dilation) {
    for (int d = 0; d < 2; d++) {
        NB_CHECK(stride[d] >= 1 && dilation[d] >= 1 && padding[d] >= 0, NB_ERR_INVALID,
                 "%s: needs stride >= 1, dilation >= 1 and padding >= 0, got stride [%d,%d], "
                 "padding [%d,%d], dilation [%d,%d]", fn, stride[0], stride[1], padding[0],
                 padding[1], dilation[0], dilation[1]);
    }
    return NB_OK;
}

static const int ones[2] = {1, 1}, zeros[2] = {0, 0};

/* The window of a convolution over an image of spatial size in[2] with
 * kernel [kh, kw]. */
static nb_status conv_window(const char *fn, const int64_t *in, int kh, int kw, const int *stride,
                             const int *padding, const int *dilation, nb_window *w) {
    memset(w, 0, sizeof *w);
    stride = stride ? stride : ones;
    dilation = dilation ? dilation : ones;
    NB_CHECK(kh >= 1 && kw >= 1, NB_ERR_SHAPE, "%s: the kernel must be at least 1x1, got %dx%d", fn,
             kh, kw);
    int64_t pad_total[2]; /* 2 * padding of up to 2^31 - 1: int64 */
    for (int d = 0; d < 2; d++) {
        int kernel = d ? kw : kh;
        w->kernel[d] = kernel;
        w->stride[d] = stride[d];
        w->dilation[d] = dilation[d];
        w->in[d] = in[d];
        if (padding && padding[0] == NB_PADDING_SAME) { /* extra padding goes after, as PyTorch */
            NB_CHECK(stride[0] == 1 && stride[1] == 1, NB_ERR_INVALID,
                     "%s: padding 'same' needs stride 1, got [%d,%d]", fn, stride[0], stride[1]);
            NB_CHECK(dilation[d] >= 1, NB_ERR_INVALID, "%s: dilation must be >= 1, got [%d,%d]", fn,
                     dilation[0], dilation[1]);
            pad_total[d] = (int64_t)(kernel - 1) * dilation[d];
            NB_CHECK(pad_total[d] / 2 <= INT_MAX, NB_ERR_OVERFLOW,
                     "%s: padding 'same' of kernel %d with dilation %d exceeds 2^31", fn, kernel,
                     dilation[d]);
            w->padding[d] = (int)(pad_total[d] / 2);
        } else {
            w->padding[d] = padding ? padding[d] : 0;
            pad_total[d] = 2 * (int64_t)w->padding[d];
        }
    }
    NB_TRY(check_pairs(fn, w->stride, w->padding, w->dilation));
    for (int d = 0; d < 2; d++) {
        w->out[d] = out_size(w->in[d], w->kernel[d], w->stride[d], pad_total[d], w->dilation[d]);
        NB_CHECK(w->out[d] > 0, NB_ERR_SHAPE,
                 "%s: kernel [%d,%d] (dilation [%d,%d]) does not fit an image of %s with padding "
                 "[%d,%d]", fn, kh, kw, w->dilation[0], w->dilation[1], nb__shape_str(2, in),
                 w->padding[0], w->padding[1]);
    }
    int64_t positions;
    NB_CHECK(!__builtin_mul_overflow(w->out[0], w->out[1], &positions), NB_ERR_OVERFLOW,
             "%s: an output of %lldx%lld positions (padding [%d,%d]) overflows", fn,
             (long long)w->out[0], (long long)w->out[1], w->padding[0], w->padding[1]);
    return NB_OK;
}

/* Batch samples per chunk so that the columns stay within the budget. */
static int64_t chunk_of(int64_t batch, int64_t column_rows, int64_t positions) {
    int64_t per_sample = column_rows * positions;
    int64_t chunk = per_sample > 0 ? NB_CONV_COLUMN_BUDGET / per_sample : batch;
    return chunk < 1 ? 1 : chunk > batch ? batch : chunk;
}

/* Whether the convolution is a 1x1 with stride 1 and no padding: x [n, C, L]
 * is its own column matrix. */
static bool is_pointwise(const nb_window *w) {
    return w->kernel[0] == 1 && w->kernel[1] == 1 && w->stride[0] == 1 && w->stride[1] == 1 &&
           w->padding[0] == 0 && w->padding[1] == 0 && w->in[0] == w->out[0] && w->in[1] == w->out[1];
}

static bool is_depthwise(const nb_tensor *x, int groups) {
    return groups > 1 && groups == x->shape[1];
}

/* A family of convolution kernels: forward, input and weight gradients. */
typedef struct conv_kernels {
    nb_op forward, input_grad, weight_grad;
} conv_kernels;

static const conv_kernels depthwise_kernels = {
    NB_OP_DEPTHWISE_CONV2D, NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD, NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD};
static const conv_kernels direct_kernels = {NB_OP_CONV2D_DIRECT, NB_OP_CONV2D_INPUT_GRAD,
                                            NB_OP_CONV2D_WEIGHT_GRAD};

/* Whether x's backend has direct kernels for every convolution of x's dtype. */
static bool has_direct(const nb_tensor *x) {
    return nb__has_kernel(x->storage->device, NB_OP_CONV2D_DIRECT, x->dtype);
}

/* Runs a convolution kernel: op from a and b into a new tensor of shape. */
static nb_status conv_kernel(const char *fn, nb_op op, const nb_tensor *a, const nb_tensor *b,
                             const nb_window *w, const int64_t *shape, nb_tensor **out) {
    nb_op_args args = {.op = op, .dtype = a->dtype, .in = {a, b}, .n_in = 2};
    args.attrs.window = *w;
    return nb__dispatch_new(fn, &args, 4, shape, a->dtype, out);
}

/* ---- unfold and fold ---- */

static nb_status check_image(const char *fn, const nb_tensor *x, const char *name) {
    NB_CHECK(x, NB_ERR_INVALID, "%s: %s is NULL", fn, name);
    NB_CHECK(x->ndim == 4, NB_ERR_SHAPE, "%s: %s must be [N, C, H, W], got %s", fn, name,
             nb__tensor_shape_str(x));
    return NB_OK;
}

static nb_tensor *fold_impl(const nb_tensor *cols, const nb_window *w, int64_t channels);

static nb_status unfold_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                 nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0];
    return nb__result(fold_impl(g, &node->attrs.window, x->shape[1]), &grads[0]);
}

/* unfold's [N, C*kh*kw, L] view of the kernel's [C*kh*kw, N, L] columns. */
static nb_tensor *unfold_impl(const nb_tensor *x, const nb_window *w) {
    nb_tensor *col = NULL;
    if (unfold_kernel(x, w, &col) != NB_OK) return NULL;
    int perm[3] = {1, 0, 2};
    bool was = nb_set_grad_enabled(false);
    nb_tensor *out = nb_permute(col, perm);
    nb_set_grad_enabled(was);
    nb_release(col);
    nb_attrs attrs = {.window = *w};
    if (out && nb__record(out, NB_OP_UNFOLD, 1, &x, &attrs, unfold_backward) != NB_OK) {
        nb_release(out);
        return NULL;
    }
    return out;
}

static nb_status fold_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                               nb_tensor **grads) {
    (void)needs;
    return nb__result(unfold_impl(g, &node->attrs.window), &grads[0]);
}

/* cols [N, C*kh*kw, L] summed into [N, channels, H, W]. */
static nb_tensor *fold_impl(const nb_tensor *cols, const nb_window *w, int64_t channels) {
    int perm[3] = {1, 0, 2};
    bool was = nb_set_grad_enabled(false);
    nb_tensor *view = nb_permute(cols, perm), *out = NULL;
    nb_set_grad_enabled(was);
    if (!view) return NULL;
    nb_status status = fold_kernel(view, w, cols->shape[0], channels, &out);
    nb_release(view);
    nb_attrs attrs = {.window = *w};
    if (status == NB_OK) status = nb__record(out, NB_OP_FOLD, 1, &cols, &attrs, fold_backward);
    return nb__unwrap(status, out);
}

nb_tensor *nb_unfold(const nb_tensor *x, const int kernel[2], const int dilation[2],
                     const int padding[2], const int stride[2]) {
    nb_window w;
    if (check_image("nb_unfold", x, "x") != NB_OK) return NULL;
    if (!kernel || kernel[0] < 1 || kernel[1] < 1) {
        nb__error(NB_ERR_INVALID, "nb_unfold: needs a kernel of at least [1,1]");
        return NULL;
    }
    if (padding && padding[0] == NB_PADDING_SAME) {
        nb__error(NB_ERR_INVALID, "nb_unfold: padding 'same' is for convolutions");
        return NULL;
    }
    if (conv_window("nb_unfold", x->shape + 2, kernel[0], kernel[1], stride, padding, dilation,
                    &w) != NB_OK)
        return NULL;
    return unfold_impl(x, &w);
}

nb_tensor *nb_fold(const nb_tensor *cols, const int64_t output_size[2], const int kernel[2],
                   const int dilation[2], const int padding[2], const int stride[2]) {
    const char *fn = "nb_fold";
    if (!cols || !output_size || !kernel || kernel[0] < 1 || kernel[1] < 1 || cols->ndim != 3) {
        nb__error(NB_ERR_INVALID, "nb_fold: needs cols [N, C*kh*kw, L], an output size and a "
                  "kernel of at least [1,1]");
        return NULL;
    }
    int64_t kk = (int64_t)kernel[0] * kernel[1];
    if (cols->shape[1] % kk) {
        nb__error(NB_ERR_SHAPE, "%s: dim 1 of cols %s is not a multiple of the kernel's %lld", fn,
                  nb__tensor_shape_str(cols), (long long)kk);
        return NULL;
    }
    if (output_size[0] < 1 || output_size[1] < 1 || (padding && padding[0] == NB_PADDING_SAME)) {
        nb__error(NB_ERR_INVALID, "%s: needs an output size of at least [1,1] and explicit padding, "
                  "got [%lld,%lld]", fn, (long long)output_size[0], (long long)output_size[1]);
        return NULL;
    }
    nb_window w;
    if (conv_window(fn, output_size, kernel[0], kernel[1], stride, padding, dilation, &w) != NB_OK)
        return NULL;
    if (w.out[0] * w.out[1] != cols->shape[2]) {
        nb__error(NB_ERR_SHAPE, "%s: cols %s have %lld positions but the window makes %lld x %lld",
                  fn, nb__tensor_shape_str(cols), (long long)cols->shape[2], (long long)w.out[0],
                  (long long)w.out[1]);
        return NULL;
    }
    return fold_impl(cols, &w, cols->shape[1] / kk);
}

/* ---- conv2d ---- */

typedef struct conv_shape {
    int64_t batch, in_channels, out_channels, groups;
    nb_window w;
} conv_shape;

/* The columns of samples [n0, n1) as [n, rows, L] (a strided view of the
 * unfold kernel's [rows, n, L], or x itself for a pointwise convolution). */
static nb_tensor *sample_columns(nb_scratch *s, const nb_tensor *x, const nb_window *w, int64_t n0,
                                 int64_t n1) {
    int64_t n = n1 - n0, positions = w->out[0] * w->out[1];
    nb_tensor *xs = K(nb_slice(x, 0, n0, n1, 1)), *col = NULL;
    if (is_pointwise(w)) {
        int64_t shape[3] = {n, x->shape[1], positions};
        return K(nb_reshape(xs, 3, shape));
    }
    if (xs && unfold_kernel(xs, w, &col) != NB_OK) col = NULL;
    int perm[3] = {1, 0, 2};
    return K(nb_permute(K(col), perm));
}

/* [n, O, Ho, Wo] of samples [n0, n1) of x: W @ unfold(x) per group. */
static nb_tensor *conv_chunk(nb_scratch *s, const nb_tensor *x, const nb_tensor *weight,
                             const conv_shape *c, int64_t n0, int64_t n1) {
    int64_t n = n1 - n0, g = c->groups, positions = c->w.out[0] * c->w.out[1];
    int64_t rows = c->in_channels / g * c->w.kernel[0] * c->w.kernel[1];
    if (g == 1) {
        int64_t w_shape[2] = {c->out_channels, rows}, y_shape[4] = {n, c->out_channels, c->w.out[0], c->w.out[1]};
        nb_tensor *y = K(nb_matmul(K(nb_reshape(weight, 2, w_shape)), sample_columns(s, x, &c->w, n0, n1)));
        return K(nb_reshape(y, 4, y_shape));
    }
    nb_tensor *col = NULL;
    nb_tensor *xs = K(nb_slice(x, 0, n0, n1, 1));
    if (xs && unfold_kernel(xs, &c->w, &col) != NB_OK) col = NULL;
    K(col);
    int64_t col_shape[3] = {g, rows, n * positions}, w_shape[3] = {g, c->out_channels / g, rows};
    nb_tensor *y = K(nb_matmul(K(nb_reshape(weight, 3, w_shape)), K(nb_reshape(col, 3, col_shape))));
    int64_t y_shape[4] = {c->out_channels, n, c->w.out[0], c->w.out[1]};
    int perm[4] = {1, 0, 2, 3};
    return K(nb_permute(K(nb_reshape(y, 4, y_shape)), perm));
}

static nb_tensor *add_bias(nb_scratch *s, nb_tensor *y, const nb_tensor *bias) {
    if (!bias) return y;
    int64_t shape[4] = {1, bias->shape[0], 1, 1};
    return K(nb_add(y, K(nb_reshape(bias, 4, shape))));
}

/* g summed over batch and positions: the bias gradient. */
static nb_status bias_grad(const nb_tensor *g, const nb_tensor *bias, nb_tensor **out) {
    int dims[3] = {0, 2, 3};
    nb_tensor *summed = nb_sum(g, 3, dims, false);
    if (summed && summed->dtype != bias->dtype) {
        nb_tensor *cast = nb_cast(summed, bias->dtype);
        nb_release(summed);
        summed = cast;
    }
    return nb__result(summed, out);
}

static conv_shape shape_of_node(const nb_node *node, const nb_tensor *x, const nb_tensor *weight,
                                bool transposed) {
    conv_shape c = {.batch = x->shape[0], .groups = node->attrs.window.groups,
                    .w = node->attrs.window};
    c.in_channels = x->shape[1];
    c.out_channels = transposed ? weight->shape[1] * c.groups : weight->shape[0];
    return c;
}

/* Adds part to the running sum *total (taking part's reference). */
static void accumulate(nb_scratch *t, nb_tensor **total, nb_tensor *part) {
    if (!part) return;
    nb_tensor *sum = *total ? nb_add(*total, part) : nb_retain(part);
    if (!sum) nb__keep(t, NULL);
    nb_release(*total);
    *total = sum;
}

/* The input and weight gradients of conv2d (or, transposed, of
 * conv_transpose2d) from a family of kernels; on failure no gradient is
 * left set. */
static nb_status kernel_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                 nb_tensor **grads, const conv_kernels *kernels, bool transposed) {
    const char *fn = transposed ? "nb_conv_transpose2d" : "nb_conv2d";
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1];
    const nb_window *w = &node->attrs.window;
    nb_tensor *gc = NULL, *dense = NULL; /* the kernels read weights densely */
    NB_TRY(nb__result(nb_contiguous(g), &gc));
    nb_status status = nb__result(nb_contiguous(weight), &dense);
    nb_op dx_op = transposed ? kernels->forward : kernels->input_grad;
    if (status == NB_OK && needs[0])
        status = conv_kernel(fn, dx_op, gc, dense, w, x->shape, &grads[0]);
    if (status == NB_OK && needs[1])
        status = conv_kernel(fn, kernels->weight_grad, transposed ? x : gc, transposed ? gc : x, w,
                             weight->shape, &grads[1]);
    if (status == NB_OK && needs[2]) status = bias_grad(g, node->inputs[2], &grads[2]);
    nb_release(gc);
    nb_release(dense);
    for (int i = 0; status != NB_OK && i < 3; i++) {
        nb_release(grads[i]);
        grads[i] = NULL;
    }
    return status;
}

/* Samples [n0, n1) of an ungrouped convolution's gradients: dW (when
 * want_dw) summed into *dw, dx (when not NULL) written into its slice. */
static void ungrouped_chunk(nb_scratch *t, const nb_tensor *x, const nb_tensor *weight,
                            const nb_tensor *g, const conv_shape *c, int64_t n0, int64_t n1,
                            nb_tensor **dw, nb_tensor *dx, bool want_dw) {
    int64_t n = n1 - n0, positions = c->w.out[0] * c->w.out[1];
    int64_t rows = c->in_channels * c->w.kernel[0] * c->w.kernel[1];
    int64_t g_shape[3] = {n, c->out_channels, positions}, w_shape[2] = {c->out_channels, rows};
    nb_tensor *gc = nb__keep(t, nb_reshape(nb__keep(t, nb_slice(g, 0, n0, n1, 1)), 3, g_shape));
    if (want_dw) {
        nb_tensor *cols = sample_columns(t, x, &c->w, n0, n1);
        nb_tensor *part = nb__keep(t, nb_matmul(gc, nb__keep(t, nb_transpose(cols, 1, 2))));
        int first = 0;
        accumulate(t, dw, nb__keep(t, nb_sum(part, 1, &first, false)));
    }
    if (!dx) return;
    nb_tensor *w2 = nb__keep(t, nb_reshape(weight, 2, w_shape));
    nb_tensor *dcol = nb__keep(t, nb_matmul(nb__keep(t, nb_transpose(w2, 0, 1)), gc));
    nb_tensor *dxs = NULL;
    if (is_pointwise(&c->w)) {
        int64_t shape[4] = {n, x->shape[1], x->shape[2], x->shape[3]};
        dxs = nb__keep(t, nb_reshape(dcol, 4, shape));
    } else {
        int perm[3] = {1, 0, 2};
        nb_tensor *view = nb__keep(t, nb_permute(dcol, perm));
        if (view && fold_kernel(view, &c->w, n, c->in_channels, &dxs) != NB_OK) dxs = NULL;
        nb__keep(t, dxs);
    }
    nb_tensor *target = nb__keep(t, nb_slice(dx, 0, n0, n1, 1));
    if (t->status == NB_OK && nb__copy_into(target, dxs) != NB_OK) nb__keep(t, NULL);
}

/* Samples [n0, n1) of a grouped convolution's gradients. */
static void grouped_chunk(nb_scratch *t, const nb_tensor *x, const nb_tensor *weight,
                          const nb_tensor *g, const conv_shape *c, int64_t n0, int64_t n1,
                          nb_tensor **dw, nb_tensor *dx, bool want_dw) {
    int64_t n = n1 - n0, groups = c->groups, og = c->out_channels / groups;
    int64_t positions = c->w.out[0] * c->w.out[1];
    int64_t rows = c->in_channels / groups * c->w.kernel[0] * c->w.kernel[1];
    int64_t g_shape[3] = {groups, og, n * positions}, w_shape[3] = {groups, og, rows};
    int perm[4] = {1, 0, 2, 3};
    nb_tensor *gc = nb__keep(t, nb_reshape(nb__keep(t, nb_contiguous(nb__keep(t, nb_permute(
                                 nb__keep(t, nb_slice(g, 0, n0, n1, 1)), perm)))), 3, g_shape));
    if (want_dw) {
        nb_tensor *col = NULL, *xs = nb__keep(t, nb_slice(x, 0, n0, n1, 1));
        if (xs && unfold_kernel(xs, &c->w, &col) != NB_OK) col = NULL;
        int64_t col_shape[3] = {groups, rows, n * positions};
        nb_tensor *cols = nb__keep(t, nb_reshape(nb__keep(t, col), 3, col_shape));
        accumulate(t, dw, nb__keep(t, nb_matmul(gc, nb__keep(t, nb_transpose(cols, 1, 2)))));
    }
    if (!dx) return;
    nb_tensor *wg = nb__keep(t, nb_reshape(weight, 3, w_shape));
    nb_tensor *dcol = nb__keep(t, nb_matmul(nb__keep(t, nb_transpose(wg, 1, 2)), gc));
    int64_t dcol_shape[3] = {c->in_channels * c->w.kernel[0] * c->w.kernel[1], n, positions};
    nb_tensor *view = nb__keep(t, nb_reshape(dcol, 3, dcol_shape)), *dxs = NULL;
    if (view && fold_kernel(view, &c->w, n, c->in_channels, &dxs) != NB_OK) dxs = NULL;
    nb__keep(t, dxs);
    nb_tensor *target = nb__keep(t, nb_slice(dx, 0, n0, n1, 1));
    if (t->status == NB_OK && nb__copy_into(target, dxs) != NB_OK) nb__keep(t, NULL);
}

/* The summed weight gradient, or zeros when the batch was empty. */
static nb_tensor *weight_grad_or_zeros(const nb_tensor *dw, const nb_tensor *weight) {
    if (!dw) return nb_zeros(4, weight->shape, weight->dtype, weight->storage->device);
    return nb_reshape(dw, 4, weight->shape);
}

static nb_status conv2d_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                 nb_tensor **grads) {
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1];
    conv_shape c = shape_of_node(node, x, weight, false);
    if (is_depthwise(x, (int)c.groups))
        return kernel_backward(node, g, needs, grads, &depthwise_kernels, false);
    if (has_direct(x)) {
        nb_status status = kernel_backward(node, g, needs, grads, &direct_kernels, false);
        if (status != NB_ERR_UNSUPPORTED) return status;
    }
    int64_t rows = c.in_channels * c.w.kernel[0] * c.w.kernel[1];
    int64_t chunk = chunk_of(c.batch, rows, c.w.out[0] * c.w.out[1]);
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *dw = NULL, *dx = NULL;
    if (needs[0] && nb__tensor_new("nb_conv2d", 4, x->shape, x->dtype, x->storage->device, &dx) != NB_OK)
        K(NULL);
    if (dx) K(dx);
    for (int64_t n0 = 0; n0 < c.batch && s->status == NB_OK; n0 += chunk) {
        int64_t n1 = n0 + chunk < c.batch ? n0 + chunk : c.batch;
        nb_scratch inner = {0};
        if (c.groups == 1) {
            ungrouped_chunk(&inner, x, weight, g, &c, n0, n1, &dw, needs[0] ? dx : NULL, needs[1]);
        } else {
            grouped_chunk(&inner, x, weight, g, &c, n0, n1, &dw, needs[0] ? dx : NULL, needs[1]);
        }
        if (nb__scratch_finish(&inner, NULL, NULL) != NB_OK) K(NULL);
    }
    if (dw) K(dw);
    if (needs[1] && s->status == NB_OK && !(grads[1] = weight_grad_or_zeros(dw, weight))) K(NULL);
    if (needs[0] && s->status == NB_OK) grads[0] = nb_retain(dx);
    if (needs[2] && s->status == NB_OK && bias_grad(g, node->inputs[2], &grads[2]) != NB_OK) K(NULL);
    return nb__scratch_finish(s, NULL, NULL);
}

static nb_status check_conv(const char *fn, const nb_tensor *x, const nb_tensor *weight,
                            const nb_tensor *bias, int groups, bool transposed) {
    NB_TRY(check_image(fn, x, "x"));
    NB_TRY(check_image(fn, weight, "weight"));
    NB_TRY(nb__check_layer_weight(fn, x, weight));
    NB_CHECK(groups >= 1, NB_ERR_INVALID, "%s: groups must be >= 1, got %d", fn, groups);
    int64_t in_per_group = transposed ? x->shape[1] / groups : weight->shape[1];
    int64_t weight_in = transposed ? weight->shape[0] : weight->shape[1] * groups;
    int64_t out = transposed ? weight->shape[1] * groups : weight->shape[0];
    NB_CHECK(x->shape[1] % groups == 0 && out % groups == 0 && weight_in == x->shape[1] &&
                 in_per_group > 0,
             NB_ERR_SHAPE, "%s: x %s, weight %s and groups %d do not fit (%s)", fn,
             nb__tensor_shape_str(x), nb__tensor_shape_str(weight), groups,
             transposed ? "weight is [C_in, C_out/groups, kh, kw]"
                        : "weight is [C_out, C_in/groups, kh, kw]");
    return nb__check_layer_bias(fn, x, bias, out);
}

/* conv2d without bias or autograd: the depthwise or direct kernel, one
 * product for a batch whose columns fit the budget, else chunks copied into
 * the output. */
static nb_tensor *conv_forward(nb_scratch *s, const nb_tensor *x, const nb_tensor *weight,
                               const conv_shape *c) {
    int64_t out_shape[4] = {c->batch, c->out_channels, c->w.out[0], c->w.out[1]};
    nb_tensor *y = NULL;
    if (is_depthwise(x, (int)c->groups)) {
        nb_tensor *dense = K(nb_contiguous(weight));
        if (dense && conv_kernel("nb_conv2d", NB_OP_DEPTHWISE_CONV2D, x, dense, &c->w, out_shape,
                                 &y) != NB_OK)
            y = NULL;
        return K(y);
    }
    if (has_direct(x)) {
        nb_status status = conv_kernel("nb_conv2d", NB_OP_CONV2D_DIRECT, x, weight, &c->w,
                                       out_shape, &y);
        if (status != NB_ERR_UNSUPPORTED) return K(status == NB_OK ? y : NULL);
    }
    int64_t rows = c->in_channels * c->w.kernel[0] * c->w.kernel[1];
    int64_t chunk = chunk_of(c->batch, rows, c->w.out[0] * c->w.out[1]);
    if (chunk >= c->batch && c->groups == 1) return conv_chunk(s, x, weight, c, 0, c->batch);
    if (nb__tensor_new("nb_conv2d", 4, out_shape, x->dtype, x->storage->device, &y) != NB_OK)
        return K(NULL);
    K(y);
    for (int64_t n0 = 0; n0 < c->batch && s->status == NB_OK; n0 += chunk) {
        int64_t n1 = n0 + chunk < c->batch ? n0 + chunk : c->batch;
        nb_scratch inner = {0};
        nb_tensor *part = conv_chunk(&inner, x, weight, c, n0, n1);
        nb_tensor *target = nb__keep(&inner, nb_slice(y, 0, n0, n1, 1));
        if (inner.status == NB_OK && nb__copy_into(target, part) != NB_OK) nb__keep(&inner, NULL);
        if (nb__scratch_finish(&inner, NULL, NULL) != NB_OK) K(NULL);
    }
    return y;
}

nb_tensor *nb_conv2d(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias,
                     const int stride[2], const int padding[2], const int dilation[2], int groups) {
    const char *fn = "nb_conv2d";
    if (check_conv(fn, x, weight, bias, groups, false) != NB_OK) return NULL;
    conv_shape c = {.batch = x->shape[0], .in_channels = x->shape[1],
                    .out_channels = weight->shape[0], .groups = groups};
    if (conv_window(fn, x->shape + 2, (int)weight->shape[2], (int)weight->shape[3], stride, padding,
                    dilation, &c.w) != NB_OK)
        return NULL;
    c.w.groups = groups;
    nb_scratch scratch = {0}, *s = &scratch;
    bool was = nb_set_grad_enabled(false);
    nb_tensor *y = conv_forward(s, x, weight, &c);
    y = add_bias(s, y, bias);
    nb_set_grad_enabled(was);
    if (s->status == NB_OK) {
        nb_attrs attrs = {.window = c.w};
        const nb_tensor *inputs[3] = {x, weight, bias};
        if (nb__record(y, NB_OP_CONV2D, 3, inputs, &attrs, conv2d_backward) != NB_OK) K(NULL);
    }
    nb_tensor *out = NULL;
    return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
}

/* ---- conv_transpose2d ---- */

/* x's samples [n0, n1) as [G, Cin/G, n*H*W]. */
static nb_tensor *grouped_input(nb_scratch *t, const nb_tensor *x, int64_t groups, int64_t n0,
                                int64_t n1) {
    int perm[4] = {1, 0, 2, 3};
    int64_t shape[3] = {groups, x->shape[1] / groups, (n1 - n0) * x->shape[2] * x->shape[3]};
    nb_tensor *moved = nb__keep(t, nb_permute(nb__keep(t, nb_slice(x, 0, n0, n1, 1)), perm));
    return nb__keep(t, nb_reshape(nb__keep(t, nb_contiguous(moved)), 3, shape));
}

static nb_status conv_transpose2d_backward(const nb_node *node, const nb_tensor *g,
                                           const bool *needs, nb_tensor **grads) {
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1];
    if (has_direct(x)) {
        nb_status status = kernel_backward(node, g, needs, grads, &direct_kernels, true);
        if (status != NB_ERR_UNSUPPORTED) return status;
    }
    conv_shape c = shape_of_node(node, x, weight, true);
    int64_t groups = c.groups, positions = x->shape[2] * x->shape[3];
    int64_t rows = c.out_channels / groups * c.w.kernel[0] * c.w.kernel[1];
    int64_t chunk = chunk_of(c.batch, rows * groups, positions);
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *dw = NULL, *dx = NULL;
    if (needs[0] && nb__tensor_new("nb_conv_transpose2d", 4, x->shape, x->dtype,
                                   x->storage->device, &dx) != NB_OK)
        K(NULL);
    if (dx) K(dx);
    int64_t w_shape[3] = {groups, c.in_channels / groups, rows};
    nb_tensor *wg = K(nb_reshape(weight, 3, w_shape));
    int perm[4] = {1, 0, 2, 3};
    for (int64_t n0 = 0; n0 < c.batch && s->status == NB_OK; n0 += chunk) {
        int64_t n1 = n0 + chunk < c.batch ? n0 + chunk : c.batch, n = n1 - n0;
        nb_scratch inner = {0}, *t = &inner;
        nb_tensor *gs = nb__keep(t, nb_slice(g, 0, n0, n1, 1)), *col = NULL;
        if (gs && unfold_kernel(gs, &c.w, &col) != NB_OK) col = NULL;
        int64_t col_shape[3] = {groups, rows, n * positions};
        nb_tensor *gcol = nb__keep(t, nb_reshape(nb__keep(t, col), 3, col_shape));
        if (needs[0]) {
            int64_t dx_shape[4] = {c.in_channels, n, x->shape[2], x->shape[3]};
            nb_tensor *part = nb__keep(t, nb_reshape(nb__keep(t, nb_matmul(wg, gcol)), 4, dx_shape));
            nb_tensor *target = nb__keep(t, nb_slice(dx, 0, n0, n1, 1));
            nb_tensor *moved = nb__keep(t, nb_permute(part, perm));
            if (t->status == NB_OK && nb__copy_into(target, moved) != NB_OK) nb__keep(t, NULL);
        }
        if (needs[1]) {
            nb_tensor *xc = grouped_input(t, x, groups, n0, n1);
            accumulate(t, &dw, nb__keep(t, nb_matmul(xc, nb__keep(t, nb_transpose(gcol, 1, 2)))));
        }
        if (nb__scratch_finish(t, NULL, NULL) != NB_OK) K(NULL);
    }
    if (dw) K(dw);
    if (needs[1] && s->status == NB_OK && !(grads[1] = weight_grad_or_zeros(dw, weight))) K(NULL);
    if (needs[0] && s->status == NB_OK) grads[0] = nb_retain(dx);
    if (needs[2] && s->status == NB_OK && bias_grad(g, node->inputs[2], &grads[2]) != NB_OK) K(NULL);
    return nb__scratch_finish(s, NULL, NULL);
}

/* conv_transpose2d without bias or autograd: fold(W^T @ x), chunk by chunk. */
static nb_tensor *transpose_by_gemm(nb_scratch *s, const nb_tensor *x, const nb_tensor *weight,
                                    const conv_shape *c, const int64_t *out_shape) {
    int64_t groups = c->groups;
    nb_tensor *y = NULL;
    if (nb__tensor_new("nb_conv_transpose2d", 4, out_shape, x->dtype, x->storage->device, &y) != NB_OK)
        return K(NULL);
    K(y);
    int64_t rows = c->out_channels / groups * c->w.kernel[0] * c->w.kernel[1];
    int64_t positions = x->shape[2] * x->shape[3];
    int64_t chunk = chunk_of(c->batch, rows * groups, positions);
    int64_t w_shape[3] = {groups, c->in_channels / groups, rows};
    nb_tensor *wt = K(nb_transpose(K(nb_reshape(weight, 3, w_shape)), 1, 2));
    for (int64_t n0 = 0; n0 < c->batch && s->status == NB_OK; n0 += chunk) {
        int64_t n1 = n0 + chunk < c->batch ? n0 + chunk : c->batch, n = n1 - n0;
        nb_scratch inner = {0}, *t = &inner;
        int64_t col_shape[3] = {c->out_channels * c->w.kernel[0] * c->w.kernel[1], n, positions};
        nb_tensor *col = nb__keep(t, nb_reshape(nb__keep(t, nb_matmul(wt, grouped_input(t, x, groups, n0, n1))),
                                                3, col_shape));
        nb_tensor *part = NULL;
        if (col && fold_kernel(col, &c->w, n, c->out_channels, &part) != NB_OK) part = NULL;
        nb__keep(t, part);
        nb_tensor *target = nb__keep(t, nb_slice(y, 0, n0, n1, 1));
        if (t->status == NB_OK && nb__copy_into(target, part) != NB_OK) nb__keep(t, NULL);
        if (nb__scratch_finish(t, NULL, NULL) != NB_OK) K(NULL);
    }
    return y;
}

nb_tensor *nb_conv_transpose2d(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias,
                               const int stride[2], const int padding[2],
                               const int output_padding[2], const int dilation[2], int groups) {
    const char *fn = "nb_conv_transpose2d";
    if (check_conv(fn, x, weight, bias, groups, true) != NB_OK) return NULL;
    stride = stride ? stride : ones;
    dilation = dilation ? dilation : ones;
    padding = padding ? padding : zeros;
    output_padding = output_padding ? output_padding : zeros;
    if (check_pairs(fn, stride, padding, dilation) != NB_OK) return NULL;
    int64_t out[2];
    for (int d = 0; d < 2; d++) {
        int op = output_padding[d];
        if (op < 0 || (op >= stride[d] && op >= dilation[d])) {
            nb__error(NB_ERR_INVALID, "%s: output_padding [%d,%d] must be smaller than stride or "
                      "dilation", fn, output_padding[0], output_padding[1]);
            return NULL;
        }
        out[d] = (x->shape[2 + d] - 1) * stride[d] - 2 * padding[d] +
                 (weight->shape[2 + d] - 1) * dilation[d] + op + 1;
        if (out[d] < 1) {
            nb__error(NB_ERR_SHAPE, "%s: x %s and weight %s give an empty output", fn,
                      nb__tensor_shape_str(x), nb__tensor_shape_str(weight));
            return NULL;
        }
    }
    conv_shape c = {.batch = x->shape[0], .in_channels = x->shape[1],
                    .out_channels = weight->shape[1] * groups, .groups = groups};
    c.w = (nb_window){.in = {out[0], out[1]}, .out = {x->shape[2], x->shape[3]},
                      .kernel = {(int)weight->shape[2], (int)weight->shape[3]},
                      .stride = {stride[0], stride[1]}, .padding = {padding[0], padding[1]},
                      .dilation = {dilation[0], dilation[1]}, .groups = groups};
    nb_scratch scratch = {0}, *s = &scratch;
    int64_t out_shape[4] = {c.batch, c.out_channels, out[0], out[1]};
    bool was = nb_set_grad_enabled(false);
    nb_tensor *y = NULL;
    nb_status direct = has_direct(x) ? conv_kernel(fn, NB_OP_CONV2D_INPUT_GRAD, x, weight, &c.w,
                                                   out_shape, &y)
                                     : NB_ERR_UNSUPPORTED;
    if (direct == NB_ERR_UNSUPPORTED) y = transpose_by_gemm(s, x, weight, &c, out_shape);
    else K(direct == NB_OK ? y : NULL);
    y = add_bias(s, y, bias);
    nb_set_grad_enabled(was);
    if (s->status == NB_OK) {
        nb_attrs attrs = {.window = c.w};
        const nb_tensor *inputs[3] = {x, weight, bias};
        if (nb__record(y, NB_OP_CONV_TRANSPOSE2D, 3, inputs, &attrs, conv_transpose2d_backward) != NB_OK)
            K(NULL);
    }
    nb_tensor *result = NULL;
    return nb__scratch_finish(s, y, &result) == NB_OK ? result : NULL;
}
