/*
 * connect_existing_socket.c — "Connecting Existing Sockets" from the asyncio
 * documentation (Transports and Protocols, Examples), on libtapio.
 *
 * Wraps one end of a socket pair in a transport, writes to the other end once
 * the loop runs, and waits until the protocol has received the data and
 * closed the transport. Prints "Received: abc", as the Python example does.
 *
 *   usage: connect_existing_socket
 */
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pyrepr.h"
#include "tapio.h"

struct my_protocol {
    tapio_loop *loop;
    bool con_lost; /* the Python example's on_con_lost future */
};

static void my_data_received(tapio_transport *t, const void *data, size_t len,
                             void *user)
{
    (void)user;
    if (!py_decode_utf8(data, len)) {
        tapio_transport_fail(t, TAPIO_EPROTOCOL);
        return;
    }
    fputs("Received: ", stdout);
    fwrite(data, 1, len, stdout);
    putchar('\n');

    /* We are done: close the transport; connection_lost will be called. */
    tapio_transport_close(t);
}

static void my_connection_lost(tapio_transport *t, int err, void *user)
{
    struct my_protocol *p = user;

    /* The socket has been closed. */
    (void)t, (void)err;
    p->con_lost = true;
    tapio_loop_stop(p->loop);
}

static const tapio_protocol my_protocol_table = {
    .data_received = my_data_received,
    .connection_lost = my_connection_lost,
};

/* Simulate the reception of data from the network. */
static void send_abc(tapio_loop *loop, void *arg)
{
    const int *wsock = arg;

    (void)loop;
    if (send(*wsock, "abc", 3, 0) < 0)
        perror("connect_existing_socket: send");
}

int main(int argc, char **argv)
{
    struct my_protocol proto = {0};
    tapio_transport *transport;
    int socks[2], wsock, err;

    if (argc > 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    err = tapio_loop_new(&proto.loop);
    if (err < 0) {
        fprintf(stderr, "connect_existing_socket: %s\n", tapio_strerror(err));
        return 1;
    }
    /* Create a pair of connected sockets. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) < 0) {
        perror("connect_existing_socket: socketpair");
        tapio_loop_close(proto.loop);
        return 1;
    }
    wsock = socks[1];

    /* Register the read end to wait for data; the transport owns it now.
     * connection_made is queued first, so send_abc runs after it, as in
     * Python where call_soon follows the awaited create_connection. */
    err = tapio_transport_from_fd(proto.loop, socks[0], &my_protocol_table,
                                  &proto, &transport);
    if (err < 0) {
        fprintf(stderr, "connect_existing_socket: %s\n", tapio_strerror(err));
        close(wsock);
        tapio_loop_close(proto.loop);
        return 1;
    }
    /* Keep the pointer valid past connection_lost, for the close below. */
    tapio_transport_ref(transport);
    if (tapio_call_soon(proto.loop, send_abc, &wsock))
        tapio_loop_run_forever(proto.loop);
    else
        fputs("connect_existing_socket: out of memory\n", stderr);

    /* Python's "finally: transport.close(); wsock.close()". */
    tapio_transport_close(transport);
    tapio_transport_unref(transport);
    close(wsock);
    tapio_loop_close(proto.loop);
    return proto.con_lost ? 0 : 1;
}
