/* What every layer shares: branch hints, the cache-line size, array length,
 * error reporting (hyi_fail), a hash for short keys, and the small helpers
 * that several modules would otherwise each write. Nothing here knows of
 * actors, routes or journals, and nothing here includes a header outside
 * base/: the error codes a caller passes to hyi_fail come from the public
 * header, which each layer includes itself. */
#ifndef HY_COMMON_H
#define HY_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HY_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HY_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* x86-64 and most arm64 parts; used to keep hot atomics from false sharing. */
#define HY_CACHE_LINE 64
#define HY_CACHE_ALIGNED _Alignas(HY_CACHE_LINE)

#define HY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Set the thread's error detail (printf format) and return err, so a failing
 * path reads: return hyi_fail(HY_EBADPATTERN, "...", ...). (base/error.c) */
int hyi_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's detail text: "" until its first hyi_fail. */
const char *hyi_errdetail(void);

/* FNV-1a, 64-bit: hyi_fnv1a(HYI_FNV1A_SEED, bytes, n), or chained over
 * several pieces by passing the previous result as h. */
#define HYI_FNV1A_SEED 0xcbf29ce484222325ull
static inline uint64_t hyi_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Backward-shift deletion in a linear-probing table: with a hole at slot i,
 * may the entry at slot j (later in the same run, cyclically) whose home slot
 * is home move into it? Only when its home is not in the cyclic (i, j]:
 * otherwise a probe for it, which starts at home, would no longer pass i. */
static inline bool hyi_probe_may_move(size_t home, size_t i, size_t j)
{
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    return !stays;
}

/* An array arr of *cap elements of elem bytes, grown to hold at least need:
 * doubled from first (or *cap) until it does. Returns the array to use from
 * now on, or NULL when the allocation failed (arr and *cap are then
 * unchanged). */
static inline void *hyi_grow_array(void *arr, size_t *cap, size_t need, size_t elem,
                                   size_t first)
{
    if (arr && need <= *cap)
        return arr;
    size_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    void *p = realloc(arr, n * elem);
    if (p)
        *cap = n;
    return p;
}

/* qsort's comparison of two uint32_t. */
static inline int hyi_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* A statistics counter's value. relaxed: counters are a moment's
 * approximation by contract; nothing is ordered by reading one. */
static inline uint64_t hyi_stat_load(_Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

/* memcpy of a few dozen bytes (a path, a small payload) without the library
 * call, which costs more than the copy at these sizes: whole words, the last
 * one overlapping, so nothing outside [src, src + n) is read or outside
 * [dst, dst + n) written. The regions must not overlap. */
#define HYI_COPY_SHORT_MAX 64
static inline __attribute__((always_inline)) void hyi_copy_short(void *restrict dst,
                                                                 const void *restrict src,
                                                                 size_t n)
{
    if (HY_UNLIKELY(n < 8 || n > HYI_COPY_SHORT_MAX)) {
        memcpy(dst, src, n);
        return;
    }
    char *d = dst;
    const char *s = src;
    if (n <= 16) { /* two words, overlapping when n < 16 */
        uint64_t a, b;
        __builtin_memcpy(&a, s, 8);
        __builtin_memcpy(&b, s + n - 8, 8);
        __builtin_memcpy(d, &a, 8);
        __builtin_memcpy(d + n - 8, &b, 8);
        return;
    }
    /* 16 bytes at a time (one vector register each), the last overlapping */
    typedef char v16 __attribute__((vector_size(16)));
    v16 w;
    for (size_t i = 0; i + 16 < n; i += 16) {
        __builtin_memcpy(&w, s + i, 16);
        /* keeps the compiler from turning the loop back into a call */
#if defined(__x86_64__) || defined(__i386__)
        __asm__("" : "+x"(w));
#elif defined(__aarch64__)
        __asm__("" : "+w"(w));
#else
        __asm__("" : : "r"(&w) : "memory");
#endif
        __builtin_memcpy(d + i, &w, 16);
    }
    __builtin_memcpy(&w, s + n - 16, 16);
    __builtin_memcpy(d + n - 16, &w, 16);
}

#endif
