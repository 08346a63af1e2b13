// Layers, initializers, optimizers and schedules against formulas computed
// here, and a short training run whose loss must fall.
#include "harness.h"

namespace {

std::vector<std::string> names_of(const nb_module *m, bool params) {
    nb_named_tensor named[64];
    int n = params ? nb_module_parameters(m, named, 64) : nb_module_buffers(m, named, 64);
    std::vector<std::string> out;
    for (int i = 0; i < n && i < 64; i++) out.push_back(named[i].name);
    return out;
}

struct Module {
    nb_module *m;
    explicit Module(nb_module *p) : m(p) {}
    ~Module() { nb_module_free(m); }
    operator nb_module *() const { return m; }
};

// Every activation kind runs the op it names with PyTorch's defaults.
TEST(Modules, EveryActivationKindRunsItsOp) {
    Host x({2, 4}, {-2.5, -0.7, -0.2, 0, 0.3, 0.6, 1.4, 22});
    T input(make_tensor(x, NB_F64));
    using Op = std::function<nb_tensor *(const nb_tensor *)>;
    const std::vector<std::pair<nb_activation, Op>> kinds = {
        {NB_ACT_RELU, nb_relu}, {NB_ACT_RELU6, nb_relu6},
        {NB_ACT_LEAKY_RELU, [](const nb_tensor *t) { return nb_leaky_relu(t, 0.01); }},
        {NB_ACT_SILU, nb_silu}, {NB_ACT_HARDSIGMOID, nb_hardsigmoid}, {NB_ACT_HARDSWISH, nb_hardswish},
        {NB_ACT_GELU, [](const nb_tensor *t) { return nb_gelu(t, false); }},
        {NB_ACT_GELU_TANH, [](const nb_tensor *t) { return nb_gelu(t, true); }},
        {NB_ACT_SWIGLU, nb_swiglu}, {NB_ACT_SIGMOID, nb_sigmoid}, {NB_ACT_TANH, nb_tanh},
        {NB_ACT_ELU, [](const nb_tensor *t) { return nb_elu(t, 1); }}, {NB_ACT_SELU, nb_selu},
        {NB_ACT_CELU, [](const nb_tensor *t) { return nb_celu(t, 1); }},
        {NB_ACT_SOFTPLUS, [](const nb_tensor *t) { return nb_softplus(t, 1, 20); }}, {NB_ACT_MISH, nb_mish},
        {NB_ACT_SOFTSIGN, nb_softsign}, {NB_ACT_LOGSIGMOID, nb_logsigmoid},
        {NB_ACT_HARDTANH, [](const nb_tensor *t) { return nb_hardtanh(t, -1, 1); }},
        {NB_ACT_TANHSHRINK, nb_tanhshrink},
        {NB_ACT_HARDSHRINK, [](const nb_tensor *t) { return nb_hardshrink(t, 0.5); }},
        {NB_ACT_SOFTSHRINK, [](const nb_tensor *t) { return nb_softshrink(t, 0.5); }},
        {NB_ACT_RRELU, [](const nb_tensor *t) { return nb_rrelu(t, 1.0 / 8, 1.0 / 3, false, nullptr); }},
        {NB_ACT_GLU, [](const nb_tensor *t) { return nb_glu(t, -1); }},
    };
    ASSERT_EQ(kinds.size(), (size_t)NB_ACTIVATION_COUNT);
    for (const auto &[kind, op] : kinds) {
        Module m(nb_nn_activation(kind));
        ASSERT_NE(m.m, nullptr) << nb_last_error();
        if (kind == NB_ACT_RRELU) nb_module_train(m, false);
        T got(nb_module_forward(m, input)), want(op(input));
        ASSERT_NE(got.t, nullptr) << nb_module_type(m) << ": " << nb_last_error();
        expect_close(read_tensor(got), read_tensor(want), NB_F64, 1, nb_module_type(m));
    }
}

TEST(Modules, PReLULearnsOneSlopePerChannel) {
    Module m(nb_nn_prelu(3, 0.25, NB_F64, nb_cpu()));
    ASSERT_NE(m.m, nullptr) << nb_last_error();
    EXPECT_EQ(names_of(m, true), (std::vector<std::string>{"weight"}));
    Host x({2, 3, 2}, {-1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11, 12});
    T input(make_tensor(x, NB_F64));
    T y(nb_module_forward(m, input));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    T total(nb_sum(y, 0, nullptr, false));
    ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
    nb_named_tensor p[1];
    nb_module_parameters(m, p, 1);
    T g(nb_grad(p[0].tensor));
    // d/dw_c of the sum: the negative inputs of channel c
    expect_close(read_tensor(g), Host({3}, {-1 - 7, -3 - 9, -5 - 11}), NB_F64, 1, "prelu weight grad");
    expect_close(read_tensor(y), Host({2, 3, 2}, {-0.25, 2, -0.75, 4, -1.25, 6, -1.75, 8, -2.25, 10, -2.75, 12}),
                 NB_F64, 1, "prelu");
}

TEST(Modules, SequentialNamesItsParametersByPath) {
    nb_generator *gen = nb_generator_create(1);
    nb_module *layers[3] = {nb_nn_linear(4, 8, true, NB_F32, nb_cpu(), gen),
                            nb_nn_activation(NB_ACT_RELU),
                            nb_nn_linear(8, 2, false, NB_F32, nb_cpu(), gen)};
    Module net(nb_nn_sequential(3, layers));
    nb_generator_free(gen);
    ASSERT_NE(net.m, nullptr) << nb_last_error();
    EXPECT_EQ(names_of(net, true), (std::vector<std::string>{"0.weight", "0.bias", "2.weight"}));
    EXPECT_STREQ(nb_module_type(net), "Sequential");
    Host x({3, 4});
    for (int64_t i = 0; i < x.numel(); i++) x.v[i] = std::sin((double)i);
    T input(make_tensor(x, NB_F32));
    T y(nb_module_forward(net, input));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    // relu(x W0^T + b0) W2^T in float64 from the module's parameter values
    nb_named_tensor p[3];
    nb_module_parameters(net, p, 3);
    Host w0 = read_tensor(p[0].tensor), b0 = read_tensor(p[1].tensor), w2 = read_tensor(p[2].tensor);
    Host expected({3, 2});
    for (int64_t r = 0; r < 3; r++) {
        double hidden[8];
        for (int64_t j = 0; j < 8; j++) {
            double sum = b0.v[j];
            for (int64_t k = 0; k < 4; k++) sum += x.v[r * 4 + k] * w0.v[j * 4 + k];
            hidden[j] = sum > 0 ? sum : 0;
        }
        for (int64_t o = 0; o < 2; o++) {
            double sum = 0;
            for (int64_t j = 0; j < 8; j++) sum += hidden[j] * w2.v[o * 8 + j];
            expected.v[r * 2 + o] = sum;
        }
    }
    expect_close(read_tensor(y), expected, NB_F32, 1, "sequential");
    for (int i = 0; i < 3; i++) EXPECT_TRUE(nb_requires_grad(p[i].tensor));
}

TEST(Modules, DepthwiseSeparableBlockIsMobileNets) {
    Module block(nb_nn_depthwise_separable_conv2d(4, 6, 3, 2, NB_ACT_RELU6, NB_F32, nb_cpu(), nullptr));
    ASSERT_NE(block.m, nullptr) << nb_last_error();
    EXPECT_EQ(names_of(block, true),
              (std::vector<std::string>{"depthwise.weight", "bn1.weight", "bn1.bias", "pointwise.weight",
                                        "bn2.weight", "bn2.bias"}));
    EXPECT_EQ(names_of(block, false),
              (std::vector<std::string>{"bn1.running_mean", "bn1.running_var", "bn2.running_mean",
                                        "bn2.running_var"}));
    nb_named_tensor p[6];
    nb_module_parameters(block, p, 6);
    EXPECT_EQ(shape_str(Shape(nb_shape(p[0].tensor), nb_shape(p[0].tensor) + 4)), "[4,1,3,3]");
    EXPECT_EQ(shape_str(Shape(nb_shape(p[3].tensor), nb_shape(p[3].tensor) + 4)), "[6,4,1,1]");
    int64_t shape[4] = {2, 4, 9, 9};
    T x(nb_normal(4, shape, 0, 1, NB_F32, nb_cpu(), nullptr));
    T y(nb_module_forward(block, x));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    EXPECT_EQ(shape_str(Shape(nb_shape(y), nb_shape(y) + 4)), "[2,6,5,5]");
    Host v = read_tensor(y);
    for (double a : v.v) EXPECT_TRUE(a >= 0 && a <= 6); // ReLU6 at the end
}

TEST(Modules, BatchNormTracksRunningStatisticsAndUsesThemInEval) {
    Module bn(nb_nn_batch_norm2d(2, 1e-5, 0.1, true, NB_F32, nb_cpu()));
    Host x({3, 2, 2, 2});
    for (int64_t i = 0; i < x.numel(); i++) x.v[i] = std::cos(0.7 * (double)i) * 2 + (x.unravel(i)[1] ? 3 : -1);
    T input(make_tensor(x, NB_F64));
    T input32(nb_cast(input, NB_F32));
    T y(nb_module_forward(bn, input32));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    double mean[2] = {0, 0}, var[2] = {0, 0};
    for (int64_t i = 0; i < x.numel(); i++) mean[x.unravel(i)[1]] += x.v[i] / 12;
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t c = x.unravel(i)[1];
        var[c] += (x.v[i] - mean[c]) * (x.v[i] - mean[c]);
    }
    nb_named_tensor buffers[2];
    ASSERT_EQ(nb_module_buffers(bn, buffers, 2), 2);
    Host rm = read_tensor(buffers[0].tensor), rv = read_tensor(buffers[1].tensor);
    for (int c = 0; c < 2; c++) {
        EXPECT_NEAR(rm.v[c], 0.1 * mean[c], 1e-5);
        EXPECT_NEAR(rv.v[c], 0.9 + 0.1 * var[c] / 11, 1e-5); // unbiased
    }
    nb_module_train(bn, false);
    EXPECT_FALSE(nb_module_is_training(bn));
    T z(nb_module_forward(bn, input32));
    Host out = read_tensor(z);
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t c = x.unravel(i)[1];
        EXPECT_NEAR(out.v[i], (x.v[i] - rm.v[c]) / std::sqrt(rv.v[c] + 1e-5), 1e-4);
    }
}

TEST(Modules, LayerNormAndRmsNormNormalizeTheLastDim) {
    Module ln(nb_nn_layer_norm(6, 1e-5, true, NB_F32, nb_cpu()));
    Module rms(nb_nn_rms_norm(6, 1e-6, true, NB_F32, nb_cpu()));
    ASSERT_NE(ln.m, nullptr) << nb_last_error();
    ASSERT_NE(rms.m, nullptr) << nb_last_error();
    EXPECT_EQ(names_of(ln, true), (std::vector<std::string>{"weight", "bias"}));
    EXPECT_EQ(names_of(rms, true), (std::vector<std::string>{"weight"}));
    Host x({2, 3, 6});
    for (int64_t i = 0; i < x.numel(); i++) x.v[i] = std::sin(0.7 * (double)i) + 0.1 * (double)i;
    T input(make_tensor(x, NB_F32));
    T a(nb_module_forward(ln, input)), b(nb_module_forward(rms, input));
    ASSERT_TRUE(a.t && b.t) << nb_last_error();
    Host want_ln(x.shape), want_rms(x.shape); // fresh layers: weight 1, bias 0
    for (int64_t r = 0; r < 6; r++) {
        double mean = 0, var = 0, square = 0;
        for (int k = 0; k < 6; k++) mean += x.v[r * 6 + k] / 6;
        for (int k = 0; k < 6; k++) {
            var += (x.v[r * 6 + k] - mean) * (x.v[r * 6 + k] - mean) / 6;
            square += x.v[r * 6 + k] * x.v[r * 6 + k] / 6;
        }
        for (int k = 0; k < 6; k++) {
            want_ln.v[r * 6 + k] = (x.v[r * 6 + k] - mean) / std::sqrt(var + 1e-5);
            want_rms.v[r * 6 + k] = x.v[r * 6 + k] / std::sqrt(square + 1e-6);
        }
    }
    expect_close(read_tensor(a), want_ln, NB_F32, 1, "layer_norm");
    expect_close(read_tensor(b), want_rms, NB_F32, 1, "rms_norm");
    EXPECT_EQ(nb_nn_layer_norm(0, 1e-5, true, NB_F32, nb_cpu()), nullptr);
    EXPECT_NE(std::string(nb_last_error()).find("nb_nn_layer_norm: needs features > 0"), std::string::npos);
}

TEST(Modules, DropoutIsInvertedInTrainingAndTheIdentityInEval) {
    nb_generator *gen = nb_generator_create(5);
    Module drop(nb_nn_dropout(0.25, gen));
    int64_t n = 100000;
    T x(nb_full(1, &n, 2.0, NB_F32, nb_cpu()));
    T y(nb_module_forward(drop, x));
    Host v = read_tensor(y);
    int64_t zeros = 0;
    for (double a : v.v) {
        EXPECT_TRUE(a == 0 || std::fabs(a - 2 / 0.75) < 1e-6) << a;
        zeros += a == 0;
    }
    EXPECT_NEAR((double)zeros / n, 0.25, 0.01);
    nb_module_train(drop, false);
    T same(nb_module_forward(drop, x));
    EXPECT_EQ(read_tensor(same).v, read_tensor(x).v);
    nb_generator_free(gen);
    EXPECT_EQ(nb_nn_dropout(1.0, nullptr), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

TEST(Init, KaimingNormalHasHesStandardDeviation) {
    nb_generator *gen = nb_generator_create(3);
    Module linear(nb_nn_linear(500, 400, true, NB_F32, nb_cpu(), gen));
    nb_generator_free(gen);
    nb_named_tensor p[2];
    ASSERT_EQ(nb_module_parameters(linear, p, 2), 2);
    Host w = read_tensor(p[0].tensor), b = read_tensor(p[1].tensor);
    double mean = 0, sq = 0;
    for (double a : w.v) mean += a / w.numel();
    for (double a : w.v) sq += (a - mean) * (a - mean) / w.numel();
    EXPECT_NEAR(mean, 0, 0.002);
    EXPECT_NEAR(std::sqrt(sq), std::sqrt(2.0 / 500), 0.01 * std::sqrt(2.0 / 500));
    for (double a : b.v) EXPECT_EQ(a, 0);
}

TEST(Optim, ClipGradNormScalesToTheLimitAndReturnsTheNorm) {
    Host a({2, 2}, {3, 0, 0, 0}), b({3}, {0, 4, 0});
    T pa(make_tensor(a, NB_F32)), pb(make_tensor(b, NB_F32));
    ASSERT_EQ(nb_set_requires_grad(pa, true), NB_OK);
    ASSERT_EQ(nb_set_requires_grad(pb, true), NB_OK);
    // gradients equal to the values: d/dp sum(p^2 / 2)
    T qa(nb_mul(pa, pa)), qb(nb_mul(pb, pb));
    T sa(nb_sum(qa, 0, nullptr, false)), sb(nb_sum(qb, 0, nullptr, false));
    T total(nb_add(sa, sb));
    T half(nb_scalar(0.5, NB_F32, nb_cpu()));
    T loss(nb_mul(total, half));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    nb_tensor *params[2] = {pa, pb};
    T norm(nb_clip_grad_norm(params, 2, 1.0));
    ASSERT_NE(norm.t, nullptr) << nb_last_error();
    double value;
    ASSERT_EQ(nb_item(norm, &value), NB_OK);
    EXPECT_NEAR(value, 5, 1e-5);
    T ga(nb_grad(pa)), gb(nb_grad(pb));
    EXPECT_NEAR(read_tensor(ga).v[0], 3 / (5 + 1e-6), 1e-6);
    EXPECT_NEAR(read_tensor(gb).v[1], 4 / (5 + 1e-6), 1e-6);
    EXPECT_EQ(nb_clip_grad_norm(params, 2, 0), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

TEST(Optim, ClipGradNormTakesAnyNumberOfParameters) {
    // 100 one-element parameters with gradient 1 each: the norm is 10
    std::vector<T> owned;
    std::vector<nb_tensor *> params;
    for (int i = 0; i < 100; i++) {
        owned.emplace_back(nb_scalar(1, NB_F32, nb_cpu()));
        ASSERT_EQ(nb_set_requires_grad(owned.back(), true), NB_OK);
        T twice(nb_mul(owned.back(), owned.back()));
        T half(nb_scalar(0.5, NB_F32, nb_cpu()));
        T loss(nb_mul(twice, half));
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
        params.push_back(owned.back());
    }
    T norm(nb_clip_grad_norm(params.data(), 100, 2.0));
    ASSERT_NE(norm.t, nullptr) << nb_last_error();
    EXPECT_NEAR(read_tensor(norm).v[0], 10, 1e-5);
    T g(nb_grad(params[57]));
    EXPECT_NEAR(read_tensor(g).v[0], 2 / (10 + 1e-6), 1e-6);
}

TEST(Optim, ClipGradValueClampsEachElementAndSkipsParametersWithoutGradients) {
    T a(make_tensor(Host({4}, {-3, 0.25, 2, 0}), NB_F32)), b(make_tensor(Host({3}, {1, 2, 3}), NB_F16));
    T idle(make_tensor(Host({2}, {1, 1}), NB_F32));
    for (nb_tensor *p : {a.t, b.t, idle.t}) ASSERT_EQ(nb_set_requires_grad(p, true), NB_OK);
    // gradients equal to the values: d/dp sum(p^2 / 2); a's last is NaN
    Host nan_last({4}, {-3, 0.25, 2, NAN});
    T ga(make_tensor(nan_last, NB_F32)), gb(make_tensor(Host({3}, {1, -2, 3}), NB_F16));
    ASSERT_EQ(nb_set_grad(a, ga), NB_OK);
    ASSERT_EQ(nb_set_grad(b, gb), NB_OK);
    nb_tensor *params[3] = {a, b, idle};
    ASSERT_EQ(nb_clip_grad_value(params, 3, 0.5), NB_OK) << nb_last_error();
    Host got_a = read_tensor(T(nb_grad(a))), got_b = read_tensor(T(nb_grad(b)));
    EXPECT_EQ(got_a.v[0], -0.5);
    EXPECT_EQ(got_a.v[1], 0.25);
    EXPECT_EQ(got_a.v[2], 0.5);
    EXPECT_TRUE(std::isnan(got_a.v[3])); // NaN stays NaN, as PyTorch's clamp
    EXPECT_EQ(got_b.v, (std::vector<double>{0.5, -0.5, 0.5}));
    EXPECT_EQ(nb_dtype_of(T(nb_grad(b))), NB_F16);
    EXPECT_EQ(nb_grad(idle), nullptr);
    EXPECT_EQ(read_tensor(ga).v[0], -3); // the old gradient tensor is not written
    EXPECT_EQ(nb_clip_grad_value(params, 0, 1), NB_OK);
    EXPECT_EQ(nb_clip_grad_value(params, 3, -1), NB_ERR_INVALID);
}

TEST(Optim, WarmupThenCosine) {
    EXPECT_DOUBLE_EQ(nb_lr_warmup_cosine(0, 10, 110, 1.0, 0.1), 0.1);
    EXPECT_DOUBLE_EQ(nb_lr_warmup_cosine(9, 10, 110, 1.0, 0.1), 1.0);
    EXPECT_DOUBLE_EQ(nb_lr_warmup_cosine(10, 10, 110, 1.0, 0.1), 1.0);
    EXPECT_NEAR(nb_lr_warmup_cosine(60, 10, 110, 1.0, 0.1), 0.55, 1e-12);
    EXPECT_DOUBLE_EQ(nb_lr_warmup_cosine(110, 10, 110, 1.0, 0.1), 0.1);
    EXPECT_DOUBLE_EQ(nb_lr_warmup_cosine(500, 10, 110, 1.0, 0.1), 0.1);
}

// 200 SGD steps of 1e-3 on a bf16 parameter at 1, whose unit in the last
// place is 2^-7: each step alone rounds away, but the f32 master copy takes
// them all and the parameter ends at the rounding of 0.8. AdamW's early
// steps move by about lr whatever the gradient, so the same holds.
TEST(Optim, Bf16ParametersAccumulateSmallUpdatesInMasterCopies) {
    for (int adam = 0; adam < 2; adam++) {
        int64_t n = 4;
        T p(nb_ones(1, &n, NB_BF16, nb_cpu()));
        ASSERT_EQ(nb_set_requires_grad(p, true), NB_OK);
        nb_tensor *params[1] = {p};
        nb_optimizer *opt = adam ? nb_adamw_create(params, 1, 1e-3, 0.9, 0.999, 1e-8, 0)
                                 : nb_sgd_create(params, 1, 1e-3, 0, 0, false);
        ASSERT_NE(opt, nullptr) << nb_last_error();
        for (int step = 0; step < 200; step++) {
            nb_optimizer_zero_grad(opt);
            T total(nb_sum(p, 0, nullptr, false)); // gradient 1 everywhere
            ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
            ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
        }
        nb_optimizer_free(opt);
        // Adam's step is lr m_hat / (sqrt(v_hat) + eps) = lr for a constant gradient
        for (double v : read_tensor(p).v) EXPECT_NEAR(v, 0.8, 0.004) << (adam ? "adamw" : "sgd");
    }
}

TEST(Optim, ZeroGradDropsGradientsAndBadArgumentsFail) {
    int64_t n = 3;
    T p(nb_ones(1, &n, NB_F32, nb_cpu()));
    ASSERT_EQ(nb_set_requires_grad(p, true), NB_OK);
    T s(nb_sum(p, 0, nullptr, false));
    ASSERT_EQ(nb_backward(s, nullptr, false), NB_OK);
    nb_tensor *params[1] = {p};
    nb_optimizer *opt = nb_sgd_create(params, 1, 0.1, 0, 0, false);
    ASSERT_NE(opt, nullptr);
    nb_optimizer_set_lr(opt, 0.2);
    EXPECT_DOUBLE_EQ(nb_optimizer_get_lr(opt), 0.2);
    ASSERT_EQ(nb_optimizer_step(opt), NB_OK);
    EXPECT_EQ(read_tensor(p).v, std::vector<double>(3, 1 - 0.2f));
    nb_optimizer_zero_grad(opt);
    EXPECT_EQ(nb_grad(p), nullptr);
    ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << "no gradient: nothing to do";
    nb_optimizer_free(opt);
    EXPECT_EQ(nb_adam_create(params, 1, 0.1, 1.5, 0.999, 1e-8, 0), nullptr);
    EXPECT_NE(std::string(nb_last_error()).find("nb_adam_create"), std::string::npos);
    EXPECT_EQ(nb_sgd_create(params, 1, 0.1, 0, 0, true), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

// Adam over two groups with their own lr, weight decay and beta1; parameter
// b has no gradient at step 2, so its steps (and bias corrections) lag a's.
// The reference writes the update out per parameter and counts its steps.
TEST(Optim, GroupsStepWithTheirOwnOptionsAndCountStepsPerParameter) {
    const int64_t n = 4;
    Host a0({n}, {0.5, -1, 2, 0.25}), b0({n}, {1, 1, -1, 3}), c0({n}, {-2, 0.5, 0.125, 1});
    Host ga({n}, {0.3, -0.2, 0.1, 1}), gb({n}, {-1, 0.5, 0.25, 2}), gc({n}, {0.7, 0.7, -0.7, 0.1});
    T a(make_tensor(a0, NB_F64)), b(make_tensor(b0, NB_F64)), c(make_tensor(c0, NB_F64));
    T ka(make_tensor(ga, NB_F64)), kb(make_tensor(gb, NB_F64)), kc(make_tensor(gc, NB_F64));
    for (nb_tensor *p : {a.t, b.t, c.t}) ASSERT_EQ(nb_set_requires_grad(p, true), NB_OK);
    nb_tensor *first[] = {a, b}, *second[] = {c};
    nb_param_group groups[] = {{first, 2, {.lr = 0.1, .weight_decay = 0.1}},
                               {second, 1, {.lr = 0.01, .beta1 = 0.5}}};
    nb_optimizer *opt = nb_optimizer_create(NB_OPTIM_ADAM, groups, 2);
    ASSERT_NE(opt, nullptr) << nb_last_error();
    EXPECT_EQ(nb_optimizer_num_groups(opt), 2);
    struct Ref {
        Host p, g;
        double lr, wd, beta1;
        int steps = 0;
        std::vector<double> m, v;
    };
    std::vector<Ref> ref = {{a0, ga, 0.1, 0.1, 0.9}, {b0, gb, 0.1, 0.1, 0.9}, {c0, gc, 0.01, 0, 0.5}};
    for (Ref &r : ref) r.m.assign(n, 0), r.v.assign(n, 0);
    for (int step = 1; step <= 3; step++) {
        nb_optimizer_zero_grad(opt);
        bool with_b = step != 2;
        std::vector<nb_tensor *> terms;
        for (auto [p, k] : {std::pair{a.t, ka.t}, {b.t, kb.t}, {c.t, kc.t}})
            if (p != b.t || with_b) terms.push_back(nb_sum(T(nb_mul(p, k)), 0, nullptr, false));
        T loss(nb_add(terms[0], terms[1]));
        if (terms.size() == 3) loss = T(nb_add(loss, terms[2]));
        for (nb_tensor *t : terms) nb_release(t);
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
        ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
        for (size_t k = 0; k < ref.size(); k++) {
            Ref &r = ref[k];
            if (k == 1 && !with_b) continue;
            int t = ++r.steps;
            for (int64_t i = 0; i < n; i++) {
                double g = r.g.v[i] + r.wd * r.p.v[i];
                r.m[i] = r.beta1 * r.m[i] + (1 - r.beta1) * g;
                r.v[i] = 0.999 * r.v[i] + 0.001 * g * g;
                double mhat = r.m[i] / (1 - std::pow(r.beta1, t)), vhat = r.v[i] / (1 - std::pow(0.999, t));
                r.p.v[i] -= r.lr * mhat / (std::sqrt(vhat) + 1e-8);
            }
        }
    }
    EXPECT_EQ(ref[1].steps, 2);
    const nb_tensor *params[] = {a, b, c};
    for (size_t k = 0; k < ref.size(); k++) {
        Host got = read_tensor(params[k]);
        for (int64_t i = 0; i < n; i++) EXPECT_NEAR(got.v[i], ref[k].p.v[i], 1e-12) << "parameter " << k << " at " << i;
    }
    nb_optimizer_free(opt);
}

// A field left 0 takes the rule's default, NB_OPTIM_ZERO a literal 0; new
// options reach the next step, and the rates are set per group or for all.
TEST(Optim, OptionsTakeDefaultsAndChangeBetweenSteps) {
    int64_t n = 2;
    T p(nb_ones(1, &n, NB_F64, nb_cpu())), q(nb_ones(1, &n, NB_F64, nb_cpu()));
    nb_tensor *first[] = {p}, *second[] = {q};
    nb_param_group groups[] = {{first, 1, {}}, {second, 1, {.weight_decay = NB_OPTIM_ZERO}}};
    nb_optimizer *opt = nb_optimizer_create(NB_OPTIM_ADAMW, groups, 2);
    ASSERT_NE(opt, nullptr) << nb_last_error();
    nb_optim_options o;
    ASSERT_EQ(nb_optimizer_get_options(opt, 0, &o), NB_OK);
    EXPECT_EQ(o.lr, 1e-3);
    EXPECT_EQ(o.beta1, 0.9);
    EXPECT_EQ(o.beta2, 0.999);
    EXPECT_EQ(o.eps, 1e-8);
    EXPECT_EQ(o.weight_decay, 1e-2);
    ASSERT_EQ(nb_optimizer_get_options(opt, 1, &o), NB_OK);
    EXPECT_EQ(o.weight_decay, 0);
    EXPECT_FALSE(std::signbit(o.weight_decay)) << "a resolved 0 is +0";
    ASSERT_EQ(nb_optimizer_set_group_lr(opt, 1, 0.5), NB_OK);
    EXPECT_EQ(nb_optimizer_get_lr(opt), 1e-3);
    ASSERT_EQ(nb_optimizer_get_options(opt, 1, &o), NB_OK);
    EXPECT_EQ(o.lr, 0.5);
    ASSERT_EQ(nb_optimizer_set_lr(opt, 0.25), NB_OK);
    ASSERT_EQ(nb_optimizer_get_options(opt, 1, &o), NB_OK);
    EXPECT_EQ(o.lr, 0.25);
    nb_optim_options bad = {.momentum = 0.5};
    EXPECT_EQ(nb_optimizer_set_options(opt, 0, &bad), NB_ERR_INVALID);
    ASSERT_EQ(nb_optimizer_get_options(opt, 0, &o), NB_OK);
    EXPECT_EQ(o.lr, 0.25) << "a rejected set_options changes nothing";
    nb_optimizer_free(opt);

    // SGD without momentum, then with: the buffer starts as the gradient
    T w(nb_ones(1, &n, NB_F64, nb_cpu()));
    ASSERT_EQ(nb_set_requires_grad(w, true), NB_OK);
    nb_tensor *ws[] = {w};
    nb_optimizer *sgd = nb_sgd_create(ws, 1, 0.1, 0, 0, false);
    ASSERT_NE(sgd, nullptr);
    double expect = 1;
    for (int step = 0; step < 3; step++) {
        if (step == 1) {
            nb_optim_options m = {.lr = 0.1, .momentum = 0.5};
            ASSERT_EQ(nb_optimizer_set_options(sgd, 0, &m), NB_OK) << nb_last_error();
        }
        nb_optimizer_zero_grad(sgd);
        T loss(nb_sum(w, 0, nullptr, false)); // gradient 1
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
        ASSERT_EQ(nb_optimizer_step(sgd), NB_OK);
    }
    expect -= 0.1;           // plain
    expect -= 0.1 * 1;       // the buffer starts as g = 1
    expect -= 0.1 * 1.5;     // 0.5 * 1 + 1
    EXPECT_NEAR(read_tensor(w).v[0], expect, 1e-15);
    nb_optimizer_free(sgd);
}

// Each rule steps bf16 parameters through f32 master copies: after the
// steps, the parameter is the rounding of an f32 run.
TEST(Optim, EveryRuleStepsBf16ThroughMasterCopies) {
    int64_t n = 64;
    for (int kind = 0; kind < NB_OPTIM_KINDS; kind++) {
        nb_tensor *finals[2] = {nullptr, nullptr};
        for (int half = 0; half < 2; half++) {
            nb_tensor *start = nb_arange(0, 1, 1.0 / (double)n, NB_F32, nb_cpu());
            nb_tensor *p = nb_cast(start, half ? NB_BF16 : NB_F32);
            nb_release(start);
            ASSERT_EQ(nb_set_requires_grad(p, true), NB_OK);
            nb_param_group g = {&p, 1, {.lr = kind == NB_OPTIM_FTRL ? 0.5 : 1e-3}};
            nb_optimizer *opt = nb_optimizer_create((nb_optimizer_kind)kind, &g, 1);
            ASSERT_NE(opt, nullptr) << nb_last_error();
            for (int step = 0; step < 5; step++) {
                nb_optimizer_zero_grad(opt);
                T sq(nb_mul(p, p));
                T loss(nb_sum(sq, 0, nullptr, false));
                ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
                ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
            }
            nb_optimizer_free(opt);
            finals[half] = p;
        }
        Host f32 = read_tensor(finals[0]), bf16 = read_tensor(finals[1]);
        for (int64_t i = 0; i < n; i++)
            EXPECT_NEAR(bf16.v[i], f32.v[i], 1e-2 * std::fabs(f32.v[i]) + 1e-3) << "kind " << kind << " at " << i;
        EXPECT_NE(f32.v[n - 1], (double)(n - 1) / n) << "kind " << kind << " moved the parameter";
        nb_release(finals[0]);
        nb_release(finals[1]);
    }
}

double schedule_at(const nb_lr_schedule &s, int64_t t, double base = 0.1) {
    double lr = NAN;
    EXPECT_EQ(nb_lr_schedule_at(&s, t, base, &lr), NB_OK) << nb_last_error();
    return lr;
}

double half_factor(void *ctx, int64_t step) { return *(double *)ctx / (double)(step + 1); }

// Each closed form against its formula at every step of a range, defaults
// filled in as PyTorch's.
TEST(Schedule, EveryClosedFormMatchesItsFormula) {
    const double b = 0.1, pi = 3.14159265358979323846;
    const int64_t milestones[] = {2, 5, 5, 9};
    double two = 2;
    for (int64_t t = 0; t < 40; t++) {
        double x = (double)t;
        EXPECT_DOUBLE_EQ(schedule_at({.kind = NB_LR_CONSTANT}, t), t < 5 ? b / 3 : b);
        EXPECT_DOUBLE_EQ(schedule_at({.kind = NB_LR_STEP, .step_size = 3}, t), b * std::pow(0.1, t / 3));
        int passed = (t >= 2) + 2 * (t >= 5) + (t >= 9);
        EXPECT_DOUBLE_EQ(schedule_at({.kind = NB_LR_MULTI_STEP, .gamma = 0.5, .milestones = milestones, .n_milestones = 4}, t),
                         b * std::pow(0.5, passed));
        EXPECT_DOUBLE_EQ(schedule_at({.kind = NB_LR_EXPONENTIAL, .gamma = 0.9}, t), b * std::pow(0.9, x));
        EXPECT_NEAR(schedule_at({.kind = NB_LR_LINEAR}, t), b * (1.0 / 3 + (2.0 / 3) * std::min(x, 5.0) / 5), 1e-16);
        EXPECT_NEAR(schedule_at({.kind = NB_LR_POLYNOMIAL, .power = 2, .total_steps = 10}, t),
                    b * std::pow(1 - std::min(x, 10.0) / 10, 2), 1e-16);
        EXPECT_NEAR(schedule_at({.kind = NB_LR_COSINE, .min_lr = 0.01, .total_steps = 10}, t),
                    0.01 + (b - 0.01) * (1 + std::cos(pi * x / 10)) / 2, 1e-16);
        EXPECT_DOUBLE_EQ(schedule_at({.kind = NB_LR_LAMBDA, .fn = half_factor, .ctx = &two}, t), b * 2 / (x + 1));
        // warm restarts by PyTorch's recursion: T_cur += 1, and at T_i a restart with T_i *= T_mult
        int64_t cur = 0, period = 3;
        for (int64_t k = 0; k < t; k++)
            if (++cur >= period) cur = 0, period *= 2;
        EXPECT_NEAR(schedule_at({.kind = NB_LR_COSINE_WARM_RESTARTS, .t0 = 3, .t_mult = 2}, t),
                    b * (1 + std::cos(pi * (double)cur / (double)period)) / 2, 1e-16) << "step " << t;
        // 4 warmup steps from a quarter of step 0's rate, then the step schedule at t - 4
        double warm = t < 4 ? b * (0.25 + 0.75 * x / 4) : b * std::pow(0.1, (t - 4) / 3);
        EXPECT_NEAR(schedule_at({.kind = NB_LR_STEP, .step_size = 3, .warmup_steps = 4, .warmup_start_factor = 0.25}, t),
                    warm, 1e-16);
    }
    nb_lr_schedule literal_zero = {.kind = NB_LR_CONSTANT, .factor = NB_OPTIM_ZERO};
    EXPECT_EQ(schedule_at(literal_zero, 0), 0);
}

// OneCycleLR's two and three phases, cosine and linear, against PyTorch's
// phase table written out; momentum cycles on the optimizer's beta1.
TEST(Schedule, OneCycleFollowsPytorchsPhases) {
    const double pi = 3.14159265358979323846;
    auto cos_anneal = [&](double a, double b, double pct) { return b + (a - b) / 2 * (std::cos(pi * pct) + 1); };
    for (bool three : {false, true})
        for (bool linear : {false, true}) {
            nb_lr_schedule s = {.kind = NB_LR_ONE_CYCLE, .total_steps = 20, .max_lr = 1.0, .three_phase = three,
                                .linear_anneal = linear};
            double initial = 1.0 / 25, final = initial / 1e4;
            std::vector<std::array<double, 3>> phases; // end step, start value, end value
            if (three) phases = {{0.3 * 20 - 1, initial, 1}, {2 * 0.3 * 20 - 2, 1, initial}, {19, initial, final}};
            else phases = {{0.3 * 20 - 1, initial, 1}, {19, 1, final}};
            for (int64_t t = 0; t <= 20; t++) {
                double start = 0, want = 0;
                for (size_t i = 0; i < phases.size(); i++) {
                    if ((double)t <= phases[i][0] || i == phases.size() - 1) {
                        double pct = ((double)t - start) / (phases[i][0] - start);
                        want = linear ? (phases[i][2] - phases[i][1]) * pct + phases[i][1]
                                      : cos_anneal(phases[i][1], phases[i][2], pct);
                        break;
                    }
                    start = phases[i][0];
                }
                EXPECT_NEAR(schedule_at(s, t), want, 1e-15) << "step " << t << " three " << three << " linear " << linear;
            }
            double lr;
            EXPECT_EQ(nb_lr_schedule_at(&s, 21, 0.1, &lr), NB_ERR_INVALID);
            EXPECT_NE(std::string(nb_last_error()).find("step 21 is past the one-cycle schedule's total_steps 20"),
                      std::string::npos) << nb_last_error();
        }
    int64_t n = 2;
    T p(nb_ones(1, &n, NB_F32, nb_cpu()));
    nb_tensor *ps[] = {p};
    nb_param_group g = {ps, 1, {}};
    nb_optimizer *adam = nb_optimizer_create(NB_OPTIM_ADAM, &g, 1);
    nb_lr_schedule s = {.kind = NB_LR_ONE_CYCLE, .total_steps = 10, .max_lr = 0.5};
    nb_lr_scheduler *sched = nb_lr_scheduler_create(adam, &s, 1);
    ASSERT_NE(sched, nullptr) << nb_last_error();
    nb_optim_options o;
    nb_optimizer_get_options(adam, 0, &o);
    EXPECT_NEAR(o.lr, 0.5 / 25, 1e-16);
    EXPECT_DOUBLE_EQ(o.beta1, 0.95) << "momentum starts at max_momentum";
    for (int k = 0; k < 2; k++) ASSERT_EQ(nb_lr_scheduler_step(sched, 0), NB_OK);
    nb_optimizer_get_options(adam, 0, &o);
    EXPECT_DOUBLE_EQ(o.beta1, 0.85) << "the peak of the rate (step 2) is the trough of the momentum";
    EXPECT_DOUBLE_EQ(o.lr, 0.5);
    nb_lr_scheduler_free(sched);
    nb_optimizer_free(adam);
}

// ReduceLROnPlateau against a hand trace: patience 2, cooldown 1, relative
// threshold, min mode; and through the scheduler with a plateau group next to
// a step group.
TEST(Schedule, PlateauReducesAfterThePatienceAndCoolsDown) {
    nb_lr_schedule s = {.kind = NB_LR_PLATEAU, .factor = 0.5, .min_lr = 0.02, .patience = 2, .cooldown = 1};
    nb_lr_plateau state = {};
    double lr = 0.1;
    //                 better  bad  bad  bad -> reduce, cooldown  bad(cool)  bad  bad  bad -> reduce  NaN...
    const double metrics[] = {1.0, 1.0, 0.99995, 1.2, 1.1, 1.1, 1.1, 1.1, NAN, NAN, NAN, NAN, NAN, NAN};
    const double want[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.02, 0.02, 0.02};
    for (size_t i = 0; i < sizeof metrics / sizeof *metrics; i++) {
        ASSERT_EQ(nb_lr_plateau_update(&s, &state, metrics[i], &lr), NB_OK) << nb_last_error();
        EXPECT_DOUBLE_EQ(lr, want[i]) << "metric " << i;
    }
    int64_t n = 2;
    T a(nb_ones(1, &n, NB_F32, nb_cpu())), b(nb_ones(1, &n, NB_F32, nb_cpu()));
    nb_tensor *first[] = {a}, *second[] = {b};
    nb_param_group groups[] = {{first, 1, {.lr = 0.1}}, {second, 1, {.lr = 1}}};
    nb_optimizer *sgd = nb_optimizer_create(NB_OPTIM_SGD, groups, 2);
    nb_lr_schedule both[] = {{.kind = NB_LR_PLATEAU, .patience = NB_LR_NO_PATIENCE}, {.kind = NB_LR_STEP, .step_size = 1}};
    nb_lr_scheduler *sched = nb_lr_scheduler_create(sgd, both, 2);
    ASSERT_NE(sched, nullptr) << nb_last_error();
    ASSERT_EQ(nb_lr_scheduler_step(sched, 1.0), NB_OK);
    ASSERT_EQ(nb_lr_scheduler_step(sched, 2.0), NB_OK); // no patience: reduced at once
    nb_optim_options o;
    nb_optimizer_get_options(sgd, 0, &o);
    EXPECT_DOUBLE_EQ(o.lr, 0.01);
    nb_optimizer_get_options(sgd, 1, &o);
    EXPECT_DOUBLE_EQ(o.lr, 0.01);
    EXPECT_EQ(nb_lr_scheduler_get_step(sched), 2);
    ASSERT_EQ(nb_lr_scheduler_set_step(sched, 0), NB_OK);
    nb_optimizer_get_options(sgd, 1, &o);
    EXPECT_DOUBLE_EQ(o.lr, 1);
    nb_optimizer_get_options(sgd, 0, &o);
    EXPECT_DOUBLE_EQ(o.lr, 0.01) << "a plateau group keeps its rate";
    nb_lr_scheduler_free(sched);
    nb_optimizer_free(sgd);
}

// The mean and standard deviation of t's elements.
std::pair<double, double> moments(const nb_tensor *t) {
    Host h = read_tensor(t);
    double mean = 0, m2 = 0;
    for (double v : h.v) mean += v;
    mean /= (double)h.v.size();
    for (double v : h.v) m2 += (v - mean) * (v - mean);
    return {mean, std::sqrt(m2 / (double)h.v.size())};
}

// Each initializer's moments against its formula over 2^16 draws (the
// standard error of a std is std / sqrt(2 n), ~0.3% here; 2% is asked).
TEST(Init, MomentsMatchTheFormulas) {
    nb_generator *gen = nb_generator_create(11);
    const int64_t shape[] = {64, 256, 2, 2}; // fan_in 1024, fan_out 256
    T w(nb_empty(4, shape, NB_F32, nb_cpu()));
    int64_t fan_in, fan_out;
    ASSERT_EQ(nb_init_fans(w, &fan_in, &fan_out), NB_OK);
    EXPECT_EQ(fan_in, 1024);
    EXPECT_EQ(fan_out, 256);
    auto expect_std = [&](double want, const char *what) {
        auto [mean, std] = moments(w);
        EXPECT_NEAR(mean, 0, 0.02 * want) << what;
        EXPECT_NEAR(std, want, 0.02 * want) << what;
    };
    ASSERT_EQ(nb_init_xavier(w, 2, NB_INIT_NORMAL, gen), NB_OK);
    expect_std(2 * std::sqrt(2.0 / 1280), "xavier normal");
    ASSERT_EQ(nb_init_xavier(w, 1, NB_INIT_UNIFORM, gen), NB_OK);
    expect_std(std::sqrt(2.0 / 1280), "xavier uniform");
    Host h = read_tensor(w);
    double bound = std::sqrt(6.0 / 1280);
    EXPECT_LE(*std::max_element(h.v.begin(), h.v.end()), bound);
    EXPECT_GE(*std::min_element(h.v.begin(), h.v.end()), -bound);
    nb_kaiming_options fan_out_relu = {.mode = NB_FAN_OUT, .nonlinearity = NB_ACT_RELU};
    ASSERT_EQ(nb_init_kaiming(w, &fan_out_relu, gen), NB_OK);
    expect_std(std::sqrt(2.0 / 256), "kaiming normal fan_out relu");
    nb_kaiming_options leaky = {.a = std::sqrt(5.0), .distribution = NB_INIT_UNIFORM};
    ASSERT_EQ(nb_init_kaiming(w, &leaky, gen), NB_OK);
    expect_std(std::sqrt(2 / 6.0) / std::sqrt(1024.0), "kaiming uniform a = sqrt 5");
    ASSERT_EQ(nb_init_lecun(w, NB_INIT_TRUNCATED_NORMAL, gen), NB_OK);
    expect_std(1 / std::sqrt(1024.0), "lecun truncated normal");
    h = read_tensor(w);
    double cut = 2 / std::sqrt(1024.0) / 0.87962566103423978;
    EXPECT_LE(*std::max_element(h.v.begin(), h.v.end()), cut + 1e-7);
    ASSERT_EQ(nb_init_variance_scaling(w, 3, NB_FAN_AVG, NB_INIT_UNIFORM, gen), NB_OK);
    expect_std(std::sqrt(3 / 640.0), "variance scaling fan_avg");
    // N(1, 2^2) on [0, 3]: the truncated normal's mean and std from its formula
    ASSERT_EQ(nb_init_trunc_normal(w, 1, 2, 0, 3, gen), NB_OK);
    auto phi = [](double z) { return std::exp(-z * z / 2) / std::sqrt(2 * 3.14159265358979323846); };
    auto cdf = [](double z) { return (1 + std::erf(z / std::sqrt(2.0))) / 2; };
    double al = -0.5, be = 1, zmass = cdf(be) - cdf(al);
    double tmean = 1 + 2 * (phi(al) - phi(be)) / zmass;
    double tvar = 4 * (1 + (al * phi(al) - be * phi(be)) / zmass - std::pow((phi(al) - phi(be)) / zmass, 2));
    auto [mean, std] = moments(w);
    EXPECT_NEAR(mean, tmean, 0.01);
    EXPECT_NEAR(std, std::sqrt(tvar), 0.01);
    h = read_tensor(w);
    EXPECT_GE(*std::min_element(h.v.begin(), h.v.end()), 0);
    EXPECT_LE(*std::max_element(h.v.begin(), h.v.end()), 3);
    double gain;
    ASSERT_EQ(nb_init_gain(NB_ACT_TANH, 0, &gain), NB_OK);
    EXPECT_DOUBLE_EQ(gain, 5.0 / 3);
    ASSERT_EQ(nb_init_gain(NB_ACT_LEAKY_RELU, 0.2, &gain), NB_OK);
    EXPECT_DOUBLE_EQ(gain, std::sqrt(2 / 1.04));
    ASSERT_EQ(nb_init_gain(NB_INIT_LINEAR, 0, &gain), NB_OK);
    EXPECT_EQ(gain, 1);
    EXPECT_EQ(nb_init_gain(NB_ACT_MISH, 0, &gain), NB_ERR_INVALID);
    nb_generator_free(gen);
}

// Orthogonal: Q^T Q = I for tall, wide and 4-dim weights; eye and dirac;
// PyTorch's default Linear and Conv2d bounds.
TEST(Init, OrthogonalEyeDiracAndPytorchsDefaults) {
    nb_generator *gen = nb_generator_create(3);
    for (auto shape : std::vector<Shape>{{7, 4}, {3, 9}, {6, 2, 2, 2}, {5, 5}}) {
        T w(nb_empty((int)shape.size(), shape.data(), NB_F64, nb_cpu()));
        ASSERT_EQ(nb_init_orthogonal(w, 1.5, gen), NB_OK) << nb_last_error();
        Host h = read_tensor(w);
        int64_t rows = shape[0], cols = (int64_t)h.v.size() / rows;
        bool tall = rows >= cols; // then the columns are orthonormal, else the rows
        int64_t k = tall ? cols : rows;
        for (int64_t i = 0; i < k; i++)
            for (int64_t j = 0; j < k; j++) {
                double dot = 0;
                for (int64_t l = 0; l < (tall ? rows : cols); l++)
                    dot += tall ? h.v[l * cols + i] * h.v[l * cols + j] : h.v[i * cols + l] * h.v[j * cols + l];
                EXPECT_NEAR(dot, i == j ? 2.25 : 0, 1e-12) << "shape " << rows << "x" << cols << " at " << i << "," << j;
            }
    }
    T eye(nb_empty(2, Shape{2, 3}.data(), NB_F32, nb_cpu()));
    ASSERT_EQ(nb_init_eye(eye), NB_OK);
    EXPECT_EQ(read_tensor(eye).v, std::vector<double>({1, 0, 0, 0, 1, 0}));
    T dirac(nb_empty(4, Shape{4, 2, 3, 3}.data(), NB_F32, nb_cpu()));
    ASSERT_EQ(nb_init_dirac(dirac, 2), NB_OK);
    Host d = read_tensor(dirac);
    double ones = 0;
    for (double v : d.v) ones += v;
    EXPECT_EQ(ones, 4); // 2 groups of min(2, 2) channels
    EXPECT_EQ(d.v[((0 * 2 + 0) * 3 + 1) * 3 + 1], 1);
    EXPECT_EQ(d.v[((1 * 2 + 1) * 3 + 1) * 3 + 1], 1);
    EXPECT_EQ(d.v[((2 * 2 + 0) * 3 + 1) * 3 + 1], 1);
    EXPECT_EQ(d.v[((3 * 2 + 1) * 3 + 1) * 3 + 1], 1);
    EXPECT_EQ(nb_init_dirac(dirac, 3), NB_ERR_INVALID);
    nb_module *layers[] = {nb_nn_linear(400, 30, true, NB_F32, nb_cpu(), gen),
                           nb_nn_conv2d(3, 8, 5, 1, 2, 1, 1, true, NB_F32, nb_cpu(), gen)};
    Module net(nb_nn_sequential(2, layers));
    ASSERT_NE(net.m, nullptr) << nb_last_error();
    ASSERT_EQ(nb_init_pytorch_default(net, gen), NB_OK);
    nb_named_tensor named[8];
    int n = nb_module_parameters(net, named, 8);
    ASSERT_EQ(n, 4);
    const double bounds[] = {1 / 20.0, 1 / 20.0, 1 / std::sqrt(75.0), 1 / std::sqrt(75.0)};
    for (int i = 0; i < n; i++) {
        Host h = read_tensor(named[i].tensor);
        double lo = *std::min_element(h.v.begin(), h.v.end()), hi = *std::max_element(h.v.begin(), h.v.end());
        EXPECT_LE(hi, bounds[i]) << named[i].name;
        EXPECT_GE(lo, -bounds[i]) << named[i].name;
        EXPECT_GT(hi, 0.5 * bounds[i]) << named[i].name << " spans its range";
    }
    nb_generator_free(gen);
}

// The composed row losses against their formulas in double, per row.
TEST(Losses, RowLossesMatchTheirFormulas) {
    Host a({3, 4}, {0.5, -1, 2, 0.1, 1, 1, -1, 0.3, -2, 0.4, 0.9, -0.7});
    Host b({3, 4}, {1, 0.2, -0.5, 2, -1, 0.5, 0.5, 0.2, 0.3, -0.8, 1.1, 0.6});
    Host c({3, 4}, {0.1, 0.1, 0.1, 0.1, 2, -2, 1, 0, -1, 0.5, 0.5, -0.5});
    Host y({3}, {1, -1, 1});
    T ta(make_tensor(a, NB_F64)), tb(make_tensor(b, NB_F64)), tc(make_tensor(c, NB_F64)), ty(make_tensor(y, NB_F64));
    T cosine(nb_cosine_embedding_loss(ta, tb, ty, 0.1, NB_REDUCTION_NONE));
    nb_triplet_options o = {.margin = 0.5, .p = 1, .swap = true};
    T triplet(nb_triplet_margin_loss(ta, tb, tc, &o, NB_REDUCTION_NONE));
    Host onehot({3, 4}, {0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0});
    T hot(make_tensor(onehot, NB_F64));
    T hinge(nb_categorical_hinge_loss(ta, hot, NB_REDUCTION_NONE));
    ASSERT_TRUE(cosine.t && triplet.t && hinge.t) << nb_last_error();
    Host gc = read_tensor(cosine), gt = read_tensor(triplet), gh = read_tensor(hinge);
    for (int r = 0; r < 3; r++) {
        double dot = 0, n1 = 0, n2 = 0, ap = 0, an = 0, pn = 0, pos = 0, neg = -INFINITY;
        for (int j = 0; j < 4; j++) {
            double x1 = a.v[r * 4 + j], x2 = b.v[r * 4 + j], x3 = c.v[r * 4 + j], t = onehot.v[r * 4 + j];
            dot += x1 * x2, n1 += x1 * x1, n2 += x2 * x2;
            ap += std::fabs(x1 - x2 + 1e-6), an += std::fabs(x1 - x3 + 1e-6), pn += std::fabs(x2 - x3 + 1e-6);
            pos += t * x1, neg = std::max(neg, (1 - t) * x1);
        }
        double cos = dot / std::sqrt((n1 + 1e-12) * (n2 + 1e-12));
        EXPECT_NEAR(gc.v[r], y.v[r] > 0 ? 1 - cos : std::max(0.0, cos - 0.1), 1e-14) << "cosine row " << r;
        EXPECT_NEAR(gt.v[r], std::max(0.0, ap - std::min(an, pn) + 0.5), 1e-14) << "triplet row " << r;
        EXPECT_NEAR(gh.v[r], std::max(0.0, neg - pos + 1), 1e-14) << "categorical hinge row " << r;
    }
}

// Two classes of 8x8 single-channel images, bright top or bright bottom:
// a conv net must drive its loss well down in a few dozen steps.
TEST(Training, SmallConvNetLossFalls) {
    nb_generator *gen = nb_generator_create(11);
    nb_module *layers[7] = {nb_nn_conv2d(1, 4, 3, 1, 1, 1, 1, true, NB_F32, nb_cpu(), gen),
                            nb_nn_batch_norm2d(4, 1e-5, 0.1, true, NB_F32, nb_cpu()),
                            nb_nn_activation(NB_ACT_RELU),
                            nb_nn_max_pool2d(2, 2, 0),
                            nb_nn_flatten(),
                            nb_nn_dropout(0.1, gen),
                            nb_nn_linear(64, 2, true, NB_F32, nb_cpu(), gen)};
    Module net(nb_nn_sequential(7, layers));
    ASSERT_NE(net.m, nullptr) << nb_last_error();
    nb_named_tensor named[16];
    int n = nb_module_parameters(net, named, 16);
    std::vector<nb_tensor *> params;
    for (int i = 0; i < n; i++) params.push_back(named[i].tensor);
    nb_optimizer *opt = nb_sgd_create(params.data(), n, 0.05, 0.9, 1e-4, false);
    Host images({16, 1, 8, 8});
    std::vector<int64_t> labels(16);
    std::mt19937_64 rng(2);
    for (int64_t s = 0; s < 16; s++) {
        labels[s] = s % 2;
        for (int64_t i = 0; i < 64; i++) {
            bool top = i < 32;
            images.v[s * 64 + i] = (top == (labels[s] == 0) ? 1.0 : 0.0) +
                                   0.3 * std::uniform_real_distribution<double>(-1, 1)(rng);
        }
    }
    T x(make_tensor(images, NB_F32));
    T y(nb_from_host(labels.data(), 1, Shape{16}.data(), NB_I64, nb_cpu()));
    double first = 0, last = 0;
    for (int step = 0; step < 40; step++) {
        nb_optimizer_zero_grad(opt);
        T logits(nb_module_forward(net, x));
        T loss(nb_cross_entropy(logits, y, NB_REDUCTION_MEAN, 0, -100));
        ASSERT_NE(loss.t, nullptr) << nb_last_error();
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error() << " at step " << step;
        ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
        double value;
        ASSERT_EQ(nb_item(loss, &value), NB_OK);
        if (step == 0) first = value;
        last = value;
    }
    nb_optimizer_free(opt);
    nb_generator_free(gen);
    EXPECT_LT(last, 0.25 * first) << "loss " << first << " -> " << last;
}

} // namespace

namespace {

TEST(Loss, AllRowsIgnoredGiveANaNMeanAndZeroGradients) {
    Host x({2, 3}, {0.5, -1, 2, 1, 0, -0.5});
    T logits(make_tensor(x, NB_F32));
    ASSERT_EQ(nb_set_requires_grad(logits, true), NB_OK);
    int64_t targets[2] = {7, 7};
    T t(nb_from_host(targets, 1, Shape{2}.data(), NB_I64, nb_cpu()));
    T loss(nb_cross_entropy(logits, t, NB_REDUCTION_MEAN, 0, 7));
    ASSERT_NE(loss.t, nullptr) << nb_last_error();
    double value;
    ASSERT_EQ(nb_item(loss, &value), NB_OK);
    EXPECT_TRUE(std::isnan(value));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    T g(nb_grad(logits));
    EXPECT_EQ(read_tensor(g).v, std::vector<double>(6, 0.0));
    int64_t bad[2] = {0, 3};
    T tb(nb_from_host(bad, 1, Shape{2}.data(), NB_I64, nb_cpu()));
    EXPECT_EQ(nb_cross_entropy(logits, tb, NB_REDUCTION_MEAN, 0, -100), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INDEX);
    EXPECT_NE(std::string(nb_last_error()).find("target 3 out of range [0, 3)"), std::string::npos)
        << nb_last_error();
}

// An empty batch has zero weight and bias gradients (as in PyTorch), for
// conv2d and conv_transpose2d alike.
TEST(Conv, EmptyBatchGivesZeroWeightGradients) {
    for (bool transposed : {false, true}) {
        Shape xs = {0, 2, 5, 5}, ws = transposed ? Shape{2, 3, 3, 3} : Shape{3, 2, 3, 3};
        T x(nb_zeros(4, xs.data(), NB_F32, nb_cpu())), w(nb_ones(4, ws.data(), NB_F32, nb_cpu()));
        T b(nb_ones(1, Shape{3}.data(), NB_F32, nb_cpu()));
        for (nb_tensor *t : {x.t, w.t, b.t}) ASSERT_EQ(nb_set_requires_grad(t, true), NB_OK);
        int pad[2] = {1, 1};
        T y(transposed ? nb_conv_transpose2d(x, w, b, nullptr, pad, nullptr, nullptr, 1)
                       : nb_conv2d(x, w, b, nullptr, pad, nullptr, 1));
        ASSERT_NE(y.t, nullptr) << nb_last_error();
        T total(nb_sum(y, 0, nullptr, false));
        ASSERT_EQ(nb_backward(total, nullptr, false), NB_OK) << nb_last_error();
        T dw(nb_grad(w)), db(nb_grad(b)), dx(nb_grad(x));
        ASSERT_NE(dw.t, nullptr) << "transposed " << transposed;
        ASSERT_NE(db.t, nullptr) << "transposed " << transposed;
        EXPECT_EQ(read_tensor(dw).v, std::vector<double>(18 * 3, 0.0));
        EXPECT_EQ(read_tensor(db).v, std::vector<double>(3, 0.0));
        ASSERT_NE(dx.t, nullptr);
        EXPECT_EQ(read_tensor(dx).shape, xs);
    }
}

} // namespace
