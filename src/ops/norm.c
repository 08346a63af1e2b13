/* Normalization: batch_norm and group_norm, written with nabla ops so they
 * run on every backend. Statistics are taken in f32 for f16 and bf16 inputs.
 *
 * batch_norm in training runs in stages, so that SyncBatchNorm can combine
 * the statistics of several processes with one all-reduce per direction:
 *   1. per-channel statistics of x: count, mean and m2 = sum((x - mean)^2)
 *   2. combine statistics (Chan et al.'s pairwise update; one source here)
 *   3. normalize: y = (x - mean) * invstd * weight + bias, invstd = 1/sqrt(var + eps)
 * and its backward, with xhat = (x - mean) * invstd and n elements per channel:
 *   4. per-channel sums: sum_dy = sum(g), sum_dy_xhat = sum(g * xhat)
 *   5. dx = weight * invstd / n * (n g - sum_dy - xhat sum_dy_xhat),
 *      dweight = sum_dy_xhat, dbias = sum_dy.
 * Training also updates the running statistics in place:
 *   running = (1 - momentum) running + momentum batch (the variance unbiased).
 * In evaluation, y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.
 * group_norm normalizes each sample's groups of channels (with all spatial
 * positions) and then applies a per-channel affine; autograd differentiates
 * its ops. */
#include <math.h>

#include "../core/internal.h"

#define K(expr) nb__keep(s, (expr))

/* t [C] viewed as [1, C, 1, ...] for broadcasting against x. */
static nb_tensor *per_channel(nb_scratch *s, const nb_tensor *t, const nb_tensor *x) {
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == 1 ? x->shape[1] : 1;
    return t ? K(nb_reshape(t, x->ndim, shape)) : NULL;
}

/* The dims batch_norm reduces over: all but the channel dim 1. */
static int reduced_dims(const nb_tensor *x, int *dims) {
    int n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != 1) dims[n++] = d;
    return n;
}

static nb_dtype stats_dtype(nb_dtype d) { return d == NB_F64 ? NB_F64 : NB_F32; }

/* Stage 1: per-channel mean and m2 of x, in the statistics dtype. */
static void channel_stats(nb_scratch *s, const nb_tensor *x, nb_tensor **mean, nb_tensor **m2,
                          double *count) {
    int dims[NB_MAX_DIMS], n = reduced_dims(x, dims);
    nb_tensor *xs = K(nb_cast(x, stats_dtype(x->dtype)));
    *count = (double)(nb_numel(x) / x->shape[1]);
    *mean = K(nb_mean(xs, n, dims, false));
    *m2 = K(nb_mul(K(nb_var(xs, n, dims, 0, false)), K(nb__scalar_like(*mean, *count))));
}

/* Stage 2: the biased variance of the combined sources; with one source the
 * mean passes through (SyncBatchNorm merges several with Chan's update). */
static nb_tensor *combine_stats(nb_scratch *s, nb_tensor *m2, double count) {
    return K(nb_div(m2, K(nb__scalar_like(m2, count))));
}

/* Stage 3 (and evaluation): (x - mean) * invstd * weight + bias. */
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
}

/* Stages 4 and 5. The node saves x, weight, bias, mean and invstd (weight and
 * bias may be NULL). */
static nb_status batch_norm_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                     nb_tensor **grads) {
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1];
    const nb_tensor *mean = node->inputs[3], *invstd = node->inputs[4];
    nb_scratch scratch = {0}, *s = &scratch;
    int dims[NB_MAX_DIMS], nd = reduced_dims(x, dims);
    double n = (double)(nb_numel(x) / x->shape[1]);
    nb_dtype sd = mean->dtype;
    nb_tensor *gs = K(nb_cast(g, sd)), *xs = K(nb_cast(x, sd));
    nb_tensor *xhat = K(nb_mul(K(nb_sub(xs, per_channel(s, mean, x))), per_channel(s, invstd, x)));
    nb_tensor *sum_dy = K(nb_sum(gs, nd, dims, false));
    nb_tensor *sum_dy_xhat = K(nb_sum(K(nb_mul(gs, xhat)), nd, dims, false));
    if (needs[0]) {
        nb_tensor *scale = K(nb_div(invstd, K(nb__scalar_like(invstd, n))));
        if (weight) scale = K(nb_mul(scale, K(nb_cast(weight, sd))));
        nb_tensor *inner = K(nb_sub(K(nb_sub(K(nb_mul(gs, K(nb__scalar_like(gs, n)))),
                                             per_channel(s, sum_dy, x))),
                                    K(nb_mul(xhat, per_channel(s, sum_dy_xhat, x)))));
        nb_tensor *dx = K(nb_cast(K(nb_mul(inner, per_channel(s, scale, x))), x->dtype));
        if (s->status == NB_OK) grads[0] = nb_retain(dx);
    }
    if (needs[1] && s->status == NB_OK) grads[1] = nb_cast(sum_dy_xhat, weight->dtype);
    if (needs[2] && s->status == NB_OK) grads[2] = nb_cast(sum_dy, node->inputs[2]->dtype);
    for (int i = 1; i < 3; i++)
        if (needs[i] && !grads[i]) K(NULL);
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

static nb_status check_batch_norm(const nb_tensor *x, const nb_tensor *running_mean,
                                  const nb_tensor *running_var, const nb_tensor *weight,
                                  const nb_tensor *bias, bool training, double momentum,
                                  double eps) {
    const char *fn = "nb_batch_norm";
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(x->ndim >= 2 && x->shape[1] > 0 && nb_dtype_is_float(x->dtype), NB_ERR_SHAPE,
             "%s: needs a float x [N, C, ...] with C > 0, got %s %s", fn, nb_dtype_name(x->dtype),
             nb__tensor_shape_str(x));
    NB_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, NB_ERR_INVALID,
             "%s: needs eps > 0 and momentum in [0, 1], got %g and %g", fn, eps, momentum);
    NB_CHECK(training || (running_mean && running_var), NB_ERR_INVALID,
             "%s: evaluation needs running_mean and running_var", fn);
    NB_CHECK(!training || nb_numel(x) / x->shape[1] > 1 || nb_numel(x) == 0, NB_ERR_SHAPE,
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
    if (check_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps) !=
        NB_OK)
        return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *out = NULL;
    if (!training) { /* differentiable through the ops themselves */
        nb_tensor *y = batch_norm_eval(s, x, running_mean, running_var, weight, bias, eps);
        return nb__scratch_finish(s, y, &out) == NB_OK ? out : NULL;
    }
    bool was = nb_set_grad_enabled(false);
    nb_tensor *mean, *m2;
    double count;
    channel_stats(s, x, &mean, &m2, &count);
    nb_tensor *var = combine_stats(s, m2, count);
    nb_tensor *invstd = K(nb_rsqrt(K(nb_add(var, K(nb__scalar_like(var, eps))))));
    nb_tensor *y = normalize(s, x, mean, invstd, weight, bias);
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

nb_tensor *nb_group_norm(const nb_tensor *x, int groups, const nb_tensor *weight,
                         const nb_tensor *bias, double eps) {
    const char *fn = "nb_group_norm";
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: x is NULL", fn);
        return NULL;
    }
    if (x->ndim < 2 || !nb_dtype_is_float(x->dtype) || groups < 1 || x->shape[1] % groups ||
        !(eps > 0)) {
        nb__error(NB_ERR_SHAPE, "%s: needs a float x [N, C, ...] with C divisible by groups %d and "
                  "eps > 0, got %s %s and eps %g", fn, groups, nb_dtype_name(x->dtype),
                  nb__tensor_shape_str(x), eps);
        return NULL;
    }
    if (check_channel_param(fn, "weight", weight, x) != NB_OK ||
        check_channel_param(fn, "bias", bias, x) != NB_OK)
        return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    int64_t grouped[3] = {x->shape[0], groups, -1};
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
