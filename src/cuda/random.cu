// Random kernels: element i takes Philox block (seed, offset + i), mapped by
// the same code as on the CPU (src/core/philox.h), so a seed gives the same
// numbers on both devices. randperm sorts n random 64-bit keys with CUB's
// stable radix sort: ties keep index order, as the CPU's sort does.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include "../core/multinomial.h"
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
    size_t array = nb__cuda_aligned((size_t)n * 8);
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

#define NB_MULTINOMIAL_THREADS 256

// What each row's block found: its problem and count of positive weights.
typedef struct nb_multinomial_report {
    int problem;
    long long positive;
} nb_multinomial_report;

// One block per row of weights (src/core/multinomial.h). Thread t holds the
// q of a contiguous chunk of the row and their sum; an exclusive scan of the
// sums places each target in one chunk, whose thread walks it. Without
// replacement the picked q is zeroed and the scan redone for the next sample.
__global__ void __launch_bounds__(NB_MULTINOMIAL_THREADS)
nb_multinomial_kernel(const char *weights, nb_dtype dtype, int64_t categories, uint64_t *q_all,
                      int64_t *out, int64_t samples, bool replacement, uint64_t seed,
                      uint64_t offset, nb_multinomial_report *reports) {
    using Reduce = cub::BlockReduce<double, NB_MULTINOMIAL_THREADS>;
    using Count = cub::BlockReduce<long long, NB_MULTINOMIAL_THREADS>;
    using Scan = cub::BlockScan<unsigned long long, NB_MULTINOMIAL_THREADS>;
    __shared__ union {
        typename Reduce::TempStorage reduce;
        typename Count::TempStorage count;
        typename Scan::TempStorage scan;
    } temp;
    __shared__ double row_max;
    __shared__ long long row_positive, row_bad;
    int64_t row = blockIdx.x;
    const char *w = weights + row * categories * nb_size_of(dtype);
    uint64_t *q = q_all + row * categories;
    double max = 0;
    long long positive = 0, bad = 0;
    for (int64_t i = threadIdx.x; i < categories; i += NB_MULTINOMIAL_THREADS) {
        double v = nb_load<double>(w + i * nb_size_of(dtype), dtype);
        bad += !(v >= 0 && v < INFINITY);
        max = v > max ? v : max;
        positive += v > 0;
    }
    double block_max = Reduce(temp.reduce).Reduce(max, ::cuda::maximum<>{});
    __syncthreads();
    long long block_positive = Count(temp.count).Sum(positive);
    __syncthreads();
    long long block_bad = Count(temp.count).Sum(bad);
    if (threadIdx.x == 0) row_max = block_max, row_positive = block_positive, row_bad = block_bad;
    __syncthreads();
    int problem = row_bad ? NB_MULTINOMIAL_BAD_WEIGHT
                  : row_max == 0 ? NB_MULTINOMIAL_ZERO_SUM
                  : !replacement && row_positive < samples ? NB_MULTINOMIAL_TOO_FEW
                  : NB_MULTINOMIAL_OK;
    if (threadIdx.x == 0) reports[row] = {problem, row_positive};
    if (problem != NB_MULTINOMIAL_OK) return;
    int bits = nb_multinomial_bits(categories);
    int64_t chunk = (categories + NB_MULTINOMIAL_THREADS - 1) / NB_MULTINOMIAL_THREADS;
    int64_t first = threadIdx.x * chunk, last = min(first + chunk, categories);
    unsigned long long mine = 0;
    for (int64_t i = first; i < last; i++) {
        q[i] = nb_multinomial_weight(nb_load<double>(w + i * nb_size_of(dtype), dtype), row_max, bits);
        mine += q[i];
    }
    __shared__ unsigned long long before[NB_MULTINOMIAL_THREADS + 1];
    for (int64_t s = 0; s < samples; s++) {
        if (s == 0 || !replacement) {
            unsigned long long exclusive, total;
            __syncthreads();
            Scan(temp.scan).ExclusiveSum(mine, exclusive, total);
            before[threadIdx.x] = exclusive;
            if (threadIdx.x == 0) before[NB_MULTINOMIAL_THREADS] = total;
            __syncthreads();
        }
        // With replacement the threads take samples side by side; without,
        // sample s is drawn by the thread whose chunk holds its target.
        if (replacement && (s % NB_MULTINOMIAL_THREADS) != threadIdx.x) continue;
        uint64_t target = nb_multinomial_target(seed, offset, (uint64_t)(row * samples + s),
                                                before[NB_MULTINOMIAL_THREADS]);
        int owner = 0; // the last chunk starting at or below the target: its sum passes it
        for (int lo = 0, hi = NB_MULTINOMIAL_THREADS - 1; lo <= hi;) {
            int mid = (lo + hi) / 2;
            if (before[mid] <= target) owner = mid, lo = mid + 1;
            else hi = mid - 1;
        }
        if (!replacement && owner != (int)threadIdx.x) continue;
        int64_t i = owner * chunk;
        uint64_t left = target - before[owner];
        while (q[i] <= left) left -= q[i++];
        out[row * samples + s] = i;
        if (!replacement) {
            mine -= q[i];
            q[i] = 0;
        }
    }
}

nb_status nb__cuda_multinomial(const nb_op_args *args) {
    const char *fn = "nb_multinomial";
    const nb_tensor *weights = args->in[0];
    nb_tensor *out = args->out;
    int64_t rows = weights->shape[0], categories = weights->shape[1];
    int64_t samples = args->attrs.multinomial.samples;
    NB_CHECK(rows <= INT32_MAX, NB_ERR_UNSUPPORTED, "%s: CUDA samples at most 2^31-1 rows, got %lld",
             fn, (long long)rows);
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    size_t q_bytes = nb__cuda_aligned((size_t)(rows * categories) * sizeof(uint64_t));
    size_t report_bytes = (size_t)rows * sizeof(nb_multinomial_report);
    void *scratch, *block;
    NB_TRY(nb__cuda_scratch(fn, &ctx, q_bytes + report_bytes, &scratch, &block));
    nb_multinomial_report *reports = (nb_multinomial_report *)((char *)scratch + q_bytes);
    nb_multinomial_kernel<<<(unsigned)rows, NB_MULTINOMIAL_THREADS, 0, ctx.handle>>>(
        nb__data(weights), weights->dtype, categories, (uint64_t *)scratch, (int64_t *)nb__data(out),
        samples, args->attrs.multinomial.replacement, args->attrs.multinomial.seed,
        args->attrs.multinomial.offset, reports);
    nb_status status = nb__cuda_launched(fn);
    nb_multinomial_report *host = (nb_multinomial_report *)nb__malloc(report_bytes);
    if (status == NB_OK && !host) status = nb__error(NB_ERR_OOM, "%s: out of host memory", fn);
    if (status == NB_OK) {
        cudaError_t error = cudaMemcpyAsync(host, reports, report_bytes, cudaMemcpyDeviceToHost, ctx.handle);
        status = error == cudaSuccess ? nb__cuda_wait(fn, ctx.stream)
                                      : nb__cuda_error(fn, error, "cudaMemcpyAsync");
    }
    for (int64_t r = 0; status == NB_OK && r < rows; r++)
        if (host[r].problem != NB_MULTINOMIAL_OK)
            status = nb__multinomial_failed(r, host[r].problem, host[r].positive, samples);
    free(host);
    nb__cuda_free(scratch, q_bytes + report_bytes, nb_cuda(ctx.device), block);
    return status;
}
