/*
 * test_flow.c — write flow control: watermarks and pause/resume_writing.
 *
 * The transport writes into one end of a socketpair whose other end nobody
 * reads, so once the kernel buffer is full every byte stays in the
 * transport's buffer and the buffer size is exact.
 */
#include "harness.h"

#include <limits.h>
#include <stdint.h>
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

/* The rule every kind applies, as asyncio's: low = high // 4 (floor, also
 * for negative values, which asyncio's ValueError names), high = 4 * low,
 * saturated where a Python integer would not overflow. */
TEST(write_limits_check_is_asyncios_rule)
{
    ssize_t h = 7, l = 7;
    CHECK_OK(tapio_write_limits_check(false, 0, false, 0, &h, &l));
    CHECK_OK(tapio_write_limits_check(true, 1000, false, 0, &h, &l));
    CHECK_EQ_INT(h, 1000);
    CHECK_EQ_INT(l, 250);
    CHECK_OK(tapio_write_limits_check(false, 0, true, 100, &h, &l));
    CHECK_EQ_INT(h, 400);
    CHECK_EQ_INT(l, 100);
    CHECK_OK(tapio_write_limits_check(true, 0, false, 0, &h, &l));
    CHECK_EQ_INT(h, 0);
    CHECK_EQ_INT(l, 0);
    CHECK_OK(tapio_write_limits_check(true, 3, false, 0, &h, &l));
    CHECK_EQ_INT(l, 0);
    CHECK_ERR(tapio_write_limits_check(true, 1, true, 2, &h, &l), -EINVAL);
    CHECK_EQ_INT(h, 1);
    CHECK_EQ_INT(l, 2);
    CHECK_ERR(tapio_write_limits_check(true, -1, false, 0, &h, &l), -EINVAL);
    CHECK_EQ_INT(h, -1);
    CHECK_EQ_INT(l, -1); /* -1 // 4 */
    CHECK_ERR(tapio_write_limits_check(true, -5, false, 0, &h, &l), -EINVAL);
    CHECK_EQ_INT(l, -2);
    CHECK_ERR(tapio_write_limits_check(false, 0, true, -1, &h, &l), -EINVAL);
    CHECK_EQ_INT(h, -4);
    CHECK_ERR(tapio_write_limits_check(true, 0, true, -1, NULL, NULL), -EINVAL);
    /* 4 * 2**61 does not fit a ssize_t: high saturates, still >= low. */
    CHECK_OK(tapio_write_limits_check(false, 0, true, (ssize_t)1 << 61, &h, &l));
    CHECK(h == SSIZE_MAX);
    CHECK(l == (ssize_t)1 << 61);
    CHECK_OK(tapio_write_limits_check(false, 0, true, SSIZE_MAX, &h, &l));
    CHECK(h == SSIZE_MAX);
    CHECK_ERR(tapio_write_limits_check(false, 0, true, -SSIZE_MAX, &h, &l),
              -EINVAL);
    CHECK(h == -SSIZE_MAX - 1);
    CHECK_OK(tapio_write_limits_check(true, SSIZE_MAX, false, 0, &h, &l));
    CHECK(l == SSIZE_MAX / 4);
}

/* low = 2**61 alone: high is 4 * low, saturated (no signed overflow, which
 * UBSan reports), and nothing pauses. */
TEST(huge_low_water_saturates_high)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, TAPIO_LIMIT_DEFAULT,
                                                     (ssize_t)1 << 61));
    check_limits(c->t, (size_t)1 << 61, (size_t)1 << 63); /* asyncio's */
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, TAPIO_LIMIT_DEFAULT,
                                                     SSIZE_MAX));
    check_limits(c->t, SSIZE_MAX, SIZE_MAX);
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, SSIZE_MAX,
                                                     TAPIO_LIMIT_DEFAULT));
    check_limits(c->t, SSIZE_MAX / 4, SSIZE_MAX);
    CHECK_OK(tapio_transport_write(c->t, "x", 1));
    run_briefly(loop, 2);
    CHECK_EQ_INT(c->pauses, 0);
    /* Not given again: the kind's default. */
    CHECK_OK(tapio_transport_set_write_buffer_limits(c->t, TAPIO_LIMIT_DEFAULT,
                                                     TAPIO_LIMIT_DEFAULT));
    check_limits(c->t, TAPIO_DEFAULT_HIGH_WATER / 4, TAPIO_DEFAULT_HIGH_WATER);
    close(peer);
}
