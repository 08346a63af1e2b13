/* Copies and casts: cast, contiguous, clone, copy_, and to (between devices).
 * All but `to` run the copy kernel, which converts dtypes and handles any
 * strides; the gradient of a copy is the incoming gradient cast back to the
 * input's dtype, and that of `to` the gradient moved back to the input's
 * device. */
#include "../core/internal.h"

nb_status nb__copy_into(nb_tensor *dst, const nb_tensor *src) {
    NB_CHECK(nb__same_device(dst->storage->device, src->storage->device), NB_ERR_DEVICE,
             "nb_copy_: source is on %s but destination is on %s",
             nb__device_name(src->storage->device), nb__device_name(dst->storage->device));
    nb_tensor *expanded = NULL;
    NB_TRY(nb__expand_view("nb_copy_", src, dst->ndim, dst->shape, &expanded));
    nb_op_args args = {.op = NB_OP_COPY, .dtype = src->dtype, .out = dst, .in = {expanded}, .n_in = 1};
    nb_status status = nb__dispatch(&args);
    nb_release(expanded);
    return status;
}

static nb_status copy_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                               nb_tensor **grads) {
    (void)needs;
    return nb__result(nb_cast(grad, node->inputs[0]->dtype), &grads[0]);
}

static nb_tensor *copy_as(const char *fn, const nb_tensor *x, nb_dtype dtype) {
    if (!x) {
        nb__error(NB_ERR_INVALID, "%s: tensor is NULL", fn);
        return NULL;
    }
    nb_tensor *out = NULL;
    nb_status status = nb__tensor_new(fn, x->ndim, x->shape, dtype, x->storage->device, &out);
    if (status == NB_OK) status = nb__copy_into(out, x);
    if (status == NB_OK) status = nb__record(out, NB_OP_COPY, 1, &x, NULL, copy_backward);
    return nb__unwrap(status, out);
}

nb_tensor *nb_cast(const nb_tensor *x, nb_dtype dtype) {
    if (!nb_dtype_is_valid(dtype)) {
        nb__error(NB_ERR_DTYPE, "nb_cast: invalid dtype %d", (int)dtype);
        return NULL;
    }
    return copy_as("nb_cast", x, dtype);
}

nb_tensor *nb_clone(const nb_tensor *x) { return copy_as("nb_clone", x, x ? x->dtype : NB_F32); }

nb_tensor *nb_contiguous(const nb_tensor *x) {
    if (x && nb__is_contiguous(x)) return nb_retain((nb_tensor *)x);
    return copy_as("nb_contiguous", x, x ? x->dtype : NB_F32);
}

/* A contiguous copy of x on device, with no autograd record. */
static nb_status to_device(const nb_tensor *x, nb_device device, nb_tensor **out) {
    nb_tensor *dense = NULL, *moved = NULL;
    NB_TRY(nb__tensor_new("nb_to", x->ndim, x->shape, x->dtype, device, &moved));
    bool was = nb_set_grad_enabled(false);
    nb_status status = nb__result(nb_contiguous(x), &dense);
    nb_set_grad_enabled(was);
    if (status == NB_OK) status = nb__transfer("nb_to", moved, dense);
    nb_release(dense);
    *out = nb__unwrap(status, moved);
    return status;
}

static nb_status to_backward(const nb_node *node, const nb_tensor *grad, const bool *needs,
                             nb_tensor **grads) {
    (void)needs;
    return nb__result(nb_to(grad, node->inputs[0]->storage->device), &grads[0]);
}

nb_tensor *nb_to(const nb_tensor *x, nb_device device) {
    if (!x) {
        nb__error(NB_ERR_INVALID, "nb_to: tensor is NULL");
        return NULL;
    }
    if (nb__check_device("nb_to", device) != NB_OK) return NULL;
    if (nb__same_device(x->storage->device, device)) return nb_retain((nb_tensor *)x);
    nb_tensor *out = NULL;
    nb_status status = to_device(x, device, &out);
    if (status == NB_OK) status = nb__record(out, NB_OP_TO, 1, &x, NULL, to_backward);
    return nb__unwrap(status, out);
}

nb_status nb_copy_(nb_tensor *dst, const nb_tensor *src) {
    NB_CHECK(dst && src, NB_ERR_INVALID, "nb_copy_: %s is NULL", dst ? "src" : "dst");
    NB_CHECK(!(dst->requires_grad && nb_is_grad_enabled()), NB_ERR_AUTOGRAD,
             "nb_copy_: dst requires a gradient; an in-place write would corrupt the graph "
             "(turn recording off with nb_set_grad_enabled(false))");
    for (int d = 0; d < dst->ndim; d++)
        NB_CHECK(dst->strides[d] != 0 || dst->shape[d] <= 1, NB_ERR_INVALID,
                 "nb_copy_: dst %s is a broadcast view (dim %d has stride 0): several elements "
                 "share one memory location", nb__tensor_shape_str(dst), d);
    nb_tensor *staged = NULL; /* src moved to dst's device, or copied away from an overlap */
    if (!nb__same_device(dst->storage->device, src->storage->device))
        NB_TRY(to_device(src, dst->storage->device, &staged));
    else if (nb__may_overlap(dst, src))
        NB_TRY(to_device(src, src->storage->device, &staged));
    nb_status status = nb__copy_into(dst, staged ? staged : src);
    nb_release(staged);
    if (status == NB_OK) nb__bump_version(dst);
    return status;
}
