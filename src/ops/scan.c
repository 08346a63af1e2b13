/* Scans along one dim: cumsum, cumprod, logcumsumexp. Integer and bool
 * inputs give i64 (PyTorch's rule); logcumsumexp takes floats.
 *
 * Gradients, with y the result and g its gradient, for element i of a row:
 *   cumsum        sum_{j >= i} g_j: cumsum of g from the end
 *   cumprod       sum_{j >= i} g_j prod_{k <= j, k != i} x_k = y_{i-1} t_i
 *   logcumsumexp  sum_{j >= i} g_j exp(x_i - y_j)           = exp(x_i - y_i) t_i
 * where t is a recurrence run from the end, t_i = g_i + a_{i+1} t_{i+1}, with
 * a_{i+1} = x_{i+1} for cumprod (no division, so zeros in x are exact) and
 * exp(y_i - y_{i+1}) <= 1 for logcumsumexp (nothing overflows). The kernel
 * scan_backward computes both; an x_i of -inf gets gradient 0 in
 * logcumsumexp (PyTorch gives NaN). */
#include "../core/internal.h"

static nb_status scan(nb_op op, const nb_tensor *x, int dim, bool reverse, nb_tensor **out);

static nb_status scan_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                               nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0];
    if (node->op == NB_OP_CUMSUM)
        return scan(NB_OP_CUMSUM, g, node->attrs.scan.dim, !node->attrs.scan.reverse, &grads[0]);
    nb_tensor *y = NULL, *gx = NULL, *dense_g = NULL;
    bool was = nb_set_grad_enabled(false);
    nb_status status = scan(node->op, x, node->attrs.scan.dim, false, &y);
    nb_set_grad_enabled(was);
    NB_TRY(status);
    status = nb__result(nb_contiguous(g), &dense_g);
    nb_tensor *dense_x = NULL;
    if (status == NB_OK) status = nb__result(nb_contiguous(x), &dense_x);
    if (status == NB_OK) {
        nb_op_args args = {.op = NB_OP_SCAN_BACKWARD, .dtype = x->dtype, .in = {dense_x, y, dense_g},
                           .n_in = 3, .attrs = node->attrs};
        args.attrs.scan.forward = node->op;
        status = nb__dispatch_new(nb__op_fn(node->op), &args, x->ndim, x->shape, x->dtype, &gx);
    }
    nb_release(dense_x);
    nb_release(dense_g);
    nb_release(y);
    grads[0] = gx;
    return status;
}

static nb_status scan(nb_op op, const nb_tensor *x, int dim, bool reverse, nb_tensor **out) {
    const char *fn = nb__op_fn(op);
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(op != NB_OP_LOGCUMSUMEXP || nb_dtype_is_float(x->dtype), NB_ERR_DTYPE,
             "%s: needs a float tensor, got %s", fn, nb_dtype_name(x->dtype));
    int d;
    NB_TRY(nb__normalize_dim(fn, dim, x->ndim ? x->ndim : 1, &d));
    nb_dtype dtype = nb_dtype_is_float(x->dtype) ? x->dtype : NB_I64;
    bool was = nb_set_grad_enabled(false);
    nb_tensor *dense = nb_contiguous(x);
    nb_set_grad_enabled(was);
    NB_TRY(nb__result(dense, &dense));
    nb_op_args args = {.op = op, .dtype = x->dtype, .in = {dense}, .n_in = 1};
    args.attrs.scan.dim = x->ndim ? d : 0;
    args.attrs.scan.reverse = reverse;
    nb_status status = nb__dispatch_new(fn, &args, x->ndim, x->shape, dtype, out);
    nb_release(dense);
    if (status == NB_OK && nb_dtype_is_float(dtype))
        status = nb__record(*out, op, 1, &x, &args.attrs, scan_backward);
    if (status != NB_OK) {
        nb_release(*out);
        *out = NULL;
    }
    return status;
}

static nb_tensor *scan_public(nb_op op, const nb_tensor *x, int dim) {
    nb_tensor *out = NULL;
    nb_status status = scan(op, x, dim, false, &out);
    return nb__unwrap(status, out);
}

nb_tensor *nb_cumsum(const nb_tensor *x, int dim) { return scan_public(NB_OP_CUMSUM, x, dim); }
nb_tensor *nb_cumprod(const nb_tensor *x, int dim) { return scan_public(NB_OP_CUMPROD, x, dim); }
nb_tensor *nb_logcumsumexp(const nb_tensor *x, int dim) {
    return scan_public(NB_OP_LOGCUMSUMEXP, x, dim);
}
