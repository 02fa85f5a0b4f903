/* Passivation of keyed actors (docs/ARCHITECTURE.md §5): idle actors and actors
 * over their subsystem's cap are passivated (state saved, memory freed) and
 * activated again by their next message with their state restored; a message
 * racing a passivation is delivered exactly once and in order; a persistent
 * subsystem's passivation snapshot survives kill -9; a failing save keeps the
 * actor active.
 *
 * The non-persistent "ctr" subsystem keeps an int64 counter per key ("add/{id}"
 * adds 1, "get/{id}" replies with it). Its passivate callback saves the counter
 * in `store` (a table on the test's side, by key number) and its state_init
 * loads it from there: the subsystem keeps its actors' state wherever it
 * wants, the kernel only tells it when. Persistent tests use a fresh mkdtemp
 * directory under /tmp, removed afterwards. */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypha.h"
#include "support.h"
#include "tmpdir.h"

#define HY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_KEYS 1024
#define SENDERS 8

/* ---------------------------------------------------------------- the store */

/* What a key's actor keeps: its counter, and for the race test the last
 * sequence number seen from each sender. */
typedef struct cstate {
    int64_t count;
    uint64_t last[SENDERS];
} cstate;

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool saved;
    cstate st;
} store[MAX_KEYS];
static _Atomic int fail_saves;      /* passivate refuses while set */
static _Atomic int order_errors;    /* a sender's message out of order, or twice */
static _Atomic int bad_keys;

static void reset_store(void)
{
    pthread_mutex_lock(&store_lock);
    memset(store, 0, sizeof store);
    pthread_mutex_unlock(&store_lock);
    atomic_store(&fail_saves, 0);
    atomic_store(&order_errors, 0);
    atomic_store(&bad_keys, 0);
}

/* A copy of what the store holds for key n (false: nothing saved). */
static bool stored(int n, cstate *out)
{
    pthread_mutex_lock(&store_lock);
    bool saved = store[n].saved;
    if (out)
        *out = store[n].st;
    pthread_mutex_unlock(&store_lock);
    return saved;
}

static int key_num(const char *key, size_t len)
{
    return key_number(key, len, 4, MAX_KEYS);
}

static int c_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata;
    cstate *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    int n = key_num(key, key_len);
    if (n < 0) {
        atomic_fetch_add(&bad_keys, 1);
    } else {
        pthread_mutex_lock(&store_lock);
        if (store[n].saved)
            *s = store[n].st;
        pthread_mutex_unlock(&store_lock);
    }
    *state = s;
    return 0;
}

static int c_passivate(void *udata, const char *key, size_t key_len, void *state)
{
    (void)udata;
    if (atomic_load(&fail_saves))
        return -1;
    int n = key_num(key, key_len);
    if (n < 0)
        return -1;
    pthread_mutex_lock(&store_lock);
    store[n].saved = true;
    store[n].st = *(cstate *)state;
    pthread_mutex_unlock(&store_lock);
    return 0;
}

/* Persistent flavour: the state as bytes. */
static int c_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    if (atomic_load(&fail_saves))
        return -1;
    return state_save_copy(state, sizeof(cstate), bytes, len);
}

static int c_load(void *udata, const char *key, size_t key_len, const void *bytes, size_t len,
                  void **state)
{
    (void)udata, (void)key, (void)key_len;
    return state_load_copy(bytes, len, sizeof(cstate), state);
}

static int p_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(cstate));
    return *state ? 0 : -1;
}

/* ---------------------------------------------------------------- handlers */

static int on_add(hy_ctx *ctx, const hy_msg *msg)
{
    cstate *s = hy_state(ctx);
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    if (len == 2 * sizeof(uint64_t)) {
        /* race test: (sender, seq); each sender's seqs per key are 1, 2, ... */
        uint64_t v[2];
        memcpy(v, p, sizeof v);
        if (v[0] >= SENDERS || v[1] != s->last[v[0]] + 1)
            atomic_fetch_add(&order_errors, 1);
        if (v[0] < SENDERS)
            s->last[v[0]] = v[1];
    }
    s->count++;
    return 0;
}

static int on_get(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    cstate *s = hy_state(ctx);
    return hy_reply(ctx, &s->count, sizeof s->count);
}

static const hy_route routes[] = {
    {.pattern = "add/{id}", .handler = on_add, .key = "id"},
    {.pattern = "get/{id}", .handler = on_get, .key = "id"},
};

/* ---------------------------------------------------------------- helpers */

static hy_kernel *open_ctr(uint32_t idle_ms, uint64_t cap)
{
    reset_store();
    hy_config cfg = {.workers = 2, .idle_timeout_ms = idle_ms, .max_active_actors = cap};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    if (rc)
        fail_msg("open: %s: %s", hy_err_name(rc), hy_errdetail());
    hy_subsystem_def def = {.routes = routes, .nroutes = HY_ARRAY_LEN(routes),
                            .state_init = c_init, .state_free = i64_state_free,
                            .passivate = c_passivate};
    rc = hy_subsystem_register(k, "ctr", &def);
    if (rc)
        fail_msg("register: %s: %s", hy_err_name(rc), hy_errdetail());
    return k;
}

static void send_add(hy_kernel *k, int key)
{
    char path[64];
    snprintf(path, sizeof path, "ctr://add/%d", key);
    int rc = hy_send(k, path, NULL, 0);
    if (rc)
        fail_msg("send %s: %s: %s", path, hy_err_name(rc), hy_errdetail());
}

static int64_t get(hy_kernel *k, int key)
{
    char path[64];
    snprintf(path, sizeof path, "ctr://get/%d", key);
    void *reply = NULL;
    size_t len = 0;
    int rc = hy_ask(k, path, NULL, 0, &reply, &len, 10000);
    if (rc)
        fail_msg("ask %s: %s: %s", path, hy_err_name(rc), hy_errdetail());
    assert_int_equal(len, sizeof(int64_t));
    int64_t v;
    memcpy(&v, reply, sizeof v);
    hy_free(reply);
    return v;
}

static hy_stats stats(hy_kernel *k)
{
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    return s;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Poll the stats (every ms) until pred holds or timeout_ms passes. */
static bool wait_for_stats(hy_kernel *k, bool (*pred)(const hy_stats *, uint64_t), uint64_t arg,
                           long timeout_ms)
{
    for (long t = 0; t < timeout_ms; t++) {
        hy_stats s = stats(k);
        if (pred(&s, arg))
            return true;
        sleep_ms(1);
    }
    return false;
}

static bool active_at_most(const hy_stats *s, uint64_t n)
{
    return s->actors_active <= n;
}

static bool passivations_at_least(const hy_stats *s, uint64_t n)
{
    return s->passivations >= n;
}

static bool failures_at_least(const hy_stats *s, uint64_t n)
{
    return s->passivate_failed >= n;
}

/* ---------------------------------------------------------------- tests */

static void test_idle_counter_is_passivated_and_restored(void **state)
{
    (void)state;
    hy_kernel *k = open_ctr(20, 0);
    for (int i = 0; i < 3; i++)
        send_add(k, 7);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_true(wait_for_stats(k, passivations_at_least, 1, 5000));
    hy_stats s = stats(k);
    assert_int_equal(s.actors_active, 0);
    assert_int_equal(s.activations, 1);
    assert_true(stored(7, NULL));

    /* The next message activates it again, with the state passivate saved. */
    assert_int_equal(get(k, 7), 3);
    s = stats(k);
    assert_int_equal(s.activations, 2);
    assert_true(s.activation_p99_ns > 0);
    assert_true(s.activation_p50_ns <= s.activation_p99_ns);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "ctr", &ss), 0);
    assert_int_equal(ss.activations, 2);
    assert_true(ss.passivations >= 1);
    hy_kernel_close(k);
}

static void test_lru_cap_keeps_at_most_100_active_and_every_counter_right(void **state)
{
    (void)state;
    hy_kernel *k = open_ctr(0, 100);
    enum { KEYS = 1000 };
    for (int round = 0; round < 3; round++)
        for (int key = 0; key < KEYS; key++)
            if (round <= key % 3)
                send_add(k, key);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_true(wait_for_stats(k, active_at_most, 100, 10000));
    hy_stats s = stats(k);
    assert_true(s.passivations >= KEYS - 100);
    assert_int_equal(s.passivate_failed, 0);
    for (int key = 0; key < KEYS; key++)
        if (get(k, key) != key % 3 + 1)
            fail_msg("key %d: %lld, want %d", key, (long long)get(k, key), key % 3 + 1);
    assert_true(wait_for_stats(k, active_at_most, 100, 10000));
    /* kernel://actors lists the subsystem's active count */
    assert_int_equal(hy_introspect_attach(k, NULL), 0);
    void *reply = NULL;
    size_t len = 0;
    assert_int_equal(hy_ask(k, "kernel://actors", NULL, 0, &reply, &len, 5000), 0);
    assert_non_null(strstr(reply, "\"name\":\"ctr\""));
    assert_non_null(strstr(reply, "\"max_active\":100"));
    hy_free(reply);
    hy_kernel_close(k);
}

/* ---------------------------------------------------------------- the race */

enum { RACE_KEYS = 64 };

typedef struct racer {
    hy_kernel *k;
    uint64_t id;
    int messages;
    unsigned pause_every;   /* on average, a pause of 0-4 ms every this many */
    uint64_t sent[RACE_KEYS];
} racer;

static void *race_sender(void *arg)
{
    racer *r = arg;
    unsigned seed = (unsigned)r->id * 2654435761u + 1;
    for (int i = 0; i < r->messages; i++) {
        int key = (int)(rand_r(&seed) % RACE_KEYS);
        uint64_t v[2] = {r->id, r->sent[key] + 1};
        char path[64];
        snprintf(path, sizeof path, "ctr://add/%d", key);
        int rc = hy_send(r->k, path, v, sizeof v);
        if (rc != 0) {
            atomic_fetch_add(&order_errors, 1000);
            return NULL;
        }
        r->sent[key]++;
        /* Pauses let keys go idle, so passivations keep meeting sends. */
        if (rand_r(&seed) % r->pause_every == 0)
            sleep_ms(rand_r(&seed) % 5);
    }
    return NULL;
}

/* SENDERS threads, each `messages` sends to random keys. */
static void race(hy_kernel *k, racer *r, int messages, unsigned pause_every)
{
    pthread_t t[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].k = k;
        r[i].id = (uint64_t)i;
        r[i].messages = messages;
        r[i].pause_every = pause_every;
        assert_int_equal(pthread_create(&t[i], NULL, race_sender, &r[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++)
        pthread_join(t[i], NULL);
}

static void test_messages_racing_passivation_arrive_once_in_order(void **state)
{
    (void)state;
    hy_kernel *k = open_ctr(1, 0);
    racer r[SENDERS];
    race(k, r, 30000, 48);
    assert_int_equal(hy_kernel_drain(k, 30000), 0);
    hy_stats s = stats(k);
    assert_int_equal(s.sent, s.handled);
    assert_int_equal(atomic_load(&order_errors), 0);
    assert_true(s.passivations > 0);
    /* Everything passivates in the end: then the store holds every key. */
    assert_true(wait_for_stats(k, active_at_most, 0, 10000));
    for (int key = 0; key < RACE_KEYS; key++) {
        cstate st;
        uint64_t want = 0;
        bool saved = stored(key, &st);
        for (int i = 0; i < SENDERS; i++) {
            want += r[i].sent[key];
            if (r[i].sent[key] && (!saved || st.last[i] != r[i].sent[key]))
                fail_msg("key %d sender %d: last %llu, sent %llu", key, i,
                         (unsigned long long)st.last[i], (unsigned long long)r[i].sent[key]);
        }
        if (want && (uint64_t)st.count != want)
            fail_msg("key %d: %lld handled, %llu sent", key, (long long)st.count,
                     (unsigned long long)want);
    }
    print_message("passivations %llu, aborted %llu, activations %llu\n",
                  (unsigned long long)s.passivations, (unsigned long long)s.passivate_aborted,
                  (unsigned long long)s.activations);
    hy_kernel_close(k);
}

/* ---------------------------------------------------------------- save failing */

static void test_failing_save_keeps_the_actor_active_and_counts_it(void **state)
{
    (void)state;
    hy_kernel *k = open_ctr(5, 0);
    atomic_store(&fail_saves, 1);
    for (int i = 0; i < 3; i++)
        send_add(k, 3);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_true(wait_for_stats(k, failures_at_least, 2, 5000));
    hy_stats s = stats(k);
    assert_int_equal(s.passivations, 0);
    assert_int_equal(s.actors_active, 1);
    assert_false(stored(3, NULL));
    /* Still active, state intact, and it still takes messages. */
    assert_int_equal(get(k, 3), 3);
    send_add(k, 3);
    assert_int_equal(get(k, 3), 4);
    /* Once saving works again it passivates, and nothing was lost. */
    atomic_store(&fail_saves, 0);
    assert_true(wait_for_stats(k, passivations_at_least, 1, 5000));
    assert_int_equal(get(k, 3), 4);
    assert_int_equal(stats(k).activations, 2);
    hy_kernel_close(k);
}

/* ---------------------------------------------------------------- persistent */

/* A fresh directory for a test's journal; removed with all in it. */
typedef struct journal_dir {
    char dir[32];
    char env[64];
} journal_dir;

static void journal_dir_make(journal_dir *jd)
{
    snprintf(jd->dir, sizeof jd->dir, "/tmp/hy-passiv-XXXXXX");
    assert_non_null(mkdtemp(jd->dir));
    snprintf(jd->env, sizeof jd->env, "%s/env", jd->dir);
}

static void journal_dir_remove(journal_dir *jd)
{
    tmpdir_remove(jd->dir);
}

static hy_kernel *open_persistent(const char *env, uint32_t idle_ms)
{
    hy_config cfg = {.workers = 2, .journal_path = env, .durability = HY_DURABILITY_NOSYNC,
                     .snapshot_every = 100000, .idle_timeout_ms = idle_ms};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    if (rc)
        fail_msg("open: %s: %s", hy_err_name(rc), hy_errdetail());
    hy_subsystem_def def = {.routes = routes, .nroutes = HY_ARRAY_LEN(routes),
                            .state_init = p_init, .state_free = i64_state_free, .persistent = 1,
                            .state_save = c_save, .state_load = c_load};
    rc = hy_subsystem_register(k, "ctr", &def);
    if (rc)
        fail_msg("register: %s: %s", hy_err_name(rc), hy_errdetail());
    return k;
}

enum { P_KEYS = 20 };

/* The child: counters key+1 for each key, all passivated (snapshots), then
 * two more to even keys (reactivated from their snapshot, journal only),
 * then it says so and waits to be killed. Exits non-zero on any surprise. */
static void persistent_child(const char *env, int ready_fd)
{
    hy_kernel *k = open_persistent(env, 10);
    for (int key = 0; key < P_KEYS; key++)
        for (int i = 0; i <= key; i++)
            send_add(k, key);
    if (hy_kernel_drain(k, 10000) != 0)
        _exit(2);
    if (!wait_for_stats(k, active_at_most, 0, 20000))
        _exit(3);
    hy_stats s = stats(k);
    if (s.passivations < P_KEYS || s.snapshots < P_KEYS)
        _exit(4);
    for (int key = 0; key < P_KEYS; key += 2) {
        send_add(k, key);
        send_add(k, key);
    }
    if (hy_kernel_drain(k, 10000) != 0)
        _exit(5);
    if (write(ready_fd, "r", 1) != 1)
        _exit(6);
    for (;;)
        pause();
}

static void test_persistent_passivation_survives_kill_9(void **state)
{
    (void)state;
    reset_store();
    journal_dir jd;
    journal_dir_make(&jd);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        persistent_child(jd.env, fds[1]);
    }
    close(fds[1]);
    char c = 0;
    ssize_t n = read(fds[0], &c, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (n != 1)
        fail_msg("child failed before killing: exit %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    assert_true(WIFSIGNALED(status));

    /* Reopen without passivation: each actor recovers from its passivation
     * snapshot (plus the journal after it, for the even keys). */
    hy_kernel *k = open_persistent(jd.env, 0);
    for (int key = 0; key < P_KEYS; key++) {
        int64_t want = key + 1 + (key % 2 == 0 ? 2 : 0);
        int64_t got = get(k, key);
        if (got != want)
            fail_msg("key %d: %lld, want %lld", key, (long long)got, (long long)want);
    }
    hy_stats s = stats(k);
    /* only the adds after a passivation snapshot (none if the even keys were
     * passivated again before the kill) */
    assert_true(s.journal_replayed <= 2 * (P_KEYS / 2));
    hy_kernel_close(k);
    journal_dir_remove(&jd);
}

/* The race again on a persistent subsystem: messages also wait in the
 * journal's queue, where passivation must not miss them. */
static void test_persistent_messages_racing_passivation_arrive_once_in_order(void **state)
{
    (void)state;
    reset_store();
    journal_dir jd;
    journal_dir_make(&jd);
    hy_kernel *k = open_persistent(jd.env, 1);
    racer r[SENDERS];
    race(k, r, 3000, 8);
    assert_int_equal(hy_kernel_drain(k, 30000), 0);
    hy_stats s = stats(k);
    assert_int_equal(s.sent, s.handled);
    /* Slow runs (TSan) may keep every actor busy until the senders stop. */
    assert_true(wait_for_stats(k, passivations_at_least, 1, 10000));
    s = stats(k);
    for (int key = 0; key < RACE_KEYS; key++) {
        uint64_t want = 0;
        for (int i = 0; i < SENDERS; i++)
            want += r[i].sent[key];
        int64_t got = get(k, key);
        if ((uint64_t)got != want)
            fail_msg("key %d: %lld handled, %llu sent", key, (long long)got,
                     (unsigned long long)want);
    }
    assert_int_equal(atomic_load(&order_errors), 0);
    print_message("passivations %llu, aborted %llu, activations %llu, replayed %llu\n",
                  (unsigned long long)s.passivations, (unsigned long long)s.passivate_aborted,
                  (unsigned long long)s.activations, (unsigned long long)s.journal_replayed);
    hy_kernel_close(k);
    journal_dir_remove(&jd);
}

static void test_persistent_failing_snapshot_keeps_actor(void **state)
{
    (void)state;
    reset_store();
    journal_dir jd;
    journal_dir_make(&jd);
    hy_kernel *k = open_persistent(jd.env, 5);
    atomic_store(&fail_saves, 1);
    for (int i = 0; i < 3; i++)
        send_add(k, 1);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_true(wait_for_stats(k, failures_at_least, 2, 5000));
    hy_stats s = stats(k);
    assert_int_equal(s.passivations, 0);
    assert_int_equal(s.actors_active, 1);
    assert_true(s.snapshot_failures >= 2);
    assert_int_equal(get(k, 1), 3);
    atomic_store(&fail_saves, 0);
    assert_true(wait_for_stats(k, passivations_at_least, 1, 5000));
    assert_int_equal(get(k, 1), 3);
    hy_kernel_close(k);
    journal_dir_remove(&jd);
}

/* ---------------------------------------------------------------- policy */

static _Atomic int blocker_go;

static int on_block(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    while (!atomic_load(&blocker_go))
        sleep_ms(1);
    return 0;
}

/* The pool near its cap with live messages (queued behind a stuck handler):
 * the janitor passivates the least recently used actors too, even with no
 * idle timeout and a cap far away. */
static void test_pool_pressure_passivates_idle_actors(void **state)
{
    (void)state;
    reset_store();
    atomic_store(&blocker_go, 0);
    hy_config cfg = {.workers = 2, .pool_cap_bytes = (size_t)2 << 20,
                     .max_active_actors = 1000000};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_subsystem_def def = {.routes = routes, .nroutes = HY_ARRAY_LEN(routes),
                            .state_init = c_init, .state_free = i64_state_free,
                            .passivate = c_passivate};
    assert_int_equal(hy_subsystem_register(k, "ctr", &def), 0);
    static const hy_route blk_routes[] = {{.pattern = "b", .handler = on_block}};
    hy_subsystem_def blk = {.routes = blk_routes, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "blk", &blk), 0);
    enum { KEYS = 40 };
    for (int key = 0; key < KEYS; key++)
        send_add(k, key);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    assert_int_equal(stats(k).passivations, 0);
    static char payload[3000];
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++)
        rc = hy_send(k, "blk://b", payload, sizeof payload);
    assert_int_equal(rc, HY_ENOMEM);
    assert_true(wait_for_stats(k, passivations_at_least, KEYS, 10000));
    atomic_store(&blocker_go, 1);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    for (int key = 0; key < KEYS; key++)
        assert_int_equal(get(k, key), 1);
    hy_kernel_close(k);
}

static void test_subsystem_without_a_way_to_keep_state_is_not_passivated(void **state)
{
    (void)state;
    reset_store();
    hy_config cfg = {.workers = 2, .idle_timeout_ms = 5};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_subsystem_def def = {.routes = routes, .nroutes = HY_ARRAY_LEN(routes),
                            .state_init = c_init, .state_free = i64_state_free};
    assert_int_equal(hy_subsystem_register(k, "ctr", &def), 0);
    send_add(k, 1);
    assert_int_equal(hy_kernel_drain(k, 5000), 0);
    sleep_ms(60);
    hy_stats s = stats(k);
    assert_int_equal(s.passivations, 0);
    assert_int_equal(s.actors_active, 1);
    assert_int_equal(get(k, 1), 1);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* forks: first, while this process has no thread of a kernel */
        cmocka_unit_test(test_persistent_passivation_survives_kill_9),
        cmocka_unit_test(test_idle_counter_is_passivated_and_restored),
        cmocka_unit_test(test_lru_cap_keeps_at_most_100_active_and_every_counter_right),
        cmocka_unit_test(test_messages_racing_passivation_arrive_once_in_order),
        cmocka_unit_test(test_failing_save_keeps_the_actor_active_and_counts_it),
        cmocka_unit_test(test_persistent_messages_racing_passivation_arrive_once_in_order),
        cmocka_unit_test(test_persistent_failing_snapshot_keeps_actor),
        cmocka_unit_test(test_subsystem_without_a_way_to_keep_state_is_not_passivated),
        cmocka_unit_test(test_pool_pressure_passivates_idle_actors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
