// The CUDA backend: which kernel runs each op for which dtypes (the same
// coverage as the CPU backend), the caching allocator and device copies.
#include "cuda.cuh"

#define UNARY(ID) k[NB_OP_##ID] = {nb__cuda_unary, NB_FLOATS | NB_INTS}
#define UNARY_FLOAT(ID) k[NB_OP_##ID] = {nb__cuda_unary, NB_FLOATS}
#define BINARY(ID) k[NB_OP_##ID] = {nb__cuda_binary, NB_FLOATS | NB_INTS}
#define REDUCE(ID, dtypes) k[NB_OP_##ID] = {nb__cuda_reduce, dtypes}

// C++ has no designated array initializers: the table is filled once.
static nb_kernel kernels[NB_OP_COUNT];

static const nb_kernel *kernel_table(void) {
    nb_kernel *k = kernels;
    k[NB_OP_FILL] = {nb__cuda_fill, NB_ALL_DTYPES};
    k[NB_OP_ARANGE] = {nb__cuda_range, NB_ALL_DTYPES};
    k[NB_OP_LINSPACE] = {nb__cuda_range, NB_ALL_DTYPES};
    k[NB_OP_UNIFORM] = {nb__cuda_random, NB_FLOATS};
    k[NB_OP_NORMAL] = {nb__cuda_random, NB_FLOATS};
    k[NB_OP_BERNOULLI] = {nb__cuda_random, NB_ALL_DTYPES};
    k[NB_OP_RANDINT] = {nb__cuda_random, NB_ALL_DTYPES};
    k[NB_OP_RANDPERM] = {nb__cuda_randperm, NB_ALL_DTYPES};
    k[NB_OP_MULTINOMIAL] = {nb__cuda_multinomial, NB_FLOATS};
    for (nb_op op : {NB_OP_BINARY_CROSS_ENTROPY, NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS, NB_OP_MSE_LOSS,
                     NB_OP_L1_LOSS, NB_OP_HUBER_LOSS, NB_OP_SMOOTH_L1_LOSS, NB_OP_LOG_COSH_LOSS,
                     NB_OP_MAPE_LOSS, NB_OP_MSLE_LOSS, NB_OP_POISSON_NLL_LOSS, NB_OP_GAUSSIAN_NLL_LOSS,
                     NB_OP_KL_DIV, NB_OP_HINGE_LOSS, NB_OP_SQUARED_HINGE_LOSS, NB_OP_MARGIN_RANKING_LOSS,
                     NB_OP_FOCAL_LOSS, NB_OP_POINTWISE_LOSS_BACKWARD})
        k[op] = {nb__cuda_pointwise_loss, NB_FLOATS};
    k[NB_OP_ARGSORT] = {nb__cuda_sort, NB_ALL_DTYPES};
    k[NB_OP_TOPK] = {nb__cuda_sort, NB_ALL_DTYPES};
    k[NB_OP_SEARCHSORTED] = {nb__cuda_searchsorted, NB_ALL_DTYPES};
    for (nb_op op : {NB_OP_CUMSUM, NB_OP_CUMPROD}) k[op] = {nb__cuda_scan, NB_ALL_DTYPES};
    k[NB_OP_LOGCUMSUMEXP] = {nb__cuda_scan, NB_FLOATS};
    k[NB_OP_SCAN_BACKWARD] = {nb__cuda_scan_backward, NB_FLOATS};
    k[NB_OP_COPY] = {nb__cuda_copy, NB_ALL_DTYPES};
    UNARY(NEG), UNARY(ABS), UNARY_FLOAT(EXP), UNARY_FLOAT(LOG), UNARY_FLOAT(LOG1P);
    UNARY_FLOAT(SQRT), UNARY_FLOAT(RSQRT), UNARY_FLOAT(SIN), UNARY_FLOAT(COS);
    UNARY_FLOAT(TANH), UNARY_FLOAT(SIGMOID), UNARY(RELU), UNARY(SIGN), UNARY(FLOOR);
    UNARY(CEIL), UNARY(ROUND), UNARY(LOGICAL_NOT), UNARY(CLAMP);
    UNARY_FLOAT(RELU6), UNARY_FLOAT(LEAKY_RELU), UNARY_FLOAT(SILU), UNARY_FLOAT(HARDSIGMOID);
    UNARY_FLOAT(HARDSWISH), UNARY_FLOAT(GELU), UNARY_FLOAT(ELU), UNARY_FLOAT(SELU), UNARY_FLOAT(CELU);
    UNARY_FLOAT(SOFTPLUS), UNARY_FLOAT(MISH), UNARY_FLOAT(SWISH), UNARY_FLOAT(SOFTSIGN);
    UNARY_FLOAT(LOGSIGMOID), UNARY_FLOAT(THRESHOLD), UNARY_FLOAT(HARDTANH), UNARY_FLOAT(TANHSHRINK);
    UNARY_FLOAT(HARDSHRINK), UNARY_FLOAT(SOFTSHRINK);
    k[NB_OP_ACTIVATION_BACKWARD] = {nb__cuda_activation_backward, NB_FLOATS};
    k[NB_OP_GELU_BACKWARD] = {nb__cuda_gelu_backward, NB_FLOATS};
    k[NB_OP_ROPE] = {nb__cuda_rope, NB_FLOATS};
    k[NB_OP_FLASH_ATTENTION] = {nb__cuda_attention, NB_DT(NB_F16) | NB_DT(NB_BF16)};
    k[NB_OP_FLASH_ATTENTION_BACKWARD] = {nb__cuda_attention, NB_DT(NB_F16) | NB_DT(NB_BF16)};
    for (nb_op op : {NB_OP_LAYER_NORM, NB_OP_RMS_NORM, NB_OP_LAYER_NORM_BACKWARD, NB_OP_RMS_NORM_BACKWARD})
        k[op] = {nb__cuda_layer_norm, NB_FLOATS};
    BINARY(ADD), BINARY(SUB), BINARY(MUL), BINARY(POW), BINARY(MAXIMUM), BINARY(MINIMUM);
    k[NB_OP_DIV] = {nb__cuda_binary, NB_FLOATS};
    BINARY(EQ), BINARY(NE), BINARY(LT), BINARY(LE), BINARY(GT), BINARY(GE);
    BINARY(LOGICAL_AND), BINARY(LOGICAL_OR), BINARY(LOGICAL_XOR);
    k[NB_OP_WHERE] = {nb__cuda_where, NB_ALL_DTYPES};
    k[NB_OP_MASKED_FILL] = {nb__cuda_masked_fill, NB_ALL_DTYPES};
    REDUCE(SUM, NB_ALL_DTYPES), REDUCE(MEAN, NB_FLOATS), REDUCE(PROD, NB_ALL_DTYPES);
    REDUCE(MAX, NB_ALL_DTYPES), REDUCE(MIN, NB_ALL_DTYPES), REDUCE(ARGMAX, NB_ALL_DTYPES);
    REDUCE(ARGMIN, NB_ALL_DTYPES), REDUCE(VAR, NB_FLOATS), REDUCE(STD, NB_FLOATS);
    REDUCE(LOGSUMEXP, NB_FLOATS), REDUCE(NORM, NB_FLOATS);
    k[NB_OP_MATMUL] = {nb__cuda_matmul, NB_FLOATS};
    k[NB_OP_LINEAR] = {nb__cuda_linear, NB_FLOATS};
    k[NB_OP_SOFTMAX] = {nb__cuda_softmax, NB_FLOATS};
    k[NB_OP_LOG_SOFTMAX] = {nb__cuda_softmax, NB_FLOATS};
    k[NB_OP_INDEX_SELECT] = {nb__cuda_index_select, NB_ALL_DTYPES};
    k[NB_OP_GATHER] = {nb__cuda_gather, NB_ALL_DTYPES};
    k[NB_OP_SCATTER_ADD] = {nb__cuda_scatter_add, NB_ALL_DTYPES};
    k[NB_OP_ONE_HOT] = {nb__cuda_one_hot, NB_INTS};
    k[NB_OP_CROSS_ENTROPY] = {nb__cuda_cross_entropy, NB_FLOATS};
    k[NB_OP_CROSS_ENTROPY_BACKWARD] = {nb__cuda_cross_entropy_backward, NB_FLOATS};
    k[NB_OP_UNFOLD] = {nb__cuda_unfold, NB_ALL_DTYPES};
    k[NB_OP_FOLD] = {nb__cuda_fold, NB_FLOATS};
    k[NB_OP_DEPTHWISE_CONV2D] = {nb__cuda_depthwise, NB_FLOATS};
    k[NB_OP_DEPTHWISE_CONV2D_INPUT_GRAD] = {nb__cuda_depthwise, NB_FLOATS};
    k[NB_OP_DEPTHWISE_CONV2D_WEIGHT_GRAD] = {nb__cuda_depthwise, NB_FLOATS};
#ifdef NABLA_WITH_CUDNN
    const uint32_t dnn_dtypes = NB_DT(NB_F32) | NB_DT(NB_F16) | NB_DT(NB_BF16);
    k[NB_OP_CONV2D_DIRECT] = {nb__cuda_conv, dnn_dtypes};
    k[NB_OP_CONV2D_INPUT_GRAD] = {nb__cuda_conv, dnn_dtypes};
    k[NB_OP_CONV2D_WEIGHT_GRAD] = {nb__cuda_conv, dnn_dtypes};
#endif
    k[NB_OP_MAX_POOL2D] = {nb__cuda_pool, NB_FLOATS};
    k[NB_OP_OPTIM_STEP] = {nb__cuda_optim_step, NB_FLOATS};
    k[NB_OP_BATCH_NORM_STATS] = {nb__cuda_batch_norm, NB_FLOATS};
    k[NB_OP_BATCH_NORM_APPLY] = {nb__cuda_batch_norm, NB_FLOATS};
    k[NB_OP_BATCH_NORM_BACKWARD_REDUCE] = {nb__cuda_batch_norm, NB_FLOATS};
    k[NB_OP_BATCH_NORM_BACKWARD_APPLY] = {nb__cuda_batch_norm, NB_FLOATS};
    k[NB_OP_AVG_POOL2D] = {nb__cuda_pool, NB_FLOATS};
    k[NB_OP_AVG_POOL2D_BACKWARD] = {nb__cuda_pool, NB_FLOATS};
    return k;
}

static void release_cache(nb_device device) { nb__cuda_release_cache(device); }

extern "C" const nb_backend nb__cuda_backend = {kernel_table(), nb__cuda_alloc, nb__cuda_free,
                                               nb__cuda_copy_bytes, release_cache};
