// Copies and casts between any strides and dtypes: a plain device copy when
// both sides are dense and alike, the vector engine for other same-dtype
// copies (expanded or sliced sources), else element by element, converting
// through double when a float is involved (the CPU backend's rounding).
#include "map.cuh"

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
    if (nb_dtype_is_float(src->dtype) || nb_dtype_is_float(out->dtype))
        return nb__cuda_map_as<double>(args, nb_identity_fn{});
    return nb__cuda_map_as<int64_t>(args, nb_identity_fn{});
}
