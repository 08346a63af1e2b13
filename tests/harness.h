// Host-side helpers shared by the test suites: double-precision arrays with
// NumPy indexing, tensors made from and read back into them, tolerances.
#pragma once

#include <gtest/gtest.h>
#include <nabla/nabla.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

using Shape = std::vector<int64_t>;

inline int64_t numel_of(const Shape &s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

inline std::string shape_str(const Shape &s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); i++) out += (i ? "," : "") + std::to_string(s[i]);
    return out + "]";
}

// A row-major array of doubles: the reference side of every test.
struct Host {
    Shape shape;
    std::vector<double> v;
    Host() = default;
    Host(Shape s, std::vector<double> values) : shape(std::move(s)), v(std::move(values)) {}
    explicit Host(Shape s) : shape(s), v(numel_of(s), 0.0) {}
    int64_t numel() const { return numel_of(shape); }
    std::vector<int64_t> unravel(int64_t linear) const {
        std::vector<int64_t> idx(shape.size());
        for (int d = (int)shape.size() - 1; d >= 0; d--) {
            idx[d] = linear % shape[d];
            linear /= shape[d];
        }
        return idx;
    }
    int64_t ravel(const std::vector<int64_t> &idx) const {
        int64_t linear = 0;
        for (size_t d = 0; d < shape.size(); d++) linear = linear * shape[d] + idx[d];
        return linear;
    }
    double at(const std::vector<int64_t> &idx) const { return v[ravel(idx)]; }
    // The element a broadcast to out_shape reads at out index idx.
    double broadcast_at(const std::vector<int64_t> &idx) const {
        size_t lead = idx.size() - shape.size();
        int64_t linear = 0;
        for (size_t d = 0; d < shape.size(); d++)
            linear = linear * shape[d] + (shape[d] == 1 ? 0 : idx[d + lead]);
        return v[linear];
    }
};

inline Shape broadcast_shape(const Shape &a, const Shape &b) {
    size_t n = std::max(a.size(), b.size());
    Shape out(n);
    for (size_t i = 0; i < n; i++) {
        int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        out[i] = da == 1 ? db : da;
    }
    return out;
}

// Owns one tensor reference for the length of a test.
struct T {
    nb_tensor *t = nullptr;
    T() = default;
    explicit T(nb_tensor *p) : t(p) {}
    T(const T &) = delete;
    T(T &&o) noexcept : t(o.t) { o.t = nullptr; }
    T &operator=(T &&o) noexcept {
        std::swap(t, o.t);
        return *this;
    }
    ~T() { nb_release(t); }
    operator nb_tensor *() const { return t; }
};

// A tensor of dtype holding values (rounded to the dtype by nabla's cast).
inline nb_tensor *make_tensor(const Host &h, nb_dtype dtype) {
    T f64(nb_from_host(h.v.data(), (int)h.shape.size(), h.shape.data(), NB_F64, nb_cpu()));
    if (!f64.t) return nullptr;
    return nb_cast(f64, dtype);
}

// A tensor's values as doubles in row-major order.
inline Host read_tensor(const nb_tensor *t) {
    Host h(Shape(nb_shape(t), nb_shape(t) + nb_ndim(t)));
    bool was = nb_set_grad_enabled(false);
    T f64(nb_cast(t, NB_F64));
    nb_set_grad_enabled(was);
    EXPECT_NE(f64.t, nullptr) << nb_last_error();
    if (f64.t) {
        EXPECT_EQ(nb_to_host(f64, h.v.data(), h.v.size() * sizeof(double)), NB_OK);
    }
    return h;
}

// A one-layer causal GPT of width 8 and 2 heads, small enough to build in
// every test that needs one.
inline nb_gpt_config small_gpt_config(int64_t vocab, int64_t context, bool rope = false) {
    nb_gpt_config c = {};
    c.vocab = vocab;
    c.context = context;
    c.layers = 1;
    c.block.attention.dim = 8;
    c.block.attention.heads = 2;
    c.block.attention.causal = true;
    c.block.attention.rope = rope;
    return c;
}

// Skips a CUDA test when no GPU is usable, printing nabla's reason.
#define SKIP_WITHOUT_CUDA()                                                                   \
    if (nb_cuda_device_count() == 0)                                                           \
    GTEST_SKIP() << "no CUDA device: " << (nb_cuda_synchronize(0), nb_last_error())           \
                 << "; the CUDA cases run where a GPU is present"

struct Tolerance {
    double atol, rtol;
};

inline Tolerance tolerance_for(nb_dtype d) {
    switch (d) {
    case NB_F64: return {1e-10, 1e-10};
    case NB_F32: return {1e-5, 1e-5};
    case NB_F16: return {1e-2, 1e-2};
    case NB_BF16: return {3e-2, 3e-2};
    default: return {0, 0};
    }
}

// The value a reference computed in double takes when stored in dtype
// (integers wrap as two's complement, bool is nonzero).
inline double represent(double v, nb_dtype d) {
    if (std::isnan(v)) return v;
    switch (d) {
    case NB_I32: return (double)(int32_t)(uint32_t)(uint64_t)(int64_t)v;
    case NB_U8: return (double)(uint8_t)(uint64_t)(int64_t)v;
    case NB_BOOL: return v != 0;
    case NB_I64: return (double)(int64_t)v;
    default: return v;
    }
}

// Expects actual to match expected elementwise within the dtype's tolerance.
inline void expect_close(const Host &actual, const Host &expected, nb_dtype dtype,
                         double scale = 1, const std::string &what = "") {
    ASSERT_EQ(shape_str(actual.shape), shape_str(expected.shape)) << what;
    Tolerance tol = tolerance_for(dtype);
    int reported = 0;
    for (int64_t i = 0; i < expected.numel() && reported < 5; i++) {
        double e = represent(expected.v[i], dtype), a = actual.v[i];
        bool ok = std::isnan(e) ? std::isnan(a)
                  : std::isinf(e) ? a == e
                                  : std::isfinite(a) &&
                                        std::fabs(a - e) <= scale * (tol.atol + tol.rtol * std::fabs(e));
        if (!ok) {
            reported++;
            ADD_FAILURE() << what << " element " << i << ": got " << a << ", expected " << e
                          << " (" << nb_dtype_name(dtype) << ")";
        }
    }
}

// The largest |a - b| over the largest |b|: the error of a reduced-precision
// result against a float64 reference, relative to the reference's scale.
inline double relative_error(const Host &a, const Host &b) {
    double err = 0, scale = 0;
    for (int64_t i = 0; i < b.numel(); i++) {
        err = std::max(err, std::fabs(a.v[i] - b.v[i]));
        scale = std::max(scale, std::fabs(b.v[i]));
    }
    return err / std::max(scale, 1e-30);
}

// Philox4x32-10 written from the paper (Salmon et al., SC 2011), independent
// of nabla's copy, and the stream recipe of docs/random.md.
struct PhiloxRef {
    static std::array<uint32_t, 4> block(uint64_t seed, uint64_t counter) {
        uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
        uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        return rounds(c, k);
    }
    static std::array<uint32_t, 4> rounds(const uint32_t *ctr, const uint32_t *key) {
        uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]}, k[2] = {key[0], key[1]};
        for (int r = 0; r < 10; r++) {
            if (r) {
                k[0] += 0x9E3779B9u;
                k[1] += 0xBB67AE85u;
            }
            uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
            uint32_t n[4] = {(uint32_t)(p1 >> 32) ^ c[1] ^ k[0], (uint32_t)p1,
                             (uint32_t)(p0 >> 32) ^ c[3] ^ k[1], (uint32_t)p0};
            for (int i = 0; i < 4; i++) c[i] = n[i];
        }
        return {c[0], c[1], c[2], c[3]};
    }
    static double unit(uint32_t hi, uint32_t lo) {
        return (double)((((uint64_t)hi) << 21) ^ (lo >> 11)) / 9007199254740992.0;
    }
};
