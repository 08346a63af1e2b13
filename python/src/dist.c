/* The communicator, collectives, data parallelism and SyncBatchNorm of
 * include/nabla/dist.h as nabla._C.ProcessGroup, Work and DDP, and
 * _C.sync_batch_norm; nabla/distributed.py gives them torch.distributed's
 * names. A Work and a DDP hold references to their tensors and are users of
 * their group: destroying a group that still has users only closes it to new
 * calls, and its communicator is freed when the last user goes, so nothing
 * they use is freed under them. */
#include "pynabla.h"

typedef struct {
    PyObject_HEAD
    nb_comm *comm;
    int users;      /* the Works and DDPs over comm */
    bool destroyed; /* destroy() was called: no new calls */
} nbp_group;

typedef struct {
    PyObject_HEAD
    nb_dist_work *work;
    PyObject *group; /* a user of it */
    PyObject *keep;  /* the tensors the collective uses */
} nbp_work;

typedef struct {
    PyObject_HEAD
    nb_ddp *ddp;
    PyObject *group; /* a user of it */
    PyObject *keep;  /* the parameter and buffer Tensors */
} nbp_ddp;

static PyTypeObject group_type, work_type, ddp_type;

static nb_comm *comm_of(PyObject *self, const char *fn) {
    nbp_group *g = (nbp_group *)self;
    if (g->destroyed) PyErr_Format(PyExc_RuntimeError, "%s: the process group was destroyed", fn);
    return g->destroyed ? NULL : g->comm;
}

/* A new reference to group, counted as a user. */
static PyObject *group_use(PyObject *group) {
    ((nbp_group *)group)->users++;
    return Py_NewRef(group);
}

static void free_if_unused(nbp_group *g) {
    if (g->destroyed && g->users == 0) {
        nb_dist_free(g->comm);
        g->comm = NULL;
    }
}

/* Drops a user's reference (after its last use of the communicator). */
static void group_unuse(PyObject *group) {
    if (!group) return;
    ((nbp_group *)group)->users--;
    free_if_unused((nbp_group *)group);
    Py_DECREF(group);
}

/* ---- ProcessGroup ---- */

static PyObject *group_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"timeout", "unchecked", NULL};
    nb_comm_options options = {0};
    int unchecked = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|dp:ProcessGroup", kwlist, &options.timeout, &unchecked))
        return NULL;
    options.unchecked = unchecked;
    nbp_group *g = (nbp_group *)type->tp_alloc(type, 0);
    if (!g) return NULL;
    if (nb_dist_init(&options, &g->comm) != NB_OK) {
        nbp_raise();
        Py_DECREF(g);
        return NULL;
    }
    return (PyObject *)g;
}

static void group_dealloc(PyObject *self) {
    nb_dist_free(((nbp_group *)self)->comm);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *group_destroy(PyObject *self, PyObject *unused) {
    (void)unused;
    ((nbp_group *)self)->destroyed = true;
    free_if_unused((nbp_group *)self);
    Py_RETURN_NONE;
}

static PyObject *group_rank(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_comm *comm = comm_of(self, "get_rank");
    return comm ? PyLong_FromLong(nb_dist_rank(comm)) : NULL;
}

static PyObject *group_size(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_comm *comm = comm_of(self, "get_world_size");
    return comm ? PyLong_FromLong(nb_dist_world_size(comm)) : NULL;
}

static PyObject *group_local_rank(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_comm *comm = comm_of(self, "get_local_rank");
    return comm ? PyLong_FromLong(nb_dist_local_rank(comm)) : NULL;
}

static PyObject *group_barrier(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_comm *comm = comm_of(self, "barrier");
    if (!comm) return NULL;
    nb_status status;
    Py_BEGIN_ALLOW_THREADS
    status = nb_dist_barrier(comm);
    Py_END_ALLOW_THREADS
    if (status != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

/* None for a finished collective, else a Work holding what it uses. */
static PyObject *finish_collective(PyObject *group, nb_status status, nb_dist_work *work, PyObject *keep) {
    if (status != NB_OK) {
        nb_dist_work_free(work);
        return nbp_raise();
    }
    if (!work) Py_RETURN_NONE;
    nbp_work *w = PyObject_New(nbp_work, &work_type);
    if (!w) {
        nb_dist_work_free(work);
        return NULL;
    }
    w->work = work;
    w->group = group_use(group);
    w->keep = Py_NewRef(keep);
    return (PyObject *)w;
}

static int reduce_op_of(int op, const char *fn, nb_reduce_op *out) {
    if (op < NB_REDUCE_SUM || op > NB_REDUCE_PROD)
        return PyErr_Format(PyExc_ValueError, "%s: unknown reduce op %d", fn, op), -1;
    *out = (nb_reduce_op)op;
    return 0;
}

/* all_reduce(tensor, op=0, async_op=False): in place */
static PyObject *group_all_reduce(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"tensor", "op", "async_op", NULL};
    PyObject *t;
    int op = NB_REDUCE_SUM, async_op = 0;
    nb_reduce_op reduce;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|ip:all_reduce", kwlist, &nbp_tensor_type, &t, &op,
                                     &async_op) ||
        reduce_op_of(op, "all_reduce", &reduce) < 0)
        return NULL;
    nb_comm *comm = comm_of(self, "all_reduce");
    if (!comm) return NULL;
    nb_dist_work *work = NULL;
    nb_status status = nb_dist_all_reduce(comm, nbp_t(t), nbp_t(t), reduce, async_op ? &work : NULL);
    return finish_collective(self, status, work, args);
}

/* broadcast(tensor, src, async_op=False) */
static PyObject *group_broadcast(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"tensor", "src", "async_op", NULL};
    PyObject *t;
    int src, async_op = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!i|p:broadcast", kwlist, &nbp_tensor_type, &t, &src,
                                     &async_op))
        return NULL;
    nb_comm *comm = comm_of(self, "broadcast");
    if (!comm) return NULL;
    nb_dist_work *work = NULL;
    nb_status status = nb_dist_broadcast(comm, nbp_t(t), src, async_op ? &work : NULL);
    return finish_collective(self, status, work, args);
}

/* all_gather_into_tensor(output, input, async_op=False) and
 * reduce_scatter_tensor(output, input, op=0, async_op=False) */
static PyObject *group_all_gather(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"output", "input", "async_op", NULL};
    PyObject *out, *in;
    int async_op = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!|p:all_gather_into_tensor", kwlist, &nbp_tensor_type, &out,
                                     &nbp_tensor_type, &in, &async_op))
        return NULL;
    nb_comm *comm = comm_of(self, "all_gather_into_tensor");
    if (!comm) return NULL;
    nb_dist_work *work = NULL;
    nb_status status = nb_dist_all_gather(comm, nbp_t(in), nbp_t(out), async_op ? &work : NULL);
    return finish_collective(self, status, work, args);
}

static PyObject *group_reduce_scatter(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"output", "input", "op", "async_op", NULL};
    PyObject *out, *in;
    int op = NB_REDUCE_SUM, async_op = 0;
    nb_reduce_op reduce;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!|ip:reduce_scatter_tensor", kwlist, &nbp_tensor_type, &out,
                                     &nbp_tensor_type, &in, &op, &async_op) ||
        reduce_op_of(op, "reduce_scatter_tensor", &reduce) < 0)
        return NULL;
    nb_comm *comm = comm_of(self, "reduce_scatter_tensor");
    if (!comm) return NULL;
    nb_dist_work *work = NULL;
    nb_status status = nb_dist_reduce_scatter(comm, nbp_t(in), nbp_t(out), reduce, async_op ? &work : NULL);
    return finish_collective(self, status, work, args);
}

static PyMethodDef group_methods[] = {
    {"rank", group_rank, METH_NOARGS, "rank() -> int: this process's rank."},
    {"size", group_size, METH_NOARGS, "size() -> int: the number of processes."},
    {"local_rank", group_local_rank, METH_NOARGS, "local_rank() -> int: the rank among this machine's."},
    {"barrier", group_barrier, METH_NOARGS, "barrier(): waits until every rank has called it."},
    {"destroy", group_destroy, METH_NOARGS, "destroy(): frees the communicator (the last one ends MPI)."},
    {"all_reduce", (PyCFunction)(void (*)(void))group_all_reduce, METH_VARARGS | METH_KEYWORDS,
     "all_reduce(tensor, op=0, async_op=False): tensor = op over the ranks, in place."},
    {"broadcast", (PyCFunction)(void (*)(void))group_broadcast, METH_VARARGS | METH_KEYWORDS,
     "broadcast(tensor, src, async_op=False): tensor = rank src's tensor."},
    {"all_gather_into_tensor", (PyCFunction)(void (*)(void))group_all_gather, METH_VARARGS | METH_KEYWORDS,
     "all_gather_into_tensor(output, input, async_op=False): output = the inputs along dim 0."},
    {"reduce_scatter_tensor", (PyCFunction)(void (*)(void))group_reduce_scatter, METH_VARARGS | METH_KEYWORDS,
     "reduce_scatter_tensor(output, input, op=0, async_op=False): output = this rank's slice of op."},
    {NULL}};

static PyTypeObject group_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.ProcessGroup",
    .tp_basicsize = sizeof(nbp_group),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ProcessGroup(timeout=0, unchecked=False): every process of the MPI job (nb_dist_init).",
    .tp_new = group_new,
    .tp_dealloc = group_dealloc,
    .tp_methods = group_methods,
};

/* ---- Work ---- */

static void work_dealloc(PyObject *self) {
    nbp_work *w = (nbp_work *)self;
    nb_dist_work_free(w->work); /* waits if it still runs: its tensors are ours until then */
    group_unuse(w->group);
    Py_XDECREF(w->keep);
    PyObject_Free(self);
}

static PyObject *work_wait(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_status status;
    Py_BEGIN_ALLOW_THREADS
    status = nb_dist_wait(((nbp_work *)self)->work);
    Py_END_ALLOW_THREADS
    if (status != NB_OK) return nbp_raise();
    Py_RETURN_TRUE;
}

static PyObject *work_is_completed(PyObject *self, PyObject *unused) {
    (void)unused;
    bool done = false;
    if (nb_dist_test(((nbp_work *)self)->work, &done) != NB_OK) return nbp_raise();
    return PyBool_FromLong(done);
}

static PyMethodDef work_methods[] = {
    {"wait", work_wait, METH_NOARGS, "wait() -> True: blocks until the collective completed."},
    {"is_completed", work_is_completed, METH_NOARGS, "is_completed() -> bool: without blocking."},
    {NULL}};

static PyTypeObject work_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.distributed.Work",
    .tp_basicsize = sizeof(nbp_work),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A collective started with async_op=True.",
    .tp_dealloc = work_dealloc,
    .tp_methods = work_methods,
};

/* ---- DDP ---- */

/* (name, Tensor) pairs into named tensors (borrowed from the list). */
static int named_tensors(PyObject *list, const char *what, nb_named_tensor **out, int *n) {
    Py_ssize_t count = PyList_GET_SIZE(list);
    *out = PyMem_Calloc((size_t)(count ? count : 1), sizeof **out);
    if (!*out) return PyErr_NoMemory(), -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(list, i);
        const char *name;
        PyObject *t;
        if (!PyArg_ParseTuple(pair, "sO!", &name, &nbp_tensor_type, &t)) {
            PyErr_Format(PyExc_TypeError, "DDP: %s[%zd] must be a (name, Tensor) pair", what, i);
            return -1;
        }
        snprintf((*out)[i].name, sizeof (*out)[i].name, "%s", name);
        (*out)[i].tensor = nbp_t(t);
    }
    *n = (int)count;
    return 0;
}

/* DDP(group, params, buffers, bucket_mib=0, error_on_unused=False) */
static PyObject *ddp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"group", "params", "buffers", "bucket_mib", "error_on_unused", NULL};
    PyObject *group, *params, *buffers;
    nb_ddp_options options = {0};
    int error_on_unused = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!|dp:DDP", kwlist, &group_type, &group, &PyList_Type,
                                     &params, &PyList_Type, &buffers, &options.bucket_mib, &error_on_unused))
        return NULL;
    options.error_on_unused = error_on_unused;
    nb_comm *comm = comm_of(group, "DistributedDataParallel");
    if (!comm) return NULL;
    nb_named_tensor *p = NULL, *b = NULL;
    int n_p = 0, n_b = 0;
    nb_ddp *ddp = NULL;
    nb_status status = NB_OK;
    if (named_tensors(params, "params", &p, &n_p) == 0 && named_tensors(buffers, "buffers", &b, &n_b) == 0) {
        Py_BEGIN_ALLOW_THREADS
        status = nb_ddp_create_from_tensors(p, n_p, b, n_b, comm, &options, &ddp);
        Py_END_ALLOW_THREADS
    }
    PyMem_Free(p);
    PyMem_Free(b);
    if (PyErr_Occurred()) return NULL;
    if (status != NB_OK) return nbp_raise();
    nbp_ddp *d = (nbp_ddp *)type->tp_alloc(type, 0);
    if (!d) {
        nb_ddp_free(ddp);
        return NULL;
    }
    d->ddp = ddp;
    d->group = group_use(group);
    d->keep = Py_NewRef(args);
    return (PyObject *)d;
}

static void ddp_dealloc(PyObject *self) {
    nbp_ddp *d = (nbp_ddp *)self;
    nb_ddp_free(d->ddp);
    group_unuse(d->group);
    Py_XDECREF(d->keep);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *ddp_finish(PyObject *self, PyObject *unused) {
    (void)unused;
    nb_status status;
    Py_BEGIN_ALLOW_THREADS
    status = nb_ddp_finish(((nbp_ddp *)self)->ddp);
    Py_END_ALLOW_THREADS
    if (status != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

static PyObject *ddp_backward(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"loss", "gradient", NULL};
    PyObject *loss, *gradient = Py_None;
    nb_tensor *grad;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|O:backward", kwlist, &nbp_tensor_type, &loss, &gradient) ||
        nbp_tensor_borrow(gradient, true, "backward", "gradient", &grad) < 0)
        return NULL;
    if (nb_ddp_backward(((nbp_ddp *)self)->ddp, nbp_t(loss), grad) != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

static PyObject *ddp_set_sync(PyObject *self, PyObject *on) {
    int sync = PyObject_IsTrue(on);
    if (sync < 0) return NULL;
    nb_ddp_set_sync(((nbp_ddp *)self)->ddp, sync);
    Py_RETURN_NONE;
}

static PyObject *ddp_broadcast_buffers(PyObject *self, PyObject *unused) {
    (void)unused;
    if (nb_ddp_broadcast_buffers(((nbp_ddp *)self)->ddp) != NB_OK) return nbp_raise();
    Py_RETURN_NONE;
}

static PyObject *ddp_bucket_count(PyObject *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromLong(nb_ddp_bucket_count(((nbp_ddp *)self)->ddp));
}

static PyMethodDef ddp_methods[] = {
    {"finish", ddp_finish, METH_NOARGS, "finish(): after backward, the gradients become the ranks' average."},
    {"backward", (PyCFunction)(void (*)(void))ddp_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(loss, gradient=None): backward, unused parameters marked first, then finish()."},
    {"set_sync", ddp_set_sync, METH_O, "set_sync(on): False keeps gradients local (no_sync)."},
    {"broadcast_buffers", ddp_broadcast_buffers, METH_NOARGS, "broadcast_buffers(): rank 0's to every rank."},
    {"bucket_count", ddp_bucket_count, METH_NOARGS, "bucket_count() -> int"},
    {NULL}};

static PyTypeObject ddp_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nabla.DDP",
    .tp_basicsize = sizeof(nbp_ddp),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "DDP(group, params, buffers, bucket_mib=0, error_on_unused=False): nb_ddp over (name, Tensor) lists.",
    .tp_new = ddp_new,
    .tp_dealloc = ddp_dealloc,
    .tp_methods = ddp_methods,
};

/* sync_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, group) */
static PyObject *sync_batch_norm(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *x, *mean, *var, *weight, *bias, *group;
    int training;
    double momentum, eps;
    nb_tensor *m, *v, *w, *b;
    if (!PyArg_ParseTuple(args, "O!OOOOpddO!:sync_batch_norm", &nbp_tensor_type, &x, &mean, &var, &weight, &bias,
                          &training, &momentum, &eps, &group_type, &group) ||
        nbp_tensor_borrow(mean, true, "SyncBatchNorm", "running_mean", &m) < 0 ||
        nbp_tensor_borrow(var, true, "SyncBatchNorm", "running_var", &v) < 0 ||
        nbp_tensor_borrow(weight, true, "SyncBatchNorm", "weight", &w) < 0 ||
        nbp_tensor_borrow(bias, true, "SyncBatchNorm", "bias", &b) < 0)
        return NULL;
    nb_comm *comm = comm_of(group, "SyncBatchNorm");
    return comm ? nbp_wrap(nb_sync_batch_norm(nbp_t(x), m, v, w, b, training, momentum, eps, comm)) : NULL;
}

/* ---- after backward ---- */

static PyObject *after_backward; /* a list: DDP.finish of each forward since the last backward */

int nbp_run_after_backward(void) {
    if (!after_backward || PyList_GET_SIZE(after_backward) == 0) return 0;
    PyObject *callbacks = PySequence_List(after_backward); /* a callback may change the list */
    if (!callbacks) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(callbacks) && rc == 0; i++) {
        PyObject *r = PyObject_CallNoArgs(PyList_GET_ITEM(callbacks, i));
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_DECREF(callbacks);
    return rc;
}

static PyMethodDef dist_functions[] = {
    {"sync_batch_norm", sync_batch_norm, METH_VARARGS,
     "sync_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, group)"},
    {NULL}};

int nbp_dist_register(PyObject *module) {
    PyTypeObject *types[] = {&group_type, &work_type, &ddp_type};
    const char *names[] = {"ProcessGroup", "Work", "DDP"};
    for (int i = 0; i < 3; i++)
        if (PyType_Ready(types[i]) < 0 || PyModule_AddObjectRef(module, names[i], (PyObject *)types[i]) < 0)
            return -1;
    if (!(after_backward = PyList_New(0)) || PyModule_AddObjectRef(module, "_after_backward", after_backward) < 0)
        return -1;
    return PyModule_AddFunctions(module, dist_functions);
}
