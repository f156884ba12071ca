/*
 * subprocess_date.c — the asyncio documentation's subprocess example
 * (Transports and Protocols, "loop.subprocess_exec() and
 * SubprocessProtocol"), on libtapio.
 *
 * A child prints the current date on its stdout pipe; DateProtocol collects
 * the output and waits until both the pipe has closed and the child has
 * exited (process_exited may come before pipe_connection_lost), then the
 * program prints what the Python original prints: "Current date: ...".
 *
 *   usage: subprocess_date
 *
 * The Python child runs `print(datetime.datetime.now())`; this one runs
 * date(1) with the same format, so no Python is needed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tapio.h"

typedef struct date_protocol {
    char output[256];
    size_t len;
    bool pipe_closed, exited, done;
} date_protocol;

static void check_for_exit(date_protocol *dp)
{
    if (dp->pipe_closed && dp->exited)
        dp->done = true; /* the Python original sets exit_future */
}

static void date_pipe_data_received(tapio_process *p, int fd,
                                    const void *data, size_t len, void *user)
{
    (void)p, (void)fd;
    date_protocol *dp = user;
    size_t room = sizeof(dp->output) - 1 - dp->len;
    size_t n = len < room ? len : room;
    memcpy(dp->output + dp->len, data, n);
    dp->len += n;
}

static void date_pipe_connection_lost(tapio_process *p, int fd, int err,
                                      void *user)
{
    (void)p, (void)fd, (void)err;
    date_protocol *dp = user;
    dp->pipe_closed = true;
    check_for_exit(dp);
}

static void date_process_exited(tapio_process *p, void *user)
{
    (void)p;
    date_protocol *dp = user;
    dp->exited = true;
    check_for_exit(dp);
}

static const tapio_subprocess_protocol date_protocol_table = {
    .pipe_data_received = date_pipe_data_received,
    .pipe_connection_lost = date_pipe_connection_lost,
    .process_exited = date_process_exited,
};

int main(void)
{
    char *argv[] = {"date", "+%Y-%m-%d %H:%M:%S.%6N", NULL};
    tapio_process_options opts = {
        .file = "date",
        .argv = argv,
        /* stdin=None, stderr=None: inherited; stdout into a pipe */
        .stdio = {TAPIO_STDIO_INHERIT, TAPIO_STDIO_PIPE, TAPIO_STDIO_INHERIT},
    };
    date_protocol dp = {0};
    tapio_loop *loop = NULL;
    tapio_process *proc;
    int err = tapio_loop_new(&loop);
    if (err == 0)
        err = tapio_process_spawn(loop, &opts, &date_protocol_table, &dp, &proc);
    if (err < 0) {
        fprintf(stderr, "subprocess_date: %s\n", tapio_strerror(err));
        if (loop)
            tapio_loop_close(loop);
        return 1;
    }
    /* Like the Python transport object, the process stays usable after it
     * finished while we hold a reference. */
    tapio_process_ref(proc);
    while (!dp.done)
        tapio_loop_run_once(loop);
    tapio_process_close(proc); /* "Close the stdout pipe." */
    tapio_process_unref(proc);
    tapio_loop_close(loop);

    /* data.decode('ascii').rstrip() */
    while (dp.len && (dp.output[dp.len - 1] == '\n' || dp.output[dp.len - 1] == ' '))
        dp.len--;
    printf("Current date: %.*s\n", (int)dp.len, dp.output);
    return 0;
}
