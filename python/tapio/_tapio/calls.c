/* Calling into Python from libtapio's callbacks: protocol methods, error
 * reports to the loop's exception handler, errno exceptions, and the
 * arguments every transport's set_write_buffer_limits takes. */
#include "binding.h"

#include <math.h>
#include <string.h>

bool binding_is_exit_exception(PyObject *exc)
{
    return PyErr_GivenExceptionMatches(exc, PyExc_SystemExit) ||
           PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt);
}

PyObject *binding_call_method(PyObject *obj, PyObject *name, PyObject *arg)
{
    if (!obj)
        Py_RETURN_NONE;
    PyObject *args[2] = {obj, arg};
    return PyObject_VectorcallMethod(
        name, args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int put(PyObject *ctx, const char *key, PyObject *value)
{
    return value ? PyDict_SetItemString(ctx, key, value) : 0;
}

void binding_report(LoopCore *loop, const char *message, PyObject *exc,
                    PyObject *transport, PyObject *protocol)
{
    PyObject *ctx = PyDict_New(), *res = NULL;
    PyObject *text = PyUnicode_FromString(message);
    if (ctx && text && !put(ctx, "message", text) &&
        !put(ctx, "exception", exc) && !put(ctx, "transport", transport) &&
        !put(ctx, "protocol",
             transport ? (protocol ? protocol : Py_None) : NULL))
        res = PyObject_CallMethod((PyObject *)loop, "call_exception_handler",
                                  "O", ctx);
    if (!res) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            loop_core_set_pending(loop);
        else
            PyErr_WriteUnraisable(transport ? transport : (PyObject *)loop);
    }
    Py_XDECREF(res);
    Py_XDECREF(text);
    Py_XDECREF(ctx);
}

PyObject *binding_callback_failed(LoopCore *loop, const char *message,
                                  PyObject *transport, PyObject *protocol)
{
    PyObject *exc = binding_fetch_exception();
    if (!exc)
        return NULL;
    if (binding_is_exit_exception(exc)) {
        binding_restore_exception(exc);
        loop_core_set_pending(loop);
        return NULL;
    }
    binding_report(loop, message, exc, transport, protocol);
    return exc;
}

PyObject *binding_errno_exception(int err)
{
    errno = err < 0 ? -err : err;
    PyErr_SetFromErrno(PyExc_OSError);
    return binding_fetch_exception();
}

/* One limit as set_write_buffer_limits received it. Integers are clipped
 * to Py_ssize_t (a limit of 2**63 bytes is never reached); floats and other
 * real numbers, which asyncio accepts, are floored: the buffer size is an
 * integer, so size > high and size <= low decide as for the real value. */
typedef struct limit_arg {
    PyObject *obj;  /* as given (None: not given) */
    bool given, real, nan, inf;
    double real_value;   /* when real */
    Py_ssize_t value;
} limit_arg;

static Py_ssize_t floor_clipped(double v)
{
    if (isnan(v))
        return -1;
    if (v >= 0x1p63)
        return PY_SSIZE_T_MAX;
    if (v < -0x1p63)
        return PY_SSIZE_T_MIN + 1;
    return (Py_ssize_t)floor(v);
}

static int limit_arg_parse(PyObject *obj, limit_arg *a)
{
    memset(a, 0, sizeof(*a));
    a->obj = obj;
    if (obj == Py_None)
        return 0;
    a->given = true;
    if (PyIndex_Check(obj)) {
        PyObject *i = PyNumber_Index(obj);
        if (!i)
            return -1;
        a->value = PyNumber_AsSsize_t(i, NULL); /* clipped */
        Py_DECREF(i);
        if (a->value == PY_SSIZE_T_MIN)
            a->value++; /* stays negative, so invalid */
        return 0;
    }
    double v = PyFloat_AsDouble(obj); /* floats, Decimal, Fraction... */
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    a->real = true;
    a->real_value = v;
    a->nan = isnan(v);
    a->inf = isinf(v);
    a->value = floor_clipped(v);
    return 0;
}

/* What asyncio's ValueError shows for a limit: as given, or derived from
 * the other one (a float when that one was, nan from nan or inf // 4). */
static PyObject *limit_repr_value(const limit_arg *a, const limit_arg *other,
                                  Py_ssize_t derived, bool from_high)
{
    if (a->given)
        return Py_NewRef(a->obj);
    if (other->nan || (other->inf && from_high))
        return PyFloat_FromDouble(NAN);
    if (other->real)
        return PyFloat_FromDouble(from_high ? floor(other->real_value / 4)
                                            : 4 * other->real_value);
    return PyLong_FromSsize_t(derived);
}

/* set_write_buffer_limits(high=None, low=None): asyncio's argument check,
 * by libtapio's rule (tapio_write_limits_check), with asyncio's ValueError.
 * Not given reaches libtapio as TAPIO_LIMIT_DEFAULT, so each transport kind
 * applies its own default. */
int binding_parse_limits(PyObject *args, PyObject *kwargs, Py_ssize_t *high,
                         Py_ssize_t *low)
{
    static char *names[] = {"high", "low", NULL};
    PyObject *high_obj = Py_None, *low_obj = Py_None;
    limit_arg h, l;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO", names, &high_obj,
                                     &low_obj) ||
        limit_arg_parse(high_obj, &h) < 0 || limit_arg_parse(low_obj, &l) < 0)
        return -1;
    Py_ssize_t rh, rl;
    int err = tapio_write_limits_check(h.given, h.value, l.given, l.value,
                                       &rh, &rl);
    /* Reals decide as reals where the floors would not: high = 4 * 1.5 is
     * 6, not 4; 2.2 >= 2.5 is false; inf // 4 is nan; nan compares false. */
    bool high_from_real = !h.given && l.real;
    if (high_from_real)
        rh = floor_clipped(4 * l.real_value);
    if (h.nan || l.nan || (h.inf && !l.given))
        err = -EINVAL;
    else if (h.given && l.given && (h.real || l.real)) {
        int ge = PyObject_RichCompareBool(h.obj, l.obj, Py_GE);
        if (ge < 0)
            return -1;
        if (!ge)
            err = -EINVAL;
    }
    if (err) {
        PyObject *hr = limit_repr_value(&h, &l, rh, false);
        PyObject *lr = hr ? limit_repr_value(&l, &h, rl, true) : NULL;
        if (lr)
            PyErr_Format(PyExc_ValueError,
                         "high (%R) must be >= low (%R) must be >= 0", hr, lr);
        Py_XDECREF(hr);
        Py_XDECREF(lr);
        return -1;
    }
    *high = h.given ? h.value : high_from_real ? rh : TAPIO_LIMIT_DEFAULT;
    *low = l.given ? l.value : TAPIO_LIMIT_DEFAULT;
    return 0;
}

/* libtapio closes the fd: the socket object viewing it must not close it
 * again, so it is detached and dropped. */
void binding_detach_socket(PyObject **sock)
{
    if (!*sock)
        return;
    PyObject *res = PyObject_CallMethod(*sock, "detach", NULL);
    if (!res)
        PyErr_WriteUnraisable(*sock);
    Py_XDECREF(res);
    Py_CLEAR(*sock);
}

/* The user's own socket object (sock=) is closed at the end, as asyncio
 * closes it: libtapio worked on a dup of its fd. */
void binding_close_socket(PyObject **sock)
{
    PyObject *res = *sock && *sock != Py_None
                        ? PyObject_CallMethod(*sock, "close", NULL)
                        : Py_NewRef(Py_None);
    if (!res)
        PyErr_WriteUnraisable(*sock);
    Py_XDECREF(res);
    Py_CLEAR(*sock);
}

/* Whether the user closed the socket object it gave (fileno() is -1):
 * asyncio's next send through that object fails with EBADF. */
bool binding_socket_closed(PyObject *sock)
{
    PyObject *fileno = PyObject_CallMethod(sock, "fileno", NULL);
    long fd = fileno ? PyLong_AsLong(fileno) : 0;
    Py_XDECREF(fileno);
    PyErr_Clear();
    return fd == -1;
}

/* asyncio's ResourceWarning for a transport that was never closed. */
void binding_warn_unclosed(PyObject *transport)
{
    PyObject *exc = binding_fetch_exception();
    if (PyErr_WarnFormat(PyExc_ResourceWarning, 1, "unclosed transport %R",
                         transport) < 0)
        PyErr_WriteUnraisable(transport);
    binding_restore_exception(exc);
}

/* get_write_buffer_limits()'s (low, high). */
PyObject *binding_limits_tuple(size_t low, size_t high)
{
    return Py_BuildValue("(NN)", PyLong_FromSize_t(low),
                         PyLong_FromSize_t(high));
}
