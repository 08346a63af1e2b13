/* Positions: rotary embeddings (one kernel, its own inverse for the
 * gradient) and sinusoidal tables (built from other ops). */
#include <math.h>

#include "../core/internal.h"

static nb_status rope_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                               nb_tensor **grads);

static nb_status rope(const nb_tensor *x, int64_t offset, double base, bool inverse, nb_tensor **out) {
    const char *fn = "nb_rope";
    NB_CHECK(x, NB_ERR_INVALID, "%s: x is NULL", fn);
    NB_CHECK(nb_dtype_is_float(x->dtype), NB_ERR_DTYPE, "%s: x must be float, got %s", fn,
             nb_dtype_name(x->dtype));
    NB_CHECK(x->ndim >= 2 && x->shape[x->ndim - 1] % 2 == 0, NB_ERR_SHAPE,
             "%s: needs x [..., seq, dim] with an even dim, got %s", fn, nb__tensor_shape_str(x));
    NB_CHECK(offset >= 0, NB_ERR_INVALID, "%s: offset must be >= 0, got %lld", fn, (long long)offset);
    int64_t seq = x->shape[x->ndim - 2], last;
    NB_CHECK(!__builtin_add_overflow(offset, seq, &last), NB_ERR_OVERFLOW,
             "%s: offset %lld plus %lld positions overflows", fn, (long long)offset, (long long)seq);
    NB_CHECK(base > 0 && isfinite(base), NB_ERR_INVALID, "%s: base must be positive, got %g", fn, base);
    bool was = nb_set_grad_enabled(false); /* the kernel's input, not part of the graph */
    nb_tensor *dense = nb_contiguous(x);
    nb_set_grad_enabled(was);
    NB_TRY(nb__result(dense, &dense));
    nb_attrs attrs = {.rope = {base, offset, inverse}};
    nb_op_args args = {.op = NB_OP_ROPE, .dtype = x->dtype, .in = {dense}, .n_in = 1, .attrs = attrs};
    nb_status status = nb__dispatch_new(fn, &args, x->ndim, x->shape, x->dtype, out);
    if (status == NB_OK) status = nb__record(*out, NB_OP_ROPE, 1, &x, &attrs, rope_backward);
    nb_release(dense);
    if (status != NB_OK) {
        nb_release(*out);
        *out = NULL;
    }
    return status;
}

/* A rotation's adjoint is its inverse. */
static nb_status rope_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                               nb_tensor **grads) {
    (void)needs;
    const nb_attrs *a = &node->attrs;
    return rope(g, a->rope.offset, a->rope.base, !a->rope.inverse, &grads[0]);
}

nb_tensor *nb_rope(const nb_tensor *x, int64_t offset, double base) {
    nb_tensor *out = NULL;
    rope(x, offset, base, false, &out);
    return out;
}

static nb_tensor *sinusoidal_positions(int64_t seq, int64_t dim, double base, nb_dtype dtype,
                                       nb_device device) {
    const char *fn = "nb_sinusoidal_positions";
    if (seq < 0 || dim < 0 || dim % 2 || !(base > 0 && isfinite(base)) || !nb_dtype_is_float(dtype)) {
        nb__error(NB_ERR_INVALID, "%s: needs seq >= 0, an even dim >= 0, base > 0 and a float "
                  "dtype, got %lld, %lld, %g and %s", fn, (long long)seq, (long long)dim, base,
                  nb_dtype_name(dtype));
        return NULL;
    }
    nb_scratch scratch = {0}, *s = &scratch;
#define K(expr) nb__keep(s, (expr))
    int64_t column[2] = {seq, 1}, table[2] = {seq, dim};
    /* angles in f64 (positions times frequencies), then cast */
    nb_tensor *positions = K(nb_reshape(K(nb_arange(0, (double)seq, 1, NB_F64, device)), 2, column));
    nb_tensor *exponents = K(nb_arange(0, (double)dim, 2, NB_F64, device));
    nb_tensor *rate = K(nb_scalar(-log(base) / (double)(dim ? dim : 1), NB_F64, device));
    nb_tensor *freqs = K(nb_exp(K(nb_mul(exponents, rate))));
    nb_tensor *angles = K(nb_mul(positions, freqs));
    const nb_tensor *pair[2] = {K(nb_sin(angles)), K(nb_cos(angles))};
    nb_tensor *interleaved = s->status == NB_OK ? K(nb_stack(2, pair, 2)) : NULL;
    nb_tensor *r = K(nb_cast(K(nb_reshape(interleaved, 2, table)), dtype)), *out = NULL;
#undef K
    return nb__scratch_finish(s, r, &out) == NB_OK ? out : NULL;
}

nb_tensor *nb_sinusoidal_positions(int64_t seq, int64_t dim, double base, nb_dtype dtype,
                                   nb_device device) {
    const char *outer = nb__enter("nb_sinusoidal_positions");
    nb_tensor *out = sinusoidal_positions(seq, dim, base, dtype, device);
    nb__leave(outer);
    return out;
}
