/* Attention, printed as JSON lines.
 *
 * CPU (the default): the fused kernel against the composed ops, f32, batch
 * 1, 8 heads of 64, sequence 256 to 4096, causal and not: median forward
 * and forward+backward milliseconds and the peak tensor memory each needs
 * beyond its inputs.
 *
 * CUDA (--device cuda): the fused kernel in bf16 at head dims 64 and 128,
 * sequence 512 to 8192 with batch x sequence = 16384 tokens and 2048 wide
 * (2048 / head dim heads), causal and not: forward and forward+backward
 * TFLOP/s and peak memory, the same lines benchmarks/torch_attention.py
 * prints for PyTorch's scaled_dot_product_attention; then the peak memory
 * of one head group (batch 1, 16 heads of 128) from sequence 1024 to 32768.
 * FLOPs follow FlashAttention's count: 4 B H S^2 D forward (half when
 * causal), 2.5 times that backward.
 *
 *   bench_attention [--device cpu|cuda] [--max-seq N] [--repeats N] [--help]
 */
#define _POSIX_C_SOURCE 199309L
#include <nabla/nabla.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define CHECK(expr)                                                      \
    do {                                                                 \
        if (!(expr)) {                                                   \
            fprintf(stderr, "bench_attention: %s\n", nb_last_error());   \
            return 1;                                                    \
        }                                                                \
    } while (0)

typedef nb_tensor *(*attention_fn)(const nb_tensor *, const nb_tensor *, const nb_tensor *,
                                   const nb_tensor *, bool, double, double, nb_generator *);

/* One forward (and backward with g) of fn; its peak memory in MiB. */
static int run(attention_fn fn, nb_tensor *const qkv[3], nb_tensor *g, bool causal, double *ms,
               double *peak_mb) {
    nb_cpu_memory_stats before, after;
    nb_cpu_memory_stats_get(&before);
    nb_cpu_memory_stats_reset();
    double start = bench_now_ms();
    nb_tensor *y = fn(qkv[0], qkv[1], qkv[2], NULL, causal, 0, 0, NULL);
    CHECK(y && (!g || nb_backward(y, g, false) == NB_OK));
    *ms = bench_now_ms() - start;
    nb_cpu_memory_stats_get(&after);
    *peak_mb = (double)(after.peak_allocated - before.allocated) / (1 << 20);
    nb_release(y);
    for (int i = 0; g && i < 3; i++) nb_zero_grad(qkv[i]);
    return 0;
}

static int bench_cpu(int64_t max_seq, int repeats) {
    nb_generator *gen = nb_generator_create(1);
    const char *names[2] = {"composed", "fused"};
    attention_fn fns[2] = {nb_attention_composed, nb_flash_attention};
    for (int64_t seq = 256; seq <= max_seq; seq *= 2)
        for (int causal = 0; causal < 2; causal++)
            for (int impl = 0; impl < 2; impl++) {
                int64_t shape[4] = {1, 8, seq, 64};
                nb_tensor *t[4];
                for (int i = 0; i < 4; i++) CHECK(t[i] = nb_normal(4, shape, 0, 1, NB_F32, nb_cpu(), gen));
                double fwd[50], both[50], fwd_mb = 0, both_mb = 0;
                for (int r = 0; r < repeats; r++)
                    if (run(fns[impl], t, NULL, causal, &fwd[r], &fwd_mb)) return 1;
                for (int i = 0; i < 3; i++) CHECK(nb_set_requires_grad(t[i], true) == NB_OK);
                for (int r = 0; r < repeats; r++)
                    if (run(fns[impl], t, t[3], causal, &both[r], &both_mb)) return 1;
                printf("{\"bench\": \"attention_cpu\", \"impl\": \"%s\", \"batch\": 1, \"heads\": 8, "
                       "\"head_dim\": 64, \"seq\": %lld, \"causal\": %s, \"dtype\": \"f32\", "
                       "\"fwd_ms\": %.2f, \"fwd_bwd_ms\": %.2f, \"fwd_peak_mib\": %.1f, "
                       "\"fwd_bwd_peak_mib\": %.1f}\n",
                       names[impl], (long long)seq, causal ? "true" : "false",
                       bench_median(fwd, repeats), bench_median(both, repeats), fwd_mb, both_mb);
                fflush(stdout);
                for (int i = 0; i < 4; i++) nb_release(t[i]);
            }
    nb_generator_free(gen);
    return 0;
}

/* ---- CUDA ---- */

/* One call of the fused attention: the forward, and with g the backward. */
static int cuda_pass(nb_tensor *const qkv[3], nb_tensor *g, bool causal) {
    nb_tensor *y = nb_flash_attention(qkv[0], qkv[1], qkv[2], NULL, causal, 0, 0, NULL);
    CHECK(y && (!g || nb_backward(y, g, false) == NB_OK));
    nb_release(y);
    for (int i = 0; g && i < 3; i++) nb_zero_grad(qkv[i]);
    return 0;
}

/* Median milliseconds per pass (CUDA events around 10 passes, after one
 * warm-up round) and the peak memory of one pass beyond its inputs. */
static int cuda_time(nb_tensor *const qkv[3], nb_tensor *g, bool causal, int repeats, double *ms,
                     double *peak_mib) {
    nb_event *start, *end;
    CHECK(nb_cuda_event_create(0, &start) == NB_OK && nb_cuda_event_create(0, &end) == NB_OK);
    double times[50];
    for (int r = -1; r < repeats; r++) {
        CHECK(nb_cuda_event_record(start, NULL) == NB_OK);
        for (int i = 0; i < 10; i++)
            if (cuda_pass(qkv, g, causal)) return 1;
        float elapsed;
        CHECK(nb_cuda_event_record(end, NULL) == NB_OK && nb_cuda_event_synchronize(end) == NB_OK &&
              nb_cuda_event_elapsed_ms(start, end, &elapsed) == NB_OK);
        if (r >= 0) times[r] = elapsed / 10.0;
    }
    nb_cuda_event_destroy(start);
    nb_cuda_event_destroy(end);
    *ms = bench_median(times, repeats);
    nb_cuda_memory_stats before, after;
    CHECK(nb_cuda_memory_stats_reset(0) == NB_OK && nb_cuda_memory_stats_get(0, &before) == NB_OK);
    if (cuda_pass(qkv, g, causal)) return 1;
    CHECK(nb_cuda_synchronize(0) == NB_OK && nb_cuda_memory_stats_get(0, &after) == NB_OK);
    *peak_mib = (double)(after.peak_allocated - before.allocated) / (1 << 20);
    return 0;
}

/* Forward and forward+backward of batch x heads x seq x dim, bf16. */
static int cuda_case(int64_t batch, int64_t heads, int64_t seq, int64_t dim, bool causal,
                     int repeats, nb_generator *gen) {
    int64_t shape[4] = {batch, heads, seq, dim};
    nb_tensor *t[4];
    for (int i = 0; i < 4; i++) CHECK(t[i] = nb_normal(4, shape, 0, 1, NB_BF16, nb_cuda(0), gen));
    double flops = 4.0 * (double)(batch * heads) * (double)seq * (double)seq * (double)dim / (causal ? 2 : 1);
    const char *passes[2] = {"fwd", "fwd_bwd"};
    for (int pass = 0; pass < 2; pass++) {
        if (pass) for (int i = 0; i < 3; i++) CHECK(nb_set_requires_grad(t[i], true) == NB_OK);
        double ms, peak;
        if (cuda_time(t, pass ? t[3] : NULL, causal, repeats, &ms, &peak)) return 1;
        double count = pass ? 3.5 * flops : flops;
        printf("{\"impl\": \"nabla\", \"bench\": \"attention\", \"pass\": \"%s\", \"dtype\": \"bf16\", "
               "\"shape\": \"b%lld h%lld s%lld d%lld %s\", \"ms\": %.4f, \"TFLOP/s\": %.1f, "
               "\"peak_mib\": %.1f}\n",
               passes[pass], (long long)batch, (long long)heads, (long long)seq, (long long)dim,
               causal ? "causal" : "full", ms, count / ms * 1e-9, peak);
        fflush(stdout);
    }
    for (int i = 0; i < 4; i++) nb_release(t[i]);
    return 0;
}

static int bench_cuda(int64_t max_seq, int repeats) {
    if (nb_cuda_device_count() == 0) {
        nb_cuda_synchronize(0);
        printf("bench_attention: skipped: %s\n", nb_last_error());
        return 0;
    }
    nb_cuda_properties props;
    CHECK(nb_cuda_get_properties(0, &props) == NB_OK);
    printf("{\"impl\": \"nabla\", \"device\": \"%s\", \"sm\": %d%d}\n", props.name, props.major,
           props.minor);
    nb_generator *gen = nb_generator_create(1);
    for (int64_t dim = 64; dim <= 128; dim *= 2)
        for (int64_t seq = 512; seq <= max_seq; seq *= 2)
            for (int causal = 0; causal < 2; causal++)
                if (cuda_case(16384 / seq, 2048 / dim, seq, dim, causal, repeats, gen)) return 1;
    for (int64_t seq = 1024; seq <= 8 * max_seq; seq *= 2)
        if (cuda_case(1, 16, seq, 128, true, 1, gen)) return 1;
    nb_generator_free(gen);
    return 0;
}

int main(int argc, char **argv) {
    int64_t max_seq = 0;
    int repeats = 0;
    bool cuda = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-seq") && i + 1 < argc) max_seq = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cuda")) cuda = true, i++;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cpu")) i++;
        else {
            printf("usage: bench_attention [--device cpu|cuda] [--max-seq N] [--repeats N]\n"
                   "  --device   cpu: fused against composed in f32; cuda: the fused kernel in bf16\n"
                   "  --max-seq  the longest sequence, doubling from 256 on the CPU (default 4096)\n"
                   "             and from 512 on CUDA (default 8192; the memory sweep goes 8x further)\n"
                   "  --repeats  timings per case; the median is printed (default 3 on the CPU, 7 on CUDA)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!max_seq) max_seq = cuda ? 8192 : 4096;
    if (!repeats) repeats = cuda ? 7 : 3;
    if (max_seq < (cuda ? 512 : 256) || repeats < 1 || repeats > 50) {
        fprintf(stderr, "bench_attention: needs --max-seq >= %d and --repeats in [1, 50], got %lld and %d\n",
                cuda ? 512 : 256, (long long)max_seq, repeats);
        return 2;
    }
    return cuda ? bench_cuda(max_seq, repeats) : bench_cpu(max_seq, repeats);
}
