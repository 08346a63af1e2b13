// The op harness's cases: the fused losses.
#include "cases.h"

namespace op_cases {

// Cross-entropy per row: (1 - s)(lse - x[t]) + s(lse - mean x), 0 if ignored.
Host cross_entropy_rows(const Host &x, const Host &t, double s, int64_t ignore) {
    int64_t n = x.shape[0], c = x.shape[1];
    Host out({n});
    for (int64_t i = 0; i < n; i++) {
        if ((int64_t)t.v[i] == ignore) continue;
        double m = -INFINITY, sum = 0, total = 0;
        for (int64_t j = 0; j < c; j++) m = std::max(m, x.v[i * c + j]);
        for (int64_t j = 0; j < c; j++) sum += std::exp(x.v[i * c + j] - m), total += x.v[i * c + j];
        double lse = m + std::log(sum);
        out.v[i] = (1 - s) * (lse - x.v[i * c + (int64_t)t.v[i]]) + s * (lse - total / c);
    }
    return out;
}


void loss_cases() {
    struct Config {
        nb_reduction reduction;
        double smoothing;
        int64_t ignore;
        const char *name;
    };
    // a batch whose every row is ignored has a NaN mean loss and zero
    // gradients (as PyTorch): the finite differences cannot check that, so
    // the batches here have several rows
    const std::vector<std::vector<Shape>> shapes = {{{5, 7}, {5}}, {{6, 3}, {6}}, {{4, 1}, {4}}};
    for (Config k : std::vector<Config>{{NB_REDUCTION_MEAN, 0, -100, "mean"},
                                        {NB_REDUCTION_SUM, 0.1, -100, "sum_smoothed"},
                                        {NB_REDUCTION_NONE, 0.2, 2, "none_ignore2"},
                                        {NB_REDUCTION_MEAN, 0, 1, "mean_ignore1"}}) {
        add({NB_OP_CROSS_ENTROPY, std::string("cross_entropy_") + k.name, {F(-3, 3), IDX(1)}, shapes,
             FLOATS, [k](const Tensors &t) {
                 return nb_cross_entropy(t[0], t[1], k.reduction, k.smoothing, k.ignore);
             },
             [k](const std::vector<Host> &h) {
                 Host rows = cross_entropy_rows(h[0], h[1], k.smoothing, k.ignore);
                 if (k.reduction == NB_REDUCTION_NONE) return rows;
                 double sum = 0, counted = 0;
                 for (int64_t i = 0; i < rows.numel(); i++) {
                     sum += rows.v[i];
                     counted += (int64_t)h[1].v[i] != k.ignore;
                 }
                 return Host({}, {k.reduction == NB_REDUCTION_SUM ? sum : sum / counted});
             },
             true});
    }
    // the fused backward kernel, reached through autograd
    add({NB_OP_CROSS_ENTROPY_BACKWARD, "cross_entropy_backward", {F(-3, 3), IDX(1)}, shapes, FLOATS,
         [](const Tensors &t) -> nb_tensor * {
             T leaf(nb_detach(t[0]));
             if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
             T loss(nb_cross_entropy(leaf, t[1], NB_REDUCTION_SUM, 0.1, 1));
             if (!loss.t || nb_backward(loss, nullptr, false) != NB_OK) return nullptr;
             return nb_grad(leaf);
         },
         [](const std::vector<Host> &h) {
             const Host &x = h[0];
             int64_t n = x.shape[0], c = x.shape[1];
             Host g(x.shape);
             for (int64_t i = 0; i < n; i++) {
                 int64_t t = (int64_t)h[1].v[i];
                 if (t == 1) continue;
                 double m = -INFINITY, sum = 0;
                 for (int64_t j = 0; j < c; j++) m = std::max(m, x.v[i * c + j]);
                 for (int64_t j = 0; j < c; j++) sum += std::exp(x.v[i * c + j] - m);
                 for (int64_t j = 0; j < c; j++)
                     g.v[i * c + j] = std::exp(x.v[i * c + j] - m) / sum - 0.1 / c - (j == t ? 0.9 : 0);
             }
             return g;
         },
         false});
}

} // namespace op_cases
