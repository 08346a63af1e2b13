// The op harness: one table of cases per op in src/core/oplist.h, each run on
// every backend present and every dtype it lists, with contiguous and strided
// inputs, against a reference computed here in double; plus a float64
// finite-difference check of every differentiable op's gradient, and a
// coverage test that fails for an op without cases.
#include "cases/cases.h"

namespace {

using namespace op_cases;

const std::vector<Case> &all_cases() {
    static bool built = false;
    if (!built) {
        zero_input_cases();
        elementwise_cases();
        reduction_cases();
        linear_algebra_cases();
        join_and_index_cases();
        view_cases();
        large_cases();
        loss_cases();
        norm_cases();
        row_norm_cases();
        large_norm_cases();
        position_cases();
        attention_cases();
        conv_cases();
        pool_cases();
        optimizer_cases();
        threshold_cases();
        sort_cases();
        activation_cases();
        pointwise_loss_cases();
        scan_cases();
        built = true;
    }
    return g_cases;
}

// ---- running a case ----

nb_dtype input_dtype(const Input &in, nb_dtype dtype) {
    if (in.kind == MASK) return NB_BOOL;
    if (in.kind == INDEX) return dtype == NB_I32 ? NB_I32 : NB_I64;
    return dtype;
}

Host random_input(const Input &in, const Shape &shape, const Shape &first, nb_dtype dtype,
                  std::mt19937_64 &rng) {
    Host h(shape);
    double lo = in.lo, hi = in.hi;
    bool integral = in.kind != FLOAT || !nb_dtype_is_float(dtype);
    if (in.kind == INDEX) {
        hi = (in.bound_dim >= 0 ? (double)first[in.bound_dim] : in.hi) - 1;
        lo = 0;
    }
    if (in.kind == MASK || dtype == NB_BOOL) lo = 0, hi = 1;
    if (in.kind == RAMP) {
        double last = (double)std::max<int64_t>(h.numel() - 1, 1);
        for (int64_t i = 0; i < h.numel(); i++) h.v[i] = std::round(lo + (hi - lo) * (double)i / last);
        return h;
    }
    if (dtype == NB_U8) lo = std::max(lo, 0.0);
    if (integral) lo = std::ceil(lo), hi = std::floor(hi);
    for (double &v : h.v) {
        double u = std::uniform_real_distribution<double>(0, 1)(rng);
        v = integral ? std::min(hi, lo + std::floor(u * (hi - lo + 1))) : lo + u * (hi - lo);
    }
    return h;
}

// A tensor of h's values on g_device; strided makes it a step-2 slice of a
// wider tensor.
nb_tensor *place(const Host &h, nb_dtype dtype, bool strided) {
    if (!strided || h.shape.empty()) {
        T made(make_tensor(h, dtype));
        return made.t ? nb_to(made, g_device) : nullptr;
    }
    Shape wide = h.shape;
    wide.back() *= 2;
    Host w(wide);
    for (int64_t i = 0; i < w.numel(); i++) w.v[i] = i % 2 ? 1 : h.v[i / 2];
    T made(make_tensor(w, dtype));
    T full(made.t ? nb_to(made, g_device) : nullptr);
    return full.t ? nb_slice(full, -1, 0, wide.back(), 2) : nullptr;
}

std::vector<nb_device> cuda_devices() {
    std::vector<nb_device> out;
    for (int i = 0; i < nb_cuda_device_count(); i++) out.push_back(nb_cuda(i));
    return out;
}

// Every dtype, variant and layout of case c on device, against the reference.
void run_case(const Case &c, size_t index, nb_device device) {
    g_device = device;
    for (nb_dtype dtype : c.dtypes)
        for (size_t v = 0; v < c.variants.size(); v++)
            for (bool strided : {false, true}) {
                if (strided && c.inputs.empty()) continue;
                std::string what = c.name + " " + nb_dtype_name(dtype) + " variant " +
                                   std::to_string(v) + (strided ? " strided" : "") + " on " +
                                   (device.type == NB_DEVICE_CUDA ? "cuda" : "cpu");
                std::mt19937_64 rng(index * 1000 + v * 10 + dtype);
                std::vector<T> owned;
                Tensors inputs;
                std::vector<Host> values;
                const auto &shapes = c.variants[v];
                for (size_t k = 0; k < c.inputs.size(); k++) {
                    nb_dtype d = input_dtype(c.inputs[k], dtype);
                    Host h = random_input(c.inputs[k], shapes[k], shapes[0], d, rng);
                    owned.emplace_back(place(h, d, strided));
                    ASSERT_NE(owned.back().t, nullptr) << what << ": " << nb_last_error();
                    if (strided && !shapes[k].empty() && shapes[k].back() > 1 && numel_of(shapes[k]) > 0) {
                        ASSERT_FALSE(nb_is_contiguous(owned.back()));
                    }
                    inputs.push_back(owned.back());
                    values.push_back(read_tensor(owned.back()));
                }
                g_dtype = dtype;
                T out(c.run(inputs));
                ASSERT_NE(out.t, nullptr) << what << ": " << nb_last_error();
                ASSERT_EQ(nb_device_of(out).type, device.type) << what;
                expect_close(read_tensor(out), c.ref(values), nb_dtype_of(out), c.tol_scale, what);
            }
}

class OpCase : public ::testing::TestWithParam<size_t> {};

TEST_P(OpCase, MatchesReference) { run_case(all_cases()[GetParam()], GetParam(), nb_cpu()); }

class CudaOpCase : public ::testing::TestWithParam<size_t> {};

TEST_P(CudaOpCase, MatchesReference) {
    SKIP_WITHOUT_CUDA();
    for (nb_device device : cuda_devices()) run_case(all_cases()[GetParam()], GetParam(), device);
}

class GradCase : public ::testing::TestWithParam<size_t> {};

// The inputs of a gradient check: random values of each input in f64.
std::vector<Host> grad_inputs(const Case &c, size_t v, std::mt19937_64 &rng) {
    std::vector<Host> values;
    const auto &shapes = c.variants[v];
    for (size_t k = 0; k < c.inputs.size(); k++)
        values.push_back(random_input(c.inputs[k], shapes[k], shapes[0],
                                      input_dtype(c.inputs[k], NB_F64), rng));
    return values;
}

// d/dx of sum(op(x) * r) by autograd against central differences, in f64.
TEST_P(GradCase, MatchesFiniteDifferences) {
    const Case &c = all_cases()[GetParam()];
    for (size_t v = 0; v < c.variants.size(); v++)
        for (bool strided : {false, true}) {
            std::string what = c.name + " variant " + std::to_string(v) + (strided ? " strided" : "");
            std::mt19937_64 rng(GetParam() * 77 + v);
            std::vector<Host> values = grad_inputs(c, v, rng);
            g_device = nb_cpu();
            auto build = [&](std::vector<T> &owned, Tensors &inputs, bool track) {
                owned.clear();
                inputs.clear();
                for (size_t k = 0; k < c.inputs.size(); k++) {
                    owned.emplace_back(place(values[k], input_dtype(c.inputs[k], NB_F64), strided));
                    if (track && c.inputs[k].kind == FLOAT) {
                        // a leaf: strided views are not leaves, so detach first
                        T leaf(nb_detach(owned.back()));
                        owned.back() = std::move(leaf);
                        EXPECT_EQ(nb_set_requires_grad(owned.back(), true), NB_OK);
                    }
                    inputs.push_back(owned.back());
                }
            };
            std::vector<T> owned;
            Tensors inputs;
            build(owned, inputs, true);
            g_dtype = NB_F64;
            T out(c.run(inputs));
            ASSERT_NE(out.t, nullptr) << what << ": " << nb_last_error();
            Host out_values = read_tensor(out);
            Host weights(out_values.shape);
            for (double &w : weights.v) w = std::uniform_real_distribution<double>(-1, 1)(rng);
            T weight_tensor(make_tensor(weights, NB_F64));
            ASSERT_EQ(nb_backward(out, weight_tensor, false), NB_OK) << what << ": " << nb_last_error();
            auto objective = [&]() {
                std::vector<T> o;
                Tensors in;
                build(o, in, false);
                T y(c.run(in));
                Host yv = read_tensor(y);
                double s = 0;
                for (int64_t i = 0; i < yv.numel(); i++) s += yv.v[i] * weights.v[i];
                return s;
            };
            for (size_t k = 0; k < c.inputs.size(); k++) {
                if (c.inputs[k].kind != FLOAT) continue;
                T grad(nb_grad(owned[k]));
                ASSERT_NE(grad.t, nullptr) << what << ": no gradient for input " << k;
                Host analytic = read_tensor(grad);
                ASSERT_EQ(shape_str(analytic.shape), shape_str(values[k].shape)) << what;
                const double eps = 1e-6;
                for (int64_t i = 0; i < values[k].numel(); i++) {
                    double saved = values[k].v[i];
                    values[k].v[i] = saved + eps;
                    double up = objective();
                    values[k].v[i] = saved - eps;
                    double down = objective();
                    values[k].v[i] = saved;
                    double numeric = (up - down) / (2 * eps);
                    if (std::isnan(numeric)) { // e.g. var over one element
                        EXPECT_TRUE(std::isnan(analytic.v[i])) << what << ": element " << i;
                        continue;
                    }
                    EXPECT_NEAR(analytic.v[i], numeric, 1e-6 + 1e-5 * std::fabs(numeric))
                        << what << ": input " << k << " element " << i;
                }
            }
        }
}

// The gradients autograd gives each float input of case c on device for the
// objective sum(op(x) * weights), in f64.
std::vector<Host> autograd_grads(const Case &c, const std::vector<Host> &values,
                                 const std::vector<double> &weights, nb_device device,
                                 bool strided, const std::string &what) {
    g_device = device;
    g_dtype = NB_F64;
    std::vector<T> owned;
    Tensors inputs;
    for (size_t k = 0; k < c.inputs.size(); k++) {
        owned.emplace_back(place(values[k], input_dtype(c.inputs[k], NB_F64), strided));
        if (c.inputs[k].kind == FLOAT) {
            T leaf(nb_detach(owned.back()));
            owned.back() = std::move(leaf);
            EXPECT_EQ(nb_set_requires_grad(owned.back(), true), NB_OK) << what;
        }
        inputs.push_back(owned.back());
    }
    T out(c.run(inputs));
    EXPECT_NE(out.t, nullptr) << what << ": " << nb_last_error();
    std::vector<Host> grads(c.inputs.size());
    if (!out.t) return grads;
    Host w(Shape(nb_shape(out), nb_shape(out) + nb_ndim(out)), weights);
    T host_weights(make_tensor(w, NB_F64));
    T weight_tensor(nb_to(host_weights, device));
    EXPECT_EQ(nb_backward(out, weight_tensor, false), NB_OK) << what << ": " << nb_last_error();
    for (size_t k = 0; k < c.inputs.size(); k++) {
        if (c.inputs[k].kind != FLOAT) continue;
        T grad(nb_grad(owned[k]));
        EXPECT_NE(grad.t, nullptr) << what << ": no gradient for input " << k;
        if (grad.t) {
            EXPECT_EQ(nb_device_of(grad).type, device.type) << what;
            grads[k] = read_tensor(grad);
        }
    }
    return grads;
}

class CudaGradCase : public ::testing::TestWithParam<size_t> {};

// Gradients computed on CUDA against those computed on the CPU (which
// GradCase checks against finite differences).
TEST_P(CudaGradCase, MatchesCpuGradients) {
    SKIP_WITHOUT_CUDA();
    const Case &c = all_cases()[GetParam()];
    for (nb_device device : cuda_devices())
        for (size_t v = 0; v < c.variants.size(); v++)
            for (bool strided : {false, true}) {
                std::string what = c.name + " variant " + std::to_string(v) +
                                   (strided ? " strided" : "") + " on cuda";
                std::mt19937_64 rng(GetParam() * 77 + v);
                std::vector<Host> values = grad_inputs(c, v, rng);
                g_device = nb_cpu();
                g_dtype = NB_F64;
                std::vector<T> probe_inputs;
                Tensors probe;
                for (size_t k = 0; k < c.inputs.size(); k++) {
                    probe_inputs.emplace_back(place(values[k], input_dtype(c.inputs[k], NB_F64), false));
                    probe.push_back(probe_inputs.back());
                }
                T shape_probe(c.run(probe));
                ASSERT_NE(shape_probe.t, nullptr) << what << ": " << nb_last_error();
                std::vector<double> weights(nb_numel(shape_probe));
                for (double &w : weights) w = std::uniform_real_distribution<double>(-1, 1)(rng);
                auto on_cpu = autograd_grads(c, values, weights, nb_cpu(), strided, what);
                auto on_cuda = autograd_grads(c, values, weights, device, strided, what);
                for (size_t k = 0; k < c.inputs.size(); k++)
                    if (c.inputs[k].kind == FLOAT)
                        expect_close(on_cuda[k], on_cpu[k], NB_F64, 1000, what + " input " + std::to_string(k));
            }
}

std::string case_name(const ::testing::TestParamInfo<size_t> &info) {
    std::string name = std::to_string(info.param) + "_" + all_cases()[info.param].name;
    for (char &ch : name)
        if (!isalnum((unsigned char)ch)) ch = '_';
    return name;
}

std::vector<size_t> gradient_checked() {
    std::vector<size_t> out;
    for (size_t i = 0; i < all_cases().size(); i++)
        if (all_cases()[i].grad) out.push_back(i);
    return out;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpCase, ::testing::Range<size_t>(0, all_cases().size()), case_name);
INSTANTIATE_TEST_SUITE_P(AllOps, CudaOpCase, ::testing::Range<size_t>(0, all_cases().size()), case_name);
INSTANTIATE_TEST_SUITE_P(Differentiable, GradCase, ::testing::ValuesIn(gradient_checked()), case_name);
INSTANTIATE_TEST_SUITE_P(Differentiable, CudaGradCase, ::testing::ValuesIn(gradient_checked()),
                         case_name);

TEST(OpHarness, EveryOpHasCasesAndEveryDifferentiableOpIsGradientChecked) {
    std::map<int, int> cases, graded;
    for (const Case &c : all_cases()) {
        cases[c.op]++;
        if (c.grad) graded[c.op]++;
    }
    int differentiable = 0;
    for (int op = 0; op < NB_OP_COUNT; op++) {
        EXPECT_GT(cases[op], 0) << "op " << nb_op_name((nb_op)op) << " has no harness cases";
        if (nb_op_is_differentiable((nb_op)op)) {
            differentiable++;
            EXPECT_GT(graded[op], 0) << "op " << nb_op_name((nb_op)op) << " has no gradient check";
        }
    }
    printf("[ harness  ] %d ops in the list, %zu with cases, %d differentiable and gradient-checked, "
           "%zu cases\n", (int)NB_OP_COUNT, cases.size(), differentiable, all_cases().size());
}

} // namespace
