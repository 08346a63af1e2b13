/* Sort keys: an unsigned integer for each value whose integer order is the
 * value order, shared by the CPU and CUDA sort kernels so both order alike.
 *
 * Floats: the IEEE bits with the sign bit set for positives and every bit
 * flipped for negatives (Herf, "Radix tricks", 2001), after -0 is made +0
 * (they compare equal) and every NaN the all-ones key, above +inf (PyTorch
 * sorts NaN as the largest value). Signed integers: the sign bit flipped.
 * Unsigned integers and bool: the value. A key uses the low
 * nb_sort_key_bytes bytes; xor with nb_sort_key_mask reverses the order. */
#ifndef NABLA_SORT_KEY_H
#define NABLA_SORT_KEY_H

#include <stdbool.h>
#include <stdint.h>

#include <nabla/dtype.h>

#if defined(__CUDACC__)
#define NB_SORT_HD __host__ __device__
#else
#define NB_SORT_HD
#endif

NB_SORT_HD static inline int nb_sort_key_bytes(nb_dtype dtype) {
    switch (dtype) {
    case NB_F64: case NB_I64: return 8;
    case NB_F32: case NB_I32: return 4;
    case NB_F16: case NB_BF16: return 2;
    default: return 1;
    }
}

NB_SORT_HD static inline uint64_t nb_sort_key_mask(nb_dtype dtype) {
    int bytes = nb_sort_key_bytes(dtype);
    return bytes == 8 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * bytes)) - 1;
}

/* The key of a float's bits (width bits, exponent mask exp, mantissa mask man). */
NB_SORT_HD static inline uint64_t nb_float_key(uint64_t bits, int width, uint64_t exp, uint64_t man) {
    uint64_t sign = (uint64_t)1 << (width - 1);
    uint64_t all = width == 64 ? ~(uint64_t)0 : (sign << 1) - 1;
    if ((bits & exp) == exp && (bits & man)) return all; /* NaN */
    if ((bits & ~sign) == 0) bits = 0;                    /* -0 is +0 */
    return bits & sign ? ~bits & all : bits | sign;
}

NB_SORT_HD static inline uint64_t nb_sort_key(nb_dtype dtype, const char *p) {
    switch (dtype) {
    case NB_F64: return nb_float_key(*(const uint64_t *)p, 64, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull);
    case NB_F32: return nb_float_key(*(const uint32_t *)p, 32, 0x7F800000u, 0x007FFFFFu);
    case NB_F16: return nb_float_key(*(const uint16_t *)p, 16, 0x7C00u, 0x03FFu);
    case NB_BF16: return nb_float_key(*(const uint16_t *)p, 16, 0x7F80u, 0x007Fu);
    case NB_I64: return *(const uint64_t *)p ^ 0x8000000000000000ull;
    case NB_I32: return *(const uint32_t *)p ^ 0x80000000u;
    case NB_U8: return *(const uint8_t *)p;
    default: return *(const uint8_t *)p != 0;
    }
}

/* Whether key is a NaN's (float dtypes: the all-ones key). */
NB_SORT_HD static inline bool nb_sort_key_is_nan(nb_dtype dtype, uint64_t key) {
    bool is_float = dtype == NB_F32 || dtype == NB_F64 || dtype == NB_F16 || dtype == NB_BF16;
    return is_float && key == nb_sort_key_mask(dtype);
}

/* The first position in row[0 .. m) (values of dtype, ascending) where a
 * value of key v would go: past every element < v (left) or <= v (right). A
 * NaN element or value sends the search right, as PyTorch's comparisons
 * !(element >= v) do. */
NB_SORT_HD static inline int64_t nb_sort_insertion_point(nb_dtype dtype, const char *row, int64_t m,
                                                         uint64_t v, bool right) {
    int size = nb_sort_key_bytes(dtype);
    bool v_nan = nb_sort_key_is_nan(dtype, v);
    int64_t lo = 0, hi = m;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        uint64_t key = nb_sort_key(dtype, row + mid * size);
        if (v_nan || nb_sort_key_is_nan(dtype, key) || key < v || (right && key == v)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

#endif
