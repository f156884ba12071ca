/*
 * uring_floor_echo: the plainest, fastest io_uring echo server we know how to
 * write. It is the floor of libtapio's io_uring backend (TAPIO_BACKEND=io_uring),
 * as floor_echo is of its epoll one.
 *
 * One thread, one ring, and nothing but completions:
 * - one multishot accept on the listening socket;
 * - per connection one multishot recv, the kernel taking each buffer from a
 *   ring of provided buffers, so no buffer sits with an idle connection;
 * - each received buffer echoed by an IORING_OP_SEND straight from it (no
 *   copy) and given back to the buffer ring when the send completes. A
 *   connection has one send in flight at a time, the rest of its buffers
 *   queued in order, so that its bytes cannot overtake one another;
 * - one io_uring_submit_and_wait per batch of completions: handing over the
 *   batch's new requests and waiting for the next completions cost one
 *   system call.
 * The ring is set up with IORING_SETUP_DEFER_TASKRUN (Linux 6.1) when the
 * kernel has it: completion work then runs only while we wait for it, in
 * one batch, rather than interrupting the loop.
 *
 * It trusts its peers as a benchmark floor may: a peer that sends without
 * reading makes its connection hold buffers until its sends complete, and
 * while the buffer ring is empty every connection waits for one to come back.
 *
 * Usage: uring_floor_echo PORT
 * Listens on 127.0.0.1:PORT, prints "ready" once listening, runs until
 * SIGTERM or SIGINT, then closes everything and exits 0. Prints "unavailable"
 * (and the reason on stderr) and exits 0 if the kernel refuses io_uring or
 * provided-buffer rings, as a Python loop that cannot be imported does.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <poll.h>
#include <string.h>

#include "bench_listen.h"

#define RING_ENTRIES 1024
#define CQ_ENTRIES 8192
#define BUF_SIZE (64 * 1024) /* one recv: a whole 64 KiB message, as a rule */
/* A power of two, as the buffer ring's size must be: 2.5 buffers for each of
 * the benchmark's 100 connections, and no more, since the ring hands them out
 * in turn and each one handed out is written to (16 MiB in rotation at 64 KiB
 * messages; the epoll floor reuses one 256 KiB buffer). */
#define BUF_COUNT 256
#define BUF_GROUP 0
#define NO_BUF (-1)

/* What a completion is for: in user_data's low bits, under a connection's
 * address (or none) in the others. */
enum op { OP_ACCEPT, OP_SIGNAL, OP_RECV, OP_SEND, OP_MASK = 3 };

struct conn {
    int fd;
    int recv_armed;  /* a multishot recv is outstanding */
    int send_busy;   /* a send is outstanding (of the head buffer) */
    int read_done;   /* the peer's EOF or a receive error: no more recv */
    int failed;      /* a send failed: nothing more is echoed */
    int starved;     /* on the starved list: its recv ended with ENOBUFS */
    int head, tail;  /* received buffers not yet echoed, in order (NO_BUF: none) */
    size_t sent;     /* bytes of the head buffer already sent */
    struct conn *prev, *next;   /* open connections, for shutdown */
    struct conn *next_starved;
};

static struct io_uring ring;
static int listen_fd, signal_fd, stopping;
static struct conn conns = {.prev = &conns, .next = &conns};
static struct conn *starved;

/* The provided buffers: bufs holds BUF_COUNT buffers of BUF_SIZE bytes. A
 * buffer the kernel filled is out of the ring until its echo is sent; meanwhile
 * buf_len[] and buf_next[] keep it on its connection's queue. */
static struct io_uring_buf_ring *buf_ring;
static char *bufs;
static unsigned buf_len[BUF_COUNT];
static int buf_next[BUF_COUNT];
static int bufs_in_ring;   /* buffers the kernel may pick from */
static int bufs_returned;  /* added back since the ring's tail last advanced */

static void die_rc(const char *what, int rc)
{
    errno = -rc;
    die(what);
}

/* Says "unavailable" (why on stderr) and exits 0: this kernel cannot run us. */
static void unavailable(const char *what, int rc)
{
    fprintf(stderr, "uring_floor_echo: %s: %s\n", what, strerror(-rc));
    printf("unavailable\n");
    exit(0);
}

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

    if (!sqe) { /* the submission queue is full: hand it over, then go on */
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
        if (!sqe)
            die_rc("io_uring_get_sqe", -EBUSY);
    }
    return sqe;
}

static void set_op(struct io_uring_sqe *sqe, struct conn *c, enum op op)
{
    io_uring_sqe_set_data64(sqe, (uintptr_t)c | op);
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    set_op(sqe, NULL, OP_ACCEPT);
}

static void arm_signal(void)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_poll_add(sqe, signal_fd, POLLIN);
    set_op(sqe, NULL, OP_SIGNAL);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    set_op(sqe, c, OP_RECV);
    c->recv_armed = 1;
}

/* Sends what is left of c's head buffer. MSG_WAITALL makes the kernel itself
 * carry on after a partial send of a stream socket; a short completion is
 * still handled (on_send). */
static void send_head(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    int bid = c->head;

    io_uring_prep_send(sqe, c->fd, bufs + (size_t)bid * BUF_SIZE + c->sent,
                       buf_len[bid] - c->sent, MSG_NOSIGNAL | MSG_WAITALL);
    set_op(sqe, c, OP_SEND);
    c->send_busy = 1;
}

/* Puts buffer bid back in the ring; the kernel sees it once the batch's
 * returns are published (publish_buffers). */
static void return_buffer(int bid)
{
    io_uring_buf_ring_add(buf_ring, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT), bufs_returned++);
}

static void publish_buffers(void)
{
    io_uring_buf_ring_advance(buf_ring, bufs_returned);
    bufs_in_ring += bufs_returned;
    bufs_returned = 0;
}

static void setup_buffers(void)
{
    struct io_uring_buf_reg reg = {.ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    int rc;

    if (posix_memalign((void **)&buf_ring, (size_t)sysconf(_SC_PAGESIZE),
                       BUF_COUNT * sizeof(struct io_uring_buf)))
        die("posix_memalign");
    /* Page-aligned: recv's copy into buffers starting 16 bytes past a page
     * (as malloc's are) made the 64 KiB echo cost 1.7x the CPU. */
    if (posix_memalign((void **)&bufs, (size_t)sysconf(_SC_PAGESIZE),
                       (size_t)BUF_COUNT * BUF_SIZE))
        die("posix_memalign");
    io_uring_buf_ring_init(buf_ring);
    reg.ring_addr = (uintptr_t)buf_ring;
    rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0)
        unavailable("io_uring_register_buf_ring", rc);
    for (int bid = 0; bid < BUF_COUNT; bid++)
        return_buffer(bid);
    publish_buffers();
}

/* DEFER_TASKRUN (with SINGLE_ISSUER, which it needs) where the kernel has
 * them, else COOP_TASKRUN, else a plain ring. */
static void setup_ring(void)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;

    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && rc == -EINVAL; i++) {
        struct io_uring_params p = {
            .flags = tries[i] | IORING_SETUP_CQSIZE,
            .cq_entries = CQ_ENTRIES,
        };

        rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    }
    if (rc < 0)
        unavailable("io_uring_queue_init_params", rc);
}

static void conn_open(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        die("calloc");
    floor_nodelay(fd);
    c->fd = fd;
    c->head = c->tail = NO_BUF;
    c->next = conns.next;
    c->prev = &conns;
    conns.next->prev = c;
    conns.next = c;
    arm_recv(c);
}

static void conn_free(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd);
    free(c);
}

/* Frees c once it is finished and nothing of it is outstanding any more. */
static void conn_maybe_free(struct conn *c)
{
    if ((c->read_done || c->failed) && !c->recv_armed && !c->send_busy &&
        !c->starved && c->head == NO_BUF)
        conn_free(c);
}

/* A send failed: the queued echo goes back to the ring and, if a recv is
 * still armed, shutdown() ends it (closing the fd would not: the ring holds
 * its own reference to the socket). */
static void conn_fail(struct conn *c)
{
    c->failed = 1;
    while (c->head != NO_BUF) {
        int bid = c->head;

        c->head = buf_next[bid];
        return_buffer(bid);
    }
    c->tail = NO_BUF;
    c->sent = 0;
    if (c->recv_armed)
        shutdown(c->fd, SHUT_RDWR);
}

static void queue_buffer(struct conn *c, int bid, unsigned len)
{
    buf_len[bid] = len;
    buf_next[bid] = NO_BUF;
    if (c->tail == NO_BUF)
        c->head = bid;
    else
        buf_next[c->tail] = bid;
    c->tail = bid;
    if (!c->send_busy)
        send_head(c);
}

/* The multishot recv ended: re-armed at once, or when buffers are back in
 * the ring (ENOBUFS), or never (EOF, error). */
static void recv_ended(struct conn *c, int res)
{
    c->recv_armed = 0;
    if (c->failed)
        return;
    if (res == -ENOBUFS) {
        c->starved = 1;
        c->next_starved = starved;
        starved = c;
    } else if (res > 0) {
        arm_recv(c);
    } else if (res == -EINVAL) {
        die_rc("multishot recv (Linux 6.0 or later)", res);
    } else {
        c->read_done = 1;
    }
}

static void on_recv(struct conn *c, const struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

        bufs_in_ring--;
        if (cqe->res > 0 && !c->failed)
            queue_buffer(c, bid, (unsigned)cqe->res);
        else
            return_buffer(bid);
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        recv_ended(c, cqe->res);
}

static void on_send(struct conn *c, int res)
{
    int bid = c->head;

    c->send_busy = 0;
    if (res <= 0) { /* 0: nothing taken from a non-empty send, so no progress either */
        conn_fail(c);
        return;
    }
    c->sent += (size_t)res;
    if (c->sent < buf_len[bid]) {
        send_head(c);
        return;
    }
    c->head = buf_next[bid];
    if (c->head == NO_BUF)
        c->tail = NO_BUF;
    c->sent = 0;
    return_buffer(bid);
    if (c->head != NO_BUF)
        send_head(c);
}

static void on_cqe(const struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    struct conn *c = (struct conn *)(uintptr_t)(data & ~(uint64_t)OP_MASK);

    switch ((enum op)(data & OP_MASK)) {
    case OP_ACCEPT:
        if (cqe->res >= 0)
            conn_open(cqe->res);
        else if (cqe->res == -EINVAL)
            die_rc("multishot accept (Linux 5.19 or later)", cqe->res);
        if (!(cqe->flags & IORING_CQE_F_MORE))
            arm_accept();
        return; /* other errors (ECONNABORTED, EMFILE): that connection only */
    case OP_SIGNAL:
        stopping = 1;
        return;
    case OP_RECV:
        on_recv(c, cqe);
        break;
    case OP_SEND:
        on_send(c, cqe->res);
        break;
    }
    conn_maybe_free(c);
}

/* Once buffers are back in the ring, the connections that ran out of them
 * receive again. */
static void feed_starved(void)
{
    struct conn *list = starved;

    if (!bufs_in_ring)
        return;
    starved = NULL;
    while (list) {
        struct conn *c = list;

        list = c->next_starved;
        c->starved = 0;
        if (c->failed)
            conn_maybe_free(c);
        else
            arm_recv(c);
    }
}

static void run(void)
{
    while (!stopping) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int rc = io_uring_submit_and_wait(&ring, 1);

        if (rc < 0 && rc != -EINTR)
            die_rc("io_uring_submit_and_wait", rc);
        io_uring_for_each_cqe(&ring, head, cqe) {
            on_cqe(cqe);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
        publish_buffers();
        feed_starved();
    }
}

int main(int argc, char **argv)
{
    int port = floor_port(argc, argv, 1, "PORT");

    signal_fd = floor_signal_fd();
    setup_ring();
    setup_buffers();
    listen_fd = floor_listen_socket(port);
    arm_signal();
    arm_accept();
    floor_ready();
    run();
    /* Closing the ring cancels what is outstanding; then nothing refers to
     * a connection or a buffer any more. */
    io_uring_queue_exit(&ring);
    while (conns.next != &conns)
        conn_free(conns.next);
    close(listen_fd);
    close(signal_fd);
    free(bufs);
    free(buf_ring);
    return 0;
}
