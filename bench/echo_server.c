/*
 * echo_server: the benchmark's echo server on libtapio, plain (bench/run.py)
 * or over TLS (bench/tls_run.py).
 *
 * Usage: echo_server PORT [protocol|buffered] [--tls CERT KEY]
 *
 *   protocol  (default) a Protocol whose data_received writes each chunk back;
 *   buffered  a buffered protocol: the transport (or the TLS layer, which
 *             decrypts into it) reads into a 256 KiB buffer from get_buffer,
 *             and buffer_updated writes back what arrived.
 *   --tls     serve TLS (tapio_server_options.tls) with the PEM certificate
 *             chain CERT and key KEY.
 *
 * Both pause reading while the transport's write buffer is over its
 * high-water mark (pause_writing), as floor_echo and tls_floor stop reading
 * while the socket refuses their echo. Listens on 127.0.0.1:PORT, prints
 * "ready" once listening, runs until SIGTERM or SIGINT, then closes the
 * server and the loop and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tapio.h"

#define READ_SIZE (256 * 1024)

/* Shared by every connection: buffer_updated writes (copies) it out at once. */
static char read_buf[READ_SIZE];

static void echo_data_received(tapio_transport *t, const void *data, size_t len,
                               void *user)
{
    (void)user;
    tapio_transport_write(t, data, len);
}

static void *echo_get_buffer(tapio_transport *t, size_t sizehint, size_t *len,
                             void *user)
{
    (void)t, (void)sizehint, (void)user;
    *len = sizeof(read_buf);
    return read_buf;
}

static void echo_buffer_updated(tapio_transport *t, size_t nbytes, void *user)
{
    (void)user;
    tapio_transport_write(t, read_buf, nbytes);
}

static void echo_pause_writing(tapio_transport *t, void *user)
{
    (void)user;
    tapio_transport_pause_reading(t);
}

static void echo_resume_writing(tapio_transport *t, void *user)
{
    (void)user;
    tapio_transport_resume_reading(t);
}

static const tapio_protocol echo_protocol = {
    .data_received = echo_data_received,
    .pause_writing = echo_pause_writing,
    .resume_writing = echo_resume_writing,
};

static const tapio_protocol echo_buffered_protocol = {
    .get_buffer = echo_get_buffer,
    .buffer_updated = echo_buffer_updated,
    .pause_writing = echo_pause_writing,
    .resume_writing = echo_resume_writing,
};

/* `arg` is the protocol table chosen on the command line. */
static const tapio_protocol *echo_factory(tapio_server *server, void *arg,
                                          void **user)
{
    (void)server;
    *user = NULL;
    return arg;
}

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    (void)signum, (void)arg;
    tapio_loop_stop(loop);
}

/* `ctx`: serve TLS with it, or plain TCP when NULL. */
static int serve(tapio_loop *loop, const char *port, tapio_tls_context *ctx,
                 const tapio_protocol *proto)
{
    const char *hosts[] = {"127.0.0.1", NULL};
    tapio_tls_options tls = {.context = ctx, .server_side = true};
    tapio_server_options opts = {.backlog = SOMAXCONN, .tls = ctx ? &tls : NULL};
    tapio_server *server;
    int err;

    err = tapio_server_listen(loop, hosts, port, &opts, echo_factory,
                              (void *)proto, &server);
    if (err < 0)
        return err;
    if ((err = tapio_add_signal_handler(loop, SIGINT, on_signal, NULL)) < 0 ||
        (err = tapio_add_signal_handler(loop, SIGTERM, on_signal, NULL)) < 0) {
        tapio_server_close(server, NULL, NULL);
        return err;
    }
    printf("ready\n");
    fflush(stdout);
    err = tapio_loop_run_forever(loop);
    /* loop_close then aborts the connections still open */
    tapio_server_close(server, NULL, NULL);
    return err;
}

int main(int argc, char **argv)
{
    /* the options: PORT, then a mode, then --tls CERT KEY (each optional) */
    int tls = argc >= 5 && strcmp(argv[argc - 3], "--tls") == 0;
    int rest = tls ? argc - 3 : argc;
    const char *mode = rest == 3 ? argv[2] : "protocol";
    int port = rest == 2 || rest == 3 ? atoi(argv[1]) : 0;
    const tapio_protocol *proto = strcmp(mode, "protocol") == 0 ? &echo_protocol
                                : strcmp(mode, "buffered") == 0 ? &echo_buffered_protocol
                                : NULL;
    tapio_tls_context *ctx = NULL;
    tapio_loop *loop;
    int err = 0;

    if (port <= 0 || port > 65535 || !proto) {
        fprintf(stderr, "usage: %s PORT [protocol|buffered] [--tls CERT KEY]\n",
                argv[0]);
        return 2;
    }
    if (tls) {
        tapio_tls_context_options ctx_opts = {
            .server = true,
            .cert_file = argv[argc - 2],
            .key_file = argv[argc - 1],
        };
        err = tapio_tls_context_new(&ctx_opts, &ctx);
    }
    if (err == 0)
        err = tapio_loop_new(&loop);
    if (err == 0) {
        err = serve(loop, argv[1], ctx, proto);
        tapio_loop_close(loop);
    }
    if (ctx)
        tapio_tls_context_unref(ctx);
    if (err < 0) {
        fprintf(stderr, "echo_server: %s\n", tapio_strerror(err));
        return 1;
    }
    return 0;
}
