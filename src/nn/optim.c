/* Optimizer objects over the fused update kernel of src/ops/optim.c (the
 * rules are in src/core/optim_update.h): parameter groups, per-parameter
 * step counts, state slots, and the step's coefficients worked out on the
 * host. f16 and bf16 parameters step through f32 master copies (llm.c's
 * master weights): the update lands on the copy and the parameter is its
 * rounding, so updates smaller than half a unit in the last place
 * accumulate instead of being rounded away. */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "nn.h"

#define KIND(k) (1u << NB_OPTIM_##k)
#define ALL_KINDS ((1u << NB_OPTIM_KINDS) - 1)
#define ADAM_FAMILY (KIND(ADAM) | KIND(ADAMW) | KIND(ADAMAX) | KIND(NADAM) | KIND(RADAM))

static const char *const kind_names[NB_OPTIM_KINDS] = {
    "sgd", "adam", "adamw", "adagrad", "adadelta", "rmsprop", "adamax", "nadam", "radam", "lion", "ftrl"};

/* PyTorch's state names (Keras's for FTRL), by slot. */
static const char *const slot_names[NB_OPTIM_KINDS][NB_OPTIM_SLOTS] = {
    [NB_OPTIM_SGD] = {"momentum_buffer"},
    [NB_OPTIM_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [NB_OPTIM_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [NB_OPTIM_ADAGRAD] = {"sum"},
    [NB_OPTIM_ADADELTA] = {"square_avg", "acc_delta"},
    [NB_OPTIM_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [NB_OPTIM_ADAMAX] = {"exp_avg", "exp_inf"},
    [NB_OPTIM_NADAM] = {"exp_avg", "exp_avg_sq"},
    [NB_OPTIM_RADAM] = {"exp_avg", "exp_avg_sq"},
    [NB_OPTIM_LION] = {"exp_avg"},
    [NB_OPTIM_FTRL] = {"accumulator", "linear"},
};

/* The defaults that are not zero (PyTorch's; Keras's for FTRL). */
static const nb_optim_options defaults[NB_OPTIM_KINDS] = {
    [NB_OPTIM_SGD] = {.lr = 1e-3},
    [NB_OPTIM_ADAM] = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    [NB_OPTIM_ADAMW] = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2},
    [NB_OPTIM_ADAGRAD] = {.lr = 1e-2, .eps = 1e-10},
    [NB_OPTIM_ADADELTA] = {.lr = 1.0, .rho = 0.9, .eps = 1e-6},
    [NB_OPTIM_RMSPROP] = {.lr = 1e-2, .alpha = 0.99, .eps = 1e-8},
    [NB_OPTIM_ADAMAX] = {.lr = 2e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    [NB_OPTIM_NADAM] = {.lr = 2e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .momentum_decay = 4e-3},
    [NB_OPTIM_RADAM] = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
    [NB_OPTIM_LION] = {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.99},
    [NB_OPTIM_FTRL] = {.lr = 1e-3, .lr_power = -0.5, .initial_accumulator_value = 0.1},
};

/* A number of the options: the kinds that read it and its range [lo, hi]
 * (hi excluded with open_hi); every one must be finite. */
typedef struct option_field {
    const char *name;
    size_t offset;
    unsigned kinds;
    double lo, hi;
    bool open_hi;
} option_field;

#define FIELD(name, kinds, lo, hi, open) {#name, offsetof(nb_optim_options, name), kinds, lo, hi, open}
static const option_field fields[] = {
    FIELD(lr, ALL_KINDS, 0, INFINITY, true),
    FIELD(weight_decay, ALL_KINDS & ~KIND(FTRL), 0, INFINITY, true),
    FIELD(momentum, KIND(SGD) | KIND(RMSPROP), 0, 1, false),
    FIELD(dampening, KIND(SGD), 0, 1, false),
    FIELD(beta1, ADAM_FAMILY | KIND(LION), 0, 1, true),
    FIELD(beta2, ADAM_FAMILY | KIND(LION), 0, 1, true),
    FIELD(eps, ADAM_FAMILY | KIND(ADAGRAD) | KIND(ADADELTA) | KIND(RMSPROP), 0, INFINITY, true),
    FIELD(alpha, KIND(RMSPROP), 0, 1, false),
    FIELD(rho, KIND(ADADELTA), 0, 1, false),
    FIELD(lr_decay, KIND(ADAGRAD), 0, INFINITY, true),
    FIELD(initial_accumulator_value, KIND(ADAGRAD) | KIND(FTRL), 0, INFINITY, true),
    FIELD(momentum_decay, KIND(NADAM), 0, INFINITY, true),
    FIELD(l1, KIND(FTRL), 0, INFINITY, true),
    FIELD(l2, KIND(FTRL), 0, INFINITY, true),
    FIELD(beta, KIND(FTRL), 0, INFINITY, true),
    FIELD(lr_power, KIND(FTRL), -DBL_MAX, 0, false),
};
#undef FIELD

typedef struct option_flag {
    const char *name;
    size_t offset;
    unsigned kinds;
} option_flag;

static const option_flag flags[] = {
    {"nesterov", offsetof(nb_optim_options, nesterov), KIND(SGD)},
    {"amsgrad", offsetof(nb_optim_options, amsgrad), KIND(ADAM) | KIND(ADAMW)},
    {"centered", offsetof(nb_optim_options, centered), KIND(RMSPROP)},
    {"decoupled_weight_decay", offsetof(nb_optim_options, decoupled_weight_decay),
     KIND(ADAM) | KIND(NADAM) | KIND(RADAM)},
    {"maximize", offsetof(nb_optim_options, maximize), ALL_KINDS},
};

const char *nb__optimizer_kind_name(nb_optimizer_kind kind) {
    return (unsigned)kind < NB_OPTIM_KINDS ? kind_names[kind] : "?";
}

const char *nb__optimizer_slot_name(nb_optimizer_kind kind, int slot) {
    return (unsigned)kind < NB_OPTIM_KINDS && (unsigned)slot < NB_OPTIM_SLOTS ? slot_names[kind][slot] : NULL;
}

/* The options with the defaults filled in, checked; group names it in errors. */
nb_status nb__optimizer_resolve(const char *fn, nb_optimizer_kind kind, int group, const nb_optim_options *in,
                         nb_optim_options *out) {
    *out = *in;
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
        const option_field *d = &fields[f];
        double *v = (double *)((char *)out + d->offset);
        bool reads = d->kinds & (1u << kind);
        if (*v == 0 && !signbit(*v)) *v = *(const double *)((const char *)&defaults[kind] + d->offset);
        else if (*v == 0) *v = 0; /* NB_OPTIM_ZERO */
        NB_CHECK(reads || *v == 0, NB_ERR_INVALID, "%s: group %d sets %s = %g, which %s does not read", fn,
                 group, d->name, *v, kind_names[kind]);
        NB_CHECK(isfinite(*v) && *v >= d->lo && (d->open_hi ? *v < d->hi : *v <= d->hi), NB_ERR_INVALID,
                 "%s: group %d: %s must be finite and in [%g, %g%s, got %g", fn, group, d->name,
                 d->lo == -DBL_MAX ? -INFINITY : d->lo, d->hi, d->open_hi ? ")" : "]", *v);
    }
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++)
        NB_CHECK(!*(const bool *)((const char *)out + flags[f].offset) || (flags[f].kinds & (1u << kind)),
                 NB_ERR_INVALID, "%s: group %d sets %s, which %s does not read", fn, group, flags[f].name,
                 kind_names[kind]);
    NB_CHECK(!out->nesterov || (out->momentum > 0 && out->dampening == 0), NB_ERR_INVALID,
             "%s: group %d: Nesterov momentum needs momentum > 0 and dampening 0, got %g and %g", fn, group,
             out->momentum, out->dampening);
    NB_CHECK(kind != NB_OPTIM_FTRL || out->lr > 0, NB_ERR_INVALID,
             "%s: group %d: FTRL needs lr > 0 (it divides by it), got %g", fn, group, out->lr);
    return NB_OK;
}

#define N_FIELDS (int)(sizeof fields / sizeof *fields)
_Static_assert(sizeof fields / sizeof *fields + sizeof flags / sizeof *flags == NB_OPTIM_OPTIONS,
               "NB_OPTIM_OPTIONS counts the fields and flags");

const char *nb__optimizer_option_name(int k) { return k < N_FIELDS ? fields[k].name : flags[k - N_FIELDS].name; }

double nb__optimizer_option_get(const nb_optim_options *o, int k) {
    if (k < N_FIELDS) return *(const double *)((const char *)o + fields[k].offset);
    return *(const bool *)((const char *)o + flags[k - N_FIELDS].offset);
}

void nb__optimizer_option_set(nb_optim_options *o, int k, double v) {
    if (k < N_FIELDS) *(double *)((char *)o + fields[k].offset) = v == 0 ? NB_OPTIM_ZERO : v;
    else *(bool *)((char *)o + flags[k - N_FIELDS].offset) = v != 0;
}

static nb_status check_params(const char *fn, const nb_param_group *groups, int n_groups, int *total) {
    NB_CHECK(n_groups >= 0 && (n_groups == 0 || groups), NB_ERR_INVALID, "%s: needs groups, got %s with "
             "n_groups = %d", fn, groups ? "an array" : "NULL", n_groups);
    int64_t count = 0;
    for (int g = 0; g < n_groups; g++) {
        NB_CHECK(groups[g].n >= 0 && (groups[g].n == 0 || groups[g].params), NB_ERR_INVALID,
                 "%s: group %d needs a parameter array, got %s with n = %d", fn, g,
                 groups[g].params ? "an array" : "NULL", groups[g].n);
        count += groups[g].n;
    }
    NB_CHECK(count <= INT32_MAX, NB_ERR_INVALID, "%s: %lld parameters are more than nabla takes (2^31 - 1)", fn,
             (long long)count);
    for (int g = 0; g < n_groups; g++)
        for (int i = 0; i < groups[g].n; i++) {
            const nb_tensor *p = groups[g].params[i];
            NB_CHECK(p, NB_ERR_INVALID, "%s: parameter %d of group %d is NULL", fn, i, g);
            NB_CHECK(nb_dtype_is_float(p->dtype) && nb__is_contiguous(p),
                     nb_dtype_is_float(p->dtype) ? NB_ERR_INVALID : NB_ERR_DTYPE,
                     "%s: parameter %d of group %d must be a contiguous float tensor, got a %s%s one", fn, i, g,
                     nb__is_contiguous(p) ? "" : "non-contiguous ", nb_dtype_name(p->dtype));
            /* a repeated one would be stepped twice */
            for (int h = 0; h <= g; h++)
                for (int j = 0; j < (h == g ? i : groups[h].n); j++)
                    NB_CHECK(groups[h].params[j] != p, NB_ERR_INVALID,
                             "%s: parameter %d of group %d and parameter %d of group %d are the same tensor", fn,
                             j, h, i, g);
        }
    *total = (int)count;
    return NB_OK;
}

/* The optimizer's arrays for n parameters and n_groups groups; NULL on OOM. */
static nb_optimizer *alloc(int n, int n_groups) {
    nb_optimizer *opt = nb__calloc(1, sizeof *opt);
    size_t count = (size_t)(n ? n : 1), groups = (size_t)(n_groups ? n_groups : 1);
    if (!opt) return NULL;
    opt->params = nb__calloc(count, sizeof *opt->params);
    opt->group = nb__calloc(count, sizeof *opt->group);
    opt->options = nb__calloc(groups, sizeof *opt->options);
    opt->state = nb__calloc(count, sizeof *opt->state);
    opt->master = nb__calloc(count, sizeof *opt->master);
    opt->steps = nb__calloc(count, sizeof *opt->steps);
    opt->mu_product = nb__calloc(count, sizeof *opt->mu_product);
    if (opt->params && opt->group && opt->options && opt->state && opt->master && opt->steps && opt->mu_product)
        return opt;
    nb_optimizer_free(opt);
    return NULL;
}

static nb_optimizer *create(const char *fn, nb_optimizer_kind kind, const nb_param_group *groups, int n_groups) {
    if ((unsigned)kind >= NB_OPTIM_KINDS) {
        nb__error(NB_ERR_INVALID, "%s: kind %d is not an nb_optimizer_kind (0 to %d)", fn, (int)kind,
                  NB_OPTIM_KINDS - 1);
        return NULL;
    }
    int n = 0;
    if (check_params(fn, groups, n_groups, &n) != NB_OK) return NULL;
    nb_optimizer *opt = alloc(n, n_groups);
    if (!opt) {
        nb__error(NB_ERR_OOM, "%s: out of host memory for %d parameters", fn, n);
        return NULL;
    }
    opt->kind = kind;
    for (int g = 0; g < n_groups; g++)
        if (nb__optimizer_resolve(fn, kind, g, &groups[g].options, &opt->options[g]) != NB_OK) {
            nb_optimizer_free(opt);
            return NULL;
        }
    opt->n_groups = n_groups;
    for (int g = 0; g < n_groups; g++)
        for (int i = 0; i < groups[g].n; i++) {
            opt->group[opt->n] = g;
            opt->mu_product[opt->n] = 1;
            opt->params[opt->n++] = nb_retain(groups[g].params[i]);
        }
    return opt;
}

nb_optimizer *nb_optimizer_create(nb_optimizer_kind kind, const nb_param_group *groups, int n_groups) {
    return create("nb_optimizer_create", kind, groups, n_groups);
}

/* An exact value for the options: 0 would take the default. */
static double exact(double v) { return v == 0 ? NB_OPTIM_ZERO : v; }

nb_optimizer *nb_sgd_create(nb_tensor *const *params, int n, double lr, double momentum,
                            double weight_decay, bool nesterov) {
    nb_param_group g = {params, n, {.lr = exact(lr), .momentum = momentum, .weight_decay = weight_decay,
                                    .nesterov = nesterov}};
    return create("nb_sgd_create", NB_OPTIM_SGD, &g, 1);
}

static nb_optimizer *adam(nb_optimizer_kind kind, const char *fn, nb_tensor *const *params, int n,
                          double lr, double beta1, double beta2, double eps, double weight_decay) {
    nb_param_group g = {params, n, {.lr = exact(lr), .beta1 = exact(beta1), .beta2 = exact(beta2),
                                    .eps = exact(eps), .weight_decay = exact(weight_decay)}};
    return create(fn, kind, &g, 1);
}

nb_optimizer *nb_adam_create(nb_tensor *const *params, int n, double lr, double beta1,
                             double beta2, double eps, double weight_decay) {
    return adam(NB_OPTIM_ADAM, "nb_adam_create", params, n, lr, beta1, beta2, eps, weight_decay);
}

nb_optimizer *nb_adamw_create(nb_tensor *const *params, int n, double lr, double beta1,
                              double beta2, double eps, double weight_decay) {
    return adam(NB_OPTIM_ADAMW, "nb_adamw_create", params, n, lr, beta1, beta2, eps, weight_decay);
}

bool nb__optimizer_uses_slot(const nb_optimizer *opt, int i, int slot) {
    const nb_optim_options *o = &opt->options[opt->group[i]];
    if (!slot_names[opt->kind][slot]) return false;
    switch (opt->kind) {
    case NB_OPTIM_SGD: return o->momentum > 0;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW: return slot < 2 || o->amsgrad;
    case NB_OPTIM_RMSPROP: return slot == 0 || (slot == 1 ? o->momentum > 0 : o->centered);
    default: return true;
    }
}

nb_status nb__optimizer_new_slot(const nb_optimizer *opt, int i, int slot, nb_tensor **out) {
    const nb_tensor *p = opt->master[i] ? opt->master[i] : opt->params[i];
    nb_dtype dtype = p->dtype == NB_F64 ? NB_F64 : NB_F32;
    bool accumulator = slot == 0 && (opt->kind == NB_OPTIM_ADAGRAD || opt->kind == NB_OPTIM_FTRL);
    double value = accumulator ? opt->options[opt->group[i]].initial_accumulator_value : 0;
    return nb__result(nb_full(p->ndim, p->shape, value, dtype, p->storage->device), out);
}

static bool has_master(const nb_tensor *param) {
    return param->dtype == NB_F16 || param->dtype == NB_BF16;
}

/* What the update kernel steps: the parameter, or its f32 master copy (made
 * on the first step) with the gradient cast to f32 in *grad. */
static nb_status update_target(nb_optimizer *opt, int i, nb_tensor **grad, nb_tensor **target) {
    nb_tensor *param = opt->params[i];
    *target = param;
    if (!has_master(param)) return NB_OK;
    if (!opt->master[i]) NB_TRY(nb__result(nb_cast(param, NB_F32), &opt->master[i]));
    nb_tensor *wide = NULL;
    NB_TRY(nb__result(nb_cast(*grad, NB_F32), &wide));
    nb_release(*grad);
    *grad = wide;
    *target = opt->master[i];
    return NB_OK;
}

/* The settings of parameter i's step t (from 1); *mu_product: NAdam's
 * running product after it. The coefficients follow PyTorch's nadam and
 * radam: mu_t = b1 (1 - 0.5 0.96^(t psi)); rho_inf = 2 / (1 - b2) - 1,
 * rho_t = rho_inf - 2 t b2^t / (1 - b2^t) and
 * r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)). */
static nb_optim_attrs step_attrs(const nb_optimizer *opt, int i, double t, double *mu_product) {
    const nb_optim_options *o = &opt->options[opt->group[i]];
    nb_optimizer_kind kind = opt->kind;
    double beta2 = kind == NB_OPTIM_RMSPROP ? o->alpha : kind == NB_OPTIM_ADADELTA ? o->rho : o->beta2;
    bool decoupled = kind == NB_OPTIM_ADAMW || kind == NB_OPTIM_LION || o->decoupled_weight_decay;
    nb_optim_attrs a = {
        .kind = kind, .lr = o->lr, .decay = decoupled ? 1 - o->lr * o->weight_decay : 1,
        .l2 = decoupled ? 0 : o->weight_decay, .momentum = o->momentum, .dampening = o->dampening,
        .beta1 = o->beta1, .beta2 = beta2, .eps = o->eps, .l1 = o->l1, .ftrl_l2 = o->l2, .beta = o->beta,
        .lr_power = o->lr_power, .bias_correction1 = 1 - pow(o->beta1, t), .bias_correction2 = 1 - pow(beta2, t),
        .nesterov = o->nesterov, .amsgrad = o->amsgrad, .centered = o->centered, .maximize = o->maximize,
        .first = !opt->state[i][0]};
    *mu_product = opt->mu_product[i];
    if (kind == NB_OPTIM_ADAGRAD) a.coef1 = o->lr / (1 + (t - 1) * o->lr_decay);
    if (kind == NB_OPTIM_NADAM) {
        double mu = o->beta1 * (1 - 0.5 * pow(0.96, t * o->momentum_decay));
        double mu_next = o->beta1 * (1 - 0.5 * pow(0.96, (t + 1) * o->momentum_decay));
        *mu_product *= mu;
        a.coef1 = o->lr * (1 - mu) / (1 - *mu_product);
        a.coef2 = o->lr * mu_next / (1 - *mu_product * mu_next);
    }
    if (kind == NB_OPTIM_RADAM) {
        double rho_inf = 2 / (1 - beta2) - 1, rho_t = rho_inf - 2 * t * pow(beta2, t) / a.bias_correction2;
        if (rho_t > 5)
            a.coef1 = sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
        a.coef2 = a.coef1 * sqrt(a.bias_correction2);
    }
    return a;
}

/* The update kernel of parameter i on target (the parameter or its master),
 * making the slots its options use. */
static nb_status update(nb_optimizer *opt, int i, nb_tensor *target, const nb_tensor *grad,
                        const nb_attrs *attrs) {
    nb_tensor *slots[NB_OPTIM_SLOTS] = {NULL};
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) {
        if (!nb__optimizer_uses_slot(opt, i, s)) continue;
        if (!opt->state[i][s]) NB_TRY(nb__optimizer_new_slot(opt, i, s, &opt->state[i][s]));
        slots[s] = opt->state[i][s];
    }
    return nb__optim_step(target, grad, slots, attrs);
}

static nb_status step_one(nb_optimizer *opt, int i) {
    double t = (double)opt->steps[i] + 1, mu_product;
    const nb_attrs attrs = {.optim = step_attrs(opt, i, t, &mu_product)};
    nb_tensor *grad = NULL, *target;
    NB_TRY(nb__result(nb_contiguous(opt->params[i]->grad), &grad));
    nb_status status = update_target(opt, i, &grad, &target);
    if (status == NB_OK) status = update(opt, i, target, grad, &attrs);
    if (status == NB_OK && target != opt->params[i]) status = nb__copy_into(opt->params[i], target);
    if (status == NB_OK) {
        opt->steps[i]++;
        opt->mu_product[i] = mu_product;
        nb__bump_version(opt->params[i]);
    }
    nb_release(grad);
    return status;
}

nb_status nb_optimizer_step(nb_optimizer *opt) {
    NB_CHECK(opt, NB_ERR_INVALID, "nb_optimizer_step: optimizer is NULL");
    bool was = nb_set_grad_enabled(false);
    const char *outer = nb__enter("nb_optimizer_step");
    nb_status status = NB_OK;
    for (int i = 0; i < opt->n && status == NB_OK; i++)
        if (opt->params[i]->grad) status = step_one(opt, i);
    nb__leave(outer);
    nb_set_grad_enabled(was);
    return status;
}

void nb_optimizer_zero_grad(nb_optimizer *opt) {
    for (int i = 0; opt && i < opt->n; i++) {
        nb_release(opt->params[i]->grad);
        opt->params[i]->grad = NULL;
    }
}

int nb_optimizer_num_groups(const nb_optimizer *opt) { return opt ? opt->n_groups : 0; }

static nb_status check_group(const char *fn, const nb_optimizer *opt, int group) {
    NB_CHECK(opt, NB_ERR_INVALID, "%s: optimizer is NULL", fn);
    NB_CHECK(group >= 0 && group < opt->n_groups, NB_ERR_INVALID, "%s: group %d is not in [0, %d)", fn, group,
             opt->n_groups);
    return NB_OK;
}

nb_status nb_optimizer_get_options(const nb_optimizer *opt, int group, nb_optim_options *out) {
    NB_TRY(check_group("nb_optimizer_get_options", opt, group));
    NB_CHECK(out, NB_ERR_INVALID, "nb_optimizer_get_options: out is NULL");
    *out = opt->options[group];
    return NB_OK;
}

nb_status nb_optimizer_set_options(nb_optimizer *opt, int group, const nb_optim_options *options) {
    const char *fn = "nb_optimizer_set_options";
    NB_TRY(check_group(fn, opt, group));
    NB_CHECK(options, NB_ERR_INVALID, "%s: options is NULL", fn);
    nb_optim_options resolved;
    NB_TRY(nb__optimizer_resolve(fn, opt->kind, group, options, &resolved));
    opt->options[group] = resolved;
    return NB_OK;
}

static nb_status check_lr(const char *fn, const nb_optimizer *opt, double lr) {
    NB_CHECK(lr >= 0 && isfinite(lr) && (opt->kind != NB_OPTIM_FTRL || lr > 0), NB_ERR_INVALID,
             "%s: lr must be finite and %s 0, got %g", fn, opt->kind == NB_OPTIM_FTRL ? "> (FTRL)" : ">=", lr);
    return NB_OK;
}

nb_status nb_optimizer_set_lr(nb_optimizer *opt, double lr) {
    NB_CHECK(opt, NB_ERR_INVALID, "nb_optimizer_set_lr: optimizer is NULL");
    NB_TRY(check_lr("nb_optimizer_set_lr", opt, lr));
    for (int g = 0; g < opt->n_groups; g++) opt->options[g].lr = lr;
    return NB_OK;
}

nb_status nb_optimizer_set_group_lr(nb_optimizer *opt, int group, double lr) {
    NB_TRY(check_group("nb_optimizer_set_group_lr", opt, group));
    NB_TRY(check_lr("nb_optimizer_set_group_lr", opt, lr));
    opt->options[group].lr = lr;
    return NB_OK;
}

double nb_optimizer_get_lr(const nb_optimizer *opt) { return opt && opt->n_groups ? opt->options[0].lr : 0; }

void nb_optimizer_free(nb_optimizer *opt) {
    if (!opt) return;
    for (int i = 0; i < opt->n && opt->params; i++) {
        nb_release(opt->params[i]);
        for (int s = 0; s < NB_OPTIM_SLOTS; s++) nb_release(opt->state[i][s]);
        nb_release(opt->master[i]);
    }
    free(opt->params);
    free(opt->group);
    free(opt->options);
    free(opt->state);
    free(opt->master);
    free(opt->steps);
    free(opt->mu_product);
    free(opt);
}

/* ---- clipping and schedule ---- */

/* sum + |grad|^2 (f32; sum may be NULL) into *out; one scratch per step,
 * so any number of parameters fits. */
static nb_status add_square(const nb_tensor *sum, const nb_tensor *grad, nb_tensor **out) {
    nb_scratch s = {0};
    nb_tensor *norm = nb__keep(&s, nb_cast(nb__keep(&s, nb_norm(grad, 2, 0, NULL, false)), NB_F32));
    nb_tensor *square = nb__keep(&s, nb_mul(norm, norm));
    nb_tensor *next = sum ? nb__keep(&s, nb_add(sum, square)) : square;
    return nb__scratch_finish(&s, next, out);
}

/* grad * coef (cast to grad's dtype) into *out. */
static nb_status scale_grad(const nb_tensor *grad, const nb_tensor *coef, nb_tensor **out) {
    nb_scratch s = {0};
    nb_tensor *scaled = nb__keep(&s, nb_mul(grad, nb__keep(&s, nb_cast(coef, grad->dtype))));
    return nb__scratch_finish(&s, scaled, out);
}

nb_tensor *nb_clip_grad_norm(nb_tensor *const *params, int n, double max_norm) {
    if (n < 0 || (n > 0 && !params) || !(max_norm > 0)) {
        nb__error(NB_ERR_INVALID, "nb_clip_grad_norm: needs parameters and max_norm > 0, got %d "
                  "and %g", n, max_norm);
        return NULL;
    }
    bool was = nb_set_grad_enabled(false);
    nb_tensor *squares = NULL; /* the running sum of squared norms, f32 */
    nb_status status = NB_OK;
    for (int i = 0; i < n && status == NB_OK; i++) {
        if (!params[i] || !params[i]->grad) continue;
        nb_tensor *next = NULL;
        status = add_square(squares, params[i]->grad, &next);
        nb_release(squares);
        squares = next;
    }
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    if (status != NB_OK) K(NULL);
    nb_tensor *total = squares ? K(nb_sqrt(squares)) : K(nb_scalar(0, NB_F32, nb_cpu()));
    nb_tensor *coef = squares ? K(nb_clamp(K(nb_div(K(nb__scalar_like(total, max_norm)),
                                                    K(nb_add(total, K(nb__scalar_like(total, 1e-6)))))),
                                           -INFINITY, 1))
                              : NULL;
    for (int i = 0; i < n && coef && s.status == NB_OK; i++) {
        nb_tensor *grad = params[i] ? params[i]->grad : NULL, *scaled = NULL;
        if (!grad) continue;
        if (scale_grad(grad, coef, &scaled) != NB_OK) K(NULL);
        if (scaled) { /* the scaled gradient replaces the old one */
            params[i]->grad = scaled;
            nb_release(grad);
        }
    }
#undef K
    nb_set_grad_enabled(was);
    nb_release(squares);
    nb_tensor *out = NULL;
    return nb__scratch_finish(&s, total, &out) == NB_OK ? out : NULL;
}

nb_status nb_clip_grad_value(nb_tensor *const *params, int n, double clip_value) {
    NB_CHECK(n >= 0 && (n == 0 || params) && clip_value >= 0, NB_ERR_INVALID,
             "nb_clip_grad_value: needs parameters and clip_value >= 0, got %d and %g", n, clip_value);
    bool was = nb_set_grad_enabled(false);
    nb_status status = NB_OK;
    for (int i = 0; i < n && status == NB_OK; i++) {
        nb_tensor *grad = params[i] ? params[i]->grad : NULL, *clamped = NULL;
        if (!grad) continue;
        status = nb__result(nb_clamp(grad, -clip_value, clip_value), &clamped);
        if (status == NB_OK) { /* the clamped gradient replaces the old one */
            params[i]->grad = clamped;
            nb_release(grad);
        }
    }
    nb_set_grad_enabled(was);
    return status;
}

double nb_lr_warmup_cosine(int64_t step, int64_t warmup_steps, int64_t total_steps, double max_lr,
                           double min_lr) {
    /* negative counts are 0; the differences are taken in double (no overflow) */
    double at = step > 0 ? (double)step : 0, warmup = warmup_steps > 0 ? (double)warmup_steps : 0;
    double total = total_steps > 0 ? (double)total_steps : 0;
    if (at < warmup) return max_lr * (at + 1) / warmup;
    if (at >= total || total <= warmup) return min_lr;
    double progress = (at - warmup) / (total - warmup);
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + cos(3.14159265358979323846 * progress));
}
