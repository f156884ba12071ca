/* fd aliases: a caller's own fd for a socket a transport, server or
 * endpoint owns through a duplicate (a Python socket object given as
 * sock=). The caller may close its fd and get the number back for another
 * file; libtapio's duplicate stays what it was. Whether an alias still
 * stands for the owned fd is decided by the file itself, never the number. */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int grow_alias_table(tapio_loop *loop, int fd)
{
    if ((size_t)fd < loop->nalias)
        return 0;
    size_t n = loop->nalias ? loop->nalias : 16;
    while (n <= (size_t)fd)
        n *= 2;
    int *alias = realloc(loop->alias_of, n * sizeof(*alias));
    if (!alias)
        return -ENOMEM;
    for (size_t i = loop->nalias; i < n; i++)
        alias[i] = -1;
    loop->alias_of = alias;
    loop->nalias = n;
    return 0;
}

int tapio_fd_dup_alias(tapio_loop *loop, int fd)
{
    if (fd < 0)
        return -EBADF;
    int err = grow_alias_table(loop, fd);
    if (err)
        return err;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        return -errno;
    loop->alias_of[fd] = dup;
    return dup;
}

static bool owned_by_loop(const tapio_loop *loop, int fd)
{
    return fd >= 0 && (size_t)fd < loop->nfds && loop->fds[fd] &&
           !loop->fds[fd]->user;
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int tapio_fd_owner(const tapio_loop *loop, int fd)
{
    if (owned_by_loop(loop, fd))
        return fd;
    int dup = fd >= 0 && (size_t)fd < loop->nalias ? loop->alias_of[fd] : -1;
    return dup >= 0 && owned_by_loop(loop, dup) && same_file(fd, dup) ? dup
                                                                     : -1;
}

bool tapio_fd_is_owned(const tapio_loop *loop, int fd)
{
    return tapio_fd_owner(loop, fd) >= 0;
}

void tapio__fd_aliases_free(tapio_loop *loop)
{
    free(loop->alias_of);
    loop->alias_of = NULL;
    loop->nalias = 0;
}
