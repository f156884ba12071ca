/* The io_uring backend. Readiness watchers are one-shot poll requests on the
 * ring: each completion is handed out once, then the watcher is re-armed
 * through the loop's change list, so a watcher whose fd is still ready
 * fires again at the next iteration (epoll's level-triggered behaviour,
 * which the transports and add_reader users rely on). Every change of an
 * iteration and the wait itself go to the kernel in one io_uring_enter.
 *
 * A request's user_data is (fd << 32 | tag), the tag unique per request:
 * a completion whose tag is not the one its watcher waits for belongs to a
 * request already cancelled, or to an fd closed and reused since, and is
 * dropped. */
#include "../internal.h"

#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define SQ_ENTRIES 512
#define CQ_ENTRIES 8192
/* The user_data of requests whose completion needs nothing (removals). */
#define NO_COMPLETION UINT64_MAX

typedef struct ring_state {
    struct io_uring ring;
    uint32_t last_tag;
} ring_state;

static ring_state *state(tapio_loop *loop) { return loop->backend_data; }

static int ring_backend_init(tapio_loop *loop)
{
    ring_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                   IORING_SETUP_COOP_TASKRUN;
    params.cq_entries = CQ_ENTRIES;
    int err = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &params);
    if (err < 0) {
        free(st);
        return err;
    }
    loop->backend_data = st;
    loop->backend_fd = st->ring.ring_fd;
    return 0;
}

static void ring_backend_destroy(tapio_loop *loop)
{
    ring_state *st = state(loop);
    if (st) {
        io_uring_queue_exit(&st->ring);
        free(st);
    }
    loop->backend_data = NULL;
    loop->backend_fd = -1;
}

static uint32_t next_tag(ring_state *st)
{
    if (++st->last_tag == 0)
        st->last_tag = 1;
    return st->last_tag;
}

static uint64_t request_id(int fd, uint32_t tag)
{
    return (uint64_t)(uint32_t)fd << 32 | tag;
}

/* A free submission slot; when the queue is full, what it holds goes to the
 * kernel first. NULL only if the kernel takes nothing. */
static struct io_uring_sqe *get_sqe(ring_state *st)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
    if (!sqe && io_uring_submit(&st->ring) >= 0)
        sqe = io_uring_get_sqe(&st->ring);
    return sqe;
}

static unsigned poll_mask(unsigned want)
{
    return ((want & TAPIO__READ) ? POLLIN : 0) |
           ((want & TAPIO__WRITE) ? POLLOUT : 0);
}

static int cancel_poll(ring_state *st, tapio__io *io)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_remove(sqe, request_id(io->fd, io->poll_tag));
    io_uring_sqe_set_data64(sqe, NO_COMPLETION);
    io->poll_tag = 0;
    return 0;
}

static int ring_backend_modify(tapio_loop *loop, tapio__io *io, unsigned want)
{
    ring_state *st = state(loop);
    if (io->poll_tag && io->armed == want)
        return 0; /* that request is still waiting */
    if (io->poll_tag && cancel_poll(st, io) < 0)
        return -EBUSY;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io->poll_tag = next_tag(st);
    io_uring_prep_poll_add(sqe, io->fd, poll_mask(want));
    io_uring_sqe_set_data64(sqe, request_id(io->fd, io->poll_tag));
    io->registered = true;
    return 0;
}

/* The removal goes to the kernel at once: the request holds the file, and
 * the owner may be about to close the fd (a peer waits for its FIN, a
 * listening port is to be free again) with no further iteration to come. */
static void ring_backend_remove(tapio_loop *loop, tapio__io *io)
{
    ring_state *st = state(loop);
    if (io->poll_tag && cancel_poll(st, io) == 0)
        io_uring_submit(&st->ring);
    io->registered = false;
}

static int ring_backend_wait(tapio_loop *loop, int timeout_ms)
{
    struct io_uring *ring = &state(loop)->ring;
    struct io_uring_cqe *cqe;
    int ret;
    if (timeout_ms == 0) {
        ret = io_uring_submit(ring);
    } else if (timeout_ms < 0) {
        ret = io_uring_submit_and_wait(ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = timeout_ms / 1000,
            .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
        };
        ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        if (ret == -ETIME)
            ret = 0;
    }
    return ret < 0 ? ret : 0;
}

static unsigned to_tapio_events(int res)
{
    if (res < 0)
        return TAPIO__ERROR;
    return ((res & POLLIN) ? TAPIO__READ : 0) |
           ((res & POLLOUT) ? TAPIO__WRITE : 0) |
           ((res & (POLLERR | POLLHUP)) ? TAPIO__ERROR : 0);
}

/* A watcher's poll completed: it is no longer armed, and is re-armed with
 * the loop's next batch of changes unless its owner drops it meanwhile. */
static void poll_completed(tapio_loop *loop, uint64_t id, int res)
{
    int fd = (int)(id >> 32);
    uint32_t tag = (uint32_t)id;
    tapio__io *io = (size_t)fd < loop->nfds ? loop->fds[fd] : NULL;
    if (!io || io->poll_tag != tag)
        return;
    io->poll_tag = 0;
    io->armed = 0;
    tapio__io_set(loop, io, io->want);
    tapio__io_deliver(loop, io, to_tapio_events(res));
}

static void ring_backend_dispatch(tapio_loop *loop)
{
    struct io_uring *ring = &state(loop)->ring;
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
        if (loop->interrupted)
            break; /* the rest is handed out by the next dispatch */
        uint64_t id = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        seen++;
        if (id != NO_COMPLETION)
            poll_completed(loop, id, res);
    }
    io_uring_cq_advance(ring, seen);
}

const tapio__backend tapio__backend_io_uring = {
    .name = "io_uring",
    .init = ring_backend_init,
    .destroy = ring_backend_destroy,
    .modify = ring_backend_modify,
    .remove = ring_backend_remove,
    .wait = ring_backend_wait,
    .dispatch = ring_backend_dispatch,
};
