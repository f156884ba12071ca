/*
 * faults.h — make libtapio's syscalls and allocations fail on demand.
 *
 * The fault-injection test binary links libtapio's objects with their calls
 * to these functions renamed (objcopy --redefine-syms, see faults.syms) to
 * the wrappers in faults.c, so only libtapio's own calls are counted and
 * failed: the test's code, OpenSSL, libc and the sanitizers' runtimes call
 * the real functions. Nothing of this is in the released library.
 *
 * fault_arm(call, n, err) makes the n-th call (1-based) of `call` made from
 * now on fail with errno `err` (a NULL return for the allocators); every
 * other call goes through. fault_disarm() ends the scope and tells whether
 * the fault fired.
 */
#ifndef TAPIO_TEST_FAULTS_H
#define TAPIO_TEST_FAULTS_H

#include <stdbool.h>

typedef enum fault_call {
    FAULT_ACCEPT4,
    FAULT_READ,
    FAULT_WRITE,
    FAULT_WRITEV,
    FAULT_SEND,
    FAULT_SENDMSG,
    FAULT_RECVFROM,
    FAULT_SENDTO,
    FAULT_SENDFILE,
    FAULT_SPLICE,
    FAULT_SOCKET,
    FAULT_SOCKETPAIR,
    FAULT_CONNECT,
    FAULT_PIPE2,
    FAULT_EVENTFD,
    FAULT_PIDFD_OPEN, /* syscall(SYS_pidfd_open, ...) */
    FAULT_EPOLL_CTL,
    FAULT_MALLOC,
    FAULT_CALLOC,
    FAULT_REALLOC,
    FAULT_STRDUP,
    FAULT_POSIX_SPAWN, /* returns the error instead of setting errno */
    FAULT_URING_INIT,  /* io_uring_queue_init_params: returns -errno */
    /* A multishot receive with a length, refused as kernels before the
     * per-wakeup cap refuse it: counted and rewritten, as the ring's
     * queue goes to the kernel, into a request that completes with
     * -errno. */
    FAULT_URING_RECV_MULTISHOT,
    /* The same request with its total cap ignored (sent without it), as a
     * kernel that took the length but not the total would. */
    FAULT_URING_RECV_TOTAL,
    /* A single receive request (counted, never failed). */
    FAULT_URING_RECV_SINGLE,
    FAULT_COUNT
} fault_call;

const char *fault_name(fault_call call);

/* Fail the n-th call of `call` from now on with errno `err`. */
void fault_arm(fault_call call, unsigned n, int err);
/* Stop counting; true if the armed call failed. */
bool fault_disarm(void);
/* Calls of `call` libtapio made since fault_arm (counted while armed). */
unsigned fault_calls(fault_call call);

#endif
