/* Scan kernels: cumsum, cumprod, logcumsumexp and their backward
 * (src/ops/scan.c) over contiguous tensors seen as [outer, n, inner], n
 * along the scanned dim. The forward converts chunks of steps to double
 * (floats) or int64 (integers), scans them with inner running values side by
 * side (so the inner loop is contiguous; one running value for inner 1),
 * and converts them back. The backward does the same over whole slabs. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

/* log(exp(a) + exp(b)) without overflow: max + log1p(exp(-|a - b|)). */
static double log_add_exp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1p(exp(lo - hi));
}

/* Steps converted and scanned at once: the chunk stays in L1. */
#define SCAN_CHUNK 2048

static double float_identity(nb_op op) {
    return op == NB_OP_CUMSUM ? 0 : op == NB_OP_CUMPROD ? 1 : -INFINITY;
}

/* One line (inner 1) of len values in v, in order or from the end, carrying
 * acc in and out; the op is chosen once, outside the loop. */
static double scan_line_float(nb_op op, double *v, int64_t len, bool reverse, double acc) {
    int64_t at = reverse ? len - 1 : 0, dir = reverse ? -1 : 1;
    if (op == NB_OP_CUMSUM)
        for (int64_t i = 0; i < len; i++, at += dir) v[at] = acc += v[at];
    else if (op == NB_OP_CUMPROD)
        for (int64_t i = 0; i < len; i++, at += dir) v[at] = acc *= v[at];
    else
        for (int64_t i = 0; i < len; i++, at += dir) v[at] = acc = log_add_exp(acc, v[at]);
    return acc;
}

/* Rows of inner values side by side: acc = acc op row, written back to row. */
static void scan_row_float(nb_op op, double *acc, double *row, int64_t inner) {
    if (op == NB_OP_CUMSUM)
        for (int64_t j = 0; j < inner; j++) row[j] = acc[j] += row[j];
    else if (op == NB_OP_CUMPROD)
        for (int64_t j = 0; j < inner; j++) row[j] = acc[j] *= row[j];
    else
        for (int64_t j = 0; j < inner; j++) row[j] = acc[j] = log_add_exp(acc[j], row[j]);
}

/* The same in int64, wrapping on overflow as PyTorch's integers do. */
static void scan_row_int(nb_op op, int64_t *acc, int64_t *row, int64_t inner) {
    for (int64_t j = 0; j < inner; j++) {
        uint64_t a = (uint64_t)acc[j], b = (uint64_t)row[j];
        row[j] = acc[j] = (int64_t)(op == NB_OP_CUMSUM ? a + b : a * b);
    }
}

/* Scans chunk (len steps of inner values, memory order) into acc. */
static void scan_chunk(nb_op op, bool is_float, void *chunk, void *acc, int64_t len, int64_t inner,
                       bool reverse) {
    if (is_float && inner == 1) {
        *(double *)acc = scan_line_float(op, chunk, len, reverse, *(double *)acc);
        return;
    }
    for (int64_t i = 0; i < len; i++) {
        int64_t t = reverse ? len - 1 - i : i;
        if (is_float) scan_row_float(op, acc, (double *)chunk + t * inner, inner);
        else scan_row_int(op, acc, (int64_t *)chunk + t * inner, inner);
    }
}

nb_status nb__cpu_scan(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    nb_op op = args->op;
    nb_scan_shape s = nb__scan_shape(out, args->attrs.scan.dim);
    bool is_float = nb_dtype_is_float(out->dtype), reverse = args->attrs.scan.reverse;
    nb_dtype compute = is_float ? NB_F64 : NB_I64;
    size_t in_size = nb__dtype_size(x->dtype), out_size = nb__dtype_size(out->dtype);
    int64_t steps = s.inner < SCAN_CHUNK ? SCAN_CHUNK / s.inner : 1; /* per chunk */
    bool failed = false;
#pragma omp parallel if (s.outer > 1 && s.outer * s.n * s.inner >= NB_CPU_PARALLEL_MIN)
    {
        void *chunk = nb__malloc((size_t)(steps * s.inner) * 8), *acc = nb__malloc((size_t)s.inner * 8);
        if (!chunk || !acc) __atomic_store_n(&failed, true, __ATOMIC_RELAXED);
#pragma omp for schedule(static)
        for (int64_t o = 0; o < s.outer; o++) {
            if (!chunk || !acc) continue;
            for (int64_t j = 0; j < s.inner; j++) {
                if (is_float) ((double *)acc)[j] = float_identity(op);
                else ((int64_t *)acc)[j] = op == NB_OP_CUMPROD;
            }
            for (int64_t done = 0; done < s.n; done += steps) {
                int64_t len = s.n - done < steps ? s.n - done : steps;
                int64_t first = o * s.n + (reverse ? s.n - done - len : done); /* in steps */
                int64_t count = len * s.inner;
                nb__cpu_convert(compute, chunk, 1, x->dtype,
                                nb__data(x) + first * s.inner * (int64_t)in_size, 1, count);
                scan_chunk(op, is_float, chunk, acc, len, s.inner, reverse);
                nb__cpu_convert(out->dtype, nb__data(out) + first * s.inner * (int64_t)out_size, 1,
                                compute, chunk, 1, count);
            }
        }
        free(chunk);
        free(acc);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "%s: out of host memory scanning lines of %lld elements",
             nb__op_fn(op), (long long)s.n);
    return NB_OK;
}

/* The gradient of cumprod or logcumsumexp for one slab (src/ops/scan.c):
 * t runs from the end, t_{i-1} = g_{i-1} + a_i t_i, and grad_i = c_i t_i. */
static void scan_grad_slab(nb_op forward, const double *x, const double *y, const double *g,
                           double *grad, double *t, nb_scan_shape s) {
    bool prod = forward == NB_OP_CUMPROD;
    for (int64_t i = s.n - 1; i >= 0; i--)
        for (int64_t j = 0; j < s.inner; j++) {
            int64_t at = i * s.inner + j, next = at + s.inner;
            double a = 0; /* the factor from i + 1 to i */
            if (i + 1 < s.n) a = prod ? x[next] : y[next] == -INFINITY ? 0 : exp(y[at] - y[next]);
            t[j] = g[at] + a * (i + 1 < s.n ? t[j] : 0);
            double c = prod ? (i ? y[at - s.inner] : 1) : x[at] == -INFINITY ? 0 : exp(x[at] - y[at]);
            grad[at] = c * t[j];
        }
}

nb_status nb__cpu_scan_backward(const nb_op_args *args) {
    const nb_tensor *x = args->in[0], *y = args->in[1], *g = args->in[2];
    nb_tensor *out = args->out;
    nb_scan_shape s = nb__scan_shape(out, args->attrs.scan.dim);
    int64_t slab = s.n * s.inner;
    size_t size = nb__dtype_size(out->dtype);
    bool failed = false;
#pragma omp parallel if (s.outer > 1 && s.outer * slab >= NB_CPU_PARALLEL_MIN)
    {
        double *v = nb__malloc((size_t)(4 * slab + s.inner + 1) * sizeof *v);
        if (!v) __atomic_store_n(&failed, true, __ATOMIC_RELAXED);
#pragma omp for schedule(static)
        for (int64_t o = 0; o < s.outer; o++) {
            if (!v) continue;
            const nb_tensor *in[3] = {x, y, g};
            for (int k = 0; k < 3; k++)
                nb__cpu_convert(NB_F64, v + k * slab, 1, in[k]->dtype,
                                nb__data(in[k]) + o * slab * (int64_t)size, 1, slab);
            scan_grad_slab(args->attrs.scan.forward, v, v + slab, v + 2 * slab, v + 3 * slab,
                           v + 4 * slab, s);
            nb__cpu_convert(out->dtype, nb__data(out) + o * slab * (int64_t)size, 1, NB_F64,
                            v + 3 * slab, 1, slab);
        }
        free(v);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "%s: out of host memory for a gradient of %lld elements",
             nb__op_fn(args->attrs.scan.forward), (long long)slab);
    return NB_OK;
}
