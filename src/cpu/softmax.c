/* softmax and log_softmax along one dim of a contiguous input viewed as
 * [outer, size, inner]. Each of the outer*inner rows is read once into a
 * double buffer, shifted by its maximum for stability, and written once. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

static void softmax_row(nb_op op, double *row, int64_t n) {
    double max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = row[i] > max ? row[i] : max;
    if (max == -INFINITY) max = 0; /* an all -inf row gives NaN, as in PyTorch */
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp(row[i] - max);
    if (op == NB_OP_LOG_SOFTMAX) {
        double log_sum = log(sum) + max;
        for (int64_t i = 0; i < n; i++) row[i] -= log_sum;
    } else {
        for (int64_t i = 0; i < n; i++) row[i] = exp(row[i] - max) / sum;
    }
}

nb_status nb__cpu_softmax(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    nb_tensor *out = args->out;
    int dim = args->attrs.axis.dim;
    int64_t size = x->ndim ? x->shape[dim] : 1;
    int64_t inner = x->ndim ? nb__numel(x->ndim - dim - 1, x->shape + dim + 1) : 1;
    int64_t rows = nb_numel(x) / size;
    size_t elem = nb_dtype_size(x->dtype);
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (nb_numel(x) >= NB_CPU_PARALLEL_MIN)
    {
        double *row = nb__malloc((size_t)size * sizeof *row);
        failed = !row;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!row) continue;
            int64_t start = (r / inner) * size * inner + r % inner;
            nb__cpu_convert(NB_F64, row, 1, x->dtype, nb__data(x) + start * (int64_t)elem, inner,
                            size);
            softmax_row(args->op, row, size);
            nb__cpu_convert(out->dtype, nb__data(out) + start * (int64_t)elem, inner, NB_F64, row,
                            1, size);
        }
        free(row);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "nb_%s: out of host memory for a row of %lld",
             nb_op_name(args->op), (long long)size);
    return NB_OK;
}
