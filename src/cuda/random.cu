// Random kernels: element i takes Philox block (seed, offset + i), mapped by
// the same code as on the CPU (src/core/philox.h), so a seed gives the same
// numbers on both devices. randperm sorts n random 64-bit keys with CUB's
// stable radix sort: ties keep index order, as the CPU's sort does.
#include <cub/device/device_radix_sort.cuh>

#include "../core/philox.h"
#include "cuda.cuh"

__global__ void nb_random_kernel(char *out, nb_dtype dtype, int64_t n, nb_op op, uint64_t seed,
                                 uint64_t offset, double a, double b) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        nb_store<double>(out + i * nb_size_of(dtype), dtype,
                         nb_philox_draw(op, seed, offset, (uint64_t)i, a, b));
}

nb_status nb__cuda_random(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    nb_tensor *out = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    int64_t n = nb_numel(out);
    nb_random_kernel<<<nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS), NB_CUDA_THREADS, 0, ctx.handle>>>(
        nb__data(out), out->dtype, n, args->op, args->attrs.random.seed, args->attrs.random.offset,
        args->attrs.random.a, args->attrs.random.b);
    return nb__cuda_launched(fn);
}

__global__ void nb_permutation_keys(uint64_t *keys, int64_t *indices, int64_t n, uint64_t seed,
                                    uint64_t offset) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride) {
        keys[i] = nb_philox_u64(nb_philox_at(seed, offset, (uint64_t)i));
        indices[i] = i;
    }
}

__global__ void nb_store_indices(char *out, nb_dtype dtype, const int64_t *indices, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        nb_store<int64_t>(out + i * nb_size_of(dtype), dtype, indices[i]);
}

static size_t aligned(size_t n) { return (n + 255) / 256 * 256; }

nb_status nb__cuda_randperm(const nb_op_args *args) {
    const char *fn = "nb_randperm";
    nb_tensor *out = args->out;
    int64_t n = nb_numel(out);
    NB_CHECK(n <= INT32_MAX, NB_ERR_UNSUPPORTED, "%s: CUDA sorts at most 2^31-1 keys, got %lld",
             fn, (long long)n);
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    size_t sort_bytes = 0;
    cub::DeviceRadixSort::SortPairs(NULL, sort_bytes, (uint64_t *)NULL, (uint64_t *)NULL,
                                    (int64_t *)NULL, (int64_t *)NULL, (int)n, 0, 64, ctx.handle);
    size_t array = aligned((size_t)n * 8);
    void *scratch, *block;
    NB_TRY(nb__cuda_scratch(fn, &ctx, 4 * array + sort_bytes, &scratch, &block));
    char *base = (char *)scratch;
    uint64_t *keys = (uint64_t *)base, *sorted_keys = (uint64_t *)(base + array);
    int64_t *indices = (int64_t *)(base + 2 * array), *sorted = (int64_t *)(base + 3 * array);
    unsigned blocks = nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS);
    nb_permutation_keys<<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(
        keys, indices, n, args->attrs.random.seed, args->attrs.random.offset);
    cudaError_t error = cub::DeviceRadixSort::SortPairs(base + 4 * array, sort_bytes, keys,
                                                        sorted_keys, indices, sorted, (int)n, 0,
                                                        64, ctx.handle);
    if (error == cudaSuccess)
        nb_store_indices<<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(nb__data(out), out->dtype,
                                                                     sorted, n);
    nb__cuda_free(scratch, 4 * array + sort_bytes, nb_cuda(ctx.device), block);
    NB_CUDA_TRY(fn, error);
    return nb__cuda_launched(fn);
}
