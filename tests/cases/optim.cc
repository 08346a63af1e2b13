// The op harness's cases: the fused optimizer steps.
#include "cases.h"

namespace op_cases {

// Two optimizer steps on p with gradient g (from d sum(p * g) / dp) each time.
nb_tensor *two_steps(const Tensors &t, const std::function<nb_optimizer *(nb_tensor *)> &make) {
    T p(nb_clone(t[0]));
    if (!p.t || nb_set_requires_grad(p, true) != NB_OK) return nullptr;
    nb_optimizer *opt = make(p);
    if (!opt) return nullptr;
    bool ok = true;
    for (int step = 0; step < 2 && ok; step++) {
        nb_optimizer_zero_grad(opt);
        T y(nb_mul(p, t[1]));
        T loss(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
        ok = loss.t && nb_backward(loss, nullptr, false) == NB_OK && nb_optimizer_step(opt) == NB_OK;
    }
    nb_optimizer_free(opt);
    return ok ? nb_detach(p) : nullptr;
}

void optimizer_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{3, 4}, {3, 4}}, {{5}, {5}}};
    for (bool nesterov : {false, true}) {
        add({NB_OP_SGD_STEP, nesterov ? "sgd_nesterov" : "sgd_momentum", {F(-1, 1), F(-1, 1)}, shapes,
             FLOATS,
             [nesterov](const Tensors &t) {
                 return two_steps(t, [nesterov](nb_tensor *p) { return nb_sgd_create(&p, 1, 0.1, 0.9, 0.01, nesterov); });
             },
             [nesterov](const std::vector<Host> &h) {
                 Host p = h[0];
                 std::vector<double> buf(p.numel());
                 for (int step = 0; step < 2; step++)
                     for (int64_t i = 0; i < p.numel(); i++) {
                         double g = h[1].v[i] + 0.01 * p.v[i];
                         buf[i] = step == 0 ? g : 0.9 * buf[i] + g;
                         p.v[i] -= 0.1 * (nesterov ? g + 0.9 * buf[i] : buf[i]);
                     }
                 return p;
             },
             false, 3});
    }
    add({NB_OP_SGD_STEP, "sgd_plain", {F(-1, 1), F(-1, 1)}, shapes, FLOATS,
         [](const Tensors &t) { return two_steps(t, [](nb_tensor *p) { return nb_sgd_create(&p, 1, 0.5, 0, 0, false); }); },
         [](const std::vector<Host> &h) {
             Host p = h[0];
             for (int64_t i = 0; i < p.numel(); i++) p.v[i] -= 2 * 0.5 * h[1].v[i];
             return p;
         },
         false, 3});
    for (bool decoupled : {false, true}) {
        add({NB_OP_ADAM_STEP, decoupled ? "adamw" : "adam", {F(-1, 1), F(-1, 1)}, shapes, FLOATS,
             [decoupled](const Tensors &t) {
                 return two_steps(t, [decoupled](nb_tensor *p) {
                     return decoupled ? nb_adamw_create(&p, 1, 0.1, 0.9, 0.99, 1e-8, 0.1)
                                      : nb_adam_create(&p, 1, 0.1, 0.9, 0.99, 1e-8, 0.1);
                 });
             },
             [decoupled](const std::vector<Host> &h) {
                 Host p = h[0];
                 std::vector<double> m(p.numel()), v(p.numel());
                 for (int step = 1; step <= 2; step++)
                     for (int64_t i = 0; i < p.numel(); i++) {
                         double g = h[1].v[i];
                         if (decoupled) p.v[i] *= 1 - 0.1 * 0.1;
                         else g += 0.1 * p.v[i];
                         m[i] = 0.9 * m[i] + 0.1 * g;
                         v[i] = 0.99 * v[i] + 0.01 * g * g;
                         double mhat = m[i] / (1 - std::pow(0.9, step)), vhat = v[i] / (1 - std::pow(0.99, step));
                         p.v[i] -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
                     }
                 return p;
             },
             false, 3});
    }
}

} // namespace op_cases
