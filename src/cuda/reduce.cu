// Reductions over any set of dims: sum, mean, prod, max, min, argmax,
// argmin, var, std, logsumexp, norm, with the CPU backend's semantics (the
// first NaN and the first extreme win, Chan's merge for variance, a running
// maximum for logsumexp). Each output's reduced elements are folded into
// accumulators by several threads and the accumulators merged; every merge
// rule is order-independent (extremes break ties by position), so threads
// may take elements in any interleaving.
//  - block mode: a block per output (or per part of one), threads striding
//    over the reduced elements (coalesced when the innermost reduced dim is
//    contiguous, 16 bytes a load when all of them are one aligned run),
//    merged with warp shuffles;
//  - thread mode: a thread per output (or part), neighbouring threads on
//    neighbouring outputs, for reductions over outer dims or few elements.
// Outputs with many elements are split into parts whose accumulators a
// second kernel merges. f32, f16 and bf16 accumulate in float, the rest in
// double; integer sums, products and extremes stay exact in int64 (an i64
// compared through double takes 2^53 + 1 for 2^53).
#include <math_constants.h>

#include "cuda.cuh"

template <typename A> struct nb_acc {
    A value;        // sum, product, extreme, sum of |x|^p, or logsumexp's rescaled sum
    A max;          // logsumexp's running maximum
    A mean, m2;     // var and std (Welford)
    int64_t ivalue; // integer sum or product
    int64_t index;  // the extreme's position
    int64_t count;  // elements folded
    int nan;        // logsumexp saw a NaN
};

typedef struct nb_reduce_args {
    const char *x;
    char *out;
    nb_dtype out_dtype;
    nb_op op;
    double p, correction;
    bool integer;
    nb_reduce_plan plan;
    int64_t n_out, count;
    int parts;
    void *partials; // n_out * parts accumulators when parts > 1
} nb_reduce_args;

template <typename A> __device__ nb_acc<A> nb_acc_start(nb_op op) {
    nb_acc<A> a;
    a.value = op == NB_OP_PROD ? (A)1 : (A)0;
    a.ivalue = op == NB_OP_PROD ? 1 : 0;
    a.max = -(A)INFINITY;
    a.mean = a.m2 = 0;
    a.index = a.count = 0;
    a.nan = 0;
    return a;
}

// Whether (v at position at) beats the best so far for max-like ops.
template <typename A>
__device__ __forceinline__ bool nb_beats(nb_op op, A v, int64_t at, A best, int64_t best_at) {
    if (best != best) return v != v && at < best_at; // only an earlier NaN beats a NaN
    if (v != v) return true;
    if (v == best) return at < best_at;
    bool is_max = op == NB_OP_MAX || op == NB_OP_ARGMAX;
    return is_max ? v > best : v < best;
}

__device__ __forceinline__ bool nb_is_extreme(nb_op op) {
    return op == NB_OP_MAX || op == NB_OP_MIN || op == NB_OP_ARGMAX || op == NB_OP_ARGMIN;
}

// nb_beats for integers: exact, ties to the earlier position.
__device__ __forceinline__ bool nb_beats_int(nb_op op, int64_t v, int64_t at, int64_t best, int64_t best_at) {
    if (v == best) return at < best_at;
    bool is_max = op == NB_OP_MAX || op == NB_OP_ARGMAX;
    return is_max ? v > best : v < best;
}

// a.ivalue combined with v: an extreme (with its position), a sum or a product
// (wrapping as two's complement).
__device__ __forceinline__ void nb_int_combine(nb_op op, int64_t &ivalue, int64_t &index, bool empty,
                                               int64_t v, int64_t at) {
    if (nb_is_extreme(op)) {
        if (empty || nb_beats_int(op, v, at, ivalue, index)) {
            ivalue = v;
            index = at;
        }
    } else {
        ivalue = op == NB_OP_PROD ? (int64_t)((uint64_t)ivalue * (uint64_t)v)
                                  : (int64_t)((uint64_t)ivalue + (uint64_t)v);
    }
}

template <typename A>
__device__ __forceinline__ void nb_acc_fold(const nb_reduce_args &r, nb_acc<A> &a, A v, int64_t ivalue,
                                            int64_t at) {
    if (r.integer) {
        nb_int_combine(r.op, a.ivalue, a.index, a.count == 0, ivalue, at);
        a.count++;
        return;
    }
    switch (r.op) {
    case NB_OP_SUM: case NB_OP_MEAN: a.value += v; break;
    case NB_OP_PROD: a.value *= v; break;
    case NB_OP_MAX: case NB_OP_MIN: case NB_OP_ARGMAX: case NB_OP_ARGMIN:
        if (a.count == 0 || nb_beats(r.op, v, at, a.value, a.index)) {
            a.value = v;
            a.index = at;
        }
        break;
    case NB_OP_VAR: case NB_OP_STD: {
        A delta = v - a.mean;
        a.mean += delta / (A)(a.count + 1);
        a.m2 += delta * (v - a.mean);
        break;
    }
    case NB_OP_LOGSUMEXP:
        if (v != v) a.nan = 1;
        else if (a.max == (A)INFINITY) break;
        else if (v == (A)INFINITY) { // +inf whatever else comes
            a.max = v;
            a.value = 1;
        } else if (v > a.max) {
            a.value = a.value * exp(a.max - v) + (A)1;
            a.max = v;
        } else if (v != -(A)INFINITY) {
            a.value += exp(v - a.max);
        }
        break;
    default: { // norm
        A m = fabs(v), p = (A)r.p;
        if (isinf(r.p)) a.value = (m > a.value || m != m) ? m : a.value; // a NaN, once seen, stays
        else a.value += r.p == 0 ? (A)(m != 0) : r.p == 1 ? m : r.p == 2 ? m * m : pow(m, p);
    }
    }
    a.count++;
}

template <typename A> __device__ void nb_acc_merge(const nb_reduce_args &r, nb_acc<A> &a, const nb_acc<A> &b) {
    if (b.count == 0) return;
    if (a.count == 0) {
        a = b;
        return;
    }
    if (r.integer) {
        nb_int_combine(r.op, a.ivalue, a.index, false, b.ivalue, b.index);
    } else {
        switch (r.op) {
        case NB_OP_SUM: case NB_OP_MEAN: a.value += b.value; break;
        case NB_OP_PROD: a.value *= b.value; break;
        case NB_OP_MAX: case NB_OP_MIN: case NB_OP_ARGMAX: case NB_OP_ARGMIN:
            if (nb_beats(r.op, b.value, b.index, a.value, a.index)) {
                a.value = b.value;
                a.index = b.index;
            }
            break;
        case NB_OP_VAR: case NB_OP_STD: { // Chan, Golub and LeVeque's pairwise update
            A na = (A)a.count, nb = (A)b.count, n = na + nb, delta = b.mean - a.mean;
            a.mean += delta * nb / n;
            a.m2 += b.m2 + delta * delta * na * nb / n;
            break;
        }
        case NB_OP_LOGSUMEXP:
            a.nan |= b.nan;
            if (b.max == -(A)INFINITY || a.max == (A)INFINITY) break;
            if (b.max == (A)INFINITY) {
                a.max = b.max;
                a.value = 1;
            } else {
                A m = a.max > b.max ? a.max : b.max;
                a.value = a.value * exp(a.max - m) + b.value * exp(b.max - m);
                a.max = m;
            }
            break;
        default: // norm: a sum, or the largest |x| with NaN kept
            if (!isinf(r.p)) a.value += b.value;
            else if (a.value == a.value && !(b.value <= a.value)) a.value = b.value;
        }
    }
    a.count += b.count;
}

template <typename A> __device__ void nb_acc_write(const nb_reduce_args &r, const nb_acc<A> &a, int64_t o) {
    char *dst = r.out + o * nb_size_of(r.out_dtype);
    if (r.integer) {
        bool arg = r.op == NB_OP_ARGMAX || r.op == NB_OP_ARGMIN;
        nb_store<int64_t>(dst, r.out_dtype, arg ? a.index : a.ivalue);
        return;
    }
    double v = (double)a.value;
    switch (r.op) {
    case NB_OP_MEAN: v = (double)a.value / (double)a.count; break;
    case NB_OP_ARGMAX: case NB_OP_ARGMIN: v = (double)a.index; break;
    case NB_OP_VAR: case NB_OP_STD: {
        double denom = (double)a.count - r.correction;
        v = (double)a.m2 / (denom > 0 ? denom : 0.0); // inf past N, as on the CPU
        if (r.op == NB_OP_STD) v = sqrt(v);
        break;
    }
    case NB_OP_LOGSUMEXP: v = a.nan ? CUDART_NAN : (double)a.max + log((double)a.value); break;
    case NB_OP_NORM:
        if (!(isinf(r.p) || r.p == 0 || r.p == 1)) v = r.p == 2 ? sqrt(v) : pow(v, 1 / r.p);
        break;
    default: break;
    }
    nb_store<double>(dst, r.out_dtype, v);
}

// The accumulator of the lane width above, moving only the fields the op's
// merge reads (two or three shuffles, not eight); the op is the same for the
// whole warp, so every lane takes the same branch.
template <typename A>
__device__ nb_acc<A> nb_acc_shuffle(const nb_reduce_args &r, const nb_acc<A> &a, int width) {
    nb_acc<A> b = a; // the fields the merge ignores keep this lane's values
    b.count = __shfl_down_sync(0xffffffffu, a.count, width);
    bool extreme = nb_is_extreme(r.op);
    if (r.integer) {
        b.ivalue = __shfl_down_sync(0xffffffffu, a.ivalue, width);
        if (extreme) b.index = __shfl_down_sync(0xffffffffu, a.index, width);
        return b;
    }
    if (r.op == NB_OP_VAR || r.op == NB_OP_STD) {
        b.mean = __shfl_down_sync(0xffffffffu, a.mean, width);
        b.m2 = __shfl_down_sync(0xffffffffu, a.m2, width);
        return b;
    }
    b.value = __shfl_down_sync(0xffffffffu, a.value, width);
    if (extreme) b.index = __shfl_down_sync(0xffffffffu, a.index, width);
    if (r.op == NB_OP_LOGSUMEXP) {
        b.max = __shfl_down_sync(0xffffffffu, a.max, width);
        b.nan = __shfl_down_sync(0xffffffffu, a.nan, width);
    }
    return b;
}

// The block's merged accumulator, valid in thread 0.
template <typename A> __device__ nb_acc<A> nb_acc_block(const nb_reduce_args &r, nb_acc<A> a) {
    __shared__ nb_acc<A> warps[32];
    for (int width = 16; width > 0; width /= 2) {
        nb_acc<A> other = nb_acc_shuffle(r, a, width);
        if ((threadIdx.x % 32) + width < 32) nb_acc_merge(r, a, other);
    }
    if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = a;
    __syncthreads();
    if (threadIdx.x == 0)
        for (unsigned w = 1; w < blockDim.x / 32; w++) nb_acc_merge(r, a, warps[w]);
    __syncthreads(); // warps is reused by the block's next output
    return a;
}

__device__ __forceinline__ int64_t nb_kept_offset(const nb_reduce_plan &p, int64_t o) {
    return nb_offset_of(o, p.n_kept, p.kept_shape, p.kept_stride);
}

template <typename T, typename A>
__device__ __forceinline__ void nb_fold_element(const nb_reduce_args &r, nb_acc<A> &a, const T *base,
                                                int64_t e) {
    const nb_reduce_plan &p = r.plan;
    int64_t offset = p.n_reduced == 1 ? e * p.red_stride[0]
                                      : nb_offset_of(e, p.n_reduced, p.red_shape, p.red_stride);
    T x = base[offset];
    if (r.integer) nb_acc_fold<A>(r, a, 0, nb_to_compute<int64_t>(x), e);
    else nb_acc_fold<A>(r, a, nb_to_compute<A>(x), 0, e);
}

// Folds the V values of 16-byte pack q (elements qV .. qV + V - 1) of a
// contiguous reduced run.
template <typename T, typename A>
__device__ __forceinline__ void nb_fold_pack(const nb_reduce_args &r, nb_acc<A> &a, const T *base, int64_t q) {
    constexpr int V = 16 / sizeof(T);
    nb_pack<T, V> pack = ((const nb_pack<T, V> *)base)[q];
#pragma unroll
    for (int j = 0; j < V; j++) {
        if (r.integer) nb_acc_fold<A>(r, a, 0, nb_to_compute<int64_t>(pack.v[j]), q * V + j);
        else nb_acc_fold<A>(r, a, nb_to_compute<A>(pack.v[j]), 0, q * V + j);
    }
}

// Thread j of part `part` folds elements part*G + j, then every parts*G:
// 16 bytes at a time where the reduced elements are one contiguous run
// starting on a 16-byte boundary (then the last count % V one by one).
template <typename T, typename A> __global__ void nb_reduce_blocks(nb_reduce_args r) {
    constexpr int V = 16 / sizeof(T);
    int64_t items = r.n_out * r.parts;
    int64_t g = blockDim.x, step = (int64_t)r.parts * g;
    bool run = r.plan.n_reduced == 1 && r.plan.red_stride[0] == 1;
    for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
        int64_t o = item / r.parts, part = item % r.parts;
        const T *base = (const T *)r.x + nb_kept_offset(r.plan, o);
        nb_acc<A> a = nb_acc_start<A>(r.op);
        int64_t first = part * g + threadIdx.x, packs = run && (uintptr_t)base % 16 == 0 ? r.count / V : 0;
        for (int64_t q = first; q < packs; q += step) nb_fold_pack(r, a, base, q);
        for (int64_t e = packs * V + first; e < r.count; e += step) nb_fold_element(r, a, base, e);
        a = nb_acc_block(r, a);
        if (threadIdx.x != 0) continue;
        if (r.parts == 1) nb_acc_write(r, a, o);
        else ((nb_acc<A> *)r.partials)[item] = a;
    }
}

// Thread (o, part) folds elements part, part + parts, ...
template <typename T, typename A> __global__ void nb_reduce_threads(nb_reduce_args r) {
    int64_t items = r.n_out * r.parts, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t item = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; item < items; item += step) {
        int64_t o = item % r.n_out, part = item / r.n_out;
        const T *base = (const T *)r.x + nb_kept_offset(r.plan, o);
        nb_acc<A> a = nb_acc_start<A>(r.op);
        for (int64_t e = part; e < r.count; e += r.parts) nb_fold_element(r, a, base, e);
        if (r.parts == 1) nb_acc_write(r, a, o);
        else ((nb_acc<A> *)r.partials)[o * r.parts + part] = a;
    }
}

// A block per output merges its parts.
template <typename A> __global__ void nb_reduce_parts(nb_reduce_args r) {
    for (int64_t o = blockIdx.x; o < r.n_out; o += gridDim.x) {
        const nb_acc<A> *parts = (const nb_acc<A> *)r.partials + o * r.parts;
        nb_acc<A> a = nb_acc_start<A>(r.op);
        for (int64_t i = threadIdx.x; i < r.parts; i += blockDim.x) nb_acc_merge(r, a, parts[i]);
        a = nb_acc_block(r, a);
        if (threadIdx.x == 0) nb_acc_write(r, a, o);
    }
}

template <typename A>
static nb_status launch(const char *fn, const nb_cuda_ctx *ctx, nb_reduce_args r, nb_dtype dtype) {
    const nb_reduce_plan &p = r.plan;
    bool inner_contiguous = p.red_stride[p.n_reduced - 1] == 1;
    bool by_thread = r.count < 32 || (!inner_contiguous && r.n_out >= 256);
    int64_t target_threads = (int64_t)ctx->multiprocessors * 2048;
    unsigned threads = NB_CUDA_THREADS;
    if (by_thread) {
        int64_t parts = target_threads / r.n_out, most = r.count / 32 > 1 ? r.count / 32 : 1;
        r.parts = (int)(parts < 1 ? 1 : parts > most ? most : parts);
    } else {
        while (threads > 32 && threads / 2 >= r.count) threads /= 2;
        int64_t parts = target_threads / threads / r.n_out;
        int64_t most = r.count / (threads * 16) > 1 ? r.count / (threads * 16) : 1;
        r.parts = (int)(parts < 1 ? 1 : parts > most ? most : parts);
    }
    void *block = NULL;
    size_t partial_bytes = (size_t)r.n_out * (size_t)r.parts * sizeof(nb_acc<A>);
    if (r.parts > 1) NB_TRY(nb__cuda_scratch(fn, ctx, partial_bytes, &r.partials, &block));
    int64_t items = r.n_out * r.parts;
    NB_CUDA_SWITCH(dtype, T, {
        if (by_thread)
            nb_reduce_threads<T, A><<<nb__cuda_blocks(ctx, items, NB_CUDA_THREADS), NB_CUDA_THREADS,
                                      0, ctx->handle>>>(r);
        else
            nb_reduce_blocks<T, A><<<(unsigned)(items < 65535 * 16 ? items : 65535 * 16), threads,
                                     0, ctx->handle>>>(r);
    });
    if (r.parts > 1) {
        unsigned blocks = (unsigned)(r.n_out < 65535 * 16 ? r.n_out : 65535 * 16);
        nb_reduce_parts<A><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(r);
        nb__cuda_free(r.partials, partial_bytes, nb_cuda(ctx->device), block);
    }
    return nb__cuda_launched(fn);
}

nb_status nb__cuda_reduce(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    nb_reduce_args r = {};
    nb__plan_reduce(x, args->attrs.reduce.mask, &r.plan);
    r.x = nb__data(x);
    r.out = nb__data(out);
    r.out_dtype = out->dtype;
    r.op = args->op;
    r.p = args->attrs.reduce.p;
    r.correction = args->attrs.reduce.correction;
    bool extreme = args->op == NB_OP_MAX || args->op == NB_OP_MIN || args->op == NB_OP_ARGMAX ||
                   args->op == NB_OP_ARGMIN;
    r.integer = !nb_dtype_is_float(x->dtype) && (args->op == NB_OP_SUM || args->op == NB_OP_PROD || extreme);
    r.n_out = nb_numel(out);
    r.count = nb__numel(r.plan.n_reduced, r.plan.red_shape);
    r.parts = 1;
    bool narrow = x->dtype == NB_F32 || x->dtype == NB_F16 || x->dtype == NB_BF16;
    return narrow ? launch<float>(fn, &ctx, r, x->dtype) : launch<double>(fn, &ctx, r, x->dtype);
}
