/* The op name table and kernel dispatch over the backends' tables. */
#include <stdlib.h>

#include "internal.h"

#define NB_OP_NAME_ENTRY(ID, name, differentiable) #name,
static const char *const op_names[NB_OP_COUNT] = {NB_OP_LIST(NB_OP_NAME_ENTRY)};
#undef NB_OP_NAME_ENTRY

#define NB_OP_GRAD_ENTRY(ID, name, differentiable) differentiable,
static const int op_differentiable[NB_OP_COUNT] = {NB_OP_LIST(NB_OP_GRAD_ENTRY)};
#undef NB_OP_GRAD_ENTRY

#define NB_OP_FN_ENTRY(ID, name, differentiable) "nb_" #name,
static const char *const op_functions[NB_OP_COUNT] = {NB_OP_LIST(NB_OP_FN_ENTRY)};
#undef NB_OP_FN_ENTRY

const char *nb__op_fn(nb_op op) { return (unsigned)op < NB_OP_COUNT ? op_functions[op] : "nb_?"; }

const char *nb_op_name(nb_op op) { return (unsigned)op < NB_OP_COUNT ? op_names[op] : "?"; }

int nb_op_is_differentiable(nb_op op) {
    return (unsigned)op < NB_OP_COUNT ? op_differentiable[op] : 0;
}

/* One backend per device type; a backend not built leaves NULL. */
static const nb_backend *const backends[NB_DEVICE_TYPE_COUNT] = {
    [NB_DEVICE_CPU] = &nb__cpu_backend,
#ifdef NABLA_WITH_CUDA
    [NB_DEVICE_CUDA] = &nb__cuda_backend,
#endif
};

const nb_backend *nb__backend(nb_device_type type) {
    return (unsigned)type < NB_DEVICE_TYPE_COUNT ? backends[type] : NULL;
}

bool nb__has_kernel(nb_device device, nb_op op, nb_dtype dtype) {
    const nb_backend *backend = nb__backend(device.type);
    return backend && backend->kernels[op].fn && (backend->kernels[op].dtypes & NB_DT(dtype));
}

nb_status nb__dispatch(const nb_op_args *args) {
    nb_device device = args->out->storage->device;
    const nb_backend *backend = nb__backend(device.type);
    const nb_kernel *kernel = backend ? &backend->kernels[args->op] : NULL;
    NB_CHECK(kernel && kernel->fn && (kernel->dtypes & NB_DT(args->dtype)), NB_ERR_UNSUPPORTED,
             "nb_%s: no kernel for op %s on %s with dtype %s", nb_op_name(args->op),
             nb_op_name(args->op), nb__device_name(device), nb_dtype_name(args->dtype));
    if (nb_numel(args->out) == 0) return NB_OK;
    return kernel->fn(args);
}

nb_status nb__dispatch_new(const char *fn, nb_op_args *args, int ndim, const int64_t *shape,
                           nb_dtype dtype, nb_tensor **out) {
    NB_TRY(nb__tensor_new(fn, ndim, shape, dtype, args->in[0]->storage->device, out));
    args->out = *out;
    nb_status status = nb__dispatch(args);
    if (status != NB_OK) {
        nb_release(*out);
        *out = NULL;
    }
    return status;
}

const char *nb_version(void) { return "0.1.0"; }

/* -1 until the environment is read: NABLA_DETERMINISTIC=1 starts it on. */
static int deterministic = -1;

void nb_use_deterministic_algorithms(bool enabled) {
    __atomic_store_n(&deterministic, enabled ? 1 : 0, __ATOMIC_RELAXED);
}

bool nb_deterministic_algorithms_enabled(void) {
    int on = __atomic_load_n(&deterministic, __ATOMIC_RELAXED);
    if (on < 0) {
        const char *env = getenv("NABLA_DETERMINISTIC");
        int from_env = env && env[0] == '1';
        __atomic_compare_exchange_n(&deterministic, &on, from_env, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED); /* a concurrent setter wins */
        on = __atomic_load_n(&deterministic, __ATOMIC_RELAXED);
    }
    return on == 1;
}
