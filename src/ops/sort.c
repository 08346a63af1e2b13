/* Sorting and selection along one dim: sort, argsort, topk, and the binary
 * searches searchsorted and bucketize.
 *
 * The kernels work on rows: a contiguous [rows, n] tensor whose last dim is
 * the one sorted (the front end swaps dim with the last dim and back). They
 * order values by a total order on keys: NaN above +inf (every NaN alike),
 * -0 equal to +0, ties by position, so both devices return the same indices
 * and the sort is stable, ascending or descending (PyTorch's stable=True,
 * NaN last ascending and first descending). argsort and topk's kernels give
 * indices (i64); the values are gathered with them, so the gradient is
 * gather's: g scattered back to the chosen positions. */
#include "../core/internal.h"

static nb_status check_input(const char *fn, const nb_tensor *x, int dim, int *d) {
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    return nb__normalize_dim(fn, dim, x->ndim ? x->ndim : 1, d);
}

/* x with dim d swapped to the last place (a 0-dim x as [1]), contiguous; no
 * autograd. */
static nb_status rows_of(const nb_tensor *x, int d, nb_tensor **out) {
    bool was = nb_set_grad_enabled(false);
    int64_t one = 1;
    nb_tensor *shaped = x->ndim ? nb_retain((nb_tensor *)x) : nb_reshape(x, 1, &one);
    nb_tensor *swapped = shaped ? nb_transpose(shaped, d, -1) : NULL;
    *out = swapped ? nb_contiguous(swapped) : NULL;
    nb_release(swapped);
    nb_release(shaped);
    nb_set_grad_enabled(was);
    return *out ? NB_OK : nb_last_status();
}

/* The kernel op (argsort or topk) over the rows of x along d, with k kept
 * per row: i64 indices in x's layout (contiguous, x's shape with size k
 * along d). */
static nb_status select_indices(nb_op op, const nb_tensor *x, int d, int64_t k, bool descending,
                                nb_tensor **out) {
    const char *fn = nb__op_fn(op);
    nb_tensor *rows = NULL;
    NB_TRY(rows_of(x, d, &rows));
    int64_t shape[NB_MAX_DIMS];
    int ndim = rows->ndim;
    for (int i = 0; i < ndim; i++) shape[i] = rows->shape[i];
    shape[ndim - 1] = k;
    nb_op_args args = {.op = op, .dtype = x->dtype, .in = {rows}, .n_in = 1};
    args.attrs.sort.k = k;
    args.attrs.sort.descending = descending;
    nb_tensor *picked = NULL;
    nb_status status = nb__dispatch_new(fn, &args, ndim, shape, NB_I64, &picked);
    nb_release(rows);
    NB_TRY(status);
    bool was = nb_set_grad_enabled(false);
    nb_tensor *back = nb_transpose(picked, d, -1);
    nb_tensor *dense = back ? nb_contiguous(back) : NULL;
    if (dense && x->ndim == 0) {
        nb_tensor *scalar = nb_reshape(dense, 0, NULL);
        nb_release(dense);
        dense = scalar ? nb_contiguous(scalar) : NULL;
        nb_release(scalar);
    }
    nb_set_grad_enabled(was);
    nb_release(back);
    nb_release(picked);
    return nb__result(dense, out);
}

/* x's values at indices along d (gather, so differentiable); the indices go
 * to *indices or are released. */
static nb_tensor *values_at(const char *fn, const nb_tensor *x, int d, nb_tensor *index,
                            nb_tensor **indices) {
    const char *outer = nb__enter(fn);
    nb_tensor *values = x->ndim ? nb_gather(x, d, index) : nb_clone(x);
    nb__leave(outer);
    if (values && indices) *indices = index;
    else nb_release(index);
    return values;
}

nb_tensor *nb_argsort(const nb_tensor *x, int dim, bool descending) {
    int d;
    nb_tensor *index = NULL;
    if (check_input("nb_argsort", x, dim, &d) != NB_OK) return NULL;
    if (select_indices(NB_OP_ARGSORT, x, d, x->ndim ? x->shape[d] : 1, descending, &index) != NB_OK)
        return NULL;
    return index;
}

nb_tensor *nb_sort(const nb_tensor *x, int dim, bool descending, nb_tensor **indices) {
    int d;
    nb_tensor *index = NULL;
    if (check_input("nb_sort", x, dim, &d) != NB_OK) return NULL;
    if (select_indices(NB_OP_ARGSORT, x, d, x->ndim ? x->shape[d] : 1, descending, &index) != NB_OK)
        return NULL;
    return values_at("nb_sort", x, d, index, indices);
}

nb_tensor *nb_topk(const nb_tensor *x, int64_t k, int dim, bool largest, nb_tensor **indices) {
    int d;
    nb_tensor *index = NULL;
    if (check_input("nb_topk", x, dim, &d) != NB_OK) return NULL;
    int64_t n = x->ndim ? x->shape[d] : 1;
    if (k < 0 || k > n) {
        nb__error(NB_ERR_INVALID, "nb_topk: needs 0 <= k <= %lld (the size of dim %d of %s), got %lld",
                  (long long)n, dim, nb__tensor_shape_str(x), (long long)k);
        return NULL;
    }
    if (select_indices(NB_OP_TOPK, x, d, k, largest, &index) != NB_OK) return NULL;
    return values_at("nb_topk", x, d, index, indices);
}

/* The insertion points of values into the rows of sorted_sequence. The
 * kernel takes both in one dtype (promoted), contiguous: the sequence as
 * [rows, m] and the values as [rows, n] (rows 1 for a 1-D sequence, whose
 * values may have any shape). */
static nb_tensor *search(const char *fn, const nb_tensor *sequence, const nb_tensor *values,
                         bool right) {
    if (!sequence || !values) {
        nb__error(NB_ERR_INVALID, "%s: %s is NULL", fn, sequence ? "values" : "the sorted sequence");
        return NULL;
    }
    if (!nb__same_device(sequence->storage->device, values->storage->device)) {
        nb__error(NB_ERR_DEVICE, "%s: the sorted sequence is on %s but values are on %s", fn,
                  nb__device_name(sequence->storage->device), nb__device_name(values->storage->device));
        return NULL;
    }
    bool one_row = sequence->ndim == 1;
    bool leading_match = sequence->ndim >= 1 && values->ndim == sequence->ndim;
    for (int i = 0; leading_match && i < sequence->ndim - 1; i++)
        leading_match = sequence->shape[i] == values->shape[i];
    if (!one_row && !leading_match) {
        nb__error(NB_ERR_SHAPE,
                  "%s: needs a 1-D sorted sequence, or one whose leading dims match those of "
                  "values; got %s and values %s", fn, nb__tensor_shape_str(sequence),
                  nb__tensor_shape_str(values));
        return NULL;
    }
    nb_dtype common = nb_promote_types(sequence->dtype, values->dtype);
    bool was = nb_set_grad_enabled(false);
    nb_tensor *seq = nb_cast(sequence, common), *vals = nb_cast(values, common);
    nb_set_grad_enabled(was);
    nb_tensor *out = NULL;
    if (seq && vals) {
        nb_op_args args = {.op = NB_OP_SEARCHSORTED, .dtype = common, .in = {seq, vals}, .n_in = 2};
        args.attrs.search.right = right;
        args.attrs.search.rows = 1;
        for (int i = 0; i < sequence->ndim - 1; i++) args.attrs.search.rows *= sequence->shape[i];
        nb__dispatch_new(fn, &args, values->ndim, values->shape, NB_I64, &out);
    }
    nb_release(seq);
    nb_release(vals);
    return out;
}

nb_tensor *nb_searchsorted(const nb_tensor *sorted_sequence, const nb_tensor *values, bool right) {
    return search("nb_searchsorted", sorted_sequence, values, right);
}

nb_tensor *nb_bucketize(const nb_tensor *x, const nb_tensor *boundaries, bool right) {
    if (boundaries && boundaries->ndim != 1) {
        nb__error(NB_ERR_SHAPE, "nb_bucketize: needs 1-D boundaries, got %s",
                  nb__tensor_shape_str(boundaries));
        return NULL;
    }
    const char *outer = nb__enter("nb_bucketize");
    nb_tensor *out = search("nb_bucketize", boundaries, x, right);
    nb__leave(outer);
    return out;
}
