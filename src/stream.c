/* The stream transport shared by TCP and Unix sockets: reading into the
 * protocol, the write buffer with flow control, close/abort/write_eof and the
 * transport's lifetime. Mirrors asyncio's _SelectorSocketTransport. */
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

/* ---- lifetime -------------------------------------------------------- */

static void transport_free(tapio_transport *t)
{
    if (t->tls)
        tapio__tls_release(t);
    free(t->wbuf);
    free(t);
}

void tapio_transport_ref(tapio_transport *t) { t->refs++; }

void tapio_transport_unref(tapio_transport *t)
{
    if (--t->refs == 0)
        transport_free(t);
}

/* Release the socket and every tie to the loop; the memory stays while
 * references remain. `from_loop` says a loop callback (connection_lost's)
 * is running, so the server's on_closed may run now, as asyncio wakes
 * wait_closed() from the last connection's connection_lost; under a TLS
 * layer it waits for the layer's connection_lost, queued meanwhile. */
static void transport_release(tapio_transport *t, bool from_loop)
{
    bool layered = tapio__tls_is_raw(t);
    if (t->tls)
        tapio__tls_detach(t);
    if (t->io.fd >= 0) {
        tapio__io_detach(t->loop, &t->io);
        close(t->io.fd);
        t->io.fd = -1;
    }
    for (int i = 0; i < 2; i++)
        if (t->relay[i] >= 0) {
            close(t->relay[i]);
            t->relay[i] = -1;
        }
    t->dead = true;
    t->closing = true;
    t->lost_due = true;
    free(t->wbuf);
    t->wbuf = NULL;
    t->wstart = t->wend = t->wcap = 0;
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
    t->lost_due = true;
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

/* ---- reading ---------------------------------------------------------- */

static void update_interest(tapio_transport *t)
{
    unsigned want = 0;
    if (!t->read_stop && !t->closing)
        want |= TAPIO__READ;
    if (t->wend > t->wstart || (t->sf.active && !t->sf.done))
        want |= TAPIO__WRITE;
    if (want != t->io.want)
        tapio__io_set(t->loop, &t->io, want);
}

static void sendfile_finish(tapio_transport *t, int err);

static void force_close(tapio_transport *t, int err)
{
    if (t->lost_due)
        return;
    t->wstart = t->wend = 0;
    t->closing = true;
    if (t->sf.active && !t->sf.done) /* its report comes before the loss */
        sendfile_finish(t, err ? err : -ECANCELED);
    update_interest(t);
    schedule_connection_lost(t, err);
}

/* asyncio's _fatal_error: OS errors are normal connection endings and
 * reach only connection_lost; anything else is reported as well. */
static void fatal_error(tapio_transport *t, int err, const char *message)
{
    if (message)
        tapio__report_error(t->loop, message, err);
    force_close(t, err);
}

static void on_eof(tapio_transport *t)
{
    if (t->kind == TAPIO__READ_PIPE) { /* a pipe's EOF ends it, whatever the
                                          protocol answers (asyncio's too) */
        if (t->proto && t->proto->eof_received)
            t->proto->eof_received(t, t->user);
        tapio_transport_close(t);
        return;
    }
    bool keep_open = t->proto && t->proto->eof_received &&
                     t->proto->eof_received(t, t->user);
    if (keep_open) {
        t->read_stop |= READ_STOPPED_EOF;
        update_interest(t);
    } else {
        tapio_transport_close(t);
    }
}

/* A relayed pipe: splice moves what the pipe holds into the socket pair
 * (page references: the pipe's lock is held only briefly, so the writer
 * goes on writing), then the copy out is read from the socket. At most
 * `len` bytes are moved, so the read takes them all and the socket is
 * empty again. */
static ssize_t relay_read(tapio_transport *t, char *buf, size_t len)
{
    ssize_t moved = splice(t->io.fd, NULL, t->relay[1], NULL, len,
                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (moved <= 0)
        return moved;
    ssize_t n;
    do
        n = read(t->relay[0], buf, len);
    while (n < 0 && errno == EINTR);
    return n;
}

static void read_into_protocol(tapio_transport *t)
{
    const tapio_protocol *proto = t->proto;
    char *buf = t->loop->read_buf;
    size_t cap = TAPIO__READ_SIZE;
    if (proto && proto->get_buffer) {
        buf = proto->get_buffer(t, 0, &cap, t->user);
        if (!buf || cap == 0) { /* read nothing; failed already, or now */
            if (!tapio_transport_is_closing(t))
                fatal_error(t, TAPIO_EPROTOCOL,
                            "get_buffer() returned an empty buffer");
            return;
        }
    }
    ssize_t n = t->relay[0] >= 0 ? relay_read(t, buf, cap)
                                  : read(t->io.fd, buf, cap);
    if (n > 0) {
        if (proto && proto->get_buffer) {
            if (proto->buffer_updated)
                proto->buffer_updated(t, (size_t)n, t->user);
        }
        else if (proto && proto->data_received)
            proto->data_received(t, buf, (size_t)n, t->user);
    } else if (n == 0) {
        on_eof(t);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fatal_error(t, -errno, NULL);
    }
}

/* ---- writing ---------------------------------------------------------- */

static size_t buffered(const tapio_transport *t) { return t->wend - t->wstart; }

static void maybe_pause_protocol(tapio_transport *t)
{
    if (buffered(t) <= t->high || t->protocol_paused)
        return;
    t->protocol_paused = true;
    if (t->proto && t->proto->pause_writing)
        t->proto->pause_writing(t, t->user);
}

static void maybe_resume_protocol(tapio_transport *t)
{
    if (!t->protocol_paused || buffered(t) > t->low)
        return;
    t->protocol_paused = false;
    if (t->proto && t->proto->resume_writing)
        t->proto->resume_writing(t, t->user);
}

static int reserve(tapio_transport *t, size_t extra)
{
    size_t len = buffered(t);
    if (t->wcap - t->wend >= extra)
        return 0;
    if (t->wstart && t->wcap - len >= extra) { /* compact instead of grow */
        memmove(t->wbuf, t->wbuf + t->wstart, len);
        t->wstart = 0;
        t->wend = len;
        return 0;
    }
    size_t cap = t->wcap ? t->wcap : 16 * 1024;
    while (cap - len < extra)
        cap *= 2;
    char *wbuf = malloc(cap);
    if (!wbuf)
        return -ENOMEM;
    if (len)
        memcpy(wbuf, t->wbuf + t->wstart, len);
    free(t->wbuf);
    t->wbuf = wbuf;
    t->wcap = cap;
    t->wstart = 0;
    t->wend = len;
    return 0;
}

static int append_iov(tapio_transport *t, const struct iovec *iov, int iovcnt,
                      size_t skip)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int err = reserve(t, total - skip);
    if (err)
        return err;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(t->wbuf + t->wend, (const char *)iov[i].iov_base + skip,
               len - skip);
        t->wend += len - skip;
        skip = 0;
    }
    return 0;
}

/* Sockets: MSG_NOSIGNAL makes a vanished peer an EPIPE error, not a
 * SIGPIPE, and a single buffer takes send(), cheaper in the kernel than
 * sendmsg(). Pipes take write()/writev(). */
static ssize_t send_iov(const tapio_transport *t, const struct iovec *iov,
                        int iovcnt)
{
    struct msghdr msg = {0};
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    int fd = t->io.fd;
    bool socket = t->kind == TAPIO__SOCKET;
    ssize_t n;
    do
        if (!socket)
            n = iovcnt == 1 ? write(fd, iov->iov_base, iov->iov_len)
                            : writev(fd, iov, iovcnt);
        else
            n = iovcnt == 1
                    ? send(fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL)
                    : sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static void shutdown_write(tapio_transport *t)
{
    t->eof_sent = true;
    if (shutdown(t->io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
        fatal_error(t, -errno, NULL);
}

static void sendfile_step(tapio_transport *t);

/* The buffer is empty: start a waiting sendfile, else finish a close or a
 * write_eof that waited for it. */
static void drained(tapio_transport *t)
{
    t->wstart = t->wend = 0;
    if (t->wcap > WBUF_KEEP) {
        free(t->wbuf);
        t->wbuf = NULL;
        t->wcap = 0;
    }
    update_interest(t);
    if (t->sf.active) {
        if (!t->sf.done)
            sendfile_step(t);
        return; /* its report finishes what waits */
    }
    if (t->closing) {
        if (!t->lost_due)
            schedule_connection_lost(t, 0);
    } else if (t->eof && !t->eof_sent) {
        shutdown_write(t);
    }
}

static void flush_buffer(tapio_transport *t)
{
    struct iovec iov = {t->wbuf + t->wstart, buffered(t)};
    ssize_t n = send_iov(t, &iov, 1);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        fatal_error(t, -errno, NULL);
        return;
    }
    t->wstart += (size_t)n;
    maybe_resume_protocol(t);
    if (!buffered(t))
        drained(t);
}

static int write_check(tapio_transport *t)
{
    if (t->kind == TAPIO__READ_PIPE)
        return -ENOTSUP;
    if (t->eof)
        return -ESHUTDOWN;
    if (t->sf.active)
        return -EBUSY;
    return 0;
}

int tapio_transport_writev(tapio_transport *t, const struct iovec *iov,
                           int iovcnt)
{
    if (TAPIO__UNLIKELY(t->kind == TAPIO__TLS))
        return tapio__tls_writev(t, iov, iovcnt);
    int err = write_check(t);
    if (err)
        return err;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (t->lost_due) /* asyncio drops writes once the end is due */
        return 0;
    size_t sent = 0;
    if (!buffered(t) && iovcnt <= IOV_MAX) {
        ssize_t n = send_iov(t, iov, iovcnt);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            fatal_error(t, -errno, NULL);
            return 0;
        }
        sent = n > 0 ? (size_t)n : 0;
        if (sent == total)
            return 0;
    }
    bool was_empty = !buffered(t);
    err = append_iov(t, iov, iovcnt, sent);
    if (err)
        return err;
    if (was_empty)
        update_interest(t);
    maybe_pause_protocol(t);
    return 0;
}

int tapio_transport_write(tapio_transport *t, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return tapio_transport_writev(t, &iov, 1);
}

static void on_io(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)loop;
    tapio_transport *t = tapio__container_of(io, tapio_transport, io);
    if ((events & TAPIO__WRITE) && buffered(t))
        flush_buffer(t);
    else if ((events & TAPIO__WRITE) && t->sf.active && !t->sf.done)
        sendfile_step(t);
    if ((events & TAPIO__READ) && !t->read_stop && !t->closing) {
        if (t->kind == TAPIO__WRITE_PIPE) /* the reader went away */
            force_close(t, buffered(t) ? -EPIPE : 0);
        else
            read_into_protocol(t);
    }
}

/* ---- sendfile ----------------------------------------------------------- */

static void sendfile_report(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_transport *t = arg;
    t->sf.active = false;
    if (t->sf.cb)
        t->sf.cb(t, t->sf.sent, t->sf.err, t->sf.arg);
    if (t->dead || buffered(t))
        return;
    drained(t); /* a close or write_eof may have waited for us */
}

static void sendfile_finish(tapio_transport *t, int err)
{
    t->sf.done = true;
    t->sf.err = err;
    update_interest(t);
    if (!tapio_call_soon(t->loop, sendfile_report, t))
        sendfile_report(t->loop, t); /* out of memory: report now */
}

/* Send until the socket is full (then wait for EPOLLOUT) or the range is
 * done. */
static void sendfile_step(tapio_transport *t)
{
    while (t->sf.remaining) {
        size_t chunk = t->sf.remaining > (1u << 30) ? (1u << 30)
                                                    : t->sf.remaining;
        ssize_t n = sendfile(t->io.fd, t->sf.fd, &t->sf.offset, chunk);
        if (n > 0) {
            t->sf.sent += (size_t)n;
            t->sf.remaining -= (size_t)n;
        } else if (n == 0) {
            break; /* the file ended early */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            update_interest(t);
            return;
        } else if (errno != EINTR) {
            sendfile_finish(t, -errno);
            return;
        }
    }
    sendfile_finish(t, 0);
}

int tapio_transport_sendfile(tapio_transport *t, int file_fd, off_t offset,
                             size_t count, tapio_sendfile_callback cb,
                             void *arg)
{
    if (t->kind == TAPIO__TLS)
        return -ENOTSUP;
    if (t->sf.active)
        return -EBUSY;
    if (t->eof)
        return -ESHUTDOWN;
    if (t->closing || t->lost_due)
        return -EPIPE;
    if (offset < 0)
        return -EINVAL;
    if (count == 0) {
        struct stat st;
        if (fstat(file_fd, &st) < 0)
            return -errno;
        count = st.st_size > offset ? (size_t)(st.st_size - offset) : 0;
    }
    memset(&t->sf, 0, sizeof(t->sf));
    t->sf.active = true;
    t->sf.fd = file_fd;
    t->sf.offset = offset;
    t->sf.remaining = count;
    t->sf.cb = cb;
    t->sf.arg = arg;
    if (!buffered(t))
        sendfile_step(t);
    update_interest(t);
    return 0;
}

/* ---- the Transport API ----------------------------------------------- */

int tapio_transport_write_eof(tapio_transport *t)
{
    if (t->kind == TAPIO__READ_PIPE || t->kind == TAPIO__TLS)
        return -ENOTSUP;
    if (t->kind == TAPIO__WRITE_PIPE) { /* a pipe's EOF is its closing */
        tapio_transport_close(t);
        return 0;
    }
    if (t->closing || t->eof)
        return 0;
    t->eof = true;
    if (!buffered(t) && !t->sf.active)
        shutdown_write(t);
    return 0;
}

bool tapio_transport_can_write_eof(const tapio_transport *t)
{
    return t->kind != TAPIO__READ_PIPE && t->kind != TAPIO__TLS;
}

void tapio_transport_close(tapio_transport *t)
{
    if (t->closing)
        return;
    if (t->kind == TAPIO__TLS) {
        tapio__tls_close(t);
        return;
    }
    t->closing = true;
    update_interest(t);
    if (!buffered(t) && !t->sf.active)
        schedule_connection_lost(t, 0);
}

void tapio_transport_abort(tapio_transport *t)
{
    tapio_transport_fail(t, 0);
}

void tapio_transport_fail(tapio_transport *t, int err)
{
    if (t->dead)
        return;
    if (t->kind == TAPIO__TLS)
        tapio__tls_abort(t, err);
    else
        force_close(t, err);
}

bool tapio_transport_is_closing(const tapio_transport *t) { return t->closing; }

void tapio_transport_pause_reading(tapio_transport *t)
{
    /* A write pipe reads only to hear its reader leave: keep doing so. */
    if (t->kind == TAPIO__TLS) {
        tapio__tls_pause_reading(t);
        return;
    }
    if (t->closing || (t->read_stop & READ_PAUSED_USER) ||
        t->kind == TAPIO__WRITE_PIPE)
        return;
    t->read_stop |= READ_PAUSED_USER;
    update_interest(t);
}

void tapio_transport_resume_reading(tapio_transport *t)
{
    if (t->kind == TAPIO__TLS) {
        tapio__tls_resume_reading(t);
        return;
    }
    if (t->closing || !(t->read_stop & READ_PAUSED_USER))
        return;
    t->read_stop &= ~READ_PAUSED_USER;
    update_interest(t);
}

bool tapio_transport_is_reading(const tapio_transport *t)
{
    if (t->kind == TAPIO__TLS)
        return tapio__tls_is_reading(t);
    return !(t->read_stop & READ_PAUSED_USER) && !t->closing;
}

size_t tapio_transport_get_write_buffer_size(const tapio_transport *t)
{
    if (t->kind == TAPIO__TLS)
        return tapio__tls_buffer_size(t);
    return buffered(t);
}

int tapio_transport_set_write_buffer_limits(tapio_transport *t, ssize_t high,
                                            ssize_t low)
{
    bool tls = t->kind == TAPIO__TLS;
    int err = tapio__flow_limits(high, low,
                                 tls ? TAPIO__TLS_HIGH_WATER
                                     : TAPIO_DEFAULT_HIGH_WATER,
                                 &t->high, &t->low);
    if (err)
        return err;
    if (tls)
        tapio__tls_limits_changed(t);
    else if (!t->dead)
        maybe_pause_protocol(t);
    return 0;
}

void tapio_transport_get_write_buffer_limits(const tapio_transport *t,
                                             size_t *low, size_t *high)
{
    if (low)
        *low = t->low;
    if (high)
        *high = t->high;
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

int tapio_transport_fd(const tapio_transport *t)
{
    return t->kind == TAPIO__TLS ? tapio__tls_fd(t) : t->io.fd;
}

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
    return copy_addr(&t->peer, t->peer_len, addr, len);
}

int tapio_transport_sockname(const tapio_transport *t,
                             struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_addr(&t->local, t->local_len, addr, len);
}

/* ---- creation --------------------------------------------------------- */

static void call_connection_made(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_transport *t = arg;
    t->made = true;
    if (t->proto && t->proto->connection_made)
        t->proto->connection_made(t, t->user);
    t->read_stop &= ~READ_NOT_STARTED;
    update_interest(t);
}

static void cache_addresses(tapio_transport *t)
{
    t->local_len = sizeof(t->local);
    if (getsockname(t->io.fd, (struct sockaddr *)&t->local, &t->local_len) < 0)
        t->local_len = 0;
    t->peer_len = sizeof(t->peer);
    if (getpeername(t->io.fd, (struct sockaddr *)&t->peer, &t->peer_len) < 0)
        t->peer_len = 0;
}

/* asyncio turns Nagle off on every TCP transport. */
static void set_nodelay(tapio_transport *t)
{
    int family = t->local.ss_family;
    if (family == AF_INET || family == AF_INET6) {
        int one = 1;
        setsockopt(t->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
    fatal_error(tapio__container_of(io, tapio_transport, io), err, NULL);
}

/* A transport's memory with its fields set; nothing attached yet. */
static tapio_transport *transport_alloc(tapio_loop *loop, int fd,
                                        enum tapio__stream_kind kind,
                                        const tapio_protocol *proto,
                                        void *user, size_t high)
{
    tapio_transport *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    tapio__io_init(&t->io, fd, on_io);
    t->io.refused = on_io_refused;
    tapio__list_init(&t->node);
    t->relay[0] = t->relay[1] = -1;
    t->loop = loop;
    t->kind = kind;
    t->proto = proto;
    t->user = user;
    t->refs = 1;
    t->high = high;
    t->low = high / 4;
    return t;
}

int tapio__transport_new(tapio_loop *loop, int fd,
                         enum tapio__stream_kind kind,
                         const tapio_protocol *proto, void *user,
                         tapio_server *server, tapio_transport **out)
{
    tapio_transport *t = transport_alloc(loop, fd, kind, proto, user,
                                         TAPIO_DEFAULT_HIGH_WATER);
    if (!t) {
        close(fd);
        return -ENOMEM;
    }
    t->read_stop = READ_NOT_STARTED;
    int err = tapio__io_attach(loop, &t->io);
    if (!err && !tapio_call_soon(loop, call_connection_made, t)) {
        tapio__io_detach(loop, &t->io);
        err = -ENOMEM;
    }
    if (err) {
        close(fd);
        free(t);
        return err;
    }
    cache_addresses(t);
    set_nodelay(t);
    if (kind == TAPIO__WRITE_PIPE && !watches_hangup(fd))
        t->read_stop |= READ_NEVER;
    tapio__list_push(&loop->transports, &t->node);
    t->server = server;
    *out = t;
    return 0;
}

tapio_transport *tapio__transport_new_face(tapio_loop *loop,
                                          struct tapio__tls *tls,
                                          const tapio_protocol *proto,
                                          void *user)
{
    tapio_transport *t = transport_alloc(loop, -1, TAPIO__TLS, proto, user,
                                         TAPIO__TLS_HIGH_WATER);
    if (!t)
        return NULL;
    t->tls = tls;
    tapio__list_push(&loop->transports, &t->node);
    return t;
}

void tapio__transport_lost(tapio_transport *t, int err)
{
    if (!t->lost_due)
        schedule_connection_lost(t, err);
}

void tapio__transport_drop(tapio_transport *t)
{
    if (t->dead)
        return;
    transport_release(t, false);
    tapio_transport_unref(t);
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
    t->relay[0] = pair[0];
    t->relay[1] = pair[1];
    return 0;
}

bool tapio__transport_started(const tapio_transport *t)
{
    return t->made;
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
