/* Scaled dot-product attention (include/nabla/ops.h has the contract).
 *
 * The composed form is the reference: scores = q k^T scale + mask, rows
 * softmaxed, dropped out, times v, every step a nabla op that autograd
 * differentiates. Grouped-query heads need no copy: q is viewed as
 * [B, Hkv, G, Sq, D] against k as [B, Hkv, 1, D, Sk], and matmul broadcasts.
 *
 * The fused form (flash_attention) hands q, k, v and the mask to one kernel
 * that keeps a running maximum m and sum l per query row while it walks the
 * key tiles (the online softmax of Milakov and Gimelshein, 2018) and saves
 * lse = m + log l per row. Its backward recomputes each tile's
 * probabilities as exp(s - lse) and, with delta_i = dO_i . O_i, writes
 *   dV = P^T dO,  dS = P (dO V^T - delta),  dQ = dS K scale,  dK = dS^T Q scale
 * (FlashAttention-2, Dao 2023, algorithm 2). */
#include <math.h>

#include "../core/internal.h"
#include "../core/random_internal.h"

#define K(expr) nb__keep(s, (expr))

typedef struct attention_call {
    const nb_tensor *q, *k, *v, *mask;
    bool causal;
    double dropout, scale;
    nb_generator *gen;
} attention_call;

static nb_status check_qkv(const char *fn, const attention_call *c) {
    const nb_tensor *t[3] = {c->q, c->k, c->v};
    const char *names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        NB_CHECK(t[i], NB_ERR_INVALID, "%s: %s is NULL", fn, names[i]);
        NB_CHECK(t[i]->ndim == 4, NB_ERR_SHAPE, "%s: %s must be 4-D [batch, heads, seq, dim], got %s",
                 fn, names[i], nb__tensor_shape_str(t[i]));
        NB_CHECK(nb_dtype_is_float(t[i]->dtype), NB_ERR_DTYPE, "%s: %s must be float, got %s", fn,
                 names[i], nb_dtype_name(t[i]->dtype));
        NB_CHECK(t[i]->dtype == c->q->dtype, NB_ERR_DTYPE, "%s: q is %s but %s is %s", fn,
                 nb_dtype_name(c->q->dtype), names[i], nb_dtype_name(t[i]->dtype));
        NB_CHECK(nb__same_device(t[i]->storage->device, c->q->storage->device), NB_ERR_DEVICE,
                 "%s: q is on %s but %s on %s", fn, nb__device_name(c->q->storage->device), names[i],
                 nb__device_name(t[i]->storage->device));
    }
    const int64_t *q = c->q->shape, *k = c->k->shape, *v = c->v->shape;
    NB_CHECK(q[0] == k[0] && k[0] == v[0] && k[1] == v[1] && k[2] == v[2] && q[3] == k[3],
             NB_ERR_SHAPE,
             "%s: q [B, Hq, Sq, D], k [B, Hkv, Sk, D] and v [B, Hkv, Sk, Dv] disagree: %s, %s, %s",
             fn, nb__tensor_shape_str(c->q), nb__tensor_shape_str(c->k), nb__tensor_shape_str(c->v));
    NB_CHECK(q[3] > 0 && v[3] > 0, NB_ERR_SHAPE, "%s: head dims must be positive, got D %lld and Dv %lld",
             fn, (long long)q[3], (long long)v[3]);
    NB_CHECK(k[1] > 0 && q[1] % k[1] == 0, NB_ERR_SHAPE,
             "%s: k's %lld heads must divide q's %lld", fn, (long long)k[1], (long long)q[1]);
    return NB_OK;
}

static nb_status check_attention(const char *fn, const attention_call *c) {
    NB_TRY(check_qkv(fn, c));
    NB_CHECK(c->dropout >= 0 && c->dropout < 1, NB_ERR_INVALID,
             "%s: dropout_p must be in [0, 1), got %g", fn, c->dropout);
    NB_CHECK(isfinite(c->scale), NB_ERR_INVALID, "%s: scale must be finite, got %g", fn, c->scale);
    const nb_tensor *mask = c->mask;
    if (!mask) return NB_OK;
    NB_CHECK(mask->dtype == NB_BOOL || nb_dtype_is_float(mask->dtype), NB_ERR_DTYPE,
             "%s: mask must be bool or float, got %s", fn, nb_dtype_name(mask->dtype));
    NB_CHECK(nb__same_device(mask->storage->device, c->q->storage->device), NB_ERR_DEVICE,
             "%s: mask is on %s but q on %s", fn, nb__device_name(mask->storage->device),
             nb__device_name(c->q->storage->device));
    int64_t scores[4] = {c->q->shape[0], c->q->shape[1], c->q->shape[2], c->k->shape[2]};
    bool fits = mask->ndim <= 4;
    for (int d = 0; fits && d < mask->ndim; d++) {
        int64_t size = mask->shape[mask->ndim - 1 - d];
        fits = size == 1 || size == scores[3 - d];
    }
    NB_CHECK(fits, NB_ERR_SHAPE, "%s: mask %s does not broadcast to the scores %s", fn,
             nb__tensor_shape_str(mask), nb__shape_str(4, scores));
    return NB_OK;
}

static double scale_of(const attention_call *c) {
    return c->scale != 0 ? c->scale : 1 / sqrt((double)c->q->shape[3]);
}

/* The mask as a float to add to the scores: bool false becomes -inf. */
static nb_tensor *additive_mask(nb_scratch *s, const nb_tensor *mask, nb_dtype dtype) {
    if (mask->dtype != NB_BOOL) return K(nb_cast(mask, dtype));
    nb_tensor *zeros = K(nb_zeros(mask->ndim, mask->shape, dtype, mask->storage->device));
    return K(nb_masked_fill(zeros, K(nb_logical_not(mask)), -INFINITY));
}

/* ---- composed ---- */

/* True where causal attention hides key j from query i: j > i + sk - sq. */
static nb_tensor *causal_hidden(nb_scratch *s, int64_t sq, int64_t sk, nb_device device) {
    int64_t column[2] = {sq, 1};
    nb_tensor *rows = K(nb_reshape(K(nb_arange((double)(sk - sq), (double)sk, 1, NB_I64, device)),
                                   2, column));
    nb_tensor *cols = K(nb_arange(0, (double)sk, 1, NB_I64, device));
    return K(nb_gt(cols, rows));
}

static nb_tensor *composed(nb_scratch *s, const attention_call *c) {
    const nb_tensor *q = c->q, *k = c->k, *v = c->v;
    int64_t b = q->shape[0], hq = q->shape[1], sq = q->shape[2], hkv = k->shape[1], sk = k->shape[2];
    int64_t grouped[5] = {b, hkv, hq / hkv, sq, q->shape[3]}, scores_shape[4] = {b, hq, sq, sk};
    nb_tensor *kt = K(nb_unsqueeze(K(nb_transpose(k, 2, 3)), 2));
    nb_tensor *scores = K(nb_matmul(K(nb_reshape(q, 5, grouped)), kt));
    scores = K(nb_mul(K(nb_reshape(scores, 4, scores_shape)), K(nb__scalar_like(q, scale_of(c)))));
    if (c->mask) scores = K(nb_add(scores, additive_mask(s, c->mask, q->dtype)));
    if (c->causal) scores = K(nb_masked_fill(scores, causal_hidden(s, sq, sk, q->storage->device), -INFINITY));
    nb_tensor *probs;
    if (c->mask || c->causal) { /* rows that see no key: zeros, without a NaN in any gradient */
        int last = -1;
        nb_tensor *dead = K(nb_eq(K(nb_max(scores, 1, &last, true)), K(nb__scalar_like(q, -INFINITY))));
        probs = K(nb_masked_fill(K(nb_softmax(K(nb_masked_fill(scores, dead, 0)), -1)), dead, 0));
    } else {
        probs = K(nb_softmax(scores, -1));
    }
    if (c->dropout > 0) {
        nb_tensor *keep = K(nb_bernoulli(4, scores_shape, 1 - c->dropout, q->dtype, q->storage->device, c->gen));
        probs = K(nb_mul(probs, K(nb_mul(keep, K(nb__scalar_like(q, 1 / (1 - c->dropout)))))));
    }
    int64_t probs_grouped[5] = {b, hkv, hq / hkv, sq, sk}, out_shape[4] = {b, hq, sq, v->shape[3]};
    nb_tensor *out = K(nb_matmul(K(nb_reshape(probs, 5, probs_grouped)), K(nb_unsqueeze(v, 2))));
    return K(nb_reshape(out, 4, out_shape));
}

/* ---- fused ---- */

static nb_dtype lse_dtype(nb_dtype d) { return d == NB_F64 ? NB_F64 : NB_F32; }

/* A kernel operand: contiguous and starting 16-byte aligned (the CUDA
 * kernel copies rows in 16-byte pieces). */
static nb_tensor *kernel_operand(nb_scratch *s, const nb_tensor *t) {
    nb_tensor *c = K(nb_contiguous(t));
    if (c && (uintptr_t)nb__data(c) % 16 != 0) c = K(nb_clone(c));
    return c;
}

/* The kernel's mask: additive, in q's dtype, a view broadcast to the scores. */
static nb_tensor *kernel_mask(nb_scratch *s, const attention_call *c) {
    if (!c->mask || s->status != NB_OK) return NULL;
    int64_t scores[4] = {c->q->shape[0], c->q->shape[1], c->q->shape[2], c->k->shape[2]};
    nb_tensor *additive = additive_mask(s, c->mask, c->q->dtype), *view = NULL;
    if (additive && nb__expand_view("nb_flash_attention", additive, 4, scores, &view) != NB_OK)
        return K(NULL);
    return K(view);
}

/* node inputs: q, k, v (as the caller gave them), o (detached), lse, mask */
static nb_status flash_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                nb_tensor **grads) {
    nb_scratch scratch = {0}, *s = &scratch;
    const nb_tensor *q = kernel_operand(s, node->inputs[0]), *k = kernel_operand(s, node->inputs[1]);
    const nb_tensor *v = kernel_operand(s, node->inputs[2]);
    if (s->status != NB_OK) return nb__scratch_finish(s, NULL, NULL);
    nb_device device = q->storage->device;
    nb_tensor *dk = K(nb_zeros(4, k->shape, k->dtype, device));
    nb_tensor *dv = K(nb_zeros(4, v->shape, v->dtype, device)), *dq = NULL;
    nb_tensor *dout = kernel_operand(s, g);
    if (s->status == NB_OK) {
        nb_op_args args = {.op = NB_OP_FLASH_ATTENTION_BACKWARD, .dtype = q->dtype,
                           .in = {dout, q, k, v, node->inputs[3], node->inputs[4], node->inputs[5], dk, dv},
                           .n_in = 9, .attrs = node->attrs};
        nb__dispatch_new("nb_flash_attention", &args, 4, q->shape, q->dtype, &dq);
        K(dq);
    }
    nb_tensor *results[3] = {dq, dk, dv};
    for (int i = 0; i < 3 && s->status == NB_OK; i++)
        if (needs[i]) grads[i] = nb_retain(results[i]);
    return nb__scratch_finish(s, NULL, NULL);
}

/* The CUDA kernel: tensor cores of compute capability 8.0 and up, head
 * dims 64 and 128; other shapes compose ops. */
static bool cuda_kernel_fits(const attention_call *c) {
    nb_cuda_properties props;
    int64_t d = c->q->shape[3];
    return d == c->v->shape[3] && (d == 64 || d == 128) &&
           nb_cuda_get_properties(c->q->storage->device.index, &props) == NB_OK && props.major >= 8;
}

static bool has_fused_kernel(const attention_call *c) {
    return nb__has_kernel(c->q->storage->device, NB_OP_FLASH_ATTENTION, c->q->dtype) &&
           (c->q->storage->device.type == NB_DEVICE_CPU || cuda_kernel_fits(c));
}


static nb_tensor *fused(nb_scratch *s, const attention_call *c) {
    const char *fn = "nb_flash_attention";
    const nb_tensor *q0 = c->q;
    nb_device device = q0->storage->device;
    if (s->status != NB_OK) return NULL;
    if (!has_fused_kernel(c)) {
        nb__error(NB_ERR_UNSUPPORTED, "%s: no fused kernel on %s for %s with head dims %lld and %lld",
                  fn, nb__device_name(device), nb_dtype_name(q0->dtype), (long long)q0->shape[3],
                  (long long)c->v->shape[3]);
        return K(NULL);
    }
    if (c->mask && c->mask->requires_grad) {
        nb__error(NB_ERR_UNSUPPORTED, "%s: the fused kernel gives the mask no gradient; "
                  "nb_scaled_dot_product_attention composes ops for a mask that needs one", fn);
        return K(NULL);
    }
    bool was = nb_set_grad_enabled(false); /* the kernel's inputs, not part of the graph */
    nb_tensor *q = kernel_operand(s, q0), *k = kernel_operand(s, c->k), *v = kernel_operand(s, c->v);
    nb_tensor *mask = kernel_mask(s, c);
    nb_set_grad_enabled(was);
    int64_t b = q0->shape[0], hq = q0->shape[1], sq = q0->shape[2], sk = c->k->shape[2];
    int64_t lse_shape[3] = {b, hq, sq}, out_shape[4] = {b, hq, sq, c->v->shape[3]};
    nb_tensor *lse = K(nb_empty(3, lse_shape, lse_dtype(q0->dtype), device)), *out = NULL;
    if (s->status != NB_OK) return NULL;
    nb_attrs attrs = {.attention = {.scale = scale_of(c), .dropout = c->dropout, .causal = c->causal}};
    if (c->dropout > 0)
        attrs.attention.offset = nb__generator_reserve(c->gen, (uint64_t)(b * hq * sq * sk),
                                                       &attrs.attention.seed);
    nb_op_args args = {.op = NB_OP_FLASH_ATTENTION, .dtype = q0->dtype, .in = {q, k, v, lse, mask},
                       .n_in = 5, .attrs = attrs};
    if (nb__dispatch_new(fn, &args, 4, out_shape, q0->dtype, &out) != NB_OK) return K(NULL);
    K(out);
    nb_tensor *saved_out = K(nb_detach(out)); /* the node must not hold its own output */
    const nb_tensor *saved[6] = {q0, c->k, c->v, saved_out, lse, mask};
    if (s->status == NB_OK && nb__record(out, NB_OP_FLASH_ATTENTION, 6, saved, &attrs, flash_backward) != NB_OK)
        K(NULL);
    return out;
}

typedef nb_tensor *(*attention_impl)(nb_scratch *s, const attention_call *c);

static nb_tensor *attention(const char *fn, attention_impl impl, const nb_tensor *q,
                            const nb_tensor *k, const nb_tensor *v, const nb_tensor *mask,
                            bool causal, double dropout_p, double scale, nb_generator *gen) {
    attention_call call = {q, k, v, mask, causal, dropout_p, scale, gen};
    if (check_attention(fn, &call) != NB_OK) return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    if (!impl) impl = has_fused_kernel(&call) && !(mask && mask->requires_grad) ? fused : composed;
    nb_tensor *out = NULL;
    return nb__scratch_finish(s, impl(s, &call), &out) == NB_OK ? out : NULL;
}

nb_tensor *nb_scaled_dot_product_attention(const nb_tensor *q, const nb_tensor *k,
                                           const nb_tensor *v, const nb_tensor *mask, bool causal,
                                           double dropout_p, double scale, nb_generator *gen) {
    return attention("nb_scaled_dot_product_attention", NULL, q, k, v, mask, causal, dropout_p,
                     scale, gen);
}

nb_tensor *nb_flash_attention(const nb_tensor *q, const nb_tensor *k, const nb_tensor *v,
                              const nb_tensor *mask, bool causal, double dropout_p, double scale,
                              nb_generator *gen) {
    return attention("nb_flash_attention", fused, q, k, v, mask, causal, dropout_p, scale, gen);
}

nb_tensor *nb_attention_composed(const nb_tensor *q, const nb_tensor *k, const nb_tensor *v,
                                 const nb_tensor *mask, bool causal, double dropout_p,
                                 double scale, nb_generator *gen) {
    return attention("nb_attention_composed", composed, q, k, v, mask, causal, dropout_p, scale, gen);
}
