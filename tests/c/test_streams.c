/* test_streams.c — StreamReader/StreamWriter (tapio_stream) over sockets,
 * TLS and pipes. */
#include "harness.h"
#include "tls_certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

/* One read request's result. */
typedef struct rd {
    int calls;
    int err;
    size_t len;
    bytes data; /* the bytes (not for TAPIO_ELIMIT, whose len is a count) */
} rd;

static void on_read(tapio_stream *s, const void *data, size_t len, int err,
                    void *arg)
{
    (void)s;
    rd *r = arg;
    r->calls++;
    r->err = err;
    r->len = len;
    r->data.len = 0;
    if (err != TAPIO_ELIMIT && len)
        bytes_append(&r->data, data, len);
}

static void rd_reset(rd *r)
{
    bytes_free(&r->data);
    memset(r, 0, sizeof *r);
}

/* The result is err with exactly the bytes `want`. */
static void check_rd(rd *r, int err, const char *want)
{
    CHECK_EQ_INT(r->calls, 1);
    CHECK_EQ_INT(r->err, err);
    CHECK_EQ_INT(r->len, strlen(want));
    CHECK(r->data.len == 0 || memcmp(r->data.p, want, r->data.len) == 0);
    rd_reset(r);
}

typedef struct done {
    int calls;
    int err;
    tapio_stream *s;
} done;

static void on_done(tapio_stream *s, int err, void *arg)
{
    done *d = arg;
    d->calls++;
    d->err = err;
    d->s = s;
}

/* A stream on one end of a socket pair; the raw other end in *peer. */
static tapio_stream *stream_with_peer(tapio_loop *loop, int domain,
                                      size_t limit, int *peer)
{
    int fds[2];
    socket_pair(domain, fds);
    tapio_stream *s;
    CHECK_OK(tapio_stream_from_fd(loop, fds[0], limit, &s));
    *peer = fds[1];
    return s;
}

static void send_str(int fd, const char *str)
{
    CHECK(send(fd, str, strlen(str), MSG_NOSIGNAL) == (ssize_t)strlen(str));
}

/* Free the stream and wait until its connection is gone (nothing leaks). */
static void stream_done(tapio_loop *loop, tapio_stream *s)
{
    done d = {0};
    CHECK_OK(tapio_stream_wait_closed(s, on_done, &d));
    tapio_stream_close(s);
    RUN_UNTIL(loop, d.calls == 1, 10);
    tapio_stream_free(s);
}

/* Run one request to its end. */
#define READ_RUN(loop, call, r) \
    do {                                                                  \
        CHECK_OK(call);                                                   \
        RUN_UNTIL((loop), (r)->calls > 0, 10);                            \
    } while (0)

/* -------------------------------------------------------------- read(n) */

TEST(streams_read_takes_what_is_buffered)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    send_str(peer, "hello world");
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 11, 10);
    READ_RUN(loop, tapio_stream_read(s, 5, on_read, &r), &r);
    check_rd(&r, 0, "hello");
    READ_RUN(loop, tapio_stream_read(s, 100, on_read, &r), &r);
    check_rd(&r, 0, " world");
    /* read(0) gives nothing, at once. */
    READ_RUN(loop, tapio_stream_read(s, 0, on_read, &r), &r);
    check_rd(&r, 0, "");
    close(peer);
    READ_RUN(loop, tapio_stream_read(s, 100, on_read, &r), &r);
    check_rd(&r, 0, ""); /* EOF */
    CHECK(tapio_stream_at_eof(s));
    stream_done(loop, s);
}

TEST(streams_read_never_completes_inside_the_call)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    send_str(peer, "abc");
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 3, 10);
    CHECK_OK(tapio_stream_read(s, 10, on_read, &r));
    CHECK_EQ_INT(r.calls, 0);
    CHECK_OK(tapio_loop_run_once(loop));
    check_rd(&r, 0, "abc");
    close(peer);
    stream_done(loop, s);
}

TEST(streams_second_concurrent_read_is_refused)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0}, r2 = {0};
    CHECK_OK(tapio_stream_readline(s, on_read, &r));
    CHECK_ERR(tapio_stream_readline(s, on_read, &r2), -EBUSY);
    CHECK_ERR(tapio_stream_read(s, 1, on_read, &r2), -EBUSY);
    CHECK_ERR(tapio_stream_readexactly(s, 1, on_read, &r2), -EBUSY);
    CHECK_ERR(tapio_stream_readuntil(s, "x", 1, on_read, &r2), -EBUSY);
    run_for(loop, 0.02);
    CHECK_EQ_INT(r.calls, 0);
    send_str(peer, "line\n");
    RUN_UNTIL(loop, r.calls, 10);
    check_rd(&r, 0, "line\n");
    CHECK_EQ_INT(r2.calls, 0);
    close(peer);
    stream_done(loop, s);
}

/* read(-1) reads to EOF, past the limit, and delivers everything at once. */
TEST(streams_read_all_to_eof)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_INET, 1024, &peer);
    const size_t n = 1024 * 1024;
    unsigned char *data = pattern_new(n);
    rd r = {0};
    CHECK_OK(tapio_stream_read(s, -1, on_read, &r));
    send_all(loop, peer, data, n);
    CHECK_EQ_INT(r.calls, 0);
    shutdown(peer, SHUT_WR);
    RUN_UNTIL(loop, r.calls, 10);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.len, n);
    CHECK(pattern_check(r.data.p, 0, n));
    rd_reset(&r);
    free(data);
    close(peer);
    stream_done(loop, s);
}

/* ------------------------------------------------------------- readline */

TEST(streams_readline_separator_split_across_reads)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_INET, 0, &peer);
    rd r = {0};
    CHECK_OK(tapio_stream_readline(s, on_read, &r));
    send_str(peer, "ab");
    run_for(loop, 0.02);
    CHECK_EQ_INT(r.calls, 0);
    send_str(peer, "c");
    run_for(loop, 0.02);
    CHECK_EQ_INT(r.calls, 0);
    send_str(peer, "\nde");
    RUN_UNTIL(loop, r.calls, 10);
    check_rd(&r, 0, "abc\n");
    /* EOF in the middle of a line: readline gives the partial line. */
    shutdown(peer, SHUT_WR);
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "de");
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "");
    CHECK(tapio_stream_at_eof(s));
    close(peer);
    stream_done(loop, s);
}

TEST(streams_readline_several_lines_in_one_read)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    send_str(peer, "one\ntwo\nthree\n");
    const char *want[] = {"one\n", "two\n", "three\n"};
    for (int i = 0; i < 3; i++) {
        READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
        check_rd(&r, 0, want[i]);
    }
    CHECK_EQ_INT(tapio_stream_buffered(s), 0);
    close(peer);
    stream_done(loop, s);
}

/* The separator found past the limit: readline drops the line, separator
 * included, and reports the overrun (asyncio's ValueError). */
TEST(streams_readline_over_the_limit)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 4, &peer);
    rd r = {0};
    send_str(peer, "abcdefg\nxy\n");
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 11, 10);
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    CHECK_EQ_INT(r.err, TAPIO_ELIMIT);
    rd_reset(&r);
    CHECK_EQ_INT(tapio_stream_buffered(s), 3);
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "xy\n");
    /* No separator and over the limit: the whole buffer goes. */
    send_str(peer, "0123456789");
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 10, 10);
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    CHECK_EQ_INT(r.err, TAPIO_ELIMIT);
    rd_reset(&r);
    CHECK_EQ_INT(tapio_stream_buffered(s), 0);
    close(peer);
    stream_done(loop, s);
}

/* ------------------------------------------------------------ readuntil */

/* A separator that starts exactly at the limit is accepted; one byte
 * further is an overrun that consumes nothing, with its count. */
TEST(streams_readuntil_separator_at_the_limit)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 8, &peer);
    rd r = {0};
    send_str(peer, "12345678|");
    READ_RUN(loop, tapio_stream_readuntil(s, "|", 1, on_read, &r), &r);
    check_rd(&r, 0, "12345678|");
    send_str(peer, "123456789|");
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 10, 10);
    READ_RUN(loop, tapio_stream_readuntil(s, "|", 1, on_read, &r), &r);
    CHECK_EQ_INT(r.err, TAPIO_ELIMIT);
    CHECK_EQ_INT(r.len, 9);
    rd_reset(&r);
    CHECK_EQ_INT(tapio_stream_buffered(s), 10);
    READ_RUN(loop, tapio_stream_readexactly(s, 10, on_read, &r), &r);
    check_rd(&r, 0, "123456789|");
    close(peer);
    stream_done(loop, s);
}

/* No separator and more than the limit searched: an overrun whose count
 * is where the search got to (buffer + 1 - separator length). */
TEST(streams_readuntil_not_found_over_the_limit)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 4, &peer);
    rd r = {0};
    CHECK_OK(tapio_stream_readuntil(s, "--", 2, on_read, &r));
    send_str(peer, "abcdefgh");
    RUN_UNTIL(loop, r.calls, 10);
    CHECK_EQ_INT(r.err, TAPIO_ELIMIT);
    CHECK_EQ_INT(r.len, 7);
    rd_reset(&r);
    CHECK_EQ_INT(tapio_stream_buffered(s), 8);
    close(peer);
    stream_done(loop, s);
}

TEST(streams_readuntil_several_separators)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    struct iovec seps[] = {{"cd", 2}, {"bc", 2}, {"\r\n", 2}};
    /* The shortest chunk ending with any separator: "abc", not "abcd". */
    send_str(peer, "abcd\r\n");
    READ_RUN(loop, tapio_stream_readuntil_any(s, seps, 3, on_read, &r), &r);
    check_rd(&r, 0, "abc");
    READ_RUN(loop, tapio_stream_readuntil_any(s, seps, 3, on_read, &r), &r);
    check_rd(&r, 0, "d\r\n");
    /* Bad arguments fail the call. */
    struct iovec empty[] = {{"x", 1}, {"", 0}};
    CHECK_ERR(tapio_stream_readuntil_any(s, empty, 2, on_read, &r), -EINVAL);
    CHECK_ERR(tapio_stream_readuntil_any(s, seps, 0, on_read, &r), -EINVAL);
    CHECK_ERR(tapio_stream_readuntil(s, "", 0, on_read, &r), -EINVAL);
    /* A separator split across reads, as a tuple member. */
    CHECK_OK(tapio_stream_readuntil_any(s, seps, 3, on_read, &r));
    send_str(peer, "zz\r");
    run_for(loop, 0.02);
    CHECK_EQ_INT(r.calls, 0);
    send_str(peer, "\n");
    RUN_UNTIL(loop, r.calls, 10);
    check_rd(&r, 0, "zz\r\n");
    close(peer);
    stream_done(loop, s);
}

TEST(streams_readuntil_eof_mid_line_is_incomplete)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    send_str(peer, "abc");
    shutdown(peer, SHUT_WR);
    READ_RUN(loop, tapio_stream_readuntil(s, "\n", 1, on_read, &r), &r);
    check_rd(&r, TAPIO_EINCOMPLETE, "abc");
    CHECK(tapio_stream_at_eof(s));
    close(peer);
    stream_done(loop, s);
}

/* ---------------------------------------------------------- readexactly */

TEST(streams_readexactly_edges)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    READ_RUN(loop, tapio_stream_readexactly(s, 0, on_read, &r), &r);
    check_rd(&r, 0, "");
    CHECK_OK(tapio_stream_readexactly(s, 6, on_read, &r));
    send_str(peer, "abc");
    run_for(loop, 0.02);
    CHECK_EQ_INT(r.calls, 0);
    send_str(peer, "defgh");
    RUN_UNTIL(loop, r.calls, 10);
    check_rd(&r, 0, "abcdef");
    shutdown(peer, SHUT_WR);
    READ_RUN(loop, tapio_stream_readexactly(s, 5, on_read, &r), &r);
    check_rd(&r, TAPIO_EINCOMPLETE, "gh");
    READ_RUN(loop, tapio_stream_readexactly(s, 0, on_read, &r), &r);
    check_rd(&r, 0, "");
    close(peer);
    stream_done(loop, s);
}

/* A readexactly larger than twice the limit keeps reading. */
TEST(streams_readexactly_past_the_limit)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_INET, 1000, &peer);
    const size_t n = 256 * 1024;
    unsigned char *data = pattern_new(n);
    rd r = {0};
    CHECK_OK(tapio_stream_readexactly(s, n, on_read, &r));
    send_all(loop, peer, data, n);
    RUN_UNTIL(loop, r.calls, 10);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.len, n);
    CHECK(pattern_check(r.data.p, 0, n));
    rd_reset(&r);
    free(data);
    close(peer);
    stream_done(loop, s);
}

/* ------------------------------------------------------------- errors */

/* The connection's error is the reader's exception: reported before the
 * bytes still buffered, as asyncio raises it. */
TEST(streams_connection_error_reaches_reads_and_drain)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_INET, 0, &peer);
    send_str(peer, "abc");
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 3, 10);
    struct linger lg = {1, 0};
    CHECK(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(peer); /* RST */
    CHECK_OK(tapio_stream_write(s, "x", 1)); /* notices the reset */
    RUN_UNTIL(loop, tapio_stream_exception(s) != 0, 10);
    CHECK_ERR(tapio_stream_exception(s), -ECONNRESET);
    CHECK(!tapio_stream_at_eof(s)); /* an exception is not EOF */
    rd r = {0};
    READ_RUN(loop, tapio_stream_read(s, 10, on_read, &r), &r);
    check_rd(&r, -ECONNRESET, "");
    done d = {0};
    CHECK_OK(tapio_stream_drain(s, on_done, &d));
    RUN_UNTIL(loop, d.calls, 10);
    CHECK_ERR(d.err, -ECONNRESET);
    CHECK(tapio_stream_is_closing(s));
    stream_done(loop, s);
}

/* ------------------------------------------------- writer: drain, close */

TEST(streams_drain_at_once_when_not_paused)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    done d = {0};
    CHECK_OK(tapio_stream_write(s, "abc", 3));
    CHECK_OK(tapio_stream_drain(s, on_done, &d));
    CHECK_EQ_INT(d.calls, 0); /* never inside the call */
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK_EQ_INT(d.calls, 1);
    CHECK_EQ_INT(d.err, 0);
    char buf[3];
    recv_exactly(loop, peer, buf, 3);
    CHECK_MEM_EQ(buf, "abc", 3);
    close(peer);
    stream_done(loop, s);
}

TEST(streams_drain_after_close_reports_connection_lost)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    done closed = {0}, d = {0};
    CHECK_OK(tapio_stream_wait_closed(s, on_done, &closed));
    run_for(loop, 0.02);
    CHECK_EQ_INT(closed.calls, 0);
    CHECK(!tapio_stream_is_closing(s));
    tapio_stream_close(s);
    CHECK(tapio_stream_is_closing(s));
    RUN_UNTIL(loop, closed.calls, 10);
    CHECK_EQ_INT(closed.err, 0);
    CHECK_OK(tapio_stream_drain(s, on_done, &d));
    RUN_UNTIL(loop, d.calls, 10);
    CHECK_ERR(d.err, -ECONNRESET);
    /* wait_closed after the fact completes at once. */
    closed.calls = 0;
    CHECK_OK(tapio_stream_wait_closed(s, on_done, &closed));
    RUN_UNTIL(loop, closed.calls, 10);
    tapio_stream_free(s);
    close(peer);
}

TEST(streams_write_eof_and_writelines)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    CHECK(tapio_stream_can_write_eof(s));
    struct iovec iov[] = {{"ab", 2}, {"cd", 2}, {"\n", 1}};
    CHECK_OK(tapio_stream_writelines(s, iov, 3));
    CHECK_OK(tapio_stream_write_eof(s));
    char buf[5];
    recv_exactly(loop, peer, buf, 5);
    CHECK_MEM_EQ(buf, "abcd\n", 5);
    expect_eof(loop, peer);
    /* The write side is shut; the read side still works. */
    rd r = {0};
    send_str(peer, "back\n");
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "back\n");
    close(peer);
    stream_done(loop, s);
}

/* ------------------------------------------------------ back-pressure */

/* Nobody reads: the stream pauses its transport above 2 * limit; reading
 * the buffer down to the limit resumes it. */
TEST(streams_limit_pauses_and_resumes_reading)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 1000, &peer);
    char data[1500];
    memset(data, 'x', sizeof data);
    CHECK(send(peer, data, 1500, 0) == 1500);
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 1500, 10);
    CHECK(tapio_transport_is_reading(tapio_stream_transport(s)));
    CHECK(send(peer, data, 1500, 0) == 1500);
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 3000, 10);
    CHECK(!tapio_transport_is_reading(tapio_stream_transport(s)));
    CHECK(send(peer, data, 1500, 0) == 1500);
    run_for(loop, 0.05);
    CHECK_EQ_INT(tapio_stream_buffered(s), 3000);
    rd r = {0};
    READ_RUN(loop, tapio_stream_read(s, 1999, on_read, &r), &r);
    CHECK_EQ_INT(r.len, 1999);
    rd_reset(&r);
    CHECK(!tapio_transport_is_reading(tapio_stream_transport(s)));
    READ_RUN(loop, tapio_stream_read(s, 1, on_read, &r), &r);
    rd_reset(&r);
    CHECK(tapio_transport_is_reading(tapio_stream_transport(s)));
    RUN_UNTIL(loop, tapio_stream_buffered(s) == 2500, 10);
    close(peer);
    stream_done(loop, s);
}

/* A stream that does not read pauses its peer: the writer's drain waits
 * until the reader takes the bytes. */
TEST(streams_slow_reader_pauses_the_writer)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_INET, fds);
    tapio_stream *a, *b;
    CHECK_OK(tapio_stream_from_fd(loop, fds[0], 0, &a));
    CHECK_OK(tapio_stream_from_fd(loop, fds[1], 0, &b));
    const size_t n = 8 * 1024 * 1024;
    unsigned char *data = pattern_new(n);
    run_briefly(loop, 2);
    CHECK_OK(tapio_stream_write(a, data, n));
    done d = {0};
    CHECK_OK(tapio_stream_drain(a, on_done, &d));
    run_for(loop, 0.1);
    CHECK_EQ_INT(d.calls, 0);
    CHECK(!tapio_transport_is_reading(tapio_stream_transport(b)));
    CHECK(tapio_transport_get_write_buffer_size(tapio_stream_transport(a)) >
          TAPIO_DEFAULT_HIGH_WATER);
    rd r = {0};
    CHECK_OK(tapio_stream_readexactly(b, n, on_read, &r));
    RUN_UNTIL(loop, r.calls && d.calls, 20);
    CHECK_EQ_INT(d.err, 0);
    CHECK_EQ_INT(r.len, n);
    CHECK(pattern_check(r.data.p, 0, n));
    rd_reset(&r);
    free(data);
    stream_done(loop, a);
    stream_done(loop, b);
}

/* ----------------------------------------------------------- lifetime */

/* Freed with a read and a drain pending: neither callback runs. */
TEST(streams_free_drops_pending_callbacks)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    done d = {0};
    CHECK_OK(tapio_stream_readline(s, on_read, &r));
    CHECK_OK(tapio_stream_drain(s, on_done, &d));
    tapio_stream_free(s);
    expect_eof(loop, peer);
    run_for(loop, 0.02);
    CHECK_EQ_INT(r.calls, 0);
    CHECK_EQ_INT(d.calls, 0);
    close(peer);
}

/* ---------------------------------------------------------------- pipes */

TEST(streams_over_a_pipe)
{
    tapio_loop *loop = test_loop();
    int p[2];
    CHECK(pipe(p) == 0);
    tapio_stream *s;
    CHECK_OK(tapio_stream_new(loop, 0, &s));
    CHECK_OK(tapio_pipe_read(loop, p[0], tapio_stream_protocol(), s, NULL));
    CHECK(write(p[1], "first\nsecond\nthi", 16) == 16);
    close(p[1]);
    rd r = {0};
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "first\n");
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "second\n");
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "thi");
    CHECK(tapio_stream_at_eof(s));
    CHECK_ERR(tapio_stream_write(s, "x", 1), -ENOTSUP);
    done d = {0};
    CHECK_OK(tapio_stream_wait_closed(s, on_done, &d));
    RUN_UNTIL(loop, d.calls, 10);
    tapio_stream_free(s);
}

/* ------------------------------------------------ servers and clients */

/* The handler: answer each line with "echo: " + line until EOF. */
typedef struct echo_conn {
    tapio_stream *s;
    int *finished;
} echo_conn;

static void echo_line(tapio_stream *s, const void *data, size_t len, int err,
                      void *arg);

static void echo_next(echo_conn *c)
{
    CHECK_OK(tapio_stream_readline(c->s, echo_line, c));
}

static void echo_line(tapio_stream *s, const void *data, size_t len, int err,
                      void *arg)
{
    echo_conn *c = arg;
    CHECK_EQ_INT(err, 0);
    if (len == 0) {
        (*c->finished)++;
        tapio_stream_free(s);
        free(c);
        return;
    }
    struct iovec iov[] = {{"echo: ", 6}, {(void *)data, len}};
    CHECK_OK(tapio_stream_writelines(s, iov, 2));
    echo_next(c);
}

static void echo_connected(tapio_stream *s, void *arg)
{
    echo_conn *c = calloc(1, sizeof *c);
    c->s = s;
    c->finished = arg;
    echo_next(c);
}

/* A client: send "line <i>\n", expect the echo, then EOF. */
typedef struct client {
    tapio_stream *s;
    int i;
    int ok;
    char want[64];
} client;

static void client_got(tapio_stream *s, const void *data, size_t len, int err,
                       void *arg)
{
    client *c = arg;
    CHECK_EQ_INT(err, 0);
    CHECK_EQ_INT(len, strlen(c->want));
    CHECK_MEM_EQ(data, c->want, len);
    c->ok = 1;
    tapio_stream_close(s);
}

static void client_connected(tapio_stream *s, int err, void *arg)
{
    client *c = arg;
    CHECK_OK(err);
    c->s = s;
    char line[32];
    int n = snprintf(line, sizeof line, "line %d\n", c->i);
    snprintf(c->want, sizeof c->want, "echo: %s", line);
    CHECK_OK(tapio_stream_write(s, line, (size_t)n));
    CHECK_OK(tapio_stream_write_eof(s));
    CHECK_OK(tapio_stream_readline(s, client_got, c));
}

static int count_ok(const client *cs, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += cs[i].ok;
    return ok;
}

static void run_clients(tapio_loop *loop, tapio_server *server, int n,
                        int *finished)
{
    char port[16];
    snprintf(port, sizeof port, "%d", tapio_server_port(server));
    client *cs = calloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++) {
        cs[i].i = i;
        CHECK_OK(tapio_open_connection(loop, "127.0.0.1", port, NULL, 0,
                                       client_connected, &cs[i]));
    }
    RUN_UNTIL(loop, count_ok(cs, n) == n && *finished == n, 60);
    for (int i = 0; i < n; i++)
        stream_done(loop, cs[i].s);
    free(cs);
}

TEST(streams_server_and_client)
{
    tapio_loop *loop = test_loop();
    int finished = 0;
    tapio_stream_handler h = {echo_connected, &finished, 0};
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *server;
    CHECK_OK(tapio_start_server(loop, hosts, "0", NULL, &h, &server));
    run_clients(loop, server, 3, &finished);
    tapio_server_close(server, NULL, NULL);
    run_briefly(loop, 2);
}

TEST(streams_1000_concurrent_connections)
{
    tapio_loop *loop = test_loop();
    int finished = 0;
    tapio_stream_handler h = {echo_connected, &finished, 0};
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server_options opts = {.backlog = 1024};
    tapio_server *server;
    CHECK_OK(tapio_start_server(loop, hosts, "0", &opts, &h, &server));
    run_clients(loop, server, 1000, &finished);
    tapio_server_close(server, NULL, NULL);
    run_briefly(loop, 2);
}

static void open_done(tapio_stream *s, int err, void *arg)
{
    done *d = arg;
    d->calls++;
    d->err = err;
    d->s = s;
}

TEST(streams_unix_server_and_refused_connection)
{
    tapio_loop *loop = test_loop();
    int finished = 0;
    tapio_stream_handler h = {echo_connected, &finished, 0};
    char path[108];
    unix_path(path, sizeof path, "streams");
    tapio_server *server;
    CHECK_OK(tapio_start_unix_server(loop, path, 0, NULL, &h, &server));
    done d = {0};
    CHECK_OK(tapio_open_unix_connection(loop, path, 0, NULL, 0, open_done,
                                        &d));
    RUN_UNTIL(loop, d.calls, 10);
    CHECK_OK(d.err);
    rd r = {0};
    CHECK_OK(tapio_stream_write(d.s, "hi\n", 3));
    READ_RUN(loop, tapio_stream_readline(d.s, on_read, &r), &r);
    check_rd(&r, 0, "echo: hi\n");
    CHECK_OK(tapio_stream_write_eof(d.s));
    RUN_UNTIL(loop, finished == 1, 10);
    stream_done(loop, d.s);
    tapio_server_close(server, NULL, NULL);
    run_briefly(loop, 2);
    /* Nobody listens now. */
    done refused = {0};
    int err = tapio_open_unix_connection(loop, path, 0, NULL, 0, open_done,
                                         &refused);
    if (err == 0) {
        RUN_UNTIL(loop, refused.calls, 10);
        err = refused.err;
        CHECK(refused.s == NULL);
    }
    CHECK(err == -ENOENT || err == -ECONNREFUSED);
}

/* ------------------------------------------------------------------ TLS */

static tls_certs the_certs;
static bool certs_made;

static void remove_certs(void *arg)
{
    (void)arg;
    tls_certs_remove(&the_certs);
    certs_made = false;
}

static const tls_certs *certs(void)
{
    if (!certs_made) {
        char err[256];
        if (tls_certs_make(&the_certs, err, sizeof err) != 0)
            FAIL("tls_certs_make: %s", err);
        certs_made = true;
        at_cleanup(remove_certs, NULL);
    }
    return &the_certs;
}

static tapio_tls_context *server_ctx(void)
{
    tapio_tls_context_options o = {.server = true,
                                   .cert_file = certs()->server_cert,
                                   .key_file = certs()->server_key};
    tapio_tls_context *ctx;
    CHECK_OK(tapio_tls_context_new(&o, &ctx));
    return ctx;
}

static tapio_tls_context *client_ctx(void)
{
    tapio_tls_context_options o = {.ca_file = certs()->ca};
    tapio_tls_context *ctx;
    CHECK_OK(tapio_tls_context_new(&o, &ctx));
    return ctx;
}

TEST(streams_over_tls)
{
    tapio_loop *loop = test_loop();
    int finished = 0;
    tapio_stream_handler h = {echo_connected, &finished, 0};
    tapio_tls_context *sctx = server_ctx(), *cctx = client_ctx();
    tapio_tls_options stls = {.context = sctx, .server_side = true};
    tapio_server_options sopts = {.tls = &stls};
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *server;
    CHECK_OK(tapio_start_server(loop, hosts, "0", &sopts, &h, &server));
    char port[16];
    snprintf(port, sizeof port, "%d", tapio_server_port(server));
    tapio_tls_options ctls = {.context = cctx, .server_hostname = "localhost"};
    tapio_connect_options copts = {.tls = &ctls};
    done d = {0};
    CHECK_OK(tapio_open_connection(loop, "127.0.0.1", port, &copts, 0,
                                   open_done, &d));
    RUN_UNTIL(loop, d.calls, 10);
    CHECK_OK(d.err);
    CHECK(tapio_transport_is_tls(tapio_stream_transport(d.s)));
    CHECK(!tapio_stream_can_write_eof(d.s));
    rd r = {0};
    CHECK_OK(tapio_stream_write(d.s, "secret\n", 7));
    READ_RUN(loop, tapio_stream_readline(d.s, on_read, &r), &r);
    check_rd(&r, 0, "echo: secret\n");
    /* TLS has no half-close: closing ends the server's reads with EOF. */
    stream_done(loop, d.s);
    RUN_UNTIL(loop, finished == 1, 10);
    tapio_server_close(server, NULL, NULL);
    run_briefly(loop, 3);
    tapio_tls_context_unref(sctx);
    tapio_tls_context_unref(cctx);
}

/* start_tls on both ends of a plain connection, with a line buffered
 * before it that stays readable. */
TEST(streams_start_tls)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    tapio_stream *a, *b;
    CHECK_OK(tapio_stream_from_fd(loop, fds[0], 0, &a));
    CHECK_OK(tapio_stream_from_fd(loop, fds[1], 0, &b));
    CHECK_OK(tapio_stream_write(a, "plain\n", 6));
    RUN_UNTIL(loop, tapio_stream_buffered(b) == 6, 10);
    tapio_tls_context *sctx = server_ctx(), *cctx = client_ctx();
    tapio_tls_options so = {.context = sctx, .server_side = true};
    tapio_tls_options co = {.context = cctx, .server_hostname = "localhost"};
    done da = {0}, db = {0};
    CHECK_OK(tapio_stream_start_tls(a, &so, on_done, &da));
    CHECK_OK(tapio_stream_start_tls(b, &co, on_done, &db));
    RUN_UNTIL(loop, da.calls && db.calls, 10);
    CHECK_OK(da.err);
    CHECK_OK(db.err);
    CHECK(tapio_transport_is_tls(tapio_stream_transport(a)));
    rd r = {0};
    READ_RUN(loop, tapio_stream_readline(b, on_read, &r), &r);
    check_rd(&r, 0, "plain\n");
    CHECK_OK(tapio_stream_write(a, "sealed\n", 7));
    READ_RUN(loop, tapio_stream_readline(b, on_read, &r), &r);
    check_rd(&r, 0, "sealed\n");
    stream_done(loop, a);
    stream_done(loop, b);
    tapio_tls_context_unref(sctx);
    tapio_tls_context_unref(cctx);
}

/* ------------------------------------------------------ 100 MiB of lines */

#define LINES_TOTAL ((size_t)100 * 1024 * 1024)

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

typedef struct line_sender {
    tapio_stream *s;
    size_t sent, lines;
    uint64_t hash;
    char chunk[64 * 1024];
} line_sender;

/* Line i: a length of 1..2000 from i, its bytes from i, then "\n". */
static size_t make_line(size_t i, char *out)
{
    size_t len = 1 + (i * 7919) % 2000;
    for (size_t k = 0; k < len; k++)
        out[k] = (char)('a' + (i + k) % 26);
    out[len] = '\n';
    return len + 1;
}

static void sender_pump(tapio_stream *s, int err, void *arg);

/* Fill a chunk with whole lines, write it, drain, repeat. */
static void sender_pump(tapio_stream *s, int err, void *arg)
{
    line_sender *ls = arg;
    CHECK_OK(err);
    if (ls->sent >= LINES_TOTAL) {
        CHECK_OK(tapio_stream_write_eof(s));
        return;
    }
    size_t used = 0;
    while (used + 2001 <= sizeof ls->chunk && ls->sent + used < LINES_TOTAL)
        used += make_line(ls->lines++, ls->chunk + used);
    ls->hash = fnv1a(ls->hash, ls->chunk, used);
    ls->sent += used;
    CHECK_OK(tapio_stream_write(s, ls->chunk, used));
    CHECK_OK(tapio_stream_drain(s, sender_pump, ls));
}

typedef struct line_receiver {
    size_t total, lines;
    uint64_t hash;
    bool eof;
    char expect[2001];
} line_receiver;

static void receiver_line(tapio_stream *s, const void *data, size_t len,
                          int err, void *arg)
{
    line_receiver *lr = arg;
    CHECK_OK(err);
    if (len == 0) {
        lr->eof = true;
        return;
    }
    size_t want = make_line(lr->lines++, lr->expect);
    CHECK_EQ_INT(len, want);
    lr->hash = fnv1a(lr->hash, data, len);
    lr->total += len;
    CHECK_OK(tapio_stream_readline(s, receiver_line, lr));
}

TEST(streams_100mib_of_lines)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_INET, fds);
    tapio_stream *a, *b;
    CHECK_OK(tapio_stream_from_fd(loop, fds[0], 0, &a));
    CHECK_OK(tapio_stream_from_fd(loop, fds[1], 0, &b));
    line_sender *ls = calloc(1, sizeof *ls);
    line_receiver *lr = calloc(1, sizeof *lr);
    ls->s = a;
    ls->hash = lr->hash = 0xcbf29ce484222325ULL;
    CHECK_OK(tapio_stream_drain(a, sender_pump, ls));
    CHECK_OK(tapio_stream_readline(b, receiver_line, lr));
    RUN_UNTIL(loop, lr->eof, 50);
    CHECK_EQ_INT(lr->total, ls->sent);
    CHECK_EQ_INT(lr->lines, ls->lines);
    CHECK(lr->hash == ls->hash);
    CHECK(ls->sent >= LINES_TOTAL - 2001);
    stream_done(loop, a);
    stream_done(loop, b);
    free(ls);
    free(lr);
}

/* ------------------------------------------------------ more of the API */

/* open_unix_connection with TLS: start_tls runs before the callback. */
TEST(streams_unix_connection_over_tls)
{
    tapio_loop *loop = test_loop();
    int finished = 0;
    tapio_stream_handler h = {echo_connected, &finished, 0};
    tapio_tls_context *sctx = server_ctx(), *cctx = client_ctx();
    tapio_tls_options stls = {.context = sctx, .server_side = true};
    tapio_server_options sopts = {.tls = &stls};
    char path[108];
    unix_path(path, sizeof path, "streams-tls");
    tapio_server *server;
    CHECK_OK(tapio_start_unix_server(loop, path, 0, &sopts, &h, &server));
    char hostname[] = "localhost";
    tapio_tls_options ctls = {.context = cctx, .server_hostname = hostname};
    done d = {0};
    CHECK_OK(tapio_open_unix_connection(loop, path, 0, &ctls, 0, open_done,
                                        &d));
    hostname[0] = 'X'; /* the options were copied */
    tapio_tls_context_unref(cctx); /* and the context referenced */
    RUN_UNTIL(loop, d.calls, 10);
    CHECK_OK(d.err);
    CHECK(tapio_transport_is_tls(tapio_stream_transport(d.s)));
    rd r = {0};
    CHECK_OK(tapio_stream_write(d.s, "over unix\n", 10));
    READ_RUN(loop, tapio_stream_readline(d.s, on_read, &r), &r);
    check_rd(&r, 0, "echo: over unix\n");
    stream_done(loop, d.s);
    RUN_UNTIL(loop, finished == 1, 10);
    tapio_server_close(server, NULL, NULL);
    run_briefly(loop, 3);
    tapio_tls_context_unref(sctx);
}

/* A certificate the client does not trust: start_tls reports the error
 * and the stream's connection is lost with it. */
TEST(streams_start_tls_failure_ends_the_connection)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    tapio_stream *a, *b;
    CHECK_OK(tapio_stream_from_fd(loop, fds[0], 0, &a));
    CHECK_OK(tapio_stream_from_fd(loop, fds[1], 0, &b));
    run_briefly(loop, 2);
    tapio_tls_context *sctx = server_ctx(), *cctx;
    tapio_tls_context_options o = {.ca_file = certs()->other_ca};
    CHECK_OK(tapio_tls_context_new(&o, &cctx));
    tapio_tls_options so = {.context = sctx, .server_side = true};
    tapio_tls_options co = {.context = cctx, .server_hostname = "localhost"};
    done da = {0}, db = {0}, closed = {0};
    CHECK_OK(tapio_stream_start_tls(a, &so, on_done, &da));
    CHECK_OK(tapio_stream_start_tls(b, &co, on_done, &db));
    CHECK_ERR(tapio_stream_start_tls(b, &co, on_done, &db), -EBUSY);
    CHECK_OK(tapio_stream_wait_closed(b, on_done, &closed));
    RUN_UNTIL(loop, da.calls && db.calls && closed.calls, 10);
    CHECK_ERR(db.err, TAPIO_ETLS_VERIFY);
    CHECK(da.err != 0);
    CHECK_ERR(closed.err, TAPIO_ETLS_VERIFY);
    CHECK_ERR(tapio_stream_exception(b), TAPIO_ETLS_VERIFY);
    rd r = {0};
    READ_RUN(loop, tapio_stream_read(b, 10, on_read, &r), &r);
    check_rd(&r, TAPIO_ETLS_VERIFY, "");
    tapio_stream_free(a);
    tapio_stream_free(b);
    run_briefly(loop, 3);
    tapio_tls_context_unref(sctx);
    tapio_tls_context_unref(cctx);
}

static const tapio_protocol nothing_protocol = {0};

/* A live transport taken over by a stream (StreamReaderProtocol around a
 * transport made with another protocol). */
TEST(streams_attach_to_a_live_transport)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    tapio_transport *t;
    CHECK_OK(tapio_transport_from_fd(loop, fds[0], &nothing_protocol, NULL,
                                     &t));
    run_briefly(loop, 2);
    tapio_stream *s;
    CHECK_OK(tapio_stream_new(loop, 0, &s));
    CHECK_ERR(tapio_stream_write(s, "x", 1), -ENOTCONN);
    CHECK(tapio_stream_transport(s) == NULL);
    CHECK_OK(tapio_stream_attach(s, t));
    CHECK_ERR(tapio_stream_attach(s, t), -EBUSY);
    CHECK(tapio_stream_transport(s) == t);
    CHECK(tapio_stream_loop(s) == loop);
    send_str(fds[1], "attached\n");
    rd r = {0};
    READ_RUN(loop, tapio_stream_readline(s, on_read, &r), &r);
    check_rd(&r, 0, "attached\n");
    CHECK_OK(tapio_stream_write(s, "ok", 2));
    char buf[2];
    recv_exactly(loop, fds[1], buf, 2);
    CHECK_MEM_EQ(buf, "ok", 2);
    close(fds[1]);
    stream_done(loop, s);
}

/* Several drains wait together and complete together, in order. */
static int drain_order[3], drains_done;

static void on_drain_n(tapio_stream *s, int err, void *arg)
{
    (void)s;
    CHECK_OK(err);
    drain_order[drains_done++] = (int)(intptr_t)arg;
}

TEST(streams_several_drains_wait_together)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    run_briefly(loop, 2);
    const size_t n = 4 * 1024 * 1024;
    unsigned char *data = pattern_new(n);
    CHECK_OK(tapio_stream_write(s, data, n));
    drains_done = 0;
    for (intptr_t i = 0; i < 3; i++)
        CHECK_OK(tapio_stream_drain(s, on_drain_n, (void *)i));
    run_for(loop, 0.05);
    CHECK_EQ_INT(drains_done, 0);
    sink k;
    sink_start(loop, &k, peer);
    RUN_UNTIL(loop, drains_done == 3, 20);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(drain_order[i], i);
    size_t low, high;
    tapio_transport_get_write_buffer_limits(tapio_stream_transport(s), &low,
                                            &high);
    CHECK(tapio_transport_get_write_buffer_size(tapio_stream_transport(s)) <=
          low);
    RUN_UNTIL(loop, k.total == n, 20);
    sink_stop(&k);
    free(data);
    close(peer);
    stream_done(loop, s);
}

/* ------------------------------------------------------- edges, copies */

TEST(streams_readuntil_incomplete_keeps_a_partial_separator)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    send_str(peer, "data\r");
    shutdown(peer, SHUT_WR);
    READ_RUN(loop, tapio_stream_readuntil(s, "\r\n", 2, on_read, &r), &r);
    check_rd(&r, TAPIO_EINCOMPLETE, "data\r");
    CHECK_EQ_INT(tapio_stream_buffered(s), 0);
    READ_RUN(loop, tapio_stream_read(s, -1, on_read, &r), &r);
    check_rd(&r, 0, ""); /* read(-1) at EOF: nothing */
    close(peer);
    stream_done(loop, s);
}

/* A line that the bytes just received complete is handed out of the
 * transport's own buffer: nothing was copied into the stream's yet. */
static size_t buffered_in_callback;

static void on_line_check_copy(tapio_stream *s, const void *data, size_t len,
                               int err, void *arg)
{
    buffered_in_callback = tapio_stream_buffered(s);
    on_read(s, data, len, err, arg);
}

TEST(streams_line_from_the_transport_buffer_is_not_copied)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    rd r = {0};
    CHECK_OK(tapio_stream_readline(s, on_line_check_copy, &r));
    send_str(peer, "first\nsecond\n");
    RUN_UNTIL(loop, r.calls, 10);
    check_rd(&r, 0, "first\n");
    CHECK_EQ_INT(buffered_in_callback, 0); /* "second\n" not copied yet */
    CHECK_EQ_INT(tapio_stream_buffered(s), 7); /* the rest is, afterwards */
    READ_RUN(loop, tapio_stream_readline(s, on_line_check_copy, &r), &r);
    check_rd(&r, 0, "second\n");
    close(peer);
    stream_done(loop, s);
}

/* A writing stream over a pipe: write, drain, write_eof closes it. */
TEST(streams_writing_to_a_pipe)
{
    tapio_loop *loop = test_loop();
    int p[2];
    CHECK(pipe(p) == 0);
    tapio_stream *s;
    CHECK_OK(tapio_stream_new(loop, 0, &s));
    CHECK_OK(tapio_pipe_write(loop, p[1], tapio_stream_protocol(), s, NULL));
    run_briefly(loop, 2);
    CHECK_OK(tapio_stream_write(s, "to the pipe\n", 12));
    done d = {0}, closed = {0};
    CHECK_OK(tapio_stream_drain(s, on_done, &d));
    CHECK_OK(tapio_stream_wait_closed(s, on_done, &closed));
    RUN_UNTIL(loop, d.calls, 10);
    CHECK_OK(d.err);
    CHECK_OK(tapio_stream_write_eof(s));
    RUN_UNTIL(loop, closed.calls, 10);
    CHECK_OK(closed.err);
    char buf[32];
    CHECK(read(p[0], buf, sizeof buf) == 12);
    CHECK_MEM_EQ(buf, "to the pipe\n", 12);
    CHECK(read(p[0], buf, sizeof buf) == 0);
    close(p[0]);
    tapio_stream_free(s);
}

/* Freed while its TLS handshake runs: the callback never runs, nothing
 * leaks. */
TEST(streams_free_during_start_tls)
{
    tapio_loop *loop = test_loop();
    int peer;
    tapio_stream *s = stream_with_peer(loop, AF_UNIX, 0, &peer);
    run_briefly(loop, 2);
    tapio_tls_context *cctx = client_ctx();
    tapio_tls_options co = {.context = cctx, .server_hostname = "localhost"};
    done d = {0};
    CHECK_OK(tapio_stream_start_tls(s, &co, on_done, &d));
    run_briefly(loop, 2); /* the ClientHello goes out; no answer comes */
    tapio_stream_free(s);
    close(peer);
    run_for(loop, 0.1);
    CHECK_EQ_INT(d.calls, 0);
    tapio_tls_context_unref(cctx);
}
