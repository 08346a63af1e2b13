/* The module object: named parameters, buffers and children, train/eval
 * mode, traversal, and Sequential. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

nb_module *nb__module_new(const char *type, const char *fn, nb_forward_fn forward) {
    nb_module *m = nb__calloc(1, sizeof *m);
    if (!m) {
        nb__error(NB_ERR_OOM, "%s: out of host memory for a %s", fn, type);
        return NULL;
    }
    m->type = type;
    m->fn = fn;
    m->forward = forward;
    m->training = true;
    return m;
}

static bool add_slot(nb_module *m, bool param, const char *name, nb_tensor *t) {
    int *count = param ? &m->n_params : &m->n_buffers;
    if (!t || *count == NB_MODULE_SLOTS) {
        if (t) nb__error(NB_ERR_INTERNAL, "%s: a %s has too many tensors", m->fn, m->type);
        else if (strncmp(nb_last_error(), m->fn, strlen(m->fn)) != 0)
            nb__error(nb_last_status(), "%s: %s %s: %s", m->fn, param ? "parameter" : "buffer",
                      name, nb_last_error());
        nb_release(t);
        nb_module_free(m);
        return false;
    }
    if (param && nb_set_requires_grad(t, true) != NB_OK) { /* cannot fail for a new float leaf */
        nb_release(t);
        nb_module_free(m);
        return false;
    }
    snprintf(param ? m->param_names[*count] : m->buffer_names[*count], 24, "%s", name);
    (param ? m->params : m->buffers)[(*count)++] = t;
    return true;
}

bool nb__module_add_param(nb_module *m, const char *name, nb_tensor *t) {
    return add_slot(m, true, name, t);
}

bool nb__module_add_buffer(nb_module *m, const char *name, nb_tensor *t) {
    return add_slot(m, false, name, t);
}

nb_status nb__module_set_children(nb_module *m, int n, nb_module *const *children,
                                  const char *const *names) {
    m->children = nb__calloc((size_t)(n ? n : 1), sizeof *m->children);
    m->child_names = nb__calloc((size_t)(n ? n : 1), sizeof *m->child_names);
    if (!m->children || !m->child_names) {
        for (int i = 0; i < n; i++) nb_module_free(children[i]);
        return nb__error(NB_ERR_OOM, "%s: out of host memory for %d children", m->fn, n);
    }
    for (int i = 0; i < n; i++) {
        m->children[i] = children[i];
        if (names) snprintf(m->child_names[i], sizeof m->child_names[i], "%s", names[i]);
        else snprintf(m->child_names[i], sizeof m->child_names[i], "%d", i);
    }
    m->n_children = n;
    return NB_OK;
}

static nb_tensor *find(const char (*names)[24], nb_tensor *const *tensors, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return tensors[i];
    return NULL;
}

nb_tensor *nb__module_param(const nb_module *m, const char *name) {
    return find(m->param_names, m->params, m->n_params, name);
}

nb_tensor *nb__module_buffer(const nb_module *m, const char *name) {
    return find(m->buffer_names, m->buffers, m->n_buffers, name);
}

nb_tensor *nb_module_forward(nb_module *m, const nb_tensor *x) {
    if (!m || !x) {
        nb__error(NB_ERR_INVALID, "nb_module_forward: %s is NULL", m ? "x" : "module");
        return NULL;
    }
    const char *outer = nb__enter("nb_module_forward");
    nb_tensor *y = m->forward(m, x);
    nb__leave(outer);
    return y;
}

void nb_module_train(nb_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++) nb_module_train(m->children[i], training);
}

bool nb_module_is_training(const nb_module *m) { return m && m->training; }

const char *nb_module_type(const nb_module *m) { return m ? m->type : "?"; }

/* Visits the parameters (or buffers) of m and its children in order,
 * writing up to max named entries; returns how many there are. */
static int collect(const nb_module *m, bool params, const char *prefix, nb_named_tensor *out,
                   int max, int count) {
    int n = params ? m->n_params : m->n_buffers;
    for (int i = 0; i < n; i++, count++) {
        if (count >= max || !out) continue;
        snprintf(out[count].name, sizeof out[count].name, "%s%s", prefix,
                 params ? m->param_names[i] : m->buffer_names[i]);
        out[count].tensor = params ? m->params[i] : m->buffers[i];
    }
    for (int c = 0; c < m->n_children; c++) {
        char path[128];
        snprintf(path, sizeof path, "%s%s.", prefix, m->child_names[c]);
        count = collect(m->children[c], params, path, out, max, count);
    }
    return count;
}

/* -1 (and an error) for a NULL module or a negative max. */
static int named_tensors(const char *fn, const nb_module *m, bool params, nb_named_tensor *out,
                         int max) {
    if (!m || max < 0 || (max > 0 && !out)) {
        nb__error(NB_ERR_INVALID, "%s: needs a module and room for max >= 0 entries, got %s, %s "
                  "and max %d", fn, m ? "a module" : "NULL", out ? "an array" : "NULL", max);
        return -1;
    }
    return collect(m, params, "", out, max, 0);
}

int nb_module_parameters(const nb_module *m, nb_named_tensor *out, int max) {
    return named_tensors("nb_module_parameters", m, true, out, max);
}

int nb_module_buffers(const nb_module *m, nb_named_tensor *out, int max) {
    return named_tensors("nb_module_buffers", m, false, out, max);
}

void nb_module_free(nb_module *m) {
    if (!m) return;
    for (int i = 0; i < m->n_params; i++) nb_release(m->params[i]);
    for (int i = 0; i < m->n_buffers; i++) nb_release(m->buffers[i]);
    nb_release(m->cache.k);
    nb_release(m->cache.v);
    for (int i = 0; i < m->n_children; i++) nb_module_free(m->children[i]);
    free(m->children);
    free(m->child_names);
    free(m);
}

/* ---- Sequential ---- */

static nb_tensor *sequential_forward(nb_module *m, const nb_tensor *x) {
    nb_tensor *h = nb_retain((nb_tensor *)x);
    for (int i = 0; i < m->n_children && h; i++) {
        nb_tensor *next = nb_module_forward(m->children[i], h);
        nb_release(h);
        h = next;
    }
    return h;
}

/* Frees each distinct child once. */
static void free_children(int n, nb_module *const *children) {
    for (int i = 0; children && i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = children[j] == children[i];
        if (!seen) nb_module_free(children[i]);
    }
}

/* Why children cannot be a module's, or NB_OK. */
static nb_status check_children(const char *fn, int n, nb_module *const *children) {
    NB_CHECK(n >= 0 && (n == 0 || children), NB_ERR_INVALID,
             "%s: needs n >= 0 children, got %s with n = %d", fn, children ? "an array" : "NULL", n);
    for (int i = 0; i < n; i++) {
        /* NULL from a failed constructor, probably: keep what it said */
        bool failed = nb_last_status() != NB_OK;
        NB_CHECK(children[i], failed ? nb_last_status() : NB_ERR_INVALID,
                 "%s: child %d of %d is NULL%s%s%s", fn, i, n, failed ? " (the last error: " : "",
                 failed ? nb_last_error() : "", failed ? ")" : "");
        for (int j = 0; j < i; j++)
            NB_CHECK(children[j] != children[i], NB_ERR_INVALID,
                     "%s: children %d and %d are the same module (a module has one parent; make "
                     "two)", fn, j, i);
    }
    return NB_OK;
}

nb_module *nb__sequential_named(const char *type, const char *fn, int n,
                                nb_module *const *children, const char *const *names) {
    if (check_children(fn, n, children) != NB_OK) {
        free_children(n, children);
        return NULL;
    }
    nb_module *m = nb__module_new(type, fn, sequential_forward);
    if (!m) {
        free_children(n, children);
        return NULL;
    }
    if (nb__module_set_children(m, n, children, names) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_nn_sequential(int n, nb_module *const *children) {
    return nb__sequential_named("Sequential", "nb_nn_sequential", n, children, NULL);
}
