/* Reductions over any set of dims. The output has x's rank with the reduced
 * dims of size 1 (the front end drops them for keepdim=false) and is
 * contiguous, so output element o is the o-th index over the kept dims.
 * Each output walks its reduced elements row by row (the reduced dims are
 * coalesced first), converting chunks to double (int64 for integer sums,
 * products and extremes, which stay exact beyond 2^53) and folding them into
 * an accumulator. Variance combines chunk
 * statistics with Chan et al.'s parallel formula; logsumexp keeps a running
 * maximum and rescales its sum, as online softmax does. When there are fewer
 * outputs than threads, each output's elements are split into ranges folded
 * on separate threads and merged in order with the same rules. Sums over the
 * leading dims of a dense tensor (column sums) run row by row instead. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "cpu.h"

#define NB_REDUCE_MAX_PARTS 256

typedef struct accumulator {
    double value;        /* sum, product, extreme, or sum of |x|^p */
    int64_t int_value;   /* integer sum or product */
    int64_t index;       /* position of the extreme (argmax/argmin) */
    double count, mean, m2; /* variance */
    int64_t seen;        /* elements folded so far (the next one's position) */
    bool any;            /* an extreme holds a value: ranges after the first start empty */
    bool nan;            /* logsumexp saw a NaN */
} accumulator;

static void start(nb_op op, accumulator *acc) {
    *acc = (accumulator){0};
    if (op == NB_OP_PROD) {
        acc->value = 1;
        acc->int_value = 1;
    }
    if (op == NB_OP_LOGSUMEXP) acc->mean = -INFINITY;
}

static bool is_extreme(nb_op op) {
    return op == NB_OP_MAX || op == NB_OP_MIN || op == NB_OP_ARGMAX || op == NB_OP_ARGMIN;
}

static bool beats(nb_op op, double candidate, double best) {
    if (best != best) return false; /* the first NaN wins */
    if (candidate != candidate) return true;
    bool is_max = op == NB_OP_MAX || op == NB_OP_ARGMAX;
    return is_max ? candidate > best : candidate < best;
}

static bool beats_int(nb_op op, int64_t candidate, int64_t best) {
    bool is_max = op == NB_OP_MAX || op == NB_OP_ARGMAX;
    return is_max ? candidate > best : candidate < best;
}

/* The sum of v[i]^power (power 1 or 2; |v| for 1 with absolute) in
 * NB_LANES independent partial sums, so that the adds vectorize and do not
 * wait on one another (one running sum is an add's latency per element). */
#define NB_LANES 8
static double lane_sum(const double *v, int64_t n, int power, bool absolute) {
    double lanes[NB_LANES] = {0};
    int64_t i = 0;
    for (; i + NB_LANES <= n; i += NB_LANES)
        for (int k = 0; k < NB_LANES; k++) {
            double a = absolute ? fabs(v[i + k]) : v[i + k];
            lanes[k] += power == 2 ? a * a : a;
        }
    for (int k = 0; i + k < n; k++) {
        double a = absolute ? fabs(v[i + k]) : v[i + k];
        lanes[k] += power == 2 ? a * a : a;
    }
    double total = 0;
    for (int k = 0; k < NB_LANES; k++) total += lanes[k];
    return total;
}

/* The sum of (v[i] - mean)^2 in lanes, as lane_sum. */
static double lane_squares(const double *v, int64_t n, double mean) {
    double lanes[NB_LANES] = {0};
    int64_t i = 0;
    for (; i + NB_LANES <= n; i += NB_LANES)
        for (int k = 0; k < NB_LANES; k++) lanes[k] += (v[i + k] - mean) * (v[i + k] - mean);
    for (int k = 0; i + k < n; k++) lanes[k] += (v[i + k] - mean) * (v[i + k] - mean);
    double total = 0;
    for (int k = 0; k < NB_LANES; k++) total += lanes[k];
    return total;
}

static void fold_floats(nb_op op, double p, const double *v, int64_t n, accumulator *acc) {
    switch (op) {
    case NB_OP_SUM: case NB_OP_MEAN:
        acc->value += lane_sum(v, n, 1, false);
        break;
    case NB_OP_PROD:
        for (int64_t i = 0; i < n; i++) acc->value *= v[i];
        break;
    case NB_OP_MAX: case NB_OP_MIN: case NB_OP_ARGMAX: case NB_OP_ARGMIN:
        for (int64_t i = 0; i < n; i++)
            if (!acc->any || beats(op, v[i], acc->value)) {
                acc->value = v[i];
                acc->index = acc->seen + i;
                acc->any = true;
            }
        break;
    case NB_OP_VAR: case NB_OP_STD: {
        double mean = lane_sum(v, n, 1, false) / (double)n, m2 = lane_squares(v, n, mean);
        double total = acc->count + (double)n, delta = mean - acc->mean;
        acc->m2 += m2 + delta * delta * acc->count * (double)n / total;
        acc->mean += delta * (double)n / total;
        acc->count = total;
        break;
    }
    case NB_OP_LOGSUMEXP: { /* mean holds the running maximum */
        double chunk_max = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            acc->nan = acc->nan || v[i] != v[i];
            chunk_max = v[i] > chunk_max ? v[i] : chunk_max;
        }
        if (chunk_max == -INFINITY || acc->mean == INFINITY) break;
        if (chunk_max == INFINITY) { /* the result is +inf whatever else comes */
            acc->mean = INFINITY;
            acc->value = 1;
            break;
        }
        double running_max = fmax(acc->mean, chunk_max);
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += exp(v[i] - running_max);
        acc->value = acc->value * exp(acc->mean - running_max) + sum;
        acc->mean = running_max;
        break;
    }
    case NB_OP_NORM:
        if (p == 1 || p == 2) {
            acc->value += lane_sum(v, n, (int)p, true);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            double a = fabs(v[i]);
            if (isinf(p)) acc->value = (a > acc->value || a != a) ? a : acc->value;
            else acc->value += p == 0 ? (a != 0) : p == 1 ? a : p == 2 ? a * a : pow(a, p);
        }
        break;
    default: NB_ASSERT(!"not a reduction");
    }
    acc->seen += n;
}

/* Integer sums and products wrap as two's complement, as PyTorch's do. */
static int64_t combine_ints(nb_op op, int64_t a, int64_t b) {
    return op == NB_OP_PROD ? (int64_t)((uint64_t)a * (uint64_t)b) : (int64_t)((uint64_t)a + (uint64_t)b);
}

static void fold_ints(nb_op op, const int64_t *v, int64_t n, accumulator *acc) {
    if (is_extreme(op)) {
        for (int64_t i = 0; i < n; i++)
            if (!acc->any || beats_int(op, v[i], acc->int_value)) {
                acc->int_value = v[i];
                acc->index = acc->seen + i;
                acc->any = true;
            }
    } else {
        for (int64_t i = 0; i < n; i++) acc->int_value = combine_ints(op, acc->int_value, v[i]);
    }
    acc->seen += n;
}

static double finish(const nb_op_args *args, const accumulator *acc) {
    double correction = args->attrs.reduce.correction, p = args->attrs.reduce.p;
    switch (args->op) {
    case NB_OP_MEAN: return acc->value / (double)acc->seen;
    case NB_OP_ARGMAX: case NB_OP_ARGMIN: return (double)acc->index;
    case NB_OP_VAR: case NB_OP_STD: {
        /* as PyTorch: the divisor is max(0, N - correction), so inf past N (NaN for 0 / 0) */
        double denom = acc->count - correction;
        double var = acc->m2 / (denom > 0 ? denom : 0);
        return args->op == NB_OP_STD ? sqrt(var) : var;
    }
    case NB_OP_LOGSUMEXP: return acc->nan ? NAN : acc->mean + log(acc->value);
    case NB_OP_NORM:
        if (isinf(p) || p == 0 || p == 1) return acc->value;
        return p == 2 ? sqrt(acc->value) : pow(acc->value, 1 / p);
    default: return acc->value;
    }
}

/* Combines the accumulator of the next range of reduced elements into `into`
 * (ranges merge in order, so the first extreme and the first NaN still win). */
static void merge(nb_op op, double p, bool integer, accumulator *into, const accumulator *next) {
    if (is_extreme(op) && next->any) {
        bool better = integer ? beats_int(op, next->int_value, into->int_value)
                              : beats(op, next->value, into->value);
        if (!into->any || better) {
            into->value = next->value;
            into->int_value = next->int_value;
            into->index = next->index;
            into->any = true;
        }
    } else if (integer) {
        into->int_value = combine_ints(op, into->int_value, next->int_value);
    } else {
        switch (op) {
        case NB_OP_SUM: case NB_OP_MEAN: into->value += next->value; break;
        case NB_OP_PROD: into->value *= next->value; break;
        case NB_OP_MAX: case NB_OP_MIN: case NB_OP_ARGMAX: case NB_OP_ARGMIN: break; /* empty next */
        case NB_OP_VAR: case NB_OP_STD: {
            double total = into->count + next->count, delta = next->mean - into->mean;
            into->m2 += next->m2 + delta * delta * into->count * next->count / total;
            into->mean += delta * next->count / total;
            into->count = total;
            break;
        }
        case NB_OP_LOGSUMEXP: { /* mean holds each range's running maximum */
            into->nan = into->nan || next->nan;
            if (next->mean == -INFINITY || into->mean == INFINITY) break;
            if (next->mean == INFINITY) {
                into->mean = INFINITY;
                into->value = 1;
                break;
            }
            double m = fmax(into->mean, next->mean);
            into->value = into->value * exp(into->mean - m) + next->value * exp(next->mean - m);
            into->mean = m;
            break;
        }
        case NB_OP_NORM: /* max |x| for p = inf, where a NaN, once seen, stays */
            if (!isinf(p)) into->value += next->value;
            else if (into->value == into->value && !(next->value <= into->value))
                into->value = next->value;
            break;
        default: NB_ASSERT(!"not a reduction");
        }
    }
    into->seen = next->seen;
}

/* Folds the reduced elements [first, last) (row-major over the reduced dims)
 * of the output that starts at base. acc->seen must equal first. */
static void reduce_range(const nb_op_args *args, const nb_reduce_plan *plan, const char *base,
                         bool integer, int64_t first, int64_t last, accumulator *acc) {
    const nb_tensor *x = args->in[0];
    size_t size = nb_dtype_size(x->dtype);
    int inner = plan->n_reduced - 1;
    int64_t row_len = plan->red_shape[inner], stride = plan->red_stride[inner];
    union { double f[NB_CPU_CHUNK]; int64_t i[NB_CPU_CHUNK]; } buffer;
    for (int64_t at = first; at < last;) {
        int64_t col = at % row_len, offset = 0, rest = at / row_len;
        for (int d = inner - 1; d >= 0; d--) {
            offset += (rest % plan->red_shape[d]) * plan->red_stride[d];
            rest /= plan->red_shape[d];
        }
        int64_t n = row_len - col;
        if (n > last - at) n = last - at;
        if (n > NB_CPU_CHUNK) n = NB_CPU_CHUNK;
        const char *src = base + (offset + col * stride) * (int64_t)size;
        nb__cpu_convert(integer ? NB_I64 : NB_F64, &buffer, 1, x->dtype, src, stride, n);
        if (integer) fold_ints(args->op, buffer.i, n, acc);
        else fold_floats(args->op, args->attrs.reduce.p, buffer.f, n, acc);
        at += n;
    }
}

/* One output from many elements: ranges of the reduced elements fold on
 * separate threads, then merge in order. */
static void reduce_split(const nb_op_args *args, const nb_reduce_plan *plan, const char *base,
                         bool integer, int64_t count, accumulator *acc) {
    int parts = omp_get_max_threads();
    if (parts > count / NB_CPU_PARALLEL_MIN + 1) parts = (int)(count / NB_CPU_PARALLEL_MIN + 1);
    accumulator partial[NB_REDUCE_MAX_PARTS];
    if (parts > NB_REDUCE_MAX_PARTS) parts = NB_REDUCE_MAX_PARTS;
#pragma omp parallel for schedule(static) if (parts > 1)
    for (int i = 0; i < parts; i++) {
        int64_t first = count * i / parts, last = count * (i + 1) / parts;
        start(args->op, &partial[i]);
        partial[i].seen = first;
        reduce_range(args, plan, base, integer, first, last, &partial[i]);
    }
    *acc = partial[0];
    for (int i = 1; i < parts; i++) merge(args->op, args->attrs.reduce.p, integer, acc, &partial[i]);
}

/* Whether x is a dense [R, K] whose leading R rows are reduced: the sums of
 * columns (a batch's bias gradient), which column_sums runs row by row. */
static bool leading_sum(const nb_op_args *args, int64_t *rows, int64_t *cols) {
    const nb_tensor *x = args->in[0];
    uint32_t mask = args->attrs.reduce.mask;
    if ((args->op != NB_OP_SUM && args->op != NB_OP_MEAN) || !nb_dtype_is_float(x->dtype) ||
        !nb__is_contiguous(x) || mask == 0)
        return false;
    int lead = 0;
    while (lead < x->ndim && (mask & (1u << lead))) lead++;
    if (mask >> lead) return false; /* a reduced dim after a kept one */
    *rows = nb__numel(lead, x->shape);
    *cols = nb__numel(x->ndim - lead, x->shape + lead);
    return *cols > 1;
}

/* out[k] = sum (or mean) over r of x[r, k]: blocks of columns per thread,
 * each row's block converted to double and added in one vector loop. */
static nb_status column_sums(const nb_op_args *args, int64_t rows, int64_t cols) {
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    size_t size = nb_dtype_size(x->dtype);
    int64_t blocks = (cols + NB_CPU_CHUNK - 1) / NB_CPU_CHUNK;
#pragma omp parallel for schedule(static) if (rows * cols >= NB_CPU_PARALLEL_MIN)
    for (int64_t b = 0; b < blocks; b++) {
        double acc[NB_CPU_CHUNK], row[NB_CPU_CHUNK];
        int64_t first = b * NB_CPU_CHUNK, width = cols - first < NB_CPU_CHUNK ? cols - first : NB_CPU_CHUNK;
        for (int64_t j = 0; j < width; j++) acc[j] = 0;
        for (int64_t r = 0; r < rows; r++) {
            nb__cpu_convert(NB_F64, row, 1, x->dtype, nb__data(x) + (r * cols + first) * (int64_t)size, 1, width);
            for (int64_t j = 0; j < width; j++) acc[j] += row[j];
        }
        if (args->op == NB_OP_MEAN)
            for (int64_t j = 0; j < width; j++) acc[j] /= (double)rows;
        nb__cpu_convert(out->dtype, nb__data(out) + first * (int64_t)nb_dtype_size(out->dtype), 1,
                        NB_F64, acc, 1, width);
    }
    return NB_OK;
}

nb_status nb__cpu_reduce(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    int64_t rows, cols;
    if (leading_sum(args, &rows, &cols)) return column_sums(args, rows, cols);
    nb_reduce_plan plan;
    nb__plan_reduce(x, args->attrs.reduce.mask, &plan);
    /* integer sums, products and extremes stay exact in int64 */
    bool integer = !nb_dtype_is_float(x->dtype) &&
                   (args->op == NB_OP_SUM || args->op == NB_OP_PROD || is_extreme(args->op));
    int64_t n_out = nb_numel(out), count = nb__numel(plan.n_reduced, plan.red_shape);
    size_t x_size = nb_dtype_size(x->dtype), out_size = nb_dtype_size(out->dtype);
    /* many outputs: a thread per output; few outputs of many elements: split each */
    bool split = n_out < omp_get_max_threads() && count >= 2 * NB_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (!split && n_out > 1 && n_out * count >= NB_CPU_PARALLEL_MIN)
    for (int64_t o = 0; o < n_out; o++) {
        int64_t offset = 0, rest = o;
        for (int d = plan.n_kept - 1; d >= 0; d--) {
            offset += (rest % plan.kept_shape[d]) * plan.kept_stride[d];
            rest /= plan.kept_shape[d];
        }
        const char *base = nb__data(x) + offset * (int64_t)x_size;
        accumulator acc;
        if (split) {
            reduce_split(args, &plan, base, integer, count, &acc);
        } else {
            start(args->op, &acc);
            reduce_range(args, &plan, base, integer, 0, count, &acc);
        }
        char *dst = nb__data(out) + o * (int64_t)out_size;
        bool arg = args->op == NB_OP_ARGMAX || args->op == NB_OP_ARGMIN;
        if (integer) {
            nb__cpu_convert(out->dtype, dst, 1, NB_I64, arg ? &acc.index : &acc.int_value, 1, 1);
        } else {
            double value = finish(args, &acc);
            nb__cpu_convert(out->dtype, dst, 1, NB_F64, &value, 1, 1);
        }
    }
    return NB_OK;
}
