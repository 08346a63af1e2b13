// Scan kernels: cumsum, cumprod, logcumsumexp and their backward
// (src/ops/scan.c) over contiguous tensors seen as [outer, n, inner].
//
// A line is the n elements of one (outer, inner) pair. Lines of a scan
// along the last dim (inner 1) longer than a warp each get a block, which
// scans tiles of NB_SCAN_THREADS x NB_SCAN_ITEMS elements with CUB's
// BlockScan and carries each tile's total into the next; other lines get a
// thread each, walking the line in order (neighbouring threads read
// neighbouring columns). Both run one scan, over any associative operator:
// the forward's sum, product or log-add-exp, and for the backward the
// composition of affine maps t -> beta + alpha t, whose scan from the end is
// the recurrence t_i = g_i + a_{i+1} t_{i+1} of src/ops/scan.c.
#include <cub/block/block_scan.cuh>

#include "cuda.cuh"

#define NB_SCAN_THREADS 256
#define NB_SCAN_ITEMS 8

// The forward's operator in compute type A: integers wrap, as on the CPU.
template <typename A> struct nb_scan_op {
    nb_op op;
    __device__ A identity() const {
        if constexpr (nb_is_float_v<A>)
            if (op == NB_OP_LOGCUMSUMEXP) return -INFINITY;
        return op == NB_OP_CUMPROD ? 1 : 0;
    }
    __device__ A operator()(A a, A b) const {
        if constexpr (!nb_is_float_v<A>) {
            uint64_t x = (uint64_t)a, y = (uint64_t)b;
            return (A)(op == NB_OP_CUMSUM ? x + y : x * y);
        } else {
            if (op == NB_OP_CUMSUM) return a + b;
            if (op == NB_OP_CUMPROD) return a * b;
            if (a == -INFINITY) return b;
            if (b == -INFINITY) return a;
            A hi = a > b ? a : b, lo = a > b ? b : a;
            return hi + log1p(exp(lo - hi));
        }
    }
};

// t -> beta + alpha t.
template <typename A> struct nb_affine {
    A alpha, beta;
};

// The map of the elements scanned so far (earlier) followed by the next
// ones' (later): later after earlier.
template <typename A> struct nb_affine_compose {
    __device__ nb_affine<A> identity() const { return {1, 0}; }
    __device__ nb_affine<A> operator()(nb_affine<A> earlier, nb_affine<A> later) const {
        return {later.alpha * earlier.alpha, later.beta + later.alpha * earlier.beta};
    }
};

// Where the line's step-th element lies, and the line's first element.
struct nb_scan_line {
    int64_t start, stride, n;
    bool reverse;
    __device__ int64_t at(int64_t step) const { return start + (reverse ? n - 1 - step : step) * stride; }
};

template <typename A> struct nb_scan_forward {
    using Value = A;
    const char *x;
    char *out;
    nb_dtype in_dtype, out_dtype;
    __device__ A element(const nb_scan_line &line, int64_t step) const {
        return nb_load<A>(x + line.at(step) * nb_size_of(in_dtype), in_dtype);
    }
    __device__ void emit(const nb_scan_line &line, int64_t step, A v) const {
        nb_store<A>(out + line.at(step) * nb_size_of(out_dtype), out_dtype, v);
    }
};

// The backward of cumprod or logcumsumexp, scanned from the end: step s is
// position i = n - 1 - s (the body maps it; the line itself runs forward).
template <typename A> struct nb_scan_gradient {
    using Value = nb_affine<A>;
    const char *x, *y, *g;
    char *out;
    nb_dtype dtype;
    bool prod;
    __device__ A load(const char *p, const nb_scan_line &line, int64_t i) const {
        return nb_load<A>(p + (line.start + i * line.stride) * nb_size_of(dtype), dtype);
    }
    __device__ nb_affine<A> element(const nb_scan_line &line, int64_t step) const {
        int64_t i = line.n - 1 - step;
        A a = 0; // the factor from i + 1 to i
        if (i + 1 < line.n) {
            A next = load(prod ? x : y, line, i + 1);
            a = prod ? next : next == -INFINITY ? 0 : exp(load(y, line, i) - next);
        }
        return {a, load(g, line, i)};
    }
    __device__ void emit(const nb_scan_line &line, int64_t step, nb_affine<A> f) const {
        int64_t i = line.n - 1 - step;
        A c;
        if (prod) {
            c = i ? load(y, line, i - 1) : 1;
        } else {
            A xi = load(x, line, i);
            c = xi == -INFINITY ? 0 : exp(xi - load(y, line, i));
        }
        nb_store<A>(out + (line.start + i * line.stride) * nb_size_of(dtype), dtype, c * f.beta);
    }
};

// One block per line of n contiguous elements (lines in [outer, n]).
template <typename Body, typename Op>
__global__ void __launch_bounds__(NB_SCAN_THREADS) nb_scan_rows(Body body, Op op, int64_t n, bool reverse) {
    using V = typename Body::Value;
    using Scan = cub::BlockScan<V, NB_SCAN_THREADS>;
    __shared__ typename Scan::TempStorage temp;
    nb_scan_line line = {(int64_t)blockIdx.x * n, 1, n, reverse};
    V carry = op.identity();
    for (int64_t base = 0; base < n; base += NB_SCAN_THREADS * NB_SCAN_ITEMS) {
        V items[NB_SCAN_ITEMS];
#pragma unroll
        for (int j = 0; j < NB_SCAN_ITEMS; j++) {
            int64_t step = base + threadIdx.x * NB_SCAN_ITEMS + j;
            items[j] = step < n ? body.element(line, step) : op.identity();
        }
        V tile;
        Scan(temp).InclusiveScan(items, items, op, tile);
#pragma unroll
        for (int j = 0; j < NB_SCAN_ITEMS; j++) {
            int64_t step = base + threadIdx.x * NB_SCAN_ITEMS + j;
            if (step < n) body.emit(line, step, op(carry, items[j]));
        }
        carry = op(carry, tile);
        __syncthreads(); // temp is reused by the next tile
    }
}

// One thread per line, walking it in order.
template <typename Body, typename Op>
__global__ void nb_scan_columns(Body body, Op op, nb_scan_shape s, bool reverse) {
    int64_t lines = s.outer * s.inner, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < lines; c += stride) {
        nb_scan_line line = {c / s.inner * s.n * s.inner + c % s.inner, s.inner, s.n, reverse};
        typename Body::Value acc = op.identity();
        for (int64_t step = 0; step < s.n; step++) {
            acc = op(acc, body.element(line, step));
            body.emit(line, step, acc);
        }
    }
}

template <typename Body, typename Op>
static void launch_scan(const nb_cuda_ctx *ctx, Body body, Op op, nb_scan_shape s, bool reverse) {
    if (s.inner == 1 && s.n > 32 && s.outer <= INT32_MAX)
        nb_scan_rows<<<(unsigned)s.outer, NB_SCAN_THREADS, 0, ctx->handle>>>(body, op, s.n, reverse);
    else
        nb_scan_columns<<<nb__cuda_blocks(ctx, s.outer * s.inner, NB_CUDA_THREADS), NB_CUDA_THREADS, 0,
                          ctx->handle>>>(body, op, s, reverse);
}

// float for f32, f16 and bf16 (double for f64, int64 for integers), as the
// reductions accumulate.
#define NB_SCAN_COMPUTE_SWITCH(dtype, A, ...)                       \
    switch (dtype) {                                                \
    case NB_F64: { using A = double; __VA_ARGS__; break; }          \
    case NB_F32: case NB_F16: case NB_BF16: { using A = float; __VA_ARGS__; break; } \
    default: { using A = int64_t; __VA_ARGS__; break; }             \
    }

nb_status nb__cuda_scan(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->op);
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    nb_scan_shape s = nb__scan_shape(out, args->attrs.scan.dim);
    if (s.outer * s.n * s.inner == 0) return NB_OK;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    NB_SCAN_COMPUTE_SWITCH(out->dtype, A,
        nb_scan_forward<A> body = {nb__data(x), nb__data(out), x->dtype, out->dtype};
        launch_scan(&ctx, body, nb_scan_op<A>{args->op}, s, args->attrs.scan.reverse));
    return nb__cuda_launched(fn);
}

nb_status nb__cuda_scan_backward(const nb_op_args *args) {
    const char *fn = nb__op_fn(args->attrs.scan.forward);
    nb_tensor *out = args->out;
    nb_scan_shape s = nb__scan_shape(out, args->attrs.scan.dim);
    if (s.outer * s.n * s.inner == 0) return NB_OK;
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    bool prod = args->attrs.scan.forward == NB_OP_CUMPROD;
    NB_CUDA_FLOAT_SWITCH(out->dtype, T,
        using A = nb_compute_t<T>;
        nb_scan_gradient<A> body = {nb__data(args->in[0]), nb__data(args->in[1]), nb__data(args->in[2]),
                                    nb__data(out), out->dtype, prod};
        launch_scan(&ctx, body, nb_affine_compose<A>{}, s, false));
    return nb__cuda_launched(fn);
}
