/* The fused attention loops in one compute type, included by attention.c
 * once per type with real (float or double), TYPED(name) (name with the
 * type's suffix), GEMM (cblas_sgemm or cblas_dgemm) and EXP defined. Tiles
 * are BLOCK_Q query rows by BLOCK_K keys; each tile's products are GEMMs on
 * the calling thread. */

/* Row i of a score tile (keys j0 .. j0 + cols): the mask added and keys the
 * causal rule hides set to -inf. */
static void TYPED(bias_row)(const attention_problem *p, int64_t bh, int64_t i, int64_t j0,
                            int64_t cols, real *s) {
    if (p->mask) {
        const real *m = (const real *)p->mask + (bh / p->heads) * p->mask_stride[0] +
                        (bh % p->heads) * p->mask_stride[1] + i * p->mask_stride[2] +
                        j0 * p->mask_stride[3];
        for (int64_t c = 0; c < cols; c++) s[c] += m[c * p->mask_stride[3]];
    }
    if (p->causal)
        for (int64_t c = last_key(p, i) + 1 - j0 > 0 ? last_key(p, i) + 1 - j0 : 0; c < cols; c++)
            s[c] = -INFINITY;
}

/* Multiplies row i of a probability tile by the dropout's keep / (1 - p). */
static void TYPED(drop_row)(const attention_problem *p, int64_t bh, int64_t i, int64_t j0,
                            int64_t cols, real *s) {
    real keep_scale = (real)(1 / (1 - p->dropout));
    for (int64_t c = 0; c < cols; c++) s[c] *= dropout_keeps(p, bh, i, j0 + c) ? keep_scale : 0;
}

/* One row of the forward's online softmax over a score tile: the running
 * maximum m and sum l take in the tile, acc (the row of the output sum) is
 * rescaled by exp(m_old - m_new), and s becomes the row's (dropped-out)
 * exp(s - m_new). */
static void TYPED(online_row)(const attention_problem *p, int64_t bh, int64_t i, int64_t j0,
                              int64_t cols, real *s, real *m, real *l, real *acc) {
    TYPED(bias_row)(p, bh, i, j0, cols, s);
    real top = *m;
    for (int64_t c = 0; c < cols; c++) top = s[c] > top ? s[c] : top;
    if (top == -INFINITY) { /* no key seen yet */
        for (int64_t c = 0; c < cols; c++) s[c] = 0;
        return;
    }
    real correction = EXP(*m - top), sum = 0;
    for (int64_t c = 0; c < cols; c++) {
        s[c] = EXP(s[c] - top);
        sum += s[c];
    }
    *l = *l * correction + sum;
    *m = top;
    for (int64_t d = 0; d < p->dv; d++) acc[d] *= correction;
    if (p->dropout > 0) TYPED(drop_row)(p, bh, i, j0, cols, s);
}

/* Query rows i0 .. i0 + rows of head bh: o and lse. */
static void TYPED(forward_tile)(const attention_problem *p, int64_t bh, int64_t i0, int64_t rows,
                                real *s, real *acc, real *m, real *l) {
    int64_t sk = p->sk, d = p->d, dv = p->dv, kv = kv_head(p, bh);
    const real *q = (const real *)p->q + (bh * p->sq + i0) * d;
    const real *k = (const real *)p->k + kv * sk * d, *v = (const real *)p->v + kv * sk * dv;
    for (int64_t r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0;
    for (int64_t e = 0; e < rows * dv; e++) acc[e] = 0;
    int64_t end = key_end(p, i0 + rows - 1);
    for (int64_t j0 = 0; j0 < end; j0 += BLOCK_K) {
        int64_t cols = end - j0 < BLOCK_K ? end - j0 : BLOCK_K;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)cols, (blasint)d,
             (real)p->scale, q, (blasint)d, k + j0 * d, (blasint)d, 0, s, BLOCK_K);
        for (int64_t r = 0; r < rows; r++)
            TYPED(online_row)(p, bh, i0 + r, j0, cols, s + r * BLOCK_K, m + r, l + r, acc + r * dv);
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)dv, (blasint)cols,
             1, s, BLOCK_K, v + j0 * dv, (blasint)dv, 1, acc, (blasint)dv);
    }
    real *o = (real *)p->o + (bh * p->sq + i0) * dv, *lse = (real *)p->lse + bh * p->sq + i0;
    for (int64_t r = 0; r < rows; r++) {
        real inv = l[r] > 0 ? 1 / l[r] : 0;
        for (int64_t e = 0; e < dv; e++) o[r * dv + e] = acc[r * dv + e] * inv;
        lse[r] = l[r] > 0 ? m[r] + (real)log(l[r]) : -INFINITY;
    }
}

static bool TYPED(forward)(const attention_problem *p) {
    int64_t tiles = (p->sq + BLOCK_Q - 1) / BLOCK_Q, units = p->batch * p->heads * tiles;
    bool failed = false;
#pragma omp parallel reduction(|| : failed)
    {
        real *s = malloc(sizeof(real) * BLOCK_Q * BLOCK_K);
        real *acc = malloc(sizeof(real) * BLOCK_Q * (size_t)p->dv);
        real *ml = malloc(sizeof(real) * 2 * BLOCK_Q);
        failed = !s || !acc || !ml;
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++) {
            int64_t i0 = (u % tiles) * BLOCK_Q, rows = p->sq - i0 < BLOCK_Q ? p->sq - i0 : BLOCK_Q;
            if (!failed) TYPED(forward_tile)(p, u / tiles, i0, rows, s, acc, ml, ml + BLOCK_Q);
        }
        free(s);
        free(acc);
        free(ml);
    }
    return !failed;
}

/* The backward's buffers, one set per thread. */
typedef struct TYPED(grad_scratch) {
    real *s, *dp, *dropped, *dk, *dv, *delta;
} TYPED(grad_scratch);

/* Query rows i0 .. i0 + rows of head bh against keys j0 .. j0 + cols: adds
 * into the key tile's dk and dv and into those rows of dq. */
static void TYPED(backward_tile)(const attention_problem *p, int64_t bh, int64_t i0, int64_t rows,
                                 int64_t j0, int64_t cols, const real *delta,
                                 TYPED(grad_scratch) *w) {
    int64_t d = p->d, dv = p->dv, kv = kv_head(p, bh);
    const real *q = (const real *)p->q + (bh * p->sq + i0) * d;
    const real *dout = (const real *)p->dout + (bh * p->sq + i0) * dv;
    const real *k = (const real *)p->k + (kv * p->sk + j0) * d;
    const real *v = (const real *)p->v + (kv * p->sk + j0) * dv;
    const real *lse = (const real *)p->lse + bh * p->sq + i0;
    real *dq = (real *)p->grad_q + (bh * p->sq + i0) * d;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)cols, (blasint)d,
         (real)p->scale, q, (blasint)d, k, (blasint)d, 0, w->s, BLOCK_K);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)cols, (blasint)dv, 1,
         dout, (blasint)dv, v, (blasint)dv, 0, w->dp, BLOCK_K);
    real *dropped = p->dropout > 0 ? w->dropped : w->s;
    for (int64_t r = 0; r < rows; r++) {
        real *s = w->s + r * BLOCK_K, *dp = w->dp + r * BLOCK_K;
        TYPED(bias_row)(p, bh, i0 + r, j0, cols, s);
        for (int64_t c = 0; c < cols; c++) s[c] = lse[r] == -INFINITY ? 0 : EXP(s[c] - lse[r]);
        if (p->dropout > 0) {
            real *kept = dropped + r * BLOCK_K;
            for (int64_t c = 0; c < cols; c++) kept[c] = s[c];
            TYPED(drop_row)(p, bh, i0 + r, j0, cols, kept);
            TYPED(drop_row)(p, bh, i0 + r, j0, cols, dp);
        }
        for (int64_t c = 0; c < cols; c++) dp[c] = s[c] * (dp[c] - delta[r]);
    }
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)cols, (blasint)dv, (blasint)rows, 1,
         dropped, BLOCK_K, dout, (blasint)dv, 1, w->dv, (blasint)dv);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)cols, (blasint)d, (blasint)rows,
         (real)p->scale, w->dp, BLOCK_K, q, (blasint)d, 1, w->dk, (blasint)d);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)d, (blasint)cols,
         (real)p->scale, w->dp, BLOCK_K, k, (blasint)d, 1, dq, (blasint)d);
}

/* delta_i = dO_i . O_i for the query rows of head bh. */
static void TYPED(row_deltas)(const attention_problem *p, int64_t bh, real *delta) {
    const real *dout = (const real *)p->dout + bh * p->sq * p->dv;
    const real *o = (const real *)p->out + bh * p->sq * p->dv;
    for (int64_t i = 0; i < p->sq; i++) {
        real sum = 0;
        for (int64_t e = 0; e < p->dv; e++) sum += dout[i * p->dv + e] * o[i * p->dv + e];
        delta[i] = sum;
    }
}

/* Key/value head kv of sample b and its group of query heads: the whole of
 * their dk, dv and dq, so units never write the same memory. */
static void TYPED(backward_unit)(const attention_problem *p, int64_t b, int64_t kv,
                                 TYPED(grad_scratch) *w) {
    int64_t group = p->heads / p->kv_heads, first = b * p->heads + kv * group;
    for (int64_t g = 0; g < group; g++) {
        TYPED(row_deltas)(p, first + g, w->delta + g * p->sq);
        real *dq = (real *)p->grad_q + (first + g) * p->sq * p->d;
        for (int64_t e = 0; e < p->sq * p->d; e++) dq[e] = 0;
    }
    for (int64_t j0 = 0; j0 < p->sk; j0 += BLOCK_K) {
        int64_t cols = p->sk - j0 < BLOCK_K ? p->sk - j0 : BLOCK_K;
        for (int64_t e = 0; e < cols * p->d; e++) w->dk[e] = 0;
        for (int64_t e = 0; e < cols * p->dv; e++) w->dv[e] = 0;
        for (int64_t g = 0; g < group; g++)
            for (int64_t i0 = first_query(p, j0); i0 < p->sq; i0 += BLOCK_Q) {
                int64_t rows = p->sq - i0 < BLOCK_Q ? p->sq - i0 : BLOCK_Q;
                TYPED(backward_tile)(p, first + g, i0, rows, j0, cols, w->delta + g * p->sq + i0, w);
            }
        int64_t head = b * p->kv_heads + kv;
        memcpy((real *)p->grad_k + (head * p->sk + j0) * p->d, w->dk, sizeof(real) * cols * p->d);
        memcpy((real *)p->grad_v + (head * p->sk + j0) * p->dv, w->dv, sizeof(real) * cols * p->dv);
    }
}

static bool TYPED(backward)(const attention_problem *p) {
    int64_t units = p->batch * p->kv_heads, group = p->heads / p->kv_heads;
    size_t tile = sizeof(real) * BLOCK_Q * BLOCK_K;
    bool failed = false;
#pragma omp parallel reduction(|| : failed)
    {
        TYPED(grad_scratch) w = {malloc(tile), malloc(tile), malloc(tile),
                                 malloc(sizeof(real) * BLOCK_K * (size_t)p->d),
                                 malloc(sizeof(real) * BLOCK_K * (size_t)p->dv),
                                 malloc(sizeof(real) * (size_t)(group * p->sq))};
        failed = !w.s || !w.dp || !w.dropped || !w.dk || !w.dv || !w.delta;
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++)
            if (!failed) TYPED(backward_unit)(p, u / p->kv_heads, u % p->kv_heads, &w);
        free(w.s);
        free(w.dp);
        free(w.dropped);
        free(w.dk);
        free(w.dv);
        free(w.delta);
    }
    return !failed;
}
