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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)
#define MAX_EVENTS 256

/*
 * One accepted connection. While `pending` holds the unsent tail of a partial
 * write, the connection waits for EPOLLOUT only: a peer that does not read
 * stops being read from, so the tail never grows.
 */
struct conn {
    int fd;
    char *pending;
    size_t pending_len;
    size_t pending_off;
    struct conn *prev, *next;
};

static char read_buf[READ_SIZE];
static int epoll_fd;
static int listen_fd;
static int signal_fd;
/* Every open connection, so that shutdown can close them all. */
static struct conn conns = {.prev = &conns, .next = &conns};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void watch(int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};

    if (epoll_ctl(epoll_fd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

static void conn_close(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd); /* also drops it from the epoll set */
    free(c->pending);
    free(c);
}

static void conn_open(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c)
        die("calloc");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->next = conns.next;
    c->prev = &conns;
    conns.next->prev = c;
    conns.next = c;
    watch(EPOLL_CTL_ADD, fd, EPOLLIN, c);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

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
    watch(EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);
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
    watch(EPOLL_CTL_MOD, c->fd, EPOLLIN, c);
}

static void listen_on(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0)
        die("socket");
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("bind");
    if (listen(listen_fd, SOMAXCONN) < 0)
        die("listen");
    watch(EPOLL_CTL_ADD, listen_fd, EPOLLIN, &listen_fd);
}

/* SIGTERM and SIGINT arrive as readable events, so the loop needs no flag. */
static void watch_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        die("sigprocmask");
    signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0)
        die("signalfd");
    watch(EPOLL_CTL_ADD, signal_fd, EPOLLIN, &signal_fd);
}

static void run(void)
{
    struct epoll_event events[MAX_EVENTS];

    for (;;) {
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);

        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;

            if (ptr == &signal_fd)
                return;
            if (ptr == &listen_fd)
                on_accept();
            else if (((struct conn *)ptr)->pending)
                on_writable(ptr);
            else
                on_readable(ptr);
        }
    }
}

int main(int argc, char **argv)
{
    int port = argc == 2 ? atoi(argv[1]) : 0;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    /* a peer resetting mid-write must cost one connection, not the process */
    signal(SIGPIPE, SIG_IGN);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die("epoll_create1");
    watch_signals();
    listen_on(port);
    printf("ready\n");
    fflush(stdout);
    run();
    while (conns.next != &conns)
        conn_close(conns.next);
    close(listen_fd);
    close(signal_fd);
    close(epoll_fd);
    return 0;
}
