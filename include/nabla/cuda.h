/* CUDA devices, memory statistics, streams and events.
 *
 *   if (nb_cuda_available()) {
 *       nb_tensor *x = nb_to(host_tensor, nb_cuda(0));   // host -> device
 *       nb_tensor *y = nb_softmax(x, -1);                 // runs on cuda:0's current stream
 *       nb_cuda_synchronize(0);
 *   }
 *
 * Every function exists in every build. Without CUDA support or without a GPU
 * they fail with NB_ERR_DEVICE and say which; nb_cuda_available() answers
 * without failing. Ops on CUDA tensors are queued on the device's current
 * stream and return without waiting; reading values to the host (nb_to_host,
 * nb_item, nb_to to the CPU) waits for that stream. Index errors found by a
 * kernel (an index out of range) are reported by the next of those waits,
 * or by nb_cuda_synchronize, as NB_ERR_INDEX (docs/cuda.md).
 */
#ifndef NABLA_CUDA_H
#define NABLA_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when nabla was built with CUDA and at least one GPU is usable. */
bool nb_cuda_available(void);

typedef struct nb_cuda_properties {
    char name[256];
    int major, minor;          /* compute capability */
    int multiprocessors;
    size_t total_memory;       /* bytes */
    size_t shared_memory_per_block_optin;
    int memory_bus_width;      /* bits */
    int l2_cache_bytes;
} nb_cuda_properties;

nb_status nb_cuda_get_properties(int device, nb_cuda_properties *out);

/* ---- memory: the caching allocator's counters ---- */
typedef struct nb_cuda_memory_stats {
    size_t allocated;      /* bytes in blocks held by tensors now */
    size_t peak_allocated; /* the most allocated has been since the last reset */
    size_t cached;         /* bytes in free blocks kept for reuse */
    size_t reserved;       /* allocated + cached: what nabla holds from the driver */
    uint64_t allocations;  /* blocks handed out */
    uint64_t cuda_mallocs; /* of those, the ones that needed a cudaMalloc */
    uint64_t cuda_frees;   /* cudaFree calls (cache releases) */
    uint64_t oom_retries;  /* allocations that freed the cache and tried again */
} nb_cuda_memory_stats;

nb_status nb_cuda_memory_stats_get(int device, nb_cuda_memory_stats *out);
/* Sets peak_allocated to allocated and the counters to zero. */
nb_status nb_cuda_memory_stats_reset(int device);

/* ---- streams: each device has a compute stream; a thread may pick another ---- */
typedef struct nb_stream nb_stream;

nb_status nb_cuda_stream_create(int device, nb_stream **out);
/* Waits for the stream's work, then destroys it; the default stream is kept. */
nb_status nb_cuda_stream_destroy(nb_stream *stream);
/* Makes ops of this thread on stream's device run on stream; NULL goes back
 * to the device's default compute stream. */
nb_status nb_cuda_set_stream(int device, nb_stream *stream);
/* The stream this thread's ops on device run on (never NULL when the device
 * exists). */
nb_stream *nb_cuda_current_stream(int device);
nb_status nb_cuda_stream_synchronize(nb_stream *stream);
/* The cudaStream_t behind a stream, for use with other CUDA libraries. */
void *nb_cuda_stream_handle(nb_stream *stream);
/* Waits for all work on device, then reports kernel-found index errors. */
nb_status nb_cuda_synchronize(int device);

/* ---- events ---- */
typedef struct nb_event nb_event;

nb_status nb_cuda_event_create(int device, nb_event **out);
void nb_cuda_event_destroy(nb_event *event);
/* Records event on stream (NULL: the device's current stream). */
nb_status nb_cuda_event_record(nb_event *event, nb_stream *stream);
nb_status nb_cuda_event_synchronize(nb_event *event);
/* Work queued on stream after this call waits for event. */
nb_status nb_cuda_stream_wait_event(nb_stream *stream, nb_event *event);
/* Milliseconds between two recorded, completed events. */
nb_status nb_cuda_event_elapsed_ms(nb_event *start, nb_event *end, float *ms);

/* ---- matmul precision ---- */
/* Lets f32 matmuls and cuDNN convolutions use TF32 tensor cores (10-bit
 * mantissa inputs, f32 accumulation), as torch.backends.cuda.matmul.allow_tf32
 * and torch.backends.cudnn.allow_tf32; off by default. Convolution plans are
 * chosen per setting. */
void nb_cuda_set_tf32(bool enabled);
bool nb_cuda_tf32_enabled(void);

#ifdef __cplusplus
}
#endif
#endif
