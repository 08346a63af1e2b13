/* Scan kernels: cumsum, cumprod, logcumsumexp and their backward
 * (src/ops/scan.c) over contiguous tensors seen as [outer, n, inner], n
 * along the scanned dim. Each outer slab is converted to double (floats) or
 * int64 (integers) once, scanned in place with inner running values side by
 * side (so the inner loop is contiguous), and converted back. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

typedef struct scan_shape {
    int64_t outer, n, inner;
} scan_shape;

static scan_shape shape_around(const nb_tensor *t, int dim) {
    scan_shape s = {1, t->ndim ? t->shape[dim] : 1, 1};
    for (int d = 0; d < t->ndim; d++) {
        if (d < dim) s.outer *= t->shape[d];
        if (d > dim) s.inner *= t->shape[d];
    }
    return s;
}

/* log(exp(a) + exp(b)) without overflow: max + log1p(exp(-|a - b|)). */
static double log_add_exp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1p(exp(lo - hi));
}

/* Scans the slab v [n, inner] in place along n (from the end if reverse). */
static void scan_float(nb_op op, double *v, scan_shape s, bool reverse) {
    for (int64_t step = 1; step < s.n; step++) {
        int64_t t = reverse ? s.n - 1 - step : step, prev = reverse ? t + 1 : t - 1;
        double *row = v + t * s.inner;
        const double *before = v + prev * s.inner;
        if (op == NB_OP_CUMSUM)
            for (int64_t j = 0; j < s.inner; j++) row[j] += before[j];
        else if (op == NB_OP_CUMPROD)
            for (int64_t j = 0; j < s.inner; j++) row[j] *= before[j];
        else
            for (int64_t j = 0; j < s.inner; j++) row[j] = log_add_exp(before[j], row[j]);
    }
}

/* The same in int64, wrapping on overflow as PyTorch's integers do. */
static void scan_int(nb_op op, int64_t *v, scan_shape s, bool reverse) {
    for (int64_t step = 1; step < s.n; step++) {
        int64_t t = reverse ? s.n - 1 - step : step, prev = reverse ? t + 1 : t - 1;
        int64_t *row = v + t * s.inner;
        const int64_t *before = v + prev * s.inner;
        for (int64_t j = 0; j < s.inner; j++) {
            uint64_t a = (uint64_t)before[j], b = (uint64_t)row[j];
            row[j] = (int64_t)(op == NB_OP_CUMSUM ? a + b : a * b);
        }
    }
}

nb_status nb__cpu_scan(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    scan_shape s = shape_around(out, args->attrs.scan.dim);
    int64_t slab = s.n * s.inner;
    bool is_float = nb_dtype_is_float(out->dtype);
    nb_dtype compute = is_float ? NB_F64 : NB_I64;
    size_t in_size = nb__dtype_size(x->dtype), out_size = nb__dtype_size(out->dtype);
    bool failed = false;
#pragma omp parallel if (s.outer > 1 && s.outer * slab >= NB_CPU_PARALLEL_MIN)
    {
        void *v = nb__malloc((size_t)(slab ? slab : 1) * 8);
        if (!v) __atomic_store_n(&failed, true, __ATOMIC_RELAXED);
#pragma omp for schedule(static)
        for (int64_t o = 0; o < s.outer; o++) {
            if (!v) continue;
            nb__cpu_convert(compute, v, 1, x->dtype, nb__data(x) + o * slab * (int64_t)in_size, 1, slab);
            if (is_float) scan_float(args->op, v, s, args->attrs.scan.reverse);
            else scan_int(args->op, v, s, args->attrs.scan.reverse);
            nb__cpu_convert(out->dtype, nb__data(out) + o * slab * (int64_t)out_size, 1, compute, v, 1, slab);
        }
        free(v);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "%s: out of host memory scanning %lld elements",
             nb__op_fn(args->op), (long long)slab);
    return NB_OK;
}

/* The gradient of cumprod or logcumsumexp for one slab (src/ops/scan.c):
 * t runs from the end, t_{i-1} = g_{i-1} + a_i t_i, and grad_i = c_i t_i. */
static void scan_grad_slab(nb_op forward, const double *x, const double *y, const double *g,
                           double *grad, double *t, scan_shape s) {
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
    scan_shape s = shape_around(out, args->attrs.scan.dim);
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
