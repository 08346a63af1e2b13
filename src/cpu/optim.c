/* The optimizer update kernel (the rules are in src/core/optim_update.h),
 * in the parameter's type (float for f32, double for f64). f32 and f64
 * parameters with gradients of their dtype are updated in place, a loop per
 * rule so that it inlines and vectorizes; other dtypes go through chunks
 * converted to float and back. */
#include "../core/optim_update.h"
#include "cpu.h"

NB_DEFINE_OPTIM_UPDATE(float, nb_optim_f32)
NB_DEFINE_OPTIM_UPDATE(double, nb_optim_f64)

/* n elements of p, g and the state slots s (an absent slot points at
 * scratch the rule neither reads nor needs). */
#define OPTIM_CASE(T, name, KIND)                                                              \
    case KIND:                                                                                 \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T s[NB_OPTIM_SLOTS] = {s0[i], s1[i], s2[i]};                                       \
            p[i] = name##_update(a, KIND, p[i], g[i], s);                                      \
            s0[i] = s[0], s1[i] = s[1], s2[i] = s[2];                                          \
        }                                                                                      \
        break;
#define DEFINE_OPTIM_LOOP(T, name)                                                             \
    static void name##_loop(const nb_optim_attrs *a, int64_t n, T *restrict p, const T *restrict g, \
                            T *restrict s0, T *restrict s1, T *restrict s2) {                  \
        switch (a->kind) {                                                                     \
            OPTIM_CASE(T, name, NB_OPTIM_SGD)                                                  \
            OPTIM_CASE(T, name, NB_OPTIM_ADAM)                                                 \
            OPTIM_CASE(T, name, NB_OPTIM_ADAMW)                                                \
            OPTIM_CASE(T, name, NB_OPTIM_ADAGRAD)                                              \
            OPTIM_CASE(T, name, NB_OPTIM_ADADELTA)                                             \
            OPTIM_CASE(T, name, NB_OPTIM_RMSPROP)                                              \
            OPTIM_CASE(T, name, NB_OPTIM_ADAMAX)                                               \
            OPTIM_CASE(T, name, NB_OPTIM_NADAM)                                                \
            OPTIM_CASE(T, name, NB_OPTIM_RADAM)                                                \
            OPTIM_CASE(T, name, NB_OPTIM_LION)                                                 \
            OPTIM_CASE(T, name, NB_OPTIM_FTRL)                                                 \
        default: NB_ASSERT(!"an optimizer rule without a CPU loop");                           \
        }                                                                                      \
    }
DEFINE_OPTIM_LOOP(float, nb_optim_f32)
DEFINE_OPTIM_LOOP(double, nb_optim_f64)

/* Element offset start of t (NULL for NULL), as a byte pointer. */
static char *at(const nb_tensor *t, int64_t start) {
    return t ? nb__data(t) + start * (int64_t)nb_dtype_size(t->dtype) : NULL;
}

/* Room for the absent slots of a chunk, one each (the loop's pointers are
 * restrict). */
typedef struct scratch {
    double s[NB_OPTIM_SLOTS][NB_CPU_CHUNK];
} scratch;

/* Elements [start, start + len) of the tensors, their absent slots in
 * scratch (len <= NB_CPU_CHUNK), updated where they lie. */
static void update_in_place(const nb_op_args *args, int64_t start, int64_t len, scratch *room) {
    const nb_tensor *const *state = args->in + 1;
    char *slots[NB_OPTIM_SLOTS];
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) slots[s] = state[s] ? at(state[s], start) : (char *)room->s[s];
    char *p = at(args->out, start), *g = at(args->in[0], start);
    if (args->out->dtype == NB_F64)
        nb_optim_f64_loop(&args->attrs.optim, len, (double *)p, (const double *)g, (double *)slots[0],
                          (double *)slots[1], (double *)slots[2]);
    else
        nb_optim_f32_loop(&args->attrs.optim, len, (float *)p, (const float *)g, (float *)slots[0],
                          (float *)slots[1], (float *)slots[2]);
}

/* The values of one converted chunk: p, g and the state slots, in float. */
typedef struct chunk {
    float p[NB_CPU_CHUNK], g[NB_CPU_CHUNK], s[NB_OPTIM_SLOTS][NB_CPU_CHUNK];
} chunk;

/* The same through float copies, for parameters and gradients of other dtypes. */
static void update_converted(const nb_op_args *args, int64_t start, int64_t len, chunk *c) {
    nb_tensor *param = args->out;
    const nb_tensor *grad = args->in[0], *const *state = args->in + 1;
    nb__cpu_convert(NB_F32, c->p, 1, param->dtype, at(param, start), 1, len);
    nb__cpu_convert(NB_F32, c->g, 1, grad->dtype, at(grad, start), 1, len);
    for (int s = 0; s < NB_OPTIM_SLOTS; s++)
        if (state[s]) nb__cpu_convert(NB_F32, c->s[s], 1, state[s]->dtype, at(state[s], start), 1, len);
    nb_optim_f32_loop(&args->attrs.optim, len, c->p, c->g, c->s[0], c->s[1], c->s[2]);
    nb__cpu_convert(param->dtype, at(param, start), 1, NB_F32, c->p, 1, len);
    for (int s = 0; s < NB_OPTIM_SLOTS; s++)
        if (state[s]) nb__cpu_convert(state[s]->dtype, at(state[s], start), 1, NB_F32, c->s[s], 1, len);
}

nb_status nb__cpu_optim_step(const nb_op_args *args) {
    nb_tensor *param = args->out;
    /* the state is f32, f64 for f64 parameters (src/ops/optim.c checks) */
    bool direct = (param->dtype == NB_F32 || param->dtype == NB_F64) && args->in[0]->dtype == param->dtype;
    int64_t n = nb_numel(param), chunks = (n + NB_CPU_CHUNK - 1) / NB_CPU_CHUNK;
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t k = 0; k < chunks; k++) {
        union {
            scratch room;
            chunk converted;
        } local;
        int64_t start = k * NB_CPU_CHUNK, len = n - start < NB_CPU_CHUNK ? n - start : NB_CPU_CHUNK;
        if (direct) update_in_place(args, start, len, &local.room);
        else update_converted(args, start, len, &local.converted);
    }
    return NB_OK;
}
