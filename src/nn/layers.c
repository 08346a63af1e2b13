/* The layers of include/nabla/nn.h: each forward calls the matching op with
 * the module's parameters and settings. */
#include <math.h>

#include "nn.h"

#define LAYER_CHECK(cond, ...)            \
    do {                                  \
        if (!(cond)) {                    \
            nb__error(NB_ERR_INVALID, __VA_ARGS__); \
            return NULL;                  \
        }                                 \
    } while (0)

/* Records NB_ERR_DTYPE for a layer of a dtype that is not float. */
static bool float_dtype(const char *fn, nb_dtype dtype) {
    if (nb_dtype_is_float(dtype)) return true;
    nb__error(NB_ERR_DTYPE, "%s: needs a float dtype, got %s", fn, nb_dtype_name(dtype));
    return false;
}

/* A new weight of shape, Kaiming-normal for fan_in. */
static nb_tensor *kaiming(int ndim, const int64_t *shape, int64_t fan_in, nb_dtype dtype,
                          nb_device device, nb_generator *gen) {
    nb_tensor *t = nb_empty(ndim, shape, dtype, device);
    if (t && nb_init_kaiming_normal(t, fan_in, gen) != NB_OK) {
        nb_release(t);
        return NULL;
    }
    return t;
}

/* ---- Linear ---- */

static nb_tensor *linear_forward(nb_module *m, const nb_tensor *x) {
    return nb_linear(x, nb__module_param(m, "weight"), nb__module_param(m, "bias"));
}

nb_module *nb_nn_linear(int64_t in_features, int64_t out_features, bool bias, nb_dtype dtype,
                        nb_device device, nb_generator *gen) {
    if (!float_dtype("nb_nn_linear", dtype)) return NULL;
    LAYER_CHECK(in_features > 0 && out_features > 0,
                "nb_nn_linear: needs positive sizes, got %lld and %lld", (long long)in_features,
                (long long)out_features);
    nb_module *m = nb__module_new("Linear", "nb_nn_linear", linear_forward);
    int64_t shape[2] = {out_features, in_features};
    if (!m || !nb__module_add_param(m, "weight", kaiming(2, shape, in_features, dtype, device, gen)))
        return NULL;
    if (bias && !nb__module_add_param(m, "bias", nb_zeros(1, &out_features, dtype, device)))
        return NULL;
    return m;
}

/* ---- convolutions ---- */

static nb_tensor *conv_forward(nb_module *m, const nb_tensor *x) {
    const nb_layer_config *c = &m->config;
    return nb_conv2d(x, nb__module_param(m, "weight"), nb__module_param(m, "bias"), c->stride,
                     c->padding, c->dilation, c->groups);
}

static nb_tensor *conv_transpose_forward(nb_module *m, const nb_tensor *x) {
    const nb_layer_config *c = &m->config;
    return nb_conv_transpose2d(x, nb__module_param(m, "weight"), nb__module_param(m, "bias"),
                               c->stride, c->padding, c->output_padding, c->dilation, c->groups);
}

static bool conv_args_valid(const char *fn, int64_t in, int64_t out, int kernel, int stride,
                            int groups, nb_dtype dtype) {
    if (!float_dtype(fn, dtype)) return false;
    if (in > 0 && out > 0 && kernel > 0 && stride > 0 && groups > 0 && in % groups == 0 &&
        out % groups == 0)
        return true;
    nb__error(NB_ERR_INVALID, "%s: needs positive sizes, channels divisible by groups %d, got "
              "%lld -> %lld, kernel %d, stride %d", fn, groups, (long long)in, (long long)out,
              kernel, stride);
    return false;
}

static nb_module *conv_module(const char *type, const char *fn, nb_forward_fn forward,
                              const int64_t *weight_shape, int64_t fan_in, int64_t out_channels,
                              bool bias, nb_dtype dtype, nb_device device, nb_generator *gen) {
    nb_module *m = nb__module_new(type, fn, forward);
    if (!m || !nb__module_add_param(m, "weight", kaiming(4, weight_shape, fan_in, dtype, device, gen)))
        return NULL;
    if (bias && !nb__module_add_param(m, "bias", nb_zeros(1, &out_channels, dtype, device)))
        return NULL;
    return m;
}

nb_module *nb_nn_conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride,
                        int padding, int dilation, int groups, bool bias, nb_dtype dtype,
                        nb_device device, nb_generator *gen) {
    if (!conv_args_valid("nb_nn_conv2d", in_channels, out_channels, kernel, stride, groups, dtype))
        return NULL;
    LAYER_CHECK(dilation > 0 && (padding >= 0 || padding == NB_PADDING_SAME),
                "nb_nn_conv2d: needs dilation > 0 and padding >= 0 (or NB_PADDING_SAME), got %d "
                "and %d", dilation, padding);
    int64_t shape[4] = {out_channels, in_channels / groups, kernel, kernel};
    nb_module *m = conv_module("Conv2d", "nb_nn_conv2d", conv_forward, shape,
                               shape[1] * kernel * kernel, out_channels, bias, dtype, device, gen);
    if (!m) return NULL;
    m->config = (nb_layer_config){.stride = {stride, stride}, .padding = {padding, padding},
                                  .dilation = {dilation, dilation}, .groups = groups};
    return m;
}

nb_module *nb_nn_conv_transpose2d(int64_t in_channels, int64_t out_channels, int kernel, int stride,
                                  int padding, int output_padding, int groups, bool bias,
                                  nb_dtype dtype, nb_device device, nb_generator *gen) {
    if (!conv_args_valid("nb_nn_conv_transpose2d", in_channels, out_channels, kernel, stride,
                         groups, dtype))
        return NULL;
    LAYER_CHECK(padding >= 0 && output_padding >= 0 && output_padding < stride,
                "nb_nn_conv_transpose2d: needs padding >= 0 and 0 <= output_padding < stride %d, "
                "got padding %d and output_padding %d", stride, padding, output_padding);
    int64_t shape[4] = {in_channels, out_channels / groups, kernel, kernel};
    /* PyTorch's fan_in for a transposed conv weight: dim 1 times the kernel */
    nb_module *m = conv_module("ConvTranspose2d", "nb_nn_conv_transpose2d", conv_transpose_forward,
                               shape, shape[1] * kernel * kernel, out_channels, bias, dtype,
                               device, gen);
    if (!m) return NULL;
    m->config = (nb_layer_config){.stride = {stride, stride}, .padding = {padding, padding},
                                  .output_padding = {output_padding, output_padding},
                                  .dilation = {1, 1}, .groups = groups};
    return m;
}

nb_module *nb_nn_depthwise_separable_conv2d(int64_t in_channels, int64_t out_channels, int kernel,
                                            int stride, nb_activation activation, nb_dtype dtype,
                                            nb_device device, nb_generator *gen) {
    /* one statement each: the weights draw from gen in this order */
    nb_module *parts[6];
    parts[0] = nb_nn_conv2d(in_channels, in_channels, kernel, stride, kernel / 2, 1,
                            (int)in_channels, false, dtype, device, gen);
    parts[1] = nb_nn_batch_norm2d(in_channels, 1e-5, 0.1, true, dtype, device);
    parts[2] = nb_nn_activation(activation);
    parts[3] = nb_nn_conv2d(in_channels, out_channels, 1, 1, 0, 1, 1, false, dtype, device, gen);
    parts[4] = nb_nn_batch_norm2d(out_channels, 1e-5, 0.1, true, dtype, device);
    parts[5] = nb_nn_activation(activation);
    const char *names[6] = {"depthwise", "bn1", "act1", "pointwise", "bn2", "act2"};
    return nb__sequential_named("DepthwiseSeparableConv2d", "nb_nn_depthwise_separable_conv2d", 6, parts,
                                names);
}

/* ---- normalization ---- */

static nb_tensor *batch_norm_forward(nb_module *m, const nb_tensor *x) {
    const nb_layer_config *c = &m->config;
    if (x->ndim < c->min_dims || x->ndim > c->max_dims) {
        nb__error(NB_ERR_SHAPE, "%s: needs x of %d to %d dims, got %s", m->type, c->min_dims,
                  c->max_dims, nb__tensor_shape_str(x));
        return NULL;
    }
    nb_tensor *mean = nb__module_buffer(m, "running_mean"), *var = nb__module_buffer(m, "running_var");
    nb_tensor *weight = nb__module_param(m, "weight"), *bias = nb__module_param(m, "bias");
    if (c->comm) return nb_sync_batch_norm(x, mean, var, weight, bias, m->training, c->momentum, c->eps, c->comm);
    return nb_batch_norm(x, mean, var, weight, bias, m->training, c->momentum, c->eps);
}

static nb_module *batch_norm(const char *type, const char *fn, int min_dims, int max_dims,
                             int64_t features, double eps, double momentum, bool affine,
                             nb_dtype dtype, nb_device device) {
    if (!float_dtype(fn, dtype)) return NULL;
    LAYER_CHECK(features > 0 && eps > 0 && isfinite(eps) && momentum >= 0 && momentum <= 1,
                "%s: needs features > 0, a finite eps > 0 and momentum in [0, 1], got %lld, %g "
                "and %g", fn, (long long)features, eps, momentum);
    nb_module *m = nb__module_new(type, fn, batch_norm_forward);
    if (!m) return NULL;
    m->config = (nb_layer_config){.eps = eps, .momentum = momentum, .min_dims = min_dims,
                                  .max_dims = max_dims};
    nb_dtype stats = dtype == NB_F64 ? NB_F64 : NB_F32;
    if (affine && (!nb__module_add_param(m, "weight", nb_ones(1, &features, dtype, device)) ||
                   !nb__module_add_param(m, "bias", nb_zeros(1, &features, dtype, device))))
        return NULL;
    if (!nb__module_add_buffer(m, "running_mean", nb_zeros(1, &features, stats, device)) ||
        !nb__module_add_buffer(m, "running_var", nb_ones(1, &features, stats, device)))
        return NULL;
    return m;
}

nb_module *nb_nn_batch_norm1d(int64_t features, double eps, double momentum, bool affine,
                              nb_dtype dtype, nb_device device) {
    return batch_norm("BatchNorm1d", "nb_nn_batch_norm1d", 2, 3, features, eps, momentum, affine, dtype, device);
}

nb_module *nb_nn_batch_norm2d(int64_t channels, double eps, double momentum, bool affine,
                              nb_dtype dtype, nb_device device) {
    return batch_norm("BatchNorm2d", "nb_nn_batch_norm2d", 4, 4, channels, eps, momentum, affine, dtype, device);
}

static nb_module *sync_batch_norm(const char *fn, int min_dims, int max_dims, int64_t features, double eps,
                                  double momentum, bool affine, nb_dtype dtype, nb_device device, nb_comm *comm) {
    LAYER_CHECK(comm, "%s: comm is NULL", fn);
    nb_module *m = batch_norm("SyncBatchNorm", fn, min_dims, max_dims, features, eps, momentum, affine, dtype,
                              device);
    if (m) m->config.comm = comm;
    return m;
}

nb_module *nb_nn_sync_batch_norm1d(int64_t features, double eps, double momentum, bool affine, nb_dtype dtype,
                                   nb_device device, nb_comm *comm) {
    return sync_batch_norm("nb_nn_sync_batch_norm1d", 2, 3, features, eps, momentum, affine, dtype, device, comm);
}

nb_module *nb_nn_sync_batch_norm2d(int64_t channels, double eps, double momentum, bool affine, nb_dtype dtype,
                                   nb_device device, nb_comm *comm) {
    return sync_batch_norm("nb_nn_sync_batch_norm2d", 4, 4, channels, eps, momentum, affine, dtype, device, comm);
}

static int convert_sync(nb_module *m, nb_comm *comm) {
    int converted = 0;
    if (m->forward == batch_norm_forward && !m->config.comm) {
        m->config.comm = comm;
        m->type = "SyncBatchNorm";
        converted++;
    }
    for (int i = 0; i < m->n_children; i++) converted += convert_sync(m->children[i], comm);
    return converted;
}

int nb_nn_convert_sync_batch_norm(nb_module *model, nb_comm *comm) {
    if (!model || !comm) {
        nb__error(NB_ERR_INVALID, "nb_nn_convert_sync_batch_norm: model or comm is NULL");
        return -1;
    }
    return convert_sync(model, comm);
}

static nb_tensor *group_norm_forward(nb_module *m, const nb_tensor *x) {
    return nb_group_norm(x, m->config.groups, nb__module_param(m, "weight"),
                         nb__module_param(m, "bias"), m->config.eps);
}

nb_module *nb_nn_group_norm(int groups, int64_t channels, double eps, bool affine, nb_dtype dtype,
                            nb_device device) {
    if (!float_dtype("nb_nn_group_norm", dtype)) return NULL;
    LAYER_CHECK(groups > 0 && channels > 0 && channels % groups == 0 && eps > 0 && isfinite(eps),
                "nb_nn_group_norm: needs channels %lld divisible by groups %d and a finite eps > 0, "
                "got eps %g", (long long)channels, groups, eps);
    nb_module *m = nb__module_new("GroupNorm", "nb_nn_group_norm", group_norm_forward);
    if (!m) return NULL;
    m->config = (nb_layer_config){.groups = groups, .eps = eps};
    if (affine && (!nb__module_add_param(m, "weight", nb_ones(1, &channels, dtype, device)) ||
                   !nb__module_add_param(m, "bias", nb_zeros(1, &channels, dtype, device))))
        return NULL;
    return m;
}

static nb_tensor *layer_norm_forward(nb_module *m, const nb_tensor *x) {
    const nb_tensor *weight = nb__module_param(m, "weight");
    return m->config.groups ? nb_rms_norm(x, 1, weight, m->config.eps)
                            : nb_layer_norm(x, 1, weight, nb__module_param(m, "bias"), m->config.eps);
}

/* LayerNorm (weight and bias) or RMSNorm (weight only) over the last dim. */
static nb_module *row_norm_layer(const char *type, const char *fn, bool rms, int64_t features,
                                 double eps, bool affine, nb_dtype dtype, nb_device device) {
    if (!float_dtype(fn, dtype)) return NULL;
    LAYER_CHECK(features > 0 && eps > 0 && isfinite(eps),
                "%s: needs features > 0 and a finite eps > 0, got %lld and %g", fn,
                (long long)features, eps);
    nb_module *m = nb__module_new(type, fn, layer_norm_forward);
    if (!m) return NULL;
    m->config = (nb_layer_config){.groups = rms, .eps = eps}; /* groups: 1 for RMSNorm */
    if (affine && !nb__module_add_param(m, "weight", nb_ones(1, &features, dtype, device)))
        return NULL;
    if (affine && !rms && !nb__module_add_param(m, "bias", nb_zeros(1, &features, dtype, device)))
        return NULL;
    return m;
}

nb_module *nb_nn_layer_norm(int64_t features, double eps, bool affine, nb_dtype dtype,
                            nb_device device) {
    return row_norm_layer("LayerNorm", "nb_nn_layer_norm", false, features, eps, affine, dtype, device);
}

nb_module *nb_nn_rms_norm(int64_t features, double eps, bool affine, nb_dtype dtype,
                          nb_device device) {
    return row_norm_layer("RMSNorm", "nb_nn_rms_norm", true, features, eps, affine, dtype, device);
}

/* ---- pooling, dropout, flatten, activations ---- */

static nb_tensor *max_pool_forward(nb_module *m, const nb_tensor *x) {
    return nb_max_pool2d(x, m->config.kernel, m->config.stride, m->config.padding);
}

static nb_tensor *avg_pool_forward(nb_module *m, const nb_tensor *x) {
    return nb_avg_pool2d(x, m->config.kernel, m->config.stride, m->config.padding);
}

static nb_module *pool(const char *type, const char *fn, nb_forward_fn forward, int kernel,
                       int stride, int padding) {
    /* PyTorch's rule: padding at most half the kernel, so no window is all padding */
    LAYER_CHECK(kernel >= 1 && stride >= 0 && padding >= 0 && padding <= kernel / 2,
                "%s: needs kernel >= 1, stride >= 0 (0: the kernel) and 0 <= padding <= kernel / "
                "2, got kernel %d, stride %d, padding %d", fn, kernel, stride, padding);
    nb_module *m = nb__module_new(type, fn, forward);
    if (!m) return NULL;
    int s = stride > 0 ? stride : kernel; /* stride 0: the kernel, as PyTorch's default */
    m->config = (nb_layer_config){.kernel = {kernel, kernel}, .stride = {s, s},
                                  .padding = {padding, padding}};
    return m;
}

nb_module *nb_nn_max_pool2d(int kernel, int stride, int padding) {
    return pool("MaxPool2d", "nb_nn_max_pool2d", max_pool_forward, kernel, stride, padding);
}

nb_module *nb_nn_avg_pool2d(int kernel, int stride, int padding) {
    return pool("AvgPool2d", "nb_nn_avg_pool2d", avg_pool_forward, kernel, stride, padding);
}

static nb_tensor *adaptive_forward(nb_module *m, const nb_tensor *x) {
    return nb_adaptive_avg_pool2d(x, m->config.out_size[0], m->config.out_size[1]);
}

nb_module *nb_nn_adaptive_avg_pool2d(int64_t out_h, int64_t out_w) {
    LAYER_CHECK(out_h > 0 && out_w > 0, "nb_nn_adaptive_avg_pool2d: needs a positive size, got "
                "%lldx%lld", (long long)out_h, (long long)out_w);
    nb_module *m = nb__module_new("AdaptiveAvgPool2d", "nb_nn_adaptive_avg_pool2d", adaptive_forward);
    if (m) {
        m->config.out_size[0] = out_h;
        m->config.out_size[1] = out_w;
    }
    return m;
}

static nb_tensor *dropout_forward(nb_module *m, const nb_tensor *x) {
    double p = m->config.p;
    if (!m->training || p == 0) return nb_retain((nb_tensor *)x);
    nb_scratch s = {0};
    nb_tensor *keep = nb__keep(&s, nb_bernoulli(x->ndim, x->shape, 1 - p, x->dtype,
                                                x->storage->device, m->config.gen));
    nb_tensor *scale = nb__keep(&s, nb__scalar_like(x, 1 / (1 - p)));
    nb_tensor *y = nb__keep(&s, nb_mul(x, nb__keep(&s, nb_mul(keep, scale)))), *out = NULL;
    return nb__scratch_finish(&s, y, &out) == NB_OK ? out : NULL;
}

nb_module *nb_nn_dropout(double p, nb_generator *gen) {
    LAYER_CHECK(p >= 0 && p < 1, "nb_nn_dropout: p must be in [0, 1), got %g", p);
    nb_module *m = nb__module_new("Dropout", "nb_nn_dropout", dropout_forward);
    if (m) m->config = (nb_layer_config){.p = p, .gen = gen};
    return m;
}

static nb_tensor *flatten_forward(nb_module *m, const nb_tensor *x) {
    (void)m;
    int64_t shape[2] = {x->ndim ? x->shape[0] : 1, -1};
    if (x->ndim && x->shape[0] == 0) shape[1] = nb__numel(x->ndim - 1, x->shape + 1);
    return nb_reshape(x, 2, shape);
}

nb_module *nb_nn_flatten(void) { return nb__module_new("Flatten", "nb_nn_flatten", flatten_forward); }

static nb_tensor *activation_forward(nb_module *m, const nb_tensor *x) {
    switch (m->config.activation) {
    case NB_ACT_RELU: return nb_relu(x);
    case NB_ACT_RELU6: return nb_relu6(x);
    case NB_ACT_LEAKY_RELU: return nb_leaky_relu(x, 0.01);
    case NB_ACT_SILU: return nb_silu(x);
    case NB_ACT_HARDSIGMOID: return nb_hardsigmoid(x);
    case NB_ACT_GELU: return nb_gelu(x, false);
    case NB_ACT_GELU_TANH: return nb_gelu(x, true);
    case NB_ACT_SWIGLU: return nb_swiglu(x);
    case NB_ACT_SIGMOID: return nb_sigmoid(x);
    case NB_ACT_TANH: return nb_tanh(x);
    case NB_ACT_ELU: return nb_elu(x, 1);
    case NB_ACT_SELU: return nb_selu(x);
    case NB_ACT_CELU: return nb_celu(x, 1);
    case NB_ACT_SOFTPLUS: return nb_softplus(x, 1, 20);
    case NB_ACT_MISH: return nb_mish(x);
    case NB_ACT_SOFTSIGN: return nb_softsign(x);
    case NB_ACT_LOGSIGMOID: return nb_logsigmoid(x);
    case NB_ACT_HARDTANH: return nb_hardtanh(x, -1, 1);
    case NB_ACT_TANHSHRINK: return nb_tanhshrink(x);
    case NB_ACT_HARDSHRINK: return nb_hardshrink(x, 0.5);
    case NB_ACT_SOFTSHRINK: return nb_softshrink(x, 0.5);
    case NB_ACT_RRELU: return nb_rrelu(x, 1.0 / 8, 1.0 / 3, m->training, NULL);
    case NB_ACT_GLU: return nb_glu(x, -1);
    default: return nb_hardswish(x);
    }
}

nb_module *nb_nn_activation(nb_activation activation) {
    static const char *const names[NB_ACTIVATION_COUNT] = {
        "ReLU", "ReLU6", "LeakyReLU", "SiLU", "Hardsigmoid", "Hardswish", "GELU", "GELU(tanh)",
        "SwiGLU", "Sigmoid", "Tanh", "ELU", "SELU", "CELU", "Softplus", "Mish", "Softsign",
        "LogSigmoid", "Hardtanh", "Tanhshrink", "Hardshrink", "Softshrink", "RReLU", "GLU"};
    LAYER_CHECK((unsigned)activation < NB_ACTIVATION_COUNT, "nb_nn_activation: unknown activation %d",
                (int)activation);
    nb_module *m = nb__module_new(names[activation], "nb_nn_activation", activation_forward);
    if (m) m->config.activation = activation;
    return m;
}

static nb_tensor *prelu_forward(nb_module *m, const nb_tensor *x) {
    return nb_prelu(x, nb__module_param(m, "weight"));
}

nb_module *nb_nn_prelu(int64_t num_parameters, double init, nb_dtype dtype, nb_device device) {
    if (!float_dtype("nb_nn_prelu", dtype)) return NULL;
    LAYER_CHECK(num_parameters > 0 && isfinite(init),
                "nb_nn_prelu: needs num_parameters > 0 and a finite init, got %lld and %g",
                (long long)num_parameters, init);
    nb_module *m = nb__module_new("PReLU", "nb_nn_prelu", prelu_forward);
    if (!m || !nb__module_add_param(m, "weight", nb_full(1, &num_parameters, init, dtype, device)))
        return NULL;
    return m;
}

