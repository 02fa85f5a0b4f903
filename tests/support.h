/* What several test programs share: a monotonic clock, bounded waits, gates
 * that hold a handler until the test opens them, and whether a sanitizer is on
 * (stress sizes shrink under one). Header-only, since each test program is a
 * single .c file. Every wait is bounded (WAIT_MS), so a bug fails a test
 * instead of hanging it. */
#ifndef HY_TEST_SUPPORT_H
#define HY_TEST_SUPPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Resident memory of this process, in bytes (0 if /proc is unreadable). */
static inline uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Wait until *v >= want, at most WAIT_MS; false if it never got there. */
static inline bool wait_for(_Atomic int *v, int want)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (atomic_load(v) < want) {
        if (mono_ns() > deadline)
            return false;
        usleep(200);
    }
    return true;
}

/* wait_for for a 64-bit counter. */
static inline bool wait_for_u64(_Atomic uint64_t *v, uint64_t want)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (atomic_load(v) < want) {
        if (mono_ns() > deadline)
            return false;
        usleep(200);
    }
    return true;
}

/* A handler stops at a gate until the test opens it (or WAIT_MS passes). */
typedef struct gate {
    _Atomic int entered;
    _Atomic int open;
} gate;

static inline void gate_pass(gate *g)
{
    atomic_fetch_add(&g->entered, 1);
    wait_for(&g->open, 1);
}

static inline void gate_open(gate *g)
{
    atomic_store(&g->open, 1);
}

/* A key of decimal digits as a number below limit (at most max_digits of
 * them), or -1: tests whose keyed actors are numbered. */
static inline int key_number(const char *key, size_t len, size_t max_digits, int limit)
{
    int n = 0;
    if (!key || len == 0 || len > max_digits)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9')
            return -1;
        n = n * 10 + (key[i] - '0');
    }
    return n < limit ? n : -1;
}

/* state_save and state_load for a state that is one block of `size` bytes:
 * saved and loaded as a copy; a load of any other length is refused. */
static inline int state_save_copy(const void *state, size_t size, void **bytes, size_t *len)
{
    if (!(*bytes = malloc(size)))
        return -1;
    memcpy(*bytes, state, size);
    *len = size;
    return 0;
}

static inline int state_load_copy(const void *bytes, size_t len, size_t size, void **state)
{
    if (len != size || !(*state = malloc(size)))
        return -1;
    memcpy(*state, bytes, size);
    return 0;
}

/* The four state callbacks of a subsystem whose actor state is one int64_t
 * starting at 0 (a counter, an order total). */
static inline int i64_state_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(int64_t));
    return *state ? 0 : -1;
}

static inline void i64_state_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static inline int i64_state_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    return state_save_copy(state, sizeof(int64_t), bytes, len);
}

static inline int i64_state_load(void *udata, const char *key, size_t key_len, const void *bytes,
                                 size_t len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    return state_load_copy(bytes, len, sizeof(int64_t), state);
}

#endif
