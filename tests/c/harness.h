/*
 * harness.h — a tiny test harness for libtapio's C tests.
 *
 * Every TEST(name) becomes its own process run: `tapio_tests NAME` runs one
 * test, `tapio_tests --list` lists them. A failed check prints file:line and
 * ends the process with status 1. Around each test the harness counts the
 * process's open fds and fails the test if any fd was left behind.
 *
 * A test gets its loop from test_loop(); the harness closes that loop after
 * the test (first dropping the references that conn objects hold), so tests
 * only close it themselves when they want to check something afterwards.
 */
#ifndef TAPIO_TEST_HARNESS_H
#define TAPIO_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tapio.h"

/* ---------------------------------------------------------------- tests */

typedef void (*test_fn)(void);
void harness_register(const char *name, test_fn fn);

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void register_##name(void)        \
    {                                                                     \
        harness_register(#name, test_##name);                             \
    }                                                                     \
    static void test_##name(void)

/* ----------------------------------------------------------- assertions */

__attribute__((noreturn, format(printf, 3, 4))) void
harness_fail(const char *file, int line, const char *fmt, ...);

#define FAIL(...) harness_fail(__FILE__, __LINE__, __VA_ARGS__)

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond))                                                      \
            FAIL("CHECK(%s) failed", #cond);                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                \
    do {                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);               \
        if (a_ != b_)                                                     \
            FAIL("%s == %s failed: %lld != %lld", #a, #b, a_, b_);        \
    } while (0)

/* For tapio calls that return 0 or a negative errno. */
#define CHECK_OK(expr)                                                    \
    do {                                                                  \
        int r_ = (expr);                                                  \
        if (r_ != 0)                                                      \
            FAIL("%s returned %d (%s)", #expr, r_, tapio_strerror(r_));   \
    } while (0)

/* `expr` must return the negative errno `want`. */
#define CHECK_ERR(expr, want)                                             \
    do {                                                                  \
        int r_ = (expr), w_ = (want);                                     \
        if (r_ != w_)                                                     \
            FAIL("%s returned %d (%s), expected %d (%s)", #expr, r_,      \
                 tapio_strerror(r_), w_, tapio_strerror(w_));             \
    } while (0)

#define CHECK_MEM_EQ(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

/* ------------------------------------------------------------- the loop */

/* The test's loop, created on first use with the harness's error handler. */
tapio_loop *test_loop(void);

/* Drop the conn references and close the test's loop now (CHECK_OK). */
void test_loop_close(void);

/* Errors the loop reported to its error handler so far, and the last one. */
int loop_error_count(void);
int loop_last_error(void);

/* Run `fn(arg)` after the loop closed, before the fd check. */
void at_cleanup(void (*fn)(void *), void *arg);

/* ------------------------------------------------------------- running */

double monotonic_now(void);

/*
 * RUN_UNTIL(loop, cond, seconds): run loop iterations until `cond` holds;
 * fail the test if it does not within `seconds`. A timer at the deadline
 * guarantees that an idle loop wakes up to notice the timeout.
 */
typedef struct waiter {
    tapio_loop *loop;
    tapio_handle *wake;
    double end;
} waiter;

void waiter_begin(waiter *w, tapio_loop *loop, double seconds);
void waiter_step(waiter *w, const char *what, const char *file, int line);
void waiter_end(waiter *w);

#define RUN_UNTIL(loop, cond, seconds)                                    \
    do {                                                                  \
        waiter w_;                                                        \
        waiter_begin(&w_, (loop), (seconds));                             \
        while (!(cond))                                                   \
            waiter_step(&w_, #cond, __FILE__, __LINE__);                  \
        waiter_end(&w_);                                                  \
    } while (0)

/* Keep the loop running for `seconds` (to see that something does NOT happen). */
void run_for(tapio_loop *loop, double seconds);

/* Run `n` iterations that poll I/O without sleeping. */
void run_briefly(tapio_loop *loop, int n);

/* ---------------------------------------------------------------- bytes */

typedef struct bytes {
    unsigned char *p;
    size_t len, cap;
} bytes;

void bytes_append(bytes *b, const void *data, size_t n);
void bytes_free(bytes *b);

/* A position-dependent byte pattern, so that lost or reordered bytes show. */
void pattern_fill(void *buf, size_t offset, size_t len);
bool pattern_check(const void *buf, size_t offset, size_t len);
unsigned char *pattern_new(size_t len); /* filled from offset 0; free() it */

/* ----------------------------------------------- conn: a recording protocol */

/*
 * conn records everything its transport reports and checks asyncio's
 * ordering rules on the way: connection_made once and first, nothing after
 * connection_lost, no data after EOF, pause/resume_writing alternating.
 * It holds a reference to its transport, dropped by the harness.
 */
typedef struct conn {
    tapio_transport *t;
    int made, eofs, lost, pauses, resumes;
    int lost_err;          /* err passed to connection_lost */
    bool paused;           /* between pause_writing and resume_writing */
    bool echo;             /* write back what arrives */
    bool keep_open;        /* what eof_received returns */
    size_t close_after;    /* close once this many bytes arrived (0: never) */
    bytes rx;              /* everything received, in order */
    size_t rx_at_eof;      /* rx.len when eof_received ran */
    size_t size_at_resume; /* write buffer size when resume_writing ran */
    bool connect_done;     /* the tapio_connect callback ran */
    int connect_err;
} conn;

extern const tapio_protocol conn_protocol;

conn *conn_new(void);
/* A zeroed conn of `size` bytes, for structs that start with a conn. */
conn *conn_alloc(size_t size);
/* Make `c` hold a reference to `t` (for protocols switched in by hand). */
void conn_adopt(conn *c, tapio_transport *t);

/* conn_protocol's callbacks, for tables that extend it. */
void conn_on_made(tapio_transport *t, void *user);
void conn_on_data(tapio_transport *t, const void *data, size_t len, void *user);
bool conn_on_eof(tapio_transport *t, void *user);
void conn_on_lost(tapio_transport *t, int err, void *user);
void conn_on_pause(tapio_transport *t, void *user);
void conn_on_resume(tapio_transport *t, void *user);
/* A tapio_connect_callback whose arg is the conn. */
void conn_on_connected(tapio_transport *t, int err, void *arg);

/* Wrap a connected socket with `proto` (user = c) and wait for connection_made. */
void conn_wrap(tapio_loop *loop, int fd, const tapio_protocol *proto, conn *c);
/* conn_wrap with a new conn and conn_protocol. */
conn *conn_wrap_fd(tapio_loop *loop, int fd);
/* A conn on one end of a socket_pair(); the raw other end goes to *peer. */
conn *conn_with_raw_peer(tapio_loop *loop, int domain, int *peer);

/* Start connecting `c` to host:port (with conn_protocol). */
void conn_connect(tapio_loop *loop, conn *c, const char *host, int port,
                  const tapio_connect_options *opts);
/* The same with `proto` (user = c, a struct that starts with a conn); the
 * request goes to *req unless req is NULL. */
void conn_connect_with(tapio_loop *loop, conn *c, const tapio_protocol *proto,
                       const char *host, int port,
                       const tapio_connect_options *opts, tapio_connect_req **req);

/* Connect to host:port and wait until connected; fails the test on error. */
conn *connect_tcp(tapio_loop *loop, const char *host, int port);
/* The same for a Unix socket (path_len 0: strlen(path)). */
conn *connect_unix(tapio_loop *loop, const char *path, size_t path_len);

/* -------------------------------------------------------------- servers */

/* A protocol factory that hands out a new conn per accepted connection. */
typedef struct acceptor {
    bool echo, keep_open; /* copied into each conn */
    size_t n, cap;
    conn **conns;
} acceptor;

acceptor *acceptor_new(void);
const tapio_protocol *acceptor_factory(tapio_server *s, void *arg, void **user);

/* Listen on host (e.g. "127.0.0.1") at a free port; opts may be NULL. */
tapio_server *listen_tcp(tapio_loop *loop, const char *host, acceptor *acc,
                         const tapio_server_options *opts);

/*
 * Run the loop until the server side of the connection whose client end is
 * the socket client_fd (found by its peer address) ran connection_made;
 * returns that conn.
 */
conn *wait_served(tapio_loop *loop, acceptor *acc, int client_fd);

/*
 * Connect a conn to the server's port on 127.0.0.1 and wait until the
 * server side of that connection (wait_served) ran connection_made too.
 */
void connect_pair(tapio_loop *loop, tapio_server *s, acceptor *acc,
                  conn **client, conn **served);

/* ---------------------------------------------------------- raw sockets */

/* A connected pair: socketpair() for AF_UNIX, a TCP connection over 127.0.0.1 for AF_INET. */
void socket_pair(int domain, int fds[2]);
void set_nonblocking(int fd);
int free_tcp_port(void);
bool ipv6_loopback_available(void);
/* "/tmp/tapio-test-<pid>-<tag>.sock" */
void unix_path(char *buf, size_t size, const char *tag);
int count_open_fds(void);
int highest_open_fd(void);
/* Run the loop until exactly n bytes arrived on the raw socket fd. */
void recv_exactly(tapio_loop *loop, int fd, void *buf, size_t n);
/* Run the loop until the raw socket fd reads EOF (no data before it). */
void expect_eof(tapio_loop *loop, int fd);
/* Run the loop while writing all of data to the raw socket fd. */
void send_all(tapio_loop *loop, int fd, const void *data, size_t n);

/* ------------------------------------------- sink: read a raw fd in the loop */

/*
 * Reads a raw socket from a loop watcher, checking the bytes against the
 * pattern (or keeping them, for recv_exactly and expect_eof).
 */
typedef struct sink {
    tapio_loop *loop;
    int fd;
    size_t total; /* bytes read */
    bool done;    /* EOF or error seen; the watcher is gone */
    int err;      /* negative errno if reading failed */
    bytes *keep;  /* if set, store the bytes instead of checking them */
} sink;

void sink_start(tapio_loop *loop, sink *s, int fd);
void sink_stop(sink *s);

#endif
