/* test_coalesce.c — writes made while callbacks run are sent together per
 * transport at the end of the iteration (one writev), with asyncio's
 * observable contract kept: order, buffer size, flow control, close,
 * write_eof, abort and sendfile after queued writes. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t recv_now(int fd, char *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

typedef void (*step_fn)(conn *c, void *arg);

struct in_callback {
    conn *c;
    step_fn step;
    void *arg;
    bool ran;
};

static void run_step(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct in_callback *cb = arg;
    cb->step(cb->c, cb->arg);
    cb->ran = true;
}

/* Run `step` as a loop callback (where writes are coalesced) and let the
 * iteration end. */
static void in_a_callback(tapio_loop *loop, conn *c, step_fn step, void *arg)
{
    struct in_callback cb = {c, step, arg, false};
    CHECK(tapio_call_soon(loop, run_step, &cb) != NULL);
    RUN_UNTIL(loop, cb.ran, 5);
}

struct write_two {
    int peer;
    size_t size_after;
};

static void write_two(conn *c, void *arg)
{
    struct write_two *w = arg;
    char buf[8];
    CHECK_OK(tapio_transport_write(c->t, "ab", 2));
    /* Held back until the callbacks are done... */
    CHECK(recv_now(w->peer, buf, sizeof buf) < 0 && errno == EAGAIN);
    CHECK_OK(tapio_transport_write(c->t, "cd", 2));
    w->size_after = tapio_transport_get_write_buffer_size(c->t);
}

TEST(writes_in_one_iteration_are_sent_together_at_its_end)
{
    tapio_loop *loop = test_loop();
    struct write_two w = {0};
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &w.peer);
    set_nonblocking(w.peer);
    in_a_callback(loop, c, write_two, &w);
    CHECK_EQ_INT(w.size_after, 4); /* queued bytes are counted */
    /* ...and sent in the same iteration. */
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    char buf[16];
    CHECK_EQ_INT(recv_now(w.peer, buf, sizeof buf), 4);
    CHECK_MEM_EQ(buf, "abcd", 4);
    close(w.peer);
}

/* Outside callbacks (before the loop runs, say) a write goes out at once. */
TEST(a_write_outside_callbacks_is_sent_at_once)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    set_nonblocking(peer);
    CHECK_OK(tapio_transport_write(c->t, "now", 3));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    char buf[8];
    CHECK_EQ_INT(recv_now(peer, buf, sizeof buf), 3);
    close(peer);
}

struct over_high {
    size_t size_after;
};

static void write_past_high(conn *c, void *arg)
{
    struct over_high *o = arg;
    char data[600];
    memset(data, 'x', sizeof data);
    CHECK_OK(tapio_transport_write(c->t, data, sizeof data));
    CHECK_OK(tapio_transport_write(c->t, data, sizeof data));
    o->size_after = tapio_transport_get_write_buffer_size(c->t);
}

/* Holding writes back must not pause a protocol that direct sends would
 * not have paused: past the high-water mark the queue is sent early. */
TEST(coalesced_writes_past_high_are_sent_early_not_paused)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    set_nonblocking(peer);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, 1000, 0));
    struct over_high o = {99};
    in_a_callback(loop, c, write_past_high, &o);
    CHECK_EQ_INT(o.size_after, 0); /* the second write sent both */
    CHECK_EQ_INT(c->pauses, 0);
    char buf[2000];
    CHECK_EQ_INT(recv_now(peer, buf, sizeof buf), 1200);
    close(peer);
}

static void write_then(conn *c, void *arg)
{
    const char *then = arg;
    CHECK_OK(tapio_transport_write(c->t, "data", 4));
    if (strcmp(then, "close") == 0)
        tapio_transport_close(c->t);
    else if (strcmp(then, "write_eof") == 0)
        CHECK_OK(tapio_transport_write_eof(c->t));
    else
        tapio_transport_abort(c->t);
}

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0)
            return n;
        n += (size_t)r;
    }
}

/* close and write_eof send what was queued first; so does abort, as
 * asyncio, whose write() has sent the bytes by then, aborts after them. */
TEST(close_write_eof_and_abort_send_queued_writes_first)
{
    tapio_loop *loop = test_loop();
    static const char *const thens[] = {"close", "write_eof", "abort"};
    for (int i = 0; i < 3; i++) {
        int peer;
        conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
        in_a_callback(loop, c, write_then, (void *)thens[i]);
        if (i != 1)
            RUN_UNTIL(loop, c->lost == 1, 5);
        char buf[16];
        size_t n = read_all(peer, buf, sizeof buf); /* to EOF */
        CHECK_EQ_INT(n, 4);
        CHECK_MEM_EQ(buf, "data", 4);
        CHECK_OK(c->lost_err);
        if (i == 1)
            tapio_transport_close(c->t);
        close(peer);
    }
}

struct head_and_file {
    int file;
    bool done;
};

static void sendfile_done(tapio_transport *t, size_t sent, int err, void *arg)
{
    (void)t;
    CHECK_OK(err);
    CHECK_EQ_INT(sent, 4);
    ((struct head_and_file *)arg)->done = true;
}

static void write_then_sendfile(conn *c, void *arg)
{
    struct head_and_file *h = arg;
    CHECK_OK(tapio_transport_write(c->t, "head", 4));
    CHECK_OK(tapio_transport_sendfile(c->t, h->file, 0, 4, sendfile_done, h));
}

/* A sendfile waits for the writes queued before it. */
TEST(sendfile_follows_queued_writes)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    char path[] = "/tmp/tapio-coalesce-XXXXXX";
    struct head_and_file h = {mkstemp(path), false};
    CHECK(h.file >= 0);
    unlink(path);
    CHECK(write(h.file, "body", 4) == 4);
    in_a_callback(loop, c, write_then_sendfile, &h);
    RUN_UNTIL(loop, h.done, 5);
    char buf[16];
    tapio_transport_close(c->t);
    RUN_UNTIL(loop, c->lost == 1, 5);
    CHECK_EQ_INT(read_all(peer, buf, sizeof buf), 8);
    CHECK_MEM_EQ(buf, "headbody", 8);
    close(h.file);
    close(peer);
}

/* The iteration's writes leave when the socket is full: on io_uring a send
 * request then waits for room in the kernel, with the bytes still counted
 * as buffered. Fill the transport's socket behind its back, so that the
 * coalesced write that follows cannot go. */
static size_t fill_socket(tapio_transport *t)
{
    int fd = tapio_transport_fd(t);
    int small = 16 * 1024;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    static char junk[4096];
    size_t filled = 0;
    ssize_t n;
    while ((n = send(fd, junk, sizeof junk, MSG_DONTWAIT)) > 0)
        filled += (size_t)n;
    CHECK(n < 0 && errno == EAGAIN);
    return filled;
}

static void write_tail(conn *c, void *arg)
{
    (void)arg;
    CHECK_OK(tapio_transport_write(c->t, "tail", 4));
}

/* Drain the peer: the filler, then what follows it. */
static size_t drain_peer(tapio_loop *loop, int peer, size_t filler,
                         char *tail, size_t tail_cap, bool *eof)
{
    static char buf[4096];
    size_t got = 0, tail_len = 0;
    *eof = false;
    for (int i = 0; i < 20000 && !*eof; i++) {
        ssize_t n = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) {
            *eof = true;
        } else if (n > 0) {
            for (ssize_t k = 0; k < n; k++, got++)
                if (got >= filler && tail_len < tail_cap)
                    tail[tail_len++] = buf[k];
        } else {
            CHECK(errno == EAGAIN);
            if (tail_len == tail_cap)
                break;
            run_briefly(loop, 1);
        }
    }
    CHECK_EQ_INT(got - tail_len, filler);
    return tail_len;
}

/* A connection whose coalesced "tail" waits for room behind `*filler`
 * bytes the peer has not read. */
static conn *write_waiting_for_room(tapio_loop *loop, int *peer,
                                    size_t *filler)
{
    conn *c = conn_with_raw_peer(loop, AF_UNIX, peer);
    set_nonblocking(*peer);
    *filler = fill_socket(c->t);
    in_a_callback(loop, c, write_tail, NULL);
    run_briefly(loop, 3);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 4);
    return c;
}

TEST(coalesced_write_waiting_for_room_is_sent_when_there_is)
{
    tapio_loop *loop = test_loop();
    int peer;
    size_t filler;
    conn *c = write_waiting_for_room(loop, &peer, &filler);
    char tail[4];
    bool eof;
    CHECK_EQ_INT(drain_peer(loop, peer, filler, tail, 4, &eof), 4);
    CHECK_MEM_EQ(tail, "tail", 4);
    RUN_UNTIL(loop, tapio_transport_get_write_buffer_size(c->t) == 0, 5);
    close(peer);
}

/* abort and close while that write waits: abort drops it and the peer sees
 * the end at once; close sends it first. Nothing is left behind either
 * way (the harness counts fds, the sanitizers memory). */
TEST(abort_and_close_while_a_coalesced_write_waits_for_room)
{
    tapio_loop *loop = test_loop();
    for (int abort = 0; abort <= 1; abort++) {
        int peer;
        size_t filler;
        conn *c = write_waiting_for_room(loop, &peer, &filler);
        if (abort)
            tapio_transport_abort(c->t);
        else
            tapio_transport_close(c->t);
        RUN_UNTIL(loop, abort ? c->lost == 1 : true, 5);
        char tail[4];
        bool eof;
        size_t n = drain_peer(loop, peer, filler, tail, sizeof tail, &eof);
        if (abort) {
            CHECK_EQ_INT(n, 0);
        } else {
            CHECK_EQ_INT(n, 4);
            CHECK_MEM_EQ(tail, "tail", 4);
            RUN_UNTIL(loop, c->lost == 1, 5);
            n = drain_peer(loop, peer, 0, tail, sizeof tail, &eof);
            CHECK_EQ_INT(n, 0);
        }
        CHECK(eof);
        CHECK_OK(c->lost_err);
        close(peer);
    }
}

/* The loop closed while that write waits: nothing leaks. */
TEST(loop_closed_while_a_coalesced_write_waits_for_room)
{
    tapio_loop *loop = test_loop();
    int peer;
    size_t filler;
    write_waiting_for_room(loop, &peer, &filler);
    test_loop_close();
    close(peer);
}

/* The iteration's writes when the socket has room for part of them: the
 * rest goes once there is more, in order. */
enum { PART_WRITES = 3, PART_WRITE = 16 * 1024 };

static void write_parts(conn *c, void *arg)
{
    const unsigned char *data = arg;
    for (int i = 0; i < PART_WRITES; i++)
        CHECK_OK(tapio_transport_write(c->t, data + i * PART_WRITE,
                                       PART_WRITE));
}

TEST(coalesced_write_partly_sent_sends_the_rest_when_there_is_room)
{
    enum { TOTAL = PART_WRITES * PART_WRITE };
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    set_nonblocking(peer);
    size_t filler = fill_socket(c->t);
    static char room[4096];
    CHECK(recv(peer, room, sizeof room, 0) == (ssize_t)sizeof room);
    unsigned char *data = pattern_new(TOTAL);
    in_a_callback(loop, c, write_parts, data);
    run_briefly(loop, 3);
    size_t left = tapio_transport_get_write_buffer_size(c->t);
    CHECK(left > 0 && left < TOTAL); /* part of it went */
    static char tail[TOTAL];
    bool eof;
    CHECK_EQ_INT(drain_peer(loop, peer, filler - sizeof room, tail,
                            sizeof tail, &eof),
                 sizeof tail);
    CHECK(pattern_check(tail, 0, sizeof tail));
    RUN_UNTIL(loop, tapio_transport_get_write_buffer_size(c->t) == 0, 5);
    free(data);
    close(peer);
}
