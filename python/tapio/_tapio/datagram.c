/* DatagramTransport: an asyncio.DatagramTransport over a libtapio datagram
 * endpoint. Like Transport, the type derives from its asyncio class and
 * keeps BaseTransport's `_extra` slot first. */
#include "binding.h"

#include <structmember.h>
#include <unistd.h>

struct DatagramTransport {
    PyObject_HEAD
    PyObject *extra;         /* asyncio.BaseTransport's `_extra` slot */
    PyObject *weakreflist;
    PyObject *dict;          /* instance attributes (tests patch methods) */
    tapio_datagram *d;       /* referenced while this object lives */
    LoopCore *loop;
    PyObject *protocol;
    PyObject *sock;          /* socket object viewing the fd */
    bool sock_dup;           /* the user's socket object (sock=); libtapio
                              * works on a dup: close it, not detach */
    int user_fd;             /* its fd number, shown as asyncio shows it */
    PyObject *address;       /* the remote address given, or None */
    PyObject *context;       /* contextvars.Context its protocol runs in */
    PyObject *limits_shown;  /* binding_limits' shown, or NULL */
    PyObject *lost_exc;      /* for connection_lost after a fatal error */
    int family;
    bool in_context;         /* context is entered (binding_enter) */
    bool lost;
    bool dropped_open;       /* the loop closed under it: warn when freed */
    /* The last sender's address as a Python object, reused while the same
     * peer keeps sending (the common request/response case). */
    struct sockaddr_storage from;
    socklen_t from_len;
    PyObject *from_obj;
    /* The last destination converted from Python, reused likewise. */
    struct sockaddr_storage to;
    socklen_t to_len;
    PyObject *to_obj;
};

/* Both transport types share asyncio's layout prefix (checked at import). */
_Static_assert(offsetof(DatagramTransport, weakreflist) ==
                   offsetof(Transport, weakreflist),
               "transport types must start alike");

/* ---- calling the protocol ------------------------------------------------ */

/* asyncio runs these from the loop: an error is reported, the endpoint
 * stays open; SystemExit and KeyboardInterrupt leave the loop. */
static void protocol_failed(DatagramTransport *self, const char *message)
{
    Py_XDECREF(binding_callback_failed(self->loop, message, (PyObject *)self,
                                       self->protocol));
}

/* Each libtapio callback runs in the transport's context (binding.h). */
static PyObject *enter(DatagramTransport *self)
{
    return binding_enter(self->loop, self->context, &self->in_context);
}

static void leave(DatagramTransport *self, PyObject *entered)
{
    binding_leave(entered, &self->in_context);
}

static void call(DatagramTransport *self, PyObject *name, PyObject *arg,
                 const char *message)
{
    PyObject *ctx = enter(self);
    PyObject *res = binding_call_method(self->protocol, name, arg);
    if (!res)
        protocol_failed(self, message);
    Py_XDECREF(res);
    leave(self, ctx);
}

static void on_connection_made(tapio_datagram *d, void *user)
{
    (void)d;
    DatagramTransport *self = user;
    call(self, self->loop->state->str_connection_made, (PyObject *)self,
         "protocol.connection_made() failed");
}

static PyObject *sender(DatagramTransport *self, const struct sockaddr *addr,
                        socklen_t len)
{
    if (self->from_obj && len == self->from_len &&
        memcmp(addr, &self->from, len) == 0)
        return Py_NewRef(self->from_obj);
    PyObject *obj = binding_sockaddr_to_py(addr, len);
    if (obj && len) {
        memcpy(&self->from, addr, len);
        self->from_len = len;
        Py_XSETREF(self->from_obj, Py_NewRef(obj));
    }
    return obj;
}

static void on_datagram_received(tapio_datagram *d, const void *data,
                                 size_t len, const struct sockaddr *addr,
                                 socklen_t addrlen, void *user)
{
    (void)d;
    DatagramTransport *self = user;
    PyObject *ctx = enter(self);
    PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    PyObject *from = bytes ? sender(self, addr, addrlen) : NULL;
    PyObject *res = NULL;
    if (from) {
        PyObject *args[3] = {self->protocol, bytes, from};
        res = self->protocol
                  ? PyObject_VectorcallMethod(
                        self->loop->state->str_datagram_received, args,
                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                  : Py_NewRef(Py_None);
    }
    Py_XDECREF(bytes);
    Py_XDECREF(from);
    if (!res)
        protocol_failed(self, "protocol.datagram_received() call failed.");
    Py_XDECREF(res);
    leave(self, ctx);
}

static void on_error_received(tapio_datagram *d, int err, void *user)
{
    (void)d;
    DatagramTransport *self = user;
    PyObject *exc = binding_errno_exception(err);
    if (!exc) {
        protocol_failed(self, "error_received");
        return;
    }
    call(self, self->loop->state->str_error_received, exc,
         "protocol.error_received() call failed.");
    Py_DECREF(exc);
}

static void detach_socket(DatagramTransport *self)
{
    if (self->sock_dup)
        binding_close_socket(&self->sock);
    else
        binding_detach_socket(&self->sock);
}

/* libtapio is done with it: connection_lost ran, or the loop closed (the
 * user's socket object then stays open, as asyncio leaves it, until this
 * transport is collected). */
static void forget(DatagramTransport *self, bool loop_closed)
{
    self->lost = true;
    if (!(loop_closed && self->sock_dup))
        detach_socket(self);
    if (PySet_Discard(self->loop->datagrams, (PyObject *)self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
}

static void on_connection_lost(tapio_datagram *d, int err, void *user)
{
    (void)d;
    DatagramTransport *self = user;
    Py_INCREF(self); /* the loop's set may hold the last reference */
    PyObject *exc = self->lost_exc ? self->lost_exc
                    : err          ? binding_errno_exception(err)
                                   : Py_NewRef(Py_None);
    self->lost_exc = NULL;
    if (exc)
        call(self, self->loop->state->str_connection_lost, exc,
             "protocol.connection_lost() failed");
    Py_XDECREF(exc);
    Py_CLEAR(self->protocol);
    forget(self, false);
    Py_DECREF(self);
}

static void on_pause_writing(tapio_datagram *d, void *user)
{
    (void)d;
    DatagramTransport *self = user;
    call(self, self->loop->state->str_pause_writing, NULL,
         "protocol.pause_writing() failed");
}

static void on_resume_writing(tapio_datagram *d, void *user)
{
    (void)d;
    DatagramTransport *self = user;
    call(self, self->loop->state->str_resume_writing, NULL,
         "protocol.resume_writing() failed");
}

static const tapio_datagram_protocol datagram_protocol = {
    .connection_made = on_connection_made,
    .datagram_received = on_datagram_received,
    .error_received = on_error_received,
    .connection_lost = on_connection_lost,
    .pause_writing = on_pause_writing,
    .resume_writing = on_resume_writing,
};

/* ---- creation and loop close --------------------------------------------- */

/* _wrap_datagram(sock, protocol, address, extra, user_sock=False): the
 * transport over a datagram socket. libtapio owns a socket it made; the
 * user's own (sock=) keeps its fd, libtapio works on a dup aliased to it
 * (as _wrap_socket). */
PyObject *datagram_wrap(LoopCore *loop, PyObject *const *args,
                        Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5)
        return PyErr_Format(PyExc_TypeError,
                            "_wrap_datagram() takes 4 or 5 arguments");
    int user_sock = nargs == 5 ? PyObject_IsTrue(args[4]) : 0;
    if (user_sock < 0)
        return NULL;
    PyObject *sock = args[0], *address = args[2];
    PyObject *fileno = PyObject_CallMethod(sock, "fileno", NULL);
    PyObject *family = fileno ? PyObject_GetAttrString(sock, "family") : NULL;
    int fd = fileno ? PyLong_AsLong(fileno) : -1;
    int fam = family ? PyLong_AsLong(family) : -1;
    Py_XDECREF(fileno);
    Py_XDECREF(family);
    if (PyErr_Occurred())
        return NULL;
    struct sockaddr_storage remote;
    socklen_t remote_len = 0;
    if (address != Py_None &&
        binding_py_to_sockaddr(address, fam, &remote, &remote_len) < 0)
        return NULL;
    DatagramTransport *self =
        PyObject_GC_New(DatagramTransport, loop->state->DatagramTransportType);
    if (!self)
        return NULL;
    memset((char *)self + offsetof(DatagramTransport, extra), 0,
           sizeof(*self) - offsetof(DatagramTransport, extra));
    self->extra = Py_NewRef(args[3]);
    self->loop = (LoopCore *)Py_NewRef((PyObject *)loop);
    self->protocol = Py_NewRef(args[1]);
    self->sock = Py_NewRef(sock);
    self->address = Py_NewRef(address);
    self->family = fam;
    self->context = PyContext_CopyCurrent();
    if (!self->context) { /* the fd is still the caller's */
        Py_DECREF(self);
        return NULL;
    }
    PyObject_GC_Track(self);
    self->user_fd = fd;
    if (user_sock) {
        fd = tapio_fd_dup_alias(loop->loop, fd);
        if (fd < 0) { /* the user's socket is untouched */
            errno = -fd;
            PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(self);
            return NULL;
        }
        self->sock_dup = true;
    }
    int err = tapio_datagram_from_fd(loop->loop, fd,
                                     remote_len ? (struct sockaddr *)&remote
                                                : NULL,
                                     remote_len, &datagram_protocol, self,
                                     &self->d);
    if (err || PySet_Add(loop->datagrams, (PyObject *)self) < 0) {
        if (err) {
            self->d = NULL;
            if (self->sock_dup) /* libtapio closed its dup only */
                Py_CLEAR(self->sock);
            else
                detach_socket(self); /* libtapio closed the fd */
            errno = -err;
            PyErr_SetFromErrno(PyExc_OSError);
        }
        Py_DECREF(self);
        return NULL;
    }
    tapio_datagram_ref(self->d);
#if PY_VERSION_HEX >= 0x030D0000
    /* asyncio counts a header per queued datagram from 3.13 on */
    tapio_datagram_set_queued_overhead(self->d, 8);
#endif
    return (PyObject *)self;
}

void datagram_release_all(LoopCore *loop)
{
    PyObject *open = PySequence_List(loop->datagrams);
    if (!open) {
        PyErr_WriteUnraisable(loop->datagrams);
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(open); i++) {
        DatagramTransport *self = (DatagramTransport *)PyList_GET_ITEM(open, i);
        self->dropped_open = !tapio_datagram_is_closing(self->d);
        forget(self, true);
    }
    Py_DECREF(open);
}

/* ---- methods ------------------------------------------------------------ */

static bool usable(DatagramTransport *self)
{
    return self->d && !self->lost;
}

/* The open (not closing) endpoint in the loop's set whose libtapio fd is
 * `fd` (a new reference), or NULL. */
PyObject *datagram_of_fd(LoopCore *loop, int fd)
{
    PyObject *iter = PyObject_GetIter(loop->datagrams), *item;
    while (iter && (item = PyIter_Next(iter))) {
        DatagramTransport *self = (DatagramTransport *)item;
        if (usable(self) && tapio_datagram_fd(self->d) == fd &&
            !tapio_datagram_is_closing(self->d)) {
            Py_DECREF(iter);
            return item;
        }
        Py_DECREF(item);
    }
    Py_XDECREF(iter);
    return NULL;
}

/* The destination for sendto: NULL for the remote address. -1 with an
 * exception to raise; for an address socket.sendto() would refuse, -3 when
 * with an OSError (gaierror, a path too long), -2 otherwise. */
static int destination(DatagramTransport *self, PyObject *addr,
                       const struct sockaddr **sa, socklen_t *len)
{
    *sa = NULL;
    *len = 0;
    if (self->address != Py_None) {
        int same = addr == Py_None ||
                   PyObject_RichCompareBool(addr, self->address, Py_EQ);
        if (same < 0)
            return -1;
        if (!same) {
            PyErr_Format(PyExc_ValueError,
                         "Invalid address: must be None or %R", self->address);
            return -1;
        }
        return 0;
    }
    if (addr == Py_None)
        return 0; /* a connected socket's peer, else -EDESTADDRREQ */
    if (addr != self->to_obj) {
        if (binding_py_to_sockaddr(addr, self->family, &self->to,
                                   &self->to_len) < 0)
            return PyErr_ExceptionMatches(PyExc_OSError) ? -3 : -2;
        Py_XSETREF(self->to_obj, Py_NewRef(addr));
    }
    *sa = (const struct sockaddr *)&self->to;
    *len = self->to_len;
    return 0;
}

/* asyncio's _fatal_error for a send that raised other than OSError: the
 * error (the current exception) is reported, the endpoint aborts and
 * connection_lost gets it; the caller gets None. */
static PyObject *send_failed(DatagramTransport *self)
{
    PyObject *exc = binding_callback_failed(
        self->loop, "Fatal write error on datagram transport",
        (PyObject *)self, self->protocol);
    if (!exc)
        return NULL; /* SystemExit, KeyboardInterrupt */
    /* Closing with nothing queued: connection_lost(None) is due already. */
    if (usable(self) && (!tapio_datagram_is_closing(self->d) ||
                         tapio_datagram_get_write_buffer_size(self->d) > 0)) {
        Py_XSETREF(self->lost_exc, Py_NewRef(exc));
        tapio_datagram_abort(self->d);
    }
    Py_DECREF(exc);
    Py_RETURN_NONE;
}

/* An OSError refusing sendto's address (the current exception) goes to
 * error_received, as asyncio hands socket.sendto()'s; what that raises
 * comes out of sendto. */
static PyObject *address_refused(DatagramTransport *self)
{
    PyObject *exc = binding_fetch_exception();
    if (!usable(self)) {
        Py_DECREF(exc);
        Py_RETURN_NONE;
    }
    PyObject *res = binding_call_method(
        self->protocol, self->loop->state->str_error_received, exc);
    Py_DECREF(exc);
    if (!res)
        return NULL;
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* libtapio's sendto; a refusal becomes the exception asyncio raises, or
 * its fatal error where asyncio's socket.sendto() raises. */
static PyObject *send_view(DatagramTransport *self, const void *buf,
                           size_t len, const struct sockaddr *sa,
                           socklen_t salen)
{
    /* error_received and pause_writing may run inside: in the caller's
     * context, as in asyncio. */
    self->loop->user_calls++;
    int err = tapio_datagram_sendto(self->d, buf, len, sa, salen);
    self->loop->user_calls--;
    if (PyErr_Occurred())
        return NULL;
    if (err == -EDESTADDRREQ) { /* socket.sendto(data, None) */
        PyErr_SetString(PyExc_TypeError,
                        "sendto() needs an address: the endpoint has no "
                        "remote address");
        return send_failed(self);
    }
    if (err && err != -EBADF) { /* -EBADF: dropped, as asyncio does */
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* Data whose buffer cannot be had (non-contiguous, released): asyncio
 * queues bytes(data) behind datagrams already queued; otherwise its send
 * fails (send_failed). */
static PyObject *send_unbuffered(DatagramTransport *self, PyObject *data,
                                 const struct sockaddr *sa, socklen_t salen)
{
    if (tapio_datagram_get_write_buffer_size(self->d) == 0)
        return send_failed(self);
    PyErr_Clear();
    PyObject *copy = PyBytes_FromObject(data);
    if (!copy)
        return NULL;
    PyObject *res = send_view(self, PyBytes_AS_STRING(copy),
                              (size_t)PyBytes_GET_SIZE(copy), sa, salen);
    Py_DECREF(copy);
    return res;
}

static PyObject *datagram_sendto(DatagramTransport *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"data", "addr", NULL};
    PyObject *data = NULL, *addr = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw < 1 || nargs + nkw > 2)
        return PyErr_Format(PyExc_TypeError,
                            "sendto() takes data and an optional addr");
    PyObject *slots[2] = {nargs > 0 ? args[0] : NULL,
                          nargs > 1 ? args[1] : NULL};
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        int slot = PyUnicode_CompareWithASCIIString(key, names[0]) == 0 ? 0
                   : PyUnicode_CompareWithASCIIString(key, names[1]) == 0 ? 1
                                                                         : -1;
        if (slot < 0 || slots[slot])
            return PyErr_Format(PyExc_TypeError,
                                "sendto() got an unexpected keyword argument "
                                "'%S'", key);
        slots[slot] = args[nargs + i];
    }
    data = slots[0];
    if (slots[1])
        addr = slots[1];
    if (!data || !(PyBytes_Check(data) || PyByteArray_Check(data) ||
                   PyMemoryView_Check(data)))
        return PyErr_Format(PyExc_TypeError,
                            "data argument must be a bytes-like object, not "
                            "'%.100s'", data ? Py_TYPE(data)->tp_name : "None");
#if PY_VERSION_HEX < 0x030D0000
    /* asyncio before 3.13 sends no empty datagram: its len(data) comes
     * first (and raises for a released view). */
    Py_ssize_t size = PyObject_Size(data);
    if (size <= 0)
        return size < 0 ? NULL : Py_NewRef(Py_None);
#endif
    const struct sockaddr *sa;
    socklen_t salen;
    int rc = destination(self, addr, &sa, &salen);
    if (rc == -1)
        return NULL;
    if (rc == -2) /* an address socket.sendto() refuses: asyncio's fatal error */
        return send_failed(self);
    if (rc == -3) /* its OSError goes to error_received, as asyncio's */
        return address_refused(self);
    if (!usable(self))
        Py_RETURN_NONE;
    if (self->sock_dup && !tapio_datagram_get_write_buffer_size(self->d) &&
        binding_socket_closed(self->sock)) {
        /* asyncio's send through the closed socket object: EBADF, given
         * to error_received; libtapio's dup is not used. */
        on_error_received(self->d, -EBADF, self);
        Py_RETURN_NONE;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return send_unbuffered(self, data, sa, salen);
    PyObject *res = send_view(self, view.buf, (size_t)view.len, sa, salen);
    PyBuffer_Release(&view);
    return res;
}

static PyObject *datagram_close(DatagramTransport *self, PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_datagram_close(self->d);
    Py_RETURN_NONE;
}

static PyObject *datagram_abort(DatagramTransport *self, PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_datagram_abort(self->d);
    Py_RETURN_NONE;
}

static PyObject *datagram_is_closing(DatagramTransport *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(!usable(self) || tapio_datagram_is_closing(self->d));
}

static PyObject *datagram_pause_reading(DatagramTransport *self,
                                        PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_datagram_pause_reading(self->d);
    Py_RETURN_NONE;
}

static PyObject *datagram_resume_reading(DatagramTransport *self,
                                         PyObject *unused)
{
    (void)unused;
    if (usable(self))
        tapio_datagram_resume_reading(self->d);
    Py_RETURN_NONE;
}

static PyObject *datagram_is_reading(DatagramTransport *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(usable(self) && tapio_datagram_is_reading(self->d));
}

static PyObject *datagram_get_write_buffer_size(DatagramTransport *self,
                                                PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->d ? tapio_datagram_get_write_buffer_size(
                                           self->d)
                                     : 0);
}

static PyObject *datagram_get_write_buffer_limits(DatagramTransport *self,
                                                  PyObject *unused)
{
    (void)unused;
    size_t low = TAPIO_DEFAULT_HIGH_WATER / 4, high = TAPIO_DEFAULT_HIGH_WATER;
    if (self->d)
        tapio_datagram_get_write_buffer_limits(self->d, &low, &high);
    return binding_limits_tuple(self->limits_shown, low, high);
}

static PyObject *datagram_set_write_buffer_limits(DatagramTransport *self,
                                                  PyObject *args,
                                                  PyObject *kwargs)
{
    binding_limits limits;
    if (binding_parse_limits(args, kwargs, &limits) < 0)
        return NULL;
    Py_XSETREF(self->limits_shown, limits.shown);
    if (usable(self)) {
        self->loop->user_calls++;
        tapio_datagram_set_write_buffer_limits(self->d, limits.high,
                                               limits.low);
        self->loop->user_calls--;
    }
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *datagram_set_protocol(DatagramTransport *self,
                                       PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *datagram_get_protocol(DatagramTransport *self,
                                       PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *datagram_repr(DatagramTransport *self)
{
    const char *state = self->lost ? " closed"
                        : self->d && tapio_datagram_is_closing(self->d)
                            ? " closing"
                            : "";
    int fd = self->d ? tapio_datagram_fd(self->d) : -1;
    if (fd >= 0 && self->sock_dup)
        fd = self->user_fd; /* the number asyncio shows: the socket's */
    return PyUnicode_FromFormat(
        "<%s%s fd=%d bufsize=%zu>", Py_TYPE(self)->tp_name, state, fd,
        self->d ? tapio_datagram_get_write_buffer_size(self->d) : (size_t)0);
}

/* ---- lifetime ------------------------------------------------------------ */

static void datagram_finalize(DatagramTransport *self)
{
    if (!self->dropped_open)
        return;
    self->dropped_open = false;
    binding_warn_unclosed((PyObject *)self);
    if (self->sock_dup)
        detach_socket(self); /* closes it, as asyncio's __del__ */
}

static int datagram_traverse(DatagramTransport *self, visitproc visit,
                             void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->dict);
    Py_VISIT(self->loop);
    Py_VISIT(self->protocol);
    Py_VISIT(self->sock);
    Py_VISIT(self->address);
    Py_VISIT(self->from_obj);
    Py_VISIT(self->to_obj);
    Py_VISIT(self->context);
    Py_VISIT(self->limits_shown);
    Py_VISIT(self->lost_exc);
    return 0;
}

static int datagram_clear(DatagramTransport *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->address);
    Py_CLEAR(self->from_obj);
    Py_CLEAR(self->to_obj);
    Py_CLEAR(self->context);
    Py_CLEAR(self->limits_shown);
    Py_CLEAR(self->lost_exc);
    return 0;
}

static void datagram_dealloc(DatagramTransport *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    datagram_clear(self);
    if (self->d)
        tapio_datagram_unref(self->d);
    Py_CLEAR(self->loop);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef datagram_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))datagram_sendto,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"close", (PyCFunction)datagram_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)datagram_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)datagram_is_closing, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)datagram_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)datagram_resume_reading, METH_NOARGS,
     NULL},
    {"is_reading", (PyCFunction)datagram_is_reading, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)datagram_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)datagram_get_write_buffer_limits,
     METH_NOARGS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))datagram_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"set_protocol", (PyCFunction)datagram_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)datagram_get_protocol, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef datagram_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(DatagramTransport, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(DatagramTransport, dict),
     READONLY, NULL},
    {"_address", T_OBJECT, offsetof(DatagramTransport, address), READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot datagram_slots[] = {
    {Py_tp_dealloc, datagram_dealloc},
    {Py_tp_finalize, datagram_finalize},
    {Py_tp_traverse, datagram_traverse},
    {Py_tp_clear, datagram_clear},
    {Py_tp_repr, datagram_repr},
    {Py_tp_methods, datagram_methods},
    {Py_tp_members, datagram_members},
    {0, NULL},
};

PyType_Spec datagram_transport_spec = {
    .name = "tapio._tapio.DatagramTransport",
    .basicsize = sizeof(DatagramTransport),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
              Py_TPFLAGS_DISALLOW_INSTANTIATION, /* made by the loop only */
    .slots = datagram_slots,
};

/* One (family, proto, local, remote) candidate as libtapio's; the
 * addresses are Python's (None for none). */
static int candidate_from_py(PyObject *item, tapio_datagram_candidate *c,
                             struct sockaddr_storage ss[2])
{
    PyObject *local, *remote;
    if (!PyArg_ParseTuple(item, "iiOO;datagram candidate", &c->family,
                          &c->protocol, &local, &remote))
        return -1;
    if (local != Py_None) {
        if (binding_py_to_sockaddr(local, c->family, &ss[0], &c->local_len) < 0)
            return -1;
        c->local = (struct sockaddr *)&ss[0];
    }
    if (remote != Py_None) {
        if (binding_py_to_sockaddr(remote, c->family, &ss[1], &c->remote_len) < 0)
            return -1;
        c->remote = (struct sockaddr *)&ss[1];
    }
    return 0;
}

/* _tapio.datagram_socket(candidates, *, reuse_port=False,
 * allow_broadcast=False) -> (fd, index of the candidate used): libtapio
 * makes, binds and connects the endpoint's socket, or raises the first
 * candidate's OSError, as asyncio's create_datagram_endpoint. */
PyObject *datagram_socket(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"candidates", "reuse_port", "allow_broadcast",
                             NULL};
    PyObject *seq;
    int reuse_port = 0, allow_broadcast = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$pp", kwlist, &seq,
                                     &reuse_port, &allow_broadcast))
        return NULL;
    Py_ssize_t n = PySequence_Size(seq);
    if (n < 0)
        return NULL;
    tapio_datagram_candidate *cs = PyMem_Calloc((size_t)n + 1, sizeof(*cs));
    struct sockaddr_storage *ss = PyMem_Calloc(2 * (size_t)n + 2, sizeof(*ss));
    PyObject *result = NULL;
    if (!cs || !ss) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(seq, i);
        int rc = item ? candidate_from_py(item, &cs[i], &ss[2 * i]) : -1;
        Py_XDECREF(item);
        if (rc < 0)
            goto done;
    }
    tapio_datagram_options opts = {.reuse_port = reuse_port,
                                   .allow_broadcast = allow_broadcast};
    size_t chosen = 0;
    int fd = tapio_datagram_socket(cs, (size_t)n, &opts, &chosen);
    if (fd < 0) {
        errno = -fd;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = Py_BuildValue("in", fd, (Py_ssize_t)chosen);
    if (!result)
        close(fd);
done:
    PyMem_Free(cs);
    PyMem_Free(ss);
    return result;
}
