/* matmul with numpy.matmul's shape rule. A 1-D a is a row [1, k] and a 1-D b a
 * column [k, 1]; the added dim is dropped from the result. Batch dims
 * broadcast. Gradients: da = g @ b^T, db = a^T @ g, each summed back over
 * broadcast batch dims. */
#include <string.h>

#include "../core/internal.h"

/* a and b as matrices: 1-D operands get their extra dim. */
static nb_status as_matrices(const nb_tensor *a, const nb_tensor *b, nb_tensor **a2,
                             nb_tensor **b2) {
    *a2 = a->ndim == 1 ? nb_unsqueeze(a, 0) : nb_retain((nb_tensor *)a);
    *b2 = b->ndim == 1 ? nb_unsqueeze(b, 1) : nb_retain((nb_tensor *)b);
    return *a2 && *b2 ? NB_OK : nb_last_status();
}

static nb_status matmul_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                                 nb_tensor **grads) {
    const nb_tensor *a = node->inputs[0], *b = node->inputs[1];
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    nb_tensor *a2 = NULL, *b2 = NULL;
    if (as_matrices(a, b, &a2, &b2) != NB_OK) {
        nb__keep(&s, NULL);
        nb_release(a2);
        nb_release(b2);
        return nb__scratch_finish(&s, NULL, NULL);
    }
    K(a2);
    K(b2);
    /* the gradient with the dropped dims restored: [batch..., m, n] */
    int ndim = 0;
    int64_t shape[NB_MAX_DIMS];
    nb__broadcast_shapes("nb_matmul", a2->ndim - 2, a2->shape, b2->ndim - 2, b2->shape, &ndim,
                         shape);
    shape[ndim] = a2->shape[a2->ndim - 2];
    shape[ndim + 1] = b2->shape[b2->ndim - 1];
    nb_tensor *g = K(nb_reshape(grad, ndim + 2, shape));
    const nb_tensor *inputs[2] = {a, b};
    for (int which = 0; which < 2; which++) {
        if (!needs[which]) continue;
        nb_tensor *full = which == 0 ? K(nb_matmul(g, K(nb_transpose(b2, -1, -2))))
                                     : K(nb_matmul(K(nb_transpose(a2, -1, -2)), g));
        nb_tensor *summed = nb__keep_sum_to(&s, full, which == 0 ? a2 : b2);
        nb_tensor *r = K(nb_reshape(summed, inputs[which]->ndim, inputs[which]->shape));
        if (s.status == NB_OK) grads[which] = nb_retain(r);
    }
#undef K
    return nb__scratch_finish(&s, NULL, NULL);
}

static nb_status matmul_impl(const nb_tensor *a, const nb_tensor *b, nb_tensor **out) {
    NB_CHECK(a && b, NB_ERR_INVALID, "nb_matmul: %s is NULL", a ? "b" : "a");
    NB_CHECK(a->ndim >= 1 && b->ndim >= 1, NB_ERR_SHAPE,
             "nb_matmul: operands need at least 1 dim, got %s and %s", nb__tensor_shape_str(a),
             nb__tensor_shape_str(b));
    NB_CHECK(a->dtype == b->dtype, NB_ERR_DTYPE, "nb_matmul: a is %s but b is %s",
             nb_dtype_name(a->dtype), nb_dtype_name(b->dtype));
    NB_CHECK(nb__same_device(a->storage->device, b->storage->device), NB_ERR_DEVICE,
             "nb_matmul: a is on %s but b is on %s", nb__device_name(a->storage->device),
             nb__device_name(b->storage->device));
    int64_t k = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
    NB_CHECK(k == kb, NB_ERR_SHAPE, "nb_matmul: inner dimensions differ: a is %s, b is %s",
             nb__tensor_shape_str(a), nb__tensor_shape_str(b));
    nb_tensor *a2 = NULL, *b2 = NULL, *ea = NULL, *eb = NULL, *full = NULL;
    bool was = nb_set_grad_enabled(false); /* the kernel's operands, not part of the graph */
    nb_status status = as_matrices(a, b, &a2, &b2);
    nb_set_grad_enabled(was);
    int ndim = 0;
    int64_t shape[NB_MAX_DIMS], shape_a[NB_MAX_DIMS], shape_b[NB_MAX_DIMS];
    if (status == NB_OK)
        status = nb__broadcast_shapes("nb_matmul", a2->ndim - 2, a2->shape, b2->ndim - 2,
                                      b2->shape, &ndim, shape);
    if (status == NB_OK) {
        NB_ASSERT(ndim + 2 <= NB_MAX_DIMS);
        memcpy(shape_a, shape, sizeof shape);
        memcpy(shape_b, shape, sizeof shape);
        shape_a[ndim] = a2->shape[a2->ndim - 2];
        shape_a[ndim + 1] = k;
        shape_b[ndim] = k;
        shape_b[ndim + 1] = b2->shape[b2->ndim - 1];
        shape[ndim] = shape_a[ndim];
        shape[ndim + 1] = shape_b[ndim + 1];
        status = nb__expand_view("nb_matmul", a2, ndim + 2, shape_a, &ea);
    }
    if (status == NB_OK) status = nb__expand_view("nb_matmul", b2, ndim + 2, shape_b, &eb);
    if (status == NB_OK)
        status = nb__tensor_new("nb_matmul", ndim + 2, shape, a->dtype, a->storage->device, &full);
    if (status == NB_OK) {
        nb_op_args args = {.op = NB_OP_MATMUL, .dtype = a->dtype, .out = full, .in = {ea, eb},
                           .n_in = 2};
        status = nb__dispatch(&args);
    }
    if (status == NB_OK) { /* drop the dims 1-D operands added */
        int out_ndim = ndim;
        if (a->ndim > 1) shape[out_ndim++] = shape[ndim];
        if (b->ndim > 1) shape[out_ndim++] = shape[ndim + 1];
        int64_t strides[NB_MAX_DIMS];
        nb__contiguous_strides(out_ndim, shape, strides);
        status = nb__tensor_view(full, out_ndim, shape, strides, 0, out);
    }
    if (status == NB_OK) {
        const nb_tensor *inputs[2] = {a, b};
        status = nb__record(*out, NB_OP_MATMUL, 2, inputs, NULL, matmul_backward);
    }
    nb_release(a2);
    nb_release(b2);
    nb_release(ea);
    nb_release(eb);
    nb_release(full);
    return status;
}

nb_tensor *nb_matmul(const nb_tensor *a, const nb_tensor *b) {
    nb_tensor *out = NULL;
    nb_status status = matmul_impl(a, b, &out);
    return nb__unwrap(status, out);
}

/* ---- linear: x [..., in] @ weight^T [in, out] + bias [out] ----
 * One kernel: on CUDA, cuBLASLt adds the bias in its epilogue. Gradients
 * (x2 and g2 with the leading dims flattened): dx = g2 @ weight,
 * dweight = g2^T @ x2, dbias = the sum of g2 over rows. */

static nb_status linear_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                 nb_tensor **grads) {
    const nb_tensor *x = node->inputs[0], *weight = node->inputs[1];
    int64_t in = weight->shape[1], out = weight->shape[0];
    int64_t rows = in ? nb_numel(x) / in : 0;
    int64_t x_shape[2] = {rows, in}, g_shape[2] = {rows, out};
    nb_scratch s = {0};
#define K(expr) nb__keep(&s, (expr))
    nb_tensor *g2 = K(nb_reshape(g, 2, g_shape));
    if (needs[0]) {
        nb_tensor *dx = K(nb_reshape(K(nb_matmul(g2, weight)), x->ndim, x->shape));
        if (s.status == NB_OK) grads[0] = nb_retain(dx);
    }
    if (needs[1]) {
        nb_tensor *dw = K(nb_matmul(K(nb_transpose(g2, 0, 1)), K(nb_reshape(x, 2, x_shape))));
        if (s.status == NB_OK) grads[1] = nb_retain(dw);
    }
    if (needs[2]) {
        int first = 0;
        nb_tensor *db = K(nb_sum(g2, 1, &first, false));
        if (s.status == NB_OK) grads[2] = nb_retain(db);
    }
#undef K
    return nb__scratch_finish(&s, NULL, NULL);
}

nb_status nb__check_layer_weight(const char *fn, const nb_tensor *x, const nb_tensor *weight) {
    NB_CHECK(nb_dtype_is_float(x->dtype) && x->dtype == weight->dtype, NB_ERR_DTYPE,
             "%s: x and weight must share a float dtype, got %s and %s", fn,
             nb_dtype_name(x->dtype), nb_dtype_name(weight->dtype));
    NB_CHECK(nb__same_device(x->storage->device, weight->storage->device), NB_ERR_DEVICE,
             "%s: x is on %s but weight on %s", fn, nb__device_name(x->storage->device),
             nb__device_name(weight->storage->device));
    return NB_OK;
}

nb_status nb__check_layer_bias(const char *fn, const nb_tensor *x, const nb_tensor *bias,
                               int64_t features) {
    if (!bias) return NB_OK;
    NB_CHECK(bias->ndim == 1 && bias->shape[0] == features && bias->dtype == x->dtype &&
                 nb__same_device(bias->storage->device, x->storage->device),
             NB_ERR_SHAPE, "%s: bias must be [%lld] of x's dtype and device, got %s %s", fn,
             (long long)features, nb_dtype_name(bias->dtype), nb__tensor_shape_str(bias));
    return NB_OK;
}

static nb_status check_linear(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias) {
    const char *fn = "nb_linear";
    NB_CHECK(x && weight, NB_ERR_INVALID, "%s: %s is NULL", fn, x ? "weight" : "x");
    NB_CHECK(x->ndim >= 1 && weight->ndim == 2 && x->shape[x->ndim - 1] == weight->shape[1],
             NB_ERR_SHAPE, "%s: needs x [..., in] and weight [out, in], got %s and %s", fn,
             nb__tensor_shape_str(x), nb__tensor_shape_str(weight));
    NB_TRY(nb__check_layer_weight(fn, x, weight));
    return nb__check_layer_bias(fn, x, bias, weight->shape[0]);
}

nb_tensor *nb_linear(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias) {
    if (check_linear(x, weight, bias) != NB_OK) return NULL;
    int64_t in = weight->shape[1], out_features = weight->shape[0];
    int64_t rows = in ? nb_numel(x) / in : nb__numel(x->ndim - 1, x->shape);
    int64_t x_shape[2] = {rows, in}, y_shape[NB_MAX_DIMS];
    memcpy(y_shape, x->shape, sizeof y_shape);
    y_shape[x->ndim - 1] = out_features;
    nb_scratch s = {0};
    bool was = nb_set_grad_enabled(false);
    nb_tensor *x2 = nb__keep(&s, nb_reshape(x, 2, x_shape));
    nb_tensor *wt = nb__keep(&s, nb_transpose(weight, 0, 1));
    nb_tensor *dense_bias = bias ? nb__keep(&s, nb_contiguous(bias)) : NULL; /* the epilogue reads it densely */
    nb_set_grad_enabled(was);
    nb_tensor *y = NULL;
    int64_t flat[2] = {rows, out_features};
    if (s.status == NB_OK &&
        nb__tensor_new("nb_linear", 2, flat, x->dtype, x->storage->device, &y) == NB_OK) {
        nb__keep(&s, y);
        nb_op_args args = {.op = NB_OP_LINEAR, .dtype = x->dtype, .out = y, .in = {x2, wt, dense_bias},
                           .n_in = bias ? 3 : 2};
        if (nb__dispatch(&args) != NB_OK) nb__keep(&s, NULL);
    } else {
        nb__keep(&s, NULL);
    }
    nb_tensor *shaped = NULL;
    if (s.status == NB_OK) {
        int64_t strides[NB_MAX_DIMS];
        nb__contiguous_strides(x->ndim, y_shape, strides);
        if (nb__tensor_view(y, x->ndim, y_shape, strides, 0, &shaped) != NB_OK) shaped = NULL;
        nb__keep(&s, shaped);
    }
    if (s.status == NB_OK) {
        const nb_tensor *inputs[3] = {x, weight, bias};
        if (nb__record(shaped, NB_OP_LINEAR, 3, inputs, NULL, linear_backward) != NB_OK)
            nb__keep(&s, NULL);
    }
    nb_tensor *result = NULL;
    return nb__scratch_finish(&s, shaped, &result) == NB_OK ? result : NULL;
}
