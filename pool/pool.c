/* The slab object pool (contract in pool.h).
 *
 * What. Seven size classes, 64..4096 usable bytes (powers of two). Every object
 * has a 16-byte header in front of it (state, pool tag, class, usable size), so
 * release needs no lookup and debug builds can catch double and foreign releases.
 * Objects are carved from 64 KiB slabs; requests above 4096 bytes (up to
 * HYI_POOL_MAX_OBJECT) are single allocations from the allocator (jemalloc in the
 * normal build, the system malloc under HY_POOL_SYSTEM_ALLOC), kept on a list so
 * destroy can free them. Slab and large bytes count against the cap.
 *
 * How the fast path stays lock-free: magazines, after Bonwick (Solaris' kmem,
 * the Pony runtime's pool, jemalloc's tcache bins). Each thread has, per pool and
 * per class, a stack of up to 2 x M free pointers (M = 64 for small classes).
 * Acquire pops, release pushes: no lock, no atomic read-modify-write, and no
 * pointer chasing through object memory, so a batch of objects that arrives from
 * another core does not serialise its cache misses. When the stack runs dry, the
 * thread takes one full magazine (M pointers) from the class's depot; when it
 * overflows, it moves its M oldest pointers into a magazine on the depot. One
 * mutex acquisition per magazine, so the producer/consumer pattern (one thread
 * acquires, another releases) costs one lock per side per M objects, and the
 * hysteresis (refill to M, flush at 2M) keeps a thread from bouncing on the
 * boundary. Fresh objects are handed to a thread as a range (M objects' worth)
 * that it carves without the lock, which also keeps `created` exact.
 *
 * Thread caches and pool lifetime. A thread finds its cache for a pool through a
 * one-entry TLS memo keyed by the pool's id, then a small per-thread table. Pool
 * ids come from a process-wide counter and are never reused, so a stale entry for
 * a destroyed pool never matches and is never dereferenced. The pool owns its
 * thread caches (destroy frees them); a pthread key destructor flushes a thread's
 * caches back into the depots at thread exit, under the registry lock, and only
 * for pools still registered, so it cannot race with hyi_pool_destroy.
 *
 * Stats. Each cache counts created/reused/released in counters only its thread
 * writes (a relaxed load and store: plain movs). Readers sum them under the
 * pool's thread-list lock; exited threads' counts are folded into the pool.
 * Peak in-use is sampled whenever a thread goes to a depot and on every stats
 * call, so it may miss a short spike by up to two magazines per thread.
 *
 * Trade-offs. Per-thread caches hold up to 2 x 64 objects per class (fewer for
 * big classes: 32 KiB of objects per magazine) and take 7.5 KiB of pointer
 * arrays per (thread, pool), so memory sits idle in caches of
 * idle threads. Slabs go back to the allocator only when hyi_pool_trim finds
 * all of a slab's objects free in the depot (a burst's slabs, once it has
 * passed): a message kernel's working set is steady, and the cap bounds it. The 16-byte
 * header costs 25% on a 64-byte object; it buys O(1) release and the checks.
 *
 * Sanitizers. Under ASan, free objects (cached or not yet carved) are poisoned,
 * so a use after release is reported. Under TSan the same code runs; the depot
 * mutexes give TSan the happens-before edges for objects that change threads. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "pool.h"

#include "poison.h"

#define NCLASS 7
#define MIN_SHIFT 6                     /* class 0 holds 64 bytes */
#define MAX_SMALL ((size_t)64 << (NCLASS - 1))
#define SLAB_BYTES ((size_t)64 * 1024)
#define SLAB_HEAD 64                    /* slab header, keeps objects aligned */
#define MAG_SLOTS 64
#define MAG_BYTES_TARGET 32768          /* a magazine holds about this much */
#define CLASS_LARGE 0xffffu

#define ST_LIVE 0x4556494cu /* "LIVE" */
#define ST_FREE 0x45455246u /* "FREE" */

/* The header in front of every object. For small objects only `state` changes
 * after carving; cls, tag and size are written once. 16 bytes keep the object
 * 16-byte aligned. */
typedef struct objhdr {
    uint32_t state; /* ST_LIVE or ST_FREE (checked without NDEBUG) */
    uint32_t tag;   /* low 32 bits of the owning pool's id */
    uint32_t cls;   /* size class, or CLASS_LARGE */
    uint32_t size;  /* usable bytes */
} objhdr;

_Static_assert(sizeof(objhdr) == 16, "object header must keep 16-byte alignment");

/* A large object: this, then its objhdr, then the object. */
typedef struct large_hdr {
    struct large_hdr *prev, *next; /* the pool's list, under large_lock */
    size_t bytes;                  /* whole block, as counted in bytes_reserved */
    size_t pad;
} large_hdr;

_Static_assert(sizeof(large_hdr) % 16 == 0, "large header must keep alignment");

typedef struct slab {
    struct slab *next;
} slab;

/* A magazine: a batch of free objects (pointers to their headers) in a depot. */
typedef struct mag {
    struct mag *next; /* depot list link */
    uint32_t n;
    objhdr *slot[MAG_SLOTS];
} mag;

/* A range of uncarved objects handed back by an exiting thread; the node lives
 * in the range's own first bytes. */
typedef struct range {
    struct range *next;
    char *end;
} range;

/* Per class: the shared side. Everything here is under `lock`. */
typedef struct depot {
    HY_CACHE_ALIGNED pthread_mutex_t lock;
    mag *full;         /* magazines with objects (possibly partial) */
    mag *empty;        /* magazines with none */
    slab *slabs;       /* every slab of this class, for destroy */
    char *bump, *end;  /* the uncarved rest of the newest slab */
    range *ranges;     /* uncarved ranges returned by exiting threads */
    objhdr *orphans;   /* objects released when no magazine could be had (OOM) */
    uint32_t usable, stride, mag_cap;
} depot;

/* Per class: one thread's side. Only the owning thread touches it. */
typedef struct tc_class {
    uint32_t n, max;  /* objects in slot[]; max = 2 x the class's magazine size */
    char *bump, *end; /* fresh objects reserved for this thread */
    objhdr *slot[2 * MAG_SLOTS];
} tc_class;

/* One thread's cache for one pool. Owned by the pool, used by one thread. */
typedef struct tcache {
    tc_class cls[NCLASS];
    /* Written only by the owning thread, read by stats. */
    _Atomic uint64_t created, reused, released;
    struct tcache *next, *prev; /* the pool's list, under threads_lock */
} tcache;

struct hyi_pool {
    uint64_t id;
    uint32_t tag;
    uint64_t live_word; /* a live object's state and tag, as release reads them */
    size_t cap;
    struct hyi_pool *reg_next; /* the registry, under registry_lock */

    HY_CACHE_ALIGNED _Atomic uint64_t bytes_reserved;
    _Atomic uint64_t peak;

    HY_CACHE_ALIGNED pthread_mutex_t threads_lock;
    tcache *threads;
    /* Counts of exited threads and of cacheless (OOM) paths. */
    _Atomic uint64_t ret_created, ret_reused, ret_released;

    pthread_mutex_t large_lock;
    large_hdr *large;

    depot depot[NCLASS];
};

/* ------------------------------------------------------------------ registry */

/* Live pools, so a thread-exit destructor can tell whether a pool named in its
 * table still exists. Pool ids are handed out here and never reused. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static hyi_pool *registry;
static uint64_t registry_next_id = 1;

static hyi_pool *registry_find(uint64_t id)
{
    for (hyi_pool *p = registry; p; p = p->reg_next)
        if (p->id == id)
            return p;
    return NULL;
}

/* ------------------------------------------------------------------ helpers */

__attribute__((noreturn, cold, format(printf, 1, 2))) static void die(const char *fmt, ...);

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hypha pool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static inline unsigned size_class(size_t size)
{
    if (size <= ((size_t)1 << MIN_SHIFT))
        return 0;
    return (unsigned)(64 - __builtin_clzll((unsigned long long)size - 1)) - MIN_SHIFT;
}

static inline objhdr *hdr_of(const void *obj)
{
    return (objhdr *)obj - 1;
}

/* Owner-only counter: a relaxed load and store compile to plain movs (no RMW);
 * relaxed suffices because readers only sum counters and tolerate lag. */
static inline void count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Reserve bytes against the cap. Relaxed: the counter publishes no other memory;
 * the CAS alone makes check-and-add atomic. */
static bool reserve(hyi_pool *p, size_t bytes)
{
    uint64_t cur = atomic_load_explicit(&p->bytes_reserved, memory_order_relaxed);
    do {
        if (p->cap && cur + bytes > p->cap)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->bytes_reserved, &cur, cur + bytes,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void unreserve(hyi_pool *p, size_t bytes)
{
    /* Relaxed: a plain counter; see reserve. */
    atomic_fetch_sub_explicit(&p->bytes_reserved, bytes, memory_order_relaxed);
}

/* Slabs and large objects come from here. The normal build links jemalloc, which
 * replaces malloc, so this is jemalloc; under HY_POOL_SYSTEM_ALLOC (sanitizer
 * builds) it is the system allocator, which the sanitizer intercepts. */
static void *block_alloc(size_t bytes)
{
#ifdef HY_POOL_SYSTEM_ALLOC
    return malloc(bytes);
#else
    size_t rounded = (bytes + HY_CACHE_LINE - 1) & ~(size_t)(HY_CACHE_LINE - 1);
    return aligned_alloc(HY_CACHE_LINE, rounded);
#endif
}

static mag *mag_new(void)
{
    mag *m = malloc(sizeof *m);
    if (m) {
        m->next = NULL;
        m->n = 0;
    }
    return m;
}

static void mag_free_list(mag *m)
{
    while (m) {
        mag *next = m->next;
        free(m);
        m = next;
    }
}

/* ------------------------------------------------------------------ stats */

/* Sum of every cache's counters plus exited threads'. Caller holds threads_lock.
 * Relaxed loads: each counter is read once; the sum is a snapshot that may lag. */
static void sum_counts(hyi_pool *p, uint64_t *created, uint64_t *reused, uint64_t *released)
{
    uint64_t c = atomic_load_explicit(&p->ret_created, memory_order_relaxed);
    uint64_t u = atomic_load_explicit(&p->ret_reused, memory_order_relaxed);
    uint64_t r = atomic_load_explicit(&p->ret_released, memory_order_relaxed);
    for (tcache *tc = p->threads; tc; tc = tc->next) {
        c += atomic_load_explicit(&tc->created, memory_order_relaxed);
        u += atomic_load_explicit(&tc->reused, memory_order_relaxed);
        r += atomic_load_explicit(&tc->released, memory_order_relaxed);
    }
    *created = c;
    *reused = u;
    *released = r;
}

static uint64_t note_peak(hyi_pool *p, uint64_t in_use)
{
    /* Relaxed max via CAS: the peak is a statistic that guards no memory. */
    uint64_t cur = atomic_load_explicit(&p->peak, memory_order_relaxed);
    while (in_use > cur &&
           !atomic_compare_exchange_weak_explicit(&p->peak, &cur, in_use,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return in_use > cur ? in_use : cur;
}

static void sample_peak(hyi_pool *p)
{
    uint64_t c, u, r;
    pthread_mutex_lock(&p->threads_lock);
    sum_counts(p, &c, &u, &r);
    pthread_mutex_unlock(&p->threads_lock);
    if (c + u > r)
        note_peak(p, c + u - r);
}

void hyi_pool_get_stats(hyi_pool *pool, hyi_pool_stats *out)
{
    uint64_t c, u, r;
    pthread_mutex_lock(&pool->threads_lock);
    sum_counts(pool, &c, &u, &r);
    pthread_mutex_unlock(&pool->threads_lock);
    out->created = c;
    out->reused = u;
    out->in_use = c + u > r ? c + u - r : 0; /* counters read apart may cross */
    out->peak_in_use = note_peak(pool, out->in_use);
    /* Relaxed: a statistic. */
    out->bytes_reserved = atomic_load_explicit(&pool->bytes_reserved, memory_order_relaxed);
    out->reuse_rate = c + u ? (double)u / (double)(c + u) : 0.0;
}

/* ------------------------------------------------------------------ thread caches */

typedef struct tls_entry {
    uint64_t id;
    tcache *tc;
} tls_entry;

typedef struct tls_table {
    uint32_t n, cap;
    tls_entry e[];
} tls_table;

/* Initial-exec: one TLS access with no call, like jemalloc's own tcache. */
#define POOL_TLS __thread __attribute__((tls_model("initial-exec")))
static POOL_TLS tls_entry tls_last; /* the last pool this thread used */
static POOL_TLS tls_table *tls_tab;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tc_retire(hyi_pool *p, tcache *tc);
static bool depot_put(depot *d, tc_class *cc, uint32_t k);
static void release_orphan(hyi_pool *p, unsigned c, objhdr *h);

/* Thread exit: give every cache of a live pool back to it. The registry lock
 * keeps hyi_pool_destroy from freeing a pool while we flush into it. */
static void tls_destructor(void *arg)
{
    tls_table *t = arg;
    pthread_mutex_lock(&registry_lock);
    for (uint32_t i = 0; i < t->n; i++) {
        hyi_pool *p = registry_find(t->e[i].id);
        if (p)
            tc_retire(p, t->e[i].tc);
    }
    pthread_mutex_unlock(&registry_lock);
    free(t);
    tls_tab = NULL;
    tls_last = (tls_entry){0, NULL};
}

static void tls_make_key(void)
{
    if (pthread_key_create(&tls_key, tls_destructor) != 0)
        die("pthread_key_create failed");
}

/* The first use of a pool by this thread, or a pool not in the memo. */
static __attribute__((noinline)) tcache *tc_get_slow(hyi_pool *p)
{
    tls_table *t = tls_tab;
    if (t) {
        for (uint32_t i = 0; i < t->n; i++) {
            if (t->e[i].id == p->id) {
                tls_last = t->e[i];
                return tls_last.tc;
            }
        }
    }
    pthread_once(&tls_once, tls_make_key);
    tcache *tc = calloc(1, sizeof *tc);
    if (!tc)
        return NULL;
    for (unsigned c = 0; c < NCLASS; c++)
        tc->cls[c].max = 2 * p->depot[c].mag_cap;

    pthread_mutex_lock(&registry_lock);
    if (t) { /* drop entries of destroyed pools (their caches are already freed) */
        uint32_t k = 0;
        for (uint32_t i = 0; i < t->n; i++)
            if (registry_find(t->e[i].id))
                t->e[k++] = t->e[i];
        t->n = k;
    }
    if (!t || t->n == t->cap) {
        uint32_t cap = t ? t->cap * 2 : 4;
        tls_table *nt = realloc(t, sizeof *nt + cap * sizeof nt->e[0]);
        if (!nt) {
            pthread_mutex_unlock(&registry_lock);
            free(tc);
            return NULL;
        }
        if (!t)
            nt->n = 0;
        nt->cap = cap;
        t = tls_tab = nt;
    }
    t->e[t->n++] = (tls_entry){p->id, tc};
    pthread_mutex_lock(&p->threads_lock);
    tc->next = p->threads;
    if (p->threads)
        p->threads->prev = tc;
    p->threads = tc;
    pthread_mutex_unlock(&p->threads_lock);
    pthread_mutex_unlock(&registry_lock);

    pthread_setspecific(tls_key, t);
    tls_last = (tls_entry){p->id, tc};
    return tc;
}

static inline tcache *tc_get(hyi_pool *p)
{
    if (HY_LIKELY(tls_last.id == p->id))
        return tls_last.tc;
    return tc_get_slow(p);
}

/* Move the free objects of one thread's class cache to the depot. */
static void tc_flush_class(hyi_pool *p, tc_class *cc, unsigned c)
{
    depot *d = &p->depot[c];
    while (cc->n) { /* whole magazines, or orphans if none can be had */
        uint32_t k = cc->n < d->mag_cap ? cc->n : d->mag_cap;
        if (!depot_put(d, cc, k)) {
            while (cc->n)
                release_orphan(p, c, cc->slot[--cc->n]);
        }
    }
}

/* Flush one thread's cache into the pool and free it. Caller holds registry_lock
 * (so the pool is alive); takes each depot lock, then threads_lock, never nested. */
static void tc_retire(hyi_pool *p, tcache *tc)
{
    for (unsigned c = 0; c < NCLASS; c++) {
        tc_class *cc = &tc->cls[c];
        depot *d = &p->depot[c];
        tc_flush_class(p, cc, c);
        pthread_mutex_lock(&d->lock);
        if (cc->bump < cc->end) { /* uncarved objects: keep them uncarved */
            range *r = (range *)cc->bump;
            UNPOISON(r, sizeof *r);
            r->next = d->ranges;
            r->end = cc->end;
            d->ranges = r;
        }
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_lock(&p->threads_lock);
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        p->threads = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    /* Relaxed: these counters guard no memory; the lock orders them against
     * stats readers anyway. */
    memory_order rx = memory_order_relaxed;
    atomic_fetch_add_explicit(&p->ret_created, atomic_load_explicit(&tc->created, rx), rx);
    atomic_fetch_add_explicit(&p->ret_reused, atomic_load_explicit(&tc->reused, rx), rx);
    atomic_fetch_add_explicit(&p->ret_released, atomic_load_explicit(&tc->released, rx), rx);
    pthread_mutex_unlock(&p->threads_lock);
    free(tc);
}

/* ------------------------------------------------------------------ depots */

/* Give the thread a range of fresh objects (one magazine's worth). Caller holds
 * d->lock. Returns false when the cap or the allocator refuses a new slab. */
static bool depot_take_range(hyi_pool *p, depot *d, tc_class *cc)
{
    size_t want = (size_t)d->mag_cap * d->stride;
    if (d->ranges) {
        range *r = d->ranges;
        d->ranges = r->next;
        cc->bump = (char *)r;
        cc->end = r->end;
        POISON(r, sizeof *r);
        return true;
    }
    if (d->bump == d->end) {
        if (!reserve(p, SLAB_BYTES))
            return false;
        slab *s = block_alloc(SLAB_BYTES);
        if (!s) {
            unreserve(p, SLAB_BYTES);
            return false;
        }
        s->next = d->slabs;
        d->slabs = s;
        d->bump = (char *)s + SLAB_HEAD;
        size_t nobj = (SLAB_BYTES - SLAB_HEAD) / d->stride;
        d->end = d->bump + nobj * d->stride;
        POISON(d->bump, (size_t)(d->end - d->bump));
    }
    size_t have = (size_t)(d->end - d->bump);
    size_t take = have < want ? have : want;
    cc->bump = d->bump;
    cc->end = d->bump + take;
    d->bump += take;
    return true;
}

/* A fresh object from the thread's range: write its header once. */
static inline objhdr *carve(hyi_pool *p, unsigned c, tc_class *cc)
{
    depot *d = &p->depot[c];
    objhdr *h = (objhdr *)cc->bump;
    cc->bump += d->stride;
    UNPOISON(h, sizeof *h);
    h->tag = p->tag;
    h->cls = c;
    h->size = d->usable;
    return h;
}

/* ------------------------------------------------------------------ acquire */

#ifndef NDEBUG
#define MARK(h, st) ((h)->state = (st))
#else
#define MARK(h, st) ((void)(h))
#endif

static __attribute__((noinline)) objhdr *acquire_slow(hyi_pool *p, tcache *tc, unsigned c)
{
    tc_class *cc = &tc->cls[c];
    depot *d = &p->depot[c];
    objhdr *h;

    if (cc->bump < cc->end) {
        count(&tc->created);
        return carve(p, c, cc);
    }

    pthread_mutex_lock(&d->lock);
    if (d->full) { /* empty a full magazine into our stack */
        mag *m = d->full;
        d->full = m->next;
        memcpy(cc->slot, m->slot, m->n * sizeof m->slot[0]);
        cc->n = m->n;
        m->n = 0;
        m->next = d->empty;
        d->empty = m;
        pthread_mutex_unlock(&d->lock);
        h = cc->slot[--cc->n];
        count(&tc->reused);
    } else if (d->orphans) {
        h = d->orphans;
        UNPOISON(h + 1, sizeof(objhdr *));
        d->orphans = *(objhdr **)(h + 1);
        pthread_mutex_unlock(&d->lock);
        count(&tc->reused);
    } else if (depot_take_range(p, d, cc)) {
        pthread_mutex_unlock(&d->lock);
        h = carve(p, c, cc);
        count(&tc->created);
    } else {
        pthread_mutex_unlock(&d->lock);
        return NULL;
    }
    sample_peak(p);
    return h;
}

static void *acquire_large(hyi_pool *p, size_t size)
{
    size_t usable = (size + 15) & ~(size_t)15;
    size_t bytes = sizeof(large_hdr) + sizeof(objhdr) + usable;
    tcache *tc = tc_get(p);
    if (!reserve(p, bytes))
        return NULL;
    large_hdr *lh = block_alloc(bytes);
    if (!lh) {
        unreserve(p, bytes);
        return NULL;
    }
    lh->bytes = bytes;
    lh->prev = NULL;
    pthread_mutex_lock(&p->large_lock);
    lh->next = p->large;
    if (p->large)
        p->large->prev = lh;
    p->large = lh;
    pthread_mutex_unlock(&p->large_lock);

    objhdr *h = (objhdr *)(lh + 1);
    h->state = ST_LIVE;
    h->tag = p->tag;
    h->cls = CLASS_LARGE;
    h->size = (uint32_t)usable;
    if (tc)
        count(&tc->created);
    else /* Relaxed: a counter (see tc_retire). */
        atomic_fetch_add_explicit(&p->ret_created, 1, memory_order_relaxed);
    return h + 1;
}

/* Everything but a cached object on a thread whose memo names this pool. */
static __attribute__((noinline)) void *acquire_general(hyi_pool *pool, size_t size)
{
    if (HY_UNLIKELY(size > MAX_SMALL))
        return size <= HYI_POOL_MAX_OBJECT ? acquire_large(pool, size) : NULL;
    unsigned c = size_class(size);
    tcache *tc = tc_get(pool);
    if (HY_UNLIKELY(!tc))
        return NULL;
    tc_class *cc = &tc->cls[c];
    objhdr *h;
    if (HY_LIKELY(cc->n)) {
        h = cc->slot[--cc->n];
        count(&tc->reused);
    } else {
        h = acquire_slow(pool, tc, c);
        if (HY_UNLIKELY(!h))
            return NULL;
    }
    MARK(h, ST_LIVE);
    UNPOISON(h + 1, h->size);
    return h + 1;
}

/* Ask for a line in the state a write needs. On x86 that is PREFETCHW, which
 * older CPUs lack (CPUID 0x80000001 ECX bit 8), so it is used only where the
 * CPU reports it. A plain prefetch is no substitute: it fetches the line
 * shared, and the write still waits for ownership (measured: the throughput
 * scenarios lost the whole gain, static to a third). */
#if defined(__x86_64__) || defined(__i386__)
static bool cpu_has_prefetchw;

/* Runs before main, so the flag is read-only by the time any thread runs. */
__attribute__((constructor)) static void detect_prefetchw(void)
{
    unsigned a, b, c, d;
    cpu_has_prefetchw = __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 8));
}

static inline bool can_prefetch_for_write(void)
{
    return cpu_has_prefetchw;
}

static inline void prefetch_for_write(const char *p)
{
    __asm__ __volatile__("prefetchw %0" : : "m"(*p));
}
#else
static inline bool can_prefetch_for_write(void)
{
    return true;
}

static inline void prefetch_for_write(const char *p)
{
    __builtin_prefetch(p, 1, 3);
}
#endif

/* Lines fetched at most: a message header, a path and a small payload. */
#define PREFETCH_MAX_LINES 4

/* Fetch for writing the lines of the object h, which will be filled with
 * `size` bytes: its header is written by the acquire, then the caller's. */
static inline void prefetch_object(const objhdr *h, size_t size)
{
    uintptr_t first = (uintptr_t)h;
    uintptr_t line = first & ~(uintptr_t)(HY_CACHE_LINE - 1);
    uintptr_t end = first + sizeof(objhdr) + size;
    for (int i = 0; i < PREFETCH_MAX_LINES && line < end; i++, line += HY_CACHE_LINE)
        prefetch_for_write((const char *)line);
}

void hyi_pool_prefetch_next(hyi_pool *pool, size_t size)
{
    if (!can_prefetch_for_write() || size > MAX_SMALL || tls_last.id != pool->id)
        return;
    const tc_class *cc = &tls_last.tc->cls[size_class(size)];
    if (cc->n)
        prefetch_object(cc->slot[cc->n - 1], size);
}


/* The fast path is a leaf: anything unusual tail-calls acquire_general, so
 * this saves no registers. */
void *hyi_pool_acquire(hyi_pool *pool, size_t size)
{
    if (HY_LIKELY(size <= MAX_SMALL && tls_last.id == pool->id)) {
        tcache *tc = tls_last.tc;
        tc_class *cc = &tc->cls[size_class(size)];
        if (HY_LIKELY(cc->n)) {
            objhdr *h = cc->slot[--cc->n];
            count(&tc->reused);
            MARK(h, ST_LIVE);
            UNPOISON(h + 1, h->size);
            return h + 1;
        }
    }
    return acquire_general(pool, size);
}

/* hyi_pool_acquire, then hyi_pool_prefetch_next, with one lookup of the
 * thread's stack for both. */
void *hyi_pool_acquire_prefetch(hyi_pool *pool, size_t size)
{
    if (HY_LIKELY(size <= MAX_SMALL && tls_last.id == pool->id)) {
        tcache *tc = tls_last.tc;
        tc_class *cc = &tc->cls[size_class(size)];
        uint32_t n = cc->n;
        if (HY_LIKELY(n)) {
            objhdr *h = cc->slot[--n];
            cc->n = n;
            count(&tc->reused);
            MARK(h, ST_LIVE);
            UNPOISON(h + 1, h->size);
            if (HY_LIKELY(n) && can_prefetch_for_write())
                prefetch_object(cc->slot[n - 1], size);
            return h + 1;
        }
        if (cc->bump < cc->end) {
            /* A sender ahead of the workers carves fresh objects one after
             * another: no call for each, and the next one's lines (never
             * touched yet) are fetched while this one is filled. */
            objhdr *h = carve(pool, size_class(size), cc);
            count(&tc->created);
            MARK(h, ST_LIVE);
            UNPOISON(h + 1, h->size);
            if (cc->bump < cc->end && can_prefetch_for_write())
                prefetch_object((const objhdr *)cc->bump, size);
            return h + 1;
        }
    }
    void *obj = acquire_general(pool, size);
    hyi_pool_prefetch_next(pool, size);
    return obj;
}

/* ------------------------------------------------------------------ release */

#ifndef NDEBUG
static inline __attribute__((always_inline)) void check_release(const hyi_pool *p,
                                                               const void *obj,
                                                               const objhdr *h)
{
    if ((uintptr_t)obj & 15)
        die("release of %p: not an object from a hypha pool (misaligned)", obj);
    if (h->state == ST_FREE)
        die("double release of %p (object of %u bytes)", obj, h->size);
    if (h->state != ST_LIVE)
        die("release of %p: not an object from a hypha pool (bad header)", obj);
    if (h->tag != p->tag)
        die("release of %p: the object belongs to another pool", obj);
    if (h->cls >= NCLASS && h->cls != CLASS_LARGE)
        die("release of %p: corrupt object header", obj);
}

/* Out of line: it only runs to die with the reason. */
static __attribute__((noinline, cold, noreturn)) void
release_refused(const hyi_pool *p, const void *obj, const objhdr *h)
{
    check_release(p, obj, h);
    die("release of %p: bad object header", obj); /* not reached: a check failed */
}

/* The release fast path's checks: an aligned object of this pool, live. Its
 * state and tag are read as one word, so this is one compare; check_release
 * then says what is wrong. The size class is checked by the fast path itself
 * (anything but a small class goes to release_general, which checks fully). */
static inline __attribute__((always_inline)) void check_release_fast(const hyi_pool *p,
                                                                    const void *obj,
                                                                    const objhdr *h)
{
    uint64_t word;
    if (HY_UNLIKELY((uintptr_t)obj & 15))
        release_refused(p, obj, h);
    memcpy(&word, h, sizeof word);
    if (HY_UNLIKELY(word != p->live_word))
        release_refused(p, obj, h);
}
#endif

/* No magazine could be allocated: keep the object on the depot's orphan list,
 * linked through its own (free) memory. */
static void release_orphan(hyi_pool *p, unsigned c, objhdr *h)
{
    depot *d = &p->depot[c];
    pthread_mutex_lock(&d->lock);
    UNPOISON(h + 1, sizeof(objhdr *));
    *(objhdr **)(h + 1) = d->orphans;
    POISON(h + 1, h->size);
    d->orphans = h;
    pthread_mutex_unlock(&d->lock);
}

/* Move the k oldest objects of the stack into a magazine on the depot. Returns
 * false when no magazine could be allocated (nothing moved). */
static bool depot_put(depot *d, tc_class *cc, uint32_t k)
{
    pthread_mutex_lock(&d->lock);
    mag *e = d->empty;
    if (e) {
        d->empty = e->next;
    } else {
        pthread_mutex_unlock(&d->lock);
        if (!(e = mag_new()))
            return false;
        pthread_mutex_lock(&d->lock);
    }
    memcpy(e->slot, cc->slot, k * sizeof e->slot[0]);
    e->n = k;
    e->next = d->full;
    d->full = e;
    pthread_mutex_unlock(&d->lock);
    cc->n -= k;
    memmove(cc->slot, cc->slot + k, cc->n * sizeof cc->slot[0]);
    return true;
}

/* The stack is full: move a magazine's worth to the depot, then push. */
static __attribute__((noinline)) void release_slow(hyi_pool *p, tcache *tc, unsigned c,
                                                    objhdr *h)
{
    tc_class *cc = &tc->cls[c];
    if (depot_put(&p->depot[c], cc, p->depot[c].mag_cap))
        cc->slot[cc->n++] = h;
    else
        release_orphan(p, c, h);
}

static void release_large(hyi_pool *p, objhdr *h)
{
    large_hdr *lh = (large_hdr *)h - 1;
    pthread_mutex_lock(&p->large_lock);
    if (lh->prev)
        lh->prev->next = lh->next;
    else
        p->large = lh->next;
    if (lh->next)
        lh->next->prev = lh->prev;
    pthread_mutex_unlock(&p->large_lock);
    h->state = ST_FREE;
    unreserve(p, lh->bytes);
    free(lh);
}

static __attribute__((noinline)) void release_general(hyi_pool *pool, void *obj)
{
    if (HY_UNLIKELY(!obj))
        return;
    objhdr *h = hdr_of(obj);
#ifndef NDEBUG
    check_release(pool, obj, h);
#endif
    unsigned c = h->cls;
    tcache *tc = tc_get(pool);
    if (HY_UNLIKELY(c == CLASS_LARGE)) {
        release_large(pool, h);
    } else {
        MARK(h, ST_FREE);
        POISON(obj, h->size);
        if (HY_UNLIKELY(!tc)) {
            release_orphan(pool, c, h);
        } else {
            tc_class *cc = &tc->cls[c];
            if (HY_LIKELY(cc->n < cc->max))
                cc->slot[cc->n++] = h;
            else
                release_slow(pool, tc, c, h);
        }
    }
    if (HY_LIKELY(tc != NULL))
        count(&tc->released);
    else /* Relaxed: a counter (see tc_retire). */
        atomic_fetch_add_explicit(&pool->ret_released, 1, memory_order_relaxed);
}

/* As acquire: a leaf fast path, the rest in release_general. */
void hyi_pool_release(hyi_pool *pool, void *obj)
{
    if (HY_LIKELY(obj && tls_last.id == pool->id)) {
        objhdr *h = hdr_of(obj);
#ifndef NDEBUG
        check_release_fast(pool, obj, h);
#endif
        unsigned c = h->cls;
        tcache *tc = tls_last.tc;
        if (HY_LIKELY(c < NCLASS)) {
            tc_class *cc = &tc->cls[c];
            if (HY_LIKELY(cc->n < cc->max)) {
                MARK(h, ST_FREE);
                POISON(obj, h->size);
                cc->slot[cc->n++] = h;
                count(&tc->released);
                return;
            }
        }
    }
    release_general(pool, obj);
}

size_t hyi_pool_object_size(const void *obj)
{
    return hdr_of(obj)->size;
}

/* ------------------------------------------------------------------ trim */

void hyi_pool_flush_cache(hyi_pool *pool)
{
    tcache *tc = NULL;
    if (tls_last.id == pool->id) {
        tc = tls_last.tc;
    } else {
        for (uint32_t i = 0; tls_tab && i < tls_tab->n; i++)
            if (tls_tab->e[i].id == pool->id)
                tc = tls_tab->e[i].tc;
    }
    if (!tc)
        return; /* this thread never used the pool: nothing cached */
    for (unsigned c = 0; c < NCLASS; c++)
        tc_flush_class(pool, &tc->cls[c], c);
}

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

/* The index in sorted[0..n) of the slab holding h. */
static size_t slab_index(slab *const *sorted, size_t n, const objhdr *h)
{
    size_t lo = 0, hi = n; /* first slab above h */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((const void *)sorted[mid] <= (const void *)h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* Is h in a slab trim frees (free[i] == nobj)? */
static bool doomed(slab *const *sorted, const uint32_t *nfree, size_t n, uint32_t nobj,
                   const objhdr *h)
{
    return nfree[slab_index(sorted, n, h)] == nobj;
}

/* Free the slabs of depot d whose every object is free in the depot. Caller
 * holds d->lock. Returns the bytes freed. */
static size_t depot_trim(hyi_pool *p, depot *d)
{
    size_t n = 0;
    for (slab *s = d->slabs; s; s = s->next)
        n++;
    if (n == 0 || !d->full)
        return 0;
    slab **sorted = malloc(n * sizeof *sorted);
    uint32_t *nfree = calloc(n, sizeof *nfree);
    if (!sorted || !nfree) { /* nothing trimmed: still correct */
        free(sorted);
        free(nfree);
        return 0;
    }
    n = 0;
    for (slab *s = d->slabs; s; s = s->next)
        sorted[n++] = s;
    qsort(sorted, n, sizeof *sorted, cmp_addr);
    /* Free objects sit in full magazines (and, after an allocation failure,
     * on the orphan list, not counted: their slabs stay). Carved objects
     * elsewhere are live or in a thread's cache, uncarved ones were never
     * counted: either keeps its slab. */
    for (mag *m = d->full; m; m = m->next)
        for (uint32_t i = 0; i < m->n; i++)
            nfree[slab_index(sorted, n, m->slot[i])]++;
    uint32_t nobj = (uint32_t)((SLAB_BYTES - SLAB_HEAD) / d->stride);
    size_t freed = 0;
    for (size_t i = 0; i < n; i++)
        freed += nfree[i] == nobj;
    if (freed) {
        /* Take the doomed slabs' objects out of the magazines. */
        mag **mp = &d->full;
        while (*mp) {
            mag *m = *mp;
            uint32_t k = 0;
            for (uint32_t i = 0; i < m->n; i++)
                if (!doomed(sorted, nfree, n, nobj, m->slot[i]))
                    m->slot[k++] = m->slot[i];
            m->n = k;
            if (k == 0) { /* an empty magazine goes back to the empties */
                *mp = m->next;
                m->next = d->empty;
                d->empty = m;
            } else {
                mp = &m->next;
            }
        }
        slab **sp = &d->slabs;
        while (*sp) {
            slab *s = *sp;
            if (nfree[slab_index(sorted, n, (const objhdr *)s)] == nobj) {
                *sp = s->next;
                UNPOISON(s, SLAB_BYTES);
                free(s);
            } else {
                sp = &s->next;
            }
        }
        unreserve(p, freed * SLAB_BYTES);
        /* Their objects were carved and released: counted out of both, so
         * created stays what the slabs hold and in_use does not move.
         * Relaxed: counters (see tc_retire). */
        uint64_t objs = (uint64_t)freed * nobj;
        atomic_fetch_sub_explicit(&p->ret_created, objs, memory_order_relaxed);
        atomic_fetch_sub_explicit(&p->ret_released, objs, memory_order_relaxed);
        /* and the magazines that held their objects */
        mag_free_list(d->empty);
        d->empty = NULL;
    }
    free(sorted);
    free(nfree);
    return freed * SLAB_BYTES;
}

size_t hyi_pool_trim(hyi_pool *pool)
{
    size_t freed = 0;
    for (unsigned c = 0; c < NCLASS; c++) {
        depot *d = &pool->depot[c];
        pthread_mutex_lock(&d->lock);
        freed += depot_trim(pool, d);
        pthread_mutex_unlock(&d->lock);
    }
    return freed;
}

/* ------------------------------------------------------------------ lifetime */

int hyi_pool_create(hyi_pool **out, size_t cap_bytes)
{
    if (!out)
        return HY_EINVAL;
    *out = NULL;
    hyi_pool *p = aligned_alloc(HY_CACHE_LINE, sizeof *p);
    if (!p)
        return HY_ENOMEM;
    memset(p, 0, sizeof *p);
    p->cap = cap_bytes;
    pthread_mutex_init(&p->threads_lock, NULL);
    pthread_mutex_init(&p->large_lock, NULL);
    for (unsigned c = 0; c < NCLASS; c++) {
        depot *d = &p->depot[c];
        pthread_mutex_init(&d->lock, NULL);
        d->usable = (uint32_t)1 << (MIN_SHIFT + c);
        d->stride = d->usable + (uint32_t)sizeof(objhdr);
        uint32_t n = MAG_BYTES_TARGET / d->usable;
        d->mag_cap = n > MAG_SLOTS ? MAG_SLOTS : n < 8 ? 8 : n;
    }
    /* Relaxed: nothing else has the pool yet. */
    atomic_init(&p->bytes_reserved, 0);
    atomic_init(&p->peak, 0);
    pthread_mutex_lock(&registry_lock);
    p->id = registry_next_id++;
    p->tag = (uint32_t)p->id;
    memcpy(&p->live_word, &(objhdr){.state = ST_LIVE, .tag = p->tag}, sizeof p->live_word);
    p->reg_next = registry;
    registry = p;
    pthread_mutex_unlock(&registry_lock);
    *out = p;
    return 0;
}

void hyi_pool_destroy(hyi_pool *pool)
{
    if (!pool)
        return;
    /* Unregister first: from here no thread-exit destructor touches the pool. */
    pthread_mutex_lock(&registry_lock);
    for (hyi_pool **pp = &registry; *pp; pp = &(*pp)->reg_next) {
        if (*pp == pool) {
            *pp = pool->reg_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (tls_last.id == pool->id)
        tls_last = (tls_entry){0, NULL};

    for (tcache *tc = pool->threads, *next; tc; tc = next) {
        next = tc->next;
        free(tc);
    }
    for (unsigned c = 0; c < NCLASS; c++) {
        depot *d = &pool->depot[c];
        mag_free_list(d->full);
        mag_free_list(d->empty);
        for (slab *s = d->slabs, *next; s; s = next) {
            next = s->next;
            UNPOISON(s, SLAB_BYTES);
            free(s);
        }
        pthread_mutex_destroy(&d->lock);
    }
    for (large_hdr *lh = pool->large, *next; lh; lh = next) {
        next = lh->next;
        free(lh);
    }
    pthread_mutex_destroy(&pool->threads_lock);
    pthread_mutex_destroy(&pool->large_lock);
    free(pool);
}
