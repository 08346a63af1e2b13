/* What the op-table files (ops_*.c) share: the argument helpers the
 * adapters call, the table macros and each family's table. ops.c turns the
 * tables into op objects. */
#ifndef NABLA_PYTHON_OPS_H
#define NABLA_PYTHON_OPS_H

#include "pynabla.h"

/* what an adapter shared by several entries tells them apart by */
enum { SET_MAX = 1, SET_MIN, SET_INDICES, SET_DEFAULT_ONE, SET_DEFAULT_HALF, SET_UNIFORM, SET_NORMAL, SET_ZEROS, SET_ONES, SET_EMPTY, SET_DIM,
       SET_DATA_PTR, SET_NUMEL, SET_ELEMENT_SIZE, SET_IS_CONTIGUOUS };

#define FN(type) ((type)(void (*)(void))def->fn)
typedef nb_tensor *(*unary_fn)(const nb_tensor *);
typedef nb_tensor *(*binary_fn)(const nb_tensor *, const nb_tensor *);
typedef nb_tensor *(*reduce_fn)(const nb_tensor *, int, const int *, bool);

/* ---- argument helpers ---- */

static inline nb_tensor *tensor_of(const nbp_op_def *def, PyObject **a, int i) {
    nb_tensor *t;
    return nbp_tensor_borrow(a[i], false, def->name, def->params[i], &t) < 0 ? NULL : t;
}

static inline int optional_tensor(const nbp_op_def *def, PyObject **a, int i, nb_tensor **out) {
    return nbp_tensor_borrow(a[i], true, def->name, def->params[i], out);
}

static inline int bool_of(PyObject *o, bool fallback, bool *out) {
    if (!o) return *out = fallback, 0;
    int v = PyObject_IsTrue(o);
    if (v < 0) return -1;
    *out = v;
    return 0;
}

static inline int double_of(const nbp_op_def *def, PyObject **a, int i, double fallback, double *out) {
    if (!a[i] || a[i] == Py_None) return *out = fallback, 0;
    return nbp_double_arg(a[i], def->name, def->params[i], out);
}

static inline int int_of(const nbp_op_def *def, PyObject **a, int i, int64_t fallback, int64_t *out) {
    if (!a[i] || a[i] == Py_None) return *out = fallback, 0;
    return nbp_int64_arg(a[i], def->name, def->params[i], out);
}

static inline int dim_of(const nbp_op_def *def, PyObject **a, int i, int fallback, int *out) {
    int64_t d;
    if (int_of(def, a, i, fallback, &d) < 0) return -1;
    if (d < INT32_MIN || d > INT32_MAX)
        return PyErr_Format(PyExc_IndexError, "%s: dim %lld is out of range", def->name, (long long)d), -1;
    *out = (int)d;
    return 0;
}

/* A shape given as sizes or one tuple/list (the packed *size). */
static inline int shape_of(const nbp_op_def *def, PyObject *o, int64_t *shape) {
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 1 &&
        (PyTuple_Check(PyTuple_GET_ITEM(o, 0)) || PyList_Check(PyTuple_GET_ITEM(o, 0))))
        o = PyTuple_GET_ITEM(o, 0);
    return nbp_int64s(o, NB_MAX_DIMS, def->name, "size", shape);
}

static inline PyObject *wrap_grad(nb_tensor *t, PyObject *requires_grad) {
    bool on;
    if (!t) return nbp_raise();
    if (bool_of(requires_grad, false, &on) < 0 || (on && nb_set_requires_grad(t, true) != NB_OK)) {
        nb_release(t);
        return PyErr_Occurred() ? NULL : nbp_raise();
    }
    return nbp_wrap(t);
}


/* ---- the tables, each ended by an entry without a name ---- */
#define P(...) {__VA_ARGS__, NULL}
#define CREATE(...) P(__VA_ARGS__, "dtype", "device", "requires_grad")

extern const nbp_op_def nbp_math_ops[];   /* ops_math.c: elementwise, reductions, products, attention */
extern const nbp_op_def nbp_nn_ops[];     /* ops_nn.c: convolution, pooling, normalization, losses */
extern const nbp_op_def nbp_shape_ops[];  /* ops_shape.c: joining, splitting, indexing, views */
extern const nbp_op_def nbp_create_ops[]; /* ops_create.c: creation and random tensors */
extern const nbp_op_def nbp_tensor_ops[]; /* ops_tensor.c: conversions, geometry, autograd, in place */

/* Adapters the in-place methods share with their functions (ops_math.c):
 * fn(input), fn(input, other), add/sub with alpha, clamp, masked_fill. */
PyObject *nbp_unary(const nbp_op_def *def, PyObject **a);
PyObject *nbp_binary(const nbp_op_def *def, PyObject **a);
PyObject *nbp_add_alpha(const nbp_op_def *def, PyObject **a);
PyObject *nbp_clamp(const nbp_op_def *def, PyObject **a);
PyObject *nbp_masked_fill(const nbp_op_def *def, PyObject **a);
/* The (values, indices) type of max and min (ops_math.c). */
int nbp_return_types_init(void);

#endif
