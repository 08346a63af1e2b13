/* The module object behind include/nabla/nn.h, shared by the layer files. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "../core/internal.h"

/* An optimizer (src/nn/optim.c); checkpoints (src/io/state.c) save and
 * restore every field. Parameters are numbered through the groups in order. */
struct nb_optimizer {
    nb_optimizer_kind kind;
    int n, n_groups;
    nb_tensor **params;
    int *group;                /* each parameter's */
    nb_optim_options *options; /* each group's, the defaults filled in */
    nb_tensor *(*state)[NB_OPTIM_SLOTS]; /* each parameter's; PyTorch's names below */
    nb_tensor **master;        /* f32 copies of f16 and bf16 parameters */
    int64_t *steps;            /* per parameter, as PyTorch counts: steps taken with a gradient */
    double *mu_product;        /* NAdam: mu_1 ... mu_t of each parameter */
};

/* "sgd", "adam", ...; the name of a state slot of kind ("momentum_buffer",
 * "exp_avg", ...; NULL for a slot the rule has not); whether parameter i's
 * options use the slot (SGD's buffer only with momentum, and so on). */
const char *nb__optimizer_kind_name(nb_optimizer_kind kind);
const char *nb__optimizer_slot_name(nb_optimizer_kind kind, int slot);
bool nb__optimizer_uses_slot(const nb_optimizer *opt, int i, int slot);
/* The options with kind's defaults filled in, checked (errors name fn and
 * group). */
nb_status nb__optimizer_resolve(const char *fn, nb_optimizer_kind kind, int group,
                                const nb_optim_options *in, nb_optim_options *out);
/* The options as numbers, for checkpoints: option k's name, value (a flag
 * as 0 or 1) and a setter that keeps a 0 exact (not the default). */
#define NB_OPTIM_OPTIONS 21
const char *nb__optimizer_option_name(int k);
double nb__optimizer_option_get(const nb_optim_options *o, int k);
void nb__optimizer_option_set(nb_optim_options *o, int k, double v);
/* The schedule kind named name ("step", "one_cycle", ...; -1 if none), and
 * a number, integer or flag of a schedule by its field name (-1: no such
 * field; -2: not an integer where one is needed). */
int nb__lr_schedule_kind(const char *name);
int nb__lr_schedule_set(nb_lr_schedule *s, const char *name, double value);
/* A new zero (or initial-accumulator) state slot for parameter i. */
nb_status nb__optimizer_new_slot(const nb_optimizer *opt, int i, int slot, nb_tensor **out);

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
