/* Data parallelism (include/nabla/dist.h), as PyTorch's
 * DistributedDataParallel: the model's parameters are broadcast from rank 0,
 * then each backward averages the gradients over the ranks in buckets.
 *
 * Buckets hold parameters of one dtype in reverse order of registration (the
 * order backward produces their gradients), up to bucket_mib each; a
 * parameter larger than that is a bucket of its own. A gradient-ready hook
 * on each parameter (nb_set_grad_ready_hook) marks it done; when every
 * parameter of a bucket is done, its gradients are copied into the bucket's
 * flat buffer and its all-reduce starts on the communicator's thread while
 * backward goes on. Buckets start in order (bucket k only after k - 1), so
 * every rank issues the same collectives in the same order whatever order
 * its gradients came in. nb_ddp_finish starts the buckets whose parameters
 * got no gradient, waits for all, and writes the averages back. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/internal.h"

#define NB_DDP_DEFAULT_BUCKET_MIB 25.0

typedef struct bucket {
    int first, count;    /* its parameters: ddp->params[first .. first + count) */
    int ready;           /* parameters whose gradient is complete this backward */
    nb_tensor *flat;     /* [elements] of the parameters' dtype */
    nb_dist_work *work;  /* the running all-reduce, NULL before it starts */
    double ready_at, started_at, done_at; /* seconds since the backward's first hook */
} bucket;

struct nb_ddp {
    nb_comm *comm;
    nb_named_tensor *buffers;      /* broadcast by nb_ddp_broadcast_buffers */
    int n_buffers;
    nb_device device;              /* every parameter's */
    bool error_on_unused, sync;
    int n_params, n_buckets, next; /* next: the first bucket not started */
    nb_named_tensor *params;
    int *bucket_of;                /* parameter -> its bucket */
    int64_t *offset_of;            /* parameter -> its first element in the bucket */
    bool *done;                    /* parameter -> its gradient is complete this backward */
    bool *reached;                 /* parameter -> nb_ddp_backward's loss uses it */
    bucket *buckets;
    double epoch;                  /* the first hook's time */
    double backward_at;            /* when nb_ddp_backward's backward returned, from epoch */
    bool started;                  /* a hook has fired since the last finish */
    nb_status failure;             /* the first failure inside a hook, reported by finish */
    char message[512];
};

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fail(nb_ddp *d, nb_status status) {
    if (d->failure != NB_OK) return;
    d->failure = status;
    snprintf(d->message, sizeof d->message, "%s", nb_last_error());
}

/* Copies the bucket's gradients (zeros for a parameter without one) into its
 * flat buffer and starts the all-reduce. */
static void start_bucket(nb_ddp *d, bucket *b) {
    b->started_at = seconds() - d->epoch;
    for (int i = b->first; i < b->first + b->count; i++) {
        nb_tensor *p = d->params[i].tensor;
        int64_t n = nb_numel(p), from = d->offset_of[i];
        nb_tensor *slot = nb_slice(b->flat, 0, from, from + n, 1);
        nb_tensor *grad = p->grad ? nb_reshape(p->grad, 1, &n) : NULL;
        nb_status status = !slot || (p->grad && !grad) ? nb_last_status()
                           : grad ? nb_copy_(slot, grad)
                                  : nb_init_constant(slot, 0);
        nb_release(grad);
        nb_release(slot);
        if (status != NB_OK) fail(d, status);
    }
    /* started even after a failure here: the other ranks start it too */
    nb_status status = nb_dist_all_reduce(d->comm, b->flat, b->flat, NB_REDUCE_AVG, &b->work);
    if (status != NB_OK) fail(d, status);
}

/* Starts the ready buckets in order from d->next. */
static void start_ready(nb_ddp *d) {
    while (d->next < d->n_buckets) {
        bucket *b = &d->buckets[d->next];
        if (b->ready < b->count) break;
        start_bucket(d, b);
        d->next++;
    }
}

static void on_grad_ready(nb_tensor *leaf, void *user) {
    nb_ddp *d = user;
    if (!d->sync) return;
    int i = 0;
    while (i < d->n_params && d->params[i].tensor != leaf) i++;
    if (i == d->n_params || d->done[i]) return;
    if (!d->started) {
        d->started = true;
        d->epoch = seconds();
    }
    d->done[i] = true;
    bucket *b = &d->buckets[d->bucket_of[i]];
    if (++b->ready == b->count) b->ready_at = seconds() - d->epoch;
    start_ready(d);
}

/* Lays the parameters into buckets, last registered first. */
static nb_status plan_buckets(nb_ddp *d, double bucket_mib) {
    double limit = bucket_mib * 1048576.0;
    d->buckets = nb__calloc((size_t)d->n_params + 1, sizeof *d->buckets);
    NB_CHECK(d->buckets, NB_ERR_OOM, "nb_ddp_create: out of host memory");
    /* params are reordered so that each bucket is a run of them */
    nb_named_tensor *reversed = nb__malloc((size_t)d->n_params * sizeof *reversed);
    NB_CHECK(reversed, NB_ERR_OOM, "nb_ddp_create: out of host memory");
    for (int i = 0; i < d->n_params; i++) reversed[i] = d->params[d->n_params - 1 - i];
    memcpy(d->params, reversed, (size_t)d->n_params * sizeof *reversed);
    free(reversed);
    double bytes = 0;
    for (int i = 0; i < d->n_params; i++) {
        nb_tensor *p = d->params[i].tensor;
        double size = (double)nb_numel(p) * (double)nb_dtype_size(p->dtype);
        bucket *b = d->n_buckets ? &d->buckets[d->n_buckets - 1] : NULL;
        bool same_dtype = b && d->params[b->first].tensor->dtype == p->dtype;
        if (!b || !same_dtype || bytes + size > limit) {
            b = &d->buckets[d->n_buckets++];
            b->first = i;
            bytes = 0;
        }
        d->offset_of[i] = b->count ? d->offset_of[i - 1] + nb_numel(d->params[i - 1].tensor) : 0;
        d->bucket_of[i] = d->n_buckets - 1;
        b->count++;
        bytes += size;
    }
    for (int k = 0; k < d->n_buckets; k++) {
        bucket *b = &d->buckets[k];
        int last = b->first + b->count - 1;
        int64_t elements = d->offset_of[last] + nb_numel(d->params[last].tensor);
        b->flat = nb_zeros(1, &elements, d->params[b->first].tensor->dtype, d->device);
        if (!b->flat) return nb_last_status();
    }
    return NB_OK;
}

static void release(nb_ddp *d) {
    for (int i = 0; d->params && i < d->n_params; i++)
        if (d->params[i].tensor->ready_user == d) nb_set_grad_ready_hook(d->params[i].tensor, NULL, NULL);
    for (int k = 0; d->buckets && k < d->n_buckets; k++) {
        nb_dist_work_free(d->buckets[k].work);
        nb_release(d->buckets[k].flat);
    }
    free(d->buckets);
    free(d->params);
    free(d->buffers);
    free(d->bucket_of);
    free(d->offset_of);
    free(d->done);
    free(d->reached);
    free(d);
}

nb_status nb_ddp_broadcast_parameters(nb_ddp *d) {
    NB_CHECK(d, NB_ERR_INVALID, "nb_ddp_broadcast_parameters: ddp is NULL");
    const char *outer = nb__enter("nb_ddp_broadcast_parameters");
    nb_status status = NB_OK;
    for (int i = 0; i < d->n_params && status == NB_OK; i++) {
        status = nb_dist_broadcast(d->comm, d->params[i].tensor, 0, NULL);
        if (status == NB_OK) nb__bump_version(d->params[i].tensor);
    }
    nb__leave(outer);
    return status;
}

/* The DDP of n parameters and n_buffers buffers (copied lists of borrowed
 * tensors), errors naming fn. */
static nb_status create(const char *fn, const nb_named_tensor *params, int n, const nb_named_tensor *buffers,
                        int n_buffers, nb_comm *comm, const nb_ddp_options *options, nb_ddp **out) {
    double bucket_mib = options && options->bucket_mib != 0 ? options->bucket_mib : NB_DDP_DEFAULT_BUCKET_MIB;
    NB_CHECK(bucket_mib > 0 && bucket_mib < 1e6, NB_ERR_INVALID,
             "%s: bucket_mib must be in (0, 1e6), got %g", fn, bucket_mib);
    nb_ddp *d = nb__calloc(1, sizeof *d);
    NB_CHECK(d, NB_ERR_OOM, "%s: out of host memory", fn);
    d->comm = comm, d->sync = true, d->n_params = n, d->n_buffers = n_buffers;
    d->error_on_unused = options && options->error_on_unused;
    d->params = nb__calloc((size_t)n, sizeof *d->params);
    d->buffers = nb__calloc((size_t)(n_buffers ? n_buffers : 1), sizeof *d->buffers);
    d->bucket_of = nb__calloc((size_t)n, sizeof *d->bucket_of);
    d->offset_of = nb__calloc((size_t)n, sizeof *d->offset_of);
    d->done = nb__calloc((size_t)n, sizeof *d->done);
    d->reached = nb__calloc((size_t)n, sizeof *d->reached);
    if (!d->params || !d->buffers || !d->bucket_of || !d->offset_of || !d->done || !d->reached) {
        release(d);
        return nb__error(NB_ERR_OOM, "%s: out of host memory", fn);
    }
    memcpy(d->params, params, (size_t)n * sizeof *params);
    if (n_buffers) memcpy(d->buffers, buffers, (size_t)n_buffers * sizeof *buffers);
#ifdef NABLA_WITH_NCCL
    bool cuda_ok = true;
#else
    bool cuda_ok = false;
#endif
    d->device = d->params[0].tensor->storage->device;
    for (int i = 0; i < n; i++) {
        nb_tensor *p = d->params[i].tensor;
        nb_device device = p->storage->device;
        if (!nb__same_device(device, d->device) || (device.type == NB_DEVICE_CUDA && !cuda_ok) ||
            !nb__is_contiguous(p) || p->ready_hook) {
            nb_status status = nb__error(NB_ERR_UNSUPPORTED,
                                         "%s: parameter %s must be a contiguous tensor on %s (the first one's "
                                         "device; CUDA needs a build with NCCL) without a gradient-ready hook, "
                                         "got %s on %s",
                                         fn, d->params[i].name, nb__device_name(d->device),
                                         nb__tensor_shape_str(p), nb__device_name(device));
            release(d);
            return status;
        }
    }
    nb_status status = plan_buckets(d, bucket_mib);
    if (status == NB_OK) status = nb_ddp_broadcast_parameters(d);
    for (int i = 0; i < n && status == NB_OK; i++) status = nb_set_grad_ready_hook(d->params[i].tensor, on_grad_ready, d);
    if (status != NB_OK) {
        release(d);
        return status;
    }
    *out = d;
    return NB_OK;
}

nb_status nb_ddp_create(nb_module *model, nb_comm *comm, const nb_ddp_options *options, nb_ddp **out) {
    const char *fn = "nb_ddp_create";
    NB_CHECK(out, NB_ERR_INVALID, "%s: out is NULL", fn);
    *out = NULL;
    NB_CHECK(model && comm, NB_ERR_INVALID, "%s: model or comm is NULL", fn);
    int n = nb_module_parameters(model, NULL, 0), n_buffers = nb_module_buffers(model, NULL, 0);
    NB_CHECK(n > 0, NB_ERR_INVALID, "%s: the model has no parameters", fn);
    nb_named_tensor *params = nb__calloc((size_t)(n + n_buffers), sizeof *params);
    NB_CHECK(params, NB_ERR_OOM, "%s: out of host memory", fn);
    nb_module_parameters(model, params, n);
    nb_module_buffers(model, params + n, n_buffers);
    nb_status status = create(fn, params, n, params + n, n_buffers, comm, options, out);
    free(params);
    return status;
}

nb_status nb_ddp_create_from_tensors(const nb_named_tensor *params, int n_params, const nb_named_tensor *buffers,
                                     int n_buffers, nb_comm *comm, const nb_ddp_options *options, nb_ddp **out) {
    const char *fn = "nb_ddp_create_from_tensors";
    NB_CHECK(out, NB_ERR_INVALID, "%s: out is NULL", fn);
    *out = NULL;
    NB_CHECK(comm, NB_ERR_INVALID, "%s: comm is NULL", fn);
    NB_CHECK(params && n_params > 0, NB_ERR_INVALID, "%s: %d parameters%s; at least one is needed", fn, n_params,
             params ? "" : " (params is NULL)");
    NB_CHECK(n_buffers >= 0 && (buffers || n_buffers == 0), NB_ERR_INVALID,
             "%s: n_buffers is %d with buffers %s", fn, n_buffers, buffers ? "given" : "NULL");
    for (int i = 0; i < n_params + n_buffers; i++) {
        const nb_named_tensor *t = i < n_params ? &params[i] : &buffers[i - n_params];
        NB_CHECK(t->tensor, NB_ERR_INVALID, "%s: %s %d (%.127s) is NULL", fn, i < n_params ? "parameter" : "buffer",
                 i < n_params ? i : i - n_params, t->name);
    }
    for (int i = 0; i < n_params; i++) {
        const nb_tensor *p = params[i].tensor;
        NB_CHECK(!p->grad_fn && nb_dtype_is_float(p->dtype), NB_ERR_INVALID,
                 "%s: parameter %.127s must be a float leaf, got %s%s", fn, params[i].name, nb_dtype_name(p->dtype),
                 p->grad_fn ? " made by an op" : "");
        for (int j = 0; j < i; j++)
            NB_CHECK(params[j].tensor != p, NB_ERR_INVALID, "%s: parameters %d and %d are the same tensor", fn, j, i);
    }
    return create(fn, params, n_params, buffers, n_buffers, comm, options, out);
}

/* The parameters that got no gradient this backward, as an error naming them. */
static nb_status unused_error(nb_ddp *d) {
    char names[400] = "";
    int count = 0;
    for (int i = d->n_params - 1; i >= 0; i--) /* in registration order */
        if (!d->params[i].tensor->grad) {
            if (count++ < 5)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", count > 1 ? ", " : "",
                         d->params[i].name);
        }
    return nb__error(NB_ERR_AUTOGRAD,
                     "nb_ddp_finish: %d parameter%s got no gradient in this backward (%s%s); the loss must use "
                     "every parameter, or create the DDP without error_on_unused to average zeros for them",
                     count, count == 1 ? "" : "s", names, count > 5 ? ", ..." : "");
}

/* Waits for every bucket and writes the averaged gradients back. */
static nb_status collect(nb_ddp *d) {
    nb_status status = NB_OK;
    for (int k = 0; k < d->n_buckets; k++) {
        bucket *b = &d->buckets[k];
        nb_status waited = nb_dist_wait(b->work);
        double completed = b->work ? nb__dist_work_completed(b->work) : 0;
        b->done_at = (completed > 0 ? completed : seconds()) - d->epoch;
        nb_dist_work_free(b->work);
        b->work = NULL;
        if (status == NB_OK) status = waited;
        for (int i = b->first; i < b->first + b->count && status == NB_OK; i++) {
            nb_tensor *p = d->params[i].tensor;
            int64_t from = d->offset_of[i], n = nb_numel(p);
            nb_tensor *slot = nb_slice(b->flat, 0, from, from + n, 1);
            nb_tensor *shaped = slot ? nb_reshape(slot, p->ndim, p->shape) : NULL;
            nb_tensor *grad = shaped ? nb_clone(shaped) : NULL;
            if (!grad) status = nb_last_status();
            else {
                nb_release(p->grad);
                p->grad = grad;
            }
            nb_release(shaped);
            nb_release(slot);
        }
    }
    return status;
}

nb_status nb_ddp_finish(nb_ddp *d) {
    NB_CHECK(d, NB_ERR_INVALID, "nb_ddp_finish: ddp is NULL");
    if (!d->sync) return NB_OK;
    const char *outer = nb__enter("nb_ddp_finish");
    nb_status status = NB_OK;
    if (!d->started) d->epoch = seconds();
    if (d->error_on_unused) {
        bool any_missing = false;
        for (int i = 0; i < d->n_params; i++) any_missing = any_missing || !d->params[i].tensor->grad;
        if (any_missing) status = unused_error(d);
    }
    /* every rank starts every bucket, in order, even after a local error, so
     * that the ranks' collectives still match */
    for (int k = 0; k < d->n_buckets; k++) d->buckets[k].ready = d->buckets[k].count;
    start_ready(d);
    nb_status collected = collect(d);
    if (d->failure != NB_OK && status == NB_OK) status = nb__error(d->failure, "%s", d->message);
    else if (status == NB_OK) status = collected;
    for (int k = 0; k < d->n_buckets; k++) {
        nb_dist_work_free(d->buckets[k].work);
        d->buckets[k].work = NULL;
        d->buckets[k].ready = 0;
    }
    for (int i = 0; i < d->n_params; i++) d->done[i] = false;
    d->next = 0;
    d->started = false;
    d->failure = NB_OK;
    nb__leave(outer);
    return status;
}

/* A parameter the backward will reach. */
static void mark_reached(nb_tensor *leaf, void *user) {
    nb_ddp *d = user;
    for (int i = 0; i < d->n_params; i++)
        if (d->params[i].tensor == leaf) d->reached[i] = true;
}

nb_status nb_ddp_backward(nb_ddp *d, nb_tensor *loss, const nb_tensor *grad) {
    NB_CHECK(d && loss, NB_ERR_INVALID, "nb_ddp_backward: ddp or loss is NULL");
    const char *outer = nb__enter("nb_ddp_backward");
    nb_status status = NB_OK;
    if (d->sync) { /* the parameters the loss does not use are ready now */
        for (int i = 0; i < d->n_params; i++) d->reached[i] = false;
        status = nb__visit_leaves(loss, mark_reached, d);
        for (int i = 0; i < d->n_params && status == NB_OK; i++)
            if (!d->reached[i]) on_grad_ready(d->params[i].tensor, d);
    }
    nb_status backward = status == NB_OK ? nb_backward(loss, grad, false) : status;
    d->backward_at = seconds() - (d->started ? d->epoch : seconds());
    nb_status finished = nb_ddp_finish(d); /* always: the other ranks' collectives must match */
    nb__leave(outer);
    return backward != NB_OK ? backward : finished;
}

void nb_ddp_set_sync(nb_ddp *d, bool sync) {
    if (d) d->sync = sync;
}

nb_status nb_ddp_broadcast_buffers(nb_ddp *d) {
    NB_CHECK(d, NB_ERR_INVALID, "nb_ddp_broadcast_buffers: ddp is NULL");
    const char *outer = nb__enter("nb_ddp_broadcast_buffers");
    nb_status status = NB_OK;
    for (int i = 0; i < d->n_buffers && status == NB_OK; i++) {
        status = nb_dist_broadcast(d->comm, d->buffers[i].tensor, 0, NULL);
        if (status == NB_OK) nb__bump_version(d->buffers[i].tensor);
    }
    nb__leave(outer);
    return status;
}

int nb_ddp_bucket_count(const nb_ddp *d) { return d ? d->n_buckets : 0; }

nb_status nb_ddp_bucket_timing(const nb_ddp *d, int k, nb_ddp_timing *out) {
    NB_CHECK(d && out, NB_ERR_INVALID, "nb_ddp_bucket_timing: ddp or out is NULL");
    NB_CHECK(k >= 0 && k < d->n_buckets, NB_ERR_INDEX, "nb_ddp_bucket_timing: bucket %d out of range [0, %d)", k,
             d->n_buckets);
    const bucket *b = &d->buckets[k];
    int last = b->first + b->count - 1;
    *out = (nb_ddp_timing){.ready = b->ready_at, .started = b->started_at, .done = b->done_at,
                           .backward = d->backward_at,
                           .parameters = b->count,
                           .bytes = (d->offset_of[last] + nb_numel(d->params[last].tensor)) *
                                    (int64_t)nb_dtype_size(b->flat->dtype)};
    return NB_OK;
}

void nb_ddp_free(nb_ddp *d) {
    if (d) release(d);
}
