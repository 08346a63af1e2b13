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

#include "../core/internal.h"

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
