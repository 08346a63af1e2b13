/* A readable printout like PyTorch's repr:
 *   tensor([[ 0.1000, -2.5000],
 *           [ 3.0000,  4.0000]], requires_grad=True)
 * Float values share one format chosen from the whole tensor (integers as
 * "3.", else 4 decimals, else scientific for a wide range); tensors of more
 * than 1000 elements show 3 entries at each end of every dim. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SUMMARY_THRESHOLD 1000
#define EDGE_ITEMS 3

typedef struct text {
    char *data;
    size_t length, capacity;
    bool failed;
} text;

static void append(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text *t, const char *fmt, ...) {
    if (t->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->length + (size_t)n + 1 > t->capacity) {
        size_t capacity = (t->length + (size_t)n + 1) * 2;
        char *data = nb__realloc(t->data, capacity);
        if (!data) {
            t->failed = true;
            return;
        }
        t->data = data;
        t->capacity = capacity;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->length, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->length += (size_t)n;
}

typedef struct layout {
    const nb_tensor *t;
    const double *f; /* values of a float tensor */
    const int64_t *i; /* values of an integer or bool tensor */
    bool summarize;
    char format[16];
    int width;
} layout;

static void format_value(const layout *l, int64_t index, char *buf, size_t size) {
    if (l->t->dtype == NB_BOOL) {
        snprintf(buf, size, "%s", l->i[index] ? "True" : "False");
    } else if (l->i) {
        snprintf(buf, size, "%lld", (long long)l->i[index]);
    } else {
        double v = l->f[index];
        if (isnan(v)) snprintf(buf, size, "nan");
        else if (isinf(v)) snprintf(buf, size, v > 0 ? "inf" : "-inf");
        else snprintf(buf, size, l->format, v);
    }
}

static bool shown(const layout *l, int dim, int64_t k) {
    int64_t n = l->t->shape[dim];
    return !l->summarize || n <= 2 * EDGE_ITEMS || k < EDGE_ITEMS || k >= n - EDGE_ITEMS;
}

/* Whether the row-major linear-th element appears in the printout. */
static bool element_shown(const layout *l, int64_t linear) {
    for (int d = l->t->ndim - 1; d >= 0 && l->summarize; d--) {
        if (!shown(l, d, linear % l->t->shape[d])) return false;
        linear /= l->t->shape[d];
    }
    return true;
}

/* Float format and the column width, from the values that will be shown. */
static void choose_format(layout *l, int64_t numel) {
    double max_abs = 0, min_abs = INFINITY;
    bool all_integral = true;
    for (int64_t k = 0; l->f && k < numel; k++) {
        if (!element_shown(l, k)) continue;
        double a = fabs(l->f[k]);
        if (!isfinite(a)) continue;
        max_abs = fmax(max_abs, a);
        if (a > 0) min_abs = fmin(min_abs, a);
        all_integral = all_integral && a == floor(a);
    }
    if (all_integral && max_abs < 1e8) snprintf(l->format, sizeof l->format, "%%.0f.");
    else if (max_abs >= 1e8 || (min_abs < 1e-4) || max_abs / min_abs > 1e3)
        snprintf(l->format, sizeof l->format, "%%.4e");
    else snprintf(l->format, sizeof l->format, "%%.4f");
    char buf[64];
    l->width = 1;
    for (int64_t k = 0; k < numel; k++) {
        if (!element_shown(l, k)) continue;
        format_value(l, k, buf, sizeof buf);
        l->width = (int)strlen(buf) > l->width ? (int)strlen(buf) : l->width;
    }
}

static void write_dim(text *out, const layout *l, int dim, int64_t base, int indent) {
    const nb_tensor *t = l->t;
    append(out, "[");
    int64_t n = t->shape[dim], stride = nb__numel(t->ndim - dim - 1, t->shape + dim + 1);
    bool skipped = false;
    for (int64_t k = 0; k < n; k++) {
        if (!shown(l, dim, k)) {
            if (!skipped) {
                append(out, dim == t->ndim - 1 ? "..., " : "...,\n%*s", indent + 1, "");
                skipped = true;
            }
            continue;
        }
        if (dim == t->ndim - 1) {
            char buf[64];
            format_value(l, base + k, buf, sizeof buf);
            append(out, "%*s", l->width, buf);
        } else {
            write_dim(out, l, dim + 1, base + k * stride, indent + 1);
        }
        if (k < n - 1) {
            if (dim == t->ndim - 1) append(out, ", ");
            else append(out, ",%.*s%*s", t->ndim - dim - 1, "\n\n\n\n\n\n\n\n", indent + 1, "");
        }
    }
    append(out, "]");
}

static void write_suffix(text *out, const nb_tensor *t) {
    bool default_dtype = t->dtype == NB_F32 || t->dtype == NB_I64 || t->dtype == NB_BOOL;
    if (nb_numel(t) == 0 && t->ndim != 1) {
        append(out, ", size=(");
        for (int d = 0; d < t->ndim; d++) append(out, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        append(out, ")");
    }
    if (t->storage->device.type != NB_DEVICE_CPU)
        append(out, ", device='%s'", nb__device_name(t->storage->device));
    if (!default_dtype) append(out, ", dtype=%s", nb_dtype_name(t->dtype));
    if (t->grad_fn) append(out, ", grad_fn=<%s>", nb_op_name(t->grad_fn->op));
    else if (t->requires_grad) append(out, ", requires_grad=True");
}

/* The values as doubles or int64s, in row-major order, on the host. */
static nb_status host_values(const nb_tensor *t, void **values) {
    nb_dtype as = nb_dtype_is_float(t->dtype) ? NB_F64 : NB_I64;
    int64_t n = nb_numel(t);
    *values = nb__malloc((size_t)(n ? n : 1) * 8);
    NB_CHECK(*values, NB_ERR_OOM, "nb_format: out of host memory for %lld values", (long long)n);
    bool was = nb_set_grad_enabled(false);
    nb_tensor *converted = nb_cast(t, as);
    nb_set_grad_enabled(was);
    nb_status status = converted ? nb_to_host(converted, *values, (size_t)n * 8) : nb_last_status();
    nb_release(converted);
    if (status != NB_OK) {
        free(*values);
        *values = NULL;
    }
    return status;
}

int nb_format(const nb_tensor *t, char *buf, size_t size) {
    if (!t) {
        nb__error(NB_ERR_INVALID, "nb_format: tensor is NULL");
        return -1;
    }
    void *values;
    if (host_values(t, &values) != NB_OK) return -1;
    int64_t numel = nb_numel(t);
    layout l = {.t = t, .summarize = numel > SUMMARY_THRESHOLD};
    if (nb_dtype_is_float(t->dtype)) l.f = values;
    else l.i = values;
    choose_format(&l, numel);
    text out = {0};
    append(&out, "tensor(");
    if (t->ndim == 0) {
        char value[64];
        format_value(&l, 0, value, sizeof value);
        append(&out, "%s", value);
    } else if (numel == 0) {
        append(&out, "[]");
    } else {
        write_dim(&out, &l, 0, 0, 7);
    }
    write_suffix(&out, t);
    append(&out, ")");
    free(values);
    if (out.failed) {
        free(out.data);
        nb__error(NB_ERR_OOM, "nb_format: out of host memory for the text");
        return -1;
    }
    if (buf && size) snprintf(buf, size, "%s", out.data);
    int length = (int)out.length;
    free(out.data);
    return length;
}

static nb_status print_to(const char *fn, FILE *stream, const nb_tensor *t) {
    NB_CHECK(stream, NB_ERR_INVALID, "%s: stream is NULL", fn);
    const char *outer = nb__enter(fn);
    int length = nb_format(t, NULL, 0);
    nb__leave(outer);
    if (length < 0) return nb_last_status();
    char *text = nb__malloc((size_t)length + 1);
    NB_CHECK(text, NB_ERR_OOM, "%s: out of host memory for %d bytes", fn, length + 1);
    nb_format(t, text, (size_t)length + 1);
    bool written = fprintf(stream, "%s\n", text) == length + 1 && fflush(stream) == 0;
    free(text);
    NB_CHECK(written, NB_ERR_IO, "%s: the stream could not be written (%d bytes)", fn, length + 1);
    return NB_OK;
}

nb_status nb_fprint(FILE *stream, const nb_tensor *t) { return print_to("nb_fprint", stream, t); }

nb_status nb_print(const nb_tensor *t) { return print_to("nb_print", stdout, t); }
