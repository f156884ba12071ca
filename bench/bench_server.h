/*
 * The plumbing the floor echo servers (floor_echo, tls_floor) share: one
 * thread, level-triggered epoll, a listening socket on 127.0.0.1:PORT, SIGTERM
 * and SIGINT read from a signalfd (so the loop needs no flag), and the list of
 * open connections that shutdown closes. Each server keeps only what it does
 * with a connection's bytes.
 *
 * The state is static: one server per program. floor_serve is called once
 * with constant callbacks, so the compiler calls (or inlines) the program's
 * functions directly, as if they were written in place.
 */
#ifndef TAPIO_BENCH_SERVER_H
#define TAPIO_BENCH_SERVER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* The start of each server's connection: its socket and its place in the list
 * of open connections. */
struct floor_conn {
    int fd;
    struct floor_conn *prev, *next;
};

static int epoll_fd, listen_fd, signal_fd;
/* Every open connection, so that shutdown can close them all. */
static struct floor_conn conns = {.prev = &conns, .next = &conns};

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

/* Takes the accepted socket fd into c, lists c and watches it for EPOLLIN. */
static void floor_conn_add(struct floor_conn *c, int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->next = conns.next;
    c->prev = &conns;
    conns.next->prev = c;
    conns.next = c;
    watch(EPOLL_CTL_ADD, fd, EPOLLIN, c);
}

/* Unlists c and closes its socket (which also drops it from the epoll set). */
static void floor_conn_remove(struct floor_conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd);
}

/* PORT, the first of the nargs arguments; on bad usage, says `usage` (after
 * the program's name) and exits 2. */
static int floor_port(int argc, char **argv, int nargs, const char *usage)
{
    int port = argc == nargs + 1 ? atoi(argv[1]) : 0;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        exit(2);
    }
    return port;
}

static void on_accept(void (*conn_open)(int fd))
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0)
            conn_open(fd);
        else if (errno != EINTR && errno != ECONNABORTED)
            break; /* EAGAIN: backlog drained; anything else: retry on next event */
    }
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

/* Until SIGTERM or SIGINT: the listening socket's events accept, each
 * connection's goes to conn_event. */
static void run(void (*conn_open)(int fd), void (*conn_event)(struct floor_conn *c))
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
                on_accept(conn_open);
            else
                conn_event(ptr);
        }
    }
}

/*
 * Listens on 127.0.0.1:port, prints "ready", and runs until SIGTERM or SIGINT:
 * conn_open(fd) takes each accepted socket (and floor_conn_adds it),
 * conn_event(c) each readiness event of a connection. Then closes every
 * connection still open with conn_close, and the server's own descriptors.
 */
static void floor_serve(int port, void (*conn_open)(int fd),
                        void (*conn_event)(struct floor_conn *c),
                        void (*conn_close)(struct floor_conn *c))
{
    /* a peer resetting mid-write must cost one connection, not the process */
    signal(SIGPIPE, SIG_IGN);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die("epoll_create1");
    watch_signals();
    listen_on(port);
    printf("ready\n");
    fflush(stdout);
    run(conn_open, conn_event);
    while (conns.next != &conns)
        conn_close(conns.next);
    close(listen_fd);
    close(signal_fd);
    close(epoll_fd);
}

#endif
