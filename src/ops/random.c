/* Random creation ops. Each reserves numel counters of its generator, so the
 * values depend only on the seed and the draws made before (docs/random.md). */
#include <math.h>

#include "../core/internal.h"
#include "../core/multinomial.h"
#include "../core/random_internal.h"

static nb_tensor *draw(nb_op op, int ndim, const int64_t *shape, double a, double b,
                       nb_dtype dtype, nb_device device, nb_generator *gen) {
    nb_tensor *t = NULL;
    nb_status status = nb__tensor_new(nb__op_fn(op), ndim, shape, dtype, device, &t);
    if (status == NB_OK) {
        nb_op_args args = {.op = op, .dtype = dtype, .out = t};
        args.attrs.random.offset =
            nb__generator_reserve(gen, (uint64_t)nb_numel(t), &args.attrs.random.seed);
        args.attrs.random.a = a;
        args.attrs.random.b = b;
        status = nb__dispatch(&args);
    }
    return nb__unwrap(status, t);
}

static bool check_float(const char *fn, nb_dtype dtype) {
    if (nb_dtype_is_float(dtype)) return true;
    nb__error(NB_ERR_DTYPE, "%s: needs a float dtype, got %s", fn, nb_dtype_name(dtype));
    return false;
}

nb_tensor *nb_uniform(int ndim, const int64_t *shape, double low, double high, nb_dtype dtype,
                      nb_device device, nb_generator *gen) {
    if (!check_float("nb_uniform", dtype)) return NULL;
    if (!(isfinite(low) && isfinite(high) && low <= high)) {
        nb__error(NB_ERR_INVALID, "nb_uniform: needs finite low <= high, got [%g, %g)", low, high);
        return NULL;
    }
    return draw(NB_OP_UNIFORM, ndim, shape, low, high, dtype, device, gen);
}

nb_tensor *nb_normal(int ndim, const int64_t *shape, double mean, double std, nb_dtype dtype,
                     nb_device device, nb_generator *gen) {
    if (!check_float("nb_normal", dtype)) return NULL;
    if (!(isfinite(mean) && isfinite(std) && std >= 0)) {
        nb__error(NB_ERR_INVALID, "nb_normal: needs a finite mean and std >= 0, got %g and %g",
                  mean, std);
        return NULL;
    }
    return draw(NB_OP_NORMAL, ndim, shape, mean, std, dtype, device, gen);
}

nb_tensor *nb_bernoulli(int ndim, const int64_t *shape, double p, nb_dtype dtype, nb_device device,
                        nb_generator *gen) {
    if (!(p >= 0 && p <= 1)) {
        nb__error(NB_ERR_INVALID, "nb_bernoulli: p must be in [0, 1], got %g", p);
        return NULL;
    }
    return draw(NB_OP_BERNOULLI, ndim, shape, p, 0, dtype, device, gen);
}

nb_tensor *nb_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, nb_dtype dtype,
                      nb_device device, nb_generator *gen) {
    double lo = 0, hi = 0;
    if (nb_dtype_is_valid(dtype)) nb__integer_range(dtype, &lo, &hi);
    if (!(low < high) || (double)low < lo || (double)(high - 1) > hi) { /* high - 1: no overflow */
        nb__error(NB_ERR_INVALID, "nb_randint: needs low < high with [low, high) within the "
                  "integers %s holds ([%.0f, %.0f]), got [%lld, %lld)", nb_dtype_name(dtype), lo,
                  hi, (long long)low, (long long)high);
        return NULL;
    }
    return draw(NB_OP_RANDINT, ndim, shape, (double)low, (double)high, dtype, device, gen);
}

nb_tensor *nb_randperm(int64_t n, nb_dtype dtype, nb_device device, nb_generator *gen) {
    double lo = 0, hi = 0;
    if (nb_dtype_is_valid(dtype)) nb__integer_range(dtype, &lo, &hi);
    if (n < 0 || (n > 0 && (double)(n - 1) > hi)) {
        nb__error(NB_ERR_INVALID, "nb_randperm: needs 0 <= n with n - 1 within the integers %s "
                  "holds ([%.0f, %.0f]), got n = %lld", nb_dtype_name(dtype), lo, hi, (long long)n);
        return NULL;
    }
    return draw(NB_OP_RANDPERM, 1, &n, 0, 0, dtype, device, gen);
}

nb_status nb__multinomial_failed(int64_t row, int problem, int64_t positive, int64_t samples) {
    switch (problem) {
    case NB_MULTINOMIAL_BAD_WEIGHT:
        return nb__error(NB_ERR_INVALID, "nb_multinomial: row %lld has a negative, infinite or NaN "
                         "weight", (long long)row);
    case NB_MULTINOMIAL_ZERO_SUM:
        return nb__error(NB_ERR_INVALID, "nb_multinomial: the weights of row %lld sum to 0",
                         (long long)row);
    default:
        return nb__error(NB_ERR_INVALID, "nb_multinomial: row %lld has %lld positive weights, fewer "
                         "than the %lld samples drawn without replacement", (long long)row,
                         (long long)positive, (long long)samples);
    }
}

nb_tensor *nb_multinomial(const nb_tensor *weights, int64_t num_samples, bool replacement,
                          nb_generator *gen) {
    const char *fn = "nb_multinomial";
    if (!weights) {
        nb__error(NB_ERR_INVALID, "%s: weights is NULL", fn);
        return NULL;
    }
    if (!check_float(fn, weights->dtype)) return NULL;
    int64_t categories = weights->ndim ? weights->shape[weights->ndim - 1] : 0;
    if ((weights->ndim != 1 && weights->ndim != 2) || categories == 0) {
        nb__error(NB_ERR_SHAPE, "%s: needs weights [categories] or [rows, categories] with at least "
                  "one category, got %s", fn, nb__tensor_shape_str(weights));
        return NULL;
    }
    if (num_samples < 1 || (!replacement && num_samples > categories)) {
        nb__error(NB_ERR_INVALID, "%s: needs 1 <= num_samples%s, got %lld", fn,
                  replacement ? "" : " <= categories without replacement", (long long)num_samples);
        return NULL;
    }
    int64_t rows = weights->ndim == 2 ? weights->shape[0] : 1;
    int64_t draws;
    if (__builtin_mul_overflow(rows, num_samples, &draws)) {
        nb__error(NB_ERR_OVERFLOW, "%s: %lld rows of %lld samples overflow", fn, (long long)rows,
                  (long long)num_samples);
        return NULL;
    }
    int64_t shape[2] = {rows, num_samples}, flat[2] = {rows, categories};
    bool was = nb_set_grad_enabled(false);
    nb_tensor *shaped = nb_reshape(weights, 2, flat);
    nb_tensor *dense = shaped ? nb_contiguous(shaped) : NULL;
    nb_set_grad_enabled(was);
    nb_release(shaped);
    nb_tensor *out = NULL;
    if (dense) {
        nb_op_args args = {.op = NB_OP_MULTINOMIAL, .dtype = weights->dtype, .in = {dense}, .n_in = 1};
        args.attrs.multinomial.samples = num_samples;
        args.attrs.multinomial.replacement = replacement;
        args.attrs.multinomial.offset =
            nb__generator_reserve(gen, (uint64_t)draws, &args.attrs.multinomial.seed);
        nb__dispatch_new(fn, &args, 2, shape, NB_I64, &out);
    }
    nb_release(dense);
    if (out && weights->ndim == 1) {
        nb_tensor *row = nb_reshape(out, 1, &num_samples);
        nb_release(out);
        out = row;
    }
    return out;
}
