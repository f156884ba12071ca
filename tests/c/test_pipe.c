/* test_pipe.c — pipe transports: read and write ends of pipes, FIFOs and
 * terminals. */
#define _GNU_SOURCE /* posix_openpt, ptsname */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG (8 * 1024 * 1024)

/* A read pipe transport on a new pipe; *writer gets the raw write end. */
static conn *read_pipe(tapio_loop *loop, int *writer)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    *writer = fds[1];
    conn *c = conn_new();
    CHECK_OK(tapio_pipe_read(loop, fds[0], &conn_protocol, c, NULL));
    RUN_UNTIL(loop, c->made, 5);
    return c;
}

/* A write pipe transport on a new pipe; *reader gets the raw read end. */
static conn *write_pipe(tapio_loop *loop, int *reader)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    *reader = fds[0];
    conn *c = conn_new();
    CHECK_OK(tapio_pipe_write(loop, fds[1], &conn_protocol, c, NULL));
    RUN_UNTIL(loop, c->made, 5);
    return c;
}

TEST(read_pipe_delivers_data_then_eof_then_connection_lost)
{
    tapio_loop *loop = test_loop();
    int writer;
    conn *c = read_pipe(loop, &writer);
    c->keep_open = true; /* ignored: a pipe's EOF ends the transport */
    CHECK(write(writer, "hello pipe", 10) == 10);
    RUN_UNTIL(loop, c->rx.len == 10, 5);
    CHECK_MEM_EQ(c->rx.p, "hello pipe", 10);
    close(writer);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(c->eofs, 1);
    CHECK_EQ_INT(c->lost_err, 0);
    CHECK(!tapio_transport_can_write_eof(c->t));
    CHECK_ERR(tapio_transport_write(c->t, "x", 1), -ENOTSUP);
}

TEST(write_pipe_sends_everything_with_flow_control)
{
    tapio_loop *loop = test_loop();
    int reader;
    conn *c = write_pipe(loop, &reader);
    unsigned char *data = pattern_new(BIG);
    CHECK_OK(tapio_transport_write(c->t, data, BIG));
    free(data);
    CHECK(c->pauses == 1); /* a pipe holds far less than 8 MiB */
    CHECK(tapio_transport_can_write_eof(c->t));
    CHECK_OK(tapio_transport_write_eof(c->t)); /* closes once flushed */
    sink s;
    sink_start(loop, &s, reader);
    RUN_UNTIL(loop, s.done && c->lost, 20);
    CHECK_EQ_INT(s.total, BIG); /* the sink checked the pattern */
    CHECK_EQ_INT(c->resumes, 1);
    CHECK_EQ_INT(c->lost_err, 0);
    close(reader);
}

TEST(write_pipe_notices_the_reader_leaving)
{
    tapio_loop *loop = test_loop();
    int reader;
    conn *c = write_pipe(loop, &reader);
    close(reader);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_EQ_INT(c->lost_err, 0); /* nothing was queued */
}

static void ignore_sigpipe(void *arg)
{
    signal(SIGPIPE, (void (*)(int))(intptr_t)arg);
}

TEST(write_pipe_with_data_queued_loses_it_with_epipe)
{
    tapio_loop *loop = test_loop();
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* as Python runs */
    at_cleanup(ignore_sigpipe, (void *)(intptr_t)old);
    int reader;
    conn *c = write_pipe(loop, &reader);
    unsigned char *data = pattern_new(BIG);
    CHECK_OK(tapio_transport_write(c->t, data, BIG));
    free(data);
    CHECK(tapio_transport_get_write_buffer_size(c->t) > 0);
    close(reader);
    RUN_UNTIL(loop, c->lost, 5);
    CHECK_ERR(c->lost_err, -EPIPE);
}

TEST(pipe_transports_refuse_regular_files)
{
    tapio_loop *loop = test_loop();
    char path[] = "/tmp/tapio-pipe-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    int fd2 = dup(fd);
    conn *c = conn_new();
    CHECK_ERR(tapio_pipe_read(loop, fd, &conn_protocol, c, NULL), -EINVAL);
    CHECK_ERR(tapio_pipe_write(loop, fd2, &conn_protocol, c, NULL), -EINVAL);
    run_briefly(loop, 2);
    CHECK_EQ_INT(c->made, 0); /* a failed call never calls back */
}

/* A terminal: what one side writes, the other reads, both ways. */
TEST(pty_read_and_write)
{
    tapio_loop *loop = test_loop();
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(master >= 0);
    CHECK(grantpt(master) == 0 && unlockpt(master) == 0);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(slave >= 0);
    int slave_w = dup(slave);

    conn *in = conn_new(), *out = conn_new();
    CHECK_OK(tapio_pipe_read(loop, master, &conn_protocol, in, NULL));
    CHECK_OK(tapio_pipe_write(loop, slave_w, &conn_protocol, out, NULL));
    RUN_UNTIL(loop, in->made && out->made, 5);
    CHECK_OK(tapio_transport_write(out->t, "ping\n", 5));
    /* The terminal's line discipline may turn \n into \r\n. */
    RUN_UNTIL(loop, in->rx.len >= 5, 5);
    CHECK_MEM_EQ(in->rx.p, "ping", 4);
    tapio_transport_close(out->t);
    tapio_transport_close(in->t);
    RUN_UNTIL(loop, in->lost && out->lost, 5);
    close(slave);
}

/* ---- relayed read pipes (tapio_pipe_read_relayed) ---------------------- */

/* A relayed read transport on a new pipe and a write transport on its
 * other end; *extra_fds gets how many fds the reader opened besides the
 * pipe (2 when the relay's socket pair is in place). */
static conn *relayed_pipe(tapio_loop *loop, conn **writer, int *extra_fds)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    conn *r = conn_new();
    int before = count_open_fds();
    CHECK_OK(tapio_pipe_read_relayed(loop, fds[0], &conn_protocol, r, NULL));
    *extra_fds = count_open_fds() - before;
    *writer = conn_new();
    CHECK_OK(tapio_pipe_write(loop, fds[1], &conn_protocol, *writer, NULL));
    RUN_UNTIL(loop, r->made && (*writer)->made, 5);
    return r;
}

TEST(relayed_read_pipe_delivers_everything_then_eof)
{
    tapio_loop *loop = test_loop();
    conn *w;
    int extra;
    conn *r = relayed_pipe(loop, &w, &extra);
    CHECK_EQ_INT(extra, 2); /* Linux: splice into a socket pair */
    unsigned char *data = pattern_new(BIG);
    CHECK_OK(tapio_transport_write(w->t, data, BIG));
    free(data);
    tapio_transport_close(w->t); /* closes the pipe once flushed: EOF */
    RUN_UNTIL(loop, r->lost, 20);
    CHECK_EQ_INT(r->rx.len, BIG);
    CHECK(pattern_check(r->rx.p, 0, BIG));
    CHECK_EQ_INT(r->eofs, 1);
    CHECK_EQ_INT(r->lost_err, 0);
}

TEST(relayed_read_pipe_back_pressure_reaches_the_writer)
{
    tapio_loop *loop = test_loop();
    conn *w;
    int extra;
    conn *r = relayed_pipe(loop, &w, &extra);
    tapio_transport_pause_reading(r->t);
    unsigned char *data = pattern_new(BIG);
    CHECK_OK(tapio_transport_write(w->t, data, BIG));
    free(data);
    run_for(loop, 0.2);
    /* Nothing is read: the pipe (and at most one relay's worth) holds the
     * rest, so the writer stays paused with most of it buffered. */
    CHECK_EQ_INT(r->rx.len, 0);
    CHECK(w->paused);
    size_t held = tapio_transport_get_write_buffer_size(w->t);
    CHECK(held > BIG / 2);
    tapio_transport_resume_reading(r->t);
    tapio_transport_close(w->t);
    RUN_UNTIL(loop, r->lost, 20);
    CHECK_EQ_INT(r->rx.len, BIG);
    CHECK(pattern_check(r->rx.p, 0, BIG));
    CHECK_EQ_INT(w->resumes, 1);
}

TEST(relayed_read_on_a_socket_reads_it_plainly)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    conn *r = conn_new();
    int before = count_open_fds();
    CHECK_OK(tapio_pipe_read_relayed(loop, fds[0], &conn_protocol, r, NULL));
    CHECK_EQ_INT(count_open_fds() - before, 0); /* no relay: not a pipe */
    RUN_UNTIL(loop, r->made, 5);
    CHECK(write(fds[1], "plain", 5) == 5);
    close(fds[1]);
    RUN_UNTIL(loop, r->lost, 5);
    CHECK_MEM_EQ(r->rx.p, "plain", 5);
}
