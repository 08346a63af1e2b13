// The transformer path: a decoder block against a float64 implementation
// written here (outputs and gradients), the fused attention against the
// composed one at sizes past several tiles (and the CUDA kernel in f16 and
// bf16 against float64), the KV-cache decode against the full forward, and
// a short GPT training run whose loss must fall.
#include <map>

#include "harness.h"

namespace {

struct Module {
    nb_module *m;
    explicit Module(nb_module *p) : m(p) {}
    ~Module() { nb_module_free(m); }
    operator nb_module *() const { return m; }
};

using Params = std::map<std::string, Host>;

Params params_of(const nb_module *m) {
    nb_named_tensor named[256];
    int n = nb_module_parameters(m, named, 256);
    Params out;
    for (int i = 0; i < n; i++) out[named[i].name] = read_tensor(named[i].tensor);
    return out;
}

// ---- a float64 decoder block: rows of x [S, dim] for one sequence ----

using Rows = std::vector<std::vector<double>>;

Rows linear(const Rows &x, const Host &w, const Host *b) {
    int64_t out = w.shape[0], in = w.shape[1];
    Rows y(x.size(), std::vector<double>(out));
    for (size_t r = 0; r < x.size(); r++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? b->v[o] : 0;
            for (int64_t i = 0; i < in; i++) acc += x[r][i] * w.v[o * in + i];
            y[r][o] = acc;
        }
    return y;
}

Rows norm(const Rows &x, const Host &w, const Host *b, bool rms) {
    Rows y = x;
    for (auto &row : y) {
        double n = (double)row.size(), mean = 0, sq = 0;
        for (double v : row) mean += v / n;
        if (rms) mean = 0;
        for (double v : row) sq += (v - mean) * (v - mean) / n;
        for (size_t i = 0; i < row.size(); i++)
            row[i] = (row[i] - mean) / std::sqrt(sq + 1e-5) * w.v[i] + (b ? b->v[i] : 0);
    }
    return y;
}

// Head h's columns of q/k (S x d), rotated by RoPE at positions 0..S-1.
Rows head(const Rows &proj, int64_t first, int64_t d, bool rope) {
    Rows out(proj.size(), std::vector<double>(d));
    for (size_t p = 0; p < proj.size(); p++) {
        for (int64_t i = 0; i < d; i++) out[p][i] = proj[p][first + i];
        if (!rope) continue;
        for (int64_t i = 0; i < d / 2; i++) {
            double angle = (double)p * std::pow(10000.0, -2.0 * (double)i / (double)d);
            double a = out[p][i], b = out[p][i + d / 2];
            out[p][i] = a * std::cos(angle) - b * std::sin(angle);
            out[p][i + d / 2] = b * std::cos(angle) + a * std::sin(angle);
        }
    }
    return out;
}

struct BlockSpec {
    int64_t dim;
    int heads, kv_heads;
    bool rms, swiglu, rope;
};

Rows block_ref(const Rows &x, const Params &p, const BlockSpec &s) {
    auto get = [&](const std::string &n) -> const Host * {
        auto it = p.find(n);
        return it == p.end() ? nullptr : &it->second;
    };
    int64_t d = s.dim / s.heads, group = s.heads / s.kv_heads, seq = (int64_t)x.size();
    Rows h = norm(x, *get("norm1.weight"), get("norm1.bias"), s.rms);
    Rows qkv = linear(h, *get("attn.qkv.weight"), get("attn.qkv.bias"));
    Rows merged(seq, std::vector<double>(s.dim, 0));
    for (int hq = 0; hq < s.heads; hq++) {
        int kv = hq / group;
        Rows q = head(qkv, hq * d, d, s.rope), k = head(qkv, (s.heads + kv) * d, d, s.rope);
        Rows v = head(qkv, (s.heads + s.kv_heads + kv) * d, d, false);
        for (int64_t i = 0; i < seq; i++) {
            std::vector<double> w(i + 1);
            double top = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= i; j++) { // causal
                double dot = 0;
                for (int64_t e = 0; e < d; e++) dot += q[i][e] * k[j][e];
                w[j] = dot / std::sqrt((double)d);
                top = std::max(top, w[j]);
            }
            for (double &e : w) sum += e = std::exp(e - top);
            for (int64_t j = 0; j <= i; j++)
                for (int64_t e = 0; e < d; e++) merged[i][hq * d + e] += w[j] / sum * v[j][e];
        }
    }
    Rows attn = linear(merged, *get("attn.out.weight"), get("attn.out.bias"));
    Rows r1 = x;
    for (int64_t i = 0; i < seq; i++)
        for (int64_t e = 0; e < s.dim; e++) r1[i][e] += attn[i][e];
    Rows up = linear(norm(r1, *get("norm2.weight"), get("norm2.bias"), s.rms), *get("mlp.fc1.weight"),
                     get("mlp.fc1.bias"));
    size_t width = s.swiglu ? up[0].size() / 2 : up[0].size();
    Rows act(seq, std::vector<double>(width));
    for (int64_t i = 0; i < seq; i++)
        for (size_t e = 0; e < width; e++) {
            double a = up[i][e];
            if (s.swiglu) act[i][e] = a / (1 + std::exp(-a)) * up[i][e + width];
            else act[i][e] = 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
        }
    Rows down = linear(act, *get("mlp.fc2.weight"), get("mlp.fc2.bias"));
    for (int64_t i = 0; i < seq; i++)
        for (int64_t e = 0; e < s.dim; e++) r1[i][e] += down[i][e];
    return r1;
}

// sum(block(x) * weights) over a batch x [B, S, dim].
double objective(const Host &x, const Params &p, const BlockSpec &s, const Host &weights) {
    int64_t b = x.shape[0], seq = x.shape[1];
    double total = 0;
    for (int64_t n = 0; n < b; n++) {
        Rows rows(seq, std::vector<double>(s.dim));
        for (int64_t i = 0; i < seq; i++)
            for (int64_t e = 0; e < s.dim; e++) rows[i][e] = x.at({n, i, e});
        Rows y = block_ref(rows, p, s);
        for (int64_t i = 0; i < seq; i++)
            for (int64_t e = 0; e < s.dim; e++) total += y[i][e] * weights.at({n, i, e});
    }
    return total;
}

void check_block(const BlockSpec &spec) {
    nb_generator *gen = nb_generator_create(3);
    nb_transformer_config config = {};
    config.attention = {spec.dim, spec.heads, spec.kv_heads, true, true, spec.rope, 0, 0};
    config.hidden = 12;
    config.rms_norm = spec.rms;
    config.swiglu = spec.swiglu;
    Module block(nb_nn_transformer_block(&config, NB_F64, nb_cpu(), gen));
    ASSERT_NE(block.m, nullptr) << nb_last_error();
    // random biases and norm weights, so that every parameter matters
    nb_named_tensor named[32];
    int n = nb_module_parameters(block, named, 32);
    nb_set_grad_enabled(false);
    for (int i = 0; i < n; i++)
        if (nb_ndim(named[i].tensor) == 1) {
            T noise(nb_uniform(1, nb_shape(named[i].tensor), 0.5, 1.5, NB_F64, nb_cpu(), gen));
            ASSERT_EQ(nb_copy_(named[i].tensor, noise), NB_OK) << nb_last_error();
        }
    nb_set_grad_enabled(true);
    Host x({2, 7, spec.dim}), weights(x.shape);
    for (int64_t i = 0; i < x.numel(); i++) {
        x.v[i] = std::sin(0.7 * (double)i);
        weights.v[i] = std::cos(1.3 * (double)i);
    }
    T input(make_tensor(x, NB_F64));
    ASSERT_EQ(nb_set_requires_grad(input, true), NB_OK);
    T y(nb_module_forward(block, input));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    Params p = params_of(block);
    // outputs
    Host got = read_tensor(y);
    for (int64_t b = 0; b < 2; b++) {
        Rows rows(7, std::vector<double>(spec.dim));
        for (int64_t i = 0; i < 7; i++)
            for (int64_t e = 0; e < spec.dim; e++) rows[i][e] = x.at({b, i, e});
        Rows want = block_ref(rows, p, spec);
        for (int64_t i = 0; i < 7; i++)
            for (int64_t e = 0; e < spec.dim; e++)
                EXPECT_NEAR(got.at({b, i, e}), want[i][e], 1e-10) << "output " << b << "," << i << "," << e;
    }
    // gradients: autograd against central differences of the float64 block
    T w(make_tensor(weights, NB_F64));
    ASSERT_EQ(nb_backward(y, w, false), NB_OK) << nb_last_error();
    const double eps = 1e-6;
    auto numeric = [&](Host &values, int64_t i, const std::function<double()> &f) {
        double saved = values.v[i];
        values.v[i] = saved + eps;
        double up = f();
        values.v[i] = saved - eps;
        double down = f();
        values.v[i] = saved;
        return (up - down) / (2 * eps);
    };
    T dx(nb_grad(input));
    Host gx = read_tensor(dx);
    for (int64_t i = 0; i < x.numel(); i += 3)
        EXPECT_NEAR(gx.v[i], numeric(x, i, [&] { return objective(x, p, spec, weights); }), 1e-6) << "dx " << i;
    for (int k = 0; k < n; k++) {
        T g(nb_grad(named[k].tensor));
        ASSERT_NE(g.t, nullptr) << named[k].name;
        Host gp = read_tensor(g);
        Host &values = p[named[k].name];
        for (int64_t i = 0; i < values.numel(); i += 5)
            EXPECT_NEAR(gp.v[i], numeric(values, i, [&] { return objective(x, p, spec, weights); }), 1e-6)
                << named[k].name << " " << i;
    }
    nb_generator_free(gen);
}

TEST(Transformer, LayerNormGeluBlockMatchesFloat64) { check_block({8, 2, 2, false, false, false}); }

TEST(Transformer, RmsNormSwigluRopeGqaBlockMatchesFloat64) { check_block({8, 4, 2, true, true, true}); }

// ---- fused against composed ----

TEST(Attention, FusedMatchesComposedPastManyTiles) {
    nb_generator *gen = nb_generator_create(9);
    const int64_t qs[4] = {2, 4, 300, 64}, ks[4] = {2, 2, 333, 64}, pad[4] = {2, 1, 1, 333};
    T q(nb_normal(4, qs, 0, 1, NB_F32, nb_cpu(), gen)), k(nb_normal(4, ks, 0, 1, NB_F32, nb_cpu(), gen));
    T v(nb_normal(4, ks, 0, 1, NB_F32, nb_cpu(), gen)), g(nb_normal(4, qs, 0, 1, NB_F32, nb_cpu(), gen));
    T u(nb_uniform(4, pad, 0, 1, NB_F32, nb_cpu(), gen)), cut(nb_full(0, nullptr, 0.1, NB_F32, nb_cpu()));
    T keep(nb_gt(u, cut)); // a key-padding mask hiding about a tenth of the keys
    for (bool causal : {false, true})
        for (double dropout : {0.0, 0.2}) {
            Host outs[2], grads[2][3];
            for (int fused = 0; fused < 2; fused++) {
                T lq(nb_detach(q)), lk(nb_detach(k)), lv(nb_detach(v));
                for (nb_tensor *t : {lq.t, lk.t, lv.t}) ASSERT_EQ(nb_set_requires_grad(t, true), NB_OK);
                nb_generator *drop = nb_generator_create(5);
                T y(fused ? nb_flash_attention(lq, lk, lv, keep, causal, dropout, 0, drop)
                          : nb_attention_composed(lq, lk, lv, keep, causal, dropout, 0, drop));
                nb_generator_free(drop);
                ASSERT_NE(y.t, nullptr) << nb_last_error();
                ASSERT_EQ(nb_backward(y, g, false), NB_OK) << nb_last_error();
                outs[fused] = read_tensor(y);
                T dq(nb_grad(lq)), dk(nb_grad(lk)), dv(nb_grad(lv));
                grads[fused][0] = read_tensor(dq);
                grads[fused][1] = read_tensor(dk);
                grads[fused][2] = read_tensor(dv);
            }
            std::string what = std::string(causal ? "causal" : "full") + (dropout > 0 ? " dropout" : "");
            expect_close(outs[1], outs[0], NB_F32, 4, what + " output");
            for (int i = 0; i < 3; i++) expect_close(grads[1][i], grads[0][i], NB_F32, 8, what + " grad " + std::to_string(i));
        }
    nb_generator_free(gen);
}

TEST(Attention, LearnedMaskGetsAGradientThroughTheComposedPath) {
    const int64_t shape[4] = {1, 1, 3, 4}, scores[2] = {3, 3};
    T q(nb_ones(4, shape, NB_F32, nb_cpu())), bias(nb_zeros(2, scores, NB_F32, nb_cpu()));
    ASSERT_EQ(nb_set_requires_grad(bias, true), NB_OK);
    T arange(nb_arange(0, 12, 1, NB_F32, nb_cpu()));
    T v(nb_reshape(arange, 4, shape));
    T y(nb_scaled_dot_product_attention(q, q, v, bias, false, 0, 0, nullptr));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    T total(nb_sum(y, 0, nullptr, false));
    ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK);
    T g(nb_grad(bias));
    ASSERT_NE(g.t, nullptr);
    // equal scores: p = 1/3 each; d out/d bias_j = p_j (sum_e v_je - mean_k sum_e v_ke)
    Host grad = read_tensor(g);
    double row_sums[3] = {0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9 + 10 + 11}, mean = (6.0 + 22 + 38) / 3;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) EXPECT_NEAR(grad.v[i * 3 + j], (row_sums[j] - mean) / 3, 1e-5);
}

// ---- the CUDA kernel ----

struct CudaAttentionCase {
    Shape q, kv;
    bool causal, padding;
    double dropout;
};

// The fused CUDA kernel in f16 and bf16 against the composed attention in
// float64 on the CPU from the same rounded inputs: output and the gradients
// of q, k and v, at head dims 64 and 128, past several tiles, with the
// deterministic backward and the five-product one.
TEST(CudaAttention, FusedKernelMatchesFloat64) {
    SKIP_WITHOUT_CUDA();
    nb_cuda_properties props;
    ASSERT_EQ(nb_cuda_get_properties(0, &props), NB_OK);
    if (props.major < 8) GTEST_SKIP() << "the fused kernel needs compute capability 8.0, device has " << props.major;
    const std::vector<CudaAttentionCase> cases = {
        {{2, 4, 300, 64}, {2, 2, 333, 64}, false, true, 0},   // GQA, key padding, partial tiles
        {{2, 4, 300, 128}, {2, 2, 333, 128}, true, false, 0}, // causal, Sq < Sk
        {{1, 2, 200, 64}, {1, 2, 90, 64}, true, true, 0},     // causal, Sq > Sk: empty rows
        {{1, 3, 150, 128}, {1, 1, 150, 128}, true, false, 0.2}, // MQA with dropout
        {{2, 2, 1, 128}, {2, 2, 257, 128}, true, false, 0},   // one decoded token
        {{2, 4, 256, 64}, {2, 4, 384, 64}, false, false, 0},  // whole tiles: no per-score checks
        {{1, 2, 256, 128}, {1, 2, 512, 128}, true, false, 0}}; // tiles below the diagonal
    bool was_deterministic = nb_deterministic_algorithms_enabled();
    // deterministic: the seven-product backward; else the five-product one (atomic dQ)
    for (bool deterministic : {true, false})
    for (nb_dtype dtype : {NB_BF16, NB_F16})
        for (const CudaAttentionCase &c : cases) {
            nb_use_deterministic_algorithms(deterministic);
            std::string what = std::string(nb_dtype_name(dtype)) + " q " + shape_str(c.q) + " kv " +
                               shape_str(c.kv) + (c.causal ? " causal" : "") +
                               (c.padding ? " padded" : "") + (c.dropout > 0 ? " dropout" : "") +
                               (deterministic ? "" : " five-product");
            nb_generator *gen = nb_generator_create(17);
            T q0(nb_normal(4, c.q.data(), 0, 1, dtype, nb_cpu(), gen));
            T k0(nb_normal(4, c.kv.data(), 0, 1, dtype, nb_cpu(), gen));
            T v0(nb_normal(4, c.kv.data(), 0, 1, dtype, nb_cpu(), gen));
            T g0(nb_normal(4, c.q.data(), 0, 1, dtype, nb_cpu(), gen));
            const int64_t pad[4] = {c.kv[0], 1, 1, c.kv[2]};
            T u(nb_uniform(4, pad, 0, 1, NB_F32, nb_cpu(), gen)), cut(nb_full(0, nullptr, 0.2, NB_F32, nb_cpu()));
            T keep(nb_gt(u, cut));
            nb_generator_free(gen);
            Host outs[2], grads[2][3];
            for (int on_cuda = 0; on_cuda < 2; on_cuda++) {
                nb_device device = on_cuda ? nb_cuda(0) : nb_cpu();
                nb_dtype as = on_cuda ? dtype : NB_F64;
                T tensors[5];
                nb_tensor *from[5] = {q0, k0, v0, g0, keep};
                for (int i = 0; i < 5; i++) {
                    T cast(i < 4 ? nb_cast(from[i], as) : nb_retain(from[i]));
                    tensors[i] = T(nb_to(cast, device));
                    ASSERT_NE(tensors[i].t, nullptr) << nb_last_error();
                }
                for (int i = 0; i < 3; i++) ASSERT_EQ(nb_set_requires_grad(tensors[i], true), NB_OK);
                nb_generator *drop = nb_generator_create(5);
                const nb_tensor *mask = c.padding ? tensors[4].t : nullptr;
                T y(on_cuda ? nb_flash_attention(tensors[0], tensors[1], tensors[2], mask, c.causal, c.dropout, 0, drop)
                            : nb_attention_composed(tensors[0], tensors[1], tensors[2], mask, c.causal, c.dropout, 0, drop));
                nb_generator_free(drop);
                ASSERT_NE(y.t, nullptr) << what << ": " << nb_last_error();
                ASSERT_EQ(nb_backward(y, tensors[3], false), NB_OK) << what << ": " << nb_last_error();
                outs[on_cuda] = read_tensor(y);
                for (int i = 0; i < 3; i++) {
                    T grad(nb_grad(tensors[i]));
                    ASSERT_NE(grad.t, nullptr) << what;
                    grads[on_cuda][i] = read_tensor(grad);
                }
            }
            // bf16 keeps 8 bits: the probabilities and dS round to about 4e-3
            double limit = dtype == NB_BF16 ? 2e-2 : 4e-3;
            double errors[4] = {relative_error(outs[1], outs[0]), relative_error(grads[1][0], grads[0][0]),
                                relative_error(grads[1][1], grads[0][1]), relative_error(grads[1][2], grads[0][2])};
            const char *names[4] = {"out", "dq", "dk", "dv"};
            for (int i = 0; i < 4; i++) EXPECT_LT(errors[i], limit) << what << " " << names[i];
            expect_close(outs[1], outs[0], dtype, 1, what + " out");
            printf("[ cuda     ] %s: max error / max |ref|: out %.1e dq %.1e dk %.1e dv %.1e\n", what.c_str(),
                   errors[0], errors[1], errors[2], errors[3]);
        }
    nb_use_deterministic_algorithms(was_deterministic);
}

// ---- GPT ----

nb_gpt_config tiny_gpt(bool rope) {
    nb_gpt_config c = {};
    c.vocab = 11;
    c.context = 16;
    c.layers = 2;
    c.block.attention = {16, 4, 2, true, false, rope, 0, 0};
    c.block.rms_norm = rope;
    c.block.swiglu = rope;
    c.tied = !rope;
    return c;
}

TEST(Gpt, KvCacheDecodeEqualsTheFullForward) {
    for (bool rope : {false, true}) {
        nb_generator *gen = nb_generator_create(2);
        nb_gpt_config config = tiny_gpt(rope);
        Module gpt(nb_nn_gpt(&config, NB_F64, nb_cpu(), gen));
        nb_generator_free(gen);
        ASSERT_NE(gpt.m, nullptr) << nb_last_error();
        nb_module_train(gpt, false);
        Host tokens({2, 9});
        for (int64_t i = 0; i < tokens.numel(); i++) tokens.v[i] = (double)((i * 7 + 3) % 11);
        T all(make_tensor(tokens, NB_I64));
        bool was = nb_set_grad_enabled(false);
        T full(nb_module_forward(gpt, all));
        ASSERT_NE(full.t, nullptr) << nb_last_error();
        Host want = read_tensor(full);
        ASSERT_EQ(nb_module_set_kv_cache(gpt, 2, 16), NB_OK) << nb_last_error();
        // a 5-token prompt, then one token at a time
        std::vector<std::pair<int64_t, int64_t>> steps = {{0, 5}, {5, 6}, {6, 7}, {7, 8}, {8, 9}};
        for (auto [from, to] : steps) {
            T part(nb_slice(all, 1, from, to, 1));
            T logits(nb_module_forward(gpt, part));
            ASSERT_NE(logits.t, nullptr) << nb_last_error();
            Host got = read_tensor(logits);
            for (int64_t b = 0; b < 2; b++)
                for (int64_t s = from; s < to; s++)
                    for (int64_t c = 0; c < 11; c++)
                        EXPECT_NEAR(got.at({b, s - from, c}), want.at({b, s, c}), 1e-10)
                            << (rope ? "rope" : "learned") << " position " << s;
        }
        // the cache is full past the context: a clear error, not a wrong answer
        T more(nb_slice(all, 1, 0, 8, 1));
        EXPECT_EQ(nb_module_forward(gpt, more), nullptr);
        EXPECT_NE(std::string(nb_last_error()).find("context 16 (9 cached)"), std::string::npos) << nb_last_error();
        ASSERT_EQ(nb_module_set_kv_cache(gpt, 2, 0), NB_OK);
        nb_set_grad_enabled(was);
    }
}

// A short run on a periodic sequence, where the next token becomes
// predictable: the loss must fall below a quarter of its start.
void check_training_loss_falls(const nb_gpt_config &config, nb_dtype dtype, nb_device device) {
    nb_generator *gen = nb_generator_create(4);
    Module gpt(nb_nn_gpt(&config, dtype, device, gen));
    ASSERT_NE(gpt.m, nullptr) << nb_last_error();
    Host x({4, 16}), y({4, 16});
    for (int64_t b = 0; b < 4; b++)
        for (int64_t s = 0; s < 16; s++) {
            x.v[b * 16 + s] = (double)((b + s * 3) % 11);
            y.v[b * 16 + s] = (double)((b + (s + 1) * 3) % 11);
        }
    T host_tokens(make_tensor(x, NB_I64)), host_targets(make_tensor(y, NB_I64));
    T tokens(nb_to(host_tokens, device)), targets(nb_to(host_targets, device));
    nb_named_tensor named[64];
    int n = nb_module_parameters(gpt, named, 64);
    std::vector<nb_tensor *> params;
    for (int i = 0; i < n; i++) params.push_back(named[i].tensor);
    nb_optimizer *opt = nb_adamw_create(params.data(), n, 3e-3, 0.9, 0.95, 1e-8, 0.1);
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        nb_optimizer_zero_grad(opt);
        T loss(nb_gpt_loss(gpt, tokens, targets));
        ASSERT_NE(loss.t, nullptr) << nb_last_error();
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
        ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
        double value = read_tensor(loss).v[0];
        if (step == 0) first = value;
        last = value;
    }
    nb_optimizer_free(opt);
    nb_generator_free(gen);
    EXPECT_NEAR(first, std::log(11.0), 0.3); // about uniform at the start
    EXPECT_LT(last, 0.25 * first) << "first " << first << " last " << last;
}

TEST(Gpt, ShortTrainingRunLossFalls) { check_training_loss_falls(tiny_gpt(true), NB_F32, nb_cpu()); }

// The same in bf16 on a GPU with heads of 64, so attention runs the fused
// kernel and AdamW steps through master weights.
TEST(Gpt, ShortBf16TrainingRunOnCudaLossFalls) {
    SKIP_WITHOUT_CUDA();
    nb_gpt_config config = tiny_gpt(true);
    config.block.attention = {128, 2, 1, true, false, true, 0, 0};
    check_training_loss_falls(config, NB_BF16, nb_cuda(0));
}

} // namespace
