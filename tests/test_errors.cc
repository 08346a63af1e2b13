// Every error path of the public API: the exact status, a message naming the
// function and the values, and inputs left intact. Run under the sanitizers,
// this also shows the paths leak nothing.
#include "harness.h"

namespace {

// expr returns a tensor: expects NULL with status and a message containing needle.
#define EXPECT_FAILS(expr, status, needle)                                                   \
    do {                                                                                     \
        nb_clear_error();                                                                    \
        T result_(expr);                                                                     \
        EXPECT_EQ(result_.t, nullptr) << #expr;                                              \
        EXPECT_EQ(nb_last_status(), status) << #expr << ": " << nb_last_error();             \
        EXPECT_NE(std::string(nb_last_error()).find(needle), std::string::npos)              \
            << #expr << ": message \"" << nb_last_error() << "\" lacks \"" << needle << "\""; \
    } while (0)

// expr returns an nb_status.
#define EXPECT_STATUS(expr, status, needle)                                                  \
    do {                                                                                     \
        nb_clear_error();                                                                    \
        EXPECT_EQ((expr), status) << #expr << ": " << nb_last_error();                       \
        EXPECT_NE(std::string(nb_last_error()).find(needle), std::string::npos)              \
            << #expr << ": message \"" << nb_last_error() << "\" lacks \"" << needle << "\""; \
    } while (0)

const int64_t S23[2] = {2, 3}, S45[2] = {4, 5}, S3[1] = {3};
const int DIM0[1] = {0}, SAME_TWICE[2] = {0, 0};
double scratch[8];

T ones(const int64_t *shape, int ndim, nb_dtype dtype = NB_F32) {
    return T(nb_ones(ndim, shape, dtype, nb_cpu()));
}

TEST(Errors, NullArguments) {
    T a = ones(S23, 2);
    EXPECT_FAILS(nb_add(a, nullptr), NB_ERR_INVALID, "nb_add: b is NULL");
    EXPECT_FAILS(nb_exp(nullptr), NB_ERR_INVALID, "nb_exp: x is NULL");
    EXPECT_FAILS(nb_matmul(nullptr, a), NB_ERR_INVALID, "nb_matmul: a is NULL");
    EXPECT_FAILS(nb_sum(nullptr, 0, nullptr, false), NB_ERR_INVALID, "nb_sum: x is NULL");
    EXPECT_FAILS(nb_sum(a, 1, nullptr, false), NB_ERR_INVALID, "dims not NULL");
    EXPECT_FAILS(nb_reshape(nullptr, 1, S3), NB_ERR_INVALID, "nb_reshape: tensor is NULL");
    EXPECT_FAILS(nb_permute(a, nullptr), NB_ERR_INVALID, "nb_permute: dims is NULL");
    EXPECT_FAILS(nb_from_host(nullptr, 1, S3, NB_F32, nb_cpu()), NB_ERR_INVALID, "nb_from_host: data is NULL");
    EXPECT_FAILS(nb_where(nullptr, a, a), NB_ERR_INVALID, "nb_where: cond is NULL");
    EXPECT_FAILS(nb_cat(0, nullptr, 0), NB_ERR_INVALID, "nb_cat: needs an array of at least one tensor, got NULL with n = 0");
    EXPECT_FAILS(nb_detach(nullptr), NB_ERR_INVALID, "nb_detach");
    EXPECT_FAILS(nb_cast(nullptr, NB_F64), NB_ERR_INVALID, "nb_cast: tensor is NULL");
    EXPECT_FAILS(nb_gather(nullptr, 0, a), NB_ERR_INVALID, "nb_gather: x is NULL");
    EXPECT_STATUS(nb_backward(nullptr, nullptr, false), NB_ERR_INVALID, "nb_backward: root is NULL");
    EXPECT_STATUS(nb_to_host(a, nullptr, 24), NB_ERR_INVALID, "nb_to_host: dst is NULL");
    EXPECT_STATUS(nb_item(nullptr, nullptr), NB_ERR_INVALID, "nb_item");
    EXPECT_STATUS(nb_copy_(nullptr, a), NB_ERR_INVALID, "nb_copy_: dst is NULL");
    EXPECT_STATUS(nb_set_requires_grad(nullptr, true), NB_ERR_INVALID, "nb_set_requires_grad");
    EXPECT_STATUS(nb_split(a, 1, 0, 4, nullptr, nullptr), NB_ERR_INVALID, "nb_split: out is NULL");
    EXPECT_STATUS(nb_fprint(nullptr, a), NB_ERR_INVALID, "nb_fprint: stream is NULL");
    EXPECT_EQ(nb_size(nullptr, 0), -1);
    EXPECT_EQ(nb_format(nullptr, nullptr, 0), -1);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

TEST(Errors, ShapeMismatches) {
    T a = ones(S23, 2), b = ones(S45, 2);
    EXPECT_FAILS(nb_add(a, b), NB_ERR_SHAPE, "nb_add: shapes [2,3] and [4,5] do not broadcast");
    EXPECT_FAILS(nb_matmul(a, b), NB_ERR_SHAPE, "nb_matmul: inner dimensions differ: a is [2,3], b is [4,5]");
    T scalar(nb_scalar(1, NB_F32, nb_cpu()));
    EXPECT_FAILS(nb_matmul(scalar, a), NB_ERR_SHAPE, "at least 1 dim");
    EXPECT_FAILS(nb_reshape(a, 2, S45), NB_ERR_SHAPE, "nb_reshape: shape [4,5] holds 20 elements");
    const int64_t two_infers[2] = {-1, -1}, bad_infer[2] = {-1, 4}, negative[1] = {-2};
    EXPECT_FAILS(nb_reshape(a, 2, two_infers), NB_ERR_SHAPE, "more than one -1");
    EXPECT_FAILS(nb_reshape(a, 2, bad_infer), NB_ERR_SHAPE, "cannot infer");
    EXPECT_FAILS(nb_reshape(a, 1, negative), NB_ERR_SHAPE, "negative size");
    T t(nb_transpose(a, 0, 1));
    const int64_t flat[1] = {6};
    EXPECT_FAILS(nb_view(t, 1, flat), NB_ERR_SHAPE, "cannot be viewed");
    EXPECT_FAILS(nb_expand(a, 2, S45), NB_ERR_SHAPE, "nb_expand: cannot expand [2,3] to [4,5]");
    EXPECT_FAILS(nb_expand(a, 1, S3), NB_ERR_SHAPE, "nb_expand: cannot expand [2,3] to 1 dims");
    EXPECT_FAILS(nb_squeeze(a, 0), NB_ERR_SHAPE, "nb_squeeze: dim 0 of [2,3] has size 2");
    const nb_tensor *pair[2] = {a, b};
    EXPECT_FAILS(nb_cat(2, pair, 0), NB_ERR_SHAPE, "nb_cat: tensor 1 has shape [4,5]");
    EXPECT_FAILS(nb_stack(2, pair, 0), NB_ERR_SHAPE, "nb_stack: tensor 1 has shape [4,5]");
    EXPECT_FAILS(nb_where(T(ones(S23, 2, NB_BOOL)), a, b), NB_ERR_SHAPE, "nb_where");
    EXPECT_FAILS(nb_masked_fill(a, T(ones(S45, 2, NB_BOOL)), 0), NB_ERR_SHAPE, "nb_masked_fill");
    T idx(nb_zeros(2, S45, NB_I64, nb_cpu()));
    EXPECT_FAILS(nb_gather(a, 0, idx), NB_ERR_SHAPE, "nb_gather: index [4,5] is larger than x [2,3]");
    EXPECT_FAILS(nb_embedding(T(ones(S3, 1)), T(nb_zeros(1, S3, NB_I64, nb_cpu()))), NB_ERR_SHAPE,
                 "nb_embedding: needs weight [num, dim]");
    EXPECT_FAILS(nb_max(T(nb_zeros(2, Shape{0, 3}.data(), NB_F32, nb_cpu())), 1, DIM0, false),
                 NB_ERR_SHAPE, "nb_max: cannot reduce over zero elements");
    EXPECT_STATUS(nb_backward(T(nb_mul(a, a)), nullptr, false), NB_ERR_AUTOGRAD, "does not require a gradient");
    EXPECT_STATUS(nb_item(a, scratch), NB_ERR_SHAPE, "nb_item: needs a one-element tensor, got shape [2,3]");
    EXPECT_STATUS(nb_copy_(a, b), NB_ERR_SHAPE, "nb_copy");
    EXPECT_STATUS(nb_to_host(a, scratch, 7), NB_ERR_INVALID, "needs 24 bytes, got 7");
}

TEST(Errors, DtypeMismatches) {
    T f(ones(S23, 2)), d(ones(Shape{3, 2}.data(), 2, NB_F64)), i(ones(S23, 2, NB_I32));
    EXPECT_FAILS(nb_matmul(f, d), NB_ERR_DTYPE, "nb_matmul: a is f32 but b is f64");
    EXPECT_FAILS(nb_mean(i, 0, nullptr, false), NB_ERR_DTYPE, "nb_mean: needs a float tensor, got i32");
    EXPECT_FAILS(nb_softmax(i, -1), NB_ERR_DTYPE, "nb_softmax: needs a float tensor, got i32");
    EXPECT_FAILS(nb_gather(f, 0, f), NB_ERR_DTYPE, "nb_gather: index must be i32 or i64, got f32");
    EXPECT_FAILS(nb_masked_fill(f, f, 0), NB_ERR_DTYPE, "nb_masked_fill: mask must be bool, got f32");
    EXPECT_FAILS(nb_uniform(1, S3, 0, 1, NB_I32, nb_cpu(), nullptr), NB_ERR_DTYPE, "nb_uniform: needs a float dtype");
    EXPECT_FAILS(nb_neg(T(ones(S3, 1, NB_BOOL))), NB_ERR_DTYPE, "nb_neg");
    EXPECT_FAILS(nb_sub(T(ones(S3, 1, NB_BOOL)), T(ones(S3, 1, NB_BOOL))), NB_ERR_DTYPE, "nb_sub");
    EXPECT_FAILS(nb_cast(f, (nb_dtype)42), NB_ERR_DTYPE, "nb_cast: invalid dtype 42");
    EXPECT_FAILS(nb_empty(1, S3, (nb_dtype)-1, nb_cpu()), NB_ERR_DTYPE, "nb_empty: invalid dtype");
    EXPECT_FAILS(nb_scatter_add(f, 0, T(nb_zeros(2, S23, NB_I64, nb_cpu())), T(ones(S23, 2, NB_F64))),
                 NB_ERR_DTYPE, "nb_scatter_add: src is f64");
    EXPECT_STATUS(nb_set_requires_grad(i, true), NB_ERR_DTYPE, "only float tensors");
}

TEST(Errors, MissingKernelsAreUnsupportedNotFallbacks) {
    T i(ones(S23, 2, NB_I64)), j(ones(Shape{3, 2}.data(), 2, NB_I64));
    EXPECT_FAILS(nb_matmul(i, j), NB_ERR_UNSUPPORTED, "nb_matmul: no kernel for op matmul on cpu with dtype i64");
}

TEST(Errors, DevicesThatDoNotExist) {
    if (nb_cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
    EXPECT_FAILS(nb_empty(1, S3, NB_F32, nb_cuda(0)), NB_ERR_DEVICE,
                 "nb_empty: cuda:0 requested but no CUDA device is available");
    EXPECT_FAILS(nb_zeros(1, S3, NB_F32, nb_cuda(3)), NB_ERR_DEVICE, "cuda:3");
    EXPECT_FAILS(nb_full(1, S3, 1, NB_F32, (nb_device){(nb_device_type)9, 0}), NB_ERR_DEVICE, "unknown device type 9");
    EXPECT_FAILS(nb_from_host(scratch, 1, S3, NB_F32, nb_cuda(0)), NB_ERR_DEVICE, "nb_from_host");
}

TEST(Errors, IndicesAndDimsOutOfRange) {
    T x(nb_arange(0, 15, 1, NB_F32, nb_cpu()));
    T m(nb_reshape(x, 2, Shape{3, 5}.data()));
    T bad(make_tensor(Host({2, 2}, {0, 7, 1, 2}), NB_I64));
    EXPECT_FAILS(nb_gather(m, 1, bad), NB_ERR_INDEX, "nb_gather: index 7 out of range [0, 5) at position 1");
    T neg(make_tensor(Host({2}, {-4, 0}), NB_I32));
    EXPECT_FAILS(nb_index_select(m, 0, neg), NB_ERR_INDEX, "nb_index_select: index -4 out of range [0, 3)");
    T wrapped(make_tensor(Host({1}, {-1}), NB_I64)); // negative indices are errors, as in PyTorch
    EXPECT_FAILS(nb_index_select(m, 0, wrapped), NB_ERR_INDEX, "nb_index_select: index -1 out of range [0, 3)");
    EXPECT_FAILS(nb_embedding(m, T(make_tensor(Host({1}, {3}), NB_I64))), NB_ERR_INDEX, "index 3 out of range");
    EXPECT_FAILS(nb_one_hot(T(make_tensor(Host({2}, {1, 4}), NB_I64)), 3), NB_ERR_INDEX, "nb_one_hot: index 4");
    EXPECT_FAILS(nb_one_hot(T(make_tensor(Host({2}, {0, 0}), NB_I64)), 0), NB_ERR_INDEX, "num_classes is 0");
    EXPECT_FAILS(nb_one_hot(T(nb_zeros(1, Shape{0}.data(), NB_I64, nb_cpu())), -1), NB_ERR_SHAPE,
                 "cannot infer num_classes");
    EXPECT_FAILS(nb_scatter_add(m, 1, bad, T(nb_ones(2, Shape{2, 2}.data(), NB_F32, nb_cpu()))), NB_ERR_INDEX,
                 "nb_scatter_add: index 7");
    const int dims3[1] = {2}, dup[2] = {0, -2};
    EXPECT_FAILS(nb_sum(m, 1, dims3, false), NB_ERR_INDEX, "nb_sum: dim 2 out of range for a tensor of 2 dims");
    EXPECT_FAILS(nb_sum(m, 2, dup, false), NB_ERR_INVALID, "nb_sum: dim -2 appears twice");
    EXPECT_FAILS(nb_softmax(m, -3), NB_ERR_INDEX, "nb_softmax: dim -3 out of range");
    EXPECT_FAILS(nb_transpose(m, 0, 2), NB_ERR_INDEX, "nb_transpose: dim 2 out of range");
    EXPECT_FAILS(nb_permute(m, SAME_TWICE), NB_ERR_INDEX, "appears twice in the permutation");
    EXPECT_FAILS(nb_unsqueeze(m, 3), NB_ERR_INDEX, "nb_unsqueeze: dim 3 out of range");
    EXPECT_FAILS(nb_slice(m, 2, 0, 1, 1), NB_ERR_INDEX, "nb_slice: dim 2 out of range");
    EXPECT_FAILS(nb_slice(T(nb_scalar(1, NB_F32, nb_cpu())), 0, 0, 1, 1), NB_ERR_INDEX, "0-dim");
    EXPECT_EQ(nb_size(m, 5), -1);
    EXPECT_EQ(nb_last_status(), NB_ERR_INDEX);
    // the inputs of the failed calls are intact
    EXPECT_EQ(read_tensor(x).v[14], 14);
    EXPECT_EQ(read_tensor(bad).v[1], 7);
}

TEST(Errors, SizesThatOverflowOrExhaustMemory) {
    const int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40}, negative[2] = {2, -3};
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, terabytes[1] = {(int64_t)1 << 45};
    EXPECT_FAILS(nb_empty(2, huge, NB_F32, nb_cpu()), NB_ERR_OVERFLOW, "nb_empty: shape [1099511627776,1099511627776]");
    EXPECT_FAILS(nb_zeros(2, negative, NB_F32, nb_cpu()), NB_ERR_SHAPE, "nb_zeros: negative size -3 in shape [2,-3]");
    EXPECT_FAILS(nb_ones(9, nine, NB_F32, nb_cpu()), NB_ERR_SHAPE, "nb_ones: 9 dims requested, at most 8");
    EXPECT_FAILS(nb_empty(1, terabytes, NB_F32, nb_cpu()), NB_ERR_OOM, "nb_empty: out of memory allocating 140737488355328 bytes on cpu");
    EXPECT_FAILS(nb_arange(0, 1e300, 1e-300, NB_F32, nb_cpu()), NB_ERR_OVERFLOW, "nb_arange");
    T x(nb_ones(1, S3, NB_F32, nb_cpu())); // the process goes on
    EXPECT_NE(x.t, nullptr);
}

TEST(Errors, InvalidValues) {
    T a = ones(S23, 2);
    EXPECT_FAILS(nb_arange(0, 1, 0, NB_F32, nb_cpu()), NB_ERR_INVALID, "step 0 must be finite, step nonzero");
    EXPECT_FAILS(nb_arange(0, 5, -1, NB_F32, nb_cpu()), NB_ERR_INVALID, "moves away from end");
    EXPECT_FAILS(nb_linspace(0, NAN, 3, NB_F32, nb_cpu()), NB_ERR_INVALID, "nb_linspace");
    EXPECT_FAILS(nb_bernoulli(1, S3, 1.5, NB_F32, nb_cpu(), nullptr), NB_ERR_INVALID, "p must be in [0, 1], got 1.5");
    EXPECT_FAILS(nb_randint(5, 5, 1, S3, NB_I64, nb_cpu(), nullptr), NB_ERR_INVALID, "low < high");
    EXPECT_FAILS(nb_normal(1, S3, 0, -1, NB_F32, nb_cpu(), nullptr), NB_ERR_INVALID, "std >= 0");
    EXPECT_FAILS(nb_uniform(1, S3, 2, 1, NB_F32, nb_cpu(), nullptr), NB_ERR_INVALID, "low <= high");
    EXPECT_FAILS(nb_randperm(-1, NB_I64, nb_cpu(), nullptr), NB_ERR_INVALID, "nb_randperm: needs 0 <= n");
    EXPECT_FAILS(nb_clamp(a, 2, 1), NB_ERR_INVALID, "nb_clamp: needs lo <= hi, got 2 and 1");
    EXPECT_FAILS(nb_norm(a, -1, 0, nullptr, false), NB_ERR_INVALID, "nb_norm: p must be >= 0");
    EXPECT_FAILS(nb_slice(a, 0, 0, 2, 0), NB_ERR_INVALID, "nb_slice: step must be >= 1, got 0");
    nb_tensor *out[2] = {nullptr, nullptr};
    int n = -1;
    EXPECT_STATUS(nb_split(a, 1, 1, 2, out, &n), NB_ERR_INVALID, "3 pieces of 1 along dim 1 of [2,3], but room for 2");
    EXPECT_EQ(out[0], nullptr);
    EXPECT_EQ(n, -1) << "a failed split writes nothing";
    EXPECT_STATUS(nb_chunk(a, 0, 0, 2, out, &n), NB_ERR_INVALID, "chunks must be >= 1");
    T e(nb_expand(T(ones(S3, 1)), 2, S23));
    EXPECT_STATUS(nb_copy_(e, a), NB_ERR_INVALID, "broadcast view");
}

TEST(Errors, AutogradMisuse) {
    T w = ones(S3, 1);
    ASSERT_EQ(nb_set_requires_grad(w, true), NB_OK);
    T y(nb_mul(w, w));
    EXPECT_STATUS(nb_set_requires_grad(y, false), NB_ERR_AUTOGRAD, "only leaves can be marked");
    EXPECT_STATUS(nb_copy_(w, y), NB_ERR_AUTOGRAD, "nb_copy_: dst requires a gradient");
    EXPECT_STATUS(nb_backward(y, T(ones(S23, 2)), false), NB_ERR_SHAPE, "grad has shape [2,3] but the root has shape [3]");
    EXPECT_STATUS(nb_backward(y, nullptr, false), NB_ERR_AUTOGRAD, "a gradient is needed for a root of shape [3]");
    T plain = ones(S3, 1);
    EXPECT_STATUS(nb_backward(plain, nullptr, false), NB_ERR_AUTOGRAD, "does not require a gradient");
    EXPECT_EQ(nb_grad(w), nullptr) << "failed backward calls accumulate nothing";
}

TEST(Errors, StatusNamesAndClearing) {
    EXPECT_STREQ(nb_status_name(NB_ERR_OOM), "NB_ERR_OOM");
    EXPECT_STREQ(nb_status_name((nb_status)99), "NB_ERR_UNKNOWN");
    T bad(nb_exp(nullptr));
    nb_clear_error();
    EXPECT_EQ(nb_last_status(), NB_OK);
    EXPECT_STREQ(nb_last_error(), "");
}

} // namespace

namespace {

// The CNN path's ops, layers and optimizers reject bad shapes, dtypes and
// settings with messages naming the function and the values.
TEST(Errors, Attention) {
    T q = ones((const int64_t[]){2, 4, 5, 8}, 4), k = ones((const int64_t[]){2, 2, 6, 8}, 4);
    T v = ones((const int64_t[]){2, 2, 6, 8}, 4), k3 = ones((const int64_t[]){2, 3, 6, 8}, 4);
    T flat = ones((const int64_t[]){5, 8}, 2), short_k = ones((const int64_t[]){2, 2, 6, 7}, 4);
    EXPECT_FAILS(nb_scaled_dot_product_attention(flat, k, v, nullptr, false, 0, 0, nullptr), NB_ERR_SHAPE,
                 "nb_scaled_dot_product_attention: q must be 4-D [batch, heads, seq, dim], got [5,8]");
    EXPECT_FAILS(nb_scaled_dot_product_attention(q, short_k, v, nullptr, false, 0, 0, nullptr), NB_ERR_SHAPE,
                 "nb_scaled_dot_product_attention: q [B, Hq, Sq, D], k [B, Hkv, Sk, D] and v [B, Hkv, Sk, Dv] "
                 "disagree: [2,4,5,8], [2,2,6,7], [2,2,6,8]");
    EXPECT_FAILS(nb_flash_attention(q, k3, ones((const int64_t[]){2, 3, 6, 8}, 4), nullptr, false, 0, 0, nullptr),
                 NB_ERR_SHAPE, "nb_flash_attention: k's 3 heads must divide q's 4");
    T v64 = ones((const int64_t[]){2, 2, 6, 8}, 4, NB_F64);
    EXPECT_FAILS(nb_attention_composed(q, k, v64, nullptr, false, 0, 0, nullptr), NB_ERR_DTYPE,
                 "nb_attention_composed: q is f32 but v is f64");
    T mask = ones((const int64_t[]){5, 5}, 2);
    EXPECT_FAILS(nb_scaled_dot_product_attention(q, k, v, mask, false, 0, 0, nullptr), NB_ERR_SHAPE,
                 "nb_scaled_dot_product_attention: mask [5,5] does not broadcast to the scores [2,4,5,6]");
    T int_mask(nb_zeros(2, (const int64_t[]){5, 6}, NB_I32, nb_cpu()));
    EXPECT_FAILS(nb_scaled_dot_product_attention(q, k, v, int_mask, false, 0, 0, nullptr), NB_ERR_DTYPE,
                 "mask must be bool or float, got i32");
    EXPECT_FAILS(nb_scaled_dot_product_attention(q, k, v, nullptr, false, 1, 0, nullptr), NB_ERR_INVALID,
                 "dropout_p must be in [0, 1), got 1");
    EXPECT_FAILS(nb_scaled_dot_product_attention(q, k, v, nullptr, false, 0, NAN, nullptr), NB_ERR_INVALID,
                 "scale must be finite, got nan");
    T q16 = ones((const int64_t[]){2, 4, 5, 8}, 4, NB_F16), k16 = ones((const int64_t[]){2, 2, 6, 8}, 4, NB_F16);
    EXPECT_FAILS(nb_flash_attention(q16, k16, k16, nullptr, false, 0, 0, nullptr), NB_ERR_UNSUPPORTED,
                 "nb_flash_attention: no fused kernel on cpu for f16 with head dims 8 and 8");
    T learned = ones((const int64_t[]){5, 6}, 2);
    ASSERT_EQ(nb_set_requires_grad(learned, true), NB_OK);
    EXPECT_FAILS(nb_flash_attention(q, k, v, learned, false, 0, 0, nullptr), NB_ERR_UNSUPPORTED,
                 "the fused kernel gives the mask no gradient");
    T x = ones((const int64_t[]){2, 5, 8}, 3);
    EXPECT_FAILS(nb_attention_forward(nullptr, x, nullptr), NB_ERR_INVALID,
                 "nb_attention_forward: needs a MultiheadAttention module, got NULL");
    nb_module *linear = nb_nn_linear(8, 8, false, NB_F32, nb_cpu(), nullptr);
    EXPECT_FAILS(nb_attention_forward(linear, x, nullptr), NB_ERR_INVALID, "got Linear");
    nb_module_free(linear);
}

TEST(Errors, CnnPath) {
    const int64_t img[4] = {2, 3, 5, 5}, w3[4] = {4, 3, 3, 3}, w_bad[4] = {4, 2, 3, 3}, c3[1] = {3};
    T x = ones(img, 4), w = ones(w3, 4), wb = ones(w_bad, 4), flat = ones(S23, 2);
    T xi(nb_ones(4, img, NB_I32, nb_cpu()));
    const int big[2] = {7, 7}, s0[2] = {0, 1}, k2[2] = {2, 2}, k4[2] = {4, 4}, p3[2] = {3, 3};
    EXPECT_FAILS(nb_conv2d(flat, w, nullptr, nullptr, nullptr, nullptr, 1), NB_ERR_SHAPE,
                 "nb_conv2d: x must be [N, C, H, W], got [2,3]");
    EXPECT_FAILS(nb_conv2d(x, wb, nullptr, nullptr, nullptr, nullptr, 1), NB_ERR_SHAPE,
                 "nb_conv2d: x [2,3,5,5], weight [4,2,3,3] and groups 1 do not fit");
    EXPECT_FAILS(nb_conv2d(xi, w, nullptr, nullptr, nullptr, nullptr, 1), NB_ERR_DTYPE,
                 "must share a float dtype, got i32 and f32");
    EXPECT_FAILS(nb_conv2d(x, w, nullptr, s0, nullptr, nullptr, 1), NB_ERR_INVALID,
                 "needs stride >= 1");
    T wide = ones((const int64_t[]){1, 3, 7, 7}, 4);
    EXPECT_FAILS(nb_conv2d(x, wide, nullptr, nullptr, nullptr, nullptr, 1), NB_ERR_SHAPE,
                 "kernel [7,7] (dilation [1,1]) does not fit an image of [5,5]");
    const int same[2] = {NB_PADDING_SAME, 0}, two[2] = {2, 2};
    EXPECT_FAILS(nb_conv2d(x, w, nullptr, two, same, nullptr, 1), NB_ERR_INVALID,
                 "padding 'same' needs stride 1");
    T bias_bad = ones(c3, 1);
    EXPECT_FAILS(nb_conv2d(x, w, bias_bad, nullptr, nullptr, nullptr, 1), NB_ERR_SHAPE,
                 "bias must be [4]");
    T wt = ones((const int64_t[]){3, 2, 3, 3}, 4);
    EXPECT_FAILS(nb_conv_transpose2d(x, wt, nullptr, two, nullptr, (const int[]){2, 2}, nullptr, 1),
                 NB_ERR_INVALID, "output_padding [2,2] must be smaller than stride or dilation");
    EXPECT_FAILS(nb_max_pool2d(x, big, nullptr, nullptr), NB_ERR_SHAPE,
                 "nb_max_pool2d: kernel [7,7] does not fit x [2,3,5,5]");
    EXPECT_FAILS(nb_avg_pool2d(x, k2, nullptr, p3), NB_ERR_INVALID,
                 "nb_avg_pool2d: needs stride >= 1 and 0 <= padding <= kernel / 2");
    EXPECT_FAILS(nb_adaptive_avg_pool2d(x, 0, 2), NB_ERR_INVALID, "at least 1x1, got 0x2");
    EXPECT_FAILS(nb_unfold(x, k4, nullptr, nullptr, (const int[]){1, 0}), NB_ERR_INVALID,
                 "nb_unfold: needs stride >= 1");
    EXPECT_FAILS(nb_fold(flat, (const int64_t[]){4, 4}, k2, nullptr, nullptr, nullptr),
                 NB_ERR_INVALID, "nb_fold: needs cols [N, C*kh*kw, L]");
    EXPECT_FAILS(nb_batch_norm(x, nullptr, nullptr, nullptr, nullptr, false, 0.1, 1e-5),
                 NB_ERR_INVALID, "nb_batch_norm: evaluation needs running_mean and running_var");
    T four = ones((const int64_t[]){4}, 1);
    EXPECT_FAILS(nb_batch_norm(x, nullptr, nullptr, four, nullptr, true, 0.1, 1e-5), NB_ERR_SHAPE,
                 "nb_batch_norm: weight must be [3] (the channels of x [2,3,5,5]), got [4]");
    EXPECT_FAILS(nb_batch_norm(x, nullptr, nullptr, nullptr, nullptr, true, 2, 1e-5),
                 NB_ERR_INVALID, "momentum in [0, 1]");
    EXPECT_FAILS(nb_group_norm(x, 2, nullptr, nullptr, 1e-5), NB_ERR_SHAPE,
                 "nb_group_norm: needs x [N, C, ...] with C divisible by groups 2");
    EXPECT_FAILS(nb_layer_norm(x, 1, four, nullptr, 1e-5), NB_ERR_SHAPE,
                 "nb_layer_norm: weight must have the shape of x's last 1 dims (x is [2,3,5,5]), got [4]");
    EXPECT_FAILS(nb_layer_norm(x, 5, nullptr, nullptr, 1e-5), NB_ERR_SHAPE,
                 "nb_layer_norm: normalized_dims must be in [1, 4] for x [2,3,5,5], got 5");
    EXPECT_FAILS(nb_rms_norm(x, 1, nullptr, 0), NB_ERR_INVALID, "nb_rms_norm: eps must be positive, got 0");
    T five64(nb_ones(1, (const int64_t[]){5}, NB_F64, nb_cpu()));
    EXPECT_FAILS(nb_rms_norm(x, 1, five64, 1e-5), NB_ERR_DTYPE, "nb_rms_norm: weight is f64 but x is f32");
    T ints(nb_zeros(2, (const int64_t[]){2, 5}, NB_I64, nb_cpu()));
    EXPECT_FAILS(nb_layer_norm(ints, 1, nullptr, nullptr, 1e-5), NB_ERR_DTYPE,
                 "nb_layer_norm: x must be float, got i64");
    EXPECT_FAILS(nb_linear(flat, w, nullptr), NB_ERR_SHAPE,
                 "nb_linear: needs x [..., in] and weight [out, in], got [2,3] and [4,3,3,3]");
    T targets(nb_zeros(1, (const int64_t[]){3}, NB_I64, nb_cpu()));
    EXPECT_FAILS(nb_cross_entropy(flat, targets, NB_REDUCTION_MEAN, 0, -100), NB_ERR_SHAPE,
                 "nb_cross_entropy: needs logits [N, C] and targets [N], got [2,3] and [3]");
    EXPECT_FAILS(nb_cross_entropy(flat, flat, NB_REDUCTION_MEAN, 0, -100), NB_ERR_DTYPE,
                 "targets must be i32 or i64, got f32");
    EXPECT_FAILS(nb_leaky_relu(flat, INFINITY), NB_ERR_INVALID, "negative_slope must be finite");
    // layers and optimizers
    EXPECT_EQ(nb_nn_conv2d(3, 4, 3, 1, 1, 1, 2, true, NB_F32, nb_cpu(), nullptr), nullptr);
    EXPECT_NE(std::string(nb_last_error()).find("nb_nn_conv2d: needs positive sizes, channels "
                                                "divisible by groups 2"),
              std::string::npos)
        << nb_last_error();
    EXPECT_EQ(nb_nn_linear(0, 4, true, NB_F32, nb_cpu(), nullptr), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
    nb_module *bn = nb_nn_batch_norm2d(3, 1e-5, 0.1, true, NB_F32, nb_cpu());
    EXPECT_FAILS(nb_module_forward(bn, flat), NB_ERR_SHAPE, "BatchNorm2d: needs x of 4 to 4 dims, got [2,3]");
    nb_module_free(bn);
    nb_module *layers[2] = {nb_nn_flatten(), nullptr};
    EXPECT_EQ(nb_nn_sequential(2, layers), nullptr); // frees the flatten it was given
    T leaf_int(nb_zeros(1, c3, NB_I32, nb_cpu()));
    nb_tensor *params[1] = {leaf_int};
    EXPECT_EQ(nb_sgd_create(params, 1, 0.1, 0, 0, false), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DTYPE);
    EXPECT_NE(std::string(nb_last_error()).find("nb_sgd_create: parameter 0 of group 0 must be a contiguous float tensor, got a i32 one"),
              std::string::npos)
        << nb_last_error();
    EXPECT_STATUS(nb_optimizer_step(nullptr), NB_ERR_INVALID, "nb_optimizer_step: optimizer is NULL");
    // the inputs are intact
    EXPECT_EQ(read_tensor(x).v, std::vector<double>(150, 1.0));
}

} // namespace
