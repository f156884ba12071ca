/* Forks: what a child inherits of a loop. An epoll set or an io_uring ring
 * is kernel state the fork shares between parent and child, so a backend
 * changing it in the child would change the parent's loop: a child that
 * uses its loop makes its own first (each backend compares the count of
 * forks below with the one it was made under). */
#include "internal.h"

#include <pthread.h>

atomic_uint tapio__child_forks;
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void count_fork_in_child(void)
{
    atomic_fetch_add(&tapio__child_forks, 1);
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, count_fork_in_child);
}

void tapio__watch_forks(void)
{
    pthread_once(&fork_watch, watch_forks);
}
