/*
 * uv_echo: the benchmark's echo server written on libuv, for comparison.
 *
 * Each read is echoed with uv_try_write; only the part the socket refuses is
 * copied into a uv_write request, and reading pauses until that request
 * completes, as in floor_echo.
 *
 * Usage: uv_echo PORT
 * Listens on 127.0.0.1:PORT, prints "ready" once listening, runs until SIGTERM
 * or SIGINT, then closes every handle and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_SIZE (256 * 1024)

/* A uv_write request that owns the bytes it sends. */
struct tail_write {
    uv_write_t req;
    char data[];
};

/* Safe to share: every read is echoed or copied before the next one starts. */
static char read_buf[READ_SIZE];
static uv_tcp_t server;
static uv_signal_t sigterm_watcher;
static uv_signal_t sigint_watcher;

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "uv_echo: %s: %s\n", what, uv_strerror(rc));
        exit(1);
    }
}

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

static void close_client(uv_stream_t *client)
{
    if (!uv_is_closing((uv_handle_t *)client))
        uv_close((uv_handle_t *)client, free_handle);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf);

static void on_tail_written(uv_write_t *req, int status)
{
    uv_stream_t *client = req->handle;

    free(req);
    if (status < 0)
        close_client(client);
    else if (!uv_is_closing((uv_handle_t *)client))
        check(uv_read_start(client, on_alloc, on_read), "uv_read_start");
}

static void write_tail(uv_stream_t *client, const char *data, size_t len)
{
    struct tail_write *w = malloc(sizeof(*w) + len);
    uv_buf_t buf;

    if (!w) {
        fputs("uv_echo: out of memory\n", stderr);
        exit(1);
    }
    memcpy(w->data, data, len);
    buf = uv_buf_init(w->data, len);
    uv_read_stop(client);
    if (uv_write(&w->req, client, &buf, 1, on_tail_written) < 0) {
        free(w);
        close_client(client);
    }
}

static void on_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf)
{
    uv_buf_t out;
    int sent;

    if (nread <= 0) {
        if (nread < 0) /* EOF or error */
            close_client(client);
        return;
    }
    out = uv_buf_init(buf->base, nread);
    sent = uv_try_write(client, &out, 1);
    if (sent == UV_EAGAIN)
        sent = 0;
    if (sent < 0)
        close_client(client);
    else if (sent < nread)
        write_tail(client, buf->base + sent, nread - sent);
}

static void on_connection(uv_stream_t *listener, int status)
{
    uv_tcp_t *client;

    if (status < 0)
        return;
    client = malloc(sizeof(*client));
    if (!client) {
        fputs("uv_echo: out of memory\n", stderr);
        exit(1);
    }
    check(uv_tcp_init(listener->loop, client), "uv_tcp_init");
    if (uv_accept(listener, (uv_stream_t *)client) < 0) {
        uv_close((uv_handle_t *)client, free_handle);
        return;
    }
    uv_tcp_nodelay(client, 1);
    check(uv_read_start((uv_stream_t *)client, on_alloc, on_read), "uv_read_start");
}

/* Clients are the only heap-allocated handles; the rest are static. */
static void close_any(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (uv_is_closing(handle))
        return;
    if (handle->type == UV_TCP && handle != (uv_handle_t *)&server)
        uv_close(handle, free_handle);
    else
        uv_close(handle, NULL);
}

/* Closing every handle lets uv_run return on its own once the closes complete. */
static void on_signal(uv_signal_t *watcher, int signum)
{
    (void)signum;
    uv_walk(watcher->loop, close_any, NULL);
}

static void listen_on(uv_loop_t *loop, int port)
{
    struct sockaddr_in addr;

    check(uv_ip4_addr("127.0.0.1", port, &addr), "uv_ip4_addr");
    check(uv_tcp_init(loop, &server), "uv_tcp_init");
    /* libuv sets SO_REUSEADDR on bind */
    check(uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0), "bind");
    check(uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection), "listen");
}

static void watch_signal(uv_loop_t *loop, uv_signal_t *watcher, int signum)
{
    check(uv_signal_init(loop, watcher), "uv_signal_init");
    check(uv_signal_start(watcher, on_signal, signum), "uv_signal_start");
}

int main(int argc, char **argv)
{
    int port = argc == 2 ? atoi(argv[1]) : 0;
    uv_loop_t *loop = uv_default_loop();

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    /* a peer resetting mid-write must cost one connection, not the process */
    signal(SIGPIPE, SIG_IGN);
    watch_signal(loop, &sigterm_watcher, SIGTERM);
    watch_signal(loop, &sigint_watcher, SIGINT);
    listen_on(loop, port);
    printf("ready\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    check(uv_loop_close(loop), "uv_loop_close");
    return 0;
}
