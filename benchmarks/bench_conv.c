/* Convolution, BatchNorm and training-step benchmarks, printed as JSON lines
 * (the same names as benchmarks/torch_conv.py prints for PyTorch):
 *   conv        ResNet-18's conv layers and MobileNetV2's pointwise and
 *               depthwise 3x3 layers: forward, and forward + backward (input
 *               and weight gradients), GFLOP/s counted as 2 * MACs (x3 with
 *               the backward)
 *   batch_norm  training-mode BatchNorm2d forward + backward, GB/s
 * Each figure is the median of --repeat timings after a warm-up; on CUDA the
 * device is synchronized around each timing.
 *
 *   bench_conv [--device cpu|cuda] [--dtype f32|bf16|f16] [--batch N] [--repeat N]
 *              [--only resnet|mobilenet|bn]
 */
#define _POSIX_C_SOURCE 199309L
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

typedef struct conv_layer {
    const char *net, *name;
    int64_t in, out, size;
    int kernel, stride, groups;
} conv_layer;

/* ResNet-18 (224x224 input) and MobileNetV2's characteristic layers. */
static const conv_layer layers[] = {
    {"resnet18", "conv1_7x7", 3, 64, 224, 7, 2, 1},
    {"resnet18", "layer1_3x3", 64, 64, 56, 3, 1, 1},
    {"resnet18", "layer2_3x3_s2", 64, 128, 56, 3, 2, 1},
    {"resnet18", "layer2_3x3", 128, 128, 28, 3, 1, 1},
    {"resnet18", "layer2_down_1x1_s2", 64, 128, 56, 1, 2, 1},
    {"resnet18", "layer3_3x3", 256, 256, 14, 3, 1, 1},
    {"resnet18", "layer4_3x3", 512, 512, 7, 3, 1, 1},
    {"mobilenetv2", "dw3x3_32x112", 32, 32, 112, 3, 1, 32},
    {"mobilenetv2", "dw3x3_96x112_s2", 96, 96, 112, 3, 2, 96},
    {"mobilenetv2", "dw3x3_144x56", 144, 144, 56, 3, 1, 144},
    {"mobilenetv2", "dw3x3_192x28", 192, 192, 28, 3, 1, 192},
    {"mobilenetv2", "dw3x3_576x14", 576, 576, 14, 3, 1, 576},
    {"mobilenetv2", "dw3x3_960x7", 960, 960, 7, 3, 1, 960},
    {"mobilenetv2", "pw1x1_144to24x56", 144, 24, 56, 1, 1, 1},
    {"mobilenetv2", "pw1x1_384to64x14", 384, 64, 14, 1, 1, 1},
    {"mobilenetv2", "pw1x1_960to160x7", 960, 160, 7, 1, 1, 1},
};

static int repeat = 5;
static nb_device device;

static void die(const char *what) {
    fprintf(stderr, "bench_conv: %s: %s\n", what, nb_last_error());
    exit(1);
}

/* The clock after the device's queued work is done. */
static double now_ms(void) {
    if (device.type == NB_DEVICE_CUDA && nb_cuda_synchronize(device.index) != NB_OK) die("sync");
    return bench_now_ms();
}

typedef struct work {
    nb_tensor *x, *w, *bias, *running_mean, *running_var;
    const conv_layer *layer;
    bool backward;
} work;

/* The backward of y with an incoming gradient of ones. */
static void backward(nb_tensor *y) {
    nb_tensor *ones = nb_ones(nb_ndim(y), nb_shape(y), nb_dtype_of(y), device);
    if (!ones || nb_backward(y, ones, false) != NB_OK) die("nb_backward");
    nb_release(ones);
}

static void run_conv(const work *k) {
    const conv_layer *l = k->layer;
    int stride[2] = {l->stride, l->stride}, padding[2] = {l->kernel / 2, l->kernel / 2};
    nb_tensor *y = nb_conv2d(k->x, k->w, NULL, stride, padding, NULL, l->groups);
    if (!y) die("nb_conv2d");
    if (k->backward) backward(y);
    nb_release(y);
}

static void run_batch_norm(const work *k) {
    nb_tensor *y = nb_batch_norm(k->x, k->running_mean, k->running_var, k->w, k->bias, true, 0.1, 1e-5);
    if (!y) die("nb_batch_norm");
    if (k->backward) backward(y);
    nb_release(y);
}

static double median_ms(void (*run)(const work *), const work *k) {
    double *ms = malloc((size_t)repeat * sizeof *ms);
    if (!ms) die("out of memory");
    run(k); /* warm-up: allocator, algorithm caches */
    for (int r = 0; r < repeat; r++) {
        double start = now_ms();
        run(k);
        ms[r] = now_ms() - start;
    }
    double median = bench_median(ms, repeat);
    free(ms);
    return median;
}

/* A random input, a leaf requiring a gradient when grad. */
static nb_tensor *leaf(int ndim, const int64_t *shape, nb_dtype dtype, bool grad) {
    nb_tensor *t = nb_normal(ndim, shape, 0, 1, dtype, device, NULL);
    if (!t || (grad && nb_set_requires_grad(t, true) != NB_OK)) die("nb_normal");
    return t;
}

static void bench_layer(const conv_layer *l, int64_t batch, nb_dtype dtype, const char *device_name) {
    int64_t x_shape[4] = {batch, l->in, l->size, l->size};
    int64_t w_shape[4] = {l->out, l->in / l->groups, l->kernel, l->kernel};
    int64_t out = (l->size + 2 * (l->kernel / 2) - l->kernel) / l->stride + 1;
    double macs = (double)batch * (double)l->out * (double)(out * out) * (double)(l->in / l->groups) *
                  l->kernel * l->kernel;
    for (int pass = 0; pass < 2; pass++) {
        work k = {leaf(4, x_shape, dtype, pass), leaf(4, w_shape, dtype, pass), NULL, NULL, NULL, l,
                  pass == 1};
        double ms = median_ms(run_conv, &k);
        double flops = 2 * macs * (pass ? 3 : 1);
        printf("{\"impl\": \"nabla\", \"bench\": \"conv\", \"net\": \"%s\", \"layer\": \"%s\", "
               "\"pass\": \"%s\", \"batch\": %lld, \"dtype\": \"%s\", \"device\": \"%s\", "
               "\"ms\": %.3f, \"GFLOP/s\": %.1f}\n",
               l->net, l->name, pass ? "fwd+bwd" : "fwd", (long long)batch, nb_dtype_name(dtype),
               device_name, ms, flops / ms * 1e-6);
        fflush(stdout);
        nb_release(k.x);
        nb_release(k.w);
    }
}

/* BatchNorm2d of [batch, 64, 56, 56] in training mode. */
static void bench_batch_norm(int64_t batch, nb_dtype dtype, const char *device_name) {
    int64_t shape[4] = {batch, 64, 56, 56}, c = 64;
    for (int pass = 0; pass < 2; pass++) {
        work k = {leaf(4, shape, dtype, pass), leaf(1, &c, dtype, pass), leaf(1, &c, dtype, pass),
                  nb_zeros(1, &c, NB_F32, device), nb_ones(1, &c, NB_F32, device), NULL, pass == 1};
        double ms = median_ms(run_batch_norm, &k);
        double bytes = (double)nb_numel(k.x) * (double)nb_dtype_size(dtype) * (pass ? 5 : 2);
        printf("{\"impl\": \"nabla\", \"bench\": \"batch_norm\", \"layer\": \"bn_64x56\", "
               "\"pass\": \"%s\", \"batch\": %lld, \"dtype\": \"%s\", \"device\": \"%s\", "
               "\"ms\": %.3f, \"GB/s\": %.1f}\n",
               pass ? "fwd+bwd" : "fwd", (long long)batch, nb_dtype_name(dtype), device_name, ms,
               bytes / ms * 1e-6);
        fflush(stdout);
        nb_tensor *all[5] = {k.x, k.w, k.bias, k.running_mean, k.running_var};
        for (int i = 0; i < 5; i++) nb_release(all[i]);
    }
}

static void usage(FILE *to) {
    fprintf(to, "usage: bench_conv [--device cpu|cuda] [--dtype f32|bf16|f16] [--batch N] [--repeat N]\n"
                "                  [--only resnet|mobilenet|bn]\n"
                "  --device   where to run (default cpu)\n"
                "  --dtype    f32 (default); bf16 and f16 run on CUDA\n"
                "  --batch    images per batch (default 64)\n"
                "  --repeat   timings per figure, the median is reported (default 5)\n"
                "  --only     one group of benchmarks\n");
}

int main(int argc, char **argv) {
    device = nb_cpu();
    nb_dtype dtype = NB_F32;
    int64_t batch = 64;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--help")) return usage(stdout), 0;
        if (!strcmp(argv[i], "--device")) device = !strcmp(value, "cuda") ? nb_cuda(0) : nb_cpu();
        else if (!strcmp(argv[i], "--dtype"))
            dtype = !strcmp(value, "bf16") ? NB_BF16 : !strcmp(value, "f16") ? NB_F16 : NB_F32;
        else if (!strcmp(argv[i], "--batch")) batch = atoll(value);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(value);
        else if (!strcmp(argv[i], "--only")) only = value;
        else return usage(stderr), 2;
        i++;
    }
    if (batch < 1 || repeat < 1) return usage(stderr), 2;
    if (device.type == NB_DEVICE_CUDA && nb_cuda_device_count() == 0) {
        nb_cuda_synchronize(0);
        printf("bench_conv: skipped: %s\n", nb_last_error());
        return 0;
    }
    char device_name[16];
    nb_device_str(device, device_name, sizeof device_name);
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        bool resnet = !strcmp(layers[i].net, "resnet18");
        if (only && strcmp(only, resnet ? "resnet" : "mobilenet")) continue;
        bench_layer(&layers[i], batch, dtype, device_name);
    }
    if (!only || !strcmp(only, "bn")) bench_batch_norm(batch, dtype, device_name);
    return 0;
}
