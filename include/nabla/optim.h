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

#ifdef __cplusplus
}
#endif
#endif
