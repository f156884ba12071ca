/* Calling into Python from libtapio's callbacks: protocol methods, error
 * reports to the loop's exception handler, errno exceptions, and the
 * arguments every transport's set_write_buffer_limits takes. */
#include "binding.h"

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

PyObject *binding_errno_exception(int err)
{
    errno = err < 0 ? -err : err;
    PyErr_SetFromErrno(PyExc_OSError);
    return binding_fetch_exception();
}

/* set_write_buffer_limits(high=None, low=None), resolved by asyncio's
 * rules into non-negative values, or ValueError as asyncio raises it. */
int binding_parse_limits(PyObject *args, PyObject *kwargs, Py_ssize_t *high,
                         Py_ssize_t *low)
{
    static char *names[] = {"high", "low", NULL};
    PyObject *high_obj = Py_None, *low_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO", names, &high_obj,
                                     &low_obj))
        return -1;
    *low = 0;
    if (low_obj != Py_None &&
        (*low = PyNumber_AsSsize_t(low_obj, NULL)) == -1 && PyErr_Occurred())
        return -1;
    if (high_obj == Py_None)
        *high = low_obj == Py_None ? TAPIO_DEFAULT_HIGH_WATER : 4 * *low;
    else if ((*high = PyNumber_AsSsize_t(high_obj, NULL)) == -1 &&
             PyErr_Occurred())
        return -1;
    if (low_obj == Py_None)
        *low = *high / 4;
    if (!(*high >= *low && *low >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0", *high,
                     *low);
        return -1;
    }
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
    return Py_BuildValue("(nn)", (Py_ssize_t)low, (Py_ssize_t)high);
}
