/* The library's version, for programs that link it dynamically. */
#include "internal.h"

const char *tapio_version(void)
{
    return TAPIO_VERSION;
}
