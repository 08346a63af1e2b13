/* Reductions over a set of dims: sum, mean, prod, max, min, argmax, argmin,
 * var, std, logsumexp, norm. The kernel writes the keepdim shape; without
 * keepdim the result is a view that drops the reduced dims.
 * Gradients, with g and the result y broadcast back over the reduced dims
 * and N the number of reduced elements:
 *   sum g              mean g/N           prod g * (product of the others)
 *   max/min g * [x == y] / (number of ties)      logsumexp g * exp(x - y)
 *   var g * 2(x - mean)/(N - c)           std g * (x - mean)/((N - c) y) (0 where y = 0)
 *   norm g * sign(x) |x|^(p-1) / y^(p-1)  (max-like for p = inf; 0 where y = 0 or x = 0) */
#include <math.h>
#include <string.h>

#include "../core/internal.h"

static int64_t reduced_count(const nb_tensor *x, uint32_t mask) {
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) n *= x->shape[d];
    return n;
}

static nb_dtype result_dtype(nb_op op, nb_dtype in) {
    if (op == NB_OP_ARGMAX || op == NB_OP_ARGMIN) return NB_I64;
    if ((op == NB_OP_SUM || op == NB_OP_PROD) && !nb_dtype_is_float(in)) return NB_I64;
    return in;
}

static bool needs_float(nb_op op) {
    return op == NB_OP_MEAN || op == NB_OP_VAR || op == NB_OP_STD || op == NB_OP_LOGSUMEXP ||
           op == NB_OP_NORM;
}

static nb_status reduce_into(nb_op op, const nb_tensor *x, const nb_attrs *attrs, nb_tensor **out) {
    const char *fn = nb__op_fn(op);
    uint32_t mask = attrs->reduce.mask;
    NB_CHECK(!needs_float(op) || nb_dtype_is_float(x->dtype), NB_ERR_DTYPE,
             "%s: needs a float tensor, got %s", fn, nb_dtype_name(x->dtype));
    bool extreme = op == NB_OP_MAX || op == NB_OP_MIN || op == NB_OP_ARGMAX || op == NB_OP_ARGMIN;
    NB_CHECK(!extreme || reduced_count(x, mask) > 0, NB_ERR_SHAPE,
             "%s: cannot reduce over zero elements (shape %s)", fn, nb__tensor_shape_str(x));
    int64_t keep_shape[NB_MAX_DIMS], drop_shape[NB_MAX_DIMS], drop_strides[NB_MAX_DIMS];
    int n_drop = 0;
    for (int d = 0; d < x->ndim; d++) {
        bool reduced = mask & (1u << d);
        keep_shape[d] = reduced ? 1 : x->shape[d];
        if (!reduced) drop_shape[n_drop++] = x->shape[d];
    }
    nb_tensor *full = NULL;
    NB_TRY(nb__tensor_new(fn, x->ndim, keep_shape, result_dtype(op, x->dtype), x->storage->device,
                          &full));
    nb_op_args args = {.op = op, .dtype = x->dtype, .out = full, .in = {x}, .n_in = 1,
                       .attrs = *attrs};
    nb_status status = nb__dispatch(&args);
    if (status == NB_OK && !attrs->reduce.keepdim) {
        nb__contiguous_strides(n_drop, drop_shape, drop_strides);
        status = nb__tensor_view(full, n_drop, drop_shape, drop_strides, 0, out);
        nb_release(full);
    } else {
        *out = full;
    }
    return status;
}

nb_status nb__reduce(nb_op op, const nb_tensor *x, uint32_t mask, bool keepdim, nb_tensor **out) {
    nb_attrs attrs = {.reduce = {mask, keepdim, 0, 2}};
    *out = NULL;
    nb_status status = reduce_into(op, x, &attrs, out);
    if (status != NB_OK) {
        nb_release(*out);
        *out = NULL;
    }
    return status;
}

/* ---- backward ---- */

static nb_tensor *keepdim_view(nb_scratch *s, const nb_tensor *t, const nb_tensor *x, uint32_t mask) {
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = mask & (1u << d) ? 1 : x->shape[d];
    return nb__keep(s, nb_reshape(t, x->ndim, shape));
}

static nb_tensor *reduce_keep(nb_scratch *s, nb_op op, const nb_tensor *x, uint32_t mask) {
    nb_tensor *r = NULL;
    if (s->status == NB_OK) nb__reduce(op, x, mask, true, &r);
    return nb__keep(s, r);
}

static nb_status reduce_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                 nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0];
    uint32_t mask = node->attrs.reduce.mask;
    double n = (double)reduced_count(x, mask), c = node->attrs.reduce.correction;
    double p = node->attrs.reduce.p;
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
#define C(v) K(nb__scalar_like(x, (v)))
    nb_tensor *g = keepdim_view(&s, grad, x, mask);
    nb_tensor *y = NULL, *local = NULL; /* y: the result with kept dims; local: dy/dx */
    if (node->op != NB_OP_SUM && node->op != NB_OP_MEAN) {
        nb_attrs same = node->attrs;
        same.reduce.keepdim = true;
        nb_tensor *r = NULL;
        if (s.status == NB_OK && reduce_into(node->op, x, &same, &r) != NB_OK) r = NULL;
        y = K(r);
    }
    switch (node->op) {
    case NB_OP_SUM: local = C(1); break;
    case NB_OP_MEAN: local = C(1 / n); break;
    case NB_OP_PROD: {
        nb_tensor *is_zero = K(nb_eq(x, C(0)));
        nb_tensor *safe = K(nb_where(is_zero, C(1), x));
        nb_tensor *others = reduce_keep(&s, NB_OP_PROD, safe, mask);
        nb_tensor *zeros = reduce_keep(&s, NB_OP_SUM, is_zero, mask);
        nb_tensor *at_zero = K(nb_where(K(nb_eq(zeros, C(1))), others, C(0)));
        nb_tensor *at_other = K(nb_where(K(nb_eq(zeros, C(0))), K(nb_div(others, safe)), C(0)));
        local = K(nb_where(is_zero, at_zero, at_other));
        break;
    }
    case NB_OP_MAX: case NB_OP_MIN: {
        nb_tensor *hit = K(nb_cast(K(nb_eq(x, y)), x->dtype));
        local = K(nb_div(hit, reduce_keep(&s, NB_OP_SUM, hit, mask)));
        break;
    }
    case NB_OP_LOGSUMEXP: local = K(nb_exp(K(nb_sub(x, y)))); break;
    case NB_OP_VAR: case NB_OP_STD: {
        nb_tensor *centered = K(nb_sub(x, reduce_keep(&s, NB_OP_MEAN, x, mask)));
        /* std's is 0 where std is 0 (a constant row; PyTorch's rule), not 0 / 0 */
        local = node->op == NB_OP_VAR ? K(nb_mul(centered, C(2 / (n - c))))
                                      : K(nb_where(K(nb_eq(y, C(0))), C(0),
                                                   K(nb_div(centered, K(nb_mul(y, C(n - c)))))));
        break;
    }
    case NB_OP_NORM: {
        nb_tensor *ax = K(nb_abs(x)), *sx = K(nb_sign(x));
        nb_tensor *raw;
        if (isinf(p)) {
            nb_tensor *hit = K(nb_cast(K(nb_eq(ax, y)), x->dtype));
            raw = K(nb_div(K(nb_mul(sx, hit)), reduce_keep(&s, NB_OP_SUM, hit, mask)));
        } else if (p == 0) {
            raw = C(0);
        } else {
            /* 0 at x = 0: for p < 1, |x|^(p-1) is inf there */
            raw = K(nb_div(K(nb_mul(sx, K(nb_pow(ax, C(p - 1))))), K(nb_pow(y, C(p - 1)))));
            raw = K(nb_where(K(nb_eq(ax, C(0))), C(0), raw));
        }
        local = K(nb_where(K(nb_eq(y, C(0))), C(0), raw));
        break;
    }
    default: NB_ASSERT(!"reduction without a gradient");
    }
    nb_tensor *r = K(nb_mul(g, local));
    r = K(nb_expand(r, x->ndim, x->shape));
#undef C
#undef K
    return nb__scratch_finish(&s, r, &grads[0]);
}

/* ---- public functions ---- */

static nb_tensor *reduce(nb_op op, const nb_tensor *x, int ndims, const int *dims, bool keepdim,
                         double correction, double p) {
    const char *fn = nb__op_fn(op);
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: x is NULL", fn);
        return NULL;
    }
    if (ndims < 0 || ndims > NB_MAX_DIMS || (ndims > 0 && !dims)) {
        nb__error(NB_ERR_INVALID, "%s: %d dims given (0 to %d, dims not NULL)", fn, ndims,
                  NB_MAX_DIMS);
        return NULL;
    }
    uint32_t mask = ndims == 0 ? (1u << x->ndim) - 1 : 0;
    for (int i = 0; i < ndims; i++) {
        int d;
        if (nb__normalize_dim(fn, dims[i], x->ndim, &d) != NB_OK) return NULL;
        if (x->ndim == 0) continue;
        if (mask & (1u << d)) {
            nb__error(NB_ERR_INVALID, "%s: dim %d appears twice", fn, dims[i]);
            return NULL;
        }
        mask |= 1u << d;
    }
    nb_attrs attrs = {.reduce = {mask, keepdim, correction, p}};
    nb_tensor *out = NULL;
    nb_status status = reduce_into(op, x, &attrs, &out);
    if (status == NB_OK && nb_op_is_differentiable(op))
        status = nb__record(out, op, 1, &x, &attrs, reduce_backward);
    return nb__unwrap(status, out);
}

#define DEFINE_REDUCE(name, ID)                                                             \
    nb_tensor *nb_##name(const nb_tensor *x, int ndims, const int *dims, bool keepdim) {   \
        return reduce(NB_OP_##ID, x, ndims, dims, keepdim, 0, 2);                           \
    }
DEFINE_REDUCE(sum, SUM)
DEFINE_REDUCE(mean, MEAN)
DEFINE_REDUCE(prod, PROD)
DEFINE_REDUCE(max, MAX)
DEFINE_REDUCE(min, MIN)
DEFINE_REDUCE(argmax, ARGMAX)
DEFINE_REDUCE(argmin, ARGMIN)
DEFINE_REDUCE(logsumexp, LOGSUMEXP)

/* Any finite correction, as PyTorch (negative ones included). */
static nb_tensor *spread(nb_op op, const nb_tensor *x, int ndims, const int *dims, double correction,
                         bool keepdim) {
    if (!isfinite(correction)) {
        nb__error(NB_ERR_INVALID, "%s: correction must be finite, got %g", nb__op_fn(op), correction);
        return NULL;
    }
    return reduce(op, x, ndims, dims, keepdim, correction, 2);
}

nb_tensor *nb_var(const nb_tensor *x, int ndims, const int *dims, double correction, bool keepdim) {
    return spread(NB_OP_VAR, x, ndims, dims, correction, keepdim);
}

nb_tensor *nb_std(const nb_tensor *x, int ndims, const int *dims, double correction, bool keepdim) {
    return spread(NB_OP_STD, x, ndims, dims, correction, keepdim);
}

nb_tensor *nb_norm(const nb_tensor *x, double p, int ndims, const int *dims, bool keepdim) {
    if (!(p >= 0)) {
        nb__error(NB_ERR_INVALID, "nb_norm: p must be >= 0 (or INFINITY), got %g", p);
        return NULL;
    }
    return reduce(NB_OP_NORM, x, ndims, dims, keepdim, 0, p);
}
