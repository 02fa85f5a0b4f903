/* The small header every module shares: branch hints, the cache-line size, and
 * the error codes (through hypha.h). Nothing here allocates or has state. */
#ifndef HY_COMMON_H
#define HY_COMMON_H

#include "hypha.h"

#define HY_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HY_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* x86-64 and most arm64 parts; used to keep hot atomics from false sharing. */
#define HY_CACHE_LINE 64
#define HY_CACHE_ALIGNED _Alignas(HY_CACHE_LINE)

#define HY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Set the thread's error detail (printf format) and return err, so a failing
 * path reads: return hyi_fail(HY_EBADPATTERN, "...", ...). */
int hyi_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
