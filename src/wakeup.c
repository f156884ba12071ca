/* Waking the loop from other threads: call_soon_threadsafe and the worker
 * threads that run blocking jobs (name resolution) off the loop thread. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static tapio__tsq_item *take_threadsafe_calls(tapio_loop *loop)
{
    pthread_mutex_lock(&loop->tsq_lock);
    tapio__tsq_item *item = loop->tsq_head;
    loop->tsq_head = loop->tsq_tail = NULL;
    atomic_store_explicit(&loop->tsq_pending, false, memory_order_relaxed);
    pthread_mutex_unlock(&loop->tsq_lock);
    return item;
}

void tapio__drain_threadsafe_calls(tapio_loop *loop)
{
    tapio__tsq_item *item = take_threadsafe_calls(loop);
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
    (void)io;
    (void)events;
    uint64_t count;
    if (read(loop->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        tapio__report_error(loop, "wakeup read failed", -errno);
    /* Cleared before draining: a producer that comes after the drain writes
     * the eventfd again. */
    atomic_store(&loop->wake_pending, false);
    tapio__drain_threadsafe_calls(loop);
    run_finished_work(loop);
}

int tapio__wakeup_init(tapio_loop *loop)
{
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0)
        return -errno;
    tapio__io_init(&loop->wake_io, loop->wake_fd, wake_cb);
    int err = tapio__io_attach(loop, &loop->wake_io);
    if (!err)
        err = loop->backend->modify(loop, &loop->wake_io, TAPIO__READ);
    if (err) {
        tapio__io_detach(loop, &loop->wake_io);
        close(loop->wake_fd);
        loop->wake_fd = -1;
        return err;
    }
    loop->wake_io.want = loop->wake_io.armed = TAPIO__READ;
    return 0;
}

void tapio__wakeup_close(tapio_loop *loop)
{
    if (loop->wake_fd < 0)
        return;
    tapio__io_detach(loop, &loop->wake_io);
    close(loop->wake_fd);
    loop->wake_fd = -1;
    tapio__tsq_item *item = take_threadsafe_calls(loop);
    while (item) {
        tapio__tsq_item *next = item->next;
        free(item);
        item = next;
    }
}

void tapio__wakeup_signal(tapio_loop *loop)
{
    if (atomic_exchange(&loop->wake_pending, true))
        return; /* a wakeup is already on its way */
    uint64_t one = 1;
    while (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

int tapio_call_soon_threadsafe(tapio_loop *loop, tapio_callback cb, void *arg)
{
    tapio__tsq_item *item = malloc(sizeof(*item));
    if (!item)
        return -ENOMEM;
    item->next = NULL;
    item->cb = cb;
    item->arg = arg;
    pthread_mutex_lock(&loop->tsq_lock);
    if (loop->closing) {
        pthread_mutex_unlock(&loop->tsq_lock);
        free(item);
        return -ESHUTDOWN;
    }
    if (loop->tsq_tail)
        loop->tsq_tail->next = item;
    else
        loop->tsq_head = item;
    loop->tsq_tail = item;
    atomic_store_explicit(&loop->tsq_pending, true, memory_order_relaxed);
    pthread_mutex_unlock(&loop->tsq_lock);
    tapio__wakeup_signal(loop);
    return 0;
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
