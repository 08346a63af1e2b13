// The op harness: one table of cases per op in src/core/oplist.h, each run on
// every backend present and every dtype it lists, with contiguous and strided
// inputs, against a reference computed here in double; plus a float64
// finite-difference check of every differentiable op's gradient, and a
// coverage test that fails for an op without cases.
#include <array>
#include <algorithm>
#include <map>
#include <numeric>

#include "harness.h"

#include "../src/core/oplist.h"

namespace {

enum Kind { FLOAT, INTEGRAL, INDEX, MASK, RAMP };

struct Input {
    Kind kind;
    double lo, hi;      // FLOAT: uniform in [lo, hi]; INTEGRAL: integers in [lo, hi];
                        // RAMP: lo to hi in order, rounded to integers (the extreme at an end)
    int bound_dim = -1; // INDEX: integers in [0, size of this dim of input 0) when >= 0, else [lo, hi)
};

using Tensors = std::vector<nb_tensor *>;
using Run = std::function<nb_tensor *(const Tensors &)>;
using Ref = std::function<Host(const std::vector<Host> &)>;

struct Case {
    nb_op op;
    std::string name;
    std::vector<Input> inputs;
    std::vector<std::vector<Shape>> variants; // input shapes, one list per variant
    std::vector<nb_dtype> dtypes;
    Run run;
    Ref ref;
    bool grad;
    double tol_scale = 1;
};

const std::vector<nb_dtype> FLOATS = {NB_F32, NB_F64, NB_F16, NB_BF16};
const std::vector<nb_dtype> SIGNED = {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64};
const std::vector<nb_dtype> NUMERIC = {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64, NB_U8};
const std::vector<nb_dtype> ALL = {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64, NB_U8, NB_BOOL};

// ---- references ----

Host map1(const Host &a, const std::function<double(double)> &f) {
    Host out(a.shape);
    for (int64_t i = 0; i < a.numel(); i++) out.v[i] = f(a.v[i]);
    return out;
}

Host map_n(const std::vector<Host> &in, const std::function<double(const std::vector<double> &)> &f) {
    Shape shape;
    for (const Host &h : in) shape = broadcast_shape(shape, h.shape);
    Host out(shape);
    std::vector<double> args(in.size());
    for (int64_t i = 0; i < out.numel(); i++) {
        auto idx = out.unravel(i);
        for (size_t k = 0; k < in.size(); k++) args[k] = in[k].broadcast_at(idx);
        out.v[i] = f(args);
    }
    return out;
}

// Reduces over dims (all when empty), folding each output's values in
// row-major order over the reduced dims.
Host reduce_ref(const Host &x, std::vector<int> dims, bool keepdim,
                const std::function<double(const std::vector<double> &)> &fold) {
    int nd = (int)x.shape.size();
    std::vector<bool> reduced(nd, dims.empty());
    for (int d : dims) reduced[(d + nd) % nd] = true;
    Shape keep, out_shape;
    for (int d = 0; d < nd; d++) {
        keep.push_back(reduced[d] ? 1 : x.shape[d]);
        if (!reduced[d] || keepdim) out_shape.push_back(keep.back());
    }
    Host kept(keep);
    std::vector<std::vector<double>> groups(kept.numel());
    for (int64_t i = 0; i < x.numel(); i++) {
        auto idx = x.unravel(i);
        for (int d = 0; d < nd; d++)
            if (reduced[d]) idx[d] = 0;
        groups[kept.ravel(idx)].push_back(x.v[i]);
    }
    Host out(out_shape);
    for (size_t g = 0; g < groups.size(); g++) out.v[g] = fold(groups[g]);
    return out;
}

double fold_sum(const std::vector<double> &v) { return std::accumulate(v.begin(), v.end(), 0.0); }
double fold_mean(const std::vector<double> &v) { return fold_sum(v) / v.size(); }
double fold_var(const std::vector<double> &v, double correction) {
    double m = fold_mean(v), s = 0;
    for (double a : v) s += (a - m) * (a - m);
    return s / (v.size() - correction);
}

Host permute_ref(const Host &x, const std::vector<int> &perm) {
    Shape shape;
    for (int p : perm) shape.push_back(x.shape[p]);
    Host out(shape);
    for (int64_t i = 0; i < out.numel(); i++) {
        auto idx = out.unravel(i);
        std::vector<int64_t> src(idx.size());
        for (size_t d = 0; d < perm.size(); d++) src[perm[d]] = idx[d];
        out.v[i] = x.at(src);
    }
    return out;
}

Host slice_ref(const Host &x, int dim, int64_t start, int64_t end, int64_t step) {
    Shape shape = x.shape;
    shape[dim] = (end - start + step - 1) / step;
    Host out(shape);
    for (int64_t i = 0; i < out.numel(); i++) {
        auto idx = out.unravel(i);
        idx[dim] = start + idx[dim] * step;
        out.v[i] = x.at(idx);
    }
    return out;
}

Host cat_ref(const std::vector<Host> &parts, int dim) {
    Shape shape = parts[0].shape;
    shape[dim] = 0;
    for (const Host &p : parts) shape[dim] += p.shape[dim];
    Host out(shape);
    for (int64_t i = 0; i < out.numel(); i++) {
        auto idx = out.unravel(i);
        size_t k = 0;
        while (idx[dim] >= parts[k].shape[dim]) idx[dim] -= parts[k++].shape[dim];
        out.v[i] = parts[k].at(idx);
    }
    return out;
}

Host reshaped(Host h, Shape shape) {
    h.shape = std::move(shape);
    return h;
}

Host matmul_ref(const Host &a0, const Host &b0) {
    Host a = a0, b = b0;
    bool row = a.shape.size() == 1, col = b.shape.size() == 1;
    if (row) a.shape.insert(a.shape.begin(), 1);
    if (col) b.shape.push_back(1);
    Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
    Shape batch = broadcast_shape(ba, bb);
    int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back(), n = b.shape.back();
    Shape out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    Host out(out_shape);
    for (int64_t i = 0; i < out.numel(); i++) {
        auto idx = out.unravel(i);
        auto ia = idx, ib = idx;
        double s = 0;
        for (int64_t p = 0; p < k; p++) {
            ia[idx.size() - 1] = p;
            ib[idx.size() - 2] = p;
            s += a.broadcast_at(ia) * b.broadcast_at(ib);
        }
        out.v[i] = s;
    }
    Shape final_shape = batch;
    if (!row) final_shape.push_back(m);
    if (!col) final_shape.push_back(n);
    return reshaped(out, final_shape);
}

Host softmax_ref(const Host &x, int dim, bool log_space) {
    Host out(x.shape);
    int nd = (int)x.shape.size();
    dim = (dim + nd) % nd;
    for (int64_t i = 0; i < x.numel(); i++) {
        auto idx = x.unravel(i);
        double mx = -INFINITY, s = 0;
        auto j = idx;
        for (j[dim] = 0; j[dim] < x.shape[dim]; j[dim]++) mx = std::max(mx, x.at(j));
        for (j[dim] = 0; j[dim] < x.shape[dim]; j[dim]++) s += std::exp(x.at(j) - mx);
        out.v[i] = log_space ? x.v[i] - mx - std::log(s) : std::exp(x.v[i] - mx) / s;
    }
    return out;
}

// ---- case builders ----

std::vector<Case> g_cases;

void add(Case c) { g_cases.push_back(std::move(c)); }

using Unary = nb_tensor *(*)(const nb_tensor *);
using Binary = nb_tensor *(*)(const nb_tensor *, const nb_tensor *);

const std::vector<std::vector<Shape>> UNARY_SHAPES = {{{}}, {{1}}, {{7}}, {{3, 5}}, {{2, 1, 4}}};
const std::vector<std::vector<Shape>> BINARY_SHAPES = {
    {{3, 5}, {3, 5}}, {{3, 1}, {1, 5}}, {{}, {4}}, {{2, 3, 4}, {4}}, {{1}, {1}}, {{2, 1, 3}, {4, 1}}};

void unary(nb_op op, Unary fn, std::function<double(double)> f, Input in,
           std::vector<nb_dtype> dtypes, bool grad) {
    add({op, nb_op_name(op), {in}, UNARY_SHAPES, dtypes,
         [fn](const Tensors &t) { return fn(t[0]); },
         [f](const std::vector<Host> &h) { return map1(h[0], f); }, grad});
}

void binary(nb_op op, Binary fn, std::function<double(double, double)> f, Input a, Input b,
            std::vector<nb_dtype> dtypes, bool grad) {
    add({op, nb_op_name(op), {a, b}, BINARY_SHAPES, dtypes,
         [fn](const Tensors &t) { return fn(t[0], t[1]); },
         [f](const std::vector<Host> &h) {
             return map_n(h, [f](const std::vector<double> &v) { return f(v[0], v[1]); });
         },
         grad});
}

using Reducer = std::function<nb_tensor *(const nb_tensor *, int, const int *, bool)>;

void reduction(nb_op op, Reducer fn, std::function<double(const std::vector<double> &)> fold,
               Input in, std::vector<nb_dtype> dtypes, bool grad, const std::string &tag = "") {
    struct Config {
        Shape shape;
        std::vector<int> dims;
        bool keepdim;
    };
    const std::vector<Config> configs = {{{3, 4, 5}, {1}, false}, {{3, 4, 5}, {0, 2}, true},
                                         {{2, 3}, {}, false},     {{7}, {-1}, false},
                                         {{1, 4}, {0}, false},    {{2, 3, 1}, {2}, true}};
    for (const Config &c : configs) {
        std::string name = std::string(nb_op_name(op)) + tag + "_" + shape_str(c.shape) + "_dims";
        for (int d : c.dims) name += std::to_string(d);
        if (c.keepdim) name += "_keep";
        add({op, name, {in}, {{c.shape}}, dtypes,
             [fn, c](const Tensors &t) {
                 return fn(t[0], (int)c.dims.size(), c.dims.data(), c.keepdim);
             },
             [fold, c](const std::vector<Host> &h) { return reduce_ref(h[0], c.dims, c.keepdim, fold); },
             grad});
    }
}

Input F(double lo, double hi) { return {FLOAT, lo, hi}; }
Input I(double lo, double hi) { return {INTEGRAL, lo, hi}; }
Input IDX(int bound_dim, double hi = 0) { return {INDEX, 0, hi, bound_dim}; }
Input RAMP_(double from, double to) { return {RAMP, from, to}; }
const Input M = {MASK, 0, 1};

double philox_uniform(uint64_t seed, int64_t i, double lo, double hi) {
    auto w = PhiloxRef::block(seed, (uint64_t)i);
    return lo + (hi - lo) * PhiloxRef::unit(w[0], w[1]);
}

nb_dtype g_dtype;   // the dtype a zero-input case creates
nb_device g_device; // the device cases run on

void zero_input_cases() {
    g_cases.clear();
    add({NB_OP_FILL, "full", {}, {{}}, ALL,
         [](const Tensors &) { return nb_full(2, Shape{3, 4}.data(), 2.5, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({3, 4}, std::vector<double>(12, 2.5)); }, false});
    add({NB_OP_FILL, "full_dense_tail", {}, {{}}, ALL,
         [](const Tensors &) { return nb_full(1, Shape{1003}.data(), 3, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({1003}, std::vector<double>(1003, 3)); }, false});
    add({NB_OP_FILL, "full_rounded", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_full(2, Shape{5, 7}.data(), 0.1, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({5, 7}, std::vector<double>(35, 0.1)); }, false});
    add({NB_OP_FILL, "zeros_ones", {}, {{}}, ALL,
         [](const Tensors &) {
             T z(nb_zeros(1, Shape{3}.data(), g_dtype, g_device));
             T o(nb_ones(1, Shape{2}.data(), g_dtype, g_device));
             const nb_tensor *both[2] = {z, o};
             return nb_cat(2, both, 0);
         },
         [](const std::vector<Host> &) { return Host({5}, {0, 0, 0, 1, 1}); }, false});
    add({NB_OP_ARANGE, "arange_half_steps", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_arange(-1, 3.5, 0.5, g_dtype, g_device); },
         [](const std::vector<Host> &) {
             Host h({9});
             for (int i = 0; i < 9; i++) h.v[i] = -1 + 0.5 * i;
             return h;
         },
         false});
    add({NB_OP_ARANGE, "arange_down", {}, {{}}, SIGNED,
         [](const Tensors &) { return nb_arange(7, -3, -2, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({5}, {7, 5, 3, 1, -1}); }, false});
    add({NB_OP_LINSPACE, "linspace", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_linspace(-1, 2, 7, g_dtype, g_device); },
         [](const std::vector<Host> &) {
             Host h({7});
             for (int i = 0; i < 7; i++) h.v[i] = -1 + 3.0 * i / 6;
             return h;
         },
         false});
    for (auto nm : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {4, 2}, {1, 1}})
        add({NB_OP_EYE, "eye_" + std::to_string(nm.first) + "x" + std::to_string(nm.second), {},
             {{}}, ALL, [nm](const Tensors &) { return nb_eye(nm.first, nm.second, g_dtype, g_device); },
             [nm](const std::vector<Host> &) {
                 Host h({nm.first, nm.second});
                 for (int64_t i = 0; i < std::min(nm.first, nm.second); i++) h.v[i * nm.second + i] = 1;
                 return h;
             },
             false});
    const uint64_t seed = 0x1234abcd5678ull;
    auto with_gen = [seed](std::function<nb_tensor *(nb_generator *)> f) {
        return [seed, f](const Tensors &) {
            nb_generator *g = nb_generator_create(seed);
            nb_tensor *t = f(g);
            nb_generator_free(g);
            return t;
        };
    };
    add({NB_OP_UNIFORM, "uniform", {}, {{}}, FLOATS,
         with_gen([](nb_generator *g) { return nb_uniform(2, Shape{3, 5}.data(), -2, 3, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({3, 5});
             for (int i = 0; i < 15; i++) h.v[i] = philox_uniform(seed, i, -2, 3);
             return h;
         },
         false});
    add({NB_OP_NORMAL, "normal", {}, {{}}, FLOATS,
         with_gen([](nb_generator *g) { return nb_normal(2, Shape{4, 3}.data(), 1, 2, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({4, 3});
             for (int i = 0; i < 12; i++) {
                 auto w = PhiloxRef::block(seed, (uint64_t)i);
                 double u1 = 1 - PhiloxRef::unit(w[0], w[1]), u2 = PhiloxRef::unit(w[2], w[3]);
                 h.v[i] = 1 + 2 * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
             }
             return h;
         },
         false, 2});
    add({NB_OP_BERNOULLI, "bernoulli", {}, {{}}, ALL,
         with_gen([](nb_generator *g) { return nb_bernoulli(2, Shape{5, 6}.data(), 0.3, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({5, 6});
             for (int i = 0; i < 30; i++) h.v[i] = philox_uniform(seed, i, 0, 1) < 0.3;
             return h;
         },
         false});
    add({NB_OP_RANDINT, "randint", {}, {{}}, {NB_I32, NB_I64, NB_F32, NB_F64},
         with_gen([](nb_generator *g) { return nb_randint(-3, 9, 2, Shape{4, 4}.data(), g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({4, 4});
             for (int i = 0; i < 16; i++) {
                 auto w = PhiloxRef::block(seed, (uint64_t)i);
                 h.v[i] = -3 + (double)((((uint64_t)w[0] << 32) | w[1]) % 12);
             }
             return h;
         },
         false});
    add({NB_OP_RANDPERM, "randperm", {}, {{}}, {NB_I64, NB_I32, NB_F32},
         with_gen([](nb_generator *g) { return nb_randperm(10, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             std::vector<std::pair<uint64_t, int>> keyed;
             for (int i = 0; i < 10; i++) {
                 auto w = PhiloxRef::block(seed, (uint64_t)i);
                 keyed.push_back({((uint64_t)w[0] << 32) | w[1], i});
             }
             std::sort(keyed.begin(), keyed.end());
             Host h({10});
             for (int i = 0; i < 10; i++) h.v[i] = keyed[i].second;
             return h;
         },
         false});
}

void elementwise_cases() {
    unary(NB_OP_NEG, nb_neg, [](double a) { return -a; }, F(-3, 3), NUMERIC, true);
    unary(NB_OP_ABS, nb_abs, [](double a) { return std::fabs(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_EXP, nb_exp, [](double a) { return std::exp(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_LOG, nb_log, [](double a) { return std::log(a); }, F(0.1, 4), FLOATS, true);
    unary(NB_OP_LOG1P, nb_log1p, [](double a) { return std::log1p(a); }, F(-0.5, 3), FLOATS, true);
    unary(NB_OP_SQRT, nb_sqrt, [](double a) { return std::sqrt(a); }, F(0.1, 4), FLOATS, true);
    unary(NB_OP_RSQRT, nb_rsqrt, [](double a) { return 1 / std::sqrt(a); }, F(0.1, 4), FLOATS, true);
    unary(NB_OP_SIN, nb_sin, [](double a) { return std::sin(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_COS, nb_cos, [](double a) { return std::cos(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_TANH, nb_tanh, [](double a) { return std::tanh(a); }, F(-3, 3), FLOATS, true);
    unary(NB_OP_SIGMOID, nb_sigmoid, [](double a) { return 1 / (1 + std::exp(-a)); }, F(-5, 5),
          FLOATS, true);
    unary(NB_OP_RELU, nb_relu, [](double a) { return a > 0 ? a : 0; }, F(-2, 2), SIGNED, true);
    unary(NB_OP_RELU6, nb_relu6, [](double a) { return std::min(std::max(a, 0.0), 6.0); }, F(-3, 9),
          FLOATS, true);
    add({NB_OP_LEAKY_RELU, "leaky_relu", {F(-3, 3)}, UNARY_SHAPES, FLOATS,
         [](const Tensors &t) { return nb_leaky_relu(t[0], 0.1); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return a > 0 ? a : 0.1 * a; }); },
         true});
    unary(NB_OP_SILU, nb_silu, [](double a) { return a / (1 + std::exp(-a)); }, F(-5, 5), FLOATS, true);
    unary(NB_OP_HARDSIGMOID, nb_hardsigmoid,
          [](double a) { return std::min(std::max(a + 3, 0.0), 6.0) / 6; }, F(-5, 5), FLOATS, true);
    unary(NB_OP_HARDSWISH, nb_hardswish,
          [](double a) { return a * std::min(std::max(a + 3, 0.0), 6.0) / 6; }, F(-5, 5), FLOATS, true);
    // gelu's gradient runs the gelu_backward kernel; its own case checks it directly
    for (bool tanh_form : {false, true}) {
        auto gelu = [tanh_form](double a) {
            return tanh_form ? 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)))
                             : 0.5 * a * std::erfc(-a / std::sqrt(2.0));
        };
        add({NB_OP_GELU, tanh_form ? "gelu_tanh" : "gelu", {F(-4, 4)}, UNARY_SHAPES, FLOATS,
             [tanh_form](const Tensors &t) { return nb_gelu(t[0], tanh_form); },
             [gelu](const std::vector<Host> &h) { return map1(h[0], gelu); }, true});
        // d sum(gelu(x)) / dx against the derivative written out in float64
        auto slope = [tanh_form](double a) {
            if (!tanh_form) return 0.5 * std::erfc(-a / std::sqrt(2.0)) + a * std::exp(-a * a / 2) / std::sqrt(2 * M_PI);
            double k = std::sqrt(2 / M_PI), u = k * (a + 0.044715 * a * a * a), t = std::tanh(u);
            return 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a);
        };
        add({NB_OP_GELU_BACKWARD, tanh_form ? "gelu_tanh_backward" : "gelu_backward", {F(-4, 4)},
             UNARY_SHAPES, FLOATS,
             [tanh_form](const Tensors &t) -> nb_tensor * {
                 T leaf(nb_detach(t[0]));
                 if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(nb_gelu(leaf, tanh_form));
                 T total(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
                 if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
                 return nb_grad(leaf);
             },
             [slope](const std::vector<Host> &h) { return map1(h[0], slope); },
             false});
    }
    // integral inputs put zeros in; continuous ones keep the gradient check off the jump
    unary(NB_OP_SIGN, nb_sign, [](double a) { return (double)((a > 0) - (a < 0)); }, I(-2, 2),
          SIGNED, false);
    unary(NB_OP_SIGN, nb_sign, [](double a) { return (double)((a > 0) - (a < 0)); }, F(-2, 2),
          SIGNED, true);
    unary(NB_OP_FLOOR, nb_floor, [](double a) { return std::floor(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_CEIL, nb_ceil, [](double a) { return std::ceil(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_ROUND, nb_round, [](double a) { return std::nearbyint(a); }, F(-3, 3), SIGNED, true);
    unary(NB_OP_LOGICAL_NOT, nb_logical_not, [](double a) { return (double)(a == 0); }, I(-1, 1),
          ALL, false);
    add({NB_OP_CLAMP, "clamp", {F(-2, 2)}, UNARY_SHAPES, SIGNED,
         [](const Tensors &t) { return nb_clamp(t[0], -0.5, 1.25); },
         [](const std::vector<Host> &h) {
             return map1(h[0], [](double a) { return std::min(std::max(a, -0.5), 1.25); });
         },
         true});
    add({NB_OP_CLAMP, "clamp_upper_only", {F(-2, 2)}, UNARY_SHAPES, NUMERIC,
         [](const Tensors &t) { return nb_clamp(t[0], -INFINITY, 1); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return std::min(a, 1.0); }); },
         true});

    binary(NB_OP_ADD, nb_add, [](double a, double b) { return a + b; }, F(-3, 3), F(-3, 3), ALL, true);
    binary(NB_OP_SUB, nb_sub, [](double a, double b) { return a - b; }, F(-3, 3), F(-3, 3), NUMERIC, true);
    binary(NB_OP_MUL, nb_mul, [](double a, double b) { return a * b; }, F(-3, 3), F(-3, 3), ALL, true);
    binary(NB_OP_DIV, nb_div, [](double a, double b) { return a / b; }, F(-3, 3), F(0.5, 2), NUMERIC, true);
    binary(NB_OP_POW, nb_pow, [](double a, double b) { return std::pow(a, b); }, F(0.5, 2), F(-2, 2),
           SIGNED, true);
    binary(NB_OP_MAXIMUM, nb_maximum, [](double a, double b) { return std::max(a, b); }, F(-2, 2),
           F(-2, 2), ALL, true);
    binary(NB_OP_MINIMUM, nb_minimum, [](double a, double b) { return std::min(a, b); }, F(-2, 2),
           F(-2, 2), ALL, true);
    binary(NB_OP_EQ, nb_eq, [](double a, double b) { return (double)(a == b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_NE, nb_ne, [](double a, double b) { return (double)(a != b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_LT, nb_lt, [](double a, double b) { return (double)(a < b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_LE, nb_le, [](double a, double b) { return (double)(a <= b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_GT, nb_gt, [](double a, double b) { return (double)(a > b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_GE, nb_ge, [](double a, double b) { return (double)(a >= b); }, I(-2, 2), I(-2, 2), ALL, false);
    binary(NB_OP_LOGICAL_AND, nb_logical_and, [](double a, double b) { return (double)(a && b); },
           I(-1, 1), I(-1, 1), ALL, false);
    binary(NB_OP_LOGICAL_OR, nb_logical_or, [](double a, double b) { return (double)(a || b); },
           I(-1, 1), I(-1, 1), ALL, false);
    binary(NB_OP_LOGICAL_XOR, nb_logical_xor, [](double a, double b) { return (double)(!a != !b); },
           I(-1, 1), I(-1, 1), ALL, false);

    add({NB_OP_WHERE, "where", {M, F(-3, 3), F(-3, 3)},
         {{{3, 4}, {3, 4}, {3, 4}}, {{3, 1}, {1, 4}, {}}, {{5}, {2, 5}, {5}}}, ALL,
         [](const Tensors &t) { return nb_where(t[0], t[1], t[2]); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[0] != 0 ? v[1] : v[2]; });
         },
         true});
    add({NB_OP_MASKED_FILL, "masked_fill", {F(-3, 3), M}, {{{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{2, 3}, {}}},
         ALL, [](const Tensors &t) { return nb_masked_fill(t[0], t[1], 2.5); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[1] != 0 ? 2.5 : v[0]; });
         },
         true});
    add({NB_OP_COPY, "clone", {F(-3, 3)}, UNARY_SHAPES, ALL, [](const Tensors &t) { return nb_clone(t[0]); },
         [](const std::vector<Host> &h) { return h[0]; }, true});
    add({NB_OP_COPY, "contiguous", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) { return nb_contiguous(t[0]); },
         [](const std::vector<Host> &h) { return h[0]; }, true});
    add({NB_OP_COPY, "cast_to_i32", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) { return nb_cast(t[0], NB_I32); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return std::trunc(a); }); },
         false});
    add({NB_OP_COPY, "cast_to_f64", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) { return nb_cast(t[0], NB_F64); },
         [](const std::vector<Host> &h) { return h[0]; }, true});
    // the GPU's dense casts, 8 values a thread: whole packs and a tail
    for (nb_dtype to : {NB_F32, NB_F16, NB_BF16, NB_F64})
        add({NB_OP_COPY, std::string("cast_dense_to_") + nb_dtype_name(to), {F(-3, 3)}, {{{1003}}, {{4, 64}}}, ALL,
             [to](const Tensors &t) { return nb_cast(t[0], to); },
             [](const std::vector<Host> &h) { return h[0]; }, false});
    // to the other device (a CUDA tensor to the CPU, a CPU one to cuda:0 if
    // there is one) and back, so the gradient crosses devices twice
    add({NB_OP_TO, "to_and_back", {F(-3, 3)}, UNARY_SHAPES, ALL,
         [](const Tensors &t) {
             nb_device here = nb_device_of(t[0]);
             nb_device there = here.type == NB_DEVICE_CUDA ? nb_cpu()
                               : nb_cuda_device_count() > 0 ? nb_cuda(0) : nb_cpu();
             T moved(nb_to(t[0], there));
             return moved.t ? nb_to(moved, here) : nullptr;
         },
         [](const std::vector<Host> &h) { return h[0]; }, true});
}

void reduction_cases() {
    auto var = [](double c) { return [c](const std::vector<double> &v) { return fold_var(v, c); }; };
    reduction(NB_OP_SUM, nb_sum, fold_sum, F(-2, 2), ALL, true);
    reduction(NB_OP_MEAN, nb_mean, fold_mean, F(-2, 2), FLOATS, true);
    reduction(NB_OP_PROD, nb_prod, [](const std::vector<double> &v) {
        return std::accumulate(v.begin(), v.end(), 1.0, std::multiplies<double>()); }, F(-1.5, 1.5),
        ALL, true);
    reduction(NB_OP_MAX, nb_max, [](const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); },
              F(-3, 3), ALL, true);
    reduction(NB_OP_MIN, nb_min, [](const std::vector<double> &v) { return *std::min_element(v.begin(), v.end()); },
              F(-3, 3), ALL, true);
    reduction(NB_OP_ARGMAX, nb_argmax, [](const std::vector<double> &v) {
        return (double)(std::max_element(v.begin(), v.end()) - v.begin()); }, F(-3, 3), ALL, false);
    reduction(NB_OP_ARGMIN, nb_argmin, [](const std::vector<double> &v) {
        return (double)(std::min_element(v.begin(), v.end()) - v.begin()); }, F(-3, 3), ALL, false);
    reduction(NB_OP_VAR, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_var(x, n, d, 1, k); },
              var(1), F(-2, 2), FLOATS, true);
    reduction(NB_OP_VAR, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_var(x, n, d, 0, k); },
              var(0), F(-2, 2), FLOATS, true, "_population");
    reduction(NB_OP_STD, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_std(x, n, d, 1, k); },
              [](const std::vector<double> &v) { return std::sqrt(fold_var(v, 1)); }, F(-2, 2), FLOATS, true);
    reduction(NB_OP_LOGSUMEXP, nb_logsumexp, [](const std::vector<double> &v) {
        double s = 0;
        for (double a : v) s += std::exp(a);
        return std::log(s); }, F(-3, 3), FLOATS, true);
    for (double p : {2.0, 1.0, 3.0, (double)INFINITY})
        reduction(NB_OP_NORM, [p](const nb_tensor *x, int n, const int *d, bool k) { return nb_norm(x, p, n, d, k); },
                  [p](const std::vector<double> &v) {
                      double s = 0;
                      for (double a : v) s = std::isinf(p) ? std::max(s, std::fabs(a)) : s + std::pow(std::fabs(a), p);
                      return std::isinf(p) ? s : std::pow(s, 1 / p);
                  },
                  F(-2, 2), FLOATS, true, "_p" + std::to_string((int)std::min(p, 99.0)));
}

Host linear_ref(const Host &x, const Host &w, const Host *b) {
    int64_t in = w.shape[1], out = w.shape[0], rows = x.numel() / in;
    Shape shape = x.shape;
    shape.back() = out;
    Host y(shape);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? b->v[o] : 0;
            for (int64_t i = 0; i < in; i++) acc += x.v[r * in + i] * w.v[o * in + i];
            y.v[r * out + o] = acc;
        }
    return y;
}

void linear_algebra_cases() {
    add({NB_OP_LINEAR, "linear", {F(-1, 1), F(-1, 1), F(-1, 1)},
         {{{3, 4}, {5, 4}, {5}}, {{2, 3, 4}, {5, 4}, {5}}, {{4}, {2, 4}, {2}}, {{0, 3}, {2, 3}, {2}}},
         FLOATS, [](const Tensors &t) { return nb_linear(t[0], t[1], t[2]); },
         [](const std::vector<Host> &h) { return linear_ref(h[0], h[1], &h[2]); }, true, 3});
    add({NB_OP_LINEAR, "linear_no_bias", {F(-1, 1), F(-1, 1)}, {{{3, 4}, {5, 4}}, {{2, 1, 4}, {3, 4}}},
         FLOATS, [](const Tensors &t) { return nb_linear(t[0], t[1], nullptr); },
         [](const std::vector<Host> &h) { return linear_ref(h[0], h[1], nullptr); }, true, 3});
    add({NB_OP_MATMUL, "matmul", {F(-1, 1), F(-1, 1)},
         {{{3, 4}, {4, 5}}, {{4}, {4, 5}}, {{3, 4}, {4}}, {{4}, {4}}, {{2, 3, 4}, {4, 5}},
          {{2, 1, 3, 4}, {3, 4, 2}}, {{1, 3}, {3, 1}}, {{3, 0}, {0, 2}}},
         FLOATS, [](const Tensors &t) { return nb_matmul(t[0], t[1]); },
         [](const std::vector<Host> &h) { return matmul_ref(h[0], h[1]); }, true, 3});
    add({NB_OP_MATMUL, "matmul_transposed_operands", {F(-1, 1), F(-1, 1)}, {{{4, 3}, {5, 4}}, {{2, 6, 3}, {2, 5, 6}}},
         FLOATS,
         [](const Tensors &t) {
             T at(nb_transpose(t[0], -1, -2)), bt(nb_transpose(t[1], -1, -2));
             return nb_matmul(at, bt);
         },
         [](const std::vector<Host> &h) {
             auto swap_last = [](const Host &x) {
                 std::vector<int> perm(x.shape.size());
                 std::iota(perm.begin(), perm.end(), 0);
                 std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
                 return permute_ref(x, perm);
             };
             return matmul_ref(swap_last(h[0]), swap_last(h[1]));
         },
         true, 3});
    for (nb_op op : {NB_OP_SOFTMAX, NB_OP_LOG_SOFTMAX})
        for (auto sd : std::vector<std::pair<Shape, int>>{{{3, 5}, -1}, {{4, 3, 2}, 1}, {{6}, 0}, {{2, 1}, 1}}) {
            bool log_space = op == NB_OP_LOG_SOFTMAX;
            add({op, std::string(nb_op_name(op)) + "_" + shape_str(sd.first) + "_dim" + std::to_string(sd.second),
                 {F(-3, 3)}, {{sd.first}}, FLOATS,
                 [op, sd](const Tensors &t) {
                     return op == NB_OP_SOFTMAX ? nb_softmax(t[0], sd.second) : nb_log_softmax(t[0], sd.second);
                 },
                 [sd, log_space](const std::vector<Host> &h) { return softmax_ref(h[0], sd.second, log_space); },
                 true});
        }
}

void join_and_index_cases() {
    add({NB_OP_CAT, "cat_dim0", {F(-3, 3), F(-3, 3)}, {{{2, 3}, {4, 3}}, {{1}, {5}}}, ALL,
         [](const Tensors &t) {
             const nb_tensor *in[2] = {t[0], t[1]};
             return nb_cat(2, in, 0);
         },
         [](const std::vector<Host> &h) { return cat_ref(h, 0); }, true});
    add({NB_OP_CAT, "cat_dim1_three", {F(-3, 3), F(-3, 3), F(-3, 3)}, {{{2, 3}, {2, 1}, {2, 2}}}, ALL,
         [](const Tensors &t) {
             const nb_tensor *in[3] = {t[0], t[1], t[2]};
             return nb_cat(3, in, -1);
         },
         [](const std::vector<Host> &h) { return cat_ref(h, 1); }, true});
    for (int dim : {0, 2})
        add({NB_OP_STACK, "stack_dim" + std::to_string(dim), {F(-3, 3), F(-3, 3)}, {{{2, 3}, {2, 3}}}, ALL,
             [dim](const Tensors &t) {
                 const nb_tensor *in[2] = {t[0], t[1]};
                 return nb_stack(2, in, dim);
             },
             [dim](const std::vector<Host> &h) {
                 std::vector<Host> parts;
                 for (Host x : h) {
                     x.shape.insert(x.shape.begin() + dim, 1);
                     parts.push_back(x);
                 }
                 return cat_ref(parts, dim);
             },
             true});
    // split and chunk: the pieces, concatenated in reverse order
    auto reversed_pieces = [](nb_status status, nb_tensor **pieces, int n, int dim) -> nb_tensor * {
        if (status != NB_OK) return nullptr;
        std::vector<const nb_tensor *> rev(pieces, pieces + n);
        std::reverse(rev.begin(), rev.end());
        nb_tensor *out = nb_cat(n, rev.data(), dim);
        for (int i = 0; i < n; i++) nb_release(pieces[i]);
        return out;
    };
    auto reversed_ref = [](const Host &x, int dim, int64_t piece) {
        std::vector<Host> parts;
        for (int64_t s = 0; s < x.shape[dim]; s += piece)
            parts.push_back(slice_ref(x, dim, s, std::min(s + piece, x.shape[dim]), 1));
        std::reverse(parts.begin(), parts.end());
        return cat_ref(parts, dim);
    };
    add({NB_OP_SPLIT, "split", {F(-3, 3)}, {{{7, 3}}}, ALL,
         [reversed_pieces](const Tensors &t) {
             nb_tensor *p[8];
             int n = 0;
             nb_status status = nb_split(t[0], 3, 0, 8, p, &n);
             return reversed_pieces(status, p, n, 0);
         },
         [reversed_ref](const std::vector<Host> &h) { return reversed_ref(h[0], 0, 3); }, true});
    add({NB_OP_CHUNK, "chunk", {F(-3, 3)}, {{{2, 7}}}, ALL,
         [reversed_pieces](const Tensors &t) {
             nb_tensor *p[8];
             int n = 0;
             nb_status status = nb_chunk(t[0], 3, -1, 8, p, &n);
             return reversed_pieces(status, p, n, 1);
         },
         [reversed_ref](const std::vector<Host> &h) { return reversed_ref(h[0], 1, 3); }, true});
    for (int dim : {0, 1})
        add({NB_OP_INDEX_SELECT, "index_select_dim" + std::to_string(dim), {F(-3, 3), IDX(dim)},
             {{{5, 4}, {6}}, {{3, 6}, {2}}}, ALL,
             [dim](const Tensors &t) { return nb_index_select(t[0], dim, t[1]); },
             [dim](const std::vector<Host> &h) {
                 Shape s = h[0].shape;
                 s[dim] = h[1].numel();
                 Host out(s);
                 for (int64_t i = 0; i < out.numel(); i++) {
                     auto idx = out.unravel(i);
                     idx[dim] = (int64_t)h[1].v[idx[dim]];
                     out.v[i] = h[0].at(idx);
                 }
                 return out;
             },
             true});
    auto gather_ref = [](const Host &x, const Host &index, int dim) {
        Host out(index.shape);
        for (int64_t i = 0; i < out.numel(); i++) {
            auto idx = out.unravel(i);
            idx[dim] = (int64_t)index.v[i];
            out.v[i] = x.at(idx);
        }
        return out;
    };
    for (int dim : {0, 1})
        add({NB_OP_GATHER, "gather_dim" + std::to_string(dim), {F(-3, 3), IDX(dim)},
             {{{4, 5}, {3, 5}}, {{4, 5}, {2, 3}}}, ALL,
             [dim](const Tensors &t) { return nb_gather(t[0], dim, t[1]); },
             [dim, gather_ref](const std::vector<Host> &h) { return gather_ref(h[0], h[1], dim); }, true});
    for (int dim : {0, 1})
        add({NB_OP_SCATTER_ADD, "scatter_add_dim" + std::to_string(dim), {F(-3, 3), IDX(dim), F(-3, 3)},
             dim == 0 ? std::vector<std::vector<Shape>>{{{3, 4}, {5, 4}, {5, 4}}, {{3, 4}, {2, 3}, {3, 4}}}
                      : std::vector<std::vector<Shape>>{{{4, 5}, {4, 7}, {4, 7}}, {{4, 5}, {2, 3}, {3, 4}}},
             NUMERIC,
             [dim](const Tensors &t) { return nb_scatter_add(t[0], dim, t[1], t[2]); },
             [dim](const std::vector<Host> &h) {
                 Host out = h[0];
                 for (int64_t i = 0; i < h[1].numel(); i++) {
                     auto idx = h[1].unravel(i);
                     double add = h[2].at(idx);
                     idx[dim] = (int64_t)h[1].v[i];
                     out.v[out.ravel(idx)] += add;
                 }
                 return out;
             },
             true});
    add({NB_OP_EMBEDDING, "embedding", {F(-3, 3), IDX(0)}, {{{6, 3}, {2, 4}}, {{6, 3}, {}}}, ALL,
         [](const Tensors &t) { return nb_embedding(t[0], t[1]); },
         [](const std::vector<Host> &h) {
             Shape s = h[1].shape;
             s.push_back(3);
             Host out(s);
             for (int64_t i = 0; i < out.numel(); i++) out.v[i] = h[0].v[(int64_t)h[1].v[i / 3] * 3 + i % 3];
             return out;
         },
         true});
    for (int64_t classes : {4, -1})
        add({NB_OP_ONE_HOT, "one_hot_" + std::to_string(classes), {IDX(-1, 4)}, {{{5}}, {{2, 3}}},
             {NB_I64, NB_I32},
             [classes](const Tensors &t) { return nb_one_hot(t[0], classes); },
             [classes](const std::vector<Host> &h) {
                 int64_t c = classes;
                 if (c < 0) c = (int64_t)*std::max_element(h[0].v.begin(), h[0].v.end()) + 1;
                 Shape s = h[0].shape;
                 s.push_back(c);
                 Host out(s);
                 for (int64_t i = 0; i < h[0].numel(); i++) out.v[i * c + (int64_t)h[0].v[i]] = 1;
                 return out;
             },
             false});
}

// Cross-entropy per row: (1 - s)(lse - x[t]) + s(lse - mean x), 0 if ignored.
Host cross_entropy_rows(const Host &x, const Host &t, double s, int64_t ignore) {
    int64_t n = x.shape[0], c = x.shape[1];
    Host out({n});
    for (int64_t i = 0; i < n; i++) {
        if ((int64_t)t.v[i] == ignore) continue;
        double m = -INFINITY, sum = 0, total = 0;
        for (int64_t j = 0; j < c; j++) m = std::max(m, x.v[i * c + j]);
        for (int64_t j = 0; j < c; j++) sum += std::exp(x.v[i * c + j] - m), total += x.v[i * c + j];
        double lse = m + std::log(sum);
        out.v[i] = (1 - s) * (lse - x.v[i * c + (int64_t)t.v[i]]) + s * (lse - total / c);
    }
    return out;
}

// (x - mean) / sqrt(var + eps) * w + b per channel (dim 1) of x, the
// statistics over every other dim (batch_norm) or given per channel.
Host channel_norm_ref(const Host &x, const std::vector<double> &mean, const std::vector<double> &var,
                      const Host *w, const Host *b, double eps) {
    Host out(x.shape);
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t c = x.unravel(i)[1];
        out.v[i] = (x.v[i] - mean[c]) / std::sqrt(var[c] + eps) * (w ? w->v[c] : 1) + (b ? b->v[c] : 0);
    }
    return out;
}

// Per-channel (dim 1) batch mean and biased variance of x.
void batch_stats(const Host &x, std::vector<double> &mean, std::vector<double> &var) {
    int64_t c = x.shape[1];
    std::vector<double> count(c);
    mean.assign(c, 0);
    var.assign(c, 0);
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        mean[k] += x.v[i];
        count[k]++;
    }
    for (int64_t k = 0; k < c; k++) mean[k] /= count[k];
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        var[k] += (x.v[i] - mean[k]) * (x.v[i] - mean[k]) / count[k];
    }
}

// BatchNorm's gradients in training for the incoming gradient r, written
// out per element in double: dx = w / sqrt(var + eps) (r - mean(r) -
// xhat mean(r xhat)) per channel, then dw = sum r xhat and db = sum r,
// flattened one after the other (eps 1e-5).
Host batch_norm_grads_ref(const Host &x, const Host &w, const Host &r) {
    std::vector<double> mean, var;
    batch_stats(x, mean, var);
    int64_t c = x.shape[1];
    double n = (double)(x.numel() / c);
    std::vector<double> sum_r(c), sum_rx(c);
    auto xhat = [&](int64_t i, int64_t k) { return (x.v[i] - mean[k]) / std::sqrt(var[k] + 1e-5); };
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        sum_r[k] += r.v[i];
        sum_rx[k] += r.v[i] * xhat(i, k);
    }
    Host out({x.numel() + 2 * c});
    for (int64_t i = 0; i < x.numel(); i++) {
        int64_t k = x.unravel(i)[1];
        out.v[i] = w.v[k] / std::sqrt(var[k] + 1e-5) * (r.v[i] - sum_r[k] / n - xhat(i, k) * sum_rx[k] / n);
    }
    std::copy(sum_rx.begin(), sum_rx.end(), out.v.begin() + x.numel());
    std::copy(sum_r.begin(), sum_r.end(), out.v.begin() + x.numel() + c);
    return out;
}

void norm_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{4, 3, 5}, {3}, {3}}, {{6, 2}, {2}, {2}},
                                                   {{2, 3, 2, 2}, {3}, {3}}};
    auto train = [](const Tensors &t) { return nb_batch_norm(t[0], nullptr, nullptr, t[1], t[2], true, 0.1, 1e-5); };
    auto train_ref = [](const std::vector<Host> &h) {
        std::vector<double> mean, var;
        batch_stats(h[0], mean, var);
        return channel_norm_ref(h[0], mean, var, &h[1], &h[2], 1e-5);
    };
    add({NB_OP_BATCH_NORM, "batch_norm_train", {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, shapes, FLOATS, train,
         train_ref, true, 3});
    // the stage kernels: statistics and normalization run in every training forward
    for (nb_op op : {NB_OP_BATCH_NORM_STATS, NB_OP_BATCH_NORM_APPLY})
        add({op, nb_op_name(op), {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, shapes, FLOATS, train, train_ref, false, 3});
    // the backward stages, through autograd with an incoming gradient r:
    // dweight = sum r xhat (the reduce stage), dx from the apply stage
    for (nb_op op : {NB_OP_BATCH_NORM_BACKWARD_REDUCE, NB_OP_BATCH_NORM_BACKWARD_APPLY}) {
        bool input = op == NB_OP_BATCH_NORM_BACKWARD_APPLY;
        add({op, nb_op_name(op), {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)},
             {{{4, 3, 5}, {3}, {3}, {4, 3, 5}}, {{2, 3, 2, 2}, {3}, {3}, {2, 3, 2, 2}}}, {NB_F32, NB_F64},
             [input](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1]));
                 if (nb_set_requires_grad(x, true) != NB_OK || nb_set_requires_grad(w, true) != NB_OK) return nullptr;
                 T y(nb_batch_norm(x, nullptr, nullptr, w, t[2], true, 0.1, 1e-5));
                 if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
                 return nb_grad(input ? x : w);
             },
             [input](const std::vector<Host> &h) {
                 Host all = batch_norm_grads_ref(h[0], h[1], h[3]);
                 int64_t n = h[0].numel(), c = h[0].shape[1];
                 Host out(input ? h[0].shape : Shape{c});
                 std::copy(all.v.begin() + (input ? 0 : n), all.v.begin() + (input ? n : n + c), out.v.begin());
                 return out;
             },
             false, 3});
    }
    add({NB_OP_BATCH_NORM, "batch_norm_eval", {F(-2, 2), F(-1, 1), F(0.5, 2), F(0.5, 1.5), F(-1, 1)},
         {{{4, 3, 5}, {3}, {3}, {3}, {3}}}, FLOATS,
         [](const Tensors &t) { return nb_batch_norm(t[0], t[1], t[2], t[3], t[4], false, 0.1, 1e-3); },
         [](const std::vector<Host> &h) { return channel_norm_ref(h[0], h[1].v, h[2].v, &h[3], &h[4], 1e-3); },
         true, 3});
    add({NB_OP_GROUP_NORM, "group_norm", {F(-2, 2), F(0.5, 1.5), F(-1, 1)},
         {{{2, 4, 3}, {4}, {4}}, {{3, 6, 2, 2}, {6}, {6}}}, FLOATS,
         [](const Tensors &t) { return nb_group_norm(t[0], 2, t[1], t[2], 1e-5); },
         [](const std::vector<Host> &h) {
             const Host &x = h[0];
             int64_t n = x.shape[0], c = x.shape[1], per = x.numel() / n / c, g = 2;
             Host out(x.shape);
             for (int64_t s = 0; s < n; s++)
                 for (int64_t k = 0; k < g; k++) {
                     int64_t first = (s * c + k * (c / g)) * per, len = (c / g) * per;
                     double mean = 0, var = 0;
                     for (int64_t i = 0; i < len; i++) mean += x.v[first + i] / len;
                     for (int64_t i = 0; i < len; i++) var += (x.v[first + i] - mean) * (x.v[first + i] - mean) / len;
                     for (int64_t i = 0; i < len; i++) {
                         int64_t ch = k * (c / g) + i / per;
                         out.v[first + i] = (x.v[first + i] - mean) / std::sqrt(var + 1e-5) * h[1].v[ch] + h[2].v[ch];
                     }
                 }
             return out;
         },
         true, 3});
}

// layer_norm (rms false) or rms_norm of x over rows of D = w's size, in
// double: y, and with r the incoming gradient, dx, dw and db (flattened,
// one after the other) from the formulas written out per element.
Host row_norm_ref(const Host &x, const Host &w, const Host *b, bool rms, const Host *r) {
    int64_t d = w.numel(), rows = x.numel() / d;
    Host y(x.shape), grads({x.numel() + 2 * d});
    for (int64_t row = 0; row < rows; row++) {
        const double *xs = &x.v[row * d];
        double mean = 0, var = 0;
        for (int64_t k = 0; k < d && !rms; k++) mean += xs[k] / d;
        for (int64_t k = 0; k < d; k++) var += (xs[k] - mean) * (xs[k] - mean) / d;
        double rstd = 1 / std::sqrt(var + 1e-5);
        for (int64_t k = 0; k < d; k++) y.v[row * d + k] = (xs[k] - mean) * rstd * w.v[k] + (b ? b->v[k] : 0);
        if (!r) continue;
        // dx_k = sum_j dy_j/dx_k r_j, with dy_j/dx_k = w_j rstd (delta_jk - [!rms] / d - xhat_j xhat_k / d)
        for (int64_t k = 0; k < d; k++) {
            double xk = (xs[k] - mean) * rstd, dx = 0;
            for (int64_t j = 0; j < d; j++) {
                double xj = (xs[j] - mean) * rstd;
                dx += r->v[row * d + j] * w.v[j] * rstd * ((j == k) - (rms ? 0.0 : 1.0 / d) - xj * xk / d);
            }
            grads.v[row * d + k] = dx;
            grads.v[x.numel() + k] += r->v[row * d + k] * xk;
            grads.v[x.numel() + d + k] += r->v[row * d + k];
        }
    }
    return r ? grads : y;
}

void row_norm_cases() {
    // normalized over the weight's dims: one (x [3, 5], [2, 3, 4]) or two (x [2, 3, 4], w [3, 4])
    const std::vector<std::vector<Shape>> shapes = {{{3, 5}, {5}, {5}}, {{2, 3, 4}, {4}, {4}},
                                                   {{2, 3, 4}, {3, 4}, {3, 4}}, {{0, 4}, {4}, {4}}};
    for (bool rms : {false, true}) {
        nb_op op = rms ? NB_OP_RMS_NORM : NB_OP_LAYER_NORM;
        auto run = [rms](const Tensors &t) {
            return rms ? nb_rms_norm(t[0], nb_ndim(t[1]), t[1], 1e-5) : nb_layer_norm(t[0], nb_ndim(t[1]), t[1], t[2], 1e-5);
        };
        std::vector<std::vector<Shape>> variants = shapes;
        std::vector<Input> inputs = {F(-2, 2), F(0.5, 1.5), F(-1, 1)};
        if (rms) { // no bias
            inputs.pop_back();
            for (auto &v : variants) v.pop_back();
        }
        add({op, nb_op_name(op), inputs, variants, FLOATS, run,
             [rms](const std::vector<Host> &h) { return row_norm_ref(h[0], h[1], rms ? nullptr : &h[2], rms, nullptr); },
             true, 3});
        // the backward kernel through autograd with an incoming gradient r: dx, dw, db flattened
        nb_op backward = rms ? NB_OP_RMS_NORM_BACKWARD : NB_OP_LAYER_NORM_BACKWARD;
        add({backward, nb_op_name(backward), {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)},
             {{{3, 5}, {5}, {5}, {3, 5}}, {{2, 3, 4}, {3, 4}, {3, 4}, {2, 3, 4}}}, FLOATS,
             [rms](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1])), b(nb_detach(t[2]));
                 for (nb_tensor *leaf : {x.t, w.t, b.t})
                     if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(rms ? nb_rms_norm(x, nb_ndim(w), w, 1e-5) : nb_layer_norm(x, nb_ndim(w), w, b, 1e-5));
                 if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
                 int64_t flat = -1;
                 T dx(nb_grad(x)), dw(nb_grad(w)), db(rms ? nullptr : nb_grad(b));
                 T parts[3] = {T(nb_reshape(dx, 1, &flat)), T(nb_reshape(dw, 1, &flat)),
                               T(rms ? nullptr : nb_reshape(db, 1, &flat))};
                 const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
                 return nb_cat(rms ? 2 : 3, all, 0);
             },
             [rms](const std::vector<Host> &h) {
                 Host g = row_norm_ref(h[0], h[1], nullptr, rms, &h[3]);
                 if (!rms) return g;
                 Host without_bias({g.numel() - h[1].numel()}); // rms_norm has no bias
                 std::copy(g.v.begin(), g.v.begin() + without_bias.numel(), without_bias.v.begin());
                 return without_bias;
             },
             false, 3});
    }
}

// The same as row_norm_ref in O(D) a row, for the wide rows of
// large_norm_cases: dx = rstd (w r - mean(w r) - xhat mean(w r xhat)), the
// mean term left out for rms_norm.
Host wide_row_norm_ref(const Host &x, const Host &w, const Host *b, bool rms, const Host *r) {
    int64_t d = w.numel(), rows = x.numel() / d;
    Host y(x.shape), grads({x.numel() + 2 * d});
    std::vector<double> xhat(d);
    for (int64_t row = 0; row < rows; row++) {
        const double *xs = &x.v[row * d];
        double mean = 0, var = 0;
        for (int64_t k = 0; k < d && !rms; k++) mean += xs[k] / d;
        for (int64_t k = 0; k < d; k++) var += (xs[k] - mean) * (xs[k] - mean) / d;
        double rstd = 1 / std::sqrt(var + 1e-5), a = 0, c = 0;
        for (int64_t k = 0; k < d; k++) {
            xhat[k] = (xs[k] - mean) * rstd;
            y.v[row * d + k] = xhat[k] * w.v[k] + (b ? b->v[k] : 0);
            if (!r) continue;
            double rw = r->v[row * d + k] * w.v[k];
            a += rms ? 0 : rw / d;
            c += rw * xhat[k] / d;
        }
        for (int64_t k = 0; r && k < d; k++) {
            double rk = r->v[row * d + k];
            grads.v[row * d + k] = rstd * (rk * w.v[k] - a - xhat[k] * c);
            grads.v[x.numel() + k] += rk * xhat[k];
            grads.v[x.numel() + d + k] += rk;
        }
    }
    return r ? grads : y;
}

// Shapes at the GPU's normalization thresholds: rows held in registers (up
// to 16,384 f32 and f16 values forward, 8,192 backward; half that in f64),
// one past them, rows that are not a whole number of 16-byte vectors, and
// more rows than the backward's teams (each then sums several rows' weight
// gradients); BatchNorm planes with and without whole vectors, channels
// split over many blocks, and more channels than a grid's y dim (65,535).
void large_norm_cases() {
    for (bool rms : {false, true}) {
        nb_op op = rms ? NB_OP_RMS_NORM : NB_OP_LAYER_NORM;
        std::vector<std::vector<Shape>> forward, backward;
        for (int64_t d : {64, 1000, 8192, 8194, 16384, 16392}) forward.push_back({{3, d}, {d}, {d}});
        for (int64_t d : {4096, 8192, 8200}) backward.push_back({{3, d}, {d}, {d}, {3, d}});
        backward.push_back({{2000, 64}, {64}, {64}, {2000, 64}});
        add({op, std::string(nb_op_name(op)) + "_wide", {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, forward, FLOATS,
             [rms](const Tensors &t) {
                 return rms ? nb_rms_norm(t[0], 1, t[1], 1e-5) : nb_layer_norm(t[0], 1, t[1], t[2], 1e-5);
             },
             [rms](const std::vector<Host> &h) { return wide_row_norm_ref(h[0], h[1], rms ? nullptr : &h[2], rms, nullptr); },
             false, 3});
        nb_op back = rms ? NB_OP_RMS_NORM_BACKWARD : NB_OP_LAYER_NORM_BACKWARD;
        add({back, std::string(nb_op_name(back)) + "_wide", {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)}, backward,
             FLOATS,
             [rms](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1])), b(nb_detach(t[2]));
                 for (nb_tensor *leaf : {x.t, w.t, b.t})
                     if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
                 T y(rms ? nb_rms_norm(x, 1, w, 1e-5) : nb_layer_norm(x, 1, w, b, 1e-5));
                 if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
                 int64_t flat = -1;
                 T parts[3] = {T(nb_reshape(T(nb_grad(x)), 1, &flat)), T(nb_reshape(T(nb_grad(w)), 1, &flat)),
                               T(rms ? nullptr : nb_reshape(T(nb_grad(b)), 1, &flat))};
                 const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
                 return nb_cat(rms ? 2 : 3, all, 0);
             },
             [rms](const std::vector<Host> &h) {
                 Host g = wide_row_norm_ref(h[0], h[1], nullptr, rms, &h[3]);
                 if (!rms) return g;
                 Host without_bias({g.numel() - h[1].numel()}); // rms_norm has no bias
                 std::copy(g.v.begin(), g.v.begin() + without_bias.numel(), without_bias.v.begin());
                 return without_bias;
             },
             false, 3});
    }
    const std::vector<std::vector<Shape>> batches = {{{4, 3, 40, 40}, {3}, {3}}, {{2, 5, 33}, {5}, {5}},
                                                    {{300, 4}, {4}, {4}},          {{64, 16, 8, 8}, {16}, {16}},
                                                    {{4, 66000}, {66000}, {66000}}};
    add({NB_OP_BATCH_NORM, "batch_norm_train_large", {F(-2, 2), F(0.5, 1.5), F(-1, 1)}, batches, FLOATS,
         [](const Tensors &t) { return nb_batch_norm(t[0], nullptr, nullptr, t[1], t[2], true, 0.1, 1e-5); },
         [](const std::vector<Host> &h) {
             std::vector<double> mean, var;
             batch_stats(h[0], mean, var);
             return channel_norm_ref(h[0], mean, var, &h[1], &h[2], 1e-5);
         },
         false, 3});
    std::vector<std::vector<Shape>> with_grad;
    for (const auto &v : batches) with_grad.push_back({v[0], v[1], v[2], v[0]});
    add({NB_OP_BATCH_NORM_BACKWARD_APPLY, "batch_norm_backward_large", {F(-2, 2), F(0.5, 1.5), F(-1, 1), F(-1, 1)},
         with_grad, FLOATS,
         [](const Tensors &t) -> nb_tensor * {
             T x(nb_detach(t[0])), w(nb_detach(t[1])), b(nb_detach(t[2]));
             for (nb_tensor *leaf : {x.t, w.t, b.t})
                 if (!leaf || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
             T y(nb_batch_norm(x, nullptr, nullptr, w, b, true, 0.1, 1e-5));
             if (!y.t || nb_backward(y, t[3], false) != NB_OK) return nullptr;
             int64_t flat = -1;
             T parts[3] = {T(nb_reshape(T(nb_grad(x)), 1, &flat)), T(nb_reshape(T(nb_grad(w)), 1, &flat)),
                           T(nb_reshape(T(nb_grad(b)), 1, &flat))};
             const nb_tensor *all[3] = {parts[0].t, parts[1].t, parts[2].t};
             return nb_cat(3, all, 0);
         },
         [](const std::vector<Host> &h) { return batch_norm_grads_ref(h[0], h[1], h[3]); },
         false, 3});
}

// ---- positions ----

Host rope_ref(const Host &x, int64_t offset, double base) {
    Host out(x.shape);
    int64_t dim = x.shape.back(), half = dim / 2, seq = x.shape[x.shape.size() - 2];
    for (int64_t r = 0; r < x.numel() / dim; r++)
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)(offset + r % seq) * std::pow(base, -2.0 * (double)i / (double)dim);
            double x1 = x.v[r * dim + i], x2 = x.v[r * dim + i + half];
            out.v[r * dim + i] = x1 * std::cos(angle) - x2 * std::sin(angle);
            out.v[r * dim + i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
        }
    return out;
}

void position_cases() {
    add({NB_OP_ROPE, "rope", {F(-2, 2)}, {{{2, 3, 5, 8}}, {{4, 6}}, {{1, 2, 0, 4}}}, FLOATS,
         [](const Tensors &t) { return nb_rope(t[0], 3, 100); },
         [](const std::vector<Host> &h) { return rope_ref(h[0], 3, 100); }, true, 2});
    add({NB_OP_ROPE, "rope_long", {F(-2, 2)}, {{{1, 1, 300, 16}}}, {NB_F32, NB_F64},
         [](const Tensors &t) { return nb_rope(t[0], 1000, 10000); },
         [](const std::vector<Host> &h) { return rope_ref(h[0], 1000, 10000); }, false, 4});
    add({NB_OP_SINUSOIDAL_POSITIONS, "sinusoidal_positions", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_sinusoidal_positions(7, 6, 100, g_dtype, g_device); },
         [](const std::vector<Host> &) {
             Host h({7, 6});
             for (int p = 0; p < 7; p++)
                 for (int i = 0; i < 3; i++) {
                     double w = std::pow(100.0, -2.0 * i / 6);
                     h.v[p * 6 + 2 * i] = std::sin(p * w);
                     h.v[p * 6 + 2 * i + 1] = std::cos(p * w);
                 }
             return h;
         },
         false});
    add({NB_OP_SWIGLU, "swiglu", {F(-3, 3)}, {{{3, 8}}, {{2, 3, 4}}, {{2, 0}}}, FLOATS,
         [](const Tensors &t) { return nb_swiglu(t[0]); },
         [](const std::vector<Host> &h) {
             Shape shape = h[0].shape;
             int64_t half = shape.back() / 2;
             shape.back() = half;
             Host out(shape);
             for (int64_t i = 0; i < out.numel(); i++) {
                 double a = h[0].v[(i / half) * 2 * half + i % half], b = h[0].v[(i / half) * 2 * half + half + i % half];
                 out.v[i] = a / (1 + std::exp(-a)) * b;
             }
             return out;
         },
         true});
}

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

struct ConvConfig {
    int stride[2], padding[2], dilation[2], groups;
    int output_padding[2];
};

// Direct convolution in double: padding is the top/left offset.
Host conv_ref(const Host &x, const Host &w, const Host *b, const ConvConfig &k, int64_t ho, int64_t wo) {
    int64_t n = x.shape[0], h = x.shape[2], wd = x.shape[3];
    int64_t o = w.shape[0], cg = w.shape[1], kh = w.shape[2], kw = w.shape[3], og = o / k.groups;
    Host out({n, o, ho, wo});
    for (int64_t s = 0; s < n; s++)
        for (int64_t oc = 0; oc < o; oc++)
            for (int64_t oy = 0; oy < ho; oy++)
                for (int64_t ox = 0; ox < wo; ox++) {
                    double acc = b ? b->v[oc] : 0;
                    for (int64_t ic = 0; ic < cg; ic++)
                        for (int64_t i = 0; i < kh; i++)
                            for (int64_t j = 0; j < kw; j++) {
                                int64_t y = oy * k.stride[0] - k.padding[0] + i * k.dilation[0];
                                int64_t xx = ox * k.stride[1] - k.padding[1] + j * k.dilation[1];
                                if (y < 0 || y >= h || xx < 0 || xx >= wd) continue;
                                int64_t channel = (oc / og) * cg + ic;
                                acc += x.at({s, channel, y, xx}) * w.at({oc, ic, i, j});
                            }
                    out.v[out.ravel({s, oc, oy, ox})] = acc;
                }
    return out;
}

// Transposed convolution in double, by scattering each input pixel.
Host conv_transpose_ref(const Host &x, const Host &w, const Host *b, const ConvConfig &k) {
    int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
    int64_t og = w.shape[1], kh = w.shape[2], kw = w.shape[3], cg = c / k.groups, o = og * k.groups;
    int64_t ho = (h - 1) * k.stride[0] - 2 * k.padding[0] + (kh - 1) * k.dilation[0] + k.output_padding[0] + 1;
    int64_t wo = (wd - 1) * k.stride[1] - 2 * k.padding[1] + (kw - 1) * k.dilation[1] + k.output_padding[1] + 1;
    Host out({n, o, ho, wo});
    for (int64_t i = 0; i < out.numel(); i++) out.v[i] = b ? b->v[out.unravel(i)[1]] : 0;
    for (int64_t s = 0; s < n; s++)
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t iy = 0; iy < h; iy++)
                for (int64_t ix = 0; ix < wd; ix++)
                    for (int64_t oc = 0; oc < og; oc++)
                        for (int64_t i = 0; i < kh; i++)
                            for (int64_t j = 0; j < kw; j++) {
                                int64_t y = iy * k.stride[0] - k.padding[0] + i * k.dilation[0];
                                int64_t xx = ix * k.stride[1] - k.padding[1] + j * k.dilation[1];
                                if (y < 0 || y >= ho || xx < 0 || xx >= wo) continue;
                                out.v[out.ravel({s, (ic / cg) * og + oc, y, xx})] +=
                                    x.at({s, ic, iy, ix}) * w.at({ic, oc, i, j});
                            }
    return out;
}

struct Conv {
    const char *name;
    Shape x, w;
    ConvConfig k;
    bool same;
};

// A family of convolution kernels (forward, input and weight gradients)
// through nb_conv2d with config dw: the forward against the direct
// convolution, the gradients of sum(conv) against finite differences of it.
void kernel_cases(const std::string &name, const std::array<nb_op, 3> &ops, const Conv &dw) {
    auto dw_ref = [dw](const std::vector<Host> &h) {
        int64_t ho = (dw.x[2] + 2 * dw.k.padding[0] - (dw.w[2] - 1) * dw.k.dilation[0] - 1) / dw.k.stride[0] + 1;
        int64_t wo = (dw.x[3] + 2 * dw.k.padding[1] - (dw.w[3] - 1) * dw.k.dilation[1] - 1) / dw.k.stride[1] + 1;
        return conv_ref(h[0], h[1], nullptr, dw.k, ho, wo);
    };
    add({ops[0], name, {F(-1, 1), F(-1, 1)}, {{dw.x, dw.w}}, FLOATS,
         [dw](const Tensors &t) { return nb_conv2d(t[0], t[1], nullptr, dw.k.stride, dw.k.padding, dw.k.dilation, dw.k.groups); },
         dw_ref, true, 5});
    for (int which : {0, 1}) {
        add({ops[1 + which], name + (which ? "_weight_grad" : "_input_grad"), {F(-1, 1), F(-1, 1)},
             {{dw.x, dw.w}}, {NB_F32, NB_F64},
             [dw, which](const Tensors &t) -> nb_tensor * {
                 T x(nb_detach(t[0])), w(nb_detach(t[1]));
                 if (nb_set_requires_grad(which ? w : x, true) != NB_OK) return nullptr;
                 T y(nb_conv2d(x, w, nullptr, dw.k.stride, dw.k.padding, dw.k.dilation, dw.k.groups));
                 T total(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
                 if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
                 return nb_grad(which ? w : x);
             },
             [dw_ref, which](const std::vector<Host> &h) { // d sum(conv) / d input by perturbing each element
                 std::vector<Host> in = h;
                 Host &target = in[which];
                 Host grad(target.shape);
                 for (int64_t i = 0; i < target.numel(); i++) {
                     double saved = target.v[i], sum[2] = {0, 0};
                     for (int side = 0; side < 2; side++) {
                         target.v[i] = saved + (side ? 1 : -1);
                         for (double v : dw_ref(in).v) sum[side] += v;
                     }
                     target.v[i] = saved;
                     grad.v[i] = (sum[1] - sum[0]) / 2; // exact: the sum is linear in each input
                 }
                 return grad;
             },
             false, 5});
    }
}

void conv_cases() {
    for (const Conv &c : std::vector<Conv>{
             {"3x3_pad1", {2, 3, 5, 6}, {4, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1, {0, 0}}, false},
             {"stride2", {2, 2, 7, 7}, {3, 2, 3, 2}, {{2, 2}, {0, 0}, {1, 1}, 1, {0, 0}}, false},
             {"groups2", {1, 4, 5, 5}, {6, 2, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 2, {0, 0}}, false},
             {"depthwise", {2, 3, 6, 5}, {3, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 3, {0, 0}}, false},
             {"depthwise_mult2_stride2", {1, 2, 7, 6}, {4, 1, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 2, {0, 0}}, false},
             {"depthwise_dilation2", {2, 2, 7, 6}, {2, 1, 3, 3}, {{1, 1}, {2, 1}, {2, 1}, 2, {0, 0}}, false},
             {"depthwise_same_even_kernel", {1, 3, 5, 6}, {3, 1, 2, 2}, {{1, 1}, {0, 0}, {1, 1}, 3, {0, 0}}, true},
             // more channels than a CPU block holds (8): a full block and a partial one
             {"depthwise_11_channels", {2, 11, 5, 4}, {11, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 11, {0, 0}}, false},
             {"dilation2", {1, 2, 8, 7}, {2, 2, 3, 3}, {{1, 1}, {2, 2}, {2, 2}, 1, {0, 0}}, false},
             {"1x1", {2, 5, 4, 4}, {3, 5, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, false},
             {"same_even_kernel", {1, 2, 5, 5}, {2, 2, 2, 2}, {{1, 1}, {0, 0}, {1, 1}, 1, {0, 0}}, true}}) {
        add({NB_OP_CONV2D, std::string("conv2d_") + c.name, {F(-1, 1), F(-1, 1), F(-1, 1)},
             {{c.x, c.w, {c.w[0]}}}, FLOATS,
             [c](const Tensors &t) {
                 int same[2] = {NB_PADDING_SAME, 0};
                 return nb_conv2d(t[0], t[1], t[2], c.k.stride, c.same ? same : c.k.padding,
                                  c.k.dilation, c.k.groups);
             },
             [c](const std::vector<Host> &h) {
                 ConvConfig k = c.k;
                 int64_t kh = c.w[2], kw = c.w[3];
                 int total[2] = {(int)((kh - 1) * k.dilation[0]), (int)((kw - 1) * k.dilation[1])};
                 if (c.same) k.padding[0] = total[0] / 2, k.padding[1] = total[1] / 2;
                 int pad_total[2] = {c.same ? total[0] : 2 * k.padding[0], c.same ? total[1] : 2 * k.padding[1]};
                 int64_t ho = (c.x[2] + pad_total[0] - (kh - 1) * k.dilation[0] - 1) / k.stride[0] + 1;
                 int64_t wo = (c.x[3] + pad_total[1] - (kw - 1) * k.dilation[1] - 1) / k.stride[1] + 1;
                 return conv_ref(h[0], h[1], &h[2], k, ho, wo);
             },
             true, 5});
    }
    for (const Conv &c : std::vector<Conv>{
             {"stride2_outpad1", {2, 3, 4, 4}, {3, 2, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 1, {1, 1}}, false},
             {"groups2", {1, 4, 3, 3}, {4, 1, 2, 2}, {{1, 1}, {0, 0}, {1, 1}, 2, {0, 0}}, false},
             {"dilation2", {1, 2, 3, 4}, {2, 3, 3, 2}, {{1, 2}, {1, 0}, {2, 2}, 1, {0, 1}}, false}}) {
        add({NB_OP_CONV_TRANSPOSE2D, std::string("conv_transpose2d_") + c.name,
             {F(-1, 1), F(-1, 1), F(-1, 1)}, {{c.x, c.w, {c.w[1] * c.k.groups}}}, FLOATS,
             [c](const Tensors &t) {
                 return nb_conv_transpose2d(t[0], t[1], t[2], c.k.stride, c.k.padding,
                                            c.k.output_padding, c.k.dilation, c.k.groups);
             },
             [c](const std::vector<Host> &h) { return conv_transpose_ref(h[0], h[1], &h[2], c.k); },
             true, 5});
    }
    // the depthwise kernels and the direct ones (cuDNN on CUDA; the GEMM path
    // where a backend has none), forward and (through autograd) both
    // gradients, against the direct convolution and finite differences of it
    kernel_cases("depthwise_conv2d", {NB_OP_DEPTHWISE_CONV2D, NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD,
                                      NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD},
                 {"", {2, 10, 6, 5}, {20, 1, 3, 3}, {{2, 1}, {1, 2}, {1, 2}, 10, {0, 0}}, false});
    // the GPU's 3x3 kernels compiled for stride 1 and 2
    const std::array<nb_op, 3> depthwise_ops = {NB_OP_DEPTHWISE_CONV2D, NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD,
                                                NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD};
    kernel_cases("depthwise_conv2d_3x3_stride1", depthwise_ops,
                 {"", {2, 4, 6, 7}, {4, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 4, {0, 0}}, false});
    kernel_cases("depthwise_conv2d_3x3_stride2_mult2", depthwise_ops,
                 {"", {1, 3, 7, 8}, {6, 1, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 3, {0, 0}}, false});
    kernel_cases("conv2d_direct", {NB_OP_CONV2D_DIRECT, NB_OP_CONV2D_INPUT_GRAD, NB_OP_CONV2D_WEIGHT_GRAD},
                 {"", {2, 4, 7, 6}, {6, 2, 3, 2}, {{2, 1}, {1, 0}, {1, 2}, 2, {0, 0}}, false});
    // unfold and fold against their definitions, each the other's gradient
    int kernel[2] = {2, 3}, stride[2] = {2, 1}, padding[2] = {1, 0}, dilation[2] = {1, 2};
    add({NB_OP_UNFOLD, "unfold", {F(-1, 1)}, {{{2, 3, 5, 6}}}, ALL,
         [=](const Tensors &t) { return nb_unfold(t[0], kernel, dilation, padding, stride); },
         [=](const std::vector<Host> &h) {
             const Host &x = h[0];
             int64_t n = x.shape[0], c = x.shape[1], H = x.shape[2], W = x.shape[3];
             int64_t ho = (H + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0] + 1;
             int64_t wo = (W + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1] + 1;
             Host out({n, c * kernel[0] * kernel[1], ho * wo});
             for (int64_t s = 0; s < n; s++)
                 for (int64_t r = 0; r < out.shape[1]; r++)
                     for (int64_t l = 0; l < ho * wo; l++) {
                         int64_t ch = r / (kernel[0] * kernel[1]), i = r / kernel[1] % kernel[0], j = r % kernel[1];
                         int64_t y = l / wo * stride[0] - padding[0] + i * dilation[0];
                         int64_t xx = l % wo * stride[1] - padding[1] + j * dilation[1];
                         out.v[out.ravel({s, r, l})] = y >= 0 && y < H && xx >= 0 && xx < W ? x.at({s, ch, y, xx}) : 0;
                     }
             return out;
         },
         true});
    int fold_kernel[2] = {2, 2}, fold_stride[2] = {1, 1}, fold_pad[2] = {0, 0}, fold_dil[2] = {1, 1};
    add({NB_OP_FOLD, "fold", {F(-1, 1)}, {{{2, 12, 12}}}, FLOATS,
         [=](const Tensors &t) {
             int64_t size[2] = {4, 5};
             return nb_fold(t[0], size, fold_kernel, fold_dil, fold_pad, fold_stride);
         },
         [=](const std::vector<Host> &h) {
             Host out({2, 3, 4, 5});
             for (int64_t s = 0; s < 2; s++)
                 for (int64_t r = 0; r < 12; r++)
                     for (int64_t l = 0; l < 12; l++) {
                         int64_t ch = r / 4, i = r / 2 % 2, j = r % 2, y = l / 4 + i, xx = l % 4 + j;
                         out.v[out.ravel({s, ch, y, xx})] += h[0].at({s, r, l});
                     }
             return out;
         },
         true});
}

// Windows of a 2-D pool in double: rows [y0, y1) of output row i.
struct PoolRef {
    int kernel[2], stride[2], padding[2];
    bool adaptive;
    int64_t out[2];
    void range(int d, int64_t i, int64_t in, int64_t *lo, int64_t *hi, double *area) const {
        if (adaptive) {
            *lo = i * in / out[d];
            *hi = ((i + 1) * in + out[d] - 1) / out[d];
            *area = (double)(*hi - *lo);
        } else {
            *lo = i * stride[d] - padding[d];
            *hi = *lo + kernel[d];
            *area = kernel[d];
        }
        *lo = std::max<int64_t>(*lo, 0);
        *hi = std::min<int64_t>(*hi, in);
    }
    int64_t out_size(int d, int64_t in) const {
        return adaptive ? out[d] : (in + 2 * padding[d] - kernel[d]) / stride[d] + 1;
    }
    // fn(window values, area, first index of the max) per output element
    Host apply(const Host &x, const std::function<double(const std::vector<double> &, double, int64_t)> &fn) const {
        int64_t H = x.shape[2], W = x.shape[3], ho = out_size(0, H), wo = out_size(1, W);
        Host out({x.shape[0], x.shape[1], ho, wo});
        for (int64_t i = 0; i < out.numel(); i++) {
            auto idx = out.unravel(i);
            int64_t y0, y1, x0, x1;
            double ah, aw;
            range(0, idx[2], H, &y0, &y1, &ah);
            range(1, idx[3], W, &x0, &x1, &aw);
            std::vector<double> v;
            int64_t best = -1;
            double best_v = -INFINITY;
            for (int64_t y = y0; y < y1; y++)
                for (int64_t xx = x0; xx < x1; xx++) {
                    double a = x.at({idx[0], idx[1], y, xx});
                    v.push_back(a);
                    if (best < 0 || a > best_v) best = y * W + xx, best_v = a;
                }
            out.v[i] = fn(v, ah * aw, best);
        }
        return out;
    }
};

void pool_cases() {
    const std::vector<PoolRef> pools = {{{2, 2}, {2, 2}, {0, 0}, false, {0, 0}},
                                        {{3, 3}, {2, 2}, {1, 1}, false, {0, 0}},
                                        {{2, 3}, {1, 2}, {1, 0}, false, {0, 0}}};
    const std::vector<std::vector<Shape>> images = {{{2, 3, 5, 6}}, {{1, 2, 7, 7}}};
    for (size_t k = 0; k < pools.size(); k++) {
        PoolRef p = pools[k];
        std::string tag = std::to_string(k);
        add({NB_OP_MAX_POOL2D, "max_pool2d_" + tag, {F(-2, 2)}, images, FLOATS,
             [p](const Tensors &t) { return nb_max_pool2d(t[0], p.kernel, p.stride, p.padding); },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &v, double, int64_t) {
                     return *std::max_element(v.begin(), v.end());
                 });
             },
             true});
        add({NB_OP_MAX_POOL2D, "max_pool2d_indices_" + tag, {F(-2, 2)}, images, FLOATS,
             [p](const Tensors &t) -> nb_tensor * {
                 nb_tensor *indices = nullptr;
                 T values(nb_max_pool2d_with_indices(t[0], p.kernel, p.stride, p.padding, &indices));
                 return values.t ? indices : nullptr;
             },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &, double, int64_t best) { return (double)best; });
             },
             false});
        add({NB_OP_AVG_POOL2D, "avg_pool2d_" + tag, {F(-2, 2)}, images, FLOATS,
             [p](const Tensors &t) { return nb_avg_pool2d(t[0], p.kernel, p.stride, p.padding); },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &v, double area, int64_t) {
                     return std::accumulate(v.begin(), v.end(), 0.0) / area;
                 });
             },
             true});
    }
    for (auto out : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {1, 1}, {5, 7}}) {
        PoolRef p = {{1, 1}, {1, 1}, {0, 0}, true, {out.first, out.second}};
        add({NB_OP_AVG_POOL2D, "adaptive_avg_pool2d_" + std::to_string(out.first) + "x" + std::to_string(out.second),
             {F(-2, 2)}, {{{1, 2, 5, 7}}}, FLOATS,
             [out](const Tensors &t) { return nb_adaptive_avg_pool2d(t[0], out.first, out.second); },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &v, double area, int64_t) {
                     return std::accumulate(v.begin(), v.end(), 0.0) / area;
                 });
             },
             true});
    }
    // the backward kernel through autograd: d sum(avg_pool(x)) / dx
    PoolRef p = pools[1];
    add({NB_OP_AVG_POOL2D_BACKWARD, "avg_pool2d_backward", {F(-2, 2)}, {{{1, 2, 7, 7}}}, FLOATS,
         [p](const Tensors &t) -> nb_tensor * {
             T leaf(nb_detach(t[0]));
             if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
             T y(nb_avg_pool2d(leaf, p.kernel, p.stride, p.padding));
             T total(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
             if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
             return nb_grad(leaf);
         },
         [p](const std::vector<Host> &h) {
             const Host &x = h[0];
             Host g(x.shape);
             int64_t H = x.shape[2], W = x.shape[3];
             for (int64_t oy = 0; oy < p.out_size(0, H); oy++)
                 for (int64_t ox = 0; ox < p.out_size(1, W); ox++) {
                     int64_t y0, y1, x0, x1;
                     double ah, aw;
                     p.range(0, oy, H, &y0, &y1, &ah);
                     p.range(1, ox, W, &x0, &x1, &aw);
                     for (int64_t c = 0; c < x.shape[1]; c++)
                         for (int64_t y = y0; y < y1; y++)
                             for (int64_t xx = x0; xx < x1; xx++) g.v[g.ravel({0, c, y, xx})] += 1 / (ah * aw);
                 }
             return g;
         },
         false});
    add({NB_OP_MEAN, "global_avg_pool2d", {F(-2, 2)}, {{{2, 3, 4, 5}}}, FLOATS,
         [](const Tensors &t) { return nb_global_avg_pool2d(t[0]); },
         [](const std::vector<Host> &h) { return reduce_ref(h[0], {2, 3}, true, fold_mean); }, true});
}

// Two optimizer steps on p with gradient g (from d sum(p * g) / dp) each time.
nb_tensor *two_steps(const Tensors &t, const std::function<nb_optimizer *(nb_tensor *)> &make) {
    T p(nb_clone(t[0]));
    if (!p.t || nb_set_requires_grad(p, true) != NB_OK) return nullptr;
    nb_optimizer *opt = make(p);
    if (!opt) return nullptr;
    bool ok = true;
    for (int step = 0; step < 2 && ok; step++) {
        nb_optimizer_zero_grad(opt);
        T y(nb_mul(p, t[1]));
        T loss(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
        ok = loss.t && nb_backward(loss, nullptr, false) == NB_OK && nb_optimizer_step(opt) == NB_OK;
    }
    nb_optimizer_free(opt);
    return ok ? nb_detach(p) : nullptr;
}

void optimizer_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{3, 4}, {3, 4}}, {{5}, {5}}};
    for (bool nesterov : {false, true}) {
        add({NB_OP_SGD_STEP, nesterov ? "sgd_nesterov" : "sgd_momentum", {F(-1, 1), F(-1, 1)}, shapes,
             FLOATS,
             [nesterov](const Tensors &t) {
                 return two_steps(t, [nesterov](nb_tensor *p) { return nb_sgd_create(&p, 1, 0.1, 0.9, 0.01, nesterov); });
             },
             [nesterov](const std::vector<Host> &h) {
                 Host p = h[0];
                 std::vector<double> buf(p.numel());
                 for (int step = 0; step < 2; step++)
                     for (int64_t i = 0; i < p.numel(); i++) {
                         double g = h[1].v[i] + 0.01 * p.v[i];
                         buf[i] = step == 0 ? g : 0.9 * buf[i] + g;
                         p.v[i] -= 0.1 * (nesterov ? g + 0.9 * buf[i] : buf[i]);
                     }
                 return p;
             },
             false, 3});
    }
    add({NB_OP_SGD_STEP, "sgd_plain", {F(-1, 1), F(-1, 1)}, shapes, FLOATS,
         [](const Tensors &t) { return two_steps(t, [](nb_tensor *p) { return nb_sgd_create(&p, 1, 0.5, 0, 0, false); }); },
         [](const std::vector<Host> &h) {
             Host p = h[0];
             for (int64_t i = 0; i < p.numel(); i++) p.v[i] -= 2 * 0.5 * h[1].v[i];
             return p;
         },
         false, 3});
    for (bool decoupled : {false, true}) {
        add({NB_OP_ADAM_STEP, decoupled ? "adamw" : "adam", {F(-1, 1), F(-1, 1)}, shapes, FLOATS,
             [decoupled](const Tensors &t) {
                 return two_steps(t, [decoupled](nb_tensor *p) {
                     return decoupled ? nb_adamw_create(&p, 1, 0.1, 0.9, 0.99, 1e-8, 0.1)
                                      : nb_adam_create(&p, 1, 0.1, 0.9, 0.99, 1e-8, 0.1);
                 });
             },
             [decoupled](const std::vector<Host> &h) {
                 Host p = h[0];
                 std::vector<double> m(p.numel()), v(p.numel());
                 for (int step = 1; step <= 2; step++)
                     for (int64_t i = 0; i < p.numel(); i++) {
                         double g = h[1].v[i];
                         if (decoupled) p.v[i] *= 1 - 0.1 * 0.1;
                         else g += 0.1 * p.v[i];
                         m[i] = 0.9 * m[i] + 0.1 * g;
                         v[i] = 0.99 * v[i] + 0.01 * g * g;
                         double mhat = m[i] / (1 - std::pow(0.9, step)), vhat = v[i] / (1 - std::pow(0.99, step));
                         p.v[i] -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
                     }
                 return p;
             },
             false, 3});
    }
}

void loss_cases() {
    struct Config {
        nb_reduction reduction;
        double smoothing;
        int64_t ignore;
        const char *name;
    };
    // a batch whose every row is ignored has a NaN mean loss and zero
    // gradients (as PyTorch): the finite differences cannot check that, so
    // the batches here have several rows
    const std::vector<std::vector<Shape>> shapes = {{{5, 7}, {5}}, {{6, 3}, {6}}, {{4, 1}, {4}}};
    for (Config k : std::vector<Config>{{NB_REDUCTION_MEAN, 0, -100, "mean"},
                                        {NB_REDUCTION_SUM, 0.1, -100, "sum_smoothed"},
                                        {NB_REDUCTION_NONE, 0.2, 2, "none_ignore2"},
                                        {NB_REDUCTION_MEAN, 0, 1, "mean_ignore1"}}) {
        add({NB_OP_CROSS_ENTROPY, std::string("cross_entropy_") + k.name, {F(-3, 3), IDX(1)}, shapes,
             FLOATS, [k](const Tensors &t) {
                 return nb_cross_entropy(t[0], t[1], k.reduction, k.smoothing, k.ignore);
             },
             [k](const std::vector<Host> &h) {
                 Host rows = cross_entropy_rows(h[0], h[1], k.smoothing, k.ignore);
                 if (k.reduction == NB_REDUCTION_NONE) return rows;
                 double sum = 0, counted = 0;
                 for (int64_t i = 0; i < rows.numel(); i++) {
                     sum += rows.v[i];
                     counted += (int64_t)h[1].v[i] != k.ignore;
                 }
                 return Host({}, {k.reduction == NB_REDUCTION_SUM ? sum : sum / counted});
             },
             true});
    }
    // the fused backward kernel, reached through autograd
    add({NB_OP_CROSS_ENTROPY_BACKWARD, "cross_entropy_backward", {F(-3, 3), IDX(1)}, shapes, FLOATS,
         [](const Tensors &t) -> nb_tensor * {
             T leaf(nb_detach(t[0]));
             if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
             T loss(nb_cross_entropy(leaf, t[1], NB_REDUCTION_SUM, 0.1, 1));
             if (!loss.t || nb_backward(loss, nullptr, false) != NB_OK) return nullptr;
             return nb_grad(leaf);
         },
         [](const std::vector<Host> &h) {
             const Host &x = h[0];
             int64_t n = x.shape[0], c = x.shape[1];
             Host g(x.shape);
             for (int64_t i = 0; i < n; i++) {
                 int64_t t = (int64_t)h[1].v[i];
                 if (t == 1) continue;
                 double m = -INFINITY, sum = 0;
                 for (int64_t j = 0; j < c; j++) m = std::max(m, x.v[i * c + j]);
                 for (int64_t j = 0; j < c; j++) sum += std::exp(x.v[i * c + j] - m);
                 for (int64_t j = 0; j < c; j++)
                     g.v[i * c + j] = std::exp(x.v[i * c + j] - m) / sum - 0.1 / c - (j == t ? 0.9 : 0);
             }
             return g;
         },
         false});
}

// Shapes large enough for the GPU kernels' fast paths: 16-byte vectors with
// row and column broadcasts and a ragged tail, reductions split into parts
// and over outer dims, softmax rows in and beyond shared memory, batched
// matmul with a broadcast operand. No gradient checks: the small cases
// cover the formulas.
void large_cases() {
    const std::vector<std::vector<Shape>> wide = {{{33, 64}, {64}}, {{33, 64}, {33, 1}}, {{1003}, {}}};
    auto elementwise = [&](nb_op op, Binary fn, std::function<double(double, double)> f,
                           std::vector<nb_dtype> dtypes) {
        add({op, std::string(nb_op_name(op)) + "_wide", {F(-3, 3), F(0.5, 3)}, wide, dtypes,
             [fn](const Tensors &t) { return fn(t[0], t[1]); },
             [f](const std::vector<Host> &h) {
                 return map_n(h, [f](const std::vector<double> &v) { return f(v[0], v[1]); });
             },
             false});
    };
    elementwise(NB_OP_ADD, nb_add, [](double a, double b) { return a + b; }, ALL);
    elementwise(NB_OP_MUL, nb_mul, [](double a, double b) { return a * b; }, ALL);
    elementwise(NB_OP_GT, nb_gt, [](double a, double b) { return a > b; }, NUMERIC);
    add({NB_OP_WHERE, "where_wide", {M, F(-3, 3), F(-3, 3)}, {{{33, 64}, {33, 64}, {64}}}, ALL,
         [](const Tensors &t) { return nb_where(t[0], t[1], t[2]); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[0] != 0 ? v[1] : v[2]; });
         },
         false});
    struct Reduce {
        Shape shape;
        std::vector<int> dims;
    };
    // rows of 20,001 start off the GPU's 16-byte boundaries after the first
    for (const Reduce &r : std::vector<Reduce>{{{3, 20000}, {1}}, {{3, 20001}, {1}}, {{50000}, {}}, {{40, 300}, {0}}}) {
        std::string tag = "_large_" + shape_str(r.shape) + "_dims" + std::to_string(r.dims.size());
        add({NB_OP_SUM, "sum" + tag, {F(-2, 2)}, {{r.shape}}, {NB_F32, NB_F64, NB_BF16, NB_I32},
             [r](const Tensors &t) { return nb_sum(t[0], (int)r.dims.size(), r.dims.data(), false); },
             [r](const std::vector<Host> &h) { return reduce_ref(h[0], r.dims, false, fold_sum); },
             false, 10});
        add({NB_OP_ARGMAX, "argmax" + tag, {F(-2, 2)}, {{r.shape}}, {NB_F32, NB_F64},
             [r](const Tensors &t) { return nb_argmax(t[0], (int)r.dims.size(), r.dims.data(), false); },
             [r](const std::vector<Host> &h) {
                 return reduce_ref(h[0], r.dims, false, [](const std::vector<double> &v) {
                     return (double)(std::max_element(v.begin(), v.end()) - v.begin());
                 });
             },
             false});
        add({NB_OP_VAR, "var" + tag, {F(-2, 2)}, {{r.shape}}, {NB_F32, NB_F64},
             [r](const Tensors &t) { return nb_var(t[0], (int)r.dims.size(), r.dims.data(), 1, false); },
             [r](const std::vector<Host> &h) {
                 return reduce_ref(h[0], r.dims, false,
                                   [](const std::vector<double> &v) { return fold_var(v, 1); });
             },
             false, 10});
    }
    // rows at the edge of the GPU's shared-memory row cache: 48 KiB less the
    // kernel's static buffers (1,280 bytes), which 12,224 and 12,288 f32
    // values overflowed
    for (auto sd : std::vector<std::pair<Shape, int>>{
             {{4, 3000}, -1}, {{2, 12224}, -1}, {{2, 12288}, -1}, {{2, 20000}, -1}, {{300, 5}, 0}})
        add({NB_OP_SOFTMAX, "softmax_large_" + shape_str(sd.first), {F(-3, 3)}, {{sd.first}}, FLOATS,
             [sd](const Tensors &t) { return nb_softmax(t[0], sd.second); },
             [sd](const std::vector<Host> &h) {
                 Host out = h[0];
                 int nd = (int)h[0].shape.size(), dim = (sd.second + nd) % nd;
                 Host sums = reduce_ref(h[0], {dim}, true, [](const std::vector<double> &v) {
                     double s = 0;
                     for (double a : v) s += std::exp(a);
                     return s;
                 });
                 for (int64_t i = 0; i < out.numel(); i++) {
                     auto idx = out.unravel(i);
                     idx[dim] = 0;
                     out.v[i] = std::exp(h[0].v[i]) / sums.at(idx);
                 }
                 return out;
             },
             false});
    add({NB_OP_MATMUL, "matmul_large_broadcast", {F(-1, 1), F(-1, 1)}, {{{2, 65, 130}, {130, 72}}},
         FLOATS, [](const Tensors &t) { return nb_matmul(t[0], t[1]); },
         [](const std::vector<Host> &h) { return matmul_ref(h[0], h[1]); }, false, 10});
}

// Both sides of every CPU threshold that changes the algorithm: the thread
// team starts at NB_CPU_PARALLEL_MIN (32,768) elements, and a reduction with
// fewer outputs than threads splits each output's elements into ranges from
// twice that. Inputs whose sign and order expose a wrong identity or merge:
// all negative, all positive, and ramps that put the extreme at either end.
void threshold_cases() {
    const std::vector<std::vector<Shape>> sizes = {{{32767}}, {{65535}}, {{65536}}, {{70001}},
                                                   {{2, 70000}}, {{3, 11000}}};
    const std::vector<std::pair<std::string, Input>> inputs = {
        {"negative", F(-3, -1)}, {"positive", F(1, 3)},
        {"ramp_up", RAMP_(-100000, -1)}, {"ramp_down", RAMP_(100000, 1)}};
    using Fold = std::function<double(const std::vector<double> &)>;
    auto first_of = [](bool largest) {
        return [largest](const std::vector<double> &v) {
            auto it = largest ? std::max_element(v.begin(), v.end()) : std::min_element(v.begin(), v.end());
            return (double)(it - v.begin());
        };
    };
    const std::vector<std::tuple<nb_op, Reducer, Fold>> extremes = {
        {NB_OP_MAX, nb_max, [](const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); }},
        {NB_OP_MIN, nb_min, [](const std::vector<double> &v) { return *std::min_element(v.begin(), v.end()); }},
        {NB_OP_ARGMAX, nb_argmax, first_of(true)},
        {NB_OP_ARGMIN, nb_argmin, first_of(false)},
        {NB_OP_SUM, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_sum(x, n, d, k); }, fold_sum},
        {NB_OP_LOGSUMEXP, nb_logsumexp, [](const std::vector<double> &v) {
             double m = *std::max_element(v.begin(), v.end()), s = 0;
             for (double a : v) s += std::exp(a - m);
             return m + std::log(s);
         }}};
    for (const auto &[op, fn, fold] : extremes)
        for (const auto &[tag, in] : inputs) {
            bool exp_like = op == NB_OP_LOGSUMEXP;
            if (exp_like && in.kind == RAMP) continue; // a ramp of integers is one term of the sum
            std::vector<nb_dtype> dtypes = {NB_F32, NB_F64, NB_I32, NB_I64};
            if (exp_like) dtypes = {NB_F32, NB_F64};
            int dim = -1;
            add({op, std::string(nb_op_name(op)) + "_threshold_" + tag, {in}, sizes, dtypes,
                 [fn, dim](const Tensors &t) { return fn(t[0], 1, &dim, false); },
                 [fold, dim](const std::vector<Host> &h) { return reduce_ref(h[0], {dim}, false, fold); },
                 false, op == NB_OP_SUM ? 100.0 : 1.0});
        }
    // the elementwise engine: serial below the cut-off, a thread team above
    add({NB_OP_MUL, "mul_threshold", {F(-3, -1), F(1, 3)},
         {{{32767}, {32767}}, {{32768}, {1}}, {{3, 11000}, {11000}}, {{40000, 1}, {1, 1}}}, SIGNED,
         [](const Tensors &t) { return nb_mul(t[0], t[1]); },
         [](const std::vector<Host> &h) {
             return map_n(h, [](const std::vector<double> &v) { return v[0] * v[1]; });
         },
         false});
    add({NB_OP_NEG, "neg_threshold", {RAMP_(1, 40000)}, {{{32767}}, {{32768}}, {{2, 20000}}}, SIGNED,
         [](const Tensors &t) { return nb_neg(t[0]); },
         [](const std::vector<Host> &h) { return map1(h[0], [](double a) { return -a; }); }, false});
    // blocked depthwise convolution with a partial block of channels, below and
    // above the input size that starts the thread team
    for (const Shape &x : {Shape{2, 9, 40, 45}, Shape{2, 9, 48, 40}}) {
        ConvConfig k = {{1, 1}, {1, 1}, {1, 1}, 9, {0, 0}};
        add({NB_OP_DEPTHWISE_CONV2D, "depthwise_threshold_" + shape_str(x), {F(-1, 1), F(-1, 1)},
             {{x, {9, 1, 3, 3}}}, {NB_F32, NB_F64},
             [k](const Tensors &t) { return nb_conv2d(t[0], t[1], nullptr, k.stride, k.padding, k.dilation, k.groups); },
             [k, x](const std::vector<Host> &h) { return conv_ref(h[0], h[1], nullptr, k, x[2], x[3]); },
             false, 5});
    }
    // the GPU's tiled 3x3 forward (planes at least 16 wide, tiles of 8 x 32
    // outputs) at stride 2 with two outputs a channel, partial tiles both ways
    ConvConfig strided = {{2, 2}, {1, 1}, {1, 1}, 4, {0, 0}};
    add({NB_OP_DEPTHWISE_CONV2D, "depthwise_tile_stride2", {F(-1, 1), F(-1, 1)}, {{{2, 4, 37, 70}, {8, 1, 3, 3}}},
         FLOATS,
         [strided](const Tensors &t) {
             return nb_conv2d(t[0], t[1], nullptr, strided.stride, strided.padding, strided.dilation, strided.groups);
         },
         [strided](const std::vector<Host> &h) { return conv_ref(h[0], h[1], nullptr, strided, 19, 35); }, false, 5});
}

void view_cases() {
    add({NB_OP_RESHAPE, "reshape", {F(-3, 3)}, {{{3, 4}}, {{2, 3, 2}}}, ALL,
         [](const Tensors &t) { return nb_reshape(t[0], 2, Shape{2, -1}.data()); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {2, h[0].numel() / 2}); }, true});
    add({NB_OP_RESHAPE, "view_flatten", {F(-3, 3)}, {{{3, 4}}, {{2, 3, 2}}}, ALL,
         [](const Tensors &t) {
             T dense(nb_contiguous(t[0]));
             return nb_view(dense, 1, Shape{-1}.data());
         },
         [](const std::vector<Host> &h) { return reshaped(h[0], {h[0].numel()}); }, true});
    add({NB_OP_PERMUTE, "permute", {F(-3, 3)}, {{{2, 3, 4}}}, ALL,
         [](const Tensors &t) {
             int dims[3] = {2, 0, 1};
             return nb_permute(t[0], dims);
         },
         [](const std::vector<Host> &h) { return permute_ref(h[0], {2, 0, 1}); }, true});
    add({NB_OP_TRANSPOSE, "transpose", {F(-3, 3)}, {{{2, 3, 4}}}, ALL,
         [](const Tensors &t) { return nb_transpose(t[0], 0, -1); },
         [](const std::vector<Host> &h) { return permute_ref(h[0], {2, 1, 0}); }, true});
    add({NB_OP_SLICE, "slice_step2", {F(-3, 3)}, {{{7, 4}}}, ALL,
         [](const Tensors &t) { return nb_slice(t[0], 0, 1, 6, 2); },
         [](const std::vector<Host> &h) { return slice_ref(h[0], 0, 1, 6, 2); }, true});
    add({NB_OP_SLICE, "slice_negative", {F(-3, 3)}, {{{3, 8}}}, ALL,
         [](const Tensors &t) { return nb_slice(t[0], -1, -5, 100, 3); },
         [](const std::vector<Host> &h) { return slice_ref(h[0], 1, 3, 8, 3); }, true});
    add({NB_OP_SQUEEZE, "squeeze", {F(-3, 3)}, {{{3, 1, 4}}}, ALL,
         [](const Tensors &t) { return nb_squeeze(t[0], 1); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {3, 4}); }, true});
    add({NB_OP_SQUEEZE, "squeeze_all", {F(-3, 3)}, {{{1, 3, 1}}}, ALL,
         [](const Tensors &t) { return nb_squeeze_all(t[0]); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {3}); }, true});
    add({NB_OP_UNSQUEEZE, "unsqueeze", {F(-3, 3)}, {{{3, 4}}}, ALL,
         [](const Tensors &t) { return nb_unsqueeze(t[0], -1); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {3, 4, 1}); }, true});
    add({NB_OP_UNSQUEEZE, "unsqueeze_scalar", {F(-3, 3)}, {{{}}}, ALL,
         [](const Tensors &t) { return nb_unsqueeze(t[0], 0); },
         [](const std::vector<Host> &h) { return reshaped(h[0], {1}); }, true});
    add({NB_OP_EXPAND, "expand", {F(-3, 3)}, {{{3, 1}}, {{1}}}, ALL,
         [](const Tensors &t) { return nb_expand(t[0], 3, Shape{2, 3, 4}.data()); },
         [](const std::vector<Host> &h) {
             return map_n({h[0], Host({2, 3, 4})}, [](const std::vector<double> &v) { return v[0]; });
         },
         true});
}

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
