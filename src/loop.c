/* The event loop: run phases, the ready queue, stop and close. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Recycled handles kept for reuse; enough for a busy loop's steady state. */
#define HANDLE_POOL_MAX 1024

double tapio__clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* TAPIO_BACKEND's backend, or io_uring by default. */
static void choose_backend(tapio_loop *loop)
{
    const char *name = getenv("TAPIO_BACKEND");
    loop->backend = &tapio__backend_io_uring;
    loop->backend_by_default = !name || strcmp(name, "io_uring") != 0;
    if (name && strcmp(name, "poll") == 0)
        loop->backend = &tapio__backend_poll;
    else if (name && strcmp(name, "epoll") == 0)
        loop->backend = &tapio__backend_epoll;
}

/* io_uring may be missing (an old kernel: ENOSYS), forbidden (seccomp,
 * kernel.io_uring_disabled: EPERM, EACCES) or short of a feature or of
 * memory: epoll serves instead. By default, a kernel without deferred
 * completion work (before 6.1) gets epoll too: its rings cost more. */
static int init_backend(tapio_loop *loop)
{
    int err = loop->backend->init(loop);
    if (err && loop->backend == &tapio__backend_io_uring) {
        loop->backend = &tapio__backend_epoll;
        err = loop->backend->init(loop);
    }
    return err;
}

static void default_error_handler(tapio_loop *loop, const char *message,
                                  int err, void *arg)
{
    (void)loop;
    (void)arg;
    if (err)
        fprintf(stderr, "tapio: %s: %s\n", message, tapio_strerror(err));
    else
        fprintf(stderr, "tapio: %s\n", message);
}

void tapio__report_error(tapio_loop *loop, const char *message, int err)
{
    loop->error_handler(loop, message, err, loop->error_arg);
}

void tapio_loop_set_error_handler(tapio_loop *loop, tapio_error_handler handler,
                                  void *arg)
{
    loop->error_handler = handler ? handler : default_error_handler;
    loop->error_arg = handler ? arg : NULL;
}

int tapio_loop_new(tapio_loop **out)
{
    tapio_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    choose_backend(loop);
    loop->backend_fd = -1;
    loop->signal_pipe[0] = loop->signal_pipe[1] = -1;
    loop->error_handler = default_error_handler;
    tapio__list_init(&loop->user_watchers);
    tapio__list_init(&loop->transports);
    tapio__list_init(&loop->datagrams);
    tapio__list_init(&loop->processes);
    tapio__list_init(&loop->servers);
    tapio__list_init(&loop->connects);
    tapio__list_init(&loop->write_flushes);
    pthread_mutex_init(&loop->work_lock, NULL);
    pthread_cond_init(&loop->work_cond, NULL);

    int err = -ENOMEM;
    /* Page-aligned: the kernel copies received bytes into it, and a copy to
     * a destination off the cache-line grid runs at half speed or worse
     * (malloc's large blocks start 16 bytes into a page). */
    if (posix_memalign((void **)&loop->read_buf, 4096, TAPIO__READ_SIZE)) {
        loop->read_buf = NULL;
        goto fail;
    }
    err = init_backend(loop);
    if (err)
        goto fail;
    err = tapio__wakeup_init(loop);
    if (err)
        goto fail;
    *out = loop;
    return 0;
fail:
    if (loop->backend_fd >= 0 || loop->backend_data)
        loop->backend->destroy(loop);
    pthread_mutex_destroy(&loop->work_lock);
    pthread_cond_destroy(&loop->work_cond);
    free(loop->fds); /* the wakeup fd's watcher grew the table */
    free(loop->read_buf);
    free(loop);
    return err;
}

/* ---- handles -------------------------------------------------------- */

tapio_handle *tapio__handle_new(tapio_loop *loop, tapio_callback cb, void *arg)
{
    tapio_handle *h = loop->handle_pool;
    if (h) {
        loop->handle_pool = h->next;
        loop->handle_pool_len--;
    } else {
        h = malloc(sizeof(*h));
        if (!h)
            return NULL;
    }
    memset(h, 0, sizeof(*h));
    h->loop = loop;
    h->cb = cb;
    h->arg = arg;
    h->refs = 1;
    return h;
}

void tapio_handle_ref(tapio_handle *h)
{
    h->refs++;
    h->flags |= TAPIO__H_SHARED;
}

/* Only handles the user never referenced go back to the pool: a referenced
 * one may be released after its loop is gone. */
void tapio_handle_unref(tapio_handle *h)
{
    if (--h->refs)
        return;
    tapio_loop *loop = h->loop;
    if (!(h->flags & TAPIO__H_SHARED) && loop &&
        loop->handle_pool_len < HANDLE_POOL_MAX) {
        h->next = loop->handle_pool;
        loop->handle_pool = h;
        loop->handle_pool_len++;
    } else {
        free(h);
    }
}

bool tapio_handle_cancelled(const tapio_handle *h)
{
    return h->flags & TAPIO__H_CANCELLED;
}

double tapio_handle_when(const tapio_handle *h) { return h->when; }

void tapio__ready_push(tapio_loop *loop, tapio_handle *h)
{
    h->flags |= TAPIO__H_QUEUED;
    h->next = NULL;
    if (loop->ready_tail)
        loop->ready_tail->next = h;
    else
        loop->ready_head = h;
    loop->ready_tail = h;
    loop->nready++;
}

static tapio_handle *ready_pop(tapio_loop *loop)
{
    tapio_handle *h = loop->ready_head;
    loop->ready_head = h->next;
    if (!loop->ready_head)
        loop->ready_tail = NULL;
    loop->nready--;
    h->flags &= ~TAPIO__H_QUEUED;
    return h;
}

tapio_handle *tapio_call_soon(tapio_loop *loop, tapio_callback cb, void *arg)
{
    /* A call another thread made before this one goes first: one FIFO, as
     * in asyncio, whichever thread scheduled. */
    if (atomic_load_explicit(&loop->wake->has_calls, memory_order_relaxed))
        tapio__drain_threadsafe_calls(loop);
    tapio_handle *h = tapio__handle_new(loop, cb, arg);
    if (h)
        tapio__ready_push(loop, h);
    return h;
}

/* ---- running -------------------------------------------------------- */

bool tapio_loop_is_running(const tapio_loop *loop) { return loop->running; }

const char *tapio_loop_backend(const tapio_loop *loop)
{
    return loop->backend->name;
}

double tapio_loop_time(const tapio_loop *loop)
{
    (void)loop;
    return tapio__clock_now();
}

void tapio_loop_stop(tapio_loop *loop) { loop->stopping = true; }

void tapio_loop_interrupt(tapio_loop *loop)
{
    loop->stopping = true;
    loop->interrupted = true;
}

void tapio_loop_set_poll_hooks(tapio_loop *loop, tapio_poll_hook before,
                               tapio_poll_hook after, void *arg)
{
    loop->before_poll = before;
    loop->after_poll = after;
    loop->poll_hook_arg = arg;
}

/* Milliseconds to wait for I/O: none when work is ready, else until the
 * nearest timer (rounded up so the timer is due when we wake). */
static int poll_timeout_ms(tapio_loop *loop)
{
    if (loop->nready || loop->stopping)
        return 0;
    tapio_handle *top = tapio__heap_top(&loop->timers);
    if (!top)
        return -1;
    double delay = tapio__deadline(top) - tapio__clock_now();
    if (delay <= 0)
        return 0;
    double ms = ceil(delay * 1e3);
    return ms > 86400e3 ? 86400000 : (int)ms;
}

/* Run the first `ntodo` ready handles; callbacks they schedule wait for the
 * next iteration, as in asyncio. */
static void run_ready(tapio_loop *loop, size_t ntodo)
{
    while (ntodo-- && !loop->interrupted) {
        tapio_handle *h = ready_pop(loop);
        if (!(h->flags & TAPIO__H_CANCELLED))
            h->cb(loop, h->arg);
        tapio_handle_unref(h);
    }
}

/* Put a chain of handles back at the head of the ready queue. */
static void ready_push_front(tapio_loop *loop, tapio_handle *chain)
{
    tapio_handle *last = chain;
    size_t n = 1;
    while (last->next) {
        last = last->next;
        n++;
    }
    last->next = loop->ready_head;
    if (!loop->ready_head)
        loop->ready_tail = last;
    loop->ready_head = chain;
    loop->nready += n;
}

/* Take the timers due now off the heap, in deadline order, before any
 * callback of this iteration runs: a timer those callbacks add waits for the
 * next iteration, as in asyncio. They count as queued (cancel reports them
 * pending). */
static tapio_handle *take_due_timers(tapio_loop *loop)
{
    tapio_handle *top = tapio__heap_top(&loop->timers);
    if (!top)
        return NULL;
    tapio_handle *due = NULL, **tail = &due;
    double now = tapio__clock_now();
    while ((top = tapio__heap_top(&loop->timers)) && tapio__deadline(top) <= now) {
        tapio__heap_pop(&loop->timers);
        top->flags = (top->flags & ~TAPIO__H_IN_HEAP) | TAPIO__H_QUEUED;
        top->next = NULL;
        *tail = top;
        tail = &top->next;
    }
    return due;
}

/* Run the timers taken by take_due_timers, ahead of what this iteration's
 * callbacks queued (asyncio's order), skipping those cancelled meanwhile. */
static void run_timers(tapio_loop *loop, tapio_handle *due)
{
    while (due && !loop->interrupted) {
        tapio_handle *h = due;
        due = h->next;
        h->flags &= ~TAPIO__H_QUEUED;
        if (!(h->flags & TAPIO__H_CANCELLED))
            h->cb(loop, h->arg);
        tapio_handle_unref(h);
    }
    if (due) /* interrupted: they run first next time */
        ready_push_front(loop, due);
}

/* One iteration in asyncio's order: poll (not waiting when work is ready),
 * then the callbacks that were ready before it (other threads' included),
 * then I/O callbacks, then the timers that were due when the poll ended. */
static void run_iteration(tapio_loop *loop)
{
    loop->iterations++;
    tapio__io_flush_changes(loop);
    int timeout = poll_timeout_ms(loop);
    bool hooked = timeout != 0 && (loop->before_poll || loop->after_poll);
    if (hooked && loop->before_poll)
        loop->before_poll(loop, 0, loop->poll_hook_arg);
    int err = loop->backend->wait(loop, timeout);
    if (hooked && loop->after_poll)
        loop->after_poll(loop, err, loop->poll_hook_arg);
    if (err && err != -EINTR)
        tapio__report_error(loop, "I/O backend poll failed", err);
    if (atomic_load_explicit(&loop->wake->has_calls, memory_order_relaxed))
        tapio__drain_threadsafe_calls(loop);
    tapio_handle *due = take_due_timers(loop);
    loop->dispatching = true;
    run_ready(loop, loop->nready);
    if (!err && !loop->interrupted)
        loop->backend->dispatch(loop);
    run_timers(loop, due);
    loop->dispatching = false;
    tapio__flush_writes(loop);
}

/* Run iterations until asked to stop; `once` stops after the first. */
static int run(tapio_loop *loop, bool once)
{
    if (loop->running)
        return -EBUSY;
    if (loop->closing)
        return -ESHUTDOWN;
    loop->running = true;
    do
        run_iteration(loop);
    while (!once && !loop->stopping);
    if (!once || loop->interrupted)
        loop->stopping = false;
    loop->interrupted = false;
    loop->running = false;
    return 0;
}

int tapio_loop_run_once(tapio_loop *loop) { return run(loop, true); }

int tapio_loop_run_forever(tapio_loop *loop) { return run(loop, false); }

/* ---- closing -------------------------------------------------------- */

static void drop_ready(tapio_loop *loop)
{
    while (loop->ready_head) {
        tapio_handle *h = ready_pop(loop);
        h->loop = NULL; /* survivors held by the user must not pool */
        tapio_handle_unref(h);
    }
}

static void drop_timers(tapio_loop *loop)
{
    tapio_handle *h;
    while ((h = tapio__heap_pop(&loop->timers))) {
        h->flags &= ~TAPIO__H_IN_HEAP;
        h->loop = NULL;
        tapio_handle_unref(h);
    }
    tapio__heap_free(&loop->timers);
}

static void free_handle_pool(tapio_loop *loop)
{
    while (loop->handle_pool) {
        tapio_handle *h = loop->handle_pool;
        loop->handle_pool = h->next;
        free(h);
    }
}

int tapio_loop_close(tapio_loop *loop)
{
    if (loop->running)
        return -EBUSY;
    loop->closing = true;
    tapio__wakeup_refuse_calls(loop);
    tapio__workers_join(loop);
    /* Pending connects first (they may own transports), servers last (their
     * connections point at them). */
    tapio__connects_destroy_all(loop);
    tapio__processes_destroy_all(loop);
    tapio__transports_destroy_all(loop);
    tapio__datagrams_destroy_all(loop);
    tapio__servers_destroy_all(loop);
    tapio__signals_release(loop);
    tapio__io_close_all(loop);
    tapio__wakeup_close(loop);
    drop_ready(loop);
    drop_timers(loop);
    free_handle_pool(loop);
    loop->backend->destroy(loop);
    pthread_mutex_destroy(&loop->work_lock);
    pthread_cond_destroy(&loop->work_cond);
    free(loop->fds);
    tapio__fd_aliases_free(loop);
    free(loop->changes);
    free(loop->read_buf);
    free(loop);
    return 0;
}
