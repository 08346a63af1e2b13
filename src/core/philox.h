/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011) and the mapping of its words to the distributions
 * nabla draws. Plain inline C so the CPU and CUDA kernels share one stream
 * definition (docs/random.md): element i of a draw made at generator offset o
 * uses the counter o + i. */
#ifndef NABLA_PHILOX_H
#define NABLA_PHILOX_H

#include <math.h>
#include <stdint.h>

#include "oplist.h"

#if defined(__CUDACC__)
#define NB_HOST_DEVICE __host__ __device__
#else
#define NB_HOST_DEVICE
#endif

/* a * b + c rounded twice, never fused: nvcc contracts the expression into
 * one DFMA where gcc in C11 mode (-ffp-contract=off) does not, and the f64
 * draws must match to the last bit on both. */
NB_HOST_DEVICE static inline double nb_mul_add_rn(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(__dmul_rn(a, b), c);
#else
    return a * b + c;
#endif
}

typedef struct nb_philox_block {
    uint32_t w[4];
} nb_philox_block;

NB_HOST_DEVICE static inline nb_philox_block nb_philox4x32(const uint32_t counter[4],
                                                           const uint32_t key[2]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u; /* the Weyl sequence bumps the key each round */
        k1 += 0xBB67AE85u;
    }
    nb_philox_block out = {{c0, c1, c2, c3}};
    return out;
}

/* The four words for element index of a draw from (seed, offset). */
NB_HOST_DEVICE static inline nb_philox_block nb_philox_at(uint64_t seed, uint64_t offset,
                                                          uint64_t index) {
    uint64_t c = offset + index;
    uint32_t counter[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0u, 0u};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    return nb_philox4x32(counter, key);
}

/* 53 random bits from two words, as a double in [0, 1). */
NB_HOST_DEVICE static inline double nb_philox_unit(uint32_t hi, uint32_t lo) {
    uint64_t bits = ((uint64_t)hi << 21) ^ (uint64_t)(lo >> 11);
    return (double)bits * 0x1p-53;
}

NB_HOST_DEVICE static inline double nb_philox_uniform(nb_philox_block b, double low, double high) {
    return nb_mul_add_rn(high - low, nb_philox_unit(b.w[0], b.w[1]), low);
}

/* Box-Muller: sqrt(-2 ln u1) cos(2 pi u2) with u1 in (0, 1]. */
NB_HOST_DEVICE static inline double nb_philox_normal(nb_philox_block b, double mean, double std) {
    double u1 = 1.0 - nb_philox_unit(b.w[0], b.w[1]);
    double u2 = nb_philox_unit(b.w[2], b.w[3]);
    return nb_mul_add_rn(std, sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2), mean);
}

NB_HOST_DEVICE static inline uint64_t nb_philox_u64(nb_philox_block b) {
    return ((uint64_t)b.w[0] << 32) | b.w[1];
}

/* Element index of a draw of op (uniform, normal, bernoulli, randint) from
 * (seed, offset); a and b are the bounds, mean and std, or p. */
NB_HOST_DEVICE static inline double nb_philox_draw(nb_op op, uint64_t seed, uint64_t offset,
                                                   uint64_t index, double a, double b) {
    nb_philox_block block = nb_philox_at(seed, offset, index);
    switch (op) {
    case NB_OP_UNIFORM: return nb_philox_uniform(block, a, b);
    case NB_OP_NORMAL: return nb_philox_normal(block, a, b);
    case NB_OP_BERNOULLI: return nb_philox_unit(block.w[0], block.w[1]) < a ? 1.0 : 0.0;
    default: /* randint: a and b hold the bounds, exact below 2^53 */
        return a + (double)(nb_philox_u64(block) % (uint64_t)(b - a));
    }
}

#endif
