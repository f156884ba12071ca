/* A program outside the tapio tree, built against an installed libtapio:
 * a loop whose only callback stops it. Prints the library's version. */
#include <stdio.h>
#include <string.h>
#include <tapio.h>

static void stop(tapio_loop *loop, void *arg)
{
    *(int *)arg = 1;
    tapio_loop_stop(loop);
}

int main(void)
{
    tapio_loop *loop;
    int stopped = 0;
    if (tapio_loop_new(&loop) != 0 || !tapio_call_soon(loop, stop, &stopped))
        return 1;
    if (tapio_loop_run_forever(loop) != 0 || !stopped || tapio_loop_close(loop) != 0)
        return 1;
    /* The library it runs with is the one whose header it was built with. */
    if (strcmp(tapio_version(), TAPIO_VERSION) != 0)
        return 1;
    printf("tapio %s: the loop ran and stopped\n", tapio_version());
    return 0;
}
