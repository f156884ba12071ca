/* Servers: listening sockets, the accept loop with its back-off when the
 * process runs out of descriptors, and asyncio's Server lifetime. */
#include "internal.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_BACKLOG 100
#define DEFAULT_RETRY_DELAY 1.0

typedef struct listener {
    tapio__io io;
    tapio_server *server;
} listener;

struct tapio_server {
    tapio__list node; /* in loop->servers */
    tapio_loop *loop;
    listener *listeners;
    size_t nlisteners;
    tapio_protocol_factory factory;
    void *factory_arg;
    int backlog;
    double retry_delay;
    bool serving;
    bool closed;
    bool finishing;           /* finish_close is scheduled */
    size_t active;            /* accepted connections still alive */
    tapio_handle *retry;      /* pending re-arm after EMFILE */
    /* Connections a completion-based backend accepted as serving stopped:
     * served when it starts again, closed with the server (the other
     * backends leave them in the listening socket's backlog). */
    int *held;
    size_t nheld;
    char *unix_path;          /* socket file to remove on close */
    ino_t unix_ino;           /* ...if it is still the one bound here */
    bool keep_socket_file;    /* ...unless asked to leave it */
    tapio_callback on_closed;
    void *closed_arg;
    bool use_tls;
    tapio__tls_config tls;    /* each connection's TLS settings */
};

/* ---- accepting -------------------------------------------------------- */

static void set_accepting(tapio_server *s, bool on)
{
    for (size_t i = 0; i < s->nlisteners; i++)
        tapio__io_set(s->loop, &s->listeners[i].io, on ? TAPIO__READ : 0);
}

static void cancel_retry(tapio_server *s)
{
    if (!s->retry)
        return;
    tapio_handle_cancel(s->retry);
    tapio_handle_unref(s->retry);
    s->retry = NULL;
}

static void serve_held(tapio_server *s);

static void resume_accepting(tapio_server *s)
{
    if (s->serving && !s->closed) {
        set_accepting(s, true);
        serve_held(s);
    }
}

static void retry_accept(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_server *s = arg;
    tapio_handle_unref(s->retry);
    s->retry = NULL;
    resume_accepting(s);
}

/* Accepting resumes from the loop after `delay` (now if no timer can be
 * had: keep trying rather than stall). */
static void resume_later(tapio_server *s, double delay)
{
    s->retry = tapio_call_later(s->loop, delay, retry_accept, s);
    if (s->retry)
        tapio_handle_ref(s->retry);
    else
        resume_accepting(s);
}

/* Out of descriptors or memory: pause accepting for a while rather than
 * spin on a listening socket that stays readable. */
static void back_off(tapio_server *s, int err)
{
    tapio__report_error(s->loop, "socket.accept() out of system resource",
                        err);
    set_accepting(s, false);
    if (!s->retry)
        resume_later(s, s->retry_delay);
}

/* The backend cannot watch a listening socket: try again after the
 * back-off delay, as when out of descriptors, rather than never accept. */
static void on_listener_refused(tapio_loop *loop, tapio__io *io, int err)
{
    (void)loop;
    back_off(tapio__container_of(io, listener, io)->server, err);
}

static void start_connection(tapio_server *s, int fd)
{
    void *user = NULL;
    const tapio_protocol *proto = s->factory(s, s->factory_arg, &user);
    if (!proto) {
        close(fd);
        return;
    }
    tapio_transport *t;
    int err = tapio__transport_new(s->loop, fd, TAPIO__SOCKET,
                                   s->use_tls ? NULL : proto,
                                   s->use_tls ? NULL : user, s, &t);
    if (!err)
        s->active++; /* the transport's release counts it down */
    if (!err && s->use_tls) {
        /* A failed handshake ends the connection quietly, as in asyncio
         * (outside debug mode). */
        tapio_tls_options opts;
        tapio__tls_config_options(&s->tls, true, &opts);
        tapio_transport *tls;
        err = tapio_tls_start(t, &opts, proto, user, NULL, NULL, &tls);
        if (err)
            tapio_transport_abort(t);
    }
    if (err)
        tapio__report_error(s->loop, "accepted connection dropped", err);
}

/* A failed accept: false when accepting is to pause (out of resources). */
static bool accept_failed(tapio_server *s, int err)
{
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        back_off(s, -err);
        return false;
    }
    if (err != EINTR && err != ECONNABORTED && err != EPROTO)
        tapio__report_error(s->loop, "socket.accept() failed", -err);
    return true;
}

static void on_listener_ready(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)loop;
    (void)events;
    listener *l = tapio__container_of(io, listener, io);
    tapio_server *s = l->server;
    for (int i = 0; i < s->backlog && s->serving; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            start_connection(s, fd);
            continue;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || !accept_failed(s, err))
            return;
    }
}

static void hold_connection(tapio_server *s, int fd)
{
    int *held = realloc(s->held, (s->nheld + 1) * sizeof(*held));
    if (!held) {
        close(fd);
        return;
    }
    s->held = held;
    s->held[s->nheld++] = fd;
}

static void close_held(tapio_server *s)
{
    for (size_t i = 0; i < s->nheld; i++)
        close(s->held[i]);
    free(s->held);
    s->held = NULL;
    s->nheld = 0;
}

/* A connection accepted by the backend: served, held or closed, as the
 * server stands. */
static void take_connection(tapio_server *s, int fd)
{
    if (s->closed)
        close(fd);
    else if (!s->serving)
        hold_connection(s, fd);
    else
        start_connection(s, fd);
}

/* Serving started again. The array is taken first: a protocol factory
 * may stop or close the server meanwhile. */
static void serve_held(tapio_server *s)
{
    int *held = s->held;
    size_t n = s->nheld;
    s->held = NULL;
    s->nheld = 0;
    for (size_t i = 0; i < n; i++)
        take_connection(s, held[i]);
    free(held);
}

/* A connection the backend accepted (io_uring), or its failure. One
 * accepted while accepting was being stopped waits for serving to start
 * again, as it would have in the backlog. */
static void on_listener_accepted(tapio_loop *loop, tapio__io *io, int fd)
{
    (void)loop;
    tapio_server *s = tapio__container_of(io, listener, io)->server;
    if (fd < 0)
        (void)accept_failed(s, -fd);
    else
        take_connection(s, fd);
}

int tapio_server_start_serving(tapio_server *s)
{
    if (s->closed)
        return -EBADF;
    if (s->serving)
        return 0;
    for (size_t i = 0; i < s->nlisteners; i++)
        if (listen(s->listeners[i].io.fd, s->backlog) < 0)
            return -errno;
    s->serving = true;
    set_accepting(s, true);
    if (s->nheld) /* from the loop: protocol factories run there */
        resume_later(s, 0);
    return 0;
}

void tapio_server_stop_serving(tapio_server *s)
{
    if (!s->serving)
        return;
    s->serving = false;
    cancel_retry(s);
    set_accepting(s, false);
}

bool tapio_server_is_serving(const tapio_server *s)
{
    return s->serving && !s->closed;
}

size_t tapio_server_sockets(const tapio_server *s, int *fds, size_t n)
{
    for (size_t i = 0; i < n && i < s->nlisteners; i++)
        fds[i] = s->listeners[i].io.fd;
    return s->nlisteners;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int tapio_server_port(const tapio_server *s)
{
    return s->nlisteners ? port_of(s->listeners[0].io.fd) : 0;
}

tapio_loop *tapio_server_loop(const tapio_server *s) { return s->loop; }

/* ---- lifetime --------------------------------------------------------- */

static void close_listeners(tapio_server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        tapio__io_detach(s->loop, &s->listeners[i].io);
        close(s->listeners[i].io.fd);
    }
    s->nlisteners = 0;
    if (s->unix_path) { /* not a file that took the path meanwhile */
        struct stat st;
        if (stat(s->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_ino == s->unix_ino)
            unlink(s->unix_path);
    }
}

static void server_free(tapio_server *s)
{
    cancel_retry(s);
    close_listeners(s);
    close_held(s);
    tapio__list_remove(&s->node);
    free(s->listeners);
    free(s->unix_path);
    tapio__tls_config_free(&s->tls);
    free(s);
}

static void finish_close(tapio_loop *loop, void *arg)
{
    tapio_server *s = arg;
    s->finishing = false;
    if (s->active)
        return; /* a factory running as close was called made one more:
                   its end finishes the close */
    if (s->on_closed)
        s->on_closed(loop, s->closed_arg);
    server_free(s);
}

/* Closed with no connection left: on_closed runs now when a loop callback
 * is running (`now`), else from the loop, never inside the user's call. */
static void maybe_finish_close(tapio_server *s, bool now)
{
    if (!s->closed || s->active || s->finishing)
        return;
    s->finishing = !now && tapio_call_soon(s->loop, finish_close, s);
    if (!s->finishing)
        finish_close(s->loop, s); /* (or out of memory: finish now) */
}

void tapio__server_connection_gone(tapio_server *s, bool from_loop)
{
    s->active--;
    maybe_finish_close(s, from_loop);
}

void tapio_server_close(tapio_server *s, tapio_callback on_closed, void *arg)
{
    if (s->closed)
        return;
    s->closed = true;
    s->on_closed = on_closed;
    s->closed_arg = arg;
    tapio_server_stop_serving(s);
    close_listeners(s);
    close_held(s);
    maybe_finish_close(s, false);
}

void tapio__servers_destroy_all(tapio_loop *loop)
{
    while (!tapio__list_empty(&loop->servers))
        server_free(tapio__container_of(loop->servers.next, tapio_server, node));
}

/* ---- creation --------------------------------------------------------- */

static int server_new(tapio_loop *loop, const tapio_server_options *opts,
                      tapio_protocol_factory factory, void *arg,
                      tapio_server **out)
{
    tapio_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->factory = factory;
    s->factory_arg = arg;
    s->backlog = opts && opts->backlog > 0 ? opts->backlog : DEFAULT_BACKLOG;
    s->keep_socket_file = opts && opts->keep_unix_socket_file;
    s->retry_delay = opts && opts->accept_retry_delay > 0
                         ? opts->accept_retry_delay
                         : DEFAULT_RETRY_DELAY;
    tapio__list_init(&s->node);
    if (opts && opts->tls) {
        s->use_tls = true;
        int err = tapio__tls_config_copy(&s->tls, opts->tls);
        if (err) { /* -EINVAL without a context */
            tapio__tls_config_free(&s->tls);
            free(s);
            return err;
        }
    }
    *out = s;
    return 0;
}

/* `shared`: a socket the caller made, which other processes may accept on
 * too (a prefork server's). Its connections are taken by accept4 at
 * readiness: a backend's accept request would claim each new connection
 * for this process even while its loop is busy, leaving it waiting there
 * rather than going to a process that runs (the kernel wakes one
 * accepting request per connection). */
static int add_listener(tapio_server *s, int fd, bool shared)
{
    listener *ls = realloc(s->listeners, (s->nlisteners + 1) * sizeof(*ls));
    if (!ls)
        return -ENOMEM;
    s->listeners = ls;
    /* Watchers are registered by fd, so moving the array is harmless only
     * before any is attached: attach all of them at the end. */
    listener *l = &ls[s->nlisteners++];
    tapio__io_init(&l->io, fd, on_listener_ready);
    l->io.refused = on_listener_refused;
    l->io.accepted = shared ? NULL : on_listener_accepted;
    l->server = s;
    return 0;
}

/* Attach the listeners and start serving unless asked not to. On failure
 * the server and its sockets are released. */
static int server_finish(tapio_server *s, const tapio_server_options *opts,
                         tapio_server **out)
{
    int err = 0;
    size_t attached = 0;
    for (; attached < s->nlisteners && !err; attached++)
        err = tapio__io_attach(s->loop, &s->listeners[attached].io);
    if (!err && !(opts && opts->no_start_serving))
        err = tapio_server_start_serving(s);
    if (err) {
        s->nlisteners = attached; /* detach only what was attached */
        server_free(s);
        return err;
    }
    tapio__list_push(&s->loop->servers, &s->node);
    *out = s;
    return 0;
}

static void discard(tapio_server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++)
        close(s->listeners[i].io.fd);
    free(s->listeners);
    free(s->unix_path);
    tapio__tls_config_free(&s->tls);
    free(s);
}

static int set_flag(int fd, int level, int name)
{
    int one = 1;
    return setsockopt(fd, level, name, &one, sizeof(one)) < 0 ? -errno : 0;
}

static void set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/* A listening socket for one address, with the server's socket options. */
static int bind_address(const tapio_server_address *a,
                        const tapio_server_options *opts, int shared_port)
{
    int fd = tapio__socket(a->family, a->socktype, a->protocol);
    if (fd < 0)
        return fd;
    int err = 0;
    if (!(opts && opts->no_reuse_address))
        err = set_flag(fd, SOL_SOCKET, SO_REUSEADDR);
    if (!err && opts && opts->reuse_port)
        err = set_flag(fd, SOL_SOCKET, SO_REUSEPORT);
    if (!err && opts && opts->keep_alive) /* accepted sockets inherit it */
        err = set_flag(fd, SOL_SOCKET, SO_KEEPALIVE);
    /* An IPv6 socket would also take IPv4 and collide with the IPv4 one. */
    if (!err && a->family == AF_INET6)
        err = set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY);
    if (!err) {
        struct sockaddr_storage ss;
        memcpy(&ss, a->addr, a->addrlen);
        if (shared_port)
            set_port((struct sockaddr *)&ss, shared_port);
        if (bind(fd, (struct sockaddr *)&ss, a->addrlen) < 0)
            err = -errno;
    }
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

static tapio_server_address address_of(const struct addrinfo *ai)
{
    return (tapio_server_address){ai->ai_family, ai->ai_socktype,
                                  ai->ai_protocol, ai->ai_addr,
                                  ai->ai_addrlen};
}

static bool already_bound(const tapio_server *s, const struct addrinfo *ai)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(s->listeners[i].io.fd, (struct sockaddr *)&ss, &len) ==
                0 &&
            ss.ss_family == ai->ai_family) {
            struct sockaddr_storage want;
            memcpy(&want, ai->ai_addr, ai->ai_addrlen);
            set_port((struct sockaddr *)&want, 0);
            set_port((struct sockaddr *)&ss, 0);
            if (memcmp(&ss, &want, ai->ai_addrlen) == 0)
                return true;
        }
    }
    return false;
}

/* Bind one host's addresses. With port 0 every socket after the first
 * reuses the first one's port when it is free there too. */
static int bind_host(tapio_server *s, const char *host, const char *port,
                     const tapio_server_options *opts)
{
    struct addrinfo hints = {0}, *res;
    hints.ai_family = opts ? opts->family : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    int rc = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);
    if (rc)
        return rc == EAI_SYSTEM ? -errno : TAPIO_ERR_EAI(rc);
    int err = 0;
    bool wildcard_port = strcmp(port, "0") == 0;
    for (struct addrinfo *ai = res; ai && !err; ai = ai->ai_next) {
        if (already_bound(s, ai))
            continue;
        int shared = wildcard_port && s->nlisteners
                         ? port_of(s->listeners[0].io.fd) : 0;
        tapio_server_address a = address_of(ai);
        int fd = bind_address(&a, opts, shared);
        if (fd == -EADDRINUSE && shared)
            fd = bind_address(&a, opts, 0);
        err = fd < 0 ? fd : add_listener(s, fd, false);
        if (err && fd >= 0)
            close(fd);
    }
    freeaddrinfo(res);
    return err;
}

int tapio_server_listen(tapio_loop *loop, const char *const *hosts,
                        const char *port, const tapio_server_options *opts,
                        tapio_protocol_factory factory, void *arg,
                        tapio_server **out)
{
    if (!factory)
        return -EINVAL;
    tapio_server *s;
    int err = server_new(loop, opts, factory, arg, &s);
    if (err)
        return err;
    if (!port)
        port = "0";
    if (!hosts || !hosts[0])
        err = bind_host(s, NULL, port, opts);
    for (size_t i = 0; hosts && hosts[i] && !err; i++)
        err = bind_host(s, hosts[i], port, opts);
    if (!err && !s->nlisteners)
        err = -EADDRNOTAVAIL;
    if (err) {
        discard(s);
        return err;
    }
    return server_finish(s, opts, out);
}

/* A family the system lacks (IPv6 disabled, say) is skipped, as asyncio
 * skips an address whose socket it cannot create. */
static bool family_unavailable(int err)
{
    return err == -EAFNOSUPPORT || err == -EPROTONOSUPPORT;
}

int tapio_server_bind(tapio_loop *loop, const tapio_server_address *addrs,
                      size_t n, const tapio_server_options *opts,
                      tapio_protocol_factory factory, void *arg,
                      tapio_server **out, size_t *failed)
{
    if (!factory || (n && !addrs))
        return -EINVAL;
    tapio_server *s;
    int err = server_new(loop, opts, factory, arg, &s);
    if (err)
        return err;
    size_t i = 0;
    for (; i < n && !err; i++) {
        int fd = bind_address(&addrs[i], opts, 0);
        if (fd < 0 && family_unavailable(fd))
            continue;
        err = fd < 0 ? fd : add_listener(s, fd, false);
        if (err && fd >= 0)
            close(fd);
    }
    if (err) {
        if (failed)
            *failed = i - 1;
        discard(s);
        return err;
    }
    return server_finish(s, opts, out);
}

/* Note the file a Unix listener is bound to, to remove it at close if it is
 * still that socket (asyncio 3.13's cleanup_socket); abstract names and
 * unbound sockets have no file. */
static int remember_socket_file(tapio_server *s, int fd)
{
    struct sockaddr_un sun;
    socklen_t len = sizeof(sun);
    struct stat st;
    if (s->keep_socket_file || s->unix_path ||
        getsockname(fd, (struct sockaddr *)&sun, &len) < 0 ||
        sun.sun_family != AF_UNIX ||
        len <= offsetof(struct sockaddr_un, sun_path) || !sun.sun_path[0])
        return 0;
    s->unix_path = strndup(sun.sun_path,
                           len - offsetof(struct sockaddr_un, sun_path));
    if (!s->unix_path)
        return -ENOMEM;
    if (stat(s->unix_path, &st) == 0) {
        s->unix_ino = st.st_ino;
    } else { /* already gone */
        free(s->unix_path);
        s->unix_path = NULL;
    }
    return 0;
}

/* Bind a Unix stream socket to the server's address. */
static int bind_unix(tapio_server *s, const struct sockaddr_storage *ss,
                     socklen_t len)
{
    int fd = tapio__socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int err = bind(fd, (const struct sockaddr *)ss, len) < 0 ? -errno : 0;
    if (!err && (err = remember_socket_file(s, fd)) == 0 &&
        (err = add_listener(s, fd, false)) && s->unix_path)
        unlink(s->unix_path); /* we made the file but cannot serve it */
    if (err)
        close(fd);
    return err;
}

int tapio_server_listen_unix(tapio_loop *loop, const char *path,
                             size_t path_len, const tapio_server_options *opts,
                             tapio_protocol_factory factory, void *arg,
                             tapio_server **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = tapio__unix_addr(path, path_len, &ss, &len);
    if (err || !factory)
        return err ? err : -EINVAL;
    tapio_server *s;
    if ((err = server_new(loop, opts, factory, arg, &s)))
        return err;
    if (path[0] != '\0') /* a file-system name, not an abstract one */
        tapio__remove_stale_socket(path);
    if ((err = bind_unix(s, &ss, len))) {
        discard(s);
        return err;
    }
    return server_finish(s, opts, out);
}

int tapio_server_from_fds(tapio_loop *loop, const int *fds, size_t nfds,
                          const tapio_server_options *opts,
                          tapio_protocol_factory factory, void *arg,
                          tapio_server **out)
{
    if (!factory || !nfds) {
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        return -EINVAL;
    }
    tapio_server *s = NULL;
    int err = server_new(loop, opts, factory, arg, &s);
    size_t i = 0;
    for (; i < nfds && !err; i++) {
        err = tapio__set_nonblocking(fds[i]);
        if (!err)
            err = remember_socket_file(s, fds[i]);
        if (!err)
            err = add_listener(s, fds[i], true);
        if (err)
            close(fds[i]);
    }
    for (; i < nfds; i++) /* the fds are ours even when the call fails */
        close(fds[i]);
    if (err) {
        if (s)
            discard(s);
        return err;
    }
    return server_finish(s, opts, out);
}
