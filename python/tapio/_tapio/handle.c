/* Handle and TimerHandle: callbacks queued on the loop (asyncio.Handle's
 * behaviour: cancel, cancelled, get_context, repr; TimerHandle's when and
 * ordering). */
#include "binding.h"

#include <structmember.h>

Handle *handle_new(LoopCore *loop, PyTypeObject *type, PyObject *callback,
                   PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    PyObject *argtuple = PyTuple_New(nargs);
    if (!argtuple)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++)
        PyTuple_SET_ITEM(argtuple, i, Py_NewRef(args[i]));
    if (context == NULL || context == Py_None)
        context = PyContext_CopyCurrent();
    else
        Py_INCREF(context);
    if (!context) {
        Py_DECREF(argtuple);
        return NULL;
    }
    Handle *h = PyObject_GC_New(Handle, type);
    if (!h) {
        Py_DECREF(argtuple);
        Py_DECREF(context);
        return NULL;
    }
    h->weakreflist = NULL;
    h->loop = (LoopCore *)Py_NewRef((PyObject *)loop);
    h->callback = Py_NewRef(callback);
    h->args = argtuple;
    h->context = context;
    h->source_traceback = NULL;
    h->c_handle = NULL;
    h->prev = h->next = NULL;
    h->cancelled = false;
    h->queued = false;
    h->timer = type == loop->state->TimerHandleType;
    if (loop->debug && loop->state->extract_stack) {
        /* asyncio's debug mode: where the handle was made */
        h->source_traceback = PyObject_CallNoArgs(loop->state->extract_stack);
        if (!h->source_traceback) {
            Py_DECREF(h);
            return NULL;
        }
    }
    /* A queued handle is not tracked by the collector: the loop holds it,
     * so it is alive whatever cycles pass through it. handle_dequeue tracks
     * it if anyone else still holds it. */
    return h;
}

/* ---- the loop's list of queued handles ------------------------------ */

void handle_enqueue(Handle *h)
{
    Handle *head = &h->loop->queued;
    Py_INCREF(h);
    h->queued = true;
    h->next = head;
    h->prev = head->prev;
    head->prev->next = h;
    head->prev = h;
}

/* Drop the queue's reference; the caller must hold its own if it goes on
 * using the handle. */
void handle_dequeue(Handle *h)
{
    if (!h->queued)
        return;
    h->queued = false;
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = NULL;
    if (Py_REFCNT(h) > 1 && !PyObject_GC_IsTracked((PyObject *)h))
        PyObject_GC_Track(h);
    Py_DECREF(h);
}

/* At loop close: nothing queued will run, so release every handle. */
void handle_release_all(LoopCore *loop)
{
    Handle *head = &loop->queued;
    while (head->next != head) {
        Handle *h = head->next;
        Py_INCREF(h);
        if (h->c_handle)
            tapio_handle_cancel(h->c_handle);
        handle_dequeue(h);
        Py_DECREF(h);
    }
}

static void clear_callback(Handle *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
}

/* ---- running ------------------------------------------------------- */

/* asyncio's Handle._run error path: the loop's exception handler gets
 * {'message': 'Exception in callback ...', 'exception': exc, 'handle': h}. */
static void report_callback_error(Handle *h, PyObject *exc)
{
    ModuleState *st = h->loop->state;
    PyObject *message = NULL, *context = NULL, *res = NULL;
    PyObject *source = PyObject_CallFunctionObjArgs(
        st->format_callback, h->callback ? h->callback : Py_None,
        h->args ? h->args : Py_None, h->loop->debug ? Py_True : Py_False,
        NULL);
    if (source)
        message = PyUnicode_FromFormat("Exception in callback %U", source);
    if (message)
        context = PyDict_New();
    if (context && !PyDict_SetItem(context, st->str_message, message) &&
        !PyDict_SetItem(context, st->str_exception, exc) &&
        !PyDict_SetItem(context, st->str_handle, (PyObject *)h) &&
        (!h->source_traceback ||
         !PyDict_SetItem(context, st->str_source_traceback,
                         h->source_traceback)))
        res = PyObject_CallMethodOneArg((PyObject *)h->loop,
                                        st->str_call_exception_handler,
                                        context);
    if (!res)
        PyErr_WriteUnraisable((PyObject *)h);
    Py_XDECREF(res);
    Py_XDECREF(context);
    Py_XDECREF(message);
    Py_XDECREF(source);
}

/* A context that is not a contextvars.Context is used as asyncio uses any
 * context: context.run(callback, *args), so that a bad one fails with the
 * same error (AttributeError for an object without run()). */
static void call_through_run(Handle *h)
{
    Py_ssize_t nargs = PyTuple_GET_SIZE(h->args);
    PyObject *run = PyObject_GetAttrString(h->context, "run");
    if (!run)
        return;
    PyObject *callargs = PyTuple_New(nargs + 1);
    if (callargs) {
        PyTuple_SET_ITEM(callargs, 0, Py_NewRef(h->callback));
        for (Py_ssize_t i = 0; i < nargs; i++)
            PyTuple_SET_ITEM(callargs, i + 1, Py_NewRef(PyTuple_GET_ITEM(h->args, i)));
        Py_XDECREF(PyObject_Call(run, callargs, NULL));
        Py_DECREF(callargs);
    }
    Py_DECREF(run);
}

static void call_in_context(Handle *h)
{
    if (!PyContext_CheckExact(h->context)) {
        call_through_run(h);
        return;
    }
    if (PyContext_Enter(h->context) < 0)
        return;
    PyObject *res = PyObject_Vectorcall(
        h->callback, &PyTuple_GET_ITEM(h->args, 0),
        (size_t)PyTuple_GET_SIZE(h->args), NULL);
    Py_XDECREF(res);
    if (!res) {
        /* Keep the callback's error across PyContext_Exit. */
        PyObject *exc = binding_fetch_exception();
        PyContext_Exit(h->context);
        binding_restore_exception(exc);
        return;
    }
    PyContext_Exit(h->context);
}

void handle_run(Handle *h)
{
    if (h->cancelled || !h->callback)
        return;
    Py_INCREF(h);
    call_in_context(h);
    if (PyErr_Occurred()) {
        PyObject *exc = binding_fetch_exception();
        if (binding_is_exit_exception(exc)) {
            binding_restore_exception(exc);
            loop_core_set_pending(h->loop);
        } else {
            report_callback_error(h, exc);
            Py_DECREF(exc);
            if (PyErr_Occurred()) /* an exit raised by the handler itself */
                loop_core_set_pending(h->loop);
        }
    }
    Py_DECREF(h);
}

/* ---- methods ------------------------------------------------------- */

static PyObject *handle_cancel(Handle *self, PyObject *unused)
{
    (void)unused;
    if (self->cancelled)
        Py_RETURN_NONE;
    self->cancelled = true;
    Py_INCREF(self);
    if (self->c_handle && tapio_handle_cancel(self->c_handle))
        handle_dequeue(self);
    /* Like asyncio outside debug mode: drop references at once. */
    if (!self->loop->debug)
        clear_callback(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *handle_cancelled(Handle *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->cancelled);
}

static PyObject *handle_get_context(Handle *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self->context);
}

static PyObject *handle_run_method(Handle *self, PyObject *unused)
{
    (void)unused;
    handle_run(self);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *handle_when(Handle *self, PyObject *unused)
{
    (void)unused;
    return PyFloat_FromDouble(tapio_handle_when(self->c_handle));
}

static PyObject *handle_repr(Handle *self)
{
    return PyObject_CallOneArg(self->loop->state->handle_repr,
                               (PyObject *)self);
}

/* TimerHandles order by deadline, as asyncio's do. */
static PyObject *handle_richcompare(Handle *self, PyObject *other, int op)
{
    if (!PyObject_TypeCheck(other, Py_TYPE(self)) || !self->timer)
        Py_RETURN_NOTIMPLEMENTED;
    Handle *o = (Handle *)other;
    if (op == Py_EQ || op == Py_NE) {
        bool same = self == o ||
                    (tapio_handle_when(self->c_handle) ==
                         tapio_handle_when(o->c_handle) &&
                     self->cancelled == o->cancelled &&
                     self->callback == o->callback);
        return PyBool_FromLong(op == Py_EQ ? same : !same);
    }
    double a = tapio_handle_when(self->c_handle);
    double b = tapio_handle_when(o->c_handle);
    Py_RETURN_RICHCOMPARE(a, b, op);
}

/* asyncio hashes a TimerHandle by its deadline. */
static Py_hash_t timer_handle_hash(Handle *self)
{
    PyObject *when = PyFloat_FromDouble(tapio_handle_when(self->c_handle));
    if (!when)
        return -1;
    Py_hash_t hash = PyObject_Hash(when);
    Py_DECREF(when);
    return hash;
}

static int handle_traverse(Handle *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    Py_VISIT(self->context);
    Py_VISIT(self->source_traceback);
    return 0;
}

static int handle_clear(Handle *self)
{
    clear_callback(self);
    Py_CLEAR(self->context);
    Py_CLEAR(self->source_traceback);
    return 0;
}

static void handle_dealloc(Handle *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    handle_clear(self);
    if (self->c_handle)
        tapio_handle_unref(self->c_handle);
    Py_CLEAR(self->loop);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyObject *handle_no_new(PyTypeObject *type, PyObject *a, PyObject *k)
{
    (void)a;
    (void)k;
    PyErr_Format(PyExc_TypeError, "cannot create '%s' instances",
                 type->tp_name);
    return NULL;
}

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS, NULL},
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS, NULL},
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS, NULL},
    {"_run", (PyCFunction)handle_run_method, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef timer_handle_methods[] = {
    {"when", (PyCFunction)handle_when, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef handle_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Handle, weakreflist),
     READONLY, NULL},
    {"_callback", T_OBJECT, offsetof(Handle, callback), READONLY, NULL},
    {"_args", T_OBJECT, offsetof(Handle, args), READONLY, NULL},
    {"_source_traceback", T_OBJECT, offsetof(Handle, source_traceback),
     READONLY, NULL},
    {"_loop", T_OBJECT, offsetof(Handle, loop), READONLY, NULL},
    {"_cancelled", T_BOOL, offsetof(Handle, cancelled), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_members, handle_members},
    {Py_tp_new, handle_no_new},
    {0, NULL},
};

PyType_Spec handle_spec = {
    .name = "tapio._tapio.Handle",
    .basicsize = sizeof(Handle),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = handle_slots,
};

static PyType_Slot timer_handle_slots[] = {
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_methods, timer_handle_methods},
    {Py_tp_richcompare, handle_richcompare},
    {Py_tp_hash, timer_handle_hash},
    {0, NULL},
};

PyType_Spec timer_handle_spec = {
    .name = "tapio._tapio.TimerHandle",
    .basicsize = sizeof(Handle),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = timer_handle_slots,
};
