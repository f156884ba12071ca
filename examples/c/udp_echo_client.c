/*
 * udp_echo_client.c — "UDP Echo Client" from the asyncio documentation
 * (Transports and Protocols, Examples), on libtapio.
 *
 * Sends one datagram to the echo server, prints the answer and closes,
 * printing what the Python EchoClientProtocol prints.
 *
 *   usage: udp_echo_client [HOST [PORT [MESSAGE]]]
 *          (default: 127.0.0.1 9999 'Hello World!')
 *
 * Exits 0 once the endpoint is closed; 1 if it cannot be opened.
 */
#include <stdio.h>
#include <string.h>

#include "pyrepr.h"
#include "tapio.h"

typedef struct client {
    const char *message;
    bool lost;
} client;

static void client_connection_made(tapio_datagram *d, void *user)
{
    client *c = user;
    printf("Send: %s\n", c->message);
    tapio_datagram_sendto(d, c->message, strlen(c->message), NULL, 0);
}

static void client_datagram_received(tapio_datagram *d, const void *data,
                                     size_t len, const struct sockaddr *addr,
                                     socklen_t addrlen, void *user)
{
    (void)addr, (void)addrlen, (void)user;
    printf("Received: %.*s\n", (int)len, (const char *)data);
    puts("Close the socket");
    tapio_datagram_close(d);
}

static void client_error_received(tapio_datagram *d, int err, void *user)
{
    (void)d, (void)user;
    printf("Error received: [Errno %d] %s\n", -err, tapio_strerror(err));
}

static void client_connection_lost(tapio_datagram *d, int err, void *user)
{
    (void)d, (void)err;
    client *c = user;
    puts("Connection closed");
    c->lost = true;
}

static const tapio_datagram_protocol echo_client_protocol = {
    .connection_made = client_connection_made,
    .datagram_received = client_datagram_received,
    .error_received = client_error_received,
    .connection_lost = client_connection_lost,
};

int main(int argc, char **argv)
{
    tapio_datagram_options opts = {
        .remote_host = argc > 1 ? argv[1] : "127.0.0.1",
        .remote_port = argc > 2 ? argv[2] : "9999",
    };
    client c = {.message = argc > 3 ? argv[3] : "Hello World!"};
    tapio_loop *loop = NULL;
    int err;

    if (argc > 4) {
        fprintf(stderr, "usage: %s [HOST [PORT [MESSAGE]]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    err = tapio_loop_new(&loop);
    if (err == 0)
        err = tapio_datagram_open(loop, &opts, &echo_client_protocol, &c,
                                  NULL);
    if (err < 0) {
        fprintf(stderr, "udp_echo_client: cannot reach %s:%s: %s\n",
                opts.remote_host, opts.remote_port, tapio_strerror(err));
        if (loop)
            tapio_loop_close(loop);
        return 1;
    }
    /* The Python original awaits on_con_lost. */
    while (!c.lost)
        tapio_loop_run_once(loop);
    tapio_loop_close(loop);
    return 0;
}
