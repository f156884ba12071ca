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
#include <string.h>

#include "bench_server.h"
#include "tls_bench.h"

#define PLAIN_SIZE (256 * 1024)

struct conn {
    struct floor_conn base; /* fd, and the list of open connections */
    tls_pipe tls;
    int handshake_done;
    int waiting_out;     /* EPOLLOUT only: the echo did not fit */
    char *pending;       /* plaintext SSL_write has not taken yet */
    size_t pending_len, pending_off;
};

static char plain[PLAIN_SIZE];
static SSL_CTX *ssl_ctx;

static void conn_close(struct floor_conn *base)
{
    struct conn *c = (struct conn *)base;

    floor_conn_remove(base);
    tls_pipe_free(&c->tls);
    free(c->pending);
    free(c);
}

static void conn_open(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c || tls_pipe_init(&c->tls, ssl_ctx, 1) < 0)
        die("out of memory");
    floor_conn_add(&c->base, fd);
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
        int f = tls_pipe_flush(&c->tls, c->base.fd);
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
            conn_close(&c->base);
            return;
        }
    }
    while (c->handshake_done && !c->pending) {
        int n = SSL_read(c->tls.ssl, plain, sizeof(plain));
        if (n <= 0) {
            if (tls_pipe_status(&c->tls, n) <= 0) { /* close_notify or error */
                conn_close(&c->base);
                return;
            }
            break;
        }
        if (echo(c, plain, (size_t)n) < 0) {
            conn_close(&c->base);
            return;
        }
    }
    int f = tls_pipe_flush(&c->tls, c->base.fd);
    if (f < 0) {
        conn_close(&c->base);
        return;
    }
    if ((f == 1 || c->pending) && !c->waiting_out) {
        c->waiting_out = 1;
        watch(EPOLL_CTL_MOD, c->base.fd, EPOLLOUT, c);
    }
}

static void on_readable(struct conn *c)
{
    ssize_t n = tls_pipe_fill(&c->tls, c->base.fd);
    if (n == -1 || n == -2) {
        conn_close(&c->base);
        return;
    }
    process(c);
}

static void on_writable(struct conn *c)
{
    int f = tls_pipe_flush(&c->tls, c->base.fd);
    if (f < 0) {
        conn_close(&c->base);
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
            conn_close(&c->base);
            return;
        }
        if (c->pending || tls_pipe_pending_out(&c->tls))
            return;
    }
    c->waiting_out = 0;
    watch(EPOLL_CTL_MOD, c->base.fd, EPOLLIN, c);
    process(c); /* records that arrived meanwhile wait in the ring */
}

static void conn_event(struct floor_conn *base)
{
    struct conn *c = (struct conn *)base;

    if (c->waiting_out)
        on_writable(c);
    else
        on_readable(c);
}

int main(int argc, char **argv)
{
    int port = floor_port(argc, argv, 3, "PORT CERT KEY");

    ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!ssl_ctx)
        die("SSL_CTX_new");
    tls_bench_configure(ssl_ctx);
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    floor_serve(port, conn_open, conn_event, conn_close);
    SSL_CTX_free(ssl_ctx);
    return 0;
}
