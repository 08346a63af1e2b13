// Sorting, selection, scans and multinomial sampling at their edges: NaN,
// signed zeros, ties, integer extremes, the kernels' size thresholds, the
// values PyTorch gives for the same inputs, sampling frequencies, the same
// draws on CPU and CUDA, and bad input.
#include "harness.h"

namespace {

const double NaN = std::nan("");
const double INF = INFINITY;

Host values_of(const nb_tensor *t) { return read_tensor(t); }

std::vector<double> list(const nb_tensor *t) { return read_tensor(t).v; }

T vec(std::vector<double> v, nb_dtype dtype = NB_F32) {
    int64_t n = (int64_t)v.size();
    return T(make_tensor(Host({n}, v), dtype));
}

bool same(const std::vector<double> &a, const std::vector<double> &b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
    return true;
}

std::string show(const std::vector<double> &v) {
    std::string s;
    for (double x : v) s += std::to_string(x) + " ";
    return s;
}

#define EXPECT_LIST(t, ...)                                                   \
    do {                                                                      \
        std::vector<double> want_ = __VA_ARGS__, got_ = list(t);              \
        EXPECT_TRUE(same(got_, want_)) << "got " << show(got_) << " want " << show(want_); \
    } while (0)

// PyTorch 1.13 on [1, nan, 0, nan, 1, -0, 0] (stable): NaN last ascending,
// first descending; -0 ties with 0 and keeps its place.
TEST(Sort, NanAndSignedZeroOrderAsPyTorch) {
    for (nb_dtype dtype : {NB_F32, NB_F64, NB_F16, NB_BF16}) {
        T x(vec({1, NaN, 0, NaN, 1, -0.0, 0}, dtype));
        nb_tensor *raw = nullptr;
        T up(nb_sort(x, 0, false, &raw));
        T up_index(raw);
        EXPECT_LIST(up_index, {2, 5, 6, 0, 4, 1, 3});
        EXPECT_LIST(up, {0, 0, 0, 1, 1, NaN, NaN});
        EXPECT_TRUE(std::signbit(values_of(up).v[1])) << "-0 keeps its sign";
        T down(nb_sort(x, 0, true, &raw));
        T down_index(raw);
        EXPECT_LIST(down_index, {1, 3, 0, 4, 2, 5, 6});
        T top(nb_topk(x, 3, 0, true, &raw));
        T top_index(raw);
        EXPECT_LIST(top_index, {1, 3, 0});
        T bottom(nb_topk(x, 3, 0, false, &raw));
        T bottom_index(raw);
        EXPECT_LIST(bottom_index, {2, 5, 6}); // PyTorch's order among ties differs: 6, 5, 2
    }
}

TEST(Sort, InfinitiesAndIntegerExtremes) {
    T f(vec({INF, -INF, NaN, 3, -INF, INF}, NB_F64));
    T fs(nb_argsort(f, 0, false));
    EXPECT_LIST(fs, {1, 4, 3, 0, 5, 2});
    Host big({5}, {0, -1, 1, 0, 0});
    T x(make_tensor(big, NB_I64));
    int64_t *p = (int64_t *)nb_data(x);
    p[0] = INT64_MAX, p[3] = INT64_MIN, p[4] = INT64_MIN + 1;
    T order(nb_argsort(x, 0, false));
    EXPECT_LIST(order, {3, 4, 1, 2, 0});
    T reversed(nb_argsort(x, 0, true));
    EXPECT_LIST(reversed, {0, 2, 1, 4, 3});
    T b(vec({1, 0, 1, 0}, NB_BOOL));
    T bs(nb_argsort(b, 0, true));
    EXPECT_LIST(bs, {0, 2, 1, 3});
}

// Rows around the insertion sort's limit (32) and long rows through the radix
// passes, against std::stable_sort; many ties from a small integer range.
TEST(Sort, EverySizeAgainstStableSort) {
    std::mt19937_64 rng(7);
    for (int64_t n : {31, 32, 33, 64, 255, 256, 257, 5000, 70000})
        for (nb_dtype dtype : {NB_F32, NB_F64, NB_I32, NB_I64, NB_F16, NB_BF16, NB_U8})
            for (bool descending : {false, true}) {
                Host h({n});
                for (double &v : h.v) v = (double)(int)(rng() % 50) - (dtype == NB_U8 ? 0 : 25);
                T x(make_tensor(h, dtype));
                T order(nb_argsort(x, 0, descending));
                ASSERT_NE(order.t, nullptr) << nb_last_error();
                std::vector<int64_t> want(n);
                std::iota(want.begin(), want.end(), 0);
                std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) {
                    return descending ? h.v[a] > h.v[b] : h.v[a] < h.v[b];
                });
                Host got = values_of(order);
                for (int64_t i = 0; i < n; i++)
                    ASSERT_EQ(got.v[i], (double)want[i]) << "n " << n << " " << nb_dtype_name(dtype) << " at " << i;
            }
}

// topk's heap (k * 8 < n) and sort paths agree with the first k of the sort.
TEST(Topk, HeapAndSortPathsMatchTheSort) {
    std::mt19937_64 rng(3);
    for (int64_t n : {33, 100, 1000, 4097})
        for (int64_t k : {int64_t{1}, int64_t{2}, n / 8 - 1, n / 8, n / 8 + 1, n - 1, n}) {
            if (k < 1) continue;
            Host h({2, n});
            for (double &v : h.v) v = (double)(int)(rng() % 20);
            T x(make_tensor(h, NB_F32));
            for (bool largest : {true, false}) {
                nb_tensor *raw = nullptr;
                T top(nb_topk(x, k, 1, largest, &raw));
                T top_index(raw);
                T sorted(nb_argsort(x, 1, largest));
                T first(nb_slice(sorted, 1, 0, k, 1));
                ASSERT_NE(top.t, nullptr) << nb_last_error();
                EXPECT_TRUE(same(list(top_index), list(first))) << "n " << n << " k " << k;
            }
        }
}

TEST(Search, SidesNanAndDtypesAsPyTorch) {
    T seq(vec({1, 2, NaN}));
    T values(vec({NaN, 1.5, 3}));
    T at(nb_searchsorted(seq, values, false));
    EXPECT_LIST(at, {3, 1, 3}); // PyTorch 1.13: tensor([3, 1, 3])
    T ties(vec({1, 2, 2, 2, 5}, NB_I64));
    T probe(vec({2, 0, 6, 5}, NB_I32)); // promoted to i64
    T left(nb_searchsorted(ties, probe, false)), right(nb_searchsorted(ties, probe, true));
    EXPECT_LIST(left, {1, 0, 5, 4});
    EXPECT_LIST(right, {4, 0, 5, 5});
    T buckets(nb_bucketize(probe, ties, true));
    EXPECT_LIST(buckets, {4, 0, 5, 5});
    T empty(make_tensor(Host({0}), NB_F32));
    T none(nb_searchsorted(empty, values, false));
    EXPECT_LIST(none, {0, 0, 0});
}

TEST(Search, BadInput) {
    T seq(make_tensor(Host({2, 3}, {1, 2, 3, 4, 5, 6}), NB_F32));
    T values(make_tensor(Host({3, 2}), NB_F32));
    EXPECT_EQ(nb_searchsorted(seq, values, false), nullptr);
    EXPECT_NE(std::string(nb_last_error()).find("nb_searchsorted: needs a 1-D sorted sequence"), std::string::npos)
        << nb_last_error();
    EXPECT_EQ(nb_bucketize(values, seq, false), nullptr);
    EXPECT_NE(std::string(nb_last_error()).find("nb_bucketize: needs 1-D boundaries, got [2,3]"), std::string::npos)
        << nb_last_error();
    EXPECT_EQ(nb_searchsorted(nullptr, values, false), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

TEST(Sort, BadInput) {
    T x(make_tensor(Host({2, 3}), NB_F32));
    nb_tensor *index = (nb_tensor *)&index;
    EXPECT_EQ(nb_sort(x, 2, false, &index), nullptr);
    EXPECT_EQ(index, (nb_tensor *)&index) << "indices untouched on failure";
    EXPECT_NE(std::string(nb_last_error()).find("nb_sort"), std::string::npos) << nb_last_error();
    EXPECT_EQ(nb_topk(x, 4, 1, true, nullptr), nullptr);
    EXPECT_STREQ(nb_last_error(), "nb_topk: needs 0 <= k <= 3 (the size of dim 1 of [2,3]), got 4");
    EXPECT_EQ(nb_topk(x, -1, 1, true, nullptr), nullptr);
    EXPECT_EQ(nb_argsort(nullptr, 0, false), nullptr);
    EXPECT_STREQ(nb_last_error(), "nb_argsort: x is NULL");
}

// PyTorch 1.13: cumprod's gradient at [2, 0, 3, 0, 5] is [1, 8, 0, 0, 0].
TEST(Scan, CumprodGradientThroughZerosAsPyTorch) {
    T x(vec({2, 0, 3, 0, 5}, NB_F64));
    ASSERT_EQ(nb_set_requires_grad(x, true), NB_OK);
    T y(nb_cumprod(x, 0));
    T total(nb_sum(y, 0, nullptr, false));
    ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
    T g(nb_grad(x));
    EXPECT_LIST(g, {1, 8, 0, 0, 0});
}

// -inf stays exact; its gradient is 0 (PyTorch gives NaN for these).
TEST(Scan, LogcumsumexpAtMinusInfinity) {
    T x(vec({-INF, -INF, 1, -INF, 1000}, NB_F64));
    ASSERT_EQ(nb_set_requires_grad(x, true), NB_OK);
    T y(nb_logcumsumexp(x, 0));
    Host v = values_of(y);
    EXPECT_EQ(v.v[0], -INF);
    EXPECT_EQ(v.v[1], -INF);
    EXPECT_EQ(v.v[2], 1);
    EXPECT_EQ(v.v[3], 1);
    EXPECT_EQ(v.v[4], 1000); // 1000 + log1p(exp(-999)): no overflow
    T total(nb_sum(y, 0, nullptr, false));
    ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
    T g(nb_grad(x));
    Host gv = values_of(g);
    EXPECT_EQ(gv.v[0], 0);
    EXPECT_EQ(gv.v[1], 0);
    EXPECT_NEAR(gv.v[2], 2, 1e-12); // d/dx2 of y2 and y3 (1 each) and y4 (exp(-999))
    EXPECT_EQ(gv.v[3], 0);
    EXPECT_NEAR(gv.v[4], 1, 1e-12);
}

TEST(Scan, IntegersGiveI64AndWrap) {
    T x(vec({1, 1, 1}, NB_BOOL));
    T s(nb_cumsum(x, 0));
    EXPECT_EQ(nb_dtype_of(s), NB_I64);
    EXPECT_LIST(s, {1, 2, 3});
    T big(make_tensor(Host({2}), NB_I64));
    ((int64_t *)nb_data(big))[0] = INT64_MAX;
    ((int64_t *)nb_data(big))[1] = 1;
    T wrapped(nb_cumsum(big, 0));
    EXPECT_EQ(((int64_t *)nb_data(wrapped))[1], INT64_MIN);
    T u(vec({200, 2}, NB_U8));
    T p(nb_cumprod(u, 0));
    EXPECT_LIST(p, {200, 400});
    EXPECT_EQ(nb_logcumsumexp(u, 0), nullptr);
    EXPECT_STREQ(nb_last_error(), "nb_logcumsumexp: needs a float tensor, got u8");
    EXPECT_EQ(nb_cumsum(u, 1), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INDEX);
}

// A long row in f32 accumulates in double: 100000 * 0.1 without drift.
TEST(Scan, LongRowAccumulatesInDouble) {
    Host h({100000}, std::vector<double>(100000, 0.1));
    T x(make_tensor(h, NB_F32));
    T s(nb_cumsum(x, 0));
    Host v = values_of(s);
    EXPECT_NEAR(v.v.back(), 100000 * (double)0.1f, 1e-2);
}

// Lines longer than a chunk of the CPU kernel (2048 steps), forward and from
// the end (cumsum's gradient), one column and several side by side.
TEST(Scan, LinesLongerThanAChunk) {
    for (int64_t inner : {1, 3}) {
        const int64_t n = 5000;
        Host h({n, inner});
        for (int64_t i = 0; i < n * inner; i++) h.v[i] = (double)(i % 7) - 3;
        T x(make_tensor(h, NB_F64));
        ASSERT_EQ(nb_set_requires_grad(x, true), NB_OK);
        T y(nb_cumsum(x, 0));
        Host got = values_of(y);
        std::vector<double> run(inner, 0);
        for (int64_t i = 0; i < n * inner; i++) {
            run[i % inner] += h.v[i];
            ASSERT_EQ(got.v[i], run[i % inner]) << "inner " << inner << " at " << i;
        }
        T total(nb_sum(y, 0, nullptr, false));
        ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
        T g(nb_grad(x));
        Host gv = values_of(g);
        for (int64_t i = 0; i < n * inner; i++) ASSERT_EQ(gv.v[i], (double)(n - i / inner)) << "at " << i;
    }
}

// Frequencies of 200000 draws against the probabilities (each within 5
// standard deviations), with and without replacement.
TEST(Multinomial, FrequenciesFollowTheWeights) {
    std::vector<double> w = {1, 0, 3, 6, 0.5, 0, 9.5};
    double total = std::accumulate(w.begin(), w.end(), 0.0);
    T weights(vec(w));
    nb_generator *g = nb_generator_create(11);
    const int64_t n = 200000;
    T draws(nb_multinomial(weights, n, true, g));
    ASSERT_NE(draws.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_generator_offset(g), (uint64_t)n);
    std::vector<double> count(w.size());
    for (double d : list(draws)) count[(size_t)d]++;
    for (size_t i = 0; i < w.size(); i++) {
        double p = w[i] / total, sd = std::sqrt(n * p * (1 - p));
        EXPECT_NEAR(count[i], n * p, 5 * sd + 1e-9) << "category " << i;
    }
    // Without replacement: every positive category once, never a zero one.
    Host rows({3000, 7});
    for (int64_t r = 0; r < 3000; r++)
        for (int64_t i = 0; i < 7; i++) rows.v[r * 7 + i] = w[i];
    T many(make_tensor(rows, NB_F64));
    T picks(nb_multinomial(many, 5, false, g));
    ASSERT_NE(picks.t, nullptr) << nb_last_error();
    Host p = values_of(picks);
    double first_is_6 = 0;
    for (int64_t r = 0; r < 3000; r++) {
        std::vector<double> row(p.v.begin() + r * 5, p.v.begin() + (r + 1) * 5);
        std::sort(row.begin(), row.end());
        EXPECT_TRUE(same(row, {0, 2, 3, 4, 6})) << "row " << r << ": " << show(row);
        first_is_6 += p.v[r * 5] == 6;
    }
    EXPECT_NEAR(first_is_6 / 3000, 9.5 / total, 0.04); // the first pick follows the weights
    nb_generator_free(g);
}

TEST(Multinomial, BadInput) {
    T negative(vec({1, -1}));
    EXPECT_EQ(nb_multinomial(negative, 1, true, nullptr), nullptr);
    EXPECT_STREQ(nb_last_error(), "nb_multinomial: row 0 has a negative, infinite or NaN weight");
    T rows(make_tensor(Host({2, 2}, {1, 1, 0, 0}), NB_F32));
    EXPECT_EQ(nb_multinomial(rows, 1, true, nullptr), nullptr);
    EXPECT_STREQ(nb_last_error(), "nb_multinomial: the weights of row 1 sum to 0");
    T nan(vec({1, NaN}));
    EXPECT_EQ(nb_multinomial(nan, 1, true, nullptr), nullptr);
    T inf(vec({1, INF}));
    EXPECT_EQ(nb_multinomial(inf, 1, true, nullptr), nullptr);
    T sparse(vec({1, 0, 2}));
    EXPECT_EQ(nb_multinomial(sparse, 3, false, nullptr), nullptr);
    EXPECT_STREQ(nb_last_error(), "nb_multinomial: row 0 has 2 positive weights, fewer than the 3 "
                                  "samples drawn without replacement");
    EXPECT_EQ(nb_multinomial(sparse, 4, false, nullptr), nullptr);
    EXPECT_EQ(nb_multinomial(sparse, 0, true, nullptr), nullptr);
    T ints(vec({1, 2}, NB_I64));
    EXPECT_EQ(nb_multinomial(ints, 1, true, nullptr), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DTYPE);
    T cube(make_tensor(Host({1, 1, 2}, {1, 1}), NB_F32));
    EXPECT_EQ(nb_multinomial(cube, 1, true, nullptr), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_SHAPE);
    T empty(make_tensor(Host({0}), NB_F32));
    EXPECT_EQ(nb_multinomial(empty, 1, true, nullptr), nullptr);
    EXPECT_EQ(nb_multinomial(sparse, INT64_MAX, true, nullptr), nullptr);
    EXPECT_EQ(nb_multinomial(nullptr, 1, true, nullptr), nullptr);
}

// The same seed gives the same draws and results on CPU and CUDA.
TEST(Select, CudaMatchesCpu) {
    SKIP_WITHOUT_CUDA();
    std::mt19937_64 rng(5);
    Host w({4, 5000});
    for (double &v : w.v) v = std::uniform_real_distribution<double>(0, 1)(rng) * (rng() % 4 == 0);
    for (int64_t i = 0; i < 4; i++) w.v[i * 5000] = 0.25;
    T cpu(make_tensor(w, NB_F32));
    T cuda(nb_to(cpu, nb_cuda(0)));
    for (bool replacement : {true, false}) {
        nb_generator *a = nb_generator_create(99), *b = nb_generator_create(99);
        T on_cpu(nb_multinomial(cpu, 300, replacement, a));
        T on_cuda(nb_multinomial(cuda, 300, replacement, b));
        ASSERT_NE(on_cuda.t, nullptr) << nb_last_error();
        EXPECT_TRUE(same(list(on_cpu), list(on_cuda))) << "replacement " << replacement;
        nb_generator_free(a);
        nb_generator_free(b);
    }
    for (int dim : {0, 1})
        for (bool descending : {false, true}) {
            T a(nb_argsort(cpu, dim, descending)), b(nb_argsort(cuda, dim, descending));
            EXPECT_TRUE(same(list(a), list(b))) << "argsort dim " << dim;
            nb_tensor *ia = nullptr, *ib = nullptr;
            T ta(nb_topk(cpu, 3, dim, descending, &ia)), tb(nb_topk(cuda, 3, dim, descending, &ib));
            T index_a(ia), index_b(ib);
            EXPECT_TRUE(same(list(index_a), list(index_b))) << "topk dim " << dim;
            T sa(nb_cumsum(cpu, dim)), sb(nb_cumsum(cuda, dim));
            expect_close(values_of(sb), values_of(sa), NB_F32, 10, "cumsum");
        }
    T big(make_tensor(Host({1, 1 << 20}), NB_F32));
    float *p = (float *)nb_data(big);
    for (int i = 0; i < (1 << 20); i++) p[i] = (float)(rng() % 1000) - 500;
    T big_cuda(nb_to(big, nb_cuda(0)));
    T a(nb_argsort(big, 1, false)), b(nb_argsort(big_cuda, 1, false));
    EXPECT_TRUE(same(list(a), list(b))) << "one long row";
}

} // namespace
