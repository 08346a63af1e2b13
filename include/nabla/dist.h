/* Collectives between processes, for data-parallel training: a communicator
 * over MPI (the launcher: mpirun, or srun under Slurm) that moves CPU tensors
 * over MPI and CUDA tensors over NCCL.
 *
 *   nb_comm *comm;
 *   if (nb_dist_init(&(nb_comm_options){.timeout = 60}, &comm) != NB_OK) ...
 *   nb_dist_all_reduce(comm, grad, grad, NB_REDUCE_AVG, NULL);  // in place, waits
 *   nb_dist_work *work;
 *   nb_dist_all_reduce(comm, x, y, NB_REDUCE_SUM, &work);      // starts it
 *   ...                                                          // compute meanwhile
 *   nb_dist_wait(work);
 *   nb_dist_work_free(work);
 *   nb_dist_free(comm);
 *
 * Every rank calls the same collectives in the same order. Each call checks
 * first that the ranks agree on the collective, dtype, element count, op and
 * root (one small all-reduce; .unchecked skips it), so a mismatch is an
 * NB_ERR_DIST naming both sides instead of a hang or garbage. A collective
 * that has not completed within the communicator's timeout fails with
 * NB_ERR_DIST (a rank died or stopped answering); the communicator is then
 * broken and every later call fails at once. A build without MPI
 * (-DNABLA_MPI=OFF) fails every call with NB_ERR_UNSUPPORTED. */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_comm nb_comm;
typedef struct nb_dist_work nb_dist_work;

typedef enum nb_reduce_op {
    NB_REDUCE_SUM,
    NB_REDUCE_AVG, /* the sum divided by the world size; float dtypes only */
    NB_REDUCE_MAX,
    NB_REDUCE_MIN,
    NB_REDUCE_PROD,
} nb_reduce_op;

typedef struct nb_comm_options {
    double timeout; /* seconds a collective may take; 0 means 300 */
    bool unchecked; /* skip the agreement check before each collective */
} nb_comm_options;

/* A communicator over every process of the job (MPI_COMM_WORLD), calling
 * MPI_Init first if nobody has. options may be NULL. */
nb_status nb_dist_init(const nb_comm_options *options, nb_comm **out);
/* Frees comm (after its last collective); the last communicator nabla made
 * finalizes MPI if nabla initialized it. */
void nb_dist_free(nb_comm *comm);

int nb_dist_rank(const nb_comm *comm);       /* 0 .. world_size - 1; -1 for NULL */
int nb_dist_world_size(const nb_comm *comm); /* 0 for NULL */
int nb_dist_local_rank(const nb_comm *comm); /* the rank among this machine's processes */

/* Collectives. in and out are tensors of one dtype on one device, out
 * contiguous; out may be in (in place). work NULL waits for the result;
 * else *work is a handle to wait on, test and free, and the tensors must
 * stay alive and untouched until it completes.
 *  all_reduce:     out = op over the ranks of in (same shape)
 *  broadcast:      t = root's t on every rank
 *  all_gather:     out = the ranks' in concatenated along dim 0 (out has
 *                  world_size times in's first dim)
 *  reduce_scatter: out = rank r's slice along dim 0 of op over the ranks of
 *                  in (in has world_size times out's first dim) */
nb_status nb_dist_all_reduce(nb_comm *comm, const nb_tensor *in, nb_tensor *out, nb_reduce_op op,
                             nb_dist_work **work);
nb_status nb_dist_broadcast(nb_comm *comm, nb_tensor *t, int root, nb_dist_work **work);
nb_status nb_dist_all_gather(nb_comm *comm, const nb_tensor *in, nb_tensor *out, nb_dist_work **work);
nb_status nb_dist_reduce_scatter(nb_comm *comm, const nb_tensor *in, nb_tensor *out, nb_reduce_op op,
                                 nb_dist_work **work);
/* Waits until every rank has called it. */
nb_status nb_dist_barrier(nb_comm *comm);

/* Waits for work (at most the communicator's timeout). */
nb_status nb_dist_wait(nb_dist_work *work);
/* *done = whether work has completed (its status is then nb_dist_wait's). */
nb_status nb_dist_test(nb_dist_work *work, bool *done);
/* Waits for work if it is still running, then frees it. */
void nb_dist_work_free(nb_dist_work *work);

const char *nb_reduce_op_name(nb_reduce_op op); /* "sum", ... */

#ifdef __cplusplus
}
#endif
#endif
