/* Storage, tensor handles, properties and host transfers. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- devices ---- */

nb_device nb_cpu(void) { return (nb_device){NB_DEVICE_CPU, 0}; }
nb_device nb_cuda(int index) { return (nb_device){NB_DEVICE_CUDA, index}; }

const char *nb_device_str(nb_device device, char *buf, size_t size) {
    if (!buf || size == 0) {
        nb__error(NB_ERR_INVALID, "nb_device_str: needs a buffer, got %s of %zu bytes",
                  buf ? "one" : "NULL", size);
        return NULL;
    }
    if (device.type == NB_DEVICE_CPU && device.index == 0)
        snprintf(buf, size, "cpu");
    else if (device.type == NB_DEVICE_CPU)
        snprintf(buf, size, "cpu:%d", device.index);
    else if (device.type == NB_DEVICE_CUDA)
        snprintf(buf, size, "cuda:%d", device.index);
    else
        snprintf(buf, size, "device?%d", (int)device.type);
    return buf;
}

nb_status nb__check_device(const char *fn, nb_device device) {
    if (device.type == NB_DEVICE_CPU) {
        NB_CHECK(device.index == 0, NB_ERR_DEVICE, "%s: %s requested; the CPU is device 0", fn,
                 nb__device_name(device));
        return NB_OK;
    }
    NB_CHECK(device.type == NB_DEVICE_CUDA, NB_ERR_DEVICE, "%s: unknown device type %d", fn,
             (int)device.type);
    int count = nb_cuda_device_count();
    NB_CHECK(count > 0, NB_ERR_DEVICE, "%s: %s requested but no CUDA device is available", fn,
             nb__device_name(device));
    NB_CHECK(device.index >= 0 && device.index < count, NB_ERR_DEVICE,
             "%s: %s requested but only %d CUDA devices exist", fn, nb__device_name(device), count);
    return NB_OK;
}

/* ---- storage ---- */

static nb_status storage_new(const char *fn, size_t nbytes, nb_device device, nb_storage **out) {
    const nb_backend *backend = nb__backend(device.type);
    NB_CHECK(backend, NB_ERR_UNSUPPORTED, "%s: no allocator for device %s", fn,
             nb__device_name(device));
    nb_storage *s = nb__malloc(sizeof *s);
    NB_CHECK(s, NB_ERR_OOM, "%s: out of host memory allocating a storage header", fn);
    nb_status status = backend->alloc(fn, nbytes, device, &s->data, &s->block);
    if (status != NB_OK) {
        free(s);
        return status;
    }
    s->refcount = 1;
    s->nbytes = nbytes;
    s->device = device;
    s->release = NULL;
    *out = s;
    return NB_OK;
}

static void storage_release(nb_storage *s) {
    if (s && __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
        if (s->release) s->release(s->release_ctx);
        else nb__backend(s->device.type)->free(s->data, s->nbytes, s->device, s->block);
        free(s);
    }
}

/* ---- geometry ---- */

int64_t nb__numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

nb_status nb__checked_numel(const char *fn, int ndim, const int64_t *shape, nb_dtype dtype,
                            int64_t *numel) {
    NB_CHECK(ndim >= 0 && ndim <= NB_MAX_DIMS, NB_ERR_SHAPE, "%s: %d dims requested, at most %d",
             fn, ndim, NB_MAX_DIMS);
    NB_CHECK(ndim == 0 || shape, NB_ERR_INVALID, "%s: shape is NULL for %d dims", fn, ndim);
    NB_CHECK(nb_dtype_is_valid(dtype), NB_ERR_DTYPE, "%s: invalid dtype %d", fn, (int)dtype);
    int64_t n = 1, extent = 1; /* extent: the product of the nonzero sizes, which strides reach */
    bool empty = false;
    for (int i = 0; i < ndim; i++)
        NB_CHECK(shape[i] >= 0, NB_ERR_SHAPE, "%s: negative size %lld in shape %s", fn,
                 (long long)shape[i], nb__shape_str(ndim, shape));
    for (int i = 0; i < ndim; i++) {
        empty = empty || shape[i] == 0;
        NB_CHECK(!__builtin_mul_overflow(extent, shape[i] ? shape[i] : 1, &extent), NB_ERR_OVERFLOW,
                 "%s: shape %s has more than 2^63 elements", fn, nb__shape_str(ndim, shape));
    }
    n = empty ? 0 : extent;
    NB_CHECK(n <= (int64_t)(SIZE_MAX / 2 / nb_dtype_size(dtype)), NB_ERR_OVERFLOW,
             "%s: shape %s of %s does not fit in addressable memory", fn,
             nb__shape_str(ndim, shape), nb_dtype_name(dtype));
    *numel = n;
    return NB_OK;
}

void nb__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= shape[i] > 1 ? shape[i] : 1;
    }
}

/* As in PyTorch, an empty tensor is contiguous whatever its strides. */
bool nb__is_contiguous(const nb_tensor *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) return true;
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (t->strides[i] != expected) return false;
        expected *= t->shape[i];
    }
    return true;
}

static nb_tensor *tensor_header(nb_storage *storage, nb_dtype dtype) {
    nb_tensor *t = nb__calloc(1, sizeof *t);
    if (!t) return NULL;
    t->refcount = 1;
    t->storage = storage;
    t->dtype = dtype;
    return t;
}

nb_status nb__tensor_new(const char *fn, int ndim, const int64_t *shape, nb_dtype dtype,
                         nb_device device, nb_tensor **out) {
    int64_t numel;
    NB_TRY(nb__checked_numel(fn, ndim, shape, dtype, &numel));
    NB_TRY(nb__check_device(fn, device));
    nb_storage *storage = NULL;
    NB_TRY(storage_new(fn, (size_t)numel * nb_dtype_size(dtype), device, &storage));
    nb_tensor *t = tensor_header(storage, dtype);
    if (!t) {
        storage_release(storage);
        return nb__error(NB_ERR_OOM, "%s: out of host memory allocating a tensor", fn);
    }
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    nb__contiguous_strides(ndim, shape, t->strides);
    *out = t;
    return NB_OK;
}

nb_status nb__tensor_external(const char *fn, void *data, size_t nbytes, nb_device device, nb_dtype dtype,
                              int ndim, const int64_t *shape, const int64_t *strides,
                              void (*release)(void *ctx), void *ctx, nb_tensor **out) {
    nb_storage *s = nb__calloc(1, sizeof *s);
    NB_CHECK(s, NB_ERR_OOM, "%s: out of host memory allocating a storage header", fn);
    *s = (nb_storage){.refcount = 1, .data = data, .nbytes = nbytes, .device = device, .release = release,
                      .release_ctx = ctx};
    nb_tensor *t = tensor_header(s, dtype);
    if (!t) {
        free(s);
        return nb__error(NB_ERR_OOM, "%s: out of host memory allocating a tensor", fn);
    }
    t->ndim = ndim;
    if (ndim) {
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(t->strides, strides, (size_t)ndim * sizeof *strides);
    }
    *out = t;
    return NB_OK;
}

nb_status nb__tensor_view(const nb_tensor *base, int ndim, const int64_t *shape,
                          const int64_t *strides, int64_t offset, nb_tensor **out) {
    nb_tensor *t = tensor_header(base->storage, base->dtype);
    NB_CHECK(t, NB_ERR_OOM, "out of host memory allocating a tensor view");
    __atomic_add_fetch(&base->storage->refcount, 1, __ATOMIC_RELAXED);
    t->ndim = ndim;
    t->offset = offset;
    if (ndim) {
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(t->strides, strides, (size_t)ndim * sizeof *strides);
    }
    *out = t;
    return NB_OK;
}

/* ---- reference counting ---- */

nb_tensor *nb_retain(nb_tensor *t) {
    if (t) __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
    return t;
}

/* Freeing a tensor frees its node, which releases the node's inputs: for a
 * chain of a million ops that recursion would overflow the stack. A tensor
 * whose count drops to 0 joins this thread's queue instead, and the
 * outermost nb_release frees the queue in a loop. */
static _Thread_local nb_tensor *free_queue;
static _Thread_local bool freeing;

void nb_release(nb_tensor *t) {
    if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    t->next_free = free_queue;
    free_queue = t;
    if (freeing) return;
    freeing = true;
    while (free_queue) {
        nb_tensor *next = free_queue;
        free_queue = next->next_free;
        nb__node_free(next->grad_fn);
        nb_release(next->grad);
        storage_release(next->storage);
        free(next);
    }
    freeing = false;
}

/* The lowest and one past the highest byte offset t reads in its storage. */
static void byte_extent(const nb_tensor *t, int64_t *lo, int64_t *hi) {
    int64_t first = t->offset, last = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t span = (t->shape[d] - 1) * t->strides[d];
        if (span < 0) first += span;
        else last += span;
    }
    int64_t size = (int64_t)nb__dtype_size(t->dtype);
    *lo = first * size;
    *hi = (last + 1) * size;
}

bool nb__may_overlap(const nb_tensor *a, const nb_tensor *b) {
    if (a->storage != b->storage || nb_numel(a) == 0 || nb_numel(b) == 0) return false;
    int64_t a_lo, a_hi, b_lo, b_hi;
    byte_extent(a, &a_lo, &a_hi);
    byte_extent(b, &b_lo, &b_hi);
    return a_lo < b_hi && b_lo < a_hi;
}

/* ---- properties (NULL-safe: they answer 0 or NULL for a NULL tensor) ---- */

int nb_ndim(const nb_tensor *t) { return t ? t->ndim : 0; }
const int64_t *nb_shape(const nb_tensor *t) { return t ? t->shape : NULL; }
const int64_t *nb_strides(const nb_tensor *t) { return t ? t->strides : NULL; }
int64_t nb_numel(const nb_tensor *t) { return t ? nb__numel(t->ndim, t->shape) : 0; }
nb_dtype nb_dtype_of(const nb_tensor *t) { return t ? t->dtype : NB_DTYPE_COUNT; }
nb_device nb_device_of(const nb_tensor *t) { return t ? t->storage->device : nb_cpu(); }
bool nb_is_contiguous(const nb_tensor *t) { return t && nb__is_contiguous(t); }
void *nb_data(const nb_tensor *t) { return t ? nb__data(t) : NULL; }

int64_t nb_size(const nb_tensor *t, int dim) {
    if (!t) {
        nb__error(NB_ERR_INVALID, "nb_size: tensor is NULL");
        return -1;
    }
    int d;
    if (nb__normalize_dim("nb_size", dim, t->ndim, &d) != NB_OK) return -1;
    return t->shape[d];
}

nb_status nb__normalize_dim(const char *fn, int dim, int ndim, int *out) {
    int range = ndim > 0 ? ndim : 1; /* a scalar accepts dims 0 and -1, like PyTorch */
    NB_CHECK(dim >= -range && dim < range, NB_ERR_INDEX,
             "%s: dim %d out of range for a tensor of %d dims", fn, dim, ndim);
    *out = dim < 0 ? dim + range : dim;
    return NB_OK;
}

/* ---- transfers ---- */

nb_status nb__transfer(const char *fn, nb_tensor *dst, const nb_tensor *src) {
    NB_ASSERT(nb__is_contiguous(dst) && nb__is_contiguous(src) && dst->dtype == src->dtype);
    size_t nbytes = (size_t)nb_numel(src) * nb_dtype_size(src->dtype);
    if (nbytes == 0) return NB_OK;
    nb_device to = dst->storage->device, from = src->storage->device;
    /* the backend of the device side does the work: CUDA copies to and from the host */
    const nb_backend *backend = nb__backend(to.type == NB_DEVICE_CPU ? from.type : to.type);
    return backend->copy(fn, nb__data(dst), to, nb__data(src), from, nbytes);
}

/* data of at least nbytes (SIZE_MAX: unknown) copied into a new tensor. */
static nb_tensor *from_host(const char *fn, const void *data, size_t nbytes, int ndim,
                            const int64_t *shape, nb_dtype dtype, nb_device device) {
    int64_t numel;
    if (nb__checked_numel(fn, ndim, shape, dtype, &numel) != NB_OK) return NULL;
    size_t need = (size_t)numel * nb_dtype_size(dtype);
    if (!data && need > 0) {
        nb__error(NB_ERR_INVALID, "%s: data is NULL for a %s tensor of shape %s (%zu bytes)", fn,
                  nb_dtype_name(dtype), nb__shape_str(ndim, shape), need);
        return NULL;
    }
    if (nbytes != SIZE_MAX && nbytes != need) {
        nb__error(NB_ERR_INVALID, "%s: a %s tensor of shape %s needs %zu bytes, the buffer has %zu",
                  fn, nb_dtype_name(dtype), nb__shape_str(ndim, shape), need, nbytes);
        return NULL;
    }
    nb_tensor *t = NULL;
    if (nb__tensor_new(fn, ndim, shape, dtype, device, &t) != NB_OK) return NULL;
    nb_status status = need ? nb__backend(device.type)->copy(fn, nb__data(t), device, data, nb_cpu(),
                                                             need)
                            : NB_OK;
    return nb__unwrap(status, t);
}

static void release_nothing(void *ctx) { (void)ctx; }

nb_tensor *nb_from_memory(void *data, size_t nbytes, int ndim, const int64_t *shape,
                          const int64_t *strides, nb_dtype dtype, nb_device device,
                          void (*release)(void *ctx), void *ctx) {
    static const char fn[] = "nb_from_memory";
    int64_t numel, dense[NB_MAX_DIMS];
    if (nb__checked_numel(fn, ndim, shape, dtype, &numel) != NB_OK) return NULL;
    if (!strides) {
        nb__contiguous_strides(ndim, shape, dense);
        strides = dense;
    }
    /* the byte after the farthest element, which must lie within nbytes */
    size_t elem = nb_dtype_size(dtype), end = numel ? elem : 0;
    for (int d = 0; d < ndim && numel; d++) {
        if (strides[d] < 0 || (shape[d] > 1 && (uint64_t)strides[d] > (SIZE_MAX - end) / elem / (uint64_t)(shape[d] - 1))) {
            nb__error(NB_ERR_INVALID, "%s: stride %lld of dim %d is negative or too large", fn,
                      (long long)strides[d], d);
            return NULL;
        }
        end += (size_t)(shape[d] - 1) * (size_t)strides[d] * elem;
    }
    if (end > nbytes || (end && !data)) {
        nb__error(NB_ERR_INVALID, "%s: a %s tensor of shape %s reaches %zu bytes, the memory has %zu%s",
                  fn, nb_dtype_name(dtype), nb__shape_str(ndim, shape), end, nbytes,
                  data ? "" : " (data is NULL)");
        return NULL;
    }
    if (nb__check_device(fn, device) != NB_OK) return NULL;
    nb_tensor *t = NULL;
    if (nb__tensor_external(fn, data, nbytes, device, dtype, ndim, shape, strides,
                            release ? release : release_nothing, ctx, &t) != NB_OK)
        return NULL;
    return t;
}

nb_tensor *nb_from_buffer(const void *data, size_t nbytes, int ndim, const int64_t *shape,
                          nb_dtype dtype, nb_device device) {
    return from_host("nb_from_buffer", data, nbytes, ndim, shape, dtype, device);
}

nb_tensor *nb_from_host(const void *data, int ndim, const int64_t *shape, nb_dtype dtype,
                        nb_device device) {
    return from_host("nb_from_host", data, SIZE_MAX, ndim, shape, dtype, device);
}

nb_status nb_to_host(const nb_tensor *t, void *dst, size_t nbytes) {
    NB_CHECK(t, NB_ERR_INVALID, "nb_to_host: tensor is NULL");
    size_t need = (size_t)nb_numel(t) * nb_dtype_size(t->dtype);
    NB_CHECK(dst || need == 0, NB_ERR_INVALID, "nb_to_host: dst is NULL for %zu bytes", need);
    NB_CHECK(nbytes == need, NB_ERR_INVALID,
             "nb_to_host: a %s tensor of shape %s needs %zu bytes, got %zu",
             nb_dtype_name(t->dtype), nb__tensor_shape_str(t), need, nbytes);
    nb_tensor *dense = NULL;
    bool was = nb_set_grad_enabled(false);
    nb_status status = nb__result(nb_contiguous(t), &dense);
    nb_set_grad_enabled(was);
    NB_TRY(status);
    nb_device device = t->storage->device;
    if (need)
        status = nb__backend(device.type)->copy("nb_to_host", dst, nb_cpu(), nb__data(dense),
                                                device, need);
    nb_release(dense);
    return status;
}

nb_status nb_item(const nb_tensor *t, double *value) {
    NB_CHECK(t && value, NB_ERR_INVALID, "nb_item: %s is NULL", t ? "value" : "tensor");
    NB_CHECK(nb_numel(t) == 1, NB_ERR_SHAPE,
             "nb_item: needs a one-element tensor, got shape %s", nb__tensor_shape_str(t));
    nb_tensor *as_f64 = NULL;
    bool was = nb_set_grad_enabled(false);
    nb_status status = nb__result(nb_cast(t, NB_F64), &as_f64);
    nb_set_grad_enabled(was);
    NB_TRY(status);
    status = nb_to_host(as_f64, value, sizeof *value);
    nb_release(as_f64);
    return status;
}
