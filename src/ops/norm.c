/* Normalization: batch_norm and group_norm. Statistics are taken in f32 for
 * f16 and bf16 inputs.
 *
 * batch_norm in training runs in stages, each a kernel over x seen as
 * [N, C, S] except the tiny per-channel combination, so that SyncBatchNorm
 * can combine the statistics of several processes with one all-reduce per
 * direction:
 *   1. per-channel statistics of x: count, mean and m2 = sum((x - mean)^2)
 *   2. combine statistics (Chan et al.'s pairwise update; one source here)
 *   3. normalize: y = (x - mean) * invstd * weight + bias, invstd = 1/sqrt(var + eps)
 * and its backward, with xhat = (x - mean) * invstd and n elements per channel:
 *   4. per-channel sums: sum_dy = sum(g), sum_dy_xhat = sum(g * xhat)
 *   5. dx = weight * invstd / n * (n g - sum_dy - xhat sum_dy_xhat),
 *      dweight = sum_dy_xhat, dbias = sum_dy.
 * Training also updates the running statistics in place:
 *   running = (1 - momentum) running + momentum batch (the variance unbiased).
 * In evaluation, y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
 * with nabla ops, which autograd differentiates. group_norm normalizes each
 * sample's groups of channels (with all spatial positions) and then applies
 * a per-channel affine, also with nabla ops. */
#include <math.h>
#include <stdlib.h>

#include "../core/internal.h"

#define K(expr) nb__keep(s, (expr))

/* t [C] viewed as [1, C, 1, ...] for broadcasting against x. */
static nb_tensor *per_channel(nb_scratch *s, const nb_tensor *t, const nb_tensor *x) {
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == 1 ? x->shape[1] : 1;
    return t ? K(nb_reshape(t, x->ndim, shape)) : NULL;
}

static nb_dtype stats_dtype(nb_dtype d) { return d == NB_F64 ? NB_F64 : NB_F32; }

/* Runs the stage kernel op on a (b and params may be NULL) into a new
 * tensor of shape and dtype, kept in s; NULL once a step has failed. */
static nb_tensor *stage(nb_scratch *s, nb_op op, const nb_tensor *a, const nb_tensor *b,
                        const nb_tensor *params, int ndim, const int64_t *shape, nb_dtype dtype) {
    if (s->status != NB_OK) return NULL;
    nb_op_args args = {.op = op, .dtype = a->dtype, .in = {a}, .n_in = 1};
    if (b) args.in[args.n_in++] = b;
    if (params) args.in[args.n_in++] = params;
    nb_tensor *out = NULL;
    nb__dispatch_new("nb_batch_norm", &args, ndim, shape, dtype, &out);
    return K(out);
}

/* Row i of a [k, C] tensor of per-channel values, as [C]. */
static nb_tensor *row(nb_scratch *s, const nb_tensor *t, int64_t i) {
    return K(nb_squeeze(K(nb_slice(t, 0, i, i + 1, 1)), 0));
}

/* n per-channel [C] tensors stacked into [n, C] of dtype (NULL rows: fill). */
static nb_tensor *pack(nb_scratch *s, int n, const nb_tensor *const *rows, const double *fill,
                       int64_t channels, nb_dtype dtype, nb_device device) {
    const nb_tensor *items[5];
    for (int i = 0; i < n; i++)
        items[i] = rows[i] ? K(nb_cast(rows[i], dtype)) : K(nb_full(1, &channels, fill[i], dtype, device));
    return s->status == NB_OK ? K(nb_stack(n, items, 0)) : NULL;
}

/* Stage 1: per-channel mean and m2 of x (contiguous), in the statistics dtype. */
static void channel_stats(nb_scratch *s, const nb_tensor *x, nb_tensor **mean, nb_tensor **m2,
                          double *count) {
    int64_t shape[2] = {2, x->shape[1]};
    *count = (double)(nb_numel(x) / x->shape[1]);
    nb_tensor *stats = stage(s, NB_OP_BATCH_NORM_STATS, x, NULL, NULL, 2, shape, stats_dtype(x->dtype));
    *mean = stats ? row(s, stats, 0) : NULL;
    *m2 = stats ? row(s, stats, 1) : NULL;
}

/* Stage 2: the biased variance of the combined sources; with one source the
 * mean passes through (SyncBatchNorm merges several with Chan's update). */
static nb_tensor *combine_stats(nb_scratch *s, nb_tensor *m2, double count) {
    return K(nb_div(m2, K(nb__scalar_like(m2, count))));
}

/* Stage 3: (x - mean) * invstd * weight + bias in one pass over x (contiguous). */
static nb_tensor *apply_stats(nb_scratch *s, const nb_tensor *x, const nb_tensor *mean,
                              const nb_tensor *invstd, const nb_tensor *weight,
                              const nb_tensor *bias) {
    const nb_tensor *rows[4] = {mean, invstd, weight, bias};
    const double fill[4] = {0, 0, 1, 0};
    nb_tensor *params = pack(s, 4, rows, fill, x->shape[1], mean->dtype, x->storage->device);
    return stage(s, NB_OP_BATCH_NORM_APPLY, x, NULL, params, x->ndim, x->shape, x->dtype);
}

/* Evaluation: (x - mean) * invstd * weight + bias with nabla ops. */
static nb_tensor *normalize(nb_scratch *s, const nb_tensor *x, const nb_tensor *mean,
                            const nb_tensor *invstd, const nb_tensor *weight, const nb_tensor *bias) {
    nb_tensor *scale = per_channel(s, invstd, x);
    if (weight) scale = K(nb_mul(scale, K(nb_cast(per_channel(s, weight, x), scale->dtype))));
    nb_tensor *y = K(nb_mul(K(nb_sub(x, K(nb_cast(per_channel(s, mean, x), x->dtype)))),
                            K(nb_cast(scale, x->dtype))));
    if (bias) y = K(nb_add(y, K(nb_cast(per_channel(s, bias, x), x->dtype))));
    return y;
}

/* running = (1 - momentum) running + momentum value, in place. */
static void update_running(nb_scratch *s, nb_tensor *running, const nb_tensor *value, double momentum) {
    if (!running || s->status != NB_OK) return;
    nb_tensor *blended = K(nb_add(K(nb_mul(running, K(nb__scalar_like(running, 1 - momentum)))),
                                  K(nb_mul(K(nb_cast(value, running->dtype)),
                                           K(nb__scalar_like(running, momentum))))));
    if (blended && nb__copy_into(running, blended) != NB_OK) K(NULL);
    else if (blended) nb__bump_version(running);
}

/* Stages 4 and 5. The node saves x, weight, bias, mean and invstd (weight
 * and bias may be NULL); SyncBatchNorm's also saves the rank's share of the
 * global count [C] and has its communicator in attrs: the sums then add
 * over the ranks (one all-reduce, which every rank joins even after a local
 * failure), scaled by the share so that the apply stage's local-count
 * formula gives the global one, while the weight and bias gradients stay
 * the rank's. */
static nb_status batch_norm_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                     nb_tensor **grads) {
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1];
    const nb_tensor *mean = node->inputs[3], *invstd = node->inputs[4];
    bool sync = node->n_inputs == 6, empty = nb_numel(x) == 0;
    nb_scratch scratch = {0}, *s = &scratch;
    int64_t channels = x->shape[1], sums_shape[2] = {2, channels};
    nb_device device = x->storage->device;
    nb_tensor *gc = K(nb_contiguous(g));
    x = K(nb_contiguous(x)); /* the kernels read [N, C, S] densely */
    const nb_tensor *stats[2] = {mean, invstd};
    const double none[5] = {0, 0, 1, 0, 0};
    nb_tensor *params = pack(s, 2, stats, none, channels, mean->dtype, device);
    nb_tensor *local = empty ? K(nb_zeros(2, sums_shape, mean->dtype, device))
                     : gc   ? stage(s, NB_OP_BATCH_NORM_BACKWARD_REDUCE, gc, x, params, 2, sums_shape, mean->dtype)
                            : NULL;
    nb_tensor *sums = local;
    if (sync) {
        nb_tensor *global = K(local ? nb_clone(local) : nb_zeros(2, sums_shape, mean->dtype, device));
        if (global && nb_dist_all_reduce(node->attrs.sync_bn.comm, global, global, NB_REDUCE_SUM, NULL) != NB_OK)
            K(NULL);
        sums = s->status == NB_OK ? K(nb_mul(global, K(nb_cast(node->inputs[5], global->dtype)))) : NULL;
    }
    if (needs[0] && s->status == NB_OK && empty) {
        grads[0] = nb_zeros(x->ndim, x->shape, x->dtype, device);
    } else if (needs[0] && s->status == NB_OK) {
        const nb_tensor *rows[5] = {mean, invstd, weight, row(s, sums, 0), row(s, sums, 1)};
        nb_tensor *all = s->status == NB_OK ? pack(s, 5, rows, none, channels, mean->dtype, device) : NULL;
        nb_tensor *dx = all ? stage(s, NB_OP_BATCH_NORM_BACKWARD_APPLY, gc, x, all, x->ndim, x->shape, x->dtype)
                            : NULL;
        if (dx) grads[0] = nb_retain(dx);
    }
    if (needs[1] && s->status == NB_OK) grads[1] = nb_cast(row(s, local, 1), weight->dtype);
    if (needs[2] && s->status == NB_OK) grads[2] = nb_cast(row(s, local, 0), node->inputs[2]->dtype);
    for (int i = 0; i < 3; i++)
        if (needs[i] && !grads[i] && s->status == NB_OK) K(NULL);
    return nb__scratch_finish(s, NULL, NULL);
}

static nb_status check_channel_param(const char *fn, const char *name, const nb_tensor *p,
                                     const nb_tensor *x) {
    if (!p) return NB_OK;
    NB_CHECK(p->ndim == 1 && p->shape[0] == x->shape[1], NB_ERR_SHAPE,
             "%s: %s must be [%lld] (the channels of x %s), got %s", fn, name,
             (long long)x->shape[1], nb__tensor_shape_str(x), nb__tensor_shape_str(p));
    NB_CHECK(nb_dtype_is_float(p->dtype), NB_ERR_DTYPE, "%s: %s must be float, got %s", fn, name,
             nb_dtype_name(p->dtype));
    NB_CHECK(nb__same_device(p->storage->device, x->storage->device), NB_ERR_DEVICE,
             "%s: %s is on %s but x on %s", fn, name, nb__device_name(p->storage->device),
             nb__device_name(x->storage->device));
    return NB_OK;
}

/* sync: the statistics come from every rank, so this rank's batch may hold
 * one value a channel, or none. */
static nb_status check_batch_norm(const char *fn, const nb_tensor *x, const nb_tensor *running_mean,
                                  const nb_tensor *running_var, const nb_tensor *weight,
                                  const nb_tensor *bias, bool training, double momentum,
                                  double eps, bool sync) {
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(nb_dtype_is_float(x->dtype), NB_ERR_DTYPE, "%s: needs a float x, got %s", fn,
             nb_dtype_name(x->dtype));
    NB_CHECK(x->ndim >= 2 && x->shape[1] > 0, NB_ERR_SHAPE,
             "%s: needs x [N, C, ...] with C > 0, got %s", fn, nb__tensor_shape_str(x));
    NB_CHECK(eps > 0 && isfinite(eps) && momentum >= 0 && momentum <= 1, NB_ERR_INVALID,
             "%s: needs a finite eps > 0 and momentum in [0, 1], got eps %g and momentum %g", fn,
             eps, momentum);
    NB_CHECK(training || (running_mean && running_var), NB_ERR_INVALID,
             "%s: evaluation needs running_mean and running_var", fn);
    NB_CHECK(!training || sync || nb_numel(x) / x->shape[1] > 1 || nb_numel(x) == 0, NB_ERR_SHAPE,
             "%s: training needs more than one value per channel, got x %s", fn,
             nb__tensor_shape_str(x));
    NB_TRY(check_channel_param(fn, "running_mean", running_mean, x));
    NB_TRY(check_channel_param(fn, "running_var", running_var, x));
    NB_TRY(check_channel_param(fn, "weight", weight, x));
    return check_channel_param(fn, "bias", bias, x);
}

static nb_tensor *batch_norm_eval(nb_scratch *s, const nb_tensor *x, const nb_tensor *running_mean,
                                  const nb_tensor *running_var, const nb_tensor *weight,
                                  const nb_tensor *bias, double eps) {
    nb_tensor *invstd = K(nb_rsqrt(K(nb_add(running_var, K(nb__scalar_like(running_var, eps))))));
    return normalize(s, x, running_mean, invstd, weight, bias);
}

nb_tensor *nb_batch_norm(const nb_tensor *x, nb_tensor *running_mean, nb_tensor *running_var,
                         const nb_tensor *weight, const nb_tensor *bias, bool training,
                         double momentum, double eps) {
    if (check_batch_norm("nb_batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps,
                         false) != NB_OK)
        return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *out = NULL;
    if (!training) { /* differentiable through the ops themselves */
        nb_tensor *y = batch_norm_eval(s, x, running_mean, running_var, weight, bias, eps);
        return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
    }
    if (nb_numel(x) == 0) { /* as PyTorch: an empty result, zero gradients, running stats kept */
        nb_device device = x->storage->device;
        nb_tensor *zeros = K(nb_zeros(1, &x->shape[1], stats_dtype(x->dtype), device));
        nb_tensor *ones = K(nb_ones(1, &x->shape[1], stats_dtype(x->dtype), device));
        nb_tensor *y = s->status == NB_OK ? normalize(s, x, zeros, ones, weight, bias) : NULL;
        return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
    }
    bool was = nb_set_grad_enabled(false);
    nb_tensor *mean = NULL, *m2 = NULL, *dense = K(nb_contiguous(x));
    double count = 0;
    if (dense) channel_stats(s, dense, &mean, &m2, &count);
    nb_tensor *var = combine_stats(s, m2, count);
    nb_tensor *invstd = K(nb_rsqrt(K(nb_add(var, K(nb__scalar_like(var, eps))))));
    nb_tensor *y = s->status == NB_OK ? apply_stats(s, dense, mean, invstd, weight, bias) : NULL;
    update_running(s, running_mean, mean, momentum);
    if (running_var && s->status == NB_OK)
        update_running(s, running_var, K(nb_mul(var, K(nb__scalar_like(var, count / (count - 1))))),
                       momentum);
    nb_set_grad_enabled(was);
    if (s->status == NB_OK) {
        const nb_tensor *saved[5] = {x, weight, bias, mean, invstd};
        if (nb__record(y, NB_OP_BATCH_NORM, 5, saved, NULL, batch_norm_backward) != NB_OK) K(NULL);
    }
    return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
}

/* ---- SyncBatchNorm: BatchNorm's statistics over every rank's batch ----
 *
 * Forward: each rank's per-channel count, mean and m2 (the stage kernel),
 * gathered from every rank in one collective of one packed f64 buffer
 * [3, C], then merged with tensor ops on the input's device (no host
 * sync): n = sum n_r, mean = sum n_r mean_r / n, m2 = sum m2_r +
 * sum n_r (mean_r - mean)^2 (the exact pairwise merge, Chan et al., summed
 * in rank order), so uneven batches (an empty one too) give the exact
 * global statistics and every rank the same bits. Channels of a global
 * count of 0 normalize with mean 0 and invstd 1, and keep their running
 * statistics. Backward is BatchNorm's (batch_norm_backward) with the sums
 * added over the ranks; the weight and bias gradients stay local, as
 * PyTorch's: data parallelism averages them over the ranks. */

/* This rank's (count, mean, m2) per channel, packed [3, C] in f64 on x's device. */
static nb_tensor *local_moments(nb_scratch *s, const nb_tensor *dense) {
    int64_t channels = dense->shape[1], shape[2] = {3, channels};
    nb_device device = dense->storage->device;
    if (nb_numel(dense) == 0) return K(nb_zeros(2, shape, NB_F64, device));
    nb_tensor *mean = NULL, *m2 = NULL;
    double count = 0;
    channel_stats(s, dense, &mean, &m2, &count);
    if (!mean || !m2) return NULL;
    const nb_tensor *rows[3] = {K(nb_full(1, &channels, count, NB_F64, device)), K(nb_cast(mean, NB_F64)),
                                K(nb_cast(m2, NB_F64))};
    return rows[0] && rows[1] && rows[2] ? K(nb_stack(3, rows, 0)) : NULL;
}

/* Row k of the gathered [world, 3, C] moments: [world, C]. */
static nb_tensor *moment(nb_scratch *s, const nb_tensor *gathered, int k) {
    return K(nb_squeeze(K(nb_slice(gathered, 1, k, k + 1, 1)), 1));
}

/* The global count n, mean and biased variance [C] from the gathered
 * moments, as new references (a scratch of their own: the formula's
 * temporaries are many). */
static nb_status merge_moments(const nb_tensor *gathered, nb_tensor **n, nb_tensor **mean, nb_tensor **var) {
    nb_scratch scratch = {0}, *s = &scratch;
    int ranks = 0;
    nb_tensor *counts = moment(s, gathered, 0), *means = moment(s, gathered, 1), *m2s = moment(s, gathered, 2);
    nb_tensor *total = counts ? K(nb_sum(counts, 1, &ranks, false)) : NULL;
    /* an empty channel divides by 1: its sums are 0 */
    nb_tensor *safe = total ? K(nb_maximum(total, K(nb__scalar_like(total, 1)))) : NULL;
    nb_tensor *mu = safe ? K(nb_div(K(nb_sum(K(nb_mul(counts, means)), 1, &ranks, false)), safe)) : NULL;
    nb_tensor *spread = mu ? K(nb_sub(means, mu)) : NULL;
    nb_tensor *m2 = spread ? K(nb_add(K(nb_sum(m2s, 1, &ranks, false)),
                                      K(nb_sum(K(nb_mul(counts, K(nb_mul(spread, spread)))), 1, &ranks, false))))
                           : NULL;
    nb_tensor *biased = m2 ? K(nb_div(m2, safe)) : NULL;
    if (biased) {
        *n = nb_retain(total);
        *mean = nb_retain(mu);
        *var = nb_retain(biased);
    }
    return nb__scratch_finish(s, NULL, NULL);
}

/* running = (1 - momentum) running + momentum value where keep, in place
 * (a scratch of its own). */
static nb_status update_running_where(nb_tensor *running, const nb_tensor *value, double momentum,
                                      const nb_tensor *keep) {
    if (!running) return NB_OK;
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *blended = K(nb_add(K(nb_mul(running, K(nb__scalar_like(running, 1 - momentum)))),
                                  K(nb_mul(K(nb_cast(value, running->dtype)), K(nb__scalar_like(running, momentum))))));
    nb_tensor *kept = blended ? K(nb_where(keep, blended, running)) : NULL;
    if (kept && nb__copy_into(running, kept) != NB_OK) K(NULL);
    else if (kept) nb__bump_version(running);
    return nb__scratch_finish(s, NULL, NULL);
}

static nb_tensor *sync_batch_norm_train(nb_scratch *s, const nb_tensor *x, nb_tensor *running_mean,
                                        nb_tensor *running_var, const nb_tensor *weight, const nb_tensor *bias,
                                        double momentum, double eps, nb_comm *comm) {
    int world = nb_dist_world_size(comm);
    int64_t channels = x->shape[1], gathered_shape[3] = {world, 3, channels};
    nb_device device = x->storage->device;
    nb_dtype stats = stats_dtype(x->dtype);
    bool was = nb_set_grad_enabled(false);
    nb_tensor *dense = K(nb_contiguous(x));
    nb_tensor *moments = dense ? local_moments(s, dense) : NULL;
    /* every rank joins the gather, even after a local failure */
    nb_tensor *sent = moments ? moments : K(nb_zeros(2, (int64_t[]){3, channels}, NB_F64, device));
    nb_tensor *gathered = K(nb_zeros(3, gathered_shape, NB_F64, device));
    nb_tensor *flat = gathered ? K(nb_reshape(gathered, 2, (int64_t[]){3 * (int64_t)world, channels})) : NULL;
    if (sent && flat && nb_dist_all_gather(comm, sent, flat, NULL) != NB_OK) K(NULL);
    nb_tensor *n = NULL, *mean64 = NULL, *var64 = NULL, *y = NULL, *mean = NULL, *invstd = NULL, *share = NULL;
    if (s->status == NB_OK) {
        if (merge_moments(gathered, &n, &mean64, &var64) == NB_OK) K(n), K(mean64), K(var64);
        else K(NULL);
    }
    if (s->status == NB_OK) {
        nb_tensor *seen = K(nb_gt(n, K(nb__scalar_like(n, 0)))), *several = K(nb_gt(n, K(nb__scalar_like(n, 1))));
        mean = K(nb_cast(mean64, stats));
        nb_tensor *var = K(nb_cast(var64, stats));
        nb_tensor *rstd = var ? K(nb_rsqrt(K(nb_add(var, K(nb__scalar_like(var, eps)))))) : NULL;
        invstd = rstd ? K(nb_where(seen, rstd, K(nb__scalar_like(rstd, 1)))) : NULL; /* empty channels: 1 */
        double local_count = (double)(channels ? nb_numel(x) / channels : 0);
        nb_tensor *safe = n ? K(nb_maximum(n, K(nb__scalar_like(n, 1)))) : NULL;
        share = safe ? K(nb_div(K(nb__scalar_like(safe, local_count)), safe)) : NULL;
        y = s->status != NB_OK ? NULL
            : nb_numel(x) ? apply_stats(s, dense, mean, invstd, weight, bias)
                          : normalize(s, x, mean, invstd, weight, bias);
        if (s->status == NB_OK && update_running_where(running_mean, mean, momentum, seen) != NB_OK) K(NULL);
        nb_tensor *one = n ? K(nb__scalar_like(n, 1)) : NULL;
        nb_tensor *dof = one ? K(nb_maximum(K(nb_sub(n, one)), one)) : NULL; /* n - 1, at least 1 */
        nb_tensor *unbiased = dof ? K(nb_mul(var64, K(nb_div(n, dof)))) : NULL;
        if (s->status == NB_OK && update_running_where(running_var, unbiased, momentum, several) != NB_OK) K(NULL);
    }
    nb_set_grad_enabled(was);
    if (s->status == NB_OK) {
        const nb_tensor *saved[6] = {x, weight, bias, mean, invstd, share};
        nb_attrs attrs = {.sync_bn = {.comm = comm}};
        if (nb__record(y, NB_OP_BATCH_NORM, 6, saved, &attrs, batch_norm_backward) != NB_OK) K(NULL);
    }
    return y;
}

nb_tensor *nb_sync_batch_norm(const nb_tensor *x, nb_tensor *running_mean, nb_tensor *running_var,
                              const nb_tensor *weight, const nb_tensor *bias, bool training, double momentum,
                              double eps, nb_comm *comm) {
    const char *fn = "nb_sync_batch_norm";
    if (!comm) {
        nb__error(NB_ERR_INVALID, "%s: comm is NULL", fn);
        return NULL;
    }
    if (!training || nb_dist_world_size(comm) == 1) /* no communication */
        return nb_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps);
    if (check_batch_norm(fn, x, running_mean, running_var, weight, bias, training, momentum, eps, true) != NB_OK)
        return NULL;
    const char *outer = nb__enter(fn);
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *y = sync_batch_norm_train(s, x, running_mean, running_var, weight, bias, momentum, eps, comm);
    nb_tensor *out = NULL;
    nb_status status = nb__scratch_finish(s, y, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

nb_tensor *nb_group_norm(const nb_tensor *x, int groups, const nb_tensor *weight,
                         const nb_tensor *bias, double eps) {
    const char *fn = "nb_group_norm";
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: x is NULL", fn);
        return NULL;
    }
    if (!nb_dtype_is_float(x->dtype)) {
        nb__error(NB_ERR_DTYPE, "%s: needs a float x, got %s", fn, nb_dtype_name(x->dtype));
        return NULL;
    }
    if (!(eps > 0 && isfinite(eps))) {
        nb__error(NB_ERR_INVALID, "%s: eps must be finite and > 0, got %g", fn, eps);
        return NULL;
    }
    if (x->ndim < 2 || groups < 1 || x->shape[1] % groups) {
        nb__error(NB_ERR_SHAPE, "%s: needs x [N, C, ...] with C divisible by groups %d, got %s", fn,
                  groups, nb__tensor_shape_str(x));
        return NULL;
    }
    if (check_channel_param(fn, "weight", weight, x) != NB_OK ||
        check_channel_param(fn, "bias", bias, x) != NB_OK)
        return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    /* the group size spelled out: a batch of 0 leaves nothing to infer a -1 from */
    int64_t grouped[3] = {x->shape[0], groups, x->shape[1] / groups * nb__numel(x->ndim - 2, x->shape + 2)};
    int last = 2;
    nb_tensor *xs = K(nb_reshape(K(nb_cast(x, stats_dtype(x->dtype))), 3, grouped));
    nb_tensor *mean = K(nb_mean(xs, 1, &last, true));
    nb_tensor *var = K(nb_var(xs, 1, &last, 0, true));
    nb_tensor *invstd = K(nb_rsqrt(K(nb_add(var, K(nb__scalar_like(var, eps))))));
    nb_tensor *normed = K(nb_mul(K(nb_sub(xs, mean)), invstd));
    nb_tensor *y = K(nb_cast(K(nb_reshape(normed, x->ndim, x->shape)), x->dtype));
    if (weight) y = K(nb_mul(y, K(nb_cast(per_channel(s, weight, x), x->dtype))));
    if (bias) y = K(nb_add(y, K(nb_cast(per_channel(s, bias, x), x->dtype))));
    nb_tensor *out = NULL;
    return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
}

/* ---- layer_norm and rms_norm: x seen as [rows, D], D the product of the
 * last normalized dims. The forward kernel normalizes each row and saves
 * stats [rows, 2] (mean, 0 for rms_norm, and rstd = 1/sqrt(var + eps)); the
 * backward kernel recomputes xhat = (x - mean) rstd from them and writes,
 * with gw = g * weight,
 *   layer_norm: dx = rstd (gw - mean(gw) - xhat mean(gw xhat))
 *   rms_norm:   dx = rstd (gw - xhat mean(gw xhat))
 * and adds sum over rows of g xhat and of g into dparams [2, D] (the weight
 * and bias gradients) in the same pass. ---- */

static nb_status check_row_norm(const char *fn, const nb_tensor *x, int dims,
                                const nb_tensor *weight, const nb_tensor *bias, double eps) {
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(nb_dtype_is_float(x->dtype), NB_ERR_DTYPE, "%s: x must be float, got %s", fn,
             nb_dtype_name(x->dtype));
    NB_CHECK(dims >= 1 && dims <= x->ndim, NB_ERR_SHAPE,
             "%s: normalized_dims must be in [1, %d] for x %s, got %d", fn, x->ndim,
             nb__tensor_shape_str(x), dims);
    NB_CHECK(eps > 0 && isfinite(eps), NB_ERR_INVALID, "%s: eps must be positive, got %g", fn, eps);
    const nb_tensor *params[2] = {weight, bias};
    for (int i = 0; i < 2; i++) {
        const nb_tensor *p = params[i];
        if (!p) continue;
        const char *name = i ? "bias" : "weight";
        bool same = p->ndim == dims;
        for (int d = 0; same && d < dims; d++) same = p->shape[d] == x->shape[x->ndim - dims + d];
        NB_CHECK(same, NB_ERR_SHAPE, "%s: %s must have the shape of x's last %d dims (x is %s), got %s",
                 fn, name, dims, nb__tensor_shape_str(x), nb__tensor_shape_str(p));
        NB_CHECK(p->dtype == x->dtype, NB_ERR_DTYPE, "%s: %s is %s but x is %s", fn, name,
                 nb_dtype_name(p->dtype), nb_dtype_name(x->dtype));
        NB_CHECK(nb__same_device(p->storage->device, x->storage->device), NB_ERR_DEVICE,
                 "%s: %s is on %s but x on %s", fn, name, nb__device_name(p->storage->device),
                 nb__device_name(x->storage->device));
    }
    return NB_OK;
}

static nb_status row_norm_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                   nb_tensor **grads) {
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1], *bias = node->inputs[2];
    const nb_tensor *stats = node->inputs[3];
    nb_scratch scratch = {0}, *s = &scratch;
    int64_t d = weight ? nb_numel(weight) : bias ? nb_numel(bias) : 0, shape[2] = {2, d};
    nb_tensor *dparams = needs[1] || needs[2]
                             ? K(nb_zeros(2, shape, stats->dtype, x->storage->device)) : NULL;
    nb_op op = node->op == NB_OP_LAYER_NORM ? NB_OP_LAYER_NORM_BACKWARD : NB_OP_RMS_NORM_BACKWARD;
    nb_op_args args = {.op = op, .dtype = x->dtype, .in = {K(nb_contiguous(g)), x, weight, stats, dparams},
                       .n_in = 5, .attrs = node->attrs};
    nb_tensor *dx = NULL;
    if (s->status == NB_OK) nb__dispatch_new(nb__op_fn(node->op), &args, x->ndim, x->shape, x->dtype, &dx);
    K(dx);
    if (needs[0] && dx) grads[0] = nb_retain(dx);
    for (int i = 1; i < 3; i++) {
        const nb_tensor *p = node->inputs[i];
        if (!needs[i] || s->status != NB_OK) continue;
        nb_tensor *sums = K(nb_reshape(row(s, dparams, i - 1), p->ndim, p->shape));
        grads[i] = sums ? nb_cast(sums, p->dtype) : NULL;
        if (!grads[i]) K(NULL);
    }
    return nb__scratch_finish(s, NULL, NULL);
}

static nb_tensor *row_norm(nb_op op, const nb_tensor *x, int dims, const nb_tensor *weight,
                           const nb_tensor *bias, double eps) {
    const char *fn = nb__op_fn(op);
    if (check_row_norm(fn, x, dims, weight, bias, eps) != NB_OK) return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    int64_t d = nb__numel(dims, x->shape + x->ndim - dims);
    int64_t stats_shape[2] = {d ? nb_numel(x) / d : 0, 2};
    nb_tensor *dense = K(nb_contiguous(x));
    nb_tensor *w = weight ? K(nb_contiguous(weight)) : NULL, *b = bias ? K(nb_contiguous(bias)) : NULL;
    nb_tensor *stats = K(nb_empty(2, stats_shape, stats_dtype(x->dtype), x->storage->device));
    nb_tensor *y = NULL;
    if (s->status == NB_OK) {
        nb_op_args args = {.op = op, .dtype = x->dtype, .in = {dense, w, b, stats}, .n_in = 4,
                           .attrs.norm = {eps}};
        nb__dispatch_new(fn, &args, x->ndim, x->shape, x->dtype, &y);
        K(y);
    }
    if (s->status == NB_OK) {
        const nb_tensor *saved[4] = {dense, w, b, stats};
        nb_attrs attrs = {.norm = {eps}};
        if (nb__record(y, op, 4, saved, &attrs, row_norm_backward) != NB_OK) K(NULL);
    }
    nb_tensor *out = NULL;
    return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
}

nb_tensor *nb_layer_norm(const nb_tensor *x, int normalized_dims, const nb_tensor *weight,
                         const nb_tensor *bias, double eps) {
    return row_norm(NB_OP_LAYER_NORM, x, normalized_dims, weight, bias, eps);
}

nb_tensor *nb_rms_norm(const nb_tensor *x, int normalized_dims, const nb_tensor *weight,
                       double eps) {
    return row_norm(NB_OP_RMS_NORM, x, normalized_dims, weight, NULL, eps);
}
