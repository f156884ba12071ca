/*
 * load_client: a closed-loop echo load generator on one thread and epoll.
 *
 * Usage: load_client HOST PORT CONNECTIONS MSG_SIZE SECONDS
 *
 * Each of CONNECTIONS connections sends one MSG_SIZE-byte message, waits until
 * all of it has come back, counts one request and sends the next. Requests
 * completed in the first WARMUP_SECONDS are not counted; the run then lasts
 * SECONDS (which may be fractional) and prints one line:
 *
 *   requests=N seconds=S rps=R total_requests=T
 *
 * where T also counts the warm-up, for dividing the server's whole CPU time.
 * Each message's first and last bytes encode its connection and sequence
 * number, so a server that mixes up, repeats or corrupts data is caught
 * cheaply.
 * Exits 1 on a mismatch, a connection error, or if no request completed;
 * 2 on bad usage. HOST must be a numeric address: no name is looked up.
 */
#define _GNU_SOURCE
#include "bench_load.h"

#define READ_SIZE (256 * 1024)

static unsigned char read_buf[READ_SIZE];

/* Sends as much of the message as the socket takes; EPOLLOUT covers the rest. */
static void send_some(struct load_conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, c->msg + c->sent, msg_size - c->sent, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fail("connection %u: send: %s", c->id, strerror(errno));
            break;
        }
        c->sent += (size_t)n;
    }
    load_set_interest(c, c->sent < msg_size);
}

static void start_message(struct load_conn *c)
{
    load_next_message(c);
    send_some(c);
}

static void on_readable(struct load_conn *c, int counting)
{
    ssize_t n = read(c->fd, read_buf, sizeof(read_buf));

    if (n == 0)
        fail("connection %u: closed by the server", c->id);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail("connection %u: read: %s", c->id, strerror(errno));
    }
    if (load_received(c, read_buf, (size_t)n, counting))
        start_message(c);
}

static void on_event(void *conn, uint32_t events, int counting)
{
    struct load_conn *c = conn;

    if (!c->connected) {
        load_connected(c);
        start_message(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c, counting);
    if (c->want_out && (events & EPOLLOUT))
        send_some(c);
}

int main(int argc, char **argv)
{
    struct load_args args = load_parse_args(argc, argv, "load_client");
    struct load_conn *conns = load_alloc(args.connections, sizeof(*conns));

    for (int i = 0; i < args.connections; i++)
        load_open(&conns[i], (unsigned)i, args.ai);
    freeaddrinfo(args.ai);
    load_run(args.seconds, on_event);
    load_report(args.seconds);
    for (int i = 0; i < args.connections; i++)
        load_close(&conns[i]);
    free(conns);
    close(epoll_fd);
    return 0;
}
