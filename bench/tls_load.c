/*
 * tls_load: bench/load_client over TLS — a closed-loop echo load generator
 * on one thread, epoll and OpenSSL (through BIO pairs, bench/tls_bench.h).
 *
 * Usage: tls_load HOST PORT CONNECTIONS MSG_SIZE SECONDS
 *
 * Each of CONNECTIONS connections completes a TLS handshake (SNI
 * "localhost"; the certificate is not verified: the benchmark measures the
 * servers, not the PKI), then sends one MSG_SIZE-byte message, waits until
 * all of it has come back, counts one request and sends the next. Requests
 * completed in the first WARMUP_SECONDS (the handshakes happen there too)
 * are not counted; the run then lasts SECONDS and prints one line:
 *
 *   requests=N seconds=S rps=R total_requests=T
 *
 * as load_client does (T counts the warm-up too, for dividing the server's
 * whole CPU time). Each message's first and last bytes encode its
 * connection and sequence number. Exits 1 on a mismatch, a connection or TLS
 * error, or if no request completed; 2 on bad usage. HOST must be numeric.
 */
#define _GNU_SOURCE
#include "bench_load.h"
#include "tls_bench.h"

#define PLAIN_SIZE (256 * 1024)

struct conn {
    struct load_conn base; /* sent counts the plaintext SSL_write took */
    int handshake_done;
    tls_pipe tls;
};

static SSL_CTX *ssl_ctx;
static unsigned char plain[PLAIN_SIZE];

/* Hand the message to OpenSSL (as far as its ring takes it) and send the
 * records; EPOLLOUT covers what is left. */
static void pump_out(struct conn *c)
{
    struct load_conn *b = &c->base;

    for (;;) {
        int wants_read = 0;
        while (c->handshake_done && b->sent < msg_size) {
            int n = SSL_write(c->tls.ssl, b->msg + b->sent,
                              (int)(msg_size - b->sent));
            if (n <= 0) {
                if (tls_pipe_status(&c->tls, n) <= 0)
                    fail("connection %u: SSL_write failed", b->id);
                /* the ring is full: send first; or records must come in */
                wants_read = SSL_get_error(c->tls.ssl, n) == SSL_ERROR_WANT_READ;
                break;
            }
            b->sent += (size_t)n;
        }
        int f = tls_pipe_flush(&c->tls, b->fd);
        if (f < 0)
            fail("connection %u: send: %s", b->id, strerror(errno));
        if (f == 1 || wants_read || !c->handshake_done || b->sent == msg_size) {
            load_set_interest(b, f == 1);
            return;
        }
        /* The ring emptied: SSL_write may take more now. */
    }
}

static void start_message(struct conn *c)
{
    load_next_message(&c->base);
    pump_out(c);
}

/* Decrypt what arrived: handshake messages, then the echo. */
static void process(struct conn *c, int counting)
{
    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->tls.ssl);
        if (r != 1) {
            if (tls_pipe_status(&c->tls, r) <= 0)
                fail("connection %u: TLS handshake failed", c->base.id);
            pump_out(c);
            return;
        }
        c->handshake_done = 1;
        start_message(c);
    }
    for (;;) {
        int n = SSL_read(c->tls.ssl, plain, sizeof(plain));
        if (n <= 0) {
            int s = tls_pipe_status(&c->tls, n);
            if (s == 0)
                fail("connection %u: closed by the server", c->base.id);
            if (s < 0)
                fail("connection %u: TLS error", c->base.id);
            break;
        }
        if (load_received(&c->base, plain, (size_t)n, counting))
            start_message(c);
    }
    if (c->base.sent < msg_size || tls_pipe_pending_out(&c->tls))
        pump_out(c);
}

static void on_event(void *conn, uint32_t events, int counting)
{
    struct conn *c = conn;

    if (!c->base.connected) {
        load_connected(&c->base);
        process(c, 0); /* the ClientHello */
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t n = tls_pipe_fill(&c->tls, c->base.fd);
        if (n == -1)
            fail("connection %u: closed by the server", c->base.id);
        if (n == -2)
            fail("connection %u: read: %s", c->base.id, strerror(errno));
        process(c, counting);
    }
    if (c->base.want_out && (events & EPOLLOUT))
        pump_out(c);
}

int main(int argc, char **argv)
{
    struct load_args args = load_parse_args(argc, argv, "tls_load");
    struct conn *conns = load_alloc(args.connections, sizeof(*conns));

    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ssl_ctx)
        fail("SSL_CTX_new failed");
    tls_bench_configure(ssl_ctx);
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    for (int i = 0; i < args.connections; i++) {
        load_open(&conns[i].base, (unsigned)i, args.ai);
        if (tls_pipe_init(&conns[i].tls, ssl_ctx, 0) < 0)
            fail("out of memory");
        SSL_set_tlsext_host_name(conns[i].tls.ssl, "localhost");
    }
    freeaddrinfo(args.ai);
    load_run(args.seconds, on_event);
    load_report(args.seconds);
    for (int i = 0; i < args.connections; i++) {
        load_close(&conns[i].base);
        tls_pipe_free(&conns[i].tls);
    }
    free(conns);
    close(epoll_fd);
    SSL_CTX_free(ssl_ctx);
    return 0;
}
