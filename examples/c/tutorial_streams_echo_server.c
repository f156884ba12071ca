/*
 * tutorial_streams_echo_server.c — the tutorial's streams echo server
 * (simple_echo_server with client_connected_handler), on libtapio's
 * streams.
 *
 * For each client prints "Connection received!", then reads chunks of up
 * to 8192 bytes, printing each as Python prints bytes (b'...') and writing
 * it back, until EOF; then closes that connection.
 *
 *   usage: tutorial_streams_echo_server [HOST [PORT]]
 *          (default: localhost 2222)
 *
 * Runs until SIGINT or SIGTERM, then exits 0. PORT 0 picks a free port,
 * announced on stderr ("listening on HOST:PORT").
 */
#include <signal.h>
#include <stdio.h>

#include "pyrepr.h"
#include "tapio.h"

static void on_closed(tapio_stream *s, int err, void *arg)
{
    (void)err, (void)arg;
    tapio_stream_free(s);
}

static void on_chunk(tapio_stream *s, const void *data, size_t len, int err,
                     void *arg)
{
    if (err < 0 || len == 0) { /* if not data: break */
        tapio_stream_close(s);
        tapio_stream_wait_closed(s, on_closed, NULL);
        return;
    }
    py_print_bytes(stdout, data, len);
    putchar('\n');
    tapio_stream_write(s, data, len);
    tapio_stream_read(s, 8192, on_chunk, arg);
}

static void client_connected_handler(tapio_stream *s, void *arg)
{
    puts("Connection received!");
    tapio_stream_read(s, 8192, on_chunk, arg);
}

static const tapio_stream_handler handler = {client_connected_handler, NULL,
                                             0};

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)signum, (void)arg;
    tapio_loop_stop(loop);
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "localhost";
    const char *port = argc > 2 ? argv[2] : "2222";
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
        fprintf(stderr, "tutorial_streams_echo_server: %s\n",
                tapio_strerror(err));
        return 1;
    }
    err = tapio_start_server(loop, hosts, port, NULL, &handler, &server);
    if (err == 0 &&
        (err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) == 0)
        err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL);
    if (err < 0) {
        fprintf(stderr, "tutorial_streams_echo_server: cannot serve on %s:%s: %s\n",
                host, port, tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    fprintf(stderr, "listening on %s:%d\n", host, tapio_server_port(server));
    tapio_loop_run_forever(loop);
    tapio_server_close(server, NULL, NULL);
    tapio_loop_close(loop);
    return 0;
}
