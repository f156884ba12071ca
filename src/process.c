/* Subprocesses: spawning (posix_spawn, every other fd closed), adopting a
 * child spawned elsewhere (the Python binding's subprocess.Popen), watching
 * for the exit (a pidfd, or a thread blocked in waitpid where pidfds are
 * missing) or being told it (a watcher of the caller's), the pipes as pipe
 * transports, and asyncio's order of events
 * (base_subprocess.BaseSubprocessTransport). This is the one subprocess
 * state machine: the Python binding forwards to it. */
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct pipe_link {
    tapio_process *p;
    int fd;              /* the child's fd: 0, 1 or 2 */
    tapio_transport *t;  /* referenced; NULL without a pipe */
    bool lost;           /* its connection_lost ran */
} pipe_link;

struct tapio_process {
    tapio__list node; /* in loop->processes while alive */
    tapio_loop *loop;
    const tapio_subprocess_protocol *proto;
    void *user;
    unsigned refs;
    pid_t pid;
    bool caller_reaps;    /* adopted: the caller watches, reaps and tells */
    int pidfd;
    tapio__io exit_io;
    pthread_t waiter;     /* the fallback when there is no pidfd */
    bool has_waiter;
    int wait_status;      /* from the waiter thread */
    atomic_bool reaped;   /* set by the waiter thread once it reaped */
    pipe_link pipes[3];
    bool made;            /* connection_made has run */
    bool exited;          /* the returncode is known */
    bool exit_pending;    /* exited before connection_made: report after */
    bool closing;
    bool finished;        /* connection_lost is due */
    int returncode;
};

/* ---- finishing ---------------------------------------------------------- */

static void release(tapio_process *p)
{
    for (int i = 0; i < 3; i++) {
        if (p->pipes[i].t) {
            tapio_transport_unref(p->pipes[i].t);
            p->pipes[i].t = NULL;
        }
    }
    tapio__list_remove(&p->node);
}

void tapio_process_ref(tapio_process *p) { p->refs++; }

void tapio_process_unref(tapio_process *p)
{
    if (--p->refs == 0)
        free(p);
}

static void call_connection_lost(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_process *p = arg;
    if (p->proto && p->proto->connection_lost)
        p->proto->connection_lost(p, 0, p->user);
    release(p);
    tapio_process_unref(p);
}

/* connection_lost comes once the child exited and every pipe closed. */
static void try_finish(tapio_process *p)
{
    if (p->finished || !p->exited || !p->made)
        return;
    for (int i = 0; i < 3; i++)
        if (p->pipes[i].t && !p->pipes[i].lost)
            return;
    p->finished = true;
    if (!tapio_call_soon(p->loop, call_connection_lost, p))
        call_connection_lost(p->loop, p);
}

static void report_exit(tapio_process *p)
{
    if (p->proto && p->proto->process_exited)
        p->proto->process_exited(p, p->user);
    try_finish(p);
}

static int returncode_of(int status)
{
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

static void exited(tapio_process *p, int status)
{
    p->exited = true;
    p->returncode = returncode_of(status);
    if (p->made)
        report_exit(p);
    else
        p->exit_pending = true; /* asyncio holds it until connection_made */
}

/* A caller's watcher told us: the returncode is known now, the events
 * follow from the loop (never inside the caller's call). */
static void told_exit(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_process *p = arg;
    if (p->made)
        report_exit(p);
    else
        p->exit_pending = true;
}

int tapio_process_set_exited(tapio_process *p, int returncode)
{
    if (!p->caller_reaps)
        return -EINVAL;
    if (p->exited)
        return -EALREADY;
    if (!p->loop)
        return -ESHUTDOWN;
    /* Queued before anything that needs it: the process lives until its
     * connection_lost, which comes after this, or until the loop closes,
     * which drops this unrun. */
    if (!tapio_call_soon(p->loop, told_exit, p))
        return -ENOMEM;
    p->exited = true;
    p->returncode = returncode;
    return 0;
}

/* ---- watching for the exit --------------------------------------------- */

static void on_pidfd(tapio_loop *loop, tapio__io *io, unsigned events)
{
    (void)events;
    tapio_process *p = tapio__container_of(io, tapio_process, exit_io);
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0)
        return; /* not yet reapable */
    tapio__io_detach(loop, io);
    close(p->pidfd);
    p->pidfd = -1;
    /* Reaped by someone else: asyncio reports 255 then. */
    exited(p, r == p->pid ? status : 255 << 8);
}

static void waiter_done(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_process *p = arg;
    pthread_join(p->waiter, NULL);
    p->has_waiter = false;
    exited(p, p->wait_status);
    tapio_process_unref(p); /* the waiter's reference */
}

static void *wait_for_child(void *arg)
{
    tapio_process *p = arg;
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    p->wait_status = status;
    atomic_store(&p->reaped, true); /* no more signals to this pid */
    if (tapio_call_soon_threadsafe(p->loop, waiter_done, p) < 0)
        p->wait_status = -1; /* the loop is closing: it joins us */
    return NULL;
}

/* pidfd_open, or the failure TAPIO_FAULT_PIDFD_OPEN names (tapio.h). */
static int open_pidfd(pid_t pid)
{
    const char *fault = getenv("TAPIO_FAULT_PIDFD_OPEN");
    if (fault && *fault) {
        errno = atoi(fault) > 0 ? atoi(fault) : ENOSYS;
        return -1;
    }
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* No pidfd (an old kernel), or one the backend cannot watch: a thread
 * waits, as asyncio's ThreadedChildWatcher does. */
static int wait_in_thread(tapio_process *p)
{
    p->refs++;
    int err = -pthread_create(&p->waiter, NULL, wait_for_child, p);
    if (err)
        p->refs--;
    p->has_waiter = !err;
    return err;
}

static void on_pidfd_refused(tapio_loop *loop, tapio__io *io, int err)
{
    tapio_process *p = tapio__container_of(io, tapio_process, exit_io);
    tapio__io_detach(loop, io);
    close(p->pidfd);
    p->pidfd = -1;
    int terr = wait_in_thread(p);
    if (terr)
        tapio__report_error(loop, "cannot watch a child's exit", err);
}

static int watch_exit(tapio_process *p)
{
    if (p->caller_reaps)
        return 0;
    p->pidfd = open_pidfd(p->pid);
    if (p->pidfd >= 0) {
        fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
        tapio__io_init(&p->exit_io, p->pidfd, on_pidfd);
        p->exit_io.refused = on_pidfd_refused;
        int err = tapio__io_attach(p->loop, &p->exit_io);
        if (!err) {
            tapio__io_set(p->loop, &p->exit_io, TAPIO__READ);
            return 0;
        }
        close(p->pidfd);
        p->pidfd = -1;
    }
    return wait_in_thread(p);
}

/* ---- the pipes ------------------------------------------------------------ */

static void pipe_data_received(tapio_transport *t, const void *data,
                               size_t len, void *user)
{
    (void)t;
    pipe_link *link = user;
    tapio_process *p = link->p;
    if (p->proto && p->proto->pipe_data_received)
        p->proto->pipe_data_received(p, link->fd, data, len, p->user);
}

static void pipe_connection_lost(tapio_transport *t, int err, void *user)
{
    (void)t;
    pipe_link *link = user;
    tapio_process *p = link->p;
    link->lost = true;
    if (p->proto && p->proto->pipe_connection_lost)
        p->proto->pipe_connection_lost(p, link->fd, err, p->user);
    try_finish(p);
}

static void pipe_pause_writing(tapio_transport *t, void *user)
{
    (void)t;
    tapio_process *p = ((pipe_link *)user)->p;
    if (p->proto && p->proto->pause_writing)
        p->proto->pause_writing(p, p->user);
}

static void pipe_resume_writing(tapio_transport *t, void *user)
{
    (void)t;
    tapio_process *p = ((pipe_link *)user)->p;
    if (p->proto && p->proto->resume_writing)
        p->proto->resume_writing(p, p->user);
}

static const tapio_protocol pipe_protocol = {
    .data_received = pipe_data_received,
    .connection_lost = pipe_connection_lost,
    .pause_writing = pipe_pause_writing,
    .resume_writing = pipe_resume_writing,
};

/* Room for 1 MiB instead of the kernel's 64 KiB: fewer wake-ups and larger
 * reads for a child that writes a lot. Over the system's limit (or not
 * Linux) the default stays. */
static void enlarge_pipe(int fd)
{
#ifdef F_SETPIPE_SZ
    (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#else
    (void)fd;
#endif
}

static int connect_pipe(tapio_process *p, int child_fd, int fd)
{
    pipe_link *link = &p->pipes[child_fd];
    link->p = p;
    link->fd = child_fd;
    if (fd < 0)
        return 0;
    int err = tapio__set_nonblocking(fd);
    if (err) {
        close(fd);
        return err;
    }
    err = tapio__transport_new(p->loop, fd,
                               child_fd == 0 ? TAPIO__WRITE_PIPE
                                             : TAPIO__READ_PIPE,
                               &pipe_protocol, link, NULL, &link->t);
    if (err)
        return err;
    tapio_transport_ref(link->t);
    /* The child's output is read through a relay (tapio_pipe_read_relayed),
     * so that a child writing a lot and the loop reading it do not take
     * turns under the pipe's lock; without splice, plain reads. */
    if (child_fd != 0) {
        enlarge_pipe(fd);
        tapio__transport_relay(link->t);
    }
    return 0;
}

/* ---- creation -------------------------------------------------------------- */

static void call_connection_made(tapio_loop *loop, void *arg)
{
    (void)loop;
    tapio_process *p = arg;
    if (p->proto && p->proto->connection_made)
        p->proto->connection_made(p, p->user);
    p->made = true;
    if (p->exit_pending) {
        p->exit_pending = false;
        report_exit(p);
    }
    try_finish(p); /* pipes may have closed already */
}

/* Nobody will watch a child whose adoption failed: do not leave it
 * running, nor (when it is ours to reap) a zombie. */
static void give_up_child(pid_t pid, bool reap)
{
    kill(pid, SIGKILL);
    while (reap && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Tear down a process whose creation failed part-way: no callback ran. */
static void abandon(tapio_process *p, tapio_handle *made)
{
    if (made)
        tapio_handle_cancel(made);
    for (int i = 0; i < 3; i++) {
        if (p->pipes[i].t) {
            tapio_transport_set_protocol(p->pipes[i].t, NULL, NULL);
            tapio_transport_abort(p->pipes[i].t);
        }
    }
    give_up_child(p->pid, !p->caller_reaps);
    release(p);
    tapio_process_unref(p);
}

static void close_fds(const int fds[3])
{
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int tapio_process_adopt(tapio_loop *loop,
                        const tapio_process_adopt_options *opts,
                        const tapio_subprocess_protocol *proto, void *user,
                        tapio_process **out)
{
    if (!opts || opts->pid <= 0) {
        if (opts && !opts->dup_fds)
            close_fds(opts->fds);
        return -EINVAL;
    }
    tapio_process *p = calloc(1, sizeof(*p));
    if (!p) {
        if (!opts->dup_fds)
            close_fds(opts->fds);
        give_up_child(opts->pid, !opts->caller_reaps);
        return -ENOMEM;
    }
    p->loop = loop;
    p->proto = proto;
    p->user = user;
    p->refs = 1;
    p->pid = opts->pid;
    p->caller_reaps = opts->caller_reaps;
    p->pidfd = -1;
    tapio__list_init(&p->node);
    tapio__list_push(&loop->processes, &p->node);
    int err = 0;
    for (int i = 0; i < 3; i++) {
        int fd = opts->fds[i];
        if (!err && fd >= 0 && opts->dup_fds &&
            (fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
            err = -errno;
        if (!err)
            err = connect_pipe(p, i, fd);
        else if (fd >= 0 && !opts->dup_fds)
            close(fd); /* ours even when the call fails */
    }
    /* The pipes' own connection_made calls are queued first, so the
     * process's comes after them, as in asyncio. */
    tapio_handle *made = err ? NULL
                             : tapio_call_soon(loop, call_connection_made, p);
    if (!err && !made)
        err = -ENOMEM;
    if (!err)
        err = watch_exit(p);
    if (err) {
        abandon(p, made);
        return err;
    }
    if (out)
        *out = p;
    return 0;
}

/* ---- spawning -------------------------------------------------------------- */

/* PATH of the child's environment if given, else ours (Python's rule). */
static const char *search_path(char *const *env)
{
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            return *e + 5;
    const char *path = env ? NULL : getenv("PATH");
    return path ? path : "/bin:/usr/bin";
}

/* The program to execute: `file` itself with a '/', else the first
 * executable match in PATH. */
static int resolve_program(const char *file, char *const *env, char *out,
                           size_t size)
{
    if (strchr(file, '/')) {
        if ((size_t)snprintf(out, size, "%s", file) >= size)
            return -ENAMETOOLONG;
        return 0;
    }
    int err = -ENOENT;
    const char *dir = search_path(env);
    while (*dir) {
        size_t len = strcspn(dir, ":");
        if ((size_t)snprintf(out, size, "%.*s/%s", (int)len,
                             len ? dir : ".", file) < size) {
            if (access(out, X_OK) == 0)
                return 0;
            if (errno != ENOENT && errno != ENOTDIR)
                err = -errno; /* found, but not runnable: say why */
        }
        dir += len + (dir[len] == ':');
    }
    return err;
}

/* The child's fd for each of stdin/stdout/stderr, and the parent's pipe
 * ends. All sources are >= 3, so the child's dup2s cannot clobber them. */
typedef struct stdio_plan {
    int child[3];   /* -1: inherit */
    int parent[3];  /* pipe ends for the parent, -1: none */
    int owned[6];   /* fds to close in the parent after spawning */
    int nowned;
} stdio_plan;

static int own(stdio_plan *plan, int fd)
{
    if (fd >= 0)
        plan->owned[plan->nowned++] = fd;
    return fd;
}

static int plan_one(stdio_plan *plan, int i, int how)
{
    int fds[2];
    if (how == 0 || how == TAPIO_STDIO_PIPE) {
        if (pipe2(fds, O_CLOEXEC) < 0)
            return -errno;
        plan->parent[i] = i == 0 ? fds[1] : fds[0];
        plan->child[i] = own(plan, i == 0 ? fds[0] : fds[1]);
    } else if (how == TAPIO_STDIO_DEVNULL) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        plan->child[i] = own(plan, fd);
    } else if (how == TAPIO_STDIO_STDOUT && i == 2) {
        plan->child[2] = plan->child[1] >= 0 ? plan->child[1] : 1;
    } else if (how == TAPIO_STDIO_INHERIT) {
        plan->child[i] = -1;
    } else if (how >= 0) {
        int fd = fcntl(how, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return -errno;
        plan->child[i] = own(plan, fd);
    } else {
        return -EINVAL;
    }
    return 0;
}

static void plan_close(stdio_plan *plan, bool parent_too)
{
    for (int i = 0; i < plan->nowned; i++)
        close(plan->owned[i]);
    plan->nowned = 0;
    for (int i = 0; parent_too && i < 3; i++)
        if (plan->parent[i] >= 0)
            close(plan->parent[i]);
}

static int spawn(const tapio_process_options *opts, const char *program,
                 const stdio_plan *plan, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    for (int i = 0; i < 3; i++)
        if (plan->child[i] >= 0)
            posix_spawn_file_actions_adddup2(&fa, plan->child[i], i);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (opts->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, opts->cwd);
    /* Signals as a fresh program expects them: nothing blocked, and the
     * ones a runtime may ignore (Python ignores SIGPIPE) back to default. */
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (opts->new_session)
        flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, flags);
    int rc = posix_spawn(pid, program, &fa, &attr, opts->argv,
                         opts->env ? opts->env : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return -rc;
}

int tapio_process_spawn(tapio_loop *loop, const tapio_process_options *opts,
                        const tapio_subprocess_protocol *proto, void *user,
                        tapio_process **out)
{
    if (opts && opts->shell) { /* /bin/sh -c COMMAND, as Popen(shell=True) */
        char *argv[] = {"/bin/sh", "-c", (char *)opts->shell, NULL};
        tapio_process_options sh = *opts;
        sh.shell = NULL;
        sh.file = "/bin/sh";
        sh.argv = argv;
        return tapio_process_spawn(loop, &sh, proto, user, out);
    }
    if (!opts || !opts->file || !opts->argv)
        return -EINVAL;
    char program[4096];
    int err = resolve_program(opts->file, opts->env, program, sizeof(program));
    if (err)
        return err;
    stdio_plan plan = {.child = {-1, -1, -1}, .parent = {-1, -1, -1}};
    for (int i = 0; i < 3 && !err; i++)
        err = plan_one(&plan, i, opts->stdio[i]);
    pid_t pid;
    if (!err)
        err = spawn(opts, program, &plan, &pid);
    plan_close(&plan, err != 0);
    if (err)
        return err;
    tapio_process_adopt_options adopt = {
        .pid = pid,
        .fds = {plan.parent[0], plan.parent[1], plan.parent[2]},
    };
    return tapio_process_adopt(loop, &adopt, proto, user, out);
}

/* ---- the SubprocessTransport API ------------------------------------------ */

pid_t tapio_process_pid(const tapio_process *p) { return p->pid; }

tapio_transport *tapio_process_pipe(const tapio_process *p, int fd)
{
    return fd >= 0 && fd < 3 && !p->finished ? p->pipes[fd].t : NULL;
}

bool tapio_process_returncode(const tapio_process *p, int *code)
{
    if (p->exited && code)
        *code = p->returncode;
    return p->exited;
}

int tapio_process_send_signal(tapio_process *p, int signum)
{
    /* Reaped: the pid may belong to someone else now. */
    if (p->exited || atomic_load(&p->reaped))
        return -ESRCH;
    return kill(p->pid, signum) < 0 ? -errno : 0;
}

int tapio_process_terminate(tapio_process *p)
{
    return tapio_process_send_signal(p, SIGTERM);
}

int tapio_process_kill(tapio_process *p)
{
    return tapio_process_send_signal(p, SIGKILL);
}

void tapio_process_close(tapio_process *p)
{
    if (p->closing)
        return;
    p->closing = true;
    for (int i = 0; i < 3; i++)
        if (p->pipes[i].t)
            tapio_transport_close(p->pipes[i].t);
    if (!p->exited && !atomic_load(&p->reaped))
        kill(p->pid, SIGKILL);
}

bool tapio_process_is_closing(const tapio_process *p) { return p->closing; }

/* Loop close: children still running are killed and reaped, no callback
 * runs, no pidfd stays open. Pipe transports go with the other transports.
 * A child the caller reaps is the caller's: left alone. */
void tapio__processes_destroy_all(tapio_loop *loop)
{
    while (!tapio__list_empty(&loop->processes)) {
        tapio_process *p =
            tapio__container_of(loop->processes.next, tapio_process, node);
        if (p->caller_reaps) {
            p->loop = NULL; /* a reference holder may outlive the loop */
            release(p);
            tapio_process_unref(p);
            continue;
        }
        if (!p->exited && !p->has_waiter) {
            int status = SIGKILL;
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                ;
            p->returncode = returncode_of(status);
        }
        if (p->pidfd >= 0) {
            tapio__io_detach(loop, &p->exit_io);
            close(p->pidfd);
            p->pidfd = -1;
        }
        if (p->has_waiter) { /* it is blocked in waitpid: end that */
            if (!p->exited && !atomic_load(&p->reaped))
                kill(p->pid, SIGKILL);
            pthread_join(p->waiter, NULL);
            p->has_waiter = false;
            p->returncode = returncode_of(p->wait_status);
            tapio_process_unref(p);
        }
        /* Reaped: its pid may be someone else's now, never signal it. */
        p->exited = true;
        p->loop = NULL; /* a reference holder may outlive the loop */
        release(p);
        tapio_process_unref(p);
    }
}
