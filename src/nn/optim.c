/* Optimizer objects over the fused update kernels of src/ops/optim.c,
 * gradient clipping and the warmup + cosine schedule. f16 and bf16
 * parameters step through f32 master copies (llm.c's master weights): the
 * update lands on the copy and the parameter is its rounding, so updates
 * smaller than half a unit in the last place accumulate instead of being
 * rounded away. */
#include <math.h>
#include <stdlib.h>

#include "nn.h"

static bool valid_lr(double lr) { return lr >= 0 && isfinite(lr); }

static nb_optimizer *create(nb__optimizer_kind kind, const char *fn, nb_tensor *const *params, int n,
                            double lr) {
    if (n < 0 || (n > 0 && !params)) {
        nb__error(NB_ERR_INVALID, "%s: needs a parameter array, got %s with n = %d", fn,
                  params ? "an array" : "NULL", n);
        return NULL;
    }
    if (!valid_lr(lr)) {
        nb__error(NB_ERR_INVALID, "%s: lr must be finite and >= 0, got %g", fn, lr);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i]) {
            nb__error(NB_ERR_INVALID, "%s: parameter %d is NULL", fn, i);
            return NULL;
        }
        if (!nb_dtype_is_float(params[i]->dtype) || !nb__is_contiguous(params[i])) {
            nb__error(nb_dtype_is_float(params[i]->dtype) ? NB_ERR_INVALID : NB_ERR_DTYPE,
                      "%s: parameter %d must be a contiguous float tensor, got a %s%s one", fn, i,
                      nb__is_contiguous(params[i]) ? "" : "non-contiguous ",
                      nb_dtype_name(params[i]->dtype));
            return NULL;
        }
        for (int j = 0; j < i; j++)
            if (params[j] == params[i]) { /* it would be stepped twice */
                nb__error(NB_ERR_INVALID, "%s: parameters %d and %d are the same tensor", fn, j, i);
                return NULL;
            }
    }
    nb_optimizer *opt = nb__calloc(1, sizeof *opt);
    size_t count = (size_t)(n ? n : 1);
    if (opt) {
        opt->params = nb__calloc(count, sizeof *opt->params);
        opt->state1 = nb__calloc(count, sizeof *opt->state1);
        opt->state2 = nb__calloc(count, sizeof *opt->state2);
        opt->master = nb__calloc(count, sizeof *opt->master);
        opt->steps = nb__calloc(count, sizeof *opt->steps);
    }
    if (!opt || !opt->params || !opt->state1 || !opt->state2 || !opt->master || !opt->steps) {
        if (opt) nb_optimizer_free(opt);
        nb__error(NB_ERR_OOM, "%s: out of host memory for %d parameters", fn, n);
        return NULL;
    }
    opt->kind = kind;
    opt->n = n;
    opt->lr = lr;
    for (int i = 0; i < n; i++) opt->params[i] = nb_retain(params[i]);
    return opt;
}

nb_optimizer *nb_sgd_create(nb_tensor *const *params, int n, double lr, double momentum,
                            double weight_decay, bool nesterov) {
    if (!(momentum >= 0 && momentum <= 1) || !(weight_decay >= 0 && isfinite(weight_decay)) ||
        (nesterov && momentum == 0)) {
        nb__error(NB_ERR_INVALID, "nb_sgd_create: needs momentum in [0, 1], a finite weight_decay "
                  ">= 0 and momentum > 0 for Nesterov, got momentum %g, weight_decay %g, "
                  "nesterov %s", momentum, weight_decay, nesterov ? "true" : "false");
        return NULL;
    }
    nb_optimizer *opt = create(NB__SGD, "nb_sgd_create", params, n, lr);
    if (opt) {
        opt->momentum = momentum;
        opt->weight_decay = weight_decay;
        opt->nesterov = nesterov;
    }
    return opt;
}

static nb_optimizer *adam(nb__optimizer_kind kind, const char *fn, nb_tensor *const *params, int n,
                          double lr, double beta1, double beta2, double eps, double weight_decay) {
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0 && isfinite(eps) &&
          weight_decay >= 0 && isfinite(weight_decay))) {
        nb__error(NB_ERR_INVALID, "%s: needs betas in [0, 1), a finite eps > 0 and a finite "
                  "weight_decay >= 0, got betas %g and %g, eps %g, weight_decay %g", fn, beta1,
                  beta2, eps, weight_decay);
        return NULL;
    }
    nb_optimizer *opt = create(kind, fn, params, n, lr);
    if (opt) {
        opt->beta1 = beta1;
        opt->beta2 = beta2;
        opt->eps = eps;
        opt->weight_decay = weight_decay;
    }
    return opt;
}

nb_optimizer *nb_adam_create(nb_tensor *const *params, int n, double lr, double beta1,
                             double beta2, double eps, double weight_decay) {
    return adam(NB__ADAM, "nb_adam_create", params, n, lr, beta1, beta2, eps, weight_decay);
}

nb_optimizer *nb_adamw_create(nb_tensor *const *params, int n, double lr, double beta1,
                              double beta2, double eps, double weight_decay) {
    return adam(NB__ADAMW, "nb_adamw_create", params, n, lr, beta1, beta2, eps, weight_decay);
}

/* A zero state tensor for param (f32, f64 for f64 parameters), kept in *slot. */
static nb_status state(nb_tensor *param, nb_tensor **slot) {
    if (*slot) return NB_OK;
    nb_dtype dtype = param->dtype == NB_F64 ? NB_F64 : NB_F32;
    return nb__result(nb_zeros(param->ndim, param->shape, dtype, param->storage->device), slot);
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

/* The update kernel of parameter i on target (the parameter or its master). */
static nb_status update(nb_optimizer *opt, int i, nb_tensor *target, const nb_tensor *grad,
                        const nb_attrs *attrs) {
    if (opt->kind == NB__SGD) {
        nb_attrs a = *attrs;
        a.optim.first = !opt->state1[i];
        if (opt->momentum > 0) NB_TRY(state(target, &opt->state1[i]));
        return nb__sgd_step(target, grad, opt->state1[i], &a);
    }
    NB_TRY(state(target, &opt->state1[i]));
    NB_TRY(state(target, &opt->state2[i]));
    return nb__adam_step(target, grad, opt->state1[i], opt->state2[i], attrs);
}

static nb_status step_one(nb_optimizer *opt, int i) {
    int64_t step = ++opt->steps[i];
    const nb_attrs attrs = {.optim = {.lr = opt->lr, .momentum = opt->momentum, .beta1 = opt->beta1,
                                      .beta2 = opt->beta2, .eps = opt->eps,
                                      .weight_decay = opt->weight_decay,
                                      .bias_correction1 = 1 - pow(opt->beta1, (double)step),
                                      .bias_correction2 = 1 - pow(opt->beta2, (double)step),
                                      .nesterov = opt->nesterov, .decoupled = opt->kind == NB__ADAMW}};
    nb_tensor *grad = NULL, *target;
    NB_TRY(nb__result(nb_contiguous(opt->params[i]->grad), &grad));
    nb_status status = update_target(opt, i, &grad, &target);
    if (status == NB_OK) status = update(opt, i, target, grad, &attrs);
    if (status == NB_OK && target != opt->params[i]) status = nb__copy_into(opt->params[i], target);
    if (status == NB_OK) nb__bump_version(opt->params[i]);
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

nb_status nb_optimizer_set_lr(nb_optimizer *opt, double lr) {
    NB_CHECK(opt, NB_ERR_INVALID, "nb_optimizer_set_lr: optimizer is NULL");
    NB_CHECK(valid_lr(lr), NB_ERR_INVALID, "nb_optimizer_set_lr: lr must be finite and >= 0, got %g",
             lr);
    opt->lr = lr;
    return NB_OK;
}

double nb_optimizer_get_lr(const nb_optimizer *opt) { return opt ? opt->lr : 0; }

void nb_optimizer_free(nb_optimizer *opt) {
    if (!opt) return;
    for (int i = 0; i < opt->n; i++) {
        nb_release(opt->params[i]);
        nb_release(opt->state1[i]);
        nb_release(opt->state2[i]);
        nb_release(opt->master[i]);
    }
    free(opt->params);
    free(opt->state1);
    free(opt->state2);
    free(opt->master);
    free(opt->steps);
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
