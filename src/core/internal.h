/* nabla's internal view of its objects, shared by the core, the op front ends
 * and the backends. Nothing here is part of the public API. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include <nabla/nabla.h>

#include "oplist.h"
#include "window.h"

/* The CUDA backend's .cu files include this header as C++. */
#ifdef __cplusplus
extern "C" {
#define NB_NORETURN [[noreturn]]
#else
#define NB_NORETURN _Noreturn
#endif

#define NB_MAX_INPUTS 4
#define NB_MAX_OP_INPUTS 9 /* the tensors one kernel reads (map kernels: NB_MAX_INPUTS) */
#define NB_CPU_ALIGN 64

/* ---- errors ---- */

/* Records a formatted message and code for this thread; returns code. Inside
 * a public function that runs other public ones (see nb__enter) the message
 * starts with that function's name: "nb_embedding: nb_index_select: ...". */
nb_status nb__error(nb_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Marks the public function the user called, for the messages of the public
 * functions it runs: a composite op (nb_embedding over nb_index_select, a
 * layer's forward, nb_backward) calls nb__enter(its name) first and
 * nb__leave(what nb__enter returned) on every way out. Only the outermost
 * name is kept. */
const char *nb__enter(const char *fn);
void nb__leave(const char *outer);

/* For user input: on failure record the message and return the code. */
#define NB_CHECK(cond, code, ...)                 \
    do {                                          \
        if (!(cond)) return nb__error((code), __VA_ARGS__); \
    } while (0)

/* Propagates a failed status. */
#define NB_TRY(expr)                      \
    do {                                  \
        nb_status nb_try_status_ = (expr); \
        if (nb_try_status_ != NB_OK) return nb_try_status_; \
    } while (0)

/* For invariants of nabla itself, never for user input. */
#define NB_ASSERT(cond)                                                              \
    do {                                                                             \
        if (!(cond)) nb__assert_fail(#cond, __FILE__, __LINE__);                     \
    } while (0)
NB_NORETURN void nb__assert_fail(const char *cond, const char *file, int line);

/* "[2,3]", from a small thread-local ring of buffers (valid for a few calls). */
const char *nb__shape_str(int ndim, const int64_t *shape);
const char *nb__tensor_shape_str(const nb_tensor *t);
const char *nb__device_name(nb_device device);

/* ---- storage and tensors ---- */

typedef struct nb_storage {
    int refcount;
    void *data;
    size_t nbytes;
    nb_device device;
    void *block; /* the allocator's record of data (the CUDA allocator's block) */
    /* Memory nabla did not allocate (nb_from_dlpack): given back by calling
     * release(release_ctx) instead of the allocator. */
    void (*release)(void *release_ctx);
    void *release_ctx;
    int64_t version; /* in-place writes so far; see Note [saved versions] */
} nb_storage;

typedef struct nb_node nb_node;

struct nb_tensor {
    int refcount;
    nb_storage *storage;
    int64_t offset; /* in elements */
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_DIMS]; /* in elements; 0 for broadcast dims */
    nb_dtype dtype;
    bool requires_grad;
    nb_tensor *grad;  /* accumulated gradient of a leaf */
    nb_node *grad_fn; /* the node that produced this tensor, NULL for a leaf */
    nb_tensor *next_free; /* the queue of nb_release, which frees graphs without recursion */
    nb_grad_ready_hook ready_hook; /* a leaf's nb_set_grad_ready_hook */
    void *ready_user;
    int ready_pending; /* during nb_backward: walked nodes yet to run that read this leaf */
};

/* Note [saved versions]: every in-place write through the API (nb_copy_,
 * the nb_init_* functions, optimizer steps, running statistics) counts one
 * version of the storage it writes (nb__bump_version). A node records the
 * versions of what it saved; nb_backward fails, naming the op, when a saved
 * tensor's storage has moved on, instead of computing a gradient from values
 * the forward never saw (PyTorch's version counter). */
/* When the communicator's thread finished work (CLOCK_MONOTONIC seconds),
 * 0 while it runs. */
double nb__dist_work_completed(nb_dist_work *work);

/* Calls visit for every leaf requiring a gradient that backward from root
 * would reach (a leaf read twice, twice). */
nb_status nb__visit_leaves(const nb_tensor *root, void (*visit)(nb_tensor *leaf, void *user), void *user);

static inline void nb__bump_version(nb_tensor *t) {
    __atomic_add_fetch(&t->storage->version, 1, __ATOMIC_RELAXED);
}
static inline int64_t nb__version(const nb_tensor *t) {
    return __atomic_load_n(&t->storage->version, __ATOMIC_RELAXED);
}
/* Whether a and b may touch the same bytes (same storage, overlapping extents). */
bool nb__may_overlap(const nb_tensor *a, const nb_tensor *b);

/* Heap allocation for everything but tensor memory: malloc, calloc and
 * realloc that fail on request (Note [allocation faults], cpu_alloc.c). */
void *nb__malloc(size_t n);
void *nb__calloc(size_t count, size_t size);
void *nb__realloc(void *ptr, size_t n);
bool nb__allocation_fails(void);
/* For the tests: the k-th allocation from now fails (k <= 0: none), and the
 * allocations made since the last call. */
void nb__fail_allocation(int64_t k);
int64_t nb__allocations_seen(void);
/* The CPU allocator (src/core/cpu_alloc.c); release returns the bytes freed. */
nb_status nb__cpu_alloc(const char *fn, size_t nbytes, nb_device device, void **ptr, void **block);
void nb__cpu_free(void *ptr, size_t nbytes, nb_device device, void *block);
size_t nb__cpu_release_cache(void);
/* NABLA_POISON_ALLOC=1: every allocation is filled with 0xFF bytes (NaN for
 * floats), so a kernel that leaves elements unwritten fails the tests. */
bool nb__poison_allocations(void);

/* Product of sizes, or NB_ERR_OVERFLOW/NB_ERR_SHAPE naming fn. */
nb_status nb__checked_numel(const char *fn, int ndim, const int64_t *shape, nb_dtype dtype,
                            int64_t *numel);
int64_t nb__numel(int ndim, const int64_t *shape);
void nb__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
bool nb__is_contiguous(const nb_tensor *t);
/* A new contiguous tensor with fresh (uninitialized) storage. */
nb_status nb__tensor_new(const char *fn, int ndim, const int64_t *shape, nb_dtype dtype,
                         nb_device device, nb_tensor **out);
/* A new tensor sharing base's storage with the given geometry; no autograd. */
/* A tensor over memory of someone else's: data on device, nbytes of it,
 * with shape and strides (elements); release(ctx) once nabla is done. */
nb_status nb__tensor_external(const char *fn, void *data, size_t nbytes, nb_device device, nb_dtype dtype,
                              int ndim, const int64_t *shape, const int64_t *strides,
                              void (*release)(void *ctx), void *ctx, nb_tensor **out);
nb_status nb__tensor_view(const nb_tensor *base, int ndim, const int64_t *shape,
                          const int64_t *strides, int64_t offset, nb_tensor **out);
/* nb_dtype_size of a valid dtype, inlined where it sits in a loop. */
static inline size_t nb__dtype_size(nb_dtype dtype) {
    static const unsigned char sizes[NB_DTYPE_COUNT] = {4, 8, 2, 2, 4, 8, 1, 1};
    return sizes[dtype];
}
static inline char *nb__data(const nb_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)nb__dtype_size(t->dtype);
}
static inline bool nb__same_device(nb_device a, nb_device b) {
    return a.type == b.type && a.index == b.index;
}
/* The integers dtype holds exactly: [lo, hi] (2^53 for i64, whose random
 * integers go through double). */
void nb__integer_range(nb_dtype dtype, double *lo, double *hi);
/* Fails (naming fn, the value and the range) for a value an integer dtype
 * cannot hold: NaN, inf or out of range. Floats round and bool tests != 0. */
nb_status nb__check_value(const char *fn, double value, nb_dtype dtype);
/* Checks that a device exists in this build. */
nb_status nb__check_device(const char *fn, nb_device device);
/* A layer's weight shares x's float dtype and device; its bias (if any) is
 * [features] of x's dtype and device. */
nb_status nb__check_layer_weight(const char *fn, const nb_tensor *x, const nb_tensor *weight);
nb_status nb__check_layer_bias(const char *fn, const nb_tensor *x, const nb_tensor *bias,
                               int64_t features);
/* Maps dim in [-ndim, ndim) to [0, ndim). */
nb_status nb__normalize_dim(const char *fn, int dim, int ndim, int *out);
/* NumPy broadcast of two shapes into out (NB_MAX_DIMS entries). */
nb_status nb__broadcast_shapes(const char *fn, int na, const int64_t *a, int nb, const int64_t *b,
                               int *nout, int64_t *out);
/* A view of t broadcast to shape (NB_ERR_SHAPE if it cannot be). */
nb_status nb__expand_view(const char *fn, const nb_tensor *t, int ndim, const int64_t *shape,
                          nb_tensor **out);

/* Copies src into dst across devices: both contiguous, same dtype and size. */
nb_status nb__transfer(const char *fn, nb_tensor *dst, const nb_tensor *src);

/* ---- op arguments and dispatch ---- */

/* "nb_add" for NB_OP_ADD: the public function an error names. */
const char *nb__op_fn(nb_op op);

/* Attributes of one op call; the op's family decides which member is live. */
/* One optimizer step of one parameter (src/core/optim_update.h), the
 * group's options resolved and the step's coefficients worked out on the
 * host:
 *   decay, l2             p *= decay, g += l2 p: weight decay decoupled
 *                         (decay 1 - lr wd, l2 0) or coupled (1 and wd)
 *   bias_correction1, 2   1 - beta^t at the parameter's step t
 *   coef1, coef2          Adagrad: coef1 = lr / (1 + (t - 1) lr_decay);
 *                         NAdam: the gradient's and momentum's step sizes;
 *                         RAdam: coef1 = the rectification r_t, 0 before
 *                         the variance is tractable (rho_t <= 5), and
 *                         coef2 = r_t sqrt(bc2)
 *   ftrl_l2               FTRL's lambda2
 *   first                 SGD: the momentum buffer starts as g */
typedef struct nb_optim_attrs {
    int kind; /* nb_optimizer_kind */
    double lr, decay, l2, momentum, dampening, beta1, beta2, eps;
    double l1, ftrl_l2, beta, lr_power;
    double bias_correction1, bias_correction2, coef1, coef2;
    bool nesterov, amsgrad, centered, maximize, first;
} nb_optim_attrs;

typedef union nb_attrs {
    struct { double lo, hi; } clamp;
    struct { double slope; } leaky_relu;
    struct { bool tanh; } gelu; /* the tanh approximation */
    /* the activations of src/core/activation.h; activation_backward of forward */
    struct { double p, q; nb_op forward; } activation;
    struct { double eps; } norm; /* layer_norm, rms_norm */
    /* rope: rotates by -angle for the backward */
    struct { double base; int64_t offset; bool inverse; } rope;
    /* flash_attention: dropout draws (seed, offset + (bh Sq + i) Sk + j) */
    struct { double scale, dropout; bool causal; uint64_t seed, offset; } attention;
    struct { double value; } fill;                  /* fill, masked_fill */
    struct { nb_comm *comm; } sync_bn;
    struct { double start, step, end; } range;      /* arange, linspace */
    struct { uint64_t seed, offset; double a, b; } random; /* a, b: bounds, mean/std or p */
    struct { uint32_t mask; bool keepdim; double correction, p; } reduce;
    struct { int dim; } axis;                       /* softmax, cat, indexing */
    struct { int64_t k; bool descending; } sort;    /* argsort, topk (descending: largest) */
    /* searchsorted: right finds the first element > v, else >= v; rows of the sequence */
    struct { bool right; int64_t rows; } search;
    /* cumsum (reverse: from the end), cumprod, logcumsumexp; scan_backward of forward */
    struct { int dim; bool reverse; nb_op forward; } scan;
    /* multinomial: counter offset + row * samples + s for sample s of a row */
    struct { uint64_t seed, offset; int64_t samples; bool replacement; } multinomial;
    struct { int dim; int64_t start, step; } slice;
    struct { int dims[NB_MAX_DIMS]; } permute;
    struct { int64_t num_classes; } one_hot;
    struct { double smoothing; int64_t ignore_index; int reduction; } cross_entropy;
    /* the losses of src/core/pointwise_loss.h; the backward's is forward's
     * gradient with respect to operand wrt (0 input, 1 target, 2 the third) */
    struct { double p, q; int flags; nb_op forward; int wrt; } loss;
    nb_window window; /* unfold, fold, pooling */
    nb_optim_attrs optim;
} nb_attrs;

/* GELU's constants: 1/sqrt(2) for x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, and
 * sqrt(2/pi) and 0.044715 for its tanh form (Hendrycks and Gimpel, 2016). */
#define NB_GELU_RSQRT2 0.70710678118654752
#define NB_GELU_RSQRT_2PI 0.39894228040143268 /* phi(x) = exp(-x^2 / 2) / sqrt(2 pi) */
#define NB_GELU_SQRT_2_OVER_PI 0.79788456080286536
#define NB_GELU_CUBIC 0.044715

typedef struct nb_op_args {
    nb_op op;
    nb_dtype dtype; /* the dtype the kernel computes in: picks the kernel variant */
    nb_tensor *out;
    const nb_tensor *in[NB_MAX_OP_INPUTS];
    int n_in;
    nb_attrs attrs;
} nb_op_args;

typedef nb_status (*nb_kernel_fn)(const nb_op_args *args);

typedef struct nb_kernel {
    nb_kernel_fn fn;
    uint32_t dtypes; /* bit (1u << dtype) for each dtype the kernel computes in */
} nb_kernel;

#define NB_DT(d) (1u << (d))
#define NB_FLOATS (NB_DT(NB_F32) | NB_DT(NB_F64) | NB_DT(NB_F16) | NB_DT(NB_BF16))
#define NB_INTS (NB_DT(NB_I32) | NB_DT(NB_I64) | NB_DT(NB_U8) | NB_DT(NB_BOOL))
#define NB_ALL_DTYPES (NB_FLOATS | NB_INTS)

/* What the core needs of a device type: kernels, memory, transfers. */
typedef struct nb_backend {
    const nb_kernel *kernels; /* indexed by op; NULL fn where it has none */
    /* Allocates nbytes on device into *ptr (and the allocator's record into
     * *block), or fails naming fn, the size and what is free. */
    nb_status (*alloc)(const char *fn, size_t nbytes, nb_device device, void **ptr, void **block);
    void (*free)(void *ptr, size_t nbytes, nb_device device, void *block);
    /* Copies nbytes between this backend's memory and the host, or within the
     * backend (devices may differ); returns once dst may be read on its side. */
    nb_status (*copy)(const char *fn, void *dst, nb_device dst_device, const void *src,
                      nb_device src_device, size_t nbytes);
    void (*release_cache)(nb_device device);
} nb_backend;

extern const nb_backend nb__cpu_backend;
#ifdef NABLA_WITH_CUDA
extern const nb_backend nb__cuda_backend;
#endif
/* The backend of a device type this build has, or NULL. */
const nb_backend *nb__backend(nb_device_type type);

/* Whether device's backend has a kernel of op computing in dtype. */
bool nb__has_kernel(nb_device device, nb_op op, nb_dtype dtype);
/* Runs args->op's kernel for the device of args->out, or fails with
 * NB_ERR_UNSUPPORTED naming op, device and dtype. */
nb_status nb__dispatch(const nb_op_args *args);
/* Runs args->op into a new *out of ndim, shape and dtype on the device of
 * args->in[0]; on failure *out is released and NULL. */
nb_status nb__dispatch_new(const char *fn, nb_op_args *args, int ndim, const int64_t *shape,
                           nb_dtype dtype, nb_tensor **out);

/* An elementwise op's operands (out first, then args->in, each already of
 * out's shape) with size-1 dims dropped and neighbouring dims merged where
 * every operand is contiguous across them: contiguous tensors become one
 * row. At least one dim; strides in elements. */
typedef struct nb_map_plan {
    int ndim, n_operands;
    int64_t numel;
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_INPUTS + 1][NB_MAX_DIMS];
    char *base[NB_MAX_INPUTS + 1];
    nb_dtype dtype[NB_MAX_INPUTS + 1];
} nb_map_plan;
void nb__plan_map(const nb_op_args *args, nb_map_plan *plan);

/* A reduction's dims: the kept ones (the output's, in order) and the reduced
 * ones, coalesced where contiguous; at least one reduced dim (size 1, stride
 * 0 when every reduced dim has size 1). */
typedef struct nb_reduce_plan {
    int n_kept, n_reduced;
    int64_t kept_shape[NB_MAX_DIMS], kept_stride[NB_MAX_DIMS];
    int64_t red_shape[NB_MAX_DIMS], red_stride[NB_MAX_DIMS];
} nb_reduce_plan;
void nb__plan_reduce(const nb_tensor *x, uint32_t mask, nb_reduce_plan *plan);

/* ---- autograd ---- */

/* Computes the gradient of each input i with needs[i] set into grads[i] (a
 * new reference of the input's shape), given grad of the node's output. */
typedef nb_status (*nb_backward_fn)(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                    nb_tensor **grads);

struct nb_node {
    nb_op op;
    nb_backward_fn backward;
    int n_inputs;
    nb_tensor **inputs; /* strong references, released after a backward without retain_graph */
    int64_t *versions;  /* each input's storage version when recorded (Note [saved versions]) */
    nb_attrs attrs;
    int out_ndim;
    int64_t out_shape[NB_MAX_DIMS];
    nb_dtype out_dtype;
    bool released;
    /* scratch of nb_backward */
    nb_tensor *grad;
    int pending;
    bool visited;
};

/* If recording is on and an input requires a gradient, gives out a node of op
 * with those inputs, attrs and backward. Takes no reference to out. */
nb_status nb__record(nb_tensor *out, nb_op op, int n_inputs, const nb_tensor *const *inputs,
                     const nb_attrs *attrs, nb_backward_fn backward);
void nb__node_free(nb_node *node);
/* Sums grad over broadcast dims so it has shape (ndim, shape); new reference. */
nb_status nb__sum_to(const nb_tensor *grad, int ndim, const int64_t *shape, nb_tensor **out);

/* ---- helpers the op families share ---- */

/* Temporaries of a formula written with nabla ops, released together:
 *   nb_scratch s = {0};
 *   nb_tensor *r = nb__keep(&s, nb_mul(g, nb__keep(&s, nb_exp(x))));
 *   return nb__scratch_finish(&s, r, &grads[0]);
 * The first failure's status and message survive the calls made after it. */
typedef struct nb_scratch {
    nb_tensor *items[64];
    int count;
    nb_status status;
    char message[512];
} nb_scratch;
nb_tensor *nb__keep(nb_scratch *s, nb_tensor *t);
/* Gives *out a new reference to result (unless a step failed), releases the
 * temporaries and returns the first failure. */
nb_status nb__scratch_finish(nb_scratch *s, nb_tensor *result, nb_tensor **out);
/* nb__sum_to(t) to like's shape, kept in s; NULL once a step has failed. */
nb_tensor *nb__keep_sum_to(nb_scratch *s, const nb_tensor *t, const nb_tensor *like);
/* A scan's tensor t seen as [outer, n, inner] around dim (a 0-dim t is
 * [1, 1, 1]): the CPU and CUDA scan kernels walk it so. */
typedef struct nb_scan_shape {
    int64_t outer, n, inner;
} nb_scan_shape;
static inline nb_scan_shape nb__scan_shape(const nb_tensor *t, int dim) {
    nb_scan_shape s = {1, t->ndim ? t->shape[dim] : 1, 1};
    for (int d = 0; d < t->ndim; d++) {
        if (d < dim) s.outer *= t->shape[d];
        if (d > dim) s.inner *= t->shape[d];
    }
    return s;
}

/* A 0-dim tensor of t's dtype and device. */
nb_tensor *nb__scalar_like(const nb_tensor *t, double value);

/* Returns a tensor as an nb_status out-parameter: *out = value or error. */
static inline nb_status nb__result(nb_tensor *value, nb_tensor **out) {
    *out = value;
    return value ? NB_OK : nb_last_status();
}
/* Public wrappers: return the tensor an internal function produced, or NULL. */
static inline nb_tensor *nb__unwrap(nb_status status, nb_tensor *t) {
    if (status != NB_OK) {
        nb_release(t);
        return NULL;
    }
    return t;
}

/* Copies src into dst (same shape after broadcasting src), converting dtype;
 * no autograd. */
nb_status nb__copy_into(nb_tensor *dst, const nb_tensor *src);
/* Internal fill of every element of t (any strides); no autograd. */
nb_status nb__fill(nb_tensor *t, double value);
/* Reduction over dims in mask with keepdim; shared by reductions and sum_to. */
nb_status nb__reduce(nb_op op, const nb_tensor *x, uint32_t mask, bool keepdim, nb_tensor **out);

/* An optimizer step of param in place (src/ops/optim.c): the kernel reads
 * grad and writes param and the state tensors (contiguous, f32, or f64 for
 * f64 parameters; NULL where the rule or its options keep none). */
#define NB_OPTIM_SLOTS 3
nb_status nb__optim_step(nb_tensor *param, const nb_tensor *grad,
                         nb_tensor *const state[NB_OPTIM_SLOTS], const nb_attrs *attrs);

/* The error of a multinomial row problem (src/core/multinomial.h): the row,
 * its count of positive weights and the samples asked for. */
nb_status nb__multinomial_failed(int64_t row, int problem, int64_t positive, int64_t samples);

#ifdef __cplusplus
}
#endif
#endif
