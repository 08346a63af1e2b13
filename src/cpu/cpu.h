/* The CPU backend: kernel entry points (one per op family, same names as the
 * src/ops/ files) and the elementwise machinery they share. */
#ifndef NABLA_CPU_H
#define NABLA_CPU_H

#include "../core/internal.h"

/* Elements per chunk of the elementwise engine: small enough that a chunk of
 * every operand stays in L1, large enough to amortize the loop overhead. */
#define NB_CPU_CHUNK 1024
/* Below this many elements a loop stays on one thread. */
#define NB_CPU_PARALLEL_MIN 32768

/* The dtype a CPU kernel computes in for storage dtype d: f32 for the float
 * types up to 32 bits, f64, and i64 for every integer type and bool. */
nb_dtype nb__cpu_compute_dtype(nb_dtype d);

/* Converts n elements from src (stride src_stride, in elements) to dst. */
void nb__cpu_convert(nb_dtype dst_dtype, void *dst, int64_t dst_stride, nb_dtype src_dtype,
                     const void *src, int64_t src_stride, int64_t n);

/* Plane (n, c) of a 4-D tensor with any strides, dense, converted to as. */
void nb__cpu_load_plane(const nb_tensor *t, int64_t n, int64_t c, nb_dtype as, void *plane);
/* The same plane read in place when it is dense and of dtype as, else
 * loaded into buffer. */
const void *nb__cpu_plane(const nb_tensor *t, int64_t n, int64_t c, nb_dtype as, void *buffer);

/* A chunk loop: n elements of compute dtype, contiguous, out and in[i]. */
typedef void (*nb_map_fn)(int64_t n, void *out, const void *const *in, const nb_op_args *args);

/* Runs fn over every element of args->out with args->in (each already of
 * out's shape, any strides and dtypes) converted to compute. Rows are split
 * into chunks read in place when dtype and stride allow, else gathered. */
void nb__cpu_map(const nb_op_args *args, nb_dtype compute, nb_map_fn fn);

nb_status nb__cpu_fill(const nb_op_args *args);
nb_status nb__cpu_range(const nb_op_args *args);
nb_status nb__cpu_random(const nb_op_args *args);
nb_status nb__cpu_randperm(const nb_op_args *args);
nb_status nb__cpu_multinomial(const nb_op_args *args);
nb_status nb__cpu_sort(const nb_op_args *args); /* argsort and topk */
nb_status nb__cpu_searchsorted(const nb_op_args *args);
nb_status nb__cpu_scan(const nb_op_args *args); /* cumsum, cumprod, logcumsumexp */
nb_status nb__cpu_scan_backward(const nb_op_args *args);
nb_status nb__cpu_copy(const nb_op_args *args);
nb_status nb__cpu_unary(const nb_op_args *args);
nb_status nb__cpu_gelu_backward(const nb_op_args *args);
nb_status nb__cpu_activation_backward(const nb_op_args *args);
nb_status nb__cpu_layer_norm(const nb_op_args *args);
nb_status nb__cpu_rope(const nb_op_args *args);
/* flash_attention and its backward */
nb_status nb__cpu_attention(const nb_op_args *args);
nb_status nb__cpu_binary(const nb_op_args *args);
nb_status nb__cpu_where(const nb_op_args *args);
nb_status nb__cpu_masked_fill(const nb_op_args *args);
nb_status nb__cpu_reduce(const nb_op_args *args);
nb_status nb__cpu_matmul(const nb_op_args *args);
nb_status nb__cpu_linear(const nb_op_args *args);
nb_status nb__cpu_softmax(const nb_op_args *args);
nb_status nb__cpu_index_select(const nb_op_args *args);
nb_status nb__cpu_gather(const nb_op_args *args);
nb_status nb__cpu_scatter_add(const nb_op_args *args);
nb_status nb__cpu_one_hot(const nb_op_args *args);
nb_status nb__cpu_cross_entropy(const nb_op_args *args);
nb_status nb__cpu_pointwise_loss(const nb_op_args *args); /* the elementwise losses and their gradient */
nb_status nb__cpu_unfold(const nb_op_args *args);
nb_status nb__cpu_fold(const nb_op_args *args);
/* depthwise_conv2d and its input and weight gradients */
nb_status nb__cpu_depthwise(const nb_op_args *args);
nb_status nb__cpu_max_pool2d(const nb_op_args *args);
nb_status nb__cpu_optim_step(const nb_op_args *args);
nb_status nb__cpu_batch_norm(const nb_op_args *args); /* the batch_norm_* stages */
nb_status nb__cpu_avg_pool2d(const nb_op_args *args);
nb_status nb__cpu_avg_pool2d_backward(const nb_op_args *args);
nb_status nb__cpu_cross_entropy_backward(const nb_op_args *args);

#endif
