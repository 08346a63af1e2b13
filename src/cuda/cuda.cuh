// The CUDA backend's shared header: error checks, per-device state, launch
// helpers and the device-side dtype conversions every kernel file uses.
// Host code in src/cuda is C-style C++; templates appear only for kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <pthread.h>

#include <type_traits>

#include "../core/internal.h"

#define NB_CUDA_MAX_DEVICES 16
#define NB_CUDA_THREADS 256

// ---- errors ----

// A failed CUDA runtime call as a status naming fn and the call.
nb_status nb__cuda_error(const char *fn, cudaError_t error, const char *call);

#define NB_CUDA_TRY(fn, call)                                            \
    do {                                                                 \
        cudaError_t nb_cuda_error_ = (call);                             \
        if (nb_cuda_error_ != cudaSuccess) return nb__cuda_error((fn), nb_cuda_error_, #call); \
    } while (0)

// Index errors a kernel finds: the first one is recorded here (in mapped
// host memory) and reported at the next synchronization.
typedef struct nb_cuda_error_slot {
    unsigned long long flag;
    long long op, value, limit, position;
} nb_cuda_error_slot;

// ---- devices and streams ----

struct nb_stream {
    int device;
    cudaStream_t handle;
    bool is_default;
    void *workspace; // cuBLASLt workspace, allocated on first use
    size_t workspace_size;
    void *workspace_block;
};

// What a kernel launch needs: the device's current stream and facts.
typedef struct nb_cuda_ctx {
    int device;
    nb_stream *stream;
    cudaStream_t handle;
    nb_cuda_error_slot *errors; // device pointer
    int multiprocessors;
    int compute_major;
} nb_cuda_ctx;

// Makes device current on this thread and fills ctx (initializing the
// device on first use).
nb_status nb__cuda_begin(const char *fn, int device, nb_cuda_ctx *ctx);
// Checks that the kernels just queued were launched.
nb_status nb__cuda_launched(const char *fn);
// Waits for stream and reports index errors kernels found (NB_ERR_INDEX).
nb_status nb__cuda_wait(const char *fn, nb_stream *stream);
// The cuBLASLt handle of a device (void * keeps cublasLt.h out of this header).
void *nb__cuda_blaslt(int device);

// ---- memory ----

nb_status nb__cuda_alloc(const char *fn, size_t nbytes, nb_device device, void **ptr,
                         void **block);
void nb__cuda_free(void *ptr, size_t nbytes, nb_device device, void *block);
void nb__cuda_release_cache(nb_device device);
// Scratch memory for one op on the current stream: freed with nb__cuda_free.
static inline nb_status nb__cuda_scratch(const char *fn, const nb_cuda_ctx *ctx, size_t nbytes,
                                         void **ptr, void **block) {
    return nb__cuda_alloc(fn, nbytes, nb_cuda(ctx->device), ptr, block);
}

// nbytes rounded up to 256, so arrays carved one after another from one
// scratch allocation stay aligned for any type (CUB's temporaries included).
static inline size_t nb__cuda_aligned(size_t nbytes) { return (nbytes + 255) / 256 * 256; }

// ---- per-shape choices ----

// A table from a fixed-size key to a fixed-size value (both plain bytes;
// zero a key's padding before filling it), for the choices made once per
// shape: cuBLASLt algorithms, cuDNN plans. A full probe run replaces its
// first slot, handing the old value to evict (if set).
typedef struct nb_shape_cache {
    size_t key_size, value_size;
    int slots;
    void (*evict)(void *value);
    unsigned char *entries; // allocated on the first put
    pthread_mutex_t lock;
} nb_shape_cache;
#define NB_SHAPE_CACHE(key_type, value_type, slots, evict) \
    {sizeof(key_type), sizeof(value_type), (slots), (evict), NULL, PTHREAD_MUTEX_INITIALIZER}
bool nb__shape_cache_get(nb_shape_cache *cache, const void *key, void *value);
void nb__shape_cache_put(nb_shape_cache *cache, const void *key, const void *value);

// ---- launching ----

// Blocks for a grid-stride loop over work items: enough to fill the GPU a
// few times over, never more than the work needs.
static inline unsigned nb__cuda_blocks(const nb_cuda_ctx *ctx, int64_t work, int threads) {
    int64_t needed = (work + threads - 1) / threads;
    int64_t full = (int64_t)ctx->multiprocessors * (2048 / threads) * 4;
    int64_t blocks = needed < full ? needed : full;
    return (unsigned)(blocks > 0 ? blocks : 1);
}

// ---- device-side dtypes ----

// The type a kernel computes in for a storage type: float for the float
// types up to 32 bits, double, and int64 for every integer type and bool
// (the CPU backend's rule, so both devices round alike).
template <typename T> struct nb_compute { using type = int64_t; };
template <> struct nb_compute<float> { using type = float; };
template <> struct nb_compute<__half> { using type = float; };
template <> struct nb_compute<__nv_bfloat16> { using type = float; };
template <> struct nb_compute<double> { using type = double; };
template <typename T> using nb_compute_t = typename nb_compute<T>::type;

template <typename C> constexpr bool nb_is_float_v = std::is_floating_point<C>::value;

__host__ __device__ __forceinline__ int64_t nb_saturate_i64(double v) {
    if (v != v) return 0;
    if (v >= 0x1p63) return INT64_MAX;
    if (v < -0x1p63) return INT64_MIN;
    return (int64_t)v;
}

// A storage value as compute type C: floats to integers saturate, NaN gives 0.
// (These conversions run on the host too, to round a fill value once.)
template <typename C, typename S> __host__ __device__ __forceinline__ C nb_to_compute(S v) {
    if constexpr (std::is_same<S, __half>::value) return nb_to_compute<C>(__half2float(v));
    else if constexpr (std::is_same<S, __nv_bfloat16>::value) return nb_to_compute<C>(__bfloat162float(v));
    else if constexpr (std::is_same<S, bool>::value) return (C)(v ? 1 : 0);
    else if constexpr (!nb_is_float_v<C> && nb_is_float_v<S>) return (C)nb_saturate_i64((double)v);
    else return (C)v;
}

// A compute value stored as S: floats to integers saturate (to the target's
// range for i32), integers to narrower integers wrap, bool is nonzero.
template <typename S, typename C> __host__ __device__ __forceinline__ S nb_to_storage(C v) {
    if constexpr (std::is_same<S, __half>::value) return __float2half_rn((float)v);
    else if constexpr (std::is_same<S, __nv_bfloat16>::value) return __float2bfloat16_rn((float)v);
    else if constexpr (std::is_same<S, bool>::value) return v != 0;
    else if constexpr (nb_is_float_v<S>) return (S)v;
    else if constexpr (nb_is_float_v<C>) {
        if constexpr (std::is_same<S, int32_t>::value) {
            double d = (double)v;
            return d != d ? 0 : d >= 0x1p31 ? INT32_MAX : d < -0x1p31 ? INT32_MIN : (int32_t)d;
        } else {
            return (S)(uint64_t)nb_saturate_i64((double)v);
        }
    } else {
        return (S)(uint64_t)(int64_t)v;
    }
}

// The same conversions with the storage dtype known only at run time.
template <typename C> __device__ __forceinline__ C nb_load(const char *p, nb_dtype dtype) {
    switch (dtype) {
    case NB_F32: return nb_to_compute<C>(*(const float *)p);
    case NB_F64: return nb_to_compute<C>(*(const double *)p);
    case NB_F16: return nb_to_compute<C>(*(const __half *)p);
    case NB_BF16: return nb_to_compute<C>(*(const __nv_bfloat16 *)p);
    case NB_I32: return nb_to_compute<C>(*(const int32_t *)p);
    case NB_I64: return nb_to_compute<C>(*(const int64_t *)p);
    case NB_U8: return nb_to_compute<C>(*(const uint8_t *)p);
    default: return nb_to_compute<C>(*(const uint8_t *)p != 0);
    }
}

template <typename C> __device__ __forceinline__ void nb_store(char *p, nb_dtype dtype, C v) {
    switch (dtype) {
    case NB_F32: *(float *)p = nb_to_storage<float>(v); break;
    case NB_F64: *(double *)p = nb_to_storage<double>(v); break;
    case NB_F16: *(__half *)p = nb_to_storage<__half>(v); break;
    case NB_BF16: *(__nv_bfloat16 *)p = nb_to_storage<__nv_bfloat16>(v); break;
    case NB_I32: *(int32_t *)p = nb_to_storage<int32_t>(v); break;
    case NB_I64: *(int64_t *)p = nb_to_storage<int64_t>(v); break;
    case NB_U8: *(uint8_t *)p = nb_to_storage<uint8_t>(v); break;
    default: *(bool *)p = nb_to_storage<bool>(v); break;
    }
}

__device__ __forceinline__ int nb_size_of(nb_dtype dtype) {
    switch (dtype) {
    case NB_F64: case NB_I64: return 8;
    case NB_F32: case NB_I32: return 4;
    case NB_F16: case NB_BF16: return 2;
    default: return 1;
    }
}

// Calls body with the storage type of dtype as a value of that type:
//   NB_CUDA_SWITCH(dtype, T, launch<T>(...));
#define NB_CUDA_SWITCH(dtype, T, ...)                                      \
    switch (dtype) {                                                       \
    case NB_F32: { using T = float; __VA_ARGS__; break; }                  \
    case NB_F64: { using T = double; __VA_ARGS__; break; }                 \
    case NB_F16: { using T = __half; __VA_ARGS__; break; }                 \
    case NB_BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }         \
    case NB_I32: { using T = int32_t; __VA_ARGS__; break; }                \
    case NB_I64: { using T = int64_t; __VA_ARGS__; break; }                \
    case NB_U8: { using T = uint8_t; __VA_ARGS__; break; }                 \
    default: { using T = bool; __VA_ARGS__; break; }                       \
    }

// The same over the float dtypes (bf16 the default) for kernels that only
// take floats.
#define NB_CUDA_FLOAT_SWITCH(dtype, T, ...)                                \
    switch (dtype) {                                                       \
    case NB_F32: { using T = float; __VA_ARGS__; break; }                  \
    case NB_F64: { using T = double; __VA_ARGS__; break; }                 \
    case NB_F16: { using T = __half; __VA_ARGS__; break; }                 \
    default: { using T = __nv_bfloat16; __VA_ARGS__; break; }              \
    }

// 16-byte aligned packs of V values, for vector loads and stores.
template <typename T, int V> struct alignas(sizeof(T) * V) nb_pack {
    T v[V];
};

// A kernel's launch limits, read once per process: the threads per block its
// registers allow (an f64 kernel of 72 registers cannot run 1024 threads:
// 73,728 > 65,536 registers per block) and its static shared memory.
template <auto Kernel> static const cudaFuncAttributes &nb_kernel_limits() {
    static const cudaFuncAttributes limits = [] {
        cudaFuncAttributes a = {};
        if (cudaFuncGetAttributes(&a, Kernel) != cudaSuccess) a.maxThreadsPerBlock = 32;
        return a;
    }();
    return limits;
}

// wanted (a power of two, at least 32) halved until Kernel can launch it.
template <auto Kernel> static unsigned nb_block_threads(unsigned wanted) {
    unsigned most = (unsigned)nb_kernel_limits<Kernel>().maxThreadsPerBlock;
    while (wanted > 32 && wanted > most) wanted /= 2;
    return wanted;
}

// The sum of v over the block (blockDim.x a multiple of 32), in every thread.
template <typename A> __device__ A nb_block_sum(A v) {
    __shared__ A partial[32];
    for (int width = 16; width > 0; width /= 2) v += __shfl_down_sync(0xffffffffu, v, width);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = partial[0];
    for (int w = 1; w < warps; w++) v += partial[w];
    __syncthreads(); // partial is reused by the next call
    return v;
}

// Records the first index error of a kernel; the caller skips the element.
__device__ __forceinline__ void nb_report_index(nb_cuda_error_slot *slot, nb_op op, int64_t value,
                                                int64_t limit, int64_t position) {
    if (atomicCAS(&slot->flag, 0ull, 1ull) == 0ull) {
        slot->op = op;
        slot->value = value;
        slot->limit = limit;
        slot->position = position;
    }
}

// Element i of a contiguous [N, channels, plane[0], plane[1]] tensor as
// (n, c, y, x).
typedef struct nb_nchw {
    int64_t n, c, y, x;
} nb_nchw;
__device__ __forceinline__ nb_nchw nb_nchw_of(int64_t i, int64_t channels, const int64_t *plane) {
    int64_t image = i / (plane[0] * plane[1]);
    return {image / channels, image % channels, i / plane[1] % plane[0], i % plane[1]};
}

// The element offset of (n, c, y, x) in a 4-D tensor with strides s.
__device__ __forceinline__ int64_t nb_offset4(const int64_t *s, int64_t n, int64_t c, int64_t y,
                                              int64_t x) {
    return n * s[0] + c * s[1] + y * s[2] + x * s[3];
}

// Row-major coordinates of linear over ndim dims to an element offset.
__device__ __forceinline__ int64_t nb_offset_of(int64_t linear, int ndim, const int64_t *shape,
                                                const int64_t *strides) {
    int64_t offset = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        offset += (linear % shape[d]) * strides[d];
        linear /= shape[d];
    }
    return offset;
}

// Tensor geometry passed to kernels by value.
typedef struct nb_cuda_geometry {
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_DIMS];
} nb_cuda_geometry;

static inline nb_cuda_geometry nb__cuda_geometry(const nb_tensor *t) {
    nb_cuda_geometry g;
    g.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        g.shape[d] = t->shape[d];
        g.strides[d] = t->strides[d];
    }
    return g;
}

// ---- kernel entry points, one per op family (src/cuda/<family>.cu) ----
nb_status nb__cuda_fill(const nb_op_args *args);
nb_status nb__cuda_range(const nb_op_args *args);
nb_status nb__cuda_random(const nb_op_args *args);
nb_status nb__cuda_randperm(const nb_op_args *args);
nb_status nb__cuda_multinomial(const nb_op_args *args);
nb_status nb__cuda_sort(const nb_op_args *args); // argsort and topk
nb_status nb__cuda_searchsorted(const nb_op_args *args);
nb_status nb__cuda_scan(const nb_op_args *args); // cumsum, cumprod, logcumsumexp
nb_status nb__cuda_scan_backward(const nb_op_args *args);
nb_status nb__cuda_copy(const nb_op_args *args);
nb_status nb__cuda_unary(const nb_op_args *args);
nb_status nb__cuda_gelu_backward(const nb_op_args *args);
nb_status nb__cuda_activation_backward(const nb_op_args *args);
nb_status nb__cuda_rope(const nb_op_args *args);
nb_status nb__cuda_attention(const nb_op_args *args); // flash_attention and its backward
nb_status nb__cuda_layer_norm(const nb_op_args *args);
nb_status nb__cuda_binary(const nb_op_args *args);
nb_status nb__cuda_where(const nb_op_args *args);
nb_status nb__cuda_masked_fill(const nb_op_args *args);
nb_status nb__cuda_reduce(const nb_op_args *args);
nb_status nb__cuda_matmul(const nb_op_args *args);
nb_status nb__cuda_linear(const nb_op_args *args);
nb_status nb__cuda_softmax(const nb_op_args *args);
nb_status nb__cuda_index_select(const nb_op_args *args);
nb_status nb__cuda_gather(const nb_op_args *args);
nb_status nb__cuda_scatter_add(const nb_op_args *args);
nb_status nb__cuda_one_hot(const nb_op_args *args);
nb_status nb__cuda_cross_entropy(const nb_op_args *args);
nb_status nb__cuda_cross_entropy_backward(const nb_op_args *args);
nb_status nb__cuda_pointwise_loss(const nb_op_args *args); // the elementwise losses and their gradient
nb_status nb__cuda_unfold(const nb_op_args *args);
nb_status nb__cuda_fold(const nb_op_args *args);
nb_status nb__cuda_depthwise(const nb_op_args *args); // depthwise_conv2d and its gradients
nb_status nb__cuda_conv(const nb_op_args *args);      // conv2d_direct and its gradients (cuDNN)
nb_status nb__cuda_pool(const nb_op_args *args); // max_pool2d, avg_pool2d and its backward
nb_status nb__cuda_optim_step(const nb_op_args *args);
nb_status nb__cuda_batch_norm(const nb_op_args *args); // the batch_norm_* stages
// out = a @ b, plus bias [n] over out's last dim when bias is not NULL
// (cuBLASLt's bias epilogue); operands as the matmul kernel takes them.
nb_status nb__cuda_gemm(const char *fn, const nb_tensor *a, const nb_tensor *b,
                        const nb_tensor *bias, nb_tensor *out);
// Host-device copies for the backend table.
nb_status nb__cuda_copy_bytes(const char *fn, void *dst, nb_device dst_device, const void *src,
                              nb_device src_device, size_t nbytes);
