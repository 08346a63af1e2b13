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
 * NB_ERR_DIST naming both sides instead of a hang or garbage. An
 * asynchronous (or CUDA) collective that has not completed within the
 * communicator's timeout fails with NB_ERR_DIST (a rank died or stopped
 * answering); the communicator is then broken and every later call fails at
 * once. A blocking CPU collective runs on the calling thread, and past the
 * timeout ends the job (MPI_Abort) with a message. CPU tensors go over MPI; CUDA
 * tensors over NCCL (builds with CUDA and NCCL), on a stream of the
 * communicator's own ordered after the caller's by CUDA events, the
 * caller's stream waiting for the result at nb_dist_wait: the host never
 * waits for the device. A build without MPI (-DNABLA_MPI=OFF) fails every
 * call with NB_ERR_UNSUPPORTED. */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include "nn.h"
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

/* ---- SyncBatchNorm ----
 *
 * nb_batch_norm whose training statistics are those of every rank's batch
 * together: forward gathers each rank's per-channel count, mean and m2 in
 * one collective (uneven batches, an empty one included, give the exact
 * global statistics; running statistics take the global unbiased variance),
 * backward all-reduces the two per-channel gradient sums in one. The weight
 * and bias gradients are this rank's (data parallelism averages them).
 * Evaluation and a world of one communicate nothing. Every rank must call
 * it alike. */
nb_tensor *nb_sync_batch_norm(const nb_tensor *x, nb_tensor *running_mean, nb_tensor *running_var,
                              const nb_tensor *weight, const nb_tensor *bias, bool training, double momentum,
                              double eps, nb_comm *comm);
/* BatchNorm1d / BatchNorm2d modules over comm ("SyncBatchNorm"). */
nb_module *nb_nn_sync_batch_norm1d(int64_t features, double eps, double momentum, bool affine, nb_dtype dtype,
                                   nb_device device, nb_comm *comm);
nb_module *nb_nn_sync_batch_norm2d(int64_t channels, double eps, double momentum, bool affine, nb_dtype dtype,
                                   nb_device device, nb_comm *comm);
/* Makes every BatchNorm1d and BatchNorm2d of model (its children too) a
 * SyncBatchNorm over comm, keeping its parameters and statistics; returns
 * how many, or -1 with an error. */
int nb_nn_convert_sync_batch_norm(nb_module *model, nb_comm *comm);

/* ---- data parallelism (PyTorch's DistributedDataParallel) ----
 *
 *   nb_ddp *ddp;
 *   nb_ddp_create(model, comm, NULL, &ddp);  // broadcasts rank 0's parameters
 *   for each step:
 *       loss = ...forward on this rank's shard...;
 *       nb_ddp_backward(ddp, loss, NULL);    // buckets' all-reduces start during backward;
 *                                            // then the gradients are the ranks' average
 *       nb_optimizer_step(opt);
 *
 * Gradients are averaged in buckets of up to bucket_mib of parameters of one
 * dtype, in reverse order of registration; a bucket's all-reduce starts as
 * soon as backward has completed every gradient in it (a gradient-ready hook
 * per parameter), so communication overlaps the rest of backward. A
 * parameter that got no gradient averages zeros, or is an error naming it
 * with error_on_unused. Parameters must be contiguous and on one device
 * (CUDA needs a build with NCCL). */
typedef struct nb_ddp nb_ddp;

typedef struct nb_ddp_options {
    double bucket_mib;    /* 0 means 25 */
    bool error_on_unused; /* a parameter without a gradient fails nb_ddp_finish */
} nb_ddp_options;

/* A bucket's times in the last backward, in seconds from its first
 * gradient-ready hook: when every gradient of the bucket was ready, when its
 * all-reduce started and when it completed, and when backward itself
 * returned (nb_ddp_backward only; 0 otherwise): communication before that
 * was hidden behind backward. */
typedef struct nb_ddp_timing {
    double ready, started, done, backward;
    int parameters;
    int64_t bytes;
} nb_ddp_timing;

/* Wraps model (which must outlive the DDP) for comm; options may be NULL. */
nb_status nb_ddp_create(nb_module *model, nb_comm *comm, const nb_ddp_options *options, nb_ddp **out);
/* nb_ddp_create over a list of parameters and buffers instead of a module
 * (the Python front end's modules): distinct float leaves, in registration
 * order, borrowed, so they must outlive the DDP; the lists are copied. */
nb_status nb_ddp_create_from_tensors(const nb_named_tensor *params, int n_params, const nb_named_tensor *buffers,
                                     int n_buffers, nb_comm *comm, const nb_ddp_options *options, nb_ddp **out);
/* After backward: starts the buckets not yet started, waits for them all and
 * replaces each parameter's gradient by the ranks' average. */
nb_status nb_ddp_finish(nb_ddp *ddp);
/* nb_backward(loss, grad, false) then nb_ddp_finish, having first marked the
 * parameters loss does not use as ready (PyTorch's find_unused_parameters),
 * so that their buckets do not wait for the end of backward. */
nb_status nb_ddp_backward(nb_ddp *ddp, nb_tensor *loss, const nb_tensor *grad);
/* false: backward keeps gradients local, accumulating (PyTorch's no_sync);
 * true again: the next backward averages what accumulated. */
void nb_ddp_set_sync(nb_ddp *ddp, bool sync);
/* Rank 0's parameters (nb_ddp_create does it) or buffers (BatchNorm's
 * running statistics) to every rank. */
nb_status nb_ddp_broadcast_parameters(nb_ddp *ddp);
nb_status nb_ddp_broadcast_buffers(nb_ddp *ddp);
int nb_ddp_bucket_count(const nb_ddp *ddp);
nb_status nb_ddp_bucket_timing(const nb_ddp *ddp, int bucket, nb_ddp_timing *out);
/* Removes the hooks and frees ddp (NULL is fine); the model stays. */
void nb_ddp_free(nb_ddp *ddp);

#ifdef __cplusplus
}
#endif
#endif
