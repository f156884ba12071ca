/* The epoll backend (level-triggered). */
#include "../internal.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 1024

typedef struct epoll_state {
    struct epoll_event events[MAX_EVENTS];
    int nready; /* found by the last wait */
    unsigned child_forks; /* tapio__forks_in_child() when the set was made */
} epoll_state;

static int epoll_backend_init(tapio_loop *loop)
{
    epoll_state *st = calloc(1, sizeof(epoll_state));
    loop->backend_data = st;
    if (!st)
        return -ENOMEM;
    tapio__watch_forks();
    st->child_forks = tapio__forks_in_child();
    loop->backend_fd = epoll_create1(EPOLL_CLOEXEC);
    return loop->backend_fd < 0 ? -errno : 0;
}

/* The epoll set this process may change. A forked child shares its
 * parent's: a removal there (closing the loop, say) would remove the
 * parent's watchers too, so the child makes a set of its own, with its
 * watchers registered anew, before it changes anything. */
static int own_epoll_set(tapio_loop *loop)
{
    epoll_state *st = loop->backend_data;
    unsigned forks = tapio__forks_in_child();
    if (!TAPIO__UNLIKELY(st->child_forks != forks))
        return 0;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return -errno;
    close(loop->backend_fd); /* this process's reference only */
    loop->backend_fd = fd;
    st->child_forks = forks;
    tapio__io_register_all_again(loop);
    return 0;
}

static void epoll_backend_destroy(tapio_loop *loop)
{
    if (loop->backend_fd >= 0)
        close(loop->backend_fd);
    loop->backend_fd = -1;
    free(loop->backend_data);
    loop->backend_data = NULL;
}

static int epoll_backend_modify(tapio_loop *loop, tapio__io *io, unsigned want)
{
    int err = own_epoll_set(loop);
    if (err)
        return err;
    struct epoll_event ev = {0};
    ev.events = ((want & TAPIO__READ) ? EPOLLIN : 0) |
                ((want & TAPIO__WRITE) ? EPOLLOUT : 0);
    ev.data.fd = io->fd;
    int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->backend_fd, op, io->fd, &ev) < 0) {
        /* The fd may still be registered under a number closed and reused
         * behind our back; modifying it is then the right thing. */
        if (errno != EEXIST ||
            epoll_ctl(loop->backend_fd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
            return -errno;
    }
    io->registered = true;
    return 0;
}

static void epoll_backend_remove(tapio_loop *loop, tapio__io *io)
{
    struct epoll_event ev = {0};
    if (own_epoll_set(loop) == 0)
        epoll_ctl(loop->backend_fd, EPOLL_CTL_DEL, io->fd, &ev);
    io->registered = false;
}

static unsigned to_tapio_events(uint32_t ev)
{
    return ((ev & EPOLLIN) ? TAPIO__READ : 0) |
           ((ev & EPOLLOUT) ? TAPIO__WRITE : 0) |
           ((ev & (EPOLLERR | EPOLLHUP)) ? TAPIO__ERROR : 0);
}

static int epoll_backend_wait(tapio_loop *loop, int timeout_ms)
{
    epoll_state *st = loop->backend_data;
    st->nready = 0;
    if (TAPIO__UNLIKELY(st->child_forks != tapio__forks_in_child())) {
        int err = own_epoll_set(loop);
        if (err)
            return err;
        tapio__io_flush_changes(loop);
    }
    int n = epoll_wait(loop->backend_fd, st->events, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return -errno;
    st->nready = n;
    return 0;
}

static void epoll_backend_dispatch(tapio_loop *loop)
{
    epoll_state *st = loop->backend_data;
    for (int i = 0; i < st->nready && !loop->interrupted; i++)
        tapio__io_dispatch(loop, st->events[i].data.fd,
                           to_tapio_events(st->events[i].events));
    st->nready = 0;
}

const tapio__backend tapio__backend_epoll = {
    .name = "epoll",
    .init = epoll_backend_init,
    .destroy = epoll_backend_destroy,
    .modify = epoll_backend_modify,
    .remove = epoll_backend_remove,
    .wait = epoll_backend_wait,
    .dispatch = epoll_backend_dispatch,
};
