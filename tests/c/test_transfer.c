/* test_transfer.c — bulk transfer with flow control, many connections. */
#include "bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ------------------------------------------------------ 100 MiB transfer */

TEST(transfer_100_mib_with_flow_control)
{
    tapio_loop *loop = test_loop();
    bulk_receiver *r = NULL;
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_server *server = NULL;
    CHECK_OK(tapio_server_listen(loop, hosts, "0", NULL, bulk_receiver_factory,
                                 &r, &server));
    bulk_sender *s = bulk_sender_new(false); /* write_eof at the end */
    conn_connect_with(loop, &s->c, &bulk_sender_protocol, "127.0.0.1",
                      tapio_server_port(server), NULL, NULL);
    RUN_UNTIL(loop, s->c.lost && r && r->c.lost, 50);
    /* The receiver's close reached the sender; the buffer stayed near high
     * water. */
    bulk_check(s, r, TAPIO_DEFAULT_HIGH_WATER + BULK_CHUNK);
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
