/* Error names. */
#include "internal.h"

#include <string.h>

const char *tapio_strerror(int err)
{
    if (err == 0)
        return "Success";
    /* strerror's table is static in glibc; the returned text never changes. */
    return strerror(err < 0 ? -err : err);
}
