// The op harness's cases: BatchNorm, GroupNorm, LayerNorm and RMSNorm.
#include "cases.h"

namespace op_cases {

// (x - mean) / sqrt(var + eps) * w + b per channel (dim 1) of x, the
// statistics over every other dim (batch_norm) or given per channel.
Host channel_norm_ref(const Host &x, const std::vector<double> &mean, const std::vector<double> &var,
                      const Host *w, const Host *b, double eps) {
    Host out(x.shape);
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t c = x.unravel(i)[1];
        out.v[i] = (x.v[i] - mean[c]) / std::sqrt(var[c] + eps) * (w ? w->v[c] : 1) + (b ? b->v[c] : 0);
    }
    return out;
}

// Per-channel (dim 1) batch mean and biased variance of x.
void batch_stats(const Host &x, std::vector<double> &mean, std::vector<double> &var) {
    int64_t c = x.shape[1];
    std::vector<double> count(c);
    mean.assign(c, 0);
    var.assign(c, 0);
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        mean[k] += x.v[i];
        count[k]++;
    }
    for (int64_t k = 0; k < c; k++) mean[k] /= count[k];
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        var[k] += (x.v[i] - mean[k]) * (x.v[i] - mean[k]) / count[k];
    }
}

// BatchNorm's gradients in training for the incoming gradient r, written
// out per element in double: dx = w / sqrt(var + eps) (r - mean(r) -
// xhat mean(r xhat)) per channel, then dw = sum r xhat and db = sum r,
// flattened one after the other (eps 1e-5).
Host batch_norm_grads_ref(const Host &x, const Host &w, const Host &r) {
    std::vector<double> mean, var;
    batch_stats(x, mean, var);
    int64_t c = x.shape[1];
    double n = (double)(x.numel() / c);
    std::vector<double> sum_r(c), sum_rx(c);
    auto xhat = [&](int64_t i, int64_t k) { return (x.v[i] - mean[k]) / std::sqrt(var[k] + 1e-5); };
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        sum_r[k] += r.v[i];
        sum_rx[k] += r.v[i] * xhat(i, k);
    }
    Host out({x.numel() + 2 * c});
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        out.v[i] = w.v[k] / std::sqrt(var[k] + 1e-5) * (r.v[i] - sum_r[k] / n - xhat(i, k) * sum_rx[k] / n);
    }
    std::copy(sum_rx.begin(), sum_rx.end(), out.v.begin() + x.numel());
    std::copy(sum_r.begin(), sum_r.end(), out.v.begin() + x.numel() + c);
    return out;
}

void norm_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{4, 3, 5}, {3}, {3}}, {{6, 2}, {2}, {2}},
                                                   {{2, 3, 2, 2}, {3}, {3}}};
    auto train = [](const Tensors &t) { return nb_batch_norm(t[0], nullptr, nullptr, t[1], t[2], true, 0.1, 1e-5); };
    auto train_ref = [](const std::vector<Host> &h) {
        std::vector<double> mean, var;
        batch_stats(h[0], mean, var);
        return channel_norm_ref(h[0], mean, var, &h[1], &h[2], 1e-5);
    };
    add({NB_OP_BATCH_NORM, "batch_norm_train", {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, shapes, FLOATS, train,
         train_ref, true, 3});
    // the stage kernels: statistics and normalization run in every training forward
    for (nb_op op : {NB_OP_BATCH_NORM_STATS, NB_OP_BATCH_NORM_APPLY})
        add({op, nb_op_name(op), {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, shapes, FLOATS, train, train_ref, false, 3});
    // the backward stages, through autograd with an incoming gradient r:
    // dweight = sum r xhat (the reduce stage), dx from the apply stage
    for (nb_op op : {NB_OP_BATCH_NORM_BACKWARD_REDUCE, NB_OP_BATCH_NORM_BACKWARD_APPLY}) {
        bool input = op == NB_OP_BATCH_NORM_BACKWARD_APPLY;
        add({op, nb_op_name(op), {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)},
             {{{4, 3, 5}, {3}, {3}, {4, 3, 5}}, {{2, 3, 2, 2}, {3}, {3}, {2, 3, 2, 2}}}, {NB_F32, NB_F64},
             [input](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1]));
                 if (nb_set_requires_grad(x, true) != NB_OK || nb_set_requires_grad(w, true) != NB_OK) return nullptr;
                 T y(nb_batch_norm(x, nullptr, nullptr, w, t[2], true, 0.1, 1e-5));
                 if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
                 return nb_grad(input ? x : w);
             },
             [input](const std::vector<Host> &h) {
                 Host all = batch_norm_grads_ref(h[0], h[1], h[3]);
                 int64_t n = h[0].numel(), c = h[0].shape[1];
                 Host out(input ? h[0].shape : Shape{c});
                 std::copy(all.v.begin() + (input ? 0 : n), all.v.begin() + (input ? n : n + c), out.v.begin());
                 return out;
             },
             false, 3});
    }
    add({NB_OP_BATCH_NORM, "batch_norm_eval", {F(-2, 2), F(-1, 1), F(0.5, 2), F(0.5, 1.5), F(-1, 1)},
         {{{4, 3, 5}, {3}, {3}, {3}, {3}}}, FLOATS,
         [](const Tensors &t) { return nb_batch_norm(t[0], t[1], t[2], t[3], t[4], false, 0.1, 1e-3); },
         [](const std::vector<Host> &h) { return channel_norm_ref(h[0], h[1].v, h[2].v, &h[3], &h[4], 1e-3); },
         true, 3});
    add({NB_OP_GROUP_NORM, "group_norm", {F(-2, 2), F(0.5, 1.5), F(-1, 1)},
         {{{2, 4, 3}, {4}, {4}}, {{3, 6, 2, 2}, {6}, {6}}}, FLOATS,
         [](const Tensors &t) { return nb_group_norm(t[0], 2, t[1], t[2], 1e-5); },
         [](const std::vector<Host> &h) {
             const Host &x = h[0];
             int64_t n = x.shape[0], c = x.shape[1], per = x.numel() / n / c, g = 2;
             Host out(x.shape);
             for (int64_t s = 0; s < n; s++)
                 for (int64_t k = 0; k < g; k++) {
                     int64_t first = (s * c + k * (c / g)) * per, len = (c / g) * per;
                     double mean = 0, var = 0;
                     for (int64_t i = 0; i < len; i++) mean += x.v[first + i] / len;
                     for (int64_t i = 0; i < len; i++) var += (x.v[first + i] - mean) * (x.v[first + i] - mean) / len;
                     for (int64_t i = 0; i < len; i++) {
                         int64_t ch = k * (c / g) + i / per;
                         out.v[first + i] = (x.v[first + i] - mean) / std::sqrt(var + 1e-5) * h[1].v[ch] + h[2].v[ch];
                     }
                 }
             return out;
         },
         true, 3});
}

// layer_norm (rms false) or rms_norm of x over rows of D = w's size, in
// double: y, and with r the incoming gradient, dx, dw and db (flattened,
// one after the other) from the formulas written out per element.
Host row_norm_ref(const Host &x, const Host &w, const Host *b, bool rms, const Host *r) {
    int64_t d = w.numel(), rows = x.numel() / d;
    Host y(x.shape), grads({x.numel() + 2 * d});
    for (int64_t row = 0; row < rows; row++) {
        const double *xs = &x.v[row * d];
        double mean = 0, var = 0;
        for (int64_t k = 0; k < d && !rms; k++) mean += xs[k] / d;
        for (int64_t k = 0; k < d; k++) var += (xs[k] - mean) * (xs[k] - mean) / d;
        double rstd = 1 / std::sqrt(var + 1e-5);
        for (int64_t k = 0; k < d; k++) y.v[row * d + k] = (xs[k] - mean) * rstd * w.v[k] + (b ? b->v[k] : 0);
        if (!r) continue;
        // dx_k = sum_j dy_j/dx_k r_j, with dy_j/dx_k = w_j rstd (delta_jk - [!rms] / d - xhat_j xhat_k / d)
        for (int64_t k = 0; k < d; k++) {
            double xk = (xs[k] - mean) * rstd, dx = 0;
            for (int64_t j = 0; j < d; j++) {
                double xj = (xs[j] - mean) * rstd;
                dx += r->v[row * d + j] * w.v[j] * rstd * ((j == k) - (rms ? 0.0 : 1.0 / d) - xj * xk / d);
            }
            grads.v[row * d + k] = dx;
            grads.v[x.numel() + k] += r->v[row * d + k] * xk;
            grads.v[x.numel() + d + k] += r->v[row * d + k];
        }
    }
    return r ? grads : y;
}

void row_norm_cases() {
    // normalized over the weight's dims: one (x [3, 5], [2, 3, 4]) or two (x [2, 3, 4], w [3, 4])
    const std::vector<std::vector<Shape>> shapes = {{{3, 5}, {5}, {5}}, {{2, 3, 4}, {4}, {4}},
                                                   {{2, 3, 4}, {3, 4}, {3, 4}}, {{0, 4}, {4}, {4}}};
    for (bool rms : {false, true}) {
        nb_op op = rms ? NB_OP_RMS_NORM : NB_OP_LAYER_NORM;
        auto run = [rms](const Tensors &t) {
            return rms ? nb_rms_norm(t[0], nb_ndim(t[1]), t[1], 1e-5) : nb_layer_norm(t[0], nb_ndim(t[1]), t[1], t[2], 1e-5);
        };
        std::vector<std::vector<Shape>> variants = shapes;
        std::vector<Input> inputs = {F(-2, 2), F(0.5, 1.5), F(-1, 1)};
        if (rms) { // no bias
            inputs.pop_back();
            for (auto &v : variants) v.pop_back();
        }
        add({op, nb_op_name(op), inputs, variants, FLOATS, run,
             [rms](const std::vector<Host> &h) { return row_norm_ref(h[0], h[1], rms ? nullptr : &h[2], rms, nullptr); },
             true, 3});
        // the backward kernel through autograd with an incoming gradient r: dx, dw, db flattened
        nb_op backward = rms ? NB_OP_RMS_NORM_BACKWARD : NB_OP_LAYER_NORM_BACKWARD;
        add({backward, nb_op_name(backward), {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)},
             {{{3, 5}, {5}, {5}, {3, 5}}, {{2, 3, 4}, {3, 4}, {3, 4}, {2, 3, 4}}}, FLOATS,
             [rms](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1])), b(nb_detach(t[2]));
                 for (nb_tensor *leaf : {x.t, w.t, b.t})
                     if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(rms ? nb_rms_norm(x, nb_ndim(w), w, 1e-5) : nb_layer_norm(x, nb_ndim(w), w, b, 1e-5));
                 if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
                 int64_t flat = -1;
                 T dx(nb_grad(x)), dw(nb_grad(w)), db(rms ? nullptr : nb_grad(b));
                 T parts[3] = {T(nb_reshape(dx, 1, &flat)), T(nb_reshape(dw, 1, &flat)),
                               T(rms ? nullptr : nb_reshape(db, 1, &flat))};
                 const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
                 return nb_cat(rms ? 2 : 3, all, 0);
             },
             [rms](const std::vector<Host> &h) {
                 Host g = row_norm_ref(h[0], h[1], nullptr, rms, &h[3]);
                 if (!rms) return g;
                 Host without_bias({g.numel() - h[1].numel()}); // rms_norm has no bias
                 std::copy(g.v.begin(), g.v.begin() + without_bias.numel(), without_bias.v.begin());
                 return without_bias;
             },
             false, 3});
    }
}

// The same as row_norm_ref in O(D) a row, for the wide rows of
// large_norm_cases: dx = rstd (w r - mean(w r) - xhat mean(w r xhat)), the
// mean term left out for rms_norm.
Host wide_row_norm_ref(const Host &x, const Host &w, const Host *b, bool rms, const Host *r) {
    int64_t d = w.numel(), rows = x.numel() / d;
    Host y(x.shape), grads({x.numel() + 2 * d});
    std::vector<double> xhat(d);
    for (int64_t row = 0; row < rows; row++) {
        const double *xs = &x.v[row * d];
        double mean = 0, var = 0;
        for (int64_t k = 0; k < d && !rms; k++) mean += xs[k] / d;
        for (int64_t k = 0; k < d; k++) var += (xs[k] - mean) * (xs[k] - mean) / d;
        double rstd = 1 / std::sqrt(var + 1e-5), a = 0, c = 0;
        for (int64_t k = 0; k < d; k++) {
            xhat[k] = (xs[k] - mean) * rstd;
            y.v[row * d + k] = xhat[k] * w.v[k] + (b ? b->v[k] : 0);
            if (!r) continue;
            double rw = r->v[row * d + k] * w.v[k];
            a += rms ? 0 : rw / d;
            c += rw * xhat[k] / d;
        }
        for (int64_t k = 0; r && k < d; k++) {
            double rk = r->v[row * d + k];
            grads.v[row * d + k] = rstd * (rk * w.v[k] - a - xhat[k] * c);
            grads.v[x.numel() + k] += rk * xhat[k];
            grads.v[x.numel() + d + k] += rk;
        }
    }
    return r ? grads : y;
}

// Shapes at the GPU's normalization thresholds: rows held in registers (up
// to 16,384 f32 and f16 values forward, 8,192 backward; half that in f64),
// one past them, rows that are not a whole number of 16-byte vectors, and
// more rows than the backward's teams (each then sums several rows' weight
// gradients); BatchNorm planes with and without whole vectors, channels
// split over many blocks, and more channels than a grid's y dim (65,535).
void large_norm_cases() {
    for (bool rms : {false, true}) {
        nb_op op = rms ? NB_OP_RMS_NORM : NB_OP_LAYER_NORM;
        std::vector<std::vector<Shape>> forward, backward;
        for (int64_t d : {64, 1000, 8192, 8194, 16384, 16392}) forward.push_back({{3, d}, {d}, {d}});
        for (int64_t d : {4096, 8192, 8200}) backward.push_back({{3, d}, {d}, {d}, {3, d}});
        backward.push_back({{2000, 64}, {64}, {64}, {2000, 64}});
        add({op, std::string(nb_op_name(op)) + "_wide", {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, forward, FLOATS,
             [rms](const Tensors &t) {
                 return rms ? nb_rms_norm(t[0], 1, t[1], 1e-5) : nb_layer_norm(t[0], 1, t[1], t[2], 1e-5);
             },
             [rms](const std::vector<Host> &h) { return wide_row_norm_ref(h[0], h[1], rms ? nullptr : &h[2], rms, nullptr); },
             false, 3});
        nb_op back = rms ? NB_OP_RMS_NORM_BACKWARD : NB_OP_LAYER_NORM_BACKWARD;
        add({back, std::string(nb_op_name(back)) + "_wide", {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)}, backward,
             FLOATS,
             [rms](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1])), b(nb_detach(t[2]));
                 for (nb_tensor *leaf : {x.t, w.t, b.t})
                     if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(rms ? nb_rms_norm(x, 1, w, 1e-5) : nb_layer_norm(x, 1, w, b, 1e-5));
                 if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
                 int64_t flat = -1;
                 T parts[3] = {T(nb_reshape(T(nb_grad(x)), 1, &flat)), T(nb_reshape(T(nb_grad(w)), 1, &flat)),
                               T(rms ? nullptr : nb_reshape(T(nb_grad(b)), 1, &flat))};
                 const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
                 return nb_cat(rms ? 2 : 3, all, 0);
             },
             [rms](const std::vector<Host> &h) {
                 Host g = wide_row_norm_ref(h[0], h[1], nullptr, rms, &h[3]);
                 if (!rms) return g;
                 Host without_bias({g.numel() - h[1].numel()}); // rms_norm has no bias
                 std::copy(g.v.begin(), g.v.begin() + without_bias.numel(), without_bias.v.begin());
                 return without_bias;
             },
             false, 3});
    }
    const std::vector<std::vector<Shape>> batches = {{{4, 3, 40, 40}, {3}, {3}}, {{2, 5, 33}, {5}, {5}},
                                                    {{300, 4}, {4}, {4}},          {{64, 16, 8, 8}, {16}, {16}},
                                                    {{4, 66000}, {66000}, {66000}}};
    add({NB_OP_BATCH_NORM, "batch_norm_train_large", {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, batches, FLOATS,
         [](const Tensors &t) { return nb_batch_norm(t[0], nullptr, nullptr, t[1], t[2], true, 0.1, 1e-5); },
         [](const std::vector<Host> &h) {
             std::vector<double> mean, var;
             batch_stats(h[0], mean, var);
             return channel_norm_ref(h[0], mean, var, &h[1], &h[2], 1e-5);
         },
         false, 3});
    std::vector<std::vector<Shape>> with_grad;
    for (const auto &v : batches) with_grad.push_back({v[0], v[1], v[2], v[0]});
    add({NB_OP_BATCH_NORM_BACKWARD_APPLY, "batch_norm_backward_large", {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)},
         with_grad, FLOATS,
         [](const Tensors &t) -> nb_tensor * {
             T x(nb_detach(t[0])), w(nb_detach(t[1])), b(nb_detach(t[2]));
             for (nb_tensor *leaf : {x.t, w.t, b.t})
                 if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
             T y(nb_batch_norm(x, nullptr, nullptr, w, b, true, 0.1, 1e-5));
             if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
             int64_t flat = -1;
             T parts[3] = {T(nb_reshape(T(nb_grad(x)), 1, &flat)), T(nb_reshape(T(nb_grad(w)), 1, &flat)),
                           T(nb_reshape(T(nb_grad(b)), 1, &flat))};
             const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
             return nb_cat(3, all, 0);
         },
         [](const std::vector<Host> &h) { return batch_norm_grads_ref(h[0], h[1], h[3]); },
         false, 3});
}

} // namespace op_cases
