#ifndef NABLA_RANDOM_INTERNAL_H
#define NABLA_RANDOM_INTERNAL_H

#include "internal.h"

struct nb_generator {
    uint64_t seed;
    uint64_t offset; /* counters used since the seed */
};

nb_generator *nb__generator_or_default(nb_generator *gen);
/* Reserves count counters; returns the first and writes the seed. */
uint64_t nb__generator_reserve(nb_generator *gen, uint64_t count, uint64_t *seed);

#endif
