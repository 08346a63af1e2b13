/* Elementwise unary kernels: one chunk loop per compute type, the op's
 * formula written once for float and double (tgmath picks expf or exp). */
#include <tgmath.h>

#include "../core/activation.h"
#include "cpu.h"

/* An activation of src/core/activation.h in the loop's type. */
#define ACT(ID) _Generic(a, float: nb_act_f32_forward, double: nb_act_f64_forward)(NB_OP_##ID, a, p, q)

/* NaN passes through relu, sign and clamp, as in PyTorch. The tanh GELU,
 * x (1 + tanh u) / 2, is written x sigmoid(2u): one exp instead of libm's
 * much slower tanh, and no cancellation in 1 + tanh u for negative u. The
 * exact GELU halves x first, so x (1 + erf) cannot overflow near the
 * dtype's maximum. */
#define UNARY_FLOAT_OPS(X)                         \
    X(NEG, -a)                                     \
    X(ABS, fabs(a))                                \
    X(EXP, exp(a))                                 \
    X(LOG, log(a))                                 \
    X(LOG1P, log1p(a))                             \
    X(SQRT, sqrt(a))                               \
    X(RSQRT, 1 / sqrt(a))                          \
    X(SIN, sin(a))                                 \
    X(COS, cos(a))                                 \
    X(TANH, tanh(a))                               \
    X(SIGMOID, 1 / (1 + exp(-a)))                  \
    X(RELU, a < 0 ? 0 : a)                         \
    X(SIGN, a > 0 ? 1 : a < 0 ? -1 : a)            \
    X(FLOOR, floor(a))                             \
    X(CEIL, ceil(a))                               \
    X(ROUND, nearbyint(a))                         \
    X(LOGICAL_NOT, a == 0)                         \
    X(CLAMP, a < lo ? lo : a > hi ? hi : a)         \
    X(RELU6, a < 0 ? 0 : a > 6 ? 6 : a)            \
    X(LEAKY_RELU, a < 0 ? a * slope : a)           \
    X(SILU, a / (1 + exp(-a)))                     \
    X(HARDSIGMOID, a <= -3 ? 0 : a >= 3 ? 1 : a / 6 + (elem)0.5) \
    X(HARDSWISH, a <= -3 ? 0 : a >= 3 ? a : a * (a + 3) / 6) \
    X(GELU, gelu_tanh ? a / (1 + exp(-2 * (elem)NB_GELU_SQRT_2_OVER_PI * (a + (elem)NB_GELU_CUBIC * a * a * a))) \
                      : (a / 2) * (1 + erf(a * (elem)NB_GELU_RSQRT2)))  \
    X(ELU, ACT(ELU)) X(SELU, ACT(SELU)) X(CELU, ACT(CELU)) X(SOFTPLUS, ACT(SOFTPLUS))  \
    X(MISH, ACT(MISH)) X(SWISH, ACT(SWISH)) X(SOFTSIGN, ACT(SOFTSIGN))                 \
    X(LOGSIGMOID, ACT(LOGSIGMOID)) X(THRESHOLD, ACT(THRESHOLD)) X(HARDTANH, ACT(HARDTANH)) \
    X(TANHSHRINK, ACT(TANHSHRINK)) X(HARDSHRINK, ACT(HARDSHRINK)) X(SOFTSHRINK, ACT(SOFTSHRINK))

/* Integers wrap like two's complement instead of overflowing. */
#define UNARY_INT_OPS(X)                                     \
    X(NEG, (int64_t)(0 - (uint64_t)a))                       \
    X(ABS, a < 0 ? (int64_t)(0 - (uint64_t)a) : a)           \
    X(RELU, a < 0 ? 0 : a)                                   \
    X(SIGN, (a > 0) - (a < 0))                               \
    X(FLOOR, a)                                              \
    X(CEIL, a)                                               \
    X(ROUND, a)                                              \
    X(LOGICAL_NOT, a == 0)                                   \
    X(CLAMP, a < lo ? (int64_t)lo : a > hi ? (int64_t)hi : a)

#define UNARY_CASE(ID, expr)                                   \
    case NB_OP_##ID:                                           \
        for (int64_t i = 0; i < n; i++) {                      \
            elem a = x[i];                                        \
            o[i] = (elem)(expr);                                  \
        }                                                      \
        break;

#define DEFINE_UNARY_LOOP(name, T, OPS)                                                     \
    static void name(int64_t n, void *out, const void *const *in, const nb_op_args *args) { \
        typedef T elem;                                                                     \
        T *restrict o = out;                                                                \
        const T *restrict x = in[0];                                                        \
        double lo = args->attrs.clamp.lo, hi = args->attrs.clamp.hi;                        \
        elem slope = (elem)args->attrs.leaky_relu.slope;                                    \
        bool gelu_tanh = args->op == NB_OP_GELU && args->attrs.gelu.tanh; /* a union */     \
        elem p = (elem)args->attrs.activation.p, q = (elem)args->attrs.activation.q;        \
        (void)gelu_tanh;                                                                    \
        (void)p;                                                                            \
        (void)q;                                                                            \
        (void)lo;                                                                           \
        (void)hi;                                                                           \
        (void)slope;                                                                        \
        switch (args->op) {                                                                 \
            OPS(UNARY_CASE)                                                                 \
        default: NB_ASSERT(!"unary op without a CPU loop");                                 \
        }                                                                                   \
    }

DEFINE_UNARY_LOOP(unary_f32, float, UNARY_FLOAT_OPS)
DEFINE_UNARY_LOOP(unary_f64, double, UNARY_FLOAT_OPS)
DEFINE_UNARY_LOOP(unary_i64, int64_t, UNARY_INT_OPS)

/* g * gelu'(x): Phi(x) + x phi(x) for the exact form; for the tanh form,
 * with u = k (x + c x^3) and t = tanh(u), (1 + t) / 2 + x (1 - t^2) k (1 + 3 c x^2) / 2,
 * computed through s = sigmoid(2u) = (1 + t) / 2, for which 1 - t^2 = 4 s (1 - s). */
#define DEFINE_GELU_BACKWARD(name, T)                                                       \
    static void name(int64_t n, void *out, const void *const *in, const nb_op_args *args) { \
        T *restrict o = out;                                                                \
        const T *restrict g = in[0], *restrict x = in[1];                                   \
        const T k = (T)NB_GELU_SQRT_2_OVER_PI, c = (T)NB_GELU_CUBIC;                        \
        if (args->attrs.gelu.tanh) {                                                        \
            for (int64_t i = 0; i < n; i++) {                                               \
                T a = x[i], s = 1 / (1 + exp(-2 * k * (a + c * a * a * a)));               \
                o[i] = g[i] * (s + 2 * a * s * (1 - s) * k * (1 + 3 * c * a * a));            \
            }                                                                               \
            return;                                                                         \
        }                                                                                   \
        const T rsqrt2 = (T)NB_GELU_RSQRT2, rsqrt_2pi = (T)NB_GELU_RSQRT_2PI;                 \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T a = x[i];                                                                     \
            o[i] = g[i] * ((1 + erf(a * rsqrt2)) / 2 + a * exp(-a * a / 2) * rsqrt_2pi);    \
        }                                                                                   \
    }
DEFINE_GELU_BACKWARD(gelu_backward_f32, float)
DEFINE_GELU_BACKWARD(gelu_backward_f64, double)

nb_status nb__cpu_gelu_backward(const nb_op_args *args) {
    nb_dtype compute = nb__cpu_compute_dtype(args->dtype);
    nb__cpu_map(args, compute, compute == NB_F64 ? gelu_backward_f64 : gelu_backward_f32);
    return NB_OK;
}

/* g * f'(x) for an activation f of src/core/activation.h: one loop per op. */
#define ACT_BACKWARD_CASE(ID)                                                                \
    case NB_OP_##ID:                                                                         \
        for (int64_t i = 0; i < n; i++)                                                      \
            o[i] = _Generic(p, float: nb_act_f32_backward, double: nb_act_f64_backward)(     \
                NB_OP_##ID, g[i], x[i], p, q);                                               \
        break;
#define DEFINE_ACTIVATION_BACKWARD(name, T)                                                 \
    static void name(int64_t n, void *out, const void *const *in, const nb_op_args *args) { \
        T *restrict o = out;                                                                \
        const T *restrict g = in[0], *restrict x = in[1];                                   \
        T p = (T)args->attrs.activation.p, q = (T)args->attrs.activation.q;                 \
        switch (args->attrs.activation.forward) {                                           \
            NB_ACTIVATION_OPS(ACT_BACKWARD_CASE)                                            \
        default: NB_ASSERT(!"activation_backward of an op without a derivative");           \
        }                                                                                   \
    }
DEFINE_ACTIVATION_BACKWARD(activation_backward_f32, float)
DEFINE_ACTIVATION_BACKWARD(activation_backward_f64, double)

nb_status nb__cpu_activation_backward(const nb_op_args *args) {
    nb_dtype compute = nb__cpu_compute_dtype(args->dtype);
    nb__cpu_map(args, compute, compute == NB_F64 ? activation_backward_f64 : activation_backward_f32);
    return NB_OK;
}

nb_status nb__cpu_unary(const nb_op_args *args) {
    nb_dtype compute = nb__cpu_compute_dtype(args->dtype);
    nb__cpu_map(args, compute,
                compute == NB_F32 ? unary_f32 : compute == NB_F64 ? unary_f64 : unary_i64);
    return NB_OK;
}
