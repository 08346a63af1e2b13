// Defects found by comparing nabla with PyTorch 1.13 on random and extreme
// inputs, and by calling it with bad input under the sanitizers: one test
// per defect, each asserting the answer PyTorch, numpy or the formula gives.
// Each failed before its fix.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "harness.h"

namespace {

nb_tensor *f64_tensor(const std::vector<double> &v, Shape shape = {}) {
    if (shape.empty()) shape = {(int64_t)v.size()};
    return nb_from_host(v.data(), (int)shape.size(), shape.data(), NB_F64, nb_cpu());
}

nb_tensor *i64_tensor(const std::vector<int64_t> &v, Shape shape = {}) {
    if (shape.empty()) shape = {(int64_t)v.size()};
    return nb_from_host(v.data(), (int)shape.size(), shape.data(), NB_I64, nb_cpu());
}

double item(const nb_tensor *t) {
    double v = std::numeric_limits<double>::quiet_NaN();
    EXPECT_EQ(nb_item(t, &v), NB_OK) << nb_last_error();
    return v;
}

int64_t item_i64(const nb_tensor *t) {
    int64_t v = -7;
    EXPECT_EQ(nb_dtype_of(t), NB_I64);
    EXPECT_EQ(nb_to_host(t, &v, sizeof v), NB_OK) << nb_last_error();
    return v;
}

// The gradient of sum(f(x)) at x.
Host grad_of(const std::function<nb_tensor *(nb_tensor *)> &f, const std::vector<double> &x,
             Shape shape = {}) {
    T leaf(f64_tensor(x, shape));
    EXPECT_EQ(nb_set_requires_grad(leaf, true), NB_OK);
    T y(f(leaf));
    EXPECT_NE(y.t, nullptr) << nb_last_error();
    T total(nb_sum(y, 0, nullptr, false));
    EXPECT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
    T g(nb_grad(leaf));
    return read_tensor(g);
}

// 1. Whole-tensor extremes with more elements than one thread takes: each
// thread's partial started at 0, not at its first element.
TEST(Regression, ExtremesOfManyNegativeOrPositiveValues) {
    const int64_t n = 70000;
    std::vector<double> down(n), up(n);
    for (int64_t i = 0; i < n; i++) down[i] = -1 - (double)i / n, up[i] = 1 + (double)i / n;
    T neg(f64_tensor(down)), pos(f64_tensor(up));
    T mx(nb_max(neg, 0, nullptr, false)), amx(nb_argmax(neg, 0, nullptr, false));
    T mn(nb_min(pos, 0, nullptr, false)), amn(nb_argmin(pos, 0, nullptr, false));
    EXPECT_EQ(item(mx), -1.0);
    EXPECT_EQ(item_i64(amx), 0);
    EXPECT_EQ(item(mn), 1.0);
    EXPECT_EQ(item_i64(amn), 0);
    T last(nb_argmin(neg, 0, nullptr, false));
    EXPECT_EQ(item_i64(last), n - 1);
    T fives(nb_full(1, &n, -5, NB_I64, nb_cpu()));
    T five(nb_max(fives, 0, nullptr, false));
    EXPECT_EQ(item_i64(five), -5);
    // the gradient of max goes to the one maximum
    Host g = grad_of([](nb_tensor *x) { return nb_max(x, 0, nullptr, false); }, down);
    EXPECT_EQ(g.v[0], 1.0);
    for (int64_t i = 1; i < n; i++) ASSERT_EQ(g.v[i], 0.0) << i;
    // rows of a [2, 70000] tensor, fewer outputs than threads
    std::vector<double> rows(down);
    rows.insert(rows.end(), up.begin(), up.end());
    T both(f64_tensor(rows, {2, n}));
    int dim = 1;
    T row_max(nb_max(both, 1, &dim, false));
    Host r = read_tensor(row_max);
    EXPECT_EQ(r.v[0], -1.0);
    EXPECT_EQ(r.v[1], 1 + (double)(n - 1) / n);
}

// 2. i64 extremes compared through double: 2^53 + 1 and 2^53 were equal.
// On every device present.
TEST(Regression, IntegerExtremesAreExactBeyondTwoToThe53) {
    const int64_t big = (int64_t)1 << 53;
    T x(i64_tensor({big, big + 1, big - 1}));
    std::vector<nb_device> devices = {nb_cpu()};
    for (int i = 0; i < nb_cuda_device_count(); i++) devices.push_back(nb_cuda(i));
    for (nb_device device : devices) {
        T on(nb_to(x, device));
        auto host = [](nb_tensor *t) { return T(nb_to(T(t), nb_cpu())); };
        EXPECT_EQ(item_i64(host(nb_max(on, 0, nullptr, false))), big + 1);
        EXPECT_EQ(item_i64(host(nb_argmax(on, 0, nullptr, false))), 1);
        EXPECT_EQ(item_i64(host(nb_min(on, 0, nullptr, false))), big - 1);
        EXPECT_EQ(item_i64(host(nb_argmin(on, 0, nullptr, false))), 2);
        EXPECT_EQ(item_i64(host(nb_sum(on, 0, nullptr, false))), 3 * big);
    }
    // casts between i64 tensors keep every bit; to f64 they round to nearest even
    T same(nb_cast(x, NB_I64)), wide(nb_cast(x, NB_F64));
    int64_t back[3];
    double rounded[3];
    ASSERT_EQ(nb_to_host(same, back, sizeof back), NB_OK);
    ASSERT_EQ(nb_to_host(wide, rounded, sizeof rounded), NB_OK);
    EXPECT_EQ(back[1], big + 1);
    EXPECT_EQ(rounded[1], (double)big);
    EXPECT_EQ(rounded[2], (double)(big - 1));
}

// 3. Adam's bias correction counts each parameter's own steps, as PyTorch.
TEST(Regression, AdamCountsStepsPerParameter) {
    for (bool decoupled : {false, true}) {
        T p0(f64_tensor({1})), p1(f64_tensor({3}));
        ASSERT_EQ(nb_set_requires_grad(p0, true), NB_OK);
        ASSERT_EQ(nb_set_requires_grad(p1, true), NB_OK);
        nb_tensor *params[2] = {p0, p1};
        nb_optimizer *opt = decoupled ? nb_adamw_create(params, 2, 0.1, 0.9, 0.999, 1e-8, 0)
                                      : nb_adam_create(params, 2, 0.1, 0.9, 0.999, 1e-8, 0);
        ASSERT_NE(opt, nullptr) << nb_last_error();
        for (int step = 0; step < 3; step++) {
            nb_optimizer_zero_grad(opt);
            T a(nb_mul(p0, p0)), b(nb_mul(p1, p1));
            T loss(step == 0 ? nb_sum(a, 0, nullptr, false) : nb_add(T(nb_sum(a, 0, nullptr, false)),
                                                                     T(nb_sum(b, 0, nullptr, false))));
            ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
            ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
        }
        EXPECT_NEAR(item(p1), 2.80010, 5e-6) << (decoupled ? "AdamW" : "Adam");
        nb_optimizer_free(opt);
    }
}

// 4 and 12. Cross-entropy with a class masked by -inf, and with large f32 logits.
TEST(Regression, CrossEntropyWithInfiniteAndLargeLogits) {
    for (nb_dtype dtype : {NB_F32, NB_F64}) {
        T logits(nb_cast(T(f64_tensor({-INFINITY, 0, 1}, {1, 3})), dtype));
        T target(i64_tensor({2}));
        T loss(nb_cross_entropy(logits, target, NB_REDUCTION_MEAN, 0, -100));
        ASSERT_NE(loss.t, nullptr) << nb_last_error();
        EXPECT_NEAR(item(loss), std::log(1 + std::exp(-1.0)), 1e-6) << nb_dtype_name(dtype);
    }
    // logits near 1e4 in f32: the gradient is softmax - onehot to f32's epsilon
    std::vector<double> x = {1e4, 1e4 + 1, 1e4 - 2, 1e4 + 0.5};
    T leaf(nb_cast(T(f64_tensor(x, {1, 4})), NB_F32));
    ASSERT_EQ(nb_set_requires_grad(leaf, true), NB_OK);
    T target(i64_tensor({1}));
    T loss(nb_cross_entropy(leaf, target, NB_REDUCTION_SUM, 0, -100));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
    Host g = read_tensor(T(nb_grad(leaf)));
    double sum = 0;
    for (double v : x) sum += std::exp(v - 1e4);
    for (int j = 0; j < 4; j++)
        EXPECT_NEAR(g.v[j], std::exp(x[j] - 1e4) / sum - (j == 1), 1e-7) << j;
}

// 5. Negative indices are errors everywhere, as in PyTorch.
TEST(Regression, NegativeIndicesAreErrors) {
    T weight(f64_tensor({1, 2, 3, 4, 5, 6}, {3, 2}));
    T index(i64_tensor({0, -1}));
    EXPECT_EQ(T(nb_index_select(weight, 0, index)).t, nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INDEX);
    EXPECT_NE(std::string(nb_last_error()).find("index -1 out of range [0, 3)"), std::string::npos)
        << nb_last_error();
    EXPECT_EQ(T(nb_embedding(weight, index)).t, nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INDEX);
    EXPECT_EQ(std::string(nb_last_error()).rfind("nb_embedding: ", 0), 0u) << nb_last_error();
    T tokens(nb_full(2, Shape{1, 1}.data(), -1, NB_I64, nb_cpu()));
    nb_gpt_config config = small_gpt_config(5, 4);
    nb_module *gpt = nb_nn_gpt(&config, NB_F32, nb_cpu(), nullptr);
    ASSERT_NE(gpt, nullptr) << nb_last_error();
    EXPECT_EQ(T(nb_module_forward(gpt, tokens)).t, nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INDEX) << nb_last_error();
    nb_module_free(gpt);
}

// 6. Empty tensors are contiguous whatever their strides, as in PyTorch.
TEST(Regression, EmptyTensorsAreContiguous) {
    for (const Shape &shape : {Shape{5, 0}, Shape{3, 0, 1}, Shape{0, 4}}) {
        T t(nb_zeros((int)shape.size(), shape.data(), NB_F32, nb_cpu()));
        EXPECT_TRUE(nb_is_contiguous(t)) << shape_str(shape);
        ASSERT_EQ(nb_set_requires_grad(t, true), NB_OK);
        nb_tensor *params[1] = {t};
        nb_optimizer *opt = nb_adamw_create(params, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01);
        EXPECT_NE(opt, nullptr) << shape_str(shape) << ": " << nb_last_error();
        nb_optimizer_free(opt);
    }
}

// 7. Gradients that are 0, not NaN: pow's base at a = b = 0, std of a
// constant row, norm with p < 1 at zero entries.
TEST(Regression, GradientsAtSingularPointsAreZero) {
    Host g = grad_of([](nb_tensor *a) { return nb_pow(a, T(f64_tensor({0, 0, 2}))); }, {0, 3, 0});
    EXPECT_EQ(g.v[0], 0.0);
    EXPECT_EQ(g.v[1], 0.0);
    EXPECT_EQ(g.v[2], 0.0);
    g = grad_of([](nb_tensor *x) { return nb_std(x, 0, nullptr, 1, false); }, {2, 2, 2});
    for (double v : g.v) EXPECT_EQ(v, 0.0);
    g = grad_of([](nb_tensor *x) { return nb_norm(x, 0.5, 0, nullptr, false); }, {0, 4, 0, 1});
    EXPECT_EQ(g.v[0], 0.0);
    EXPECT_EQ(g.v[2], 0.0);
    // d/dx (sqrt|x0| + ...)^2 = (sum sqrt|x|) / sqrt|x| for x > 0
    EXPECT_NEAR(g.v[1], 3.0 / 2, 1e-12);
    EXPECT_NEAR(g.v[3], 3.0 / 1, 1e-12);
}

// 8. var and std with correction >= N divide by max(0, N - correction): inf.
TEST(Regression, VarianceWithCorrectionPastTheCountIsInfinite) {
    T x(f64_tensor({1, 2}));
    EXPECT_EQ(item(T(nb_var(x, 0, nullptr, 2, false))), INFINITY);
    EXPECT_EQ(item(T(nb_std(x, 0, nullptr, 3, false))), INFINITY);
    EXPECT_TRUE(std::isnan(item(T(nb_var(T(f64_tensor({4})), 0, nullptr, 1, false)))));
}

// 9. linspace with one step is its start (PyTorch, numpy).
TEST(Regression, LinspaceOfOneStepIsItsStart) {
    T t(nb_linspace(-1, 1, 1, NB_F64, nb_cpu()));
    EXPECT_EQ(item(t), -1.0);
}

// 10. The exact GELU near the dtype's maximum: x, not inf.
TEST(Regression, ExactGeluDoesNotOverflow) {
    for (nb_dtype dtype : {NB_F32, NB_F64}) {
        double big = dtype == NB_F32 ? 2e38 : 1e308;
        T x(nb_cast(T(f64_tensor({big, -big})), dtype));
        Host y = read_tensor(T(nb_gelu(x, false)));
        EXPECT_NEAR(y.v[0], big, big * 1e-6) << nb_dtype_name(dtype);
        EXPECT_EQ(y.v[1], 0.0) << nb_dtype_name(dtype);
    }
}

// 11 and 21. group_norm and batch_norm on an empty batch.
TEST(Regression, NormalizationOfAnEmptyBatch) {
    T x(nb_zeros(3, Shape{0, 4, 3}.data(), NB_F32, nb_cpu()));
    T y(nb_group_norm(x, 2, nullptr, nullptr, 1e-5));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    EXPECT_EQ(shape_str(read_tensor(y).shape), "[0,4,3]");
    T mean(nb_zeros(1, Shape{4}.data(), NB_F32, nb_cpu())), var(nb_ones(1, Shape{4}.data(), NB_F32, nb_cpu()));
    T weight(nb_ones(1, Shape{4}.data(), NB_F32, nb_cpu()));
    ASSERT_EQ(nb_set_requires_grad(weight, true), NB_OK);
    T z(nb_batch_norm(x, mean, var, weight, nullptr, true, 0.1, 1e-5));
    ASSERT_NE(z.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_numel(z), 0);
    EXPECT_EQ(read_tensor(var).v, std::vector<double>(4, 1.0)); // running stats untouched
    ASSERT_EQ(nb_backward(T(nb_sum(z, 0, nullptr, false)), nullptr, false), NB_OK) << nb_last_error();
    EXPECT_EQ(read_tensor(T(nb_grad(weight))).v, std::vector<double>(4, 0.0));
    nb_module *bn = nb_nn_batch_norm1d(3, 1e-5, 0.1, true, NB_F32, nb_cpu());
    ASSERT_NE(bn, nullptr) << nb_last_error();
    T empty(nb_zeros(2, Shape{0, 3}.data(), NB_F32, nb_cpu()));
    T out(nb_module_forward(bn, empty));
    EXPECT_NE(out.t, nullptr) << nb_last_error();
    nb_module_free(bn);
}

// 13. nb_copy_ between overlapping views of one storage.
TEST(Regression, CopyBetweenOverlappingViews) {
    for (int64_t n : {10, 4096, 100000}) {
        T a(nb_arange(0, (double)n, 1, NB_F64, nb_cpu()));
        T head(nb_slice(a, 0, 0, n - 1, 1)), tail(nb_slice(a, 0, 1, n, 1));
        ASSERT_EQ(nb_copy_(tail, head), NB_OK) << nb_last_error();
        Host v = read_tensor(a);
        EXPECT_EQ(v.v[0], 0.0);
        for (int64_t i = 1; i < n; i++) ASSERT_EQ(v.v[i], (double)(i - 1)) << n << " at " << i;
        T b(nb_arange(0, (double)n, 1, NB_F64, nb_cpu()));
        T front(nb_slice(b, 0, 0, n - 1, 1)), back(nb_slice(b, 0, 1, n, 1));
        ASSERT_EQ(nb_copy_(front, back), NB_OK) << nb_last_error();
        v = read_tensor(b);
        for (int64_t i = 0; i < n - 1; i++) ASSERT_EQ(v.v[i], (double)(i + 1)) << n << " at " << i;
    }
}

// 14. A saved tensor changed in place before backward fails the backward.
TEST(Regression, BackwardDetectsInPlaceChangesOfSavedTensors) {
    T w(f64_tensor({2})), x(f64_tensor({5}));
    ASSERT_EQ(nb_set_requires_grad(w, true), NB_OK);
    T y(nb_mul(w, x));
    ASSERT_EQ(nb_copy_(x, T(f64_tensor({7}))), NB_OK);
    EXPECT_EQ(nb_backward(y, nullptr, false), NB_ERR_AUTOGRAD);
    EXPECT_NE(std::string(nb_last_error()).find("nb_mul"), std::string::npos) << nb_last_error();
    T leaf(f64_tensor({1}));
    ASSERT_EQ(nb_set_requires_grad(leaf, true), NB_OK);
    T sq(nb_mul(leaf, leaf));
    ASSERT_EQ(nb_init_constant(leaf, 3), NB_OK);
    EXPECT_EQ(nb_backward(sq, nullptr, false), NB_ERR_AUTOGRAD);
    // unchanged inputs still work, and a write after backward is fine
    T z(nb_mul(w, x));
    ASSERT_EQ(nb_backward(z, nullptr, false), NB_OK) << nb_last_error();
    EXPECT_EQ(item(T(nb_grad(w))), 7.0);
}

// 22. Building, differentiating and releasing a chain of a million ops.
TEST(Regression, MillionOpChainBackwardAndRelease) {
    T leaf(f64_tensor({1}));
    ASSERT_EQ(nb_set_requires_grad(leaf, true), NB_OK);
    T one(f64_tensor({0.5}));
    nb_tensor *y = nb_retain(leaf);
    const int n = 1000000;
    for (int i = 0; i < n; i++) {
        nb_tensor *next = nb_add(y, one);
        nb_release(y);
        ASSERT_NE(next, nullptr) << nb_last_error();
        y = next;
    }
    EXPECT_EQ(item(y), 1 + 0.5 * n);
    ASSERT_EQ(nb_backward(y, nullptr, true), NB_OK) << nb_last_error();
    EXPECT_EQ(item(T(nb_grad(leaf))), 1.0);
    nb_release(y); // the retained graph, freed without recursion
}

// Expects call to have failed with status, its message containing words.
#define EXPECT_FAILED(call, status, words)                                                     \
    do {                                                                                       \
        nb_clear_error();                                                                      \
        auto result_ = (call);                                                                 \
        EXPECT_FALSE(result_) << #call;                                                        \
        EXPECT_EQ(nb_last_status(), status) << #call << ": " << nb_last_error();              \
        EXPECT_NE(std::string(nb_last_error()).find(words), std::string::npos)                \
            << #call << ": \"" << nb_last_error() << "\" lacks \"" << words << "\"";          \
    } while (0)

nb_tensor *owned(nb_tensor *t) { // a result the test releases at once
    nb_release(t);
    return t;
}

// 15. IDX headers that declare more than the file holds.
TEST(Regression, IdxFilesThatDeclareMoreThanTheyHold) {
    auto write = [](const std::string &path, std::vector<unsigned char> bytes) {
        FILE *f = fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        fwrite(bytes.data(), 1, bytes.size(), f);
        fclose(f);
    };
    std::string path = ::testing::TempDir() + "nabla_regression.idx";
    // [8, 2^29]: 4 GiB declared, nothing there
    write(path, {0, 0, 8, 2, 0, 0, 0, 8, 0x20, 0, 0, 0});
    nb_tensor *t = nullptr;
    EXPECT_EQ(nb_idx_read(path.c_str(), &t), NB_ERR_IO);
    EXPECT_EQ(t, nullptr);
    EXPECT_NE(std::string(nb_last_error()).find("truncated"), std::string::npos) << nb_last_error();
    // [65537, 65536] with 65,536 bytes of data
    std::vector<unsigned char> header = {0, 0, 8, 2, 0, 1, 0, 1, 0, 1, 0, 0};
    header.resize(header.size() + 65536, 7);
    write(path, header);
    EXPECT_EQ(nb_idx_read(path.c_str(), &t), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find(path), std::string::npos) << nb_last_error();
    // and one that holds what it declares still reads
    write(path, {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6});
    ASSERT_EQ(nb_idx_read(path.c_str(), &t), NB_OK) << nb_last_error();
    EXPECT_EQ(read_tensor(t).v, (std::vector<double>{1, 2, 3, 4, 5, 6}));
    nb_release(t);
    remove(path.c_str());
}

// 16. Sizes, offsets and counts that overflow int64.
TEST(Regression, SizesThatOverflowAreErrors) {
    T x(nb_zeros(2, Shape{1, 4}.data(), NB_F32, nb_cpu()));
    const int64_t huge = INT64_MAX;
    EXPECT_FAILED(owned(nb_expand(x, 2, Shape{(int64_t)1 << 62, 4}.data())), NB_ERR_OVERFLOW, "nb_expand");
    EXPECT_FAILED(owned(nb_broadcast_to(x, 2, Shape{huge, 4}.data())), NB_ERR_OVERFLOW, "nb_broadcast_to");
    T m(nb_zeros(2, Shape{3, 5}.data(), NB_F32, nb_cpu()));
    T one_row(nb_slice(m, 0, 0, 3, huge));
    ASSERT_NE(one_row.t, nullptr) << nb_last_error();
    EXPECT_EQ(shape_str(read_tensor(one_row).shape), "[1,5]");
    nb_tensor *pieces[2];
    int n = 0;
    ASSERT_EQ(nb_split(m, huge, 0, 2, pieces, &n), NB_OK) << nb_last_error();
    EXPECT_EQ(n, 1);
    for (int i = 0; i < n; i++) nb_release(pieces[i]);
    T img(nb_zeros(4, Shape{1, 1, 5, 5}.data(), NB_F32, nb_cpu()));
    T w(nb_zeros(4, Shape{1, 1, 3, 3}.data(), NB_F32, nb_cpu()));
    int pad[2] = {INT32_MAX, INT32_MAX}, kernel[2] = {3, 3};
    EXPECT_FAILED(owned(nb_conv2d(img, w, nullptr, nullptr, pad, nullptr, 1)), NB_ERR_OVERFLOW, "nb_conv2d");
    EXPECT_FAILED(owned(nb_unfold(img, kernel, nullptr, pad, nullptr)), NB_ERR_OVERFLOW, "nb_unfold");
    T no_rows(nb_eye(0, huge, NB_F32, nb_cpu())); // empty, and its diagonal's stride not computed
    ASSERT_NE(no_rows.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_shape(no_rows)[1], huge);
    EXPECT_FAILED(owned(nb_eye(2, huge, NB_F32, nb_cpu())), NB_ERR_OVERFLOW, "nb_eye");
    T empty(nb_zeros(2, Shape{0, 4}.data(), NB_F32, nb_cpu()));
    EXPECT_FAILED(owned(nb_reshape(empty, 3, Shape{0, (int64_t)1 << 32, (int64_t)1 << 32}.data())),
                  NB_ERR_OVERFLOW, "nb_reshape");
    T q(nb_zeros(4, Shape{1, 1, 2, 4}.data(), NB_F32, nb_cpu()));
    EXPECT_FAILED(owned(nb_rope(q, huge, 10000)), NB_ERR_OVERFLOW, "nb_rope");
    T cols(nb_zeros(3, Shape{1, 9, 4}.data(), NB_F32, nb_cpu()));
    EXPECT_FAILED(owned(nb_fold(cols, Shape{huge, 2}.data(), kernel, nullptr, nullptr, nullptr)),
                  NB_ERR_SHAPE, "nb_fold");
    EXPECT_FAILED(owned(nb_randint(INT64_MIN, INT64_MAX, 1, Shape{2}.data(), NB_I64, nb_cpu(), nullptr)),
                  NB_ERR_INVALID, "nb_randint");
    T images(nb_zeros(2, Shape{5, 2}.data(), NB_F32, nb_cpu()));
    T labels(nb_zeros(1, Shape{5}.data(), NB_I64, nb_cpu()));
    nb_batches *b = nb_batches_create(images, labels, huge, false, false, nullptr);
    ASSERT_NE(b, nullptr) << nb_last_error();
    EXPECT_EQ(nb_batches_count(b), 1);
    nb_batches_free(b);
    double lr = nb_lr_warmup_cosine(INT64_MIN, 10, 100, 1e-3, 1e-5);
    EXPECT_NEAR(lr, 1e-4, 1e-12); // a negative step is step 0 of the warmup
    EXPECT_EQ(nb_lr_warmup_cosine(-5, 0, 100, 1e-3, 1e-5), 1e-3);
}

// 17. Values a dtype cannot hold are errors, one rule for every creator.
TEST(Regression, ValuesADtypeCannotHoldAreErrors) {
    EXPECT_FAILED(owned(nb_randint(0, 300, 1, Shape{4}.data(), NB_U8, nb_cpu(), nullptr)), NB_ERR_INVALID, "u8");
    EXPECT_FAILED(owned(nb_randint(0, 3, 1, Shape{4}.data(), NB_BOOL, nb_cpu(), nullptr)), NB_ERR_INVALID, "bool");
    EXPECT_FAILED(owned(nb_randint(0, (int64_t)1 << 32, 1, Shape{4}.data(), NB_I32, nb_cpu(), nullptr)),
                  NB_ERR_INVALID, "i32");
    EXPECT_FAILED(owned(nb_randint(0, 5000, 1, Shape{4}.data(), NB_F16, nb_cpu(), nullptr)), NB_ERR_INVALID, "f16");
    EXPECT_FAILED(owned(nb_randperm(300, NB_U8, nb_cpu(), nullptr)), NB_ERR_INVALID, "u8");
    EXPECT_FAILED(owned(nb_randperm(3, NB_BOOL, nb_cpu(), nullptr)), NB_ERR_INVALID, "bool");
    EXPECT_FAILED(owned(nb_randperm(4096, NB_F16, nb_cpu(), nullptr)), NB_ERR_INVALID, "f16");
    T u(nb_randint(0, 256, 1, Shape{64}.data(), NB_U8, nb_cpu(), nullptr)); // the whole range is fine
    ASSERT_NE(u.t, nullptr) << nb_last_error();
    T p(nb_randperm(256, NB_U8, nb_cpu(), nullptr));
    ASSERT_NE(p.t, nullptr) << nb_last_error();
    std::vector<double> seen = read_tensor(p).v;
    std::sort(seen.begin(), seen.end());
    for (int i = 0; i < 256; i++) ASSERT_EQ(seen[i], i);
    T ints(nb_zeros(1, Shape{3}.data(), NB_I32, nb_cpu()));
    T mask(nb_ones(1, Shape{3}.data(), NB_BOOL, nb_cpu()));
    EXPECT_FAILED(owned(nb_masked_fill(ints, mask, NAN)), NB_ERR_INVALID, "nb_masked_fill");
    EXPECT_FAILED(owned(nb_masked_fill(ints, mask, INFINITY)), NB_ERR_INVALID, "nb_masked_fill");
    EXPECT_FAILED(owned(nb_masked_fill(ints, mask, 3e9)), NB_ERR_INVALID, "i32");
    EXPECT_FAILED(owned(nb_full(1, Shape{3}.data(), 3e9, NB_I32, nb_cpu())), NB_ERR_INVALID, "nb_full");
    EXPECT_FAILED(owned(nb_full(1, Shape{3}.data(), -1, NB_U8, nb_cpu())), NB_ERR_INVALID, "u8");
    T fine(nb_masked_fill(ints, mask, -2147483648.0));
    ASSERT_NE(fine.t, nullptr) << nb_last_error();
    EXPECT_EQ(read_tensor(fine).v[0], -2147483648.0);
}

// 18. Optimizer hyper-parameters that are NaN, infinite or out of range.
TEST(Regression, OptimizerHyperParametersAreChecked) {
    T p(f64_tensor({1, 2}));
    ASSERT_EQ(nb_set_requires_grad(p, true), NB_OK);
    nb_tensor *params[2] = {p, p};
    EXPECT_FAILED(nb_sgd_create(params, 1, INFINITY, 0, 0, false), NB_ERR_INVALID, "lr");
    EXPECT_FAILED(nb_sgd_create(params, 1, 0.1, 1.5, 0, false), NB_ERR_INVALID, "momentum must be finite and in [0, 1], got 1.5");
    EXPECT_FAILED(nb_sgd_create(params, 1, 0.1, INFINITY, 0, false), NB_ERR_INVALID, "momentum");
    EXPECT_FAILED(nb_sgd_create(params, 1, 0.1, 0, INFINITY, false), NB_ERR_INVALID, "weight_decay");
    EXPECT_FAILED(nb_adam_create(params, 1, 0.1, 0.9, 0.999, INFINITY, 0), NB_ERR_INVALID, "eps");
    EXPECT_FAILED(nb_adamw_create(params, 1, NAN, 0.9, 0.999, 1e-8, 0), NB_ERR_INVALID, "lr");
    EXPECT_FAILED(nb_adamw_create(params, 2, 0.1, 0.9, 0.999, 1e-8, 0), NB_ERR_INVALID,
                  "parameter 0 of group 0 and parameter 1 of group 0 are the same tensor");
    nb_optimizer *opt = nb_sgd_create(params, 1, 0.1, 0, 0, false);
    ASSERT_NE(opt, nullptr) << nb_last_error();
    EXPECT_EQ(nb_optimizer_set_lr(opt, NAN), NB_ERR_INVALID);
    EXPECT_EQ(nb_optimizer_set_lr(opt, INFINITY), NB_ERR_INVALID);
    EXPECT_EQ(nb_optimizer_set_lr(opt, -1), NB_ERR_INVALID);
    EXPECT_EQ(nb_optimizer_get_lr(opt), 0.1);
    ASSERT_EQ(nb_backward(T(nb_sum(p, 0, nullptr, false)), nullptr, false), NB_OK);
    ASSERT_EQ(nb_optimizer_step(opt), NB_OK);
    EXPECT_EQ(read_tensor(p).v, (std::vector<double>{0.9, 1.9}));
    nb_optimizer_free(opt);
}

// 19. Constructors reject what forward would reject or get wrong.
TEST(Regression, ConstructorsValidateTheirSettings) {
    EXPECT_FAILED(nb_nn_max_pool2d(0, 1, 0), NB_ERR_INVALID, "kernel 0");
    EXPECT_FAILED(nb_nn_max_pool2d(-2, 1, 0), NB_ERR_INVALID, "kernel -2");
    EXPECT_FAILED(nb_nn_max_pool2d(2, -1, 0), NB_ERR_INVALID, "stride -1");
    EXPECT_FAILED(nb_nn_avg_pool2d(3, 1, -1), NB_ERR_INVALID, "padding -1");
    EXPECT_FAILED(nb_nn_avg_pool2d(3, 1, 2), NB_ERR_INVALID, "padding 2");
    EXPECT_FAILED(nb_nn_conv_transpose2d(2, 2, 3, 2, -1, 0, 1, true, NB_F32, nb_cpu(), nullptr),
                  NB_ERR_INVALID, "padding -1");
    EXPECT_FAILED(nb_nn_conv_transpose2d(2, 2, 3, 2, 1, 2, 1, true, NB_F32, nb_cpu(), nullptr),
                  NB_ERR_INVALID, "output_padding 2");
    EXPECT_FAILED(nb_nn_batch_norm2d(3, INFINITY, 0.1, true, NB_F32, nb_cpu()), NB_ERR_INVALID,
                  "nb_nn_batch_norm2d");
    EXPECT_FAILED(nb_nn_batch_norm1d(3, 1e-5, 2, true, NB_F32, nb_cpu()), NB_ERR_INVALID,
                  "nb_nn_batch_norm1d");
    nb_attention_config attention = {};
    attention.dim = 8;
    attention.heads = 2;
    attention.rope = true;
    for (double base : {-1.0, (double)NAN, (double)INFINITY}) {
        attention.rope_base = base;
        EXPECT_FAILED(nb_nn_multihead_attention(&attention, NB_F32, nb_cpu(), nullptr), NB_ERR_INVALID,
                      "rope_base");
    }
    attention.rope_base = 0;
    nb_transformer_config block = {};
    block.attention = attention;
    block.hidden = -1;
    EXPECT_FAILED(nb_nn_transformer_block(&block, NB_F32, nb_cpu(), nullptr), NB_ERR_INVALID, "hidden");
    block.hidden = 0;
    for (double eps : {-1.0, (double)NAN}) {
        block.eps = eps;
        EXPECT_FAILED(nb_nn_transformer_block(&block, NB_F32, nb_cpu(), nullptr), NB_ERR_INVALID, "eps");
    }
    nb_named_tensor named[4];
    EXPECT_EQ(nb_module_parameters(nullptr, named, 4), -1);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

// 20, 24. Smaller defects.
TEST(Regression, SmallerDefects) {
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        T t(f64_tensor({1, 2}));
        EXPECT_EQ(nb_fprint(full, t), NB_ERR_IO) << nb_last_error();
        fclose(full);
    }
    EXPECT_EQ(nb_promote_types((nb_dtype)42, NB_F32), NB_DTYPE_COUNT);
    EXPECT_FALSE(nb_dtype_is_valid(nb_promote_types(NB_F32, (nb_dtype)-1)));
    T x(nb_zeros(4, Shape{1, 2, 5, 5}.data(), NB_F32, nb_cpu()));
    T w(nb_zeros(4, Shape{4, 2, 0, 3}.data(), NB_F32, nb_cpu()));
    EXPECT_FAILED(owned(nb_conv2d(x, w, nullptr, nullptr, nullptr, nullptr, 1)), NB_ERR_SHAPE, "kernel");
    nb_device five = nb_cpu(), minus = nb_cpu();
    five.index = 5;
    minus.index = -1;
    EXPECT_FAILED(owned(nb_zeros(1, Shape{2}.data(), NB_F32, five)), NB_ERR_DEVICE, "cpu:5");
    EXPECT_FAILED(owned(nb_zeros(1, Shape{2}.data(), NB_F32, minus)), NB_ERR_DEVICE, "cpu:-1");
    EXPECT_EQ(nb_device_str(nb_cpu(), nullptr, 16), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
    char name[16];
    EXPECT_STREQ(nb_device_str(nb_cpu(), name, sizeof name), "cpu");
}

// 25. The same child twice in a Sequential.
TEST(Regression, SequentialRejectsARepeatedChild) {
    nb_module *f = nb_nn_flatten();
    nb_module *twice[2] = {f, f};
    EXPECT_FAILED(nb_nn_sequential(2, twice), NB_ERR_INVALID, "children 0 and 1 are the same module");
}

// 26. Messages name the function the user called.
TEST(Regression, MessagesNameTheCalledFunction) {
    T a(f64_tensor({1, 2, 3}));
    T b(f64_tensor({1, 2}));
    EXPECT_FAILED(nb_copy_(a, b) == NB_OK, NB_ERR_SHAPE, "nb_copy_:");
    const nb_tensor *with_null[2] = {a, nullptr}, *pair[2] = {a, a};
    EXPECT_FAILED(owned(nb_stack(2, with_null, 0)), NB_ERR_INVALID, "nb_stack: tensor 1 of 2 is NULL");
    T c(f64_tensor({1, 2, 3}, {1, 3}));
    EXPECT_FAILED(owned(nb_stack(2, pair, 5)), NB_ERR_INDEX, "nb_stack:");
    nb_tensor *out[4];
    int n;
    EXPECT_FAILED(nb_chunk(a, 2, 0, 1, out, &n) == NB_OK, NB_ERR_INVALID, "nb_chunk:");
    T idx(i64_tensor({5}));
    EXPECT_FAILED(owned(nb_embedding(c, idx)), NB_ERR_INDEX, "nb_embedding:");
    EXPECT_FAILED(owned(nb_sinusoidal_positions(INT64_MAX, 4, 10000, NB_F32, nb_cpu())),
                  NB_ERR_OVERFLOW, "nb_sinusoidal_positions: nb_arange:");
    EXPECT_FAILED(owned(nb_adaptive_avg_pool2d(T(nb_zeros(3, Shape{1, 2, 2}.data(), NB_F32, nb_cpu())), 1, 1)),
                  NB_ERR_SHAPE, "nb_adaptive_avg_pool2d:");
    EXPECT_FAILED(owned(nb_reshape(a, 2, nullptr)), NB_ERR_INVALID, "nb_reshape: shape is NULL");
    EXPECT_FAILED(owned(nb_cast(a, (nb_dtype)42)), NB_ERR_DTYPE, "invalid dtype 42");
    EXPECT_FAILED(nb_print(nullptr) == NB_OK, NB_ERR_INVALID, "nb_print:");
}

// 27. Unambiguous forms of nb_batches_next and nb_from_host.
TEST(Regression, EndOfEpochAndShortBuffersAreUnambiguous) {
    T images(f64_tensor({1, 2, 3, 4, 5}, {5, 1}));
    T labels(i64_tensor({0, 1, 2, 3, 4}));
    nb_batches *b = nb_batches_create(images, labels, 2, false, false, nullptr);
    ASSERT_NE(b, nullptr);
    int batches = 0;
    nb_tensor *x = nullptr, *y = nullptr;
    nb_status status;
    while ((status = nb_batches_take(b, &x, &y)) == NB_OK && x) {
        batches++;
        nb_release(x);
        nb_release(y);
    }
    EXPECT_EQ(status, NB_OK);
    EXPECT_EQ(batches, 3);
    EXPECT_EQ(nb_batches_take(b, nullptr, &y), NB_ERR_INVALID);
    nb_batches_free(b);
    double three[3] = {1, 2, 3};
    EXPECT_FAILED(owned(nb_from_buffer(three, sizeof three, 1, Shape{4}.data(), NB_F64, nb_cpu())),
                  NB_ERR_INVALID, "needs 32 bytes, the buffer has 24");
    T fits(nb_from_buffer(three, sizeof three, 1, Shape{3}.data(), NB_F64, nb_cpu()));
    ASSERT_NE(fits.t, nullptr) << nb_last_error();
    EXPECT_EQ(read_tensor(fits).v, (std::vector<double>{1, 2, 3}));
}

// NaN and signed-zero rules (docs/ops.md, "NaN and signed zeros").
TEST(Regression, NanAndSignedZeroRules) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (nb_dtype dtype : {NB_F32, NB_F64}) {
        T x(nb_cast(T(f64_tensor({nan, -0.0, 0.0, -INFINITY})), dtype));
        Host sign = read_tensor(T(nb_sign(x)));
        EXPECT_TRUE(std::isnan(sign.v[0])); // numpy's rule; PyTorch 1.13 gives 0
        Host hs = read_tensor(T(nb_hardswish(x)));
        EXPECT_EQ(hs.v[3], 0.0) << "hardswish(-inf) is its limit, 0";
        T neg0(nb_cast(T(f64_tensor({-0.0, 0.0})), dtype)), pos0(nb_cast(T(f64_tensor({0.0, -0.0})), dtype));
        Host lo = read_tensor(T(nb_minimum(neg0, pos0))), hi = read_tensor(T(nb_maximum(neg0, pos0)));
        for (int i = 0; i < 2; i++) {
            EXPECT_TRUE(std::signbit(lo.v[i])) << "minimum(-0, +0) is -0 in either order";
            EXPECT_FALSE(std::signbit(hi.v[i])) << "maximum(-0, +0) is +0 in either order";
        }
    }
    // gradients at NaN
    EXPECT_TRUE(std::isnan(grad_of([](nb_tensor *x) { return nb_abs(x); }, {nan}).v[0]));
    EXPECT_EQ(grad_of([](nb_tensor *x) { return nb_relu(x); }, {nan}).v[0], 1.0);
    EXPECT_EQ(grad_of([](nb_tensor *x) { return nb_relu6(x); }, {nan}).v[0], 1.0);
    EXPECT_EQ(grad_of([](nb_tensor *x) { return nb_hardsigmoid(x); }, {nan}).v[0], 0.0);
    EXPECT_EQ(grad_of([](nb_tensor *x) { return nb_hardswish(x); }, {-INFINITY}).v[0], 0.0);
    // maximum / minimum: the NaN side takes the whole gradient
    for (bool is_max : {true, false}) {
        auto op = is_max ? nb_maximum : nb_minimum;
        T other(f64_tensor({1, nan}));
        Host ga = grad_of([&](nb_tensor *a) { return op(a, other); }, {nan, 2});
        EXPECT_EQ(ga.v[0], 1.0);
        EXPECT_EQ(ga.v[1], 0.0);
        T first(f64_tensor({nan, 2}));
        Host gb = grad_of([&](nb_tensor *b) { return op(first, b); }, {1, nan});
        EXPECT_EQ(gb.v[0], 0.0);
        EXPECT_EQ(gb.v[1], 1.0);
    }
    // rsqrt's gradient -y^3 / 2: +inf at -0, -inf at +0
    Host gr = grad_of([](nb_tensor *x) { return nb_rsqrt(x); }, {-0.0, 0.0, 4.0});
    EXPECT_EQ(gr.v[0], INFINITY);
    EXPECT_EQ(gr.v[1], -INFINITY);
    EXPECT_DOUBLE_EQ(gr.v[2], -0.5 / 8);
}

// f16 and bf16 gradients of embedding and index_select add in f32 and round
// once: a row picked 1,000 times gets 1000, not bf16's 256 (256 + 1 rounds to
// 256). On every device present.
TEST(Regression, HalfPrecisionEmbeddingGradientsSumInFloat) {
    std::vector<nb_device> devices = {nb_cpu()};
    for (int i = 0; i < nb_cuda_device_count(); i++) devices.push_back(nb_cuda(i));
    for (nb_device device : devices)
        for (nb_dtype dtype : {NB_BF16, NB_F16}) {
            T host_weight(nb_zeros(2, Shape{4, 2}.data(), dtype, nb_cpu()));
            T weight(nb_to(host_weight, device));
            T leaf(nb_detach(weight));
            ASSERT_EQ(nb_set_requires_grad(leaf, true), NB_OK);
            T host_idx(nb_full(1, Shape{1000}.data(), 1, NB_I64, nb_cpu()));
            T idx(nb_to(host_idx, device));
            T rows(nb_embedding(leaf, idx));
            ASSERT_NE(rows.t, nullptr) << nb_last_error();
            ASSERT_EQ(nb_backward(T(nb_sum(rows, 0, nullptr, false)), nullptr, false), NB_OK) << nb_last_error();
            Host g = read_tensor(T(nb_to(T(nb_grad(leaf)), nb_cpu())));
            EXPECT_EQ(g.v[2], 1000.0) << nb_dtype_name(dtype) << (device.type == NB_DEVICE_CUDA ? " cuda" : " cpu");
            EXPECT_EQ(g.v[0], 0.0);
        }
}

// softmax and log_softmax of rows holding +inf, -inf and NaN follow the
// CPU's (and PyTorch's) rule: shift by the maximum (NaN skipped; 0 for an
// all -inf row), sum exp of the shifted values (exp(inf - inf) is NaN), so a
// +inf or a NaN makes the whole row NaN. The CUDA kernel's running sum
// skipped the +inf and gave [0, ..., NaN, ..., 0]. Row widths cover each
// GPU path: held in registers by part of a warp, a warp and a block, in
// shared memory, and streamed (beyond 12,288 f32 values). On every device.
TEST(Regression, SoftmaxRowsWithInfinitiesAndNaN) {
    std::vector<nb_device> devices = {nb_cpu()};
    for (int i = 0; i < nb_cuda_device_count(); i++) devices.push_back(nb_cuda(i));
    const double inf = INFINITY, nan = NAN;
    for (int64_t width : {1, 5, 64, 1000, 4099, 20000, 40000}) {
        // rows: finite, one +inf, one NaN, all -inf, one -inf
        std::vector<double> x(5 * width);
        for (int64_t i = 0; i < (int64_t)x.size(); i++) x[i] = std::sin(0.37 * (double)i) * 3;
        int64_t at = width / 2;
        x[1 * width + at] = inf;
        x[2 * width + at] = nan;
        std::fill(x.begin() + 3 * width, x.begin() + 4 * width, -inf);
        x[4 * width + at] = -inf;
        for (bool log_space : {false, true}) {
            std::vector<double> want(x.size());
            for (int64_t r = 0; r < 5; r++) {
                const double *row = &x[r * width];
                double max = -inf, sum = 0;
                for (int64_t k = 0; k < width; k++) max = row[k] > max ? row[k] : max;
                if (max == -inf) max = 0;
                for (int64_t k = 0; k < width; k++) sum += std::exp(row[k] - max);
                for (int64_t k = 0; k < width; k++)
                    want[r * width + k] = log_space ? row[k] - max - std::log(sum) : std::exp(row[k] - max) / sum;
            }
            for (nb_device device : devices)
                for (nb_dtype dtype : {NB_F32, NB_F64, NB_BF16}) {
                    T host(f64_tensor(x, {5, width}));
                    T on(nb_to(T(nb_cast(host, dtype)), device));
                    T y(log_space ? nb_log_softmax(on, -1) : nb_softmax(on, -1));
                    ASSERT_NE(y.t, nullptr) << nb_last_error();
                    Host got = read_tensor(T(nb_to(T(nb_cast(y, NB_F64)), nb_cpu())));
                    double tol = dtype == NB_BF16 ? 2e-2 : dtype == NB_F32 ? 1e-5 : 1e-12;
                    int wrong = 0;
                    for (int64_t i = 0; i < (int64_t)x.size(); i++) {
                        double g = got.v[i], w = want[i];
                        bool same = std::isnan(w) ? std::isnan(g)
                                                  : g == w || std::fabs(g - w) <= tol * (1 + std::fabs(w));
                        if (!same && wrong++ < 3)
                            ADD_FAILURE() << (log_space ? "log_softmax " : "softmax ") << nb_dtype_name(dtype)
                                          << (device.type == NB_DEVICE_CUDA ? " cuda" : " cpu") << " width "
                                          << width << " row " << i / width << " col " << i % width << ": got "
                                          << g << ", want " << w;
                    }
                }
        }
    }
}

// A fill rounds its value to the dtype exactly as a cast of the f64 value
// on the CPU does, on every device (the GPU now rounds it once on the host
// and writes it 16 bytes at a time), and each GPU's dense casts give the
// CPU's bits.
TEST(Regression, FillsAndCastsRoundAsTheCpu) {
    std::vector<nb_device> devices = {nb_cpu()};
    for (int i = 0; i < nb_cuda_device_count(); i++) devices.push_back(nb_cuda(i));
    const double values[] = {0.1, 1 + 0x1p-11 + 0x1p-40, 1 + 0x1p-8 + 0x1p-40, 1e10, -1e10, NAN, -0.0,
                             0x1p31, 300, -1, 65520, 3.5};
    const nb_dtype dtypes[] = {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64, NB_U8, NB_BOOL};
    auto bytes = [](const nb_tensor *t) {
        std::vector<unsigned char> out((size_t)nb_numel(t) * nb_dtype_size(nb_dtype_of(t)));
        T host(nb_to(t, nb_cpu()));
        EXPECT_EQ(nb_to_host(host, out.data(), out.size()), NB_OK) << nb_last_error();
        return out;
    };
    std::vector<double> many;
    for (int i = 0; i < 1003; i++) many.push_back(values[i % 12] * (1 + (i % 5) * 0x1p-30));
    T source(f64_tensor(many));
    for (nb_dtype dtype : dtypes) {
        for (double v : values) {
            T one(f64_tensor({v}));
            T want(nb_cast(one, dtype));
            for (nb_device device : devices) {
                T filled(nb_full(1, Shape{41}.data(), v, dtype, device));
                if (!filled.t) { // a value the dtype cannot hold: an error on every device
                    EXPECT_NE(strstr(nb_last_error(), "does not fit"), nullptr) << nb_last_error();
                    continue;
                }
                std::vector<unsigned char> got = bytes(filled), expected = bytes(want);
                for (int i = 0; i < 41; i++)
                    EXPECT_EQ(0, memcmp(&got[i * expected.size()], expected.data(), expected.size()))
                        << "nb_full(" << v << ") " << nb_dtype_name(dtype) << " element " << i
                        << (device.type == NB_DEVICE_CUDA ? " cuda" : " cpu");
            }
        }
        for (nb_dtype from : dtypes) {
            T typed(nb_cast(source, from));
            T want(nb_cast(typed, dtype));
            for (nb_device device : devices) {
                if (device.type == NB_DEVICE_CPU) continue; // the CPU's cast is the reference
                T there(nb_to(typed, device));
                T got(nb_cast(there, dtype));
                ASSERT_NE(got.t, nullptr) << nb_last_error();
                EXPECT_EQ(bytes(got), bytes(want)) << "cast " << nb_dtype_name(from) << " -> " << nb_dtype_name(dtype)
                                                   << (device.type == NB_DEVICE_CUDA ? " cuda" : " cpu");
            }
        }
    }
}

} // namespace
