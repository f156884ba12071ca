/* test_coalesce.c — writes made while callbacks run are sent together per
 * transport at the end of the iteration (one writev), with asyncio's
 * observable contract kept: order, buffer size, flow control, close,
 * write_eof, abort and sendfile after queued writes. */
#include "harness.h"

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
