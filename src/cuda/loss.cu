// Cross-entropy kernels, a block per row of logits: the forward folds the
// online (max, sum) pair and the row's sum in one read and writes (loss, max,
// log sum): the max is a logit, exact in any precision, so the backward's
// x - max loses nothing even for logits of 1e4 in f32;
// the backward reads the row once and writes its gradient (src/ops/loss.c
// has the formulas). A target out of range is reported at the next
// synchronization; its row's loss is NaN.
#include "../core/pointwise_loss.h"
#include "map.cuh"
#include "online.cuh"

typedef struct nb_ce_args {
    const char *targets;
    nb_dtype target_dtype;
    int64_t target_stride, rows, classes, ignore;
    double smoothing;
    nb_cuda_error_slot *errors;
} nb_ce_args;

__device__ __forceinline__ int64_t nb_target(const nb_ce_args &a, int64_t row) {
    return nb_load<int64_t>(a.targets + row * a.target_stride * nb_size_of(a.target_dtype),
                            a.target_dtype);
}

template <typename T, typename A>
__global__ void nb_cross_entropy_rows(const T *x, A *out, nb_ce_args a) {
    for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
        const T *in = x + row * a.classes;
        nb_running<A> r = {-(A)INFINITY, 0};
        A total = 0;
        for (int64_t j = threadIdx.x; j < a.classes; j += blockDim.x) {
            A v = nb_to_compute<A>(in[j]);
            r = nb_running_add(r, v);
            total += v;
        }
        r = nb_block_running(r);
        total = nb_block_sum(total);
        if (threadIdx.x != 0) continue;
        A log_sum = log(r.sum), lse = r.max + log_sum, s = (A)a.smoothing, loss = 0;
        int64_t t = nb_target(a, row);
        if (t != a.ignore && (t < 0 || t >= a.classes)) {
            nb_report_index(a.errors, NB_OP_CROSS_ENTROPY, t, a.classes, row);
            loss = (A)NAN;
        } else if (t != a.ignore) {
            // without smoothing the mean term is left out: a -inf logit would make it 0 * inf
            A smoothed = s > 0 ? s * (lse - total / (A)a.classes) : (A)0;
            loss = (1 - s) * (lse - nb_to_compute<A>(in[t])) + smoothed;
        }
        out[3 * row] = loss;
        out[3 * row + 1] = r.max;
        out[3 * row + 2] = log_sum;
    }
}

template <typename T, typename A>
__global__ void nb_cross_entropy_grad(const T *x, const A *saved, T *dx, nb_ce_args a) {
    for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
        int64_t t = nb_target(a, row);
        A w = saved[3 * row], max = saved[3 * row + 1], log_sum = saved[3 * row + 2];
        A s = (A)a.smoothing;
        bool ignored = t == a.ignore;
        for (int64_t j = threadIdx.x; j < a.classes; j += blockDim.x) {
            A v = nb_to_compute<A>(x[row * a.classes + j]);
            A onehot = j == t ? 1 - s : 0;
            A g = ignored ? 0 : w * (exp((v - max) - log_sum) - s / (A)a.classes - onehot);
            dx[row * a.classes + j] = nb_to_storage<T>(g);
        }
    }
}

static nb_ce_args ce_args(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    const nb_tensor *logits = args->in[0], *targets = args->in[1];
    nb_ce_args a;
    a.targets = nb__data(targets);
    a.target_dtype = targets->dtype;
    a.target_stride = targets->strides[0];
    a.rows = logits->shape[0];
    a.classes = logits->shape[1];
    a.ignore = args->attrs.cross_entropy.ignore_index;
    a.smoothing = args->attrs.cross_entropy.smoothing;
    a.errors = ctx->errors;
    return a;
}

template <auto Kernel>
static void launch_shape(const nb_cuda_ctx *ctx, int64_t rows, int64_t classes, unsigned *blocks,
                         unsigned *threads) {
    *threads = 32;
    while (*threads < 512 && (int64_t)*threads * 4 < classes) *threads *= 2;
    *threads = nb_block_threads<Kernel>(*threads);
    int64_t most = (int64_t)ctx->multiprocessors * 32;
    *blocks = (unsigned)(rows < most ? rows : most);
}

template <typename T, typename A> static void launch_forward(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    nb_ce_args a = ce_args(args, ctx);
    unsigned blocks, threads;
    launch_shape<nb_cross_entropy_rows<T, A>>(ctx, a.rows, a.classes, &blocks, &threads);
    nb_cross_entropy_rows<T, A><<<blocks, threads, 0, ctx->handle>>>(
        (const T *)nb__data(args->in[0]), (A *)nb__data(args->out), a);
}

template <typename T> static void launch_forward(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    if (args->out->dtype == NB_F64) launch_forward<T, double>(args, ctx);
    else launch_forward<T, float>(args, ctx);
}

template <typename T, typename A> static void launch_backward(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    nb_ce_args a = ce_args(args, ctx);
    unsigned blocks, threads;
    launch_shape<nb_cross_entropy_grad<T, A>>(ctx, a.rows, a.classes, &blocks, &threads);
    nb_cross_entropy_grad<T, A><<<blocks, threads, 0, ctx->handle>>>(
        (const T *)nb__data(args->in[0]), (const A *)nb__data(args->in[2]), (T *)nb__data(args->out), a);
}

template <typename T> static void launch_backward(const nb_op_args *args, const nb_cuda_ctx *ctx) {
    if (args->in[2]->dtype == NB_F64) launch_backward<T, double>(args, ctx);
    else launch_backward<T, float>(args, ctx);
}

nb_status nb__cuda_cross_entropy(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_cross_entropy", args->out->storage->device.index, &ctx));
    NB_CUDA_FLOAT_SWITCH(args->in[0]->dtype, T, launch_forward<T>(args, &ctx));
    return nb__cuda_launched("nb_cross_entropy");
}

nb_status nb__cuda_cross_entropy_backward(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin("nb_cross_entropy", args->out->storage->device.index, &ctx));
    NB_CUDA_FLOAT_SWITCH(args->in[0]->dtype, T, launch_backward<T>(args, &ctx));
    return nb__cuda_launched("nb_cross_entropy");
}

// ---- elementwise losses (src/core/pointwise_loss.h) ----
// N operands: (input, target[, third]) forward, (g, input, target[, third])
// backward; an absent third operand is 1.

template <int N> struct nb_pointwise_loss_fn {
    static constexpr int inputs = N;
    nb_op op;
    double p, q;
    int flags;

    template <typename C> __device__ C operator()(const C *in) const {
        C c = N > 2 ? in[N - 1] : (C)1;
        if constexpr (std::is_same<C, double>::value) return nb_loss_f64_loss(op, in[0], in[1], c, p, q, flags);
        else if constexpr (nb_is_float_v<C>) return nb_loss_f32_loss(op, in[0], in[1], c, (C)p, (C)q, flags);
        else return 0; // the losses take floats only
    }
};

template <int N> struct nb_pointwise_loss_grad_fn {
    static constexpr int inputs = N;
    nb_op op;
    int wrt;
    double p, q;
    int flags;

    template <typename C> __device__ C operator()(const C *in) const {
        C c = N > 3 ? in[N - 1] : (C)1;
        if constexpr (std::is_same<C, double>::value)
            return nb_loss_f64_loss_grad(op, wrt, in[0], in[1], in[2], c, p, q, flags);
        else if constexpr (nb_is_float_v<C>)
            return nb_loss_f32_loss_grad(op, wrt, in[0], in[1], in[2], c, (C)p, (C)q, flags);
        else return 0;
    }
};

nb_status nb__cuda_pointwise_loss(const nb_op_args *args) {
    double p = args->attrs.loss.p, q = args->attrs.loss.q;
    int flags = args->attrs.loss.flags;
    if (args->op == NB_OP_POINTWISE_LOSS_BACKWARD) {
        nb_op forward = args->attrs.loss.forward;
        int wrt = args->attrs.loss.wrt;
        if (args->n_in > 3) return nb__cuda_map(args, nb_pointwise_loss_grad_fn<4>{forward, wrt, p, q, flags});
        return nb__cuda_map(args, nb_pointwise_loss_grad_fn<3>{forward, wrt, p, q, flags});
    }
    if (args->n_in > 2) return nb__cuda_map(args, nb_pointwise_loss_fn<3>{args->op, p, q, flags});
    return nb__cuda_map(args, nb_pointwise_loss_fn<2>{args->op, p, q, flags});
}
