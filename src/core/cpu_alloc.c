/* The CPU allocator: 64-byte aligned buffers, with a cache of large blocks.
 * Writing a freshly mapped buffer costs a page fault per 4 KiB (the kernel
 * zeroes each page), which for a 64 MiB tensor is slower than the op writing
 * it. Freed blocks of at least NB_CPU_CACHE_MIN bytes are kept, binned by size
 * (rounded up to 64 KiB below 2 MiB, to 2 MiB above), and handed back to the next request of that bin, so a
 * training loop that frees and re-creates tensors of one shape reuses warm
 * memory. The cache holds at most NABLA_CPU_CACHE_MB MiB (default 1024; 0
 * turns it off); an allocation that fails empties it and retries. */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define NB_CPU_CACHE_MIN ((size_t)128 << 10) /* glibc maps blocks this large afresh */
#define NB_CPU_SMALL_BIN ((size_t)64 << 10)
#define NB_CPU_BIN ((size_t)2 << 20)
#define NB_CPU_CACHE_SLOTS 64

typedef struct cached_block {
    void *ptr;
    size_t size;
} cached_block;

static struct {
    pthread_mutex_t lock;
    cached_block blocks[NB_CPU_CACHE_SLOTS];
    int count;
    size_t bytes, limit;
    bool limit_read;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t cache_limit(void) {
    if (!cache.limit_read) {
        const char *env = getenv("NABLA_CPU_CACHE_MB");
        cache.limit = (env ? (size_t)strtoull(env, NULL, 10) : 1024) << 20;
        cache.limit_read = true;
    }
    return cache.limit;
}

static size_t block_size(size_t nbytes) {
    if (nbytes < NB_CPU_CACHE_MIN) return (nbytes + NB_CPU_ALIGN - 1) / NB_CPU_ALIGN * NB_CPU_ALIGN;
    size_t bin = nbytes < NB_CPU_BIN ? NB_CPU_SMALL_BIN : NB_CPU_BIN;
    return (nbytes + bin - 1) / bin * bin;
}

static void *take_cached(size_t size) {
    void *ptr = NULL;
    pthread_mutex_lock(&cache.lock);
    for (int i = cache.count - 1; i >= 0 && !ptr; i--) {
        if (cache.blocks[i].size != size) continue;
        ptr = cache.blocks[i].ptr;
        cache.bytes -= size;
        cache.blocks[i] = cache.blocks[--cache.count];
    }
    pthread_mutex_unlock(&cache.lock);
    return ptr;
}

static void *fresh_block(size_t size) {
    bool large = size >= NB_CPU_BIN;
    void *ptr = aligned_alloc(large ? NB_CPU_BIN : NB_CPU_ALIGN, size ? size : NB_CPU_ALIGN);
#ifdef MADV_HUGEPAGE
    if (ptr && large) madvise(ptr, size, MADV_HUGEPAGE); /* fewer faults; a hint only */
#endif
    return ptr;
}

size_t nb__cpu_release_cache(void) {
    pthread_mutex_lock(&cache.lock);
    size_t released = cache.bytes;
    for (int i = 0; i < cache.count; i++) free(cache.blocks[i].ptr);
    cache.count = 0;
    cache.bytes = 0;
    pthread_mutex_unlock(&cache.lock);
    return released;
}

bool nb__poison_allocations(void) {
    static int poison = -1;
    if (__atomic_load_n(&poison, __ATOMIC_RELAXED) < 0) {
        const char *env = getenv("NABLA_POISON_ALLOC");
        __atomic_store_n(&poison, env && env[0] == '1', __ATOMIC_RELAXED);
    }
    return poison;
}

nb_status nb__cpu_alloc(const char *fn, size_t nbytes, nb_device device, void **out,
                        void **block) {
    (void)device;
    size_t size = block_size(nbytes);
    void *ptr = size >= NB_CPU_CACHE_MIN ? take_cached(size) : NULL;
    if (!ptr) ptr = fresh_block(size);
    if (!ptr && nb__cpu_release_cache() > 0) ptr = fresh_block(size);
    NB_CHECK(ptr, NB_ERR_OOM, "%s: out of memory allocating %zu bytes on cpu", fn, nbytes);
    if (nb__poison_allocations()) memset(ptr, 0xFF, nbytes);
    *out = ptr;
    *block = NULL;
    return NB_OK;
}

void nb__cpu_free(void *ptr, size_t nbytes, nb_device device, void *block) {
    (void)device;
    (void)block;
    size_t size = block_size(nbytes);
    if (ptr && size >= NB_CPU_CACHE_MIN) {
        pthread_mutex_lock(&cache.lock);
        bool keep = cache.count < NB_CPU_CACHE_SLOTS && cache.bytes + size <= cache_limit();
        if (keep) {
            cache.blocks[cache.count++] = (cached_block){ptr, size};
            cache.bytes += size;
        }
        pthread_mutex_unlock(&cache.lock);
        if (keep) return;
    }
    free(ptr);
}

nb_status nb_release_cached_memory(nb_device device) {
    NB_TRY(nb__check_device("nb_release_cached_memory", device));
    nb__backend(device.type)->release_cache(device);
    return NB_OK;
}
