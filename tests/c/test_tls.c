/*
 * test_tls.c — the TLS layer: handshakes, verification, flow control through
 * the layer, close_notify, timeouts and what a misbehaving peer causes.
 *
 * The expected behaviour is asyncio's SSL transport (Lib/asyncio/sslproto.py)
 * as CPython 3.11 shows it; where a peer misbehaves the outcome was checked
 * against asyncio first:
 *   - the peer closes TCP after the handshake without close_notify, even in
 *     the middle of a record: eof_received, then connection_lost(0) (asyncio
 *     does not treat a truncated stream as an error);
 *   - the peer resets the connection: connection_lost(-ECONNRESET);
 *   - a record that does not decrypt: connection_lost(TAPIO_ETLS);
 *   - a server that refuses the client's certificate drops the connection
 *     without sending its alert (asyncio does not flush on a failed
 *     handshake): under TLS 1.3 the client's handshake has completed, so it
 *     sees eof_received + connection_lost(0); under TLS 1.2 its connect fails
 *     with -ECONNRESET.
 * Every test's name starts with tls_ (ctest -R tls runs them).
 */
#include "bulk.h"
#include "tls_certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------- certificates */

static tls_certs the_certs;
static bool certs_made;

static void remove_certs(void *arg)
{
    (void)arg;
    tls_certs_remove(&the_certs);
    certs_made = false;
}

static const tls_certs *certs(void)
{
    if (!certs_made) {
        char err[256];
        if (tls_certs_make(&the_certs, err, sizeof err) != 0)
            FAIL("tls_certs_make: %s", err);
        certs_made = true;
        at_cleanup(remove_certs, NULL);
    }
    return &the_certs;
}

/* ------------------------------------------------------------ contexts */

static void unref_context(void *arg) { tapio_tls_context_unref(arg); }

/* A context released after the loop closed. */
static tapio_tls_context *make_context(const tapio_tls_context_options *o)
{
    tapio_tls_context *ctx = NULL;
    CHECK_OK(tapio_tls_context_new(o, &ctx));
    CHECK(ctx != NULL);
    at_cleanup(unref_context, ctx);
    return ctx;
}

/* Serves the localhost certificate. */
static tapio_tls_context *server_context(void)
{
    tapio_tls_context_options o = {
        .server = true,
        .cert_file = certs()->server_cert,
        .key_file = certs()->server_key,
    };
    return make_context(&o);
}

/* Trusts the test CA only. */
static tapio_tls_context *client_context(void)
{
    tapio_tls_context_options o = {.ca_file = certs()->ca};
    return make_context(&o);
}

static tapio_tls_options server_tls(tapio_tls_context *ctx)
{
    return (tapio_tls_options){.context = ctx, .server_side = true};
}

static tapio_tls_options client_tls(tapio_tls_context *ctx)
{
    return (tapio_tls_options){.context = ctx};
}

/* ------------------------------------------------ servers and clients */

static tapio_server *listen_tls(tapio_loop *loop, const char *host,
                                acceptor *acc, const tapio_tls_options *tls)
{
    tapio_server_options opts = {.tls = tls};
    return listen_tcp(loop, host, acc, &opts);
}

/* A TLS server on host with the default server context. */
static tapio_server *default_server(tapio_loop *loop, const char *host,
                                    acceptor *acc)
{
    tapio_tls_options s = server_tls(server_context());
    return listen_tls(loop, host, acc, &s);
}

/* The same serving an echo; *acc gets its acceptor. */
static tapio_server *echo_server(tapio_loop *loop, const char *host,
                                 acceptor **acc)
{
    *acc = acceptor_new();
    (*acc)->echo = true;
    return default_server(loop, host, *acc);
}

/* Start a TLS connect of a new conn to host:port; the caller waits. */
static conn *start_tls_connect(tapio_loop *loop, const char *host, int port,
                               const tapio_tls_options *tls,
                               tapio_connect_req **req)
{
    conn *c = conn_new();
    tapio_connect_options opts = {.tls = tls};
    conn_connect_with(loop, c, &conn_protocol, host, port, &opts, req);
    return c;
}

/* Connect over TLS and wait for the end of the handshake (any outcome). */
static conn *try_connect_tls(tapio_loop *loop, const char *host, int port,
                             const tapio_tls_options *tls)
{
    conn *c = start_tls_connect(loop, host, port, tls, NULL);
    RUN_UNTIL(loop, c->connect_done, 20);
    return c;
}

static conn *connect_tls(tapio_loop *loop, const char *host, int port,
                         const tapio_tls_options *tls)
{
    conn *c = try_connect_tls(loop, host, port, tls);
    CHECK_ERR(c->connect_err, 0);
    CHECK(tapio_transport_is_tls(c->t));
    return c;
}

/* A TLS client (with `tls`, or the default client context if NULL)
 * connected to the TLS server, and the server's side of it. */
static void tls_pair(tapio_loop *loop, tapio_server *s, acceptor *acc,
                     const tapio_tls_options *tls, conn **client,
                     conn **served)
{
    tapio_tls_options default_tls;
    if (!tls) {
        default_tls = client_tls(client_context());
        tls = &default_tls;
    }
    *client = connect_tls(loop, "127.0.0.1", tapio_server_port(s), tls);
    /* a TLS transport's fd is its raw transport's */
    *served = wait_served(loop, acc, tapio_transport_fd((*client)->t));
    CHECK(tapio_transport_is_tls((*served)->t));
}

/* A TLS server on 127.0.0.1 with the default server context, a client with
 * the default client context, connected. */
static void default_pair(tapio_loop *loop, conn **client, conn **served)
{
    acceptor *acc = acceptor_new();
    tapio_server *server = default_server(loop, "127.0.0.1", acc);
    tls_pair(loop, server, acc, NULL, client, served);
}

static void write_pattern(conn *c, size_t n)
{
    unsigned char *data = pattern_new(n);
    CHECK_OK(tapio_transport_write(c->t, data, n));
    free(data);
}

/* A raw listening socket on 127.0.0.1 that never answers; *port gets its port. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 8) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A blocking TCP connection to 127.0.0.1:port. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

static void reset_and_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

/* The raw socket fd read EOF or an error (any data before is dropped). */
static bool socket_ended(int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        ;
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static bool contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

/* ------------------------------------------- ssl_peer: a bare OpenSSL peer */

/*
 * The other end of a connection, driven by plain OpenSSL calls over a raw
 * socket from a loop watcher, so that a test decides exactly which records
 * go out (or do not): a partial record, no close_notify reply, ...
 * Memory BIOs carry the records; the socket is blocking for sends (the
 * amounts are small) and read with MSG_DONTWAIT.
 */
typedef struct ssl_peer {
    tapio_loop *loop;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
    bool watching;
    bool handshake_done;
    bool close_notify;   /* the other side's close_notify arrived */
    bool eof;            /* the socket read EOF */
    int read_err;        /* -errno of a failed recv */
    unsigned long ssl_err; /* the OpenSSL error that ended it */
    bytes rx;            /* plaintext received */
} ssl_peer;

static void peer_send_raw(ssl_peer *p, const void *data, size_t len)
{
    const char *d = data;
    while (len) {
        ssize_t n = send(p->fd, d, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        d += n;
        len -= (size_t)n;
    }
}

/* Send what OpenSSL produced. */
static void peer_flush(ssl_peer *p)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(p->out, buf, sizeof buf)) > 0)
        peer_send_raw(p, buf, (size_t)n);
}

static void peer_advance(ssl_peer *p)
{
    if (!p->handshake_done) {
        int r = SSL_do_handshake(p->ssl);
        if (r == 1) {
            p->handshake_done = true;
        } else {
            int e = SSL_get_error(p->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                p->ssl_err = ERR_get_error() ? ERR_get_error() : 1;
        }
    }
    if (p->handshake_done && !p->close_notify && !p->ssl_err) {
        char buf[16384];
        for (;;) {
            int n = SSL_read(p->ssl, buf, sizeof buf);
            if (n > 0) {
                bytes_append(&p->rx, buf, (size_t)n);
                continue;
            }
            int e = SSL_get_error(p->ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN)
                p->close_notify = true;
            else if (e != SSL_ERROR_WANT_READ)
                p->ssl_err = ERR_get_error() ? ERR_get_error() : 1;
            break;
        }
    }
    ERR_clear_error();
    peer_flush(p);
}

static void peer_stop_watching(ssl_peer *p)
{
    if (p->watching) {
        CHECK(tapio_remove_reader(p->loop, p->fd));
        p->watching = false;
    }
}

static void peer_on_readable(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    ssl_peer *p = arg;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            CHECK(BIO_write(p->in, buf, (int)n) == n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (n == 0)
                p->eof = true;
            else
                p->read_err = -errno;
            peer_stop_watching(p);
        }
        break;
    }
    peer_advance(p);
}

static void peer_free(void *arg)
{
    ssl_peer *p = arg;
    if (p->fd >= 0)
        close(p->fd); /* the loop (and the watcher) is gone already */
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    bytes_free(&p->rx);
    free(p);
}

/* Close the peer's socket now (reset: with RST instead of FIN). */
static void peer_close(ssl_peer *p, bool reset)
{
    peer_stop_watching(p);
    if (reset)
        reset_and_close(p->fd);
    else
        close(p->fd);
    p->fd = -1;
}

/* A client peer connected to 127.0.0.1:port (peer_connect also starts its
 * handshake); `cert`/`key` (may be NULL) is its client certificate. */
static ssl_peer *peer_open(tapio_loop *loop, int port, const char *cert,
                           const char *key)
{
    ssl_peer *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    at_cleanup(peer_free, p);
    p->loop = loop;
    p->fd = raw_connect(port);
    p->ctx = SSL_CTX_new(TLS_client_method());
    CHECK(p->ctx != NULL);
    CHECK(SSL_CTX_load_verify_locations(p->ctx, certs()->ca, NULL) == 1);
    SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
    if (cert) {
        CHECK(SSL_CTX_use_certificate_chain_file(p->ctx, cert) == 1);
        CHECK(SSL_CTX_use_PrivateKey_file(p->ctx, key, SSL_FILETYPE_PEM) == 1);
    }
    p->ssl = SSL_new(p->ctx);
    p->in = BIO_new(BIO_s_mem());
    p->out = BIO_new(BIO_s_mem());
    CHECK(p->ssl && p->in && p->out);
    BIO_set_mem_eof_return(p->in, -1);
    SSL_set_bio(p->ssl, p->in, p->out);
    SSL_set_connect_state(p->ssl);
    CHECK(SSL_set_tlsext_host_name(p->ssl, "localhost") == 1);
    CHECK(SSL_set1_host(p->ssl, "localhost") == 1);
    return p;
}

/* Send the ClientHello and watch for the answer. */
static ssl_peer *peer_start(ssl_peer *p)
{
    CHECK_OK(tapio_add_reader(p->loop, p->fd, peer_on_readable, p));
    p->watching = true;
    peer_advance(p);
    return p;
}

static ssl_peer *peer_connect(tapio_loop *loop, int port, const char *cert,
                              const char *key)
{
    return peer_start(peer_open(loop, port, cert, key));
}

/* A client peer that speaks TLS 1.2 at most (renegotiation exists there). */
static ssl_peer *peer_connect_tls12(tapio_loop *loop, int port)
{
    ssl_peer *p = peer_open(loop, port, NULL, NULL);
    CHECK(SSL_set_max_proto_version(p->ssl, TLS1_2_VERSION) == 1);
    return peer_start(p);
}

/* How peer_send_sealed sends the record. */
enum seal { WHOLE, HALF, CORRUPTED };

/* Encrypt `text` as the peer would and send the record: whole, only its
 * first half, or with a byte of its AEAD tag flipped. */
static void peer_send_sealed(ssl_peer *p, const char *text, enum seal how)
{
    bytes rec = {0};
    char buf[16384];
    int n;
    CHECK_EQ_INT(BIO_ctrl_pending(p->out), 0);
    CHECK(SSL_write(p->ssl, text, (int)strlen(text)) == (int)strlen(text));
    while ((n = BIO_read(p->out, buf, sizeof buf)) > 0)
        bytes_append(&rec, buf, (size_t)n);
    CHECK(rec.len > 10);
    if (how == CORRUPTED)
        rec.p[rec.len - 3] ^= 0x55; /* inside the AEAD tag */
    peer_send_raw(p, rec.p, how == HALF ? rec.len / 2 : rec.len);
    bytes_free(&rec);
}

/* Run until the peer's handshake ended; it must have succeeded. */
static void peer_wait_handshake(tapio_loop *loop, ssl_peer *p)
{
    RUN_UNTIL(loop, p->handshake_done || p->ssl_err || p->eof, 10);
    CHECK(p->handshake_done);
}

/* A TLS server on 127.0.0.1 with the default server context and the given
 * shutdown timeout (0: the default), and a bare OpenSSL client peer whose
 * handshake with it completed; *served is the server's side. */
static ssl_peer *peer_pair(tapio_loop *loop, double shutdown_timeout,
                           conn **served)
{
    acceptor *acc = acceptor_new();
    tapio_tls_options tls = server_tls(server_context());
    tls.shutdown_timeout = shutdown_timeout;
    tapio_server *s = listen_tls(loop, "127.0.0.1", acc, &tls);
    ssl_peer *p = peer_connect(loop, tapio_server_port(s), NULL, NULL);
    peer_wait_handshake(loop, p);
    *served = wait_served(loop, acc, p->fd);
    return p;
}

/* ============================================================ handshakes */

/* `closer` closed its end: run until both ends are lost, and check that
 * TLS ended cleanly. The other end got its `n` bytes, then eof_received
 * (the closer's close_notify); the closer got eof_received too (asyncio calls
 * the closing side's once the peer's close_notify came back); neither lost
 * the connection with an error. */
static void check_clean_close(tapio_loop *loop, conn *closer, conn *other,
                              size_t n)
{
    RUN_UNTIL(loop, closer->lost && other->lost, 20);
    CHECK_EQ_INT(other->rx.len, n);
    CHECK_EQ_INT(other->eofs, 1);
    CHECK_EQ_INT(other->rx_at_eof, n);
    CHECK_ERR(other->lost_err, 0);
    CHECK_EQ_INT(closer->eofs, 1);
    CHECK_ERR(closer->lost_err, 0);
}

/* The client sends 1 MiB, the server echoes it, the client closes once all
 * came back: close_notify both ways, eof_received on both sides. */
static void check_tls_echo(tapio_loop *loop, conn *client, acceptor *acc)
{
    const size_t n = 1024 * 1024;
    client->close_after = n;
    write_pattern(client, n);
    RUN_UNTIL(loop, client->lost, 20);
    CHECK_EQ_INT(client->rx.len, n);
    CHECK(pattern_check(client->rx.p, 0, n));

    CHECK_EQ_INT(acc->n, 1);
    conn *served = acc->conns[0];
    check_clean_close(loop, client, served, n);
    CHECK_EQ_INT(served->made, 1);
    CHECK_EQ_INT(loop_error_count(), 0);
}

/* An echo server with the default context on `host`, a client connected to
 * it there (checking the name server_hostname, if not NULL): check_tls_echo. */
static void check_echo_on(const char *host, const char *server_hostname)
{
    tapio_loop *loop = test_loop();
    acceptor *acc;
    tapio_server *server = echo_server(loop, host, &acc);
    tapio_tls_options c = client_tls(client_context());
    c.server_hostname = server_hostname;
    conn *client = connect_tls(loop, host, tapio_server_port(server), &c);
    CHECK(tapio_tls_raw(client->t) != NULL);
    check_tls_echo(loop, client, acc);
}

/* Connected to an IP address, the name checked is the address (IP SAN). */
TEST(tls_echo_over_tcp)
{
    check_echo_on("127.0.0.1", NULL);
}

/* A host name is resolved, sent as SNI and checked against DNS SANs. */
TEST(tls_echo_over_tcp_by_host_name)
{
    tapio_loop *loop = test_loop();
    acceptor *acc;
    tapio_server *server = echo_server(loop, "127.0.0.1", &acc);
    tapio_tls_options c = client_tls(client_context());
    tapio_connect_options copts = {.family = AF_INET, .tls = &c};
    conn *client = conn_new();
    conn_connect(loop, client, "localhost", tapio_server_port(server), &copts);
    RUN_UNTIL(loop, client->connect_done, 20);
    CHECK_ERR(client->connect_err, 0);
    check_tls_echo(loop, client, acc);
}

/* server_hostname overrides the host connected to. */
TEST(tls_server_hostname_option)
{
    check_echo_on("127.0.0.1", "localhost");
}

TEST(tls_echo_over_ipv6)
{
    if (!ipv6_loopback_available()) {
        printf("SKIP: no IPv6 loopback\n");
        return;
    }
    check_echo_on("::1", NULL);
}

/* A Unix socket server with TLS; the client upgrades its Unix connection
 * with tapio_tls_start (tapio_connect_unix has no TLS option). */
static void record_handshake(tapio_transport *tls, int err, void *arg);

TEST(tls_echo_over_a_unix_socket_server)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    char path[108];
    unix_path(path, sizeof path, "tls");
    tapio_tls_options s = server_tls(server_context());
    tapio_server_options sopts = {.tls = &s};
    tapio_server *server = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, path, 0, &sopts, acceptor_factory,
                                      acc, &server));
    conn *plain = connect_unix(loop, path, 0);
    conn *client = conn_new();
    tapio_tls_options c = client_tls(client_context());
    c.server_hostname = "localhost";
    tapio_transport *face = NULL;
    int hs = 1;
    CHECK_OK(tapio_tls_start(plain->t, &c, &conn_protocol, client,
                             record_handshake, &hs, &face));
    RUN_UNTIL(loop, hs != 1, 10);
    CHECK_ERR(hs, 0);
    CHECK(client->t == face);
    check_tls_echo(loop, client, acc);
    tapio_server_close(server, NULL, NULL);
}

/* ------------------------------------------------------------- start_tls */

/* A plain line protocol: "STARTTLS\n" from the client, "GO\n" from the
 * server, then both sides upgrade the same connection. */
struct upgrade {
    conn c;              /* the plain protocol's record */
    conn *secure;        /* the TLS face's conn */
    tapio_tls_options tls;
    tapio_transport *face;
    bool hs_done;
    int hs_err;
    char hs_error_text[256];
    bool hs_had_cipher;
};

static void upgrade_handshake_done(tapio_transport *tls, int err, void *arg)
{
    struct upgrade *u = arg;
    CHECK(!u->hs_done);
    CHECK(tls == u->face);
    u->hs_done = true;
    u->hs_err = err;
    u->hs_had_cipher = tapio_tls_cipher(tls) != NULL;
    const char *text = tapio_tls_error(tls);
    snprintf(u->hs_error_text, sizeof u->hs_error_text, "%s",
             text ? text : "");
    if (err == 0)
        CHECK_EQ_INT(u->secure->made, 1); /* connection_made came first */
}

static void upgrade(struct upgrade *u, tapio_transport *raw)
{
    u->secure = conn_new();
    CHECK_OK(tapio_tls_start(raw, &u->tls, &conn_protocol, u->secure,
                             upgrade_handshake_done, u, &u->face));
    CHECK(u->face != NULL && u->face != raw);
    CHECK(tapio_transport_is_tls(u->face));
    CHECK(tapio_tls_raw(u->face) == raw);
    CHECK(!tapio_transport_is_tls(raw));
    CHECK_EQ_INT(u->secure->made, 0); /* made waits for the handshake */
}

static void upgrade_server_data(tapio_transport *t, const void *data,
                                size_t len, void *user)
{
    struct upgrade *u = user;
    conn_on_data(t, data, len, user);
    if (u->c.rx.len == 9 && memcmp(u->c.rx.p, "STARTTLS\n", 9) == 0) {
        CHECK_OK(tapio_transport_write(t, "GO\n", 3));
        u->secure = NULL;
        upgrade(u, t);
        u->secure->echo = true;
    }
}

static const tapio_protocol upgrade_server_protocol = {
    .connection_made = conn_on_made,
    .data_received = upgrade_server_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

/* The first connection's record goes to *arg. */
static const tapio_protocol *upgrade_factory(tapio_server *s, void *arg,
                                             void **user)
{
    (void)s;
    struct upgrade **slot = arg;
    struct upgrade *u = (struct upgrade *)conn_alloc(sizeof *u);
    u->tls = server_tls(server_context());
    if (!*slot)
        *slot = u;
    *user = u;
    return &upgrade_server_protocol;
}

TEST(tls_start_tls_upgrades_a_live_connection)
{
    tapio_loop *loop = test_loop();
    struct upgrade *srv = NULL;
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *server = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, upgrade_factory, &srv,
                                 &server));

    /* The client speaks plain text first. */
    struct upgrade *cli = (struct upgrade *)conn_alloc(sizeof *cli);
    cli->tls = client_tls(client_context());
    cli->tls.server_hostname = "localhost";
    conn_connect(loop, &cli->c, "127.0.0.1", tapio_server_port(server), NULL);
    RUN_UNTIL(loop, cli->c.connect_done, 10);
    CHECK_ERR(cli->c.connect_err, 0);
    tapio_transport *raw = cli->c.t;
    CHECK_OK(tapio_transport_write(raw, "STARTTLS\n", 9));
    RUN_UNTIL(loop, cli->c.rx.len == 3, 10);
    CHECK_MEM_EQ(cli->c.rx.p, "GO\n", 3);
    CHECK(srv != NULL && srv->face != NULL);

    upgrade(cli, raw);
    RUN_UNTIL(loop, cli->hs_done && srv->hs_done, 20);
    CHECK_ERR(cli->hs_err, 0);
    CHECK_ERR(srv->hs_err, 0);
    CHECK(cli->hs_had_cipher && srv->hs_had_cipher);
    CHECK(cli->secure->t == cli->face && srv->secure->t == srv->face);

    /* Plaintext through the layer, echoed by the server's TLS protocol. */
    CHECK_OK(tapio_transport_write(cli->face, "over tls", 8));
    RUN_UNTIL(loop, cli->secure->rx.len == 8, 10);
    CHECK_MEM_EQ(cli->secure->rx.p, "over tls", 8);
    /* The plain protocols saw nothing more after the switch. */
    CHECK_EQ_INT(cli->c.rx.len, 3);
    CHECK_EQ_INT(srv->c.rx.len, 9);

    tapio_transport_close(cli->face);
    RUN_UNTIL(loop, cli->secure->lost && srv->secure->lost, 10);
    CHECK_EQ_INT(cli->secure->lost_err, 0);
    CHECK_EQ_INT(srv->secure->lost_err, 0);
    CHECK_EQ_INT(srv->secure->eofs, 1);
    /* The raw transports went with them; their old protocols heard nothing. */
    CHECK(tapio_transport_is_closing(raw));
    RUN_UNTIL(loop, tapio_transport_fd(raw) < 0, 5);
    CHECK_EQ_INT(cli->c.lost, 0);
    CHECK_EQ_INT(srv->c.lost, 0);

    /* A closing transport cannot start TLS. */
    conn *plain = connect_tcp(loop, "127.0.0.1", tapio_server_port(server));
    tapio_transport_close(plain->t);
    tapio_transport *again = NULL;
    CHECK_ERR(tapio_tls_start(plain->t, &cli->tls, &conn_protocol, NULL, NULL,
                              NULL, &again),
              -EINVAL);
    RUN_UNTIL(loop, plain->lost, 5);
}

/* The TLS transport closed (or aborted) before its handshake began: the
 * connection ends, the handshake callback says -ECONNABORTED, the protocol
 * hears nothing, and writes are dropped. */
TEST(tls_close_before_the_handshake_begins)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *server = default_server(loop, "127.0.0.1", acc);
    tapio_tls_options c = client_tls(client_context());
    for (int abort = 0; abort < 2; abort++) {
        conn *plain = connect_tcp(loop, "127.0.0.1", tapio_server_port(server));
        struct upgrade *u = (struct upgrade *)conn_alloc(sizeof *u);
        u->tls = c;
        upgrade(u, plain->t);
        CHECK_OK(tapio_transport_write(u->face, "early", 5));
        if (abort)
            tapio_transport_abort(u->face);
        else
            tapio_transport_close(u->face);
        CHECK(tapio_transport_is_closing(u->face));
        CHECK_OK(tapio_transport_write(u->face, "late", 4));
        RUN_UNTIL(loop, u->hs_done, 10);
        CHECK_ERR(u->hs_err, -ECONNABORTED);
        CHECK_EQ_INT(u->secure->made, 0);
        RUN_UNTIL(loop, tapio_transport_fd(plain->t) < 0, 5);
        run_briefly(loop, 3);
        CHECK_EQ_INT(u->secure->lost, 0);
    }
    CHECK_EQ_INT(loop_error_count(), 0);
}

/* Over a socketpair, both ends wrapped by hand; the server side reads with a
 * buffered protocol, and the client writes before the handshake is done. */
struct buffered {
    conn c;
    unsigned char buf[1000]; /* small: several get_buffer calls per record */
    int get_buffer_calls;
};

static void *buffered_get_buffer(tapio_transport *t, size_t sizehint,
                                 size_t *len, void *user)
{
    (void)t, (void)sizehint;
    struct buffered *b = user;
    b->get_buffer_calls++;
    *len = sizeof b->buf;
    return b->buf;
}

static void buffered_updated(tapio_transport *t, size_t n, void *user)
{
    struct buffered *b = user;
    CHECK(n > 0 && n <= sizeof b->buf);
    conn_on_data(t, b->buf, n, user);
}

static const tapio_protocol buffered_protocol = {
    .connection_made = conn_on_made,
    .get_buffer = buffered_get_buffer,
    .buffer_updated = buffered_updated,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

static void record_handshake(tapio_transport *tls, int err, void *arg)
{
    (void)tls;
    int *slot = arg;
    CHECK_EQ_INT(*slot, 1); /* not yet reported */
    *slot = err;
}

TEST(tls_over_socketpair_with_buffered_protocol)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    tapio_transport *raw_s = NULL, *raw_c = NULL;
    CHECK_OK(tapio_transport_from_fd(loop, fds[0], NULL, NULL, &raw_s));
    CHECK_OK(tapio_transport_from_fd(loop, fds[1], NULL, NULL, &raw_c));

    /* Not started yet: the raw transports' connection_made starts it. */
    struct buffered *srv = (struct buffered *)conn_alloc(sizeof *srv);
    conn *cli = conn_new();
    tapio_tls_options so = server_tls(server_context());
    tapio_tls_options co = client_tls(client_context());
    co.server_hostname = "localhost";
    tapio_transport *face_s = NULL, *face_c = NULL;
    int hs_s = 1, hs_c = 1;
    CHECK_OK(tapio_tls_start(raw_s, &so, &buffered_protocol, srv,
                             record_handshake, &hs_s, &face_s));
    CHECK_OK(tapio_tls_start(raw_c, &co, &conn_protocol, cli, record_handshake,
                             &hs_c, &face_c));
    CHECK(tapio_tls_cipher(face_c) == NULL); /* no handshake yet */
    CHECK(tapio_tls_version(face_c) == NULL);

    /* Written before the handshake: kept as plaintext, counted, sent after. */
    const size_t n = 200 * 1000;
    unsigned char *data = pattern_new(n);
    CHECK_OK(tapio_transport_write(face_c, data, n));
    free(data);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(face_c), n);
    CHECK_EQ_INT(cli->pauses, 0); /* under the 512 KiB high-water mark */

    RUN_UNTIL(loop, hs_s != 1 && hs_c != 1, 10);
    CHECK_ERR(hs_s, 0);
    CHECK_ERR(hs_c, 0);
    CHECK(tapio_tls_cipher(face_c) != NULL);
    RUN_UNTIL(loop, srv->c.rx.len == n, 10);
    CHECK(pattern_check(srv->c.rx.p, 0, n));
    CHECK(srv->get_buffer_calls >= (int)(n / sizeof srv->buf));

    tapio_transport_close(face_s);
    RUN_UNTIL(loop, cli->lost && srv->c.lost, 10);
    CHECK_EQ_INT(cli->eofs, 1);
    CHECK_EQ_INT(cli->lost_err, 0);
    CHECK_EQ_INT(srv->c.lost_err, 0);
}

/* ============================================================ transfer */

/* asyncio's SSL write high-water mark, and the receive-side read-ahead. */
#define TLS_HIGH (512 * 1024)
#define TLS_LOW (TLS_HIGH / 4)

TEST(tls_transfer_100_mib_with_flow_control)
{
    tapio_loop *loop = test_loop();
    bulk_receiver *r = NULL;
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_tls_options so = server_tls(server_context());
    tapio_server_options sopts = {.tls = &so};
    tapio_server *server = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", &sopts, bulk_receiver_factory,
                                 &r, &server));
    bulk_sender *s = bulk_sender_new(true); /* TLS has no write_eof */
    tapio_tls_options co = client_tls(client_context());
    tapio_connect_options copts = {.tls = &co};
    conn_connect_with(loop, &s->c, &bulk_sender_protocol, "127.0.0.1",
                      tapio_server_port(server), &copts, NULL);
    RUN_UNTIL(loop, s->c.lost && r && r->c.lost, 55);
    /* The receiver's eof_received was the sender's close_notify; flow
     * control kept the sender near the 512 KiB mark (plus a record). */
    bulk_check(s, r, TLS_HIGH + BULK_CHUNK + 4096);
}

/* ======================================================== flow control */

/* The receiver pauses reading: the layer stops reading the socket, the
 * sender's records back up, and its protocol is paused at 512 KiB; resuming
 * lets everything through and resume_writing follows. */
TEST(tls_back_pressure_through_the_layer)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);

    size_t low, high;
    tapio_transport_get_write_buffer_limits(client->t, &low, &high);
    CHECK_EQ_INT(high, TLS_HIGH);
    CHECK_EQ_INT(low, TLS_LOW);

    tapio_transport_pause_reading(served->t);
    CHECK(!tapio_transport_is_reading(served->t));
    unsigned char *chunk = malloc(BULK_CHUNK);
    CHECK(chunk != NULL);
    size_t written = 0;
    /* Write until paused, then keep the loop running so records move until
     * nothing moves any more; pause again whenever resumed. */
    for (int round = 0; round < 200; round++) {
        while (!client->paused && written < (size_t)256 * 1024 * 1024) {
            pattern_fill(chunk, written, BULK_CHUNK);
            CHECK_OK(tapio_transport_write(client->t, chunk, BULK_CHUNK));
            written += BULK_CHUNK;
            size_t size = tapio_transport_get_write_buffer_size(client->t);
            CHECK(size <= TLS_HIGH + BULK_CHUNK + 4096);
        }
        CHECK(client->paused);
        run_for(loop, 0.02);
        if (client->paused && round > 5)
            break;
    }
    CHECK(client->paused);
    size_t size = tapio_transport_get_write_buffer_size(client->t);
    CHECK(size >= TLS_HIGH);
    CHECK(size <= TLS_HIGH + BULK_CHUNK + 4096);
    /* Nothing moves while the receiver is paused. */
    run_for(loop, 0.2);
    CHECK(client->paused);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(client->t), size);
    CHECK_EQ_INT(served->rx.len, 0);
    /* The receiving layer stopped reading its socket (256 KiB read ahead). */
    CHECK(!tapio_transport_is_reading(tapio_tls_raw(served->t)));
    CHECK(tapio_transport_is_reading(tapio_tls_raw(client->t)));

    int pauses = client->pauses;
    tapio_transport_resume_reading(served->t);
    CHECK(tapio_transport_is_reading(served->t));
    RUN_UNTIL(loop, served->rx.len == written, 20);
    CHECK(pattern_check(served->rx.p, 0, written));
    CHECK(!client->paused);
    CHECK_EQ_INT(client->resumes, pauses);
    CHECK(client->size_at_resume <= TLS_LOW);
    CHECK(tapio_transport_is_reading(tapio_tls_raw(served->t)));
    free(chunk);

    /* Limits: high 0 makes every write pause at once (size >= 0). */
    CHECK_OK(tapio_transport_set_write_buffer_limits(client->t, 1000, -1));
    tapio_transport_get_write_buffer_limits(client->t, &low, &high);
    CHECK_EQ_INT(high, 1000);
    CHECK_EQ_INT(low, 250);
    CHECK_ERR(tapio_transport_set_write_buffer_limits(client->t, 10, 20), -EINVAL);
    /* Not given: a TLS transport's own default, as asyncio's sslproto. */
    CHECK_OK(tapio_transport_set_write_buffer_limits(
        client->t, TAPIO_LIMIT_DEFAULT, TAPIO_LIMIT_DEFAULT));
    tapio_transport_get_write_buffer_limits(client->t, &low, &high);
    CHECK_EQ_INT(high, TLS_HIGH);
    CHECK_EQ_INT(low, TLS_LOW);
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, client->lost && served->lost, 10);
    CHECK_ERR(client->lost_err, 0);
}

/* pause_reading stops data_received (records wait decrypted or not),
 * resume_reading delivers them; both idempotent. */
TEST(tls_pause_and_resume_reading)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);

    CHECK(tapio_transport_is_reading(client->t));
    tapio_transport_pause_reading(client->t);
    tapio_transport_pause_reading(client->t);
    CHECK(!tapio_transport_is_reading(client->t));
    CHECK_OK(tapio_transport_write(served->t, "abc", 3));
    run_for(loop, 0.05);
    CHECK_OK(tapio_transport_write(served->t, "def", 3));
    run_for(loop, 0.05);
    CHECK_EQ_INT(client->rx.len, 0);

    tapio_transport_resume_reading(client->t);
    tapio_transport_resume_reading(client->t);
    CHECK(tapio_transport_is_reading(client->t));
    RUN_UNTIL(loop, client->rx.len == 6, 5);
    CHECK_MEM_EQ(client->rx.p, "abcdef", 6);

    /* Paused again, the peer's close_notify waits as well. */
    tapio_transport_pause_reading(client->t);
    CHECK_OK(tapio_transport_write(served->t, "g", 1));
    tapio_transport_close(served->t);
    run_for(loop, 0.1);
    CHECK_EQ_INT(client->rx.len, 6);
    CHECK_EQ_INT(client->eofs, 0);
    CHECK_EQ_INT(client->lost, 0);
    tapio_transport_resume_reading(client->t);
    check_clean_close(loop, served, client, 7);
}

/* ============================================================ timeouts */

/* A server that accepts TCP and never answers the ClientHello. */
TEST(tls_handshake_timeout_on_connect)
{
    tapio_loop *loop = test_loop();
    int port;
    int lfd = silent_listener(&port);
    tapio_tls_options c = client_tls(client_context());
    c.handshake_timeout = 0.3;
    double t0 = monotonic_now();
    conn *client = try_connect_tls(loop, "127.0.0.1", port, &c);
    double elapsed = monotonic_now() - t0;
    CHECK_ERR(client->connect_err, -ECONNABORTED);
    CHECK(elapsed >= 0.25);
    CHECK(elapsed < 10);
    CHECK_EQ_INT(client->made, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
    run_briefly(loop, 3);
    close(lfd);
}

/* A client that connects and sends nothing: the server drops it after its
 * handshake timeout, quietly, and the protocol never hears of it. */
TEST(tls_handshake_timeout_on_server)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_tls_options s = server_tls(server_context());
    s.handshake_timeout = 0.3;
    tapio_server *server = listen_tls(loop, "127.0.0.1", acc, &s);
    double t0 = monotonic_now();
    int fd = raw_connect(tapio_server_port(server));
    expect_eof(loop, fd);
    double elapsed = monotonic_now() - t0;
    CHECK(elapsed >= 0.25);
    CHECK_EQ_INT(acc->n, 1);
    CHECK_EQ_INT(acc->conns[0]->made, 0);
    CHECK_EQ_INT(acc->conns[0]->lost, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
    close(fd);
}

/* The peer never answers our close_notify (nor closes): after the shutdown
 * timeout the socket is closed and connection_lost gets -ETIMEDOUT, as
 * asyncio's _check_shutdown_timeout force-closes with TimeoutError. */
TEST(tls_shutdown_timeout)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 0.3, &served);

    CHECK_OK(tapio_transport_write(served->t, "bye", 3));
    double t0 = monotonic_now();
    tapio_transport_close(served->t);
    RUN_UNTIL(loop, peer->close_notify, 10);
    CHECK_EQ_INT(peer->rx.len, 3);
    CHECK_MEM_EQ(peer->rx.p, "bye", 3);
    /* The peer sits on it: no reply. */
    RUN_UNTIL(loop, served->lost, 10);
    CHECK(monotonic_now() - t0 >= 0.25);
    CHECK_ERR(served->lost_err, -ETIMEDOUT);
    CHECK_EQ_INT(served->eofs, 0);
    RUN_UNTIL(loop, peer->eof || peer->read_err, 10);
    CHECK_EQ_INT(loop_error_count(), 0);
    peer_close(peer, false);
}

/* The same peer answering close_notify: a clean end, with eof_received. */
TEST(tls_close_notify_answered_by_a_bare_peer)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 5, &served);

    tapio_transport_close(served->t);
    RUN_UNTIL(loop, peer->close_notify, 10);
    CHECK_EQ_INT(SSL_shutdown(peer->ssl), 1); /* ours went, theirs came */
    peer_flush(peer);
    RUN_UNTIL(loop, served->lost, 10);
    CHECK_ERR(served->lost_err, 0);
    CHECK_EQ_INT(served->eofs, 1);
    RUN_UNTIL(loop, peer->eof, 10);
    peer_close(peer, false);
}

/* The peer's close_notify, with eof_received returning false: the layer
 * answers with its own and closes the socket in the same iteration (asyncio's
 * _on_shutdown_complete), so that connection_lost comes two iterations later
 * (the socket's, then the TLS transport's). Once it has run, the engine is
 * gone even though a reference to the transport is kept. */
TEST(tls_peer_close_notify_closes_the_socket_at_once)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 5, &served);
    CHECK(tapio_tls_ssl(served->t) != NULL);

    CHECK_EQ_INT(SSL_shutdown(peer->ssl), 0); /* ours went, theirs to come */
    peer_flush(peer);
    RUN_UNTIL(loop, served->eofs == 1, 10);
    tapio_transport *raw = tapio_tls_raw(served->t);
    CHECK(raw != NULL);
    CHECK(tapio_transport_is_closing(served->t));
    CHECK(tapio_transport_is_closing(raw));
    CHECK_EQ_INT(served->lost, 0);
    run_briefly(loop, 2);
    CHECK_EQ_INT(served->lost, 1);
    CHECK_ERR(served->lost_err, 0);

    CHECK_EQ_INT(tapio_transport_fd(served->t), -1);
    CHECK(tapio_tls_ssl(served->t) == NULL);
    CHECK(tapio_tls_engine_state(served->t) == NULL);
    CHECK(tapio_tls_cipher(served->t) == NULL);
    CHECK(tapio_tls_error(served->t) == NULL);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(served->t), 0);
    CHECK(!tapio_transport_is_reading(served->t));

    RUN_UNTIL(loop, peer->close_notify && peer->eof, 10);
    CHECK_EQ_INT(SSL_shutdown(peer->ssl), 1);
    CHECK_EQ_INT(loop_error_count(), 0);
    peer_close(peer, false);
}

/* ==================================================== peers that break */

/* After the handshake the peer sends half a record and closes (FIN). */
TEST(tls_peer_closes_in_the_middle_of_a_record)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 0, &served);

    /* A whole record first: it arrives. */
    peer_send_sealed(peer, "hello", WHOLE);
    RUN_UNTIL(loop, served->rx.len == 5, 10);

    peer_send_sealed(peer, "world, cut short", HALF);
    run_for(loop, 0.05);
    CHECK_EQ_INT(served->rx.len, 5); /* half a record decrypts to nothing */
    CHECK(shutdown(peer->fd, SHUT_WR) == 0);
    RUN_UNTIL(loop, served->lost, 10);
    /* asyncio: eof_received, then connection_lost(None). */
    CHECK_EQ_INT(served->eofs, 1);
    CHECK_EQ_INT(served->rx.len, 5);
    CHECK_ERR(served->lost_err, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
    peer_close(peer, false);
}

/* Half a record, then a reset: connection_lost(-ECONNRESET), no EOF. */
TEST(tls_peer_resets_in_the_middle_of_a_record)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 0, &served);

    peer_send_sealed(peer, "cut short", HALF);
    run_for(loop, 0.05);
    peer_close(peer, true);
    RUN_UNTIL(loop, served->lost, 10);
    CHECK_ERR(served->lost_err, -ECONNRESET);
    CHECK_EQ_INT(served->eofs, 0);
    CHECK_EQ_INT(served->rx.len, 0);
}

/* The peer's data and then its FIN (no close_notify) arrive while reading
 * is paused: nothing is delivered until resume_reading, then the data,
 * eof_received and connection_lost(0), in that order. */
TEST(tls_peer_eof_while_reading_is_paused)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 0, &served);

    tapio_transport_pause_reading(served->t);
    peer_send_sealed(peer, "before the end", WHOLE);
    CHECK(shutdown(peer->fd, SHUT_WR) == 0);
    run_for(loop, 0.1);
    CHECK_EQ_INT(served->rx.len, 0);
    CHECK_EQ_INT(served->eofs, 0);
    CHECK_EQ_INT(served->lost, 0);

    tapio_transport_resume_reading(served->t);
    RUN_UNTIL(loop, served->lost, 10);
    CHECK_EQ_INT(served->rx.len, 14);
    CHECK_MEM_EQ(served->rx.p, "before the end", 14);
    CHECK_EQ_INT(served->eofs, 1);
    CHECK_EQ_INT(served->rx_at_eof, 14);
    CHECK_ERR(served->lost_err, 0);
    RUN_UNTIL(loop, peer->eof || peer->read_err, 10);
    peer_close(peer, false);
}

/* A record that does not decrypt: TAPIO_ETLS, described by tapio_tls_error. */
TEST(tls_corrupt_record_is_a_tls_error)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 0, &served);

    peer_send_sealed(peer, "tampered with", CORRUPTED);
    RUN_UNTIL(loop, served->lost, 10);
    CHECK_ERR(served->lost_err, TAPIO_ETLS);
    CHECK_EQ_INT(served->rx.len, 0);
    const char *text = tapio_tls_error(served->t);
    CHECK(text != NULL);
    printf("corrupt record: %s\n", text);
    CHECK(contains(text, "decrypt") || contains(text, "bad record mac"));
    RUN_UNTIL(loop, peer->eof || peer->read_err, 10);
    peer_close(peer, false);
}

/* The peer closes during the handshake: the connect fails with
 * -ECONNRESET (asyncio's ConnectionResetError). */
TEST(tls_peer_closes_during_the_handshake)
{
    tapio_loop *loop = test_loop();
    int port;
    int lfd = silent_listener(&port);
    tapio_tls_options c = client_tls(client_context());
    conn *client = start_tls_connect(loop, "127.0.0.1", port, &c, NULL);
    int fd = -1;
    set_nonblocking(lfd);
    RUN_UNTIL(loop, (fd = accept(lfd, NULL, NULL)) >= 0, 10);
    char hello[4096];
    RUN_UNTIL(loop, recv(fd, hello, sizeof hello, MSG_DONTWAIT) > 0, 10);
    CHECK_EQ_INT((unsigned char)hello[0], 0x16); /* a handshake record */
    close(fd);
    RUN_UNTIL(loop, client->connect_done, 10);
    CHECK_ERR(client->connect_err, -ECONNRESET);
    CHECK_EQ_INT(client->made, 0);
    close(lfd);
}

/* A plain server answering garbage: the handshake fails with TAPIO_ETLS. */
static void garbage_reply(tapio_transport *t, const void *data, size_t len,
                          void *user)
{
    conn_on_data(t, data, len, user);
    CHECK_OK(tapio_transport_write(t, "HTTP/1.0 400 Bad Request\r\n\r\n", 28));
}

static const tapio_protocol garbage_protocol = {
    .connection_made = conn_on_made,
    .data_received = garbage_reply,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

static const tapio_protocol *garbage_factory(tapio_server *s, void *arg,
                                             void **user)
{
    (void)s, (void)arg;
    *user = conn_new();
    return &garbage_protocol;
}

TEST(tls_handshake_with_a_plain_server_fails)
{
    tapio_loop *loop = test_loop();
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *server = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, garbage_factory, NULL,
                                 &server));
    tapio_tls_options c = client_tls(client_context());
    conn *client = try_connect_tls(loop, "127.0.0.1", tapio_server_port(server), &c);
    CHECK_ERR(client->connect_err, TAPIO_ETLS);
    CHECK_EQ_INT(client->made, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
}

/* A plain client talking to a TLS server: dropped quietly, as asyncio does
 * outside debug mode; the protocol's connection_made never runs. */
TEST(tls_server_drops_a_plain_client_quietly)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *server = default_server(loop, "127.0.0.1", acc);
    int fd = raw_connect(tapio_server_port(server));
    const char req[] = "GET / HTTP/1.0\r\n\r\n";
    CHECK(send(fd, req, sizeof req - 1, 0) == (ssize_t)(sizeof req - 1));
    bytes got = {0};
    sink sk;
    sink_start(loop, &sk, fd);
    sk.keep = &got;
    RUN_UNTIL(loop, sk.done, 10);
    bytes_free(&got);
    CHECK_EQ_INT(acc->n, 1);
    CHECK_EQ_INT(acc->conns[0]->made, 0);
    CHECK_EQ_INT(acc->conns[0]->lost, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
    close(fd);
}

/* ======================================================== verification */

/* A verification failure through tapio_tls_start, whose handshake callback
 * can still read tapio_tls_error. */
static void check_start_tls_refused(tapio_loop *loop, tapio_server *server,
                                    const tapio_tls_options *tls,
                                    const char *expect_text)
{
    conn *plain = connect_tcp(loop, "127.0.0.1", tapio_server_port(server));
    struct upgrade *u = (struct upgrade *)conn_alloc(sizeof *u);
    u->tls = *tls;
    upgrade(u, plain->t);
    RUN_UNTIL(loop, u->hs_done, 10);
    CHECK_ERR(u->hs_err, TAPIO_ETLS_VERIFY);
    printf("verify failure: %s\n", u->hs_error_text);
    if (!contains(u->hs_error_text, expect_text))
        FAIL("tapio_tls_error: '%s' does not mention '%s'", u->hs_error_text,
             expect_text);
    CHECK_EQ_INT(u->secure->made, 0);
    CHECK_EQ_INT(u->secure->lost, 0);
    RUN_UNTIL(loop, tapio_transport_fd(plain->t) < 0, 5);
}

TEST(tls_wrong_host_name_fails_verification)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_tls_context_options so = {
        .server = true,
        .cert_file = certs()->wrong_cert,
        .key_file = certs()->wrong_key,
    };
    tapio_tls_options s = server_tls(make_context(&so));
    tapio_server *server = listen_tls(loop, "127.0.0.1", acc, &s);
    int port = tapio_server_port(server);

    tapio_tls_options c = client_tls(client_context());
    c.server_hostname = "localhost";
    conn *client = try_connect_tls(loop, "127.0.0.1", port, &c);
    CHECK_ERR(client->connect_err, TAPIO_ETLS_VERIFY);
    CHECK_EQ_INT(client->made, 0);
    /* Checked against the address when no name is given. */
    c.server_hostname = NULL;
    client = try_connect_tls(loop, "127.0.0.1", port, &c);
    CHECK_ERR(client->connect_err, TAPIO_ETLS_VERIFY);

    c.server_hostname = "localhost";
    check_start_tls_refused(loop, server, &c, "hostname mismatch");

    /* The right name connects; so does any name without the name check. */
    c.server_hostname = "wrong.example";
    client = connect_tls(loop, "127.0.0.1", port, &c);
    tapio_transport_close(client->t);
    tapio_tls_context_options nocheck = {.ca_file = certs()->ca,
                                         .no_hostname_check = true};
    tapio_tls_options c2 = client_tls(make_context(&nocheck));
    c2.server_hostname = "localhost";
    conn *client2 = connect_tls(loop, "127.0.0.1", port, &c2);
    tapio_transport_close(client2->t);
    RUN_UNTIL(loop, client->lost && client2->lost, 10);
    /* The refused handshakes never reached the server's protocol. */
    int made = 0;
    for (size_t i = 0; i < acc->n; i++)
        made += acc->conns[i]->made;
    CHECK_EQ_INT(made, 2);
    CHECK_EQ_INT(loop_error_count(), 0);
}

TEST(tls_untrusted_ca_fails_verification)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *server = default_server(loop, "127.0.0.1", acc);
    int port = tapio_server_port(server);

    tapio_tls_context_options other = {.ca_file = certs()->other_ca};
    tapio_tls_options c = client_tls(make_context(&other));
    conn *client = try_connect_tls(loop, "127.0.0.1", port, &c);
    CHECK_ERR(client->connect_err, TAPIO_ETLS_VERIFY);
    check_start_tls_refused(loop, server, &c, "unable to get local issuer");

    /* no_verify accepts it (insecure, as ssl.CERT_NONE). */
    tapio_tls_context_options insecure = {.ca_file = certs()->other_ca,
                                          .no_verify = true};
    tapio_tls_options c2 = client_tls(make_context(&insecure));
    client = connect_tls(loop, "127.0.0.1", port, &c2);
    CHECK(tapio_tls_peer_certificate(client->t) != NULL);
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, client->lost, 10);
}

static void cn_of(void *x509, char *buf, int len)
{
    X509_NAME *name = X509_get_subject_name(x509);
    CHECK(X509_NAME_get_text_by_NID(name, NID_commonName, buf, len) > 0);
}

static tapio_server *client_cert_server(tapio_loop *loop, acceptor *acc)
{
    tapio_tls_context_options so = {
        .server = true,
        .cert_file = certs()->server_cert,
        .key_file = certs()->server_key,
        .ca_file = certs()->ca,
        .require_client_cert = true,
    };
    tapio_tls_options s = server_tls(make_context(&so));
    return listen_tls(loop, "127.0.0.1", acc, &s);
}

TEST(tls_client_certificate_required)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *server = client_cert_server(loop, acc);
    int port = tapio_server_port(server);

    /* Without one (TLS 1.3): the client's handshake completes before the
     * server checks; the server drops the connection without an alert, so
     * the client sees EOF and a clean connection_lost (asyncio: the same). */
    tapio_tls_options c = client_tls(client_context());
    conn *client = try_connect_tls(loop, "127.0.0.1", port, &c);
    CHECK_ERR(client->connect_err, 0);
    RUN_UNTIL(loop, client->lost, 10);
    CHECK_EQ_INT(client->rx.len, 0);
    CHECK_EQ_INT(client->eofs, 1);
    CHECK_ERR(client->lost_err, 0);
    CHECK_EQ_INT(acc->n, 1);
    CHECK_EQ_INT(acc->conns[0]->made, 0);

    /* Without one (TLS 1.2): the connect itself fails. */
    tapio_tls_context *ctx12 = client_context();
    SSL_CTX *ssl_ctx = tapio_tls_context_ssl_ctx(ctx12);
    CHECK(ssl_ctx != NULL);
    CHECK(SSL_CTX_set_max_proto_version(ssl_ctx, TLS1_2_VERSION) == 1);
    tapio_tls_options c12 = client_tls(ctx12);
    client = try_connect_tls(loop, "127.0.0.1", port, &c12);
    CHECK_ERR(client->connect_err, -ECONNRESET);

    /* With one: accepted, and the server sees who it is. */
    tapio_tls_context_options co = {
        .ca_file = certs()->ca,
        .cert_file = certs()->client_cert,
        .key_file = certs()->client_key,
    };
    tapio_tls_options cc = client_tls(make_context(&co));
    conn *served;
    tls_pair(loop, server, acc, &cc, &client, &served);
    void *peer = tapio_tls_peer_certificate(served->t);
    CHECK(peer != NULL);
    char cn[128];
    cn_of(peer, cn, sizeof cn);
    CHECK(strcmp(cn, TLS_CERTS_CLIENT_CN) == 0);
    CHECK_OK(tapio_transport_write(client->t, "hi", 2));
    RUN_UNTIL(loop, client->rx.len == 2, 10);
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, client->lost && served->lost, 10);
    CHECK_ERR(served->lost_err, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
}

/* ================================================================ ALPN */

static const char *alpn_of_pair(tapio_loop *loop, const char *server_alpn,
                                const char *client_alpn, const char **server_got)
{
    acceptor *acc = acceptor_new();
    tapio_tls_context_options so = {
        .server = true,
        .cert_file = certs()->server_cert,
        .key_file = certs()->server_key,
        .alpn = server_alpn,
    };
    tapio_tls_options s = server_tls(make_context(&so));
    tapio_server *server = listen_tls(loop, "127.0.0.1", acc, &s);
    tapio_tls_context_options co = {.ca_file = certs()->ca, .alpn = client_alpn};
    tapio_tls_options c = client_tls(make_context(&co));
    conn *client, *served;
    tls_pair(loop, server, acc, &c, &client, &served);
    *server_got = tapio_tls_alpn(served->t);
    const char *got = tapio_tls_alpn(client->t);
    tapio_server_close(server, NULL, NULL);
    return got;
}

static bool same(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

TEST(tls_alpn_negotiation)
{
    tapio_loop *loop = test_loop();
    const char *server_got;
    /* The server picks its first protocol that the client offers. */
    const char *got = alpn_of_pair(loop, "h2,http/1.1", "foo,http/1.1,h2",
                                   &server_got);
    CHECK(same(got, "h2") && same(server_got, "h2"));
    got = alpn_of_pair(loop, "h2,http/1.1", "http/1.1", &server_got);
    CHECK(same(got, "http/1.1") && same(server_got, "http/1.1"));
    /* No overlap, or no ALPN on one side: none chosen, the handshake goes on. */
    got = alpn_of_pair(loop, "h2", "spdy/3", &server_got);
    CHECK(got == NULL && server_got == NULL);
    got = alpn_of_pair(loop, NULL, "h2", &server_got);
    CHECK(got == NULL && server_got == NULL);
    got = alpn_of_pair(loop, "h2", NULL, &server_got);
    CHECK(got == NULL && server_got == NULL);

    /* Malformed lists are refused. */
    tapio_tls_context *ctx = NULL;
    tapio_tls_context_options bad = {.alpn = "h2,,http/1.1"};
    CHECK_ERR(tapio_tls_context_new(&bad, &ctx), -EINVAL);
    bad.alpn = "";
    CHECK_OK(tapio_tls_context_new(&bad, &ctx)); /* empty: no ALPN */
    tapio_tls_context_unref(ctx);
}

/* ========================================================= close_notify */

TEST(tls_close_notify_from_the_client)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);
    CHECK_OK(tapio_transport_write(client->t, "last words", 10));
    tapio_transport_close(client->t);
    CHECK(tapio_transport_is_closing(client->t));
    check_clean_close(loop, client, served, 10);
    CHECK(tapio_transport_fd(client->t) < 0);
    CHECK_EQ_INT(loop_error_count(), 0);
}

TEST(tls_close_notify_from_the_server)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);
    CHECK_OK(tapio_transport_write(served->t, "goodbye", 7));
    tapio_transport_close(served->t);
    tapio_transport_close(served->t); /* idempotent */
    check_clean_close(loop, served, client, 7);
}

/* eof_received returning true has no effect under TLS (asyncio warns):
 * the connection closes all the same. */
TEST(tls_eof_received_true_still_closes)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);
    served->keep_open = true; /* what its eof_received returns */
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, client->lost && served->lost, 10);
    CHECK_EQ_INT(served->eofs, 1);
    CHECK_ERR(served->lost_err, 0);
}

/* abort: no close_notify, connection_lost(0) at once; the bare peer sees
 * the socket end without one. */
TEST(tls_abort_skips_close_notify)
{
    tapio_loop *loop = test_loop();
    conn *served;
    ssl_peer *peer = peer_pair(loop, 0, &served);
    CHECK_OK(tapio_transport_write(served->t, "dropped?", 8));
    tapio_transport_abort(served->t);
    CHECK(tapio_transport_is_closing(served->t));
    RUN_UNTIL(loop, served->lost, 5);
    CHECK_ERR(served->lost_err, 0);
    CHECK_EQ_INT(served->eofs, 0);
    RUN_UNTIL(loop, peer->eof || peer->read_err, 10);
    CHECK(!peer->close_notify);
    peer_close(peer, false);
}

/* ===================================================== transport calls */

TEST(tls_write_eof_and_sendfile_are_not_supported)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);
    CHECK(!tapio_transport_can_write_eof(client->t));
    CHECK_ERR(tapio_transport_write_eof(client->t), -ENOTSUP);
    CHECK(tapio_transport_can_write_eof(tapio_tls_raw(client->t)));
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_ERR(tapio_transport_sendfile(client->t, fd, 0, 1, NULL, NULL), -ENOTSUP);
    close(fd);
    /* The connection is untouched. */
    CHECK(!tapio_transport_is_closing(client->t));
    CHECK_OK(tapio_transport_write(client->t, "still here", 10));
    RUN_UNTIL(loop, served->rx.len == 10, 5);
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, client->lost && served->lost, 10);
}

TEST(tls_write_after_close_is_dropped)
{
    tapio_loop *loop = test_loop();
    conn *client, *served;
    default_pair(loop, &client, &served);
    CHECK_OK(tapio_transport_write(client->t, "kept", 4));
    tapio_transport_close(client->t);
    CHECK_OK(tapio_transport_write(client->t, "dropped", 7));
    struct iovec iov[2] = {{"also ", 5}, {"dropped", 7}};
    CHECK_OK(tapio_transport_writev(client->t, iov, 2));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(client->t), 0);
    RUN_UNTIL(loop, client->lost && served->lost, 10);
    CHECK_EQ_INT(served->rx.len, 4);
    CHECK_MEM_EQ(served->rx.p, "kept", 4);
    /* After connection_lost too. */
    CHECK_OK(tapio_transport_write(client->t, "late", 4));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(client->t), 0);
    tapio_transport_close(client->t);
    tapio_transport_abort(client->t);
    tapio_transport_pause_reading(client->t);
    tapio_transport_resume_reading(client->t);
    run_briefly(loop, 3);
}

static void check_cn(void *x509, const char *want)
{
    char cn[128];
    cn_of(x509, cn, sizeof cn);
    if (strcmp(cn, want) != 0)
        FAIL("certificate CN '%s', expected '%s'", cn, want);
}

TEST(tls_extra_info_after_the_handshake)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_tls_context *sctx = server_context();
    tapio_tls_options s = server_tls(sctx);
    tapio_server *server = listen_tls(loop, "127.0.0.1", acc, &s);
    tapio_tls_context *cctx = client_context();
    tapio_tls_options c = client_tls(cctx);
    conn *client, *served;
    tls_pair(loop, server, acc, &c, &client, &served);

    for (int side = 0; side < 2; side++) {
        tapio_transport *t = side ? served->t : client->t;
        CHECK(tapio_transport_is_tls(t));
        CHECK(tapio_tls_cipher(t) != NULL);
        CHECK(tapio_tls_version(t) != NULL);
        CHECK(strcmp(tapio_tls_version(t), "TLSv1.3") == 0);
        CHECK(tapio_tls_alpn(t) == NULL);
        CHECK(tapio_tls_error(t) == NULL);
        SSL *ssl = tapio_tls_ssl(t);
        CHECK(ssl != NULL);
        CHECK(SSL_get_SSL_CTX(ssl) ==
              tapio_tls_context_ssl_ctx(side ? sctx : cctx));
        CHECK(tapio_tls_engine_state(t) != NULL);
        tapio_transport *raw = tapio_tls_raw(t);
        CHECK(raw != NULL && !tapio_transport_is_tls(raw));
        CHECK(tapio_transport_fd(t) >= 0);
        CHECK_EQ_INT(tapio_transport_fd(t), tapio_transport_fd(raw));
        CHECK(tapio_transport_loop(t) == loop);
        struct sockaddr_storage a, b;
        socklen_t alen = sizeof a, blen = sizeof b;
        CHECK_OK(tapio_transport_peername(t, &a, &alen));
        CHECK_OK(tapio_transport_peername(raw, &b, &blen));
        CHECK(alen == blen && memcmp(&a, &b, alen) == 0);
        alen = sizeof a, blen = sizeof b;
        CHECK_OK(tapio_transport_sockname(t, &a, &alen));
        CHECK_OK(tapio_transport_sockname(raw, &b, &blen));
        CHECK(alen == blen && memcmp(&a, &b, alen) == 0);
        void *user = NULL;
        CHECK(tapio_transport_get_protocol(t, &user) == &conn_protocol);
        CHECK(user == (side ? served : client));
    }
    /* The client sees the server's certificate; the server asked for none. */
    void *cert = tapio_tls_peer_certificate(client->t);
    CHECK(cert != NULL);
    check_cn(cert, TLS_CERTS_SERVER_CN);
    CHECK(tapio_tls_peer_certificate(served->t) == NULL);
    CHECK(strcmp(tapio_tls_cipher(client->t), tapio_tls_cipher(served->t)) == 0);

    /* Plain transports have none of it. */
    conn *plain = connect_tcp(loop, "127.0.0.1", tapio_server_port(server));
    CHECK(!tapio_transport_is_tls(plain->t));
    CHECK(tapio_tls_raw(plain->t) == NULL);
    CHECK(tapio_tls_cipher(plain->t) == NULL);
    CHECK(tapio_tls_version(plain->t) == NULL);
    CHECK(tapio_tls_alpn(plain->t) == NULL);
    CHECK(tapio_tls_peer_certificate(plain->t) == NULL);
    CHECK(tapio_tls_ssl(plain->t) == NULL);
    CHECK(tapio_tls_error(plain->t) == NULL);
    CHECK(tapio_tls_engine_state(plain->t) == NULL);
    tapio_transport_abort(plain->t);

    tapio_transport_close(client->t);
    RUN_UNTIL(loop, client->lost && served->lost && plain->lost, 10);
    CHECK_EQ_INT(tapio_transport_fd(client->t), -1);
}

/* =========================================================== lifetimes */

TEST(tls_connect_cancel_during_the_handshake)
{
    tapio_loop *loop = test_loop();
    int port;
    int lfd = silent_listener(&port);
    set_nonblocking(lfd);
    tapio_tls_options c = client_tls(client_context());
    tapio_connect_req *req = NULL;
    conn *client = start_tls_connect(loop, "127.0.0.1", port, &c, &req);
    CHECK(req != NULL);
    int fd = -1;
    RUN_UNTIL(loop, (fd = accept(lfd, NULL, NULL)) >= 0, 10);
    char hello[4096];
    RUN_UNTIL(loop, recv(fd, hello, sizeof hello, MSG_DONTWAIT) > 0, 10);
    /* The ClientHello went out: the handshake runs. */
    tapio_connect_cancel(req);
    tapio_connect_cancel(req); /* harmless twice */
    RUN_UNTIL(loop, client->connect_done, 10);
    CHECK_ERR(client->connect_err, -ECANCELED);
    CHECK_EQ_INT(client->made, 0);
    /* The socket was closed. */
    RUN_UNTIL(loop, socket_ended(fd), 10);
    run_briefly(loop, 3);
    CHECK_EQ_INT(loop_error_count(), 0);
    close(fd);

    /* Cancelled before the TCP connection is made. */
    client = start_tls_connect(loop, "127.0.0.1", port, &c, &req);
    tapio_connect_cancel(req);
    RUN_UNTIL(loop, client->connect_done, 10);
    CHECK_ERR(client->connect_err, -ECANCELED);
    close(lfd);
}

/* Closing the loop with TLS connections in every state frees everything
 * (LeakSanitizer checks the memory, the harness the fds). */
TEST(tls_loop_close_with_connections_open)
{
    tapio_loop *loop = test_loop();
    acceptor *acc;
    tapio_server *server = echo_server(loop, "127.0.0.1", &acc);
    tapio_tls_options c = client_tls(client_context());
    conn *client, *served;
    /* Established, with data moving. */
    tls_pair(loop, server, acc, &c, &client, &served);
    write_pattern(client, 300 * 1000);
    /* Established, the receiver paused and the sender's buffer full. */
    conn *client2, *served2;
    tls_pair(loop, server, acc, &c, &client2, &served2);
    tapio_transport_pause_reading(served2->t);
    write_pattern(client2, 3 * 1024 * 1024);
    run_for(loop, 0.1);
    /* Shutting down, close_notify sent. */
    conn *client3, *served3;
    tls_pair(loop, server, acc, &c, &client3, &served3);
    tapio_transport_close(client3->t);
    run_briefly(loop, 1);
    /* A connect in its handshake with a silent server. */
    int port;
    int lfd = silent_listener(&port);
    conn *stalled = start_tls_connect(loop, "127.0.0.1", port, &c, NULL);
    /* A connection accepted, its handshake under way on the server. */
    int raw_fd = raw_connect(tapio_server_port(server));
    conn *plain = connect_tcp(loop, "127.0.0.1", tapio_server_port(server));
    run_briefly(loop, 5);
    /* A handshake not started yet (tapio_tls_start on a live transport). */
    tapio_transport *face = NULL;
    conn *pending = conn_new();
    CHECK_OK(tapio_tls_start(plain->t, &c, &conn_protocol, pending, NULL, NULL,
                             &face));

    test_loop_close();
    CHECK(!stalled->connect_done);
    CHECK_EQ_INT(pending->made, 0);
    close(raw_fd);
    close(lfd);
}

/* A server closed with TLS connections open keeps them; on_closed waits
 * until they are gone. */
static void set_true(tapio_loop *loop, void *arg)
{
    (void)loop;
    *(bool *)arg = true;
}

TEST(tls_server_close_waits_for_connections)
{
    tapio_loop *loop = test_loop();
    acceptor *acc;
    tapio_server *server = echo_server(loop, "127.0.0.1", &acc);
    conn *client, *served;
    tls_pair(loop, server, acc, NULL, &client, &served);
    bool closed = false;
    tapio_server_close(server, set_true, &closed);
    run_for(loop, 0.1);
    CHECK(!closed);
    CHECK_OK(tapio_transport_write(client->t, "ping", 4));
    RUN_UNTIL(loop, client->rx.len == 4, 5);
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, closed, 10);
    CHECK(served->lost); /* before on_closed */
    RUN_UNTIL(loop, client->lost, 10);
    CHECK_ERR(client->lost_err, 0);
}

/* ============================================================= options */

TEST(tls_bad_options_are_refused)
{
    tapio_loop *loop = test_loop();
    tapio_tls_context *ctx = NULL;
    /* A server needs a certificate. */
    tapio_tls_context_options o = {.server = true};
    CHECK_ERR(tapio_tls_context_new(&o, &ctx), -EINVAL);
    /* Files that do not load. */
    o.cert_file = "/nonexistent/cert.pem";
    CHECK_ERR(tapio_tls_context_new(&o, &ctx), TAPIO_ETLS);
    o.cert_file = certs()->server_cert;
    o.key_file = certs()->client_key; /* not its key */
    CHECK_ERR(tapio_tls_context_new(&o, &ctx), TAPIO_ETLS);
    tapio_tls_context_options co = {.ca_file = "/nonexistent/ca.pem"};
    CHECK_ERR(tapio_tls_context_new(&co, &ctx), TAPIO_ETLS);
    co.ca_file = certs()->ca;
    co.ciphers = "NO-SUCH-CIPHER";
    CHECK_ERR(tapio_tls_context_new(&co, &ctx), -EINVAL);

    /* TLS options without a context or an engine. */
    tapio_tls_options none = {0};
    tapio_connect_options copts = {.tls = &none};
    conn *c = conn_new();
    CHECK_ERR(tapio_connect(loop, "127.0.0.1", "1", &copts, &conn_protocol, c,
                            conn_on_connected, c, NULL),
              -EINVAL);
    tapio_server_options sopts = {.tls = &none};
    tapio_server *server = NULL;
    const char *hosts[] = {"127.0.0.1", NULL};
    CHECK_ERR(tapio_server_listen(loop, hosts, "0", &sopts, acceptor_factory,
                                  acceptor_new(), &server),
              -EINVAL);
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    tapio_transport *raw = NULL, *face = NULL;
    CHECK_OK(tapio_transport_from_fd(loop, fds[0], NULL, NULL, &raw));
    CHECK_ERR(tapio_tls_start(raw, &none, &conn_protocol, NULL, NULL, NULL, &face),
              -EINVAL);
    tapio_transport_close(raw);
    close(fds[1]);
    run_briefly(loop, 3);
    CHECK_EQ_INT(c->connect_done, false);
}


/* ===================================================== renegotiation */

/* A TLS 1.2 client asks to renegotiate: the server refuses (its context sets
 * SSL_OP_NO_RENEGOTIATION) and no second handshake happens. */
TEST(tls_renegotiation_is_refused)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *srv = default_server(loop, "127.0.0.1", acc);
    ssl_peer *peer = peer_connect_tls12(loop, tapio_server_port(srv));
    peer_wait_handshake(loop, peer);
    RUN_UNTIL(loop, acc->n == 1 && acc->conns[0]->made, 10);
    conn *served = acc->conns[0];
    SSL *server_ssl = tapio_tls_ssl(served->t);
    CHECK(server_ssl != NULL);

    CHECK_EQ_INT(SSL_renegotiate(peer->ssl), 1);
    SSL_do_handshake(peer->ssl); /* the new ClientHello goes out */
    ERR_clear_error();
    peer_flush(peer);
    RUN_UNTIL(loop, peer->ssl_err || peer->eof || served->lost, 5);
    CHECK(peer->ssl_err != 0 || peer->eof || served->lost);
    CHECK(SSL_renegotiate_pending(peer->ssl) || peer->ssl_err || peer->eof);
    CHECK_EQ_INT(SSL_total_renegotiations(server_ssl), 0);
    peer_close(peer, false);
    RUN_UNTIL(loop, served->lost, 10);
}
