/* Selection: where(cond, a, b) and masked_fill(x, mask, value).
 * Gradients: where sends g to a where cond holds and to b elsewhere (each
 * summed back over broadcast dims); masked_fill passes g where mask is false. */
#include "../core/internal.h"

static nb_status where_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                nb_tensor **grads) {
    const nb_tensor *cond = node->inputs[0];
    for (int which = 1; which <= 2; which++) {
        if (!needs[which]) continue;
        const nb_tensor *input = node->inputs[which];
        nb_scratch s = {0};
        nb_tensor *zero = nb__keep(&s, nb__scalar_like(g, 0));
        nb_tensor *full = nb__keep(&s, which == 1 ? nb_where(cond, g, zero) : nb_where(cond, zero, g));
        nb_tensor *summed = nb__keep_sum_to(&s, full, input);
        NB_TRY(nb__scratch_finish(&s, summed, &grads[which]));
    }
    return NB_OK;
}

static nb_status where_impl(const nb_tensor *cond, const nb_tensor *a, const nb_tensor *b,
                            nb_tensor **out) {
    NB_CHECK(cond && a && b, NB_ERR_INVALID, "nb_where: %s is NULL",
             !cond ? "cond" : !a ? "a" : "b");
    nb_device device = cond->storage->device;
    NB_CHECK(nb__same_device(device, a->storage->device) &&
                 nb__same_device(device, b->storage->device),
             NB_ERR_DEVICE, "nb_where: cond, a and b are on %s, %s and %s", nb__device_name(device),
             nb__device_name(a->storage->device), nb__device_name(b->storage->device));
    NB_CHECK(cond->dtype == NB_BOOL, NB_ERR_DTYPE, "nb_where: cond must be bool (as PyTorch's), got %s",
             nb_dtype_name(cond->dtype));
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    NB_TRY(nb__broadcast_shapes("nb_where", cond->ndim, cond->shape, a->ndim, a->shape, &ndim, shape));
    NB_TRY(nb__broadcast_shapes("nb_where", ndim, shape, b->ndim, b->shape, &ndim, shape));
    nb_dtype operand = nb_promote_types(a->dtype, b->dtype);
    nb_tensor *va = a->dtype == operand ? nb_retain((nb_tensor *)a) : nb_cast(a, operand);
    nb_tensor *vb = b->dtype == operand ? nb_retain((nb_tensor *)b) : nb_cast(b, operand);
    nb_tensor *ec = NULL, *ea = NULL, *eb = NULL;
    nb_status status = va && vb ? NB_OK : nb_last_status();
    if (status == NB_OK) status = nb__expand_view("nb_where", cond, ndim, shape, &ec);
    if (status == NB_OK) status = nb__expand_view("nb_where", va, ndim, shape, &ea);
    if (status == NB_OK) status = nb__expand_view("nb_where", vb, ndim, shape, &eb);
    if (status == NB_OK) status = nb__tensor_new("nb_where", ndim, shape, operand, device, out);
    if (status == NB_OK) {
        nb_op_args args = {.op = NB_OP_WHERE, .dtype = operand, .out = *out, .in = {ec, ea, eb},
                           .n_in = 3};
        status = nb__dispatch(&args);
    }
    if (status == NB_OK) {
        const nb_tensor *inputs[3] = {cond, va, vb};
        status = nb__record(*out, NB_OP_WHERE, 3, inputs, NULL, where_backward);
    }
    nb_release(va);
    nb_release(vb);
    nb_release(ec);
    nb_release(ea);
    nb_release(eb);
    return status;
}

nb_tensor *nb_where(const nb_tensor *cond, const nb_tensor *a, const nb_tensor *b) {
    nb_tensor *out = NULL;
    nb_status status = where_impl(cond, a, b, &out);
    return nb__unwrap(status, out);
}

static nb_status masked_fill_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                      nb_tensor **grads) {
    (void)needs;
    return nb__result(nb_masked_fill(g, node->inputs[1], 0), &grads[0]);
}

static nb_status masked_fill_impl(const nb_tensor *x, const nb_tensor *mask, double value,
                                  nb_tensor **out) {
    NB_CHECK(x && mask, NB_ERR_INVALID, "nb_masked_fill: %s is NULL", x ? "mask" : "x");
    NB_CHECK(nb__same_device(x->storage->device, mask->storage->device), NB_ERR_DEVICE,
             "nb_masked_fill: x is on %s but mask is on %s", nb__device_name(x->storage->device),
             nb__device_name(mask->storage->device));
    NB_CHECK(mask->dtype == NB_BOOL, NB_ERR_DTYPE, "nb_masked_fill: mask must be bool, got %s",
             nb_dtype_name(mask->dtype));
    NB_TRY(nb__check_value("nb_masked_fill", value, x->dtype));
    nb_tensor *em = NULL;
    NB_TRY(nb__expand_view("nb_masked_fill", mask, x->ndim, x->shape, &em));
    nb_status status = nb__tensor_new("nb_masked_fill", x->ndim, x->shape, x->dtype,
                                      x->storage->device, out);
    if (status == NB_OK) {
        nb_op_args args = {.op = NB_OP_MASKED_FILL, .dtype = x->dtype, .out = *out,
                           .in = {x, em}, .n_in = 2};
        args.attrs.fill.value = value;
        status = nb__dispatch(&args);
    }
    if (status == NB_OK) {
        const nb_tensor *inputs[2] = {x, mask};
        nb_attrs attrs = {.fill = {value}};
        status = nb__record(*out, NB_OP_MASKED_FILL, 2, inputs, &attrs, masked_fill_backward);
    }
    nb_release(em);
    return status;
}

nb_tensor *nb_masked_fill(const nb_tensor *x, const nb_tensor *mask, double value) {
    nb_tensor *out = NULL;
    nb_status status = masked_fill_impl(x, mask, value, &out);
    return nb__unwrap(status, out);
}
