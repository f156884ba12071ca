/*
 * fuzz_tls.c — libFuzzer target: bytes from the peer fed to a tapio TLS
 * transport as its TLS records.
 *
 * Built twice: FUZZ_TLS_SERVER=1 (fuzz_tls_server: the input is what a
 * client sends to a tapio TLS server) and FUZZ_TLS_SERVER=0
 * (fuzz_tls_client: what a server answers a tapio TLS client; the client
 * verifies nothing, so that a well-formed flight gets further). Each input
 * is written into the far end of a socket pair whose near end is the raw
 * transport under the TLS layer; the loop runs until nothing more happens,
 * then the TLS transport is closed (close_notify path) and the peer hangs
 * up. The TLS transport must end, through its handshake callback or
 * connection_lost, and free everything (LeakSanitizer checks each input).
 */
#define _GNU_SOURCE
#include "tapio.h"
#include "tls_certs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef FUZZ_TLS_SERVER
#define FUZZ_TLS_SERVER 1
#endif

static tapio_loop *loop;
static tapio_tls_context *context;

typedef struct state {
    bool finished; /* handshake failed, or connection_lost ran */
} state;

static void on_made(tapio_transport *t, void *user)
{
    (void)user;
    tapio_transport_write(t, "hello", 5);
}

static void on_data(tapio_transport *t, const void *data, size_t len,
                    void *user)
{
    (void)user;
    tapio_transport_write(t, data, len < 64 ? len : 64);
}

static void on_lost(tapio_transport *t, int err, void *user)
{
    (void)t;
    (void)err;
    ((state *)user)->finished = true;
}

static const tapio_protocol plain_protocol = {
    .connection_made = on_made,
    .data_received = on_data,
    .connection_lost = on_lost,
};

static const tapio_protocol raw_protocol = {0};

static void on_handshake(tapio_transport *tls, int err, void *arg)
{
    (void)tls;
    if (err)
        ((state *)arg)->finished = true;
}

static void noop(tapio_loop *l, void *arg)
{
    (void)l;
    (void)arg;
}

static void setup(void)
{
    if (loop)
        return;
    if (tapio_loop_new(&loop))
        abort();
    tls_certs certs;
    char why[256];
    if (tls_certs_make(&certs, why, sizeof why)) {
        fprintf(stderr, "certificates: %s\n", why);
        abort();
    }
    tapio_tls_context_options opts = {0};
    if (FUZZ_TLS_SERVER) {
        opts.server = true;
        opts.cert_file = certs.server_cert;
        opts.key_file = certs.server_key;
    } else {
        opts.no_verify = true;
    }
    if (tapio_tls_context_new(&opts, &context))
        abort();
    tls_certs_remove(&certs); /* loaded into the context */
}

/* One loop iteration that does not wait; what the peer end received is
 * read and dropped. */
static void step(int peer)
{
    char sink[16384];
    tapio_call_soon(loop, noop, NULL);
    tapio_loop_run_once(loop);
    while (read(peer, sink, sizeof sink) > 0)
        ;
}

static void feed(int peer, const uint8_t *data, size_t size)
{
    size_t done = 0;
    for (int i = 0; i < 64 && done < size; i++) {
        ssize_t n = write(peer, data + done, size - done);
        if (n > 0)
            done += (size_t)n;
        step(peer);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fds))
        abort();
    tapio_transport *raw, *tls;
    if (tapio_transport_from_fd(loop, fds[0], &raw_protocol, NULL, &raw))
        abort();
    state st = {0};
    tapio_tls_options opts = {.context = context,
                              .server_side = FUZZ_TLS_SERVER,
                              .server_hostname = "localhost"};
    if (tapio_tls_start(raw, &opts, &plain_protocol, &st, on_handshake, &st,
                        &tls))
        abort();
    step(fds[1]);
    feed(fds[1], data, size);
    for (int i = 0; i < 8; i++)
        step(fds[1]);
    if (!st.finished)
        tapio_transport_close(tls);
    for (int i = 0; i < 8 && !st.finished; i++)
        step(fds[1]);
    close(fds[1]);
    for (int i = 0; i < 64 && !st.finished; i++)
        step(-1);
    if (!st.finished) {
        fprintf(stderr, "the TLS transport did not end after its peer left\n");
        abort();
    }
    /* Let the raw transport's connection_lost and the frees run. */
    for (int i = 0; i < 4; i++)
        step(-1);
    return 0;
}
