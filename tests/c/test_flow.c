/*
 * test_flow.c — write flow control: watermarks and pause/resume_writing.
 *
 * The transport writes into one end of a socketpair whose other end nobody
 * reads, so once the kernel buffer is full every byte stays in the
 * transport's buffer and the buffer size is exact.
 */
#include "harness.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FILL_BYTES (4 * 1024 * 1024)
#define NO_PAUSE_HIGH ((ssize_t)64 * 1024 * 1024)

/* Queue more than the kernel takes; returns the (stable) buffered size. */
static size_t fill_buffer(tapio_loop *loop, conn *c)
{
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, NO_PAUSE_HIGH, -1));
    unsigned char *data = pattern_new(FILL_BYTES);
    CHECK_OK(tapio_transport_write(c->t, data, FILL_BYTES));
    free(data);
    run_briefly(loop, 3);
    size_t queued = tapio_transport_get_write_buffer_size(c->t);
    CHECK(queued > 0 && queued < FILL_BYTES);
    run_briefly(loop, 3);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), queued);
    CHECK_EQ_INT(c->pauses, 0);
    return queued;
}

static void check_limits(const tapio_transport *t, size_t want_low,
                         size_t want_high)
{
    size_t low = 1, high = 1;
    tapio_transport_get_write_buffer_limits(t, &low, &high);
    CHECK_EQ_INT(low, want_low);
    CHECK_EQ_INT(high, want_high);
}

TEST(default_write_buffer_limits)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    CHECK_EQ_INT(TAPIO_DEFAULT_HIGH_WATER, 64 * 1024);
    check_limits(c->t, 16 * 1024, 64 * 1024);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    close(peer);
}

/* asyncio's rules: high defaults to 64 KiB or 4 * low, low to high / 4. */
TEST(set_write_buffer_limits_fills_in_defaults)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    tapio_transport *t = c->t;

    CHECK_OK(tapio_transport_set_write_buffer_limits(t, 1000, -1));
    check_limits(t, 250, 1000);
    CHECK_OK(tapio_transport_set_write_buffer_limits(t, -1, 100));
    check_limits(t, 100, 400);
    CHECK_OK(tapio_transport_set_write_buffer_limits(t, 100, 100));
    check_limits(t, 100, 100);
    CHECK_OK(tapio_transport_set_write_buffer_limits(t, -1, -1));
    check_limits(t, 16 * 1024, 64 * 1024);
    CHECK_OK(tapio_transport_set_write_buffer_limits(t, 0, -1));
    check_limits(t, 0, 0);

    /* Invalid: low > high. The limits stay as they were. */
    CHECK_ERR(tapio_transport_set_write_buffer_limits(t, 10, 20), -EINVAL);
    CHECK_ERR(tapio_transport_set_write_buffer_limits(t, 0, 5), -EINVAL);
    check_limits(t, 0, 0);
    CHECK_EQ_INT(c->pauses, 0); /* nothing buffered: nothing to pause */
    close(peer);
}

TEST(pause_writing_only_when_strictly_over_high)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    size_t queued = fill_buffer(loop, c);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, (ssize_t)queued + 10, -1));
    CHECK_EQ_INT(c->pauses, 0);

    char ten[10] = "0123456789";
    CHECK_OK(tapio_transport_write(c->t, ten, sizeof ten));
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), queued + 10);
    CHECK_EQ_INT(c->pauses, 0); /* exactly at high: no pause */

    CHECK_OK(tapio_transport_write(c->t, "x", 1));
    CHECK_EQ_INT(c->pauses, 1); /* one over: paused inside write() */

    CHECK_OK(tapio_transport_write(c->t, "y", 1));
    run_briefly(loop, 3);
    CHECK_EQ_INT(c->pauses, 1); /* once until resumed */
    CHECK_EQ_INT(c->resumes, 0);
    close(peer);
}

TEST(set_write_buffer_limits_can_pause)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    size_t queued = fill_buffer(loop, c);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, (ssize_t)queued, -1));
    CHECK_EQ_INT(c->pauses, 0);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, (ssize_t)queued - 1, -1));
    CHECK_EQ_INT(c->pauses, 1);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, (ssize_t)queued / 2, -1));
    CHECK_EQ_INT(c->pauses, 1);
    close(peer);
}

/* Drain the peer; resume_writing must come once the buffer is <= low. */
static void drain_and_check_resume(tapio_loop *loop, conn *c, int peer,
                                   size_t low)
{
    CHECK_EQ_INT(c->pauses, 1);
    CHECK_EQ_INT(c->resumes, 0);
    sink s;
    sink_start(loop, &s, peer);
    RUN_UNTIL(loop, c->resumes == 1, 10);
    CHECK(c->size_at_resume <= low);
    RUN_UNTIL(loop, s.total == FILL_BYTES, 10);
    CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c->t), 0);
    CHECK_EQ_INT(c->pauses, 1);
    CHECK_EQ_INT(c->resumes, 1);
    sink_stop(&s);
}

TEST(resume_writing_at_or_below_low)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    size_t queued = fill_buffer(loop, c);
    size_t low = queued / 4;
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, (ssize_t)queued / 2,
                                                     (ssize_t)low));
    drain_and_check_resume(loop, c, peer, low);
    close(peer);
}

/* high = 0 forces low = 0: paused while anything is buffered. */
TEST(zero_high_water_pauses_until_empty)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    fill_buffer(loop, c);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, 0, -1));
    drain_and_check_resume(loop, c, peer, 0);
    CHECK_EQ_INT(c->size_at_resume, 0);
    close(peer);
}
