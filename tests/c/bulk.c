/* bulk.c — the 100 MiB sender and hashing receiver of bulk.h. */
#include "bulk.h"

#include <stdlib.h>

/* The source repeats with a period that is not a multiple of the chunk. */
#define PERIOD ((size_t)1024 * 1024 + 7)
#define FNV_SEED 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void sender_pump(bulk_sender *s)
{
    while (!s->c.paused && s->sent < BULK_TOTAL) {
        size_t left = BULK_TOTAL - s->sent;
        size_t n = left < BULK_CHUNK ? left : BULK_CHUNK;
        const unsigned char *p = s->src + s->sent % PERIOD;
        s->hash = fnv1a(s->hash, p, n);
        CHECK_OK(tapio_transport_write(s->c.t, p, n));
        s->sent += n;
        size_t buffered = tapio_transport_get_write_buffer_size(s->c.t);
        if (buffered > s->max_buffered)
            s->max_buffered = buffered;
    }
    if (s->sent < BULK_TOTAL || tapio_transport_is_closing(s->c.t))
        return;
    if (s->close_at_end)
        tapio_transport_close(s->c.t);
    else
        CHECK_OK(tapio_transport_write_eof(s->c.t));
}

static void sender_made(tapio_transport *t, void *user)
{
    conn_on_made(t, user);
    sender_pump(user);
}

static void sender_resume(tapio_transport *t, void *user)
{
    conn_on_resume(t, user);
    sender_pump(user);
}

const tapio_protocol bulk_sender_protocol = {
    .connection_made = sender_made,
    .data_received = conn_on_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
    .pause_writing = conn_on_pause,
    .resume_writing = sender_resume,
};

bulk_sender *bulk_sender_new(bool close_at_end)
{
    bulk_sender *s = (bulk_sender *)conn_alloc(sizeof *s);
    unsigned char *src = pattern_new(PERIOD + BULK_CHUNK);
    at_cleanup(free, src);
    s->src = src;
    s->hash = FNV_SEED;
    s->close_at_end = close_at_end;
    return s;
}

static void receiver_data(tapio_transport *t, const void *data, size_t len,
                          void *user)
{
    bulk_receiver *r = user;
    CHECK(t == r->c.t);
    CHECK_EQ_INT(r->c.eofs, 0);
    r->hash = fnv1a(r->hash, data, len);
    r->total += len;
}

static const tapio_protocol receiver_protocol = {
    .connection_made = conn_on_made,
    .data_received = receiver_data,
    .eof_received = conn_on_eof,
    .connection_lost = conn_on_lost,
};

const tapio_protocol *bulk_receiver_factory(tapio_server *s, void *arg,
                                            void **user)
{
    (void)s;
    bulk_receiver **slot = arg;
    CHECK(*slot == NULL); /* one connection only */
    *slot = (bulk_receiver *)conn_alloc(sizeof **slot);
    (*slot)->hash = FNV_SEED;
    *user = *slot;
    return &receiver_protocol;
}

void bulk_check(const bulk_sender *s, const bulk_receiver *r,
                size_t max_buffered)
{
    CHECK_ERR(s->c.connect_err, 0);
    CHECK_EQ_INT(r->total, BULK_TOTAL);
    CHECK(r->hash == s->hash);
    CHECK_EQ_INT(r->c.eofs, 1);
    CHECK_ERR(r->c.lost_err, 0);
    CHECK_ERR(s->c.lost_err, 0);
    CHECK(s->c.pauses > 0);
    CHECK_EQ_INT(s->c.resumes, s->c.pauses);
    CHECK(s->max_buffered <= max_buffered);
}
