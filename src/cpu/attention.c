/* Fused attention on the CPU (src/ops/attention.c has the formulas). The
 * forward runs a (head, query tile) per iteration; the backward a key/value
 * head with its group of query heads, so each writes its own dq, dk and dv
 * with no atomics and in a fixed order. f32 and f64. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/philox.h"
#include "cpu.h"

#define BLOCK_Q 64
#define BLOCK_K 128

typedef struct attention_problem {
    const void *q, *k, *v, *mask, *dout, *out;
    void *o, *lse, *grad_q, *grad_k, *grad_v;
    int64_t batch, heads, kv_heads, sq, sk, d, dv;
    int64_t mask_stride[4];
    double scale, dropout;
    bool causal;
    uint64_t seed, offset;
} attention_problem;

/* The key/value head (b, h / group) that query head bh = b H + h reads. */
static int64_t kv_head(const attention_problem *p, int64_t bh) {
    return (bh / p->heads) * p->kv_heads + (bh % p->heads) / (p->heads / p->kv_heads);
}

/* The last key query i sees under the causal rule (bottom-right aligned). */
static int64_t last_key(const attention_problem *p, int64_t i) { return i + p->sk - p->sq; }

/* One past the last key that query rows up to i need. */
static int64_t key_end(const attention_problem *p, int64_t i) {
    if (!p->causal) return p->sk;
    int64_t end = last_key(p, i) + 1;
    return end < 0 ? 0 : end < p->sk ? end : p->sk;
}

/* The first query that sees key j. */
static int64_t first_query(const attention_problem *p, int64_t j) {
    int64_t i = j - (p->sk - p->sq);
    return p->causal && i > 0 ? i : 0;
}

/* Whether dropout keeps probability (i, j) of head bh: the draw nb_bernoulli
 * makes for that element of [B, H, Sq, Sk] from the same generator state. */
static bool dropout_keeps(const attention_problem *p, int64_t bh, int64_t i, int64_t j) {
    uint64_t index = (uint64_t)((bh * p->sq + i) * p->sk + j);
    return nb_philox_draw(NB_OP_BERNOULLI, p->seed, p->offset, index, 1 - p->dropout, 0) != 0;
}

#define real float
#define TYPED(name) name##_f32
#define GEMM cblas_sgemm
#define EXP expf
#include "attention_kernel.h"
#undef real
#undef TYPED
#undef GEMM
#undef EXP

#define real double
#define TYPED(name) name##_f64
#define GEMM cblas_dgemm
#define EXP exp
#include "attention_kernel.h"
#undef real
#undef TYPED
#undef GEMM
#undef EXP

static attention_problem problem_of(const nb_op_args *args, const nb_tensor *q, const nb_tensor *k,
                                    const nb_tensor *v, const nb_tensor *mask) {
    attention_problem p = {
        .q = nb__data(q), .k = nb__data(k), .v = nb__data(v),
        .batch = q->shape[0], .heads = q->shape[1], .kv_heads = k->shape[1],
        .sq = q->shape[2], .sk = k->shape[2], .d = q->shape[3], .dv = v->shape[3],
        .scale = args->attrs.attention.scale, .dropout = args->attrs.attention.dropout,
        .causal = args->attrs.attention.causal, .seed = args->attrs.attention.seed,
        .offset = args->attrs.attention.offset};
    if (mask) {
        p.mask = nb__data(mask);
        memcpy(p.mask_stride, mask->strides, sizeof p.mask_stride);
    }
    return p;
}

/* forward in: q, k, v, lse (written), mask; out: o.
 * backward in: dout, q, k, v, o, lse, mask, dk, dv (written); out: dq. */
nb_status nb__cpu_attention(const nb_op_args *args) {
    bool forward = args->op == NB_OP_FLASH_ATTENTION, ok;
    const nb_tensor *const *in = forward ? args->in : args->in + 1;
    attention_problem p = problem_of(args, in[0], in[1], in[2], forward ? in[4] : in[5]);
    if (forward) {
        p.o = nb__data(args->out);
        p.lse = nb__data(in[3]);
        ok = args->dtype == NB_F64 ? forward_f64(&p) : forward_f32(&p);
    } else {
        p.dout = nb__data(args->in[0]);
        p.out = nb__data(in[3]);
        p.lse = nb__data(in[4]);
        p.grad_q = nb__data(args->out);
        p.grad_k = nb__data(in[6]);
        p.grad_v = nb__data(in[7]);
        ok = args->dtype == NB_F64 ? backward_f64(&p) : backward_f32(&p);
    }
    NB_CHECK(ok, NB_ERR_OOM, "%s: out of host memory for the attention tiles of q %s",
             nb__op_fn(args->op), nb__tensor_shape_str(in[0]));
    return NB_OK;
}
