/*
 * streams_tcp_echo_server.c — "TCP echo server using streams" from the
 * asyncio documentation (Streams, Examples), on libtapio's streams.
 *
 * For each client: read up to 100 bytes, print them and the peer, send
 * them back, drain and close, printing what the Python handle_echo prints.
 *
 *   usage: streams_tcp_echo_server [HOST [PORT]]   (default: 127.0.0.1 8888)
 *
 * Prints "Serving on ..." as the example does; runs until SIGINT or
 * SIGTERM, then closes the server and exits 0. PORT 0 picks a free port,
 * announced on stderr ("listening on HOST:PORT").
 */
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>

#include "pyrepr.h"
#include "tapio.h"

static void on_closed(tapio_stream *s, int err, void *arg)
{
    (void)err, (void)arg;
    tapio_stream_free(s);
}

static void close_connection(tapio_stream *s)
{
    tapio_stream_close(s);
    tapio_stream_wait_closed(s, on_closed, NULL);
}

static void on_drained(tapio_stream *s, int err, void *arg)
{
    (void)err, (void)arg;
    puts("Close the connection");
    close_connection(s);
}

static void handle_echo(tapio_stream *s, const void *data, size_t len,
                        int err, void *arg)
{
    (void)arg;
    if (err < 0 || !py_decode_utf8(data, len)) {
        close_connection(s); /* data.decode() raised: the handler ends */
        return;
    }
    fputs("Received ", stdout);
    py_print_str(stdout, data, len);
    fputs(" from ", stdout);
    py_print_peername(stdout, tapio_stream_transport(s));
    fputs("\nSend: ", stdout);
    py_print_str(stdout, data, len);
    putchar('\n');
    tapio_stream_write(s, data, len);
    tapio_stream_drain(s, on_drained, NULL);
}

static void client_connected(tapio_stream *s, void *arg)
{
    (void)arg;
    tapio_stream_read(s, 100, handle_echo, NULL);
}

static const tapio_stream_handler echo_handler = {client_connected, NULL, 0};

/* print(f'Serving on {addrs}'): each listening socket's address. */
static void print_serving(tapio_server *server)
{
    int fds[8];
    size_t n = tapio_server_sockets(server, fds, 8);
    fputs("Serving on ", stdout);
    for (size_t i = 0; i < n && i < 8; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fds[i], (struct sockaddr *)&ss, &len) < 0)
            len = 0;
        fputs(i ? ", " : "", stdout);
        py_print_sockaddr(stdout, (struct sockaddr *)&ss, len);
    }
    putchar('\n');
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

    if (argc > 3) {
        fprintf(stderr, "usage: %s [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int err = tapio_loop_new(&loop);
    if (err < 0) {
        fprintf(stderr, "streams_tcp_echo_server: %s\n", tapio_strerror(err));
        return 1;
    }
    err = tapio_start_server(loop, hosts, port, NULL, &echo_handler, &server);
    if (err == 0 &&
        (err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) == 0)
        err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL);
    if (err < 0) {
        fprintf(stderr, "streams_tcp_echo_server: cannot serve on %s:%s: %s\n",
                host, port, tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    print_serving(server);
    fprintf(stderr, "listening on %s:%d\n", host, tapio_server_port(server));
    tapio_loop_run_forever(loop);
    tapio_server_close(server, NULL, NULL);
    tapio_loop_close(loop);
    return 0;
}
