/* softmax and log_softmax along one dim. Gradients, with y the result:
 *   softmax      y * (g - sum(g * y))
 *   log_softmax  g - exp(y) * sum(g)
 * (sums along dim, kept for broadcasting). */
#include "../core/internal.h"

static nb_status softmax_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                  nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0];
    int dim = node->attrs.axis.dim;
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    nb_tensor *r;
    if (node->op == NB_OP_SOFTMAX) {
        nb_tensor *y = K(nb_softmax(x, dim));
        nb_tensor *dot = K(nb_sum(K(nb_mul(g, y)), 1, &dim, true));
        r = K(nb_mul(y, K(nb_sub(g, dot))));
    } else {
        nb_tensor *p = K(nb_exp(K(nb_log_softmax(x, dim))));
        r = K(nb_sub(g, K(nb_mul(p, K(nb_sum(g, 1, &dim, true))))));
    }
#undef K
    return nb__scratch_finish(&s, r, &grads[0]);
}

static nb_status softmax_impl(nb_op op, const nb_tensor *x, int dim, nb_tensor **out) {
    const char *fn = nb__op_fn(op);
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(nb_dtype_is_float(x->dtype), NB_ERR_DTYPE, "%s: needs a float tensor, got %s", fn,
             nb_dtype_name(x->dtype));
    int d;
    NB_TRY(nb__normalize_dim(fn, dim, x->ndim, &d));
    bool was = nb_set_grad_enabled(false); /* the kernel's input, not part of the graph */
    nb_tensor *dense = nb_contiguous(x);
    nb_set_grad_enabled(was);
    NB_TRY(nb__result(dense, &dense));
    nb_status status = nb__tensor_new(fn, x->ndim, x->shape, x->dtype, x->storage->device, out);
    nb_attrs attrs = {.axis = {d}};
    if (status == NB_OK) {
        nb_op_args args = {.op = op, .dtype = x->dtype, .out = *out, .in = {dense}, .n_in = 1,
                           .attrs = attrs};
        status = nb__dispatch(&args);
    }
    if (status == NB_OK) status = nb__record(*out, op, 1, &x, &attrs, softmax_backward);
    nb_release(dense);
    return status;
}

nb_tensor *nb_softmax(const nb_tensor *x, int dim) {
    nb_tensor *out = NULL;
    nb_status status = softmax_impl(NB_OP_SOFTMAX, x, dim, &out);
    return nb__unwrap(status, out);
}

nb_tensor *nb_log_softmax(const nb_tensor *x, int dim) {
    nb_tensor *out = NULL;
    nb_status status = softmax_impl(NB_OP_LOG_SOFTMAX, x, dim, &out);
    return nb__unwrap(status, out);
}
