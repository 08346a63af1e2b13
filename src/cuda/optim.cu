// Optimizer update kernels: a thread per element reads parameter, gradient
// and state once and writes parameter and state (src/ops/optim.c has the
// formulas), in float (double for f64 parameters).
#include "cuda.cuh"

typedef struct nb_optim_args {
    char *param, *s1, *s2;
    const char *grad;
    nb_dtype param_dtype, grad_dtype, state_dtype;
    int64_t n;
    bool adam, has_state;
} nb_optim_args;

template <typename C>
__global__ void nb_optim_kernel(nb_optim_args a, double lr, double momentum, double beta1,
                                double beta2, double eps, double wd, double bc1, double bc2,
                                bool nesterov, bool decoupled, bool first) {
    int ps = nb_size_of(a.param_dtype), gs = nb_size_of(a.grad_dtype), ss = nb_size_of(a.state_dtype);
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += step) {
        C p = nb_load<C>(a.param + i * ps, a.param_dtype);
        C g = nb_load<C>(a.grad + i * gs, a.grad_dtype);
        if (a.adam) {
            if (decoupled) p *= (C)(1 - lr * wd);
            else g += (C)wd * p;
            C m = (C)beta1 * nb_load<C>(a.s1 + i * ss, a.state_dtype) + (C)(1 - beta1) * g;
            C v = (C)beta2 * nb_load<C>(a.s2 + i * ss, a.state_dtype) + (C)(1 - beta2) * g * g;
            p -= (C)lr * (m / (C)bc1) / (sqrt(v / (C)bc2) + (C)eps);
            nb_store<C>(a.s1 + i * ss, a.state_dtype, m);
            nb_store<C>(a.s2 + i * ss, a.state_dtype, v);
        } else {
            g += (C)wd * p;
            if (a.has_state) {
                C buf = first ? g : (C)momentum * nb_load<C>(a.s1 + i * ss, a.state_dtype) + g;
                nb_store<C>(a.s1 + i * ss, a.state_dtype, buf);
                g = nesterov ? g + (C)momentum * buf : buf;
            }
            p -= (C)lr * g;
        }
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
    a.s1 = args->n_in > 1 ? nb__data(args->in[1]) : NULL;
    a.s2 = args->n_in > 2 ? nb__data(args->in[2]) : NULL;
    a.param_dtype = param->dtype;
    a.grad_dtype = args->in[0]->dtype;
    a.state_dtype = args->n_in > 1 ? args->in[1]->dtype : param->dtype;
    a.n = nb_numel(param);
    a.adam = args->op == NB_OP_ADAM_STEP;
    a.has_state = args->n_in > 1;
    const nb_attrs *at = &args->attrs;
    unsigned blocks = nb__cuda_blocks(&ctx, a.n, NB_CUDA_THREADS);
    if (param->dtype == NB_F64)
        nb_optim_kernel<double><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
            a, at->optim.lr, at->optim.momentum, at->optim.beta1, at->optim.beta2, at->optim.eps,
            at->optim.weight_decay, at->optim.bias_correction1, at->optim.bias_correction2,
            at->optim.nesterov, at->optim.decoupled, at->optim.first);
    else
        nb_optim_kernel<float><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
            a, at->optim.lr, at->optim.momentum, at->optim.beta1, at->optim.beta2, at->optim.eps,
            at->optim.weight_decay, at->optim.bias_correction1, at->optim.bias_correction2,
            at->optim.nesterov, at->optim.decoupled, at->optim.first);
    return nb__cuda_launched(fn);
}
