/*
 * streams.c — StreamReader and StreamWriter over any stream transport.
 *
 * A tapio_stream is the transport's protocol (asyncio's
 * StreamReaderProtocol): it buffers what arrives and completes at most one
 * read request at a time from it, and it keeps the writer's drain and
 * wait_closed waiters. It uses libtapio's public transport API only, so it
 * works the same over every transport kind.
 *
 * A request is evaluated by one pure function (evaluate) against the bytes
 * available; when nothing is buffered, it is evaluated against the bytes the
 * transport hands to data_received, so a request met by what just arrived is
 * delivered from the transport's own buffer, without a copy.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapio.h"

enum req_kind { REQ_NONE, REQ_READ, REQ_READ_ALL, REQ_EXACTLY, REQ_UNTIL,
                REQ_LINE };

typedef struct request {
    enum req_kind kind;
    size_t n;              /* read, readexactly */
    struct iovec *seps;    /* readuntil; owned unless readline's */
    int nseps;
    size_t min_sep, max_sep;
    size_t scan;           /* readuntil: no match starts before this */
    tapio_stream_read_callback cb;
    void *arg;
} request;

typedef struct waiter {
    struct waiter *next;
    bool closed;           /* wait_closed, else drain */
    tapio_stream_callback cb;
    void *arg;
} waiter;

struct tapio_stream {
    tapio_loop *loop;
    tapio_transport *t;    /* referenced */
    int refs;              /* owner + connection + calls in progress */
    bool owned, attached, eof, lost, paused_reading, paused_writing;
    int err;               /* the reader's exception */
    int lost_err;
    size_t limit;
    unsigned char *buf;
    size_t cap, start, end;
    request req;
    waiter *waiters;
    waiter spare;          /* one waiter without malloc: drain per write */
    bool spare_used;
    tapio_handle *kick;    /* referenced; runs process() */
    tapio_stream_callback tls_cb;
    void *tls_arg;
};

/* What a request yields from the bytes available. */
typedef struct outcome {
    int err;
    size_t len;            /* bytes reported (or LimitOverrun's count) */
    size_t consume;        /* bytes taken from the front */
} outcome;

static const struct iovec newline = {(void *)"\n", 1};

/* ------------------------------------------------------------ lifetime */

static void stream_destroy(tapio_stream *s)
{
    if (s->kick) {
        tapio_handle_cancel(s->kick);
        tapio_handle_unref(s->kick);
    }
    if (s->t)
        tapio_transport_unref(s->t);
    free(s->buf);
    free(s);
}

static void stream_unref(tapio_stream *s)
{
    if (--s->refs == 0)
        stream_destroy(s);
}

int tapio_stream_new(tapio_loop *loop, size_t limit, tapio_stream **out)
{
    tapio_stream *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->limit = limit ? limit : TAPIO_STREAM_DEFAULT_LIMIT;
    s->refs = 1;
    s->owned = true;
    *out = s;
    return 0;
}

static void request_clear(request *r)
{
    if (r->seps != &newline)
        free(r->seps);
    memset(r, 0, sizeof *r);
}

static waiter *waiter_alloc(tapio_stream *s)
{
    if (s->spare_used)
        return malloc(sizeof(waiter));
    s->spare_used = true;
    return &s->spare;
}

static void waiter_free(tapio_stream *s, waiter *w)
{
    if (w == &s->spare)
        s->spare_used = false;
    else
        free(w);
}

static void waiters_clear(tapio_stream *s)
{
    while (s->waiters) {
        waiter *w = s->waiters;
        s->waiters = w->next;
        waiter_free(s, w);
    }
}

void tapio_stream_free(tapio_stream *s)
{
    if (!s)
        return;
    s->owned = false;
    s->tls_cb = NULL;
    request_clear(&s->req);
    waiters_clear(s);
    if (s->t && !s->lost)
        tapio_transport_close(s->t);
    stream_unref(s);
}

/* ----------------------------------------------------------- the buffer */

static size_t buffered(const tapio_stream *s)
{
    return s->end - s->start;
}

/* Make room for n more bytes: move the unread bytes to the front, grow. */
static int reserve(tapio_stream *s, size_t n)
{
    if (s->cap - s->end >= n)
        return 0;
    size_t have = buffered(s);
    if (have)
        memmove(s->buf, s->buf + s->start, have);
    s->start = 0;
    s->end = have;
    if (s->cap - have >= n)
        return 0;
    size_t cap = s->cap ? s->cap : 4096;
    while (cap - have < n)
        cap *= 2;
    unsigned char *p = realloc(s->buf, cap);
    if (!p)
        return -ENOMEM;
    s->buf = p;
    s->cap = cap;
    return 0;
}

static int append(tapio_stream *s, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int err = reserve(s, len);
    if (err)
        return err;
    memcpy(s->buf + s->end, data, len);
    s->end += len;
    return 0;
}

static void consume(tapio_stream *s, size_t n)
{
    s->start += n;
    if (s->start == s->end)
        s->start = s->end = 0;
}

/* ------------------------------------------------- evaluating a request */

static bool eval_read(const request *r, size_t n, bool eof, outcome *o)
{
    if (n == 0 && !eof)
        return false;
    o->len = o->consume = n < r->n ? n : r->n;
    return true;
}

static bool eval_exactly(const request *r, size_t n, bool eof, outcome *o)
{
    if (n >= r->n) {
        o->len = o->consume = r->n;
        return true;
    }
    if (!eof)
        return false;
    o->err = TAPIO_EINCOMPLETE;
    o->len = o->consume = n;
    return true;
}

/* The earliest end of any separator in p[from, n): true if one is found. */
static bool find_sep(const request *r, const unsigned char *p, size_t n,
                     size_t *start, size_t *end)
{
    bool found = false;
    for (int i = 0; i < r->nseps; i++) {
        const struct iovec *sep = &r->seps[i];
        const unsigned char *m =
            memmem(p + r->scan, n - r->scan, sep->iov_base, sep->iov_len);
        if (!m)
            continue;
        size_t at = (size_t)(m - p);
        if (!found || at + sep->iov_len < *end) {
            *start = at;
            *end = at + sep->iov_len;
            found = true;
        }
    }
    return found;
}

/* asyncio's readuntil: the limit is checked against where the search got
 * to, and a found separator against where it starts. */
static bool eval_until(request *r, const unsigned char *p, size_t n, bool eof,
                       size_t limit, outcome *o)
{
    size_t start = 0, end = 0;
    if (n - r->scan >= r->min_sep) {
        if (find_sep(r, p, n, &start, &end)) {
            if (start > limit) {
                o->err = TAPIO_ELIMIT;
                o->len = start;
            } else {
                o->len = o->consume = end;
            }
            return true;
        }
        r->scan = n + 1 > r->max_sep ? n + 1 - r->max_sep : 0;
    }
    if (r->scan > limit) { /* (evaluating again gives the same answer) */
        o->err = TAPIO_ELIMIT;
        o->len = r->scan;
        return true;
    }
    if (!eof)
        return false;
    o->err = TAPIO_EINCOMPLETE;
    o->len = o->consume = n;
    return true;
}

/* readline turns IncompleteRead into the partial line and drops the line
 * that overran the limit (with its separator, else the whole buffer). */
static void line_outcome(const unsigned char *p, size_t n, outcome *o)
{
    if (o->err == TAPIO_EINCOMPLETE) {
        o->err = 0;
    } else if (o->err == TAPIO_ELIMIT) {
        bool sep = o->len < n && p[o->len] == '\n';
        o->consume = sep ? o->len + 1 : n;
    }
}

static bool evaluate(tapio_stream *s, const unsigned char *p, size_t n,
                     outcome *o)
{
    request *r = &s->req;
    memset(o, 0, sizeof *o);
    if (s->err) {
        o->err = s->err;
        return true;
    }
    switch (r->kind) {
    case REQ_READ:
        return eval_read(r, n, s->eof, o);
    case REQ_READ_ALL:
        if (!s->eof)
            return false;
        o->len = o->consume = n;
        return true;
    case REQ_EXACTLY:
        return eval_exactly(r, n, s->eof, o);
    case REQ_UNTIL:
        return eval_until(r, p, n, s->eof, s->limit, o);
    case REQ_LINE:
        if (!eval_until(r, p, n, s->eof, s->limit, o))
            return false;
        line_outcome(p, n, o);
        return true;
    default:
        return false;
    }
}

/* -------------------------------------------------- completing requests */

/* Hand p[0, o->len) to the request's callback; `from_buffer` says whether
 * p is the stream's buffer (consumed first: the bytes stay in place until
 * the next append, which cannot happen during the callback). */
static void deliver(tapio_stream *s, const unsigned char *p, const outcome *o,
                    bool from_buffer)
{
    request r = s->req;
    memset(&s->req, 0, sizeof s->req);
    if (from_buffer)
        consume(s, o->consume);
    r.cb(s, p, o->len, o->err, r.arg);
    request_clear(&r);
}

static bool complete_from_buffer(tapio_stream *s)
{
    outcome o;
    if (!s->req.kind || !evaluate(s, s->buf + s->start, buffered(s), &o))
        return false;
    deliver(s, s->buf + s->start, &o, true);
    return true;
}

/* The limit's rule: pause above 2 * limit unless a read waits for more;
 * resume at or below the limit, or when a read waits. */
static void update_reading(tapio_stream *s)
{
    if (!s->t || s->lost)
        return;
    bool waiting = s->req.kind != REQ_NONE;
    size_t n = buffered(s);
    if (!s->paused_reading && !waiting && n > 2 * s->limit) {
        s->paused_reading = true;
        tapio_transport_pause_reading(s->t);
    } else if (s->paused_reading && (waiting || n <= s->limit)) {
        s->paused_reading = false;
        tapio_transport_resume_reading(s->t);
    }
}

static int drain_error(const tapio_stream *s)
{
    if (s->err)
        return s->err;
    if (s->lost)
        return s->lost_err ? s->lost_err : -ECONNRESET;
    return 0;
}

static bool waiter_ready(const tapio_stream *s, const waiter *w)
{
    if (w->closed)
        return s->lost;
    return s->err || s->lost || !s->paused_writing;
}

/* Run the waiters whose moment came, in the order they were made. */
static void fire_waiters(tapio_stream *s)
{
    waiter *ready = NULL, **tail = &ready, **pp = &s->waiters;
    while (*pp) {
        waiter *w = *pp;
        if (!waiter_ready(s, w)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = NULL;
        *tail = w;
        tail = &w->next;
    }
    while (ready) {
        waiter w = *ready;
        waiter_free(s, ready); /* first, so the callback may reuse it */
        ready = w.next;
        if (s->owned)
            w.cb(s, w.closed ? s->lost_err : drain_error(s), w.arg);
    }
}

static void process(tapio_stream *s)
{
    s->refs++;
    while (complete_from_buffer(s))
        ;
    fire_waiters(s);
    update_reading(s);
    stream_unref(s);
}

static void on_kick(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_stream *s = arg;
    tapio_handle *h = s->kick;
    s->kick = NULL;
    s->refs++;
    tapio_handle_unref(h);
    process(s);
    stream_unref(s);
}

/* Look at the requests on the next iteration (never inside the user's
 * call, as asyncio completes no awaitable inside the call that made it). */
static int schedule(tapio_stream *s)
{
    if (s->kick)
        return 0;
    s->kick = tapio_call_soon(s->loop, on_kick, s);
    if (!s->kick)
        return -ENOMEM;
    tapio_handle_ref(s->kick);
    return 0;
}

/* ------------------------------------------------------------- reading */

/* Whether the pending request can complete from what is buffered. */
static bool ready_now(tapio_stream *s)
{
    outcome o;
    return evaluate(s, s->buf + s->start, buffered(s), &o);
}

/* A request that cannot complete yet needs no wake-up: data_received,
 * eof_received or connection_lost completes it. */
static int submit(tapio_stream *s, const request *r)
{
    if (s->req.kind)
        return -EBUSY;
    s->req = *r;
    if (!ready_now(s)) {
        update_reading(s); /* a read that waits lets reading go on */
        return 0;
    }
    int err = schedule(s);
    if (err)
        memset(&s->req, 0, sizeof s->req);
    return err;
}

int tapio_stream_read(tapio_stream *s, ssize_t n,
                      tapio_stream_read_callback cb, void *arg)
{
    request r = {.kind = n < 0 ? REQ_READ_ALL : REQ_READ, .n = (size_t)n,
                 .cb = cb, .arg = arg};
    if (n == 0)
        r.kind = REQ_EXACTLY; /* delivers nothing at once, as read(0) */
    return submit(s, &r);
}

int tapio_stream_readexactly(tapio_stream *s, size_t n,
                             tapio_stream_read_callback cb, void *arg)
{
    request r = {.kind = REQ_EXACTLY, .n = n, .cb = cb, .arg = arg};
    return submit(s, &r);
}

int tapio_stream_readline(tapio_stream *s, tapio_stream_read_callback cb,
                          void *arg)
{
    request r = {.kind = REQ_LINE, .seps = (struct iovec *)&newline,
                 .nseps = 1, .min_sep = 1, .max_sep = 1, .cb = cb,
                 .arg = arg};
    return submit(s, &r);
}

/* One allocation: the iovecs, then the separators' bytes. */
static int copy_seps(const struct iovec *seps, int n, request *r)
{
    size_t total = (size_t)n * sizeof *seps;
    for (int i = 0; i < n; i++) {
        if (seps[i].iov_len == 0)
            return -EINVAL;
        total += seps[i].iov_len;
    }
    struct iovec *copy = malloc(total);
    if (!copy)
        return -ENOMEM;
    unsigned char *bytes = (unsigned char *)(copy + n);
    r->min_sep = SIZE_MAX;
    for (int i = 0; i < n; i++) {
        size_t len = seps[i].iov_len;
        memcpy(bytes, seps[i].iov_base, len);
        copy[i] = (struct iovec){bytes, len};
        bytes += len;
        r->min_sep = len < r->min_sep ? len : r->min_sep;
        r->max_sep = len > r->max_sep ? len : r->max_sep;
    }
    r->seps = copy;
    r->nseps = n;
    return 0;
}

int tapio_stream_readuntil_any(tapio_stream *s, const struct iovec *seps,
                               int n, tapio_stream_read_callback cb,
                               void *arg)
{
    if (n <= 0)
        return -EINVAL;
    if (s->req.kind)
        return -EBUSY;
    request r = {.kind = REQ_UNTIL, .cb = cb, .arg = arg};
    int err = copy_seps(seps, n, &r);
    if (!err && (err = submit(s, &r)))
        free(r.seps);
    return err;
}

int tapio_stream_readuntil(tapio_stream *s, const void *sep, size_t seplen,
                           tapio_stream_read_callback cb, void *arg)
{
    struct iovec one = {(void *)sep, seplen};
    return tapio_stream_readuntil_any(s, &one, 1, cb, arg);
}

bool tapio_stream_at_eof(const tapio_stream *s)
{
    return s->eof && buffered(s) == 0;
}

size_t tapio_stream_buffered(const tapio_stream *s)
{
    return buffered(s);
}

int tapio_stream_exception(const tapio_stream *s)
{
    return s->err;
}

size_t tapio_stream_limit(const tapio_stream *s)
{
    return s->limit;
}

/* ------------------------------------------------------------- writing */

int tapio_stream_write(tapio_stream *s, const void *data, size_t len)
{
    return s->t ? tapio_transport_write(s->t, data, len) : -ENOTCONN;
}

int tapio_stream_writelines(tapio_stream *s, const struct iovec *iov,
                            int iovcnt)
{
    return s->t ? tapio_transport_writev(s->t, iov, iovcnt) : -ENOTCONN;
}

static int add_waiter(tapio_stream *s, bool closed, tapio_stream_callback cb,
                      void *arg)
{
    waiter *w = waiter_alloc(s);
    if (!w)
        return -ENOMEM;
    *w = (waiter){NULL, closed, cb, arg};
    int err = waiter_ready(s, w) ? schedule(s) : 0;
    if (err) {
        waiter_free(s, w);
        return err;
    }
    waiter **pp = &s->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    return 0;
}

int tapio_stream_drain(tapio_stream *s, tapio_stream_callback cb, void *arg)
{
    return add_waiter(s, false, cb, arg);
}

int tapio_stream_wait_closed(tapio_stream *s, tapio_stream_callback cb,
                             void *arg)
{
    return add_waiter(s, true, cb, arg);
}

int tapio_stream_write_eof(tapio_stream *s)
{
    return s->t ? tapio_transport_write_eof(s->t) : -ENOTCONN;
}

bool tapio_stream_can_write_eof(const tapio_stream *s)
{
    return s->t && tapio_transport_can_write_eof(s->t);
}

void tapio_stream_close(tapio_stream *s)
{
    if (s->t)
        tapio_transport_close(s->t);
}

bool tapio_stream_is_closing(const tapio_stream *s)
{
    return s->lost || (s->t && tapio_transport_is_closing(s->t));
}

tapio_transport *tapio_stream_transport(const tapio_stream *s)
{
    return s->t;
}

tapio_loop *tapio_stream_loop(const tapio_stream *s)
{
    return s->loop;
}

/* ------------------------------------------------ the protocol callbacks */

/* Take t as the stream's transport; the connection holds a reference to
 * the stream until connection_lost. */
static void use_transport(tapio_stream *s, tapio_transport *t)
{
    if (s->t == t)
        return;
    tapio_transport_ref(t);
    if (s->t)
        tapio_transport_unref(s->t);
    s->t = t;
}

static void set_transport(tapio_stream *s, tapio_transport *t)
{
    use_transport(s, t);
    if (!s->attached) {
        s->attached = true;
        s->refs++;
    }
}

static void on_made(tapio_transport *t, void *user)
{
    set_transport(user, t);
}

/* Requests met by the bytes just received take them from the transport's
 * buffer; the rest is copied into the stream's. */
static void on_data(tapio_transport *t, const void *data, size_t len,
                    void *user)
{
    tapio_stream *s = user;
    const unsigned char *p = data;
    outcome o;
    if (!s->owned)
        return;
    s->refs++;
    while (buffered(s) == 0 && s->req.kind && len &&
           evaluate(s, p, len, &o)) {
        deliver(s, p, &o, false);
        p += o.consume;
        len -= o.consume;
    }
    if (append(s, p, len))
        tapio_transport_fail(t, -ENOMEM);
    else
        process(s);
    stream_unref(s);
}

/* As StreamReaderProtocol: keep the transport open to write after EOF,
 * except over TLS, which has no half-close. */
static bool on_eof(tapio_transport *t, void *user)
{
    tapio_stream *s = user;
    s->eof = true;
    process(s);
    return !tapio_transport_is_tls(t);
}

static void connection_ended(tapio_stream *s, int err)
{
    s->lost = true;
    s->lost_err = err;
    if (err && !s->err)
        s->err = err; /* the reader's exception, as set_exception */
    else if (!err)
        s->eof = true;
    s->paused_reading = false;
    process(s);
    if (s->attached) {
        s->attached = false;
        stream_unref(s);
    }
}

static void on_lost(tapio_transport *t, int err, void *user)
{
    (void)t;
    connection_ended(user, err);
}

static void on_pause(tapio_transport *t, void *user)
{
    (void)t;
    tapio_stream *s = user;
    s->paused_writing = true;
}

static void on_resume(tapio_transport *t, void *user)
{
    (void)t;
    tapio_stream *s = user;
    s->paused_writing = false;
    process(s);
}

static const tapio_protocol stream_protocol = {
    .connection_made = on_made,
    .data_received = on_data,
    .eof_received = on_eof,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
};

const tapio_protocol *tapio_stream_protocol(void)
{
    return &stream_protocol;
}

int tapio_stream_attach(tapio_stream *s, tapio_transport *t)
{
    if (s->t)
        return -EBUSY;
    if (tapio_transport_is_closing(t))
        return -EINVAL;
    set_transport(s, t);
    tapio_transport_set_protocol(t, &stream_protocol, s);
    return 0;
}

int tapio_stream_from_fd(tapio_loop *loop, int fd, size_t limit,
                         tapio_stream **out)
{
    tapio_stream *s;
    int err = tapio_stream_new(loop, limit, &s);
    if (err) {
        close(fd);
        return err;
    }
    tapio_transport *t;
    err = tapio_transport_from_fd(loop, fd, &stream_protocol, s, &t);
    if (err) {
        stream_unref(s);
        return err;
    }
    set_transport(s, t); /* connection_made and _lost will follow */
    *out = s;
    return 0;
}

/* ------------------------------------------------------------ start_tls */

/* A failed handshake closes the TLS layer and the socket without a
 * connection_lost for the stream: the stream's connection ends here. */
static void on_handshake(tapio_transport *tls, int err, void *arg)
{
    tapio_stream *s = arg;
    tapio_stream_callback cb = s->tls_cb;
    s->tls_cb = NULL;
    if (!err) {
        s->paused_reading = false; /* start_tls reads the socket again */
        use_transport(s, tls);     /* its connection_lost ends ours */
    } else {
        connection_ended(s, err);
    }
    if (cb)
        cb(s, err, s->tls_arg);
    stream_unref(s);
}

int tapio_stream_start_tls(tapio_stream *s, const tapio_tls_options *opts,
                           tapio_stream_callback cb, void *arg)
{
    if (!s->t || s->lost || tapio_transport_is_closing(s->t))
        return -EINVAL;
    if (s->req.kind || s->tls_cb)
        return -EBUSY;
    tapio_tls_options o = *opts;
    o.skip_connection_made = true;
    tapio_transport *tls;
    int err = tapio_tls_start(s->t, &o, &stream_protocol, s, on_handshake, s,
                              &tls);
    if (err)
        return err;
    s->tls_cb = cb;
    s->tls_arg = arg;
    s->refs++;
    return 0;
}
