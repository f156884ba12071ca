/* The _tapio extension module: types and module state. */
#include "binding.h"

static struct PyModuleDef tapio_module;

ModuleState *binding_state_of_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &tapio_module);
    return module ? PyModule_GetState(module) : NULL;
}

/* tapio/__init__.py hands over the Python helpers the C side calls on slow
 * paths (error reports, reprs, debug logging). */
static PyObject *set_helpers(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "_set_helpers() takes 4 arguments");
        return NULL;
    }
    ModuleState *st = PyModule_GetState(module);
    Py_XSETREF(st->format_callback, Py_NewRef(args[0]));
    Py_XSETREF(st->handle_repr, Py_NewRef(args[1]));
    Py_XSETREF(st->log_slow_callback, Py_NewRef(args[2]));
    Py_XSETREF(st->extract_stack, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyTypeObject *add_type(PyObject *module, PyType_Spec *spec,
                              PyObject *base)
{
    PyTypeObject *type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, spec, base);
    if (type && PyModule_AddType(module, type) < 0)
        Py_CLEAR(type);
    return type;
}

static int intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot ? 0 : -1;
}

/* The transport types derive from asyncio's classes and put their own
 * fields after BaseTransport's single `_extra` slot: check that layout. */
static PyTypeObject *add_asyncio_subtype(PyObject *module, PyType_Spec *spec,
                                         const char *const *base_names,
                                         size_t fields_offset)
{
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    PyObject *bases = asyncio ? PyTuple_New(0) : NULL;
    for (size_t i = 0; bases && base_names[i]; i++) {
        PyObject *base = PyObject_GetAttrString(asyncio, base_names[i]);
        if (base && ((PyTypeObject *)base)->tp_basicsize !=
                        (Py_ssize_t)fields_offset) {
            PyErr_Format(PyExc_ImportError,
                         "asyncio.%s has an unexpected layout", base_names[i]);
            Py_CLEAR(base);
        }
        PyObject *more = base ? PyTuple_Pack(1, base) : NULL;
        Py_XDECREF(base);
        PyObject *joined = more ? PySequence_Concat(bases, more) : NULL;
        Py_XDECREF(more);
        Py_SETREF(bases, joined);
    }
    Py_XDECREF(asyncio);
    PyTypeObject *type = bases ? add_type(module, spec, bases) : NULL;
    Py_XDECREF(bases);
    return type;
}

/* Where asyncio's class `name` (of module `where`) leaves one of `methods`
 * to asyncio.ReadTransport (which raises NotImplementedError), the tapio
 * type leaves it too: the reading methods follow the running asyncio
 * (Python 3.11.2's datagram transport and read pipe lack some). */
static int follow_asyncio_reading(PyTypeObject *type, const char *where,
                                  const char *name,
                                  const char *const *methods)
{
    PyObject *module = PyImport_ImportModule(where);
    PyObject *theirs = module ? PyObject_GetAttrString(module, name) : NULL;
    PyObject *asyncio = theirs ? PyImport_ImportModule("asyncio") : NULL;
    PyObject *base = asyncio ? PyObject_GetAttrString(asyncio, "ReadTransport")
                             : NULL;
    int rc = base ? 0 : -1;
    for (size_t i = 0; rc == 0 && methods[i]; i++) {
        PyObject *a = PyObject_GetAttrString(theirs, methods[i]);
        PyObject *b = a ? PyObject_GetAttrString(base, methods[i]) : NULL;
        if (!b)
            rc = -1;
        else if (a == b)
            rc = PyObject_DelAttrString((PyObject *)type, methods[i]);
        Py_XDECREF(a);
        Py_XDECREF(b);
    }
    Py_XDECREF(base);
    Py_XDECREF(asyncio);
    Py_XDECREF(theirs);
    Py_XDECREF(module);
    return rc;
}

static int add_transport_types(PyObject *module, ModuleState *st)
{
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (!asyncio)
        return -1;
    st->BufferedProtocolType = PyObject_GetAttrString(asyncio,
                                                      "BufferedProtocol");
    Py_DECREF(asyncio);
    if (!st->BufferedProtocolType)
        return -1;
    /* asyncio's own datagram transport and write pipe are asyncio.Transports
     * too; its read pipe is a ReadTransport only. */
    static const char *const stream_bases[] = {"Transport", NULL};
    static const char *const read_pipe_bases[] = {"ReadTransport", NULL};
    static const char *const datagram_bases[] = {"Transport",
                                                 "DatagramTransport", NULL};
    static const char *const reading[] = {"pause_reading", "resume_reading",
                                          "is_reading", NULL};
    size_t fields = offsetof(Transport, weakreflist);
    st->TransportType = add_asyncio_subtype(module, &transport_spec,
                                            stream_bases, fields);
    st->ReadPipeTransportType = add_asyncio_subtype(
        module, &read_pipe_transport_spec, read_pipe_bases, fields);
    st->WritePipeTransportType = add_asyncio_subtype(
        module, &write_pipe_transport_spec, stream_bases, fields);
    st->DatagramTransportType = add_asyncio_subtype(
        module, &datagram_transport_spec, datagram_bases, fields);
    if (!st->TransportType || !st->ReadPipeTransportType ||
        !st->WritePipeTransportType || !st->DatagramTransportType)
        return -1;
    return follow_asyncio_reading(st->DatagramTransportType,
                                  "asyncio.selector_events",
                                  "_SelectorDatagramTransport", reading) ||
                   follow_asyncio_reading(st->ReadPipeTransportType,
                                          "asyncio.unix_events",
                                          "_UnixReadPipeTransport", reading)
               ? -1
               : 0;
}

static int module_exec(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    if (add_transport_types(module, st) < 0)
        return -1;
    st->ServerCoreType = add_type(module, &server_core_spec, NULL);
    st->ProcessCoreType = add_type(module, &process_core_spec, NULL);
    if (!st->ServerCoreType || !st->ProcessCoreType)
        return -1;
    st->LoopCoreType = add_type(module, &loop_core_spec, NULL);
    st->HandleType = add_type(module, &handle_spec, NULL);
    if (!st->LoopCoreType || !st->HandleType)
        return -1;
    st->TimerHandleType =
        add_type(module, &timer_handle_spec, (PyObject *)st->HandleType);
    if (!st->TimerHandleType)
        return -1;
    if (connect_module_add(module) < 0 || tasks_module_state_init(st) < 0)
        return -1;
    if (intern(&st->str_call_exception_handler, "call_exception_handler") ||
        intern(&st->str_message, "message") ||
        intern(&st->str_exception, "exception") ||
        intern(&st->str_handle, "handle") ||
        intern(&st->str_source_traceback, "source_traceback") ||
        intern(&st->str_connection_made, "connection_made") ||
        intern(&st->str_data_received, "data_received") ||
        intern(&st->str_eof_received, "eof_received") ||
        intern(&st->str_connection_lost, "connection_lost") ||
        intern(&st->str_pause_writing, "pause_writing") ||
        intern(&st->str_resume_writing, "resume_writing") ||
        intern(&st->str_get_buffer, "get_buffer") ||
        intern(&st->str_buffer_updated, "buffer_updated") ||
        intern(&st->str_datagram_received, "datagram_received") ||
        intern(&st->str_error_received, "error_received"))
        return -1;
    if (PyModule_AddIntConstant(module, "PIPE_READ", BINDING_PIPE_READ) ||
        PyModule_AddIntConstant(module, "PIPE_WRITE", BINDING_PIPE_WRITE) ||
        PyModule_AddIntConstant(module, "PIPE_READ_RELAYED",
                                BINDING_PIPE_READ_RELAYED))
        return -1;
    return PyModule_AddStringConstant(module, "LIBTAPIO_VERSION", TAPIO_VERSION);
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *st = PyModule_GetState(module);
    Py_VISIT(st->LoopCoreType);
    Py_VISIT(st->HandleType);
    Py_VISIT(st->TimerHandleType);
    Py_VISIT(st->TransportType);
    Py_VISIT(st->ReadPipeTransportType);
    Py_VISIT(st->WritePipeTransportType);
    Py_VISIT(st->ServerCoreType);
    Py_VISIT(st->DatagramTransportType);
    Py_VISIT(st->ProcessCoreType);
    Py_VISIT(st->BufferedProtocolType);
    Py_VISIT(st->asyncio_futures);
    Py_VISIT(st->asyncio_tasks);
    Py_VISIT(st->format_callback);
    Py_VISIT(st->handle_repr);
    Py_VISIT(st->log_slow_callback);
    Py_VISIT(st->extract_stack);
    return 0;
}

static int module_clear(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    Py_CLEAR(st->LoopCoreType);
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->TimerHandleType);
    Py_CLEAR(st->TransportType);
    Py_CLEAR(st->ReadPipeTransportType);
    Py_CLEAR(st->WritePipeTransportType);
    Py_CLEAR(st->ServerCoreType);
    Py_CLEAR(st->DatagramTransportType);
    Py_CLEAR(st->ProcessCoreType);
    Py_CLEAR(st->BufferedProtocolType);
    Py_CLEAR(st->asyncio_futures);
    Py_CLEAR(st->asyncio_tasks);
    Py_CLEAR(st->str_Future);
    Py_CLEAR(st->str_Task);
    Py_CLEAR(st->str_create_task_hooked);
    Py_CLEAR(st->kw_loop);
    Py_CLEAR(st->str_call_exception_handler);
    Py_CLEAR(st->str_connection_made);
    Py_CLEAR(st->str_data_received);
    Py_CLEAR(st->str_eof_received);
    Py_CLEAR(st->str_connection_lost);
    Py_CLEAR(st->str_pause_writing);
    Py_CLEAR(st->str_resume_writing);
    Py_CLEAR(st->str_get_buffer);
    Py_CLEAR(st->str_buffer_updated);
    Py_CLEAR(st->str_datagram_received);
    Py_CLEAR(st->str_error_received);
    Py_CLEAR(st->str_message);
    Py_CLEAR(st->str_exception);
    Py_CLEAR(st->str_handle);
    Py_CLEAR(st->str_source_traceback);
    Py_CLEAR(st->format_callback);
    Py_CLEAR(st->handle_repr);
    Py_CLEAR(st->log_slow_callback);
    Py_CLEAR(st->extract_stack);
    return 0;
}

static void module_free(void *module) { module_clear(module); }

static PyMethodDef module_methods[] = {
    {"_set_helpers", (PyCFunction)(void (*)(void))set_helpers, METH_FASTCALL,
     NULL},
    {"datagram_socket", (PyCFunction)(void (*)(void))datagram_socket,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef tapio_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tapio._tapio",
    .m_doc = "The C half of tapio's event loop, over libtapio.",
    .m_size = sizeof(ModuleState),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__tapio(void) { return PyModuleDef_Init(&tapio_module); }
