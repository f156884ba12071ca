/* LoopCore: the C half of tapio's event loop. It owns the libtapio loop and
 * does everything on the per-callback path: call_soon/call_later/call_at,
 * call_soon_threadsafe, fd watchers and the run loop. The Python class
 * tapio.Loop adds asyncio's orchestration on top. */
#include "binding.h"

#include <structmember.h>

#define DEFAULT_SLOW_CALLBACK 0.1

static bool check_open(LoopCore *self)
{
    if (self->closed || !self->loop) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return false;
    }
    return true;
}

static PyObject *set_errno_error(int err)
{
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Remember the raised exception to re-raise from run_forever, and leave the
 * loop at once (asyncio lets SystemExit/KeyboardInterrupt escape). */
void loop_core_set_pending(LoopCore *self)
{
    PyObject *exc = binding_fetch_exception();
    if (!exc)
        return;
    if (self->pending_exc) /* the first one wins; later ones are reported */
        PyErr_WriteUnraisable(exc), Py_DECREF(exc);
    else
        self->pending_exc = exc;
    if (self->loop)
        tapio_loop_interrupt(self->loop);
}

/* ---- running handles ------------------------------------------------ */

static void run_timed(LoopCore *self, Handle *h)
{
    double start = tapio_loop_time(self->loop);
    handle_run(h);
    double took = tapio_loop_time(self->loop) - start;
    if (took < self->slow_callback_duration)
        return;
    PyObject *exc = binding_fetch_exception();
    PyObject *dt = PyFloat_FromDouble(took);
    PyObject *res = dt ? PyObject_CallFunctionObjArgs(
                             self->state->log_slow_callback, (PyObject *)h, dt,
                             NULL)
                       : NULL;
    if (!res)
        PyErr_WriteUnraisable((PyObject *)h);
    Py_XDECREF(res);
    Py_XDECREF(dt);
    binding_restore_exception(exc);
}

static void run_handle(LoopCore *self, Handle *h)
{
    if (self->debug)
        run_timed(self, h);
    else
        handle_run(h);
}

/* libtapio callback of call_soon/call_at handles. */
static void queued_ready(tapio_loop *loop, void *arg)
{
    (void)loop;
    Handle *h = arg;
    Py_INCREF(h);
    handle_dequeue(h);
    run_handle(h->loop, h);
    Py_DECREF(h);
}

/* ---- scheduling ---------------------------------------------------- */

/* Parse (callback, *args, context=None) from a FASTCALL argument vector. */
static bool parse_callback(PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames, Py_ssize_t skip,
                           const char *method, PyObject **context)
{
    *context = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (!PyUnicode_Check(key) ||
            PyUnicode_CompareWithASCIIString(key, "context") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'",
                         method, key);
            return false;
        }
        *context = args[nargs + i];
    }
    if (nargs <= skip) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument",
                     method);
        return false;
    }
    return true;
}

/* In debug mode asyncio checks the thread and the callback's type. */
static bool debug_checks(LoopCore *self, PyObject *callback,
                         const char *method, bool check_thread)
{
    if (!self->debug)
        return true;
    PyObject *res = PyObject_CallMethod(
        (PyObject *)self, "_debug_check_callback", "Osi", callback, method,
        check_thread);
    Py_XDECREF(res);
    return res != NULL;
}

static PyObject *schedule(LoopCore *self, PyTypeObject *type, double when,
                          PyObject *const *args, Py_ssize_t nargs,
                          PyObject *context)
{
    Handle *h = handle_new(self, type, args[0], args + 1, nargs - 1, context);
    if (!h)
        return NULL;
    h->c_handle = type == self->state->TimerHandleType
                      ? tapio_call_at(self->loop, when, queued_ready, h)
                      : tapio_call_soon(self->loop, queued_ready, h);
    if (!h->c_handle) {
        Py_DECREF(h);
        return PyErr_NoMemory();
    }
    tapio_handle_ref(h->c_handle);
    handle_enqueue(h);
    return (PyObject *)h;
}

static PyObject *loop_call_soon(LoopCore *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    if (!parse_callback(args, nargs, kwnames, 0, "call_soon", &context) ||
        !check_open(self) ||
        !debug_checks(self, args[0], "call_soon", true))
        return NULL;
    return schedule(self, self->state->HandleType, 0, args, nargs, context);
}

static PyObject *loop_call_at(LoopCore *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    if (!parse_callback(args, nargs, kwnames, 1, "call_at", &context))
        return NULL;
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    double when = PyFloat_AsDouble(args[0]);
    if (when == -1.0 && PyErr_Occurred())
        return NULL;
    if (!check_open(self) || !debug_checks(self, args[1], "call_at", true))
        return NULL;
    return schedule(self, self->state->TimerHandleType, when, args + 1,
                    nargs - 1, context);
}

/* time() + delay, as asyncio computes it: a float or int delay directly;
 * any other type through float addition, so that what asyncio refuses
 * (Decimal, str) raises the same TypeError and a Fraction is accepted. */
static bool deadline_after(LoopCore *self, PyObject *delay, double *when)
{
    /* A closed loop still checks the delay first (RuntimeError follows). */
    double now = self->closed || !self->loop ? 0.0 : tapio_loop_time(self->loop);
    if (PyFloat_CheckExact(delay) || PyLong_CheckExact(delay)) {
        double d = PyFloat_AsDouble(delay);
        if (d == -1.0 && PyErr_Occurred())
            return false;
        *when = now + d;
        return true;
    }
    PyObject *start = PyFloat_FromDouble(now);
    if (!start)
        return false;
    PyObject *sum = PyNumber_Add(start, delay);
    Py_DECREF(start);
    if (!sum)
        return false;
    *when = PyFloat_AsDouble(sum);
    Py_DECREF(sum);
    return !(*when == -1.0 && PyErr_Occurred());
}

static PyObject *loop_call_later(LoopCore *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    if (!parse_callback(args, nargs, kwnames, 1, "call_later", &context))
        return NULL;
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    double when;
    if (!deadline_after(self, args[0], &when))
        return NULL;
    if (!check_open(self) || !debug_checks(self, args[1], "call_later", true))
        return NULL;
    return schedule(self, self->state->TimerHandleType, when, args + 1,
                    nargs - 1, context);
}

/* Runs on the loop thread once the other thread's call arrives. */
static void threadsafe_ready(tapio_loop *loop, void *arg)
{
    queued_ready(loop, arg);
}

static PyObject *loop_call_soon_threadsafe(LoopCore *self,
                                           PyObject *const *args,
                                           Py_ssize_t nargs,
                                           PyObject *kwnames)
{
    PyObject *context;
    if (!parse_callback(args, nargs, kwnames, 0, "call_soon_threadsafe",
                        &context) ||
        !check_open(self) ||
        !debug_checks(self, args[0], "call_soon_threadsafe", false))
        return NULL;
    Handle *h = handle_new(self, self->state->HandleType, args[0], args + 1,
                           nargs - 1, context);
    if (!h)
        return NULL;
    handle_enqueue(h);
    int err = tapio_call_soon_threadsafe(self->loop, threadsafe_ready, h);
    if (err) {
        handle_dequeue(h);
        Py_DECREF(h);
        return set_errno_error(err);
    }
    return (PyObject *)h;
}

static PyObject *loop_time(LoopCore *self, PyObject *unused)
{
    (void)unused;
    return PyFloat_FromDouble(tapio_loop_time(self->loop));
}

/* ---- fd watchers ----------------------------------------------------- */

static void fd_ready(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    (void)fd;
    Handle *h = arg;
    Py_INCREF(h); /* the callback may remove its own watcher */
    run_handle(h->loop, h);
    Py_DECREF(h);
}

/* fd from an int or an object with fileno(), as selectors accepts it. */
static int fd_of(PyObject *fileobj)
{
    int fd = PyObject_AsFileDescriptor(fileobj);
    return fd;
}

typedef int (*add_fn)(tapio_loop *, int, tapio_fd_callback, void *);
typedef bool (*remove_fn)(tapio_loop *, int);

static PyObject *add_watcher(LoopCore *self, PyObject *watchers, add_fn add,
                             PyObject *const *args, Py_ssize_t nargs,
                             const char *method)
{
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at least 2 arguments",
                     method);
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0 || !check_open(self))
        return NULL;
    Handle *h = handle_new(self, self->state->HandleType, args[1], args + 2,
                           nargs - 2, Py_None);
    if (!h)
        return NULL;
    PyObject_GC_Track(h); /* held by the watcher table, not the queue */
    PyObject *key = PyLong_FromLong(fd);
    int err = key ? add(self->loop, fd, fd_ready, h) : 0;
    if (!key || err) {
        Py_XDECREF(key);
        Py_DECREF(h);
        return err ? set_errno_error(err) : NULL;
    }
    /* Replacing a watcher cancels the old handle, as asyncio does. */
    PyObject *old = PyDict_GetItemWithError(watchers, key);
    if (old) {
        Py_INCREF(old);
        PyObject *res = PyObject_CallMethod(old, "cancel", NULL);
        Py_XDECREF(res);
        Py_DECREF(old);
    }
    int rc = PyDict_SetItem(watchers, key, (PyObject *)h);
    Py_DECREF(key);
    if (rc < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

static PyObject *remove_watcher(LoopCore *self, PyObject *watchers,
                                remove_fn remove, PyObject *fileobj)
{
    int fd = fd_of(fileobj);
    if (fd < 0)
        return NULL;
    if (self->closed || !self->loop)
        Py_RETURN_FALSE;
    PyObject *key = PyLong_FromLong(fd);
    if (!key)
        return NULL;
    PyObject *h = PyDict_GetItemWithError(watchers, key);
    if (!h) {
        Py_DECREF(key);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    Py_INCREF(h);
    remove(self->loop, fd);
    int rc = PyDict_DelItem(watchers, key);
    Py_DECREF(key);
    PyObject *res = PyObject_CallMethod(h, "cancel", NULL);
    Py_DECREF(h);
    if (rc < 0 || !res)
        return NULL;
    Py_DECREF(res);
    Py_RETURN_TRUE;
}

/* The open (not closing) transport whose fd is `fd`, or None: asyncio
 * refuses fd watchers on such an fd. libtapio says at once whether anything
 * owns the fd, and which of its fds `fd` stands for (the user's own socket
 * given as sock= is an alias of libtapio's dup); only then are the
 * transports walked, to name the owner. */
static PyObject *loop_transport_of_fd(LoopCore *self, PyObject *arg)
{
    int fd = fd_of(arg);
    if (fd < 0)
        return NULL;
    int owned = self->closed || !self->loop ? -1
                                            : tapio_fd_owner(self->loop, fd);
    if (owned < 0)
        Py_RETURN_NONE;
    Transport *head = &self->open_transports;
    for (Transport *t = head->next; t != head; t = t->next) {
        if (t->t && tapio_transport_fd(t->t) == owned &&
            !tapio_transport_is_closing(t->t))
            return Py_NewRef((PyObject *)t);
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *d = datagram_of_fd(self, owned);
    if (d || PyErr_Occurred())
        return d;
    Py_RETURN_NONE;
}

static PyObject *loop_add_reader(LoopCore *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    return add_watcher(self, self->readers, tapio_add_reader, args, nargs,
                       "add_reader");
}

static PyObject *loop_add_writer(LoopCore *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    return add_watcher(self, self->writers, tapio_add_writer, args, nargs,
                       "add_writer");
}

static PyObject *loop_remove_reader(LoopCore *self, PyObject *fd)
{
    return remove_watcher(self, self->readers, tapio_remove_reader, fd);
}

static PyObject *loop_remove_writer(LoopCore *self, PyObject *fd)
{
    return remove_watcher(self, self->writers, tapio_remove_writer, fd);
}

/* ---- running --------------------------------------------------------- */

static void before_poll(tapio_loop *loop, int result, void *arg)
{
    (void)loop;
    (void)result;
    LoopCore *self = arg;
    self->saved_tstate = PyEval_SaveThread();
}

/* A signal interrupted the wait: run Python's handlers now (SIGINT's
 * raises KeyboardInterrupt, which leaves run_forever). */
static void after_poll(tapio_loop *loop, int result, void *arg)
{
    (void)loop;
    LoopCore *self = arg;
    PyEval_RestoreThread(self->saved_tstate);
    self->saved_tstate = NULL;
    if (result == -EINTR && PyErr_CheckSignals() < 0)
        loop_core_set_pending(self);
}

static PyObject *raise_pending(LoopCore *self)
{
    if (!self->pending_exc)
        Py_RETURN_NONE;
    PyObject *exc = self->pending_exc;
    self->pending_exc = NULL;
    binding_restore_exception(exc);
    return NULL;
}

static PyObject *loop_run_forever_core(LoopCore *self, PyObject *unused)
{
    (void)unused;
    if (!check_open(self))
        return NULL;
    int err = tapio_loop_run_forever(self->loop);
    if (err)
        return set_errno_error(err);
    return raise_pending(self);
}

static PyObject *loop_run_once(LoopCore *self, PyObject *unused)
{
    (void)unused;
    if (!check_open(self))
        return NULL;
    int err = tapio_loop_run_once(self->loop);
    if (err)
        return set_errno_error(err);
    return raise_pending(self);
}

static PyObject *loop_stop(LoopCore *self, PyObject *unused)
{
    (void)unused;
    if (self->loop)
        tapio_loop_stop(self->loop);
    Py_RETURN_NONE;
}

static void release_watchers(LoopCore *self)
{
    PyObject *dicts[2] = {self->readers, self->writers};
    for (int i = 0; i < 2; i++) {
        if (!dicts[i])
            continue;
        PyObject *key, *h;
        Py_ssize_t pos = 0;
        while (PyDict_Next(dicts[i], &pos, &key, &h))
            ((Handle *)h)->cancelled = true;
        PyDict_Clear(dicts[i]);
    }
}

static void close_core(LoopCore *self)
{
    if (!self->loop)
        return;
    self->closed = true;
    release_watchers(self);
    handle_release_all(self);
    /* libtapio drops its transports and servers without callbacks. */
    process_core_release_all(self);
    transport_release_all(self);
    datagram_release_all(self);
    connect_release_all(self);
    tapio_loop_close(self->loop);
    self->loop = NULL;
    server_core_forget_all(self);
}

/* ---- transports and servers ------------------------------------------ */

/* _wrap_socket(sock, protocol, extra, user_sock=False): a Transport over a
 * connected stream socket. A socket libtapio made is a view: libtapio owns
 * its fd and the object is detached when the transport ends. The user's
 * own socket (sock=) keeps its fd: libtapio works on a dup aliased to it,
 * and the object is closed when the transport ends, as asyncio closes it. */
static PyObject *loop_wrap_socket(LoopCore *self, PyObject *const *args,
                                  Py_ssize_t nargs)
{
    if (nargs != 3 && nargs != 4)
        return PyErr_Format(PyExc_TypeError,
                            "_wrap_socket() takes 3 or 4 arguments");
    if (!check_open(self))
        return NULL;
    int user_sock = nargs == 4 ? PyObject_IsTrue(args[3]) : 0;
    if (user_sock < 0)
        return NULL;
    PyObject *fileno = PyObject_CallMethod(args[0], "fileno", NULL);
    int user_fd = fileno ? PyLong_AsLong(fileno) : -1;
    Py_XDECREF(fileno);
    if (user_fd < 0 && PyErr_Occurred())
        return NULL;
    Transport *t = transport_new(self, args[1], args[0], args[2], NULL);
    const tapio_protocol *table = t ? transport_table(t) : NULL;
    if (!table) {
        Py_XDECREF(t);
        return NULL;
    }
    int fd = user_sock ? tapio_fd_dup_alias(self->loop, user_fd) : user_fd;
    if (fd < 0 && user_sock) {
        Py_DECREF(t);
        return set_errno_error(fd);
    }
    t->sock_dup = user_sock;
    t->user_fd = user_fd;
    int err = tapio_transport_from_fd(self->loop, fd, table, t, &t->t);
    if (err) { /* libtapio closed fd: the view has nothing left */
        t->t = NULL;
        if (!user_sock) {
            PyObject *res = PyObject_CallMethod(args[0], "detach", NULL);
            Py_XDECREF(res);
        }
        t->sock_dup = false;
        Py_CLEAR(t->sock);
        Py_DECREF(t);
        return set_errno_error(err);
    }
    tapio_transport_ref(t->t);
    transport_attach(t);
    return (PyObject *)t;
}

/* _wrap_pipe(*, fd, pipe, protocol, extra, mode): a pipe transport on
 * `fd` (libtapio's, a dup of pipe's); the pipe object is closed at the end.
 * mode is one of the module's PIPE_* constants. */
static PyObject *loop_wrap_pipe(LoopCore *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"fd", "pipe", "protocol", "extra", "mode", NULL};
    int fd, mode;
    PyObject *pipe, *protocol, *extra;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "$iOOO!i", names, &fd, &pipe,
                                     &protocol, &PyDict_Type, &extra, &mode) ||
        !check_open(self))
        return NULL;
    PyTypeObject *type = mode == BINDING_PIPE_WRITE
                             ? self->state->WritePipeTransportType
                             : self->state->ReadPipeTransportType;
    Transport *t = transport_new_of(type, self, protocol, pipe, extra, NULL);
    const tapio_protocol *table = t ? transport_table(t) : NULL;
    if (!table) {
        Py_XDECREF(t);
        return NULL;
    }
    t->close_view = true;
    int err = mode == BINDING_PIPE_WRITE
                  ? tapio_pipe_write(self->loop, fd, table, t, &t->t)
              : mode == BINDING_PIPE_READ_RELAYED
                  ? tapio_pipe_read_relayed(self->loop, fd, table, t, &t->t)
                  : tapio_pipe_read(self->loop, fd, table, t, &t->t);
    if (err) {
        t->t = NULL;
        Py_DECREF(t);
        return set_errno_error(err);
    }
    tapio_transport_ref(t->t);
    transport_attach(t);
    return (PyObject *)t;
}

static PyObject *loop_wrap_datagram(LoopCore *self, PyObject *const *args,
                                    Py_ssize_t nargs)
{
    if (!check_open(self))
        return NULL;
    return datagram_wrap(self, args, nargs);
}

static PyObject *loop_adopt_process(LoopCore *self, PyObject *args,
                                    PyObject *kw)
{
    if (!check_open(self))
        return NULL;
    return process_core_adopt(self, args, kw);
}

static PyObject *loop_serve(LoopCore *self, PyObject *args, PyObject *kwargs)
{
    if (!check_open(self))
        return NULL;
    return server_core_new(self, args, kwargs);
}

static PyObject *loop_close_core(LoopCore *self, PyObject *unused)
{
    (void)unused;
    if (self->loop && tapio_loop_is_running(self->loop)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    close_core(self);
    Py_RETURN_NONE;
}

static PyObject *loop_is_closed(LoopCore *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->closed);
}

static PyObject *loop_core_running(LoopCore *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->loop && tapio_loop_is_running(self->loop));
}

static PyObject *loop_get_debug(LoopCore *self, PyObject *unused)
{
    (void)unused;
    /* asyncio returns the value given to set_debug, not a bool. */
    if (self->debug_value)
        return Py_NewRef(self->debug_value);
    return PyBool_FromLong(self->debug);
}

static PyObject *loop_set_debug_core(LoopCore *self, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);
    if (on < 0)
        return NULL;
    self->debug = on;
    Py_XSETREF(self->debug_value, Py_NewRef(enabled));
    Py_RETURN_NONE;
}

static PyObject *loop_backend(LoopCore *self, PyObject *unused)
{
    (void)unused;
    if (!check_open(self))
        return NULL;
    return PyUnicode_FromString(tapio_loop_backend(self->loop));
}

/* libtapio's own error reports (accept out of descriptors, ...) go to the
 * loop's exception handler as {'message', 'exception'}. */
static void report_libtapio_error(tapio_loop *loop, const char *message,
                                  int err, void *arg)
{
    (void)loop;
    LoopCore *self = arg;
    PyObject *exc = err ? binding_errno_exception(err) : NULL;
    binding_report(self, message, exc, NULL, NULL);
    Py_XDECREF(exc);
}

/* ---- lifetime -------------------------------------------------------- */

static PyObject *loop_core_new(PyTypeObject *type, PyObject *args,
                               PyObject *kwds)
{
    (void)args;
    (void)kwds;
    LoopCore *self = (LoopCore *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->state = binding_state_of_type(type);
    self->queued.prev = self->queued.next = &self->queued;
    self->open_transports.prev = self->open_transports.next =
        &self->open_transports;
    self->servers = PySet_New(NULL);
    self->datagrams = PySet_New(NULL);
    self->connects = PyDict_New();
    self->processes = PySet_New(NULL);
    self->slow_callback_duration = DEFAULT_SLOW_CALLBACK;
    self->readers = PyDict_New();
    self->writers = PyDict_New();
    if (!self->readers || !self->writers || !self->servers ||
        !self->datagrams || !self->connects || !self->processes) {
        Py_DECREF(self);
        return NULL;
    }
    int err = tapio_loop_new(&self->loop);
    if (err) {
        self->loop = NULL;
        Py_DECREF(self);
        return set_errno_error(err);
    }
    tapio_loop_set_poll_hooks(self->loop, before_poll, after_poll, self);
    tapio_loop_set_error_handler(self->loop, report_libtapio_error, self);
    return (PyObject *)self;
}

static int loop_core_traverse(LoopCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->pending_exc);
    Py_VISIT(self->readers);
    Py_VISIT(self->writers);
    Py_VISIT(self->servers);
    Py_VISIT(self->datagrams);
    Py_VISIT(self->connects);
    Py_VISIT(self->processes);
    Py_VISIT(self->debug_value);
    Py_VISIT(self->task_factory);
    /* Queued handles and open transports are not visited: libtapio holds
     * them, so to the collector they are rightly alive from outside. */
    return 0;
}

static int loop_core_clear(LoopCore *self)
{
    if (self->loop && !tapio_loop_is_running(self->loop))
        close_core(self);
    Py_CLEAR(self->pending_exc);
    Py_CLEAR(self->readers);
    Py_CLEAR(self->writers);
    Py_CLEAR(self->servers);
    Py_CLEAR(self->datagrams);
    Py_CLEAR(self->connects);
    Py_CLEAR(self->processes);
    Py_CLEAR(self->debug_value);
    Py_CLEAR(self->task_factory);
    return 0;
}

static void loop_core_dealloc(LoopCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    loop_core_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef loop_core_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"call_soon_threadsafe",
     (PyCFunction)(void (*)(void))loop_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"time", (PyCFunction)loop_time, METH_NOARGS, NULL},
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS, NULL},
    {"create_task", (PyCFunction)(void (*)(void))loop_create_task,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"set_task_factory", (PyCFunction)loop_set_task_factory, METH_O, NULL},
    {"get_task_factory", (PyCFunction)loop_get_task_factory, METH_NOARGS,
     NULL},
    {"_add_reader", (PyCFunction)(void (*)(void))loop_add_reader,
     METH_FASTCALL, NULL},
    {"_add_writer", (PyCFunction)(void (*)(void))loop_add_writer,
     METH_FASTCALL, NULL},
    {"_remove_reader", (PyCFunction)loop_remove_reader, METH_O, NULL},
    {"_remove_writer", (PyCFunction)loop_remove_writer, METH_O, NULL},
    {"_transport_of_fd", (PyCFunction)loop_transport_of_fd, METH_O, NULL},
    {"_run_forever_core", (PyCFunction)loop_run_forever_core, METH_NOARGS,
     NULL},
    {"_run_once", (PyCFunction)loop_run_once, METH_NOARGS, NULL},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS, NULL},
    {"_close_core", (PyCFunction)loop_close_core, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS, NULL},
    {"_core_running", (PyCFunction)loop_core_running, METH_NOARGS, NULL},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS, NULL},
    {"_set_debug_core", (PyCFunction)loop_set_debug_core, METH_O, NULL},
    {"_backend", (PyCFunction)loop_backend, METH_NOARGS, NULL},
    {"_wrap_socket", (PyCFunction)(void (*)(void))loop_wrap_socket,
     METH_FASTCALL, NULL},
    {"_serve", (PyCFunction)(void (*)(void))loop_serve,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_wrap_pipe", (PyCFunction)(void (*)(void))loop_wrap_pipe,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_wrap_datagram", (PyCFunction)(void (*)(void))loop_wrap_datagram,
     METH_FASTCALL, NULL},
    {"_adopt_process", (PyCFunction)(void (*)(void))loop_adopt_process,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef loop_core_members[] = {
    {"slow_callback_duration", T_DOUBLE,
     offsetof(LoopCore, slow_callback_duration), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot loop_core_slots[] = {
    {Py_tp_new, loop_core_new},
    {Py_tp_dealloc, loop_core_dealloc},
    {Py_tp_traverse, loop_core_traverse},
    {Py_tp_clear, loop_core_clear},
    {Py_tp_methods, loop_core_methods},
    {Py_tp_members, loop_core_members},
    {0, NULL},
};

PyType_Spec loop_core_spec = {
    .name = "tapio._tapio.LoopCore",
    .basicsize = sizeof(LoopCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = loop_core_slots,
};
