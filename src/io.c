/* fd watchers: the fd table, batched interest changes, add_reader/add_writer. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void tapio__io_init(tapio__io *io, int fd, tapio__io_cb cb)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->cb = cb;
    tapio__list_init(&io->send_node);
}

static int grow_fd_table(tapio_loop *loop, int fd)
{
    if ((size_t)fd < loop->nfds)
        return 0;
    size_t n = loop->nfds ? loop->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    tapio__io **fds = realloc(loop->fds, n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    memset(fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*fds));
    loop->fds = fds;
    loop->nfds = n;
    return 0;
}

int tapio__io_attach(tapio_loop *loop, tapio__io *io)
{
    if (io->fd < 0)
        return -EBADF;
    int err = grow_fd_table(loop, io->fd);
    if (err)
        return err;
    if (loop->fds[io->fd])
        return -EBUSY;
    loop->fds[io->fd] = io;
    return 0;
}

static void forget_change(tapio_loop *loop, tapio__io *io)
{
    for (size_t i = 0; i < loop->nchanges; i++) {
        if (loop->changes[i] == io) {
            loop->changes[i] = loop->changes[--loop->nchanges];
            break;
        }
    }
    io->dirty = false;
}

void tapio__io_detach(tapio_loop *loop, tapio__io *io)
{
    if (io->dirty)
        forget_change(loop, io);
    if (io->registered)
        loop->backend->remove(loop, io);
    io->want = io->armed = 0;
    /* What is still in flight for the fd is not this watcher's any more. */
    io->poll_tag = io->recv_tag = 0;
    io->recv_cancelling = false;
    if (io->fd >= 0 && (size_t)io->fd < loop->nfds && loop->fds[io->fd] == io)
        loop->fds[io->fd] = NULL;
}

/* Bring the backend in line with io->want; an idle watcher leaves the
 * backend so that a hung-up fd cannot wake the loop over and over. */
static int apply_change(tapio_loop *loop, tapio__io *io)
{
    int err = 0;
    if (io->want == io->armed && (io->want || !io->registered))
        return 0;
    if (io->want)
        err = loop->backend->modify(loop, io, io->want);
    else
        loop->backend->remove(loop, io);
    io->armed = err ? 0 : io->want;
    return err;
}

static void tell_refused(tapio_loop *loop, tapio__io *io, int err)
{
    if (io->refused)
        io->refused(loop, io, err);
    else
        tapio__report_error(loop, "fd watcher update failed", err);
}

void tapio__io_set(tapio_loop *loop, tapio__io *io, unsigned want)
{
    io->want = want;
    if (io->dirty || want == io->armed)
        return;
    if (loop->nchanges == loop->changes_cap) {
        size_t cap = loop->changes_cap ? loop->changes_cap * 2 : 64;
        tapio__io **changes = realloc(loop->changes, cap * sizeof(*changes));
        if (!changes) { /* apply now rather than lose the change */
            int err = apply_change(loop, io);
            if (err)
                tell_refused(loop, io, err);
            return;
        }
        loop->changes = changes;
        loop->changes_cap = cap;
    }
    io->dirty = true;
    loop->changes[loop->nchanges++] = io;
}

/* Owners of refused watchers are told once the list is done with, as they
 * change watchers in turn; past REFUSED_MAX, the rest wait for the next
 * flush. */
#define REFUSED_MAX 16

void tapio__io_flush_changes(tapio_loop *loop)
{
    tapio__io *refused[REFUSED_MAX];
    int errs[REFUSED_MAX];
    size_t nrefused = 0, i;
    for (i = 0; i < loop->nchanges && nrefused < REFUSED_MAX; i++) {
        tapio__io *io = loop->changes[i];
        io->dirty = false;
        int err = apply_change(loop, io);
        if (err) {
            refused[nrefused] = io;
            errs[nrefused++] = err;
        }
    }
    loop->nchanges -= i;
    if (loop->nchanges)
        memmove(loop->changes, loop->changes + i,
                loop->nchanges * sizeof(*loop->changes));
    for (size_t k = 0; k < nrefused; k++)
        tell_refused(loop, refused[k], errs[k]);
}

void tapio__io_register_all_again(tapio_loop *loop)
{
    for (size_t fd = 0; fd < loop->nfds; fd++) {
        tapio__io *io = loop->fds[fd];
        if (!io)
            continue;
        io->registered = false;
        io->armed = 0;
        if (io->want)
            tapio__io_set(loop, io, io->want);
    }
}

void tapio__io_dispatch(tapio_loop *loop, int fd, unsigned events)
{
    if (fd < 0 || (size_t)fd >= loop->nfds)
        return;
    tapio__io *io = loop->fds[fd];
    if (io)
        tapio__io_deliver(loop, io, events);
}

void tapio__io_deliver(tapio_loop *loop, tapio__io *io, unsigned events)
{
    /* An error or hang-up wakes whatever waits; the syscall reports it. */
    if (events & TAPIO__ERROR)
        events |= io->want;
    events &= io->want;
    if (events)
        io->cb(loop, io, events);
}

/* ---- add_reader / add_writer ---------------------------------------- */

typedef struct user_watcher {
    tapio__io io;
    tapio__list node;
    tapio_fd_callback cb[2]; /* [0] reader, [1] writer */
    void *arg[2];
    bool dispatching;        /* defer freeing until the callbacks return */
} user_watcher;

static void user_watcher_free(tapio_loop *loop, user_watcher *w)
{
    tapio__io_detach(loop, &w->io);
    tapio__list_remove(&w->node);
    free(w);
}

static void user_watcher_cb(tapio_loop *loop, tapio__io *io, unsigned events)
{
    user_watcher *w = tapio__container_of(io, user_watcher, io);
    w->dispatching = true;
    if ((events & TAPIO__READ) && w->cb[0])
        w->cb[0](loop, io->fd, w->arg[0]);
    if ((events & TAPIO__WRITE) && w->cb[1])
        w->cb[1](loop, io->fd, w->arg[1]);
    w->dispatching = false;
    if (!w->cb[0] && !w->cb[1])
        user_watcher_free(loop, w);
}

static int check_pollable(int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -EBADF;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return -EPERM;
    return 0;
}

static int user_watcher_get(tapio_loop *loop, int fd, user_watcher **out)
{
    int err = check_pollable(fd);
    if (err)
        return err;
    if (fd < (int)loop->nalias && tapio_fd_is_owned(loop, fd))
        return -EBUSY; /* a caller's alias of an owned socket */
    tapio__io *io = (size_t)fd < loop->nfds ? loop->fds[fd] : NULL;
    if (io) {
        if (!io->user)
            return -EBUSY;
        *out = tapio__container_of(io, user_watcher, io);
        return 0;
    }
    user_watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    tapio__io_init(&w->io, fd, user_watcher_cb);
    w->io.user = true;
    err = tapio__io_attach(loop, &w->io);
    if (err) {
        free(w);
        return err;
    }
    tapio__list_push(&loop->user_watchers, &w->node);
    *out = w;
    return 0;
}

static unsigned user_interest(const user_watcher *w)
{
    return (w->cb[0] ? TAPIO__READ : 0) | (w->cb[1] ? TAPIO__WRITE : 0);
}

/* Registration is applied at once so that a bad fd fails the call. */
static int add_watch(tapio_loop *loop, int fd, int dir, tapio_fd_callback cb,
                     void *arg)
{
    if (!cb)
        return -EINVAL;
    user_watcher *w;
    int err = user_watcher_get(loop, fd, &w);
    if (err)
        return err;
    tapio_fd_callback old_cb = w->cb[dir];
    w->cb[dir] = cb;
    w->arg[dir] = arg;
    w->io.want = user_interest(w);
    err = apply_change(loop, &w->io);
    if (err) {
        w->cb[dir] = old_cb;
        w->io.want = user_interest(w);
        if (!w->cb[0] && !w->cb[1] && !w->dispatching)
            user_watcher_free(loop, w);
    }
    return err;
}

static bool remove_watch(tapio_loop *loop, int fd, int dir)
{
    tapio__io *io = fd >= 0 && (size_t)fd < loop->nfds ? loop->fds[fd] : NULL;
    if (!io || !io->user)
        return false;
    user_watcher *w = tapio__container_of(io, user_watcher, io);
    if (!w->cb[dir])
        return false;
    w->cb[dir] = NULL;
    w->arg[dir] = NULL;
    if (!w->cb[0] && !w->cb[1] && !w->dispatching)
        user_watcher_free(loop, w);
    else
        tapio__io_set(loop, io, user_interest(w));
    return true;
}

int tapio_add_reader(tapio_loop *loop, int fd, tapio_fd_callback cb, void *arg)
{
    return add_watch(loop, fd, 0, cb, arg);
}

int tapio_add_writer(tapio_loop *loop, int fd, tapio_fd_callback cb, void *arg)
{
    return add_watch(loop, fd, 1, cb, arg);
}

bool tapio_remove_reader(tapio_loop *loop, int fd)
{
    return remove_watch(loop, fd, 0);
}

bool tapio_remove_writer(tapio_loop *loop, int fd)
{
    return remove_watch(loop, fd, 1);
}

void tapio__io_close_all(tapio_loop *loop)
{
    while (!tapio__list_empty(&loop->user_watchers))
        user_watcher_free(loop, tapio__container_of(loop->user_watchers.next,
                                                    user_watcher, node));
}
