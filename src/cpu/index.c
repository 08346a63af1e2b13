/* Indexing kernels: index_select, gather, scatter_add, one_hot. Each walks
 * the elements of its index-shaped operand in row-major order. Indices are all
 * read and checked before anything is written, so a bad index fails cleanly. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* Offset (in elements) of the row-major linear-th element of t. */
static int64_t element_offset(const nb_tensor *t, int64_t linear) {
    int64_t offset = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        offset += (linear % t->shape[d]) * t->strides[d];
        linear /= t->shape[d];
    }
    return offset;
}

/* t's row-major coordinate along dim of element linear. */
static int64_t coordinate(const nb_tensor *t, int64_t linear, int dim) {
    for (int d = t->ndim - 1; d > dim; d--) linear /= t->shape[d];
    return linear % t->shape[dim];
}

/* Reads every index as int64 into a new array and checks 0 <= index < limit
 * (a negative index is an error, as in PyTorch's index_select). */
static nb_status load_indices(const char *fn, const nb_tensor *index, int64_t limit, int64_t **out) {
    int64_t n = nb_numel(index);
    int64_t *values = nb__malloc((size_t)(n ? n : 1) * sizeof *values);
    NB_CHECK(values, NB_ERR_OOM, "%s: out of host memory reading %lld indices", fn, (long long)n);
    size_t size = nb_dtype_size(index->dtype);
    for (int64_t i = 0; i < n; i++) {
        nb__cpu_convert(NB_I64, &values[i], 1, index->dtype,
                        nb__data(index) + element_offset(index, i) * (int64_t)size, 1, 1);
        if (values[i] < 0 || values[i] >= limit) {
            int64_t bad = values[i];
            free(values);
            return nb__error(NB_ERR_INDEX, "%s: index %lld out of range [0, %lld) at position %lld",
                             fn, (long long)bad, (long long)limit, (long long)i);
        }
    }
    *out = values;
    return NB_OK;
}

/* Offset in x of the element at out's linear position with dim replaced. */
static int64_t source_offset(const nb_tensor *x, const nb_tensor *shape_of, int64_t linear, int dim,
                             int64_t at) {
    int64_t offset = 0;
    for (int d = shape_of->ndim - 1; d >= 0; d--) {
        int64_t c = linear % shape_of->shape[d];
        linear /= shape_of->shape[d];
        offset += (d == dim ? at : c) * x->strides[d];
    }
    return offset;
}

nb_status nb__cpu_index_select(const nb_op_args *args) {
    const nb_tensor *x = args->in[0], *index = args->in[1];
    nb_tensor *out = args->out;
    int dim = args->attrs.axis.dim;
    int64_t *idx;
    NB_TRY(load_indices("nb_index_select", index, x->shape[dim], &idx));
    size_t size = nb_dtype_size(x->dtype);
    int64_t n = nb_numel(out);
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t src = source_offset(x, out, i, dim, idx[coordinate(out, i, dim)]);
        memcpy(nb__data(out) + i * (int64_t)size, nb__data(x) + src * (int64_t)size, size);
    }
    free(idx);
    return NB_OK;
}

nb_status nb__cpu_gather(const nb_op_args *args) {
    const nb_tensor *x = args->in[0], *index = args->in[1];
    nb_tensor *out = args->out;
    int dim = args->attrs.axis.dim;
    int64_t *idx;
    NB_TRY(load_indices("nb_gather", index, x->shape[dim], &idx));
    size_t size = nb_dtype_size(x->dtype);
    int64_t n = nb_numel(out);
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t src = source_offset(x, out, i, dim, idx[i]);
        memcpy(nb__data(out) + i * (int64_t)size, nb__data(x) + src * (int64_t)size, size);
    }
    free(idx);
    return NB_OK;
}

/* out already holds x; adds src at the indexed positions, serially so that
 * repeated indices accumulate deterministically. */
nb_status nb__cpu_scatter_add(const nb_op_args *args) {
    const nb_tensor *index = args->in[0], *src = args->in[1];
    nb_tensor *out = args->out;
    int dim = args->attrs.axis.dim;
    int64_t *idx;
    NB_TRY(load_indices("nb_scatter_add", index, out->shape[dim], &idx));
    bool integer = !nb_dtype_is_float(out->dtype);
    size_t size = nb_dtype_size(out->dtype), src_size = nb_dtype_size(src->dtype);
    for (int64_t i = 0; i < nb_numel(index); i++) {
        char *dst = nb__data(out) + source_offset(out, index, i, dim, idx[i]) * (int64_t)size;
        const char *from = nb__data(src) + source_offset(src, index, i, -1, 0) * (int64_t)src_size;
        if (integer) {
            int64_t a, b;
            nb__cpu_convert(NB_I64, &a, 1, out->dtype, dst, 1, 1);
            nb__cpu_convert(NB_I64, &b, 1, src->dtype, from, 1, 1);
            a = (int64_t)((uint64_t)a + (uint64_t)b);
            nb__cpu_convert(out->dtype, dst, 1, NB_I64, &a, 1, 1);
        } else {
            double a, b;
            nb__cpu_convert(NB_F64, &a, 1, out->dtype, dst, 1, 1);
            nb__cpu_convert(NB_F64, &b, 1, src->dtype, from, 1, 1);
            a += b;
            nb__cpu_convert(out->dtype, dst, 1, NB_F64, &a, 1, 1);
        }
    }
    free(idx);
    return NB_OK;
}

nb_status nb__cpu_one_hot(const nb_op_args *args) {
    const nb_tensor *indices = args->in[0];
    nb_tensor *out = args->out;
    int64_t classes = args->attrs.one_hot.num_classes;
    int64_t *idx;
    NB_TRY(load_indices("nb_one_hot", indices, classes, &idx));
    int64_t *o = (int64_t *)nb__data(out);
    memset(o, 0, (size_t)nb_numel(out) * sizeof *o);
    for (int64_t i = 0; i < nb_numel(indices); i++) o[i * classes + idx[i]] = 1;
    free(idx);
    return NB_OK;
}
