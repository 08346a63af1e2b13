/* Attention on the CPU: the fused kernel against the composed ops, f32,
 * batch 1, 8 heads of 64, sequence 256 to 4096, causal and not. Prints a
 * JSON line per case: median forward and forward+backward milliseconds and
 * the peak tensor memory each needs beyond its inputs.
 *
 *   bench_attention [--max-seq N] [--repeats N] [--help]
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

int main(int argc, char **argv) {
    int64_t max_seq = 4096;
    int repeats = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-seq") && i + 1 < argc) max_seq = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else {
            printf("usage: bench_attention [--max-seq N] [--repeats N]\n"
                   "  --max-seq  the longest sequence, from 256 doubling (default 4096)\n"
                   "  --repeats  runs per case; the median is printed (default 3)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (max_seq < 256 || repeats < 1 || repeats > 50) {
        fprintf(stderr, "bench_attention: needs --max-seq >= 256 and --repeats in [1, 50], got %lld and %d\n",
                (long long)max_seq, repeats);
        return 2;
    }
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
