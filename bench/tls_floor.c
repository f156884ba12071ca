/*
 * tls_floor: the plainest, fastest TLS echo server we know how to write:
 * OpenSSL over epoll, the floor of the TLS benchmark (bench/tls_run.py).
 *
 * One thread, level-triggered epoll, OpenSSL driven through a BIO pair
 * (bench/tls_bench.h): per readiness event one read() into OpenSSL's ring,
 * every whole record decrypted into a static buffer and encrypted straight
 * back, then one send() of the records. Only when the socket refuses the
 * echo does the connection stop reading (and wait for EPOLLOUT), so a peer
 * that does not read never makes it buffer more.
 *
 * Usage: tls_floor PORT CERT KEY
 * Listens on 127.0.0.1:PORT with the PEM certificate chain CERT and key KEY,
 * prints "ready" once listening, runs until SIGTERM or SIGINT, then closes
 * everything and exits 0. A connection whose handshake or records fail is
 * closed.
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

#include "tls_bench.h"

#define PLAIN_SIZE (256 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    tls_pipe tls;
    int handshake_done;
    int waiting_out;     /* EPOLLOUT only: the echo did not fit */
    char *pending;       /* plaintext SSL_write has not taken yet */
    size_t pending_len, pending_off;
    struct conn *prev, *next;
};

static char plain[PLAIN_SIZE];
static int epoll_fd, listen_fd, signal_fd;
static SSL_CTX *ssl_ctx;
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
    close(c->fd);
    tls_pipe_free(&c->tls);
    free(c->pending);
    free(c);
}

static void conn_open(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;
    if (!c || tls_pipe_init(&c->tls, ssl_ctx, 1) < 0)
        die("out of memory");
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
            break;
    }
}

/* Encrypt data (as much as OpenSSL's ring takes, sending when it fills);
 * keep what the socket refused as pending. Returns -1 if c was closed. */
static int echo(struct conn *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        int n = SSL_write(c->tls.ssl, data + off, (int)(len - off));
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (tls_pipe_status(&c->tls, n) <= 0)
            return -1;
        int f = tls_pipe_flush(&c->tls, c->fd);
        if (f < 0)
            return -1;
        if (f == 1) { /* the socket is full: keep the rest for EPOLLOUT */
            c->pending_len = len - off;
            c->pending_off = 0;
            c->pending = malloc(c->pending_len);
            if (!c->pending)
                die("malloc");
            memcpy(c->pending, data + off, c->pending_len);
            return 0;
        }
    }
    return 0;
}

/* Decrypt every whole record in the ring and echo it; then send. */
static void process(struct conn *c)
{
    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->tls.ssl);
        if (r == 1)
            c->handshake_done = 1;
        else if (tls_pipe_status(&c->tls, r) < 0) {
            conn_close(c);
            return;
        }
    }
    while (c->handshake_done && !c->pending) {
        int n = SSL_read(c->tls.ssl, plain, sizeof(plain));
        if (n <= 0) {
            if (tls_pipe_status(&c->tls, n) <= 0) { /* close_notify or error */
                conn_close(c);
                return;
            }
            break;
        }
        if (echo(c, plain, (size_t)n) < 0) {
            conn_close(c);
            return;
        }
    }
    int f = tls_pipe_flush(&c->tls, c->fd);
    if (f < 0) {
        conn_close(c);
        return;
    }
    if ((f == 1 || c->pending) && !c->waiting_out) {
        c->waiting_out = 1;
        watch(EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);
    }
}

static void on_readable(struct conn *c)
{
    ssize_t n = tls_pipe_fill(&c->tls, c->fd);
    if (n == -1 || n == -2) {
        conn_close(c);
        return;
    }
    process(c);
}

static void on_writable(struct conn *c)
{
    int f = tls_pipe_flush(&c->tls, c->fd);
    if (f < 0) {
        conn_close(c);
        return;
    }
    if (f == 1)
        return;
    if (c->pending) {
        char *p = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        int r = echo(c, p, len);
        free(p);
        if (r < 0) {
            conn_close(c);
            return;
        }
        if (c->pending || tls_pipe_pending_out(&c->tls))
            return;
    }
    c->waiting_out = 0;
    watch(EPOLL_CTL_MOD, c->fd, EPOLLIN, c);
    process(c); /* records that arrived meanwhile wait in the ring */
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
            else if (((struct conn *)ptr)->waiting_out)
                on_writable(ptr);
            else
                on_readable(ptr);
        }
    }
}

int main(int argc, char **argv)
{
    int port = argc == 4 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!ssl_ctx)
        die("SSL_CTX_new");
    tls_bench_configure(ssl_ctx);
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
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
    SSL_CTX_free(ssl_ctx);
    return 0;
}
