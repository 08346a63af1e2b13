/* The elementwise and reduction plans both backends walk. */
#include "internal.h"

void nb__plan_map(const nb_op_args *args, nb_map_plan *plan) {
    const nb_tensor *ops[NB_MAX_INPUTS + 1] = {args->out};
    for (int i = 0; i < args->n_in; i++) ops[i + 1] = args->in[i];
    plan->n_operands = args->n_in + 1;
    plan->numel = nb_numel(args->out);
    plan->ndim = 0;
    for (int k = 0; k < plan->n_operands; k++) {
        plan->base[k] = nb__data(ops[k]);
        plan->dtype[k] = ops[k]->dtype;
    }
    for (int d = 0; d < args->out->ndim; d++) {
        if (args->out->shape[d] == 1) continue;
        int last = plan->ndim - 1;
        bool merge = last >= 0;
        for (int k = 0; k < plan->n_operands && merge; k++)
            merge = plan->strides[k][last] == ops[k]->strides[d] * args->out->shape[d];
        if (merge) {
            plan->shape[last] *= args->out->shape[d];
            for (int k = 0; k < plan->n_operands; k++) plan->strides[k][last] = ops[k]->strides[d];
            continue;
        }
        plan->shape[plan->ndim] = args->out->shape[d];
        for (int k = 0; k < plan->n_operands; k++) plan->strides[k][plan->ndim] = ops[k]->strides[d];
        plan->ndim++;
    }
    if (plan->ndim == 0) { /* one element */
        plan->ndim = 1;
        plan->shape[0] = 1;
        for (int k = 0; k < plan->n_operands; k++) plan->strides[k][0] = 1;
    }
}

void nb__plan_reduce(const nb_tensor *x, uint32_t mask, nb_reduce_plan *plan) {
    plan->n_kept = plan->n_reduced = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!(mask & (1u << d))) {
            plan->kept_shape[plan->n_kept] = x->shape[d];
            plan->kept_stride[plan->n_kept++] = x->strides[d];
            continue;
        }
        if (x->shape[d] == 1) continue;
        int last = plan->n_reduced - 1;
        if (last >= 0 && plan->red_stride[last] == x->strides[d] * x->shape[d]) {
            plan->red_shape[last] *= x->shape[d];
            plan->red_stride[last] = x->strides[d];
            continue;
        }
        plan->red_shape[plan->n_reduced] = x->shape[d];
        plan->red_stride[plan->n_reduced++] = x->strides[d];
    }
    if (plan->n_reduced == 0) { /* a reduction over size-1 dims sees one element */
        plan->red_shape[0] = 1;
        plan->red_stride[0] = 0;
        plan->n_reduced = 1;
    }
}
