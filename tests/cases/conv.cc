// The op harness's cases: convolutions: plain, grouped, depthwise, transposed.
#include "cases.h"

namespace op_cases {

Host conv_ref(const Host &x, const Host &w, const Host *b, const ConvConfig &k, int64_t ho, int64_t wo) {
    int64_t n = x.shape[0], h = x.shape[2], wd = x.shape[3];
    int64_t o = w.shape[0], cg = w.shape[1], kh = w.shape[2], kw = w.shape[3], og = o / k.groups;
    Host out({n, o, ho, wo});
    for (int64_t s = 0; s < n; s++)
        for (int64_t oc = 0; oc < o; oc++)
            for (int64_t oy = 0; oy < ho; oy++)
                for (int64_t ox = 0; ox < wo; ox++) {
                    double acc = b ? b->v[oc] : 0;
                    for (int64_t ic = 0; ic < cg; ic++)
                        for (int64_t i = 0; i < kh; i++)
                            for (int64_t j = 0; j < kw; j++) {
                                int64_t y = oy * k.stride[0] - k.padding[0] + i * k.dilation[0];
                                int64_t xx = ox * k.stride[1] - k.padding[1] + j * k.dilation[1];
                                if (y < 0 || y >= h || xx < 0 || xx >= wd) continue;
                                int64_t channel = (oc / og) * cg + ic;
                                acc += x.at({s, channel, y, xx}) * w.at({oc, ic, i, j});
                            }
                    out.v[out.ravel({s, oc, oy, ox})] = acc;
                }
    return out;
}

// Transposed convolution in double, by scattering each input pixel.
Host conv_transpose_ref(const Host &x, const Host &w, const Host *b, const ConvConfig &k) {
    int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
    int64_t og = w.shape[1], kh = w.shape[2], kw = w.shape[3], cg = c / k.groups, o = og * k.groups;
    int64_t ho = (h - 1) * k.stride[0] - 2 * k.padding[0] + (kh - 1) * k.dilation[0] + k.output_padding[0] + 1;
    int64_t wo = (wd - 1) * k.stride[1] - 2 * k.padding[1] + (kw - 1) * k.dilation[1] + k.output_padding[1] + 1;
    Host out({n, o, ho, wo});
    for (int64_t i = 0; i < out.numel(); i++) out.v[i] = b ? b->v[out.unravel(i)[1]] : 0;
    for (int64_t s = 0; s < n; s++)
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t iy = 0; iy < h; iy++)
                for (int64_t ix = 0; ix < wd; ix++)
                    for (int64_t oc = 0; oc < og; oc++)
                        for (int64_t i = 0; i < kh; i++)
                            for (int64_t j = 0; j < kw; j++) {
                                int64_t y = iy * k.stride[0] - k.padding[0] + i * k.dilation[0];
                                int64_t xx = ix * k.stride[1] - k.padding[1] + j * k.dilation[1];
                                if (y < 0 || y >= ho || xx < 0 || xx >= wo) continue;
                                out.v[out.ravel({s, (ic / cg) * og + oc, y, xx})] +=
                                    x.at({s, ic, iy, ix}) * w.at({ic, oc, i, j});
                            }
    return out;
}

struct Conv {
    const char *name;
    Shape x, w;
    ConvConfig k;
    bool same;
};

// A family of convolution kernels (forward, input and weight gradients)
// through nb_conv2d with config dw: the forward against the direct
// convolution, the gradients of sum(conv) against finite differences of it.
void kernel_cases(const std::string &name, const std::array<nb_op, 3> &ops, const Conv &dw) {
    auto dw_ref = [dw](const std::vector<Host> &h) {
        int64_t ho = (dw.x[2] + 2 * dw.k.padding[0] - (dw.w[2] - 1) * dw.k.dilation[0] - 1) / dw.k.stride[0] + 1;
        int64_t wo = (dw.x[3] + 2 * dw.k.padding[1] - (dw.w[3] - 1) * dw.k.dilation[1] - 1) / dw.k.stride[1] + 1;
        return conv_ref(h[0], h[1], nullptr, dw.k, ho, wo);
    };
    add({ops[0], name, {F(-1, 1), F(-1, 1)}, {{dw.x, dw.w}}, FLOATS,
         [dw](const Tensors &t) { return nb_conv2d(t[0], t[1], nullptr, dw.k.stride, dw.k.padding, dw.k.dilation, dw.k.groups); },
         dw_ref, true, 5});
    for (int which : {0, 1}) {
        add({ops[1 + which], name + (which ? "_weight_grad" : "_input_grad"), {F(-1, 1), F(-1, 1)},
             {{dw.x, dw.w}}, {NB_F32, NB_F64},
             [dw, which](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1]));
                 if (nb_set_requires_grad(which ? w : x, true) != NB_OK) return nullptr;
                 T y(nb_conv2d(x, w, nullptr, dw.k.stride, dw.k.padding, dw.k.dilation, dw.k.groups));
                 T total(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
                 if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
                 return nb_grad(which ? w : x);
             },
             [dw_ref, which](const std::vector<Host> &h) { // d sum(conv) / d input by perturbing each element
                 std::vector<Host> in = h;
                 Host &target = in[which];
                 Host grad(target.shape);
                 for (int64_t i = 0; i < target.numel(); i++) {
                     double saved = target.v[i], sum[2] = {0, 0};
                     for (int side = 0; side < 2; side++) {
                         target.v[i] = saved + (side ? 1 : -1);
                         for (double v : dw_ref(in).v) sum[side] += v;
                     }
                     target.v[i] = saved;
                     grad.v[i] = (sum[1] - sum[0]) / 2; // exact: the sum is linear in each input
                 }
                 return grad;
             },
             false, 5});
    }
}

void conv_cases() {
    for (const Conv &c : std::vector<Conv>{
             {"3x3_pad1", {2, 3, 5, 6}, {4, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1, {0, 0}}, false},
             {"stride2", {2, 2, 7, 7}, {3, 2, 3, 2}, {{2, 2}, {0, 0}, {1, 1}, 1, {0, 0}}, false},
             {"groups2", {1, 4, 5, 5}, {6, 2, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 2, {0, 0}}, false},
             {"depthwise", {2, 3, 6, 5}, {3, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 3, {0, 0}}, false},
             {"depthwise_mult2_stride2", {1, 2, 7, 6}, {4, 1, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 2, {0, 0}}, false},
             {"depthwise_dilation2", {2, 2, 7, 6}, {2, 1, 3, 3}, {{1, 1}, {2, 1}, {2, 1}, 2, {0, 0}}, false},
             {"depthwise_same_even_kernel", {1, 3, 5, 6}, {3, 1, 2, 2}, {{1, 1}, {0, 0}, {1, 1}, 3, {0, 0}}, true},
             // more channels than a CPU block holds (8): a full block and a partial one
             {"depthwise_11_channels", {2, 11, 5, 4}, {11, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 11, {0, 0}}, false},
             {"dilation2", {1, 2, 8, 7}, {2, 2, 3, 3}, {{1, 1}, {2, 2}, {2, 2}, 1, {0, 0}}, false},
             {"1x1", {2, 5, 4, 4}, {3, 5, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, false},
             {"same_even_kernel", {1, 2, 5, 5}, {2, 2, 2, 2}, {{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, true}}) {
        add({NB_OP_CONV2D, std::string("conv2d_") + c.name, {F(-1, 1), F(-1, 1), F(-1, 1)},
             {{c.x, c.w, {c.w[0]}}}, FLOATS,
             [c](const Tensors &t) {
                 int same[2] = {NB_PADDING_SAME, 0};
                 return nb_conv2d(t[0], t[1], t[2], c.k.stride, c.same ? same : c.k.padding,
                                  c.k.dilation, c.k.groups);
             },
             [c](const std::vector<Host> &h) {
                 ConvConfig k = c.k;
                 int64_t kh = c.w[2], kw = c.w[3];
                 int total[2] = {(int)((kh - 1) * k.dilation[0]), (int)((kw - 1) * k.dilation[1])};
                 if (c.same) k.padding[0] = total[0] / 2, k.padding[1] = total[1] / 2;
                 int pad_total[2] = {c.same ? total[0] : 2 * k.padding[0], c.same ? total[1] : 2 * k.padding[1]};
                 int64_t ho = (c.x[2] + pad_total[0] - (kh - 1) * k.dilation[0] - 1) / k.stride[0] + 1;
                 int64_t wo = (c.x[3] + pad_total[1] - (kw - 1) * k.dilation[1] - 1) / k.stride[1] + 1;
                 return conv_ref(h[0], h[1], &h[2], k, ho, wo);
             },
             true, 5});
    }
    for (const Conv &c : std::vector<Conv>{
             {"stride2_outpad1", {2, 3, 4, 4}, {3, 2, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 1, {1, 1}}, false},
             {"groups2", {1, 4, 3, 3}, {4, 1, 2, 2}, {{1, 1}, {0, 0}, {1, 1}, 2, {0, 0}}, false},
             {"dilation2", {1, 2, 3, 4}, {2, 3, 3, 2}, {{1, 2}, {1, 0}, {2, 2}, 1, {0, 1}}, false}}) {
        add({NB_OP_CONV_TRANSPOSE2D, std::string("conv_transpose2d_") + c.name,
             {F(-1, 1), F(-1, 1), F(-1, 1)}, {{c.x, c.w, {c.w[1] * c.k.groups}}}, FLOATS,
             [c](const Tensors &t) {
                 return nb_conv_transpose2d(t[0], t[1], t[2], c.k.stride, c.k.padding,
                                            c.k.output_padding, c.k.dilation, c.k.groups);
             },
             [c](const std::vector<Host> &h) { return conv_transpose_ref(h[0], h[1], &h[2], c.k); },
             true, 5});
    }
    // the depthwise kernels and the direct ones (cuDNN on CUDA; the GEMM path
    // where a backend has none), forward and (through autograd) both
    // gradients, against the direct convolution and finite differences of it
    kernel_cases("depthwise_conv2d", {NB_OP_DEPTHWISE_CONV2D, NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD,
                                      NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD},
                 {"", {2, 10, 6, 5}, {20, 1, 3, 3}, {{2, 1}, {1, 2}, {1, 2}, 10, {0, 0}}, false});
    // the GPU's 3x3 kernels compiled for stride 1 and 2
    const std::array<nb_op, 3> depthwise_ops = {NB_OP_DEPTHWISE_CONV2D, NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD,
                                                NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD};
    kernel_cases("depthwise_conv2d_3x3_stride1", depthwise_ops,
                 {"", {2, 4, 6, 7}, {4, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 4, {0, 0}}, false});
    kernel_cases("depthwise_conv2d_3x3_stride2_mult2", depthwise_ops,
                 {"", {1, 3, 7, 8}, {6, 1, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 3, {0, 0}}, false});
    kernel_cases("conv2d_direct", {NB_OP_CONV2D_DIRECT, NB_OP_CONV2D_INPUT_GRAD, NB_OP_CONV2D_WEIGHT_GRAD},
                 {"", {2, 4, 7, 6}, {6, 2, 3, 2}, {{2, 1}, {1, 0}, {1, 2}, 2, {0, 0}}, false});
    // unfold and fold against their definitions, each the other's gradient
    int kernel[2] = {2, 3}, stride[2] = {2, 1}, padding[2] = {1, 0}, dilation[2] = {1, 2};
    add({NB_OP_UNFOLD, "unfold", {F(-1, 1)}, {{{2, 3, 5, 6}}}, ALL,
         [=](const Tensors &t) { return nb_unfold(t[0], kernel, dilation, padding, stride); },
         [=](const std::vector<Host> &h) {
             const Host &x = h[0];
             int64_t n = x.shape[0], c = x.shape[1], H = x.shape[2], W = x.shape[3];
             int64_t ho = (H + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0] + 1;
             int64_t wo = (W + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1] + 1;
             Host out({n, c * kernel[0] * kernel[1], ho * wo});
             for (int64_t s = 0; s < n; s++)
                 for (int64_t r = 0; r < out.shape[1]; r++)
                     for (int64_t l = 0; l < ho * wo; l++) {
                         int64_t ch = r / (kernel[0] * kernel[1]), i = r / kernel[1] % kernel[0], j = r % kernel[1];
                         int64_t y = l / wo * stride[0] - padding[0] + i * dilation[0];
                         int64_t xx = l % wo * stride[1] - padding[1] + j * dilation[1];
                         out.v[out.ravel({s, r, l})] = y >= 0 && y < H && xx >= 0 && xx < W ? x.at({s, ch, y, xx}) : 0;
                     }
             return out;
         },
         true});
    int fold_kernel[2] = {2, 2}, fold_stride[2] = {1, 1}, fold_pad[2] = {0, 0}, fold_dil[2] = {1, 1};
    add({NB_OP_FOLD, "fold", {F(-1, 1)}, {{{2, 12, 12}}}, FLOATS,
         [=](const Tensors &t) {
             int64_t size[2] = {4, 5};
             return nb_fold(t[0], size, fold_kernel, fold_dil, fold_pad, fold_stride);
         },
         [=](const std::vector<Host> &h) {
             Host out({2, 3, 4, 5});
             for (int64_t s = 0; s < 2; s++)
                 for (int64_t r = 0; r < 12; r++)
                     for (int64_t l = 0; l < 12; l++) {
                         int64_t ch = r / 4, i = r / 2 % 2, j = r % 2, y = l / 4 + i, xx = l % 4 + j;
                         out.v[out.ravel({s, ch, y, xx})] += h[0].at({s, r, l});
                     }
             return out;
         },
         true});
}

} // namespace op_cases
