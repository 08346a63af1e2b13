/* Trains a small CNN of depthwise-separable blocks on Fashion-MNIST:
 *   conv 3x3 (1 -> 32) -> BatchNorm -> ReLU
 *   DepthwiseSeparableConv2d 32 -> 64, stride 2      [64, 14, 14]
 *   DepthwiseSeparableConv2d 64 -> 128, stride 2     [128, 7, 7]
 *   DepthwiseSeparableConv2d 128 -> 128              [128, 7, 7]
 *   global average pool -> Dropout(0.2) -> Linear(128, 10)
 * with AdamW (peak lr 0.01), linear warmup then cosine decay, cross-entropy with label
 * smoothing 0.1; prints a progress line (epoch, step, loss, images/s), the
 * test accuracy after each epoch, and writes the loss curve as CSV.
 * benchmarks/torch_cnn.py is the same model and schedule in PyTorch.
 * With --distributed under mpirun, each rank trains on its share of every
 * global batch with data parallelism (nb_ddp), and --sync-bn makes the
 * BatchNorms SyncBatchNorms (statistics of the whole global batch).
 *
 *   train_cnn [--device cpu|cuda] [--epochs N] [--batch N] [--lr RATE] [--seed S]
 *             [--data DIR] [--csv PATH] [--limit N] [--distributed [--sync-bn]]
 *             [--save PATH] [--save-every N] [--resume PATH] [--stop-at N] [--help]
 */
#define EXAMPLE_NAME "train_cnn"
#include "example.h"

#include <string.h>
#include <unistd.h>

typedef struct options {
    nb_device device;
    int epochs;
    int64_t batch, limit, save_every, stop_at;
    double lr;
    uint64_t seed;
    const char *data, *csv, *save, *resume;
    bool distributed, sync_bn;
} options;

static void usage(FILE *to) {
    fprintf(to,
            "usage: train_cnn [--device cpu|cuda] [--epochs N] [--batch N] [--lr RATE] [--seed S]\n"
            "                 [--data DIR] [--csv PATH] [--limit N] [--distributed [--sync-bn]]\n"
            "                 [--save PATH] [--save-every N] [--resume PATH] [--stop-at N]\n"
            "  --device   cpu or cuda (default: cuda when a GPU is present, else cpu)\n"
            "  --epochs   passes over the 60000 training images (default 1)\n"
            "  --batch    images per step (default 64)\n"
            "  --lr       AdamW's peak learning rate (default 0.01)\n"
            "  --seed     seeds initialization, shuffling and dropout (default 1)\n"
            "  --data     the Fashion-MNIST directory (default: $NABLA_FASHION_MNIST_DIR,\n"
            "             else /usr/share/datasets/fashion-mnist)\n"
            "  --csv      where to write the loss curve (default train_cnn_loss.csv)\n"
            "  --limit    train on the first N images only (default: all)\n"
            "  --distributed  data-parallel over the ranks of mpirun -np N (CPU); --batch is\n"
            "             the global batch, each rank takes batch / N of it\n"
            "  --sync-bn  with --distributed: BatchNorm statistics over the global batch\n"
            "  --save     write a checkpoint (model, optimizer, generators, step; safetensors) there\n"
            "             at the end and every --save-every steps (default: at the end)\n"
            "  --resume   go on from a checkpoint of a run with the same settings, mid-epoch too\n"
            "  --stop-at  stop after this step, as a time limit would (the schedule still spans\n"
            "             --epochs); with --save, --resume goes on from there\n");
}

static options parse(int argc, char **argv) {
    options o = {.device = nb_cuda_available() ? nb_cuda(0) : nb_cpu(), .epochs = 1, .batch = 64, .lr = 1e-2,
                 .seed = 1, .csv = "train_cnn_loss.csv"};
    bool dangling = false;
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--distributed") || !strcmp(arg, "--sync-bn")) { /* flags take no value */
            *(arg[2] == 'd' ? &o.distributed : &o.sync_bn) = true;
            i--;
            continue;
        }
        if (!strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        }
        bool known = value != NULL;
        if (!known) {
            dangling = true;
            break;
        }
        if (!strcmp(arg, "--device") && (!strcmp(value, "cpu") || !strcmp(value, "cuda")))
            o.device = !strcmp(value, "cuda") ? nb_cuda(0) : nb_cpu();
        else if (!strcmp(arg, "--epochs")) o.epochs = atoi(value);
        else if (!strcmp(arg, "--batch")) o.batch = atoll(value);
        else if (!strcmp(arg, "--lr")) o.lr = atof(value);
        else if (!strcmp(arg, "--seed")) o.seed = strtoull(value, NULL, 10);
        else if (!strcmp(arg, "--data")) o.data = value;
        else if (!strcmp(arg, "--csv")) o.csv = value;
        else if (!strcmp(arg, "--limit")) o.limit = atoll(value);
        else if (!strcmp(arg, "--save")) o.save = value;
        else if (!strcmp(arg, "--save-every")) o.save_every = atoll(value);
        else if (!strcmp(arg, "--resume")) o.resume = value;
        else if (!strcmp(arg, "--stop-at")) o.stop_at = atoll(value);
        else known = false;
        if (!known) {
            fprintf(stderr, "train_cnn: bad argument %s %s\n", arg, value);
            usage(stderr);
            exit(2);
        }
    }
    if (dangling || o.epochs < 1 || o.batch < 1 || !(o.lr > 0) || (o.sync_bn && !o.distributed) ||
        o.save_every < 0 || o.stop_at < 0) {
        usage(stderr);
        exit(2);
    }
    return o;
}

/* One statement per layer: the weights draw from gen in this order (the
 * PyTorch twin replays the generator's offsets to get the same data order). */
static nb_module *build_model(nb_device device, nb_generator *gen) {
    nb_module *layers[8], *head[3];
    layers[0] = nb_nn_conv2d(1, 32, 3, 1, 1, 1, 1, false, NB_F32, device, gen);
    layers[1] = nb_nn_batch_norm2d(32, 1e-5, 0.1, true, NB_F32, device);
    layers[2] = nb_nn_activation(NB_ACT_RELU);
    layers[3] = nb_nn_depthwise_separable_conv2d(32, 64, 3, 2, NB_ACT_RELU, NB_F32, device, gen);
    layers[4] = nb_nn_depthwise_separable_conv2d(64, 128, 3, 2, NB_ACT_RELU, NB_F32, device, gen);
    layers[5] = nb_nn_depthwise_separable_conv2d(128, 128, 3, 1, NB_ACT_RELU, NB_F32, device, gen);
    layers[6] = nb_nn_adaptive_avg_pool2d(1, 1);
    layers[7] = nb_nn_flatten();
    head[0] = nb_nn_sequential(8, layers);
    head[1] = nb_nn_dropout(0.2, gen);
    head[2] = nb_nn_linear(128, 10, true, NB_F32, device, gen);
    nb_module *model = nb_nn_sequential(3, head);
    CHECK(model);
    return model;
}

#define REPORT_EVERY 50

/* Reads the n pending losses of steps last - n + 1 .. last with one
 * transfer (one wait for the device per report, not per step), averaged
 * over the ranks when distributed, writes them to the CSV, releases them
 * and returns the last. */
static double flush_losses(FILE *csv, nb_tensor **losses, const double *rates, int n,
                           int64_t last, int epoch, nb_comm *comm) {
    nb_tensor *all = nb_stack(n, (const nb_tensor *const *)losses, 0);
    nb_tensor *values = all ? nb_cast(all, NB_F64) : NULL;
    double host[REPORT_EVERY];
    CHECK(values && (!comm || nb_dist_all_reduce(comm, values, values, NB_REDUCE_AVG, NULL) == NB_OK));
    CHECK(nb_to_host(values, host, (size_t)n * sizeof *host) == NB_OK);
    for (int i = 0; i < n; i++) {
        if (csv) fprintf(csv, "%lld,%d,%.6f,%.6g\n", (long long)(last - n + 1 + i), epoch, host[i], rates[i]);
        nb_release(losses[i]);
    }
    nb_release(all);
    nb_release(values);
    return host[n - 1];
}

/* Percent of test images whose largest logit is their label. */
static double test_accuracy(nb_module *model, const nb_tensor *images, const nb_tensor *labels,
                            nb_device device) {
    nb_module_train(model, false);
    bool was = nb_set_grad_enabled(false);
    nb_batches *batches = nb_batches_create(images, labels, 1000, false, false, NULL);
    CHECK(batches);
    nb_tensor *x, *y;
    double correct = 0, total = 0;
    while (nb_batches_next(batches, &x, &y)) {
        nb_tensor *gx = nb_to(x, device), *gy = nb_to(y, device);
        nb_tensor *logits = nb_module_forward(model, gx);
        CHECK(logits);
        int last = 1;
        nb_tensor *guess = nb_argmax(logits, 1, &last, false);
        nb_tensor *same = nb_eq(guess, gy), *hits = nb_cast(same, NB_F64);
        CHECK(hits);
        nb_tensor *count = nb_sum(hits, 0, NULL, false);
        double value;
        CHECK(count && nb_item(count, &value) == NB_OK);
        correct += value;
        total += (double)nb_numel(y);
        nb_tensor *temps[] = {x, y, gx, gy, logits, guess, same, hits, count};
        for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) nb_release(temps[i]);
    }
    nb_batches_free(batches);
    nb_set_grad_enabled(was);
    nb_module_train(model, true);
    return 100 * correct / total;
}

/* Resuming at batch skip of an epoch: the epoch's order drawn again from
 * the generator's state at the epoch's start (epoch_gen), its first skip
 * batches passed over, then the generator put back as it was saved. */
static void skip_batches(nb_batches *batches, nb_generator *epoch_gen, nb_generator *gen, int64_t skip) {
    uint64_t seed = nb_generator_seed_of(gen), offset = nb_generator_offset(gen);
    nb_generator_set_state(gen, nb_generator_seed_of(epoch_gen), nb_generator_offset(epoch_gen));
    nb_tensor *x, *y;
    for (int64_t k = 0; k < skip; k++) {
        CHECK(nb_batches_next(batches, &x, &y));
        nb_release(x);
        nb_release(y);
    }
    nb_generator_set_state(gen, seed, offset);
}

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    int rank = 0, world = 1;
    nb_comm *comm = o.distributed ? example_distributed(o.device, o.batch, &rank, &world) : NULL;
    char device_name[16];
    nb_device_str(o.device, device_name, sizeof device_name);
    nb_tensor *train_x, *train_y, *test_x, *test_y;
    CHECK(nb_fashion_mnist_load(o.data, true, &train_x, &train_y) == NB_OK);
    CHECK(nb_fashion_mnist_load(o.data, false, &test_x, &test_y) == NB_OK);
    if (o.limit > 0 && o.limit < nb_size(train_x, 0)) {
        nb_tensor *x = nb_slice(train_x, 0, 0, o.limit, 1), *y = nb_slice(train_y, 0, 0, o.limit, 1);
        CHECK(x && y);
        nb_release(train_x);
        nb_release(train_y);
        train_x = x;
        train_y = y;
    }
    nb_generator *gen = nb_generator_create(o.seed);
    nb_module *model = build_model(o.device, gen);
    nb_ddp *ddp = NULL;
    if (comm) {
        CHECK(!o.sync_bn || nb_nn_convert_sync_batch_norm(model, comm) >= 0);
        CHECK(nb_ddp_create(model, comm, NULL, &ddp) == NB_OK);
    }
    nb_named_tensor named[64];
    int n_params = nb_module_parameters(model, named, 64);
    nb_tensor *params[64];
    int64_t count = 0;
    for (int i = 0; i < n_params; i++) {
        params[i] = named[i].tensor;
        count += nb_numel(params[i]);
    }
    nb_optimizer *opt = nb_adamw_create(params, n_params, o.lr, 0.9, 0.999, 1e-8, 5e-4);
    CHECK(opt);
    nb_batches *batches = nb_batches_create(train_x, train_y, o.batch / world, true, false, gen);
    CHECK(batches && (!comm || nb_batches_shard(batches, rank, world) == NB_OK));
    int64_t steps_per_epoch = nb_batches_count(batches), total_steps = steps_per_epoch * o.epochs;
    int64_t stop = o.stop_at && o.stop_at < total_steps ? o.stop_at : total_steps;
    /* rng.1 holds gen as it was when the epoch began: the epoch's order is
     * drawn from it again on resuming mid-epoch */
    nb_generator *epoch_gen = nb_generator_create(0);
    CHECK(epoch_gen);
    nb_generator *generators[2] = {gen, epoch_gen};
    example_state state = {.model = model, .optimizers = &opt, .n_optimizers = 1, .generators = generators,
                           .n_generators = 2};
    int64_t step = example_resume(o.resume, &state);
    FILE *csv = rank == 0 ? fopen(o.csv, step ? "a" : "w") : NULL;
    if (!csv && rank == 0) fprintf(stderr, "train_cnn: cannot write %s; no loss curve\n", o.csv);
    if (csv && !step) fprintf(csv, "step,epoch,loss,lr\n");
    printf("train_cnn: %lld parameters, %lld training images, batch %lld, %d epochs on %s", (long long)count,
           (long long)nb_size(train_x, 0), (long long)o.batch, o.epochs, device_name);
    if (comm) printf(", data parallel over %d ranks%s", world, o.sync_bn ? " with SyncBatchNorm" : "");
    printf("\n");
    bool tty = isatty(fileno(stdout));
    nb_tensor *pending[REPORT_EVERY]; /* the losses since the last report, still on the device */
    double rates[REPORT_EVERY];
    int n_pending = 0;
    for (int epoch = (int)(step / steps_per_epoch) + 1; epoch <= o.epochs && step < stop; epoch++) {
        double start = now_s(), images = 0;
        int64_t i = step % steps_per_epoch;
        if (i) skip_batches(batches, epoch_gen, gen, i);
        else nb_generator_set_state(epoch_gen, nb_generator_seed_of(gen), nb_generator_offset(gen));
        nb_tensor *x, *y;
        for (; step < stop && nb_batches_next(batches, &x, &y); i++, step++) {
            nb_tensor *gx = nb_to(x, o.device), *gy = nb_to(y, o.device);
            CHECK(gx && gy);
            double lr = nb_lr_warmup_cosine(step, total_steps / 20 + 1, total_steps, o.lr, o.lr / 100);
            nb_optimizer_set_lr(opt, lr);
            nb_optimizer_zero_grad(opt);
            nb_tensor *logits = nb_module_forward(model, gx);
            CHECK(logits);
            nb_tensor *loss = nb_cross_entropy(logits, gy, NB_REDUCTION_MEAN, 0.1, -100);
            CHECK(loss && (ddp ? nb_ddp_backward(ddp, loss, NULL) : nb_backward(loss, NULL, false)) == NB_OK);
            CHECK(nb_optimizer_step(opt) == NB_OK);
            images += (double)nb_size(x, 0) * world;
            pending[n_pending] = nb_retain(loss);
            rates[n_pending++] = lr;
            if (i % REPORT_EVERY == 0 || i + 1 == steps_per_epoch || step + 1 == stop) {
                double value = flush_losses(csv, pending, rates, n_pending, step, epoch, comm);
                n_pending = 0;
                printf(tty ? "\repoch %d  step %lld/%lld  loss %.4f  %.0f images/s   "
                           : "epoch %d  step %lld/%lld  loss %.4f  %.0f images/s\n",
                       epoch, (long long)i + 1, (long long)steps_per_epoch, value,
                       images / (now_s() - start));
                fflush(stdout);
            }
            nb_tensor *temps[] = {x, y, gx, gy, logits, loss};
            for (size_t k = 0; k < sizeof temps / sizeof temps[0]; k++) nb_release(temps[k]);
            if (o.save && ((o.save_every && (step + 1) % o.save_every == 0) || step + 1 == stop))
                example_save(o.save, &state, step + 1, rank);
        }
        if (i < steps_per_epoch) break; /* stopped mid-epoch */
        double seconds = now_s() - start;
        /* without SyncBatchNorm each rank's running statistics saw its shard: rank 0's serve */
        if (ddp && !o.sync_bn) CHECK(nb_ddp_broadcast_buffers(ddp) == NB_OK);
        double accuracy = test_accuracy(model, test_x, test_y, o.device);
        printf("%sepoch %d: %.1f s, %.0f images/s, test accuracy %.2f%%\n", tty ? "\n" : "", epoch,
               seconds, images / seconds, accuracy);
    }
    if (csv) fclose(csv);
    nb_batches_free(batches);
    nb_optimizer_free(opt);
    nb_ddp_free(ddp);
    nb_module_free(model);
    nb_dist_free(comm);
    nb_generator_free(gen);
    nb_generator_free(epoch_gen);
    nb_tensor *data[] = {train_x, train_y, test_x, test_y};
    for (size_t i = 0; i < 4; i++) nb_release(data[i]);
    return 0;
}
