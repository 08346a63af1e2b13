/* Tensors: reference-counted handles over shared storage.
 *
 *   int64_t shape[2] = {2, 3};
 *   nb_tensor *x = nb_ones(2, shape, NB_F32, nb_cpu());   // new reference
 *   nb_tensor *xt = nb_transpose(x, 0, 1);                // a view: shares storage
 *   nb_print(xt);
 *   nb_release(xt);
 *   nb_release(x);
 *
 * Ownership: every function returning nb_tensor * returns a new reference
 * that the caller releases with nb_release; arguments are borrowed. On failure
 * the function returns NULL and nb_last_error() says why.
 */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include <stdio.h>

#include "dtype.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NB_MAX_DIMS 8

typedef struct nb_tensor nb_tensor;

typedef enum nb_device_type { NB_DEVICE_CPU, NB_DEVICE_CUDA, NB_DEVICE_TYPE_COUNT } nb_device_type;

typedef struct nb_device {
    nb_device_type type;
    int index; /* 0 for the CPU; the GPU ordinal for CUDA */
} nb_device;

nb_device nb_cpu(void);
nb_device nb_cuda(int index);
/* GPUs this build can use: 0 when nabla was built without CUDA or none is
 * present (include/nabla/cuda.h has the rest of the CUDA API). */
int nb_cuda_device_count(void);
/* "cpu" or "cuda:N", into buf (at least 16 bytes); returns buf (NULL, with
 * an error, for a NULL or empty buf). */
const char *nb_device_str(nb_device device, char *buf, size_t size);

/* Frees the memory the device's allocator keeps for reuse. On the CPU, blocks
 * of 128 KiB or more are cached (at most NABLA_CPU_CACHE_MB MiB, default 1024);
 * on CUDA every freed block is cached (docs/cuda.md). */
nb_status nb_release_cached_memory(nb_device device);
/* The bytes CPU tensors hold now and the most they have held since the last
 * reset (kernels' own scratch buffers are not counted). */
typedef struct nb_cpu_memory_stats {
    size_t allocated, peak_allocated;
} nb_cpu_memory_stats;
void nb_cpu_memory_stats_get(nb_cpu_memory_stats *out);
/* Sets peak_allocated to allocated. */
void nb_cpu_memory_stats_reset(void);

/* Deterministic algorithms only (torch.use_deterministic_algorithms): cuDNN
 * engines that sum with atomics in a run-dependent order are skipped, and
 * the fused CUDA attention's backward computes dQ in a pass of its own
 * instead of adding it with atomics, so a run repeats bit for bit. Off by default; NABLA_DETERMINISTIC=1 in the
 * environment turns it on at start (the test suite does). */
void nb_use_deterministic_algorithms(bool enabled);
bool nb_deterministic_algorithms_enabled(void);

/* ---- reference counting ---- */
nb_tensor *nb_retain(nb_tensor *t); /* returns t */
void nb_release(nb_tensor *t);      /* NULL is fine */

/* ---- properties ---- */
int nb_ndim(const nb_tensor *t);
const int64_t *nb_shape(const nb_tensor *t);   /* ndim entries, valid while t lives */
const int64_t *nb_strides(const nb_tensor *t); /* in elements */
int64_t nb_size(const nb_tensor *t, int dim);  /* negative dim counts from the end; -1 on error */
int64_t nb_numel(const nb_tensor *t);
nb_dtype nb_dtype_of(const nb_tensor *t);
nb_device nb_device_of(const nb_tensor *t);
bool nb_is_contiguous(const nb_tensor *t);
/* Address of the first element: host memory for CPU tensors, device memory
 * for CUDA tensors. */
void *nb_data(const nb_tensor *t);

/* ---- creation (shape: ndim sizes, ndim 0 is a scalar) ---- */
nb_tensor *nb_empty(int ndim, const int64_t *shape, nb_dtype dtype, nb_device device);
nb_tensor *nb_zeros(int ndim, const int64_t *shape, nb_dtype dtype, nb_device device);
nb_tensor *nb_ones(int ndim, const int64_t *shape, nb_dtype dtype, nb_device device);
nb_tensor *nb_full(int ndim, const int64_t *shape, double value, nb_dtype dtype, nb_device device);
/* A 0-dimensional tensor holding value. */
nb_tensor *nb_scalar(double value, nb_dtype dtype, nb_device device);
/* start, start+step, ... up to but excluding end: ceil((end-start)/step) elements. */
nb_tensor *nb_arange(double start, double end, double step, nb_dtype dtype, nb_device device);
/* steps values from start to end inclusive, evenly spaced. */
nb_tensor *nb_linspace(double start, double end, int64_t steps, nb_dtype dtype, nb_device device);
/* [n, m] with ones on the diagonal. */
nb_tensor *nb_eye(int64_t n, int64_t m, nb_dtype dtype, nb_device device);
/* Copies numel elements of dtype from host memory at data, which must hold
 * nbytes = numel * dtype size (NB_ERR_INVALID otherwise: a short buffer is
 * caught, not read past). */
nb_tensor *nb_from_buffer(const void *data, size_t nbytes, int ndim, const int64_t *shape,
                          nb_dtype dtype, nb_device device);
/* nb_from_buffer for a buffer the caller knows holds numel elements. */
nb_tensor *nb_from_host(const void *data, int ndim, const int64_t *shape, nb_dtype dtype,
                        nb_device device);
/* A tensor over memory nabla does not own (a numpy array, a mapped file),
 * without a copy: data holds nbytes on device, the elements at the given
 * strides (in elements, >= 0; NULL: contiguous) must lie within them. Once
 * the last tensor over it is gone, nabla calls release(ctx) (release may be
 * NULL). On failure release is not called. */
nb_tensor *nb_from_memory(void *data, size_t nbytes, int ndim, const int64_t *shape,
                          const int64_t *strides, nb_dtype dtype, nb_device device,
                          void (*release)(void *ctx), void *ctx);
/* Copies t's elements, in row-major order and t's dtype, to host memory;
 * nbytes must equal numel * dtype size. */
nb_status nb_to_host(const nb_tensor *t, void *dst, size_t nbytes);
/* The value of a one-element tensor, as a double. */
nb_status nb_item(const nb_tensor *t, double *value);
/* Copies src (broadcast, converted, moved to dst's device) into dst's elements. */
nb_status nb_copy_(nb_tensor *dst, const nb_tensor *src);
/* t on device: t itself (a new reference) when already there, else a
 * contiguous copy; records autograd (the gradient moves back). Copies from a
 * CUDA device wait for its current stream. */
nb_tensor *nb_to(const nb_tensor *t, nb_device device);

/* ---- views: share storage, record autograd; dims may be negative ---- */
/* shape may hold one -1, inferred from the others. reshape copies when the
 * strides do not allow a view; view fails instead. */
nb_tensor *nb_reshape(const nb_tensor *t, int ndim, const int64_t *shape);
nb_tensor *nb_view(const nb_tensor *t, int ndim, const int64_t *shape);
nb_tensor *nb_permute(const nb_tensor *t, const int *dims); /* ndim entries */
nb_tensor *nb_transpose(const nb_tensor *t, int dim0, int dim1);
/* Elements start, start+step, ... < end of dim (Python rules: negative start
 * and end count from the end, both are clamped; step >= 1). */
nb_tensor *nb_slice(const nb_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
nb_tensor *nb_squeeze(const nb_tensor *t, int dim); /* dim must have size 1 */
nb_tensor *nb_squeeze_all(const nb_tensor *t);      /* drops every size-1 dim */
nb_tensor *nb_unsqueeze(const nb_tensor *t, int dim);
/* Broadcasts to shape (NumPy rules; -1 keeps a size); no copy. */
nb_tensor *nb_expand(const nb_tensor *t, int ndim, const int64_t *shape);
nb_tensor *nb_broadcast_to(const nb_tensor *t, int ndim, const int64_t *shape);
/* t itself (a new reference) if already contiguous, else a contiguous copy. */
nb_tensor *nb_contiguous(const nb_tensor *t);
/* A copy with its own storage. */
nb_tensor *nb_clone(const nb_tensor *t);

/* ---- printing, like PyTorch's repr ---- */
/* Writes at most size bytes (NUL included) to buf, like snprintf; returns the
 * length the full text needs, or -1 on error. */
int nb_format(const nb_tensor *t, char *buf, size_t size);
nb_status nb_fprint(FILE *stream, const nb_tensor *t);
nb_status nb_print(const nb_tensor *t); /* to stdout, with a newline */

#ifdef __cplusplus
}
#endif
#endif
