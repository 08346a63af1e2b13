/* Fused optimizer updates, one kernel per parameter tensor that reads the
 * gradient and the state once and writes parameter and state in place
 * (PyTorch's formulas; g is the gradient, p the parameter):
 *   sgd   g += wd p;  with momentum: buf = momentum buf + g (buf = g at the
 *         first step), g = nesterov ? g + momentum buf : buf;  p -= lr g
 *   adam  g += wd p (Adam) or p *= 1 - lr wd (AdamW, decoupled);
 *         m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *         p -= lr (m / bc1) / (sqrt(v / bc2) + eps),  bc = 1 - b^step
 * The state tensors are f32 (f64 for f64 parameters). */
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

/* Runs op's kernel on param (in place) with grad made dense. */
static nb_status step(nb_op op, nb_tensor *param, const nb_tensor *grad, const nb_tensor *s1,
                      const nb_tensor *s2, const nb_attrs *attrs) {
    const char *fn = nb__op_fn(op);
    NB_CHECK(param && grad, NB_ERR_INVALID, "%s: %s is NULL", fn, param ? "grad" : "param");
    NB_CHECK(nb_dtype_is_float(param->dtype) && nb__is_contiguous(param), NB_ERR_DTYPE,
             "%s: the parameter must be a contiguous float tensor, got %s %s", fn,
             nb_dtype_name(param->dtype), nb__tensor_shape_str(param));
    NB_TRY(check_state(fn, param, grad, "grad", false));
    if (s1) NB_TRY(check_state(fn, param, s1, "state", true));
    if (s2) NB_TRY(check_state(fn, param, s2, "state", true));
    nb_op_args args = {.op = op, .dtype = param->dtype, .out = param, .in = {grad, s1, s2},
                       .n_in = s2 ? 3 : s1 ? 2 : 1, .attrs = *attrs};
    return nb__dispatch(&args);
}

nb_status nb__sgd_step(nb_tensor *param, const nb_tensor *grad, nb_tensor *momentum_buffer,
                       const nb_attrs *attrs) {
    return step(NB_OP_SGD_STEP, param, grad, momentum_buffer, NULL, attrs);
}

nb_status nb__adam_step(nb_tensor *param, const nb_tensor *grad, nb_tensor *m, nb_tensor *v,
                        const nb_attrs *attrs) {
    NB_CHECK(m && v, NB_ERR_INVALID, "nb_adam_step: the moment tensors are NULL");
    return step(NB_OP_ADAM_STEP, param, grad, m, v, attrs);
}
