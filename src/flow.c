/* Write flow control: the one object every transport kind (stream, pipe,
 * datagram, TLS face) uses for its limits and its paused state, and the
 * one place asyncio's rule for set_write_buffer_limits lives. */
#include "internal.h"

#include <limits.h>
#include <stdint.h>

#define FLOW_SSIZE_MIN (-SSIZE_MAX - 1)

/* asyncio's low = high // 4: floor division, also for negative values (so
 * that the ValueError names the numbers asyncio names). */
static ssize_t floor_quarter(ssize_t high)
{
    return high / 4 - (high < 0 && high % 4 != 0);
}

/* asyncio's high = 4 * low, saturated: Python's integers do not overflow,
 * a ssize_t does (low = 2**61). */
static ssize_t times_four(ssize_t low)
{
    if (low > SSIZE_MAX / 4)
        return SSIZE_MAX;
    if (low < FLOW_SSIZE_MIN / 4)
        return FLOW_SSIZE_MIN;
    return 4 * low;
}

int tapio_write_limits_check(bool has_high, ssize_t high, bool has_low,
                             ssize_t low, ssize_t *out_high, ssize_t *out_low)
{
    if (!has_high)
        high = has_low ? times_four(low) : 0; /* 0: the kind's default */
    if (!has_low)
        low = floor_quarter(high);
    if (out_high)
        *out_high = high;
    if (out_low)
        *out_low = low;
    return high >= low && low >= 0 ? 0 : -EINVAL;
}

void tapio__flow_init(tapio__flow *f, size_t default_high,
                      bool pause_at_high)
{
    f->default_high = default_high;
    f->high = default_high;
    f->low = default_high / 4;
    f->paused = false;
    f->pause_at_high = pause_at_high;
}

int tapio__flow_set(tapio__flow *f, ssize_t high, ssize_t low)
{
    bool has_high = high >= 0, has_low = low >= 0;
    if (!has_high && !has_low) {
        f->high = f->default_high;
        f->low = f->default_high / 4;
        return 0;
    }
    if (!has_high) { /* 4 * low fits a size_t up to low = 2**62 - 1 */
        f->high = (size_t)low > SIZE_MAX / 4 ? SIZE_MAX : 4 * (size_t)low;
        f->low = (size_t)low;
        return 0;
    }
    ssize_t h, l;
    if (tapio_write_limits_check(has_high, high, has_low, low, &h, &l))
        return -EINVAL;
    f->high = (size_t)h;
    f->low = (size_t)l;
    return 0;
}
