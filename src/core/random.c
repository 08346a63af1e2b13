/* Generators: a seed and a counter offset. Each draw reserves numel counters
 * atomically, so threads sharing a generator get disjoint streams. */
#include <stdlib.h>

#include "internal.h"
#include "random_internal.h"

static nb_generator default_generator = {0, 0};

nb_generator *nb__generator_or_default(nb_generator *gen) {
    return gen ? gen : &default_generator;
}

nb_generator *nb_generator_create(uint64_t seed) {
    nb_generator *gen = nb__malloc(sizeof *gen);
    if (!gen) {
        nb__error(NB_ERR_OOM, "nb_generator_create: out of host memory");
        return NULL;
    }
    gen->seed = seed;
    gen->offset = 0;
    return gen;
}

void nb_generator_free(nb_generator *gen) { free(gen); }

void nb_generator_seed(nb_generator *gen, uint64_t seed) {
    gen = nb__generator_or_default(gen);
    __atomic_store_n(&gen->seed, seed, __ATOMIC_RELAXED);
    __atomic_store_n(&gen->offset, 0, __ATOMIC_RELAXED);
}

void nb_manual_seed(uint64_t seed) { nb_generator_seed(NULL, seed); }

uint64_t nb_generator_offset(const nb_generator *gen) {
    return __atomic_load_n(&nb__generator_or_default((nb_generator *)gen)->offset,
                           __ATOMIC_RELAXED);
}

uint64_t nb_generator_seed_of(const nb_generator *gen) {
    return __atomic_load_n(&nb__generator_or_default((nb_generator *)gen)->seed, __ATOMIC_RELAXED);
}

void nb_generator_set_state(nb_generator *gen, uint64_t seed, uint64_t offset) {
    gen = nb__generator_or_default(gen);
    __atomic_store_n(&gen->seed, seed, __ATOMIC_RELAXED);
    __atomic_store_n(&gen->offset, offset, __ATOMIC_RELAXED);
}

uint64_t nb__generator_reserve(nb_generator *gen, uint64_t count, uint64_t *seed) {
    gen = nb__generator_or_default(gen);
    *seed = __atomic_load_n(&gen->seed, __ATOMIC_RELAXED);
    return __atomic_fetch_add(&gen->offset, count, __ATOMIC_RELAXED);
}
