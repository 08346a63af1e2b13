/* State dicts and checkpoints (include/nabla/io.h), written as safetensors
 * files. A checkpoint holds, by name:
 *   model.<param or buffer>           the module's tensors
 *   optim.<param>.step                I64 scalar: the parameter's steps (whichever
 *                                     optimizer holds it)
 *   optim.<param>.<state>             the rule's state by PyTorch's names
 *                                     (momentum_buffer, exp_avg, ...)
 *   optim.<param>.mu_product          F64 scalar: NAdam's running product
 *   optim.<param>.master              the f32 copy of an f16 or bf16 parameter
 *   rng.<i>                           I64 [2]: generator i's seed and offset
 * and in "__metadata__" the format, the step, and each optimizer k's kind,
 * size, groups and each group's size and options as
 * optim<k>.group<g>.<option> (%.17g: they read back exactly). A state slot the
 * optimizer has not made yet (before its first step) is absent. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/nn.h"
#include "io.h"

#define NB_CHECKPOINT_FORMAT "nabla checkpoint 2"

/* ---- lists of named tensors ---- */

typedef struct named_list {
    nb_named_tensor *items;
    nb_tensor **owned; /* made here (steps, generator states): released with the list */
    int n, n_owned, cap;
} named_list;

static void list_free(named_list *l) {
    for (int i = 0; i < l->n_owned; i++) nb_release(l->owned[i]);
    free(l->items);
    free(l->owned);
}

/* Adds t as prefix + name + suffix; owned: the list releases it. */
static nb_status list_add(named_list *l, const char *fn, const char *prefix, const char *name, const char *suffix,
                          nb_tensor *t, bool owned) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        nb_named_tensor *items = nb__realloc(l->items, (size_t)cap * sizeof *items);
        nb_tensor **own = items ? nb__realloc(l->owned, (size_t)cap * sizeof *own) : NULL;
        if (items) l->items = items;
        if (own) l->owned = own;
        if (!items || !own) {
            if (owned) nb_release(t);
            return nb__error(NB_ERR_OOM, "%s: out of host memory for %d names", fn, cap);
        }
        l->cap = cap;
    }
    if (owned) l->owned[l->n_owned++] = t;
    nb_named_tensor *item = &l->items[l->n];
    int length = snprintf(item->name, sizeof item->name, "%s%s%s", prefix, name, suffix);
    NB_CHECK(length < (int)sizeof item->name, NB_ERR_INVALID, "%s: the name %s%s%s is longer than %zu bytes", fn,
             prefix, name, suffix, sizeof item->name - 1);
    item->tensor = t;
    l->n++;
    return NB_OK;
}

/* m's parameters, then its buffers, in order. */
static nb_status module_names(const char *fn, const nb_module *m, nb_named_tensor **out, int *n) {
    NB_CHECK(m, NB_ERR_INVALID, "%s: module is NULL", fn);
    int params = nb_module_parameters(m, NULL, 0), buffers = nb_module_buffers(m, NULL, 0);
    nb_named_tensor *named = nb__malloc((size_t)(params + buffers + 1) * sizeof *named);
    NB_CHECK(named, NB_ERR_OOM, "%s: out of host memory for %d names", fn, params + buffers);
    nb_module_parameters(m, named, params);
    nb_module_buffers(m, named + params, buffers);
    *out = named;
    *n = params + buffers;
    return NB_OK;
}

static nb_status add_module(named_list *l, const char *fn, const nb_module *m, const char *prefix) {
    nb_named_tensor *named;
    int n;
    NB_TRY(module_names(fn, m, &named, &n));
    nb_status status = NB_OK;
    for (int i = 0; i < n && status == NB_OK; i++) status = list_add(l, fn, prefix, named[i].name, "", named[i].tensor, false);
    free(named);
    return status;
}

/* ---- loading named tensors, strictly or not ---- */

typedef struct report {
    char *text;
    size_t size, used;
    int problems;
} report;

static void note(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(report *r, const char *fmt, ...) {
    r->problems++;
    if (!r->text || r->used + 1 >= r->size) return;
    va_list args;
    va_start(args, fmt);
    int wrote = vsnprintf(r->text + r->used, r->size - r->used, fmt, args);
    va_end(args);
    r->used = wrote < 0 ? r->used : r->used + (size_t)wrote < r->size ? r->used + (size_t)wrote : r->size - 1;
}

/* Whether the file's entry fits t (noting why not). */
static bool fits(report *r, const nb_safetensors_entry *e, const nb_tensor *t, bool convert) {
    bool shape = e->ndim == t->ndim && !memcmp(e->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
    bool dtype = convert || e->dtype == t->dtype;
    if (!shape || !dtype)
        note(r, "%s: %s %s in the file, %s %s here; ", e->name, nb__shape_str(e->ndim, e->shape),
             nb_dtype_name(e->dtype), nb__tensor_shape_str(t), nb_dtype_name(t->dtype));
    return shape && dtype;
}

/* Reads the tensors of want from f. Every file name under prefix must be
 * wanted, and every wanted name present and fitting; unless partial, any
 * failure of that is one error before anything is written. */
static nb_status load_named(const char *fn, nb_safetensors *f, const char *path, const named_list *want,
                            const char *prefix, const nb_load_options *options) {
    bool partial = options && options->partial, convert = options && options->convert;
    char problems[1024] = "";
    report r = {.text = partial && options->report ? options->report : problems,
                .size = partial && options->report ? options->report_size : sizeof problems};
    if (r.text && r.size) r.text[0] = 0;
    int count = nb_safetensors_count(f);
    bool *matched = nb__calloc((size_t)(count + want->n + 1), sizeof *matched), *usable = matched + count;
    NB_CHECK(matched, NB_ERR_OOM, "%s: out of host memory", fn);
    const nb_safetensors_entry *first = nb_safetensors_entry_at(f, 0);
    for (int i = 0; i < want->n; i++) {
        const nb_safetensors_entry *e = nb_safetensors_find(f, want->items[i].name);
        if (!e) note(&r, "%s: missing from the file; ", want->items[i].name);
        else matched[e - first] = true, usable[i] = fits(&r, e, want->items[i].tensor, convert);
    }
    size_t length = strlen(prefix);
    for (int i = 0; i < count; i++)
        if (!matched[i] && !strncmp(nb_safetensors_entry_at(f, i)->name, prefix, length))
            note(&r, "%s: in the file, not here; ", nb_safetensors_entry_at(f, i)->name);
    nb_status status = NB_OK;
    if (r.problems && !partial)
        status = nb__error(NB_ERR_INVALID, "%s: %s: %d names differ (nothing was loaded): %s", fn, path, r.problems,
                           problems);
    for (int i = 0; i < want->n && status == NB_OK; i++)
        if (usable[i]) status = nb_safetensors_read_into(f, want->items[i].name, want->items[i].tensor, convert);
    free(matched);
    return status;
}

/* ---- module state dicts ----
 * Each public function runs between nb__enter and nb__leave, so an error of
 * the file functions it calls names it first. */

nb_status nb_module_save(const nb_module *m, const char *path) {
    const char *outer = nb__enter("nb_module_save");
    named_list l = {0};
    nb_status status = add_module(&l, "nb_module_save", m, "");
    if (status == NB_OK) status = nb_safetensors_save(path, l.items, l.n, NULL);
    list_free(&l);
    nb__leave(outer);
    return status;
}

nb_status nb_module_load(nb_module *m, const char *path, const nb_load_options *options) {
    const char *fn = "nb_module_load";
    NB_CHECK(m, NB_ERR_INVALID, "%s: module is NULL", fn);
    const char *outer = nb__enter(fn);
    nb_safetensors *f = NULL;
    nb_status status = nb_safetensors_open(path, &f);
    named_list l = {0};
    if (status == NB_OK) status = add_module(&l, fn, m, "");
    if (status == NB_OK) status = load_named(fn, f, path, &l, "", options);
    list_free(&l);
    nb_safetensors_close(f);
    nb__leave(outer);
    return status;
}

/* ---- optimizers ---- */

/* The name optimizer k's parameter i has in the model ("opt<k>.param<i>"
 * if none): a parameter's state is named alike however they are grouped. */
static void param_name(const nb_named_tensor *named, int n, const nb_tensor *param, int k, int i, char *out,
                       size_t size) {
    for (int j = 0; j < n; j++)
        if (named[j].tensor == param) {
            snprintf(out, size, "%s", named[j].name);
            return;
        }
    snprintf(out, size, "opt%d.param%d", k, i);
}

/* The tensor slots of parameter i: pointers to the optimizer's fields, named
 * ".exp_avg" and so on. */
#define NB_TENSOR_SLOTS (NB_OPTIM_SLOTS + 1)
static int optimizer_slots(nb_optimizer *opt, int i, nb_tensor ***slots, char (*names)[32]) {
    int n = 0;
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) {
        const char *name = nb__optimizer_slot_name(opt->kind, s);
        if (!name) continue;
        slots[n] = &opt->state[i][s];
        snprintf(names[n++], sizeof names[0], ".%s", name);
    }
    slots[n] = &opt->master[i];
    snprintf(names[n++], sizeof names[0], ".master");
    return n;
}

static nb_status add_optimizer(named_list *l, const char *fn, nb_optimizer *opt, int k, const nb_named_tensor *named,
                               int n) {
    for (int i = 0; i < opt->n; i++) {
        char name[128];
        param_name(named, n, opt->params[i], k, i, name, sizeof name);
        nb_tensor *step = nb_scalar((double)opt->steps[i], NB_I64, nb_cpu());
        NB_TRY(step ? list_add(l, fn, "optim.", name, ".step", step, true) : nb_last_status());
        if (opt->kind == NB_OPTIM_NADAM) {
            nb_tensor *mu = nb_scalar(opt->mu_product[i], NB_F64, nb_cpu());
            NB_TRY(mu ? list_add(l, fn, "optim.", name, ".mu_product", mu, true) : nb_last_status());
        }
        nb_tensor **slots[NB_TENSOR_SLOTS];
        char suffix[NB_TENSOR_SLOTS][32];
        int count = optimizer_slots(opt, i, slots, suffix);
        for (int s = 0; s < count; s++)
            if (*slots[s]) NB_TRY(list_add(l, fn, "optim.", name, suffix[s], *slots[s], false));
    }
    return NB_OK;
}

/* Optimizer k's metadata: "optim<k>.kind", ".params", ".groups", and for
 * each group g "optim<k>.group<g>.params" and its options, by name. */
typedef char metadata_text[80];
#define NB_GROUP_FIELDS (1 + NB_OPTIM_OPTIONS)

static int optimizer_fields(const nb_optimizer *opt) { return 3 + opt->n_groups * NB_GROUP_FIELDS; }

static void optimizer_metadata(const nb_optimizer *opt, int k, metadata_text *keys, metadata_text *values) {
    snprintf(keys[0], sizeof keys[0], "optim%d.kind", k);
    snprintf(values[0], sizeof values[0], "%s", nb__optimizer_kind_name(opt->kind));
    snprintf(keys[1], sizeof keys[1], "optim%d.params", k);
    snprintf(values[1], sizeof values[1], "%d", opt->n);
    snprintf(keys[2], sizeof keys[2], "optim%d.groups", k);
    snprintf(values[2], sizeof values[2], "%d", opt->n_groups);
    int at = 3;
    for (int g = 0; g < opt->n_groups; g++) {
        int size = 0;
        for (int i = 0; i < opt->n; i++) size += opt->group[i] == g;
        snprintf(keys[at], sizeof keys[at], "optim%d.group%d.params", k, g);
        snprintf(values[at++], sizeof values[0], "%d", size);
        for (int o = 0; o < NB_OPTIM_OPTIONS; o++, at++) {
            snprintf(keys[at], sizeof keys[at], "optim%d.group%d.%s", k, g, nb__optimizer_option_name(o));
            snprintf(values[at], sizeof values[at], "%.17g", nb__optimizer_option_get(&opt->options[g], o));
        }
    }
}

/* A number of the checkpoint's metadata. */
static nb_status metadata_number(const char *fn, const char *path, const nb_safetensors *f, const char *key,
                                 double *value) {
    const char *text = nb_safetensors_metadata(f, key);
    char *end = NULL;
    *value = text ? strtod(text, &end) : 0;
    NB_CHECK(text && end != text && !*end, NB_ERR_IO, "%s: %s: the metadata's \"%s\" is %s%s%s, not a number", fn,
             path, key, text ? "\"" : "", text ? text : "missing", text ? "\"" : "");
    return NB_OK;
}

/* The file's group g of optimizer k into *out (checked as the optimizer
 * would), its size matching opt's. */
static nb_status restore_group(const char *fn, const char *path, const nb_safetensors *f, const nb_optimizer *opt,
                               int k, int g, nb_optim_options *out) {
    char key[80];
    double size;
    snprintf(key, sizeof key, "optim%d.group%d.params", k, g);
    NB_TRY(metadata_number(fn, path, f, key, &size));
    int want = 0;
    for (int i = 0; i < opt->n; i++) want += opt->group[i] == g;
    NB_CHECK(size == want, NB_ERR_INVALID, "%s: %s holds %g parameters in group %d of optimizer %d, which has %d",
             fn, path, size, g, k, want);
    nb_optim_options read = {0};
    for (int o = 0; o < NB_OPTIM_OPTIONS; o++) {
        double v;
        snprintf(key, sizeof key, "optim%d.group%d.%s", k, g, nb__optimizer_option_name(o));
        NB_TRY(metadata_number(fn, path, f, key, &v));
        nb__optimizer_option_set(&read, o, v);
    }
    nb_status status = nb__optimizer_resolve(fn, opt->kind, g, &read, out);
    NB_CHECK(status == NB_OK, NB_ERR_IO, "%s: %s: optimizer %d: %s", fn, path, k, nb_last_error());
    return NB_OK;
}

/* Checks the file's optimizer k against opt, and with apply sets its
 * groups' options. */
static nb_status restore_hyper(const char *fn, const char *path, const nb_safetensors *f, nb_optimizer *opt, int k,
                               bool apply) {
    char key[48];
    snprintf(key, sizeof key, "optim%d.kind", k);
    const char *kind = nb_safetensors_metadata(f, key);
    const char *want = nb__optimizer_kind_name(opt->kind);
    NB_CHECK(kind, NB_ERR_INVALID, "%s: %s holds no state for optimizer %d", fn, path, k);
    NB_CHECK(!strcmp(kind, want), NB_ERR_INVALID, "%s: %s holds the state of %s as optimizer %d, which is %s", fn,
             path, kind, k, want);
    double params, groups;
    snprintf(key, sizeof key, "optim%d.params", k);
    NB_TRY(metadata_number(fn, path, f, key, &params));
    NB_CHECK(params == opt->n, NB_ERR_INVALID, "%s: %s holds the state of %g parameters for optimizer %d, which "
             "has %d", fn, path, params, k, opt->n);
    snprintf(key, sizeof key, "optim%d.groups", k);
    NB_TRY(metadata_number(fn, path, f, key, &groups));
    NB_CHECK(groups == opt->n_groups, NB_ERR_INVALID, "%s: %s holds %g groups for optimizer %d, which has %d", fn,
             path, groups, k, opt->n_groups);
    for (int g = 0; g < opt->n_groups; g++) {
        nb_optim_options options;
        NB_TRY(restore_group(fn, path, f, opt, k, g, &options));
        if (apply) opt->options[g] = options;
    }
    return NB_OK;
}

/* A state slot as the optimizer makes it: like target, f32 (f64 for f64). */
static nb_status restore_slot(const char *fn, nb_safetensors *f, const char *name, const nb_tensor *param,
                              bool master, nb_tensor **slot) {
    const nb_safetensors_entry *e = nb_safetensors_find(f, name);
    if (!e) {
        nb_release(*slot);
        *slot = NULL; /* made at the next step, as the saved optimizer would */
        return NB_OK;
    }
    nb_dtype dtype = param->dtype == NB_F64 && !master ? NB_F64 : NB_F32;
    nb_tensor *t = nb_empty(param->ndim, param->shape, dtype, param->storage->device);
    NB_CHECK(t, nb_last_status(), "%s: %s: %s", fn, name, nb_last_error());
    nb_status status = nb_safetensors_read_into(f, name, t, false);
    if (status != NB_OK) {
        nb_release(t);
        return status;
    }
    nb_release(*slot);
    *slot = t;
    return NB_OK;
}

/* A 0-dim scalar of the file, of dtype, into *value. */
static nb_status restore_scalar(const char *fn, const char *path, nb_safetensors *f, const char *name,
                                nb_dtype dtype, void *value) {
    nb_tensor *t = NULL;
    NB_TRY(nb_safetensors_get(f, name, nb_cpu(), &t));
    bool ok = nb_dtype_of(t) == dtype && t->ndim == 0;
    if (ok) memcpy(value, nb__data(t), nb_dtype_size(dtype));
    nb_release(t);
    NB_CHECK(ok, NB_ERR_IO, "%s: %s: %s must be a %s scalar", fn, path, name, nb_dtype_name(dtype));
    return NB_OK;
}

static nb_status restore_optimizer(const char *fn, const char *path, nb_safetensors *f, nb_optimizer *opt, int k,
                                   const nb_named_tensor *named, int n) {
    NB_TRY(restore_hyper(fn, path, f, opt, k, true));
    for (int i = 0; i < opt->n; i++) {
        char param[128], name[264];
        param_name(named, n, opt->params[i], k, i, param, sizeof param);
        snprintf(name, sizeof name, "optim.%s.step", param);
        NB_TRY(restore_scalar(fn, path, f, name, NB_I64, &opt->steps[i]));
        if (opt->kind == NB_OPTIM_NADAM) {
            snprintf(name, sizeof name, "optim.%s.mu_product", param);
            NB_TRY(restore_scalar(fn, path, f, name, NB_F64, &opt->mu_product[i]));
        }
        nb_tensor **slots[NB_TENSOR_SLOTS];
        char suffix[NB_TENSOR_SLOTS][32];
        int count = optimizer_slots(opt, i, slots, suffix);
        for (int s = 0; s < count; s++) {
            snprintf(name, sizeof name, "optim.%s%s", param, suffix[s]);
            NB_TRY(restore_slot(fn, f, name, opt->params[i], slots[s] == &opt->master[i], slots[s]));
        }
    }
    return NB_OK;
}

/* ---- checkpoints ---- */

static nb_status check_checkpoint(const char *fn, const nb_checkpoint *c) {
    NB_CHECK(c && c->model, NB_ERR_INVALID, "%s: %s is NULL", fn, c ? "checkpoint.model" : "checkpoint");
    NB_CHECK(c->n_generators >= 0 && (c->n_generators == 0 || c->generators), NB_ERR_INVALID,
             "%s: n_generators is %d with generators %s", fn, c->n_generators, c->generators ? "set" : "NULL");
    NB_CHECK(c->n_optimizers >= 0 && (c->n_optimizers == 0 || c->optimizers), NB_ERR_INVALID,
             "%s: n_optimizers is %d with optimizers %s", fn, c->n_optimizers, c->optimizers ? "set" : "NULL");
    for (int k = 0; k < c->n_optimizers; k++)
        NB_CHECK(c->optimizers[k], NB_ERR_INVALID, "%s: optimizer %d is NULL", fn, k);
    return NB_OK;
}

static nb_status add_generators(named_list *l, const char *fn, const nb_checkpoint *c) {
    for (int i = 0; i < c->n_generators; i++) {
        uint64_t state[2] = {nb_generator_seed_of(c->generators[i]), nb_generator_offset(c->generators[i])};
        nb_tensor *t = nb_from_host(state, 1, (int64_t[]){2}, NB_I64, nb_cpu());
        char index[16];
        snprintf(index, sizeof index, "%d", i);
        NB_TRY(t ? list_add(l, fn, "rng.", index, "", t, true) : nb_last_status());
    }
    return NB_OK;
}

/* The checkpoint's tensors: the model's, then each optimizer's, then the
 * generators'. */
static nb_status checkpoint_tensors(const char *fn, const nb_checkpoint *c, named_list *l) {
    NB_TRY(add_module(l, fn, c->model, "model."));
    nb_named_tensor *named;
    int n;
    NB_TRY(module_names(fn, c->model, &named, &n));
    nb_status status = NB_OK;
    for (int k = 0; k < c->n_optimizers && status == NB_OK; k++)
        status = add_optimizer(l, fn, c->optimizers[k], k, named, n);
    free(named);
    return status == NB_OK ? add_generators(l, fn, c) : status;
}

/* format, step, the optimizers' hyper-parameters and the caller's pairs,
 * NULL-terminated, pointing into text. */
static const char **checkpoint_metadata(const nb_checkpoint *c, metadata_text **text) {
    int extra = 0;
    while (c->metadata && c->metadata[extra]) extra += c->metadata[extra + 1] ? 2 : 1;
    int fields = 0;
    for (int k = 0; k < c->n_optimizers; k++) fields += optimizer_fields(c->optimizers[k]);
    const char **kv = nb__malloc((size_t)(2 * fields + extra + 7) * sizeof *kv); /* 3 pairs, the fields, NULL */
    *text = nb__malloc((size_t)(2 * fields + 2) * sizeof **text);
    if (!kv || !*text) {
        free(kv);
        free(*text);
        *text = NULL;
        return NULL;
    }
    metadata_text *keys = *text, *values = *text + fields;
    int n = 0;
    kv[n++] = "format", kv[n++] = NB_CHECKPOINT_FORMAT;
    snprintf(values[fields], sizeof values[fields], "%lld", (long long)c->step);
    snprintf(values[fields + 1], sizeof values[fields + 1], "%d", c->n_optimizers);
    kv[n++] = "step", kv[n++] = values[fields];
    kv[n++] = "optimizers", kv[n++] = values[fields + 1];
    for (int k = 0, at = 0; k < c->n_optimizers; at += optimizer_fields(c->optimizers[k++])) {
        optimizer_metadata(c->optimizers[k], k, keys + at, values + at);
        for (int i = 0; i < optimizer_fields(c->optimizers[k]); i++) kv[n++] = keys[at + i], kv[n++] = values[at + i];
    }
    for (int i = 0; i < extra; i++) kv[n++] = c->metadata[i];
    kv[n] = NULL;
    return kv;
}

nb_status nb_checkpoint_save(const char *path, const nb_checkpoint *c) {
    const char *fn = "nb_checkpoint_save";
    NB_TRY(check_checkpoint(fn, c));
    const char *outer = nb__enter(fn);
    named_list l = {0};
    nb_status status = checkpoint_tensors(fn, c, &l);
    metadata_text *text = NULL;
    const char **kv = status == NB_OK ? checkpoint_metadata(c, &text) : NULL;
    if (status == NB_OK && !kv) status = nb__error(NB_ERR_OOM, "%s: out of host memory", fn);
    if (status == NB_OK) status = nb_safetensors_save(path, l.items, l.n, &(nb_save_options){.metadata = kv});
    free(kv);
    free(text);
    list_free(&l);
    nb__leave(outer);
    return status;
}

static nb_status restore_generators(const char *fn, const char *path, nb_safetensors *f, nb_checkpoint *c) {
    for (int i = 0; i < c->n_generators; i++) {
        char name[32];
        snprintf(name, sizeof name, "rng.%d", i);
        nb_tensor *t = NULL;
        NB_TRY(nb_safetensors_get(f, name, nb_cpu(), &t));
        bool ok = nb_dtype_of(t) == NB_I64 && nb_numel(t) == 2 && t->ndim == 1;
        uint64_t state[2] = {0, 0};
        if (ok) memcpy(state, nb__data(t), sizeof state);
        nb_release(t);
        NB_CHECK(ok, NB_ERR_IO, "%s: %s: %s must be an I64 tensor of 2", fn, path, name);
        nb_generator_set_state(c->generators[i], state[0], state[1]);
    }
    return NB_OK;
}

/* Everything that can be checked before a tensor is written: the format,
 * the step and every optimizer's kind and size. */
static nb_status check_file(const char *fn, const char *path, nb_safetensors *f, const nb_checkpoint *c,
                            double *step) {
    const char *format = nb_safetensors_metadata(f, "format");
    NB_CHECK(format && !strcmp(format, NB_CHECKPOINT_FORMAT), NB_ERR_IO,
             "%s: %s is not a nabla checkpoint (its metadata's \"format\" is %s)", fn, path, format ? format : "missing");
    NB_TRY(metadata_number(fn, path, f, "step", step));
    double optimizers;
    NB_TRY(metadata_number(fn, path, f, "optimizers", &optimizers));
    NB_CHECK(c->n_optimizers == 0 || optimizers == c->n_optimizers, NB_ERR_INVALID,
             "%s: %s holds the state of %g optimizers, the checkpoint names %d", fn, path, optimizers, c->n_optimizers);
    for (int k = 0; k < c->n_optimizers; k++) NB_TRY(restore_hyper(fn, path, f, c->optimizers[k], k, false));
    return NB_OK;
}

static nb_status restore_all(const char *fn, const char *path, nb_safetensors *f, nb_checkpoint *c) {
    double step = 0;
    NB_TRY(check_file(fn, path, f, c, &step));
    named_list l = {0};
    nb_status status = add_module(&l, fn, c->model, "model.");
    if (status == NB_OK) status = load_named(fn, f, path, &l, "model.", NULL);
    list_free(&l);
    nb_named_tensor *named = NULL;
    int n = 0;
    if (status == NB_OK) status = module_names(fn, c->model, &named, &n);
    for (int k = 0; k < c->n_optimizers && status == NB_OK; k++)
        status = restore_optimizer(fn, path, f, c->optimizers[k], k, named, n);
    free(named);
    if (status == NB_OK) status = restore_generators(fn, path, f, c);
    if (status == NB_OK) c->step = (int64_t)step;
    return status;
}

nb_status nb_checkpoint_load(const char *path, nb_checkpoint *c) {
    const char *fn = "nb_checkpoint_load";
    NB_TRY(check_checkpoint(fn, c));
    const char *outer = nb__enter(fn);
    nb_safetensors *f = NULL;
    nb_status status = nb_safetensors_open(path, &f);
    if (status == NB_OK) status = restore_all(fn, path, f, c);
    nb_safetensors_close(f);
    nb__leave(outer);
    return status;
}
