/* Stream transports: the core every kind shares (lifetime, connection_made
 * and connection_lost, the tapio_transport_* calls dispatched through the
 * kind's ops table) and the kinds over an fd: TCP and Unix sockets, read
 * and write pipes (reading into the protocol, the write buffer with flow
 * control, sendfile, close/abort/write_eof). Mirrors asyncio's
 * _SelectorSocketTransport and unix_events' pipe transports. The TLS face
 * is the third kind, in tls.c. */
#include "internal.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the kinds over an fd ----------------------------------------------- */

/* A socket or pipe transport: the common part first. */
typedef struct fd_transport {
    tapio_transport base;
    tapio__io io;

    char *wbuf;          /* pending bytes are wbuf[wstart, wend) */
    size_t wstart, wend, wcap;
    /* A completion-based backend sends wbuf[wstart, wstart + ring_sending)
     * (the transport holds a reference meanwhile): those bytes stay put,
     * in `pinned` if the buffer was replaced or let go since. */
    size_t ring_sending;
    char *pinned;
    /* In loop->write_flushes: the buffer holds what callbacks wrote this
     * iteration, to send when they are done (else it is empty or waits
     * for the fd to be writable). */
    tapio__list flush_node;

    struct { /* a sendfile(2) in progress, after the buffered bytes */
        bool active;     /* until it ends (its callback is queued then) */
        int fd;          /* our duplicate of the file's fd */
        off_t offset;
        size_t remaining, sent;
        tapio_sendfile_callback cb;
        void *arg;
    } sf;

    /* Bytes a completion-based backend received while reading was
     * stopped (it had them before its receive was cancelled), with the
     * EOF or error that followed them; handed over when reading resumes. */
    struct {
        char *data;
        size_t len, cap;
        bool ended;      /* `end` follows the bytes */
        int end;         /* 0: EOF, else -errno */
        bool scheduled;  /* a handover is queued */
    } held;
    /* A bulk transfer arrives (a receive filled its buffer): read by
     * readiness into the loop's own buffer, as epoll does, until reads
     * come back small. The completion backend's buffers cycle through the
     * cache; the loop's one buffer stays in it. */
    bool bulk;
    unsigned char small_reads; /* in a row, in a bulk transfer */
    /* The loop iteration whose dispatch last handed bytes over. */
    unsigned data_iteration;

    tapio__addresses addr;
} fd_transport;

/* A read pipe, which may be read through a socket pair. */
typedef struct read_pipe {
    fd_transport fd;
    int relay[2];        /* the socket pair read ([0]) and spliced into
                            ([1]); else -1 */
} read_pipe;

/* What the fd kinds do differently, beside the calls of the ops table. */
typedef struct fd_ops {
    tapio__transport_ops ops; /* first: t->ops points here */
    /* Write iov to the fd (once, EINTR retried). */
    ssize_t (*send)(fd_transport *f, const struct iovec *iov, int iovcnt);
    /* Read into buf (-1 with errno, 0 at EOF). */
    ssize_t (*read)(fd_transport *f, char *buf, size_t len);
    /* The fd is readable and reading is wanted. */
    void (*readable)(fd_transport *f);
    /* read() returned 0. */
    void (*eof)(fd_transport *f);
} fd_ops;

static fd_transport *fdt(tapio_transport *t) { return (fd_transport *)t; }
static const fd_transport *cfdt(const tapio_transport *t)
{
    return (const fd_transport *)t;
}
static const fd_ops *kind_ops(const fd_transport *f)
{
    return (const fd_ops *)f->base.ops;
}

/* ---- lifetime -------------------------------------------------------- */

static bool is_closing(const tapio_transport *t)
{
    return tapio__transport_closing(t);
}

static bool released(const tapio_transport *t)
{
    return tapio__transport_released(t);
}

void tapio_transport_ref(tapio_transport *t) { t->refs++; }

void tapio_transport_unref(tapio_transport *t)
{
    if (--t->refs == 0)
        t->ops->free(t);
}

/* Release the kind's resources and every tie to the loop; the memory stays
 * while references remain. `from_loop` says a loop callback
 * (connection_lost's) is running, so the server's on_closed may run now, as
 * asyncio wakes wait_closed() from the last connection's connection_lost;
 * under a TLS layer it waits for the layer's connection_lost, queued
 * meanwhile. */
static void transport_release(tapio_transport *t, bool from_loop)
{
    bool layered = tapio__tls_is_raw(t);
    t->ops->release(t);
    t->flags |= TAPIO__T_RELEASED;
    t->life = TAPIO__CLOSED;
    tapio__list_remove(&t->node);
    tapio_server *server = t->server;
    t->server = NULL;
    if (server)
        tapio__server_connection_gone(server, from_loop && !layered);
}

static void call_connection_lost(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_transport *t = arg;
    if (t->proto && t->proto->connection_lost)
        t->proto->connection_lost(t, t->lost_error, t->user);
    transport_release(t, true);
    tapio_transport_unref(t);
}

static void schedule_connection_lost(tapio_transport *t, int err)
{
    t->life = TAPIO__CLOSED;
    t->lost_error = err;
    if (!tapio_call_soon(t->loop, call_connection_lost, t)) {
        /* Out of memory: still run it exactly once, right away. */
        tapio__report_error(t->loop, "scheduling connection_lost", -ENOMEM);
        call_connection_lost(t->loop, t);
    }
}

void tapio__transports_destroy_all(tapio_loop *loop)
{
    while (!tapio__list_empty(&loop->transports)) {
        tapio_transport *t =
            tapio__container_of(loop->transports.next, tapio_transport, node);
        /* Servers go after transports, so the server link is dropped here
         * without touching it. */
        t->server = NULL;
        transport_release(t, false);
        tapio_transport_unref(t);
    }
}

void tapio__transport_lost(tapio_transport *t, int err)
{
    if (t->life != TAPIO__CLOSED)
        schedule_connection_lost(t, err);
}

void tapio__transport_drop(tapio_transport *t)
{
    if (released(t))
        return;
    transport_release(t, false);
    tapio_transport_unref(t);
}

bool tapio__transport_started(const tapio_transport *t)
{
    return t->life != TAPIO__CONNECTING;
}

void tapio__transport_init(tapio_transport *t, tapio_loop *loop,
                           const tapio__transport_ops *ops,
                           enum tapio__stream_kind kind,
                           const tapio_protocol *proto, void *user,
                           size_t default_high, tapio__addresses *addr)
{
    t->ops = ops;
    t->addr = addr;
    tapio__list_init(&t->node);
    t->loop = loop;
    t->kind = kind;
    t->proto = proto;
    t->user = user;
    t->refs = 1;
    /* asyncio's SSL transports pause at high, the others over it. */
    tapio__flow_init(&t->flow, default_high, kind == TAPIO__TLS);
}

/* ---- reading ---------------------------------------------------------- */

static size_t buffered(const fd_transport *f) { return f->wend - f->wstart; }

static bool flush_queued(const fd_transport *f)
{
    return !tapio__list_empty(&f->flush_node);
}

static void schedule_handover(fd_transport *f);

/* A protocol that lends its buffer is read into directly (no copy out of
 * the backend's buffers), and a bulk transfer into the loop's buffer: the
 * socket waits for readiness. */
static void choose_read_mode(fd_transport *f)
{
    const tapio_protocol *proto = f->base.proto;
    bool by_readiness = f->bulk || (proto && proto->get_buffer);
    if (!f->io.received || by_readiness == f->io.by_readiness)
        return;
    f->io.by_readiness = by_readiness;
    f->io.armed = 0; /* re-applied in the new mode */
    tapio__io_set(f->base.loop, &f->io, f->io.want);
}

static void update_interest(fd_transport *f)
{
    unsigned want = 0;
    if (!f->base.read_stop && !is_closing(&f->base)) {
        want |= TAPIO__READ;
        if (TAPIO__UNLIKELY(f->held.len || f->held.ended))
            schedule_handover(f);
        choose_read_mode(f);
    }
    if ((f->wend > f->wstart && !flush_queued(f) && !f->ring_sending) ||
        f->sf.active)
        want |= TAPIO__WRITE;
    if (want != f->io.want)
        tapio__io_set(f->base.loop, &f->io, want);
}

static void sendfile_finish(fd_transport *f, int err);

static void force_close(fd_transport *f, int err)
{
    tapio_transport *t = &f->base;
    if (t->life == TAPIO__CLOSED)
        return;
    if (flush_queued(f)) { /* what asyncio would have sent at write() */
        tapio__list_remove(&f->flush_node);
        struct iovec iov = {f->wbuf + f->wstart + f->ring_sending,
                            buffered(f) - f->ring_sending};
        (void)kind_ops(f)->send(f, &iov, 1);
    }
    f->wstart = f->wend = 0;
    tapio__transport_set_closing(t);
    if (f->sf.active) /* its report comes before the loss */
        sendfile_finish(f, err ? err : -ECANCELED);
    update_interest(f);
    schedule_connection_lost(t, err);
}

/* asyncio's _fatal_error: OS errors are normal connection endings and
 * reach only connection_lost; anything else is reported as well. */
static void fatal_error(fd_transport *f, int err, const char *message)
{
    if (message)
        tapio__report_error(f->base.loop, message, err);
    force_close(f, err);
}

/* A socket's EOF: the protocol may keep the transport open (half-closed). */
static void socket_eof(fd_transport *f)
{
    tapio_transport *t = &f->base;
    bool keep_open = t->proto && t->proto->eof_received &&
                     t->proto->eof_received(t, t->user);
    if (keep_open) {
        t->read_stop |= READ_STOPPED_EOF;
        update_interest(f);
    } else {
        tapio_transport_close(t);
    }
}

/* A pipe's EOF ends it, whatever the protocol answers (asyncio's too). */
static void read_pipe_eof(fd_transport *f)
{
    tapio_transport *t = &f->base;
    if (t->proto && t->proto->eof_received)
        t->proto->eof_received(t, t->user);
    tapio_transport_close(t);
}

static ssize_t fd_read(fd_transport *f, char *buf, size_t len)
{
    return read(f->io.fd, buf, len);
}

/* A relayed pipe: splice moves what the pipe holds into the socket pair
 * (page references: the pipe's lock is held only briefly, so the writer
 * goes on writing), then the copy out is read from the socket. At most
 * `len` bytes are moved, so the read takes them all and the socket is
 * empty again. */
static ssize_t read_pipe_read(fd_transport *f, char *buf, size_t len)
{
    const read_pipe *p = (const read_pipe *)f;
    if (p->relay[0] < 0)
        return fd_read(f, buf, len);
    ssize_t moved = splice(f->io.fd, NULL, p->relay[1], NULL, len,
                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (moved <= 0)
        return moved;
    ssize_t n;
    do
        n = read(p->relay[0], buf, len);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Reads smaller than BULK_SMALL, BULK_END of them in a row, end a bulk
 * transfer (one alone is the tail of a message). */
#define BULK_SMALL (16 * 1024)
#define BULK_END 4

static void count_bulk_read(fd_transport *f, ssize_t n)
{
    if (n >= BULK_SMALL) {
        f->small_reads = 0;
    } else if (n > 0 && ++f->small_reads == BULK_END) {
        f->bulk = false;
        f->small_reads = 0;
        choose_read_mode(f);
    }
}

static void read_into_protocol(fd_transport *f)
{
    tapio_transport *t = &f->base;
    const tapio_protocol *proto = t->proto;
    char *buf = t->loop->read_buf;
    size_t cap = TAPIO__READ_SIZE;
    if (proto && proto->get_buffer) {
        buf = proto->get_buffer(t, 0, &cap, t->user);
        if (!buf || cap == 0) { /* read nothing; failed already, or now */
            if (!is_closing(t))
                fatal_error(f, TAPIO_EPROTOCOL,
                            "get_buffer() returned an empty buffer");
            return;
        }
    }
    /* Sockets and plain pipes read(2) directly (inlined), relays splice. */
    ssize_t n = kind_ops(f)->read == fd_read ? read(f->io.fd, buf, cap)
                                             : kind_ops(f)->read(f, buf, cap);
    if (TAPIO__UNLIKELY(f->bulk))
        count_bulk_read(f, n);
    if (n > 0) {
        if (proto && proto->get_buffer) {
            if (proto->buffer_updated)
                proto->buffer_updated(t, (size_t)n, t->user);
        }
        else if (proto && proto->data_received)
            proto->data_received(t, buf, (size_t)n, t->user);
    } else if (n == 0) {
        kind_ops(f)->eof(f);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fatal_error(f, -errno, NULL);
    }
}

/* ---- reading by completion (io_uring) ----------------------------------- */

/* Bytes for a protocol that lends its buffer: copied in, as much as each
 * buffer takes; what is left when the protocol stops reading is held. */
static void hold(fd_transport *f, const char *data, ssize_t n);
static void take_received(fd_transport *f, const char *data, ssize_t n);

static void lend_copy(fd_transport *f, const char *data, size_t len)
{
    tapio_transport *t = &f->base;
    while (len && !is_closing(t)) {
        if (t->read_stop) {
            hold(f, data, (ssize_t)len);
            return;
        }
        if (!t->proto || !t->proto->get_buffer) { /* switched meanwhile */
            take_received(f, data, (ssize_t)len);
            return;
        }
        size_t cap = len;
        char *buf = t->proto->get_buffer(t, len, &cap, t->user);
        if (!buf || cap == 0) {
            if (!is_closing(t))
                fatal_error(f, TAPIO_EPROTOCOL,
                            "get_buffer() returned an empty buffer");
            return;
        }
        size_t n = cap < len ? cap : len;
        memcpy(buf, data, n);
        if (t->proto->buffer_updated)
            t->proto->buffer_updated(t, n, t->user);
        data += n;
        len -= n;
    }
}

/* What was received goes to the protocol as a read's result would. */
static void take_received(fd_transport *f, const char *data, ssize_t n)
{
    tapio_transport *t = &f->base;
    const tapio_protocol *proto = t->proto;
    if (n > 0) {
        if (proto && proto->get_buffer)
            lend_copy(f, data, (size_t)n);
        else if (proto && proto->data_received)
            proto->data_received(t, data, (size_t)n, t->user);
    } else if (n == 0) {
        kind_ops(f)->eof(f);
    } else if (n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR) {
        fatal_error(f, (int)n, NULL);
    }
}

static void hold(fd_transport *f, const char *data, ssize_t n)
{
    if (f->held.ended)
        return; /* nothing comes after the end */
    if (n <= 0) {
        f->held.ended = true;
        f->held.end = (int)n;
        return;
    }
    size_t need = f->held.len + (size_t)n;
    if (need > f->held.cap) {
        size_t cap = f->held.cap ? f->held.cap : 16 * 1024;
        while (cap < need)
            cap *= 2;
        char *grown = realloc(f->held.data, cap);
        if (!grown) {
            fatal_error(f, -ENOMEM, "holding received data");
            return;
        }
        f->held.data = grown;
        f->held.cap = cap;
    }
    memcpy(f->held.data + f->held.len, data, (size_t)n);
    f->held.len = need;
}

static void held_free(fd_transport *f)
{
    free(f->held.data);
    memset(&f->held, 0, sizeof(f->held));
}

/* Reading resumed: the held bytes, then their end, as the next reads. */
static void hand_over(tapio_loop *loop, void *arg)
{
    (void)loop;
    fd_transport *f = arg;
    tapio_transport *t = &f->base;
    f->held.scheduled = false;
    if (!released(t) && !is_closing(t) && !t->read_stop) {
        char *data = f->held.data;
        size_t len = f->held.len;
        bool ended = f->held.ended;
        int end = f->held.end;
        memset(&f->held, 0, sizeof(f->held)); /* taking may hold again */
        if (len)
            take_received(f, data, (ssize_t)len);
        free(data);
        if (ended && !is_closing(t)) {
            if (t->read_stop)
                hold(f, NULL, end);
            else
                take_received(f, NULL, end);
        }
    }
    tapio_transport_unref(t);
}

static void schedule_handover(fd_transport *f)
{
    if (f->held.scheduled)
        return;
    tapio_transport_ref(&f->base);
    if (!tapio_call_soon(f->base.loop, hand_over, f)) {
        tapio_transport_unref(&f->base);
        fatal_error(f, -ENOMEM, "scheduling received data");
        return;
    }
    f->held.scheduled = true;
}

/* A socket's bytes, EOF or error from a completion-based backend. They
 * may come after a pause (received before the cancel reached the
 * kernel), or after held ones: those wait for reading to resume, in
 * order. After a close, nothing more is read, as with read(2). */
static void socket_received(tapio_loop *loop, tapio__io *io,
                            const char *data, ssize_t n)
{
    fd_transport *f = tapio__container_of(io, fd_transport, io);
    tapio_transport *t = &f->base;
    if (is_closing(t))
        return;
    if (t->read_stop || f->held.len || f->held.ended) {
        hold(f, data, n);
        return;
    }
    if (n <= 0 && f->data_iteration == loop->iterations) {
        /* An end behind bytes of the same dispatch (a multishot receive
         * completes both at once) comes an iteration later, as a read
         * finds it after the callbacks the bytes woke: asyncio's order. */
        hold(f, NULL, n);
        schedule_handover(f);
        return;
    }
    if (n > 0)
        f->data_iteration = loop->iterations;
    take_received(f, data, n);
    /* A full buffer: more is likely waiting, and more after it. One read
     * takes up to what epoll's loop would have read, and the transfer
     * goes on by readiness (see `bulk`). A receive that goes on is
     * cancelled first: what it took comes before anything read. */
    if (n == TAPIO__RECV_BUFFER_SIZE && !t->read_stop && !is_closing(t)) {
        f->bulk = true;
        choose_read_mode(f);
        if (!tapio__io_receiving(&f->io))
            read_into_protocol(f);
    }
}

/* A write pipe reads only to learn that its reader went away. */
static void reader_gone(fd_transport *f)
{
    force_close(f, buffered(f) ? -EPIPE : 0);
}

/* ---- writing ---------------------------------------------------------- */

static void maybe_pause_protocol(fd_transport *f)
{
    tapio_transport *t = &f->base;
    if (!tapio__flow_pause(&t->flow, buffered(f)))
        return;
    if (t->proto && t->proto->pause_writing)
        t->proto->pause_writing(t, t->user);
}

static void maybe_resume_protocol(fd_transport *f)
{
    tapio_transport *t = &f->base;
    if (!tapio__flow_resume(&t->flow, buffered(f)))
        return;
    if (t->proto && t->proto->resume_writing)
        t->proto->resume_writing(t, t->user);
}

/* A write buffer let go: kept while a send from it is in flight. */
static void pin_or_free(fd_transport *f, char *wbuf)
{
    if (f->ring_sending && !f->pinned)
        f->pinned = wbuf;
    else
        free(wbuf);
}

static int reserve(fd_transport *f, size_t extra)
{
    size_t len = buffered(f);
    if (f->wcap - f->wend >= extra)
        return 0;
    if (f->wstart && f->wcap - len >= extra && !f->ring_sending) {
        /* compact instead of grow */
        memmove(f->wbuf, f->wbuf + f->wstart, len);
        f->wstart = 0;
        f->wend = len;
        return 0;
    }
    size_t cap = f->wcap ? f->wcap : 16 * 1024;
    while (cap - len < extra)
        cap *= 2;
    char *wbuf = malloc(cap);
    if (!wbuf)
        return -ENOMEM;
    if (len)
        memcpy(wbuf, f->wbuf + f->wstart, len);
    pin_or_free(f, f->wbuf);
    f->wbuf = wbuf;
    f->wcap = cap;
    f->wstart = 0;
    f->wend = len;
    return 0;
}

static int append_iov(fd_transport *f, const struct iovec *iov, int iovcnt,
                      size_t skip)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int err = reserve(f, total - skip);
    if (err)
        return err;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(f->wbuf + f->wend, (const char *)iov[i].iov_base + skip,
               len - skip);
        f->wend += len - skip;
        skip = 0;
    }
    return 0;
}

/* Sockets: MSG_NOSIGNAL makes a vanished peer an EPIPE error, not a
 * SIGPIPE, and a single buffer takes send(), cheaper in the kernel than
 * sendmsg(). */
static ssize_t socket_send(fd_transport *f, const struct iovec *iov,
                           int iovcnt)
{
    int fd = f->io.fd;
    ssize_t n;
    if (iovcnt == 1) {
        do
            n = send(fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n;
    }
    struct msghdr msg = {0};
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Pipes take write()/writev(). */
static ssize_t pipe_send(fd_transport *f, const struct iovec *iov, int iovcnt)
{
    int fd = f->io.fd;
    ssize_t n;
    do
        n = iovcnt == 1 ? write(fd, iov->iov_base, iov->iov_len)
                        : writev(fd, iov, iovcnt);
    while (n < 0 && errno == EINTR);
    return n;
}

/* The kind's send; a socket's is called directly, so that it is inlined
 * on the path every write takes. */
static inline ssize_t send_iov(fd_transport *f, const struct iovec *iov,
                               int iovcnt)
{
    if (kind_ops(f)->send == socket_send)
        return socket_send(f, iov, iovcnt);
    return kind_ops(f)->send(f, iov, iovcnt);
}

static void shutdown_write(fd_transport *f)
{
    f->base.flags |= TAPIO__T_EOF_SENT;
    if (shutdown(f->io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
        fatal_error(f, -errno, NULL);
}

static void sendfile_step(fd_transport *f);

/* The buffer is empty: start a waiting sendfile, else finish a close or a
 * write_eof that waited for it. */
static void drained(fd_transport *f)
{
    tapio_transport *t = &f->base;
    f->wstart = f->wend = 0;
    if (f->wcap > WBUF_KEEP) {
        free(f->wbuf);
        f->wbuf = NULL;
        f->wcap = 0;
    }
    update_interest(f);
    if (f->sf.active) {
        sendfile_step(f);
        return; /* its end finishes what waits */
    }
    if (is_closing(t)) {
        if (t->life != TAPIO__CLOSED)
            schedule_connection_lost(t, 0);
    } else if ((t->flags & (TAPIO__T_EOF | TAPIO__T_EOF_SENT)) ==
               TAPIO__T_EOF) {
        shutdown_write(f);
    }
}

/* A send failed. EPIPE may hide the reset a receive in flight took first
 * (io_uring): the connection ends with the reset, as read(2) would tell. */
static void send_failed(fd_transport *f, int err)
{
    tapio_loop *loop = f->base.loop;
    if (err == -EPIPE && loop->backend->received_error) {
        int received = loop->backend->received_error(loop, &f->io);
        if (received)
            err = received;
    }
    fatal_error(f, err, NULL);
}

static void flush_buffer(fd_transport *f)
{
    if (f->ring_sending)
        return; /* its completion goes on (a stale readiness) */
    struct iovec iov = {f->wbuf + f->wstart, buffered(f)};
    ssize_t n = send_iov(f, &iov, 1);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        send_failed(f, -errno);
        return;
    }
    f->wstart += (size_t)n;
    maybe_resume_protocol(f);
    if (!buffered(f))
        drained(f);
}

/* A send the backend made from the buffer ended: n bytes sent, -errno,
 * or -ECANCELED with nothing sent. */
static void ring_sent(fd_transport *f, ssize_t n)
{
    tapio_transport *t = &f->base;
    f->ring_sending = 0;
    free(f->pinned);
    f->pinned = NULL;
    if (released(t) || t->life == TAPIO__CLOSED)
        return; /* the buffer was dropped */
    if (n >= 0) {
        f->wstart += (size_t)n;
        maybe_resume_protocol(f);
        if (!buffered(f)) {
            drained(f);
            return;
        }
    } else if (n != -ECANCELED) {
        send_failed(f, (int)n);
        return;
    }
    /* The rest (not taken, or written since) goes once the socket has
     * room, as after a partial send(2). */
    update_interest(f);
}

static void socket_sent(tapio_loop *loop, tapio__io *io, ssize_t n)
{
    (void)loop;
    fd_transport *f = tapio__container_of(io, fd_transport, io);
    ring_sent(f, n);
    tapio_transport_unref(&f->base);
}

/* On a backend that sends for its watchers (io_uring), a socket's
 * coalesced writes become a send request; the iteration's requests go in
 * one system call (tapio__flush_writes), where a send(2) of each would be
 * a system call of its own. */
static bool send_on_ring(fd_transport *f)
{
    tapio_loop *loop = f->base.loop;
    size_t len = buffered(f);
    if (!f->io.sent || !loop->backend->send ||
        loop->backend->send(loop, &f->io, f->wbuf + f->wstart, len) < 0)
        return false;
    f->ring_sending = len;
    tapio_transport_ref(&f->base);
    return true;
}

/* Send the coalesced writes now: at the end of the iteration, or early,
 * when holding more would take the buffer over the high-water mark (a
 * direct send might not have paused the protocol). What the fd does not
 * take waits for it to be writable, as any unsent write. */
static bool flush_now(fd_transport *f, bool batched)
{
    tapio__list_remove(&f->flush_node);
    if (!buffered(f) || f->base.life == TAPIO__CLOSED || f->ring_sending)
        return false; /* aborted meanwhile, or sent when the send ends */
    bool on_ring = batched && send_on_ring(f);
    if (!on_ring)
        flush_buffer(f);
    update_interest(f);
    return on_ring;
}

/* The iteration's writes: on io_uring one system call sends them all, and
 * what it sent at once is accounted for before the iteration ends, as
 * send(2) calls would have been. */
void tapio__flush_writes(tapio_loop *loop)
{
    bool on_ring = false;
    while (!tapio__list_empty(&loop->write_flushes))
        on_ring |= flush_now(tapio__container_of(loop->write_flushes.next,
                                                 fd_transport, flush_node),
                             true);
    if (on_ring)
        loop->backend->push_sends(loop);
}

/* The largest write worth copying to send it with others: an HTTP body of
 * 16 KiB still leaves with its head; a bulk write goes out directly. */
#define COALESCE_MAX (16 * 1024)

/* During callbacks, a write to an idle transport is queued and sent with
 * the iteration's other writes to it: one send, not one each. */
static int coalesce(fd_transport *f, const struct iovec *iov, int iovcnt)
{
    int err = append_iov(f, iov, iovcnt, 0);
    if (!err && !flush_queued(f))
        tapio__list_push(&f->base.loop->write_flushes, &f->flush_node);
    return err;
}

static int fd_writev(tapio_transport *t, const struct iovec *iov, int iovcnt)
{
    fd_transport *f = fdt(t);
    if (t->flags & TAPIO__T_EOF)
        return -ESHUTDOWN;
    if (f->sf.active)
        return -EBUSY;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (t->life == TAPIO__CLOSED) /* asyncio drops writes once the end is due */
        return 0;
    if (flush_queued(f) || (!buffered(f) && t->loop->dispatching)) {
        if (total <= COALESCE_MAX &&
            !tapio__flow_over_high(&t->flow, buffered(f) + total) &&
            coalesce(f, iov, iovcnt) == 0)
            return 0;
        /* Too much to hold or to copy (or no memory to): what is queued
         * goes first, this one then as a direct write. */
        if (flush_queued(f))
            flush_now(f, false);
        if (t->life == TAPIO__CLOSED)
            return 0;
    }
    size_t sent = 0;
    if (!buffered(f) && iovcnt <= IOV_MAX) {
        ssize_t n = send_iov(f, iov, iovcnt);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            send_failed(f, -errno);
            return 0;
        }
        sent = n > 0 ? (size_t)n : 0;
        if (sent == total)
            return 0;
    }
    bool was_empty = !buffered(f);
    int err = append_iov(f, iov, iovcnt, sent);
    if (err)
        return err;
    if (was_empty)
        update_interest(f);
    maybe_pause_protocol(f);
    return 0;
}

static int refuse_write(tapio_transport *t, const struct iovec *iov,
                        int iovcnt)
{
    (void)t, (void)iov, (void)iovcnt;
    return -ENOTSUP;
}

static void on_io(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)loop;
    fd_transport *f = tapio__container_of(io, fd_transport, io);
    if ((events & TAPIO__WRITE) && buffered(f))
        flush_buffer(f);
    else if ((events & TAPIO__WRITE) && f->sf.active)
        sendfile_step(f);
    if ((events & TAPIO__READ) && !f->base.read_stop &&
        !is_closing(&f->base)) {
        if (kind_ops(f)->readable == read_into_protocol) /* inlined */
            read_into_protocol(f);
        else
            kind_ops(f)->readable(f);
    }
}

/* ---- sendfile ----------------------------------------------------------- */

/* A finished sendfile's callback, run from the loop. */
typedef struct sendfile_report {
    tapio_transport *t;
    size_t sent;
    int err;
    tapio_sendfile_callback cb;
    void *arg;
} sendfile_report;

static void run_sendfile_report(tapio_loop *loop, void *arg)
{
    (void)loop;
    sendfile_report *r = arg;
    if (r->cb)
        r->cb(r->t, r->sent, r->err, r->arg);
    tapio_transport_unref(r->t);
    free(r);
}

/* The sendfile is over: the file is let go at once (a caller may close or
 * reuse its fd), writes are accepted again, and the callback is queued. */
static void sendfile_finish(fd_transport *f, int err)
{
    f->sf.active = false;
    close(f->sf.fd);
    update_interest(f);
    sendfile_report *r = malloc(sizeof(*r));
    if (!r) { /* out of memory: report now */
        if (f->sf.cb)
            f->sf.cb(&f->base, f->sf.sent, err, f->sf.arg);
        return;
    }
    *r = (sendfile_report){&f->base, f->sf.sent, err, f->sf.cb, f->sf.arg};
    tapio_transport_ref(&f->base);
    if (!tapio_call_soon(f->base.loop, run_sendfile_report, r))
        run_sendfile_report(f->base.loop, r);
}

/* A sendfile ended by itself or was cancelled: a close or write_eof may
 * have waited for it. */
static void sendfile_ended(fd_transport *f, int err)
{
    sendfile_finish(f, err);
    if (!buffered(f))
        drained(f);
}

/* Send until the socket is full (then wait for EPOLLOUT) or the range is
 * done. */
static void sendfile_step(fd_transport *f)
{
    while (f->sf.remaining) {
        size_t chunk = f->sf.remaining > (1u << 30) ? (1u << 30)
                                                    : f->sf.remaining;
        ssize_t n = sendfile(f->io.fd, f->sf.fd, &f->sf.offset, chunk);
        if (n > 0) {
            f->sf.sent += (size_t)n;
            f->sf.remaining -= (size_t)n;
        } else if (n == 0) {
            break; /* the file ended early */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            update_interest(f);
            return;
        } else if (errno != EINTR) {
            sendfile_ended(f, -errno);
            return;
        }
    }
    sendfile_ended(f, 0);
}

static int fd_sendfile(tapio_transport *t, int file_fd, off_t offset,
                       size_t count, tapio_sendfile_callback cb, void *arg)
{
    fd_transport *f = fdt(t);
    if (f->sf.active)
        return -EBUSY;
    if (t->flags & TAPIO__T_EOF)
        return -ESHUTDOWN;
    if (is_closing(t))
        return -EPIPE;
    if (offset < 0)
        return -EINVAL;
    if (count == 0) {
        struct stat st;
        if (fstat(file_fd, &st) < 0)
            return -errno;
        count = st.st_size > offset ? (size_t)(st.st_size - offset) : 0;
    }
    /* A duplicate: closing or reusing the caller's fd meanwhile cannot
     * send another file's bytes. */
    int dup = fcntl(file_fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        return -errno;
    memset(&f->sf, 0, sizeof(f->sf));
    f->sf.active = true;
    f->sf.fd = dup;
    f->sf.offset = offset;
    f->sf.remaining = count;
    f->sf.cb = cb;
    f->sf.arg = arg;
    if (!buffered(f))
        sendfile_step(f);
    update_interest(f);
    return 0;
}

static ssize_t fd_sendfile_cancel(tapio_transport *t)
{
    fd_transport *f = fdt(t);
    if (!f->sf.active)
        return -ENOENT;
    size_t sent = f->sf.sent;
    sendfile_ended(f, -ECANCELED);
    return (ssize_t)sent;
}

/* ---- the fd kinds' calls ------------------------------------------------ */

static int socket_write_eof(tapio_transport *t)
{
    fd_transport *f = fdt(t);
    if (is_closing(t) || (t->flags & TAPIO__T_EOF))
        return 0;
    t->flags |= TAPIO__T_EOF;
    if (!buffered(f) && !f->sf.active)
        shutdown_write(f);
    return 0;
}

/* A pipe's EOF is its closing. */
static int write_pipe_write_eof(tapio_transport *t)
{
    tapio_transport_close(t);
    return 0;
}

static void fd_close(tapio_transport *t)
{
    fd_transport *f = fdt(t);
    tapio__transport_set_closing(t);
    update_interest(f);
    if (!buffered(f) && !f->sf.active)
        schedule_connection_lost(t, 0);
}

static void fd_fail(tapio_transport *t, int err) { force_close(fdt(t), err); }

static void fd_pause_reading(tapio_transport *t)
{
    if (is_closing(t) || (t->read_stop & READ_PAUSED_USER))
        return;
    t->read_stop |= READ_PAUSED_USER;
    update_interest(fdt(t));
}

/* A write pipe reads only to hear its reader leave: it keeps doing so. */
static void write_pipe_pause_reading(tapio_transport *t) { (void)t; }

static void fd_resume_reading(tapio_transport *t)
{
    if (is_closing(t) || !(t->read_stop & READ_PAUSED_USER))
        return;
    t->read_stop &= ~READ_PAUSED_USER;
    update_interest(fdt(t));
}

static bool fd_is_reading(const tapio_transport *t)
{
    return !(t->read_stop & READ_PAUSED_USER) && !is_closing(t);
}

static size_t fd_buffer_size(const tapio_transport *t)
{
    return buffered(cfdt(t));
}

static void fd_limits_changed(tapio_transport *t)
{
    if (!released(t))
        maybe_pause_protocol(fdt(t));
}

static int fd_fd(const tapio_transport *t) { return cfdt(t)->io.fd; }

static void fd_release(tapio_transport *t)
{
    fd_transport *f = fdt(t);
    tapio__list_remove(&f->flush_node);
    if (f->sf.active) { /* the loop closed under it */
        f->sf.active = false;
        close(f->sf.fd);
    }
    if (f->io.fd >= 0) {
        if (f->ring_sending)
            t->loop->backend->cancel_send(t->loop, &f->io);
        tapio__io_detach(t->loop, &f->io);
        close(f->io.fd);
        f->io.fd = -1;
    }
    pin_or_free(f, f->wbuf);
    f->wbuf = NULL;
    f->wstart = f->wend = f->wcap = 0;
}

static void read_pipe_release(tapio_transport *t)
{
    read_pipe *p = (read_pipe *)t;
    for (int i = 0; i < 2; i++)
        if (p->relay[i] >= 0) {
            close(p->relay[i]);
            p->relay[i] = -1;
        }
    fd_release(t);
}

static void fd_free(tapio_transport *t)
{
    free(fdt(t)->wbuf);
    free(fdt(t)->pinned);
    held_free(fdt(t));
    free(t);
}

static const fd_ops socket_ops = {
    .ops = {
        .writev = fd_writev,
        .write_eof = socket_write_eof,
        .sendfile = fd_sendfile,
        .sendfile_cancel = fd_sendfile_cancel,
        .close = fd_close,
        .fail = fd_fail,
        .pause_reading = fd_pause_reading,
        .resume_reading = fd_resume_reading,
        .is_reading = fd_is_reading,
        .buffer_size = fd_buffer_size,
        .limits_changed = fd_limits_changed,
        .fd = fd_fd,
        .release = fd_release,
        .free = fd_free,
    },
    .send = socket_send,
    .read = fd_read,
    .readable = read_into_protocol,
    .eof = socket_eof,
};

static const fd_ops read_pipe_ops = {
    .ops = {
        .writev = refuse_write,
        .write_eof = NULL, /* -ENOTSUP */
        .sendfile = fd_sendfile,
        .sendfile_cancel = fd_sendfile_cancel,
        .close = fd_close,
        .fail = fd_fail,
        .pause_reading = fd_pause_reading,
        .resume_reading = fd_resume_reading,
        .is_reading = fd_is_reading,
        .buffer_size = fd_buffer_size,
        .limits_changed = fd_limits_changed,
        .fd = fd_fd,
        .release = read_pipe_release,
        .free = fd_free,
    },
    .send = pipe_send,
    .read = read_pipe_read,
    .readable = read_into_protocol,
    .eof = read_pipe_eof,
};

static const fd_ops write_pipe_ops = {
    .ops = {
        .writev = fd_writev,
        .write_eof = write_pipe_write_eof,
        .sendfile = fd_sendfile,
        .sendfile_cancel = fd_sendfile_cancel,
        .close = fd_close,
        .fail = fd_fail,
        .pause_reading = write_pipe_pause_reading,
        .resume_reading = fd_resume_reading,
        .is_reading = fd_is_reading,
        .buffer_size = fd_buffer_size,
        .limits_changed = fd_limits_changed,
        .fd = fd_fd,
        .release = fd_release,
        .free = fd_free,
    },
    .send = pipe_send,
    .read = fd_read,
    .readable = reader_gone,
    .eof = read_pipe_eof, /* not reached: a write pipe does not read */
};

/* ---- the Transport API ----------------------------------------------- */

int tapio_transport_writev(tapio_transport *t, const struct iovec *iov,
                           int iovcnt)
{
    return t->ops->writev(t, iov, iovcnt);
}

int tapio_transport_write(tapio_transport *t, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    if (t->ops->writev == fd_writev) /* the common case, inlined */
        return fd_writev(t, &iov, 1);
    return t->ops->writev(t, &iov, 1);
}

int tapio_transport_sendfile(tapio_transport *t, int file_fd, off_t offset,
                             size_t count, tapio_sendfile_callback cb,
                             void *arg)
{
    if (!t->ops->sendfile)
        return -ENOTSUP;
    return t->ops->sendfile(t, file_fd, offset, count, cb, arg);
}

ssize_t tapio_transport_sendfile_cancel(tapio_transport *t)
{
    if (!t->ops->sendfile_cancel)
        return -ENOENT;
    return t->ops->sendfile_cancel(t);
}

int tapio_transport_write_eof(tapio_transport *t)
{
    return t->ops->write_eof ? t->ops->write_eof(t) : -ENOTSUP;
}

bool tapio_transport_can_write_eof(const tapio_transport *t)
{
    return t->ops->write_eof != NULL;
}

void tapio_transport_close(tapio_transport *t)
{
    if (!is_closing(t))
        t->ops->close(t);
}

void tapio_transport_abort(tapio_transport *t)
{
    if (released(t))
        return;
    tapio__transport_set_closing(t); /* a TLS face's fail leaves it open */
    t->ops->fail(t, 0);
}

void tapio_transport_fail(tapio_transport *t, int err)
{
    if (!released(t))
        t->ops->fail(t, err);
}

bool tapio_transport_is_closing(const tapio_transport *t)
{
    return is_closing(t);
}

void tapio_transport_pause_reading(tapio_transport *t)
{
    t->ops->pause_reading(t);
}

void tapio_transport_resume_reading(tapio_transport *t)
{
    t->ops->resume_reading(t);
}

bool tapio_transport_is_reading(const tapio_transport *t)
{
    return t->ops->is_reading(t);
}

size_t tapio_transport_get_write_buffer_size(const tapio_transport *t)
{
    return t->ops->buffer_size(t);
}

int tapio_transport_set_write_buffer_limits(tapio_transport *t, ssize_t high,
                                            ssize_t low)
{
    int err = tapio__flow_set(&t->flow, high, low);
    if (!err)
        t->ops->limits_changed(t);
    return err;
}

void tapio_transport_get_write_buffer_limits(const tapio_transport *t,
                                             size_t *low, size_t *high)
{
    if (low)
        *low = t->flow.low;
    if (high)
        *high = t->flow.high;
}

void tapio_transport_set_protocol(tapio_transport *t,
                                  const tapio_protocol *proto, void *user)
{
    t->proto = proto;
    t->user = user;
}

const tapio_protocol *tapio_transport_get_protocol(const tapio_transport *t,
                                                   void **user)
{
    if (user)
        *user = t->user;
    return t->proto;
}

tapio_loop *tapio_transport_loop(const tapio_transport *t) { return t->loop; }

int tapio_transport_fd(const tapio_transport *t) { return t->ops->fd(t); }

static int copy_addr(const struct sockaddr_storage *src, socklen_t src_len,
                     struct sockaddr_storage *addr, socklen_t *len)
{
    if (!src_len)
        return -ENOTCONN;
    memcpy(addr, src, src_len);
    *len = src_len;
    return 0;
}

int tapio_transport_peername(const tapio_transport *t,
                             struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_addr(&t->addr->peer, t->addr->peer_len, addr, len);
}

int tapio_transport_sockname(const tapio_transport *t,
                             struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_addr(&t->addr->local, t->addr->local_len, addr, len);
}

/* ---- creation --------------------------------------------------------- */

static void call_connection_made(tapio_loop *loop, void *arg)
{
    (void)loop;
    fd_transport *f = arg;
    tapio_transport *t = &f->base;
    tapio__transport_set_open(t);
    if (t->proto && t->proto->connection_made)
        t->proto->connection_made(t, t->user);
    t->read_stop &= ~READ_NOT_STARTED;
    update_interest(f);
}

static void cache_addresses(fd_transport *f)
{
    tapio__addresses *a = &f->addr;
    a->local_len = sizeof(a->local);
    if (getsockname(f->io.fd, (struct sockaddr *)&a->local, &a->local_len) < 0)
        a->local_len = 0;
    a->peer_len = sizeof(a->peer);
    if (getpeername(f->io.fd, (struct sockaddr *)&a->peer, &a->peer_len) < 0)
        a->peer_len = 0;
}

/* asyncio turns Nagle off on every TCP transport. */
static void set_nodelay(fd_transport *f)
{
    int family = f->addr.local.ss_family;
    if (family == AF_INET || family == AF_INET6) {
        int one = 1;
        setsockopt(f->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

/* A write pipe learns that its reader left by becoming "readable" only
 * when it is a FIFO or a socket. */
static bool watches_hangup(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* The backend cannot watch the fd: the connection ends with the error
 * rather than wait for events that never come. */
static void on_io_refused(tapio_loop *loop, tapio__io *io, int err)
{
    (void)loop;
    fatal_error(tapio__container_of(io, fd_transport, io), err, NULL);
}

/* A transport's memory with its fields set; nothing attached yet. */
static fd_transport *fd_transport_alloc(tapio_loop *loop, int fd,
                                        enum tapio__stream_kind kind,
                                        const tapio_protocol *proto,
                                        void *user)
{
    const fd_ops *ops = kind == TAPIO__READ_PIPE    ? &read_pipe_ops
                        : kind == TAPIO__WRITE_PIPE ? &write_pipe_ops
                                                    : &socket_ops;
    size_t size = kind == TAPIO__READ_PIPE ? sizeof(read_pipe)
                                           : sizeof(fd_transport);
    fd_transport *f = calloc(1, size);
    if (!f)
        return NULL;
    tapio__transport_init(&f->base, loop, &ops->ops, kind, proto, user,
                          TAPIO_DEFAULT_HIGH_WATER, &f->addr);
    tapio__io_init(&f->io, fd, on_io);
    f->io.refused = on_io_refused;
    if (kind == TAPIO__SOCKET) {
        f->io.received = socket_received;
        f->io.sent = socket_sent;
    }
    tapio__list_init(&f->flush_node);
    if (kind == TAPIO__READ_PIPE)
        ((read_pipe *)f)->relay[0] = ((read_pipe *)f)->relay[1] = -1;
    return f;
}

int tapio__transport_new(tapio_loop *loop, int fd,
                         enum tapio__stream_kind kind,
                         const tapio_protocol *proto, void *user,
                         tapio_server *server, tapio_transport **out)
{
    if (kind == TAPIO__TLS) { /* a TLS face is made by tapio_tls_start */
        close(fd);
        return -EINVAL;
    }
    fd_transport *f = fd_transport_alloc(loop, fd, kind, proto, user);
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    tapio_transport *t = &f->base;
    t->read_stop = READ_NOT_STARTED;
    int err = tapio__io_attach(loop, &f->io);
    if (!err && !tapio_call_soon(loop, call_connection_made, f)) {
        tapio__io_detach(loop, &f->io);
        err = -ENOMEM;
    }
    if (err) {
        close(fd);
        free(f);
        return err;
    }
    cache_addresses(f);
    set_nodelay(f);
    if (kind == TAPIO__WRITE_PIPE && !watches_hangup(fd))
        t->read_stop |= READ_NEVER;
    tapio__list_push(&loop->transports, &t->node);
    t->server = server;
    *out = t;
    return 0;
}

/* The socket pair's send buffer: each splice moves up to this much (the
 * kernel doubles the value); the pipe itself is the buffer. */
#define RELAY_SNDBUF (64 * 1024)

/* Whether splice(2) moves a pipe's bytes into this AF_UNIX socket pair:
 * asked once per process (a kernel or sandbox may refuse it). */
static bool splice_works(const int pair[2])
{
    static atomic_int known = -1;
    int works = atomic_load(&known);
    if (works >= 0)
        return works;
    int probe[2];
    char c = 0;
    works = pipe2(probe, O_CLOEXEC | O_NONBLOCK) == 0;
    if (works) {
        works = write(probe[1], &c, 1) == 1 &&
                splice(probe[0], NULL, pair[1], NULL, 1, SPLICE_F_NONBLOCK) == 1 &&
                read(pair[0], &c, 1) == 1;
        close(probe[0]);
        close(probe[1]);
    }
    atomic_store(&known, works);
    return works;
}

int tapio__transport_relay(tapio_transport *t)
{
    if (t->ops != &read_pipe_ops.ops)
        return -EINVAL;
    read_pipe *p = (read_pipe *)t;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   pair) < 0)
        return -errno;
    int size = RELAY_SNDBUF;
    setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (!splice_works(pair)) {
        close(pair[0]);
        close(pair[1]);
        return -ENOSYS;
    }
    p->relay[0] = pair[0];
    p->relay[1] = pair[1];
    return 0;
}

int tapio_transport_from_fd(tapio_loop *loop, int fd,
                            const tapio_protocol *proto, void *user,
                            tapio_transport **out)
{
    int type = 0;
    socklen_t len = sizeof(type);
    int err = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ? -errno : 0;
    if (!err && type != SOCK_STREAM)
        err = -EINVAL; /* asyncio: "A Stream Socket was expected" */
    if (!err)
        err = tapio__set_nonblocking(fd);
    if (err) {
        close(fd);
        return err;
    }
    tapio_transport *t;
    err = tapio__transport_new(loop, fd, TAPIO__SOCKET, proto, user, NULL, &t);
    if (!err && out)
        *out = t;
    return err;
}
