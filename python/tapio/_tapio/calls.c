/* Calling into Python from libtapio's callbacks: protocol methods, error
 * reports to the loop's exception handler, errno exceptions, and the
 * arguments every transport's set_write_buffer_limits takes. */
#include "binding.h"

#include <math.h>

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

/* A limit asyncio accepted (a real number >= 0, an int of any size) as the
 * size libtapio compares buffer sizes with: floored (size > 1.5 decides as
 * size > 1, size <= 0.5 as size <= 0) and saturated at PY_SSIZE_T_MAX, a
 * size no buffer reaches. *exact: the size says the same as the value. */
static int limit_size(PyObject *value, Py_ssize_t *size, bool *exact,
                      bool *fractional)
{
    *fractional = false;
    if (PyLong_Check(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        bool fits = !overflow && v <= PY_SSIZE_T_MAX;
        *size = fits ? (Py_ssize_t)v : PY_SSIZE_T_MAX;
        *exact = fits && PyLong_CheckExact(value);
        return 0;
    }
    double v = PyFloat_AsDouble(value); /* float, Decimal, Fraction... */
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    *exact = false;
    if (!(v < 0x1p63)) { /* inf, with a finite low */
        *size = PY_SSIZE_T_MAX;
        return 0;
    }
    *size = (Py_ssize_t)floor(v);
    *fractional = floor(v) != v;
    return 0;
}

/* asyncio's high = 4 * low, low = high // 4 and its check, on the values as
 * given: any numbers Python compares (floats, ints past 64 bits), with
 * asyncio's ValueError. */
static int limits_rule(PyObject *high_arg, PyObject *low_arg, PyObject **high,
                       PyObject **low)
{
    PyObject *four = PyLong_FromLong(4), *zero = PyLong_FromLong(0);
    *high = *low = NULL;
    if (!four || !zero)
        goto fail;
    *high = high_arg != Py_None ? Py_NewRef(high_arg)
                                : PyNumber_Multiply(four, low_arg);
    if (!*high)
        goto fail;
    *low = low_arg != Py_None ? Py_NewRef(low_arg)
                              : PyNumber_FloorDivide(*high, four);
    if (!*low)
        goto fail;
    int ok = PyObject_RichCompareBool(*high, *low, Py_GE);
    if (ok > 0)
        ok = PyObject_RichCompareBool(*low, zero, Py_GE);
    if (ok < 0)
        goto fail;
    if (!ok) {
        PyErr_Format(PyExc_ValueError,
                     "high (%R) must be >= low (%R) must be >= 0", *high, *low);
        goto fail;
    }
    Py_DECREF(four);
    Py_DECREF(zero);
    return 0;
fail:
    Py_XDECREF(four);
    Py_XDECREF(zero);
    Py_CLEAR(*high);
    Py_CLEAR(*low);
    return -1;
}

/* set_write_buffer_limits(high=None, low=None) by asyncio's rule. Neither
 * given reaches libtapio as TAPIO_LIMIT_DEFAULT, so each transport kind
 * applies its own default; otherwise both limits go as sizes, and
 * `shown` keeps the values themselves when the sizes cannot say them. */
int binding_parse_limits(PyObject *args, PyObject *kwargs,
                         binding_limits *out)
{
    static char *names[] = {"high", "low", NULL};
    PyObject *high_arg = Py_None, *low_arg = Py_None, *high, *low;
    out->high = out->low = TAPIO_LIMIT_DEFAULT;
    out->high_fractional = false;
    out->shown = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO", names, &high_arg,
                                     &low_arg))
        return -1;
    if (high_arg == Py_None && low_arg == Py_None)
        return 0;
    if (limits_rule(high_arg, low_arg, &high, &low) < 0)
        return -1;
    bool high_exact, low_exact, low_fractional;
    int rc = limit_size(high, &out->high, &high_exact, &out->high_fractional);
    if (rc == 0)
        rc = limit_size(low, &out->low, &low_exact, &low_fractional);
    if (rc == 0 && !(high_exact && low_exact)) {
        out->shown = PyTuple_Pack(2, low, high);
        rc = out->shown ? 0 : -1;
    }
    Py_DECREF(high);
    Py_DECREF(low);
    return rc;
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

/* get_write_buffer_limits()'s (low, high): the values set, when libtapio's
 * sizes do not say them (binding_parse_limits' `shown`). */
PyObject *binding_limits_tuple(PyObject *shown, size_t low, size_t high)
{
    if (shown)
        return Py_NewRef(shown);
    return Py_BuildValue("(NN)", PyLong_FromSize_t(low),
                         PyLong_FromSize_t(high));
}
