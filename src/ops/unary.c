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
 *   sign, floor, ceil, round: 0 (piecewise constant; PyTorch gives zeros too) */
#include <math.h>

#include "../core/internal.h"

/* Ops with no integer result: an integer input computes in f32. */
static bool float_only(nb_op op) {
    switch (op) {
    case NB_OP_EXP: case NB_OP_LOG: case NB_OP_LOG1P: case NB_OP_SQRT: case NB_OP_RSQRT:
    case NB_OP_SIN: case NB_OP_COS: case NB_OP_TANH: case NB_OP_SIGMOID: case NB_OP_RELU6:
    case NB_OP_LEAKY_RELU: case NB_OP_SILU: case NB_OP_HARDSIGMOID: case NB_OP_HARDSWISH:
    case NB_OP_GELU:
        return true;
    default: return false;
    }
}

/* g * gelu'(x) in one pass. */
static nb_tensor *gelu_backward(const nb_tensor *g, const nb_tensor *x, const nb_attrs *attrs) {
    nb_op_args args = {.op = NB_OP_GELU_BACKWARD, .dtype = x->dtype, .in = {g, x}, .n_in = 2,
                       .attrs = *attrs};
    nb_tensor *out = NULL;
    nb__dispatch_new("nb_gelu", &args, x->ndim, x->shape, x->dtype, &out);
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
    case NB_OP_GELU: r = K(gelu_backward(g, x, &node->attrs)); break;
    default: NB_ASSERT(!"unary op without a gradient");
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
