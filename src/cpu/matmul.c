/* Batched matmul on OpenBLAS. The front end passes a [batch..., m, k] and
 * b [batch..., k, n] already broadcast (batch strides may be 0) and a
 * contiguous out [batch..., m, n]. Each batch is one sgemm/dgemm call when the
 * operands' strides describe a row-major or transposed matrix; other layouts
 * and f16/bf16 are packed into f32 first. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

typedef struct matrix_view {
    const char *data;
    int64_t rows, cols, row_stride, col_stride;
} matrix_view;

/* How BLAS can read m in place: transposed or not, with leading dim ld. */
static bool blas_layout(const matrix_view *m, CBLAS_TRANSPOSE *trans, int64_t *ld) {
    int64_t rows = m->rows, cols = m->cols, rs = m->row_stride, cs = m->col_stride;
    if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
        *trans = CblasNoTrans;
        *ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
        return *ld >= 1;
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
        *trans = CblasTrans;
        *ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
        return *ld >= 1;
    }
    return false;
}

/* Packs m row-major into dst, converting to dtype. */
static void pack(const matrix_view *m, nb_dtype src_dtype, nb_dtype dtype, void *dst) {
    size_t src_size = nb_dtype_size(src_dtype), size = nb_dtype_size(dtype);
    for (int64_t r = 0; r < m->rows; r++)
        nb__cpu_convert(dtype, (char *)dst + r * m->cols * (int64_t)size, 1, src_dtype,
                        m->data + r * m->row_stride * (int64_t)src_size, m->col_stride, m->cols);
}

static matrix_view batch_matrix(const nb_tensor *t, int64_t batch) {
    int nb = t->ndim - 2;
    int64_t offset = 0, rest = batch;
    for (int d = nb - 1; d >= 0; d--) {
        offset += (rest % t->shape[d]) * t->strides[d];
        rest /= t->shape[d];
    }
    matrix_view m = {nb__data(t) + offset * (int64_t)nb_dtype_size(t->dtype), t->shape[nb],
                     t->shape[nb + 1], t->strides[nb], t->strides[nb + 1]};
    return m;
}

static void gemm(nb_dtype dtype, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n,
                 int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, void *c) {
    if (dtype == NB_F64)
        cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, 1.0, a,
                    (blasint)lda, b, (blasint)ldb, 0.0, c, (blasint)n);
    else
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, 1.0f, a,
                    (blasint)lda, b, (blasint)ldb, 0.0f, c, (blasint)n);
}

/* One operand in place, or packed into scratch (which must hold rows*cols). */
static const void *operand(const matrix_view *m, nb_dtype dtype, nb_dtype compute, void *scratch,
                           CBLAS_TRANSPOSE *trans, int64_t *ld) {
    if (dtype == compute && blas_layout(m, trans, ld)) return m->data;
    pack(m, dtype, compute, scratch);
    *trans = CblasNoTrans;
    *ld = m->cols > 1 ? m->cols : 1;
    return scratch;
}

/* out [rows, out] = x [rows, in] @ weight^T (in[1] is the transposed view)
 * + bias: the matmul kernel, then the bias added row by row. */
nb_status nb__cpu_linear(const nb_op_args *args) {
    nb_op_args product = *args;
    product.op = NB_OP_MATMUL;
    product.n_in = 2;
    NB_TRY(nb__cpu_matmul(&product));
    const nb_tensor *bias = args->n_in > 2 ? args->in[2] : NULL;
    if (!bias) return NB_OK;
    nb_tensor *out = args->out;
    int64_t rows = out->shape[0], cols = out->shape[1];
    size_t size = nb_dtype_size(out->dtype);
    double *b = nb__malloc((size_t)cols * sizeof *b);
    NB_CHECK(b, NB_ERR_OOM, "nb_linear: out of host memory for a bias of %lld", (long long)cols);
    nb__cpu_convert(NB_F64, b, 1, bias->dtype, nb__data(bias), bias->strides[0], cols);
    bool failed = false;
#pragma omp parallel reduction(|| : failed) if (rows * cols >= NB_CPU_PARALLEL_MIN)
    {
        double *row = nb__malloc((size_t)cols * sizeof *row);
        failed = !row;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!row) continue;
            char *at = nb__data(out) + r * cols * (int64_t)size;
            nb__cpu_convert(NB_F64, row, 1, out->dtype, at, 1, cols);
            for (int64_t c = 0; c < cols; c++) row[c] += b[c];
            nb__cpu_convert(out->dtype, at, 1, NB_F64, row, 1, cols);
        }
        free(row);
    }
    free(b);
    NB_CHECK(!failed, NB_ERR_OOM, "nb_linear: out of host memory for a row of %lld",
             (long long)cols);
    return NB_OK;
}

/* Scratch for packing one batch's operands (and its result when out's
 * dtype differs from the compute dtype). */
typedef struct gemm_scratch {
    void *a, *b, *c;
} gemm_scratch;

static bool scratch_new(gemm_scratch *s, int64_t m, int64_t k, int64_t n, size_t size, bool with_c) {
    s->a = nb__malloc((size_t)(m * k) * size + 1);
    s->b = nb__malloc((size_t)(k * n) * size + 1);
    s->c = with_c ? nb__malloc((size_t)(m * n) * size + 1) : NULL;
    return s->a && s->b && (!with_c || s->c);
}

static void scratch_free(gemm_scratch *s) {
    free(s->a);
    free(s->b);
    free(s->c);
}

/* One batch: out's matrix batch = a's @ b's, packed when BLAS cannot read
 * an operand in place. */
static void gemm_batch(const nb_op_args *args, nb_dtype compute, int64_t batch, gemm_scratch *s) {
    const nb_tensor *a = args->in[0], *b = args->in[1];
    nb_tensor *out = args->out;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    size_t size = nb_dtype_size(compute);
    bool convert_out = out->dtype != compute;
    char *c = nb__data(out) + batch * m * n * (int64_t)nb_dtype_size(out->dtype);
    void *target = convert_out ? s->c : c;
    if (k == 0) {
        memset(target, 0, (size_t)(m * n) * size);
    } else {
        matrix_view ma = batch_matrix(a, batch), mb = batch_matrix(b, batch);
        CBLAS_TRANSPOSE ta, tb;
        int64_t lda, ldb;
        const void *pa = operand(&ma, a->dtype, compute, s->a, &ta, &lda);
        const void *pb = operand(&mb, b->dtype, compute, s->b, &tb, &ldb);
        gemm(compute, ta, tb, m, n, k, pa, lda, pb, ldb, target);
    }
    if (convert_out) nb__cpu_convert(out->dtype, c, 1, compute, s->c, 1, m * n);
}

/* Many small products run a batch per thread, each GEMM on one thread (the
 * OpenMP build of OpenBLAS does not fork inside a parallel region, even an
 * inactive one); large ones run one at a time on all threads. */
#define NB_GEMM_SMALL_FLOPS ((int64_t)1 << 24)

nb_status nb__cpu_matmul(const nb_op_args *args) {
    const nb_tensor *a = args->in[0], *b = args->in[1];
    nb_tensor *out = args->out;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    int64_t batches = nb__numel(out->ndim - 2, out->shape);
    nb_dtype compute = args->dtype == NB_F64 ? NB_F64 : NB_F32;
    size_t size = nb_dtype_size(compute);
    bool convert_out = out->dtype != compute;
    bool failed = false;
    if (batches > 1 && 2 * m * n * k < NB_GEMM_SMALL_FLOPS) {
#pragma omp parallel reduction(|| : failed)
        {
            gemm_scratch s;
            failed = !scratch_new(&s, m, k, n, size, convert_out);
#pragma omp for schedule(static)
            for (int64_t batch = 0; batch < batches; batch++)
                if (!failed) gemm_batch(args, compute, batch, &s);
            scratch_free(&s);
        }
    } else { /* outside any parallel region, so each GEMM uses every thread */
        gemm_scratch s;
        failed = !scratch_new(&s, m, k, n, size, convert_out);
        for (int64_t batch = 0; batch < batches && !failed; batch++) gemm_batch(args, compute, batch, &s);
        scratch_free(&s);
    }
    NB_CHECK(!failed, NB_ERR_OOM, "nb_matmul: out of host memory for [%lld,%lld]x[%lld,%lld]",
             (long long)m, (long long)k, (long long)k, (long long)n);
    return NB_OK;
}
