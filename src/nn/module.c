/* The module object: named parameters, buffers and children, train/eval
 * mode, traversal, and Sequential. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

nb_module *nb__module_new(const char *type, nb_forward_fn forward) {
    nb_module *m = calloc(1, sizeof *m);
    if (!m) {
        nb__error(NB_ERR_OOM, "nb_nn: out of host memory for a %s", type);
        return NULL;
    }
    m->type = type;
    m->forward = forward;
    m->training = true;
    return m;
}

static bool add_slot(nb_module *m, bool param, const char *name, nb_tensor *t) {
    int *count = param ? &m->n_params : &m->n_buffers;
    if (!t || *count == NB_MODULE_SLOTS) {
        if (t) nb__error(NB_ERR_INTERNAL, "nb_nn: %s has too many tensors", m->type);
        nb_release(t);
        nb_module_free(m);
        return false;
    }
    if (param && nb_set_requires_grad(t, true) != NB_OK) {
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
    m->children = calloc((size_t)(n ? n : 1), sizeof *m->children);
    m->child_names = calloc((size_t)(n ? n : 1), sizeof *m->child_names);
    if (!m->children || !m->child_names) {
        for (int i = 0; i < n; i++) nb_module_free(children[i]);
        return nb__error(NB_ERR_OOM, "nb_nn: out of host memory for %d children", n);
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
    return m->forward(m, x);
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

int nb_module_parameters(const nb_module *m, nb_named_tensor *out, int max) {
    return m ? collect(m, true, "", out, max, 0) : 0;
}

int nb_module_buffers(const nb_module *m, nb_named_tensor *out, int max) {
    return m ? collect(m, false, "", out, max, 0) : 0;
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

nb_module *nb__sequential_named(const char *type, int n, nb_module *const *children,
                                const char *const *names) {
    bool complete = children != NULL || n == 0;
    for (int i = 0; i < n && complete; i++) complete = children[i] != NULL;
    if (n < 0 || !complete) {
        for (int i = 0; children && i < n; i++) nb_module_free(children[i]);
        if (nb_last_status() == NB_OK || n < 0)
            nb__error(NB_ERR_INVALID, "nb_nn_sequential: %d children, one of them NULL", n);
        return NULL;
    }
    nb_module *m = nb__module_new(type, sequential_forward);
    if (!m) {
        for (int i = 0; i < n; i++) nb_module_free(children[i]);
        return NULL;
    }
    if (nb__module_set_children(m, n, children, names) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_nn_sequential(int n, nb_module *const *children) {
    return nb__sequential_named("Sequential", n, children, NULL);
}
