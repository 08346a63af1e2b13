// The op harness's cases: unary and binary math, comparisons, where, casts.
#include "cases.h"

namespace op_cases {

void elementwise_cases() {
    unary(NB_OP_NEG, nb_neg, [](double a) { return -a; }, F(-3, 3), NUMERIC, true);
    unary(NB_OP_ABS, nb_abs, [](double a) { return std::fabs(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_EXP, nb_exp, [](double a) { return std::exp(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_LOG, nb_log, [](double a) { return std::log(a); }, F(0.1, 4), FLOATS, true);
    unary(NB_OP_LOG1P, nb_log1p, [](double a) { return std::log1p(a); }, F(-0.5, 3), FLOATS, true);
    unary(NB_OP_SQRT, nb_sqrt, [](double a) { return std::sqrt(a); }, F(0.1, 4), FLOATS, true);
    unary(NB_OP_RSQRT, nb_rsqrt, [](double a) { return 1 / std::sqrt(a); }, F(0.1, 4), FLOATS, true);
    unary(NB_OP_SIN, nb_sin, [](double a) { return std::sin(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_COS, nb_cos, [](double a) { return std::cos(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_TANH, nb_tanh, [](double a) { return std::tanh(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_SIGMOID, nb_sigmoid, [](double a) { return 1 / (1 + std::exp(-a)); }, F(-5, 5),
          FLOATS, true);
    unary(NB_OP_RELU, nb_relu, [](double a) { return a > 0 ? a : 0; }, F(-2, 2), SIGNED, true);
    unary(NB_OP_RELU6, nb_relu6, [](double a) { return std::min(std::max(a, 0.0), 6.0); }, F(-3, 9),
          FLOATS, true);
    add({NB_OP_LEAKY_RELU, "leaky_relu", {F(-3, 3)}, UNARY_SHAPES, FLOATS,
         [](const Tensors &t) { return nb_leaky_relu(t[0], 0.1); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return a > 0 ? a : 0.1 * a; }); },
         true});
    unary(NB_OP_SILU, nb_silu, [](double a) { return a / (1 + std::exp(-a)); }, F(-5, 5), FLOATS, true);
    unary(NB_OP_HARDSIGMOID, nb_hardsigmoid,
          [](double a) { return std::min(std::max(a + 3, 0.0), 6.0) / 6; }, F(-5, 5), FLOATS, true);
    unary(NB_OP_HARDSWISH, nb_hardswish,
          [](double a) { return a * std::min(std::max(a + 3, 0.0), 6.0) / 6; }, F(-5, 5), FLOATS, true);
    // gelu's gradient runs the gelu_backward kernel; its own case checks it directly
    for (bool tanh_form : {false, true}) {
        auto gelu = [tanh_form](double a) {
            return tanh_form ? 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)))
                             : 0.5 * a * std::erfc(-a / std::sqrt(2.0));
        };
        add({NB_OP_GELU, tanh_form ? "gelu_tanh" : "gelu", {F(-4, 4)}, UNARY_SHAPES, FLOATS,
             [tanh_form](const Tensors &t) { return nb_gelu(t[0], tanh_form); },
             [gelu](const std::vector<Host> &h) { return map1(h[0], gelu); }, true});
        // d sum(gelu(x)) / dx against the derivative written out in float64
        auto slope = [tanh_form](double a) {
            if (!tanh_form) return 0.5 * std::erfc(-a / std::sqrt(2.0)) + a * std::exp(-a * a / 2) / std::sqrt(2 * M_PI);
            double k = std::sqrt(2 / M_PI), u = k * (a + 0.044715 * a * a * a), t = std::tanh(u);
            return 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a);
        };
        add({NB_OP_GELU_BACKWARD, tanh_form ? "gelu_tanh_backward" : "gelu_backward", {F(-4, 4)},
             UNARY_SHAPES, FLOATS,
             [tanh_form](const Tensors &t) -> nb_tensor * {
                 T leaf(nb_detach(t[0]));
                 if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(nb_gelu(leaf, tanh_form));
                 T total(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
                 if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
                 return nb_grad(leaf);
             },
             [slope](const std::vector<Host> &h) { return map1(h[0], slope); },
             false});
    }
    // integral inputs put zeros in; continuous ones keep the gradient check off the jump
    unary(NB_OP_SIGN, nb_sign, [](double a) { return (double)((a > 0) - (a < 0)); }, I(-2, 2),
          SIGNED, false);
    unary(NB_OP_SIGN, nb_sign, [](double a) { return (double)((a > 0) - (a < 0)); }, F(-2, 2),
          SIGNED, true);
    unary(NB_OP_FLOOR, nb_floor, [](double a) { return std::floor(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_CEIL, nb_ceil, [](double a) { return std::ceil(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_ROUND, nb_round, [](double a) { return std::nearbyint(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_LOGICAL_NOT, nb_logical_not, [](double a) { return (double)(a == 0); }, I(-1, 1),
          ALL, false);
    add({NB_OP_CLAMP, "clamp", {F(-2, 2)}, UNARY_SHAPES, SIGNED,
         [](const Tensors &t) { return nb_clamp(t[0], -0.5, 1.25); },
         [](const std::vector<Host> &h) {
             return map1(h[0], [](double a) { return std::min(std::max(a, -0.5), 1.25); });
         },
         true});
    add({NB_OP_CLAMP, "clamp_upper_only", {F(-2, 2)}, UNARY_SHAPES, NUMERIC,
         [](const Tensors &t) { return nb_clamp(t[0], -INFINITY, 1); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return std::min(a, 1.0); }); },
         true});

    binary(NB_OP_ADD, nb_add, [](double a, double b) { return a + b; }, F(-3, 3), F(-3, 3), ALL, true);
    binary(NB_OP_SUB, nb_sub, [](double a, double b) { return a - b; }, F(-3, 3), F(-3, 3), NUMERIC, true);
    binary(NB_OP_MUL, nb_mul, [](double a, double b) { return a * b; }, F(-3, 3), F(-3, 3), ALL, true);
    binary(NB_OP_DIV, nb_div, [](double a, double b) { return a / b; }, F(-3, 3), F(0.5, 2), NUMERIC, true);
    binary(NB_OP_POW, nb_pow, [](double a, double b) { return std::pow(a, b); }, F(0.5, 2), F(-2, 2),
           SIGNED, true);
    binary(NB_OP_MAXIMUM, nb_maximum, [](double a, double b) { return std::max(a, b); }, F(-2, 2),
           F(-2, 2), ALL, true);
    binary(NB_OP_MINIMUM, nb_minimum, [](double a, double b) { return std::min(a, b); }, F(-2, 2),
           F(-2, 2), ALL, true);
    binary(NB_OP_EQ, nb_eq, [](double a, double b) { return (double)(a == b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_NE, nb_ne, [](double a, double b) { return (double)(a != b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_LT, nb_lt, [](double a, double b) { return (double)(a < b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_LE, nb_le, [](double a, double b) { return (double)(a <= b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_GT, nb_gt, [](double a, double b) { return (double)(a > b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_GE, nb_ge, [](double a, double b) { return (double)(a >= b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_LOGICAL_AND, nb_logical_and, [](double a, double b) { return (double)(a && b); },
           I(-1, 1), I(-1, 1), ALL, false);
    binary(NB_OP_LOGICAL_OR, nb_logical_or, [](double a, double b) { return (double)(a || b); },
           I(-1, 1), I(-1, 1), ALL, false);
    binary(NB_OP_LOGICAL_XOR, nb_logical_xor, [](double a, double b) { return (double)(!a != !b); },
           I(-1, 1), I(-1, 1), ALL, false);

    add({NB_OP_WHERE, "where", {M, F(-3, 3), F(-3, 3)},
         {{{3, 4}, {3, 4}, {3, 4}}, {{3, 1}, {1, 4}, {}}, {{5}, {2, 5}, {5}}}, ALL,
         [](const Tensors &t) { return nb_where(t[0], t[1], t[2]); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[0] != 0 ? v[1] : v[2]; });
         },
         true});
    add({NB_OP_MASKED_FILL, "masked_fill", {F(-3, 3), M}, {{{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{2, 3}, {}}},
         ALL, [](const Tensors &t) { return nb_masked_fill(t[0], t[1], 2.5); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[1] != 0 ? 2.5 : v[0]; });
         },
         true});
    add({NB_OP_COPY, "clone", {F(-3, 3)}, UNARY_SHAPES, ALL, [](const Tensors &t) { return nb_clone(t[0]); },
         [](const std::vector<Host> &h) { return h[0]; }, true});
    add({NB_OP_COPY, "contiguous", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) { return nb_contiguous(t[0]); },
         [](const std::vector<Host> &h) { return h[0]; }, true});
    add({NB_OP_COPY, "cast_to_i32", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) { return nb_cast(t[0], NB_I32); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return std::trunc(a); }); },
         false});
    add({NB_OP_COPY, "cast_to_f64", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) { return nb_cast(t[0], NB_F64); },
         [](const std::vector<Host> &h) { return h[0]; }, true});
    // the GPU's dense casts, 8 values a thread: whole packs and a tail
    for (nb_dtype to : {NB_F32, NB_F16, NB_BF16, NB_F64})
        add({NB_OP_COPY, std::string("cast_dense_to_") + nb_dtype_name(to), {F(-3, 3)}, {{{1003}}, {{4, 64}}}, ALL,
             [to](const Tensors &t) { return nb_cast(t[0], to); },
             [](const std::vector<Host> &h) { return h[0]; }, false});
    // to the other device (a CUDA tensor to the CPU, a CPU one to cuda:0 if
    // there is one) and back, so the gradient crosses devices twice
    add({NB_OP_TO, "to_and_back", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) {
             nb_device here = nb_device_of(t[0]);
             nb_device there = here.type == NB_DEVICE_CUDA ? nb_cpu()
                               : nb_cuda_device_count() > 0 ? nb_cuda(0) : nb_cpu();
             T moved(nb_to(t[0], there));
             return moved.t ? nb_to(moved, here) : nullptr;
         },
         [](const std::vector<Host> &h) { return h[0]; }, true});
}

} // namespace op_cases
