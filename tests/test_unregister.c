/* Unregistering frees: a subsystem, its actors (keyed ones included), its
 * route bindings and state are given back once nothing can reach them, so
 * register/unregister churn keeps memory flat; and a handler blocked past the
 * timeout makes hy_subsystem_unregister return HY_EBUSY, the freeing
 * finishing in the background once it returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "hypha.h"
#include "support.h"

#define KEYS 8

static _Atomic uint64_t live_states;     /* made by state_init, not yet freed */
static _Atomic uint64_t handled, dead_unregistered, dead_other, passivated;

static void count_dead(void *udata, const char *path, size_t path_len, const void *payload,
                       size_t len, hy_dead_reason reason)
{
    (void)udata, (void)path, (void)path_len, (void)payload, (void)len;
    if (reason == HY_DEAD_UNREGISTERED)
        atomic_fetch_add(&dead_unregistered, 1);
    else if (reason != HY_DEAD_NOROUTE) /* refused sends, not accepted ones */
        atomic_fetch_add(&dead_other, 1);
}

static int state_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = malloc(64);
    if (!*state)
        return -1;
    atomic_fetch_add(&live_states, 1);
    return 0;
}

static void state_free(void *udata, void *state)
{
    (void)udata;
    free(state);
    atomic_fetch_sub(&live_states, 1);
}

static int on_passivate(void *udata, const char *key, size_t key_len, void *state)
{
    (void)udata, (void)key, (void)key_len, (void)state;
    atomic_fetch_add(&passivated, 1);
    return 0;
}

static int count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add(&handled, 1);
    return 0;
}

static hy_kernel *open_kernel(void)
{
    atomic_store(&live_states, 0);
    atomic_store(&handled, 0);
    atomic_store(&dead_unregistered, 0);
    atomic_store(&dead_other, 0);
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = 2, .dead_letter = count_dead};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    return k;
}

/* Register "churn": its own actor and KEYS keyed ones, each with a state;
 * `passivating`: idle actors are passivated too, so unregistering meets
 * actors in the passivation thread's hands. */
static void register_churn(hy_kernel *k, bool passivating)
{
    hy_route r[] = {{.pattern = "own", .handler = count},
                    {.pattern = "k/{id}", .handler = count, .key = "id"}};
    hy_subsystem_def def = {.routes = r,
                            .nroutes = 2,
                            .state_init = state_init,
                            .state_free = state_free,
                            .passivate = passivating ? on_passivate : NULL,
                            .idle_timeout_ms = passivating ? 1 : 0};
    assert_int_equal(hy_subsystem_register(k, "churn", &def), 0);
}

/* Wait until the kernel holds no user subsystem but `keep` and no actor
 * state: everything unregistered has been freed. */
static bool wait_reclaimed(hy_kernel *k, uint64_t keep)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 3 * 1000000u;
    for (;;) {
        hy_stats st;
        assert_int_equal(hy_kernel_stats(k, &st), 0);
        if (st.subsystems == keep && atomic_load(&live_states) == 0)
            return true;
        if (mono_ns() > deadline)
            return false;
        usleep(1000);
    }
}

typedef struct sender {
    hy_kernel *k;
    _Atomic int *stop;
    uint64_t accepted;
    int bad_rc; /* the first code that is neither 0 nor HY_ENOROUTE */
} sender;

static void *send_while_churning(void *arg)
{
    sender *s = arg;
    char path[32];
    for (uint64_t i = 0; !atomic_load(s->stop); i++) {
        if (i % 3 == 0)
            snprintf(path, sizeof path, "churn://own");
        else
            snprintf(path, sizeof path, "churn://k/%u", (unsigned)(i % KEYS));
        /* Bursts with pauses: registering and unregistering wait out every
         * sender's read section (a router synchronize), which threads that
         * never sleep would make wait for whole time slices of more threads
         * than cores. */
        if (i % 8 == 7) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
        int rc = hy_send(s->k, path, &i, sizeof i);
        if (rc == 0)
            s->accepted++;
        else if (rc != HY_ENOROUTE && !s->bad_rc)
            s->bad_rc = rc;
    }
    return NULL;
}

/* 10k rounds of register, send, unregister while more threads than cores
 * send to the same name: nothing accepted is lost, and what unregistered
 * subsystems held (the subsystem, its actors and their states, its routes)
 * is freed, so the figures come back to where they started and the resident
 * set stays flat. */
static void churn_keeps_memory_flat(void **state)
{
    (void)state;
    enum { SENDERS = 4, WARMUP = 2000 };
    /* HY_CHURN_ROUNDS: a longer or shorter run by hand */
    const char *env = getenv("HY_CHURN_ROUNDS");
    const unsigned ROUNDS = env && atoi(env) > WARMUP ? (unsigned)atoi(env) : 10000;
    hy_kernel *k = open_kernel();
    hy_stats base;
    assert_int_equal(hy_kernel_stats(k, &base), 0);
    _Atomic int stop = 0;
    sender snd[SENDERS];
    pthread_t th[SENDERS];
    for (unsigned i = 0; i < SENDERS; i++) {
        snd[i] = (sender){.k = k, .stop = &stop};
        pthread_create(&th[i], NULL, send_while_churning, &snd[i]);
    }
    uint64_t own_accepted = 0, rss_warm = 0, peak_subsystems = 0;
    char path[32];
    for (unsigned round = 0; round < ROUNDS; round++) {
        register_churn(k, round % 4 == 3);
        for (unsigned i = 0; i < KEYS; i++) {
            snprintf(path, sizeof path, "churn://k/%u", i);
            assert_int_equal(hy_send(k, path, NULL, 0), 0);
        }
        assert_int_equal(hy_send(k, "churn://own", NULL, 0), 0);
        own_accepted += KEYS + 1;
        assert_int_equal(hy_subsystem_unregister(k, "churn", -1), 0);
        if (round % 1000 == 999) {
            if (getenv("HY_CHURN_VERBOSE"))
                fprintf(stderr, "round %u\n", round + 1);
            hy_stats st;
            assert_int_equal(hy_kernel_stats(k, &st), 0);
            if (st.subsystems > peak_subsystems)
                peak_subsystems = st.subsystems;
        }
        if (round + 1 == WARMUP) {
            assert_true(wait_reclaimed(k, 0));
            rss_warm = rss_bytes();
        }
    }
    atomic_store(&stop, 1);
    uint64_t accepted = own_accepted;
    for (unsigned i = 0; i < SENDERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(snd[i].bad_rc, 0);
        accepted += snd[i].accepted;
    }
    assert_true(wait_reclaimed(k, 0));
    uint64_t rss_end = rss_bytes();
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    print_message("churn: %u rounds, %lu accepted, peak %lu subsystems waiting, rss %lu -> %lu "
                  "KiB\n",
                  ROUNDS, (unsigned long)accepted, (unsigned long)peak_subsystems,
                  (unsigned long)(rss_warm >> 10), (unsigned long)(rss_end >> 10));
    /* Nothing accepted was lost (unregister had all the time it wanted). */
    assert_int_equal(atomic_load(&handled), accepted);
    assert_int_equal(atomic_load(&dead_unregistered), 0);
    assert_int_equal(atomic_load(&dead_other), 0);
    /* Back where it started: no subsystem, actor or state left; the books of
     * the freed subsystems still count and balance. */
    assert_int_equal(st.subsystems, base.subsystems);
    assert_int_equal(st.actors, base.actors);
    assert_int_equal(st.sent, accepted);
    assert_int_equal(st.handled, accepted);
    assert_int_equal(st.queued, 0);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "churn", &ss), HY_ENOENT);
#ifndef SANITIZED
    /* Sanitizers keep freed memory in quarantine: the resident set only says
     * something without them. 8k rounds kept would be megabytes. */
    assert_true(rss_end < rss_warm + ((uint64_t)2 << 20));
#endif
    hy_kernel_close(k);
}

static gate blocker;

static int blocked(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    gate_pass(&blocker);
    atomic_fetch_add(&handled, 1);
    return 0;
}

/* A kernel with subsystem "slow" whose handler blocks until blocker.open. */
static hy_kernel *open_with_blocked_subsystem(void)
{
    hy_kernel *k = open_kernel();
    atomic_store(&blocker.entered, 0);
    atomic_store(&blocker.open, 0);
    hy_route r = {.pattern = "own", .handler = blocked};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .state_init = state_init,
                            .state_free = state_free};
    assert_int_equal(hy_subsystem_register(k, "slow", &def), 0);
    return k;
}

/* A handler blocked past the timeout: unregister returns HY_EBUSY rather than
 * wait for it; the name is free at once; when the handler returns, what was
 * queued behind it becomes dead letters and the subsystem is freed. */
static void blocked_handler_past_timeout_is_busy(void **state)
{
    (void)state;
    enum { QUEUED = 5 };
    hy_kernel *k = open_with_blocked_subsystem();
    assert_int_equal(hy_send(k, "slow://own", NULL, 0), 0);
    assert_true(wait_for(&blocker.entered, 1));
    for (int i = 0; i < QUEUED; i++)
        assert_int_equal(hy_send(k, "slow://own", NULL, 0), 0);

    uint64_t t0 = mono_ns();
    assert_int_equal(hy_subsystem_unregister(k, "slow", 50), HY_EBUSY);
    assert_non_null(strstr(hy_errdetail(), "slow"));
    assert_true(mono_ns() - t0 < (uint64_t)WAIT_MS * 1000000u); /* it did not wait for the gate */
    assert_int_equal(atomic_load(&handled), 0);
    assert_int_equal(hy_send(k, "slow://own", NULL, 0), HY_ENOROUTE);

    /* The name is free; the old subsystem waits for its handler meanwhile. */
    hy_route r2 = {.pattern = "own", .handler = count};
    hy_subsystem_def def2 = {.routes = &r2, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "slow", &def2), 0);
    assert_int_equal(hy_send(k, "slow://own", NULL, 0), 0);
    assert_true(wait_for_u64(&handled, 1));
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.subsystems, 2);
    assert_int_equal(atomic_load(&live_states), 1);

    gate_open(&blocker);
    assert_true(wait_reclaimed(k, 1));
    assert_int_equal(atomic_load(&handled), 2); /* the blocked one, the new one */
    assert_int_equal(atomic_load(&dead_unregistered), QUEUED);
    assert_int_equal(atomic_load(&dead_other), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.sent, 1 + QUEUED + 1); /* blocked, queued, the new one */
    assert_int_equal(st.handled + st.dead[HY_DEAD_UNREGISTERED], st.sent);
    hy_kernel_close(k);
}

/* Closing with an unregistered subsystem still blocked in a handler frees it
 * too (the handler returns first: close drains). */
static void close_frees_what_is_not_reclaimed_yet(void **state)
{
    (void)state;
    hy_kernel *k = open_with_blocked_subsystem();
    assert_int_equal(hy_send(k, "slow://own", NULL, 0), 0);
    assert_int_equal(hy_send(k, "slow://own", NULL, 0), 0);
    assert_true(wait_for(&blocker.entered, 1));
    assert_int_equal(hy_subsystem_unregister(k, "slow", 0), HY_EBUSY);
    gate_open(&blocker);
    hy_kernel_close(k);
    assert_int_equal(atomic_load(&live_states), 0);
    assert_int_equal(atomic_load(&handled), 1);
    assert_int_equal(atomic_load(&dead_unregistered), 1);
}

/* ------------------------------------------------------------ persistent */

#define PKEYS 10
static _Atomic uint64_t last_count[PKEYS];

static int p_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    if (!(*state = calloc(1, sizeof(uint64_t))))
        return -1;
    atomic_fetch_add(&live_states, 1);
    return 0;
}

static int p_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    return state_save_copy(state, sizeof(uint64_t), bytes, len);
}

static int p_load(void *udata, const char *key, size_t key_len, const void *bytes, size_t len,
                  void **state)
{
    (void)udata, (void)key, (void)key_len;
    int rc = state_load_copy(bytes, len, sizeof(uint64_t), state);
    if (rc == 0)
        atomic_fetch_add(&live_states, 1);
    return rc;
}

static int p_count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    uint64_t *n = hy_state(ctx);
    ++*n;
    size_t len;
    const char *key = hy_actor_key(ctx, &len);
    if (!hy_is_replaying(ctx))
        atomic_store(&last_count[atoi(key)], *n);
    return 0;
}

static void register_persistent(hy_kernel *k)
{
    hy_route r = {.pattern = "a/{id}", .handler = p_count, .key = "id"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .persistent = 1, .state_init = p_init,
                            .state_free = state_free, .state_save = p_save,
                            .state_load = p_load};
    assert_int_equal(hy_subsystem_register(k, "acct", &def), 0);
}

/* A persistent subsystem is freed too (its actors, replay router, journal
 * completions all done), and registering it again rebuilds its actors from
 * the journal. */
static void persistent_subsystem_is_freed_and_recovers(void **state)
{
    (void)state;
    char dir[] = "/tmp/hy-unreg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char journal[64];
    snprintf(journal, sizeof journal, "%s/journal", dir);
    atomic_store(&live_states, 0);
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = 2, .journal_path = journal,
                     .durability = HY_DURABILITY_NOSYNC, .dead_letter = count_dead};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    char path[32];
    for (int round = 0; round < 3; round++) {
        register_persistent(k);
        for (int i = 0; i < 10 * PKEYS; i++) {
            snprintf(path, sizeof path, "acct://a/%d", i % PKEYS);
            assert_int_equal(hy_send(k, path, NULL, 0), 0);
        }
        assert_int_equal(hy_subsystem_unregister(k, "acct", -1), 0);
        assert_true(wait_reclaimed(k, 0));
        /* Each key counted on from what the journal held. */
        for (int i = 0; i < PKEYS; i++)
            assert_int_equal(atomic_load(&last_count[i]), 10 * (round + 1));
    }
    hy_kernel_close(k);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(churn_keeps_memory_flat),
        cmocka_unit_test(blocked_handler_past_timeout_is_busy),
        cmocka_unit_test(close_frees_what_is_not_reclaimed_yet),
        cmocka_unit_test(persistent_subsystem_is_freed_and_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
