/* The poll(2) backend: a portable fallback that runs the same tests. */
#include "../internal.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

typedef struct poll_state {
    struct pollfd *pfds;  /* the watched fds, densely packed */
    size_t len, cap;
    int *index;           /* fd -> position in pfds, -1 if absent */
    size_t index_len;
    struct pollfd *ready; /* copy of the ready entries for dispatch */
    size_t nready;
} poll_state;

static int poll_backend_init(tapio_loop *loop)
{
    poll_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    loop->backend_data = st;
    return 0;
}

static void poll_backend_destroy(tapio_loop *loop)
{
    poll_state *st = loop->backend_data;
    if (!st)
        return;
    free(st->pfds);
    free(st->index);
    free(st->ready);
    free(st);
    loop->backend_data = NULL;
}

static int grow_index(poll_state *st, int fd)
{
    if ((size_t)fd < st->index_len)
        return 0;
    size_t n = st->index_len ? st->index_len : 64;
    while (n <= (size_t)fd)
        n *= 2;
    int *index = realloc(st->index, n * sizeof(*index));
    if (!index)
        return -ENOMEM;
    for (size_t i = st->index_len; i < n; i++)
        index[i] = -1;
    st->index = index;
    st->index_len = n;
    return 0;
}

static int grow_pfds(poll_state *st)
{
    if (st->len < st->cap)
        return 0;
    size_t cap = st->cap ? st->cap * 2 : 64;
    struct pollfd *pfds = realloc(st->pfds, cap * sizeof(*pfds));
    if (!pfds)
        return -ENOMEM;
    st->pfds = pfds;
    struct pollfd *ready = realloc(st->ready, cap * sizeof(*ready));
    if (!ready)
        return -ENOMEM;
    st->ready = ready;
    st->cap = cap;
    return 0;
}

static int poll_backend_modify(tapio_loop *loop, tapio__io *io, unsigned want)
{
    poll_state *st = loop->backend_data;
    int err = grow_index(st, io->fd);
    if (err)
        return err;
    int pos = st->index[io->fd];
    if (pos < 0) {
        if ((err = grow_pfds(st)))
            return err;
        pos = (int)st->len++;
        st->index[io->fd] = pos;
        st->pfds[pos].fd = io->fd;
    }
    st->pfds[pos].events = (short)(((want & TAPIO__READ) ? POLLIN : 0) |
                                   ((want & TAPIO__WRITE) ? POLLOUT : 0));
    io->registered = true;
    return 0;
}

static void poll_backend_remove(tapio_loop *loop, tapio__io *io)
{
    poll_state *st = loop->backend_data;
    io->registered = false;
    if ((size_t)io->fd >= st->index_len || st->index[io->fd] < 0)
        return;
    int pos = st->index[io->fd];
    st->index[io->fd] = -1;
    if ((size_t)pos != --st->len) {
        st->pfds[pos] = st->pfds[st->len];
        st->index[st->pfds[pos].fd] = pos;
    }
}

static unsigned to_tapio_events(short ev)
{
    return ((ev & POLLIN) ? TAPIO__READ : 0) |
           ((ev & POLLOUT) ? TAPIO__WRITE : 0) |
           ((ev & (POLLERR | POLLHUP | POLLNVAL)) ? TAPIO__ERROR : 0);
}

static int poll_backend_wait(tapio_loop *loop, int timeout_ms)
{
    poll_state *st = loop->backend_data;
    st->nready = 0;
    int n = poll(st->pfds, st->len, timeout_ms);
    if (n < 0)
        return -errno;
    /* Callbacks may add and remove fds, which reorders pfds: dispatch from
     * a copy of the ready entries. */
    for (size_t i = 0; i < st->len && st->nready < (size_t)n; i++)
        if (st->pfds[i].revents)
            st->ready[st->nready++] = st->pfds[i];
    return 0;
}

static void poll_backend_dispatch(tapio_loop *loop)
{
    poll_state *st = loop->backend_data;
    for (size_t i = 0; i < st->nready && !loop->interrupted; i++)
        tapio__io_dispatch(loop, st->ready[i].fd,
                           to_tapio_events(st->ready[i].revents));
    st->nready = 0;
}

const tapio__backend tapio__backend_poll = {
    .name = "poll",
    .init = poll_backend_init,
    .destroy = poll_backend_destroy,
    .modify = poll_backend_modify,
    .remove = poll_backend_remove,
    .wait = poll_backend_wait,
    .dispatch = poll_backend_dispatch,
};
