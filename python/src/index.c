/* Tensor indexing with PyTorch's (and numpy's) semantics: ints, slices
 * (positive steps), None and ... give views (basic indexing); integer
 * tensors or lists and boolean masks give copies (advanced indexing), and
 * x[key] = value writes through either. Advanced indices must sit in
 * adjacent dims; they are merged into one dim and read with index_select. */
#include "pynabla.h"

#include <string.h>

typedef struct {
    nb_tensor *view;    /* the basic-indexed view (new reference) */
    int adv_dim;        /* first dim of the view the advanced indices address; -1 if none */
    int adv_dims;       /* how many dims they address */
    nb_tensor *flat;    /* i64 positions within those dims merged, row-major (new reference) */
    int index_ndim;     /* the shape the result has in their place */
    int64_t index_shape[NB_MAX_DIMS];
} indexing;

static void indexing_free(indexing *ix) {
    nb_release(ix->view);
    nb_release(ix->flat);
}

/* An entry of the key that addresses dims of the tensor (not None or ...). */
static int entry_dims(PyObject *e) {
    if (e == Py_None || e == Py_Ellipsis) return 0;
    if (nbp_is_tensor(e) && nb_dtype_of(nbp_t(e)) == NB_BOOL) return nb_ndim(nbp_t(e));
    return 1;
}

static bool is_advanced(PyObject *e) { return nbp_is_tensor(e) || PyList_Check(e); }

/* An integer index tensor from a Tensor or a list, i64 with negative
 * entries counted from the end of a dim of size. */
static nb_tensor *index_tensor(PyObject *e, int64_t size) {
    nb_tensor *t = nbp_tensor_arg(e, NULL, "Tensor indexing", "index");
    if (!t) return NULL;
    if (nb_dtype_is_float(nb_dtype_of(t))) {
        PyErr_Format(PyExc_IndexError, "Tensor indexing: tensors used as indices must be integer or "
                     "bool, not %s", nb_dtype_name(nb_dtype_of(t)));
        nb_release(t);
        return NULL;
    }
    nb_tensor *i64 = nb_cast(t, NB_I64);
    nb_release(t);
    nb_tensor *zero = i64 ? nb_scalar(0, NB_I64, nb_device_of(i64)) : NULL;
    nb_tensor *n = zero ? nb_scalar((double)size, NB_I64, nb_device_of(i64)) : NULL;
    nb_tensor *negative = n ? nb_lt(i64, zero) : NULL;
    nb_tensor *wrapped = negative ? nb_add(i64, n) : NULL;
    nb_tensor *r = wrapped ? nb_where(negative, wrapped, i64) : NULL;
    nb_release(i64), nb_release(zero), nb_release(n), nb_release(negative), nb_release(wrapped);
    if (!r) nbp_raise();
    return r;
}

/* The positions of a mask's true entries, row-major over its dims (read on the host). */
static nb_tensor *mask_positions(const nb_tensor *mask, nb_device device) {
    int64_t n = nb_numel(mask);
    unsigned char *bits = PyMem_Malloc((size_t)(n ? n : 1));
    int64_t *positions = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *positions);
    nb_tensor *r = NULL;
    if (!bits || !positions) {
        PyErr_NoMemory();
    } else if (nb_to_host(mask, bits, (size_t)n) != NB_OK) {
        nbp_raise();
    } else {
        int64_t count = 0;
        for (int64_t i = 0; i < n; i++)
            if (bits[i]) positions[count++] = i;
        r = nb_from_host(positions, 1, &count, NB_I64, device);
        if (!r) nbp_raise();
    }
    PyMem_Free(bits);
    PyMem_Free(positions);
    return r;
}

/* The advanced entries (adjacent, at dims dim.. of the view) as one flat index. */
static int merge_advanced(indexing *ix, PyObject **entries, int n, int dim) {
    const nb_tensor *v = ix->view;
    int dims = 0;
    for (int i = 0; i < n; i++) dims += entry_dims(entries[i]);
    if (n == 1 && nbp_is_tensor(entries[0]) && nb_dtype_of(nbp_t(entries[0])) == NB_BOOL) {
        const nb_tensor *mask = nbp_t(entries[0]);
        for (int d = 0; d < dims; d++)
            if (nb_shape(mask)[d] != nb_shape(v)[dim + d])
                return PyErr_Format(PyExc_IndexError, "Tensor indexing: the mask's dim %d has size "
                                    "%lld, the tensor's dim %d has %lld", d, (long long)nb_shape(mask)[d],
                                    dim + d, (long long)nb_shape(v)[dim + d]), -1;
        ix->flat = mask_positions(mask, nb_device_of(v));
        if (!ix->flat) return -1;
        ix->index_ndim = 1;
        ix->index_shape[0] = nb_numel(ix->flat);
    } else {
        /* flat = sum_i index_i * (the sizes of the dims after i), broadcast */
        for (int i = 0; i < n; i++) {
            if (nbp_is_tensor(entries[i]) && nb_dtype_of(nbp_t(entries[i])) == NB_BOOL)
                return PyErr_Format(PyExc_NotImplementedError, "Tensor indexing: a boolean mask "
                                    "beside other advanced indices is not supported"), -1;
            nb_tensor *idx = index_tensor(entries[i], nb_shape(v)[dim + i]);
            if (!idx) return -1;
            int64_t after = 1;
            for (int j = i + 1; j < n; j++) after *= nb_shape(v)[dim + j];
            nb_tensor *scale = nb_scalar((double)after, NB_I64, nb_device_of(idx));
            nb_tensor *term = scale ? nb_mul(idx, scale) : NULL;
            nb_tensor *sum = term && ix->flat ? nb_add(ix->flat, term) : nb_retain(term);
            nb_release(idx), nb_release(scale), nb_release(term);
            nb_release(ix->flat);
            ix->flat = sum;
            if (!sum) return nbp_raise(), -1;
        }
        ix->index_ndim = nb_ndim(ix->flat);
        memcpy(ix->index_shape, nb_shape(ix->flat), sizeof(int64_t) * (size_t)ix->index_ndim);
        int64_t count = nb_numel(ix->flat);
        nb_tensor *line = nb_reshape(ix->flat, 1, &count);
        nb_release(ix->flat);
        ix->flat = line;
        if (!line) return nbp_raise(), -1;
    }
    ix->adv_dim = dim;
    ix->adv_dims = dims;
    return 0;
}

/* One basic entry applied to the view at *dim. */
static int apply_basic(indexing *ix, PyObject *e, int *dim) {
    nb_tensor *v = ix->view, *next = NULL;
    if (e == Py_None) {
        next = nb_unsqueeze(v, *dim);
        ++*dim;
    } else if (PySlice_Check(e)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(e, &start, &stop, &step) < 0) return -1;
        if (step <= 0)
            return PyErr_Format(PyExc_ValueError, "Tensor indexing: slice step must be positive, "
                                "not %zd", step), -1;
        PySlice_AdjustIndices((Py_ssize_t)nb_shape(v)[*dim], &start, &stop, step);
        next = nb_slice(v, *dim, start, stop > start ? stop : start, step);
        ++*dim;
    } else {
        int64_t i;
        if (nbp_int64_arg(e, "Tensor indexing", "index", &i) < 0) {
            PyErr_Clear();
            return PyErr_Format(PyExc_IndexError, "Tensor indexing: only ints, slices, None, ..., "
                                "integer or boolean tensors and lists of ints are valid indices, "
                                "not %s", Py_TYPE(e)->tp_name), -1;
        }
        int64_t size = nb_shape(v)[*dim];
        if (i < -size || i >= size)
            return PyErr_Format(PyExc_IndexError, "Tensor indexing: index %lld is out of range for "
                                "dim %d of size %lld", (long long)i, *dim, (long long)size), -1;
        if (i < 0) i += size;
        nb_tensor *s = nb_slice(v, *dim, i, i + 1, 1);
        next = s ? nb_squeeze(s, *dim) : NULL;
        nb_release(s);
    }
    if (!next) return nbp_raise(), -1;
    nb_release(v);
    ix->view = next;
    return 0;
}

static int parse_key(PyObject *self, PyObject *key, indexing *ix) {
    *ix = (indexing){.view = nb_retain(nbp_t(self)), .adv_dim = -1};
    PyObject *single[1] = {key};
    PyObject **entries = single;
    Py_ssize_t n = 1;
    if (PyTuple_Check(key)) {
        entries = &PyTuple_GET_ITEM(key, 0);
        n = PyTuple_GET_SIZE(key);
    }
    int addressed = 0, ellipses = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        addressed += entry_dims(entries[i]);
        ellipses += entries[i] == Py_Ellipsis;
    }
    int ndim = nb_ndim(ix->view);
    if (ellipses > 1) return PyErr_SetString(PyExc_IndexError, "Tensor indexing: more than one ..."), -1;
    if (addressed > ndim)
        return PyErr_Format(PyExc_IndexError, "Tensor indexing: too many indices for a tensor of %d "
                            "dims: %d", ndim, addressed), -1;
    int dim = 0, first_adv = -1, last_adv = -1;
    PyObject *advanced[NB_MAX_DIMS];
    int n_adv = 0, adv_at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = entries[i];
        if (e == Py_Ellipsis) {
            dim += ndim - addressed;
        } else if (is_advanced(e)) {
            if (first_adv >= 0 && last_adv != i - 1)
                return PyErr_SetString(PyExc_NotImplementedError, "Tensor indexing: advanced "
                                       "indices (tensors, lists) must be adjacent in nabla"), -1;
            if (first_adv < 0) first_adv = (int)i, adv_at = dim;
            last_adv = (int)i;
            advanced[n_adv++] = e;
            dim += entry_dims(e);
        } else if (apply_basic(ix, e, &dim) < 0) { /* after the advanced dims: moves none */
            return -1;
        }
    }
    return n_adv ? merge_advanced(ix, advanced, n_adv, adv_at) : 0;
}

/* The view with the advanced dims merged into one: a view when the strides
 * allow, else (reading only) a copy. */
static nb_tensor *merged(const indexing *ix, bool writable) {
    const nb_tensor *v = ix->view;
    int64_t shape[NB_MAX_DIMS];
    int n = 0, d = 0;
    for (; d < ix->adv_dim; d++) shape[n++] = nb_shape(v)[d];
    int64_t size = 1;
    for (; d < ix->adv_dim + ix->adv_dims; d++) size *= nb_shape(v)[d];
    shape[n++] = size;
    for (; d < nb_ndim(v); d++) shape[n++] = nb_shape(v)[d];
    nb_tensor *r = writable ? nb_view(v, n, shape) : nb_reshape(v, n, shape);
    if (!r) nbp_raise();
    return r;
}

int nbp_index_get(PyObject *self, PyObject *key, PyObject **out) {
    indexing ix;
    if (parse_key(self, key, &ix) < 0) {
        indexing_free(&ix);
        return -1;
    }
    if (ix.adv_dim < 0) {
        *out = nbp_wrap(nb_retain(ix.view));
        indexing_free(&ix);
        return *out ? 0 : -1;
    }
    nb_tensor *m = merged(&ix, false);
    nb_tensor *picked = m ? nb_index_select(m, ix.adv_dim, ix.flat) : NULL;
    nb_release(m);
    int64_t shape[2 * NB_MAX_DIMS];
    int n = 0;
    const nb_tensor *v = ix.view;
    for (int d = 0; d < ix.adv_dim; d++) shape[n++] = nb_shape(v)[d];
    for (int d = 0; d < ix.index_ndim; d++) shape[n++] = ix.index_shape[d];
    for (int d = ix.adv_dim + ix.adv_dims; d < nb_ndim(v); d++) shape[n++] = nb_shape(v)[d];
    nb_tensor *r = NULL;
    if (picked && n > NB_MAX_DIMS)
        PyErr_Format(PyExc_IndexError, "Tensor indexing: the result would have %d dims", n);
    else if (picked && !(r = nb_reshape(picked, n, shape)))
        nbp_raise();
    else if (!picked && !PyErr_Occurred())
        nbp_raise();
    nb_release(picked);
    indexing_free(&ix);
    *out = r ? nbp_wrap(r) : NULL;
    return *out ? 0 : -1;
}

/* The value a write stores, converted to the target's dtype and device. */
static nb_tensor *write_value(PyObject *value, const nb_tensor *target) {
    nb_tensor *v = nbp_tensor_arg(value, target, "Tensor assignment", "value");
    if (!v) return NULL;
    nb_tensor *moved = nb_device_of(v).type == nb_device_of(target).type &&
                               nb_device_of(v).index == nb_device_of(target).index
                           ? nb_retain(v) : nb_to(v, nb_device_of(target));
    nb_release(v);
    nb_tensor *r = moved && nb_dtype_of(moved) != nb_dtype_of(target) ? nb_cast(moved, nb_dtype_of(target))
                                                                       : nb_retain(moved);
    nb_release(moved);
    if (!r) nbp_raise();
    return r;
}

/* m[..., flat, ...] = value along dim: every target position takes the
 * value of the last index naming it, through a where over the merged dim. */
static int scatter_write(nb_tensor *m, int dim, const nb_tensor *flat, const nb_tensor *value,
                         const indexing *ix) {
    int64_t size = nb_shape(m)[dim], count = nb_numel(flat);
    if (count == 0) return 0;
    int64_t *positions = PyMem_Malloc((size_t)count * sizeof(int64_t));
    int64_t *source = PyMem_Calloc((size_t)(size ? size : 1), sizeof(int64_t));
    unsigned char *hit = PyMem_Calloc((size_t)(size ? size : 1), 1);
    int rc = -1;
    if (!positions || !source || !hit) {
        PyErr_NoMemory();
    } else if (nb_to_host(flat, positions, (size_t)count * sizeof(int64_t)) != NB_OK) {
        nbp_raise();
    } else {
        int64_t bad = 0;
        bool in_range = true;
        for (int64_t i = 0; i < count; i++) {
            if (positions[i] < 0 || positions[i] >= size) in_range = false, bad = positions[i];
            else source[positions[i]] = i, hit[positions[i]] = 1;
        }
        if (!in_range) {
            PyErr_Format(PyExc_IndexError, "Tensor assignment: index %lld is out of range for a dim "
                         "of size %lld", (long long)bad, (long long)size);
        } else {
            /* value broadcast to m's shape with count entries along dim */
            int64_t shape[NB_MAX_DIMS];
            int n = nb_ndim(m);
            memcpy(shape, nb_shape(m), sizeof(int64_t) * (size_t)n);
            shape[dim] = count;
            int64_t vshape[2 * NB_MAX_DIMS];
            int vn = 0;
            for (int d = 0; d < dim; d++) vshape[vn++] = shape[d];
            for (int d = 0; d < ix->index_ndim; d++) vshape[vn++] = ix->index_shape[d];
            for (int d = dim + 1; d < n; d++) vshape[vn++] = shape[d];
            nb_tensor *wide = vn <= NB_MAX_DIMS ? nb_broadcast_to(value, vn, vshape) : NULL;
            nb_tensor *line = wide ? nb_reshape(wide, n, shape) : NULL;
            nb_tensor *src_index = nb_from_host(source, 1, &size, NB_I64, nb_device_of(m));
            nb_tensor *spread = line && src_index ? nb_index_select(line, dim, src_index) : NULL;
            int64_t mshape[NB_MAX_DIMS];
            for (int d = 0; d < n; d++) mshape[d] = d == dim ? size : 1;
            nb_tensor *mask = nb_from_host(hit, n, mshape, NB_BOOL, nb_device_of(m));
            nb_tensor *mixed = spread && mask ? nb_where(mask, spread, m) : NULL;
            if (mixed && nb_copy_(m, mixed) == NB_OK) rc = 0;
            else if (vn > NB_MAX_DIMS) PyErr_SetString(PyExc_IndexError, "Tensor assignment: too many dims");
            else nbp_raise();
            nb_release(wide), nb_release(line), nb_release(src_index), nb_release(spread);
            nb_release(mask), nb_release(mixed);
        }
    }
    PyMem_Free(positions);
    PyMem_Free(source);
    PyMem_Free(hit);
    return rc;
}

int nbp_index_set(PyObject *self, PyObject *key, PyObject *value) {
    indexing ix;
    int rc = -1;
    if (parse_key(self, key, &ix) < 0) goto done;
    nb_tensor *v = write_value(value, ix.view);
    if (!v) goto done;
    if (ix.adv_dim < 0) {
        rc = nb_copy_(ix.view, v) == NB_OK ? 0 : (nbp_raise(), -1);
    } else {
        nb_tensor *m = merged(&ix, true);
        if (m) rc = scatter_write(m, ix.adv_dim, ix.flat, v, &ix);
        nb_release(m);
    }
    nb_release(v);
done:
    indexing_free(&ix);
    return rc;
}
