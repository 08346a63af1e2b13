// Elementwise binary kernels over broadcast operands, the formulas of
// src/cpu/binary.c. Comparisons and logic give 0/1, stored as bool.
#include "../core/int_pow.h"
#include "map.cuh"

struct nb_binary_fn {
    static constexpr int inputs = 2;
    nb_op op;

    template <typename C> __device__ C operator()(const C *in) const {
        C a = in[0], b = in[1];
        switch (op) {
        case NB_OP_EQ: return a == b;
        case NB_OP_NE: return a != b;
        case NB_OP_LT: return a < b;
        case NB_OP_LE: return a <= b;
        case NB_OP_GT: return a > b;
        case NB_OP_GE: return a >= b;
        case NB_OP_LOGICAL_AND: return (a != 0) && (b != 0);
        case NB_OP_LOGICAL_OR: return (a != 0) || (b != 0);
        case NB_OP_LOGICAL_XOR: return (a != 0) != (b != 0);
        default: break;
        }
        if constexpr (nb_is_float_v<C>) {
            switch (op) {
            case NB_OP_ADD: return a + b;
            case NB_OP_SUB: return a - b;
            case NB_OP_MUL: return a * b;
            case NB_OP_DIV: return a / b;
            case NB_OP_POW: return pow(a, b);
            // NaN from either side; -0 below +0 in either order (docs/ops.md)
            case NB_OP_MAXIMUM: return (a > b || a != a || (a == b && !signbit(a))) ? a : b;
            case NB_OP_MINIMUM: return (a < b || a != a || (a == b && signbit(a))) ? a : b;
            default: return a;
            }
        } else {
            switch (op) {
            case NB_OP_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
            case NB_OP_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
            case NB_OP_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
            case NB_OP_POW: return nb_int_pow(a, b);
            case NB_OP_MAXIMUM: return a > b ? a : b;
            case NB_OP_MINIMUM: return a < b ? a : b;
            default: return a;
            }
        }
    }
};

nb_status nb__cuda_binary(const nb_op_args *args) {
    return nb__cuda_map(args, nb_binary_fn{args->op});
}
