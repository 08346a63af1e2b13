/* What the examples share: exiting with nabla's message when a call fails,
 * data parallelism, checkpoints and a monotonic clock. Define EXAMPLE_NAME (the program's name, for the
 * messages) before including this first. */
#ifndef NABLA_EXAMPLE_H
#define NABLA_EXAMPLE_H

#define _POSIX_C_SOURCE 200809L
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The newline ends a progress line left open with \r. */
#define CHECK(expr)                                                             \
    do {                                                                        \
        if (!(expr)) {                                                          \
            fprintf(stderr, "\n" EXAMPLE_NAME ": %s\n", nb_last_error());       \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

/* --distributed: a communicator over the job's ranks (mpirun -np N), and
 * every rank but 0 silenced, so that the job prints what one process would
 * (errors still reach stderr from any rank). The examples train on the CPU
 * then, each rank taking global_batch / N of every batch. */
static inline nb_comm *example_distributed(nb_device device, int64_t global_batch, int *rank, int *world) {
    nb_comm *comm;
    CHECK(nb_dist_init(NULL, &comm) == NB_OK);
    *rank = nb_dist_rank(comm);
    *world = nb_dist_world_size(comm);
    if (device.type != NB_DEVICE_CPU || global_batch % *world) {
        fprintf(stderr, EXAMPLE_NAME ": --distributed needs --device cpu and a --batch divisible by the %d "
                        "ranks, got %lld\n", *world, (long long)global_batch);
        exit(2);
    }
    if (*rank != 0 && !freopen("/dev/null", "w", stdout)) exit(1);
    return comm;
}

/* --save and --resume: one checkpoint file of everything a run needs to go
 * on bit for bit (include/nabla/io.h). Rank 0 writes it (every rank holds
 * the same state); every rank reads it. */
typedef struct example_state {
    nb_module *model;
    nb_optimizer *const *optimizers;
    int n_optimizers;
    nb_generator *const *generators;
    int n_generators;
} example_state;

static inline void example_save(const char *path, const example_state *s, int64_t step, int rank) {
    if (!path || rank != 0) return;
    nb_checkpoint c = {.model = s->model, .optimizers = s->optimizers, .n_optimizers = s->n_optimizers,
                       .generators = s->generators, .n_generators = s->n_generators, .step = step};
    CHECK(nb_checkpoint_save(path, &c) == NB_OK);
}

/* The step the checkpoint at path was saved after (0 without path). */
static inline int64_t example_resume(const char *path, const example_state *s) {
    if (!path) return 0;
    nb_checkpoint c = {.model = s->model, .optimizers = s->optimizers, .n_optimizers = s->n_optimizers,
                       .generators = s->generators, .n_generators = s->n_generators};
    CHECK(nb_checkpoint_load(path, &c) == NB_OK);
    printf("resumed from %s after step %lld\n", path, (long long)c.step);
    return c.step;
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
