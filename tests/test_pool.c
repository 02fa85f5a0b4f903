/* Unit and stress tests for the slab object pool (pool/pool.h). Each test opens
 * its own pool(s) and checks one behaviour with exact numbers where the contract
 * gives them. The stress test runs HY_POOL_STRESS_PAIRS cross-thread
 * acquire/release pairs (10 M by default, in every build). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static hyi_pool *open_pool(size_t cap)
{
    hyi_pool *p = NULL;
    assert_int_equal(hyi_pool_create(&p, cap), 0);
    assert_non_null(p);
    return p;
}

static hyi_pool_stats stats_of(hyi_pool *p)
{
    hyi_pool_stats s;
    hyi_pool_get_stats(p, &s);
    return s;
}

/* ------------------------------------------------------------------ basics */

static void test_create_rejects_null_out(void **state)
{
    (void)state;
    assert_int_equal(hyi_pool_create(NULL, 0), HY_EINVAL);
}

static void test_acquire_gives_aligned_writable_object_of_at_least_size(void **state)
{
    (void)state;
    hyi_pool *p = open_pool(0);
    static const size_t sizes[] = {0, 1, 15, 16, 63, 64, 65, 100, 128, 129, 255,
                                   256, 511, 1000, 2048, 3000, 4095, 4096};
    void *objs[HY_ARRAY_LEN(sizes)];
    for (size_t i = 0; i < HY_ARRAY_LEN(sizes); i++) {
        objs[i] = hyi_pool_acquire(p, sizes[i]);
        assert_non_null(objs[i]);
        assert_int_equal((uintptr_t)objs[i] % 16, 0);
        assert_true(hyi_pool_object_size(objs[i]) >= sizes[i]);
        memset(objs[i], 0xab, hyi_pool_object_size(objs[i]));
    }
    for (size_t i = 0; i < HY_ARRAY_LEN(sizes); i++)
        hyi_pool_release(p, objs[i]);
    assert_int_equal(stats_of(p).in_use, 0);
    hyi_pool_destroy(p);
}

static void test_object_size_is_the_class_size(void **state)
{
    (void)state;
    hyi_pool *p = open_pool(0);
    static const struct { size_t ask, got; } cases[] = {
        {0, 64}, {1, 64}, {64, 64}, {65, 128}, {128, 128}, {129, 256},
        {300, 512}, {513, 1024}, {1025, 2048}, {4096, 4096}, {4097, 4112},
    };
    for (size_t i = 0; i < HY_ARRAY_LEN(cases); i++) {
        void *o = hyi_pool_acquire(p, cases[i].ask);
        assert_non_null(o);
        assert_int_equal(hyi_pool_object_size(o), cases[i].got);
        hyi_pool_release(p, o);
    }
    hyi_pool_destroy(p);
}

/* The prefetch hint takes nothing and counts nothing: the next acquire gets
 * the object it would have got, with the same counts, whatever the size. */
static void test_prefetch_next_changes_nothing_the_pool_hands_out(void **state)
{
    (void)state;
    hyi_pool *p = open_pool(0);
    hyi_pool_prefetch_next(p, 100); /* before this thread has a cache */
    void *a = hyi_pool_acquire(p, 100);
    void *b = hyi_pool_acquire(p, 100);
    hyi_pool_release(p, a);
    hyi_pool_release(p, b);
    hyi_pool_stats before = stats_of(p);
    static const size_t sizes[] = {0, 100, 4096, 4097, HYI_POOL_MAX_OBJECT + 1};
    for (size_t i = 0; i < HY_ARRAY_LEN(sizes); i++)
        hyi_pool_prefetch_next(p, sizes[i]);
    hyi_pool_stats after = stats_of(p);
    assert_int_equal(after.created, before.created);
    assert_int_equal(after.reused, before.reused);
    assert_int_equal(after.in_use, 0);
    /* LIFO: the last released is what the next acquire, hinted or not, gets. */
    assert_ptr_equal(hyi_pool_acquire(p, 100), b);
    hyi_pool_release(p, b);
    hyi_pool_destroy(p);
}

static void test_release_of_null_is_a_no_op(void **state)
{
    (void)state;
    hyi_pool *p = open_pool(0);
    hyi_pool_release(p, NULL);
    hyi_pool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.created + s.reused, 0);
    hyi_pool_destroy(p);
}

static void test_released_object_is_reused_on_same_thread(void **state)
{
    (void)state;
    hyi_pool *p = open_pool(0);
    void *a = hyi_pool_acquire(p, 100);
    assert_non_null(a);
    hyi_pool_release(p, a);
    void *b = hyi_pool_acquire(p, 120); /* same class: 128 */
    assert_ptr_equal(a, b);
    hyi_pool_stats s = stats_of(p);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.reused, 1);
    assert_int_equal(s.in_use, 1);
    hyi_pool_release(p, b);
    hyi_pool_destroy(p);
}

static void test_stats_count_created_reused_in_use_and_peak(void **state)
{
    (void)state;
    enum { N = 1000 };
    hyi_pool *p = open_pool(0);
    void *objs[N];
    hyi_pool_stats s = stats_of(p);
    assert_int_equal(s.created, 0);
    assert_int_equal(s.bytes_reserved, 0);
    assert_true(s.reuse_rate == 0.0);

    for (int i = 0; i < N; i++)
        assert_non_null(objs[i] = hyi_pool_acquire(p, 64));
    s = stats_of(p);
    assert_int_equal(s.created, N);
    assert_int_equal(s.reused, 0);
    assert_int_equal(s.in_use, N);
    assert_int_equal(s.peak_in_use, N);
    assert_true(s.bytes_reserved >= N * 64);
    uint64_t reserved = s.bytes_reserved;

    for (int i = 0; i < N; i++)
        hyi_pool_release(p, objs[i]);
    s = stats_of(p);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.peak_in_use, N);

    /* The second round takes no new memory. A thread's cache may still hold a
     * few never-used objects of its last fresh range, and those count as
     * created when handed out; everything else is reused. */
    for (int i = 0; i < N; i++)
        assert_non_null(objs[i] = hyi_pool_acquire(p, 64));
    s = stats_of(p);
    assert_int_equal(s.created + s.reused, 2 * N);
    assert_true(s.reused >= N / 2);
    assert_int_equal(s.in_use, N);
    assert_true(s.reuse_rate == (double)s.reused / (double)(2 * N));
    assert_int_equal(s.bytes_reserved, reserved); /* reuse reserves nothing */
    for (int i = 0; i < N; i++)
        hyi_pool_release(p, objs[i]);
    assert_int_equal(stats_of(p).in_use, 0);
    hyi_pool_destroy(p);
}

/* ------------------------------------------------------------------ cap */

static void test_acquire_returns_null_past_the_cap(void **state)
{
    (void)state;
    const size_t cap = 256 * 1024;
    hyi_pool *p = open_pool(cap);
    enum { MAXN = 100000 };
    void **objs = calloc(MAXN, sizeof *objs);
    assert_non_null(objs);
    int n = 0;
    while (n < MAXN && (objs[n] = hyi_pool_acquire(p, 64)) != NULL)
        n++;
    assert_true(n > 0);
    assert_true(n < MAXN); /* it did stop */
    hyi_pool_stats s = stats_of(p);
    assert_true(s.bytes_reserved <= cap);
    assert_int_equal(s.in_use, (uint64_t)n);
    assert_null(hyi_pool_acquire(p, 64));      /* still refused, no abort */
    assert_null(hyi_pool_acquire(p, 200000));  /* large objects count too */

    hyi_pool_release(p, objs[0]);               /* one back: one more fits */
    objs[0] = hyi_pool_acquire(p, 64);
    assert_non_null(objs[0]);
    for (int i = 0; i < n; i++)
        hyi_pool_release(p, objs[i]);
    free(objs);
    hyi_pool_destroy(p);
}

/* ------------------------------------------------------------------ large */

static void test_large_objects_come_from_the_allocator_and_are_counted(void **state)
{
    (void)state;
    hyi_pool *p = open_pool(0);
    uint64_t before = stats_of(p).bytes_reserved;
    void *o = hyi_pool_acquire(p, HYI_POOL_MAX_OBJECT);
    assert_non_null(o);
    assert_int_equal((uintptr_t)o % 16, 0);
    assert_true(hyi_pool_object_size(o) >= HYI_POOL_MAX_OBJECT);
    memset(o, 0x5a, HYI_POOL_MAX_OBJECT);
    hyi_pool_stats s = stats_of(p);
    assert_true(s.bytes_reserved >= before + HYI_POOL_MAX_OBJECT);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(s.created, 1);
    hyi_pool_release(p, o);
    s = stats_of(p);
    assert_int_equal(s.bytes_reserved, before); /* given back at once */
    assert_int_equal(s.in_use, 0);
    assert_null(hyi_pool_acquire(p, HYI_POOL_MAX_OBJECT + 1));
    hyi_pool_destroy(p);
}

static void test_destroy_frees_live_large_and_small_objects(void **state)
{
    (void)state; /* ASan's leak check fails this test if destroy leaks */
    hyi_pool *p = open_pool(0);
    assert_non_null(hyi_pool_acquire(p, 100000));
    assert_non_null(hyi_pool_acquire(p, 10));
    assert_int_equal(stats_of(p).in_use, 2);
    hyi_pool_destroy(p);
}

/* ------------------------------------------------------------------ many pools */

static void test_many_pools_in_one_thread_keep_separate_objects_and_stats(void **state)
{
    (void)state;
    enum { NP = 40, PER = 50 };
    hyi_pool *pools[NP];
    void *objs[NP][PER];
    for (int i = 0; i < NP; i++)
        pools[i] = open_pool(0);
    for (int k = 0; k < PER; k++) /* interleaved: the thread switches pools constantly */
        for (int i = 0; i < NP; i++) {
            objs[i][k] = hyi_pool_acquire(pools[i], 64);
            assert_non_null(objs[i][k]);
            *(int *)objs[i][k] = i;
        }
    for (int i = 0; i < NP; i++) {
        hyi_pool_stats s = stats_of(pools[i]);
        assert_int_equal(s.created, PER);
        assert_int_equal(s.in_use, PER);
        for (int k = 0; k < PER; k++) {
            assert_int_equal(*(int *)objs[i][k], i);
            hyi_pool_release(pools[i], objs[i][k]);
        }
        assert_int_equal(stats_of(pools[i]).in_use, 0);
    }
    for (int i = NP - 1; i >= 0; i--)
        hyi_pool_destroy(pools[i]);
}

static void test_pools_created_and_destroyed_repeatedly_in_one_thread(void **state)
{
    (void)state; /* stale cache entries of destroyed pools must never match */
    hyi_pool *keep = open_pool(0);
    void *kept = hyi_pool_acquire(keep, 64);
    for (int round = 0; round < 2000; round++) {
        hyi_pool *p = open_pool(0);
        void *o = hyi_pool_acquire(p, 64);
        assert_non_null(o);
        hyi_pool_release(p, o);
        hyi_pool_stats s = stats_of(p);
        assert_int_equal(s.created, 1);
        assert_int_equal(s.in_use, 0);
        hyi_pool_destroy(p);
    }
    hyi_pool_release(keep, kept);
    hyi_pool_stats s = stats_of(keep);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.in_use, 0);
    hyi_pool_destroy(keep);
}

/* ------------------------------------------------------------------ threads */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;
    int arrived;
};

static void gate_set(struct gate *g, int stage)
{
    pthread_mutex_lock(&g->mu);
    g->stage = stage;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A thread says it is done with the first pool; the mutex orders its writes
 * before whatever the waiter does next (here: destroy). */
static void gate_arrive(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_wait_arrivals(struct gate *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->arrived < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_wait(struct gate *g, int stage)
{
    pthread_mutex_lock(&g->mu);
    while (g->stage < stage)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

struct cycler {
    hyi_pool *pool;
    int n;
    struct gate *gate; /* NULL: exit right away */
    hyi_pool *after;   /* used after the gate opens */
    uint64_t after_created;
};

/* Acquire n objects, release them all (they stay in this thread's cache). */
static void *cycle_thread(void *arg)
{
    struct cycler *c = arg;
    void **objs = malloc((size_t)c->n * sizeof *objs);
    for (int i = 0; i < c->n; i++)
        objs[i] = hyi_pool_acquire(c->pool, 64 + (size_t)(i % 3) * 100);
    for (int i = 0; i < c->n; i++)
        hyi_pool_release(c->pool, objs[i]);
    free(objs);
    if (c->gate) {
        gate_arrive(c->gate);
        gate_wait(c->gate, 2); /* the pool is destroyed meanwhile */
        void *o = hyi_pool_acquire(c->after, 64);
        hyi_pool_release(c->after, o);
        c->after_created = stats_of(c->after).created;
    }
    return NULL;
}

static void test_thread_exit_flushes_its_cache_back_to_the_pool(void **state)
{
    (void)state;
    enum { N = 300 };
    hyi_pool *p = open_pool(0);
    struct cycler c = {.pool = p, .n = N};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cycle_thread, &c), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    hyi_pool_stats s = stats_of(p);
    assert_int_equal(s.created, N); /* the exited thread's counts are kept */
    assert_int_equal(s.in_use, 0);

    /* Everything the thread cached is reachable from here: no new objects. */
    void *objs[N];
    for (int i = 0; i < N; i++)
        assert_non_null(objs[i] = hyi_pool_acquire(p, 64 + (size_t)(i % 3) * 100));
    s = stats_of(p);
    assert_int_equal(s.created, N);
    assert_int_equal(s.reused, N);
    for (int i = 0; i < N; i++)
        hyi_pool_release(p, objs[i]);
    hyi_pool_destroy(p);
}

static void test_destroy_is_safe_while_other_threads_cache_its_objects(void **state)
{
    (void)state;
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    hyi_pool *p = open_pool(0);
    hyi_pool *after = open_pool(0);
    struct cycler c[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (struct cycler){.pool = p, .n = 200, .gate = &g, .after = after};
        assert_int_equal(pthread_create(&t[i], NULL, cycle_thread, &c[i]), 0);
    }
    gate_wait_arrivals(&g, 3);
    hyi_pool_stats before = stats_of(p);
    assert_int_equal(before.created + before.reused, 600);
    assert_int_equal(before.in_use, 0);
    hyi_pool_destroy(p); /* their caches still name p */
    gate_set(&g, 2);
    for (int i = 0; i < 3; i++) /* exit destructors must skip the dead pool */
        assert_int_equal(pthread_join(t[i], NULL), 0);
    hyi_pool_stats s = stats_of(after);
    assert_int_equal(s.in_use, 0);
    assert_true(s.created >= 1 && s.created <= 3);
    assert_int_equal(s.created + s.reused, 3);
    hyi_pool_destroy(after);
}

/* ------------------------------------------------------------------ misuse */

#ifndef NDEBUG
/* Run fn in a child with SIGABRT at its default; return what it wrote on stderr
 * and assert that it died of SIGABRT. */
static void expect_abort(void (*fn)(void), const char *needle)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL); /* cmocka catches it otherwise */
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        fn();
        _exit(0); /* not reached when the check works */
    }
    close(fds[1]);
    char buf[512] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    if (!strstr(buf, needle))
        fail_msg("child's message \"%s\" lacks \"%s\"", buf, needle);
}

static void double_release(void)
{
    hyi_pool *p = NULL;
    hyi_pool_create(&p, 0);
    void *o = hyi_pool_acquire(p, 64);
    hyi_pool_release(p, o);
    hyi_pool_release(p, o);
}

static void release_to_wrong_pool(void)
{
    hyi_pool *a = NULL, *b = NULL;
    hyi_pool_create(&a, 0);
    hyi_pool_create(&b, 0);
    hyi_pool_release(b, hyi_pool_acquire(a, 64));
}

static void release_interior_pointer(void)
{
    hyi_pool *p = NULL;
    hyi_pool_create(&p, 0);
    hyi_pool_release(p, (char *)hyi_pool_acquire(p, 256) + 8);
}
#endif

static void test_double_release_aborts_with_a_message(void **state)
{
    (void)state;
#if defined(NDEBUG)
    skip(); /* no checks under NDEBUG */
#else
    expect_abort(double_release, "double release");
#endif
}

static void test_release_to_another_pool_aborts_with_a_message(void **state)
{
    (void)state;
#if defined(NDEBUG)
    skip();
#else
    expect_abort(release_to_wrong_pool, "another pool");
#endif
}

static void test_release_of_interior_pointer_aborts_with_a_message(void **state)
{
    (void)state;
#if defined(NDEBUG)
    skip();
#else
    expect_abort(release_interior_pointer, "not an object from a hypha pool");
#endif
}

static void test_released_objects_are_poisoned_under_asan(void **state)
{
    (void)state;
#ifndef TEST_ASAN
    skip();
#else
    hyi_pool *p = open_pool(0);
    char *o = hyi_pool_acquire(p, 200);
    size_t last = hyi_pool_object_size(o) - 1;
    assert_false(__asan_address_is_poisoned(o));
    assert_false(__asan_address_is_poisoned(o + last));
    hyi_pool_release(p, o);
    assert_true(__asan_address_is_poisoned(o));
    assert_true(__asan_address_is_poisoned(o + last));
    char *again = hyi_pool_acquire(p, 200);
    assert_ptr_equal(again, o);
    assert_false(__asan_address_is_poisoned(o));
    hyi_pool_release(p, again);
    hyi_pool_destroy(p);
#endif
}

/* ------------------------------------------------------------------ stress */

/* A bounded single-producer single-consumer ring; a full or empty side yields,
 * since this machine may have fewer cores than the test has threads. */
#define RING 1024
struct ring {
    _Alignas(64) _Atomic uint64_t head; /* consumer's */
    _Alignas(64) _Atomic uint64_t tail; /* producer's */
    _Alignas(64) void *slot[RING];
};

static void ring_put(struct ring *r, void *v)
{
    /* acquire: the consumer's read of a slot happens before we reuse it */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
        sched_yield();
    r->slot[t % RING] = v;
    /* release: publishes the slot (and the object's contents) */
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

static void *ring_get(struct ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    /* acquire: pairs with ring_put's release of tail */
    while (atomic_load_explicit(&r->tail, memory_order_acquire) == h)
        sched_yield();
    void *v = r->slot[h % RING];
    /* release: our read of the slot is done before the producer reuses it */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return v;
}

struct pair {
    hyi_pool *pool;
    struct ring *ring;
    uint64_t n;
    int id;
    uint64_t bad;  /* consumer: objects whose contents were wrong */
    uint64_t null; /* producer: acquisitions that failed */
};

static void *producer(void *arg)
{
    struct pair *pr = arg;
    for (uint64_t i = 0; i < pr->n; i++) {
        size_t size = 16 + (size_t)(i % 7) * 40; /* classes 64, 128, 256 */
        uint64_t *o = hyi_pool_acquire(pr->pool, size);
        if (!o) {
            pr->null++;
            continue;
        }
        o[0] = (uint64_t)pr->id;
        o[1] = i;
        ring_put(pr->ring, o);
    }
    ring_put(pr->ring, NULL);
    return NULL;
}

static void *consumer(void *arg)
{
    struct pair *pr = arg;
    uint64_t expect = 0;
    uint64_t *o;
    while ((o = ring_get(pr->ring)) != NULL) {
        if (o[0] != (uint64_t)pr->id || o[1] != expect)
            pr->bad++;
        expect = o[1] + 1;
        hyi_pool_release(pr->pool, o);
    }
    return NULL;
}

static uint64_t stress_pairs(void)
{
    const char *env = getenv("HY_POOL_STRESS_PAIRS");
    if (env && *env)
        return strtoull(env, NULL, 10);
    return 10000000; /* about 0.2 s normally, 2 s under ASan, 8 s under TSan */
}

static void test_stress_cross_thread_pairs_are_counted_exactly(void **state)
{
    (void)state;
    enum { PAIRS = 4 }; /* 4 producers + 4 consumers = 8 threads */
    const uint64_t total = stress_pairs();
    hyi_pool *p = open_pool(0);
    struct ring *rings = aligned_alloc(64, PAIRS * sizeof *rings);
    assert_non_null(rings);
    struct pair prs[PAIRS];
    pthread_t pt[PAIRS], ct[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        atomic_init(&rings[i].head, 0);
        atomic_init(&rings[i].tail, 0);
        prs[i] = (struct pair){.pool = p, .ring = &rings[i], .id = i,
                               .n = total / PAIRS + (i < (int)(total % PAIRS))};
    }
    for (int i = 0; i < PAIRS; i++) {
        assert_int_equal(pthread_create(&ct[i], NULL, consumer, &prs[i]), 0);
        assert_int_equal(pthread_create(&pt[i], NULL, producer, &prs[i]), 0);
    }
    for (int i = 0; i < PAIRS; i++) {
        assert_int_equal(pthread_join(pt[i], NULL), 0);
        assert_int_equal(pthread_join(ct[i], NULL), 0);
    }
    for (int i = 0; i < PAIRS; i++) {
        assert_int_equal(prs[i].null, 0);
        assert_int_equal(prs[i].bad, 0);
    }
    hyi_pool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.created + s.reused, total);
    assert_true(s.peak_in_use >= 1);
    /* Rings bound what is in flight, so almost everything is recycled. */
    if (total >= 1000000) {
        assert_true(s.created < total / 10);
        assert_true(s.reuse_rate > 0.9);
    }
    print_message("stress: %llu pairs, created %llu, reused %llu, peak %llu, reserved %llu\n",
                  (unsigned long long)total, (unsigned long long)s.created,
                  (unsigned long long)s.reused, (unsigned long long)s.peak_in_use,
                  (unsigned long long)s.bytes_reserved);
    free(rings);
    hyi_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_null_out),
        cmocka_unit_test(test_acquire_gives_aligned_writable_object_of_at_least_size),
        cmocka_unit_test(test_object_size_is_the_class_size),
        cmocka_unit_test(test_prefetch_next_changes_nothing_the_pool_hands_out),
        cmocka_unit_test(test_release_of_null_is_a_no_op),
        cmocka_unit_test(test_released_object_is_reused_on_same_thread),
        cmocka_unit_test(test_stats_count_created_reused_in_use_and_peak),
        cmocka_unit_test(test_acquire_returns_null_past_the_cap),
        cmocka_unit_test(test_large_objects_come_from_the_allocator_and_are_counted),
        cmocka_unit_test(test_destroy_frees_live_large_and_small_objects),
        cmocka_unit_test(test_many_pools_in_one_thread_keep_separate_objects_and_stats),
        cmocka_unit_test(test_pools_created_and_destroyed_repeatedly_in_one_thread),
        cmocka_unit_test(test_thread_exit_flushes_its_cache_back_to_the_pool),
        cmocka_unit_test(test_destroy_is_safe_while_other_threads_cache_its_objects),
        cmocka_unit_test(test_double_release_aborts_with_a_message),
        cmocka_unit_test(test_release_to_another_pool_aborts_with_a_message),
        cmocka_unit_test(test_release_of_interior_pointer_aborts_with_a_message),
        cmocka_unit_test(test_released_objects_are_poisoned_under_asan),
        cmocka_unit_test(test_stress_cross_thread_pairs_are_counted_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
