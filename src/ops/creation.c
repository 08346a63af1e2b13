/* Creation ops: empty, zeros, ones, full, scalar, arange, linspace, eye. */
#include <math.h>

#include "../core/internal.h"

nb_status nb__fill(nb_tensor *t, double value) {
    nb_op_args args = {.op = NB_OP_FILL, .dtype = t->dtype, .out = t};
    args.attrs.fill.value = value;
    return nb__dispatch(&args);
}

static nb_tensor *filled(const char *fn, int ndim, const int64_t *shape, const double *value,
                         nb_dtype dtype, nb_device device) {
    nb_tensor *t = NULL;
    if (value && nb_dtype_is_valid(dtype) && nb__check_value(fn, *value, dtype) != NB_OK) return NULL;
    nb_status status = nb__tensor_new(fn, ndim, shape, dtype, device, &t);
    if (status == NB_OK && value) status = nb__fill(t, *value);
    return nb__unwrap(status, t);
}

nb_tensor *nb_empty(int ndim, const int64_t *shape, nb_dtype dtype, nb_device device) {
    return filled("nb_empty", ndim, shape, NULL, dtype, device);
}

nb_tensor *nb_zeros(int ndim, const int64_t *shape, nb_dtype dtype, nb_device device) {
    return filled("nb_zeros", ndim, shape, &(double){0}, dtype, device);
}

nb_tensor *nb_ones(int ndim, const int64_t *shape, nb_dtype dtype, nb_device device) {
    return filled("nb_ones", ndim, shape, &(double){1}, dtype, device);
}

nb_tensor *nb_full(int ndim, const int64_t *shape, double value, nb_dtype dtype,
                   nb_device device) {
    return filled("nb_full", ndim, shape, &value, dtype, device);
}

nb_tensor *nb_scalar(double value, nb_dtype dtype, nb_device device) {
    return filled("nb_scalar", 0, NULL, &value, dtype, device);
}

static nb_tensor *range(nb_op op, int64_t count, double start, double step, double end,
                        nb_dtype dtype, nb_device device) {
    nb_tensor *t = NULL;
    nb_status status = nb__tensor_new(nb__op_fn(op), 1, &count, dtype, device, &t);
    if (status == NB_OK) {
        nb_op_args args = {.op = op, .dtype = dtype, .out = t};
        args.attrs.range.start = start;
        args.attrs.range.step = step;
        args.attrs.range.end = end;
        status = nb__dispatch(&args);
    }
    return nb__unwrap(status, t);
}

nb_tensor *nb_arange(double start, double end, double step, nb_dtype dtype, nb_device device) {
    if (!isfinite(start) || !isfinite(end) || !isfinite(step) || step == 0) {
        nb__error(NB_ERR_INVALID, "nb_arange: start %g, end %g and step %g must be finite, step "
                  "nonzero", start, end, step);
        return NULL;
    }
    double count = ceil((end - start) / step);
    if (count < 0) {
        nb__error(NB_ERR_INVALID, "nb_arange: step %g moves away from end %g (start %g)", step,
                  end, start);
        return NULL;
    }
    if (count >= 0x1p62) {
        nb__error(NB_ERR_OVERFLOW, "nb_arange: %g elements are too many", count);
        return NULL;
    }
    return range(NB_OP_ARANGE, (int64_t)count, start, step, end, dtype, device);
}

nb_tensor *nb_linspace(double start, double end, int64_t steps, nb_dtype dtype, nb_device device) {
    if (!isfinite(start) || !isfinite(end) || steps < 0) {
        nb__error(NB_ERR_INVALID, "nb_linspace: start %g and end %g must be finite and steps %lld "
                  "non-negative", start, end, (long long)steps);
        return NULL;
    }
    double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
    return range(NB_OP_LINSPACE, steps, start, step, end, dtype, device);
}

/* zeros, then ones written through a strided view of the diagonal. */
nb_tensor *nb_eye(int64_t n, int64_t m, nb_dtype dtype, nb_device device) {
    int64_t shape[2] = {n, m};
    nb_tensor *t = NULL, *diagonal = NULL;
    nb_status status = nb__result(filled("nb_eye", 2, shape, &(double){0}, dtype, device), &t);
    int64_t length = n < m ? n : m;
    if (status == NB_OK && length > 0) {
        int64_t stride = m + 1; /* n * m elements exist: m < INT64_MAX */
        status = nb__tensor_view(t, 1, &length, &stride, 0, &diagonal);
        if (status == NB_OK) status = nb__fill(diagonal, 1);
    }
    nb_release(diagonal);
    return nb__unwrap(status, t);
}
