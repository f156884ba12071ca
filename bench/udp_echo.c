/*
 * udp_echo: the UDP benchmark's echo server on libtapio's datagram endpoint.
 *
 * Usage: udp_echo PORT
 * Binds 127.0.0.1:PORT, prints "ready", and sends every datagram back to its
 * sender from datagram_received. Runs until SIGTERM or SIGINT, then closes
 * the endpoint (waiting for connection_lost) and the loop, and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "tapio.h"

static void echo_datagram_received(tapio_datagram *d, const void *data,
                                   size_t len, const struct sockaddr *addr,
                                   socklen_t addrlen, void *user)
{
    (void)user;
    /* a send error goes to error_received, which is not set: an echo that
     * fails is a lost datagram, and the client's timeout covers it */
    tapio_datagram_sendto(d, data, len, addr, addrlen);
}

static void echo_connection_lost(tapio_datagram *d, int err, void *user)
{
    (void)err, (void)user;
    tapio_loop_stop(tapio_datagram_loop(d));
}

static const tapio_datagram_protocol echo_protocol = {
    .datagram_received = echo_datagram_received,
    .connection_lost = echo_connection_lost,
};

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)signum, (void)arg;
    tapio_loop_stop(loop);
}

static int serve(tapio_loop *loop, const char *port)
{
    tapio_datagram_options opts = {
        .family = AF_INET,
        .local_host = "127.0.0.1",
        .local_port = port,
    };
    tapio_datagram *endpoint;
    int err;

    if ((err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) < 0 ||
        (err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL)) < 0)
        return err;
    err = tapio_datagram_open(loop, &opts, &echo_protocol, NULL, &endpoint);
    if (err < 0)
        return err;
    printf("ready\n");
    fflush(stdout);
    err = tapio_loop_run_forever(loop);
    /* connection_lost stops the loop again once the endpoint is closed */
    tapio_datagram_close(endpoint);
    if (err == 0)
        err = tapio_loop_run_forever(loop);
    return err;
}

int main(int argc, char **argv)
{
    int port = argc == 2 ? atoi(argv[1]) : 0;
    tapio_loop *loop;
    int err;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    err = tapio_loop_new(&loop);
    if (err == 0) {
        err = serve(loop, argv[1]);
        tapio_loop_close(loop);
    }
    if (err < 0) {
        fprintf(stderr, "udp_echo: %s\n", tapio_strerror(err));
        return 1;
    }
    return 0;
}
