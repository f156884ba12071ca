/*
 * floor_echo: the plainest, fastest epoll echo server we know how to write.
 *
 * It is the benchmark's floor: every other echo server is reported as a ratio
 * to it. One thread, level-triggered epoll, one read() per readiness event into
 * a static buffer, echoed at once; only a partial write costs a copy.
 *
 * Usage: floor_echo PORT
 * Listens on 127.0.0.1:PORT, prints "ready" once listening, runs until SIGTERM
 * or SIGINT, then closes everything and exits 0.
 */
#define _GNU_SOURCE
#include <string.h>

#include "bench_server.h"

#define READ_SIZE (256 * 1024)

/*
 * One accepted connection. While `pending` holds the unsent tail of a partial
 * write, the connection waits for EPOLLOUT only: a peer that does not read
 * stops being read from, so the tail never grows.
 */
struct conn {
    struct floor_conn base; /* fd, and the list of open connections */
    char *pending;
    size_t pending_len;
    size_t pending_off;
};

static char read_buf[READ_SIZE];

static void conn_close(struct floor_conn *base)
{
    struct conn *c = (struct conn *)base;

    floor_conn_remove(base);
    free(c->pending);
    free(c);
}

static void conn_open(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        die("calloc");
    floor_conn_add(&c->base, fd);
}

static int would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Sends what read() just brought in; keeps a copy of whatever the socket refused. */
static void echo(struct conn *c, size_t len)
{
    ssize_t n = write(c->base.fd, read_buf, len);

    if (n == (ssize_t)len)
        return;
    if (n < 0) {
        if (!would_block()) {
            conn_close(&c->base);
            return;
        }
        n = 0;
    }
    c->pending_len = len - (size_t)n;
    c->pending_off = 0;
    c->pending = malloc(c->pending_len);
    if (!c->pending)
        die("malloc");
    memcpy(c->pending, read_buf + n, c->pending_len);
    watch(EPOLL_CTL_MOD, c->base.fd, EPOLLOUT, c);
}

static void on_readable(struct conn *c)
{
    ssize_t n = read(c->base.fd, read_buf, sizeof(read_buf));

    if (n > 0)
        echo(c, (size_t)n);
    else if (n == 0 || !would_block())
        conn_close(&c->base);
}

static void on_writable(struct conn *c)
{
    ssize_t n = write(c->base.fd, c->pending + c->pending_off,
                      c->pending_len - c->pending_off);

    if (n < 0) {
        if (!would_block())
            conn_close(&c->base);
        return;
    }
    c->pending_off += (size_t)n;
    if (c->pending_off < c->pending_len)
        return;
    free(c->pending);
    c->pending = NULL;
    watch(EPOLL_CTL_MOD, c->base.fd, EPOLLIN, c);
}

static void conn_event(struct floor_conn *base)
{
    struct conn *c = (struct conn *)base;

    if (c->pending)
        on_writable(c);
    else
        on_readable(c);
}

int main(int argc, char **argv)
{
    int port = floor_port(argc, argv, 1, "PORT");

    floor_serve(port, conn_open, conn_event, conn_close);
    return 0;
}
