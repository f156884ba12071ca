/* test_loop.c — callbacks, timers, handles, thread-safe calls, fd watchers. */
#define _GNU_SOURCE /* pipe2 */
#include "harness.h"

#include <math.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------- a log of callback ids */

#define LOG_MAX 20000
static int log_ids[LOG_MAX];
static int log_n;

#define ID(i) ((void *)(intptr_t)(i))

static void log_id(tapio_loop *loop, void *arg)
{
    (void)loop;
    CHECK(log_n < LOG_MAX);
    log_ids[log_n++] = (int)(intptr_t)arg;
}

static void check_log(const int *want, int n)
{
    CHECK_EQ_INT(log_n, n);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(log_ids[i], want[i]);
}

static void fail_if_called(tapio_loop *loop, void *arg)
{
    (void)loop;
    FAIL("callback %p should not have run", arg);
}

/* A timer that fails the test if run_forever does not return in time. */
static tapio_handle *watchdog(tapio_loop *loop)
{
    tapio_handle *h = tapio_call_later(loop, 10, fail_if_called, ID(-1));
    CHECK(h != NULL);
    tapio_handle_ref(h);
    return h;
}

static void watchdog_disarm(tapio_handle *h)
{
    tapio_handle_cancel(h);
    tapio_handle_unref(h);
}

TEST(strerror_names_negative_errnos)
{
    CHECK(strcmp(tapio_strerror(-ECONNREFUSED), "Connection refused") == 0);
    CHECK(strcmp(tapio_strerror(-EMFILE), "Too many open files") == 0);
    CHECK(tapio_strerror(0) != NULL && tapio_strerror(-99999) != NULL);
}

/* ---------------------------------------------------------- call_soon */

TEST(call_soon_runs_in_fifo_order)
{
    tapio_loop *loop = test_loop();
    int want[100];
    for (int i = 0; i < 100; i++) {
        CHECK(tapio_call_soon(loop, log_id, ID(i)) != NULL);
        want[i] = i;
    }
    CHECK_EQ_INT(log_n, 0);
    CHECK_OK(tapio_loop_run_once(loop));
    check_log(want, 100);
}

static void log_then_schedule(tapio_loop *loop, void *arg)
{
    log_id(loop, arg);
    CHECK(tapio_call_soon(loop, log_id, ID(2)) != NULL);
}

/* Callbacks scheduled while an iteration runs wait for the next one. */
TEST(call_soon_from_callback_runs_next_iteration)
{
    tapio_loop *loop = test_loop();
    CHECK(tapio_call_soon(loop, log_then_schedule, ID(1)) != NULL);
    CHECK(tapio_call_soon(loop, log_id, ID(3)) != NULL);
    CHECK_OK(tapio_loop_run_once(loop));
    check_log((int[]){1, 3}, 2);
    CHECK_OK(tapio_loop_run_once(loop));
    check_log((int[]){1, 3, 2}, 3);
}

/* --------------------------------------------------------- stop / run */

static void stop_and_schedule(tapio_loop *loop, void *arg)
{
    log_id(loop, arg);
    tapio_loop_stop(loop);
    CHECK(tapio_call_soon(loop, log_id, ID(3)) != NULL);
}

TEST(stop_finishes_the_current_iteration)
{
    tapio_loop *loop = test_loop();
    tapio_handle *dog = watchdog(loop);
    CHECK(tapio_call_soon(loop, stop_and_schedule, ID(1)) != NULL);
    CHECK(tapio_call_soon(loop, log_id, ID(2)) != NULL);
    CHECK_OK(tapio_loop_run_forever(loop));
    /* 2 was ready when the iteration began; 3 was not. */
    check_log((int[]){1, 2}, 2);
    CHECK(!tapio_loop_is_running(loop));

    /* stop() before run_forever: exactly one iteration runs. */
    tapio_loop_stop(loop);
    CHECK_OK(tapio_loop_run_forever(loop));
    check_log((int[]){1, 2, 3}, 3);
    watchdog_disarm(dog);
}

static void check_reentry_refused(tapio_loop *loop, void *arg)
{
    CHECK(tapio_loop_is_running(loop));
    CHECK_ERR(tapio_loop_run_once(loop), -EBUSY);
    CHECK_ERR(tapio_loop_run_forever(loop), -EBUSY);
    CHECK_ERR(tapio_loop_close(loop), -EBUSY);
    *(bool *)arg = true;
}

TEST(running_loop_refuses_run_and_close)
{
    tapio_loop *loop = test_loop();
    bool checked = false;
    CHECK(!tapio_loop_is_running(loop));
    CHECK(tapio_call_soon(loop, check_reentry_refused, &checked) != NULL);
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK(checked);
    CHECK(!tapio_loop_is_running(loop));
}

static void interrupt_here(tapio_loop *loop, void *arg)
{
    log_id(loop, arg);
    tapio_loop_interrupt(loop);
}

TEST(interrupt_leaves_the_rest_of_the_iteration_queued)
{
    tapio_loop *loop = test_loop();
    tapio_handle *dog = watchdog(loop);
    CHECK(tapio_call_soon(loop, log_id, ID(1)) != NULL);
    CHECK(tapio_call_soon(loop, interrupt_here, ID(2)) != NULL);
    CHECK(tapio_call_soon(loop, log_id, ID(3)) != NULL);
    CHECK_OK(tapio_loop_run_forever(loop));
    check_log((int[]){1, 2}, 2);
    /* The interrupt does not linger: the next run goes on normally. */
    CHECK_OK(tapio_loop_run_once(loop));
    check_log((int[]){1, 2, 3}, 3);
    watchdog_disarm(dog);
}

struct hook_record {
    int before, after, last_result;
};

static void hook_before(tapio_loop *loop, int result, void *arg)
{
    (void)loop;
    (void)result;
    struct hook_record *r = arg;
    CHECK_EQ_INT(r->before, r->after); /* strictly paired */
    r->before++;
}

static void hook_after(tapio_loop *loop, int result, void *arg)
{
    (void)loop;
    struct hook_record *r = arg;
    r->after++;
    r->last_result = result;
    CHECK_EQ_INT(r->before, r->after);
}

TEST(poll_hooks_wrap_only_blocking_polls)
{
    tapio_loop *loop = test_loop();
    struct hook_record rec = {0, 0, 1};
    tapio_loop_set_poll_hooks(loop, hook_before, hook_after, &rec);
    /* Ready work: the poll does not block, so no hooks. */
    CHECK(tapio_call_soon(loop, log_id, ID(1)) != NULL);
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK_EQ_INT(rec.before, 0);
    /* A timer in the future: the poll blocks until it, inside the hooks. */
    CHECK(tapio_call_later(loop, 0.01, log_id, ID(2)) != NULL);
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK_EQ_INT(rec.before, 1);
    CHECK_EQ_INT(rec.after, 1);
    CHECK_EQ_INT(rec.last_result, 0);
    check_log((int[]){1, 2}, 2);
    tapio_loop_set_poll_hooks(loop, NULL, NULL, NULL);
}

/* ------------------------------------------------------------- timers */

struct timed {
    tapio_handle *h;
    double when;
    int id;
};

static void timed_fired(tapio_loop *loop, void *arg)
{
    struct timed *t = arg;
    /* Never early (1 ms of slack for millisecond poll timeouts). */
    CHECK(tapio_loop_time(loop) >= t->when - 1e-3);
    log_id(loop, ID(t->id));
}

TEST(run_once_sleeps_until_the_next_timer)
{
    tapio_loop *loop = test_loop();
    struct timed t = {.id = 7};
    double start = monotonic_now();
    double before = tapio_loop_time(loop);
    t.h = tapio_call_later(loop, 0.05, timed_fired, &t);
    double after = tapio_loop_time(loop);
    CHECK(t.h != NULL);
    t.when = tapio_handle_when(t.h);
    CHECK(t.when >= before + 0.05 - 1e-9 && t.when <= after + 0.05 + 1e-9);
    int iterations = 0;
    while (log_n == 0 && iterations < 10) {
        CHECK_OK(tapio_loop_run_once(loop));
        iterations++;
    }
    CHECK_EQ_INT(log_n, 1);
    CHECK(iterations <= 3); /* slept, did not spin */
    double elapsed = monotonic_now() - start;
    CHECK(elapsed >= 0.045 && elapsed < 2.0);
}

TEST(timers_fire_in_deadline_order)
{
    tapio_loop *loop = test_loop();
    static const double delays[] = {0.04, 0.01, 0.03, 0.02, 0.0, -1.0};
    struct timed t[6];
    for (int i = 0; i < 6; i++) {
        t[i] = (struct timed){.id = i};
        t[i].h = tapio_call_later(loop, delays[i], timed_fired, &t[i]);
        CHECK(t[i].h != NULL);
        t[i].when = tapio_handle_when(t[i].h);
    }
    /* A negative delay counts as 0, so 5 is due right after 4. */
    CHECK(t[5].when >= t[4].when && t[5].when < t[1].when);
    RUN_UNTIL(loop, log_n == 6, 5);
    check_log((int[]){4, 5, 1, 3, 2, 0}, 6);
}

/* A NaN delay or deadline is due at once (as asyncio runs it); it must
 * neither stall the loop nor hold back the timers after it. */
TEST(nan_deadline_runs_at_once_and_blocks_no_other_timer)
{
    tapio_loop *loop = test_loop();
    struct timed t[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
    t[0].h = tapio_call_later(loop, 0.02, timed_fired, &t[0]);
    t[1].h = tapio_call_later(loop, NAN, timed_fired, &t[1]);
    t[2].h = tapio_call_at(loop, NAN, timed_fired, &t[2]);
    t[3].h = tapio_call_later(loop, 0.01, timed_fired, &t[3]);
    for (int i = 0; i < 4; i++)
        CHECK(t[i].h != NULL);
    CHECK(isnan(tapio_handle_when(t[1].h)));
    double start = monotonic_now();
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK(monotonic_now() - start < 0.01); /* did not wait for the others */
    check_log((int[]){1, 2}, 2);
    RUN_UNTIL(loop, log_n == 4, 5);
    check_log((int[]){1, 2, 3, 0}, 4);
}

TEST(equal_deadlines_run_in_scheduling_order)
{
    tapio_loop *loop = test_loop();
    double when = tapio_loop_time(loop) + 0.02;
    struct timed t[50];
    int want[50];
    for (int i = 0; i < 50; i++) {
        t[i] = (struct timed){.id = i, .when = when};
        t[i].h = tapio_call_at(loop, when, timed_fired, &t[i]);
        CHECK(t[i].h != NULL);
        CHECK(tapio_handle_when(t[i].h) == when);
        want[i] = i;
    }
    RUN_UNTIL(loop, log_n == 50, 5);
    check_log(want, 50);
}

TEST(cancelled_callbacks_do_not_run)
{
    tapio_loop *loop = test_loop();
    tapio_handle *h = tapio_call_later(loop, 0.01, fail_if_called, ID(10));
    tapio_handle *s = tapio_call_soon(loop, fail_if_called, ID(11));
    CHECK(h && s);
    CHECK(tapio_handle_cancel(s)); /* it was pending */
    tapio_handle_ref(h);
    CHECK(tapio_handle_cancel(h));
    CHECK(tapio_handle_cancelled(h));
    CHECK(!tapio_handle_cancel(h)); /* idempotent: nothing left to stop */
    CHECK(tapio_handle_cancelled(h));
    tapio_handle_unref(h);
    run_for(loop, 0.03);
    CHECK_EQ_INT(log_n, 0);
}

TEST(cancel_after_the_callback_ran_stops_nothing)
{
    tapio_loop *loop = test_loop();
    tapio_handle *h = tapio_call_soon(loop, log_id, ID(1));
    CHECK(h != NULL);
    tapio_handle_ref(h);
    CHECK_OK(tapio_loop_run_once(loop));
    check_log((int[]){1}, 1);
    CHECK(!tapio_handle_cancel(h));
    tapio_handle_unref(h);
}

/* Cancels the handle stored in *arg (stored after this one was scheduled). */
static void cancel_slot(tapio_loop *loop, void *arg)
{
    log_id(loop, ID(1));
    CHECK(tapio_handle_cancel(*(tapio_handle **)arg)); /* due, not yet run */
}

/*
 * A callback cancels one that is due in the same iteration: the victim must
 * not run although it was already due (asyncio skips cancelled handles).
 */
TEST(cancel_from_another_callback_of_the_same_iteration)
{
    tapio_loop *loop = test_loop();
    double when = tapio_loop_time(loop) + 0.01;
    tapio_handle *timer_victim = NULL, *soon_victim = NULL;
    /* Each killer runs first: same deadline or queue, scheduled earlier. */
    CHECK(tapio_call_at(loop, when, cancel_slot, &timer_victim) != NULL);
    timer_victim = tapio_call_at(loop, when, fail_if_called, ID(11));
    CHECK(tapio_call_soon(loop, cancel_slot, &soon_victim) != NULL);
    soon_victim = tapio_call_soon(loop, fail_if_called, ID(12));
    CHECK(timer_victim && soon_victim);
    run_for(loop, 0.05);
    check_log((int[]){1, 1}, 2);
}

/* ------------------------------------------- 10,000 random timers */

#define NRANDOM 10000

struct rtimer {
    tapio_handle *h;
    double when;
    bool cancelled, fired;
};

static struct rtimer rtimers[NRANDOM];
static int ncancelled;
static unsigned rng_state = 12345;

static unsigned rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void rtimer_cancel(struct rtimer *r)
{
    if (r->fired || r->cancelled)
        return;
    tapio_handle_cancel(r->h);
    r->cancelled = true;
    ncancelled++;
}

static void rtimer_fired(tapio_loop *loop, void *arg)
{
    struct rtimer *r = arg;
    CHECK(!r->cancelled && !r->fired);
    CHECK(tapio_loop_time(loop) >= r->when - 1e-3);
    r->fired = true;
    log_id(loop, ID(r - rtimers));
    /* Now and then cancel a random timer that may be due in this iteration. */
    if (rng() % 7 == 0)
        rtimer_cancel(&rtimers[rng() % NRANDOM]);
}

/* Fired timers ran by (deadline, scheduling order). */
static void check_random_order(void)
{
    for (int i = 1; i < log_n; i++) {
        const struct rtimer *a = &rtimers[log_ids[i - 1]];
        const struct rtimer *b = &rtimers[log_ids[i]];
        CHECK(a->when < b->when ||
              (a->when == b->when && log_ids[i - 1] < log_ids[i]));
    }
}

TEST(many_random_timers_with_cancellations)
{
    tapio_loop *loop = test_loop();
    double base = tapio_loop_time(loop) + 0.05;
    for (int i = 0; i < NRANDOM; i++) {
        /* 2000 distinct deadlines over 0.2 s: many are equal. */
        rtimers[i].when = base + (rng() % 2000) * 1e-4;
        rtimers[i].h = tapio_call_at(loop, rtimers[i].when, rtimer_fired,
                                     &rtimers[i]);
        CHECK(rtimers[i].h != NULL);
    }
    for (int i = 0; i < NRANDOM; i++)
        if (rng() % 2)
            rtimer_cancel(&rtimers[i]);
    CHECK(ncancelled > NRANDOM / 3);
    RUN_UNTIL(loop, log_n + ncancelled == NRANDOM, 20);
    run_for(loop, 0.02); /* no cancelled timer fires late */
    CHECK_EQ_INT(log_n + ncancelled, NRANDOM);
    check_random_order();
}

/* ------------------------------------------------------------ handles */

TEST(handle_reference_outlives_the_callback)
{
    tapio_loop *loop = test_loop();
    tapio_handle *h = tapio_call_soon(loop, log_id, ID(1));
    CHECK(h != NULL);
    tapio_handle_ref(h);
    CHECK(tapio_handle_when(h) == 0);
    CHECK_OK(tapio_loop_run_once(loop));
    CHECK_EQ_INT(log_n, 1);
    /* Still valid through our reference: ASan would see a use after free. */
    CHECK(!tapio_handle_cancelled(h));
    tapio_handle_cancel(h); /* harmless after it ran */
    CHECK(tapio_handle_cancelled(h)); /* as asyncio's Handle.cancel() */
    tapio_handle_unref(h);

    tapio_handle *t = tapio_call_later(loop, 10, fail_if_called, ID(2));
    CHECK(t != NULL);
    tapio_handle_ref(t);
    tapio_handle_ref(t);
    CHECK(tapio_handle_when(t) > tapio_loop_time(loop) + 9);
    tapio_handle_cancel(t);
    tapio_handle_unref(t);
    CHECK(tapio_handle_cancelled(t));
    tapio_handle_unref(t); /* the last reference frees it (LSan checks) */
}

TEST(loop_time_is_monotonic)
{
    tapio_loop *loop = test_loop();
    double start = tapio_loop_time(loop), prev = start;
    for (int i = 0; i < 10000; i++) {
        double now = tapio_loop_time(loop);
        CHECK(now >= prev);
        prev = now;
    }
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    double elapsed = tapio_loop_time(loop) - start;
    CHECK(elapsed >= 0.019 && elapsed < 5);
}

/* -------------------------------------------------- call_soon_threadsafe */

#define PER_THREAD 10000

struct producer {
    tapio_loop *loop;
    int id;
    int next_seen; /* the loop thread's view: next sequence number expected */
};

static struct producer producers[2];
static pthread_t loop_thread;
static int threadsafe_calls;

/* arg encodes producer id * PER_THREAD + sequence number. */
static void count_threadsafe(tapio_loop *loop, void *arg)
{
    (void)loop;
    int v = (int)(intptr_t)arg;
    struct producer *p = &producers[v / PER_THREAD];
    CHECK(pthread_equal(pthread_self(), loop_thread));
    CHECK_EQ_INT(v % PER_THREAD, p->next_seen); /* FIFO per thread */
    p->next_seen++;
    threadsafe_calls++;
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_THREAD; i++)
        CHECK_OK(tapio_call_soon_threadsafe(p->loop, count_threadsafe,
                                            ID(p->id * PER_THREAD + i)));
    return NULL;
}

TEST(call_soon_threadsafe_from_two_threads)
{
    tapio_loop *loop = test_loop();
    loop_thread = pthread_self();
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        producers[i] = (struct producer){.loop = loop, .id = i};
        CHECK(pthread_create(&threads[i], NULL, produce, &producers[i]) == 0);
    }
    RUN_UNTIL(loop, threadsafe_calls == 2 * PER_THREAD, 30);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK_EQ_INT(producers[0].next_seen, PER_THREAD);
    CHECK_EQ_INT(producers[1].next_seen, PER_THREAD);
}

static void set_true(tapio_loop *loop, void *arg)
{
    (void)loop;
    *(bool *)arg = true;
}

struct late_call {
    tapio_loop *loop;
    bool *flag;
};

static void *call_after_100ms(void *arg)
{
    struct late_call *lc = arg;
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    CHECK_OK(tapio_call_soon_threadsafe(lc->loop, set_true, lc->flag));
    return NULL;
}

TEST(call_soon_threadsafe_wakes_a_sleeping_loop)
{
    tapio_loop *loop = test_loop();
    bool called = false;
    struct late_call lc = {loop, &called};
    pthread_t thread;
    double start = monotonic_now();
    CHECK(pthread_create(&thread, NULL, call_after_100ms, &lc) == 0);
    /* Only a 10 s timer is pending: without the wakeup the loop sleeps on. */
    RUN_UNTIL(loop, called, 10);
    CHECK(monotonic_now() - start < 5);
    CHECK(pthread_join(thread, NULL) == 0);
}

static void *call_log_threadsafe(void *arg)
{
    CHECK_OK(tapio_call_soon_threadsafe(arg, log_id, ID(1)));
    return NULL;
}

/* asyncio keeps one ready queue: a threadsafe call made before a call_soon
 * runs first, even though it arrived from another thread. */
TEST(call_soon_threadsafe_keeps_fifo_order_with_call_soon)
{
    tapio_loop *loop = test_loop();
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, call_log_threadsafe, loop) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(tapio_call_soon(loop, log_id, ID(2)) != NULL);
    RUN_UNTIL(loop, log_n == 2, 5);
    check_log((int[]){1, 2}, 2);
}

/* A thread calling through a tapio_waker while the loop closes gets
 * -ESHUTDOWN from then on, never touches the freed loop (ASan would see it),
 * and the closed loop holds no fd even though the waker lives on. */
struct hammer {
    tapio_waker *waker;
    atomic_int accepted, ran;
    atomic_bool refused;
};

static void count_ran(tapio_loop *loop, void *arg)
{
    (void)loop;
    atomic_fetch_add(&((struct hammer *)arg)->ran, 1);
}

static void *hammer_calls(void *arg)
{
    struct hammer *h = arg;
    for (;;) {
        int err = tapio_waker_call(h->waker, count_ran, h);
        if (err == -ESHUTDOWN)
            break;
        CHECK_OK(err);
        atomic_fetch_add(&h->accepted, 1);
    }
    atomic_store(&h->refused, true);
    CHECK_ERR(tapio_waker_call(h->waker, count_ran, h), -ESHUTDOWN);
    tapio_waker_free(h->waker); /* from another thread, after the loop */
    return NULL;
}

TEST(waker_calls_racing_loop_close_are_refused_not_crashing)
{
    int fds_before = count_open_fds();
    tapio_loop *loop;
    CHECK_OK(tapio_loop_new(&loop));
    struct hammer h = {.waker = tapio_waker_new(loop)};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, hammer_calls, &h) == 0);
    double until = monotonic_now() + 5;
    while (atomic_load(&h.ran) < 100 && monotonic_now() < until)
        CHECK_OK(tapio_loop_run_once(loop));
    CHECK(atomic_load(&h.ran) >= 100);
    CHECK_OK(tapio_loop_close(loop)); /* while the thread keeps calling */
    CHECK_EQ_INT(count_open_fds(), fds_before);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(atomic_load(&h.refused));
    CHECK(atomic_load(&h.ran) <= atomic_load(&h.accepted));
}

/* --------------------------------------------------------- fd watchers */

struct watch {
    int calls;
    bool read_one; /* read one byte per call */
    bool remove_self_writer;
};

static void on_fd(tapio_loop *loop, int fd, void *arg)
{
    struct watch *w = arg;
    w->calls++;
    char c;
    if (w->read_one)
        CHECK(read(fd, &c, 1) == 1);
    if (w->remove_self_writer)
        CHECK(tapio_remove_writer(loop, fd));
}

static void make_pipe(int p[2])
{
    CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
}

TEST(reader_is_level_triggered_and_removable)
{
    tapio_loop *loop = test_loop();
    int p[2];
    make_pipe(p);
    struct watch w = {.read_one = true};
    CHECK_OK(tapio_add_reader(loop, p[0], on_fd, &w));
    CHECK(write(p[1], "ab", 2) == 2);
    /* One byte per call: still readable after the first call. */
    RUN_UNTIL(loop, w.calls == 2, 5);
    CHECK(tapio_remove_reader(loop, p[0]));
    CHECK(!tapio_remove_reader(loop, p[0]));
    CHECK(write(p[1], "c", 1) == 1);
    run_for(loop, 0.03);
    CHECK_EQ_INT(w.calls, 2);
    close(p[0]);
    close(p[1]);
}

/* asyncio's order within an iteration: the callbacks ready before the
 * poll, then I/O callbacks, then due timers; what they schedule runs in
 * the next iteration. */
struct order_log {
    char seen[16];
    int n;
};

static void log_call(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct order_log *log = arg;
    log->seen[log->n++] = 's';
}

static void log_timer(tapio_loop *loop, void *arg)
{
    (void)loop;
    struct order_log *log = arg;
    log->seen[log->n++] = 't';
}

static void log_io(tapio_loop *loop, int fd, void *arg)
{
    struct order_log *log = arg;
    log->seen[log->n++] = 'r';
    CHECK(tapio_remove_reader(loop, fd));
    CHECK(tapio_call_soon(loop, log_call, log)); /* next iteration */
}

TEST(iteration_runs_ready_then_io_then_timers)
{
    tapio_loop *loop = test_loop();
    int p[2];
    make_pipe(p);
    struct order_log log = {0};
    CHECK(write(p[1], "x", 1) == 1); /* readable before the poll */
    CHECK_OK(tapio_add_reader(loop, p[0], log_io, &log));
    CHECK(tapio_call_later(loop, 0, log_timer, &log));
    CHECK(tapio_call_soon(loop, log_call, &log));
    usleep(2000); /* the timer is due at the first poll */
    CHECK_EQ_INT(tapio_loop_run_once(loop), 0);
    log.seen[log.n] = 0;
    CHECK(strcmp(log.seen, "srt") == 0);
    CHECK_EQ_INT(tapio_loop_run_once(loop), 0);
    log.seen[log.n] = 0;
    CHECK(strcmp(log.seen, "srts") == 0);
    close(p[0]);
    close(p[1]);
}

static void schedule_timer_then_linger(tapio_loop *loop, void *arg)
{
    struct order_log *log = arg;
    log->seen[log->n++] = 's';
    CHECK(tapio_call_later(loop, 0, log_timer, log));
    usleep(2000); /* its deadline passes before the iteration ends */
}

/* Timers are taken when the poll returns: one a callback adds runs in the
 * next iteration even if its deadline passed meanwhile, as in asyncio. */
TEST(timer_added_by_a_callback_waits_for_the_next_iteration)
{
    tapio_loop *loop = test_loop();
    struct order_log log = {0};
    CHECK(tapio_call_soon(loop, schedule_timer_then_linger, &log));
    CHECK_EQ_INT(tapio_loop_run_once(loop), 0);
    log.seen[log.n] = 0;
    CHECK(strcmp(log.seen, "s") == 0);
    CHECK_EQ_INT(tapio_loop_run_once(loop), 0);
    log.seen[log.n] = 0;
    CHECK(strcmp(log.seen, "st") == 0);
}

TEST(writer_fires_and_can_remove_itself)
{
    tapio_loop *loop = test_loop();
    int p[2];
    make_pipe(p);
    struct watch w = {.remove_self_writer = true};
    CHECK_OK(tapio_add_writer(loop, p[1], on_fd, &w));
    RUN_UNTIL(loop, w.calls == 1, 5);
    run_briefly(loop, 3);
    CHECK_EQ_INT(w.calls, 1);
    CHECK(!tapio_remove_writer(loop, p[1]));
    close(p[0]);
    close(p[1]);
}

TEST(add_reader_replaces_the_earlier_reader)
{
    tapio_loop *loop = test_loop();
    int p[2];
    make_pipe(p);
    struct watch first = {.read_one = true}, second = {.read_one = true};
    CHECK_OK(tapio_add_reader(loop, p[0], on_fd, &first));
    CHECK_OK(tapio_add_reader(loop, p[0], on_fd, &second));
    CHECK(write(p[1], "x", 1) == 1);
    RUN_UNTIL(loop, second.calls == 1, 5);
    CHECK_EQ_INT(first.calls, 0);
    CHECK(tapio_remove_reader(loop, p[0]));
    close(p[0]);
    close(p[1]);
}

/* Removing the reader of an fd leaves its writer working, and back. */
TEST(reader_and_writer_on_one_fd_are_independent)
{
    tapio_loop *loop = test_loop();
    int sp[2];
    socket_pair(AF_UNIX, sp);
    set_nonblocking(sp[0]);
    struct watch reader = {.read_one = true}, writer = {0};
    CHECK_OK(tapio_add_reader(loop, sp[0], on_fd, &reader));
    CHECK_OK(tapio_add_writer(loop, sp[0], on_fd, &writer));
    CHECK(tapio_remove_reader(loop, sp[0]));
    RUN_UNTIL(loop, writer.calls >= 3, 5);
    CHECK_EQ_INT(reader.calls, 0);

    CHECK_OK(tapio_add_reader(loop, sp[0], on_fd, &reader));
    CHECK(tapio_remove_writer(loop, sp[0]));
    int writes = writer.calls;
    CHECK(write(sp[1], "x", 1) == 1);
    RUN_UNTIL(loop, reader.calls == 1, 5);
    run_briefly(loop, 2);
    CHECK_EQ_INT(writer.calls, writes);
    CHECK(tapio_remove_reader(loop, sp[0]));
    close(sp[0]);
    close(sp[1]);
}

TEST(add_reader_rejects_bad_fds)
{
    tapio_loop *loop = test_loop();
    struct watch w = {0};
    int closed_fd = dup(0);
    CHECK(closed_fd >= 0);
    close(closed_fd);
    CHECK_ERR(tapio_add_reader(loop, closed_fd, on_fd, &w), -EBADF);
    CHECK_ERR(tapio_add_reader(loop, -1, on_fd, &w), -EBADF);

    char path[] = "/tmp/tapio-test-regular-XXXXXX";
    int file = mkstemp(path);
    CHECK(file >= 0);
    unlink(path);
    CHECK_ERR(tapio_add_reader(loop, file, on_fd, &w), -EPERM);
    CHECK_ERR(tapio_add_writer(loop, file, on_fd, &w), -EPERM);
    close(file);
    CHECK_EQ_INT(w.calls, 0);
}

TEST(add_reader_refuses_a_transport_fd)
{
    tapio_loop *loop = test_loop();
    int peer;
    conn *c = conn_with_raw_peer(loop, AF_UNIX, &peer);
    struct watch w = {0};
    int fd = tapio_transport_fd(c->t);
    CHECK(fd >= 0);
    CHECK(tapio_fd_is_owned(loop, fd));
    CHECK_ERR(tapio_add_reader(loop, fd, on_fd, &w), -EBUSY);
    CHECK_ERR(tapio_add_writer(loop, fd, on_fd, &w), -EBUSY);
    /* A user's watcher does not make its fd owned. */
    CHECK_OK(tapio_add_reader(loop, peer, on_fd, &w));
    CHECK(!tapio_fd_is_owned(loop, peer));
    CHECK(tapio_remove_reader(loop, peer));
    CHECK(!tapio_fd_is_owned(loop, -1));
    close(peer);
}

TEST(dup_alias_owns_the_callers_fd_while_it_is_the_same_socket)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    socket_pair(AF_UNIX, fds);
    int mine = fds[0], peer = fds[1];
    int dup = tapio_fd_dup_alias(loop, mine);
    CHECK(dup >= 0 && dup != mine);
    CHECK(fcntl(dup, F_GETFD) & FD_CLOEXEC);
    /* Nothing owns the dup yet: the alias counts for nothing. */
    CHECK(!tapio_fd_is_owned(loop, mine));
    conn *c = conn_wrap_fd(loop, dup);
    CHECK_EQ_INT(tapio_fd_owner(loop, mine), dup);
    CHECK_EQ_INT(tapio_fd_owner(loop, dup), dup);
    CHECK_EQ_INT(tapio_fd_owner(loop, peer), -1);
    struct watch w = {0};
    CHECK_ERR(tapio_add_reader(loop, mine, on_fd, &w), -EBUSY);
    CHECK_ERR(tapio_add_writer(loop, mine, on_fd, &w), -EBUSY);

    /* The caller closes its fd and the number comes back for another
     * socket: that one is not the transport's, and the transport's writes
     * and close do not reach it. */
    close(mine);
    int other[2];
    socket_pair(AF_UNIX, other);
    if (other[0] != mine) { /* the number, whichever fd took it first */
        CHECK(dup2(other[0], mine) == mine);
        close(other[0]);
    }
    CHECK(!tapio_fd_is_owned(loop, mine));
    CHECK_EQ_INT(tapio_fd_owner(loop, mine), -1);
    CHECK_OK(tapio_add_reader(loop, mine, on_fd, &w));
    CHECK(tapio_remove_reader(loop, mine));
    CHECK_OK(tapio_transport_write(c->t, "to the peer", 11));
    tapio_transport_close(c->t);
    RUN_UNTIL(loop, c->lost, 5);
    char buf[32];
    CHECK_EQ_INT(recv(peer, buf, sizeof(buf), 0), 11);
    set_nonblocking(other[1]);
    CHECK(recv(other[1], buf, sizeof(buf), 0) < 0 && errno == EAGAIN);
    CHECK(fcntl(mine, F_GETFD) >= 0); /* still open */
    close(mine);
    close(other[1]);
    close(peer);
}

TEST(dup_alias_of_a_bad_fd_fails)
{
    tapio_loop *loop = test_loop();
    CHECK_ERR(tapio_fd_dup_alias(loop, -1), -EBADF);
    int closed_fd = dup(0);
    CHECK(closed_fd >= 0);
    close(closed_fd);
    CHECK_ERR(tapio_fd_dup_alias(loop, closed_fd), -EBADF);
    CHECK_EQ_INT(tapio_fd_owner(loop, closed_fd), -1);
}
