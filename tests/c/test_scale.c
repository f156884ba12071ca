/* test_scale.c — many connections held by one loop at once. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONCURRENT 10000
#define BATCH 500 /* connects in flight at once, within the listen backlog */

static struct rlimit saved_nofile;

static void restore_nofile(void *arg)
{
    (void)arg;
    CHECK(setrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
}

/* One end of every connection in this process, the other in the child. */
static void raise_fd_limit(rlim_t want)
{
    CHECK(getrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
    CHECK(saved_nofile.rlim_max >= want);
    struct rlimit raised = {want, saved_nofile.rlim_max};
    if (saved_nofile.rlim_cur < want)
        CHECK(setrlimit(RLIMIT_NOFILE, &raised) == 0);
    at_cleanup(restore_nofile, NULL);
}

/* The child: CONCURRENT blocking clients, all connected before any writes,
 * each checking that its own message comes back; exit status 0 if all do. */
static int run_clients(int port)
{
    static int fds[CONCURRENT];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < CONCURRENT; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a))
            return 10;
    }
    for (int i = 0; i < CONCURRENT; i++) {
        char msg[9];
        snprintf(msg, sizeof msg, "%08d", i);
        if (write(fds[i], msg, 8) != 8)
            return 11;
    }
    for (int i = 0; i < CONCURRENT; i++) {
        char want[9], got[8];
        snprintf(want, sizeof want, "%08d", i);
        size_t n = 0;
        while (n < 8) {
            ssize_t r = read(fds[i], got + n, 8 - n);
            if (r <= 0)
                return 12;
            n += (size_t)r;
        }
        if (memcmp(got, want, 8))
            return 13;
    }
    for (int i = 0; i < CONCURRENT; i++)
        close(fds[i]);
    return 0;
}

static size_t lost(conn **conns, size_t n)
{
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
        done += conns[i]->lost;
    return done;
}

static bool child_exited(pid_t pid, int *status)
{
    return waitpid(pid, status, WNOHANG) == pid;
}

/* 10,000 connections open at once on one loop, each echoing its client's
 * own message (the clients run in a child process, so the fd limit needs
 * room for one end of each); then the clients close, every transport sees
 * EOF and closes, and nothing is left: no fd and (under ASan) no memory. */
TEST(ten_thousand_concurrent_connections_echo_then_close)
{
    raise_fd_limit(CONCURRENT + 256);
    tapio_loop *loop = test_loop();
    int fds_before = count_open_fds();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server_options opts = {.backlog = 4096};
    tapio_server *server = listen_tcp(loop, "127.0.0.1", acc, &opts);
    int port = tapio_server_port(server);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(run_clients(port));
    int status = -1;
    RUN_UNTIL(loop, acc->n == CONCURRENT || child_exited(pid, &status), 120);
    CHECK_EQ_INT(acc->n, CONCURRENT);
    CHECK_EQ_INT(count_open_fds(), fds_before + 1 + CONCURRENT);
    RUN_UNTIL(loop, status != -1 || child_exited(pid, &status), 120);
    CHECK(WIFEXITED(status));
    CHECK_EQ_INT(WEXITSTATUS(status), 0); /* every message came back */
    RUN_UNTIL(loop, lost(acc->conns, acc->n) == CONCURRENT, 60);
    tapio_server_close(server, NULL, NULL);
    RUN_UNTIL(loop, count_open_fds() == fds_before, 10);
}
