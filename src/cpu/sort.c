/* Sorting kernels over the rows of a contiguous [rows, n] tensor: argsort,
 * topk and searchsorted (src/ops/sort.c). Values are compared through
 * unsigned keys whose order is the value order (src/core/sort_key.h), so
 * one radix sort serves every dtype: LSD on bytes (Knuth, TAOCP vol. 3,
 * 5.2.5), skipping a byte every key shares, with the histograms of all bytes
 * counted in one pass; rows of at most SMALL_ROW elements use insertion
 * sort. Both are stable, and ties keep position order, as on CUDA. topk
 * with 8k < n streams the row through a heap of the k best instead. */
#include <stdlib.h>
#include <string.h>

#include "../core/sort_key.h"
#include "cpu.h"

#define SMALL_ROW 32

typedef struct row_buffers {
    uint64_t *keys, *keys_tmp;
    int64_t *index, *index_tmp;
} row_buffers;

static void free_buffers(row_buffers *b) {
    free(b->keys);
    free(b->keys_tmp);
    free(b->index);
    free(b->index_tmp);
}

static bool alloc_buffers(row_buffers *b, int64_t n) {
    size_t count = (size_t)(n ? n : 1);
    b->keys = nb__malloc(count * sizeof *b->keys);
    b->keys_tmp = nb__malloc(count * sizeof *b->keys_tmp);
    b->index = nb__malloc(count * sizeof *b->index);
    b->index_tmp = nb__malloc(count * sizeof *b->index_tmp);
    if (b->keys && b->keys_tmp && b->index && b->index_tmp) return true;
    free_buffers(b);
    return false;
}

/* Runs call with D the dtype as a constant, so that the nb_sort_key of an
 * always-inlined loop compiles to that dtype's few instructions. */
#define BY_DTYPE(dtype, call)                                      \
    switch (dtype) {                                               \
    case NB_F32: { const nb_dtype D = NB_F32; call; break; }       \
    case NB_F64: { const nb_dtype D = NB_F64; call; break; }       \
    case NB_F16: { const nb_dtype D = NB_F16; call; break; }       \
    case NB_BF16: { const nb_dtype D = NB_BF16; call; break; }     \
    case NB_I32: { const nb_dtype D = NB_I32; call; break; }       \
    case NB_I64: { const nb_dtype D = NB_I64; call; break; }       \
    case NB_U8: { const nb_dtype D = NB_U8; call; break; }         \
    default: { const nb_dtype D = NB_BOOL; call; break; }          \
    }
#define INLINE static inline __attribute__((always_inline))

/* The keys of row (n values of dtype), xor flip (a descending order). */
INLINE void keys_of(nb_dtype dtype, const char *row, int64_t n, uint64_t flip, uint64_t *keys) {
    int64_t size = nb_sort_key_bytes(dtype);
    for (int64_t i = 0; i < n; i++) keys[i] = nb_sort_key(dtype, row + i * size) ^ flip;
}

static void load_keys(nb_dtype dtype, const char *row, int64_t n, uint64_t flip, uint64_t *keys) {
    BY_DTYPE(dtype, keys_of(D, row, n, flip, keys));
}

static void insertion_sort(uint64_t *keys, int64_t *index, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        uint64_t key = keys[i];
        int64_t at = index[i], j = i;
        for (; j > 0 && keys[j - 1] > key; j--) {
            keys[j] = keys[j - 1];
            index[j] = index[j - 1];
        }
        keys[j] = key;
        index[j] = at;
    }
}

/* Sorts b->keys with b->index (0 .. n-1) alongside; the result ends in b's
 * keys and index arrays. */
static void radix_sort(row_buffers *b, int64_t n, int key_bytes) {
    for (int64_t i = 0; i < n; i++) b->index[i] = i;
    if (n <= SMALL_ROW) {
        insertion_sort(b->keys, b->index, n);
        return;
    }
    int64_t (*counts)[256] = calloc(8, sizeof *counts); /* 16 KiB: off the stack */
    if (!counts) { /* no memory for the histograms: the insertion sort needs none */
        insertion_sort(b->keys, b->index, n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int byte = 0; byte < key_bytes; byte++) counts[byte][(b->keys[i] >> (8 * byte)) & 255]++;
    uint64_t *keys = b->keys, *keys_out = b->keys_tmp;
    int64_t *index = b->index, *index_out = b->index_tmp;
    for (int byte = 0; byte < key_bytes; byte++) {
        int64_t *count = counts[byte];
        if (count[(keys[0] >> (8 * byte)) & 255] == n) continue; /* every key shares this byte */
        int64_t start = 0;
        for (int digit = 0; digit < 256; digit++) {
            int64_t c = count[digit];
            count[digit] = start;
            start += c;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t to = count[(keys[i] >> (8 * byte)) & 255]++;
            keys_out[to] = keys[i];
            index_out[to] = index[i];
        }
        uint64_t *k = keys;
        keys = keys_out, keys_out = k;
        int64_t *x = index;
        index = index_out, index_out = x;
    }
    free(counts);
    if (keys != b->keys) {
        memcpy(b->keys, keys, (size_t)n * sizeof *keys);
        memcpy(b->index, index, (size_t)n * sizeof *index);
    }
}

/* Whether (key a, position ia) comes before (key b, position ib). */
static bool before(uint64_t a, int64_t ia, uint64_t b, int64_t ib) {
    return a < b || (a == b && ia < ib);
}

/* Moves heap entry at down a max-heap of size k (the last kept element on
 * top), ordered by before(). */
static void sift_down(uint64_t *keys, int64_t *index, int64_t k, int64_t at) {
    for (;;) {
        int64_t child = 2 * at + 1;
        if (child >= k) return;
        if (child + 1 < k && before(keys[child], index[child], keys[child + 1], index[child + 1]))
            child++;
        if (!before(keys[at], index[at], keys[child], index[child])) return;
        uint64_t key = keys[at];
        keys[at] = keys[child], keys[child] = key;
        int64_t i = index[at];
        index[at] = index[child], index[child] = i;
        at = child;
    }
}

/* Whether a row's k first are found with a heap of k (O(n log k), reading
 * the row once) rather than by sorting it. */
static bool use_heap(int64_t n, int64_t k) { return k * 8 < n && n > SMALL_ROW; }

/* The k first positions of row (n values of dtype, keys xor flip) in order
 * into picked, from a max-heap of the k best so far (its top the last kept);
 * keys and index hold the heap. */
INLINE void heap_first(nb_dtype dtype, const char *row, int64_t n, int64_t k, uint64_t flip,
                       uint64_t *keys, int64_t *index, int64_t *picked) {
    int64_t size = nb_sort_key_bytes(dtype);
    for (int64_t i = 0; i < k; i++) keys[i] = nb_sort_key(dtype, row + i * size) ^ flip, index[i] = i;
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(keys, index, k, i);
    for (int64_t i = k; i < n; i++) {
        uint64_t key = nb_sort_key(dtype, row + i * size) ^ flip;
        if (key < keys[0]) { /* a tie with the top loses: it comes later */
            keys[0] = key;
            index[0] = i;
            sift_down(keys, index, k, 0);
        }
    }
    for (int64_t last = k - 1; last >= 0; last--) {
        picked[last] = index[0];
        keys[0] = keys[last];
        index[0] = index[last];
        sift_down(keys, index, last, 0);
    }
}

static void heap_row(nb_dtype dtype, const char *row, int64_t n, int64_t k, uint64_t flip,
                     row_buffers *b, int64_t *picked) {
    BY_DTYPE(dtype, heap_first(D, row, n, k, flip, b->keys, b->index, picked));
}

/* argsort (k == n) and topk: row r's first k indices in order. */
nb_status nb__cpu_sort(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    int64_t n = x->shape[x->ndim - 1], k = out->shape[out->ndim - 1];
    int64_t rows = n ? nb_numel(x) / n : 0;
    int key_bytes = nb_sort_key_bytes(x->dtype);
    size_t size = nb__dtype_size(x->dtype);
    const char *data = nb__data(x);
    int64_t *picked = (int64_t *)nb__data(out);
    uint64_t flip = args->attrs.sort.descending ? nb_sort_key_mask(x->dtype) : 0;
    bool heap = use_heap(n, k), failed = false;
#pragma omp parallel if (rows > 1 && rows * n >= NB_CPU_PARALLEL_MIN)
    {
        row_buffers b = {0};
        bool ready = alloc_buffers(&b, heap ? k : n);
        if (!ready) __atomic_store_n(&failed, true, __ATOMIC_RELAXED);
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < rows; r++) {
            if (!ready || k == 0) continue;
            const char *row = data + r * n * (int64_t)size;
            if (heap) {
                heap_row(x->dtype, row, n, k, flip, &b, picked + r * k);
                continue;
            }
            load_keys(x->dtype, row, n, flip, b.keys);
            radix_sort(&b, n, key_bytes);
            memcpy(picked + r * k, b.index, (size_t)k * sizeof *picked);
        }
        free_buffers(&b);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "%s: out of host memory sorting rows of %lld elements",
             nb__op_fn(args->op), (long long)n);
    return NB_OK;
}

INLINE void search_all(nb_dtype dtype, const char *seq, int64_t m, int64_t rows, const char *v,
                       int64_t total, int64_t per_row, bool right, int64_t *position) {
    int64_t size = nb_sort_key_bytes(dtype);
#pragma omp parallel for schedule(static) if (total >= NB_CPU_PARALLEL_MIN / 8)
    for (int64_t i = 0; i < total; i++) {
        int64_t row = rows > 1 ? i / per_row : 0;
        position[i] = nb_sort_insertion_point(dtype, seq + row * m * size, m,
                                              nb_sort_key(dtype, v + i * size), right);
    }
}

nb_status nb__cpu_searchsorted(const nb_op_args *args) {
    const nb_tensor *sequence = args->in[0], *values = args->in[1];
    nb_dtype dtype = sequence->dtype;
    int64_t m = sequence->shape[sequence->ndim - 1], rows = args->attrs.search.rows;
    int64_t total = nb_numel(values), per_row = rows > 1 ? total / rows : total;
    const char *seq = nb__data(sequence), *v = nb__data(values);
    int64_t *position = (int64_t *)nb__data(args->out);
    BY_DTYPE(dtype, search_all(D, seq, m, rows, v, total, per_row, args->attrs.search.right, position));
    return NB_OK;
}
