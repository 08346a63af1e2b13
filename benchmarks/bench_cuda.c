/* CUDA benchmarks, printed as JSON lines (one object per measurement; the
 * same names as benchmarks/torch_ops.py prints for PyTorch):
 *   copy        device-to-device copy of 2^28 f32: the bandwidth ceiling
 *   add         elementwise add of two 2^28 f32 tensors
 *   mul_bcast   [2^14, 2^14] * [2^14] f32 (a row broadcast)
 *   softmax     along the rows of 8192 x 8192, f32 and bf16
 *   matmul      n^3 for n in 4096, 8192: bf16, f16, f32 and f32 with TF32
 *   bmm         [64, 1024, 1024] @ [64, 1024, 64], bf16
 *   layer_norm, rms_norm  over the rows of [16384, 4096] (weights and, for
 *               LayerNorm, a bias), f32 and bf16: the forward ("fwd", x read
 *               and y written) and forward+backward ("fwd_bwd", also g and x
 *               read and dx written; the weight gradients are not counted)
 * Bandwidth counts bytes read plus bytes written. Each figure is the median
 * of --repeat timings (CUDA events around --iters calls) after a warm-up.
 *
 *   bench_cuda [--repeat N] [--iters N] [--quick] [--device N]
 */
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int repeat = 7, iters = 10, device = 0;
static bool quick;

static void die(const char *what) {
    fprintf(stderr, "bench_cuda: %s: %s\n", what, nb_last_error());
    exit(1);
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef nb_tensor *(*op_fn)(nb_tensor *const *in);

/* Median milliseconds per call of op over in. */
static double time_op(op_fn op, nb_tensor *const *in) {
    nb_event *start, *end;
    if (nb_cuda_event_create(device, &start) || nb_cuda_event_create(device, &end))
        die("nb_cuda_event_create");
    float *ms = malloc((size_t)repeat * sizeof *ms);
    if (!ms) die("out of memory");
    for (int r = -1; r < repeat; r++) { /* round -1 warms up */
        if (nb_cuda_event_record(start, NULL)) die("nb_cuda_event_record");
        for (int i = 0; i < iters; i++) {
            nb_tensor *out = op(in);
            if (!out) die("op");
            nb_release(out);
        }
        if (nb_cuda_event_record(end, NULL) || nb_cuda_event_synchronize(end))
            die("nb_cuda_event_synchronize");
        float elapsed;
        if (nb_cuda_event_elapsed_ms(start, end, &elapsed)) die("nb_cuda_event_elapsed_ms");
        if (r >= 0) ms[r] = elapsed / (float)iters;
    }
    qsort(ms, (size_t)repeat, sizeof *ms, compare_floats);
    double median = repeat % 2 ? ms[repeat / 2] : (ms[repeat / 2 - 1] + ms[repeat / 2]) / 2;
    free(ms);
    nb_cuda_event_destroy(start);
    nb_cuda_event_destroy(end);
    return median;
}

static nb_tensor *random_tensor(int ndim, const int64_t *shape, nb_dtype dtype) {
    nb_generator *gen = nb_generator_create(1);
    nb_tensor *t = nb_uniform(ndim, shape, -1, 1, dtype, nb_cuda(device), gen);
    nb_generator_free(gen);
    if (!t) die("nb_uniform");
    return t;
}

static nb_tensor *op_clone(nb_tensor *const *in) { return nb_clone(in[0]); }
static nb_tensor *op_add(nb_tensor *const *in) { return nb_add(in[0], in[1]); }
static nb_tensor *op_mul(nb_tensor *const *in) { return nb_mul(in[0], in[1]); }
static nb_tensor *op_softmax(nb_tensor *const *in) { return nb_softmax(in[0], -1); }
static nb_tensor *op_matmul(nb_tensor *const *in) { return nb_matmul(in[0], in[1]); }

/* The norms: in = x, weight, bias (NULL for RMSNorm), g. */
static nb_tensor *norm_forward(nb_tensor *const *in) {
    return in[2] ? nb_layer_norm(in[0], 1, in[1], in[2], 1e-5) : nb_rms_norm(in[0], 1, in[1], 1e-6);
}

static nb_tensor *norm_train(nb_tensor *const *in) {
    nb_tensor *y = norm_forward(in);
    if (!y || nb_backward(y, in[3], false) != NB_OK) {
        nb_release(y);
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        if (in[i]) nb_zero_grad(in[i]);
    return y;
}

static void report_bandwidth_pass(const char *name, const char *pass, const char *dtype,
                                  const char *shape, double ms, double bytes, double ceiling_gbs) {
    double gbs = bytes / ms * 1e-6;
    printf("{\"impl\": \"nabla\", \"bench\": \"%s\", %s%s%s\"dtype\": \"%s\", \"shape\": \"%s\", "
           "\"ms\": %.4f, \"GB/s\": %.1f, \"of_copy\": %.3f}\n",
           name, pass ? "\"pass\": \"" : "", pass ? pass : "", pass ? "\", " : "", dtype, shape, ms,
           gbs, ceiling_gbs > 0 ? gbs / ceiling_gbs : 1.0);
    fflush(stdout);
}

static void report_bandwidth(const char *name, const char *dtype, const char *shape, double ms,
                             double bytes, double ceiling_gbs) {
    report_bandwidth_pass(name, NULL, dtype, shape, ms, bytes, ceiling_gbs);
}

static void report_flops(const char *name, const char *dtype, const char *shape, double ms,
                         double flops) {
    printf("{\"impl\": \"nabla\", \"bench\": \"%s\", \"dtype\": \"%s\", \"shape\": \"%s\", "
           "\"ms\": %.4f, \"TFLOP/s\": %.1f}\n",
           name, dtype, shape, ms, flops / ms * 1e-9);
    fflush(stdout);
}

/* "2^k" for n = 2^k elements. */
static const char *power_name(int64_t n, char *buf, size_t size) {
    int k = 0;
    while (((int64_t)1 << k) < n) k++;
    snprintf(buf, size, "2^%d", k);
    return buf;
}

static double bench_copy(int64_t n) {
    nb_tensor *x = random_tensor(1, &n, NB_F32);
    double ms = time_op(op_clone, &x);
    double gbs = 8.0 * (double)n / ms * 1e-6;
    char name[16];
    report_bandwidth("copy", "f32", power_name(n, name, sizeof name), ms, 8.0 * (double)n, gbs);
    nb_release(x);
    return gbs;
}

static void bench_elementwise(int64_t n, double ceiling) {
    nb_tensor *in[2] = {random_tensor(1, &n, NB_F32), random_tensor(1, &n, NB_F32)};
    char name[64], side_name[16];
    report_bandwidth("add", "f32", power_name(n, name, sizeof name), time_op(op_add, in),
                     12.0 * (double)n, ceiling);
    nb_release(in[0]);
    nb_release(in[1]);
    int64_t side = 1;
    while (side * side < n) side *= 2;
    int64_t matrix[2] = {side, side};
    nb_tensor *rows[2] = {random_tensor(2, matrix, NB_F32), random_tensor(1, &side, NB_F32)};
    power_name(side, side_name, sizeof side_name);
    snprintf(name, sizeof name, "[%s,%s]*[%s]", side_name, side_name, side_name);
    report_bandwidth("mul_bcast", "f32", name, time_op(op_mul, rows),
                     8.0 * (double)(side * side) + 4.0 * (double)side, ceiling);
    nb_release(rows[0]);
    nb_release(rows[1]);
}

static void bench_softmax(int64_t side, double ceiling) {
    int64_t shape[2] = {side, side};
    const nb_dtype dtypes[2] = {NB_F32, NB_BF16};
    for (int i = 0; i < 2; i++) {
        nb_tensor *x = random_tensor(2, shape, dtypes[i]);
        double bytes = 2.0 * (double)(side * side) * (double)nb_dtype_size(dtypes[i]);
        char name[32];
        snprintf(name, sizeof name, "%lldx%lld", (long long)side, (long long)side);
        report_bandwidth("softmax", nb_dtype_name(dtypes[i]), name, time_op(op_softmax, &x), bytes,
                         ceiling);
        nb_release(x);
    }
}

static void bench_norms(int64_t rows, int64_t width, double ceiling) {
    int64_t shape[2] = {rows, width};
    const nb_dtype dtypes[2] = {NB_F32, NB_BF16};
    char name[32];
    snprintf(name, sizeof name, "%lldx%lld", (long long)rows, (long long)width);
    for (int i = 0; i < 2; i++)
        for (int layer = 1; layer >= 0; layer--) {
            nb_tensor *in[4] = {random_tensor(2, shape, dtypes[i]), random_tensor(1, &width, dtypes[i]),
                                layer ? random_tensor(1, &width, dtypes[i]) : NULL,
                                random_tensor(2, shape, dtypes[i])};
            double tensor = (double)(rows * width) * (double)nb_dtype_size(dtypes[i]);
            const char *bench = layer ? "layer_norm" : "rms_norm";
            report_bandwidth_pass(bench, "fwd", nb_dtype_name(dtypes[i]), name,
                                  time_op(norm_forward, in), 2 * tensor, ceiling);
            for (int t = 0; t < 3; t++)
                if (in[t] && nb_set_requires_grad(in[t], true)) die("nb_set_requires_grad");
            report_bandwidth_pass(bench, "fwd_bwd", nb_dtype_name(dtypes[i]), name,
                                  time_op(norm_train, in), 5 * tensor, ceiling);
            for (int t = 0; t < 4; t++) nb_release(in[t]);
        }
}

static void bench_matmul(int64_t n, nb_dtype dtype, bool tf32) {
    int64_t shape[2] = {n, n};
    nb_tensor *in[2] = {random_tensor(2, shape, dtype), random_tensor(2, shape, dtype)};
    nb_cuda_set_tf32(tf32);
    char shape_name[32];
    snprintf(shape_name, sizeof shape_name, "%lld^3", (long long)n);
    report_flops("matmul", tf32 ? "tf32" : nb_dtype_name(dtype), shape_name,
                 time_op(op_matmul, in), 2.0 * (double)n * (double)n * (double)n);
    nb_cuda_set_tf32(false);
    nb_release(in[0]);
    nb_release(in[1]);
}

static void bench_bmm(void) {
    int64_t a_shape[3] = {64, 1024, 1024}, b_shape[3] = {64, 1024, 64};
    nb_tensor *in[2] = {random_tensor(3, a_shape, NB_BF16), random_tensor(3, b_shape, NB_BF16)};
    report_flops("bmm", "bf16", "64x[1024,1024]@[1024,64]", time_op(op_matmul, in),
                 2.0 * 64 * 1024 * 1024 * 64);
    nb_release(in[0]);
    nb_release(in[1]);
}

static void usage(FILE *to) {
    fprintf(to, "usage: bench_cuda [--repeat N] [--iters N] [--quick] [--device N]\n"
                "  --repeat N   timings per benchmark, the median is reported (default 7)\n"
                "  --iters N    calls per timing (default 10)\n"
                "  --quick      smaller sizes (2^24 elements, 4096 softmax, 2048^3 matmul)\n"
                "  --device N   the CUDA device (default 0)\n"
                "Prints JSON lines; exits 0 with a message when no GPU is present.\n");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--help")) return usage(stdout), 0;
        else return usage(stderr), 2;
    }
    if (repeat < 1 || iters < 1) return usage(stderr), 2;
    if (device >= nb_cuda_device_count()) {
        nb_cuda_synchronize(device);
        printf("bench_cuda: skipped: %s\n", nb_last_error());
        return 0;
    }
    nb_cuda_properties props;
    if (nb_cuda_get_properties(device, &props)) die("nb_cuda_get_properties");
    printf("{\"impl\": \"nabla\", \"device\": \"%s\", \"sm\": %d%d, \"memory_gib\": %.1f}\n",
           props.name, props.major, props.minor, props.total_memory / 1073741824.0);
    int64_t elements = quick ? (int64_t)1 << 24 : (int64_t)1 << 28;
    double ceiling = bench_copy(elements);
    bench_elementwise(elements, ceiling);
    bench_softmax(quick ? 4096 : 8192, ceiling);
    bench_norms(quick ? 4096 : 16384, 4096, ceiling);
    const int64_t sizes[2] = {quick ? 2048 : 4096, quick ? 2048 : 8192};
    for (int s = 0; s < (quick ? 1 : 2); s++) {
        bench_matmul(sizes[s], NB_BF16, false);
        bench_matmul(sizes[s], NB_F16, false);
        bench_matmul(sizes[s], NB_F32, false);
        bench_matmul(sizes[s], NB_F32, true);
    }
    bench_bmm();
    return 0;
}
