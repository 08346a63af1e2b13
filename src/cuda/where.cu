// Selection kernels: where(cond, a, b) and masked_fill(x, mask, value); the
// condition and mask arrive in the compute type (nonzero is true).
#include "map.cuh"

struct nb_where_fn {
    static constexpr int inputs = 3;
    template <typename C> __device__ C operator()(const C *in) const {
        return in[0] != 0 ? in[1] : in[2];
    }
};

struct nb_masked_fill_fn {
    static constexpr int inputs = 2;
    double value;

    template <typename C> __device__ C operator()(const C *in) const {
        return in[1] != 0 ? (C)value : in[0];
    }
};

nb_status nb__cuda_where(const nb_op_args *args) { return nb__cuda_map(args, nb_where_fn{}); }

nb_status nb__cuda_masked_fill(const nb_op_args *args) {
    return nb__cuda_map(args, nb_masked_fill_fn{args->attrs.fill.value});
}
