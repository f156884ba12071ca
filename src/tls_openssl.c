/* libtapio's TLS engine: OpenSSL with memory BIOs, and the contexts that
 * configure it. */
#include "internal.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

struct tapio_tls_context {
    SSL_CTX *ctx;
    unsigned refs;
    bool server;
    bool no_hostname_check;    /* verify the chain, not the name */
    unsigned char *alpn;       /* wire format: length-prefixed names */
    size_t alpn_len;
};

typedef struct openssl_state {
    SSL *ssl;
    BIO *in, *out;             /* records from / for the peer */
    char error[256];
    char alpn[256];            /* the protocol chosen, terminated */
} openssl_state;

/* ---- errors ------------------------------------------------------------ */

/* Describe the failure in OpenSSL's words and classify it. */
static int tls_failure(openssl_state *st)
{
    long verify = SSL_get_verify_result(st->ssl);
    unsigned long e = ERR_peek_last_error();
    int err = TAPIO_ETLS;
    if (verify != X509_V_OK && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        snprintf(st->error, sizeof(st->error),
                 "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        err = TAPIO_ETLS_VERIFY;
    } else if (e) {
        ERR_error_string_n(e, st->error, sizeof(st->error));
    } else {
        snprintf(st->error, sizeof(st->error), "TLS protocol error");
    }
    ERR_clear_error();
    return err;
}

/* Map an SSL_* call's result: n > 0 passes, wants become -EAGAIN, a clean
 * close_notify becomes 0. */
static ssize_t result(openssl_state *st, int n)
{
    if (n > 0)
        return n;
    switch (SSL_get_error(st->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!ERR_peek_error()) { /* the records ended in the middle */
            snprintf(st->error, sizeof(st->error),
                     "EOF occurred in violation of protocol");
            return TAPIO_ETLS;
        }
        return tls_failure(st);
    default:
        return tls_failure(st);
    }
}

/* ---- the engine ---------------------------------------------------------- */

static int ossl_handshake(void *state)
{
    openssl_state *st = state;
    ssize_t r = result(st, SSL_do_handshake(st->ssl));
    return r > 0 ? 0 : r == 0 ? TAPIO_ETLS : (int)r;
}

static ssize_t ossl_read(void *state, void *buf, size_t len)
{
    openssl_state *st = state;
    size_t n = 0;
    int ok = SSL_read_ex(st->ssl, buf, len, &n);
    return ok ? (ssize_t)n : result(st, 0);
}

static ssize_t ossl_write(void *state, const void *buf, size_t len)
{
    openssl_state *st = state;
    size_t n = 0;
    int ok = SSL_write_ex(st->ssl, buf, len, &n);
    if (ok)
        return (ssize_t)n;
    ssize_t r = result(st, 0);
    return r == 0 ? TAPIO_ETLS : r;
}

static int ossl_shutdown(void *state)
{
    openssl_state *st = state;
    int r = SSL_shutdown(st->ssl);
    if (r == 1)
        return 0;
    if (r == 0)
        return -EAGAIN; /* ours went out; waiting for the peer's */
    ssize_t e = result(st, r);
    return e == 0 ? 0 : (int)e;
}

static int ossl_feed(void *state, const void *data, size_t len)
{
    openssl_state *st = state;
    size_t n;
    return BIO_write_ex(st->in, data, len, &n) ? 0 : -ENOMEM;
}

static size_t ossl_pending_in(void *state)
{
    return BIO_ctrl_pending(((openssl_state *)state)->in);
}

static size_t ossl_peek_out(void *state, const void **data)
{
    char *p = NULL;
    long n = BIO_get_mem_data(((openssl_state *)state)->out, &p);
    *data = p;
    return n > 0 ? (size_t)n : 0;
}

static void ossl_consume_out(void *state, size_t n)
{
    openssl_state *st = state;
    if (n >= BIO_ctrl_pending(st->out)) {
        (void)BIO_reset(st->out);
        return;
    }
    char sink[4096];
    while (n) {
        size_t got = 0, want = n < sizeof(sink) ? n : sizeof(sink);
        if (!BIO_read_ex(st->out, sink, want, &got))
            break;
        n -= got;
    }
}

static const char *ossl_error(void *state)
{
    openssl_state *st = state;
    return st->error[0] ? st->error : NULL;
}

static void ossl_destroy(void *state)
{
    openssl_state *st = state;
    SSL_free(st->ssl); /* frees both BIOs */
    free(st);
}

const tapio_tls_engine tapio__openssl_engine = {
    .handshake = ossl_handshake,
    .read = ossl_read,
    .write = ossl_write,
    .shutdown = ossl_shutdown,
    .feed = ossl_feed,
    .pending_in = ossl_pending_in,
    .peek_out = ossl_peek_out,
    .consume_out = ossl_consume_out,
    .error = ossl_error,
    .destroy = ossl_destroy,
};

/* The name to verify: an IP address literal is checked as one and sent
 * without SNI (RFC 6066 forbids literals there). Without the name check
 * (asyncio's check_hostname=False) a name is still sent as SNI. */
static int set_peer_name(SSL *ssl, const char *name, bool check)
{
    unsigned char addr[16];
    bool literal = inet_pton(AF_INET, name, addr) == 1 ||
                   inet_pton(AF_INET6, name, addr) == 1;
    if (literal)
        return !check || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                                       name)
                   ? 0
                   : -EINVAL;
    if (!SSL_set_tlsext_host_name(ssl, name) ||
        (check && !SSL_set1_host(ssl, name)))
        return -ENOMEM;
    return 0;
}

int tapio__openssl_state_new(tapio_tls_context *ctx, bool server_side,
                             const char *server_hostname, void **state)
{
    openssl_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->ssl = SSL_new(ctx->ctx);
    st->in = BIO_new(BIO_s_mem());
    st->out = BIO_new(BIO_s_mem());
    if (!st->ssl || !st->in || !st->out) {
        BIO_free(st->in);
        BIO_free(st->out);
        SSL_free(st->ssl);
        free(st);
        return -ENOMEM;
    }
    /* An empty read BIO means "more data later", not EOF. */
    BIO_set_mem_eof_return(st->in, -1);
    SSL_set_bio(st->ssl, st->in, st->out);
    int err = 0;
    if (server_side)
        SSL_set_accept_state(st->ssl);
    else {
        SSL_set_connect_state(st->ssl);
        if (server_hostname && server_hostname[0])
            err = set_peer_name(st->ssl, server_hostname,
                                !ctx->no_hostname_check);
    }
    if (err) {
        ossl_destroy(st);
        return err;
    }
    *state = st;
    return 0;
}

/* ---- contexts ------------------------------------------------------------ */

/* "h2,http/1.1" to ALPN's wire format. */
static int alpn_encode(const char *list, unsigned char **out, size_t *out_len)
{
    size_t len = strlen(list);
    unsigned char *wire = malloc(len + 1);
    if (!wire)
        return -ENOMEM;
    size_t w = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > 255) {
            free(wire);
            return -EINVAL;
        }
        wire[w++] = (unsigned char)n;
        memcpy(wire + w, p, n);
        w += n;
        p += n + (p[n] == ',');
    }
    *out = wire;
    *out_len = w;
    return 0;
}

/* Server: the first of our protocols the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    tapio_tls_context *ctx = arg;
    unsigned char *chosen;
    if (SSL_select_next_proto(&chosen, outlen, ctx->alpn,
                              (unsigned)ctx->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static int load_files(SSL_CTX *ssl_ctx, const tapio_tls_context_options *o)
{
    if (o->cert_file) {
        const char *key = o->key_file ? o->key_file : o->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ssl_ctx, o->cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ssl_ctx) != 1)
            return TAPIO_ETLS;
    } else if (o->server) {
        return -EINVAL;
    }
    if (o->ca_file || o->ca_path) {
        if (SSL_CTX_load_verify_locations(ssl_ctx, o->ca_file, o->ca_path) != 1)
            return TAPIO_ETLS;
    } else if (!o->server && SSL_CTX_set_default_verify_paths(ssl_ctx) != 1) {
        return TAPIO_ETLS;
    }
    return 0;
}

static int configure(tapio_tls_context *ctx, const tapio_tls_context_options *o)
{
    SSL_CTX *ssl_ctx = ctx->ctx;
    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Records handed out may be retried from another buffer. */
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int err = load_files(ssl_ctx, o);
    if (err)
        return err;
    if (o->ciphers && SSL_CTX_set_cipher_list(ssl_ctx, o->ciphers) != 1)
        return -EINVAL;
    if (o->server)
        SSL_CTX_set_verify(ssl_ctx,
                           o->require_client_cert
                               ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : SSL_VERIFY_NONE,
                           NULL);
    else
        SSL_CTX_set_verify(ssl_ctx, o->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                           NULL);
    if (o->alpn) {
        err = alpn_encode(o->alpn, &ctx->alpn, &ctx->alpn_len);
        if (err)
            return err;
        if (o->server)
            SSL_CTX_set_alpn_select_cb(ssl_ctx, alpn_select, ctx);
        else if (SSL_CTX_set_alpn_protos(ssl_ctx, ctx->alpn,
                                         (unsigned)ctx->alpn_len) != 0)
            return -ENOMEM;
    }
    return 0;
}

int tapio_tls_context_new(const tapio_tls_context_options *opts,
                          tapio_tls_context **out)
{
    tapio_tls_context_options none = {0};
    const tapio_tls_context_options *o = opts ? opts : &none;
    tapio_tls_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return -ENOMEM;
    ctx->refs = 1;
    ctx->server = o->server;
    ctx->no_hostname_check = o->no_hostname_check;
    ctx->ctx = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
    int err = ctx->ctx ? configure(ctx, o) : -ENOMEM;
    ERR_clear_error();
    if (err) {
        tapio_tls_context_unref(ctx);
        return err;
    }
    *out = ctx;
    return 0;
}

void tapio_tls_context_ref(tapio_tls_context *ctx) { ctx->refs++; }

void tapio_tls_context_unref(tapio_tls_context *ctx)
{
    if (--ctx->refs)
        return;
    SSL_CTX_free(ctx->ctx);
    free(ctx->alpn);
    free(ctx);
}

void *tapio_tls_context_ssl_ctx(tapio_tls_context *ctx) { return ctx->ctx; }

/* ---- extra info ------------------------------------------------------------ */

/* The SSL of a TLS transport on this engine whose handshake completed. */
static SSL *established(const tapio_transport *t)
{
    openssl_state *st = tapio__tls_openssl_state(t);
    return st && SSL_is_init_finished(st->ssl) ? st->ssl : NULL;
}

const char *tapio_tls_cipher(const tapio_transport *t)
{
    SSL *ssl = established(t);
    return ssl ? SSL_get_cipher_name(ssl) : NULL;
}

const char *tapio_tls_version(const tapio_transport *t)
{
    SSL *ssl = established(t);
    return ssl ? SSL_get_version(ssl) : NULL;
}

const char *tapio_tls_alpn(const tapio_transport *t)
{
    SSL *ssl = established(t);
    if (!ssl)
        return NULL;
    const unsigned char *name;
    unsigned len;
    SSL_get0_alpn_selected(ssl, &name, &len);
    if (!len)
        return NULL;
    /* The selected name is not terminated: keep a copy on the state. */
    openssl_state *st = tapio__tls_openssl_state(t);
    memcpy(st->alpn, name, len);
    st->alpn[len] = '\0';
    return st->alpn;
}

void *tapio_tls_peer_certificate(const tapio_transport *t)
{
    SSL *ssl = established(t);
    return ssl ? SSL_get0_peer_certificate(ssl) : NULL;
}

void *tapio_tls_ssl(const tapio_transport *t)
{
    openssl_state *st = tapio__tls_openssl_state(t);
    return st ? st->ssl : NULL;
}
