/* test_fork.c — a process that forks with a loop: the child may run the
 * loop it inherited, and the parent's loop goes on undisturbed. The child
 * reports by its exit status (and a pipe); the parent checks both. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNECTIONS 8

/* The exit status of child `pid` (-1 if it did not exit by itself). */
static int child_status(pid_t pid)
{
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A blocking connection to the server's port, "ping" sent on it and its
 * echo read back within 5 s: true when it came back. */
static bool echoed_by_a_running_loop(tapio_loop *loop, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, "ping", 4, 0) != 4)
        return false;
    set_nonblocking(fd);
    char buf[4];
    size_t got = 0;
    double end = monotonic_now() + 5;
    while (got < 4 && monotonic_now() < end) {
        run_briefly(loop, 1);
        ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            break;
        else
            poll(NULL, 0, 1);
    }
    close(fd);
    return got == 4 && memcmp(buf, "ping", 4) == 0;
}

/* An echo server with a connection to it, the loop past its first
 * iteration (accepting, receiving). */
static tapio_server *echo_server_with_a_client(tapio_loop *loop, conn **client)
{
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *served;
    connect_pair(loop, s, acc, client, &served);
    run_for(loop, 0.02);
    return s;
}

/* The parent's old connection and a new one are echoed. */
static void check_still_serving(tapio_loop *loop, tapio_server *s, conn *client)
{
    CHECK_OK(tapio_transport_write(client->t, "pong", 4));
    RUN_UNTIL(loop, client->rx.len == 4, 5);
    CHECK_MEM_EQ(client->rx.p, "pong", 4);
    conn *later = connect_tcp(loop, "127.0.0.1", tapio_server_port(s));
    CHECK_OK(tapio_transport_write(later->t, "again", 5));
    RUN_UNTIL(loop, later->rx.len == 5, 5);
    CHECK_MEM_EQ(later->rx.p, "again", 5);
}

/* The child serves a connection with the loop and server it inherited,
 * while the parent sits in waitpid: the connection is not left waiting
 * for the parent's loop. Afterwards the parent serves its old connection
 * and new ones as before. */
TEST(a_forked_child_serves_with_the_loop_it_inherited)
{
    tapio_loop *loop = test_loop();
    conn *client;
    tapio_server *s = echo_server_with_a_client(loop, &client);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(echoed_by_a_running_loop(loop, tapio_server_port(s)) ? 0 : 1);
    CHECK_EQ_INT(child_status(pid), 0);

    check_still_serving(loop, s, client);
}

/* ---- a fork inside a protocol callback */

static conn *conns[CONNECTIONS];
static pid_t forked_pid = -1;
static size_t received_at_fork;

static size_t received(void)
{
    size_t total = 0;
    for (int i = 0; i < CONNECTIONS; i++)
        total += conns[i]->rx.len;
    return total;
}

static void fork_on_first_data(tapio_transport *t, const void *data,
                               size_t len, void *user)
{
    conn_on_data(t, data, len, user);
    if (forked_pid < 0) {
        received_at_fork = received();
        forked_pid = fork();
        CHECK(forked_pid >= 0);
    }
}

/* Several connections' bytes arrive in one batch and a callback forks in
 * the middle of it: the child carries on from there and runs one
 * iteration, then says how many bytes it took. Every byte is delivered
 * once, to one of the two: none is lost to the other process's share of
 * the batch. */
TEST(a_fork_in_a_callback_loses_no_bytes_of_the_batch)
{
    tapio_loop *loop = test_loop();
    tapio_protocol proto = conn_protocol;
    proto.data_received = fork_on_first_data;
    int peers[CONNECTIONS];
    for (int i = 0; i < CONNECTIONS; i++) {
        int fds[2];
        socket_pair(AF_INET, fds);
        conns[i] = conn_new();
        conn_wrap(loop, fds[0], &proto, conns[i]);
        peers[i] = fds[1];
    }
    int report[2];
    CHECK(pipe(report) == 0);
    for (int i = 0; i < CONNECTIONS; i++)
        CHECK(send(peers[i], "x", 1, 0) == 1);
    usleep(20000); /* every byte there before the loop looks */

    RUN_UNTIL(loop, forked_pid >= 0, 5);
    if (forked_pid == 0) {
        run_briefly(loop, 1);
        size_t taken = received() - received_at_fork;
        _exit(write(report[1], &taken, sizeof taken) == sizeof taken ? 0 : 1);
    }
    close(report[1]);
    CHECK_EQ_INT(child_status(forked_pid), 0);
    size_t child_took = 0;
    CHECK(read(report[0], &child_took, sizeof child_took) == sizeof child_took);
    close(report[0]);
    RUN_UNTIL(loop, received() + child_took == CONNECTIONS, 5);
    run_for(loop, 0.05);
    CHECK_EQ_INT(received() + child_took, CONNECTIONS);
    for (int i = 0; i < CONNECTIONS; i++)
        close(peers[i]);
    forked_pid = -1;
}

/* A child closes the loop and server it inherited without running them:
 * the parent's loop keeps every watcher (the child's removals are its
 * own) and serves its connection and new ones. */
TEST(a_child_closing_its_inherited_loop_leaves_the_parents_alone)
{
    tapio_loop *loop = test_loop();
    conn *client;
    tapio_server *s = echo_server_with_a_client(loop, &client);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tapio_server_close(s, NULL, NULL);
        _exit(tapio_loop_close(loop) == 0 ? 0 : 1);
    }
    CHECK_EQ_INT(child_status(pid), 0);

    check_still_serving(loop, s, client);
}

/* ---- a fork in another thread than the loop's */

typedef struct forker {
    pthread_t thread;
    int child_status;
} forker;

static void *fork_and_wait(void *arg)
{
    forker *f = arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    f->child_status = pid < 0 ? -1 : child_status(pid);
    return NULL;
}

/* Another thread forks while the loop serves in the test's thread (a
 * multiprocessing pool started from a worker thread, say): the loop's
 * ring is its own thread's to change, and after the fork its server and
 * its connection still answer. */
TEST(a_fork_in_another_thread_leaves_the_loop_serving)
{
    tapio_loop *loop = test_loop();
    conn *client;
    tapio_server *s = echo_server_with_a_client(loop, &client);
    forker f = {.child_status = -2};
    CHECK(pthread_create(&f.thread, NULL, fork_and_wait, &f) == 0);
    run_for(loop, 0.1); /* serving while the other thread forks */
    CHECK(pthread_join(f.thread, NULL) == 0);
    CHECK_EQ_INT(f.child_status, 0);
    check_still_serving(loop, s, client);
}
