/*
 * streams_open.c — asyncio's open_connection, open_unix_connection,
 * start_server and start_unix_server: connections and servers whose
 * protocol is a tapio_stream (streams.c), made with the public connect and
 * server calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tapio.h"

/* ---------------------------------------------------------- connecting */

typedef struct opener {
    tapio_stream *s;
    tapio_stream_callback cb;
    void *arg;
    bool tls;               /* start TLS once connected (Unix sockets) */
    tapio_tls_options opts; /* its context referenced, hostname copied */
    char *hostname;
} opener;

static void opener_free(opener *o)
{
    if (o->tls && o->opts.context)
        tapio_tls_context_unref(o->opts.context);
    free(o->hostname);
    free(o);
}

/* The stream goes to the caller, or is freed with the error. */
static void opener_finish(opener *o, int err)
{
    tapio_stream *s = o->s;
    if (err) {
        tapio_stream_free(s);
        s = NULL;
    }
    o->cb(s, err, o->arg);
    opener_free(o);
}

static void on_tls_ready(tapio_stream *s, int err, void *arg)
{
    (void)s;
    opener_finish(arg, err);
}

static void on_connected(tapio_transport *t, int err, void *arg)
{
    (void)t;
    opener *o = arg;
    if (!err && o->tls)
        err = tapio_stream_start_tls(o->s, &o->opts, on_tls_ready, o);
    if (err || !o->tls)
        opener_finish(o, err);
}

static int opener_new(tapio_loop *loop, size_t limit,
                      const tapio_tls_options *tls, tapio_stream_callback cb,
                      void *arg, opener **out)
{
    opener *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    *o = (opener){.cb = cb, .arg = arg, .tls = tls != NULL};
    if (tls) {
        o->opts = *tls;
        if (tls->server_hostname &&
            !(o->hostname = strdup(tls->server_hostname))) {
            free(o);
            return -ENOMEM;
        }
        o->opts.server_hostname = o->hostname;
        if (o->opts.context)
            tapio_tls_context_ref(o->opts.context);
    }
    int err = tapio_stream_new(loop, limit, &o->s);
    if (err) {
        opener_free(o);
        return err;
    }
    *out = o;
    return 0;
}

static int opener_started(opener *o, int err)
{
    if (err) {
        tapio_stream_free(o->s);
        opener_free(o);
    }
    return err;
}

int tapio_open_connection(tapio_loop *loop, const char *host, const char *port,
                          const tapio_connect_options *opts, size_t limit,
                          tapio_stream_callback cb, void *arg)
{
    opener *o;
    int err = opener_new(loop, limit, NULL, cb, arg, &o);
    if (err)
        return err;
    err = tapio_connect(loop, host, port, opts, tapio_stream_protocol(), o->s,
                        on_connected, o, NULL);
    return opener_started(o, err);
}

int tapio_open_unix_connection(tapio_loop *loop, const char *path,
                               size_t path_len, const tapio_tls_options *tls,
                               size_t limit, tapio_stream_callback cb,
                               void *arg)
{
    opener *o;
    int err = opener_new(loop, limit, tls, cb, arg, &o);
    if (err)
        return err;
    err = tapio_connect_unix(loop, path, path_len, tapio_stream_protocol(),
                             o->s, on_connected, o, NULL);
    return opener_started(o, err);
}

/* ------------------------------------------------------------- serving */

/* Each accepted connection starts with this protocol; the stream is made
 * once the connection is made (after a TLS handshake), so a connection
 * that never gets that far leaves nothing behind. */
static void on_accepted(tapio_transport *t, void *user)
{
    const tapio_stream_handler *h = user;
    tapio_stream *s;
    int err = tapio_stream_new(tapio_transport_loop(t), h->limit, &s);
    if (!err && (err = tapio_stream_attach(s, t)))
        tapio_stream_free(s);
    if (err) {
        tapio_transport_fail(t, err);
        return;
    }
    h->client_connected(s, h->arg);
}

static const tapio_protocol accept_protocol = {
    .connection_made = on_accepted,
};

static const tapio_protocol *stream_factory(tapio_server *server, void *arg,
                                            void **user)
{
    (void)server;
    *user = arg;
    return &accept_protocol;
}

int tapio_start_server(tapio_loop *loop, const char *const *hosts,
                       const char *port, const tapio_server_options *opts,
                       const tapio_stream_handler *handler, tapio_server **out)
{
    return tapio_server_listen(loop, hosts, port, opts, stream_factory,
                               (void *)handler, out);
}

int tapio_start_unix_server(tapio_loop *loop, const char *path,
                            size_t path_len, const tapio_server_options *opts,
                            const tapio_stream_handler *handler,
                            tapio_server **out)
{
    return tapio_server_listen_unix(loop, path, path_len, opts,
                                    stream_factory, (void *)handler, out);
}
