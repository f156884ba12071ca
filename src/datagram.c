/* Datagram transports (UDP, Unix datagram sockets): receiving several
 * datagrams per readiness event (or each one the backend received, on a
 * completion-based backend), a queue of datagrams the socket could not
 * take yet, flow control and the endpoint's lifetime. Mirrors asyncio's
 * _SelectorDatagramTransport. */
#include "internal.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Datagrams read per readiness event: enough to drain a busy socket in few
 * wakeups, few enough that one socket cannot starve the rest of the loop. */
#define READS_PER_EVENT 32

typedef struct queued {
    struct queued *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    size_t len;
    char data[];
} queued;

/* A datagram (or error) a completion-based backend received while reading
 * was paused, or behind others held: a read would have left it in the
 * socket until reading resumed. */
typedef struct held {
    struct held *next;
    ssize_t n; /* payload bytes, or -errno */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char data[];
} held;

struct tapio_datagram {
    tapio__io io;
    tapio__list node; /* in loop->datagrams while alive */
    tapio_loop *loop;
    const tapio_datagram_protocol *proto;
    void *user;
    unsigned refs;       /* the loop's (until connection_lost ran) + user's */
    bool lost_due;       /* connection_lost is scheduled or has run */
    bool started;        /* connection_made has run */
    bool closing;
    bool paused;         /* reading paused by the user */
    bool dead;
    bool connected;      /* the kernel socket is connected to `remote` */
    int lost_error;

    queued *head, *tail; /* datagrams the socket has not taken yet */
    size_t queued_bytes; /* payloads plus `overhead` per datagram */
    size_t overhead;
    tapio__flow flow;

    held *held_head, *held_tail;
    tapio_handle *held_call; /* delivering the held ones is scheduled */

    struct sockaddr_storage remote, local, peer;
    socklen_t remote_len, local_len, peer_len;
};

/* ---- lifetime -------------------------------------------------------- */

static void drop_queue(tapio_datagram *d)
{
    while (d->head) {
        queued *q = d->head;
        d->head = q->next;
        free(q);
    }
    d->tail = NULL;
    d->queued_bytes = 0;
}

static void drop_held(tapio_datagram *d)
{
    while (d->held_head) {
        held *h = d->held_head;
        d->held_head = h->next;
        free(h);
    }
    d->held_tail = NULL;
    if (d->held_call)
        tapio_handle_cancel(d->held_call);
    d->held_call = NULL;
}

void tapio_datagram_ref(tapio_datagram *d) { d->refs++; }

void tapio_datagram_unref(tapio_datagram *d)
{
    if (--d->refs == 0) {
        drop_queue(d);
        drop_held(d);
        free(d);
    }
}

static void release(tapio_datagram *d)
{
    tapio__io_detach(d->loop, &d->io);
    close(d->io.fd);
    d->io.fd = -1;
    d->dead = true;
    d->closing = true;
    d->lost_due = true;
    drop_queue(d);
    drop_held(d);
    tapio__list_remove(&d->node);
}

static void call_connection_lost(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_datagram *d = arg;
    if (d->proto && d->proto->connection_lost)
        d->proto->connection_lost(d, d->lost_error, d->user);
    release(d);
    tapio_datagram_unref(d);
}

static void schedule_connection_lost(tapio_datagram *d, int err)
{
    d->lost_due = true;
    d->lost_error = err;
    if (!tapio_call_soon(d->loop, call_connection_lost, d)) {
        tapio__report_error(d->loop, "scheduling connection_lost", -ENOMEM);
        call_connection_lost(d->loop, d);
    }
}

void tapio__datagrams_destroy_all(tapio_loop *loop)
{
    while (!tapio__list_empty(&loop->datagrams)) {
        tapio_datagram *d =
            tapio__container_of(loop->datagrams.next, tapio_datagram, node);
        release(d);
        tapio_datagram_unref(d);
    }
}

/* ---- interest and flow control ---------------------------------------- */

static void update_interest(tapio_datagram *d)
{
    unsigned want = 0;
    if (d->started && tapio_datagram_is_reading(d))
        want |= TAPIO__READ;
    if (d->head)
        want |= TAPIO__WRITE;
    if (want != d->io.want)
        tapio__io_set(d->loop, &d->io, want);
}

static void maybe_pause_protocol(tapio_datagram *d)
{
    if (!tapio__flow_pause(&d->flow, d->queued_bytes))
        return;
    if (d->proto && d->proto->pause_writing)
        d->proto->pause_writing(d, d->user);
}

static void maybe_resume_protocol(tapio_datagram *d)
{
    if (!tapio__flow_resume(&d->flow, d->queued_bytes))
        return;
    if (d->proto && d->proto->resume_writing)
        d->proto->resume_writing(d, d->user);
}

static void error_received(tapio_datagram *d, int err)
{
    if (d->proto && d->proto->error_received)
        d->proto->error_received(d, err, d->user);
}

/* ---- receiving ------------------------------------------------------- */

static void deliver(tapio_datagram *d, const char *data, size_t n,
                    const struct sockaddr *from, socklen_t fromlen)
{
    /* An unbound Unix sender has no address beyond its family. */
    if (fromlen <= sizeof(sa_family_t))
        fromlen = 0;
    if (d->proto && d->proto->datagram_received)
        d->proto->datagram_received(d, data, n, fromlen ? from : NULL,
                                    fromlen, d->user);
}

static void receive(tapio_datagram *d)
{
    /* datagram_received may pause or close: nothing more is read then. */
    for (int i = 0; i < READS_PER_EVENT && tapio_datagram_is_reading(d); i++) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(d->io.fd, d->loop->read_buf, TAPIO__READ_SIZE, 0,
                             (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno != EINTR) {
                /* ECONNREFUSED and friends: reported, the endpoint lives. */
                error_received(d, -errno);
                return;
            }
            continue;
        }
        deliver(d, d->loop->read_buf, (size_t)n, (struct sockaddr *)&from,
                fromlen);
    }
}

/* ---- receiving by completion ------------------------------------------- */

static void deliver_result(tapio_datagram *d, const char *data, ssize_t n,
                           const struct sockaddr *from, socklen_t fromlen)
{
    if (n < 0)
        error_received(d, (int)n); /* as a read's error: the endpoint lives */
    else
        deliver(d, data, (size_t)n, from, fromlen);
}

static void hold(tapio_datagram *d, const char *data, ssize_t n,
                 const struct sockaddr *from, socklen_t fromlen)
{
    size_t len = n > 0 ? (size_t)n : 0;
    held *h = malloc(sizeof(*h) + len);
    if (!h) { /* lost, as a datagram the socket had no room for */
        tapio__report_error(d->loop, "holding a received datagram", -ENOMEM);
        return;
    }
    h->next = NULL;
    h->n = n;
    h->addrlen = fromlen <= sizeof(h->addr) ? fromlen : 0;
    if (h->addrlen)
        memcpy(&h->addr, from, h->addrlen);
    if (len)
        memcpy(h->data, data, len);
    if (d->held_tail)
        d->held_tail->next = h;
    else
        d->held_head = h;
    d->held_tail = h;
}

/* Reading resumed: the held datagrams go first, in order, until reading
 * pauses again. Datagrams received meanwhile join them behind. */
static void deliver_held(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_datagram *d = arg;
    d->held_call = NULL;
    while (d->held_head && tapio_datagram_is_reading(d)) {
        held *h = d->held_head;
        d->held_head = h->next;
        if (!d->held_head)
            d->held_tail = NULL;
        deliver_result(d, h->data, h->n, (struct sockaddr *)&h->addr,
                       h->addrlen);
        free(h);
    }
}

static void schedule_held(tapio_datagram *d)
{
    if (!d->held_head || d->held_call || !tapio_datagram_is_reading(d))
        return;
    d->held_call = tapio_call_soon(d->loop, deliver_held, d);
    if (!d->held_call)
        tapio__report_error(d->loop, "scheduling held datagrams", -ENOMEM);
}

/* A datagram or an error the backend received (io->received_from). One
 * arriving once closing is dropped, as no read would have taken it; while
 * paused, the backend's request is being cancelled and what it took
 * before is held (a read would have left it in the socket). */
static void datagram_received_from(tapio_loop *loop, tapio__io *io,
                                   const char *data, ssize_t n,
                                   const struct sockaddr *from,
                                   socklen_t fromlen)
{
    (void)loop;
    tapio_datagram *d = tapio__container_of(io, tapio_datagram, io);
    if (d->closing)
        return;
    if (d->paused || d->held_head) {
        hold(d, data, n, from, fromlen);
        schedule_held(d);
        return;
    }
    deliver_result(d, data, n, from, fromlen);
}

/* ---- sending ------------------------------------------------------------ */

static ssize_t send_one(tapio_datagram *d, const void *data, size_t len,
                        const struct sockaddr *addr, socklen_t addrlen)
{
    ssize_t n;
    do
        n = d->connected ? send(d->io.fd, data, len, MSG_NOSIGNAL)
                         : sendto(d->io.fd, data, len, MSG_NOSIGNAL, addr,
                                  addrlen);
    while (n < 0 && errno == EINTR);
    return n;
}

static bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

static void flush_queue(tapio_datagram *d)
{
    while (d->head) {
        queued *q = d->head;
        ssize_t n = send_one(d, q->data, q->len, (struct sockaddr *)&q->addr,
                             q->addrlen);
        if (n < 0 && would_block(errno))
            break;
        d->head = q->next;
        if (!d->head)
            d->tail = NULL;
        d->queued_bytes -= q->len + d->overhead;
        int err = n < 0 ? -errno : 0;
        free(q);
        if (err) { /* like asyncio: that datagram is dropped and reported */
            error_received(d, err);
            break;
        }
    }
    maybe_resume_protocol(d);
    update_interest(d);
    if (!d->head && d->closing && !d->lost_due)
        schedule_connection_lost(d, 0);
}

static int enqueue(tapio_datagram *d, const void *data, size_t len,
                   const struct sockaddr *addr, socklen_t addrlen)
{
    queued *q = malloc(sizeof(*q) + len);
    if (!q)
        return -ENOMEM;
    q->next = NULL;
    q->len = len;
    q->addrlen = addrlen;
    if (addrlen)
        memcpy(&q->addr, addr, addrlen);
    if (len)
        memcpy(q->data, data, len);
    if (d->tail)
        d->tail->next = q;
    else
        d->head = q;
    d->tail = q;
    d->queued_bytes += len + d->overhead;
    update_interest(d);
    maybe_pause_protocol(d);
    return 0;
}

static bool same_unix_path(const struct sockaddr_un *a, socklen_t alen,
                           const struct sockaddr_un *b, socklen_t blen)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t an = alen > off ? alen - off : 0, bn = blen > off ? blen - off : 0;
    if (an && a->sun_path[0] != '\0') /* a path: up to its NUL, if any */
        an = strnlen(a->sun_path, an);
    if (bn && b->sun_path[0] != '\0')
        bn = strnlen(b->sun_path, bn);
    return an == bn && memcmp(a->sun_path, b->sun_path, an) == 0;
}

/* The same destination, however its length was measured (a Unix path with
 * or without its NUL, say). */
static bool same_address(const struct sockaddr *a, socklen_t alen,
                         const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->sa_family != b->ss_family)
        return false;
    switch (a->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    case AF_UNIX:
        return same_unix_path((const void *)a, alen, (const void *)b, blen);
    default:
        return alen == blen && memcmp(a, b, alen) == 0;
    }
}

int tapio_datagram_sendto(tapio_datagram *d, const void *data, size_t len,
                          const struct sockaddr *addr, socklen_t addrlen)
{
    if (d->remote_len) {
        if (addr && !same_address(addr, addrlen, &d->remote, d->remote_len))
            return -EISCONN;
        addr = (const struct sockaddr *)&d->remote;
        addrlen = d->remote_len;
    } else if (!addr) {
        return -EDESTADDRREQ;
    }
    if (d->lost_due) /* the end is due: asyncio drops such datagrams */
        return -EBADF;
    if (!d->head) {
        ssize_t n = send_one(d, data, len, addr, addrlen);
        if (n >= 0)
            return 0;
        if (!would_block(errno)) {
            /* asyncio reports it from inside sendto, too */
            error_received(d, -errno);
            return 0;
        }
    }
    return enqueue(d, data, len, addr, addrlen);
}

static void on_io(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)loop;
    tapio_datagram *d = tapio__container_of(io, tapio_datagram, io);
    if ((events & TAPIO__WRITE) && d->head)
        flush_queue(d);
    if ((events & TAPIO__READ) && tapio_datagram_is_reading(d))
        receive(d);
}

/* The backend cannot watch the socket: the endpoint ends with the error
 * rather than wait for datagrams that never come. */
static void on_io_refused(tapio_loop *loop, tapio__io *io, int err)
{
    (void)loop;
    tapio_datagram_fail(tapio__container_of(io, tapio_datagram, io), err);
}

/* ---- the DatagramTransport API ----------------------------------------- */

void tapio_datagram_close(tapio_datagram *d)
{
    if (d->closing)
        return;
    d->closing = true;
    update_interest(d);
    if (!d->head)
        schedule_connection_lost(d, 0);
}

void tapio_datagram_abort(tapio_datagram *d) { tapio_datagram_fail(d, 0); }

void tapio_datagram_fail(tapio_datagram *d, int err)
{
    if (d->dead || d->lost_due)
        return;
    drop_queue(d);
    d->closing = true;
    update_interest(d);
    schedule_connection_lost(d, err);
}

bool tapio_datagram_is_closing(const tapio_datagram *d) { return d->closing; }

/* As asyncio's: a no-op while closing or already paused. */
void tapio_datagram_pause_reading(tapio_datagram *d)
{
    if (!tapio_datagram_is_reading(d))
        return;
    d->paused = true;
    update_interest(d);
}

void tapio_datagram_resume_reading(tapio_datagram *d)
{
    if (d->closing || !d->paused)
        return;
    d->paused = false;
    update_interest(d);
    schedule_held(d);
}

bool tapio_datagram_is_reading(const tapio_datagram *d)
{
    return !d->closing && !d->paused;
}

size_t tapio_datagram_get_write_buffer_size(const tapio_datagram *d)
{
    return d->queued_bytes;
}

int tapio_datagram_set_queued_overhead(tapio_datagram *d, size_t bytes)
{
    if (d->head)
        return -EBUSY;
    d->overhead = bytes;
    return 0;
}

int tapio_datagram_set_write_buffer_limits(tapio_datagram *d, ssize_t high,
                                           ssize_t low)
{
    int err = tapio__flow_set(&d->flow, high, low);
    if (!err && !d->dead)
        maybe_pause_protocol(d);
    return err;
}

void tapio_datagram_get_write_buffer_limits(const tapio_datagram *d,
                                            size_t *low, size_t *high)
{
    if (low)
        *low = d->flow.low;
    if (high)
        *high = d->flow.high;
}

void tapio_datagram_set_protocol(tapio_datagram *d,
                                 const tapio_datagram_protocol *proto,
                                 void *user)
{
    d->proto = proto;
    d->user = user;
}

tapio_loop *tapio_datagram_loop(const tapio_datagram *d) { return d->loop; }

int tapio_datagram_fd(const tapio_datagram *d) { return d->io.fd; }

static int copy_address(const struct sockaddr_storage *src, socklen_t len,
                        struct sockaddr_storage *addr, socklen_t *out_len)
{
    if (!len)
        return -ENOTCONN;
    memcpy(addr, src, len);
    *out_len = len;
    return 0;
}

int tapio_datagram_sockname(const tapio_datagram *d,
                            struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_address(&d->local, d->local_len, addr, len);
}

int tapio_datagram_peername(const tapio_datagram *d,
                            struct sockaddr_storage *addr, socklen_t *len)
{
    return copy_address(&d->peer, d->peer_len, addr, len);
}

/* ---- creation --------------------------------------------------------- */

static void call_connection_made(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_datagram *d = arg;
    if (d->proto && d->proto->connection_made)
        d->proto->connection_made(d, d->user);
    d->started = true;
    update_interest(d);
}

static void cache_addresses(tapio_datagram *d)
{
    d->local_len = sizeof(d->local);
    if (getsockname(d->io.fd, (struct sockaddr *)&d->local, &d->local_len) < 0)
        d->local_len = 0;
    d->peer_len = sizeof(d->peer);
    if (getpeername(d->io.fd, (struct sockaddr *)&d->peer, &d->peer_len) < 0)
        d->peer_len = 0;
    d->connected = d->peer_len > 0;
}

int tapio_datagram_from_fd(tapio_loop *loop, int fd,
                           const struct sockaddr *remote, socklen_t remote_len,
                           const tapio_datagram_protocol *proto, void *user,
                           tapio_datagram **out)
{
    int err = remote_len > sizeof(struct sockaddr_storage) ? -EINVAL : 0;
    if (!err)
        err = tapio__set_nonblocking(fd);
    tapio_datagram *d = err ? NULL : calloc(1, sizeof(*d));
    if (!err && !d)
        err = -ENOMEM;
    if (!err) {
        tapio__io_init(&d->io, fd, on_io);
        d->io.refused = on_io_refused;
        d->io.received_from = datagram_received_from;
        err = tapio__io_attach(loop, &d->io);
    }
    if (!err && !tapio_call_soon(loop, call_connection_made, d)) {
        tapio__io_detach(loop, &d->io);
        err = -ENOMEM;
    }
    if (err) {
        free(d);
        close(fd);
        return err;
    }
    tapio__list_init(&d->node);
    tapio__list_push(&loop->datagrams, &d->node);
    d->loop = loop;
    d->proto = proto;
    d->user = user;
    d->refs = 1;
    tapio__flow_init(&d->flow, TAPIO_DEFAULT_HIGH_WATER, false);
    cache_addresses(d);
    if (remote && remote_len) {
        memcpy(&d->remote, remote, remote_len);
        d->remote_len = remote_len;
    } else if (d->connected) { /* a connected socket's peer is its remote */
        memcpy(&d->remote, &d->peer, d->peer_len);
        d->remote_len = d->peer_len;
    }
    if (out)
        *out = d;
    return 0;
}

/* ---- opening an endpoint ------------------------------------------------ */

/* A bound and/or connected datagram socket for one candidate. A stale
 * socket file at a Unix local path is removed first, as asyncio does. */
static int make_socket(const tapio_datagram_options *opts,
                       const tapio_datagram_candidate *c)
{
    int fd = tapio__socket(c->family, SOCK_DGRAM, c->protocol);
    if (fd < 0)
        return fd;
    int one = 1, err = 0;
    if (opts->reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        err = -errno;
    if (!err && opts->allow_broadcast &&
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0)
        err = -errno;
    if (!err && c->local && c->family == AF_UNIX)
        tapio__remove_stale_unix_socket(c->local, c->local_len);
    if (!err && c->local && bind(fd, c->local, c->local_len) < 0)
        err = -errno;
    /* With broadcast the remote address is only a default destination. */
    if (!err && c->remote && !opts->allow_broadcast &&
        connect(fd, c->remote, c->remote_len) < 0)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

int tapio_datagram_socket(const tapio_datagram_candidate *candidates,
                          size_t n, const tapio_datagram_options *opts,
                          size_t *chosen)
{
    static const tapio_datagram_options defaults;
    int first_err = -EADDRNOTAVAIL;
    for (size_t i = 0; i < n; i++) {
        int fd = make_socket(opts ? opts : &defaults, &candidates[i]);
        if (fd >= 0) {
            if (chosen)
                *chosen = i;
            return fd;
        }
        if (i == 0)
            first_err = fd;
    }
    return first_err;
}

static int resolve_inet(const char *host, const char *port, int family,
                        bool passive, struct addrinfo **out)
{
    *out = NULL;
    if (!host && !port)
        return 0;
    struct addrinfo hints = {0};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = getaddrinfo(host, port ? port : "0", &hints, out);
    if (rc == EAI_SYSTEM)
        return -errno;
    return rc ? TAPIO_ERR_EAI(rc) : 0;
}

static const struct addrinfo *match_family(const struct addrinfo *list,
                                           int family)
{
    for (; list; list = list->ai_next)
        if (list->ai_family == family)
            return list;
    return NULL;
}

/* asyncio pairs local and remote addresses by family, in the order the
 * families first appear, and tries each family in turn. */
static size_t pair_by_family(const struct addrinfo *local,
                             const struct addrinfo *remote,
                             tapio_datagram_candidate *out, size_t max)
{
    size_t n = 0;
    const struct addrinfo *families = local ? local : remote;
    for (const struct addrinfo *ai = families; ai && n < max; ai = ai->ai_next) {
        const struct addrinfo *l = local ? match_family(local, ai->ai_family)
                                         : NULL;
        const struct addrinfo *r = remote ? match_family(remote, ai->ai_family)
                                          : NULL;
        if ((local && !l) || (remote && !r) || match_family(families, ai->ai_family) != ai)
            continue; /* a family lacking one address, or one seen before */
        out[n++] = (tapio_datagram_candidate){
            ai->ai_family, ai->ai_protocol,
            l ? l->ai_addr : NULL, l ? l->ai_addrlen : 0,
            r ? r->ai_addr : NULL, r ? r->ai_addrlen : 0};
    }
    return n;
}

static int open_inet(const tapio_datagram_options *opts,
                     struct sockaddr_storage *chosen_remote,
                     socklen_t *chosen_remote_len)
{
    struct addrinfo *local, *remote;
    int err = resolve_inet(opts->local_host, opts->local_port, opts->family,
                           true, &local);
    if (!err)
        err = resolve_inet(opts->remote_host, opts->remote_port, opts->family,
                           false, &remote);
    if (err) {
        if (local)
            freeaddrinfo(local);
        return err;
    }
    tapio_datagram_candidate candidates[8];
    size_t chosen = 0;
    size_t n = pair_by_family(local, remote, candidates, 8);
    int fd = tapio_datagram_socket(candidates, n, opts, &chosen);
    if (fd >= 0 && candidates[chosen].remote) { /* the default destination */
        memcpy(chosen_remote, candidates[chosen].remote,
               candidates[chosen].remote_len);
        *chosen_remote_len = candidates[chosen].remote_len;
    }
    if (local)
        freeaddrinfo(local);
    if (remote)
        freeaddrinfo(remote);
    return fd;
}

static int open_unix(const tapio_datagram_options *opts,
                     struct sockaddr_storage *remote, socklen_t *remote_len)
{
    struct sockaddr_storage local;
    socklen_t local_len = 0;
    int err = 0;
    if (opts->local_host)
        err = tapio__unix_addr(opts->local_host, opts->local_len, &local,
                               &local_len);
    if (!err && opts->remote_host)
        err = tapio__unix_addr(opts->remote_host, opts->remote_len, remote,
                               remote_len);
    if (err)
        return err;
    tapio_datagram_candidate c = {
        AF_UNIX, 0, local_len ? (struct sockaddr *)&local : NULL, local_len,
        *remote_len ? (struct sockaddr *)remote : NULL, *remote_len};
    return tapio_datagram_socket(&c, 1, opts, NULL);
}

int tapio_datagram_open(tapio_loop *loop, const tapio_datagram_options *opts,
                        const tapio_datagram_protocol *proto, void *user,
                        tapio_datagram **out)
{
    if (!opts || (!opts->local_host && !opts->local_port &&
                  !opts->remote_host && !opts->remote_port))
        return -EINVAL; /* asyncio: "unexpected address family" */
    struct sockaddr_storage remote;
    socklen_t remote_len = 0;
    int fd = opts->family == AF_UNIX ? open_unix(opts, &remote, &remote_len)
                                     : open_inet(opts, &remote, &remote_len);
    if (fd < 0)
        return fd;
    return tapio_datagram_from_fd(loop, fd,
                                  remote_len ? (struct sockaddr *)&remote
                                             : NULL,
                                  remote_len, proto, user, out);
}
