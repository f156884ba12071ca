/* ProcessCore: the C half of tapio's SubprocessTransport, over a libtapio
 * process (tapio_process_adopt). libtapio watches the child's exit, reaps
 * it and decides the order of events; this file only turns its callbacks
 * into calls on the Python SubprocessProtocol and exposes the process to
 * python/tapio/_subprocess.py, which keeps asyncio's Python API. */
#include "binding.h"

#include <limits.h>

struct ProcessCore {
    PyObject_HEAD
    LoopCore *loop;
    tapio_process *p;     /* referenced; NULL when adoption failed */
    PyObject *owner;      /* the Python SubprocessTransport, until the end */
    PyObject *protocol;   /* None after connection_lost, as asyncio's */
    PyObject *context;    /* the protocol runs in it (a copy) */
    Transport *pipes[3];  /* the pipes as asyncio transports, or NULL */
    PyObject *pipe_protocols; /* their protocols as made (a 3-tuple) */
    bool in_context;
    bool held;            /* libtapio may call us: in loop->processes */
    bool lost;            /* connection_lost ran */
    bool unfinished;      /* the last event's method was missing (below) */
    bool pipe_kept;       /* a pipe ended under a protocol set in its place */
};

/* ---- calling Python ------------------------------------------------------ */

static void failed(ProcessCore *self, const char *message)
{
    Py_XDECREF(binding_callback_failed(self->loop, message, self->owner,
                                       self->protocol));
}

/* The target had no such attribute: asyncio looks a protocol's method up
 * where the event happens (an AttributeError there), and calls it later. */
static bool lookup_failed(PyObject *target, PyObject *name)
{
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return false;
    PyObject *exc = binding_fetch_exception();
    PyObject *attr = PyObject_GetAttr(target, name);
    bool missing = !attr && PyErr_ExceptionMatches(PyExc_AttributeError);
    Py_XDECREF(attr);
    PyErr_Clear();
    binding_restore_exception(exc);
    return missing;
}

/* target.<name>(*args) in the protocol's context; errors reported. False
 * when target has no such method (set_protocol(None) or a non-protocol). */
static bool call(ProcessCore *self, PyObject *target, const char *name,
                 PyObject *const *args, size_t nargs, const char *message)
{
    if (!target || (self->lost && target == Py_None))
        return true; /* the protocol is None after connection_lost */
    PyObject *ctx = binding_enter(self->loop, self->context,
                                  &self->in_context);
    PyObject *vec[4] = {target};
    for (size_t i = 0; i < nargs; i++)
        vec[i + 1] = args[i];
    PyObject *meth = PyUnicode_FromString(name);
    PyObject *res = meth ? PyObject_VectorcallMethod(meth, vec, nargs + 1,
                                                     NULL)
                         : NULL;
    bool found = res || !meth || !lookup_failed(target, meth);
    Py_XDECREF(meth);
    if (!res)
        failed(self, message);
    Py_XDECREF(res);
    binding_leave(ctx, &self->in_context);
    return found;
}

/* The protocol a user set on pipe fd's transport in place of the one it was
 * made with (a new reference), or NULL: asyncio's pipe transport tells its
 * own protocol of the pipe's events, which passes them on to the process's
 * only if it is still the one made for that. */
static PyObject *pipe_protocol_replaced(ProcessCore *self, int fd)
{
    Transport *view = self->pipes[fd];
    if (!view || !view->protocol || !self->pipe_protocols ||
        view->protocol == PyTuple_GET_ITEM(self->pipe_protocols, fd))
        return NULL;
    return Py_NewRef(view->protocol);
}

/* libtapio holds no more callbacks for us: let go of the cycle with the
 * Python transport, and of the loop's reference. */
static void let_go(ProcessCore *self)
{
    Py_CLEAR(self->owner);
    if (!self->held)
        return;
    self->held = false;
    if (PySet_Discard(self->loop->processes, (PyObject *)self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
}

/* ---- the libtapio subprocess protocol ---------------------------------- */

static void on_made(tapio_process *p, void *user)
{
    (void)p;
    ProcessCore *self = user;
    call(self, self->protocol, "connection_made", &self->owner, 1,
         "protocol.connection_made() failed");
}

static void on_data(tapio_process *p, int fd, const void *data, size_t len,
                    void *user)
{
    (void)p;
    ProcessCore *self = user;
    PyObject *args[2] = {PyLong_FromLong(fd),
                         PyBytes_FromStringAndSize(data, (Py_ssize_t)len)};
    PyObject *replaced = pipe_protocol_replaced(self, fd);
    if (args[0] && args[1] && replaced)
        call(self, replaced, "data_received", &args[1], 1,
             "protocol.data_received() failed");
    else if (args[0] && args[1])
        call(self, self->protocol, "pipe_data_received", args, 2,
             "protocol.pipe_data_received() failed");
    else
        failed(self, "pipe_data_received");
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    Py_XDECREF(replaced);
}

static void on_pipe_lost(tapio_process *p, int fd, int err, void *user)
{
    (void)p;
    ProcessCore *self = user;
    PyObject *replaced = pipe_protocol_replaced(self, fd);
    PyObject *failed_write = NULL; /* what a write to stdin failed with */
    if (self->pipes[fd]) {
        failed_write = transport_take_lost_exc(self->pipes[fd]);
        transport_borrowed_end(self->pipes[fd], false);
    }
    PyObject *args[2] = {PyLong_FromLong(fd),
                         failed_write ? failed_write
                         : err        ? binding_errno_exception(err)
                                      : Py_NewRef(Py_None)};
    /* The process never learns that this pipe ended: it never finishes. */
    self->pipe_kept |= replaced != NULL;
    if (args[0] && args[1] && replaced)
        call(self, replaced, "connection_lost", &args[1], 1,
             "protocol.connection_lost() failed");
    else if (args[0] && args[1])
        self->unfinished = !call(self, self->protocol, "pipe_connection_lost",
                                 args, 2,
                                 "protocol.pipe_connection_lost() failed");
    else
        failed(self, "pipe_connection_lost");
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    Py_XDECREF(replaced);
}

static void on_exited(tapio_process *p, void *user)
{
    ProcessCore *self = user;
    int code = 0;
    tapio_process_returncode(p, &code);
    PyObject *rc = PyLong_FromLong(code);
    if (rc) /* the Python side's bookkeeping: Popen.returncode, debug log */
        call(self, self->owner, "_on_exit", &rc, 1, "_on_exit");
    Py_XDECREF(rc);
    self->unfinished = !call(self, self->protocol, "process_exited", NULL, 0,
                             "protocol.process_exited() failed");
}

static void on_lost(tapio_process *p, int err, void *user)
{
    (void)p;
    (void)err; /* libtapio ends a process without an error */
    ProcessCore *self = user;
    Py_INCREF(self);
    /* asyncio finishes (connection_lost) after the event that completes
     * the set, once it found the protocol's method for it: a protocol that
     * lacked it (set_protocol(None)) never gets connection_lost. */
    self->lost = true;
    PyObject *none = Py_None;
    if (!self->unfinished && !self->pipe_kept)
        call(self, self->protocol, "connection_lost", &none, 1,
             "protocol.connection_lost() failed");
    call(self, self->owner, "_on_lost", NULL, 0, "_on_lost");
    Py_XSETREF(self->protocol, Py_NewRef(Py_None));
    let_go(self);
    Py_DECREF(self);
}

static void on_pause(tapio_process *p, void *user)
{
    (void)p;
    ProcessCore *self = user;
    PyObject *replaced = pipe_protocol_replaced(self, 0);
    call(self, replaced ? replaced : self->protocol, "pause_writing", NULL, 0,
         "protocol.pause_writing() failed");
    Py_XDECREF(replaced);
}

static void on_resume(tapio_process *p, void *user)
{
    (void)p;
    ProcessCore *self = user;
    PyObject *replaced = pipe_protocol_replaced(self, 0);
    call(self, replaced ? replaced : self->protocol, "resume_writing", NULL, 0,
         "protocol.resume_writing() failed");
    Py_XDECREF(replaced);
}

static const tapio_subprocess_protocol process_protocol = {
    .connection_made = on_made,
    .pipe_data_received = on_data,
    .pipe_connection_lost = on_pipe_lost,
    .process_exited = on_exited,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
};

/* ---- adoption -------------------------------------------------------------- */

/* The pipe `fd` of the child as an asyncio transport whose extra info and
 * _pipe are the Popen's file object. */
static int make_pipe_view(ProcessCore *self, int fd, PyObject *file)
{
    tapio_transport *t = tapio_process_pipe(self->p, fd);
    if (!t)
        return 0;
    PyObject *extra = Py_BuildValue("{sO}", "pipe", file);
    if (!extra)
        return -1;
    ModuleState *st = self->loop->state;
    PyTypeObject *type = fd == 0 ? st->WritePipeTransportType
                                 : st->ReadPipeTransportType;
    Transport *view = transport_new_of(type, self->loop,
                                       PyTuple_GET_ITEM(self->pipe_protocols, fd),
                                       file, extra, self->context);
    Py_DECREF(extra);
    if (!view)
        return -1;
    view->t = t;
    tapio_transport_ref(t);
    view->close_view = true; /* the file object closes with the pipe */
    view->borrowed = true;
    self->pipes[fd] = view;
    return 0;
}

static int fd_of_file(PyObject *file)
{
    return file == Py_None ? -1 : PyObject_AsFileDescriptor(file);
}

/* _adopt_process(owner, protocol, *, pid, pipes, pipe_protocols,
 * caller_reaps=False): a ProcessCore over the child `pid`; pipes are the
 * Popen's (stdin, stdout, stderr) file objects or None (libtapio reads and
 * writes duplicates), pipe_protocols their transports' protocols.
 * With caller_reaps the exit comes from set_exited (a child watcher). A
 * failure raises; the child is killed then (and reaped unless
 * caller_reaps). */
PyObject *process_core_adopt(LoopCore *loop, PyObject *args, PyObject *kw)
{
    static char *names[] = {"owner", "protocol", "pid", "pipes",
                            "pipe_protocols", "caller_reaps", NULL};
    PyObject *owner, *protocol, *pipes = NULL, *pipe_protocols = NULL;
    int pid = 0, caller_reaps = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$iO!O!p", names, &owner,
                                     &protocol, &pid, &PyTuple_Type, &pipes,
                                     &PyTuple_Type, &pipe_protocols,
                                     &caller_reaps))
        return NULL;
    if (pid <= 0 || !pipes || !pipe_protocols) {
        PyErr_SetString(PyExc_TypeError,
                        "pid, pipes and pipe_protocols are required");
        return NULL;
    }
    if (PyTuple_GET_SIZE(pipes) != 3 || PyTuple_GET_SIZE(pipe_protocols) != 3)
        return PyErr_Format(PyExc_ValueError,
                            "pipes and pipe_protocols must have 3 items");
    tapio_process_adopt_options opts = {
        .pid = pid, .caller_reaps = caller_reaps, .dup_fds = true};
    for (int i = 0; i < 3; i++)
        if ((opts.fds[i] = fd_of_file(PyTuple_GET_ITEM(pipes, i))) < -1 ||
            (opts.fds[i] == -1 && PyErr_Occurred()))
            return NULL;
    ProcessCore *self = PyObject_GC_New(ProcessCore,
                                        loop->state->ProcessCoreType);
    if (!self)
        return NULL;
    self->loop = (LoopCore *)Py_NewRef((PyObject *)loop);
    self->p = NULL;
    self->owner = Py_NewRef(owner);
    self->protocol = Py_NewRef(protocol);
    self->context = PyContext_CopyCurrent();
    self->pipes[0] = self->pipes[1] = self->pipes[2] = NULL;
    self->pipe_protocols = Py_NewRef(pipe_protocols);
    self->in_context = self->held = self->lost = false;
    self->unfinished = self->pipe_kept = false;
    PyObject_GC_Track(self);
    if (!self->context || PySet_Add(loop->processes, (PyObject *)self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    int err = tapio_process_adopt(loop->loop, &opts, &process_protocol, self,
                                  &self->p);
    if (err) {
        self->p = NULL;
        PySet_Discard(loop->processes, (PyObject *)self);
        Py_DECREF(self);
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->held = true;
    tapio_process_ref(self->p);
    for (int i = 0; i < 3; i++)
        if (make_pipe_view(self, i, PyTuple_GET_ITEM(pipes, i)) < 0) {
            tapio_process_close(self->p); /* the events still end it */
            Py_DECREF(self);
            return NULL;
        }
    return (PyObject *)self;
}

/* Loop close: libtapio drops its processes without callbacks. */
void process_core_release_all(LoopCore *loop)
{
    PyObject *cores = PySequence_List(loop->processes);
    if (!cores) {
        PyErr_WriteUnraisable((PyObject *)loop);
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cores); i++) {
        ProcessCore *self = (ProcessCore *)PyList_GET_ITEM(cores, i);
        for (int fd = 0; fd < 3; fd++)
            if (self->pipes[fd])
                transport_borrowed_end(self->pipes[fd], true);
        let_go(self);
    }
    Py_DECREF(cores);
}

/* ---- methods ---------------------------------------------------------------- */

static int as_int(PyObject *arg, int *out)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "signal number out of range");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static PyObject *process_close(ProcessCore *self, PyObject *unused)
{
    (void)unused;
    if (self->p)
        tapio_process_close(self->p);
    Py_RETURN_NONE;
}

/* asyncio: ProcessLookupError once the transport ended; a signal to a
 * child that exited (reaped: its pid may be someone else's) does nothing. */
static PyObject *process_send_signal(ProcessCore *self, PyObject *arg)
{
    int signum;
    if (as_int(arg, &signum) < 0)
        return NULL;
    if (self->lost || !self->p) {
        PyErr_SetNone(PyExc_ProcessLookupError);
        return NULL;
    }
    int err = tapio_process_send_signal(self->p, signum);
    if (err && err != -ESRCH) {
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *process_set_exited(ProcessCore *self, PyObject *arg)
{
    int code;
    if (as_int(arg, &code) < 0)
        return NULL;
    if (self->p)
        (void)tapio_process_set_exited(self->p, code); /* late: ignored */
    Py_RETURN_NONE;
}

static PyObject *process_pipe(ProcessCore *self, PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    PyObject *view = fd >= 0 && fd < 3 ? (PyObject *)self->pipes[fd] : NULL;
    return Py_NewRef(view ? view : Py_None);
}

static PyObject *get_returncode(ProcessCore *self, void *closure)
{
    (void)closure;
    int code;
    if (self->p && tapio_process_returncode(self->p, &code))
        return PyLong_FromLong(code);
    Py_RETURN_NONE;
}

static PyObject *get_protocol(ProcessCore *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->protocol);
}

static int set_protocol(ProcessCore *self, PyObject *value, void *closure)
{
    (void)closure;
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete protocol");
        return -1;
    }
    Py_XSETREF(self->protocol, Py_NewRef(value));
    return 0;
}

/* ---- lifetime ---------------------------------------------------------------- */

static int process_traverse(ProcessCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->owner);
    Py_VISIT(self->protocol);
    Py_VISIT(self->context);
    Py_VISIT(self->pipe_protocols);
    for (int i = 0; i < 3; i++)
        Py_VISIT(self->pipes[i]);
    return 0;
}

static int process_clear(ProcessCore *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->context);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(self->pipes[i]);
    Py_CLEAR(self->pipe_protocols);
    return 0;
}

static void process_dealloc(ProcessCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    process_clear(self);
    if (self->p)
        tapio_process_unref(self->p);
    Py_CLEAR(self->loop);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef process_methods[] = {
    {"close", (PyCFunction)process_close, METH_NOARGS, NULL},
    {"send_signal", (PyCFunction)process_send_signal, METH_O, NULL},
    {"set_exited", (PyCFunction)process_set_exited, METH_O, NULL},
    {"pipe", (PyCFunction)process_pipe, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef process_getset[] = {
    {"returncode", (getter)get_returncode, NULL, NULL, NULL},
    {"protocol", (getter)get_protocol, (setter)set_protocol, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot process_slots[] = {
    {Py_tp_dealloc, process_dealloc},
    {Py_tp_traverse, process_traverse},
    {Py_tp_clear, process_clear},
    {Py_tp_methods, process_methods},
    {Py_tp_getset, process_getset},
    {0, NULL},
};

PyType_Spec process_core_spec = {
    .name = "tapio._tapio.ProcessCore",
    .basicsize = sizeof(ProcessCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = process_slots,
};
