/* Connecting to resolved address lists (tapio_connect_socket, and
 * tapio_connect's use of the same core): the order of the attempts with
 * interleaving, happy eyeballs, local addresses, the per-attempt errors,
 * cancellation. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* ---- addresses and peers ------------------------------------------------ */

static tapio_address inet_address(int family, const char *host, int port)
{
    tapio_address a;
    memset(&a, 0, sizeof a);
    a.family = family;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a.addr;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        CHECK(inet_pton(AF_INET, host, &in->sin_addr) == 1);
        a.len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        CHECK(inet_pton(AF_INET6, host, &in6->sin6_addr) == 1);
        a.len = sizeof *in6;
    }
    return a;
}

static int listener(int family, int backlog)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    const char *host = family == AF_INET ? "127.0.0.1" : "::1";
    tapio_address a = inet_address(family, host, 0);
    CHECK(bind(fd, (struct sockaddr *)&a.addr, a.len) == 0);
    CHECK(listen(fd, backlog) == 0);
    return fd;
}

static int port_of_fd(int fd, bool peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK((peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                : getsockname(fd, (struct sockaddr *)&ss, &len)) == 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A port on 127.0.0.1 (or ::1) that answers no SYN: a listener with a
 * backlog of 0 whose queue one connection already fills, so further SYNs
 * are dropped and connects to it stay in progress. fds[0] is the listener,
 * fds[1] the connection that fills it. */
static int blackhole(int family, int fds[2])
{
    fds[0] = listener(family, 0);
    int port = port_of_fd(fds[0], false);
    fds[1] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const char *host = family == AF_INET ? "127.0.0.1" : "::1";
    tapio_address a = inet_address(family, host, port);
    CHECK(connect(fds[1], (struct sockaddr *)&a.addr, a.len) == 0);
    return port;
}

static void close_pair(int fds[2])
{
    close(fds[0]);
    close(fds[1]);
}

/* ---- recording the outcome ---------------------------------------------- */

typedef struct outcome {
    bool done;
    int calls;
    int fd, err;
    size_t address;
    tapio_connect_error errors[16];
    size_t nerrors;
    double at;
} outcome;

static void on_result(const tapio_connect_result *r, void *arg)
{
    outcome *o = arg;
    o->calls++;
    o->done = true;
    o->fd = r->fd;
    o->err = r->err;
    o->address = r->address;
    o->nerrors = r->nerrors < 16 ? r->nerrors : 16;
    if (o->nerrors)
        memcpy(o->errors, r->errors, o->nerrors * sizeof(*o->errors));
    o->at = monotonic_now();
}

static void run_request(tapio_loop *loop, const tapio_address *addrs, size_t n,
                        const tapio_connect_options *opts, outcome *o)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    CHECK_OK(tapio_connect_socket(loop, addrs, n, opts, on_result, o, NULL));
    CHECK(!o->done); /* never from inside the call */
    RUN_UNTIL(loop, o->done, 10);
    run_briefly(loop, 2);
    CHECK_EQ_INT(o->calls, 1);
}

/* ---- tests --------------------------------------------------------------- */

/* Four refused addresses, two per family: the errors name the addresses in
 * the order they were tried, which interleaving changes as asyncio's. */
TEST(connect_socket_tries_addresses_in_interleaved_order)
{
    if (!ipv6_loopback_available())
        return;
    tapio_loop *loop = test_loop();
    tapio_address addrs[4] = {
        inet_address(AF_INET, "127.0.0.1", free_tcp_port()),
        inet_address(AF_INET, "127.0.0.1", free_tcp_port()),
        inet_address(AF_INET6, "::1", free_tcp_port()),
        inet_address(AF_INET6, "::1", free_tcp_port()),
    };
    struct {
        int interleave;
        size_t order[4];
    } cases[] = {
        {0, {0, 1, 2, 3}},
        {TAPIO_CONNECT_NO_INTERLEAVE, {0, 1, 2, 3}},
        {1, {0, 2, 1, 3}},
        {2, {0, 1, 2, 3}},
        {3, {0, 1, 2, 3}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tapio_connect_options opts = {.interleave = cases[c].interleave};
        outcome o;
        run_request(loop, addrs, 4, &opts, &o);
        CHECK_EQ_INT(o.fd, -1);
        CHECK_ERR(o.err, -ECONNREFUSED);
        CHECK_EQ_INT(o.nerrors, 4);
        for (size_t i = 0; i < 4; i++) {
            CHECK_EQ_INT(o.errors[i].address, cases[c].order[i]);
            CHECK_EQ_INT(o.errors[i].step, TAPIO_CONNECT_STEP_CONNECTING);
            CHECK_ERR(o.errors[i].err, -ECONNREFUSED);
        }
    }
    /* Happy eyeballs interleaves by default; families alternate, v6 first
     * when it comes first. */
    tapio_address mixed[4] = {addrs[2], addrs[3], addrs[0], addrs[1]};
    tapio_connect_options he = {.happy_eyeballs = true,
                                .happy_eyeballs_delay = 5};
    outcome o;
    run_request(loop, mixed, 4, &he, &o);
    CHECK_EQ_INT(o.nerrors, 4);
    size_t want[4] = {0, 2, 1, 3};
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_INT(o.errors[i].address, want[i]);
}

/* The first address never answers: without happy eyeballs the request
 * waits on it; with a delay the second address is tried after the delay,
 * wins, and the first attempt is closed without an error. */
TEST(connect_socket_happy_eyeballs_starts_the_next_after_the_delay)
{
    tapio_loop *loop = test_loop();
    int hole[2];
    int hole_port = blackhole(AF_INET, hole);
    int good = listener(AF_INET, 16);
    int good_port = port_of_fd(good, false);
    tapio_address addrs[2] = {inet_address(AF_INET, "127.0.0.1", hole_port),
                              inet_address(AF_INET, "127.0.0.1", good_port)};
    int fds_before = count_open_fds();
    double delay = 0.2;
    tapio_connect_options opts = {.happy_eyeballs = true,
                                  .happy_eyeballs_delay = delay};
    double start = monotonic_now();
    outcome o;
    run_request(loop, addrs, 2, &opts, &o);
    CHECK_ERR(o.err, 0);
    CHECK(o.fd >= 0);
    CHECK_EQ_INT(o.address, 1);
    CHECK_EQ_INT(port_of_fd(o.fd, true), good_port);
    CHECK(o.at - start >= delay * 0.9);
    CHECK(o.at - start < delay + 3);
    CHECK_EQ_INT(o.nerrors, 0);
    close(o.fd);
    /* The abandoned attempt's socket is gone. */
    CHECK_EQ_INT(count_open_fds(), fds_before);

    /* Without happy eyeballs the first attempt is still waiting. */
    tapio_connect_req *req;
    outcome slow = {.fd = -1};
    CHECK_OK(
        tapio_connect_socket(loop, addrs, 2, NULL, on_result, &slow, &req));
    run_for(loop, delay * 2);
    CHECK(!slow.done);
    tapio_connect_cancel(req);
    RUN_UNTIL(loop, slow.done, 5);
    CHECK_ERR(slow.err, -ECANCELED);
    CHECK_EQ_INT(count_open_fds(), fds_before);
    close(good);
    close_pair(hole);
}

/* A failure starts the next attempt at once, long before the delay. */
TEST(connect_socket_failure_starts_the_next_attempt_early)
{
    tapio_loop *loop = test_loop();
    int good = listener(AF_INET, 16);
    tapio_address addrs[2] = {
        inet_address(AF_INET, "127.0.0.1", free_tcp_port()),
        inet_address(AF_INET, "127.0.0.1", port_of_fd(good, false))};
    tapio_connect_options opts = {.happy_eyeballs = true,
                                  .happy_eyeballs_delay = 30};
    double start = monotonic_now();
    outcome o;
    run_request(loop, addrs, 2, &opts, &o);
    CHECK_ERR(o.err, 0);
    CHECK_EQ_INT(o.address, 1);
    CHECK(o.at - start < 5);
    CHECK_EQ_INT(o.nerrors, 1);
    CHECK_EQ_INT(o.errors[0].address, 0);
    CHECK_ERR(o.errors[0].err, -ECONNREFUSED);
    close(o.fd);
    close(good);
}

/* Local addresses: each attempt binds to the first of its family that
 * binds; failures are reported per local address, a family without any
 * local address as NO_LOCAL. */
TEST(connect_socket_reports_local_bind_failures_per_address)
{
    if (!ipv6_loopback_available())
        return;
    tapio_loop *loop = test_loop();
    int good = listener(AF_INET, 16);
    int good_port = port_of_fd(good, false);
    int busy = listener(AF_INET, 1); /* its address is in use */
    tapio_address locals[3] = {
        inet_address(AF_INET6, "::1", 0),
        inet_address(AF_INET, "127.0.0.1", port_of_fd(busy, false)),
        inet_address(AF_INET, "127.0.0.1", 0),
    };
    tapio_address target = inet_address(AF_INET, "127.0.0.1", good_port);
    tapio_connect_options opts = {.local_addrs = locals, .nlocal_addrs = 3};
    outcome o;
    run_request(loop, &target, 1, &opts, &o);
    CHECK_ERR(o.err, 0);
    CHECK(o.fd >= 0);
    CHECK_EQ_INT(o.nerrors, 1); /* the busy one, then the free one bound */
    CHECK_EQ_INT(o.errors[0].step, TAPIO_CONNECT_STEP_BIND);
    CHECK_EQ_INT(o.errors[0].local, 1);
    CHECK_ERR(o.errors[0].err, -EADDRINUSE);
    close(o.fd);

    /* Only the busy one: the attempt fails at bind, never connects. */
    opts.local_addrs = &locals[1];
    opts.nlocal_addrs = 1;
    run_request(loop, &target, 1, &opts, &o);
    CHECK_EQ_INT(o.fd, -1);
    CHECK_ERR(o.err, -EADDRINUSE);
    CHECK_EQ_INT(o.nerrors, 1);
    CHECK_EQ_INT(o.errors[0].step, TAPIO_CONNECT_STEP_BIND);
    CHECK_EQ_INT(o.errors[0].local, 0);

    /* Only an IPv6 one for an IPv4 address, then a v6 address that binds
     * and is refused: one error each, in attempt order. */
    tapio_address two[2] = {target,
                            inet_address(AF_INET6, "::1", free_tcp_port())};
    opts.local_addrs = locals;
    opts.nlocal_addrs = 1;
    run_request(loop, two, 2, &opts, &o);
    CHECK_EQ_INT(o.fd, -1);
    CHECK_EQ_INT(o.nerrors, 2);
    CHECK_EQ_INT(o.errors[0].step, TAPIO_CONNECT_STEP_NO_LOCAL);
    CHECK_EQ_INT(o.errors[0].address, 0);
    CHECK_EQ_INT(o.errors[1].step, TAPIO_CONNECT_STEP_CONNECTING);
    CHECK_EQ_INT(o.errors[1].address, 1);
    CHECK_ERR(o.errors[1].err, -ECONNREFUSED);
    close(busy);
    close(good);
}

/* Cancel while several attempts wait on silent addresses: every socket is
 * closed, the callback runs once with -ECANCELED, nothing runs later. */
TEST(connect_socket_cancel_closes_every_attempt)
{
    tapio_loop *loop = test_loop();
    int hole[2];
    int port = blackhole(AF_INET, hole);
    tapio_address addrs[3];
    for (int i = 0; i < 3; i++)
        addrs[i] = inet_address(AF_INET, "127.0.0.1", port);
    int fds_before = count_open_fds();
    tapio_connect_options opts = {.happy_eyeballs = true,
                                  .happy_eyeballs_delay = 0.05};
    tapio_connect_req *req;
    outcome o = {.fd = -1};
    CHECK_OK(tapio_connect_socket(loop, addrs, 3, &opts, on_result, &o, &req));
    run_for(loop, 0.3); /* all three in flight */
    CHECK(!o.done);
    CHECK_EQ_INT(count_open_fds(), fds_before + 3);
    tapio_connect_cancel(req);
    CHECK_EQ_INT(count_open_fds(), fds_before);
    CHECK(!o.done); /* from the loop, not inside cancel */
    RUN_UNTIL(loop, o.done, 5);
    CHECK_ERR(o.err, -ECANCELED);
    CHECK_EQ_INT(o.fd, -1);
    run_for(loop, 0.1);
    CHECK_EQ_INT(o.calls, 1);
    close_pair(hole);
}

/* A connection that succeeded but whose callback has not run yet is closed
 * by a cancel: the caller never gets the fd. */
TEST(connect_socket_cancel_after_success_closes_the_socket)
{
    tapio_loop *loop = test_loop();
    int good = listener(AF_INET, 16);
    tapio_address a =
        inet_address(AF_INET, "127.0.0.1", port_of_fd(good, false));
    int fds_before = count_open_fds();
    tapio_connect_req *req;
    outcome o = {.fd = -1};
    CHECK_OK(tapio_connect_socket(loop, &a, 1, NULL, on_result, &o, &req));
    /* Run until the socket connected (the callback is then queued). */
    for (int i = 0; i < 1000 && !o.done; i++) {
        tapio_loop_run_once(loop);
        if (o.done)
            break;
        int extra = count_open_fds() - fds_before;
        CHECK(extra <= 1);
        /* Cancel in the iteration that connected: it queued the callback. */
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int probe = accept(good, (struct sockaddr *)&ss, &len);
        if (probe >= 0) {
            close(probe);
            tapio_connect_cancel(req);
            break;
        }
    }
    RUN_UNTIL(loop, o.done, 5);
    CHECK_EQ_INT(o.calls, 1);
    if (o.fd >= 0) /* connected and reported before the cancel */
        close(o.fd);
    else
        CHECK_ERR(o.err, -ECANCELED);
    CHECK_EQ_INT(count_open_fds(), fds_before);
    close(good);
}

/* A request still in flight when the loop closes leaves no socket. */
TEST(connect_socket_loop_close_frees_pending_attempts)
{
    tapio_loop *loop = test_loop();
    int hole[2];
    int port = blackhole(AF_INET, hole);
    tapio_address a = inet_address(AF_INET, "127.0.0.1", port);
    int fds_before = count_open_fds();
    outcome o = {.fd = -1};
    CHECK_OK(tapio_connect_socket(loop, &a, 1, NULL, on_result, &o, NULL));
    run_for(loop, 0.05);
    test_loop_close();
    CHECK(!o.done);
    CHECK(count_open_fds() < fds_before + 1);
    close_pair(hole);
}

TEST(connect_socket_rejects_bad_arguments)
{
    tapio_loop *loop = test_loop();
    outcome o;
    tapio_address a = inet_address(AF_INET, "127.0.0.1", 1);
    CHECK_ERR(tapio_connect_socket(loop, &a, 0, NULL, on_result, &o, NULL),
              -EINVAL);
    CHECK_ERR(tapio_connect_socket(loop, &a, 1, NULL, NULL, &o, NULL), -EINVAL);
    tapio_connect_options opts = {.local_host = "127.0.0.1"};
    CHECK_ERR(tapio_connect_socket(loop, &a, 1, &opts, on_result, &o, NULL),
              -EINVAL);
}

/* tapio_connect resolves, then tries the addresses with the same options:
 * happy eyeballs to localhost on a port only IPv4 serves still connects. */
TEST(connect_with_happy_eyeballs_options)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    tapio_connect_options opts = {.happy_eyeballs = true,
                                  .happy_eyeballs_delay = 0.05};
    conn *c = conn_new();
    conn_connect(loop, c, "localhost", tapio_server_port(s), &opts);
    RUN_UNTIL(loop, c->connect_done, 10);
    CHECK_ERR(c->connect_err, 0);
    RUN_UNTIL(loop, c->made == 1, 5);

    /* Local addresses given resolved, as bindings pass them. */
    tapio_address local =
        inet_address(AF_INET, "127.0.0.1", free_tcp_port());
    tapio_connect_options bound = {.local_addrs = &local, .nlocal_addrs = 1};
    conn *c2 = conn_new();
    conn_connect(loop, c2, "127.0.0.1", tapio_server_port(s), &bound);
    RUN_UNTIL(loop, c2->connect_done, 10);
    CHECK_ERR(c2->connect_err, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_OK(tapio_transport_sockname(c2->t, &ss, &len));
    CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&ss)->sin_port),
                 ntohs(((struct sockaddr_in *)&local.addr)->sin_port));
}
