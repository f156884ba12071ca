/* Futures and tasks: loop.create_future(), loop.create_task() and the task
 * factory. Servers call these once per request (aiohttp a future and a
 * task, uvicorn a task), so the common case -- no task factory, not in
 * debug mode -- builds asyncio's Future or Task straight from C. The other
 * cases go to Loop._create_task_hooked (Python), which follows the running
 * interpreter's asyncio. asyncio.futures.Future and asyncio.tasks.Task are
 * looked up at each call, as base_events does, so a patched class is
 * honoured. */
#include "binding.h"

/* The class `name` of the cached asyncio submodule, called with the given
 * positional arguments, then loop=self, then the caller's keywords. */
static PyObject *call_with_loop(LoopCore *self, PyObject *module,
                                PyObject *name, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *cls = PyObject_GetAttr(module, name);
    if (!cls)
        return NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *result = NULL;
    if (nkw == 0) {
        PyObject *stack[2] = {nargs ? args[0] : NULL, (PyObject *)self};
        result = PyObject_Vectorcall(cls, stack + (nargs ? 0 : 1),
                                     (size_t)nargs, self->state->kw_loop);
    } else {
        /* loop= first, then the caller's keywords in their order. */
        PyObject *names = PySequence_Concat(self->state->kw_loop, kwnames);
        PyObject **stack = names ? PyMem_New(PyObject *, nargs + 1 + nkw)
                                 : NULL;
        if (stack) {
            for (Py_ssize_t i = 0; i < nargs; i++)
                stack[i] = args[i];
            stack[nargs] = (PyObject *)self;
            for (Py_ssize_t i = 0; i < nkw; i++)
                stack[nargs + 1 + i] = args[nargs + i];
            result = PyObject_Vectorcall(cls, stack, (size_t)nargs, names);
            PyMem_Free(stack);
        } else if (names) {
            PyErr_NoMemory();
        }
        Py_XDECREF(names);
    }
    Py_DECREF(cls);
    return result;
}

PyObject *loop_create_future(LoopCore *self, PyObject *unused)
{
    (void)unused;
    return call_with_loop(self, self->state->asyncio_futures,
                          self->state->str_Future, NULL, 0, NULL);
}

/* Before 3.14 create_task takes (coro, *, name=None, context=None); 3.14
 * passes any keyword on to the task factory or to Task. */
static bool check_create_task_args(Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1) {
        if (nargs == 0)
            PyErr_SetString(PyExc_TypeError, "create_task() missing 1 required "
                                             "positional argument: 'coro'");
        else
            PyErr_Format(PyExc_TypeError, "create_task() takes 2 positional "
                         "arguments but %zd were given", nargs + 1);
        return false;
    }
#if PY_VERSION_HEX < 0x030E0000
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(key, "name") != 0 &&
            PyUnicode_CompareWithASCIIString(key, "context") != 0) {
            PyErr_Format(PyExc_TypeError, "create_task() got an unexpected "
                         "keyword argument '%S'", key);
            return false;
        }
    }
#else
    (void)kwnames;
#endif
    return true;
}

PyObject *loop_create_task(LoopCore *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    if (!check_create_task_args(nargs, kwnames))
        return NULL;
    if (self->closed || !self->loop) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    /* A factory, or debug mode (the task's source traceback is trimmed). */
    if (self->task_factory || self->debug) {
        PyObject *method = PyObject_GetAttr((PyObject *)self,
                                            self->state->str_create_task_hooked);
        PyObject *task = method ? PyObject_Vectorcall(method, args, 1, kwnames)
                                : NULL;
        Py_XDECREF(method);
        return task;
    }
    return call_with_loop(self, self->state->asyncio_tasks,
                          self->state->str_Task, args, 1, kwnames);
}

PyObject *loop_set_task_factory(LoopCore *self, PyObject *factory)
{
    if (factory != Py_None && !PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError,
                        "task factory must be a callable or None");
        return NULL;
    }
    Py_XSETREF(self->task_factory,
               factory == Py_None ? NULL : Py_NewRef(factory));
    Py_RETURN_NONE;
}

PyObject *loop_get_task_factory(LoopCore *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}

int tasks_module_state_init(ModuleState *st)
{
    st->asyncio_futures = PyImport_ImportModule("asyncio.futures");
    st->asyncio_tasks = PyImport_ImportModule("asyncio.tasks");
    st->str_Future = PyUnicode_InternFromString("Future");
    st->str_Task = PyUnicode_InternFromString("Task");
    st->str_create_task_hooked =
        PyUnicode_InternFromString("_create_task_hooked");
    st->kw_loop = Py_BuildValue("(s)", "loop");
    return st->asyncio_futures && st->asyncio_tasks && st->str_Future &&
                   st->str_Task && st->str_create_task_hooked && st->kw_loop
               ? 0
               : -1;
}
