/* BatchNorm's stage kernels over x contiguous [N, C, S] (src/ops/norm.c has
 * the formulas): the per-channel reductions run a channel per thread, the
 * elementwise stages a row (n, c) per iteration, in double. */
#include <stdlib.h>

#include "cpu.h"

/* Row (n, c) of t [N, C, S] as S doubles. */
static void load_row(const nb_tensor *t, int64_t row, int64_t s, double *out) {
    nb__cpu_convert(NB_F64, out, 1, t->dtype, nb__data(t) + row * s * (int64_t)nb_dtype_size(t->dtype),
                    1, s);
}

/* The packed per-channel parameters [k, C] as doubles, k rows. */
static double *load_params(const nb_tensor *p) {
    double *v = malloc((size_t)nb_numel(p) * sizeof *v);
    if (v) nb__cpu_convert(NB_F64, v, 1, p->dtype, nb__data(p), 1, nb_numel(p));
    return v;
}

/* stats: (mean, m2) of each channel, rows merged with Chan et al.'s update;
 * backward reduce: (sum g, sum g xhat). */
static void reduce_channel(const nb_op_args *args, const double *p, int64_t c, int64_t n,
                           int64_t channels, int64_t s, double *a, double *b, double *out) {
    bool stats = args->op == NB_OP_BATCH_NORM_STATS;
    double count = 0, mean = 0, m2 = 0, sum_g = 0, sum_gx = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t row = i * channels + c;
        load_row(args->in[0], row, s, a);
        if (stats) {
            double row_mean = 0, row_m2 = 0;
            for (int64_t k = 0; k < s; k++) row_mean += a[k];
            row_mean /= (double)s;
            for (int64_t k = 0; k < s; k++) row_m2 += (a[k] - row_mean) * (a[k] - row_mean);
            double total = count + (double)s, delta = row_mean - mean;
            m2 += row_m2 + delta * delta * count * (double)s / total;
            mean += delta * (double)s / total;
            count = total;
        } else {
            load_row(args->in[1], row, s, b);
            for (int64_t k = 0; k < s; k++) {
                sum_g += a[k];
                sum_gx += a[k] * (b[k] - p[c]) * p[channels + c];
            }
        }
    }
    out[0] = stats ? mean : sum_g;
    out[1] = stats ? m2 : sum_gx;
}

/* apply: (x - mean) invstd w + b; backward apply:
 * w invstd / n (n g - sum_g - xhat sum_gx). */
static void apply_row(const nb_op_args *args, const double *p, int64_t row, int64_t channels,
                      int64_t s, double count, double *a, double *b) {
    int64_t c = row % channels;
    const double *mean = p, *invstd = p + channels, *weight = p + 2 * channels;
    if (args->op == NB_OP_BATCH_NORM_APPLY) {
        load_row(args->in[0], row, s, a);
        double scale = invstd[c] * weight[c], shift = p[3 * channels + c] - mean[c] * scale;
        for (int64_t k = 0; k < s; k++) a[k] = a[k] * scale + shift;
    } else {
        load_row(args->in[0], row, s, a); /* g */
        load_row(args->in[1], row, s, b); /* x */
        double sum_g = p[3 * channels + c], sum_gx = p[4 * channels + c];
        double scale = weight[c] * invstd[c] / count;
        for (int64_t k = 0; k < s; k++)
            a[k] = scale * (count * a[k] - sum_g - (b[k] - mean[c]) * invstd[c] * sum_gx);
    }
    nb_tensor *out = args->out;
    nb__cpu_convert(out->dtype, nb__data(out) + row * s * (int64_t)nb_dtype_size(out->dtype), 1,
                    NB_F64, a, 1, s);
}

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
#pragma omp parallel reduction(|| : failed) if (!failed && nb_numel(x) >= NB_CPU_PARALLEL_MIN)
    {
        double *a = malloc((size_t)(2 * s) * sizeof *a), *b = a ? a + s : NULL;
        failed = failed || !a;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < items; item++) {
            if (!a || (packed && !p) || (reduce && !pairs)) continue;
            if (reduce) {
                double out[2];
                reduce_channel(args, p, item, n, channels, s, a, b, out);
                pairs[item] = out[0];
                pairs[channels + item] = out[1];
            } else {
                apply_row(args, p, item, channels, s, (double)(n * s), a, b);
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
