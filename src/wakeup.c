/* Waking the loop from other threads: call_soon_threadsafe, tapio_waker,
 * and the worker threads that run blocking jobs (name resolution) off the
 * loop thread.
 *
 * The queue of calls and the eventfd live in a tapio__wake with its own
 * reference count: the loop holds one, each tapio_waker another, so a thread
 * holding a waker may call while the loop closes (and after it is freed) and
 * gets -ESHUTDOWN instead of touching freed memory or a reused fd. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct tapio_waker {
    tapio__wake wake;
};

static void wake_unref(tapio__wake *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    for (tapio__tsq_item *item = w->head, *next; item; item = next) {
        next = item->next;
        free(item);
    }
    if (w->fd >= 0)
        close(w->fd);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Write the eventfd unless a wakeup is already on its way. The caller makes
 * sure the fd is open: it holds w->lock with w->closed false, or it is a
 * worker thread, all of which are joined before the loop closes the fd. */
static void signal_locked(tapio__wake *w)
{
    if (atomic_exchange(&w->signalled, true))
        return;
    uint64_t one = 1;
    while (write(w->fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

static int wake_call(tapio__wake *w, tapio_callback cb, void *arg)
{
    tapio__tsq_item *item = malloc(sizeof(*item));
    if (!item)
        return -ENOMEM;
    item->next = NULL;
    item->cb = cb;
    item->arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->closed) {
        pthread_mutex_unlock(&w->lock);
        free(item);
        return -ESHUTDOWN;
    }
    if (w->tail)
        w->tail->next = item;
    else
        w->head = item;
    w->tail = item;
    atomic_store_explicit(&w->has_calls, true, memory_order_relaxed);
    signal_locked(w);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static tapio__tsq_item *take_threadsafe_calls(tapio__wake *w)
{
    pthread_mutex_lock(&w->lock);
    tapio__tsq_item *item = w->head;
    w->head = w->tail = NULL;
    atomic_store_explicit(&w->has_calls, false, memory_order_relaxed);
    pthread_mutex_unlock(&w->lock);
    return item;
}

void tapio__drain_threadsafe_calls(tapio_loop *loop)
{
    tapio__tsq_item *item = take_threadsafe_calls(loop->wake);
    while (item) {
        tapio__tsq_item *next = item->next;
        /* Straight to the ready queue: tapio_call_soon would drain newer
         * arrivals ahead of this one. */
        tapio_handle *h = tapio__handle_new(loop, item->cb, item->arg);
        if (h)
            tapio__ready_push(loop, h);
        else
            tapio__report_error(loop, "call_soon_threadsafe dropped a call",
                                -ENOMEM);
        free(item);
        item = next;
    }
}

static void run_finished_work(tapio_loop *loop)
{
    pthread_mutex_lock(&loop->work_lock);
    tapio__work *w = loop->done_head;
    loop->done_head = NULL;
    pthread_mutex_unlock(&loop->work_lock);
    /* done_head is a stack: reverse it so jobs finish in completion order. */
    tapio__work *ordered = NULL;
    while (w) {
        tapio__work *next = w->next;
        w->next = ordered;
        ordered = w;
        w = next;
    }
    while (ordered) {
        tapio__work *next = ordered->next;
        ordered->done(loop, ordered);
        ordered = next;
    }
}

static void wake_cb(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)events;
    uint64_t count;
    if (read(io->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        tapio__report_error(loop, "wakeup read failed", -errno);
    /* Cleared before draining: a producer that comes after the drain writes
     * the eventfd again. */
    atomic_store(&loop->wake->signalled, false);
    tapio__drain_threadsafe_calls(loop);
    run_finished_work(loop);
}

int tapio__wakeup_init(tapio_loop *loop)
{
    tapio__wake *w = calloc(1, sizeof(struct tapio_waker));
    if (!w)
        return -ENOMEM;
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->fd < 0) {
        int err = -errno;
        free(w);
        return err;
    }
    atomic_init(&w->refs, 1);
    pthread_mutex_init(&w->lock, NULL);
    tapio__io_init(&loop->wake_io, w->fd, wake_cb);
    int err = tapio__io_attach(loop, &loop->wake_io);
    if (!err)
        err = loop->backend->modify(loop, &loop->wake_io, TAPIO__READ);
    if (err) {
        tapio__io_detach(loop, &loop->wake_io);
        wake_unref(w);
        return err;
    }
    loop->wake_io.want = loop->wake_io.armed = TAPIO__READ;
    loop->wake = w;
    return 0;
}

void tapio__wakeup_refuse_calls(tapio_loop *loop)
{
    pthread_mutex_lock(&loop->wake->lock);
    loop->wake->closed = true;
    pthread_mutex_unlock(&loop->wake->lock);
}

/* After tapio__wakeup_refuse_calls and the workers' join: nobody writes the
 * eventfd any more; calls still queued are dropped with the loop. */
void tapio__wakeup_close(tapio_loop *loop)
{
    tapio__wake *w = loop->wake;
    if (!w)
        return;
    tapio__io_detach(loop, &loop->wake_io);
    for (tapio__tsq_item *item = take_threadsafe_calls(w), *next; item;
         item = next) {
        next = item->next;
        free(item);
    }
    pthread_mutex_lock(&w->lock); /* refused calls no longer write it */
    close(w->fd);
    w->fd = -1;
    pthread_mutex_unlock(&w->lock);
    loop->wake = NULL;
    wake_unref(w);
}

void tapio__wakeup_signal(tapio_loop *loop)
{
    signal_locked(loop->wake);
}

int tapio_call_soon_threadsafe(tapio_loop *loop, tapio_callback cb, void *arg)
{
    return wake_call(loop->wake, cb, arg);
}

tapio_waker *tapio_waker_new(tapio_loop *loop)
{
    atomic_fetch_add(&loop->wake->refs, 1);
    return (tapio_waker *)loop->wake;
}

int tapio_waker_call(tapio_waker *waker, tapio_callback cb, void *arg)
{
    return wake_call(&waker->wake, cb, arg);
}

void tapio_waker_free(tapio_waker *waker)
{
    if (waker)
        wake_unref(&waker->wake);
}

/* ---- worker threads -------------------------------------------------- */

static void *worker_main(void *arg)
{
    tapio_loop *loop = arg;
    pthread_mutex_lock(&loop->work_lock);
    for (;;) {
        while (!loop->work_head && !loop->workers_exit)
            pthread_cond_wait(&loop->work_cond, &loop->work_lock);
        if (loop->workers_exit)
            break;
        tapio__work *w = loop->work_head;
        loop->work_head = w->next;
        if (!loop->work_head)
            loop->work_tail = NULL;
        loop->idle_workers--;
        pthread_mutex_unlock(&loop->work_lock);

        w->work(w);

        pthread_mutex_lock(&loop->work_lock);
        loop->idle_workers++;
        w->next = loop->done_head;
        loop->done_head = w;
        tapio__wakeup_signal(loop);
    }
    pthread_mutex_unlock(&loop->work_lock);
    return NULL;
}

int tapio__work_submit(tapio_loop *loop, tapio__work *w)
{
    int err = 0;
    pthread_mutex_lock(&loop->work_lock);
    if (loop->idle_workers == 0 && loop->nworkers < TAPIO__MAX_WORKERS) {
        err = -pthread_create(&loop->workers[loop->nworkers], NULL,
                              worker_main, loop);
        if (!err) {
            loop->nworkers++;
            loop->idle_workers++;
        } else if (loop->nworkers > 0) {
            err = 0; /* the existing workers will get to it */
        }
    }
    if (!err) {
        w->next = NULL;
        if (loop->work_tail)
            loop->work_tail->next = w;
        else
            loop->work_head = w;
        loop->work_tail = w;
        pthread_cond_signal(&loop->work_cond);
    }
    pthread_mutex_unlock(&loop->work_lock);
    return err;
}

/* Called by tapio_loop_close: jobs not started are abandoned (their owners
 * free them), running ones finish first. */
void tapio__workers_join(tapio_loop *loop)
{
    pthread_mutex_lock(&loop->work_lock);
    loop->workers_exit = true;
    pthread_cond_broadcast(&loop->work_cond);
    pthread_mutex_unlock(&loop->work_lock);
    for (int i = 0; i < loop->nworkers; i++)
        pthread_join(loop->workers[i], NULL);
    loop->nworkers = 0;
    loop->work_head = loop->work_tail = NULL;
    loop->done_head = NULL;
}
