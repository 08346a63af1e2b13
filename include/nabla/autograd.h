/* Reverse-mode automatic differentiation on a dynamic tape, as in PyTorch.
 *
 *   nb_set_requires_grad(w, true);          // w is a leaf
 *   nb_tensor *loss = nb_sum(nb_mul(w, w), 0, NULL, false);   (release the temporaries)
 *   nb_backward(loss, NULL, false);         // d loss / d w accumulates into w's grad
 *   nb_tensor *g = nb_grad(w);              // 2 * w, a new reference
 *
 * Each op result that needs a gradient holds a node with its inputs; the
 * graph is freed with the last reference to its outputs. Gradients
 * accumulate into leaves across backward calls until nb_zero_grad.
 */
#ifndef NABLA_AUTOGRAD_H
#define NABLA_AUTOGRAD_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a leaf tensor (one no op produced) as needing a gradient; floats only. */
nb_status nb_set_requires_grad(nb_tensor *t, bool requires_grad);
bool nb_requires_grad(const nb_tensor *t);
/* True for tensors no recorded op produced. */
bool nb_is_leaf(const nb_tensor *t);
/* The accumulated gradient of a leaf (a new reference), or NULL if none. */
nb_tensor *nb_grad(const nb_tensor *t);
/* Drops the accumulated gradient. */
void nb_zero_grad(nb_tensor *t);
/* Makes grad (of t's shape, dtype and device; held, not copied) a leaf's
 * accumulated gradient, as PyTorch's `t.grad = g`; NULL drops it. */
nb_status nb_set_grad(nb_tensor *t, nb_tensor *grad);
/* Name of the op that produced t ("mul", ...), or NULL for a leaf. */
const char *nb_grad_fn_name(const nb_tensor *t);

/* Called during nb_backward once a leaf's gradient for it is complete: the
 * last node that could add to it has run (its gradient may still be NULL if
 * none did), like PyTorch's post-accumulate-grad hooks. Data parallelism
 * starts a bucket's all-reduce from it while backward goes on. */
typedef void (*nb_grad_ready_hook)(nb_tensor *leaf, void *user);
/* Sets leaf's hook (NULL removes it); a leaf only. */
nb_status nb_set_grad_ready_hook(nb_tensor *leaf, nb_grad_ready_hook hook, void *user);

/* Back-propagates from root. grad is d(objective)/d(root), of root's shape;
 * NULL means ones, allowed only for a one-element root. retain_graph keeps
 * the graph for another backward; otherwise its saved tensors are freed. */
nb_status nb_backward(nb_tensor *root, const nb_tensor *grad, bool retain_graph);

/* Turns recording on or off for this thread; returns the previous setting.
 *   bool was = nb_set_grad_enabled(false); ...; nb_set_grad_enabled(was); */
bool nb_set_grad_enabled(bool enabled);
bool nb_is_grad_enabled(void);
/* A view of t's storage outside the graph. */
nb_tensor *nb_detach(const nb_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
