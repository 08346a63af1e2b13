/* Learning-rate schedules (include/nabla/optim.h has the formulas): the
 * closed forms of PyTorch's lr_scheduler classes, ReduceLROnPlateau's state
 * machine, and a scheduler that sets an optimizer's group rates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define PI 3.14159265358979323846
#define KIND(k) (1u << NB_LR_##k)
#define CLOSED_FORMS (((1u << NB_LR_KINDS) - 1) & ~KIND(PLATEAU))

static const char *const kind_names[NB_LR_KINDS] = {
    "constant", "step", "multi_step", "exponential", "linear", "polynomial",
    "cosine", "cosine_warm_restarts", "one_cycle", "plateau", "lambda"};

/* A double of the schedule: the kinds that read it and its default. */
typedef struct real_field {
    const char *name;
    size_t offset;
    unsigned kinds;
    double fallback; /* the default of a field left +0 */
} real_field;

#define REAL(name, kinds, fallback) {#name, offsetof(nb_lr_schedule, name), kinds, fallback}
static const real_field reals[] = {
    REAL(gamma, KIND(STEP) | KIND(MULTI_STEP) | KIND(EXPONENTIAL), 0.1),
    REAL(factor, KIND(CONSTANT) | KIND(PLATEAU), 0), /* 1/3 and 0.1: set by kind */
    REAL(start_factor, KIND(LINEAR), 1.0 / 3),
    REAL(end_factor, KIND(LINEAR), 1),
    REAL(power, KIND(POLYNOMIAL), 1),
    REAL(min_lr, KIND(COSINE) | KIND(COSINE_WARM_RESTARTS) | KIND(PLATEAU), 0),
    REAL(max_lr, KIND(ONE_CYCLE), 0),
    REAL(pct_start, KIND(ONE_CYCLE), 0.3),
    REAL(div_factor, KIND(ONE_CYCLE), 25),
    REAL(final_div_factor, KIND(ONE_CYCLE), 1e4),
    REAL(base_momentum, KIND(ONE_CYCLE), 0.85),
    REAL(max_momentum, KIND(ONE_CYCLE), 0.95),
    REAL(threshold, KIND(PLATEAU), 1e-4),
    REAL(eps, KIND(PLATEAU), 1e-8),
    REAL(warmup_start_factor, CLOSED_FORMS, 1.0 / 3),
};
#undef REAL

typedef struct int_field {
    const char *name;
    size_t offset;
    unsigned kinds;
    int64_t fallback;
} int_field;

#define INT(name, kinds, fallback) {#name, offsetof(nb_lr_schedule, name), kinds, fallback}
static const int_field ints[] = {
    INT(step_size, KIND(STEP), 0),
    INT(total_steps, KIND(CONSTANT) | KIND(LINEAR) | KIND(POLYNOMIAL) | KIND(COSINE) | KIND(ONE_CYCLE), 0),
    INT(t0, KIND(COSINE_WARM_RESTARTS), 0),
    INT(t_mult, KIND(COSINE_WARM_RESTARTS), 1),
    INT(patience, KIND(PLATEAU), 10),
    INT(cooldown, KIND(PLATEAU), 0),
    INT(warmup_steps, CLOSED_FORMS, 0),
};
#undef INT

#define CHECK_RANGE(ok, s, field, range)                                                         \
    NB_CHECK(ok, NB_ERR_INVALID, "%s: a %s schedule needs %s %s, got %g", fn, kind_names[s->kind], \
             #field, range, (double)s->field)

/* Whether the fields the kind does not read are 0 and the pointers NULL. */
static nb_status check_unread(const char *fn, const nb_lr_schedule *s) {
    unsigned me = 1u << s->kind;
    for (size_t f = 0; f < sizeof reals / sizeof *reals; f++) {
        double v = *(const double *)((const char *)s + reals[f].offset);
        NB_CHECK((reals[f].kinds & me) || v == 0, NB_ERR_INVALID, "%s: sets %s = %g, which a %s schedule does "
                 "not read", fn, reals[f].name, v, kind_names[s->kind]);
    }
    for (size_t f = 0; f < sizeof ints / sizeof *ints; f++) {
        int64_t v = *(const int64_t *)((const char *)s + ints[f].offset);
        NB_CHECK((ints[f].kinds & me) || v == 0, NB_ERR_INVALID, "%s: sets %s = %lld, which a %s schedule does "
                 "not read", fn, ints[f].name, (long long)v, kind_names[s->kind]);
    }
    bool one_cycle = s->kind == NB_LR_ONE_CYCLE, plateau = s->kind == NB_LR_PLATEAU;
    NB_CHECK((one_cycle || !(s->three_phase || s->linear_anneal || s->keep_momentum)) &&
             (plateau || !(s->mode_max || s->threshold_abs)) &&
             (s->kind == NB_LR_MULTI_STEP || (!s->milestones && !s->n_milestones)) &&
             (s->kind == NB_LR_LAMBDA || (!s->fn && !s->ctx)), NB_ERR_INVALID,
             "%s: sets a flag, milestones or a function that a %s schedule does not read", fn, kind_names[s->kind]);
    return NB_OK;
}

/* The defaults filled in. */
static nb_lr_schedule with_defaults(const nb_lr_schedule *in) {
    nb_lr_schedule s = *in;
    for (size_t f = 0; f < sizeof reals / sizeof *reals; f++) {
        double *v = (double *)((char *)&s + reals[f].offset);
        double fallback = reals[f].offset == offsetof(nb_lr_schedule, factor)
                              ? (s.kind == NB_LR_CONSTANT ? 1.0 / 3 : 0.1)
                              : reals[f].fallback;
        if (*v == 0) *v = signbit(*v) ? 0 : fallback; /* NB_OPTIM_ZERO: a literal 0 */
    }
    for (size_t f = 0; f < sizeof ints / sizeof *ints; f++) {
        int64_t *v = (int64_t *)((char *)&s + ints[f].offset);
        if (*v == 0) *v = ints[f].fallback;
    }
    if (s.kind == NB_LR_CONSTANT && !s.total_steps) s.total_steps = 5;
    if ((s.kind == NB_LR_LINEAR || s.kind == NB_LR_POLYNOMIAL) && !s.total_steps) s.total_steps = 5;
    if (s.kind == NB_LR_PLATEAU && s.patience == NB_LR_NO_PATIENCE) s.patience = 0;
    return s;
}

static nb_status check_milestones(const char *fn, const nb_lr_schedule *s) {
    NB_CHECK(s->n_milestones > 0 && s->milestones, NB_ERR_INVALID, "%s: a multi_step schedule needs milestones, "
             "got %s with n_milestones = %d", fn, s->milestones ? "an array" : "NULL", s->n_milestones);
    for (int i = 0; i < s->n_milestones; i++)
        NB_CHECK(s->milestones[i] >= 0 && (i == 0 || s->milestones[i] >= s->milestones[i - 1]), NB_ERR_INVALID,
                 "%s: milestones must be >= 0 and in order, got %lld at %d after %lld", fn,
                 (long long)s->milestones[i], i, (long long)(i ? s->milestones[i - 1] : 0));
    return NB_OK;
}

/* The ranges of the settings, after with_defaults. */
static nb_status check_ranges(const char *fn, const nb_lr_schedule *s) {
    for (size_t f = 0; f < sizeof reals / sizeof *reals; f++) {
        double v = *(const double *)((const char *)s + reals[f].offset);
        NB_CHECK(isfinite(v), NB_ERR_INVALID, "%s: %s must be finite, got %g", fn, reals[f].name, v);
    }
    switch (s->kind) {
    case NB_LR_CONSTANT:
        CHECK_RANGE(s->factor >= 0 && s->factor <= 1, s, factor, "in [0, 1]");
        CHECK_RANGE(s->total_steps > 0, s, total_steps, "> 0");
        break;
    case NB_LR_STEP:
        CHECK_RANGE(s->step_size > 0, s, step_size, "> 0");
        CHECK_RANGE(s->gamma > 0, s, gamma, "> 0");
        break;
    case NB_LR_EXPONENTIAL: CHECK_RANGE(s->gamma > 0, s, gamma, "> 0"); break;
    case NB_LR_MULTI_STEP:
        CHECK_RANGE(s->gamma > 0, s, gamma, "> 0");
        NB_TRY(check_milestones(fn, s));
        break;
    case NB_LR_LINEAR:
        CHECK_RANGE(s->start_factor > 0 && s->start_factor <= 1, s, start_factor, "in (0, 1]");
        CHECK_RANGE(s->end_factor >= 0 && s->end_factor <= 1, s, end_factor, "in [0, 1]");
        CHECK_RANGE(s->total_steps > 0, s, total_steps, "> 0");
        break;
    case NB_LR_POLYNOMIAL:
        CHECK_RANGE(s->power >= 0, s, power, ">= 0");
        CHECK_RANGE(s->total_steps > 0, s, total_steps, "> 0");
        break;
    case NB_LR_COSINE: CHECK_RANGE(s->total_steps > 0, s, total_steps, "> 0 (T_max)"); break;
    case NB_LR_COSINE_WARM_RESTARTS:
        CHECK_RANGE(s->t0 > 0, s, t0, "> 0");
        CHECK_RANGE(s->t_mult >= 1, s, t_mult, ">= 1");
        break;
    case NB_LR_ONE_CYCLE:
        CHECK_RANGE(s->max_lr > 0, s, max_lr, "> 0");
        CHECK_RANGE(s->total_steps > 0, s, total_steps, "> 0");
        CHECK_RANGE(s->pct_start > 0 && s->pct_start < 1, s, pct_start, "in (0, 1)");
        CHECK_RANGE(s->div_factor > 0, s, div_factor, "> 0");
        CHECK_RANGE(s->final_div_factor > 0, s, final_div_factor, "> 0");
        CHECK_RANGE(s->base_momentum >= 0 && s->base_momentum <= s->max_momentum && s->max_momentum < 1, s,
                    base_momentum, "in [0, max_momentum] and max_momentum < 1");
        break;
    case NB_LR_PLATEAU:
        CHECK_RANGE(s->factor >= 0 && s->factor < 1, s, factor, "in [0, 1)");
        CHECK_RANGE(s->patience >= 0, s, patience, ">= 0 (NB_LR_NO_PATIENCE for 0)");
        CHECK_RANGE(s->cooldown >= 0, s, cooldown, ">= 0");
        CHECK_RANGE(s->threshold >= 0, s, threshold, ">= 0");
        CHECK_RANGE(s->min_lr >= 0, s, min_lr, ">= 0");
        CHECK_RANGE(s->eps >= 0, s, eps, ">= 0");
        break;
    default: NB_CHECK(s->fn, NB_ERR_INVALID, "%s: a lambda schedule needs fn", fn);
    }
    CHECK_RANGE(s->warmup_steps >= 0, s, warmup_steps, ">= 0");
    CHECK_RANGE(s->warmup_start_factor > 0 && s->warmup_start_factor <= 1, s, warmup_start_factor, "in (0, 1]");
    return NB_OK;
}

/* The settings with the defaults filled in, checked. */
static nb_status resolve(const char *fn, const nb_lr_schedule *in, nb_lr_schedule *out) {
    NB_CHECK(in, NB_ERR_INVALID, "%s: schedule is NULL", fn);
    NB_CHECK((unsigned)in->kind < NB_LR_KINDS, NB_ERR_INVALID, "%s: kind %d is not an nb_lr_schedule_kind (0 to %d)",
             fn, (int)in->kind, NB_LR_KINDS - 1);
    NB_TRY(check_unread(fn, in));
    *out = with_defaults(in);
    return check_ranges(fn, out);
}

int nb__lr_schedule_kind(const char *name) {
    for (int k = 0; k < NB_LR_KINDS; k++)
        if (!strcmp(name, kind_names[k])) return k;
    return -1;
}

typedef struct flag_field {
    const char *name;
    size_t offset;
} flag_field;

static const flag_field flags[] = {
    {"three_phase", offsetof(nb_lr_schedule, three_phase)},
    {"linear_anneal", offsetof(nb_lr_schedule, linear_anneal)},
    {"keep_momentum", offsetof(nb_lr_schedule, keep_momentum)},
    {"mode_max", offsetof(nb_lr_schedule, mode_max)},
    {"threshold_abs", offsetof(nb_lr_schedule, threshold_abs)},
};

int nb__lr_schedule_set(nb_lr_schedule *s, const char *name, double value) {
    for (size_t f = 0; f < sizeof reals / sizeof *reals; f++)
        if (!strcmp(name, reals[f].name)) return *(double *)((char *)s + reals[f].offset) = value, 0;
    for (size_t f = 0; f < sizeof ints / sizeof *ints; f++)
        if (!strcmp(name, ints[f].name)) {
            if (!(value >= -9.2e18 && value <= 9.2e18) || value != floor(value)) return -2;
            return *(int64_t *)((char *)s + ints[f].offset) = (int64_t)value, 0;
        }
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++)
        if (!strcmp(name, flags[f].name)) return *(bool *)((char *)s + flags[f].offset) = value != 0, 0;
    return -1;
}

/* ---- the closed forms ---- */

static double cosine(double from, double to, double pct) { return to + (from - to) / 2 * (1 + cos(PI * pct)); }

/* The restart period holding step t: its start and length (exact integers,
 * where PyTorch takes a floating-point logarithm). */
static void restart_period(const nb_lr_schedule *s, int64_t t, int64_t *start, int64_t *length) {
    if (s->t_mult == 1) {
        *start = t - t % s->t0, *length = s->t0;
        return;
    }
    *start = 0, *length = s->t0;
    while (t - *start >= *length) {
        *start += *length;
        *length = *length > INT64_MAX / s->t_mult ? INT64_MAX : *length * s->t_mult;
    }
}

/* OneCycleLR's rate (or momentum, with momentum) at step t. */
static double one_cycle(const nb_lr_schedule *s, int64_t t, bool momentum) {
    double initial = s->max_lr / s->div_factor, final = initial / s->final_div_factor;
    double top = momentum ? s->max_momentum : initial, peak = momentum ? s->base_momentum : s->max_lr;
    double bottom = momentum ? s->max_momentum : final;
    double up = s->pct_start * (double)s->total_steps - 1, last = (double)s->total_steps - 1;
    /* the phases: [start, end] and the values at their ends */
    double ends[3] = {up, s->three_phase ? 2 * s->pct_start * (double)s->total_steps - 2 : last, last};
    double values[4] = {top, peak, s->three_phase ? top : bottom, bottom};
    int phases = s->three_phase ? 3 : 2, i = 0;
    double start = 0;
    while (i < phases - 1 && (double)t > ends[i]) start = ends[i++];
    double pct = ends[i] > start ? ((double)t - start) / (ends[i] - start) : 1;
    return s->linear_anneal ? values[i] + (values[i + 1] - values[i]) * pct : cosine(values[i], values[i + 1], pct);
}

/* The rate of step t >= 0 of the main schedule (warmup aside). */
static double closed_form(const nb_lr_schedule *s, int64_t t, double base) {
    double at = (double)t;
    switch (s->kind) {
    case NB_LR_CONSTANT: return t < s->total_steps ? base * s->factor : base;
    case NB_LR_STEP: return base * pow(s->gamma, (double)(t / s->step_size));
    case NB_LR_MULTI_STEP: {
        int passed = 0;
        while (passed < s->n_milestones && s->milestones[passed] <= t) passed++;
        return base * pow(s->gamma, passed);
    }
    case NB_LR_EXPONENTIAL: return base * pow(s->gamma, at);
    case NB_LR_LINEAR: {
        double done = fmin(at, (double)s->total_steps) / (double)s->total_steps;
        return base * (s->start_factor + (s->end_factor - s->start_factor) * done);
    }
    case NB_LR_POLYNOMIAL:
        return base * pow(1 - fmin(at, (double)s->total_steps) / (double)s->total_steps, s->power);
    case NB_LR_COSINE: return cosine(base, s->min_lr, at / (double)s->total_steps);
    case NB_LR_COSINE_WARM_RESTARTS: {
        int64_t start, length;
        restart_period(s, t, &start, &length);
        return cosine(base, s->min_lr, (double)(t - start) / (double)length);
    }
    case NB_LR_ONE_CYCLE: return one_cycle(s, t, false);
    default: return base * s->fn(s->ctx, t);
    }
}

/* The rate of step t of a resolved closed-form schedule, warmup first. */
static nb_status rate_at(const char *fn, const nb_lr_schedule *s, int64_t t, double base, double *lr) {
    NB_CHECK(t >= 0, NB_ERR_INVALID, "%s: step must be >= 0, got %lld", fn, (long long)t);
    int64_t main_step = t >= s->warmup_steps ? t - s->warmup_steps : 0;
    NB_CHECK(s->kind != NB_LR_ONE_CYCLE || main_step <= s->total_steps, NB_ERR_INVALID,
             "%s: step %lld is past the one-cycle schedule's total_steps %lld", fn, (long long)main_step,
             (long long)s->total_steps);
    double rate = closed_form(s, main_step, base);
    if (t < s->warmup_steps)
        rate *= s->warmup_start_factor + (1 - s->warmup_start_factor) * (double)t / (double)s->warmup_steps;
    NB_CHECK(isfinite(rate), NB_ERR_INVALID, "%s: the %s schedule gives %g at step %lld", fn,
             kind_names[s->kind], rate, (long long)t);
    *lr = rate;
    return NB_OK;
}

nb_status nb_lr_schedule_at(const nb_lr_schedule *s, int64_t step, double base_lr, double *lr) {
    const char *fn = "nb_lr_schedule_at";
    nb_lr_schedule r;
    NB_TRY(resolve(fn, s, &r));
    NB_CHECK(lr, NB_ERR_INVALID, "%s: lr is NULL", fn);
    NB_CHECK(r.kind != NB_LR_PLATEAU, NB_ERR_INVALID, "%s: a plateau schedule's rate depends on the metrics "
             "(nb_lr_plateau_update)", fn);
    NB_CHECK(isfinite(base_lr) && base_lr >= 0, NB_ERR_INVALID, "%s: base_lr must be finite and >= 0, got %g", fn,
             base_lr);
    return rate_at(fn, &r, step, base_lr, lr);
}

nb_status nb_lr_one_cycle_momentum(const nb_lr_schedule *s, int64_t step, double *momentum) {
    const char *fn = "nb_lr_one_cycle_momentum";
    nb_lr_schedule r;
    double lr;
    NB_TRY(resolve(fn, s, &r));
    NB_CHECK(momentum, NB_ERR_INVALID, "%s: momentum is NULL", fn);
    NB_CHECK(r.kind == NB_LR_ONE_CYCLE, NB_ERR_INVALID, "%s: needs a one_cycle schedule, got %s", fn,
             kind_names[r.kind]);
    NB_TRY(rate_at(fn, &r, step, 0, &lr)); /* checks the step */
    *momentum = one_cycle(&r, step >= r.warmup_steps ? step - r.warmup_steps : 0, true);
    return NB_OK;
}

/* ---- ReduceLROnPlateau ---- */

/* Whether metric improves on best by the threshold (PyTorch's is_better). */
static bool improves(const nb_lr_schedule *s, double metric, double best) {
    if (s->mode_max)
        return s->threshold_abs ? metric > best + s->threshold : metric > best * (1 + s->threshold);
    return s->threshold_abs ? metric < best - s->threshold : metric < best * (1 - s->threshold);
}

/* One metric on a resolved plateau schedule. */
static void plateau_step(const nb_lr_schedule *s, nb_lr_plateau *p, double metric, double *lr) {
    if (!p->started) *p = (nb_lr_plateau){.best = s->mode_max ? -INFINITY : INFINITY, .started = true};
    if (improves(s, metric, p->best)) p->best = metric, p->bad_steps = 0;
    else p->bad_steps++; /* NaN improves on nothing */
    if (p->cooldown_left > 0) p->cooldown_left--, p->bad_steps = 0;
    if (p->bad_steps <= s->patience) return;
    double reduced = fmax(*lr * s->factor, s->min_lr);
    if (*lr - reduced > s->eps) *lr = reduced;
    p->cooldown_left = s->cooldown, p->bad_steps = 0;
}

nb_status nb_lr_plateau_update(const nb_lr_schedule *s, nb_lr_plateau *state, double metric, double *lr) {
    const char *fn = "nb_lr_plateau_update";
    nb_lr_schedule r;
    NB_TRY(resolve(fn, s, &r));
    NB_CHECK(r.kind == NB_LR_PLATEAU, NB_ERR_INVALID, "%s: needs a plateau schedule, got %s", fn,
             kind_names[r.kind]);
    NB_CHECK(state && lr, NB_ERR_INVALID, "%s: %s is NULL", fn, state ? "lr" : "state");
    NB_CHECK(isfinite(*lr) && *lr >= 0, NB_ERR_INVALID, "%s: lr must be finite and >= 0, got %g", fn, *lr);
    plateau_step(&r, state, metric, lr);
    return NB_OK;
}

/* ---- the scheduler ---- */

struct nb_lr_scheduler {
    nb_optimizer *opt;
    int n; /* the groups */
    nb_lr_schedule *schedules;
    int64_t *milestones; /* copies of the schedules' milestones, end to end */
    double *base;
    nb_lr_plateau *plateau;
    int64_t step;
};

/* Whether one-cycle momentum goes to group options o's momentum (SGD,
 * RMSprop) or beta1 (the Adam family, Lion); -1 for neither. */
static int momentum_field(nb_optimizer_kind kind) {
    switch (kind) {
    case NB_OPTIM_SGD:
    case NB_OPTIM_RMSPROP: return 0;
    case NB_OPTIM_ADAGRAD:
    case NB_OPTIM_ADADELTA:
    case NB_OPTIM_FTRL: return -1;
    default: return 1;
    }
}

/* The options of every group at step t into next (nothing is set). */
static nb_status options_at(const char *fn, const nb_lr_scheduler *s, int64_t t, const double *metric,
                            nb_optim_options *next, nb_lr_plateau *plateau) {
    for (int g = 0; g < s->n; g++) {
        const nb_lr_schedule *k = &s->schedules[g];
        next[g] = s->opt->options[g];
        plateau[g] = s->plateau[g];
        if (k->kind == NB_LR_PLATEAU) {
            if (metric) plateau_step(k, &plateau[g], *metric, &next[g].lr);
            continue;
        }
        NB_TRY(rate_at(fn, k, t, s->base[g], &next[g].lr));
        NB_CHECK(s->opt->kind != NB_OPTIM_FTRL || next[g].lr > 0, NB_ERR_INVALID,
                 "%s: group %d's schedule gives lr 0 at step %lld, which FTRL divides by", fn, g, (long long)t);
        if (k->kind == NB_LR_ONE_CYCLE && !k->keep_momentum) {
            double m = one_cycle(k, t >= k->warmup_steps ? t - k->warmup_steps : 0, true);
            if (momentum_field(s->opt->kind) == 0) next[g].momentum = m;
            else next[g].beta1 = m;
        }
    }
    return NB_OK;
}

/* Moves s to step t: every group's options or none. */
static nb_status move_to(const char *fn, nb_lr_scheduler *s, int64_t t, const double *metric) {
    nb_optim_options *next = nb__calloc((size_t)s->n + 1, sizeof *next);
    nb_lr_plateau *plateau = nb__calloc((size_t)s->n + 1, sizeof *plateau);
    nb_status status = next && plateau ? options_at(fn, s, t, metric, next, plateau)
                                       : nb__error(NB_ERR_OOM, "%s: out of host memory", fn);
    if (status == NB_OK) {
        for (int g = 0; g < s->n; g++) s->opt->options[g] = next[g], s->plateau[g] = plateau[g];
        s->step = t;
    }
    free(next);
    free(plateau);
    return status;
}

/* Copies schedule g's milestones into the scheduler's own array at *used. */
static void own_milestones(nb_lr_scheduler *s, int g, int64_t *used) {
    nb_lr_schedule *k = &s->schedules[g];
    if (k->kind != NB_LR_MULTI_STEP) return;
    for (int i = 0; i < k->n_milestones; i++) s->milestones[*used + i] = k->milestones[i];
    k->milestones = s->milestones + *used;
    *used += k->n_milestones;
}

static nb_status check_scheduler_args(const char *fn, const nb_optimizer *opt, const nb_lr_schedule *schedules,
                                      int n) {
    NB_CHECK(opt, NB_ERR_INVALID, "%s: optimizer is NULL", fn);
    NB_CHECK(schedules && (n == 1 || n == opt->n_groups), NB_ERR_INVALID, "%s: needs one schedule or one per "
             "group (%d), got %s with n = %d", fn, opt->n_groups, schedules ? "an array" : "NULL", n);
    for (int g = 0; g < n; g++) {
        nb_lr_schedule r;
        NB_TRY(resolve(fn, &schedules[g], &r));
        NB_CHECK(r.kind != NB_LR_ONE_CYCLE || r.keep_momentum || momentum_field(opt->kind) >= 0, NB_ERR_INVALID,
                 "%s: one-cycle momentum needs an optimizer with momentum or beta1, and %s has neither (set "
                 "keep_momentum)", fn, nb__optimizer_kind_name(opt->kind));
    }
    return NB_OK;
}

nb_lr_scheduler *nb_lr_scheduler_create(nb_optimizer *opt, const nb_lr_schedule *schedules, int n) {
    const char *fn = "nb_lr_scheduler_create";
    if (check_scheduler_args(fn, opt, schedules, n) != NB_OK) return NULL;
    int groups = opt->n_groups;
    int64_t milestones = 0;
    for (int g = 0; g < groups; g++) milestones += schedules[n == 1 ? 0 : g].n_milestones;
    nb_lr_scheduler *s = nb__calloc(1, sizeof *s);
    if (s) {
        s->schedules = nb__calloc((size_t)groups + 1, sizeof *s->schedules);
        s->milestones = nb__calloc((size_t)milestones + 1, sizeof *s->milestones);
        s->base = nb__calloc((size_t)groups + 1, sizeof *s->base);
        s->plateau = nb__calloc((size_t)groups + 1, sizeof *s->plateau);
    }
    if (!s || !s->schedules || !s->milestones || !s->base || !s->plateau) {
        nb_lr_scheduler_free(s);
        nb__error(NB_ERR_OOM, "%s: out of host memory for %d groups", fn, groups);
        return NULL;
    }
    s->opt = opt, s->n = groups;
    int64_t used = 0;
    for (int g = 0; g < groups; g++) {
        s->schedules[g] = with_defaults(&schedules[n == 1 ? 0 : g]);
        own_milestones(s, g, &used);
        s->base[g] = opt->options[g].lr;
    }
    if (move_to(fn, s, 0, NULL) != NB_OK) {
        nb_lr_scheduler_free(s);
        return NULL;
    }
    return s;
}

nb_status nb_lr_scheduler_step(nb_lr_scheduler *s, double metric) {
    NB_CHECK(s, NB_ERR_INVALID, "nb_lr_scheduler_step: scheduler is NULL");
    NB_CHECK(s->step < INT64_MAX, NB_ERR_INVALID, "nb_lr_scheduler_step: the step count is at its maximum");
    return move_to("nb_lr_scheduler_step", s, s->step + 1, &metric);
}

int64_t nb_lr_scheduler_get_step(const nb_lr_scheduler *s) { return s ? s->step : 0; }

nb_status nb_lr_scheduler_set_step(nb_lr_scheduler *s, int64_t step) {
    NB_CHECK(s, NB_ERR_INVALID, "nb_lr_scheduler_set_step: scheduler is NULL");
    return move_to("nb_lr_scheduler_set_step", s, step, NULL);
}

void nb_lr_scheduler_free(nb_lr_scheduler *s) {
    if (!s) return;
    free(s->schedules);
    free(s->milestones);
    free(s->base);
    free(s->plateau);
    free(s);
}
