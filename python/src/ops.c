/* The op table: every function of nabla's C API that Python sees as
 * nabla.<name>(...) or Tensor.<name>(...), each one entry (name, adapter, C
 * function, parameters, docstring). An entry becomes an op object: a
 * vectorcall callable that is also a method descriptor, so x.exp() and
 * nabla.exp(x) are the same call without a bound-method object. The
 * adapters convert the parsed arguments (PyTorch's names and conventions)
 * and call the C function. */
#include "pynabla.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* what an adapter shared by several entries tells them apart by */
enum { SET_MAX = 1, SET_MIN, SET_UNIFORM, SET_NORMAL, SET_ZEROS, SET_ONES, SET_EMPTY, SET_DIM,
       SET_DATA_PTR, SET_NUMEL, SET_ELEMENT_SIZE, SET_IS_CONTIGUOUS };

typedef struct {
    PyObject_HEAD
    const nbp_op_def *def;
    vectorcallfunc vectorcall;
} nbp_op;

#define FN(type) ((type)(void (*)(void))def->fn)
typedef nb_tensor *(*unary_fn)(const nb_tensor *);
typedef nb_tensor *(*binary_fn)(const nb_tensor *, const nb_tensor *);
typedef nb_tensor *(*reduce_fn)(const nb_tensor *, int, const int *, bool);

/* ---- argument helpers ---- */

static nb_tensor *tensor_of(const nbp_op_def *def, PyObject **a, int i) {
    nb_tensor *t;
    return nbp_tensor_borrow(a[i], false, def->name, def->params[i], &t) < 0 ? NULL : t;
}

static int optional_tensor(const nbp_op_def *def, PyObject **a, int i, nb_tensor **out) {
    return nbp_tensor_borrow(a[i], true, def->name, def->params[i], out);
}

static int bool_of(PyObject *o, bool fallback, bool *out) {
    if (!o) return *out = fallback, 0;
    int v = PyObject_IsTrue(o);
    if (v < 0) return -1;
    *out = v;
    return 0;
}

static int double_of(const nbp_op_def *def, PyObject **a, int i, double fallback, double *out) {
    if (!a[i] || a[i] == Py_None) return *out = fallback, 0;
    return nbp_double_arg(a[i], def->name, def->params[i], out);
}

static int int_of(const nbp_op_def *def, PyObject **a, int i, int64_t fallback, int64_t *out) {
    if (!a[i] || a[i] == Py_None) return *out = fallback, 0;
    return nbp_int64_arg(a[i], def->name, def->params[i], out);
}

static int dim_of(const nbp_op_def *def, PyObject **a, int i, int fallback, int *out) {
    int64_t d;
    if (int_of(def, a, i, fallback, &d) < 0) return -1;
    if (d < INT32_MIN || d > INT32_MAX)
        return PyErr_Format(PyExc_IndexError, "%s: dim %lld is out of range", def->name, (long long)d), -1;
    *out = (int)d;
    return 0;
}

/* A shape given as sizes or one tuple/list (the packed *size). */
static int shape_of(const nbp_op_def *def, PyObject *o, int64_t *shape) {
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 1 &&
        (PyTuple_Check(PyTuple_GET_ITEM(o, 0)) || PyList_Check(PyTuple_GET_ITEM(o, 0))))
        o = PyTuple_GET_ITEM(o, 0);
    return nbp_int64s(o, NB_MAX_DIMS, def->name, "size", shape);
}

static PyObject *wrap_grad(nb_tensor *t, PyObject *requires_grad) {
    bool on;
    if (!t) return nbp_raise();
    if (bool_of(requires_grad, false, &on) < 0 || (on && nb_set_requires_grad(t, true) != NB_OK)) {
        nb_release(t);
        return PyErr_Occurred() ? NULL : nbp_raise();
    }
    return nbp_wrap(t);
}

/* ---- elementwise ---- */

static PyObject *a_unary(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    return x ? nbp_wrap(FN(unary_fn)(x)) : NULL;
}

/* fn(input, other): a Python number beside a tensor takes its dtype */
static PyObject *binary_call(const nbp_op_def *def, PyObject *x, PyObject *y, binary_fn fn) {
    const nb_tensor *like = nbp_is_tensor(x) ? nbp_t(x) : nbp_is_tensor(y) ? nbp_t(y) : NULL;
    nb_tensor *p = nbp_tensor_arg(x, like, def->name, def->params[0]);
    nb_tensor *q = p ? nbp_tensor_arg(y, like ? like : p, def->name, def->params[1]) : NULL;
    PyObject *r = q ? nbp_wrap(fn(p, q)) : NULL;
    nb_release(p);
    nb_release(q);
    return r;
}

static PyObject *a_binary(const nbp_op_def *def, PyObject **a) {
    return binary_call(def, a[0], a[1], FN(binary_fn));
}

/* add and sub: input + alpha other */
static PyObject *a_add_alpha(const nbp_op_def *def, PyObject **a) {
    if (!a[2]) return a_binary(def, a);
    PyObject *scaled = PyNumber_Multiply(a[1], a[2]);
    if (!scaled) return NULL;
    PyObject *r = binary_call(def, a[0], scaled, FN(binary_fn));
    Py_DECREF(scaled);
    return r;
}

static PyObject *a_leaky_relu(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    double slope;
    if (!x || double_of(def, a, 1, 0.01, &slope) < 0) return NULL;
    return nbp_wrap(nb_leaky_relu(x, slope));
}

static PyObject *a_gelu(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    if (!x) return NULL;
    const char *approximate = a[1] ? PyUnicode_AsUTF8(a[1]) : "none";
    if (!approximate) return NULL;
    if (strcmp(approximate, "none") && strcmp(approximate, "tanh"))
        return PyErr_Format(PyExc_ValueError, "gelu: approximate must be 'none' or 'tanh', not '%s'",
                            approximate);
    return nbp_wrap(nb_gelu(x, !strcmp(approximate, "tanh")));
}

static PyObject *a_clamp(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    double lo, hi;
    if (!x || double_of(def, a, 1, -INFINITY, &lo) < 0 || double_of(def, a, 2, INFINITY, &hi) < 0)
        return NULL;
    return nbp_wrap(nb_clamp(x, lo, hi));
}

static PyObject *a_where(const nbp_op_def *def, PyObject **a) {
    nb_tensor *cond = tensor_of(def, a, 0);
    if (!cond) return NULL;
    const nb_tensor *like = nbp_is_tensor(a[1]) ? nbp_t(a[1]) : nbp_is_tensor(a[2]) ? nbp_t(a[2]) : NULL;
    nb_tensor *x = nbp_tensor_arg(a[1], like, def->name, "input");
    nb_tensor *y = x ? nbp_tensor_arg(a[2], like ? like : x, def->name, "other") : NULL;
    PyObject *r = y ? nbp_wrap(nb_where(cond, x, y)) : NULL;
    nb_release(x);
    nb_release(y);
    return r;
}

/* Tensor.where(condition, other): self where condition, else other */
static PyObject *a_where_method(const nbp_op_def *def, PyObject **a) {
    PyObject *reordered[3] = {a[1], a[0], a[2]};
    return a_where(def, reordered);
}

static PyObject *a_masked_fill(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *mask = x ? tensor_of(def, a, 1) : NULL;
    double value;
    if (!mask || double_of(def, a, 2, 0, &value) < 0) return NULL;
    return nbp_wrap(nb_masked_fill(x, mask, value));
}

static PyObject *a_cast(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    nb_dtype dtype;
    if (!x || nbp_dtype_arg(a[1], NB_F32, def->name, "dtype", &dtype) < 0) return NULL;
    return nbp_wrap(nb_cast(x, dtype));
}

/* ---- reductions ---- */

static int reduce_args(const nbp_op_def *def, PyObject **a, int dim_slot, int keep_slot,
                       nb_tensor **x, int *dims, int *ndims, bool *keepdim) {
    *x = tensor_of(def, a, 0);
    if (!*x) return -1;
    *ndims = nbp_dims(a[dim_slot], def->name, "dim", dims);
    if (*ndims < 0) return -1;
    return bool_of(a[keep_slot], false, keepdim);
}

static PyObject *a_reduce(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x;
    int dims[NB_MAX_DIMS], n;
    bool keepdim;
    if (reduce_args(def, a, 1, 2, &x, dims, &n, &keepdim) < 0) return NULL;
    nb_tensor *r = FN(reduce_fn)(x, n, dims, keepdim);
    if (!r || !a[3] || a[3] == Py_None) return nbp_wrap(r);
    nb_dtype dtype;
    if (nbp_dtype_arg(a[3], NB_F32, def->name, "dtype", &dtype) < 0) return nb_release(r), NULL;
    nb_tensor *c = nb_cast(r, dtype);
    nb_release(r);
    return nbp_wrap(c);
}

static PyStructSequence_Field minmax_fields[] = {{"values", "the extreme values"},
                                                 {"indices", "their indices along dim"},
                                                 {NULL}};
static PyStructSequence_Desc minmax_desc = {"nabla.return_types.minmax", "(values, indices)",
                                            minmax_fields, 2};
static PyTypeObject minmax_type;

/* max(input) -> the maximum; max(input, dim, keepdim) -> (values, indices);
 * max(input, other) -> maximum(input, other). */
static PyObject *a_minmax(const nbp_op_def *def, PyObject **a) {
    bool is_max = def->setting == SET_MAX;
    if (a[1] && nbp_is_tensor(a[1]))
        return binary_call(def, a[0], a[1], is_max ? nb_maximum : nb_minimum);
    nb_tensor *x;
    int dims[NB_MAX_DIMS], n;
    bool keepdim;
    if (reduce_args(def, a, 1, 2, &x, dims, &n, &keepdim) < 0) return NULL;
    if (n == 0) return nbp_wrap((is_max ? nb_max : nb_min)(x, 0, NULL, false));
    if (n != 1 || !PyLong_Check(a[1]))
        return PyErr_Format(PyExc_TypeError, "%s: dim must be one int (amax/amin take several)", def->name);
    PyObject *values = nbp_wrap((is_max ? nb_max : nb_min)(x, 1, dims, keepdim));
    PyObject *indices = values ? nbp_wrap((is_max ? nb_argmax : nb_argmin)(x, 1, dims, keepdim)) : NULL;
    PyObject *r = indices ? PyStructSequence_New(&minmax_type) : NULL;
    if (!r) {
        Py_XDECREF(values);
        Py_XDECREF(indices);
        return NULL;
    }
    PyStructSequence_SET_ITEM(r, 0, values);
    PyStructSequence_SET_ITEM(r, 1, indices);
    return r;
}

/* var(input, dim=None, unbiased=None, keepdim=False, correction=None) */
static PyObject *a_var(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x;
    int dims[NB_MAX_DIMS], n;
    bool keepdim, unbiased;
    double correction;
    if (reduce_args(def, a, 1, 3, &x, dims, &n, &keepdim) < 0 || bool_of(a[2], true, &unbiased) < 0 ||
        double_of(def, a, 4, unbiased ? 1 : 0, &correction) < 0)
        return NULL;
    typedef nb_tensor *(*var_fn)(const nb_tensor *, int, const int *, double, bool);
    return nbp_wrap(FN(var_fn)(x, n, dims, correction, keepdim));
}

static PyObject *a_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x;
    int dims[NB_MAX_DIMS], n;
    bool keepdim;
    double p = 2;
    if (reduce_args(def, a, 2, 3, &x, dims, &n, &keepdim) < 0) return NULL;
    if (a[1] && PyUnicode_Check(a[1])) {
        if (PyUnicode_CompareWithASCIIString(a[1], "fro"))
            return PyErr_Format(PyExc_ValueError, "norm: p must be a number or 'fro', not '%U'", a[1]);
    } else if (double_of(def, a, 1, 2, &p) < 0) {
        return NULL;
    }
    return nbp_wrap(nb_norm(x, p, n, dims, keepdim));
}

static PyObject *a_softmax(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x || dim_of(def, a, 1, -1, &dim) < 0) return NULL;
    typedef nb_tensor *(*softmax_fn)(const nb_tensor *, int);
    return nbp_wrap(FN(softmax_fn)(x, dim));
}

/* ---- linear algebra, positions, attention ---- */

static PyObject *a_linear(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w = x ? tensor_of(def, a, 1) : NULL, *b;
    if (!w || optional_tensor(def, a, 2, &b) < 0) return NULL;
    return nbp_wrap(nb_linear(x, w, b));
}

static PyObject *a_rope(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int64_t offset;
    double base;
    if (!x || int_of(def, a, 1, 0, &offset) < 0 || double_of(def, a, 2, 10000, &base) < 0) return NULL;
    return nbp_wrap(nb_rope(x, offset, base));
}

static PyObject *a_sinusoidal(const nbp_op_def *def, PyObject **a) {
    int64_t seq, dim;
    double base;
    nb_dtype dtype;
    nb_device device;
    if (int_of(def, a, 0, 0, &seq) < 0 || int_of(def, a, 1, 0, &dim) < 0 ||
        double_of(def, a, 2, 10000, &base) < 0 ||
        nbp_dtype_arg(a[3], NB_F32, def->name, "dtype", &dtype) < 0 ||
        nbp_device_arg(a[4], nb_cpu(), def->name, "device", &device) < 0)
        return NULL;
    return nbp_wrap(nb_sinusoidal_positions(seq, dim, base, dtype, device));
}

/* (query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, generator=None) */
static PyObject *a_attention(const nbp_op_def *def, PyObject **a) {
    nb_tensor *q = tensor_of(def, a, 0), *k = q ? tensor_of(def, a, 1) : NULL;
    nb_tensor *v = k ? tensor_of(def, a, 2) : NULL, *mask;
    double dropout, scale;
    bool causal;
    nb_generator *gen;
    if (!v || optional_tensor(def, a, 3, &mask) < 0 || double_of(def, a, 4, 0, &dropout) < 0 ||
        bool_of(a[5], false, &causal) < 0 || double_of(def, a, 6, 0, &scale) < 0 ||
        nbp_generator_arg(a[7], def->name, &gen) < 0)
        return NULL;
    typedef nb_tensor *(*attention_fn)(const nb_tensor *, const nb_tensor *, const nb_tensor *,
                                       const nb_tensor *, bool, double, double, nb_generator *);
    return nbp_wrap(FN(attention_fn)(q, k, v, mask, causal, dropout, scale, gen));
}

/* ---- convolution and pooling ---- */

static int padding_of(const nbp_op_def *def, PyObject *o, int out[2], int **ptr) {
    if (o && PyUnicode_Check(o)) {
        *ptr = out;
        if (!PyUnicode_CompareWithASCIIString(o, "same")) return out[0] = NB_PADDING_SAME, out[1] = 0, 0;
        if (!PyUnicode_CompareWithASCIIString(o, "valid")) return out[0] = out[1] = 0, 0;
        return PyErr_Format(PyExc_ValueError, "%s: padding must be 'same', 'valid' or ints, not '%U'",
                            def->name, o), -1;
    }
    return nbp_pair(o, def->name, "padding", out, ptr);
}

static PyObject *a_conv2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w = x ? tensor_of(def, a, 1) : NULL, *b;
    int stride[2], padding[2], dilation[2], *s, *p, *d;
    int64_t groups;
    if (!w || optional_tensor(def, a, 2, &b) < 0 || nbp_pair(a[3], def->name, "stride", stride, &s) < 0 ||
        padding_of(def, a[4], padding, &p) < 0 || nbp_pair(a[5], def->name, "dilation", dilation, &d) < 0 ||
        int_of(def, a, 6, 1, &groups) < 0)
        return NULL;
    if (groups < 1 || groups > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "conv2d: groups must be positive, not %lld", (long long)groups);
    return nbp_wrap(nb_conv2d(x, w, b, s, p, d, (int)groups));
}

/* (input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) */
static PyObject *a_conv_transpose2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w = x ? tensor_of(def, a, 1) : NULL, *b;
    int stride[2], padding[2], extra[2], dilation[2], *s, *p, *e, *d;
    int64_t groups;
    if (!w || optional_tensor(def, a, 2, &b) < 0 || nbp_pair(a[3], def->name, "stride", stride, &s) < 0 ||
        nbp_pair(a[4], def->name, "padding", padding, &p) < 0 ||
        nbp_pair(a[5], def->name, "output_padding", extra, &e) < 0 || int_of(def, a, 6, 1, &groups) < 0 ||
        nbp_pair(a[7], def->name, "dilation", dilation, &d) < 0)
        return NULL;
    if (groups < 1 || groups > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "conv_transpose2d: groups must be positive, not %lld",
                            (long long)groups);
    return nbp_wrap(nb_conv_transpose2d(x, w, b, s, p, e, d, (int)groups));
}

/* unfold(input, kernel_size, dilation=1, padding=0, stride=1) */
static PyObject *a_unfold(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int kernel[2], dilation[2], padding[2], stride[2], *k, *d, *p, *s;
    if (!x || nbp_pair(a[1], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[2], def->name, "dilation", dilation, &d) < 0 ||
        nbp_pair(a[3], def->name, "padding", padding, &p) < 0 ||
        nbp_pair(a[4], def->name, "stride", stride, &s) < 0)
        return NULL;
    return nbp_wrap(nb_unfold(x, k, d, p, s));
}

/* fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) */
static PyObject *a_fold(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int size[2], kernel[2], dilation[2], padding[2], stride[2], *o, *k, *d, *p, *s;
    if (!x || nbp_pair(a[1], def->name, "output_size", size, &o) < 0 ||
        nbp_pair(a[2], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[3], def->name, "dilation", dilation, &d) < 0 ||
        nbp_pair(a[4], def->name, "padding", padding, &p) < 0 ||
        nbp_pair(a[5], def->name, "stride", stride, &s) < 0)
        return NULL;
    int64_t output_size[2] = {size[0], size[1]};
    return nbp_wrap(nb_fold(x, output_size, k, d, p, s));
}

/* max_pool2d(input, kernel_size, stride=None, padding=0, return_indices=False) */
static PyObject *a_max_pool2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int kernel[2], stride[2], padding[2], *k, *s, *p;
    bool with_indices;
    if (!x || nbp_pair(a[1], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[2], def->name, "stride", stride, &s) < 0 ||
        nbp_pair(a[3], def->name, "padding", padding, &p) < 0 || bool_of(a[4], false, &with_indices) < 0)
        return NULL;
    if (!with_indices) return nbp_wrap(nb_max_pool2d(x, k, s, p));
    nb_tensor *indices = NULL;
    PyObject *y = nbp_wrap(nb_max_pool2d_with_indices(x, k, s, p, &indices));
    if (!y) return nb_release(indices), NULL;
    PyObject *i = nbp_wrap(indices);
    if (!i) return Py_DECREF(y), NULL;
    return Py_BuildValue("(NN)", y, i);
}

static PyObject *a_avg_pool2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int kernel[2], stride[2], padding[2], *k, *s, *p;
    if (!x || nbp_pair(a[1], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[2], def->name, "stride", stride, &s) < 0 ||
        nbp_pair(a[3], def->name, "padding", padding, &p) < 0)
        return NULL;
    return nbp_wrap(nb_avg_pool2d(x, k, s, p));
}

static PyObject *a_adaptive_avg_pool2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int size[2], *s;
    if (!x || nbp_pair(a[1], def->name, "output_size", size, &s) < 0) return NULL;
    if (!s) return PyErr_Format(PyExc_TypeError, "adaptive_avg_pool2d: output_size is required");
    return nbp_wrap(nb_adaptive_avg_pool2d(x, size[0], size[1]));
}

/* ---- normalization and losses ---- */

/* (input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5) */
static PyObject *a_batch_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *mean, *var, *w, *b;
    bool training;
    double momentum, eps;
    if (!x || optional_tensor(def, a, 1, &mean) < 0 || optional_tensor(def, a, 2, &var) < 0 ||
        optional_tensor(def, a, 3, &w) < 0 || optional_tensor(def, a, 4, &b) < 0 ||
        bool_of(a[5], false, &training) < 0 || double_of(def, a, 6, 0.1, &momentum) < 0 ||
        double_of(def, a, 7, 1e-5, &eps) < 0)
        return NULL;
    return nbp_wrap(nb_batch_norm(x, mean, var, w, b, training, momentum, eps));
}

/* normalized_shape: an int or a tuple of the last dims' sizes, which must match */
static int normalized_dims(const nbp_op_def *def, const nb_tensor *x, PyObject *o, int *dims) {
    int64_t shape[NB_MAX_DIMS];
    int n = nbp_int64s(o, NB_MAX_DIMS, def->name, "normalized_shape", shape);
    if (n < 0) return -1;
    int nd = nb_ndim(x);
    for (int i = 0; i < n; i++)
        if (n > nd || nb_shape(x)[nd - n + i] != shape[i])
            return PyErr_Format(PyExc_ValueError, "%s: normalized_shape does not match the input's "
                                "last %d dims", def->name, n), -1;
    *dims = n;
    return 0;
}

static PyObject *a_layer_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w, *b;
    int dims;
    double eps;
    if (!x || normalized_dims(def, x, a[1], &dims) < 0 || optional_tensor(def, a, 2, &w) < 0 ||
        optional_tensor(def, a, 3, &b) < 0 || double_of(def, a, 4, 1e-5, &eps) < 0)
        return NULL;
    return nbp_wrap(nb_layer_norm(x, dims, w, b, eps));
}

/* eps None: the dtype's machine epsilon, as PyTorch */
static PyObject *a_rms_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w;
    int dims;
    double eps;
    if (!x) return NULL;
    static const double machine_eps[NB_DTYPE_COUNT] = {[NB_F32] = FLT_EPSILON, [NB_F64] = DBL_EPSILON,
                                                       [NB_F16] = 0x1p-10, [NB_BF16] = 0x1p-7};
    if (normalized_dims(def, x, a[1], &dims) < 0 || optional_tensor(def, a, 2, &w) < 0 ||
        double_of(def, a, 3, machine_eps[nb_dtype_of(x)], &eps) < 0)
        return NULL;
    return nbp_wrap(nb_rms_norm(x, dims, w, eps));
}

static PyObject *a_group_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w, *b;
    int groups;
    double eps;
    if (!x || dim_of(def, a, 1, 1, &groups) < 0 || optional_tensor(def, a, 2, &w) < 0 ||
        optional_tensor(def, a, 3, &b) < 0 || double_of(def, a, 4, 1e-5, &eps) < 0)
        return NULL;
    return nbp_wrap(nb_group_norm(x, groups, w, b, eps));
}

static int reduction_of(const nbp_op_def *def, PyObject *o, nb_reduction *out) {
    static const char *const names[] = {[NB_REDUCTION_MEAN] = "mean", [NB_REDUCTION_SUM] = "sum",
                                        [NB_REDUCTION_NONE] = "none"};
    if (!o) return *out = NB_REDUCTION_MEAN, 0;
    for (int r = 0; r < 3; r++)
        if (PyUnicode_Check(o) && !PyUnicode_CompareWithASCIIString(o, names[r]))
            return *out = (nb_reduction)r, 0;
    return PyErr_Format(PyExc_ValueError, "%s: reduction must be 'mean', 'sum' or 'none'", def->name), -1;
}

/* (input, target, ignore_index=-100, reduction='mean', label_smoothing=0.0) */
static PyObject *a_cross_entropy(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    int64_t ignore;
    nb_reduction reduction;
    double smoothing;
    if (!t || int_of(def, a, 2, -100, &ignore) < 0 || reduction_of(def, a[3], &reduction) < 0 ||
        double_of(def, a, 4, 0, &smoothing) < 0)
        return NULL;
    return nbp_wrap(nb_cross_entropy(x, t, reduction, smoothing, ignore));
}

/* ---- joining, splitting, indexing ---- */

static PyObject *a_join(const nbp_op_def *def, PyObject **a) {
    int dim;
    if (dim_of(def, a, 1, 0, &dim) < 0) return NULL;
    PyObject *seq = PySequence_Fast(a[0], "cat/stack: tensors must be a sequence of Tensors");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const nb_tensor **ts = PyMem_Malloc(sizeof *ts * (size_t)(n ? n : 1));
    PyObject *r = NULL;
    if (!ts) {
        PyErr_NoMemory();
    } else if (n > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: too many tensors", def->name);
    } else {
        Py_ssize_t i = 0;
        for (; i < n; i++) {
            nb_tensor *t;
            if (nbp_tensor_borrow(PySequence_Fast_GET_ITEM(seq, i), false, def->name, "tensors", &t) < 0)
                break;
            ts[i] = t;
        }
        typedef nb_tensor *(*join_fn)(int, const nb_tensor *const *, int);
        if (i == n) r = nbp_wrap(FN(join_fn)((int)n, ts, dim));
    }
    PyMem_Free(ts);
    Py_DECREF(seq);
    return r;
}

static PyObject *tuple_of(nb_tensor **parts, int n) {
    PyObject *r = PyTuple_New(n);
    for (int i = 0; i < n; i++) {
        PyObject *o = r ? nbp_wrap(parts[i]) : (nb_release(parts[i]), NULL);
        if (r && !o) Py_CLEAR(r);
        if (r) PyTuple_SET_ITEM(r, i, o);
    }
    return r;
}

/* split(tensor, split_size_or_sections, dim=0): equal pieces, or a list of sizes */
static PyObject *a_split(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x || dim_of(def, a, 2, 0, &dim) < 0) return NULL;
    int64_t size = nb_size(x, dim);
    if (size < 0) return nbp_raise();
    if (PyList_Check(a[1]) || PyTuple_Check(a[1])) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(a[1]);
        nb_tensor **parts = PyMem_Calloc((size_t)(n ? n : 1), sizeof *parts);
        if (!parts) return PyErr_NoMemory();
        int64_t start = 0;
        Py_ssize_t i = 0;
        for (; i < n; i++) {
            int64_t len;
            if (nbp_int64_arg(PySequence_Fast_GET_ITEM(a[1], i), def->name, "sections", &len) < 0) break;
            if (len < 0 || start + len > size) {
                PyErr_Format(PyExc_ValueError, "split: the sections do not sum to dim %d's size %lld",
                             dim, (long long)size);
                break;
            }
            if (!(parts[i] = nb_slice(x, dim, start, start + len, 1))) {
                nbp_raise();
                break;
            }
            start += len;
        }
        if (i == n && start != size)
            PyErr_Format(PyExc_ValueError, "split: the sections sum to %lld, dim %d has %lld",
                         (long long)start, dim, (long long)size);
        if (PyErr_Occurred()) {
            for (Py_ssize_t j = 0; j < n; j++) nb_release(parts[j]);
            PyMem_Free(parts);
            return NULL;
        }
        PyObject *r = tuple_of(parts, (int)n);
        PyMem_Free(parts);
        return r;
    }
    int64_t piece;
    if (nbp_int64_arg(a[1], def->name, "split_size", &piece) < 0) return NULL;
    if (piece <= 0) return PyErr_Format(PyExc_ValueError, "split: split_size must be positive");
    int max = (int)(size / piece + 2);
    nb_tensor **parts = PyMem_Calloc((size_t)max, sizeof *parts);
    int n = 0;
    if (!parts) return PyErr_NoMemory();
    if (nb_split(x, piece, dim, max, parts, &n) != NB_OK) {
        PyMem_Free(parts);
        return nbp_raise();
    }
    PyObject *r = tuple_of(parts, n);
    PyMem_Free(parts);
    return r;
}

static PyObject *a_chunk(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int chunks, dim;
    if (!x || dim_of(def, a, 1, 1, &chunks) < 0 || dim_of(def, a, 2, 0, &dim) < 0) return NULL;
    if (chunks <= 0) return PyErr_Format(PyExc_ValueError, "chunk: chunks must be positive, not %d", chunks);
    nb_tensor **parts = PyMem_Calloc((size_t)chunks, sizeof *parts);
    int n = 0;
    if (!parts) return PyErr_NoMemory();
    if (nb_chunk(x, chunks, dim, chunks, parts, &n) != NB_OK) {
        PyMem_Free(parts);
        return nbp_raise();
    }
    PyObject *r = tuple_of(parts, n);
    PyMem_Free(parts);
    return r;
}

/* (input, dim, index) */
static PyObject *a_index_dim(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *index;
    int dim;
    if (!x || dim_of(def, a, 1, 0, &dim) < 0 || !(index = tensor_of(def, a, 2))) return NULL;
    typedef nb_tensor *(*index_fn)(const nb_tensor *, int, const nb_tensor *);
    return nbp_wrap(FN(index_fn)(x, dim, index));
}

static PyObject *a_scatter_add(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *index, *src;
    int dim;
    if (!x || dim_of(def, a, 1, 0, &dim) < 0 || !(index = tensor_of(def, a, 2)) ||
        !(src = tensor_of(def, a, 3)))
        return NULL;
    return nbp_wrap(nb_scatter_add(x, dim, index, src));
}

/* embedding(input, weight), PyTorch's order */
static PyObject *a_embedding(const nbp_op_def *def, PyObject **a) {
    nb_tensor *indices = tensor_of(def, a, 0), *weight = indices ? tensor_of(def, a, 1) : NULL;
    return weight ? nbp_wrap(nb_embedding(weight, indices)) : NULL;
}

static PyObject *a_one_hot(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int64_t classes;
    if (!x || int_of(def, a, 1, -1, &classes) < 0) return NULL;
    return nbp_wrap(nb_one_hot(x, classes));
}

/* ---- views ---- */

static PyObject *a_reshape(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int64_t shape[NB_MAX_DIMS];
    int n = x ? shape_of(def, a[1], shape) : -1;
    if (n < 0) return NULL;
    typedef nb_tensor *(*reshape_fn)(const nb_tensor *, int, const int64_t *);
    return nbp_wrap(FN(reshape_fn)(x, n, shape));
}

static PyObject *a_permute(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int64_t order[NB_MAX_DIMS];
    int n = x ? shape_of(def, a[1], order) : -1;
    if (n < 0) return NULL;
    if (n != nb_ndim(x))
        return PyErr_Format(PyExc_ValueError, "permute: %d dims given for a tensor of %d", n, nb_ndim(x));
    int dims[NB_MAX_DIMS];
    for (int i = 0; i < n; i++) dims[i] = (int)order[i];
    return nbp_wrap(nb_permute(x, dims));
}

static PyObject *a_transpose(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int d0, d1;
    if (!x || dim_of(def, a, 1, 0, &d0) < 0 || dim_of(def, a, 2, 1, &d1) < 0) return NULL;
    return nbp_wrap(nb_transpose(x, d0, d1));
}

static PyObject *a_t(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    if (!x) return NULL;
    if (nb_ndim(x) > 2)
        return PyErr_Format(PyExc_ValueError, "t: the tensor has %d dims; t() takes at most 2", nb_ndim(x));
    return nbp_wrap(nb_ndim(x) < 2 ? nb_reshape(x, nb_ndim(x), nb_shape(x)) : nb_transpose(x, 0, 1));
}

static PyObject *a_squeeze(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x) return NULL;
    if (!a[1] || a[1] == Py_None) return nbp_wrap(nb_squeeze_all(x));
    if (dim_of(def, a, 1, 0, &dim) < 0) return NULL;
    /* PyTorch leaves a dim that is not of size 1 alone */
    if (nb_size(x, dim) != 1) return nb_size(x, dim) < 0 ? nbp_raise() : nbp_wrap(nb_reshape(x, nb_ndim(x), nb_shape(x)));
    return nbp_wrap(nb_squeeze(x, dim));
}

static PyObject *a_unsqueeze(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x || dim_of(def, a, 1, 0, &dim) < 0) return NULL;
    return nbp_wrap(nb_unsqueeze(x, dim));
}

static PyObject *a_flatten(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int start, end;
    if (!x || dim_of(def, a, 1, 0, &start) < 0 || dim_of(def, a, 2, -1, &end) < 0) return NULL;
    int nd = nb_ndim(x);
    if (nd == 0) return nbp_wrap(nb_reshape(x, 1, (int64_t[]){1}));
    if (start < 0) start += nd;
    if (end < 0) end += nd;
    if (start < 0 || end >= nd || start > end)
        return PyErr_Format(PyExc_IndexError, "flatten: start_dim %d and end_dim %d do not fit %d dims",
                            start, end, nd);
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < start; d++) shape[n++] = nb_shape(x)[d];
    int64_t size = 1;
    for (int d = start; d <= end; d++) size *= nb_shape(x)[d];
    shape[n++] = size;
    for (int d = end + 1; d < nd; d++) shape[n++] = nb_shape(x)[d];
    return nbp_wrap(nb_reshape(x, n, shape));
}

static PyObject *a_narrow(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    int64_t start, length;
    if (!x || dim_of(def, a, 1, 0, &dim) < 0 || int_of(def, a, 2, 0, &start) < 0 ||
        int_of(def, a, 3, 0, &length) < 0)
        return NULL;
    int64_t size = nb_size(x, dim);
    if (size < 0) return nbp_raise();
    if (start < 0) start += size;
    if (start < 0 || length < 0 || start + length > size)
        return PyErr_Format(PyExc_IndexError, "narrow: start %lld and length %lld do not fit dim %d of size %lld",
                            (long long)start, (long long)length, dim, (long long)size);
    return nbp_wrap(nb_slice(x, dim, start, start + length, 1));
}

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

/* ---- methods: conversions, geometry, autograd, in-place writes ---- */

/* to(device=None, dtype=None) or to(dtype) or to(other), as PyTorch's */
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
    placement p;
    if (nbp_device_arg(device_o, nb_device_of(x), def->name, "device", &p.device) < 0 ||
        nbp_dtype_arg(dtype_o, nb_dtype_of(x), def->name, "dtype", &p.dtype) < 0)
        return NULL;
    nb_tensor *moved = nb_to(x, p.device);
    nb_tensor *r = moved && p.dtype != nb_dtype_of(moved) ? nb_cast(moved, p.dtype) : nb_retain(moved);
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
    PyObject *r = def->params[2] ? a_add_alpha(def, a) : a_binary(def, a);
    if (!r) return NULL;
    nb_tensor *t = nb_retain(nbp_t(r));
    Py_DECREF(r);
    return write_into(a[0], t);
}

static PyObject *a_unary_(const nbp_op_def *def, PyObject **a) {
    PyObject *r = def->params[1] ? a_clamp(def, a) : a_unary(def, a);
    if (!r) return NULL;
    nb_tensor *t = nb_retain(nbp_t(r));
    Py_DECREF(r);
    return write_into(a[0], t);
}

static PyObject *a_masked_fill_(const nbp_op_def *def, PyObject **a) {
    PyObject *r = a_masked_fill(def, a);
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

#define P(...) {__VA_ARGS__, NULL}
#define UNARY(name, doc) {#name, a_unary, (void (*)(void))nb_##name, P("input"), 1, NBP_BOTH, doc}
#define BINARY(name, doc) {#name, a_binary, (void (*)(void))nb_##name, P("input", "other"), 2, NBP_BOTH, doc}
#define REDUCE(name, c, doc) \
    {#name, a_reduce, (void (*)(void))c, P("input", "dim", "keepdim", "dtype"), 1, NBP_BOTH, doc}
#define DTYPE_METHOD(name, dtype) \
    {#name, a_as_dtype, NULL, P("input"), 1, NBP_METHOD, \
     #name "() -> Tensor: the tensor as " #dtype " (itself when it already is).", dtype}
#define ATTENTION(name, doc) \
    {#name, a_attention, (void (*)(void))nb_##name, \
     P("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "generator"), 3, \
     NBP_FUNCTION, doc}
#define CREATE(...) P(__VA_ARGS__, "dtype", "device", "requires_grad")

static const nbp_op_def ops[] = {
    /* elementwise unary */
    UNARY(neg, "neg(input) -> Tensor: -input."),
    UNARY(abs, "abs(input) -> Tensor: |input|."),
    UNARY(exp, "exp(input) -> Tensor: e to the power of each element."),
    UNARY(log, "log(input) -> Tensor: the natural logarithm."),
    UNARY(log1p, "log1p(input) -> Tensor: log(1 + input), accurate near 0."),
    UNARY(sqrt, "sqrt(input) -> Tensor: the square root."),
    UNARY(rsqrt, "rsqrt(input) -> Tensor: 1 / sqrt(input)."),
    UNARY(sin, "sin(input) -> Tensor: the sine."),
    UNARY(cos, "cos(input) -> Tensor: the cosine."),
    UNARY(tanh, "tanh(input) -> Tensor: the hyperbolic tangent."),
    UNARY(sigmoid, "sigmoid(input) -> Tensor: 1 / (1 + exp(-input))."),
    UNARY(relu, "relu(input) -> Tensor: max(input, 0)."),
    UNARY(sign, "sign(input) -> Tensor: -1, 0 or 1 (gradient 0)."),
    UNARY(floor, "floor(input) -> Tensor: rounded down (gradient 0)."),
    UNARY(ceil, "ceil(input) -> Tensor: rounded up (gradient 0)."),
    UNARY(round, "round(input) -> Tensor: rounded half to even (gradient 0)."),
    UNARY(logical_not, "logical_not(input) -> Tensor: bool, true where input is 0."),
    UNARY(relu6, "relu6(input) -> Tensor: min(max(input, 0), 6)."),
    UNARY(silu, "silu(input) -> Tensor: input * sigmoid(input)."),
    UNARY(hardsigmoid, "hardsigmoid(input) -> Tensor: relu6(input + 3) / 6."),
    UNARY(hardswish, "hardswish(input) -> Tensor: input * relu6(input + 3) / 6."),
    UNARY(swiglu, "swiglu(input) -> Tensor: silu(a) * b of the halves a, b of the last dim."),
    UNARY(global_avg_pool2d, "global_avg_pool2d(input) -> Tensor: the mean over H and W, [N, C, 1, 1]."),
    {"negative", a_unary, (void (*)(void))nb_neg, P("input"), 1, NBP_BOTH, "negative(input): neg."},
    {"leaky_relu", a_leaky_relu, NULL, P("input", "negative_slope"), 1, NBP_BOTH,
     "leaky_relu(input, negative_slope=0.01) -> Tensor: input where >= 0, else negative_slope * input."},
    {"gelu", a_gelu, NULL, P("input", "approximate"), 1, NBP_BOTH,
     "gelu(input, approximate='none') -> Tensor: input * Phi(input); 'tanh' is GPT-2's approximation."},
    {"clamp", a_clamp, NULL, P("input", "min", "max"), 1, NBP_BOTH,
     "clamp(input, min=None, max=None) -> Tensor: min(max(input, min), max)."},
    {"clip", a_clamp, NULL, P("input", "min", "max"), 1, NBP_BOTH, "clip(input, min=None, max=None): clamp."},
    /* elementwise binary */
    {"add", a_add_alpha, (void (*)(void))nb_add, P("input", "other", "alpha"), 2, NBP_BOTH,
     "add(input, other, alpha=1) -> Tensor: input + alpha * other, broadcast."},
    {"sub", a_add_alpha, (void (*)(void))nb_sub, P("input", "other", "alpha"), 2, NBP_BOTH,
     "sub(input, other, alpha=1) -> Tensor: input - alpha * other, broadcast."},
    BINARY(mul, "mul(input, other) -> Tensor: input * other, broadcast."),
    BINARY(div, "div(input, other) -> Tensor: true division (integers give float32)."),
    BINARY(pow, "pow(input, exponent) -> Tensor: input ** exponent."),
    BINARY(maximum, "maximum(input, other) -> Tensor: the larger of each pair (NaN wins)."),
    BINARY(minimum, "minimum(input, other) -> Tensor: the smaller of each pair (NaN wins)."),
    BINARY(eq, "eq(input, other) -> Tensor: bool, input == other."),
    BINARY(ne, "ne(input, other) -> Tensor: bool, input != other."),
    BINARY(lt, "lt(input, other) -> Tensor: bool, input < other."),
    BINARY(le, "le(input, other) -> Tensor: bool, input <= other."),
    BINARY(gt, "gt(input, other) -> Tensor: bool, input > other."),
    BINARY(ge, "ge(input, other) -> Tensor: bool, input >= other."),
    BINARY(logical_and, "logical_and(input, other) -> Tensor: bool, both nonzero."),
    BINARY(logical_or, "logical_or(input, other) -> Tensor: bool, either nonzero."),
    BINARY(logical_xor, "logical_xor(input, other) -> Tensor: bool, exactly one nonzero."),
    BINARY(matmul, "matmul(input, other) -> Tensor: the matrix product, as numpy.matmul (batched, "
                   "broadcast; a 1-D operand is a vector)."),
    {"multiply", a_binary, (void (*)(void))nb_mul, P("input", "other"), 2, NBP_BOTH, "multiply: mul."},
    {"divide", a_binary, (void (*)(void))nb_div, P("input", "other"), 2, NBP_BOTH, "divide: div."},
    {"true_divide", a_binary, (void (*)(void))nb_div, P("input", "other"), 2, NBP_BOTH, "true_divide: div."},
    {"where", a_where, NULL, P("condition", "input", "other"), 3, NBP_FUNCTION,
     "where(condition, input, other) -> Tensor: input where condition is true, else other."},
    {"where", a_where_method, NULL, P("input", "condition", "other"), 3, NBP_METHOD,
     "where(condition, other) -> Tensor: self where condition is true, else other."},
    {"masked_fill", a_masked_fill, NULL, P("input", "mask", "value"), 3, NBP_BOTH,
     "masked_fill(input, mask, value) -> Tensor: input with value where mask is true."},
    /* reductions */
    REDUCE(sum, nb_sum, "sum(input, dim=None, keepdim=False, dtype=None) -> Tensor: the sum over dim "
                        "(an int or a tuple; None: all); integers give int64."),
    REDUCE(mean, nb_mean, "mean(input, dim=None, keepdim=False, dtype=None) -> Tensor: the mean over dim."),
    REDUCE(prod, nb_prod, "prod(input, dim=None, keepdim=False, dtype=None) -> Tensor: the product over dim."),
    REDUCE(amax, nb_max, "amax(input, dim=None, keepdim=False) -> Tensor: the maximum over dim (NaN wins)."),
    REDUCE(amin, nb_min, "amin(input, dim=None, keepdim=False) -> Tensor: the minimum over dim (NaN wins)."),
    REDUCE(argmax, nb_argmax, "argmax(input, dim=None, keepdim=False) -> Tensor: int64 index of the first "
                              "maximum (over the flattened tensor for dim None)."),
    REDUCE(argmin, nb_argmin, "argmin(input, dim=None, keepdim=False) -> Tensor: int64 index of the first minimum."),
    REDUCE(logsumexp, nb_logsumexp, "logsumexp(input, dim, keepdim=False) -> Tensor: log(sum(exp(input))), stable."),
    {"max", a_minmax, NULL, P("input", "dim", "keepdim"), 1, NBP_BOTH,
     "max(input) -> Tensor: the maximum; max(input, dim, keepdim=False) -> (values, indices); "
     "max(input, other) -> maximum(input, other).", SET_MAX},
    {"min", a_minmax, NULL, P("input", "dim", "keepdim"), 1, NBP_BOTH,
     "min(input) -> Tensor: the minimum; min(input, dim, keepdim=False) -> (values, indices); "
     "min(input, other) -> minimum(input, other).", SET_MIN},
    {"var", a_var, (void (*)(void))nb_var, P("input", "dim", "unbiased", "keepdim", "correction"), 1,
     NBP_BOTH, "var(input, dim=None, unbiased=True, keepdim=False, correction=None) -> Tensor: "
               "sum((x - mean)^2) / (N - correction); correction 1 (Bessel's) by default."},
    {"std", a_var, (void (*)(void))nb_std, P("input", "dim", "unbiased", "keepdim", "correction"), 1,
     NBP_BOTH, "std(input, dim=None, unbiased=True, keepdim=False, correction=None) -> Tensor: sqrt(var)."},
    {"norm", a_norm, NULL, P("input", "p", "dim", "keepdim"), 1, NBP_BOTH,
     "norm(input, p=2, dim=None, keepdim=False) -> Tensor: (sum |x|^p)^(1/p); p=inf: max |x|; 'fro': 2."},
    {"softmax", a_softmax, (void (*)(void))nb_softmax, P("input", "dim"), 1, NBP_BOTH,
     "softmax(input, dim=-1) -> Tensor: exp(x) / sum(exp(x)) along dim."},
    {"log_softmax", a_softmax, (void (*)(void))nb_log_softmax, P("input", "dim"), 1, NBP_BOTH,
     "log_softmax(input, dim=-1) -> Tensor: x - logsumexp(x) along dim."},
    /* linear algebra, positions, attention */
    {"linear", a_linear, NULL, P("input", "weight", "bias"), 2, NBP_FUNCTION,
     "linear(input, weight, bias=None) -> Tensor: input @ weight.T + bias; weight [out, in]."},
    {"rope", a_rope, NULL, P("input", "offset", "base"), 1, NBP_BOTH,
     "rope(input, offset=0, base=10000.0) -> Tensor: rotary position embedding of [..., S, D] in the "
     "rotate-half layout (GPT-NeoX, Llama), positions from offset."},
    {"sinusoidal_positions", a_sinusoidal, NULL, P("seq", "dim", "base", "dtype", "device"), 2,
     NBP_FUNCTION, "sinusoidal_positions(seq, dim, base=10000.0, dtype=None, device=None) -> Tensor: "
                   "[seq, dim] sin/cos positions of Vaswani et al."},
    ATTENTION(scaled_dot_product_attention,
              "scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, "
              "is_causal=False, scale=None, generator=None) -> Tensor: softmax(q k^T scale + mask) v for "
              "[B, H, S, D]; the fused kernel where there is one; grouped-query when key has fewer heads."),
    ATTENTION(flash_attention, "flash_attention(query, key, value, ...) -> Tensor: the fused kernel "
                               "always (NotImplementedError where there is none)."),
    ATTENTION(attention_composed, "attention_composed(query, key, value, ...) -> Tensor: the plain "
                                  "reference (matmul, softmax, dropout, matmul)."),
    /* convolution and pooling */
    {"conv2d", a_conv2d, NULL, P("input", "weight", "bias", "stride", "padding", "dilation", "groups"), 2,
     NBP_FUNCTION, "conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor: "
                   "2-D convolution of [N, C, H, W]; padding may be 'same' or 'valid'."},
    {"conv_transpose2d", a_conv_transpose2d, NULL,
     P("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"), 2,
     NBP_FUNCTION, "conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, "
                   "groups=1, dilation=1) -> Tensor: the adjoint of conv2d; weight [C_in, C_out/groups, kh, kw]."},
    {"unfold", a_unfold, NULL, P("input", "kernel_size", "dilation", "padding", "stride"), 2, NBP_FUNCTION,
     "unfold(input, kernel_size, dilation=1, padding=0, stride=1) -> Tensor: im2col, [N, C*kh*kw, L]."},
    {"fold", a_fold, NULL, P("input", "output_size", "kernel_size", "dilation", "padding", "stride"), 3,
     NBP_FUNCTION, "fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor: "
                   "sums columns back into [N, C, H, W]."},
    {"max_pool2d", a_max_pool2d, NULL, P("input", "kernel_size", "stride", "padding", "return_indices"), 2,
     NBP_FUNCTION, "max_pool2d(input, kernel_size, stride=None, padding=0, return_indices=False) -> "
                   "Tensor: max pooling (stride defaults to the kernel)."},
    {"avg_pool2d", a_avg_pool2d, NULL, P("input", "kernel_size", "stride", "padding"), 2, NBP_FUNCTION,
     "avg_pool2d(input, kernel_size, stride=None, padding=0) -> Tensor: average pooling (padding counted)."},
    {"adaptive_avg_pool2d", a_adaptive_avg_pool2d, NULL, P("input", "output_size"), 2, NBP_FUNCTION,
     "adaptive_avg_pool2d(input, output_size) -> Tensor: averages over output_size bins."},
    /* normalization and losses */
    {"batch_norm", a_batch_norm, NULL,
     P("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"), 3,
     NBP_FUNCTION, "batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, "
                   "momentum=0.1, eps=1e-05) -> Tensor: per-channel normalization; training updates the "
                   "running statistics in place."},
    {"layer_norm", a_layer_norm, NULL, P("input", "normalized_shape", "weight", "bias", "eps"), 2,
     NBP_FUNCTION, "layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05) -> Tensor: "
                   "normalizes over the last dims."},
    {"rms_norm", a_rms_norm, NULL, P("input", "normalized_shape", "weight", "eps"), 2, NBP_FUNCTION,
     "rms_norm(input, normalized_shape, weight=None, eps=None) -> Tensor: x / sqrt(mean(x^2) + eps) * "
     "weight (eps None: the dtype's epsilon)."},
    {"group_norm", a_group_norm, NULL, P("input", "num_groups", "weight", "bias", "eps"), 2, NBP_FUNCTION,
     "group_norm(input, num_groups, weight=None, bias=None, eps=1e-05) -> Tensor: group normalization."},
    {"cross_entropy", a_cross_entropy, NULL,
     P("input", "target", "ignore_index", "reduction", "label_smoothing"), 2, NBP_FUNCTION,
     "cross_entropy(input, target, ignore_index=-100, reduction='mean', label_smoothing=0.0) -> Tensor: "
     "fused log-softmax and negative log-likelihood of logits [N, C] against class indices [N]."},
    /* joining, splitting, indexing */
    {"cat", a_join, (void (*)(void))nb_cat, P("tensors", "dim"), 1, NBP_FUNCTION,
     "cat(tensors, dim=0) -> Tensor: concatenates along dim."},
    {"concat", a_join, (void (*)(void))nb_cat, P("tensors", "dim"), 1, NBP_FUNCTION, "concat: cat."},
    {"stack", a_join, (void (*)(void))nb_stack, P("tensors", "dim"), 1, NBP_FUNCTION,
     "stack(tensors, dim=0) -> Tensor: stacks tensors of one shape along a new dim."},
    {"split", a_split, NULL, P("tensor", "split_size_or_sections", "dim"), 2, NBP_BOTH,
     "split(tensor, split_size_or_sections, dim=0) -> tuple: views of equal pieces, or of the sizes given."},
    {"chunk", a_chunk, NULL, P("input", "chunks", "dim"), 2, NBP_BOTH,
     "chunk(input, chunks, dim=0) -> tuple: chunks views of ceil(size / chunks)."},
    {"index_select", a_index_dim, (void (*)(void))nb_index_select, P("input", "dim", "index"), 3, NBP_BOTH,
     "index_select(input, dim, index) -> Tensor: the entries of the 1-D index along dim."},
    {"gather", a_index_dim, (void (*)(void))nb_gather, P("input", "dim", "index"), 3, NBP_BOTH,
     "gather(input, dim, index) -> Tensor: out[i][j][k] = input[i][index[i][j][k]][k] for dim 1."},
    {"scatter_add", a_scatter_add, NULL, P("input", "dim", "index", "src"), 4, NBP_BOTH,
     "scatter_add(input, dim, index, src) -> Tensor: a copy of input with src added at index along dim."},
    {"embedding", a_embedding, NULL, P("input", "weight"), 2, NBP_FUNCTION,
     "embedding(input, weight) -> Tensor: the rows of weight [num, dim] the indices pick, [..., dim]."},
    {"one_hot", a_one_hot, NULL, P("input", "num_classes"), 1, NBP_FUNCTION,
     "one_hot(input, num_classes=-1) -> Tensor: int64 [..., num_classes] (-1: max + 1)."},
    /* views */
    {"reshape", a_reshape, (void (*)(void))nb_reshape, P("input", "*shape"), 2, NBP_BOTH,
     "reshape(input, *shape) -> Tensor: the same elements in shape (one -1 inferred); a view when it can be."},
    {"view", a_reshape, (void (*)(void))nb_view, P("input", "*shape"), 2, NBP_METHOD,
     "view(*shape) -> Tensor: a view in shape; fails when the strides do not allow one."},
    {"expand", a_reshape, (void (*)(void))nb_expand, P("input", "*size"), 2, NBP_METHOD,
     "expand(*size) -> Tensor: a broadcast view (-1 keeps a size)."},
    {"broadcast_to", a_reshape, (void (*)(void))nb_broadcast_to, P("input", "size"), 2, NBP_BOTH,
     "broadcast_to(input, size) -> Tensor: a broadcast view."},
    {"permute", a_permute, NULL, P("input", "*dims"), 2, NBP_BOTH,
     "permute(input, *dims) -> Tensor: a view with the dims reordered."},
    {"transpose", a_transpose, NULL, P("input", "dim0", "dim1"), 3, NBP_BOTH,
     "transpose(input, dim0, dim1) -> Tensor: a view with two dims swapped."},
    {"swapaxes", a_transpose, NULL, P("input", "axis0", "axis1"), 3, NBP_BOTH, "swapaxes: transpose."},
    {"t", a_t, NULL, P("input"), 1, NBP_BOTH, "t(input) -> Tensor: a 2-D tensor transposed."},
    {"squeeze", a_squeeze, NULL, P("input", "dim"), 1, NBP_BOTH,
     "squeeze(input, dim=None) -> Tensor: without dim (or every dim) of size 1."},
    {"unsqueeze", a_unsqueeze, NULL, P("input", "dim"), 2, NBP_BOTH,
     "unsqueeze(input, dim) -> Tensor: a view with a new dim of size 1."},
    {"flatten", a_flatten, NULL, P("input", "start_dim", "end_dim"), 1, NBP_BOTH,
     "flatten(input, start_dim=0, end_dim=-1) -> Tensor: dims start_dim..end_dim merged."},
    {"narrow", a_narrow, NULL, P("input", "dim", "start", "length"), 4, NBP_BOTH,
     "narrow(input, dim, start, length) -> Tensor: a view of length entries of dim from start."},
    {"contiguous", a_unary, (void (*)(void))nb_contiguous, P("input"), 1, NBP_METHOD,
     "contiguous() -> Tensor: itself when contiguous, else a contiguous copy."},
    {"clone", a_unary, (void (*)(void))nb_clone, P("input"), 1, NBP_BOTH,
     "clone(input) -> Tensor: a copy with its own memory (recorded by autograd)."},
    {"detach", a_unary, (void (*)(void))nb_detach, P("input"), 1, NBP_BOTH,
     "detach(input) -> Tensor: a view of the same memory outside the graph."},
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
};

#define N_OPS ((int)(sizeof ops / sizeof *ops))

int nbp_ops_count(void) { return N_OPS; }

/* ---- the op object ---- */

static PyObject *empty_tuple; /* a *size given nothing */

/* The index of def's "*name" parameter, or -1. */
static int star_param(const nbp_op_def *def) {
    for (int i = 0; def->params[i]; i++)
        if (def->params[i][0] == '*') return i;
    return -1;
}

static PyObject *op_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    const nbp_op_def *def = ((nbp_op *)callable)->def;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *slots[10];
    int star = star_param(def);
    if (star < 0 || nargs <= star) {
        if (nbp_parse(def->name, def->params, def->required, args, nargs, kwnames, slots) < 0) return NULL;
        if (star >= 0 && !slots[star]) slots[star] = empty_tuple;
        return def->call(def, slots);
    }
    /* the positionals from *name on become one tuple */
    PyObject *packed = PyTuple_New(nargs - star);
    if (!packed) return NULL;
    for (Py_ssize_t i = star; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(packed, i - star, args[i]);
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *rebuilt[16];
    if (star + 1 + nkw > 16) {
        Py_DECREF(packed);
        return PyErr_Format(PyExc_TypeError, "%s() got too many arguments", def->name);
    }
    for (int i = 0; i < star; i++) rebuilt[i] = args[i];
    rebuilt[star] = packed;
    for (Py_ssize_t k = 0; k < nkw; k++) rebuilt[star + 1 + k] = args[nargs + k];
    PyObject *r = NULL;
    if (nbp_parse(def->name, def->params, def->required, rebuilt, star + 1, kwnames, slots) == 0)
        r = def->call(def, slots);
    Py_DECREF(packed);
    return r;
}

/* A method: bound to the instance, as Python functions are. */
static PyObject *op_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (!obj) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *op_repr(PyObject *self) {
    return PyUnicode_FromFormat("<nabla op %s>", ((nbp_op *)self)->def->name);
}

static PyObject *op_get_doc(PyObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(((nbp_op *)self)->def->doc);
}

static PyObject *op_get_name(PyObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(((nbp_op *)self)->def->name);
}

static PyGetSetDef op_getset[] = {{"__doc__", op_get_doc, NULL, NULL, NULL},
                                  {"__name__", op_get_name, NULL, NULL, NULL},
                                  {"__qualname__", op_get_name, NULL, NULL, NULL},
                                  {NULL}};

PyTypeObject nbp_op_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.op",
    .tp_basicsize = sizeof(nbp_op),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(nbp_op, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = op_descr_get,
    .tp_repr = op_repr,
    .tp_getset = op_getset,
};

int nbp_ops_register(PyObject *module) {
    if (PyType_Ready(&nbp_op_type) < 0 || !(empty_tuple = PyTuple_New(0))) return -1;
    if (!minmax_type.tp_name && PyStructSequence_InitType2(&minmax_type, &minmax_desc) < 0) return -1;
    PyObject *methods = nbp_tensor_type.tp_dict;
    for (int i = 0; i < N_OPS; i++) {
        nbp_op *op = PyObject_New(nbp_op, &nbp_op_type);
        if (!op) return -1;
        op->def = &ops[i];
        op->vectorcall = op_vectorcall;
        int rc = 0;
        if (ops[i].where & NBP_FUNCTION) rc = PyModule_AddObjectRef(module, ops[i].name, (PyObject *)op);
        if (rc == 0 && (ops[i].where & NBP_METHOD)) rc = PyDict_SetItemString(methods, ops[i].name, (PyObject *)op);
        Py_DECREF(op);
        if (rc < 0) return -1;
    }
    PyType_Modified(&nbp_tensor_type);
    return 0;
}
