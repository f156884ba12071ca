/*
 * test_datagram.c — datagram endpoints (asyncio's DatagramTransport and
 * DatagramProtocol) over UDP on 127.0.0.1 and ::1 and over Unix datagram
 * sockets.
 *
 * A `dgram` records what its endpoint reports and checks asyncio's ordering
 * on the way (connection_made once and first, nothing after
 * connection_lost). Raw sockets made here are closed at cleanup, after the
 * loop, so the harness's fd check still sees anything the library leaks.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define UDP4_MAX 65507   /* the largest IPv4 UDP payload */
#define QUEUED_SIZE 1000 /* payload of the datagrams queued on purpose */
#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

/* ------------------------------------------------------------ addresses */

typedef struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
} addr;

static const struct sockaddr *sa(const addr *a)
{
    return (const struct sockaddr *)&a->ss;
}

/* For an optional address (NULL: none). */
static const struct sockaddr *to_sa(const addr *to) { return to ? sa(to) : NULL; }
static socklen_t to_len(const addr *to) { return to ? to->len : 0; }

static addr fd_sockname(int fd)
{
    addr a = {.len = sizeof a.ss};
    CHECK(getsockname(fd, (struct sockaddr *)&a.ss, &a.len) == 0);
    return a;
}

/* 127.0.0.1 or ::1 at `port`. */
static addr loopback(int family, int port)
{
    addr a = {0};
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.len = sizeof *in;
    } else {
        CHECK_EQ_INT(family, AF_INET6);
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        in6->sin6_addr = in6addr_loopback;
        a.len = sizeof *in6;
    }
    return a;
}

/* A Unix address; len 0 means strlen(name) (a name starting with '\0' is abstract). */
static addr unix_addr(const char *name, size_t len)
{
    addr a = {0};
    struct sockaddr_un *un = (struct sockaddr_un *)&a.ss;
    if (len == 0)
        len = strlen(name);
    CHECK(len < sizeof un->sun_path);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, name, len);
    a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    return a;
}

static int addr_port(const addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    CHECK_EQ_INT(a->ss.ss_family, AF_INET6);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static bool addr_equal(const addr *a, const addr *b)
{
    if (a->len == 0 || b->len == 0)
        return a->len == b->len;
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    CHECK_EQ_INT(a->ss.ss_family, AF_UNIX);
    const char *pa = ((const struct sockaddr_un *)&a->ss)->sun_path;
    const char *pb = ((const struct sockaddr_un *)&b->ss)->sun_path;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t la = a->len - off, lb = b->len - off;
    if (la > 0 && pa[0] != '\0') { /* a pathname: its length may count the NUL */
        la = strnlen(pa, la);
        lb = strnlen(pb, lb);
    }
    return la == lb && memcmp(pa, pb, la) == 0;
}

static void unlink_and_free(void *path)
{
    unlink(path);
    free(path);
}

/* A fresh socket path under /tmp (with the pid in it), removed at cleanup. */
static const char *temp_unix_path(const char *tag)
{
    char *path = malloc(SUN_PATH_SIZE);
    CHECK(path != NULL);
    unix_path(path, SUN_PATH_SIZE, tag);
    unlink(path);
    at_cleanup(unlink_and_free, path);
    return path;
}

/* ------------------------------------------------- datagram payloads */

/*
 * What a receiver saw. A "numbered" stream carries its index in the first
 * 4 bytes and the pattern after it, so loss, reordering and damage show.
 */
typedef struct dlog {
    size_t count, total; /* datagrams and payload bytes */
    bytes last;          /* the last datagram */
    addr from;           /* and its sender (len 0: no address) */
    bool numbered;
} dlog;

static void dlog_add(dlog *l, const void *data, size_t len,
                     const struct sockaddr *from, socklen_t fromlen)
{
    if (l->numbered) {
        uint32_t seq;
        CHECK(len >= sizeof seq);
        memcpy(&seq, data, sizeof seq);
        CHECK_EQ_INT(seq, l->count);
        CHECK(pattern_check((const char *)data + sizeof seq, seq, len - sizeof seq));
    }
    l->count++;
    l->total += len;
    l->last.len = 0;
    if (len > 0)
        bytes_append(&l->last, data, len);
    CHECK(fromlen <= sizeof l->from.ss);
    l->from.len = fromlen;
    if (fromlen > 0)
        memcpy(&l->from.ss, from, fromlen);
}

/* Fill `buf` with numbered datagram `seq` of `len` (>= 4) bytes. */
static void numbered(unsigned char *buf, uint32_t seq, size_t len)
{
    memcpy(buf, &seq, sizeof seq);
    pattern_fill(buf + sizeof seq, seq, len - sizeof seq);
}

/* ------------------------------------------------------- raw sockets */

static void close_fd(void *fd) { close((int)(intptr_t)fd); }

/* A nonblocking datagram socket, bound to `at` unless NULL, closed at cleanup. */
static int raw_socket(int family, const addr *at)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    at_cleanup(close_fd, (void *)(intptr_t)fd);
    if (at)
        CHECK(bind(fd, sa(at), at->len) == 0);
    return fd;
}

/* A raw UDP socket on a free port of 127.0.0.1 or ::1. */
static int raw_udp(int family)
{
    addr a = loopback(family, 0);
    return raw_socket(family, &a);
}

static void raw_send(int fd, const void *data, size_t len, const addr *to)
{
    CHECK_EQ_INT(sendto(fd, data, len, 0, sa(to), to->len), len);
}

/* A UDP port of 127.0.0.1 on which nothing listens (now). */
static int closed_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    addr a = loopback(AF_INET, 0);
    CHECK(bind(fd, sa(&a), a.len) == 0);
    a = fd_sockname(fd);
    close(fd);
    return addr_port(&a);
}

static int sockopt(int fd, int option)
{
    int v = -1;
    socklen_t len = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, option, &v, &len) == 0);
    return v;
}

/* Room for bursts in the kernel's receive queue (FORCE passes rmem_max as root). */
static void raise_rcvbuf(int fd)
{
    int size = 4 * 1024 * 1024;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0);
}

/* Reads a raw socket from a loop watcher into a dlog. */
typedef struct raw_rx {
    dlog log;
} raw_rx;

static void raw_on_readable(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    static unsigned char buf[UDP4_MAX + 1];
    raw_rx *r = arg;
    for (;;) {
        addr from = {.len = sizeof from.ss};
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_TRUNC,
                             (struct sockaddr *)&from.ss, &from.len);
        if (n < 0 && errno == EAGAIN)
            return;
        CHECK(n >= 0 && (size_t)n < sizeof buf);
        dlog_add(&r->log, buf, (size_t)n, sa(&from), from.len);
    }
}

static void raw_rx_free(void *arg)
{
    raw_rx *r = arg;
    bytes_free(&r->log.last);
    free(r);
}

/* Start reading `fd` in the loop (until the loop closes). */
static raw_rx *raw_listen(tapio_loop *loop, int fd, bool numbered_stream)
{
    raw_rx *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    at_cleanup(raw_rx_free, r);
    r->log.numbered = numbered_stream;
    CHECK_OK(tapio_add_reader(loop, fd, raw_on_readable, r));
    return r;
}

/* ------------------------------------------- dgram: a recording protocol */

typedef struct dgram dgram;
struct dgram {
    tapio_datagram *d; /* referenced from connection_made until cleanup */
    int made, lost, lost_err;
    int errors, last_err; /* error_received */
    int pauses, resumes;
    bool paused;
    bool pause_on_datagram; /* datagram_received pauses reading */
    size_t size_at_resume, size_at_lost; /* write buffer size then */
    dlog log;
};

static void dg_on_made(tapio_datagram *d, void *user)
{
    dgram *g = user;
    CHECK_EQ_INT(g->made, 0);
    CHECK_EQ_INT(g->lost, 0);
    g->made++;
    tapio_datagram_ref(d);
    g->d = d;
}

/* Every callback but connection_made: between it and connection_lost. */
static dgram *dg_live(tapio_datagram *d, void *user)
{
    dgram *g = user;
    CHECK(d == g->d);
    CHECK_EQ_INT(g->made, 1);
    CHECK_EQ_INT(g->lost, 0);
    return g;
}

static void dg_on_datagram(tapio_datagram *d, const void *data, size_t len,
                           const struct sockaddr *from, socklen_t fromlen,
                           void *user)
{
    dgram *g = dg_live(d, user);
    dlog_add(&g->log, data, len, from, fromlen);
    if (g->pause_on_datagram)
        tapio_datagram_pause_reading(d);
}

static void dg_on_error(tapio_datagram *d, int err, void *user)
{
    dgram *g = dg_live(d, user);
    CHECK(err < 0);
    g->errors++;
    g->last_err = err;
}

static void dg_on_lost(tapio_datagram *d, int err, void *user)
{
    dgram *g = dg_live(d, user);
    g->lost++;
    g->lost_err = err;
    g->size_at_lost = tapio_datagram_get_write_buffer_size(d);
}

static void dg_on_pause(tapio_datagram *d, void *user)
{
    dgram *g = dg_live(d, user);
    CHECK(!g->paused);
    g->paused = true;
    g->pauses++;
}

static void dg_on_resume(tapio_datagram *d, void *user)
{
    dgram *g = dg_live(d, user);
    CHECK(g->paused);
    g->paused = false;
    g->resumes++;
    g->size_at_resume = tapio_datagram_get_write_buffer_size(d);
}

static const tapio_datagram_protocol dgram_protocol = {
    .connection_made = dg_on_made,
    .datagram_received = dg_on_datagram,
    .error_received = dg_on_error,
    .connection_lost = dg_on_lost,
    .pause_writing = dg_on_pause,
    .resume_writing = dg_on_resume,
};

/* After the loop closed: a reference outlives the endpoint, as for streams. */
static void dgram_free(void *arg)
{
    dgram *g = arg;
    if (g->d)
        tapio_datagram_unref(g->d);
    bytes_free(&g->log.last);
    free(g);
}

static dgram *dgram_new(void)
{
    dgram *g = calloc(1, sizeof *g);
    CHECK(g != NULL);
    at_cleanup(dgram_free, g);
    return g;
}

/* Wait for connection_made of the endpoint `d` that `g` was given to. */
static dgram *dg_wait_made(tapio_loop *loop, dgram *g, tapio_datagram *d)
{
    CHECK(d != NULL);
    CHECK_EQ_INT(g->made, 0); /* connection_made comes from the loop */
    RUN_UNTIL(loop, g->made, 5);
    CHECK(g->d == d);
    CHECK(tapio_datagram_loop(d) == loop);
    return g;
}

static dgram *dg_open(tapio_loop *loop, const tapio_datagram_options *o)
{
    dgram *g = dgram_new();
    tapio_datagram *d = NULL;
    CHECK_OK(tapio_datagram_open(loop, o, &dgram_protocol, g, &d));
    return dg_wait_made(loop, g, d);
}

static dgram *dg_wrap(tapio_loop *loop, int fd, const addr *remote)
{
    dgram *g = dgram_new();
    tapio_datagram *d = NULL;
    CHECK_OK(tapio_datagram_from_fd(loop, fd, to_sa(remote), to_len(remote),
                                    &dgram_protocol, g, &d));
    return dg_wait_made(loop, g, d);
}

/* An unconnected endpoint on a free port of `host`. */
static dgram *dg_bind(tapio_loop *loop, const char *host)
{
    tapio_datagram_options o = {.local_host = host, .local_port = "0"};
    return dg_open(loop, &o);
}

/* An endpoint connected to the inet address `to` (remote_host/remote_port). */
static dgram *dg_connect(tapio_loop *loop, const addr *to)
{
    char host[INET6_ADDRSTRLEN], port[8];
    const void *ip = to->ss.ss_family == AF_INET
        ? (const void *)&((const struct sockaddr_in *)&to->ss)->sin_addr
        : (const void *)&((const struct sockaddr_in6 *)&to->ss)->sin6_addr;
    CHECK(inet_ntop(to->ss.ss_family, ip, host, sizeof host) != NULL);
    snprintf(port, sizeof port, "%d", addr_port(to));
    tapio_datagram_options o = {.remote_host = host, .remote_port = port};
    return dg_open(loop, &o);
}

static addr dg_sockname(const dgram *g)
{
    addr a = {.len = sizeof a.ss};
    CHECK_OK(tapio_datagram_sockname(g->d, &a.ss, &a.len));
    /* The endpoint's view agrees with the socket's. */
    addr real = fd_sockname(tapio_datagram_fd(g->d));
    CHECK(addr_equal(&a, &real));
    return a;
}

static addr dg_peername(const dgram *g)
{
    addr a = {.len = sizeof a.ss};
    CHECK_OK(tapio_datagram_peername(g->d, &a.ss, &a.len));
    return a;
}

/* A sendto that must succeed (a macro, so that a failure names its line). */
#define DG_SEND(g, data, len, to)                                          \
    CHECK_OK(tapio_datagram_sendto((g)->d, (data), (len), to_sa(to), to_len(to)))

static void dg_send_numbered(const dgram *g, uint32_t seq, size_t len, const addr *to)
{
    unsigned char buf[UDP4_MAX];
    CHECK(len <= sizeof buf);
    numbered(buf, seq, len);
    DG_SEND(g, buf, len, to);
}

static void check_last(const dlog *l, const void *data, size_t len)
{
    CHECK_EQ_INT(l->last.len, len);
    if (len > 0)
        CHECK_MEM_EQ(l->last.p, data, len);
}

/*
 * `raw` sends "ping" to the endpoint at `at`: it arrives from raw's address;
 * the endpoint answers there with sendto(addr), from `at`.
 */
static void ping_pong(tapio_loop *loop, dgram *g, int raw, const addr *at)
{
    addr raw_addr = fd_sockname(raw);
    size_t before = g->log.count;
    raw_send(raw, "ping", 4, at);
    RUN_UNTIL(loop, g->log.count == before + 1, 5);
    check_last(&g->log, "ping", 4);
    CHECK(addr_equal(&g->log.from, &raw_addr));

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, "pong", 4, &g->log.from);
    RUN_UNTIL(loop, r->log.count == 1, 5);
    CHECK(tapio_remove_reader(loop, raw));
    check_last(&r->log, "pong", 4);
    CHECK(addr_equal(&r->log.from, at));
}

/* An unconnected endpoint on `host` exchanges datagrams with a raw socket. */
static void check_unconnected(int family, const char *host)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, host);
    addr me = dg_sockname(g);
    addr want = loopback(family, addr_port(&me));
    CHECK(addr_port(&me) > 0);
    CHECK(addr_equal(&me, &want));
    addr peer = {.len = sizeof peer.ss};
    CHECK_ERR(tapio_datagram_peername(g->d, &peer.ss, &peer.len), -ENOTCONN);
    ping_pong(loop, g, raw_udp(family), &me);
    CHECK_EQ_INT(g->errors, 0);
}

/*
 * An endpoint connected to a raw socket sends with addr NULL or the remote
 * address itself, refuses any other address, and receives from its peer.
 */
static void check_connected(int family)
{
    tapio_loop *loop = test_loop();
    int raw = raw_udp(family);
    addr peer = fd_sockname(raw);
    dgram *g = dg_connect(loop, &peer);
    addr got = dg_peername(g);
    CHECK(addr_equal(&got, &peer));
    addr me = dg_sockname(g);
    CHECK(addr_port(&me) > 0);

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, "one", 3, NULL);
    DG_SEND(g, "two", 3, &peer);
    addr elsewhere = loopback(family, closed_udp_port());
    CHECK_ERR(tapio_datagram_sendto(g->d, "x", 1, sa(&elsewhere), elsewhere.len),
              -EISCONN);
    RUN_UNTIL(loop, r->log.count == 2, 5);
    run_for(loop, 0.02); /* the refused one never leaves */
    CHECK_EQ_INT(r->log.count, 2);
    check_last(&r->log, "two", 3);
    CHECK(addr_equal(&r->log.from, &me));

    raw_send(raw, "back", 4, &me);
    RUN_UNTIL(loop, g->log.count == 1, 5);
    check_last(&g->log, "back", 4);
    CHECK(addr_equal(&g->log.from, &peer));
    /* Answering the sender's address is sending to the remote one. */
    addr sender = g->log.from;
    DG_SEND(g, "again", 5, &sender);
    RUN_UNTIL(loop, r->log.count == 3, 5);
    check_last(&r->log, "again", 5);
    CHECK_EQ_INT(g->errors, 0);
}

/* ---------------------------------------------------------------- UDP */

TEST(datagram_unconnected_receives_and_answers)
{
    check_unconnected(AF_INET, "127.0.0.1");
}

TEST(datagram_connected_sends_to_its_remote_only)
{
    check_connected(AF_INET);
}

TEST(datagram_sendto_without_address_when_unconnected_fails)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    CHECK_ERR(tapio_datagram_sendto(g->d, "x", 1, NULL, 0), -EDESTADDRREQ);
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->errors, 0); /* a refused call reports nothing later */
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 0);
}

TEST(datagram_over_ipv6_loopback)
{
    if (!ipv6_loopback_available()) {
        printf("note: ::1 unavailable here; IPv6 checks not run\n");
        return;
    }
    check_unconnected(AF_INET6, "::1");
    check_connected(AF_INET6);
}

TEST(datagram_family_option_picks_the_address_family)
{
    tapio_loop *loop = test_loop();
    /* "localhost" may resolve to ::1 and 127.0.0.1; family decides. */
    tapio_datagram_options o = {.family = AF_INET, .local_host = "localhost",
                                .local_port = "0"};
    dgram *g = dg_open(loop, &o);
    addr me = dg_sockname(g);
    CHECK_EQ_INT(me.ss.ss_family, AF_INET);
    if (ipv6_loopback_available()) {
        o.family = AF_INET6;
        o.local_host = "::1";
        g = dg_open(loop, &o);
        me = dg_sockname(g);
        CHECK_EQ_INT(me.ss.ss_family, AF_INET6);
    }
}

/* Empty datagrams are datagrams: each one arrives, as itself. */
TEST(datagram_of_zero_bytes_both_ways)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    int raw = raw_udp(AF_INET);
    addr me = dg_sockname(g), raw_addr = fd_sockname(raw);
    raw_send(raw, "", 0, &me);
    RUN_UNTIL(loop, g->log.count == 1, 5);
    check_last(&g->log, "", 0);
    CHECK(addr_equal(&g->log.from, &raw_addr));

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, "", 0, &raw_addr);
    DG_SEND(g, "", 0, &raw_addr);
    RUN_UNTIL(loop, r->log.count == 2, 5);
    CHECK_EQ_INT(r->log.total, 0);
    CHECK(addr_equal(&r->log.from, &me));
}

TEST(datagram_of_65507_bytes_both_ways)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    int raw = raw_udp(AF_INET);
    addr me = dg_sockname(g), raw_addr = fd_sockname(raw);
    unsigned char *data = pattern_new(UDP4_MAX);
    raw_send(raw, data, UDP4_MAX, &me);
    RUN_UNTIL(loop, g->log.count == 1, 5);
    check_last(&g->log, data, UDP4_MAX);

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, data, UDP4_MAX, &raw_addr);
    RUN_UNTIL(loop, r->log.count == 1, 5);
    check_last(&r->log, data, UDP4_MAX);
    CHECK_EQ_INT(g->errors, 0);
    free(data);
}

/* A failing send (one byte over the IPv4 limit) is error_received, not fatal. */
TEST(datagram_send_error_goes_to_error_received)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    int raw = raw_udp(AF_INET);
    addr raw_addr = fd_sockname(raw);
    unsigned char *data = pattern_new(UDP4_MAX + 1);
    DG_SEND(g, data, UDP4_MAX + 1, &raw_addr);
    CHECK_EQ_INT(g->errors, 1); /* from inside sendto, as asyncio */
    CHECK_ERR(g->last_err, -EMSGSIZE);
    CHECK(!tapio_datagram_is_closing(g->d));
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 0);

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, data, UDP4_MAX, &raw_addr);
    RUN_UNTIL(loop, r->log.count == 1, 5);
    check_last(&r->log, data, UDP4_MAX);
    CHECK_EQ_INT(g->lost, 0);
    free(data);
}

/*
 * The kernel turns the peer's ICMP port-unreachable into ECONNREFUSED on the
 * connected socket's next send or receive; keep sending until it shows.
 */
TEST(datagram_error_received_on_connection_refused)
{
    tapio_loop *loop = test_loop();
    addr nobody = loopback(AF_INET, closed_udp_port());
    dgram *g = dg_connect(loop, &nobody);
    for (int i = 0; i < 50 && g->errors == 0; i++) {
        DG_SEND(g, "anyone?", 7, NULL);
        run_for(loop, 0.02);
    }
    CHECK(g->errors >= 1);
    CHECK_ERR(g->last_err, -ECONNREFUSED);
    /* The endpoint stays open and usable. */
    CHECK(!tapio_datagram_is_closing(g->d));
    DG_SEND(g, "still", 5, NULL);
    tapio_datagram_close(g->d);
    RUN_UNTIL(loop, g->lost, 5);
    CHECK_EQ_INT(g->lost_err, 0);
}

/* Two endpoints on one loop: 10,000 numbered datagrams, none lost, in order. */
TEST(datagram_burst_of_10000_arrives_complete_and_in_order)
{
    enum { TOTAL = 10000, CHUNK = 250 };
    tapio_loop *loop = test_loop();
    dgram *rx = dg_bind(loop, "127.0.0.1");
    rx->log.numbered = true;
    raise_rcvbuf(tapio_datagram_fd(rx->d));
    addr rx_addr = dg_sockname(rx);
    dgram *tx = dg_connect(loop, &rx_addr);
    size_t bytes_sent = 0;
    for (uint32_t seq = 0; seq < TOTAL;) {
        /* UDP drops what the receiver has no room for: let it keep up. */
        for (int i = 0; i < CHUNK; i++, seq++) {
            size_t len = 4 + seq % 300;
            dg_send_numbered(tx, seq, len, NULL);
            bytes_sent += len;
        }
        RUN_UNTIL(loop, rx->log.count == seq, 10);
    }
    CHECK_EQ_INT(rx->log.total, bytes_sent);
    CHECK_EQ_INT(tx->errors + rx->errors, 0);
}

/* The harness has no "per readiness event" hook: a call_soon chain ticks
 * once per loop iteration and measures the datagrams delivered in between. */
typedef struct ticker {
    const dgram *g;
    size_t target, seen, max_gap;
} ticker;

static void tick(tapio_loop *loop, void *arg)
{
    ticker *k = arg;
    size_t gap = k->g->log.count - k->seen;
    if (gap > k->max_gap)
        k->max_gap = gap;
    k->seen = k->g->log.count;
    if (k->seen < k->target)
        CHECK(tapio_call_soon(loop, tick, k) != NULL);
}

/* Several datagrams per readiness event, but one busy socket cannot starve
 * the loop's other callbacks. */
TEST(datagram_reads_several_per_event_but_bounded)
{
    enum { N = 1000 };
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    g->log.numbered = true;
    raise_rcvbuf(tapio_datagram_fd(g->d));
    addr me = dg_sockname(g);
    int raw = raw_udp(AF_INET);
    unsigned char buf[64];
    for (uint32_t seq = 0; seq < N; seq++) { /* all queued before reading */
        numbered(buf, seq, sizeof buf);
        raw_send(raw, buf, sizeof buf, &me);
    }
    ticker k = {.g = g, .target = N};
    CHECK(tapio_call_soon(loop, tick, &k) != NULL);
    RUN_UNTIL(loop, k.seen == N, 10);
    CHECK(k.max_gap > 1);
    CHECK(k.max_gap < N);
}

TEST(datagram_reuse_port_shares_a_port)
{
    tapio_loop *loop = test_loop();
    tapio_datagram_options o = {.local_host = "127.0.0.1", .local_port = "0",
                                .reuse_port = true};
    dgram *a = dg_open(loop, &o);
    addr at = dg_sockname(a);
    char port[8];
    snprintf(port, sizeof port, "%d", addr_port(&at));
    o.local_port = port;
    dgram *b = dg_open(loop, &o);
    CHECK_EQ_INT(sockopt(tapio_datagram_fd(a->d), SO_REUSEPORT), 1);
    CHECK_EQ_INT(sockopt(tapio_datagram_fd(b->d), SO_REUSEPORT), 1);
    raw_send(raw_udp(AF_INET), "hi", 2, &at);
    RUN_UNTIL(loop, a->log.count + b->log.count == 1, 5);

    /* Without reuse_port the port is taken; a failed open calls nothing. */
    o.reuse_port = false;
    dgram *c = dgram_new();
    tapio_datagram *d = NULL;
    CHECK_ERR(tapio_datagram_open(loop, &o, &dgram_protocol, c, &d), -EADDRINUSE);
    run_for(loop, 0.02);
    CHECK_EQ_INT(c->made, 0);
}

/* allow_broadcast sets SO_BROADCAST and keeps the socket unconnected: the
 * remote address is only the default destination. */
TEST(datagram_allow_broadcast_sets_so_broadcast)
{
    tapio_loop *loop = test_loop();
    dgram *plain = dg_bind(loop, "127.0.0.1");
    CHECK_EQ_INT(sockopt(tapio_datagram_fd(plain->d), SO_BROADCAST), 0);

    int raw = raw_udp(AF_INET);
    addr peer = fd_sockname(raw);
    char port[8];
    snprintf(port, sizeof port, "%d", addr_port(&peer));
    tapio_datagram_options o = {.local_host = "127.0.0.1", .local_port = "0",
                                .remote_host = "127.0.0.1", .remote_port = port,
                                .allow_broadcast = true};
    dgram *g = dg_open(loop, &o);
    int fd = tapio_datagram_fd(g->d);
    CHECK_EQ_INT(sockopt(fd, SO_BROADCAST), 1);
    addr none = {.len = sizeof none.ss};
    CHECK(getpeername(fd, (struct sockaddr *)&none.ss, &none.len) != 0);
    CHECK_ERR(tapio_datagram_peername(g->d, &none.ss, &none.len), -ENOTCONN);

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, "all", 3, NULL);
    addr elsewhere = loopback(AF_INET, closed_udp_port());
    CHECK_ERR(tapio_datagram_sendto(g->d, "x", 1, sa(&elsewhere), elsewhere.len),
              -EISCONN);
    RUN_UNTIL(loop, r->log.count == 1, 5);
    check_last(&r->log, "all", 3);
}

/* ----------------------------------------------------------- from_fd */

/* A socket the caller made (blocking, even): the endpoint owns it. */
TEST(datagram_from_fd_without_remote)
{
    tapio_loop *loop = test_loop();
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    addr at = loopback(AF_INET, 0);
    CHECK(bind(fd, sa(&at), at.len) == 0);
    at = fd_sockname(fd);
    dgram *g = dg_wrap(loop, fd, NULL);
    CHECK_EQ_INT(tapio_datagram_fd(g->d), fd);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK); /* as asyncio's setblocking(False) */
    addr me = dg_sockname(g);
    CHECK(addr_equal(&me, &at));
    CHECK_ERR(tapio_datagram_sendto(g->d, "x", 1, NULL, 0), -EDESTADDRREQ);
    ping_pong(loop, g, raw_udp(AF_INET), &me);
}

TEST(datagram_from_fd_with_remote_address)
{
    tapio_loop *loop = test_loop();
    int raw = raw_udp(AF_INET);
    addr peer = fd_sockname(raw);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    addr at = loopback(AF_INET, 0);
    CHECK(bind(fd, sa(&at), at.len) == 0);
    dgram *g = dg_wrap(loop, fd, &peer);

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, "default", 7, NULL);
    DG_SEND(g, "same", 4, &peer);
    addr elsewhere = loopback(AF_INET, closed_udp_port());
    CHECK_ERR(tapio_datagram_sendto(g->d, "x", 1, sa(&elsewhere), elsewhere.len),
              -EISCONN);
    RUN_UNTIL(loop, r->log.count == 2, 5);
    check_last(&r->log, "same", 4);
    addr me = dg_sockname(g);
    CHECK(addr_equal(&r->log.from, &me));
}

/* asyncio sends on a connected socket given as sock= with addr None (it
 * uses send() whenever the socket has a peer). */
TEST(datagram_from_fd_of_a_connected_socket_sends_to_its_peer)
{
    tapio_loop *loop = test_loop();
    int raw = raw_udp(AF_INET);
    addr peer = fd_sockname(raw);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK(connect(fd, sa(&peer), peer.len) == 0);
    dgram *g = dg_wrap(loop, fd, NULL);
    addr got = dg_peername(g);
    CHECK(addr_equal(&got, &peer));

    raw_rx *r = raw_listen(loop, raw, false);
    DG_SEND(g, "hello", 5, NULL);
    RUN_UNTIL(loop, r->log.count == 1, 5);
    check_last(&r->log, "hello", 5);
}

/* -------------------------------------------------------- Unix datagram */

TEST(datagram_unix_bound_path)
{
    tapio_loop *loop = test_loop();
    const char *path = temp_unix_path("dgram");
    tapio_datagram_options o = {.family = AF_UNIX, .local_host = path};
    dgram *g = dg_open(loop, &o);
    addr me = dg_sockname(g), want = unix_addr(path, 0);
    CHECK(addr_equal(&me, &want));
    addr raw_at = unix_addr(temp_unix_path("dgram-raw"), 0);
    ping_pong(loop, g, raw_socket(AF_UNIX, &raw_at), &want);
}

/* asyncio removes a stale socket file before binding a Unix datagram endpoint. */
TEST(datagram_unix_bind_replaces_a_stale_socket_file)
{
    tapio_loop *loop = test_loop();
    const char *path = temp_unix_path("stale");
    addr at = unix_addr(path, 0);
    int old = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(old >= 0);
    CHECK(bind(old, sa(&at), at.len) == 0);
    close(old); /* the file stays behind */
    CHECK(access(path, F_OK) == 0);
    tapio_datagram_options o = {.family = AF_UNIX, .local_host = path};
    dgram *g = dg_open(loop, &o);
    addr raw_at = unix_addr(temp_unix_path("stale-raw"), 0);
    ping_pong(loop, g, raw_socket(AF_UNIX, &raw_at), &at);
}

/* A sender without an address (an unbound Unix socket) gives addrlen 0. */
TEST(datagram_unix_sender_without_address)
{
    tapio_loop *loop = test_loop();
    const char *path = temp_unix_path("anon");
    tapio_datagram_options o = {.family = AF_UNIX, .local_host = path};
    dgram *g = dg_open(loop, &o);
    addr me = unix_addr(path, 0);
    raw_send(raw_socket(AF_UNIX, NULL), "who", 3, &me);
    RUN_UNTIL(loop, g->log.count == 1, 5);
    check_last(&g->log, "who", 3);
    CHECK_EQ_INT(g->log.from.len, 0);
}

/* "\0name" with an explicit length: a Linux abstract socket, NUL and all. */
TEST(datagram_unix_abstract_name)
{
    tapio_loop *loop = test_loop();
    char name[64];
    name[0] = '\0';
    snprintf(name + 1, sizeof name - 1, "tapio-test-%d-abstract", (int)getpid());
    size_t len = 1 + strlen(name + 1);
    tapio_datagram_options o = {.family = AF_UNIX, .local_host = name,
                                .local_len = len};
    dgram *g = dg_open(loop, &o);
    addr me = dg_sockname(g), want = unix_addr(name, len);
    CHECK_EQ_INT(me.len, want.len);
    CHECK(addr_equal(&me, &want));

    name[1] = 'T'; /* another abstract name for the raw socket */
    addr raw_at = unix_addr(name, len);
    ping_pong(loop, g, raw_socket(AF_UNIX, &raw_at), &want);
}

/* remote_host on AF_UNIX connects: sendto(NULL) reaches the bound path. */
TEST(datagram_unix_connected_endpoint)
{
    tapio_loop *loop = test_loop();
    const char *path = temp_unix_path("target");
    addr target = unix_addr(path, 0);
    raw_rx *r = raw_listen(loop, raw_socket(AF_UNIX, &target), false);
    tapio_datagram_options o = {.family = AF_UNIX, .remote_host = path};
    dgram *g = dg_open(loop, &o);
    addr peer = dg_peername(g);
    CHECK(addr_equal(&peer, &target));
    DG_SEND(g, "to you", 6, NULL);
    RUN_UNTIL(loop, r->log.count == 1, 5);
    check_last(&r->log, "to you", 6);
    CHECK_EQ_INT(r->log.from.len, 0); /* the endpoint itself is unbound */
    /* The same path measured as SUN_LEN does (no NUL) is the same remote. */
    DG_SEND(g, "and you", 7, &target);
    RUN_UNTIL(loop, r->log.count == 2, 5);
    check_last(&r->log, "and you", 7);
}

/* ------------------------------------------------- queueing and closing */

/*
 * An endpoint connected to a Unix datagram socket that does not read yet:
 * the receiver's queue is short (net.unix.max_dgram_qlen) and the sender's
 * buffer tiny, so sends soon queue in the endpoint.
 */
static dgram *dg_to_idle_unix_peer(tapio_loop *loop, int *peer)
{
    const char *path = temp_unix_path("idle");
    addr at = unix_addr(path, 0);
    *peer = raw_socket(AF_UNIX, &at);
    tapio_datagram_options o = {.family = AF_UNIX, .remote_host = path};
    dgram *g = dg_open(loop, &o);
    int small = 1; /* the kernel rounds it up to its minimum */
    CHECK(setsockopt(tapio_datagram_fd(g->d), SOL_SOCKET, SO_SNDBUF, &small,
                     sizeof small) == 0);
    return g;
}

/* Send numbered datagrams from *seq on until exactly one stays queued. */
static void send_until_queued(dgram *g, uint32_t *seq)
{
    while (tapio_datagram_get_write_buffer_size(g->d) == 0) {
        CHECK(*seq < 10000);
        dg_send_numbered(g, (*seq)++, QUEUED_SIZE, NULL);
    }
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), QUEUED_SIZE);
}

/* Queue `n` more; the write buffer size counts their payload bytes. */
static void queue_more(dgram *g, uint32_t *seq, int n)
{
    for (int i = 0; i < n; i++) {
        size_t before = tapio_datagram_get_write_buffer_size(g->d);
        dg_send_numbered(g, (*seq)++, QUEUED_SIZE, NULL);
        CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), before + QUEUED_SIZE);
    }
}

/* Behind a queue, sendto queues even if the socket could take the datagram
 * now: datagrams leave in order. */
TEST(datagram_sendto_queues_behind_queued_datagrams)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *g = dg_to_idle_unix_peer(loop, &peer);
    uint32_t seq = 0;
    send_until_queued(g, &seq);
    raw_rx *r = raw_listen(loop, peer, true);
    raw_on_readable(loop, peer, r); /* room in the peer, the loop not run */
    CHECK(r->log.count > 0);
    queue_more(g, &seq, 1);
    RUN_UNTIL(loop, r->log.count == seq, 5);
}

/* connection_lost waits until the queue went out; as in asyncio, a sendto
 * while close() waits joins the queue. */
TEST(datagram_close_flushes_queued_datagrams_first)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *g = dg_to_idle_unix_peer(loop, &peer);
    uint32_t seq = 0;
    send_until_queued(g, &seq);
    queue_more(g, &seq, 20);

    tapio_datagram_close(g->d);
    CHECK(tapio_datagram_is_closing(g->d));
    queue_more(g, &seq, 1);
    run_for(loop, 0.05); /* the peer does not read: nothing can flush */
    CHECK_EQ_INT(g->lost, 0);
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 22 * QUEUED_SIZE);

    raw_rx *r = raw_listen(loop, peer, true);
    RUN_UNTIL(loop, g->lost, 10);
    CHECK_EQ_INT(g->lost_err, 0);
    CHECK_EQ_INT(g->size_at_lost, 0);
    RUN_UNTIL(loop, r->log.count == seq, 5);
    run_for(loop, 0.02);
    CHECK_EQ_INT(r->log.count, seq);
    CHECK_EQ_INT(tapio_datagram_fd(g->d), -1);
}

/* A per-datagram overhead (asyncio 3.13's header count) is added when a
 * datagram queues and taken off when it leaves; it cannot change under a
 * queue. */
TEST(datagram_queued_overhead_counts_per_datagram)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *g = dg_to_idle_unix_peer(loop, &peer);
    CHECK_EQ_INT(tapio_datagram_set_queued_overhead(g->d, 8), 0);
    uint32_t seq = 0;
    while (tapio_datagram_get_write_buffer_size(g->d) == 0) {
        CHECK(seq < 10000);
        dg_send_numbered(g, seq++, QUEUED_SIZE, NULL);
    }
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), QUEUED_SIZE + 8);
    dg_send_numbered(g, seq++, QUEUED_SIZE, NULL);
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 2 * (QUEUED_SIZE + 8));
    CHECK_EQ_INT(tapio_datagram_set_queued_overhead(g->d, 0), -EBUSY);

    raw_rx *r = raw_listen(loop, peer, true);
    RUN_UNTIL(loop, r->log.count == seq, 5);
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 0);
    CHECK_EQ_INT(tapio_datagram_set_queued_overhead(g->d, 0), 0);
}

TEST(datagram_abort_drops_the_queue)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *g = dg_to_idle_unix_peer(loop, &peer);
    uint32_t seq = 0;
    send_until_queued(g, &seq);
    queue_more(g, &seq, 20);
    uint32_t sent_at_once = seq - 21;

    tapio_datagram_abort(g->d);
    CHECK(tapio_datagram_is_closing(g->d));
    CHECK_EQ_INT(g->lost, 0); /* connection_lost comes from the loop */
    RUN_UNTIL(loop, g->lost, 5);
    CHECK_EQ_INT(g->lost_err, 0);
    tapio_datagram_abort(g->d);
    tapio_datagram_close(g->d);

    raw_rx *r = raw_listen(loop, peer, true);
    RUN_UNTIL(loop, r->log.count == sent_at_once, 5);
    run_for(loop, 0.05);
    CHECK_EQ_INT(r->log.count, sent_at_once);
    CHECK_EQ_INT(g->lost, 1);
}

TEST(datagram_write_buffer_limits)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    size_t low = 1, high = 1;
    tapio_datagram_get_write_buffer_limits(g->d, &low, &high);
    CHECK_EQ_INT(high, TAPIO_DEFAULT_HIGH_WATER);
    CHECK_EQ_INT(low, TAPIO_DEFAULT_HIGH_WATER / 4);
    CHECK_OK(tapio_datagram_set_write_buffer_limits(g->d, 1000, -1));
    tapio_datagram_get_write_buffer_limits(g->d, &low, &high);
    CHECK_EQ_INT(low, 250);
    CHECK_EQ_INT(high, 1000);
    CHECK_ERR(tapio_datagram_set_write_buffer_limits(g->d, 10, 20), -EINVAL);
    tapio_datagram_get_write_buffer_limits(g->d, &low, &high);
    CHECK_EQ_INT(high, 1000);
    /* low = 2**61 alone: high is 2**63, as asyncio's, with no overflow. */
    CHECK_OK(tapio_datagram_set_write_buffer_limits(g->d, TAPIO_LIMIT_DEFAULT,
                                                    (ssize_t)1 << 61));
    tapio_datagram_get_write_buffer_limits(g->d, &low, &high);
    CHECK(low == (size_t)1 << 61);
    CHECK(high == (size_t)1 << 63);
}

/* pause_writing once the queue goes strictly over high (inside sendto, as
 * asyncio does), resume_writing once it drains to low or below. */
TEST(datagram_flow_control_pauses_and_resumes)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *g = dg_to_idle_unix_peer(loop, &peer);
    const size_t high = 5 * QUEUED_SIZE, low = 2 * QUEUED_SIZE;
    CHECK_OK(tapio_datagram_set_write_buffer_limits(g->d, (ssize_t)high, (ssize_t)low));
    uint32_t seq = 0;
    send_until_queued(g, &seq);
    queue_more(g, &seq, 4);
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), high);
    CHECK_EQ_INT(g->pauses, 0); /* exactly at high: no pause */
    queue_more(g, &seq, 1);
    CHECK_EQ_INT(g->pauses, 1);
    queue_more(g, &seq, 1);
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->pauses, 1); /* once until resumed */
    CHECK_EQ_INT(g->resumes, 0);

    raw_rx *r = raw_listen(loop, peer, true);
    RUN_UNTIL(loop, g->resumes == 1, 10);
    CHECK(g->size_at_resume <= low);
    RUN_UNTIL(loop, r->log.count == seq, 10);
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 0);
    CHECK_EQ_INT(g->pauses, 1);
    CHECK_EQ_INT(g->resumes, 1);
}

/* ------------------------------------------------------ reading pause */

/* While paused, datagrams wait in the socket; resuming delivers them in
 * order. Pausing and resuming twice change nothing. */
TEST(datagram_pause_reading_holds_datagrams_until_resumed)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    addr me = {.len = sizeof me.ss};
    CHECK_OK(tapio_datagram_sockname(g->d, &me.ss, &me.len));
    int raw = raw_udp(AF_INET);
    CHECK(tapio_datagram_is_reading(g->d));
    tapio_datagram_pause_reading(g->d);
    tapio_datagram_pause_reading(g->d);
    CHECK(!tapio_datagram_is_reading(g->d));
    raw_send(raw, "one", 3, &me);
    raw_send(raw, "two", 3, &me);
    run_for(loop, 0.05);
    CHECK_EQ_INT(g->log.count, 0);

    tapio_datagram_resume_reading(g->d);
    tapio_datagram_resume_reading(g->d);
    CHECK(tapio_datagram_is_reading(g->d));
    RUN_UNTIL(loop, g->log.count == 2, 5);
    check_last(&g->log, "two", 3);
    raw_send(raw, "three", 5, &me);
    RUN_UNTIL(loop, g->log.count == 3, 5);
}

/* A pause from datagram_received takes effect at once: the rest of the
 * readiness event's datagrams wait too. */
TEST(datagram_pause_reading_inside_datagram_received)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    addr me = {.len = sizeof me.ss};
    CHECK_OK(tapio_datagram_sockname(g->d, &me.ss, &me.len));
    int raw = raw_udp(AF_INET);
    g->pause_on_datagram = true;
    for (int i = 0; i < 3; i++)
        raw_send(raw, "x", 1, &me);
    RUN_UNTIL(loop, g->log.count == 1, 5);
    run_for(loop, 0.05);
    CHECK_EQ_INT(g->log.count, 1);
    CHECK(!tapio_datagram_is_reading(g->d));

    g->pause_on_datagram = false;
    tapio_datagram_resume_reading(g->d);
    RUN_UNTIL(loop, g->log.count == 3, 5);
}

/* Once closing nothing is read: is_reading says so, and neither pause nor
 * resume changes it (asyncio's transports alike). */
TEST(datagram_reading_state_once_closing)
{
    tapio_loop *loop = test_loop();
    dgram *paused = dg_bind(loop, "127.0.0.1");
    dgram *reading = dg_bind(loop, "127.0.0.1");
    tapio_datagram_pause_reading(paused->d);
    tapio_datagram_close(paused->d);
    tapio_datagram_close(reading->d);
    tapio_datagram_resume_reading(paused->d);
    tapio_datagram_pause_reading(reading->d);
    tapio_datagram_resume_reading(reading->d);
    CHECK(!tapio_datagram_is_reading(paused->d));
    CHECK(!tapio_datagram_is_reading(reading->d));
    RUN_UNTIL(loop, paused->lost && reading->lost, 5);
    tapio_datagram_resume_reading(reading->d);
    CHECK(!tapio_datagram_is_reading(reading->d));
}

/* fail() ends the endpoint at once with its error, dropping the queue; once
 * connection_lost is due, another fail() changes nothing. */
TEST(datagram_fail_reports_its_error_to_connection_lost)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *g = dg_to_idle_unix_peer(loop, &peer);
    uint32_t seq = 0;
    send_until_queued(g, &seq);
    tapio_datagram_fail(g->d, TAPIO_EPROTOCOL);
    CHECK(tapio_datagram_is_closing(g->d));
    CHECK_EQ_INT(tapio_datagram_get_write_buffer_size(g->d), 0);
    tapio_datagram_fail(g->d, -EIO);
    CHECK_EQ_INT(g->lost, 0); /* connection_lost comes from the loop */
    RUN_UNTIL(loop, g->lost, 5);
    CHECK_ERR(g->lost_err, TAPIO_EPROTOCOL);

    dgram *closed = dg_bind(loop, "127.0.0.1");
    tapio_datagram_close(closed->d); /* nothing queued: the end is due */
    tapio_datagram_fail(closed->d, TAPIO_EPROTOCOL);
    RUN_UNTIL(loop, closed->lost, 5);
    CHECK_EQ_INT(closed->lost_err, 0);
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->lost + closed->lost, 2);
}

/* -------------------------------------------------- callback ordering */

/* Reading starts with connection_made; close() is idempotent; connection_lost
 * comes once, from the loop, and nothing follows it. */
TEST(datagram_connection_made_first_and_lost_once_last)
{
    tapio_loop *loop = test_loop();
    dgram *g = dgram_new();
    tapio_datagram *d = NULL;
    tapio_datagram_options o = {.local_host = "127.0.0.1", .local_port = "0"};
    CHECK_OK(tapio_datagram_open(loop, &o, &dgram_protocol, g, &d));
    addr me = {.len = sizeof me.ss};
    CHECK_OK(tapio_datagram_sockname(d, &me.ss, &me.len));
    int raw = raw_udp(AF_INET);
    raw_send(raw, "early", 5, &me); /* waits for connection_made (dgram checks) */
    dg_wait_made(loop, g, d);
    RUN_UNTIL(loop, g->log.count == 1, 5);
    check_last(&g->log, "early", 5);

    tapio_datagram_close(d);
    tapio_datagram_close(d);
    CHECK_EQ_INT(g->lost, 0);
    /* Nothing queued: connection_lost is due, so sendto is refused. */
    CHECK_ERR(tapio_datagram_sendto(d, "x", 1, sa(&me), me.len), -EBADF);
    raw_send(raw, "after close", 11, &me);
    RUN_UNTIL(loop, g->lost, 5);
    CHECK_EQ_INT(g->lost_err, 0);
    run_for(loop, 0.05);
    CHECK_EQ_INT(g->lost, 1);
    CHECK_EQ_INT(g->log.count, 1);
    /* The reference keeps the pointer usable; calls are harmless. */
    CHECK(tapio_datagram_is_closing(d));
    CHECK_EQ_INT(tapio_datagram_fd(d), -1);
    CHECK_ERR(tapio_datagram_sendto(d, "x", 1, sa(&me), me.len), -EBADF);
    tapio_datagram_abort(d);
    tapio_datagram_close(d);
    run_for(loop, 0.02);
}

/* As in asyncio, connection_made (already scheduled) still runs, then lost. */
TEST(datagram_close_before_connection_made)
{
    tapio_loop *loop = test_loop();
    dgram *g = dgram_new();
    tapio_datagram *d = NULL;
    tapio_datagram_options o = {.local_host = "127.0.0.1", .local_port = "0"};
    CHECK_OK(tapio_datagram_open(loop, &o, &dgram_protocol, g, &d));
    tapio_datagram_close(d);
    RUN_UNTIL(loop, g->lost, 5); /* dg_on_lost checks made == 1 */
    CHECK_EQ_INT(g->lost_err, 0);
}

/* Closing the loop with endpoints open (one with a queue) frees them all;
 * no protocol callback runs during loop close. */
TEST(datagram_loop_close_releases_open_endpoints)
{
    tapio_loop *loop = test_loop();
    int peer;
    dgram *queued = dg_to_idle_unix_peer(loop, &peer);
    uint32_t seq = 0;
    send_until_queued(queued, &seq);
    dgram *idle = dg_bind(loop, "127.0.0.1");
    dgram *closing = dg_bind(loop, "127.0.0.1");
    tapio_datagram_close(closing->d);
    test_loop_close();
    CHECK_EQ_INT(queued->lost + idle->lost + closing->lost, 0);
}

/* ------------------------------------------------ datagram_socket */

/* The first candidate that binds and connects wins; the chosen index says
 * which, and the socket is bound and connected as that candidate asked. */
TEST(datagram_socket_takes_the_first_candidate_that_works)
{
    int busy = raw_udp(AF_INET);
    addr taken = fd_sockname(busy);
    addr any = loopback(AF_INET, 0);
    int peer = raw_udp(AF_INET);
    addr peer_addr = fd_sockname(peer);
    tapio_datagram_candidate candidates[2] = {
        {AF_INET, 0, sa(&taken), taken.len, sa(&peer_addr), peer_addr.len},
        {AF_INET, 0, sa(&any), any.len, sa(&peer_addr), peer_addr.len},
    };
    tapio_datagram_options opts = {.allow_broadcast = false};
    size_t chosen = 99;
    int fd = tapio_datagram_socket(candidates, 2, &opts, &chosen);
    CHECK(fd >= 0);
    at_cleanup(close_fd, (void *)(intptr_t)fd);
    CHECK_EQ_INT(chosen, 1);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    addr peer_seen = {.len = sizeof peer_seen.ss};
    CHECK(getpeername(fd, (struct sockaddr *)&peer_seen.ss, &peer_seen.len) == 0);
    CHECK(addr_equal(&peer_seen, &peer_addr));
}

/* When none works, the first candidate's error is the answer (asyncio
 * raises the first exception) and no fd is left open. */
TEST(datagram_socket_fails_with_the_first_candidates_error)
{
    int busy = raw_udp(AF_INET);
    addr taken = fd_sockname(busy);
    addr nowhere = unix_addr("/nonexistent-dir/x.sock", 0);
    int before = count_open_fds();
    tapio_datagram_candidate candidates[2] = {
        {AF_INET, 0, sa(&taken), taken.len, NULL, 0},
        {AF_UNIX, 0, sa(&nowhere), nowhere.len, NULL, 0},
    };
    size_t chosen = 99;
    CHECK_ERR(tapio_datagram_socket(candidates, 2, NULL, &chosen), -EADDRINUSE);
    CHECK_EQ_INT(chosen, 99);
    CHECK_EQ_INT(count_open_fds(), before);
    CHECK_ERR(tapio_datagram_socket(candidates + 1, 1, NULL, NULL), -ENOENT);
}

/* Options reach the socket: SO_BROADCAST, and with it no connect. */
TEST(datagram_socket_with_broadcast_does_not_connect)
{
    addr any = loopback(AF_INET, 0);
    addr dest = loopback(AF_INET, closed_udp_port());
    tapio_datagram_candidate c = {AF_INET, 0, sa(&any), any.len, sa(&dest),
                                  dest.len};
    tapio_datagram_options opts = {.allow_broadcast = true, .reuse_port = true};
    int fd = tapio_datagram_socket(&c, 1, &opts, NULL);
    CHECK(fd >= 0);
    at_cleanup(close_fd, (void *)(intptr_t)fd);
    CHECK(sockopt(fd, SO_BROADCAST) != 0);
    CHECK(sockopt(fd, SO_REUSEPORT) != 0);
    addr peer = {.len = sizeof peer.ss};
    CHECK(getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) != 0 &&
          errno == ENOTCONN);
}

/* ------------------------------------------------ receiving in bulk
 *
 * io_uring receives datagrams by completion (a multishot request into the
 * loop's buffers), the other backends read on readiness: these hold all
 * three to the same observable behaviour. */

/* What a "tagged" sender puts first: which sender it is and its count. */
typedef struct tag {
    uint32_t sender, seq;
} tag;

enum { MAX_SENDERS = 8 };

/* Checks each tagged datagram against its sender's address and order. */
typedef struct tagged_rx {
    dgram g; /* first: the dgram callbacks see a dgram */
    addr senders[MAX_SENDERS];
    uint32_t next[MAX_SENDERS];
    size_t count;
} tagged_rx;

static void tagged_on_datagram(tapio_datagram *d, const void *data, size_t len,
                               const struct sockaddr *from, socklen_t fromlen,
                               void *user)
{
    tagged_rx *t = user;
    dg_on_datagram(d, data, len, from, fromlen, &t->g);
    tag k;
    CHECK(len >= sizeof k);
    memcpy(&k, data, sizeof k);
    CHECK(k.sender < MAX_SENDERS);
    CHECK_EQ_INT(k.seq, t->next[k.sender]);
    t->next[k.sender]++;
    CHECK(pattern_check((const char *)data + sizeof k, k.seq, len - sizeof k));
    addr got = {.len = fromlen};
    if (fromlen)
        memcpy(&got.ss, from, fromlen);
    CHECK(addr_equal(&got, &t->senders[k.sender]));
    t->count++;
}

static const tapio_datagram_protocol tagged_protocol = {
    .connection_made = dg_on_made,
    .datagram_received = tagged_on_datagram,
    .error_received = dg_on_error,
    .connection_lost = dg_on_lost,
};

static void tagged_free(void *arg)
{
    tagged_rx *t = arg;
    if (t->g.d)
        tapio_datagram_unref(t->g.d);
    bytes_free(&t->g.log.last);
    free(t);
}

static tagged_rx *tagged_open(tapio_loop *loop, const tapio_datagram_options *o)
{
    tagged_rx *t = calloc(1, sizeof *t);
    CHECK(t != NULL);
    at_cleanup(tagged_free, t);
    tapio_datagram *d = NULL;
    CHECK_OK(tapio_datagram_open(loop, o, &tagged_protocol, t, &d));
    dg_wait_made(loop, &t->g, d);
    raise_rcvbuf(tapio_datagram_fd(d));
    return t;
}

static void send_tagged(int fd, uint32_t sender, uint32_t seq, size_t len,
                        const addr *to)
{
    static unsigned char buf[UDP4_MAX];
    tag k = {sender, seq};
    CHECK(len >= sizeof k && len <= sizeof buf);
    memcpy(buf, &k, sizeof k);
    pattern_fill(buf + sizeof k, seq, len - sizeof k);
    raw_send(fd, buf, len, to);
}

/* Several senders interleaved, `rounds` datagrams each, `batch` rounds sent
 * before the loop runs: each arrives once, in its sender's order, with its
 * sender's address. */
static void check_senders(tapio_loop *loop, tagged_rx *t, const int *fds,
                          int n, int rounds, int batch)
{
    addr me = dg_sockname(&t->g);
    for (int i = 0; i < n; i++) {
        addr a = fd_sockname(fds[i]);
        /* An unbound Unix sender has no address (len 0), as in asyncio. */
        if (a.ss.ss_family == AF_UNIX && a.len <= sizeof(sa_family_t))
            a.len = 0;
        t->senders[i] = a;
    }
    for (int r = 0; r < rounds;) {
        for (int b = 0; b < batch && r < rounds; b++, r++)
            for (int i = 0; i < n; i++)
                send_tagged(fds[i], (uint32_t)i, (uint32_t)r,
                            8 + (size_t)(r * 7 + i) % 200, &me);
        RUN_UNTIL(loop, t->count == (size_t)(n * r), 10);
    }
    run_for(loop, 0.02);
    CHECK_EQ_INT(t->count, n * rounds);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(t->next[i], rounds);
    CHECK_EQ_INT(t->g.errors, 0);
}

static void check_udp_senders(int family, const char *host)
{
    tapio_loop *loop = test_loop();
    tapio_datagram_options o = {.local_host = host, .local_port = "0"};
    tagged_rx *t = tagged_open(loop, &o);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = raw_udp(family);
    check_senders(loop, t, fds, 5, 200, 40);
}

TEST(datagram_many_senders_each_with_its_address)
{
    check_udp_senders(AF_INET, "127.0.0.1");
}

TEST(datagram_many_ipv6_senders_each_with_its_address)
{
    if (!ipv6_loopback_available()) {
        printf("note: ::1 unavailable here; IPv6 checks not run\n");
        return;
    }
    check_udp_senders(AF_INET6, "::1");
}

/* Unix senders bound to a path, to an abstract name, and unbound (no
 * address), mixed in one stream. */
TEST(datagram_unix_named_and_unnamed_senders_mixed)
{
    tapio_loop *loop = test_loop();
    tapio_datagram_options o = {.family = AF_UNIX,
                                .local_host = temp_unix_path("mixed")};
    tagged_rx *t = tagged_open(loop, &o);
    char abstract[64];
    abstract[0] = '\0';
    snprintf(abstract + 1, sizeof abstract - 1, "tapio-test-%d-mixed",
             (int)getpid());
    addr path_at = unix_addr(temp_unix_path("mixed-a"), 0);
    addr abstract_at = unix_addr(abstract, 1 + strlen(abstract + 1));
    int fds[4] = {raw_socket(AF_UNIX, &path_at), raw_socket(AF_UNIX, NULL),
                  raw_socket(AF_UNIX, &abstract_at), raw_socket(AF_UNIX, NULL)};
    /* The receiver's queue holds net.unix.max_dgram_qlen datagrams (10 by
     * default) whatever its buffer: two rounds of four at a time. */
    check_senders(loop, t, fds, 4, 50, 2);
}

/* The largest UDP payloads arrive whole, over IPv4 and IPv6 (where the
 * limit leaves out the IP header: 65527 bytes). */
TEST(datagram_largest_udp_payloads_arrive_whole)
{
    tapio_loop *loop = test_loop();
    unsigned char *data = pattern_new(65527);
    dgram *g = dg_bind(loop, "127.0.0.1");
    addr me = dg_sockname(g);
    int raw = raw_udp(AF_INET);
    for (int i = 0; i < 3; i++)
        raw_send(raw, data, UDP4_MAX, &me);
    RUN_UNTIL(loop, g->log.count == 3, 5);
    check_last(&g->log, data, UDP4_MAX);
    CHECK_EQ_INT(g->log.total, 3 * UDP4_MAX);
    if (ipv6_loopback_available()) {
        g = dg_bind(loop, "::1");
        me = dg_sockname(g);
        raw = raw_udp(AF_INET6);
        raw_send(raw, data, 65527, &me);
        RUN_UNTIL(loop, g->log.count == 1, 5);
        check_last(&g->log, data, 65527);
        addr raw_addr = fd_sockname(raw);
        CHECK(addr_equal(&g->log.from, &raw_addr));
    }
    free(data);
}

/* A Unix datagram can be as large as its sender's buffer allows: one of
 * 200,000 bytes arrives whole; one over 256 KiB (asyncio's read size) is
 * cut to 256 KiB, the rest discarded, as a read of that size does. */
TEST(datagram_unix_large_datagrams_whole_up_to_the_read_size)
{
    enum { BIG = 200000, HUGE_ = 300000, READ_SIZE = 256 * 1024 };
    tapio_loop *loop = test_loop();
    const char *path = temp_unix_path("big");
    tapio_datagram_options o = {.family = AF_UNIX, .local_host = path};
    dgram *g = dg_open(loop, &o);
    addr me = unix_addr(path, 0);
    int raw = raw_socket(AF_UNIX, NULL);
    int size = 4 * 1024 * 1024;
    if (setsockopt(raw, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        CHECK(setsockopt(raw, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
    unsigned char *data = pattern_new(HUGE_);
    raw_send(raw, data, BIG, &me);
    raw_send(raw, "small", 5, &me);
    raw_send(raw, data, HUGE_, &me);
    RUN_UNTIL(loop, g->log.count == 3, 5);
    CHECK_EQ_INT(g->log.total, BIG + 5 + READ_SIZE);
    check_last(&g->log, data, READ_SIZE);
    CHECK_EQ_INT(g->log.from.len, 0);
    free(data);
}

/* Queued beyond the backend's buffers (io_uring keeps 64 for datagrams):
 * with room in the socket for all, every one arrives, in order. */
TEST(datagram_burst_beyond_the_receive_buffers_loses_nothing)
{
    enum { N = 600 };
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    g->log.numbered = true;
    raise_rcvbuf(tapio_datagram_fd(g->d));
    addr me = dg_sockname(g);
    int raw = raw_udp(AF_INET);
    unsigned char buf[300];
    for (uint32_t seq = 0; seq < N; seq++) { /* all queued before reading */
        size_t len = 4 + seq % (sizeof buf - 4);
        numbered(buf, seq, len);
        raw_send(raw, buf, len, &me);
    }
    RUN_UNTIL(loop, g->log.count == N, 10);
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->log.count, N);
    CHECK_EQ_INT(g->errors, 0);
}

/* A pause from datagram_received in the middle of a burst: nothing more
 * arrives while paused; after resuming, the rest, in order, none lost. */
TEST(datagram_pause_inside_a_burst_then_resume_loses_nothing)
{
    enum { N = 400 };
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    g->log.numbered = true;
    raise_rcvbuf(tapio_datagram_fd(g->d));
    addr me = dg_sockname(g);
    int raw = raw_udp(AF_INET);
    unsigned char buf[64];
    for (uint32_t seq = 0; seq < N; seq++) {
        numbered(buf, seq, sizeof buf);
        raw_send(raw, buf, sizeof buf, &me);
    }
    /* Each resume delivers one datagram, which pauses again. */
    g->pause_on_datagram = true;
    for (size_t seen = 0; seen < 5; seen++) {
        RUN_UNTIL(loop, g->log.count == seen + 1, 5);
        run_for(loop, 0.02);
        CHECK_EQ_INT(g->log.count, seen + 1);
        CHECK(!tapio_datagram_is_reading(g->d));
        tapio_datagram_resume_reading(g->d);
    }
    g->pause_on_datagram = false;
    RUN_UNTIL(loop, g->log.count == N, 10);
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->log.count, N);
}

/* Closed from datagram_received in the middle of a burst, or by abort
 * between iterations: nothing is delivered afterwards, and the fd, reused
 * by a new endpoint at once, hears only its own datagrams. */
typedef struct closer {
    dgram g; /* first */
    size_t close_at;
    bool abort;
} closer;

static void closer_on_datagram(tapio_datagram *d, const void *data, size_t len,
                               const struct sockaddr *from, socklen_t fromlen,
                               void *user)
{
    closer *c = user;
    dg_on_datagram(d, data, len, from, fromlen, &c->g);
    CHECK(!tapio_datagram_is_closing(d)); /* nothing once closing */
    if (c->g.log.count == c->close_at) {
        if (c->abort)
            tapio_datagram_abort(d);
        else
            tapio_datagram_close(d);
    }
}

static const tapio_datagram_protocol closer_protocol = {
    .connection_made = dg_on_made,
    .datagram_received = closer_on_datagram,
    .error_received = dg_on_error,
    .connection_lost = dg_on_lost,
};

static void closer_free(void *arg)
{
    closer *c = arg;
    if (c->g.d)
        tapio_datagram_unref(c->g.d);
    bytes_free(&c->g.log.last);
    free(c);
}

static closer *closer_open(tapio_loop *loop, size_t close_at, bool abort_)
{
    closer *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    at_cleanup(closer_free, c);
    c->close_at = close_at;
    c->abort = abort_;
    c->g.log.numbered = true;
    tapio_datagram_options o = {.local_host = "127.0.0.1", .local_port = "0"};
    tapio_datagram *d = NULL;
    CHECK_OK(tapio_datagram_open(loop, &o, &closer_protocol, c, &d));
    dg_wait_made(loop, &c->g, d);
    raise_rcvbuf(tapio_datagram_fd(d));
    return c;
}

static void send_numbered_burst(int raw, const addr *to, uint32_t n)
{
    unsigned char buf[64];
    for (uint32_t seq = 0; seq < n; seq++) {
        numbered(buf, seq, sizeof buf);
        raw_send(raw, buf, sizeof buf, to);
    }
}

TEST(datagram_close_with_datagrams_in_flight)
{
    tapio_loop *loop = test_loop();
    int raw = raw_udp(AF_INET);
    for (int abort_ = 0; abort_ < 2; abort_++) {
        /* From datagram_received, with more of the burst taken already. */
        closer *c = closer_open(loop, 3, abort_);
        int fd = tapio_datagram_fd(c->g.d);
        addr me = dg_sockname(&c->g);
        send_numbered_burst(raw, &me, 200);
        RUN_UNTIL(loop, c->g.lost, 5);
        run_for(loop, 0.02);
        CHECK_EQ_INT(c->g.log.count, 3);
        CHECK_EQ_INT(c->g.lost_err, 0);

        /* Between iterations, with the receive armed and datagrams queued
         * (this endpoint gets the first one's fd number, as will the next). */
        closer *early = closer_open(loop, 0, false);
        CHECK_EQ_INT(tapio_datagram_fd(early->g.d), fd);
        me = dg_sockname(&early->g);
        run_briefly(loop, 2);
        send_numbered_burst(raw, &me, 100);
        if (abort_)
            tapio_datagram_abort(early->g.d);
        else
            tapio_datagram_close(early->g.d);
        RUN_UNTIL(loop, early->g.lost, 5);
        /* What the kernel completed for the old request is still to be
         * handed out when the fd's next owner arrives. */
        closer *next = closer_open(loop, 0, false);
        CHECK_EQ_INT(tapio_datagram_fd(next->g.d), fd);
        addr next_at = dg_sockname(&next->g);
        send_numbered_burst(raw, &next_at, 50);
        RUN_UNTIL(loop, next->g.log.count == 50, 5);
        run_for(loop, 0.02);
        CHECK_EQ_INT(early->g.log.count, 0);
        CHECK_EQ_INT(next->g.log.count, 50);
        tapio_datagram_close(next->g.d);
        RUN_UNTIL(loop, next->g.lost, 5);
    }
}

/* A connected socket's ICMP port-unreachable shows on the receive side
 * too: one send, then error_received(ECONNREFUSED) with no further send;
 * the endpoint keeps receiving once something listens there. */
TEST(datagram_error_received_by_the_receiving_side)
{
    tapio_loop *loop = test_loop();
    addr nobody = loopback(AF_INET, closed_udp_port());
    dgram *g = dg_connect(loop, &nobody);
    DG_SEND(g, "anyone?", 7, NULL);
    RUN_UNTIL(loop, g->errors == 1, 5);
    CHECK_ERR(g->last_err, -ECONNREFUSED);
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->errors, 1);
    CHECK(!tapio_datagram_is_closing(g->d));

    int raw = raw_socket(AF_INET, &nobody);
    addr me = dg_sockname(g);
    for (int i = 0; i < 3; i++)
        raw_send(raw, "here", 4, &me);
    RUN_UNTIL(loop, g->log.count == 3, 5);
    check_last(&g->log, "here", 4);
    CHECK(addr_equal(&g->log.from, &nobody));
    CHECK_EQ_INT(g->errors, 1);
}

/* A loop run by one thread, then (after it ended) by another, as asyncio
 * allows (io_uring replaces its ring then, buffers and requests with it):
 * datagrams sent while no thread ran the loop arrive, none lost or twice. */
typedef struct dg_runner {
    tapio_loop *loop;
    dgram *g;
    size_t until;
} dg_runner;

static void *dg_run_until(void *arg)
{
    dg_runner *r = arg;
    RUN_UNTIL(r->loop, r->g->log.count >= r->until, 10);
    return NULL;
}

TEST(datagram_receiving_across_threads_running_the_loop)
{
    tapio_loop *loop = test_loop();
    dgram *g = dg_bind(loop, "127.0.0.1");
    g->log.numbered = true;
    raise_rcvbuf(tapio_datagram_fd(g->d));
    addr me = dg_sockname(g);
    int raw = raw_udp(AF_INET);
    unsigned char buf[100];
    dg_runner r = {loop, g, 0};
    for (uint32_t seq = 0; seq < 400; seq++) {
        numbered(buf, seq, sizeof buf);
        raw_send(raw, buf, sizeof buf, &me);
        if (seq % 100 == 99) {
            r.until = seq + 1;
            if (seq == 299) { /* the test's own thread, once */
                dg_run_until(&r);
                continue;
            }
            pthread_t thread;
            CHECK(pthread_create(&thread, NULL, dg_run_until, &r) == 0);
            CHECK(pthread_join(thread, NULL) == 0);
        }
    }
    run_for(loop, 0.02);
    CHECK_EQ_INT(g->log.count, 400);
    CHECK_EQ_INT(g->errors, 0);
}
