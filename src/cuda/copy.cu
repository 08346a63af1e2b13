// Copies and casts between any strides and dtypes: a plain device copy when
// both sides are dense and alike, the vector engine for other same-dtype
// copies (expanded or sliced sources), a dense cast kernel 8 values a thread
// between the float dtypes and from the integers and bool to f32, else
// element by element; a cast converts through double when a float is
// involved (the CPU backend's rounding).
#include "map.cuh"

// 8 values a thread, read and written as whole packs (src and dst aligned to
// 8 values), the tail one by one.
template <typename S, typename D> __global__ void nb_cast_dense(const S *src, D *dst, int64_t n) {
    int64_t step = (int64_t)gridDim.x * blockDim.x, packs = n / 8;
    int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (int64_t q = first; q < packs; q += step) {
        nb_pack<S, 8> in = ((const nb_pack<S, 8> *)src)[q];
        nb_pack<D, 8> out;
#pragma unroll
        for (int j = 0; j < 8; j++) out.v[j] = nb_to_storage<D>(nb_to_compute<double>(in.v[j]));
        ((nb_pack<D, 8> *)dst)[q] = out;
    }
    for (int64_t i = packs * 8 + first; i < n; i += step) dst[i] = nb_to_storage<D>(nb_to_compute<double>(src[i]));
}

// S to D when nb_cast_dense is compiled for the pair: between f32, f64, f16
// and bf16, and u8, bool, i32 and i64 to f32; NB_ERR_UNSUPPORTED otherwise.
template <typename S, typename D>
static nb_status launch_cast(const nb_cuda_ctx *ctx, const nb_tensor *src, nb_tensor *out) {
    constexpr bool from_float = nb_is_float_v<nb_compute_t<S>>;
    if constexpr (std::is_same<S, D>::value || !(from_float || std::is_same<D, float>::value)) {
        return NB_ERR_UNSUPPORTED;
    } else {
        int64_t n = nb_numel(out);
        nb_cast_dense<S, D><<<nb__cuda_blocks(ctx, n / 8 + 1, NB_CUDA_THREADS), NB_CUDA_THREADS, 0,
                              ctx->handle>>>((const S *)nb__data(src), (D *)nb__data(out), n);
        return nb__cuda_launched("nb_cast");
    }
}

template <typename S>
static nb_status cast_from(const nb_cuda_ctx *ctx, const nb_tensor *src, nb_tensor *out) {
    switch (out->dtype) {
    case NB_F32: return launch_cast<S, float>(ctx, src, out);
    case NB_F64: return launch_cast<S, double>(ctx, src, out);
    case NB_F16: return launch_cast<S, __half>(ctx, src, out);
    case NB_BF16: return launch_cast<S, __nv_bfloat16>(ctx, src, out);
    default: return NB_ERR_UNSUPPORTED;
    }
}

// Dense, aligned casts through nb_cast_dense; NB_ERR_UNSUPPORTED (no error
// recorded) for the rest, which the element path takes.
static nb_status cast_dense(const nb_tensor *src, nb_tensor *out) {
    bool aligned = (uintptr_t)nb__data(src) % (8 * nb_dtype_size(src->dtype)) == 0 &&
                   (uintptr_t)nb__data(out) % (8 * nb_dtype_size(out->dtype)) == 0;
    if (!aligned || !nb__is_contiguous(src) || !nb__is_contiguous(out)) return NB_ERR_UNSUPPORTED;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_cast", out->storage->device.index, &ctx));
    nb_status status = NB_ERR_UNSUPPORTED;
    NB_CUDA_SWITCH(src->dtype, S, status = cast_from<S>(&ctx, src, out));
    return status;
}

struct nb_identity_fn {
    static constexpr int inputs = 1;
    template <typename C> __device__ C operator()(const C *in) const { return in[0]; }
};

nb_status nb__cuda_copy(const nb_op_args *args) {
    const nb_tensor *src = args->in[0];
    nb_tensor *out = args->out;
    if (src->dtype == out->dtype) {
        if (nb__is_contiguous(src) && nb__is_contiguous(out)) {
            nb_cuda_ctx ctx;
            NB_TRY(nb__cuda_begin("nb_copy", out->storage->device.index, &ctx));
            size_t nbytes = (size_t)nb_numel(out) * nb_dtype_size(out->dtype);
            NB_CUDA_TRY("nb_copy", cudaMemcpyAsync(nb__data(out), nb__data(src), nbytes,
                                                   cudaMemcpyDeviceToDevice, ctx.handle));
            return NB_OK;
        }
        nb_op_args same = *args;
        same.dtype = out->dtype;
        return nb__cuda_map(&same, nb_identity_fn{});
    }
    nb_status dense = cast_dense(src, out);
    if (dense != NB_ERR_UNSUPPORTED) return dense;
    if (nb_dtype_is_float(src->dtype) || nb_dtype_is_float(out->dtype))
        return nb__cuda_map_as<double>(args, nb_identity_fn{});
    return nb__cuda_map_as<int64_t>(args, nb_identity_fn{});
}
