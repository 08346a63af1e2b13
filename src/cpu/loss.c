/* Cross-entropy kernels: a row of logits per iteration, read once into a
 * double buffer (src/ops/loss.c has the formulas). */
#include <math.h>
#include <stdlib.h>

#include "../core/pointwise_loss.h"
#include "cpu.h"

/* Reads the targets as int64 and checks each (but ignore_index) is a class. */
static nb_status load_targets(const nb_tensor *targets, int64_t classes, int64_t ignore,
                              int64_t **out) {
    int64_t n = nb_numel(targets);
    int64_t *values = nb__malloc((size_t)(n ? n : 1) * sizeof *values);
    NB_CHECK(values, NB_ERR_OOM, "nb_cross_entropy: out of host memory for %lld targets",
             (long long)n);
    size_t size = nb_dtype_size(targets->dtype);
    for (int64_t i = 0; i < n; i++) {
        nb__cpu_convert(NB_I64, &values[i], 1, targets->dtype,
                        nb__data(targets) + i * targets->strides[0] * (int64_t)size, 1, 1);
        if (values[i] != ignore && (values[i] < 0 || values[i] >= classes)) {
            int64_t bad = values[i];
            free(values);
            return nb__error(NB_ERR_INDEX,
                             "nb_cross_entropy: target %lld out of range [0, %lld) at row %lld",
                             (long long)bad, (long long)classes, (long long)i);
        }
    }
    *out = values;
    return NB_OK;
}

/* (loss, max, log sum exp(x - max)) of one row of logits. */
static void row_loss(const double *x, int64_t classes, int64_t target, const nb_attrs *attrs,
                     double out[3]) {
    double max = -INFINITY, sum = 0, total = 0;
    for (int64_t j = 0; j < classes; j++) max = x[j] > max ? x[j] : max;
    double shift = max == -INFINITY ? 0 : max;
    for (int64_t j = 0; j < classes; j++) {
        sum += exp(x[j] - shift);
        total += x[j];
    }
    double lse = shift + log(sum), s = attrs->cross_entropy.smoothing;
    /* without smoothing the mean term is left out: a -inf logit would make it 0 * inf */
    double smoothed = s > 0 ? s * (lse - total / (double)classes) : 0;
    out[0] = target == attrs->cross_entropy.ignore_index ? 0 : (1 - s) * (lse - x[target]) + smoothed;
    out[1] = shift;
    out[2] = log(sum);
}

/* Runs body for each row r with the row converted to double in `row`. */
#define FOR_EACH_ROW(logits, failed, body)                                                  \
    do {                                                                                    \
        int64_t rows_ = (logits)->shape[0], classes_ = (logits)->shape[1];                  \
        size_t elem_ = nb_dtype_size((logits)->dtype);                                      \
        _Pragma("omp parallel reduction(|| : failed) if (rows_ * classes_ >= NB_CPU_PARALLEL_MIN)") \
        {                                                                                   \
            double *row = nb__malloc((size_t)classes_ * sizeof *row);                           \
            failed = !row;                                                                  \
            _Pragma("omp for schedule(static)")                                             \
            for (int64_t r = 0; r < rows_; r++) {                                           \
                if (!row) continue;                                                         \
                nb__cpu_convert(NB_F64, row, 1, (logits)->dtype,                            \
                                nb__data(logits) + r * classes_ * (int64_t)elem_, 1, classes_); \
                body                                                                        \
            }                                                                               \
            free(row);                                                                      \
        }                                                                                   \
    } while (0)

nb_status nb__cpu_cross_entropy(const nb_op_args *args) {
    const nb_tensor *logits = args->in[0];
    nb_tensor *out = args->out;
    int64_t classes = logits->shape[1], *targets;
    NB_TRY(load_targets(args->in[1], classes, args->attrs.cross_entropy.ignore_index, &targets));
    bool failed = false;
    FOR_EACH_ROW(logits, failed, {
        double saved[3];
        row_loss(row, classes, targets[r], &args->attrs, saved);
        nb__cpu_convert(out->dtype, nb__data(out) + 3 * r * (int64_t)nb_dtype_size(out->dtype), 1,
                        NB_F64, saved, 1, 3);
    });
    free(targets);
    NB_CHECK(!failed, NB_ERR_OOM, "nb_cross_entropy: out of host memory for a row of %lld",
             (long long)classes);
    return NB_OK;
}

nb_status nb__cpu_cross_entropy_backward(const nb_op_args *args) {
    const nb_tensor *logits = args->in[0], *packed = args->in[2];
    nb_tensor *dx = args->out;
    int64_t classes = logits->shape[1], *targets;
    int64_t ignore = args->attrs.cross_entropy.ignore_index;
    NB_TRY(load_targets(args->in[1], classes, ignore, &targets));
    double s = args->attrs.cross_entropy.smoothing;
    size_t out_size = nb_dtype_size(dx->dtype), packed_size = nb_dtype_size(packed->dtype);
    bool failed = false;
    FOR_EACH_ROW(logits, failed, {
        double saved[3]; /* weight, max, log sum */
        nb__cpu_convert(NB_F64, saved, 1, packed->dtype,
                        nb__data(packed) + 3 * r * (int64_t)packed_size, 1, 3);
        bool ignored = targets[r] == ignore;
        for (int64_t j = 0; j < classes; j++) {
            double onehot = j == targets[r] ? 1 - s : 0;
            double p = exp((row[j] - saved[1]) - saved[2]);
            row[j] = ignored ? 0 : saved[0] * (p - s / (double)classes - onehot);
        }
        nb__cpu_convert(dx->dtype, nb__data(dx) + r * classes * (int64_t)out_size, 1, NB_F64, row,
                        1, classes);
    });
    free(targets);
    NB_CHECK(!failed, NB_ERR_OOM, "nb_cross_entropy: out of host memory for a row of %lld",
             (long long)classes);
    return NB_OK;
}

/* ---- elementwise losses (src/core/pointwise_loss.h) ----
 * The forward reads (input, target[, third]) and the backward (g, input,
 * target, third); an absent third operand is 1. The op is fixed per loop,
 * so each loop inlines one formula. */

#define LOSS_CASE(ID)                                                                        \
    case NB_OP_##ID:                                                                         \
        for (int64_t i = 0; i < n; i++)                                                      \
            o[i] = _Generic(p, float: nb_loss_f32_loss, double: nb_loss_f64_loss)(           \
                NB_OP_##ID, x[i], y[i], c ? c[i] : 1, p, q, flags);                          \
        break;
#define LOSS_GRAD_CASE(ID)                                                                   \
    case NB_OP_##ID:                                                                         \
        for (int64_t i = 0; i < n; i++)                                                      \
            o[i] = _Generic(p, float: nb_loss_f32_loss_grad, double: nb_loss_f64_loss_grad)( \
                NB_OP_##ID, wrt, g[i], x[i], y[i], c ? c[i] : 1, p, q, flags);               \
        break;
#define POINTWISE_LOSSES(X)                                                                  \
    X(BINARY_CROSS_ENTROPY) X(BINARY_CROSS_ENTROPY_WITH_LOGITS) X(MSE_LOSS) X(L1_LOSS)        \
    X(HUBER_LOSS) X(SMOOTH_L1_LOSS) X(LOG_COSH_LOSS) X(MAPE_LOSS) X(MSLE_LOSS)                \
    X(POISSON_NLL_LOSS) X(GAUSSIAN_NLL_LOSS) X(KL_DIV) X(HINGE_LOSS) X(SQUARED_HINGE_LOSS)     \
    X(MARGIN_RANKING_LOSS) X(FOCAL_LOSS)

#define DEFINE_LOSS_LOOPS(suffix, T)                                                         \
    static void loss_##suffix(int64_t n, void *out, const void *const *in, const nb_op_args *args) { \
        T *restrict o = out;                                                                 \
        const T *restrict x = in[0], *restrict y = in[1];                                    \
        const T *restrict c = args->n_in > 2 ? in[2] : NULL;                                 \
        T p = (T)args->attrs.loss.p, q = (T)args->attrs.loss.q;                              \
        int flags = args->attrs.loss.flags;                                                  \
        switch (args->op) {                                                                  \
            POINTWISE_LOSSES(LOSS_CASE)                                                      \
        default: NB_ASSERT(!"a loss without a CPU loop");                                    \
        }                                                                                    \
    }                                                                                        \
    static void loss_grad_##suffix(int64_t n, void *out, const void *const *in,              \
                                   const nb_op_args *args) {                                 \
        T *restrict o = out;                                                                 \
        const T *restrict g = in[0], *restrict x = in[1], *restrict y = in[2];               \
        const T *restrict c = args->n_in > 3 ? in[3] : NULL;                                 \
        T p = (T)args->attrs.loss.p, q = (T)args->attrs.loss.q;                              \
        int flags = args->attrs.loss.flags, wrt = args->attrs.loss.wrt;                      \
        switch (args->attrs.loss.forward) {                                                  \
            POINTWISE_LOSSES(LOSS_GRAD_CASE)                                                 \
        default: NB_ASSERT(!"a loss without a CPU gradient loop");                           \
        }                                                                                    \
    }
DEFINE_LOSS_LOOPS(f32, float)
DEFINE_LOSS_LOOPS(f64, double)

nb_status nb__cpu_pointwise_loss(const nb_op_args *args) {
    bool wide = nb__cpu_compute_dtype(args->dtype) == NB_F64;
    if (args->op == NB_OP_POINTWISE_LOSS_BACKWARD) nb__cpu_map(args, wide ? NB_F64 : NB_F32, wide ? loss_grad_f64 : loss_grad_f32);
    else nb__cpu_map(args, wide ? NB_F64 : NB_F32, wide ? loss_f64 : loss_f32);
    return NB_OK;
}
