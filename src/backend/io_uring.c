/* The io_uring backend. Readiness watchers are one-shot poll requests on the
 * ring: each completion is handed out once, then the watcher is re-armed
 * through the loop's change list, so a watcher whose fd is still ready
 * fires again at the next iteration (epoll's level-triggered behaviour,
 * which the transports and add_reader users rely on). Every change of an
 * iteration and the wait itself go to the kernel in one io_uring_enter.
 *
 * A watcher that takes bytes (io->received: sockets) has its READ interest
 * served by receive requests instead, into a ring of buffers the loop
 * provides to the kernel, so that an idle connection holds no buffer and
 * a read costs no system call of its own. Where the kernel caps what a
 * multishot receive takes (a length per wakeup and a total; older
 * kernels refuse them with EINVAL), one request per connection receives
 * until it has taken 64 KiB or ends otherwise (out of buffers, EOF, an
 * error, cancelled), and is made again with the next batch: not once per
 * message, and never more than 128 KiB per iteration (a request that
 * takes more shows a kernel that ignores the total). Elsewhere each
 * receive completes once and is made again with the next batch, like the
 * polls. A paused watcher's receive is cancelled; the cancel reaches the
 * kernel before the next wakeup's work runs (deferred task work), so
 * what the kernel received before it still goes to io->received, whose
 * owner holds it until reading resumes. A watcher switched to readiness
 * (a bulk transfer, a protocol that lends its buffer) has its receive
 * cancelled the same way.
 *
 * A listener (io->accepted) has its READ interest served by a multishot
 * accept: one request takes every connection that arrives until it is
 * cancelled or fails (EMFILE ends it, and the server backs off), each
 * completion carrying a new connection's fd. Connections accepted while
 * the request was being cancelled still go to the listener, which keeps
 * or closes them. A listening socket the caller handed over has no
 * io->accepted (it may be shared with other processes) and is polled.
 *
 * A datagram socket (io->received_from) is served by one multishot
 * receive-message request instead, into a ring of buffers of its own,
 * each datagram handed out with its sender's address. Datagrams have no
 * window to keep: what the kernel queued is taken, as the readiness loop
 * takes it. The request ends when the buffers run out (ENOBUFS), at an
 * error (ICMP's ECONNREFUSED, handed out) or when cancelled, and is made
 * again with the next batch. Its buffers hold a datagram as large as a
 * read into the loop's buffer takes, so that what is delivered, whole or
 * cut, is what the other backends deliver.
 *
 * A socket's writes, coalesced during an iteration, go out as one send
 * request per socket, all in one system call at the iteration's end;
 * those the kernel completed at once are handed out there and then, as
 * send(2) calls would have been, and a send waiting for room completes
 * in a later dispatch. The bytes stay put in the transport's buffer until
 * the completion (see tapio__backend.send). A send's user_data is
 * SEND_ID | the watcher's address: its owner holds the watcher until the
 * completion, and a watcher let go, a ring replaced or a loop closed has
 * its send cancelled, the owner told so.
 *
 * Other requests' user_data is (fd << 32 | tag), the tag unique per request:
 * a completion whose tag is not one its watcher waits for belongs to a
 * request already cancelled, or to an fd closed and reused since, and is
 * dropped (its buffer given back to the ring, its accepted fd closed:
 * accept requests' tags carry ACCEPT_TAG so that such an fd is known).
 *
 * A fork shares the ring between parent and child: its queues are memory
 * both map, its requests the parent's. The child never touches it (a
 * submission or a consumed completion there would be the parent's); its
 * loop, if it runs on, takes a ring of its own. And the listening sockets
 * both now hold are accepted from at readiness (see share_listeners). */
#include "../internal.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SQ_ENTRIES 512
#define CQ_ENTRIES 8192
/* The user_data of requests whose completion needs nothing (removals). */
#define NO_COMPLETION UINT64_MAX
/* The tag bit of accept requests; other tags stay below it. */
#define ACCEPT_TAG 0x80000000u
/* The bit of send requests' user_data (an fd << 32 never has it). */
#define SEND_ID (UINT64_C(1) << 63)

/* The receive buffers: the loop's, shared by all its connections (8 MiB
 * of address space, touched as traffic needs). 128 receives can complete
 * between two dispatches; more end with ENOBUFS and are made again once
 * buffers are back. */
#define RECV_GROUP 0
#define RECV_BUFFERS 128
#define RECV_BUFFER_SIZE TAPIO__RECV_BUFFER_SIZE
/* What a multishot receive takes before it ends and is made again, and
 * the most it can take (the wakeup that crosses the total goes on to the
 * length's cap). */
#define MULTISHOT_TOTAL RECV_BUFFER_SIZE
#define MULTISHOT_MOST (MULTISHOT_TOTAL + RECV_BUFFER_SIZE)

/* The datagram buffers: each datagram takes a whole one, behind the
 * kernel's header and room for any sender's address, and is cut where a
 * TAPIO__READ_SIZE read would cut it (no UDP datagram is; a Unix one may
 * be larger). 16 MiB of address space, touched as datagrams need: a small
 * one touches one page. Their ids follow the stream buffers', so that a
 * completion's buffer id tells which ring the buffer goes back to. */
#define DGRAM_GROUP 1
#define DGRAM_BUFFERS 64
#define DGRAM_BID_BASE RECV_BUFFERS
#define DGRAM_NAME_SIZE ((unsigned)sizeof(struct sockaddr_storage))
#define DGRAM_BUFFER_LEN \
    (sizeof(struct io_uring_recvmsg_out) + DGRAM_NAME_SIZE + TAPIO__READ_SIZE)
#define DGRAM_BUFFER_STRIDE ((DGRAM_BUFFER_LEN + 4095) & ~(size_t)4095)

/* Buffers the loop provides to the kernel for one kind of receive. Set
 * up at the first such receive; registering may fail on an old kernel,
 * and the watchers then wait for readiness. */
typedef struct buffer_pool {
    struct io_uring_buf_ring *ring;
    char *buffers;
    enum { POOL_UNTRIED, POOL_READY, POOL_UNAVAILABLE } state;
    unsigned short group;
    unsigned count;
    unsigned first_bid; /* its buffer ids: first_bid .. first_bid+count-1 */
    size_t len;         /* what the kernel may fill of each */
    size_t stride;      /* from one buffer to the next (page multiples) */
} buffer_pool;

typedef struct ring_state {
    struct io_uring ring;
    uint32_t last_tag;
    bool single_issuer;  /* the ring takes submissions from `owner` only */
    /* a this_thread(); atomic, as a fork in another thread reads it */
    _Atomic uint64_t owner;
    tapio_loop *loop;
    tapio__list node;    /* in `rings` */
    unsigned child_forks;  /* forks_in_child when the ring was made */
    unsigned parent_forks; /* forks_in_parent when listeners were shared */
    unsigned epoch;        /* counts the rings this one replaced */
    bool shares_listeners; /* listeners are polled: a fork shares them */
    bool ring_open;        /* `ring` is set up (replacing it may fail) */
    bool single_receives;  /* the kernel refused a capped multishot one */
    buffer_pool recv, dgram;
    tapio__list sends; /* watchers with a send in flight */
    /* The message header every datagram request shares (the kernel reads
     * only its name and control sizes). */
    struct msghdr dgram_msg;
} ring_state;

/* A number for the calling thread, never reused (pthread_t values are,
 * once a thread has exited, and the kernel tells tasks apart). */
static uint64_t this_thread(void)
{
    static atomic_uint_fast64_t last;
    static _Thread_local uint64_t mine;
    if (TAPIO__UNLIKELY(!mine))
        mine = atomic_fetch_add(&last, 1) + 1;
    return mine;
}

static ring_state *state(tapio_loop *loop) { return loop->backend_data; }

/* ---- fork --------------------------------------------------------------- */

/* The forks this process went through as a parent (as a child: see
 * src/fork.c). */
static atomic_uint forks_in_parent;
/* Every ring of the process, whose listeners a fork is to share. */
static pthread_mutex_t rings_lock = PTHREAD_MUTEX_INITIALIZER;
static tapio__list rings = {&rings, &rings};
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

/* Whether the ring is the parent's, inherited by this child. */
static bool inherited(const ring_state *st)
{
    return st->child_forks != tapio__forks_in_child();
}

/* Whether the ring is set up and this process's to use. */
static bool ring_is_ours(const ring_state *st)
{
    return st->ring_open && !inherited(st);
}

/* Whether the calling thread may submit (another thread or a forked
 * child must replace the ring first, in ring_backend_wait). */
static bool may_submit(const ring_state *st)
{
    return ring_is_ours(st) &&
           (!st->single_issuer || st->owner == this_thread());
}

static int set_receiving(ring_state *st, tapio__io *io, bool on);

/* A listening socket that another process holds too is accepted from at
 * readiness from now on: the kernel gives each new connection to one
 * accept request, which would claim it for this process even while its
 * loop is busy, where a poll wakes every process and the first to accept
 * takes it. The accept requests are cancelled (their watchers are polled
 * when the cancel completes). */
static void share_listeners(ring_state *st)
{
    st->shares_listeners = true;
    st->parent_forks = atomic_load(&forks_in_parent);
    bool cancelled = false;
    for (size_t fd = 0; fd < st->loop->nfds; fd++) {
        tapio__io *io = st->loop->fds[fd];
        if (io && io->accepted && io->recv_tag && !io->recv_cancelling)
            cancelled |= set_receiving(st, io, false) == 0;
    }
    if (cancelled && may_submit(st))
        io_uring_submit_and_get_events(&st->ring);
}

/* Before a fork, the rings this thread runs stop accepting by request,
 * so that neither process holds an accept request the other's
 * connections would wait in. Rings of other threads (and rings any
 * thread may submit to) share their listeners at their next wait: only
 * a single-issuer ring's owner may touch it. */
static void before_fork(void)
{
    pthread_mutex_lock(&rings_lock);
    for (tapio__list *n = rings.next; n != &rings; n = n->next) {
        ring_state *st = tapio__container_of(n, ring_state, node);
        if (st->owner == this_thread() && st->single_issuer &&
            may_submit(st))
            share_listeners(st);
    }
}

static void after_fork_in_parent(void)
{
    atomic_fetch_add(&forks_in_parent, 1);
    pthread_mutex_unlock(&rings_lock);
}

static void after_fork_in_child(void)
{
    pthread_mutex_unlock(&rings_lock);
}

static void watch_forks(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

static void ring_list_add(ring_state *st)
{
    pthread_once(&fork_watch, watch_forks);
    pthread_mutex_lock(&rings_lock);
    tapio__list_push(&rings, &st->node);
    pthread_mutex_unlock(&rings_lock);
}

static void ring_list_remove(ring_state *st)
{
    pthread_mutex_lock(&rings_lock);
    tapio__list_remove(&st->node);
    pthread_mutex_unlock(&rings_lock);
}

/* Completions are posted only when the loop polls (DEFER_TASKRUN), not
 * at the end of every system call the loop makes: a send would otherwise
 * run the receives' work on its way out. That needs a single submitting
 * thread: the one that made the ring, until another runs the loop (see
 * move_to_this_thread). Kernels before 6.1 lack these flags: a loop
 * that asked for io_uring gets COOP_TASKRUN, which any thread may submit
 * to; one that did not (`deferred_only`) gets epoll instead. */
static int make_ring(ring_state *st, bool deferred_only)
{
    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                   IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    params.cq_entries = CQ_ENTRIES;
    int err = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &params);
    st->single_issuer = err != -EINVAL;
    st->owner = this_thread();
    if (err != -EINVAL || deferred_only)
        return err;
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                   IORING_SETUP_COOP_TASKRUN;
    params.cq_entries = CQ_ENTRIES;
    return io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &params);
}

/* A ring made now belongs to this process, whatever forks came before. */
static int setup_ring(ring_state *st, bool deferred_only)
{
    int err = make_ring(st, deferred_only);
    st->ring_open = err == 0;
    if (st->ring_open)
        st->child_forks = tapio__forks_in_child();
    return err;
}

static int ring_backend_init(tapio_loop *loop)
{
    ring_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->recv = (buffer_pool){.group = RECV_GROUP, .count = RECV_BUFFERS,
                             .len = RECV_BUFFER_SIZE,
                             .stride = RECV_BUFFER_SIZE};
    st->dgram = (buffer_pool){.group = DGRAM_GROUP, .count = DGRAM_BUFFERS,
                              .first_bid = DGRAM_BID_BASE,
                              .len = DGRAM_BUFFER_LEN,
                              .stride = DGRAM_BUFFER_STRIDE};
    st->dgram_msg.msg_namelen = DGRAM_NAME_SIZE;
    st->loop = loop;
    tapio__list_init(&st->sends);
    tapio__watch_forks();
    st->parent_forks = atomic_load(&forks_in_parent);
    int err = setup_ring(st, loop->backend_by_default);
    if (err < 0) {
        free(st);
        return err;
    }
    loop->backend_data = st;
    loop->backend_fd = st->ring.ring_fd;
    ring_list_add(st);
    return 0;
}

static void close_unclaimed(struct io_uring *ring);
static void pool_free(buffer_pool *p);
static void sends_cancelled(tapio_loop *loop, tapio__list *sends);

static void ring_backend_destroy(tapio_loop *loop)
{
    ring_state *st = state(loop);
    if (st) {
        ring_list_remove(st);
        if (ring_is_ours(st)) /* a parent's are its own */
            close_unclaimed(&st->ring);
        if (st->ring_open)
            io_uring_queue_exit(&st->ring);
        sends_cancelled(loop, &st->sends); /* the owners let go */
        pool_free(&st->recv);
        pool_free(&st->dgram);
        free(st);
    }
    loop->backend_data = NULL;
    loop->backend_fd = -1;
}

static uint32_t next_tag(ring_state *st)
{
    if (++st->last_tag >= ACCEPT_TAG)
        st->last_tag = 1;
    return st->last_tag;
}

static uint64_t request_id(int fd, uint32_t tag)
{
    return (uint64_t)(uint32_t)fd << 32 | tag;
}

/* A free submission slot; when the queue is full, what it holds goes to the
 * kernel first. NULL only if the kernel takes nothing. */
static struct io_uring_sqe *get_sqe(ring_state *st)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
    if (!sqe && may_submit(st) && io_uring_submit(&st->ring) >= 0)
        sqe = io_uring_get_sqe(&st->ring);
    return sqe;
}

static unsigned poll_mask(unsigned want)
{
    return ((want & TAPIO__READ) ? POLLIN : 0) |
           ((want & TAPIO__WRITE) ? POLLOUT : 0);
}

/* ---- receive buffers ---------------------------------------------------- */

static char *pool_buffer(const buffer_pool *p, unsigned bid)
{
    return p->buffers + (size_t)(bid - p->first_bid) * p->stride;
}

static bool pool_owns(const buffer_pool *p, unsigned bid)
{
    return bid - p->first_bid < p->count;
}

static void give_back(buffer_pool *p, unsigned bid)
{
    io_uring_buf_ring_add(p->ring, pool_buffer(p, bid), (unsigned)p->len,
                          (unsigned short)bid,
                          io_uring_buf_ring_mask(p->count), 0);
    io_uring_buf_ring_advance(p->ring, 1);
}

static void pool_free(buffer_pool *p)
{
    free(p->ring);
    free(p->buffers);
    p->ring = NULL;
    p->buffers = NULL;
    p->state = POOL_UNTRIED;
}

static bool pool_setup(struct io_uring *ring, buffer_pool *p)
{
    size_t ring_size = p->count * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&p->ring, 4096, ring_size)) {
        p->ring = NULL;
        return false;
    }
    /* Page-aligned, as the kernel copies into them fastest. */
    if (posix_memalign((void **)&p->buffers, 4096, p->count * p->stride)) {
        p->buffers = NULL;
        return false;
    }
    io_uring_buf_ring_init(p->ring);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)p->ring,
        .ring_entries = p->count,
        .bgid = p->group,
    };
    if (io_uring_register_buf_ring(ring, &reg, 0) < 0)
        return false;
    for (unsigned i = 0; i < p->count; i++)
        give_back(p, p->first_bid + i);
    return true;
}

/* Whether the pool's buffers can be received into (set up on first use). */
static bool pool_ready(struct io_uring *ring, buffer_pool *p)
{
    if (p->state == POOL_UNTRIED) {
        bool ok = pool_setup(ring, p);
        if (!ok)
            pool_free(p);
        p->state = ok ? POOL_READY : POOL_UNAVAILABLE;
    }
    return p->state == POOL_READY;
}

/* Whether READ interest is served by a receive or an accept (the receive
 * buffers are set up on first use). */
static bool completes_reads(ring_state *st, const tapio__io *io)
{
    if (io->by_readiness || io->recv_refused)
        return false;
    if (io->accepted)
        return !st->shares_listeners;
    return io->received && pool_ready(&st->ring, &st->recv);
}

/* Whether READ interest is served by receiving datagrams (the buffers set
 * up on first use). */
static bool receives_datagrams(ring_state *st, const tapio__io *io)
{
    return io->received_from && !io->recv_refused &&
           pool_ready(&st->ring, &st->dgram);
}

/* ---- requests ------------------------------------------------------------ */

static int cancel_request(ring_state *st, int fd, uint32_t tag)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, request_id(fd, tag), 0);
    io_uring_sqe_set_data64(sqe, NO_COMPLETION);
    return 0;
}

/* Make the watcher's poll request wait for `mask` (0: none). */
static int set_polling(ring_state *st, tapio__io *io, unsigned mask)
{
    if (io->poll_tag && io->polled == mask)
        return 0; /* that request is still waiting */
    if (io->poll_tag) {
        if (cancel_request(st, io->fd, io->poll_tag) < 0)
            return -EBUSY;
        io->poll_tag = 0;
    }
    if (!mask)
        return 0;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io->poll_tag = next_tag(st);
    io->polled = (unsigned char)mask;
    io_uring_prep_poll_add(sqe, io->fd, poll_mask(mask));
    io_uring_sqe_set_data64(sqe, request_id(io->fd, io->poll_tag));
    return 0;
}

static void prep_receive(ring_state *st, struct io_uring_sqe *sqe,
                         const tapio__io *io)
{
    if (st->single_receives) {
        io_uring_prep_recv(sqe, io->fd, NULL, RECV_BUFFER_SIZE, 0);
        /* Made again right after the last bytes were taken: the next
         * ones are rarely there yet, so wait before trying. */
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    } else {
        /* The length caps each wakeup's intake, and the total (optlen,
         * which file_index aliases in liburing 2.3's header) ends the
         * request once it has taken that much: it is made again with the
         * next batch, so that a connection takes no more per iteration
         * than a single receive would, plus one wakeup's worth. No
         * POLL_FIRST: a multishot receive that starts by polling misses
         * an EOF already queued behind the bytes on a Unix socket (Linux
         * 6.18). */
        io_uring_prep_recv_multishot(sqe, io->fd, NULL, RECV_BUFFER_SIZE, 0);
        sqe->file_index = MULTISHOT_TOTAL;
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RECV_GROUP;
}

/* Start or cancel the watcher's receive (or accept). One being cancelled
 * while wanted again is made anew when its completion comes (it requeues
 * the watcher). */
static int set_receiving(ring_state *st, tapio__io *io, bool on)
{
    if (on && !io->recv_tag) {
        struct io_uring_sqe *sqe = get_sqe(st);
        if (!sqe)
            return -EBUSY;
        io->recv_tag = next_tag(st);
        io->recv_cancelling = false;
        io->recv_taken = 0;
        if (io->accepted) {
            io->recv_tag |= ACCEPT_TAG;
            io_uring_prep_multishot_accept(sqe, io->fd, NULL, NULL,
                                           SOCK_NONBLOCK | SOCK_CLOEXEC);
        } else {
            prep_receive(st, sqe, io);
        }
        io_uring_sqe_set_data64(sqe, request_id(io->fd, io->recv_tag));
    } else if (!on && io->recv_tag && !io->recv_cancelling) {
        if (cancel_request(st, io->fd, io->recv_tag) < 0)
            return -EBUSY;
        io->recv_cancelling = true;
    }
    return 0;
}

/* Start or cancel the watcher's datagram request: one multishot request
 * takes datagram after datagram until it ends (see dgram_completed). */
static int set_receiving_datagrams(ring_state *st, tapio__io *io, bool on)
{
    if (!on || io->recv_tag)
        return set_receiving(st, io, on);
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io->recv_tag = next_tag(st);
    io->recv_cancelling = false;
    io_uring_prep_recvmsg_multishot(sqe, io->fd, &st->dgram_msg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = DGRAM_GROUP;
    io_uring_sqe_set_data64(sqe, request_id(io->fd, io->recv_tag));
    return 0;
}

/* ---- sends -------------------------------------------------------------- */

static uint64_t send_id(const tapio__io *io)
{
    return SEND_ID | (uint64_t)(uintptr_t)io;
}

static int ring_backend_send(tapio_loop *loop, tapio__io *io,
                             const void *data, size_t len)
{
    ring_state *st = state(loop);
    if (!may_submit(st) || !tapio__list_empty(&io->send_node))
        return -EAGAIN;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_send(sqe, io->fd, data, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, send_id(io));
    tapio__list_push(&st->sends, &io->send_node);
    return 0;
}

/* The owner lets go of the fd: a send still waiting for room is
 * cancelled at once (it holds the file, and the peer waits for the close).
 * Its result still comes to io->sent. */
static void ring_backend_cancel_send(tapio_loop *loop, tapio__io *io)
{
    ring_state *st = state(loop);
    if (tapio__list_empty(&io->send_node) || !may_submit(st))
        return;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, send_id(io), 0);
    io_uring_sqe_set_data64(sqe, NO_COMPLETION);
    io_uring_submit_and_get_events(&st->ring);
}

static void send_completed(tapio_loop *loop, uint64_t id, int res)
{
    tapio__io *io = (tapio__io *)(uintptr_t)(id & ~SEND_ID);
    tapio__list_remove(&io->send_node);
    tapio__list_init(&io->send_node);
    io->sent(loop, io, res);
}

static void ring_backend_push_sends(tapio_loop *loop)
{
    ring_state *st = state(loop);
    if (!may_submit(st) || io_uring_submit(&st->ring) < 0)
        return; /* they go with the next wait */
    struct io_uring_cqe *cqe;
    unsigned head;
    io_uring_for_each_cqe(&st->ring, head, cqe) {
        uint64_t id = io_uring_cqe_get_data64(cqe);
        if ((id & SEND_ID) && id != NO_COMPLETION) {
            /* Handed out here; the dispatch passes over it. */
            cqe->user_data = NO_COMPLETION;
            send_completed(loop, id, cqe->res);
        }
    }
}

/* The owners of sends that will not complete are told, each once. */
static void sends_cancelled(tapio_loop *loop, tapio__list *sends)
{
    while (!tapio__list_empty(sends))
        send_completed(loop,
                       send_id(tapio__container_of(sends->next, tapio__io,
                                                   send_node)),
                       -ECANCELED);
}

static void ring_backend_dispatch(tapio_loop *loop);

/* A new ring in place of the old one, which this process lets go of
 * (exiting it only unmaps it and closes its fd: in a forked child the
 * parent's goes on). Its requests are gone with it, so every watcher is
 * armed anew on the new one, by the loop's next batch of changes. */
static int replace_ring(tapio_loop *loop)
{
    ring_state *st = state(loop);
    if (st->ring_open)
        io_uring_queue_exit(&st->ring);
    st->ring_open = false;
    /* Sends the old ring had not completed sent nothing (a forked child's
     * parent may still send them from its ring: the child's loop sends
     * them again, as two loops holding the same buffered bytes would). */
    tapio__list unsent;
    tapio__list_init(&unsent);
    if (!tapio__list_empty(&st->sends)) {
        unsent = st->sends;
        unsent.next->prev = unsent.prev->next = &unsent;
        tapio__list_init(&st->sends);
    }
    pool_free(&st->recv);
    pool_free(&st->dgram);
    loop->backend_fd = -1;
    for (size_t fd = 0; fd < loop->nfds; fd++) {
        tapio__io *io = loop->fds[fd];
        if (io) {
            io->poll_tag = io->recv_tag = 0;
            io->recv_cancelling = false;
            io->registered = false;
        }
    }
    int err = setup_ring(st, loop->backend_by_default);
    if (err == 0) {
        st->epoch++;
        loop->backend_fd = st->ring.ring_fd;
        tapio__io_register_all_again(loop);
    }
    sends_cancelled(loop, &unsent);
    return err;
}

/* The ring this process may use: in a forked child, one of its own in
 * place of the parent's (whose listeners it shares); a ring that could
 * not be replaced before is tried again. */
static int own_ring(tapio_loop *loop)
{
    ring_state *st = state(loop);
    if (!TAPIO__UNLIKELY(!ring_is_ours(st)))
        return 0;
    if (inherited(st))
        st->shares_listeners = true;
    return replace_ring(loop);
}

/* The loop runs in another thread than before (asyncio allows it, one
 * thread at a time), and a single-issuer ring refuses that thread: a new
 * ring replaces it. What the old one completed is handed out first; what
 * it had not (its work runs only in its own thread's waits, so no bytes
 * were taken) is cancelled with it. */
static int move_to_this_thread(tapio_loop *loop)
{
    ring_backend_dispatch(loop);
    return replace_ring(loop);
}

static int ring_backend_modify(tapio_loop *loop, tapio__io *io, unsigned want)
{
    ring_state *st = state(loop);
    int own = own_ring(loop);
    if (own)
        return own;
    unsigned poll_want = want;
    if (receives_datagrams(st, io)) {
        poll_want &= ~TAPIO__READ;
        int err = set_receiving_datagrams(st, io, want & TAPIO__READ);
        if (err)
            return err;
    } else if (completes_reads(st, io)) {
        poll_want &= ~TAPIO__READ;
        int err = set_receiving(st, io, want & TAPIO__READ);
        if (err)
            return err;
    } else if (io->received && io->recv_tag) {
        /* Switched to readiness with a receive going on: it is cancelled
         * before the poll is made, so that what it took comes first. */
        int err = set_receiving(st, io, false);
        if (err)
            return err;
    }
    int err = set_polling(st, io, poll_want);
    if (!err)
        io->registered = true;
    return err;
}

/* The cancels go to the kernel at once, and their work is run (it is
 * deferred to waits otherwise): a request holds the file, and the owner
 * may be about to close the fd (a peer waits for its FIN, a listening
 * port is to be free again) with no further iteration to come. Other
 * completions this posts are handed out by the next dispatch. */
static void ring_backend_remove(tapio_loop *loop, tapio__io *io)
{
    ring_state *st = state(loop);
    if (own_ring(loop)) { /* no ring, so no request of the watcher's */
        io->registered = false;
        return;
    }
    bool cancelled = io->poll_tag || (io->recv_tag && !io->recv_cancelling);
    (void)set_polling(st, io, 0);
    (void)set_receiving(st, io, false);
    if (cancelled && may_submit(st))
        io_uring_submit_and_get_events(&st->ring);
    io->registered = false;
}

static int ring_backend_wait(tapio_loop *loop, int timeout_ms)
{
    ring_state *st = state(loop);
    struct io_uring *ring = &st->ring;
    struct io_uring_cqe *cqe;
    int ret;
    if (TAPIO__UNLIKELY(!may_submit(st))) {
        ret = ring_is_ours(st) ? move_to_this_thread(loop) : own_ring(loop);
        if (ret < 0)
            return ret;
        tapio__io_flush_changes(loop);
    }
    if (TAPIO__UNLIKELY(st->parent_forks != atomic_load(&forks_in_parent)))
        share_listeners(st);
    if (timeout_ms == 0) {
        /* Not waiting, but the deferred work must run: it posts what is
         * ready (a loop with callbacks always ready would starve its
         * I/O otherwise). */
        ret = io_uring_submit_and_get_events(ring);
    } else if (timeout_ms < 0) {
        ret = io_uring_submit_and_wait(ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = timeout_ms / 1000,
            .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
        };
        ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        if (ret == -ETIME)
            ret = 0;
    }
    return ret < 0 ? ret : 0;
}

static unsigned to_tapio_events(int res)
{
    if (res < 0)
        return TAPIO__ERROR;
    return ((res & POLLIN) ? TAPIO__READ : 0) |
           ((res & POLLOUT) ? TAPIO__WRITE : 0) |
           ((res & (POLLERR | POLLHUP)) ? TAPIO__ERROR : 0);
}

static tapio__io *watcher_of(tapio_loop *loop, uint64_t id)
{
    int fd = (int)(id >> 32);
    return (size_t)fd < loop->nfds ? loop->fds[fd] : NULL;
}

/* The watcher is to be brought in line with its interest again by the
 * loop's next batch of changes (a request ended), unless its owner
 * changes or drops it meanwhile. */
static void requeue(tapio_loop *loop, tapio__io *io)
{
    io->armed = 0;
    tapio__io_set(loop, io, io->want);
}

static void poll_completed(tapio_loop *loop, tapio__io *io, int res)
{
    io->poll_tag = 0;
    requeue(loop, io);
    tapio__io_deliver(loop, io, to_tapio_events(res));
}

/* A receive's completion: bytes, EOF (0) or an error; cancelled, or out
 * of buffers (the next one is made once buffers are back). A multishot
 * receive goes on after a completion flagged IORING_CQE_F_MORE. */
static void recv_completed(tapio_loop *loop, tapio__io *io,
                           const struct io_uring_cqe *cqe, const char *data)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        io->recv_tag = 0;
        io->recv_cancelling = false;
        requeue(loop, io);
    }
    if (cqe->res == -ENOBUFS || cqe->res == -ECANCELED)
        return;
    ring_state *st = state(loop);
    if (cqe->res == -EINVAL && !st->single_receives) {
        /* A kernel without the cap: single receives from now on. */
        st->single_receives = true;
        return;
    }
    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE) &&
        (io->recv_taken += (uint32_t)cqe->res) > MULTISHOT_MOST) {
        /* A kernel that took the length but not the total: the request
         * would go on taking what arrives. Single receives from now on,
         * this request's bytes handed out first. */
        st->single_receives = true;
        (void)set_receiving(st, io, false);
    }
    if (cqe->res == -ENOTCONN) {
        /* A socket that was never connected (a listening one, handed
         * over as a connection) fails a receive at once, where readiness
         * would never come: wait for it as the other backends do. */
        io->recv_refused = true;
        return;
    }
    io->received(loop, io, data, cqe->res);
}

/* An accept's completion: a connection, an error, or the end of the
 * request (cancelled, or failed: EMFILE, or EINVAL where multishot
 * accepts are not to be had, or the socket does not listen: polled from
 * then on, and accept4 reports it). */
static void accept_completed(tapio_loop *loop, tapio__io *io,
                             const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        io->recv_tag = 0;
        io->recv_cancelling = false;
        requeue(loop, io);
        if (cqe->res == -EINVAL)
            io->recv_refused = true;
        if (cqe->res == -ECANCELED || cqe->res == -EINVAL)
            return;
    }
    io->accepted(loop, io, cqe->res);
}

/* A completion no watcher waits for: an accepted connection in it would
 * otherwise stay open, owned by nobody. */
static void drop_completion(uint64_t id, const struct io_uring_cqe *cqe)
{
    if (!(id & SEND_ID) && ((uint32_t)id & ACCEPT_TAG) && cqe->res >= 0)
        close(cqe->res);
}

/* Closing the loop: what is left in the completion queue is never
 * handed out. */
static void close_unclaimed(struct io_uring *ring)
{
    struct io_uring_cqe *cqe;
    unsigned head;
    io_uring_for_each_cqe(ring, head, cqe)
        drop_completion(io_uring_cqe_get_data64(cqe), cqe);
}

/* ---- datagram completions ------------------------------------------------ */

/* Errors after which the socket is waited for by readiness: it cannot be
 * received from this way (not a socket, not a datagram one the kernel
 * serves so), where a read would still tell what it has to. */
static bool refuses_recvmsg(int err)
{
    return err == -ENOTCONN || err == -EINVAL || err == -EOPNOTSUPP ||
           err == -ENOTSOCK;
}

/* One datagram in `data` (the kernel's header, the sender's address, the
 * payload), an error, or the end of the request (no IORING_CQE_F_MORE:
 * out of buffers, cancelled, an error), which is made again with the next
 * batch while wanted. */
static void dgram_completed(tapio_loop *loop, tapio__io *io,
                            const struct io_uring_cqe *cqe, char *data)
{
    ring_state *st = state(loop);
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        io->recv_tag = 0;
        io->recv_cancelling = false;
        requeue(loop, io);
    }
    int res = cqe->res;
    if (res == -ENOBUFS || res == -ECANCELED || res == -EAGAIN ||
        res == -EINTR)
        return;
    if (refuses_recvmsg(res)) {
        io->recv_refused = true;
        return;
    }
    if (res < 0) {
        io->received_from(loop, io, NULL, res, NULL, 0);
        return;
    }
    struct io_uring_recvmsg_out *out =
        data ? io_uring_recvmsg_validate(data, res, &st->dgram_msg) : NULL;
    if (!out)
        return;
    socklen_t namelen = out->namelen < DGRAM_NAME_SIZE ? out->namelen
                                                       : DGRAM_NAME_SIZE;
    const char *payload = io_uring_recvmsg_payload(out, &st->dgram_msg);
    ssize_t len = io_uring_recvmsg_payload_length(out, res, &st->dgram_msg);
    io->received_from(loop, io, payload, len,
                      (const struct sockaddr *)io_uring_recvmsg_name(out),
                      namelen);
}

/* ---- dispatching ---------------------------------------------------------- */

static void completed(tapio_loop *loop, const struct io_uring_cqe *cqe)
{
    ring_state *st = state(loop);
    uint64_t id = io_uring_cqe_get_data64(cqe);
    if ((id & SEND_ID) && id != NO_COMPLETION) { /* no buffer in it */
        send_completed(loop, id, cqe->res);
        return;
    }
    char *data = NULL;
    unsigned bid = 0;
    buffer_pool *pool = NULL;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        pool = pool_owns(&st->dgram, bid) ? &st->dgram : &st->recv;
        data = pool_buffer(pool, bid);
    }
    tapio__io *io = id == NO_COMPLETION ? NULL : watcher_of(loop, id);
    uint32_t tag = (uint32_t)id;
    if (io && io->poll_tag == tag)
        poll_completed(loop, io, cqe->res);
    else if (io && io->recv_tag == tag && (tag & ACCEPT_TAG))
        accept_completed(loop, io, cqe);
    else if (io && io->recv_tag == tag && io->received_from)
        dgram_completed(loop, io, cqe, data);
    else if (io && io->recv_tag == tag)
        recv_completed(loop, io, cqe, data);
    else
        drop_completion(id, cqe);
    if (data)
        give_back(pool, bid);
}

static void ring_backend_dispatch(tapio_loop *loop)
{
    ring_state *st = state(loop);
    struct io_uring *ring = &st->ring;
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0, epoch = st->epoch;
    if (!ring_is_ours(st))
        return; /* the parent's, or none */
    io_uring_for_each_cqe(ring, head, cqe) {
        if (loop->interrupted)
            break; /* the rest is handed out by the next dispatch */
        seen++;
        completed(loop, cqe);
        /* A callback forked (this is the child: the rest are the
         * parent's) or the ring was replaced meanwhile. */
        if (TAPIO__UNLIKELY(inherited(st) || st->epoch != epoch))
            return;
    }
    io_uring_cq_advance(ring, seen);
}

static int ring_backend_received_error(tapio_loop *loop, const tapio__io *io)
{
    struct io_uring *ring = &state(loop)->ring;
    struct io_uring_cqe *cqe;
    unsigned head;
    if (!io->recv_tag || !ring_is_ours(state(loop)))
        return 0;
    uint64_t id = request_id(io->fd, io->recv_tag);
    io_uring_for_each_cqe(ring, head, cqe) {
        if (io_uring_cqe_get_data64(cqe) == id && cqe->res < 0 &&
            cqe->res != -ENOBUFS && cqe->res != -ECANCELED)
            return cqe->res;
    }
    return 0;
}

const tapio__backend tapio__backend_io_uring = {
    .name = "io_uring",
    .init = ring_backend_init,
    .destroy = ring_backend_destroy,
    .modify = ring_backend_modify,
    .remove = ring_backend_remove,
    .wait = ring_backend_wait,
    .dispatch = ring_backend_dispatch,
    .received_error = ring_backend_received_error,
    .send = ring_backend_send,
    .cancel_send = ring_backend_cancel_send,
    .push_sends = ring_backend_push_sends,
};
