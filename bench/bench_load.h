/*
 * What the TCP load clients (load_client, tls_load) share: the command line
 * HOST PORT CONNECTIONS MSG_SIZE SECONDS, opening the connections, stamping
 * and checking the messages, counting requests, the timed epoll loop and the
 * result line. Each program keeps only how a message goes out and how its
 * echo comes back (plain send/read, or through TLS).
 *
 * The state is static: one load client per program. load_run is called once
 * with a constant callback, so the compiler calls (or inlines) it directly.
 */
#ifndef TAPIO_BENCH_LOAD_H
#define TAPIO_BENCH_LOAD_H

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
#include <unistd.h>

#include "bench_util.h"

#define WARMUP_SECONDS 0.3
#define MAX_EVENTS 256

/* The start of each program's connection: one message in flight. */
struct load_conn {
    int fd;
    int connected;     /* TCP */
    int want_out;      /* EPOLLOUT is in the interest set */
    unsigned id;
    uint64_t seq;      /* number of the message in flight */
    size_t sent;       /* bytes of it handed on (to send(), or to SSL_write) */
    size_t received;
    unsigned char *msg;
};

/* The command line, as load_parse_args found it. */
struct load_args {
    struct addrinfo *ai; /* HOST PORT; the caller frees it */
    int connections;
    double seconds;
};

static const char *program; /* in error messages */
static size_t msg_size;
static int epoll_fd;
static uint64_t counted;      /* requests completed inside the measured window */
static uint64_t completed;    /* all requests, warm-up included */

static void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    bench_fail(program, fmt, ap);
}

static int parse_count(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *s && !*end && v > 0 && v <= max ? (int)v : 0;
}

/* Seconds in (0, 1 day]; 0 if `s` is anything else. */
static double parse_seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);

    return *s && !*end && v > 0 && v <= 86400 ? v : 0;
}

/*
 * HOST PORT CONNECTIONS MSG_SIZE SECONDS (exits 2 on bad usage; fails if
 * HOST PORT is not a numeric address), and the epoll set. `name` is the
 * program's, for its error messages.
 */
static struct load_args load_parse_args(int argc, char **argv, const char *name)
{
    struct load_args args = {
        .connections = argc == 6 ? parse_count(argv[3], 100000) : 0,
        .seconds = argc == 6 ? parse_seconds(argv[5]) : 0,
    };
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
    };
    int rc;

    program = name;
    msg_size = argc == 6 ? (size_t)parse_count(argv[4], 1 << 30) : 0;
    if (!args.connections || !msg_size || !args.seconds) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS MSG_SIZE SECONDS\n", argv[0]);
        exit(2);
    }
    rc = getaddrinfo(argv[1], argv[2], &hints, &args.ai);
    if (rc)
        fail("%s port %s: %s", argv[1], argv[2], gai_strerror(rc));
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        fail("epoll_create1: %s", strerror(errno));
    return args;
}

/* n connections of `size` bytes each (zeroed), or fails. */
static void *load_alloc(int n, size_t size)
{
    void *conns = calloc((size_t)n, size);

    if (!conns)
        fail("out of memory");
    return conns;
}

/* Starts connection `id` to ai; the first event on it completes the connect. */
static void load_open(struct load_conn *c, unsigned id, const struct addrinfo *ai)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;

    c->id = id;
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fail("socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        fail("connection %u: connect: %s", c->id, strerror(errno));
    /* writable once connected; the first event completes the connect */
    c->want_out = 1;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->msg = malloc(msg_size);
    if (!c->msg)
        fail("out of memory");
    memset(c->msg, 'x', msg_size);
}

/* Closes c and frees its message. */
static void load_close(struct load_conn *c)
{
    close(c->fd);
    free(c->msg);
}

/* Fails unless the connect the first event reported went through. */
static void load_connected(struct load_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        fail("connection %u: connect: %s", c->id, strerror(err));
    c->connected = 1;
}

/* EPOLLIN, and EPOLLOUT too if want_out. */
static void load_set_interest(struct load_conn *c, int want_out)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    if (c->want_out == want_out)
        return;
    if (want_out)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* The byte expected at `pos` of the message in flight, or -1 if unchecked. */
static int expected_byte(const struct load_conn *c, size_t pos)
{
    unsigned tag = (unsigned)(c->seq * 131 + c->id) & 0xff;

    if (pos == msg_size - 1)
        return (int)(tag ^ 0xff);
    if (pos == 0)
        return (int)tag;
    return -1;
}

/* Makes the next message (the caller sends it): its first and last bytes
 * encode the connection and the sequence number. */
static void load_next_message(struct load_conn *c)
{
    c->sent = 0;
    c->received = 0;
    c->msg[0] = (unsigned char)expected_byte(c, 0);
    c->msg[msg_size - 1] = (unsigned char)expected_byte(c, msg_size - 1);
}

static void check_chunk(const struct load_conn *c, const unsigned char *data, size_t len)
{
    size_t checked[2] = {0, msg_size - 1};

    for (int i = 0; i < 2; i++) {
        size_t pos = checked[i];

        if (pos >= c->received && pos < c->received + len &&
            data[pos - c->received] != expected_byte(c, pos))
            fail("connection %u: message %llu: wrong byte at offset %zu", c->id,
                 (unsigned long long)c->seq, pos);
    }
}

/* len bytes of echo came back: checked and counted. Returns 1 when they
 * complete the message (one request, counted if `counting`: the caller
 * starts the next), else 0. */
static int load_received(struct load_conn *c, const unsigned char *data, size_t len,
                         int counting)
{
    if (c->received + len > c->sent)
        fail("connection %u: received more bytes than were sent", c->id);
    check_chunk(c, data, len);
    c->received += len;
    if (c->received < msg_size)
        return 0;
    completed++;
    counted += counting;
    c->seq++;
    return 1;
}

/* WARMUP_SECONDS, then `seconds` counted: each event goes to on_event with
 * whether its requests count. */
static void load_run(double seconds, void (*on_event)(void *c, uint32_t events,
                                                       int counting))
{
    struct epoll_event events[MAX_EVENTS];
    double t = bench_now();
    double warm_end = t + WARMUP_SECONDS;
    double end = warm_end + seconds;

    while (t < end) {
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, (int)((end - t) * 1000) + 1);

        if (n < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        t = bench_now();
        for (int i = 0; i < n && t < end; i++)
            on_event(events[i].data.ptr, events[i].events, t >= warm_end);
    }
}

/* The result line (fails if no request completed). */
static void load_report(double seconds)
{
    if (!completed)
        fail("no request completed in %.1f s", WARMUP_SECONDS + seconds);
    printf("requests=%llu seconds=%.3f rps=%.1f total_requests=%llu\n",
           (unsigned long long)counted, seconds, (double)counted / seconds,
           (unsigned long long)completed);
}

#endif
