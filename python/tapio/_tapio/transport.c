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

/* One of the addresses libtapio read when the connection was accepted, in
 * Python's form (None if the socket had none, as asyncio's extra gives). */
static PyObject *accepted_address(Transport *self, bool local, int *family)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int err = local ? tapio_transport_sockname(self->t, &ss, &len)
                    : tapio_transport_peername(self->t, &ss, &len);
    if (err)
        return Py_NewRef(Py_None);
    if (family)
        *family = ss.ss_family;
    return binding_sockaddr_to_py((struct sockaddr *)&ss, len);
}

/* An accepted connection gets its socket object and extra info here, the
 * first moment its fd is known: make_extra(fd, family, sockname, peername)
 * with what libtapio already knows, so no system call asks again. */
static int fill_accepted_extra(Transport *self)
{
    int family = -1; /* unknown: the socket module asks the kernel */
    PyObject *sockname = accepted_address(self, true, &family);
    PyObject *peername = sockname ? accepted_address(self, false, NULL) : NULL;
    PyObject *pair = peername ? PyObject_CallFunction(
                                    self->server->make_extra, "iiOO",
                                    tapio_transport_fd(self->t), family,
                                    sockname, peername)
                              : NULL;
    Py_XDECREF(sockname);
    Py_XDECREF(peername);
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
    if (self->half_made) {
        tapio_transport_pause_reading(t);
        leave(self, ctx);
        return;
    }
    PyObject *res = call_protocol(self, self->loop->state->str_connection_made,
                                  (PyObject *)self);
    /* A TLS transport's is fatal: asyncio's SSLProtocol calls it from the
     * raw transport's buffer_updated, whose failure closes the connection. */
    bool tls = tapio_transport_is_tls(t);
    if (!res)
        protocol_failed(self, tls ? "Fatal error: protocol.buffer_updated() "
                                    "call failed."
                                  : "protocol.connection_made() failed",
                        tls);
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

static void stop_asserting(Transport *self);

static void detach_socket(Transport *self)
{
    stop_asserting(self);
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

PyObject *transport_take_lost_exc(Transport *self)
{
    PyObject *exc = self->lost_exc;
    self->lost_exc = NULL;
    return exc;
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
    self->limits_shown = NULL;
    self->asserting_fd = -1;
    self->view_held = false;
    self->lost = false;
    self->dropped_open = false;
    self->borrowed = false;
    self->half_made = false;
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

/* A write refused by libtapio, as asyncio's `method` refuses it. */
static PyObject *raise_write_error(int err, const char *method)
{
    if (err == -ESHUTDOWN)
        return PyErr_Format(PyExc_RuntimeError,
                            "Cannot call %s() after write_eof()", method);
    if (err == -EBUSY)
        return PyErr_Format(PyExc_RuntimeError,
                            "unable to %s; sendfile is in progress", method);
    errno = -err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *raise_tapio(int err)
{
    return raise_write_error(err, "write");
}

static bool is_bytes_like(PyObject *data)
{
    return PyBytes_Check(data) || PyByteArray_Check(data) ||
           PyMemoryView_Check(data);
}

static bool is_tls(Transport *self)
{
    return self->t && tapio_transport_is_tls(self->t);
}

/* asyncio's write pipe asserts its data's type; the others raise. */
static PyObject *not_bytes_like(Transport *self, PyObject *data)
{
    if (self->close_view && !is_tls(self)) {
        PyObject *text = PyObject_Repr(data);
        if (text) {
            PyErr_SetObject(PyExc_AssertionError, text);
            Py_DECREF(text);
        }
        return NULL;
    }
    return PyErr_Format(PyExc_TypeError,
                        "data argument must be a bytes-like object, "
                        "not '%.100s'",
                        Py_TYPE(data)->tp_name);
}

/* The data could not be sent (a non-contiguous buffer, a str in TLS):
 * asyncio finds out in its send and fails the transport there, reporting
 * the error, which also goes to connection_lost; the caller gets None. A
 * transport that is closing drops the data first, as asyncio's does. */
static PyObject *write_failed(Transport *self)
{
    if (!usable(self) || tapio_transport_is_closing(self->t)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    protocol_failed(self,
                    is_tls(self)       ? "Fatal error on SSL protocol"
                    : self->close_view ? "Fatal write error on pipe transport"
                                       : "Fatal write error on socket "
                                         "transport",
                    true);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

/* asyncio's write pipe takes the byte count os.write() returns for a count
 * of items: for a memoryview of items of several bytes, written whole, it
 * keeps an empty remainder and its writer callback then fails its
 * assertion on every loop iteration until the pipe closes, each failure
 * reported through the exception handler. The same here, on the pipe
 * object's own fd (libtapio writes a duplicate). */
static PyObject *data_should_not_be_empty(PyObject *unused, PyObject *noargs)
{
    (void)unused;
    (void)noargs;
    PyErr_SetString(PyExc_AssertionError, "Data should not be empty");
    return NULL;
}

static PyMethodDef write_ready_def = {
    "_write_ready", data_should_not_be_empty, METH_NOARGS, NULL};

static void start_asserting(Transport *self)
{
    int fd = PyObject_AsFileDescriptor(self->sock);
    PyObject *callback = fd >= 0 ? PyCFunction_New(&write_ready_def, NULL)
                                 : NULL;
    PyObject *res = callback ? PyObject_CallMethod((PyObject *)self->loop,
                                                   "_add_writer", "iO", fd,
                                                   callback)
                             : NULL;
    if (res)
        self->asserting_fd = fd;
    else
        PyErr_WriteUnraisable((PyObject *)self);
    Py_XDECREF(res);
    Py_XDECREF(callback);
}

/* The pipe closes: the writer goes before its fd does. asyncio's runs once
 * more, after connection_lost in the same iteration (its event was in):
 * that last failure comes as a callback of its own. */
static void stop_asserting(Transport *self)
{
    if (self->asserting_fd < 0)
        return;
    PyObject *exc = binding_fetch_exception();
    PyObject *loop = (PyObject *)self->loop;
    PyObject *res = PyObject_CallMethod(loop, "_remove_writer", "i",
                                        self->asserting_fd);
    self->asserting_fd = -1;
    PyObject *callback = res ? PyCFunction_New(&write_ready_def, NULL) : NULL;
    PyObject *handle = callback ? PyObject_CallMethod(loop, "call_soon", "O",
                                                      callback)
                                : NULL;
    if (!handle)
        PyErr_Clear(); /* the loop closed: nothing runs any more */
    Py_XDECREF(handle);
    Py_XDECREF(callback);
    Py_XDECREF(res);
    binding_restore_exception(exc);
}

/* Whether asyncio's pipe write of `view` (of `data`) would leave that
 * empty remainder: it had nothing buffered and len(data) is not the byte
 * count. */
static bool leaves_empty_remainder(Transport *self, PyObject *data,
                                   const Py_buffer *view, size_t buffered)
{
    if (!self->close_view || is_tls(self) || self->asserting_fd >= 0 ||
        buffered || view->len == 0 || !PyMemoryView_Check(data) ||
        tapio_transport_is_closing(self->t))
        return false;
    Py_ssize_t items = PyObject_Size(data);
    if (items < 0)
        PyErr_Clear();
    return items >= 0 && items != view->len;
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
        return not_bytes_like(self, data);
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
            /* A released view: asyncio's len(data) raises at once. */
            return PyErr_ExceptionMatches(PyExc_BufferError)
                       ? write_failed(self)
                       : NULL;
        }
        size_t buffered = tapio_transport_get_write_buffer_size(self->t);
        err = tapio_transport_write(self->t, view.buf, (size_t)view.len);
        if (!err && leaves_empty_remainder(self, data, &view, buffered))
            start_asserting(self);
        PyBuffer_Release(&view);
    }
    self->loop->user_calls--;
    if (PyErr_Occurred()) /* pause_writing may have raised SystemExit */
        return NULL;
    return err ? raise_tapio(err) : Py_NewRef(Py_None);
}

/* Writes the buffers of `items` (a list) with one writev; a buffer that
 * cannot be had fails the transport (write_failed) with nothing sent, as
 * asyncio's sendmsg() and its TLS write fail. */
static PyObject *write_items(Transport *self, PyObject *items,
                             const char *method)
{
    Py_ssize_t n = PyList_GET_SIZE(items), held = 0;
    Py_buffer *views = PyMem_New(Py_buffer, n ? n : 1);
    struct iovec *iov = PyMem_New(struct iovec, n ? n : 1);
    PyObject *res = NULL;
    if (!views || !iov) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < n; held++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(items, held), &views[held],
                               PyBUF_SIMPLE) < 0) {
            res = write_failed(self);
            goto done;
        }
        iov[held].iov_base = views[held].buf;
        iov[held].iov_len = (size_t)views[held].len;
    }
    if (!usable(self)) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    self->loop->user_calls++; /* pause_writing: in the caller's context */
    int err = tapio_transport_writev(self->t, iov, (int)n);
    self->loop->user_calls--;
    res = PyErr_Occurred() ? NULL
          : err            ? raise_write_error(err, method)
                           : Py_NewRef(Py_None);
done:
    while (held > 0)
        PyBuffer_Release(&views[--held]);
    PyMem_Free(views);
    PyMem_Free(iov);
    return res;
}

/* TLS (asyncio's _SSLProtocolTransport.writelines): nothing once closing;
 * each item's len() is taken as it comes (what fails there raises, after
 * the items before it went), the SSL write of the items then fails the
 * transport for a str or a non-contiguous buffer. */
static PyObject *tls_writelines(Transport *self, PyObject *list)
{
    if (!usable(self) || tapio_transport_is_closing(self->t))
        Py_RETURN_NONE;
    PyObject *iter = PyObject_GetIter(list);
    PyObject *items = iter ? PyList_New(0) : NULL;
    if (!items) {
        Py_XDECREF(iter);
        return NULL;
    }
    PyObject *item, *failed = NULL;
    while ((item = PyIter_Next(iter))) {
        int ok = PyObject_Size(item) >= 0 && PyList_Append(items, item) == 0;
        Py_DECREF(item);
        if (!ok)
            break;
    }
    Py_DECREF(iter);
    if (PyErr_Occurred())
        failed = binding_fetch_exception();
    PyObject *res = write_items(self, items, "writelines");
    Py_DECREF(items);
    if (failed) {
        Py_XDECREF(res);
        binding_restore_exception(failed);
        return NULL;
    }
    return res;
}

#if PY_VERSION_HEX >= 0x030C0000
/* asyncio 3.12+'s socket writelines: a memoryview of each item (what is
 * not a buffer raises), then one sendmsg of them all. */
static PyObject *socket_writelines(Transport *self, PyObject *list)
{
    if (usable(self)) { /* after write_eof or during sendfile: refused */
        int err = tapio_transport_write(self->t, "", 0);
        if (err)
            return raise_write_error(err, "writelines");
    }
    int truth = PyObject_IsTrue(list);
    if (truth <= 0)
        return truth < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *iter = PyObject_GetIter(list);
    PyObject *items = iter ? PyList_New(0) : NULL;
    if (!items) {
        Py_XDECREF(iter);
        return NULL;
    }
    PyObject *item;
    while ((item = PyIter_Next(iter))) {
        PyObject *view = PyBytes_CheckExact(item)
                             ? Py_NewRef(item)
                             : PyMemoryView_FromObject(item);
        Py_DECREF(item);
        if (!view || PyList_Append(items, view) < 0) {
            Py_XDECREF(view);
            break;
        }
        Py_DECREF(view);
    }
    Py_DECREF(iter);
    PyObject *res = PyErr_Occurred() ? NULL
                                     : write_items(self, items, "writelines");
    Py_DECREF(items);
    return res;
}
#endif

static PyObject *transport_writelines(Transport *self, PyObject *list)
{
    if (is_tls(self))
        return tls_writelines(self, list);
#if PY_VERSION_HEX >= 0x030C0000
    if (!self->close_view)
        return socket_writelines(self, list);
#endif
    /* asyncio's WriteTransport.writelines: b''.join, then write(). */
    PyObject *joined = PyBytes_FromStringAndSize(NULL, 0);
    if (!joined)
        return NULL;
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
    return binding_limits_tuple(self->limits_shown, low, high);
}

static PyObject *transport_set_write_buffer_limits(Transport *self,
                                                   PyObject *args,
                                                   PyObject *kwargs)
{
    binding_limits limits;
    if (binding_parse_limits(args, kwargs, &limits) < 0)
        return NULL;
    Py_XSETREF(self->limits_shown, limits.shown);
    /* A TLS face pauses at size >= high: for high = 1.5 that is size >= 2,
     * where the others' size > high is size > 1. */
    if (limits.high_fractional && self->t && tapio_transport_is_tls(self->t))
        limits.high++;
    if (usable(self)) {
        self->loop->user_calls++; /* pause/resume_writing: caller's context */
        tapio_transport_set_write_buffer_limits(self->t, limits.high,
                                                limits.low);
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
    Py_VISIT(self->limits_shown);
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
    Py_CLEAR(self->limits_shown);
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

/* A second abort() of asyncio's write pipe, once its end is due, runs that
 * end twice: the second run fails (AttributeError) and the loop's exception
 * handler hears of it. The loop's Python side plays that part. */
static PyObject *write_pipe_abort(Transport *self, PyObject *unused)
{
    (void)unused;
    if (usable(self) && tapio_transport_is_closing(self->t) &&
        tapio_transport_get_write_buffer_size(self->t) == 0) {
        PyObject *res = PyObject_CallMethod((PyObject *)self->loop,
                                            "_pipe_ended_twice", "O", self);
        if (!res)
            return NULL;
        Py_DECREF(res);
    }
    return transport_abort(self, NULL);
}

/* The method tables: asyncio's BaseTransport, ReadTransport and
 * WriteTransport parts, so that each transport kind has asyncio's methods
 * and lacks the ones asyncio's lacks (calling those raises as there). */
#define BASE_METHODS                                                         \
    {"close", (PyCFunction)transport_close, METH_NOARGS, NULL},              \
    {"is_closing", (PyCFunction)transport_is_closing, METH_NOARGS, NULL},    \
    {"set_protocol", (PyCFunction)transport_set_protocol, METH_O, NULL},     \
    {"get_protocol", (PyCFunction)transport_get_protocol, METH_NOARGS, NULL}

#define READ_METHODS                                                         \
    {"pause_reading", (PyCFunction)transport_pause_reading, METH_NOARGS,     \
     NULL},                                                                  \
    {"resume_reading", (PyCFunction)transport_resume_reading, METH_NOARGS,   \
     NULL},                                                                  \
    {"is_reading", (PyCFunction)transport_is_reading, METH_NOARGS, NULL}

/* All of WriteTransport but abort, which differs for a write pipe. */
#define WRITE_METHODS                                                        \
    {"write", (PyCFunction)transport_write, METH_O, NULL},                   \
    {"writelines", (PyCFunction)transport_writelines, METH_O, NULL},         \
    {"write_eof", (PyCFunction)transport_write_eof, METH_NOARGS, NULL},      \
    {"can_write_eof", (PyCFunction)transport_can_write_eof, METH_NOARGS,     \
     NULL},                                                                  \
    {"get_write_buffer_size", (PyCFunction)transport_get_write_buffer_size,  \
     METH_NOARGS, NULL},                                                     \
    {"get_write_buffer_limits",                                              \
     (PyCFunction)transport_get_write_buffer_limits, METH_NOARGS, NULL},     \
    {"set_write_buffer_limits",                                              \
     (PyCFunction)(void (*)(void))transport_set_write_buffer_limits,         \
     METH_VARARGS | METH_KEYWORDS, NULL}

static PyMethodDef transport_methods[] = {
    BASE_METHODS,
    READ_METHODS,
    WRITE_METHODS,
    {"abort", (PyCFunction)transport_abort, METH_NOARGS, NULL},
    {"_sendfile", (PyCFunction)transport_sendfile, METH_VARARGS, NULL},
    {"_sendfile_cancel", (PyCFunction)transport_sendfile_cancel, METH_NOARGS,
     NULL},
    {"_start_tls", (PyCFunction)(void (*)(void))transport_start_tls,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

/* asyncio's read pipe is a ReadTransport: no abort, no write side. */
static PyMethodDef read_pipe_methods[] = {
    BASE_METHODS,
    READ_METHODS,
    {NULL, NULL, 0, NULL},
};

/* asyncio's write pipe is a Transport that implements no reading: the
 * reading methods are asyncio.ReadTransport's (NotImplementedError). */
static PyMethodDef write_pipe_methods[] = {
    BASE_METHODS,
    WRITE_METHODS,
    {"abort", (PyCFunction)write_pipe_abort, METH_NOARGS, NULL},
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

/* Every transport type shares the object layout and lifetime; only the
 * methods (and the stream's getters) differ. */
#define TRANSPORT_SLOTS(methods)                                             \
    {Py_tp_dealloc, transport_dealloc},                                      \
    {Py_tp_finalize, transport_finalize},                                    \
    {Py_tp_traverse, transport_traverse},                                    \
    {Py_tp_clear, transport_clear},                                          \
    {Py_tp_repr, transport_repr},                                            \
    {Py_tp_methods, methods},                                                \
    {Py_tp_members, transport_members}

static PyType_Slot transport_slots[] = {
    TRANSPORT_SLOTS(transport_methods),
    {Py_tp_getset, transport_getset},
    {0, NULL},
};

static PyType_Slot read_pipe_slots[] = {
    TRANSPORT_SLOTS(read_pipe_methods),
    {0, NULL},
};

static PyType_Slot write_pipe_slots[] = {
    TRANSPORT_SLOTS(write_pipe_methods),
    {0, NULL},
};

/* Made by the loop only. */
#define TRANSPORT_FLAGS                                                      \
    (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |         \
     Py_TPFLAGS_DISALLOW_INSTANTIATION)

PyType_Spec transport_spec = {
    .name = "tapio._tapio.Transport",
    .basicsize = sizeof(Transport),
    .flags = TRANSPORT_FLAGS,
    .slots = transport_slots,
};

PyType_Spec read_pipe_transport_spec = {
    .name = "tapio._tapio.ReadPipeTransport",
    .basicsize = sizeof(Transport),
    .flags = TRANSPORT_FLAGS,
    .slots = read_pipe_slots,
};

PyType_Spec write_pipe_transport_spec = {
    .name = "tapio._tapio.WritePipeTransport",
    .basicsize = sizeof(Transport),
    .flags = TRANSPORT_FLAGS,
    .slots = write_pipe_slots,
};
