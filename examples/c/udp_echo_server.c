/*
 * udp_echo_server.c — "UDP Echo Server" from the asyncio documentation
 * (Transports and Protocols, Examples), on libtapio.
 *
 * Echoes every datagram back to its sender, printing what the Python
 * EchoServerProtocol prints.
 *
 *   usage: udp_echo_server [HOST [PORT]]      (default: 127.0.0.1 9999)
 *
 * Serves until SIGINT or SIGTERM (the Python original sleeps an hour), then
 * closes the endpoint and exits 0. PORT 0 picks a free port; the address is
 * announced on stderr ("listening on HOST:PORT").
 */
#include <signal.h>
#include <stdio.h>

#include "pyrepr.h"
#include "tapio.h"

static void echo_datagram_received(tapio_datagram *d, const void *data,
                                   size_t len, const struct sockaddr *addr,
                                   socklen_t addrlen, void *user)
{
    (void)user;
    if (!py_decode_utf8(data, len))
        return; /* data.decode() would raise: asyncio reports it and goes on */
    fputs("Received ", stdout);
    py_print_str(stdout, data, len);
    fputs(" from ", stdout);
    py_print_sockaddr(stdout, addr, addrlen);
    fputs("\nSend ", stdout);
    py_print_str(stdout, data, len);
    fputs(" to ", stdout);
    py_print_sockaddr(stdout, addr, addrlen);
    putchar('\n');
    tapio_datagram_sendto(d, data, len, addr, addrlen);
}

static const tapio_datagram_protocol echo_server_protocol = {
    .datagram_received = echo_datagram_received,
};

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)signum, (void)arg;
    tapio_loop_stop(loop);
}

static int local_port(const tapio_datagram *d)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (tapio_datagram_sockname(d, &ss, &len) < 0)
        return 0;
    return ss.ss_family == AF_INET6
               ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int main(int argc, char **argv)
{
    tapio_datagram_options opts = {
        .local_host = argc > 1 ? argv[1] : "127.0.0.1",
        .local_port = argc > 2 ? argv[2] : "9999",
    };
    tapio_loop *loop;
    tapio_datagram *endpoint;
    int err;

    if (argc > 3) {
        fprintf(stderr, "usage: %s [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("Starting UDP server");

    err = tapio_loop_new(&loop);
    if (err < 0) {
        fprintf(stderr, "udp_echo_server: %s\n", tapio_strerror(err));
        return 1;
    }
    err = tapio_datagram_open(loop, &opts, &echo_server_protocol, NULL,
                              &endpoint);
    if (err == 0 &&
        (err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) == 0)
        err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL);
    if (err < 0) {
        fprintf(stderr, "udp_echo_server: cannot serve on %s:%s: %s\n",
                opts.local_host, opts.local_port, tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    fprintf(stderr, "listening on %s:%d\n", opts.local_host,
            local_port(endpoint));

    tapio_loop_run_forever(loop);

    tapio_datagram_close(endpoint);
    tapio_loop_close(loop);
    return 0;
}
