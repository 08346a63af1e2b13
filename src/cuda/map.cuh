// The elementwise engine of the CUDA backend: runs a functor over every
// element of an op's output, its inputs already broadcast to the output's
// shape (src/core/plan.c merges the dims). Two kernels:
//  - vector: every operand is of one storage type T or bool, and each
//    operand's innermost stride is 1 (read 16 bytes at a time) or 0 (a
//    broadcast value, read once per vector): contiguous, row- and
//    column-broadcast operands all take this path;
//  - any: arbitrary strides and dtypes, converting each element.
// A functor F has `template <typename C> __device__ C operator()(const C *in)`
// and computes in C (float, double or int64, see nb_compute), and says how
// many inputs it reads in `static constexpr int inputs`. Both kernels take
// that count as a template parameter, so operand arrays are indexed by
// constants and live in registers; a one-dim plan (contiguous or broadcast
// operands) computes offsets without dividing.
#pragma once

#include "cuda.cuh"

#define NB_MAP_MAX_OPERANDS (NB_MAX_INPUTS + 1)

// The element offset of output element i in each of the M operands of the
// plan. M is a template parameter so that every array here is indexed by
// constants and stays in registers (a run-time operand count put them in
// local memory: 160-byte stack frames in the bf16 kernels).
template <int M>
__device__ __forceinline__ void nb_plan_offsets(const nb_map_plan &p, int64_t i, int64_t *offset) {
#pragma unroll
    for (int k = 0; k < M; k++) offset[k] = 0;
    for (int d = p.ndim - 1; d >= 0; d--) {
        int64_t c = i % p.shape[d];
        i /= p.shape[d];
#pragma unroll
        for (int k = 0; k < M; k++) offset[k] += c * p.strides[k][d];
    }
}

// Any strides and dtypes, N inputs, computing in C.
template <typename C, int N, typename F>
__global__ void nb_map_any(nb_map_plan p, F f) {
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.numel; i += step) {
        int64_t offset[N + 1];
        nb_plan_offsets<N + 1>(p, i, offset);
        C in[N > 0 ? N : 1];
#pragma unroll
        for (int k = 0; k < N; k++)
            in[k] = nb_load<C>(p.base[k + 1] + offset[k + 1] * nb_size_of(p.dtype[k + 1]), p.dtype[k + 1]);
        nb_store<C>(p.base[0] + offset[0] * nb_size_of(p.dtype[0]), p.dtype[0], f(in));
    }
}

// V values of storage type S at element offset of base, in C: a pack, or
// one value repeated when the operand is broadcast along the row.
template <typename S, int V, typename C>
__device__ __forceinline__ void nb_load_values(const char *base, int64_t offset, bool broadcast,
                                               C *out) {
    const S *at = (const S *)base + offset;
    if (broadcast) {
        C x = nb_to_compute<C>(*at);
#pragma unroll
        for (int j = 0; j < V; j++) out[j] = x;
        return;
    }
    nb_pack<S, V> pack = *(const nb_pack<S, V> *)at;
#pragma unroll
    for (int j = 0; j < V; j++) out[j] = nb_to_compute<C>(pack.v[j]);
}

// V values of operand k (of storage type T, or bool) at element offset.
template <typename T, int V, typename C>
__device__ __forceinline__ void nb_load_pack(const nb_map_plan &p, int k, int64_t offset,
                                             bool broadcast, C *out) {
    if (p.dtype[k] == NB_BOOL) nb_load_values<bool, V>(p.base[k], offset, broadcast, out);
    else nb_load_values<T, V>(p.base[k], offset, broadcast, out);
}

template <typename S, int V, typename C>
__device__ __forceinline__ void nb_store_values(char *base, int64_t offset, const C *values) {
    nb_pack<S, V> pack;
#pragma unroll
    for (int j = 0; j < V; j++) pack.v[j] = nb_to_storage<S>(values[j]);
    *(nb_pack<S, V> *)((S *)base + offset) = pack;
}

template <typename T, int V, typename C>
__device__ __forceinline__ void nb_store_pack(const nb_map_plan &p, int64_t offset, const C *values) {
    if (p.dtype[0] == NB_BOOL) nb_store_values<bool, V>(p.base[0], offset, values);
    else nb_store_values<T, V>(p.base[0], offset, values);
}

// Element i's offsets: with one dim (contiguous or broadcast operands, the
// common case) i times each stride, else the division walk over the dims.
template <int M>
__device__ __forceinline__ void nb_element_offsets(const nb_map_plan &p, int64_t i, int64_t *offset) {
    if (p.ndim == 1) {
#pragma unroll
        for (int k = 0; k < M; k++) offset[k] = i * p.strides[k][0];
    } else {
        nb_plan_offsets<M>(p, i, offset);
    }
}

// One element of the vector kernel's tail (a row length not divisible by V).
template <typename T, typename C, int N, typename F>
__device__ __forceinline__ void nb_map_one(const nb_map_plan &p, int64_t i, const F &f) {
    int64_t offset[N + 1];
    nb_element_offsets<N + 1>(p, i, offset);
    C in[N > 0 ? N : 1];
#pragma unroll
    for (int k = 0; k < N; k++)
        in[k] = p.dtype[k + 1] == NB_BOOL ? nb_to_compute<C>(((const bool *)p.base[k + 1])[offset[k + 1]])
                                          : nb_to_compute<C>(((const T *)p.base[k + 1])[offset[k + 1]]);
    if (p.dtype[0] == NB_BOOL) ((bool *)p.base[0])[offset[0]] = nb_to_storage<bool>(f(in));
    else ((T *)p.base[0])[offset[0]] = nb_to_storage<T>(f(in));
}

// Vectors U a thread of nb_map_vector keeps in flight for N inputs of T:
// the loads of U vectors are issued before the first is used, so a
// memory-bound map has U * N 16-byte loads outstanding per thread. U is
// what 128 bytes of the inputs' compute values allow, at most 4 (f32 and
// bf16 unary 4, bf16 binary 2, u8 and bool 1: their 16 values a vector are
// int64 each).
template <typename T, int N> constexpr int nb_map_unroll() {
    int bytes = (N > 0 ? N : 1) * (16 / (int)sizeof(T)) * (int)sizeof(nb_compute_t<T>);
    return bytes >= 128 ? 1 : 128 / bytes > 4 ? 4 : 128 / bytes;
}

// Vector v covers elements [v*V, v*V + V) of a row: plan_vector guarantees
// rows hold whole vectors, except a 1-dim plan whose last partial vector is
// done element by element. N inputs, a template parameter (see
// nb_plan_offsets). A thread takes vectors v, v + step, ... v + (U-1) step
// together, then moves on by U steps.
template <typename T, int N, typename F>
__global__ void nb_map_vector(nb_map_plan p, F f) {
    using C = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T), U = nb_map_unroll<T, N>();
    int last = p.ndim - 1;
    int64_t vectors = p.numel / V;
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (int64_t base = first; base < vectors; base += U * step) {
        int64_t offset[U][N + 1];
        C in[U][N > 0 ? N : 1][V];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int64_t v = base + u * step;
            if (v >= vectors) break;
            nb_element_offsets<N + 1>(p, v * V, offset[u]);
#pragma unroll
            for (int k = 0; k < N; k++)
                nb_load_pack<T, V>(p, k + 1, offset[u][k + 1], p.strides[k + 1][last] == 0, in[u][k]);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (base + u * step >= vectors) break;
            C out[V];
#pragma unroll
            for (int j = 0; j < V; j++) {
                C args[N > 0 ? N : 1];
#pragma unroll
                for (int k = 0; k < N; k++) args[k] = in[u][k][j];
                out[j] = f(args);
            }
            nb_store_pack<T, V>(p, offset[u][0], out);
        }
    }
    for (int64_t i = vectors * V + first; i < p.numel; i += step) nb_map_one<T, C, N>(p, i, f);
}

// Whether the vector kernel can run the plan with storage type T.
bool nb__cuda_plan_vector(const nb_map_plan *p, nb_dtype t);

// Runs functor f over args' operands on args->out's device: the vector
// kernel when the operands allow it, else the any kernel computing in the
// compute type of args->dtype.
template <typename F> nb_status nb__cuda_map(const nb_op_args *args, F f) {
    const char *fn = nb__op_fn(args->op);
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, args->out->storage->device.index, &ctx));
    nb_map_plan plan;
    nb__plan_map(args, &plan);
    unsigned threads = NB_CUDA_THREADS;
    constexpr int N = F::inputs;
    NB_ASSERT(plan.n_operands == N + 1);
    if (nb__cuda_plan_vector(&plan, args->dtype)) {
        int64_t vectors = plan.numel / (16 / nb_dtype_size(args->dtype)) + 1;
        NB_CUDA_SWITCH(args->dtype, T, {
            constexpr int U = nb_map_unroll<T, N>();
            unsigned blocks = nb__cuda_blocks(&ctx, (vectors + U - 1) / U, threads);
            nb_map_vector<T, N, F><<<blocks, threads, 0, ctx.handle>>>(plan, f);
        });
    } else {
        unsigned blocks = nb__cuda_blocks(&ctx, plan.numel, threads);
        if (args->dtype == NB_F64) nb_map_any<double, N, F><<<blocks, threads, 0, ctx.handle>>>(plan, f);
        else if (nb_dtype_is_float(args->dtype)) nb_map_any<float, N, F><<<blocks, threads, 0, ctx.handle>>>(plan, f);
        else nb_map_any<int64_t, N, F><<<blocks, threads, 0, ctx.handle>>>(plan, f);
    }
    return nb__cuda_launched(fn);
}

// Runs f with the any kernel in compute type C, whatever the dtypes: for
// conversions and fills, which must round as the CPU does (through double
// when a float is involved, else through int64).
template <typename C, typename F> nb_status nb__cuda_map_as(const nb_op_args *args, F f) {
    const char *fn = nb__op_fn(args->op);
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, args->out->storage->device.index, &ctx));
    nb_map_plan plan;
    nb__plan_map(args, &plan);
    NB_ASSERT(plan.n_operands == F::inputs + 1);
    unsigned blocks = nb__cuda_blocks(&ctx, plan.numel, NB_CUDA_THREADS);
    nb_map_any<C, F::inputs, F><<<blocks, NB_CUDA_THREADS, 0, ctx.handle>>>(plan, f);
    return nb__cuda_launched(fn);
}
