/* The bindings of convolution, pooling, normalization and losses
 * (nabla.nn.functional's C half). */
#include "ops.h"

#include <float.h>

/* ---- convolution and pooling ---- */

static int padding_of(const nbp_op_def *def, PyObject *o, int out[2], int **ptr) {
    if (o && PyUnicode_Check(o)) {
        *ptr = out;
        if (!PyUnicode_CompareWithASCIIString(o, "same")) return out[0] = NB_PADDING_SAME, out[1] = 0, 0;
        if (!PyUnicode_CompareWithASCIIString(o, "valid")) return out[0] = out[1] = 0, 0;
        return PyErr_Format(PyExc_ValueError, "%s: padding must be 'same', 'valid' or ints, not '%U'",
                            def->name, o), -1;
    }
    return nbp_pair(o, def->name, "padding", out, ptr);
}

static PyObject *a_conv2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w = x ? tensor_of(def, a, 1) : NULL, *b;
    int stride[2], padding[2], dilation[2], *s, *p, *d;
    int64_t groups;
    if (!w || optional_tensor(def, a, 2, &b) < 0 || nbp_pair(a[3], def->name, "stride", stride, &s) < 0 ||
        padding_of(def, a[4], padding, &p) < 0 || nbp_pair(a[5], def->name, "dilation", dilation, &d) < 0 ||
        int_of(def, a, 6, 1, &groups) < 0)
        return NULL;
    if (groups < 1 || groups > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "conv2d: groups must be positive, not %lld", (long long)groups);
    return nbp_wrap(nb_conv2d(x, w, b, s, p, d, (int)groups));
}

/* (input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) */
static PyObject *a_conv_transpose2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w = x ? tensor_of(def, a, 1) : NULL, *b;
    int stride[2], padding[2], extra[2], dilation[2], *s, *p, *e, *d;
    int64_t groups;
    if (!w || optional_tensor(def, a, 2, &b) < 0 || nbp_pair(a[3], def->name, "stride", stride, &s) < 0 ||
        nbp_pair(a[4], def->name, "padding", padding, &p) < 0 ||
        nbp_pair(a[5], def->name, "output_padding", extra, &e) < 0 || int_of(def, a, 6, 1, &groups) < 0 ||
        nbp_pair(a[7], def->name, "dilation", dilation, &d) < 0)
        return NULL;
    if (groups < 1 || groups > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "conv_transpose2d: groups must be positive, not %lld",
                            (long long)groups);
    return nbp_wrap(nb_conv_transpose2d(x, w, b, s, p, e, d, (int)groups));
}

/* unfold(input, kernel_size, dilation=1, padding=0, stride=1) */
static PyObject *a_unfold(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int kernel[2], dilation[2], padding[2], stride[2], *k, *d, *p, *s;
    if (!x || nbp_pair(a[1], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[2], def->name, "dilation", dilation, &d) < 0 ||
        nbp_pair(a[3], def->name, "padding", padding, &p) < 0 ||
        nbp_pair(a[4], def->name, "stride", stride, &s) < 0)
        return NULL;
    return nbp_wrap(nb_unfold(x, k, d, p, s));
}

/* fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) */
static PyObject *a_fold(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int size[2], kernel[2], dilation[2], padding[2], stride[2], *o, *k, *d, *p, *s;
    if (!x || nbp_pair(a[1], def->name, "output_size", size, &o) < 0 ||
        nbp_pair(a[2], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[3], def->name, "dilation", dilation, &d) < 0 ||
        nbp_pair(a[4], def->name, "padding", padding, &p) < 0 ||
        nbp_pair(a[5], def->name, "stride", stride, &s) < 0)
        return NULL;
    int64_t output_size[2] = {size[0], size[1]};
    return nbp_wrap(nb_fold(x, output_size, k, d, p, s));
}

/* max_pool2d(input, kernel_size, stride=None, padding=0, return_indices=False) */
static PyObject *a_max_pool2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int kernel[2], stride[2], padding[2], *k, *s, *p;
    bool with_indices;
    if (!x || nbp_pair(a[1], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[2], def->name, "stride", stride, &s) < 0 ||
        nbp_pair(a[3], def->name, "padding", padding, &p) < 0 || bool_of(a[4], false, &with_indices) < 0)
        return NULL;
    if (!with_indices) return nbp_wrap(nb_max_pool2d(x, k, s, p));
    nb_tensor *indices = NULL;
    PyObject *y = nbp_wrap(nb_max_pool2d_with_indices(x, k, s, p, &indices));
    if (!y) return nb_release(indices), NULL;
    PyObject *i = nbp_wrap(indices);
    if (!i) return Py_DECREF(y), NULL;
    return Py_BuildValue("(NN)", y, i);
}

static PyObject *a_avg_pool2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int kernel[2], stride[2], padding[2], *k, *s, *p;
    if (!x || nbp_pair(a[1], def->name, "kernel_size", kernel, &k) < 0 ||
        nbp_pair(a[2], def->name, "stride", stride, &s) < 0 ||
        nbp_pair(a[3], def->name, "padding", padding, &p) < 0)
        return NULL;
    return nbp_wrap(nb_avg_pool2d(x, k, s, p));
}

static PyObject *a_adaptive_avg_pool2d(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0);
    int size[2], *s;
    if (!x || nbp_pair(a[1], def->name, "output_size", size, &s) < 0) return NULL;
    if (!s) return PyErr_Format(PyExc_TypeError, "adaptive_avg_pool2d: output_size is required");
    return nbp_wrap(nb_adaptive_avg_pool2d(x, size[0], size[1]));
}

/* ---- normalization and losses ---- */

/* (input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5) */
static PyObject *a_batch_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *mean, *var, *w, *b;
    bool training;
    double momentum, eps;
    if (!x || optional_tensor(def, a, 1, &mean) < 0 || optional_tensor(def, a, 2, &var) < 0 ||
        optional_tensor(def, a, 3, &w) < 0 || optional_tensor(def, a, 4, &b) < 0 ||
        bool_of(a[5], false, &training) < 0 || double_of(def, a, 6, 0.1, &momentum) < 0 ||
        double_of(def, a, 7, 1e-5, &eps) < 0)
        return NULL;
    return nbp_wrap(nb_batch_norm(x, mean, var, w, b, training, momentum, eps));
}

/* normalized_shape: an int or a tuple of the last dims' sizes, which must match */
static int normalized_dims(const nbp_op_def *def, const nb_tensor *x, PyObject *o, int *dims) {
    int64_t shape[NB_MAX_DIMS];
    int n = nbp_int64s(o, NB_MAX_DIMS, def->name, "normalized_shape", shape);
    if (n < 0) return -1;
    int nd = nb_ndim(x);
    for (int i = 0; i < n; i++)
        if (n > nd || nb_shape(x)[nd - n + i] != shape[i])
            return PyErr_Format(PyExc_ValueError, "%s: normalized_shape does not match the input's "
                                "last %d dims", def->name, n), -1;
    *dims = n;
    return 0;
}

static PyObject *a_layer_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w, *b;
    int dims;
    double eps;
    if (!x || normalized_dims(def, x, a[1], &dims) < 0 || optional_tensor(def, a, 2, &w) < 0 ||
        optional_tensor(def, a, 3, &b) < 0 || double_of(def, a, 4, 1e-5, &eps) < 0)
        return NULL;
    return nbp_wrap(nb_layer_norm(x, dims, w, b, eps));
}

/* eps None: the dtype's machine epsilon, as PyTorch */
static PyObject *a_rms_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w;
    int dims;
    double eps;
    if (!x) return NULL;
    static const double machine_eps[NB_DTYPE_COUNT] = {[NB_F32] = FLT_EPSILON, [NB_F64] = DBL_EPSILON,
                                                       [NB_F16] = 0x1p-10, [NB_BF16] = 0x1p-7};
    if (normalized_dims(def, x, a[1], &dims) < 0 || optional_tensor(def, a, 2, &w) < 0 ||
        double_of(def, a, 3, machine_eps[nb_dtype_of(x)], &eps) < 0)
        return NULL;
    return nbp_wrap(nb_rms_norm(x, dims, w, eps));
}

static PyObject *a_group_norm(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *w, *b;
    int groups;
    double eps;
    if (!x || dim_of(def, a, 1, 1, &groups) < 0 || optional_tensor(def, a, 2, &w) < 0 ||
        optional_tensor(def, a, 3, &b) < 0 || double_of(def, a, 4, 1e-5, &eps) < 0)
        return NULL;
    return nbp_wrap(nb_group_norm(x, groups, w, b, eps));
}

static int reduction_of(const nbp_op_def *def, PyObject *o, nb_reduction *out) {
    static const char *const names[] = {[NB_REDUCTION_MEAN] = "mean", [NB_REDUCTION_SUM] = "sum",
                                        [NB_REDUCTION_NONE] = "none", [NB_REDUCTION_BATCHMEAN] = "batchmean"};
    if (!o) return *out = NB_REDUCTION_MEAN, 0;
    for (int r = 0; r < 4; r++)
        if (PyUnicode_Check(o) && !PyUnicode_CompareWithASCIIString(o, names[r]))
            return *out = (nb_reduction)r, 0;
    return PyErr_Format(PyExc_ValueError, "%s: reduction must be 'mean', 'sum', 'none' or 'batchmean'",
                        def->name), -1;
}

/* (input, target, reduction='mean') */
static PyObject *a_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    nb_reduction reduction;
    if (!t || reduction_of(def, a[2], &reduction) < 0) return NULL;
    typedef nb_tensor *(*loss_fn)(const nb_tensor *, const nb_tensor *, nb_reduction);
    return nbp_wrap(FN(loss_fn)(x, t, reduction));
}

/* huber_loss(input, target, reduction='mean', delta=1.0), smooth_l1_loss(..., beta=1.0) */
static PyObject *a_loss_with(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    nb_reduction reduction;
    double setting;
    if (!t || reduction_of(def, a[2], &reduction) < 0 || double_of(def, a, 3, 1, &setting) < 0) return NULL;
    typedef nb_tensor *(*loss_fn)(const nb_tensor *, const nb_tensor *, double, nb_reduction);
    return nbp_wrap(FN(loss_fn)(x, t, setting, reduction));
}

/* margin_ranking_loss and cosine_embedding_loss(input1, input2, target,
 * margin=0.0, reduction='mean') */
static PyObject *a_pair_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x1 = tensor_of(def, a, 0), *x2 = x1 ? tensor_of(def, a, 1) : NULL, *t = x2 ? tensor_of(def, a, 2) : NULL;
    nb_reduction reduction;
    double margin;
    if (!t || double_of(def, a, 3, 0, &margin) < 0 || reduction_of(def, a[4], &reduction) < 0) return NULL;
    typedef nb_tensor *(*pair_fn)(const nb_tensor *, const nb_tensor *, const nb_tensor *, double, nb_reduction);
    return nbp_wrap(FN(pair_fn)(x1, x2, t, margin, reduction));
}

/* triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, reduction='mean') */
static PyObject *a_triplet_margin_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *an = tensor_of(def, a, 0), *po = an ? tensor_of(def, a, 1) : NULL, *ne = po ? tensor_of(def, a, 2) : NULL;
    nb_reduction reduction;
    nb_triplet_options o;
    if (!ne || double_of(def, a, 3, 1, &o.margin) < 0 || double_of(def, a, 4, 2, &o.p) < 0 ||
        double_of(def, a, 5, 1e-6, &o.eps) < 0 || bool_of(a[6], false, &o.swap) < 0 ||
        reduction_of(def, a[7], &reduction) < 0)
        return NULL;
    o.margin = o.margin == 0 ? -0.0 : o.margin; /* exact: 0 is 0, not the default */
    o.eps = o.eps == 0 ? -0.0 : o.eps;
    return nbp_wrap(nb_triplet_margin_loss(an, po, ne, &o, reduction));
}

/* categorical_hinge_loss(input, target, reduction='mean'), Keras's CategoricalHinge */
static PyObject *a_categorical_hinge_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    nb_reduction reduction;
    if (!t || reduction_of(def, a[2], &reduction) < 0) return NULL;
    return nbp_wrap(nb_categorical_hinge_loss(x, t, reduction));
}

/* sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction='none'), torchvision's */
static PyObject *a_sigmoid_focal_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    nb_reduction reduction = NB_REDUCTION_NONE;
    double alpha, gamma;
    if (!t || double_of(def, a, 2, 0.25, &alpha) < 0 || double_of(def, a, 3, 2, &gamma) < 0 ||
        (a[4] && reduction_of(def, a[4], &reduction) < 0))
        return NULL;
    return nbp_wrap(nb_sigmoid_focal_loss(x, t, alpha, gamma, reduction));
}

/* binary_cross_entropy(input, target, weight=None, reduction='mean', pos_weight=None) */
static PyObject *a_binary_cross_entropy(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL, *w, *pos = NULL;
    nb_reduction reduction;
    if (!t || optional_tensor(def, a, 2, &w) < 0 || reduction_of(def, a[3], &reduction) < 0) return NULL;
    bool logits = def->params[4] != NULL;
    if (logits && optional_tensor(def, a, 4, &pos) < 0) return NULL;
    return nbp_wrap(logits ? nb_binary_cross_entropy_with_logits(x, t, w, pos, reduction)
                           : nb_binary_cross_entropy(x, t, w, reduction));
}

/* poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-8, reduction='mean') */
static PyObject *a_poisson_nll_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    bool log_input, full;
    double eps;
    nb_reduction reduction;
    if (!t || bool_of(a[2], true, &log_input) < 0 || bool_of(a[3], false, &full) < 0 ||
        double_of(def, a, 4, 1e-8, &eps) < 0 || reduction_of(def, a[5], &reduction) < 0)
        return NULL;
    return nbp_wrap(nb_poisson_nll_loss(x, t, log_input, full, eps, reduction));
}

/* gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction='mean') */
static PyObject *a_gaussian_nll_loss(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL, *var = t ? tensor_of(def, a, 2) : NULL;
    bool full;
    double eps;
    nb_reduction reduction;
    if (!var || bool_of(a[3], false, &full) < 0 || double_of(def, a, 4, 1e-6, &eps) < 0 ||
        reduction_of(def, a[5], &reduction) < 0)
        return NULL;
    return nbp_wrap(nb_gaussian_nll_loss(x, t, var, full, eps, reduction));
}

/* kl_div(input, target, reduction='mean', log_target=False) */
static PyObject *a_kl_div(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    nb_reduction reduction;
    bool log_target;
    if (!t || reduction_of(def, a[2], &reduction) < 0 || bool_of(a[3], false, &log_target) < 0) return NULL;
    return nbp_wrap(nb_kl_div(x, t, log_target, reduction));
}

/* (input, target, ignore_index=-100, reduction='mean', label_smoothing=0.0) */
static PyObject *a_cross_entropy(const nbp_op_def *def, PyObject **a) {
    nb_tensor *x = tensor_of(def, a, 0), *t = x ? tensor_of(def, a, 1) : NULL;
    int64_t ignore;
    nb_reduction reduction;
    double smoothing;
    if (!t || int_of(def, a, 2, -100, &ignore) < 0 || reduction_of(def, a[3], &reduction) < 0 ||
        double_of(def, a, 4, 0, &smoothing) < 0)
        return NULL;
    return nbp_wrap(nb_cross_entropy(x, t, reduction, smoothing, ignore));
}

/* ---- the table ---- */

#define LOSS(name, doc)                                                                        \
    {#name, a_loss, (void (*)(void))nb_##name, P("input", "target", "reduction"), 2, NBP_FUNCTION, \
     #name "(input, target, reduction='mean') -> Tensor: " doc}

const nbp_op_def nbp_nn_ops[] = {
    /* convolution and pooling */
    {"conv2d", a_conv2d, NULL, P("input", "weight", "bias", "stride", "padding", "dilation", "groups"), 2,
     NBP_FUNCTION, "conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor: "
                   "2-D convolution of [N, C, H, W]; padding may be 'same' or 'valid'."},
    {"conv_transpose2d", a_conv_transpose2d, NULL,
     P("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"), 2,
     NBP_FUNCTION, "conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, "
                   "groups=1, dilation=1) -> Tensor: the adjoint of conv2d; weight [C_in, C_out/groups, kh, kw]."},
    {"unfold", a_unfold, NULL, P("input", "kernel_size", "dilation", "padding", "stride"), 2, NBP_FUNCTION,
     "unfold(input, kernel_size, dilation=1, padding=0, stride=1) -> Tensor: im2col, [N, C*kh*kw, L]."},
    {"fold", a_fold, NULL, P("input", "output_size", "kernel_size", "dilation", "padding", "stride"), 3,
     NBP_FUNCTION, "fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor: "
                   "sums columns back into [N, C, H, W]."},
    {"max_pool2d", a_max_pool2d, NULL, P("input", "kernel_size", "stride", "padding", "return_indices"), 2,
     NBP_FUNCTION, "max_pool2d(input, kernel_size, stride=None, padding=0, return_indices=False) -> "
                   "Tensor: max pooling (stride defaults to the kernel)."},
    {"avg_pool2d", a_avg_pool2d, NULL, P("input", "kernel_size", "stride", "padding"), 2, NBP_FUNCTION,
     "avg_pool2d(input, kernel_size, stride=None, padding=0) -> Tensor: average pooling (padding counted)."},
    {"adaptive_avg_pool2d", a_adaptive_avg_pool2d, NULL, P("input", "output_size"), 2, NBP_FUNCTION,
     "adaptive_avg_pool2d(input, output_size) -> Tensor: averages over output_size bins."},
    /* normalization and losses */
    {"batch_norm", a_batch_norm, NULL,
     P("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"), 3,
     NBP_FUNCTION, "batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, "
                   "momentum=0.1, eps=1e-05) -> Tensor: per-channel normalization; training updates the "
                   "running statistics in place."},
    {"layer_norm", a_layer_norm, NULL, P("input", "normalized_shape", "weight", "bias", "eps"), 2,
     NBP_FUNCTION, "layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05) -> Tensor: "
                   "normalizes over the last dims."},
    {"rms_norm", a_rms_norm, NULL, P("input", "normalized_shape", "weight", "eps"), 2, NBP_FUNCTION,
     "rms_norm(input, normalized_shape, weight=None, eps=None) -> Tensor: x / sqrt(mean(x^2) + eps) * "
     "weight (eps None: the dtype's epsilon)."},
    {"group_norm", a_group_norm, NULL, P("input", "num_groups", "weight", "bias", "eps"), 2, NBP_FUNCTION,
     "group_norm(input, num_groups, weight=None, bias=None, eps=1e-05) -> Tensor: group normalization."},
    {"cross_entropy", a_cross_entropy, NULL,
     P("input", "target", "ignore_index", "reduction", "label_smoothing"), 2, NBP_FUNCTION,
     "cross_entropy(input, target, ignore_index=-100, reduction='mean', label_smoothing=0.0) -> Tensor: "
     "fused log-softmax and negative log-likelihood of logits [N, C] against class indices [N]."},
    LOSS(mse_loss, "(input - target)^2."),
    LOSS(l1_loss, "|input - target|."),
    LOSS(log_cosh_loss, "log(cosh(input - target)), Keras's LogCosh."),
    LOSS(mape_loss, "100 |input - target| / max(|target|, 1e-7), Keras's MeanAbsolutePercentageError."),
    LOSS(msle_loss, "(log1p(max(input, 1e-7)) - log1p(max(target, 1e-7)))^2, Keras's MeanSquaredLogarithmicError."),
    LOSS(hinge_loss, "max(0, 1 - target input), targets in {-1, 1} (Keras's Hinge)."),
    LOSS(squared_hinge_loss, "max(0, 1 - target input)^2 (Keras's SquaredHinge)."),
    {"margin_ranking_loss", a_pair_loss, (void (*)(void))nb_margin_ranking_loss,
     P("input1", "input2", "target", "margin", "reduction"), 3,
     NBP_FUNCTION, "margin_ranking_loss(input1, input2, target, margin=0.0, reduction='mean') -> Tensor: "
                   "max(0, margin - target (input1 - input2))."},
    {"cosine_embedding_loss", a_pair_loss, (void (*)(void))nb_cosine_embedding_loss,
     P("input1", "input2", "target", "margin", "reduction"), 3, NBP_FUNCTION,
     "cosine_embedding_loss(input1, input2, target, margin=0.0, reduction='mean') -> Tensor: 1 - cos where "
     "target is 1, max(0, cos - margin) where it is -1."},
    {"triplet_margin_loss", a_triplet_margin_loss, NULL,
     P("anchor", "positive", "negative", "margin", "p", "eps", "swap", "reduction"), 3, NBP_FUNCTION,
     "triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-06, swap=False, reduction='mean') "
     "-> Tensor: max(0, d(a, p) - d(a, n) + margin)."},
    {"categorical_hinge_loss", a_categorical_hinge_loss, NULL, P("input", "target", "reduction"), 2, NBP_FUNCTION,
     "categorical_hinge_loss(input, target, reduction='mean') -> Tensor: max(0, max((1 - t) x) - sum(t x) + 1) "
     "per row (Keras's CategoricalHinge)."},
    {"sigmoid_focal_loss", a_sigmoid_focal_loss, NULL, P("inputs", "targets", "alpha", "gamma", "reduction"), 2,
     NBP_FUNCTION, "sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction='none') -> Tensor: "
                   "alpha_t (1 - p_t)^gamma binary_cross_entropy_with_logits (torchvision's; alpha < 0: none)."},
    {"huber_loss", a_loss_with, (void (*)(void))nb_huber_loss, P("input", "target", "reduction", "delta"), 2,
     NBP_FUNCTION, "huber_loss(input, target, reduction='mean', delta=1.0) -> Tensor: quadratic inside "
                   "delta, linear outside."},
    {"smooth_l1_loss", a_loss_with, (void (*)(void))nb_smooth_l1_loss, P("input", "target", "reduction", "beta"),
     2, NBP_FUNCTION, "smooth_l1_loss(input, target, reduction='mean', beta=1.0) -> Tensor: d^2 / (2 beta) "
                      "inside beta, |d| - beta / 2 outside."},
    {"binary_cross_entropy", a_binary_cross_entropy, NULL, P("input", "target", "weight", "reduction"), 2,
     NBP_FUNCTION, "binary_cross_entropy(input, target, weight=None, reduction='mean') -> Tensor: -(t log p + "
                   "(1 - t) log(1 - p)) of probabilities, each log at least -100."},
    {"binary_cross_entropy_with_logits", a_binary_cross_entropy, NULL,
     P("input", "target", "weight", "reduction", "pos_weight"), 2, NBP_FUNCTION,
     "binary_cross_entropy_with_logits(input, target, weight=None, reduction='mean', pos_weight=None) -> "
     "Tensor: the binary cross-entropy of sigmoid(input), fused and stable; pos_weight per class."},
    {"poisson_nll_loss", a_poisson_nll_loss, NULL, P("input", "target", "log_input", "full", "eps", "reduction"), 2,
     NBP_FUNCTION, "poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-08, reduction='mean') "
                   "-> Tensor: exp(x) - t x (log_input) or x - t log(x + eps)."},
    {"gaussian_nll_loss", a_gaussian_nll_loss, NULL, P("input", "target", "var", "full", "eps", "reduction"), 3,
     NBP_FUNCTION, "gaussian_nll_loss(input, target, var, full=False, eps=1e-06, reduction='mean') -> Tensor: "
                   "(log v + (x - t)^2 / v) / 2, v = max(var, eps)."},
    {"kl_div", a_kl_div, NULL, P("input", "target", "reduction", "log_target"), 2, NBP_FUNCTION,
     "kl_div(input, target, reduction='mean', log_target=False) -> Tensor: t (log t - input) for "
     "log-probabilities input; 'batchmean' is the divergence per sample."},
    {NULL},
};
