/* Internals shared by libtapio's source files. Never installed. */
#ifndef TAPIO_INTERNAL_H
#define TAPIO_INTERNAL_H

#include "tapio.h"

#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdint.h>
#include <sys/socket.h>

#define TAPIO__HIDDEN __attribute__((visibility("hidden")))

#define tapio__container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#define TAPIO__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Interest and readiness bits of an fd watcher. */
enum { TAPIO__READ = 1u, TAPIO__WRITE = 2u, TAPIO__ERROR = 4u };

/* The size of the loop's shared read buffer (asyncio reads 256 KiB at most). */
#define TAPIO__READ_SIZE (256 * 1024)
/* The size of each buffer a completion-based backend receives into. */
#define TAPIO__RECV_BUFFER_SIZE (64 * 1024)

/* ---- intrusive doubly linked list ---------------------------------- */

typedef struct tapio__list {
    struct tapio__list *prev, *next;
} tapio__list;

static inline void tapio__list_init(tapio__list *l) { l->prev = l->next = l; }
static inline bool tapio__list_empty(const tapio__list *l) { return l->next == l; }
static inline void tapio__list_push(tapio__list *head, tapio__list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}
static inline void tapio__list_remove(tapio__list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* ---- fd watchers ---------------------------------------------------- */

typedef struct tapio__io tapio__io;

/* Called with the ready bits (TAPIO__READ/WRITE/ERROR) of the watcher's fd. */
typedef void (*tapio__io_cb)(tapio_loop *loop, tapio__io *io, unsigned events);
/* What a completion-based backend received for a watcher: n > 0 bytes at
 * data (valid during the call only), 0 at EOF, or -errno. */
typedef void (*tapio__io_received_cb)(tapio_loop *loop, tapio__io *io,
                                      const char *data, ssize_t n);
/* What a completion-based backend's send for a watcher did: n >= 0 bytes
 * of it sent (possibly fewer than asked), -errno, or -ECANCELED when it
 * was cancelled unsent (the watcher removed, the ring replaced, the loop
 * closed). */
typedef void (*tapio__io_sent_cb)(tapio_loop *loop, tapio__io *io,
                                  ssize_t n);
/* What a completion-based backend accepted on a listening watcher: a new
 * connection's fd (non-blocking, close-on-exec; the callee owns it), or
 * -errno as accept4 would have failed. */
typedef void (*tapio__io_accepted_cb)(tapio_loop *loop, tapio__io *io,
                                      int fd);
/* What a completion-based backend received for a datagram watcher: one
 * datagram of n >= 0 bytes at data from the sender at addr (addrlen 0 and
 * addr NULL: an unnamed sender), both valid during the call only; or n =
 * -errno, an error the socket reported (ECONNREFUSED...). */
typedef void (*tapio__io_datagram_cb)(tapio_loop *loop, tapio__io *io,
                                      const char *data, ssize_t n,
                                      const struct sockaddr *addr,
                                      socklen_t addrlen);

struct tapio__io {
    int fd;
    unsigned want;      /* interest the owner asked for */
    unsigned armed;     /* interest the backend has */
    bool dirty;         /* on the loop's change list */
    bool registered;    /* known to the backend */
    bool user;          /* an add_reader/add_writer watcher */
    /* io_uring's requests in flight (0: none): a poll for `polled`, a
     * receive or a listener's accept (being cancelled: what it took
     * still comes). */
    uint32_t poll_tag, recv_tag;
    uint32_t recv_taken; /* bytes the multishot receive took so far */
    unsigned char polled;
    bool recv_cancelling;
    bool recv_refused;  /* the ring cannot receive or accept on this fd
                           (not connected, not listening): polled */
    tapio__io_cb cb;
    /* Set by an owner that takes bytes rather than readiness (a socket):
     * a backend that receives by completion (io_uring) serves READ interest
     * by calling it; the others report readiness through cb as ever. */
    tapio__io_received_cb received;
    bool by_readiness;  /* ...except while this is set (a protocol that
                           lends its own buffer: read straight into it) */
    /* Set by an owner that lets a completion-based backend send for it
     * (tapio__backend.send); send_node links the watcher while a send is
     * in flight. */
    tapio__io_sent_cb sent;
    tapio__list send_node;
    /* Set by a listener: such a backend serves its READ interest by
     * accepting and calling this with each new connection. */
    tapio__io_accepted_cb accepted;
    /* Set by a datagram owner instead of `received`: READ interest is
     * served by receiving datagrams with their senders' addresses (on
     * io_uring one multishot request, its tag recv_tag; a socket the ring
     * cannot receive from so is polled, recv_refused set). */
    tapio__io_datagram_cb received_from;
    /* The backend refused the interest (epoll_ctl failing with ENOSPC or
     * ENOMEM): the owner ends or falls back instead of waiting for events
     * that never come. NULL: the loop's error handler is told. */
    void (*refused)(tapio_loop *loop, tapio__io *io, int err);
};

/* Whether the watcher's receive request goes on after the completion
 * being handed out (a multishot one): more of the stream may come through
 * it, so its owner must not read the fd itself meanwhile. */
static inline bool tapio__io_receiving(const tapio__io *io)
{
    return io->recv_tag != 0;
}

TAPIO__HIDDEN void tapio__io_init(tapio__io *io, int fd, tapio__io_cb cb);
/* Claim the fd's slot in the loop; -EBUSY if another watcher has it. */
TAPIO__HIDDEN int tapio__io_attach(tapio_loop *loop, tapio__io *io);
/* Release the slot and remove the fd from the backend (before close(fd)). */
TAPIO__HIDDEN void tapio__io_detach(tapio_loop *loop, tapio__io *io);
/* Change interest; applied to the backend in one batch before polling. */
TAPIO__HIDDEN void tapio__io_set(tapio_loop *loop, tapio__io *io, unsigned want);
TAPIO__HIDDEN void tapio__io_flush_changes(tapio_loop *loop);
/* Called by backends for each ready fd. */
TAPIO__HIDDEN void tapio__io_dispatch(tapio_loop *loop, int fd, unsigned events);
/* The same for a backend that knows the watcher. */
TAPIO__HIDDEN void tapio__io_deliver(tapio_loop *loop, tapio__io *io,
                                     unsigned events);
TAPIO__HIDDEN void tapio__io_close_all(tapio_loop *loop);
/* Every watcher to be registered anew (a backend replaced its kernel
 * state): each with interest goes to the next batch of changes. */
TAPIO__HIDDEN void tapio__io_register_all_again(tapio_loop *loop);

/* Forks this process went through as a child, counted from the first
 * tapio__watch_forks() on (src/fork.c); read on every watcher change, so
 * a load and no call. */
TAPIO__HIDDEN extern atomic_uint tapio__child_forks;
TAPIO__HIDDEN void tapio__watch_forks(void);
static inline unsigned tapio__forks_in_child(void)
{
    return atomic_load_explicit(&tapio__child_forks, memory_order_relaxed);
}

/* ---- backends ------------------------------------------------------- */

typedef struct tapio__backend {
    const char *name;
    int (*init)(tapio_loop *loop);
    void (*destroy)(tapio_loop *loop);
    /* Make the backend's interest in io->fd equal to `want` (non-zero) and
     * mark the watcher registered. */
    int (*modify)(tapio_loop *loop, tapio__io *io, unsigned want);
    /* Forget a registered watcher's fd (before it is closed or idles). */
    void (*remove)(tapio_loop *loop, tapio__io *io);
    /* Wait up to timeout_ms (-1 forever) and keep what is ready. */
    int (*wait)(tapio_loop *loop, int timeout_ms);
    /* Hand what the last wait found to tapio__io_dispatch. */
    void (*dispatch)(tapio_loop *loop);
    /* The error a receive for io met that is not handed out yet (0: none).
     * A backend that receives ahead of the owner may have taken the
     * socket's error (a reset) before the owner's send, which then sees
     * only EPIPE. NULL for backends that do not receive. */
    int (*received_error)(tapio_loop *loop, const tapio__io *io);
    /* Queue a send of len bytes at data for io (a socket), for push_sends:
     * 0 when queued (data must stay as it is until io->sent reports the
     * result; one send per watcher at a time), else negative, and the
     * owner sends itself. NULL for backends that do not send. */
    int (*send)(tapio_loop *loop, tapio__io *io, const void *data,
                size_t len);
    /* Cancel io's send in flight, if any, before its fd is closed (its
     * result still comes to io->sent). */
    void (*cancel_send)(tapio_loop *loop, tapio__io *io);
    /* Submit the sends queued, and hand out (io->sent) those the kernel
     * completed at once: the others complete in a later dispatch. */
    void (*push_sends)(tapio_loop *loop);
} tapio__backend;

TAPIO__HIDDEN extern const tapio__backend tapio__backend_epoll;
TAPIO__HIDDEN extern const tapio__backend tapio__backend_poll;
TAPIO__HIDDEN extern const tapio__backend tapio__backend_io_uring;

/* ---- handles and timers --------------------------------------------- */

enum {
    TAPIO__H_CANCELLED = 1u,
    TAPIO__H_IN_HEAP = 2u, /* a timer waiting in the heap */
    TAPIO__H_QUEUED = 4u,  /* in the ready queue */
    TAPIO__H_SHARED = 8u,  /* referenced by the user: may outlive the loop */
};

struct tapio_handle {
    tapio_handle *next; /* ready queue link / free list link */
    tapio_loop *loop;
    tapio_callback cb;
    void *arg;
    double when;
    uint64_t seq;       /* tie-breaker: equal deadlines run in FIFO order */
    size_t heap_index;  /* position in the timer heap */
    unsigned refs;
    unsigned flags;
};

TAPIO__HIDDEN tapio_handle *tapio__handle_new(tapio_loop *loop,
                                              tapio_callback cb, void *arg);
TAPIO__HIDDEN void tapio__ready_push(tapio_loop *loop, tapio_handle *h);

/* The min-heap of timers keyed by (when, seq). */
typedef struct tapio__heap {
    tapio_handle **items;
    size_t len, cap;
} tapio__heap;

TAPIO__HIDDEN int tapio__heap_push(tapio__heap *heap, tapio_handle *h);
TAPIO__HIDDEN tapio_handle *tapio__heap_pop(tapio__heap *heap);
TAPIO__HIDDEN void tapio__heap_remove(tapio__heap *heap, tapio_handle *h);
/* Where a timer sorts and when it is due: a NaN deadline counts as due at
 * once, as asyncio runs call_later(nan) on the next iteration, rather than
 * a time that no comparison can place. */
static inline double tapio__deadline(const tapio_handle *h)
{
    return h->when != h->when ? -INFINITY : h->when;
}

static inline tapio_handle *tapio__heap_top(const tapio__heap *heap)
{
    return heap->len ? heap->items[0] : NULL;
}
TAPIO__HIDDEN void tapio__heap_free(tapio__heap *heap);

/* ---- thread-safe calls and worker threads --------------------------- */

typedef struct tapio__tsq_item {
    struct tapio__tsq_item *next;
    tapio_callback cb;
    void *arg;
} tapio__tsq_item;

/* A job for a worker thread: work() runs there, done() back on the loop. */
typedef struct tapio__work {
    struct tapio__work *next;
    void (*work)(struct tapio__work *w);
    void (*done)(tapio_loop *loop, struct tapio__work *w);
} tapio__work;

/* What other threads share with the loop to schedule calls and wake it: its
 * own reference count, so that a tapio_waker outlives the loop (wakeup.c). */
typedef struct tapio__wake {
    atomic_size_t refs;          /* the loop's, and one per tapio_waker */
    pthread_mutex_t lock;        /* guards closed, fd writes and the queue */
    bool closed;                 /* the loop is closing: calls are refused */
    int fd;                      /* eventfd */
    atomic_bool signalled;       /* a wakeup is already on its way */
    atomic_bool has_calls;       /* head is not empty */
    tapio__tsq_item *head, *tail;
} tapio__wake;

/* The eventfd that wakes a sleeping loop (wakeup.c). */
TAPIO__HIDDEN int tapio__wakeup_init(tapio_loop *loop);
/* Refuse calls from other threads from now on (-ESHUTDOWN). */
TAPIO__HIDDEN void tapio__wakeup_refuse_calls(tapio_loop *loop);
TAPIO__HIDDEN void tapio__wakeup_close(tapio_loop *loop);
TAPIO__HIDDEN void tapio__wakeup_signal(tapio_loop *loop);
/* Move calls queued by other threads into the ready queue, in order. */
TAPIO__HIDDEN void tapio__drain_threadsafe_calls(tapio_loop *loop);

TAPIO__HIDDEN int tapio__work_submit(tapio_loop *loop, tapio__work *w);
TAPIO__HIDDEN void tapio__workers_join(tapio_loop *loop);

/* ---- signals -------------------------------------------------------- */

TAPIO__HIDDEN void tapio__signals_release(tapio_loop *loop);
TAPIO__HIDDEN void tapio__fd_aliases_free(tapio_loop *loop);

/* ---- the loop ------------------------------------------------------- */

#define TAPIO__MAX_WORKERS 4

struct tapio_loop {
    const tapio__backend *backend;
    bool backend_by_default;     /* not named by TAPIO_BACKEND */
    int backend_fd;              /* epoll or io_uring fd */
    void *backend_data;          /* the backend's own state */

    tapio__io **fds;             /* fd -> watcher */
    size_t nfds;
    int *alias_of;               /* caller's fd -> libtapio's dup, or -1 */
    size_t nalias;
    tapio__io **changes;         /* watchers whose interest changed */
    size_t nchanges, changes_cap;

    tapio_handle *ready_head, *ready_tail;
    size_t nready;
    tapio__heap timers;
    uint64_t timer_seq;
    tapio_handle *handle_pool;   /* recycled handles */
    size_t handle_pool_len;

    bool running, stopping, closing;
    bool interrupted;            /* leave run_ready at once */
    /* Callbacks are running: stream writes are queued and each transport
     * flushed once (one writev) when they are done, before the next poll. */
    bool dispatching;
    unsigned iterations; /* counts run_iteration's calls (wraps) */
    tapio__list write_flushes;   /* fd transports with queued writes */
    tapio_poll_hook before_poll, after_poll;
    void *poll_hook_arg;

    /* Wakeup for call_soon_threadsafe and worker completions. */
    tapio__wake *wake;
    tapio__io wake_io;

    /* Worker threads (name resolution). */
    pthread_mutex_t work_lock;
    pthread_cond_t work_cond;
    tapio__work *work_head, *work_tail; /* queued for workers */
    tapio__work *done_head;             /* finished, for the loop */
    pthread_t workers[TAPIO__MAX_WORKERS];
    int nworkers, idle_workers;
    bool workers_exit;

    /* User fd watchers (add_reader/add_writer). */
    tapio__list user_watchers;

    /* Signals: a self-pipe written by the process-wide handler. */
    int signal_pipe[2];
    tapio__io signal_io;
    void *signal_handlers;       /* per-signal callbacks of this loop */

    /* Open transports, servers and pending connects, for loop close. */
    tapio__list transports;
    tapio__list datagrams;
    tapio__list processes;
    tapio__list servers;
    tapio__list connects;

    tapio_error_handler error_handler;
    void *error_arg;

    char *read_buf;              /* shared read buffer, TAPIO__READ_SIZE */
};

TAPIO__HIDDEN void tapio__report_error(tapio_loop *loop, const char *message,
                                       int err);
TAPIO__HIDDEN double tapio__clock_now(void);

/* ---- flow control (flow.c) ------------------------------------------ */

/* A transport's write limits and whether its protocol is paused. Streams
 * and datagrams pause when the buffer goes strictly over high (asyncio's
 * _FlowControlMixin), TLS faces when it reaches high (sslproto's
 * _control_app_writing); all resume at or below low. */
typedef struct tapio__flow {
    size_t high, low;
    size_t default_high; /* the kind's, for limits not given */
    bool paused;         /* pause_writing was called, resume_writing not */
    bool pause_at_high;  /* pause at size >= high, not > high */
} tapio__flow;

TAPIO__HIDDEN void tapio__flow_init(tapio__flow *f, size_t default_high,
                                    bool pause_at_high);
/* set_write_buffer_limits: negative values are not given. 0 or -EINVAL
 * (the limits then stay as they were). */
TAPIO__HIDDEN int tapio__flow_set(tapio__flow *f, ssize_t high, ssize_t low);

/* Whether the protocol should be paused now, given the buffered size; the
 * caller then calls pause_writing. */
static inline bool tapio__flow_pause(tapio__flow *f, size_t size)
{
    if (f->paused || size < f->high || (size == f->high && !f->pause_at_high))
        return false;
    f->paused = true;
    return true;
}

/* Whether a buffer of `size` would pause the protocol (it is not paused
 * yet); asks without pausing. */
static inline bool tapio__flow_over_high(const tapio__flow *f, size_t size)
{
    return !f->paused &&
           (size > f->high || (size == f->high && f->pause_at_high));
}

/* Whether the protocol should be resumed now; the caller then calls
 * resume_writing. */
static inline bool tapio__flow_resume(tapio__flow *f, size_t size)
{
    if (!f->paused || size > f->low)
        return false;
    f->paused = false;
    return true;
}

/* ---- datagram transports (datagram.c) -------------------------------- */

TAPIO__HIDDEN void tapio__datagrams_destroy_all(tapio_loop *loop);

/* ---- subprocesses (process.c) ---------------------------------------- */

/* Kill and reap children still running, without callbacks. */
TAPIO__HIDDEN void tapio__processes_destroy_all(tapio_loop *loop);

/* ---- transports (stream.c) ------------------------------------------ */

/* What a stream transport runs over: they differ in how they write, what
 * EOF means and what reading watches for. */
enum tapio__stream_kind {
    TAPIO__SOCKET,     /* send()/sendmsg(), shutdown(SHUT_WR) for EOF */
    TAPIO__READ_PIPE,  /* reads only; EOF ends the transport */
    TAPIO__WRITE_PIPE, /* writes only; "readable" means the reader left */
    TAPIO__TLS,        /* plaintext face of a TLS layer (tls.c); no fd */
};

/* Reasons to stop reading; one resume does not undo another's pause. */
enum {
    READ_PAUSED_USER = 1u,   /* pause_reading() */
    READ_STOPPED_EOF = 2u,   /* the peer sent EOF and the protocol kept us */
    READ_NOT_STARTED = 4u,   /* connection_made has not run yet */
    READ_NEVER = 8u,         /* a write pipe on a terminal: readable means
                                input, not a reader gone (asyncio does not
                                watch those either) */
};

/* Where a transport is in its life; asyncio's is_closing() is true from
 * CLOSING on. A transport closed before connection_made ran goes straight
 * to CLOSING (connection_made still runs, as in asyncio). */
enum tapio__life {
    TAPIO__CONNECTING, /* connection_made has not run yet */
    TAPIO__OPEN,
    TAPIO__CLOSING,    /* close(), abort() or an error: connection_lost to come */
    TAPIO__CLOSED,     /* connection_lost is scheduled or has run */
};

/* A transport's other state bits. */
enum {
    TAPIO__T_EOF = 1u,      /* write_eof() was called */
    TAPIO__T_EOF_SENT = 2u, /* and the write side is shut */
    TAPIO__T_RELEASED = 4u, /* fd closed, loop left: only the memory remains */
};

/* Shrink an idle write buffer above this size, so memory follows load. */
#define WBUF_KEEP (256 * 1024)

/* What each kind of stream transport does for the tapio_transport_* calls
 * (stream.c: sockets and pipes; tls.c: the TLS face), as libevent's
 * bufferevent_ops. The core (stream.c) keeps what all share: lifetime,
 * connection_lost, flow-control limits, addresses, the protocol. */
typedef struct tapio__transport_ops {
    int (*writev)(tapio_transport *t, const struct iovec *iov, int iovcnt);
    int (*write_eof)(tapio_transport *t); /* NULL: cannot (-ENOTSUP) */
    int (*sendfile)(tapio_transport *t, int file_fd, off_t offset,
                    size_t count, tapio_sendfile_callback cb,
                    void *arg);           /* NULL: -ENOTSUP */
    ssize_t (*sendfile_cancel)(tapio_transport *t); /* with sendfile */
    void (*close)(tapio_transport *t);    /* not yet closing */
    void (*fail)(tapio_transport *t, int err); /* not yet released */
    void (*pause_reading)(tapio_transport *t);
    void (*resume_reading)(tapio_transport *t);
    bool (*is_reading)(const tapio_transport *t);
    size_t (*buffer_size)(const tapio_transport *t);
    /* The limits changed: pause the protocol if now over them. */
    void (*limits_changed)(tapio_transport *t);
    int (*fd)(const tapio_transport *t);
    /* Let go of the fd, timers and buffers: connection_lost has run or the
     * loop is closing. The memory stays while references remain. */
    void (*release)(tapio_transport *t);
    /* The last reference went: free the kind's whole struct. */
    void (*free)(tapio_transport *t);
} tapio__transport_ops;

/* A transport's addresses, cached at creation; each kind keeps them at the
 * end of its struct, away from the fields every event touches. */
typedef struct tapio__addresses {
    struct sockaddr_storage peer, local;
    socklen_t peer_len, local_len;
} tapio__addresses;

/* The part every stream transport kind shares, first in each kind's own
 * struct (stream.c's fd_transport, tls.c's struct tapio__tls). */
struct tapio_transport {
    const tapio__transport_ops *ops;
    tapio__list node; /* in loop->transports while alive */
    tapio_loop *loop;
    tapio_server *server;
    const tapio_protocol *proto;
    void *user;
    unsigned refs;       /* the loop's (until connection_lost ran) + user's */
    unsigned read_stop;  /* READ_* bits */
    enum tapio__stream_kind kind;
    enum tapio__life life;
    unsigned flags;      /* TAPIO__T_* bits */
    int lost_error;
    tapio__flow flow;
    tapio__addresses *addr; /* in the kind's struct */
};

/* Set the common part of a new transport (memory zeroed): one reference
 * (the loop's), CONNECTING, the kind's default limits, its addresses. */
TAPIO__HIDDEN void tapio__transport_init(tapio_transport *t, tapio_loop *loop,
                                         const tapio__transport_ops *ops,
                                         enum tapio__stream_kind kind,
                                         const tapio_protocol *proto,
                                         void *user, size_t default_high,
                                         tapio__addresses *addr);
TAPIO__HIDDEN int tapio__transport_new(tapio_loop *loop, int fd,
                                       enum tapio__stream_kind kind,
                                       const tapio_protocol *proto, void *user,
                                       tapio_server *server,
                                       tapio_transport **out);
/* Read a pipe through a socket pair (tapio_pipe_read_relayed); the
 * transport closes the pair. 0, or -ENOSYS where splice cannot serve
 * (-EINVAL: not a read pipe). */
TAPIO__HIDDEN int tapio__transport_relay(tapio_transport *t);
/* Close every transport without protocol callbacks (tapio_loop_close). */
TAPIO__HIDDEN void tapio__transports_destroy_all(tapio_loop *loop);
/* Send what the iteration's callbacks wrote: one writev per transport. */
TAPIO__HIDDEN void tapio__flush_writes(tapio_loop *loop);
/* Schedule connection_lost(err) once, then release the transport. */
TAPIO__HIDDEN void tapio__transport_lost(tapio_transport *t, int err);
/* Release without connection_lost and drop the loop's reference. */
TAPIO__HIDDEN void tapio__transport_drop(tapio_transport *t);
/* Whether connection_made was called (it may be running now), for a
 * transport not closing. */
TAPIO__HIDDEN bool tapio__transport_started(const tapio_transport *t);

static inline bool tapio__transport_closing(const tapio_transport *t)
{
    return t->life >= TAPIO__CLOSING;
}

static inline void tapio__transport_set_closing(tapio_transport *t)
{
    if (t->life < TAPIO__CLOSING)
        t->life = TAPIO__CLOSING;
}

/* connection_made is being called. */
static inline void tapio__transport_set_open(tapio_transport *t)
{
    if (t->life == TAPIO__CONNECTING)
        t->life = TAPIO__OPEN;
}

static inline bool tapio__transport_released(const tapio_transport *t)
{
    return t->flags & TAPIO__T_RELEASED;
}

/* asyncio's write high-water mark for SSL transports (512 KiB) and the
 * records read ahead before the socket stops being read (256 KiB). */
#define TAPIO__TLS_HIGH_WATER (512 * 1024)
#define TAPIO__TLS_READ_HIGH_WATER (256 * 1024)

/* ---- TLS (tls.c, tls_openssl.c) ------------------------------------- */

/* TLS settings kept by a server or a connect request for each connection. */
typedef struct tapio__tls_config {
    tapio_tls_context *context;
    char *server_hostname;
    double handshake_timeout, shutdown_timeout;
} tapio__tls_config;

TAPIO__HIDDEN int tapio__tls_config_copy(tapio__tls_config *cfg,
                                         const tapio_tls_options *opts);
TAPIO__HIDDEN void tapio__tls_config_free(tapio__tls_config *cfg);
TAPIO__HIDDEN void tapio__tls_config_options(const tapio__tls_config *cfg,
                                             bool server_side,
                                             tapio_tls_options *opts);

/* Whether t is the raw transport under a TLS layer. */
TAPIO__HIDDEN bool tapio__tls_is_raw(const tapio_transport *t);
/* The OpenSSL state of a TLS transport on libtapio's engine, or NULL. */
TAPIO__HIDDEN void *tapio__tls_openssl_state(const tapio_transport *t);
/* The OpenSSL engine for one connection of a context. */
TAPIO__HIDDEN extern const tapio_tls_engine tapio__openssl_engine;
TAPIO__HIDDEN int tapio__openssl_state_new(tapio_tls_context *ctx,
                                           bool server_side,
                                           const char *server_hostname,
                                           void **state);

/* ---- servers (server.c) --------------------------------------------- */

TAPIO__HIDDEN void tapio__server_connection_gone(tapio_server *s, bool from_loop);
TAPIO__HIDDEN void tapio__servers_destroy_all(tapio_loop *loop);
TAPIO__HIDDEN void tapio__connects_destroy_all(tapio_loop *loop);

/* ---- sockets (sockutil.c) ------------------------------------------- */

TAPIO__HIDDEN int tapio__set_nonblocking(int fd);
TAPIO__HIDDEN int tapio__unix_addr(const char *path, size_t path_len,
                                   struct sockaddr_storage *ss,
                                   socklen_t *len);
TAPIO__HIDDEN int tapio__socket(int family, int type, int protocol);
/* asyncio removes a stale socket file left at a path it binds. */
TAPIO__HIDDEN void tapio__remove_stale_socket(const char *path);
/* The same for the path of a Unix socket address (none if abstract). */
TAPIO__HIDDEN void tapio__remove_stale_unix_socket(const struct sockaddr *addr,
                                                   socklen_t len);

#endif /* TAPIO_INTERNAL_H */
