/* Transformer layers: Embedding, MultiheadAttention (GQA, RoPE, a KV cache
 * for decoding), the pre-norm decoder block and a GPT built from them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define K(expr) nb__keep(s, (expr))

static nb_module *child(const nb_module *m, const char *name) {
    for (int i = 0; i < m->n_children; i++)
        if (strcmp(m->child_names[i], name) == 0) return m->children[i];
    return NULL;
}

/* ---- Embedding ---- */

static nb_tensor *embedding_forward(nb_module *m, const nb_tensor *indices) {
    return nb_embedding(nb__module_param(m, "weight"), indices);
}

nb_module *nb_nn_embedding(int64_t num, int64_t dim, nb_dtype dtype, nb_device device,
                           nb_generator *gen) {
    if (num <= 0 || dim <= 0 || !nb_dtype_is_float(dtype)) {
        nb__error(nb_dtype_is_float(dtype) ? NB_ERR_INVALID : NB_ERR_DTYPE, "nb_nn_embedding: needs positive sizes and a float dtype, got "
                  "%lld, %lld and %s", (long long)num, (long long)dim, nb_dtype_name(dtype));
        return NULL;
    }
    nb_module *m = nb__module_new("Embedding", "nb_nn_embedding", embedding_forward);
    int64_t shape[2] = {num, dim};
    nb_tensor *weight = m ? nb_empty(2, shape, dtype, device) : NULL;
    if (weight && nb_init_normal(weight, 0, 1, gen) != NB_OK) {
        nb_release(weight);
        weight = NULL;
    }
    return m && nb__module_add_param(m, "weight", weight) ? m : NULL;
}

/* ---- MultiheadAttention ---- */

static int64_t head_dim(const nb_attention_config *c) { return c->dim / c->heads; }

/* Columns [first, first + heads * D) of the projection [B, S, *] as
 * [B, heads, S, D]. */
static nb_tensor *heads_of(nb_scratch *s, const nb_tensor *qkv, int64_t first, int heads, int64_t d) {
    if (!qkv) return NULL; /* the projection failed; s holds why */
    int64_t shape[4] = {qkv->shape[0], qkv->shape[1], heads, d};
    nb_tensor *cols = K(nb_slice(qkv, 2, first, first + heads * d, 1));
    return K(nb_transpose(K(nb_reshape(cols, 4, shape)), 1, 2));
}

/* Appends k or v [B, Hkv, S, D] at the cache's end; the filled part as a view. */
static nb_tensor *cached(nb_scratch *s, nb_tensor *cache, int64_t length, const nb_tensor *t) {
    if (!t) return NULL;
    nb_tensor *slot = K(nb_slice(cache, 2, length, length + t->shape[2], 1));
    if (slot && nb__copy_into(slot, t) != NB_OK) K(NULL);
    return K(nb_slice(cache, 2, 0, length + t->shape[2], 1));
}

static nb_status check_cache(const nb_module *m, const nb_tensor *x) {
    const nb_kv_cache *c = &m->cache;
    NB_CHECK(x->shape[0] == c->k->shape[0], NB_ERR_SHAPE,
             "nb_attention_forward: the KV cache holds %lld sequences but x is %s",
             (long long)c->k->shape[0], nb__tensor_shape_str(x));
    NB_CHECK(c->length + x->shape[1] <= c->k->shape[2], NB_ERR_SHAPE,
             "nb_attention_forward: the KV cache holds %lld positions, %lld used, x adds %lld",
             (long long)c->k->shape[2], (long long)c->length, (long long)x->shape[1]);
    return NB_OK;
}

static nb_tensor *attention_forward(nb_module *m, const nb_tensor *x, const nb_tensor *mask) {
    if (!m || strcmp(m->type, "MultiheadAttention") != 0) {
        nb__error(NB_ERR_INVALID, "nb_attention_forward: needs a MultiheadAttention module, got %s",
                  m ? m->type : "NULL");
        return NULL;
    }
    const nb_attention_config *c = &m->config.attention;
    if (!x || x->ndim != 3 || x->shape[2] != c->dim) {
        nb__error(NB_ERR_SHAPE, "nb_attention_forward: needs x [B, S, %lld], got %s",
                  (long long)c->dim, x ? nb__tensor_shape_str(x) : "NULL");
        return NULL;
    }
    if (m->cache.k && check_cache(m, x) != NB_OK) return NULL;
    nb_scratch scratch = {0}, *s = &scratch;
    int64_t d = head_dim(c), offset = m->cache.k ? m->cache.length : 0;
    nb_module *qkv_proj = child(m, "qkv"), *out_proj = child(m, "out");
    nb_tensor *qkv = K(nb_module_forward(qkv_proj, x));
    nb_tensor *q = heads_of(s, qkv, 0, c->heads, d);
    nb_tensor *k = heads_of(s, qkv, c->heads * d, c->kv_heads, d);
    nb_tensor *v = heads_of(s, qkv, (c->heads + c->kv_heads) * d, c->kv_heads, d);
    if (c->rope) {
        double base = c->rope_base > 0 ? c->rope_base : 10000;
        q = K(nb_rope(q, offset, base));
        k = K(nb_rope(k, offset, base));
    }
    if (m->cache.k && s->status == NB_OK) {
        k = cached(s, m->cache.k, offset, k);
        v = cached(s, m->cache.v, offset, v);
        if (s->status == NB_OK) m->cache.length += x->shape[1];
    }
    double dropout = m->training ? c->dropout : 0;
    nb_tensor *y = K(nb_scaled_dot_product_attention(q, k, v, mask, c->causal, dropout, 0, m->config.gen));
    int64_t merged[3] = {x->shape[0], x->shape[1], c->dim};
    y = K(nb_reshape(K(nb_contiguous(K(nb_transpose(y, 1, 2)))), 3, merged));
    nb_tensor *r = K(nb_module_forward(out_proj, y)), *out = NULL;
    return nb__scratch_finish(s, r, &out) == NB_OK ? out : NULL;
}

nb_tensor *nb_attention_forward(nb_module *m, const nb_tensor *x, const nb_tensor *mask) {
    const char *outer = nb__enter("nb_attention_forward");
    nb_tensor *y = attention_forward(m, x, mask);
    nb__leave(outer);
    return y;
}

static nb_tensor *attention_module_forward(nb_module *m, const nb_tensor *x) {
    return nb_attention_forward(m, x, NULL);
}

nb_module *nb_nn_multihead_attention(const nb_attention_config *config, nb_dtype dtype,
                                     nb_device device, nb_generator *gen) {
    nb_attention_config c = config ? *config : (nb_attention_config){0};
    if (c.kv_heads == 0) c.kv_heads = c.heads;
    bool base_ok = c.rope_base == 0 || (c.rope_base > 0 && isfinite(c.rope_base));
    if (!config || c.heads <= 0 || c.dim <= 0 || c.dim % c.heads || c.kv_heads <= 0 ||
        c.heads % c.kv_heads || (c.rope && head_dim(&c) % 2) || !(c.dropout >= 0 && c.dropout < 1) ||
        !base_ok) {
        nb__error(NB_ERR_INVALID, "nb_nn_multihead_attention: needs heads dividing dim, kv_heads "
                  "dividing heads, an even head dim with RoPE, dropout in [0, 1) and rope_base 0 "
                  "(10000) or finite > 0, got %s dim %lld, heads %d, kv_heads %d, dropout %g, "
                  "rope_base %g", config ? "" : "a NULL config:", (long long)c.dim, c.heads,
                  c.kv_heads, c.dropout, c.rope_base);
        return NULL;
    }
    int64_t projected = (c.heads + 2 * c.kv_heads) * head_dim(&c);
    nb_module *parts[2];
    parts[0] = nb_nn_linear(c.dim, projected, c.bias, dtype, device, gen);
    parts[1] = nb_nn_linear(c.dim, c.dim, c.bias, dtype, device, gen);
    const char *names[2] = {"qkv", "out"};
    nb_module *m = nb__sequential_named("MultiheadAttention", "nb_nn_multihead_attention", 2, parts,
                                        names);
    if (!m) return NULL;
    m->forward = attention_module_forward;
    m->config.attention = c;
    m->config.gen = gen;
    return m;
}

static nb_status set_cache(nb_module *m, int64_t batch, int64_t capacity) {
    for (int i = 0; i < m->n_children; i++) NB_TRY(set_cache(m->children[i], batch, capacity));
    if (strcmp(m->type, "MultiheadAttention") != 0) return NB_OK;
    nb_release(m->cache.k);
    nb_release(m->cache.v);
    m->cache = (nb_kv_cache){0};
    if (capacity == 0) return NB_OK;
    const nb_tensor *w = nb__module_param(child(m, "qkv"), "weight");
    int64_t shape[4] = {batch, m->config.attention.kv_heads, capacity, head_dim(&m->config.attention)};
    nb_tensor *k = nb_zeros(4, shape, w->dtype, w->storage->device);
    nb_tensor *v = k ? nb_zeros(4, shape, w->dtype, w->storage->device) : NULL;
    if (!v) { /* no half cache: the forward reads both or neither */
        nb_release(k);
        return nb_last_status();
    }
    m->cache = (nb_kv_cache){k, v, 0};
    return NB_OK;
}

nb_status nb_module_set_kv_cache(nb_module *m, int64_t batch, int64_t capacity) {
    NB_CHECK(m && batch > 0 && capacity >= 0, NB_ERR_INVALID,
             "nb_module_set_kv_cache: needs a module, batch > 0 and capacity >= 0, got %lld and %lld",
             (long long)batch, (long long)capacity);
    return set_cache(m, batch, capacity);
}

/* ---- the decoder block ---- */

/* x + drop(branch(norm(x))). */
static nb_tensor *residual(nb_scratch *s, nb_module *block, const nb_tensor *x, const char *norm,
                           const char *branch) {
    nb_tensor *h = K(nb_module_forward(child(block, branch), K(nb_module_forward(child(block, norm), x))));
    return K(nb_add(x, K(nb_module_forward(child(block, "drop"), h))));
}

static nb_tensor *block_forward(nb_module *m, const nb_tensor *x) {
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *h = residual(s, m, x, "norm1", "attn");
    nb_tensor *r = s->status == NB_OK ? residual(s, m, h, "norm2", "mlp") : NULL, *out = NULL;
    return nb__scratch_finish(s, r, &out) == NB_OK ? out : NULL;
}

static int64_t mlp_width(const nb_transformer_config *c) {
    if (c->hidden > 0) return c->hidden;
    if (!c->swiglu) return 4 * c->attention.dim;
    return (8 * c->attention.dim / 3 + 63) / 64 * 64; /* Llama's rounding */
}

static nb_module *row_norm(const nb_transformer_config *c, nb_dtype dtype, nb_device device) {
    double eps = c->eps > 0 ? c->eps : 1e-5;
    return c->rms_norm ? nb_nn_rms_norm(c->attention.dim, eps, true, dtype, device)
                       : nb_nn_layer_norm(c->attention.dim, eps, true, dtype, device);
}

nb_module *nb_nn_transformer_block(const nb_transformer_config *config, nb_dtype dtype,
                                   nb_device device, nb_generator *gen) {
    if (!config || !(config->dropout >= 0 && config->dropout < 1) || config->hidden < 0 ||
        !(config->eps >= 0 && isfinite(config->eps))) {
        nb__error(NB_ERR_INVALID, "nb_nn_transformer_block: needs a config with dropout in [0, 1), "
                  "hidden >= 0 (0: the default) and a finite eps >= 0 (0: 1e-5), got %s%g, %lld "
                  "and %g", config ? "" : "NULL: ", config ? config->dropout : 0,
                  config ? (long long)config->hidden : 0LL, config ? config->eps : 0);
        return NULL;
    }
    const nb_transformer_config *c = config;
    int64_t dim = c->attention.dim, hidden = mlp_width(c);
    /* one statement each: the weights draw from gen in this order */
    nb_module *parts[5], *mlp[3];
    parts[0] = row_norm(c, dtype, device);
    parts[1] = nb_nn_multihead_attention(&c->attention, dtype, device, gen);
    parts[2] = row_norm(c, dtype, device);
    mlp[0] = nb_nn_linear(dim, c->swiglu ? 2 * hidden : hidden, c->attention.bias, dtype, device, gen);
    mlp[1] = nb_nn_activation(c->swiglu ? NB_ACT_SWIGLU : NB_ACT_GELU_TANH);
    mlp[2] = nb_nn_linear(hidden, dim, c->attention.bias, dtype, device, gen);
    const char *mlp_names[3] = {"fc1", "act", "fc2"};
    const char *names[5] = {"norm1", "attn", "norm2", "mlp", "drop"};
    parts[3] = nb__sequential_named("MLP", "nb_nn_transformer_block", 3, mlp, mlp_names);
    parts[4] = nb_nn_dropout(c->dropout, gen);
    nb_module *m = nb__sequential_named("TransformerBlock", "nb_nn_transformer_block", 5, parts, names);
    if (m) m->forward = block_forward;
    return m;
}

/* ---- GPT ---- */

/* The position of the next token: what the first block's cache holds. */
static int64_t next_position(const nb_module *gpt) {
    const nb_module *blocks = child(gpt, "blocks");
    const nb_module *attn = blocks && blocks->n_children ? child(blocks->children[0], "attn") : NULL;
    return attn && attn->cache.k ? attn->cache.length : 0;
}

static nb_tensor *gpt_forward(nb_module *m, const nb_tensor *tokens) {
    const nb_gpt_config *c = &m->config.gpt;
    int64_t offset = next_position(m);
    if (!tokens || tokens->ndim != 2 || offset + tokens->shape[1] > c->context) {
        nb__error(NB_ERR_SHAPE, "nb_nn_gpt: needs tokens [B, S] with S at most the context %lld "
                  "(%lld cached), got %s", (long long)c->context, (long long)offset,
                  tokens ? nb__tensor_shape_str(tokens) : "NULL");
        return NULL;
    }
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *h = K(nb_module_forward(child(m, "wte"), tokens));
    nb_module *wpe = child(m, "wpe");
    if (wpe) {
        nb_device device = tokens->storage->device;
        nb_tensor *positions = K(nb_arange((double)offset, (double)(offset + tokens->shape[1]), 1, NB_I64, device));
        h = K(nb_add(h, K(nb_module_forward(wpe, positions))));
    }
    h = K(nb_module_forward(child(m, "norm"), K(nb_module_forward(child(m, "blocks"), h))));
    nb_module *head = child(m, "head");
    nb_tensor *logits = head ? K(nb_module_forward(head, h))
                             : K(nb_linear(h, nb__module_param(child(m, "wte"), "weight"), NULL));
    nb_tensor *out = NULL;
    return nb__scratch_finish(s, logits, &out) == NB_OK ? out : NULL;
}

/* GPT-2's initialization over every matrix of m. */
static nb_status init_gpt(nb_module *m, int layers, nb_generator *gen) {
    int n = nb_module_parameters(m, NULL, 0);
    nb_named_tensor *params = nb__malloc(sizeof *params * (size_t)n);
    NB_CHECK(params, NB_ERR_OOM, "nb_nn_gpt: out of host memory listing %d parameters", n);
    nb_module_parameters(m, params, n);
    nb_status status = NB_OK;
    for (int i = 0; i < n && status == NB_OK; i++) {
        nb_tensor *t = params[i].tensor;
        const char *name = params[i].name;
        bool residual_out = strstr(name, "attn.out.weight") || strstr(name, "mlp.fc2.weight");
        if (t->ndim == 2)
            status = nb_init_normal(t, 0, residual_out ? 0.02 / sqrt(2.0 * layers) : 0.02, gen);
    }
    free(params);
    return status;
}

nb_module *nb_nn_gpt(const nb_gpt_config *config, nb_dtype dtype, nb_device device,
                     nb_generator *gen) {
    if (!config || config->vocab <= 0 || config->context <= 0 || config->layers <= 0 ||
        config->layers > 128) {
        nb__error(NB_ERR_INVALID, "nb_nn_gpt: needs vocab, context and 1 to 128 layers, got %lld, "
                  "%lld and %d", config ? (long long)config->vocab : 0LL,
                  config ? (long long)config->context : 0LL, config ? config->layers : 0);
        return NULL;
    }
    const nb_gpt_config *c = config;
    int64_t dim = c->block.attention.dim;
    nb_module *parts[5], *blocks[128];
    const char *names[5];
    int n = 0;
    names[n] = "wte", parts[n++] = nb_nn_embedding(c->vocab, dim, dtype, device, gen);
    if (!c->block.attention.rope)
        names[n] = "wpe", parts[n++] = nb_nn_embedding(c->context, dim, dtype, device, gen);
    for (int i = 0; i < c->layers; i++) blocks[i] = nb_nn_transformer_block(&c->block, dtype, device, gen);
    names[n] = "blocks", parts[n++] = nb_nn_sequential(c->layers, blocks);
    names[n] = "norm", parts[n++] = row_norm(&c->block, dtype, device);
    if (!c->tied) names[n] = "head", parts[n++] = nb_nn_linear(dim, c->vocab, false, dtype, device, gen);
    nb_module *m = nb__sequential_named("GPT", "nb_nn_gpt", n, parts, names);
    if (!m) return NULL;
    m->forward = gpt_forward;
    m->config.gpt = *c;
    if (init_gpt(m, c->layers, gen) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_tensor *nb_gpt_loss(nb_module *gpt, const nb_tensor *tokens, const nb_tensor *targets) {
    if (!gpt || strcmp(gpt->type, "GPT") != 0 || !targets) {
        nb__error(NB_ERR_INVALID, "nb_gpt_loss: needs a GPT module and targets");
        return NULL;
    }
    const char *outer = nb__enter("nb_gpt_loss");
    nb_scratch scratch = {0}, *s = &scratch;
    nb_tensor *logits = K(nb_module_forward(gpt, tokens));
    int64_t rows[2] = {-1, gpt->config.gpt.vocab}, flat = -1;
    nb_tensor *loss = K(nb_cross_entropy(K(nb_reshape(logits, 2, rows)), K(nb_reshape(targets, 1, &flat)),
                                         NB_REDUCTION_MEAN, 0, -100));
    nb_tensor *out = NULL;
    nb_status status = nb__scratch_finish(s, loss, &out);
    nb__leave(outer);
    return status == NB_OK ? out : NULL;
}
