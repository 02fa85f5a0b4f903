/* Futex wait and wake on a 32-bit atomic: the kernel's only blocking primitive
 * (idle workers, hy_ask waiters). Private futexes: the words never leave the
 * process. */
#ifndef HY_FUTEX_H
#define HY_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleep while *addr == expected, at most timeout (NULL: no limit). Returns on
 * a wake, a change, a signal or the timeout: callers re-check their condition. */
static inline void hyi_futex_wait(_Atomic uint32_t *addr, uint32_t expected,
                                  const struct timespec *timeout)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, timeout, NULL, 0);
}

static inline void hyi_futex_wake(_Atomic uint32_t *addr, int count)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

#endif
