/* Indexing: index_select, gather, scatter_add, embedding, one_hot. Index
 * tensors are i32 or i64 and are bounds-checked by the kernels.
 * Gradients:
 *   index_select  scatter_add of g into zeros at the selected positions
 *   gather        scatter_add(zeros_like(x), dim, index, g)
 *   scatter_add   g for x; gather(g, dim, index) for src
 * The two sums into zeros add f16 and bf16 gradients in f32 and round once:
 * an embedding row a byte-level GPT picks a thousand times a batch would
 * otherwise round after each addition (bf16 keeps 8 bits: 256 + 1 is 256). */
#include <string.h>

#include "../core/internal.h"

static nb_status check_index(const char *fn, const nb_tensor *x, const nb_tensor *index) {
    NB_CHECK(x && index, NB_ERR_INVALID, "%s: %s is NULL", fn, x ? "index" : "x");
    NB_CHECK(index->dtype == NB_I32 || index->dtype == NB_I64, NB_ERR_DTYPE,
             "%s: index must be i32 or i64, got %s", fn, nb_dtype_name(index->dtype));
    NB_CHECK(nb__same_device(x->storage->device, index->storage->device), NB_ERR_DEVICE,
             "%s: x is on %s but index is on %s", fn, nb__device_name(x->storage->device),
             nb__device_name(index->storage->device));
    return NB_OK;
}

/* Allocates out, dispatches op with inputs in and records it. */
static nb_status run(nb_op op, int ndim, const int64_t *shape, nb_dtype dtype, int n_in,
                     const nb_tensor *const *in, int dim, nb_backward_fn backward, int n_record,
                     const nb_tensor *const *record, nb_tensor **out) {
    nb_tensor *result = *out;
    if (!result)
        NB_TRY(nb__tensor_new(nb__op_fn(op), ndim, shape, dtype, in[0]->storage->device, &result));
    nb_op_args args = {.op = op, .dtype = dtype, .out = result, .n_in = n_in};
    for (int i = 0; i < n_in; i++) args.in[i] = in[i];
    args.attrs.axis.dim = dim;
    nb_status status = nb__dispatch(&args);
    if (status == NB_OK && backward)
        status = nb__record(result, op, n_record, record, &args.attrs, backward);
    if (status != NB_OK) {
        nb_release(result);
        result = NULL;
    }
    *out = result;
    return status;
}

/* zeros of x's shape with g scatter-added at index along dim, summed in f32
 * for f16 and bf16 and returned in g's dtype; kept in s. */
static nb_tensor *scatter_into_zeros(nb_scratch *s, const nb_tensor *x, int dim,
                                     const nb_tensor *index, const nb_tensor *g) {
    bool narrow = g->dtype == NB_F16 || g->dtype == NB_BF16;
    nb_dtype sum = narrow ? NB_F32 : g->dtype;
    nb_tensor *zeros = nb__keep(s, nb_zeros(x->ndim, x->shape, sum, g->storage->device));
    nb_tensor *wide = narrow ? nb__keep(s, nb_cast(g, sum)) : (nb_tensor *)g;
    nb_tensor *r = nb__keep(s, nb_scatter_add(zeros, dim, index, wide));
    return narrow ? nb__keep(s, nb_cast(r, g->dtype)) : r;
}

static nb_status index_select_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                       nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0], *index = node->inputs[1];
    int dim = node->attrs.axis.dim;
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < g->ndim; d++) shape[d] = d == dim ? g->shape[d] : 1;
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    nb_tensor *spread = K(nb_expand(K(nb_reshape(index, g->ndim, shape)), g->ndim, g->shape));
    nb_tensor *r = s.status == NB_OK ? scatter_into_zeros(&s, x, dim, spread, g) : NULL;
#undef K
    return nb__scratch_finish(&s, r, &grads[0]);
}

nb_tensor *nb_index_select(const nb_tensor *x, int dim, const nb_tensor *index) {
    int d;
    if (check_index("nb_index_select", x, index) != NB_OK ||
        nb__normalize_dim("nb_index_select", dim, x->ndim, &d) != NB_OK)
        return NULL;
    if (index->ndim > 1 || x->ndim == 0) {
        nb__error(NB_ERR_SHAPE, "nb_index_select: needs a 1-D index and x with dims, got %s and %s",
                  nb__tensor_shape_str(index), nb__tensor_shape_str(x));
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = nb_numel(index);
    const nb_tensor *in[2] = {x, index};
    nb_tensor *out = NULL;
    run(NB_OP_INDEX_SELECT, x->ndim, shape, x->dtype, 2, in, d, index_select_backward, 2, in, &out);
    return out;
}

static nb_status gather_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                 nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = node->inputs[0];
    nb_scratch s = {0};
    nb_tensor *r = scatter_into_zeros(&s, x, node->attrs.axis.dim, node->inputs[1], g);
    return nb__scratch_finish(&s, r, &grads[0]);
}

/* index's size must not exceed other's in any dim but skip. */
static nb_status check_fits(const char *fn, const nb_tensor *index, const nb_tensor *other,
                            const char *name, int skip) {
    NB_CHECK(index->ndim == other->ndim, NB_ERR_SHAPE, "%s: index %s and %s %s differ in rank", fn,
             nb__tensor_shape_str(index), name, nb__tensor_shape_str(other));
    for (int d = 0; d < index->ndim; d++)
        NB_CHECK(d == skip || index->shape[d] <= other->shape[d], NB_ERR_SHAPE,
                 "%s: index %s is larger than %s %s in dim %d", fn, nb__tensor_shape_str(index),
                 name, nb__tensor_shape_str(other), d);
    return NB_OK;
}

nb_tensor *nb_gather(const nb_tensor *x, int dim, const nb_tensor *index) {
    int d;
    if (check_index("nb_gather", x, index) != NB_OK ||
        nb__normalize_dim("nb_gather", dim, x->ndim, &d) != NB_OK ||
        check_fits("nb_gather", index, x, "x", d) != NB_OK)
        return NULL;
    const nb_tensor *in[2] = {x, index};
    nb_tensor *out = NULL;
    run(NB_OP_GATHER, index->ndim, index->shape, x->dtype, 2, in, d, gather_backward, 2, in, &out);
    return out;
}

/* gather(g, dim, index) placed into zeros of src's shape. */
static nb_status scatter_src_grad(const nb_tensor *g, int dim, const nb_tensor *index,
                                  const nb_tensor *src, nb_tensor **out) {
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    nb_tensor *picked = K(nb_gather(g, dim, index));
    nb_tensor *r = picked;
    if (s.status == NB_OK && memcmp(index->shape, src->shape, (size_t)src->ndim * sizeof *src->shape)) {
        r = K(nb_zeros(src->ndim, src->shape, g->dtype, g->storage->device));
        nb_tensor *window = r;
        for (int d = 0; d < src->ndim; d++) window = K(nb_slice(window, d, 0, index->shape[d], 1));
        if (s.status == NB_OK && nb__copy_into(window, picked) != NB_OK) K(NULL);
    }
#undef K
    return nb__scratch_finish(&s, r, out);
}

static nb_status scatter_add_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                      nb_tensor **grads) {
    if (needs[0]) grads[0] = nb_retain((nb_tensor *)g);
    if (needs[2])
        NB_TRY(scatter_src_grad(g, node->attrs.axis.dim, node->inputs[1], node->inputs[2],
                                &grads[2]));
    return NB_OK;
}

nb_tensor *nb_scatter_add(const nb_tensor *x, int dim, const nb_tensor *index,
                          const nb_tensor *src) {
    int d;
    if (check_index("nb_scatter_add", x, index) != NB_OK) return NULL;
    if (!src) {
        nb__error(NB_ERR_INVALID, "nb_scatter_add: src is NULL");
        return NULL;
    }
    if (src->dtype != x->dtype || !nb__same_device(src->storage->device, x->storage->device)) {
        nb__error(src->dtype != x->dtype ? NB_ERR_DTYPE : NB_ERR_DEVICE,
                  "nb_scatter_add: src is %s on %s but x is %s on %s", nb_dtype_name(src->dtype),
                  nb__device_name(src->storage->device), nb_dtype_name(x->dtype),
                  nb__device_name(x->storage->device));
        return NULL;
    }
    if (nb__normalize_dim("nb_scatter_add", dim, x->ndim, &d) != NB_OK ||
        check_fits("nb_scatter_add", index, x, "x", d) != NB_OK ||
        check_fits("nb_scatter_add", index, src, "src", -1) != NB_OK)
        return NULL;
    nb_tensor *out = NULL;
    if (nb__tensor_new("nb_scatter_add", x->ndim, x->shape, x->dtype, x->storage->device, &out) !=
        NB_OK)
        return NULL;
    if (nb__copy_into(out, x) != NB_OK) {
        nb_release(out);
        return NULL;
    }
    const nb_tensor *in[2] = {index, src}, *record[3] = {x, index, src};
    run(NB_OP_SCATTER_ADD, 0, NULL, x->dtype, 2, in, d, scatter_add_backward, 3, record, &out);
    return out;
}

nb_tensor *nb_embedding(const nb_tensor *weight, const nb_tensor *indices) {
    if (check_index("nb_embedding", weight, indices) != NB_OK) return NULL;
    if (weight->ndim != 2 || indices->ndim >= NB_MAX_DIMS) {
        nb__error(NB_ERR_SHAPE, "nb_embedding: needs weight [num, dim] and indices of < %d dims, "
                  "got %s and %s", NB_MAX_DIMS, nb__tensor_shape_str(weight),
                  nb__tensor_shape_str(indices));
        return NULL;
    }
    int64_t flat = nb_numel(indices), shape[NB_MAX_DIMS];
    memcpy(shape, indices->shape, (size_t)indices->ndim * sizeof *shape);
    shape[indices->ndim] = weight->shape[1];
    const char *outer = nb__enter("nb_embedding");
    nb_scratch s = {0};
    nb_tensor *rows = nb__keep(&s, nb_index_select(weight, 0, nb__keep(&s, nb_reshape(indices, 1, &flat))));
    nb_tensor *r = nb__keep(&s, nb_reshape(rows, indices->ndim + 1, shape));
    nb_tensor *out = NULL;
    nb_status status = nb__scratch_finish(&s, r, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}

nb_tensor *nb_one_hot(const nb_tensor *indices, int64_t num_classes) {
    if (check_index("nb_one_hot", indices, indices) != NB_OK) return NULL;
    if (indices->ndim >= NB_MAX_DIMS) {
        nb__error(NB_ERR_SHAPE, "nb_one_hot: indices %s leave no room for a class dim",
                  nb__tensor_shape_str(indices));
        return NULL;
    }
    if (num_classes < 0) {
        double max;
        nb_tensor *top = nb_numel(indices) ? nb_max(indices, 0, NULL, false) : NULL;
        nb_status status = top ? nb_item(top, &max) : NB_ERR_SHAPE;
        nb_release(top);
        if (status != NB_OK) {
            if (!nb_numel(indices))
                nb__error(NB_ERR_SHAPE, "nb_one_hot: cannot infer num_classes from no indices");
            return NULL;
        }
        num_classes = (int64_t)max + 1;
    }
    if (num_classes == 0 && nb_numel(indices) > 0) {
        nb__error(NB_ERR_INDEX, "nb_one_hot: num_classes is 0 but %lld indices were given",
                  (long long)nb_numel(indices));
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, indices->shape, (size_t)indices->ndim * sizeof *shape);
    shape[indices->ndim] = num_classes;
    nb_tensor *out = NULL;
    if (nb__tensor_new("nb_one_hot", indices->ndim + 1, shape, NB_I64, indices->storage->device,
                       &out) != NB_OK)
        return NULL;
    nb_op_args args = {.op = NB_OP_ONE_HOT, .dtype = indices->dtype, .out = out, .in = {indices},
                       .n_in = 1};
    args.attrs.one_hot.num_classes = num_classes;
    return nb__unwrap(nb__dispatch(&args), out);
}
