/* Layers: small modules that own named parameters and buffers, with a
 * train/eval mode, composed with nb_nn_sequential.
 *
 *   nb_module *net = nb_nn_sequential(3, (nb_module *[]){
 *       nb_nn_linear(784, 128, true, NB_F32, nb_cpu(), gen),
 *       nb_nn_activation(NB_ACT_RELU),
 *       nb_nn_linear(128, 10, true, NB_F32, nb_cpu(), gen)});
 *   nb_tensor *logits = nb_module_forward(net, x);
 *   ...
 *   nb_module_free(net);   // frees the children too
 *
 * Parameters are leaf tensors that require gradients; weights of linear and
 * convolution layers start Kaiming-normal (std sqrt(2 / fan_in)), biases at
 * zero, norm weights at one. A constructor returns NULL (with the reason in
 * nb_last_error) on bad arguments; nb_nn_sequential takes ownership of its
 * children even when it fails.
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "ops.h"
#include "random.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_module nb_module;

/* A parameter or buffer with its dotted path ("0.weight", "block.bn1.running_mean"). */
typedef struct nb_named_tensor {
    char name[128];
    nb_tensor *tensor; /* borrowed: valid while the module lives */
} nb_named_tensor;

typedef enum nb_activation {
    NB_ACT_RELU,
    NB_ACT_RELU6,
    NB_ACT_LEAKY_RELU, /* negative slope 0.01 */
    NB_ACT_SILU,
    NB_ACT_HARDSIGMOID,
    NB_ACT_HARDSWISH,
    NB_ACT_GELU,      /* exact, x Phi(x) */
    NB_ACT_GELU_TANH, /* the tanh approximation */
    NB_ACT_SWIGLU,    /* nb_swiglu: halves the last dim */
    /* PyTorch's defaults where the op takes parameters */
    NB_ACT_SIGMOID,
    NB_ACT_TANH,
    NB_ACT_ELU,        /* alpha 1 */
    NB_ACT_SELU,
    NB_ACT_CELU,       /* alpha 1 */
    NB_ACT_SOFTPLUS,   /* beta 1, threshold 20 */
    NB_ACT_MISH,
    NB_ACT_SOFTSIGN,
    NB_ACT_LOGSIGMOID,
    NB_ACT_HARDTANH,   /* [-1, 1] */
    NB_ACT_TANHSHRINK,
    NB_ACT_HARDSHRINK, /* lambda 0.5 */
    NB_ACT_SOFTSHRINK, /* lambda 0.5 */
    NB_ACT_RRELU,      /* [1/8, 1/3]: random slopes in training, the mean in evaluation */
    NB_ACT_GLU,        /* nb_glu over the last dim */
    NB_ACTIVATION_COUNT
} nb_activation;

/* ---- layers (gen may be NULL: the default generator) ---- */
nb_module *nb_nn_linear(int64_t in_features, int64_t out_features, bool bias, nb_dtype dtype,
                        nb_device device, nb_generator *gen);
/* Square kernels; padding may be NB_PADDING_SAME. */
nb_module *nb_nn_conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride,
                        int padding, int dilation, int groups, bool bias, nb_dtype dtype,
                        nb_device device, nb_generator *gen);
nb_module *nb_nn_conv_transpose2d(int64_t in_channels, int64_t out_channels, int kernel, int stride,
                                  int padding, int output_padding, int groups, bool bias,
                                  nb_dtype dtype, nb_device device, nb_generator *gen);
/* MobileNet's block: depthwise kernel x kernel conv (stride, "same"-style
 * padding kernel / 2) -> BatchNorm -> activation -> pointwise 1x1 conv ->
 * BatchNorm -> activation; children depthwise, bn1, act1, pointwise, bn2, act2. */
nb_module *nb_nn_depthwise_separable_conv2d(int64_t in_channels, int64_t out_channels, int kernel,
                                            int stride, nb_activation activation, nb_dtype dtype,
                                            nb_device device, nb_generator *gen);
/* BatchNorm over [N, C] or [N, C, L] (1d) and [N, C, H, W] (2d): weight,
 * bias (if affine), running_mean and running_var buffers. */
nb_module *nb_nn_batch_norm1d(int64_t features, double eps, double momentum, bool affine,
                              nb_dtype dtype, nb_device device);
nb_module *nb_nn_batch_norm2d(int64_t channels, double eps, double momentum, bool affine,
                              nb_dtype dtype, nb_device device);
nb_module *nb_nn_group_norm(int groups, int64_t channels, double eps, bool affine, nb_dtype dtype,
                            nb_device device);
/* Over the last dim of x [..., features]: LayerNorm with weight (ones) and
 * bias (zeros) if affine; RMSNorm with weight only. */
nb_module *nb_nn_layer_norm(int64_t features, double eps, bool affine, nb_dtype dtype,
                            nb_device device);
nb_module *nb_nn_rms_norm(int64_t features, double eps, bool affine, nb_dtype dtype,
                          nb_device device);
nb_module *nb_nn_max_pool2d(int kernel, int stride, int padding);
nb_module *nb_nn_avg_pool2d(int kernel, int stride, int padding);
nb_module *nb_nn_adaptive_avg_pool2d(int64_t out_h, int64_t out_w);
/* Inverted dropout: zeroes each element with probability p and scales the
 * rest by 1 / (1 - p) in training; the identity in evaluation. */
nb_module *nb_nn_dropout(double p, nb_generator *gen);
/* [N, ...] -> [N, prod(...)]. */
nb_module *nb_nn_flatten(void);
nb_module *nb_nn_activation(nb_activation activation);
/* nb_prelu with a learned weight [num_parameters] (1 or the channels), all
 * init (PyTorch's 0.25). */
nb_module *nb_nn_prelu(int64_t num_parameters, double init, nb_dtype dtype, nb_device device);
/* Runs children in order; children are named "0", "1", ... */
nb_module *nb_nn_sequential(int n, nb_module *const *children);

/* ---- transformers ---- */
/* Token embedding: weight [num, dim] drawn N(0, 1) as PyTorch's; forward
 * takes i32 or i64 indices [...] and gives [..., dim]. Its gradient
 * scatter-adds into the rows used. */
nb_module *nb_nn_embedding(int64_t num, int64_t dim, nb_dtype dtype, nb_device device,
                           nb_generator *gen);

typedef struct nb_attention_config {
    int64_t dim;       /* model width: heads * head dim */
    int heads;
    int kv_heads;      /* 0: heads; fewer share key/value heads (GQA; 1 is MQA) */
    bool causal;
    bool bias;         /* on the projections */
    bool rope;         /* rotary positions on q and k */
    double rope_base;  /* 0: 10000 */
    double dropout;    /* on the attention probabilities, in training */
} nb_attention_config;

/* Multi-head self-attention over x [B, S, dim]: one projection "qkv" to
 * heads + 2 kv_heads head-dim slices, nb_scaled_dot_product_attention, and
 * the projection "out". */
nb_module *nb_nn_multihead_attention(const nb_attention_config *config, nb_dtype dtype,
                                     nb_device device, nb_generator *gen);
/* The same with a mask for the scores [B, heads, S, S_total] (as in
 * nb_scaled_dot_product_attention; NULL for none). */
nb_tensor *nb_attention_forward(nb_module *attention, const nb_tensor *x, const nb_tensor *mask);

/* A key/value cache of capacity positions for batch sequences in every
 * MultiheadAttention of m (capacity 0 frees them). While it is on, each
 * forward appends its keys and values and attends to all cached ones, its
 * queries (and rotary angles) placed after them: feed a prompt, then one
 * token at a time, in evaluation and without gradients. Setting it again
 * empties it. */
nb_status nb_module_set_kv_cache(nb_module *m, int64_t batch, int64_t capacity);

typedef struct nb_transformer_config {
    nb_attention_config attention;
    int64_t hidden;  /* MLP width; 0: 4 dim, or 8 dim / 3 rounded up to 64 with SwiGLU */
    bool rms_norm;   /* RMSNorm, else LayerNorm */
    bool swiglu;     /* SwiGLU MLP, else GELU (tanh form) */
    double dropout;  /* on each residual branch, in training */
    double eps;      /* 0: 1e-5 */
} nb_transformer_config;

/* A pre-norm decoder block: x + drop(attn(norm1(x))), then
 * h + drop(mlp(norm2(h))), the MLP "mlp" a Sequential of fc1, activation,
 * fc2 and "drop" a Dropout of config->dropout. */
nb_module *nb_nn_transformer_block(const nb_transformer_config *config, nb_dtype dtype,
                                   nb_device device, nb_generator *gen);

typedef struct nb_gpt_config {
    int64_t vocab, context; /* tokens and the longest sequence */
    int layers;
    nb_transformer_config block;
    bool tied;              /* the output projection is the token embedding */
} nb_gpt_config;

/* A GPT: token embedding "wte" (plus learned positions "wpe" without RoPE),
 * blocks "blocks.0" ..., a final norm and the projection to the vocabulary
 * ("head", or wte's weight when tied). Forward maps i64 tokens [B, S] to
 * logits [B, S, vocab]. Weights start as GPT-2's: N(0, 0.02), the residual
 * projections (attn.out, mlp.fc2) N(0, 0.02 / sqrt(2 layers)). */
nb_module *nb_nn_gpt(const nb_gpt_config *config, nb_dtype dtype, nb_device device,
                     nb_generator *gen);
/* The mean cross-entropy of next-token logits for tokens [B, S] against
 * targets [B, S] (one fused op over the vocabulary). */
nb_tensor *nb_gpt_loss(nb_module *gpt, const nb_tensor *tokens, const nb_tensor *targets);

/* ---- using modules ---- */
nb_tensor *nb_module_forward(nb_module *m, const nb_tensor *x);
/* Training (true, the default) or evaluation mode, for m and its children. */
void nb_module_train(nb_module *m, bool training);
bool nb_module_is_training(const nb_module *m);
/* "Linear", "Sequential", ... */
const char *nb_module_type(const nb_module *m);
/* Writes up to max parameters (buffers) in order and returns how many m
 * has in all. */
int nb_module_parameters(const nb_module *m, nb_named_tensor *out, int max);
int nb_module_buffers(const nb_module *m, nb_named_tensor *out, int max);
/* Frees m and its children (NULL is fine). */
void nb_module_free(nb_module *m);

/* ---- initializers (in place, without autograd; gen may be NULL) ----
 * PyTorch's torch.nn.init and Keras's variance scaling; docs/nn.md has the
 * formulas. Any float dtype, any device; the values are drawn on the CPU. */
nb_status nb_init_constant(nb_tensor *t, double value);
nb_status nb_init_normal(nb_tensor *t, double mean, double std, nb_generator *gen);
nb_status nb_init_uniform(nb_tensor *t, double low, double high, nb_generator *gen);
/* N(mean, std^2) conditioned on [a, b] (inverse CDF, as PyTorch's trunc_normal_). */
nb_status nb_init_trunc_normal(nb_tensor *t, double mean, double std, double a, double b, nb_generator *gen);
/* Normal with std sqrt(2 / fan_in), for ReLU networks (He et al., 2015). */
nb_status nb_init_kaiming_normal(nb_tensor *t, int64_t fan_in, nb_generator *gen);

/* fan_in = size(1) x receptive field, fan_out = size(0) x receptive field
 * (PyTorch's rule; at least 2 dims). */
nb_status nb_init_fans(const nb_tensor *t, int64_t *fan_in, int64_t *fan_out);
/* PyTorch's calculate_gain: NB_INIT_LINEAR (linear, conv, identity) and
 * sigmoid 1, tanh 5/3, relu sqrt 2, leaky_relu sqrt(2 / (1 + param^2)),
 * selu 3/4; NB_ERR_INVALID for the rest. */
#define NB_INIT_LINEAR NB_ACTIVATION_COUNT
nb_status nb_init_gain(nb_activation kind, double param, double *gain);

typedef enum nb_fan_mode { NB_FAN_IN, NB_FAN_OUT, NB_FAN_AVG } nb_fan_mode;
/* A distribution of a given std: normal, uniform in +-sqrt(3) std, or a
 * normal truncated at 2 of its std and scaled to keep std (Keras's
 * truncated_normal: std / 0.8796...). */
typedef enum nb_init_distribution {
    NB_INIT_NORMAL,
    NB_INIT_UNIFORM,
    NB_INIT_TRUNCATED_NORMAL
} nb_init_distribution;

/* Xavier/Glorot (2010): std gain sqrt(2 / (fan_in + fan_out)). */
nb_status nb_init_xavier(nb_tensor *t, double gain, nb_init_distribution distribution, nb_generator *gen);
/* Kaiming/He (2015): std gain / sqrt(fan) with gain of nonlinearity (0:
 * PyTorch's default, leaky_relu of slope a: sqrt 2 at a = 0) and fan of mode
 * (fan_in or fan_out). */
typedef struct nb_kaiming_options {
    double a;
    nb_fan_mode mode;
    nb_activation nonlinearity;
    nb_init_distribution distribution;
} nb_kaiming_options;
nb_status nb_init_kaiming(nb_tensor *t, const nb_kaiming_options *options, nb_generator *gen);
/* Keras's VarianceScaling: std sqrt(scale / fan) of mode; LeCun is scale 1,
 * fan_in (LeCun et al., 1998; Keras's lecun_normal is truncated). */
nb_status nb_init_variance_scaling(nb_tensor *t, double scale, nb_fan_mode mode,
                                   nb_init_distribution distribution, nb_generator *gen);
nb_status nb_init_lecun(nb_tensor *t, nb_init_distribution distribution, nb_generator *gen);
/* A (semi-)orthogonal matrix times gain over [size(0), the rest]: the Q of
 * a Gaussian matrix's QR by Householder reflections, signs from R's diagonal
 * (Saxe et al., 2014; PyTorch's orthogonal_). */
nb_status nb_init_orthogonal(nb_tensor *t, double gain, nb_generator *gen);
/* The identity of a 2-dim tensor (ones on the diagonal of a rectangle). */
nb_status nb_init_eye(nb_tensor *t);
/* The Dirac delta of a 3- to 5-dim convolution weight: each of the groups'
 * first min(out / groups, in) channels passes its input through. */
nb_status nb_init_dirac(nb_tensor *t, int64_t groups);
/* Re-initializes m's Linear, Conv2d and ConvTranspose2d layers (and its
 * children's) as PyTorch's reset_parameters: weight uniform in
 * +-1 / sqrt(fan_in) (Kaiming-uniform with a = sqrt 5), bias alike. */
nb_status nb_init_pytorch_default(nb_module *m, nb_generator *gen);

#ifdef __cplusplus
}
#endif
#endif
