/* Selection kernels: where(cond, a, b) and masked_fill(x, mask, value). The
 * condition and mask arrive converted to the compute type (nonzero is true).
 * Both sides are loaded before the choice, so it compiles to a branch-free
 * blend: a branch on random conditions mispredicts half the time. */
#include "cpu.h"

#define DEFINE_SELECT_LOOPS(suffix, T)                                                       \
    static void where_##suffix(int64_t n, void *out, const void *const *in,                 \
                               const nb_op_args *args) {                                    \
        (void)args;                                                                         \
        T *restrict o = out;                                                                \
        const T *restrict cond = in[0], *restrict a = in[1], *restrict b = in[2];           \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T yes = a[i], no = b[i];                                                        \
            o[i] = cond[i] != 0 ? yes : no;                                                 \
        }                                                                                   \
    }                                                                                       \
    static void masked_fill_##suffix(int64_t n, void *out, const void *const *in,           \
                                     const nb_op_args *args) {                              \
        T *restrict o = out;                                                                \
        const T *restrict x = in[0], *restrict mask = in[1];                                \
        T value = (T)args->attrs.fill.value;                                                \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T kept = x[i];                                                                  \
            o[i] = mask[i] != 0 ? value : kept;                                             \
        }                                                                                   \
    }

DEFINE_SELECT_LOOPS(f32, float)
DEFINE_SELECT_LOOPS(f64, double)
DEFINE_SELECT_LOOPS(i64, int64_t)

nb_status nb__cpu_where(const nb_op_args *args) {
    nb_dtype compute = nb__cpu_compute_dtype(args->dtype);
    nb__cpu_map(args, compute,
                compute == NB_F32 ? where_f32 : compute == NB_F64 ? where_f64 : where_i64);
    return NB_OK;
}

nb_status nb__cpu_masked_fill(const nb_op_args *args) {
    nb_dtype compute = nb__cpu_compute_dtype(args->dtype);
    nb__cpu_map(args, compute,
                compute == NB_F32   ? masked_fill_f32
                : compute == NB_F64 ? masked_fill_f64
                                    : masked_fill_i64);
    return NB_OK;
}
