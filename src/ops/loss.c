/* Losses. cross_entropy runs one kernel that writes, per row, the loss, the
 * row's max m and l = log sum_j exp(x[i, j] - m) ([N, 3] in the compute
 * precision); the reduction is taken with nabla ops, so nothing waits for the
 * device. The backward kernel rebuilds softmax from the saved pair:
 *   dx[i, j] = w[i] * (exp((x[i, j] - m[i]) - l[i]) - (1 - s) [j == t[i]] - s / C)
 * with w[i] the incoming gradient of row i (g / rows counted for MEAN) and 0
 * for ignored rows. Saving m (a logit, exact) and l (at most log C) rather
 * than lse = m + l keeps the gradient exact to the precision's epsilon for
 * logits of any size: an f32 lse near 1e4 is off by half a unit of 1e-3.
 * Without label smoothing the smoothing term is left out, so a class masked
 * with a -inf logit gives a finite loss. */
#include <math.h>

#include <math.h>
#include <string.h>

#include "../core/internal.h"
#include "../core/pointwise_loss.h"

/* The node saves logits, targets, the [N, 3] (loss, m, l) rows and the count
 * of rows not ignored. The kernel takes [N, 3] (weight, m, l) rows. */
static nb_status cross_entropy_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                        nb_tensor **grads) {
    (void)needs;
    const nb_tensor *logits = node->inputs[0], *targets = node->inputs[1];
    const nb_tensor *rows = node->inputs[2], *counted = node->inputs[3];
    int64_t n = logits->shape[0];
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    nb_tensor *weights = (nb_tensor *)g; /* the loss's gradient, per row or for all */
    if (node->attrs.cross_entropy.reduction == NB_REDUCTION_MEAN)
        weights = K(nb_div(g, K(nb_cast(counted, g->dtype))));
    int64_t column[2] = {n, 1};
    weights = K(nb_expand(K(nb_reshape(K(nb_cast(weights, rows->dtype)), 2, (int64_t[]){-1, 1})), 2, column));
    nb_tensor *max_and_log_sum = K(nb_slice(rows, 1, 1, 3, 1));
    nb_tensor *packed = NULL, *dx = NULL, *dense = K(nb_contiguous(logits));
    if (s.status == NB_OK) packed = K(nb_cat(2, (const nb_tensor *[]){weights, max_and_log_sum}, 1));
    if (s.status == NB_OK && nb__tensor_new("nb_cross_entropy", 2, logits->shape, logits->dtype,
                                            logits->storage->device, &dx) != NB_OK)
        K(NULL);
    K(dx);
    if (s.status == NB_OK) {
        nb_op_args args = {.op = NB_OP_CROSS_ENTROPY_BACKWARD, .dtype = logits->dtype, .out = dx,
                           .in = {dense, targets, packed}, .n_in = 3, .attrs = node->attrs};
        if (nb__dispatch(&args) != NB_OK) K(NULL);
    }
#undef K
    return nb__scratch_finish(&s, dx, &grads[0]);
}

static nb_status check(const nb_tensor *logits, const nb_tensor *targets, double smoothing) {
    const char *fn = "nb_cross_entropy";
    NB_CHECK(logits && targets, NB_ERR_INVALID, "%s: %s is NULL", fn, logits ? "targets" : "logits");
    NB_CHECK(nb_dtype_is_float(logits->dtype), NB_ERR_DTYPE, "%s: logits must be float, got %s", fn,
             nb_dtype_name(logits->dtype));
    NB_CHECK(targets->dtype == NB_I32 || targets->dtype == NB_I64, NB_ERR_DTYPE,
             "%s: targets must be i32 or i64, got %s", fn, nb_dtype_name(targets->dtype));
    NB_CHECK(logits->ndim == 2 && targets->ndim == 1 && targets->shape[0] == logits->shape[0],
             NB_ERR_SHAPE, "%s: needs logits [N, C] and targets [N], got %s and %s", fn,
             nb__tensor_shape_str(logits), nb__tensor_shape_str(targets));
    NB_CHECK(logits->shape[1] > 0, NB_ERR_SHAPE, "%s: logits %s have no classes", fn,
             nb__tensor_shape_str(logits));
    NB_CHECK(nb__same_device(logits->storage->device, targets->storage->device), NB_ERR_DEVICE,
             "%s: logits are on %s but targets on %s", fn, nb__device_name(logits->storage->device),
             nb__device_name(targets->storage->device));
    NB_CHECK(smoothing >= 0 && smoothing <= 1, NB_ERR_INVALID,
             "%s: label_smoothing must be in [0, 1], got %g", fn, smoothing);
    return NB_OK;
}

/* The [N, 3] rows (loss, m, l) in f32 (f64 for f64 logits). */
static nb_status loss_rows(const nb_tensor *logits, const nb_tensor *targets, const nb_attrs *attrs,
                           nb_tensor **rows) {
    int64_t shape[2] = {logits->shape[0], 3};
    nb_dtype precision = logits->dtype == NB_F64 ? NB_F64 : NB_F32;
    nb_tensor *dense = NULL;
    NB_TRY(nb__result(nb_contiguous(logits), &dense));
    nb_op_args args = {.op = NB_OP_CROSS_ENTROPY, .dtype = logits->dtype, .in = {dense, targets},
                       .n_in = 2, .attrs = *attrs};
    nb_status status = nb__dispatch_new("nb_cross_entropy", &args, 2, shape, precision, rows);
    nb_release(dense);
    return status;
}

nb_tensor *nb_cross_entropy(const nb_tensor *logits, const nb_tensor *targets,
                            nb_reduction reduction, double label_smoothing, int64_t ignore_index) {
    if (check(logits, targets, label_smoothing) != NB_OK) return NULL;
    if ((unsigned)reduction > NB_REDUCTION_NONE) {
        nb__error(NB_ERR_INVALID, "nb_cross_entropy: unknown reduction %d", (int)reduction);
        return NULL;
    }
    nb_attrs attrs = {.cross_entropy = {label_smoothing, ignore_index, (int)reduction}};
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    bool was = nb_set_grad_enabled(false);
    nb_tensor *rows = NULL, *loss = NULL;
    if (loss_rows(logits, targets, &attrs, &rows) != NB_OK) rows = NULL;
    K(rows);
    nb_tensor *per_row = K(nb_cast(K(nb_squeeze(K(nb_slice(rows, 1, 0, 1, 1)), 1)), logits->dtype));
    nb_tensor *ignore = K(nb_full(0, NULL, (double)ignore_index, NB_I64, targets->storage->device));
    nb_tensor *counted = K(nb_sum(K(nb_ne(targets, ignore)), 0, NULL, false));
    if (reduction == NB_REDUCTION_NONE) loss = per_row;
    else loss = K(nb_sum(per_row, 0, NULL, false));
    if (reduction == NB_REDUCTION_MEAN) loss = K(nb_div(loss, K(nb_cast(counted, logits->dtype))));
    nb_set_grad_enabled(was);
    if (s.status == NB_OK) {
        const nb_tensor *saved[4] = {logits, targets, rows, counted};
        if (nb__record(loss, NB_OP_CROSS_ENTROPY, 4, saved, &attrs, cross_entropy_backward) != NB_OK)
            K(NULL);
    }
#undef K
    nb_tensor *out = NULL;
    return nb__scratch_finish(&s, loss, &out) == NB_OK ? out : NULL;
}

/* ---- elementwise losses (src/core/pointwise_loss.h has the formulas) ----
 * The kernel writes each element's loss over the broadcast shape; weight
 * (when given) multiplies it and the reduction sums or averages it, both as
 * ops. The gradient with respect to each operand that needs one is one
 * pointwise_loss_backward kernel, summed back to the operand's shape. */

static nb_status pointwise_loss_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                         nb_tensor **grads) {
    nb_scratch s = {0};
    nb_op_args args = {.op = NB_OP_POINTWISE_LOSS_BACKWARD, .dtype = node->out_dtype,
                       .n_in = node->n_inputs + 1, .attrs = node->attrs};
    args.attrs.loss.forward = node->op;
    args.in[0] = g;
    for (int i = 0; i < node->n_inputs; i++)
        args.in[i + 1] = nb__keep(&s, nb_expand(node->inputs[i], node->out_ndim, node->out_shape));
    for (int i = 0; i < node->n_inputs && s.status == NB_OK; i++) {
        if (!needs[i]) continue;
        args.attrs.loss.wrt = i;
        nb_tensor *full = NULL;
        if (nb__dispatch_new(nb__op_fn(node->op), &args, node->out_ndim, node->out_shape, node->out_dtype,
                             &full) != NB_OK)
            full = NULL;
        nb__keep(&s, full);
        if (full && nb__sum_to(full, node->inputs[i]->ndim, node->inputs[i]->shape, &grads[i]) != NB_OK)
            nb__keep(&s, NULL);
    }
    return nb__scratch_finish(&s, NULL, NULL);
}

/* sum, mean, the sum over the size of dim 0 (batchmean), or the losses. */
static nb_tensor *reduce_losses(nb_scratch *s, nb_tensor *losses, nb_reduction reduction) {
    if (reduction == NB_REDUCTION_NONE) return losses;
    if (reduction == NB_REDUCTION_MEAN) return nb__keep(s, nb_mean(losses, 0, NULL, false));
    nb_tensor *sum = nb__keep(s, nb_sum(losses, 0, NULL, false));
    if (reduction == NB_REDUCTION_SUM || !sum) return sum;
    double rows = losses->ndim ? (double)losses->shape[0] : 1;
    return nb__keep(s, nb_div(sum, nb__keep(s, nb__scalar_like(sum, rows))));
}

static nb_status check_operands(const char *fn, int n, const nb_tensor *const *in, const char *const *names,
                                nb_reduction reduction, nb_dtype *dtype, int *ndim, int64_t *shape) {
    NB_CHECK((unsigned)reduction <= NB_REDUCTION_BATCHMEAN, NB_ERR_INVALID, "%s: unknown reduction %d", fn,
             (int)reduction);
    *dtype = NB_BOOL;
    *ndim = 0;
    for (int i = 0; i < n; i++) {
        NB_CHECK(in[i], NB_ERR_INVALID, "%s: %s is NULL", fn, names[i]);
        NB_CHECK(nb__same_device(in[i]->storage->device, in[0]->storage->device), NB_ERR_DEVICE,
                 "%s: %s is on %s but %s on %s", fn, names[0], nb__device_name(in[0]->storage->device),
                 names[i], nb__device_name(in[i]->storage->device));
        *dtype = i ? nb_promote_types(*dtype, in[i]->dtype) : in[i]->dtype;
        int64_t merged[NB_MAX_DIMS];
        int merged_ndim;
        if (nb__broadcast_shapes(fn, *ndim, shape, in[i]->ndim, in[i]->shape, &merged_ndim, merged) != NB_OK)
            return nb__error(NB_ERR_SHAPE, "%s: %s %s does not broadcast with %s %s", fn, names[i],
                             nb__tensor_shape_str(in[i]), names[0], nb__tensor_shape_str(in[0]));
        *ndim = merged_ndim;
        memcpy(shape, merged, sizeof merged);
    }
    NB_CHECK(nb_dtype_is_float(*dtype), NB_ERR_DTYPE, "%s: needs float operands, got %s", fn,
             nb_dtype_name(in[0]->dtype));
    return NB_OK;
}

/* op over (input, target[, third]); weight (may be NULL) scales each loss. */
static nb_tensor *pointwise_loss(nb_op op, int n, const nb_tensor *const *operands, const char *const *names,
                                 const nb_tensor *weight, double p, double q, int flags, nb_reduction reduction) {
    const char *fn = nb__op_fn(op);
    nb_dtype dtype = NB_F32;
    int ndim = 0;
    int64_t shape[NB_MAX_DIMS];
    if (check_operands(fn, n, operands, names, reduction, &dtype, &ndim, shape) != NB_OK) return NULL;
    if (weight && !nb__same_device(weight->storage->device, operands[0]->storage->device)) {
        nb__error(NB_ERR_DEVICE, "%s: weight is on %s but input on %s", fn,
                  nb__device_name(weight->storage->device), nb__device_name(operands[0]->storage->device));
        return NULL;
    }
    int64_t weighted[NB_MAX_DIMS];
    int weighted_ndim;
    if (weight && (nb__broadcast_shapes(fn, ndim, shape, weight->ndim, weight->shape, &weighted_ndim, weighted) != NB_OK ||
                   weighted_ndim != ndim || memcmp(weighted, shape, (size_t)ndim * sizeof *shape))) {
        nb__error(NB_ERR_SHAPE, "%s: weight %s does not broadcast to the losses %s", fn,
                  nb__tensor_shape_str(weight), nb__shape_str(ndim, shape));
        return NULL;
    }
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    nb_op_args args = {.op = op, .dtype = dtype, .n_in = n};
    args.attrs.loss.p = p;
    args.attrs.loss.q = q;
    args.attrs.loss.flags = flags;
    const nb_tensor *cast[3] = {NULL};
    for (int i = 0; i < n; i++) {
        cast[i] = operands[i]->dtype == dtype ? operands[i] : nb__keep(&s, nb_cast(operands[i], dtype));
        bool was = nb_set_grad_enabled(false); /* the kernel's views, not part of the graph */
        args.in[i] = cast[i] ? nb__keep(&s, nb_expand(cast[i], ndim, shape)) : NULL;
        nb_set_grad_enabled(was);
    }
    nb_tensor *losses = NULL;
    if (s.status == NB_OK) {
        if (nb__dispatch_new(fn, &args, ndim, shape, dtype, &losses) != NB_OK) losses = NULL;
        nb__keep(&s, losses);
        if (losses && nb__record(losses, op, n, cast, &args.attrs, pointwise_loss_backward) != NB_OK)
            nb__keep(&s, NULL);
    }
    if (weight && s.status == NB_OK) losses = nb__keep(&s, nb_mul(losses, weight));
    nb_tensor *r = s.status == NB_OK ? reduce_losses(&s, losses, reduction) : NULL, *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

#define TWO(x, y) (const nb_tensor *[]){x, y}, (const char *[]){"input", "target"}

nb_tensor *nb_binary_cross_entropy(const nb_tensor *input, const nb_tensor *target,
                                   const nb_tensor *weight, nb_reduction reduction) {
    return pointwise_loss(NB_OP_BINARY_CROSS_ENTROPY, 2, TWO(input, target), weight, 0, 0, 0, reduction);
}

nb_tensor *nb_binary_cross_entropy_with_logits(const nb_tensor *input, const nb_tensor *target,
                                               const nb_tensor *weight, const nb_tensor *pos_weight,
                                               nb_reduction reduction) {
    if (!pos_weight)
        return pointwise_loss(NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS, 2, TWO(input, target), weight, 0, 0, 0,
                              reduction);
    return pointwise_loss(NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS, 3,
                          (const nb_tensor *[]){input, target, pos_weight},
                          (const char *[]){"input", "target", "pos_weight"}, weight, 0, 0, 0, reduction);
}

nb_tensor *nb_mse_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_MSE_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

nb_tensor *nb_l1_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_L1_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

nb_tensor *nb_huber_loss(const nb_tensor *input, const nb_tensor *target, double delta,
                         nb_reduction reduction) {
    if (!(delta > 0 && delta < INFINITY)) {
        nb__error(NB_ERR_INVALID, "nb_huber_loss: delta must be finite and > 0, got %g", delta);
        return NULL;
    }
    return pointwise_loss(NB_OP_HUBER_LOSS, 2, TWO(input, target), NULL, delta, 0, 0, reduction);
}

nb_tensor *nb_smooth_l1_loss(const nb_tensor *input, const nb_tensor *target, double beta,
                             nb_reduction reduction) {
    if (!(beta >= 0 && beta < INFINITY)) {
        nb__error(NB_ERR_INVALID, "nb_smooth_l1_loss: beta must be finite and >= 0, got %g", beta);
        return NULL;
    }
    if (beta == 0) /* PyTorch: the L1 loss */
        return pointwise_loss(NB_OP_L1_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
    return pointwise_loss(NB_OP_SMOOTH_L1_LOSS, 2, TWO(input, target), NULL, beta, 0, 0, reduction);
}

nb_tensor *nb_log_cosh_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_LOG_COSH_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

nb_tensor *nb_mape_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_MAPE_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

nb_tensor *nb_msle_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_MSLE_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

nb_tensor *nb_poisson_nll_loss(const nb_tensor *input, const nb_tensor *target, bool log_input, bool full,
                               double eps, nb_reduction reduction) {
    if (!(eps >= 0 && eps < INFINITY)) {
        nb__error(NB_ERR_INVALID, "nb_poisson_nll_loss: eps must be finite and >= 0, got %g", eps);
        return NULL;
    }
    int flags = (log_input ? NB_LOSS_LOG_INPUT : 0) | (full ? NB_LOSS_FULL : 0);
    return pointwise_loss(NB_OP_POISSON_NLL_LOSS, 2, TWO(input, target), NULL, eps, 0, flags, reduction);
}

nb_tensor *nb_gaussian_nll_loss(const nb_tensor *input, const nb_tensor *target, const nb_tensor *var,
                                bool full, double eps, nb_reduction reduction) {
    if (!(eps > 0 && eps < INFINITY)) {
        nb__error(NB_ERR_INVALID, "nb_gaussian_nll_loss: eps must be finite and > 0, got %g", eps);
        return NULL;
    }
    /* one variance per row (input's shape without its last dim) is unsqueezed, as in PyTorch */
    nb_tensor *column = NULL;
    bool per_row = input && var && input->ndim >= 1 && var->ndim == input->ndim - 1;
    for (int d = 0; per_row && d < var->ndim; d++) per_row = var->shape[d] == input->shape[d];
    if (per_row && !(column = nb_unsqueeze(var, -1))) return NULL;
    nb_tensor *out = pointwise_loss(NB_OP_GAUSSIAN_NLL_LOSS, 3,
                                    (const nb_tensor *[]){input, target, column ? column : var},
                                    (const char *[]){"input", "target", "var"}, NULL, eps, 0,
                                    full ? NB_LOSS_FULL : 0, reduction);
    nb_release(column);
    return out;
}

nb_tensor *nb_kl_div(const nb_tensor *input, const nb_tensor *target, bool log_target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_KL_DIV, 2, TWO(input, target), NULL, 0, 0, log_target ? NB_LOSS_LOG_TARGET : 0,
                          reduction);
}

nb_tensor *nb_hinge_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_HINGE_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

nb_tensor *nb_margin_ranking_loss(const nb_tensor *input1, const nb_tensor *input2, const nb_tensor *target,
                                  double margin, nb_reduction reduction) {
    if (!isfinite(margin)) {
        nb__error(NB_ERR_INVALID, "nb_margin_ranking_loss: margin must be finite, got %g", margin);
        return NULL;
    }
    return pointwise_loss(NB_OP_MARGIN_RANKING_LOSS, 3, (const nb_tensor *[]){input1, input2, target},
                          (const char *[]){"input1", "input2", "target"}, NULL, margin, 0, 0, reduction);
}

nb_tensor *nb_sigmoid_focal_loss(const nb_tensor *input, const nb_tensor *target, double alpha, double gamma,
                                 nb_reduction reduction) {
    if (!(alpha <= 1 && gamma >= 0 && isfinite(alpha) && isfinite(gamma))) {
        nb__error(NB_ERR_INVALID, "nb_sigmoid_focal_loss: needs alpha <= 1 (< 0: no weighting) and a finite "
                  "gamma >= 0, got %g and %g", alpha, gamma);
        return NULL;
    }
    return pointwise_loss(NB_OP_FOCAL_LOSS, 2, TWO(input, target), NULL, alpha, gamma, 0, reduction);
}

nb_tensor *nb_squared_hinge_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    return pointwise_loss(NB_OP_SQUARED_HINGE_LOSS, 2, TWO(input, target), NULL, 0, 0, 0, reduction);
}

/* ---- row losses, composed of ops (autograd records each) ---- */

/* x1 and x2 of one float shape [N, D] or [D], target of their shape without
 * the last dim. */
static nb_status check_rows(const char *fn, const nb_tensor *const *rows, const char *const *names, int n,
                            const nb_tensor *target, nb_reduction reduction) {
    NB_CHECK((unsigned)reduction <= NB_REDUCTION_NONE, NB_ERR_INVALID, "%s: unknown reduction %d (MEAN, SUM or NONE)", fn,
             (int)reduction);
    for (int i = 0; i < n; i++) {
        NB_CHECK(rows[i], NB_ERR_INVALID, "%s: %s is NULL", fn, names[i]);
        NB_CHECK(nb_dtype_is_float(rows[i]->dtype), NB_ERR_DTYPE, "%s: %s must be float, got %s", fn, names[i],
                 nb_dtype_name(rows[i]->dtype));
        NB_CHECK((rows[i]->ndim == 1 || rows[i]->ndim == 2) && rows[i]->ndim == rows[0]->ndim &&
                 !memcmp(rows[i]->shape, rows[0]->shape, (size_t)rows[0]->ndim * sizeof *rows[0]->shape),
                 NB_ERR_SHAPE, "%s: %s %s must be [N, D] or [D] and match %s %s", fn, names[i],
                 nb__tensor_shape_str(rows[i]), names[0], nb__tensor_shape_str(rows[0]));
    }
    if (!target) return NB_OK;
    NB_CHECK(target->ndim == rows[0]->ndim - 1 && (target->ndim == 0 || target->shape[0] == rows[0]->shape[0]),
             NB_ERR_SHAPE, "%s: target %s must be %s's shape without its last dim", fn, nb__tensor_shape_str(target),
             nb__tensor_shape_str(rows[0]));
    return NB_OK;
}

#define K(expr) nb__keep(&s, (expr))
static const int last_dim[1] = {-1};

nb_tensor *nb_cosine_embedding_loss(const nb_tensor *input1, const nb_tensor *input2, const nb_tensor *target,
                                    double margin, nb_reduction reduction) {
    const char *fn = "nb_cosine_embedding_loss";
    if (check_rows(fn, (const nb_tensor *[]){input1, input2}, (const char *[]){"input1", "input2"}, 2, target,
                   reduction) != NB_OK)
        return NULL;
    if (!target || !isfinite(margin)) {
        nb__error(NB_ERR_INVALID, "%s: needs a target and a finite margin, got %s and %g", fn,
                  target ? "one" : "NULL", margin);
        return NULL;
    }
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    /* PyTorch's: cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) */
    nb_tensor *dot = K(nb_sum(K(nb_mul(input1, input2)), 1, last_dim, false));
    nb_tensor *sq1 = K(nb_sum(K(nb_mul(input1, input1)), 1, last_dim, false));
    nb_tensor *sq2 = K(nb_sum(K(nb_mul(input2, input2)), 1, last_dim, false));
    nb_tensor *eps = dot ? K(nb__scalar_like(dot, 1e-12)) : NULL;
    nb_tensor *cos = K(nb_div(dot, K(nb_sqrt(K(nb_mul(K(nb_add(sq1, eps)), K(nb_add(sq2, eps))))))));
    nb_tensor *zero = cos ? K(nb__scalar_like(cos, 0)) : NULL;
    nb_tensor *pos = K(nb_sub(K(nb__scalar_like(cos ? cos : target, 1)), cos));
    nb_tensor *neg = K(nb_clamp(K(nb_sub(cos, K(nb__scalar_like(cos ? cos : target, margin)))), 0, INFINITY));
    nb_tensor *t = K(nb_cast(target, cos ? cos->dtype : NB_F32));
    nb_tensor *is_pos = K(nb_eq(t, K(nb__scalar_like(t ? t : target, 1))));
    nb_tensor *is_neg = K(nb_eq(t, K(nb__scalar_like(t ? t : target, -1))));
    nb_tensor *losses = K(nb_add(K(nb_where(is_pos, pos, zero)), K(nb_where(is_neg, neg, zero))));
    nb_tensor *r = s.status == NB_OK ? reduce_losses(&s, losses, reduction) : NULL, *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

/* ||a - b + eps||_p over the last dim (PyTorch's pairwise_distance). */
static nb_tensor *distance(nb_scratch *s, const nb_tensor *a, const nb_tensor *b, double p, double eps) {
    nb_tensor *shift = nb__keep(s, nb__scalar_like(a, eps));
    nb_tensor *d = nb__keep(s, nb_add(nb__keep(s, nb_sub(a, b)), shift));
    return nb__keep(s, nb_norm(d, p, 1, last_dim, false));
}

nb_tensor *nb_triplet_margin_loss(const nb_tensor *anchor, const nb_tensor *positive, const nb_tensor *negative,
                                  const nb_triplet_options *options, nb_reduction reduction) {
    const char *fn = "nb_triplet_margin_loss";
    nb_triplet_options o = options ? *options : (nb_triplet_options){0};
    double margin = o.margin == 0 && !signbit(o.margin) ? 1 : o.margin, p = o.p ? o.p : 2;
    double eps = o.eps == 0 && !signbit(o.eps) ? 1e-6 : o.eps;
    if (check_rows(fn, (const nb_tensor *[]){anchor, positive, negative},
                   (const char *[]){"anchor", "positive", "negative"}, 3, NULL, reduction) != NB_OK)
        return NULL;
    if (!(isfinite(margin) && margin >= 0 && p > 0 && isfinite(p) && eps >= 0 && isfinite(eps))) {
        nb__error(NB_ERR_INVALID, "%s: needs margin >= 0, p > 0 and eps >= 0, all finite, got %g, %g and %g", fn,
                  margin, p, eps);
        return NULL;
    }
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    nb_tensor *to_pos = distance(&s, anchor, positive, p, eps), *to_neg = distance(&s, anchor, negative, p, eps);
    if (o.swap) to_neg = K(nb_minimum(to_neg, distance(&s, positive, negative, p, eps)));
    nb_tensor *gap = K(nb_add(K(nb_sub(to_pos, to_neg)), K(nb__scalar_like(to_pos ? to_pos : anchor, margin))));
    nb_tensor *losses = K(nb_clamp(gap, 0, INFINITY));
    nb_tensor *r = s.status == NB_OK ? reduce_losses(&s, losses, reduction) : NULL, *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

nb_tensor *nb_categorical_hinge_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction) {
    const char *fn = "nb_categorical_hinge_loss";
    if (check_rows(fn, (const nb_tensor *[]){input, target}, (const char *[]){"input", "target"}, 2, NULL,
                   reduction) != NB_OK)
        return NULL;
    const char *outer = nb__enter(fn);
    nb_scratch s = {0};
    /* Keras: pos = sum(t x), neg = max((1 - t) x), max(0, neg - pos + 1) per row */
    nb_tensor *tx = K(nb_mul(target, input));
    nb_tensor *pos = K(nb_sum(tx, 1, last_dim, false));
    nb_tensor *neg = K(nb_max(K(nb_sub(input, tx)), 1, last_dim, false));
    nb_tensor *gap = K(nb_add(K(nb_sub(neg, pos)), K(nb__scalar_like(pos ? pos : input, 1))));
    nb_tensor *losses = K(nb_clamp(gap, 0, INFINITY));
    nb_tensor *r = s.status == NB_OK ? reduce_losses(&s, losses, reduction) : NULL, *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}
#undef K
