/*
 * tcp_echo_server.c — "TCP Echo Server" from the asyncio documentation
 * (Transports and Protocols, Examples), on libtapio.
 *
 * Each connection prints its peer, echoes the first data it receives back to
 * the client and closes, printing what the Python EchoServerProtocol prints.
 *
 *   usage: tcp_echo_server [HOST [PORT]]      (default: 127.0.0.1 8888)
 *
 * Runs until SIGINT or SIGTERM, then closes the server and exits 0. PORT 0
 * picks a free port. The address it listens on is announced on stderr
 * ("listening on HOST:PORT"), so stdout carries only the Python example's
 * lines.
 */
#include <signal.h>
#include <stdio.h>

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

/* The protocol keeps no state of its own: the transport is passed to every
 * callback, so one table serves all connections. */
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

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    const char *port = argc > 2 ? argv[2] : "8888";
    const char *hosts[] = {host, NULL};
    tapio_loop *loop;
    tapio_server *server;
    int err;

    if (argc > 3) {
        fprintf(stderr, "usage: %s [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    /* One line at a time, so that output reaches a pipe as it happens. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    err = tapio_loop_new(&loop);
    if (err < 0) {
        fprintf(stderr, "tcp_echo_server: %s\n", tapio_strerror(err));
        return 1;
    }
    err = tapio_server_listen(loop, hosts, port, NULL, echo_factory, NULL,
                              &server);
    if (err < 0) {
        fprintf(stderr, "tcp_echo_server: cannot listen on %s:%s: %s\n",
                host, port, tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    if ((err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) < 0 ||
        (err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL)) < 0) {
        fprintf(stderr, "tcp_echo_server: %s\n", tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    fprintf(stderr, "listening on %s:%d\n", host, tapio_server_port(server));

    tapio_loop_run_forever(loop);

    /* Stop listening; loop_close then aborts any connection still open. */
    tapio_server_close(server, NULL, NULL);
    tapio_loop_close(loop);
    return 0;
}
