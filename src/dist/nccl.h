/* What the communicator (comm.c) and its NCCL half (nccl.c) share. */
#ifndef NABLA_DIST_NCCL_H
#define NABLA_DIST_NCCL_H

#include <mpi.h>

#include "../core/internal.h"

#define NB_DIST_MESSAGE 640
#define NB_DIST_MAX_DEVICES 16

/* The collectives, in the order of comm.c's names for them. */
enum { NB__DIST_ALL_REDUCE, NB__DIST_BROADCAST, NB__DIST_ALL_GATHER, NB__DIST_REDUCE_SCATTER, NB__DIST_BARRIER };

typedef struct nb_nccl nb_nccl;

/* NCCL's communicator for device, rank 0's unique id sent over mpi; a
 * status with message (NB_DIST_MESSAGE bytes) on failure. */
nb_status nb__nccl_create(MPI_Comm mpi, int rank, int size, int device, double deadline, nb_nccl **out,
                          char *message);
/* Queues a collective of kind on n's stream after event ready, recording
 * done after it. */
nb_status nb__nccl_enqueue(nb_nccl *n, int kind, const nb_tensor *in, nb_tensor *out, nb_reduce_op op, int root,
                           int size, void *ready, void *done, double deadline, const char *fn, char *message);
/* 1 when done has completed, 0 while it runs within the deadline, -1 after
 * an NCCL error or the deadline (n is then aborted; message says why). */
int nb__nccl_poll(nb_nccl *n, void *done, double deadline, char *message);
/* Two events on device, the first recorded on its current stream. */
nb_status nb__nccl_events(int device, void **ready, void **done);
/* The device's current stream waits for done. */
nb_status nb__nccl_follow(int device, void *done);
void nb__nccl_events_free(void *ready, void *done);
void nb__nccl_free(nb_nccl *n);

#endif
