// The op harness's cases: shapes for the GPU kernels' fast paths.
#include "cases.h"

namespace op_cases {

// Shapes large enough for the GPU kernels' fast paths: 16-byte vectors with
// row and column broadcasts and a ragged tail, reductions split into parts
// and over outer dims, softmax rows in and beyond shared memory, batched
// matmul with a broadcast operand. No gradient checks: the small cases
// cover the formulas.
void large_cases() {
    const std::vector<std::vector<Shape>> wide = {{{33, 64}, {64}}, {{33, 64}, {33, 1}}, {{1003}, {}}};
    auto elementwise = [&](nb_op op, Binary fn, std::function<double(double, double)> f,
                           std::vector<nb_dtype> dtypes) {
        add({op, std::string(nb_op_name(op)) + "_wide", {F(-3, 3), F(0.5, 3)}, wide, dtypes,
             [fn](const Tensors &t) { return fn(t[0], t[1]); },
             [f](const std::vector<Host> &h) {
                 return map_n(h, [f](const std::vector<double> &v) { return f(v[0], v[1]); });
             },
             false});
    };
    elementwise(NB_OP_ADD, nb_add, [](double a, double b) { return a + b; }, ALL);
    elementwise(NB_OP_MUL, nb_mul, [](double a, double b) { return a * b; }, ALL);
    elementwise(NB_OP_GT, nb_gt, [](double a, double b) { return a > b; }, NUMERIC);
    add({NB_OP_WHERE, "where_wide", {M, F(-3, 3), F(-3, 3)}, {{{33, 64}, {33, 64}, {64}}}, ALL,
         [](const Tensors &t) { return nb_where(t[0], t[1], t[2]); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[0] != 0 ? v[1] : v[2]; });
         },
         false});
    struct Reduce {
        Shape shape;
        std::vector<int> dims;
    };
    // rows of 20,001 start off the GPU's 16-byte boundaries after the first
    for (const Reduce &r : std::vector<Reduce>{{{3, 20000}, {1}}, {{3, 20001}, {1}}, {{50000}, {}}, {{40, 300}, {0}}}) {
        std::string tag = "_large_" + shape_str(r.shape) + "_dims" + std::to_string(r.dims.size());
        add({NB_OP_SUM, "sum" + tag, {F(-2, 2)}, {{r.shape}}, {NB_F32, NB_F64, NB_BF16, NB_I32},
             [r](const Tensors &t) { return nb_sum(t[0], (int)r.dims.size(), r.dims.data(), false); },
             [r](const std::vector<Host> &h) { return reduce_ref(h[0], r.dims, false, fold_sum); },
             false, 10});
        add({NB_OP_ARGMAX, "argmax" + tag, {F(-2, 2)}, {{r.shape}}, {NB_F32, NB_F64},
             [r](const Tensors &t) { return nb_argmax(t[0], (int)r.dims.size(), r.dims.data(), false); },
             [r](const std::vector<Host> &h) {
                 return reduce_ref(h[0], r.dims, false, [](const std::vector<double> &v) {
                     return (double)(std::max_element(v.begin(), v.end()) - v.begin());
                 });
             },
             false});
        add({NB_OP_VAR, "var" + tag, {F(-2, 2)}, {{r.shape}}, {NB_F32, NB_F64},
             [r](const Tensors &t) { return nb_var(t[0], (int)r.dims.size(), r.dims.data(), 1, false); },
             [r](const std::vector<Host> &h) {
                 return reduce_ref(h[0], r.dims, false,
                                   [](const std::vector<double> &v) { return fold_var(v, 1); });
             },
             false, 10});
    }
    // rows at the edge of the GPU's shared-memory row cache: 48 KiB less the
    // kernel's static buffers (1,280 bytes), which 12,224 and 12,288 f32
    // values overflowed
    for (auto sd : std::vector<std::pair<Shape, int>>{
             {{4, 3000}, -1}, {{2, 12224}, -1}, {{2, 12288}, -1}, {{2, 20000}, -1}, {{300, 5}, 0}})
        add({NB_OP_SOFTMAX, "softmax_large_" + shape_str(sd.first), {F(-3, 3)}, {{sd.first}}, FLOATS,
             [sd](const Tensors &t) { return nb_softmax(t[0], sd.second); },
             [sd](const std::vector<Host> &h) {
                 Host out = h[0];
                 int nd = (int)h[0].shape.size(), dim = (sd.second + nd) % nd;
                 Host sums = reduce_ref(h[0], {dim}, true, [](const std::vector<double> &v) {
                     double s = 0;
                     for (double a : v) s += std::exp(a);
                     return s;
                 });
                 for (int64_t i = 0; i < out.numel(); i++) {
                     auto idx = out.unravel(i);
                     idx[dim] = 0;
                     out.v[i] = std::exp(h[0].v[i]) / sums.at(idx);
                 }
                 return out;
             },
             false});
    add({NB_OP_MATMUL, "matmul_large_broadcast", {F(-1, 1), F(-1, 1)}, {{{2, 65, 130}, {130, 72}}},
         FLOATS, [](const Tensors &t) { return nb_matmul(t[0], t[1]); },
         [](const std::vector<Host> &h) { return matmul_ref(h[0], h[1]); }, false, 10});
}

} // namespace op_cases
