/*
 * tls_load: bench/load_client over TLS — a closed-loop echo load generator
 * on one thread, epoll and OpenSSL (through BIO pairs, bench/tls_bench.h).
 *
 * Usage: tls_load HOST PORT CONNECTIONS MSG_SIZE SECONDS
 *
 * Each of CONNECTIONS connections completes a TLS handshake (SNI
 * "localhost"; the certificate is not verified: the benchmark measures the
 * servers, not the PKI), then sends one MSG_SIZE-byte message, waits until
 * all of it has come back, counts one request and sends the next. Requests
 * completed in the first WARMUP_SECONDS (the handshakes happen there too)
 * are not counted; the run then lasts SECONDS and prints one line:
 *
 *   requests=N seconds=S rps=R total_requests=T
 *
 * as load_client does (T counts the warm-up too, for dividing the server's
 * whole CPU time). Each message's first and last bytes encode its
 * connection and sequence number. Exits 1 on a mismatch, a connection or TLS
 * error, or if no request completed; 2 on bad usage. HOST must be numeric.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "tls_bench.h"

#define WARMUP_SECONDS 0.3
#define PLAIN_SIZE (256 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    int connected;     /* TCP */
    int handshake_done;
    int want_out;      /* EPOLLOUT is in the interest set */
    unsigned id;
    uint64_t seq;
    size_t sent;       /* plaintext bytes SSL_write took */
    size_t received;
    unsigned char *msg;
    tls_pipe tls;
};

static size_t msg_size;
static int epoll_fd;
static SSL_CTX *ssl_ctx;
static unsigned char plain[PLAIN_SIZE];
static uint64_t counted, completed;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bench_fail("tls_load", fmt, ap);
}

static int expected_byte(const struct conn *c, size_t pos)
{
    unsigned tag = (unsigned)(c->seq * 131 + c->id) & 0xff;
    if (pos == msg_size - 1)
        return (int)(tag ^ 0xff);
    if (pos == 0)
        return (int)tag;
    return -1;
}

static void set_interest(struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (want_out)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* Hand the message to OpenSSL (as far as its ring takes it) and send the
 * records; EPOLLOUT covers what is left. */
static void pump_out(struct conn *c)
{
    for (;;) {
        int wants_read = 0;
        while (c->handshake_done && c->sent < msg_size) {
            int n = SSL_write(c->tls.ssl, c->msg + c->sent,
                              (int)(msg_size - c->sent));
            if (n <= 0) {
                if (tls_pipe_status(&c->tls, n) <= 0)
                    fail("connection %u: SSL_write failed", c->id);
                /* the ring is full: send first; or records must come in */
                wants_read = SSL_get_error(c->tls.ssl, n) == SSL_ERROR_WANT_READ;
                break;
            }
            c->sent += (size_t)n;
        }
        int f = tls_pipe_flush(&c->tls, c->fd);
        if (f < 0)
            fail("connection %u: send: %s", c->id, strerror(errno));
        if (f == 1 || wants_read || !c->handshake_done || c->sent == msg_size) {
            set_interest(c, f == 1);
            return;
        }
        /* The ring emptied: SSL_write may take more now. */
    }
}

static void start_message(struct conn *c)
{
    c->sent = 0;
    c->received = 0;
    c->msg[0] = (unsigned char)expected_byte(c, 0);
    c->msg[msg_size - 1] = (unsigned char)expected_byte(c, msg_size - 1);
    pump_out(c);
}

static void check_chunk(const struct conn *c, const unsigned char *data,
                        size_t len)
{
    size_t checked[2] = {0, msg_size - 1};
    for (int i = 0; i < 2; i++) {
        size_t pos = checked[i];
        if (pos >= c->received && pos < c->received + len &&
            data[pos - c->received] != expected_byte(c, pos))
            fail("connection %u: message %llu: wrong byte at offset %zu",
                 c->id, (unsigned long long)c->seq, pos);
    }
}

/* Decrypt what arrived: handshake messages, then the echo. */
static void process(struct conn *c, int counting)
{
    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->tls.ssl);
        if (r != 1) {
            if (tls_pipe_status(&c->tls, r) <= 0)
                fail("connection %u: TLS handshake failed", c->id);
            pump_out(c);
            return;
        }
        c->handshake_done = 1;
        start_message(c);
    }
    for (;;) {
        int n = SSL_read(c->tls.ssl, plain, sizeof(plain));
        if (n <= 0) {
            int s = tls_pipe_status(&c->tls, n);
            if (s == 0)
                fail("connection %u: closed by the server", c->id);
            if (s < 0)
                fail("connection %u: TLS error", c->id);
            break;
        }
        if (c->received + (size_t)n > c->sent)
            fail("connection %u: received more bytes than were sent", c->id);
        check_chunk(c, plain, (size_t)n);
        c->received += (size_t)n;
        if (c->received < msg_size)
            continue;
        completed++;
        counted += counting;
        c->seq++;
        start_message(c);
    }
    if (c->sent < msg_size || tls_pipe_pending_out(&c->tls))
        pump_out(c);
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        fail("connection %u: connect: %s", c->id, strerror(err));
    c->connected = 1;
    process(c, 0); /* the ClientHello */
}

static void on_event(struct conn *c, uint32_t events, int counting)
{
    if (!c->connected) {
        on_connected(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t n = tls_pipe_fill(&c->tls, c->fd);
        if (n == -1)
            fail("connection %u: closed by the server", c->id);
        if (n == -2)
            fail("connection %u: read: %s", c->id, strerror(errno));
        process(c, counting);
    }
    if (c->want_out && (events & EPOLLOUT))
        pump_out(c);
}

static void open_conn(struct conn *c, const struct addrinfo *ai)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fail("socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        fail("connection %u: connect: %s", c->id, strerror(errno));
    c->want_out = 1;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->msg = malloc(msg_size);
    if (!c->msg || tls_pipe_init(&c->tls, ssl_ctx, 0) < 0)
        fail("out of memory");
    SSL_set_tlsext_host_name(c->tls.ssl, "localhost");
    memset(c->msg, 'x', msg_size);
}

static void run(double seconds)
{
    struct epoll_event events[MAX_EVENTS];
    double t = bench_now();
    double warm_end = t + WARMUP_SECONDS;
    double end = warm_end + seconds;
    while (t < end) {
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS,
                           (int)((end - t) * 1000) + 1);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        t = bench_now();
        for (int i = 0; i < n && t < end; i++)
            on_event(events[i].data.ptr, events[i].events, t >= warm_end);
    }
}

static int parse_count(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 && v <= max ? (int)v : 0;
}

static double parse_seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return *s && !*end && v > 0 && v <= 86400 ? v : 0;
}

int main(int argc, char **argv)
{
    struct addrinfo *ai;
    struct conn *conns;
    int nconns = argc == 6 ? parse_count(argv[3], 100000) : 0;
    double seconds = argc == 6 ? parse_seconds(argv[5]) : 0;

    msg_size = argc == 6 ? (size_t)parse_count(argv[4], 1 << 30) : 0;
    if (!nconns || !msg_size || !seconds) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS MSG_SIZE SECONDS\n",
                argv[0]);
        return 2;
    }
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
    };
    int rc = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (rc)
        fail("%s port %s: %s", argv[1], argv[2], gai_strerror(rc));
    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ssl_ctx)
        fail("SSL_CTX_new failed");
    tls_bench_configure(ssl_ctx);
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        fail("epoll_create1: %s", strerror(errno));
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (!conns)
        fail("out of memory");
    for (int i = 0; i < nconns; i++) {
        conns[i].id = (unsigned)i;
        open_conn(&conns[i], ai);
    }
    freeaddrinfo(ai);
    run(seconds);
    if (!completed)
        fail("no request completed in %.1f s", WARMUP_SECONDS + seconds);
    printf("requests=%llu seconds=%.3f rps=%.1f total_requests=%llu\n",
           (unsigned long long)counted, seconds, (double)counted / seconds,
           (unsigned long long)completed);
    for (int i = 0; i < nconns; i++) {
        close(conns[i].fd);
        tls_pipe_free(&conns[i].tls);
        free(conns[i].msg);
    }
    free(conns);
    close(epoll_fd);
    SSL_CTX_free(ssl_ctx);
    return 0;
}
