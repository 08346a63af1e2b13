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
 * src/ops/optim.c). Parameters without a gradient are skipped. The
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

/* The constructors reject a NULL or repeated parameter, a non-float or
 * non-contiguous one, and hyper-parameters that are NaN, infinite or out of
 * range (NB_ERR_INVALID). Adam and AdamW count steps per parameter, as
 * PyTorch does: bias correction uses the steps a parameter was updated.
 *
 * SGD with optional momentum (in [0, 1]; 0 for none), Nesterov momentum and
 * L2 weight decay added to the gradient. */
nb_optimizer *nb_sgd_create(nb_tensor *const *params, int n, double lr, double momentum,
                            double weight_decay, bool nesterov);
/* Adam (Kingma and Ba, 2015); weight_decay adds wd * p to the gradient. */
nb_optimizer *nb_adam_create(nb_tensor *const *params, int n, double lr, double beta1,
                             double beta2, double eps, double weight_decay);
/* AdamW (Loshchilov and Hutter, 2019): decay decoupled from the gradient. */
nb_optimizer *nb_adamw_create(nb_tensor *const *params, int n, double lr, double beta1,
                              double beta2, double eps, double weight_decay);
nb_status nb_optimizer_step(nb_optimizer *opt);
/* Drops every parameter's gradient (the next backward starts afresh). */
void nb_optimizer_zero_grad(nb_optimizer *opt);
/* Fails with NB_ERR_INVALID (the rate unchanged) for a NaN, infinite or
 * negative lr. */
nb_status nb_optimizer_set_lr(nb_optimizer *opt, double lr);
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
