/* The optimizer update kernel (the rules are in src/core/optim_update.h):
 * chunks of the parameter, gradient and state converted to double, updated
 * element by element, written back. */
#include "../core/optim_update.h"
#include "cpu.h"

NB_DEFINE_OPTIM_UPDATE(double, nb_optim_f64)

/* The values of one chunk: p, g and the state slots. */
typedef struct chunk {
    double p[NB_CPU_CHUNK], g[NB_CPU_CHUNK], s[NB_OPTIM_SLOTS][NB_CPU_CHUNK];
} chunk;

/* Element offset start of t, as a byte pointer. */
static char *at(const nb_tensor *t, int64_t start) {
    return nb__data(t) + start * (int64_t)nb_dtype_size(t->dtype);
}

static void update(const nb_optim_attrs *a, chunk *c, int64_t len) {
    for (int64_t i = 0; i < len; i++) {
        double s[NB_OPTIM_SLOTS] = {c->s[0][i], c->s[1][i], c->s[2][i]};
        c->p[i] = nb_optim_f64_update(a, c->p[i], c->g[i], s);
        for (int k = 0; k < NB_OPTIM_SLOTS; k++) c->s[k][i] = s[k];
    }
}

nb_status nb__cpu_optim_step(const nb_op_args *args) {
    nb_tensor *param = args->out;
    const nb_tensor *grad = args->in[0], *const *state = args->in + 1;
    int64_t n = nb_numel(param), chunks = (n + NB_CPU_CHUNK - 1) / NB_CPU_CHUNK;
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t k = 0; k < chunks; k++) {
        chunk c;
        int64_t start = k * NB_CPU_CHUNK, len = n - start < NB_CPU_CHUNK ? n - start : NB_CPU_CHUNK;
        nb__cpu_convert(NB_F64, c.p, 1, param->dtype, at(param, start), 1, len);
        nb__cpu_convert(NB_F64, c.g, 1, grad->dtype, at(grad, start), 1, len);
        for (int s = 0; s < NB_OPTIM_SLOTS; s++) {
            if (state[s]) nb__cpu_convert(NB_F64, c.s[s], 1, state[s]->dtype, at(state[s], start), 1, len);
            else for (int64_t i = 0; i < len; i++) c.s[s][i] = 0;
        }
        update(&args->attrs.optim, &c, len);
        nb__cpu_convert(param->dtype, at(param, start), 1, NB_F64, c.p, 1, len);
        for (int s = 0; s < NB_OPTIM_SLOTS; s++)
            if (state[s]) nb__cpu_convert(state[s]->dtype, at(state[s], start), 1, NB_F64, c.s[s], 1, len);
    }
    return NB_OK;
}
