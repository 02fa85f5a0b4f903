/* What a mass passivation gives back (docs/ARCHITECTURE.md §5, "Memory goes
 * back"): once every keyed actor is passivated and the passivation thread
 * says it is done (a sweep ended, its limbo empty), the actor table's
 * segments are back at the size a fresh kernel has, the actors' slabs and
 * the slab index are gone, and the table still works: every key activates
 * again with its saved state, and is passivated again. Unregistering a
 * subsystem with many actors shrinks the segments too.
 *
 * Senders run in more threads than cores while the passivation thread
 * removes actors and shrinks segments under them (the race TSan checks).
 * The "ctr" subsystem counts messages per key; its passivate callback saves
 * the count in `saved`, and state_init loads it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blocks.h"
#include "kernel.h"
#include "support.h"

/* Enough keys that each segment grows well past its initial slots. */
#ifdef SANITIZED
#define KEYS 12000
#else
#define KEYS 40000
#endif
#define SENDERS 4 /* more than the machine's cores, with the workers */
#define IDLE_MS 30

static _Atomic int64_t saved[KEYS]; /* a key's count as last passivated */
static _Atomic int bad_keys;

static int key_num(const char *key, size_t len)
{
    return key_number(key, len, 6, KEYS);
}

static int c_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata;
    int64_t *s = malloc(sizeof *s);
    if (!s)
        return -1;
    int n = key_num(key, key_len);
    if (n < 0 && key) /* NULL: the subsystem's own actor */
        atomic_fetch_add(&bad_keys, 1);
    *s = n < 0 ? 0 : atomic_load(&saved[n]);
    *state = s;
    return 0;
}

static int c_passivate(void *udata, const char *key, size_t key_len, void *state)
{
    (void)udata;
    int n = key_num(key, key_len);
    if (n < 0)
        return -1;
    atomic_store(&saved[n], *(int64_t *)state);
    return 0;
}

static int on_add(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    ++*(int64_t *)hy_state(ctx);
    return 0;
}

static const hy_route routes[] = {{.pattern = "add/{id}", .handler = on_add, .key = "id"}};

static hy_subsystem_def ctr_def(bool passivating)
{
    return (hy_subsystem_def){.routes = routes, .nroutes = 1, .state_init = c_init,
                              .state_free = i64_state_free,
                              .passivate = passivating ? c_passivate : NULL};
}

static hy_kernel *open_kernel(uint32_t idle_ms)
{
    for (size_t i = 0; i < KEYS; i++)
        atomic_store(&saved[i], 0);
    atomic_store(&bad_keys, 0);
    hy_config cfg = {.workers = 2, .idle_timeout_ms = idle_ms};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    if (rc)
        fail_msg("open: %s: %s", hy_err_name(rc), hy_errdetail());
    return k;
}

/* Each segment's slot count, under its lock. */
static void slot_counts(hy_kernel *k, size_t out[HYI_ACTOR_SEGMENTS])
{
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        pthread_mutex_lock(&k->segments[i].lock);
        out[i] = k->segments[i].cap;
        pthread_mutex_unlock(&k->segments[i].lock);
    }
}

static size_t slot_total(const size_t n[HYI_ACTOR_SEGMENTS])
{
    size_t t = 0;
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++)
        t += n[i];
    return t;
}

typedef struct sender {
    hy_kernel *k;
    int first, step;
    int bad_rc;
} sender;

/* One "add" to each key first, first + step, ... */
static void *send_share(void *arg)
{
    sender *s = arg;
    char path[48];
    for (int key = s->first; key < KEYS; key += s->step) {
        snprintf(path, sizeof path, "ctr://add/%d", key);
        int rc = hy_send(s->k, path, NULL, 0);
        if (rc && !s->bad_rc)
            s->bad_rc = rc;
    }
    return NULL;
}

/* One "add" to every key, from SENDERS threads at once. */
static void send_round(hy_kernel *k)
{
    pthread_t t[SENDERS];
    sender s[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        s[i] = (sender){.k = k, .first = i, .step = SENDERS};
        assert_int_equal(pthread_create(&t[i], NULL, send_share, &s[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].bad_rc, 0);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
}

static uint64_t actors_active(hy_kernel *k)
{
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    return st.actors_active;
}

/* Every keyed actor passivated, and the passivation thread done with it: a
 * sweep ended since, and no actor waits in its limbo. */
static bool wait_all_passivated_and_settled(hy_kernel *k)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 3 * 1000000u;
    while (actors_active(k) != 0) {
        if (mono_ns() > deadline)
            return false;
        usleep(1000);
    }
    uint64_t sweeps = hyi_janitor_sweeps(k);
    hyi_janitor_kick(k);
    while (hyi_janitor_sweeps(k) == sweeps || hyi_janitor_limbo_count(k) != 0) {
        if (mono_ns() > deadline)
            return false;
        usleep(1000);
    }
    return true;
}

static void assert_every_key_saved(int64_t count)
{
    for (int i = 0; i < KEYS; i++)
        if (atomic_load(&saved[i]) != count)
            fail_msg("key %d saved %lld, want %lld", i, (long long)atomic_load(&saved[i]),
                     (long long)count);
    assert_int_equal(atomic_load(&bad_keys), 0);
}

/* ---------------------------------------------------------------- tests */

static void test_mass_passivation_gives_table_and_slabs_back_and_table_still_works(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(IDLE_MS);
    hy_subsystem_def def = ctr_def(true);
    assert_int_equal(hy_subsystem_register(k, "ctr", &def), 0);
    size_t fresh[HYI_ACTOR_SEGMENTS], now[HYI_ACTOR_SEGMENTS];
    slot_counts(k, fresh);
    size_t slabs0 = hyi_blocks_reserved(), index0 = hyi_blocks_index_bytes();

    for (int64_t round = 1; round <= 2; round++) {
        send_round(k);
        assert_true(wait_all_passivated_and_settled(k));
        slot_counts(k, now);
        for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++)
            assert_int_equal(now[i], fresh[i]);
        assert_int_equal(hyi_blocks_reserved(), slabs0);
        assert_int_equal(hyi_blocks_index_bytes(), index0);
        assert_int_equal(hyi_janitor_limbo_count(k), 0);
        /* each key came back with what it had saved, and counted one more */
        assert_every_key_saved(round);
    }
    hy_kernel_close(k);
}

static void test_unregistering_many_actors_shrinks_the_table(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(0); /* no passivation: only the unregister frees */
    size_t fresh[HYI_ACTOR_SEGMENTS], now[HYI_ACTOR_SEGMENTS];
    slot_counts(k, fresh);
    size_t slabs0 = hyi_blocks_reserved();
    hy_subsystem_def def = ctr_def(false);
    assert_int_equal(hy_subsystem_register(k, "ctr", &def), 0);
    send_round(k);
    assert_int_equal(actors_active(k), KEYS);
    slot_counts(k, now);
    assert_true(slot_total(now) > slot_total(fresh));

    assert_int_equal(hy_subsystem_unregister(k, "ctr", -1), 0);
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 3 * 1000000u;
    while (hyi_blocks_reserved() != slabs0 && mono_ns() < deadline)
        usleep(1000); /* the subsystem's actors freed: reclaimed */
    assert_int_equal(hyi_blocks_reserved(), slabs0);
    slot_counts(k, now);
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++)
        assert_int_equal(now[i], fresh[i]);

    /* the shrunk table serves a new subsystem of the same name */
    assert_int_equal(hy_subsystem_register(k, "ctr", &def), 0);
    send_round(k);
    assert_int_equal(actors_active(k), KEYS);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mass_passivation_gives_table_and_slabs_back_and_table_still_works),
        cmocka_unit_test(test_unregistering_many_actors_shrinks_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
