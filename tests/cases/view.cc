// The op harness's cases: reshape, permute, slices and the other views.
#include "cases.h"

namespace op_cases {

void view_cases() {
    add({NB_OP_RESHAPE, "reshape", {F(-3, 3)}, {{{3, 4}}, {{2, 3, 2}}}, ALL,
         [](const Tensors &t) { return nb_reshape(t[0], 2, Shape{2, -1}.data()); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {2, h[0].numel() / 2}); }, true});
    add({NB_OP_RESHAPE, "view_flatten", {F(-3, 3)}, {{{3, 4}}, {{2, 3, 2}}}, ALL,
         [](const Tensors &t) {
             T dense(nb_contiguous(t[0]));
             return nb_view(dense, 1, Shape{-1}.data());
         },
         [](const std::vector<Host> &h) { return reshaped(h[0], {h[0].numel()}); }, true});
    add({NB_OP_PERMUTE, "permute", {F(-3, 3)}, {{{2, 3, 4}}}, ALL,
         [](const Tensors &t) {
             int dims[3] = {2, 0, 1};
             return nb_permute(t[0], dims);
         },
         [](const std::vector<Host> &h) { return permute_ref(h[0], {2, 0, 1}); }, true});
    add({NB_OP_TRANSPOSE, "transpose", {F(-3, 3)}, {{{2, 3, 4}}}, ALL,
         [](const Tensors &t) { return nb_transpose(t[0], 0, -1); },
         [](const std::vector<Host> &h) { return permute_ref(h[0], {2, 1, 0}); }, true});
    add({NB_OP_SLICE, "slice_step2", {F(-3, 3)}, {{{7, 4}}}, ALL,
         [](const Tensors &t) { return nb_slice(t[0], 0, 1, 6, 2); },
         [](const std::vector<Host> &h) { return slice_ref(h[0], 0, 1, 6, 2); }, true});
    add({NB_OP_SLICE, "slice_negative", {F(-3, 3)}, {{{3, 8}}}, ALL,
         [](const Tensors &t) { return nb_slice(t[0], -1, -5, 100, 3); },
         [](const std::vector<Host> &h) { return slice_ref(h[0], 1, 3, 8, 3); }, true});
    add({NB_OP_SQUEEZE, "squeeze", {F(-3, 3)}, {{{3, 1, 4}}}, ALL,
         [](const Tensors &t) { return nb_squeeze(t[0], 1); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {3, 4}); }, true});
    add({NB_OP_SQUEEZE, "squeeze_all", {F(-3, 3)}, {{{1, 3, 1}}}, ALL,
         [](const Tensors &t) { return nb_squeeze_all(t[0]); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {3}); }, true});
    add({NB_OP_UNSQUEEZE, "unsqueeze", {F(-3, 3)}, {{{3, 4}}}, ALL,
         [](const Tensors &t) { return nb_unsqueeze(t[0], -1); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {3, 4, 1}); }, true});
    add({NB_OP_UNSQUEEZE, "unsqueeze_scalar", {F(-3, 3)}, {{{}}}, ALL,
         [](const Tensors &t) { return nb_unsqueeze(t[0], 0); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {1}); }, true});
    add({NB_OP_EXPAND, "expand", {F(-3, 3)}, {{{3, 1}}, {{1}}}, ALL,
         [](const Tensors &t) { return nb_expand(t[0], 3, Shape{2, 3, 4}.data()); },
         [](const std::vector<Host> &h) {
             return map_n({h[0], Host({2, 3, 4})}, [](const std::vector<double> &v) { return v[0]; });
         },
         true});
}

} // namespace op_cases
