/* ServerCore: a libtapio server for tapio's asyncio Server. Each accepted
 * connection gets a protocol from protocol_factory and a Transport. */
#include "binding.h"

#include <unistd.h>

/* A connection whose transport could not be made: SystemExit and
 * KeyboardInterrupt leave the loop, anything else is reported in debug mode
 * only, as asyncio's accept task does. */
static void creation_failed(ServerCore *self)
{
    PyObject *exc = binding_fetch_exception();
    if (exc && binding_is_exit_exception(exc)) {
        binding_restore_exception(exc);
        loop_core_set_pending(self->loop);
        return;
    }
    if (exc && self->loop->debug)
        binding_report(self->loop,
                       "Error on transport creation for incoming connection",
                       exc, NULL, NULL);
    Py_XDECREF(exc);
}

/* asyncio's transport looks the protocol's connection_made up as it is
 * made: 0 when the protocol has none (the AttributeError reported as a
 * failed creation), 1 when it has, -1 on another error. */
static int has_connection_made(ServerCore *self, PyObject *protocol)
{
    PyObject *method = PyObject_GetAttr(
        protocol, self->loop->state->str_connection_made);
    if (method) {
        Py_DECREF(method);
        return 1;
    }
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return -1;
    creation_failed(self);
    return 0;
}

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
    int made = protocol ? has_connection_made(self, protocol) : -1;
    Transport *t = made >= 0 ? transport_new(self->loop, protocol, NULL,
                                             Py_None, ctx)
                             : NULL;
    Py_XDECREF(protocol);
    const tapio_protocol *table = t ? transport_table(t) : NULL;
    if (!table) {
        creation_failed(self);
        Py_XDECREF(t);
        binding_leave(ctx, &entered);
        return NULL; /* libtapio closes the connection */
    }
    /* Without connection_made asyncio's transport failed half made: its
     * connection stays open, unread, attached to the server. */
    t->half_made = !made;
    binding_leave(ctx, &entered);
    t->server = (ServerCore *)Py_NewRef((PyObject *)self);
    transport_attach(t); /* libtapio's reference until connection_lost */
    *user = t;
    Py_DECREF(t);
    return table;
}

/* What a server listens on: the getaddrinfo entries asyncio resolved, a Unix
 * path, or sockets the user made (fds). */
typedef struct {
    PyObject *addresses, *path, *fds;
    tapio_server_options opts;
} listen_spec;

static int fds_from_py(PyObject *seq, int **fdv, size_t *n)
{
    Py_ssize_t len = PySequence_Size(seq);
    if (len < 0)
        return -1;
    *fdv = PyMem_Calloc((size_t)len + 1, sizeof(int));
    if (!*fdv) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *item = PySequence_GetItem(seq, i);
        long fd = item ? PyLong_AsLong(item) : -1;
        (*fdv)[i] = (int)fd;
        Py_XDECREF(item);
        if (PyErr_Occurred())
            return -1;
        if (fd < 0 || fd > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "invalid file descriptor");
            return -1;
        }
    }
    *n = (size_t)len;
    return 0;
}

/* The user keeps its listening sockets (their objects are asyncio's
 * Server.sockets): libtapio serves on dups aliased to them. */
static int dup_user_fds(tapio_loop *loop, int *fdv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int fd = tapio_fd_dup_alias(loop, fdv[i]);
        if (fd < 0) {
            while (i > 0)
                close(fdv[--i]);
            return fd;
        }
        fdv[i] = fd;
    }
    return 0;
}

/* getaddrinfo's (family, type, proto, canonname, address) tuples as
 * libtapio's addresses; storage holds the sockaddrs they point to. */
static int addresses_from_py(PyObject *seq, tapio_server_address **addrs,
                             struct sockaddr_storage **storage, size_t *n)
{
    Py_ssize_t len = PySequence_Size(seq);
    if (len < 0)
        return -1;
    *addrs = PyMem_Calloc((size_t)len + 1, sizeof(**addrs));
    *storage = PyMem_Calloc((size_t)len + 1, sizeof(**storage));
    if (!*addrs || !*storage) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *info = PySequence_GetItem(seq, i);
        tapio_server_address *a = &(*addrs)[i];
        PyObject *address;
        int ok = info && PyArg_ParseTuple(info, "iiiOO;address info",
                                          &a->family, &a->socktype,
                                          &a->protocol, &address, &address) &&
                 binding_py_to_sockaddr(address, a->family, &(*storage)[i],
                                        &a->addrlen) == 0;
        Py_XDECREF(info);
        if (!ok)
            return -1;
        a->addr = (const struct sockaddr *)&(*storage)[i];
    }
    *n = (size_t)len;
    return 0;
}

/* A bind failure names the address it failed on: the caller words the
 * error as asyncio does. */
static void set_bind_error(int err, size_t failed)
{
    PyObject *exc = binding_errno_exception(err);
    PyObject *index = exc ? PyLong_FromSize_t(failed) : NULL;
    if (index && PyObject_SetAttrString(exc, "address_index", index) == 0)
        binding_restore_exception(Py_NewRef(exc));
    Py_XDECREF(index);
    Py_XDECREF(exc);
}

static int listen_on(ServerCore *self, listen_spec *spec)
{
    tapio_loop *loop = self->loop->loop;
    tapio_server **out = &self->server;
    int err;
    if (spec->path) {
        Py_ssize_t len;
        const char *path = PyBytes_AsString(spec->path);
        if (!path || (len = PyBytes_Size(spec->path)) < 0)
            return -1;
        err = tapio_server_listen_unix(loop, path, (size_t)len, &spec->opts,
                                       accept_factory, self, out);
    } else if (spec->fds) {
        int *fdv = NULL;
        size_t n = 0;
        err = fds_from_py(spec->fds, &fdv, &n) < 0 ? 1
              : dup_user_fds(loop, fdv, n);
        if (!err)
            err = tapio_server_from_fds(loop, fdv, n, &spec->opts,
                                        accept_factory, self, out);
        PyMem_Free(fdv);
    } else {
        tapio_server_address *addrs = NULL;
        struct sockaddr_storage *storage = NULL;
        size_t n = 0, failed = 0;
        err = addresses_from_py(spec->addresses, &addrs, &storage, &n) < 0
                  ? 1
                  : tapio_server_bind(loop, addrs, n, &spec->opts,
                                      accept_factory, self, out, &failed);
        PyMem_Free(addrs);
        PyMem_Free(storage);
        if (err < 0 && err != -ENOMEM) {
            set_bind_error(err, failed);
            return -1;
        }
    }
    if (err < 0) {
        errno = -err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return err ? -1 : 0;
}

/* loop._serve(owner, protocol_factory, make_extra, *, addresses=None,
 * path=None, fds=None, backlog=100, reuse_address=True, reuse_port=False,
 * keep_alive=False, keep_socket_file=True): a bound server, not yet
 * serving. */
PyObject *server_core_new(LoopCore *loop, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"owner", "protocol_factory", "make_extra",
                             "addresses", "path", "fds", "backlog",
                             "reuse_address", "reuse_port", "keep_alive",
                             "keep_socket_file", NULL};
    PyObject *owner, *factory, *make_extra;
    listen_spec spec = {.opts = {.backlog = 100, .no_start_serving = true}};
    int reuse_address = 1, reuse_port = 0, keep_alive = 0, keep_file = 1;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OOO|$OOOipppp", kwlist, &owner, &factory,
            &make_extra, &spec.addresses, &spec.path, &spec.fds,
            &spec.opts.backlog, &reuse_address, &reuse_port, &keep_alive,
            &keep_file))
        return NULL;
    if (!!spec.addresses + !!spec.path + !!spec.fds != 1)
        return PyErr_Format(PyExc_TypeError,
                            "one of addresses, path or fds is needed");
    if (spec.opts.backlog <= 0) /* listen() takes a non-positive backlog as 0 */
        spec.opts.backlog = 1;
    spec.opts.no_reuse_address = !reuse_address;
    spec.opts.reuse_port = reuse_port;
    spec.opts.keep_alive = keep_alive;
    spec.opts.keep_unix_socket_file = keep_file;
    ServerCore *self = PyObject_GC_New(ServerCore, loop->state->ServerCoreType);
    if (!self)
        return NULL;
    self->context = NULL; /* copied when serving starts */
    self->loop = (LoopCore *)Py_NewRef((PyObject *)loop);
    self->server = NULL;
    self->protocol_factory = Py_NewRef(factory);
    self->make_extra = Py_NewRef(make_extra);
    self->on_closed = NULL;
    /* Like asyncio's, a server lives on without user references until
     * closed. */
    self->owner = Py_NewRef(owner);
    PyObject_GC_Track(self);
    if (listen_on(self, &spec) < 0 ||
        PySet_Add(loop->servers, (PyObject *)self) < 0) {
        Py_DECREF(self);
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
    /* asyncio's accept loop runs in a copy of the context current when
     * serving starts. */
    if (!self->context && !(self->context = PyContext_CopyCurrent()))
        return NULL;
    int err = tapio_server_start_serving(self->server);
    if (err) {
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* The listening sockets' fds (for Server.sockets). */
static PyObject *server_fds(ServerCore *self, PyObject *unused)
{
    (void)unused;
    if (!check_server(self))
        return NULL;
    size_t n = tapio_server_sockets(self->server, NULL, 0);
    int *fds = PyMem_Calloc(n + 1, sizeof(int));
    PyObject *list = fds ? PyList_New((Py_ssize_t)n) : PyErr_NoMemory();
    tapio_server_sockets(self->server, fds, n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *fd = PyLong_FromLong(fds[i]);
        if (!fd)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, fd);
    }
    PyMem_Free(fds);
    return list;
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
    {"fds", (PyCFunction)server_fds, METH_NOARGS, NULL},
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
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_DISALLOW_INSTANTIATION, /* made by the loop only */
    .slots = server_slots,
};
