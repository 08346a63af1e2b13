/* Optimizers, gradient clipping and a learning-rate schedule.
 *
 *   nb_named_tensor named[64];
 *   int n = nb_module_parameters(net, named, 64);
 *   nb_tensor *params[64];
 *   for (int i = 0; i < n; i++) params[i] = named[i].tensor;
 *   nb_optimizer *opt = nb_adamw_create(params, n, 1e-3, 0.9, 0.999, 1e-8, 0.01);
 *   for (step...) {
 *       nb_optimizer_zero_grad(opt);
 *       ... loss = ...; nb_backward(loss, NULL, false);
 *       nb_optimizer_set_lr(opt, nb_lr_warmup_cosine(step, 100, steps, 1e-3, 1e-5));
 *       nb_optimizer_step(opt);
 *   }
 *   nb_optimizer_free(opt);
 *
 * Each step runs one fused kernel per parameter that reads the gradient and
 * state once and updates parameter and state in place (PyTorch's formulas,
 * src/core/optim_update.h). Parameters without a gradient are skipped. The
 * optimizer holds references to its parameters; state is f32 (f64 for f64
 * parameters) and lives on the parameter's device. f16 and bf16 parameters
 * are stepped through f32 master copies the optimizer keeps (made from the
 * parameter at its first step): the kernel updates the copy and the
 * parameter becomes its rounding, so small updates accumulate instead of
 * rounding away (4 more bytes per element). Write such a parameter only
 * before its first step: the next step would replace the value with the
 * rounding of its copy.
 */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_optimizer nb_optimizer;

/* The update rules, PyTorch's formulas and defaults (Keras's for FTRL, which
 * PyTorch lacks); docs/nn.md writes each out. */
typedef enum nb_optimizer_kind {
    NB_OPTIM_SGD,      /* momentum, dampening, Nesterov */
    NB_OPTIM_ADAM,     /* Kingma and Ba, 2015; amsgrad (Reddi et al., 2018) */
    NB_OPTIM_ADAMW,    /* Loshchilov and Hutter, 2019: decay decoupled */
    NB_OPTIM_ADAGRAD,  /* Duchi et al., 2011 */
    NB_OPTIM_ADADELTA, /* Zeiler, 2012 */
    NB_OPTIM_RMSPROP,  /* Hinton; centered (Graves, 2013), momentum */
    NB_OPTIM_ADAMAX,   /* Kingma and Ba, 2015, section 7 */
    NB_OPTIM_NADAM,    /* Dozat, 2016 */
    NB_OPTIM_RADAM,    /* Liu et al., 2020 */
    NB_OPTIM_LION,     /* Chen et al., 2023 */
    NB_OPTIM_FTRL,     /* FTRL-Proximal, McMahan et al., 2013 */
    NB_OPTIM_KINDS
} nb_optimizer_kind;

/* A field left 0 takes the default of the kind (PyTorch's; Keras's for
 * FTRL), listed in docs/nn.md: lr, the betas (Adam's 0.9 and 0.999, Lion's
 * 0.9 and 0.99), eps, alpha 0.99, rho 0.9, momentum_decay 4e-3, lr_power
 * -0.5, FTRL's initial_accumulator_value 0.1 and AdamW's weight_decay 0.01.
 * Write NB_OPTIM_ZERO for a literal zero in one of those. A field or flag
 * the kind does not read must stay 0 (NB_ERR_INVALID otherwise), so that a
 * setting meant for another rule is not dropped silently. */
typedef struct nb_optim_options {
    double lr, weight_decay;
    double momentum, dampening;       /* SGD; momentum also RMSprop's */
    double beta1, beta2;              /* the Adam family and Lion */
    double eps;
    double alpha;                     /* RMSprop's smoothing */
    double rho;                       /* Adadelta's */
    double lr_decay;                  /* Adagrad's */
    double initial_accumulator_value; /* Adagrad (0) and FTRL (0.1) */
    double momentum_decay;            /* NAdam's psi */
    double l1, l2, beta, lr_power;    /* FTRL's lambda1, lambda2, beta, learning-rate power */
    bool nesterov, amsgrad, centered;
    bool decoupled_weight_decay; /* Adam, NAdam, RAdam: p *= 1 - lr wd, as AdamW */
    bool maximize;               /* ascend: steps along +g */
} nb_optim_options;

#define NB_OPTIM_ZERO (-0.0)

/* A parameter group: parameters stepped with their own options. */
typedef struct nb_param_group {
    nb_tensor *const *params;
    int n;
    nb_optim_options options;
} nb_param_group;

/* An optimizer over groups (their parameters in order make parameter 0, 1,
 * ...); rejects a NULL or repeated parameter (within or across groups), a
 * non-float or non-contiguous one, and options that are NaN, infinite, out
 * of range or not read by kind (NB_ERR_INVALID, naming the group). Steps are
 * counted per parameter, as PyTorch does: bias corrections use the steps a
 * parameter was updated, and a parameter without a gradient is skipped. */
nb_optimizer *nb_optimizer_create(nb_optimizer_kind kind, const nb_param_group *groups, int n_groups);

/* One group of the options: the shorthands of the three classic rules.
 * SGD with optional momentum (in [0, 1]; 0 for none), Nesterov momentum and
 * L2 weight decay added to the gradient. */
nb_optimizer *nb_sgd_create(nb_tensor *const *params, int n, double lr, double momentum,
                            double weight_decay, bool nesterov);
/* Adam; weight_decay adds wd * p to the gradient. */
nb_optimizer *nb_adam_create(nb_tensor *const *params, int n, double lr, double beta1,
                             double beta2, double eps, double weight_decay);
/* AdamW: decay decoupled from the gradient. */
nb_optimizer *nb_adamw_create(nb_tensor *const *params, int n, double lr, double beta1,
                              double beta2, double eps, double weight_decay);
nb_status nb_optimizer_step(nb_optimizer *opt);
/* Drops every parameter's gradient (the next backward starts afresh). */
void nb_optimizer_zero_grad(nb_optimizer *opt);

/* The groups (0 for NULL), a group's options with the defaults filled in,
 * and new options for it (validated as by nb_optimizer_create; the state is
 * kept, and a slot the new options need is made at the next step). */
int nb_optimizer_num_groups(const nb_optimizer *opt);
nb_status nb_optimizer_get_options(const nb_optimizer *opt, int group, nb_optim_options *out);
nb_status nb_optimizer_set_options(nb_optimizer *opt, int group, const nb_optim_options *options);
/* Sets every group's rate. Fails with NB_ERR_INVALID (the rates unchanged)
 * for a NaN, infinite or negative lr, or 0 for FTRL (it divides by it). */
nb_status nb_optimizer_set_lr(nb_optimizer *opt, double lr);
nb_status nb_optimizer_set_group_lr(nb_optimizer *opt, int group, double lr);
/* Group 0's rate (0 for NULL or no groups). */
double nb_optimizer_get_lr(const nb_optimizer *opt);
void nb_optimizer_free(nb_optimizer *opt);

/* Scales the gradients of params so that their global L2 norm is at most
 * max_norm (scale min(1, max_norm / (norm + 1e-6)), as PyTorch); returns the
 * norm before clipping as a 0-dim f32 tensor on the gradients' device,
 * without waiting for the device (NULL and an error on failure). Parameters
 * without a gradient are skipped; none at all gives a CPU scalar 0. */
nb_tensor *nb_clip_grad_norm(nb_tensor *const *params, int n, double max_norm);

/* Clamps every gradient element of params to [-clip_value, clip_value]
 * (clip_value >= 0; NaN stays NaN, as PyTorch's clip_grad_value_), without
 * waiting for the device. Parameters without a gradient are skipped. */
nb_status nb_clip_grad_value(nb_tensor *const *params, int n, double clip_value);

/* The learning rate of step (from 0): max_lr * (step + 1) / warmup_steps
 * during the warmup, then a cosine from max_lr down to min_lr at
 * total_steps, and min_lr after. Negative counts are taken as 0. */
double nb_lr_warmup_cosine(int64_t step, int64_t warmup_steps, int64_t total_steps, double max_lr,
                           double min_lr);

/* ---- learning-rate schedules (PyTorch's lr_scheduler classes) ----
 *
 * The rate of step t (from 0) as a function of the group's base rate b,
 * PyTorch's closed forms; a field left 0 takes the default in brackets:
 *   NB_LR_CONSTANT     b factor [1/3] for t < total_steps [5], then b     (ConstantLR)
 *   NB_LR_STEP         b gamma [0.1]^floor(t / step_size)                  (StepLR)
 *   NB_LR_MULTI_STEP   b gamma [0.1]^(milestones <= t), milestones rising  (MultiStepLR)
 *   NB_LR_EXPONENTIAL  b gamma [0.1]^t                                    (ExponentialLR)
 *   NB_LR_LINEAR       b (s + (e - s) min(t, T) / T): start_factor s [1/3],
 *                      end_factor e [1], total_steps T [5]                  (LinearLR)
 *   NB_LR_POLYNOMIAL   b (1 - min(t, T) / T)^power [1], total_steps T [5]   (PolynomialLR)
 *   NB_LR_COSINE       m + (b - m) (1 + cos(pi t / T)) / 2: min_lr m,
 *                      total_steps T (T_max)                               (CosineAnnealingLR)
 *   NB_LR_COSINE_WARM_RESTARTS  the cosine over periods T_i of t0 steps,
 *                      each t_mult [1] times the last                     (CosineAnnealingWarmRestarts)
 *   NB_LR_ONE_CYCLE    from max_lr / div_factor [25] up to max_lr over pct_start [0.3]
 *                      of total_steps, then down to that / final_div_factor [1e4]
 *                      (three_phase: back to the start, then down), cosine or linear
 *                      annealing; momentum (or beta1) cycles inversely between
 *                      max_momentum [0.95] and base_momentum [0.85] unless
 *                      keep_momentum; b is not read                       (OneCycleLR)
 *   NB_LR_PLATEAU      by factor [0.1] when the metric has not improved (mode min, or
 *                      max with mode_max) by threshold [1e-4] (relative, or absolute with
 *                      threshold_abs) for more than patience [10; NB_LR_NO_PATIENCE for 0]
 *                      steps, then waits cooldown steps; never below min_lr, nor by less
 *                      than eps [1e-8]
 *                                                                         (ReduceLROnPlateau)
 *   NB_LR_LAMBDA       b fn(ctx, t)                                       (LambdaLR)
 * warmup_steps w > 0 puts a linear warmup first (SequentialLR of LinearLR and
 * the schedule): for t < w the rate is r0 (s + (1 - s) t / w) with s =
 * warmup_start_factor [1/3] and r0 the schedule's rate at its step 0; from t = w
 * the schedule runs at t - w. */
typedef enum nb_lr_schedule_kind {
    NB_LR_CONSTANT,
    NB_LR_STEP,
    NB_LR_MULTI_STEP,
    NB_LR_EXPONENTIAL,
    NB_LR_LINEAR,
    NB_LR_POLYNOMIAL,
    NB_LR_COSINE,
    NB_LR_COSINE_WARM_RESTARTS,
    NB_LR_ONE_CYCLE,
    NB_LR_PLATEAU,
    NB_LR_LAMBDA,
    NB_LR_KINDS
} nb_lr_schedule_kind;

#define NB_LR_NO_PATIENCE (-1)

/* A field the kind does not read must stay 0 (NB_ERR_INVALID otherwise);
 * NB_OPTIM_ZERO asks for a literal 0 in a double whose default is not. */
typedef struct nb_lr_schedule {
    nb_lr_schedule_kind kind;
    double gamma, factor, start_factor, end_factor, power, min_lr;
    int64_t step_size, total_steps;
    const int64_t *milestones;
    int n_milestones;
    int64_t t0, t_mult;
    double max_lr, pct_start, div_factor, final_div_factor, base_momentum, max_momentum;
    bool three_phase, linear_anneal, keep_momentum;
    int64_t patience, cooldown;
    double threshold, eps;
    bool mode_max, threshold_abs;
    double (*fn)(void *ctx, int64_t step);
    void *ctx;
    int64_t warmup_steps;
    double warmup_start_factor;
} nb_lr_schedule;

/* The rate of step (>= 0) for base rate base_lr into *lr; rejects settings
 * out of range (NB_ERR_INVALID naming the field), a one-cycle step past
 * total_steps, and NB_LR_PLATEAU (its rate depends on the metrics). */
nb_status nb_lr_schedule_at(const nb_lr_schedule *s, int64_t step, double base_lr, double *lr);

/* A one-cycle schedule's momentum (beta1) at step into *momentum, the value
 * a scheduler sets unless keep_momentum. */
nb_status nb_lr_one_cycle_momentum(const nb_lr_schedule *s, int64_t step, double *momentum);

/* ReduceLROnPlateau's state: the best metric and the counters. */
typedef struct nb_lr_plateau {
    double best;
    int64_t bad_steps, cooldown_left;
    bool started;
} nb_lr_plateau;
/* One metric: updates state and *lr (reduced when the patience ran out). */
nb_status nb_lr_plateau_update(const nb_lr_schedule *s, nb_lr_plateau *state, double metric, double *lr);

/* A scheduler sets the rates of opt's groups at each step: schedules has one
 * schedule for every group or n = 1 for all; the base rates are the groups'
 * rates now. Creating it sets step 0's rates (PyTorch's constructor does).
 * It does not own opt, which must outlive it. */
typedef struct nb_lr_scheduler nb_lr_scheduler;
nb_lr_scheduler *nb_lr_scheduler_create(nb_optimizer *opt, const nb_lr_schedule *schedules, int n);
/* Advances one step and sets every group's rate; metric is read by
 * NB_LR_PLATEAU groups only (pass 0 otherwise). A failure changes nothing. */
nb_status nb_lr_scheduler_step(nb_lr_scheduler *s, double metric);
/* The step the rates are of; moving to step (resuming from a checkpoint)
 * sets the rates of the closed forms (plateau groups keep theirs). */
int64_t nb_lr_scheduler_get_step(const nb_lr_scheduler *s);
nb_status nb_lr_scheduler_set_step(nb_lr_scheduler *s, int64_t step);
void nb_lr_scheduler_free(nb_lr_scheduler *s);

#ifdef __cplusplus
}
#endif
#endif
