// The op harness's cases: matmul, linear and softmax.
#include "cases.h"

namespace op_cases {

Host linear_ref(const Host &x, const Host &w, const Host *b) {
    int64_t in = w.shape[1], out = w.shape[0], rows = x.numel() / in;
    Shape shape = x.shape;
    shape.back() = out;
    Host y(shape);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? b->v[o] : 0;
            for (int64_t i = 0; i < in; i++) acc += x.v[r * in + i] * w.v[o * in + i];
            y.v[r * out + o] = acc;
        }
    return y;
}

void linear_algebra_cases() {
    add({NB_OP_LINEAR, "linear", {F(-1, 1), F(-1, 1), F(-1, 1)},
         {{{3, 4}, {5, 4}, {5}}, {{2, 3, 4}, {5, 4}, {5}}, {{4}, {2, 4}, {2}}, {{0, 3}, {2, 3}, {2}}},
         FLOATS, [](const Tensors &t) { return nb_linear(t[0], t[1], t[2]); },
         [](const std::vector<Host> &h) { return linear_ref(h[0], h[1], &h[2]); }, true, 3});
    add({NB_OP_LINEAR, "linear_no_bias", {F(-1, 1), F(-1, 1)}, {{{3, 4}, {5, 4}}, {{2, 1, 4}, {3, 4}}},
         FLOATS, [](const Tensors &t) { return nb_linear(t[0], t[1], nullptr); },
         [](const std::vector<Host> &h) { return linear_ref(h[0], h[1], nullptr); }, true, 3});
    add({NB_OP_MATMUL, "matmul", {F(-1, 1), F(-1, 1)},
         {{{3, 4}, {4, 5}}, {{4}, {4, 5}}, {{3, 4}, {4}}, {{4}, {4}}, {{2, 3, 4}, {4, 5}},
          {{2, 1, 3, 4}, {3, 4, 2}}, {{1, 3}, {3, 1}}, {{3, 0}, {0, 2}}},
         FLOATS, [](const Tensors &t) { return nb_matmul(t[0], t[1]); },
         [](const std::vector<Host> &h) { return matmul_ref(h[0], h[1]); }, true, 3});
    add({NB_OP_MATMUL, "matmul_transposed_operands", {F(-1, 1), F(-1, 1)}, {{{4, 3}, {5, 4}}, {{2, 6, 3}, {2, 5, 6}}},
         FLOATS,
         [](const Tensors &t) {
             T at(nb_transpose(t[0], -1, -2)), bt(nb_transpose(t[1], -1, -2));
             return nb_matmul(at, bt);
         },
         [](const std::vector<Host> &h) {
             auto swap_last = [](const Host &x) {
                 std::vector<int> perm(x.shape.size());
                 std::iota(perm.begin(), perm.end(), 0);
                 std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
                 return permute_ref(x, perm);
             };
             return matmul_ref(swap_last(h[0]), swap_last(h[1]));
         },
         true, 3});
    for (nb_op op : {NB_OP_SOFTMAX, NB_OP_LOG_SOFTMAX})
        for (auto sd : std::vector<std::pair<Shape, int>>{{{3, 5}, -1}, {{4, 3, 2}, 1}, {{6}, 0}, {{2, 1}, 1}}) {
            bool log_space = op == NB_OP_LOG_SOFTMAX;
            add({op, std::string(nb_op_name(op)) + "_" + shape_str(sd.first) + "_dim" + std::to_string(sd.second),
                 {F(-3, 3)}, {{sd.first}}, FLOATS,
                 [op, sd](const Tensors &t) {
                     return op == NB_OP_SOFTMAX ? nb_softmax(t[0], sd.second) : nb_log_softmax(t[0], sd.second);
                 },
                 [sd, log_space](const std::vector<Host> &h) { return softmax_ref(h[0], sd.second, log_space); },
                 true});
        }
}

} // namespace op_cases
