/* Random kernels: element i of the (contiguous) output takes Philox block
 * (seed, offset + i), mapped to its distribution by src/core/philox.h. */
#include <stdlib.h>

#include "../core/philox.h"
#include "cpu.h"

static double draw(const nb_op_args *args, int64_t i) {
    uint64_t seed = args->attrs.random.seed, offset = args->attrs.random.offset;
    double a = args->attrs.random.a, b = args->attrs.random.b;
    nb_philox_block block = nb_philox_at(seed, offset, (uint64_t)i);
    switch (args->op) {
    case NB_OP_UNIFORM: return nb_philox_uniform(block, a, b);
    case NB_OP_NORMAL: return nb_philox_normal(block, a, b);
    case NB_OP_BERNOULLI: return nb_philox_unit(block.w[0], block.w[1]) < a ? 1.0 : 0.0;
    case NB_OP_RANDINT: /* a and b hold the bounds, exact below 2^53 */
        return a + (double)(nb_philox_u64(block) % (uint64_t)(b - a));
    default: NB_ASSERT(!"not a random op"); return 0;
    }
}

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
        for (int64_t i = 0; i < len; i++) values[i] = draw(args, start + i);
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
    keyed_index *items = malloc((size_t)n * sizeof *items);
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
