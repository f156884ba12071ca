/* Transport: an asyncio.Transport over a libtapio stream transport. The type
 * derives from asyncio.Transport, so isinstance checks and the inherited
 * get_extra_info work; the C protocol table below turns libtapio's protocol
 * callbacks into calls on the Python protocol. */
#include "binding.h"

#include <structmember.h>

/* ---- calling the protocol -------------------------------------------- */

/* After a failed protocol call: SystemExit/KeyboardInterrupt leave the
 * loop; anything else is reported and, if `fatal`, closes the transport
 * with the error going to connection_lost (asyncio's _fatal_error). */
static void protocol_failed(Transport *self, const char *message, bool fatal)
{
    PyObject *exc = binding_callback_failed(self->loop, message,
                                            (PyObject *)self, self->protocol);
    if (!exc)
        return;
    if (fatal && self->t && !self->lost_exc) {
        self->lost_exc = Py_NewRef(exc);
        tapio_transport_fail(self->t, TAPIO_EPROTOCOL);
    }
    Py_DECREF(exc);
}

static PyObject *call_protocol(Transport *self, PyObject *name,
                               PyObject *arg)
{
    return binding_call_method(self->protocol, name, arg);
}

/* Each libtapio callback runs in the transport's context (binding.h). */
static PyObject *enter(Transport *self)
{
    return binding_enter(self->loop, self->context, &self->in_context);
}

static void leave(Transport *self, PyObject *entered)
{
    binding_leave(entered, &self->in_context);
}

static void detach_socket(Transport *self);

/* ---- the loop's list of transports libtapio holds --------------------- */

void transport_attach(Transport *self)
{
    Transport *head = &self->loop->open_transports;
    Py_INCREF(self);
    self->next = head;
    self->prev = head->prev;
    head->prev->next = self;
    head->prev = self;
}

/* libtapio is done with it: connection_lost ran, or the loop closed. */
static void transport_detach(Transport *self)
{
    if (!self->prev)
        return;
    self->lost = true;
    self->prev->next = self->next;
    self->next->prev = self->prev;
    self->prev = self->next = NULL;
    Py_DECREF(self);
}

void transport_release_all(LoopCore *loop)
{
    Transport *head = &loop->open_transports;
    while (head->next != head) {
        Transport *self = head->next;
        self->dropped_open = self->t && !tapio_transport_is_closing(self->t);
        /* A socket view is detached (libtapio closes the fd); a pipe or the
         * user's socket object stays open, as asyncio leaves it when the
         * loop closes under it. */
        if (!self->close_view && !self->sock_dup)
            detach_socket(self);
        transport_detach(self);
    }
}

/* ---- the libtapio protocol table -------------------------------------- */

/* An accepted connection gets its socket object and extra info here, the
 * first moment its fd is known. */
static int fill_accepted_extra(Transport *self)
{
    PyObject *pair = PyObject_CallFunction(self->server->make_extra, "i",
                                           tapio_transport_fd(self->t));
    if (!pair)
        return -1;
    PyObject *sock, *extra;
    if (!PyArg_ParseTuple(pair, "OO", &sock, &extra)) {
        Py_DECREF(pair);
        return -1;
    }
    Py_XSETREF(self->sock, Py_NewRef(sock));
    Py_XSETREF(self->extra, Py_NewRef(extra));
    Py_DECREF(pair);
    return 0;
}

static void on_connection_made(tapio_transport *t, void *user)
{
    Transport *self = user;
    if (!self->t) { /* accepted: first sight of the libtapio transport */
        self->t = t;
        tapio_transport_ref(t);
    }
    PyObject *ctx = enter(self);
    if (self->server && !self->sock && fill_accepted_extra(self) < 0) {
        protocol_failed(self, "Error on transport creation for incoming "
                              "connection", true);
        leave(self, ctx);
        return;
    }
    PyObject *res = call_protocol(self, self->loop->state->str_connection_made,
                                  (PyObject *)self);
    if (!res)
        protocol_failed(self, "protocol.connection_made() failed", false);
    Py_XDECREF(res);
    leave(self, ctx);
}

static void on_data_received(tapio_transport *t, const void *data,
                             size_t len, void *user)
{
    (void)t;
    Transport *self = user;
    PyObject *ctx = enter(self);
    PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    PyObject *res = bytes ? call_protocol(self,
                                          self->loop->state->str_data_received,
                                          bytes)
                          : NULL;
    Py_XDECREF(bytes);
    if (!res) /* a pipe goes on, as asyncio's read pipe: only reported */
        protocol_failed(self,
                        "Fatal error: protocol.data_received() call failed.",
                        !self->close_view);
    Py_XDECREF(res);
    leave(self, ctx);
}

static bool eof_received(tapio_transport *t, Transport *self)
{
    PyObject *res = call_protocol(self, self->loop->state->str_eof_received,
                                  NULL);
    if (!res) {
        protocol_failed(self,
                        "Fatal error: protocol.eof_received() call failed.",
                        !self->close_view);
        /* A socket is already closing with the error; a pipe closes as
         * usual, as asyncio's ends a pipe at EOF whatever eof_received did. */
        return !self->close_view;
    }
    int keep_open = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (keep_open < 0) {
        protocol_failed(self,
                        "Fatal error: protocol.eof_received() call failed.",
                        true);
        return true;
    }
    if (keep_open && tapio_transport_is_tls(t))
        tls_warn_kept_open();
    return keep_open;
}

static bool on_eof_received(tapio_transport *t, void *user)
{
    Transport *self = user;
    PyObject *ctx = enter(self);
    bool keep_open = eof_received(t, self);
    leave(self, ctx);
    return keep_open;
}

static PyObject *lost_exception(Transport *self, int err)
{
    if (self->lost_exc) {
        PyObject *exc = self->lost_exc;
        self->lost_exc = NULL;
        return exc;
    }
    if (!err)
        return Py_NewRef(Py_None);
    PyObject *exc = tls_exception(self->t, err);
    return exc || PyErr_Occurred() ? exc : binding_errno_exception(err);
}

static void detach_socket(Transport *self)
{
    if (!self->close_view && !self->sock_dup) {
        binding_detach_socket(&self->sock);
        return;
    }
    /* A pipe or the user's socket object: libtapio had its own dup, the
     * object is closed as asyncio closes it at the end (unless somebody set
     * _pipe to None, as asyncio's own tests do). */
    binding_close_socket(&self->sock);
}

static void on_connection_lost(tapio_transport *t, int err, void *user)
{
    Transport *self = user; /* the reference libtapio held, released below */
    Py_INCREF(self);        /* ... while its context is entered */
    PyObject *ctx = enter(self);
    PyObject *exc = lost_exception(self, err);
    if (tapio_transport_is_tls(t))
        tls_connection_over(self);
    if (exc) {
        PyObject *res = call_protocol(
            self, self->loop->state->str_connection_lost, exc);
        if (!res)
            protocol_failed(self, "protocol.connection_lost() failed", false);
        Py_XDECREF(res);
        Py_DECREF(exc);
    } else {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    transport_end(self);
    leave(self, ctx);
    Py_DECREF(self);
}

void transport_end(Transport *self)
{
    detach_socket(self);
    Py_CLEAR(self->protocol);
    transport_detach(self);
}

void transport_borrowed_end(Transport *self, bool loop_closed)
{
    if (self->lost)
        return;
    self->lost = true;
    if (loop_closed)
        self->dropped_open = self->t && !tapio_transport_is_closing(self->t);
    else
        detach_socket(self);
}

void transport_taken_over(Transport *self)
{
    Py_CLEAR(self->sock); /* the new transport holds it now */
    transport_detach(self);
}

static void on_pause_writing(tapio_transport *t, void *user)
{
    (void)t;
    Transport *self = user;
    PyObject *ctx = enter(self);
    PyObject *res = call_protocol(self, self->loop->state->str_pause_writing,
                                  NULL);
    if (!res)
        protocol_failed(self, "protocol.pause_writing() failed", false);
    Py_XDECREF(res);
    leave(self, ctx);
}

static void on_resume_writing(tapio_transport *t, void *user)
{
    (void)t;
    Transport *self = user;
    PyObject *ctx = enter(self);
    PyObject *res = call_protocol(self, self->loop->state->str_resume_writing,
                                  NULL);
    if (!res)
        protocol_failed(self, "protocol.resume_writing() failed", false);
    Py_XDECREF(res);
    leave(self, ctx);
}

/* BufferedProtocol: the transport reads straight into the protocol's
 * buffer, held from get_buffer until buffer_updated. */
static void *on_get_buffer(tapio_transport *t, size_t sizehint, size_t *len,
                           void *user)
{
    (void)t;
    (void)sizehint;
    Transport *self = user;
    PyObject *ctx = enter(self);
    PyObject *hint = PyLong_FromLong(-1);
    PyObject *buf = hint ? call_protocol(self,
                                         self->loop->state->str_get_buffer,
                                         hint)
                         : NULL;
    Py_XDECREF(hint);
    if (buf && PyObject_GetBuffer(buf, &self->view, PyBUF_WRITABLE) == 0) {
        Py_DECREF(buf);
        if (self->view.len > 0) {
            self->view_held = true;
            *len = (size_t)self->view.len;
            leave(self, ctx);
            return self->view.buf;
        }
        PyBuffer_Release(&self->view);
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
    } else {
        if (buf && PyErr_ExceptionMatches(PyExc_BufferError)) {
            /* Read-only memory: asyncio's recv_into() refuses it so. */
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "recv_into() argument 'buffer' must be read-write "
                         "bytes-like object, not %.100s",
                         Py_TYPE(buf)->tp_name);
        }
        Py_XDECREF(buf);
    }
    protocol_failed(self, "Fatal error: protocol.get_buffer() call failed.",
                    true);
    *len = 0; /* nothing is read: the transport is failing already */
    leave(self, ctx);
    return NULL;
}

static void release_view(Transport *self)
{
    if (self->view_held) {
        PyBuffer_Release(&self->view);
        self->view_held = false;
    }
}

static void on_buffer_updated(tapio_transport *t, size_t nbytes, void *user)
{
    (void)t;
    Transport *self = user;
    release_view(self);
    PyObject *ctx = enter(self);
    PyObject *n = PyLong_FromSize_t(nbytes);
    PyObject *res = n ? call_protocol(self,
                                      self->loop->state->str_buffer_updated, n)
                      : NULL;
    Py_XDECREF(n);
    if (!res)
        protocol_failed(self,
                        "Fatal error: protocol.buffer_updated() call failed.",
                        true);
    Py_XDECREF(res);
    leave(self, ctx);
}

static const tapio_protocol stream_protocol = {
    .connection_made = on_connection_made,
    .data_received = on_data_received,
    .eof_received = on_eof_received,
    .connection_lost = on_connection_lost,
    .pause_writing = on_pause_writing,
    .resume_writing = on_resume_writing,
};

static const tapio_protocol buffered_protocol = {
    .connection_made = on_connection_made,
    .eof_received = on_eof_received,
    .connection_lost = on_connection_lost,
    .pause_writing = on_pause_writing,
    .resume_writing = on_resume_writing,
    .get_buffer = on_get_buffer,
    .buffer_updated = on_buffer_updated,
};

static const tapio_protocol *table_for(Transport *self, PyObject *protocol)
{
    int buffered = PyObject_IsInstance(
        protocol, self->loop->state->BufferedProtocolType);
    if (buffered < 0)
        return NULL;
    return buffered ? &buffered_protocol : &stream_protocol;
}

/* ---- creation ---------------------------------------------------------- */

Transport *transport_new(LoopCore *loop, PyObject *protocol, PyObject *sock,
                         PyObject *extra, PyObject *context)
{
    return transport_new_of(loop->state->TransportType, loop, protocol, sock,
                            extra, context);
}

Transport *transport_new_of(PyTypeObject *type, LoopCore *loop,
                            PyObject *protocol, PyObject *sock,
                            PyObject *extra, PyObject *context)
{
    context = context ? Py_NewRef(context) : PyContext_CopyCurrent();
    if (!context)
        return NULL;
    Transport *self = PyObject_GC_New(Transport, type);
    if (!self) {
        Py_DECREF(context);
        return NULL;
    }
    self->context = context;
    self->in_context = false;
    self->extra = Py_NewRef(extra);
    self->weakreflist = NULL;
    self->dict = NULL;
    self->t = NULL;
    self->loop = (LoopCore *)Py_NewRef((PyObject *)loop);
    self->protocol = Py_NewRef(protocol);
    self->sock = Py_XNewRef(sock);
    self->close_view = false;
    self->sock_dup = false;
    self->user_fd = -1;
    self->server = NULL;
    self->prev = self->next = NULL;
    self->lost_exc = NULL;
    self->view_held = false;
    self->lost = false;
    self->dropped_open = false;
    self->borrowed = false;
    PyObject_GC_Track(self);
    return self;
}

const tapio_protocol *transport_table(Transport *self)
{
    return table_for(self, self->protocol);
}

/* ---- methods ------------------------------------------------------------ */

static bool usable(Transport *self)
{
    return self->t != NULL && !self->lost;
}

static PyObject *raise_tapio(int err)
{
    if (err == -ESHUTDOWN) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call write() after write_eof()");
        return NULL;
    }
    if (err == -EBUSY) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to write; sendfile is in progress");
        return NULL;
    }
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static bool is_bytes_like(PyObject *data)
{
    return PyBytes_Check(data) || PyByteArray_Check(data) ||
           PyMemoryView_Check(data);
}

/* The user closed the socket object it gave (sock=): asyncio's send
 * through that object fails with EBADF, a fatal error, when nothing is
 * queued. libtapio's dup would still send; the transport fails instead. */
static bool send_fails_as_asyncio(Transport *self, PyObject *data)
{
    if (!self->sock || tapio_transport_get_write_buffer_size(self->t))
        return false; /* asyncio only queues: no send is tried */
    Py_ssize_t len = PyObject_Size(data);
    if (len < 0)
        PyErr_Clear(); /* the write itself reports it */
    if (len <= 0 || !binding_socket_closed(self->sock))
        return false;
    tapio_transport_fail(self->t, -EBADF);
    return true;
}

static PyObject *transport_write(Transport *self, PyObject *data)
{
    if (!is_bytes_like(data))
        return PyErr_Format(PyExc_TypeError,
                            "data argument must be a bytes-like object, "
                            "not '%.100s'",
                            Py_TYPE(data)->tp_name);
    if (!usable(self))
        Py_RETURN_NONE; /* asyncio drops writes once the end is due */
    if (self->sock_dup && send_fails_as_asyncio(self, data))
        Py_RETURN_NONE;
    int err;
    /* pause_writing may run inside: in the caller's context. */
    self->loop->user_calls++;
    if (PyBytes_CheckExact(data)) {
        err = tapio_transport_write(self->t, PyBytes_AS_STRING(data),
                                    (size_t)PyBytes_GET_SIZE(data));
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            self->loop->user_calls--;
            return NULL;
        }
        err = tapio_transport_write(self->t, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    }
    self->loop->user_calls--;
    if (PyErr_Occurred()) /* pause_writing may have raised SystemExit */
        return NULL;
    return err ? raise_tapio(err) : Py_NewRef(Py_None);
}

static PyObject *transport_writelines(Transport *self, PyObject *list)
{
    PyObject *joined = PyBytes_FromStringAndSize(NULL, 0);
    if (!joined)
        return NULL;
    /* b''.join accepts exactly what asyncio's writelines accepts. */
    PyObject *data = PyObject_CallMethod(joined, "join", "O", list);
    Py_DECREF(joined);
    if (!data)
        return NULL;
    PyObject *res = transport_write(self, data);
    Py_DECREF(data);
    return res;
}

static PyObject *transport_write_eof(Transport *self, PyObject *unused)
{
    (void)unused;
    if (self->t && tapio_transport_is_tls(self->t)) {
        PyErr_SetString(PyExc_NotImplementedError,
                        "TLS transports cannot write EOF");
        return NULL;
    }
    if (usable(self)) {
        int err = tapio_transport_write_eof(self->t);
        if (err)
            return raise_tapio(err);
    }
    Py_RETURN_NONE;
}

static PyObject *transport_can_write_eof(Transport *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(!self->t || tapio_transport_can_write_eof(self->t));
}

static PyObject *transport_close(Transport *self, PyObject *unused)
{
    (void)unused;
    if (self->t && tapio_transport_is_tls(self->t) &&
        (!usable(self) || tapio_transport_is_closing(self->t)))
        tls_forget(self);
    else if (usable(self))
        tapio_transport_close(self->t);
    Py_RETURN_NONE;
}

static PyObject *transport_abort(Transport *self, PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_transport_abort(self->t);
    Py_RETURN_NONE;
}

static PyObject *transport_is_closing(Transport *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(!usable(self) || tapio_transport_is_closing(self->t));
}

static PyObject *transport_pause_reading(Transport *self, PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_transport_pause_reading(self->t);
    Py_RETURN_NONE;
}

static PyObject *transport_resume_reading(Transport *self, PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_transport_resume_reading(self->t);
    Py_RETURN_NONE;
}

static PyObject *transport_is_reading(Transport *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(usable(self) && tapio_transport_is_reading(self->t));
}

static PyObject *transport_get_write_buffer_size(Transport *self,
                                                 PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(
        self->t ? tapio_transport_get_write_buffer_size(self->t) : 0);
}

static PyObject *transport_get_write_buffer_limits(Transport *self,
                                                   PyObject *unused)
{
    (void)unused;
    size_t low = TAPIO_DEFAULT_HIGH_WATER / 4, high = TAPIO_DEFAULT_HIGH_WATER;
    if (self->t)
        tapio_transport_get_write_buffer_limits(self->t, &low, &high);
    return binding_limits_tuple(low, high);
}

static PyObject *transport_set_write_buffer_limits(Transport *self,
                                                   PyObject *args,
                                                   PyObject *kwargs)
{
    Py_ssize_t high, low;
    if (binding_parse_limits(args, kwargs, &high, &low) < 0)
        return NULL;
    if (usable(self)) {
        self->loop->user_calls++; /* pause/resume_writing: caller's context */
        tapio_transport_set_write_buffer_limits(self->t, high, low);
        self->loop->user_calls--;
    }
    if (PyErr_Occurred()) /* pause_writing may have raised SystemExit */
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *transport_set_protocol(Transport *self, PyObject *protocol)
{
    const tapio_protocol *table = table_for(self, protocol);
    if (!table)
        return NULL;
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    if (usable(self) && !self->borrowed)
        tapio_transport_set_protocol(self->t, table, self);
    Py_RETURN_NONE;
}

static PyObject *transport_get_protocol(Transport *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

/* libtapio's sendfile finished: callback(sent, errno) from the loop. */
static void sendfile_done(tapio_transport *t, size_t sent, int err, void *arg)
{
    (void)t;
    PyObject *callback = arg;
    PyObject *res = PyObject_CallFunction(callback, "ni", (Py_ssize_t)sent,
                                          -err);
    if (!res)
        PyErr_WriteUnraisable(callback);
    Py_XDECREF(res);
    Py_DECREF(callback);
}

/* _sendfile(fileno, offset, count, callback): zero-copy, after the buffered
 * bytes; loop.sendfile waits for the callback. */
static PyObject *transport_sendfile(Transport *self, PyObject *args)
{
    int fd;
    long long offset;
    Py_ssize_t count;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iLnO", &fd, &offset, &count, &callback))
        return NULL;
    if (!usable(self)) {
        PyErr_SetString(PyExc_RuntimeError, "Transport is closing");
        return NULL;
    }
    Py_INCREF(callback);
    int err = tapio_transport_sendfile(self->t, fd, (off_t)offset,
                                       (size_t)count, sendfile_done, callback);
    if (err) {
        Py_DECREF(callback);
        return raise_tapio(err);
    }
    Py_RETURN_NONE;
}

/* _sendfile_cancel() -> bytes sent: a cancelled loop.sendfile stops here. */
static PyObject *transport_sendfile_cancel(Transport *self, PyObject *unused)
{
    (void)unused;
    ssize_t sent = usable(self) ? tapio_transport_sendfile_cancel(self->t)
                                : -ENOENT;
    return PyLong_FromSsize_t(sent < 0 ? 0 : sent);
}

static PyObject *transport_repr(Transport *self)
{
    const char *state = self->dropped_open ? " open" /* the loop closed */
                        : self->lost ? " closed"
                        : self->t && tapio_transport_is_closing(self->t)
                            ? " closing"
                            : "";
    int fd = self->t ? tapio_transport_fd(self->t) : -1;
    if (fd >= 0 && self->sock_dup)
        fd = self->user_fd; /* the number asyncio shows: the socket's */
    size_t size = self->t ? tapio_transport_get_write_buffer_size(self->t) : 0;
    return PyUnicode_FromFormat("<%s%s fd=%d read=%s write=<bufsize=%zu>>",
                                Py_TYPE(self)->tp_name, state, fd,
                                usable(self) && tapio_transport_is_reading(self->t)
                                    ? "polling"
                                    : "idle",
                                size);
}

/* ---- lifetime --------------------------------------------------------- */

/* asyncio warns about a transport that was never closed once it is
 * collected; here that is one the loop had to close itself. */
static void transport_finalize(Transport *self)
{
    if (!self->dropped_open ||
        (self->close_view && (!self->sock || self->sock == Py_None)))
        return; /* a pipe whose object was taken away warns no more */
    self->dropped_open = false;
    binding_warn_unclosed((PyObject *)self);
    if (self->close_view || self->sock_dup)
        detach_socket(self); /* closes the object, as asyncio's __del__ */
}

static int transport_traverse(Transport *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->dict);
    Py_VISIT(self->loop);
    Py_VISIT(self->protocol);
    Py_VISIT(self->sock);
    Py_VISIT(self->lost_exc);
    Py_VISIT(self->server);
    Py_VISIT(self->context);
    return 0;
}

static int transport_clear(Transport *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->lost_exc);
    Py_CLEAR(self->server);
    Py_CLEAR(self->context);
    return 0;
}

static void transport_dealloc(Transport *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected by the warning machinery */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    release_view(self);
    transport_clear(self);
    if (self->t)
        tapio_transport_unref(self->t);
    Py_CLEAR(self->loop);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef transport_methods[] = {
    {"write", (PyCFunction)transport_write, METH_O, NULL},
    {"writelines", (PyCFunction)transport_writelines, METH_O, NULL},
    {"write_eof", (PyCFunction)transport_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)transport_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)transport_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)transport_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)transport_is_closing, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)transport_pause_reading, METH_NOARGS,
     NULL},
    {"resume_reading", (PyCFunction)transport_resume_reading, METH_NOARGS,
     NULL},
    {"is_reading", (PyCFunction)transport_is_reading, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)transport_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"get_write_buffer_limits",
     (PyCFunction)transport_get_write_buffer_limits, METH_NOARGS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))transport_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"set_protocol", (PyCFunction)transport_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)transport_get_protocol, METH_NOARGS, NULL},
    {"_sendfile", (PyCFunction)transport_sendfile, METH_VARARGS, NULL},
    {"_sendfile_cancel", (PyCFunction)transport_sendfile_cancel, METH_NOARGS,
     NULL},
    {"_start_tls", (PyCFunction)(void (*)(void))transport_start_tls,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef transport_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Transport, weakreflist),
     READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(Transport, dict), READONLY, NULL},
    /* asyncio's pipe transports keep their pipe object here. */
    {"_pipe", T_OBJECT, offsetof(Transport, sock), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* asyncio's start_tls() takes socket and TLS transports, not pipes (whose
 * pipe object the transport closes: close_view). */
static PyObject *transport_get_start_tls_compatible(Transport *self,
                                                    void *closure)
{
    (void)closure;
    return PyBool_FromLong(!self->close_view);
}

static PyGetSetDef transport_getset[] = {
    {"_start_tls_compatible",
     (getter)transport_get_start_tls_compatible, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot transport_slots[] = {
    {Py_tp_dealloc, transport_dealloc},
    {Py_tp_finalize, transport_finalize},
    {Py_tp_traverse, transport_traverse},
    {Py_tp_clear, transport_clear},
    {Py_tp_repr, transport_repr},
    {Py_tp_methods, transport_methods},
    {Py_tp_members, transport_members},
    {Py_tp_getset, transport_getset},
    {0, NULL},
};

PyType_Spec transport_spec = {
    .name = "tapio._tapio.Transport",
    .basicsize = sizeof(Transport),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
              Py_TPFLAGS_DISALLOW_INSTANTIATION, /* made by the loop only */
    .slots = transport_slots,
};
