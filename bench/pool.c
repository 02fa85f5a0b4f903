/* The `pool` bench family: hypha's slab pool against jemalloc's malloc/free and
 * glibc's malloc/free, for the two patterns a message kernel has.
 *
 *   same-thread   one thread acquires a burst of 64 objects, writes each, then
 *                 releases them (a handler that allocates and frees locally);
 *   cross-thread  a producer acquires and writes, a consumer reads and releases
 *                 (a sender and a worker); objects travel through one SPSC ring,
 *                 the same ring for every allocator, so only the allocator differs.
 *
 * jemalloc is this binary's malloc (the normal build links it); glibc's stays
 * reachable as __libc_malloc/__libc_free. Each allocator's loop is specialised at
 * compile time (no indirect call). Contenders alternate over ROUNDS rounds, in a
 * rotating order, and each line reports the median; the hypha lines add the
 * ratios to the other two. --messages N sets the pairs per run. */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "bench.h"
#include "pool.h"

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);

#define ROUNDS 5
#define OBJ_SIZE 100 /* a ~64-byte message header and a short payload */
#define BURST 64
#define RING 1024    /* power of two */
#define PUBLISH 16   /* ring indices are published every PUBLISH items */
#define SAME_DEFAULT 20000000ull
#define CROSS_DEFAULT 10000000ull

enum { K_POOL, K_JEMALLOC, K_GLIBC, NKIND };
static const char *const kind_name[NKIND] = {"hypha", "jemalloc", "glibc"};

static inline __attribute__((always_inline)) void *obj_get(int kind, hyi_pool *p)
{
    switch (kind) {
    case K_POOL:
        return hyi_pool_acquire(p, OBJ_SIZE);
    case K_JEMALLOC:
        return malloc(OBJ_SIZE);
    default:
        return __libc_malloc(OBJ_SIZE);
    }
}

static inline __attribute__((always_inline)) void obj_put(int kind, hyi_pool *p, void *o)
{
    switch (kind) {
    case K_POOL:
        hyi_pool_release(p, o);
        break;
    case K_JEMALLOC:
        free(o);
        break;
    default:
        __libc_free(o);
        break;
    }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin a little, then yield: this machine may have fewer cores than threads. */
static inline void backoff(unsigned *spins)
{
    if (++*spins < 256)
        cpu_relax();
    else
        sched_yield();
}

/* ------------------------------------------------------------------ same-thread */

static void *burst[BURST];

static inline __attribute__((always_inline)) uint64_t same_loop(int kind, hyi_pool *p,
                                                                 uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t done = 0; done < n; done += BURST) {
        for (int i = 0; i < BURST; i++) {
            uint64_t *o = obj_get(kind, p);
            if (!o)
                return UINT64_MAX;
            o[0] = done + (uint64_t)i;
            burst[i] = o;
        }
        for (int i = 0; i < BURST; i++) {
            sum += *(uint64_t *)burst[i];
            obj_put(kind, p, burst[i]);
        }
    }
    return sum;
}

static double run_same(int kind, hyi_pool *p, uint64_t n, int *bad)
{
    n = (n + BURST - 1) / BURST * BURST;
    uint64_t t0 = bench_now_ns(), sum;
    switch (kind) {
    case K_POOL:
        sum = same_loop(K_POOL, p, n);
        break;
    case K_JEMALLOC:
        sum = same_loop(K_JEMALLOC, p, n);
        break;
    default:
        sum = same_loop(K_GLIBC, p, n);
        break;
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    if (sum != n * (n - 1) / 2)
        *bad = 1;
    return secs;
}

/* ------------------------------------------------------------------ cross-thread */

/* Lamport's SPSC ring with cached remote indices and batched publication: each
 * side rereads the other's index only when it seems stuck, and publishes its
 * own every PUBLISH items and before it waits. */
struct ring {
    _Alignas(64) _Atomic uint64_t tail; /* producer publishes */
    _Alignas(64) _Atomic uint64_t head; /* consumer publishes */
    _Alignas(64) void *slot[RING];
};

struct cross {
    struct ring ring;
    hyi_pool *pool;
    int kind;
    uint64_t n;
    uint64_t bad;
};

/* The ring is full as far as the producer knows: publish, then wait for room. */
static uint64_t wait_room(struct ring *r, uint64_t tail)
{
    /* release: the consumer sees every slot written so far */
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    unsigned spins = 0;
    uint64_t head;
    /* acquire: the consumer's reads of the slots we will overwrite are done */
    while (tail - (head = atomic_load_explicit(&r->head, memory_order_acquire)) == RING)
        backoff(&spins);
    return head;
}

static inline __attribute__((always_inline)) void produce(int kind, struct cross *x)
{
    struct ring *r = &x->ring;
    uint64_t tail = 0, head_seen = 0;
    for (uint64_t i = 0; i < x->n; i++) {
        uint64_t *o = obj_get(kind, x->pool);
        if (!o) {
            x->bad++;
            break;
        }
        o[0] = i;
        if (tail - head_seen == RING)
            head_seen = wait_room(r, tail);
        r->slot[tail % RING] = o;
        if (++tail % PUBLISH == 0) /* release: the consumer sees the slots */
            atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    /* the end marker (a NULL object), then publish everything */
    if (tail - head_seen == RING)
        wait_room(r, tail);
    r->slot[tail % RING] = NULL;
    /* release: as above */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
}

static inline __attribute__((always_inline)) void consume(int kind, struct cross *x)
{
    struct ring *r = &x->ring;
    uint64_t head = 0, tail_seen = 0, expect = 0;
    for (;;) {
        if (head == tail_seen) {
            /* release: the producer may reuse every slot read so far */
            atomic_store_explicit(&r->head, head, memory_order_release);
            unsigned spins = 0;
            /* acquire: pairs with the producer's release of tail */
            while ((tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire)) == head)
                backoff(&spins);
        }
        uint64_t *o = r->slot[head % RING];
        if (++head % PUBLISH == 0) /* release: as above */
            atomic_store_explicit(&r->head, head, memory_order_release);
        if (!o)
            break;
        if (o[0] != expect++)
            x->bad++;
        obj_put(kind, x->pool, o);
    }
}

static void *producer_main(void *arg)
{
    struct cross *x = arg;
    switch (x->kind) {
    case K_POOL:
        produce(K_POOL, x);
        break;
    case K_JEMALLOC:
        produce(K_JEMALLOC, x);
        break;
    default:
        produce(K_GLIBC, x);
        break;
    }
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct cross *x = arg;
    switch (x->kind) {
    case K_POOL:
        consume(K_POOL, x);
        break;
    case K_JEMALLOC:
        consume(K_JEMALLOC, x);
        break;
    default:
        consume(K_GLIBC, x);
        break;
    }
    return NULL;
}

static double run_cross(int kind, hyi_pool *p, uint64_t n, int *bad)
{
    struct cross *x = aligned_alloc(64, sizeof *x);
    if (!x) {
        *bad = 1;
        return 0;
    }
    memset(x, 0, sizeof *x);
    x->pool = p;
    x->kind = kind;
    x->n = n;
    pthread_t pt, ct;
    uint64_t t0 = bench_now_ns();
    if (pthread_create(&ct, NULL, consumer_main, x) != 0 ||
        pthread_create(&pt, NULL, producer_main, x) != 0) {
        fprintf(stderr, "pool bench: pthread_create failed\n");
        exit(1);
    }
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    if (x->bad)
        *bad = 1;
    free(x);
    return secs;
}

/* ------------------------------------------------------------------ driver */

typedef double (*run_fn)(int kind, hyi_pool *p, uint64_t n, int *bad);

/* Run every contender ROUNDS times, rotating who goes first, then report. */
static int scenario(const bench_opts *opts, const char *name, run_fn run, uint64_t n,
                    const char *extra)
{
    hyi_pool *p;
    if (hyi_pool_create(&p, 0) != 0) {
        fprintf(stderr, "pool bench: cannot create a pool\n");
        return 1;
    }
    double secs[NKIND][ROUNDS];
    int bad = 0;
    for (int k = 0; k < NKIND; k++) /* warm-up: first-touch costs out of the runs */
        run(k, p, n / 20 + BURST, &bad);
    for (int r = 0; r < ROUNDS; r++) {
        for (int j = 0; j < NKIND; j++) {
            int k = (r + j) % NKIND;
            secs[k][r] = run(k, p, n, &bad);
            char label[64];
            snprintf(label, sizeof label, "pool %s", name);
            bench_progress(label, (uint64_t)(r * NKIND + j + 1), ROUNDS * NKIND);
        }
    }
    hyi_pool_stats st;
    hyi_pool_get_stats(p, &st);
    hyi_pool_destroy(p);
    if (bad) {
        fprintf(stderr, "pool bench: %s: wrong object contents or a failed acquire\n", name);
        return 1;
    }
    double med[NKIND];
    for (int k = 0; k < NKIND; k++)
        med[k] = bench_median(secs[k], ROUNDS);
    for (int k = 0; k < NKIND; k++) {
        char sc[64], ex[512];
        snprintf(sc, sizeof sc, "%s/%s", name, kind_name[k]);
        int len = snprintf(ex, sizeof ex, "\"allocator\":\"%s\",\"pairs\":%llu,"
                           "\"object_bytes\":%d,\"rounds\":%d,%s,\"ns_per_pair\":%.2f",
                           kind_name[k], (unsigned long long)n, OBJ_SIZE, ROUNDS, extra,
                           med[k] * 1e9 / (double)n);
        if (k == K_POOL)
            snprintf(ex + len, sizeof ex - (size_t)len,
                     ",\"ratio_vs_jemalloc\":%.2f,\"ratio_vs_glibc\":%.2f,"
                     "\"pool_reuse_rate\":%.4f,\"pool_bytes_reserved\":%llu",
                     med[K_JEMALLOC] / med[K_POOL], med[K_GLIBC] / med[K_POOL],
                     st.reuse_rate, (unsigned long long)st.bytes_reserved);
        unsigned unit = k == K_POOL ? BENCH_OPS : BENCH_OPS | BENCH_PEER;
        bench_report(opts, "pool", sc, unit, (double)n / med[k], med[k], ex);
    }
    return 0;
}

/* --scenario NAME: "same-thread" or "cross-thread" runs that scenario with all
 * three allocators; a line's own name ("cross-thread/hypha") selects the same
 * whole scenario, since the ratios need every contender. */
static int wants(const bench_opts *opts, const char *name)
{
    if (!opts->scenario)
        return 1;
    size_t len = strlen(name);
    return strncmp(opts->scenario, name, len) == 0 &&
           (opts->scenario[len] == '\0' || opts->scenario[len] == '/');
}

static int bench_pool(const bench_opts *opts)
{
    int rc = 0, ran = 0;
    if (wants(opts, "same-thread")) {
        ran = 1;
        rc |= scenario(opts, "same-thread", run_same,
                       opts->messages ? opts->messages : SAME_DEFAULT,
                       "\"threads\":1,\"burst\":64");
    }
    if (wants(opts, "cross-thread")) {
        ran = 1;
        rc |= scenario(opts, "cross-thread", run_cross,
                       opts->messages ? opts->messages : CROSS_DEFAULT,
                       "\"threads\":2,\"ring\":1024");
    }
    if (!ran) {
        fprintf(stderr, "pool bench: no scenario '%s' (same-thread, cross-thread)\n",
                opts->scenario);
        return 1;
    }
    return rc;
}

HY_BENCH_FAMILY(pool, bench_pool,
                "slab pool vs jemalloc vs glibc malloc: same-thread, cross-thread")
