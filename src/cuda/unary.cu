// Elementwise unary kernels: the formulas of src/cpu/unary.c in the compute
// type (float math for f32, f16 and bf16; wrapping int64 for integers).
#include "../core/activation.h"
#include "map.cuh"

#define NB_ACT_LABEL(ID) case NB_OP_##ID:

// An activation of src/core/activation.h in compute type C.
template <typename C> __device__ C nb_activation_of(nb_op op, C x, C p, C q) {
    if constexpr (std::is_same<C, double>::value) return nb_act_f64_forward(op, x, p, q);
    else return nb_act_f32_forward(op, x, p, q);
}

struct nb_unary_fn {
    static constexpr int inputs = 1;
    nb_op op;
    double lo, hi; // clamp bounds
    double slope;  // leaky_relu
    bool gelu_tanh;
    double p, q; // the activations' parameters

    template <typename C> __device__ C operator()(const C *in) const {
        C a = in[0];
        if constexpr (nb_is_float_v<C>) {
            switch (op) {
            case NB_OP_NEG: return -a;
            case NB_OP_ABS: return fabs(a);
            case NB_OP_EXP: return exp(a);
            case NB_OP_LOG: return log(a);
            case NB_OP_LOG1P: return log1p(a);
            case NB_OP_SQRT: return sqrt(a);
            case NB_OP_RSQRT: return (C)1 / sqrt(a);
            case NB_OP_SIN: return sin(a);
            case NB_OP_COS: return cos(a);
            case NB_OP_TANH: return tanh(a);
            case NB_OP_SIGMOID: return (C)1 / ((C)1 + exp(-a));
            case NB_OP_RELU: return a < 0 ? (C)0 : a; // NaN passes through
            case NB_OP_SIGN: return a > 0 ? (C)1 : a < 0 ? (C)-1 : a;
            case NB_OP_FLOOR: return floor(a);
            case NB_OP_CEIL: return ceil(a);
            case NB_OP_ROUND: return rint(a); // half to even
            case NB_OP_LOGICAL_NOT: return a == 0 ? (C)1 : (C)0;
            case NB_OP_CLAMP: return a < (C)lo ? (C)lo : a > (C)hi ? (C)hi : a;
            case NB_OP_RELU6: return a < 0 ? (C)0 : a > 6 ? (C)6 : a;
            case NB_OP_LEAKY_RELU: return a < 0 ? a * (C)slope : a;
            case NB_OP_SILU: return a / ((C)1 + exp(-a));
            case NB_OP_HARDSIGMOID: return a <= -3 ? (C)0 : a >= 3 ? (C)1 : a / 6 + (C)0.5;
            case NB_OP_HARDSWISH: return a <= -3 ? (C)0 : a >= 3 ? a : a * (a + 3) / 6;
            case NB_OP_GELU:
                // x / 2 first: x (1 + erf) would overflow near the dtype's maximum
                return gelu_tanh ? (a / 2) * (1 + tanh((C)NB_GELU_SQRT_2_OVER_PI * (a + (C)NB_GELU_CUBIC * a * a * a)))
                                 : (a / 2) * (1 + erf(a * (C)NB_GELU_RSQRT2));
            NB_ACTIVATION_OPS(NB_ACT_LABEL) return nb_activation_of<C>(op, a, (C)p, (C)q);
            default: return a;
            }
        } else {
            switch (op) {
            case NB_OP_NEG: return (int64_t)(0 - (uint64_t)a);
            case NB_OP_ABS: return a < 0 ? (int64_t)(0 - (uint64_t)a) : a;
            case NB_OP_RELU: return a < 0 ? 0 : a;
            case NB_OP_SIGN: return (a > 0) - (a < 0);
            case NB_OP_LOGICAL_NOT: return a == 0;
            case NB_OP_CLAMP: return a < lo ? (int64_t)lo : a > hi ? (int64_t)hi : a;
            default: return a; // floor, ceil and round keep integers
            }
        }
    }
};

nb_status nb__cuda_unary(const nb_op_args *args) {
    bool leaky = args->op == NB_OP_LEAKY_RELU, clamp = args->op == NB_OP_CLAMP;
    bool activation = !clamp && !leaky && args->op != NB_OP_GELU; // attrs is a union
    return nb__cuda_map(args, nb_unary_fn{args->op, clamp ? args->attrs.clamp.lo : 0,
                                          clamp ? args->attrs.clamp.hi : 0,
                                          leaky ? args->attrs.leaky_relu.slope : 0,
                                          args->op == NB_OP_GELU && args->attrs.gelu.tanh,
                                          activation ? args->attrs.activation.p : 0,
                                          activation ? args->attrs.activation.q : 0});
}

// g * f'(x) for an activation f of src/core/activation.h.
struct nb_activation_backward_fn {
    static constexpr int inputs = 2;
    nb_op op;
    double p, q;

    template <typename C> __device__ C operator()(const C *in) const {
        if constexpr (std::is_same<C, double>::value) return nb_act_f64_backward(op, in[0], in[1], p, q);
        else return nb_act_f32_backward(op, in[0], in[1], (C)p, (C)q);
    }
};

nb_status nb__cuda_activation_backward(const nb_op_args *args) {
    return nb__cuda_map(args, nb_activation_backward_fn{args->attrs.activation.forward,
                                                        args->attrs.activation.p, args->attrs.activation.q});
}

// g * gelu'(x), the derivative of src/cpu/unary.c.
struct nb_gelu_backward_fn {
    static constexpr int inputs = 2;
    bool tanh_form;

    template <typename C> __device__ C operator()(const C *in) const {
        C g = in[0], a = in[1];
        if (tanh_form) {
            C k = (C)NB_GELU_SQRT_2_OVER_PI, c = (C)NB_GELU_CUBIC, t = tanh(k * (a + c * a * a * a));
            return g * ((1 + t) / 2 + a * (1 - t * t) * k * (1 + 3 * c * a * a) / 2);
        }
        return g * ((1 + erf(a * (C)NB_GELU_RSQRT2)) / 2 + a * exp(-a * a / 2) * (C)NB_GELU_RSQRT_2PI);
    }
};

nb_status nb__cuda_gelu_backward(const nb_op_args *args) {
    return nb__cuda_map(args, nb_gelu_backward_fn{args->attrs.gelu.tanh});
}
