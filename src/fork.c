/* Forks: what a child inherits of a loop. An epoll set or an io_uring ring
 * is kernel state the fork shares between parent and child, so a backend
 * changing it in the child would change the parent's loop: a child that
 * uses its loop makes its own first (each backend checks the count of
 * forks below against the one it was made under). */
#include "internal.h"

#include <pthread.h>

static atomic_uint forks_in_child;
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void count_fork_in_child(void)
{
    atomic_fetch_add(&forks_in_child, 1);
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, count_fork_in_child);
}

unsigned tapio__forks_in_child(void)
{
    pthread_once(&fork_watch, watch_forks);
    return atomic_load_explicit(&forks_in_child, memory_order_relaxed);
}
