/* test_signal.c — signal handlers run as loop callbacks. */
#include "harness.h"

#include <signal.h>
#include <unistd.h>

struct caught {
    int count;
    int signum;
};

static void on_signal(tapio_loop *loop, int signum, void *arg)
{
    struct caught *c = arg;
    /* A loop callback, not the signal handler: the loop is running. */
    CHECK(tapio_loop_is_running(loop));
    c->count++;
    c->signum = signum;
}

static bool has_default_disposition(int signum)
{
    struct sigaction sa;
    sigset_t blocked;
    CHECK(sigaction(signum, NULL, &sa) == 0);
    CHECK(sigprocmask(SIG_BLOCK, NULL, &blocked) == 0);
    return sa.sa_handler == SIG_DFL && !sigismember(&blocked, signum);
}

TEST(signal_handler_runs_from_the_loop_after_raise)
{
    tapio_loop *loop = test_loop();
    struct caught c = {0};
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR1, on_signal, &c));
    CHECK(raise(SIGUSR1) == 0);
    CHECK_EQ_INT(c.count, 0); /* not from inside the signal handler */
    RUN_UNTIL(loop, c.count == 1, 5);
    CHECK_EQ_INT(c.signum, SIGUSR1);
    CHECK(tapio_remove_signal_handler(loop, SIGUSR1));
    CHECK(!tapio_remove_signal_handler(loop, SIGUSR1));
}

TEST(signal_handler_runs_after_kill_getpid)
{
    tapio_loop *loop = test_loop();
    struct caught c = {0};
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR2, on_signal, &c));
    for (int round = 1; round <= 3; round++) {
        CHECK(kill(getpid(), SIGUSR2) == 0);
        RUN_UNTIL(loop, c.count == round, 5);
        CHECK_EQ_INT(c.signum, SIGUSR2);
    }
    CHECK(tapio_remove_signal_handler(loop, SIGUSR2));
}

TEST(remove_signal_handler_restores_the_default)
{
    tapio_loop *loop = test_loop();
    struct caught c = {0};
    CHECK(has_default_disposition(SIGUSR1));
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR1, on_signal, &c));
    CHECK(!has_default_disposition(SIGUSR1));
    CHECK(tapio_remove_signal_handler(loop, SIGUSR1));
    CHECK(has_default_disposition(SIGUSR1));
}

TEST(add_signal_handler_replaces_the_callback)
{
    tapio_loop *loop = test_loop();
    struct caught first = {0}, second = {0};
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR1, on_signal, &first));
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR1, on_signal, &second));
    CHECK(raise(SIGUSR1) == 0);
    RUN_UNTIL(loop, second.count == 1, 5);
    run_briefly(loop, 2);
    CHECK_EQ_INT(first.count, 0);
    CHECK(tapio_remove_signal_handler(loop, SIGUSR1));
}

TEST(add_signal_handler_rejects_invalid_signals)
{
    tapio_loop *loop = test_loop();
    struct caught c = {0};
    CHECK_ERR(tapio_add_signal_handler(loop, SIGKILL, on_signal, &c), -EINVAL);
    CHECK_ERR(tapio_add_signal_handler(loop, SIGSTOP, on_signal, &c), -EINVAL);
    CHECK_ERR(tapio_add_signal_handler(loop, 0, on_signal, &c), -EINVAL);
    CHECK_ERR(tapio_add_signal_handler(loop, -1, on_signal, &c), -EINVAL);
    CHECK_ERR(tapio_add_signal_handler(loop, NSIG, on_signal, &c), -EINVAL);
    CHECK(!tapio_remove_signal_handler(loop, SIGKILL));
}

/* One loop per signal number in a process. */
TEST(a_signal_belongs_to_one_loop)
{
    tapio_loop *loop = test_loop();
    tapio_loop *other = NULL;
    struct caught c = {0};
    CHECK_OK(tapio_loop_new(&other));
    CHECK_OK(tapio_add_signal_handler(loop, SIGUSR1, on_signal, &c));
    CHECK_ERR(tapio_add_signal_handler(other, SIGUSR1, on_signal, &c), -EBUSY);
    CHECK(!tapio_remove_signal_handler(other, SIGUSR1));
    CHECK(tapio_remove_signal_handler(loop, SIGUSR1));

    /* Released: now the other loop may take it. */
    CHECK_OK(tapio_add_signal_handler(other, SIGUSR1, on_signal, &c));
    CHECK(raise(SIGUSR1) == 0);
    RUN_UNTIL(other, c.count == 1, 5);
    CHECK(tapio_remove_signal_handler(other, SIGUSR1));
    CHECK_OK(tapio_loop_close(other));
}
