/*
 * tutorial_echo_server.c — the tutorial's SimpleEchoProtocol, on libtapio.
 *
 * Prints "Connection received!" for a new connection, prints each chunk of
 * data as Python prints bytes (b'abc') and answers "echo:" followed by the
 * data. When a connection is lost it prints "Connection lost! Closing
 * server...", closes the server and exits once the server is closed, as the
 * tutorial's run_until_complete(server.wait_closed()) does.
 *
 *   usage: tutorial_echo_server [HOST [PORT]]      (default: localhost 2222)
 *
 * PORT 0 picks a free port. The port it listens on is announced on stderr
 * ("listening on HOST:PORT"), so stdout carries only the tutorial's lines.
 */
#include <stdio.h>

#include "pyrepr.h"
#include "tapio.h"

struct tutorial {
    tapio_server *server;
    bool closing; /* server.close() was called; the pointer is going away */
};

static void simple_connection_made(tapio_transport *t, void *user)
{
    (void)t, (void)user;
    puts("Connection received!");
}

static void simple_data_received(tapio_transport *t, const void *data,
                                 size_t len, void *user)
{
    (void)user;
    py_print_bytes(stdout, data, len);
    putchar('\n');
    /* Two writes, as in the tutorial, to keep "echo:" apart from the data. */
    tapio_transport_write(t, "echo:", 5);
    tapio_transport_write(t, data, len);
}

static void on_server_closed(tapio_loop *loop, void *arg)
{
    (void)arg;
    tapio_loop_stop(loop);
}

static void simple_connection_lost(tapio_transport *t, int err, void *user)
{
    struct tutorial *tut = user;

    (void)t, (void)err;
    puts("Connection lost! Closing server...");
    /* Python's server.close() is idempotent; tapio_server_close is called
     * once, since the server is freed after on_server_closed. */
    if (!tut->closing) {
        tut->closing = true;
        tapio_server_close(tut->server, on_server_closed, NULL);
    }
}

static const tapio_protocol simple_echo_protocol = {
    .connection_made = simple_connection_made,
    .data_received = simple_data_received,
    .connection_lost = simple_connection_lost,
};

static const tapio_protocol *simple_factory(tapio_server *server, void *arg,
                                            void **user)
{
    (void)server;
    *user = arg;
    return &simple_echo_protocol;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "localhost";
    const char *port = argc > 2 ? argv[2] : "2222";
    const char *hosts[] = {host, NULL};
    struct tutorial tut = {0};
    tapio_loop *loop;
    int err;

    if (argc > 3) {
        fprintf(stderr, "usage: %s [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    err = tapio_loop_new(&loop);
    if (err < 0) {
        fprintf(stderr, "tutorial_echo_server: %s\n", tapio_strerror(err));
        return 1;
    }
    err = tapio_server_listen(loop, hosts, port, NULL, simple_factory, &tut,
                              &tut.server);
    if (err < 0) {
        fprintf(stderr, "tutorial_echo_server: cannot listen on %s:%s: %s\n",
                host, port, tapio_strerror(err));
        tapio_loop_close(loop);
        return 1;
    }
    fprintf(stderr, "listening on %s:%d\n", host,
            tapio_server_port(tut.server));

    /* Until the server is closed and its last connection is gone. */
    tapio_loop_run_forever(loop);

    tapio_loop_close(loop);
    return 0;
}
