/* Multinomial sampling with the same draws on every device. A row's weights
 * become integers, q_i = round(w_i / max_j w_j * 2^bits) (at least 1 for a
 * positive weight, so no possible category becomes impossible), whose sums
 * are exact in any order; sample s of row r takes the Philox block of
 * counter offset + r * samples + s, turns its 53 bits u into a target
 * floor(u * total / 2^53) in [0, total), and picks the first category whose
 * inclusive prefix sum of q exceeds it. Without replacement the picked
 * category's q is then removed from the row (sequential sampling in
 * proportion to the weights left, as PyTorch's). */
#ifndef NABLA_MULTINOMIAL_H
#define NABLA_MULTINOMIAL_H

#include "philox.h"

/* Fraction bits of q: the most for which categories * 2^bits stays below
 * 2^63, at most 52 (a double's). */
NB_HOST_DEVICE static inline int nb_multinomial_bits(int64_t categories) {
    int log2 = 0;
    while (((int64_t)1 << log2) < categories) log2++;
    int bits = 62 - log2;
    return bits < 52 ? bits : 52;
}

/* q of a weight w >= 0 of a row whose largest weight is max > 0. */
NB_HOST_DEVICE static inline uint64_t nb_multinomial_weight(double w, double max, int bits) {
    if (!(w > 0)) return 0;
    double scaled = w / max * (double)((uint64_t)1 << bits);
    uint64_t q = (uint64_t)(scaled + 0.5);
    return q ? q : 1;
}

/* The high 64 bits of a * b. */
NB_HOST_DEVICE static inline uint64_t nb_mul_hi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32, b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
    uint64_t low = a_lo * b_lo, mid1 = a_hi * b_lo, mid2 = a_lo * b_hi;
    uint64_t carry = ((low >> 32) + (mid1 & 0xFFFFFFFFu) + (mid2 & 0xFFFFFFFFu)) >> 32;
    return a_hi * b_hi + (mid1 >> 32) + (mid2 >> 32) + carry;
#endif
}

/* The target in [0, total) of draw index (row * samples + sample). */
NB_HOST_DEVICE static inline uint64_t nb_multinomial_target(uint64_t seed, uint64_t offset,
                                                            uint64_t index, uint64_t total) {
    nb_philox_block b = nb_philox_at(seed, offset, index);
    uint64_t bits = ((uint64_t)b.w[0] << 21) ^ (uint64_t)(b.w[1] >> 11); /* nb_philox_unit's */
    return nb_mul_hi64(bits << 11, total);
}

/* Row problems the kernels report (the first row with one, and what). */
typedef enum nb_multinomial_problem {
    NB_MULTINOMIAL_OK,
    NB_MULTINOMIAL_BAD_WEIGHT, /* negative, infinite or NaN */
    NB_MULTINOMIAL_ZERO_SUM,
    NB_MULTINOMIAL_TOO_FEW, /* fewer positive weights than samples without replacement */
} nb_multinomial_problem;

#endif
