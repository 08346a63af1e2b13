/* The CPU backend: its kernel table (which kernel runs each op, for which
 * dtypes), its allocator and host copies. */
#include <string.h>

#include "cpu.h"

#define UNARY(ID) [NB_OP_##ID] = {nb__cpu_unary, NB_FLOATS | NB_INTS}
#define UNARY_FLOAT(ID) [NB_OP_##ID] = {nb__cpu_unary, NB_FLOATS}
#define BINARY(ID) [NB_OP_##ID] = {nb__cpu_binary, NB_FLOATS | NB_INTS}
#define REDUCE(ID, dtypes) [NB_OP_##ID] = {nb__cpu_reduce, dtypes}
#define LOSS(ID) [NB_OP_##ID] = {nb__cpu_pointwise_loss, NB_FLOATS}

static const nb_kernel cpu_kernels[NB_OP_COUNT] = {
    [NB_OP_FILL] = {nb__cpu_fill, NB_ALL_DTYPES},
    [NB_OP_ARANGE] = {nb__cpu_range, NB_ALL_DTYPES},
    [NB_OP_LINSPACE] = {nb__cpu_range, NB_ALL_DTYPES},
    [NB_OP_UNIFORM] = {nb__cpu_random, NB_FLOATS},
    [NB_OP_NORMAL] = {nb__cpu_random, NB_FLOATS},
    [NB_OP_BERNOULLI] = {nb__cpu_random, NB_ALL_DTYPES},
    [NB_OP_RANDINT] = {nb__cpu_random, NB_ALL_DTYPES},
    [NB_OP_RANDPERM] = {nb__cpu_randperm, NB_ALL_DTYPES},
    [NB_OP_MULTINOMIAL] = {nb__cpu_multinomial, NB_FLOATS},
    [NB_OP_COPY] = {nb__cpu_copy, NB_ALL_DTYPES},
    UNARY(NEG), UNARY(ABS), UNARY_FLOAT(EXP), UNARY_FLOAT(LOG), UNARY_FLOAT(LOG1P),
    UNARY_FLOAT(SQRT), UNARY_FLOAT(RSQRT), UNARY_FLOAT(SIN), UNARY_FLOAT(COS),
    UNARY_FLOAT(TANH), UNARY_FLOAT(SIGMOID), UNARY(RELU), UNARY(SIGN), UNARY(FLOOR),
    UNARY(CEIL), UNARY(ROUND), UNARY(LOGICAL_NOT), UNARY(CLAMP),
    UNARY_FLOAT(RELU6), UNARY_FLOAT(LEAKY_RELU), UNARY_FLOAT(SILU), UNARY_FLOAT(HARDSIGMOID),
    UNARY_FLOAT(HARDSWISH), UNARY_FLOAT(GELU), UNARY_FLOAT(ELU), UNARY_FLOAT(SELU), UNARY_FLOAT(CELU),
    UNARY_FLOAT(SOFTPLUS), UNARY_FLOAT(MISH), UNARY_FLOAT(SWISH), UNARY_FLOAT(SOFTSIGN),
    UNARY_FLOAT(LOGSIGMOID), UNARY_FLOAT(THRESHOLD), UNARY_FLOAT(HARDTANH), UNARY_FLOAT(TANHSHRINK),
    UNARY_FLOAT(HARDSHRINK), UNARY_FLOAT(SOFTSHRINK),
    [NB_OP_ACTIVATION_BACKWARD] = {nb__cpu_activation_backward, NB_FLOATS},
    [NB_OP_GELU_BACKWARD] = {nb__cpu_gelu_backward, NB_FLOATS},
    BINARY(ADD), BINARY(SUB), BINARY(MUL), [NB_OP_DIV] = {nb__cpu_binary, NB_FLOATS},
    BINARY(POW), BINARY(MAXIMUM), BINARY(MINIMUM), BINARY(EQ), BINARY(NE), BINARY(LT),
    BINARY(LE), BINARY(GT), BINARY(GE), BINARY(LOGICAL_AND), BINARY(LOGICAL_OR),
    BINARY(LOGICAL_XOR),
    [NB_OP_WHERE] = {nb__cpu_where, NB_ALL_DTYPES},
    [NB_OP_MASKED_FILL] = {nb__cpu_masked_fill, NB_ALL_DTYPES},
    REDUCE(SUM, NB_ALL_DTYPES), REDUCE(MEAN, NB_FLOATS), REDUCE(PROD, NB_ALL_DTYPES),
    REDUCE(MAX, NB_ALL_DTYPES), REDUCE(MIN, NB_ALL_DTYPES), REDUCE(ARGMAX, NB_ALL_DTYPES),
    REDUCE(ARGMIN, NB_ALL_DTYPES), REDUCE(VAR, NB_FLOATS), REDUCE(STD, NB_FLOATS),
    REDUCE(LOGSUMEXP, NB_FLOATS), REDUCE(NORM, NB_FLOATS),
    [NB_OP_ARGSORT] = {nb__cpu_sort, NB_ALL_DTYPES},
    [NB_OP_TOPK] = {nb__cpu_sort, NB_ALL_DTYPES},
    [NB_OP_SEARCHSORTED] = {nb__cpu_searchsorted, NB_ALL_DTYPES},
    [NB_OP_CUMSUM] = {nb__cpu_scan, NB_ALL_DTYPES},
    [NB_OP_CUMPROD] = {nb__cpu_scan, NB_ALL_DTYPES},
    [NB_OP_LOGCUMSUMEXP] = {nb__cpu_scan, NB_FLOATS},
    [NB_OP_SCAN_BACKWARD] = {nb__cpu_scan_backward, NB_FLOATS},
    [NB_OP_MATMUL] = {nb__cpu_matmul, NB_FLOATS},
    [NB_OP_LINEAR] = {nb__cpu_linear, NB_FLOATS},
    [NB_OP_SOFTMAX] = {nb__cpu_softmax, NB_FLOATS},
    [NB_OP_LOG_SOFTMAX] = {nb__cpu_softmax, NB_FLOATS},
    [NB_OP_INDEX_SELECT] = {nb__cpu_index_select, NB_ALL_DTYPES},
    [NB_OP_GATHER] = {nb__cpu_gather, NB_ALL_DTYPES},
    [NB_OP_SCATTER_ADD] = {nb__cpu_scatter_add, NB_ALL_DTYPES},
    [NB_OP_ONE_HOT] = {nb__cpu_one_hot, NB_INTS},
    [NB_OP_CROSS_ENTROPY] = {nb__cpu_cross_entropy, NB_FLOATS},
    [NB_OP_UNFOLD] = {nb__cpu_unfold, NB_ALL_DTYPES},
    [NB_OP_FOLD] = {nb__cpu_fold, NB_FLOATS},
    [NB_OP_DEPTHWISE_CONV2D] = {nb__cpu_depthwise, NB_FLOATS},
    [NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD] = {nb__cpu_depthwise, NB_FLOATS},
    [NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD] = {nb__cpu_depthwise, NB_FLOATS},
    [NB_OP_MAX_POOL2D] = {nb__cpu_max_pool2d, NB_FLOATS},
    [NB_OP_OPTIM_STEP] = {nb__cpu_optim_step, NB_FLOATS},
    [NB_OP_BATCH_NORM_STATS] = {nb__cpu_batch_norm, NB_FLOATS},
    [NB_OP_BATCH_NORM_APPLY] = {nb__cpu_batch_norm, NB_FLOATS},
    [NB_OP_BATCH_NORM_BACKWARD_REDUCE] = {nb__cpu_batch_norm, NB_FLOATS},
    [NB_OP_BATCH_NORM_BACKWARD_APPLY] = {nb__cpu_batch_norm, NB_FLOATS},
    [NB_OP_LAYER_NORM] = {nb__cpu_layer_norm, NB_FLOATS},
    [NB_OP_RMS_NORM] = {nb__cpu_layer_norm, NB_FLOATS},
    [NB_OP_LAYER_NORM_BACKWARD] = {nb__cpu_layer_norm, NB_FLOATS},
    [NB_OP_ROPE] = {nb__cpu_rope, NB_FLOATS},
    [NB_OP_FLASH_ATTENTION] = {nb__cpu_attention, NB_DT(NB_F32) | NB_DT(NB_F64)},
    [NB_OP_FLASH_ATTENTION_BACKWARD] = {nb__cpu_attention, NB_DT(NB_F32) | NB_DT(NB_F64)},
    [NB_OP_RMS_NORM_BACKWARD] = {nb__cpu_layer_norm, NB_FLOATS},
    [NB_OP_AVG_POOL2D] = {nb__cpu_avg_pool2d, NB_FLOATS},
    [NB_OP_AVG_POOL2D_BACKWARD] = {nb__cpu_avg_pool2d_backward, NB_FLOATS},
    [NB_OP_CROSS_ENTROPY_BACKWARD] = {nb__cpu_cross_entropy_backward, NB_FLOATS},
    LOSS(BINARY_CROSS_ENTROPY), LOSS(BINARY_CROSS_ENTROPY_WITH_LOGITS), LOSS(MSE_LOSS), LOSS(L1_LOSS),
    LOSS(HUBER_LOSS), LOSS(SMOOTH_L1_LOSS), LOSS(LOG_COSH_LOSS), LOSS(MAPE_LOSS), LOSS(MSLE_LOSS),
    LOSS(POISSON_NLL_LOSS), LOSS(GAUSSIAN_NLL_LOSS), LOSS(KL_DIV), LOSS(HINGE_LOSS),
    LOSS(SQUARED_HINGE_LOSS), LOSS(MARGIN_RANKING_LOSS), LOSS(FOCAL_LOSS), LOSS(POINTWISE_LOSS_BACKWARD),
};

static nb_status cpu_copy(const char *fn, void *dst, nb_device dst_device, const void *src,
                          nb_device src_device, size_t nbytes) {
    (void)fn;
    (void)dst_device;
    (void)src_device;
    memcpy(dst, src, nbytes);
    return NB_OK;
}

static void cpu_release_cache(nb_device device) {
    (void)device;
    nb__cpu_release_cache();
}

const nb_backend nb__cpu_backend = {cpu_kernels, nb__cpu_alloc, nb__cpu_free, cpu_copy,
                                    cpu_release_cache};
