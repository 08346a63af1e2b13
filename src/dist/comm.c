/* The communicator over MPI (include/nabla/dist.h).
 *
 * Each communicator has a thread of its own that runs its asynchronous
 * collectives one after another, in the order the caller queued them, with
 * blocking MPI calls on a duplicate of MPI_COMM_WORLD. The caller's thread
 * only queues that work and waits on it with a deadline, so
 *  - an asynchronous collective really proceeds while the caller computes
 *    (MPI's non-blocking collectives advance only inside MPI calls);
 *  - a rank that died or stopped answering cannot hang the caller: its wait
 *    gives up at the timeout (the watchdog) and reports NB_ERR_DIST, while
 *    the communication thread stays blocked inside MPI. The communicator is
 *    then broken, and MPI is not finalized at exit (it would block), so the
 *    launcher sees the process end without MPI_Finalize and ends the job.
 * A blocking collective on CPU tensors with nothing queued before it runs on
 * the caller's thread instead: handing it over and waking the caller again
 * cost 5% of a 1 MiB all-reduce on a machine with as many ranks as cores.
 * The communication thread is then its watchdog; as nothing can bring the
 * caller back from inside MPI, one still running at the timeout ends the job
 * (MPI_Abort) with a message saying why.
 * MPI errors return codes (MPI_ERRORS_RETURN) that become NB_ERR_DIST.
 *
 * Before its data moves, every collective checks with one small all-reduce
 * (max and min of each field) that all ranks called the same collective
 * with the same dtype, element count, op and root. MPI has no f16 or bf16:
 * they travel as 2-byte elements combined by operators of nabla's own, in
 * float. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../cpu/cpu.h"
#include "nccl.h"

#define NB_DIST_DEFAULT_TIMEOUT 300.0

typedef enum kind {
    ALL_REDUCE = NB__DIST_ALL_REDUCE,
    BROADCAST = NB__DIST_BROADCAST,
    ALL_GATHER = NB__DIST_ALL_GATHER,
    REDUCE_SCATTER = NB__DIST_REDUCE_SCATTER,
    BARRIER = NB__DIST_BARRIER
} kind;
static const char *const kind_fn[] = {"nb_dist_all_reduce", "nb_dist_broadcast", "nb_dist_all_gather",
                                      "nb_dist_reduce_scatter", "nb_dist_barrier"};

struct nb_dist_work {
    nb_comm *comm;
    kind what;
    nb_tensor *in, *out; /* retained until done; in is contiguous */
    nb_reduce_op op;
    int root;
    double deadline;     /* CLOCK_MONOTONIC seconds */
    double completed;    /* when the communication thread finished it */
    bool done, freed;    /* under comm->lock */
    nb_status status;
    char message[NB_DIST_MESSAGE];
    nb_dist_work *next;  /* the queue */
    int device;          /* CUDA tensors' device (NCCL), else -1 */
    void *ready;         /* CUDA: recorded on the caller's stream at the call */
    struct inflight *gpu; /* CUDA: what stays alive until the device is done */
};

/* A CUDA collective queued on NCCL's stream: its tensors and done event
 * live until the device has run it (and the handle is freed: refs). */
typedef struct inflight {
    nb_tensor *in, *out;
    void *done;
    int device, refs;
    double deadline;
    bool finished;
    struct inflight *next;
} inflight;

struct nb_comm {
    MPI_Comm mpi;
    int rank, size, local_rank;
    double timeout;
    bool unchecked;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a work was queued or finished, or the thread should stop */
    nb_dist_work *head, *tail;
    bool stopping;
    bool broken;  /* a wait timed out: the thread may be stuck in MPI */
    bool pending; /* head is set: read without the lock by the polling thread */
    nb_dist_work *inline_work; /* the blocking collective the caller's thread is running */
    nb_nccl *nccl[NB_DIST_MAX_DEVICES]; /* made on the first collective on each device */
    inflight *gpu;                      /* CUDA collectives the device may still be running */
};

/* MPI's state as nabla sees it: whether nabla called MPI_Init, and whether a
 * broken communicator forbids MPI_Finalize at exit. */
static pthread_mutex_t mpi_lock = PTHREAD_MUTEX_INITIALIZER;
static bool nabla_initialized, any_broken, finalize_registered;
static MPI_Datatype half_type = MPI_DATATYPE_NULL;
static MPI_Op half_ops[2][4]; /* [bf16?][sum, max, min, prod] */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const char *nb_reduce_op_name(nb_reduce_op op) {
    static const char *const names[] = {"sum", "avg", "max", "min", "prod"};
    return (unsigned)op <= NB_REDUCE_PROD ? names[op] : "unknown";
}

/* ---- f16 and bf16 operators ---- */

#define HALF_CHUNK 256

static void combine_halves(const void *in, void *inout, int len, nb_dtype dtype, int which) {
    float a[HALF_CHUNK], b[HALF_CHUNK];
    for (int first = 0; first < len; first += HALF_CHUNK) {
        int n = len - first < HALF_CHUNK ? len - first : HALF_CHUNK;
        nb__cpu_convert(NB_F32, a, 1, dtype, (const uint16_t *)in + first, 1, n);
        nb__cpu_convert(NB_F32, b, 1, dtype, (uint16_t *)inout + first, 1, n);
        for (int i = 0; i < n; i++) {
            float x = a[i], y = b[i];
            b[i] = which == 0 ? x + y : which == 1 ? (x > y ? x : y) : which == 2 ? (x < y ? x : y) : x * y;
        }
        nb__cpu_convert(dtype, (uint16_t *)inout + first, 1, NB_F32, b, 1, n);
    }
}

#define HALF_OP(name, dtype, which)                                                   \
    static void name(void *in, void *inout, int *len, MPI_Datatype *type) {          \
        (void)type;                                                                   \
        combine_halves(in, inout, *len, dtype, which);                                \
    }
HALF_OP(f16_sum, NB_F16, 0)
HALF_OP(f16_max, NB_F16, 1)
HALF_OP(f16_min, NB_F16, 2)
HALF_OP(f16_prod, NB_F16, 3)
HALF_OP(bf16_sum, NB_BF16, 0)
HALF_OP(bf16_max, NB_BF16, 1)
HALF_OP(bf16_min, NB_BF16, 2)
HALF_OP(bf16_prod, NB_BF16, 3)

static int create_half_ops(void) {
    MPI_User_function *fns[2][4] = {{f16_sum, f16_max, f16_min, f16_prod},
                                    {bf16_sum, bf16_max, bf16_min, bf16_prod}};
    int rc = MPI_Type_contiguous(2, MPI_BYTE, &half_type);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&half_type);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 4 && rc == MPI_SUCCESS; k++) rc = MPI_Op_create(fns[b][k], 1, &half_ops[b][k]);
    return rc;
}

static MPI_Datatype mpi_type(nb_dtype dtype) {
    switch (dtype) {
    case NB_F32: return MPI_FLOAT;
    case NB_F64: return MPI_DOUBLE;
    case NB_I32: return MPI_INT32_T;
    case NB_I64: return MPI_INT64_T;
    case NB_U8: return MPI_UINT8_T;
    case NB_BOOL: return MPI_C_BOOL;
    default: return half_type;
    }
}

/* The MPI operator of op on dtype: bool sums and maxima are a logical or,
 * products and minima a logical and; avg sums (then divides). */
static MPI_Op mpi_op(nb_reduce_op op, nb_dtype dtype) {
    int which = op == NB_REDUCE_MAX ? 1 : op == NB_REDUCE_MIN ? 2 : op == NB_REDUCE_PROD ? 3 : 0;
    if (dtype == NB_F16 || dtype == NB_BF16) return half_ops[dtype == NB_BF16][which];
    if (dtype == NB_BOOL) return which == 0 || which == 1 ? MPI_LOR : MPI_LAND;
    const MPI_Op ops[4] = {MPI_SUM, MPI_MAX, MPI_MIN, MPI_PROD};
    return ops[which];
}

/* ---- MPI set-up and exit ---- */

static void finalize_at_exit(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && !__atomic_load_n(&any_broken, __ATOMIC_ACQUIRE)) MPI_Finalize();
}

static nb_status mpi_error(char *message, const char *fn, const char *call, int rc) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
    snprintf(message, NB_DIST_MESSAGE, "%s: %s failed: %s", fn, call, text);
    return NB_ERR_DIST;
}

static nb_status start_mpi(void) {
    char message[NB_DIST_MESSAGE];
    int initialized = 0, finalized = 0, provided = 0, rc = MPI_SUCCESS;
    pthread_mutex_lock(&mpi_lock);
    MPI_Finalized(&finalized);
    MPI_Initialized(&initialized);
    if (finalized) {
        pthread_mutex_unlock(&mpi_lock);
        return nb__error(NB_ERR_DIST, "nb_dist_init: MPI was already finalized");
    }
    if (!initialized) {
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (rc == MPI_SUCCESS) nabla_initialized = true;
    } else {
        rc = MPI_Query_thread(&provided);
    }
    if (rc == MPI_SUCCESS && half_type == MPI_DATATYPE_NULL) rc = create_half_ops();
    if (rc == MPI_SUCCESS && nabla_initialized && !finalize_registered) {
        atexit(finalize_at_exit);
        finalize_registered = true;
    }
    pthread_mutex_unlock(&mpi_lock);
    if (rc != MPI_SUCCESS) {
        mpi_error(message, "nb_dist_init", initialized ? "MPI_Query_thread" : "MPI_Init_thread", rc);
        return nb__error(NB_ERR_DIST, "%s", message);
    }
    NB_CHECK(provided >= MPI_THREAD_MULTIPLE, NB_ERR_DIST,
             "nb_dist_init: the MPI library gives thread level %d, and nabla's communication thread "
             "needs MPI_THREAD_MULTIPLE (%d)", provided, MPI_THREAD_MULTIPLE);
    return NB_OK;
}

/* ---- the communication thread ---- */

/* The fields every rank must agree on. */
enum { SIG_KIND, SIG_DTYPE, SIG_NUMEL, SIG_OP, SIG_ROOT, SIG_FIELDS };

static void describe(char *out, size_t size, const int64_t *sig) {
    snprintf(out, size, "%s of %lld %s values, op %s, root %lld", kind_fn[sig[SIG_KIND]] + 8,
             (long long)sig[SIG_NUMEL], nb_dtype_name((nb_dtype)sig[SIG_DTYPE]),
             nb_reduce_op_name((nb_reduce_op)sig[SIG_OP]), (long long)sig[SIG_ROOT]);
}

static nb_status check_agreement(nb_dist_work *w) {
    nb_comm *c = w->comm;
    const char *fn = kind_fn[w->what];
    int64_t sig[SIG_FIELDS] = {w->what, w->in ? w->in->dtype : 0, w->in ? nb_numel(w->in) : 0,
                               w->what == ALL_REDUCE || w->what == REDUCE_SCATTER ? w->op : 0,
                               w->what == BROADCAST ? w->root : 0};
    int64_t both[2 * SIG_FIELDS], merged[2 * SIG_FIELDS];
    for (int i = 0; i < SIG_FIELDS; i++) {
        both[i] = sig[i];
        both[SIG_FIELDS + i] = -sig[i];
    }
    int rc = MPI_Allreduce(both, merged, 2 * SIG_FIELDS, MPI_INT64_T, MPI_MAX, c->mpi);
    if (rc != MPI_SUCCESS) return mpi_error(w->message, fn, "MPI_Allreduce (the agreement check)", rc);
    for (int i = 0; i < SIG_FIELDS; i++) {
        int64_t high = merged[i], low = -merged[SIG_FIELDS + i];
        if (high == low) continue;
        int64_t other[SIG_FIELDS];
        memcpy(other, sig, sizeof other);
        other[i] = sig[i] == high ? low : high;
        char mine[160], theirs[160];
        describe(mine, sizeof mine, sig);
        describe(theirs, sizeof theirs, other);
        snprintf(w->message, NB_DIST_MESSAGE,
                 "%s: the ranks disagree: rank %d called %s, and another rank %s (every rank must call the "
                 "same collectives in the same order with the same dtype, size, op and root)",
                 fn, c->rank, mine, theirs);
        return NB_ERR_DIST;
    }
    return NB_OK;
}

/* out /= size, for avg, through double (every float dtype). */
static void divide(nb_tensor *out, int size) {
    double chunk[HALF_CHUNK];
    size_t elem = nb_dtype_size(out->dtype);
    char *data = nb__data(out);
    for (int64_t first = 0, n = nb_numel(out); first < n; first += HALF_CHUNK) {
        int64_t k = n - first < HALF_CHUNK ? n - first : HALF_CHUNK;
        nb__cpu_convert(NB_F64, chunk, 1, out->dtype, data + first * (int64_t)elem, 1, k);
        for (int64_t i = 0; i < k; i++) chunk[i] /= size;
        nb__cpu_convert(out->dtype, data + first * (int64_t)elem, 1, NB_F64, chunk, 1, k);
    }
}

/* MPI counts are ints: all_reduce and broadcast move 2^30 elements at a time. */
#define NB_DIST_PIECE ((int64_t)1 << 30)

/* Drops one of an in-flight collective's two owners (the handle, and the
 * device's run); under c->lock. */
static void inflight_unref(inflight *f) {
    if (--f->refs > 0) return;
    nb_release(f->in);
    nb_release(f->out);
#ifdef NABLA_WITH_NCCL
    nb__nccl_events_free(NULL, f->done);
#endif
    free(f);
}

#ifdef NABLA_WITH_NCCL
/* A CUDA collective: queued on NCCL's stream (made on the device's first
 * one), its tensors kept until the device has run it. */
static nb_status run_on_gpu(nb_dist_work *w) {
    nb_comm *c = w->comm;
    inflight *f = w->gpu;
    nb_status status = NB_OK;
    if (!c->nccl[w->device])
        status = nb__nccl_create(c->mpi, c->rank, c->size, w->device, w->deadline, &c->nccl[w->device], w->message);
    if (status == NB_OK)
        status = nb__nccl_enqueue(c->nccl[w->device], w->what, w->in, w->out, w->op, w->root, c->size, w->ready,
                                  f->done, w->deadline, kind_fn[w->what], w->message);
    pthread_mutex_lock(&c->lock);
    if (status == NB_OK) {
        f->in = w->in, f->out = w->out, f->deadline = w->deadline;
        w->in = w->out = NULL;
        f->next = c->gpu;
        c->gpu = f;
    } else {
        inflight_unref(f); /* the device will not run it */
    }
    pthread_mutex_unlock(&c->lock);
    return status;
}

/* Releases the CUDA collectives the device has finished; one that failed or
 * outlived its deadline breaks the communicator. Under c->lock. */
static void poll_gpu(nb_comm *c) {
    for (inflight **at = &c->gpu; *at;) {
        inflight *f = *at;
        char message[NB_DIST_MESSAGE];
        int state = nb__nccl_poll(c->nccl[f->device], f->done, f->deadline, message);
        if (state == 0) {
            at = &f->next;
            continue;
        }
        if (state < 0) {
            c->broken = true;
            __atomic_store_n(&any_broken, true, __ATOMIC_RELEASE);
            fprintf(stderr, "rank %d: %s\n", c->rank, message);
        }
        *at = f->next;
        inflight_unref(f);
    }
}
#endif

static nb_status run_data(nb_dist_work *w) {
    nb_comm *c = w->comm;
    const char *fn = kind_fn[w->what];
#ifdef NABLA_WITH_NCCL
    if (w->device >= 0) return run_on_gpu(w);
#endif
    if (w->what == BARRIER) {
        int rc = MPI_Barrier(c->mpi);
        return rc == MPI_SUCCESS ? NB_OK : mpi_error(w->message, fn, "MPI_Barrier", rc);
    }
    nb_dtype dtype = w->in->dtype;
    MPI_Datatype type = mpi_type(dtype);
    size_t elem = nb_dtype_size(dtype);
    int64_t n = nb_numel(w->in);
    char *in = nb__data(w->in), *out = nb__data(w->out);
    int rc = MPI_SUCCESS;
    const char *call = "";
    switch (w->what) {
    case ALL_REDUCE:
        call = "MPI_Allreduce";
        for (int64_t first = 0; first < n && rc == MPI_SUCCESS; first += NB_DIST_PIECE) {
            int count = (int)(n - first < NB_DIST_PIECE ? n - first : NB_DIST_PIECE);
            char *to = out + first * (int64_t)elem;
            const void *from = in == out ? MPI_IN_PLACE : in + first * (int64_t)elem;
            rc = MPI_Allreduce(from, to, count, type, mpi_op(w->op, dtype), c->mpi);
        }
        if (rc == MPI_SUCCESS && w->op == NB_REDUCE_AVG) divide(w->out, c->size);
        break;
    case BROADCAST:
        call = "MPI_Bcast";
        for (int64_t first = 0; first < n && rc == MPI_SUCCESS; first += NB_DIST_PIECE) {
            int count = (int)(n - first < NB_DIST_PIECE ? n - first : NB_DIST_PIECE);
            rc = MPI_Bcast(out + first * (int64_t)elem, count, type, w->root, c->mpi);
        }
        break;
    case ALL_GATHER:
        call = "MPI_Allgather";
        if (n > 0) rc = MPI_Allgather(in, (int)n, type, out, (int)n, type, c->mpi);
        break;
    default: {
        call = "MPI_Reduce_scatter_block";
        int64_t part = n / c->size;
        if (part > 0) rc = MPI_Reduce_scatter_block(in, out, (int)part, type, mpi_op(w->op, dtype), c->mpi);
        if (rc == MPI_SUCCESS && w->op == NB_REDUCE_AVG) divide(w->out, c->size);
    }
    }
    return rc == MPI_SUCCESS ? NB_OK : mpi_error(w->message, fn, call, rc);
}

/* How long a waiting side polls before it sleeps on the condition variable:
 * a back-to-back collective is then picked up, and a finished one seen, in
 * well under the microseconds a wake-up from the kernel takes. */
#define NB_DIST_SPIN_SECONDS 50e-6

/* Polls *flag (read without the lock) for a short while. */
static void spin_for(const bool *flag, bool want) {
    double until = now() + NB_DIST_SPIN_SECONDS;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != want && now() < until) sched_yield();
}

/* How often the idle communication thread looks at a blocking collective
 * the caller's thread is running: it ends the job this long after the
 * timeout at most. */
#define NB_DIST_WATCHDOG_TICK 0.1

/* Waits under c->lock on c->changed for at most seconds. */
static void wait_a_while(nb_comm *c, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double at = (double)until.tv_sec + 1e-9 * (double)until.tv_nsec + seconds;
    until.tv_sec = (time_t)at;
    until.tv_nsec = (long)((at - (double)until.tv_sec) * 1e9);
    pthread_cond_timedwait(&c->changed, &c->lock, &until);
}

/* The watchdog of a blocking collective on the caller's thread (under
 * c->lock): past its deadline the caller is stuck inside MPI, and only
 * ending the job frees it. */
static void watch_inline(nb_comm *c) {
    nb_dist_work *w = c->inline_work;
    if (now() < w->deadline) return;
    fprintf(stderr,
            "%s: rank %d waited %g s (the communicator's timeout) for the other %d ranks in a blocking "
            "collective: a rank died or stopped answering; ending the job (MPI_Abort)\n",
            kind_fn[w->what], c->rank, c->timeout, c->size - 1);
    fflush(stderr);
    MPI_Abort(c->mpi, 1);
    _exit(1); /* MPI_Abort does not return; should it, the caller stays stuck */
}

static void *communicate(void *arg) {
    nb_comm *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (!c->head && !c->stopping) {
            pthread_mutex_unlock(&c->lock);
            spin_for(&c->pending, true);
            pthread_mutex_lock(&c->lock);
        }
        while ((!c->head || c->inline_work) && !c->stopping) {
            if (c->inline_work) watch_inline(c);
            bool on_device = false;
#ifdef NABLA_WITH_NCCL
            poll_gpu(c);
            on_device = c->gpu != NULL;
#endif
            /* collectives on the device: look again in a millisecond */
            wait_a_while(c, on_device ? 1e-3 : NB_DIST_WATCHDOG_TICK);
        }
        if (!c->head) break;
        nb_dist_work *w = c->head;
        pthread_mutex_unlock(&c->lock);
        nb_status status = c->unchecked ? NB_OK : check_agreement(w);
        if (status == NB_OK) status = run_data(w);
        pthread_mutex_lock(&c->lock);
        c->head = w->next;
        if (!c->head) c->tail = NULL;
        __atomic_store_n(&c->pending, c->head != NULL, __ATOMIC_RELEASE);
        w->status = status;
        w->completed = now();
        __atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
        nb_tensor *in = w->in, *out = w->out;
        w->in = w->out = NULL;
        bool orphan = w->freed; /* its owner gave up on it (a timeout) and freed it */
        if (orphan && w->gpu) inflight_unref(w->gpu);
        pthread_cond_broadcast(&c->changed);
        pthread_mutex_unlock(&c->lock);
        nb_release(in);
        nb_release(out);
#ifdef NABLA_WITH_NCCL
        if (orphan && w->ready) nb__nccl_events_free(w->ready, NULL);
#endif
        if (orphan) free(w);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- the public functions ---- */

nb_status nb_dist_init(const nb_comm_options *options, nb_comm **out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_dist_init: out is NULL");
    *out = NULL;
    double timeout = options && options->timeout != 0 ? options->timeout : NB_DIST_DEFAULT_TIMEOUT;
    NB_CHECK(timeout > 0 && isfinite(timeout), NB_ERR_INVALID,
             "nb_dist_init: timeout must be a positive number of seconds, got %g", timeout);
    NB_TRY(start_mpi());
    nb_comm *c = nb__calloc(1, sizeof *c);
    NB_CHECK(c, NB_ERR_OOM, "nb_dist_init: out of host memory");
    c->timeout = timeout;
    c->unchecked = options && options->unchecked;
    char message[NB_DIST_MESSAGE];
    MPI_Comm node = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(c->mpi, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(c->mpi, &c->size);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(node, &c->local_rank);
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) {
        mpi_error(message, "nb_dist_init", "creating the communicator", rc);
        free(c);
        return nb__error(NB_ERR_DIST, "%s", message);
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    if (pthread_create(&c->thread, NULL, communicate, c) != 0) {
        MPI_Comm_free(&c->mpi);
        pthread_cond_destroy(&c->changed);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return nb__error(NB_ERR_OOM, "nb_dist_init: cannot start the communication thread");
    }
    *out = c;
    return NB_OK;
}

void nb_dist_free(nb_comm *c) {
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    bool broken = c->broken;
    c->stopping = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    if (broken) { /* the thread may never come back from MPI: leave it and its state */
        pthread_detach(c->thread);
        return;
    }
    pthread_join(c->thread, NULL);
#ifdef NABLA_WITH_NCCL
    pthread_mutex_lock(&c->lock);
    while (c->gpu) { /* the device's last collectives, each within its deadline */
        poll_gpu(c);
        if (c->gpu) {
            pthread_mutex_unlock(&c->lock);
            sched_yield();
            pthread_mutex_lock(&c->lock);
        }
    }
    pthread_mutex_unlock(&c->lock);
    for (int d = 0; d < NB_DIST_MAX_DEVICES; d++) nb__nccl_free(c->nccl[d]);
#endif
    MPI_Comm_free(&c->mpi);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int nb_dist_rank(const nb_comm *c) { return c ? c->rank : -1; }
int nb_dist_world_size(const nb_comm *c) { return c ? c->size : 0; }
int nb_dist_local_rank(const nb_comm *c) { return c ? c->local_rank : -1; }

/* Checks a tensor argument of fn: on the CPU (CUDA tensors need NCCL,
 * which this communicator lacks), of dtype when set. */
static nb_status check_tensor(const char *fn, const char *name, const nb_tensor *t, const nb_tensor *like,
                              const nb_comm *c) {
    NB_CHECK(t, NB_ERR_INVALID, "%s: %s is NULL", fn, name);
    nb_device device = t->storage->device;
#ifdef NABLA_WITH_NCCL
    NB_CHECK(device.type == NB_DEVICE_CPU || device.index < NB_DIST_MAX_DEVICES, NB_ERR_DEVICE,
             "%s: rank %d: %s is on %s, past the %d devices a communicator serves", fn, c->rank, name,
             nb__device_name(device), NB_DIST_MAX_DEVICES);
#else
    NB_CHECK(device.type == NB_DEVICE_CPU, NB_ERR_DEVICE,
             "%s: rank %d: %s is on %s; CPU tensors go over MPI, and CUDA tensors need NCCL, which this "
             "build lacks (copy it to the CPU)", fn, c->rank, name, nb__device_name(device));
#endif
    if (like) {
        NB_CHECK(t->dtype == like->dtype, NB_ERR_DTYPE, "%s: rank %d: out is %s but in is %s", fn, c->rank,
                 nb_dtype_name(t->dtype), nb_dtype_name(like->dtype));
        NB_CHECK(nb__same_device(device, like->storage->device), NB_ERR_DEVICE,
                 "%s: rank %d: out is on %s but in on %s", fn, c->rank, nb__device_name(device),
                 nb__device_name(like->storage->device));
    }
    return NB_OK;
}

/* Runs c->inline_work, w, on the caller's thread, then lets the
 * communication thread go on with what was queued meanwhile. */
static nb_status run_inline(nb_dist_work *w) {
    nb_comm *c = w->comm;
    nb_status status = c->unchecked ? NB_OK : check_agreement(w);
    if (status == NB_OK) status = run_data(w);
    pthread_mutex_lock(&c->lock);
    c->inline_work = NULL;
    if (c->head) pthread_cond_broadcast(&c->changed); /* queued meanwhile */
    pthread_mutex_unlock(&c->lock);
    nb_release(w->in);
    nb_release(w->out);
    if (status != NB_OK) nb__error(status, "%s", w->message);
    free(w);
    return status;
}

/* Runs a blocking collective on CPU tensors with nothing queued before it
 * at once, on this thread; queues any other, and waits for it unless the
 * caller wants the handle. */
static nb_status submit(nb_comm *c, kind what, const nb_tensor *in, nb_tensor *out, nb_reduce_op op, int root,
                        nb_dist_work **handle) {
    const char *fn = kind_fn[what];
    nb_dist_work *w = nb__calloc(1, sizeof *w);
    NB_CHECK(w, NB_ERR_OOM, "%s: out of host memory", fn);
    if (in) {
        w->in = nb__is_contiguous(in) ? nb_retain((nb_tensor *)in) : nb_contiguous(in);
        if (!w->in) {
            free(w);
            return nb_last_status();
        }
    }
    w->out = nb_retain(out);
    w->comm = c, w->what = what, w->op = op, w->root = root;
    w->deadline = now() + c->timeout;
    w->device = out && out->storage->device.type == NB_DEVICE_CUDA ? out->storage->device.index : -1;
#ifdef NABLA_WITH_NCCL
    if (w->device >= 0) {
        w->gpu = nb__calloc(1, sizeof *w->gpu);
        nb_status made = w->gpu ? nb__nccl_events(w->device, &w->ready, &w->gpu->done)
                                : nb__error(NB_ERR_OOM, "%s: out of host memory", fn);
        if (made != NB_OK) {
            free(w->gpu);
            nb_release(w->in);
            nb_release(w->out);
            free(w);
            return made;
        }
        w->gpu->refs = 2, w->gpu->device = w->device;
    }
#endif
    if (out) nb__bump_version(out);
    pthread_mutex_lock(&c->lock);
    bool broken = c->broken;
    if (!broken && !handle && w->device < 0 && !c->head && !c->inline_work) {
        c->inline_work = w;
        pthread_mutex_unlock(&c->lock);
        return run_inline(w);
    }
    if (!broken) {
        if (c->tail) c->tail->next = w;
        else c->head = w;
        c->tail = w;
        __atomic_store_n(&c->pending, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&c->changed);
    }
    pthread_mutex_unlock(&c->lock);
    if (broken) {
        nb_release(w->in);
        nb_release(w->out);
        free(w);
        return nb__error(NB_ERR_DIST, "%s: rank %d: the communicator is broken (an earlier collective timed "
                                      "out): no more collectives can run on it", fn, c->rank);
    }
    if (handle) {
        *handle = w;
        return NB_OK;
    }
    nb_status status = nb_dist_wait(w);
    nb_dist_work_free(w);
    return status;
}

static nb_status check_comm(const char *fn, const nb_comm *c, nb_dist_work **handle) {
    if (handle) *handle = NULL;
    NB_CHECK(c, NB_ERR_INVALID, "%s: comm is NULL", fn);
    return NB_OK;
}

static nb_status check_op(const char *fn, const nb_comm *c, nb_reduce_op op, const nb_tensor *in) {
    NB_CHECK((unsigned)op <= NB_REDUCE_PROD, NB_ERR_INVALID, "%s: rank %d: op %d is not an nb_reduce_op", fn,
             c->rank, (int)op);
    NB_CHECK(op != NB_REDUCE_AVG || nb_dtype_is_float(in->dtype), NB_ERR_DTYPE,
             "%s: rank %d: avg needs a float tensor, got %s (sum, then divide as you need)", fn, c->rank,
             nb_dtype_name(in->dtype));
    return NB_OK;
}

static bool same_shape(const nb_tensor *a, const nb_tensor *b) {
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape);
}

/* Whether big is small with its first dim times factor. */
static bool stacked(const nb_tensor *big, const nb_tensor *small, int factor) {
    if (big->ndim != small->ndim || big->ndim == 0 || big->shape[0] != small->shape[0] * factor) return false;
    return !memcmp(big->shape + 1, small->shape + 1, (size_t)(big->ndim - 1) * sizeof *big->shape);
}

static nb_status check_out(const char *fn, const nb_comm *c, const nb_tensor *out) {
    NB_CHECK(nb__is_contiguous(out), NB_ERR_INVALID, "%s: rank %d: out must be contiguous", fn, c->rank);
    return NB_OK;
}

nb_status nb_dist_all_reduce(nb_comm *c, const nb_tensor *in, nb_tensor *out, nb_reduce_op op,
                             nb_dist_work **work) {
    const char *fn = "nb_dist_all_reduce";
    NB_TRY(check_comm(fn, c, work));
    NB_TRY(check_tensor(fn, "in", in, NULL, c));
    NB_TRY(check_tensor(fn, "out", out, in, c));
    NB_TRY(check_op(fn, c, op, in));
    NB_CHECK(same_shape(in, out), NB_ERR_SHAPE, "%s: rank %d: out is %s but in is %s", fn, c->rank,
             nb__tensor_shape_str(out), nb__tensor_shape_str(in));
    NB_TRY(check_out(fn, c, out));
    return submit(c, ALL_REDUCE, in, out, op, 0, work);
}

nb_status nb_dist_broadcast(nb_comm *c, nb_tensor *t, int root, nb_dist_work **work) {
    const char *fn = "nb_dist_broadcast";
    NB_TRY(check_comm(fn, c, work));
    NB_TRY(check_tensor(fn, "t", t, NULL, c));
    NB_CHECK(root >= 0 && root < c->size, NB_ERR_INDEX, "%s: rank %d: root %d out of range [0, %d)", fn, c->rank,
             root, c->size);
    NB_TRY(check_out(fn, c, t));
    return submit(c, BROADCAST, t, t, NB_REDUCE_SUM, root, work);
}

nb_status nb_dist_all_gather(nb_comm *c, const nb_tensor *in, nb_tensor *out, nb_dist_work **work) {
    const char *fn = "nb_dist_all_gather";
    NB_TRY(check_comm(fn, c, work));
    NB_TRY(check_tensor(fn, "in", in, NULL, c));
    NB_TRY(check_tensor(fn, "out", out, in, c));
    NB_CHECK(stacked(out, in, c->size), NB_ERR_SHAPE,
             "%s: rank %d: out must be in %s with its first dim times the world size %d, got %s", fn, c->rank,
             nb__tensor_shape_str(in), c->size, nb__tensor_shape_str(out));
    NB_CHECK(nb_numel(in) <= INT32_MAX, NB_ERR_OVERFLOW, "%s: rank %d: %lld elements a rank exceed MPI's counts",
             fn, c->rank, (long long)nb_numel(in));
    NB_CHECK(in->storage != out->storage, NB_ERR_INVALID, "%s: rank %d: in and out must not share memory", fn,
             c->rank);
    NB_TRY(check_out(fn, c, out));
    return submit(c, ALL_GATHER, in, out, NB_REDUCE_SUM, 0, work);
}

nb_status nb_dist_reduce_scatter(nb_comm *c, const nb_tensor *in, nb_tensor *out, nb_reduce_op op,
                                 nb_dist_work **work) {
    const char *fn = "nb_dist_reduce_scatter";
    NB_TRY(check_comm(fn, c, work));
    NB_TRY(check_tensor(fn, "in", in, NULL, c));
    NB_TRY(check_tensor(fn, "out", out, in, c));
    NB_TRY(check_op(fn, c, op, in));
    NB_CHECK(stacked(in, out, c->size), NB_ERR_SHAPE,
             "%s: rank %d: in must be out %s with its first dim times the world size %d, got %s", fn, c->rank,
             nb__tensor_shape_str(out), c->size, nb__tensor_shape_str(in));
    NB_CHECK(nb_numel(out) <= INT32_MAX, NB_ERR_OVERFLOW, "%s: rank %d: %lld elements a rank exceed MPI's counts",
             fn, c->rank, (long long)nb_numel(out));
    NB_CHECK(in->storage != out->storage, NB_ERR_INVALID, "%s: rank %d: in and out must not share memory", fn,
             c->rank);
    NB_TRY(check_out(fn, c, out));
    return submit(c, REDUCE_SCATTER, in, out, op, 0, work);
}

nb_status nb_dist_barrier(nb_comm *c) {
    NB_TRY(check_comm("nb_dist_barrier", c, NULL));
    return submit(c, BARRIER, NULL, NULL, NB_REDUCE_SUM, 0, NULL);
}

/* Waits under c->lock until w is done or its deadline passed. */
static bool wait_done(nb_comm *c, nb_dist_work *w) {
    if (!w->done) {
        pthread_mutex_unlock(&c->lock);
        spin_for(&w->done, true);
        pthread_mutex_lock(&c->lock);
    }
    while (!w->done) {
        double left = w->deadline - now();
        if (left <= 0) return false;
        wait_a_while(c, left < 1 ? left : 1);
    }
    return true;
}

nb_status nb_dist_wait(nb_dist_work *w) {
    NB_CHECK(w, NB_ERR_INVALID, "nb_dist_wait: work is NULL");
    nb_comm *c = w->comm;
    pthread_mutex_lock(&c->lock);
    bool done = wait_done(c, w);
    if (!done && !c->broken) {
        c->broken = true;
        __atomic_store_n(&any_broken, true, __ATOMIC_RELEASE);
    }
    nb_status status = done ? w->status : NB_ERR_DIST;
    char message[NB_DIST_MESSAGE];
    if (done) memcpy(message, w->message, sizeof message);
    pthread_mutex_unlock(&c->lock);
    if (!done)
        return nb__error(NB_ERR_DIST,
                         "%s: rank %d waited %g s (the communicator's timeout) for the other %d ranks: a rank "
                         "died or stopped answering; this communicator is now unusable",
                         kind_fn[w->what], c->rank, c->timeout, c->size - 1);
    if (status != NB_OK) return nb__error(status, "%s", message);
#ifdef NABLA_WITH_NCCL
    if (w->device >= 0) return nb__nccl_follow(w->device, w->gpu->done); /* no host wait for the device */
#endif
    return NB_OK;
}

nb_status nb_dist_test(nb_dist_work *w, bool *done) {
    NB_CHECK(w && done, NB_ERR_INVALID, "nb_dist_test: work or done is NULL");
    pthread_mutex_lock(&w->comm->lock);
    *done = w->done;
    pthread_mutex_unlock(&w->comm->lock);
    return *done ? nb_dist_wait(w) : NB_OK;
}

double nb__dist_work_completed(nb_dist_work *w) {
    pthread_mutex_lock(&w->comm->lock);
    double at = w->done ? w->completed : 0;
    pthread_mutex_unlock(&w->comm->lock);
    return at;
}

void nb_dist_work_free(nb_dist_work *w) {
    if (!w) return;
    nb_comm *c = w->comm;
    pthread_mutex_lock(&c->lock);
    bool done = wait_done(c, w);
    if (!done) { /* the thread still owns it: it frees it if it ever finishes */
        w->freed = true;
        if (!c->broken) {
            c->broken = true;
            __atomic_store_n(&any_broken, true, __ATOMIC_RELEASE);
        }
    }
    if (done && w->gpu) inflight_unref(w->gpu);
    pthread_mutex_unlock(&c->lock);
#ifdef NABLA_WITH_NCCL
    if (done && w->ready) nb__nccl_events_free(w->ready, NULL);
#endif
    if (done) free(w);
}
