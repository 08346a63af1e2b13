// The fused CUDA attention kernels (src/cuda/attention.cuh), run on the CPU
// by tests/attention_emulator.h, against the composed attention in float64:
// output and the gradients of q, k and v in bf16 and f16 at head dims 64 and
// 128, with key padding, causal masking (empty rows included), dropout,
// grouped-query heads and lengths that are not multiples of the tiles, for
// the deterministic backward and the five-product one. The same kernels run
// on a GPU in test_transformer's CudaAttention test.
#include "attention_emulator.h"

#include "../src/cuda/attention.cuh"
#include "harness.h"

namespace nb_flash {
uint4 shared[(128 << 10) / sizeof(uint4)]; // the kernels' extern __shared__ array
}

namespace {

using namespace nb_flash;

struct EmuCase {
    int64_t batch, heads, kv_heads, sq, sk;
    bool causal, padding;
    double dropout;
};

// A tensor's bytes in its dtype.
template <typename E> std::vector<E> bytes_of(const nb_tensor *t) {
    std::vector<E> out((size_t)nb_numel(t));
    EXPECT_EQ(nb_to_host(t, out.data(), out.size() * sizeof(E)), NB_OK) << nb_last_error();
    return out;
}

template <typename E> Host host_of(const std::vector<E> &data, Shape shape, nb_dtype dtype) {
    T t(nb_from_host(data.data(), (int)shape.size(), shape.data(), dtype, nb_cpu()));
    return read_tensor(t);
}

const uint64_t kSeed = 7;

// Output and gradients from the composed attention in float64.
std::vector<Host> reference(const EmuCase &c, nb_tensor *const in[5]) {
    T tensors[4];
    for (int i = 0; i < 4; i++) {
        tensors[i] = T(nb_cast(in[i], NB_F64));
        if (i < 3) {
            EXPECT_EQ(nb_set_requires_grad(tensors[i], true), NB_OK);
        }
    }
    nb_generator *gen = nb_generator_create(kSeed);
    T y(nb_attention_composed(tensors[0], tensors[1], tensors[2], c.padding ? in[4] : nullptr, c.causal,
                              c.dropout, 0, gen));
    nb_generator_free(gen);
    EXPECT_NE(y.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_backward(y, tensors[3], false), NB_OK) << nb_last_error();
    std::vector<Host> out = {read_tensor(y)};
    for (int i = 0; i < 3; i++) {
        T g(nb_grad(tensors[i]));
        out.push_back(read_tensor(g));
    }
    return out;
}

// fused: the five-product backward (dQ added with atomics by the dK/dV
// pass), else the deterministic seven-product one.
template <typename S, int D, bool DROPOUT>
std::vector<Host> emulated(const EmuCase &c, nb_dtype dtype, nb_tensor *const in[5], bool fused) {
    Shape qs = {c.batch, c.heads, c.sq, D}, ks = {c.batch, c.kv_heads, c.sk, D};
    std::vector<uint16_t> q = bytes_of<uint16_t>(in[0]), k = bytes_of<uint16_t>(in[1]);
    std::vector<uint16_t> v = bytes_of<uint16_t>(in[2]), dout = bytes_of<uint16_t>(in[3]);
    // the additive key-padding mask in the kernel's dtype, broadcast by strides
    std::vector<S> mask((size_t)(c.batch * c.sk));
    std::vector<uint8_t> keep = bytes_of<uint8_t>(in[4]);
    for (size_t j = 0; j < mask.size(); j++) mask[j] = (S)(keep[j] ? 0.0f : -INFINITY);
    int64_t bh = c.batch * c.heads, kv = c.batch * c.kv_heads;
    std::vector<uint16_t> out(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<float> lse((size_t)(bh * c.sq)), delta(lse.size());
    attention_params p = {};
    p.q = q.data(), p.k = k.data(), p.v = v.data(), p.dout = dout.data(), p.o = out.data();
    p.out = out.data(), p.dq = dq.data(), p.dk = dk.data(), p.dv = dv.data();
    p.lse = lse.data(), p.delta = delta.data();
    if (c.padding) {
        p.mask = mask.data();
        p.mask_stride[0] = c.sk, p.mask_stride[3] = 1;
    }
    p.heads = (int)c.heads, p.kv_heads = (int)c.kv_heads, p.sq = (int)c.sq, p.sk = (int)c.sk;
    p.scale = (float)(1 / std::sqrt((double)D)), p.dropout = c.dropout, p.causal = c.causal;
    p.seed = kSeed, p.offset = 0; // a fresh generator's first draw
    static_assert(forward_shared<S, D> <= sizeof shared && dq_shared<S, D> <= sizeof shared &&
                  fused_dkdv_shared<S, D> <= sizeof shared, "the emulated shared memory is too small");
    std::vector<float> dq_accum(fused ? q.size() : 0, 0.0f);
    p.dq_accum = dq_accum.data();
    int64_t query_tiles = (c.sq + QUERY_BLOCK - 1) / QUERY_BLOCK, key_tiles = (c.sk + KEY_BLOCK - 1) / KEY_BLOCK;
    emu_launch(bh * query_tiles, WARPS * 32, shared, forward_shared<S, D>,
               [&] { attention_forward<S, D, DROPOUT>(p, (int)query_tiles); });
    emu_launch((bh * c.sq + 7) / 8, 256, shared, 0, [&] { attention_row_deltas<S, D>(p, bh * c.sq); });
    if (fused) {
        emu_launch(kv * key_tiles, WARPS * 32, shared, fused_dkdv_shared<S, D>,
                   [&] { attention_backward_dkdv<S, D, DROPOUT, true>(p, (int)key_tiles); });
        int64_t count = (int64_t)q.size();
        emu_launch((count / 8 + 255) / 256, 256, shared, 0, [&] { attention_dq_from_accum<S>(p, count); });
    } else {
        emu_launch(bh * query_tiles, WARPS * 32, shared, dq_shared<S, D>,
                   [&] { attention_backward_dq<S, D, DROPOUT>(p, (int)query_tiles); });
        emu_launch(kv * key_tiles, WARPS * 32, shared, dkdv_shared<S, D>,
                   [&] { attention_backward_dkdv<S, D, DROPOUT, false>(p, (int)key_tiles); });
    }
    return {host_of(out, qs, dtype), host_of(dq, qs, dtype), host_of(dk, ks, dtype), host_of(dv, ks, dtype)};
}

template <typename S, int D> void check(const EmuCase &c, nb_dtype dtype, bool fused = false) {
    char what[180];
    snprintf(what, sizeof what, "%s d%d q [%lld,%lld,%lld] kv [%lld,%lld,%lld]%s%s%s%s", nb_dtype_name(dtype), D,
             (long long)c.batch, (long long)c.heads, (long long)c.sq, (long long)c.batch,
             (long long)c.kv_heads, (long long)c.sk, c.causal ? " causal" : "", c.padding ? " padded" : "",
             c.dropout > 0 ? " dropout" : "", fused ? " five-product" : "");
    nb_generator *gen = nb_generator_create(3);
    const int64_t qs[4] = {c.batch, c.heads, c.sq, D}, ks[4] = {c.batch, c.kv_heads, c.sk, D};
    const int64_t pad[4] = {c.batch, 1, 1, c.sk};
    T q(nb_normal(4, qs, 0, 1, dtype, nb_cpu(), gen)), k(nb_normal(4, ks, 0, 1, dtype, nb_cpu(), gen));
    T v(nb_normal(4, ks, 0, 1, dtype, nb_cpu(), gen)), g(nb_normal(4, qs, 0, 1, dtype, nb_cpu(), gen));
    T u(nb_uniform(4, pad, 0, 1, NB_F32, nb_cpu(), gen)), cut(nb_full(0, nullptr, 0.2, NB_F32, nb_cpu()));
    T keep(nb_gt(u, cut));
    nb_generator_free(gen);
    nb_tensor *in[5] = {q, k, v, g, keep};
    std::vector<Host> want = reference(c, in);
    std::vector<Host> got = c.dropout > 0 ? emulated<S, D, true>(c, dtype, in, fused)
                                          : emulated<S, D, false>(c, dtype, in, fused);
    EXPECT_FALSE(emu_misaligned.load()) << what << ": a misaligned ldmatrix or cp.async";
    const char *names[4] = {"out", "dq", "dk", "dv"};
    double limit = dtype == NB_BF16 ? 2e-2 : 4e-3;
    for (int i = 0; i < 4; i++) {
        double error = relative_error(got[i], want[i]);
        EXPECT_LT(error, limit) << what << " " << names[i];
        printf("[ emulated ] %s %s: max error / max |ref| %.1e\n", what, names[i], error);
    }
}

TEST(AttentionEmulated, ForwardAndBackwardMatchFloat64) {
    check<__nv_bfloat16, 64>({1, 2, 1, 130, 70, false, true, 0}, NB_BF16);  // GQA, padding, partial tiles
    check<__nv_bfloat16, 128>({1, 2, 2, 70, 131, true, false, 0}, NB_BF16); // causal, Sq < Sk
    check<__half, 64>({2, 1, 1, 40, 20, true, true, 0}, NB_F16);           // Sq > Sk: empty rows
    check<__nv_bfloat16, 64>({1, 2, 1, 33, 50, true, false, 0.3}, NB_BF16); // dropout
    check<__half, 128>({1, 3, 1, 150, 150, true, true, 0.2}, NB_F16);      // MQA, all of it
    check<__nv_bfloat16, 128>({2, 2, 2, 1, 257, true, false, 0}, NB_BF16);  // one decoded token
    check<__half, 64>({1, 2, 2, 128, 192, false, false, 0}, NB_F16);       // whole tiles: no checks
    check<__nv_bfloat16, 128>({1, 1, 1, 128, 256, true, false, 0}, NB_BF16); // tiles below the diagonal
}

// The five-product backward (determinism off): dQ from the dK/dV pass.
TEST(AttentionEmulated, FiveProductBackwardMatchesFloat64) {
    check<__nv_bfloat16, 64>({1, 2, 1, 130, 70, false, true, 0}, NB_BF16, true);  // GQA, padding, partial tiles
    check<__half, 128>({1, 2, 2, 70, 131, true, false, 0}, NB_F16, true);         // causal, Sq < Sk
    check<__half, 64>({2, 1, 1, 40, 20, true, true, 0}, NB_F16, true);            // Sq > Sk: empty rows
    check<__nv_bfloat16, 128>({1, 3, 1, 150, 150, true, true, 0.2}, NB_BF16, true); // MQA, dropout, all of it
}

} // namespace
