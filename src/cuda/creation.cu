// Creation kernels: fill, arange and linspace. A fill's value is rounded to
// the tensor's dtype once on the host (as the CPU rounds it), then written by
// the elementwise engine, 16 bytes a store on dense tensors; a dense fill of
// +0 is a memset, since +0 is all-zero bytes in every dtype.
#include "map.cuh"

// The fill value as the dtype stores it, held exactly in either compute type.
struct nb_fill_fn {
    static constexpr int inputs = 0;
    double real;
    int64_t integer;
    template <typename C> __device__ C operator()(const C *) const {
        if constexpr (nb_is_float_v<C>) return (C)real;
        else return integer;
    }
};

nb_status nb__cuda_fill(const nb_op_args *args) {
    const nb_tensor *out = args->out;
    double value = args->attrs.fill.value;
    if (value == 0 && !signbit(value) && nb__is_contiguous(out)) {
        const char *fn = nb__op_fn(args->op);
        nb_cuda_ctx ctx;
        NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
        size_t bytes = (size_t)nb_numel(out) * nb_dtype_size(out->dtype);
        NB_CUDA_TRY(fn, cudaMemsetAsync(nb__data(out), 0, bytes, ctx.handle));
        return NB_OK;
    }
    nb_fill_fn fill = {};
    NB_CUDA_SWITCH(out->dtype, T, {
        T stored = nb_to_storage<T>(value);
        fill.real = nb_to_compute<double>(stored);
        fill.integer = nb_to_compute<int64_t>(stored);
    });
    nb_op_args typed = *args;
    typed.dtype = out->dtype;
    return nb__cuda_map(&typed, fill);
}

// arange: start + i*step; linspace: the same from the nearer end, so both
// endpoints are exact.
__global__ void nb_range_kernel(char *out, nb_dtype dtype, int64_t n, double start, double step,
                                double end, bool symmetric) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride) {
        double v = symmetric && n > 1 && i >= n / 2 ? end - (double)(n - 1 - i) * step
                                           : start + (double)i * step;
        nb_store<double>(out + i * nb_size_of(dtype), dtype, v);
    }
}

nb_status nb__cuda_range(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    nb_tensor *out = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    int64_t n = nb_numel(out);
    nb_range_kernel<<<nb__cuda_blocks(&ctx, n, NB_CUDA_THREADS), NB_CUDA_THREADS, 0, ctx.handle>>>(
        nb__data(out), out->dtype, n, args->attrs.range.start, args->attrs.range.step,
        args->attrs.range.end, args->op == NB_OP_LINSPACE);
    return nb__cuda_launched(fn);
}
