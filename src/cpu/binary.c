/* Elementwise binary kernels over broadcast operands. Comparisons and logic
 * produce 0/1 in the compute type; the engine stores them as bool. */
#include <tgmath.h>

#include "../core/int_pow.h"
#include "cpu.h"

/* maximum and minimum propagate NaN from either side, as in PyTorch. */
#define BINARY_FLOAT_OPS(X)                               \
    X(ADD, a + b)                                         \
    X(SUB, a - b)                                         \
    X(MUL, a * b)                                         \
    X(DIV, a / b)                                         \
    X(POW, pow(a, b))                                     \
    X(MAXIMUM, (a > b || a != a || (a == b && !signbit(a))) ? a : b) \
    X(MINIMUM, (a < b || a != a || (a == b && signbit(a))) ? a : b)  \
    X(EQ, a == b)                                         \
    X(NE, a != b)                                         \
    X(LT, a < b)                                          \
    X(LE, a <= b)                                         \
    X(GT, a > b)                                          \
    X(GE, a >= b)                                         \
    X(LOGICAL_AND, (a != 0) && (b != 0))                  \
    X(LOGICAL_OR, (a != 0) || (b != 0))                   \
    X(LOGICAL_XOR, (a != 0) != (b != 0))

/* Integer arithmetic wraps (through uint64) instead of overflowing. */
#define BINARY_INT_OPS(X)                                 \
    X(ADD, (int64_t)((uint64_t)a + (uint64_t)b))          \
    X(SUB, (int64_t)((uint64_t)a - (uint64_t)b))          \
    X(MUL, (int64_t)((uint64_t)a * (uint64_t)b))          \
    X(POW, nb_int_pow(a, b))                                 \
    X(MAXIMUM, a > b ? a : b)                             \
    X(MINIMUM, a < b ? a : b)                             \
    X(EQ, a == b)                                         \
    X(NE, a != b)                                         \
    X(LT, a < b)                                          \
    X(LE, a <= b)                                         \
    X(GT, a > b)                                          \
    X(GE, a >= b)                                         \
    X(LOGICAL_AND, (a != 0) && (b != 0))                  \
    X(LOGICAL_OR, (a != 0) || (b != 0))                   \
    X(LOGICAL_XOR, (a != 0) != (b != 0))

#define BINARY_CASE(ID, expr)                                  \
    case NB_OP_##ID:                                           \
        for (int64_t i = 0; i < n; i++) {                      \
            elem a = x[i], b = y[i];                              \
            o[i] = (elem)(expr);                                  \
        }                                                      \
        break;

#define DEFINE_BINARY_LOOP(name, T, OPS)                                                    \
    static void name(int64_t n, void *out, const void *const *in, const nb_op_args *args) { \
        typedef T elem;                                                                     \
        T *restrict o = out;                                                                \
        const T *restrict x = in[0];                                                        \
        const T *restrict y = in[1];                                                        \
        switch (args->op) {                                                                 \
            OPS(BINARY_CASE)                                                                \
        default: NB_ASSERT(!"binary op without a CPU loop");                                \
        }                                                                                   \
    }

DEFINE_BINARY_LOOP(binary_f32, float, BINARY_FLOAT_OPS)
DEFINE_BINARY_LOOP(binary_f64, double, BINARY_FLOAT_OPS)
DEFINE_BINARY_LOOP(binary_i64, int64_t, BINARY_INT_OPS)

nb_status nb__cpu_binary(const nb_op_args *args) {
    nb_dtype compute = nb__cpu_compute_dtype(args->dtype);
    nb__cpu_map(args, compute,
                compute == NB_F32 ? binary_f32 : compute == NB_F64 ? binary_f64 : binary_i64);
    return NB_OK;
}
