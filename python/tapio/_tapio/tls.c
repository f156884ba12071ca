/* TLS for Python: libtapio's TLS layer (src/tls.c) driven by an engine over
 * the user's ssl.SSLContext. The engine is an ssl.SSLObject between two
 * ssl.MemoryBIOs, so every setting of the context (verification, CA files,
 * certificates, ciphers, ALPN, sni_callback, sessions) applies exactly as
 * in asyncio; the state machine, buffering and flow control are libtapio's.
 * Transport._start_tls puts a TLS transport over a stream transport. */
#include "binding.h"

#include <string.h>

typedef struct {
    PyObject *sslobj;      /* ssl.SSLObject */
    PyObject *incoming;    /* ssl.MemoryBIO: records from the peer */
    PyObject *outgoing;    /* ssl.MemoryBIO: records for the peer */
    PyObject *read;        /* bound methods of the hot path */
    PyObject *write;
    PyObject *pending;     /* sslobj.pending */
    PyObject *in_write;
    PyObject *out_read;
    PyObject *extra;       /* the TLS transport's extra info dict */
    PyObject *out;         /* records taken from outgoing, not yet sent */
    Py_ssize_t out_off;
    PyObject *exc;         /* the last error, as asyncio would raise it */
    PyObject *want_read;   /* ssl.SSLWantReadError */
    PyObject *want_write;  /* ssl.SSLWantWriteError */
    PyObject *verify_error;/* ssl.SSLCertVerificationError */
    PyObject *zero_return; /* ssl.SSLZeroReturnError */
    PyObject *on_handshake;/* on_handshake(exc or None), once */
    PyObject *handshake_timeout; /* as given, for the timeout's message */
    PyObject *str_pending; /* "pending", interned */
    bool handshaking;
    char message[256];
} PyTLS;

/* ---- results ---------------------------------------------------------- */

/* Turn the raised exception into the engine's result: the SSL module's
 * "want" errors mean -EAGAIN; anything else is kept for the caller. */
static int failed(PyTLS *e)
{
    PyObject *exc = binding_fetch_exception();
    if (!exc)
        return TAPIO_ETLS;
    if (PyErr_GivenExceptionMatches(exc, e->want_read) ||
        PyErr_GivenExceptionMatches(exc, e->want_write)) {
        Py_DECREF(exc);
        return -EAGAIN;
    }
    bool verify = PyErr_GivenExceptionMatches(exc, e->verify_error);
    Py_XSETREF(e->exc, exc);
    e->message[0] = '\0';
    PyObject *text = PyObject_Str(exc);
    const char *utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
    if (utf8)
        snprintf(e->message, sizeof(e->message), "%s", utf8);
    Py_XDECREF(text);
    PyErr_Clear();
    return verify ? TAPIO_ETLS_VERIFY : TAPIO_ETLS;
}

static PyObject *call0(PyObject *callable)
{
    return PyObject_CallNoArgs(callable);
}

/* An int result of a call, or the failure's result. */
static ssize_t size_result(PyTLS *e, PyObject *res)
{
    if (!res)
        return failed(e);
    Py_ssize_t n = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    return n < 0 && PyErr_Occurred() ? failed(e) : (ssize_t)n;
}

/* MemoryBIO.pending, asked for on every read and write. */
static Py_ssize_t bio_pending(PyTLS *e, PyObject *bio)
{
    PyObject *v = PyObject_GetAttr(bio, e->str_pending);
    Py_ssize_t n = v ? PyLong_AsSsize_t(v) : -1;
    Py_XDECREF(v);
    if (n < 0) {
        PyErr_Clear();
        return 0;
    }
    return n;
}

/* ---- the engine ---------------------------------------------------------- */

/* After the handshake: the extra info asyncio gives, before the protocol's
 * connection_made runs. getpeercert() failing fails the handshake, as in
 * asyncio. */
static int fill_extra(PyTLS *e)
{
    PyObject *peercert = PyObject_CallMethod(e->sslobj, "getpeercert", NULL);
    PyObject *cipher = peercert ? PyObject_CallMethod(e->sslobj, "cipher", NULL)
                                : NULL;
    PyObject *compression =
        cipher ? PyObject_CallMethod(e->sslobj, "compression", NULL) : NULL;
    int rc = -1;
    if (compression && PyDict_SetItemString(e->extra, "peercert", peercert) == 0 &&
        PyDict_SetItemString(e->extra, "cipher", cipher) == 0 &&
        PyDict_SetItemString(e->extra, "compression", compression) == 0 &&
        PyDict_SetItemString(e->extra, "ssl_object", e->sslobj) == 0)
        rc = 0;
    Py_XDECREF(peercert);
    Py_XDECREF(cipher);
    Py_XDECREF(compression);
    return rc < 0 ? failed(e) : 0;
}

static int py_handshake(void *state)
{
    PyTLS *e = state;
    PyObject *res = PyObject_CallMethod(e->sslobj, "do_handshake", NULL);
    if (!res)
        return failed(e);
    Py_DECREF(res);
    return fill_extra(e);
}

static size_t py_pending_in(void *state)
{
    PyTLS *e = state;
    return (size_t)bio_pending(e, e->incoming);
}

static ssize_t py_read(void *state, void *buf, size_t len)
{
    PyTLS *e = state;
    /* Nothing to decrypt and no record left: a read would only raise
     * SSLWantReadError, which costs more than asking. */
    if (py_pending_in(e) == 0) {
        ssize_t pending = size_result(e, call0(e->pending));
        if (pending == 0)
            return -EAGAIN;
    }
    if (len > PY_SSIZE_T_MAX)
        len = PY_SSIZE_T_MAX;
    PyObject *view = PyMemoryView_FromMemory(buf, (Py_ssize_t)len, PyBUF_WRITE);
    if (!view)
        return failed(e);
    PyObject *n = PyLong_FromSize_t(len);
    PyObject *args[2] = {n, view};
    PyObject *res = n ? PyObject_Vectorcall(e->read, args, 2, NULL) : NULL;
    Py_XDECREF(n);
    Py_DECREF(view);
    if (!res && PyErr_ExceptionMatches(e->zero_return)) {
        PyErr_Clear(); /* close_notify */
        return 0;
    }
    return size_result(e, res);
}

static ssize_t py_write(void *state, const void *buf, size_t len)
{
    PyTLS *e = state;
    PyObject *view = PyMemoryView_FromMemory((char *)buf, (Py_ssize_t)len,
                                             PyBUF_READ);
    if (!view)
        return failed(e);
    PyObject *res = PyObject_CallOneArg(e->write, view);
    Py_DECREF(view);
    ssize_t n = size_result(e, res);
    return n == 0 ? -EAGAIN : n;
}

static int py_shutdown(void *state)
{
    PyTLS *e = state;
    PyObject *res = PyObject_CallMethod(e->sslobj, "unwrap", NULL);
    if (!res)
        return failed(e);
    Py_DECREF(res);
    return 0;
}

static int py_feed(void *state, const void *data, size_t len)
{
    PyTLS *e = state;
    PyObject *view = PyMemoryView_FromMemory((char *)data, (Py_ssize_t)len,
                                             PyBUF_READ);
    PyObject *res = view ? PyObject_CallOneArg(e->in_write, view) : NULL;
    Py_XDECREF(view);
    if (!res)
        return failed(e);
    Py_DECREF(res);
    return 0;
}

static size_t py_peek_out(void *state, const void **data)
{
    PyTLS *e = state;
    if (e->out && e->out_off == PyBytes_GET_SIZE(e->out))
        Py_CLEAR(e->out);
    /* Records made since the last peek join what is held (only while the
     * socket is full is anything held). */
    if (bio_pending(e, e->outgoing) > 0) {
        PyObject *more = call0(e->out_read);
        if (!more || !PyBytes_Check(more)) {
            Py_XDECREF(more);
            PyErr_WriteUnraisable(e->outgoing);
        } else if (!e->out) {
            e->out = more;
            e->out_off = 0;
        } else {
            PyObject *rest = PyBytes_FromStringAndSize(
                PyBytes_AS_STRING(e->out) + e->out_off,
                PyBytes_GET_SIZE(e->out) - e->out_off);
            if (rest)
                PyBytes_ConcatAndDel(&rest, more);
            else
                Py_DECREF(more);
            if (!rest)
                PyErr_WriteUnraisable(e->outgoing);
            else {
                Py_SETREF(e->out, rest);
                e->out_off = 0;
            }
        }
    }
    if (!e->out)
        return 0;
    *data = PyBytes_AS_STRING(e->out) + e->out_off;
    return (size_t)(PyBytes_GET_SIZE(e->out) - e->out_off);
}

static void py_consume_out(void *state, size_t n)
{
    PyTLS *e = state;
    if (e->out)
        e->out_off += (Py_ssize_t)n;
}

static const char *py_error(void *state)
{
    PyTLS *e = state;
    return e->message[0] ? e->message : NULL;
}

static void py_destroy(void *state)
{
    PyTLS *e = state;
    Py_XDECREF(e->sslobj);
    Py_XDECREF(e->incoming);
    Py_XDECREF(e->outgoing);
    Py_XDECREF(e->read);
    Py_XDECREF(e->write);
    Py_XDECREF(e->pending);
    Py_XDECREF(e->in_write);
    Py_XDECREF(e->out_read);
    Py_XDECREF(e->extra);
    Py_XDECREF(e->out);
    Py_XDECREF(e->exc);
    Py_XDECREF(e->want_read);
    Py_XDECREF(e->want_write);
    Py_XDECREF(e->verify_error);
    Py_XDECREF(e->zero_return);
    Py_XDECREF(e->on_handshake);
    Py_XDECREF(e->handshake_timeout);
    Py_XDECREF(e->str_pending);
    PyMem_Free(e);
}

static const tapio_tls_engine python_engine = {
    .handshake = py_handshake,
    .read = py_read,
    .write = py_write,
    .shutdown = py_shutdown,
    .feed = py_feed,
    .pending_in = py_pending_in,
    .peek_out = py_peek_out,
    .consume_out = py_consume_out,
    .error = py_error,
    .destroy = py_destroy,
};

/* ---- errors for Python ------------------------------------------------- */

/* The exception asyncio gives for a TLS transport's error code, or NULL
 * (with no exception set) when the code is a plain errno. */
PyObject *tls_exception(tapio_transport *t, int err)
{
    PyTLS *e = tapio_transport_is_tls(t) ? tapio_tls_engine_state(t) : NULL;
    if (!e)
        return NULL;
    if ((err == TAPIO_ETLS || err == TAPIO_ETLS_VERIFY) && e->exc)
        return Py_NewRef(e->exc);
    if (err == -ECONNABORTED && e->handshaking)
        return PyObject_CallFunction(
            PyExc_ConnectionAbortedError, "N",
            PyUnicode_FromFormat("SSL handshake is taking longer than %R "
                                 "seconds: aborting the connection",
                                 e->handshake_timeout));
    if (err == -ECONNRESET && e->handshaking)
        return PyObject_CallNoArgs(PyExc_ConnectionResetError);
    if (err == -ETIMEDOUT && !e->handshaking)
        return PyObject_CallFunction(PyExc_TimeoutError, "s",
                                     "SSL shutdown timed out");
    return NULL;
}

/* The TLS keys of the extra info: what asyncio's SSLProtocol keeps itself;
 * the rest it asks the transport under it for. */
static const char *const session_keys[] = {
    "sslcontext", "ssl_object", "peercert", "cipher", "compression", NULL,
};

void tls_connection_over(Transport *face)
{
    /* asyncio's SSLProtocol.connection_lost lets go of the transport under
     * it before the protocol's connection_lost: from then on only the
     * session's facts are told, not the socket's. */
    if (!face->extra || !PyDict_Check(face->extra))
        return;
    PyObject *kept = PyDict_New();
    for (int i = 0; kept && session_keys[i]; i++) {
        PyObject *v = PyDict_GetItemString(face->extra, session_keys[i]);
        if (v && PyDict_SetItemString(kept, session_keys[i], v) < 0)
            Py_CLEAR(kept);
    }
    if (!kept) {
        PyErr_WriteUnraisable((PyObject *)face);
        return;
    }
    Py_XSETREF(face->extra, kept);
}

void tls_forget(Transport *face)
{
    /* asyncio's SSL transport, closed again, lets go of its SSLProtocol:
     * the context, the SSL object and the rest of the extra info go with
     * it (asyncio then raises AttributeError; here the default is given). */
    PyObject *empty = PyDict_New();
    if (!empty) {
        PyErr_WriteUnraisable((PyObject *)face);
        return;
    }
    Py_XSETREF(face->extra, empty);
}

void tls_warn_kept_open(void)
{
    PyObject *log = PyImport_ImportModule("asyncio.log");
    PyObject *logger = log ? PyObject_GetAttrString(log, "logger") : NULL;
    PyObject *res = logger ? PyObject_CallMethod(
                                 logger, "warning", "s",
                                 "returning true from eof_received() has no "
                                 "effect when using ssl")
                           : NULL;
    if (!res)
        PyErr_WriteUnraisable(logger);
    Py_XDECREF(res);
    Py_XDECREF(logger);
    Py_XDECREF(log);
}

/* ---- Transport._start_tls ------------------------------------------------ */

static PyObject *import_ssl_attr(const char *name)
{
    PyObject *ssl = PyImport_ImportModule("ssl");
    PyObject *v = ssl ? PyObject_GetAttrString(ssl, name) : NULL;
    Py_XDECREF(ssl);
    return v;
}

static PyObject *method(PyObject *obj, const char *name, bool ok)
{
    return ok ? PyObject_GetAttrString(obj, name) : NULL;
}

static PyTLS *engine_new(PyObject *sslobj, PyObject *incoming,
                         PyObject *outgoing, PyObject *extra)
{
    PyTLS *e = PyMem_Calloc(1, sizeof(*e));
    if (!e)
        return (PyTLS *)PyErr_NoMemory();
    e->sslobj = Py_NewRef(sslobj);
    e->incoming = Py_NewRef(incoming);
    e->outgoing = Py_NewRef(outgoing);
    e->extra = Py_NewRef(extra);
    e->handshaking = true;
    /* SSLObject's methods forward to its _sslobj: the hot path calls that
     * one directly where it exists. */
    PyObject *inner = PyObject_GetAttrString(sslobj, "_sslobj");
    if (!inner) {
        PyErr_Clear();
        inner = Py_NewRef(sslobj);
    }
    e->read = method(inner, "read", true);
    e->write = method(inner, "write", e->read);
    e->pending = method(inner, "pending", e->write);
    Py_DECREF(inner);
    e->in_write = method(incoming, "write", e->pending);
    e->out_read = method(outgoing, "read", e->in_write);
    e->want_read = e->out_read ? import_ssl_attr("SSLWantReadError") : NULL;
    e->want_write = e->want_read ? import_ssl_attr("SSLWantWriteError") : NULL;
    e->verify_error =
        e->want_write ? import_ssl_attr("SSLCertVerificationError") : NULL;
    e->zero_return =
        e->verify_error ? import_ssl_attr("SSLZeroReturnError") : NULL;
    e->str_pending =
        e->zero_return ? PyUnicode_InternFromString("pending") : NULL;
    if (!e->str_pending) {
        py_destroy(e);
        return NULL;
    }
    return e;
}

/* The handshake ended: tell Python (a TLS transport that failed is over:
 * its protocol never saw it, so it lets go of its socket here). */
static void handshake_done(tapio_transport *t, int err, void *arg)
{
    Transport *face = arg;
    PyTLS *e = tapio_tls_engine_state(t);
    PyObject *exc = Py_NewRef(Py_None);
    if (err) {
        Py_SETREF(exc, tls_exception(t, err));
        if (!exc && !PyErr_Occurred())
            exc = binding_errno_exception(err);
    }
    if (!err && face->lost_exc) /* connection_made failed: as asyncio's */
        Py_SETREF(exc, Py_NewRef(face->lost_exc)); /* waiter, that error */
    if (e)
        e->handshaking = false;
    PyObject *callback = e ? e->on_handshake : NULL;
    if (e)
        e->on_handshake = NULL;
    Py_INCREF(face);
    PyObject *ctx = binding_enter(face->loop, face->context,
                                  &face->in_context);
    PyObject *res = exc && callback ? PyObject_CallOneArg(callback, exc) : NULL;
    if (!res && PyErr_Occurred())
        PyErr_WriteUnraisable(callback);
    Py_XDECREF(res);
    Py_XDECREF(exc);
    Py_XDECREF(callback);
    if (err)
        transport_end(face);
    binding_leave(ctx, &face->in_context);
    Py_DECREF(face);
}

/* raw._start_tls(cls=, protocol=, sslobject=, incoming=, outgoing=, extra=,
 *                handshake_timeout=, shutdown_timeout=, on_handshake=,
 *                connected=) -> the TLS transport, an instance of cls (a
 * subclass of Transport adding no fields); `connected` says the protocol
 * saw connection_made already (start_tls). The raw transport is taken over:
 * it gets no more callbacks, and the TLS transport keeps its socket. */
PyObject *transport_start_tls(Transport *raw, PyObject *args,
                              PyObject *kwargs)
{
    static char *names[] = {"cls", "protocol", "sslobject", "incoming",
                            "outgoing", "extra", "handshake_timeout",
                            "shutdown_timeout", "on_handshake", "connected",
                            NULL};
    PyObject *type, *protocol, *sslobj, *incoming, *outgoing, *extra;
    PyObject *handshake_timeout, *on_handshake;
    double sd;
    int connected;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOO!OdOp:_start_tls",
                                     names, &type, &protocol, &sslobj,
                                     &incoming, &outgoing, &PyDict_Type,
                                     &extra, &handshake_timeout, &sd,
                                     &on_handshake, &connected))
        return NULL;
    double hs = PyFloat_AsDouble(handshake_timeout);
    if (hs == -1.0 && PyErr_Occurred())
        return NULL;
    PyTypeObject *cls = (PyTypeObject *)type;
    if (!PyType_Check(type) ||
        !PyType_IsSubtype(cls, raw->loop->state->TransportType) ||
        cls->tp_basicsize != raw->loop->state->TransportType->tp_basicsize)
        return PyErr_Format(PyExc_TypeError,
                            "_start_tls() needs a Transport subclass");
    if (!raw->t || raw->lost || tapio_transport_is_closing(raw->t)) {
        PyErr_SetString(PyExc_RuntimeError, "Transport is closing");
        return NULL;
    }
    /* The TLS transport's protocol runs in a copy of the context current
     * now: start_tls's caller's (as asyncio's reader is re-added from
     * there), the connecting caller's, or an accepted connection's. */
    Transport *face = transport_new_of(cls, raw->loop, protocol, raw->sock,
                                       extra, NULL);
    const tapio_protocol *table = face ? transport_table(face) : NULL;
    if (face) { /* the user's own socket object goes on with the face */
        face->sock_dup = raw->sock_dup;
        face->user_fd = raw->user_fd;
    }
    PyTLS *e = table ? engine_new(sslobj, incoming, outgoing, extra) : NULL;
    if (!e) {
        Py_XDECREF(face);
        return NULL;
    }
    e->on_handshake = Py_NewRef(on_handshake);
    e->handshake_timeout = Py_NewRef(handshake_timeout);
    tapio_tls_options opts = {
        .engine = &python_engine,
        .engine_state = e,
        .handshake_timeout = hs,
        .shutdown_timeout = sd,
        .skip_connection_made = connected,
    };
    int err = tapio_tls_start(raw->t, &opts, table, face, handshake_done, face,
                              &face->t);
    if (err) {
        face->t = NULL;
        face->sock_dup = false;
        Py_CLEAR(face->sock); /* still the raw transport's */
        Py_DECREF(face);
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    tapio_transport_ref(face->t);
    transport_attach(face);
    transport_taken_over(raw);
    return (PyObject *)face;
}
