/* Optimizer update kernels (src/ops/optim.c has the formulas): chunks of
 * the parameter, gradient and state converted to double, updated, written
 * back. */
#include <math.h>

#include "cpu.h"

/* The values of one chunk: p, g and up to two state tensors. */
typedef struct chunk {
    double p[NB_CPU_CHUNK], g[NB_CPU_CHUNK], s1[NB_CPU_CHUNK], s2[NB_CPU_CHUNK];
} chunk;

static void update_sgd(const nb_attrs *a, chunk *c, int64_t n, bool has_buffer) {
    for (int64_t i = 0; i < n; i++) {
        double g = c->g[i] + a->optim.weight_decay * c->p[i];
        if (has_buffer) {
            c->s1[i] = a->optim.first ? g : a->optim.momentum * c->s1[i] + g;
            g = a->optim.nesterov ? g + a->optim.momentum * c->s1[i] : c->s1[i];
        }
        c->p[i] -= a->optim.lr * g;
    }
}

static void update_adam(const nb_attrs *a, chunk *c, int64_t n) {
    double b1 = a->optim.beta1, b2 = a->optim.beta2, lr = a->optim.lr, wd = a->optim.weight_decay;
    for (int64_t i = 0; i < n; i++) {
        double g = c->g[i];
        if (a->optim.decoupled) c->p[i] *= 1 - lr * wd;
        else g += wd * c->p[i];
        c->s1[i] = b1 * c->s1[i] + (1 - b1) * g;
        c->s2[i] = b2 * c->s2[i] + (1 - b2) * g * g;
        double denom = sqrt(c->s2[i] / a->optim.bias_correction2) + a->optim.eps;
        c->p[i] -= lr * (c->s1[i] / a->optim.bias_correction1) / denom;
    }
}

/* Element offset start of t, as a byte pointer. */
static char *at(const nb_tensor *t, int64_t start) {
    return nb__data(t) + start * (int64_t)nb_dtype_size(t->dtype);
}

nb_status nb__cpu_optim_step(const nb_op_args *args) {
    nb_tensor *param = args->out;
    const nb_tensor *grad = args->in[0], *s1 = args->n_in > 1 ? args->in[1] : NULL;
    const nb_tensor *s2 = args->n_in > 2 ? args->in[2] : NULL;
    int64_t n = nb_numel(param), chunks = (n + NB_CPU_CHUNK - 1) / NB_CPU_CHUNK;
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t k = 0; k < chunks; k++) {
        chunk c;
        int64_t start = k * NB_CPU_CHUNK, len = n - start < NB_CPU_CHUNK ? n - start : NB_CPU_CHUNK;
        nb__cpu_convert(NB_F64, c.p, 1, param->dtype, at(param, start), 1, len);
        nb__cpu_convert(NB_F64, c.g, 1, grad->dtype, at(grad, start), 1, len);
        if (s1) nb__cpu_convert(NB_F64, c.s1, 1, s1->dtype, at(s1, start), 1, len);
        if (s2) nb__cpu_convert(NB_F64, c.s2, 1, s2->dtype, at(s2, start), 1, len);
        if (args->op == NB_OP_ADAM_STEP) update_adam(&args->attrs, &c, len);
        else update_sgd(&args->attrs, &c, len, s1 != NULL);
        nb__cpu_convert(param->dtype, at(param, start), 1, NB_F64, c.p, 1, len);
        if (s1) nb__cpu_convert(s1->dtype, at(s1, start), 1, NB_F64, c.s1, 1, len);
        if (s2) nb__cpu_convert(s2->dtype, at(s2, start), 1, NB_F64, c.s2, 1, len);
    }
    return NB_OK;
}
