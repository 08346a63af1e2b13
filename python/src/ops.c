/* The op table: every function of nabla's C API that Python sees as
 * nabla.<name>(...) or Tensor.<name>(...), each one entry (name, adapter, C
 * function, parameters, docstring). An entry becomes an op object: a
 * vectorcall callable that is also a method descriptor, so x.exp() and
 * nabla.exp(x) are the same call without a bound-method object. The
 * adapters convert the parsed arguments (PyTorch's names and conventions)
 * and call the C function.
 *
 * The entries live by family in ops_math.c, ops_nn.c, ops_shape.c,
 * ops_create.c and ops_tensor.c. */
#include "ops.h"

typedef struct {
    PyObject_HEAD
    const nbp_op_def *def;
    vectorcallfunc vectorcall;
} nbp_op;

static const nbp_op_def *const tables[] = {nbp_math_ops, nbp_nn_ops, nbp_shape_ops, nbp_create_ops,
                                            nbp_tensor_ops};
#define N_TABLES ((int)(sizeof tables / sizeof *tables))

int nbp_ops_count(void) {
    int n = 0;
    for (int t = 0; t < N_TABLES; t++)
        for (const nbp_op_def *def = tables[t]; def->name; def++) n++;
    return n;
}

/* ---- the op object ---- */

static PyObject *empty_tuple; /* a *size given nothing */

/* The index of def's "*name" parameter, or -1. */
static int star_param(const nbp_op_def *def) {
    for (int i = 0; def->params[i]; i++)
        if (def->params[i][0] == '*') return i;
    return -1;
}

static PyObject *op_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    const nbp_op_def *def = ((nbp_op *)callable)->def;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *slots[10];
    int star = star_param(def);
    if (star < 0 || nargs <= star) {
        if (nbp_parse(def->name, def->params, def->required, args, nargs, kwnames, slots) < 0) return NULL;
        if (star >= 0 && !slots[star]) slots[star] = empty_tuple;
        return def->call(def, slots);
    }
    /* the positionals from *name on become one tuple */
    PyObject *packed = PyTuple_New(nargs - star);
    if (!packed) return NULL;
    for (Py_ssize_t i = star; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(packed, i - star, args[i]);
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *rebuilt[16];
    if (star + 1 + nkw > 16) {
        Py_DECREF(packed);
        return PyErr_Format(PyExc_TypeError, "%s() got too many arguments", def->name);
    }
    for (int i = 0; i < star; i++) rebuilt[i] = args[i];
    rebuilt[star] = packed;
    for (Py_ssize_t k = 0; k < nkw; k++) rebuilt[star + 1 + k] = args[nargs + k];
    PyObject *r = NULL;
    if (nbp_parse(def->name, def->params, def->required, rebuilt, star + 1, kwnames, slots) == 0)
        r = def->call(def, slots);
    Py_DECREF(packed);
    return r;
}

/* A method: bound to the instance, as Python functions are. */
static PyObject *op_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (!obj) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *op_repr(PyObject *self) {
    return PyUnicode_FromFormat("<nabla op %s>", ((nbp_op *)self)->def->name);
}

static PyObject *op_get_doc(PyObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(((nbp_op *)self)->def->doc);
}

static PyObject *op_get_name(PyObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(((nbp_op *)self)->def->name);
}

static PyGetSetDef op_getset[] = {{"__doc__", op_get_doc, NULL, NULL, NULL},
                                  {"__name__", op_get_name, NULL, NULL, NULL},
                                  {"__qualname__", op_get_name, NULL, NULL, NULL},
                                  {NULL}};

PyTypeObject nbp_op_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.op",
    .tp_basicsize = sizeof(nbp_op),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(nbp_op, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = op_descr_get,
    .tp_repr = op_repr,
    .tp_getset = op_getset,
};
static int add_op(PyObject *module, const nbp_op_def *def) {
    nbp_op *op = PyObject_New(nbp_op, &nbp_op_type);
    if (!op) return -1;
    op->def = def;
    op->vectorcall = op_vectorcall;
    int rc = 0;
    if (def->where & NBP_FUNCTION) rc = PyModule_AddObjectRef(module, def->name, (PyObject *)op);
    if (rc == 0 && (def->where & NBP_METHOD))
        rc = PyDict_SetItemString(nbp_tensor_type.tp_dict, def->name, (PyObject *)op);
    Py_DECREF(op);
    return rc;
}

int nbp_ops_register(PyObject *module) {
    if (PyType_Ready(&nbp_op_type) < 0 || !(empty_tuple = PyTuple_New(0))) return -1;
    if (nbp_return_types_init() < 0) return -1;
    for (int t = 0; t < N_TABLES; t++)
        for (const nbp_op_def *def = tables[t]; def->name; def++)
            if (add_op(module, def) < 0) return -1;
    PyType_Modified(&nbp_tensor_type);
    return 0;
}
