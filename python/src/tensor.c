/* nabla.Tensor: the object, its attributes, operators, conversions to
 * Python and numpy (the buffer protocol, without a copy), DLPack, and
 * tensors made from Python data. */
#include "pynabla.h"

#include <math.h>
#include <string.h>

#ifdef NBP_WITH_DLPACK
#include <nabla/dlpack.h>
#endif

/* ---- wrapping ---- */

PyObject *nbp_wrap_as(PyTypeObject *type, nb_tensor *t) {
    if (!t) return PyErr_Occurred() ? NULL : nbp_raise();
    nbp_tensor *o = (nbp_tensor *)type->tp_alloc(type, 0);
    if (!o) {
        nb_release(t);
        return NULL;
    }
    o->t = t;
    return (PyObject *)o;
}

PyObject *nbp_wrap(nb_tensor *t) {
    if (!t) return PyErr_Occurred() ? NULL : nbp_raise(); /* a binding's error, else the library's */
    /* the common path: not tp_alloc's generic one, which serves subclasses */
    nbp_tensor *o = PyObject_New(nbp_tensor, &nbp_tensor_type);
    if (!o) {
        nb_release(t);
        return NULL;
    }
    o->t = t;
    o->weakrefs = NULL;
    return (PyObject *)o;
}

static void tensor_dealloc(PyObject *self) {
    nbp_tensor *o = (nbp_tensor *)self;
    if (o->weakrefs) PyObject_ClearWeakRefs(self);
    nb_release(o->t);
    Py_TYPE(self)->tp_free(self);
}

static Py_hash_t tensor_hash(PyObject *self) { return _Py_HashPointer(self); }

/* Marks a new leaf as requiring a gradient; releases it on failure. */
static int require_grad(nb_tensor *t) {
    if (nb_set_requires_grad(t, true) == NB_OK) return 0;
    nb_release(t);
    nbp_raise();
    return -1;
}

/* Tensor(data, dtype=None, device=None, requires_grad=False), as nb.tensor */
static PyObject *tensor_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"data", "dtype", "device", "requires_grad", NULL};
    PyObject *data, *dtype_o = Py_None, *device_o = Py_None;
    int requires_grad = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOp:Tensor", kwlist, &data, &dtype_o,
                                     &device_o, &requires_grad))
        return NULL;
    nb_dtype dtype;
    nb_device device;
    if (nbp_dtype_arg(dtype_o, NB_DTYPE_COUNT, "Tensor", "dtype", &dtype) < 0 ||
        nbp_device_arg(device_o, nb_cpu(), "Tensor", "device", &device) < 0)
        return NULL;
    nb_tensor *t = nbp_tensor_from_data(data, dtype, device, "Tensor");
    if (!t) return NULL;
    if (requires_grad && require_grad(t) < 0) return NULL;
    return nbp_wrap_as(type, t);
}

/* ---- attributes ---- */

static PyObject *shape_tuple(const nb_tensor *t) {
    int n = nb_ndim(t);
    PyObject *shape = PyTuple_New(n);
    if (!shape) return NULL;
    for (int d = 0; d < n; d++) {
        PyObject *size = PyLong_FromLongLong(nb_shape(t)[d]);
        if (!size) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, d, size);
    }
    return shape;
}

static PyObject *get_shape(PyObject *self, void *c) {
    (void)c;
    return shape_tuple(nbp_t(self));
}

static PyObject *get_dtype(PyObject *self, void *c) {
    (void)c;
    PyObject *d = nbp_dtype_object(nb_dtype_of(nbp_t(self)));
    Py_INCREF(d);
    return d;
}

static PyObject *get_device(PyObject *self, void *c) {
    (void)c;
    PyObject *d = nbp_device_object(nb_device_of(nbp_t(self)));
    Py_XINCREF(d);
    return d;
}

static PyObject *get_ndim(PyObject *self, void *c) {
    (void)c;
    return PyLong_FromLong(nb_ndim(nbp_t(self)));
}

static PyObject *get_requires_grad(PyObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(nb_requires_grad(nbp_t(self)));
}

static int set_requires_grad(PyObject *self, PyObject *value, void *c) {
    (void)c;
    if (!value) return PyErr_SetString(PyExc_TypeError, "requires_grad cannot be deleted"), -1;
    int on = PyObject_IsTrue(value);
    if (on < 0) return -1;
    if (nb_set_requires_grad(nbp_t(self), on) != NB_OK) return nbp_raise(), -1;
    return 0;
}

static PyObject *get_grad(PyObject *self, void *c) {
    (void)c;
    nb_tensor *g = nb_grad(nbp_t(self));
    if (!g) Py_RETURN_NONE;
    return nbp_wrap(g);
}

static int set_grad(PyObject *self, PyObject *value, void *c) {
    (void)c;
    nb_tensor *g = NULL;
    if (value && nbp_tensor_borrow(value, true, "Tensor.grad", "value", &g) < 0) return -1;
    if (nb_set_grad(nbp_t(self), g) != NB_OK) return nbp_raise(), -1;
    return 0;
}

static PyObject *get_is_leaf(PyObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(nb_is_leaf(nbp_t(self)));
}

static PyObject *get_grad_fn(PyObject *self, void *c) {
    (void)c;
    const char *name = nb_grad_fn_name(nbp_t(self));
    if (!name) Py_RETURN_NONE;
    return PyUnicode_FromString(name);
}

static PyObject *get_data(PyObject *self, void *c) {
    (void)c;
    return nbp_wrap(nb_detach(nbp_t(self)));
}

static int set_data(PyObject *self, PyObject *value, void *c) {
    (void)c;
    nb_tensor *src;
    if (nbp_tensor_borrow(value, false, "Tensor.data", "value", &src) < 0) return -1;
    bool was = nb_set_grad_enabled(false);
    nb_status status = nb_copy_(nbp_t(self), src);
    nb_set_grad_enabled(was);
    return status == NB_OK ? 0 : (nbp_raise(), -1);
}

static PyObject *get_T(PyObject *self, void *c) {
    (void)c;
    const nb_tensor *t = nbp_t(self);
    int dims[NB_MAX_DIMS], n = nb_ndim(t);
    for (int d = 0; d < n; d++) dims[d] = n - 1 - d;
    return nbp_wrap(nb_permute(t, dims));
}

static PyObject *get_mT(PyObject *self, void *c) {
    (void)c;
    return nbp_wrap(nb_transpose(nbp_t(self), -2, -1));
}

static PyObject *get_is_cuda(PyObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(nb_device_of(nbp_t(self)).type == NB_DEVICE_CUDA);
}

static PyObject *get_itemsize(PyObject *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(nb_dtype_size(nb_dtype_of(nbp_t(self))));
}

static PyGetSetDef tensor_getset[] = {
    {"shape", get_shape, NULL, "The sizes, a tuple.", NULL},
    {"dtype", get_dtype, NULL, "The element type.", NULL},
    {"device", get_device, NULL, "Where the tensor lives.", NULL},
    {"ndim", get_ndim, NULL, "The number of dims.", NULL},
    {"requires_grad", get_requires_grad, set_requires_grad,
     "Whether autograd computes a gradient for this tensor (settable on leaves).", NULL},
    {"grad", get_grad, set_grad, "The accumulated gradient of a leaf, or None.", NULL},
    {"is_leaf", get_is_leaf, NULL, "True for tensors no recorded op produced.", NULL},
    {"grad_fn", get_grad_fn, NULL, "The name of the op that produced this tensor, or None.", NULL},
    {"data", get_data, set_data, "The tensor outside the graph (a view); assigning copies in.", NULL},
    {"T", get_T, NULL, "The dims reversed (a view).", NULL},
    {"mT", get_mT, NULL, "The last two dims swapped (a view).", NULL},
    {"is_cuda", get_is_cuda, NULL, "True for a tensor on a GPU.", NULL},
    {"itemsize", get_itemsize, NULL, "Bytes per element.", NULL},
    {NULL}};

/* ---- operators ---- */

typedef nb_tensor *(*binary_fn)(const nb_tensor *, const nb_tensor *);

/* a op b with Python numbers converted beside the other operand */
static PyObject *binary(PyObject *a, PyObject *b, binary_fn fn, const char *name) {
    if (nbp_is_tensor(a) && nbp_is_tensor(b)) return nbp_wrap(fn(nbp_t(a), nbp_t(b)));
    bool a_tensor = nbp_is_tensor(a);
    PyObject *other = a_tensor ? b : a;
    if (!PyFloat_Check(other) && !PyLong_Check(other) && !PyList_Check(other) &&
        !PyTuple_Check(other))
        Py_RETURN_NOTIMPLEMENTED;
    const nb_tensor *like = nbp_t(a_tensor ? a : b);
    nb_tensor *o = nbp_tensor_arg(other, like, name, "other");
    if (!o) return NULL;
    nb_tensor *r = a_tensor ? fn(like, o) : fn(o, like);
    nb_release(o);
    return nbp_wrap(r);
}

/* floor(a / b) and a - floor(a / b) b (Python's and torch's remainder), in
 * f64 for integers (exact up to 2^53) and cast back to their dtype */
static nb_tensor *floor_divide(const nb_tensor *a, const nb_tensor *b, bool remainder) {
    nb_dtype dtype = nb_promote_types(nb_dtype_of(a), nb_dtype_of(b));
    bool integer = !nb_dtype_is_float(dtype);
    nb_tensor *x = integer ? nb_cast(a, NB_F64) : nb_retain((nb_tensor *)a);
    nb_tensor *y = integer ? nb_cast(b, NB_F64) : nb_retain((nb_tensor *)b);
    nb_tensor *q = x && y ? nb_div(x, y) : NULL;
    nb_tensor *f = q ? nb_floor(q) : NULL, *r = NULL;
    if (f && remainder) {
        nb_tensor *fy = nb_mul(f, y);
        r = fy ? nb_sub(x, fy) : NULL;
        nb_release(fy);
    } else {
        r = nb_retain(f);
    }
    nb_tensor *out = r && integer ? nb_cast(r, dtype) : nb_retain(r);
    nb_release(x), nb_release(y), nb_release(q), nb_release(f), nb_release(r);
    return out;
}
static nb_tensor *floordiv_fn(const nb_tensor *a, const nb_tensor *b) { return floor_divide(a, b, false); }
static nb_tensor *mod_fn(const nb_tensor *a, const nb_tensor *b) { return floor_divide(a, b, true); }

/* &, | and ^ of bool tensors (nabla has no integer bitwise ops) */
static nb_tensor *logical(const nb_tensor *a, const nb_tensor *b, binary_fn fn, const char *op) {
    if (nb_dtype_of(a) != NB_BOOL || nb_dtype_of(b) != NB_BOOL) {
        PyErr_Format(PyExc_NotImplementedError,
                     "Tensor %s: bitwise operators take bool tensors in nabla, not %s and %s", op,
                     nb_dtype_name(nb_dtype_of(a)), nb_dtype_name(nb_dtype_of(b)));
        return NULL;
    }
    return fn(a, b);
}
static nb_tensor *and_fn(const nb_tensor *a, const nb_tensor *b) { return logical(a, b, nb_logical_and, "&"); }
static nb_tensor *or_fn(const nb_tensor *a, const nb_tensor *b) { return logical(a, b, nb_logical_or, "|"); }
static nb_tensor *xor_fn(const nb_tensor *a, const nb_tensor *b) { return logical(a, b, nb_logical_xor, "^"); }

#define NBP_BINARY_SLOT(slot, fn, name) \
    static PyObject *slot(PyObject *a, PyObject *b) { return binary(a, b, fn, name); }
NBP_BINARY_SLOT(nb_add_slot, nb_add, "add")
NBP_BINARY_SLOT(nb_sub_slot, nb_sub, "sub")
NBP_BINARY_SLOT(nb_mul_slot, nb_mul, "mul")
NBP_BINARY_SLOT(nb_div_slot, nb_div, "div")
NBP_BINARY_SLOT(nb_floordiv_slot, floordiv_fn, "floor_divide")
NBP_BINARY_SLOT(nb_mod_slot, mod_fn, "remainder")
NBP_BINARY_SLOT(nb_matmul_slot, nb_matmul, "matmul")
NBP_BINARY_SLOT(nb_and_slot, and_fn, "logical_and")
NBP_BINARY_SLOT(nb_or_slot, or_fn, "logical_or")
NBP_BINARY_SLOT(nb_xor_slot, xor_fn, "logical_xor")

static PyObject *nb_pow_slot(PyObject *a, PyObject *b, PyObject *mod) {
    if (mod != Py_None) Py_RETURN_NOTIMPLEMENTED;
    return binary(a, b, nb_pow, "pow");
}

/* a op= b: the result written into a's memory (its dtype kept), as
 * PyTorch's in-place ops; refused for a tensor that needs a gradient. */
static PyObject *inplace(PyObject *a, PyObject *b, binary_fn fn, const char *name) {
    PyObject *r = binary(a, b, fn, name);
    if (!r || r == Py_NotImplemented) return r;
    nb_dtype from = nb_dtype_of(nbp_t(r)), to = nb_dtype_of(nbp_t(a));
    if (nb_dtype_is_float(from) && !nb_dtype_is_float(to)) {
        Py_DECREF(r);
        return PyErr_Format(PyExc_TypeError, "Tensor %s: the result is %s and cannot be written into "
                            "a %s tensor in place", name, nb_dtype_name(from), nb_dtype_name(to));
    }
    nb_status status = nb_copy_(nbp_t(a), nbp_t(r));
    Py_DECREF(r);
    if (status != NB_OK) return nbp_raise();
    Py_INCREF(a);
    return a;
}

#define NBP_INPLACE_SLOT(slot, fn, name) \
    static PyObject *slot(PyObject *a, PyObject *b) { return inplace(a, b, fn, name); }
NBP_INPLACE_SLOT(nb_iadd_slot, nb_add, "add_")
NBP_INPLACE_SLOT(nb_isub_slot, nb_sub, "sub_")
NBP_INPLACE_SLOT(nb_imul_slot, nb_mul, "mul_")
NBP_INPLACE_SLOT(nb_idiv_slot, nb_div, "div_")
NBP_INPLACE_SLOT(nb_ifloordiv_slot, floordiv_fn, "floor_divide_")
NBP_INPLACE_SLOT(nb_imod_slot, mod_fn, "remainder_")
NBP_INPLACE_SLOT(nb_iand_slot, and_fn, "logical_and_")
NBP_INPLACE_SLOT(nb_ior_slot, or_fn, "logical_or_")
NBP_INPLACE_SLOT(nb_ixor_slot, xor_fn, "logical_xor_")

static PyObject *nb_ipow_slot(PyObject *a, PyObject *b, PyObject *mod) {
    (void)mod;
    return inplace(a, b, nb_pow, "pow_");
}

static PyObject *nb_neg_slot(PyObject *a) { return nbp_wrap(nb_neg(nbp_t(a))); }
static PyObject *nb_abs_slot(PyObject *a) { return nbp_wrap(nb_abs(nbp_t(a))); }
static PyObject *nb_pos_slot(PyObject *a) {
    Py_INCREF(a);
    return a;
}
static PyObject *nb_invert_slot(PyObject *a) {
    if (nb_dtype_of(nbp_t(a)) != NB_BOOL)
        return PyErr_Format(PyExc_NotImplementedError,
                            "Tensor ~: bitwise operators take bool tensors in nabla, not %s",
                            nb_dtype_name(nb_dtype_of(nbp_t(a))));
    return nbp_wrap(nb_logical_not(nbp_t(a)));
}

/* The value of a one-element tensor, for bool(), float(), int(). */
static int one_value(PyObject *self, const char *what, double *value) {
    const nb_tensor *t = nbp_t(self);
    if (nb_numel(t) != 1) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s of a Tensor with %lld elements is ambiguous (one element is needed)", what,
                     (long long)nb_numel(t));
        return -1;
    }
    if (nb_item(t, value) != NB_OK) return nbp_raise(), -1;
    return 0;
}

static int nb_bool_slot(PyObject *self) {
    double v;
    if (one_value(self, "bool()", &v) < 0) return -1;
    return v != 0;
}

static PyObject *nb_float_slot(PyObject *self) {
    double v;
    return one_value(self, "float()", &v) < 0 ? NULL : PyFloat_FromDouble(v);
}

/* integers of a one-element tensor, exact for every i64 (nb_item's double is not) */
static PyObject *integer_value(PyObject *self, const char *what) {
    const nb_tensor *t = nbp_t(self);
    double v;
    if (one_value(self, what, &v) < 0) return NULL;
    if (nb_dtype_of(t) == NB_I64) {
        int64_t i;
        nb_tensor *c = nb_contiguous(t);
        nb_status status = c ? nb_to_host(c, &i, sizeof i) : nb_last_status();
        nb_release(c);
        if (status != NB_OK) return nbp_raise();
        return PyLong_FromLongLong(i);
    }
    if (!isfinite(v)) return PyErr_Format(PyExc_ValueError, "%s: cannot convert %f to an int", what, v);
    return PyLong_FromDouble(v);
}

static PyObject *nb_int_slot(PyObject *self) { return integer_value(self, "int()"); }

static PyObject *nb_index_slot(PyObject *self) {
    if (nb_dtype_is_float(nb_dtype_of(nbp_t(self))))
        return PyErr_Format(PyExc_TypeError, "only integer tensors of a single element can be "
                            "converted to an index");
    return integer_value(self, "__index__");
}

static PyNumberMethods tensor_as_number = {
    .nb_add = nb_add_slot,
    .nb_subtract = nb_sub_slot,
    .nb_multiply = nb_mul_slot,
    .nb_remainder = nb_mod_slot,
    .nb_power = nb_pow_slot,
    .nb_negative = nb_neg_slot,
    .nb_positive = nb_pos_slot,
    .nb_absolute = nb_abs_slot,
    .nb_bool = nb_bool_slot,
    .nb_invert = nb_invert_slot,
    .nb_and = nb_and_slot,
    .nb_xor = nb_xor_slot,
    .nb_or = nb_or_slot,
    .nb_int = nb_int_slot,
    .nb_float = nb_float_slot,
    .nb_inplace_add = nb_iadd_slot,
    .nb_inplace_subtract = nb_isub_slot,
    .nb_inplace_multiply = nb_imul_slot,
    .nb_inplace_remainder = nb_imod_slot,
    .nb_inplace_power = nb_ipow_slot,
    .nb_inplace_and = nb_iand_slot,
    .nb_inplace_xor = nb_ixor_slot,
    .nb_inplace_or = nb_ior_slot,
    .nb_floor_divide = nb_floordiv_slot,
    .nb_true_divide = nb_div_slot,
    .nb_inplace_floor_divide = nb_ifloordiv_slot,
    .nb_inplace_true_divide = nb_idiv_slot,
    .nb_index = nb_index_slot,
    .nb_matrix_multiply = nb_matmul_slot,
};

static PyObject *tensor_richcompare(PyObject *a, PyObject *b, int op) {
    static const binary_fn fns[] = {[Py_LT] = nb_lt, [Py_LE] = nb_le, [Py_EQ] = nb_eq,
                                    [Py_NE] = nb_ne, [Py_GT] = nb_gt, [Py_GE] = nb_ge};
    if (!nbp_is_tensor(b) && !PyFloat_Check(b) && !PyLong_Check(b)) Py_RETURN_NOTIMPLEMENTED;
    return binary(a, b, fns[op], "compare");
}

/* ---- sequences ---- */

static Py_ssize_t tensor_length(PyObject *self) {
    const nb_tensor *t = nbp_t(self);
    if (nb_ndim(t) == 0) return PyErr_SetString(PyExc_TypeError, "len() of a 0-d tensor"), -1;
    return (Py_ssize_t)nb_shape(t)[0];
}

static PyObject *tensor_subscript(PyObject *self, PyObject *key) {
    PyObject *out;
    return nbp_index_get(self, key, &out) < 0 ? NULL : out;
}

static int tensor_ass_subscript(PyObject *self, PyObject *key, PyObject *value) {
    if (!value) return PyErr_SetString(PyExc_TypeError, "Tensor items cannot be deleted"), -1;
    return nbp_index_set(self, key, value);
}

static PyMappingMethods tensor_as_mapping = {tensor_length, tensor_subscript, tensor_ass_subscript};

/* iter(t): the slices along dim 0 */
static PyObject *tensor_iter(PyObject *self) {
    Py_ssize_t n = tensor_length(self);
    if (n < 0) return NULL;
    PyObject *items = PyList_New(n);
    if (!items) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        nb_tensor *s = nb_slice(nbp_t(self), 0, i, i + 1, 1);
        PyObject *item = nbp_wrap(s ? nb_squeeze(s, 0) : NULL);
        nb_release(s);
        if (!item) {
            Py_DECREF(items);
            return NULL;
        }
        PyList_SET_ITEM(items, i, item);
    }
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    return it;
}

/* The C printer's text with the dtype named as Python names it. */
static PyObject *python_text(const char *text, nb_dtype dtype) {
    PyObject *r = PyUnicode_FromString(text);
    char c_name[32], py_name[48];
    snprintf(c_name, sizeof c_name, "dtype=%s", nb_dtype_name(dtype));
    PyObject *name = PyObject_Str(nbp_dtype_object(dtype));
    const char *py = name ? PyUnicode_AsUTF8(name) : NULL;
    if (!r || !py) {
        Py_XDECREF(name);
        Py_XDECREF(r);
        return NULL;
    }
    snprintf(py_name, sizeof py_name, "dtype=%s", py);
    Py_DECREF(name);
    PyObject *from = PyUnicode_FromString(c_name), *to = PyUnicode_FromString(py_name);
    PyObject *replaced = from && to ? PyUnicode_Replace(r, from, to, 1) : NULL;
    Py_XDECREF(from);
    Py_XDECREF(to);
    Py_DECREF(r);
    return replaced;
}

static PyObject *tensor_repr(PyObject *self) {
    char small[512];
    int n = nb_format(nbp_t(self), small, sizeof small);
    if (n < 0) return nbp_raise();
    nb_dtype dtype = nb_dtype_of(nbp_t(self));
    if ((size_t)n < sizeof small) return python_text(small, dtype);
    char *big = PyMem_Malloc((size_t)n + 1);
    if (!big) return PyErr_NoMemory();
    nb_format(nbp_t(self), big, (size_t)n + 1);
    PyObject *r = python_text(big, dtype);
    PyMem_Free(big);
    return r;
}

/* ---- the buffer protocol: numpy and memoryview share a CPU tensor's memory ---- */

static const char *buffer_format(nb_dtype dtype) {
    static const char *const formats[NB_DTYPE_COUNT] = {
        [NB_F32] = "f", [NB_F64] = "d", [NB_F16] = "e", [NB_I32] = "i",
        [NB_I64] = "q", [NB_U8] = "B",  [NB_BOOL] = "?"};
    return formats[dtype];
}

/* Why t cannot be exported to numpy, or NULL. */
static const char *export_refusal(const nb_tensor *t) {
    if (nb_device_of(t).type != NB_DEVICE_CPU)
        return "it is on a GPU: use .cpu() first, or DLPack (from_dlpack) to share it";
    if (!buffer_format(nb_dtype_of(t))) return "numpy has no bfloat16: use .float() first";
    if (nb_requires_grad(t)) return "it requires a gradient: use .detach().numpy()";
    return NULL;
}

static int tensor_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    const nb_tensor *t = nbp_t(self);
    const char *refusal = export_refusal(t);
    if (refusal) return PyErr_Format(PyExc_BufferError, "Tensor: cannot share the memory: %s", refusal), -1;
    int n = nb_ndim(t);
    Py_ssize_t *geometry = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(2 * n + 1));
    if (!geometry) return PyErr_NoMemory(), -1;
    Py_ssize_t itemsize = (Py_ssize_t)nb_dtype_size(nb_dtype_of(t));
    for (int d = 0; d < n; d++) {
        geometry[d] = (Py_ssize_t)nb_shape(t)[d];
        geometry[n + d] = (Py_ssize_t)nb_strides(t)[d] * itemsize;
    }
    *view = (Py_buffer){.buf = nb_data(t), .obj = self, .len = (Py_ssize_t)nb_numel(t) * itemsize,
                        .itemsize = itemsize, .readonly = 0, .ndim = n,
                        .format = (flags & PyBUF_FORMAT) ? (char *)buffer_format(nb_dtype_of(t)) : NULL,
                        .shape = geometry, .strides = geometry + n, .internal = geometry};
    if ((flags & PyBUF_ND) != PyBUF_ND && !nb_is_contiguous(t)) {
        PyMem_Free(geometry);
        return PyErr_SetString(PyExc_BufferError, "Tensor: not contiguous; ask for strides"), -1;
    }
    Py_INCREF(self);
    return 0;
}

static void tensor_releasebuffer(PyObject *self, Py_buffer *view) {
    (void)self;
    PyMem_Free(view->internal);
}

static PyBufferProcs tensor_as_buffer = {tensor_getbuffer, tensor_releasebuffer};

/* ---- tensors over Python memory ---- */

typedef struct {
    Py_buffer view;
} held_buffer;

static void release_held_buffer(void *ctx) {
    if (!Py_IsInitialized()) return;
    PyGILState_STATE state = PyGILState_Ensure();
    PyBuffer_Release(&((held_buffer *)ctx)->view);
    PyMem_RawFree(ctx);
    PyGILState_Release(state);
}

static int format_dtype(const Py_buffer *view, nb_dtype *out) {
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (f[0] && f[1]) return -1;
    switch (f[0]) {
    case 'f': *out = NB_F32; break;
    case 'd': *out = NB_F64; break;
    case 'e': *out = NB_F16; break;
    case 'i': case 'l': case 'q':
        if (view->itemsize == 4) *out = NB_I32;
        else if (view->itemsize == 8) *out = NB_I64;
        else return -1;
        break;
    case 'B': *out = NB_U8; break;
    case '?': *out = NB_BOOL; break;
    default: return -1;
    }
    return (Py_ssize_t)nb_dtype_size(*out) == view->itemsize ? 0 : -1;
}

nb_tensor *nbp_tensor_from_buffer(PyObject *obj, const char *fn) {
    held_buffer *held = PyMem_RawCalloc(1, sizeof *held);
    if (!held) return PyErr_NoMemory(), NULL;
    if (PyObject_GetBuffer(obj, &held->view, PyBUF_RECORDS_RO) < 0) {
        PyMem_RawFree(held);
        return NULL;
    }
    Py_buffer *v = &held->view;
    nb_dtype dtype;
    int64_t shape[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    const char *problem = NULL;
    if (format_dtype(v, &dtype) < 0) problem = "its element type has no nabla dtype";
    else if (v->ndim > NB_MAX_DIMS) problem = "it has more dims than nabla's 8";
    size_t extent = v->ndim && !problem ? (size_t)v->itemsize : (size_t)v->len;
    for (int d = 0; d < v->ndim && !problem; d++) {
        shape[d] = v->shape[d];
        Py_ssize_t stride = v->strides[d]; /* PyBUF_STRIDES asks for them */
        if (stride < 0 || stride % v->itemsize) problem = "its strides are negative or not whole elements";
        strides[d] = stride / v->itemsize;
        if (shape[d] == 0) extent = 0;
        else if (extent) extent += (size_t)(shape[d] - 1) * (size_t)stride;
    }
    if (problem) {
        PyErr_Format(PyExc_TypeError, "%s: cannot share the memory of a %s (format '%s'): %s", fn,
                     Py_TYPE(obj)->tp_name, v->format ? v->format : "B", problem);
        PyBuffer_Release(v);
        PyMem_RawFree(held);
        return NULL;
    }
    nb_tensor *t = nb_from_memory(v->buf, extent, v->ndim, shape, strides, dtype, nb_cpu(),
                                  release_held_buffer, held);
    if (!t) {
        PyBuffer_Release(v);
        PyMem_RawFree(held);
        nbp_raise();
    }
    return t;
}

/* ---- tensors from Python data ---- */

typedef enum { KIND_BOOL, KIND_INT, KIND_FLOAT } value_kind;

typedef struct {
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    value_kind kind;
    const char *fn;
} list_layout;

static int scalar_kind(PyObject *o, value_kind *kind) {
    if (PyBool_Check(o)) *kind = KIND_BOOL;
    else if (PyLong_Check(o) || (PyIndex_Check(o) && !nbp_is_tensor(o))) *kind = KIND_INT;
    else if (PyFloat_Check(o) || PyNumber_Check(o)) *kind = KIND_FLOAT;
    else return -1;
    if (nbp_is_tensor(o)) {
        nb_dtype d = nb_dtype_of(nbp_t(o));
        *kind = d == NB_BOOL ? KIND_BOOL : nb_dtype_is_float(d) ? KIND_FLOAT : KIND_INT;
    }
    return 0;
}

/* The shape of nested sequences (from the first entries) and the widest kind. */
static int measure(PyObject *o, int depth, list_layout *l) {
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        if (depth >= NB_MAX_DIMS)
            return PyErr_Format(PyExc_ValueError, "%s: more than %d nested levels", l->fn, NB_MAX_DIMS), -1;
        if (depth == l->ndim) {
            l->shape[l->ndim++] = n;
        } else if (depth > l->ndim || l->shape[depth] != n) {
            return PyErr_Format(PyExc_ValueError, "%s: the nested sequences are ragged: a sequence of "
                                "length %zd at depth %d where others have %lld", l->fn, n, depth,
                                depth < l->ndim ? (long long)l->shape[depth] : 0LL), -1;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            if (measure(PySequence_Fast_GET_ITEM(o, i), depth + 1, l) < 0) return -1;
        return 0;
    }
    value_kind kind;
    if (depth != l->ndim || scalar_kind(o, &kind) < 0 ||
        (nbp_is_tensor(o) && nb_numel(nbp_t(o)) != 1))
        return PyErr_Format(depth != l->ndim ? PyExc_ValueError : PyExc_TypeError,
                            "%s: expected %s at depth %d, got %s", l->fn,
                            depth != l->ndim ? "a sequence" : "a number", depth, Py_TYPE(o)->tp_name),
               -1;
    if (kind > l->kind) l->kind = kind;
    return 0;
}

/* Writes the numbers as int64 or double, row-major. */
static int fill(PyObject *o, value_kind kind, char **cursor) {
    if (PyList_Check(o) || PyTuple_Check(o)) {
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(o); i++)
            if (fill(PySequence_Fast_GET_ITEM(o, i), kind, cursor) < 0) return -1;
        return 0;
    }
    if (kind == KIND_FLOAT) {
        double v;
        if (nbp_double_arg(o, "tensor", "data", &v) < 0) return -1;
        memcpy(*cursor, &v, sizeof v);
    } else {
        int64_t v;
        if (nbp_is_tensor(o)) {
            PyObject *i = PyNumber_Long(o);
            if (!i) return -1;
            v = PyLong_AsLongLong(i);
            Py_DECREF(i);
        } else {
            v = PyLong_AsLongLong(o);
        }
        if (v == -1 && PyErr_Occurred()) return -1;
        memcpy(*cursor, &v, sizeof v);
    }
    *cursor += 8;
    return 0;
}

static nb_tensor *from_sequence(PyObject *data, nb_dtype dtype, nb_device device, const char *fn) {
    list_layout l = {.kind = KIND_BOOL, .fn = fn};
    if (measure(data, 0, &l) < 0) return NULL;
    int64_t numel = 1;
    for (int d = 0; d < l.ndim; d++) numel *= l.shape[d];
    /* staged as doubles when a value or the dtype is a float, else exactly as int64 */
    bool floats = l.kind == KIND_FLOAT || (dtype != NB_DTYPE_COUNT && nb_dtype_is_float(dtype));
    value_kind kind = floats ? KIND_FLOAT : KIND_INT;
    char *buffer = PyMem_Malloc((size_t)(numel ? numel : 1) * 8);
    if (!buffer) return PyErr_NoMemory(), NULL;
    char *cursor = buffer;
    if (fill(data, kind, &cursor) < 0) {
        PyMem_Free(buffer);
        return NULL;
    }
    nb_dtype staged = kind == KIND_FLOAT ? NB_F64 : NB_I64;
    nb_dtype target = dtype != NB_DTYPE_COUNT ? dtype
                      : l.kind == KIND_FLOAT ? NB_F32 : l.kind == KIND_INT ? NB_I64 : NB_BOOL;
    nb_tensor *host = nb_from_host(buffer, l.ndim, l.shape, staged, nb_cpu());
    PyMem_Free(buffer);
    nb_tensor *cast = host ? nb_cast(host, target) : NULL;
    nb_release(host);
    nb_tensor *t = cast ? nb_to(cast, device) : NULL;
    nb_release(cast);
    if (!t) nbp_raise();
    return t;
}

nb_tensor *nbp_tensor_from_data(PyObject *data, nb_dtype dtype, nb_device device, const char *fn) {
    nb_tensor *src = NULL;
    if (nbp_is_tensor(data)) {
        src = nb_detach(nbp_t(data));
    } else if (PyObject_CheckBuffer(data) && !PyBytes_Check(data)) {
        src = nbp_tensor_from_buffer(data, fn);
        if (!src) return NULL;
    } else if (PyList_Check(data) || PyTuple_Check(data) || PyNumber_Check(data)) {
        return from_sequence(data, dtype, device, fn);
    } else {
        PyErr_Format(PyExc_TypeError, "%s: cannot make a tensor of a %s", fn, Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (!src) return nbp_raise(), NULL;
    nb_tensor *cast = dtype == NB_DTYPE_COUNT || dtype == nb_dtype_of(src) ? nb_clone(src)
                                                                           : nb_cast(src, dtype);
    nb_release(src);
    nb_tensor *t = cast ? nb_to(cast, device) : NULL;
    nb_release(cast);
    if (!t) nbp_raise();
    return t;
}

/* ---- methods of the object itself ---- */

static PyObject *numpy_module;

static PyObject *tensor_numpy(PyObject *self, PyObject *unused) {
    (void)unused;
    const char *refusal = export_refusal(nbp_t(self));
    if (refusal) return PyErr_Format(PyExc_TypeError, "Tensor.numpy: %s", refusal);
    if (!numpy_module && !(numpy_module = PyImport_ImportModule("numpy"))) return NULL;
    return PyObject_CallMethod(numpy_module, "asarray", "O", self);
}

/* numpy's __array__(dtype=None, copy=None) (numpy 2's protocol): the shared
 * memory; copy=True a copy; copy=False refuses a dtype conversion */
static PyObject *tensor_array(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    static const char *const names[] = {"dtype", "copy", NULL};
    PyObject *a[2];
    if (nbp_parse("__array__", names, 0, args, nargs, kwnames, a) < 0) return NULL;
    PyObject *dtype = a[0] ? a[0] : Py_None, *copy = a[1] ? a[1] : Py_None;
    PyObject *shared = tensor_numpy(self, NULL);
    if (!shared) return NULL;
    if (dtype == Py_None && copy != Py_True) return shared;
    PyObject *want = dtype == Py_None ? PyObject_GetAttrString(shared, "dtype") : (Py_INCREF(dtype), dtype);
    PyObject *r = NULL;
    if (want && copy == Py_False) { /* only a view is allowed */
        PyObject *same = PyObject_GetAttrString(shared, "dtype");
        int equal = same ? PyObject_RichCompareBool(same, want, Py_EQ) : -1;
        Py_XDECREF(same);
        if (equal > 0) r = (Py_INCREF(shared), shared);
        else if (equal == 0)
            PyErr_SetString(PyExc_ValueError, "__array__: copy=False, but the dtype asked for needs a copy");
    } else if (want) {
        r = PyObject_CallMethod(shared, "astype", "O", want); /* astype copies */
    }
    Py_XDECREF(want);
    Py_DECREF(shared);
    return r;
}

/* Python values of a host copy, nested like the tensor */
static PyObject *nested_values(const char **data, const nb_tensor *t, int dim, nb_dtype staged) {
    if (dim == nb_ndim(t)) {
        const char *p = *data;
        *data += 8;
        if (staged == NB_F64) {
            double v;
            memcpy(&v, p, 8);
            return PyFloat_FromDouble(v);
        }
        int64_t v;
        memcpy(&v, p, 8);
        return nb_dtype_of(t) == NB_BOOL ? PyBool_FromLong(v != 0) : PyLong_FromLongLong(v);
    }
    Py_ssize_t n = (Py_ssize_t)nb_shape(t)[dim];
    PyObject *list = PyList_New(n);
    for (Py_ssize_t i = 0; list && i < n; i++) {
        PyObject *item = nested_values(data, t, dim + 1, staged);
        if (!item) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *tensor_tolist(PyObject *self, PyObject *unused) {
    (void)unused;
    const nb_tensor *t = nbp_t(self);
    nb_dtype staged = nb_dtype_is_float(nb_dtype_of(t)) ? NB_F64 : NB_I64;
    nb_tensor *c = nb_cast(t, staged);
    size_t nbytes = (size_t)nb_numel(t) * 8;
    char *buffer = c ? PyMem_Malloc(nbytes ? nbytes : 1) : NULL;
    if (c && !buffer) {
        nb_release(c);
        return PyErr_NoMemory();
    }
    nb_status status = c ? nb_to_host(c, buffer, nbytes) : nb_last_status();
    nb_release(c);
    if (status != NB_OK) {
        PyMem_Free(buffer);
        return nbp_raise();
    }
    const char *cursor = buffer;
    PyObject *r = nested_values(&cursor, t, 0, staged);
    PyMem_Free(buffer);
    return r;
}

static PyObject *tensor_item(PyObject *self, PyObject *unused) {
    (void)unused;
    const nb_tensor *t = nbp_t(self);
    if (nb_numel(t) != 1)
        return PyErr_Format(PyExc_ValueError, "Tensor.item: the tensor has %lld elements, not one",
                            (long long)nb_numel(t));
    nb_tensor *scalar = nb_reshape(t, 0, NULL);
    if (!scalar) return nbp_raise();
    PyObject *o = nbp_wrap(scalar);
    PyObject *r = o ? tensor_tolist(o, NULL) : NULL;
    Py_XDECREF(o);
    return r;
}

static PyObject *tensor_make_subclass(PyObject *cls, PyObject *args) {
    PyObject *data;
    int requires_grad = 0;
    if (!PyArg_ParseTuple(args, "O!O!|p:_make_subclass", &PyType_Type, &cls, &nbp_tensor_type,
                          &data, &requires_grad))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &nbp_tensor_type))
        return PyErr_Format(PyExc_TypeError, "_make_subclass: %s is not a Tensor type",
                            ((PyTypeObject *)cls)->tp_name);
    nb_tensor *t = nb_detach(nbp_t(data));
    if (t && requires_grad && require_grad(t) < 0) return NULL;
    return nbp_wrap_as((PyTypeObject *)cls, t);
}

#ifdef NBP_WITH_DLPACK
static void dlpack_capsule_destructor(PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, "dltensor")) return; /* consumed: used_dltensor */
    DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
    if (m && m->deleter) m->deleter(m);
}

static PyObject *tensor_dlpack(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    static const char *const names[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *a[4];
    if (nbp_parse("__dlpack__", names, 0, args, nargs, kwnames, a) < 0) return NULL;
    const nb_tensor *t = nbp_t(self);
    /* the consumer reads on its own stream: the producer's work must be done */
    if (nb_device_of(t).type == NB_DEVICE_CUDA && nb_cuda_synchronize(nb_device_of(t).index) != NB_OK)
        return nbp_raise();
    DLManagedTensor *m;
    if (nb_to_dlpack(t, &m) != NB_OK) return nbp_raise();
    PyObject *capsule = PyCapsule_New(m, "dltensor", dlpack_capsule_destructor);
    if (!capsule) m->deleter(m);
    return capsule;
}

PyObject *nbp_from_dlpack(PyObject *obj) {
    PyObject *capsule = PyCapsule_CheckExact(obj) ? (Py_INCREF(obj), obj)
                                                   : PyObject_CallMethod(obj, "__dlpack__", NULL);
    if (!capsule) return NULL;
    DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
    if (!m) {
        Py_DECREF(capsule);
        return NULL;
    }
    nb_tensor *t;
    if (nb_from_dlpack(m, &t) != NB_OK) {
        Py_DECREF(capsule);
        return nbp_raise();
    }
    PyCapsule_SetName(capsule, "used_dltensor");
    Py_DECREF(capsule);
    return nbp_wrap(t);
}
#else
static PyObject *tensor_dlpack(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    (void)self, (void)args, (void)nargs, (void)kwnames;
    return PyErr_Format(PyExc_NotImplementedError, "__dlpack__: nabla was built without DLPack "
                        "(apt-get install libdlpack-dev)");
}

PyObject *nbp_from_dlpack(PyObject *obj) {
    (void)obj;
    return PyErr_Format(PyExc_NotImplementedError, "from_dlpack: nabla was built without DLPack "
                        "(apt-get install libdlpack-dev)");
}
#endif

static PyObject *tensor_dlpack_device(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_device d = nb_device_of(nbp_t(self));
    /* DLPack's kDLCPU = 1, kDLCUDA = 2 */
    return Py_BuildValue("(ii)", d.type == NB_DEVICE_CPU ? 1 : 2, d.type == NB_DEVICE_CPU ? 0 : d.index);
}

static PyMethodDef tensor_methods[] = {
    {"numpy", tensor_numpy, METH_NOARGS,
     "numpy() -> numpy.ndarray: the same memory as an array (CPU tensors without a gradient)."},
    {"__array__", (PyCFunction)(void (*)(void))tensor_array, METH_FASTCALL | METH_KEYWORDS,
     "__array__(dtype=None, copy=None): the tensor as a numpy array (shared memory; copy=True copies)."},
    {"tolist", tensor_tolist, METH_NOARGS, "tolist() -> list: the values as nested Python lists."},
    {"item", tensor_item, METH_NOARGS, "item() -> number: the value of a one-element tensor."},
    {"__dlpack__", (PyCFunction)(void (*)(void))tensor_dlpack, METH_FASTCALL | METH_KEYWORDS,
     "__dlpack__(stream=None): a DLPack capsule sharing the memory."},
    {"__dlpack_device__", tensor_dlpack_device, METH_NOARGS,
     "(device type, index) as DLPack numbers them."},
    {"_make_subclass", tensor_make_subclass, METH_VARARGS | METH_STATIC,
     "_make_subclass(cls, data, requires_grad=False): data's storage as a cls (Parameter)."},
    {NULL}};

PyTypeObject nbp_tensor_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.Tensor",
    .tp_basicsize = sizeof(nbp_tensor),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Tensor(data, dtype=None, device=None, requires_grad=False): an n-dimensional array on "
              "the CPU or a GPU, recorded by autograd. nabla.tensor(...) makes one from data.",
    .tp_new = tensor_tp_new,
    .tp_dealloc = tensor_dealloc,
    .tp_repr = tensor_repr,
    .tp_as_number = &tensor_as_number,
    .tp_as_mapping = &tensor_as_mapping,
    .tp_as_buffer = &tensor_as_buffer,
    .tp_hash = tensor_hash,
    .tp_richcompare = tensor_richcompare,
    .tp_weaklistoffset = offsetof(nbp_tensor, weakrefs),
    .tp_iter = tensor_iter,
    .tp_getset = tensor_getset,
    .tp_methods = tensor_methods,
};

int nbp_tensor_type_init(PyObject *module) {
    if (PyType_Ready(&nbp_tensor_type) < 0) return -1;
    Py_INCREF(&nbp_tensor_type);
    return PyModule_AddObject(module, "Tensor", (PyObject *)&nbp_tensor_type);
}
