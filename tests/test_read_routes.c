/* Read-only routes of persistent subsystems (hy_route.read_only,
 * docs/ARCHITECTURE.md §4): their messages are neither journaled nor
 * replayed, yet a read sent after a write by the same sender sees the write,
 * and a read handler cannot replace the actor's state.
 *
 * The "orders" subsystem keeps an int64 total per order: "order/{id}/add"
 * (journaled) adds the payload or 1, "order/{id}/total" (read-only) replies
 * with it or, for a plain send, records what it saw; "order/{id}/sneak"
 * (read-only) tries hy_set_state. Each test works in a fresh mkdtemp
 * directory under /tmp. */
#include <ftw.h>
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
#include <sys/stat.h>

#include <cmocka.h>

#include "hypha.h"
#include "support.h"
#include "tmpdir.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Sanitizers slow each round down: fewer of them. */
#ifdef SANITIZED
#define ROUNDS(plain, sanitized) (sanitized)
#else
#define ROUNDS(plain, sanitized) (plain)
#endif


/* ---------------------------------------------------------------- the orders */

static struct {
    _Atomic int read_replays;     /* read handler calls with hy_is_replaying */
    _Atomic int write_replays;
    _Atomic int64_t last_seen;    /* what the last plain-send read saw */
    _Atomic int reads_seen;
    _Atomic int durable_ok, durable_err;
} seen;

/* What each plain-send read saw, in the order they ran (one actor). */
static int64_t seen_log[4096];

static int on_add(hy_ctx *ctx, const hy_msg *msg)
{
    if (hy_is_replaying(ctx))
        atomic_fetch_add(&seen.write_replays, 1);
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    int64_t by = 1;
    if (len == sizeof by)
        memcpy(&by, p, sizeof by);
    *(int64_t *)hy_state(ctx) += by;
    return 0;
}

static int on_total(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    if (hy_is_replaying(ctx))
        atomic_fetch_add(&seen.read_replays, 1);
    int64_t v = *(int64_t *)hy_state(ctx);
    int rc = hy_reply(ctx, &v, sizeof v);
    if (rc != HY_ENOENT) /* an ask */
        return rc;
    atomic_store(&seen.last_seen, v);
    int at = atomic_fetch_add(&seen.reads_seen, 1);
    if (at < (int)(sizeof seen_log / sizeof seen_log[0]))
        seen_log[at] = v; /* one actor's reads run one at a time */
    return 0;
}

static int on_sneak(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    static int64_t other = 1000;
    hy_set_state(ctx, &other); /* refused: the state stays */
    return 0;
}

static const hy_route order_routes[] = {
    {.pattern = "order/{id}/add", .handler = on_add, .key = "id"},
    {.pattern = "order/{id}/total", .handler = on_total, .key = "id", .read_only = 1},
    {.pattern = "order/{id}/sneak", .handler = on_sneak, .key = "id", .read_only = 1},
};

static hy_kernel *open_orders(const fixture *f, hy_durability durability,
                              uint32_t idle_timeout_ms)
{
    memset(&seen, 0, sizeof seen);
    hy_config cfg = {.workers = 2, .journal_path = f->env, .durability = durability};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    if (rc)
        fail_msg("open: %s: %s", hy_err_name(rc), hy_errdetail());
    hy_subsystem_def def = {.routes = order_routes, .nroutes = ARRAY_LEN(order_routes),
                            .state_init = i64_state_init, .state_free = i64_state_free, .persistent = 1,
                            .state_save = idle_timeout_ms ? i64_state_save : NULL,
                            .state_load = idle_timeout_ms ? i64_state_load : NULL,
                            .idle_timeout_ms = idle_timeout_ms};
    rc = hy_subsystem_register(k, "orders", &def);
    if (rc)
        fail_msg("register: %s: %s", hy_err_name(rc), hy_errdetail());
    return k;
}

static int64_t total(hy_kernel *k, const char *id)
{
    char path[64];
    snprintf(path, sizeof path, "orders://order/%s/total", id);
    void *reply = NULL;
    size_t len = 0;
    int rc = hy_ask(k, path, NULL, 0, &reply, &len, WAIT_MS);
    if (rc)
        fail_msg("ask %s: %s: %s", path, hy_err_name(rc), hy_errdetail());
    assert_int_equal(len, sizeof(int64_t));
    int64_t v;
    memcpy(&v, reply, sizeof v);
    hy_free(reply);
    return v;
}

static void add(hy_kernel *k, const char *id, int64_t by)
{
    char path[64];
    snprintf(path, sizeof path, "orders://order/%s/add", id);
    int rc = hy_send(k, path, &by, sizeof by);
    if (rc)
        fail_msg("send %s: %s: %s", path, hy_err_name(rc), hy_errdetail());
}

static hy_stats stats(hy_kernel *k)
{
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    return s;
}

/* ---------------------------------------------------------------- tests */

static void test_reads_add_no_journal_entry_and_are_not_replayed(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_NOSYNC, 0);
    add(k, "7", 5);
    add(k, "7", 2);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    uint64_t entries = stats(k).journal_entries;
    assert_int_equal(entries, 2);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(total(k, "7"), 7);
        assert_int_equal(hy_send(k, "orders://order/7/total", NULL, 0), 0);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    hy_stats s = stats(k);
    assert_int_equal(s.journal_entries, entries); /* 100 reads: no entry */
    assert_int_equal(atomic_load(&seen.reads_seen), 50);
    assert_int_equal(s.failed, 0);
    hy_kernel_close(k);

    /* Reopen: order 7 is rebuilt from its two writes only. */
    k = open_orders(f, HY_DURABILITY_NOSYNC, 0);
    assert_int_equal(total(k, "7"), 7);
    s = stats(k);
    assert_int_equal(s.journal_replayed, 2);
    assert_int_equal(atomic_load(&seen.write_replays), 2);
    assert_int_equal(atomic_load(&seen.read_replays), 0);
    assert_int_equal(s.journal_entries, 0); /* the verification wrote nothing */
    hy_kernel_close(k);
}

/* With fsync on, every write is in flight for a while: a read sent right
 * after it, without waiting, must still come after it. */
static void test_write_then_read_from_one_sender_sees_the_write(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_SYNC, 0);
    int rounds = ROUNDS(200, 40);
    for (int i = 1; i <= rounds; i++) {
        add(k, "a", 1);
        assert_int_equal(total(k, "a"), i);
        /* a plain send too: it sees the write before it */
        add(k, "b", 1);
        assert_int_equal(hy_send(k, "orders://order/b/total", NULL, 0), 0);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&seen.last_seen), rounds);
    assert_int_equal(stats(k).journal_entries, 2 * (uint64_t)rounds);
    hy_kernel_close(k);
}

/* Writes and reads sent back to back, nothing awaited: several reads wait
 * at once, each released when the writes before it are delivered; each sees
 * exactly the writes sent before it. */
static void test_interleaved_reads_each_see_exactly_the_writes_before_them(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_SYNC, 0);
    int rounds = ROUNDS(2000, 300);
    for (int i = 1; i <= rounds; i++) {
        add(k, "r", 1);
        if (i % 3 == 0)
            add(k, "r", 1); /* sometimes two writes before a read */
        assert_int_equal(hy_send(k, "orders://order/r/total", NULL, 0), 0);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&seen.reads_seen), rounds);
    for (int i = 1; i <= rounds; i++)
        if (seen_log[i - 1] != i + i / 3)
            fail_msg("read %d saw %lld, want %d", i, (long long)seen_log[i - 1], i + i / 3);
    hy_kernel_close(k);
}

static void test_batch_read_comes_after_the_writes_before_it(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_SYNC, 0);
    int64_t three = 3;
    hy_send_item items[] = {
        {"orders://order/x/add", &three, sizeof three},
        {"orders://order/x/add", &three, sizeof three},
        {"orders://order/x/total", NULL, 0},
        {"orders://order/x/add", &three, sizeof three},
    };
    size_t accepted = 0;
    assert_int_equal(hy_send_batch(k, items, ARRAY_LEN(items), &accepted), 0);
    assert_int_equal(accepted, ARRAY_LEN(items));
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&seen.last_seen), 6); /* not 0, not 9 */
    assert_int_equal(total(k, "x"), 9);
    assert_int_equal(stats(k).journal_entries, 3);
    hy_kernel_close(k);
}

static void on_durable(void *udata, int status)
{
    (void)udata;
    atomic_fetch_add(status == 0 ? &seen.durable_ok : &seen.durable_err, 1);
}

static void test_durable_send_to_a_read_route_acknowledges_without_writing(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_NOSYNC, 0);
    add(k, "d", 4);
    assert_int_equal(
            hy_send_durable(k, "orders://order/d/total", NULL, 0, on_durable, NULL), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&seen.durable_ok), 1);
    assert_int_equal(atomic_load(&seen.durable_err), 0);
    assert_int_equal(atomic_load(&seen.last_seen), 4);
    assert_int_equal(stats(k).journal_entries, 1);
    hy_kernel_close(k);
}

static void test_set_state_from_a_read_route_fails_the_message(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_NOSYNC, 0);
    add(k, "s", 2);
    void *reply = NULL;
    size_t len = 0;
    assert_int_equal(hy_ask(k, "orders://order/s/sneak", NULL, 0, &reply, &len, WAIT_MS),
                     HY_EHANDLER);
    assert_int_equal(hy_send(k, "orders://order/s/sneak", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    hy_stats s = stats(k);
    assert_int_equal(s.failed, 2);
    assert_int_equal(total(k, "s"), 2); /* the state was not replaced */
    assert_int_equal(stats(k).journal_entries, 1);
    hy_kernel_close(k);
}

/* ---------------------------------------------------------------- many senders */

#define SENDERS 6 /* more threads than the machine's cores */

typedef struct sender {
    hy_kernel *k;
    int index, rounds;
    int bad;      /* reads that missed their own writes */
} sender;

/* Each sender writes its own order and a shared one, reading both after
 * each write: its own total is exact, the shared one at least its own
 * writes so far. Idle actors passivate meanwhile (1 ms), so reads also meet
 * passivation and reactivation. */
static void *sender_main(void *arg)
{
    sender *s = arg;
    char own[16];
    snprintf(own, sizeof own, "own%d", s->index);
    for (int i = 1; i <= s->rounds; i++) {
        add(s->k, own, 1);
        add(s->k, "shared", 1);
        if (total(s->k, own) != i)
            s->bad++;
        if (total(s->k, "shared") < i)
            s->bad++;
    }
    return NULL;
}

static void test_many_senders_reads_see_their_own_writes(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_orders(f, HY_DURABILITY_NOSYNC, 1);
    int rounds = ROUNDS(400, 60);
    pthread_t t[SENDERS];
    sender s[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        s[i] = (sender){k, i, rounds, 0};
        assert_int_equal(pthread_create(&t[i], NULL, sender_main, &s[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].bad, 0);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(total(k, "shared"), (int64_t)SENDERS * rounds);
    hy_stats st = stats(k);
    assert_int_equal(st.journal_entries, 2 * (uint64_t)SENDERS * rounds);
    assert_int_equal(st.failed, 0);
    for (int d = 0; d < HY_DEAD__COUNT; d++)
        assert_int_equal(st.dead[d], 0);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_add_no_journal_entry_and_are_not_replayed,
                                        tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_write_then_read_from_one_sender_sees_the_write,
                                        tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(
                test_interleaved_reads_each_see_exactly_the_writes_before_them, tmpdir_setup,
                tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_batch_read_comes_after_the_writes_before_it,
                                        tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(
                test_durable_send_to_a_read_route_acknowledges_without_writing, tmpdir_setup,
                tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_set_state_from_a_read_route_fails_the_message,
                                        tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_many_senders_reads_see_their_own_writes, tmpdir_setup,
                                        tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
