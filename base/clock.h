/* The one clock every layer uses.
 *
 * Three readings, by cost and resolution:
 *   hyi_now_ns       CLOCK_MONOTONIC in ns: deadlines and waits (a vDSO call)
 *   hyi_coarse_ns    CLOCK_MONOTONIC_COARSE in ns: resolution the system tick
 *                    (a few ms) for a few ns; message send stamps and ages
 *   hyi_clock_ticks  the TSC where there is one: short intervals measured on
 *                    one thread (activation latency); hyi_ticks_ns converts
 * and hyi_cpu_relax, one round of a spin-wait; hyi_clock_read_ns reads any
 * other clock (a thread's CPU time, for statistics). */
#ifndef HY_CLOCK_H
#define HY_CLOCK_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t hyi_timespec_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

/* clock in ns; 0 when it cannot be read (a thread's clock after it ended). */
static inline uint64_t hyi_clock_read_ns(clockid_t clock)
{
    struct timespec ts;
    return clock_gettime(clock, &ts) == 0 ? hyi_timespec_ns(&ts) : 0;
}

static inline uint64_t hyi_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return hyi_timespec_ns(&ts);
}

/* A fine clock read on every send (TSC or CLOCK_MONOTONIC) cost about a third
 * of single-sender throughput on the machine the benches run on; this one
 * costs a few ns. */
static inline uint64_t hyi_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return hyi_timespec_ns(&ts);
}

/* The deadline timeout_ms from now; a negative timeout never comes. */
static inline uint64_t hyi_deadline_ns(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : hyi_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static inline uint64_t hyi_clock_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return hyi_now_ns();
#endif
}

/* A pair of readings taken together, from which later ticks convert to ns. */
typedef struct hyi_clock_origin {
    uint64_t ticks;
    uint64_t ns;
} hyi_clock_origin;

static inline void hyi_clock_origin_take(hyi_clock_origin *o)
{
    o->ticks = hyi_clock_ticks();
    o->ns = hyi_now_ns();
}

/* Ticks to CLOCK_MONOTONIC ns, calibrated between the origin and a pair taken
 * now: no start-up calibration delay, and the longer since the origin, the
 * better the ratio. (base/clock.c) */
uint64_t hyi_ticks_ns(const hyi_clock_origin *origin, uint64_t ticks);

/* One round of a spin-wait: tells the core (and a hyperthread sibling) that
 * this thread is waiting. */
static inline void hyi_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    sched_yield();
#endif
}

#endif
