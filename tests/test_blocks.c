/* Memory that goes back once unused: the actors' blocks and their slab
 * index, mapped arrays and the thread cache flush (pool/blocks.h), and the
 * message pool's trim and cache flush (hyi_pool_trim,
 * hyi_pool_flush_cache in pool/pool.h). Each test checks
 * exact figures: what is held while blocks or objects are out, and that it
 * all goes back once they are freed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "pool.h"

#define SLAB ((size_t)64 * 1024)

/* ---------------------------------------------------------------- blocks */

static void test_blocks_are_aligned_distinct_and_all_go_back(void **state)
{
    (void)state;
    size_t before = hyi_blocks_reserved();
    enum { N = 3000 };
    static unsigned char *b[N];
    for (size_t i = 0; i < N; i++) {
        size_t size = 64 * (1 + i % 16); /* every class */
        b[i] = hyi_block_alloc(size);
        assert_non_null(b[i]);
        assert_int_equal((uintptr_t)b[i] % HYI_BLOCK_ALIGN, 0);
        memset(b[i], (int)(i & 0xff), size);
    }
    assert_true(hyi_blocks_reserved() > before);
    /* nothing overlapped: each block still holds its own byte */
    for (size_t i = 0; i < N; i++) {
        size_t size = 64 * (1 + i % 16);
        for (size_t j = 0; j < size; j++)
            if (b[i][j] != (unsigned char)(i & 0xff))
                fail_msg("block %zu byte %zu overwritten", i, j);
    }
    for (size_t i = 0; i < N; i += 2) /* half, then the rest */
        hyi_block_free(b[i], 64 * (1 + i % 16));
    for (size_t i = 1; i < N; i += 2)
        hyi_block_free(b[i], 64 * (1 + i % 16));
    assert_int_equal(hyi_blocks_reserved(), before);
}

static void test_a_slab_goes_back_when_its_last_block_does(void **state)
{
    (void)state;
    size_t before = hyi_blocks_reserved();
    size_t per_slab = (SLAB - 64) / 256; /* the slab's header takes one line */
    enum { MAX = 2048 };
    static void *b[MAX];
    size_t n = per_slab + 1; /* one slab full, one more block opens a second */
    for (size_t i = 0; i < n; i++)
        assert_non_null(b[i] = hyi_block_alloc(256));
    assert_int_equal(hyi_blocks_reserved() - before, 2 * SLAB);
    hyi_block_free(b[n - 1], 256);
    assert_int_equal(hyi_blocks_reserved() - before, SLAB);
    /* the first slab is full: the next block opens a slab again */
    assert_non_null(b[n - 1] = hyi_block_alloc(256));
    assert_int_equal(hyi_blocks_reserved() - before, 2 * SLAB);
    for (size_t i = 0; i < n; i++)
        hyi_block_free(b[i], 256);
    assert_int_equal(hyi_blocks_reserved(), before);
}

static void test_large_and_null_blocks(void **state)
{
    (void)state;
    size_t before = hyi_blocks_reserved();
    void *big = hyi_block_alloc(HYI_BLOCKS_MAX + 64); /* past the classes */
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % HYI_BLOCK_ALIGN, 0);
    memset(big, 1, HYI_BLOCKS_MAX + 64);
    assert_int_equal(hyi_blocks_reserved(), before); /* the allocator's own */
    hyi_block_free(big, HYI_BLOCKS_MAX + 64);
    hyi_block_free(NULL, 256);
    assert_int_equal(hyi_blocks_reserved(), before);
}

#define THREADS 6 /* more than the machine's cores */

static void *churn(void *arg)
{
    size_t seed = (size_t)(uintptr_t)arg;
    enum { LIVE = 600 };
    void *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    for (size_t round = 0; round < 40000; round++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t at = (seed >> 33) % LIVE;
        if (live[at]) {
            if (*(size_t *)live[at] != at + 1)
                return (void *)1; /* another thread wrote our block */
            hyi_block_free(live[at], sizes[at]);
            live[at] = NULL;
        } else {
            sizes[at] = 64 * (1 + (seed >> 20) % 5);
            if (!(live[at] = hyi_block_alloc(sizes[at])))
                return (void *)1;
            *(size_t *)live[at] = at + 1;
        }
    }
    for (size_t i = 0; i < LIVE; i++)
        hyi_block_free(live[i], sizes[i]);
    return NULL;
}

static void test_blocks_from_many_threads_all_go_back(void **state)
{
    (void)state;
    size_t before = hyi_blocks_reserved();
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++) {
        void *bad = NULL;
        pthread_join(t[i], &bad);
        assert_null(bad);
    }
    assert_int_equal(hyi_blocks_reserved(), before);
}

static void test_a_class_index_shrinks_as_its_slabs_go(void **state)
{
    (void)state;
    size_t before = hyi_blocks_reserved(), index0 = hyi_blocks_index_bytes();
    enum { SIZE = 960, SLABS = 150 };
    size_t per_slab = (SLAB - 64) / SIZE, n = SLABS * per_slab;
    void **b = malloc(n * sizeof *b);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(b[i] = hyi_block_alloc(SIZE));
        memset(b[i], (int)(i & 0xff), SIZE);
    }
    assert_int_equal(hyi_blocks_reserved() - before, SLABS * SLAB);
    /* an index of at least SLABS slab pointers */
    assert_true(hyi_blocks_index_bytes() - index0 >= SLABS * sizeof(void *));
    /* Newest first, all but the first block: the index shrinks while the
     * frees still look their slabs up in it, and each finds its own (a
     * wrong one would not go back, and reserved would not fall). */
    for (size_t i = n - 1; i > 0; i--)
        hyi_block_free(b[i], SIZE);
    assert_int_equal(hyi_blocks_reserved() - before, SLAB);
    /* one slab left: the index is back at its first size, 64 slabs */
    assert_int_equal(hyi_blocks_index_bytes() - index0, 64 * sizeof(void *));
    assert_int_equal(((unsigned char *)b[0])[SIZE - 1], 0);
    /* it grows again and serves as before */
    for (size_t i = 1; i < n; i++)
        assert_non_null(b[i] = hyi_block_alloc(SIZE));
    for (size_t i = 0; i < n; i++)
        hyi_block_free(b[i], SIZE);
    assert_int_equal(hyi_blocks_reserved(), before);
    assert_int_equal(hyi_blocks_index_bytes(), index0);
    free(b);
}

static void test_arrays_are_zeroed_and_large_ones_mapped(void **state)
{
    (void)state;
    size_t sizes[] = {128, HYI_ARRAY_MAPPED_MIN - 64, HYI_ARRAY_MAPPED_MIN,
                      8 * HYI_ARRAY_MAPPED_MIN};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        bool mapped = !(sizes[i] >= HYI_ARRAY_MAPPED_MIN);
        unsigned char *a = hyi_array_zalloc(sizes[i], &mapped);
        assert_non_null(a);
        assert_int_equal(mapped, sizes[i] >= HYI_ARRAY_MAPPED_MIN);
        for (size_t j = 0; j < sizes[i]; j++)
            if (a[j] != 0)
                fail_msg("array of %zu: byte %zu not zero", sizes[i], j);
        memset(a, 0xa5, sizes[i]);
        hyi_array_free(a, sizes[i], mapped);
    }
    hyi_array_free(NULL, 0, false); /* ignored */
}

/* jemalloc's control call, when it is the allocator (not under SAN). */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

/* Bytes all threads' allocator caches hold (jemalloc's stats, refreshed). */
static size_t tcache_bytes(void)
{
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    assert_int_equal(mallctl("epoch", &epoch, &len, &epoch, len), 0);
    size_t v = 0;
    len = sizeof v;
    assert_int_equal(mallctl("stats.arenas.4096.tcache_bytes", &v, &len, NULL, 0), 0);
    return v;
}

static void test_thread_cache_flush_empties_this_threads_cache(void **state)
{
    (void)state;
    if (!mallctl)
        skip(); /* another malloc: nothing to flush */
    enum { N = 64 };
    void *p[N];
    for (size_t i = 0; i < N; i++)
        assert_non_null(p[i] = malloc(100 + i));
    for (size_t i = 0; i < N; i++)
        free(p[i]);
    assert_true(tcache_bytes() > 0); /* what was freed waits in the cache */
    hyi_thread_cache_flush();
    assert_int_equal(tcache_bytes(), 0); /* the only thread alive here */
}

/* ---------------------------------------------------------------- pool trim */

static uint64_t reserved(hyi_pool *p)
{
    hyi_pool_stats s;
    hyi_pool_get_stats(p, &s);
    return s.bytes_reserved;
}

/* A burst's objects, released on another thread (as workers release what
 * senders acquire), go back to the allocator; the counts stay right. */
static void *release_all(void *arg)
{
    void **v = arg;
    hyi_pool *p = v[0];
    for (size_t i = 2; v[i]; i++)
        hyi_pool_release(p, v[i]);
    return NULL;
}

static void test_trim_gives_back_a_released_burst(void **state)
{
    (void)state;
    hyi_pool *p = NULL;
    assert_int_equal(hyi_pool_create(&p, 0), 0);
    enum { BURST = 20000 };
    void **v = calloc(BURST + 3, sizeof *v);
    v[0] = p;
    for (size_t i = 0; i < BURST; i++)
        assert_non_null(v[2 + i] = hyi_pool_acquire(p, 100));
    uint64_t grown = reserved(p);
    assert_true(grown >= (uint64_t)BURST * 100);
    assert_int_equal(hyi_pool_trim(p), 0); /* everything is in use */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_all, v), 0);
    pthread_join(t, NULL); /* its cache went to the depot as it exited */
    hyi_pool_stats s;
    hyi_pool_get_stats(p, &s);
    assert_int_equal(s.in_use, 0);
    size_t freed = hyi_pool_trim(p);
    /* all but the slab this thread still carves from */
    assert_true(freed >= grown - SLAB);
    assert_int_equal(reserved(p), grown - freed);
    hyi_pool_get_stats(p, &s);
    assert_int_equal(s.in_use, 0);
    /* the pool still works, and grows again */
    for (size_t i = 0; i < BURST; i++)
        assert_non_null(v[2 + i] = hyi_pool_acquire(p, 100));
    hyi_pool_get_stats(p, &s);
    assert_int_equal(s.in_use, BURST);
    for (size_t i = 0; i < BURST; i++)
        hyi_pool_release(p, v[2 + i]);
    free(v);
    hyi_pool_destroy(p);
}

static void test_trim_keeps_slabs_with_live_objects(void **state)
{
    (void)state;
    hyi_pool *p = NULL;
    assert_int_equal(hyi_pool_create(&p, 0), 0);
    enum { BURST = 8000 };
    void **v = calloc(BURST + 3, sizeof *v);
    v[0] = p;
    for (size_t i = 0; i < BURST; i++) {
        assert_non_null(v[2 + i] = hyi_pool_acquire(p, 100));
        memset(v[2 + i], (int)(i & 0xff), 100);
    }
    /* keep every 64th object live: each slab keeps one */
    void *kept[BURST / 64 + 1];
    size_t nkept = 0;
    for (size_t i = 0; i < BURST; i += 64) {
        kept[nkept++] = v[2 + i];
        v[2 + i] = NULL;
    }
    size_t k = 2;
    for (size_t i = 2; i < BURST + 2; i++)
        if (v[i])
            v[k++] = v[i];
    v[k] = NULL;
    uint64_t grown = reserved(p);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_all, v), 0);
    pthread_join(t, NULL);
    assert_int_equal(hyi_pool_trim(p), 0);
    assert_int_equal(reserved(p), grown);
    for (size_t i = 0; i < nkept; i++) { /* untouched by the trim */
        unsigned char *o = kept[i];
        size_t idx = i * 64;
        for (size_t j = 0; j < 100; j++)
            if (o[j] != (unsigned char)(idx & 0xff))
                fail_msg("kept object %zu changed", i);
        hyi_pool_release(p, kept[i]);
    }
    free(v);
    hyi_pool_destroy(p);
}

/* Objects a thread keeps in its own cache pin their slabs until it flushes. */
static void test_flushed_cache_lets_trim_give_slabs_back(void **state)
{
    (void)state;
    hyi_pool *p = NULL;
    assert_int_equal(hyi_pool_create(&p, 0), 0);
    enum { BURST = 5000 };
    void **v = calloc(BURST, sizeof *v);
    for (size_t i = 0; i < BURST; i++)
        assert_non_null(v[i] = hyi_pool_acquire(p, 100));
    uint64_t grown = reserved(p);
    for (size_t i = 0; i < BURST; i++) /* released here: some stay in our cache */
        hyi_pool_release(p, v[i]);
    size_t before_flush = hyi_pool_trim(p);
    hyi_pool_flush_cache(p);
    size_t after_flush = hyi_pool_trim(p);
    assert_true(after_flush > 0); /* the cache pinned slabs the flush let go */
    /* all but the slab this thread still carves from */
    assert_true(before_flush + after_flush >= grown - SLAB);
    hyi_pool_stats s;
    hyi_pool_get_stats(p, &s);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.bytes_reserved, grown - before_flush - after_flush);
    free(v);
    hyi_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_are_aligned_distinct_and_all_go_back),
        cmocka_unit_test(test_a_slab_goes_back_when_its_last_block_does),
        cmocka_unit_test(test_large_and_null_blocks),
        cmocka_unit_test(test_blocks_from_many_threads_all_go_back),
        cmocka_unit_test(test_a_class_index_shrinks_as_its_slabs_go),
        cmocka_unit_test(test_arrays_are_zeroed_and_large_ones_mapped),
        cmocka_unit_test(test_thread_cache_flush_empties_this_threads_cache),
        cmocka_unit_test(test_trim_gives_back_a_released_burst),
        cmocka_unit_test(test_trim_keeps_slabs_with_live_objects),
        cmocka_unit_test(test_flushed_cache_lets_trim_give_slabs_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
