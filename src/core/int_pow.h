/* Integer power shared by the CPU and CUDA kernels of NB_OP_POW. */
#ifndef NABLA_INT_POW_H
#define NABLA_INT_POW_H

#include <stdint.h>

#include "philox.h" /* NB_HOST_DEVICE */

/* base^exponent by squaring, wrapping; a negative exponent truncates toward
 * zero (1 and -1 keep their powers, everything else gives 0). */
NB_HOST_DEVICE static inline int64_t nb_int_pow(int64_t base, int64_t exponent) {
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

#endif
