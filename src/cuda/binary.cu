// Elementwise binary kernels over broadcast operands, the formulas of
// src/cpu/binary.c. Comparisons and logic give 0/1, stored as bool.
#include "map.cuh"

// base^exponent by squaring, wrapping; negative exponents truncate to zero
// except for bases 1 and -1.
__device__ __forceinline__ int64_t nb_int_pow(int64_t base, int64_t exponent) {
    if (exponent < 0) {
        if (base == 1) return 1;
        if (base == -1) return (exponent & 1) ? -1 : 1;
        return 0;
    }
    uint64_t result = 1, b = (uint64_t)base;
    for (uint64_t e = (uint64_t)exponent; e; e >>= 1, b *= b)
        if (e & 1) result *= b;
    return (int64_t)result;
}

struct nb_binary_fn {
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
            case NB_OP_MAXIMUM: return (a > b || a != a) ? a : b; // NaN from either side
            case NB_OP_MINIMUM: return (a < b || a != a) ? a : b;
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
