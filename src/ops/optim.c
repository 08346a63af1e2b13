/* The fused optimizer update: one kernel per parameter tensor reads the
 * gradient and the state once and writes parameter and state in place (the
 * rules are in src/core/optim_update.h). The state tensors are f32 (f64 for
 * f64 parameters). */
#include "../core/internal.h"

static nb_status check_state(const char *fn, const nb_tensor *param, const nb_tensor *t,
                             const char *name, bool state) {
    NB_CHECK(t, NB_ERR_INVALID, "%s: %s is NULL", fn, name);
    NB_CHECK(nb__same_device(t->storage->device, param->storage->device), NB_ERR_DEVICE,
             "%s: %s is on %s but the parameter on %s", fn, name,
             nb__device_name(t->storage->device), nb__device_name(param->storage->device));
    NB_CHECK(nb_numel(t) == nb_numel(param) && nb__is_contiguous(t), NB_ERR_SHAPE,
             "%s: %s %s must be contiguous with the parameter's %lld elements", fn, name,
             nb__tensor_shape_str(t), (long long)nb_numel(param));
    nb_dtype want = param->dtype == NB_F64 ? NB_F64 : NB_F32;
    NB_CHECK(!state || t->dtype == want, NB_ERR_DTYPE, "%s: %s must be %s, got %s", fn, name,
             nb_dtype_name(want), nb_dtype_name(t->dtype));
    return NB_OK;
}

nb_status nb__optim_step(nb_tensor *param, const nb_tensor *grad,
                         nb_tensor *const state[NB_OPTIM_SLOTS], const nb_attrs *attrs) {
    const char *fn = nb__op_fn(NB_OP_OPTIM_STEP);
    NB_CHECK(param && grad, NB_ERR_INVALID, "%s: %s is NULL", fn, param ? "grad" : "param");
    NB_CHECK(nb_dtype_is_float(param->dtype) && nb__is_contiguous(param), NB_ERR_DTYPE,
             "%s: the parameter must be a contiguous float tensor, got %s %s", fn,
             nb_dtype_name(param->dtype), nb__tensor_shape_str(param));
    NB_TRY(check_state(fn, param, grad, "grad", false));
    nb_op_args args = {.op = NB_OP_OPTIM_STEP, .dtype = param->dtype, .out = param, .in = {grad},
                       .n_in = 1 + NB_OPTIM_SLOTS, .attrs = *attrs};
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) {
        if (state[s]) NB_TRY(check_state(fn, param, state[s], "state", true));
        args.in[1 + s] = state[s];
    }
    return nb__dispatch(&args);
}
