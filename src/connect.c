/* Outgoing connections: name resolution on a worker thread, each resolved
 * address tried in turn, an optional local address, Unix connects. */
#include "internal.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum connect_state {
    RESOLVING,  /* a worker thread runs getaddrinfo */
    CONNECTING, /* a non-blocking connect() is in flight */
    HANDSHAKING, /* connected; the TLS handshake runs */
    COMPLETING, /* the user's callback is scheduled */
};

struct tapio_connect_req {
    tapio__list node; /* in loop->connects */
    tapio_loop *loop;
    enum connect_state state;
    bool work_inflight;  /* the worker still holds the request */
    bool completed;      /* the user's callback has run */

    tapio__work work;
    char *host, *port, *local_host, *local_port;
    int family;
    struct addrinfo *remote, *next_remote, *local;
    int resolve_err;

    tapio__io io;        /* the connecting socket */
    int last_err;

    const tapio_protocol *proto;
    void *user;
    tapio_connect_callback cb;
    void *arg;
    tapio_transport *transport;
    int result;

    bool use_tls;
    tapio__tls_config tls;
    tapio_transport *raw;   /* under the TLS transport while HANDSHAKING */
    bool cancelled;
};

/* ---- finishing -------------------------------------------------------- */

static void close_socket(tapio_connect_req *req)
{
    if (req->io.fd < 0)
        return;
    tapio__io_detach(req->loop, &req->io);
    close(req->io.fd);
    req->io.fd = -1;
}

static void req_free(tapio_connect_req *req)
{
    close_socket(req);
    tapio__list_remove(&req->node);
    if (req->remote)
        freeaddrinfo(req->remote);
    if (req->local)
        freeaddrinfo(req->local);
    free(req->host);
    free(req->port);
    free(req->local_host);
    free(req->local_port);
    tapio__tls_config_free(&req->tls);
    free(req);
}

static void run_callback(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_connect_req *req = arg;
    req->completed = true;
    req->cb(req->transport, req->result, req->arg);
    if (!req->work_inflight)
        req_free(req);
}

/* The callback always runs from the loop, never inside the user's call. */
static void complete(tapio_connect_req *req, tapio_transport *t, int result)
{
    req->state = COMPLETING;
    req->transport = t;
    req->result = result;
    if (!tapio_call_soon(req->loop, run_callback, req))
        run_callback(req->loop, req);
}

static void handshake_done(tapio_transport *tls, int err, void *arg)
{
    tapio_connect_req *req = arg;
    req->raw = NULL;
    if (req->cancelled)
        err = -ECANCELED;
    complete(req, err ? NULL : tls, err);
}

/* TLS: the raw transport's connection_made starts the handshake; the
 * callback waits for its end, as create_connection(ssl=...) does. */
static int start_tls(tapio_connect_req *req, tapio_transport *raw)
{
    tapio_tls_options opts;
    tapio__tls_config_options(&req->tls, false, &opts);
    if (!opts.server_hostname)
        opts.server_hostname = req->host;
    tapio_transport *tls;
    int err = tapio_tls_start(raw, &opts, req->proto, req->user,
                              handshake_done, req, &tls);
    if (err) {
        tapio_transport_abort(raw);
        return err;
    }
    req->state = HANDSHAKING;
    req->raw = raw;
    return 0;
}

static void connected(tapio_connect_req *req)
{
    int fd = req->io.fd;
    tapio__io_detach(req->loop, &req->io);
    req->io.fd = -1;
    tapio_transport *t;
    /* The transport schedules connection_made, so it runs before our
     * callback, as asyncio's does before create_connection returns. */
    int err = tapio__transport_new(req->loop, fd, TAPIO__SOCKET,
                                   req->use_tls ? NULL : req->proto,
                                   req->use_tls ? NULL : req->user, NULL, &t);
    if (!err && req->use_tls) {
        err = start_tls(req, t);
        if (!err)
            return;
    }
    complete(req, err ? NULL : t, err);
}

/* ---- trying addresses ------------------------------------------------- */

static int bind_local(tapio_connect_req *req, int fd, int family)
{
    int err = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = req->local; ai; ai = ai->ai_next) {
        if (ai->ai_family != family)
            continue;
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return 0;
        err = -errno;
    }
    return err;
}

/* Start a connect to one address: 0 when in flight or done, else an error. */
static int start_connect(tapio_connect_req *req, const struct addrinfo *ai)
{
    int fd = tapio__socket(ai->ai_family, SOCK_STREAM, ai->ai_protocol);
    if (fd < 0)
        return fd;
    int err = req->local ? bind_local(req, fd, ai->ai_family) : 0;
    if (!err && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
        errno != EINPROGRESS)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    req->io.fd = fd;
    return 0;
}

static void on_writable(tapio_loop *loop, tapio__io *io, unsigned events);
static void on_refused(tapio_loop *loop, tapio__io *io, int err);

static void try_next(tapio_connect_req *req)
{
    while (req->next_remote) {
        const struct addrinfo *ai = req->next_remote;
        req->next_remote = ai->ai_next;
        int err = start_connect(req, ai);
        if (err) {
            req->last_err = err;
            continue;
        }
        tapio__io_init(&req->io, req->io.fd, on_writable);
        req->io.refused = on_refused;
        err = tapio__io_attach(req->loop, &req->io);
        if (!err) {
            req->state = CONNECTING;
            tapio__io_set(req->loop, &req->io, TAPIO__WRITE);
            return;
        }
        close(req->io.fd);
        req->io.fd = -1;
        req->last_err = err;
    }
    complete(req, NULL, req->last_err ? req->last_err : -EHOSTUNREACH);
}

static void on_writable(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)loop;
    (void)events;
    tapio_connect_req *req = tapio__container_of(io, tapio_connect_req, io);
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (!soerr) {
        connected(req);
        return;
    }
    req->last_err = -soerr;
    close_socket(req);
    try_next(req);
}

/* The backend cannot watch the connecting socket: this address failed. */
static void on_refused(tapio_loop *loop, tapio__io *io, int err)
{
    (void)loop;
    tapio_connect_req *req = tapio__container_of(io, tapio_connect_req, io);
    req->last_err = err;
    close_socket(req);
    try_next(req);
}

/* ---- resolving -------------------------------------------------------- */

static int resolve(const char *host, const char *port, int family, int flags,
                   struct addrinfo **out)
{
    struct addrinfo hints = {0};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    int rc = getaddrinfo(host, port, &hints, out);
    if (rc == 0)
        return 0;
    *out = NULL;
    if (rc == EAI_SYSTEM)
        return errno ? -errno : -EIO;
    if (rc == EAI_MEMORY)
        return -ENOMEM;
    if (rc == EAI_NONAME && (flags & AI_NUMERICHOST))
        return 1; /* not numeric: needs the resolver */
    return TAPIO_ERR_EAI(rc);
}

static int resolve_all(tapio_connect_req *req, int flags)
{
    int err = resolve(req->host, req->port, req->family, flags, &req->remote);
    if (!err && req->local_host)
        err = resolve(req->local_host, req->local_port ? req->local_port : "0",
                      req->family, flags | AI_PASSIVE, &req->local);
    return err;
}

static void resolve_work(tapio__work *w)
{
    tapio_connect_req *req = tapio__container_of(w, tapio_connect_req, work);
    req->resolve_err = resolve_all(req, AI_ADDRCONFIG);
}

static void resolve_done(tapio_loop *loop, tapio__work *w)
{
    (void)loop;
    tapio_connect_req *req = tapio__container_of(w, tapio_connect_req, work);
    req->work_inflight = false;
    if (req->completed) { /* cancelled while resolving */
        req_free(req);
        return;
    }
    if (req->state != RESOLVING)
        return;
    if (req->resolve_err) {
        complete(req, NULL, req->resolve_err);
        return;
    }
    req->next_remote = req->remote;
    try_next(req);
}

/* ---- the API ---------------------------------------------------------- */

static tapio_connect_req *req_new(tapio_loop *loop, const tapio_protocol *proto,
                                  void *user, tapio_connect_callback cb,
                                  void *arg)
{
    tapio_connect_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->loop = loop;
    req->proto = proto;
    req->user = user;
    req->cb = cb;
    req->arg = arg;
    req->io.fd = -1;
    tapio__list_init(&req->node);
    return req;
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (!copy)
        *failed = true;
    return copy;
}

static int copy_names(tapio_connect_req *req, const char *host,
                      const char *port, const tapio_connect_options *opts)
{
    bool failed = false;
    req->host = dup_or_null(host, &failed);
    req->port = dup_or_null(port, &failed);
    if (opts) {
        req->family = opts->family;
        req->local_host = dup_or_null(opts->local_host, &failed);
        req->local_port = dup_or_null(opts->local_port, &failed);
        if (opts->tls) {
            req->use_tls = true;
            int err = tapio__tls_config_copy(&req->tls, opts->tls);
            if (err)
                return err;
        }
    }
    return failed ? -ENOMEM : 0;
}

int tapio_connect(tapio_loop *loop, const char *host, const char *port,
                  const tapio_connect_options *opts,
                  const tapio_protocol *proto, void *user,
                  tapio_connect_callback cb, void *arg, tapio_connect_req **out)
{
    if (!host || !port || !cb)
        return -EINVAL;
    tapio_connect_req *req = req_new(loop, proto, user, cb, arg);
    if (!req)
        return -ENOMEM;
    int err = copy_names(req, host, port, opts);
    /* Numeric addresses need no resolver and no thread. */
    if (!err)
        err = resolve_all(req, AI_NUMERICHOST | AI_NUMERICSERV);
    if (err == 1) {
        if (req->remote)
            freeaddrinfo(req->remote);
        req->remote = NULL;
        req->state = RESOLVING;
        req->work.work = resolve_work;
        req->work.done = resolve_done;
        err = tapio__work_submit(loop, &req->work);
        req->work_inflight = !err;
    } else if (!err) {
        req->next_remote = req->remote;
        try_next(req);
    }
    if (err) {
        req_free(req);
        return err;
    }
    tapio__list_push(&loop->connects, &req->node);
    if (out)
        *out = req;
    return 0;
}

int tapio_connect_unix(tapio_loop *loop, const char *path, size_t path_len,
                       const tapio_protocol *proto, void *user,
                       tapio_connect_callback cb, void *arg,
                       tapio_connect_req **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = tapio__unix_addr(path, path_len, &ss, &len);
    if (err || !cb)
        return err ? err : -EINVAL;
    tapio_connect_req *req = req_new(loop, proto, user, cb, arg);
    if (!req)
        return -ENOMEM;
    /* One address, given as a ready-made addrinfo so try_next serves. */
    struct addrinfo ai = {0};
    ai.ai_family = AF_UNIX;
    ai.ai_socktype = SOCK_STREAM;
    ai.ai_addr = (struct sockaddr *)&ss;
    ai.ai_addrlen = len;
    req->next_remote = &ai;
    try_next(req);
    req->next_remote = NULL;
    tapio__list_push(&loop->connects, &req->node);
    if (out)
        *out = req;
    return 0;
}

void tapio_connect_cancel(tapio_connect_req *req)
{
    if (req->state == COMPLETING || req->cancelled)
        return; /* the outcome is already on its way */
    if (req->state == HANDSHAKING) {
        req->cancelled = true; /* handshake_done reports it */
        tapio_transport_abort(req->raw);
        return;
    }
    close_socket(req);
    complete(req, NULL, -ECANCELED);
}

void tapio__connects_destroy_all(tapio_loop *loop)
{
    while (!tapio__list_empty(&loop->connects)) {
        tapio_connect_req *req =
            tapio__container_of(loop->connects.next, tapio_connect_req, node);
        req->work_inflight = false; /* the workers have been joined */
        req_free(req);
    }
}
