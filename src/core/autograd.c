/* The autograd tape: nodes recorded by ops and the reverse walk of
 * nb_backward (reverse topological order of a depth-first post-order). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local bool grad_disabled;

bool nb_set_grad_enabled(bool enabled) {
    bool was = !grad_disabled;
    grad_disabled = !enabled;
    return was;
}

bool nb_is_grad_enabled(void) { return !grad_disabled; }

nb_status nb_set_requires_grad(nb_tensor *t, bool requires_grad) {
    NB_CHECK(t, NB_ERR_INVALID, "nb_set_requires_grad: tensor is NULL");
    NB_CHECK(!t->grad_fn, NB_ERR_AUTOGRAD,
             "nb_set_requires_grad: only leaves can be marked; this tensor comes from %s "
             "(use nb_detach for a leaf)", nb_op_name(t->grad_fn->op));
    NB_CHECK(!requires_grad || nb_dtype_is_float(t->dtype), NB_ERR_DTYPE,
             "nb_set_requires_grad: only float tensors can require a gradient, got %s",
             nb_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return NB_OK;
}

nb_status nb_set_grad_ready_hook(nb_tensor *leaf, nb_grad_ready_hook hook, void *user) {
    NB_CHECK(leaf, NB_ERR_INVALID, "nb_set_grad_ready_hook: leaf is NULL");
    NB_CHECK(!leaf->grad_fn, NB_ERR_AUTOGRAD, "nb_set_grad_ready_hook: the tensor comes from %s, not a leaf",
             nb_op_name(leaf->grad_fn->op));
    leaf->ready_hook = hook;
    leaf->ready_user = hook ? user : NULL;
    return NB_OK;
}

bool nb_requires_grad(const nb_tensor *t) { return t && t->requires_grad; }
bool nb_is_leaf(const nb_tensor *t) { return t && !t->grad_fn; }
nb_tensor *nb_grad(const nb_tensor *t) { return t ? nb_retain(t->grad) : NULL; }
const char *nb_grad_fn_name(const nb_tensor *t) {
    return t && t->grad_fn ? nb_op_name(t->grad_fn->op) : NULL;
}

void nb_zero_grad(nb_tensor *t) {
    if (!t) return;
    nb_release(t->grad);
    t->grad = NULL;
}

nb_status nb_set_grad(nb_tensor *t, nb_tensor *grad) {
    NB_CHECK(t, NB_ERR_INVALID, "nb_set_grad: tensor is NULL");
    if (!grad) {
        nb_zero_grad(t);
        return NB_OK;
    }
    NB_CHECK(!t->grad_fn, NB_ERR_AUTOGRAD, "nb_set_grad: the tensor is not a leaf (made by %s)",
             nb_op_name(t->grad_fn->op));
    bool same_shape = grad->ndim == t->ndim;
    for (int d = 0; same_shape && d < t->ndim; d++) same_shape = grad->shape[d] == t->shape[d];
    NB_CHECK(same_shape, NB_ERR_SHAPE, "nb_set_grad: the gradient is %s, the tensor %s",
             nb__tensor_shape_str(grad), nb__tensor_shape_str(t));
    NB_CHECK(grad->dtype == t->dtype, NB_ERR_DTYPE, "nb_set_grad: the gradient is %s, the tensor %s",
             nb_dtype_name(grad->dtype), nb_dtype_name(t->dtype));
    NB_CHECK(nb__same_device(grad->storage->device, t->storage->device), NB_ERR_DEVICE,
             "nb_set_grad: the gradient is on another device than the tensor");
    nb_retain(grad);
    nb_release(t->grad);
    t->grad = grad;
    return NB_OK;
}

nb_tensor *nb_detach(const nb_tensor *t) {
    if (!t) {
        nb__error(NB_ERR_INVALID, "nb_detach: tensor is NULL");
        return NULL;
    }
    nb_tensor *out = NULL;
    nb__tensor_view(t, t->ndim, t->shape, t->strides, t->offset, &out);
    return out;
}

static void release_inputs(nb_node *node) {
    for (int i = 0; i < node->n_inputs; i++) nb_release(node->inputs[i]);
    free(node->inputs);
    free(node->versions);
    node->inputs = NULL;
    node->versions = NULL;
    node->released = true;
}

void nb__node_free(nb_node *node) {
    if (!node) return;
    if (!node->released) release_inputs(node);
    nb_release(node->grad);
    free(node);
}

nb_status nb__record(nb_tensor *out, nb_op op, int n_inputs, const nb_tensor *const *inputs,
                     const nb_attrs *attrs, nb_backward_fn backward) {
    if (grad_disabled || !nb_dtype_is_float(out->dtype)) return NB_OK;
    bool any = false;
    for (int i = 0; i < n_inputs; i++) any = any || (inputs[i] && inputs[i]->requires_grad);
    if (!any) return NB_OK;
    nb_node *node = nb__calloc(1, sizeof *node);
    nb_tensor **saved = nb__calloc((size_t)n_inputs, sizeof *saved);
    int64_t *versions = nb__calloc((size_t)n_inputs, sizeof *versions);
    if (!node || !saved || !versions) {
        free(node);
        free(saved);
        free(versions);
        return nb__error(NB_ERR_OOM, "%s: out of host memory recording the graph", nb__op_fn(op));
    }
    for (int i = 0; i < n_inputs; i++) {
        saved[i] = nb_retain((nb_tensor *)inputs[i]);
        versions[i] = inputs[i] ? nb__version(inputs[i]) : 0;
    }
    node->op = op;
    node->backward = backward;
    node->n_inputs = n_inputs;
    node->inputs = saved;
    node->versions = versions;
    if (attrs) node->attrs = *attrs;
    node->out_ndim = out->ndim;
    memcpy(node->out_shape, out->shape, sizeof out->shape);
    node->out_dtype = out->dtype;
    out->grad_fn = node;
    out->requires_grad = true;
    return NB_OK;
}

nb_status nb__sum_to(const nb_tensor *grad, int ndim, const int64_t *shape, nb_tensor **out) {
    int lead = grad->ndim - ndim;
    NB_ASSERT(lead >= 0);
    uint32_t mask = 0;
    for (int d = 0; d < grad->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && grad->shape[d] != 1)) mask |= 1u << d;
    if (!mask) {
        *out = nb_retain((nb_tensor *)grad);
        return NB_OK;
    }
    nb_tensor *summed = NULL;
    NB_TRY(nb__reduce(NB_OP_SUM, grad, mask, true, &summed));
    nb_status status = nb__result(nb_reshape(summed, ndim, shape), out);
    nb_release(summed);
    return status;
}

/* ---- the backward walk ---- */

typedef struct node_list {
    nb_node **items;
    int count, capacity;
} node_list;

static nb_status list_push(node_list *list, nb_node *node) {
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 64;
        nb_node **items = nb__realloc(list->items, (size_t)capacity * sizeof *items);
        NB_CHECK(items, NB_ERR_OOM, "nb_backward: out of host memory walking the graph");
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = node;
    return NB_OK;
}

/* Post-order of the nodes reachable from root, without recursion: a node is
 * emitted once every node it feeds from has been. */
static nb_status topo_order(nb_node *root, node_list *order) {
    node_list stack = {0};
    nb_status status = list_push(&stack, root);
    root->visited = true;
    while (status == NB_OK && stack.count) {
        nb_node *node = stack.items[stack.count - 1];
        if (node->released) {
            status = nb__error(NB_ERR_AUTOGRAD,
                               "nb_backward: the graph through %s was freed by an earlier "
                               "backward; pass retain_graph=true to walk it twice",
                               nb_op_name(node->op));
            break;
        }
        nb_node *next = NULL;
        for (int i = 0; i < node->n_inputs && !next; i++) {
            nb_node *child = node->inputs[i] ? node->inputs[i]->grad_fn : NULL;
            if (child && !child->visited) next = child;
        }
        if (next) {
            next->visited = true;
            status = list_push(&stack, next);
        } else {
            stack.count--;
            status = list_push(order, node);
        }
    }
    free(stack.items);
    return status;
}

/* *acc += g, as new tensors (gradients are never updated in place). */
static nb_status accumulate(nb_tensor **acc, nb_tensor *g) {
    if (!*acc) {
        *acc = nb_retain(g);
        return NB_OK;
    }
    nb_tensor *sum = NULL;
    NB_TRY(nb__result(nb_add(*acc, g), &sum));
    nb_release(*acc);
    *acc = sum;
    return NB_OK;
}

/* True when only the caller holds g and its memory: it can become a leaf's
 * grad without a copy. */
static bool unshared(const nb_tensor *g) {
    return __atomic_load_n(&g->refcount, __ATOMIC_ACQUIRE) == 1 &&
           __atomic_load_n(&g->storage->refcount, __ATOMIC_ACQUIRE) == 1 && nb__is_contiguous(g);
}

static nb_status accumulate_leaf(nb_tensor *leaf, nb_tensor *g) {
    nb_tensor *owned = NULL;
    if (g->dtype != leaf->dtype)
        NB_TRY(nb__result(nb_cast(g, leaf->dtype), &owned));
    else if (!leaf->grad && !unshared(g))
        NB_TRY(nb__result(nb_clone(g), &owned)); /* the leaf's grad never aliases another tensor */
    else
        owned = nb_retain(g);
    nb_status status = accumulate(&leaf->grad, owned);
    nb_release(owned);
    return status;
}

/* Note [saved versions]: what node saved must be what the forward read. */
static nb_status check_versions(const nb_node *node) {
    for (int i = 0; i < node->n_inputs; i++) {
        const nb_tensor *input = node->inputs[i];
        if (!input || nb__version(input) == node->versions[i]) continue;
        return nb__error(NB_ERR_AUTOGRAD,
                         "nb_backward: input %d of %s, saved for the gradient, was changed in "
                         "place after the forward (storage version %lld, saved at %lld); clone "
                         "it before writing, or write it after backward",
                         i, nb__op_fn(node->op), (long long)nb__version(input),
                         (long long)node->versions[i]);
    }
    return NB_OK;
}

static nb_status run_node(nb_node *node) {
    int n = node->n_inputs;
    bool *needs = nb__calloc((size_t)n, sizeof *needs);
    nb_tensor **grads = nb__calloc((size_t)n, sizeof *grads);
    nb_status status = NB_OK;
    if (!needs || !grads)
        status = nb__error(NB_ERR_OOM, "nb_backward: out of host memory at %s",
                           nb_op_name(node->op));
    for (int i = 0; i < n && status == NB_OK; i++)
        needs[i] = node->inputs[i] && node->inputs[i]->requires_grad;
    if (status == NB_OK) status = check_versions(node);
    if (status == NB_OK) status = node->backward(node, node->grad, needs, grads);
    for (int i = 0; i < n && status == NB_OK; i++) {
        nb_tensor *input = node->inputs[i];
        if (!grads[i]) continue;
        NB_ASSERT(grads[i]->ndim == input->ndim);
        status = input->grad_fn ? accumulate(&input->grad_fn->grad, grads[i])
                                : accumulate_leaf(input, grads[i]);
    }
    for (int i = 0; grads && i < n; i++) nb_release(grads[i]);
    free(grads);
    free(needs);
    nb_release(node->grad);
    node->grad = NULL;
    return status;
}

nb_status nb__visit_leaves(const nb_tensor *root, void (*visit)(nb_tensor *leaf, void *user), void *user) {
    if (!root->grad_fn) {
        if (root->requires_grad) visit((nb_tensor *)root, user);
        return NB_OK;
    }
    node_list order = {0};
    nb_status status = topo_order(root->grad_fn, &order);
    for (int i = 0; i < order.count; i++) {
        order.items[i]->visited = false;
        for (int k = 0; status == NB_OK && k < order.items[i]->n_inputs; k++) {
            nb_tensor *input = order.items[i]->inputs[k];
            if (input && !input->grad_fn && input->requires_grad) visit(input, user);
        }
    }
    free(order.items);
    return status;
}

/* The walked nodes' reads of hooked leaves: counted up before the walk
 * (counting), reset after it (a failed walk leaves counts behind). */
static void count_hooked_reads(node_list *order, int counting) {
    for (int i = 0; i < order->count; i++)
        for (int k = 0; k < order->items[i]->n_inputs; k++) {
            nb_tensor *input = order->items[i]->inputs[k];
            if (input && !input->grad_fn && input->ready_hook && input->requires_grad)
                input->ready_pending = counting ? input->ready_pending + 1 : 0;
        }
}

/* After node ran (or had no gradient to pass on): each hooked leaf it read
 * that no later node reads is complete. */
static void fire_ready_hooks(nb_node *node) {
    for (int k = 0; k < node->n_inputs; k++) {
        nb_tensor *input = node->inputs[k];
        if (input && !input->grad_fn && input->ready_hook && input->requires_grad && input->ready_pending > 0 &&
            --input->ready_pending == 0)
            input->ready_hook(input, input->ready_user);
    }
}

/* Frees what the walked nodes saved. Every node is detached first: releasing
 * an input can free other nodes of the list, which must not be touched then. */
static void free_graph(node_list *order) {
    nb_tensor ***saved = nb__malloc((size_t)order->count * sizeof *saved);
    int *counts = nb__malloc((size_t)order->count * sizeof *counts);
    if (!saved || !counts) { /* keep the graph rather than fail after a successful walk */
        free(saved);
        free(counts);
        return;
    }
    for (int i = 0; i < order->count; i++) {
        nb_node *node = order->items[i];
        saved[i] = node->inputs;
        counts[i] = node->n_inputs;
        free(node->versions);
        node->versions = NULL;
        node->inputs = NULL;
        node->n_inputs = 0;
        node->released = true;
    }
    for (int i = 0; i < order->count; i++) {
        for (int k = 0; k < counts[i]; k++) nb_release(saved[i][k]);
        free(saved[i]);
    }
    free(saved);
    free(counts);
}

static nb_status initial_grad(const nb_tensor *root, const nb_tensor *grad, nb_tensor **out) {
    if (!grad) {
        NB_CHECK(nb_numel(root) == 1, NB_ERR_AUTOGRAD,
                 "nb_backward: a gradient is needed for a root of shape %s (only a one-element "
                 "root may omit it)", nb__tensor_shape_str(root));
        return nb__result(nb_ones(root->ndim, root->shape, root->dtype, root->storage->device),
                          out);
    }
    NB_CHECK(grad->ndim == root->ndim &&
                 !memcmp(grad->shape, root->shape, (size_t)root->ndim * sizeof *root->shape),
             NB_ERR_SHAPE, "nb_backward: grad has shape %s but the root has shape %s",
             nb__tensor_shape_str(grad), nb__tensor_shape_str(root));
    NB_CHECK(nb__same_device(grad->storage->device, root->storage->device), NB_ERR_DEVICE,
             "nb_backward: grad is on %s but the root is on %s",
             nb__device_name(grad->storage->device), nb__device_name(root->storage->device));
    return nb__result(nb_cast(grad, root->dtype), out);
}

nb_status nb_backward(nb_tensor *root, const nb_tensor *grad, bool retain_graph) {
    NB_CHECK(root, NB_ERR_INVALID, "nb_backward: root is NULL");
    NB_CHECK(root->requires_grad, NB_ERR_AUTOGRAD,
             "nb_backward: the root does not require a gradient (no input of the ops that "
             "made it requires one, or it was made with recording off)");
    bool was = nb_set_grad_enabled(false);
    const char *outer = nb__enter("nb_backward");
    nb_tensor *seed = NULL;
    nb_status status = initial_grad(root, grad, &seed);
    if (status == NB_OK && !root->grad_fn) {
        status = accumulate_leaf(root, seed);
        if (status == NB_OK && root->ready_hook) root->ready_hook(root, root->ready_user);
    } else if (status == NB_OK) {
        node_list order = {0};
        status = topo_order(root->grad_fn, &order);
        for (int i = 0; i < order.count; i++) order.items[i]->visited = false;
        if (status == NB_OK) root->grad_fn->grad = nb_retain(seed);
        count_hooked_reads(&order, 1);
        for (int i = order.count - 1; i >= 0 && status == NB_OK; i--) {
            if (order.items[i]->grad) status = run_node(order.items[i]);
            if (status == NB_OK) fire_ready_hooks(order.items[i]);
        }
        count_hooked_reads(&order, 0);
        for (int i = 0; i < order.count; i++) { /* after a failure, drop partial sums */
            nb_release(order.items[i]->grad);
            order.items[i]->grad = NULL;
        }
        if (status == NB_OK && !retain_graph) free_graph(&order);
        free(order.items);
    }
    nb_release(seed);
    nb__leave(outer);
    nb_set_grad_enabled(was);
    return status;
}

/* ---- scratch for backward formulas ---- */

nb_tensor *nb__keep(nb_scratch *s, nb_tensor *t) {
    if (!t) {
        if (s->status == NB_OK) {
            s->status = nb_last_status() != NB_OK ? nb_last_status() : NB_ERR_INTERNAL;
            snprintf(s->message, sizeof s->message, "%s", nb_last_error());
        }
        return NULL;
    }
    if (s->count == (int)(sizeof s->items / sizeof s->items[0])) {
        nb_release(t);
        if (s->status == NB_OK) {
            s->status = NB_ERR_INTERNAL;
            snprintf(s->message, sizeof s->message, "nabla: a formula keeps too many temporaries");
        }
        return NULL;
    }
    s->items[s->count++] = t;
    return t;
}

nb_status nb__scratch_finish(nb_scratch *s, nb_tensor *result, nb_tensor **out) {
    if (s->status == NB_OK && result) *out = nb_retain(result);
    for (int i = 0; i < s->count; i++) nb_release(s->items[i]);
    s->count = 0;
    if (s->status != NB_OK) return nb__error(s->status, "%s", s->message);
    return NB_OK;
}

nb_tensor *nb__keep_sum_to(nb_scratch *s, const nb_tensor *t, const nb_tensor *like) {
    nb_tensor *summed = NULL;
    if (s->status == NB_OK && t && nb__sum_to(t, like->ndim, like->shape, &summed) != NB_OK)
        summed = NULL;
    return nb__keep(s, summed);
}

nb_tensor *nb__scalar_like(const nb_tensor *t, double value) {
    return t ? nb_scalar(value, t->dtype, t->storage->device) : NULL; /* NULL: a step failed */
}
