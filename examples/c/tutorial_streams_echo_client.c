/*
 * tutorial_streams_echo_client.c — the tutorial's streams echo client
 * (simple_echo_client), on libtapio's streams.
 *
 * Writes four lines, prints "Lines received", then reads lines and prints
 * each as Python prints bytes until the last one (or EOF), and closes.
 *
 *   usage: tutorial_streams_echo_client [HOST [PORT]]
 *          (default: localhost 2222)
 *
 * Exits 0 once closed, 1 if the connection could not be made.
 */
#include <stdio.h>
#include <string.h>

#include "pyrepr.h"
#include "tapio.h"

#define LASTLINE "Last line.\n"

struct client {
    tapio_loop *loop;
    const char *host, *port;
    int status;
};

static void on_closed(tapio_stream *s, int err, void *arg)
{
    struct client *c = arg;
    (void)err;
    tapio_stream_free(s);
    tapio_loop_stop(c->loop);
}

static void on_line(tapio_stream *s, const void *line, size_t len, int err,
                    void *arg)
{
    struct client *c = arg;
    if (err < 0) {
        fprintf(stderr, "tutorial_streams_echo_client: %s\n",
                tapio_strerror(err));
    } else {
        py_print_bytes(stdout, line, len);
        putchar('\n');
        bool last = len == strlen(LASTLINE) && memcmp(line, LASTLINE, len) == 0;
        if (!last && len > 0) {
            tapio_stream_readline(s, on_line, c);
            return;
        }
        c->status = 0;
    }
    tapio_stream_close(s);
    tapio_stream_wait_closed(s, on_closed, c);
}

static void on_open(tapio_stream *s, int err, void *arg)
{
    struct client *c = arg;
    if (err < 0) {
        fprintf(stderr, "tutorial_streams_echo_client: cannot connect to %s:%s: %s\n",
                c->host, c->port, tapio_strerror(err));
        tapio_loop_stop(c->loop);
        return;
    }
    static const char *const lines[] = {"First line.\n", "Second line.\n",
                                        "Third line.\n", LASTLINE};
    for (int i = 0; i < 4; i++)
        tapio_stream_write(s, lines[i], strlen(lines[i]));
    puts("Lines received");
    tapio_stream_readline(s, on_line, c);
}

int main(int argc, char **argv)
{
    struct client c = {
        .host = argc > 1 ? argv[1] : "localhost",
        .port = argc > 2 ? argv[2] : "2222",
        .status = 1,
    };
    if (argc > 3) {
        fprintf(stderr, "usage: %s [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int err = tapio_loop_new(&c.loop);
    if (err < 0) {
        fprintf(stderr, "tutorial_streams_echo_client: %s\n",
                tapio_strerror(err));
        return 1;
    }
    err = tapio_open_connection(c.loop, c.host, c.port, NULL, 0, on_open, &c);
    if (err < 0)
        on_open(NULL, err, &c);
    else
        tapio_loop_run_forever(c.loop);
    tapio_loop_close(c.loop);
    return c.status;
}
