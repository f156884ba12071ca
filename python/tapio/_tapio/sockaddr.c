/* Socket addresses between C and Python, in the forms Python's socket
 * module uses: (host, port) for IPv4, (host, port, flowinfo, scope_id) for
 * IPv6, a str path (bytes for a Linux abstract name) for Unix sockets. */
#include "binding.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

PyObject *binding_sockaddr_to_py(const struct sockaddr *sa, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (!sa || len == 0)
        Py_RETURN_NONE;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(in->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        return Py_BuildValue("(siII)", host, ntohs(in6->sin6_port),
                             ntohl(in6->sin6_flowinfo), in6->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t path_len = len - offsetof(struct sockaddr_un, sun_path);
        if (path_len > 0 && un->sun_path[0] == '\0')
            return PyBytes_FromStringAndSize(un->sun_path, (Py_ssize_t)path_len);
        return PyUnicode_DecodeFSDefaultAndSize(
            un->sun_path, (Py_ssize_t)strnlen(un->sun_path, path_len));
    }
    default:
        return PyErr_Format(PyExc_OSError, "unsupported address family %d",
                            sa->sa_family);
    }
}

static int port_of(PyObject *obj, uint16_t *port)
{
    long value = PyLong_AsLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < 0 || value > 65535) {
        PyErr_SetString(PyExc_OverflowError, "sendto(): port must be 0-65535.");
        return -1;
    }
    *port = (uint16_t)value;
    return 0;
}

/* A host name: resolved as socket.sendto resolves it, with getaddrinfo. */
static int resolve(PyObject *addr, int family, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    PyObject *socket = PyImport_ImportModule("socket");
    PyObject *infos = socket ? PyObject_CallMethod(
                                   socket, "getaddrinfo", "OOii",
                                   PyTuple_GET_ITEM(addr, 0),
                                   PyTuple_GET_ITEM(addr, 1), family,
                                   SOCK_DGRAM)
                             : NULL;
    Py_XDECREF(socket);
    if (!infos)
        return -1;
    int rc = -1;
    if (PyList_Check(infos) && PyList_GET_SIZE(infos) > 0) {
        PyObject *first = PyList_GET_ITEM(infos, 0);
        rc = binding_py_to_sockaddr(PyTuple_GetItem(first, 4), family, ss, len);
    } else {
        PyErr_SetString(PyExc_OSError, "getaddrinfo returned no address");
    }
    Py_DECREF(infos);
    return rc;
}

static int inet_from_py(PyObject *addr, int family, struct sockaddr_storage *ss,
                        socklen_t *len)
{
    Py_ssize_t n = PyTuple_Check(addr) ? PyTuple_GET_SIZE(addr) : 0;
    if (n < 2 || n > (family == AF_INET ? 2 : 4) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(addr, 0))) {
        PyErr_Format(PyExc_TypeError,
                     "%s address must be a tuple (host, port%s), not %R",
                     family == AF_INET ? "AF_INET" : "AF_INET6",
                     family == AF_INET ? "" : "[, flowinfo[, scope_id]]", addr);
        return -1;
    }
    Py_ssize_t host_len;
    const char *host = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(addr, 0),
                                               &host_len);
    if (host && strlen(host) != (size_t)host_len) {
        /* Refused, not truncated, as Python's socket module refuses it. */
        PyErr_SetString(PyExc_TypeError,
                        "host name must not contain null character");
        return -1;
    }
    uint16_t port;
    if (!host || port_of(PyTuple_GET_ITEM(addr, 1), &port) < 0)
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        if (host[0] == '\0')
            return 0; /* INADDR_ANY, as Python spells it */
        if (strcmp(host, "<broadcast>") == 0) {
            in->sin_addr.s_addr = htonl(INADDR_BROADCAST);
            return 0;
        }
        return inet_pton(AF_INET, host, &in->sin_addr) == 1
                   ? 0 : resolve(addr, family, ss, len);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (n > 2)
        in6->sin6_flowinfo = htonl((uint32_t)PyLong_AsUnsignedLong(
            PyTuple_GET_ITEM(addr, 2)));
    if (n > 3)
        in6->sin6_scope_id = (uint32_t)PyLong_AsUnsignedLong(
            PyTuple_GET_ITEM(addr, 3));
    if (PyErr_Occurred())
        return -1;
    *len = sizeof(*in6);
    return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1
               ? 0 : resolve(addr, family, ss, len);
}

/* A Unix address as the socket module takes it: str (file-system encoded)
 * or a bytes-like object; an abstract name (leading NUL) keeps its NULs. */
static PyObject *unix_address_bytes(PyObject *addr)
{
    if (PyUnicode_Check(addr))
        return PyUnicode_EncodeFSDefault(addr);
    if (PyObject_CheckBuffer(addr))
        return PyBytes_FromObject(addr);
    return PyErr_Format(PyExc_TypeError,
                        "a bytes-like object is required, not '%.100s'",
                        Py_TYPE(addr)->tp_name);
}

static int unix_from_py(PyObject *addr, struct sockaddr_storage *ss,
                        socklen_t *len)
{
    PyObject *path = unix_address_bytes(addr);
    if (!path)
        return -1;
    const char *bytes = PyBytes_AS_STRING(path);
    Py_ssize_t n = PyBytes_GET_SIZE(path);
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    if (n >= (Py_ssize_t)sizeof(un->sun_path)) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_OSError, "AF_UNIX path too long");
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, bytes, (size_t)n);
    /* An abstract name counts exactly; a path includes its NUL. */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n +
                       (n > 0 && bytes[0] != '\0'));
    Py_DECREF(path);
    return 0;
}

int binding_py_to_sockaddr(PyObject *addr, int family,
                           struct sockaddr_storage *ss, socklen_t *len)
{
    switch (family) {
    case AF_INET:
    case AF_INET6:
        return inet_from_py(addr, family, ss, len);
    case AF_UNIX:
        return unix_from_py(addr, ss, len);
    default:
        PyErr_Format(PyExc_OSError, "unsupported address family %d", family);
        return -1;
    }
}
