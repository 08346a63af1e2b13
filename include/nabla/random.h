/* Random numbers from a counter-based generator (Philox4x32-10, Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC 2011). Element i of a draw
 * depends only on (seed, offset + i), so every device produces the same stream;
 * docs/random.md gives the exact recipe.
 *
 *   nb_generator *g = nb_generator_create(42);
 *   nb_tensor *w = nb_normal(2, shape, 0.0, 0.02, NB_F32, nb_cpu(), g);
 *   nb_generator_free(g);
 *
 * A NULL generator means the default one of the process (nb_manual_seed).
 */
#ifndef NABLA_RANDOM_H
#define NABLA_RANDOM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_generator nb_generator;

/* Owned by the caller: free with nb_generator_free. NULL on allocation failure. */
nb_generator *nb_generator_create(uint64_t seed);
void nb_generator_free(nb_generator *gen);
/* Restarts a generator (NULL: the default one) at seed with offset 0. */
void nb_generator_seed(nb_generator *gen, uint64_t seed);
void nb_manual_seed(uint64_t seed);
/* Counter position: the number of elements drawn since the seed. */
uint64_t nb_generator_offset(const nb_generator *gen);
/* The seed, and a generator's whole state (seed and offset) restored, as
 * checkpoints do (include/nabla/io.h). */
uint64_t nb_generator_seed_of(const nb_generator *gen);
void nb_generator_set_state(nb_generator *gen, uint64_t seed, uint64_t offset);

/* Uniform in [low, high); float dtypes. */
nb_tensor *nb_uniform(int ndim, const int64_t *shape, double low, double high, nb_dtype dtype,
                      nb_device device, nb_generator *gen);
/* Normal with mean and std (Box-Muller); float dtypes. */
nb_tensor *nb_normal(int ndim, const int64_t *shape, double mean, double std, nb_dtype dtype,
                     nb_device device, nb_generator *gen);
/* 1 with probability p, else 0; any dtype. */
nb_tensor *nb_bernoulli(int ndim, const int64_t *shape, double p, nb_dtype dtype, nb_device device,
                        nb_generator *gen);
/* Integers uniform in [low, high); any dtype that holds them. */
nb_tensor *nb_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, nb_dtype dtype,
                      nb_device device, nb_generator *gen);
/* A random permutation of 0 .. n-1 (integer or float dtype). */
nb_tensor *nb_randperm(int64_t n, nb_dtype dtype, nb_device device, nb_generator *gen);
/* num_samples i64 category indices per row of weights [categories] or
 * [rows, categories] (float, >= 0, finite, not all 0 in a row; they need not
 * sum to 1): [num_samples] or [rows, num_samples]. Each sample picks i with
 * probability w_i / sum(w); without replacement (at most as many samples as
 * positive weights) each pick leaves the row for the next. Uses rows *
 * num_samples counters of gen, the same draws on every device
 * (docs/random.md). */
nb_tensor *nb_multinomial(const nb_tensor *weights, int64_t num_samples, bool replacement,
                          nb_generator *gen);

#ifdef __cplusplus
}
#endif
#endif
