/* Elementwise unary ops and clamp. Transcendental ops on integers compute in
 * f32, as in PyTorch; logical_not gives bool. Gradients (g is the incoming
 * gradient):
 *   neg -g          abs g*sign(x)        exp g*exp(x)       log g/x
 *   log1p g/(1+x)   sqrt g/(2 sqrt x)    rsqrt -g/(2 x sqrt x)
 *   sin g*cos(x)    cos -g*sin(x)        tanh g*(1-tanh^2)  sigmoid g*s*(1-s)
 *   relu g*(x>0)    clamp g*(lo<=x<=hi)
 *   relu6 g*(0<x<6)  leaky_relu g*(x>0 ? 1 : slope)  silu g*s*(1+x(1-s))
 *   hardsigmoid g*(-3<x<3)/6    hardswish g*(x<-3 ? 0 : x<=3 ? (2x+3)/6 : 1)
 *   gelu: its own kernel, gelu_backward (src/cpu/unary.c has the derivative)
 *   elu, selu, celu, softplus, mish, swish, softsign, logsigmoid, threshold,
 *   hardtanh, tanhshrink, hardshrink, softshrink: one activation_backward
 *   kernel, g * f'(x) with f' from src/core/activation.h
 *   prelu, rrelu, glu, maxout: compositions (where, mul, sigmoid, max)
 *   sign, floor, ceil, round: 0 (piecewise constant; PyTorch gives zeros too) */
#include <math.h>

#include "../core/internal.h"

/* Ops with no integer result: an integer input computes in f32. */
static bool float_only(nb_op op) {
    switch (op) {
    case NB_OP_EXP: case NB_OP_LOG: case NB_OP_LOG1P: case NB_OP_SQRT: case NB_OP_RSQRT:
    case NB_OP_SIN: case NB_OP_COS: case NB_OP_TANH: case NB_OP_SIGMOID: case NB_OP_RELU6:
    case NB_OP_LEAKY_RELU: case NB_OP_SILU: case NB_OP_HARDSIGMOID: case NB_OP_HARDSWISH:
    case NB_OP_GELU: case NB_OP_ELU: case NB_OP_SELU: case NB_OP_CELU: case NB_OP_SOFTPLUS:
    case NB_OP_MISH: case NB_OP_SWISH: case NB_OP_SOFTSIGN: case NB_OP_LOGSIGMOID:
    case NB_OP_THRESHOLD: case NB_OP_HARDTANH: case NB_OP_TANHSHRINK: case NB_OP_HARDSHRINK:
    case NB_OP_SOFTSHRINK:
        return true;
    default: return false;
    }
}

/* g * f'(x) in one pass: op's backward kernel (gelu_backward or
 * activation_backward) for the forward node_op. */
static nb_tensor *fused_backward(nb_op op, nb_op node_op, const nb_tensor *g, const nb_tensor *x,
                                 const nb_attrs *attrs) {
    nb_op_args args = {.op = op, .dtype = x->dtype, .in = {g, x}, .n_in = 2, .attrs = *attrs};
    if (op == NB_OP_ACTIVATION_BACKWARD) args.attrs.activation.forward = node_op;
    nb_tensor *out = NULL;
    nb__dispatch_new(nb__op_fn(node_op), &args, x->ndim, x->shape, x->dtype, &out);
    return out;
}

static nb_status unary_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0];
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
#define C(v) K(nb__scalar_like(x, (v)))
    nb_tensor *r = NULL, *y;
    switch (node->op) {
    case NB_OP_NEG: r = K(nb_neg(g)); break;
    case NB_OP_ABS: r = K(nb_mul(g, K(nb_sign(x)))); break;
    case NB_OP_EXP: r = K(nb_mul(g, K(nb_exp(x)))); break;
    case NB_OP_LOG: r = K(nb_div(g, x)); break;
    case NB_OP_LOG1P: r = K(nb_div(g, K(nb_add(x, C(1))))); break;
    case NB_OP_SQRT: r = K(nb_mul(g, K(nb_mul(C(0.5), K(nb_rsqrt(x)))))); break;
    case NB_OP_RSQRT: /* -y^3 / 2, as PyTorch: +inf at -0, -inf at +0 */
        y = K(nb_rsqrt(x));
        r = K(nb_mul(g, K(nb_mul(C(-0.5), K(nb_mul(y, K(nb_mul(y, y))))))));
        break;
    case NB_OP_SIN: r = K(nb_mul(g, K(nb_cos(x)))); break;
    case NB_OP_COS: r = K(nb_neg(K(nb_mul(g, K(nb_sin(x)))))); break;
    case NB_OP_TANH:
        y = K(nb_tanh(x));
        r = K(nb_mul(g, K(nb_sub(C(1), K(nb_mul(y, y))))));
        break;
    case NB_OP_SIGMOID:
        y = K(nb_sigmoid(x));
        r = K(nb_mul(g, K(nb_mul(y, K(nb_sub(C(1), y))))));
        break;
    /* g where the slope is 1 and 0 elsewhere; at x = NaN g passes, as PyTorch's */
    case NB_OP_RELU: r = K(nb_where(K(nb_le(x, C(0))), C(0), g)); break;
    case NB_OP_SIGN: case NB_OP_FLOOR: case NB_OP_CEIL: case NB_OP_ROUND:
        r = K(nb_zeros(x->ndim, x->shape, x->dtype, x->storage->device));
        break;
    case NB_OP_CLAMP: {
        nb_tensor *inside = K(nb_logical_and(K(nb_ge(x, C(node->attrs.clamp.lo))),
                                             K(nb_le(x, C(node->attrs.clamp.hi)))));
        r = K(nb_where(inside, g, C(0)));
        break;
    }
    case NB_OP_RELU6: { /* g inside (0, 6); at NaN g passes, as PyTorch's hardtanh */
        nb_tensor *outside = K(nb_logical_or(K(nb_le(x, C(0))), K(nb_ge(x, C(6)))));
        r = K(nb_where(outside, C(0), g));
        break;
    }
    case NB_OP_HARDSIGMOID: { /* g / 6 inside (-3, 3), 0 outside and at NaN, as PyTorch */
        nb_tensor *inside = K(nb_logical_and(K(nb_gt(x, C(-3))), K(nb_lt(x, C(3)))));
        r = K(nb_where(inside, K(nb_mul(g, C(1.0 / 6))), C(0)));
        break;
    }
    case NB_OP_LEAKY_RELU:
        r = K(nb_mul(g, K(nb_where(K(nb_gt(x, C(0))), C(1), C(node->attrs.leaky_relu.slope)))));
        break;
    case NB_OP_SILU:
        y = K(nb_sigmoid(x));
        r = K(nb_mul(g, K(nb_mul(y, K(nb_add(C(1), K(nb_mul(x, K(nb_sub(C(1), y))))))))));
        break;
    case NB_OP_HARDSWISH: {
        nb_tensor *middle = K(nb_div(K(nb_add(K(nb_mul(x, C(2))), C(3))), C(6)));
        nb_tensor *upper = K(nb_where(K(nb_le(x, C(3))), middle, C(1)));
        r = K(nb_mul(g, K(nb_where(K(nb_lt(x, C(-3))), C(0), upper))));
        break;
    }
    case NB_OP_GELU: r = K(fused_backward(NB_OP_GELU_BACKWARD, node->op, g, x, &node->attrs)); break;
    default: r = K(fused_backward(NB_OP_ACTIVATION_BACKWARD, node->op, g, x, &node->attrs)); break;
    }
#undef C
#undef K
    return nb__scratch_finish(&s, r, &grads[0]);
}

static nb_status unary(nb_op op, const nb_tensor *x, const nb_attrs *attrs, nb_tensor **out) {
    NB_CHECK(x, NB_ERR_INVALID, "nb_%s: x is NULL", nb_op_name(op));
    NB_CHECK(!(op == NB_OP_NEG && x->dtype == NB_BOOL), NB_ERR_DTYPE,
             "nb_neg: negation of a bool tensor is not defined; use nb_logical_not");
    nb_dtype operand = float_only(op) && !nb_dtype_is_float(x->dtype) ? NB_F32 : x->dtype;
    nb_dtype result = op == NB_OP_LOGICAL_NOT ? NB_BOOL : operand;
    nb_tensor *converted = NULL;
    if (operand != x->dtype) NB_TRY(nb__result(nb_cast(x, operand), &converted));
    const nb_tensor *input = converted ? converted : x;
    nb_status status = nb__tensor_new(nb__op_fn(op), x->ndim, x->shape, result, x->storage->device, out);
    if (status == NB_OK) {
        nb_op_args args = {.op = op, .dtype = operand, .out = *out, .in = {input}, .n_in = 1};
        if (attrs) args.attrs = *attrs;
        status = nb__dispatch(&args);
    }
    if (status == NB_OK && nb_op_is_differentiable(op))
        status = nb__record(*out, op, 1, &input, attrs, unary_backward);
    nb_release(converted);
    if (status != NB_OK) {
        nb_release(*out);
        *out = NULL;
    }
    return status;
}

#define DEFINE_UNARY(name, ID)                       \
    nb_tensor *nb_##name(const nb_tensor *x) {       \
        nb_tensor *out = NULL;                       \
        unary(NB_OP_##ID, x, NULL, &out);            \
        return out;                                  \
    }
DEFINE_UNARY(neg, NEG)
DEFINE_UNARY(abs, ABS)
DEFINE_UNARY(exp, EXP)
DEFINE_UNARY(log, LOG)
DEFINE_UNARY(log1p, LOG1P)
DEFINE_UNARY(sqrt, SQRT)
DEFINE_UNARY(rsqrt, RSQRT)
DEFINE_UNARY(sin, SIN)
DEFINE_UNARY(cos, COS)
DEFINE_UNARY(tanh, TANH)
DEFINE_UNARY(sigmoid, SIGMOID)
DEFINE_UNARY(relu, RELU)
DEFINE_UNARY(sign, SIGN)
DEFINE_UNARY(floor, FLOOR)
DEFINE_UNARY(ceil, CEIL)
DEFINE_UNARY(round, ROUND)
DEFINE_UNARY(logical_not, LOGICAL_NOT)
DEFINE_UNARY(relu6, RELU6)
DEFINE_UNARY(silu, SILU)
DEFINE_UNARY(hardsigmoid, HARDSIGMOID)
DEFINE_UNARY(hardswish, HARDSWISH)

nb_tensor *nb_leaky_relu(const nb_tensor *x, double negative_slope) {
    if (!isfinite(negative_slope)) {
        nb__error(NB_ERR_INVALID, "nb_leaky_relu: negative_slope must be finite, got %g",
                  negative_slope);
        return NULL;
    }
    nb_attrs attrs = {.leaky_relu = {negative_slope}};
    nb_tensor *out = NULL;
    unary(NB_OP_LEAKY_RELU, x, &attrs, &out);
    return out;
}

nb_tensor *nb_gelu(const nb_tensor *x, bool tanh_approximation) {
    nb_attrs attrs = {.gelu = {tanh_approximation}};
    nb_tensor *out = NULL;
    unary(NB_OP_GELU, x, &attrs, &out);
    return out;
}

/* ---- activations with parameters (src/core/activation.h) ---- */

static nb_tensor *activation(nb_op op, const nb_tensor *x, double p, double q) {
    nb_attrs attrs = {.activation = {p, q, op}};
    nb_tensor *out = NULL;
    unary(op, x, &attrs, &out);
    return out;
}

/* NULL with an error naming fn unless value is finite (and nonzero where asked). */
static bool finite_parameter(const char *fn, const char *name, double value, bool nonzero) {
    if (isfinite(value) && (!nonzero || value != 0)) return true;
    nb__error(NB_ERR_INVALID, "%s: %s must be finite%s, got %g", fn, name, nonzero ? " and nonzero" : "",
              value);
    return false;
}

nb_tensor *nb_elu(const nb_tensor *x, double alpha) {
    return finite_parameter("nb_elu", "alpha", alpha, false) ? activation(NB_OP_ELU, x, alpha, 0) : NULL;
}
nb_tensor *nb_selu(const nb_tensor *x) { return activation(NB_OP_SELU, x, 0, 0); }
nb_tensor *nb_celu(const nb_tensor *x, double alpha) {
    return finite_parameter("nb_celu", "alpha", alpha, true) ? activation(NB_OP_CELU, x, alpha, 0) : NULL;
}
nb_tensor *nb_softplus(const nb_tensor *x, double beta, double threshold) {
    if (!finite_parameter("nb_softplus", "beta", beta, true) ||
        !finite_parameter("nb_softplus", "threshold", threshold, false))
        return NULL;
    return activation(NB_OP_SOFTPLUS, x, beta, threshold);
}
nb_tensor *nb_mish(const nb_tensor *x) { return activation(NB_OP_MISH, x, 0, 0); }
nb_tensor *nb_swish(const nb_tensor *x, double beta) {
    return finite_parameter("nb_swish", "beta", beta, false) ? activation(NB_OP_SWISH, x, beta, 0) : NULL;
}
nb_tensor *nb_softsign(const nb_tensor *x) { return activation(NB_OP_SOFTSIGN, x, 0, 0); }
nb_tensor *nb_logsigmoid(const nb_tensor *x) { return activation(NB_OP_LOGSIGMOID, x, 0, 0); }
nb_tensor *nb_threshold(const nb_tensor *x, double threshold, double value) {
    if (isnan(threshold) || isnan(value)) {
        nb__error(NB_ERR_INVALID, "nb_threshold: threshold and value must not be NaN, got %g and %g",
                  threshold, value);
        return NULL;
    }
    return activation(NB_OP_THRESHOLD, x, threshold, value);
}
nb_tensor *nb_hardtanh(const nb_tensor *x, double min_val, double max_val) {
    if (!(min_val <= max_val)) {
        nb__error(NB_ERR_INVALID, "nb_hardtanh: needs min_val <= max_val, got %g and %g", min_val, max_val);
        return NULL;
    }
    return activation(NB_OP_HARDTANH, x, min_val, max_val);
}
nb_tensor *nb_tanhshrink(const nb_tensor *x) { return activation(NB_OP_TANHSHRINK, x, 0, 0); }

static nb_tensor *shrink(nb_op op, const nb_tensor *x, double lambda) {
    if (!(lambda >= 0 && lambda < INFINITY)) {
        nb__error(NB_ERR_INVALID, "%s: lambda must be finite and >= 0, got %g", nb__op_fn(op), lambda);
        return NULL;
    }
    return activation(op, x, lambda, 0);
}
nb_tensor *nb_hardshrink(const nb_tensor *x, double lambda) { return shrink(NB_OP_HARDSHRINK, x, lambda); }
nb_tensor *nb_softshrink(const nb_tensor *x, double lambda) { return shrink(NB_OP_SOFTSHRINK, x, lambda); }

/* ---- activations built from other ops ---- */

/* x where x >= 0, else slopes * x (broadcast), kept in s: prelu's and rrelu's. */
static nb_tensor *leaky(nb_scratch *s, const nb_tensor *x, const nb_tensor *slopes) {
    nb_tensor *zero = nb__keep(s, nb__scalar_like(x, 0));
    return nb__keep(s, nb_where(nb__keep(s, nb_ge(x, zero)), x, nb__keep(s, nb_mul(x, slopes))));
}

/* x where x >= 0, else w x, with w [1] or [C] along dim 1 (dim 0 of a 1-D x). */
nb_tensor *nb_prelu(const nb_tensor *x, const nb_tensor *weight) {
    const char *fn = "nb_prelu";
    if (!x || !weight) {
        nb__error(NB_ERR_INVALID, "%s: %s is NULL", fn, x ? "weight" : "x");
        return NULL;
    }
    int channel_dim = x->ndim >= 2 ? 1 : 0;
    int64_t channels = x->ndim ? x->shape[channel_dim] : 1, n = nb_numel(weight);
    if (weight->ndim != 1 || (n != 1 && n != channels)) {
        nb__error(NB_ERR_SHAPE, "%s: needs weight [1] or [%lld] (the channels of x %s), got %s", fn,
                  (long long)channels, nb__tensor_shape_str(x), nb__tensor_shape_str(weight));
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    int ndim = x->ndim > 1 ? x->ndim - 1 : 1;
    for (int d = 0; d < ndim; d++) shape[d] = d == 0 ? n : 1;
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    nb_tensor *w = nb__keep(&s, nb_reshape(weight, n == 1 ? 0 : ndim, shape)); /* one slope: 0-dim */
    nb_tensor *out = NULL;
    nb_status status = nb__scratch_finish(&s, leaky(&s, x, w), &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

/* Randomized leaky ReLU (Xu et al., 2015): in training each negative
 * element takes a slope uniform in [lower, upper) from gen, in evaluation
 * the mean slope (lower + upper) / 2. */
nb_tensor *nb_rrelu(const nb_tensor *x, double lower, double upper, bool training, nb_generator *gen) {
    const char *fn = "nb_rrelu";
    if (!(isfinite(lower) && isfinite(upper) && lower <= upper)) {
        nb__error(NB_ERR_INVALID, "%s: needs finite lower <= upper, got %g and %g", fn, lower, upper);
        return NULL;
    }
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: x is NULL", fn);
        return NULL;
    }
    const char *outer = nb__enter(fn);
    nb_tensor *out = NULL;
    if (!training || lower == upper) {
        out = nb_leaky_relu(x, (lower + upper) / 2);
    } else if (!nb_dtype_is_float(x->dtype)) {
        nb__error(NB_ERR_DTYPE, "needs a float x in training, got %s", nb_dtype_name(x->dtype));
    } else {
        nb_scratch s = {0};
        nb_tensor *slopes = nb__keep(&s, nb_uniform(x->ndim, x->shape, lower, upper, x->dtype,
                                                    x->storage->device, gen));
        nb__scratch_finish(&s, leaky(&s, x, slopes), &out);
    }
    nb__leave(outer);
    return out;
}

/* a sigmoid(b) of the halves a, b of dim (Dauphin et al., 2017). */
nb_tensor *nb_glu(const nb_tensor *x, int dim) {
    const char *fn = "nb_glu";
    int d;
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: x is NULL", fn);
        return NULL;
    }
    if (nb__normalize_dim(fn, dim, x->ndim, &d) != NB_OK) return NULL;
    if (x->shape[d] % 2) {
        nb__error(NB_ERR_SHAPE, "%s: needs an even size along dim %d, got %s", fn, dim, nb__tensor_shape_str(x));
        return NULL;
    }
    int64_t half = x->shape[d] / 2;
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    nb_tensor *gate = nb__keep(&s, nb_sigmoid(nb__keep(&s, nb_slice(x, d, half, 2 * half, 1))));
    nb_tensor *r = nb__keep(&s, nb_mul(nb__keep(&s, nb_slice(x, d, 0, half, 1)), gate)), *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

/* The maximum over groups of pieces consecutive entries of dim
 * (Goodfellow et al., 2013): size C along dim becomes C / pieces. */
nb_tensor *nb_maxout(const nb_tensor *x, int pieces, int dim) {
    const char *fn = "nb_maxout";
    int d;
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: x is NULL", fn);
        return NULL;
    }
    if (nb__normalize_dim(fn, dim, x->ndim, &d) != NB_OK) return NULL;
    if (pieces < 1 || x->shape[d] % pieces || x->ndim >= NB_MAX_DIMS) {
        nb__error(NB_ERR_SHAPE, "%s: needs pieces >= 1 dividing dim %d of %s (and fewer than %d dims), got %d",
                  fn, dim, nb__tensor_shape_str(x), NB_MAX_DIMS, pieces);
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    for (int i = 0, j = 0; i < x->ndim; i++) {
        shape[j++] = i == d ? x->shape[i] / pieces : x->shape[i];
        if (i == d) shape[j++] = pieces;
    }
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    int group = d + 1;
    nb_tensor *r = nb__keep(&s, nb_max(nb__keep(&s, nb_reshape(x, x->ndim + 1, shape)), 1, &group, false));
    nb_tensor *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

nb_tensor *nb_clamp(const nb_tensor *x, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi) {
        nb__error(NB_ERR_INVALID, "nb_clamp: needs lo <= hi, got %g and %g", lo, hi);
        return NULL;
    }
    if (x && !nb_dtype_is_float(x->dtype)) { /* integer bounds, kept inside int64 */
        lo = fmax(ceil(lo), -0x1p62);
        hi = fmin(floor(hi), 0x1p62);
    }
    nb_attrs attrs = {.clamp = {lo, hi}};
    nb_tensor *out = NULL;
    unary(NB_OP_CLAMP, x, &attrs, &out);
    return out;
}

nb_tensor *nb_swiglu(const nb_tensor *x) {
    if (!x || x->ndim < 1 || x->shape[x->ndim - 1] % 2 || !nb_dtype_is_float(x->dtype)) {
        nb_status status = !x ? NB_ERR_INVALID : !nb_dtype_is_float(x->dtype) ? NB_ERR_DTYPE : NB_ERR_SHAPE;
        nb__error(status, "nb_swiglu: needs a float x [..., 2F], got %s%s%s",
                  x ? nb_dtype_name(x->dtype) : "NULL", x ? " " : "", x ? nb__tensor_shape_str(x) : "");
        return NULL;
    }
    int64_t half = x->shape[x->ndim - 1] / 2;
    const char *outer = nb__enter("nb_swiglu");
    nb_scratch s = {0};
    nb_tensor *gate = nb__keep(&s, nb_silu(nb__keep(&s, nb_slice(x, -1, 0, half, 1))));
    nb_tensor *up = nb__keep(&s, nb_slice(x, -1, half, 2 * half, 1));
    nb_tensor *r = nb__keep(&s, nb_mul(gate, up)), *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}
