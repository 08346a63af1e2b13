/* The CUDA API of a build without CUDA (-DNABLA_CUDA=OFF or no nvcc): every
 * request fails with NB_ERR_DEVICE and says why. */
#include "../core/internal.h"

#define NB_NO_CUDA(fn) nb__error(NB_ERR_DEVICE, "%s: nabla was built without CUDA", fn)

static bool tf32;

int nb_cuda_device_count(void) { return 0; }
bool nb_cuda_available(void) { return false; }

nb_status nb_cuda_get_properties(int device, nb_cuda_properties *out) {
    (void)device, (void)out;
    return NB_NO_CUDA("nb_cuda_get_properties");
}

nb_status nb_cuda_memory_stats_get(int device, nb_cuda_memory_stats *out) {
    (void)device, (void)out;
    return NB_NO_CUDA("nb_cuda_memory_stats_get");
}

nb_status nb_cuda_memory_stats_reset(int device) {
    (void)device;
    return NB_NO_CUDA("nb_cuda_memory_stats_reset");
}

nb_status nb_cuda_stream_create(int device, nb_stream **out) {
    (void)device, (void)out;
    return NB_NO_CUDA("nb_cuda_stream_create");
}

nb_status nb_cuda_stream_destroy(nb_stream *stream) {
    return stream ? NB_NO_CUDA("nb_cuda_stream_destroy") : NB_OK; /* NULL: nothing, as with CUDA */
}

nb_status nb_cuda_set_stream(int device, nb_stream *stream) {
    (void)device, (void)stream;
    return NB_NO_CUDA("nb_cuda_set_stream");
}

nb_stream *nb_cuda_current_stream(int device) {
    (void)device;
    NB_NO_CUDA("nb_cuda_current_stream");
    return NULL;
}

nb_status nb_cuda_stream_synchronize(nb_stream *stream) {
    (void)stream;
    return NB_NO_CUDA("nb_cuda_stream_synchronize");
}

void *nb_cuda_stream_handle(nb_stream *stream) {
    (void)stream;
    NB_NO_CUDA("nb_cuda_stream_handle");
    return NULL;
}

nb_status nb_cuda_synchronize(int device) {
    (void)device;
    return NB_NO_CUDA("nb_cuda_synchronize");
}

nb_status nb_cuda_event_create(int device, nb_event **out) {
    (void)device, (void)out;
    return NB_NO_CUDA("nb_cuda_event_create");
}

void nb_cuda_event_destroy(nb_event *event) { (void)event; }

nb_status nb_cuda_event_record(nb_event *event, nb_stream *stream) {
    (void)event, (void)stream;
    return NB_NO_CUDA("nb_cuda_event_record");
}

nb_status nb_cuda_event_synchronize(nb_event *event) {
    (void)event;
    return NB_NO_CUDA("nb_cuda_event_synchronize");
}

nb_status nb_cuda_stream_wait_event(nb_stream *stream, nb_event *event) {
    (void)stream, (void)event;
    return NB_NO_CUDA("nb_cuda_stream_wait_event");
}

nb_status nb_cuda_event_elapsed_ms(nb_event *start, nb_event *end, float *ms) {
    (void)start, (void)end, (void)ms;
    return NB_NO_CUDA("nb_cuda_event_elapsed_ms");
}

void nb_cuda_set_tf32(bool enabled) { tf32 = enabled; }
bool nb_cuda_tf32_enabled(void) { return tf32; }
