/* Joining and splitting: cat, stack, split, chunk. cat copies each input into
 * its window of the result; the others are built from cat, unsqueeze and
 * slice. Gradient of cat: each input gets its window of g. */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

static nb_status cat_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                              nb_tensor **grads) {
    int dim = node->attrs.axis.dim;
    int64_t start = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        const nb_tensor *input = node->inputs[i];
        int64_t size = input->shape[dim];
        if (needs[i]) {
            nb_tensor *window = nb_slice(g, dim, start, start + size, 1);
            NB_TRY(nb__result(window, &grads[i]));
            if (window->dtype != input->dtype) {
                grads[i] = nb_cast(window, input->dtype);
                nb_release(window);
                NB_TRY(nb__result(grads[i], &grads[i]));
            }
        }
        start += size;
    }
    return NB_OK;
}

static nb_status check_cat(int n, const nb_tensor *const *tensors, int dim, int *d,
                           nb_dtype *dtype, int64_t *shape) {
    NB_CHECK(n >= 1 && tensors, NB_ERR_INVALID,
             "nb_cat: needs an array of at least one tensor, got %s with n = %d",
             tensors ? "an array" : "NULL", n);
    for (int i = 0; i < n; i++)
        NB_CHECK(tensors[i], NB_ERR_INVALID, "nb_cat: tensor %d is NULL", i);
    const nb_tensor *first = tensors[0];
    NB_CHECK(first->ndim > 0, NB_ERR_SHAPE, "nb_cat: cannot concatenate 0-dim tensors");
    NB_TRY(nb__normalize_dim("nb_cat", dim, first->ndim, d));
    memcpy(shape, first->shape, sizeof first->shape);
    shape[*d] = 0;
    *dtype = first->dtype;
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        NB_CHECK(nb__same_device(t->storage->device, first->storage->device), NB_ERR_DEVICE,
                 "nb_cat: tensor %d is on %s, tensor 0 on %s", i,
                 nb__device_name(t->storage->device), nb__device_name(first->storage->device));
        bool fits = t->ndim == first->ndim;
        for (int k = 0; k < first->ndim && fits; k++)
            fits = k == *d || t->shape[k] == first->shape[k];
        NB_CHECK(fits, NB_ERR_SHAPE, "nb_cat: tensor %d has shape %s, tensor 0 has %s (dim %d "
                 "may differ)", i, nb__tensor_shape_str(t), nb__tensor_shape_str(first), *d);
        NB_CHECK(shape[*d] <= INT64_MAX - t->shape[*d], NB_ERR_OVERFLOW, "nb_cat: size overflows");
        shape[*d] += t->shape[*d];
        *dtype = nb_promote_types(*dtype, t->dtype);
    }
    return NB_OK;
}

static nb_status cat_impl(int n, const nb_tensor *const *tensors, int dim, nb_tensor **out) {
    int d;
    nb_dtype dtype = NB_F32;
    int64_t shape[NB_MAX_DIMS];
    NB_TRY(check_cat(n, tensors, dim, &d, &dtype, shape));
    const nb_tensor *first = tensors[0];
    NB_TRY(nb__tensor_new("nb_cat", first->ndim, shape, dtype, first->storage->device, out));
    int64_t start = 0;
    nb_status status = NB_OK;
    for (int i = 0; i < n && status == NB_OK; i++) {
        int64_t size = tensors[i]->shape[d];
        memcpy(shape, (*out)->shape, sizeof shape);
        shape[d] = size;
        nb_tensor *window = NULL;
        status = nb__tensor_view(*out, first->ndim, shape, (*out)->strides,
                                 start * (*out)->strides[d], &window);
        if (status == NB_OK) status = nb__copy_into(window, tensors[i]);
        nb_release(window);
        start += size;
    }
    nb_attrs attrs = {.axis = {d}};
    if (status == NB_OK) status = nb__record(*out, NB_OP_CAT, n, tensors, &attrs, cat_backward);
    return status;
}

nb_tensor *nb_cat(int n, const nb_tensor *const *tensors, int dim) {
    nb_tensor *out = NULL;
    nb_status status = cat_impl(n, tensors, dim, &out);
    return nb__unwrap(status, out);
}

static nb_tensor *stack(int n, const nb_tensor *const *tensors, int dim) {
    if (n < 1 || !tensors) {
        nb__error(NB_ERR_INVALID, "nb_stack: needs an array of at least one tensor, got %s with n = %d",
                  tensors ? "an array" : "NULL", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!tensors[i]) {
            nb__error(NB_ERR_INVALID, "nb_stack: tensor %d of %d is NULL", i, n);
            return NULL;
        }
    for (int i = 1; i < n; i++) {
        const nb_tensor *t = tensors[i], *first = tensors[0];
        if (t->ndim != first->ndim || memcmp(t->shape, first->shape, (size_t)t->ndim * sizeof *t->shape)) {
            nb__error(NB_ERR_SHAPE, "nb_stack: tensor %d has shape %s, tensor 0 has %s", i,
                      nb__tensor_shape_str(t), nb__tensor_shape_str(first));
            return NULL;
        }
    }
    nb_tensor **expanded = nb__calloc((size_t)n, sizeof *expanded);
    if (!expanded) {
        nb__error(NB_ERR_OOM, "nb_stack: out of host memory for %d tensors", n);
        return NULL;
    }
    nb_tensor *out = NULL;
    int i = 0;
    for (; i < n; i++)
        if (!(expanded[i] = nb_unsqueeze(tensors[i], dim))) break;
    if (i == n) out = nb_cat(n, (const nb_tensor *const *)expanded, dim);
    for (int k = 0; k < n; k++) nb_release(expanded[k]);
    free(expanded);
    return out;
}

nb_tensor *nb_stack(int n, const nb_tensor *const *tensors, int dim) {
    const char *outer = nb__enter("nb_stack");
    nb_tensor *out = stack(n, tensors, dim);
    nb__leave(outer);
    return out;
}

nb_status nb_split(const nb_tensor *x, int64_t split_size, int dim, int max_out, nb_tensor **out,
                   int *n_out) {
    NB_CHECK(x && out && n_out, NB_ERR_INVALID, "nb_split: %s is NULL",
             !x ? "x" : !out ? "out" : "n_out");
    int d;
    NB_CHECK(x->ndim > 0, NB_ERR_SHAPE, "nb_split: cannot split a 0-dim tensor");
    NB_TRY(nb__normalize_dim("nb_split", dim, x->ndim, &d));
    int64_t size = x->shape[d];
    NB_CHECK(split_size >= 1 || (split_size == 0 && size == 0), NB_ERR_INVALID,
             "nb_split: split_size must be >= 1, got %lld", (long long)split_size);
    int64_t pieces = size == 0 ? 1 : size / split_size + (size % split_size != 0);
    NB_CHECK(pieces <= max_out, NB_ERR_INVALID,
             "nb_split: %lld pieces of %lld along dim %d of %s, but room for %d", (long long)pieces,
             (long long)split_size, dim, nb__tensor_shape_str(x), max_out);
    for (int64_t i = 0; i < pieces; i++) {
        out[i] = nb_slice(x, d, i * split_size, i * split_size + split_size, 1);
        if (!out[i]) {
            for (int64_t k = 0; k < i; k++) nb_release(out[k]);
            return nb_last_status();
        }
    }
    *n_out = (int)pieces;
    return NB_OK;
}

nb_status nb_chunk(const nb_tensor *x, int chunks, int dim, int max_out, nb_tensor **out,
                   int *n_out) {
    NB_CHECK(x, NB_ERR_INVALID, "nb_chunk: x is NULL");
    NB_CHECK(chunks >= 1, NB_ERR_INVALID, "nb_chunk: chunks must be >= 1, got %d", chunks);
    int d;
    NB_CHECK(x->ndim > 0, NB_ERR_SHAPE, "nb_chunk: cannot chunk a 0-dim tensor");
    NB_TRY(nb__normalize_dim("nb_chunk", dim, x->ndim, &d));
    int64_t size = x->shape[d];
    const char *outer = nb__enter("nb_chunk");
    nb_status status = nb_split(x, size / chunks + (size % chunks != 0), d, max_out, out, n_out);
    nb__leave(outer);
    return status;
}
