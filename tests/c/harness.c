/* harness.c — registry, assertions, fd accounting and shared helpers. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "harness.h"

#include <signal.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A test that hangs despite the deadlines in RUN_UNTIL is killed by SIGALRM. */
#define TEST_ALARM_SECONDS 150
#define MAX_TESTS 512
#define MAX_FDS 4096

/* ---------------------------------------------------------------- tests */

struct test {
    const char *name;
    test_fn fn;
};

static struct test tests[MAX_TESTS];
static size_t ntests;

void harness_register(const char *name, test_fn fn)
{
    for (size_t i = 0; i < ntests; i++) {
        if (strcmp(tests[i].name, name) == 0) {
            fprintf(stderr, "duplicate test name %s\n", name);
            abort();
        }
    }
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests; raise MAX_TESTS\n");
        abort();
    }
    tests[ntests++] = (struct test){name, fn};
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    /* _exit: skip LeakSanitizer, whose report would only bury the failure. */
    _exit(1);
}

/* ---------------------------------------------------- per-test resources */

static tapio_loop *the_loop;
static const char *backend_name = "none";
static int error_count, last_error;

static conn **conns;
static size_t nconns, conns_cap;

struct cleanup {
    void (*fn)(void *);
    void *arg;
};
static struct cleanup *cleanups;
static size_t ncleanups, cleanups_cap;

static void *grow(void *array, size_t *cap, size_t elem_size)
{
    *cap = *cap ? *cap * 2 : 16;
    void *p = realloc(array, *cap * elem_size);
    CHECK(p != NULL);
    return p;
}

void at_cleanup(void (*fn)(void *), void *arg)
{
    if (ncleanups == cleanups_cap)
        cleanups = grow(cleanups, &cleanups_cap, sizeof *cleanups);
    cleanups[ncleanups++] = (struct cleanup){fn, arg};
}

static void on_loop_error(tapio_loop *loop, const char *message, int err,
                          void *arg)
{
    (void)loop;
    (void)arg;
    error_count++;
    last_error = err;
    fprintf(stderr, "[loop error handler] %s: %d (%s)\n", message, err,
            tapio_strerror(err));
}

int loop_error_count(void) { return error_count; }
int loop_last_error(void) { return last_error; }

tapio_loop *test_loop(void)
{
    if (the_loop)
        return the_loop;
    CHECK_OK(tapio_loop_new(&the_loop));
    tapio_loop_set_error_handler(the_loop, on_loop_error, NULL);
    backend_name = tapio_loop_backend(the_loop);
    /* The suite runs once per backend: make sure the switch really works. */
    const char *wanted = getenv("TAPIO_BACKEND");
    if (wanted && *wanted)
        CHECK(strcmp(backend_name, wanted) == 0);
    return the_loop;
}

void test_loop_close(void)
{
    for (size_t i = 0; i < nconns; i++) {
        if (conns[i]->t) {
            tapio_transport_unref(conns[i]->t);
            conns[i]->t = NULL;
        }
    }
    if (the_loop) {
        CHECK_OK(tapio_loop_close(the_loop));
        the_loop = NULL;
    }
}

static void free_test_resources(void)
{
    test_loop_close();
    for (size_t i = 0; i < ncleanups; i++)
        cleanups[i].fn(cleanups[i].arg);
    for (size_t i = 0; i < nconns; i++) {
        bytes_free(&conns[i]->rx);
        free(conns[i]);
    }
    free(conns);
    free(cleanups);
}

/* ------------------------------------------------------------- running */

double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void noop(tapio_loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void set_flag(tapio_loop *loop, void *arg)
{
    (void)loop;
    *(bool *)arg = true;
}

static void on_waiter_deadline(tapio_loop *loop, void *arg)
{
    (void)loop;
    ((waiter *)arg)->end = 0; /* expire now, whatever the clocks say */
}

void waiter_begin(waiter *w, tapio_loop *loop, double seconds)
{
    w->loop = loop;
    w->end = monotonic_now() + seconds;
    w->wake = tapio_call_later(loop, seconds, on_waiter_deadline, w);
    CHECK(w->wake != NULL);
    tapio_handle_ref(w->wake);
}

void waiter_step(waiter *w, const char *what, const char *file, int line)
{
    if (monotonic_now() > w->end)
        harness_fail(file, line, "timed out waiting for %s", what);
    int r = tapio_loop_run_once(w->loop);
    if (r != 0)
        harness_fail(file, line, "tapio_loop_run_once: %s",
                     tapio_strerror(r));
}

void waiter_end(waiter *w)
{
    tapio_handle_cancel(w->wake);
    tapio_handle_unref(w->wake);
}

void run_for(tapio_loop *loop, double seconds)
{
    bool done = false;
    CHECK(tapio_call_later(loop, seconds, set_flag, &done) != NULL);
    RUN_UNTIL(loop, done, seconds + 10);
}

void run_briefly(tapio_loop *loop, int n)
{
    for (int i = 0; i < n; i++) {
        /* A ready callback makes run_once poll without blocking. */
        CHECK(tapio_call_soon(loop, noop, NULL) != NULL);
        CHECK_OK(tapio_loop_run_once(loop));
    }
}

/* ---------------------------------------------------------------- bytes */

void bytes_append(bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void bytes_free(bytes *b)
{
    free(b->p);
    *b = (bytes){0};
}

static unsigned char pattern_at(size_t i)
{
    /* Period 251 (prime) mixed with a slow counter: a shift shows. */
    return (unsigned char)((i % 251) ^ (i >> 12));
}

void pattern_fill(void *buf, size_t offset, size_t len)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = pattern_at(offset + i);
}

bool pattern_check(const void *buf, size_t offset, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_at(offset + i))
            return false;
    return true;
}

unsigned char *pattern_new(size_t len)
{
    unsigned char *p = malloc(len);
    CHECK(p != NULL);
    pattern_fill(p, 0, len);
    return p;
}

/* ----------------------------------------------------------------- conn */

conn *conn_alloc(size_t size)
{
    CHECK(size >= sizeof(conn));
    conn *c = calloc(1, size);
    CHECK(c != NULL);
    if (nconns == conns_cap)
        conns = grow(conns, &conns_cap, sizeof *conns);
    conns[nconns++] = c;
    return c;
}

conn *conn_new(void) { return conn_alloc(sizeof(conn)); }

void conn_adopt(conn *c, tapio_transport *t)
{
    CHECK(c->t == NULL);
    tapio_transport_ref(t);
    c->t = t;
}

void conn_on_made(tapio_transport *t, void *user)
{
    conn *c = user;
    CHECK_EQ_INT(c->made, 0);
    CHECK_EQ_INT(c->lost, 0);
    c->made++;
    conn_adopt(c, t);
}

void conn_on_data(tapio_transport *t, const void *data, size_t len, void *user)
{
    conn *c = user;
    CHECK(t == c->t);
    CHECK_EQ_INT(c->lost, 0);
    CHECK_EQ_INT(c->eofs, 0);
    CHECK(len > 0);
    bytes_append(&c->rx, data, len);
    if (c->echo)
        CHECK_OK(tapio_transport_write(t, data, len));
    if (c->close_after && c->rx.len >= c->close_after)
        tapio_transport_close(t);
}

bool conn_on_eof(tapio_transport *t, void *user)
{
    conn *c = user;
    CHECK(t == c->t);
    CHECK_EQ_INT(c->lost, 0);
    CHECK_EQ_INT(c->eofs, 0);
    c->eofs++;
    c->rx_at_eof = c->rx.len;
    return c->keep_open;
}

void conn_on_lost(tapio_transport *t, int err, void *user)
{
    conn *c = user;
    CHECK(t == c->t);
    CHECK_EQ_INT(c->lost, 0);
    c->lost++;
    c->lost_err = err;
}

void conn_on_pause(tapio_transport *t, void *user)
{
    conn *c = user;
    CHECK(t == c->t);
    CHECK_EQ_INT(c->lost, 0);
    CHECK(!c->paused);
    c->paused = true;
    c->pauses++;
}

void conn_on_resume(tapio_transport *t, void *user)
{
    conn *c = user;
    CHECK(t == c->t);
    CHECK_EQ_INT(c->lost, 0);
    CHECK(c->paused);
    c->paused = false;
    c->resumes++;
    c->size_at_resume = tapio_transport_get_write_buffer_size(t);
}

const tapio_protocol conn_protocol = {
    .connection_made = conn_on_made,
    .data_received = conn_on_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
    .pause_writing = conn_on_pause,
    .resume_writing = conn_on_resume,
};

void conn_on_connected(tapio_transport *t, int err, void *arg)
{
    conn *c = arg;
    CHECK(!c->connect_done);
    c->connect_done = true;
    c->connect_err = err;
    if (err == 0) {
        /* connection_made has already run for this transport. */
        CHECK(t != NULL && t == c->t);
        CHECK_EQ_INT(c->made, 1);
    } else {
        CHECK(t == NULL);
        CHECK_EQ_INT(c->made, 0);
    }
}

void conn_wrap(tapio_loop *loop, int fd, const tapio_protocol *proto, conn *c)
{
    tapio_transport *t = NULL;
    CHECK_OK(tapio_transport_from_fd(loop, fd, proto, c, &t));
    RUN_UNTIL(loop, c->made, 5);
    CHECK(c->t == t);
}

conn *conn_wrap_fd(tapio_loop *loop, int fd)
{
    conn *c = conn_new();
    conn_wrap(loop, fd, &conn_protocol, c);
    return c;
}

conn *conn_with_raw_peer(tapio_loop *loop, int domain, int *peer)
{
    int fds[2];
    socket_pair(domain, fds);
    *peer = fds[1];
    return conn_wrap_fd(loop, fds[0]);
}

void conn_connect_with(tapio_loop *loop, conn *c, const tapio_protocol *proto,
                       const char *host, int port,
                       const tapio_connect_options *opts, tapio_connect_req **req)
{
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", port);
    CHECK_OK(tapio_connect(loop, host, port_str, opts, proto, c,
                           conn_on_connected, c, req));
}

void conn_connect(tapio_loop *loop, conn *c, const char *host, int port,
                  const tapio_connect_options *opts)
{
    conn_connect_with(loop, c, &conn_protocol, host, port, opts, NULL);
}

conn *connect_tcp(tapio_loop *loop, const char *host, int port)
{
    conn *c = conn_new();
    conn_connect(loop, c, host, port, NULL);
    RUN_UNTIL(loop, c->connect_done, 10);
    CHECK_ERR(c->connect_err, 0);
    return c;
}

conn *connect_unix(tapio_loop *loop, const char *path, size_t path_len)
{
    conn *c = conn_new();
    CHECK_OK(tapio_connect_unix(loop, path, path_len, &conn_protocol, c,
                                conn_on_connected, c, NULL));
    RUN_UNTIL(loop, c->connect_done, 10);
    CHECK_ERR(c->connect_err, 0);
    return c;
}

/* -------------------------------------------------------------- servers */

static void acceptor_free(void *arg)
{
    acceptor *acc = arg;
    free(acc->conns);
    free(acc);
}

acceptor *acceptor_new(void)
{
    acceptor *acc = calloc(1, sizeof *acc);
    CHECK(acc != NULL);
    at_cleanup(acceptor_free, acc);
    return acc;
}

const tapio_protocol *acceptor_factory(tapio_server *s, void *arg, void **user)
{
    (void)s;
    acceptor *acc = arg;
    conn *c = conn_new();
    c->echo = acc->echo;
    c->keep_open = acc->keep_open;
    if (acc->n == acc->cap)
        acc->conns = grow(acc->conns, &acc->cap, sizeof *acc->conns);
    acc->conns[acc->n++] = c;
    *user = c;
    return &conn_protocol;
}

tapio_server *listen_tcp(tapio_loop *loop, const char *host, acceptor *acc,
                         const tapio_server_options *opts)
{
    const char *hosts[] = {host, NULL};
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", opts, acceptor_factory,
                                 acc, &s));
    CHECK(tapio_server_port(s) > 0);
    return s;
}

static int addr_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return -1;
}

/* The accepted conn whose peer is at local port `port`, if made yet. */
static conn *find_served(const acceptor *acc, int port)
{
    for (size_t i = 0; i < acc->n; i++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof a;
        conn *c = acc->conns[i];
        if (c->made && !c->lost &&
            tapio_transport_peername(c->t, &a, &len) == 0 &&
            addr_port(&a) == port)
            return c;
    }
    return NULL;
}

conn *wait_served(tapio_loop *loop, acceptor *acc, int client_fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    CHECK(getsockname(client_fd, (struct sockaddr *)&a, &len) == 0);
    int port = addr_port(&a);
    conn *served;
    RUN_UNTIL(loop, (served = find_served(acc, port)) != NULL, 10);
    return served;
}

void connect_pair(tapio_loop *loop, tapio_server *s, acceptor *acc,
                  conn **client, conn **served)
{
    *client = connect_tcp(loop, "127.0.0.1", tapio_server_port(s));
    *served = wait_served(loop, acc, tapio_transport_fd((*client)->t));
}

/* ---------------------------------------------------------- raw sockets */

static struct sockaddr_in loopback4(int port)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int bound_tcp_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = loopback4(0);
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

void socket_pair(int domain, int fds[2])
{
    if (domain == AF_UNIX) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        return;
    }
    CHECK_EQ_INT(domain, AF_INET);
    int port;
    int lfd = bound_tcp_socket(&port);
    CHECK(listen(lfd, 1) == 0);
    struct sockaddr_in a = loopback4(port);
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fds[0] >= 0);
    CHECK(connect(fds[0], (struct sockaddr *)&a, sizeof a) == 0);
    fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fds[1] >= 0);
    close(lfd);
}

void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    CHECK(flags >= 0);
    CHECK(fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0);
}

int free_tcp_port(void)
{
    int port;
    close(bound_tcp_socket(&port));
    return port;
}

bool ipv6_loopback_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

void unix_path(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "/tmp/tapio-test-%d-%s.sock", (int)getpid(), tag);
}

/* Fills `fds` (up to max) with the open fd numbers; returns how many. */
static int fd_snapshot(int *fds, int max)
{
    DIR *dir = opendir("/proc/self/fd");
    CHECK(dir != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(dir))
            continue;
        if (n < max)
            fds[n] = fd;
        n++;
    }
    closedir(dir);
    return n;
}

int count_open_fds(void)
{
    int fds[MAX_FDS];
    return fd_snapshot(fds, MAX_FDS);
}

int highest_open_fd(void)
{
    int fds[MAX_FDS];
    int n = fd_snapshot(fds, MAX_FDS), max = -1;
    CHECK(n <= MAX_FDS);
    for (int i = 0; i < n; i++)
        if (fds[i] > max)
            max = fds[i];
    return max;
}

static bool contains(const int *fds, int n, int fd)
{
    for (int i = 0; i < n; i++)
        if (fds[i] == fd)
            return true;
    return false;
}

static void report_new_fds(const int *before, int nbefore)
{
    int after[MAX_FDS];
    int nafter = fd_snapshot(after, MAX_FDS);
    for (int i = 0; i < nafter && i < MAX_FDS; i++) {
        if (contains(before, nbefore, after[i]))
            continue;
        char link[64], target[256] = "?";
        snprintf(link, sizeof link, "/proc/self/fd/%d", after[i]);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 1] = '\0';
        fprintf(stderr, "  leaked fd %d -> %s\n", after[i], target);
    }
}

/* ------------------------------------------- sink: read a raw fd in the loop */

static void sink_take(sink *s, const unsigned char *data, size_t n)
{
    if (s->keep)
        bytes_append(s->keep, data, n);
    else if (!pattern_check(data, s->total, n))
        FAIL("sink: wrong bytes near offset %zu", s->total);
    s->total += n;
}

static void sink_on_readable(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    sink *s = arg;
    unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            sink_take(s, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        s->err = n < 0 ? -errno : 0;
        sink_stop(s);
        return;
    }
}

void sink_start(tapio_loop *loop, sink *s, int fd)
{
    *s = (sink){.loop = loop, .fd = fd};
    set_nonblocking(fd);
    CHECK_OK(tapio_add_reader(loop, fd, sink_on_readable, s));
}

void sink_stop(sink *s)
{
    if (s->done)
        return;
    s->done = true;
    CHECK(tapio_remove_reader(s->loop, s->fd));
}

void recv_exactly(tapio_loop *loop, int fd, void *buf, size_t n)
{
    bytes got = {0};
    sink s;
    sink_start(loop, &s, fd);
    s.keep = &got;
    RUN_UNTIL(loop, s.total >= n || s.done, 10);
    sink_stop(&s);
    CHECK_EQ_INT(s.total, n);
    memcpy(buf, got.p, n);
    bytes_free(&got);
}

void expect_eof(tapio_loop *loop, int fd)
{
    bytes got = {0};
    sink s;
    sink_start(loop, &s, fd);
    s.keep = &got;
    RUN_UNTIL(loop, s.done, 10);
    CHECK_ERR(s.err, 0);
    CHECK_EQ_INT(s.total, 0);
    bytes_free(&got);
}

struct sender {
    const unsigned char *data;
    size_t len, sent;
    bool failed;
};

static void on_send_ready(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    struct sender *s = arg;
    while (s->sent < s->len) {
        ssize_t n = send(fd, s->data + s->sent, s->len - s->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0)
            FAIL("send_all: %s", strerror(errno));
        s->sent += (size_t)n;
    }
}

void send_all(tapio_loop *loop, int fd, const void *data, size_t n)
{
    struct sender s = {.data = data, .len = n};
    set_nonblocking(fd);
    CHECK_OK(tapio_add_writer(loop, fd, on_send_ready, &s));
    RUN_UNTIL(loop, s.sent == s.len, 20);
    CHECK(tapio_remove_writer(loop, fd));
}

/* ----------------------------------------------------------------- main */

static const struct test *find_test(const char *name)
{
    for (size_t i = 0; i < ntests; i++)
        if (strcmp(tests[i].name, name) == 0)
            return &tests[i];
    return NULL;
}

static int run_test(const struct test *t)
{
    static int before[MAX_FDS];
    int nbefore = fd_snapshot(before, MAX_FDS);
    alarm(TEST_ALARM_SECONDS);
    t->fn();
    free_test_resources();
    int nafter = count_open_fds();
    if (nafter != nbefore) {
        report_new_fds(before, nbefore);
        FAIL("test %s changed the number of open fds: %d before, %d after",
             t->name, nbefore, nafter);
    }
    printf("PASS %s (%s)\n", t->name, backend_name);
    return 0;
}

int main(int argc, char **argv)
{
    /* Writes to pipes whose reader left must fail with EPIPE, not kill the
     * test: servers and Python run this way, and tapio.h asks for it. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < ntests; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s TEST_NAME | --list\n", argv[0]);
        return 2;
    }
    const struct test *t = find_test(argv[1]);
    if (!t) {
        fprintf(stderr, "no test named %s (see --list)\n", argv[1]);
        return 2;
    }
    return run_test(t);
}
