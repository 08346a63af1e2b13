/* The communicator of a build without MPI (-DNABLA_MPI=OFF, or no MPI found):
 * every call fails with NB_ERR_UNSUPPORTED and says why. */
#include "../core/internal.h"

#define NB_NO_MPI(fn)                                                                              \
    nb__error(NB_ERR_UNSUPPORTED, "%s: nabla was built without MPI (install libopenmpi-dev and "     \
                                  "rebuild with -DNABLA_MPI=ON)", fn)

nb_status nb_dist_init(const nb_comm_options *options, nb_comm **out) {
    (void)options;
    if (out) *out = NULL;
    return NB_NO_MPI("nb_dist_init");
}

void nb_dist_free(nb_comm *comm) { (void)comm; }
int nb_dist_rank(const nb_comm *comm) { return comm ? 0 : -1; }
int nb_dist_world_size(const nb_comm *comm) { return comm ? 1 : 0; }
int nb_dist_local_rank(const nb_comm *comm) { return comm ? 0 : -1; }

static nb_status no_work(const char *fn, nb_dist_work **work) {
    if (work) *work = NULL;
    return NB_NO_MPI(fn);
}

nb_status nb_dist_all_reduce(nb_comm *comm, const nb_tensor *in, nb_tensor *out, nb_reduce_op op,
                             nb_dist_work **work) {
    (void)comm, (void)in, (void)out, (void)op;
    return no_work("nb_dist_all_reduce", work);
}

nb_status nb_dist_broadcast(nb_comm *comm, nb_tensor *t, int root, nb_dist_work **work) {
    (void)comm, (void)t, (void)root;
    return no_work("nb_dist_broadcast", work);
}

nb_status nb_dist_all_gather(nb_comm *comm, const nb_tensor *in, nb_tensor *out, nb_dist_work **work) {
    (void)comm, (void)in, (void)out;
    return no_work("nb_dist_all_gather", work);
}

nb_status nb_dist_reduce_scatter(nb_comm *comm, const nb_tensor *in, nb_tensor *out, nb_reduce_op op,
                                 nb_dist_work **work) {
    (void)comm, (void)in, (void)out, (void)op;
    return no_work("nb_dist_reduce_scatter", work);
}

nb_status nb_dist_barrier(nb_comm *comm) {
    (void)comm;
    return NB_NO_MPI("nb_dist_barrier");
}

nb_status nb_dist_wait(nb_dist_work *work) {
    (void)work;
    return NB_NO_MPI("nb_dist_wait");
}

nb_status nb_dist_test(nb_dist_work *work, bool *done) {
    (void)work;
    if (done) *done = true;
    return NB_NO_MPI("nb_dist_test");
}

void nb_dist_work_free(nb_dist_work *work) { (void)work; }

double nb__dist_work_completed(nb_dist_work *work) {
    (void)work;
    return 0;
}

const char *nb_reduce_op_name(nb_reduce_op op) {
    static const char *const names[] = {"sum", "avg", "max", "min", "prod"};
    return (unsigned)op <= NB_REDUCE_PROD ? names[op] : "unknown";
}
