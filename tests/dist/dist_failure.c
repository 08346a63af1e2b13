/* A data-parallel loop in which rank 2 fails at step 5, for
 * tests/dist/failure.sh: `exit` ends the process there (without
 * MPI_Finalize), `stall` and `stall-async` stop answering (it sleeps). The
 * other ranks must not hang: within the communicator's timeout their
 * blocking all-reduce ends the job (`exit`, `stall`), or their asynchronous
 * one fails with NB_ERR_DIST (`stall-async`), saying why.
 *
 *   mpirun -np 3 dist_failure exit|stall|stall-async TIMEOUT_SECONDS */
#define _POSIX_C_SOURCE 200809L
#include <nabla/nabla.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    bool async = argc == 3 && !strcmp(argv[1], "stall-async");
    if (argc != 3 || (strcmp(argv[1], "exit") && strcmp(argv[1], "stall") && !async)) {
        fprintf(stderr, "usage: dist_failure exit|stall|stall-async TIMEOUT_SECONDS\n");
        return 2;
    }
    nb_comm_options options = {.timeout = atof(argv[2])};
    nb_comm *comm;
    if (nb_dist_init(&options, &comm) != NB_OK) {
        fprintf(stderr, "dist_failure: %s\n", nb_last_error());
        return 1;
    }
    int rank = nb_dist_rank(comm);
    int64_t n = 1 << 16;
    for (int step = 0; step < 20; step++) {
        if (rank == 2 && step == 5) {
            if (!strcmp(argv[1], "exit")) _exit(3);
            sleep((unsigned)(options.timeout * 10));
        }
        nb_tensor *grad = nb_full(1, &n, rank + 1, NB_F32, nb_cpu());
        double start = seconds();
        nb_dist_work *work = NULL;
        nb_status status = nb_dist_all_reduce(comm, grad, grad, NB_REDUCE_AVG, async ? &work : NULL);
        if (status == NB_OK && async) status = nb_dist_wait(work);
        nb_dist_work_free(work);
        nb_release(grad);
        if (status != NB_OK) {
            fprintf(stderr, "rank %d: step %d failed after %.1f s: %s: %s\n", rank, step, seconds() - start,
                    nb_status_name(status), nb_last_error());
            nb_dist_free(comm);
            return 1;
        }
    }
    printf("rank %d: all 20 steps done\n", rank);
    nb_dist_free(comm);
    return 0;
}
