/* The C optimizers as nabla._C.Optimizer (nabla.optim wraps it with
 * param_groups), gradient clipping, the initializers, safetensors files and
 * Fashion-MNIST. */
#include "pynabla.h"

#include "../../src/nn/nn.h" /* the optimizer's state, for state_dict */

typedef struct {
    PyObject_HEAD
    nb_optimizer *opt;
    PyObject *params; /* the list of Tensors, kept alive with the optimizer */
} nbp_optimizer;

static void optimizer_dealloc(PyObject *self) {
    nbp_optimizer *o = (nbp_optimizer *)self;
    nb_optimizer_free(o->opt);
    Py_XDECREF(o->params);
    Py_TYPE(self)->tp_free(self);
}

/* The tensors of the sequence o as a new list (kept by *list) and an array of
 * borrowed pointers (PyMem_Free it); a non-Tensor is a TypeError naming fn's arg. */
static int tensor_list(PyObject *o, const char *fn, const char *arg, PyObject **list, nb_tensor ***out,
                       int *n) {
    *list = PySequence_List(o);
    if (!*list) return -1;
    Py_ssize_t count = PyList_GET_SIZE(*list);
    if (count > INT32_MAX) {
        Py_CLEAR(*list);
        PyErr_Format(PyExc_ValueError, "%s: %zd %s are more than nabla takes (2^31 - 1)", fn, count, arg);
        return -1;
    }
    *out = PyMem_Malloc(sizeof **out * (size_t)(count ? count : 1));
    if (!*out) {
        Py_CLEAR(*list);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++)
        if (nbp_tensor_borrow(PyList_GET_ITEM(*list, i), false, fn, arg, &(*out)[i]) < 0) {
            PyMem_Free(*out);
            Py_CLEAR(*list);
            return -1;
        }
    *n = (int)count;
    return 0;
}

/* The options of the dict d (a group: "params" and C option names) into *o,
 * every number exact (a 0 stays 0); an unknown key is a ValueError. */
static int options_from_dict(PyObject *d, const char *fn, nb_optim_options *o) {
    *o = (nb_optim_options){0};
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &value)) {
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!name) return PyErr_Occurred() ? -1 : (PyErr_Format(PyExc_TypeError, "%s: option names are str", fn), -1);
        if (!strcmp(name, "params")) continue;
        int k = 0;
        while (k < NB_OPTIM_OPTIONS && strcmp(nb__optimizer_option_name(k), name)) k++;
        if (k == NB_OPTIM_OPTIONS) return PyErr_Format(PyExc_ValueError, "%s: unknown option '%s'", fn, name), -1;
        double v;
        if (nbp_double_arg(value, fn, name, &v) < 0) return -1;
        nb__optimizer_option_set(o, k, v);
    }
    return 0;
}

static int optimizer_kind(const char *name, nb_optimizer_kind *kind) {
    for (int k = 0; k < NB_OPTIM_KINDS; k++)
        if (!strcmp(name, nb__optimizer_kind_name(k))) return *kind = (nb_optimizer_kind)k, 0;
    PyErr_Format(PyExc_ValueError, "Optimizer: unknown kind '%s' (sgd, adam, adamw, adagrad, adadelta, rmsprop, "
                 "adamax, nadam, radam, lion, ftrl)", name);
    return -1;
}

/* The C groups of the list of dicts groups; their tensors are appended to
 * all (kept alive with the optimizer), each group's array into arrays. */
static int param_groups(PyObject *groups, PyObject *all, nb_param_group *out, nb_tensor ***arrays, Py_ssize_t n) {
    for (Py_ssize_t g = 0; g < n; g++) {
        PyObject *d = PyList_GET_ITEM(groups, g), *params = PyDict_Check(d) ? PyDict_GetItemString(d, "params") : NULL;
        if (!params)
            return PyErr_Format(PyExc_TypeError, "Optimizer: group %zd must be a dict with 'params'", g), -1;
        PyObject *list;
        if (tensor_list(params, "Optimizer", "params", &list, &arrays[g], &out[g].n) < 0) return -1;
        out[g].params = arrays[g];
        int bad = PyList_SetSlice(all, PyList_GET_SIZE(all), PyList_GET_SIZE(all), list);
        Py_DECREF(list);
        if (bad < 0 || options_from_dict(d, "Optimizer", &out[g].options) < 0) return -1;
    }
    return 0;
}

/* Optimizer(kind, groups): groups a list of dicts of "params" and options */
static PyObject *optimizer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"kind", "groups", NULL};
    const char *name;
    PyObject *groups;
    nb_optimizer_kind kind;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sO!:Optimizer", kwlist, &name, &PyList_Type, &groups) ||
        optimizer_kind(name, &kind) < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(groups);
    if (n > INT32_MAX) return PyErr_Format(PyExc_ValueError, "Optimizer: %zd groups are too many", n);
    nb_param_group *c_groups = PyMem_Calloc((size_t)(n ? n : 1), sizeof *c_groups);
    nb_tensor ***arrays = PyMem_Calloc((size_t)(n ? n : 1), sizeof *arrays);
    PyObject *all = PyList_New(0);
    nb_optimizer *opt = NULL;
    if (!c_groups || !arrays || !all) PyErr_NoMemory();
    else if (param_groups(groups, all, c_groups, arrays, n) == 0) opt = nb_optimizer_create(kind, c_groups, (int)n);
    for (Py_ssize_t g = 0; arrays && g < n; g++) PyMem_Free(arrays[g]);
    PyMem_Free(arrays);
    PyMem_Free(c_groups);
    nbp_optimizer *o = opt ? (nbp_optimizer *)type->tp_alloc(type, 0) : NULL;
    if (!o) {
        nb_optimizer_free(opt);
        Py_XDECREF(all);
        return PyErr_Occurred() ? NULL : nbp_raise();
    }
    o->opt = opt;
    o->params = all;
    return (PyObject *)o;
}

static PyObject *optimizer_step(PyObject *self, PyObject *unused) {
    (void)unused;
    if (nb_optimizer_step(((nbp_optimizer *)self)->opt) != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

static PyObject *optimizer_zero_grad(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_optimizer_zero_grad(((nbp_optimizer *)self)->opt);
    Py_RETURN_NONE;
}

/* set_options(g, dict): new options for group g */
static PyObject *optimizer_set_options(PyObject *self, PyObject *args) {
    int group;
    PyObject *d;
    nb_optim_options o;
    if (!PyArg_ParseTuple(args, "iO!:set_options", &group, &PyDict_Type, &d) ||
        options_from_dict(d, "Optimizer.set_options", &o) < 0)
        return NULL;
    if (nb_optimizer_set_options(((nbp_optimizer *)self)->opt, group, &o) != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

/* options(g) -> dict of every option of group g, the defaults filled in */
static PyObject *optimizer_options(PyObject *self, PyObject *arg) {
    long group = PyLong_AsLong(arg);
    nb_optim_options o;
    if (group == -1 && PyErr_Occurred()) return NULL;
    if (nb_optimizer_get_options(((nbp_optimizer *)self)->opt, group < INT32_MIN || group > INT32_MAX ? -1 : (int)group,
                                 &o) != NB_OK)
        return nbp_raise();
    PyObject *d = PyDict_New();
    for (int k = 0; d && k < NB_OPTIM_OPTIONS; k++) {
        PyObject *v = PyFloat_FromDouble(nb__optimizer_option_get(&o, k));
        if (!v || PyDict_SetItemString(d, nb__optimizer_option_name(k), v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

/* state(i) -> {'step': n, PyTorch's state names: Tensor copies, NAdam's 'mu_product'} */
static PyObject *optimizer_state(PyObject *self, PyObject *arg) {
    const nb_optimizer *opt = ((nbp_optimizer *)self)->opt;
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0 || i >= opt->n) return PyErr_Format(PyExc_IndexError, "Optimizer.state: no parameter %zd", i);
    PyObject *d = Py_BuildValue("{s:L}", "step", (long long)opt->steps[i]);
    if (d && opt->kind == NB_OPTIM_NADAM) {
        PyObject *mu = PyFloat_FromDouble(opt->mu_product[i]);
        if (!mu || PyDict_SetItemString(d, "mu_product", mu) < 0) Py_CLEAR(d);
        Py_XDECREF(mu);
    }
    for (int s = 0; d && s < NB_OPTIM_SLOTS; s++) {
        if (!opt->state[i][s]) continue;
        PyObject *t = nbp_wrap(nb_clone(opt->state[i][s]));
        if (!t || PyDict_SetItemString(d, nb__optimizer_slot_name(opt->kind, s), t) < 0) Py_CLEAR(d);
        Py_XDECREF(t);
    }
    return d;
}

/* The state tensor t (named name) as parameter i's slot: on its device, of
 * its state dtype and shape, contiguous; NULL with an exception. */
static nb_tensor *state_slot(const nb_optimizer *opt, Py_ssize_t i, const char *name, PyObject *t) {
    nb_tensor *src, *param = opt->params[i];
    if (nbp_tensor_borrow(t, false, "Optimizer.load_state_dict", name, &src) < 0) return NULL;
    if (nb_numel(src) != nb_numel(param)) {
        PyErr_Format(PyExc_ValueError, "Optimizer.load_state_dict: %s of parameter %zd has %lld elements, the "
                     "parameter %lld", name, i, (long long)nb_numel(src), (long long)nb_numel(param));
        return NULL;
    }
    nb_tensor *moved = nb_to(src, nb_device_of(param));
    nb_tensor *cast = moved ? nb_cast(moved, nb_dtype_of(param) == NB_F64 ? NB_F64 : NB_F32) : NULL;
    nb_release(moved);
    nb_tensor *shaped = cast ? nb_reshape(cast, nb_ndim(param), nb_shape(param)) : NULL;
    nb_release(cast);
    nb_tensor *own = shaped ? nb_contiguous(shaped) : NULL;
    nb_release(shaped);
    if (!own) nbp_raise();
    return own;
}

/* set_state(i, state): state()'s dict back, converted to the optimizer's state dtype */
static PyObject *optimizer_set_state(PyObject *self, PyObject *args) {
    nb_optimizer *opt = ((nbp_optimizer *)self)->opt;
    Py_ssize_t i;
    PyObject *state;
    if (!PyArg_ParseTuple(args, "nO!:set_state", &i, &PyDict_Type, &state)) return NULL;
    if (i < 0 || i >= opt->n) return PyErr_Format(PyExc_IndexError, "Optimizer.set_state: no parameter %zd", i);
    nb_tensor *loaded[NB_OPTIM_SLOTS] = {NULL};
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) {
        const char *name = nb__optimizer_slot_name(opt->kind, s);
        PyObject *t = name ? PyDict_GetItemString(state, name) : NULL;
        if (t && !(loaded[s] = state_slot(opt, i, name, t))) goto fail;
    }
    PyObject *step = PyDict_GetItemString(state, "step"), *mu = PyDict_GetItemString(state, "mu_product");
    long long steps = step ? PyLong_AsLongLong(step) : opt->steps[i];
    double mu_product = mu ? PyFloat_AsDouble(mu) : opt->mu_product[i];
    if (PyErr_Occurred()) goto fail;
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) {
        if (!loaded[s]) continue;
        nb_release(opt->state[i][s]);
        opt->state[i][s] = loaded[s];
    }
    opt->steps[i] = steps;
    opt->mu_product[i] = mu_product;
    Py_RETURN_NONE;
fail:
    for (int s = 0; s < NB_OPTIM_SLOTS; s++) nb_release(loaded[s]);
    return NULL;
}

static PyMethodDef optimizer_methods[] = {
    {"step", optimizer_step, METH_NOARGS, "step(): one update of every parameter with a gradient."},
    {"zero_grad", optimizer_zero_grad, METH_NOARGS, "zero_grad(): drops every parameter's gradient."},
    {"options", optimizer_options, METH_O, "options(g) -> dict: group g's options, the defaults filled in."},
    {"set_options", optimizer_set_options, METH_VARARGS, "set_options(g, dict): new options for group g."},
    {"state", optimizer_state, METH_O, "state(i) -> dict: parameter i's state (copies)."},
    {"set_state", optimizer_set_state, METH_VARARGS, "set_state(i, dict): restores state(i)'s dict."},
    {NULL}};

static PyTypeObject optimizer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla._C.Optimizer",
    .tp_basicsize = sizeof(nbp_optimizer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Optimizer(kind, groups): one of nabla's fused C optimizers ('sgd', 'adam', 'adamw', 'adagrad', "
              "'adadelta', 'rmsprop', 'adamax', 'nadam', 'radam', 'lion', 'ftrl') over groups, a list of dicts "
              "of 'params' and nb_optim_options fields (every number exact: 0 is 0). nabla.optim's classes "
              "wrap it.",
    .tp_new = optimizer_new,
    .tp_dealloc = optimizer_dealloc,
    .tp_methods = optimizer_methods,
};

/* ---- functions ---- */


static PyObject *py_clip_grad_norm(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *params, *list;
    double max_norm;
    nb_tensor **ts;
    int n;
    if (!PyArg_ParseTuple(args, "Od:clip_grad_norm_", &params, &max_norm) ||
        tensor_list(params, "clip_grad_norm_", "parameters", &list, &ts, &n) < 0)
        return NULL;
    PyObject *r = nbp_wrap(nb_clip_grad_norm(ts, n, max_norm));
    PyMem_Free(ts);
    Py_DECREF(list);
    return r;
}

static PyObject *py_clip_grad_value(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *params, *list;
    double clip_value;
    nb_tensor **ts;
    int n;
    if (!PyArg_ParseTuple(args, "Od:clip_grad_value_", &params, &clip_value) ||
        tensor_list(params, "clip_grad_value_", "parameters", &list, &ts, &n) < 0)
        return NULL;
    nb_status status = nb_clip_grad_value(ts, n, clip_value);
    PyMem_Free(ts);
    Py_DECREF(list);
    if (status != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

static PyObject *py_lr_warmup_cosine(PyObject *self, PyObject *args) {
    (void)self;
    long long step, warmup, total;
    double max_lr, min_lr;
    if (!PyArg_ParseTuple(args, "LLLdd:lr_warmup_cosine", &step, &warmup, &total, &max_lr, &min_lr))
        return NULL;
    return PyFloat_FromDouble(nb_lr_warmup_cosine(step, warmup, total, max_lr, min_lr));
}

/* ---- learning-rate schedules ---- */

/* A schedule from the dict d: "kind", the nb_lr_schedule fields by name,
 * "milestones" (a sequence of ints, into *milestones: PyMem_Free it) and "fn"
 * (a callable of the step giving the factor, borrowed from d). */
static double call_lambda(void *ctx, int64_t step) {
    PyObject *r = PyErr_Occurred() ? NULL : PyObject_CallFunction((PyObject *)ctx, "L", (long long)step);
    double v = r ? PyFloat_AsDouble(r) : NAN;
    Py_XDECREF(r);
    return PyErr_Occurred() ? NAN : v;
}

static int schedule_from_dict(PyObject *d, const char *fn, nb_lr_schedule *s, int64_t **milestones) {
    *s = (nb_lr_schedule){0};
    *milestones = NULL;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &value)) {
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!name) return PyErr_Occurred() ? -1 : (PyErr_Format(PyExc_TypeError, "%s: field names are str", fn), -1);
        if (!strcmp(name, "kind")) {
            const char *kind = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : NULL;
            int k = kind ? nb__lr_schedule_kind(kind) : -1;
            if (k < 0) return PyErr_Format(PyExc_ValueError, "%s: unknown schedule kind %R", fn, value), -1;
            s->kind = (nb_lr_schedule_kind)k;
        } else if (!strcmp(name, "fn")) {
            if (!PyCallable_Check(value)) return PyErr_Format(PyExc_TypeError, "%s: fn must be callable", fn), -1;
            s->fn = call_lambda, s->ctx = value;
        } else if (!strcmp(name, "milestones")) {
            Py_ssize_t count = PyObject_Length(value);
            if (count < 0 || count > INT32_MAX) return PyErr_Occurred() ? -1 : (PyErr_NoMemory(), -1);
            int64_t *m = PyMem_Malloc(sizeof *m * (size_t)(count + 1));
            int n = m ? nbp_int64s(value, (int)count, fn, "milestones", m) : (PyErr_NoMemory(), -1);
            if (n < 0) return PyMem_Free(m), -1;
            *milestones = m, s->milestones = m, s->n_milestones = n;
        } else {
            double v;
            if (nbp_double_arg(value, fn, name, &v) < 0) return -1;
            int r = nb__lr_schedule_set(s, name, v == 0 ? NB_OPTIM_ZERO : v);
            if (r == -1) return PyErr_Format(PyExc_ValueError, "%s: unknown schedule field '%s'", fn, name), -1;
            if (r == -2) return PyErr_Format(PyExc_ValueError, "%s: %s must be an integer, got %g", fn, name, v), -1;
        }
    }
    return 0;
}

/* lr_schedule_at(schedule, step, base_lr) -> the rate of step */
static PyObject *py_lr_schedule_at(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *d;
    long long step;
    double base, lr = 0;
    nb_lr_schedule s;
    int64_t *milestones;
    if (!PyArg_ParseTuple(args, "O!Ld:lr_schedule_at", &PyDict_Type, &d, &step, &base) ||
        schedule_from_dict(d, "lr_schedule_at", &s, &milestones) < 0)
        return NULL;
    nb_status status = nb_lr_schedule_at(&s, step, base, &lr);
    PyMem_Free(milestones);
    if (PyErr_Occurred()) return NULL; /* raised by fn */
    return status == NB_OK ? PyFloat_FromDouble(lr) : nbp_raise();
}

/* lr_one_cycle_momentum(schedule, step) -> the momentum of step */
static PyObject *py_lr_one_cycle_momentum(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *d;
    long long step;
    double m = 0;
    nb_lr_schedule s;
    int64_t *milestones;
    if (!PyArg_ParseTuple(args, "O!L:lr_one_cycle_momentum", &PyDict_Type, &d, &step) ||
        schedule_from_dict(d, "lr_one_cycle_momentum", &s, &milestones) < 0)
        return NULL;
    nb_status status = nb_lr_one_cycle_momentum(&s, step, &m);
    PyMem_Free(milestones);
    return status == NB_OK ? PyFloat_FromDouble(m) : nbp_raise();
}

/* lr_plateau_update(schedule, state, metric, lr) -> (lr, state); state a
 * (best, bad_steps, cooldown_left) tuple or None at first */
static PyObject *py_lr_plateau_update(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *d, *state_o;
    double metric, lr;
    nb_lr_schedule s;
    int64_t *milestones;
    nb_lr_plateau state = {0};
    if (!PyArg_ParseTuple(args, "O!Odd:lr_plateau_update", &PyDict_Type, &d, &state_o, &metric, &lr)) return NULL;
    long long bad = 0, cooldown = 0;
    if (state_o != Py_None && !PyArg_ParseTuple(state_o, "dLL:lr_plateau_update", &state.best, &bad, &cooldown))
        return NULL;
    state.bad_steps = bad, state.cooldown_left = cooldown, state.started = state_o != Py_None;
    if (schedule_from_dict(d, "lr_plateau_update", &s, &milestones) < 0) return NULL;
    nb_status status = nb_lr_plateau_update(&s, &state, metric, &lr);
    PyMem_Free(milestones);
    if (status != NB_OK) return nbp_raise();
    return Py_BuildValue("d(dLL)", lr, state.best, (long long)state.bad_steps, (long long)state.cooldown_left);
}

/* PyTorch's nonlinearity names for the gain ("linear" and the convolutions: 1) */
static int gain_kind(const char *name, nb_activation *kind) {
    static const struct { const char *name; int kind; } names[] = {
        {"linear", NB_INIT_LINEAR}, {"identity", NB_INIT_LINEAR}, {"conv1d", NB_INIT_LINEAR},
        {"conv2d", NB_INIT_LINEAR}, {"conv3d", NB_INIT_LINEAR}, {"conv_transpose1d", NB_INIT_LINEAR},
        {"conv_transpose2d", NB_INIT_LINEAR}, {"conv_transpose3d", NB_INIT_LINEAR}, {"sigmoid", NB_ACT_SIGMOID},
        {"tanh", NB_ACT_TANH}, {"relu", NB_ACT_RELU}, {"leaky_relu", NB_ACT_LEAKY_RELU}, {"selu", NB_ACT_SELU}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i].name)) return *kind = (nb_activation)names[i].kind, 0;
    PyErr_Format(PyExc_ValueError, "calculate_gain: unsupported nonlinearity '%s'", name);
    return -1;
}

/* calculate_gain(nonlinearity, param=None) -> float */
static PyObject *py_calculate_gain(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    PyObject *param_o = Py_None;
    double param = 0.01, gain; /* PyTorch's default slope */
    nb_activation kind;
    if (!PyArg_ParseTuple(args, "s|O:calculate_gain", &name, &param_o) || gain_kind(name, &kind) < 0 ||
        (param_o != Py_None && nbp_double_arg(param_o, "calculate_gain", "param", &param) < 0))
        return NULL;
    if (nb_init_gain(kind, param, &gain) != NB_OK) return nbp_raise();
    return PyFloat_FromDouble(gain);
}

static int fan_mode(const char *name, nb_fan_mode *mode) {
    if (!strcmp(name, "fan_in")) return *mode = NB_FAN_IN, 0;
    if (!strcmp(name, "fan_out")) return *mode = NB_FAN_OUT, 0;
    if (!strcmp(name, "fan_avg")) return *mode = NB_FAN_AVG, 0;
    PyErr_Format(PyExc_ValueError, "init_: mode must be 'fan_in', 'fan_out' or 'fan_avg', got '%s'", name);
    return -1;
}

static int distribution(const char *name, nb_init_distribution *d) {
    if (!strcmp(name, "normal") || !strcmp(name, "untruncated_normal")) return *d = NB_INIT_NORMAL, 0;
    if (!strcmp(name, "uniform")) return *d = NB_INIT_UNIFORM, 0;
    if (!strcmp(name, "truncated_normal")) return *d = NB_INIT_TRUNCATED_NORMAL, 0;
    PyErr_Format(PyExc_ValueError, "init_: distribution must be 'normal', 'uniform' or 'truncated_normal', got '%s'",
                 name);
    return -1;
}

/* init_(kind, tensor, a=0, b=0, generator=None, c=0, d=0, mode='fan_in',
 * distribution='normal', nonlinearity='leaky_relu'): in place, without
 * autograd; each kind reads its own (include/nabla/nn.h) */
static PyObject *py_init(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"kind", "tensor", "a", "b", "generator", "c", "d", "mode", "distribution",
                             "nonlinearity", NULL};
    const char *kind, *mode_name = "fan_in", *dist_name = "normal", *nonlin = "leaky_relu";
    PyObject *t_o, *gen_o = Py_None;
    double a = 0, b = 0, c = 0, d = 0;
    nb_generator *gen;
    nb_fan_mode mode;
    nb_init_distribution dist;
    nb_activation act;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sO!|ddOddsss:init_", kwlist, &kind, &nbp_tensor_type, &t_o, &a,
                                     &b, &gen_o, &c, &d, &mode_name, &dist_name, &nonlin) ||
        nbp_generator_arg(gen_o, "init_", &gen) < 0 || fan_mode(mode_name, &mode) < 0 ||
        distribution(dist_name, &dist) < 0 || gain_kind(nonlin, &act) < 0)
        return NULL;
    nb_tensor *t = nbp_t(t_o);
    nb_status status;
    if (!strcmp(kind, "kaiming_normal")) status = nb_init_kaiming_normal(t, (int64_t)a, gen);
    else if (!strcmp(kind, "normal")) status = nb_init_normal(t, a, b, gen);
    else if (!strcmp(kind, "constant")) status = nb_init_constant(t, a);
    else if (!strcmp(kind, "uniform")) status = nb_init_uniform(t, a, b, gen);
    else if (!strcmp(kind, "trunc_normal")) status = nb_init_trunc_normal(t, a, b, c, d, gen);
    else if (!strcmp(kind, "xavier")) status = nb_init_xavier(t, a, dist, gen);
    else if (!strcmp(kind, "kaiming")) {
        nb_kaiming_options o = {.a = a, .mode = mode, .nonlinearity = act, .distribution = dist};
        status = nb_init_kaiming(t, &o, gen);
    } else if (!strcmp(kind, "variance_scaling")) status = nb_init_variance_scaling(t, a, mode, dist, gen);
    else if (!strcmp(kind, "orthogonal")) status = nb_init_orthogonal(t, a, gen);
    else if (!strcmp(kind, "eye")) status = nb_init_eye(t);
    else if (!strcmp(kind, "dirac")) status = nb_init_dirac(t, (int64_t)a);
    else return PyErr_Format(PyExc_ValueError, "init_: unknown kind '%s'", kind);
    if (status != NB_OK) return nbp_raise();
    Py_INCREF(t_o);
    return t_o;
}

/* safetensors_save(path, [(name, tensor), ...], metadata=None) */
static PyObject *py_safetensors_save(PyObject *self, PyObject *args) {
    (void)self;
    const char *path;
    PyObject *items, *metadata = Py_None;
    if (!PyArg_ParseTuple(args, "sO|O:save", &path, &items, &metadata)) return NULL;
    PyObject *seq = PySequence_Fast(items, "save: expected (name, tensor) pairs");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), nmeta = metadata == Py_None ? 0 : PyDict_Size(metadata);
    nb_named_tensor *named = PyMem_Calloc((size_t)(n ? n : 1), sizeof *named);
    const char **meta = PyMem_Calloc((size_t)(2 * (nmeta > 0 ? nmeta : 0) + 1), sizeof *meta);
    PyObject *r = NULL;
    if (!named || !meta || nmeta < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        const char *name;
        PyObject *t;
        if (!PyArg_ParseTuple(pair, "sO!:save", &name, &nbp_tensor_type, &t)) goto done;
        if (strlen(name) >= sizeof named[i].name) {
            PyErr_Format(PyExc_ValueError, "save: the name '%.40s...' is longer than %zu bytes", name,
                         sizeof named[i].name - 1);
            goto done;
        }
        strcpy(named[i].name, name);
        named[i].tensor = nbp_t(t);
    }
    Py_ssize_t pos = 0, k = 0;
    PyObject *key, *value;
    while (nmeta > 0 && PyDict_Next(metadata, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "save: metadata keys and values must be strings");
            goto done;
        }
        meta[k++] = PyUnicode_AsUTF8(key);
        meta[k++] = PyUnicode_AsUTF8(value);
    }
    if (nb_safetensors_save(path, named, (int)n, &(nb_save_options){.metadata = meta}) != NB_OK) {
        nbp_raise();
        goto done;
    }
    r = Py_None;
    Py_INCREF(r);
done:
    PyMem_Free(named);
    PyMem_Free(meta);
    Py_DECREF(seq);
    return r;
}

/* safetensors_load(path, device=None) -> {name: Tensor} in the file's order */
static PyObject *py_safetensors_load(PyObject *self, PyObject *args) {
    (void)self;
    const char *path;
    PyObject *device_o = Py_None;
    nb_device device;
    if (!PyArg_ParseTuple(args, "s|O:load", &path, &device_o) ||
        nbp_device_arg(device_o, nb_cpu(), "load", "map_location", &device) < 0)
        return NULL;
    nb_safetensors *file;
    if (nb_safetensors_open(path, &file) != NB_OK) return nbp_raise();
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < nb_safetensors_count(file); i++) {
        const nb_safetensors_entry *e = nb_safetensors_entry_at(file, i);
        nb_tensor *t;
        if (nb_safetensors_get(file, e->name, device, &t) != NB_OK) {
            nbp_raise();
            Py_CLEAR(d);
            break;
        }
        PyObject *o = nbp_wrap(t);
        if (!o || PyDict_SetItemString(d, e->name, o) < 0) Py_CLEAR(d);
        Py_XDECREF(o);
    }
    nb_safetensors_close(file);
    return d;
}

static PyObject *py_fashion_mnist(PyObject *self, PyObject *args) {
    (void)self;
    const char *root = NULL;
    int train = 1;
    if (!PyArg_ParseTuple(args, "|zp:fashion_mnist", &root, &train)) return NULL;
    nb_tensor *images, *labels;
    if (nb_fashion_mnist_load(root, train, &images, &labels) != NB_OK) return nbp_raise();
    PyObject *x = nbp_wrap(images), *y = x ? nbp_wrap(labels) : (nb_release(labels), NULL);
    if (!y) {
        Py_XDECREF(x);
        return NULL;
    }
    return Py_BuildValue("(NN)", x, y);
}

static PyMethodDef nn_methods[] = {
    {"clip_grad_norm_", py_clip_grad_norm, METH_VARARGS,
     "clip_grad_norm_(parameters, max_norm) -> Tensor: scales the gradients to a global L2 norm of at "
     "most max_norm; returns the norm before."},
    {"clip_grad_value_", py_clip_grad_value, METH_VARARGS,
     "clip_grad_value_(parameters, clip_value) -> None: clamps every gradient element to "
     "[-clip_value, clip_value]."},
    {"lr_warmup_cosine", py_lr_warmup_cosine, METH_VARARGS,
     "lr_warmup_cosine(step, warmup_steps, total_steps, max_lr, min_lr) -> float: linear warmup, then "
     "a cosine down to min_lr."},
    {"lr_schedule_at", py_lr_schedule_at, METH_VARARGS,
     "lr_schedule_at(schedule, step, base_lr) -> float: the rate of step of a schedule given as a dict of "
     "'kind' ('constant', 'step', 'multi_step', 'exponential', 'linear', 'polynomial', 'cosine', "
     "'cosine_warm_restarts', 'one_cycle', 'lambda') and nb_lr_schedule's fields (0 is a literal 0)."},
    {"lr_one_cycle_momentum", py_lr_one_cycle_momentum, METH_VARARGS,
     "lr_one_cycle_momentum(schedule, step) -> float: a 'one_cycle' schedule's momentum at step."},
    {"lr_plateau_update", py_lr_plateau_update, METH_VARARGS,
     "lr_plateau_update(schedule, state, metric, lr) -> (lr, state): one metric of a 'plateau' schedule; "
     "state is None at first."},
    {"init_", (PyCFunction)(void (*)(void))py_init, METH_VARARGS | METH_KEYWORDS,
     "init_(kind, tensor, a=0, b=0, generator=None, c=0, d=0, mode='fan_in', distribution='normal', "
     "nonlinearity='leaky_relu'): in place; 'constant' (a), 'normal' (mean a, std b), 'uniform' [a, b), "
     "'trunc_normal' (mean a, std b on [c, d]), 'xavier' (gain a), 'kaiming' (slope a), 'kaiming_normal' "
     "(fan_in a), 'variance_scaling' (scale a), 'orthogonal' (gain a), 'eye', 'dirac' (groups a)."},
    {"calculate_gain", py_calculate_gain, METH_VARARGS,
     "calculate_gain(nonlinearity, param=None) -> float: PyTorch's recommended gains."},
    {"safetensors_save", py_safetensors_save, METH_VARARGS,
     "safetensors_save(path, items, metadata=None): writes (name, tensor) pairs atomically."},
    {"safetensors_load", py_safetensors_load, METH_VARARGS,
     "safetensors_load(path, device=None) -> dict: every tensor of a safetensors file."},
    {"fashion_mnist", py_fashion_mnist, METH_VARARGS,
     "fashion_mnist(root=None, train=True) -> (images, labels): normalized [N, 1, 28, 28] float32 and "
     "int64 labels."},
    {NULL}};

int nbp_nn_register(PyObject *module) {
    if (PyType_Ready(&optimizer_type) < 0 || PyModule_AddObjectRef(module, "Optimizer", (PyObject *)&optimizer_type) < 0)
        return -1;
    return PyModule_AddFunctions(module, nn_methods);
}
