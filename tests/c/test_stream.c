/* test_stream.c — the stream transport over TCP and Unix sockets. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BIG (8 * 1024 * 1024)

/* Queue `n` pattern bytes that a non-reading peer leaves in the buffer. */
static void write_pattern(conn *c, size_t n)
{
    unsigned char *data = pattern_new(n);
    CHECK_OK(tapio_transport_write(c->t, data, n));
    free(data);
}

/* ------------------------------------------------------------------ echo */

/* The client sends 1 MiB, the echo server returns it, the client closes. */
static void check_echo(tapio_loop *loop, conn *client, acceptor *acc)
{
    const size_t n = 1024 * 1024;
    client->close_after = n;
    write_pattern(client, n);
    RUN_UNTIL(loop, client->lost, 20);
    CHECK_EQ_INT(client->lost_err, 0);
    CHECK_EQ_INT(client->rx.len, n);
    CHECK(pattern_check(client->rx.p, 0, n));

    /* The server side saw EOF, closed, and lost the connection cleanly. */
    CHECK_EQ_INT(acc->n, 1);
    conn *served = acc->conns[0];
    RUN_UNTIL(loop, served->lost, 10);
    CHECK_EQ_INT(served->eofs, 1);
    CHECK_EQ_INT(served->rx_at_eof, n);
    CHECK_EQ_INT(served->lost_err, 0);
}

TEST(echo_over_tcp)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *client = connect_tcp(loop, "127.0.0.1", tapio_server_port(s));
    check_echo(loop, client, acc);
}

TEST(echo_over_unix_socket)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    char path[108];
    unix_path(path, sizeof path, "echo");
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, path, 0, NULL, acceptor_factory,
                                      acc, &s));
    conn *client = connect_unix(loop, path, 0);
    check_echo(loop, client, acc);
    tapio_server_close(s, NULL, NULL);
}

/* ------------------------------------------------------- pause reading */

TEST(pause_and_resume_reading_are_idempotent)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    CHECK(tapio_transport_is_reading(c->t));
    tapio_transport_pause_reading(c->t);
    tapio_transport_pause_reading(c->t);
    CHECK(!tapio_transport_is_reading(c->t));
    CHECK(send(peer, "abc", 3, 0) == 3);
    run_for(loop, 0.05);
    CHECK_EQ_INT(c->rx.len, 0);

    tapio_transport_resume_reading(c->t);
    tapio_transport_resume_reading(c->t);
    CHECK(tapio_transport_is_reading(c->t));
    RUN_UNTIL(loop, c->rx.len == 3, 5);
    /* A single pause after two resumes still pauses. */
    tapio_transport_pause_reading(c->t);
    CHECK(send(peer, "d", 1, 0) == 1);
    run_for(loop, 0.03);
    CHECK_EQ_INT(c->rx.len, 3);
    tapio_transport_resume_reading(c->t);
    RUN_UNTIL(loop, c->rx.len == 4, 5);
    CHECK_MEM_EQ(c->rx.p, "abcd", 4);
    close(peer);
}

TEST(is_reading_is_false_once_closing)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    tapio_transport_close(c->t);
    CHECK_EQ_INT(c->lost, 0); /* connection_lost comes from the loop */
    CHECK(tapio_transport_is_closing(c->t));
    CHECK(!tapio_transport_is_reading(c->t));
    tapio_transport_resume_reading(c->t);
    CHECK(!tapio_transport_is_reading(c->t));
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(c->lost_err, 0);
    CHECK(!tapio_transport_is_reading(c->t));
    tapio_transport_resume_reading(c->t);
    CHECK(!tapio_transport_is_reading(c->t));
    expect_eof(loop, peer);
    close(peer);
}

static void made_then_pause(tapio_transport *t, void *user)
{
    conn_on_made(t, user);
    tapio_transport_pause_reading(t);
}

static const tapio_protocol paused_at_start_protocol = {
    .connection_made = made_then_pause,
    .data_received = conn_on_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

/* Reading starts after connection_made, so a pause there holds. */
TEST(pause_reading_in_connection_made)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    CHECK(send(fds[1], "early", 5, 0) == 5);
    conn *c = conn_new();
    conn_wrap(loop, fds[0], &paused_at_start_protocol, c);
    run_for(loop, 0.05);
    CHECK_EQ_INT(c->rx.len, 0);
    tapio_transport_resume_reading(c->t);
    RUN_UNTIL(loop, c->rx.len == 5, 5);
    CHECK_MEM_EQ(c->rx.p, "early", 5);
    close(fds[1]);
}

/* ------------------------------------------------------------ half-close */

/* write_eof waits for the buffer: the peer reads every byte, then EOF. */
static void check_write_eof_after_pending_data(int domain)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, domain, &peer);
    CHECK(tapio_transport_can_write_eof(c->t));
    write_pattern(c, BIG);
    CHECK_OK(tapio_transport_write_eof(c->t));
    CHECK(tapio_transport_get_write_buffer_size(c->t) > 0);
    CHECK(!tapio_transport_is_closing(c->t));

    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, s.done, 20);
    CHECK_ERR(s.err, 0);
    CHECK_EQ_INT(s.total, BIG);

    /* The other direction is still open: the peer replies and shuts. */
    CHECK(send(peer, "reply", 5, 0) == 5);
    CHECK(shutdown(peer, SHUT_WR) == 0);
    RUN_UNTIL(loop, c->lost, 10);
    CHECK_EQ_INT(c->rx_at_eof, 5);
    CHECK_MEM_EQ(c->rx.p, "reply", 5);
    CHECK_EQ_INT(c->lost_err, 0); /* eof_received said false: closed */
    close(peer);
}

TEST(write_eof_shuts_down_after_pending_data)
{
    check_write_eof_after_pending_data(AF_INET);
    check_write_eof_after_pending_data(AF_UNIX);
}

static void check_eof_received_true(int domain)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, domain, &peer);
    c->keep_open = true;
    CHECK(shutdown(peer, SHUT_WR) == 0);
    RUN_UNTIL(loop, c->eofs == 1, 5);
    run_for(loop, 0.02);
    CHECK(!tapio_transport_is_closing(c->t));
    CHECK_EQ_INT(c->lost, 0);

    CHECK_OK(tapio_transport_write(c->t, "late", 4));
    char buf[4];
    recv_exactly(loop, peer, buf, 4);
    CHECK_MEM_EQ(buf, "late", 4);
    tapio_transport_close(c->t);
    expect_eof(loop, peer);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(c->lost_err, 0);
    close(peer);
}

TEST(eof_received_true_keeps_the_transport_writable)
{
    check_eof_received_true(AF_INET);
    check_eof_received_true(AF_UNIX);
}

static const tapio_protocol no_eof_protocol = {
    .connection_made = conn_on_made,
    .data_received = conn_on_data,
    .eof_received = NULL, /* counts as returning false */
    .connection_lost = conn_on_lost,
};

static void check_eof_received_false(int domain)
{
    tapio_loop *loop = test_loop();
    for (int null_callback = 0; null_callback <= 1; null_callback++) {
        int fds[2];
        socket_pair(domain, fds);
        conn *c = conn_new();
        conn_wrap(loop, fds[0], null_callback ? &no_eof_protocol
                                              : &conn_protocol, c);
        CHECK(send(fds[1], "bye", 3, 0) == 3);
        CHECK(shutdown(fds[1], SHUT_WR) == 0);
        RUN_UNTIL(loop, c->lost, 5);
        CHECK_EQ_INT(c->eofs, null_callback ? 0 : 1);
        CHECK_EQ_INT(c->rx.len, 3);
        CHECK_EQ_INT(c->lost_err, 0);
        expect_eof(loop, fds[1]);
        close(fds[1]);
    }
}

TEST(eof_received_false_closes_the_transport)
{
    check_eof_received_false(AF_INET);
    check_eof_received_false(AF_UNIX);
}

TEST(write_after_write_eof_fails)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    CHECK_OK(tapio_transport_write_eof(c->t));
    CHECK_OK(tapio_transport_write_eof(c->t)); /* idempotent */
    CHECK_ERR(tapio_transport_write(c->t, "x", 1), -ESHUTDOWN);
    struct iovec iov = {.iov_base = "y", .iov_len = 1};
    CHECK_ERR(tapio_transport_writev(c->t, &iov, 1), -ESHUTDOWN);
    expect_eof(loop, peer);
    CHECK(!tapio_transport_is_closing(c->t));
    close(peer);
}

/* ---------------------------------------------------------- close/abort */

/* close() with megabytes queued: everything arrives, then connection_lost(0). */
static void check_close_flushes(int domain)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, domain, &peer);
    write_pattern(c, BIG);
    CHECK(tapio_transport_get_write_buffer_size(c->t) > 0);
    tapio_transport_close(c->t);
    tapio_transport_close(c->t); /* idempotent */
    CHECK(tapio_transport_is_closing(c->t));
    run_for(loop, 0.05);
    CHECK_EQ_INT(c->lost, 0); /* still flushing */

    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, s.done && c->lost, 20);
    CHECK_ERR(s.err, 0);
    CHECK_EQ_INT(s.total, BIG);
    CHECK_EQ_INT(c->lost_err, 0);
    close(peer);
}

TEST(close_flushes_pending_data)
{
    check_close_flushes(AF_INET);
    check_close_flushes(AF_UNIX);
}

static void check_abort(int domain)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, domain, &peer);
    write_pattern(c, BIG);
    CHECK(send(peer, "unread", 6, 0) == 6); /* waits in our socket */
    tapio_transport_abort(c->t);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    CHECK(tapio_transport_is_closing(c->t));
    CHECK_EQ_INT(c->lost, 0); /* connection_lost comes from the loop */
    tapio_transport_close(c->t);
    tapio_transport_abort(c->t);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(c->lost_err, 0);
    run_for(loop, 0.03);
    CHECK_EQ_INT(c->lost, 1);
    CHECK_EQ_INT(c->rx.len, 0); /* no data_received after abort */

    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, s.done, 10);
    CHECK(s.total < BIG); /* the queued bytes were dropped */
    close(peer);
}

TEST(abort_drops_the_buffer_and_reports_once)
{
    check_abort(AF_INET);
    check_abort(AF_UNIX);
}

/* The peer resets while we have data queued: connection_lost gets the error. */
TEST(peer_reset_while_writing_reports_an_error)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    write_pattern(c, BIG);
    CHECK(tapio_transport_get_write_buffer_size(c->t) > 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(peer); /* sends RST */
    RUN_UNTIL(loop, c->lost, 10);
    CHECK(c->lost_err == -ECONNRESET || c->lost_err == -EPIPE);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
}

TEST(transport_fail_reports_the_error_to_connection_lost)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    write_pattern(c, BIG);
    int errors = loop_error_count();
    tapio_transport_fail(c->t, TAPIO_EPROTOCOL);
    CHECK(tapio_transport_is_closing(c->t));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    CHECK_EQ_INT(c->lost, 0); /* connection_lost comes from the loop */
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_ERR(c->lost_err, TAPIO_EPROTOCOL);
    /* The caller knows the error: the loop's handler is not bothered. */
    CHECK_EQ_INT(loop_error_count(), errors);
    close(peer);
}

TEST(calls_after_connection_lost_are_harmless)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    tapio_transport_abort(c->t);
    RUN_UNTIL(loop, c->lost, 5);
    tapio_transport *t = c->t; /* kept alive by the conn's reference */
    CHECK_OK(tapio_transport_write(t, "dropped", 7));
    tapio_transport_pause_reading(t);
    tapio_transport_resume_reading(t);
    tapio_transport_close(t);
    tapio_transport_abort(t);
    CHECK(tapio_transport_is_closing(t));
    CHECK(!tapio_transport_is_reading(t));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(t), 0);
    CHECK_EQ_INT(tapio_transport_fd(t), -1);
    run_for(loop, 0.02); /* conn fails on any callback after lost */
    expect_eof(loop, peer);
    close(peer);
}

/* ---------------------------------------------------------------- writev */

TEST(writev_sends_buffers_in_order)
{
    tapio_loop *loop = test_loop();
    enum { NIOV = 2000, PIECE = 5, QUEUED = 4 * 1024 * 1024 };
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    unsigned char *data = pattern_new(QUEUED + NIOV * PIECE);
    /* More iovecs than IOV_MAX, some empty, after data already queued. */
    CHECK_OK(tapio_transport_write(c->t, data, QUEUED));
    struct iovec *iov = calloc(NIOV, sizeof *iov);
    CHECK(iov != NULL);
    size_t offset = QUEUED;
    for (int i = 0; i < NIOV; i++) {
        size_t len = i % 100 == 0 ? 0 : PIECE;
        iov[i] = (struct iovec){.iov_base = data + offset, .iov_len = len};
        offset += len;
    }
    CHECK_OK(tapio_transport_writev(c->t, iov, NIOV));
    /* The transport copied the bytes: scribbling on ours changes nothing. */
    memset(data, 0, offset);
    free(iov);
    free(data);
    tapio_transport_close(c->t);
    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, s.done, 20);
    CHECK_ERR(s.err, 0);
    CHECK_EQ_INT(s.total, offset);
    close(peer);
}

/* Like asyncio, a write with nothing queued goes to the socket at once. */
TEST(write_sends_at_once_when_nothing_is_queued)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    CHECK_OK(tapio_transport_write(c->t, "now", 3));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    char buf[3];
    CHECK(recv(peer, buf, 3, MSG_DONTWAIT) == 3); /* the loop did not run */
    CHECK_MEM_EQ(buf, "now", 3);
    CHECK_OK(tapio_transport_write(c->t, "", 0)); /* empty: a no-op */
    close(peer);
}

TEST(writev_on_an_idle_transport)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    struct iovec iov[3] = {
        {.iov_base = "abc", .iov_len = 3},
        {.iov_base = "", .iov_len = 0},
        {.iov_base = "defg", .iov_len = 4},
    };
    CHECK_OK(tapio_transport_writev(c->t, iov, 3));
    char buf[7];
    recv_exactly(loop, peer, buf, 7);
    CHECK_MEM_EQ(buf, "abcdefg", 7);
    close(peer);
}

/* ---------------------------------------------------------- set_protocol */

TEST(set_protocol_switches_callbacks)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *first = conn_with_raw_peer(loop, AF_INET, &peer);
    CHECK(send(peer, "one", 3, 0) == 3);
    RUN_UNTIL(loop, first->rx.len == 3, 5);

    conn *second = conn_new();
    tapio_transport_set_protocol(first->t, &conn_protocol, second);
    conn_adopt(second, first->t);
    void *user = NULL;
    CHECK(tapio_transport_get_protocol(first->t, &user) == &conn_protocol);
    CHECK(user == second);

    CHECK(send(peer, "two", 3, 0) == 3);
    CHECK(shutdown(peer, SHUT_WR) == 0);
    RUN_UNTIL(loop, second->lost, 5);
    CHECK_EQ_INT(second->rx.len, 3);
    CHECK_MEM_EQ(second->rx.p, "two", 3);
    CHECK_EQ_INT(second->eofs, 1);
    /* The first protocol heard nothing after the switch. */
    CHECK_EQ_INT(first->rx.len, 3);
    CHECK_EQ_INT(first->eofs, 0);
    CHECK_EQ_INT(first->lost, 0);
    close(peer);
}

/* ------------------------------------------------------ buffered protocol */

struct bconn {
    conn c;              /* first: conn callbacks take a bconn as a conn */
    size_t size;         /* what get_buffer offers */
    bool give_null;      /* get_buffer returns NULL */
    bool give_empty;     /* get_buffer returns a 0-byte buffer */
    unsigned char mem[65536];
};

static void *b_get_buffer(tapio_transport *t, size_t sizehint, size_t *len,
                          void *user)
{
    (void)sizehint;
    struct bconn *b = user;
    CHECK(t == b->c.t);
    CHECK_EQ_INT(b->c.lost, 0);
    if (b->give_null) {
        *len = sizeof b->mem;
        return NULL;
    }
    *len = b->give_empty ? 0 : b->size;
    return b->mem;
}

static void b_buffer_updated(tapio_transport *t, size_t nbytes, void *user)
{
    struct bconn *b = user;
    CHECK(t == b->c.t);
    CHECK(nbytes > 0 && nbytes <= b->size);
    bytes_append(&b->c.rx, b->mem, nbytes);
}

static void b_data_received(tapio_transport *t, const void *data, size_t len,
                            void *user)
{
    (void)t, (void)data, (void)len, (void)user;
    FAIL("data_received called on a buffered protocol");
}

static const tapio_protocol buffered_protocol = {
    .connection_made = conn_on_made,
    .data_received = b_data_received,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
    .get_buffer = b_get_buffer,
    .buffer_updated = b_buffer_updated,
};

static struct bconn *bconn_with_raw_peer(tapio_loop *loop, int *peer,
                                         size_t size)
{
    int fds[2];
    socket_pair(AF_INET, fds);
    struct bconn *b = (struct bconn *)conn_alloc(sizeof *b);
    b->size = size;
    *peer = fds[1];
    conn_wrap(loop, fds[0], &buffered_protocol, &b->c);
    return b;
}

TEST(buffered_protocol_reads_into_protocol_memory)
{
    tapio_loop *loop = test_loop();
    static const size_t sizes[] = {7, 65536};
    const size_t n = 300 * 1000;
    unsigned char *data = pattern_new(n);
    for (size_t i = 0; i < 2; i++) {
        int peer;
        struct bconn *b = bconn_with_raw_peer(loop, &peer, sizes[i]);
        send_all(loop, peer, data, n);
        CHECK(shutdown(peer, SHUT_WR) == 0);
        RUN_UNTIL(loop, b->c.lost, 20);
        CHECK_EQ_INT(b->c.rx.len, n);
        CHECK(pattern_check(b->c.rx.p, 0, n));
        CHECK_EQ_INT(b->c.rx_at_eof, n);
        CHECK_EQ_INT(b->c.lost_err, 0);
        close(peer);
    }
    free(data);
}

TEST(buffered_protocol_without_a_buffer_fails_the_transport)
{
    tapio_loop *loop = test_loop();
    for (int empty = 0; empty <= 1; empty++) {
        int peer;
        struct bconn *b = bconn_with_raw_peer(loop, &peer, 64);
        b->give_null = !empty;
        b->give_empty = empty;
        int errors = loop_error_count();
        CHECK(send(peer, "x", 1, 0) == 1);
        RUN_UNTIL(loop, b->c.lost, 5);
        CHECK(b->c.lost_err < 0);
        CHECK_EQ_INT(b->c.rx.len, 0);
        /* Not an OS error: asyncio reports it to the exception handler. */
        CHECK(loop_error_count() > errors);
        close(peer);
    }
}

/* asyncio switches between Protocol and BufferedProtocol on set_protocol. */
TEST(set_protocol_to_a_buffered_protocol)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *first = conn_with_raw_peer(loop, AF_UNIX, &peer);
    CHECK(send(peer, "one", 3, 0) == 3);
    RUN_UNTIL(loop, first->rx.len == 3, 5);

    struct bconn *b = (struct bconn *)conn_alloc(sizeof *b);
    b->size = 2;
    tapio_transport_set_protocol(first->t, &buffered_protocol, b);
    conn_adopt(&b->c, first->t);
    CHECK(send(peer, "buffered", 8, 0) == 8);
    RUN_UNTIL(loop, b->c.rx.len == 8, 5);
    CHECK_MEM_EQ(b->c.rx.p, "buffered", 8);
    CHECK_EQ_INT(first->rx.len, 3);
    close(peer);
    RUN_UNTIL(loop, b->c.lost, 5);
    CHECK_EQ_INT(first->lost, 0);
}

/* ------------------------------------------------------------ extra info */

static void check_addresses_match(tapio_transport *t)
{
    int fd = tapio_transport_fd(t);
    CHECK(fd >= 0);
    struct sockaddr_storage mine, os;
    socklen_t mine_len = sizeof mine, os_len = sizeof os;
    CHECK_OK(tapio_transport_sockname(t, &mine, &mine_len));
    CHECK(getsockname(fd, (struct sockaddr *)&os, &os_len) == 0);
    CHECK_EQ_INT(mine_len, os_len);
    CHECK_MEM_EQ(&mine, &os, os_len);
    mine_len = os_len = sizeof mine;
    CHECK_OK(tapio_transport_peername(t, &mine, &mine_len));
    CHECK(getpeername(fd, (struct sockaddr *)&os, &os_len) == 0);
    CHECK_EQ_INT(mine_len, os_len);
    CHECK_MEM_EQ(&mine, &os, os_len);
}

/* a's local address is b's peer address. */
static void check_crossed(tapio_transport *a, tapio_transport *b)
{
    struct sockaddr_storage local, remote;
    socklen_t local_len = sizeof local, remote_len = sizeof remote;
    CHECK_OK(tapio_transport_sockname(a, &local, &local_len));
    CHECK_OK(tapio_transport_peername(b, &remote, &remote_len));
    CHECK_EQ_INT(local_len, remote_len);
    CHECK_MEM_EQ(&local, &remote, local_len);
}

/*
 * After connection_lost the fd is gone (-1), but the addresses stay
 * readable: asyncio caches peername/sockname in the transport's extra info.
 */
static void check_info_after_close(tapio_loop *loop, conn *c)
{
    struct sockaddr_storage before, after;
    socklen_t before_len = sizeof before, after_len = sizeof after;
    CHECK_OK(tapio_transport_peername(c->t, &before, &before_len));
    tapio_transport_close(c->t);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(tapio_transport_fd(c->t), -1);
    CHECK_OK(tapio_transport_peername(c->t, &after, &after_len));
    CHECK_EQ_INT(after_len, before_len);
    CHECK_MEM_EQ(&after, &before, before_len);
    after_len = sizeof after;
    CHECK_OK(tapio_transport_sockname(c->t, &after, &after_len));
}

TEST(extra_info_matches_the_socket)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    CHECK(tapio_transport_loop(client->t) == loop);
    check_addresses_match(client->t);
    check_addresses_match(served->t);
    check_crossed(client->t, served->t);
    check_crossed(served->t, client->t);
    check_info_after_close(loop, client);
}

TEST(extra_info_of_a_unix_connection)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    char path[108];
    unix_path(path, sizeof path, "info");
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, path, 0, NULL, acceptor_factory,
                                      acc, &s));
    conn *client = connect_unix(loop, path, 0);
    RUN_UNTIL(loop, acc->n == 1 && acc->conns[0]->made, 5);
    check_addresses_match(client->t);
    check_addresses_match(acc->conns[0]->t);
    check_crossed(acc->conns[0]->t, client->t);
    check_info_after_close(loop, client);
    tapio_server_close(s, NULL, NULL);
}

/* ----------------------------------------------------- existing sockets */

TEST(transport_from_fd_wraps_a_connected_socket)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    conn *c = conn_new();
    tapio_transport *t = NULL;
    CHECK_OK(tapio_transport_from_fd(loop, fds[0], &conn_protocol, c, &t));
    CHECK(t != NULL);
    CHECK_EQ_INT(c->made, 0); /* connection_made runs from the loop */
    CHECK(tapio_transport_loop(t) == loop);
    CHECK_EQ_INT(tapio_transport_fd(t), fds[0]);
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK_EQ_INT(c->made, 1);
    CHECK(c->t == t);

    CHECK(send(fds[1], "ping", 4, 0) == 4);
    RUN_UNTIL(loop, c->rx.len == 4, 5);
    CHECK_OK(tapio_transport_write(t, "pong", 4));
    char buf[4];
    recv_exactly(loop, fds[1], buf, 4);
    CHECK_MEM_EQ(buf, "pong", 4);
    close(fds[1]);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(c->lost_err, 0);
}

/* ------------------------------------------------------------- sendfile */

struct sendfile_result {
    bool done;
    size_t sent;
    int err;
};

static void on_sendfile_done(tapio_transport *t, size_t sent, int err,
                             void *arg)
{
    (void)t;
    struct sendfile_result *r = arg;
    CHECK(!r->done); /* exactly once */
    r->done = true;
    r->sent = sent;
    r->err = err;
}

/* A temporary file holding the pattern from stream offset 0 to `len`. */
static int pattern_file(size_t len)
{
    char path[] = "/tmp/tapio-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    unsigned char *data = pattern_new(len);
    CHECK(write(fd, data, len) == (ssize_t)len);
    free(data);
    return fd;
}

/* Buffered bytes go first, the file range follows, close waits for both. */
TEST(sendfile_follows_buffered_data_and_close_waits)
{
    const size_t head = 100000, total = BIG;
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    int file = pattern_file(total);
    write_pattern(c, head);
    struct sendfile_result r = {0};
    CHECK_OK(tapio_transport_sendfile(c->t, file, (off_t)head, total - head,
                                      on_sendfile_done, &r));
    CHECK_ERR(tapio_transport_write(c->t, "x", 1), -EBUSY);
    CHECK_ERR(tapio_transport_sendfile(c->t, file, 0, 1, on_sendfile_done,
                                       &r),
              -EBUSY);
    CHECK(!r.done); /* the callback never runs inside the call */
    tapio_transport_close(c->t);

    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, r.done && s.done && c->lost, 30);
    CHECK_ERR(r.err, 0);
    CHECK_EQ_INT(r.sent, total - head);
    CHECK_EQ_INT(s.total, total); /* the sink checked the pattern too */
    CHECK_EQ_INT(c->lost_err, 0);
    CHECK_EQ_INT(lseek(file, 0, SEEK_CUR), (off_t)total); /* untouched */
    close(file);
    close(peer);
}

TEST(sendfile_to_the_end_of_the_file_then_write_again)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    int file = pattern_file(300000);
    struct sendfile_result r = {0};
    CHECK_OK(tapio_transport_sendfile(c->t, file, 0, 0, on_sendfile_done,
                                      &r));
    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, r.done, 10);
    CHECK_EQ_INT(r.sent, 300000);
    /* Writing works again once the callback has run. */
    unsigned char *more = pattern_new(300000 + 1000);
    CHECK_OK(tapio_transport_write(c->t, more + 300000, 1000));
    free(more);
    tapio_transport_close(c->t);
    RUN_UNTIL(loop, s.done && c->lost, 10);
    CHECK_EQ_INT(s.total, 301000);
    close(file);
    close(peer);
}

/* sendfile(2) cannot read a pipe: the caller hears so and may fall back. */
TEST(sendfile_from_a_pipe_reports_espipe)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], "abc", 3) == 3);
    struct sendfile_result r = {0};
    CHECK_OK(tapio_transport_sendfile(c->t, fds[0], 0, 3, on_sendfile_done,
                                      &r));
    RUN_UNTIL(loop, r.done, 5);
    CHECK_ERR(r.err, -ESPIPE);
    CHECK_EQ_INT(r.sent, 0);
    CHECK(!tapio_transport_is_closing(c->t)); /* the transport is fine */
    CHECK_OK(tapio_transport_write(c->t, "ok", 2));
    close(fds[0]);
    close(fds[1]);
    close(peer);
}

/* abort during a sendfile: its callback first (-ECANCELED), then the loss. */
TEST(abort_cancels_a_running_sendfile)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    int file = pattern_file(BIG);
    struct sendfile_result r = {0};
    CHECK_OK(tapio_transport_sendfile(c->t, file, 0, BIG, on_sendfile_done,
                                      &r));
    tapio_transport_abort(c->t);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK(r.done);
    CHECK_ERR(r.err, -ECANCELED);
    CHECK(r.sent < BIG); /* the peer never read */
    close(file);
    close(peer);
}
