/*
 * What every TCP floor echo server shares, whatever it waits with (epoll in
 * bench_server.h, io_uring in uring_floor_echo.c): the command line's PORT,
 * the listening socket on 127.0.0.1:PORT, TCP_NODELAY on each accepted
 * socket, SIGTERM and SIGINT as a readable signalfd, and dying on an error.
 * Defined once here, so that the floors differ only in how they wait and
 * move bytes.
 */
#ifndef TAPIO_BENCH_LISTEN_H
#define TAPIO_BENCH_LISTEN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
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

/* A non-blocking socket listening on 127.0.0.1:port. */
static int floor_listen_socket(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket");
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("bind");
    if (listen(fd, SOMAXCONN) < 0)
        die("listen");
    return fd;
}

/* Every server of the benchmark answers each message at once: no Nagle. */
static void floor_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Blocks SIGTERM and SIGINT and returns a non-blocking signalfd that becomes
 * readable when one arrives, so the server's loop needs no flag. Also ignores
 * SIGPIPE: a peer resetting mid-write must cost one connection, not the
 * process. */
static int floor_signal_fd(void)
{
    sigset_t set;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        die("sigprocmask");
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        die("signalfd");
    return fd;
}

/* Tells the harness (bench/run.py) that the server is listening. */
static void floor_ready(void)
{
    printf("ready\n");
    fflush(stdout);
}

#endif
