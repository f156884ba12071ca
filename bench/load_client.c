/*
 * load_client: a closed-loop echo load generator on one thread and epoll.
 *
 * Usage: load_client HOST PORT CONNECTIONS MSG_SIZE SECONDS
 *
 * Each of CONNECTIONS connections sends one MSG_SIZE-byte message, waits until
 * all of it has come back, counts one request and sends the next. Requests
 * completed in the first WARMUP_SECONDS are not counted; the run then lasts
 * SECONDS (which may be fractional) and prints one line:
 *
 *   requests=N seconds=S rps=R total_requests=T
 *
 * where T also counts the warm-up, for dividing the server's whole CPU time.
 * Each message's first and last bytes encode its connection and sequence
 * number, so a server that mixes up, repeats or corrupts data is caught
 * cheaply.
 * Exits 1 on a mismatch, a connection error, or if no request completed;
 * 2 on bad usage. HOST must be a numeric address: no name is looked up.
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

#define WARMUP_SECONDS 0.3
#define READ_SIZE (256 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    int connected;
    int want_out;      /* EPOLLOUT is in the interest set */
    unsigned id;
    uint64_t seq;      /* number of the message in flight */
    size_t sent;
    size_t received;
    unsigned char *msg;
};

static size_t msg_size;
static int epoll_fd;
static unsigned char read_buf[READ_SIZE];
static uint64_t counted;      /* requests completed inside the measured window */
static uint64_t completed;    /* all requests, warm-up included */

static void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    bench_fail("load_client", fmt, ap);
}


/* The byte expected at `pos` of the message in flight, or -1 if unchecked. */
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
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    if (want_out)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* Sends as much of the message as the socket takes; EPOLLOUT covers the rest. */
static void send_some(struct conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, c->msg + c->sent, msg_size - c->sent, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fail("connection %u: send: %s", c->id, strerror(errno));
            break;
        }
        c->sent += (size_t)n;
    }
    if (c->want_out != (c->sent < msg_size))
        set_interest(c, c->sent < msg_size);
}

static void start_message(struct conn *c)
{
    c->sent = 0;
    c->received = 0;
    c->msg[0] = (unsigned char)expected_byte(c, 0);
    c->msg[msg_size - 1] = (unsigned char)expected_byte(c, msg_size - 1);
    send_some(c);
}

static void check_chunk(const struct conn *c, const unsigned char *data, size_t len)
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

static void on_readable(struct conn *c, int counting)
{
    ssize_t n = read(c->fd, read_buf, sizeof(read_buf));

    if (n == 0)
        fail("connection %u: closed by the server", c->id);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail("connection %u: read: %s", c->id, strerror(errno));
    }
    if (c->received + (size_t)n > c->sent)
        fail("connection %u: received more bytes than were sent", c->id);
    check_chunk(c, read_buf, (size_t)n);
    c->received += (size_t)n;
    if (c->received < msg_size)
        return;
    completed++;
    counted += counting;
    c->seq++;
    start_message(c);
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
    start_message(c);
}

static void on_event(struct conn *c, uint32_t events, int counting)
{
    if (!c->connected) {
        on_connected(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c, counting);
    if (c->want_out && (events & EPOLLOUT))
        send_some(c);
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
    /* writable once connected; the first event completes the connect */
    c->want_out = 1;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->msg = malloc(msg_size);
    if (!c->msg)
        fail("out of memory");
    memset(c->msg, 'x', msg_size);
}

static void run(double seconds)
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

static void resolve(const char *host, const char *port, struct addrinfo **ai)
{
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
    };
    int rc = getaddrinfo(host, port, &hints, ai);

    if (rc)
        fail("%s port %s: %s", host, port, gai_strerror(rc));
}

int main(int argc, char **argv)
{
    struct addrinfo *ai;
    struct conn *conns;
    int nconns = argc == 6 ? parse_count(argv[3], 100000) : 0;
    double seconds = argc == 6 ? parse_seconds(argv[5]) : 0;

    msg_size = argc == 6 ? (size_t)parse_count(argv[4], 1 << 30) : 0;
    if (!nconns || !msg_size || !seconds) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS MSG_SIZE SECONDS\n", argv[0]);
        return 2;
    }
    resolve(argv[1], argv[2], &ai);
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
        free(conns[i].msg);
    }
    free(conns);
    close(epoll_fd);
    return 0;
}
