/*
 * test_faults.c — libtapio under failing syscalls and allocations.
 *
 * Each test runs one scenario (a TCP echo, a TLS echo, a sendfile, a UDP
 * echo, a subprocess, a new loop) again and again, with one call of libtapio
 * (faults.h: accept4, read, send, ..., malloc) failing at its n-th use, for
 * n = 1, 2, ... until the scenario completes without reaching the fault.
 * After each run:
 *   - the scenario ended (no hang), and the injected errno reached the user
 *     through a return value or a callback (connection_lost, the connect
 *     callback, error_received, the loop's error handler for the accept
 *     back-off, ...), unless the call has a documented silent fallback;
 *     every other error seen is a consequence of it (the peer's reset);
 *   - the same loop then serves a fresh scenario without any fault;
 *   - once the loop is closed, the process has the fds it had before.
 * LeakSanitizer (the suite runs under ASan) checks the memory at exit.
 *
 * FAULTS_CALL=name and FAULTS_N=n run one combination (for debugging);
 * FAULTS_VERBOSE=1 prints each run's outcome.
 */
#define _GNU_SOURCE
#include "faults.h"
#include "harness.h"
#include "tls_certs.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

/* A scenario that still reaches the fault after this many calls is stuck. */
#define MAX_N 3000
#define SCENARIO_SECONDS 10.0

/* ------------------------------------------------------------ outcomes */

#define MAX_ERRS 32

typedef struct outcome {
    int n;
    int err[MAX_ERRS];
    const char *where[MAX_ERRS];
    bool ok; /* the scenario's full round trip happened */
    /* The fault ended a served TLS connection in its handshake: asyncio
     * closes such a connection quietly (its error goes to the exception
     * handler only in debug mode), so only the client's error shows. */
    bool quiet;
} outcome;

static outcome *current;    /* where the loop's error handler records */
static char context[160];   /* the combination running, for failures */
static bool verbose;
static unsigned combinations; /* (call, n) runs whose fault fired */

static void note(outcome *o, const char *where, int err)
{
    if (err == 0)
        return;
    if (o->n < MAX_ERRS) {
        o->err[o->n] = err;
        o->where[o->n] = where;
    }
    o->n++;
}

static bool seen(const outcome *o, int err)
{
    for (int i = 0; i < o->n && i < MAX_ERRS; i++)
        if (o->err[i] == err)
            return true;
    return false;
}

static void print_outcome(const outcome *o, bool fired)
{
    fprintf(stderr, "%s: %s%s", context, fired ? "fired" : "not reached",
            o->ok ? ", completed" : "");
    for (int i = 0; i < o->n && i < MAX_ERRS; i++)
        fprintf(stderr, ", %s %s", o->where[i], tapio_strerror(o->err[i]));
    fputc('\n', stderr);
}

static void on_loop_error(tapio_loop *loop, const char *message, int err,
                          void *arg)
{
    (void)loop;
    (void)arg;
    (void)message;
    if (current)
        note(current, "error handler", err ? err : -EIO);
}

/* ------------------------------------------------- a loop with a ticker */

/*
 * The loop wakes every 5 ms from a timerfd watched before any fault is
 * armed, so that running it allocates nothing of the test's own and a hung
 * scenario is noticed at its deadline.
 */
typedef struct bench {
    tapio_loop *loop;
    int tick_fd;
    void (*step)(void *); /* run after every iteration */
    void *arg;
} bench;

static void on_tick(tapio_loop *loop, int fd, void *arg)
{
    (void)loop;
    (void)arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        FAIL("timerfd read: %s", strerror(errno));
}

static void bench_open(bench *b)
{
    memset(b, 0, sizeof *b);
    CHECK_OK(tapio_loop_new(&b->loop));
    tapio_loop_set_error_handler(b->loop, on_loop_error, NULL);
    const char *wanted = getenv("TAPIO_BACKEND");
    if (wanted && *wanted)
        CHECK(strcmp(tapio_loop_backend(b->loop), wanted) == 0);
    b->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    CHECK(b->tick_fd >= 0);
    struct itimerspec its = {{0, 5000000}, {0, 5000000}};
    CHECK(timerfd_settime(b->tick_fd, 0, &its, NULL) == 0);
    CHECK_OK(tapio_add_reader(b->loop, b->tick_fd, on_tick, NULL));
}

static void bench_close(bench *b)
{
    CHECK(tapio_remove_reader(b->loop, b->tick_fd));
    close(b->tick_fd);
    CHECK_OK(tapio_loop_close(b->loop));
}

#define BENCH_RUN_UNTIL(b, cond)                                          \
    do {                                                                  \
        double end_ = monotonic_now() + SCENARIO_SECONDS;                 \
        while (!(cond)) {                                                 \
            if (monotonic_now() > end_)                                   \
                FAIL("%s: hung waiting for %s", context, #cond);          \
            tapio_loop_run_once((b)->loop);                               \
            if ((b)->step)                                                \
                (b)->step((b)->arg);                                      \
        }                                                                 \
    } while (0)

/* ------------------------------------------------------- the fault loop */

typedef void (*scenario_fn)(bench *b, outcome *o, void *cfg);

typedef struct fault_spec {
    fault_call call;
    int err;
    /* The call has a fallback that may absorb its failure silently (the
     * scenario must then complete): an allocation whose failure libtapio
     * works around (tapio_call_soon failing makes the connect callback run
     * at once; a full change list applies the change at once), pidfd_open
     * (a thread waits instead). */
    bool may_absorb;
} fault_spec;

/* Errors the far side of a failed connection may see as a result. */
static bool consequence(int err)
{
    return err == -ECONNRESET || err == -EPIPE || err == -ECANCELED ||
           err == TAPIO_ETLS || err == -ECONNABORTED;
}

static void check_outcome(const outcome *o, const fault_spec *f, bool fired)
{
    if (!fired) {
        if (!o->ok || o->n) {
            print_outcome(o, fired);
            FAIL("%s: failed without a fault", context);
        }
        return;
    }
    for (int i = 0; i < o->n && i < MAX_ERRS; i++) {
        if (o->err[i] != -f->err && !consequence(o->err[i])) {
            print_outcome(o, fired);
            FAIL("%s: %s got %s, not the injected error", context,
                 o->where[i], tapio_strerror(o->err[i]));
        }
    }
    if (!seen(o, -f->err) && !(f->may_absorb && o->ok) && !o->quiet) {
        print_outcome(o, fired);
        FAIL("%s: the injected %s reached no callback or return value",
             context, tapio_strerror(-f->err));
    }
}

static int env_n(void)
{
    const char *n = getenv("FAULTS_N");
    return n ? atoi(n) : 0;
}

static bool selected(fault_call call)
{
    const char *only = getenv("FAULTS_CALL");
    return !only || strcmp(only, fault_name(call)) == 0;
}

/* One (call, n): the faulty run, a clean run on the same loop, fds back. */
static bool run_one(const char *name, scenario_fn fn, void *cfg,
                    const fault_spec *f, unsigned n)
{
    snprintf(context, sizeof context, "%s: %s #%u fails with %s", name,
             fault_name(f->call), n, strerror(f->err));
    int fds_before = count_open_fds();
    bench b;
    bench_open(&b);
    outcome o = {0};
    current = &o;
    fault_arm(f->call, n, f->err);
    fn(&b, &o, cfg);
    bool fired = fault_disarm();
    if (verbose)
        print_outcome(&o, fired);
    check_outcome(&o, f, fired);

    /* The loop keeps serving. */
    outcome clean = {0};
    current = &clean;
    b.step = NULL;
    fn(&b, &clean, cfg);
    current = NULL;
    if (!clean.ok || clean.n) {
        print_outcome(&clean, false);
        FAIL("%s: the loop does not serve after the fault", context);
    }
    bench_close(&b);
    int fds_after = count_open_fds();
    if (fds_after != fds_before)
        FAIL("%s: %d fds before, %d after", context, fds_before, fds_after);
    return fired;
}

static void run_faults(const char *name, scenario_fn fn, void *cfg,
                       const fault_spec *specs, size_t nspecs)
{
    verbose = getenv("FAULTS_VERBOSE") != NULL;
    unsigned before = combinations;
    for (size_t i = 0; i < nspecs; i++) {
        if (!selected(specs[i].call))
            continue;
        if (env_n()) {
            combinations += run_one(name, fn, cfg, &specs[i], env_n());
            continue;
        }
        unsigned n = 1;
        while (run_one(name, fn, cfg, &specs[i], n)) {
            combinations++;
            if (++n > MAX_N)
                FAIL("%s: still failing after %d calls", context, MAX_N);
        }
    }
    printf("%s: %u (call, n) combinations failed and checked\n", name,
           combinations - before);
}

/* ------------------------------------------------- stream echo scenario */

/* PLAIN and TLS echo "ping"; SENDFILE sends a file to the client; BULK
 * echoes 1 MiB written with writev (partial sends, a growing buffer,
 * waiting for writability, sendmsg). */
enum variant { PLAIN, TLS, SENDFILE, BULK };

#define BULK_LEN (1024 * 1024)
static unsigned char *bulk_data;

#define SENDFILE_LEN (256 * 1024)
#define MAX_SERVED 4

typedef struct echo echo;

typedef struct side {
    echo *e;
    tapio_transport *t;
    int made, lost;
    bytes rx;
} side;

struct echo {
    outcome *o;
    enum variant variant;
    tapio_server *server;
    bool server_closed, client_done, connect_done;
    side client;
    side served[MAX_SERVED];
    int nserved;
    int file_fd;
};

typedef struct echo_cfg {
    enum variant variant;
    tapio_tls_context *server_ctx, *client_ctx;
    int file_fd;
} echo_cfg;

static void client_made(tapio_transport *t, void *user)
{
    side *s = user;
    s->t = t;
    s->made++;
    if (s->e->variant == BULK) {
        struct iovec iov[2] = {{bulk_data, BULK_LEN / 2},
                               {bulk_data + BULK_LEN / 2, BULK_LEN / 2}};
        note(s->e->o, "client writev", tapio_transport_writev(t, iov, 2));
    } else if (s->e->variant != SENDFILE) {
        note(s->e->o, "client write", tapio_transport_write(t, "ping", 4));
    }
}

static void client_data(tapio_transport *t, const void *data, size_t len,
                        void *user)
{
    side *s = user;
    bytes_append(&s->rx, data, len);
    if (s->e->variant == BULK) {
        if (s->rx.len < BULK_LEN)
            return;
        CHECK(s->rx.len == BULK_LEN && pattern_check(s->rx.p, 0, BULK_LEN));
        s->e->o->ok = true;
        tapio_transport_close(t);
    } else if (s->e->variant != SENDFILE && s->rx.len >= 4) {
        CHECK(s->rx.len == 4 && memcmp(s->rx.p, "ping", 4) == 0);
        s->e->o->ok = true;
        tapio_transport_close(t);
    }
}

static bool no_keep_open(tapio_transport *t, void *user)
{
    (void)t;
    (void)user;
    return false;
}

static void client_lost(tapio_transport *t, int err, void *user)
{
    (void)t;
    side *s = user;
    CHECK_EQ_INT(s->lost, 0);
    s->lost++;
    s->t = NULL;
    note(s->e->o, "client connection_lost", err);
    if (s->e->variant == SENDFILE && err == 0 && s->rx.len == SENDFILE_LEN &&
        pattern_check(s->rx.p, 0, s->rx.len))
        s->e->o->ok = true;
    s->e->client_done = true;
}

static const tapio_protocol client_protocol = {
    .connection_made = client_made,
    .data_received = client_data,
    .eof_received = no_keep_open,
    .connection_lost = client_lost,
};

static void on_sendfile_done(tapio_transport *t, size_t sent, int err,
                             void *arg)
{
    (void)t;
    (void)sent;
    side *s = arg;
    note(s->e->o, "sendfile callback", err);
}

static void served_made(tapio_transport *t, void *user)
{
    side *s = user;
    s->t = t;
    s->made++;
    if (s->e->variant == SENDFILE) {
        note(s->e->o, "sendfile",
             tapio_transport_sendfile(t, s->e->file_fd, 0, SENDFILE_LEN,
                                      on_sendfile_done, s));
        tapio_transport_close(t);
    }
}

static void served_data(tapio_transport *t, const void *data, size_t len,
                        void *user)
{
    side *s = user;
    note(s->e->o, "echo write", tapio_transport_write(t, data, len));
}

static void served_lost(tapio_transport *t, int err, void *user)
{
    (void)t;
    side *s = user;
    CHECK_EQ_INT(s->lost, 0);
    s->lost++;
    s->t = NULL;
    note(s->e->o, "served connection_lost", err);
}

static const tapio_protocol served_protocol = {
    .connection_made = served_made,
    .data_received = served_data,
    .eof_received = no_keep_open,
    .connection_lost = served_lost,
};

static const tapio_protocol *echo_factory(tapio_server *server, void *arg,
                                          void **user)
{
    (void)server;
    echo *e = arg;
    if (e->nserved == MAX_SERVED)
        return NULL;
    side *s = &e->served[e->nserved++];
    s->e = e;
    *user = s;
    return &served_protocol;
}

static void on_connected(tapio_transport *t, int err, void *arg)
{
    (void)t;
    echo *e = arg;
    e->connect_done = true;
    note(e->o, "connect callback", err);
    if (err)
        e->client_done = true;
}

static void on_server_closed(tapio_loop *loop, void *arg)
{
    (void)loop;
    echo *e = arg;
    e->server_closed = true;
}

static void echo_start(bench *b, echo *e, const echo_cfg *cfg)
{
    tapio_tls_options server_tls = {.context = cfg->server_ctx,
                                    .server_side = true};
    tapio_tls_options client_tls = {.context = cfg->client_ctx,
                                    .server_hostname = "localhost"};
    tapio_server_options sopts = {.accept_retry_delay = 0.01};
    tapio_connect_options copts = {0};
    if (cfg->variant == TLS) {
        sopts.tls = &server_tls;
        copts.tls = &client_tls;
    }
    const char *hosts[] = {"127.0.0.1", NULL};
    int err = tapio_server_listen(b->loop, hosts, "0", &sopts, echo_factory,
                                  e, &e->server);
    note(e->o, "server listen", err);
    if (err) {
        e->server = NULL;
        e->server_closed = e->client_done = true;
        return;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", tapio_server_port(e->server));
    err = tapio_connect(b->loop, "127.0.0.1", port, &copts, &client_protocol,
                        &e->client, on_connected, e, NULL);
    note(e->o, "connect", err);
    if (err)
        e->client_done = true;
}

static void echo_scenario(bench *b, outcome *o, void *arg)
{
    const echo_cfg *cfg = arg;
    echo e = {.o = o, .variant = cfg->variant, .file_fd = cfg->file_fd};
    e.client.e = &e;
    echo_start(b, &e, cfg);
    BENCH_RUN_UNTIL(b, e.client_done);
    if (e.server)
        tapio_server_close(e.server, on_server_closed, &e);
    BENCH_RUN_UNTIL(b, e.server_closed);
    for (int i = 0; i < e.nserved; i++) {
        /* A TLS connection whose handshake failed is closed quietly. */
        CHECK(e.served[i].lost == e.served[i].made);
        if (!e.served[i].made)
            o->quiet = true;
        bytes_free(&e.served[i].rx);
    }
    bytes_free(&e.client.rx);
}

/* The calls a stream echo makes, and the error each fails with. */
static const fault_spec stream_faults[] = {
    {FAULT_SOCKET, EMFILE, false},
    {FAULT_CONNECT, ENETUNREACH, false},
    {FAULT_ACCEPT4, EMFILE, false},
    {FAULT_READ, EIO, false},
    {FAULT_SEND, EIO, false},
    {FAULT_SENDMSG, EIO, false},
    {FAULT_SENDFILE, EIO, false},
    /* A failed removal is harmless: the fd is closed, or added again
     * (EEXIST, then modified). */
    {FAULT_EPOLL_CTL, ENOSPC, true},
    {FAULT_MALLOC, ENOMEM, true},
    {FAULT_CALLOC, ENOMEM, true},
    {FAULT_REALLOC, ENOMEM, true},
    {FAULT_STRDUP, ENOMEM, true},
};

#define NSPECS(a) (sizeof(a) / sizeof((a)[0]))

TEST(faults_tcp_echo)
{
    echo_cfg cfg = {.variant = PLAIN, .file_fd = -1};
    run_faults("tcp echo", echo_scenario, &cfg, stream_faults,
               NSPECS(stream_faults));
}

TEST(faults_tls_echo)
{
    tls_certs certs;
    char why[256];
    if (tls_certs_make(&certs, why, sizeof why) != 0)
        FAIL("certificates: %s", why);
    echo_cfg cfg = {.variant = TLS, .file_fd = -1};
    tapio_tls_context_options sopts = {.server = true,
                                       .cert_file = certs.server_cert,
                                       .key_file = certs.server_key};
    tapio_tls_context_options copts = {.ca_file = certs.ca};
    CHECK_OK(tapio_tls_context_new(&sopts, &cfg.server_ctx));
    CHECK_OK(tapio_tls_context_new(&copts, &cfg.client_ctx));
    run_faults("tls echo", echo_scenario, &cfg, stream_faults,
               NSPECS(stream_faults));
    tapio_tls_context_unref(cfg.server_ctx);
    tapio_tls_context_unref(cfg.client_ctx);
    tls_certs_remove(&certs);
}

TEST(faults_bulk)
{
    bulk_data = pattern_new(BULK_LEN);
    echo_cfg cfg = {.variant = BULK, .file_fd = -1};
    run_faults("bulk echo", echo_scenario, &cfg, stream_faults,
               NSPECS(stream_faults));
    free(bulk_data);
}

TEST(faults_sendfile)
{
    char path[] = "/tmp/tapio-faults-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    unsigned char *data = pattern_new(SENDFILE_LEN);
    CHECK(write(fd, data, SENDFILE_LEN) == SENDFILE_LEN);
    free(data);
    echo_cfg cfg = {.variant = SENDFILE, .file_fd = fd};
    run_faults("sendfile", echo_scenario, &cfg, stream_faults,
               NSPECS(stream_faults));
    close(fd);
}

/* ----------------------------------------------------- datagram scenario */

typedef struct dgram {
    outcome *o;
    tapio_datagram *server, *client;
    int made, lost;
    bool replied;
    double last_send;
} dgram;

static void dgram_made(tapio_datagram *d, void *user)
{
    (void)d;
    dgram *g = user;
    g->made++;
}

static void server_datagram(tapio_datagram *d, const void *data, size_t len,
                            const struct sockaddr *addr, socklen_t addrlen,
                            void *user)
{
    dgram *g = user;
    note(g->o, "server sendto", tapio_datagram_sendto(d, data, len, addr,
                                                      addrlen));
}

static void client_datagram(tapio_datagram *d, const void *data, size_t len,
                            const struct sockaddr *addr, socklen_t addrlen,
                            void *user)
{
    (void)d;
    (void)addr;
    (void)addrlen;
    dgram *g = user;
    CHECK(len == 4 && memcmp(data, "ping", 4) == 0);
    g->replied = true;
}

static void dgram_error(tapio_datagram *d, int err, void *user)
{
    (void)d;
    dgram *g = user;
    note(g->o, "error_received", err);
}

static void dgram_lost(tapio_datagram *d, int err, void *user)
{
    dgram *g = user;
    g->lost++;
    if (d == g->server) /* freed after this call */
        g->server = NULL;
    if (d == g->client)
        g->client = NULL;
    note(g->o, "datagram connection_lost", err);
}

static const tapio_datagram_protocol server_dgram_protocol = {
    .connection_made = dgram_made,
    .datagram_received = server_datagram,
    .error_received = dgram_error,
    .connection_lost = dgram_lost,
};

static const tapio_datagram_protocol client_dgram_protocol = {
    .connection_made = dgram_made,
    .datagram_received = client_datagram,
    .error_received = dgram_error,
    .connection_lost = dgram_lost,
};

/* UDP loses datagrams, and so does a failed sendto: the client sends again
 * every 20 ms until the echo comes back. */
static void dgram_step(void *arg)
{
    dgram *g = arg;
    if (g->replied || g->made < 2 || !g->client ||
        monotonic_now() - g->last_send < 0.02)
        return;
    g->last_send = monotonic_now();
    note(g->o, "client sendto",
         tapio_datagram_sendto(g->client, "ping", 4, NULL, 0));
}

static void dgram_scenario(bench *b, outcome *o, void *cfg)
{
    (void)cfg;
    dgram g = {.o = o};
    int expected = 0;
    tapio_datagram_options sopts = {.family = AF_INET,
                                    .local_host = "127.0.0.1",
                                    .local_port = "0"};
    int err = tapio_datagram_open(b->loop, &sopts, &server_dgram_protocol,
                                  &g, &g.server);
    note(o, "server open", err);
    if (!err) {
        expected++;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        CHECK_OK(tapio_datagram_sockname(g.server, &ss, &len));
        char port[16];
        snprintf(port, sizeof port, "%d",
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
        tapio_datagram_options copts = {.family = AF_INET,
                                        .remote_host = "127.0.0.1",
                                        .remote_port = port};
        err = tapio_datagram_open(b->loop, &copts, &client_dgram_protocol,
                                  &g, &g.client);
        note(o, "client open", err);
        if (!err) {
            expected++;
            b->step = dgram_step;
            b->arg = &g;
            /* An endpoint the fault ended ends the exchange. */
            BENCH_RUN_UNTIL(b, g.replied || g.lost);
            o->ok = g.replied;
            b->step = NULL;
        }
    }
    if (g.client)
        tapio_datagram_close(g.client);
    if (g.server)
        tapio_datagram_close(g.server);
    BENCH_RUN_UNTIL(b, g.lost == expected);
}

static const fault_spec datagram_faults[] = {
    {FAULT_SOCKET, EMFILE, false},
    {FAULT_CONNECT, ENETUNREACH, false},
    {FAULT_RECVFROM, EIO, false},
    {FAULT_SENDTO, EIO, false},
    {FAULT_SEND, EIO, false},
    {FAULT_EPOLL_CTL, ENOSPC, true}, /* as for streams */
    {FAULT_MALLOC, ENOMEM, true},
    {FAULT_CALLOC, ENOMEM, true},
    {FAULT_REALLOC, ENOMEM, true},
};

TEST(faults_datagram)
{
    run_faults("datagram", dgram_scenario, NULL, datagram_faults,
               NSPECS(datagram_faults));
}

/* --------------------------------------------------- subprocess scenario */

typedef struct child {
    outcome *o;
    bytes out;
    bool exited, lost;
    int code;
} child;

static void child_made(tapio_process *p, void *user)
{
    child *c = user;
    tapio_transport *in = tapio_process_pipe(p, 0);
    CHECK(in != NULL);
    /* write() then writev(), as each reaches its own syscall. */
    struct iovec iov[2] = {{"n", 1}, {"g", 1}};
    note(c->o, "stdin write", tapio_transport_write(in, "pi", 2));
    note(c->o, "stdin writev", tapio_transport_writev(in, iov, 2));
    note(c->o, "stdin write_eof", tapio_transport_write_eof(in));
}

static void child_data(tapio_process *p, int fd, const void *data, size_t len,
                       void *user)
{
    (void)p;
    child *c = user;
    CHECK_EQ_INT(fd, 1);
    bytes_append(&c->out, data, len);
}

static void child_pipe_lost(tapio_process *p, int fd, int err, void *user)
{
    (void)p;
    (void)fd;
    child *c = user;
    note(c->o, "pipe_connection_lost", err);
}

static void child_exited(tapio_process *p, void *user)
{
    child *c = user;
    c->exited = true;
    CHECK(tapio_process_returncode(p, &c->code));
}

static void child_lost(tapio_process *p, int err, void *user)
{
    (void)p;
    child *c = user;
    CHECK(c->exited);
    c->lost = true;
    note(c->o, "process connection_lost", err);
}

static const tapio_subprocess_protocol child_protocol = {
    .connection_made = child_made,
    .pipe_data_received = child_data,
    .pipe_connection_lost = child_pipe_lost,
    .process_exited = child_exited,
    .connection_lost = child_lost,
};

/* cat echoes what it reads from its stdin pipe to its stdout pipe (read
 * through the splice relay). */
static void process_scenario(bench *b, outcome *o, void *cfg)
{
    (void)cfg;
    child c = {.o = o};
    char *const argv[] = {"cat", NULL};
    tapio_process_options opts = {
        .file = "cat",
        .argv = argv,
        .stdio = {TAPIO_STDIO_PIPE, TAPIO_STDIO_PIPE, TAPIO_STDIO_DEVNULL}};
    tapio_process *p = NULL;
    int err = tapio_process_spawn(b->loop, &opts, &child_protocol, &c, &p);
    note(o, "spawn", err);
    if (!err) {
        BENCH_RUN_UNTIL(b, c.lost);
        o->ok = c.code == 0 && c.out.len == 4 &&
                memcmp(c.out.p, "ping", 4) == 0;
    }
    bytes_free(&c.out);
}

static const fault_spec process_faults[] = {
    {FAULT_PIPE2, EMFILE, false},
    {FAULT_SOCKETPAIR, EMFILE, true}, /* the relay: plain reads instead */
    {FAULT_SPLICE, EIO, false},
    {FAULT_PIDFD_OPEN, ENOSYS, true}, /* a thread waits instead */
    {FAULT_READ, EIO, false},
    {FAULT_WRITE, EIO, false},
    {FAULT_WRITEV, EIO, false},
    {FAULT_POSIX_SPAWN, EAGAIN, false},
    {FAULT_EPOLL_CTL, ENOSPC, true}, /* the pidfd: a thread waits instead */
    {FAULT_MALLOC, ENOMEM, true},
    {FAULT_CALLOC, ENOMEM, true},
    {FAULT_REALLOC, ENOMEM, true},
    {FAULT_STRDUP, ENOMEM, true},
};

TEST(faults_process)
{
    run_faults("process", process_scenario, NULL, process_faults,
               NSPECS(process_faults));
}

/* ------------------------------------------------------------- new loop */

TEST(faults_loop_new)
{
    static const fault_spec specs[] = {
        {FAULT_PIPE2, EMFILE, false},   {FAULT_EVENTFD, EMFILE, false},
        {FAULT_EPOLL_CTL, ENOSPC, false}, {FAULT_MALLOC, ENOMEM, false},
        {FAULT_CALLOC, ENOMEM, false},  {FAULT_REALLOC, ENOMEM, false},
    };
    unsigned checked = 0;
    for (size_t i = 0; i < NSPECS(specs); i++) {
        for (unsigned n = 1;; n++) {
            snprintf(context, sizeof context, "loop_new: %s #%u",
                     fault_name(specs[i].call), n);
            int fds_before = count_open_fds();
            tapio_loop *loop = NULL;
            fault_arm(specs[i].call, n, specs[i].err);
            int err = tapio_loop_new(&loop);
            bool fired = fault_disarm();
            if (!fired) {
                CHECK_OK(err);
                CHECK_OK(tapio_loop_close(loop));
                break;
            }
            checked++;
            if (err) {
                if (err != -specs[i].err)
                    FAIL("%s: returned %s", context, tapio_strerror(err));
                CHECK(loop == NULL);
            } else {
                CHECK_OK(tapio_loop_close(loop));
            }
            if (count_open_fds() != fds_before)
                FAIL("%s: fds leaked", context);
        }
    }
    printf("loop_new: %u (call, n) combinations failed and checked\n",
           checked);
}

static void count_call(tapio_loop *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

/* A kernel without io_uring (ENOSYS), or one that forbids it (seccomp or
 * kernel.io_uring_disabled: EPERM; EACCES), or short of memory for the
 * ring: the loop asked for io_uring runs on epoll, with no fd left over. */
TEST(faults_io_uring_unavailable_falls_back_to_epoll)
{
    const char *wanted = getenv("TAPIO_BACKEND");
    if (!wanted || strcmp(wanted, "io_uring") != 0) {
        printf("not the io_uring run: nothing to fall back from\n");
        return;
    }
    static const int errs[] = {ENOSYS, EPERM, EACCES, ENOMEM};
    for (size_t i = 0; i < NSPECS(errs); i++) {
        int fds_before = count_open_fds();
        tapio_loop *loop = NULL;
        fault_arm(FAULT_URING_INIT, 1, errs[i]);
        int err = tapio_loop_new(&loop);
        CHECK(fault_disarm());
        CHECK_OK(err);
        CHECK(strcmp(tapio_loop_backend(loop), "epoll") == 0);
        int ran = 0;
        CHECK(tapio_call_soon(loop, count_call, &ran) != NULL);
        CHECK_OK(tapio_loop_run_once(loop));
        CHECK(ran == 1);
        CHECK_OK(tapio_loop_close(loop));
        CHECK(count_open_fds() == fds_before);
    }
}

/* With TAPIO_BACKEND unset the loop runs on io_uring, but on epoll where
 * the kernel lacks deferred completion work (before 6.1: the ring refuses
 * DEFER_TASKRUN with EINVAL); a loop that asked for io_uring gets a ring
 * without it. */
static const char *backend_of_a_new_loop(bool refuse_deferred)
{
    int fds_before = count_open_fds();
    tapio_loop *loop = NULL;
    if (refuse_deferred)
        fault_arm(FAULT_URING_INIT, 1, EINVAL);
    int err = tapio_loop_new(&loop);
    if (refuse_deferred)
        CHECK(fault_disarm());
    CHECK_OK(err);
    const char *name = tapio_loop_backend(loop);
    int ran = 0;
    CHECK(tapio_call_soon(loop, count_call, &ran) != NULL);
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK(ran == 1);
    CHECK_OK(tapio_loop_close(loop));
    CHECK(count_open_fds() == fds_before);
    return name; /* a string constant of libtapio */
}

TEST(faults_io_uring_is_the_default_where_deferred_work_exists)
{
    char *wanted = getenv("TAPIO_BACKEND");
    wanted = wanted ? strdup(wanted) : NULL;
    unsetenv("TAPIO_BACKEND");
    CHECK(strcmp(backend_of_a_new_loop(false), "io_uring") == 0);
    CHECK(strcmp(backend_of_a_new_loop(true), "epoll") == 0);
    setenv("TAPIO_BACKEND", "io_uring", 1);
    CHECK(strcmp(backend_of_a_new_loop(true), "io_uring") == 0);
    setenv("TAPIO_BACKEND", "epoll", 1);
    CHECK(strcmp(backend_of_a_new_loop(false), "epoll") == 0);
    if (wanted)
        setenv("TAPIO_BACKEND", wanted, 1);
    else
        unsetenv("TAPIO_BACKEND");
    free(wanted);
}

/* io_uring receives a socket's bytes by completion: libtapio makes no
 * read(2) of its own for them (the other backends read once per event). */
static void count_bytes(tapio_transport *t, const void *data, size_t len,
                        void *user)
{
    (void)t, (void)data;
    *(size_t *)user += len;
}

static const tapio_protocol counting_protocol = {.data_received = count_bytes};

TEST(faults_io_uring_receives_without_read_calls)
{
    tapio_loop *loop;
    CHECK_OK(tapio_loop_new(&loop));
    bool ring = strcmp(tapio_loop_backend(loop), "io_uring") == 0;
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    size_t got = 0;
    tapio_transport *t;
    CHECK_OK(tapio_transport_from_fd(loop, fds[0], &counting_protocol, &got,
                                     &t));
    fault_arm(FAULT_READ, UINT_MAX, EIO); /* counts, never fails */
    for (size_t sent = 100; sent <= 2000; sent += 100) {
        char chunk[100];
        memset(chunk, 'x', sizeof chunk);
        CHECK(write(fds[1], chunk, sizeof chunk) == (ssize_t)sizeof chunk);
        for (int i = 0; i < 1000 && got < sent; i++)
            CHECK_OK(tapio_loop_run_once(loop));
        CHECK_EQ_INT(got, sent);
    }
    unsigned reads = fault_calls(FAULT_READ);
    CHECK(!fault_disarm());
    if (ring)
        CHECK_EQ_INT(reads, 0);
    else
        CHECK(reads >= 20);
    tapio_transport_close(t);
    CHECK_OK(tapio_loop_run_once(loop)); /* connection_lost */
    CHECK_OK(tapio_loop_close(loop));
    close(fds[1]);
}

/* io_uring accepts a server's connections by completion, with one request
 * for all of them: libtapio makes no accept4(2) of its own. */
TEST(faults_io_uring_accepts_without_accept_calls)
{
    tapio_loop *loop;
    CHECK_OK(tapio_loop_new(&loop));
    bool ring = strcmp(tapio_loop_backend(loop), "io_uring") == 0;
    acceptor *acc = acceptor_new();
    tapio_server *s = listen_tcp(loop, "127.0.0.1", acc, NULL);
    fault_arm(FAULT_ACCEPT4, UINT_MAX, EMFILE); /* counts, never fails */
    enum { CLIENTS = 20 };
    int clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        struct sockaddr_in to = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)tapio_server_port(s)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(clients[i] >= 0);
        CHECK(connect(clients[i], (struct sockaddr *)&to, sizeof to) == 0);
        for (int j = 0; j < 1000 && acc->n < (size_t)i + 1; j++)
            CHECK_OK(tapio_loop_run_once(loop));
        CHECK_EQ_INT(acc->n, i + 1);
    }
    unsigned accepts = fault_calls(FAULT_ACCEPT4);
    CHECK(!fault_disarm());
    if (ring)
        CHECK_EQ_INT(accepts, 0);
    else
        CHECK(accepts >= CLIENTS);
    for (int i = 0; i < CLIENTS; i++)
        close(clients[i]);
    tapio_server_close(s, NULL, NULL);
    CHECK_OK(tapio_loop_close(loop));
}

/* A bulk transfer on io_uring (a receive filled its buffer) is read by
 * readiness into the loop's own buffer, and small messages afterwards go
 * back to receives: every byte arrives in order across both switches. */
typedef struct pattern_sink {
    size_t got;
    bool in_order;
    bool eof;
} pattern_sink;

static void check_pattern(tapio_transport *t, const void *data, size_t len,
                          void *user)
{
    (void)t;
    pattern_sink *p = user;
    p->in_order = p->in_order && pattern_check(data, p->got, len);
    p->got += len;
}

static bool note_eof(tapio_transport *t, void *user)
{
    (void)t;
    pattern_sink *p = user;
    p->eof = true;
    return false;
}

static const tapio_protocol pattern_protocol = {.data_received = check_pattern,
                                                .eof_received = note_eof};

/* Each message is sent once the one before has arrived. */
static void send_messages_of(tapio_loop *loop, int fd, pattern_sink *p,
                             size_t size, int count)
{
    unsigned char chunk[1000];
    CHECK(size <= sizeof chunk);
    for (int i = 0; i < count; i++) {
        pattern_fill(chunk, p->got, size);
        size_t want = p->got + size;
        CHECK(write(fd, chunk, size) == (ssize_t)size);
        for (int j = 0; j < 1000 && p->got < want; j++)
            CHECK_OK(tapio_loop_run_once(loop));
        CHECK_EQ_INT(p->got, want);
    }
}

static void send_small_messages(tapio_loop *loop, int fd, pattern_sink *p,
                                int count)
{
    send_messages_of(loop, fd, p, 100, count);
}

/* A transport over one end of a Unix socket pair, its protocol checking
 * the pattern; `ring` tells whether the loop runs on io_uring. */
typedef struct pattern_conn {
    tapio_loop *loop;
    bool ring;
    int peer;
    tapio_transport *t;
    pattern_sink p;
} pattern_conn;

static void pattern_conn_open(pattern_conn *c)
{
    CHECK_OK(tapio_loop_new(&c->loop));
    c->ring = strcmp(tapio_loop_backend(c->loop), "io_uring") == 0;
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    c->peer = fds[1];
    c->p = (pattern_sink){.in_order = true};
    CHECK_OK(tapio_transport_from_fd(c->loop, fds[0], &pattern_protocol,
                                     &c->p, &c->t));
}

/* Everything arrived in order; the transport (unless lost already), the
 * loop and the peer are closed. */
static void pattern_conn_close(pattern_conn *c)
{
    CHECK(c->p.in_order);
    if (!c->p.eof)
        tapio_transport_close(c->t);
    CHECK_OK(tapio_loop_run_once(c->loop));
    CHECK_OK(tapio_loop_close(c->loop));
    close(c->peer);
}

TEST(faults_io_uring_reads_bulk_transfers_by_readiness)
{
    enum { BULK_BYTES = 4 << 20, SMALL_MESSAGES = 12 };
    pattern_conn c;
    pattern_conn_open(&c);
    for (int round = 0; round < 2; round++) {
        unsigned char *bulk = malloc(BULK_BYTES);
        CHECK(bulk != NULL);
        pattern_fill(bulk, c.p.got, BULK_BYTES);
        size_t want = c.p.got + BULK_BYTES;
        fault_arm(FAULT_READ, UINT_MAX, EIO); /* counts, never fails */
        send_all(c.loop, c.peer, bulk, BULK_BYTES);
        free(bulk);
        RUN_UNTIL(c.loop, c.p.got == want, 10);
        CHECK(fault_calls(FAULT_READ) > 0);
        CHECK(!fault_disarm());
        /* A few small reads end the bulk transfer; the rest are received. */
        send_small_messages(c.loop, c.peer, &c.p, 8);
        fault_arm(FAULT_READ, UINT_MAX, EIO);
        send_small_messages(c.loop, c.peer, &c.p, SMALL_MESSAGES);
        unsigned reads = fault_calls(FAULT_READ);
        CHECK(!fault_disarm());
        if (c.ring)
            CHECK_EQ_INT(reads, 0);
        else
            CHECK(reads >= SMALL_MESSAGES);
    }
    pattern_conn_close(&c);
}

/* On io_uring a connection's bytes come through a multishot receive that
 * ends once it has taken 64 KiB and is made again: not once per message,
 * nor one request for ever (a connection takes no more per iteration than
 * a single receive would, plus one wakeup's worth). */
TEST(faults_io_uring_a_receive_request_per_64_kib)
{
    fault_arm(FAULT_URING_RECV_MULTISHOT, UINT_MAX, EIO); /* counts */
    pattern_conn c;
    pattern_conn_open(&c);
    send_messages_of(c.loop, c.peer, &c.p, 100, 20);
    CHECK_EQ_INT(fault_calls(FAULT_URING_RECV_MULTISHOT), c.ring ? 1 : 0);
    /* 200 KB more: 3 or 4 requests of 64 KiB and a bit. */
    send_messages_of(c.loop, c.peer, &c.p, 1000, 200);
    unsigned requests = fault_calls(FAULT_URING_RECV_MULTISHOT);
    CHECK(!fault_disarm());
    if (c.ring)
        CHECK(requests >= 3 && requests <= 5);
    else
        CHECK_EQ_INT(requests, 0);
    pattern_conn_close(&c);
}

/* A kernel before the per-wakeup cap refuses a multishot receive with a
 * length (EINVAL): the ring asks once, then receives one request at a
 * time, with the same results: small messages, bytes sent while paused,
 * a bulk transfer, an EOF queued behind bytes, each once and in order. */
TEST(faults_io_uring_single_receives_where_multishot_is_refused)
{
    enum { BULK_BYTES = 1 << 20 };
    fault_arm(FAULT_URING_RECV_MULTISHOT, 1, EINVAL);
    pattern_conn c;
    pattern_conn_open(&c);
    send_small_messages(c.loop, c.peer, &c.p, 8);

    tapio_transport_pause_reading(c.t);
    unsigned char chunk[3000];
    pattern_fill(chunk, c.p.got, sizeof chunk);
    CHECK(write(c.peer, chunk, sizeof chunk) == (ssize_t)sizeof chunk);
    size_t before = c.p.got;
    run_for(c.loop, 0.05);
    CHECK_EQ_INT(c.p.got, before); /* nothing while paused */
    tapio_transport_resume_reading(c.t);
    RUN_UNTIL(c.loop, c.p.got == before + sizeof chunk, 10);

    unsigned char *bulk = malloc(BULK_BYTES);
    CHECK(bulk != NULL);
    pattern_fill(bulk, c.p.got, BULK_BYTES);
    size_t want = c.p.got + BULK_BYTES;
    send_all(c.loop, c.peer, bulk, BULK_BYTES);
    free(bulk);
    RUN_UNTIL(c.loop, c.p.got == want, 10);
    send_small_messages(c.loop, c.peer, &c.p, 8);

    pattern_fill(chunk, c.p.got, 100);
    CHECK(write(c.peer, chunk, 100) == 100);
    CHECK(shutdown(c.peer, SHUT_WR) == 0);
    RUN_UNTIL(c.loop, c.p.eof, 10);
    unsigned requests = fault_calls(FAULT_URING_RECV_MULTISHOT);
    bool refused = fault_disarm();
    CHECK_EQ_INT(refused, c.ring);
    CHECK_EQ_INT(requests, c.ring ? 1 : 0);
    CHECK_EQ_INT(c.p.got, want + 8 * 100 + 100);
    pattern_conn_close(&c); /* connection_lost */
}

/* A kernel that took a multishot receive's length but ignored its total
 * would let the request take whatever arrives: the ring sees it take more
 * than a capped one can, and receives one request at a time from then on,
 * every byte once and in order. */
TEST(faults_io_uring_single_receives_where_the_total_is_ignored)
{
    fault_arm(FAULT_URING_RECV_TOTAL, 1, 0);
    pattern_conn c;
    pattern_conn_open(&c);
    send_messages_of(c.loop, c.peer, &c.p, 1000, 300);
    unsigned multishot = fault_calls(FAULT_URING_RECV_MULTISHOT);
    unsigned single = fault_calls(FAULT_URING_RECV_SINGLE);
    bool ignored = fault_disarm();
    CHECK_EQ_INT(ignored, c.ring);
    CHECK_EQ_INT(multishot, c.ring ? 1 : 0);
    if (c.ring) /* about 170 messages after the first 128 KiB */
        CHECK(single >= 100);
    else
        CHECK_EQ_INT(single, 0);
    pattern_conn_close(&c);
}

/* On io_uring the iteration's writes go out as send requests in one
 * system call: libtapio makes no send(2) of its own for them. */
typedef struct write_step {
    tapio_transport *t;
    bool done;
} write_step;

static void write_in_callback(tapio_loop *loop, void *arg)
{
    (void)loop;
    write_step *w = arg;
    CHECK_OK(tapio_transport_write(w->t, "ping", 4));
    w->done = true;
}

TEST(faults_io_uring_sends_without_send_calls)
{
    enum { WRITES = 20 };
    pattern_conn c;
    pattern_conn_open(&c);
    CHECK_OK(tapio_loop_run_once(c.loop)); /* connection_made */
    fault_arm(FAULT_SEND, UINT_MAX, EIO); /* counts, never fails */
    for (int i = 0; i < WRITES; i++) {
        write_step w = {c.t, false};
        CHECK(tapio_call_soon(c.loop, write_in_callback, &w) != NULL);
        for (int j = 0; j < 1000 && !w.done; j++)
            CHECK_OK(tapio_loop_run_once(c.loop));
        CHECK(w.done);
        CHECK_EQ_INT(tapio_transport_get_write_buffer_size(c.t), 0);
        char buf[8];
        CHECK(recv(c.peer, buf, sizeof buf, MSG_DONTWAIT) == 4);
        CHECK(memcmp(buf, "ping", 4) == 0);
    }
    unsigned sends = fault_calls(FAULT_SEND);
    CHECK(!fault_disarm());
    if (c.ring)
        CHECK_EQ_INT(sends, 0);
    else
        CHECK(sends >= WRITES);
    pattern_conn_close(&c);
}

/* io_uring receives datagrams by completion too, each with its sender's
 * address: libtapio makes no recvfrom(2) of its own for them (the other
 * backends make one per datagram, and one more that finds none). */
typedef struct datagram_count {
    size_t n;
    struct sockaddr_storage from;
    socklen_t fromlen;
} datagram_count;

static void count_datagram(tapio_datagram *d, const void *data, size_t len,
                           const struct sockaddr *from, socklen_t fromlen,
                           void *user)
{
    (void)d;
    datagram_count *c = user;
    CHECK_EQ_INT(len, 3);
    CHECK(memcmp(data, "abc", 3) == 0);
    CHECK(fromlen > 0 && fromlen <= sizeof c->from);
    memcpy(&c->from, from, fromlen);
    c->fromlen = fromlen;
    c->n++;
}

static const tapio_datagram_protocol counting_datagram_protocol = {
    .datagram_received = count_datagram};

TEST(faults_io_uring_receives_datagrams_without_recvfrom_calls)
{
    tapio_loop *loop;
    CHECK_OK(tapio_loop_new(&loop));
    bool ring = strcmp(tapio_loop_backend(loop), "io_uring") == 0;
    struct sockaddr_in at = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(rx >= 0 && tx >= 0);
    CHECK(bind(rx, (struct sockaddr *)&at, sizeof at) == 0);
    CHECK(bind(tx, (struct sockaddr *)&at, sizeof at) == 0);
    struct sockaddr_in rx_at, tx_at;
    socklen_t len = sizeof rx_at;
    CHECK(getsockname(rx, (struct sockaddr *)&rx_at, &len) == 0);
    len = sizeof tx_at;
    CHECK(getsockname(tx, (struct sockaddr *)&tx_at, &len) == 0);
    datagram_count got = {0};
    tapio_datagram *d;
    CHECK_OK(tapio_datagram_from_fd(loop, rx, NULL, 0,
                                    &counting_datagram_protocol, &got, &d));
    CHECK_OK(tapio_loop_run_once(loop)); /* connection_made: reading */
    fault_arm(FAULT_RECVFROM, UINT_MAX, EIO); /* counts, never fails */
    for (size_t sent = 1; sent <= 20; sent++) {
        CHECK(sendto(tx, "abc", 3, 0, (struct sockaddr *)&rx_at,
                     sizeof rx_at) == 3);
        for (int i = 0; i < 1000 && got.n < sent; i++)
            CHECK_OK(tapio_loop_run_once(loop));
        CHECK_EQ_INT(got.n, sent);
    }
    unsigned calls = fault_calls(FAULT_RECVFROM);
    CHECK(!fault_disarm());
    if (ring)
        CHECK_EQ_INT(calls, 0);
    else
        CHECK(calls >= 20);
    CHECK_EQ_INT(got.fromlen, sizeof tx_at);
    CHECK(memcmp(&got.from, &tx_at, sizeof tx_at) == 0);
    tapio_datagram_close(d);
    CHECK_OK(tapio_loop_run_once(loop)); /* connection_lost */
    CHECK_OK(tapio_loop_close(loop));
    close(tx);
}
