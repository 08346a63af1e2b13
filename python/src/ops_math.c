/* The bindings of elementwise ops, reductions, matrix products, positions
 * and attention. */
#include "ops.h"

#include <math.h>

/* ---- elementwise ---- */

PyObject *nbp_unary(const nbp_op_def *def, PyObject **a) {
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

PyObject *nbp_binary(const nbp_op_def *def, PyObject **a) {
    return binary_call(def, a[0], a[1], FN(binary_fn));
}

/* add and sub: input + alpha other */
PyObject *nbp_add_alpha(const nbp_op_def *def, PyObject **a) {
    if (!a[2]) return nbp_binary(def, a);
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

/* elu, celu, swish (default 1), hardshrink, softshrink (default 0.5): one parameter */
static PyObject *a_activation1(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    double value;
    if (!x || double_of(def, a, 1, def->setting == SET_DEFAULT_HALF ? 0.5 : 1, &value) < 0) return NULL;
    typedef nb_tensor *(*activation1_fn)(const nb_tensor *, double);
    return nbp_wrap(FN(activation1_fn)(x, value));
}

/* softplus(input, beta=1, threshold=20), hardtanh(input, min_val=-1, max_val=1),
 * threshold(input, threshold, value) */
static PyObject *a_activation2(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    bool hardtanh = def->fn == (void (*)(void))nb_hardtanh;
    double p, q;
    if (!x || double_of(def, a, 1, hardtanh ? -1 : 1, &p) < 0 || double_of(def, a, 2, hardtanh ? 1 : 20, &q) < 0)
        return NULL;
    typedef nb_tensor *(*activation2_fn)(const nb_tensor *, double, double);
    return nbp_wrap(FN(activation2_fn)(x, p, q));
}

static PyObject *a_prelu(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w = x ? tensor_of(def, a, 1) : NULL;
    return w ? nbp_wrap(nb_prelu(x, w)) : NULL;
}

/* rrelu(input, lower=1/8, upper=1/3, training=False, generator=None) */
static PyObject *a_rrelu(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    double lower, upper;
    bool training;
    nb_generator *gen;
    if (!x || double_of(def, a, 1, 1.0 / 8, &lower) < 0 || double_of(def, a, 2, 1.0 / 3, &upper) < 0 ||
        bool_of(a[3], false, &training) < 0 || nbp_generator_arg(a[4], def->name, &gen) < 0)
        return NULL;
    return nbp_wrap(nb_rrelu(x, lower, upper, training, gen));
}

/* glu(input, dim=-1), maxout(input, pieces, dim=-1) */
static PyObject *a_glu(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x || dim_of(def, a, 1, -1, &dim) < 0) return NULL;
    return nbp_wrap(nb_glu(x, dim));
}

static PyObject *a_maxout(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int64_t pieces;
    int dim;
    if (!x || int_of(def, a, 1, 2, &pieces) < 0 || dim_of(def, a, 2, -1, &dim) < 0) return NULL;
    if (pieces < 1 || pieces > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "maxout: pieces must be in [1, 2^31), got %lld", (long long)pieces);
    return nbp_wrap(nb_maxout(x, (int)pieces, dim));
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

PyObject *nbp_clamp(const nbp_op_def *def, PyObject **a) {
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

PyObject *nbp_masked_fill(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *mask = x ? tensor_of(def, a, 1) : NULL;
    double value;
    if (!mask || double_of(def, a, 2, 0, &value) < 0) return NULL;
    return nbp_wrap(nb_masked_fill(x, mask, value));
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

static PyStructSequence_Field values_indices_fields[] = {{"values", "the values picked"},
                                                         {"indices", "their indices along dim"},
                                                         {NULL}};
static PyStructSequence_Desc values_indices_desc = {"nabla.return_types.values_indices",
                                                    "(values, indices)", values_indices_fields, 2};
static PyTypeObject values_indices_type;

int nbp_return_types_init(void) {
    if (!values_indices_type.tp_name &&
        PyStructSequence_InitType2(&values_indices_type, &values_indices_desc) < 0)
        return -1;
    return 0;
}

/* (values, indices) from two new references (either may be NULL: an error). */
static PyObject *values_indices(PyObject *values, PyObject *indices) {
    PyObject *r = values && indices ? PyStructSequence_New(&values_indices_type) : NULL;
    if (!r) {
        Py_XDECREF(values);
        Py_XDECREF(indices);
        return NULL;
    }
    PyStructSequence_SET_ITEM(r, 0, values);
    PyStructSequence_SET_ITEM(r, 1, indices);
    return r;
}

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
    return values_indices(values, indices);
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

/* ---- sorting, selection, scans ---- */

/* sort(input, dim=-1, descending=False, stable=False): always stable */
static PyObject *a_sort(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *indices = NULL;
    int dim;
    bool descending, stable;
    if (!x || dim_of(def, a, 1, -1, &dim) < 0 || bool_of(a[2], false, &descending) < 0 ||
        bool_of(a[3], false, &stable) < 0)
        return NULL;
    if (def->setting == SET_INDICES) return nbp_wrap(nb_argsort(x, dim, descending));
    PyObject *values = nbp_wrap(nb_sort(x, dim, descending, &indices));
    return values_indices(values, values ? nbp_wrap(indices) : NULL);
}

/* topk(input, k, dim=-1, largest=True, sorted=True): always sorted */
static PyObject *a_topk(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *indices = NULL;
    int64_t k;
    int dim;
    bool largest, sorted;
    if (!x || int_of(def, a, 1, 0, &k) < 0 || dim_of(def, a, 2, -1, &dim) < 0 ||
        bool_of(a[3], true, &largest) < 0 || bool_of(a[4], true, &sorted) < 0)
        return NULL;
    PyObject *values = nbp_wrap(nb_topk(x, k, dim, largest, &indices));
    return values_indices(values, values ? nbp_wrap(indices) : NULL);
}

/* right from right= or side= ('left' or 'right'), PyTorch's pair */
static int side_of(const nbp_op_def *def, PyObject *right, PyObject *side, bool *out) {
    if (bool_of(right, false, out) < 0) return -1;
    if (!side || side == Py_None) return 0;
    const char *name = PyUnicode_Check(side) ? PyUnicode_AsUTF8(side) : NULL;
    if (!name || (strcmp(name, "left") && strcmp(name, "right"))) {
        PyErr_Format(PyExc_ValueError, "%s: side must be 'left' or 'right'", def->name);
        return -1;
    }
    if (*out && !strcmp(name, "left")) {
        PyErr_Format(PyExc_ValueError, "%s: side='left' contradicts right=True", def->name);
        return -1;
    }
    *out = !strcmp(name, "right");
    return 0;
}

/* i64 positions, cast to i32 for out_int32 */
static PyObject *positions(nb_tensor *p, PyObject *out_int32) {
    bool narrow;
    if (!p || bool_of(out_int32, false, &narrow) < 0) return nb_release(p), nbp_wrap(NULL);
    if (!narrow) return nbp_wrap(p);
    nb_tensor *c = nb_cast(p, NB_I32);
    nb_release(p);
    return nbp_wrap(c);
}

/* searchsorted(sorted_sequence, input, out_int32=False, right=False, side=None, sorter=None) */
static PyObject *a_searchsorted(const nbp_op_def *def, PyObject **a) {
    nb_tensor *seq = tensor_of(def, a, 0), *values = NULL, *sorter;
    bool right;
    if (!seq || optional_tensor(def, a, 5, &sorter) < 0 || side_of(def, a[3], a[4], &right) < 0)
        return NULL;
    const nb_tensor *like = seq;
    if (!(values = nbp_tensor_arg(a[1], like, def->name, def->params[1]))) return NULL;
    nb_tensor *ordered = sorter ? nb_gather(seq, -1, sorter) : nb_retain(seq);
    nb_tensor *p = ordered ? nb_searchsorted(ordered, values, right) : NULL;
    nb_release(ordered);
    nb_release(values);
    return positions(p, a[2]);
}

/* bucketize(input, boundaries, out_int32=False, right=False) */
static PyObject *a_bucketize(const nbp_op_def *def, PyObject **a) {
    nb_tensor *boundaries = tensor_of(def, a, 1), *x;
    bool right;
    if (!boundaries || bool_of(a[3], false, &right) < 0) return NULL;
    if (!(x = nbp_tensor_arg(a[0], boundaries, def->name, def->params[0]))) return NULL;
    nb_tensor *p = nb_bucketize(x, boundaries, right);
    nb_release(x);
    return positions(p, a[2]);
}

/* cumsum(input, dim, dtype=None), cumprod, logcumsumexp(input, dim) */
static PyObject *a_scan(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int dim;
    if (!x || dim_of(def, a, 1, 0, &dim) < 0) return NULL;
    typedef nb_tensor *(*scan_fn)(const nb_tensor *, int);
    nb_tensor *source = x;
    if (def->params[2] && a[2] && a[2] != Py_None) { /* logcumsumexp takes no dtype */
        nb_dtype dtype;
        if (nbp_dtype_arg(a[2], NB_F32, def->name, "dtype", &dtype) < 0 || !(source = nb_cast(x, dtype)))
            return nbp_wrap(NULL);
    }
    nb_tensor *r = FN(scan_fn)(source, dim);
    if (source != x) nb_release(source);
    return nbp_wrap(r);
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

/* ---- the table ---- */
#define UNARY(name, doc) {#name, nbp_unary, (void (*)(void))nb_##name, P("input"), 1, NBP_BOTH, doc}
#define BINARY(name, doc) {#name, nbp_binary, (void (*)(void))nb_##name, P("input", "other"), 2, NBP_BOTH, doc}
#define REDUCE(name, c, doc) \
    {#name, a_reduce, (void (*)(void))c, P("input", "dim", "keepdim", "dtype"), 1, NBP_BOTH, doc}
#define ATTENTION(name, doc) \
    {#name, a_attention, (void (*)(void))nb_##name, \
     P("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "generator"), 3, \
     NBP_FUNCTION, doc}

const nbp_op_def nbp_math_ops[] = {
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
    {"negative", nbp_unary, (void (*)(void))nb_neg, P("input"), 1, NBP_BOTH, "negative(input): neg."},
    {"leaky_relu", a_leaky_relu, NULL, P("input", "negative_slope"), 1, NBP_BOTH,
     "leaky_relu(input, negative_slope=0.01) -> Tensor: input where >= 0, else negative_slope * input."},
    UNARY(selu, "selu(input) -> Tensor: scale * elu(input, alpha), Klambauer et al.'s constants."),
    UNARY(mish, "mish(input) -> Tensor: input * tanh(softplus(input))."),
    UNARY(softsign, "softsign(input) -> Tensor: input / (1 + |input|)."),
    UNARY(logsigmoid, "logsigmoid(input) -> Tensor: log(sigmoid(input)), stable."),
    UNARY(tanhshrink, "tanhshrink(input) -> Tensor: input - tanh(input)."),
    {"elu", a_activation1, (void (*)(void))nb_elu, P("input", "alpha"), 1, NBP_BOTH,
     "elu(input, alpha=1.0) -> Tensor: input where > 0, else alpha (exp(input) - 1).", SET_DEFAULT_ONE},
    {"celu", a_activation1, (void (*)(void))nb_celu, P("input", "alpha"), 1, NBP_BOTH,
     "celu(input, alpha=1.0) -> Tensor: max(0, x) + min(0, alpha (exp(x / alpha) - 1)).", SET_DEFAULT_ONE},
    {"swish", a_activation1, (void (*)(void))nb_swish, P("input", "beta"), 1, NBP_BOTH,
     "swish(input, beta=1.0) -> Tensor: input * sigmoid(beta * input); beta 1 is silu.", SET_DEFAULT_ONE},
    {"hardshrink", a_activation1, (void (*)(void))nb_hardshrink, P("input", "lambd"), 1, NBP_BOTH,
     "hardshrink(input, lambd=0.5) -> Tensor: 0 where |input| <= lambd, else input.", SET_DEFAULT_HALF},
    {"softshrink", a_activation1, (void (*)(void))nb_softshrink, P("input", "lambd"), 1, NBP_BOTH,
     "softshrink(input, lambd=0.5) -> Tensor: input shrunk toward 0 by lambd (0 inside).", SET_DEFAULT_HALF},
    {"softplus", a_activation2, (void (*)(void))nb_softplus, P("input", "beta", "threshold"), 1, NBP_BOTH,
     "softplus(input, beta=1.0, threshold=20.0) -> Tensor: log(1 + exp(beta x)) / beta; x where beta x > "
     "threshold."},
    {"hardtanh", a_activation2, (void (*)(void))nb_hardtanh, P("input", "min_val", "max_val"), 1, NBP_BOTH,
     "hardtanh(input, min_val=-1.0, max_val=1.0) -> Tensor: input clamped to [min_val, max_val]."},
    {"threshold", a_activation2, (void (*)(void))nb_threshold, P("input", "threshold", "value"), 3,
     NBP_FUNCTION, "threshold(input, threshold, value) -> Tensor: value where input <= threshold, else input."},
    {"prelu", a_prelu, NULL, P("input", "weight"), 2, NBP_BOTH,
     "prelu(input, weight) -> Tensor: input where >= 0, else weight * input; weight [1] or [channels]."},
    {"rrelu", a_rrelu, NULL, P("input", "lower", "upper", "training", "generator"), 1, NBP_FUNCTION,
     "rrelu(input, lower=1/8, upper=1/3, training=False, generator=None) -> Tensor: leaky relu with "
     "random slopes in [lower, upper) in training, their mean otherwise."},
    {"glu", a_glu, NULL, P("input", "dim"), 1, NBP_FUNCTION,
     "glu(input, dim=-1) -> Tensor: a * sigmoid(b) of the halves a, b of dim."},
    {"maxout", a_maxout, NULL, P("input", "pieces", "dim"), 2, NBP_FUNCTION,
     "maxout(input, pieces, dim=-1) -> Tensor: the maximum of each group of pieces entries of dim."},
    {"gelu", a_gelu, NULL, P("input", "approximate"), 1, NBP_BOTH,
     "gelu(input, approximate='none') -> Tensor: input * Phi(input); 'tanh' is GPT-2's approximation."},
    {"clamp", nbp_clamp, NULL, P("input", "min", "max"), 1, NBP_BOTH,
     "clamp(input, min=None, max=None) -> Tensor: min(max(input, min), max)."},
    {"clip", nbp_clamp, NULL, P("input", "min", "max"), 1, NBP_BOTH, "clip(input, min=None, max=None): clamp."},
    /* elementwise binary */
    {"add", nbp_add_alpha, (void (*)(void))nb_add, P("input", "other", "alpha"), 2, NBP_BOTH,
     "add(input, other, alpha=1) -> Tensor: input + alpha * other, broadcast."},
    {"sub", nbp_add_alpha, (void (*)(void))nb_sub, P("input", "other", "alpha"), 2, NBP_BOTH,
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
    {"multiply", nbp_binary, (void (*)(void))nb_mul, P("input", "other"), 2, NBP_BOTH, "multiply: mul."},
    {"divide", nbp_binary, (void (*)(void))nb_div, P("input", "other"), 2, NBP_BOTH, "divide: div."},
    {"true_divide", nbp_binary, (void (*)(void))nb_div, P("input", "other"), 2, NBP_BOTH, "true_divide: div."},
    {"where", a_where, NULL, P("condition", "input", "other"), 3, NBP_FUNCTION,
     "where(condition, input, other) -> Tensor: input where condition is true, else other."},
    {"where", a_where_method, NULL, P("input", "condition", "other"), 3, NBP_METHOD,
     "where(condition, other) -> Tensor: self where condition is true, else other."},
    {"masked_fill", nbp_masked_fill, NULL, P("input", "mask", "value"), 3, NBP_BOTH,
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
    /* sorting, selection, scans */
    {"sort", a_sort, NULL, P("input", "dim", "descending", "stable"), 1, NBP_BOTH,
     "sort(input, dim=-1, descending=False, stable=False) -> (values, indices): stable always; NaN "
     "is the largest value (last ascending, first descending)."},
    {"argsort", a_sort, NULL, P("input", "dim", "descending", "stable"), 1, NBP_BOTH,
     "argsort(input, dim=-1, descending=False, stable=False) -> Tensor: the indices of sort.",
     SET_INDICES},
    {"topk", a_topk, NULL, P("input", "k", "dim", "largest", "sorted"), 2, NBP_BOTH,
     "topk(input, k, dim=-1, largest=True, sorted=True) -> (values, indices): the k largest (or "
     "smallest) along dim, in order; ties go to the lower index."},
    {"searchsorted", a_searchsorted, NULL,
     P("sorted_sequence", "input", "out_int32", "right", "side", "sorter"), 2, NBP_FUNCTION,
     "searchsorted(sorted_sequence, input, out_int32=False, right=False, side=None, sorter=None) -> "
     "Tensor: int64 insertion points into the last dim (first element >= v; right: > v)."},
    {"bucketize", a_bucketize, NULL, P("input", "boundaries", "out_int32", "right"), 2, NBP_BOTH,
     "bucketize(input, boundaries, out_int32=False, right=False) -> Tensor: the bucket i of each "
     "value, boundaries[i-1] < x <= boundaries[i] (right: <= x <)."},
    {"cumsum", a_scan, (void (*)(void))nb_cumsum, P("input", "dim", "dtype"), 2, NBP_BOTH,
     "cumsum(input, dim, dtype=None) -> Tensor: running sums along dim; integers give int64."},
    {"cumprod", a_scan, (void (*)(void))nb_cumprod, P("input", "dim", "dtype"), 2, NBP_BOTH,
     "cumprod(input, dim, dtype=None) -> Tensor: running products along dim; integers give int64."},
    {"logcumsumexp", a_scan, (void (*)(void))nb_logcumsumexp, P("input", "dim"), 2, NBP_BOTH,
     "logcumsumexp(input, dim) -> Tensor: running log(sum(exp(x))) along dim, stable."},
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
    {NULL},
};
