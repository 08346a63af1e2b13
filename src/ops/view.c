/* Views: reshape/view, permute, transpose, slice, squeeze, unsqueeze, expand.
 * A view shares its input's storage with new sizes, strides and offset; its
 * gradient maps the incoming gradient back to the input's geometry. */
#include <string.h>

#include "../core/internal.h"

/* ---- shape rules ---- */

nb_status nb__broadcast_shapes(const char *fn, int na, const int64_t *a, int nb, const int64_t *b,
                               int *nout, int64_t *out) {
    int n = na > nb ? na : nb;
    NB_CHECK(n <= NB_MAX_DIMS, NB_ERR_SHAPE, "%s: broadcast of %s and %s has over %d dims", fn,
             nb__shape_str(na, a), nb__shape_str(nb, b), NB_MAX_DIMS);
    int64_t result[NB_MAX_DIMS]; /* out may alias a or b */
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        NB_CHECK(da == db || da == 1 || db == 1, NB_ERR_SHAPE,
                 "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", fn,
                 nb__shape_str(na, a), nb__shape_str(nb, b), i, (long long)da, (long long)db);
        result[i] = da == 1 ? db : da;
    }
    memcpy(out, result, (size_t)n * sizeof *out);
    *nout = n;
    return NB_OK;
}

/* Target sizes may be -1 (keep); new leading dims get stride 0. */
static nb_status expand_geometry(const char *fn, const nb_tensor *t, int ndim, const int64_t *shape,
                                 int64_t *sizes, int64_t *strides) {
    NB_CHECK(ndim == 0 || shape, NB_ERR_INVALID, "%s: shape is NULL for %d dims", fn, ndim);
    NB_CHECK(ndim >= t->ndim && ndim <= NB_MAX_DIMS, NB_ERR_SHAPE,
             "%s: cannot expand %s to %d dims (at most %d)", fn, nb__tensor_shape_str(t), ndim,
             NB_MAX_DIMS);
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t target = shape[d];
        if (d < lead) {
            NB_CHECK(target >= 0, NB_ERR_SHAPE, "%s: size %lld for new dim %d of %s", fn,
                     (long long)target, d, nb__shape_str(ndim, shape));
            sizes[d] = target;
            strides[d] = 0;
            continue;
        }
        int64_t have = t->shape[d - lead];
        if (target == -1) target = have;
        NB_CHECK(target == have || (have == 1 && target >= 0), NB_ERR_SHAPE,
                 "%s: cannot expand %s to %s (dim %d: %lld to %lld)", fn, nb__tensor_shape_str(t),
                 nb__shape_str(ndim, shape), d, (long long)have, (long long)target);
        sizes[d] = target;
        strides[d] = target == have ? t->strides[d - lead] : 0;
    }
    int64_t numel;
    return nb__checked_numel(fn, ndim, sizes, t->dtype, &numel);
}

nb_status nb__expand_view(const char *fn, const nb_tensor *t, int ndim, const int64_t *shape,
                          nb_tensor **out) {
    if (t->ndim == ndim && !memcmp(t->shape, shape, (size_t)ndim * sizeof *shape)) {
        *out = nb_retain((nb_tensor *)t); /* already that shape: no new header */
        return NB_OK;
    }
    int64_t sizes[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    NB_TRY(expand_geometry(fn, t, ndim, shape, sizes, strides));
    return nb__tensor_view(t, ndim, sizes, strides, t->offset, out);
}

/* ---- backward formulas ---- */

static const nb_tensor *input0(const nb_node *node) { return node->inputs[0]; }

static nb_status reshape_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                  nb_tensor **grads) {
    (void)needs;
    return nb__result(nb_reshape(grad, input0(node)->ndim, input0(node)->shape), &grads[0]);
}

static nb_status permute_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                  nb_tensor **grads) {
    (void)needs;
    int inverse[NB_MAX_DIMS];
    for (int d = 0; d < grad->ndim; d++) inverse[node->attrs.permute.dims[d]] = d;
    return nb__result(nb_permute(grad, inverse), &grads[0]);
}

/* Zeros of the input's shape with grad written into the sliced window. */
static nb_status slice_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                nb_tensor **grads) {
    (void)needs;
    const nb_tensor *x = input0(node);
    nb_tensor *full = NULL, *window = NULL;
    NB_TRY(nb__result(nb_zeros(x->ndim, x->shape, grad->dtype, grad->storage->device), &full));
    int dim = node->attrs.slice.dim;
    int64_t start = node->attrs.slice.start, step = node->attrs.slice.step;
    nb_status status = nb__result(
        nb_slice(full, dim, start, start + step * grad->shape[dim], step), &window);
    if (status == NB_OK) status = nb__copy_into(window, grad);
    nb_release(window);
    if (status != NB_OK) {
        nb_release(full);
        return status;
    }
    grads[0] = full;
    return NB_OK;
}

static nb_status expand_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                 nb_tensor **grads) {
    (void)needs;
    return nb__sum_to(grad, input0(node)->ndim, input0(node)->shape, &grads[0]);
}

/* ---- the views ---- */

static nb_tensor *make_view(nb_op op, const nb_tensor *t, int ndim, const int64_t *shape,
                            const int64_t *strides, int64_t offset, const nb_attrs *attrs,
                            nb_backward_fn backward) {
    nb_tensor *out = NULL;
    nb_status status = nb__tensor_view(t, ndim, shape, strides, offset, &out);
    if (status == NB_OK) status = nb__record(out, op, 1, &t, attrs, backward);
    return nb__unwrap(status, out);
}

static bool null_check(const char *fn, const nb_tensor *t) {
    if (t) return true;
    nb__error(NB_ERR_INVALID, "%s: tensor is NULL", fn);
    return false;
}

/* Resolves a -1 in shape against t's element count. */
static nb_status infer_shape(const char *fn, const nb_tensor *t, int ndim, const int64_t *shape,
                             int64_t *resolved) {
    NB_CHECK(ndim >= 0 && ndim <= NB_MAX_DIMS, NB_ERR_SHAPE, "%s: %d dims requested, at most %d", fn,
             ndim, NB_MAX_DIMS);
    NB_CHECK(ndim == 0 || shape, NB_ERR_INVALID, "%s: shape is NULL for %d dims", fn, ndim);
    int infer = -1;
    int64_t known = 1, extent = 1; /* extent: the product of the nonzero sizes, which strides reach */
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == -1) {
            NB_CHECK(infer < 0, NB_ERR_SHAPE, "%s: more than one -1 in %s", fn,
                     nb__shape_str(ndim, shape));
            infer = d;
            continue;
        }
        NB_CHECK(shape[d] >= 0, NB_ERR_SHAPE, "%s: negative size in %s", fn,
                 nb__shape_str(ndim, shape));
        bool overflow = __builtin_mul_overflow(known, shape[d], &known) ||
                        __builtin_mul_overflow(extent, shape[d] ? shape[d] : 1, &extent);
        NB_CHECK(!overflow, NB_ERR_OVERFLOW, "%s: shape %s has more than 2^63 elements", fn,
                 nb__shape_str(ndim, shape));
        resolved[d] = shape[d];
    }
    int64_t numel = nb_numel(t);
    if (infer >= 0) {
        NB_CHECK(known != 0 && numel % known == 0, NB_ERR_SHAPE,
                 "%s: cannot infer the -1 of %s for %lld elements", fn, nb__shape_str(ndim, shape),
                 (long long)numel);
        resolved[infer] = numel / known;
        known = numel;
    }
    NB_CHECK(known == numel, NB_ERR_SHAPE, "%s: shape %s holds %lld elements, the tensor %s has %lld",
             fn, nb__shape_str(ndim, shape), (long long)known, nb__tensor_shape_str(t),
             (long long)numel);
    return NB_OK;
}

/* Strides that view t as shape without copying, if any exist: dims of t are
 * split into runs that are contiguous with each other, and each run must map
 * onto whole dims of the new shape (the rule PyTorch's view uses). */
static bool view_strides(const nb_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    if (t->ndim == 0 || nb_numel(t) == 0 || nb__is_contiguous(t)) {
        nb__contiguous_strides(ndim, shape, strides);
        return true;
    }
    int view_d = ndim - 1;
    int64_t base_stride = t->strides[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        bool run_ends = d == 0 || (t->shape[d - 1] != 1 &&
                                   t->strides[d - 1] != tensor_numel * base_stride);
        if (!run_ends) continue;
        while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
            strides[view_d] = view_numel * base_stride;
            view_numel *= shape[view_d];
            view_d--;
        }
        if (view_numel != tensor_numel) return false;
        if (d > 0) {
            base_stride = t->strides[d - 1];
            tensor_numel = view_numel = 1;
        }
    }
    return view_d == -1;
}

static nb_tensor *reshape_impl(const char *fn, const nb_tensor *t, int ndim, const int64_t *shape,
                               bool may_copy) {
    if (!null_check(fn, t)) return NULL;
    int64_t resolved[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    if (infer_shape(fn, t, ndim, shape, resolved) != NB_OK) return NULL;
    if (view_strides(t, ndim, resolved, strides))
        return make_view(NB_OP_RESHAPE, t, ndim, resolved, strides, t->offset, NULL,
                         reshape_backward);
    if (!may_copy) {
        nb__error(NB_ERR_SHAPE, "%s: a tensor of shape %s with strides %s cannot be viewed as %s; "
                  "use nb_reshape", fn, nb__tensor_shape_str(t), nb__shape_str(t->ndim, t->strides),
                  nb__shape_str(ndim, resolved));
        return NULL;
    }
    nb_tensor *dense = nb_contiguous(t);
    nb_tensor *out = dense ? reshape_impl(fn, dense, ndim, resolved, false) : NULL;
    nb_release(dense);
    return out;
}

nb_tensor *nb_reshape(const nb_tensor *t, int ndim, const int64_t *shape) {
    return reshape_impl("nb_reshape", t, ndim, shape, true);
}

nb_tensor *nb_view(const nb_tensor *t, int ndim, const int64_t *shape) {
    return reshape_impl("nb_view", t, ndim, shape, false);
}

static nb_tensor *permute_impl(nb_op op, const char *fn, const nb_tensor *t, const int *dims) {
    nb_attrs attrs = {0};
    int64_t shape[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    bool seen[NB_MAX_DIMS] = {false};
    for (int d = 0; d < t->ndim; d++) {
        int src;
        if (nb__normalize_dim(fn, dims[d], t->ndim, &src) != NB_OK) return NULL;
        if (seen[src]) {
            nb__error(NB_ERR_INDEX, "%s: dim %d appears twice in the permutation", fn, dims[d]);
            return NULL;
        }
        seen[src] = true;
        attrs.permute.dims[d] = src;
        shape[d] = t->shape[src];
        strides[d] = t->strides[src];
    }
    return make_view(op, t, t->ndim, shape, strides, t->offset, &attrs, permute_backward);
}

nb_tensor *nb_permute(const nb_tensor *t, const int *dims) {
    if (!null_check("nb_permute", t)) return NULL;
    if (!dims && t->ndim > 0) {
        nb__error(NB_ERR_INVALID, "nb_permute: dims is NULL");
        return NULL;
    }
    return permute_impl(NB_OP_PERMUTE, "nb_permute", t, dims);
}

nb_tensor *nb_transpose(const nb_tensor *t, int dim0, int dim1) {
    if (!null_check("nb_transpose", t)) return NULL;
    int a, b, dims[NB_MAX_DIMS];
    if (nb__normalize_dim("nb_transpose", dim0, t->ndim, &a) != NB_OK ||
        nb__normalize_dim("nb_transpose", dim1, t->ndim, &b) != NB_OK)
        return NULL;
    if (t->ndim == 0) return make_view(NB_OP_TRANSPOSE, t, 0, NULL, NULL, t->offset, NULL,
                                       reshape_backward);
    for (int d = 0; d < t->ndim; d++) dims[d] = d;
    dims[a] = b;
    dims[b] = a;
    return permute_impl(NB_OP_TRANSPOSE, "nb_transpose", t, dims);
}

nb_tensor *nb_slice(const nb_tensor *t, int dim, int64_t start, int64_t end, int64_t step) {
    if (!null_check("nb_slice", t)) return NULL;
    int d;
    if (t->ndim == 0) {
        nb__error(NB_ERR_INDEX, "nb_slice: cannot slice a 0-dim tensor");
        return NULL;
    }
    if (nb__normalize_dim("nb_slice", dim, t->ndim, &d) != NB_OK) return NULL;
    if (step < 1) {
        nb__error(NB_ERR_INVALID, "nb_slice: step must be >= 1, got %lld", (long long)step);
        return NULL;
    }
    int64_t size = t->shape[d];
    if (start < 0) start += size;
    if (end < 0) end += size;
    start = start < 0 ? 0 : start > size ? size : start;
    end = end < start ? start : end > size ? size : end;
    int64_t shape[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(strides, t->strides, sizeof strides);
    shape[d] = end == start ? 0 : (end - start - 1) / step + 1; /* no overflow for any step */
    if (shape[d] > 1) strides[d] = t->strides[d] * step; /* step < size: within the storage */
    nb_attrs attrs = {.slice = {d, start, step}};
    return make_view(NB_OP_SLICE, t, t->ndim, shape, strides, t->offset + start * t->strides[d],
                     &attrs, slice_backward);
}

static nb_tensor *drop_dims(const nb_tensor *t, uint32_t drop) {
    int64_t shape[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (drop & (1u << d)) continue;
        shape[n] = t->shape[d];
        strides[n++] = t->strides[d];
    }
    return make_view(NB_OP_SQUEEZE, t, n, shape, strides, t->offset, NULL, reshape_backward);
}

nb_tensor *nb_squeeze(const nb_tensor *t, int dim) {
    if (!null_check("nb_squeeze", t)) return NULL;
    int d;
    if (nb__normalize_dim("nb_squeeze", dim, t->ndim, &d) != NB_OK) return NULL;
    if (t->ndim > 0 && t->shape[d] != 1) {
        nb__error(NB_ERR_SHAPE, "nb_squeeze: dim %d of %s has size %lld, not 1", dim,
                  nb__tensor_shape_str(t), (long long)t->shape[d]);
        return NULL;
    }
    return drop_dims(t, t->ndim > 0 ? 1u << d : 0);
}

nb_tensor *nb_squeeze_all(const nb_tensor *t) {
    if (!null_check("nb_squeeze_all", t)) return NULL;
    uint32_t drop = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] == 1) drop |= 1u << d;
    return drop_dims(t, drop);
}

nb_tensor *nb_unsqueeze(const nb_tensor *t, int dim) {
    if (!null_check("nb_unsqueeze", t)) return NULL;
    int d;
    if (t->ndim == NB_MAX_DIMS) {
        nb__error(NB_ERR_SHAPE, "nb_unsqueeze: %s already has the most dims, %d",
                  nb__tensor_shape_str(t), NB_MAX_DIMS);
        return NULL;
    }
    if (nb__normalize_dim("nb_unsqueeze", dim, t->ndim + 1, &d) != NB_OK) return NULL;
    int64_t shape[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    for (int i = 0, j = 0; i <= t->ndim; i++) {
        if (i == d) {
            shape[i] = 1;
            strides[i] = j < t->ndim ? t->strides[j] * t->shape[j] : 1;
            continue;
        }
        shape[i] = t->shape[j];
        strides[i] = t->strides[j++];
    }
    return make_view(NB_OP_UNSQUEEZE, t, t->ndim + 1, shape, strides, t->offset, NULL,
                     reshape_backward);
}

static nb_tensor *expand(const char *fn, const nb_tensor *t, int ndim, const int64_t *shape) {
    if (!null_check(fn, t)) return NULL;
    int64_t sizes[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    if (expand_geometry(fn, t, ndim, shape, sizes, strides) != NB_OK) return NULL;
    return make_view(NB_OP_EXPAND, t, ndim, sizes, strides, t->offset, NULL, expand_backward);
}

nb_tensor *nb_expand(const nb_tensor *t, int ndim, const int64_t *shape) {
    return expand("nb_expand", t, ndim, shape);
}

nb_tensor *nb_broadcast_to(const nb_tensor *t, int ndim, const int64_t *shape) {
    return expand("nb_broadcast_to", t, ndim, shape);
}
