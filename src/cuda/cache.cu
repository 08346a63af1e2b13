// The per-shape choice tables of the library-backed kernels: open
// addressing over a fixed number of slots, keys compared as bytes.
#include <stdlib.h>
#include <string.h>

#include "cuda.cuh"

#define NB_SHAPE_CACHE_PROBES 8

static uint64_t key_hash(const void *key, size_t size) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    const unsigned char *bytes = (const unsigned char *)key;
    for (size_t i = 0; i < size; i++) h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
}

static unsigned char *slot_at(const nb_shape_cache *cache, uint64_t i) {
    return cache->entries + i * (1 + cache->key_size + cache->value_size);
}

bool nb__shape_cache_get(nb_shape_cache *cache, const void *key, void *value) {
    bool found = false;
    pthread_mutex_lock(&cache->lock);
    uint64_t first = key_hash(key, cache->key_size) % cache->slots;
    for (int probe = 0; cache->entries && probe < NB_SHAPE_CACHE_PROBES; probe++) {
        unsigned char *slot = slot_at(cache, (first + probe) % cache->slots);
        if (!slot[0]) break;
        if (memcmp(slot + 1, key, cache->key_size) == 0) {
            memcpy(value, slot + 1 + cache->key_size, cache->value_size);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&cache->lock);
    return found;
}

void nb__shape_cache_put(nb_shape_cache *cache, const void *key, const void *value) {
    pthread_mutex_lock(&cache->lock);
    if (!cache->entries)
        cache->entries = (unsigned char *)nb__calloc((size_t)cache->slots,
                                                     1 + cache->key_size + cache->value_size);
    if (cache->entries) { // without memory the choice is simply made again next time
        uint64_t first = key_hash(key, cache->key_size) % cache->slots;
        unsigned char *slot = slot_at(cache, first); // a full probe run replaces its first slot
        for (int probe = 0; probe < NB_SHAPE_CACHE_PROBES; probe++) {
            unsigned char *candidate = slot_at(cache, (first + probe) % cache->slots);
            if (!candidate[0]) {
                slot = candidate;
                break;
            }
        }
        if (slot[0] && cache->evict) cache->evict(slot + 1 + cache->key_size);
        slot[0] = 1;
        memcpy(slot + 1, key, cache->key_size);
        memcpy(slot + 1 + cache->key_size, value, cache->value_size);
    }
    pthread_mutex_unlock(&cache->lock);
}
