/* The _tapio extension: Python objects over libtapio. Shared declarations. */
#ifndef TAPIO_BINDING_H
#define TAPIO_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "tapio.h"

typedef struct LoopCore LoopCore;
typedef struct ServerCore ServerCore;
typedef struct DatagramTransport DatagramTransport;
typedef struct ProcessCore ProcessCore;

/* Per-module state: the heap types and the Python helpers C calls into. */
typedef struct {
    PyTypeObject *LoopCoreType;
    PyTypeObject *HandleType;
    PyTypeObject *TimerHandleType;
    PyTypeObject *TransportType;
    PyTypeObject *ReadPipeTransportType;  /* Transport's layout, */
    PyTypeObject *WritePipeTransportType; /* asyncio's pipe methods */
    PyTypeObject *ServerCoreType;
    PyTypeObject *DatagramTransportType;
    PyTypeObject *ProcessCoreType;
    PyObject *BufferedProtocolType; /* asyncio.BufferedProtocol */
    PyObject *str_connection_made;
    PyObject *str_data_received;
    PyObject *str_eof_received;
    PyObject *str_connection_lost;
    PyObject *str_pause_writing;
    PyObject *str_resume_writing;
    PyObject *str_get_buffer;
    PyObject *str_buffer_updated;
    PyObject *str_datagram_received;
    PyObject *str_error_received;
    PyObject *str_call_exception_handler;
    PyObject *str_message;
    PyObject *str_exception;
    PyObject *str_handle;
    PyObject *str_source_traceback;
    PyObject *format_callback;   /* tapio._format_callback(cb, args) */
    PyObject *handle_repr;       /* tapio._handle_repr(handle) */
    PyObject *log_slow_callback; /* tapio._log_slow_callback(handle, dt) */
    PyObject *extract_stack;     /* the caller's stack, for debug mode */
    PyObject *asyncio_futures;   /* the modules create_future/create_task */
    PyObject *asyncio_tasks;     /* take Future and Task from (tasks.c) */
    PyObject *str_Future;
    PyObject *str_Task;
    PyObject *str_create_task_hooked;
    PyObject *kw_loop;           /* ("loop",) */
} ModuleState;

/* A queued callback (asyncio's Handle; TimerHandle adds a deadline). */
typedef struct Handle {
    PyObject_HEAD
    PyObject *weakreflist;
    LoopCore *loop;        /* strong reference */
    PyObject *callback;
    PyObject *args;        /* tuple */
    PyObject *context;     /* contextvars.Context */
    PyObject *source_traceback; /* where it was made (debug mode), or NULL */
    tapio_handle *c_handle;/* referenced while this object lives */
    struct Handle *prev, *next; /* the loop's list of queued handles */
    bool cancelled;
    bool queued;           /* the loop holds a reference for the queue */
    bool timer;
} Handle;

/* An asyncio.Transport over a libtapio stream transport. The first field
 * after the header is asyncio.BaseTransport's `_extra` slot: the types
 * (stream, write pipe: asyncio.Transport; read pipe: asyncio.ReadTransport)
 * derive from asyncio's and share its layout. */
typedef struct Transport {
    PyObject_HEAD
    PyObject *extra;         /* dict for get_extra_info */
    PyObject *weakreflist;
    PyObject *dict;          /* instance attributes (tests patch methods) */
    tapio_transport *t;      /* referenced from connection_made on */
    LoopCore *loop;
    ServerCore *server;      /* the server that accepted it, if any */
    PyObject *protocol;
    PyObject *sock;          /* socket (or pipe) object viewing the fd */
    bool close_view;         /* a pipe object on a dup: close, not detach */
    bool sock_dup;           /* the user's socket object (sock=); libtapio
                              * works on a dup: close it, not detach */
    int user_fd;             /* its fd number, shown as asyncio shows it */
    PyObject *lost_exc;      /* for connection_lost after a protocol error */
    PyObject *limits_shown;  /* binding_limits' shown, or NULL */
    int asserting_fd;        /* a write pipe's fd failing asyncio's writer
                              * assertion each iteration (transport.c), or -1 */
    PyObject *context;       /* contextvars.Context its protocol runs in */
    struct Transport *prev, *next; /* the loop's list of open transports */
    Py_buffer view;          /* BufferedProtocol buffer being filled */
    bool view_held;
    bool in_context;         /* context is entered (binding_enter) */
    bool lost;               /* connection_lost has run */
    bool dropped_open;       /* the loop closed under it: warn when freed */
    bool borrowed;           /* a child's pipe: its libtapio protocol is the
                              * process's (process.c), never replaced */
    bool half_made;          /* accepted for a protocol without
                              * connection_made: held open, never read
                              * (server.c) */
} Transport;

/* The C half of a tapio Server: a libtapio server accepting on sockets
 * the Python Server bound. */
struct ServerCore {
    PyObject_HEAD
    LoopCore *loop;
    tapio_server *server;      /* NULL once closed */
    PyObject *protocol_factory;
    PyObject *make_extra;      /* make_extra(fd) -> (socket, extra dict) */
    PyObject *on_closed;       /* called once closed with no connections left */
    PyObject *owner;           /* the Python Server, kept alive while open */
    PyObject *context;         /* copied when serving starts; each
                                * connection runs in a copy of it */
};

struct LoopCore {
    PyObject_HEAD
    PyObject *weakreflist;
    PyObject *dict;
    tapio_loop *loop;
    PyThreadState *saved_tstate; /* while the GIL is released in poll */
    PyObject *pending_exc;       /* BaseException to raise out of run */
    Handle queued;               /* sentinel of the queued-handle list */
    Transport open_transports;   /* sentinel: transports libtapio holds */
    PyObject *servers;           /* set of open ServerCores */
    PyObject *datagrams;         /* set of DatagramTransports libtapio holds */
    PyObject *connects;          /* connect.c: key -> request in flight */
    PyObject *processes;         /* set of ProcessCores libtapio holds */
    PyObject *readers;           /* fd -> Handle */
    PyObject *writers;
    double slow_callback_duration;
    int user_calls;              /* depth of user calls into transports that
                                  * may call the protocol back (write) */
    bool debug;
    PyObject *debug_value; /* what set_debug got, as get_debug returns it */
    PyObject *task_factory;      /* set_task_factory's, or NULL */
    bool closed;
    ModuleState *state;
};

ModuleState *binding_state_of_type(PyTypeObject *type);

/* The raised exception as one object (PyErr_GetRaisedException before 3.12). */
static inline PyObject *binding_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (!type)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static inline void binding_restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (!exc)
        return;
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

/* Protocol factories and callbacks run in the contextvars context of their
 * transport (a copy of the one current when it was made), as asyncio's do.
 * binding_enter enters `context` around a callback the loop dispatches and
 * returns it (a new reference) for binding_leave. It enters nothing and
 * returns NULL inside a user's call into a transport (pause_writing inside
 * write(), error_received inside sendto(): those run in the caller's
 * context, as in asyncio) or when `*entered` says the context is entered
 * already (a callback made inside another of the same transport). */
static inline PyObject *binding_enter(LoopCore *loop, PyObject *context,
                                      bool *entered)
{
    if (!context || *entered || loop->user_calls)
        return NULL;
    if (PyContext_Enter(context) < 0) {
        PyErr_WriteUnraisable(context);
        return NULL;
    }
    *entered = true;
    return Py_NewRef(context);
}

static inline void binding_leave(PyObject *entered_context, bool *entered)
{
    if (!entered_context)
        return;
    *entered = false;
    PyObject *exc = PyErr_Occurred() ? binding_fetch_exception() : NULL;
    if (PyContext_Exit(entered_context) < 0)
        PyErr_WriteUnraisable(entered_context);
    binding_restore_exception(exc);
    Py_DECREF(entered_context);
}

/* handle.c */
extern PyType_Spec handle_spec;
extern PyType_Spec timer_handle_spec;
Handle *handle_new(LoopCore *loop, PyTypeObject *type, PyObject *callback,
                   PyObject *const *args, Py_ssize_t nargs,
                   PyObject *context);
/* Run the handle's callback in its context, routing errors like asyncio. */
void handle_run(Handle *h);
/* Queue bookkeeping: the loop keeps a reference while the C side has it. */
void handle_enqueue(Handle *h);
void handle_dequeue(Handle *h);
void handle_release_all(LoopCore *loop);

/* calls.c */
bool binding_is_exit_exception(PyObject *exc);
/* obj.name(arg) (or obj.name() when arg is NULL); None when obj is NULL. */
PyObject *binding_call_method(PyObject *obj, PyObject *name, PyObject *arg);
/* loop.call_exception_handler({'message', 'exception', 'transport',
 * 'protocol'}) for an error that has no caller to go to; exc or transport
 * NULL leave their keys out (and protocol with transport). */
void binding_report(LoopCore *loop, const char *message, PyObject *exc,
                    PyObject *transport, PyObject *protocol);
/* After a protocol callback failed: SystemExit/KeyboardInterrupt leave the
 * loop (NULL); anything else is reported and returned (a new reference). */
PyObject *binding_callback_failed(LoopCore *loop, const char *message,
                                  PyObject *transport, PyObject *protocol);
/* The OSError subclass for a (negative) errno, as an object. */
PyObject *binding_errno_exception(int err);
/* set_write_buffer_limits' arguments, checked as asyncio checks them. */
typedef struct binding_limits {
    Py_ssize_t high, low;  /* for libtapio (TAPIO_LIMIT_DEFAULT: not given) */
    bool high_fractional;  /* high was a real between two sizes */
    PyObject *shown;       /* (low, high) as asyncio keeps them, when the
                            * sizes say otherwise (floats, huge ints), or
                            * NULL; a new reference */
} binding_limits;
int binding_parse_limits(PyObject *args, PyObject *kwargs,
                         binding_limits *out);
PyObject *binding_limits_tuple(PyObject *shown, size_t low, size_t high);
void binding_detach_socket(PyObject **sock);
void binding_close_socket(PyObject **sock);
bool binding_socket_closed(PyObject *sock);
void binding_warn_unclosed(PyObject *transport);

/* sockaddr.c: addresses in the forms of Python's socket module. */
PyObject *binding_sockaddr_to_py(const struct sockaddr *sa, socklen_t len);
int binding_py_to_sockaddr(PyObject *addr, int family,
                           struct sockaddr_storage *ss, socklen_t *len);

/* transport.c */
extern PyType_Spec transport_spec;
extern PyType_Spec read_pipe_transport_spec;
extern PyType_Spec write_pipe_transport_spec;
/* `context` is the one its protocol runs in; NULL for a copy of the
 * current one. */
Transport *transport_new(LoopCore *loop, PyObject *protocol, PyObject *sock,
                         PyObject *extra, PyObject *context);
/* The same, of another type of Transport's layout (a subclass adding no
 * fields, or a pipe type). */
Transport *transport_new_of(PyTypeObject *type, LoopCore *loop,
                            PyObject *protocol, PyObject *sock,
                            PyObject *extra, PyObject *context);
/* The libtapio protocol table for the transport's Python protocol. */
const tapio_protocol *transport_table(Transport *self);
/* Hand the transport to libtapio, which holds a reference until
 * connection_lost; transport_release_all drops those at loop close. */
void transport_attach(Transport *self);
void transport_release_all(LoopCore *loop);
/* libtapio is done with it: let go of the socket, protocol and list. */
void transport_end(Transport *self);
/* Another transport (TLS) took its libtapio transport and socket over. */
void transport_taken_over(Transport *self);
/* A borrowed pipe (a child's) ended: its file object is closed, or, when
 * the loop closed under it, left open for the finalizer's warning. */
void transport_borrowed_end(Transport *self, bool loop_closed);
/* The exception a failed write left for connection_lost (a new reference
 * the caller takes), or NULL. */
PyObject *transport_take_lost_exc(Transport *self);

/* tls.c */
PyObject *transport_start_tls(Transport *raw, PyObject *args,
                              PyObject *kwargs);
/* The exception asyncio gives for a TLS transport's error, or NULL. */
PyObject *tls_exception(tapio_transport *t, int err);
/* asyncio's warning for an eof_received() that asked to stay open: TLS
 * closes anyway. */
void tls_warn_kept_open(void);
/* A TLS transport's connection is over (before its protocol hears it): its
 * extra info keeps the session's keys only, as asyncio's. */
void tls_connection_over(Transport *face);
/* A TLS transport closed again once closing: its extra info goes, and the
 * SSLContext with it (asyncio drops its SSLProtocol). */
void tls_forget(Transport *face);

/* datagram.c */
extern PyType_Spec datagram_transport_spec;
PyObject *datagram_wrap(LoopCore *loop, PyObject *const *args,
                        Py_ssize_t nargs);
void datagram_release_all(LoopCore *loop);
PyObject *datagram_of_fd(LoopCore *loop, int fd);
PyObject *datagram_socket(PyObject *module, PyObject *args, PyObject *kwargs);

/* process.c */
extern PyType_Spec process_core_spec;
PyObject *process_core_adopt(LoopCore *loop, PyObject *args, PyObject *kw);
void process_core_release_all(LoopCore *loop);

/* loop.c's _wrap_pipe modes, exported as _tapio.PIPE_* (module.c). */
enum { BINDING_PIPE_READ, BINDING_PIPE_WRITE, BINDING_PIPE_READ_RELAYED };

/* server.c */
extern PyType_Spec server_core_spec;
PyObject *server_core_new(LoopCore *loop, PyObject *args, PyObject *kwargs);
void server_core_forget_all(LoopCore *loop);

/* connect.c: ipaddr_info, connect_socket, connect_cancel */
int connect_module_add(PyObject *module);
void connect_release_all(LoopCore *loop);

/* tasks.c: LoopCore's create_future, create_task and task factory */
int tasks_module_state_init(ModuleState *st);
PyObject *loop_create_future(LoopCore *self, PyObject *unused);
PyObject *loop_create_task(LoopCore *self, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
PyObject *loop_set_task_factory(LoopCore *self, PyObject *factory);
PyObject *loop_get_task_factory(LoopCore *self, PyObject *unused);

/* loop.c */
extern PyType_Spec loop_core_spec;
void loop_core_set_pending(LoopCore *loop); /* from the current exception */

#endif
