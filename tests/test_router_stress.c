/* Router under concurrent change: 8 matcher threads while a writer adds and
 * removes routes (static, {param}, regex) and a whole subsystem. Every result
 * must be consistent: a path either matches its own route with the right
 * captures or gets HY_ENOROUTE, never another route or a freed one. Built to
 * run clean under SAN=thread (publication, reclamation) and SAN=address (no
 * table or regex used after free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <cmocka.h>

#include "router.h"

#define MATCHERS 8
#define CHURN 24
#define WRITER_OPS 1500
#define WRITER_SECONDS 4 /* sanitizers slow the writer's waits; bound the run */

typedef struct expect {
    char pattern[64];
    char path[64];
    const char *capture;  /* expected first capture, NULL for none */
} expect;

static expect stable[3], churn[CHURN], tmp_route;
static int sub_s, sub_tmp;
static hyi_router *R;
static atomic_int stop;
static atomic_long bad_results, hits, misses;

static void set(expect *e, const char *pattern, const char *path, const char *capture)
{
    snprintf(e->pattern, sizeof e->pattern, "%s", pattern);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->capture = capture;
}

static bool capture_ok(const expect *e, const hyi_match *m)
{
    if (!e->capture)
        return m->nparams == 0;
    size_t n = strlen(e->capture);
    return m->nparams == 1 && m->params[0].len == n &&
           memcmp(e->path + m->params[0].off, e->capture, n) == 0;
}

static void check_one(const expect *e, bool must_match, void *want_sub)
{
    hyi_match m;
    int rc = hyi_router_match(R, e->path, strlen(e->path), &m);
    if (rc == 0 && m.route == e && capture_ok(e, &m) && m.subsystem == want_sub) {
        /* relaxed: a statistic, read after join */
        atomic_fetch_add_explicit(&hits, 1, memory_order_relaxed);
    } else if (rc == HY_ENOROUTE && !must_match &&
               (m.subsystem == want_sub || m.subsystem == NULL)) {
        atomic_fetch_add_explicit(&misses, 1, memory_order_relaxed); /* relaxed: statistic */
    } else {
        atomic_fetch_add_explicit(&bad_results, 1, memory_order_relaxed); /* relaxed: read after join */
    }
}

static void *matcher(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    /* relaxed: only a stop flag; the results are checked after join */
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % (CHURN + 4);
        if (k < 3)
            check_one(&stable[k], true, &sub_s);
        else if (k == 3)
            check_one(&tmp_route, false, &sub_tmp);
        else
            check_one(&churn[k - 4], false, &sub_s);
    }
    return NULL;
}

static void concurrent_changes_never_give_wrong_results(void **st)
{
    (void)st;
    assert_int_equal(hyi_router_create(&R), 0);
    assert_int_equal(hyi_router_add_subsystem(R, "s", &sub_s), 0);
    set(&stable[0], "stable/{id}", "s://stable/abc", "abc");
    set(&stable[1], "stable/fixed", "s://stable/fixed", NULL);
    set(&stable[2], "rx/{n:\\d+}", "s://rx/123", "123");
    for (int i = 0; i < 3; i++)
        assert_int_equal(hyi_router_add_route(R, "s", stable[i].pattern, &stable[i], NULL), 0);
    set(&tmp_route, "t/{id}", "tmp://t/q", "q");
    char pat[64], path[64];
    for (int k = 0; k < CHURN; k++) {
        switch (k % 3) {
        case 0:
            snprintf(pat, sizeof pat, "c%d/{id}/x", k);
            snprintf(path, sizeof path, "s://c%d/v%d/x", k, k);
            set(&churn[k], pat, path, NULL);
            snprintf(path, sizeof path, "v%d", k);
            churn[k].capture = strdup(path);
            break;
        case 1:
            snprintf(pat, sizeof pat, "c%d/{n:[0-9]+}/y", k);
            snprintf(path, sizeof path, "s://c%d/%d/y", k, 1000 + k);
            set(&churn[k], pat, path, NULL);
            snprintf(path, sizeof path, "%d", 1000 + k);
            churn[k].capture = strdup(path);
            break;
        default:
            snprintf(pat, sizeof pat, "c%d/static", k);
            snprintf(path, sizeof path, "s://c%d/static", k);
            set(&churn[k], pat, path, NULL);
        }
    }

    pthread_t th[MATCHERS];
    for (uintptr_t i = 0; i < MATCHERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, matcher, (void *)(i + 1)), 0);

    bool present[CHURN] = {0}, tmp_present = false;
    unsigned seed = 7;
    int errors = 0;
    time_t t0 = time(NULL);
    int op;
    for (op = 0; op < WRITER_OPS && (op < 100 || time(NULL) - t0 < WRITER_SECONDS); op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % (CHURN + 1);
        int rc;
        if (k == CHURN) {
            if (tmp_present) {
                rc = hyi_router_remove_subsystem(R, "tmp");
            } else {
                rc = hyi_router_add_subsystem(R, "tmp", &sub_tmp);
                if (rc == 0)
                    rc = hyi_router_add_route(R, "tmp", tmp_route.pattern, &tmp_route, NULL);
            }
            tmp_present = !tmp_present;
        } else if (present[k]) {
            rc = hyi_router_remove_route(R, "s", churn[k].pattern);
            present[k] = false;
        } else {
            rc = hyi_router_add_route(R, "s", churn[k].pattern, &churn[k], NULL);
            present[k] = true;
        }
        errors += rc != 0;
        /* Fillers: the map grows (rebuilt and republished) and gathers
         * tombstones while the matchers probe it. */
        char filler[32];
        if (op % 4 == 0) {
            snprintf(filler, sizeof filler, "f%d", op / 4);
            errors += hyi_router_add_subsystem(R, filler, NULL) != 0;
        } else if (op % 8 == 1 && op > 8) {
            snprintf(filler, sizeof filler, "f%d", op / 4 - 1);
            errors += hyi_router_remove_subsystem(R, filler) != 0;
        }
    }
    /* On a loaded machine the writer can finish before a matcher ran at all:
     * let them match the last table until both kinds of result are seen. */
    for (time_t w0 = time(NULL); time(NULL) - w0 < 30;) {
        if (atomic_load(&hits) > 0 && atomic_load(&misses) > 0)
            break;
        sched_yield();
    }
    atomic_store_explicit(&stop, 1, memory_order_relaxed); /* relaxed: join orders the rest */
    for (int i = 0; i < MATCHERS; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(errors, 0);
    assert_int_equal(atomic_load(&bad_results), 0);
    assert_true(atomic_load(&hits) > 0);
    assert_true(atomic_load(&misses) > 0);
    print_message("writer ops %d, matches %ld hit %ld missed\n", op, atomic_load(&hits),
                  atomic_load(&misses));
    hyi_router_destroy(R);
    for (int k = 0; k < CHURN; k++)
        free((void *)churn[k].capture);
}

/* Threads come and go: each registers a reader slot on its first match and
 * gives it back at exit; a writer must never wait for a thread that left. */
static void *short_lived(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        check_one(&stable[0], true, &sub_s);
    return NULL;
}

static void threads_that_exit_release_their_slots(void **st)
{
    (void)st;
    assert_int_equal(hyi_router_create(&R), 0);
    assert_int_equal(hyi_router_add_subsystem(R, "s", &sub_s), 0);
    assert_int_equal(hyi_router_add_route(R, "s", stable[0].pattern, &stable[0], NULL), 0);
    atomic_store(&bad_results, 0);
    for (int round = 0; round < 20; round++) {
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_create(&th[i], NULL, short_lived, NULL), 0);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        char pat[32];
        snprintf(pat, sizeof pat, "r%d", round);
        assert_int_equal(hyi_router_add_route(R, "s", pat, NULL, NULL), 0);
    }
    assert_int_equal(atomic_load(&bad_results), 0);
    hyi_router_destroy(R);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_changes_never_give_wrong_results),
        cmocka_unit_test(threads_that_exit_release_their_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
