// Sorting kernels over the rows of a contiguous [rows, n] tensor: argsort,
// topk and searchsorted (src/ops/sort.c). Values become the CPU's keys
// (src/core/sort_key.h) and CUB sorts (key, position) pairs stably: one row
// with DeviceRadixSort over the key's bytes only, several rows with
// DeviceSegmentedSort (merge sort for short segments, radix for long ones).
// The same keys and stability give the CPU's indices. topk keeps the first k
// of the sorted row (a full sort; a radix select would do less work).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include "../core/sort_key.h"
#include "cuda.cuh"

__global__ void nb_sort_keys(const char *x, nb_dtype dtype, int64_t total, int64_t n, uint64_t flip,
                             uint64_t *keys, int64_t *positions, int64_t *offsets, int64_t rows) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int size = nb_size_of(dtype);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += stride) {
        keys[i] = nb_sort_key(dtype, x + i * size) ^ flip;
        positions[i] = i % n;
    }
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r <= rows; r += stride)
        offsets[r] = r * n;
}

__global__ void nb_sort_take(int64_t *out, const int64_t *sorted, int64_t rows, int64_t n, int64_t k) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < rows * k; i += stride)
        out[i] = sorted[i / k * n + i % k];
}

// Sorts total (key, position) pairs in rows segments of offsets, or, with
// temp NULL, sets temp_bytes to the scratch CUB needs for it.
static cudaError_t sort_pairs(void *temp, size_t &temp_bytes, const uint64_t *keys, uint64_t *keys_out,
                              const int64_t *positions, int64_t *positions_out, int64_t total,
                              int64_t rows, const int64_t *offsets, int key_bits, cudaStream_t stream) {
    if (rows == 1)
        return cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, keys_out, positions,
                                               positions_out, total, 0, key_bits, stream);
    return cub::DeviceSegmentedSort::StableSortPairs(temp, temp_bytes, keys, keys_out, positions,
                                                     positions_out, total, rows, offsets,
                                                     offsets + 1, stream);
}

nb_status nb__cuda_sort(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    int64_t n = x->shape[x->ndim - 1], k = out->shape[out->ndim - 1];
    int64_t rows = n ? nb_numel(x) / n : 0, total = rows * n;
    if (total == 0 || k == 0) return NB_OK;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    int key_bits = 8 * nb_sort_key_bytes(x->dtype);
    size_t temp_bytes = 0;
    NB_CUDA_TRY(fn, sort_pairs(NULL, temp_bytes, NULL, NULL, NULL, NULL, total, rows, NULL, key_bits,
                               ctx.handle));
    size_t array = nb__cuda_aligned((size_t)total * 8), offsets_bytes = nb__cuda_aligned((size_t)(rows + 1) * 8);
    size_t scratch_bytes = 4 * array + offsets_bytes + temp_bytes;
    void *scratch, *block;
    NB_TRY(nb__cuda_scratch(fn, &ctx, scratch_bytes, &scratch, &block));
    char *base = (char *)scratch;
    uint64_t *keys = (uint64_t *)base, *sorted_keys = (uint64_t *)(base + array);
    int64_t *positions = (int64_t *)(base + 2 * array), *sorted = (int64_t *)(base + 3 * array);
    int64_t *offsets = (int64_t *)(base + 4 * array);
    uint64_t flip = args->attrs.sort.descending ? nb_sort_key_mask(x->dtype) : 0;
    unsigned blocks = nb__cuda_blocks(&ctx, total, NB_CUDA_THREADS);
    nb_sort_keys<<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(nb__data(x), x->dtype, total, n, flip, keys,
                                                             positions, offsets, rows);
    cudaError_t error = sort_pairs(base + 4 * array + offsets_bytes, temp_bytes, keys, sorted_keys,
                                   positions, sorted, total, rows, offsets, key_bits, ctx.handle);
    if (error == cudaSuccess)
        nb_sort_take<<<nb__cuda_blocks(&ctx, rows * k, NB_CUDA_THREADS), NB_CUDA_THREADS, 0, ctx.handle>>>(
            (int64_t *)nb__data(out), sorted, rows, n, k);
    nb__cuda_free(scratch, scratch_bytes, nb_cuda(ctx.device), block);
    NB_CUDA_TRY(fn, error);
    return nb__cuda_launched(fn);
}

__global__ void nb_searchsorted_kernel(const char *sequence, const char *values, nb_dtype dtype,
                                       int64_t m, int64_t rows, int64_t total, bool right,
                                       int64_t *out) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x, per_row = rows > 1 ? total / rows : total;
    int size = nb_size_of(dtype);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t row = rows > 1 ? i / per_row : 0;
        out[i] = nb_sort_insertion_point(dtype, sequence + row * m * size, m,
                                         nb_sort_key(dtype, values + i * size), right);
    }
}

nb_status nb__cuda_searchsorted(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    const nb_tensor *sequence = args->in[0], *values = args->in[1];
    int64_t total = nb_numel(values);
    if (total == 0) return NB_OK;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, args->out->storage->device.index, &ctx));
    nb_searchsorted_kernel<<<nb__cuda_blocks(&ctx, total, NB_CUDA_THREADS), NB_CUDA_THREADS, 0, ctx.handle>>>(
        nb__data(sequence), nb__data(values), sequence->dtype, sequence->shape[sequence->ndim - 1],
        args->attrs.search.rows, total, args->attrs.search.right, (int64_t *)nb__data(args->out));
    return nb__cuda_launched(fn);
}
