/* faults.c — the wrappers libtapio's renamed calls reach (see faults.h). */
#define _GNU_SOURCE
#include "faults.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <execinfo.h>
#include <liburing.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>

static const char *const names[FAULT_COUNT] = {
    [FAULT_ACCEPT4] = "accept4",     [FAULT_READ] = "read",
    [FAULT_WRITE] = "write",         [FAULT_WRITEV] = "writev",
    [FAULT_SEND] = "send",           [FAULT_SENDMSG] = "sendmsg",
    [FAULT_RECVFROM] = "recvfrom",   [FAULT_SENDTO] = "sendto",
    [FAULT_SENDFILE] = "sendfile",   [FAULT_SPLICE] = "splice",
    [FAULT_SOCKET] = "socket",       [FAULT_SOCKETPAIR] = "socketpair",
    [FAULT_CONNECT] = "connect",     [FAULT_PIPE2] = "pipe2",
    [FAULT_EVENTFD] = "eventfd",     [FAULT_PIDFD_OPEN] = "pidfd_open",
    [FAULT_EPOLL_CTL] = "epoll_ctl", [FAULT_MALLOC] = "malloc",
    [FAULT_CALLOC] = "calloc",       [FAULT_REALLOC] = "realloc",
    [FAULT_STRDUP] = "strdup",       [FAULT_POSIX_SPAWN] = "posix_spawn",
    [FAULT_URING_INIT] = "io_uring_queue_init_params",
    [FAULT_URING_RECV_MULTISHOT] = "multishot receive",
    [FAULT_URING_RECV_TOTAL] = "multishot receive's total",
    [FAULT_URING_RECV_SINGLE] = "single receive",
};

/* Worker threads (name resolution, exit waiters) call some of these too:
 * the counters are atomic so that the n-th call fails exactly once. */
static struct {
    int armed; /* 1 + the armed call, or 0 */
    unsigned nth;
    int err;
    int fired;
    unsigned calls[FAULT_COUNT];
} state;

const char *fault_name(fault_call call) { return names[call]; }

void fault_arm(fault_call call, unsigned n, int err)
{
    for (int i = 0; i < FAULT_COUNT; i++)
        __atomic_store_n(&state.calls[i], 0, __ATOMIC_RELAXED);
    state.nth = n;
    state.err = err;
    __atomic_store_n(&state.fired, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&state.armed, 1 + (int)call, __ATOMIC_SEQ_CST);
}

bool fault_disarm(void)
{
    __atomic_store_n(&state.armed, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&state.fired, __ATOMIC_SEQ_CST) != 0;
}

unsigned fault_calls(fault_call call)
{
    return __atomic_load_n(&state.calls[call], __ATOMIC_RELAXED);
}

/* Counts the call; true (errno set) if this one must fail. */
static bool should_fail(fault_call call)
{
    if (!__atomic_load_n(&state.armed, __ATOMIC_SEQ_CST))
        return false;
    unsigned n = __atomic_add_fetch(&state.calls[call], 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&state.armed, __ATOMIC_SEQ_CST) != 1 + (int)call ||
        n != state.nth)
        return false;
    __atomic_store_n(&state.fired, 1, __ATOMIC_SEQ_CST);
    if (getenv("FAULTS_TRACE")) { /* where the fault hit, for debugging */
        void *frames[16];
        backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
    }
    errno = state.err;
    return true;
}

#define FAIL_WITH(call, value)                                            \
    do {                                                                  \
        if (should_fail(call))                                            \
            return value;                                                 \
    } while (0)

/* Each wrapper is declared here, as it is only reached through the renamed
 * references in libtapio's objects. */
int tapio_fault_accept4(int fd, struct sockaddr *addr, socklen_t *len,
                        int flags);
int tapio_fault_accept4(int fd, struct sockaddr *addr, socklen_t *len,
                        int flags)
{
    FAIL_WITH(FAULT_ACCEPT4, -1);
    return accept4(fd, addr, len, flags);
}

ssize_t tapio_fault_read(int fd, void *buf, size_t n);
ssize_t tapio_fault_read(int fd, void *buf, size_t n)
{
    FAIL_WITH(FAULT_READ, -1);
    return read(fd, buf, n);
}

ssize_t tapio_fault_write(int fd, const void *buf, size_t n);
ssize_t tapio_fault_write(int fd, const void *buf, size_t n)
{
    FAIL_WITH(FAULT_WRITE, -1);
    return write(fd, buf, n);
}

ssize_t tapio_fault_writev(int fd, const struct iovec *iov, int n);
ssize_t tapio_fault_writev(int fd, const struct iovec *iov, int n)
{
    FAIL_WITH(FAULT_WRITEV, -1);
    return writev(fd, iov, n);
}

ssize_t tapio_fault_send(int fd, const void *buf, size_t n, int flags);
ssize_t tapio_fault_send(int fd, const void *buf, size_t n, int flags)
{
    FAIL_WITH(FAULT_SEND, -1);
    return send(fd, buf, n, flags);
}

ssize_t tapio_fault_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t tapio_fault_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    FAIL_WITH(FAULT_SENDMSG, -1);
    return sendmsg(fd, msg, flags);
}

ssize_t tapio_fault_recvfrom(int fd, void *buf, size_t n, int flags,
                             struct sockaddr *addr, socklen_t *len);
ssize_t tapio_fault_recvfrom(int fd, void *buf, size_t n, int flags,
                             struct sockaddr *addr, socklen_t *len)
{
    FAIL_WITH(FAULT_RECVFROM, -1);
    return recvfrom(fd, buf, n, flags, addr, len);
}

ssize_t tapio_fault_sendto(int fd, const void *buf, size_t n, int flags,
                           const struct sockaddr *addr, socklen_t len);
ssize_t tapio_fault_sendto(int fd, const void *buf, size_t n, int flags,
                           const struct sockaddr *addr, socklen_t len)
{
    FAIL_WITH(FAULT_SENDTO, -1);
    return sendto(fd, buf, n, flags, addr, len);
}

ssize_t tapio_fault_sendfile(int out, int in, off_t *offset, size_t n);
ssize_t tapio_fault_sendfile(int out, int in, off_t *offset, size_t n)
{
    FAIL_WITH(FAULT_SENDFILE, -1);
    return sendfile(out, in, offset, n);
}

ssize_t tapio_fault_splice(int in, loff_t *in_off, int out, loff_t *out_off,
                           size_t n, unsigned flags);
ssize_t tapio_fault_splice(int in, loff_t *in_off, int out, loff_t *out_off,
                           size_t n, unsigned flags)
{
    FAIL_WITH(FAULT_SPLICE, -1);
    return splice(in, in_off, out, out_off, n, flags);
}

int tapio_fault_socket(int domain, int type, int protocol);
int tapio_fault_socket(int domain, int type, int protocol)
{
    FAIL_WITH(FAULT_SOCKET, -1);
    return socket(domain, type, protocol);
}

int tapio_fault_socketpair(int domain, int type, int protocol, int fds[2]);
int tapio_fault_socketpair(int domain, int type, int protocol, int fds[2])
{
    FAIL_WITH(FAULT_SOCKETPAIR, -1);
    return socketpair(domain, type, protocol, fds);
}

int tapio_fault_connect(int fd, const struct sockaddr *addr, socklen_t len);
int tapio_fault_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    FAIL_WITH(FAULT_CONNECT, -1);
    return connect(fd, addr, len);
}

int tapio_fault_pipe2(int fds[2], int flags);
int tapio_fault_pipe2(int fds[2], int flags)
{
    FAIL_WITH(FAULT_PIPE2, -1);
    return pipe2(fds, flags);
}

int tapio_fault_eventfd(unsigned initval, int flags);
int tapio_fault_eventfd(unsigned initval, int flags)
{
    FAIL_WITH(FAULT_EVENTFD, -1);
    return eventfd(initval, flags);
}

/* libtapio calls syscall() only for pidfd_open; other numbers pass. The
 * six argument slots are forwarded as glibc's syscall() reads them. */
long tapio_fault_syscall(long nr, ...);
long tapio_fault_syscall(long nr, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_pidfd_open)
        FAIL_WITH(FAULT_PIDFD_OPEN, -1);
    return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int tapio_fault_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int tapio_fault_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    FAIL_WITH(FAULT_EPOLL_CTL, -1);
    return epoll_ctl(epfd, op, fd, ev);
}

int tapio_fault_io_uring_queue_init_params(unsigned entries,
                                           struct io_uring *ring,
                                           struct io_uring_params *p);
int tapio_fault_io_uring_queue_init_params(unsigned entries,
                                           struct io_uring *ring,
                                           struct io_uring_params *p)
{
    FAIL_WITH(FAULT_URING_INIT, -errno);
    return io_uring_queue_init_params(entries, ring, p);
}

/* The flag of a no-op request that completes with sqe->len as its result
 * (Linux 6.10); liburing 2.3 does not name it. */
#define NOP_INJECT_RESULT (1U << 0)

/* The receive requests queued on `ring`, as it goes to the kernel: each
 * counts as a call of its kind. The failing multishot one becomes a no-op
 * that completes with -errno under the same user_data, as the kernel's
 * refusal would; the one whose total is to be ignored loses it. */
static void rewrite_receives(struct io_uring *ring)
{
    for (unsigned i = ring->sq.sqe_head; i != ring->sq.sqe_tail; i++) {
        struct io_uring_sqe *sqe = &ring->sq.sqes[i & ring->sq.ring_mask];
        if (sqe->opcode != IORING_OP_RECV)
            continue;
        if (!(sqe->ioprio & IORING_RECV_MULTISHOT)) {
            (void)should_fail(FAULT_URING_RECV_SINGLE);
            continue;
        }
        if (should_fail(FAULT_URING_RECV_TOTAL))
            sqe->file_index = 0;
        if (!should_fail(FAULT_URING_RECV_MULTISHOT))
            continue;
        __u64 user_data = sqe->user_data;
        memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = IORING_OP_NOP;
        sqe->rw_flags = NOP_INJECT_RESULT;
        sqe->len = (__u32)-errno;
        sqe->user_data = user_data;
    }
}

int tapio_fault_io_uring_submit(struct io_uring *ring);
int tapio_fault_io_uring_submit(struct io_uring *ring)
{
    rewrite_receives(ring);
    return io_uring_submit(ring);
}

int tapio_fault_io_uring_submit_and_get_events(struct io_uring *ring);
int tapio_fault_io_uring_submit_and_get_events(struct io_uring *ring)
{
    rewrite_receives(ring);
    return io_uring_submit_and_get_events(ring);
}

int tapio_fault_io_uring_submit_and_wait(struct io_uring *ring,
                                         unsigned wait_nr);
int tapio_fault_io_uring_submit_and_wait(struct io_uring *ring,
                                         unsigned wait_nr)
{
    rewrite_receives(ring);
    return io_uring_submit_and_wait(ring, wait_nr);
}

int tapio_fault_io_uring_submit_and_wait_timeout(
    struct io_uring *ring, struct io_uring_cqe **cqe, unsigned wait_nr,
    struct __kernel_timespec *ts, sigset_t *sigmask);
int tapio_fault_io_uring_submit_and_wait_timeout(
    struct io_uring *ring, struct io_uring_cqe **cqe, unsigned wait_nr,
    struct __kernel_timespec *ts, sigset_t *sigmask)
{
    rewrite_receives(ring);
    return io_uring_submit_and_wait_timeout(ring, cqe, wait_nr, ts, sigmask);
}

void *tapio_fault_malloc(size_t n);
void *tapio_fault_malloc(size_t n)
{
    FAIL_WITH(FAULT_MALLOC, NULL);
    return malloc(n);
}

void *tapio_fault_calloc(size_t n, size_t size);
void *tapio_fault_calloc(size_t n, size_t size)
{
    FAIL_WITH(FAULT_CALLOC, NULL);
    return calloc(n, size);
}

void *tapio_fault_realloc(void *p, size_t n);
void *tapio_fault_realloc(void *p, size_t n)
{
    FAIL_WITH(FAULT_REALLOC, NULL);
    return realloc(p, n);
}

char *tapio_fault_strdup(const char *s);
char *tapio_fault_strdup(const char *s)
{
    FAIL_WITH(FAULT_STRDUP, NULL);
    return strdup(s);
}

int tapio_fault_posix_spawn(pid_t *pid, const char *path,
                            const posix_spawn_file_actions_t *actions,
                            const posix_spawnattr_t *attr, char *const argv[],
                            char *const envp[]);
int tapio_fault_posix_spawn(pid_t *pid, const char *path,
                            const posix_spawn_file_actions_t *actions,
                            const posix_spawnattr_t *attr, char *const argv[],
                            char *const envp[])
{
    FAIL_WITH(FAULT_POSIX_SPAWN, state.err);
    return posix_spawn(pid, path, actions, attr, argv, envp);
}
