/* The bindings of tensor creation: filled, ranges, random, from Python data. */
#include "ops.h"

#include <math.h>

/* ---- creation ---- */

typedef struct {
    nb_dtype dtype;
    nb_device device;
} placement;

static int placement_of(const nbp_op_def *def, PyObject *dtype, PyObject *device, nb_dtype fallback,
                        placement *out) {
    return nbp_dtype_arg(dtype, fallback, def->name, "dtype", &out->dtype) < 0 ||
                   nbp_device_arg(device, nb_cpu(), def->name, "device", &out->device) < 0
               ? -1 : 0;
}

/* zeros/ones/empty(*size, dtype=None, device=None, requires_grad=False) */
static PyObject *a_filled(const nbp_op_def *def, PyObject **a) {
    int64_t shape[NB_MAX_DIMS];
    int n = shape_of(def, a[0], shape);
    placement p;
    if (n < 0 || placement_of(def, a[1], a[2], NB_F32, &p) < 0) return NULL;
    typedef nb_tensor *(*fill_fn)(int, const int64_t *, nb_dtype, nb_device);
    return wrap_grad(FN(fill_fn)(n, shape, p.dtype, p.device), a[3]);
}

static nb_dtype number_dtype(PyObject *o) {
    return PyBool_Check(o) ? NB_BOOL : PyLong_Check(o) ? NB_I64 : NB_F32;
}

/* full(size, fill_value, dtype=None, device=None, requires_grad=False) */
static PyObject *a_full(const nbp_op_def *def, PyObject **a) {
    int64_t shape[NB_MAX_DIMS];
    int n = nbp_int64s(a[0], NB_MAX_DIMS, def->name, "size", shape);
    double value;
    placement p;
    if (n < 0 || double_of(def, a, 1, 0, &value) < 0 ||
        placement_of(def, a[2], a[3], number_dtype(a[1]), &p) < 0)
        return NULL;
    return wrap_grad(nb_full(n, shape, value, p.dtype, p.device), a[4]);
}

/* arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) */
static PyObject *a_arange(const nbp_op_def *def, PyObject **a) {
    double start, end, step;
    bool ints = PyLong_Check(a[0]) && (!a[1] || PyLong_Check(a[1])) && (!a[2] || PyLong_Check(a[2]));
    placement p;
    if (double_of(def, a, 0, 0, &start) < 0 || double_of(def, a, 1, 0, &end) < 0 ||
        double_of(def, a, 2, 1, &step) < 0 || placement_of(def, a[3], a[4], ints ? NB_I64 : NB_F32, &p) < 0)
        return NULL;
    if (!a[1] || a[1] == Py_None) end = start, start = 0;
    return wrap_grad(nb_arange(start, end, step, p.dtype, p.device), a[5]);
}

static PyObject *a_linspace(const nbp_op_def *def, PyObject **a) {
    double start, end;
    int64_t steps;
    placement p;
    if (double_of(def, a, 0, 0, &start) < 0 || double_of(def, a, 1, 0, &end) < 0 ||
        int_of(def, a, 2, 0, &steps) < 0 || placement_of(def, a[3], a[4], NB_F32, &p) < 0)
        return NULL;
    return wrap_grad(nb_linspace(start, end, steps, p.dtype, p.device), a[5]);
}

static PyObject *a_eye(const nbp_op_def *def, PyObject **a) {
    int64_t n, m;
    placement p;
    if (int_of(def, a, 0, 0, &n) < 0 || int_of(def, a, 1, n, &m) < 0 ||
        placement_of(def, a[2], a[3], NB_F32, &p) < 0)
        return NULL;
    return wrap_grad(nb_eye(n, m, p.dtype, p.device), a[4]);
}

/* rand/randn(*size, generator=None, dtype=None, device=None, requires_grad=False) */
static PyObject *a_random(const nbp_op_def *def, PyObject **a) {
    int64_t shape[NB_MAX_DIMS];
    int n = shape_of(def, a[0], shape);
    nb_generator *gen;
    placement p;
    if (n < 0 || nbp_generator_arg(a[1], def->name, &gen) < 0 || placement_of(def, a[2], a[3], NB_F32, &p) < 0)
        return NULL;
    nb_tensor *t = def->setting == SET_NORMAL ? nb_normal(n, shape, 0, 1, p.dtype, p.device, gen)
                          : nb_uniform(n, shape, 0, 1, p.dtype, p.device, gen);
    return wrap_grad(t, a[4]);
}

/* randint(low, high=None, size=(), generator=None, dtype=None, device=None):
 * randint(high, size) draws from [0, high), as PyTorch's */
static PyObject *a_randint(const nbp_op_def *def, PyObject **a) {
    PyObject *size = a[2];
    int64_t low, high, shape[NB_MAX_DIMS];
    if (!size && a[1] && (PyTuple_Check(a[1]) || PyList_Check(a[1]))) {
        size = a[1];
        if (int_of(def, a, 0, 0, &high) < 0) return NULL;
        low = 0;
    } else if (int_of(def, a, 0, 0, &low) < 0 || int_of(def, a, 1, 0, &high) < 0) {
        return NULL;
    }
    if (!size) return PyErr_Format(PyExc_TypeError, "randint() missing required argument 'size'");
    int n = nbp_int64s(size, NB_MAX_DIMS, def->name, "size", shape);
    nb_generator *gen;
    placement p;
    if (n < 0 || nbp_generator_arg(a[3], def->name, &gen) < 0 || placement_of(def, a[4], a[5], NB_I64, &p) < 0)
        return NULL;
    return nbp_wrap(nb_randint(low, high, n, shape, p.dtype, p.device, gen));
}

static PyObject *a_randperm(const nbp_op_def *def, PyObject **a) {
    int64_t n;
    nb_generator *gen;
    placement p;
    if (int_of(def, a, 0, 0, &n) < 0 || nbp_generator_arg(a[1], def->name, &gen) < 0 ||
        placement_of(def, a[2], a[3], NB_I64, &p) < 0)
        return NULL;
    return nbp_wrap(nb_randperm(n, p.dtype, p.device, gen));
}

/* multinomial(input, num_samples, replacement=False, generator=None) */
static PyObject *a_multinomial(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int64_t n;
    bool replacement;
    nb_generator *gen;
    if (!x || int_of(def, a, 1, 0, &n) < 0 || bool_of(a[2], false, &replacement) < 0 ||
        nbp_generator_arg(a[3], def->name, &gen) < 0)
        return NULL;
    return nbp_wrap(nb_multinomial(x, n, replacement, gen));
}

/* bernoulli(input, p=None, generator=None): 1 with probability input (or p) */
static PyObject *a_bernoulli(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    nb_generator *gen;
    if (!x || nbp_generator_arg(a[2], def->name, &gen) < 0) return NULL;
    if (a[1] && a[1] != Py_None) {
        double p;
        if (double_of(def, a, 1, 0, &p) < 0) return NULL;
        return nbp_wrap(nb_bernoulli(nb_ndim(x), nb_shape(x), p, nb_dtype_of(x), nb_device_of(x), gen));
    }
    nb_tensor *u = nb_uniform(nb_ndim(x), nb_shape(x), 0, 1,
                              nb_dtype_is_float(nb_dtype_of(x)) ? nb_dtype_of(x) : NB_F32, nb_device_of(x), gen);
    nb_tensor *below = u ? nb_lt(u, x) : NULL;
    nb_tensor *r = below ? nb_cast(below, nb_dtype_of(x)) : NULL;
    nb_release(u);
    nb_release(below);
    return nbp_wrap(r);
}

/* normal(mean, std, size, generator=None, dtype=None, device=None) */
static PyObject *a_normal(const nbp_op_def *def, PyObject **a) {
    double mean, std;
    int64_t shape[NB_MAX_DIMS];
    int n;
    nb_generator *gen;
    placement p;
    if (double_of(def, a, 0, 0, &mean) < 0 || double_of(def, a, 1, 1, &std) < 0 ||
        (n = nbp_int64s(a[2], NB_MAX_DIMS, def->name, "size", shape)) < 0 ||
        nbp_generator_arg(a[3], def->name, &gen) < 0 || placement_of(def, a[4], a[5], NB_F32, &p) < 0)
        return NULL;
    return nbp_wrap(nb_normal(n, shape, mean, std, p.dtype, p.device, gen));
}

/* *_like(input, dtype=None, device=None, requires_grad=False) */
static PyObject *a_like(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    placement p;
    if (!x || nbp_dtype_arg(a[1], nb_dtype_of(x), def->name, "dtype", &p.dtype) < 0 ||
        nbp_device_arg(a[2], nb_device_of(x), def->name, "device", &p.device) < 0)
        return NULL;
    int n = nb_ndim(x);
    const int64_t *shape = nb_shape(x);
    nb_tensor *t;
    switch (def->setting) {
    case SET_ZEROS: t = nb_zeros(n, shape, p.dtype, p.device); break;
    case SET_ONES: t = nb_ones(n, shape, p.dtype, p.device); break;
    case SET_EMPTY: t = nb_empty(n, shape, p.dtype, p.device); break;
    case SET_UNIFORM: t = nb_uniform(n, shape, 0, 1, p.dtype, p.device, NULL); break;
    default: t = nb_normal(n, shape, 0, 1, p.dtype, p.device, NULL); break;
    }
    return wrap_grad(t, a[3]);
}

static PyObject *a_full_like(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    double value;
    placement p;
    if (!x || double_of(def, a, 1, 0, &value) < 0 ||
        nbp_dtype_arg(a[2], nb_dtype_of(x), def->name, "dtype", &p.dtype) < 0 ||
        nbp_device_arg(a[3], nb_device_of(x), def->name, "device", &p.device) < 0)
        return NULL;
    return wrap_grad(nb_full(nb_ndim(x), nb_shape(x), value, p.dtype, p.device), a[4]);
}

/* tensor(data, dtype=None, device=None, requires_grad=False): a copy */
static PyObject *a_tensor(const nbp_op_def *def, PyObject **a) {
    placement p;
    if (placement_of(def, a[1], a[2], NB_DTYPE_COUNT, &p) < 0) return NULL;
    nb_tensor *t = nbp_tensor_from_data(a[0], p.dtype, p.device, def->name);
    return t ? wrap_grad(t, a[3]) : NULL;
}

/* as_tensor(data, dtype=None, device=None): shares memory when it can */
static PyObject *a_as_tensor(const nbp_op_def *def, PyObject **a) {
    placement p;
    if (placement_of(def, a[1], a[2], NB_DTYPE_COUNT, &p) < 0) return NULL;
    nb_tensor *shared = nbp_is_tensor(a[0]) ? nb_retain(nbp_t(a[0]))
                        : PyObject_CheckBuffer(a[0]) ? nbp_tensor_from_buffer(a[0], def->name) : NULL;
    if (!shared) {
        if (PyErr_Occurred()) return NULL;
        nb_tensor *t = nbp_tensor_from_data(a[0], p.dtype, a[2] ? p.device : nb_cpu(), def->name);
        return t ? nbp_wrap(t) : NULL;
    }
    nb_tensor *cast = p.dtype == NB_DTYPE_COUNT || p.dtype == nb_dtype_of(shared) ? nb_retain(shared)
                                                                                   : nb_cast(shared, p.dtype);
    nb_release(shared);
    nb_tensor *moved = cast && a[2] ? nb_to(cast, p.device) : nb_retain(cast);
    nb_release(cast);
    return nbp_wrap(moved);
}

static PyObject *a_from_numpy(const nbp_op_def *def, PyObject **a) {
    nb_tensor *t = nbp_tensor_from_buffer(a[0], def->name);
    return t ? nbp_wrap(t) : NULL;
}

PyObject *nbp_from_dlpack(PyObject *obj);
static PyObject *a_from_dlpack(const nbp_op_def *def, PyObject **a) {
    (void)def;
    return nbp_from_dlpack(a[0]);
}

/* ---- the table ---- */

const nbp_op_def nbp_create_ops[] = {
    /* creation */
    {"zeros", a_filled, (void (*)(void))nb_zeros, CREATE("*size"), 0, NBP_FUNCTION,
     "zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor: zeros (float32 by default)."},
    {"ones", a_filled, (void (*)(void))nb_ones, CREATE("*size"), 0, NBP_FUNCTION,
     "ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor: ones."},
    {"empty", a_filled, (void (*)(void))nb_empty, CREATE("*size"), 0, NBP_FUNCTION,
     "empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor: uninitialized memory."},
    {"full", a_full, NULL, CREATE("size", "fill_value"), 2, NBP_FUNCTION,
     "full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor: fill_value everywhere "
     "(the dtype follows the value's type by default)."},
    {"arange", a_arange, NULL, CREATE("start", "end", "step"), 1, NBP_FUNCTION,
     "arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor: "
     "start, start+step, ... < end (arange(n): 0..n-1); int64 for ints, else float32."},
    {"linspace", a_linspace, NULL, CREATE("start", "end", "steps"), 3, NBP_FUNCTION,
     "linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor: evenly spaced, "
     "end included."},
    {"eye", a_eye, NULL, CREATE("n", "m"), 1, NBP_FUNCTION,
     "eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor: ones on the diagonal."},
    {"rand", a_random, NULL, P("*size", "generator", "dtype", "device", "requires_grad"), 0, NBP_FUNCTION,
     "rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor: uniform in [0, 1).", SET_UNIFORM},
    {"randn", a_random, NULL, P("*size", "generator", "dtype", "device", "requires_grad"), 0, NBP_FUNCTION,
     "randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor: standard normal.", SET_NORMAL},
    {"randint", a_randint, NULL, P("low", "high", "size", "generator", "dtype", "device"), 1, NBP_FUNCTION,
     "randint(low=0, high, size, generator=None, dtype=None, device=None) -> Tensor: integers in "
     "[low, high); randint(high, size) starts at 0."},
    {"multinomial", a_multinomial, NULL, P("input", "num_samples", "replacement", "generator"), 2,
     NBP_BOTH, "multinomial(input, num_samples, replacement=False, generator=None) -> Tensor: int64 "
               "category indices per row of weights [C] or [N, C], drawn in proportion to them; the "
               "same draws on every device."},
    {"randperm", a_randperm, NULL, P("n", "generator", "dtype", "device"), 1, NBP_FUNCTION,
     "randperm(n, generator=None, dtype=int64, device=None) -> Tensor: a random permutation of 0..n-1."},
    {"bernoulli", a_bernoulli, NULL, P("input", "p", "generator"), 1, NBP_BOTH,
     "bernoulli(input, p=None, generator=None) -> Tensor: 1 with probability input (or p), else 0."},
    {"normal", a_normal, NULL, P("mean", "std", "size", "generator", "dtype", "device"), 3, NBP_FUNCTION,
     "normal(mean, std, size, generator=None, dtype=None, device=None) -> Tensor: normal samples."},
    {"zeros_like", a_like, NULL, CREATE("input"), 1, NBP_FUNCTION,
     "zeros_like(input, dtype=None, device=None, requires_grad=False) -> Tensor: zeros of input's shape.", SET_ZEROS},
    {"ones_like", a_like, NULL, CREATE("input"), 1, NBP_FUNCTION, "ones_like(input, ...) -> Tensor: ones.", SET_ONES},
    {"empty_like", a_like, NULL, CREATE("input"), 1, NBP_FUNCTION,
     "empty_like(input, ...) -> Tensor: uninitialized.", SET_EMPTY},
    {"rand_like", a_like, NULL, CREATE("input"), 1, NBP_FUNCTION, "rand_like(input, ...) -> Tensor: uniform.", SET_UNIFORM},
    {"randn_like", a_like, NULL, CREATE("input"), 1, NBP_FUNCTION, "randn_like(input, ...) -> Tensor: normal.", SET_NORMAL},
    {"full_like", a_full_like, NULL, CREATE("input", "fill_value"), 2, NBP_FUNCTION,
     "full_like(input, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor."},
    {"tensor", a_tensor, NULL, CREATE("data"), 1, NBP_FUNCTION,
     "tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor: a copy of data (a number, "
     "nested lists, a numpy array, a Tensor); floats give float32, ints int64, bools bool."},
    {"as_tensor", a_as_tensor, NULL, P("data", "dtype", "device"), 1, NBP_FUNCTION,
     "as_tensor(data, dtype=None, device=None) -> Tensor: shares data's memory when it can."},
    {"from_numpy", a_from_numpy, NULL, P("ndarray"), 1, NBP_FUNCTION,
     "from_numpy(ndarray) -> Tensor: the array's memory shared (writes show on both sides)."},
    {"from_dlpack", a_from_dlpack, NULL, P("ext_tensor"), 1, NBP_FUNCTION,
     "from_dlpack(ext_tensor) -> Tensor: shares the memory of any DLPack producer (numpy, PyTorch, CuPy)."},
    {NULL},
};
