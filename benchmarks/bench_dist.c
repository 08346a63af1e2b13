/* The communicator and data parallelism, under mpirun (JSON lines from rank 0):
 *   all_reduce  f32 sums of 1 KiB to 256 MiB: nabla's nb_dist_all_reduce
 *               (with its agreement check, and unchecked) against a direct
 *               MPI_Allreduce of the same buffer, in the same run; the
 *               median time of each, its algorithm bandwidth (bytes / time)
 *               and bus bandwidth (algbw * 2 (n - 1) / n, the nccl-tests
 *               definition) and nabla's share of MPI's; with a GPU per rank
 *               (and NCCL), the same sizes on CUDA tensors (impl "nccl",
 *               timed to the device's completion)
 *   ddp_overlap the share of gradient all-reduce time hidden behind
 *               backward in a DDP step (nb_ddp_backward's bucket timings),
 *               for the CNN of examples/train_cnn and a small GPT
 *
 *   mpirun -np 2 bench_dist [--quick] [--max-mib N]
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define CHECK(expr)                                                          \
    do {                                                                     \
        if (!(expr)) {                                                       \
            fprintf(stderr, "bench_dist: %s\n", nb_last_error());            \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

static int rank, world;

/* One timed all-reduce of x by impl (0: MPI_Allreduce, 1: nabla, 2: nabla
 * unchecked), the ranks starting together after a barrier. */
static double time_once(int impl, nb_comm *checked, nb_comm *unchecked, nb_tensor *x) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now_ms();
    if (impl == 0) MPI_Allreduce(MPI_IN_PLACE, nb_data(x), (int)nb_numel(x), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else CHECK(nb_dist_all_reduce(impl == 1 ? checked : unchecked, x, x, NB_REDUCE_SUM, NULL) == NB_OK);
    return bench_now_ms() - t0;
}

#define REPEATS_MAX 41

static void bench_all_reduce(nb_comm *checked, nb_comm *unchecked, int64_t max_bytes) {
    const char *impls[3] = {"mpi", "nabla", "nabla_unchecked"};
    for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 4) {
        int64_t n = bytes / 4;
        nb_tensor *x = nb_full(1, &n, 1.0, NB_F32, nb_cpu());
        CHECK(x);
        int repeats = bytes >= (64 << 20) ? 7 : bytes >= (4 << 20) ? 15 : REPEATS_MAX;
        double times[3][REPEATS_MAX], ms[3];
        /* the three interleaved, so that a noisy moment hits them alike */
        for (int r = -1; r < repeats; r++)
            for (int impl = 0; impl < 3; impl++) {
                double t = time_once(impl, checked, unchecked, x);
                if (r >= 0) times[impl][r] = t;
            }
        for (int impl = 0; impl < 3; impl++) { /* the slowest rank's time, then the median */
            MPI_Allreduce(MPI_IN_PLACE, times[impl], repeats, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            ms[impl] = bench_median(times[impl], repeats);
        }
        double factor = 2.0 * (world - 1) / world;
        for (int i = 0; i < 3 && rank == 0; i++) {
            double algbw = (double)bytes / (ms[i] * 1e-3) / 1e9;
            printf("{\"bench\": \"all_reduce\", \"impl\": \"%s\", \"ranks\": %d, \"bytes\": %lld, \"ms\": %.4f, "
                   "\"algbw_GB/s\": %.3f, \"busbw_GB/s\": %.3f, \"of_mpi\": %.3f}\n",
                   impls[i], world, (long long)bytes, ms[i], algbw, algbw * factor, ms[0] / ms[i]);
        }
        fflush(stdout);
        nb_release(x);
    }
}

/* nb_dist_all_reduce on CUDA tensors (NCCL), timed until the device is
 * done, when every rank has a GPU of its own. */
static void bench_nccl(nb_comm *comm, int64_t max_bytes) {
    int devices = nb_cuda_device_count();
    if (devices < world) {
        if (rank == 0) fprintf(stderr, "bench_dist: no NCCL lines: %d GPUs for %d ranks\n", devices, world);
        return;
    }
    nb_device gpu = nb_cuda(nb_dist_local_rank(comm) % devices);
    for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 4) {
        int64_t n = bytes / 4;
        nb_tensor *x = nb_full(1, &n, 1.0, NB_F32, gpu);
        CHECK(x);
        int repeats = bytes >= (4 << 20) ? 15 : REPEATS_MAX;
        double times[REPEATS_MAX];
        for (int r = -1; r < repeats; r++) {
            CHECK(nb_cuda_synchronize(gpu.index) == NB_OK);
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = bench_now_ms();
            CHECK(nb_dist_all_reduce(comm, x, x, NB_REDUCE_SUM, NULL) == NB_OK);
            CHECK(nb_cuda_synchronize(gpu.index) == NB_OK);
            if (r >= 0) times[r] = bench_now_ms() - t0;
        }
        MPI_Allreduce(MPI_IN_PLACE, times, repeats, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double ms = bench_median(times, repeats), algbw = (double)bytes / (ms * 1e-3) / 1e9;
        if (rank == 0)
            printf("{\"bench\": \"all_reduce\", \"impl\": \"nccl\", \"ranks\": %d, \"bytes\": %lld, \"ms\": %.4f, "
                   "\"algbw_GB/s\": %.3f, \"busbw_GB/s\": %.3f}\n",
                   world, (long long)bytes, ms, algbw, algbw * 2.0 * (world - 1) / world);
        fflush(stdout);
        nb_release(x);
    }
}

/* Sum over buckets of the all-reduce time inside [0, backward], over all of it. */
static double hidden_share(const nb_ddp *ddp, double *comm_ms) {
    double hidden = 0, total = 0;
    for (int k = 0; k < nb_ddp_bucket_count(ddp); k++) {
        nb_ddp_timing t;
        CHECK(nb_ddp_bucket_timing(ddp, k, &t) == NB_OK);
        double end = t.done < t.backward ? t.done : t.backward;
        total += t.done - t.started;
        hidden += end > t.started ? end - t.started : 0;
    }
    *comm_ms = total * 1e3;
    return total > 0 ? hidden / total : 0;
}

typedef nb_tensor *(*loss_fn)(nb_module *model, nb_generator *gen);

static nb_tensor *cnn_loss(nb_module *model, nb_generator *gen) {
    int64_t xs[4] = {32, 1, 28, 28}, ys[1] = {32};
    nb_tensor *x = nb_normal(4, xs, 0, 1, NB_F32, nb_cpu(), gen);
    nb_tensor *y = nb_randint(0, 10, 1, ys, NB_I64, nb_cpu(), gen);
    nb_tensor *logits = nb_module_forward(model, x);
    nb_tensor *loss = logits ? nb_cross_entropy(logits, y, NB_REDUCTION_MEAN, 0, -100) : NULL;
    nb_release(x);
    nb_release(y);
    nb_release(logits);
    return loss;
}

static nb_tensor *gpt_loss(nb_module *model, nb_generator *gen) {
    int64_t shape[2] = {4, 128};
    nb_tensor *tokens = nb_randint(0, 256, 2, shape, NB_I64, nb_cpu(), gen);
    nb_tensor *targets = nb_randint(0, 256, 2, shape, NB_I64, nb_cpu(), gen);
    nb_tensor *loss = nb_gpt_loss(model, tokens, targets);
    nb_release(tokens);
    nb_release(targets);
    return loss;
}

static nb_module *cnn_model(nb_generator *gen) {
    nb_module *layers[8], *head[2];
    layers[0] = nb_nn_conv2d(1, 32, 3, 1, 1, 1, 1, false, NB_F32, nb_cpu(), gen);
    layers[1] = nb_nn_batch_norm2d(32, 1e-5, 0.1, true, NB_F32, nb_cpu());
    layers[2] = nb_nn_activation(NB_ACT_RELU);
    layers[3] = nb_nn_depthwise_separable_conv2d(32, 64, 3, 2, NB_ACT_RELU, NB_F32, nb_cpu(), gen);
    layers[4] = nb_nn_depthwise_separable_conv2d(64, 128, 3, 2, NB_ACT_RELU, NB_F32, nb_cpu(), gen);
    layers[5] = nb_nn_depthwise_separable_conv2d(128, 128, 3, 1, NB_ACT_RELU, NB_F32, nb_cpu(), gen);
    layers[6] = nb_nn_adaptive_avg_pool2d(1, 1);
    layers[7] = nb_nn_flatten();
    head[0] = nb_nn_sequential(8, layers);
    head[1] = nb_nn_linear(128, 10, true, NB_F32, nb_cpu(), gen);
    return nb_nn_sequential(2, head);
}

static nb_module *gpt_model(nb_generator *gen) {
    nb_gpt_config c = {.vocab = 256, .context = 128, .layers = 4, .tied = true};
    c.block.attention = (nb_attention_config){256, 4, 0, true, true, false, 0, 0};
    return nb_nn_gpt(&c, NB_F32, nb_cpu(), gen);
}

static void bench_overlap(nb_comm *comm, const char *name, nb_module *model, loss_fn loss_of, double bucket_mib,
                          int steps) {
    CHECK(model);
    nb_ddp *ddp;
    nb_ddp_options options = {.bucket_mib = bucket_mib};
    CHECK(nb_ddp_create(model, comm, &options, &ddp) == NB_OK);
    nb_generator *gen = nb_generator_create(100 + (uint64_t)rank);
    double shares[64], comm_ms[64], step_ms[64];
    for (int s = -1; s < steps; s++) {
        double t0 = bench_now_ms();
        nb_tensor *loss = loss_of(model, gen);
        CHECK(loss && nb_ddp_backward(ddp, loss, NULL) == NB_OK);
        nb_release(loss);
        if (s < 0) continue;
        step_ms[s] = bench_now_ms() - t0;
        shares[s] = hidden_share(ddp, &comm_ms[s]);
    }
    if (rank == 0)
        printf("{\"bench\": \"ddp_overlap\", \"model\": \"%s\", \"ranks\": %d, \"buckets\": %d, \"bucket_mib\": %g, "
               "\"step_ms\": %.2f, \"all_reduce_ms\": %.2f, \"hidden_share\": %.3f}\n",
               name, world, nb_ddp_bucket_count(ddp), bucket_mib, bench_median(step_ms, steps),
               bench_median(comm_ms, steps), bench_median(shares, steps));
    fflush(stdout);
    nb_generator_free(gen);
    nb_ddp_free(ddp);
    nb_module_free(model);
}

int main(int argc, char **argv) {
    bool quick = false;
    int64_t max_mib = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true, max_mib = 16;
        else if (!strcmp(argv[i], "--max-mib") && i + 1 < argc) max_mib = atoll(argv[++i]);
        else {
            bool help = !strcmp(argv[i], "--help");
            fprintf(help ? stdout : stderr, "usage: mpirun -np N bench_dist [--quick] [--max-mib N]\n"
                                            "  --quick    all-reduces up to 16 MiB, fewer DDP steps\n"
                                            "  --max-mib  the largest all-reduce (default 256)\n");
            return help ? 0 : 2;
        }
    }
    nb_comm *checked, *unchecked;
    CHECK(nb_dist_init(NULL, &checked) == NB_OK);
    CHECK(nb_dist_init(&(nb_comm_options){.unchecked = true}, &unchecked) == NB_OK);
    rank = nb_dist_rank(checked);
    world = nb_dist_world_size(checked);
    bench_all_reduce(checked, unchecked, max_mib << 20);
    bench_nccl(checked, max_mib << 20);
    nb_generator *gen = nb_generator_create(1);
    int steps = quick ? 3 : 10;
    /* small buckets, so that there are several to overlap in these small models */
    bench_overlap(checked, "cnn", cnn_model(gen), cnn_loss, 0.05, steps);
    bench_overlap(checked, "gpt", gpt_model(gen), gpt_loss, 1, steps);
    nb_generator_free(gen);
    nb_dist_free(unchecked);
    nb_dist_free(checked);
    return 0;
}
