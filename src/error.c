/* Error names. */
#include "internal.h"

#include <netdb.h>
#include <string.h>

/* glibc's EAI_* codes run from -1 to about -105. */
#define EAI_SPAN 200

bool tapio_error_is_eai(int err)
{
    return err <= TAPIO_EAI_BASE && err > TAPIO_EAI_BASE - EAI_SPAN;
}

int tapio_error_eai(int err)
{
    return tapio_error_is_eai(err) ? err - TAPIO_EAI_BASE : 0;
}

const char *tapio_strerror(int err)
{
    if (err == 0)
        return "Success";
    if (tapio_error_is_eai(err))
        return gai_strerror(tapio_error_eai(err));
    if (err == TAPIO_ETLS)
        return "TLS protocol error";
    if (err == TAPIO_ETLS_VERIFY)
        return "TLS certificate verify failed";
    /* strerror's table is static in glibc; the returned text never changes. */
    return strerror(err < 0 ? -err : err);
}
