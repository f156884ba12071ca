/* test_process.c — the subprocess transport: spawning, the child's pipes,
 * its exit status, and asyncio's order of SubprocessProtocol events
 * (base_subprocess.BaseSubprocessTransport). */
#define _GNU_SOURCE /* pipe2, mkostemp, F_GETPIPE_SZ */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MIB (1024 * 1024)
#define HUGE_SIZE (100 * MIB) /* the 100 MiB transfers */

/* ------------------------------------------- proc: a recording protocol */

/*
 * proc records what its process reports and checks asyncio's rules on every
 * callback: connection_made first and once; pipe_data_received only for a
 * read pipe that is still open; pipe_connection_lost once per pipe;
 * process_exited once, with the returncode already known; connection_lost
 * once and last, only after process_exited and after every pipe's
 * pipe_connection_lost; pause/resume_writing alternating; and no callback
 * from inside one of the test's own tapio_process_* calls.
 *
 * Events are numbered in the order they come (1, 2, ...), so that tests can
 * compare when things happened.
 */
typedef struct proc {
    tapio_process *p; /* valid until connection_lost (no reference held) */
    pid_t pid;
    bool in_call;     /* inside a tapio_process_* call made by the test */
    int events;       /* callbacks so far */
    int made, exited, lost;
    int made_at, exited_at, lost_at, pipe_lost_at[3];
    bool has_pipe[3]; /* tapio_process_pipe(p, fd) != NULL at connection_made */
    int pipe_lost[3], pipe_err[3];
    int lost_err;
    int rc;           /* returncode as process_exited saw it */
    bytes out[3];     /* what fd 1 and fd 2 delivered */
    size_t got[3];    /* bytes per fd (also with count_only) */
    int chunks_after_exit[3];
    bool count_only;  /* fd 1: count and check for zeros, keep nothing */
    int pauses, resumes;
    bool paused;
    size_t max_stdin_buffer; /* the stdin pipe's largest write buffer seen */
    /* Feeding stdin: write feed_total zero bytes with flow control, then
     * close the stdin pipe. */
    size_t feed_total, fed;
    bool feed_closed;
    /* In process_exited: what send_signal said (it must be -ESRCH). */
    int signal_after_exit;
} proc;

static void proc_free(void *arg)
{
    proc *r = arg;
    for (int i = 0; i < 3; i++)
        bytes_free(&r->out[i]);
    free(r);
}

static proc *proc_new(void)
{
    proc *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    r->rc = INT_MIN;
    r->signal_after_exit = 1;
    at_cleanup(proc_free, r);
    return r;
}

static int next_event(proc *r, tapio_process *p)
{
    CHECK(!r->in_call); /* never re-entrant inside a tapio_process_* call */
    CHECK_EQ_INT(r->lost, 0); /* nothing after connection_lost */
    if (r->p)
        CHECK(p == r->p);
    return ++r->events;
}

static void feed(proc *r);

static void on_made(tapio_process *p, void *user)
{
    proc *r = user;
    int n = next_event(r, p);
    CHECK_EQ_INT(n, 1); /* first */
    CHECK_EQ_INT(r->made, 0);
    r->made++;
    r->made_at = n;
    for (int fd = 0; fd < 3; fd++)
        r->has_pipe[fd] = tapio_process_pipe(p, fd) != NULL;
    CHECK(tapio_process_pipe(p, -1) == NULL);
    CHECK(tapio_process_pipe(p, 3) == NULL);
    if (r->has_pipe[0]) {
        tapio_transport *in = tapio_process_pipe(p, 0);
        CHECK(tapio_transport_can_write_eof(in));
    }
    if (r->feed_total)
        feed(r);
}

static bool all_zero(const unsigned char *data, size_t len)
{
    static const unsigned char zeros[4096];
    while (len) {
        size_t n = len < sizeof zeros ? len : sizeof zeros;
        if (memcmp(data, zeros, n) != 0)
            return false;
        data += n;
        len -= n;
    }
    return true;
}

static void on_data(tapio_process *p, int fd, const void *data, size_t len,
                    void *user)
{
    proc *r = user;
    next_event(r, p);
    CHECK_EQ_INT(r->made, 1);
    CHECK(fd == 1 || fd == 2);
    CHECK(r->has_pipe[fd]);
    CHECK_EQ_INT(r->pipe_lost[fd], 0); /* no data after its end */
    CHECK(len > 0);
    r->got[fd] += len;
    if (r->exited)
        r->chunks_after_exit[fd]++;
    if (r->count_only && fd == 1) {
        if (!all_zero(data, len))
            FAIL("stdout: a byte other than zero near offset %zu",
                 r->got[fd] - len);
    } else {
        bytes_append(&r->out[fd], data, len);
    }
}

static void on_pipe_lost(tapio_process *p, int fd, int err, void *user)
{
    proc *r = user;
    int n = next_event(r, p);
    CHECK_EQ_INT(r->made, 1);
    CHECK(fd >= 0 && fd < 3);
    CHECK(r->has_pipe[fd]);
    CHECK_EQ_INT(r->pipe_lost[fd], 0);
    r->pipe_lost[fd]++;
    r->pipe_lost_at[fd] = n;
    r->pipe_err[fd] = err;
}

static void on_exited(tapio_process *p, void *user)
{
    proc *r = user;
    int n = next_event(r, p);
    CHECK_EQ_INT(r->made, 1);
    CHECK_EQ_INT(r->exited, 0);
    r->exited++;
    r->exited_at = n;
    int code = INT_MIN;
    CHECK(tapio_process_returncode(p, &code)); /* known before the call */
    r->rc = code;
    /* The child was reaped: its pid may be someone else's now. */
    r->signal_after_exit = tapio_process_send_signal(p, 0);
}

static void on_lost(tapio_process *p, int err, void *user)
{
    proc *r = user;
    int n = next_event(r, p);
    CHECK_EQ_INT(r->made, 1);
    CHECK_EQ_INT(r->exited, 1); /* only after the exit ... */
    for (int fd = 0; fd < 3; fd++)
        if (r->has_pipe[fd])
            CHECK_EQ_INT(r->pipe_lost[fd], 1); /* ... and every pipe's end */
    int code = INT_MIN;
    CHECK(tapio_process_returncode(p, &code));
    CHECK_EQ_INT(code, r->rc);
    r->lost++;
    r->lost_at = n;
    r->lost_err = err;
    r->p = NULL; /* freed after this call */
}

static void on_pause(tapio_process *p, void *user)
{
    proc *r = user;
    CHECK_EQ_INT(r->lost, 0);
    if (r->p)
        CHECK(p == r->p);
    CHECK_EQ_INT(r->made, 1);
    CHECK(!r->paused);
    CHECK(r->has_pipe[0] && !r->pipe_lost[0]);
    r->paused = true;
    r->pauses++;
}

static void on_resume(tapio_process *p, void *user)
{
    proc *r = user;
    next_event(r, p);
    CHECK_EQ_INT(r->made, 1);
    CHECK(r->paused);
    r->paused = false;
    r->resumes++;
    if (r->feed_total)
        feed(r);
}

static const tapio_subprocess_protocol proc_protocol = {
    .connection_made = on_made,
    .pipe_data_received = on_data,
    .pipe_connection_lost = on_pipe_lost,
    .process_exited = on_exited,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
};

/* Write zeros into stdin until paused; at the end close the stdin pipe. */
static void feed(proc *r)
{
    static const unsigned char chunk[256 * 1024];
    tapio_transport *in = tapio_process_pipe(r->p, 0);
    CHECK(in != NULL);
    while (!r->paused && r->fed < r->feed_total) {
        size_t n = r->feed_total - r->fed;
        if (n > sizeof chunk)
            n = sizeof chunk;
        r->fed += n;
        CHECK_OK(tapio_transport_write(in, chunk, n));
        size_t size = tapio_transport_get_write_buffer_size(in);
        if (size > r->max_stdin_buffer)
            r->max_stdin_buffer = size;
    }
    if (r->fed == r->feed_total && !r->feed_closed) {
        r->feed_closed = true;
        tapio_transport_close(in); /* flushes, then pipe_connection_lost(0) */
    }
}

/* ----------------------------------------------------------- spawning */

static int proc_spawn(tapio_loop *loop, proc *r,
                      const tapio_process_options *opts)
{
    r->in_call = true;
    tapio_process *p = NULL;
    int err = tapio_process_spawn(loop, opts, &proc_protocol, r, &p);
    r->in_call = false;
    if (err == 0) {
        CHECK(p != NULL);
        r->p = p;
        r->pid = tapio_process_pid(p);
        CHECK(r->pid > 0);
        CHECK(!tapio_process_is_closing(p));
    }
    return err;
}

/* Spawn /bin/sh -c script with stdin/stdout/stderr as given. */
static proc *spawn_sh_env(tapio_loop *loop, const char *script, int in,
                          int out, int err, char *const *env, const char *cwd)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    tapio_process_options o = {
        .file = "/bin/sh",
        .argv = argv,
        .env = env,
        .cwd = cwd,
        .stdio = {in, out, err},
    };
    proc *r = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    return r;
}

static proc *spawn_sh(tapio_loop *loop, const char *script, int in, int out,
                      int err)
{
    return spawn_sh_env(loop, script, in, out, err, NULL, NULL);
}

/* Everything through pipes. */
static proc *spawn_piped(tapio_loop *loop, const char *script)
{
    return spawn_sh(loop, script, TAPIO_STDIO_PIPE, TAPIO_STDIO_PIPE,
                    TAPIO_STDIO_PIPE);
}

/* The pid is gone: not running, not a zombie of ours (reaped). */
static void check_reaped(pid_t pid)
{
    CHECK(pid > 0);
    errno = 0;
    CHECK(waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD);
    CHECK(kill(pid, 0) == -1 && errno == ESRCH);
}

/* Run until connection_lost, a few iterations more (nothing may follow),
 * and check the end: no error, the child reaped. */
static void finish(tapio_loop *loop, proc *r, double seconds)
{
    RUN_UNTIL(loop, r->lost, seconds);
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->lost, 1);
    CHECK_EQ_INT(r->lost_err, 0);
    CHECK_ERR(r->signal_after_exit, -ESRCH);
    check_reaped(r->pid);
}

/* Children of this process per /proc (zombies included). */
static int our_children(void)
{
    DIR *dir = opendir("/proc");
    CHECK(dir != NULL);
    pid_t self = getpid();
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue; /* gone meanwhile */
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* "pid (comm) state ppid ...": comm may hold anything, so look
         * after the last ')'. */
        char *close_paren = strrchr(buf, ')');
        char state;
        int ppid;
        if (close_paren && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2
            && ppid == self)
            n++;
    }
    closedir(dir);
    return n;
}

static void check_no_children(void)
{
    CHECK_EQ_INT(our_children(), 0);
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

static bool out_is(const proc *r, int fd, const char *want)
{
    size_t n = strlen(want);
    return r->out[fd].len == n && memcmp(r->out[fd].p, want, n) == 0;
}

/* A whole line arrived on fd. */
static bool has_line(const proc *r, int fd)
{
    return r->out[fd].len && memchr(r->out[fd].p, '\n', r->out[fd].len);
}

#define CHECK_OUT(r, fd, want)                                            \
    do {                                                                  \
        if (!out_is((r), (fd), (want)))                                   \
            FAIL("fd %d got \"%.*s\", expected \"%s\"", (fd),             \
                 (int)(r)->out[(fd)].len, (const char *)(r)->out[(fd)].p, \
                 (want));                                                 \
    } while (0)

static void restore_sigpipe(void *arg)
{
    signal(SIGPIPE, (void (*)(int))(intptr_t)arg);
}

/* As Python runs: writing to a pipe whose reader left gives EPIPE. */
static void ignore_sigpipe(void)
{
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    at_cleanup(restore_sigpipe, (void *)(intptr_t)old);
}

/* ------------------------------------------------------ data and exit */

/* 1 MiB through cat, found in PATH: written to the stdin pipe while stdout
 * is read, then stdin closed; cat ends, and so does everything. */
TEST(process_echo_through_cat)
{
    tapio_loop *loop = test_loop();
    char *argv[] = {"cat", NULL};
    tapio_process_options o = {.file = "cat", .argv = argv};
    proc *r = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    CHECK(!tapio_process_returncode(r->p, NULL));
    RUN_UNTIL(loop, r->made, 5);
    CHECK(r->has_pipe[0] && r->has_pipe[1] && r->has_pipe[2]);

    const size_t n = MIB;
    unsigned char *data = pattern_new(n);
    tapio_transport *in = tapio_process_pipe(r->p, 0);
    CHECK_OK(tapio_transport_write(in, data, n));
    free(data);
    CHECK_OK(tapio_transport_write_eof(in));
    finish(loop, r, 10);

    CHECK_EQ_INT(r->out[1].len, n);
    CHECK(pattern_check(r->out[1].p, 0, n));
    CHECK_EQ_INT(r->got[2], 0);
    CHECK_EQ_INT(r->rc, 0);
    for (int fd = 0; fd < 3; fd++) {
        CHECK_EQ_INT(r->pipe_lost[fd], 1);
        CHECK_EQ_INT(r->pipe_err[fd], 0);
    }
    CHECK(r->lost_at == r->events); /* last */
    check_no_children();
}

/* The pid we are told is the child's own ($$ of the shell). */
TEST(process_pid_is_the_childs)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "echo $$");
    finish(loop, r, 10);
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)r->pid);
    CHECK_OUT(r, 1, want);
}

/* argv reaches the child as given: argv[0] whatever the file, arguments
 * with spaces intact. */
TEST(process_argv_is_passed_as_given)
{
    tapio_loop *loop = test_loop();
    char *argv[] = {"sh", "-c", "echo \"$0|$1\"", "zero", "a  b", NULL};
    char *argv2[] = {"not-sh", "-c", "echo $0", NULL};
    tapio_process_options o = {.file = "/bin/sh", .argv = argv};
    proc *r = proc_new(), *s = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    o.argv = argv2;
    CHECK_OK(proc_spawn(loop, s, &o));
    finish(loop, r, 10);
    finish(loop, s, 10);
    CHECK_OUT(r, 1, "zero|a  b\n");
    CHECK_OUT(s, 1, "not-sh\n");
}

TEST(process_returncode_of_exit_3)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "exit 3");
    tapio_process_ref(r->p); /* to ask after connection_lost */
    tapio_process *p = r->p;
    RUN_UNTIL(loop, r->made, 5);
    finish(loop, r, 10);
    CHECK_EQ_INT(r->rc, 3);
    int code = INT_MIN;
    CHECK(tapio_process_returncode(p, &code));
    CHECK_EQ_INT(code, 3);
    CHECK_ERR(tapio_process_send_signal(p, SIGTERM), -ESRCH);
    CHECK_ERR(tapio_process_kill(p), -ESRCH);
    CHECK_ERR(tapio_process_terminate(p), -ESRCH);
    tapio_process_close(p); /* harmless now */
    run_briefly(loop, 2);
    tapio_process_unref(p);
}

/* opts.shell runs /bin/sh -c COMMAND, as asyncio's subprocess_shell. */
TEST(process_shell_command)
{
    tapio_loop *loop = test_loop();
    tapio_process_options o = {
        .shell = "printf '%s' \"$0\"; exit 4",
        .stdio = {TAPIO_STDIO_DEVNULL, TAPIO_STDIO_PIPE, TAPIO_STDIO_DEVNULL},
    };
    proc *r = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    finish(loop, r, 10);
    CHECK_EQ_INT(r->rc, 4);
    CHECK_EQ_INT(r->out[1].len, 7);
    CHECK_MEM_EQ(r->out[1].p, "/bin/sh", 7);
}

TEST(process_returncode_of_false_and_255)
{
    tapio_loop *loop = test_loop();
    proc *a = spawn_piped(loop, "false");
    proc *b = spawn_piped(loop, "exit 255");
    finish(loop, a, 10);
    finish(loop, b, 10);
    CHECK_EQ_INT(a->rc, 1);
    CHECK_EQ_INT(b->rc, 255);
}

/* ------------------------------------------------------------ signals */

TEST(process_killed_by_its_own_signal_has_returncode_minus_9)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "kill -9 $$; sleep 5");
    finish(loop, r, 10);
    CHECK_EQ_INT(r->rc, -9);
}

/* A child still waiting in `sleep`, that the test signals. */
static proc *sleeper(tapio_loop *loop)
{
    proc *r = spawn_piped(loop, "exec sleep 30");
    RUN_UNTIL(loop, r->made, 5);
    return r;
}

TEST(process_kill_gives_returncode_minus_9)
{
    tapio_loop *loop = test_loop();
    proc *r = sleeper(loop);
    r->in_call = true;
    CHECK_OK(tapio_process_kill(r->p));
    r->in_call = false;
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, -SIGKILL);
    for (int fd = 0; fd < 3; fd++)
        CHECK_EQ_INT(r->pipe_err[fd], 0);
}

TEST(process_terminate_gives_returncode_minus_15)
{
    tapio_loop *loop = test_loop();
    proc *r = sleeper(loop);
    r->in_call = true;
    CHECK_OK(tapio_process_terminate(r->p));
    r->in_call = false;
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, -SIGTERM);
}

TEST(process_send_signal_sigterm_and_sigusr1)
{
    tapio_loop *loop = test_loop();
    proc *a = sleeper(loop);
    proc *b = sleeper(loop);
    a->in_call = b->in_call = true;
    CHECK_OK(tapio_process_send_signal(a->p, SIGTERM));
    CHECK_OK(tapio_process_send_signal(b->p, SIGUSR1));
    a->in_call = b->in_call = false;
    finish(loop, a, 5);
    finish(loop, b, 5);
    CHECK_EQ_INT(a->rc, -SIGTERM);
    CHECK_EQ_INT(b->rc, -SIGUSR1);
}

/* A child that ignores SIGTERM (set up by the shell) survives terminate;
 * kill still ends it. Proves the returncode is not made up. */
TEST(process_that_ignores_sigterm_survives_terminate)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "trap '' TERM; echo ready; exec sleep 30");
    RUN_UNTIL(loop, r->got[1] == 6, 5);
    CHECK_OK(tapio_process_terminate(r->p));
    run_for(loop, 0.1);
    CHECK_EQ_INT(r->exited, 0);
    CHECK_OK(tapio_process_kill(r->p));
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, -SIGKILL);
}

/* Someone else reaped the child (a waitpid of our own): asyncio's child
 * watchers report returncode 255 then. */
TEST(process_reaped_by_someone_else_has_returncode_255)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_sh(loop, "exit 3", TAPIO_STDIO_DEVNULL,
                       TAPIO_STDIO_DEVNULL, TAPIO_STDIO_DEVNULL);
    int status = 0;
    CHECK(waitpid(r->pid, &status, 0) == r->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, 255);
}

/* A stopped child has not exited; it goes on after SIGCONT. */
TEST(process_stopped_child_has_not_exited)
{
    tapio_loop *loop = test_loop();
    proc *r = sleeper(loop);
    CHECK_OK(tapio_process_send_signal(r->p, SIGSTOP));
    run_for(loop, 0.05);
    CHECK_EQ_INT(r->exited, 0);
    CHECK(!tapio_process_returncode(r->p, NULL));
    CHECK_OK(tapio_process_send_signal(r->p, SIGCONT));
    CHECK_OK(tapio_process_terminate(r->p));
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, -SIGTERM);
}

/* ----------------------------------------------------- big transfers */

/* 100 MiB from the child's stdout: every byte arrives. */
TEST(process_child_writes_100_mib_to_stdout)
{
    tapio_loop *loop = test_loop();
    proc *r = proc_new();
    r->count_only = true;
    char *argv[] = {"head", "-c", "104857600", "/dev/zero", NULL};
    tapio_process_options o = {.file = "head", .argv = argv};
    CHECK_OK(proc_spawn(loop, r, &o));
    finish(loop, r, 30);
    CHECK_EQ_INT(r->got[1], HUGE_SIZE);
    CHECK_EQ_INT(r->got[2], 0);
    CHECK_EQ_INT(r->rc, 0);
    CHECK_EQ_INT(r->pipe_err[1], 0);
}

/* 100 MiB into the child's stdin with flow control: the writer pauses and
 * resumes, the buffer stays near the high-water mark, and the child counts
 * every byte. */
TEST(process_child_reads_100_mib_from_stdin_with_back_pressure)
{
    tapio_loop *loop = test_loop();
    proc *r = proc_new();
    r->feed_total = HUGE_SIZE;
    char *argv[] = {"wc", "-c", NULL};
    tapio_process_options o = {.file = "wc", .argv = argv};
    CHECK_OK(proc_spawn(loop, r, &o));
    finish(loop, r, 30);
    CHECK_EQ_INT(r->fed, HUGE_SIZE);
    CHECK(r->pauses >= 2);
    CHECK(r->resumes == r->pauses || r->resumes == r->pauses - 1);
    /* Never more than one chunk over the default high-water mark. */
    CHECK(r->max_stdin_buffer <= TAPIO_DEFAULT_HIGH_WATER + 256 * 1024);
    CHECK_OUT(r, 1, "104857600\n");
    CHECK_EQ_INT(r->pipe_err[0], 0);
    CHECK_EQ_INT(r->rc, 0);
}

/* The child reads one byte and leaves with 1 MiB still queued for it:
 * stdin's pipe_connection_lost gets EPIPE (asyncio: BrokenPipeError),
 * without a word to the loop's error handler (an OSError, as asyncio's
 * _fatal_error keeps those to the debug log). */
TEST(process_stdin_reader_leaving_with_data_queued_gives_epipe)
{
    tapio_loop *loop = test_loop();
    ignore_sigpipe();
    proc *r = spawn_piped(loop, "exec head -c 1 >/dev/null");
    RUN_UNTIL(loop, r->made, 5);
    unsigned char *data = pattern_new(MIB);
    tapio_transport *in = tapio_process_pipe(r->p, 0);
    CHECK_OK(tapio_transport_write(in, data, MIB));
    free(data);
    CHECK(tapio_transport_get_write_buffer_size(in) > 0);
    finish(loop, r, 10);
    CHECK_ERR(r->pipe_err[0], -EPIPE);
    CHECK_EQ_INT(r->rc, 0);
    CHECK_EQ_INT(loop_error_count(), 0);
}

/* -------------------------------------------- exit and pipes, in order */

/* The child has written, closed everything and exited before the loop ran
 * once: all of it is held until connection_made, which still comes first
 * (asyncio's _pending_calls), and the output is complete. */
TEST(process_events_before_connection_made_are_held)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "echo out; echo err >&2; exit 2");
    siginfo_t si = {0};
    CHECK(waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOWAIT) == 0);
    finish(loop, r, 10);
    CHECK_EQ_INT(r->made_at, 1);
    CHECK_OUT(r, 1, "out\n");
    CHECK_OUT(r, 2, "err\n");
    CHECK_EQ_INT(r->rc, 2);
    CHECK(r->lost_at == r->events);
}

/* The shell exits at once while a background grandchild keeps stdout and
 * stderr open: process_exited comes first, the late output and the pipes'
 * ends after it, connection_lost after all of them. */
TEST(process_exits_before_its_pipes_close)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "(sleep 0.3; echo late) & exit 0");
    finish(loop, r, 10);
    CHECK_EQ_INT(r->rc, 0);
    CHECK_OUT(r, 1, "late\n");
    CHECK(r->chunks_after_exit[1] >= 1);
    CHECK(r->exited_at < r->pipe_lost_at[1]);
    CHECK(r->exited_at < r->pipe_lost_at[2]);
    CHECK(r->lost_at > r->pipe_lost_at[0]);
    CHECK(r->lost_at > r->pipe_lost_at[1]);
    CHECK(r->lost_at > r->pipe_lost_at[2]);
    CHECK(r->lost_at > r->exited_at);
    CHECK(r->lost_at == r->events);
}

/* The child closes stdin, stdout and stderr and lives on a little: every
 * pipe_connection_lost comes before process_exited, connection_lost after. */
TEST(process_closes_its_pipes_before_exiting)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "exec <&- >&- 2>&-; sleep 0.2; exit 4");
    RUN_UNTIL(loop, r->pipe_lost[0] && r->pipe_lost[1] && r->pipe_lost[2], 5);
    CHECK_EQ_INT(r->exited, 0);
    CHECK_EQ_INT(r->lost, 0);
    finish(loop, r, 10);
    CHECK_EQ_INT(r->rc, 4);
    for (int fd = 0; fd < 3; fd++) {
        CHECK(r->pipe_lost_at[fd] < r->exited_at);
        CHECK_EQ_INT(r->pipe_err[fd], 0);
    }
    CHECK(r->exited_at < r->lost_at);
}

/* close() after the exit while a grandchild holds the pipes: the pipes are
 * closed by us, and connection_lost comes at once. */
TEST(process_close_after_exit_closes_pipes_held_by_a_grandchild)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "sleep 30 & echo $!; exit 0");
    RUN_UNTIL(loop, r->exited && has_line(r, 1), 5);
    pid_t grandchild = (pid_t)atoi((const char *)r->out[1].p);
    CHECK(grandchild > 0);
    CHECK(kill(grandchild, 0) == 0); /* still holds stdout and stderr */
    CHECK_EQ_INT(r->pipe_lost[1], 0);
    double t0 = monotonic_now();
    r->in_call = true;
    tapio_process_close(r->p);
    CHECK(tapio_process_is_closing(r->p));
    r->in_call = false;
    finish(loop, r, 5);
    CHECK(monotonic_now() - t0 < 2);
    CHECK_EQ_INT(r->rc, 0);
    CHECK_EQ_INT(r->pipe_err[1], 0);
    CHECK_EQ_INT(r->pipe_err[2], 0);
    kill(grandchild, SIGKILL); /* not ours to reap: init's */
}

/* ---------------------------------------------------------- stdio kinds */

TEST(process_stderr_into_stdout)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_sh(loop, "echo out; echo err >&2", TAPIO_STDIO_PIPE,
                       TAPIO_STDIO_PIPE, TAPIO_STDIO_STDOUT);
    RUN_UNTIL(loop, r->made, 5);
    CHECK(r->has_pipe[0] && r->has_pipe[1]);
    CHECK(!r->has_pipe[2]);
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "out\nerr\n");
    CHECK_EQ_INT(r->got[2], 0);
    CHECK_EQ_INT(r->pipe_lost[2], 0);
}

TEST(process_stderr_as_its_own_pipe)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "echo out; echo err >&2; echo more >&2");
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "out\n");
    CHECK_OUT(r, 2, "err\nmore\n");
    CHECK_EQ_INT(r->pipe_lost[2], 1);
}

/* Zeroed options mean pipes everywhere. */
TEST(process_zeroed_stdio_means_pipes)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_sh(loop, "cat; echo e >&2", 0, 0, 0);
    RUN_UNTIL(loop, r->made, 5);
    CHECK(r->has_pipe[0] && r->has_pipe[1] && r->has_pipe[2]);
    CHECK_OK(tapio_transport_write(tapio_process_pipe(r->p, 0), "x", 1));
    tapio_transport_close(tapio_process_pipe(r->p, 0));
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "x");
    CHECK_OUT(r, 2, "e\n");
}

TEST(process_devnull_stdin_and_stdout)
{
    tapio_loop *loop = test_loop();
    /* stdin from /dev/null: cat ends at once with nothing. */
    proc *a = spawn_sh(loop, "cat; x=$(readlink /proc/$$/fd/0); echo $x >&2",
                       TAPIO_STDIO_DEVNULL, TAPIO_STDIO_PIPE, TAPIO_STDIO_PIPE);
    /* stdout to /dev/null: only stderr comes through. */
    proc *b = spawn_sh(loop,
                       "echo lost; x=$(readlink /proc/$$/fd/1); echo $x >&2",
                       TAPIO_STDIO_PIPE, TAPIO_STDIO_DEVNULL, TAPIO_STDIO_PIPE);
    finish(loop, a, 10);
    finish(loop, b, 10);
    CHECK(!a->has_pipe[0] && a->has_pipe[1]);
    CHECK_EQ_INT(a->got[1], 0);
    CHECK_OUT(a, 2, "/dev/null\n");
    CHECK_EQ_INT(a->pipe_lost[0], 0);
    CHECK(b->has_pipe[0] && !b->has_pipe[1] && b->has_pipe[2]);
    CHECK_OUT(b, 2, "/dev/null\n");
    CHECK_EQ_INT(a->rc, 0);
    CHECK_EQ_INT(b->rc, 0);
}

/* No pipe at all: connection_lost follows the exit directly. */
TEST(process_without_pipes)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_sh(loop, "exit 6", TAPIO_STDIO_DEVNULL,
                       TAPIO_STDIO_DEVNULL, TAPIO_STDIO_DEVNULL);
    finish(loop, r, 10);
    CHECK(!r->has_pipe[0] && !r->has_pipe[1] && !r->has_pipe[2]);
    CHECK_EQ_INT(r->rc, 6);
    CHECK_EQ_INT(r->events, 3); /* made, exited, lost */
}

/* INHERIT: the child gets our own stdin and stdout. Ours are pipes of the
 * test for the duration. */
TEST(process_inherits_stdin_and_stdout)
{
    tapio_loop *loop = test_loop();
    int in[2], out[2];
    CHECK(pipe2(in, O_CLOEXEC) == 0);
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    fflush(stdout);
    int saved0 = dup(0), saved1 = dup(1);
    CHECK(saved0 >= 0 && saved1 >= 0);
    CHECK(dup2(in[0], 0) == 0 && dup2(out[1], 1) == 1);
    CHECK(write(in[1], "through our stdin\n", 18) == 18);
    close(in[1]);

    proc *r = spawn_sh(loop, "cat; echo to our stdout", TAPIO_STDIO_INHERIT,
                       TAPIO_STDIO_INHERIT, TAPIO_STDIO_PIPE);
    /* Our copies go away: only the child holds them now. */
    CHECK(dup2(saved0, 0) == 0 && dup2(saved1, 1) == 1);
    close(saved0);
    close(saved1);
    close(in[0]);
    close(out[1]);
    finish(loop, r, 10);
    CHECK(!r->has_pipe[0] && !r->has_pipe[1] && r->has_pipe[2]);
    CHECK_EQ_INT(r->got[2], 0);
    char buf[128];
    ssize_t n = read(out[0], buf, sizeof buf);
    CHECK_EQ_INT(n, 32);
    CHECK_MEM_EQ(buf, "through our stdin\nto our stdout\n", 32);
    CHECK(read(out[0], buf, sizeof buf) == 0); /* nobody else holds it */
    close(out[0]);
}

/* stderr INHERIT; and stderr into a stdout that is inherited. Our stdout
 * and stderr are one pipe of the test for the duration. */
TEST(process_inherits_stderr)
{
    tapio_loop *loop = test_loop();
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    fflush(stdout);
    fflush(stderr);
    int saved1 = dup(1), saved2 = dup(2);
    CHECK(saved1 >= 0 && saved2 >= 0);
    CHECK(dup2(out[1], 1) == 1 && dup2(out[1], 2) == 2);
    proc *r = spawn_sh(loop, "echo e1 >&2", TAPIO_STDIO_DEVNULL,
                       TAPIO_STDIO_PIPE, TAPIO_STDIO_INHERIT);
    proc *s = spawn_sh(loop, "echo e2 >&2", TAPIO_STDIO_DEVNULL,
                       TAPIO_STDIO_INHERIT, TAPIO_STDIO_STDOUT);
    CHECK(dup2(saved1, 1) == 1 && dup2(saved2, 2) == 2);
    close(saved1);
    close(saved2);
    close(out[1]);
    finish(loop, r, 10);
    finish(loop, s, 10);
    CHECK(r->has_pipe[1] && !r->has_pipe[2]);
    CHECK_EQ_INT(r->got[1], 0);
    CHECK(!s->has_pipe[1] && !s->has_pipe[2]);
    char buf[64] = {0};
    size_t got = 0;
    ssize_t n;
    while ((n = read(out[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(out[0]);
    /* Both lines, in either order. */
    CHECK_EQ_INT(got, 6);
    CHECK(strstr(buf, "e1\n") && strstr(buf, "e2\n"));
}

static int temp_file(void)
{
    char path[] = "/tmp/tapio-process-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    CHECK(fd >= 0);
    unlink(path);
    return fd;
}

/* Given fds (close-on-exec ones, even): a temp file as stdin, another as
 * stdout. They stay ours: the process does not close them. */
TEST(process_given_fds_as_stdin_and_stdout)
{
    tapio_loop *loop = test_loop();
    int in = temp_file(), out = temp_file();
    CHECK(pwrite(in, "from a file\n", 12, 0) == 12);
    proc *r = spawn_sh(loop, "cat; echo done", in, out, TAPIO_STDIO_PIPE);
    finish(loop, r, 10);
    CHECK(!r->has_pipe[0] && !r->has_pipe[1] && r->has_pipe[2]);
    CHECK_EQ_INT(r->got[2], 0);
    char buf[64];
    ssize_t n = pread(out, buf, sizeof buf, 0);
    CHECK_EQ_INT(n, 17);
    CHECK_MEM_EQ(buf, "from a file\ndone\n", 17);
    CHECK(fcntl(in, F_GETFD) >= 0 && fcntl(out, F_GETFD) >= 0);
    CHECK(fcntl(in, F_GETFD) & FD_CLOEXEC); /* ours as they were */
    close(in);
    close(out);
}

/* A given fd as stderr while stdout is a pipe, and stderr into a given
 * stdout. */
TEST(process_given_fd_as_stderr_and_stderr_into_given_stdout)
{
    tapio_loop *loop = test_loop();
    int f1 = temp_file(), f2 = temp_file();
    proc *a = spawn_sh(loop, "echo o; echo e >&2", TAPIO_STDIO_DEVNULL,
                       TAPIO_STDIO_PIPE, f1);
    proc *b = spawn_sh(loop, "echo o; echo e >&2", TAPIO_STDIO_DEVNULL, f2,
                       TAPIO_STDIO_STDOUT);
    finish(loop, a, 10);
    finish(loop, b, 10);
    CHECK_OUT(a, 1, "o\n");
    char buf[16];
    CHECK_EQ_INT(pread(f1, buf, sizeof buf, 0), 2);
    CHECK_MEM_EQ(buf, "e\n", 2);
    CHECK(!b->has_pipe[1] && !b->has_pipe[2]);
    CHECK_EQ_INT(pread(f2, buf, sizeof buf, 0), 4);
    CHECK_MEM_EQ(buf, "o\ne\n", 4);
    close(f1);
    close(f2);
}

/* Close-on-exec for everything else: an fd of ours that is inheritable
 * does not reach the child. */
TEST(process_child_gets_no_other_fd)
{
    tapio_loop *loop = test_loop();
    int fds[2];
    CHECK(pipe(fds) == 0); /* not close-on-exec */
    char script[256];
    snprintf(script, sizeof script,
             "for f in 3 4 5 6 7 8 9 %d %d; do "
             "[ -e /proc/$$/fd/$f ] && echo open $f; done; echo checked",
             fds[0], fds[1]);
    proc *r = spawn_piped(loop, script);
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "checked\n");
    close(fds[0]);
    close(fds[1]);
}

/* Python ignores SIGPIPE; its children get the default back (Popen's
 * restore_signals), and so do ours. */
TEST(process_child_gets_sigpipe_back_to_default)
{
    tapio_loop *loop = test_loop();
    ignore_sigpipe();
    proc *r = spawn_piped(loop, "while read k v; do "
                                "[ \"$k\" = SigIgn: ] && echo $v; "
                                "done < /proc/$$/status");
    finish(loop, r, 10);
    CHECK(has_line(r, 1));
    unsigned long long ignored = strtoull((const char *)r->out[1].p, NULL, 16);
    CHECK_EQ_INT(ignored & (1ULL << (SIGPIPE - 1)), 0);
}

/* Invalid stdio choices fail the call, leaving no fd and no child. */
TEST(process_invalid_stdio_fails_without_leaks)
{
    tapio_loop *loop = test_loop();
    int before = count_open_fds();
    char *argv[] = {"true", NULL};
    tapio_process_options o = {.file = "/bin/true", .argv = argv};
    proc *r = proc_new();
    o.stdio[0] = TAPIO_STDIO_STDOUT; /* only stderr may go into stdout */
    CHECK_ERR(proc_spawn(loop, r, &o), -EINVAL);
    o.stdio[0] = TAPIO_STDIO_PIPE;
    o.stdio[1] = TAPIO_STDIO_STDOUT;
    CHECK_ERR(proc_spawn(loop, r, &o), -EINVAL);
    o.stdio[1] = TAPIO_STDIO_PIPE;
    o.stdio[2] = 1000; /* not an open fd */
    CHECK(fcntl(1000, F_GETFD) == -1);
    CHECK_ERR(proc_spawn(loop, r, &o), -EBADF);
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->events, 0);
    CHECK_EQ_INT(count_open_fds(), before);
    check_no_children();
}

/* We close the stdout pipe while the child writes on: the child dies of
 * SIGPIPE (its default, whatever ours is), stdout's pipe_connection_lost
 * is clean. */
static void close_stdout_on_data(tapio_process *p, int fd, const void *data,
                                 size_t len, void *user)
{
    on_data(p, fd, data, len, user);
    if (fd == 1)
        tapio_transport_close(tapio_process_pipe(p, 1));
}

TEST(process_closing_stdout_kills_a_writer_with_sigpipe)
{
    tapio_loop *loop = test_loop();
    ignore_sigpipe();
    tapio_subprocess_protocol proto = proc_protocol;
    proto.pipe_data_received = close_stdout_on_data;
    char *argv[] = {"yes", NULL};
    tapio_process_options o = {.file = "yes", .argv = argv};
    proc *r = proc_new();
    CHECK_OK(tapio_process_spawn(loop, &o, &proto, r, &r->p));
    r->pid = tapio_process_pid(r->p);
    finish(loop, r, 5);
    CHECK(r->got[1] > 0);
    CHECK_EQ_INT(r->pipe_err[1], 0);
    CHECK(r->pipe_lost_at[1] < r->exited_at);
    CHECK_EQ_INT(r->rc, -SIGPIPE);
}

/* --------------------------------------------------------- env and cwd */

TEST(process_env_is_honoured)
{
    tapio_loop *loop = test_loop();
    char *env[] = {"TAPIO_TEST_VAR=hello env", "PATH=/usr/bin:/bin", NULL};
    proc *r = spawn_sh_env(loop, "printenv TAPIO_TEST_VAR; printenv HOME; "
                                 "echo end",
                           0, 0, 0, env, NULL);
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "hello env\nend\n"); /* nothing else: no HOME */
}

/* env NULL: the child gets ours. */
TEST(process_env_null_inherits_ours)
{
    tapio_loop *loop = test_loop();
    CHECK(setenv("TAPIO_TEST_INHERITED", "from parent", 1) == 0);
    proc *r = spawn_piped(loop, "printenv TAPIO_TEST_INHERITED");
    finish(loop, r, 10);
    unsetenv("TAPIO_TEST_INHERITED");
    CHECK_OUT(r, 1, "from parent\n");
}

/* A program without '/' is searched in the PATH of the child's env, as
 * Python's subprocess does: a PATH without the program fails. */
TEST(process_program_is_searched_in_the_given_path)
{
    tapio_loop *loop = test_loop();
    char *argv[] = {"sh", "-c", "echo $PATH", NULL};
    char *good[] = {"PATH=/nonexistent:/bin", NULL};
    char *bad[] = {"PATH=/nonexistent", NULL};
    tapio_process_options o = {.file = "sh", .argv = argv, .env = good};
    proc *r = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "/nonexistent:/bin\n");
    proc *s = proc_new();
    o.env = bad;
    CHECK_ERR(proc_spawn(loop, s, &o), -ENOENT);
    run_briefly(loop, 3);
    CHECK_EQ_INT(s->events, 0);
}

static void restore_path(void *arg)
{
    char *old = arg;
    CHECK(setenv("PATH", old, 1) == 0);
    free(old);
}

/* A program only in our PATH: found with env NULL (ours), not with an env
 * that has no PATH (Python's os.defpath, /bin:/usr/bin, then). */
TEST(process_env_without_path_searches_the_default_path)
{
    tapio_loop *loop = test_loop();
    char dir[] = "/tmp/tapio-path-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char prog[64];
    snprintf(prog, sizeof prog, "%s/tapio-path-probe", dir);
    int fd = open(prog, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    CHECK(fd >= 0);
    const char *text = "#!/bin/sh\necho probe\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    const char *old = getenv("PATH");
    char *saved = strdup(old ? old : "/bin:/usr/bin");
    CHECK(saved != NULL);
    at_cleanup(restore_path, saved);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s:%s", dir, saved);
    CHECK(setenv("PATH", path, 1) == 0);

    char *argv[] = {"tapio-path-probe", NULL};
    tapio_process_options o = {.file = "tapio-path-probe", .argv = argv};
    proc *r = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "probe\n");

    char *env[] = {"X=1", NULL};
    o.env = env;
    proc *s = proc_new();
    CHECK_ERR(proc_spawn(loop, s, &o), -ENOENT);
    /* The default path still finds sh. */
    char *sh_argv[] = {"sh", "-c", "echo sh", NULL};
    tapio_process_options o2 = {.file = "sh", .argv = sh_argv, .env = env};
    proc *t = proc_new();
    CHECK_OK(proc_spawn(loop, t, &o2));
    finish(loop, t, 10);
    CHECK_OUT(t, 1, "sh\n");
    unlink(prog);
    rmdir(dir);
}

TEST(process_cwd_is_honoured)
{
    tapio_loop *loop = test_loop();
    char dir[] = "/tmp/tapio-cwd-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char real[PATH_MAX];
    CHECK(realpath(dir, real) != NULL);
    proc *r = spawn_sh_env(loop, "pwd -P", 0, 0, 0, NULL, dir);
    finish(loop, r, 10);
    rmdir(dir);
    char want[PATH_MAX + 2];
    snprintf(want, sizeof want, "%s\n", real);
    CHECK_OUT(r, 1, want);
}

/* A relative program path is taken from the new cwd, as Python does. */
TEST(process_relative_program_runs_from_the_new_cwd)
{
    tapio_loop *loop = test_loop();
    char dir[] = "/tmp/tapio-cwd-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char prog[64];
    snprintf(prog, sizeof prog, "%s/probe", dir);
    int fd = open(prog, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    CHECK(fd >= 0);
    const char *text = "#!/bin/sh\necho relative\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char *argv[] = {"probe", NULL};
    tapio_process_options o = {.file = "./probe", .argv = argv, .cwd = dir};
    proc *r = proc_new();
    int err = proc_spawn(loop, r, &o);
    if (err == 0)
        finish(loop, r, 10);
    unlink(prog);
    rmdir(dir);
    CHECK_OK(err);
    CHECK_OUT(r, 1, "relative\n");
}

/* ------------------------------------------------------------- failures */

static void check_spawn_fails(tapio_loop *loop, const char *file,
                              const char *cwd, int want)
{
    int before = count_open_fds();
    char *argv[] = {(char *)file, NULL};
    tapio_process_options o = {.file = file, .argv = argv, .cwd = cwd};
    proc *r = proc_new();
    tapio_process *p = NULL;
    r->in_call = true;
    CHECK_ERR(tapio_process_spawn(loop, &o, &proc_protocol, r, &p), want);
    r->in_call = false;
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->events, 0); /* a call that fails never calls back */
    CHECK_EQ_INT(count_open_fds(), before);
    check_no_children(); /* nothing half-started left behind */
}

TEST(process_missing_program_fails_with_enoent)
{
    tapio_loop *loop = test_loop();
    check_spawn_fails(loop, "/nonexistent/tapio-no-such-program", NULL,
                      -ENOENT);
    check_spawn_fails(loop, "tapio-no-such-program", NULL, -ENOENT);
}

/* A temp file with `mode` and `content`; its path goes to `path`. */
static void make_file(char *path, size_t size, const char *tag, mode_t mode,
                      const char *content)
{
    snprintf(path, size, "/tmp/tapio-process-%d-%s", (int)getpid(), tag);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
    CHECK(fchmod(fd, mode) == 0);
    close(fd);
}

/* Not executable, or a directory: EACCES (Python: PermissionError). */
TEST(process_program_that_cannot_run_fails_with_eacces)
{
    tapio_loop *loop = test_loop();
    char path[128];
    make_file(path, sizeof path, "noexec", 0644, "#!/bin/sh\nexit 0\n");
    check_spawn_fails(loop, path, NULL, -EACCES);
    unlink(path);
    check_spawn_fails(loop, "/tmp", NULL, -EACCES);
}

/* Executable but no program: ENOEXEC, as Python's subprocess reports it (no
 * fallback to the shell). */
TEST(process_executable_that_is_no_program_fails_with_enoexec)
{
    tapio_loop *loop = test_loop();
    char path[128];
    make_file(path, sizeof path, "garbage", 0755, "not a program\n");
    check_spawn_fails(loop, path, NULL, -ENOEXEC);
    unlink(path);
}

TEST(process_missing_cwd_fails_with_enoent)
{
    tapio_loop *loop = test_loop();
    check_spawn_fails(loop, "/bin/true", "/nonexistent/tapio-dir", -ENOENT);
}

/* --------------------------------------------------------- many children */

static int count_lost(proc *const *r, int n)
{
    int lost = 0;
    for (int i = 0; i < n; i++)
        lost += r[i]->lost;
    return lost;
}

TEST(process_200_concurrent_children)
{
    tapio_loop *loop = test_loop();
    enum { N = 200 };
    int before = count_open_fds();
    proc *r[N];
    char *argv[] = {"true", NULL};
    tapio_process_options o = {.file = "/bin/true", .argv = argv};
    for (int i = 0; i < N; i++) {
        r[i] = proc_new();
        CHECK_OK(proc_spawn(loop, r[i], &o));
    }
    RUN_UNTIL(loop, count_lost(r, N) == N, 30);
    run_briefly(loop, 3);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(r[i]->lost, 1);
        CHECK_EQ_INT(r[i]->rc, 0);
        CHECK_EQ_INT(r[i]->pipe_lost[0] + r[i]->pipe_lost[1] +
                         r[i]->pipe_lost[2], 3);
        check_reaped(r[i]->pid);
    }
    CHECK_EQ_INT(count_open_fds(), before);
    check_no_children();
}

/* ---------------------------------------------------------------- close */

/* close() on a running child: the pipes close, the child is killed, and
 * connection_lost ends it all, promptly. */
TEST(process_close_kills_a_running_child)
{
    tapio_loop *loop = test_loop();
    proc *r = sleeper(loop);
    double t0 = monotonic_now();
    r->in_call = true;
    tapio_process_close(r->p);
    CHECK(tapio_process_is_closing(r->p));
    tapio_process_close(r->p); /* idempotent */
    r->in_call = false;
    finish(loop, r, 5);
    CHECK(monotonic_now() - t0 < 2);
    CHECK_EQ_INT(r->rc, -SIGKILL);
    for (int fd = 0; fd < 3; fd++) {
        CHECK_EQ_INT(r->pipe_lost[fd], 1);
        CHECK_EQ_INT(r->pipe_err[fd], 0);
    }
    CHECK(r->lost_at == r->events);
    check_no_children();
}

/* close() right after spawning, before connection_made ran: connection_made
 * still comes first, and the rest in order. */
TEST(process_close_before_connection_made)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "exec sleep 30");
    r->in_call = true;
    tapio_process_close(r->p);
    r->in_call = false;
    finish(loop, r, 5);
    CHECK_EQ_INT(r->made_at, 1);
    CHECK_EQ_INT(r->rc, -SIGKILL);
    check_no_children();
}

/* close() from pipe_data_received, while the child runs: it is killed, and
 * the events still come in order. */
static void close_on_data(tapio_process *p, int fd, const void *data,
                          size_t len, void *user)
{
    on_data(p, fd, data, len, user);
    tapio_process_close(p);
}

TEST(process_close_from_a_callback)
{
    tapio_loop *loop = test_loop();
    tapio_subprocess_protocol proto = proc_protocol;
    proto.pipe_data_received = close_on_data;
    char *argv[] = {"sh", "-c", "echo hi; exec sleep 30", NULL};
    tapio_process_options o = {.file = "/bin/sh", .argv = argv};
    proc *r = proc_new();
    r->in_call = true;
    CHECK_OK(tapio_process_spawn(loop, &o, &proto, r, &r->p));
    r->in_call = false;
    r->pid = tapio_process_pid(r->p);
    finish(loop, r, 5);
    CHECK_OUT(r, 1, "hi\n");
    CHECK_EQ_INT(r->rc, -SIGKILL);
}

/* close() from process_exited while a grandchild still holds stdout: the
 * pipes end at once, connection_lost follows. */
static void close_on_exit(tapio_process *p, void *user)
{
    on_exited(p, user);
    tapio_process_close(p);
    CHECK(tapio_process_is_closing(p));
}

TEST(process_close_from_process_exited)
{
    tapio_loop *loop = test_loop();
    tapio_subprocess_protocol proto = proc_protocol;
    proto.process_exited = close_on_exit;
    char pidfile[128], script[256];
    snprintf(pidfile, sizeof pidfile, "/tmp/tapio-process-%d-grandchild",
             (int)getpid());
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; exit 9",
             pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    tapio_process_options o = {.file = "/bin/sh", .argv = argv};
    proc *r = proc_new();
    CHECK_OK(tapio_process_spawn(loop, &o, &proto, r, &r->p));
    r->pid = tapio_process_pid(r->p);
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, 9);
    CHECK(r->exited_at < r->pipe_lost_at[1]);
    CHECK(r->exited_at < r->pipe_lost_at[2]);
    CHECK_EQ_INT(r->pipe_err[1], 0);
    FILE *f = fopen(pidfile, "re");
    CHECK(f != NULL);
    int grandchild = 0;
    CHECK(fscanf(f, "%d", &grandchild) == 1 && grandchild > 0);
    fclose(f);
    unlink(pidfile);
    CHECK(kill(grandchild, 0) == 0); /* it held the pipes all along */
    kill(grandchild, SIGKILL);       /* init's to reap */
}

/* ---------------------------------------------------------------- adopt */

/* A child we spawned ourselves with our own pipes, handed over. */
TEST(process_adopt_a_child_spawned_elsewhere)
{
    tapio_loop *loop = test_loop();
    int in[2], out[2];
    CHECK(pipe2(in, O_CLOEXEC) == 0);
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *argv[] = {"sh", "-c", "cat; exit 5", NULL};
    pid_t pid;
    CHECK_EQ_INT(posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);

    proc *r = proc_new();
    r->in_call = true;
    tapio_process_adopt_options ao = {.pid = pid, .fds = {in[1], out[0], -1}};
    CHECK_OK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &r->p));
    r->in_call = false;
    r->pid = pid;
    CHECK_EQ_INT(tapio_process_pid(r->p), pid);
    RUN_UNTIL(loop, r->made, 5);
    CHECK(r->has_pipe[0] && r->has_pipe[1] && !r->has_pipe[2]);
    CHECK_OK(tapio_transport_write(tapio_process_pipe(r->p, 0), "adopted\n",
                                   8));
    tapio_transport_close(tapio_process_pipe(r->p, 0));
    finish(loop, r, 10);
    CHECK_OUT(r, 1, "adopted\n");
    CHECK_EQ_INT(r->rc, 5);
    check_no_children();
}

/* A child that had already exited (a zombie) when adopted, without pipes. */
TEST(process_adopt_a_child_that_already_exited)
{
    tapio_loop *loop = test_loop();
    char *argv[] = {"sh", "-c", "exit 7", NULL};
    pid_t pid;
    CHECK_EQ_INT(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ), 0);
    siginfo_t si = {0};
    CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0);
    proc *r = proc_new();
    tapio_process_adopt_options ao = {.pid = pid, .fds = {-1, -1, -1}};
    CHECK_OK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &r->p));
    r->pid = pid;
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, 7);
    CHECK_EQ_INT(r->events, 3);
    check_no_children();
}

/* ------------------------------------------------- closing the loop early */

/* The loop closes while children run: no callback, no fd and no memory left
 * (the harness and LeakSanitizer check), and, as tapio documents, each
 * running child is killed and reaped. */
TEST(process_loop_closed_with_children_running)
{
    tapio_loop *loop = test_loop();
    proc *a = sleeper(loop);                       /* connected */
    proc *b = spawn_piped(loop, "exec sleep 30");  /* not even made yet */
    proc *c = spawn_piped(loop, "sleep 30 & echo $!; exit 0"); /* exited */
    RUN_UNTIL(loop, c->exited && has_line(c, 1), 5);
    pid_t grandchild = (pid_t)atoi((const char *)c->out[1].p);
    CHECK(grandchild > 0);
    int events[3] = {a->events, b->events, c->events};
    test_loop_close();
    CHECK_EQ_INT(a->events, events[0]);
    CHECK_EQ_INT(b->events, events[1]);
    CHECK_EQ_INT(c->events, events[2]);
    check_reaped(a->pid);
    check_reaped(b->pid);
    check_reaped(c->pid);
    check_no_children();
    kill(grandchild, SIGKILL);
}

/* The loop closes with connection_lost already queued, and with a child
 * that exited but whose exit was not yet seen. */
TEST(process_loop_closed_with_events_pending)
{
    tapio_loop *loop = test_loop();
    proc *a = spawn_sh(loop, "exit 0", TAPIO_STDIO_DEVNULL,
                       TAPIO_STDIO_DEVNULL, TAPIO_STDIO_DEVNULL);
    proc *b = spawn_piped(loop, "exit 0");
    /* Wait until b has surely exited (a zombie) without reaping it. */
    siginfo_t si = {0};
    CHECK(waitid(P_PID, (id_t)b->pid, &si, WEXITED | WNOWAIT) == 0);
    CHECK(waitid(P_PID, (id_t)a->pid, &si, WEXITED | WNOWAIT) == 0);
    test_loop_close();
    CHECK_EQ_INT(a->lost, 0);
    CHECK_EQ_INT(b->lost, 0);
    check_reaped(a->pid);
    check_reaped(b->pid);
    check_no_children();
}

/* Fork a process that takes `pid` (as one would after a pid wrap-around),
 * by way of /proc/sys/kernel/ns_last_pid; 0 when that cannot be arranged
 * (not root, or another process took the pid first). */
static pid_t decoy_with_pid(pid_t pid)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "we");
        if (!f)
            return 0;
        bool ok = fprintf(f, "%d", (int)pid - 1) > 0;
        ok = fclose(f) == 0 && ok;
        if (!ok)
            return 0;
        pid_t decoy = fork();
        CHECK(decoy >= 0);
        if (decoy == 0) {
            pause();
            _exit(0);
        }
        if (decoy == pid)
            return decoy;
        kill(decoy, SIGKILL); /* a parallel test took the pid: again */
        waitpid(decoy, NULL, 0);
    }
    return 0;
}

/* A referenced process outlives its loop. Its child was killed and reaped
 * by the loop's close, so its calls stay harmless: no signal goes to the
 * old pid, which may be another process's by now (asyncio's Popen never
 * signals a child it has reaped). */
TEST(process_reference_outlives_the_loop)
{
    tapio_loop *loop = test_loop();
    proc *r = sleeper(loop);
    tapio_process *p = r->p;
    pid_t pid = r->pid;
    tapio_process_ref(p);
    test_loop_close();
    check_reaped(pid);
    CHECK_EQ_INT(tapio_process_pid(p), pid);
    CHECK_ERR(tapio_process_send_signal(p, 0), -ESRCH);
    pid_t decoy = decoy_with_pid(pid);
    if (decoy) {
        int kill_err = tapio_process_kill(p);
        tapio_process_close(p);
        kill(decoy, SIGKILL);
        waitpid(decoy, NULL, 0);
        if (kill_err != -ESRCH)
            FAIL("tapio_process_kill after the loop closed returned %d: it "
                 "signalled pid %d, another process's by now",
                 kill_err, (int)pid);
    }
    tapio_process_unref(p);
}

/* ------------------------------------------------------- new session */

TEST(process_new_session)
{
    tapio_loop *loop = test_loop();
    char *argv[] = {"sleep", "30", NULL};
    tapio_process_options o = {.file = "sleep", .argv = argv,
                               .new_session = true};
    proc *r = proc_new();
    CHECK_OK(proc_spawn(loop, r, &o));
    CHECK_EQ_INT(getsid(r->pid), r->pid);
    proc *s = sleeper(loop); /* without: our session */
    CHECK_EQ_INT(getsid(s->pid), getsid(0));
    tapio_process_close(r->p);
    tapio_process_close(s->p);
    finish(loop, r, 5);
    finish(loop, s, 5);
}

/* ------------------------------------- without pidfds, adopting, closing */

static void unset_pidfd_fault(void *arg)
{
    (void)arg;
    unsetenv("TAPIO_FAULT_PIDFD_OPEN");
}

/* pidfd_open fails with `err` from now until the test ends. */
static void fail_pidfd_open(int err)
{
    char value[16];
    snprintf(value, sizeof value, "%d", err);
    CHECK(setenv("TAPIO_FAULT_PIDFD_OPEN", value, 1) == 0);
    at_cleanup(unset_pidfd_fault, NULL);
}

/* Where pidfd_open fails (an old kernel: ENOSYS; seccomp: EPERM; out of
 * descriptors: EMFILE) the exit is still seen, through a waiting thread:
 * the events come in order, the child is reaped, no fd is left. */
static void check_exit_seen_without_pidfd(int err)
{
    tapio_loop *loop = test_loop();
    int before = count_open_fds();
    fail_pidfd_open(err);
    proc *r = spawn_piped(loop, "echo out; exit 4");
    finish(loop, r, 10);
    CHECK_EQ_INT(r->rc, 4);
    CHECK_OUT(r, 1, "out\n");
    CHECK(r->lost_at == r->events);
    CHECK_EQ_INT(count_open_fds(), before);
    check_no_children();
}

TEST(process_exit_seen_without_pidfd_enosys)
{
    check_exit_seen_without_pidfd(ENOSYS);
}

TEST(process_exit_seen_without_pidfd_eperm)
{
    check_exit_seen_without_pidfd(EPERM);
}

TEST(process_exit_seen_without_pidfd_emfile)
{
    check_exit_seen_without_pidfd(EMFILE);
}

/* Without pidfds too, kill and close reach the child and end it all. */
TEST(process_close_without_pidfd_kills_the_child)
{
    tapio_loop *loop = test_loop();
    fail_pidfd_open(ENOSYS);
    proc *r = sleeper(loop);
    tapio_process_close(r->p);
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, -SIGKILL);
    check_no_children();
}

/* The loop closes with running children, watched by pidfd and by a
 * thread: each is killed and reaped, and every pidfd is closed (counted in
 * /proc/self/fd: the pipes go too). */
TEST(process_loop_closed_with_live_children_leaves_no_fd)
{
    int before = count_open_fds();
    tapio_loop *loop = test_loop();
    proc *a = sleeper(loop); /* pidfd */
    proc *b = spawn_piped(loop, "exec sleep 30");
    fail_pidfd_open(ENOSYS);
    proc *c = sleeper(loop); /* a waiting thread */
    unset_pidfd_fault(NULL);
    CHECK(count_open_fds() > before);
    test_loop_close();
    CHECK_EQ_INT(count_open_fds(), before);
    CHECK_EQ_INT(a->lost + b->lost + c->lost, 0);
    check_reaped(a->pid);
    check_reaped(b->pid);
    check_reaped(c->pid);
    check_no_children();
}

static pid_t spawn_raw(char *const *argv, int in, int out)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in >= 0)
        posix_spawn_file_actions_adddup2(&fa, in, 0);
    if (out >= 0)
        posix_spawn_file_actions_adddup2(&fa, out, 1);
    pid_t pid;
    CHECK_EQ_INT(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Adopted with caller_reaps: libtapio never waits for the pid; the caller
 * reaps it and tells the returncode, which is known at once, and the
 * events follow from the loop in asyncio's order. */
TEST(process_adopt_with_the_callers_watcher)
{
    tapio_loop *loop = test_loop();
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    char *argv[] = {"/bin/sh", "-c", "echo watched; exit 6", NULL};
    pid_t pid = spawn_raw(argv, -1, out[1]);
    close(out[1]);
    proc *r = proc_new();
    tapio_process_adopt_options ao = {
        .pid = pid, .fds = {-1, out[0], -1}, .caller_reaps = true};
    CHECK_OK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &r->p));
    r->pid = pid;
    RUN_UNTIL(loop, r->made && r->pipe_lost[1], 5);
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->exited, 0); /* nobody told it yet */
    siginfo_t si = {0};
    CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0);
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->exited, 0); /* libtapio did not wait for it */
    int status;
    CHECK(waitpid(pid, &status, 0) == pid); /* the caller reaps */
    r->in_call = true;
    CHECK_OK(tapio_process_set_exited(r->p, WEXITSTATUS(status)));
    r->in_call = false;
    int code = 0;
    CHECK(tapio_process_returncode(r->p, &code));
    CHECK_EQ_INT(code, 6);
    CHECK_ERR(tapio_process_set_exited(r->p, 6), -EALREADY);
    CHECK_EQ_INT(r->exited, 0); /* not inside the call */
    finish(loop, r, 5);
    CHECK_OUT(r, 1, "watched\n");
    CHECK_EQ_INT(r->rc, 6);
    CHECK(r->exited_at > r->pipe_lost_at[1]);
    check_no_children();
}

/* A process libtapio watches itself cannot be told its exit. */
TEST(process_set_exited_refused_when_libtapio_watches)
{
    tapio_loop *loop = test_loop();
    proc *r = spawn_piped(loop, "exit 0");
    CHECK_ERR(tapio_process_set_exited(r->p, 0), -EINVAL);
    finish(loop, r, 5);
}

/* Told the exit before connection_made ran: it is held until then. */
TEST(process_adopt_told_exit_before_connection_made)
{
    tapio_loop *loop = test_loop();
    char *argv[] = {"/bin/sh", "-c", "exit 2", NULL};
    pid_t pid = spawn_raw(argv, -1, -1);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    proc *r = proc_new();
    tapio_process_adopt_options ao = {
        .pid = pid, .fds = {-1, -1, -1}, .caller_reaps = true};
    CHECK_OK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &r->p));
    r->pid = pid;
    CHECK_OK(tapio_process_set_exited(r->p, WEXITSTATUS(status)));
    finish(loop, r, 5);
    CHECK_EQ_INT(r->rc, 2);
    CHECK_EQ_INT(r->made_at, 1);
    CHECK_EQ_INT(r->exited_at, 2);
    CHECK_EQ_INT(r->events, 3);
}

/* The loop closes with a child whose caller reaps it: left alone (not
 * killed, not reaped), as a user's child watcher still owns it. */
TEST(process_loop_closed_leaves_the_callers_child_alone)
{
    int before = count_open_fds();
    tapio_loop *loop = test_loop();
    char *argv[] = {"/bin/sleep", "30", NULL};
    pid_t pid = spawn_raw(argv, -1, -1);
    proc *r = proc_new();
    tapio_process_adopt_options ao = {
        .pid = pid, .fds = {-1, -1, -1}, .caller_reaps = true};
    CHECK_OK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &r->p));
    r->pid = pid;
    RUN_UNTIL(loop, r->made, 5);
    test_loop_close();
    CHECK_EQ_INT(count_open_fds(), before);
    CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running */
    kill(pid, SIGKILL);
    CHECK(waitpid(pid, NULL, 0) == pid);
    check_no_children();
}

/* An adoption that fails (a pipe fd that is not open) closes the fds it
 * was given, kills and reaps the child, and runs no callback. */
TEST(process_adopt_failure_kills_and_reaps_the_child)
{
    tapio_loop *loop = test_loop();
    int before = count_open_fds();
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    char *argv[] = {"/bin/sleep", "30", NULL};
    pid_t pid = spawn_raw(argv, -1, out[1]);
    close(out[1]);
    int not_open = highest_open_fd() + 10;
    proc *r = proc_new();
    tapio_process_adopt_options ao = {.pid = pid,
                                      .fds = {not_open, out[0], -1}};
    tapio_process *p = NULL;
    CHECK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &p) < 0);
    CHECK(p == NULL);
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->events, 0);
    CHECK_EQ_INT(count_open_fds(), before);
    check_reaped(pid);
    check_no_children();
}

/* dup_fds: the caller keeps its fds (a binding's file objects), libtapio
 * works on duplicates. */
TEST(process_adopt_with_duplicated_fds)
{
    tapio_loop *loop = test_loop();
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    char *argv[] = {"/bin/sh", "-c", "echo dup; exit 3", NULL};
    pid_t pid = spawn_raw(argv, -1, out[1]);
    close(out[1]);
    proc *r = proc_new();
    tapio_process_adopt_options ao = {
        .pid = pid, .fds = {-1, out[0], -1}, .dup_fds = true};
    CHECK_OK(tapio_process_adopt(loop, &ao, &proc_protocol, r, &r->p));
    r->pid = pid;
    finish(loop, r, 5);
    CHECK_OUT(r, 1, "dup\n");
    CHECK_EQ_INT(r->rc, 3);
    CHECK(fcntl(out[0], F_GETFD) >= 0); /* still ours */
    close(out[0]);
}

static void restore_nofile(void *arg)
{
    CHECK(setrlimit(RLIMIT_NOFILE, arg) == 0);
    free(arg);
}

/* Out of descriptors while duplicating: the call fails with EMFILE, the
 * child is killed and reaped, nothing is left open. */
TEST(process_adopt_out_of_fds_kills_and_reaps_the_child)
{
    tapio_loop *loop = test_loop();
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    char *argv[] = {"/bin/sleep", "30", NULL};
    pid_t pid = spawn_raw(argv, -1, out[1]);
    close(out[1]);
    int before = count_open_fds();
    struct rlimit *old = malloc(sizeof *old);
    CHECK(old && getrlimit(RLIMIT_NOFILE, old) == 0);
    at_cleanup(restore_nofile, old);
    struct rlimit low = *old;
    low.rlim_cur = (rlim_t)highest_open_fd() + 1; /* no fd above ours */
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    /* ... and none in the holes below */
    int *fillers = calloc(low.rlim_cur, sizeof *fillers), nfill = 0, fd;
    CHECK(fillers != NULL);
    while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        fillers[nfill++] = fd;
    CHECK(errno == EMFILE);
    proc *r = proc_new();
    tapio_process_adopt_options ao = {
        .pid = pid, .fds = {-1, out[0], -1}, .dup_fds = true};
    tapio_process *p = NULL;
    CHECK_ERR(tapio_process_adopt(loop, &ao, &proc_protocol, r, &p), -EMFILE);
    CHECK(p == NULL);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    free(fillers);
    CHECK(setrlimit(RLIMIT_NOFILE, old) == 0);
    run_briefly(loop, 3);
    CHECK_EQ_INT(r->events, 0);
    CHECK_EQ_INT(count_open_fds(), before);
    check_reaped(pid);
    close(out[0]);
    check_no_children();
}
