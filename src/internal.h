/* Internals shared by libtapio's source files. Never installed. */
#ifndef TAPIO_INTERNAL_H
#define TAPIO_INTERNAL_H

#include "tapio.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define TAPIO__HIDDEN __attribute__((visibility("hidden")))

#define tapio__container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#define TAPIO__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Interest and readiness bits of an fd watcher. */
enum { TAPIO__READ = 1u, TAPIO__WRITE = 2u, TAPIO__ERROR = 4u };

/* The size of the loop's shared read buffer (asyncio reads 256 KiB at most). */
#define TAPIO__READ_SIZE (256 * 1024)

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

struct tapio__io {
    int fd;
    unsigned want;      /* interest the owner asked for */
    unsigned armed;     /* interest the backend has */
    bool dirty;         /* on the loop's change list */
    bool registered;    /* known to the backend */
    bool user;          /* an add_reader/add_writer watcher */
    tapio__io_cb cb;
};

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
TAPIO__HIDDEN void tapio__io_close_all(tapio_loop *loop);

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
} tapio__backend;

TAPIO__HIDDEN extern const tapio__backend tapio__backend_epoll;
TAPIO__HIDDEN extern const tapio__backend tapio__backend_poll;

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

/* The eventfd that wakes a sleeping loop (wakeup.c). */
TAPIO__HIDDEN int tapio__wakeup_init(tapio_loop *loop);
TAPIO__HIDDEN void tapio__wakeup_close(tapio_loop *loop);
TAPIO__HIDDEN void tapio__wakeup_signal(tapio_loop *loop);
/* Move calls queued by other threads into the ready queue, in order. */
TAPIO__HIDDEN void tapio__drain_threadsafe_calls(tapio_loop *loop);

TAPIO__HIDDEN int tapio__work_submit(tapio_loop *loop, tapio__work *w);
TAPIO__HIDDEN void tapio__workers_join(tapio_loop *loop);

/* ---- signals -------------------------------------------------------- */

TAPIO__HIDDEN void tapio__signals_release(tapio_loop *loop);

/* ---- the loop ------------------------------------------------------- */

#define TAPIO__MAX_WORKERS 4

struct tapio_loop {
    const tapio__backend *backend;
    int backend_fd;              /* epoll fd */
    void *backend_data;          /* the backend's own state */

    tapio__io **fds;             /* fd -> watcher */
    size_t nfds;
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
    tapio_poll_hook before_poll, after_poll;
    void *poll_hook_arg;

    /* Wakeup for call_soon_threadsafe and worker completions. */
    int wake_fd;
    tapio__io wake_io;
    atomic_bool wake_pending;
    pthread_mutex_t tsq_lock;
    tapio__tsq_item *tsq_head, *tsq_tail;
    atomic_bool tsq_pending;     /* tsq_head is not empty */

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

/* Resolve set_write_buffer_limits arguments (negative: not given). */
TAPIO__HIDDEN int tapio__flow_limits(ssize_t high, ssize_t low,
                                     size_t *out_high, size_t *out_low);

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
};

TAPIO__HIDDEN int tapio__transport_new(tapio_loop *loop, int fd,
                                       enum tapio__stream_kind kind,
                                       const tapio_protocol *proto, void *user,
                                       tapio_server *server,
                                       tapio_transport **out);
/* Close every transport without protocol callbacks (tapio_loop_close). */
TAPIO__HIDDEN void tapio__transports_destroy_all(tapio_loop *loop);

/* ---- servers (server.c) --------------------------------------------- */

TAPIO__HIDDEN void tapio__server_connection_gone(tapio_server *s);
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

#endif /* TAPIO_INTERNAL_H */
