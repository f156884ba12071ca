/* ServerCore: a libtapio server for tapio's asyncio Server. Each accepted
 * connection gets a protocol from protocol_factory and a Transport. */
#include "binding.h"

static const tapio_protocol *accept_factory(tapio_server *server, void *arg,
                                            void **user)
{
    (void)server;
    ServerCore *self = arg;
    /* Each connection runs in its own copy of the server's context, the
     * factory too (as in asyncio, where each is a task of its own). */
    bool entered = true; /* for binding_leave, which also drops ctx */
    PyObject *ctx = PyContext_Copy(self->context);
    if (!ctx || PyContext_Enter(ctx) < 0) {
        Py_XDECREF(ctx);
        ctx = NULL;
    }
    PyObject *protocol = ctx ? PyObject_CallNoArgs(self->protocol_factory)
                             : NULL;
    Transport *t = protocol ? transport_new(self->loop, protocol, NULL, Py_None,
                                            ctx)
                            : NULL;
    Py_XDECREF(protocol);
    const tapio_protocol *table = t ? transport_table(t) : NULL;
    if (!table) {
        PyObject *exc = binding_fetch_exception();
        if (exc && binding_is_exit_exception(exc)) {
            binding_restore_exception(exc);
            loop_core_set_pending(self->loop);
        } else if (exc && self->loop->debug) { /* asyncio: debug mode only */
            binding_report(self->loop,
                           "Error on transport creation for incoming "
                           "connection",
                           exc, NULL, NULL);
            Py_DECREF(exc);
        }
        Py_XDECREF(t);
        binding_leave(ctx, &entered);
        return NULL; /* libtapio closes the connection */
    }
    binding_leave(ctx, &entered);
    t->server = (ServerCore *)Py_NewRef((PyObject *)self);
    transport_attach(t); /* libtapio's reference until connection_lost */
    *user = t;
    Py_DECREF(t);
    return table;
}

PyObject *server_core_new(LoopCore *loop, PyObject *args)
{
    PyObject *owner, *fds, *factory, *make_extra;
    int backlog, start;
    if (!PyArg_ParseTuple(args, "OOOOip", &owner, &fds, &factory, &make_extra,
                          &backlog, &start))
        return NULL;
    Py_ssize_t n = PySequence_Size(fds);
    if (n <= 0)
        return n < 0 ? NULL
                     : PyErr_Format(PyExc_ValueError, "no sockets to serve");
    int *fdv = PyMem_Calloc((size_t)n, sizeof(int));
    if (!fdv)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(fds, i);
        fdv[i] = item ? PyLong_AsLong(item) : -1;
        Py_XDECREF(item);
        if (PyErr_Occurred()) {
            PyMem_Free(fdv);
            return NULL;
        }
    }
    /* asyncio's accept loop runs in a copy of the context current when
     * serving starts, which is now. */
    PyObject *context = PyContext_CopyCurrent();
    ServerCore *self = context ? PyObject_GC_New(ServerCore,
                                                 loop->state->ServerCoreType)
                               : NULL;
    if (!self) {
        Py_XDECREF(context);
        PyMem_Free(fdv);
        return NULL;
    }
    self->context = context;
    self->loop = (LoopCore *)Py_NewRef((PyObject *)loop);
    self->server = NULL;
    self->protocol_factory = Py_NewRef(factory);
    self->make_extra = Py_NewRef(make_extra);
    self->on_closed = NULL;
    /* Like asyncio's, a serving server lives on without user references. */
    self->owner = Py_NewRef(owner);
    PyObject_GC_Track(self);
    tapio_server_options opts = {.backlog = backlog,
                                 .no_start_serving = !start};
    int err = tapio_server_from_fds(loop->loop, fdv, (size_t)n, &opts,
                                    accept_factory, self, &self->server);
    PyMem_Free(fdv);
    if (err || PySet_Add(loop->servers, (PyObject *)self) < 0) {
        Py_DECREF(self);
        if (err) {
            errno = -err;
            PyErr_SetFromErrno(PyExc_OSError);
        }
        return NULL;
    }
    return (PyObject *)self;
}

static bool check_server(ServerCore *self)
{
    if (self->server)
        return true;
    PyErr_SetString(PyExc_RuntimeError, "server is closed");
    return false;
}

static PyObject *server_start_serving(ServerCore *self, PyObject *unused)
{
    (void)unused;
    if (!check_server(self))
        return NULL;
    int err = tapio_server_start_serving(self->server);
    if (err) {
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *server_is_serving(ServerCore *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->server &&
                           tapio_server_is_serving(self->server));
}

/* The connections this server accepted that libtapio still holds (for
 * Server.close_clients/abort_clients). */
static PyObject *server_clients(ServerCore *self, PyObject *unused)
{
    (void)unused;
    PyObject *clients = PyList_New(0);
    Transport *head = &self->loop->open_transports;
    for (Transport *t = head->next; clients && t != head; t = t->next) {
        if (t->server == self && PyList_Append(clients, (PyObject *)t) < 0)
            Py_CLEAR(clients);
    }
    return clients;
}

/* libtapio: closed, and the last accepted connection is gone. */
static void server_closed(tapio_loop *loop, void *arg)
{
    (void)loop;
    ServerCore *self = arg;
    PyObject *callback = self->on_closed;
    self->on_closed = NULL;
    if (callback) {
        PyObject *res = PyObject_CallNoArgs(callback);
        if (!res)
            PyErr_WriteUnraisable(callback);
        Py_XDECREF(res);
        Py_DECREF(callback);
    }
    Py_DECREF(self); /* the reference close() took for this call */
}

static PyObject *server_close(ServerCore *self, PyObject *on_closed)
{
    if (!self->server)
        Py_RETURN_NONE;
    tapio_server *server = self->server;
    self->server = NULL;
    Py_CLEAR(self->owner);
    if (PySet_Discard(self->loop->servers, (PyObject *)self) < 0)
        return NULL;
    self->on_closed = on_closed == Py_None ? NULL : Py_NewRef(on_closed);
    Py_INCREF(self);
    tapio_server_close(server, server_closed, self);
    Py_RETURN_NONE;
}

/* At loop close libtapio frees the servers: forget them. */
void server_core_forget_all(LoopCore *loop)
{
    PyObject *iter = PyObject_GetIter(loop->servers);
    PyObject *item;
    while (iter && (item = PyIter_Next(iter))) {
        ((ServerCore *)item)->server = NULL;
        Py_CLEAR(((ServerCore *)item)->owner);
        Py_DECREF(item);
    }
    Py_XDECREF(iter);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(loop->servers);
    PySet_Clear(loop->servers);
}

static int server_traverse(ServerCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->protocol_factory);
    Py_VISIT(self->make_extra);
    Py_VISIT(self->on_closed);
    Py_VISIT(self->owner);
    Py_VISIT(self->context);
    return 0;
}

static int server_clear(ServerCore *self)
{
    Py_CLEAR(self->protocol_factory);
    Py_CLEAR(self->make_extra);
    Py_CLEAR(self->on_closed);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->context);
    return 0;
}

static void server_dealloc(ServerCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    server_clear(self);
    Py_CLEAR(self->loop);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef server_methods[] = {
    {"clients", (PyCFunction)server_clients, METH_NOARGS, NULL},
    {"start_serving", (PyCFunction)server_start_serving, METH_NOARGS, NULL},
    {"is_serving", (PyCFunction)server_is_serving, METH_NOARGS, NULL},
    {"close", (PyCFunction)server_close, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_dealloc, server_dealloc},
    {Py_tp_traverse, server_traverse},
    {Py_tp_clear, server_clear},
    {Py_tp_methods, server_methods},
    {0, NULL},
};

PyType_Spec server_core_spec = {
    .name = "tapio._tapio.ServerCore",
    .basicsize = sizeof(ServerCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = server_slots,
};
