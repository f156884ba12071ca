/* Outgoing connections. The core connects a new socket to one of a list of
 * resolved addresses as asyncio's create_connection does: interleaved by
 * family, each attempt bound to a local address of its family, started one
 * after another or staggered (happy eyeballs), the first to connect winning.
 * tapio_connect resolves a name on a worker thread and makes a transport
 * (TLS too) of the winner; tapio_connect_socket hands the bare fd over. */
#include "internal.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum connect_state {
    RESOLVING,   /* a worker thread runs getaddrinfo */
    CONNECTING,  /* attempts are in flight */
    HANDSHAKING, /* connected; the TLS handshake runs */
    COMPLETING,  /* the user's callback is scheduled */
};

/* One address's attempt: its socket while the connect is in flight. */
struct attempt {
    tapio__io io; /* fd -1 when no socket is open */
    tapio_connect_req *req;
    size_t pos;   /* in req->order */
};

/* A failed step, kept sorted by the position of its attempt. */
struct step_error {
    size_t pos;
    tapio_connect_error e;
};

struct tapio_connect_req {
    tapio__list node; /* in loop->connects */
    tapio_loop *loop;
    enum connect_state state;
    bool work_inflight;  /* the worker still holds the request */
    bool completed;      /* the user's callback has run */
    bool cancelled;

    /* tapio_connect's names, resolved by the worker. */
    tapio__work work;
    char *host, *port, *local_host, *local_port;
    int family;
    int resolve_err;

    /* The attempts. */
    tapio_address *addrs, *locals;
    size_t naddrs, nlocals;
    size_t *order;       /* address indexes in the order they are tried */
    struct attempt *attempts; /* per position in order */
    size_t next;         /* position of the next attempt to start */
    size_t inflight;
    bool happy_eyeballs;
    double delay;
    int interleave;
    tapio_handle *timer; /* starts the next attempt (happy eyeballs) */
    struct step_error *errors;
    size_t nerrors, errors_cap;
    int last_err;
    int fd;              /* the winner, until handed over */
    size_t winner;

    /* tapio_connect: the transport made of the winner. */
    const tapio_protocol *proto;
    void *user;
    tapio_connect_callback cb;
    tapio_transport *transport;
    int result;
    bool use_tls;
    tapio__tls_config tls;
    tapio_transport *raw;   /* under the TLS transport while HANDSHAKING */

    /* tapio_connect_socket: the fd handed over. */
    tapio_connect_socket_callback socket_cb;
    void *arg;
};

/* ---- finishing -------------------------------------------------------- */

static void close_attempt(tapio_connect_req *req, struct attempt *a)
{
    if (a->io.fd < 0)
        return;
    tapio__io_detach(req->loop, &a->io);
    close(a->io.fd);
    a->io.fd = -1;
    req->inflight--;
}

static void stop_attempts(tapio_connect_req *req)
{
    if (req->timer) {
        tapio_handle_cancel(req->timer);
        req->timer = NULL;
    }
    for (size_t p = 0; p < req->next; p++)
        close_attempt(req, &req->attempts[p]);
}

static void req_free(tapio_connect_req *req)
{
    stop_attempts(req);
    if (req->fd >= 0)
        close(req->fd);
    tapio__list_remove(&req->node);
    free(req->addrs);
    free(req->locals);
    free(req->order);
    free(req->attempts);
    free(req->errors);
    free(req->host);
    free(req->port);
    free(req->local_host);
    free(req->local_port);
    tapio__tls_config_free(&req->tls);
    free(req);
}

static void run_socket_callback(tapio_connect_req *req)
{
    tapio_connect_error *errors = NULL;
    if (req->nerrors)
        errors = malloc(req->nerrors * sizeof(*errors));
    tapio_connect_result r = {
        .fd = req->fd, .err = req->result, .address = 0,
        .errors = errors, .nerrors = errors ? req->nerrors : 0,
    };
    for (size_t i = 0; i < r.nerrors; i++)
        errors[i] = req->errors[i].e;
    if (r.fd >= 0)
        r.address = req->order[req->winner];
    req->fd = -1; /* the callee's now */
    req->socket_cb(&r, req->arg);
    free(errors);
}

static void run_callback(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_connect_req *req = arg;
    req->completed = true;
    if (req->socket_cb)
        run_socket_callback(req);
    else
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

static void make_transport(tapio_connect_req *req)
{
    int fd = req->fd;
    req->fd = -1;
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

/* The attempt at `pos` connected: every other one is abandoned. */
static void won(tapio_connect_req *req, size_t pos, int fd)
{
    req->fd = fd;
    req->winner = pos;
    stop_attempts(req);
    if (req->socket_cb)
        complete(req, NULL, 0);
    else
        make_transport(req);
}

static void all_failed(tapio_connect_req *req)
{
    complete(req, NULL, req->last_err ? req->last_err : -EHOSTUNREACH);
}

/* ---- attempts --------------------------------------------------------- */

/* asyncio reports an attempt's failed steps in the order its attempts
 * started, whenever each one failed. */
static void record(tapio_connect_req *req, size_t pos, tapio_connect_step step,
                   size_t local, int err)
{
    req->last_err = err;
    if (req->nerrors == req->errors_cap) {
        size_t cap = req->errors_cap ? 2 * req->errors_cap : 4;
        struct step_error *grown = realloc(req->errors, cap * sizeof(*grown));
        if (!grown)
            return; /* the report is shorter; the outcome is the same */
        req->errors = grown;
        req->errors_cap = cap;
    }
    size_t i = req->nerrors++;
    for (; i > 0 && req->errors[i - 1].pos > pos; i--)
        req->errors[i] = req->errors[i - 1];
    req->errors[i] = (struct step_error){
        .pos = pos,
        .e = {.address = req->order[pos], .local = local, .step = step,
              .err = err},
    };
}

/* Bind to the first local address of the family that binds. */
static int bind_local(tapio_connect_req *req, size_t pos, int fd, int family)
{
    bool tried = false;
    for (size_t i = 0; i < req->nlocals; i++) {
        const tapio_address *l = &req->locals[i];
        if (l->family != family)
            continue;
        if (bind(fd, (const struct sockaddr *)&l->addr, l->len) == 0)
            return 0;
        tried = true;
        record(req, pos, TAPIO_CONNECT_STEP_BIND, i, -errno);
    }
    if (!tried)
        record(req, pos, TAPIO_CONNECT_STEP_NO_LOCAL, 0, -EADDRNOTAVAIL);
    return -1;
}

static void on_writable(tapio_loop *loop, tapio__io *io, unsigned events);
static void on_refused(tapio_loop *loop, tapio__io *io, int err);

/* 1: connected at once (won), 0: in flight, -1: failed (recorded). */
static int start_attempt(tapio_connect_req *req, size_t pos)
{
    const tapio_address *a = &req->addrs[req->order[pos]];
    int fd = tapio__socket(a->family, a->socktype ? a->socktype : SOCK_STREAM,
                           a->protocol);
    if (fd < 0) {
        record(req, pos, TAPIO_CONNECT_STEP_SOCKET, 0, fd);
        return -1;
    }
    if (req->nlocals && bind_local(req, pos, fd, a->family) < 0) {
        close(fd);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&a->addr, a->len) == 0) {
        won(req, pos, fd);
        return 1;
    }
    int err = errno == EINPROGRESS ? 0 : -errno;
    struct attempt *at = &req->attempts[pos];
    tapio__io_init(&at->io, fd, on_writable);
    at->io.refused = on_refused;
    if (!err)
        err = tapio__io_attach(req->loop, &at->io);
    if (err) {
        at->io.fd = -1;
        close(fd);
        record(req, pos, TAPIO_CONNECT_STEP_CONNECT, 0, err);
        return -1;
    }
    req->inflight++;
    tapio__io_set(req->loop, &at->io, TAPIO__WRITE);
    return 0;
}

static void delay_expired(tapio_loop *loop, void *arg);

/* Start attempts until one is in flight (or won); when none is left and
 * none is in flight, the request failed. */
static void start_next(tapio_connect_req *req)
{
    while (req->next < req->naddrs) {
        size_t pos = req->next++;
        int r = start_attempt(req, pos);
        if (r > 0)
            return;
        if (r == 0) {
            if (req->happy_eyeballs && req->next < req->naddrs)
                req->timer = tapio_call_later(req->loop, req->delay,
                                              delay_expired, req);
            return;
        }
        /* A failure starts the next attempt at once, delay or not. */
    }
    if (req->inflight == 0)
        all_failed(req);
}

static void delay_expired(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_connect_req *req = arg;
    req->timer = NULL;
    start_next(req);
}

static void attempt_failed(tapio_connect_req *req, struct attempt *at, int err)
{
    close_attempt(req, at);
    record(req, at->pos, TAPIO_CONNECT_STEP_CONNECTING, 0, err);
    /* Only the latest attempt's failure starts the next one early; the
     * request fails once nothing is left to try or in flight. */
    if (at->pos + 1 == req->next || req->inflight == 0) {
        if (req->timer) {
            tapio_handle_cancel(req->timer);
            req->timer = NULL;
        }
        start_next(req);
    }
}

static void on_writable(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)loop;
    (void)events;
    struct attempt *at = tapio__container_of(io, struct attempt, io);
    tapio_connect_req *req = at->req;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (!soerr) {
        int fd = io->fd;
        tapio__io_detach(req->loop, io);
        io->fd = -1;
        req->inflight--;
        won(req, at->pos, fd);
        return;
    }
    if (soerr == EINPROGRESS || soerr == EALREADY)
        return;
    attempt_failed(req, at, -soerr);
}

/* The backend cannot watch the attempt's socket: it fails with that error
 * rather than wait for an event that never comes. */
static void on_refused(tapio_loop *loop, tapio__io *io, int err)
{
    (void)loop;
    struct attempt *at = tapio__container_of(io, struct attempt, io);
    attempt_failed(at->req, at, err);
}

/* ---- ordering --------------------------------------------------------- */

/* asyncio's _interleave_addrinfos: group by family in order of first
 * appearance; `first` - 1 of the first family lead, then one of each
 * family in turn. */
static void interleave(tapio_connect_req *req, size_t first)
{
    size_t n = req->naddrs, *out = req->order, k = 0;
    int families[8];
    size_t nfam = 0;
    for (size_t i = 0; i < n; i++) {
        size_t f = 0;
        while (f < nfam && families[f] != req->addrs[i].family)
            f++;
        if (f == nfam && nfam < 8)
            families[nfam++] = req->addrs[i].family;
    }
    bool *used = calloc(n, sizeof(*used));
    if (!used)
        return; /* the given order, then */
    for (size_t i = 0; i < n && k + 1 < first; i++)
        if (req->addrs[i].family == families[0]) {
            out[k++] = i;
            used[i] = true;
        }
    /* Round robin: each round takes the next unused address per family. */
    size_t cursor[8] = {0};
    while (k < n) {
        size_t before = k;
        for (size_t f = 0; f < nfam; f++) {
            size_t i = cursor[f];
            while (i < n && (used[i] || req->addrs[i].family != families[f]))
                i++;
            cursor[f] = i;
            if (i < n) {
                out[k++] = i;
                used[i] = true;
            }
        }
        if (k == before) { /* families beyond 8: in their given order */
            for (size_t i = 0; i < n; i++)
                if (!used[i]) {
                    out[k++] = i;
                    used[i] = true;
                }
        }
    }
    free(used);
}

/* ---- the core --------------------------------------------------------- */

static int copy_addrs(tapio_address **dst, const tapio_address *src, size_t n)
{
    if (!n)
        return 0;
    *dst = malloc(n * sizeof(**dst));
    if (!*dst)
        return -ENOMEM;
    memcpy(*dst, src, n * sizeof(**dst));
    return 0;
}

static void take_options(tapio_connect_req *req,
                         const tapio_connect_options *opts)
{
    if (!opts)
        return;
    req->happy_eyeballs = opts->happy_eyeballs;
    req->delay = opts->happy_eyeballs_delay;
    req->interleave = opts->interleave;
}

/* req->addrs (and locals) are set: order them and start the first. */
static int start_core(tapio_connect_req *req)
{
    size_t n = req->naddrs;
    if (!n)
        return -EINVAL;
    req->order = malloc(n * sizeof(*req->order));
    req->attempts = calloc(n, sizeof(*req->attempts));
    if (!req->order || !req->attempts)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        req->order[i] = i;
        req->attempts[i].io.fd = -1;
        req->attempts[i].req = req;
        req->attempts[i].pos = i;
    }
    int first = req->interleave;
    if (first == 0 && req->happy_eyeballs)
        first = 1; /* RFC 8305's default, as asyncio's */
    if (first > 0)
        interleave(req, (size_t)first);
    req->state = CONNECTING;
    start_next(req);
    return 0;
}

static tapio_connect_req *req_new(tapio_loop *loop, void *arg)
{
    tapio_connect_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->loop = loop;
    req->arg = arg;
    req->fd = -1;
    tapio__list_init(&req->node);
    return req;
}

static void req_started(tapio_connect_req *req, tapio_connect_req **out)
{
    tapio__list_push(&req->loop->connects, &req->node);
    if (out)
        *out = req;
}

int tapio_connect_socket(tapio_loop *loop, const tapio_address *addrs,
                         size_t n, const tapio_connect_options *opts,
                         tapio_connect_socket_callback cb, void *arg,
                         tapio_connect_req **out)
{
    if (!cb || !n || (opts && (opts->local_host || opts->tls)))
        return -EINVAL;
    tapio_connect_req *req = req_new(loop, arg);
    if (!req)
        return -ENOMEM;
    req->socket_cb = cb;
    take_options(req, opts);
    req->naddrs = n;
    int err = copy_addrs(&req->addrs, addrs, n);
    if (!err && opts) {
        req->nlocals = opts->nlocal_addrs;
        err = copy_addrs(&req->locals, opts->local_addrs, req->nlocals);
    }
    if (!err)
        err = start_core(req);
    if (err) {
        req_free(req);
        return err;
    }
    req_started(req, out);
    return 0;
}

/* ---- resolving (tapio_connect) ----------------------------------------- */

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

static int to_addresses(const struct addrinfo *list, tapio_address **out,
                        size_t *n)
{
    size_t count = 0;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
        count++;
    *out = calloc(count ? count : 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    *n = 0;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof((*out)->addr))
            continue;
        tapio_address *a = &(*out)[(*n)++];
        a->family = ai->ai_family;
        a->socktype = ai->ai_socktype;
        a->protocol = ai->ai_protocol;
        a->len = ai->ai_addrlen;
        memcpy(&a->addr, ai->ai_addr, ai->ai_addrlen);
    }
    return 0;
}

static int resolve_one(const char *host, const char *port, int family,
                       int flags, tapio_address **out, size_t *n)
{
    struct addrinfo *list;
    int err = resolve(host, port, family, flags, &list);
    if (err)
        return err;
    err = to_addresses(list, out, n);
    freeaddrinfo(list);
    return err;
}

/* Resolves into fresh arrays, so a numeric try that fails leaves nothing. */
static int resolve_all(tapio_connect_req *req, int flags)
{
    free(req->addrs);
    req->addrs = NULL;
    int err = resolve_one(req->host, req->port, req->family, flags,
                          &req->addrs, &req->naddrs);
    if (!err && req->local_host) {
        free(req->locals);
        req->locals = NULL;
        err = resolve_one(req->local_host,
                          req->local_port ? req->local_port : "0", req->family,
                          flags | AI_PASSIVE, &req->locals, &req->nlocals);
    }
    if (!err && !req->naddrs)
        err = TAPIO_ERR_EAI(EAI_NONAME);
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
    int err = req->resolve_err;
    if (!err)
        err = start_core(req);
    if (err)
        complete(req, NULL, err);
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
        if (!opts->local_host) {
            req->nlocals = opts->nlocal_addrs;
            if (copy_addrs(&req->locals, opts->local_addrs, req->nlocals))
                failed = true;
        }
        if (opts->tls) {
            req->use_tls = true;
            int err = tapio__tls_config_copy(&req->tls, opts->tls);
            if (err)
                return err;
        }
    }
    return failed ? -ENOMEM : 0;
}

static int submit_resolve(tapio_connect_req *req)
{
    req->state = RESOLVING;
    req->work.work = resolve_work;
    req->work.done = resolve_done;
    int err = tapio__work_submit(req->loop, &req->work);
    req->work_inflight = !err;
    return err;
}

int tapio_connect(tapio_loop *loop, const char *host, const char *port,
                  const tapio_connect_options *opts,
                  const tapio_protocol *proto, void *user,
                  tapio_connect_callback cb, void *arg, tapio_connect_req **out)
{
    if (!host || !port || !cb)
        return -EINVAL;
    tapio_connect_req *req = req_new(loop, arg);
    if (!req)
        return -ENOMEM;
    req->proto = proto;
    req->user = user;
    req->cb = cb;
    take_options(req, opts);
    int err = copy_names(req, host, port, opts);
    /* Numeric addresses need no resolver and no thread. */
    if (!err)
        err = resolve_all(req, AI_NUMERICHOST | AI_NUMERICSERV);
    if (err == 1)
        err = submit_resolve(req);
    else if (!err)
        err = start_core(req);
    if (err) {
        req_free(req);
        return err;
    }
    req_started(req, out);
    return 0;
}

int tapio_connect_unix(tapio_loop *loop, const char *path, size_t path_len,
                       const tapio_protocol *proto, void *user,
                       tapio_connect_callback cb, void *arg,
                       tapio_connect_req **out)
{
    tapio_address a = {.family = AF_UNIX, .socktype = SOCK_STREAM};
    int err = tapio__unix_addr(path, path_len, &a.addr, &a.len);
    if (err || !cb)
        return err ? err : -EINVAL;
    tapio_connect_req *req = req_new(loop, arg);
    if (!req)
        return -ENOMEM;
    req->proto = proto;
    req->user = user;
    req->cb = cb;
    req->naddrs = 1;
    err = copy_addrs(&req->addrs, &a, 1);
    if (!err)
        err = start_core(req);
    if (err) {
        req_free(req);
        return err;
    }
    req_started(req, out);
    return 0;
}

void tapio_connect_cancel(tapio_connect_req *req)
{
    if (req->completed || req->cancelled)
        return;
    if (req->state == COMPLETING) {
        /* A bare fd on its way is closed instead of handed over; a
         * transport already made is the caller's (documented). */
        if (req->socket_cb) {
            req->cancelled = true;
            if (req->fd >= 0) {
                close(req->fd);
                req->fd = -1;
            }
            req->result = -ECANCELED;
        }
        return;
    }
    req->cancelled = true;
    if (req->state == HANDSHAKING) {
        tapio_transport_abort(req->raw); /* handshake_done reports it */
        return;
    }
    stop_attempts(req);
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
