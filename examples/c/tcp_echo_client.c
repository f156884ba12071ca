/*
 * tcp_echo_client.c — "TCP Echo Client" from the asyncio documentation
 * (Transports and Protocols, Examples), on libtapio.
 *
 * Connects, sends a message, prints what comes back and exits once the server
 * has closed the connection, printing what the Python EchoClientProtocol
 * prints.
 *
 *   usage: tcp_echo_client [HOST [PORT [MESSAGE]]]
 *          (default: 127.0.0.1 8888 'Hello World!')
 *
 * Exits 0 after the connection was lost, 1 if it could not be made.
 */
#include <stdio.h>
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

/* On success there is nothing to do: connection_made has run and the loop
 * keeps going until connection_lost. */
static void on_connect(tapio_transport *t, int err, void *arg)
{
    struct echo_client *c = arg;

    (void)t;
    if (err < 0) {
        fprintf(stderr, "tcp_echo_client: cannot connect to %s:%s: %s\n",
                c->host, c->port, tapio_strerror(err));
        tapio_loop_stop(c->loop);
    }
}

int main(int argc, char **argv)
{
    struct echo_client client = {
        .host = argc > 1 ? argv[1] : "127.0.0.1",
        .port = argc > 2 ? argv[2] : "8888",
        .message = argc > 3 ? argv[3] : "Hello World!",
    };
    int err;

    if (argc > 4) {
        fprintf(stderr, "usage: %s [HOST [PORT [MESSAGE]]]\n", argv[0]);
        return 2;
    }
    /* message.encode() needs text; bytes that are not UTF-8 are refused. */
    if (!py_decode_utf8(client.message, strlen(client.message)))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);

    err = tapio_loop_new(&client.loop);
    if (err < 0) {
        fprintf(stderr, "tcp_echo_client: %s\n", tapio_strerror(err));
        return 1;
    }
    err = tapio_connect(client.loop, client.host, client.port, NULL,
                        &echo_client_protocol, &client, on_connect, &client,
                        NULL);
    if (err < 0)
        on_connect(NULL, err, &client);
    else
        tapio_loop_run_forever(client.loop);

    tapio_loop_close(client.loop);
    return client.con_lost ? 0 : 1;
}
