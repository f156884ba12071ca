/*
 * streams_tcp_echo_client.c — "TCP echo client using streams" from the
 * asyncio documentation (Streams, Examples; also the page's opening
 * example, which ends with wait_closed() as this port does), on libtapio's
 * streams.
 *
 * Opens a connection, sends a message, drains, reads up to 100 bytes back,
 * closes and waits until closed, printing what the Python example prints.
 *
 *   usage: streams_tcp_echo_client [HOST [PORT [MESSAGE]]]
 *          (default: 127.0.0.1 8888 'Hello World!')
 *
 * Exits 0 once the connection is closed, 1 if it could not be made.
 */
#include <stdio.h>
#include <string.h>

#include "pyrepr.h"
#include "tapio.h"

struct client {
    tapio_loop *loop;
    const char *host, *port, *message;
    int status;
};

static void on_closed(tapio_stream *s, int err, void *arg)
{
    struct client *c = arg;
    (void)err;
    tapio_stream_free(s);
    c->status = 0;
    tapio_loop_stop(c->loop);
}

/* print(f'Received: {data.decode()!r}'), then close. */
static void on_data(tapio_stream *s, const void *data, size_t len, int err,
                    void *arg)
{
    struct client *c = arg;
    if (err < 0 || !py_decode_utf8(data, len)) {
        fprintf(stderr, "streams_tcp_echo_client: %s\n",
                err < 0 ? tapio_strerror(err) : "the reply is not UTF-8");
        tapio_stream_close(s);
        tapio_stream_wait_closed(s, on_closed, c);
        c->status = 1;
        return;
    }
    fputs("Received: ", stdout);
    py_print_str(stdout, data, len);
    puts("\nClose the connection");
    tapio_stream_close(s);
    tapio_stream_wait_closed(s, on_closed, c);
}

static void on_drained(tapio_stream *s, int err, void *arg)
{
    (void)err; /* an error shows in the read that follows */
    tapio_stream_read(s, 100, on_data, arg);
}

static void on_open(tapio_stream *s, int err, void *arg)
{
    struct client *c = arg;
    if (err < 0) {
        fprintf(stderr, "streams_tcp_echo_client: cannot connect to %s:%s: %s\n",
                c->host, c->port, tapio_strerror(err));
        tapio_loop_stop(c->loop);
        return;
    }
    fputs("Send: ", stdout);
    py_print_str(stdout, c->message, strlen(c->message));
    putchar('\n');
    tapio_stream_write(s, c->message, strlen(c->message));
    tapio_stream_drain(s, on_drained, c);
}

int main(int argc, char **argv)
{
    struct client c = {
        .host = argc > 1 ? argv[1] : "127.0.0.1",
        .port = argc > 2 ? argv[2] : "8888",
        .message = argc > 3 ? argv[3] : "Hello World!",
        .status = 1,
    };
    if (argc > 4) {
        fprintf(stderr, "usage: %s [HOST [PORT [MESSAGE]]]\n", argv[0]);
        return 2;
    }
    if (!py_decode_utf8(c.message, strlen(c.message)))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int err = tapio_loop_new(&c.loop);
    if (err == 0) {
        err = tapio_open_connection(c.loop, c.host, c.port, NULL, 0, on_open,
                                    &c);
        if (err < 0)
            on_open(NULL, err, &c);
        else
            tapio_loop_run_forever(c.loop);
        tapio_loop_close(c.loop);
    } else {
        fprintf(stderr, "streams_tcp_echo_client: %s\n", tapio_strerror(err));
    }
    return c.status;
}
