/* Tensor operations. Each returns a new tensor (a new reference) on the
 * inputs' device, or NULL with nb_last_error() set. Binary ops broadcast with
 * NumPy's rules and compute in nb_promote_types of their operands. Every op
 * with a float result records itself for autograd when an input requires
 * a gradient; comparisons, logic, argmax/argmin and one_hot are not
 * differentiable.
 *
 *   nb_tensor *y = nb_relu(x);
 *   int dims[1] = {1};
 *   nb_tensor *s = nb_sum(y, 1, dims, false);   // [n, m] -> [n]
 */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include "random.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise unary: shape of x ---- */
nb_tensor *nb_neg(const nb_tensor *x);
nb_tensor *nb_abs(const nb_tensor *x);
nb_tensor *nb_exp(const nb_tensor *x);
nb_tensor *nb_log(const nb_tensor *x);
nb_tensor *nb_log1p(const nb_tensor *x);
nb_tensor *nb_sqrt(const nb_tensor *x);
nb_tensor *nb_rsqrt(const nb_tensor *x);
nb_tensor *nb_sin(const nb_tensor *x);
nb_tensor *nb_cos(const nb_tensor *x);
nb_tensor *nb_tanh(const nb_tensor *x);
nb_tensor *nb_sigmoid(const nb_tensor *x);
nb_tensor *nb_relu(const nb_tensor *x);
nb_tensor *nb_sign(const nb_tensor *x);  /* gradient 0 */
nb_tensor *nb_floor(const nb_tensor *x); /* gradient 0 */
nb_tensor *nb_ceil(const nb_tensor *x);  /* gradient 0 */
nb_tensor *nb_round(const nb_tensor *x); /* half to even; gradient 0 */
nb_tensor *nb_logical_not(const nb_tensor *x); /* bool result */
/* min(max(x, lo), hi); pass -INFINITY or INFINITY for no bound. */
nb_tensor *nb_clamp(const nb_tensor *x, double lo, double hi);
/* Activations (integer inputs compute in f32): min(max(x, 0), 6); x for
 * x >= 0 else negative_slope * x; x * sigmoid(x); relu6(x + 3) / 6;
 * x * relu6(x + 3) / 6. */
nb_tensor *nb_relu6(const nb_tensor *x);
nb_tensor *nb_leaky_relu(const nb_tensor *x, double negative_slope);
nb_tensor *nb_silu(const nb_tensor *x);
nb_tensor *nb_hardsigmoid(const nb_tensor *x);
nb_tensor *nb_hardswish(const nb_tensor *x);
/* x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, or with tanh_approximation
 * x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (PyTorch's
 * approximate="tanh", GPT-2's form). */
nb_tensor *nb_gelu(const nb_tensor *x, bool tanh_approximation);
/* SwiGLU's gate (Shazeer, 2020): x [..., 2F] split in halves a and b along
 * the last dim gives silu(a) * b, [..., F]. */
nb_tensor *nb_swiglu(const nb_tensor *x);
/* Activations with PyTorch's definitions (docs/ops.md has each formula);
 * one fused kernel forward and one backward, float results (integers
 * compute in f32). PyTorch's defaults in brackets. */
nb_tensor *nb_elu(const nb_tensor *x, double alpha);                    /* [1] */
nb_tensor *nb_selu(const nb_tensor *x);  /* scale elu(x, alpha), Klambauer et al. 2017's constants */
nb_tensor *nb_celu(const nb_tensor *x, double alpha);                   /* [1], nonzero */
nb_tensor *nb_softplus(const nb_tensor *x, double beta, double threshold); /* [1, 20] */
nb_tensor *nb_mish(const nb_tensor *x);                                 /* x tanh(softplus(x)) */
nb_tensor *nb_swish(const nb_tensor *x, double beta); /* x sigmoid(beta x); beta 1 is silu */
nb_tensor *nb_softsign(const nb_tensor *x);                             /* x / (1 + |x|) */
nb_tensor *nb_logsigmoid(const nb_tensor *x);                           /* log(sigmoid(x)), stable */
/* x <= threshold ? value : x; Keras's ThresholdedReLU(theta) is (theta, 0). */
nb_tensor *nb_threshold(const nb_tensor *x, double threshold, double value);
nb_tensor *nb_hardtanh(const nb_tensor *x, double min_val, double max_val); /* [-1, 1] */
nb_tensor *nb_tanhshrink(const nb_tensor *x);                           /* x - tanh(x) */
nb_tensor *nb_hardshrink(const nb_tensor *x, double lambda);            /* [0.5] */
nb_tensor *nb_softshrink(const nb_tensor *x, double lambda);            /* [0.5] */
/* x where x >= 0, else weight * x: weight [1] or [C], C the size of dim 1
 * (dim 0 for a 1-D x); the slope is learned through its gradient. */
nb_tensor *nb_prelu(const nb_tensor *x, const nb_tensor *weight);
/* Leaky ReLU with a slope uniform in [lower, upper) per element in training
 * (drawn from gen, NULL: the default generator), (lower + upper) / 2 in
 * evaluation [1/8, 1/3]. */
nb_tensor *nb_rrelu(const nb_tensor *x, double lower, double upper, bool training, nb_generator *gen);
/* a * sigmoid(b) of the halves a, b of dim (an even size). */
nb_tensor *nb_glu(const nb_tensor *x, int dim);
/* The maximum over each group of pieces consecutive entries of dim, whose
 * size pieces divides: [..., C, ...] -> [..., C / pieces, ...]. */
nb_tensor *nb_maxout(const nb_tensor *x, int pieces, int dim);
/* x converted to dtype (a new tensor even when the dtype is the same). */
nb_tensor *nb_cast(const nb_tensor *x, nb_dtype dtype);

/* ---- elementwise binary: broadcast shape of a and b ---- */
nb_tensor *nb_add(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_sub(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_mul(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_div(const nb_tensor *a, const nb_tensor *b); /* true division: integers give f32 */
nb_tensor *nb_pow(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_maximum(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_minimum(const nb_tensor *a, const nb_tensor *b);
/* comparisons and logic: bool results, not differentiable */
nb_tensor *nb_eq(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_ne(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_lt(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_le(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_gt(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_ge(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_logical_and(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_logical_or(const nb_tensor *a, const nb_tensor *b);
nb_tensor *nb_logical_xor(const nb_tensor *a, const nb_tensor *b);

/* ---- selection ---- */
/* cond ? a : b, broadcasting all three; cond is any dtype (nonzero is true). */
nb_tensor *nb_where(const nb_tensor *cond, const nb_tensor *a, const nb_tensor *b);
/* x with value where mask (broadcast to x's shape) is true. */
nb_tensor *nb_masked_fill(const nb_tensor *x, const nb_tensor *mask, double value);

/* ---- reductions over a set of dims ----
 * ndims == 0 (dims may be NULL) reduces over every dim. keepdim keeps the
 * reduced dims with size 1. Float inputs accumulate in double on the CPU; on
 * CUDA, f32, f16 and bf16 accumulate in float and f64 in double. */
nb_tensor *nb_sum(const nb_tensor *x, int ndims, const int *dims, bool keepdim);  /* ints give i64 */
nb_tensor *nb_mean(const nb_tensor *x, int ndims, const int *dims, bool keepdim); /* floats only */
nb_tensor *nb_prod(const nb_tensor *x, int ndims, const int *dims, bool keepdim); /* ints give i64 */
nb_tensor *nb_max(const nb_tensor *x, int ndims, const int *dims, bool keepdim);  /* NaN wins */
nb_tensor *nb_min(const nb_tensor *x, int ndims, const int *dims, bool keepdim);
/* i64 index of the first extreme element within the reduced dims (row-major
 * over them); not differentiable. */
nb_tensor *nb_argmax(const nb_tensor *x, int ndims, const int *dims, bool keepdim);
nb_tensor *nb_argmin(const nb_tensor *x, int ndims, const int *dims, bool keepdim);
/* sum((x - mean)^2) / (N - correction); correction 1 is Bessel's. */
nb_tensor *nb_var(const nb_tensor *x, int ndims, const int *dims, double correction, bool keepdim);
nb_tensor *nb_std(const nb_tensor *x, int ndims, const int *dims, double correction, bool keepdim);
/* log(sum(exp(x))), computed with the maximum subtracted. */
nb_tensor *nb_logsumexp(const nb_tensor *x, int ndims, const int *dims, bool keepdim);
/* (sum |x|^p)^(1/p) for p > 0; p = INFINITY gives max |x|. */
nb_tensor *nb_norm(const nb_tensor *x, double p, int ndims, const int *dims, bool keepdim);

/* ---- sorting, selection and scans along one dim ----
 * The order is a total one: NaN is the largest value (every NaN alike), -0
 * equals +0, and equal values keep their order (a stable sort: PyTorch's
 * stable=True). A 0-dim x is one element. Indices are i64; the values are
 * gathered with them, so their gradient is gather's. */
/* x sorted along dim (ascending, or descending: NaN first); indices (may be
 * NULL) receives each value's position in x. */
nb_tensor *nb_sort(const nb_tensor *x, int dim, bool descending, nb_tensor **indices);
nb_tensor *nb_argsort(const nb_tensor *x, int dim, bool descending);
/* The k largest (or smallest) values along dim, in sorted order (largest
 * first, or smallest first); ties go to the lower position. 0 <= k <= size. */
nb_tensor *nb_topk(const nb_tensor *x, int64_t k, int dim, bool largest, nb_tensor **indices);
/* i64 insertion points of values into the last dim of sorted_sequence: the
 * first position whose element is >= v (right: > v), as numpy.searchsorted
 * and PyTorch. A 1-D sequence takes values of any shape; otherwise its
 * leading dims equal those of values, row by row. Both are promoted to one
 * dtype. A NaN value goes past the end (PyTorch's comparisons). */
nb_tensor *nb_searchsorted(const nb_tensor *sorted_sequence, const nb_tensor *values, bool right);
/* The bucket of each x among 1-D ascending boundaries: i with
 * boundaries[i-1] < x <= boundaries[i] (right: boundaries[i-1] <= x <
 * boundaries[i]), as torch.bucketize; searchsorted(boundaries, x, right). */
nb_tensor *nb_bucketize(const nb_tensor *x, const nb_tensor *boundaries, bool right);
/* Running sum, product and log(sum(exp)) along dim: y_i = x_0 + ... + x_i.
 * Integers and bool give i64 (wrapping on overflow); logcumsumexp takes
 * floats and keeps -inf exact. The CPU accumulates floats in double; CUDA
 * in float (double for f64). Differentiable for float x. */
nb_tensor *nb_cumsum(const nb_tensor *x, int dim);
nb_tensor *nb_cumprod(const nb_tensor *x, int dim);
nb_tensor *nb_logcumsumexp(const nb_tensor *x, int dim);

/* ---- linear algebra ----
 * As numpy.matmul: [..., m, k] @ [..., k, n] -> [broadcast(...), m, n]; a 1-D
 * operand is a row (left) or a column (right) vector whose dim is dropped.
 * f32 and f64 call OpenBLAS; f16 and bf16 compute in f32. */
nb_tensor *nb_matmul(const nb_tensor *a, const nb_tensor *b);
/* x [..., in] @ weight^T + bias: weight [out, in], bias [out] or NULL;
 * [..., out]. On CUDA the bias rides in cuBLASLt's epilogue. */
nb_tensor *nb_linear(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias);

/* ---- softmax along dim: shape of x ---- */
nb_tensor *nb_softmax(const nb_tensor *x, int dim);
nb_tensor *nb_log_softmax(const nb_tensor *x, int dim);

/* ---- positions ---- */
/* Rotary position embedding (Su et al., RoFormer, 2021) of x [..., S, D], D
 * even, in the rotate-half layout (GPT-NeoX, Llama): the pair (x[d],
 * x[d + D/2]) of the row at position p = offset + s is rotated by the angle
 * p base^(-2d/D). offset > 0 places the rows after a cached prefix. Apply it
 * to q and k as [B, H, S, D]; the gradient is the inverse rotation. */
nb_tensor *nb_rope(const nb_tensor *x, int64_t offset, double base);
/* The sinusoidal positions of Vaswani et al. (2017), [seq, dim] with dim
 * even: row p holds sin(p w_i) at 2i and cos(p w_i) at 2i + 1, w_i =
 * base^(-2i/dim) (base 10000 in the paper). */
nb_tensor *nb_sinusoidal_positions(int64_t seq, int64_t dim, double base, nb_dtype dtype,
                                   nb_device device);

/* ---- attention ----
 * softmax(q k^T scale + mask) v for q [B, Hq, Sq, D], k [B, Hkv, Sk, D] and
 * v [B, Hkv, Sk, Dv] of one float dtype: [B, Hq, Sq, Dv]. Hkv must divide
 * Hq; query head h reads key/value head h / (Hq / Hkv) (grouped-query
 * attention; Hkv = 1 is multi-query). mask (may be NULL) broadcasts to
 * [B, Hq, Sq, Sk]: bool keeps the true positions (PyTorch's convention),
 * a float mask is added to the scores ([B, 1, 1, Sk] is a key-padding mask);
 * the mask gets no gradient. causal hides key j from query i when
 * j > i + Sk - Sq (aligned at the bottom right, as FlashAttention: the last
 * query sees every key; PyTorch's is_causal when Sq == Sk). A query that
 * sees no key gives zeros. dropout_p > 0 zeroes probabilities with that
 * probability and scales the rest by 1 / (1 - dropout_p), drawing
 * B Hq Sq Sk counters of gen (NULL: the default generator); pass 0 in
 * evaluation. scale 0 means 1 / sqrt(D).
 *
 * nb_scaled_dot_product_attention runs the fused kernel where the device has
 * one for the dtype and head dim (CPU: f32, f64; CUDA: f16, bf16 with
 * D = Dv in {64, 128}) and the mask needs no gradient, else the composed
 * ops. nb_flash_attention always runs the fused kernel (NB_ERR_UNSUPPORTED
 * where there is none): tiles of q against tiles of k and v with an online
 * softmax, the Sq x Sk scores never stored (Dao et al., FlashAttention-2,
 * 2023). nb_attention_composed is the plain reference: matmul, softmax,
 * dropout, matmul, with the scores in memory. The three draw the same
 * dropout mask from the same generator state. */
nb_tensor *nb_scaled_dot_product_attention(const nb_tensor *q, const nb_tensor *k,
                                           const nb_tensor *v, const nb_tensor *mask, bool causal,
                                           double dropout_p, double scale, nb_generator *gen);
nb_tensor *nb_flash_attention(const nb_tensor *q, const nb_tensor *k, const nb_tensor *v,
                              const nb_tensor *mask, bool causal, double dropout_p, double scale,
                              nb_generator *gen);
nb_tensor *nb_attention_composed(const nb_tensor *q, const nb_tensor *k, const nb_tensor *v,
                                 const nb_tensor *mask, bool causal, double dropout_p,
                                 double scale, nb_generator *gen);

/* ---- convolution and pooling over images [N, C, H, W] ----
 * Pairs are [height, width]; NULL gives the default (stride 1, padding 0,
 * dilation 1). padding[0] = NB_PADDING_SAME keeps the size (stride 1; an odd
 * total padding puts the extra row and column after, as PyTorch). */
#define NB_PADDING_SAME (-1)
/* weight [C_out, C_in/groups, kh, kw], bias [C_out] or NULL; groups ==
 * C_in is a depthwise convolution. f32 and f64 on the CPU, also f16 and bf16
 * on CUDA. Output [N, C_out, (H + 2p - d(k-1) - 1)/s + 1, ...]. */
nb_tensor *nb_conv2d(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias,
                     const int stride[2], const int padding[2], const int dilation[2], int groups);
/* The adjoint of conv2d (its input gradient): weight [C_in, C_out/groups,
 * kh, kw]; output [N, C_out, (H-1)s - 2p + d(k-1) + output_padding + 1, ...]. */
nb_tensor *nb_conv_transpose2d(const nb_tensor *x, const nb_tensor *weight, const nb_tensor *bias,
                               const int stride[2], const int padding[2],
                               const int output_padding[2], const int dilation[2], int groups);
/* im2col, as torch.nn.functional.unfold: [N, C*kh*kw, L] sliding blocks
 * (L output positions, channel-major rows). fold sums such columns back into
 * [N, C, output_size]; each is the other's gradient. */
nb_tensor *nb_unfold(const nb_tensor *x, const int kernel[2], const int dilation[2],
                     const int padding[2], const int stride[2]);
nb_tensor *nb_fold(const nb_tensor *cols, const int64_t output_size[2], const int kernel[2],
                   const int dilation[2], const int padding[2], const int stride[2]);

/* Max pooling (stride NULL: the kernel; padding at most half the kernel,
 * never chosen). The first NaN, else the first maximum, wins; indices (may
 * be NULL) receives y * W + x of each choice, i64. */
nb_tensor *nb_max_pool2d(const nb_tensor *x, const int kernel[2], const int stride[2],
                         const int padding[2]);
nb_tensor *nb_max_pool2d_with_indices(const nb_tensor *x, const int kernel[2], const int stride[2],
                                      const int padding[2], nb_tensor **indices);
/* Average pooling; the divisor is the kernel area, padding included. */
nb_tensor *nb_avg_pool2d(const nb_tensor *x, const int kernel[2], const int stride[2],
                         const int padding[2]);
/* Averages over out_h x out_w bins [floor(i H / out_h), ceil((i + 1) H / out_h)). */
nb_tensor *nb_adaptive_avg_pool2d(const nb_tensor *x, int64_t out_h, int64_t out_w);
/* The mean over H and W: [N, C, 1, 1]. */
nb_tensor *nb_global_avg_pool2d(const nb_tensor *x);

/* ---- normalization over x [N, C, ...] ---- */
/* Batch normalization per channel (dim 1). Training normalizes with the
 * batch's mean and biased variance and, when running_mean and running_var are
 * not NULL, updates them in place: running = (1 - momentum) running + momentum
 * batch (the variance unbiased). Evaluation (training false) normalizes with
 * the running statistics. weight and bias [C] may be NULL (no affine).
 * Statistics are f32 for f16/bf16 inputs. */
nb_tensor *nb_batch_norm(const nb_tensor *x, nb_tensor *running_mean, nb_tensor *running_var,
                         const nb_tensor *weight, const nb_tensor *bias, bool training,
                         double momentum, double eps);
/* Group normalization: each sample's C/groups-channel groups normalized over
 * their channels and positions, then weight and bias [C] (may be NULL). */
/* Layer normalization over the last normalized_dims dims of x (PyTorch's
 * normalized_shape = those dims): y = (x - mean) / sqrt(var + eps) * weight +
 * bias, var the biased variance; weight and bias (either may be NULL) have
 * those dims' shape and x's dtype. f16 and bf16 take statistics in f32. */
nb_tensor *nb_layer_norm(const nb_tensor *x, int normalized_dims, const nb_tensor *weight,
                         const nb_tensor *bias, double eps);
/* RMS normalization (Zhang and Sennrich, 2019) over the last normalized_dims
 * dims: y = x / sqrt(mean(x^2) + eps) * weight (weight may be NULL). */
nb_tensor *nb_rms_norm(const nb_tensor *x, int normalized_dims, const nb_tensor *weight,
                       double eps);
nb_tensor *nb_group_norm(const nb_tensor *x, int groups, const nb_tensor *weight,
                         const nb_tensor *bias, double eps);

/* ---- losses ---- */
/* MEAN averages the losses, SUM adds them, NONE keeps them; BATCHMEAN (the
 * elementwise losses) is the sum over the size of dim 0, KL divergence's
 * true value per sample. */
typedef enum nb_reduction {
    NB_REDUCTION_MEAN,
    NB_REDUCTION_SUM,
    NB_REDUCTION_NONE,
    NB_REDUCTION_BATCHMEAN
} nb_reduction;
/* Cross-entropy of logits [N, C] (float) against class indices targets [N]
 * (i32 or i64), as one fused, numerically stable op (log-sum-exp with the
 * row maximum subtracted): per row
 *   (1 - s) * (lse - x[t]) + s * (lse - mean_j x[j]),   s = label_smoothing,
 * 0 for rows whose target is ignore_index (PyTorch uses -100). MEAN divides
 * the sum by the rows not ignored; NONE gives the [N] losses. Differentiable
 * in logits: g * (softmax(x) - (1 - s) onehot(t) - s / C). */
nb_tensor *nb_cross_entropy(const nb_tensor *logits, const nb_tensor *targets,
                            nb_reduction reduction, double label_smoothing, int64_t ignore_index);

/* Elementwise losses of input and target (broadcast together; float),
 * PyTorch's definitions (Keras's for log-cosh, MAPE, MSLE and the hinges):
 * docs/ops.md has each formula. One fused kernel writes the losses and one
 * their gradient for input, target or the third operand, as needed. weight
 * (may be NULL) scales each loss before the reduction. */
nb_tensor *nb_binary_cross_entropy(const nb_tensor *input, const nb_tensor *target,
                                   const nb_tensor *weight, nb_reduction reduction);
/* From logits, stably: pos_weight (may be NULL) weighs the positive term,
 * broadcast over the last dim (one per class). */
nb_tensor *nb_binary_cross_entropy_with_logits(const nb_tensor *input, const nb_tensor *target,
                                               const nb_tensor *weight, const nb_tensor *pos_weight,
                                               nb_reduction reduction);
nb_tensor *nb_mse_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
nb_tensor *nb_l1_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
nb_tensor *nb_huber_loss(const nb_tensor *input, const nb_tensor *target, double delta,
                         nb_reduction reduction); /* delta > 0 [1] */
/* beta >= 0 [1]; beta 0 is the L1 loss. */
nb_tensor *nb_smooth_l1_loss(const nb_tensor *input, const nb_tensor *target, double beta,
                             nb_reduction reduction);
nb_tensor *nb_log_cosh_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
/* 100 |input - target| / max(|target|, 1e-7): a zero target is divided by 1e-7, as Keras. */
nb_tensor *nb_mape_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
/* Logs of max(value, 1e-7) + 1, as Keras: zero and negative values count as 1e-7. */
nb_tensor *nb_msle_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
/* log_input [true]: input is log(rate); full adds Stirling's term [false]; eps [1e-8]. */
nb_tensor *nb_poisson_nll_loss(const nb_tensor *input, const nb_tensor *target, bool log_input, bool full,
                               double eps, nb_reduction reduction);
/* var broadcasts with input, or has input's shape without its last dim (one
 * variance per row); it is clamped to eps [1e-6] with the gradient passed on. */
nb_tensor *nb_gaussian_nll_loss(const nb_tensor *input, const nb_tensor *target, const nb_tensor *var,
                                bool full, double eps, nb_reduction reduction);
/* KL(target || input) for input = log-probabilities and target probabilities
 * (log-probabilities with log_target); BATCHMEAN gives the divergence per sample. */
nb_tensor *nb_kl_div(const nb_tensor *input, const nb_tensor *target, bool log_target, nb_reduction reduction);
/* max(0, 1 - target input) and its square, for targets in {-1, 1}. */
nb_tensor *nb_hinge_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
nb_tensor *nb_squared_hinge_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);
/* max(0, margin - target (input1 - input2)), target +-1 (PyTorch's
 * MarginRankingLoss; margin finite). */
nb_tensor *nb_margin_ranking_loss(const nb_tensor *input1, const nb_tensor *input2, const nb_tensor *target,
                                  double margin, nb_reduction reduction);
/* The binary focal loss on logits (Lin et al., 2017; torchvision's
 * sigmoid_focal_loss, alpha 0.25 and gamma 2 there): alpha_t (1 - p_t)^gamma
 * times binary_cross_entropy_with_logits, alpha < 0 for no weighting. */
nb_tensor *nb_sigmoid_focal_loss(const nb_tensor *input, const nb_tensor *target, double alpha, double gamma,
                                 nb_reduction reduction);

/* Row losses over [N, D] (or [D]) inputs, composed of ops; reduction MEAN,
 * SUM or NONE (the [N] losses).
 * Cosine embedding (PyTorch's): 1 - cos(x1, x2) where target is 1,
 * max(0, cos - margin) where it is -1, 0 elsewhere; cos with 1e-12 added to
 * each squared norm. */
nb_tensor *nb_cosine_embedding_loss(const nb_tensor *input1, const nb_tensor *input2, const nb_tensor *target,
                                    double margin, nb_reduction reduction);
/* Triplet margin (PyTorch's): max(0, d(a, p) - d(a, n) + margin), d the
 * p-norm of a - b + eps over the last dim; swap takes min(d(a, n), d(p, n)).
 * Zero defaults: margin 1, p 2, eps 1e-6 (-0.0 asks for a literal 0). */
typedef struct nb_triplet_options {
    double margin, p, eps;
    bool swap;
} nb_triplet_options;
nb_tensor *nb_triplet_margin_loss(const nb_tensor *anchor, const nb_tensor *positive, const nb_tensor *negative,
                                  const nb_triplet_options *options, nb_reduction reduction);
/* Keras's CategoricalHinge: max(0, max((1 - t) x) - sum(t x) + 1) per row,
 * t one-hot. */
nb_tensor *nb_categorical_hinge_loss(const nb_tensor *input, const nb_tensor *target, nb_reduction reduction);

/* ---- joining and splitting ---- */
/* Concatenates n tensors along dim; all other dims must agree. */
nb_tensor *nb_cat(int n, const nb_tensor *const *tensors, int dim);
/* Stacks n tensors of one shape along a new dim. */
nb_tensor *nb_stack(int n, const nb_tensor *const *tensors, int dim);
/* Views of pieces of split_size along dim (the last may be smaller). Writes up
 * to max_out new references to out and their count to n_out; fails with
 * NB_ERR_INVALID, writing nothing, when more pieces than max_out are needed. */
nb_status nb_split(const nb_tensor *x, int64_t split_size, int dim, int max_out, nb_tensor **out,
                   int *n_out);
/* chunks pieces of ceil(size / chunks) (fewer if the size runs out). */
nb_status nb_chunk(const nb_tensor *x, int chunks, int dim, int max_out, nb_tensor **out,
                   int *n_out);

/* ---- indexing (index tensors are i32 or i64; bounds are checked) ---- */
/* x with dim restricted to the entries of the 1-D index. */
nb_tensor *nb_index_select(const nb_tensor *x, int dim, const nb_tensor *index);
/* out[i][j][k] = x[i][index[i][j][k]][k] for dim 1; out has index's shape. */
nb_tensor *nb_gather(const nb_tensor *x, int dim, const nb_tensor *index);
/* A copy of x with out[i][index[i][j][k]][k] += src[i][j][k] for dim 1. */
nb_tensor *nb_scatter_add(const nb_tensor *x, int dim, const nb_tensor *index,
                          const nb_tensor *src);
/* Rows of weight [num, dim] picked by indices of any shape: [..., dim]. */
nb_tensor *nb_embedding(const nb_tensor *weight, const nb_tensor *indices);
/* i64 [..., num_classes] with a 1 at each index; num_classes < 0 uses max + 1. */
nb_tensor *nb_one_hot(const nb_tensor *indices, int64_t num_classes);

#ifdef __cplusplus
}
#endif
#endif
