/* Elementwise binary ops with NumPy broadcasting. Operands are cast to their
 * promoted dtype (division of integers computes in f32); comparisons and
 * logic give bool. Gradients, each summed back over broadcast dims:
 *   add (g, g)        sub (g, -g)         mul (g*b, g*a)
 *   div (g/b, -g*a/b^2)
 *   pow (g*b*a^(b-1) where b != 0, else 0; g*a^b*log(a) where a > 0, else 0)
 *   maximum/minimum: g to the selected side, halved on ties (as PyTorch); with
 *   a NaN, all of g to the NaN side (a when both are), whose value the result is. */
#include "../core/internal.h"

static bool is_predicate(nb_op op) { return op >= NB_OP_EQ && op <= NB_OP_LOGICAL_XOR; }

/* Gradient for side a (which=0) or b (which=1), before summing to shape;
 * borrowed from g or kept in sc. */
static nb_tensor *side_grad(nb_scratch *sc, nb_op op, int which, const nb_tensor *a,
                            const nb_tensor *b, const nb_tensor *g) {
#define K(expr) nb__keep(sc, (expr))
#define C(v) K(nb__scalar_like(g, (v)))
    nb_tensor *r = NULL;
    switch (op) {
    case NB_OP_ADD: r = (nb_tensor *)g; break;
    case NB_OP_SUB: r = which ? K(nb_neg(g)) : (nb_tensor *)g; break;
    case NB_OP_MUL: r = K(nb_mul(g, which ? a : b)); break;
    case NB_OP_DIV:
        r = which ? K(nb_neg(K(nb_div(K(nb_mul(g, a)), K(nb_mul(b, b)))))) : K(nb_div(g, b));
        break;
    case NB_OP_POW:
        if (which) {
            nb_tensor *positive = K(nb_gt(a, C(0)));
            nb_tensor *safe_a = K(nb_where(positive, a, C(1)));
            nb_tensor *term = K(nb_mul(K(nb_pow(a, b)), K(nb_log(safe_a))));
            r = K(nb_mul(g, K(nb_where(positive, term, C(0)))));
        } else {
            /* 0 where b = 0 (as PyTorch): at a = 0 the product would be 0 * inf */
            nb_tensor *slope = K(nb_mul(b, K(nb_pow(a, K(nb_sub(b, C(1)))))));
            r = K(nb_mul(g, K(nb_where(K(nb_eq(b, C(0))), C(0), slope))));
        }
        break;
    case NB_OP_MAXIMUM: case NB_OP_MINIMUM: {
        nb_tensor *wins = K(nb_logical_or(K(op == NB_OP_MAXIMUM ? nb_gt(a, b) : nb_lt(a, b)),
                                          K(nb_ne(a, a)))); /* a NaN a wins */
        nb_tensor *weight_a = K(nb_add(K(nb_cast(wins, g->dtype)),
                                       K(nb_mul(C(0.5), K(nb_cast(K(nb_eq(a, b)), g->dtype))))));
        r = K(nb_mul(g, which ? K(nb_sub(C(1), weight_a)) : weight_a));
        break;
    }
    default: NB_ASSERT(!"binary op without a gradient");
    }
#undef C
#undef K
    return r;
}

static nb_status binary_backward(const nb_node *node, const nb_tensor *g, const bool *needs,
                                 nb_tensor **grads) {
    for (int which = 0; which < 2; which++) {
        if (!needs[which]) continue;
        const nb_tensor *input = node->inputs[which];
        nb_scratch s = {0};
        nb_tensor *full = side_grad(&s, node->op, which, node->inputs[0], node->inputs[1], g);
        nb_tensor *summed = nb__keep_sum_to(&s, full, input);
        NB_TRY(nb__scratch_finish(&s, summed, &grads[which]));
    }
    return NB_OK;
}

/* Broadcasts and casts a, b for op; writes the views and the operand dtype. */
static nb_status prepare(nb_op op, const nb_tensor *a, const nb_tensor *b, nb_tensor **va,
                         nb_tensor **vb, nb_dtype *operand, int *ndim, int64_t *shape) {
    const char *fn = nb__op_fn(op);
    NB_CHECK(a && b, NB_ERR_INVALID, "%s: %s is NULL", fn, a ? "b" : "a");
    NB_CHECK(nb__same_device(a->storage->device, b->storage->device), NB_ERR_DEVICE,
             "%s: a is on %s but b is on %s", fn, nb__device_name(a->storage->device),
             nb__device_name(b->storage->device));
    NB_TRY(nb__broadcast_shapes(fn, a->ndim, a->shape, b->ndim, b->shape, ndim, shape));
    *operand = nb_promote_types(a->dtype, b->dtype);
    if (op == NB_OP_DIV && !nb_dtype_is_float(*operand)) *operand = NB_F32;
    NB_CHECK(!(op == NB_OP_SUB && *operand == NB_BOOL), NB_ERR_DTYPE,
             "nb_sub: subtraction of bool tensors is not defined; use nb_logical_xor");
    *va = a->dtype == *operand ? nb_retain((nb_tensor *)a) : nb_cast(a, *operand);
    *vb = b->dtype == *operand ? nb_retain((nb_tensor *)b) : nb_cast(b, *operand);
    return *va && *vb ? NB_OK : nb_last_status();
}

static nb_tensor *binary(nb_op op, const nb_tensor *a, const nb_tensor *b) {
    nb_tensor *va = NULL, *vb = NULL, *ea = NULL, *eb = NULL, *out = NULL;
    nb_dtype operand = NB_F32;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    nb_status status = prepare(op, a, b, &va, &vb, &operand, &ndim, shape);
    if (status == NB_OK) status = nb__expand_view(nb__op_fn(op), va, ndim, shape, &ea);
    if (status == NB_OK) status = nb__expand_view(nb__op_fn(op), vb, ndim, shape, &eb);
    if (status == NB_OK)
        status = nb__tensor_new(nb__op_fn(op), ndim, shape, is_predicate(op) ? NB_BOOL : operand,
                                a->storage->device, &out);
    if (status == NB_OK) {
        nb_op_args args = {.op = op, .dtype = operand, .out = out, .in = {ea, eb}, .n_in = 2};
        status = nb__dispatch(&args);
    }
    if (status == NB_OK && nb_op_is_differentiable(op)) {
        const nb_tensor *inputs[2] = {va, vb};
        status = nb__record(out, op, 2, inputs, NULL, binary_backward);
    }
    nb_release(va);
    nb_release(vb);
    nb_release(ea);
    nb_release(eb);
    return nb__unwrap(status, out);
}

#define DEFINE_BINARY(name, ID) \
    nb_tensor *nb_##name(const nb_tensor *a, const nb_tensor *b) { return binary(NB_OP_##ID, a, b); }
DEFINE_BINARY(add, ADD)
DEFINE_BINARY(sub, SUB)
DEFINE_BINARY(mul, MUL)
DEFINE_BINARY(div, DIV)
DEFINE_BINARY(pow, POW)
DEFINE_BINARY(maximum, MAXIMUM)
DEFINE_BINARY(minimum, MINIMUM)
DEFINE_BINARY(eq, EQ)
DEFINE_BINARY(ne, NE)
DEFINE_BINARY(lt, LT)
DEFINE_BINARY(le, LE)
DEFINE_BINARY(gt, GT)
DEFINE_BINARY(ge, GE)
DEFINE_BINARY(logical_and, LOGICAL_AND)
DEFINE_BINARY(logical_or, LOGICAL_OR)
DEFINE_BINARY(logical_xor, LOGICAL_XOR)
