/* The CPU allocator: 64-byte aligned buffers, with a cache of large blocks.
 * Writing a freshly mapped buffer costs a page fault per 4 KiB (the kernel
 * zeroes each page), which for a 64 MiB tensor is slower than the op writing
 * it. Freed blocks of at least NB_CPU_CACHE_MIN bytes are kept, binned by size
 * (rounded up to 64 KiB below 2 MiB, to 2 MiB above), and handed back to the
 * next request of that bin, so a training loop that frees and re-creates
 * tensors of one shape reuses warm memory. The cache holds at most
 * NABLA_CPU_CACHE_MB MiB (default 1024; 0 turns it off): a block that does
 * not fit evicts blocks of the sizes used least recently (an evaluation pass
 * with other shapes does not leave the training sizes out). An allocation
 * that fails empties the cache and retries. */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define NB_CPU_CACHE_MIN ((size_t)128 << 10) /* glibc maps blocks this large afresh */
#define NB_CPU_SMALL_BIN ((size_t)64 << 10)
#define NB_CPU_BIN ((size_t)2 << 20)
#define NB_CPU_CACHE_SIZES 256 /* distinct block sizes kept */

/* The free blocks of one size, a stack. */
typedef struct size_bucket {
    size_t size;
    void **blocks;
    int count, capacity;
    uint64_t last_used; /* the cache's clock when a block last came or went */
} size_bucket;

static struct {
    pthread_mutex_t lock;
    size_bucket buckets[NB_CPU_CACHE_SIZES];
    int n_buckets;
    size_t bytes, limit;
    bool limit_read;
    uint64_t clock;
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

/* The bucket of size, created when create is set and there is room. */
static size_bucket *bucket_of(size_t size, bool create) {
    for (int i = 0; i < cache.n_buckets; i++)
        if (cache.buckets[i].size == size) return &cache.buckets[i];
    if (!create || cache.n_buckets == NB_CPU_CACHE_SIZES) return NULL;
    size_bucket *b = &cache.buckets[cache.n_buckets++];
    *b = (size_bucket){.size = size};
    return b;
}

static void *take_cached(size_t size) {
    void *ptr = NULL;
    pthread_mutex_lock(&cache.lock);
    size_bucket *b = bucket_of(size, false);
    if (b && b->count > 0) {
        ptr = b->blocks[--b->count];
        cache.bytes -= size;
        b->last_used = ++cache.clock;
    }
    pthread_mutex_unlock(&cache.lock);
    return ptr;
}

/* Frees one block of the least recently used bucket other than keep;
 * false when there is none. The caller holds the lock. */
static bool evict_one(const size_bucket *keep) {
    size_bucket *oldest = NULL;
    for (int i = 0; i < cache.n_buckets; i++) {
        size_bucket *b = &cache.buckets[i];
        if (b != keep && b->count > 0 && (!oldest || b->last_used < oldest->last_used)) oldest = b;
    }
    if (!oldest) return false;
    free(oldest->blocks[--oldest->count]);
    cache.bytes -= oldest->size;
    return true;
}

/* Keeps ptr for reuse, evicting older sizes to make room; the caller holds
 * the lock. */
static bool keep_locked(void *ptr, size_t size) {
    if (size > cache_limit()) return false;
    size_bucket *b = bucket_of(size, true);
    if (!b) return false;
    while (cache.bytes + size > cache_limit())
        if (!evict_one(b)) return false;
    b->last_used = ++cache.clock;
    if (b->count == b->capacity) {
        int capacity = b->capacity ? 2 * b->capacity : 8;
        void **grown = nb__realloc(b->blocks, (size_t)capacity * sizeof *grown);
        if (!grown) return false;
        b->blocks = grown;
        b->capacity = capacity;
    }
    b->blocks[b->count++] = ptr;
    cache.bytes += size;
    return true;
}

/* Note [allocation faults]: the tests fail the k-th heap allocation nabla
 * makes (nb__fail_allocation) to check that every error path returns a
 * status, frees what it made and leaves the library usable. Every allocation
 * of the library goes through nb__allocation_fails: CPU tensor memory here,
 * and everything else (the CUDA runtime's records included) through
 * nb__malloc, nb__calloc and nb__realloc. */
static int64_t fault_countdown, allocations_seen;

void nb__fail_allocation(int64_t k) {
    __atomic_store_n(&allocations_seen, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fault_countdown, k > 0 ? k : 0, __ATOMIC_RELAXED);
}

int64_t nb__allocations_seen(void) { return __atomic_load_n(&allocations_seen, __ATOMIC_RELAXED); }

bool nb__allocation_fails(void) {
    __atomic_add_fetch(&allocations_seen, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&fault_countdown, __ATOMIC_RELAXED) <= 0) return false;
    return __atomic_sub_fetch(&fault_countdown, 1, __ATOMIC_RELAXED) == 0;
}

void *nb__malloc(size_t n) { return nb__allocation_fails() ? NULL : malloc(n); }
void *nb__calloc(size_t count, size_t size) { return nb__allocation_fails() ? NULL : calloc(count, size); }
void *nb__realloc(void *ptr, size_t n) { return nb__allocation_fails() ? NULL : realloc(ptr, n); }

static void *fresh_block(size_t size) {
    bool large = size >= NB_CPU_BIN;
    if (nb__allocation_fails()) return NULL;
    void *ptr = aligned_alloc(large ? NB_CPU_BIN : NB_CPU_ALIGN, size ? size : NB_CPU_ALIGN);
#ifdef MADV_HUGEPAGE
    if (ptr && large) madvise(ptr, size, MADV_HUGEPAGE); /* fewer faults; a hint only */
#endif
    return ptr;
}

size_t nb__cpu_release_cache(void) {
    pthread_mutex_lock(&cache.lock);
    size_t released = cache.bytes;
    for (int i = 0; i < cache.n_buckets; i++) {
        for (int k = 0; k < cache.buckets[i].count; k++) free(cache.buckets[i].blocks[k]);
        free(cache.buckets[i].blocks);
    }
    cache.n_buckets = 0;
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

/* Bytes held by CPU tensors now and at most since the last reset. */
static size_t allocated_bytes, peak_bytes;

static void count_allocation(size_t nbytes) {
    size_t now = __atomic_add_fetch(&allocated_bytes, nbytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
    while (now > peak &&
           !__atomic_compare_exchange_n(&peak_bytes, &peak, now, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

void nb_cpu_memory_stats_get(nb_cpu_memory_stats *out) {
    if (!out) return;
    out->allocated = __atomic_load_n(&allocated_bytes, __ATOMIC_RELAXED);
    out->peak_allocated = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
}

void nb_cpu_memory_stats_reset(void) {
    __atomic_store_n(&peak_bytes, __atomic_load_n(&allocated_bytes, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

nb_status nb__cpu_alloc(const char *fn, size_t nbytes, nb_device device, void **out,
                        void **block) {
    (void)device;
    size_t size = block_size(nbytes);
    void *ptr = size >= NB_CPU_CACHE_MIN ? take_cached(size) : NULL;
    if (!ptr) ptr = fresh_block(size);
    if (!ptr && nb__cpu_release_cache() > 0) ptr = fresh_block(size);
    NB_CHECK(ptr, NB_ERR_OOM, "%s: out of memory allocating %zu bytes on cpu (%zu bytes free)", fn,
             nbytes, (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE));
    if (nb__poison_allocations()) memset(ptr, 0xFF, nbytes);
    count_allocation(nbytes);
    *out = ptr;
    *block = NULL;
    return NB_OK;
}

void nb__cpu_free(void *ptr, size_t nbytes, nb_device device, void *block) {
    (void)device;
    (void)block;
    if (ptr) __atomic_sub_fetch(&allocated_bytes, nbytes, __ATOMIC_RELAXED);
    size_t size = block_size(nbytes);
    if (ptr && size >= NB_CPU_CACHE_MIN) {
        pthread_mutex_lock(&cache.lock);
        bool kept = keep_locked(ptr, size);
        pthread_mutex_unlock(&cache.lock);
        if (kept) return;
    }
    free(ptr);
}

nb_status nb_release_cached_memory(nb_device device) {
    NB_TRY(nb__check_device("nb_release_cached_memory", device));
    nb__backend(device.type)->release_cache(device);
    return NB_OK;
}
