/*
 * tls_echo_server.c — the asyncio documentation's "TCP Echo Server"
 * (Transports and Protocols, Examples) served over TLS, on libtapio: the
 * Python example with loop.create_server(..., ssl=context).
 *
 * The protocol is the plain example's, line for line: the TLS layer hands
 * it plaintext, connection_made runs once the handshake is done, and
 * close() sends close_notify after the echo.
 *
 *   usage: tls_echo_server [--cert FILE] [--key FILE] [HOST [PORT]]
 *          (default: 127.0.0.1 8888; the certificate chain and key, PEM,
 *          default to $TAPIO_TLS_CERT and $TAPIO_TLS_KEY; without a key
 *          file the key is read from the certificate file)
 *
 * Runs until SIGINT or SIGTERM, then closes the server and exits 0. PORT 0
 * picks a free port; the address is announced on stderr ("listening on
 * HOST:PORT"), so stdout carries only the Python example's lines. A client
 * whose handshake fails is dropped quietly, as asyncio drops it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyrepr.h"
#include "tapio.h"

static void echo_connection_made(tapio_transport *t, void *user)
{
    (void)user;
    fputs("Connection from ", stdout);
    py_print_peername(stdout, t);
    putchar('\n');
}

static void echo_data_received(tapio_transport *t, const void *data,
                               size_t len, void *user)
{
    (void)user;
    if (!py_decode_utf8(data, len)) {
        tapio_transport_fail(t, TAPIO_EPROTOCOL);
        return;
    }
    fputs("Data received: ", stdout);
    py_print_str(stdout, data, len);
    fputs("\nSend: ", stdout);
    py_print_str(stdout, data, len);
    putchar('\n');
    tapio_transport_write(t, data, len);

    puts("Close the client socket");
    tapio_transport_close(t);
}

static const tapio_protocol echo_server_protocol = {
    .connection_made = echo_connection_made,
    .data_received = echo_data_received,
};

static const tapio_protocol *echo_factory(tapio_server *server, void *arg,
                                          void **user)
{
    (void)server, (void)arg;
    *user = NULL;
    return &echo_server_protocol;
}

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)signum, (void)arg;
    tapio_loop_stop(loop);
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--cert FILE] [--key FILE] [HOST [PORT]]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *cert = getenv("TAPIO_TLS_CERT");
    const char *key = getenv("TAPIO_TLS_KEY");
    const char *positional[2] = {"127.0.0.1", "8888"};
    int npositional = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return usage(argv[0]);
        else if (npositional < 2)
            positional[npositional++] = argv[i];
        else
            return usage(argv[0]);
    }
    if (!cert || !*cert) {
        fprintf(stderr, "tls_echo_server: no certificate: give --cert FILE "
                        "or set TAPIO_TLS_CERT\n");
        return 2;
    }
    const char *host = positional[0], *port = positional[1];
    const char *hosts[] = {host, NULL};
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
     * context.load_cert_chain(cert, key) */
    tapio_tls_context_options ctx_opts = {
        .server = true,
        .cert_file = cert,
        .key_file = key && *key ? key : NULL,
    };
    tapio_tls_context *ctx;
    int err = tapio_tls_context_new(&ctx_opts, &ctx);
    if (err < 0) {
        fprintf(stderr, "tls_echo_server: cannot load %s: %s\n", cert,
                tapio_strerror(err));
        return 1;
    }

    tapio_loop *loop;
    tapio_server *server;
    err = tapio_loop_new(&loop);
    if (err < 0) {
        fprintf(stderr, "tls_echo_server: %s\n", tapio_strerror(err));
        tapio_tls_context_unref(ctx);
        return 1;
    }
    tapio_tls_options tls = {.context = ctx, .server_side = true};
    tapio_server_options opts = {.tls = &tls};
    err = tapio_server_listen(loop, hosts, port, &opts, echo_factory, NULL,
                              &server);
    if (err < 0) {
        fprintf(stderr, "tls_echo_server: cannot listen on %s:%s: %s\n",
                host, port, tapio_strerror(err));
        tapio_loop_close(loop);
        tapio_tls_context_unref(ctx);
        return 1;
    }
    /* The server holds its own reference to the context. */
    tapio_tls_context_unref(ctx);
    if ((err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) < 0 ||
        (err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL)) < 0) {
        fprintf(stderr, "tls_echo_server: %s\n", tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    fprintf(stderr, "listening on %s:%d\n", host, tapio_server_port(server));

    tapio_loop_run_forever(loop);

    tapio_server_close(server, NULL, NULL);
    tapio_loop_close(loop);
    return 0;
}
