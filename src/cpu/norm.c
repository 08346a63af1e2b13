/* BatchNorm's stage kernels over x contiguous [N, C, S] (src/ops/norm.c has
 * the formulas): the per-channel reductions run a channel per thread, the
 * elementwise stages a row (n, c) per iteration. Rows are read in the
 * compute type (float for f32, f16 and bf16, double for f64); sums and
 * per-channel parameters are double. layer_norm and rms_norm (at the end)
 * take a row of [rows, D] per iteration. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* The packed per-channel parameters [k, C] as doubles, k rows. */
static double *load_params(const nb_tensor *p) {
    double *v = nb__malloc((size_t)nb_numel(p) * sizeof *v);
    if (v) nb__cpu_convert(NB_F64, v, 1, p->dtype, nb__data(p), 1, nb_numel(p));
    return v;
}

/* Row (n, c) of t [N, C, S] (elements of size bytes) in dtype as: read in
 * place when t has that dtype, else converted into buffer. */
static const void *load_row(const nb_tensor *t, size_t size, int64_t row, int64_t s, nb_dtype as,
                            void *buffer) {
    const char *at = nb__data(t) + row * s * (int64_t)size;
    if (t->dtype == as) return at;
    nb__cpu_convert(as, buffer, 1, t->dtype, at, 1, s);
    return buffer;
}

/* reduce: stats (mean, m2) of channel c in two passes, the channel's mean
 * first and then the squared deviations from it (exact where one-pass sums
 * of squares cancel), or the backward sums (sum g, sum g xhat). Rows add
 * into per-position partial sums part (s reals each; no horizontal sum per
 * short row), which are totalled in double. apply: a row of
 * (x - mean) invstd w + b, or of w invstd / n (n g - sum_g - xhat sum_gx).
 * real is the compute type, RD its dtype; a and b hold a row each. */
#define DEFINE_BN_LOOPS(suffix, real, RD)                                                       \
    static double total_##suffix(const real *v, int64_t s) {                                    \
        double sum = 0;                                                                         \
        for (int64_t k = 0; k < s; k++) sum += v[k];                                            \
        return sum;                                                                             \
    }                                                                                           \
    static void reduce_##suffix(const nb_op_args *args, const double *p, int64_t c, int64_t n,  \
                                int64_t channels, int64_t s, real *a, real *b,                  \
                                real *restrict part, real *restrict part2, double *out) {       \
        const nb_tensor *t0 = args->in[0], *t1 = args->n_in > 1 ? args->in[1] : NULL;           \
        size_t size0 = nb_dtype_size(t0->dtype), size1 = t1 ? nb_dtype_size(t1->dtype) : 0;    \
        for (int64_t k = 0; k < s; k++) part[k] = part2[k] = 0;                                 \
        if (args->op == NB_OP_BATCH_NORM_STATS) {                                               \
            for (int64_t i = 0; i < n; i++) {                                                   \
                const real *x = load_row(t0, size0, i * channels + c, s, RD, a);                \
                for (int64_t k = 0; k < s; k++) part[k] += x[k];                                \
            }                                                                                   \
            double mean = total_##suffix(part, s) / (double)(n * s);                            \
            real m = (real)mean;                                                                \
            for (int64_t i = 0; i < n; i++) {                                                   \
                const real *x = load_row(t0, size0, i * channels + c, s, RD, a);                \
                for (int64_t k = 0; k < s; k++) part2[k] += (x[k] - m) * (x[k] - m);            \
            }                                                                                   \
            out[0] = mean;                                                                      \
        } else {                                                                                \
            real shift = (real)p[c], scale = (real)p[channels + c];                             \
            for (int64_t i = 0; i < n; i++) {                                                   \
                const real *g = load_row(t0, size0, i * channels + c, s, RD, a);                \
                const real *xs = load_row(t1, size1, i * channels + c, s, RD, b);               \
                for (int64_t k = 0; k < s; k++) {                                               \
                    part[k] += g[k];                                                            \
                    part2[k] += g[k] * (xs[k] - shift) * scale;                                 \
                }                                                                               \
            }                                                                                   \
            out[0] = total_##suffix(part, s);                                                   \
        }                                                                                       \
        out[1] = total_##suffix(part2, s);                                                      \
    }                                                                                           \
    static void apply_##suffix(const nb_op_args *args, const double *p, int64_t row,            \
                               int64_t channels, int64_t s, double count, real *a,              \
                               real *b) {                                                       \
        int64_t c = row % channels;                                                             \
        double mean = p[c], invstd = p[channels + c], weight = p[2 * channels + c];             \
        const real *in = load_row(args->in[0], nb_dtype_size(args->in[0]->dtype), row, s, RD, a); \
        if (args->op == NB_OP_BATCH_NORM_APPLY) {                                               \
            real scale = (real)(invstd * weight), shift = (real)(p[3 * channels + c] - mean * invstd * weight); \
            for (int64_t k = 0; k < s; k++) a[k] = in[k] * scale + shift;                       \
        } else {                                                                                \
            const real *xs = load_row(args->in[1], nb_dtype_size(args->in[1]->dtype), row, s, RD, b); /* in holds g */ \
            real scale = (real)(weight * invstd / count), n = (real)count;                      \
            real sum_g = (real)p[3 * channels + c], sum_gx = (real)p[4 * channels + c];         \
            real mu = (real)mean, inv = (real)invstd;                                           \
            for (int64_t k = 0; k < s; k++)                                                     \
                a[k] = scale * (n * in[k] - sum_g - (xs[k] - mu) * inv * sum_gx);               \
        }                                                                                       \
        nb_tensor *out = args->out;                                                             \
        nb__cpu_convert(out->dtype, nb__data(out) + row * s * (int64_t)nb_dtype_size(out->dtype), \
                        1, RD, a, 1, s);                                                        \
    }

DEFINE_BN_LOOPS(f32, float, NB_F32)
DEFINE_BN_LOOPS(f64, double, NB_F64)

nb_status nb__cpu_batch_norm(const nb_op_args *args) {
    const nb_tensor *x = args->op == NB_OP_BATCH_NORM_STATS || args->op == NB_OP_BATCH_NORM_APPLY
                             ? args->in[0] : args->in[1];
    int64_t n = x->shape[0], channels = x->shape[1], s = nb__numel(x->ndim - 2, x->shape + 2);
    bool reduce = args->op == NB_OP_BATCH_NORM_STATS || args->op == NB_OP_BATCH_NORM_BACKWARD_REDUCE;
    const nb_tensor *packed = args->op == NB_OP_BATCH_NORM_STATS ? NULL : args->in[args->n_in - 1];
    double *p = packed ? load_params(packed) : NULL;
    double *pairs = reduce ? nb__malloc((size_t)(2 * channels) * sizeof *pairs) : NULL;
    bool failed = (packed && !p) || (reduce && !pairs);
    int64_t items = reduce ? channels : n * channels;
    bool wide = nb__cpu_compute_dtype(x->dtype) == NB_F64;
#pragma omp parallel reduction(|| : failed) if (!failed && nb_numel(x) >= NB_CPU_PARALLEL_MIN)
    {
        double *a = nb__malloc((size_t)(4 * s) * sizeof *a), *b = a ? a + s : NULL;
        failed = failed || !a;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            if (!a || (packed && !p) || (reduce && !pairs)) continue;
            double out[2];
            if (reduce && wide)
                reduce_f64(args, p, item, n, channels, s, a, b, b + s, b + 2 * s, out);
            else if (reduce)
                reduce_f32(args, p, item, n, channels, s, (float *)a, (float *)b, (float *)b + s,
                           (float *)b + 2 * s, out);
            else if (wide) apply_f64(args, p, item, channels, s, (double)(n * s), a, b);
            else apply_f32(args, p, item, channels, s, (double)(n * s), (float *)a, (float *)b);
            if (reduce) {
                pairs[item] = out[0];
                pairs[channels + item] = out[1];
            }
        }
        free(a);
    }
    if (!failed && reduce)
        nb__cpu_convert(args->out->dtype, nb__data(args->out), 1, NB_F64, pairs, 1, 2 * channels);
    free(p);
    free(pairs);
    NB_CHECK(!failed, NB_ERR_OOM, "nb_batch_norm: out of host memory for rows of %lld", (long long)s);
    return NB_OK;
}

/* ---- layer_norm and rms_norm over rows of D (src/ops/norm.c has the
 * formulas); row sums in double. Each thread adds its rows' parameter
 * gradients into its own [2, D] partial, and the partials are summed in
 * thread order after the loop, so results do not depend on timing. ---- */

typedef struct row_norm_plan {
    const nb_op_args *args;
    int64_t d;
    bool rms, backward;
} row_norm_plan;

#define DEFINE_ROW_NORM(suffix, real, RD)                                                         \
    /* y = (x - mean) rstd w + b for row r; w and b may be NULL */                                \
    static void row_forward_##suffix(const row_norm_plan *p, int64_t r, const real *w,            \
                                     const real *b, real *xbuf, real *ybuf) {                     \
        const nb_op_args *args = p->args;                                                         \
        int64_t d = p->d;                                                                         \
        const real *x = load_row(args->in[0], nb__dtype_size(args->in[0]->dtype), r, d, RD, xbuf); \
        double sum = 0, squares = 0;                                                              \
        for (int64_t k = 0; k < d && !p->rms; k++) sum += x[k];                                   \
        double mean = p->rms ? 0 : sum / (double)d;                                               \
        for (int64_t k = 0; k < d; k++) squares += (x[k] - mean) * (x[k] - mean);                 \
        double rstd = 1 / sqrt(squares / (double)d + args->attrs.norm.eps);                       \
        real m = (real)mean, s = (real)rstd;                                                      \
        for (int64_t k = 0; k < d; k++) {                                                         \
            real v = (x[k] - m) * s;                                                              \
            ybuf[k] = (w ? v * w[k] : v) + (b ? b[k] : 0);                                        \
        }                                                                                         \
        nb__cpu_convert(args->out->dtype, nb__data(args->out) + r * d * (int64_t)nb__dtype_size(args->out->dtype), \
                        1, RD, ybuf, 1, d);                                                       \
        double pair[2] = {mean, rstd};                                                            \
        const nb_tensor *stats = args->in[3];                                                     \
        nb__cpu_convert(stats->dtype, nb__data(stats) + 2 * r * (int64_t)nb__dtype_size(stats->dtype), \
                        1, NB_F64, pair, 1, 2);                                                   \
    }                                                                                             \
    /* dx for row r, and g xhat and g added into dparams (when set) */                            \
    static void row_backward_##suffix(const row_norm_plan *p, int64_t r, const real *w,           \
                                      real *gbuf, real *xbuf, double *dparams) {                  \
        const nb_op_args *args = p->args;                                                         \
        int64_t d = p->d;                                                                         \
        const nb_tensor *gt = args->in[0], *xt = args->in[1], *stats = args->in[3];               \
        const real *g = load_row(gt, nb__dtype_size(gt->dtype), r, d, RD, gbuf);                  \
        const real *x = load_row(xt, nb__dtype_size(xt->dtype), r, d, RD, xbuf);                  \
        double pair[2];                                                                           \
        nb__cpu_convert(NB_F64, pair, 1, stats->dtype,                                            \
                        nb__data(stats) + 2 * r * (int64_t)nb__dtype_size(stats->dtype), 1, 2);   \
        real mean = (real)pair[0], rstd = (real)pair[1];                                          \
        double sum_gw = 0, sum_gwx = 0;                                                           \
        for (int64_t k = 0; k < d; k++) {                                                         \
            real xhat = (x[k] - mean) * rstd, gw = w ? g[k] * w[k] : g[k];                        \
            sum_gw += gw;                                                                         \
            sum_gwx += gw * xhat;                                                                 \
            if (dparams) {                                                                        \
                dparams[k] += g[k] * xhat;                                                        \
                dparams[d + k] += g[k];                                                           \
            }                                                                                     \
        }                                                                                         \
        real a = p->rms ? 0 : (real)(sum_gw / (double)d), c = (real)(sum_gwx / (double)d);        \
        for (int64_t k = 0; k < d; k++) {                                                         \
            real xhat = (x[k] - mean) * rstd, gw = w ? g[k] * w[k] : g[k];                        \
            gbuf[k] = rstd * (gw - a - xhat * c); /* g[k] is read before gbuf[k] is written */    \
        }                                                                                         \
        nb__cpu_convert(args->out->dtype, nb__data(args->out) + r * d * (int64_t)nb__dtype_size(args->out->dtype), \
                        1, RD, gbuf, 1, d);                                                       \
    }                                                                                             \
    /* One thread's rows; buffer holds 4 rows of d reals. */                                      \
    static void row_norm_rows_##suffix(const row_norm_plan *p, real *buffer, double *dparams) {  \
        const nb_op_args *args = p->args;                                                         \
        int64_t d = p->d, rows = nb_numel(args->out) / d;                                         \
        const nb_tensor *weight = p->backward ? args->in[2] : args->in[1];                        \
        const nb_tensor *bias = p->backward ? NULL : args->in[2];                                 \
        real *w = weight ? buffer + 2 * d : NULL, *b = bias ? buffer + 3 * d : NULL;              \
        if (w) nb__cpu_convert(RD, w, 1, weight->dtype, nb__data(weight), 1, d);                  \
        if (b) nb__cpu_convert(RD, b, 1, bias->dtype, nb__data(bias), 1, d);                      \
        _Pragma("omp for schedule(static)")                                                       \
        for (int64_t r = 0; r < rows; r++) {                                                      \
            if (p->backward)                                                                      \
                row_backward_##suffix(p, r, w, buffer, buffer + d, dparams);                      \
            else                                                                                  \
                row_forward_##suffix(p, r, w, b, buffer, buffer + d);                             \
        }                                                                                         \
    }

DEFINE_ROW_NORM(f32, float, NB_F32)
DEFINE_ROW_NORM(f64, double, NB_F64)

nb_status nb__cpu_layer_norm(const nb_op_args *args) {
    row_norm_plan p = {.args = args, .rms = args->op == NB_OP_RMS_NORM || args->op == NB_OP_RMS_NORM_BACKWARD,
                       .backward = args->op == NB_OP_LAYER_NORM_BACKWARD || args->op == NB_OP_RMS_NORM_BACKWARD};
    const nb_tensor *stats = args->in[3];
    p.d = nb_numel(args->out) / stats->shape[0];
    nb_tensor *dparams = p.backward ? (nb_tensor *)args->in[4] : NULL;
    bool parallel = nb_numel(args->out) >= NB_CPU_PARALLEL_MIN;
    int threads = parallel ? omp_get_max_threads() : 1;
    double *partials = dparams ? nb__calloc((size_t)threads * 2 * (size_t)p.d, sizeof *partials) : NULL;
    bool wide = nb__cpu_compute_dtype(args->out->dtype) == NB_F64, failed = dparams && !partials;
#pragma omp parallel num_threads(threads) reduction(|| : failed) if (parallel && !failed)
    {
        void *buffer = nb__malloc((size_t)(4 * p.d) * (wide ? sizeof(double) : sizeof(float)));
        double *mine = partials ? partials + (size_t)omp_get_thread_num() * 2 * (size_t)p.d : NULL;
        failed = failed || !buffer;
        if (buffer && wide) row_norm_rows_f64(&p, buffer, mine);
        else if (buffer) row_norm_rows_f32(&p, buffer, mine);
        free(buffer);
    }
    if (!failed && dparams) { /* the partials in thread order, added to dparams */
        double *total = partials;
        for (int t = 1; t < threads; t++)
            for (int64_t k = 0; k < 2 * p.d; k++) total[k] += partials[(size_t)t * 2 * (size_t)p.d + (size_t)k];
        double *held = nb__malloc((size_t)(2 * p.d) * sizeof *held);
        failed = !held;
        if (held) {
            nb__cpu_convert(NB_F64, held, 1, dparams->dtype, nb__data(dparams), 1, 2 * p.d);
            for (int64_t k = 0; k < 2 * p.d; k++) held[k] += total[k];
            nb__cpu_convert(dparams->dtype, nb__data(dparams), 1, NB_F64, held, 1, 2 * p.d);
        }
        free(held);
    }
    free(partials);
    NB_CHECK(!failed, NB_ERR_OOM, "%s: out of host memory for rows of %lld", nb__op_fn(args->op),
             (long long)p.d);
    return NB_OK;
}
