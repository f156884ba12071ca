/* test_server.c — servers (TCP and Unix) and outgoing connections. */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

static struct sockaddr_storage local_address(int fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    return a;
}

static int address_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    CHECK_EQ_INT(a->ss_family, AF_INET6);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static bool is_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
    return memcmp(&a6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0;
}

static int transport_local_port(tapio_transport *t)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    CHECK_OK(tapio_transport_sockname(t, &a, &len));
    return address_port(&a);
}

/* A raw TCP connection to 127.0.0.1:port; `wait`: a blocking connect. */
static int raw_connect(int port, bool wait)
{
    int flags = SOCK_STREAM | SOCK_CLOEXEC | (wait ? 0 : SOCK_NONBLOCK);
    int fd = socket(AF_INET, flags, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    CHECK(r == 0 || (!wait && (errno == EINPROGRESS || errno == ECONNREFUSED)));
    return fd;
}

static void count_call(tapio_loop *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

/* Echo one message through a connection and check it comes back. */
static void check_round_trip(tapio_loop *loop, conn *client)
{
    size_t before = client->rx.len;
    CHECK_OK(tapio_transport_write(client->t, "ping", 4));
    RUN_UNTIL(loop, client->rx.len == before + 4, 5);
    CHECK_MEM_EQ(client->rx.p + before, "ping", 4);
}

static void port_string(char *buf, size_t size, int port)
{
    snprintf(buf, size, "%d", port);
}

/* --------------------------------------------------------- TCP servers */

TEST(server_listens_on_a_free_port)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    CHECK(tapio_server_is_serving(s));
    CHECK(tapio_server_loop(s) == loop);
    int fd = -1;
    CHECK_EQ_INT(tapio_server_sockets(s, NULL, 0), 1);
    CHECK_EQ_INT(tapio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_storage a = local_address(fd);
    CHECK_EQ_INT(a.ss_family, AF_INET);
    CHECK_EQ_INT(address_port(&a), tapio_server_port(s));
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    check_round_trip(loop, client);
}

TEST(server_on_two_hosts_has_a_socket_each)
{
    tapio_loop *loop = test_loop();
    if (!ipv6_loopback_available()) {
        printf("note: ::1 unavailable here; two-host check not run\n");
        CHECK(listen_tcp(loop, "127.0.0.1", acceptor_new(), NULL) != NULL);
        return;
    }
    acceptor *acc = acceptor_new();
    acc->echo = true;
    const char *hosts[] = {"127.0.0.1", "::1", NULL};
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, acceptor_factory, acc, &s));
    int fds[4];
    CHECK_EQ_INT(tapio_server_sockets(s, fds, 4), 2);
    bool seen_v4 = false, seen_v6 = false;
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage a = local_address(fds[i]);
        CHECK_EQ_INT(address_port(&a), tapio_server_port(s)); /* one port */
        seen_v4 |= a.ss_family == AF_INET;
        seen_v6 |= a.ss_family == AF_INET6;
        if (a.ss_family == AF_INET6) {
            int v6only = 0;
            socklen_t len = sizeof v6only;
            CHECK(getsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0);
            CHECK(v6only);
        }
    }
    CHECK(seen_v4 && seen_v6);
    check_round_trip(loop, connect_tcp(loop, "::1", tapio_server_port(s)));
    check_round_trip(loop, connect_tcp(loop, "127.0.0.1", tapio_server_port(s)));
}

/* All interfaces: wildcard sockets, IPv6 too where the machine has it. */
static void check_all_interfaces(tapio_loop *loop, const char *const *hosts)
{
    acceptor *acc = acceptor_new();
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, acceptor_factory, acc, &s));
    int fds[4];
    size_t n = tapio_server_sockets(s, fds, 4);
    CHECK_EQ_INT(n, ipv6_loopback_available() ? 2 : 1);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage a = local_address(fds[i]);
        CHECK(is_wildcard(&a));
        CHECK_EQ_INT(address_port(&a), tapio_server_port(s));
    }
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    tapio_server_close(s, NULL, NULL);
}

TEST(server_without_hosts_listens_on_all_interfaces)
{
    tapio_loop *loop = test_loop();
    const char *empty_list[] = {NULL};
    const char *empty_host[] = {"", NULL};
    check_all_interfaces(loop, NULL);
    check_all_interfaces(loop, empty_list);
    check_all_interfaces(loop, empty_host);
}

TEST(reuse_port_lets_two_servers_share_a_port)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server_options opts = {.reuse_port = true};
    tapio_server *first = listen_tcp(loop, "127.0.0.1", acc, &opts);
    char port[16];
    port_string(port, sizeof port, tapio_server_port(first));
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *second = NULL, *third = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, port, &opts, acceptor_factory, acc, &second));
    CHECK_EQ_INT(tapio_server_port(second), tapio_server_port(first));
    /* Without reuse_port the port is taken. */
    CHECK_ERR(tapio_server_listen(loop, hosts, port, NULL, acceptor_factory, acc, &third),
              -EADDRINUSE);
    conn *client, *served;
    connect_pair(loop, first, acc, &client, &served);
}

TEST(no_start_serving_then_start_serving)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server_options opts = {.no_start_serving = true};
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, &opts);
    CHECK(!tapio_server_is_serving(s));
    int early = raw_connect(tapio_server_port(s), false);
    run_for(loop, 0.05);
    CHECK_EQ_INT(acc->n, 0); /* nothing accepted before start_serving */
    close(early);

    CHECK_OK(tapio_server_start_serving(s));
    CHECK_OK(tapio_server_start_serving(s)); /* idempotent */
    CHECK(tapio_server_is_serving(s));
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    check_round_trip(loop, client);
}

TEST(stop_serving_stops_accepting_only)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);

    tapio_server_stop_serving(s);
    CHECK(!tapio_server_is_serving(s));
    int waiting = raw_connect(tapio_server_port(s), false);
    run_for(loop, 0.1);
    CHECK_EQ_INT(acc->n, 1);
    check_round_trip(loop, client); /* the accepted connection lives on */
    close(waiting);

    CHECK_OK(tapio_server_start_serving(s));
    CHECK(tapio_server_is_serving(s));
    conn *client2, *served2;
    connect_pair(loop, s, acc, &client2, &served2);
    check_round_trip(loop, client2);
}

TEST(server_close_waits_for_its_connections)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    int port = tapio_server_port(s);
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);

    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    CHECK_EQ_INT(closed, 0);
    /* The listening socket is gone at once... */
    conn *refused = conn_new();
    conn_connect(loop, refused, "127.0.0.1", port, NULL);
    RUN_UNTIL(loop, refused->connect_done, 5);
    CHECK_ERR(refused->connect_err, -ECONNREFUSED);
    /* ...but the accepted connection still works, and on_closed waits. */
    check_round_trip(loop, client);
    run_for(loop, 0.05);
    CHECK_EQ_INT(closed, 0);

    tapio_transport_close(client->t);
    RUN_UNTIL(loop, closed == 1, 5);
    CHECK_EQ_INT(served->lost, 1);
    run_for(loop, 0.03);
    CHECK_EQ_INT(closed, 1);
}

/* As asyncio wakes wait_closed() from the last connection's
 * connection_lost: on_closed follows it in the same iteration. */
TEST(server_on_closed_runs_right_after_the_last_connection_lost)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    run_for(loop, 0.02);
    CHECK_EQ_INT(closed, 0);
    tapio_transport_close(served->t); /* connection_lost is due at once */
    CHECK_EQ_INT(tapio_loop_run_once(loop), 0);
    CHECK_EQ_INT(served->lost, 1);
    CHECK_EQ_INT(closed, 1);
    RUN_UNTIL(loop, client->lost, 5);
}

TEST(server_close_without_connections_calls_back_from_the_loop)
{
    tapio_loop *loop = test_loop();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acceptor_new(), NULL);
    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    CHECK_EQ_INT(closed, 0);
    RUN_UNTIL(loop, closed == 1, 5);
}

TEST(server_from_fds_serves_a_bound_socket)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct sockaddr_storage bound = local_address(fd);

    tapio_server *s = NULL;
    CHECK_OK(tapio_server_from_fds(loop, &fd, 1, NULL, acceptor_factory, acc, &s));
    int listed = -1;
    CHECK_EQ_INT(tapio_server_sockets(s, &listed, 1), 1);
    CHECK_EQ_INT(listed, fd);
    CHECK_EQ_INT(tapio_server_port(s), address_port(&bound));
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    check_round_trip(loop, client);
}

/* A listening socket other processes may share (a prefork server's, as
 * gunicorn hands its workers): a connection goes to a loop that runs,
 * never waits in one whose process is busy. Two loops stand for the two
 * processes; the first is never run again after it starts serving. */
TEST(server_from_fds_leaves_connections_to_a_loop_that_runs)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    int shared = dup(fd);
    CHECK(shared >= 0);

    tapio_loop *busy;
    CHECK_OK(tapio_loop_new(&busy));
    acceptor *busy_acc = acceptor_new();
    tapio_server *busy_server = NULL;
    CHECK_OK(tapio_server_from_fds(busy, &shared, 1, NULL, acceptor_factory,
                                   busy_acc, &busy_server));
    run_for(busy, 0.02); /* serving, then busy for good */

    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_from_fds(loop, &fd, 1, NULL, acceptor_factory, acc, &s));
    run_for(loop, 0.02);
    int client = raw_connect(tapio_server_port(s), true);
    RUN_UNTIL(loop, acc->n == 1, 5);
    close(client);
    CHECK_EQ_INT(busy_acc->n, 0);
    tapio_server_close(busy_server, NULL, NULL);
    CHECK_OK(tapio_loop_close(busy));
}

/* ------------------------------------------- binding given addresses */

static tapio_server_address loopback_address(struct sockaddr_in *a, int port)
{
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return (tapio_server_address){AF_INET, SOCK_STREAM, IPPROTO_TCP,
                                  (struct sockaddr *)a, sizeof *a};
}

static int sockopt(int fd, int level, int name)
{
    int value = -1;
    socklen_t len = sizeof value;
    CHECK(getsockopt(fd, level, name, &value, &len) == 0);
    return value;
}

/* Each address gets its own socket, bound exactly where asked: two
 * addresses of port 0 get two ports, as asyncio's create_server does. */
TEST(server_bind_listens_on_each_address_as_given)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    struct sockaddr_in a4, b4;
    tapio_server_address addrs[2] = {loopback_address(&a4, 0),
                                     loopback_address(&b4, 0)};
    tapio_server_options opts = {.keep_alive = true};
    tapio_server *s = NULL;
    size_t failed = 99;
    CHECK_OK(tapio_server_bind(loop, addrs, 2, &opts, acceptor_factory, acc,
                               &s, &failed));
    CHECK_EQ_INT(failed, 99); /* untouched on success */
    int fds[2];
    CHECK_EQ_INT(tapio_server_sockets(s, fds, 2), 2);
    struct sockaddr_storage first = local_address(fds[0]);
    struct sockaddr_storage second = local_address(fds[1]);
    CHECK(address_port(&first) != address_port(&second));
    for (int i = 0; i < 2; i++) {
        CHECK(sockopt(fds[i], SOL_SOCKET, SO_REUSEADDR) != 0);
        CHECK(sockopt(fds[i], SOL_SOCKET, SO_KEEPALIVE) != 0);
    }
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    check_round_trip(loop, client);
    CHECK(sockopt(tapio_transport_fd(served->t), SOL_SOCKET, SO_KEEPALIVE) != 0);
}

/* A bind that fails names its address and leaves nothing open. */
TEST(server_bind_reports_the_address_that_failed)
{
    tapio_loop *loop = test_loop();
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(busy, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(busy, 1) == 0);
    struct sockaddr_storage taken = local_address(busy);
    int fds_before = count_open_fds();

    struct sockaddr_in free4, used4;
    tapio_server_address addrs[2] = {
        loopback_address(&free4, 0),
        loopback_address(&used4, address_port(&taken))};
    tapio_server_options opts = {.no_reuse_address = true};
    tapio_server *s = NULL;
    size_t failed = 99;
    CHECK_ERR(tapio_server_bind(loop, addrs, 2, &opts, acceptor_factory,
                                acceptor_new(), &s, &failed),
              -EADDRINUSE);
    CHECK_EQ_INT(failed, 1);
    CHECK(s == NULL);
    CHECK_EQ_INT(count_open_fds(), fds_before);
    close(busy);
}

/* asyncio before 3.13 leaves a Unix server's socket file at close. */
TEST(unix_server_can_keep_its_socket_file)
{
    tapio_loop *loop = test_loop();
    char path[108];
    unix_path(path, sizeof path, "kept");
    tapio_server_options opts = {.keep_unix_socket_file = true};
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, path, 0, &opts, acceptor_factory,
                                      acceptor_new(), &s));
    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    RUN_UNTIL(loop, closed == 1, 5);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
    unlink(path);
}

/* A Unix socket the caller bound is cleaned up like one the server bound
 * (asyncio 3.13's create_unix_server(sock=..., cleanup_socket=True)). */
TEST(server_from_fds_removes_a_unix_socket_file_at_close)
{
    tapio_loop *loop = test_loop();
    char path[108];
    unix_path(path, sizeof path, "given");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_from_fds(loop, &fd, 1, NULL, acceptor_factory,
                                   acceptor_new(), &s));
    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    RUN_UNTIL(loop, closed == 1, 5);
    struct stat st;
    CHECK(stat(path, &st) != 0 && errno == ENOENT);
}

/* ------------------------------------------------- EMFILE on accept */

#define WAITING_CLIENTS 3
#define SPARE_FDS 8
#define MAX_FILLERS 256

static struct rlimit saved_nofile;

static void restore_nofile(void *arg)
{
    (void)arg;
    CHECK(setrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
}

/* Lower RLIMIT_NOFILE and open fds until none is left; returns how many. */
static int exhaust_fds(int *fillers)
{
    CHECK(getrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
    at_cleanup(restore_nofile, NULL);
    struct rlimit low = {(rlim_t)highest_open_fd() + 1 + SPARE_FDS,
                         saved_nofile.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    int n = 0;
    while (n < MAX_FILLERS) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            CHECK_EQ_INT(errno, EMFILE);
            return n;
        }
        fillers[n++] = fd;
    }
    FAIL("could not exhaust the fd table");
}

static bool all_echoed(const acceptor *acc, size_t n, size_t len)
{
    if (acc->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (acc->conns[i]->rx.len != len)
            return false;
    return true;
}

TEST(server_keeps_serving_after_emfile)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server_options opts = {.accept_retry_delay = 0.05};
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, &opts);
    int clients[WAITING_CLIENTS];
    for (int i = 0; i < WAITING_CLIENTS; i++) {
        /* Without running the loop: these wait in the backlog. */
        clients[i] = raw_connect(tapio_server_port(s), true);
        CHECK(send(clients[i], "hello", 5, 0) == 5);
    }
    int fillers[MAX_FILLERS];
    int nfillers = exhaust_fds(fillers);
    CHECK(nfillers >= WAITING_CLIENTS);

    int errors = loop_error_count();
    run_for(loop, 0.3);
    CHECK_EQ_INT(acc->n, 0);
    int reports = loop_error_count() - errors;
    CHECK(reports > 0 && reports <= 30); /* reported, and retried with back-off */
    CHECK_ERR(loop_last_error(), -EMFILE);

    for (int i = 0; i < nfillers; i++)
        close(fillers[i]);
    RUN_UNTIL(loop, all_echoed(acc, WAITING_CLIENTS, 5), 5);
    restore_nofile(NULL);
    for (int i = 0; i < WAITING_CLIENTS; i++) {
        char buf[5];
        recv_exactly(loop, clients[i], buf, 5);
        CHECK_MEM_EQ(buf, "hello", 5);
        close(clients[i]);
    }
    conn *client, *served;
    connect_pair(loop, s, acc, &client, &served);
    check_round_trip(loop, client);
}

/* ------------------------------------- accepting stopped and closed */

#define BURST_CLIENTS 5

/* acceptor_factory, and the server stopped (or closed) at the first
 * connection, while the others wait to be accepted. */
typedef struct stopping_acceptor {
    acceptor *acc;
    bool close_server;
} stopping_acceptor;

static const tapio_protocol *stopping_factory(tapio_server *s, void *arg,
                                              void **user)
{
    stopping_acceptor *sa = arg;
    const tapio_protocol *proto = acceptor_factory(s, sa->acc, user);
    if (sa->acc->n == 1 && sa->close_server)
        tapio_server_close(s, NULL, NULL);
    else if (sa->acc->n == 1)
        tapio_server_stop_serving(s);
    return proto;
}

static tapio_server *listen_stopping(tapio_loop *loop, stopping_acceptor *sa)
{
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, stopping_factory, sa,
                                 &s));
    run_for(loop, 0.02); /* accepting, and nobody there yet */
    return s;
}

/* Connected to the listening socket `listening` without running the
 * loop: all of them arrive at once. */
static void connect_burst(int listening, int *clients)
{
    struct sockaddr_storage to = local_address(listening);
    for (int i = 0; i < BURST_CLIENTS; i++) {
        clients[i] = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(clients[i] >= 0);
        CHECK(connect(clients[i], (struct sockaddr *)&to, sizeof to) == 0);
        CHECK(send(clients[i], "hello", 5, 0) == 5);
    }
}

static int first_socket(tapio_server *s)
{
    int fd;
    CHECK(tapio_server_sockets(s, &fd, 1) >= 1);
    return fd;
}

/* The connections the server had not taken when it stopped serving are
 * served when it starts again, from the loop, none lost (a backend that
 * had accepted them already keeps them until then). */
TEST(stop_serving_in_a_factory_keeps_the_others_for_later)
{
    tapio_loop *loop = test_loop();
    stopping_acceptor sa = {.acc = acceptor_new()};
    sa.acc->echo = true;
    tapio_server *s = listen_stopping(loop, &sa);
    int clients[BURST_CLIENTS];
    connect_burst(first_socket(s), clients);
    RUN_UNTIL(loop, sa.acc->n == 1, 5);
    run_for(loop, 0.2);
    CHECK_EQ_INT(sa.acc->n, 1);
    CHECK(!tapio_server_is_serving(s));

    CHECK_OK(tapio_server_start_serving(s));
    CHECK_EQ_INT(sa.acc->n, 1); /* no protocol factory inside the call */
    RUN_UNTIL(loop, all_echoed(sa.acc, BURST_CLIENTS, 5), 5);
    for (int i = 0; i < BURST_CLIENTS; i++) {
        char buf[5];
        recv_exactly(loop, clients[i], buf, 5);
        CHECK_MEM_EQ(buf, "hello", 5);
        close(clients[i]);
    }
}

/* Closing the server with connections still arriving: those it had not
 * taken end (reset, or EOF), and no fd of theirs is left open. */
TEST(server_close_in_a_factory_leaves_no_fd_of_the_others)
{
    tapio_loop *loop = test_loop();
    int fds_before = count_open_fds();
    stopping_acceptor sa = {.acc = acceptor_new(), .close_server = true};
    tapio_server *s = listen_stopping(loop, &sa);
    int clients[BURST_CLIENTS];
    connect_burst(first_socket(s), clients);
    RUN_UNTIL(loop, sa.acc->n == 1, 5);
    run_for(loop, 0.2);
    CHECK_EQ_INT(sa.acc->n, 1);
    tapio_transport_close(sa.acc->conns[0]->t);
    run_for(loop, 0.05);
    for (int i = 0; i < BURST_CLIENTS; i++) {
        struct pollfd ended = {.fd = clients[i], .events = POLLIN};
        CHECK(poll(&ended, 1, 5000) == 1);
        char buf[8];
        ssize_t n = recv(clients[i], buf, sizeof buf, 0);
        CHECK(n == 0 || (n < 0 && errno == ECONNRESET)); /* ended, no hang */
        close(clients[i]);
    }
    CHECK_EQ_INT(count_open_fds(), fds_before);
}

/* The loop closed right after its server, with connections arriving at
 * its second socket: the first one's removal may have them accepted, and
 * none of them stays open in the process. */
TEST(loop_close_after_server_close_leaves_no_fd)
{
    int fds_before = count_open_fds();
    tapio_loop *loop;
    CHECK_OK(tapio_loop_new(&loop));
    acceptor *acc = acceptor_new();
    const char *hosts[] = {"127.0.0.1", "127.0.0.2", NULL};
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, acceptor_factory, acc,
                                 &s));
    int listening[2];
    CHECK_EQ_INT(tapio_server_sockets(s, listening, 2), 2);
    run_for(loop, 0.02);
    int clients[BURST_CLIENTS];
    connect_burst(listening[1], clients);
    tapio_server_close(s, NULL, NULL);
    CHECK_OK(tapio_loop_close(loop));
    for (int i = 0; i < BURST_CLIENTS; i++)
        close(clients[i]);
    CHECK_EQ_INT(acc->n, 0);
    CHECK_EQ_INT(count_open_fds(), fds_before);
}

/* -------------------------------------------------------- Unix servers */

static void make_stale_socket_file(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    close(fd); /* the file stays, with nobody listening */
}

TEST(unix_server_replaces_a_stale_socket_file)
{
    tapio_loop *loop = test_loop();
    char path[108];
    unix_path(path, sizeof path, "stale");
    make_stale_socket_file(path);
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, path, 0, NULL, acceptor_factory, acc, &s));
    CHECK_EQ_INT(tapio_server_port(s), 0);
    conn *client = connect_unix(loop, path, 0);
    check_round_trip(loop, client);

    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    tapio_transport_close(client->t);
    RUN_UNTIL(loop, closed == 1, 5);
    struct stat st;
    CHECK(stat(path, &st) != 0 && errno == ENOENT); /* removed on close */
}

/* A socket file that took the server's path meanwhile is not removed at
 * close (asyncio 3.13's cleanup_socket compares the inode too). */
TEST(unix_server_close_keeps_a_socket_file_that_replaced_its_own)
{
    tapio_loop *loop = test_loop();
    char path[108];
    unix_path(path, sizeof path, "replaced");
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, path, 0, NULL, acceptor_factory,
                                      acceptor_new(), &s));
    make_stale_socket_file(path); /* unlinks ours, binds another */
    int closed = 0;
    tapio_server_close(s, count_call, &closed);
    RUN_UNTIL(loop, closed == 1, 5);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
    unlink(path);
}

/* Only a socket file counts as stale; anything else is not removed. */
TEST(unix_server_does_not_remove_a_regular_file)
{
    tapio_loop *loop = test_loop();
    char path[108];
    unix_path(path, sizeof path, "regular");
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    tapio_server *s = NULL;
    CHECK_ERR(tapio_server_listen_unix(loop, path, 0, NULL, acceptor_factory,
                                       acceptor_new(), &s),
              -EADDRINUSE);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    unlink(path);
}

TEST(unix_server_on_an_abstract_name)
{
    tapio_loop *loop = test_loop();
    char name[64] = {0};
    snprintf(name + 1, sizeof name - 1, "tapio-test-%d", (int)getpid());
    size_t len = 1 + strlen(name + 1);
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen_unix(loop, name, len, NULL, acceptor_factory, acc, &s));
    int fd = -1;
    CHECK_EQ_INT(tapio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_un a;
    socklen_t alen = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    CHECK_EQ_INT(alen, offsetof(struct sockaddr_un, sun_path) + len);
    CHECK_MEM_EQ(a.sun_path, name, len);
    check_round_trip(loop, connect_unix(loop, name, len));
}

/* ------------------------------------------------------------ connect */

TEST(connect_to_a_closed_port_is_refused)
{
    tapio_loop *loop = test_loop();
    conn *c = conn_new();
    conn_connect(loop, c, "127.0.0.1", free_tcp_port(), NULL);
    RUN_UNTIL(loop, c->connect_done, 10);
    CHECK_ERR(c->connect_err, -ECONNREFUSED);
    CHECK_EQ_INT(c->made, 0);
}

/* A name the resolver rejects is an EAI error, not an errno: here an unknown
 * service name, which fails from /etc/services without any network. */
TEST(connect_reports_name_resolution_failures_as_eai)
{
    tapio_loop *loop = test_loop();
    conn *c = conn_new();
    CHECK_OK(tapio_connect(loop, "127.0.0.1", "no-such-tapio-service", NULL,
                           &conn_protocol, c, conn_on_connected, c, NULL));
    RUN_UNTIL(loop, c->connect_done, 10);
    CHECK(tapio_error_is_eai(c->connect_err));
    CHECK_EQ_INT(tapio_error_eai(c->connect_err), EAI_SERVICE);
    CHECK(strcmp(tapio_strerror(c->connect_err), gai_strerror(EAI_SERVICE)) ==
          0);
    CHECK(!tapio_error_is_eai(-ECONNREFUSED));
    CHECK_EQ_INT(c->made, 0);
}

/* The error comes from the call or from the callback, never from both. */
TEST(connect_unix_to_a_missing_path_fails)
{
    tapio_loop *loop = test_loop();
    char path[108];
    unix_path(path, sizeof path, "missing");
    conn *c = conn_new();
    int err = tapio_connect_unix(loop, path, 0, &conn_protocol, c,
                                 conn_on_connected, c, NULL);
    if (err == 0) {
        RUN_UNTIL(loop, c->connect_done, 5);
        err = c->connect_err;
    } else {
        run_briefly(loop, 3);
        CHECK(!c->connect_done);
    }
    CHECK_ERR(err, -ENOENT);
}

TEST(connect_resolves_localhost)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    conn *client = connect_tcp(loop, "localhost", tapio_server_port(s));
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    CHECK_OK(tapio_transport_peername(client->t, &a, &len));
    CHECK_EQ_INT(a.ss_family, AF_INET);
    CHECK_EQ_INT(address_port(&a), tapio_server_port(s));
    check_round_trip(loop, client);
}

TEST(connect_binds_the_local_address)
{
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    int local_port = free_tcp_port();
    char local_port_str[16];
    port_string(local_port_str, sizeof local_port_str, local_port);
    tapio_connect_options opts = {.local_host = "127.0.0.1",
                                  .local_port = local_port_str};
    conn *c = conn_new();
    conn_connect(loop, c, "127.0.0.1", tapio_server_port(s), &opts);
    RUN_UNTIL(loop, c->connect_done, 10);
    CHECK_ERR(c->connect_err, 0);
    CHECK_EQ_INT(transport_local_port(c->t), local_port);
    RUN_UNTIL(loop, acc->n == 1 && acc->conns[0]->made, 5);
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    CHECK_OK(tapio_transport_peername(acc->conns[0]->t, &peer, &len));
    CHECK_EQ_INT(address_port(&peer), local_port);
}

/* Cancel at once; a connection the server may have accepted must close. */
static void check_cancel(tapio_loop *loop, const char *host)
{
    acceptor *acc = acceptor_new();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    char port[16];
    port_string(port, sizeof port, tapio_server_port(s));
    conn *c = conn_new();
    tapio_connect_req *req = NULL;
    CHECK_OK(tapio_connect(loop, host, port, NULL, &conn_protocol, c,
                           conn_on_connected, c, &req));
    CHECK(req != NULL);
    tapio_connect_cancel(req);
    RUN_UNTIL(loop, c->connect_done, 5);
    CHECK_ERR(c->connect_err, -ECANCELED);
    run_for(loop, 0.1);
    for (size_t i = 0; i < acc->n; i++)
        RUN_UNTIL(loop, acc->conns[i]->lost, 5);
    tapio_server_close(s, NULL, NULL);
}

TEST(connect_cancel_reports_ecanceled)
{
    tapio_loop *loop = test_loop();
    check_cancel(loop, "127.0.0.1");
}

TEST(connect_cancel_while_resolving)
{
    tapio_loop *loop = test_loop();
    check_cancel(loop, "localhost");
}
