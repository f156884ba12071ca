/* Small socket helpers shared by transports, servers and connects. */
#include "internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int tapio__set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int tapio__socket(int family, int type, int protocol)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

/* A path of length 0 means strlen(path); a leading NUL is a Linux abstract
 * name, whose length counts exactly. */
int tapio__unix_addr(const char *path, size_t path_len,
                     struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    if (!path)
        return -EINVAL;
    if (path_len == 0)
        path_len = strlen(path);
    if (path_len == 0 || path_len >= sizeof(sun->sun_path))
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, path_len);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len +
                       (path[0] ? 1 : 0));
    return 0;
}

void tapio__remove_stale_socket(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
}

void tapio__remove_stale_unix_socket(const struct sockaddr *addr,
                                     socklen_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)addr;
    size_t offset = offsetof(struct sockaddr_un, sun_path);
    if (len <= offset || !sun->sun_path[0])
        return; /* unnamed or abstract: no file */
    char path[sizeof(sun->sun_path) + 1];
    size_t n = len - offset;
    if (n > sizeof(sun->sun_path))
        n = sizeof(sun->sun_path);
    memcpy(path, sun->sun_path, n);
    path[n] = '\0';
    tapio__remove_stale_socket(path);
}
