/* TLS as a layer over a stream transport: the raw transport carries records
 * and its protocol is this layer; the layer's face is a tapio_transport
 * whose protocol sees plaintext. The crypto is an engine (OpenSSL memory
 * BIOs in tls_openssl.c, or a binding's). The state machine and the flow
 * control are asyncio's SSLProtocol's: handshake, wrapped, flushing,
 * shutdown, unwrapped. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

enum tls_state { UNWRAPPED, HANDSHAKE, WRAPPED, FLUSHING, SHUTDOWN };

/* Where the face's protocol is: connection_made not yet, made, after
 * eof_received, after connection_lost. */
enum app_state { APP_INIT, APP_MADE, APP_EOF, APP_LOST };

/* The TLS face: the transport its protocol sees, the common part first. */
struct tapio__tls {
    tapio_transport face;
    tapio_transport *raw;          /* referenced until the face is freed */
    tapio_loop *loop;
    const tapio_tls_engine *engine;
    void *es;                      /* the engine's state */
    enum tls_state state;
    enum app_state app;
    bool started;                  /* the handshake began */
    bool handshake_ok;             /* the handshake completed */
    bool eof_received;             /* the raw transport saw EOF */
    bool raw_writing_paused;       /* the raw transport asked us to wait */
    bool app_reading_paused;
    bool raw_reading_paused;
    char *backlog;                 /* plaintext written before WRAPPED */
    size_t backlog_len, backlog_cap;
    double handshake_timeout, shutdown_timeout;
    tapio_handle *handshake_timer, *shutdown_timer;
    /* Calls on the next iteration: they hold no reference (a closing loop
     * drops them unrun) and are cancelled when the face is released. */
    tapio_handle *start_call, *resume_call;
    tapio_tls_handshake_callback cb; /* until the handshake ends */
    void *cb_arg;
    char *last_error;              /* the engine's error(), kept when it goes */
    tapio__addresses addr;         /* the raw transport's */
};

static struct tapio__tls *layer(const tapio_transport *face)
{
    return (struct tapio__tls *)face;
}

/* ---- helpers ------------------------------------------------------------ */

static void cancel_timer(tapio_handle **h)
{
    if (*h) {
        tapio_handle_cancel(*h);
        tapio_handle_unref(*h);
        *h = NULL;
    }
}

static tapio_handle *start_timer(struct tapio__tls *tls, double delay,
                                 tapio_callback cb)
{
    tapio_handle *h = tapio_call_later(tls->loop, delay, cb, tls);
    if (h)
        tapio_handle_ref(h);
    return h;
}

/* cb(tls) on the next iteration, once while pending (*slot); run now when
 * out of memory. The callback starts with call_done(slot). */
static void call_soon_once(struct tapio__tls *tls, tapio_handle **slot,
                           tapio_callback cb)
{
    if (*slot)
        return;
    *slot = tapio_call_soon(tls->loop, cb, tls);
    if (*slot)
        tapio_handle_ref(*slot);
    else
        cb(tls->loop, tls);
}

static void call_done(tapio_handle **slot)
{
    if (*slot) {
        tapio_handle_unref(*slot);
        *slot = NULL;
    }
}

/* Report the handshake's end to whoever waits for it, once. */
static void wake_waiter(struct tapio__tls *tls, int err)
{
    tapio_tls_handshake_callback cb = tls->cb;
    tls->cb = NULL;
    if (cb)
        cb(&tls->face, err, tls->cb_arg);
}

/* asyncio's _fatal_error: the raw transport closes with the error, and its
 * connection_lost tells the face. */
static void fatal_error(struct tapio__tls *tls, int err)
{
    if (tls->raw)
        tapio_transport_fail(tls->raw, err);
}

static size_t write_buffer_size(const struct tapio__tls *tls)
{
    const void *data;
    if (!tls->engine) /* released with the face */
        return 0;
    return tls->engine->peek_out(tls->es, &data) + tls->backlog_len;
}

/* asyncio's _control_app_writing, given the records still held. */
static void control_app_writing_held(struct tapio__tls *tls, size_t held)
{
    tapio_transport *face = &tls->face;
    size_t size = held + tls->backlog_len;
    if (tapio__flow_pause(&face->flow, size)) {
        if (face->proto && face->proto->pause_writing)
            face->proto->pause_writing(face, face->user);
    } else if (tapio__flow_resume(&face->flow, size)) {
        if (face->proto && face->proto->resume_writing)
            face->proto->resume_writing(face, face->user);
    }
}

static void control_app_writing(struct tapio__tls *tls)
{
    const void *data;
    if (!tls->engine)
        return;
    control_app_writing_held(tls, tls->engine->peek_out(tls->es, &data));
}

/* Hand the records the engine produced to the raw transport; the last
 * peek tells what stays held. */
static void process_outgoing(struct tapio__tls *tls)
{
    const void *data;
    if (!tls->engine) /* released with the face: nothing more goes out */
        return;
    size_t len = tls->engine->peek_out(tls->es, &data);
    while (len > 0 && !tls->raw_writing_paused) {
        tapio_transport_write(tls->raw, data, len);
        tls->engine->consume_out(tls->es, len);
        len = tls->engine->peek_out(tls->es, &data);
    }
    control_app_writing_held(tls, len);
}

static void control_raw_reading(struct tapio__tls *tls)
{
    size_t size = tls->engine->pending_in(tls->es);
    if (size >= TAPIO__TLS_READ_HIGH_WATER && !tls->raw_reading_paused) {
        tls->raw_reading_paused = true;
        tapio_transport_pause_reading(tls->raw);
    } else if (size <= TAPIO__TLS_READ_HIGH_WATER / 4 &&
               tls->raw_reading_paused) {
        tls->raw_reading_paused = false;
        tapio_transport_resume_reading(tls->raw);
    }
}

/* ---- writing ------------------------------------------------------------ */

static int backlog_append(struct tapio__tls *tls, const char *data,
                          size_t len)
{
    if (tls->backlog_cap - tls->backlog_len < len) {
        size_t cap = tls->backlog_cap ? tls->backlog_cap : 16 * 1024;
        while (cap - tls->backlog_len < len)
            cap *= 2;
        char *buf = realloc(tls->backlog, cap);
        if (!buf)
            return -ENOMEM;
        tls->backlog = buf;
        tls->backlog_cap = cap;
    }
    memcpy(tls->backlog + tls->backlog_len, data, len);
    tls->backlog_len += len;
    return 0;
}

/* Encrypt from data; returns the bytes taken or an error (-EAGAIN: the
 * engine waits for the peer, keep the rest). */
static ssize_t encrypt(struct tapio__tls *tls, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = tls->engine->write(tls->es, data + done, len - done);
        if (n < 0)
            return n == -EAGAIN ? (ssize_t)done : n;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void do_write(struct tapio__tls *tls)
{
    if (tls->backlog_len) {
        ssize_t n = encrypt(tls, tls->backlog, tls->backlog_len);
        if (n < 0) {
            fatal_error(tls, (int)n);
            return;
        }
        memmove(tls->backlog, tls->backlog + n, tls->backlog_len - (size_t)n);
        tls->backlog_len -= (size_t)n;
    }
    process_outgoing(tls);
}

static int face_writev(tapio_transport *face, const struct iovec *iov,
                       int iovcnt)
{
    struct tapio__tls *tls = layer(face);
    /* Before the handshake (even before it began: tapio_tls_start gave the
     * face out) the plaintext waits in the backlog. */
    bool not_begun = tls->state == UNWRAPPED && !tls->started &&
                     !tapio__transport_closing(face);
    if (tls->state != HANDSHAKE && tls->state != WRAPPED && !not_begun)
        return 0; /* closing or closed: dropped, as asyncio drops it */
    for (int i = 0; i < iovcnt; i++) {
        const char *data = iov[i].iov_base;
        size_t len = iov[i].iov_len, done = 0;
        if (tls->state == WRAPPED && !tls->backlog_len) {
            ssize_t n = encrypt(tls, data, len);
            if (n < 0) {
                fatal_error(tls, (int)n);
                return 0;
            }
            done = (size_t)n;
        }
        if (done < len) {
            int err = backlog_append(tls, data + done, len - done);
            if (err)
                return err;
        }
    }
    if (tls->state == WRAPPED)
        process_outgoing(tls);
    else
        control_app_writing(tls);
    return 0;
}

/* ---- reading ------------------------------------------------------------ */

static void start_shutdown(struct tapio__tls *tls);

static void call_eof_received(struct tapio__tls *tls)
{
    tapio_transport *face = &tls->face;
    if (tls->app != APP_MADE)
        return;
    tls->app = APP_EOF;
    /* Keeping the connection open has no effect with TLS (asyncio warns). */
    if (face->proto && face->proto->eof_received)
        face->proto->eof_received(face, face->user);
}

/* Decrypt into the protocol until the engine needs more records, the
 * protocol pauses, or the peer's close_notify. */
static void read_plaintext(struct tapio__tls *tls)
{
    tapio_transport *face = &tls->face;
    ssize_t n = 1;
    while (!tls->app_reading_paused &&
           (tls->state == WRAPPED || tls->state == FLUSHING) &&
           tls->app != APP_LOST) {
        const tapio_protocol *proto = face->proto;
        char *buf = tls->loop->read_buf; /* free: feed copied the records */
        size_t cap = TAPIO__READ_SIZE, off = 0;
        if (proto && proto->get_buffer) {
            buf = proto->get_buffer(face, tls->engine->pending_in(tls->es),
                                    &cap, face->user);
            if (!buf || cap == 0) {
                fatal_error(tls, TAPIO_EPROTOCOL);
                return;
            }
        }
        while (off < cap &&
               (n = tls->engine->read(tls->es, buf + off, cap - off)) > 0)
            off += (size_t)n;
        if (off) {
            if (proto && proto->get_buffer) {
                if (proto->buffer_updated)
                    proto->buffer_updated(face, off, face->user);
            } else if (proto && proto->data_received) {
                proto->data_received(face, buf, off, face->user);
            }
        }
        if (n == 0) { /* close_notify */
            call_eof_received(tls);
            start_shutdown(tls);
            return;
        }
        if (n < 0) {
            if (n != -EAGAIN)
                fatal_error(tls, (int)n);
            return;
        }
        /* The buffer filled: go round again for what is left. */
    }
}

static void do_read(struct tapio__tls *tls)
{
    if (tls->state != WRAPPED && tls->state != FLUSHING)
        return;
    tapio_transport_ref(&tls->face);
    if (!tls->app_reading_paused) {
        read_plaintext(tls);
        if (tls->state == WRAPPED || tls->state == FLUSHING) {
            if (tls->backlog_len)
                do_write(tls);
            else
                process_outgoing(tls);
        }
    }
    if (tls->raw && tls->state != UNWRAPPED)
        control_raw_reading(tls);
    tapio_transport_unref(&tls->face);
}

/* ---- handshake ------------------------------------------------------------ */

static void handshake_complete(struct tapio__tls *tls, int err)
{
    cancel_timer(&tls->handshake_timer);
    tapio_transport *face = &tls->face;
    if (err) {
        tls->state = UNWRAPPED;
        fatal_error(tls, err);
        wake_waiter(tls, err);
        return;
    }
    tls->state = WRAPPED;
    tls->handshake_ok = true;
    tapio_transport_ref(face);
    if (tls->app == APP_INIT) {
        tls->app = APP_MADE;
        tapio__transport_set_open(face);
        if (face->proto && face->proto->connection_made)
            face->proto->connection_made(face, face->user);
    }
    wake_waiter(tls, 0);
    do_read(tls);
    tapio_transport_unref(face);
}

static void do_handshake(struct tapio__tls *tls)
{
    int r = tls->engine->handshake(tls->es);
    if (r == -EAGAIN)
        process_outgoing(tls);
    else
        handshake_complete(tls, r);
}

static void handshake_timed_out(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct tapio__tls *tls = arg;
    tapio_handle_unref(tls->handshake_timer);
    tls->handshake_timer = NULL;
    if (tls->state == HANDSHAKE)
        fatal_error(tls, -ECONNABORTED);
}

static void start_handshake(struct tapio__tls *tls)
{
    if (tls->started || tls->state != UNWRAPPED || !tls->raw ||
        tapio__transport_closing(&tls->face))
        return;
    tls->started = true;
    tls->state = HANDSHAKE;
    tls->handshake_timer =
        start_timer(tls, tls->handshake_timeout, handshake_timed_out);
    do_handshake(tls);
}

/* ---- shutdown ------------------------------------------------------------ */

/* Both close_notify went (or the peer's stream ended): the raw transport
 * closes at once, as asyncio's _on_shutdown_complete closes it, so its
 * connection_lost and then the face's follow on the next iterations. */
static void shutdown_complete(struct tapio__tls *tls, int err)
{
    cancel_timer(&tls->shutdown_timer);
    if (err) {
        fatal_error(tls, err);
        return;
    }
    if (tls->raw)
        tapio_transport_close(tls->raw);
}

static void do_shutdown(struct tapio__tls *tls)
{
    if (!tls->eof_received) {
        int r = tls->engine->shutdown(tls->es);
        if (r == -EAGAIN) {
            process_outgoing(tls);
            return;
        }
        if (r < 0) {
            shutdown_complete(tls, r);
            return;
        }
    }
    process_outgoing(tls);
    call_eof_received(tls);
    shutdown_complete(tls, 0);
}

static void do_flush(struct tapio__tls *tls)
{
    do_read(tls);
    if (tls->state != FLUSHING)
        return;
    tls->state = SHUTDOWN;
    do_shutdown(tls);
}

static void shutdown_timed_out(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct tapio__tls *tls = arg;
    tapio_handle_unref(tls->shutdown_timer);
    tls->shutdown_timer = NULL;
    if (tls->state == FLUSHING || tls->state == SHUTDOWN)
        fatal_error(tls, -ETIMEDOUT);
}

static void start_shutdown(struct tapio__tls *tls)
{
    if (tls->state == UNWRAPPED && !tls->started && tls->raw) {
        /* Closed before the handshake began: end it as in the handshake. */
        tapio__transport_set_closing(&tls->face);
        tls->started = true;
        tapio_transport_abort(tls->raw);
        return;
    }
    if (tls->state == FLUSHING || tls->state == SHUTDOWN ||
        tls->state == UNWRAPPED)
        return;
    tapio__transport_set_closing(&tls->face);
    if (tls->state == HANDSHAKE) {
        tls->state = UNWRAPPED;
        tapio_transport_abort(tls->raw);
        return;
    }
    tls->state = FLUSHING;
    tls->shutdown_timer =
        start_timer(tls, tls->shutdown_timeout, shutdown_timed_out);
    do_flush(tls);
}

/* ---- the raw transport's protocol ---------------------------------------- */

static void raw_connection_made(tapio_transport *raw, void *user)
{
    (void)raw;
    start_handshake(user);
}

static void raw_data_received(tapio_transport *raw, const void *data,
                              size_t len, void *user)
{
    struct tapio__tls *tls = user;
    int err = tls->engine->feed(tls->es, data, len);
    if (err) {
        tapio_transport_fail(raw, err);
        return;
    }
    switch (tls->state) {
    case HANDSHAKE: do_handshake(tls); break;
    case WRAPPED: do_read(tls); break;
    case FLUSHING: do_flush(tls); break;
    case SHUTDOWN: do_shutdown(tls); break;
    case UNWRAPPED: break; /* kept until the handshake starts */
    }
}

static bool raw_eof_received(tapio_transport *raw, void *user)
{
    (void)raw;
    struct tapio__tls *tls = user;
    tls->eof_received = true;
    switch (tls->state) {
    case HANDSHAKE:
        handshake_complete(tls, -ECONNRESET);
        break;
    case WRAPPED:
        tls->state = FLUSHING;
        if (tls->app_reading_paused)
            return true;
        do_flush(tls);
        break;
    case FLUSHING:
        do_write(tls);
        tls->state = SHUTDOWN;
        do_shutdown(tls);
        break;
    case SHUTDOWN:
        do_shutdown(tls);
        break;
    case UNWRAPPED:
        break;
    }
    return false;
}

static void raw_connection_lost(tapio_transport *raw, int err, void *user)
{
    (void)raw;
    struct tapio__tls *tls = user;
    tapio_transport *face = &tls->face;
    tls->backlog_len = 0;
    const void *data;
    size_t pending = tls->engine->peek_out(tls->es, &data);
    tls->engine->consume_out(tls->es, pending);
    cancel_timer(&tls->handshake_timer);
    cancel_timer(&tls->shutdown_timer);
    tapio__transport_set_closing(face);
    tls->state = UNWRAPPED;
    /* A transport whose handshake failed ends with its handshake callback;
     * only an established one reports connection_lost. */
    bool deliver = tls->handshake_ok &&
                   (tls->app == APP_MADE || tls->app == APP_EOF);
    tapio_transport_ref(face);
    if (deliver) {
        tls->app = APP_LOST;
        tapio__transport_lost(face, err);
    }
    wake_waiter(tls, err ? err : -ECONNABORTED);
    if (!deliver)
        tapio__transport_drop(face);
    tapio_transport_unref(face);
}

static void raw_pause_writing(tapio_transport *raw, void *user)
{
    (void)raw;
    ((struct tapio__tls *)user)->raw_writing_paused = true;
}

static void raw_resume_writing(tapio_transport *raw, void *user)
{
    (void)raw;
    struct tapio__tls *tls = user;
    tls->raw_writing_paused = false;
    process_outgoing(tls);
}

static const tapio_protocol raw_protocol = {
    .connection_made = raw_connection_made,
    .data_received = raw_data_received,
    .eof_received = raw_eof_received,
    .connection_lost = raw_connection_lost,
    .pause_writing = raw_pause_writing,
    .resume_writing = raw_resume_writing,
};

bool tapio__tls_is_raw(const tapio_transport *t)
{
    return t->proto == &raw_protocol;
}

/* ---- the face's calls ------------------------------------------------------ */

static void face_close(tapio_transport *face)
{
    tapio__transport_set_closing(face);
    start_shutdown(layer(face));
}

/* asyncio's SSL _fatal_error: the connection under it fails; the face
 * drops what is written from now on but tells is_closing() only once the
 * connection is lost (on_raw_lost), as asyncio's TLS transport does. */
static void face_fail(tapio_transport *face, int err)
{
    struct tapio__tls *tls = layer(face);
    tls->state = UNWRAPPED;
    if (tls->raw)
        tapio_transport_fail(tls->raw, err);
}

static void resume_later(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct tapio__tls *tls = arg;
    call_done(&tls->resume_call);
    if (tls->raw && !tapio__transport_released(&tls->face)) {
        switch (tls->state) {
        case WRAPPED: do_read(tls); break;
        case FLUSHING: do_flush(tls); break;
        case SHUTDOWN: do_shutdown(tls); break;
        default: break;
        }
    }
}

static void face_pause_reading(tapio_transport *face)
{
    layer(face)->app_reading_paused = true;
}

static void face_resume_reading(tapio_transport *face)
{
    struct tapio__tls *tls = layer(face);
    if (!tls->app_reading_paused)
        return;
    tls->app_reading_paused = false;
    /* Never re-entrantly: without memory for the call, reading resumes
     * with the next records. */
    if (!tls->resume_call &&
        (tls->resume_call = tapio_call_soon(tls->loop, resume_later, tls)))
        tapio_handle_ref(tls->resume_call);
}

static bool face_is_reading(const tapio_transport *face)
{
    return !tapio__transport_released(face) && !layer(face)->app_reading_paused;
}

static size_t face_buffer_size(const tapio_transport *face)
{
    return write_buffer_size(layer(face));
}

static void face_limits_changed(tapio_transport *face)
{
    if (!tapio__transport_released(face))
        control_app_writing(layer(face));
}

static int face_fd(const tapio_transport *face)
{
    const struct tapio__tls *tls = layer(face);
    return tls->raw && !tapio__transport_released(face) ? tapio_transport_fd(tls->raw) : -1;
}

/* The face is released from the loop: stop its timers, destroy its engine
 * (its last error stays readable). */
static void face_release(tapio_transport *face)
{
    struct tapio__tls *tls = layer(face);
    cancel_timer(&tls->handshake_timer);
    cancel_timer(&tls->shutdown_timer);
    cancel_timer(&tls->start_call);
    cancel_timer(&tls->resume_call);
    tls->state = UNWRAPPED;
    tls->cb = NULL;
    /* connection_lost (or the failed handshake's callback) has run: the
     * engine's state goes now, not when the last reference does, so that
     * whatever it holds (a binding's objects, the context) is let go. */
    if (tls->engine) {
        const char *text =
            tls->engine->error ? tls->engine->error(tls->es) : NULL;
        if (text)
            tls->last_error = strdup(text); /* NULL without memory: no text */
        tls->engine->destroy(tls->es);
        tls->engine = NULL;
        tls->es = NULL;
    }
}

/* The face's last reference went: the layer goes with it (and its
 * reference to the raw transport). */
static void face_free(tapio_transport *face)
{
    struct tapio__tls *tls = layer(face);
    face_release(face);
    if (tls->raw) {
        void *user;
        if (tapio_transport_get_protocol(tls->raw, &user) == &raw_protocol &&
            user == tls)
            tapio_transport_set_protocol(tls->raw, NULL, NULL);
        tapio_transport_unref(tls->raw);
    }
    free(tls->backlog);
    free(tls->last_error);
    free(tls);
}

static const tapio__transport_ops face_ops = {
    .writev = face_writev,
    .write_eof = NULL, /* asyncio's SSL transports cannot write EOF */
    .sendfile = NULL,  /* nor sendfile: loop.sendfile falls back */
    .close = face_close,
    .fail = face_fail,
    .pause_reading = face_pause_reading,
    .resume_reading = face_resume_reading,
    .is_reading = face_is_reading,
    .buffer_size = face_buffer_size,
    .limits_changed = face_limits_changed,
    .fd = face_fd,
    .release = face_release,
    .free = face_free,
};

/* ---- creation ------------------------------------------------------------ */

static double or_default(double value, double fallback)
{
    return value > 0 ? value : fallback;
}

/* The engine and its state for opts. */
static int make_engine(const tapio_tls_options *opts,
                       const tapio_tls_engine **engine, void **state)
{
    if (opts->engine) {
        *engine = opts->engine;
        *state = opts->engine_state;
        return 0;
    }
    if (!opts->context)
        return -EINVAL;
    *engine = &tapio__openssl_engine;
    return tapio__openssl_state_new(opts->context, opts->server_side,
                                    opts->server_hostname, state);
}

/* start_tls on a live transport, in asyncio's order: the handshake
 * starts, then reading resumes (the caller may have paused it). */
static void start_later(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct tapio__tls *tls = arg;
    call_done(&tls->start_call);
    start_handshake(tls);
    if (tls->raw && !tls->raw_reading_paused && !tapio__transport_closing(&tls->face))
        tapio_transport_resume_reading(tls->raw);
}

static struct tapio__tls *layer_new(tapio_transport *raw,
                                    const tapio_tls_options *opts,
                                    const tapio_protocol *proto, void *user)
{
    struct tapio__tls *tls = calloc(1, sizeof(*tls));
    if (!tls)
        return NULL;
    tapio_transport *face = &tls->face;
    tapio__transport_init(face, raw->loop, &face_ops, TAPIO__TLS, proto, user,
                          TAPIO__TLS_HIGH_WATER, &tls->addr);
    tapio__list_push(&raw->loop->transports, &face->node);
    tls->addr = *raw->addr;
    tls->loop = raw->loop;
    tls->handshake_timeout =
        or_default(opts->handshake_timeout, TAPIO_TLS_HANDSHAKE_TIMEOUT);
    tls->shutdown_timeout =
        or_default(opts->shutdown_timeout, TAPIO_TLS_SHUTDOWN_TIMEOUT);
    return tls;
}

int tapio_tls_start(tapio_transport *raw, const tapio_tls_options *opts,
                    const tapio_protocol *proto, void *user,
                    tapio_tls_handshake_callback cb, void *arg,
                    tapio_transport **out)
{
    const tapio_tls_engine *engine = NULL;
    void *es = NULL;
    int err = make_engine(opts, &engine, &es);
    if (err) {
        if (opts->engine && opts->engine_state)
            opts->engine->destroy(opts->engine_state);
        return err;
    }
    struct tapio__tls *tls = NULL;
    if (tapio__transport_closing(raw) || (raw->kind != TAPIO__SOCKET && raw->kind != TAPIO__TLS))
        err = -EINVAL;
    else if (!(tls = layer_new(raw, opts, proto, user)))
        err = -ENOMEM;
    if (err) {
        engine->destroy(es);
        return err;
    }
    tls->engine = engine;
    tls->es = es;
    tls->cb = cb;
    tls->cb_arg = arg;
    if (opts->skip_connection_made) {
        tls->app = APP_MADE;
        tapio__transport_set_open(&tls->face);
    }
    tapio_transport_ref(raw);
    tls->raw = raw;
    tapio_transport_set_protocol(raw, &raw_protocol, tls);
    /* A raw transport not yet started begins with our connection_made; a
     * live one (start_tls) starts the handshake on the next iteration. */
    if (tapio__transport_started(raw))
        call_soon_once(tls, &tls->start_call, start_later);
    *out = &tls->face;
    return 0;
}

/* ---- introspection ------------------------------------------------------- */

bool tapio_transport_is_tls(const tapio_transport *t)
{
    return t->kind == TAPIO__TLS;
}

tapio_transport *tapio_tls_raw(const tapio_transport *t)
{
    return t->kind == TAPIO__TLS ? layer(t)->raw : NULL;
}

const char *tapio_tls_error(const tapio_transport *t)
{
    const struct tapio__tls *tls = t->kind == TAPIO__TLS ? layer(t) : NULL;
    if (!tls)
        return NULL;
    if (!tls->engine) /* released: what it said last */
        return tls->last_error;
    return tls->engine->error ? tls->engine->error(tls->es) : NULL;
}

void *tapio_tls_engine_state(const tapio_transport *t)
{
    return t->kind == TAPIO__TLS ? layer(t)->es : NULL;
}

/* The OpenSSL state of a TLS transport on libtapio's own engine. */
void *tapio__tls_openssl_state(const tapio_transport *t)
{
    const struct tapio__tls *tls = t->kind == TAPIO__TLS ? layer(t) : NULL;
    return tls && tls->engine == &tapio__openssl_engine ? tls->es : NULL;
}

/* ---- settings kept by servers and connect requests ---------------------- */

int tapio__tls_config_copy(tapio__tls_config *cfg,
                           const tapio_tls_options *opts)
{
    memset(cfg, 0, sizeof(*cfg));
    if (!opts->context || opts->engine)
        return -EINVAL; /* an engine's state serves one connection only */
    if (opts->server_hostname &&
        !(cfg->server_hostname = strdup(opts->server_hostname)))
        return -ENOMEM;
    cfg->context = opts->context;
    tapio_tls_context_ref(cfg->context);
    cfg->handshake_timeout = opts->handshake_timeout;
    cfg->shutdown_timeout = opts->shutdown_timeout;
    return 0;
}

void tapio__tls_config_free(tapio__tls_config *cfg)
{
    if (cfg->context)
        tapio_tls_context_unref(cfg->context);
    free(cfg->server_hostname);
    memset(cfg, 0, sizeof(*cfg));
}

void tapio__tls_config_options(const tapio__tls_config *cfg, bool server_side,
                               tapio_tls_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->context = cfg->context;
    opts->server_side = server_side;
    opts->server_hostname = cfg->server_hostname;
    opts->handshake_timeout = cfg->handshake_timeout;
    opts->shutdown_timeout = cfg->shutdown_timeout;
}
