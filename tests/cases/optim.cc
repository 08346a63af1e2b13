// The op harness's cases: the fused optimizer step of every rule, three steps
// against the update written out here in double (PyTorch's documented
// algorithms; Keras's FTRL).
#include <cmath>

#include "cases.h"

namespace op_cases {

// steps optimizer steps on p with gradient g (from d sum(p * g) / dp) each time.
nb_tensor *run_steps(const Tensors &t, nb_optimizer_kind kind, const nb_optim_options &o, int steps) {
    T p(nb_clone(t[0]));
    if (!p.t || nb_set_requires_grad(p, true) != NB_OK) return nullptr;
    nb_tensor *params[] = {p};
    nb_param_group group = {params, 1, o};
    nb_optimizer *opt = nb_optimizer_create(kind, &group, 1);
    if (!opt) return nullptr;
    bool ok = true;
    for (int step = 0; step < steps && ok; step++) {
        nb_optimizer_zero_grad(opt);
        T y(nb_mul(p, t[1]));
        T loss(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
        ok = loss.t && nb_backward(loss, nullptr, false) == NB_OK && nb_optimizer_step(opt) == NB_OK;
    }
    nb_optimizer_free(opt);
    return ok ? nb_detach(p) : nullptr;
}

// One rule's state for one element, and the step t (from 1).
struct Slots {
    double s0 = 0, s1 = 0, s2 = 0;
};

double sign(double x) { return (x > 0) - (x < 0); }

// NAdam's momentum coefficient of step t.
double nadam_mu(const nb_optim_options &o, int t) { return o.beta1 * (1 - 0.5 * std::pow(0.96, t * o.momentum_decay)); }

// p after step t of kind with options o (every value explicit), gradient g;
// mu_product: NAdam's product of mu_1 ... mu_t.
double reference_update(nb_optimizer_kind kind, const nb_optim_options &o, int t, double p, double g, Slots &s,
                        double mu_product) {
    if (o.maximize) g = -g;
    bool decoupled = kind == NB_OPTIM_ADAMW || kind == NB_OPTIM_LION || o.decoupled_weight_decay;
    if (decoupled) p *= 1 - o.lr * o.weight_decay;
    else g += o.weight_decay * p;
    double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    switch (kind) {
    case NB_OPTIM_SGD:
        if (o.momentum > 0) {
            s.s0 = t == 1 ? g : o.momentum * s.s0 + (1 - o.dampening) * g;
            g = o.nesterov ? g + o.momentum * s.s0 : s.s0;
        }
        return p - o.lr * g;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW: {
        s.s0 = o.beta1 * s.s0 + (1 - o.beta1) * g;
        s.s1 = o.beta2 * s.s1 + (1 - o.beta2) * g * g;
        s.s2 = std::max(s.s2, s.s1);
        double v = o.amsgrad ? s.s2 : s.s1;
        return p - o.lr / bc1 * s.s0 / (std::sqrt(v) / std::sqrt(bc2) + o.eps);
    }
    case NB_OPTIM_ADAGRAD: {
        double clr = o.lr / (1 + (t - 1) * o.lr_decay);
        s.s0 += g * g;
        return p - clr * g / (std::sqrt(s.s0) + o.eps);
    }
    case NB_OPTIM_ADADELTA: {
        s.s0 = o.rho * s.s0 + (1 - o.rho) * g * g;
        double delta = std::sqrt(s.s1 + o.eps) / std::sqrt(s.s0 + o.eps) * g;
        s.s1 = o.rho * s.s1 + (1 - o.rho) * delta * delta;
        return p - o.lr * delta;
    }
    case NB_OPTIM_RMSPROP: {
        s.s0 = o.alpha * s.s0 + (1 - o.alpha) * g * g;
        double avg = std::sqrt(s.s0) + o.eps;
        if (o.centered) {
            s.s2 = o.alpha * s.s2 + (1 - o.alpha) * g;
            avg = std::sqrt(s.s0 - s.s2 * s.s2) + o.eps;
        }
        if (o.momentum == 0) return p - o.lr * g / avg;
        s.s1 = o.momentum * s.s1 + g / avg;
        return p - o.lr * s.s1;
    }
    case NB_OPTIM_ADAMAX:
        s.s0 = o.beta1 * s.s0 + (1 - o.beta1) * g;
        s.s1 = std::max(o.beta2 * s.s1, std::fabs(g) + o.eps);
        return p - o.lr / bc1 * s.s0 / s.s1;
    case NB_OPTIM_NADAM: {
        double mu = nadam_mu(o, t), mu_next = nadam_mu(o, t + 1), product = mu_product;
        s.s0 = o.beta1 * s.s0 + (1 - o.beta1) * g;
        s.s1 = o.beta2 * s.s1 + (1 - o.beta2) * g * g;
        double denom = std::sqrt(s.s1 / bc2) + o.eps;
        return p - o.lr * (1 - mu) / (1 - product) * g / denom -
               o.lr * mu_next / (1 - product * mu_next) * s.s0 / denom;
    }
    case NB_OPTIM_RADAM: {
        s.s0 = o.beta1 * s.s0 + (1 - o.beta1) * g;
        s.s1 = o.beta2 * s.s1 + (1 - o.beta2) * g * g;
        double m = s.s0 / bc1, rho_inf = 2 / (1 - o.beta2) - 1;
        double rho_t = rho_inf - 2 * t * std::pow(o.beta2, t) / bc2;
        if (rho_t <= 5) return p - o.lr * m;
        double rect = std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
        return p - o.lr * m * rect * std::sqrt(bc2) / (std::sqrt(s.s1) + o.eps);
    }
    case NB_OPTIM_LION: {
        double c = o.beta1 * s.s0 + (1 - o.beta1) * g;
        s.s0 = o.beta2 * s.s0 + (1 - o.beta2) * g;
        return p - o.lr * sign(c);
    }
    default: { // FTRL, Keras's update
        double n = s.s0 + g * g, power = -o.lr_power;
        s.s1 += g - (std::pow(n, power) - std::pow(s.s0, power)) / o.lr * p;
        s.s0 = n;
        double quadratic = std::pow(n, power) / o.lr + 2 * (o.l2 + o.beta / (2 * o.lr));
        double clipped = std::min(std::max(s.s1, -o.l1), o.l1);
        return (clipped - s.s1) / quadratic;
    }
    }
}

Host reference_steps(nb_optimizer_kind kind, const nb_optim_options &o, const std::vector<Host> &h, int steps) {
    Host p = h[0];
    double init = kind == NB_OPTIM_ADAGRAD || kind == NB_OPTIM_FTRL ? o.initial_accumulator_value : 0;
    std::vector<Slots> slots(p.numel(), Slots{init, 0, 0});
    double mu_product = 1;
    for (int t = 1; t <= steps; t++) {
        mu_product *= nadam_mu(o, t);
        for (int64_t i = 0; i < p.numel(); i++)
            p.v[i] = reference_update(kind, o, t, p.v[i], h[1].v[i], slots[i], mu_product);
    }
    return p;
}

struct OptimCase {
    const char *name;
    nb_optimizer_kind kind;
    nb_optim_options options;  // given to nabla (0 takes the default)
    nb_optim_options explicit_; // the same with every default written out
};

void optimizer_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{3, 4}, {3, 4}}, {{5}, {5}}};
    const double z = NB_OPTIM_ZERO;
    const std::vector<OptimCase> cases = {
        {"sgd_plain", NB_OPTIM_SGD, {.lr = 0.5}, {.lr = 0.5}},
        {"sgd_momentum", NB_OPTIM_SGD, {.lr = 0.1, .weight_decay = 0.01, .momentum = 0.9, .dampening = 0.3},
         {.lr = 0.1, .weight_decay = 0.01, .momentum = 0.9, .dampening = 0.3}},
        {"sgd_nesterov", NB_OPTIM_SGD, {.lr = 0.1, .weight_decay = 0.01, .momentum = 0.9, .nesterov = true},
         {.lr = 0.1, .weight_decay = 0.01, .momentum = 0.9, .nesterov = true}},
        {"adam", NB_OPTIM_ADAM, {.lr = 0.1, .weight_decay = 0.1, .beta2 = 0.99},
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8}},
        {"adam_amsgrad_decoupled", NB_OPTIM_ADAM,
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = z, .amsgrad = true, .decoupled_weight_decay = true},
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = 0, .beta2 = 0.999, .eps = 1e-8, .amsgrad = true,
          .decoupled_weight_decay = true}},
        {"adamw", NB_OPTIM_ADAMW, {.lr = 0.1, .beta2 = 0.99},
         {.lr = 0.1, .weight_decay = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8}},
        {"adamw_amsgrad_maximize", NB_OPTIM_ADAMW, {.lr = 0.1, .weight_decay = 0.2, .amsgrad = true, .maximize = true},
         {.lr = 0.1, .weight_decay = 0.2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .amsgrad = true,
          .maximize = true}},
        {"adagrad", NB_OPTIM_ADAGRAD, {.lr = 0.1, .weight_decay = 0.1, .lr_decay = 0.5, .initial_accumulator_value = 0.2},
         {.lr = 0.1, .weight_decay = 0.1, .eps = 1e-10, .lr_decay = 0.5, .initial_accumulator_value = 0.2}},
        {"adadelta", NB_OPTIM_ADADELTA, {.weight_decay = 0.1}, {.lr = 1, .weight_decay = 0.1, .eps = 1e-6, .rho = 0.9}},
        {"rmsprop", NB_OPTIM_RMSPROP, {.lr = 0.01}, {.lr = 0.01, .eps = 1e-8, .alpha = 0.99}},
        {"rmsprop_centered_momentum", NB_OPTIM_RMSPROP,
         {.lr = 0.01, .weight_decay = 0.1, .momentum = 0.9, .alpha = 0.9, .centered = true},
         {.lr = 0.01, .weight_decay = 0.1, .momentum = 0.9, .eps = 1e-8, .alpha = 0.9, .centered = true}},
        {"adamax", NB_OPTIM_ADAMAX, {.weight_decay = 0.1}, {.lr = 2e-3, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
        {"nadam", NB_OPTIM_NADAM, {.lr = 0.1, .weight_decay = 0.1},
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .momentum_decay = 4e-3}},
        {"nadam_decoupled", NB_OPTIM_NADAM, {.lr = 0.1, .weight_decay = 0.1, .momentum_decay = 0.1, .decoupled_weight_decay = true},
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .momentum_decay = 0.1,
          .decoupled_weight_decay = true}},
        // beta2 0.5 makes rho_t > 5 from the first step: the rectified branch
        {"radam_rectified", NB_OPTIM_RADAM, {.lr = 0.1, .weight_decay = 0.1, .beta2 = 0.9},
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.9, .eps = 1e-8}},
        {"radam", NB_OPTIM_RADAM, {.lr = 0.1, .weight_decay = 0.1, .decoupled_weight_decay = true},
         {.lr = 0.1, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .decoupled_weight_decay = true}},
        {"lion", NB_OPTIM_LION, {.lr = 0.01, .weight_decay = 0.5},
         {.lr = 0.01, .weight_decay = 0.5, .beta1 = 0.9, .beta2 = 0.99}},
        {"ftrl", NB_OPTIM_FTRL, {.lr = 0.5}, {.lr = 0.5, .initial_accumulator_value = 0.1, .lr_power = -0.5}},
        {"ftrl_l1_l2", NB_OPTIM_FTRL,
         {.lr = 0.5, .initial_accumulator_value = 0.5, .l1 = 0.3, .l2 = 0.2, .beta = 0.5, .lr_power = -0.7},
         {.lr = 0.5, .initial_accumulator_value = 0.5, .l1 = 0.3, .l2 = 0.2, .beta = 0.5, .lr_power = -0.7}},
        {"ftrl_fixed_rate", NB_OPTIM_FTRL, {.lr = 0.5, .l1 = 0.1, .lr_power = z},
         {.lr = 0.5, .initial_accumulator_value = 0.1, .l1 = 0.1, .lr_power = 0}},
    };
    for (const OptimCase &c : cases)
        add({NB_OP_OPTIM_STEP, c.name, {F(-1, 1), F(-1, 1)}, shapes, FLOATS,
             [c](const Tensors &t) { return run_steps(t, c.kind, c.options, 3); },
             [c](const std::vector<Host> &h) { return reference_steps(c.kind, c.explicit_, h, 3); }, false, 3});
}

} // namespace op_cases
