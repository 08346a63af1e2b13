// Batched matmul on cuBLASLt. The front end passes a [batch..., m, k] and
// b [batch..., k, n] broadcast to out's batch dims (batch strides may be 0,
// which cuBLASLt accepts) and a contiguous out [batch..., m, n].
// cuBLASLt is column-major, so the row-major product C = A B is computed as
// C^T = B^T A^T: a row-major matrix read as column-major is its transpose,
// and a transposed view (unit row stride) is read with op T instead of
// being copied. Operands whose batch dims do not collapse to one stride, or
// whose matrices have no unit stride, are copied contiguous first.
// f16 and bf16 accumulate in f32; f32 may use TF32 tensor cores when
// nb_cuda_set_tf32 allows it. The heuristic's choice of algorithm is cached
// per shape and alignment; each stream has its own workspace. When cuBLASLt
// refuses a product (no algorithm, or a failing call: odd f16/bf16 shapes
// with the bias epilogue and a 2-byte-aligned bias) it is tried again
// without the epilogue (the bias added by the elementwise kernel), then on
// fresh, 256-byte-aligned copies of the operands and the output.
#include <cublasLt.h>
#include <string.h>

#include "cuda.cuh"

#define NB_GEMM_WORKSPACE ((size_t)32 << 20) // what cuBLASLt asks for on Hopper

#define NB_CUBLAS_TRY(fn, call)                                                             \
    do {                                                                                    \
        cublasStatus_t nb_cublas_status_ = (call);                                          \
        if (nb_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                     \
            return nb__error(NB_ERR_DEVICE, "%s: cuBLASLt error %s in %s", (fn),            \
                             cublasLtGetStatusString(nb_cublas_status_), #call);              \
    } while (0)

// One operand as cuBLASLt reads it: a column-major matrix of rows x cols
// with leading dimension ld, transposed by op, batch_stride elements apart.
typedef struct gemm_operand {
    const char *data;
    uint64_t rows, cols;
    int64_t ld, batch_stride;
    cublasOperation_t op;
} gemm_operand;

typedef struct gemm_key {
    int device, dtype, compute, op_a, op_b, epilogue;
    int64_t m, n, k, ld_a, ld_b, batch, stride_a, stride_b, align_a, align_b, align_d;
} gemm_key;

static nb_shape_cache algo_cache = NB_SHAPE_CACHE(gemm_key, cublasLtMatmulAlgo_t, 1024, NULL);

// The single stride between t's batch matrices, if its batch dims have one.
static bool batch_stride(const nb_tensor *t, int64_t *stride) {
    int nb = t->ndim - 2;
    int64_t expected = -1; // the stride the next outer dim must have; -1: any
    *stride = 0;
    for (int d = nb - 1; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (expected >= 0 && t->strides[d] != expected) return false;
        if (expected < 0) *stride = t->strides[d];
        expected = t->strides[d] * t->shape[d];
    }
    return true;
}

// t's last two dims [rows, cols] as a cuBLASLt operand of the swapped
// product, or false when neither dim has unit stride.
static bool as_operand(const nb_tensor *t, gemm_operand *g) {
    int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    int64_t rs = t->strides[t->ndim - 2], cs = t->strides[t->ndim - 1];
    g->data = nb__data(t);
    if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) { // row-major: read as [cols, rows]
        g->rows = (uint64_t)cols;
        g->cols = (uint64_t)rows;
        g->ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
        g->op = CUBLAS_OP_N;
        return true;
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) { // column-major: transpose it
        g->rows = (uint64_t)rows;
        g->cols = (uint64_t)cols;
        g->ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
        g->op = CUBLAS_OP_T;
        return true;
    }
    return false;
}

// The operand of t, copying t contiguous into *copy when it must.
static nb_status prepare(const char *fn, const nb_tensor *t, gemm_operand *g, nb_tensor **copy) {
    int64_t stride;
    if (batch_stride(t, &stride) && as_operand(t, g)) {
        g->batch_stride = stride;
        return NB_OK;
    }
    NB_TRY(nb__tensor_new(fn, t->ndim, t->shape, t->dtype, t->storage->device, copy));
    NB_TRY(nb__copy_into(*copy, t));
    batch_stride(*copy, &stride);
    as_operand(*copy, g);
    g->batch_stride = stride;
    return NB_OK;
}

// The largest power of two up to 256 dividing the address and the strides.
static int64_t alignment(const void *ptr, int64_t ld, int64_t batch_stride, size_t size) {
    int64_t a = 256;
    while (a > 1 && ((uintptr_t)ptr % (uintptr_t)a || (ld * (int64_t)size) % a ||
                     (batch_stride * (int64_t)size) % a))
        a /= 2;
    return a;
}

static cudaDataType_t data_type(nb_dtype dtype) {
    switch (dtype) {
    case NB_F64: return CUDA_R_64F;
    case NB_F16: return CUDA_R_16F;
    case NB_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

static nb_status workspace(const char *fn, const nb_cuda_ctx *ctx) {
    nb_stream *s = ctx->stream;
    if (s->workspace) return NB_OK;
    NB_TRY(nb__cuda_alloc(fn, NB_GEMM_WORKSPACE, nb_cuda(ctx->device), &s->workspace,
                          &s->workspace_block));
    s->workspace_size = NB_GEMM_WORKSPACE;
    return NB_OK;
}

// Asks cuBLASLt's heuristic for the best algorithm within the workspace and
// the operands' alignments.
static nb_status pick_algo(const char *fn, cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                           cublasLtMatrixLayout_t layouts[3], const gemm_key *key,
                           cublasLtMatmulAlgo_t *algo) {
    cublasLtMatmulPreference_t pref;
    NB_CUBLAS_TRY(fn, cublasLtMatmulPreferenceCreate(&pref));
    size_t limit = NB_GEMM_WORKSPACE;
    uint32_t aligns[4] = {(uint32_t)key->align_a, (uint32_t)key->align_b, (uint32_t)key->align_d,
                          (uint32_t)key->align_d};
    const cublasLtMatmulPreferenceAttributes_t align_attrs[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit, sizeof limit);
    for (int i = 0; i < 4 && status == CUBLAS_STATUS_SUCCESS; i++)
        status = cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &aligns[i],
                                                      sizeof aligns[i]);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (status == CUBLAS_STATUS_SUCCESS)
        status = cublasLtMatmulAlgoGetHeuristic(handle, desc, layouts[0], layouts[1], layouts[2],
                                                layouts[2], pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    NB_CUBLAS_TRY(fn, status);
    NB_CHECK(found > 0, NB_ERR_UNSUPPORTED,
             "%s: cuBLASLt has no algorithm for %s [%lld,%lld]x[%lld,%lld] (batch %lld)", fn,
             nb_dtype_name((nb_dtype)key->dtype),
             (long long)key->m, (long long)key->k, (long long)key->k, (long long)key->n,
             (long long)key->batch);
    *algo = result.algo;
    return NB_OK;
}

typedef struct gemm_call {
    gemm_operand a, b; // cuBLASLt's A is nabla's b, its B is nabla's a
    char *d;
    const void *bias;
    nb_dtype dtype;
    int64_t m, n, k, batch;
} gemm_call;

// Creates the descriptors (the caller destroys them), picks the algorithm
// and queues the product.
static nb_status run_gemm(const char *fn, const nb_cuda_ctx *ctx, const gemm_call *c,
                          cublasLtMatmulDesc_t *desc_out, cublasLtMatrixLayout_t layouts[3]) {
    cublasComputeType_t compute = c->dtype == NB_F64 ? CUBLAS_COMPUTE_64F
                                  : c->dtype == NB_F32 && nb_cuda_tf32_enabled()
                                      ? CUBLAS_COMPUTE_32F_FAST_TF32
                                      : CUBLAS_COMPUTE_32F;
    cudaDataType_t scale = c->dtype == NB_F64 ? CUDA_R_64F : CUDA_R_32F;
    cudaDataType_t type = data_type(c->dtype);
    NB_CUBLAS_TRY(fn, cublasLtMatmulDescCreate(desc_out, compute, scale));
    cublasLtMatmulDesc_t desc = *desc_out;
    NB_CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &c->a.op,
                                                     sizeof c->a.op));
    NB_CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &c->b.op,
                                                     sizeof c->b.op));
    cublasLtEpilogue_t epilogue = c->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    NB_CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                     &epilogue, sizeof epilogue));
    if (c->bias) {
        NB_CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                         &c->bias, sizeof c->bias));
        NB_CUBLAS_TRY(fn, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                         &type, sizeof type));
    }
    const gemm_operand *ops[2] = {&c->a, &c->b};
    for (int i = 0; i < 2; i++)
        NB_CUBLAS_TRY(fn, cublasLtMatrixLayoutCreate(&layouts[i], type, ops[i]->rows, ops[i]->cols,
                                                     ops[i]->ld));
    NB_CUBLAS_TRY(fn, cublasLtMatrixLayoutCreate(&layouts[2], type, (uint64_t)c->n, (uint64_t)c->m,
                                                 c->n));
    int32_t batch = (int32_t)c->batch;
    int64_t strides[3] = {c->a.batch_stride, c->b.batch_stride, c->m * c->n};
    for (int i = 0; i < 3; i++) {
        NB_CUBLAS_TRY(fn, cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                           &batch, sizeof batch));
        NB_CUBLAS_TRY(fn, cublasLtMatrixLayoutSetAttribute(
                              layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i],
                              sizeof strides[i]));
    }
    size_t size = nb_dtype_size(c->dtype);
    gemm_key key;
    memset(&key, 0, sizeof key); // padding takes part in the hash
    key.device = ctx->device;
    key.dtype = c->dtype;
    key.compute = compute;
    key.op_a = c->a.op;
    key.op_b = c->b.op;
    key.epilogue = epilogue;
    key.m = c->m;
    key.n = c->n;
    key.k = c->k;
    key.batch = c->batch;
    key.ld_a = c->a.ld;
    key.ld_b = c->b.ld;
    key.stride_a = c->a.batch_stride;
    key.stride_b = c->b.batch_stride;
    key.align_a = alignment(c->a.data, c->a.ld, c->a.batch_stride, size);
    key.align_b = alignment(c->b.data, c->b.ld, c->b.batch_stride, size);
    key.align_d = alignment(c->d, c->n, c->m * c->n, size);
    cublasLtHandle_t handle = (cublasLtHandle_t)nb__cuda_blaslt(ctx->device);
    cublasLtMatmulAlgo_t algo;
    if (!nb__shape_cache_get(&algo_cache, &key, &algo)) {
        NB_TRY(pick_algo(fn, handle, desc, layouts, &key, &algo));
        nb__shape_cache_put(&algo_cache, &key, &algo);
    }
    NB_TRY(workspace(fn, ctx));
    double alpha64 = 1, beta64 = 0;
    float alpha32 = 1, beta32 = 0;
    const void *alpha = c->dtype == NB_F64 ? (const void *)&alpha64 : (const void *)&alpha32;
    const void *beta = c->dtype == NB_F64 ? (const void *)&beta64 : (const void *)&beta32;
    NB_CUBLAS_TRY(fn, cublasLtMatmul(handle, desc, alpha, c->a.data, layouts[0], c->b.data,
                                     layouts[1], beta, c->d, layouts[2], c->d, layouts[2], &algo,
                                     ctx->stream->workspace, ctx->stream->workspace_size,
                                     ctx->handle));
    return NB_OK;
}

// One attempt at out = a @ b (+ bias in the epilogue).
static nb_status gemm_once(const char *fn, const nb_cuda_ctx *ctx, const nb_tensor *a,
                           const nb_tensor *b, const nb_tensor *bias, nb_tensor *out) {
    gemm_call c;
    c.dtype = out->dtype;
    c.m = a->shape[a->ndim - 2];
    c.k = a->shape[a->ndim - 1];
    c.n = b->shape[b->ndim - 1];
    c.batch = nb_numel(out) / (c.m * c.n);
    c.d = nb__data(out);
    c.bias = bias ? nb__data(bias) : NULL;
    nb_tensor *copy_a = NULL, *copy_b = NULL;
    nb_status status = prepare(fn, b, &c.a, &copy_b);
    if (status == NB_OK) status = prepare(fn, a, &c.b, &copy_a);
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t layouts[3] = {NULL, NULL, NULL};
    if (status == NB_OK) status = run_gemm(fn, ctx, &c, &desc, layouts);
    for (int i = 0; i < 3; i++)
        if (layouts[i]) cublasLtMatrixLayoutDestroy(layouts[i]);
    if (desc) cublasLtMatmulDescDestroy(desc);
    nb_release(copy_a); // stream order keeps the copies alive long enough
    nb_release(copy_b);
    return status;
}

// out += bias broadcast over out's rows, by the elementwise kernel.
static nb_status add_bias(const char *fn, nb_tensor *out, const nb_tensor *bias) {
    nb_tensor *spread = NULL;
    NB_TRY(nb__expand_view(fn, bias, out->ndim, out->shape, &spread));
    nb_op_args args = {};
    args.op = NB_OP_ADD;
    args.dtype = out->dtype;
    args.out = out;
    args.in[0] = out;
    args.in[1] = spread;
    args.n_in = 2;
    nb_status status = nb__dispatch(&args);
    nb_release(spread);
    return status;
}

// A fresh contiguous copy of t (the allocator's blocks are 256-byte aligned).
static nb_status aligned_copy(const char *fn, const nb_tensor *t, nb_tensor **copy) {
    NB_TRY(nb__tensor_new(fn, t->ndim, t->shape, t->dtype, t->storage->device, copy));
    return nb__copy_into(*copy, t);
}

// The product on fresh copies of a, b and out, the bias added afterwards.
static nb_status gemm_on_copies(const char *fn, const nb_cuda_ctx *ctx, const nb_tensor *a,
                                const nb_tensor *b, const nb_tensor *bias, nb_tensor *out) {
    nb_tensor *a2 = NULL, *b2 = NULL, *d2 = NULL;
    nb_status status = aligned_copy(fn, a, &a2);
    if (status == NB_OK) status = aligned_copy(fn, b, &b2);
    if (status == NB_OK) status = nb__tensor_new(fn, out->ndim, out->shape, out->dtype, out->storage->device, &d2);
    if (status == NB_OK) status = gemm_once(fn, ctx, a2, b2, NULL, d2);
    if (status == NB_OK && bias) status = add_bias(fn, d2, bias);
    if (status == NB_OK) status = nb__copy_into(out, d2);
    nb_release(a2);
    nb_release(b2);
    nb_release(d2);
    return status;
}

// out = a @ b (+ bias over out's last dim when bias is not NULL); the linear
// layer's fused bias epilogue uses this too.
nb_status nb__cuda_gemm(const char *fn, const nb_tensor *a, const nb_tensor *b,
                        const nb_tensor *bias, nb_tensor *out) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, out->storage->device.index, &ctx));
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    if (m == 0 || n == 0) return NB_OK;
    NB_CHECK(nb_numel(out) / (m * n) <= INT32_MAX, NB_ERR_UNSUPPORTED,
             "%s: %lld batches, cuBLASLt takes 2^31-1", fn, (long long)(nb_numel(out) / (m * n)));
    if (k == 0) {
        NB_CUDA_TRY(fn, cudaMemsetAsync(nb__data(out), 0, (size_t)nb_numel(out) * nb_dtype_size(out->dtype),
                                        ctx.handle));
        return bias ? add_bias(fn, out, bias) : NB_OK;
    }
    nb_status status = gemm_once(fn, &ctx, a, b, bias, out);
    if (status != NB_OK && status != NB_ERR_OOM && bias) {
        status = gemm_once(fn, &ctx, a, b, NULL, out);
        if (status == NB_OK) status = add_bias(fn, out, bias);
    }
    if (status != NB_OK && status != NB_ERR_OOM) status = gemm_on_copies(fn, &ctx, a, b, bias, out);
    return status;
}

nb_status nb__cuda_matmul(const nb_op_args *args) {
    return nb__cuda_gemm("nb_matmul", args->in[0], args->in[1], NULL, args->out);
}

// x [rows, in] @ weight^T (in[1], the transposed view) + bias in the epilogue.
nb_status nb__cuda_linear(const nb_op_args *args) {
    return nb__cuda_gemm("nb_linear", args->in[0], args->in[1], args->n_in > 2 ? args->in[2] : NULL,
                         args->out);
}
