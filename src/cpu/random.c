/* Random kernels: element i of the (contiguous) output takes Philox block
 * (seed, offset + i), mapped to its distribution by src/core/philox.h. */
#include <stdlib.h>

#include "../core/philox.h"
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
