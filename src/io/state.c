/* State dicts and checkpoints (include/nabla/io.h), written as safetensors
 * files. A checkpoint holds, by name:
 *   model.<param or buffer>           the module's tensors
 *   optim.<param>.step                I64 scalar: the parameter's steps
 *   optim.<param>.momentum_buffer     SGD with momentum (PyTorch's names)
 *   optim.<param>.exp_avg, .exp_avg_sq  Adam and AdamW
 *   optim.<param>.master              the f32 copy of an f16 or bf16 parameter
 *   rng.<i>                           I64 [2]: generator i's seed and offset
 * and in "__metadata__" the format, the step, the optimizer's kind and
 * hyper-parameters (as %.17g, so they read back exactly). A state slot the
 * optimizer has not made yet (before its first step) is absent. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/nn.h"
#include "io.h"

#define NB_CHECKPOINT_FORMAT "nabla checkpoint 1"

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

/* s, its message starting with fn: the name of the function the user
 * called (a file error comes from nb_safetensors_open or _save). */
static nb_status within(const char *fn, nb_status s) {
    const char *message = nb_last_error();
    if (s == NB_OK || !strncmp(message, fn, strlen(fn))) return s;
    return nb__error(s, "%s: %s", fn, message);
}

/* ---- module state dicts ---- */

nb_status nb_module_save(const nb_module *m, const char *path) {
    named_list l = {0};
    nb_status status = add_module(&l, "nb_module_save", m, "");
    if (status == NB_OK) status = nb_safetensors_save(path, l.items, l.n, NULL);
    list_free(&l);
    return within("nb_module_save", status);
}

nb_status nb_module_load(nb_module *m, const char *path, const nb_load_options *options) {
    const char *fn = "nb_module_load";
    NB_CHECK(m, NB_ERR_INVALID, "%s: module is NULL", fn);
    nb_safetensors *f;
    NB_TRY(within(fn, nb_safetensors_open(path, &f)));
    named_list l = {0};
    nb_status status = add_module(&l, fn, m, "");
    if (status == NB_OK) status = load_named(fn, f, path, &l, "", options);
    list_free(&l);
    nb_safetensors_close(f);
    return within(fn, status);
}

/* ---- optimizers ---- */

static const char *const kind_names[] = {"sgd", "adam", "adamw"};

/* The name optimizer parameter i has in the model ("param<i>" if none). */
static void param_name(const nb_named_tensor *named, int n, const nb_tensor *param, int i, char *out, size_t size) {
    for (int j = 0; j < n; j++)
        if (named[j].tensor == param) {
            snprintf(out, size, "%s", named[j].name);
            return;
        }
    snprintf(out, size, "param%d", i);
}

/* The slots of parameter i: pointers to the optimizer's fields, named. */
static int optimizer_slots(nb_optimizer *opt, int i, nb_tensor ***slots, const char **names) {
    int n = 0;
    if (opt->kind == NB__SGD) slots[n] = &opt->state1[i], names[n++] = ".momentum_buffer";
    else {
        slots[n] = &opt->state1[i], names[n++] = ".exp_avg";
        slots[n] = &opt->state2[i], names[n++] = ".exp_avg_sq";
    }
    slots[n] = &opt->master[i], names[n++] = ".master";
    return n;
}

static nb_status add_optimizer(named_list *l, const char *fn, nb_optimizer *opt, const nb_module *model) {
    nb_named_tensor *named = NULL;
    int n = 0;
    if (model) NB_TRY(module_names(fn, model, &named, &n));
    nb_status status = NB_OK;
    for (int i = 0; i < opt->n && status == NB_OK; i++) {
        char name[128];
        param_name(named, n, opt->params[i], i, name, sizeof name);
        nb_tensor *step = nb_scalar((double)opt->steps[i], NB_I64, nb_cpu());
        status = step ? list_add(l, fn, "optim.", name, ".step", step, true) : nb_last_status();
        nb_tensor **slots[3];
        const char *suffix[3];
        int k = optimizer_slots(opt, i, slots, suffix);
        for (int s = 0; s < k && status == NB_OK; s++)
            if (*slots[s]) status = list_add(l, fn, "optim.", name, suffix[s], *slots[s], false);
    }
    free(named);
    return status;
}

/* The hyper-parameters as metadata strings, in store (16 x 32 bytes). */
static int optimizer_metadata(const nb_optimizer *opt, char store[][32], const char **kv) {
    const char *keys[] = {"optim.kind", "optim.params", "optim.lr", "optim.momentum", "optim.beta1", "optim.beta2",
                          "optim.eps", "optim.weight_decay", "optim.nesterov"};
    double values[] = {0, opt->n, opt->lr, opt->momentum, opt->beta1, opt->beta2, opt->eps, opt->weight_decay,
                       opt->nesterov};
    int n = 0;
    for (int i = 0; i < 9; i++) {
        if (i == 0) snprintf(store[i], 32, "%s", kind_names[opt->kind]);
        else snprintf(store[i], 32, "%.17g", values[i]);
        kv[n++] = keys[i];
        kv[n++] = store[i];
    }
    return n;
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

/* Checks the file's optimizer against opt, and with apply sets its
 * hyper-parameters. */
static nb_status restore_hyper(const char *fn, const char *path, const nb_safetensors *f, nb_optimizer *opt,
                               bool apply) {
    const char *kind = nb_safetensors_metadata(f, "optim.kind");
    NB_CHECK(kind, NB_ERR_INVALID, "%s: %s holds no optimizer state", fn, path);
    NB_CHECK(!strcmp(kind, kind_names[opt->kind]), NB_ERR_INVALID, "%s: %s holds the state of %s, the optimizer is %s",
             fn, path, kind, kind_names[opt->kind]);
    double params, lr, momentum, beta1, beta2, eps, decay, nesterov;
    NB_TRY(metadata_number(fn, path, f, "optim.params", &params));
    NB_CHECK(params == opt->n, NB_ERR_INVALID, "%s: %s holds the state of %g parameters, the optimizer has %d", fn,
             path, params, opt->n);
    NB_TRY(metadata_number(fn, path, f, "optim.lr", &lr));
    NB_TRY(metadata_number(fn, path, f, "optim.momentum", &momentum));
    NB_TRY(metadata_number(fn, path, f, "optim.beta1", &beta1));
    NB_TRY(metadata_number(fn, path, f, "optim.beta2", &beta2));
    NB_TRY(metadata_number(fn, path, f, "optim.eps", &eps));
    NB_TRY(metadata_number(fn, path, f, "optim.weight_decay", &decay));
    NB_TRY(metadata_number(fn, path, f, "optim.nesterov", &nesterov));
    NB_CHECK(lr >= 0 && isfinite(lr), NB_ERR_IO, "%s: %s: the optimizer's lr is %g", fn, path, lr);
    if (!apply) return NB_OK;
    opt->lr = lr;
    opt->momentum = momentum, opt->beta1 = beta1, opt->beta2 = beta2, opt->eps = eps, opt->weight_decay = decay;
    opt->nesterov = nesterov != 0;
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

static nb_status restore_optimizer(const char *fn, const char *path, nb_safetensors *f, nb_optimizer *opt,
                                   const nb_module *model) {
    NB_TRY(restore_hyper(fn, path, f, opt, true));
    nb_named_tensor *named = NULL;
    int n = 0;
    if (model) NB_TRY(module_names(fn, model, &named, &n));
    nb_status status = NB_OK;
    for (int i = 0; i < opt->n && status == NB_OK; i++) {
        char param[128], name[160];
        param_name(named, n, opt->params[i], i, param, sizeof param);
        snprintf(name, sizeof name, "optim.%s.step", param);
        nb_tensor *step = NULL;
        status = nb_safetensors_get(f, name, nb_cpu(), &step);
        if (status == NB_OK && (nb_dtype_of(step) != NB_I64 || step->ndim != 0))
            status = nb__error(NB_ERR_IO, "%s: %s: %s must be an I64 scalar", fn, path, name);
        if (status == NB_OK) opt->steps[i] = *(const int64_t *)nb__data(step);
        nb_release(step);
        nb_tensor **slots[3];
        const char *suffix[3];
        int k = optimizer_slots(opt, i, slots, suffix);
        for (int s = 0; s < k && status == NB_OK; s++) {
            snprintf(name, sizeof name, "optim.%s%s", param, suffix[s]);
            status = restore_slot(fn, f, name, opt->params[i], slots[s] == &opt->master[i], slots[s]);
        }
    }
    free(named);
    return status;
}

/* ---- checkpoints ---- */

static nb_status add_generators(named_list *l, const char *fn, const nb_checkpoint *c) {
    NB_CHECK(c->n_generators >= 0 && (c->n_generators == 0 || c->generators), NB_ERR_INVALID,
             "%s: n_generators is %d with generators %s", fn, c->n_generators, c->generators ? "set" : "NULL");
    for (int i = 0; i < c->n_generators; i++) {
        uint64_t state[2] = {nb_generator_seed_of(c->generators[i]), nb_generator_offset(c->generators[i])};
        nb_tensor *t = nb_from_host(state, 1, (int64_t[]){2}, NB_I64, nb_cpu());
        char index[16];
        snprintf(index, sizeof index, "%d", i);
        NB_TRY(t ? list_add(l, fn, "rng.", index, "", t, true) : nb_last_status());
    }
    return NB_OK;
}

nb_status nb_checkpoint_save(const char *path, const nb_checkpoint *c) {
    const char *fn = "nb_checkpoint_save";
    NB_CHECK(c && c->model, NB_ERR_INVALID, "%s: %s is NULL", fn, c ? "checkpoint.model" : "checkpoint");
    named_list l = {0};
    nb_status status = add_module(&l, fn, c->model, "model.");
    if (status == NB_OK && c->optimizer) status = add_optimizer(&l, fn, c->optimizer, c->model);
    if (status == NB_OK) status = add_generators(&l, fn, c);
    int extra = 0;
    while (c->metadata && c->metadata[extra]) extra += c->metadata[extra + 1] ? 2 : 1;
    const char **kv = status == NB_OK ? nb__malloc((size_t)(extra + 24) * sizeof *kv) : NULL;
    if (status == NB_OK && !kv) status = nb__error(NB_ERR_OOM, "%s: out of host memory", fn);
    if (status == NB_OK) {
        char store[12][32];
        int n = 0;
        kv[n++] = "format", kv[n++] = NB_CHECKPOINT_FORMAT;
        snprintf(store[10], 32, "%lld", (long long)c->step);
        kv[n++] = "step", kv[n++] = store[10];
        if (c->optimizer) n += optimizer_metadata(c->optimizer, store, kv + n);
        for (int i = 0; i < extra; i++) kv[n++] = c->metadata[i];
        kv[n] = NULL;
        status = nb_safetensors_save(path, l.items, l.n, &(nb_save_options){.metadata = kv});
    }
    free(kv);
    list_free(&l);
    return within(fn, status);
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

nb_status nb_checkpoint_load(const char *path, nb_checkpoint *c) {
    const char *fn = "nb_checkpoint_load";
    NB_CHECK(c && c->model, NB_ERR_INVALID, "%s: %s is NULL", fn, c ? "checkpoint.model" : "checkpoint");
    NB_CHECK(c->n_generators >= 0 && (c->n_generators == 0 || c->generators), NB_ERR_INVALID,
             "%s: n_generators is %d with generators %s", fn, c->n_generators, c->generators ? "set" : "NULL");
    nb_safetensors *f;
    NB_TRY(within(fn, nb_safetensors_open(path, &f)));
    const char *format = nb_safetensors_metadata(f, "format");
    nb_status status = format && !strcmp(format, NB_CHECKPOINT_FORMAT)
                           ? NB_OK
                           : nb__error(NB_ERR_IO, "%s: %s is not a nabla checkpoint (its metadata's \"format\" is %s)",
                                       fn, path, format ? format : "missing");
    double step = 0;
    if (status == NB_OK) status = metadata_number(fn, path, f, "step", &step);
    if (status == NB_OK && c->optimizer) status = restore_hyper(fn, path, f, c->optimizer, false); /* checked first */
    named_list l = {0};
    if (status == NB_OK) status = add_module(&l, fn, c->model, "model.");
    if (status == NB_OK) status = load_named(fn, f, path, &l, "model.", NULL);
    if (status == NB_OK && c->optimizer) status = restore_optimizer(fn, path, f, c->optimizer, c->model);
    if (status == NB_OK) status = restore_generators(fn, path, f, c);
    if (status == NB_OK) c->step = (int64_t)step;
    list_free(&l);
    nb_safetensors_close(f);
    return within(fn, status);
}
