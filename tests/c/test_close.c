/*
 * test_close.c — tapio_loop_close frees everything that is still open.
 *
 * The harness fails a test that leaves an fd open; LeakSanitizer (in the
 * sanitizer build) fails one that leaks memory.
 */
#define _GNU_SOURCE /* pipe2 */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void must_not_run(tapio_loop *loop, void *arg)
{
    (void)loop;
    FAIL("callback %p ran, but the loop was closed first", arg);
}

static void must_not_run_fd(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    FAIL("fd %d watcher %p ran, but the loop was closed first", fd, arg);
}

static void must_not_run_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)loop;
    FAIL("signal %d handler %p ran, but the loop was closed first", signum, arg);
}

static void schedule_callbacks(tapio_loop *loop)
{
    for (int i = 0; i < 100; i++)
        CHECK(tapio_call_later(loop, 10 + i, must_not_run, NULL) != NULL);
    for (int i = 0; i < 10; i++)
        CHECK(tapio_call_soon(loop, must_not_run, NULL) != NULL);
}

static bool signal_is_default(int signum)
{
    struct sigaction sa;
    CHECK(sigaction(signum, NULL, &sa) == 0);
    return sa.sa_handler == SIG_DFL;
}

TEST(loop_close_releases_everything_still_open)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *closing_server = listen_tcp(loop, "127.0.0.1", acc, NULL);
    tapio_server *open_server = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *client, *served;
    connect_pair(loop, closing_server, acc, &client, &served);
    /* Closed, but it waits for `served` before it is freed. */
    tapio_server_close(closing_server, NULL, NULL);

    int tcp_peer, unix_peer;
    conn *writer = conn_with_raw_peer(loop, AF_INET, &tcp_peer);
    unsigned char *data = pattern_new(4 * 1024 * 1024);
    CHECK_OK(tapio_transport_write(writer->t, data, 4 * 1024 * 1024));
    free(data);
    conn *closing = conn_with_raw_peer(loop, AF_UNIX, &unix_peer);
    tapio_transport_close(closing->t); /* connection_lost not yet delivered */

    int p[2];
    CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    CHECK_OK(tapio_add_reader(loop, p[0], must_not_run_fd, NULL));
    CHECK_OK(tapio_add_writer(loop, p[1], must_not_run_fd, NULL));
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR1, must_not_run_signal, NULL));
    schedule_callbacks(loop);
    conn *pending = conn_new(); /* name resolution on a worker thread */
    conn_connect(loop, pending, "localhost", tapio_server_port(open_server), NULL);

    test_loop_close();
    /* No protocol callback ran during close. */
    CHECK_EQ_INT(client->lost + served->lost + writer->lost + closing->lost, 0);
    CHECK(!pending->connect_done);
    CHECK(signal_is_default(SIGUSR1));
    close(p[0]);
    close(p[1]);
    close(tcp_peer);
    close(unix_peer);
}

TEST(loop_close_of_unused_loops_leaves_nothing)
{
    int fds = count_open_fds();
    for (int i = 0; i < 100; i++) {
        tapio_loop *loop = NULL;
        CHECK_OK(tapio_loop_new(&loop));
        schedule_callbacks(loop);
        CHECK_OK(tapio_loop_close(loop));
        CHECK_EQ_INT(count_open_fds(), fds);
    }
}

/* A handle the user still references survives the loop that made it. */
TEST(handle_reference_survives_loop_close)
{
    tapio_loop *loop = test_loop();
    tapio_handle *h = tapio_call_later(loop, 10, must_not_run, NULL);
    CHECK(h != NULL);
    tapio_handle_ref(h);
    test_loop_close();
    tapio_handle_cancel(h);
    CHECK(tapio_handle_cancelled(h));
    tapio_handle_unref(h);
}

struct spammer {
    tapio_loop *loop;
    int sent;
};

static void *spam_threadsafe(void *arg)
{
    struct spammer *s = arg;
    for (int i = 0; i < 1000; i++)
        if (tapio_call_soon_threadsafe(s->loop, must_not_run, NULL) == 0)
            s->sent++;
    return NULL;
}

TEST(loop_close_drops_threadsafe_callbacks)
{
    tapio_loop *loop = test_loop();
    struct spammer s = {loop, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, spam_threadsafe, &s) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_EQ_INT(s.sent, 1000);
    test_loop_close();
}
