/*
 * udp_load: a closed-loop UDP echo load generator on one thread and epoll.
 *
 * Usage: udp_load HOST PORT CLIENTS SIZE SECONDS
 *
 * Each of CLIENTS connected UDP sockets keeps one SIZE-byte datagram in
 * flight: when its echo comes back, one round trip is counted and the next
 * datagram is sent. Round trips completed in the first WARMUP_SECONDS are not
 * counted; the run then lasts SECONDS (which may be fractional) and prints:
 *
 *   requests=N seconds=S rps=R total_requests=T lost=L
 *
 * where T also counts the warm-up, for dividing the server's whole CPU time,
 * and L is the number of datagrams (warm-up included) whose echo did not come
 * back within LOSS_TIMEOUT: the client then counts a loss and sends the next
 * datagram, so a lost datagram costs time but never stalls a client.
 *
 * Each datagram starts with its client's number and a sequence number. An
 * echo of the wrong size, of another client, or of a datagram not yet sent is
 * an error; a late echo of a datagram already counted lost is ignored.
 * Exits 1 on such an error, a socket error (ECONNREFUSED: nothing listens),
 * or if no round trip completed; 2 on bad usage. HOST must be a numeric
 * address: no name is looked up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
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
#define LOSS_TIMEOUT 0.1         /* seconds before a datagram counts as lost */
#define LOSS_SCAN_INTERVAL 0.01  /* how often clients are checked for losses */
#define MAX_DATAGRAM 65507       /* largest UDP payload over IPv4 */
#define MAX_EVENTS 256

/* The start of every datagram; the rest is filler. */
struct header {
    uint32_t client;
    uint32_t pad;
    uint64_t seq;
};

struct client {
    int fd;
    uint32_t id;
    uint64_t seq;      /* number of the datagram in flight */
    double sent_at;
};

static size_t dgram_size;
static int epoll_fd;
static unsigned char *send_buf;  /* shared: only the header differs per send */
static unsigned char recv_buf[MAX_DATAGRAM + 1];  /* +1 shows an oversized echo */
static uint64_t counted;    /* round trips completed inside the measured window */
static uint64_t completed;  /* all round trips, warm-up included */
static uint64_t lost;

static void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    bench_fail("udp_load", fmt, ap);
}


/* Sends datagram number c->seq. A datagram the kernel drops at once (ENOBUFS,
 * a full buffer) is left to the loss timeout, as if the network had lost it. */
static void send_next(struct client *c, double t)
{
    struct header h = {.client = c->id, .seq = c->seq};
    ssize_t n;

    memcpy(send_buf, &h, sizeof(h));
    c->sent_at = t;
    do
        n = send(c->fd, send_buf, dgram_size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
        fail("client %u: send: %s", c->id, strerror(errno));
}

/* True if the echo belongs to the datagram in flight; false for a late one. */
static int check_echo(const struct client *c, const unsigned char *data, size_t len)
{
    struct header h;

    if (len != dgram_size)
        fail("client %u: echo of %zu bytes, sent %zu", c->id, len, dgram_size);
    memcpy(&h, data, sizeof(h));
    if (h.client != c->id || h.seq > c->seq)
        fail("client %u: echo of client %u datagram %llu, sent up to %llu", c->id,
             h.client, (unsigned long long)h.seq, (unsigned long long)c->seq);
    return h.seq == c->seq;
}

static void on_readable(struct client *c, double t, int counting)
{
    ssize_t n = recv(c->fd, recv_buf, sizeof(recv_buf), 0);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail("client %u: recv: %s", c->id, strerror(errno));
    }
    if (!check_echo(c, recv_buf, (size_t)n))
        return;
    completed++;
    counted += counting;
    c->seq++;
    send_next(c, t);
}

/* Gives up on every datagram older than LOSS_TIMEOUT and sends the next. */
static void scan_for_losses(struct client *clients, int nclients, double t)
{
    for (int i = 0; i < nclients; i++) {
        struct client *c = &clients[i];

        if (t - c->sent_at >= LOSS_TIMEOUT) {
            lost++;
            c->seq++;
            send_next(c, t);
        }
    }
}

static void open_client(struct client *c, const struct addrinfo *ai)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    c->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fail("socket: %s", strerror(errno));
    /* connected: the kernel filters out anything not from the server */
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0)
        fail("client %u: connect: %s", c->id, strerror(errno));
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
}

static int wait_ms(double t, double until)
{
    return until > t ? (int)((until - t) * 1000) + 1 : 0;
}

static void run(struct client *clients, int nclients, double seconds)
{
    struct epoll_event events[MAX_EVENTS];
    double t = bench_now();
    double warm_end = t + WARMUP_SECONDS;
    double end = warm_end + seconds;
    double next_scan = t + LOSS_SCAN_INTERVAL;

    for (int i = 0; i < nclients; i++)
        send_next(&clients[i], t);
    while (t < end) {
        double wake = next_scan < end ? next_scan : end;
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, wait_ms(t, wake));

        if (n < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        t = bench_now();
        for (int i = 0; i < n && t < end; i++)
            on_readable(events[i].data.ptr, t, t >= warm_end);
        if (t >= next_scan) {
            scan_for_losses(clients, nclients, t);
            next_scan = t + LOSS_SCAN_INTERVAL;
        }
    }
}

static int parse_count(const char *s, long min, long max)
{
    char *end;
    long v = strtol(s, &end, 10);

    return *s && !*end && v >= min && v <= max ? (int)v : 0;
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
        .ai_socktype = SOCK_DGRAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
    };
    int rc = getaddrinfo(host, port, &hints, ai);

    if (rc)
        fail("%s port %s: %s", host, port, gai_strerror(rc));
}

static struct client *open_clients(const char *host, const char *port, int nclients)
{
    struct client *clients = calloc((size_t)nclients, sizeof(*clients));
    struct addrinfo *ai;

    if (!clients)
        fail("out of memory");
    resolve(host, port, &ai);
    for (int i = 0; i < nclients; i++) {
        clients[i].id = (uint32_t)i;
        open_client(&clients[i], ai);
    }
    freeaddrinfo(ai);
    return clients;
}

int main(int argc, char **argv)
{
    struct client *clients;
    int nclients = argc == 6 ? parse_count(argv[3], 1, 100000) : 0;
    double seconds = argc == 6 ? parse_seconds(argv[5]) : 0;

    dgram_size = argc == 6 ? (size_t)parse_count(argv[4], sizeof(struct header),
                                                 MAX_DATAGRAM) : 0;
    if (!nclients || !dgram_size || !seconds) {
        fprintf(stderr, "usage: %s HOST PORT CLIENTS SIZE SECONDS\n"
                "  (SIZE from %zu to %d bytes)\n", argv[0], sizeof(struct header),
                MAX_DATAGRAM);
        return 2;
    }
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        fail("epoll_create1: %s", strerror(errno));
    send_buf = malloc(dgram_size);
    if (!send_buf)
        fail("out of memory");
    memset(send_buf, 'x', dgram_size);
    clients = open_clients(argv[1], argv[2], nclients);
    run(clients, nclients, seconds);
    if (!completed)
        fail("no round trip completed in %.1f s", WARMUP_SECONDS + seconds);
    printf("requests=%llu seconds=%.3f rps=%.1f total_requests=%llu lost=%llu\n",
           (unsigned long long)counted, seconds, (double)counted / seconds,
           (unsigned long long)completed, (unsigned long long)lost);
    for (int i = 0; i < nclients; i++)
        close(clients[i].fd);
    free(clients);
    free(send_buf);
    close(epoll_fd);
    return 0;
}
