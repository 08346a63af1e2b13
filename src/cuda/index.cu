// Indexing kernels: index_select, gather, scatter_add (atomic adds, so
// repeated indices accumulate), one_hot. An index out of range is recorded
// in the device's error slot, its element skipped, and the error reported at
// the next synchronization (a kernel cannot return a status).
#include "cuda.cuh"

// Moves one element of size bytes.
__device__ __forceinline__ void nb_move(char *dst, const char *src, int size) {
    switch (size) {
    case 8: *(uint64_t *)dst = *(const uint64_t *)src; break;
    case 4: *(uint32_t *)dst = *(const uint32_t *)src; break;
    case 2: *(uint16_t *)dst = *(const uint16_t *)src; break;
    default: *dst = *src; break;
    }
}

// The offset in `strides` of the element at row-major position linear of
// `shape`, with the coordinate along dim replaced by at (dim < 0: none).
__device__ __forceinline__ int64_t nb_offset_with(int64_t linear, const nb_cuda_geometry &shape,
                                                  const int64_t *strides, int dim, int64_t at,
                                                  int64_t *coordinate) {
    int64_t offset = 0;
    for (int d = shape.ndim - 1; d >= 0; d--) {
        int64_t c = linear % shape.shape[d];
        linear /= shape.shape[d];
        if (d == dim) *coordinate = c;
        offset += (d == dim ? at : c) * strides[d];
    }
    return offset;
}

typedef struct nb_index_args {
    char *out;
    const char *x, *index;
    nb_cuda_geometry out_shape, x_geometry, index_geometry;
    int size; // element bytes
    int dim;
    nb_dtype index_dtype;
    int64_t limit, n;
    nb_cuda_error_slot *errors;
} nb_index_args;

// The index value at row-major position i of the index tensor.
__device__ __forceinline__ int64_t nb_index_at(const nb_index_args &a, int64_t i) {
    int64_t at = nb_offset_of(i, a.index_geometry.ndim, a.index_geometry.shape,
                              a.index_geometry.strides);
    return nb_load<int64_t>(a.index + at * nb_size_of(a.index_dtype), a.index_dtype);
}

// Checks index value v of position i (a negative one is out of range).
__device__ __forceinline__ bool nb_valid(const nb_index_args &a, nb_op op, int64_t v, int64_t i) {
    if (v >= 0 && v < a.limit) return true;
    nb_report_index(a.errors, op, v, a.limit, i);
    return false;
}

__global__ void nb_index_select_kernel(nb_index_args a) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += stride) {
        int64_t c = 0;
        nb_offset_with(i, a.out_shape, a.out_shape.strides, a.dim, 0, &c);
        int64_t v = nb_load<int64_t>(a.index + c * a.index_geometry.strides[0] *
                                                   nb_size_of(a.index_dtype), a.index_dtype);
        if (!nb_valid(a, NB_OP_INDEX_SELECT, v, c)) continue;
        int64_t src = nb_offset_with(i, a.out_shape, a.x_geometry.strides, a.dim, v, &c);
        nb_move(a.out + i * a.size, a.x + src * a.size, a.size);
    }
}

__global__ void nb_gather_kernel(nb_index_args a) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += stride) {
        int64_t v = nb_index_at(a, i);
        if (!nb_valid(a, NB_OP_GATHER, v, i)) continue;
        int64_t c;
        int64_t src = nb_offset_with(i, a.index_geometry, a.x_geometry.strides, a.dim, v, &c);
        nb_move(a.out + i * a.size, a.x + src * a.size, a.size);
    }
}

// Atomic *address += value, wrapping for integers, nonzero-or for bool.
template <typename T> __device__ __forceinline__ void nb_atomic_add(T *address, T value) {
    if constexpr (std::is_same<T, int64_t>::value) {
        atomicAdd((unsigned long long *)address, (unsigned long long)value);
    } else if constexpr (sizeof(T) == 1) { // u8 and bool: CAS on the aligned word holding it
        uintptr_t at = (uintptr_t)address;
        unsigned *word = (unsigned *)(at & ~(uintptr_t)3);
        unsigned shift = (unsigned)(at & 3) * 8, old = *word, seen;
        do {
            seen = old;
            unsigned byte = (seen >> shift) & 0xFFu;
            unsigned sum = std::is_same<T, bool>::value ? (byte || value) : (byte + (unsigned)value) & 0xFFu;
            old = atomicCAS(word, seen, (seen & ~(0xFFu << shift)) | (sum << shift));
        } while (old != seen);
    } else {
        atomicAdd(address, value);
    }
}

template <typename T>
__global__ void nb_scatter_add_kernel(nb_index_args a, nb_cuda_geometry src_geometry) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += stride) {
        int64_t v = nb_index_at(a, i);
        if (!nb_valid(a, NB_OP_SCATTER_ADD, v, i)) continue;
        int64_t c;
        int64_t dst = nb_offset_with(i, a.index_geometry, a.out_shape.strides, a.dim, v, &c);
        int64_t from = nb_offset_with(i, a.index_geometry, src_geometry.strides, -1, 0, &c);
        nb_atomic_add((T *)a.out + dst, ((const T *)a.x)[from]);
    }
}

__global__ void nb_one_hot_kernel(nb_index_args a) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += stride) {
        int64_t v = nb_index_at(a, i);
        if (nb_valid(a, NB_OP_ONE_HOT, v, i)) ((int64_t *)a.out)[i * a.limit + v] = 1;
    }
}

// The arguments every indexing kernel shares; x may be NULL.
static nb_index_args index_args(const nb_op_args *args, const nb_tensor *x, const nb_tensor *index,
                                int64_t limit, int64_t n, const nb_cuda_ctx *ctx) {
    nb_index_args a;
    a.out = nb__data(args->out);
    a.x = x ? nb__data(x) : NULL;
    a.index = nb__data(index);
    a.out_shape = nb__cuda_geometry(args->out);
    a.x_geometry = x ? nb__cuda_geometry(x) : a.out_shape;
    a.index_geometry = nb__cuda_geometry(index);
    a.size = (int)nb_dtype_size(args->out->dtype);
    a.dim = args->attrs.axis.dim;
    a.index_dtype = index->dtype;
    a.limit = limit;
    a.n = n;
    a.errors = ctx->errors;
    return a;
}

nb_status nb__cuda_index_select(const nb_op_args *args) {
    const nb_tensor *x = args->in[0], *index = args->in[1];
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_index_select", args->out->storage->device.index, &ctx));
    int64_t n = nb_numel(args->out);
    nb_index_args a = index_args(args, x, index, x->shape[args->attrs.axis.dim], n, &ctx);
    if (index->ndim == 0) a.index_geometry.strides[0] = 0;
    nb_index_select_kernel<<<nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS), NB_CUDA_THREADS, 0,
                             ctx.handle>>>(a);
    return nb__cuda_launched("nb_index_select");
}

nb_status nb__cuda_gather(const nb_op_args *args) {
    const nb_tensor *x = args->in[0], *index = args->in[1];
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_gather", args->out->storage->device.index, &ctx));
    int64_t n = nb_numel(args->out);
    nb_index_args a = index_args(args, x, index, x->shape[args->attrs.axis.dim], n, &ctx);
    nb_gather_kernel<<<nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS), NB_CUDA_THREADS, 0, ctx.handle>>>(a);
    return nb__cuda_launched("nb_gather");
}

nb_status nb__cuda_scatter_add(const nb_op_args *args) {
    const nb_tensor *index = args->in[0], *src = args->in[1];
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_scatter_add", args->out->storage->device.index, &ctx));
    int64_t n = nb_numel(index);
    if (n == 0) return NB_OK;
    nb_index_args a = index_args(args, src, index, args->out->shape[args->attrs.axis.dim], n, &ctx);
    nb_cuda_geometry src_geometry = nb__cuda_geometry(src);
    unsigned blocks = nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS);
    NB_CUDA_SWITCH(args->out->dtype, T,
                   (nb_scatter_add_kernel<T><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(a, src_geometry)));
    return nb__cuda_launched("nb_scatter_add");
}

nb_status nb__cuda_one_hot(const nb_op_args *args) {
    const nb_tensor *indices = args->in[0];
    nb_tensor *out = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_one_hot", out->storage->device.index, &ctx));
    NB_CUDA_TRY("nb_one_hot", cudaMemsetAsync(nb__data(out), 0,
                                              (size_t)nb_numel(out) * nb_dtype_size(out->dtype),
                                              ctx.handle));
    int64_t n = nb_numel(indices);
    if (n == 0) return NB_OK;
    nb_index_args a = index_args(args, NULL, indices, args->attrs.one_hot.num_classes, n, &ctx);
    nb_one_hot_kernel<<<nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS), NB_CUDA_THREADS, 0, ctx.handle>>>(a);
    return nb__cuda_launched("nb_one_hot");
}
