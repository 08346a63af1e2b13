/* Rotary position embedding: a table of cos and sin of every (position,
 * frequency) of the call, in double, then each row of x [..., S, D] rotated
 * pairwise: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), sin negated for
 * the inverse. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

/* cos at [p * half + i], sin at [(seq + p) * half + i]. */
static double *angle_table(int64_t seq, int64_t half, const nb_attrs *attrs) {
    double *table = nb__malloc(sizeof(double) * (size_t)(2 * seq * half + 1));
    if (!table) return NULL;
    double sign = attrs->rope.inverse ? -1 : 1;
    for (int64_t p = 0; p < seq; p++)
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)(attrs->rope.offset + p) * pow(attrs->rope.base, -(double)i / (double)half);
            table[p * half + i] = cos(angle);
            table[(seq + p) * half + i] = sign * sin(angle);
        }
    return table;
}

nb_status nb__cpu_rope(const nb_op_args *args) {
    const nb_tensor *x = args->in[0];
    int64_t dim = x->shape[x->ndim - 1], half = dim / 2, seq = x->shape[x->ndim - 2];
    int64_t rows = nb_numel(x) / dim;
    size_t size = nb__dtype_size(x->dtype);
    double *table = angle_table(seq, half, &args->attrs);
    NB_CHECK(table, NB_ERR_OOM, "nb_rope: out of host memory for the angles of x %s",
             nb__tensor_shape_str(x));
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (rows * dim >= NB_CPU_PARALLEL_MIN)
    {
        double *row = nb__malloc(sizeof(double) * (size_t)dim);
        failed = !row;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (failed) continue;
            const double *c = table + (r % seq) * half, *s = table + (seq + r % seq) * half;
            nb__cpu_convert(NB_F64, row, 1, x->dtype, nb__data(x) + r * dim * (int64_t)size, 1, dim);
            for (int64_t i = 0; i < half; i++) {
                double x1 = row[i], x2 = row[i + half];
                row[i] = x1 * c[i] - x2 * s[i];
                row[i + half] = x2 * c[i] + x1 * s[i];
            }
            nb__cpu_convert(x->dtype, nb__data(args->out) + r * dim * (int64_t)size, 1, NB_F64, row, 1, dim);
        }
        free(row);
    }
    free(table);
    NB_CHECK(!failed, NB_ERR_OOM, "nb_rope: out of host memory for the rows of x %s",
             nb__tensor_shape_str(x));
    return NB_OK;
}
