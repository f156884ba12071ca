/*
 * test_receiving.c — reading a socket, whatever the backend does to read.
 *
 * epoll and poll report readiness and the transport reads; io_uring
 * receives ahead of the protocol, into the loop's buffers. These tests pin
 * what the protocol sees to asyncio's rules either way: no data_received
 * while paused, every byte once and in order, EOF after the bytes, nothing
 * after close. On io_uring they make bytes arrive while a receive is in
 * flight and reading pauses (the kernel completes it before the cancel
 * reaches it), so the transport holds them until reading resumes.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pause `c`'s transport and, in the same callback, have the peer send:
 * a receive in flight completes with these bytes before the pause can
 * reach the kernel. */
typedef struct pause_then_send {
    conn *c;
    int peer;
    const void *data;
    size_t len;
    bool done;
} pause_then_send;

static void do_pause_then_send(tapio_loop *loop, void *arg)
{
    (void)loop;
    pause_then_send *p = arg;
    tapio_transport_pause_reading(p->c->t);
    CHECK(send(p->peer, p->data, p->len, 0) == (ssize_t)p->len);
    p->done = true;
}

static void pause_with_bytes_in_flight(tapio_loop *loop, conn *c, int peer,
                                       const void *data, size_t len)
{
    pause_then_send p = {c, peer, data, len, false};
    CHECK(tapio_call_soon(loop, do_pause_then_send, &p) != NULL);
    RUN_UNTIL(loop, p.done, 10);
}

TEST(receiving_paused_holds_bytes_until_resumed)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    unsigned char *data = pattern_new(3000);
    CHECK(send(peer, data, 1000, 0) == 1000);
    RUN_UNTIL(loop, c->rx.len == 1000, 10);

    pause_with_bytes_in_flight(loop, c, peer, data + 1000, 1000);
    CHECK(!tapio_transport_is_reading(c->t));
    run_for(loop, 0.05);
    CHECK_EQ_INT(c->rx.len, 1000); /* nothing while paused */

    tapio_transport_resume_reading(c->t);
    CHECK(send(peer, data + 2000, 1000, 0) == 1000);
    RUN_UNTIL(loop, c->rx.len == 3000, 10);
    CHECK(pattern_check(c->rx.p, 0, 3000)); /* once each, in order */
    run_for(loop, 0.02);
    CHECK_EQ_INT(c->rx.len, 3000);
    free(data);
    close(peer);
}

/* Paused again by the held bytes' own data_received: the rest waits for
 * the next resume. */
static void pause_on_every_chunk(tapio_transport *t, const void *data,
                                 size_t len, void *user)
{
    conn_on_data(t, data, len, user);
    tapio_transport_pause_reading(t);
}

static const tapio_protocol pausing_protocol = {
    .connection_made = conn_on_made,
    .data_received = pause_on_every_chunk,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

TEST(receiving_pause_inside_data_received_keeps_order)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    conn *c = conn_new();
    conn_wrap(loop, fds[0], &pausing_protocol, c);
    unsigned char *data = pattern_new(64 * 1024);
    size_t sent = 0;
    while (sent < 64 * 1024) {
        CHECK(send(fds[1], data + sent, 4096, 0) == 4096);
        sent += 4096;
        size_t before = c->rx.len;
        if (before < sent) {
            tapio_transport_resume_reading(c->t);
            RUN_UNTIL(loop, c->rx.len > before, 10);
        }
        CHECK(!tapio_transport_is_reading(c->t));
        run_briefly(loop, 2);
    }
    while (c->rx.len < sent) {
        size_t before = c->rx.len;
        tapio_transport_resume_reading(c->t);
        RUN_UNTIL(loop, c->rx.len > before, 10);
    }
    CHECK_EQ_INT(c->rx.len, sent);
    CHECK(pattern_check(c->rx.p, 0, sent));
    free(data);
    close(fds[1]);
}

/* Paused by the first bytes, while the peer keeps sending. */
static void pause_once(tapio_transport *t, const void *data, size_t len,
                       void *user)
{
    conn *c = user;
    bool first = c->rx.len == 0;
    conn_on_data(t, data, len, user);
    if (first)
        tapio_transport_pause_reading(t);
}

static const tapio_protocol pause_once_protocol = {
    .connection_made = conn_on_made,
    .data_received = pause_once,
    .connection_lost = conn_on_lost,
};

/* A paused transport stops receiving, so its peer's sends stop once the
 * socket's buffer is full: what a backend took ahead of the protocol
 * (on io_uring, what the receive took at the wakeup before its cancel)
 * stays bounded while the loop goes on running. */
TEST(receiving_paused_holds_the_peer_back)
{
    enum { CHUNK = 16 * 1024, SNDBUF = 64 * 1024, ROUNDS = 40 };
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    int sndbuf = SNDBUF; /* the kernel doubles it */
    CHECK(setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sndbuf,
                     sizeof sndbuf) == 0);
    conn *c = conn_new();
    conn_wrap(loop, fds[0], &pause_once_protocol, c);
    unsigned char *data = pattern_new((size_t)ROUNDS * 64 * CHUNK);
    size_t sent = 0;
    for (int round = 0; round < ROUNDS; round++) {
        ssize_t n;
        while ((n = send(fds[1], data + sent, CHUNK, MSG_DONTWAIT)) > 0)
            sent += (size_t)n;
        CHECK(n < 0 && errno == EAGAIN);
        run_for(loop, 0.005);
    }
    CHECK(!tapio_transport_is_reading(c->t));
    size_t delivered = c->rx.len;
    CHECK(delivered > 0 && delivered < sent);
    /* The socket's buffer (2 * SNDBUF) and what one receive takes ahead
     * (64 KiB), with room to spare: not the megabytes a receive that
     * went on while paused would let through. */
    CHECK(sent <= 6 * SNDBUF);

    tapio_transport_resume_reading(c->t);
    RUN_UNTIL(loop, c->rx.len == sent, 10);
    CHECK(pattern_check(c->rx.p, 0, sent));
    free(data);
    close(fds[1]);
}

TEST(receiving_eof_while_paused_follows_the_held_bytes)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    c->keep_open = true;
    unsigned char *data = pattern_new(500);
    pause_with_bytes_in_flight(loop, c, peer, data, 500);
    CHECK(shutdown(peer, SHUT_WR) == 0);
    run_for(loop, 0.05);
    CHECK_EQ_INT(c->rx.len, 0);
    CHECK_EQ_INT(c->eofs, 0);

    tapio_transport_resume_reading(c->t);
    RUN_UNTIL(loop, c->eofs == 1, 10);
    CHECK_EQ_INT(c->rx.len, 500);
    CHECK_EQ_INT(c->rx_at_eof, 500);
    CHECK(pattern_check(c->rx.p, 0, 500));
    CHECK_EQ_INT(c->lost, 0); /* kept open by eof_received */
    free(data);
    close(peer);
}

/* Closed with bytes held and a receive in flight: connection_lost once,
 * nothing after it (conn checks), no fd or memory left (the harness and
 * the sanitizers check). */
TEST(receiving_close_with_bytes_held_and_in_flight)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    unsigned char *data = pattern_new(2000);
    pause_with_bytes_in_flight(loop, c, peer, data, 1000);
    run_briefly(loop, 2);
    tapio_transport_resume_reading(c->t);
    tapio_transport_close(c->t);
    CHECK(send(peer, data + 1000, 1000, 0) == 1000);
    RUN_UNTIL(loop, c->lost == 1, 10);
    CHECK_EQ_INT(c->lost_err, 0);
    CHECK_EQ_INT(c->rx.len, 0); /* closing stops reading at once */
    run_for(loop, 0.02);
    CHECK_EQ_INT(c->lost, 1);
    free(data);
    close(peer);
}

/* A protocol that lends its buffer, switched in mid-stream and out again:
 * every byte once, in order, through whichever protocol is current. */
typedef struct lending {
    conn c; /* first: the harness's view */
    unsigned char buf[700];
    bytes got;
} lending;

static void *lend(tapio_transport *t, size_t hint, size_t *len, void *user)
{
    (void)t, (void)hint;
    lending *l = user;
    *len = sizeof l->buf;
    return l->buf;
}

static void lent_filled(tapio_transport *t, size_t n, void *user)
{
    (void)t;
    lending *l = user;
    bytes_append(&l->got, l->buf, n);
}

static const tapio_protocol lending_protocol = {
    .connection_made = conn_on_made,
    .get_buffer = lend,
    .buffer_updated = lent_filled,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

TEST(receiving_switch_to_a_lending_protocol_and_back)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    unsigned char *data = pattern_new(30000);
    CHECK(send(peer, data, 10000, 0) == 10000);
    RUN_UNTIL(loop, c->rx.len == 10000, 10);

    lending *l = (lending *)conn_alloc(sizeof(lending));
    tapio_transport_set_protocol(c->t, &lending_protocol, l);
    CHECK(send(peer, data + 10000, 10000, 0) == 10000);
    RUN_UNTIL(loop, l->got.len == 10000, 10);
    CHECK(pattern_check(l->got.p, 10000, 10000));

    tapio_transport_set_protocol(c->t, &conn_protocol, c);
    CHECK(send(peer, data + 20000, 10000, 0) == 10000);
    RUN_UNTIL(loop, c->rx.len == 20000, 10);
    CHECK(pattern_check(c->rx.p + 10000, 20000, 10000));
    CHECK_EQ_INT(l->got.len, 10000);
    bytes_free(&l->got);
    free(data);
    close(peer);
}

/* A loop run by one thread, then (after it ended) by another, as asyncio
 * allows: the io_uring backend's ring takes submissions from one thread
 * only and is replaced; the connection goes on, nothing lost or repeated,
 * including bytes that arrived while no thread ran the loop. */
typedef struct runner {
    tapio_loop *loop;
    conn *c;
    size_t until;
} runner;

static void *run_until_received(void *arg)
{
    runner *r = arg;
    RUN_UNTIL(r->loop, r->c->rx.len >= r->until, 10);
    return NULL;
}

static void run_in_new_thread(runner *r)
{
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_until_received, r) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
}

TEST(receiving_across_threads_running_the_loop)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    unsigned char *data = pattern_new(4000);
    runner r = {loop, c, 1000};
    CHECK(send(peer, data, 1000, 0) == 1000);
    run_in_new_thread(&r);
    CHECK(send(peer, data + 1000, 1000, 0) == 1000); /* no thread runs it */
    r.until = 2000;
    run_in_new_thread(&r);
    CHECK(send(peer, data + 2000, 1000, 0) == 1000);
    r.until = 3000;
    run_until_received(&r); /* and the test's own thread */
    CHECK(send(peer, data + 3000, 1000, 0) == 1000);
    r.until = 4000;
    run_in_new_thread(&r);
    CHECK_EQ_INT(c->rx.len, 4000);
    CHECK(pattern_check(c->rx.p, 0, 4000));
    free(data);
    close(peer);
}

/* A loop that always has callbacks ready polls without waiting: what the
 * kernel completed meanwhile must still come out (io_uring defers its
 * completions' work to the loop's waits; a wait of zero runs it too). */
static void keep_busy(tapio_loop *loop, void *arg)
{
    int *spins = arg;
    if (--*spins > 0)
        CHECK(tapio_call_soon(loop, keep_busy, spins) != NULL);
}

TEST(receiving_while_callbacks_keep_the_loop_busy)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_INET, &peer);
    int spins = 1000000;
    CHECK(tapio_call_soon(loop, keep_busy, &spins) != NULL);
    run_briefly(loop, 3);
    CHECK(send(peer, "ping", 4, 0) == 4);
    for (int i = 0; i < 50 && c->rx.len < 4; i++) {
        usleep(1000); /* the bytes are there before the next poll */
        CHECK_OK(tapio_loop_run_once(loop));
    }
    CHECK_EQ_INT(c->rx.len, 4);
    CHECK(shutdown(peer, SHUT_WR) == 0);
    for (int i = 0; i < 50 && !c->eofs; i++) {
        usleep(1000);
        CHECK_OK(tapio_loop_run_once(loop));
    }
    CHECK_EQ_INT(c->eofs, 1);
    CHECK(spins > 0); /* it was busy all along */
    spins = 1;        /* ends with the next call */
    run_briefly(loop, 2);
    close(peer);
}

/* A receive made for a data_received protocol completes for one that
 * lends its buffer (switched in meanwhile), which hands over to
 * conn_protocol again from its first buffer_updated: the rest of the
 * same arrival goes to data_received, every byte once and in order. */
static void lent_then_switch(tapio_transport *t, size_t n, void *user)
{
    lending *l = user;
    lent_filled(t, n, user);
    tapio_transport_set_protocol(t, &conn_protocol, &l->c);
}

static const tapio_protocol switching_protocol = {
    .connection_made = conn_on_made,
    .get_buffer = lend,
    .buffer_updated = lent_then_switch,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

static void data_then_switch(tapio_transport *t, const void *data, size_t len,
                             void *user)
{
    conn_on_data(t, data, len, user);
    tapio_transport_set_protocol(t, &switching_protocol, user);
}

static const tapio_protocol first_data_protocol = {
    .connection_made = conn_on_made,
    .data_received = data_then_switch,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

TEST(receiving_switch_away_inside_buffer_updated)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    lending *l = (lending *)conn_alloc(sizeof(lending));
    conn_wrap(loop, fds[0], &first_data_protocol, &l->c);
    unsigned char *data = pattern_new(10100);
    CHECK(send(fds[1], data, 100, 0) == 100);
    RUN_UNTIL(loop, l->c.rx.len == 100, 10);
    run_briefly(loop, 2); /* the next receive is on its way */
    CHECK(send(fds[1], data + 100, 10000, 0) == 10000);
    RUN_UNTIL(loop, l->got.len + l->c.rx.len == 10100, 10);
    CHECK_EQ_INT(l->got.len, sizeof l->buf);
    CHECK(pattern_check(l->c.rx.p, 0, 100));
    CHECK(pattern_check(l->got.p, 100, l->got.len));
    CHECK(pattern_check(l->c.rx.p + 100, 100 + l->got.len, l->c.rx.len - 100));
    bytes_free(&l->got);
    free(data);
    close(fds[1]);
}

/* Bytes and the EOF behind them, both there before the loop looks: the
 * EOF comes after the callbacks the bytes' data_received scheduled, as
 * asyncio's next read finds it (an HTTP server's request handler starts
 * before the connection is lost). */
typedef struct eof_order {
    conn *c;
    bool soon_ran;
    bool soon_before_eof;
} eof_order;

static eof_order order;

static void note_soon(tapio_loop *loop, void *arg)
{
    (void)loop, (void)arg;
    order.soon_ran = true;
}

static void data_then_soon(tapio_transport *t, const void *data, size_t len,
                           void *user)
{
    conn_on_data(t, data, len, user);
    CHECK(tapio_call_soon(tapio_transport_loop(t), note_soon, NULL) != NULL);
}

static bool eof_after_soon(tapio_transport *t, void *user)
{
    order.soon_before_eof = order.soon_ran;
    return conn_on_eof(t, user);
}

static const tapio_protocol eof_order_protocol = {
    .connection_made = conn_on_made,
    .data_received = data_then_soon,
    .eof_received = eof_after_soon,
    .connection_lost = conn_on_lost,
};

TEST(receiving_eof_comes_after_the_callbacks_its_bytes_scheduled)
{
    tapio_loop *loop = test_loop();
    for (int domain = 0; domain < 2; domain++) {
        order = (eof_order){0};
        int fds[2];
        socket_pair(domain ? AF_INET : AF_UNIX, fds);
        CHECK(send(fds[1], "req", 3, 0) == 3);
        CHECK(shutdown(fds[1], SHUT_WR) == 0);
        conn *c = conn_new();
        conn_wrap(loop, fds[0], &eof_order_protocol, c);
        RUN_UNTIL(loop, c->lost, 5);
        CHECK_EQ_INT(c->rx.len, 3);
        CHECK(order.soon_before_eof);
        close(fds[1]);
    }
}
