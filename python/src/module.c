/* nabla._C: the module, its error mapping, the dtype, device and Generator
 * types, and the argument conversions every binding shares. */
#include "pynabla.h"

#include <string.h>

#include <structmember.h>

/* ---- errors ---- */

PyObject *nbp_raise_status(nb_status status, const char *message) {
    PyObject *type;
    switch (status) {
    case NB_ERR_INVALID:
    case NB_ERR_SHAPE:
    case NB_ERR_OVERFLOW: type = PyExc_ValueError; break;
    case NB_ERR_DTYPE: type = PyExc_TypeError; break;
    case NB_ERR_INDEX: type = PyExc_IndexError; break;
    case NB_ERR_OOM: type = PyExc_MemoryError; break;
    case NB_ERR_UNSUPPORTED: type = PyExc_NotImplementedError; break;
    default: type = PyExc_RuntimeError; break;
    }
    PyErr_SetString(type, message && *message ? message : "nabla: unknown error");
    return NULL;
}

PyObject *nbp_raise(void) {
    nb_status status = nb_last_status();
    PyObject *r = nbp_raise_status(status == NB_OK ? NB_ERR_INTERNAL : status, nb_last_error());
    nb_clear_error();
    return r;
}

/* ---- dtype objects ---- */

static const char *const dtype_names[NB_DTYPE_COUNT] = {
    [NB_F32] = "float32", [NB_F64] = "float64", [NB_F16] = "float16", [NB_BF16] = "bfloat16",
    [NB_I32] = "int32",   [NB_I64] = "int64",   [NB_U8] = "uint8",    [NB_BOOL] = "bool"};
/* PyTorch's other spellings of the same dtypes */
static const struct {
    const char *alias;
    nb_dtype dtype;
    bool exported; /* nabla.float is nabla.float32; "f32" is a string only (C's names) */
} dtype_aliases[] = {
    {"float", NB_F32, true}, {"double", NB_F64, true}, {"half", NB_F16, true},
    {"int", NB_I32, true},   {"long", NB_I64, true},   {"f32", NB_F32, false},
    {"f64", NB_F64, false},  {"f16", NB_F16, false},   {"bf16", NB_BF16, false},
    {"i32", NB_I32, false},  {"i64", NB_I64, false},   {"u8", NB_U8, false}};
static PyObject *dtype_objects[NB_DTYPE_COUNT];

PyObject *nbp_dtype_object(nb_dtype dtype) { return dtype_objects[dtype]; }

static PyObject *dtype_repr(PyObject *self) {
    return PyUnicode_FromFormat("nabla.%U", ((nbp_dtype *)self)->name);
}

static PyObject *dtype_get_itemsize(PyObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSize_t(nb_dtype_size(((nbp_dtype *)self)->dtype));
}

static PyObject *dtype_get_is_floating_point(PyObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(nb_dtype_is_float(((nbp_dtype *)self)->dtype));
}

static PyObject *dtype_reduce(PyObject *self, PyObject *unused) {
    (void)unused;
    Py_INCREF(((nbp_dtype *)self)->name);
    return ((nbp_dtype *)self)->name;
}

static PyGetSetDef dtype_getset[] = {
    {"itemsize", dtype_get_itemsize, NULL, "Bytes per element.", NULL},
    {"is_floating_point", dtype_get_is_floating_point, NULL, "True for the float dtypes.", NULL},
    {NULL}};
static PyMemberDef dtype_members[] = {
    {"name", T_OBJECT, offsetof(nbp_dtype, name), READONLY, "The dtype's name, as PyTorch's."},
    {NULL}};
static PyMethodDef dtype_methods[] = {{"__reduce__", dtype_reduce, METH_NOARGS, NULL}, {NULL}};

PyTypeObject nbp_dtype_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.dtype",
    .tp_basicsize = sizeof(nbp_dtype),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An element type: nabla.float32, float64, float16, bfloat16, int32, int64, uint8, bool.",
    .tp_repr = dtype_repr,
    .tp_str = dtype_repr,
    .tp_getset = dtype_getset,
    .tp_members = dtype_members,
    .tp_methods = dtype_methods,
};

static int dtype_from_name(const char *name, nb_dtype *out) {
    for (int d = 0; d < NB_DTYPE_COUNT; d++)
        if (!strcmp(name, dtype_names[d])) return *out = (nb_dtype)d, 0;
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof *dtype_aliases; i++)
        if (!strcmp(name, dtype_aliases[i].alias)) return *out = dtype_aliases[i].dtype, 0;
    return -1;
}

int nbp_dtype_arg(PyObject *o, nb_dtype fallback, const char *fn, const char *arg, nb_dtype *out) {
    if (!o || o == Py_None) return *out = fallback, 0;
    if (PyObject_TypeCheck(o, &nbp_dtype_type)) return *out = ((nbp_dtype *)o)->dtype, 0;
    if (PyUnicode_Check(o)) {
        const char *name = PyUnicode_AsUTF8(o);
        if (!name) return -1;
        if (!strncmp(name, "nabla.", 6)) name += 6;
        if (dtype_from_name(name, out) == 0) return 0;
        PyErr_Format(PyExc_TypeError, "%s: %s: unknown dtype '%s'", fn, arg, name);
        return -1;
    }
    if (o == (PyObject *)&PyFloat_Type) return *out = NB_F32, 0;
    if (o == (PyObject *)&PyLong_Type) return *out = NB_I64, 0;
    if (o == (PyObject *)&PyBool_Type) return *out = NB_BOOL, 0;
    PyErr_Format(PyExc_TypeError, "%s: %s must be a nabla.dtype, not %s", fn, arg,
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* ---- device objects ---- */

#define NBP_MAX_GPUS 64
static PyObject *cpu_object, *cuda_objects[NBP_MAX_GPUS];

static PyObject *device_new_object(nb_device device) {
    nbp_device *d = PyObject_New(nbp_device, &nbp_device_type);
    if (d) d->device = device;
    return (PyObject *)d;
}

PyObject *nbp_device_object(nb_device device) {
    if (device.type == NB_DEVICE_CPU) return cpu_object;
    if (device.index < 0 || device.index >= NBP_MAX_GPUS) return NULL;
    if (!cuda_objects[device.index]) cuda_objects[device.index] = device_new_object(device);
    return cuda_objects[device.index];
}

static int device_parse(const char *s, nb_device *out) {
    if (!strcmp(s, "cpu")) return *out = nb_cpu(), 0;
    if (!strcmp(s, "cuda")) return *out = nb_cuda(0), 0;
    if (!strncmp(s, "cuda:", 5) && s[5]) {
        char *end;
        long index = strtol(s + 5, &end, 10);
        if (*end || index < 0 || index >= NBP_MAX_GPUS) return -1;
        return *out = nb_cuda((int)index), 0;
    }
    return -1;
}

int nbp_device_arg(PyObject *o, nb_device fallback, const char *fn, const char *arg,
                   nb_device *out) {
    if (!o || o == Py_None) return *out = fallback, 0;
    if (PyObject_TypeCheck(o, &nbp_device_type)) return *out = ((nbp_device *)o)->device, 0;
    if (PyUnicode_Check(o)) {
        const char *s = PyUnicode_AsUTF8(o);
        if (!s) return -1;
        if (device_parse(s, out) == 0) return 0;
        PyErr_Format(PyExc_ValueError, "%s: %s: unknown device '%s' (expected 'cpu', 'cuda' or 'cuda:N')",
                     fn, arg, s);
        return -1;
    }
    if (PyLong_Check(o)) {
        long index = PyLong_AsLong(o);
        if (index >= 0 && index < NBP_MAX_GPUS) return *out = nb_cuda((int)index), 0;
        PyErr_Format(PyExc_ValueError, "%s: %s: no GPU %ld", fn, arg, index);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "%s: %s must be a nabla.device or a string, not %s", fn, arg,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static PyObject *device_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)type;
    PyObject *spec;
    PyObject *index = Py_None;
    static char *kwlist[] = {"type", "index", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:device", kwlist, &spec, &index)) return NULL;
    nb_device device;
    if (nbp_device_arg(spec, nb_cpu(), "nabla.device", "type", &device) < 0) return NULL;
    if (index != Py_None) {
        long i = PyLong_AsLong(index);
        if (i == -1 && PyErr_Occurred()) return NULL;
        if (device.type != NB_DEVICE_CUDA || i < 0 || i >= NBP_MAX_GPUS)
            return PyErr_Format(PyExc_ValueError, "nabla.device: index %ld is not valid here", i);
        device.index = (int)i;
    }
    PyObject *o = nbp_device_object(device);
    Py_XINCREF(o);
    return o;
}

static PyObject *device_str(PyObject *self) {
    char buf[32];
    return PyUnicode_FromString(nb_device_str(((nbp_device *)self)->device, buf, sizeof buf));
}

static PyObject *device_repr(PyObject *self) {
    nb_device d = ((nbp_device *)self)->device;
    if (d.type == NB_DEVICE_CPU) return PyUnicode_FromString("device(type='cpu')");
    return PyUnicode_FromFormat("device(type='cuda', index=%d)", d.index);
}

static PyObject *device_richcompare(PyObject *a, PyObject *b, int op) {
    if (!PyObject_TypeCheck(b, &nbp_device_type) || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    nb_device x = ((nbp_device *)a)->device, y = ((nbp_device *)b)->device;
    bool equal = x.type == y.type && x.index == y.index;
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static Py_hash_t device_hash(PyObject *self) {
    nb_device d = ((nbp_device *)self)->device;
    return (Py_hash_t)(d.type * 1000 + d.index + 1);
}

static PyObject *device_get_type(PyObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(((nbp_device *)self)->device.type == NB_DEVICE_CPU ? "cpu" : "cuda");
}

static PyObject *device_get_index(PyObject *self, void *closure) {
    (void)closure;
    nb_device d = ((nbp_device *)self)->device;
    if (d.type == NB_DEVICE_CPU) Py_RETURN_NONE;
    return PyLong_FromLong(d.index);
}

static PyGetSetDef device_getset[] = {
    {"type", device_get_type, NULL, "'cpu' or 'cuda'.", NULL},
    {"index", device_get_index, NULL, "The GPU's ordinal; None for the CPU.", NULL},
    {NULL}};

PyTypeObject nbp_device_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.device",
    .tp_basicsize = sizeof(nbp_device),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "device(type, index=None): where a tensor lives: device('cpu'), device('cuda:0').",
    .tp_new = device_tp_new,
    .tp_str = device_str,
    .tp_repr = device_repr,
    .tp_richcompare = device_richcompare,
    .tp_hash = device_hash,
    .tp_getset = device_getset,
};

/* ---- generators ---- */

static PyObject *generator_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"seed", NULL};
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|K:Generator", kwlist, &seed)) return NULL;
    nbp_generator *g = (nbp_generator *)type->tp_alloc(type, 0);
    if (!g) return NULL;
    g->gen = nb_generator_create(seed);
    if (!g->gen) {
        Py_DECREF(g);
        return PyErr_NoMemory();
    }
    return (PyObject *)g;
}

static void generator_dealloc(PyObject *self) {
    nb_generator_free(((nbp_generator *)self)->gen);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *generator_manual_seed(PyObject *self, PyObject *arg) {
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    nb_generator_seed(((nbp_generator *)self)->gen, seed);
    Py_INCREF(self);
    return self;
}

static PyObject *generator_initial_seed(PyObject *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromUnsignedLongLong(nb_generator_seed_of(((nbp_generator *)self)->gen));
}

static PyObject *generator_get_state(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_generator *g = ((nbp_generator *)self)->gen;
    return Py_BuildValue("(KK)", (unsigned long long)nb_generator_seed_of(g),
                         (unsigned long long)nb_generator_offset(g));
}

static PyObject *generator_set_state(PyObject *self, PyObject *arg) {
    unsigned long long seed, offset;
    if (!PyArg_ParseTuple(arg, "KK:set_state", &seed, &offset)) return NULL;
    nb_generator_set_state(((nbp_generator *)self)->gen, seed, offset);
    Py_RETURN_NONE;
}

static PyMethodDef generator_methods[] = {
    {"manual_seed", generator_manual_seed, METH_O, "manual_seed(seed): restarts the stream at seed."},
    {"initial_seed", generator_initial_seed, METH_NOARGS, "The seed of the stream."},
    {"get_state", generator_get_state, METH_NOARGS, "(seed, offset): the whole state."},
    {"set_state", generator_set_state, METH_O, "set_state((seed, offset)): restores get_state's."},
    {NULL}};

PyTypeObject nbp_generator_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.Generator",
    .tp_basicsize = sizeof(nbp_generator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Generator(seed=0): a counter-based (Philox) random stream, the same on every device.",
    .tp_new = generator_tp_new,
    .tp_dealloc = generator_dealloc,
    .tp_methods = generator_methods,
};

int nbp_generator_arg(PyObject *o, const char *fn, nb_generator **out) {
    if (!o || o == Py_None) return *out = NULL, 0;
    if (PyObject_TypeCheck(o, &nbp_generator_type)) return *out = ((nbp_generator *)o)->gen, 0;
    PyErr_Format(PyExc_TypeError, "%s: generator must be a nabla.Generator, not %s", fn,
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* ---- arguments ---- */

int nbp_parse(const char *fn, const char *const *names, int required, PyObject *const *args,
              Py_ssize_t nargs, PyObject *kwnames, PyObject **out) {
    int n = 0;
    while (names[n]) n++;
    if (nargs > n)
        return PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fn, n,
                            nargs),
               -1;
    for (int i = 0; i < n; i++) out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        /* a "*size" parameter is also size= */
        while (i < n && PyUnicode_CompareWithASCIIString(key, names[i] + (names[i][0] == '*'))) i++;
        if (i == n)
            return PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn,
                                key),
                   -1;
        if (out[i])
            return PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn,
                                names[i]),
                   -1;
        out[i] = args[nargs + k];
    }
    for (int i = 0; i < required; i++)
        if (!out[i])
            return PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn,
                                names[i]),
                   -1;
    return 0;
}

int nbp_int64_arg(PyObject *o, const char *fn, const char *arg, int64_t *out) {
    if (nbp_is_tensor(o) || PyFloat_Check(o) || !PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int, not %s", fn, arg, Py_TYPE(o)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: %s does not fit in 64 bits", fn, arg);
        }
        return -1;
    }
    *out = v;
    return 0;
}

int nbp_double_arg(PyObject *o, const char *fn, const char *arg, double *out) {
    if (nbp_is_tensor(o)) {
        if (nb_numel(nbp_t(o)) == 1 && nb_item(nbp_t(o), out) == NB_OK) return 0;
        nb_clear_error();
    } else if (PyFloat_Check(o) || PyLong_Check(o)) {
        *out = PyFloat_AsDouble(o);
        return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
    }
    PyErr_Format(PyExc_TypeError, "%s: %s must be a number, not %s", fn, arg, Py_TYPE(o)->tp_name);
    return -1;
}

int nbp_int64s(PyObject *o, int max, const char *fn, const char *arg, int64_t *out) {
    if (PyLong_Check(o)) return nbp_int64_arg(o, fn, arg, out) < 0 ? -1 : 1;
    if (!PyTuple_Check(o) && !PyList_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a tuple of ints, not %s", fn, arg,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    if (n > max) {
        PyErr_Format(PyExc_ValueError, "%s: %s has %zd entries, at most %d are allowed", fn, arg, n, max);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (nbp_int64_arg(PySequence_Fast_GET_ITEM(o, i), fn, arg, &out[i]) < 0) return -1;
    return (int)n;
}

int nbp_dims(PyObject *o, const char *fn, const char *arg, int *dims) {
    if (!o || o == Py_None) return 0;
    int64_t d[NB_MAX_DIMS];
    int n = nbp_int64s(o, NB_MAX_DIMS, fn, arg, d);
    for (int i = 0; i < n; i++) {
        if (d[i] < -NB_MAX_DIMS || d[i] >= NB_MAX_DIMS) {
            PyErr_Format(PyExc_IndexError, "%s: %s %lld is out of range", fn, arg, (long long)d[i]);
            return -1;
        }
        dims[i] = (int)d[i];
    }
    return n;
}

int nbp_pair(PyObject *o, const char *fn, const char *arg, int out[2], int **ptr) {
    *ptr = NULL;
    if (!o || o == Py_None) return 0;
    int64_t v[2];
    int n = nbp_int64s(o, 2, fn, arg, v);
    if (n < 0) return -1;
    if (n == 1) v[1] = v[0];
    else if (n != 2) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be an int or a pair of ints", fn, arg);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (v[i] < INT32_MIN || v[i] > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: %s %lld is out of range", fn, arg, (long long)v[i]);
            return -1;
        }
        out[i] = (int)v[i];
    }
    *ptr = out;
    return 0;
}

int nbp_tensor_borrow(PyObject *o, bool optional, const char *fn, const char *arg, nb_tensor **out) {
    *out = NULL;
    if (optional && (!o || o == Py_None)) return 0;
    if (o && nbp_is_tensor(o)) return *out = nbp_t(o), 0;
    PyErr_Format(PyExc_TypeError, "%s: %s must be a Tensor, not %s", fn, arg,
                 o ? Py_TYPE(o)->tp_name : "nothing");
    return -1;
}

/* The dtype a Python number takes beside a tensor of dtype like, as
 * PyTorch: a number of a higher category (bool < int < float) takes the
 * default of its category, else the tensor's dtype. */
static nb_dtype scalar_dtype(PyObject *o, nb_dtype like) {
    if (PyBool_Check(o)) return like;
    if (PyLong_Check(o)) return like == NB_BOOL ? NB_I64 : like;
    return nb_dtype_is_float(like) ? like : NB_F32;
}

nb_tensor *nbp_tensor_arg(PyObject *o, const nb_tensor *like, const char *fn, const char *arg) {
    if (nbp_is_tensor(o)) return nb_retain(nbp_t(o));
    if (PyFloat_Check(o) || PyLong_Check(o)) {
        double v = PyFloat_AsDouble(o);
        if (v == -1.0 && PyErr_Occurred()) return NULL;
        nb_dtype dtype = like ? scalar_dtype(o, nb_dtype_of(like))
                              : PyFloat_Check(o) ? NB_F32 : PyBool_Check(o) ? NB_BOOL : NB_I64;
        nb_tensor *t = nb_scalar(v, dtype, like ? nb_device_of(like) : nb_cpu());
        if (!t) nbp_raise();
        return t;
    }
    if (PyList_Check(o) || PyTuple_Check(o) || PyObject_CheckBuffer(o))
        return nbp_tensor_from_data(o, NB_DTYPE_COUNT, like ? nb_device_of(like) : nb_cpu(), fn);
    PyErr_Format(PyExc_TypeError, "%s: %s must be a Tensor or a number, not %s", fn, arg,
                 Py_TYPE(o)->tp_name);
    return NULL;
}

/* ---- module functions that are not ops ---- */

static PyObject *py_manual_seed(PyObject *self, PyObject *arg) {
    (void)self;
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    nb_manual_seed(seed);
    Py_RETURN_NONE;
}

static PyObject *py_set_grad_enabled(PyObject *self, PyObject *arg) {
    (void)self;
    int enabled = PyObject_IsTrue(arg);
    if (enabled < 0) return NULL;
    return PyBool_FromLong(nb_set_grad_enabled(enabled));
}

static PyObject *py_is_grad_enabled(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyBool_FromLong(nb_is_grad_enabled());
}

static PyObject *py_cuda_device_count(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyLong_FromLong(nb_cuda_device_count());
}

static PyObject *py_cuda_synchronize(PyObject *self, PyObject *args) {
    (void)self;
    int device = 0;
    if (!PyArg_ParseTuple(args, "|i:synchronize", &device)) return NULL;
    if (nb_cuda_synchronize(device) != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

static PyObject *py_cpu_memory_stats(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    nb_cpu_memory_stats s;
    nb_cpu_memory_stats_get(&s);
    return Py_BuildValue("{s:n,s:n}", "allocated", (Py_ssize_t)s.allocated, "peak_allocated",
                         (Py_ssize_t)s.peak_allocated);
}

static PyObject *py_use_deterministic_algorithms(PyObject *self, PyObject *arg) {
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    nb_use_deterministic_algorithms(on);
    Py_RETURN_NONE;
}

static PyObject *py_promote_types(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *a, *b;
    nb_dtype x, y;
    if (!PyArg_ParseTuple(args, "OO:promote_types", &a, &b)) return NULL;
    if (nbp_dtype_arg(a, NB_F32, "promote_types", "type1", &x) < 0 ||
        nbp_dtype_arg(b, NB_F32, "promote_types", "type2", &y) < 0)
        return NULL;
    PyObject *r = nbp_dtype_object(nb_promote_types(x, y));
    Py_INCREF(r);
    return r;
}

static PyMethodDef module_methods[] = {
    {"manual_seed", py_manual_seed, METH_O,
     "manual_seed(seed): restarts the default generator at seed."},
    {"set_grad_enabled", py_set_grad_enabled, METH_O,
     "set_grad_enabled(mode) -> bool: turns autograd recording on or off for this thread and "
     "returns the previous setting."},
    {"is_grad_enabled", py_is_grad_enabled, METH_NOARGS, "True when autograd records ops."},
    {"cuda_device_count", py_cuda_device_count, METH_NOARGS,
     "The GPUs this build can use (0 without CUDA or a GPU)."},
    {"cuda_synchronize", py_cuda_synchronize, METH_VARARGS,
     "cuda_synchronize(device=0): waits for the GPU's work."},
    {"cpu_memory_stats", py_cpu_memory_stats, METH_NOARGS,
     "{'allocated', 'peak_allocated'}: bytes CPU tensors hold now and at most."},
    {"use_deterministic_algorithms", py_use_deterministic_algorithms, METH_O,
     "use_deterministic_algorithms(mode): only algorithms that repeat bit for bit."},
    {"promote_types", py_promote_types, METH_VARARGS,
     "promote_types(type1, type2) -> dtype: the dtype a binary op of the two computes in."},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, .m_name = "nabla._C",
    .m_doc = "nabla's C library, bound for Python (the package nabla wraps it).", .m_size = -1,
    .m_methods = module_methods};

static int add_type(PyObject *m, PyTypeObject *type, const char *name) {
    if (PyType_Ready(type) < 0) return -1;
    Py_INCREF(type);
    return PyModule_AddObject(m, name, (PyObject *)type);
}

static int add_dtypes(PyObject *m) {
    for (int d = 0; d < NB_DTYPE_COUNT; d++) {
        nbp_dtype *o = PyObject_New(nbp_dtype, &nbp_dtype_type);
        if (!o) return -1;
        o->dtype = (nb_dtype)d;
        o->name = PyUnicode_FromString(dtype_names[d]);
        if (!o->name) return -1;
        dtype_objects[d] = (PyObject *)o;
        Py_INCREF(o);
        if (PyModule_AddObject(m, dtype_names[d], (PyObject *)o) < 0) return -1;
    }
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof *dtype_aliases; i++) {
        if (!dtype_aliases[i].exported) continue;
        PyObject *o = dtype_objects[dtype_aliases[i].dtype];
        Py_INCREF(o);
        if (PyModule_AddObject(m, dtype_aliases[i].alias, o) < 0) return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__C(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (add_type(m, &nbp_dtype_type, "dtype") < 0 || add_type(m, &nbp_device_type, "device") < 0 ||
        add_type(m, &nbp_generator_type, "Generator") < 0 || add_dtypes(m) < 0)
        goto fail;
    cpu_object = device_new_object(nb_cpu());
    if (!cpu_object || nbp_tensor_type_init(m) < 0 || nbp_ops_register(m) < 0 ||
        nbp_nn_register(m) < 0 || nbp_dist_register(m) < 0)
        goto fail;
    if (PyModule_AddIntConstant(m, "ops_bound", nbp_ops_count()) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
