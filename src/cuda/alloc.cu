// The CUDA caching allocator. cudaMalloc and cudaFree are slow and
// synchronize the device, so freed blocks are kept and handed out again:
// sizes are rounded to one of four classes per power of two (at most 25%
// slack, 512 bytes at least) and a block is reused only by a request of its
// class on the stream it was allocated on, where stream order makes the reuse
// safe without waiting. A cudaMalloc that fails frees the cache and retries
// once; the second failure is NB_ERR_OOM with the sizes.
#include <pthread.h>
#include <stdlib.h>

#include "cuda.cuh"

#define NB_CUDA_MIN_BLOCK_LOG2 9
#define NB_CUDA_SIZE_CLASSES 256

typedef struct cuda_block {
    void *ptr;
    size_t size;
    cudaStream_t stream;
    struct cuda_block *next;
} cuda_block;

typedef struct device_pool {
    pthread_mutex_t lock;
    cuda_block *free_blocks[NB_CUDA_SIZE_CLASSES];
    nb_cuda_memory_stats stats;
} device_pool;

static device_pool pools[NB_CUDA_MAX_DEVICES];
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

static void init_pools(void) {
    for (int i = 0; i < NB_CUDA_MAX_DEVICES; i++) pthread_mutex_init(&pools[i].lock, NULL);
}

// The class of nbytes and the block size it rounds to.
static int size_class(size_t nbytes, size_t *rounded) {
    int log2 = NB_CUDA_MIN_BLOCK_LOG2;
    while (log2 < 62 && ((size_t)1 << (log2 + 1)) <= nbytes) log2++;
    if (nbytes <= ((size_t)1 << NB_CUDA_MIN_BLOCK_LOG2)) {
        *rounded = (size_t)1 << NB_CUDA_MIN_BLOCK_LOG2;
        return 0;
    }
    size_t step = (size_t)1 << (log2 - 2);
    size_t quarters = (nbytes + step - 1) / step; // 4 to 8
    *rounded = quarters * step;
    return (log2 - NB_CUDA_MIN_BLOCK_LOG2) * 4 + (int)(quarters - 4);
}

static cuda_block *take_cached(device_pool *pool, int cls, cudaStream_t stream) {
    for (cuda_block **link = &pool->free_blocks[cls]; *link; link = &(*link)->next) {
        if ((*link)->stream != stream) continue;
        cuda_block *block = *link;
        *link = block->next;
        pool->stats.cached -= block->size;
        return block;
    }
    return NULL;
}

// Frees every cached block of the pool (the caller holds its lock).
static void release_locked(device_pool *pool) {
    for (int cls = 0; cls < NB_CUDA_SIZE_CLASSES; cls++) {
        while (pool->free_blocks[cls]) {
            cuda_block *block = pool->free_blocks[cls];
            pool->free_blocks[cls] = block->next;
            cudaFree(block->ptr);
            pool->stats.cached -= block->size;
            pool->stats.cuda_frees++;
            free(block);
        }
    }
}

static nb_status out_of_memory(const char *fn, int device, size_t nbytes, size_t rounded,
                               const device_pool *pool) {
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    cudaGetLastError();
    return nb__error(NB_ERR_OOM,
                     "%s: CUDA out of memory on cuda:%d: %zu bytes requested (a block of %zu), "
                     "%zu bytes free of %zu; nabla holds %zu bytes in tensors and freed its "
                     "cache before retrying",
                     fn, device, nbytes, rounded, free_bytes, total_bytes, pool->stats.allocated);
}

static nb_status fresh_block(const char *fn, int device, device_pool *pool, size_t nbytes,
                             size_t rounded, void **ptr) {
    if (cudaMalloc(ptr, rounded) == cudaSuccess) return NB_OK;
    cudaGetLastError(); // out of memory is not sticky
    release_locked(pool);
    pool->stats.oom_retries++;
    if (cudaMalloc(ptr, rounded) == cudaSuccess) return NB_OK;
    return out_of_memory(fn, device, nbytes, rounded, pool);
}

nb_status nb__cuda_alloc(const char *fn, size_t nbytes, nb_device device, void **ptr,
                         void **out_block) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, device.index, &ctx));
    pthread_once(&pools_once, init_pools);
    device_pool *pool = &pools[device.index];
    size_t rounded;
    int cls = size_class(nbytes, &rounded);
    NB_CHECK(cls < NB_CUDA_SIZE_CLASSES, NB_ERR_OOM, "%s: %zu bytes is more than any GPU holds",
             fn, nbytes);
    pthread_mutex_lock(&pool->lock);
    cuda_block *block = take_cached(pool, cls, ctx.handle);
    nb_status status = NB_OK;
    if (!block) {
        void *fresh = NULL;
        status = fresh_block(fn, device.index, pool, nbytes, rounded, &fresh);
        block = status == NB_OK ? (cuda_block *)nb__malloc(sizeof *block) : NULL;
        if (status == NB_OK && !block) {
            cudaFree(fresh);
            status = nb__error(NB_ERR_OOM, "%s: out of host memory for a block record", fn);
        }
        if (block) {
            *block = (cuda_block){fresh, rounded, ctx.handle, NULL};
            pool->stats.cuda_mallocs++;
        }
    }
    if (block) {
        pool->stats.allocations++;
        pool->stats.allocated += block->size;
        if (pool->stats.allocated > pool->stats.peak_allocated)
            pool->stats.peak_allocated = pool->stats.allocated;
    }
    pthread_mutex_unlock(&pool->lock);
    NB_TRY(status);
    if (nb__poison_allocations()) {
        cudaError_t poisoned = cudaMemsetAsync(block->ptr, 0xFF, nbytes, ctx.handle);
        if (poisoned != cudaSuccess) {
            nb__cuda_free(block->ptr, nbytes, device, block);
            return nb__cuda_error(fn, poisoned, "cudaMemsetAsync");
        }
    }
    *ptr = block->ptr;
    *out_block = block;
    return NB_OK;
}

void nb__cuda_free(void *ptr, size_t nbytes, nb_device device, void *record) {
    (void)ptr;
    cuda_block *block = (cuda_block *)record;
    size_t rounded;
    int cls = size_class(nbytes, &rounded);
    device_pool *pool = &pools[device.index];
    pthread_mutex_lock(&pool->lock);
    block->next = pool->free_blocks[cls];
    pool->free_blocks[cls] = block;
    pool->stats.allocated -= block->size;
    pool->stats.cached += block->size;
    pthread_mutex_unlock(&pool->lock);
}

void nb__cuda_release_cache(nb_device device) {
    nb_cuda_ctx ctx;
    if (nb__cuda_begin("nb_release_cached_memory", device.index, &ctx) != NB_OK) return;
    pthread_once(&pools_once, init_pools);
    device_pool *pool = &pools[device.index];
    pthread_mutex_lock(&pool->lock);
    release_locked(pool);
    pthread_mutex_unlock(&pool->lock);
}

nb_status nb_cuda_memory_stats_get(int device, nb_cuda_memory_stats *out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_cuda_memory_stats_get: out is NULL");
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_cuda_memory_stats_get", device, &ctx));
    pthread_once(&pools_once, init_pools);
    device_pool *pool = &pools[device];
    pthread_mutex_lock(&pool->lock);
    *out = pool->stats;
    out->reserved = out->allocated + out->cached;
    pthread_mutex_unlock(&pool->lock);
    return NB_OK;
}

nb_status nb_cuda_memory_stats_reset(int device) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_cuda_memory_stats_reset", device, &ctx));
    pthread_once(&pools_once, init_pools);
    device_pool *pool = &pools[device];
    pthread_mutex_lock(&pool->lock);
    nb_cuda_memory_stats kept = {};
    kept.allocated = kept.peak_allocated = pool->stats.allocated;
    kept.cached = pool->stats.cached;
    pool->stats = kept;
    pthread_mutex_unlock(&pool->lock);
    return NB_OK;
}
