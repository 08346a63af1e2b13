/* The module object behind include/nabla/nn.h, shared by the layer files. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "../core/internal.h"

/* An optimizer (src/nn/optim.c); checkpoints (src/io/state.c) save and
 * restore every field. */
typedef enum nb__optimizer_kind { NB__SGD, NB__ADAM, NB__ADAMW } nb__optimizer_kind;

struct nb_optimizer {
    nb__optimizer_kind kind;
    int n;
    nb_tensor **params;
    nb_tensor **state1, **state2; /* momentum buffer or first moment; second moment */
    nb_tensor **master;           /* f32 copies of f16 and bf16 parameters */
    double lr, momentum, beta1, beta2, eps, weight_decay;
    bool nesterov;
    int64_t *steps; /* per parameter, as PyTorch counts: steps taken with a gradient */
};

#define NB_MODULE_SLOTS 4

typedef nb_tensor *(*nb_forward_fn)(nb_module *m, const nb_tensor *x);

/* Layer settings; each layer reads the fields it needs. */
typedef struct nb_layer_config {
    int stride[2], padding[2], dilation[2], output_padding[2], kernel[2], groups;
    double eps, momentum, p;
    int64_t out_size[2];
    int min_dims, max_dims; /* the ranks batch norm accepts */
    nb_comm *comm;          /* SyncBatchNorm's */
    nb_activation activation;
    nb_generator *gen;
    nb_attention_config attention;
    nb_gpt_config gpt;
} nb_layer_config;

/* A MultiheadAttention's key/value cache: [batch, kv_heads, capacity, head dim]. */
typedef struct nb_kv_cache {
    nb_tensor *k, *v;
    int64_t length;
} nb_kv_cache;

struct nb_module {
    const char *type;
    const char *fn; /* the constructor, named in the messages of its failures */
    nb_forward_fn forward;
    bool training;
    nb_layer_config config;
    int n_params, n_buffers, n_children;
    char param_names[NB_MODULE_SLOTS][24], buffer_names[NB_MODULE_SLOTS][24];
    nb_tensor *params[NB_MODULE_SLOTS], *buffers[NB_MODULE_SLOTS];
    nb_module **children;
    char (*child_names)[24];
    nb_kv_cache cache;
};

/* A module of type made by the public constructor fn, with forward and no
 * parameters yet; NULL on OOM. */
nb_module *nb__module_new(const char *type, const char *fn, nb_forward_fn forward);
/* Adds a parameter (made a leaf that requires a gradient) or a buffer,
 * taking t's reference; on failure (t NULL: its creation failed) frees m,
 * records the error under m's constructor and returns false. */
bool nb__module_add_param(nb_module *m, const char *name, nb_tensor *t);
bool nb__module_add_buffer(nb_module *m, const char *name, nb_tensor *t);
/* Sets children (owned) with their names; NULL names: "0", "1", ... */
nb_status nb__module_set_children(nb_module *m, int n, nb_module *const *children,
                                  const char *const *names);
/* A Sequential of the given type and child names (NULL: "0", "1", ...);
 * owns the children even when it fails. */
nb_module *nb__sequential_named(const char *type, const char *fn, int n,
                                nb_module *const *children, const char *const *names);
/* The parameter or buffer named name, or NULL. */
nb_tensor *nb__module_param(const nb_module *m, const char *name);
nb_tensor *nb__module_buffer(const nb_module *m, const char *name);

#endif
