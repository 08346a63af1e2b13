// The autograd tape: accumulation, retain_graph, no-grad mode, detach,
// broadcasting, and a two-layer network against gradients derived by hand.
#include "harness.h"

namespace {

T leaf(const Host &h, nb_dtype dtype = NB_F64) {
    T t(make_tensor(h, dtype));
    EXPECT_EQ(nb_set_requires_grad(t, true), NB_OK);
    return t;
}

Host grad_of(const nb_tensor *t) {
    T g(nb_grad(t));
    EXPECT_NE(g.t, nullptr) << "no gradient";
    return g.t ? read_tensor(g) : Host();
}

TEST(Autograd, SharedInputsSumTheirPaths) {
    T x = leaf(Host({3}, {1, -2, 0.5}));
    T y(nb_add(T(nb_mul(x, x)), x)); // dy/dx = 2x + 1
    ASSERT_EQ(nb_backward(y, T(nb_ones(1, Shape{3}.data(), NB_F64, nb_cpu())), false), NB_OK);
    EXPECT_EQ(grad_of(x).v, (std::vector<double>{3, -3, 2}));
    EXPECT_FALSE(nb_is_leaf(y));
    EXPECT_STREQ(nb_grad_fn_name(y), "add");
}

// A leaf's gradient-ready hook fires once per backward, when its gradient
// is complete: a leaf read by the first op (run last in backward) after one
// read only near the loss, each seeing its final gradient; a leaf whose
// path passes no gradient still fires; one outside the graph does not.
struct Fired {
    std::vector<std::string> order;
    std::vector<double> seen;
};

void record_hook(nb_tensor *leaf, void *user) {
    Fired *fired = (Fired *)user;
    T g(nb_grad(leaf));
    fired->order.push_back(g.t ? "grad" : "none");
    fired->seen.push_back(g.t ? read_tensor(g).v[0] : NAN);
}

TEST(Autograd, GradReadyHooksFireWhenTheGradientIsComplete) {
    T a = leaf(Host({1}, {2})), b = leaf(Host({1}, {3})), c = leaf(Host({1}, {5})), unused = leaf(Host({1}, {7}));
    Fired fa, fb, fc, fu;
    ASSERT_EQ(nb_set_grad_ready_hook(a, record_hook, &fa), NB_OK);
    ASSERT_EQ(nb_set_grad_ready_hook(b, record_hook, &fb), NB_OK);
    ASSERT_EQ(nb_set_grad_ready_hook(c, record_hook, &fc), NB_OK);
    ASSERT_EQ(nb_set_grad_ready_hook(unused, record_hook, &fu), NB_OK);
    // loss = (a a) b + a + 0 * floor(c): a is read three times, c's path passes zeros
    T aa(nb_mul(a, a)), ab(nb_mul(aa, b)), fc_(nb_floor(c)), zero(nb_mul(fc_, T(nb_zeros(1, Shape{1}.data(), NB_F64, nb_cpu()))));
    T loss(nb_add(T(nb_add(ab, a)), zero));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
    ASSERT_EQ(fa.seen.size(), 1u);
    EXPECT_EQ(fa.seen[0], 2 * 2 * 3 + 1); // d/da = 2ab + 1, complete when fired
    ASSERT_EQ(fb.seen.size(), 1u);
    EXPECT_EQ(fb.seen[0], 4);
    ASSERT_EQ(fc.order.size(), 1u); // floor passes a zero gradient: c is done all the same
    EXPECT_TRUE(fu.order.empty());
    // removed, it no longer fires; a non-leaf cannot take one
    ASSERT_EQ(nb_set_grad_ready_hook(a, nullptr, nullptr), NB_OK);
    T again(nb_mul(a, b));
    ASSERT_EQ(nb_backward(again, nullptr, false), NB_OK);
    EXPECT_EQ(fa.seen.size(), 1u);
    EXPECT_EQ(fb.seen.size(), 2u);
    EXPECT_EQ(nb_set_grad_ready_hook(again, record_hook, &fa), NB_ERR_AUTOGRAD);
    EXPECT_EQ(nb_set_grad_ready_hook(nullptr, record_hook, &fa), NB_ERR_INVALID);
    // a leaf root fires too
    ASSERT_EQ(nb_backward(b, nullptr, false), NB_OK);
    EXPECT_EQ(fb.seen.size(), 3u);
}

TEST(Autograd, GradientsAccumulateUntilZeroed) {
    T x = leaf(Host({2}, {1, 2}));
    for (int i = 0; i < 2; i++) {
        T loss(nb_sum(T(nb_mul(x, x)), 0, nullptr, false));
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    }
    EXPECT_EQ(grad_of(x).v, (std::vector<double>{4, 8}));
    nb_zero_grad(x);
    EXPECT_EQ(nb_grad(x), nullptr);
}

// nb_set_grad is PyTorch's `x.grad = g`: the tensor is held, not copied, and
// backward accumulates into it.
TEST(Autograd, SetGradHoldsTheTensorAndBackwardAddsToIt) {
    T x = leaf(Host({2}, {1, 2}));
    T g(make_tensor(Host({2}, {10, 20}), NB_F64));
    ASSERT_EQ(nb_set_grad(x, g), NB_OK) << nb_last_error();
    T held(nb_grad(x));
    EXPECT_EQ(nb_data(held), nb_data(g));
    T loss(nb_sum(T(nb_mul(x, x)), 0, nullptr, false));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    EXPECT_EQ(grad_of(x).v, (std::vector<double>{12, 24}));
    ASSERT_EQ(nb_set_grad(x, nullptr), NB_OK);
    EXPECT_EQ(nb_grad(x), nullptr);
    // a mismatch is an error and leaves the gradient as it was
    ASSERT_EQ(nb_set_grad(x, g), NB_OK);
    T wrong(make_tensor(Host({3}, {1, 2, 3}), NB_F64));
    EXPECT_EQ(nb_set_grad(x, wrong), NB_ERR_SHAPE);
    EXPECT_NE(std::string(nb_last_error()).find("[3]"), std::string::npos) << nb_last_error();
    T f32(make_tensor(Host({2}, {1, 2}), NB_F32));
    EXPECT_EQ(nb_set_grad(x, f32), NB_ERR_DTYPE);
    T y(nb_mul(x, x));
    EXPECT_EQ(nb_set_grad(y, g), NB_ERR_AUTOGRAD);
    T still(nb_grad(x));
    EXPECT_EQ(nb_data(still), nb_data(g));
}

TEST(Autograd, RetainGraphAllowsASecondBackward) {
    T x = leaf(Host({2}, {1, 3}));
    T loss(nb_sum(T(nb_exp(x)), 0, nullptr, false));
    ASSERT_EQ(nb_backward(loss, nullptr, true), NB_OK);
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    Host g = grad_of(x);
    EXPECT_NEAR(g.v[0], 2 * std::exp(1.0), 1e-12);
    EXPECT_NEAR(g.v[1], 2 * std::exp(3.0), 1e-12);
    EXPECT_EQ(nb_backward(loss, nullptr, false), NB_ERR_AUTOGRAD);
    EXPECT_NE(std::string(nb_last_error()).find("retain_graph"), std::string::npos) << nb_last_error();
}

TEST(Autograd, BroadcastGradientsReduceToInputShapes) {
    T a = leaf(Host({3, 1}, {1, 2, 3}));
    T b = leaf(Host({4}, {1, 10, 100, 1000}));
    T c(nb_mul(a, b)); // [3, 4]
    ASSERT_EQ(nb_backward(T(nb_sum(c, 0, nullptr, false)), nullptr, false), NB_OK);
    EXPECT_EQ(grad_of(a).shape, (Shape{3, 1}));
    EXPECT_EQ(grad_of(a).v, (std::vector<double>{1111, 1111, 1111}));
    EXPECT_EQ(grad_of(b).v, (std::vector<double>{6, 6, 6, 6}));
}

TEST(Autograd, NoGradModeAndDetachRecordNothing) {
    T x = leaf(Host({2}, {1, 2}));
    bool was = nb_set_grad_enabled(false);
    EXPECT_TRUE(was);
    T y(nb_mul(x, x));
    EXPECT_FALSE(nb_requires_grad(y));
    EXPECT_FALSE(nb_set_grad_enabled(was));
    EXPECT_TRUE(nb_is_grad_enabled());
    T d(nb_detach(x));
    EXPECT_FALSE(nb_requires_grad(d));
    EXPECT_EQ(nb_data(d), nb_data(x));
    T z(nb_add(T(nb_mul(d, x)), x)); // only the second factor and the addend carry gradient
    ASSERT_EQ(nb_backward(T(nb_sum(z, 0, nullptr, false)), nullptr, false), NB_OK);
    EXPECT_EQ(grad_of(x).v, (std::vector<double>{2, 3}));
}

TEST(Autograd, ExplicitGradAndFloat32Leaves) {
    T x = leaf(Host({2, 2}, {1, 2, 3, 4}), NB_F32);
    T y(nb_mul(x, T(nb_scalar(3, NB_F32, nb_cpu()))));
    T seed(make_tensor(Host({2, 2}, {1, 0, -1, 2}), NB_F32));
    ASSERT_EQ(nb_backward(y, seed, false), NB_OK);
    T g(nb_grad(x));
    EXPECT_EQ(nb_dtype_of(g), NB_F32);
    EXPECT_EQ(read_tensor(g).v, (std::vector<double>{3, 0, -3, 6}));
}

TEST(Autograd, InternalOperandsStayOutOfTheGraph) {
    T x = leaf(Host({2, 3}, {1, 2, 3, 4, 5, 6}));
    T v = leaf(Host({3}, {1, 0, -1}));
    T y(nb_matmul(x, v)); // a 1-D operand is unsqueezed inside matmul
    EXPECT_STREQ(nb_grad_fn_name(y), "matmul");
    T xt(nb_transpose(x, 0, 1));
    T s(nb_softmax(xt, 0)); // a strided input is made contiguous inside softmax
    EXPECT_STREQ(nb_grad_fn_name(s), "softmax");
    ASSERT_EQ(nb_backward(T(nb_sum(y, 0, nullptr, false)), nullptr, false), NB_OK);
    EXPECT_EQ(grad_of(v).v, (std::vector<double>{5, 7, 9}));
    EXPECT_EQ(grad_of(x).v, (std::vector<double>{1, 0, -1, 1, 0, -1}));
}

// A leaf's first gradient is taken over without a copy only when nothing else
// holds it; a gradient passed through (add) or given by the caller is copied.
TEST(Autograd, LeafGradientsNeverAliasOtherTensors) {
    T x = leaf(Host({3}, {1, 2, 3})), z = leaf(Host({3}, {4, 5, 6}));
    T seed(make_tensor(Host({3}, {1, 2, 3}), NB_F64));
    ASSERT_EQ(nb_backward(T(nb_add(x, z)), seed, false), NB_OK);
    T gx(nb_grad(x)), gz(nb_grad(z));
    EXPECT_NE(nb_data(gx), nb_data(seed));
    EXPECT_NE(nb_data(gx), nb_data(gz));
    ASSERT_EQ(nb_copy_(seed, T(nb_scalar(0, NB_F64, nb_cpu()))), NB_OK);
    EXPECT_EQ(read_tensor(gx).v, (std::vector<double>{1, 2, 3}));
    EXPECT_EQ(read_tensor(gz).v, (std::vector<double>{1, 2, 3}));
    T w = leaf(Host({2}, {2, 3}));
    ASSERT_EQ(nb_backward(T(nb_sum(T(nb_mul(w, w)), 0, nullptr, false)), nullptr, false), NB_OK);
    EXPECT_EQ(grad_of(w).v, (std::vector<double>{4, 6}));
}

TEST(Autograd, BackwardOnALeafAccumulatesTheSeed) {
    T x = leaf(Host({1}, {5}));
    ASSERT_EQ(nb_backward(x, nullptr, false), NB_OK);
    EXPECT_EQ(grad_of(x).v, (std::vector<double>{1}));
}

TEST(Autograd, DeepChainsNeitherOverflowNorLeak) {
    T x = leaf(Host({1}, {0.5}));
    T y(nb_retain(x));
    T k(nb_scalar(1.0001, NB_F64, nb_cpu()));
    for (int i = 0; i < 5000; i++) y = T(nb_mul(y, k));
    ASSERT_EQ(nb_backward(y, nullptr, false), NB_OK);
    EXPECT_NEAR(grad_of(x).v[0], std::pow(1.0001, 5000), 1e-9);
}

// loss = sum(tanh(x W1 + b1) W2): gradients derived by hand, in double loops.
TEST(Autograd, TwoLayerNetworkMatchesHandDerivedGradients) {
    const int n = 3, d = 4, h = 5;
    std::mt19937_64 rng(7);
    auto rnd = [&](Shape s) {
        Host out(s);
        for (double &v : out.v) v = std::uniform_real_distribution<double>(-1, 1)(rng);
        return out;
    };
    Host xv = rnd({n, d}), w1v = rnd({d, h}), b1v = rnd({h}), w2v = rnd({h, 1});
    T x(make_tensor(xv, NB_F64));
    T w1 = leaf(w1v), b1 = leaf(b1v), w2 = leaf(w2v);
    T hidden(nb_tanh(T(nb_add(T(nb_matmul(x, w1)), b1))));
    T loss(nb_sum(T(nb_matmul(hidden, w2)), 0, nullptr, false));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    Host gw1({d, h}), gb1({h}), gw2({h, 1});
    for (int i = 0; i < n; i++)
        for (int j = 0; j < h; j++) {
            double pre = b1v.v[j];
            for (int k = 0; k < d; k++) pre += xv.v[i * d + k] * w1v.v[k * h + j];
            double t = std::tanh(pre), dpre = w2v.v[j] * (1 - t * t);
            gw2.v[j] += t;
            gb1.v[j] += dpre;
            for (int k = 0; k < d; k++) gw1.v[k * h + j] += xv.v[i * d + k] * dpre;
        }
    expect_close(grad_of(w1), gw1, NB_F64, 1, "w1");
    expect_close(grad_of(b1), gb1, NB_F64, 1, "b1");
    expect_close(grad_of(w2), gw2, NB_F64, 1, "w2");
}

} // namespace
