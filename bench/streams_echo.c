/*
 * streams_echo: the benchmark's echo server on libtapio's streams
 * (tapio_start_server and tapio_stream), as an asyncio streams server
 * writes one: read, write, await drain, read again.
 *
 * Usage: streams_echo PORT [read | exactly SIZE | line]
 *
 *   read      (default) read(256 KiB), write it back, drain (the Python
 *             benchmark's streams mode, bench/py_echo_server.py);
 *   exactly   readexactly(SIZE), write, drain: the echo of fixed-size
 *             records (bench/run.py gives SIZE 1024, its small message);
 *   line      readline(), write, drain (for line-oriented clients).
 *
 * Listens on 127.0.0.1:PORT, prints "ready", runs until SIGTERM or SIGINT,
 * then closes the server and the loop and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tapio.h"

#define READ_SIZE (256 * 1024)

enum mode { MODE_READ, MODE_EXACTLY, MODE_LINE };
static enum mode mode;
static size_t record_size;

static void on_data(tapio_stream *s, const void *data, size_t len, int err,
                    void *arg);

static void on_closed(tapio_stream *s, int err, void *arg)
{
    (void)err, (void)arg;
    tapio_stream_free(s);
}

static void next_read(tapio_stream *s)
{
    int err = mode == MODE_READ ? tapio_stream_read(s, READ_SIZE, on_data, NULL)
            : mode == MODE_EXACTLY
                ? tapio_stream_readexactly(s, record_size, on_data, NULL)
                : tapio_stream_readline(s, on_data, NULL);
    if (err < 0) {
        tapio_stream_close(s);
        tapio_stream_wait_closed(s, on_closed, NULL);
    }
}

static void on_drained(tapio_stream *s, int err, void *arg)
{
    (void)arg;
    if (err < 0) { /* the load client resets its connections when done */
        tapio_stream_wait_closed(s, on_closed, NULL);
        return;
    }
    next_read(s);
}

static void on_data(tapio_stream *s, const void *data, size_t len, int err,
                    void *arg)
{
    (void)arg;
    if (err < 0 || len == 0) {
        tapio_stream_close(s);
        tapio_stream_wait_closed(s, on_closed, NULL);
        return;
    }
    tapio_stream_write(s, data, len);
    tapio_stream_drain(s, on_drained, NULL);
}

static void client_connected(tapio_stream *s, void *arg)
{
    (void)arg;
    next_read(s);
}

static const tapio_stream_handler handler = {client_connected, NULL, 0};

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)signum, (void)arg;
    tapio_loop_stop(loop);
}

static int serve(tapio_loop *loop, const char *port)
{
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server_options opts = {.backlog = SOMAXCONN};
    tapio_server *server;
    int err = tapio_start_server(loop, hosts, port, &opts, &handler, &server);
    if (err < 0)
        return err;
    if ((err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) < 0 ||
        (err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL)) < 0) {
        tapio_server_close(server, NULL, NULL);
        return err;
    }
    printf("ready\n");
    fflush(stdout);
    err = tapio_loop_run_forever(loop);
    tapio_server_close(server, NULL, NULL);
    return err;
}

int main(int argc, char **argv)
{
    int port = argc >= 2 ? atoi(argv[1]) : 0;
    const char *m = argc >= 3 ? argv[2] : "read";
    bool ok = port > 0 && port <= 65535;
    if (strcmp(m, "read") == 0 && argc <= 3) {
        mode = MODE_READ;
    } else if (strcmp(m, "exactly") == 0 && argc == 4) {
        mode = MODE_EXACTLY;
        record_size = (size_t)atol(argv[3]);
        ok = ok && record_size > 0;
    } else if (strcmp(m, "line") == 0 && argc == 3) {
        mode = MODE_LINE;
    } else {
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, "usage: %s PORT [read | exactly SIZE | line]\n",
                argv[0]);
        return 2;
    }
    tapio_loop *loop;
    int err = tapio_loop_new(&loop);
    if (err == 0) {
        err = serve(loop, argv[1]);
        tapio_loop_close(loop);
    }
    if (err < 0) {
        fprintf(stderr, "streams_echo: %s\n", tapio_strerror(err));
        return 1;
    }
    return 0;
}
