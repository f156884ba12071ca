/* Pipe transports (asyncio's connect_read_pipe / connect_write_pipe): the
 * stream transport over one end of a pipe, FIFO, socket or terminal. */
#include "internal.h"

#include <sys/stat.h>
#include <unistd.h>

/* asyncio takes pipes, sockets and character devices, never regular files
 * (which are always "ready" and cannot be watched). */
static int check_pipe(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode))
        return -EINVAL;
    return tapio__set_nonblocking(fd);
}

static int open_pipe(tapio_loop *loop, int fd, enum tapio__stream_kind kind,
                     const tapio_protocol *proto, void *user,
                     tapio_transport **out)
{
    int err = check_pipe(fd);
    if (err) {
        close(fd);
        return err;
    }
    tapio_transport *t;
    err = tapio__transport_new(loop, fd, kind, proto, user, NULL, &t);
    if (!err && out)
        *out = t;
    return err;
}

int tapio_pipe_read(tapio_loop *loop, int fd, const tapio_protocol *proto,
                    void *user, tapio_transport **out)
{
    return open_pipe(loop, fd, TAPIO__READ_PIPE, proto, user, out);
}

int tapio_pipe_read_relayed(tapio_loop *loop, int fd,
                            const tapio_protocol *proto, void *user,
                            tapio_transport **out)
{
    tapio_transport *t;
    int err = open_pipe(loop, fd, TAPIO__READ_PIPE, proto, user, &t);
    if (err)
        return err;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
        tapio__transport_relay(t); /* else (or without splice): plain reads */
    if (out)
        *out = t;
    return 0;
}

int tapio_pipe_write(tapio_loop *loop, int fd, const tapio_protocol *proto,
                     void *user, tapio_transport **out)
{
    return open_pipe(loop, fd, TAPIO__WRITE_PIPE, proto, user, out);
}
