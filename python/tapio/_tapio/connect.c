/* create_connection's C half: asyncio's shortcut for numeric addresses
 * (ipaddr_info), and connecting to resolved addresses with libtapio
 * (connect_socket), which hands back the connected fd or every attempt's
 * failed steps for Python to word as asyncio does. */
#include "binding.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- ipaddr_info ------------------------------------------------------- */

/* int(port) as asyncio tries it: None, b'' and '' are 0; 1 when the port is
 * not a number (a service name), -1 on other errors. */
static int port_number(PyObject *port, PyObject **out)
{
    if (port == Py_None ||
        ((PyBytes_Check(port) || PyUnicode_Check(port)) &&
         PyObject_Length(port) == 0)) {
        *out = PyLong_FromLong(0);
        return *out ? 0 : -1;
    }
    *out = PyNumber_Long(port);
    if (*out)
        return 0;
    if (PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        return 1;
    }
    return -1;
}

/* socket.inet_pton(af, host) succeeds: 1; fails with OSError: 0; -1 with
 * the error inet_pton raises otherwise (a NUL in host: ValueError). */
static int is_numeric(int af, PyObject *host)
{
    if (!PyUnicode_Check(host)) {
        PyErr_Format(PyExc_TypeError,
                     "inet_pton() argument 2 must be str, not %.100s",
                     Py_TYPE(host)->tp_name);
        return -1;
    }
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(host, &len);
    if (!text)
        return -1;
    if (strlen(text) != (size_t)len) {
        PyErr_SetString(PyExc_ValueError, "embedded null character");
        return -1;
    }
    unsigned char buf[sizeof(struct in6_addr)];
    return (af == AF_INET || af == AF_INET6) && inet_pton(af, text, buf) == 1;
}

static PyObject *socket_attr(const char *name)
{
    PyObject *socket = PyImport_ImportModule("socket");
    PyObject *value = socket ? PyObject_GetAttrString(socket, name) : NULL;
    Py_XDECREF(socket);
    return value;
}

static PyObject *info_for(PyObject *af, PyObject *type, int proto,
                          PyObject *host, PyObject *port, PyObject *flowinfo,
                          PyObject *scopeid)
{
    long family = PyLong_AsLong(af);
    PyObject *addr =
        family == AF_INET6
            ? PyTuple_Pack(4, host, port, flowinfo, scopeid)
            : PyTuple_Pack(2, host, port);
    if (!addr)
        return NULL;
    return Py_BuildValue("(OOisN)", af, type, proto, "", addr);
}

/* The candidate families: the given one, or AF_INET then AF_INET6. */
static PyObject *families_for(PyObject *family)
{
    long value = PyLong_AsLong(family);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    if (value != AF_UNSPEC)
        return PyTuple_Pack(1, family);
    PyObject *inet = socket_attr("AF_INET"), *inet6 = socket_attr("AF_INET6");
    PyObject *both = inet && inet6 ? PyTuple_Pack(2, inet, inet6) : NULL;
    Py_XDECREF(inet);
    Py_XDECREF(inet6);
    return both;
}

static PyObject *lookup_numeric(PyObject *host, PyObject *port,
                                PyObject *family, PyObject *type, int proto,
                                PyObject *flowinfo, PyObject *scopeid)
{
    PyObject *afs = families_for(family);
    if (!afs)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(afs); i++) {
        PyObject *af = PyTuple_GET_ITEM(afs, i);
        long value = PyLong_AsLong(af);
        int numeric = value == -1 && PyErr_Occurred()
                          ? -1 : is_numeric((int)value, host);
        if (numeric) {
            PyObject *res = numeric < 0 ? NULL
                                        : info_for(af, type, proto, host, port,
                                                   flowinfo, scopeid);
            Py_DECREF(afs);
            return res;
        }
    }
    Py_DECREF(afs);
    Py_RETURN_NONE;
}

static int long_value(PyObject *obj, long *out)
{
    *out = PyLong_Check(obj) ? PyLong_AsLong(obj) : -1;
    if (*out == -1 && PyErr_Occurred())
        PyErr_Clear();
    return PyLong_Check(obj);
}

/* ipaddr_info(host, port, family, type, proto, flowinfo=0, scopeid=0):
 * asyncio's _ipaddr_info, step for step: getaddrinfo's one answer for a
 * numeric host, or None when the resolver must answer. */
static PyObject *ipaddr_info(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *host, *port, *family, *type, *proto;
    PyObject *zero = PyLong_FromLong(0);
    PyObject *flowinfo = zero, *scopeid = zero;
    PyObject *res = NULL, *port_num = NULL, *decoded = NULL;
    if (!zero || !PyArg_ParseTuple(args, "OOOOO|OO:ipaddr_info", &host, &port,
                                   &family, &type, &proto, &flowinfo, &scopeid))
        goto done;
    long p, t;
    bool known_proto = long_value(proto, &p) &&
                       (p == 0 || p == IPPROTO_TCP || p == IPPROTO_UDP);
    int proto_for_type = 0;
    if (long_value(type, &t))
        proto_for_type = t == SOCK_STREAM ? IPPROTO_TCP
                         : t == SOCK_DGRAM ? IPPROTO_UDP : 0;
    if (!known_proto || host == Py_None || !proto_for_type) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    int r = port_number(port, &port_num);
    if (r) {
        res = r > 0 ? Py_NewRef(Py_None) : NULL;
        goto done;
    }
    if (PyBytes_Check(host)) {
        decoded = PyObject_CallMethod(host, "decode", "s", "idna");
        if (!decoded)
            goto done;
        host = decoded;
    }
    /* Linux's inet_pton takes no zone index ('::1%lo'): the resolver does. */
    PyObject *percent = PyUnicode_FromString("%");
    int has_zone = percent ? PySequence_Contains(host, percent) : -1;
    Py_XDECREF(percent);
    if (has_zone)
        res = has_zone > 0 ? Py_NewRef(Py_None) : NULL;
    else
        res = lookup_numeric(host, port_num, family, type, proto_for_type,
                             flowinfo, scopeid);
done:
    Py_XDECREF(port_num);
    Py_XDECREF(decoded);
    Py_XDECREF(zero);
    return res;
}

/* ---- connect_socket ---------------------------------------------------- */

/* A request in flight: the loop's `connects` dict maps its key to a
 * capsule of this, until the callback ran or the loop closed. */
typedef struct pending {
    LoopCore *loop;
    tapio_connect_req *req;
    PyObject *key;
    PyObject *callback;
} pending;

static void pending_forget(pending *p)
{
    if (PyDict_DelItem(p->loop->connects, p->key) < 0)
        PyErr_Clear();
    Py_DECREF(p->key);
    Py_DECREF(p->callback);
    free(p);
}

static PyObject *errors_list(const tapio_connect_result *r)
{
    PyObject *list = PyList_New((Py_ssize_t)r->nerrors);
    for (size_t i = 0; list && i < r->nerrors; i++) {
        const tapio_connect_error *e = &r->errors[i];
        PyObject *item = Py_BuildValue("(nnii)", (Py_ssize_t)e->address,
                                       (Py_ssize_t)e->local, (int)e->step,
                                       -e->err);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* callback(fd, address, errors): fd -1 on failure, errors None when
 * cancelled. A callback that fails leaves no fd open. */
static void on_result(const tapio_connect_result *r, void *arg)
{
    pending *p = arg;
    PyObject *errors = r->err == -ECANCELED ? Py_NewRef(Py_None)
                                            : errors_list(r);
    PyObject *res = errors ? PyObject_CallFunction(p->callback, "inO", r->fd,
                                                   (Py_ssize_t)r->address,
                                                   errors)
                           : NULL;
    Py_XDECREF(errors);
    if (!res) {
        if (r->fd >= 0)
            close(r->fd);
        PyObject *exc = binding_fetch_exception();
        binding_report(p->loop, "create_connection callback failed", exc,
                       NULL, NULL);
        Py_XDECREF(exc);
    }
    Py_XDECREF(res);
    pending_forget(p);
}

/* A list of getaddrinfo 5-tuples as libtapio addresses. */
static tapio_address *addresses_of(PyObject *infos, size_t *n)
{
    PyObject *seq = PySequence_Fast(infos, "addresses must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    tapio_address *out = calloc(count ? (size_t)count : 1, sizeof(*out));
    if (!out) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        /* (family, type, proto, canonname, address), as asyncio unpacks it */
        PyObject *info = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i),
                                         "not an address info");
        if (info && PySequence_Fast_GET_SIZE(info) != 5) {
            PyErr_SetString(PyExc_ValueError, "not an address info");
            Py_CLEAR(info);
        }
        if (!info)
            goto fail;
        PyObject **item = PySequence_Fast_ITEMS(info);
        tapio_address *a = &out[i];
        a->family = (int)PyLong_AsLong(item[0]);
        a->socktype = (int)PyLong_AsLong(item[1]);
        a->protocol = (int)PyLong_AsLong(item[2]);
        int rc = PyErr_Occurred() ? -1
                                  : binding_py_to_sockaddr(item[4], a->family,
                                                           &a->addr, &a->len);
        Py_DECREF(info);
        if (rc < 0)
            goto fail;
    }
    *n = (size_t)count;
    Py_DECREF(seq);
    return out;
fail:
    Py_DECREF(seq);
    free(out);
    return NULL;
}

static PyObject *start(LoopCore *loop, const tapio_address *addrs, size_t n,
                       const tapio_connect_options *opts, PyObject *callback)
{
    static unsigned long long counter;
    pending *p = calloc(1, sizeof(*p));
    PyObject *capsule = NULL;
    if (!p)
        return PyErr_NoMemory();
    p->loop = loop;
    p->key = PyLong_FromUnsignedLongLong(++counter);
    p->callback = Py_NewRef(callback);
    capsule = p->key ? PyCapsule_New(p, NULL, NULL) : NULL;
    if (!capsule || PyDict_SetItem(loop->connects, p->key, capsule) < 0)
        goto fail;
    Py_DECREF(capsule);
    int err = tapio_connect_socket(loop->loop, addrs, n, opts, on_result, p,
                                   &p->req);
    if (err) {
        errno = -err;
        PyErr_SetFromErrno(PyExc_OSError);
        pending_forget(p);
        return NULL;
    }
    return Py_NewRef(p->key);
fail:
    Py_XDECREF(capsule);
    Py_XDECREF(p->key);
    Py_DECREF(p->callback);
    free(p);
    return NULL;
}

/* connect_socket(loop, addresses, callback, *, local_addresses=None,
 * delay=None, interleave=None) -> key for connect_cancel. addresses are
 * getaddrinfo 5-tuples; delay is happy_eyeballs_delay; interleave is
 * create_connection's (None: asyncio's default, 0 or False: none). */
static PyObject *connect_socket(PyObject *module, PyObject *args,
                                PyObject *kwargs)
{
    static char *names[] = {"loop", "addresses", "callback", "local_addresses",
                            "delay", "interleave", NULL};
    PyObject *loop_obj, *infos, *callback, *locals = Py_None;
    PyObject *delay = Py_None, *interleave = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|$OOO:connect_socket",
                                     names, &loop_obj, &infos, &callback,
                                     &locals, &delay, &interleave))
        return NULL;
    ModuleState *st = PyModule_GetState(module);
    if (!PyObject_TypeCheck(loop_obj, st->LoopCoreType))
        return PyErr_Format(PyExc_TypeError, "not a tapio loop: %R", loop_obj);
    LoopCore *loop = (LoopCore *)loop_obj;
    if (!loop->loop)
        return PyErr_Format(PyExc_RuntimeError, "Event loop is closed");
    tapio_connect_options opts = {0};
    if (delay != Py_None) {
        opts.happy_eyeballs = true;
        opts.happy_eyeballs_delay = PyFloat_AsDouble(delay);
        if (opts.happy_eyeballs_delay == -1 && PyErr_Occurred())
            return NULL;
    }
    if (interleave != Py_None) {
        int truth = PyObject_IsTrue(interleave);
        long first = truth > 0 ? PyLong_AsLong(interleave) : 0;
        if (truth < 0 || (first == -1 && PyErr_Occurred()))
            return NULL;
        opts.interleave = truth ? (first > 1 ? (int)first : 1)
                                : TAPIO_CONNECT_NO_INTERLEAVE;
    }
    size_t n = 0, nlocal = 0;
    tapio_address *addrs = addresses_of(infos, &n), *local_addrs = NULL;
    if (addrs && locals != Py_None) {
        local_addrs = addresses_of(locals, &nlocal);
        opts.local_addrs = local_addrs;
        opts.nlocal_addrs = nlocal;
    }
    PyObject *key = NULL;
    if (addrs && (locals == Py_None || local_addrs))
        key = start(loop, addrs, n, &opts, callback);
    free(addrs);
    free(local_addrs);
    return key;
}

static pending *pending_of(LoopCore *loop, PyObject *key)
{
    PyObject *capsule = PyDict_GetItemWithError(loop->connects, key);
    return capsule ? PyCapsule_GetPointer(capsule, NULL) : NULL;
}

/* connect_cancel(loop, key): the callback then runs with fd -1 and errors
 * None; nothing when it already ran. */
static PyObject *connect_cancel(PyObject *module, PyObject *const *args,
                                Py_ssize_t nargs)
{
    ModuleState *st = PyModule_GetState(module);
    if (nargs != 2 || !PyObject_TypeCheck(args[0], st->LoopCoreType))
        return PyErr_Format(PyExc_TypeError,
                            "connect_cancel(loop, key) takes a tapio loop");
    pending *p = pending_of((LoopCore *)args[0], args[1]);
    if (p)
        tapio_connect_cancel(p->req);
    else if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* At loop close libtapio frees its requests without callbacks. */
void connect_release_all(LoopCore *loop)
{
    PyObject *keys = PyDict_Keys(loop->connects);
    for (Py_ssize_t i = 0; keys && i < PyList_GET_SIZE(keys); i++) {
        pending *p = pending_of(loop, PyList_GET_ITEM(keys, i));
        if (p)
            pending_forget(p);
    }
    if (!keys)
        PyErr_WriteUnraisable(loop->connects);
    Py_XDECREF(keys);
}

static PyMethodDef connect_methods[] = {
    {"ipaddr_info", ipaddr_info, METH_VARARGS, NULL},
    {"connect_socket", (PyCFunction)(void (*)(void))connect_socket,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"connect_cancel", (PyCFunction)(void (*)(void))connect_cancel,
     METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

int connect_module_add(PyObject *module)
{
    if (PyModule_AddFunctions(module, connect_methods) < 0)
        return -1;
    static const struct { const char *name; int value; } steps[] = {
        {"CONNECT_STEP_SOCKET", TAPIO_CONNECT_STEP_SOCKET},
        {"CONNECT_STEP_BIND", TAPIO_CONNECT_STEP_BIND},
        {"CONNECT_STEP_NO_LOCAL", TAPIO_CONNECT_STEP_NO_LOCAL},
        {"CONNECT_STEP_CONNECT", TAPIO_CONNECT_STEP_CONNECT},
        {"CONNECT_STEP_CONNECTING", TAPIO_CONNECT_STEP_CONNECTING},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (PyModule_AddIntConstant(module, steps[i].name, steps[i].value) < 0)
            return -1;
    return 0;
}
