// The op harness's cases: the activations with parameters and those built
// from other ops, against their formulas written out here in double (PyTorch's
// definitions), and the fused activation_backward against derivatives
// written out the same way.
#include "cases.h"

namespace op_cases {

namespace {

double sigmoid(double a) { return 1 / (1 + std::exp(-a)); }
double softplus(double a) { return a > 20 ? a : std::log1p(std::exp(a)); }

const double SELU_ALPHA = 1.6732632423543772848170429916717;
const double SELU_SCALE = 1.0507009873554804934193349852946;

struct Activation {
    nb_op op;
    std::string name;
    std::function<nb_tensor *(const nb_tensor *)> fn;
    std::function<double(double)> f, slope;
    Input in;
};

} // namespace

void activation_cases() {
    const std::vector<Activation> list = {
        {NB_OP_ELU, "elu", [](const nb_tensor *x) { return nb_elu(x, 1.5); },
         [](double a) { return a > 0 ? a : 1.5 * (std::exp(a) - 1); },
         [](double a) { return a > 0 ? 1 : 1.5 * std::exp(a); }, F(-3, 3)},
        {NB_OP_SELU, "selu", nb_selu,
         [](double a) { return SELU_SCALE * (a > 0 ? a : SELU_ALPHA * (std::exp(a) - 1)); },
         [](double a) { return SELU_SCALE * (a > 0 ? 1 : SELU_ALPHA * std::exp(a)); }, F(-3, 3)},
        {NB_OP_CELU, "celu", [](const nb_tensor *x) { return nb_celu(x, 0.7); },
         [](double a) { return std::max(0.0, a) + std::min(0.0, 0.7 * (std::exp(a / 0.7) - 1)); },
         [](double a) { return a > 0 ? 1 : std::exp(a / 0.7); }, F(-3, 3)},
        {NB_OP_SOFTPLUS, "softplus", [](const nb_tensor *x) { return nb_softplus(x, 2, 3); },
         [](double a) { return 2 * a > 3 ? a : std::log1p(std::exp(2 * a)) / 2; },
         [](double a) { return 2 * a > 3 ? 1 : sigmoid(2 * a); }, F(-4, 4)},
        {NB_OP_MISH, "mish", nb_mish, [](double a) { return a * std::tanh(softplus(a)); },
         [](double a) {
             double t = std::tanh(softplus(a));
             return t + a * sigmoid(a) * (1 - t * t);
         },
         F(-4, 4)},
        {NB_OP_SWISH, "swish", [](const nb_tensor *x) { return nb_swish(x, 1.7); },
         [](double a) { return a * sigmoid(1.7 * a); },
         [](double a) { return sigmoid(1.7 * a) * (1 + 1.7 * a * (1 - sigmoid(1.7 * a))); }, F(-4, 4)},
        {NB_OP_SOFTSIGN, "softsign", nb_softsign, [](double a) { return a / (1 + std::fabs(a)); },
         [](double a) { return 1 / ((1 + std::fabs(a)) * (1 + std::fabs(a))); }, F(-4, 4)},
        {NB_OP_LOGSIGMOID, "logsigmoid", nb_logsigmoid, [](double a) { return std::log(sigmoid(a)); },
         [](double a) { return 1 - sigmoid(a); }, F(-6, 6)},
        {NB_OP_THRESHOLD, "threshold", [](const nb_tensor *x) { return nb_threshold(x, 0.3, -2); },
         [](double a) { return a <= 0.3 ? -2 : a; }, [](double a) { return a <= 0.3 ? 0.0 : 1.0; }, F(-2, 2)},
        {NB_OP_HARDTANH, "hardtanh", [](const nb_tensor *x) { return nb_hardtanh(x, -0.5, 1.5); },
         [](double a) { return std::min(std::max(a, -0.5), 1.5); },
         [](double a) { return a > -0.5 && a < 1.5 ? 1.0 : 0.0; }, F(-3, 3)},
        {NB_OP_TANHSHRINK, "tanhshrink", nb_tanhshrink, [](double a) { return a - std::tanh(a); },
         [](double a) { return std::tanh(a) * std::tanh(a); }, F(-3, 3)},
        {NB_OP_HARDSHRINK, "hardshrink", [](const nb_tensor *x) { return nb_hardshrink(x, 0.6); },
         [](double a) { return std::fabs(a) <= 0.6 ? 0 : a; },
         [](double a) { return std::fabs(a) <= 0.6 ? 0.0 : 1.0; }, F(-2, 2)},
        {NB_OP_SOFTSHRINK, "softshrink", [](const nb_tensor *x) { return nb_softshrink(x, 0.6); },
         [](double a) { return a > 0.6 ? a - 0.6 : a < -0.6 ? a + 0.6 : 0; },
         [](double a) { return std::fabs(a) <= 0.6 ? 0.0 : 1.0; }, F(-2, 2)},
    };
    const std::vector<std::vector<Shape>> shapes = {{{}}, {{7}}, {{3, 5}}, {{2, 1, 4}}, {{4, 300}}};
    for (const Activation &a : list) {
        add({a.op, a.name, {a.in}, shapes, FLOATS, [a](const Tensors &t) { return a.fn(t[0]); },
             [a](const std::vector<Host> &h) { return map1(h[0], a.f); }, true});
        // the fused backward: d sum(f(x) * 3) / dx = 3 f'(x)
        add({NB_OP_ACTIVATION_BACKWARD, a.name + "_backward", {a.in}, {{{3, 5}}, {{4, 300}}}, FLOATS,
             [a](const Tensors &t) -> nb_tensor * {
                 T leaf(nb_detach(t[0]));
                 if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(a.fn(leaf));
                 T three(y.t ? nb_full(0, nullptr, 3, nb_dtype_of(y), nb_device_of(y)) : nullptr);
                 T total(three.t ? nb_sum(T(nb_mul(y, three)), 0, nullptr, false) : nullptr);
                 if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
                 return nb_grad(leaf);
             },
             [a](const std::vector<Host> &h) { return map1(h[0], [a](double v) { return 3 * a.slope(v); }); },
             false});
    }
    // integers compute in f32
    add({NB_OP_ELU, "elu_of_integers", {I(-3, 3)}, {{{5}}}, {NB_I32, NB_I64},
         [](const Tensors &t) { return nb_elu(t[0], 1); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return a > 0 ? a : std::expm1(a); }); },
         false});
    for (bool per_channel : {true, false})
        add({NB_OP_PRELU, per_channel ? "prelu_per_channel" : "prelu_one", {F(-3, 3), F(0.05, 0.5)},
             per_channel ? std::vector<std::vector<Shape>>{{{2, 3, 4}, {3}}, {{5, 3}, {3}}, {{4}, {4}}}
                         : std::vector<std::vector<Shape>>{{{2, 3, 4}, {1}}, {{6}, {1}}, {{}, {1}}},
             FLOATS, [](const Tensors &t) { return nb_prelu(t[0], t[1]); },
             [](const std::vector<Host> &h) {
                 const Host &x = h[0], &w = h[1];
                 Host out(x.shape);
                 for (int64_t i = 0; i < x.numel(); i++) {
                     auto idx = x.unravel(i);
                     int64_t c = w.numel() == 1 ? 0 : idx[x.shape.size() >= 2 ? 1 : 0];
                     out.v[i] = x.v[i] >= 0 ? x.v[i] : w.v[c] * x.v[i];
                 }
                 return out;
             },
             true});
    const uint64_t seed = 31;
    add({NB_OP_RRELU, "rrelu_training", {F(-3, 3)}, {{{4, 6}}, {{9}}}, FLOATS,
         [seed](const Tensors &t) {
             nb_generator *g = nb_generator_create(seed);
             nb_tensor *out = nb_rrelu(t[0], 0.1, 0.4, true, g);
             nb_generator_free(g);
             return out;
         },
         [seed](const std::vector<Host> &h) {
             Host out(h[0].shape);
             for (int64_t i = 0; i < out.numel(); i++) {
                 double a = h[0].v[i];
                 out.v[i] = a >= 0 ? a : philox_uniform(seed, i, 0.1, 0.4) * a;
             }
             return out;
         },
         true, 2});
    add({NB_OP_RRELU, "rrelu_evaluation", {F(-3, 3)}, {{{4, 6}}}, FLOATS,
         [](const Tensors &t) { return nb_rrelu(t[0], 0.1, 0.4, false, nullptr); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return a >= 0 ? a : 0.25 * a; }); },
         true});
    for (int dim : {-1, 1})
        add({NB_OP_GLU, "glu_dim" + std::to_string(dim), {F(-3, 3)}, {{{2, 6, 4}}, {{3, 4}}}, FLOATS,
             [dim](const Tensors &t) { return nb_glu(t[0], dim); },
             [dim](const std::vector<Host> &h) {
                 const Host &x = h[0];
                 int d = (dim + (int)x.shape.size()) % (int)x.shape.size();
                 int64_t half = x.shape[d] / 2;
                 Host a = slice_ref(x, d, 0, half, 1), b = slice_ref(x, d, half, 2 * half, 1);
                 for (int64_t i = 0; i < a.numel(); i++) a.v[i] *= sigmoid(b.v[i]);
                 return a;
             },
             true});
    for (int dim : {1, -1})
        add({NB_OP_MAXOUT, "maxout_dim" + std::to_string(dim), {F(-3, 3)}, {{{2, 6, 4}}, {{3, 6}}}, FLOATS,
             [dim](const Tensors &t) { return nb_maxout(t[0], 2, dim); },
             [dim](const std::vector<Host> &h) {
                 const Host &x = h[0];
                 int d = (dim + (int)x.shape.size()) % (int)x.shape.size();
                 Shape shape = x.shape;
                 shape[d] /= 2;
                 Host out(shape);
                 for (int64_t i = 0; i < out.numel(); i++) {
                     auto idx = out.unravel(i), j = idx;
                     j[d] = 2 * idx[d];
                     double a = x.at(j);
                     j[d]++;
                     out.v[i] = std::max(a, x.at(j));
                 }
                 return out;
             },
             true});
}

} // namespace op_cases
