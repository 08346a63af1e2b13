/* The communicator's NCCL half: collectives on CUDA tensors
 * (include/nabla/dist.h), built with CUDA, MPI and NCCL.
 *
 * One NCCL communicator per device, made on the first collective there: rank
 * 0's unique id goes to every rank over MPI, and the communicator is
 * non-blocking (config.blocking = 0), so no call can hang: each one is
 * polled with ncclCommGetAsyncError against the work's deadline, and a
 * failure or a timeout aborts it (ncclCommAbort), which also ends its
 * kernels. Collectives run on a stream of the communicator's own, ordered
 * by CUDA events: after the caller's stream's work (an event recorded at the
 * call), and before the caller's later work (its stream waits on the done
 * event at nb_dist_wait). The host never waits for the device. */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/internal.h"
#include "nccl.h"

struct nb_nccl {
    int device;
    ncclComm_t comm;
    cudaStream_t stream;
};

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Waits, without blocking in NCCL, until the communicator's last call left
 * ncclInProgress; a failure or the deadline aborts the communicator. */
static nb_status settle(nb_nccl *n, double deadline, const char *fn, const char *call, char *message) {
    ncclResult_t state = ncclInProgress;
    while (ncclCommGetAsyncError(n->comm, &state) == ncclSuccess && state == ncclInProgress && seconds() < deadline)
        ;
    if (state == ncclSuccess) return NB_OK;
    snprintf(message, NB_DIST_MESSAGE, "%s: %s on cuda:%d %s; NCCL's communicator was aborted", fn, call, n->device,
             state == ncclInProgress ? "did not finish within the communicator's timeout" : ncclGetErrorString(state));
    ncclCommAbort(n->comm);
    n->comm = NULL;
    return NB_ERR_DIST;
}

nb_status nb__nccl_create(MPI_Comm mpi, int rank, int size, int device, double deadline, nb_nccl **out,
                          char *message) {
    const char *fn = "nb_dist (NCCL set-up)";
    ncclUniqueId id;
    if (rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) memset(&id, 0, sizeof id);
    if (MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, mpi) != MPI_SUCCESS) {
        snprintf(message, NB_DIST_MESSAGE, "%s: MPI_Bcast of NCCL's unique id failed", fn);
        return NB_ERR_DIST;
    }
    nb_nccl *n = nb__calloc(1, sizeof *n);
    if (!n) {
        snprintf(message, NB_DIST_MESSAGE, "%s: out of host memory", fn);
        return NB_ERR_OOM;
    }
    n->device = device;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    cudaError_t cuda = cudaSetDevice(device);
    if (cuda == cudaSuccess) cuda = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
    if (cuda != cudaSuccess) {
        snprintf(message, NB_DIST_MESSAGE, "%s: cuda:%d: %s", fn, device, cudaGetErrorString(cuda));
        free(n);
        return NB_ERR_DEVICE;
    }
    ncclResult_t made = ncclCommInitRankConfig(&n->comm, size, id, rank, &config);
    nb_status status = made == ncclSuccess || made == ncclInProgress ? settle(n, deadline, fn, "ncclCommInitRank", message)
                                                                     : NB_ERR_DIST;
    if (status == NB_OK) {
        *out = n;
        return NB_OK;
    }
    if (made != ncclSuccess && made != ncclInProgress)
        snprintf(message, NB_DIST_MESSAGE, "%s: ncclCommInitRank on cuda:%d: %s", fn, device, ncclGetErrorString(made));
    cudaStreamDestroy(n->stream);
    free(n);
    return status;
}

static ncclDataType_t nccl_type(nb_dtype dtype) {
    switch (dtype) {
    case NB_F32: return ncclFloat32;
    case NB_F64: return ncclFloat64;
    case NB_F16: return ncclFloat16;
    case NB_BF16: return ncclBfloat16;
    case NB_I32: return ncclInt32;
    case NB_I64: return ncclInt64;
    default: return ncclUint8; /* u8, and bool as 0 or 1 */
    }
}

/* bool sums and maxima are a logical or (max of 0/1), minima and products a
 * logical and (min). */
static ncclRedOp_t nccl_op(nb_reduce_op op, nb_dtype dtype) {
    if (dtype == NB_BOOL) return op == NB_REDUCE_MIN || op == NB_REDUCE_PROD ? ncclMin : ncclMax;
    switch (op) {
    case NB_REDUCE_AVG: return ncclAvg;
    case NB_REDUCE_MAX: return ncclMax;
    case NB_REDUCE_MIN: return ncclMin;
    case NB_REDUCE_PROD: return ncclProd;
    default: return ncclSum;
    }
}

nb_status nb__nccl_enqueue(nb_nccl *n, int kind, const nb_tensor *in, nb_tensor *out, nb_reduce_op op, int root,
                           int size, void *ready, void *done, double deadline, const char *fn, char *message) {
    if (!n->comm) {
        snprintf(message, NB_DIST_MESSAGE, "%s: NCCL's communicator on cuda:%d was aborted earlier", fn, n->device);
        return NB_ERR_DIST;
    }
    cudaError_t cuda = cudaSetDevice(n->device);
    if (cuda == cudaSuccess) cuda = cudaStreamWaitEvent(n->stream, (cudaEvent_t)ready, 0);
    if (cuda != cudaSuccess) {
        snprintf(message, NB_DIST_MESSAGE, "%s: cuda:%d: %s", fn, n->device, cudaGetErrorString(cuda));
        return NB_ERR_DEVICE;
    }
    const void *from = in ? nb__data(in) : NULL;
    void *to = out ? nb__data(out) : NULL;
    size_t count = in ? (size_t)nb_numel(in) : 0;
    nb_dtype dtype = in ? in->dtype : NB_F32;
    ncclResult_t result = ncclSuccess;
    const char *call = "";
    switch (kind) {
    case NB__DIST_ALL_REDUCE:
        call = "ncclAllReduce";
        result = ncclAllReduce(from, to, count, nccl_type(dtype), nccl_op(op, dtype), n->comm, n->stream);
        break;
    case NB__DIST_BROADCAST:
        call = "ncclBroadcast";
        result = ncclBroadcast(to, to, count, nccl_type(dtype), root, n->comm, n->stream);
        break;
    case NB__DIST_ALL_GATHER:
        call = "ncclAllGather";
        result = ncclAllGather(from, to, count, nccl_type(dtype), n->comm, n->stream);
        break;
    case NB__DIST_REDUCE_SCATTER:
        call = "ncclReduceScatter";
        result = ncclReduceScatter(from, to, count / (size_t)size, nccl_type(dtype), nccl_op(op, dtype), n->comm,
                                   n->stream);
        break;
    default: /* a barrier: an all-reduce of nothing still meets every rank */
        call = "ncclAllReduce (barrier)";
        result = ncclAllReduce(to, to, 0, ncclUint8, ncclSum, n->comm, n->stream);
    }
    nb_status status = result == ncclSuccess || result == ncclInProgress ? settle(n, deadline, fn, call, message)
                                                                         : NB_ERR_DIST;
    if (result != ncclSuccess && result != ncclInProgress)
        snprintf(message, NB_DIST_MESSAGE, "%s: %s on cuda:%d: %s", fn, call, n->device, ncclGetErrorString(result));
    if (status == NB_OK && cudaEventRecord((cudaEvent_t)done, n->stream) != cudaSuccess) {
        snprintf(message, NB_DIST_MESSAGE, "%s: recording the done event on cuda:%d failed", fn, n->device);
        status = NB_ERR_DEVICE;
    }
    return status;
}

int nb__nccl_poll(nb_nccl *n, void *done, double deadline, char *message) {
    if (!n->comm) return -1;
    cudaSetDevice(n->device);
    cudaError_t query = cudaEventQuery((cudaEvent_t)done);
    if (query == cudaSuccess) return 1;
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(n->comm, &state);
    if (query == cudaErrorNotReady && state == ncclSuccess && seconds() < deadline) return 0;
    snprintf(message, NB_DIST_MESSAGE, "nb_dist: a collective on cuda:%d %s; NCCL's communicator was aborted",
             n->device, state != ncclSuccess ? ncclGetErrorString(state)
                        : query != cudaErrorNotReady ? cudaGetErrorString(query)
                                                     : "did not finish within the communicator's timeout");
    ncclCommAbort(n->comm);
    n->comm = NULL;
    return -1;
}

nb_status nb__nccl_events(int device, void **ready, void **done) {
    cudaEvent_t a = NULL, b = NULL;
    cudaError_t cuda = cudaSetDevice(device);
    if (cuda == cudaSuccess) cuda = cudaEventCreateWithFlags(&a, cudaEventDisableTiming);
    if (cuda == cudaSuccess) cuda = cudaEventCreateWithFlags(&b, cudaEventDisableTiming);
    if (cuda == cudaSuccess)
        cuda = cudaEventRecord(a, (cudaStream_t)nb_cuda_stream_handle(nb_cuda_current_stream(device)));
    if (cuda != cudaSuccess) {
        if (a) cudaEventDestroy(a);
        if (b) cudaEventDestroy(b);
        return nb__error(NB_ERR_DEVICE, "nb_dist: cuda:%d: %s", device, cudaGetErrorString(cuda));
    }
    *ready = a;
    *done = b;
    return NB_OK;
}

nb_status nb__nccl_follow(int device, void *done) {
    cudaError_t cuda = cudaSetDevice(device);
    if (cuda == cudaSuccess)
        cuda = cudaStreamWaitEvent((cudaStream_t)nb_cuda_stream_handle(nb_cuda_current_stream(device)),
                                   (cudaEvent_t)done, 0);
    return cuda == cudaSuccess ? NB_OK : nb__error(NB_ERR_DEVICE, "nb_dist_wait: cuda:%d: %s", device,
                                                   cudaGetErrorString(cuda));
}

void nb__nccl_events_free(void *ready, void *done) {
    if (ready) cudaEventDestroy((cudaEvent_t)ready);
    if (done) cudaEventDestroy((cudaEvent_t)done);
}

void nb__nccl_free(nb_nccl *n) {
    if (!n) return;
    if (n->comm) ncclCommDestroy(n->comm);
    cudaStreamDestroy(n->stream);
    free(n);
}
