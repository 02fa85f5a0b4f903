/* Converting TSC ticks to ns (see clock.h). Out of line: it divides in
 * floating point and runs only when statistics are read. */
#include "clock.h"

uint64_t hyi_ticks_ns(const hyi_clock_origin *origin, uint64_t ticks)
{
#if defined(__x86_64__) || defined(__i386__)
    uint64_t now_ticks = hyi_clock_ticks(), now_ns = hyi_now_ns();
    if (now_ticks <= origin->ticks)
        return now_ns;
    double ns_per_tick =
            (double)(now_ns - origin->ns) / (double)(now_ticks - origin->ticks);
    double back = (double)(now_ticks - ticks) * ns_per_tick;
    return ticks <= now_ticks && back < (double)now_ns ? now_ns - (uint64_t)back : now_ns;
#else
    (void)origin;
    return ticks;
#endif
}
