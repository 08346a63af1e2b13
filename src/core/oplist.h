/* The op list: the single source of truth for nabla's ops.
 *
 * NB_OP(ID, name, differentiable) once per op. Expanding it gives the op enum
 * (src/core/dispatch.h), the name table (src/core/dispatch.c), the layout of
 * each backend's kernel table, and the test registry (tests/test_ops.cc fails
 * for an op without cases). Ops built from other ops or from views (cat,
 * embedding, reshape, ...) have no kernel of their own but are listed so that
 * they are named, recorded by autograd and tested like the rest.
 *
 * Adding an op: a line here, its front end in src/ops/<family>.c, a kernel in
 * src/cpu/<family>.c (and src/cuda/<family>.cu) registered in the backend's
 * table, and cases in tests/test_ops.cc.
 */
#ifndef NABLA_OPLIST_H
#define NABLA_OPLIST_H

#define NB_OP_LIST(NB_OP)              \
    /* creation and randomness */     \
    NB_OP(FILL, fill, 0)               \
    NB_OP(ARANGE, arange, 0)           \
    NB_OP(LINSPACE, linspace, 0)       \
    NB_OP(EYE, eye, 0)                 \
    NB_OP(UNIFORM, uniform, 0)         \
    NB_OP(NORMAL, normal, 0)           \
    NB_OP(BERNOULLI, bernoulli, 0)     \
    NB_OP(RANDINT, randint, 0)         \
    NB_OP(RANDPERM, randperm, 0)       \
    NB_OP(MULTINOMIAL, multinomial, 0) \
    /* copies and casts */            \
    NB_OP(COPY, copy, 1)               \
    NB_OP(TO, to, 1)                   \
    /* elementwise unary */           \
    NB_OP(NEG, neg, 1)                 \
    NB_OP(ABS, abs, 1)                 \
    NB_OP(EXP, exp, 1)                 \
    NB_OP(LOG, log, 1)                 \
    NB_OP(LOG1P, log1p, 1)             \
    NB_OP(SQRT, sqrt, 1)               \
    NB_OP(RSQRT, rsqrt, 1)             \
    NB_OP(SIN, sin, 1)                 \
    NB_OP(COS, cos, 1)                 \
    NB_OP(TANH, tanh, 1)               \
    NB_OP(SIGMOID, sigmoid, 1)         \
    NB_OP(RELU, relu, 1)               \
    NB_OP(SIGN, sign, 1)               \
    NB_OP(FLOOR, floor, 1)             \
    NB_OP(CEIL, ceil, 1)               \
    NB_OP(ROUND, round, 1)             \
    NB_OP(LOGICAL_NOT, logical_not, 0) \
    NB_OP(CLAMP, clamp, 1)             \
    /* activations */                 \
    NB_OP(RELU6, relu6, 1)             \
    NB_OP(LEAKY_RELU, leaky_relu, 1)   \
    NB_OP(SILU, silu, 1)               \
    NB_OP(HARDSIGMOID, hardsigmoid, 1) \
    NB_OP(HARDSWISH, hardswish, 1)     \
    NB_OP(GELU, gelu, 1)               \
    NB_OP(GELU_BACKWARD, gelu_backward, 0) \
    NB_OP(SWIGLU, swiglu, 1)           \
    NB_OP(ELU, elu, 1)                 \
    NB_OP(SELU, selu, 1)               \
    NB_OP(CELU, celu, 1)               \
    NB_OP(SOFTPLUS, softplus, 1)       \
    NB_OP(MISH, mish, 1)               \
    NB_OP(SWISH, swish, 1)             \
    NB_OP(SOFTSIGN, softsign, 1)       \
    NB_OP(LOGSIGMOID, logsigmoid, 1)   \
    NB_OP(THRESHOLD, threshold, 1)     \
    NB_OP(HARDTANH, hardtanh, 1)       \
    NB_OP(TANHSHRINK, tanhshrink, 1)   \
    NB_OP(HARDSHRINK, hardshrink, 1)   \
    NB_OP(SOFTSHRINK, softshrink, 1)   \
    NB_OP(ACTIVATION_BACKWARD, activation_backward, 0) \
    NB_OP(PRELU, prelu, 1)             \
    NB_OP(RRELU, rrelu, 1)             \
    NB_OP(GLU, glu, 1)                 \
    NB_OP(MAXOUT, maxout, 1)           \
    /* elementwise binary */          \
    NB_OP(ADD, add, 1)                 \
    NB_OP(SUB, sub, 1)                 \
    NB_OP(MUL, mul, 1)                 \
    NB_OP(DIV, div, 1)                 \
    NB_OP(POW, pow, 1)                 \
    NB_OP(MAXIMUM, maximum, 1)         \
    NB_OP(MINIMUM, minimum, 1)         \
    NB_OP(EQ, eq, 0)                   \
    NB_OP(NE, ne, 0)                   \
    NB_OP(LT, lt, 0)                   \
    NB_OP(LE, le, 0)                   \
    NB_OP(GT, gt, 0)                   \
    NB_OP(GE, ge, 0)                   \
    NB_OP(LOGICAL_AND, logical_and, 0) \
    NB_OP(LOGICAL_OR, logical_or, 0)   \
    NB_OP(LOGICAL_XOR, logical_xor, 0) \
    /* selection */                   \
    NB_OP(WHERE, where, 1)             \
    NB_OP(MASKED_FILL, masked_fill, 1) \
    /* reductions */                  \
    NB_OP(SUM, sum, 1)                 \
    NB_OP(MEAN, mean, 1)               \
    NB_OP(PROD, prod, 1)               \
    NB_OP(MAX, max, 1)                 \
    NB_OP(MIN, min, 1)                 \
    NB_OP(ARGMAX, argmax, 0)           \
    NB_OP(ARGMIN, argmin, 0)           \
    NB_OP(VAR, var, 1)                 \
    NB_OP(STD, std, 1)                 \
    NB_OP(LOGSUMEXP, logsumexp, 1)     \
    NB_OP(NORM, norm, 1)               \
    /* sorting, selection and scans */ \
    NB_OP(SORT, sort, 1)               \
    NB_OP(ARGSORT, argsort, 0)         \
    NB_OP(TOPK, topk, 1)               \
    NB_OP(SEARCHSORTED, searchsorted, 0) \
    NB_OP(BUCKETIZE, bucketize, 0)     \
    NB_OP(CUMSUM, cumsum, 1)           \
    NB_OP(CUMPROD, cumprod, 1)         \
    NB_OP(LOGCUMSUMEXP, logcumsumexp, 1) \
    NB_OP(SCAN_BACKWARD, scan_backward, 0) \
    /* linear algebra, softmax */     \
    NB_OP(MATMUL, matmul, 1)           \
    NB_OP(LINEAR, linear, 1)           \
    NB_OP(SOFTMAX, softmax, 1)         \
    NB_OP(LOG_SOFTMAX, log_softmax, 1) \
    /* positions and attention */    \
    NB_OP(ROPE, rope, 1)               \
    NB_OP(SINUSOIDAL_POSITIONS, sinusoidal_positions, 0) \
    NB_OP(SCALED_DOT_PRODUCT_ATTENTION, scaled_dot_product_attention, 1) \
    NB_OP(FLASH_ATTENTION, flash_attention, 1) \
    NB_OP(FLASH_ATTENTION_BACKWARD, flash_attention_backward, 0) \
    /* convolution and pooling */     \
    NB_OP(UNFOLD, unfold, 1)           \
    NB_OP(FOLD, fold, 1)               \
    NB_OP(CONV2D, conv2d, 1)           \
    NB_OP(CONV_TRANSPOSE2D, conv_transpose2d, 1) \
    NB_OP(DEPTHWISE_CONV2D, depthwise_conv2d, 0) \
    NB_OP(DEPTHWISE_CONV2D_INPUT_GRAD, depthwise_conv2d_input_grad, 0) \
    NB_OP(DEPTHWISE_CONV2D_WEIGHT_GRAD, depthwise_conv2d_weight_grad, 0) \
    NB_OP(CONV2D_DIRECT, conv2d_direct, 0) \
    NB_OP(CONV2D_INPUT_GRAD, conv2d_input_grad, 0) \
    NB_OP(CONV2D_WEIGHT_GRAD, conv2d_weight_grad, 0) \
    NB_OP(MAX_POOL2D, max_pool2d, 0)   \
    NB_OP(AVG_POOL2D, avg_pool2d, 1)   \
    NB_OP(AVG_POOL2D_BACKWARD, avg_pool2d_backward, 0) \
    /* normalization (built from other ops) */ \
    NB_OP(BATCH_NORM, batch_norm, 1)   \
    NB_OP(BATCH_NORM_STATS, batch_norm_stats, 0) \
    NB_OP(BATCH_NORM_APPLY, batch_norm_apply, 0) \
    NB_OP(BATCH_NORM_BACKWARD_REDUCE, batch_norm_backward_reduce, 0) \
    NB_OP(BATCH_NORM_BACKWARD_APPLY, batch_norm_backward_apply, 0) \
    NB_OP(GROUP_NORM, group_norm, 1)   \
    NB_OP(LAYER_NORM, layer_norm, 1)   \
    NB_OP(RMS_NORM, rms_norm, 1)       \
    NB_OP(LAYER_NORM_BACKWARD, layer_norm_backward, 0) \
    NB_OP(RMS_NORM_BACKWARD, rms_norm_backward, 0) \
    /* losses */                      \
    NB_OP(CROSS_ENTROPY, cross_entropy, 1) \
    NB_OP(CROSS_ENTROPY_BACKWARD, cross_entropy_backward, 0) \
    NB_OP(BINARY_CROSS_ENTROPY, binary_cross_entropy, 1) \
    NB_OP(BINARY_CROSS_ENTROPY_WITH_LOGITS, binary_cross_entropy_with_logits, 1) \
    NB_OP(MSE_LOSS, mse_loss, 1)       \
    NB_OP(L1_LOSS, l1_loss, 1)         \
    NB_OP(HUBER_LOSS, huber_loss, 1)   \
    NB_OP(SMOOTH_L1_LOSS, smooth_l1_loss, 1) \
    NB_OP(LOG_COSH_LOSS, log_cosh_loss, 1) \
    NB_OP(MAPE_LOSS, mape_loss, 1)     \
    NB_OP(MSLE_LOSS, msle_loss, 1)     \
    NB_OP(POISSON_NLL_LOSS, poisson_nll_loss, 1) \
    NB_OP(GAUSSIAN_NLL_LOSS, gaussian_nll_loss, 1) \
    NB_OP(KL_DIV, kl_div, 1)           \
    NB_OP(HINGE_LOSS, hinge_loss, 1)   \
    NB_OP(SQUARED_HINGE_LOSS, squared_hinge_loss, 1) \
    NB_OP(MARGIN_RANKING_LOSS, margin_ranking_loss, 1) \
    NB_OP(FOCAL_LOSS, sigmoid_focal_loss, 1) \
    NB_OP(POINTWISE_LOSS_BACKWARD, pointwise_loss_backward, 0) \
    /* optimizer updates (in place) */ \
    NB_OP(OPTIM_STEP, optim_step, 0)   \
    /* joining and splitting */       \
    NB_OP(CAT, cat, 1)                 \
    NB_OP(STACK, stack, 1)             \
    NB_OP(SPLIT, split, 1)             \
    NB_OP(CHUNK, chunk, 1)             \
    /* indexing */                    \
    NB_OP(INDEX_SELECT, index_select, 1) \
    NB_OP(GATHER, gather, 1)           \
    NB_OP(SCATTER_ADD, scatter_add, 1) \
    NB_OP(EMBEDDING, embedding, 1)     \
    NB_OP(ONE_HOT, one_hot, 0)         \
    /* views */                       \
    NB_OP(RESHAPE, reshape, 1)         \
    NB_OP(PERMUTE, permute, 1)         \
    NB_OP(TRANSPOSE, transpose, 1)     \
    NB_OP(SLICE, slice, 1)             \
    NB_OP(SQUEEZE, squeeze, 1)         \
    NB_OP(UNSQUEEZE, unsqueeze, 1)     \
    NB_OP(EXPAND, expand, 1)

#define NB_OP_ENUM_ENTRY(ID, name, differentiable) NB_OP_##ID,
typedef enum nb_op { NB_OP_LIST(NB_OP_ENUM_ENTRY) NB_OP_COUNT } nb_op;
#undef NB_OP_ENUM_ENTRY

#ifdef __cplusplus
extern "C" {
#endif
/* "add", ...; "?" for a value outside the list. */
const char *nb_op_name(nb_op op);
int nb_op_is_differentiable(nb_op op);
#ifdef __cplusplus
}
#endif
#endif
