/*
 * poll_floor_echo: the plainest, fastest poll(2) echo server we know how to
 * write. It is the floor of libtapio's poll backend (TAPIO_BACKEND=poll), as
 * floor_echo is of its epoll one and uring_floor_echo of its io_uring one.
 *
 * It does what floor_echo does, waiting with poll(2) instead of epoll: one
 * thread, one read() per readiness event into a static buffer, echoed at
 * once; only a partial write costs a copy. The watched descriptors are one
 * dense pollfd array, kept between calls (the signalfd, the listening socket,
 * then the connections), so a wait costs the poll(2) call and no rebuilding;
 * a closed connection's slot takes the last one.
 *
 * Usage: poll_floor_echo PORT
 * Listens on 127.0.0.1:PORT, prints "ready" once listening, runs until SIGTERM
 * or SIGINT, then closes everything and exits 0.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <string.h>

#include "bench_listen.h"

#define READ_SIZE (256 * 1024)
enum { SIGNAL_SLOT, LISTEN_SLOT, FIRST_CONN_SLOT };

/*
 * One accepted connection. While `pending` holds the unsent tail of a partial
 * write, the connection waits for POLLOUT only: a peer that does not read
 * stops being read from, so the tail never grows.
 */
struct conn {
    int fd;
    size_t slot; /* its place in pfds[] and conns[] */
    char *pending;
    size_t pending_len;
    size_t pending_off;
};

static char read_buf[READ_SIZE];
/* pfds[i] is watched for conns[i] (NULL for the signalfd and the listener). */
static struct pollfd *pfds;
static struct conn **conns;
static size_t nfds, cap;

static void add_slot(int fd, struct conn *c)
{
    if (nfds == cap) {
        cap = cap ? cap * 2 : 64;
        pfds = realloc(pfds, cap * sizeof(*pfds));
        conns = realloc(conns, cap * sizeof(*conns));
        if (!pfds || !conns)
            die("realloc");
    }
    /* revents 0: a connection accepted mid-dispatch has no event of this wait */
    pfds[nfds] = (struct pollfd){.fd = fd, .events = POLLIN};
    conns[nfds] = c;
    if (c)
        c->slot = nfds;
    nfds++;
}

/* Closes c; the last slot moves into its place (with its revents, so that
 * the dispatch loop handles it there). */
static void conn_close(struct conn *c)
{
    size_t last = --nfds;

    if (c->slot != last) {
        pfds[c->slot] = pfds[last];
        conns[c->slot] = conns[last];
        conns[c->slot]->slot = c->slot;
    }
    close(c->fd);
    free(c->pending);
    free(c);
}

static void conn_open(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        die("calloc");
    floor_nodelay(fd);
    c->fd = fd;
    add_slot(fd, c);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(pfds[LISTEN_SLOT].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0)
            conn_open(fd);
        else if (errno != EINTR && errno != ECONNABORTED)
            break; /* EAGAIN: backlog drained; anything else: retry on next event */
    }
}

static int would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Sends what read() just brought in; keeps a copy of whatever the socket refused. */
static void echo(struct conn *c, size_t len)
{
    ssize_t n = write(c->fd, read_buf, len);

    if (n == (ssize_t)len)
        return;
    if (n < 0) {
        if (!would_block()) {
            conn_close(c);
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
    pfds[c->slot].events = POLLOUT;
}

static void on_readable(struct conn *c)
{
    ssize_t n = read(c->fd, read_buf, sizeof(read_buf));

    if (n > 0)
        echo(c, (size_t)n);
    else if (n == 0 || !would_block())
        conn_close(c);
}

static void on_writable(struct conn *c)
{
    ssize_t n = write(c->fd, c->pending + c->pending_off,
                      c->pending_len - c->pending_off);

    if (n < 0) {
        if (!would_block())
            conn_close(c);
        return;
    }
    c->pending_off += (size_t)n;
    if (c->pending_off < c->pending_len)
        return;
    free(c->pending);
    c->pending = NULL;
    pfds[c->slot].events = POLLIN;
}

/* A connection's event (POLLERR and POLLHUP included: its read or write then
 * fails or sees EOF, and closes it). */
static void conn_event(struct conn *c)
{
    if (c->pending)
        on_writable(c);
    else
        on_readable(c);
}

/* Until SIGTERM or SIGINT. The slots are visited in order; one that a close
 * refilled from the end is visited again, and poll's count ends the visit
 * once every ready slot is handled. */
static void run(void)
{
    for (;;) {
        int n = poll(pfds, nfds, -1);

        if (n < 0 && errno != EINTR)
            die("poll");
        if (n > 0 && pfds[SIGNAL_SLOT].revents)
            return;
        for (size_t i = LISTEN_SLOT; i < nfds && n > 0;) {
            size_t open = nfds;

            if (!pfds[i].revents) {
                i++;
                continue;
            }
            n--;
            if (i == LISTEN_SLOT)
                on_accept();
            else
                conn_event(conns[i]);
            if (nfds >= open) /* nothing closed: slot i is done */
                i++;
        }
    }
}

int main(int argc, char **argv)
{
    int port = floor_port(argc, argv, 1, "PORT");

    add_slot(floor_signal_fd(), NULL);
    add_slot(floor_listen_socket(port), NULL);
    floor_ready();
    run();
    while (nfds > FIRST_CONN_SLOT)
        conn_close(conns[nfds - 1]);
    close(pfds[LISTEN_SLOT].fd);
    close(pfds[SIGNAL_SLOT].fd);
    free(pfds);
    free(conns);
    return 0;
}
