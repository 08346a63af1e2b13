// CUDA devices, streams, events, synchronization and host-device copies.
// Each device is set up on first use: a non-blocking compute stream (so work
// never serializes behind the legacy default stream), a slot in mapped host
// memory where kernels record index errors, and a cuBLASLt handle.
#include <cublasLt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.cuh"

// Host copies above this size go through pinned staging buffers, chunk by
// chunk, so the host-side memcpy of one chunk overlaps the DMA of the other.
#define NB_CUDA_STAGE_MIN ((size_t)1 << 20)
#define NB_CUDA_STAGE_CHUNK ((size_t)8 << 20)

struct nb_event {
    int device;
    cudaEvent_t handle;
};

typedef struct cuda_device {
    int ready;
    nb_stream default_stream;
    nb_cuda_error_slot *errors_host, *errors_device;
    cublasLtHandle_t blaslt;
    cudaDeviceProp props;
    pthread_mutex_t stage_lock;
    char *stage[2]; // pinned chunks
    cudaEvent_t stage_done[2];
} cuda_device;

static cuda_device devices[NB_CUDA_MAX_DEVICES];
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static thread_local nb_stream *current_streams[NB_CUDA_MAX_DEVICES];
static thread_local int active_device = -1;
static int device_count;
static char unavailable_reason[256];
static bool tf32;

nb_status nb__cuda_error(const char *fn, cudaError_t error, const char *call) {
    cudaGetLastError(); // clears the error unless it is sticky
    return nb__error(error == cudaErrorMemoryAllocation ? NB_ERR_OOM : NB_ERR_DEVICE,
                     "%s: CUDA error %s (%s) in %s", fn, cudaGetErrorName(error),
                     cudaGetErrorString(error), call);
}

static void count_devices(void) {
    int n = 0;
    cudaError_t error = cudaGetDeviceCount(&n);
    if (error != cudaSuccess) {
        snprintf(unavailable_reason, sizeof unavailable_reason, "%s", cudaGetErrorString(error));
        cudaGetLastError();
        n = 0;
    } else if (n == 0) {
        snprintf(unavailable_reason, sizeof unavailable_reason, "no GPU found");
    }
    device_count = n < NB_CUDA_MAX_DEVICES ? n : NB_CUDA_MAX_DEVICES;
}

int nb_cuda_device_count(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, count_devices);
    return device_count;
}

bool nb_cuda_available(void) { return nb_cuda_device_count() > 0; }

static nb_status check_index(const char *fn, int device) {
    int count = nb_cuda_device_count();
    NB_CHECK(count > 0, NB_ERR_DEVICE, "%s: no CUDA device is available (%s)", fn,
             unavailable_reason);
    NB_CHECK(device >= 0 && device < count, NB_ERR_DEVICE,
             "%s: cuda:%d requested but only %d CUDA devices exist", fn, device, count);
    return NB_OK;
}

static nb_status init_device(const char *fn, int index, cuda_device *dev) {
    NB_CUDA_TRY(fn, cudaSetDevice(index));
    NB_CUDA_TRY(fn, cudaGetDeviceProperties(&dev->props, index));
    NB_CUDA_TRY(fn, cudaStreamCreateWithFlags(&dev->default_stream.handle, cudaStreamNonBlocking));
    dev->default_stream.device = index;
    dev->default_stream.is_default = true;
    NB_CUDA_TRY(fn, cudaHostAlloc((void **)&dev->errors_host, sizeof *dev->errors_host,
                                  cudaHostAllocMapped));
    memset(dev->errors_host, 0, sizeof *dev->errors_host);
    NB_CUDA_TRY(fn, cudaHostGetDevicePointer((void **)&dev->errors_device, dev->errors_host, 0));
    cublasStatus_t status = cublasLtCreate(&dev->blaslt);
    NB_CHECK(status == CUBLAS_STATUS_SUCCESS, NB_ERR_DEVICE, "%s: cublasLtCreate failed: %s", fn,
             cublasLtGetStatusString(status));
    pthread_mutex_init(&dev->stage_lock, NULL);
    return NB_OK;
}

static nb_status device_state(const char *fn, int index, cuda_device **out) {
    NB_TRY(check_index(fn, index));
    cuda_device *dev = &devices[index];
    if (!__atomic_load_n(&dev->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&init_lock);
        nb_status status = dev->ready ? NB_OK : init_device(fn, index, dev);
        if (status == NB_OK) __atomic_store_n(&dev->ready, 1, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&init_lock);
        NB_TRY(status);
    }
    if (active_device != index) {
        NB_CUDA_TRY(fn, cudaSetDevice(index));
        active_device = index;
    }
    *out = dev;
    return NB_OK;
}

static nb_stream *stream_of(int index) {
    return current_streams[index] ? current_streams[index] : &devices[index].default_stream;
}

nb_status nb__cuda_begin(const char *fn, int device, nb_cuda_ctx *ctx) {
    cuda_device *dev;
    NB_TRY(device_state(fn, device, &dev));
    ctx->device = device;
    ctx->stream = stream_of(device);
    ctx->handle = ctx->stream->handle;
    ctx->errors = dev->errors_device;
    ctx->multiprocessors = dev->props.multiProcessorCount;
    ctx->compute_major = dev->props.major;
    return NB_OK;
}

nb_status nb__cuda_launched(const char *fn) {
    NB_CUDA_TRY(fn, cudaGetLastError());
    return NB_OK;
}

void *nb__cuda_blaslt(int device) { return devices[device].blaslt; }

// Reports (once) the index error a kernel on device recorded.
static nb_status take_index_error(const char *fn, int device) {
    volatile nb_cuda_error_slot *slot = devices[device].errors_host;
    if (!slot || !slot->flag) return NB_OK;
    long long op = slot->op, value = slot->value, limit = slot->limit, position = slot->position;
    slot->flag = 0;
    return nb__error(NB_ERR_INDEX,
                     "%s: nb_%s on cuda:%d found index %lld out of range [0, %lld) at position "
                     "%lld (CUDA kernels report index errors at the next synchronization)",
                     fn, nb_op_name((nb_op)op), device, value, limit, position);
}

nb_status nb__cuda_wait(const char *fn, nb_stream *stream) {
    NB_CUDA_TRY(fn, cudaStreamSynchronize(stream->handle));
    return take_index_error(fn, stream->device);
}

// ---- properties ----

nb_status nb_cuda_get_properties(int device, nb_cuda_properties *out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_cuda_get_properties: out is NULL");
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_get_properties", device, &dev));
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", dev->props.name);
    out->major = dev->props.major;
    out->minor = dev->props.minor;
    out->multiprocessors = dev->props.multiProcessorCount;
    out->total_memory = dev->props.totalGlobalMem;
    out->shared_memory_per_block_optin = dev->props.sharedMemPerBlockOptin;
    out->memory_bus_width = dev->props.memoryBusWidth;
    out->l2_cache_bytes = dev->props.l2CacheSize;
    return NB_OK;
}

// ---- streams ----

nb_status nb_cuda_stream_create(int device, nb_stream **out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_cuda_stream_create: out is NULL");
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_stream_create", device, &dev));
    nb_stream *stream = (nb_stream *)nb__calloc(1, sizeof *stream);
    NB_CHECK(stream, NB_ERR_OOM, "nb_cuda_stream_create: out of host memory");
    cudaError_t error = cudaStreamCreateWithFlags(&stream->handle, cudaStreamNonBlocking);
    if (error != cudaSuccess) {
        free(stream);
        return nb__cuda_error("nb_cuda_stream_create", error, "cudaStreamCreateWithFlags");
    }
    stream->device = device;
    *out = stream;
    return NB_OK;
}

nb_status nb_cuda_stream_destroy(nb_stream *stream) {
    if (!stream || stream->is_default) return NB_OK;
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_stream_destroy", stream->device, &dev));
    NB_CUDA_TRY("nb_cuda_stream_destroy", cudaStreamSynchronize(stream->handle));
    if (current_streams[stream->device] == stream) current_streams[stream->device] = NULL;
    if (stream->workspace)
        nb__cuda_free(stream->workspace, stream->workspace_size, nb_cuda(stream->device),
                      stream->workspace_block);
    NB_CUDA_TRY("nb_cuda_stream_destroy", cudaStreamDestroy(stream->handle));
    free(stream);
    return take_index_error("nb_cuda_stream_destroy", dev->default_stream.device);
}

nb_status nb_cuda_set_stream(int device, nb_stream *stream) {
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_set_stream", device, &dev));
    NB_CHECK(!stream || stream->device == device, NB_ERR_DEVICE,
             "nb_cuda_set_stream: the stream belongs to cuda:%d, not cuda:%d", stream->device,
             device);
    current_streams[device] = stream && !stream->is_default ? stream : NULL;
    return NB_OK;
}

nb_stream *nb_cuda_current_stream(int device) {
    cuda_device *dev;
    if (device_state("nb_cuda_current_stream", device, &dev) != NB_OK) return NULL;
    return stream_of(device);
}

nb_status nb_cuda_stream_synchronize(nb_stream *stream) {
    NB_CHECK(stream, NB_ERR_INVALID, "nb_cuda_stream_synchronize: stream is NULL");
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_stream_synchronize", stream->device, &dev));
    return nb__cuda_wait("nb_cuda_stream_synchronize", stream);
}

void *nb_cuda_stream_handle(nb_stream *stream) {
    if (!stream) {
        nb__error(NB_ERR_INVALID, "nb_cuda_stream_handle: stream is NULL");
        return NULL;
    }
    return (void *)stream->handle;
}

nb_status nb_cuda_synchronize(int device) {
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_synchronize", device, &dev));
    NB_CUDA_TRY("nb_cuda_synchronize", cudaDeviceSynchronize());
    return take_index_error("nb_cuda_synchronize", device);
}

// ---- events ----

nb_status nb_cuda_event_create(int device, nb_event **out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_cuda_event_create: out is NULL");
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_event_create", device, &dev));
    nb_event *event = (nb_event *)nb__calloc(1, sizeof *event);
    NB_CHECK(event, NB_ERR_OOM, "nb_cuda_event_create: out of host memory");
    cudaError_t error = cudaEventCreate(&event->handle);
    if (error != cudaSuccess) {
        free(event);
        return nb__cuda_error("nb_cuda_event_create", error, "cudaEventCreate");
    }
    event->device = device;
    *out = event;
    return NB_OK;
}

void nb_cuda_event_destroy(nb_event *event) {
    if (!event) return;
    cudaEventDestroy(event->handle);
    free(event);
}

nb_status nb_cuda_event_record(nb_event *event, nb_stream *stream) {
    NB_CHECK(event, NB_ERR_INVALID, "nb_cuda_event_record: event is NULL");
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_event_record", event->device, &dev));
    nb_stream *on = stream ? stream : stream_of(event->device);
    NB_CHECK(on->device == event->device, NB_ERR_DEVICE,
             "nb_cuda_event_record: the event belongs to cuda:%d but the stream to cuda:%d",
             event->device, on->device);
    NB_CUDA_TRY("nb_cuda_event_record", cudaEventRecord(event->handle, on->handle));
    return NB_OK;
}

nb_status nb_cuda_event_synchronize(nb_event *event) {
    NB_CHECK(event, NB_ERR_INVALID, "nb_cuda_event_synchronize: event is NULL");
    NB_CUDA_TRY("nb_cuda_event_synchronize", cudaEventSynchronize(event->handle));
    return take_index_error("nb_cuda_event_synchronize", event->device);
}

nb_status nb_cuda_stream_wait_event(nb_stream *stream, nb_event *event) {
    NB_CHECK(stream && event, NB_ERR_INVALID, "nb_cuda_stream_wait_event: %s is NULL",
             stream ? "event" : "stream");
    cuda_device *dev;
    NB_TRY(device_state("nb_cuda_stream_wait_event", stream->device, &dev));
    NB_CUDA_TRY("nb_cuda_stream_wait_event", cudaStreamWaitEvent(stream->handle, event->handle, 0));
    return NB_OK;
}

nb_status nb_cuda_event_elapsed_ms(nb_event *start, nb_event *end, float *ms) {
    NB_CHECK(start && end && ms, NB_ERR_INVALID, "nb_cuda_event_elapsed_ms: an argument is NULL");
    NB_CUDA_TRY("nb_cuda_event_elapsed_ms", cudaEventElapsedTime(ms, start->handle, end->handle));
    return NB_OK;
}

void nb_cuda_set_tf32(bool enabled) { __atomic_store_n(&tf32, enabled, __ATOMIC_RELAXED); }
bool nb_cuda_tf32_enabled(void) { return __atomic_load_n(&tf32, __ATOMIC_RELAXED); }

// ---- copies ----

static nb_status ensure_stage(const char *fn, cuda_device *dev) {
    for (int i = 0; i < 2; i++) {
        if (dev->stage[i]) continue;
        NB_CUDA_TRY(fn, cudaHostAlloc((void **)&dev->stage[i], NB_CUDA_STAGE_CHUNK,
                                      cudaHostAllocDefault));
        NB_CUDA_TRY(fn, cudaEventCreateWithFlags(&dev->stage_done[i], cudaEventDisableTiming));
    }
    return NB_OK;
}

// Host to device through the two pinned chunks: chunk i is filled on the host
// while chunk i-1 is in flight.
static nb_status staged_upload(const char *fn, cuda_device *dev, cudaStream_t stream, char *dst,
                               const char *src, size_t nbytes) {
    NB_TRY(ensure_stage(fn, dev));
    for (size_t done = 0, i = 0; done < nbytes; done += NB_CUDA_STAGE_CHUNK, i++) {
        size_t len = nbytes - done < NB_CUDA_STAGE_CHUNK ? nbytes - done : NB_CUDA_STAGE_CHUNK;
        int b = (int)(i % 2);
        NB_CUDA_TRY(fn, cudaEventSynchronize(dev->stage_done[b]));
        memcpy(dev->stage[b], src + done, len);
        NB_CUDA_TRY(fn, cudaMemcpyAsync(dst + done, dev->stage[b], len, cudaMemcpyHostToDevice,
                                        stream));
        NB_CUDA_TRY(fn, cudaEventRecord(dev->stage_done[b], stream));
    }
    for (int b = 0; b < 2; b++) NB_CUDA_TRY(fn, cudaEventSynchronize(dev->stage_done[b]));
    return NB_OK;
}

// Device to host: chunk i+1 is in flight while chunk i is copied out.
static nb_status staged_download(const char *fn, cuda_device *dev, cudaStream_t stream, char *dst,
                                 const char *src, size_t nbytes) {
    NB_TRY(ensure_stage(fn, dev));
    size_t chunks = (nbytes + NB_CUDA_STAGE_CHUNK - 1) / NB_CUDA_STAGE_CHUNK;
    for (size_t i = 0; i <= chunks; i++) {
        if (i < chunks) {
            size_t done = i * NB_CUDA_STAGE_CHUNK;
            size_t len = nbytes - done < NB_CUDA_STAGE_CHUNK ? nbytes - done : NB_CUDA_STAGE_CHUNK;
            NB_CUDA_TRY(fn, cudaMemcpyAsync(dev->stage[i % 2], src + done, len,
                                            cudaMemcpyDeviceToHost, stream));
            NB_CUDA_TRY(fn, cudaEventRecord(dev->stage_done[i % 2], stream));
        }
        if (i > 0) {
            size_t done = (i - 1) * NB_CUDA_STAGE_CHUNK;
            size_t len = nbytes - done < NB_CUDA_STAGE_CHUNK ? nbytes - done : NB_CUDA_STAGE_CHUNK;
            NB_CUDA_TRY(fn, cudaEventSynchronize(dev->stage_done[(i - 1) % 2]));
            memcpy(dst + done, dev->stage[(i - 1) % 2], len);
        }
    }
    return NB_OK;
}

static nb_status upload(const char *fn, int device, void *dst, const void *src, size_t nbytes) {
    cuda_device *dev;
    NB_TRY(device_state(fn, device, &dev));
    nb_stream *stream = stream_of(device);
    if (nbytes < NB_CUDA_STAGE_MIN) {
        // pageable memory is staged by the driver before this returns
        NB_CUDA_TRY(fn, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream->handle));
        return NB_OK;
    }
    pthread_mutex_lock(&dev->stage_lock);
    nb_status status = staged_upload(fn, dev, stream->handle, (char *)dst, (const char *)src, nbytes);
    pthread_mutex_unlock(&dev->stage_lock);
    return status;
}

static nb_status download(const char *fn, int device, void *dst, const void *src, size_t nbytes) {
    cuda_device *dev;
    NB_TRY(device_state(fn, device, &dev));
    nb_stream *stream = stream_of(device);
    if (nbytes < NB_CUDA_STAGE_MIN) {
        NB_CUDA_TRY(fn, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream->handle));
        return nb__cuda_wait(fn, stream);
    }
    pthread_mutex_lock(&dev->stage_lock);
    nb_status status = staged_download(fn, dev, stream->handle, (char *)dst, (const char *)src,
                                       nbytes);
    pthread_mutex_unlock(&dev->stage_lock);
    NB_TRY(status);
    return take_index_error(fn, device);
}

// Between two GPUs: the destination's pending work is finished first (its
// block may be recycled), then the source's stream copies and is waited on.
static nb_status peer_copy(const char *fn, int dst_device, void *dst, int src_device,
                           const void *src, size_t nbytes) {
    cuda_device *dev;
    NB_TRY(device_state(fn, dst_device, &dev));
    NB_TRY(nb__cuda_wait(fn, stream_of(dst_device)));
    NB_TRY(device_state(fn, src_device, &dev));
    nb_stream *stream = stream_of(src_device);
    NB_CUDA_TRY(fn, cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, stream->handle));
    return nb__cuda_wait(fn, stream);
}

nb_status nb__cuda_copy_bytes(const char *fn, void *dst, nb_device dst_device, const void *src,
                              nb_device src_device, size_t nbytes) {
    if (nbytes == 0) return NB_OK;
    bool to_gpu = dst_device.type == NB_DEVICE_CUDA, from_gpu = src_device.type == NB_DEVICE_CUDA;
    if (to_gpu && !from_gpu) return upload(fn, dst_device.index, dst, src, nbytes);
    if (from_gpu && !to_gpu) return download(fn, src_device.index, dst, src, nbytes);
    if (dst_device.index != src_device.index)
        return peer_copy(fn, dst_device.index, dst, src_device.index, src, nbytes);
    cuda_device *dev;
    NB_TRY(device_state(fn, dst_device.index, &dev));
    NB_CUDA_TRY(fn, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice,
                                    stream_of(dst_device.index)->handle));
    return NB_OK;
}
