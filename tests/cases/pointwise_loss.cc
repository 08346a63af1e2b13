// The op harness's cases: the elementwise losses against their formulas
// written out here in double, each reduction, broadcast operands, and the
// fused backward against derivatives written out the same way.
#include "cases.h"

namespace op_cases {

namespace {

double sigmoid(double a) { return 1 / (1 + std::exp(-a)); }
double log_clamped(double v) { return std::max(std::log(v), -100.0); }

// torchvision's sigmoid_focal_loss written out; alpha < 0: no weighting.
double focal(double x, double y, double alpha, double gamma) {
    double s = sigmoid(x), pt = s * y + (1 - s) * (1 - y);
    double ce = -(y * std::log(s) + (1 - y) * std::log(1 - s));
    double at = alpha < 0 ? 1 : alpha * y + (1 - alpha) * (1 - y);
    return at * std::pow(1 - pt, gamma) * ce;
}

// d f / dx by a central difference in double (f smooth, h small against x's range).
double central(const std::function<double(double)> &f, double x) {
    const double h = 1e-5;
    return (f(x + h) - f(x - h)) / (2 * h);
}

// One loss: its call, its formula per element of (x, y, c), and the derivative
// with respect to x.
struct Loss {
    nb_op op;
    std::string name;
    std::function<nb_tensor *(const Tensors &, nb_reduction)> fn;
    std::function<double(double, double, double)> f, dfdx;
    std::vector<Input> inputs;
};

Host reduce(const Host &losses, nb_reduction reduction) {
    if (reduction == NB_REDUCTION_NONE) return losses;
    double sum = std::accumulate(losses.v.begin(), losses.v.end(), 0.0);
    if (reduction == NB_REDUCTION_SUM) return Host({}, {sum});
    if (reduction == NB_REDUCTION_MEAN) return Host({}, {sum / (double)losses.numel()});
    return Host({}, {sum / (double)(losses.shape.empty() ? 1 : losses.shape[0])});
}

} // namespace

void pointwise_loss_cases() {
    using R = nb_reduction;
    const std::vector<Loss> losses = {
        {NB_OP_BINARY_CROSS_ENTROPY, "binary_cross_entropy",
         [](const Tensors &t, R r) { return nb_binary_cross_entropy(t[0], t[1], nullptr, r); },
         [](double x, double y, double) { return -(y * log_clamped(x) + (1 - y) * log_clamped(1 - x)); },
         [](double x, double y, double) { return (x - y) / std::max(x * (1 - x), 1e-12); },
         {F(0.05, 0.95), F(0, 1)}},
        {NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS, "bce_with_logits",
         [](const Tensors &t, R r) { return nb_binary_cross_entropy_with_logits(t[0], t[1], nullptr, nullptr, r); },
         [](double x, double y, double) { return -(y * std::log(sigmoid(x)) + (1 - y) * std::log(1 - sigmoid(x))); },
         [](double x, double y, double) { return sigmoid(x) - y; }, {F(-4, 4), F(0, 1)}},
        {NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS, "bce_with_logits_pos_weight",
         [](const Tensors &t, R r) { return nb_binary_cross_entropy_with_logits(t[0], t[1], nullptr, t[2], r); },
         [](double x, double y, double c) {
             return -(c * y * std::log(sigmoid(x)) + (1 - y) * std::log(1 - sigmoid(x)));
         },
         [](double x, double y, double c) { return -c * y * (1 - sigmoid(x)) + (1 - y) * sigmoid(x); },
         {F(-4, 4), F(0, 1), F(0.5, 3)}},
        {NB_OP_MSE_LOSS, "mse_loss", [](const Tensors &t, R r) { return nb_mse_loss(t[0], t[1], r); },
         [](double x, double y, double) { return (x - y) * (x - y); },
         [](double x, double y, double) { return 2 * (x - y); }, {F(-3, 3), F(-3, 3)}},
        {NB_OP_L1_LOSS, "l1_loss", [](const Tensors &t, R r) { return nb_l1_loss(t[0], t[1], r); },
         [](double x, double y, double) { return std::fabs(x - y); },
         [](double x, double y, double) { return x > y ? 1.0 : x < y ? -1.0 : 0.0; }, {F(-3, 3), F(-3, 3)}},
        {NB_OP_HUBER_LOSS, "huber_loss", [](const Tensors &t, R r) { return nb_huber_loss(t[0], t[1], 0.8, r); },
         [](double x, double y, double) {
             double d = std::fabs(x - y);
             return d < 0.8 ? 0.5 * d * d : 0.8 * (d - 0.4);
         },
         [](double x, double y, double) { return std::clamp(x - y, -0.8, 0.8); }, {F(-3, 3), F(-3, 3)}},
        {NB_OP_SMOOTH_L1_LOSS, "smooth_l1_loss",
         [](const Tensors &t, R r) { return nb_smooth_l1_loss(t[0], t[1], 0.5, r); },
         [](double x, double y, double) {
             double d = std::fabs(x - y);
             return d < 0.5 ? d * d : d - 0.25;
         },
         [](double x, double y, double) { return std::clamp((x - y) / 0.5, -1.0, 1.0); }, {F(-3, 3), F(-3, 3)}},
        {NB_OP_LOG_COSH_LOSS, "log_cosh_loss", [](const Tensors &t, R r) { return nb_log_cosh_loss(t[0], t[1], r); },
         [](double x, double y, double) { return std::log(std::cosh(x - y)); },
         [](double x, double y, double) { return std::tanh(x - y); }, {F(-3, 3), F(-3, 3)}},
        {NB_OP_MAPE_LOSS, "mape_loss", [](const Tensors &t, R r) { return nb_mape_loss(t[0], t[1], r); },
         [](double x, double y, double) { return 100 * std::fabs(y - x) / std::max(std::fabs(y), 1e-7); },
         [](double x, double y, double) { return 100 * (x > y ? 1 : -1) / std::fabs(y); }, {F(0.5, 3), F(1, 3)}},
        {NB_OP_MSLE_LOSS, "msle_loss", [](const Tensors &t, R r) { return nb_msle_loss(t[0], t[1], r); },
         [](double x, double y, double) {
             double a = std::log(x + 1) - std::log(y + 1);
             return a * a;
         },
         [](double x, double y, double) { return 2 * (std::log(x + 1) - std::log(y + 1)) / (x + 1); },
         {F(0.1, 3), F(0.1, 3)}},
        {NB_OP_POISSON_NLL_LOSS, "poisson_nll_loss",
         [](const Tensors &t, R r) { return nb_poisson_nll_loss(t[0], t[1], true, false, 1e-8, r); },
         [](double x, double y, double) { return std::exp(x) - y * x; },
         [](double x, double y, double) { return std::exp(x) - y; }, {F(-2, 2), F(0, 4)}},
        {NB_OP_POISSON_NLL_LOSS, "poisson_nll_loss_rates_full",
         [](const Tensors &t, R r) { return nb_poisson_nll_loss(t[0], t[1], false, true, 1e-8, r); },
         [](double x, double y, double) {
             double l = x - y * std::log(x + 1e-8);
             return y > 1 ? l + y * std::log(y) - y + 0.5 * std::log(2 * M_PI * y) : l;
         },
         [](double x, double y, double) { return 1 - y / (x + 1e-8); }, {F(0.2, 3), F(0, 4)}},
        {NB_OP_GAUSSIAN_NLL_LOSS, "gaussian_nll_loss",
         [](const Tensors &t, R r) { return nb_gaussian_nll_loss(t[0], t[1], t[2], true, 1e-6, r); },
         [](double x, double y, double v) { return 0.5 * (std::log(v) + (x - y) * (x - y) / v + std::log(2 * M_PI)); },
         [](double x, double y, double v) { return (x - y) / v; }, {F(-3, 3), F(-3, 3), F(0.3, 2)}},
        {NB_OP_KL_DIV, "kl_div", [](const Tensors &t, R r) { return nb_kl_div(t[0], t[1], false, r); },
         [](double x, double y, double) { return y * (std::log(y) - x); },
         [](double, double y, double) { return -y; }, {F(-3, 0), F(0.05, 1)}},
        {NB_OP_KL_DIV, "kl_div_log_target", [](const Tensors &t, R r) { return nb_kl_div(t[0], t[1], true, r); },
         [](double x, double y, double) { return std::exp(y) * (y - x); },
         [](double, double y, double) { return -std::exp(y); }, {F(-3, 0), F(-3, 0)}},
        {NB_OP_HINGE_LOSS, "hinge_loss", [](const Tensors &t, R r) { return nb_hinge_loss(t[0], t[1], r); },
         [](double x, double y, double) { return std::max(0.0, 1 - x * y); },
         [](double x, double y, double) { return 1 - x * y > 0 ? -y : 0.0; }, {F(-2, 2), F(-1, 1)}},
        {NB_OP_SQUARED_HINGE_LOSS, "squared_hinge_loss",
         [](const Tensors &t, R r) { return nb_squared_hinge_loss(t[0], t[1], r); },
         [](double x, double y, double) { return std::pow(std::max(0.0, 1 - x * y), 2); },
         [](double x, double y, double) { return -2 * y * std::max(0.0, 1 - x * y); }, {F(-2, 2), F(-1, 1)}},
        {NB_OP_MARGIN_RANKING_LOSS, "margin_ranking_loss",
         [](const Tensors &t, R r) { return nb_margin_ranking_loss(t[0], t[1], t[2], 0.3, r); },
         [](double x, double y, double c) { return std::max(0.0, 0.3 - c * (x - y)); },
         [](double x, double y, double c) { return 0.3 - c * (x - y) > 0 ? -c : 0.0; }, {F(-2, 2), F(-2, 2), F(-1, 1)}},
        {NB_OP_FOCAL_LOSS, "sigmoid_focal_loss",
         [](const Tensors &t, R r) { return nb_sigmoid_focal_loss(t[0], t[1], 0.25, 2, r); },
         [](double x, double y, double) { return focal(x, y, 0.25, 2); },
         [](double x, double y, double) { return central([y](double v) { return focal(v, y, 0.25, 2); }, x); },
         {F(-4, 4), F(0, 1)}},
        {NB_OP_FOCAL_LOSS, "sigmoid_focal_loss_unweighted",
         [](const Tensors &t, R r) { return nb_sigmoid_focal_loss(t[0], t[1], -1, 0.5, r); },
         [](double x, double y, double) { return focal(x, y, -1, 0.5); },
         [](double x, double y, double) { return central([y](double v) { return focal(v, y, -1, 0.5); }, x); },
         {F(-4, 4), F(0, 1)}},
    };
    auto shapes_for = [](size_t n) {
        std::vector<std::vector<Shape>> s = {{{3, 5}, {3, 5}}, {{4, 1, 3}, {2, 3}}, {{7}, {}}, {{2, 300}, {2, 300}}};
        for (auto &v : s) {
            if (n == 3) v.push_back({v.front().back()}); // the third operand per class (last dim)
            if (n == 3 && v[2].empty()) v[2] = {1};
        }
        return s;
    };
    auto element = [](const Loss &l, const std::vector<Host> &h, const Host &out, int64_t i,
                      const std::function<double(double, double, double)> &f) {
        auto idx = out.unravel(i);
        double c = h.size() > 2 ? h[2].broadcast_at(idx) : 1;
        (void)l;
        return f(h[0].broadcast_at(idx), h[1].broadcast_at(idx), c);
    };
    const std::vector<std::pair<R, const char *>> reductions = {
        {NB_REDUCTION_MEAN, "mean"}, {NB_REDUCTION_SUM, "sum"}, {NB_REDUCTION_NONE, "none"},
        {NB_REDUCTION_BATCHMEAN, "batchmean"}};
    for (const Loss &l : losses) {
        for (const auto &[reduction, tag] : reductions) {
            if (reduction == NB_REDUCTION_BATCHMEAN && l.op != NB_OP_KL_DIV) continue;
            add({l.op, l.name + "_" + tag, l.inputs, shapes_for(l.inputs.size()), FLOATS,
                 [l, reduction = reduction](const Tensors &t) { return l.fn(t, reduction); },
                 [l, reduction = reduction, element](const std::vector<Host> &h) {
                     Shape shape;
                     for (const Host &x : h) shape = broadcast_shape(shape, x.shape);
                     Host out(shape);
                     for (int64_t i = 0; i < out.numel(); i++) out.v[i] = element(l, h, out, i, l.f);
                     return reduce(out, reduction);
                 },
                 true, 4});
        }
        // the fused backward: d sum(loss) / d input
        add({NB_OP_POINTWISE_LOSS_BACKWARD, l.name + "_backward", l.inputs, {shapes_for(l.inputs.size())[0]},
             FLOATS,
             [l](const Tensors &t) -> nb_tensor * {
                 T leaf(nb_detach(t[0]));
                 if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 Tensors in = t;
                 in[0] = leaf;
                 T loss(l.fn(in, NB_REDUCTION_SUM));
                 if (!loss.t || nb_backward(loss, nullptr, false) != NB_OK) return nullptr;
                 return nb_grad(leaf);
             },
             [l, element](const std::vector<Host> &h) {
                 Host out(h[0].shape);
                 for (int64_t i = 0; i < out.numel(); i++) out.v[i] = element(l, h, out, i, l.dfdx);
                 return out;
             },
             false, 4});
    }
    // weight scales each loss before the reduction
    add({NB_OP_BINARY_CROSS_ENTROPY, "binary_cross_entropy_weighted", {F(0.05, 0.95), F(0, 1), F(0, 2)},
         {{{3, 4}, {3, 4}, {4}}}, FLOATS,
         [](const Tensors &t) { return nb_binary_cross_entropy(t[0], t[1], t[2], NB_REDUCTION_MEAN); },
         [](const std::vector<Host> &h) {
             Host out(h[0].shape);
             for (int64_t i = 0; i < out.numel(); i++) {
                 double x = h[0].v[i], y = h[1].v[i];
                 out.v[i] = -h[2].v[i % 4] * (y * std::log(x) + (1 - y) * std::log(1 - x));
             }
             return reduce(out, NB_REDUCTION_MEAN);
         },
         true, 4});
}

} // namespace op_cases
