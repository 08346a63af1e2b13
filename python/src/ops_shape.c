/* The bindings of joining, splitting, indexing and views. */
#include "ops.h"

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

/* ---- the table ---- */

const nbp_op_def nbp_shape_ops[] = {
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
    {"contiguous", nbp_unary, (void (*)(void))nb_contiguous, P("input"), 1, NBP_METHOD,
     "contiguous() -> Tensor: itself when contiguous, else a contiguous copy."},
    {"clone", nbp_unary, (void (*)(void))nb_clone, P("input"), 1, NBP_BOTH,
     "clone(input) -> Tensor: a copy with its own memory (recorded by autograd)."},
    {"detach", nbp_unary, (void (*)(void))nb_detach, P("input"), 1, NBP_BOTH,
     "detach(input) -> Tensor: a view of the same memory outside the graph."},
    {NULL},
};
