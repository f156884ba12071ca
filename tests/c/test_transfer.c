/* test_transfer.c — bulk transfer with flow control, many connections. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ------------------------------------------------------ 100 MiB transfer */

#define TOTAL ((size_t)100 * 1024 * 1024)
#define CHUNK ((size_t)64 * 1024)
/* The source repeats with a period that is not a multiple of CHUNK. */
#define PERIOD ((size_t)1024 * 1024 + 7)

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#define FNV_SEED 0xcbf29ce484222325ULL

/* Writes until paused; resume_writing continues. write_eof at the end. */
struct sender {
    conn c;
    const unsigned char *src; /* PERIOD + CHUNK bytes */
    size_t sent;
    size_t max_buffered;
    uint64_t hash;
};

static void sender_pump(struct sender *s)
{
    while (!s->c.paused && s->sent < TOTAL) {
        size_t n = TOTAL - s->sent < CHUNK ? TOTAL - s->sent : CHUNK;
        const unsigned char *p = s->src + s->sent % PERIOD;
        s->hash = fnv1a(s->hash, p, n);
        CHECK_OK(tapio_transport_write(s->c.t, p, n));
        s->sent += n;
        size_t buffered = tapio_transport_get_write_buffer_size(s->c.t);
        if (buffered > s->max_buffered)
            s->max_buffered = buffered;
    }
    if (s->sent == TOTAL)
        CHECK_OK(tapio_transport_write_eof(s->c.t));
}

static void sender_made(tapio_transport *t, void *user)
{
    conn_on_made(t, user);
    sender_pump(user);
}

static void sender_resume(tapio_transport *t, void *user)
{
    conn_on_resume(t, user);
    sender_pump(user);
}

static const tapio_protocol sender_protocol = {
    .connection_made = sender_made,
    .data_received = conn_on_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
    .pause_writing = conn_on_pause,
    .resume_writing = sender_resume,
};

/* Hashes what arrives (without keeping it); closes on EOF. */
struct receiver {
    conn c;
    size_t total;
    uint64_t hash;
};

static void receiver_data(tapio_transport *t, const void *data, size_t len,
                          void *user)
{
    struct receiver *r = user;
    CHECK(t == r->c.t);
    CHECK_EQ_INT(r->c.eofs, 0);
    r->hash = fnv1a(r->hash, data, len);
    r->total += len;
}

static const tapio_protocol receiver_protocol = {
    .connection_made = conn_on_made,
    .data_received = receiver_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

static const tapio_protocol *receiver_factory(tapio_server *s, void *arg,
                                              void **user)
{
    (void)s;
    struct receiver **slot = arg;
    CHECK(*slot == NULL); /* one connection only */
    *slot = (struct receiver *)conn_alloc(sizeof **slot);
    (*slot)->hash = FNV_SEED;
    *user = *slot;
    return &receiver_protocol;
}

static tapio_server *listen_receiver(tapio_loop *loop, struct receiver **slot)
{
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *s = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, receiver_factory,
                                 slot, &s));
    return s;
}

static void start_sender(tapio_loop *loop, struct sender *s, int port)
{
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", port);
    s->hash = FNV_SEED;
    CHECK_OK(tapio_connect(loop, "127.0.0.1", port_str, NULL, &sender_protocol,
                           s, conn_on_connected, s, NULL));
}

TEST(transfer_100_mib_with_flow_control)
{
    tapio_loop *loop = test_loop();
    struct receiver *r = NULL;
    tapio_server *server = listen_receiver(loop, &r);
    struct sender *s = (struct sender *)conn_alloc(sizeof *s);
    unsigned char *src = pattern_new(PERIOD + CHUNK);
    s->src = src;
    start_sender(loop, s, tapio_server_port(server));

    RUN_UNTIL(loop, s->c.lost && r && r->c.lost, 50);
    free(src);
    CHECK_EQ_INT(s->c.connect_err, 0);
    CHECK_EQ_INT(r->total, TOTAL);
    CHECK(r->hash == s->hash);
    CHECK_EQ_INT(r->c.eofs, 1);
    CHECK_EQ_INT(r->c.lost_err, 0);
    CHECK_EQ_INT(s->c.lost_err, 0); /* the receiver's close reached the sender */
    /* Flow control drove the sender and kept the buffer near high water. */
    CHECK(s->c.pauses > 0);
    CHECK_EQ_INT(s->c.resumes, s->c.pauses);
    CHECK(s->max_buffered <= TAPIO_DEFAULT_HIGH_WATER + CHUNK);
}

/* ------------------------------------------------- 1000 connections */

#define NCLIENTS 1000

struct echo_client {
    conn c;
    char message[48];
};

/* Connected: send the message; conn closes once the echo is complete. */
static void echo_client_connected(tapio_transport *t, int err, void *arg)
{
    struct echo_client *e = arg;
    conn_on_connected(t, err, arg);
    CHECK_ERR(err, 0);
    CHECK_OK(tapio_transport_write(t, e->message, strlen(e->message)));
}

static struct echo_client *start_echo_client(tapio_loop *loop, int port, int id)
{
    struct echo_client *e = (struct echo_client *)conn_alloc(sizeof *e);
    snprintf(e->message, sizeof e->message, "hello from client %d", id);
    e->c.close_after = strlen(e->message);
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", port);
    CHECK_OK(tapio_connect(loop, "127.0.0.1", port_str, NULL, &conn_protocol,
                           e, echo_client_connected, e, NULL));
    return e;
}

static struct rlimit saved_nofile;

static void restore_nofile(void *arg)
{
    (void)arg;
    CHECK(setrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
}

/* Two fds per connection plus slack; raise the soft limit if it is lower. */
static void ensure_fd_limit(rlim_t need)
{
    CHECK(getrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
    if (saved_nofile.rlim_cur >= need)
        return;
    CHECK(saved_nofile.rlim_max >= need);
    struct rlimit raised = {need, saved_nofile.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &raised) == 0);
    at_cleanup(restore_nofile, NULL);
}

static struct echo_client *clients[NCLIENTS];

static bool all_lost(const acceptor *acc)
{
    if (acc->n != NCLIENTS)
        return false;
    for (size_t i = 0; i < NCLIENTS; i++)
        if (!clients[i]->c.lost || !acc->conns[i]->lost)
            return false;
    return true;
}

TEST(thousand_concurrent_echo_connections)
{
    ensure_fd_limit(2 * NCLIENTS + 100);
    tapio_loop *loop = test_loop();
    acceptor *acc = acceptor_new();
    acc->echo = true;
    tapio_server_options opts = {.backlog = NCLIENTS};
    tapio_server *server = listen_tcp(loop, "127.0.0.1", acc, &opts);
    int port = tapio_server_port(server);
    for (int i = 0; i < NCLIENTS; i++)
        clients[i] = start_echo_client(loop, port, i);

    RUN_UNTIL(loop, all_lost(acc), 30);
    for (size_t i = 0; i < NCLIENTS; i++) {
        conn *c = &clients[i]->c;
        size_t len = strlen(clients[i]->message);
        CHECK_EQ_INT(c->lost_err, 0);
        CHECK_EQ_INT(c->rx.len, len);
        CHECK_MEM_EQ(c->rx.p, clients[i]->message, len);
        CHECK_EQ_INT(acc->conns[i]->eofs, 1);
        CHECK_EQ_INT(acc->conns[i]->lost_err, 0);
    }
}
