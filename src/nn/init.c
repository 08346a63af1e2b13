/* Initializers (include/nabla/nn.h): PyTorch's torch.nn.init and Keras's
 * variance scaling. Each draws from the generator on the CPU in double,
 * shapes the values on the host and copies them into the tensor (any float
 * dtype, any device), in place and without autograd. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define SQRT2 1.41421356237309504880

/* ---- the copy into the tensor ---- */

/* n doubles of t's numel from the generator: uniform in [0, 1) or standard
 * normal, into *out (free it). */
static nb_status draws(const char *fn, const nb_tensor *t, bool normal, nb_generator *gen, double **out) {
    int64_t n = nb_numel(t);
    nb_tensor *d = normal ? nb_normal(1, &n, 0, 1, NB_F64, nb_cpu(), gen)
                          : nb_uniform(1, &n, 0, 1, NB_F64, nb_cpu(), gen);
    NB_CHECK(d, nb_last_status(), "%s: %s", fn, nb_last_error());
    double *values = nb__malloc((size_t)(n ? n : 1) * sizeof *values);
    nb_status status = values ? nb_to_host(d, values, (size_t)n * sizeof *values)
                              : nb__error(NB_ERR_OOM, "%s: out of host memory for %lld values", fn, (long long)n);
    nb_release(d);
    if (status != NB_OK) free(values);
    else *out = values;
    return status;
}

/* Copies the doubles values (t's numel, row-major) into t and frees them. */
static nb_status fill(const char *fn, nb_tensor *t, double *values) {
    nb_tensor *host = nb_from_host(values, t->ndim, t->shape, NB_F64, nb_cpu());
    free(values);
    NB_CHECK(host, nb_last_status(), "%s: %s", fn, nb_last_error());
    bool was = nb_set_grad_enabled(false);
    nb_status status = nb_copy_(t, host);
    nb_set_grad_enabled(was);
    nb_release(host);
    if (status == NB_OK) nb__bump_version(t);
    return status;
}

static nb_status check_float(const char *fn, const nb_tensor *t) {
    NB_CHECK(t, NB_ERR_INVALID, "%s: tensor is NULL", fn);
    NB_CHECK(nb_dtype_is_float(t->dtype), NB_ERR_DTYPE, "%s: needs a float tensor, got %s", fn,
             nb_dtype_name(t->dtype));
    return NB_OK;
}

/* ---- fans and gains ---- */

static nb_status fans(const char *fn, const nb_tensor *t, int64_t *fan_in, int64_t *fan_out) {
    NB_CHECK(t && fan_in && fan_out, NB_ERR_INVALID, "%s: %s is NULL", fn, t ? "an output" : "tensor");
    NB_CHECK(t->ndim >= 2, NB_ERR_SHAPE, "%s: needs a tensor of at least 2 dims (PyTorch's rule), got %s", fn,
             nb__tensor_shape_str(t));
    int64_t field = nb__numel(t->ndim - 2, t->shape + 2);
    *fan_in = t->shape[1] * field;
    *fan_out = t->shape[0] * field;
    return NB_OK;
}

nb_status nb_init_fans(const nb_tensor *t, int64_t *fan_in, int64_t *fan_out) {
    return fans("nb_init_fans", t, fan_in, fan_out);
}

static nb_status gain_of(const char *fn, nb_activation kind, double param, double *gain) {
    NB_CHECK(gain, NB_ERR_INVALID, "%s: gain is NULL", fn);
    switch ((int)kind) {
    case NB_INIT_LINEAR:
    case NB_ACT_SIGMOID: *gain = 1; return NB_OK;
    case NB_ACT_TANH: *gain = 5.0 / 3; return NB_OK;
    case NB_ACT_RELU: *gain = SQRT2; return NB_OK;
    case NB_ACT_SELU: *gain = 0.75; return NB_OK;
    case NB_ACT_LEAKY_RELU:
        NB_CHECK(isfinite(param), NB_ERR_INVALID, "%s: the negative slope must be finite, got %g", fn, param);
        *gain = sqrt(2 / (1 + param * param));
        return NB_OK;
    default:
        return nb__error(NB_ERR_INVALID, "%s: PyTorch's calculate_gain has no gain for activation %d (linear, "
                         "sigmoid, tanh, relu, leaky_relu, selu)", fn, (int)kind);
    }
}

nb_status nb_init_gain(nb_activation kind, double param, double *gain) {
    return gain_of("nb_init_gain", kind, param, gain);
}

/* The fan of mode. */
static nb_status fan_of(const char *fn, const nb_tensor *t, nb_fan_mode mode, double *fan) {
    int64_t in = 0, out = 0;
    NB_TRY(fans(fn, t, &in, &out));
    NB_CHECK((unsigned)mode <= NB_FAN_AVG, NB_ERR_INVALID, "%s: mode %d is not an nb_fan_mode", fn, (int)mode);
    *fan = mode == NB_FAN_IN ? (double)in : mode == NB_FAN_OUT ? (double)out : (in + out) / 2.0;
    NB_CHECK(*fan > 0, NB_ERR_SHAPE, "%s: the fan of %s is 0", fn, nb__tensor_shape_str(t));
    return NB_OK;
}

/* ---- distributions ---- */

nb_status nb_init_uniform(nb_tensor *t, double low, double high, nb_generator *gen) {
    const char *fn = "nb_init_uniform";
    NB_TRY(check_float(fn, t));
    NB_CHECK(isfinite(low) && isfinite(high) && low <= high, NB_ERR_INVALID,
             "%s: needs finite bounds with low <= high, got %g and %g", fn, low, high);
    double *v;
    NB_TRY(draws(fn, t, false, gen, &v));
    for (int64_t i = 0; i < nb_numel(t); i++) v[i] = low + (high - low) * v[i];
    return fill(fn, t, v);
}

/* erf^-1(y) for y in (-1, 1): Giles's single-precision approximation
 * ("Approximating the erfinv function", 2010), then two Newton steps on erf. */
static double erfinv(double y) {
    double w = -log((1 - y) * (1 + y)), x;
    if (w < 5) {
        w -= 2.5;
        x = 2.81022636e-08;
        x = 3.43273939e-07 + x * w, x = -3.5233877e-06 + x * w, x = -4.39150654e-06 + x * w;
        x = 0.00021858087 + x * w, x = -0.00125372503 + x * w, x = -0.00417768164 + x * w;
        x = 0.246640727 + x * w, x = 1.50140941 + x * w;
    } else {
        w = sqrt(w) - 3;
        x = -0.000200214257;
        x = 0.000100950558 + x * w, x = 0.00134934322 + x * w, x = -0.00367342844 + x * w;
        x = 0.00573950773 + x * w, x = -0.0076224613 + x * w, x = 0.00943887047 + x * w;
        x = 1.00167406 + x * w, x = 2.83297682 + x * w;
    }
    x *= y;
    for (int i = 0; i < 2; i++) x -= (erf(x) - y) / (1.12837916709551257390 * exp(-x * x));
    return x;
}

static nb_status trunc_normal(const char *fn, nb_tensor *t, double mean, double std, double a, double b,
                              nb_generator *gen) {
    NB_TRY(check_float(fn, t));
    NB_CHECK(isfinite(mean) && isfinite(std) && std >= 0 && a < b && !isnan(a) && !isnan(b), NB_ERR_INVALID,
             "%s: needs a finite mean, std >= 0 and bounds a < b, got %g, %g, %g and %g", fn, mean, std, a, b);
    /* inverse CDF over [Phi((a - mean) / std), Phi((b - mean) / std)], as PyTorch's trunc_normal_ */
    double lo = std > 0 ? erf((a - mean) / std / SQRT2) : -1, hi = std > 0 ? erf((b - mean) / std / SQRT2) : 1;
    NB_CHECK(hi > lo, NB_ERR_INVALID, "%s: [%g, %g] holds no mass of N(%g, %g^2) in double", fn, a, b, mean, std);
    double *v;
    NB_TRY(draws(fn, t, false, gen, &v));
    for (int64_t i = 0; i < nb_numel(t); i++) {
        double u = lo + (hi - lo) * v[i];
        u = u <= -1 ? nextafter(-1, 0) : u >= 1 ? nextafter(1, 0) : u;
        double x = mean + std * SQRT2 * erfinv(u);
        v[i] = x < a ? a : x > b ? b : x;
    }
    return fill(fn, t, v);
}

nb_status nb_init_trunc_normal(nb_tensor *t, double mean, double std, double a, double b, nb_generator *gen) {
    return trunc_normal("nb_init_trunc_normal", t, mean, std, a, b, gen);
}

/* Normal (or uniform with the same variance) of std, truncated at 2 std
 * with truncated (Keras's truncated_normal). */
static nb_status scaled(const char *fn, nb_tensor *t, double std, nb_init_distribution distribution,
                        nb_generator *gen) {
    if (distribution == NB_INIT_TRUNCATED_NORMAL) {
        /* Keras: the std of N(0, 1) truncated to [-2, 2] is 0.87962566103423978 */
        double s = std / 0.87962566103423978;
        return trunc_normal(fn, t, 0, s, -2 * s, 2 * s, gen);
    }
    bool uniform = distribution == NB_INIT_UNIFORM;
    double *v;
    NB_TRY(draws(fn, t, !uniform, gen, &v));
    for (int64_t i = 0; i < nb_numel(t); i++) v[i] = uniform ? sqrt(3.0) * std * (2 * v[i] - 1) : std * v[i];
    return fill(fn, t, v);
}

nb_status nb_init_xavier(nb_tensor *t, double gain, nb_init_distribution distribution, nb_generator *gen) {
    const char *fn = "nb_init_xavier";
    double fan = 0;
    NB_TRY(check_float(fn, t));
    NB_TRY(fan_of(fn, t, NB_FAN_AVG, &fan));
    NB_CHECK(isfinite(gain) && gain >= 0, NB_ERR_INVALID, "%s: gain must be finite and >= 0, got %g", fn, gain);
    NB_CHECK((unsigned)distribution <= NB_INIT_TRUNCATED_NORMAL, NB_ERR_INVALID,
             "%s: distribution %d is not an nb_init_distribution", fn, (int)distribution);
    /* Glorot and Bengio (2010): var = gain^2 2 / (fan_in + fan_out) */
    return scaled(fn, t, gain / sqrt(fan), distribution, gen);
}

nb_status nb_init_kaiming(nb_tensor *t, const nb_kaiming_options *o, nb_generator *gen) {
    const char *fn = "nb_init_kaiming";
    nb_kaiming_options opts = o ? *o : (nb_kaiming_options){0};
    double fan = 0, gain = 0;
    NB_TRY(check_float(fn, t));
    NB_CHECK(opts.mode != NB_FAN_AVG, NB_ERR_INVALID, "%s: mode must be NB_FAN_IN or NB_FAN_OUT", fn);
    NB_TRY(fan_of(fn, t, opts.mode, &fan));
    NB_CHECK((unsigned)opts.distribution <= NB_INIT_TRUNCATED_NORMAL, NB_ERR_INVALID,
             "%s: distribution %d is not an nb_init_distribution", fn, (int)opts.distribution);
    /* PyTorch's default nonlinearity: leaky_relu with slope a (a = 0: relu's sqrt 2) */
    nb_activation kind = opts.nonlinearity ? opts.nonlinearity : NB_ACT_LEAKY_RELU;
    NB_TRY(gain_of(fn, kind, opts.a, &gain));
    return scaled(fn, t, gain / sqrt(fan), opts.distribution, gen);
}

static nb_status variance_scaling(const char *fn, nb_tensor *t, double scale, nb_fan_mode mode,
                                  nb_init_distribution distribution, nb_generator *gen) {
    double fan = 0;
    NB_TRY(check_float(fn, t));
    NB_CHECK(isfinite(scale) && scale > 0, NB_ERR_INVALID, "%s: scale must be finite and > 0, got %g", fn, scale);
    NB_TRY(fan_of(fn, t, mode, &fan));
    NB_CHECK((unsigned)distribution <= NB_INIT_TRUNCATED_NORMAL, NB_ERR_INVALID,
             "%s: distribution %d is not an nb_init_distribution", fn, (int)distribution);
    return scaled(fn, t, sqrt(scale / fan), distribution, gen);
}

nb_status nb_init_variance_scaling(nb_tensor *t, double scale, nb_fan_mode mode, nb_init_distribution distribution,
                                   nb_generator *gen) {
    return variance_scaling("nb_init_variance_scaling", t, scale, mode, distribution, gen);
}

nb_status nb_init_lecun(nb_tensor *t, nb_init_distribution distribution, nb_generator *gen) {
    return variance_scaling("nb_init_lecun", t, 1, NB_FAN_IN, distribution, gen);
}

/* ---- structured ---- */

/* The thin Q (m x n) of the m x n (m >= n) row-major a by Householder
 * reflections (a is overwritten), column j times the sign of R's diagonal
 * entry j, as PyTorch's orthogonal_; work holds 2 n + n m doubles. */
static void householder_q(double *a, int64_t m, int64_t n, double *q, double *work) {
    double *vv = work, *sign = work + n, *vs = work + 2 * n;
    for (int64_t k = 0; k < n; k++) {
        /* H_k = I - 2 v v^T / (v^T v) zeroes column k below the diagonal; R_kk = alpha */
        double norm = 0, *v = vs + k * m;
        for (int64_t i = k; i < m; i++) norm += a[i * n + k] * a[i * n + k];
        double alpha = a[k * n + k] > 0 ? -sqrt(norm) : sqrt(norm);
        sign[k] = alpha < 0 ? -1 : 1;
        vv[k] = 0;
        for (int64_t i = 0; i < m; i++) v[i] = i < k ? 0 : a[i * n + k] - (i == k ? alpha : 0);
        for (int64_t i = k; i < m; i++) vv[k] += v[i] * v[i];
        for (int64_t j = k; j < n && vv[k] > 0; j++) {
            double dot = 0;
            for (int64_t i = k; i < m; i++) dot += v[i] * a[i * n + j];
            for (int64_t i = k; i < m; i++) a[i * n + j] -= 2 * dot / vv[k] * v[i];
        }
    }
    /* Q = H_0 H_1 ... H_(n-1) times the first n columns of I, the last reflection first */
    for (int64_t i = 0; i < m * n; i++) q[i] = i / n == i % n;
    for (int64_t k = n - 1; k >= 0; k--) {
        const double *v = vs + k * m;
        for (int64_t j = 0; j < n && vv[k] > 0; j++) {
            double dot = 0;
            for (int64_t i = k; i < m; i++) dot += v[i] * q[i * n + j];
            for (int64_t i = k; i < m; i++) q[i * n + j] -= 2 * dot / vv[k] * v[i];
        }
    }
    for (int64_t i = 0; i < m * n; i++) q[i] *= sign[i % n];
}

nb_status nb_init_orthogonal(nb_tensor *t, double gain, nb_generator *gen) {
    const char *fn = "nb_init_orthogonal";
    NB_TRY(check_float(fn, t));
    NB_CHECK(t->ndim >= 2, NB_ERR_SHAPE, "%s: needs at least 2 dims, got %s", fn, nb__tensor_shape_str(t));
    NB_CHECK(isfinite(gain), NB_ERR_INVALID, "%s: gain must be finite, got %g", fn, gain);
    int64_t rows = t->shape[0], cols = nb_numel(t) / (rows ? rows : 1);
    if (rows == 0 || cols == 0) return NB_OK;
    bool wide = rows < cols; /* then the QR is of the transpose */
    int64_t m = wide ? cols : rows, n = wide ? rows : cols;
    NB_CHECK(n <= INT64_MAX / 8 / (m + 2), NB_ERR_INVALID, "%s: %s is too large", fn, nb__tensor_shape_str(t));
    double *v, *a = nb__malloc((size_t)(m * n) * sizeof *a), *q = nb__malloc((size_t)(m * n) * sizeof *q);
    double *work = nb__malloc((size_t)(n * (m + 2)) * sizeof *work);
    nb_status status = a && q && work ? draws(fn, t, true, gen, &v)
                                      : nb__error(NB_ERR_OOM, "%s: out of host memory for %s", fn,
                                                  nb__tensor_shape_str(t));
    if (status == NB_OK) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) a[wide ? c * n + r : r * n + c] = v[r * cols + c];
        householder_q(a, m, n, q, work);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) v[r * cols + c] = gain * q[wide ? c * n + r : r * n + c];
        status = fill(fn, t, v);
    }
    free(a);
    free(q);
    free(work);
    return status;
}

nb_status nb_init_eye(nb_tensor *t) {
    const char *fn = "nb_init_eye";
    NB_TRY(check_float(fn, t));
    NB_CHECK(t->ndim == 2, NB_ERR_SHAPE, "%s: needs a 2-dim tensor, got %s", fn, nb__tensor_shape_str(t));
    double *v = nb__calloc((size_t)(nb_numel(t) ? nb_numel(t) : 1), sizeof *v);
    NB_CHECK(v, NB_ERR_OOM, "%s: out of host memory for %s", fn, nb__tensor_shape_str(t));
    for (int64_t i = 0; i < t->shape[0] && i < t->shape[1]; i++) v[i * t->shape[1] + i] = 1;
    return fill(fn, t, v);
}

nb_status nb_init_dirac(nb_tensor *t, int64_t groups) {
    const char *fn = "nb_init_dirac";
    NB_TRY(check_float(fn, t));
    NB_CHECK(t->ndim >= 3 && t->ndim <= 5, NB_ERR_SHAPE, "%s: needs a 3- to 5-dim weight, got %s", fn,
             nb__tensor_shape_str(t));
    NB_CHECK(groups > 0 && t->shape[0] % groups == 0, NB_ERR_INVALID,
             "%s: groups must be > 0 and divide the %lld output channels, got %lld", fn, (long long)t->shape[0],
             (long long)groups);
    double *v = nb__calloc((size_t)(nb_numel(t) ? nb_numel(t) : 1), sizeof *v);
    NB_CHECK(v, NB_ERR_OOM, "%s: out of host memory for %s", fn, nb__tensor_shape_str(t));
    int64_t per_group = t->shape[0] / groups, field = nb__numel(t->ndim - 2, t->shape + 2), center = 0;
    for (int d = 2; d < t->ndim; d++) center = center * t->shape[d] + t->shape[d] / 2;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t c = 0; c < per_group && c < t->shape[1]; c++)
            v[((g * per_group + c) * t->shape[1] + c) * field + center] = 1;
    return fill(fn, t, v);
}

/* ---- PyTorch's defaults for Linear and the convolutions ---- */

/* Kaiming-uniform with a = sqrt 5 for the weight (bound 1 / sqrt(fan_in)),
 * uniform in +-1 / sqrt(fan_in) for the bias: reset_parameters of PyTorch's
 * Linear, Conv2d and ConvTranspose2d. */
static nb_status pytorch_default(nb_module *m, nb_generator *gen) {
    nb_tensor *w = nb__module_param(m, "weight"), *b = nb__module_param(m, "bias");
    int64_t fan_in = 0, fan_out = 0;
    NB_TRY(fans("nb_init_pytorch_default", w, &fan_in, &fan_out));
    double bound = fan_in > 0 ? 1 / sqrt((double)fan_in) : 0;
    NB_TRY(nb_init_uniform(w, -bound, bound, gen));
    return b ? nb_init_uniform(b, -bound, bound, gen) : NB_OK;
}

nb_status nb_init_pytorch_default(nb_module *m, nb_generator *gen) {
    NB_CHECK(m, NB_ERR_INVALID, "nb_init_pytorch_default: module is NULL");
    const char *type = m->type;
    if (!strcmp(type, "Linear") || !strcmp(type, "Conv2d") || !strcmp(type, "ConvTranspose2d"))
        NB_TRY(pytorch_default(m, gen));
    for (int i = 0; i < m->n_children; i++) NB_TRY(nb_init_pytorch_default(m->children[i], gen));
    return NB_OK;
}

/* ---- the first three, in nb_init_normal's terms ---- */

nb_status nb_init_normal(nb_tensor *t, double mean, double std, nb_generator *gen) {
    NB_CHECK(t, NB_ERR_INVALID, "nb_init_normal: tensor is NULL");
    NB_CHECK(nb_dtype_is_float(t->dtype), NB_ERR_DTYPE, "nb_init_normal: needs a float tensor, got %s",
             nb_dtype_name(t->dtype));
    NB_CHECK(std >= 0 && isfinite(mean) && isfinite(std), NB_ERR_INVALID,
             "nb_init_normal: needs a finite mean and std >= 0, got %g and %g", mean, std);
    bool was = nb_set_grad_enabled(false);
    nb_tensor *values = nb_normal(t->ndim, t->shape, mean, std, t->dtype, t->storage->device, gen);
    nb_status status = values ? nb__copy_into(t, values) : nb_last_status();
    nb_set_grad_enabled(was);
    nb_release(values);
    if (status == NB_OK) nb__bump_version(t);
    return status;
}

nb_status nb_init_kaiming_normal(nb_tensor *t, int64_t fan_in, nb_generator *gen) {
    NB_CHECK(t && fan_in > 0, NB_ERR_INVALID, "nb_init_kaiming_normal: needs a tensor and fan_in "
             "> 0, got %lld", (long long)fan_in);
    return nb_init_normal(t, 0, sqrt(2.0 / (double)fan_in), gen);
}

nb_status nb_init_constant(nb_tensor *t, double value) {
    NB_CHECK(t, NB_ERR_INVALID, "nb_init_constant: tensor is NULL");
    NB_TRY(nb__check_value("nb_init_constant", value, t->dtype));
    NB_TRY(nb__fill(t, value));
    nb__bump_version(t);
    return NB_OK;
}
