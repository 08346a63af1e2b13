/* nabla's CPython extension, nabla._C: the declarations its files share.
 *
 * A Tensor object owns one reference to an nb_tensor. Ops are bound through
 * tables, one per family in ops_*.c, that ops.c makes into op objects: each
 * entry names the Python function, its arguments and the adapter that
 * converts them and calls the C function, so binding a new op is one line. Errors of the C library become Python exceptions
 * with the library's message (nbp_raise). */
#ifndef NABLA_PYTHON_H
#define NABLA_PYTHON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <nabla/nabla.h>

/* ---- objects ---- */
typedef struct {
    PyObject_HEAD
    nb_tensor *t;
    PyObject *weakrefs;
} nbp_tensor;

typedef struct {
    PyObject_HEAD
    nb_dtype dtype;
    PyObject *name; /* "float32" */
} nbp_dtype;

typedef struct {
    PyObject_HEAD
    nb_device device;
} nbp_device;

typedef struct {
    PyObject_HEAD
    nb_generator *gen;
} nbp_generator;

extern PyTypeObject nbp_tensor_type, nbp_dtype_type, nbp_device_type, nbp_generator_type,
    nbp_op_type;

static inline bool nbp_is_tensor(PyObject *o) { return PyObject_TypeCheck(o, &nbp_tensor_type); }
static inline nb_tensor *nbp_t(PyObject *o) { return ((nbp_tensor *)o)->t; }

/* ---- conversions (module.c, tensor.c) ---- */
/* Wraps a new reference (steals it); NULL raises the C library's error. */
PyObject *nbp_wrap(nb_tensor *t);
/* Like nbp_wrap, into an object of type (a Tensor subclass). */
PyObject *nbp_wrap_as(PyTypeObject *type, nb_tensor *t);
/* Raises the exception of the C library's last error. */
PyObject *nbp_raise(void);
/* Raises the exception matching status with message. */
PyObject *nbp_raise_status(nb_status status, const char *message);
/* The cached dtype and device objects (borrowed). */
PyObject *nbp_dtype_object(nb_dtype dtype);
PyObject *nbp_device_object(nb_device device);

/* The dtype of a dtype object or a name ("float32", "f32", "float"); None
 * gives fallback. Returns -1 with a TypeError naming fn and arg. */
int nbp_dtype_arg(PyObject *o, nb_dtype fallback, const char *fn, const char *arg, nb_dtype *out);
/* A device object, "cpu", "cuda", "cuda:1" or an int (a GPU); None gives
 * fallback. */
int nbp_device_arg(PyObject *o, nb_device fallback, const char *fn, const char *arg,
                   nb_device *out);
/* A generator object, or None for the default one (NULL). */
int nbp_generator_arg(PyObject *o, const char *fn, nb_generator **out);
/* The tensor an argument holds (new reference): a Tensor, or a Python
 * number / nested list / numpy array converted (dtype like's for a number,
 * as PyTorch's scalars). */
nb_tensor *nbp_tensor_arg(PyObject *o, const nb_tensor *like, const char *fn, const char *arg);
/* A borrowed nb_tensor of a Tensor argument, else a TypeError; None gives
 * NULL without error when optional. */
int nbp_tensor_borrow(PyObject *o, bool optional, const char *fn, const char *arg, nb_tensor **out);
/* Sizes from a tuple, list, int or Tensor-free sequence; -1 with a TypeError. */
int nbp_int64s(PyObject *o, int max, const char *fn, const char *arg, int64_t *out);
int nbp_int64_arg(PyObject *o, const char *fn, const char *arg, int64_t *out);
int nbp_double_arg(PyObject *o, const char *fn, const char *arg, double *out);
/* None, an int or a tuple of ints: the dims of a reduction (0 of them for None). */
int nbp_dims(PyObject *o, const char *fn, const char *arg, int *dims);
/* A pair: an int (both) or a tuple of two; None gives NULL (the default). */
int nbp_pair(PyObject *o, const char *fn, const char *arg, int out[2], int **ptr);

/* A new tensor from Python data (number, nested lists, buffer), as
 * nb.tensor: dtype NB_DTYPE_COUNT infers it. */
nb_tensor *nbp_tensor_from_data(PyObject *data, nb_dtype dtype, nb_device device, const char *fn);
/* A tensor sharing a buffer's memory (numpy arrays): nb.from_numpy. */
nb_tensor *nbp_tensor_from_buffer(PyObject *obj, const char *fn);

/* ---- argument parsing for vectorcall ----
 * names lists the parameters (NULL-terminated); the first required of them
 * must be given. Fills out[i] with a borrowed object or NULL; rejects
 * unknown keywords, repeats and too many positionals with a TypeError
 * naming fn. */
int nbp_parse(const char *fn, const char *const *names, int required, PyObject *const *args,
              Py_ssize_t nargs, PyObject *kwnames, PyObject **out);

/* ---- the op table (ops.c, ops.h) ---- */
typedef struct nbp_op_def nbp_op_def;
typedef PyObject *(*nbp_adapter)(const nbp_op_def *def, PyObject **args);
struct nbp_op_def {
    const char *name;
    nbp_adapter call;
    void (*fn)(void);         /* the C function the adapter calls, or NULL */
    const char *params[10];   /* parameter names, NULL-terminated */
    int required;             /* how many of them must be given */
    unsigned where;           /* NBP_FUNCTION, NBP_METHOD or both */
    const char *doc;
    int setting;              /* what tells apart entries sharing an adapter */
};
enum { NBP_FUNCTION = 1, NBP_METHOD = 2, NBP_BOTH = 3 };

/* Adds the table's functions to module and its methods to Tensor. */
int nbp_ops_register(PyObject *module);
int nbp_ops_count(void);

/* ---- the rest of the bindings ---- */
int nbp_tensor_type_init(PyObject *module);
int nbp_index_get(PyObject *self, PyObject *key, PyObject **out);
int nbp_index_set(PyObject *self, PyObject *key, PyObject *value);
int nbp_nn_register(PyObject *module);
int nbp_dist_register(PyObject *module);
/* Calls the callables of _C._after_backward (a DDP's finish), once a
 * Tensor.backward has succeeded; -1 with their exception. */
int nbp_run_after_backward(void);

#endif
