/* Write flow control limits, shared by every transport kind. */
#include "internal.h"

int tapio__flow_limits(ssize_t high, ssize_t low, size_t default_high,
                       size_t *out_high, size_t *out_low)
{
    /* asyncio's rules: high defaults to the transport's default (or
     * 4 * low), low to high / 4; high >= low >= 0 must hold. */
    if (high < 0)
        high = low < 0 ? (ssize_t)default_high : 4 * low;
    if (low < 0)
        low = high / 4;
    if (!(high >= low && low >= 0))
        return -EINVAL;
    *out_high = (size_t)high;
    *out_low = (size_t)low;
    return 0;
}
