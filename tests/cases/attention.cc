// The op harness's cases: scaled dot-product attention, fused and composed.
#include "cases.h"

namespace op_cases {

// ---- attention ----

struct AttentionConfig {
    int mask;    // 0 none, 1 bool (input 3), 2 additive: sin(linear index) where input 3 keeps
    bool causal;
    double dropout; // keep draws from a generator seeded kAttentionSeed
};
const uint64_t kAttentionSeed = 0x5eed;

// Output [B, H, Sq, Dv], or with dout the gradients of q, k and v flattened
// and concatenated, in double, straight from the definition.
Host attention_ref(const std::vector<Host> &h, const AttentionConfig &cfg, const Host *dout) {
    const Host &q = h[0], &k = h[1], &v = h[2];
    int64_t b = q.shape[0], hq = q.shape[1], sq = q.shape[2], d = q.shape[3];
    int64_t hkv = k.shape[1], sk = k.shape[2], dv = v.shape[3];
    double scale = 1 / std::sqrt((double)d), keep_scale = 1 / (1 - cfg.dropout);
    Host out({b, hq, sq, dv}), dq(q.shape), dk(k.shape), dvg(v.shape);
    for (int64_t n = 0; n < b; n++)
        for (int64_t head = 0; head < hq; head++)
            for (int64_t i = 0; i < sq; i++) {
                int64_t kv = head / (hq / hkv);
                std::vector<double> s(sk), p(sk, 0), keep(sk, 1);
                double top = -INFINITY;
                for (int64_t j = 0; j < sk; j++) {
                    double dot = 0;
                    for (int64_t e = 0; e < d; e++) dot += q.at({n, head, i, e}) * k.at({n, kv, j, e});
                    s[j] = dot * scale;
                    if (cfg.mask) {
                        const Host &m = h[3];
                        std::vector<int64_t> idx = {n, head, i, j};
                        bool kept = m.broadcast_at(idx) != 0;
                        size_t lead = idx.size() - m.shape.size();
                        int64_t linear = 0;
                        for (size_t a = 0; a < m.shape.size(); a++)
                            linear = linear * m.shape[a] + (m.shape[a] == 1 ? 0 : idx[a + lead]);
                        s[j] += !kept ? -INFINITY : cfg.mask == 2 ? std::sin((double)linear) : 0;
                    }
                    if (cfg.causal && j > i + sk - sq) s[j] = -INFINITY;
                    top = std::max(top, s[j]);
                    if (cfg.dropout > 0) {
                        auto w = PhiloxRef::block(kAttentionSeed, (uint64_t)(((n * hq + head) * sq + i) * sk + j));
                        keep[j] = PhiloxRef::unit(w[0], w[1]) < 1 - cfg.dropout ? keep_scale : 0;
                    }
                }
                if (top == -INFINITY) continue; // sees no key: zeros
                double sum = 0;
                for (int64_t j = 0; j < sk; j++) sum += p[j] = std::exp(s[j] - top);
                for (int64_t j = 0; j < sk; j++) p[j] /= sum;
                for (int64_t e = 0; e < dv; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < sk; j++) acc += p[j] * keep[j] * v.at({n, kv, j, e});
                    out.v[out.ravel({n, head, i, e})] = acc;
                }
                if (!dout) continue;
                std::vector<double> dp(sk);
                double delta = 0;
                for (int64_t j = 0; j < sk; j++) {
                    double dot = 0;
                    for (int64_t e = 0; e < dv; e++) {
                        double g = dout->at({n, head, i, e});
                        dot += g * v.at({n, kv, j, e});
                        dvg.v[dvg.ravel({n, kv, j, e})] += p[j] * keep[j] * g;
                    }
                    dp[j] = dot * keep[j];
                    delta += p[j] * dp[j];
                }
                for (int64_t j = 0; j < sk; j++) {
                    double ds = p[j] * (dp[j] - delta) * scale;
                    for (int64_t e = 0; e < d; e++) {
                        dq.v[dq.ravel({n, head, i, e})] += ds * k.at({n, kv, j, e});
                        dk.v[dk.ravel({n, kv, j, e})] += ds * q.at({n, head, i, e});
                    }
                }
            }
    if (!dout) return out;
    Host all({dq.numel() + dk.numel() + dvg.numel()});
    std::copy(dq.v.begin(), dq.v.end(), all.v.begin());
    std::copy(dk.v.begin(), dk.v.end(), all.v.begin() + dq.numel());
    std::copy(dvg.v.begin(), dvg.v.end(), all.v.begin() + dq.numel() + dk.numel());
    return all;
}

using AttentionFn = nb_tensor *(*)(const nb_tensor *, const nb_tensor *, const nb_tensor *,
                                   const nb_tensor *, bool, double, double, nb_generator *);

// Runs fn on t (q, k, v and, for a masked config, the bool mask).
nb_tensor *run_attention(AttentionFn fn, const Tensors &t, const AttentionConfig &cfg) {
    T mask;
    if (cfg.mask == 1) mask = T(nb_retain(t[3]));
    if (cfg.mask == 2) {
        int64_t count = nb_numel(t[3]);
        T index(nb_arange(0, (double)count, 1, NB_F64, nb_device_of(t[0])));
        T wave(nb_sin(index));
        T cast(wave.t ? nb_cast(wave, nb_dtype_of(t[0])) : nullptr);
        T shaped(cast.t ? nb_reshape(cast, nb_ndim(t[3]), nb_shape(t[3])) : nullptr);
        T hidden(nb_logical_not(t[3]));
        mask = T(shaped.t && hidden.t ? nb_masked_fill(shaped, hidden, -INFINITY) : nullptr);
        if (!mask.t) return nullptr;
    }
    nb_generator *gen = nb_generator_create(kAttentionSeed);
    nb_tensor *out = fn(t[0], t[1], t[2], mask.t, cfg.causal, cfg.dropout, 0, gen);
    nb_generator_free(gen);
    return out;
}

void attention_cases() {
    // q, k, v shapes: Sq != Sk and D != Dv; grouped-query; multi-query; lengths
    // past one tile (64 queries, 128 keys) that are not multiples of it
    const std::vector<std::vector<Shape>> plain = {
        {{2, 2, 5, 4}, {2, 2, 7, 4}, {2, 2, 7, 3}},
        {{1, 4, 6, 8}, {1, 2, 6, 8}, {1, 2, 6, 8}},
        {{2, 3, 3, 4}, {2, 1, 5, 4}, {2, 1, 5, 4}},
        {{1, 1, 70, 4}, {1, 1, 131, 4}, {1, 1, 131, 2}},
        {{1, 2, 0, 4}, {1, 2, 3, 4}, {1, 2, 3, 4}}};
    // with a mask: full, key-padding [B, 1, 1, Sk] and 2-D [Sq, Sk]
    const std::vector<std::vector<Shape>> masked = {
        {{2, 2, 5, 4}, {2, 2, 7, 4}, {2, 2, 7, 3}, {2, 2, 5, 7}},
        {{2, 4, 6, 8}, {2, 2, 6, 8}, {2, 2, 6, 8}, {2, 1, 1, 6}},
        {{1, 1, 70, 4}, {1, 1, 131, 4}, {1, 1, 131, 2}, {70, 131}}};
    // causal: Sq > Sk leaves the first queries seeing nothing
    const std::vector<std::vector<Shape>> causal = {
        {{2, 2, 5, 4}, {2, 2, 7, 4}, {2, 2, 7, 3}},
        {{1, 2, 7, 4}, {1, 2, 5, 4}, {1, 2, 5, 4}},
        {{1, 2, 130, 4}, {1, 1, 130, 4}, {1, 1, 130, 4}}};
    // head dims 64 and 128, which the CUDA kernel takes (compared with the
    // reference in every dtype, too large for finite differences)
    const std::vector<std::vector<Shape>> wide = {
        {{1, 2, 70, 64}, {1, 1, 131, 64}, {1, 1, 131, 64}},
        {{2, 2, 33, 128}, {2, 2, 20, 128}, {2, 2, 20, 128}}};
    const std::vector<std::vector<Shape>> wide_masked = {
        {{1, 2, 70, 64}, {1, 1, 131, 64}, {1, 1, 131, 64}, {70, 131}},
        {{2, 2, 33, 128}, {2, 2, 20, 128}, {2, 2, 20, 128}, {2, 1, 1, 20}}};
    struct Kind {
        std::string name;
        AttentionConfig cfg;
        const std::vector<std::vector<Shape>> *shapes, *wide_shapes;
    };
    const std::vector<Kind> kinds = {{"", {0, false, 0}, &plain, &wide},
                                     {"_bool_mask", {1, false, 0}, &masked, &wide_masked},
                                     {"_additive_mask", {2, false, 0}, &masked, &wide_masked},
                                     {"_causal", {0, true, 0}, &causal, &wide},
                                     {"_causal_masked", {1, true, 0}, &masked, &wide_masked},
                                     {"_dropout", {0, false, 0.3}, &plain, &wide},
                                     {"_causal_dropout", {2, true, 0.25}, &masked, &wide_masked}};
    const Input Q = F(-1.5, 1.5);
    for (const Kind &kind : kinds) {
        AttentionConfig cfg = kind.cfg;
        std::vector<Input> inputs = {Q, Q, Q};
        if (cfg.mask) inputs.push_back(M);
        auto ref = [cfg](const std::vector<Host> &h) { return attention_ref(h, cfg, nullptr); };
        add({NB_OP_SCALED_DOT_PRODUCT_ATTENTION, "attention_composed" + kind.name, inputs, *kind.shapes,
             FLOATS, [cfg](const Tensors &t) { return run_attention(nb_attention_composed, t, cfg); },
             ref, true, 2});
        // the fused kernel where the device has one, else the composed ops
        auto fused = [cfg](const Tensors &t) { return run_attention(nb_scaled_dot_product_attention, t, cfg); };
        add({NB_OP_FLASH_ATTENTION, "attention" + kind.name, inputs, *kind.shapes, FLOATS, fused, ref, true, 2});
        add({NB_OP_FLASH_ATTENTION, "attention_wide" + kind.name, inputs, *kind.wide_shapes, FLOATS, fused,
             ref, false, 2});
        // the backward through autograd with an incoming gradient (the last input)
        auto with_grad = [](std::vector<std::vector<Shape>> variants) {
            for (auto &v : variants) v.push_back({v[0][0], v[0][1], v[0][2], v[2][3]});
            return variants;
        };
        inputs.push_back(Q);
        auto backward = [cfg](const Tensors &t) -> nb_tensor * {
            T q(nb_detach(t[0])), k(nb_detach(t[1])), v(nb_detach(t[2]));
            for (nb_tensor *leaf : {q.t, k.t, v.t})
                if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
            Tensors args = {q.t, k.t, v.t};
            if (cfg.mask) args.push_back(t[3]);
            T y(run_attention(nb_scaled_dot_product_attention, args, cfg));
            if (!y.t || nb_backward(y, t.back(), false) != NB_OK) return nullptr;
            int64_t flat = -1;
            T dq(nb_grad(q)), dk(nb_grad(k)), dv(nb_grad(v));
            T parts[3] = {T(nb_reshape(dq, 1, &flat)), T(nb_reshape(dk, 1, &flat)), T(nb_reshape(dv, 1, &flat))};
            const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
            return nb_cat(3, all, 0);
        };
        auto backward_ref = [cfg](const std::vector<Host> &h) { return attention_ref(h, cfg, &h.back()); };
        add({NB_OP_FLASH_ATTENTION_BACKWARD, "attention_backward" + kind.name, inputs,
             with_grad(*kind.shapes), FLOATS, backward, backward_ref, false, 3});
        add({NB_OP_FLASH_ATTENTION_BACKWARD, "attention_backward_wide" + kind.name, inputs,
             with_grad(*kind.wide_shapes), FLOATS, backward, backward_ref, false, 3});
    }
}

} // namespace op_cases
