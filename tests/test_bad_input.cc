// Bad input as a table: every public function of include/nabla/ with NULLs,
// zero, negative, huge and overflowing sizes, more than 8 dims, axes,
// indices and steps out of range, wrong dtypes and devices, NaN and inf
// hyper-parameters. Each row names the call, the status it must return and
// words its message must hold; after every row the inputs must be
// unchanged. A coverage test parses the headers and fails for a public
// function with no row (or no entry among the calls that take nothing a user
// can get wrong).
#include <array>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "harness.h"
#ifdef NABLA_TEST_DLPACK
#include <nabla/dlpack.h>
#endif

namespace {

struct Row {
    std::string fn, call;
    std::function<bool()> run; // true when the call succeeded (it must not)
    nb_status status;
    std::string words;
};

std::vector<Row> g_rows;
std::set<std::string> g_no_bad_input; // functions whose every input is valid (with a reason)

bool ok(nb_tensor *t) {
    nb_release(t);
    return t != nullptr;
}
bool ok(nb_status s) { return s == NB_OK; }
bool ok(nb_module *m) {
    nb_module_free(m);
    return m != nullptr;
}
bool ok(nb_optimizer *o) {
    nb_optimizer_free(o);
    return o != nullptr;
}
bool ok(nb_lr_scheduler *s) {
    nb_lr_scheduler_free(s);
    return s != nullptr;
}
bool ok(nb_batches *b) {
    nb_batches_free(b);
    return b != nullptr;
}
bool ok(int n) { return n >= 0; }
bool ok(int64_t n) { return n >= 0; }
bool ok(const char *s) { return s != nullptr; }

#define ROW(fn, status, words, ...) \
    g_rows.push_back({#fn, #__VA_ARGS__, [=] { return ok(__VA_ARGS__); }, status, words})

// The inputs every row may read; their values are checked after each row.
struct Fixture {
    nb_tensor *x, *xi, *mask, *img, *weight, *q, *d, *cols, *tokens;
    nb_module *linear, *attention, *gpt;
    nb_optimizer *opt;
    nb_generator *gen;
    nb_batches *batches;
    std::vector<nb_tensor *> all() const { return {x, xi, mask, img, weight, q, d, cols, tokens}; }
};

Fixture *g_fx;

std::vector<std::vector<double>> snapshot(const Fixture &f) {
    std::vector<std::vector<double>> values;
    for (nb_tensor *t : f.all()) values.push_back(read_tensor(t).v);
    return values;
}

const nb_dtype BAD_DTYPE = (nb_dtype)42;
const int64_t HUGE_SIZE = INT64_MAX;

void build_rows() {
    const Fixture &f = *g_fx;
    nb_tensor *x = f.x, *xi = f.xi, *mask = f.mask, *img = f.img, *w = f.weight, *q = f.q, *d = f.d;
    nb_tensor *cols = f.cols, *tokens = f.tokens;
    nb_module *linear = f.linear, *attention = f.attention, *gpt = f.gpt;
    nb_optimizer *opt = f.opt;
    nb_generator *gen = f.gen;
    nb_batches *batches = f.batches;
    nb_device cpu = nb_cpu(), cpu3 = nb_cpu(), gpu7 = nb_cuda(7);
    cpu3.index = 3;
    static const int64_t s23[2] = {2, 3}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[2] = {2, -3};
    static const int64_t over[2] = {HUGE_SIZE, 4}, s4 = 4;
    static const int bad_dim[1] = {5}, twice[2] = {0, -2}, k3[2] = {3, 3};
    static const int k0[2] = {0, 0}, s0[2] = {0, 1}, p_neg[2] = {-2, 0}, big_pad[2] = {INT32_MAX, INT32_MAX};
    static const int perm_bad[2] = {0, 0};
    static nb_tensor *none[1] = {nullptr};
    static char text[64];
    static double value;
    static int64_t host_i64[3];
    static nb_tensor *pieces[8];
    static int count;
    static nb_named_tensor named[4];
    static nb_stream *stream;
    static nb_event *event;
    static float ms;
    static nb_cuda_properties props;
    static nb_cuda_memory_stats cuda_stats;
    static nb_tensor *out_a, *out_b;

    // ---- tensors: creation ----
    ROW(nb_empty, NB_ERR_SHAPE, "9 dims requested, at most 8", nb_empty(9, s9, NB_F32, cpu));
    ROW(nb_empty, NB_ERR_SHAPE, "negative size -3", nb_empty(2, neg, NB_F32, cpu));
    ROW(nb_empty, NB_ERR_INVALID, "shape is NULL", nb_empty(2, nullptr, NB_F32, cpu));
    ROW(nb_empty, NB_ERR_DTYPE, "invalid dtype 42", nb_empty(2, s23, BAD_DTYPE, cpu));
    ROW(nb_empty, NB_ERR_DEVICE, "cpu:3", nb_empty(2, s23, NB_F32, cpu3));
    ROW(nb_empty, NB_ERR_DEVICE, "cuda:7", nb_empty(2, s23, NB_F32, gpu7));
    ROW(nb_zeros, NB_ERR_OVERFLOW, "more than 2^63 elements", nb_zeros(2, over, NB_F32, cpu));
    ROW(nb_zeros, NB_ERR_OVERFLOW, "does not fit in addressable memory",
        nb_zeros(1, Shape{(int64_t)1 << 61}.data(), NB_F64, cpu));
    ROW(nb_ones, NB_ERR_SHAPE, "negative size", nb_ones(2, neg, NB_F32, cpu));
    ROW(nb_full, NB_ERR_INVALID, "does not fit i32", nb_full(2, s23, 3e9, NB_I32, cpu));
    ROW(nb_full, NB_ERR_INVALID, "does not fit u8", nb_full(2, s23, NAN, NB_U8, cpu));
    ROW(nb_scalar, NB_ERR_INVALID, "does not fit i64", nb_scalar(INFINITY, NB_I64, cpu));
    ROW(nb_scalar, NB_ERR_DTYPE, "invalid dtype", nb_scalar(1, BAD_DTYPE, cpu));
    ROW(nb_arange, NB_ERR_INVALID, "must be finite", nb_arange(0, NAN, 1, NB_F32, cpu));
    ROW(nb_arange, NB_ERR_INVALID, "step nonzero", nb_arange(0, 3, 0, NB_F32, cpu));
    ROW(nb_arange, NB_ERR_INVALID, "moves away", nb_arange(0, 3, -1, NB_F32, cpu));
    ROW(nb_arange, NB_ERR_OVERFLOW, "too many", nb_arange(0, 1e300, 1, NB_F32, cpu));
    ROW(nb_linspace, NB_ERR_INVALID, "non-negative", nb_linspace(0, 1, -1, NB_F32, cpu));
    ROW(nb_linspace, NB_ERR_INVALID, "finite", nb_linspace(0, INFINITY, 3, NB_F32, cpu));
    ROW(nb_eye, NB_ERR_SHAPE, "negative size", nb_eye(-1, 3, NB_F32, cpu));
    ROW(nb_eye, NB_ERR_OVERFLOW, "2^63", nb_eye(2, HUGE_SIZE, NB_F32, cpu));
    ROW(nb_from_host, NB_ERR_INVALID, "data is NULL", nb_from_host(nullptr, 2, s23, NB_F32, cpu));
    ROW(nb_from_host, NB_ERR_SHAPE, "9 dims", nb_from_host(text, 9, s9, NB_U8, cpu));
    ROW(nb_from_buffer, NB_ERR_INVALID, "needs 24 bytes, the buffer has 8",
        nb_from_buffer(text, 8, 2, s23, NB_F32, cpu));
    ROW(nb_from_buffer, NB_ERR_OVERFLOW, "2^63", nb_from_buffer(text, 8, 2, over, NB_F32, cpu));
    static const int64_t back[2] = {-1, 1}, wide[2] = {INT64_MAX, 1};
    ROW(nb_from_memory, NB_ERR_INVALID, "reaches 24 bytes, the memory has 8",
        nb_from_memory(text, 8, 2, s23, nullptr, NB_F32, cpu, nullptr, nullptr));
    ROW(nb_from_memory, NB_ERR_INVALID, "data is NULL",
        nb_from_memory(nullptr, 24, 2, s23, nullptr, NB_F32, cpu, nullptr, nullptr));
    ROW(nb_from_memory, NB_ERR_INVALID, "stride -1 of dim 0 is negative",
        nb_from_memory(text, 64, 2, s23, back, NB_U8, cpu, nullptr, nullptr));
    ROW(nb_from_memory, NB_ERR_INVALID, "too large",
        nb_from_memory(text, 64, 2, s23, wide, NB_F64, cpu, nullptr, nullptr));
    ROW(nb_from_memory, NB_ERR_OVERFLOW, "2^63",
        nb_from_memory(text, 64, 2, over, nullptr, NB_U8, cpu, nullptr, nullptr));
    ROW(nb_from_memory, NB_ERR_DTYPE, "invalid dtype",
        nb_from_memory(text, 64, 2, s23, nullptr, BAD_DTYPE, cpu, nullptr, nullptr));
    ROW(nb_from_memory, NB_ERR_DEVICE, "cuda:7",
        nb_from_memory(text, 64, 2, s23, nullptr, NB_U8, gpu7, nullptr, nullptr));
    ROW(nb_uniform, NB_ERR_INVALID, "finite low <= high", nb_uniform(2, s23, 1, 0, NB_F32, cpu, gen));
    ROW(nb_uniform, NB_ERR_DTYPE, "float dtype", nb_uniform(2, s23, 0, 1, NB_I32, cpu, gen));
    ROW(nb_normal, NB_ERR_INVALID, "std >= 0", nb_normal(2, s23, 0, -1, NB_F32, cpu, gen));
    ROW(nb_normal, NB_ERR_INVALID, "finite mean", nb_normal(2, s23, NAN, 1, NB_F32, cpu, gen));
    ROW(nb_bernoulli, NB_ERR_INVALID, "p must be in [0, 1]", nb_bernoulli(2, s23, 1.5, NB_F32, cpu, gen));
    ROW(nb_bernoulli, NB_ERR_SHAPE, "negative size", nb_bernoulli(2, neg, 0.5, NB_F32, cpu, gen));
    ROW(nb_randint, NB_ERR_INVALID, "low < high", nb_randint(3, 3, 2, s23, NB_I64, cpu, gen));
    ROW(nb_randint, NB_ERR_INVALID, "u8", nb_randint(0, 300, 2, s23, NB_U8, cpu, gen));
    ROW(nb_randint, NB_ERR_INVALID, "[-9223372036854775808, 9223372036854775807)",
        nb_randint(INT64_MIN, INT64_MAX, 2, s23, NB_I64, cpu, gen));
    ROW(nb_randperm, NB_ERR_INVALID, "got n = -1", nb_randperm(-1, NB_I64, cpu, gen));
    ROW(nb_randperm, NB_ERR_INVALID, "bool", nb_randperm(3, NB_BOOL, cpu, gen));
    // ---- tensors: access ----
    ROW(nb_to_host, NB_ERR_INVALID, "tensor is NULL", nb_to_host(nullptr, text, 8));
    ROW(nb_to_host, NB_ERR_INVALID, "needs 24 bytes, got 8", nb_to_host(x, text, 8));
    ROW(nb_to_host, NB_ERR_INVALID, "dst is NULL", nb_to_host(xi, nullptr, 24));
    ROW(nb_item, NB_ERR_SHAPE, "needs a one-element tensor, got shape [2,3]", nb_item(x, &value));
    ROW(nb_item, NB_ERR_INVALID, "NULL", nb_item(x, nullptr));
    ROW(nb_copy_, NB_ERR_INVALID, "dst is NULL", nb_copy_(nullptr, x));
    ROW(nb_copy_, NB_ERR_SHAPE, "nb_copy_: cannot expand", nb_copy_(xi, x));
    ROW(nb_copy_, NB_ERR_AUTOGRAD, "dst requires a gradient", nb_copy_(d, d));
    ROW(nb_copy_, NB_ERR_INVALID, "broadcast view", nb_copy_(T(nb_expand(xi, 2, Shape{2, 3}.data())), d));
    ROW(nb_to, NB_ERR_DEVICE, "cuda:7", nb_to(x, gpu7));
    ROW(nb_to, NB_ERR_INVALID, "tensor is NULL", nb_to(nullptr, cpu));
    ROW(nb_size, NB_ERR_INDEX, "dim 5", nb_size(x, 5));
    ROW(nb_size, NB_ERR_INVALID, "tensor is NULL", nb_size(nullptr, 0));
    ROW(nb_format, NB_ERR_INVALID, "tensor is NULL", nb_format(nullptr, text, sizeof text));
    ROW(nb_fprint, NB_ERR_INVALID, "stream is NULL", nb_fprint(nullptr, x));
    ROW(nb_print, NB_ERR_INVALID, "nb_print: nb_format: tensor is NULL", nb_print(nullptr));
    ROW(nb_device_str, NB_ERR_INVALID, "needs a buffer", nb_device_str(cpu, nullptr, 16));
    ROW(nb_release_cached_memory, NB_ERR_DEVICE, "cuda:7", nb_release_cached_memory(gpu7));
    // ---- views ----
    ROW(nb_reshape, NB_ERR_SHAPE, "holds 7 elements", nb_reshape(x, 1, Shape{7}.data()));
    ROW(nb_reshape, NB_ERR_SHAPE, "more than one -1", nb_reshape(x, 2, Shape{-1, -1}.data()));
    ROW(nb_reshape, NB_ERR_INVALID, "shape is NULL", nb_reshape(x, 2, nullptr));
    ROW(nb_reshape, NB_ERR_SHAPE, "9 dims", nb_reshape(x, 9, s9));
    ROW(nb_reshape, NB_ERR_OVERFLOW, "2^63", nb_reshape(x, 2, over));
    ROW(nb_view, NB_ERR_SHAPE, "", nb_view(T(nb_transpose(x, 0, 1)), 1, Shape{6}.data()));
    ROW(nb_view, NB_ERR_INVALID, "tensor is NULL", nb_view(nullptr, 1, &s4));
    ROW(nb_permute, NB_ERR_INDEX, "", nb_permute(x, perm_bad));
    ROW(nb_permute, NB_ERR_INVALID, "NULL", nb_permute(x, nullptr));
    ROW(nb_transpose, NB_ERR_INDEX, "dim 2", nb_transpose(x, 0, 2));
    ROW(nb_slice, NB_ERR_INVALID, "step must be >= 1", nb_slice(x, 0, 0, 2, 0));
    ROW(nb_slice, NB_ERR_INDEX, "dim -3", nb_slice(x, -3, 0, 2, 1));
    ROW(nb_slice, NB_ERR_INDEX, "0-dim", nb_slice(T(nb_scalar(1, NB_F32, cpu)), 0, 0, 1, 1));
    ROW(nb_squeeze, NB_ERR_SHAPE, "", nb_squeeze(x, 0));
    ROW(nb_squeeze, NB_ERR_INDEX, "", nb_squeeze(x, 4));
    ROW(nb_squeeze_all, NB_ERR_INVALID, "tensor is NULL", nb_squeeze_all(nullptr));
    ROW(nb_unsqueeze, NB_ERR_INDEX, "", nb_unsqueeze(x, 4));
    ROW(nb_expand, NB_ERR_SHAPE, "cannot expand", nb_expand(x, 2, Shape{4, 3}.data()));
    ROW(nb_expand, NB_ERR_OVERFLOW, "2^63", nb_expand(T(nb_reshape(d, 2, Shape{3, 1}.data())), 2,
                                                     Shape{3, HUGE_SIZE}.data()));
    ROW(nb_expand, NB_ERR_INVALID, "shape is NULL", nb_expand(x, 2, nullptr));
    ROW(nb_broadcast_to, NB_ERR_SHAPE, "nb_broadcast_to: cannot expand", nb_broadcast_to(x, 1, &s4));
    ROW(nb_contiguous, NB_ERR_INVALID, "tensor is NULL", nb_contiguous(nullptr));
    ROW(nb_clone, NB_ERR_INVALID, "tensor is NULL", nb_clone(nullptr));
    ROW(nb_detach, NB_ERR_INVALID, "tensor is NULL", nb_detach(nullptr));
    ROW(nb_cast, NB_ERR_DTYPE, "invalid dtype 42", nb_cast(x, BAD_DTYPE));
    ROW(nb_cast, NB_ERR_INVALID, "tensor is NULL", nb_cast(nullptr, NB_F32));
    // ---- elementwise ----
    for (auto fn : std::vector<std::pair<const char *, nb_tensor *(*)(const nb_tensor *)>>{
             {"nb_neg", nb_neg}, {"nb_abs", nb_abs}, {"nb_exp", nb_exp}, {"nb_log", nb_log},
             {"nb_log1p", nb_log1p}, {"nb_sqrt", nb_sqrt}, {"nb_rsqrt", nb_rsqrt}, {"nb_sin", nb_sin},
             {"nb_cos", nb_cos}, {"nb_tanh", nb_tanh}, {"nb_sigmoid", nb_sigmoid}, {"nb_relu", nb_relu},
             {"nb_sign", nb_sign}, {"nb_floor", nb_floor}, {"nb_ceil", nb_ceil}, {"nb_round", nb_round},
             {"nb_logical_not", nb_logical_not}, {"nb_relu6", nb_relu6}, {"nb_silu", nb_silu},
             {"nb_hardsigmoid", nb_hardsigmoid}, {"nb_hardswish", nb_hardswish}, {"nb_swiglu", nb_swiglu},
             {"nb_selu", nb_selu}, {"nb_mish", nb_mish}, {"nb_softsign", nb_softsign},
             {"nb_logsigmoid", nb_logsigmoid}, {"nb_tanhshrink", nb_tanhshrink},
             {"nb_contiguous", nb_contiguous}}) {
        auto call = fn.second;
        g_rows.push_back({fn.first, std::string(fn.first) + "(NULL)", [call] { return ok(call(nullptr)); },
                          NB_ERR_INVALID, "NULL"});
    }
    ROW(nb_swiglu, NB_ERR_SHAPE, "[..., 2F]", nb_swiglu(x));
    ROW(nb_swiglu, NB_ERR_DTYPE, "got i64", nb_swiglu(T(nb_zeros(1, Shape{4}.data(), NB_I64, cpu))));
    ROW(nb_clamp, NB_ERR_INVALID, "", nb_clamp(x, 2, 1));
    ROW(nb_clamp, NB_ERR_INVALID, "", nb_clamp(x, NAN, 1));
    ROW(nb_leaky_relu, NB_ERR_INVALID, "", nb_leaky_relu(x, NAN));
    ROW(nb_gelu, NB_ERR_INVALID, "NULL", nb_gelu(nullptr, false));
    ROW(nb_elu, NB_ERR_INVALID, "alpha must be finite, got inf", nb_elu(x, INFINITY));
    ROW(nb_elu, NB_ERR_INVALID, "NULL", nb_elu(nullptr, 1));
    ROW(nb_celu, NB_ERR_INVALID, "alpha must be finite and nonzero, got 0", nb_celu(x, 0));
    ROW(nb_softplus, NB_ERR_INVALID, "beta must be finite and nonzero, got 0", nb_softplus(x, 0, 20));
    ROW(nb_softplus, NB_ERR_INVALID, "threshold must be finite, got nan", nb_softplus(x, 1, NAN));
    ROW(nb_swish, NB_ERR_INVALID, "beta must be finite, got nan", nb_swish(x, NAN));
    ROW(nb_threshold, NB_ERR_INVALID, "must not be NaN", nb_threshold(x, NAN, 0));
    ROW(nb_hardtanh, NB_ERR_INVALID, "min_val <= max_val, got 1 and -1", nb_hardtanh(x, 1, -1));
    ROW(nb_hardshrink, NB_ERR_INVALID, "lambda must be finite and >= 0, got -1", nb_hardshrink(x, -1));
    ROW(nb_softshrink, NB_ERR_INVALID, "lambda must be finite and >= 0, got inf", nb_softshrink(x, INFINITY));
    ROW(nb_prelu, NB_ERR_SHAPE, "needs weight [1] or [3] (the channels of x [2,3]), got [2]",
        nb_prelu(x, T(nb_ones(1, Shape{2}.data(), NB_F32, cpu))));
    ROW(nb_prelu, NB_ERR_INVALID, "weight is NULL", nb_prelu(x, nullptr));
    ROW(nb_rrelu, NB_ERR_INVALID, "finite lower <= upper, got 0.5 and 0.1", nb_rrelu(x, 0.5, 0.1, true, gen));
    ROW(nb_rrelu, NB_ERR_DTYPE, "nb_rrelu: needs a float x in training, got i64", nb_rrelu(xi, 0.1, 0.3, true, gen));
    ROW(nb_rrelu, NB_ERR_INVALID, "NULL", nb_rrelu(nullptr, 0.1, 0.3, false, gen));
    ROW(nb_glu, NB_ERR_SHAPE, "even size along dim 1", nb_glu(x, 1));
    ROW(nb_glu, NB_ERR_INDEX, "dim 2", nb_glu(x, 2));
    ROW(nb_maxout, NB_ERR_SHAPE, "pieces >= 1 dividing dim 1 of [2,3]", nb_maxout(x, 2, 1));
    ROW(nb_maxout, NB_ERR_SHAPE, "got 0", nb_maxout(x, 0, 1));
    ROW(nb_maxout, NB_ERR_INVALID, "NULL", nb_maxout(nullptr, 2, 0));
    for (auto fn : std::vector<std::pair<const char *, nb_tensor *(*)(const nb_tensor *, const nb_tensor *)>>{
             {"nb_add", nb_add}, {"nb_sub", nb_sub}, {"nb_mul", nb_mul}, {"nb_div", nb_div},
             {"nb_pow", nb_pow}, {"nb_maximum", nb_maximum}, {"nb_minimum", nb_minimum},
             {"nb_eq", nb_eq}, {"nb_ne", nb_ne}, {"nb_lt", nb_lt}, {"nb_le", nb_le}, {"nb_gt", nb_gt},
             {"nb_ge", nb_ge}, {"nb_logical_and", nb_logical_and}, {"nb_logical_or", nb_logical_or},
             {"nb_logical_xor", nb_logical_xor}, {"nb_matmul", nb_matmul}}) {
        auto call = fn.second;
        std::string name = fn.first;
        g_rows.push_back({name, name + "(x, NULL)", [call, x] { return ok(call(x, nullptr)); },
                          NB_ERR_INVALID, "NULL"});
        if (name != "nb_matmul")
            g_rows.push_back({name, name + "([2,3], [4])",
                              [call, x] { return ok(call(x, T(nb_zeros(1, &s4, NB_F32, nb_cpu())))); },
                              NB_ERR_SHAPE, "[2,3]"});
    }
    ROW(nb_matmul, NB_ERR_SHAPE, "inner dimensions differ", nb_matmul(x, x));
    ROW(nb_matmul, NB_ERR_SHAPE, "", nb_matmul(T(nb_scalar(1, NB_F32, cpu)), x));
    ROW(nb_where, NB_ERR_DTYPE, "cond must be bool", nb_where(x, x, x));
    ROW(nb_where, NB_ERR_INVALID, "NULL", nb_where(mask, nullptr, x));
    ROW(nb_masked_fill, NB_ERR_DTYPE, "mask must be bool", nb_masked_fill(x, x, 0));
    ROW(nb_masked_fill, NB_ERR_INVALID, "does not fit i64", nb_masked_fill(xi, T(nb_ones(1, Shape{3}.data(), NB_BOOL, cpu)), NAN));
    ROW(nb_linear, NB_ERR_SHAPE, "", nb_linear(x, w, nullptr));
    ROW(nb_linear, NB_ERR_INVALID, "NULL", nb_linear(nullptr, x, nullptr));
    // ---- reductions ----
    for (auto fn : std::vector<std::pair<const char *, nb_tensor *(*)(const nb_tensor *, int, const int *, bool)>>{
             {"nb_sum", nb_sum}, {"nb_mean", nb_mean}, {"nb_prod", nb_prod}, {"nb_max", nb_max},
             {"nb_min", nb_min}, {"nb_argmax", nb_argmax}, {"nb_argmin", nb_argmin},
             {"nb_logsumexp", nb_logsumexp}}) {
        auto call = fn.second;
        std::string name = fn.first;
        g_rows.push_back({name, name + "(x, dim 5)", [call, x] { return ok(call(x, 1, bad_dim, false)); },
                          NB_ERR_INDEX, "dim 5"});
        g_rows.push_back({name, name + "(x, dims 0 and -2)", [call, x] { return ok(call(x, 2, twice, false)); },
                          NB_ERR_INVALID, "twice"});
        g_rows.push_back({name, name + "(NULL)", [call] { return ok(call(nullptr, 0, nullptr, false)); },
                          NB_ERR_INVALID, "NULL"});
        g_rows.push_back({name, name + "(x, 1 dim, NULL)", [call, x] { return ok(call(x, 1, nullptr, false)); },
                          NB_ERR_INVALID, "NULL"});
    }
    ROW(nb_mean, NB_ERR_DTYPE, "", nb_mean(xi, 0, nullptr, false));
    ROW(nb_max, NB_ERR_SHAPE, "cannot reduce over zero elements", nb_max(T(nb_zeros(1, Shape{0}.data(), NB_F32, cpu)), 0, nullptr, false));
    ROW(nb_var, NB_ERR_INVALID, "correction must be finite, got inf", nb_var(x, 0, nullptr, INFINITY, false));
    ROW(nb_var, NB_ERR_INDEX, "dim 5", nb_var(x, 1, bad_dim, 1, false));
    ROW(nb_std, NB_ERR_INVALID, "correction", nb_std(x, 0, nullptr, NAN, false));
    ROW(nb_norm, NB_ERR_INVALID, "p must be >= 0", nb_norm(x, -1, 0, nullptr, false));
    ROW(nb_norm, NB_ERR_INVALID, "p must be >= 0", nb_norm(x, NAN, 0, nullptr, false));
    // ---- sorting, selection, scans ----
    ROW(nb_sort, NB_ERR_INDEX, "dim 5", nb_sort(x, 5, false, nullptr));
    ROW(nb_sort, NB_ERR_INVALID, "nb_sort: x is NULL", nb_sort(nullptr, 0, false, nullptr));
    ROW(nb_argsort, NB_ERR_INDEX, "dim -3", nb_argsort(x, -3, true));
    ROW(nb_argsort, NB_ERR_INVALID, "NULL", nb_argsort(nullptr, 0, false));
    ROW(nb_topk, NB_ERR_INVALID, "needs 0 <= k <= 3 (the size of dim 1 of [2,3]), got 4", nb_topk(x, 4, 1, true, nullptr));
    ROW(nb_topk, NB_ERR_INVALID, "got -1", nb_topk(x, -1, 1, true, nullptr));
    ROW(nb_topk, NB_ERR_INDEX, "dim 2", nb_topk(x, 1, 2, true, nullptr));
    ROW(nb_searchsorted, NB_ERR_SHAPE, "leading dims match", nb_searchsorted(x, T(nb_zeros(1, Shape{4}.data(), NB_F32, cpu)), false));
    ROW(nb_searchsorted, NB_ERR_SHAPE, "got []", nb_searchsorted(T(nb_scalar(1, NB_F32, cpu)), x, false));
    ROW(nb_searchsorted, NB_ERR_INVALID, "values is NULL", nb_searchsorted(x, nullptr, false));
    ROW(nb_bucketize, NB_ERR_SHAPE, "needs 1-D boundaries, got [2,3]", nb_bucketize(x, x, false));
    ROW(nb_bucketize, NB_ERR_INVALID, "NULL", nb_bucketize(nullptr, T(nb_zeros(1, Shape{4}.data(), NB_F32, cpu)), true));
    ROW(nb_cumsum, NB_ERR_INDEX, "dim 2", nb_cumsum(x, 2));
    ROW(nb_cumsum, NB_ERR_INVALID, "NULL", nb_cumsum(nullptr, 0));
    ROW(nb_cumprod, NB_ERR_INDEX, "dim -3", nb_cumprod(x, -3));
    ROW(nb_cumprod, NB_ERR_INVALID, "NULL", nb_cumprod(nullptr, 0));
    ROW(nb_logcumsumexp, NB_ERR_DTYPE, "needs a float tensor, got i64", nb_logcumsumexp(xi, 0));
    ROW(nb_logcumsumexp, NB_ERR_INVALID, "NULL", nb_logcumsumexp(nullptr, 0));
    ROW(nb_multinomial, NB_ERR_INVALID, "negative, infinite or NaN", nb_multinomial(T(nb_full(1, Shape{3}.data(), -1, NB_F32, cpu)), 1, true, gen));
    ROW(nb_multinomial, NB_ERR_INVALID, "sum to 0", nb_multinomial(T(nb_zeros(2, s23, NB_F32, cpu)), 1, true, gen));
    ROW(nb_multinomial, NB_ERR_INVALID, "1 <= num_samples <= categories without replacement, got 4", nb_multinomial(x, 4, false, gen));
    ROW(nb_multinomial, NB_ERR_INVALID, "got 0", nb_multinomial(x, 0, true, gen));
    ROW(nb_multinomial, NB_ERR_OVERFLOW, "overflow", nb_multinomial(x, INT64_MAX, true, gen));
    ROW(nb_multinomial, NB_ERR_DTYPE, "float dtype, got i64", nb_multinomial(xi, 1, true, gen));
    ROW(nb_multinomial, NB_ERR_SHAPE, "got [1,2,3]", nb_multinomial(T(nb_ones(3, Shape{1, 2, 3}.data(), NB_F32, cpu)), 1, true, gen));
    ROW(nb_multinomial, NB_ERR_INVALID, "weights is NULL", nb_multinomial(nullptr, 1, true, gen));
    ROW(nb_softmax, NB_ERR_INDEX, "dim 2", nb_softmax(x, 2));
    ROW(nb_softmax, NB_ERR_DTYPE, "", nb_softmax(xi, 0));
    ROW(nb_log_softmax, NB_ERR_INVALID, "NULL", nb_log_softmax(nullptr, 0));
    // ---- joins and indexing ----
    ROW(nb_cat, NB_ERR_INVALID, "got NULL with n = 2", nb_cat(2, nullptr, 0));
    ROW(nb_cat, NB_ERR_INVALID, "n = 0", nb_cat(0, std::vector<const nb_tensor *>{x}.data(), 0));
    ROW(nb_cat, NB_ERR_INVALID, "NULL", nb_cat(1, (const nb_tensor *const *)none, 0));
    ROW(nb_cat, NB_ERR_SHAPE, "", nb_cat(2, std::vector<const nb_tensor *>{x, d}.data(), 0));
    ROW(nb_stack, NB_ERR_INVALID, "tensor 1 of 2 is NULL", nb_stack(2, std::vector<const nb_tensor *>{x, nullptr}.data(), 0));
    ROW(nb_stack, NB_ERR_INVALID, "got NULL with n = 2", nb_stack(2, nullptr, 0));
    ROW(nb_stack, NB_ERR_SHAPE, "tensor 1 has shape", nb_stack(2, std::vector<const nb_tensor *>{x, d}.data(), 0));
    ROW(nb_split, NB_ERR_INVALID, "split_size must be >= 1", nb_split(x, 0, 0, 8, pieces, &count));
    ROW(nb_split, NB_ERR_INVALID, "room for 1", nb_split(x, 1, 1, 1, pieces, &count));
    ROW(nb_split, NB_ERR_INVALID, "out is NULL", nb_split(x, 1, 1, 8, nullptr, &count));
    ROW(nb_split, NB_ERR_INDEX, "dim 4", nb_split(x, 1, 4, 8, pieces, &count));
    ROW(nb_chunk, NB_ERR_INVALID, "chunks must be >= 1", nb_chunk(x, 0, 0, 8, pieces, &count));
    ROW(nb_chunk, NB_ERR_INVALID, "nb_chunk: nb_split: ", nb_chunk(x, 3, 1, 1, pieces, &count));
    ROW(nb_index_select, NB_ERR_INDEX, "index -1", nb_index_select(x, 0, T(nb_full(1, &s4, -1, NB_I64, cpu))));
    ROW(nb_index_select, NB_ERR_DTYPE, "", nb_index_select(x, 0, x));
    ROW(nb_index_select, NB_ERR_INDEX, "dim 3", nb_index_select(x, 3, xi));
    ROW(nb_gather, NB_ERR_INDEX, "out of range", nb_gather(x, 1, T(nb_full(2, s23, 3, NB_I64, cpu))));
    ROW(nb_gather, NB_ERR_INVALID, "NULL", nb_gather(x, 1, nullptr));
    ROW(nb_scatter_add, NB_ERR_INDEX, "out of range",
        nb_scatter_add(x, 1, T(nb_full(2, s23, 9, NB_I64, cpu)), x));
    ROW(nb_scatter_add, NB_ERR_INVALID, "NULL", nb_scatter_add(x, 1, xi, nullptr));
    ROW(nb_embedding, NB_ERR_INDEX, "nb_embedding: nb_index_select: index 2", nb_embedding(x, xi));
    ROW(nb_embedding, NB_ERR_SHAPE, "weight [num, dim]", nb_embedding(d, xi));
    ROW(nb_one_hot, NB_ERR_INDEX, "index 2", nb_one_hot(xi, 2));
    ROW(nb_one_hot, NB_ERR_DTYPE, "", nb_one_hot(x, 3));
    // ---- convolution, pooling, normalization, losses, attention ----
    ROW(nb_conv2d, NB_ERR_SHAPE, "", nb_conv2d(x, w, nullptr, nullptr, nullptr, nullptr, 1));
    ROW(nb_conv2d, NB_ERR_INVALID, "stride", nb_conv2d(img, w, nullptr, s0, nullptr, nullptr, 1));
    ROW(nb_conv2d, NB_ERR_INVALID, "padding", nb_conv2d(img, w, nullptr, nullptr, p_neg, nullptr, 1));
    ROW(nb_conv2d, NB_ERR_OVERFLOW, "overflows", nb_conv2d(img, w, nullptr, nullptr, big_pad, nullptr, 1));
    ROW(nb_conv2d, NB_ERR_SHAPE, "", nb_conv2d(img, w, nullptr, nullptr, nullptr, nullptr, 3));
    ROW(nb_conv2d, NB_ERR_INVALID, "NULL", nb_conv2d(img, nullptr, nullptr, nullptr, nullptr, nullptr, 1));
    ROW(nb_conv_transpose2d, NB_ERR_INVALID, "output_padding",
        nb_conv_transpose2d(img, w, nullptr, nullptr, nullptr, std::array<int, 2>{1, 1}.data(), nullptr, 1));
    ROW(nb_conv_transpose2d, NB_ERR_SHAPE, "", nb_conv_transpose2d(x, w, nullptr, nullptr, nullptr, nullptr, nullptr, 1));
    ROW(nb_unfold, NB_ERR_INVALID, "kernel", nb_unfold(img, k0, nullptr, nullptr, nullptr));
    ROW(nb_unfold, NB_ERR_OVERFLOW, "overflows", nb_unfold(img, k3, nullptr, big_pad, nullptr));
    ROW(nb_fold, NB_ERR_SHAPE, "", nb_fold(cols, Shape{HUGE_SIZE, 3}.data(), k3, nullptr, nullptr, nullptr));
    ROW(nb_fold, NB_ERR_INVALID, "", nb_fold(cols, nullptr, k3, nullptr, nullptr, nullptr));
    ROW(nb_max_pool2d, NB_ERR_INVALID, "kernel", nb_max_pool2d(img, k0, nullptr, nullptr));
    ROW(nb_max_pool2d, NB_ERR_INVALID, "padding", nb_max_pool2d(img, k3, nullptr, std::array<int, 2>{2, 2}.data()));
    ROW(nb_max_pool2d, NB_ERR_SHAPE, "", nb_max_pool2d(x, k3, nullptr, nullptr));
    ROW(nb_max_pool2d_with_indices, NB_ERR_INVALID, "kernel", nb_max_pool2d_with_indices(img, k0, nullptr, nullptr, nullptr));
    ROW(nb_avg_pool2d, NB_ERR_INVALID, "stride", nb_avg_pool2d(img, k3, s0, nullptr));
    ROW(nb_adaptive_avg_pool2d, NB_ERR_INVALID, "at least 1x1", nb_adaptive_avg_pool2d(img, 0, 1));
    ROW(nb_global_avg_pool2d, NB_ERR_SHAPE, "[N, C, H, W]", nb_global_avg_pool2d(x));
    ROW(nb_batch_norm, NB_ERR_INVALID, "eps", nb_batch_norm(img, nullptr, nullptr, nullptr, nullptr, true, 0.1, INFINITY));
    ROW(nb_batch_norm, NB_ERR_INVALID, "momentum", nb_batch_norm(img, nullptr, nullptr, nullptr, nullptr, true, 2, 1e-5));
    ROW(nb_batch_norm, NB_ERR_INVALID, "running_mean", nb_batch_norm(img, nullptr, nullptr, nullptr, nullptr, false, 0.1, 1e-5));
    ROW(nb_batch_norm, NB_ERR_SHAPE, "weight must be [2]", nb_batch_norm(img, nullptr, nullptr, d, nullptr, true, 0.1, 1e-5));
    ROW(nb_layer_norm, NB_ERR_SHAPE, "normalized_dims", nb_layer_norm(x, 3, nullptr, nullptr, 1e-5));
    ROW(nb_layer_norm, NB_ERR_INVALID, "eps", nb_layer_norm(x, 1, nullptr, nullptr, NAN));
    ROW(nb_rms_norm, NB_ERR_DTYPE, "", nb_rms_norm(xi, 1, nullptr, 1e-5));
    ROW(nb_group_norm, NB_ERR_SHAPE, "divisible by groups", nb_group_norm(img, 3, nullptr, nullptr, 1e-5));
    ROW(nb_group_norm, NB_ERR_INVALID, "eps must be finite", nb_group_norm(img, 2, nullptr, nullptr, INFINITY));
    ROW(nb_group_norm, NB_ERR_DTYPE, "needs a float x, got i64", nb_group_norm(xi, 1, nullptr, nullptr, 1e-5));
    ROW(nb_batch_norm, NB_ERR_DTYPE, "needs a float x", nb_batch_norm(T(nb_zeros(2, Shape{2, 3}.data(), NB_I32, cpu)), nullptr, nullptr, nullptr, nullptr, true, 0.1, 1e-5));
    ROW(nb_avg_pool2d, NB_ERR_DTYPE, "needs a float x", nb_avg_pool2d(T(nb_zeros(4, Shape{1, 1, 4, 4}.data(), NB_U8, cpu)), k3, nullptr, nullptr));
    ROW(nb_cross_entropy, NB_ERR_INDEX, "target 3", nb_cross_entropy(T(nb_zeros(2, Shape{3, 3}.data(), NB_F32, cpu)),
                                                                    T(nb_full(1, Shape{3}.data(), 3, NB_I64, cpu)),
                                                                    NB_REDUCTION_MEAN, 0, -100));
    ROW(nb_cross_entropy, NB_ERR_INVALID, "label_smoothing", nb_cross_entropy(x, T(nb_zeros(1, Shape{2}.data(), NB_I64, cpu)),
                                                                              NB_REDUCTION_MEAN, 2, -100));
    ROW(nb_cross_entropy, NB_ERR_DTYPE, "targets must be", nb_cross_entropy(x, x, NB_REDUCTION_MEAN, 0, -100));
    // ---- elementwise losses ----
    {
        using L = nb_tensor *(*)(const nb_tensor *, const nb_tensor *, nb_reduction);
        for (auto fn : std::vector<std::pair<const char *, L>>{
                 {"nb_mse_loss", nb_mse_loss}, {"nb_l1_loss", nb_l1_loss}, {"nb_log_cosh_loss", nb_log_cosh_loss},
                 {"nb_mape_loss", nb_mape_loss}, {"nb_msle_loss", nb_msle_loss}, {"nb_hinge_loss", nb_hinge_loss},
                 {"nb_squared_hinge_loss", nb_squared_hinge_loss}}) {
            auto call = fn.second;
            std::string name = fn.first;
            g_rows.push_back({name, name + "(x, NULL)", [call, x] { return ok(call(x, nullptr, NB_REDUCTION_MEAN)); },
                              NB_ERR_INVALID, "target is NULL"});
            g_rows.push_back({name, name + "(x, [4])",
                              [call, x] { return ok(call(x, T(nb_zeros(1, Shape{4}.data(), NB_F32, nb_cpu())), NB_REDUCTION_MEAN)); },
                              NB_ERR_SHAPE, "target [4] does not broadcast with input [2,3]"});
            g_rows.push_back({name, name + "(xi, xi)", [call, xi] { return ok(call(xi, xi, NB_REDUCTION_MEAN)); },
                              NB_ERR_DTYPE, "needs float operands, got i64"});
            g_rows.push_back({name, name + "(x, x, 9)", [call, x] { return ok(call(x, x, (nb_reduction)9)); },
                              NB_ERR_INVALID, "unknown reduction 9"});
        }
    }
    ROW(nb_binary_cross_entropy, NB_ERR_INVALID, "input is NULL", nb_binary_cross_entropy(nullptr, x, nullptr, NB_REDUCTION_MEAN));
    ROW(nb_binary_cross_entropy, NB_ERR_SHAPE, "does not broadcast",
        nb_binary_cross_entropy(x, x, T(nb_ones(1, Shape{4}.data(), NB_F32, cpu)), NB_REDUCTION_MEAN));
    ROW(nb_binary_cross_entropy_with_logits, NB_ERR_SHAPE, "pos_weight [2] does not broadcast",
        nb_binary_cross_entropy_with_logits(x, x, nullptr, T(nb_ones(1, Shape{2}.data(), NB_F32, cpu)), NB_REDUCTION_MEAN));
    ROW(nb_binary_cross_entropy_with_logits, NB_ERR_INVALID, "target is NULL",
        nb_binary_cross_entropy_with_logits(x, nullptr, nullptr, nullptr, NB_REDUCTION_SUM));
    ROW(nb_huber_loss, NB_ERR_INVALID, "delta must be finite and > 0, got 0", nb_huber_loss(x, x, 0, NB_REDUCTION_MEAN));
    ROW(nb_huber_loss, NB_ERR_INVALID, "NULL", nb_huber_loss(nullptr, x, 1, NB_REDUCTION_MEAN));
    ROW(nb_smooth_l1_loss, NB_ERR_INVALID, "beta must be finite and >= 0, got -1", nb_smooth_l1_loss(x, x, -1, NB_REDUCTION_MEAN));
    ROW(nb_smooth_l1_loss, NB_ERR_INVALID, "NULL", nb_smooth_l1_loss(x, nullptr, 1, NB_REDUCTION_MEAN));
    ROW(nb_poisson_nll_loss, NB_ERR_INVALID, "eps must be finite and >= 0, got nan", nb_poisson_nll_loss(x, x, true, false, NAN, NB_REDUCTION_MEAN));
    ROW(nb_poisson_nll_loss, NB_ERR_DTYPE, "needs float operands", nb_poisson_nll_loss(xi, xi, true, false, 1e-8, NB_REDUCTION_MEAN));
    ROW(nb_gaussian_nll_loss, NB_ERR_INVALID, "eps must be finite and > 0, got 0", nb_gaussian_nll_loss(x, x, x, false, 0, NB_REDUCTION_MEAN));
    ROW(nb_gaussian_nll_loss, NB_ERR_INVALID, "var is NULL", nb_gaussian_nll_loss(x, x, nullptr, false, 1e-6, NB_REDUCTION_MEAN));
    ROW(nb_gaussian_nll_loss, NB_ERR_SHAPE, "var [4] does not broadcast",
        nb_gaussian_nll_loss(x, x, T(nb_ones(1, Shape{4}.data(), NB_F32, cpu)), false, 1e-6, NB_REDUCTION_MEAN));
    ROW(nb_kl_div, NB_ERR_INVALID, "unknown reduction 7", nb_kl_div(x, x, false, (nb_reduction)7));
    ROW(nb_kl_div, NB_ERR_INVALID, "input is NULL", nb_kl_div(nullptr, x, true, NB_REDUCTION_BATCHMEAN));
    ROW(nb_cross_entropy, NB_ERR_INVALID, "unknown reduction", nb_cross_entropy(x, T(nb_zeros(1, Shape{2}.data(), NB_I64, cpu)),
                                                                                (nb_reduction)9, 0, -100));
    ROW(nb_rope, NB_ERR_INVALID, "offset", nb_rope(q, -1, 10000));
    ROW(nb_rope, NB_ERR_OVERFLOW, "overflows", nb_rope(q, HUGE_SIZE, 10000));
    ROW(nb_rope, NB_ERR_INVALID, "base", nb_rope(q, 0, NAN));
    ROW(nb_rope, NB_ERR_SHAPE, "even dim", nb_rope(T(nb_zeros(2, Shape{2, 3}.data(), NB_F32, cpu)), 0, 10000));
    ROW(nb_sinusoidal_positions, NB_ERR_INVALID, "even dim", nb_sinusoidal_positions(4, 3, 10000, NB_F32, cpu));
    ROW(nb_sinusoidal_positions, NB_ERR_INVALID, "base", nb_sinusoidal_positions(4, 4, -1, NB_F32, cpu));
    for (auto fn : std::vector<std::pair<const char *, decltype(&nb_flash_attention)>>{
             {"nb_scaled_dot_product_attention", nb_scaled_dot_product_attention},
             {"nb_flash_attention", nb_flash_attention}, {"nb_attention_composed", nb_attention_composed}}) {
        auto call = fn.second;
        std::string name = fn.first;
        g_rows.push_back({name, name + "(q, NULL, v)", [call, q] { return ok(call(q, nullptr, q, nullptr, false, 0, 0, nullptr)); },
                          NB_ERR_INVALID, "NULL"});
        g_rows.push_back({name, name + "(dropout 1.5)", [call, q] { return ok(call(q, q, q, nullptr, false, 1.5, 0, nullptr)); },
                          NB_ERR_INVALID, "dropout"});
        g_rows.push_back({name, name + "(q [2,3])", [call, q, x] { return ok(call(x, q, q, nullptr, false, 0, 0, nullptr)); },
                          NB_ERR_SHAPE, ""});
        g_rows.push_back({name, name + "(scale NaN)", [call, q] { return ok(call(q, q, q, nullptr, false, 0, NAN, nullptr)); },
                          NB_ERR_INVALID, "scale"});
    }
    // ---- autograd ----
    ROW(nb_set_requires_grad, NB_ERR_DTYPE, "only float tensors", nb_set_requires_grad(xi, true));
    ROW(nb_set_requires_grad, NB_ERR_INVALID, "NULL", nb_set_requires_grad(nullptr, true));
    ROW(nb_set_grad, NB_ERR_INVALID, "tensor is NULL", nb_set_grad(nullptr, d));
    ROW(nb_set_grad, NB_ERR_SHAPE, "the gradient is [2,3], the tensor [3]", nb_set_grad(d, x));
    ROW(nb_set_grad, NB_ERR_DTYPE, "the gradient is i64, the tensor f64", nb_set_grad(d, xi));
    ROW(nb_set_grad, NB_ERR_AUTOGRAD, "not a leaf (made by mul)", nb_set_grad(T(nb_mul(d, d)), d));
    ROW(nb_backward, NB_ERR_AUTOGRAD, "does not require a gradient", nb_backward(x, nullptr, false));
    ROW(nb_backward, NB_ERR_INVALID, "root is NULL", nb_backward(nullptr, nullptr, false));
    // ---- layers ----
    ROW(nb_nn_linear, NB_ERR_INVALID, "positive sizes", nb_nn_linear(0, 3, true, NB_F32, cpu, gen));
    ROW(nb_nn_linear, NB_ERR_DTYPE, "needs a float dtype, got i32", nb_nn_linear(2, 3, true, NB_I32, cpu, gen));
    ROW(nb_nn_linear, NB_ERR_DEVICE, "nb_nn_linear: parameter weight", nb_nn_linear(2, 3, true, NB_F32, gpu7, gen));
    ROW(nb_nn_linear, NB_ERR_OVERFLOW, "nb_nn_linear", nb_nn_linear(HUGE_SIZE, HUGE_SIZE, true, NB_F32, cpu, gen));
    ROW(nb_nn_conv2d, NB_ERR_INVALID, "kernel 0", nb_nn_conv2d(2, 2, 0, 1, 0, 1, 1, true, NB_F32, cpu, gen));
    ROW(nb_nn_conv2d, NB_ERR_INVALID, "divisible by groups", nb_nn_conv2d(3, 2, 3, 1, 0, 1, 2, true, NB_F32, cpu, gen));
    ROW(nb_nn_conv2d, NB_ERR_INVALID, "dilation", nb_nn_conv2d(2, 2, 3, 1, 0, 0, 1, true, NB_F32, cpu, gen));
    ROW(nb_nn_conv_transpose2d, NB_ERR_INVALID, "output_padding 2",
        nb_nn_conv_transpose2d(2, 2, 3, 2, 0, 2, 1, true, NB_F32, cpu, gen));
    ROW(nb_nn_depthwise_separable_conv2d, NB_ERR_INVALID, "nb_nn_conv2d",
        nb_nn_depthwise_separable_conv2d(0, 2, 3, 1, NB_ACT_RELU, NB_F32, cpu, gen));
    ROW(nb_nn_batch_norm1d, NB_ERR_INVALID, "nb_nn_batch_norm1d", nb_nn_batch_norm1d(0, 1e-5, 0.1, true, NB_F32, cpu));
    ROW(nb_nn_batch_norm2d, NB_ERR_INVALID, "eps", nb_nn_batch_norm2d(3, NAN, 0.1, true, NB_F32, cpu));
    ROW(nb_nn_group_norm, NB_ERR_INVALID, "divisible", nb_nn_group_norm(3, 4, 1e-5, true, NB_F32, cpu));
    ROW(nb_nn_layer_norm, NB_ERR_INVALID, "eps", nb_nn_layer_norm(4, INFINITY, true, NB_F32, cpu));
    ROW(nb_nn_rms_norm, NB_ERR_DTYPE, "float dtype", nb_nn_rms_norm(4, 1e-5, true, NB_U8, cpu));
    ROW(nb_nn_max_pool2d, NB_ERR_INVALID, "kernel -2", nb_nn_max_pool2d(-2, 1, 0));
    ROW(nb_nn_avg_pool2d, NB_ERR_INVALID, "padding 2", nb_nn_avg_pool2d(3, 1, 2));
    ROW(nb_nn_adaptive_avg_pool2d, NB_ERR_INVALID, "positive size", nb_nn_adaptive_avg_pool2d(0, 2));
    ROW(nb_nn_dropout, NB_ERR_INVALID, "p must be in [0, 1)", nb_nn_dropout(1, gen));
    ROW(nb_nn_dropout, NB_ERR_INVALID, "p must be in [0, 1)", nb_nn_dropout(NAN, gen));
    ROW(nb_nn_activation, NB_ERR_INVALID, "unknown activation 99", nb_nn_activation((nb_activation)99));
    ROW(nb_nn_prelu, NB_ERR_INVALID, "num_parameters > 0", nb_nn_prelu(0, 0.25, NB_F32, cpu));
    ROW(nb_nn_prelu, NB_ERR_DTYPE, "float dtype", nb_nn_prelu(3, 0.25, NB_I64, cpu));
    ROW(nb_nn_sequential, NB_ERR_INVALID, "with n = -1", nb_nn_sequential(-1, nullptr));
    ROW(nb_nn_sequential, NB_ERR_INVALID, "children 0 and 1 are the same module", [] {
        nb_module *f = nb_nn_flatten();
        nb_module *twice[2] = {f, f};
        return nb_nn_sequential(2, twice);
    }());
    ROW(nb_nn_sequential, NB_ERR_INVALID, "got NULL with n = 2", nb_nn_sequential(2, nullptr));
    ROW(nb_nn_embedding, NB_ERR_INVALID, "positive sizes", nb_nn_embedding(0, 4, NB_F32, cpu, gen));
    ROW(nb_nn_multihead_attention, NB_ERR_INVALID, "NULL config", nb_nn_multihead_attention(nullptr, NB_F32, cpu, gen));
    ROW(nb_nn_multihead_attention, NB_ERR_INVALID, "heads dividing dim",
        nb_nn_multihead_attention(&(const nb_attention_config &)nb_attention_config{7, 2, 0, false, false, false, 0, 0}, NB_F32, cpu, gen));
    ROW(nb_nn_transformer_block, NB_ERR_INVALID, "dropout", nb_nn_transformer_block(nullptr, NB_F32, cpu, gen));
    ROW(nb_nn_gpt, NB_ERR_INVALID, "1 to 128 layers", nb_nn_gpt(nullptr, NB_F32, cpu, gen));
    ROW(nb_attention_forward, NB_ERR_INVALID, "needs a MultiheadAttention", nb_attention_forward(linear, q, nullptr));
    ROW(nb_attention_forward, NB_ERR_SHAPE, "needs x [B, S, 8]", nb_attention_forward(attention, x, nullptr));
    ROW(nb_module_set_kv_cache, NB_ERR_INVALID, "batch > 0", nb_module_set_kv_cache(gpt, 0, 4));
    ROW(nb_module_set_kv_cache, NB_ERR_INVALID, "needs a module", nb_module_set_kv_cache(nullptr, 1, 4));
    ROW(nb_gpt_loss, NB_ERR_INVALID, "needs a GPT", nb_gpt_loss(linear, tokens, tokens));
    ROW(nb_gpt_loss, NB_ERR_SHAPE, "nb_gpt_loss: nb_nn_gpt: needs tokens [B, S] with S at most the context 4",
        nb_gpt_loss(gpt, T(nb_zeros(2, Shape{1, 9}.data(), NB_I64, cpu)), tokens));
    ROW(nb_module_forward, NB_ERR_INVALID, "module is NULL", nb_module_forward(nullptr, x));
    ROW(nb_module_forward, NB_ERR_SHAPE, "nb_module_forward: nb_linear", nb_module_forward(linear, T(nb_zeros(2, Shape{2, 5}.data(), NB_F32, cpu))));
    ROW(nb_module_parameters, NB_ERR_INVALID, "needs a module", nb_module_parameters(nullptr, named, 4));
    ROW(nb_module_parameters, NB_ERR_INVALID, "max -1", nb_module_parameters(linear, named, -1));
    ROW(nb_module_buffers, NB_ERR_INVALID, "needs a module", nb_module_buffers(nullptr, named, 4));
    ROW(nb_init_normal, NB_ERR_INVALID, "std >= 0", nb_init_normal(d, 0, -1, gen));
    ROW(nb_init_normal, NB_ERR_DTYPE, "float tensor", nb_init_normal(xi, 0, 1, gen));
    ROW(nb_init_kaiming_normal, NB_ERR_INVALID, "fan_in", nb_init_kaiming_normal(d, 0, gen));
    ROW(nb_init_constant, NB_ERR_INVALID, "NULL", nb_init_constant(nullptr, 1));
    ROW(nb_init_constant, NB_ERR_INVALID, "does not fit i64", nb_init_constant(xi, NAN));
    {
        static nb_kaiming_options average = {.mode = NB_FAN_AVG};
        static int64_t fan_a, fan_b;
        ROW(nb_init_uniform, NB_ERR_INVALID, "needs finite bounds with low <= high, got 2 and 1", nb_init_uniform(d, 2, 1, gen));
        ROW(nb_init_uniform, NB_ERR_DTYPE, "needs a float tensor, got i64", nb_init_uniform(xi, 0, 1, gen));
        ROW(nb_init_trunc_normal, NB_ERR_INVALID, "bounds a < b, got 0, 1, 2 and 1", nb_init_trunc_normal(d, 0, 1, 2, 1, gen));
        ROW(nb_init_trunc_normal, NB_ERR_INVALID, "holds no mass", nb_init_trunc_normal(d, 0, 1, 50, 60, gen));
        ROW(nb_init_fans, NB_ERR_SHAPE, "needs a tensor of at least 2 dims", nb_init_fans(d, &fan_a, &fan_b));
        ROW(nb_init_fans, NB_ERR_INVALID, "an output is NULL", nb_init_fans(d, nullptr, &fan_b));
        ROW(nb_init_gain, NB_ERR_INVALID, "has no gain for activation", nb_init_gain(NB_ACT_MISH, 0, &value));
        ROW(nb_init_gain, NB_ERR_INVALID, "gain is NULL", nb_init_gain(NB_ACT_RELU, 0, nullptr));
        ROW(nb_init_xavier, NB_ERR_INVALID, "gain must be finite and >= 0, got -1", nb_init_xavier(w, -1, NB_INIT_NORMAL, gen));
        ROW(nb_init_xavier, NB_ERR_SHAPE, "at least 2 dims", nb_init_xavier(d, 1, NB_INIT_NORMAL, gen));
        ROW(nb_init_kaiming, NB_ERR_INVALID, "mode must be NB_FAN_IN or NB_FAN_OUT", nb_init_kaiming(w, &average, gen));
        ROW(nb_init_kaiming, NB_ERR_INVALID, "tensor is NULL", nb_init_kaiming(nullptr, nullptr, gen));
        ROW(nb_init_variance_scaling, NB_ERR_INVALID, "scale must be finite and > 0, got 0", nb_init_variance_scaling(w, 0, NB_FAN_IN, NB_INIT_UNIFORM, gen));
        ROW(nb_init_variance_scaling, NB_ERR_INVALID, "mode 7 is not an nb_fan_mode", nb_init_variance_scaling(w, 1, (nb_fan_mode)7, NB_INIT_UNIFORM, gen));
        ROW(nb_init_lecun, NB_ERR_INVALID, "distribution 9 is not an nb_init_distribution", nb_init_lecun(w, (nb_init_distribution)9, gen));
        ROW(nb_init_orthogonal, NB_ERR_INVALID, "gain must be finite, got inf", nb_init_orthogonal(w, INFINITY, gen));
        ROW(nb_init_orthogonal, NB_ERR_SHAPE, "needs at least 2 dims", nb_init_orthogonal(d, 1, gen));
        ROW(nb_init_eye, NB_ERR_SHAPE, "needs a 2-dim tensor", nb_init_eye(img));
        ROW(nb_init_dirac, NB_ERR_SHAPE, "needs a 3- to 5-dim weight", nb_init_dirac(d, 1));
        ROW(nb_init_pytorch_default, NB_ERR_INVALID, "module is NULL", nb_init_pytorch_default(nullptr, gen));
    }
    ROW(nb_margin_ranking_loss, NB_ERR_INVALID, "margin must be finite, got nan", nb_margin_ranking_loss(x, x, x, NAN, NB_REDUCTION_MEAN));
    ROW(nb_margin_ranking_loss, NB_ERR_INVALID, "input2 is NULL", nb_margin_ranking_loss(x, nullptr, x, 0, NB_REDUCTION_MEAN));
    ROW(nb_sigmoid_focal_loss, NB_ERR_INVALID, "needs alpha <= 1 (< 0: no weighting) and a finite gamma >= 0, got 0.25 and -1", nb_sigmoid_focal_loss(x, x, 0.25, -1, NB_REDUCTION_MEAN));
    ROW(nb_sigmoid_focal_loss, NB_ERR_DTYPE, "needs float operands", nb_sigmoid_focal_loss(xi, xi, 0.25, 2, NB_REDUCTION_MEAN));
    {
        static nb_triplet_options negative_margin = {.margin = -1};
        ROW(nb_cosine_embedding_loss, NB_ERR_SHAPE, "must be [N, D] or [D] and match input1", nb_cosine_embedding_loss(x, img, d, 0, NB_REDUCTION_MEAN));
        ROW(nb_cosine_embedding_loss, NB_ERR_INVALID, "needs a target and a finite margin, got NULL", nb_cosine_embedding_loss(x, x, nullptr, 0, NB_REDUCTION_MEAN));
        ROW(nb_cosine_embedding_loss, NB_ERR_INVALID, "unknown reduction 3 (MEAN, SUM or NONE)", nb_cosine_embedding_loss(x, x, nullptr, 0, NB_REDUCTION_BATCHMEAN));
        ROW(nb_triplet_margin_loss, NB_ERR_INVALID, "needs margin >= 0, p > 0 and eps >= 0, all finite, got -1", nb_triplet_margin_loss(x, x, x, &negative_margin, NB_REDUCTION_MEAN));
        ROW(nb_triplet_margin_loss, NB_ERR_INVALID, "negative is NULL", nb_triplet_margin_loss(x, x, nullptr, nullptr, NB_REDUCTION_MEAN));
        ROW(nb_categorical_hinge_loss, NB_ERR_DTYPE, "target must be float, got i64", nb_categorical_hinge_loss(x, xi, NB_REDUCTION_MEAN));
    }
    // ---- optimizers ----
    ROW(nb_sgd_create, NB_ERR_INVALID, "lr must be finite", nb_sgd_create(&d, 1, INFINITY, 0, 0, false));
    ROW(nb_sgd_create, NB_ERR_INVALID, "parameter 0 of group 0 is NULL", nb_sgd_create(none, 1, 0.1, 0, 0, false));
    ROW(nb_sgd_create, NB_ERR_INVALID, "momentum must be finite and in [0, 1], got 1.5", nb_sgd_create(&d, 1, 0.1, 1.5, 0, false));
    ROW(nb_sgd_create, NB_ERR_INVALID, "Nesterov momentum needs momentum > 0", nb_sgd_create(&d, 1, 0.1, 0, 0, true));
    ROW(nb_adam_create, NB_ERR_INVALID, "beta1 must be finite and in [0, 1), got 1", nb_adam_create(&d, 1, 0.1, 1, 0.999, 1e-8, 0));
    ROW(nb_adam_create, NB_ERR_DTYPE, "contiguous float", nb_adam_create(&xi, 1, 0.1, 0.9, 0.999, 1e-8, 0));
    ROW(nb_adamw_create, NB_ERR_INVALID, "eps must be finite", nb_adamw_create(&d, 1, 0.1, 0.9, 0.999, -1, 0));
    ROW(nb_adamw_create, NB_ERR_INVALID, "parameter 0 of group 0 and parameter 1 of group 0 are the same", nb_adamw_create(std::vector<nb_tensor *>{d, d}.data(), 2, 0.1, 0.9, 0.999, 1e-8, 0));
    {
        static nb_tensor *one[1], *two[1];
        one[0] = d, two[0] = d;
        static nb_param_group same[2];
        same[0] = {one, 1, {}}, same[1] = {two, 1, {}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "parameter 0 of group 0 and parameter 0 of group 1 are the same", nb_optimizer_create(NB_OPTIM_ADAM, same, 2));
        static nb_param_group unread[1], unread_flag[1], ftrl[1], nan_lr[1], negative[1], null_params[1];
        unread[0] = {one, 1, {.momentum = 0.9}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "group 0 sets momentum = 0.9, which adam does not read", nb_optimizer_create(NB_OPTIM_ADAM, unread, 1));
        unread_flag[0] = {one, 1, {.amsgrad = true}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "group 0 sets amsgrad, which lion does not read", nb_optimizer_create(NB_OPTIM_LION, unread_flag, 1));
        ftrl[0] = {one, 1, {.lr = NB_OPTIM_ZERO}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "FTRL needs lr > 0", nb_optimizer_create(NB_OPTIM_FTRL, ftrl, 1));
        nan_lr[0] = {one, 1, {.lr = NAN}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "group 0: lr must be finite and in [0, inf), got nan", nb_optimizer_create(NB_OPTIM_RMSPROP, nan_lr, 1));
        negative[0] = {one, 1, {.lr_power = 0.5}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "lr_power must be finite and in [-inf, 0], got 0.5", nb_optimizer_create(NB_OPTIM_FTRL, negative, 1));
        null_params[0] = {nullptr, 2, {}};
        ROW(nb_optimizer_create, NB_ERR_INVALID, "group 0 needs a parameter array, got NULL with n = 2", nb_optimizer_create(NB_OPTIM_SGD, null_params, 1));
        ROW(nb_optimizer_create, NB_ERR_INVALID, "needs groups, got NULL with n_groups = 3", nb_optimizer_create(NB_OPTIM_SGD, nullptr, 3));
        ROW(nb_optimizer_create, NB_ERR_INVALID, "kind 99 is not an nb_optimizer_kind", nb_optimizer_create((nb_optimizer_kind)99, same, 1));
    }
    ROW(nb_optimizer_get_options, NB_ERR_INVALID, "group 1 is not in [0, 1)", [&] { nb_optim_options o; return nb_optimizer_get_options(opt, 1, &o); }());
    ROW(nb_optimizer_get_options, NB_ERR_INVALID, "out is NULL", nb_optimizer_get_options(opt, 0, nullptr));
    ROW(nb_optimizer_set_options, NB_ERR_INVALID, "options is NULL", nb_optimizer_set_options(opt, 0, nullptr));
    ROW(nb_optimizer_set_options, NB_ERR_INVALID, "group 0: dampening must be finite and in [0, 1], got 2", [&] { nb_optim_options o = {.dampening = 2}; return nb_optimizer_set_options(opt, 0, &o); }());
    ROW(nb_optimizer_set_options, NB_ERR_INVALID, "optimizer is NULL", [&] { nb_optim_options o = {}; return nb_optimizer_set_options(nullptr, 0, &o); }());
    ROW(nb_optimizer_set_group_lr, NB_ERR_INVALID, "group -1 is not in [0, 1)", nb_optimizer_set_group_lr(opt, -1, 0.1));
    ROW(nb_optimizer_set_group_lr, NB_ERR_INVALID, "lr must be finite and >= 0, got -1", nb_optimizer_set_group_lr(opt, 0, -1));
    ROW(nb_optimizer_step, NB_ERR_INVALID, "optimizer is NULL", nb_optimizer_step(nullptr));
    ROW(nb_optimizer_set_lr, NB_ERR_INVALID, "lr must be finite", nb_optimizer_set_lr(opt, NAN));
    ROW(nb_optimizer_set_lr, NB_ERR_INVALID, "optimizer is NULL", nb_optimizer_set_lr(nullptr, 0.1));
    // ---- learning-rate schedules ----
    {
        static nb_lr_schedule no_size = {.kind = NB_LR_STEP}, plateau = {.kind = NB_LR_PLATEAU},
                              cosine = {.kind = NB_LR_COSINE, .total_steps = 4}, bad_gamma = {.kind = NB_LR_EXPONENTIAL, .gamma = -1},
                              one_cycle = {.kind = NB_LR_ONE_CYCLE, .total_steps = 4, .max_lr = 1},
                              unread = {.kind = NB_LR_COSINE, .gamma = 0.5, .total_steps = 4},
                              rising = {.kind = NB_LR_PLATEAU, .factor = 2}, kind = {.kind = (nb_lr_schedule_kind)40};
        static const int64_t backwards[2] = {5, 2};
        static nb_lr_schedule milestones = {.kind = NB_LR_MULTI_STEP, .milestones = backwards, .n_milestones = 2};
        static nb_lr_plateau state;
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "a step schedule needs step_size > 0, got 0", nb_lr_schedule_at(&no_size, 0, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "a plateau schedule's rate depends on the metrics", nb_lr_schedule_at(&plateau, 0, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "step must be >= 0, got -1", nb_lr_schedule_at(&cosine, -1, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "base_lr must be finite and >= 0, got nan", nb_lr_schedule_at(&cosine, 0, NAN, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "lr is NULL", nb_lr_schedule_at(&cosine, 0, 0.1, nullptr));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "schedule is NULL", nb_lr_schedule_at(nullptr, 0, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "needs gamma > 0, got -1", nb_lr_schedule_at(&bad_gamma, 0, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "step 5 is past the one-cycle schedule's total_steps 4", nb_lr_schedule_at(&one_cycle, 5, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "sets gamma = 0.5, which a cosine schedule does not read", nb_lr_schedule_at(&unread, 0, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "milestones must be >= 0 and in order, got 2 at 1 after 5", nb_lr_schedule_at(&milestones, 0, 0.1, &value));
        ROW(nb_lr_schedule_at, NB_ERR_INVALID, "kind 40 is not an nb_lr_schedule_kind", nb_lr_schedule_at(&kind, 0, 0.1, &value));
        ROW(nb_lr_one_cycle_momentum, NB_ERR_INVALID, "needs a one_cycle schedule, got cosine", nb_lr_one_cycle_momentum(&cosine, 0, &value));
        ROW(nb_lr_one_cycle_momentum, NB_ERR_INVALID, "momentum is NULL", nb_lr_one_cycle_momentum(&one_cycle, 0, nullptr));
        ROW(nb_lr_plateau_update, NB_ERR_INVALID, "a plateau schedule needs factor in [0, 1), got 2", nb_lr_plateau_update(&rising, &state, 1, &value));
        ROW(nb_lr_plateau_update, NB_ERR_INVALID, "needs a plateau schedule, got cosine", nb_lr_plateau_update(&cosine, &state, 1, &value));
        ROW(nb_lr_plateau_update, NB_ERR_INVALID, "state is NULL", nb_lr_plateau_update(&plateau, nullptr, 1, &value));
        ROW(nb_lr_scheduler_create, NB_ERR_INVALID, "optimizer is NULL", nb_lr_scheduler_create(nullptr, &cosine, 1));
        ROW(nb_lr_scheduler_create, NB_ERR_INVALID, "needs one schedule or one per group (1), got an array with n = 3", nb_lr_scheduler_create(opt, &cosine, 3));
        ROW(nb_lr_scheduler_create, NB_ERR_INVALID, "a step schedule needs step_size > 0", nb_lr_scheduler_create(opt, &no_size, 1));
        ROW(nb_lr_scheduler_step, NB_ERR_INVALID, "scheduler is NULL", nb_lr_scheduler_step(nullptr, 0));
        ROW(nb_lr_scheduler_set_step, NB_ERR_INVALID, "scheduler is NULL", nb_lr_scheduler_set_step(nullptr, 0));
    }
    ROW(nb_clip_grad_norm, NB_ERR_INVALID, "max_norm > 0", nb_clip_grad_norm(&d, 1, 0));
    ROW(nb_clip_grad_norm, NB_ERR_INVALID, "max_norm > 0", nb_clip_grad_norm(nullptr, 2, 1));
    ROW(nb_clip_grad_value, NB_ERR_INVALID, "clip_value >= 0, got 1 and -1", nb_clip_grad_value(&d, 1, -1));
    ROW(nb_clip_grad_value, NB_ERR_INVALID, "clip_value >= 0, got 1 and nan", nb_clip_grad_value(&d, 1, NAN));
    ROW(nb_clip_grad_value, NB_ERR_INVALID, "needs parameters", nb_clip_grad_value(nullptr, 2, 1));
    ROW(nb_clip_grad_value, NB_ERR_INVALID, "got -1 and 1", nb_clip_grad_value(&d, -1, 1));
    // ---- data ----
    ROW(nb_idx_read, NB_ERR_IO, "cannot open /nonexistent", nb_idx_read("/nonexistent/x.idx", &out_a));
    ROW(nb_idx_read, NB_ERR_INVALID, "path is NULL", nb_idx_read(nullptr, &out_a));
    ROW(nb_fashion_mnist_load, NB_ERR_IO, "nb_idx_read: cannot open /nonexistent", nb_fashion_mnist_load("/nonexistent", true, &out_a, &out_b));
    ROW(nb_fashion_mnist_load, NB_ERR_INVALID, "NULL", nb_fashion_mnist_load(nullptr, true, nullptr, &out_b));
    ROW(nb_batches_create, NB_ERR_INVALID, "batch_size >= 1", nb_batches_create(x, xi, 0, false, false, gen));
    ROW(nb_batches_create, NB_ERR_INVALID, "same dim 0", nb_batches_create(x, xi, 1, false, false, gen));
    ROW(nb_batches_take, NB_ERR_INVALID, "batches is NULL", nb_batches_take(nullptr, &out_a, &out_b));
    ROW(nb_batches_take, NB_ERR_INVALID, "images is NULL", nb_batches_take(batches, nullptr, &out_b));
    ROW(nb_batches_next, NB_ERR_INVALID, "is NULL", nb_batches_next(nullptr, &out_a, &out_b) ? NB_OK : nb_last_status());
    ROW(nb_batches_count, NB_ERR_INVALID, "batches is NULL", nb_batches_count(nullptr));
    // ---- CUDA (every call names the problem on a machine without the device) ----
    ROW(nb_cuda_get_properties, NB_STATUS_COUNT, "", nb_cuda_get_properties(7, &props));
    ROW(nb_cuda_memory_stats_get, NB_STATUS_COUNT, "", nb_cuda_memory_stats_get(7, &cuda_stats));
    ROW(nb_cuda_memory_stats_reset, NB_STATUS_COUNT, "", nb_cuda_memory_stats_reset(7));
    ROW(nb_cuda_stream_create, NB_STATUS_COUNT, "", nb_cuda_stream_create(7, &stream));
    ROW(nb_cuda_set_stream, NB_STATUS_COUNT, "", nb_cuda_set_stream(7, nullptr));
    ROW(nb_cuda_stream_synchronize, NB_STATUS_COUNT, "", nb_cuda_stream_synchronize(nullptr));
    ROW(nb_cuda_synchronize, NB_STATUS_COUNT, "", nb_cuda_synchronize(7));
    ROW(nb_cuda_event_create, NB_STATUS_COUNT, "", nb_cuda_event_create(7, &event));
    ROW(nb_cuda_event_record, NB_STATUS_COUNT, "", nb_cuda_event_record(nullptr, nullptr));
    ROW(nb_cuda_event_synchronize, NB_STATUS_COUNT, "", nb_cuda_event_synchronize(nullptr));
    ROW(nb_cuda_stream_wait_event, NB_STATUS_COUNT, "", nb_cuda_stream_wait_event(nullptr, nullptr));
    ROW(nb_cuda_event_elapsed_ms, NB_STATUS_COUNT, "", nb_cuda_event_elapsed_ms(nullptr, nullptr, &ms));
    // ---- the communicator (checked before MPI starts; a build without MPI
    // fails each with NB_ERR_UNSUPPORTED) ----
    static nb_comm *comm = nullptr;
    static nb_comm_options bad_timeout = {};
    bad_timeout.timeout = -1;
    static nb_dist_work *work = nullptr;
    static bool done = false;
    ROW(nb_dist_init, NB_STATUS_COUNT, "", nb_dist_init(nullptr, nullptr));
    ROW(nb_dist_init, NB_STATUS_COUNT, "", nb_dist_init(&bad_timeout, &comm));
    ROW(nb_dist_all_reduce, NB_STATUS_COUNT, "", nb_dist_all_reduce(nullptr, x, x, NB_REDUCE_SUM, &work));
    ROW(nb_dist_broadcast, NB_STATUS_COUNT, "", nb_dist_broadcast(nullptr, x, 0, &work));
    ROW(nb_dist_all_gather, NB_STATUS_COUNT, "", nb_dist_all_gather(nullptr, x, x, &work));
    ROW(nb_dist_reduce_scatter, NB_STATUS_COUNT, "", nb_dist_reduce_scatter(nullptr, x, x, NB_REDUCE_SUM, &work));
    ROW(nb_dist_barrier, NB_STATUS_COUNT, "", nb_dist_barrier(nullptr));
    ROW(nb_dist_wait, NB_STATUS_COUNT, "", nb_dist_wait(nullptr));
    ROW(nb_dist_test, NB_STATUS_COUNT, "", nb_dist_test(nullptr, &done));
    static nb_ddp *ddp = nullptr;
    static nb_ddp_timing timing;
    ROW(nb_ddp_create, NB_ERR_INVALID, "model or comm is NULL", nb_ddp_create(linear, nullptr, nullptr, &ddp));
    ROW(nb_ddp_create, NB_ERR_INVALID, "out is NULL", nb_ddp_create(linear, nullptr, nullptr, nullptr));
    static nb_named_tensor one_param = {"w", nullptr};
    ROW(nb_ddp_create_from_tensors, NB_ERR_INVALID, "comm is NULL",
        nb_ddp_create_from_tensors(&one_param, 1, nullptr, 0, nullptr, nullptr, &ddp));
    ROW(nb_ddp_create_from_tensors, NB_ERR_INVALID, "out is NULL",
        nb_ddp_create_from_tensors(&one_param, 1, nullptr, 0, nullptr, nullptr, nullptr));
    ROW(nb_ddp_finish, NB_ERR_INVALID, "ddp is NULL", nb_ddp_finish(nullptr));
    ROW(nb_ddp_backward, NB_ERR_INVALID, "ddp or loss is NULL", nb_ddp_backward(nullptr, x, nullptr));
    ROW(nb_ddp_broadcast_parameters, NB_ERR_INVALID, "ddp is NULL", nb_ddp_broadcast_parameters(nullptr));
    ROW(nb_ddp_broadcast_buffers, NB_ERR_INVALID, "ddp is NULL", nb_ddp_broadcast_buffers(nullptr));
    ROW(nb_ddp_bucket_timing, NB_ERR_INVALID, "ddp or out is NULL", nb_ddp_bucket_timing(nullptr, 0, &timing));
    ROW(nb_set_grad_ready_hook, NB_ERR_INVALID, "leaf is NULL", nb_set_grad_ready_hook(nullptr, nullptr, nullptr));
    ROW(nb_set_grad_ready_hook, NB_ERR_AUTOGRAD, "not a leaf", nb_set_grad_ready_hook(T(nb_mul(d, d)), nullptr, nullptr));
    ROW(nb_batches_shard, NB_ERR_INVALID, "batches is NULL", nb_batches_shard(nullptr, 0, 1));
    ROW(nb_batches_shard, NB_ERR_INVALID, "rank 3 and world 2", nb_batches_shard(batches, 3, 2));
    EXPECT_EQ(ddp, nullptr);
    ROW(nb_sync_batch_norm, NB_ERR_INVALID, "comm is NULL",
        nb_sync_batch_norm(x, nullptr, nullptr, nullptr, nullptr, true, 0.1, 1e-5, nullptr));
    ROW(nb_nn_sync_batch_norm1d, NB_ERR_INVALID, "comm is NULL",
        nb_nn_sync_batch_norm1d(4, 1e-5, 0.1, true, NB_F32, cpu, nullptr));
    ROW(nb_nn_sync_batch_norm2d, NB_ERR_INVALID, "comm is NULL",
        nb_nn_sync_batch_norm2d(4, 1e-5, 0.1, true, NB_F32, cpu, nullptr));
    ROW(nb_nn_convert_sync_batch_norm, NB_ERR_INVALID, "model or comm is NULL",
        nb_nn_convert_sync_batch_norm(linear, nullptr) < 0 ? nb_last_status() : NB_OK);
    EXPECT_EQ(comm, nullptr);
    EXPECT_EQ(work, nullptr);
    (void)host_i64;
    // ---- files (a build without cJSON fails each with NB_ERR_UNSUPPORTED) ----
#ifdef NABLA_TEST_CJSON
#define IO_ROW(fn, status, words, ...) ROW(fn, status, words, __VA_ARGS__)
#else
#define IO_ROW(fn, status, words, ...) ROW(fn, NB_STATUS_COUNT, "", __VA_ARGS__)
#endif
#define INVALID NB_ERR_INVALID
#define IO NB_ERR_IO
    static nb_named_tensor null_tensor[1] = {{"x", nullptr}};
    static nb_named_tensor good[1];
    good[0] = {"x", x};
    static nb_safetensors *file = nullptr;
    static nb_checkpoint no_model = {}, bad_generators = {};
    bad_generators.model = linear, bad_generators.n_generators = -1;
    static const char *odd_metadata[] = {"key", nullptr};
    static nb_save_options odd = {};
    odd.metadata = odd_metadata;
    IO_ROW(nb_safetensors_save, INVALID, "path is NULL", nb_safetensors_save(nullptr, good, 1, nullptr));
    IO_ROW(nb_safetensors_save, INVALID, "n = -1", nb_safetensors_save("/tmp/x", good, -1, nullptr));
    IO_ROW(nb_safetensors_save, INVALID, "tensor 0 (\"x\") is NULL", nb_safetensors_save("/tmp/x", null_tensor, 1, nullptr));
    IO_ROW(nb_safetensors_save, INVALID, "metadata key \"key\" has no value", nb_safetensors_save("/tmp/x", good, 1, &odd));
    IO_ROW(nb_safetensors_save, IO, "cannot create a temporary file", nb_safetensors_save("/nonexistent/x", good, 1, nullptr));
    IO_ROW(nb_safetensors_open, INVALID, "out is NULL", nb_safetensors_open("/tmp/x", nullptr));
    IO_ROW(nb_safetensors_open, INVALID, "path is NULL", nb_safetensors_open(nullptr, &file));
    IO_ROW(nb_safetensors_open, IO, "cannot open", nb_safetensors_open("/nonexistent/x", &file));
    IO_ROW(nb_safetensors_get, INVALID, "file is NULL", nb_safetensors_get(nullptr, "x", cpu, &out_a));
    IO_ROW(nb_safetensors_get, INVALID, "out is NULL", nb_safetensors_get(nullptr, "x", cpu, nullptr));
    IO_ROW(nb_safetensors_read_into, INVALID, "dst is NULL", nb_safetensors_read_into(nullptr, "x", nullptr, false));
    IO_ROW(nb_safetensors_read_into, INVALID, "file is NULL", nb_safetensors_read_into(nullptr, "x", x, false));
    IO_ROW(nb_module_save, INVALID, "module is NULL", nb_module_save(nullptr, "/tmp/x"));
    IO_ROW(nb_module_save, IO, "cannot create a temporary file", nb_module_save(linear, "/nonexistent/x"));
    IO_ROW(nb_module_load, INVALID, "module is NULL", nb_module_load(nullptr, "/tmp/x", nullptr));
    IO_ROW(nb_module_load, IO, "cannot open", nb_module_load(linear, "/nonexistent/x", nullptr));
    IO_ROW(nb_checkpoint_save, INVALID, "checkpoint is NULL", nb_checkpoint_save("/tmp/x", nullptr));
    IO_ROW(nb_checkpoint_save, INVALID, "checkpoint.model is NULL", nb_checkpoint_save("/tmp/x", &no_model));
    IO_ROW(nb_checkpoint_save, INVALID, "n_generators is -1", nb_checkpoint_save("/tmp/x", &bad_generators));
    static nb_checkpoint bad_optimizers = {};
    bad_optimizers.model = linear, bad_optimizers.n_optimizers = 1;
    IO_ROW(nb_checkpoint_save, INVALID, "n_optimizers is 1 with optimizers NULL", nb_checkpoint_save("/tmp/x", &bad_optimizers));
    static nb_optimizer *null_optimizer[1] = {nullptr};
    static nb_checkpoint null_optimizers = {};
    null_optimizers.model = linear, null_optimizers.optimizers = null_optimizer, null_optimizers.n_optimizers = 1;
    IO_ROW(nb_checkpoint_load, INVALID, "optimizer 0 is NULL", nb_checkpoint_load("/tmp/x", &null_optimizers));
    IO_ROW(nb_checkpoint_load, INVALID, "checkpoint is NULL", nb_checkpoint_load("/tmp/x", nullptr));
    IO_ROW(nb_checkpoint_load, INVALID, "n_generators is -1", nb_checkpoint_load("/tmp/x", &bad_generators));
    static nb_checkpoint just_model = {};
    just_model.model = linear;
    IO_ROW(nb_checkpoint_load, IO, "cannot open", nb_checkpoint_load("/nonexistent/x", &just_model));
    EXPECT_EQ(file, nullptr);
#undef IO_ROW
#undef INVALID
#undef IO
#ifdef NABLA_TEST_DLPACK
    static DLManagedTensor *managed = nullptr;
    ROW(nb_to_dlpack, NB_ERR_INVALID, "tensor is NULL", nb_to_dlpack(nullptr, &managed));
    ROW(nb_to_dlpack, NB_ERR_INVALID, "out is NULL", nb_to_dlpack(x, nullptr));
    ROW(nb_from_dlpack, NB_ERR_INVALID, "managed is NULL", nb_from_dlpack(nullptr, &out_a));
    ROW(nb_from_dlpack, NB_ERR_INVALID, "out is NULL", nb_from_dlpack(nullptr, nullptr));
    EXPECT_EQ(managed, nullptr);
#endif

    // Functions whose every input is valid: queries and NULL-safe frees.
    for (const char *fn :
         {"nb_cpu", "nb_cuda", "nb_cuda_device_count", "nb_cuda_available", "nb_version", "nb_last_error",
          "nb_last_status", "nb_clear_error", "nb_status_name", "nb_dtype_size", "nb_dtype_name",
          "nb_dtype_is_float", "nb_dtype_is_valid", "nb_promote_types", "nb_f32_to_f16", "nb_f16_to_f32",
          "nb_f32_to_bf16", "nb_bf16_to_f32", "nb_set_grad_enabled", "nb_is_grad_enabled", "nb_manual_seed",
          "nb_cuda_set_tf32", "nb_cuda_tf32_enabled", "nb_lr_warmup_cosine", "nb_cpu_memory_stats_reset",
          "nb_generator_create", "nb_nn_flatten", "nb_use_deterministic_algorithms",
          "nb_deterministic_algorithms_enabled"})
        g_no_bad_input.insert(fn);
    // NULL-safe: each is called with NULL below and must not crash
    for (const char *fn : {"nb_retain", "nb_release", "nb_ndim", "nb_shape", "nb_strides", "nb_numel",
                           "nb_dtype_of", "nb_device_of", "nb_is_contiguous", "nb_data", "nb_requires_grad",
                           "nb_is_leaf", "nb_grad", "nb_zero_grad", "nb_grad_fn_name", "nb_module_train",
                           "nb_module_is_training", "nb_module_type", "nb_module_free",
                           "nb_optimizer_zero_grad", "nb_optimizer_get_lr", "nb_optimizer_free",
                           "nb_optimizer_num_groups", "nb_lr_scheduler_get_step", "nb_lr_scheduler_free",
                           "nb_generator_free", "nb_generator_seed", "nb_generator_offset",
                           "nb_batches_free", "nb_cpu_memory_stats_get", "nb_cuda_current_stream",
                           "nb_cuda_stream_handle", "nb_cuda_event_destroy", "nb_cuda_stream_destroy",
                           "nb_dist_free", "nb_dist_rank", "nb_dist_world_size", "nb_dist_local_rank",
                           "nb_dist_work_free", "nb_reduce_op_name", "nb_ddp_set_sync", "nb_ddp_bucket_count",
                           "nb_ddp_free", "nb_generator_seed_of", "nb_generator_set_state",
                           "nb_safetensors_close", "nb_safetensors_count", "nb_safetensors_entry_at",
                           "nb_safetensors_find", "nb_safetensors_metadata"})
        g_no_bad_input.insert(fn);
}

class BadInput : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        g_fx = new Fixture();
        Fixture &f = *g_fx;
        f.gen = nb_generator_create(7);
        f.x = nb_arange(0, 6, 1, NB_F32, nb_cpu());
        nb_tensor *flat = f.x;
        f.x = nb_reshape(flat, 2, Shape{2, 3}.data());
        nb_release(flat);
        f.xi = nb_arange(0, 3, 1, NB_I64, nb_cpu());
        f.mask = nb_gt(f.x, T(nb_scalar(2, NB_F32, nb_cpu())));
        f.img = nb_normal(4, Shape{1, 2, 4, 4}.data(), 0, 1, NB_F32, nb_cpu(), f.gen);
        f.weight = nb_normal(4, Shape{2, 2, 3, 3}.data(), 0, 1, NB_F32, nb_cpu(), f.gen);
        f.q = nb_normal(4, Shape{1, 2, 4, 8}.data(), 0, 1, NB_F32, nb_cpu(), f.gen);
        f.d = nb_arange(1, 4, 1, NB_F64, nb_cpu());
        nb_set_requires_grad(f.d, true);
        f.cols = nb_normal(3, Shape{1, 9, 4}.data(), 0, 1, NB_F32, nb_cpu(), f.gen);
        f.tokens = nb_zeros(2, Shape{1, 4}.data(), NB_I64, nb_cpu());
        f.linear = nb_nn_linear(3, 4, true, NB_F32, nb_cpu(), f.gen);
        nb_gpt_config gpt = small_gpt_config(5, 4);
        f.attention = nb_nn_multihead_attention(&gpt.block.attention, NB_F32, nb_cpu(), f.gen);
        f.gpt = nb_nn_gpt(&gpt, NB_F32, nb_cpu(), f.gen);
        f.opt = nb_sgd_create(&f.d, 1, 0.1, 0, 0, false);
        f.batches = nb_batches_create(f.d, f.xi, 2, false, false, nullptr);
        build_rows();
    }
    static void TearDownTestSuite() {
        Fixture &f = *g_fx;
        for (nb_tensor *t : f.all()) nb_release(t);
        nb_module_free(f.linear);
        nb_module_free(f.attention);
        nb_module_free(f.gpt);
        nb_optimizer_free(f.opt);
        nb_batches_free(f.batches);
        nb_generator_free(f.gen);
        delete g_fx;
        g_rows.clear();
    }
};

TEST_F(BadInput, EveryRowFailsWithItsStatusAndMessageAndChangesNothing) {
    auto before = snapshot(*g_fx);
    int functions = 0;
    std::set<std::string> seen;
    for (const Row &row : g_rows) {
        if (seen.insert(row.fn).second) functions++;
        nb_clear_error();
        bool succeeded = row.run();
        if (row.status == NB_OK) continue; // a sanity row
        std::string message = nb_last_error();
        bool any = row.status == NB_STATUS_COUNT; /* CUDA calls: the build and machine decide which */
        bool right = !succeeded && (any ? nb_last_status() != NB_OK : nb_last_status() == row.status) &&
                     message.rfind(row.fn + ":", 0) == 0 &&
                     message.find(row.words) != std::string::npos;
        EXPECT_TRUE(right) << row.call << (succeeded ? " succeeded" : "") << ": got "
                           << nb_status_name(nb_last_status()) << " \"" << message << "\", expected "
                           << nb_status_name(row.status) << " naming " << row.fn << " with \"" << row.words
                           << "\"";
        ASSERT_EQ(snapshot(*g_fx), before) << row.call << " changed an input";
    }
    printf("[ table    ] %zu bad calls of %d functions, inputs unchanged after each\n", g_rows.size(), functions);
}

TEST_F(BadInput, NullSafeFunctionsAcceptNull) {
    nb_release(nb_retain(nullptr));
    nb_zero_grad(nullptr);
    nb_module_train(nullptr, true);
    nb_module_free(nullptr);
    nb_optimizer_zero_grad(nullptr);
    nb_optimizer_free(nullptr);
    nb_generator_free(nullptr);
    nb_batches_free(nullptr);
    nb_cpu_memory_stats_get(nullptr);
    nb_cuda_event_destroy(nullptr);
    EXPECT_EQ(nb_cuda_stream_destroy(nullptr), NB_OK);
    nb_dist_free(nullptr);
    nb_dist_work_free(nullptr);
    EXPECT_EQ(nb_dist_rank(nullptr), -1);
    EXPECT_EQ(nb_dist_world_size(nullptr), 0);
    EXPECT_EQ(nb_dist_local_rank(nullptr), -1);
    EXPECT_STREQ(nb_reduce_op_name((nb_reduce_op)99), "unknown");
    nb_ddp_set_sync(nullptr, true);
    EXPECT_EQ(nb_ddp_bucket_count(nullptr), 0);
    nb_ddp_free(nullptr);
    EXPECT_EQ(nb_ndim(nullptr), 0);
    EXPECT_EQ(nb_shape(nullptr), nullptr);
    EXPECT_EQ(nb_strides(nullptr), nullptr);
    EXPECT_EQ(nb_numel(nullptr), 0);
    EXPECT_FALSE(nb_dtype_is_valid(nb_dtype_of(nullptr)));
    EXPECT_FALSE(nb_is_contiguous(nullptr));
    EXPECT_EQ(nb_data(nullptr), nullptr);
    EXPECT_FALSE(nb_requires_grad(nullptr));
    EXPECT_FALSE(nb_is_leaf(nullptr));
    EXPECT_EQ(nb_grad(nullptr), nullptr);
    EXPECT_EQ(nb_grad_fn_name(nullptr), nullptr);
    EXPECT_FALSE(nb_module_is_training(nullptr));
    EXPECT_STREQ(nb_module_type(nullptr), "?");
    EXPECT_EQ(nb_optimizer_get_lr(nullptr), 0);
    EXPECT_EQ(nb_device_of(nullptr).type, NB_DEVICE_CPU);
    EXPECT_EQ(nb_cuda_stream_handle(nullptr), nullptr);
    (void)nb_cuda_current_stream(7);
    nb_generator_seed(nullptr, 1); // the default generator
    (void)nb_generator_offset(nullptr);
    nb_generator_set_state(nullptr, nb_generator_seed_of(nullptr), nb_generator_offset(nullptr)); // unchanged
    nb_safetensors_close(nullptr);
    EXPECT_EQ(nb_safetensors_count(nullptr), 0);
    EXPECT_EQ(nb_safetensors_entry_at(nullptr, 0), nullptr);
    EXPECT_EQ(nb_safetensors_find(nullptr, "x"), nullptr);
    EXPECT_EQ(nb_safetensors_metadata(nullptr, "x"), nullptr);
}

// Every public function of include/nabla/ has rows or is listed as taking
// nothing that can be wrong.
TEST_F(BadInput, CoversEveryPublicFunction) {
    std::set<std::string> declared;
    std::regex decl(R"(\b(nb_[a-z0-9_]+)\()");
    std::vector<const char *> headers = {"autograd.h", "cuda.h", "data.h", "dist.h", "dtype.h", "io.h", "nabla.h",
                                         "nn.h", "ops.h", "optim.h", "random.h", "status.h", "tensor.h"};
#ifdef NABLA_TEST_DLPACK
    headers.push_back("dlpack.h");
#endif
    for (const char *header : headers) {
        std::ifstream in(std::string(NABLA_INCLUDE_DIR) + "/nabla/" + header);
        ASSERT_TRUE(in) << header;
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(" *", 0) == 0 || line.rfind("/*", 0) == 0 || line.rfind("#", 0) == 0) continue;
            std::smatch m;
            std::string rest = line;
            if (line.find("typedef") != std::string::npos) continue;
            while (std::regex_search(rest, m, decl)) {
                // a declaration: the name follows its return type at the line's start
                if (m.position(0) > 0 && rest.find('(') == (size_t)m.position(1) + m.length(1))
                    declared.insert(m.str(1));
                break;
            }
        }
    }
    std::set<std::string> covered(g_no_bad_input);
    for (const Row &row : g_rows) covered.insert(row.fn);
    int missing = 0;
    for (const std::string &fn : declared)
        if (!covered.count(fn)) {
            missing++;
            ADD_FAILURE() << fn << " has no bad-input row";
        }
    EXPECT_GT(declared.size(), 200u);
    printf("[ coverage ] %zu public functions: %zu with bad-input rows, %zu that take nothing a caller "
           "can get wrong; %d missing\n", declared.size(), covered.size() - g_no_bad_input.size(),
           g_no_bad_input.size(), missing);
}

} // namespace
