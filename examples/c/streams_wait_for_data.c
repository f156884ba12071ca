/*
 * streams_wait_for_data.c — "Register an open socket to wait for data
 * using streams" from the asyncio documentation (Streams, Examples), on
 * libtapio's streams: open_connection(sock=rsock) is tapio_stream_from_fd.
 *
 * Makes a socket pair, wraps one end in a stream, sends "abc" from the
 * other end on the next loop iteration, reads up to 100 bytes and prints
 * what the Python example prints.
 *
 *   usage: streams_wait_for_data
 */
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pyrepr.h"
#include "tapio.h"

struct example {
    tapio_loop *loop;
    int wsock;
    int status;
};

static void on_closed(tapio_stream *s, int err, void *arg)
{
    struct example *ex = arg;
    (void)err;
    tapio_stream_free(s);
    tapio_loop_stop(ex->loop);
}

static void on_data(tapio_stream *s, const void *data, size_t len, int err,
                    void *arg)
{
    struct example *ex = arg;
    if (err == 0 && py_decode_utf8(data, len)) {
        /* print("Received:", data.decode()) */
        printf("Received: %.*s\n", (int)len, (const char *)data);
        ex->status = 0;
    } else {
        fprintf(stderr, "streams_wait_for_data: %s\n",
                err ? tapio_strerror(err) : "not UTF-8");
    }
    tapio_stream_close(s);
    tapio_stream_wait_closed(s, on_closed, ex);
    close(ex->wsock); /* Close the second socket */
    ex->wsock = -1;
}

/* Simulate the reception of data from the network. */
static void send_abc(tapio_loop *loop, void *arg)
{
    struct example *ex = arg;
    (void)loop;
    if (send(ex->wsock, "abc", 3, 0) != 3)
        perror("streams_wait_for_data: send");
}

int main(void)
{
    struct example ex = {.wsock = -1, .status = 1};
    int pair[2];
    tapio_stream *reader;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        perror("streams_wait_for_data: socketpair");
        return 1;
    }
    ex.wsock = pair[1];
    int err = tapio_loop_new(&ex.loop);
    if (err == 0 &&
        (err = tapio_stream_from_fd(ex.loop, pair[0], 0, &reader)) == 0 &&
        !tapio_call_soon(ex.loop, send_abc, &ex))
        err = -ENOMEM;
    if (err == 0 && (err = tapio_stream_read(reader, 100, on_data, &ex)) == 0)
        tapio_loop_run_forever(ex.loop);
    if (err < 0)
        fprintf(stderr, "streams_wait_for_data: %s\n", tapio_strerror(err));
    if (ex.loop)
        tapio_loop_close(ex.loop);
    if (ex.wsock >= 0)
        close(ex.wsock);
    return ex.status;
}
