/*
 * tls_echo_client.c — the asyncio documentation's "TCP Echo Client"
 * (Transports and Protocols, Examples) over TLS, on libtapio: the Python
 * example with loop.create_connection(..., ssl=context).
 *
 * Connects, completes the handshake (verifying the server's certificate and
 * name), sends a message, prints what comes back and exits once the server
 * has closed the connection, printing what the Python EchoClientProtocol
 * prints.
 *
 *   usage: tls_echo_client [--ca FILE] [--server-hostname NAME]
 *                          [HOST [PORT [MESSAGE]]]
 *          (default: 127.0.0.1 8888 'Hello World!'; the trusted CAs, PEM,
 *          default to $TAPIO_TLS_CA, else the system's store; the name
 *          checked against the certificate is HOST unless given)
 *
 * Exits 0 after the connection was lost, 1 if it could not be made (a
 * certificate that does not verify included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyrepr.h"
#include "tapio.h"

struct echo_client {
    tapio_loop *loop;
    const char *host, *port, *message;
    bool con_lost; /* the Python example's on_con_lost future */
};

static void client_connection_made(tapio_transport *t, void *user)
{
    struct echo_client *c = user;

    tapio_transport_write(t, c->message, strlen(c->message));
    fputs("Data sent: ", stdout);
    py_print_str(stdout, c->message, strlen(c->message));
    putchar('\n');
}

static void client_data_received(tapio_transport *t, const void *data,
                                 size_t len, void *user)
{
    (void)user;
    if (!py_decode_utf8(data, len)) {
        tapio_transport_fail(t, TAPIO_EPROTOCOL);
        return;
    }
    fputs("Data received: ", stdout);
    py_print_str(stdout, data, len);
    putchar('\n');
}

static void client_connection_lost(tapio_transport *t, int err, void *user)
{
    struct echo_client *c = user;

    (void)t, (void)err;
    puts("The server closed the connection");
    c->con_lost = true;
    tapio_loop_stop(c->loop);
}

static const tapio_protocol echo_client_protocol = {
    .connection_made = client_connection_made,
    .data_received = client_data_received,
    .connection_lost = client_connection_lost,
};

/* Called once the TLS handshake is done (connection_made has run), or with
 * the reason it failed. */
static void on_connect(tapio_transport *t, int err, void *arg)
{
    struct echo_client *c = arg;

    (void)t;
    if (err < 0) {
        fprintf(stderr, "tls_echo_client: cannot connect to %s:%s: %s\n",
                c->host, c->port, tapio_strerror(err));
        tapio_loop_stop(c->loop);
    }
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--ca FILE] [--server-hostname NAME] "
            "[HOST [PORT [MESSAGE]]]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *positional[3] = {"127.0.0.1", "8888", "Hello World!"};
    const char *ca = getenv("TAPIO_TLS_CA");
    const char *server_hostname = NULL;
    int npositional = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else if (strcmp(argv[i], "--server-hostname") == 0 && i + 1 < argc)
            server_hostname = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return usage(argv[0]);
        else if (npositional < 3)
            positional[npositional++] = argv[i];
        else
            return usage(argv[0]);
    }
    struct echo_client client = {
        .host = positional[0],
        .port = positional[1],
        .message = positional[2],
    };
    if (!py_decode_utf8(client.message, strlen(client.message)))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* context = ssl.create_default_context(cafile=ca) */
    tapio_tls_context_options ctx_opts = {.ca_file = ca && *ca ? ca : NULL};
    tapio_tls_context *ctx;
    int err = tapio_tls_context_new(&ctx_opts, &ctx);
    if (err < 0) {
        fprintf(stderr, "tls_echo_client: cannot load the CAs: %s\n",
                tapio_strerror(err));
        return 1;
    }
    err = tapio_loop_new(&client.loop);
    if (err < 0) {
        fprintf(stderr, "tls_echo_client: %s\n", tapio_strerror(err));
        tapio_tls_context_unref(ctx);
        return 1;
    }
    tapio_tls_options tls = {.context = ctx,
                             .server_hostname = server_hostname};
    tapio_connect_options opts = {.tls = &tls};
    err = tapio_connect(client.loop, client.host, client.port, &opts,
                        &echo_client_protocol, &client, on_connect, &client,
                        NULL);
    /* The connect request holds its own reference to the context. */
    tapio_tls_context_unref(ctx);
    if (err < 0)
        on_connect(NULL, err, &client);
    else
        tapio_loop_run_forever(client.loop);

    tapio_loop_close(client.loop);
    return client.con_lost ? 0 : 1;
}
