/* BatchNorm's stage kernels over x contiguous [N, C, S] (src/ops/norm.c has
 * the formulas): the per-channel reductions run a channel per thread, the
 * elementwise stages a row (n, c) per iteration. Rows are read in the
 * compute type (float for f32, f16 and bf16, double for f64); sums and
 * per-channel parameters are double. */
#include <stdlib.h>

#include "cpu.h"

/* The packed per-channel parameters [k, C] as doubles, k rows. */
static double *load_params(const nb_tensor *p) {
    double *v = malloc((size_t)nb_numel(p) * sizeof *v);
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
    int64_t n = x->shape[0], channels = x->shape[1], s = nb_numel(x) / (n * channels);
    bool reduce = args->op == NB_OP_BATCH_NORM_STATS || args->op == NB_OP_BATCH_NORM_BACKWARD_REDUCE;
    const nb_tensor *packed = args->op == NB_OP_BATCH_NORM_STATS ? NULL : args->in[args->n_in - 1];
    double *p = packed ? load_params(packed) : NULL;
    double *pairs = reduce ? malloc((size_t)(2 * channels) * sizeof *pairs) : NULL;
    bool failed = (packed && !p) || (reduce && !pairs);
    int64_t items = reduce ? channels : n * channels;
    bool wide = nb__cpu_compute_dtype(x->dtype) == NB_F64;
#pragma omp parallel reduction(|| : failed) if (!failed && nb_numel(x) >= NB_CPU_PARALLEL_MIN)
    {
        double *a = malloc((size_t)(4 * s) * sizeof *a), *b = a ? a + s : NULL;
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
