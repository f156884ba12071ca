/*
 * TLS plumbing shared by the bare OpenSSL benchmark programs (tls_floor,
 * tls_load): OpenSSL over a BIO pair, so that records move between the
 * socket and OpenSSL's ring buffers with one read() and one send() per
 * readiness event and no copy of our own (BIO_nwrite0/BIO_nread0 hand out
 * the rings' memory).
 */
#ifndef TAPIO_BENCH_TLS_H
#define TAPIO_BENCH_TLS_H

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Each direction's ring: room for a read() of this size, or a 256 KiB echo. */
#define TLS_BENCH_RING (256 * 1024 + 4096)

typedef struct tls_pipe {
    SSL *ssl;
    BIO *net; /* our end of the pair: records from the peer go in, ours out */
} tls_pipe;

/* 0, or -1 (out of memory). */
static inline int tls_pipe_init(tls_pipe *p, SSL_CTX *ctx, int server)
{
    BIO *inner = NULL;
    p->net = NULL;
    p->ssl = SSL_new(ctx);
    if (!p->ssl || !BIO_new_bio_pair(&inner, TLS_BENCH_RING, &p->net,
                                     TLS_BENCH_RING)) {
        SSL_free(p->ssl);
        p->ssl = NULL;
        return -1;
    }
    SSL_set_bio(p->ssl, inner, inner);
    if (server)
        SSL_set_accept_state(p->ssl);
    else
        SSL_set_connect_state(p->ssl);
    return 0;
}

static inline void tls_pipe_free(tls_pipe *p)
{
    SSL_free(p->ssl); /* frees the inner BIO */
    BIO_free(p->net);
    p->ssl = NULL;
    p->net = NULL;
}

/*
 * One read() from fd straight into the incoming ring. Returns the bytes
 * read (0 when the ring is full), -1 on EOF, -2 on an error (errno), or -3
 * when the socket has nothing (EAGAIN).
 */
static inline ssize_t tls_pipe_fill(tls_pipe *p, int fd)
{
    char *space;
    ssize_t room = BIO_nwrite0(p->net, &space);
    if (room <= 0)
        return 0;
    ssize_t n;
    do
        n = read(fd, space, (size_t)room);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        BIO_nwrite(p->net, &space, (int)n);
        return n;
    }
    if (n == 0)
        return -1;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -3 : -2;
}

/* Send the records OpenSSL produced: 0 when all went, 1 when the socket is
 * full (wait for EPOLLOUT), -1 on an error (errno). */
static inline int tls_pipe_flush(tls_pipe *p, int fd)
{
    for (;;) {
        char *data;
        ssize_t len = BIO_nread0(p->net, &data);
        if (len <= 0)
            return 0;
        ssize_t n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        }
        BIO_nread(p->net, &data, (int)n);
        if (n < len)
            return 1;
    }
}

/* Records waiting to be sent. */
static inline size_t tls_pipe_pending_out(tls_pipe *p)
{
    return BIO_ctrl_pending(p->net);
}

/* SSL_get_error's verdict on a result <= 0: 1 to retry later (want read or
 * write), 0 for the peer's close_notify, -1 for an error. */
static inline int tls_pipe_status(tls_pipe *p, int r)
{
    switch (SSL_get_error(p->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

/* The settings libtapio's contexts use, so that both sides of a comparison
 * negotiate the same protocol and cipher. */
static inline void tls_bench_configure(SSL_CTX *ctx)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_ENABLE_PARTIAL_WRITE);
}

#endif
