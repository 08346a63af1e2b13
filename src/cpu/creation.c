/* Creation kernels: fill (any strides), arange and linspace (contiguous). */
#include "cpu.h"

static void fill_chunk(int64_t n, void *out, const void *const *in, const nb_op_args *args) {
    (void)in;
    double *o = out;
    for (int64_t i = 0; i < n; i++) o[i] = args->attrs.fill.value;
}

/* Fills in f64 so every dtype gets the correctly rounded value; integers
 * saturate like any float-to-integer conversion. */
nb_status nb__cpu_fill(const nb_op_args *args) {
    nb__cpu_map(args, NB_F64, fill_chunk);
    return NB_OK;
}

/* arange: start + i * step. linspace: the same from the nearer end, so both
 * endpoints are exact (as PyTorch does). */
nb_status nb__cpu_range(const nb_op_args *args) {
    nb_tensor *out = args->out;
    int64_t n = nb_numel(out);
    double start = args->attrs.range.start, step = args->attrs.range.step;
    double end = args->attrs.range.end;
    bool symmetric = args->op == NB_OP_LINSPACE;
    char *base = nb__data(out);
    size_t size = nb_dtype_size(out->dtype);
#pragma omp parallel for schedule(static) if (n >= NB_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        double v = symmetric && n > 1 && i >= n / 2 ? end - (double)(n - 1 - i) * step
                                           : start + (double)i * step;
        nb__cpu_convert(out->dtype, base + i * (int64_t)size, 1, NB_F64, &v, 1, 1);
    }
    return NB_OK;
}
