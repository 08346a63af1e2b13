/* Random kernels: element i of the (contiguous) output takes Philox block
 * (seed, offset + i), mapped to its distribution by src/core/philox.h. */
#include <math.h>
#include <stdlib.h>

#include "../core/multinomial.h"
#include "cpu.h"

nb_status nb__cpu_random(const nb_op_args *args) {
    nb_tensor *out = args->out;
    int64_t n = nb_numel(out);
    int64_t chunks = (n + NB_CPU_CHUNK - 1) / NB_CPU_CHUNK;
    size_t size = nb_dtype_size(out->dtype);
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t c = 0; c < chunks; c++) {
        double values[NB_CPU_CHUNK];
        int64_t start = c * NB_CPU_CHUNK;
        int64_t len = n - start < NB_CPU_CHUNK ? n - start : NB_CPU_CHUNK;
        for (int64_t i = 0; i < len; i++)
            values[i] = nb_philox_draw(args->op, args->attrs.random.seed, args->attrs.random.offset,
                                       (uint64_t)(start + i), args->attrs.random.a,
                                       args->attrs.random.b);
        nb__cpu_convert(out->dtype, nb__data(out) + start * (int64_t)size, 1, NB_F64, values, 1,
                        len);
    }
    return NB_OK;
}

typedef struct keyed_index {
    uint64_t key;
    int64_t index;
} keyed_index;

static int compare_keyed(const void *pa, const void *pb) {
    const keyed_index *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* A permutation as the order of n random 64-bit keys (ties by index): any
 * device that sorts the same keys gets the same permutation. */
nb_status nb__cpu_randperm(const nb_op_args *args) {
    nb_tensor *out = args->out;
    int64_t n = nb_numel(out);
    keyed_index *items = nb__malloc((size_t)n * sizeof *items);
    NB_CHECK(items, NB_ERR_OOM, "nb_randperm: out of host memory sorting %lld keys",
             (long long)n);
    for (int64_t i = 0; i < n; i++) {
        items[i].key = nb_philox_u64(
            nb_philox_at(args->attrs.random.seed, args->attrs.random.offset, (uint64_t)i));
        items[i].index = i;
    }
    qsort(items, (size_t)n, sizeof *items, compare_keyed);
    size_t size = nb_dtype_size(out->dtype);
    for (int64_t i = 0; i < n; i++)
        nb__cpu_convert(out->dtype, nb__data(out) + i * (int64_t)size, 1, NB_I64,
                        &items[i].index, 1, 1);
    free(items);
    return NB_OK;
}

/* The samples of one row of weights w [C] into picked, or the row's problem.
 * Targets come from the shared recipe (src/core/multinomial.h); with
 * replacement they are searched in the prefix sums of q, without it in a
 * Fenwick tree of q (Fenwick, 1994) that loses each picked category. */
static nb_multinomial_problem sample_row(const double *w, int64_t categories, uint64_t *tree,
                                         const nb_op_args *args, int64_t row, int64_t *picked) {
    double max = 0;
    int64_t positive = 0;
    for (int64_t i = 0; i < categories; i++) {
        if (!(w[i] >= 0 && w[i] < INFINITY)) return NB_MULTINOMIAL_BAD_WEIGHT;
        if (w[i] > max) max = w[i];
        positive += w[i] > 0;
    }
    int64_t samples = args->attrs.multinomial.samples;
    bool replacement = args->attrs.multinomial.replacement;
    if (max == 0) return NB_MULTINOMIAL_ZERO_SUM;
    if (!replacement && positive < samples) return NB_MULTINOMIAL_TOO_FEW;
    int bits = nb_multinomial_bits(categories);
    uint64_t total = 0;
    for (int64_t i = 1; i <= categories; i++) tree[i] = 0;
    for (int64_t i = 1; i <= categories; i++) { /* tree[i] sums q over (i - lowbit(i), i] */
        uint64_t q = nb_multinomial_weight(w[i - 1], max, bits);
        total += q;
        tree[i] += q;
        int64_t parent = i + (i & -i);
        if (parent <= categories) tree[parent] += tree[i];
    }
    int64_t top = 1;
    while (top * 2 <= categories) top *= 2;
    for (int64_t s = 0; s < samples; s++) {
        uint64_t left = nb_multinomial_target(args->attrs.multinomial.seed,
                                              args->attrs.multinomial.offset,
                                              (uint64_t)(row * samples + s), total);
        int64_t at = 0; /* the most categories whose sum of q is <= the target */
        for (int64_t step = top; step; step /= 2)
            if (at + step <= categories && tree[at + step] <= left) {
                at += step;
                left -= tree[at];
            }
        picked[s] = at;
        if (replacement) continue;
        uint64_t q = nb_multinomial_weight(w[at], max, bits);
        total -= q;
        for (int64_t i = at + 1; i <= categories; i += i & -i) tree[i] -= q;
    }
    return NB_MULTINOMIAL_OK;
}

nb_status nb__cpu_multinomial(const nb_op_args *args) {
    const nb_tensor *weights = args->in[0];
    nb_tensor *out = args->out;
    int64_t categories = weights->shape[1], rows = weights->shape[0];
    int64_t samples = args->attrs.multinomial.samples;
    size_t size = nb__dtype_size(weights->dtype);
    int64_t bad_row = rows, bad_positive = 0;
    nb_multinomial_problem problem = NB_MULTINOMIAL_OK;
    bool failed = false;
#pragma omp parallel if (rows > 1 && rows * categories >= NB_CPU_PARALLEL_MIN)
    {
        double *w = nb__malloc((size_t)categories * sizeof *w);
        uint64_t *tree = nb__malloc((size_t)(categories + 1) * sizeof *tree);
        if (!w || !tree) __atomic_store_n(&failed, true, __ATOMIC_RELAXED);
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < rows; r++) {
            if (!w || !tree) continue;
            nb__cpu_convert(NB_F64, w, 1, weights->dtype,
                            nb__data(weights) + r * categories * (int64_t)size, 1, categories);
            nb_multinomial_problem p =
                sample_row(w, categories, tree, args, r, (int64_t *)nb__data(out) + r * samples);
            if (p != NB_MULTINOMIAL_OK) {
                int64_t positive = 0;
                for (int64_t i = 0; i < categories; i++) positive += w[i] > 0;
#pragma omp critical(nb_multinomial_problem)
                if (r < bad_row) bad_row = r, problem = p, bad_positive = positive;
            }
        }
        free(w);
        free(tree);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "nb_multinomial: out of host memory for %lld categories",
             (long long)categories);
    return problem == NB_MULTINOMIAL_OK ? NB_OK
                                        : nb__multinomial_failed(bad_row, problem, bad_positive, samples);
}
