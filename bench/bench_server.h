/*
 * The plumbing the epoll floor echo servers (floor_echo, tls_floor) share:
 * one thread, level-triggered epoll over the listening socket, the signalfd
 * (both from bench_listen.h) and the connections, and the list of open
 * connections that shutdown closes. Each server keeps only what it does with
 * a connection's bytes.
 *
 * The state is static: one server per program. floor_serve is called once
 * with constant callbacks, so the compiler calls (or inlines) the program's
 * functions directly, as if they were written in place.
 */
#ifndef TAPIO_BENCH_SERVER_H
#define TAPIO_BENCH_SERVER_H

#include <stdint.h>
#include <sys/epoll.h>

#include "bench_listen.h"

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

static void watch(int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};

    if (epoll_ctl(epoll_fd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

/* Takes the accepted socket fd into c, lists c and watches it for EPOLLIN. */
static void floor_conn_add(struct floor_conn *c, int fd)
{
    floor_nodelay(fd);
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
    listen_fd = floor_listen_socket(port);
    watch(EPOLL_CTL_ADD, listen_fd, EPOLLIN, &listen_fd);
}

/* SIGTERM and SIGINT arrive as readable events, so the loop needs no flag. */
static void watch_signals(void)
{
    signal_fd = floor_signal_fd();
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
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die("epoll_create1");
    watch_signals();
    listen_on(port);
    floor_ready();
    run(conn_open, conn_event);
    while (conns.next != &conns)
        conn_close(conns.next);
    close(listen_fd);
    close(signal_fd);
    close(epoll_fd);
}

#endif
