// The op harness's cases: both sides of every CPU size threshold.
#include "cases.h"

namespace op_cases {

// Both sides of every CPU threshold that changes the algorithm: the thread
// team starts at NB_CPU_PARALLEL_MIN (32,768) elements, and a reduction with
// fewer outputs than threads splits each output's elements into ranges from
// twice that. Inputs whose sign and order expose a wrong identity or merge:
// all negative, all positive, and ramps that put the extreme at either end.
void threshold_cases() {
    const std::vector<std::vector<Shape>> sizes = {{{32767}}, {{65535}}, {{65536}}, {{70001}},
                                                   {{2, 70000}}, {{3, 11000}}};
    const std::vector<std::pair<std::string, Input>> inputs = {
        {"negative", F(-3, -1)}, {"positive", F(1, 3)},
        {"ramp_up", RAMP_(-100000, -1)}, {"ramp_down", RAMP_(100000, 1)}};
    using Fold = std::function<double(const std::vector<double> &)>;
    auto first_of = [](bool largest) {
        return [largest](const std::vector<double> &v) {
            auto it = largest ? std::max_element(v.begin(), v.end()) : std::min_element(v.begin(), v.end());
            return (double)(it - v.begin());
        };
    };
    const std::vector<std::tuple<nb_op, Reducer, Fold>> extremes = {
        {NB_OP_MAX, nb_max, [](const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); }},
        {NB_OP_MIN, nb_min, [](const std::vector<double> &v) { return *std::min_element(v.begin(), v.end()); }},
        {NB_OP_ARGMAX, nb_argmax, first_of(true)},
        {NB_OP_ARGMIN, nb_argmin, first_of(false)},
        {NB_OP_SUM, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_sum(x, n, d, k); }, fold_sum},
        {NB_OP_LOGSUMEXP, nb_logsumexp, [](const std::vector<double> &v) {
             double m = *std::max_element(v.begin(), v.end()), s = 0;
             for (double a : v) s += std::exp(a - m);
             return m + std::log(s);
         }}};
    for (const auto &[op, fn, fold] : extremes)
        for (const auto &[tag, in] : inputs) {
            bool exp_like = op == NB_OP_LOGSUMEXP;
            if (exp_like && in.kind == RAMP) continue; // a ramp of integers is one term of the sum
            std::vector<nb_dtype> dtypes = {NB_F32, NB_F64, NB_I32, NB_I64};
            if (exp_like) dtypes = {NB_F32, NB_F64};
            int dim = -1;
            add({op, std::string(nb_op_name(op)) + "_threshold_" + tag, {in}, sizes, dtypes,
                 [fn, dim](const Tensors &t) { return fn(t[0], 1, &dim, false); },
                 [fold, dim](const std::vector<Host> &h) { return reduce_ref(h[0], {dim}, false, fold); },
                 false, op == NB_OP_SUM ? 100.0 : 1.0});
        }
    // the elementwise engine: serial below the cut-off, a thread team above
    add({NB_OP_MUL, "mul_threshold", {F(-3, -1), F(1, 3)},
         {{{32767}, {32767}}, {{32768}, {1}}, {{3, 11000}, {11000}}, {{40000, 1}, {1, 1}}}, SIGNED,
         [](const Tensors &t) { return nb_mul(t[0], t[1]); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[0] * v[1]; });
         },
         false});
    add({NB_OP_NEG, "neg_threshold", {RAMP_(1, 40000)}, {{{32767}}, {{32768}}, {{2, 20000}}}, SIGNED,
         [](const Tensors &t) { return nb_neg(t[0]); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return -a; }); }, false});
    // blocked depthwise convolution with a partial block of channels, below and
    // above the input size that starts the thread team
    for (const Shape &x : {Shape{2, 9, 40, 45}, Shape{2, 9, 48, 40}}) {
        ConvConfig k = {{1, 1}, {1, 1}, {1, 1}, 9, {0, 0}};
        add({NB_OP_DEPTHWISE_CONV2D, "depthwise_threshold_" + shape_str(x), {F(-1, 1), F(-1, 1)},
             {{x, {9, 1, 3, 3}}}, {NB_F32, NB_F64},
             [k](const Tensors &t) { return nb_conv2d(t[0], t[1], nullptr, k.stride, k.padding, k.dilation, k.groups); },
             [k, x](const std::vector<Host> &h) { return conv_ref(h[0], h[1], nullptr, k, x[2], x[3]); },
             false, 5});
    }
    // the GPU's tiled 3x3 forward (planes at least 16 wide, tiles of 8 x 32
    // outputs) at stride 2 with two outputs a channel, partial tiles both ways
    ConvConfig strided = {{2, 2}, {1, 1}, {1, 1}, 4, {0, 0}};
    add({NB_OP_DEPTHWISE_CONV2D, "depthwise_tile_stride2", {F(-1, 1), F(-1, 1)}, {{{2, 4, 37, 70}, {8, 1, 3, 3}}},
         FLOATS,
         [strided](const Tensors &t) {
             return nb_conv2d(t[0], t[1], nullptr, strided.stride, strided.padding, strided.dilation, strided.groups);
         },
         [strided](const std::vector<Host> &h) { return conv_ref(h[0], h[1], nullptr, strided, 19, 35); }, false, 5});
}

} // namespace op_cases
