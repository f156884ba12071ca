/* Signal handlers that run as loop callbacks: the process-wide handler only
 * writes the signal number into the owning loop's self-pipe. */
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write end of the self-pipe of the loop that owns each signal, or -1. */
static atomic_int signal_fds[NSIG];
static pthread_once_t signal_fds_once = PTHREAD_ONCE_INIT;

typedef struct signal_slot {
    tapio_signal_callback cb;
    void *arg;
} signal_slot;

static void init_signal_fds(void)
{
    for (int i = 0; i < NSIG; i++)
        atomic_init(&signal_fds[i], -1);
}

static void on_signal(int signum)
{
    int saved = errno;
    int fd = atomic_load(&signal_fds[signum]);
    if (fd >= 0) {
        unsigned char byte = (unsigned char)signum;
        /* A full pipe already holds enough wakeups to run the handler. */
        ssize_t rc = write(fd, &byte, 1);
        (void)rc;
    }
    errno = saved;
}

static void signal_pipe_cb(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)io;
    (void)events;
    unsigned char buf[256];
    ssize_t n;
    while ((n = read(loop->signal_pipe[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            signal_slot *slot = (signal_slot *)loop->signal_handlers + buf[i];
            if (slot->cb) /* it may have been removed meanwhile */
                slot->cb(loop, buf[i], slot->arg);
        }
    }
}

static void close_signal_pipe(tapio_loop *loop)
{
    close(loop->signal_pipe[0]);
    close(loop->signal_pipe[1]);
    loop->signal_pipe[0] = loop->signal_pipe[1] = -1;
    free(loop->signal_handlers);
    loop->signal_handlers = NULL;
}

static int open_signal_pipe(tapio_loop *loop)
{
    if (loop->signal_pipe[0] >= 0)
        return 0;
    loop->signal_handlers = calloc(NSIG, sizeof(signal_slot));
    if (!loop->signal_handlers)
        return -ENOMEM;
    if (pipe2(loop->signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        int err = -errno;
        free(loop->signal_handlers);
        loop->signal_handlers = NULL;
        return err;
    }
    tapio__io_init(&loop->signal_io, loop->signal_pipe[0], signal_pipe_cb);
    int err = tapio__io_attach(loop, &loop->signal_io);
    if (err) {
        close_signal_pipe(loop);
        return err;
    }
    tapio__io_set(loop, &loop->signal_io, TAPIO__READ);
    return 0;
}

static bool valid_signal(int signum)
{
    return signum > 0 && signum < NSIG && signum != SIGKILL &&
           signum != SIGSTOP;
}

int tapio_add_signal_handler(tapio_loop *loop, int signum,
                             tapio_signal_callback cb, void *arg)
{
    if (!valid_signal(signum) || !cb)
        return -EINVAL;
    pthread_once(&signal_fds_once, init_signal_fds);
    int err = open_signal_pipe(loop);
    if (err)
        return err;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&signal_fds[signum], &expected,
                                        loop->signal_pipe[1]) &&
        expected != loop->signal_pipe[1])
        return -EBUSY;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signum, &sa, NULL) < 0) {
        err = -errno;
        atomic_store(&signal_fds[signum], -1);
        return err;
    }
    signal_slot *slot = (signal_slot *)loop->signal_handlers + signum;
    slot->cb = cb;
    slot->arg = arg;
    return 0;
}

static bool owns_signal(tapio_loop *loop, int signum)
{
    return loop->signal_handlers && signum > 0 && signum < NSIG &&
           atomic_load(&signal_fds[signum]) == loop->signal_pipe[1] &&
           ((signal_slot *)loop->signal_handlers)[signum].cb;
}

bool tapio_remove_signal_handler(tapio_loop *loop, int signum)
{
    if (!owns_signal(loop, signum))
        return false;
    signal(signum, SIG_DFL);
    atomic_store(&signal_fds[signum], -1);
    signal_slot *slot = (signal_slot *)loop->signal_handlers + signum;
    slot->cb = NULL;
    slot->arg = NULL;
    return true;
}

void tapio__signals_release(tapio_loop *loop)
{
    if (loop->signal_pipe[0] < 0)
        return;
    for (int signum = 1; signum < NSIG; signum++)
        tapio_remove_signal_handler(loop, signum);
    tapio__io_detach(loop, &loop->signal_io);
    close_signal_pipe(loop);
}
