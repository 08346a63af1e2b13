/* The bindings of Tensor methods: conversions, geometry, autograd and
 * in-place writes. */
#include "ops.h"

/* ---- methods: conversions, geometry, autograd, in-place writes ---- */

/* to(device=None, dtype=None) or to(dtype) or to(other), as PyTorch's */
static PyObject *a_cast(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    nb_dtype dtype;
    if (!x || nbp_dtype_arg(a[1], NB_F32, def->name, "dtype", &dtype) < 0) return NULL;
    return nbp_wrap(nb_cast(x, dtype));
}

static PyObject *a_to(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    if (!x) return NULL;
    PyObject *device_o = a[1], *dtype_o = a[2];
    if (device_o && nbp_is_tensor(device_o)) {
        nb_tensor *other = nbp_t(device_o);
        device_o = nbp_device_object(nb_device_of(other));
        dtype_o = nbp_dtype_object(nb_dtype_of(other));
    } else if (device_o && PyObject_TypeCheck(device_o, &nbp_dtype_type)) {
        dtype_o = device_o;
        device_o = NULL;
    }
    nb_device device;
    nb_dtype dtype;
    if (nbp_device_arg(device_o, nb_device_of(x), def->name, "device", &device) < 0 ||
        nbp_dtype_arg(dtype_o, nb_dtype_of(x), def->name, "dtype", &dtype) < 0)
        return NULL;
    nb_tensor *moved = nb_to(x, device);
    nb_tensor *r = moved && dtype != nb_dtype_of(moved) ? nb_cast(moved, dtype) : nb_retain(moved);
    nb_release(moved);
    if (!moved) return nbp_raise();
    return nbp_wrap(r);
}

static PyObject *a_cpu(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    return x ? nbp_wrap(nb_to(x, nb_cpu())) : NULL;
}

static PyObject *a_cuda(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    nb_device device;
    if (!x || nbp_device_arg(a[1], nb_cuda(0), def->name, "device", &device) < 0) return NULL;
    return nbp_wrap(nb_to(x, device));
}

/* float(), double(), ...: the dtype is in the entry's C function slot */
static PyObject *a_as_dtype(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    nb_dtype dtype = (nb_dtype)def->setting;
    if (!x) return NULL;
    if (nb_dtype_of(x) == dtype) return nbp_wrap(nb_retain(x));
    return nbp_wrap(nb_cast(x, dtype));
}

static PyObject *a_size(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x) return NULL;
    if (!a[1] || a[1] == Py_None) return PyObject_GetAttrString(a[0], "shape");
    if (dim_of(def, a, 1, 0, &dim) < 0) return NULL;
    int64_t s = nb_size(x, dim);
    return s < 0 ? nbp_raise() : PyLong_FromLongLong(s);
}

static PyObject *a_stride(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x) return NULL;
    int n = nb_ndim(x);
    if (!a[1] || a[1] == Py_None) {
        PyObject *r = PyTuple_New(n);
        for (int d = 0; r && d < n; d++) PyTuple_SET_ITEM(r, d, PyLong_FromLongLong(nb_strides(x)[d]));
        return r;
    }
    if (dim_of(def, a, 1, 0, &dim) < 0) return NULL;
    if (dim < -n || dim >= n)
        return PyErr_Format(PyExc_IndexError, "stride: dim %d is out of range for %d dims", dim, n);
    return PyLong_FromLongLong(nb_strides(x)[dim < 0 ? dim + n : dim]);
}

static PyObject *a_int_property(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    if (!x) return NULL;
    switch (def->setting) {
    case SET_DIM: return PyLong_FromLong(nb_ndim(x));
    case SET_DATA_PTR: return PyLong_FromVoidPtr(nb_data(x));
    case SET_NUMEL: return PyLong_FromLongLong(nb_numel(x));
    case SET_ELEMENT_SIZE: return PyLong_FromSize_t(nb_dtype_size(nb_dtype_of(x)));
    default: return PyBool_FromLong(nb_is_contiguous(x));
    }
}

static PyObject *a_backward(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *grad;
    bool retain;
    if (!x || optional_tensor(def, a, 1, &grad) < 0 || bool_of(a[2], false, &retain) < 0) return NULL;
    if (nb_backward(x, grad, retain) != NB_OK) return nbp_raise();
    if (nbp_run_after_backward() < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *a_requires_grad_(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    bool on;
    if (!x || bool_of(a[1], true, &on) < 0) return NULL;
    if (nb_set_requires_grad(x, on) != NB_OK) return nbp_raise();
    Py_INCREF(a[0]);
    return a[0];
}

/* Writes result (a new reference) into self's memory; returns self. */
static PyObject *write_into(PyObject *self, nb_tensor *result) {
    if (!result) return nbp_raise();
    nb_status status = nb_copy_(nbp_t(self), result);
    nb_release(result);
    if (status != NB_OK) return nbp_raise();
    Py_INCREF(self);
    return self;
}

static PyObject *a_fill_(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    double v = 0;
    if (!x || (a[1] && double_of(def, a, 1, 0, &v) < 0)) return NULL;
    return write_into(a[0], nb_scalar(v, nb_dtype_of(x), nb_device_of(x)));
}

static PyObject *a_copy_(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *src = x ? nbp_tensor_arg(a[1], x, def->name, "src") : NULL;
    return src ? write_into(a[0], src) : NULL;
}

/* add_(other, alpha=1) and the other in-place forms of the binary ops */
static PyObject *a_binary_(const nbp_op_def *def, PyObject **a) {
    PyObject *r = def->params[2] ? nbp_add_alpha(def, a) : nbp_binary(def, a);
    if (!r) return NULL;
    nb_tensor *t = nb_retain(nbp_t(r));
    Py_DECREF(r);
    return write_into(a[0], t);
}

static PyObject *a_unary_(const nbp_op_def *def, PyObject **a) {
    PyObject *r = def->params[1] ? nbp_clamp(def, a) : nbp_unary(def, a);
    if (!r) return NULL;
    nb_tensor *t = nb_retain(nbp_t(r));
    Py_DECREF(r);
    return write_into(a[0], t);
}

static PyObject *a_masked_fill_(const nbp_op_def *def, PyObject **a) {
    PyObject *r = nbp_masked_fill(def, a);
    if (!r) return NULL;
    nb_tensor *t = nb_retain(nbp_t(r));
    Py_DECREF(r);
    return write_into(a[0], t);
}

/* uniform_(a=0, b=1, generator=None) and normal_(mean=0, std=1, generator=None) */
static PyObject *a_random_(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    bool normal = def->setting == SET_NORMAL;
    double p, q;
    nb_generator *gen;
    if (!x || double_of(def, a, 1, 0, &p) < 0 || double_of(def, a, 2, 1, &q) < 0 ||
        nbp_generator_arg(a[3], def->name, &gen) < 0)
        return NULL;
    nb_tensor *t = normal ? nb_normal(nb_ndim(x), nb_shape(x), p, q, nb_dtype_of(x), nb_device_of(x), gen)
                          : nb_uniform(nb_ndim(x), nb_shape(x), p, q, nb_dtype_of(x), nb_device_of(x), gen);
    return write_into(a[0], t);
}

/* ---- the table ---- */
#define DTYPE_METHOD(name, dtype) \
    {#name, a_as_dtype, NULL, P("input"), 1, NBP_METHOD, \
     #name "() -> Tensor: the tensor as " #dtype " (itself when it already is).", dtype}

const nbp_op_def nbp_tensor_ops[] = {
    /* methods: conversions, geometry, autograd */
    {"to", a_to, NULL, P("input", "device", "dtype"), 1, NBP_METHOD,
     "to(device=None, dtype=None) / to(dtype) / to(other) -> Tensor: moved and converted (itself when "
     "nothing changes)."},
    {"cast", a_cast, NULL, P("input", "dtype"), 2, NBP_FUNCTION, "cast(input, dtype) -> Tensor: converted."},
    {"type_as", a_to, NULL, P("input", "device"), 2, NBP_METHOD,
     "type_as(other) -> Tensor: converted to other's dtype and device."},
    {"cpu", a_cpu, NULL, P("input"), 1, NBP_METHOD, "cpu() -> Tensor: on the CPU."},
    {"cuda", a_cuda, NULL, P("input", "device"), 1, NBP_METHOD, "cuda(device=None) -> Tensor: on a GPU."},
    DTYPE_METHOD(float, NB_F32), DTYPE_METHOD(double, NB_F64), DTYPE_METHOD(half, NB_F16),
    DTYPE_METHOD(bfloat16, NB_BF16), DTYPE_METHOD(int, NB_I32), DTYPE_METHOD(long, NB_I64),
    DTYPE_METHOD(byte, NB_U8), DTYPE_METHOD(bool, NB_BOOL),
    {"size", a_size, NULL, P("input", "dim"), 1, NBP_METHOD,
     "size(dim=None) -> tuple or int: the shape, or one dim's size."},
    {"stride", a_stride, NULL, P("input", "dim"), 1, NBP_METHOD,
     "stride(dim=None) -> tuple or int: the strides in elements."},
    {"dim", a_int_property, NULL, P("input"), 1, NBP_METHOD, "dim() -> int: the number of dims.", SET_DIM},
    {"numel", a_int_property, NULL, P("input"), 1, NBP_BOTH, "numel(input) -> int: the number of elements.", SET_NUMEL},
    {"element_size", a_int_property, NULL, P("input"), 1, NBP_METHOD, "element_size() -> int: bytes per element.", SET_ELEMENT_SIZE},
    {"is_contiguous", a_int_property, NULL, P("input"), 1, NBP_METHOD,
     "is_contiguous() -> bool: row-major without gaps.", SET_IS_CONTIGUOUS},
    {"data_ptr", a_int_property, NULL, P("input"), 1, NBP_METHOD, "data_ptr() -> int: the first element's address.", SET_DATA_PTR},
    {"backward", a_backward, NULL, P("input", "gradient", "retain_graph"), 1, NBP_METHOD,
     "backward(gradient=None, retain_graph=False): accumulates d(self)/d(leaf) into each leaf's grad; "
     "gradient None means ones (a one-element tensor only)."},
    {"requires_grad_", a_requires_grad_, NULL, P("input", "requires_grad"), 1, NBP_METHOD,
     "requires_grad_(requires_grad=True) -> Tensor: marks a leaf as needing a gradient; returns it."},
    /* methods: in-place writes (refused while autograd records a tensor that needs a gradient) */
    {"zero_", a_fill_, NULL, P("input"), 1, NBP_METHOD, "zero_() -> Tensor: fills with 0 in place."},
    {"fill_", a_fill_, NULL, P("input", "value"), 2, NBP_METHOD, "fill_(value) -> Tensor: fills in place."},
    {"copy_", a_copy_, NULL, P("input", "src"), 2, NBP_METHOD,
     "copy_(src) -> Tensor: src's values (broadcast, converted, moved) written in place."},
    {"add_", a_binary_, (void (*)(void))nb_add, P("input", "other", "alpha"), 2, NBP_METHOD,
     "add_(other, alpha=1) -> Tensor: self += alpha * other."},
    {"sub_", a_binary_, (void (*)(void))nb_sub, P("input", "other", "alpha"), 2, NBP_METHOD,
     "sub_(other, alpha=1) -> Tensor: self -= alpha * other."},
    {"mul_", a_binary_, (void (*)(void))nb_mul, P("input", "other"), 2, NBP_METHOD, "mul_(other): self *= other."},
    {"div_", a_binary_, (void (*)(void))nb_div, P("input", "other"), 2, NBP_METHOD, "div_(other): self /= other."},
    {"clamp_", a_unary_, NULL, P("input", "min", "max"), 1, NBP_METHOD, "clamp_(min=None, max=None): in place."},
    {"relu_", a_unary_, (void (*)(void))nb_relu, P("input"), 1, NBP_METHOD, "relu_(): in place."},
    {"masked_fill_", a_masked_fill_, NULL, P("input", "mask", "value"), 3, NBP_METHOD,
     "masked_fill_(mask, value) -> Tensor: value written where mask is true."},
    {"uniform_", a_random_, NULL, P("input", "a", "b", "generator"), 1, NBP_METHOD,
     "uniform_(a=0, b=1, generator=None) -> Tensor: uniform values in [a, b) written in place.", SET_UNIFORM},
    {"normal_", a_random_, NULL, P("input", "mean", "std", "generator"), 1, NBP_METHOD,
     "normal_(mean=0, std=1, generator=None) -> Tensor: normal values written in place.", SET_NORMAL},
    {NULL},
};
