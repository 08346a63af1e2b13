// Tensors, dtypes, views, host transfers, printing and the random generator.
#include <cstring>
#include <set>

#include "harness.h"

#include "../src/core/window.h"

namespace {

Shape shape_of(const nb_tensor *t) { return Shape(nb_shape(t), nb_shape(t) + nb_ndim(t)); }
Shape strides_of(const nb_tensor *t) { return Shape(nb_strides(t), nb_strides(t) + nb_ndim(t)); }

std::string repr(const nb_tensor *t) {
    char buf[4096];
    EXPECT_GE(nb_format(t, buf, sizeof buf), 0) << nb_last_error();
    return buf;
}

// ---- dtypes ----

bool is_nan_half(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

TEST(Dtype, HalfRoundTripsEveryBitPattern) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nb_f16_to_f32((uint16_t)h);
        if (is_nan_half((uint16_t)h)) {
            EXPECT_TRUE(std::isnan(f));
            EXPECT_TRUE(is_nan_half(nb_f32_to_f16(f)));
        } else {
            EXPECT_EQ(nb_f32_to_f16(f), h) << "half bits " << h;
        }
    }
}

// Between two neighbouring halves, values below the midpoint round down, above
// it up, and the midpoint itself to the one with an even mantissa.
TEST(Dtype, HalfRoundsToNearestEven) {
    for (uint32_t h = 0; h < 0x7bff; h++) { // positive finite neighbours
        double lo = nb_f16_to_f32((uint16_t)h), hi = nb_f16_to_f32((uint16_t)(h + 1));
        double mid = (lo + hi) / 2;
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        ASSERT_EQ(nb_f32_to_f16((float)mid), even) << "midpoint above half " << h;
        ASSERT_EQ(nb_f32_to_f16(std::nextafter((float)mid, 0.0f)), h);
        ASSERT_EQ(nb_f32_to_f16(std::nextafter((float)mid, 1e9f)), h + 1);
        ASSERT_EQ(nb_f32_to_f16((float)-mid), even | 0x8000);
    }
    EXPECT_EQ(nb_f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(nb_f32_to_f16(65519.99f), 0x7bff);
    EXPECT_EQ(nb_f32_to_f16(65520.0f), 0x7c00); // rounds to infinity
    EXPECT_EQ(nb_f32_to_f16(1e10f), 0x7c00);
    EXPECT_EQ(nb_f32_to_f16(-INFINITY), 0xfc00);
    EXPECT_EQ(nb_f32_to_f16(1e-9f), 0x0000); // below half the smallest subnormal
    EXPECT_EQ(nb_f32_to_f16(0.1f), 0x2e66);
}

TEST(Dtype, BFloat16RoundTripsAndRoundsToNearestEven) {
    for (uint32_t b = 0; b < 65536; b++) {
        float f = nb_bf16_to_f32((uint16_t)b);
        if (std::isnan(f)) {
            EXPECT_TRUE(std::isnan(nb_bf16_to_f32(nb_f32_to_bf16(f))));
            continue;
        }
        ASSERT_EQ(nb_f32_to_bf16(f), b);
        if ((b & 0x7fff) >= 0x7f7f) continue; // the next one up is infinity or NaN
        double mid = ((double)f + (double)nb_bf16_to_f32((uint16_t)(b + 1))) / 2;
        uint16_t even = (b & 1) ? (uint16_t)(b + 1) : (uint16_t)b;
        ASSERT_EQ(nb_f32_to_bf16((float)mid), even) << "bf16 bits " << b;
    }
    EXPECT_EQ(nb_f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(nb_f32_to_bf16(3.0e38f), 0x7f62);
}

TEST(Dtype, PromotionFollowsPyTorch) {
    EXPECT_EQ(nb_promote_types(NB_F32, NB_I64), NB_F32);
    EXPECT_EQ(nb_promote_types(NB_F16, NB_BF16), NB_F32);
    EXPECT_EQ(nb_promote_types(NB_F16, NB_F64), NB_F64);
    EXPECT_EQ(nb_promote_types(NB_I32, NB_I64), NB_I64);
    EXPECT_EQ(nb_promote_types(NB_U8, NB_BOOL), NB_U8);
    EXPECT_EQ(nb_promote_types(NB_BOOL, NB_F16), NB_F16);
    EXPECT_EQ(nb_dtype_size(NB_BF16), 2u);
    EXPECT_STREQ(nb_dtype_name(NB_BOOL), "bool");
    EXPECT_STREQ(nb_dtype_name((nb_dtype)99), "invalid dtype 99");
}

TEST(Dtype, CastsSaturateAndWrap) {
    T x(make_tensor(Host({5}, {300.7, -2.9, 1e20, NAN, -1e20}), NB_F64));
    EXPECT_EQ(shape_str(read_tensor(T(nb_cast(x, NB_I32))).shape), "[5]");
    Host i32 = read_tensor(T(nb_cast(x, NB_I32)));
    EXPECT_EQ(i32.v, (std::vector<double>{300, -2, 2147483647, 0, -2147483648.0}));
    T ints(make_tensor(Host({3}, {300, -1, 256}), NB_I64));
    EXPECT_EQ(read_tensor(T(nb_cast(ints, NB_U8))).v, (std::vector<double>{44, 255, 0}));
    EXPECT_EQ(read_tensor(T(nb_cast(ints, NB_BOOL))).v, (std::vector<double>{1, 1, 1}));
}

// ---- tensors ----

TEST(Tensor, CreationShapesAndStrides) {
    T t(nb_zeros(3, Shape{2, 3, 4}.data(), NB_F32, nb_cpu()));
    ASSERT_NE(t.t, nullptr);
    EXPECT_EQ(shape_of(t), (Shape{2, 3, 4}));
    EXPECT_EQ(strides_of(t), (Shape{12, 4, 1}));
    EXPECT_EQ(nb_numel(t), 24);
    EXPECT_EQ(nb_size(t, -1), 4);
    EXPECT_TRUE(nb_is_contiguous(t));
    EXPECT_EQ((uintptr_t)nb_data(t) % 64, 0u) << "CPU buffers are 64-byte aligned";
    T s(nb_scalar(3.5, NB_F64, nb_cpu()));
    double v = 0;
    EXPECT_EQ(nb_item(s, &v), NB_OK);
    EXPECT_EQ(v, 3.5);
    EXPECT_EQ(nb_ndim(s), 0);
    T empty(nb_empty(2, Shape{0, 5}.data(), NB_F32, nb_cpu()));
    EXPECT_EQ(nb_numel(empty), 0);
}

TEST(Tensor, LargeBlocksAreReusedUntilTheCacheIsReleased) {
    const int64_t n = 1 << 20; // 4 MiB of f32
    void *first;
    {
        T a(nb_zeros(1, &n, NB_F32, nb_cpu()));
        first = nb_data(a);
    }
    T b(nb_ones(1, &n, NB_F32, nb_cpu()));
    EXPECT_EQ(nb_data(b), first) << "a freed block of the same size comes back warm";
    EXPECT_EQ(read_tensor(b).v[n - 1], 1) << "and is written like any other";
    EXPECT_EQ(nb_release_cached_memory(nb_cpu()), NB_OK);
    EXPECT_EQ(nb_release_cached_memory(nb_cuda(0)), nb_cuda_device_count() ? NB_OK : NB_ERR_DEVICE);
}

TEST(Tensor, HostRoundTripForEveryDtype) {
    for (nb_dtype d : {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64, NB_U8, NB_BOOL}) {
        std::vector<unsigned char> bytes(6 * nb_dtype_size(d));
        for (size_t i = 0; i < bytes.size(); i++) bytes[i] = (unsigned char)(i * 37 % 64);
        if (d == NB_BOOL)
            for (auto &b : bytes) b &= 1;
        T t(nb_from_host(bytes.data(), 2, Shape{2, 3}.data(), d, nb_cpu()));
        ASSERT_NE(t.t, nullptr);
        std::vector<unsigned char> back(bytes.size());
        ASSERT_EQ(nb_to_host(t, back.data(), back.size()), NB_OK);
        EXPECT_EQ(back, bytes) << nb_dtype_name(d);
    }
}

// nb_from_memory wraps memory it does not own: no copy, the caller's strides,
// and the release callback exactly once, after the last view is gone.
TEST(Tensor, FromMemorySharesTheBufferAndReleasesItOnce) {
    static int releases;
    releases = 0;
    auto release = [](void *ctx) {
        releases++;
        EXPECT_EQ(*(double *)ctx, 5.0) << "ctx is passed through";
    };
    double values[12];
    for (int i = 0; i < 12; i++) values[i] = i;
    // the transpose of a 3x4 row-major block: shape [4, 3], strides [1, 4]
    T t(nb_from_memory(values, sizeof values, 2, Shape{4, 3}.data(), Shape{1, 4}.data(), NB_F64,
                       nb_cpu(), release, &values[5]));
    ASSERT_NE(t.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_data(t), (void *)values);
    EXPECT_EQ(strides_of(t), (Shape{1, 4}));
    EXPECT_EQ(read_tensor(t).v, (std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
    values[4] = -1; // the tensor reads the caller's memory, not a copy
    EXPECT_EQ(read_tensor(t).v[1], -1);
    T row(nb_slice(t, 0, 1, 2, 1));
    t = T();
    EXPECT_EQ(releases, 0) << "a view still holds the memory";
    EXPECT_EQ(read_tensor(row).v, (std::vector<double>{1, 5, 9}));
    row = T();
    EXPECT_EQ(releases, 1);
    // a failed call does not release: the caller still owns the memory
    EXPECT_EQ(nb_from_memory(values, 8, 1, Shape{2}.data(), nullptr, NB_F64, nb_cpu(), release, &values[5]),
              nullptr);
    EXPECT_EQ(releases, 1);
    // empty tensors may have no memory at all; NULL release is allowed
    T empty(nb_from_memory(nullptr, 0, 1, Shape{0}.data(), nullptr, NB_F32, nb_cpu(), nullptr, nullptr));
    ASSERT_NE(empty.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_numel(empty), 0);
    // stride 0 (a broadcast) needs only one element
    float one = 3;
    T wide(nb_from_memory(&one, sizeof one, 2, Shape{2, 3}.data(), Shape{0, 0}.data(), NB_F32, nb_cpu(),
                          nullptr, nullptr));
    ASSERT_NE(wide.t, nullptr) << nb_last_error();
    EXPECT_EQ(read_tensor(wide).v, (std::vector<double>(6, 3)));
}

TEST(Tensor, ViewsShareStorage) {
    T base(nb_arange(0, 12, 1, NB_F32, nb_cpu()));
    T m(nb_reshape(base, 2, Shape{3, 4}.data()));
    EXPECT_EQ(nb_data(m), nb_data(base)) << "reshape of a contiguous tensor is a view";
    T t(nb_transpose(m, 0, 1));
    EXPECT_EQ(strides_of(t), (Shape{1, 4}));
    EXPECT_FALSE(nb_is_contiguous(t));
    T col(nb_slice(m, 1, 1, 4, 2)); // columns 1 and 3
    EXPECT_EQ(shape_of(col), (Shape{3, 2}));
    EXPECT_EQ(strides_of(col), (Shape{4, 2}));
    // writing through the view changes the base
    T fill(nb_full(0, nullptr, -1, NB_F32, nb_cpu()));
    ASSERT_EQ(nb_copy_(col, fill), NB_OK);
    EXPECT_EQ(read_tensor(base).v, (std::vector<double>{0, -1, 2, -1, 4, -1, 6, -1, 8, -1, 10, -1}));
    // a view keeps the storage alive after its base is gone
    T keep(nb_retain(col));
    base = T();
    m = T();
    EXPECT_EQ(read_tensor(keep).v, (std::vector<double>{-1, -1, -1, -1, -1, -1}));
}

TEST(Tensor, ExpandUnsqueezeSqueeze) {
    T x(nb_arange(0, 3, 1, NB_F32, nb_cpu()));
    T col(nb_unsqueeze(x, 1));
    EXPECT_EQ(shape_of(col), (Shape{3, 1}));
    T e(nb_expand(col, 3, Shape{2, -1, 4}.data()));
    EXPECT_EQ(shape_of(e), (Shape{2, 3, 4}));
    EXPECT_EQ(strides_of(e), (Shape{0, 1, 0}));
    EXPECT_EQ(nb_data(e), nb_data(x));
    T sq(nb_squeeze_all(col));
    EXPECT_EQ(shape_of(sq), (Shape{3}));
}

TEST(Tensor, ReshapeCopiesOnlyWhenItMust) {
    T m(nb_reshape(T(nb_arange(0, 6, 1, NB_F32, nb_cpu())), 2, Shape{2, 3}.data()));
    T t(nb_transpose(m, 0, 1));
    T flat(nb_reshape(t, 1, Shape{-1}.data()));
    EXPECT_NE(nb_data(flat), nb_data(m)) << "a transposed tensor cannot be flattened in place";
    EXPECT_EQ(read_tensor(flat).v, (std::vector<double>{0, 3, 1, 4, 2, 5}));
    T split_dims(nb_view(t, 3, Shape{3, 2, 1}.data()));
    EXPECT_NE(split_dims.t, nullptr) << "adding a size-1 dim is always a view";
    T same(nb_contiguous(m));
    EXPECT_EQ(same.t, m.t) << "contiguous returns the tensor itself when it can";
    T copy(nb_clone(m));
    EXPECT_NE(nb_data(copy), nb_data(m));
}

TEST(Tensor, CreationOpsMatchFormulas) {
    EXPECT_EQ(read_tensor(T(nb_arange(0, 1, 0.25, NB_F64, nb_cpu()))).v,
              (std::vector<double>{0, 0.25, 0.5, 0.75}));
    Host l = read_tensor(T(nb_linspace(0, 1, 5, NB_F64, nb_cpu())));
    EXPECT_EQ(l.v, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
    EXPECT_EQ(nb_numel(T(nb_linspace(0, 1, 0, NB_F32, nb_cpu()))), 0);
    EXPECT_EQ(read_tensor(T(nb_eye(2, 3, NB_I32, nb_cpu()))).v, (std::vector<double>{1, 0, 0, 0, 1, 0}));
}

TEST(Tensor, SplitAndChunkCounts) {
    T x(nb_zeros(1, Shape{10}.data(), NB_F32, nb_cpu()));
    nb_tensor *parts[8];
    int n = 0;
    ASSERT_EQ(nb_chunk(x, 4, 0, 8, parts, &n), NB_OK);
    EXPECT_EQ(n, 4); // sizes 3, 3, 3, 1
    EXPECT_EQ(nb_numel(parts[3]), 1);
    for (int i = 0; i < n; i++) nb_release(parts[i]);
    ASSERT_EQ(nb_split(x, 4, 0, 8, parts, &n), NB_OK);
    EXPECT_EQ(n, 3);
    for (int i = 0; i < n; i++) nb_release(parts[i]);
}

// Reductions to a few outputs of many elements split the elements over threads
// and merge partial results; they must agree with a double-precision loop.
TEST(Reduce, LargeReductionsMatchDoubleLoops) {
    const int64_t n = 300001;
    std::mt19937_64 rng(3);
    Host h({n});
    for (double &v : h.v) v = std::uniform_real_distribution<double>(-2, 2)(rng);
    h.v[123457] = 5; // the unique maximum, late in a middle range
    h.v[7] = -5;     // the unique minimum
    T x(make_tensor(h, NB_F64));
    double sum = 0, sq = 0, lse = 0, abs_sum = 0;
    for (double v : h.v) sum += v, abs_sum += std::fabs(v), lse += std::exp(v);
    double mean = sum / n;
    for (double v : h.v) sq += (v - mean) * (v - mean);
    auto one = [](nb_tensor *t) {
        T owned(t);
        double v = NAN;
        EXPECT_EQ(nb_item(owned, &v), NB_OK) << nb_last_error();
        return v;
    };
    EXPECT_NEAR(one(nb_sum(x, 0, nullptr, false)), sum, 1e-9);
    EXPECT_NEAR(one(nb_mean(x, 0, nullptr, false)), mean, 1e-12);
    EXPECT_NEAR(one(nb_var(x, 0, nullptr, 1, false)), sq / (n - 1), 1e-12);
    EXPECT_NEAR(one(nb_logsumexp(x, 0, nullptr, false)), std::log(lse), 1e-12);
    EXPECT_NEAR(one(nb_norm(x, 1, 0, nullptr, false)), abs_sum, 1e-8);
    EXPECT_EQ(one(nb_norm(x, INFINITY, 0, nullptr, false)), 5);
    EXPECT_EQ(one(nb_max(x, 0, nullptr, false)), 5);
    EXPECT_EQ(one(nb_argmax(x, 0, nullptr, false)), 123457);
    EXPECT_EQ(one(nb_argmin(x, 0, nullptr, false)), 7);
    Host ints({n});
    for (int64_t i = 0; i < n; i++) ints.v[i] = (double)(i % 7) - 3;
    T xi(make_tensor(ints, NB_I32));
    EXPECT_EQ(one(nb_sum(xi, 0, nullptr, false)), (double)([&] {
        int64_t s = 0;
        for (int64_t i = 0; i < n; i++) s += i % 7 - 3;
        return s;
    }()));
    h.v[200000] = NAN;
    T with_nan(make_tensor(h, NB_F64));
    EXPECT_TRUE(std::isnan(one(nb_max(with_nan, 0, nullptr, false))));
    EXPECT_TRUE(std::isnan(one(nb_norm(with_nan, INFINITY, 0, nullptr, false))));
    EXPECT_TRUE(std::isnan(one(nb_logsumexp(with_nan, 0, nullptr, false))));
    EXPECT_EQ(one(nb_argmax(with_nan, 0, nullptr, false)), 200000);
}

// ---- printing ----

TEST(Print, LooksLikePyTorch) {
    T ints(make_tensor(Host({2, 2}, {1, 2, 3, 4}), NB_F32));
    EXPECT_EQ(repr(ints), "tensor([[1., 2.],\n        [3., 4.]])");
    T frac(make_tensor(Host({3}, {0.5, -1.25, 3}), NB_F32));
    EXPECT_EQ(repr(frac), "tensor([ 0.5000, -1.2500,  3.0000])");
    T wide(make_tensor(Host({2}, {1e-6, 12345.0}), NB_F64));
    EXPECT_EQ(repr(wide), "tensor([1.0000e-06, 1.2345e+04], dtype=f64)");
    T i32(make_tensor(Host({3}, {1, -20, 3}), NB_I32));
    EXPECT_EQ(repr(i32), "tensor([  1, -20,   3], dtype=i32)");
    T flags(make_tensor(Host({2}, {1, 0}), NB_BOOL));
    EXPECT_EQ(repr(flags), "tensor([ True, False])");
    EXPECT_EQ(repr(T(nb_scalar(2.5, NB_F32, nb_cpu()))), "tensor(2.5000)");
    EXPECT_EQ(repr(T(nb_zeros(2, Shape{0, 3}.data(), NB_F32, nb_cpu()))), "tensor([], size=(0, 3))");
    T w(make_tensor(Host({2}, {1, 2}), NB_F32));
    ASSERT_EQ(nb_set_requires_grad(w, true), NB_OK);
    EXPECT_EQ(repr(w), "tensor([1., 2.], requires_grad=True)");
    T y(nb_mul(w, w));
    EXPECT_EQ(repr(y), "tensor([1., 4.], grad_fn=<mul>)");
    char small[8];
    EXPECT_EQ(nb_format(w, small, sizeof small), (int)repr(w).size());
    EXPECT_STREQ(small, "tensor(");
}

TEST(Print, SummarizesLargeTensors) {
    T big(nb_arange(0, 2000, 1, NB_F32, nb_cpu()));
    EXPECT_EQ(repr(big), "tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.])");
    Host values({2000});
    for (int i = 0; i < 2000; i++) values.v[i] = i;
    values.v[1000] = 0.001; // hidden by the summary, so it does not change the format
    EXPECT_EQ(repr(T(make_tensor(values, NB_F32))), repr(big));
    T grid(nb_reshape(big, 2, Shape{40, 50}.data()));
    std::string text = repr(grid);
    EXPECT_NE(text.find("...,\n"), std::string::npos) << text;
    EXPECT_NE(text.find("[1950., 1951., 1952.,"), std::string::npos) << text;
}

// ---- random numbers ----

TEST(Random, PhiloxReferenceMatchesPublishedVectors) {
    // Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds).
    const uint32_t zero[4] = {0, 0, 0, 0}, zero_key[2] = {0, 0};
    EXPECT_EQ(PhiloxRef::rounds(zero, zero_key), (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
    const uint32_t ones[4] = {~0u, ~0u, ~0u, ~0u}, ones_key[2] = {~0u, ~0u};
    EXPECT_EQ(PhiloxRef::rounds(ones, ones_key), (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
    const uint32_t pi[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, pi_key[2] = {0xa4093822, 0x299f31d0};
    EXPECT_EQ(PhiloxRef::rounds(pi, pi_key), (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Random, StreamsAreCounterBased) {
    nb_generator *g = nb_generator_create(99);
    T first(nb_uniform(1, Shape{10}.data(), 0, 1, NB_F64, nb_cpu(), g));
    T next(nb_uniform(1, Shape{5}.data(), 0, 1, NB_F64, nb_cpu(), g));
    EXPECT_EQ(nb_generator_offset(g), 15u);
    nb_generator_seed(g, 99);
    T all(nb_uniform(1, Shape{15}.data(), 0, 1, NB_F64, nb_cpu(), g));
    Host a = read_tensor(all), f = read_tensor(first), n = read_tensor(next);
    for (int i = 0; i < 10; i++) EXPECT_EQ(a.v[i], f.v[i]);
    for (int i = 0; i < 5; i++) EXPECT_EQ(a.v[10 + i], n.v[i]);
    nb_generator_seed(g, 100);
    T other(nb_uniform(1, Shape{10}.data(), 0, 1, NB_F64, nb_cpu(), g));
    EXPECT_NE(read_tensor(other).v, f.v);
    nb_generator_free(g);
    nb_manual_seed(5);
    Host d1 = read_tensor(T(nb_normal(1, Shape{4}.data(), 0, 1, NB_F32, nb_cpu(), nullptr)));
    nb_manual_seed(5);
    Host d2 = read_tensor(T(nb_normal(1, Shape{4}.data(), 0, 1, NB_F32, nb_cpu(), nullptr)));
    EXPECT_EQ(d1.v, d2.v);
}

// f64 uniform draws are low + (high - low) * u with two roundings (never a
// fused multiply-add), so CPU and CUDA agree to the last bit (docs/random.md).
TEST(Random, F64UniformRoundsTheProductThenTheSum) {
    const uint64_t seed = 31;
    nb_generator *g = nb_generator_create(seed);
    Host u = read_tensor(T(nb_uniform(1, Shape{64}.data(), 0.1, 0.7, NB_F64, nb_cpu(), g)));
    nb_generator_free(g);
    for (int i = 0; i < 64; i++) {
        auto w = PhiloxRef::block(seed, (uint64_t)i);
        volatile double product = (0.7 - 0.1) * PhiloxRef::unit(w[0], w[1]);
        EXPECT_EQ(u.v[i], product + 0.1) << i;
    }
}

TEST(Random, DistributionsHaveTheirMoments) {
    nb_generator *g = nb_generator_create(2024);
    const int64_t n = 200000;
    auto moments = [](const Host &h) {
        double m = 0, v = 0;
        for (double x : h.v) m += x;
        m /= h.numel();
        for (double x : h.v) v += (x - m) * (x - m);
        return std::make_pair(m, v / (h.numel() - 1));
    };
    auto normal = moments(read_tensor(T(nb_normal(1, &n, 2, 3, NB_F32, nb_cpu(), g))));
    EXPECT_NEAR(normal.first, 2, 0.03);
    EXPECT_NEAR(normal.second, 9, 0.1);
    auto uniform = moments(read_tensor(T(nb_uniform(1, &n, -1, 3, NB_F64, nb_cpu(), g))));
    EXPECT_NEAR(uniform.first, 1, 0.02);
    EXPECT_NEAR(uniform.second, 16.0 / 12, 0.02);
    auto coin = moments(read_tensor(T(nb_bernoulli(1, &n, 0.3, NB_F32, nb_cpu(), g))));
    EXPECT_NEAR(coin.first, 0.3, 0.005);
    Host dice = read_tensor(T(nb_randint(1, 7, 1, &n, NB_I64, nb_cpu(), g)));
    std::vector<int> counts(7, 0);
    for (double x : dice.v) counts[(int)x]++;
    EXPECT_EQ(counts[0], 0);
    for (int face = 1; face <= 6; face++) EXPECT_NEAR(counts[face] / (double)n, 1 / 6.0, 0.005);
    Host perm = read_tensor(T(nb_randperm(1000, NB_I64, nb_cpu(), g)));
    std::set<double> seen(perm.v.begin(), perm.v.end());
    EXPECT_EQ(seen.size(), 1000u);
    EXPECT_EQ(*seen.begin(), 0);
    EXPECT_EQ(*seen.rbegin(), 999);
    nb_generator_free(g);
}

} // namespace

// The CUDA average-pool backward visits, for each input position, the
// outputs nb_window_covering names; every window holding the position must
// be among them.
TEST(Window, CoveringRangeHoldsEveryWindowContainingAPosition) {
    int checked = 0;
    for (int adaptive = 0; adaptive < 2; adaptive++)
        for (int64_t in = 1; in <= 12; in++)
            for (int kernel = 1; kernel <= 4; kernel++)
                for (int stride = 1; stride <= 3; stride++)
                    for (int padding = 0; padding <= kernel / 2; padding++)
                        for (int dilation = 1; dilation <= (adaptive ? 1 : 2); dilation++) {
                            nb_window w = {};
                            w.in[0] = in;
                            w.kernel[0] = kernel, w.stride[0] = stride, w.padding[0] = padding;
                            w.dilation[0] = dilation, w.adaptive = adaptive;
                            int64_t span = (int64_t)(kernel - 1) * dilation + 1;
                            w.out[0] = adaptive ? kernel + stride : (in + 2 * padding - span) / stride + 1;
                            if (w.out[0] < 1) continue;
                            for (int64_t p = 0; p < in; p++) {
                                int64_t lo, hi;
                                nb_window_covering(&w, 0, p, &lo, &hi);
                                for (int64_t i = 0; i < w.out[0]; i++) {
                                    int64_t first, last;
                                    nb_window_range(&w, 0, i, &first, &last);
                                    if (first <= p && p < last) {
                                        EXPECT_TRUE(lo <= i && i < hi)
                                            << "in " << in << " kernel " << kernel << " stride " << stride
                                            << " padding " << padding << " dilation " << dilation
                                            << " adaptive " << adaptive << ": output " << i
                                            << " covers " << p << " but the range is [" << lo << ", " << hi << ")";
                                        checked++;
                                    }
                                }
                            }
                        }
    EXPECT_GT(checked, 1000);
}
