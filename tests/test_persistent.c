/* Persistent subsystems in the kernel (docs/ARCHITECTURE.md §4): messages are
 * journaled before their handler runs, actors are rebuilt from snapshot and
 * journal when they are made, replaying handlers cannot send, and a full
 * journal stops persistent sends without stopping the rest of the kernel.
 *
 * Each test works in a fresh mkdtemp directory under /tmp, removed by its
 * teardown. The "counter" subsystem keeps an int64 per actor: "add" adds the
 * payload (or 1), "fail" fails without touching it, "fwd" adds 1 and sends to
 * the non-persistent "sink", "get" replies with the value; keyed actors live
 * under "acct/{id}/...". */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "hypha.h"
#include "support.h"
#include "tmpdir.h"

#define HY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- fixture */


/* ---------------------------------------------------------------- the counter */

/* What the handlers saw; reset per kernel. */
static struct {
    _Atomic int replayed_calls;  /* handler calls with hy_is_replaying */
    _Atomic int live_calls;
    _Atomic int fwd_send_rc_nonzero;
    _Atomic int sink_got;
} seen;

static int64_t *counter(hy_ctx *ctx)
{
    return hy_state(ctx);
}

static void note(hy_ctx *ctx)
{
    if (hy_is_replaying(ctx))
        atomic_fetch_add(&seen.replayed_calls, 1);
    else
        atomic_fetch_add(&seen.live_calls, 1);
}

static int on_add(hy_ctx *ctx, const hy_msg *msg)
{
    note(ctx);
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    int64_t by = 1;
    if (len == sizeof by)
        memcpy(&by, p, sizeof by);
    *counter(ctx) += by;
    return 0;
}

static int on_fail(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    note(ctx);
    return -1; /* and leaves the state alone */
}

static int on_fwd(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    note(ctx);
    *counter(ctx) += 1;
    if (hy_send(hy_ctx_kernel(ctx), "sink://x", "s", 1) != 0)
        atomic_fetch_add(&seen.fwd_send_rc_nonzero, 1);
    return 0;
}

static int on_get(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    int64_t v = *counter(ctx);
    int rc = hy_reply(ctx, &v, sizeof v);
    return hy_is_replaying(ctx) || rc == 0 ? 0 : rc;
}

static int on_sink(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add(&seen.sink_got, 1);
    return 0;
}

static const hy_route counter_routes[] = {
    {.pattern = "add", .handler = on_add},
    {.pattern = "fail", .handler = on_fail},
    {.pattern = "fwd", .handler = on_fwd},
    {.pattern = "get", .handler = on_get},
    {.pattern = "acct/{id}/add", .handler = on_add, .key = "id"},
    {.pattern = "acct/{id}/get", .handler = on_get, .key = "id"},
};

static hy_kernel *open_kernel(const fixture *f, uint32_t snapshot_every, bool snapshots)
{
    memset(&seen, 0, sizeof seen);
    hy_config cfg = {.workers = 2, .journal_path = f->env,
                     .durability = HY_DURABILITY_NOSYNC, .snapshot_every = snapshot_every};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    if (rc)
        fail_msg("open: %s: %s", hy_err_name(rc), hy_errdetail());
    hy_subsystem_def def = {.routes = counter_routes, .nroutes = HY_ARRAY_LEN(counter_routes),
                            .state_init = i64_state_init, .state_free = i64_state_free,
                            .persistent = 1,
                            .state_save = snapshots ? i64_state_save : NULL,
                            .state_load = snapshots ? i64_state_load : NULL};
    rc = hy_subsystem_register(k, "counter", &def);
    if (rc)
        fail_msg("register: %s: %s", hy_err_name(rc), hy_errdetail());
    static const hy_route sink_routes[] = {{.pattern = "x", .handler = on_sink}};
    hy_subsystem_def sink = {.routes = sink_routes, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "sink", &sink), 0);
    return k;
}

static int64_t get(hy_kernel *k, const char *path)
{
    void *reply = NULL;
    size_t len = 0;
    int rc = hy_ask(k, path, NULL, 0, &reply, &len, 5000);
    if (rc)
        fail_msg("ask %s: %s: %s", path, hy_err_name(rc), hy_errdetail());
    assert_int_equal(len, sizeof(int64_t));
    int64_t v;
    memcpy(&v, reply, sizeof v);
    hy_free(reply);
    return v;
}

static void send_ok(hy_kernel *k, const char *path)
{
    int rc = hy_send(k, path, NULL, 0);
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

static void test_counter_snapshot_then_reopen_gives_one(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1, true);
    send_ok(k, "counter://add");
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_true(stats(k).snapshots >= 1);
    hy_kernel_close(k);

    k = open_kernel(f, 1, true);
    assert_int_equal(get(k, "counter://get"), 1);
    /* The snapshot covered the add: nothing to replay but the state. */
    assert_int_equal(seen.replayed_calls, 0);
    hy_kernel_close(k);
}

static void test_two_increments_without_snapshot_replay_on_reopen(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, true);
    send_ok(k, "counter://add");
    send_ok(k, "counter://add");
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(stats(k).snapshots, 0);
    hy_kernel_close(k);

    k = open_kernel(f, 1000, true);
    assert_int_equal(seen.replayed_calls, 2);
    assert_int_equal(stats(k).journal_replayed, 2);
    assert_int_equal(get(k, "counter://get"), 2);
    hy_kernel_close(k);
}

static void test_failing_message_leaves_state_unchanged(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, false);
    send_ok(k, "counter://add");
    send_ok(k, "counter://fail");
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(get(k, "counter://get"), 1);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "counter", &ss), 0);
    assert_int_equal(ss.failed, 1);
    hy_kernel_close(k);

    k = open_kernel(f, 1000, false);
    assert_int_equal(get(k, "counter://get"), 1);
    /* The failing entry was replayed, failed again, and changed nothing. */
    assert_int_equal(hy_subsystem_stats_get(k, "counter", &ss), 0);
    assert_int_equal(ss.failed, 1);
    hy_kernel_close(k);
}

static void test_replaying_handlers_see_the_flag_and_cannot_send(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, false);
    send_ok(k, "counter://fwd");
    send_ok(k, "counter://fwd");
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(seen.sink_got, 2);
    assert_int_equal(seen.replayed_calls, 0);
    assert_int_equal(stats(k).replay_suppressed, 0);
    hy_kernel_close(k);

    k = open_kernel(f, 1000, false);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(seen.replayed_calls, 2);
    assert_int_equal(seen.live_calls, 0);
    assert_int_equal(seen.sink_got, 0);            /* nothing re-sent */
    assert_int_equal(seen.fwd_send_rc_nonzero, 0); /* hy_send said 0 */
    assert_int_equal(stats(k).replay_suppressed, 2);
    assert_int_equal(get(k, "counter://get"), 2);
    hy_kernel_close(k);
}

static void test_keyed_persistent_actors_are_isolated(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, true);
    for (int i = 0; i < 3; i++)
        send_ok(k, "counter://acct/a/add");
    send_ok(k, "counter://acct/b/add");
    int64_t ten = 10;
    assert_int_equal(hy_send(k, "counter://add", &ten, sizeof ten), 0);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    hy_kernel_close(k);

    k = open_kernel(f, 1000, true);
    assert_int_equal(get(k, "counter://acct/a/get"), 3);
    assert_int_equal(get(k, "counter://acct/b/get"), 1);
    assert_int_equal(get(k, "counter://acct/c/get"), 0);
    assert_int_equal(get(k, "counter://get"), 10);
    assert_int_equal(stats(k).journal_replay_skipped, 0);
    hy_kernel_close(k);
}

#define DURABLE_N 200

static _Atomic int durable_calls[DURABLE_N];
static _Atomic int durable_bad_status;

static void on_durable(void *udata, int status)
{
    atomic_fetch_add(&durable_calls[(uintptr_t)udata], 1);
    if (status != 0)
        atomic_fetch_add(&durable_bad_status, 1);
}

static void test_send_durable_calls_back_once_per_message(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, false);
    for (uintptr_t i = 0; i < DURABLE_N; i++) {
        atomic_store(&durable_calls[i], 0);
        int rc = hy_send_durable(k, i % 2 ? "counter://add" : "counter://acct/z/add", NULL, 0,
                                 on_durable, (void *)i);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    for (int i = 0; i < DURABLE_N; i++)
        assert_int_equal(atomic_load(&durable_calls[i]), 1);
    assert_int_equal(atomic_load(&durable_bad_status), 0);
    assert_int_equal(get(k, "counter://get"), DURABLE_N / 2);
    assert_int_equal(get(k, "counter://acct/z/get"), DURABLE_N / 2);
    /* No durability promise for a non-persistent subsystem. */
    assert_int_equal(hy_send_durable(k, "sink://x", NULL, 0, on_durable, NULL), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "not persistent"));
    hy_kernel_close(k);
}

/* A durable send's callback runs on the journal's writer thread, while it
 * delivers a commit and holds back waking the workers until the commit is
 * delivered. A callback that blocks on a full mailbox needs a worker awake
 * to make room: the wait wakes them first, so each send gets through. */
enum { SLOW_SENDS = 4 };
static _Atomic int slow_got, slow_send_failed;

static int on_slow(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add(&slow_got, 1);
    return 0;
}

static void on_durable_send_to_slow(void *udata, int status)
{
    hy_kernel *k = udata;
    if (status != 0)
        atomic_fetch_add(&durable_bad_status, 1);
    for (int i = 0; i < SLOW_SENDS; i++)
        if (hy_send(k, "slow://x", NULL, 0) != 0)
            atomic_fetch_add(&slow_send_failed, 1);
}

static void test_durable_callback_blocking_on_a_full_mailbox_gets_through(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, false);
    static const hy_route slow_routes[] = {{.pattern = "x", .handler = on_slow}};
    hy_subsystem_def slow = {.routes = slow_routes, .nroutes = 1, .mailbox_capacity = 1,
                             .overflow = HY_OVERFLOW_BLOCK, .block_timeout_ms = 2000};
    assert_int_equal(hy_subsystem_register(k, "slow", &slow), 0);
    atomic_store(&slow_got, 0);
    atomic_store(&slow_send_failed, 0);
    atomic_store(&durable_bad_status, 0);
    usleep(200 * 1000); /* long enough for idle workers to park */
    assert_int_equal(hy_send_durable(k, "counter://add", NULL, 0, on_durable_send_to_slow, k),
                     0);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(atomic_load(&slow_send_failed), 0);
    assert_int_equal(atomic_load(&slow_got), SLOW_SENDS);
    assert_int_equal(atomic_load(&durable_bad_status), 0);
    assert_int_equal(get(k, "counter://get"), 1);
    hy_kernel_close(k);
}

static void test_batch_to_persistent_subsystem_is_one_commit(void **state)
{
    fixture *f = *state;
    hy_kernel *k = open_kernel(f, 1000, false);
    hy_send_item items[25];
    for (int i = 0; i < 25; i++)
        items[i] = (hy_send_item){.path = i % 5 ? "counter://add" : "counter://acct/q/add"};
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    hy_stats before = stats(k);
    size_t accepted = 0;
    assert_int_equal(hy_send_batch(k, items, 25, &accepted), 0);
    assert_int_equal(accepted, 25);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    hy_stats after = stats(k);
    assert_int_equal(after.journal_commits - before.journal_commits, 1);
    assert_int_equal(after.journal_entries - before.journal_entries, 25);
    /* the commit was the writer thread's work, and its clock shows it */
    assert_true(after.journal_writer_cpu_ns > before.journal_writer_cpu_ns);
    assert_int_equal(get(k, "counter://get"), 20);
    assert_int_equal(get(k, "counter://acct/q/get"), 5);
    hy_kernel_close(k);
}

static void test_unusable_journal_path_fails_open_naming_it(void **state)
{
    fixture *f = *state;
    /* A regular file where the journal's parent directory should be. */
    char file[64], path[96];
    snprintf(file, sizeof file, "%s/file", f->dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof path, "%s/env", file);
    hy_config cfg = {.workers = 1, .journal_path = path};
    hy_kernel *k = (hy_kernel *)1;
    int rc = hy_kernel_open(&k, &cfg);
    assert_true(rc < 0);
    assert_null(k);
    assert_non_null(strstr(hy_errdetail(), path));
}

/* One owner per journal: a second kernel of this process is refused with
 * HY_EBUSY, naming the path and the holder; once the first closes, it opens. */
static void test_second_kernel_on_one_journal_is_refused(void **state)
{
    fixture *f = *state;
    hy_config cfg = {.workers = 1, .journal_path = f->env};
    hy_kernel *a, *b = (hy_kernel *)1;
    assert_int_equal(hy_kernel_open(&a, &cfg), 0);
    assert_int_equal(hy_kernel_open(&b, &cfg), HY_EBUSY);
    assert_null(b);
    assert_non_null(strstr(hy_errdetail(), f->env));
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    assert_non_null(strstr(hy_errdetail(), pid));
    hy_kernel_close(a);
    assert_int_equal(hy_kernel_open(&b, &cfg), 0);
    hy_kernel_close(b);
}

/* ... and another process's: refused while it holds the journal, open again
 * after it was killed with SIGKILL (the lock dies with the process). */
static void test_journal_of_a_killed_process_opens_again(void **state)
{
    fixture *f = *state;
    hy_config cfg = {.workers = 1, .journal_path = f->env};
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        hy_kernel *k;
        char c = hy_kernel_open(&k, &cfg) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        for (;;)
            pause(); /* holds the journal until killed */
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    hy_kernel *k = (hy_kernel *)1;
    assert_int_equal(hy_kernel_open(&k, &cfg), HY_EBUSY);
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)child);
    assert_non_null(strstr(hy_errdetail(), pid));
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_kernel_close(k);
    close(ready[0]);
    close(ready[1]);
}

static void test_persistent_subsystem_without_journal_is_refused(void **state)
{
    (void)state;
    hy_kernel *k;
    hy_config cfg = {.workers = 1};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_subsystem_def def = {.routes = counter_routes, .nroutes = 1, .persistent = 1};
    assert_int_equal(hy_subsystem_register(k, "counter", &def), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "journal"));
    assert_int_equal(hy_send(k, "counter://add", NULL, 0), HY_ENOROUTE);
    hy_kernel_close(k);
}

static _Atomic int mapfull_seen;

static void on_durable_status(void *udata, int status)
{
    (void)udata;
    if (status == HY_EMAPFULL)
        atomic_fetch_add(&mapfull_seen, 1);
}

static void test_map_cap_fails_persistent_sends_only(void **state)
{
    fixture *f = *state;
    memset(&seen, 0, sizeof seen);
    atomic_store(&mapfull_seen, 0);
    hy_config cfg = {.workers = 2, .journal_path = f->env, .durability = HY_DURABILITY_NOSYNC,
                     .journal_map_size = 256 << 10, .journal_map_max = 256 << 10};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_subsystem_def def = {.routes = counter_routes, .nroutes = 1, .state_init = i64_state_init,
                            .state_free = i64_state_free, .persistent = 1};
    assert_int_equal(hy_subsystem_register(k, "counter", &def), 0);
    static const hy_route sink_routes[] = {{.pattern = "x", .handler = on_sink}};
    hy_subsystem_def sink = {.routes = sink_routes, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "sink", &sink), 0);

    static char big[8192];
    int rc = 0, sent = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = hy_send_durable(k, "counter://add", big, sizeof big, on_durable_status, NULL);
        if (rc == 0)
            sent++;
        if (i % 8 == 7)
            assert_int_equal(hy_kernel_drain(k, 5000), 0);
    }
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_true(atomic_load(&mapfull_seen) > 0);
    /* From now on the send itself says so. */
    assert_int_equal(hy_send(k, "counter://add", big, sizeof big), HY_EMAPFULL);
    assert_non_null(strstr(hy_errdetail(), "map"));
    hy_stats s = stats(k);
    assert_true(s.dead[HY_DEAD_JOURNAL] > 0);
    assert_int_equal(s.queued, 0);
    /* The rest of the kernel goes on. */
    assert_int_equal(hy_send(k, "sink://x", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(seen.sink_got, 1);
    assert_true(sent > 0);
    hy_kernel_close(k);
}

static uint64_t le64_at(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Flip the last byte of the value of (actor, seq) in the journal's log (its
 * header holds the actor at offset 16 and the sequence at 24, little-endian),
 * behind the kernel's back. */
static void corrupt_entry(const char *env_path, uint64_t actor, uint64_t seq)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, env_path, 0, 0640), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    MDB_val key, val;
    int rc;
    for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        const unsigned char *h = val.mv_data;
        if (val.mv_size >= 48 && le64_at(h + 16) == actor && le64_at(h + 24) == seq)
            break;
    }
    assert_int_equal(rc, 0);
    mdb_cursor_close(c);
    unsigned char *copy = malloc(val.mv_size);
    memcpy(copy, val.mv_data, val.mv_size);
    copy[val.mv_size - 1] ^= 0xff;
    MDB_val nv = {val.mv_size, copy};
    assert_int_equal(mdb_put(txn, dbi, &key, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

/* An actor's journal id, as journals on disk have it: FNV-1a 64 of its
 * subsystem's name, then for a keyed actor a NUL and its key. */
static uint64_t fnv1a_more(uint64_t h, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t journal_actor_id(const char *name, const char *key)
{
    uint64_t h = fnv1a_more(0xcbf29ce484222325ull, name, strlen(name));
    return key ? fnv1a_more(fnv1a_more(h, "", 1), key, strlen(key)) : h;
}

/* Three adds sent to path in a kernel of its own, then the actor's second
 * entry (under journal id `id`) corrupted behind the kernel's back. */
static void three_adds_then_corrupt_the_second(const fixture *f, bool snapshots,
                                               const char *path, uint64_t id)
{
    hy_kernel *k = open_kernel(f, 1000, snapshots);
    for (int i = 0; i < 3; i++)
        send_ok(k, path);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    hy_kernel_close(k);
    corrupt_entry(f->env, id, 2);
}

static void test_corrupt_entry_stops_replay_at_last_good(void **state)
{
    fixture *f = *state;
    three_adds_then_corrupt_the_second(f, true, "counter://add",
                                       journal_actor_id("counter", NULL));
    hy_kernel *k;

    /* Replay applies entry 1, stops at 2, says so, and the actor runs. */
    memset(&seen, 0, sizeof seen);
    hy_config cfg = {.workers = 2, .journal_path = f->env,
                     .durability = HY_DURABILITY_NOSYNC, .snapshot_every = 1000};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_subsystem_def def = {.routes = counter_routes, .nroutes = HY_ARRAY_LEN(counter_routes),
                            .state_init = i64_state_init, .state_free = i64_state_free, .persistent = 1,
                            .state_save = i64_state_save, .state_load = i64_state_load};
    assert_int_equal(hy_subsystem_register(k, "counter", &def), 0);
    assert_non_null(strstr(hy_errdetail(), "replay stopped after seq 1"));
    assert_int_equal(stats(k).journal_corrupt, 1);
    assert_int_equal(seen.replayed_calls, 1);
    assert_int_equal(get(k, "counter://get"), 1);
    send_ok(k, "counter://add");
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    hy_kernel_close(k);

    /* The recovered state was snapshotted over the corrupt tail: the next
     * run starts clean and keeps the later add. */
    k = open_kernel(f, 1000, true);
    assert_int_equal(stats(k).journal_corrupt, 0);
    assert_int_equal(get(k, "counter://get"), 2);
    hy_kernel_close(k);
}

/* A keyed actor's entries are under the id of "counter\0z" (the id a
 * journal written by any version has): corrupting its second entry there
 * stops its replay after the first. */
static void test_keyed_actor_entries_are_under_the_hash_of_its_identity(void **state)
{
    fixture *f = *state;
    three_adds_then_corrupt_the_second(f, false, "counter://acct/z/add",
                                       journal_actor_id("counter", "z"));
    hy_kernel *k = open_kernel(f, 1000, false);
    assert_int_equal(get(k, "counter://acct/z/get"), 1);
    assert_int_equal(stats(k).journal_corrupt, 1);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, tmpdir_setup, tmpdir_teardown)
        T(test_counter_snapshot_then_reopen_gives_one),
        T(test_two_increments_without_snapshot_replay_on_reopen),
        T(test_failing_message_leaves_state_unchanged),
        T(test_replaying_handlers_see_the_flag_and_cannot_send),
        T(test_keyed_persistent_actors_are_isolated),
        T(test_send_durable_calls_back_once_per_message),
        T(test_durable_callback_blocking_on_a_full_mailbox_gets_through),
        T(test_batch_to_persistent_subsystem_is_one_commit),
        T(test_unusable_journal_path_fails_open_naming_it),
        T(test_second_kernel_on_one_journal_is_refused),
        T(test_journal_of_a_killed_process_opens_again),
        T(test_persistent_subsystem_without_journal_is_refused),
        T(test_map_cap_fails_persistent_sends_only),
        T(test_corrupt_entry_stops_replay_at_last_good),
        T(test_keyed_actor_entries_are_under_the_hash_of_its_identity),
#undef T
    };
    return cmocka_run_group_tests_name("persistent", tests, NULL, NULL);
}
