// The optimizer update kernel: a thread per element reads parameter,
// gradient and state once and writes parameter and state (the rules are in
// src/core/optim_update.h), in float (double for f64 parameters).
#include "../core/optim_update.h"
#include "cuda.cuh"

// overloads: nb_optim_update(attrs, p, g, s) for float and double
NB_DEFINE_OPTIM_UPDATE(float, nb_optim)
NB_DEFINE_OPTIM_UPDATE(double, nb_optim)

typedef struct nb_optim_args {
    char *param, *state[NB_OPTIM_SLOTS];
    const char *grad;
    nb_dtype param_dtype, grad_dtype, state_dtype;
    int64_t n;
} nb_optim_args;

template <typename C> __global__ void nb_optim_kernel(nb_optim_args a, nb_optim_attrs attrs) {
    int ps = nb_size_of(a.param_dtype), gs = nb_size_of(a.grad_dtype), ss = nb_size_of(a.state_dtype);
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += stride) {
        C s[NB_OPTIM_SLOTS];
        for (int k = 0; k < NB_OPTIM_SLOTS; k++)
            s[k] = a.state[k] ? nb_load<C>(a.state[k] + i * ss, a.state_dtype) : (C)0;
        C p = nb_optim_update(&attrs, attrs.kind, nb_load<C>(a.param + i * ps, a.param_dtype),
                              nb_load<C>(a.grad + i * gs, a.grad_dtype), s);
        for (int k = 0; k < NB_OPTIM_SLOTS; k++)
            if (a.state[k]) nb_store<C>(a.state[k] + i * ss, a.state_dtype, s[k]);
        nb_store<C>(a.param + i * ps, a.param_dtype, p);
    }
}

nb_status nb__cuda_optim_step(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    nb_tensor *param = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, param->storage->device.index, &ctx));
    nb_optim_args a;
    a.param = nb__data(param);
    a.grad = nb__data(args->in[0]);
    a.param_dtype = param->dtype;
    a.grad_dtype = args->in[0]->dtype;
    a.state_dtype = param->dtype == NB_F64 ? NB_F64 : NB_F32;
    for (int k = 0; k < NB_OPTIM_SLOTS; k++) a.state[k] = args->in[1 + k] ? nb__data(args->in[1 + k]) : NULL;
    a.n = nb_numel(param);
    unsigned blocks = nb__cuda_blocks(&ctx, a.n, NB_CUDA_THREADS);
    if (param->dtype == NB_F64)
        nb_optim_kernel<double><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(a, args->attrs.optim);
    else nb_optim_kernel<float><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(a, args->attrs.optim);
    return nb__cuda_launched(fn);
}
