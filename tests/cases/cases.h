// The op harness's shared part: a case (an op, its inputs, shapes, dtypes, a
// run and a double-precision reference), the references and builders the
// case files share, and each family's case function. A family's cases live
// in tests/cases/<family>.cc; tests/test_ops.cc runs them all.
#pragma once

#include <algorithm>
#include <array>
#include <map>
#include <numeric>

#include "../harness.h"

#include "../../src/core/oplist.h"

namespace op_cases {

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

inline Host map1(const Host &a, const std::function<double(double)> &f) {
    Host out(a.shape);
    for (int64_t i = 0; i < a.numel(); i++) out.v[i] = f(a.v[i]);
    return out;
}

inline Host map_n(const std::vector<Host> &in, const std::function<double(const std::vector<double> &)> &f) {
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
inline Host reduce_ref(const Host &x, std::vector<int> dims, bool keepdim,
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

inline double fold_sum(const std::vector<double> &v) { return std::accumulate(v.begin(), v.end(), 0.0); }
inline double fold_mean(const std::vector<double> &v) { return fold_sum(v) / v.size(); }
inline double fold_var(const std::vector<double> &v, double correction) {
    double m = fold_mean(v), s = 0;
    for (double a : v) s += (a - m) * (a - m);
    return s / (v.size() - correction);
}

inline Host permute_ref(const Host &x, const std::vector<int> &perm) {
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

inline Host slice_ref(const Host &x, int dim, int64_t start, int64_t end, int64_t step) {
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

inline Host cat_ref(const std::vector<Host> &parts, int dim) {
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

inline Host reshaped(Host h, Shape shape) {
    h.shape = std::move(shape);
    return h;
}

inline Host matmul_ref(const Host &a0, const Host &b0) {
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

inline Host softmax_ref(const Host &x, int dim, bool log_space) {
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

inline std::vector<Case> g_cases;

inline void add(Case c) { g_cases.push_back(std::move(c)); }

using Unary = nb_tensor *(*)(const nb_tensor *);
using Binary = nb_tensor *(*)(const nb_tensor *, const nb_tensor *);

const std::vector<std::vector<Shape>> UNARY_SHAPES = {{{}}, {{1}}, {{7}}, {{3, 5}}, {{2, 1, 4}}};
const std::vector<std::vector<Shape>> BINARY_SHAPES = {
    {{3, 5}, {3, 5}}, {{3, 1}, {1, 5}}, {{}, {4}}, {{2, 3, 4}, {4}}, {{1}, {1}}, {{2, 1, 3}, {4, 1}}};

inline void unary(nb_op op, Unary fn, std::function<double(double)> f, Input in,
           std::vector<nb_dtype> dtypes, bool grad) {
    add({op, nb_op_name(op), {in}, UNARY_SHAPES, dtypes,
         [fn](const Tensors &t) { return fn(t[0]); },
         [f](const std::vector<Host> &h) { return map1(h[0], f); }, grad});
}

inline void binary(nb_op op, Binary fn, std::function<double(double, double)> f, Input a, Input b,
            std::vector<nb_dtype> dtypes, bool grad) {
    add({op, nb_op_name(op), {a, b}, BINARY_SHAPES, dtypes,
         [fn](const Tensors &t) { return fn(t[0], t[1]); },
         [f](const std::vector<Host> &h) {
             return map_n(h, [f](const std::vector<double> &v) { return f(v[0], v[1]); });
         },
         grad});
}

using Reducer = std::function<nb_tensor *(const nb_tensor *, int, const int *, bool)>;

inline void reduction(nb_op op, Reducer fn, std::function<double(const std::vector<double> &)> fold,
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

inline Input F(double lo, double hi) { return {FLOAT, lo, hi}; }
inline Input I(double lo, double hi) { return {INTEGRAL, lo, hi}; }
inline Input IDX(int bound_dim, double hi = 0) { return {INDEX, 0, hi, bound_dim}; }
inline Input RAMP_(double from, double to) { return {RAMP, from, to}; }
inline const Input M = {MASK, 0, 1};

inline double philox_uniform(uint64_t seed, int64_t i, double lo, double hi) {
    auto w = PhiloxRef::block(seed, (uint64_t)i);
    return lo + (hi - lo) * PhiloxRef::unit(w[0], w[1]);
}

inline nb_dtype g_dtype; // the dtype a zero-input case creates
inline nb_device g_device; // the device cases run on

// Convolution settings, and the direct convolution in double (conv.cc): padding is the
// top/left offset, ho x wo the output.
struct ConvConfig {
    int stride[2], padding[2], dilation[2], groups;
    int output_padding[2];
};
Host conv_ref(const Host &x, const Host &w, const Host *b, const ConvConfig &k, int64_t ho, int64_t wo);

// Each family's cases, appended to g_cases.
void zero_input_cases();
void elementwise_cases();
void reduction_cases();
void linear_algebra_cases();
void join_and_index_cases();
void view_cases();
void large_cases();
void loss_cases();
void norm_cases();
void row_norm_cases();
void large_norm_cases();
void position_cases();
void attention_cases();
void conv_cases();
void pool_cases();
void optimizer_cases();
void threshold_cases();
void sort_cases();
void activation_cases();
void pointwise_loss_cases();
void scan_cases();

} // namespace op_cases
