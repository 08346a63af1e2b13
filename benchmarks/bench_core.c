/* Core CPU benchmarks, printed as JSON lines (one object per measurement):
 *   matmul      nb_matmul against a direct cblas_sgemm call, f32, n^3 for n in 256, 1024, 2048
 *   add         elementwise add of 2^24 floats against memcpy of the same bytes
 *   overhead    a 1-element add through the public API, in ns per op
 * Each figure is the median of --repeat runs after one warm-up run.
 *
 *   bench_core [--repeat N] [--quick]
 */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

static void die(const char *what) {
    fprintf(stderr, "bench_core: %s: %s\n", what, nb_last_error());
    exit(1);
}

/* Times one call of each of fn_a and fn_b per round, alternating, so both
 * see the same machine state; writes the medians in ms. */
typedef void (*timed_fn)(void *ctx);
static void time_pair(timed_fn fn_a, timed_fn fn_b, void *ctx, int repeat, double *ms_a,
                      double *ms_b) {
    double *a = malloc((size_t)repeat * sizeof *a), *b = malloc((size_t)repeat * sizeof *b);
    if (!a || !b) die("out of memory");
    fn_a(ctx);
    fn_b(ctx);
    for (int r = 0; r < repeat; r++) {
        double t0 = bench_now_ms();
        fn_a(ctx);
        double t1 = bench_now_ms();
        fn_b(ctx);
        double t2 = bench_now_ms();
        a[r] = t1 - t0;
        b[r] = t2 - t1;
    }
    *ms_a = bench_median(a, repeat);
    *ms_b = bench_median(b, repeat);
    free(a);
    free(b);
}

typedef struct matmul_ctx {
    int64_t n;
    nb_tensor *a, *b;
    float *c;
} matmul_ctx;

static void run_nb_matmul(void *p) {
    matmul_ctx *m = p;
    nb_tensor *c = nb_matmul(m->a, m->b);
    if (!c) die("nb_matmul");
    nb_release(c);
}

static void run_sgemm(void *p) {
    matmul_ctx *m = p;
    int n = (int)m->n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, nb_data(m->a), n,
                nb_data(m->b), n, 0.0f, m->c, n);
}

static void bench_matmul(int64_t n, int repeat) {
    int64_t shape[2] = {n, n};
    matmul_ctx m = {n, nb_uniform(2, shape, -1, 1, NB_F32, nb_cpu(), NULL),
                    nb_uniform(2, shape, -1, 1, NB_F32, nb_cpu(), NULL), malloc((size_t)(n * n) * 4)};
    if (!m.a || !m.b || !m.c) die("matmul inputs");
    double ms, ref_ms;
    time_pair(run_nb_matmul, run_sgemm, &m, repeat, &ms, &ref_ms);
    double gflop = 2.0 * n * n * n * 1e-9;
    printf("{\"bench\": \"matmul\", \"impl\": \"nabla\", \"device\": \"cpu\", \"shape\": "
           "\"%lldx%lldx%lld\", \"dtype\": \"f32\", \"ms\": %.4f, \"gflops\": %.2f, "
           "\"ref_impl\": \"cblas_sgemm\", \"ref_ms\": %.4f, \"ref_gflops\": %.2f, \"ratio\": %.3f}\n",
           (long long)n, (long long)n, (long long)n, ms, gflop / ms * 1e3, ref_ms,
           gflop / ref_ms * 1e3, ref_ms / ms);
    nb_release(m.a);
    nb_release(m.b);
    free(m.c);
}

typedef struct add_ctx {
    nb_tensor *a, *b;
    void *dst;
    size_t bytes;
} add_ctx;

static void run_nb_add(void *p) {
    add_ctx *x = p;
    nb_tensor *c = nb_add(x->a, x->b);
    if (!c) die("nb_add");
    nb_release(c);
}

static void run_memcpy(void *p) {
    add_ctx *x = p;
    memcpy(x->dst, nb_data(x->a), x->bytes);
}

/* Bandwidth counts bytes moved: add reads two arrays and writes one, memcpy
 * reads one and writes one. */
static void bench_add(int64_t n, int repeat) {
    add_ctx x = {nb_uniform(1, &n, -1, 1, NB_F32, nb_cpu(), NULL),
                 nb_uniform(1, &n, -1, 1, NB_F32, nb_cpu(), NULL), malloc((size_t)n * 4),
                 (size_t)n * 4};
    if (!x.a || !x.b || !x.dst) die("add inputs");
    memset(x.dst, 0, x.bytes);
    double ms, ref_ms;
    time_pair(run_nb_add, run_memcpy, &x, repeat, &ms, &ref_ms);
    double gbps = 3.0 * x.bytes / ms * 1e-6, ref_gbps = 2.0 * x.bytes / ref_ms * 1e-6;
    printf("{\"bench\": \"add\", \"impl\": \"nabla\", \"device\": \"cpu\", \"shape\": \"%lld\", "
           "\"dtype\": \"f32\", \"ms\": %.4f, \"gbps\": %.2f, \"ref_impl\": \"memcpy\", "
           "\"ref_ms\": %.4f, \"ref_gbps\": %.2f, \"ratio\": %.3f}\n",
           (long long)n, ms, gbps, ref_ms, ref_gbps, gbps / ref_gbps);
    nb_release(x.a);
    nb_release(x.b);
    free(x.dst);
}

static void bench_overhead(int repeat) {
    const int calls = 200000;
    nb_tensor *a = nb_scalar(1, NB_F32, nb_cpu()), *b = nb_scalar(2, NB_F32, nb_cpu());
    if (!a || !b) die("overhead inputs");
    double *ns = malloc((size_t)repeat * sizeof *ns);
    for (int r = -1; r < repeat; r++) {
        double t0 = bench_now_ms();
        for (int i = 0; i < calls; i++) nb_release(nb_add(a, b));
        double per_op = (bench_now_ms() - t0) * 1e6 / calls;
        if (r >= 0) ns[r] = per_op;
    }
    printf("{\"bench\": \"op_overhead\", \"impl\": \"nabla\", \"device\": \"cpu\", \"shape\": "
           "\"1\", \"dtype\": \"f32\", \"op\": \"add\", \"ns_per_op\": %.1f, \"ms\": %.6f, "
           "\"ref_impl\": null, \"ref_ms\": null}\n",
           bench_median(ns, repeat), bench_median(ns, repeat) * 1e-6);
    free(ns);
    nb_release(a);
    nb_release(b);
}

int main(int argc, char **argv) {
    int repeat = 9;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else {
            printf("usage: bench_core [--repeat N] [--quick]\n"
                   "Prints JSON lines: f32 matmul at 256, 1024 and 2048 cubed against cblas_sgemm,\n"
                   "elementwise add of 2^24 floats against memcpy, and the per-op overhead of a\n"
                   "1-element add. Figures are medians of N runs (default 9); --quick runs the\n"
                   "small sizes only.\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (repeat < 1) repeat = 1;
    nb_manual_seed(0);
    bench_matmul(256, repeat);
    if (!quick) {
        bench_matmul(1024, repeat);
        bench_matmul(2048, repeat > 5 ? 5 : repeat);
    }
    bench_add(quick ? (int64_t)1 << 20 : (int64_t)1 << 24, repeat);
    bench_overhead(repeat);
    return 0;
}
