/* Crash test of persistent subsystems (docs/ARCHITECTURE.md §4): a message
 * acknowledged to its sender is never lost and never applied twice, whatever
 * happens to the process.
 *
 * Each round forks a child that opens a kernel with a persistent subsystem
 * (HY_DURABILITY_SYNC, a snapshot every 32 messages) and sends from two
 * threads to three keyed actors: single messages with hy_send_durable, whose
 * callback writes the acknowledged (actor, number) to a side file with one
 * write(2), and every seventh time a hy_send_batch of five (not acknowledged).
 * An actor's state is the list of numbers it has applied, so its snapshots
 * carry its whole history. The parent SIGKILLs the child (mostly 0..40 ms
 * after its first acknowledgement), reopens a kernel on the same journal,
 * makes each actor recover (snapshot, then replay), and checks that its list
 * holds every acknowledged number exactly once, each sender's numbers in the
 * order they were sent, and nothing that was never sent.
 *
 * Rounds: HY_CRASH_ROUNDS (default 20); seed: HY_CRASH_SEED (default from the
 * clock, printed). The parent forks only while it has no thread: its kernels
 * are closed (workers and journal writer joined) before the next fork, which
 * keeps fork valid under TSan. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
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

#include "crash.h"

#include "hypha.h"

#define ACTORS 3
#define SENDERS 2

typedef struct ack {
    uint64_t actor, num;
} ack;

/* ---------------------------------------------------------------- the subsystem */

/* latest[a] is the last history made for actor a (two senders may race to
 * make an actor; the parent makes each once, from one thread). */

static history *_Atomic latest[ACTORS];

static int actor_of(const char *key, size_t len)
{
    return len == 1 && key[0] >= '0' && key[0] < '0' + ACTORS ? key[0] - '0' : -1;
}

static int s_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata;
    if (!key) { /* the subsystem's own actor: unused */
        *state = NULL;
        return 0;
    }
    int a = actor_of(key, key_len);
    history *h = a < 0 ? NULL : calloc(1, sizeof *h);
    if (!h)
        return -1;
    atomic_store(&latest[a], h);
    *state = h;
    return 0;
}

static void s_free(void *udata, void *state)
{
    (void)udata;
    history *h = state;
    for (int a = 0; a < ACTORS; a++) {
        history *cur = h;
        atomic_compare_exchange_strong(&latest[a], &cur, NULL);
    }
    history_free(h);
}

static int s_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    return history_save(state, bytes, len);
}

static int s_load(void *udata, const char *key, size_t key_len, const void *bytes, size_t len,
                  void **state)
{
    (void)udata;
    int a = actor_of(key, key_len);
    history *h = a < 0 ? NULL : history_load(bytes, len);
    if (!h)
        return -1;
    atomic_store(&latest[a], h);
    *state = h;
    return 0;
}

static const hy_route routes[] = {
    {.pattern = "acct/{id}/add", .handler = history_apply, .key = "id"},
    {.pattern = "acct/{id}/probe", .handler = history_ignore, .key = "id"},
};

static int open_kernel(const char *env, hy_kernel **k)
{
    hy_config cfg = {.workers = 2, .journal_path = env, .durability = HY_DURABILITY_SYNC,
                     .snapshot_every = 32};
    int rc = hy_kernel_open(k, &cfg);
    if (rc)
        return rc;
    hy_subsystem_def def = {.routes = routes, .nroutes = 2, .state_init = s_init,
                            .state_free = s_free, .persistent = 1, .state_save = s_save,
                            .state_load = s_load};
    rc = hy_subsystem_register(*k, "crash", &def);
    if (rc)
        hy_kernel_close(*k);
    return rc;
}

/* ---------------------------------------------------------------- the child */

static int ack_fd = -1;

static void on_durable(void *udata, int status)
{
    if (status != 0)
        _exit(5); /* nothing here should fail */
    uint64_t v = (uint64_t)(uintptr_t)udata;
    /* the actor is the number's low bits mod ACTORS: see sender_main */
    ack a = {(v & 0xffffffffu) % ACTORS, v};
    /* One write(2) per ack, nothing buffered: what the callback wrote
     * survives the SIGKILL. */
    if (write(ack_fd, &a, sizeof a) != (ssize_t)sizeof a)
        _exit(3);
}

typedef struct sender {
    hy_kernel *k;
    uint64_t id;
} sender;

static void *sender_main(void *arg)
{
    sender *s = arg;
    char path[ACTORS][32];
    for (int a = 0; a < ACTORS; a++)
        snprintf(path[a], sizeof path[a], "crash://acct/%d/add", a);
    /* Numbers: the sender in the top half, its counter below; the counter
     * mod ACTORS picks the actor, so a batch (five numbers to one actor)
     * steps by ACTORS. */
    for (uint64_t i = 0;; i++) {
        int a = (int)(i % ACTORS);
        uint64_t v = s->id << 32 | i;
        if (i % 7 == 0) {
            uint64_t nums[5];
            hy_send_item items[5];
            for (int j = 0; j < 5; j++) {
                nums[j] = v + (uint64_t)j * ACTORS;
                items[j] = (hy_send_item){path[a], &nums[j], sizeof nums[j]};
            }
            size_t accepted;
            if (hy_send_batch(s->k, items, 5, &accepted) != 0)
                _exit(4);
            i += 5 * ACTORS - 1; /* the next free counter of this actor's series */
            continue;
        }
        if (hy_send_durable(s->k, path[a], &v, sizeof v, on_durable, (void *)(uintptr_t)v) != 0)
            _exit(4);
    }
    return NULL;
}

static void child_main(const char *env, const char *ack_path, int ready_fd)
{
    alarm(30); /* never outlive a parent that failed to kill us */
    ack_fd = open(ack_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (ack_fd < 0)
        _exit(2);
    hy_kernel *k;
    if (open_kernel(env, &k) != 0) {
        dprintf(2, "child: open: %s\n", hy_errdetail());
        _exit(2);
    }
    pthread_t th[SENDERS];
    sender s[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        s[i] = (sender){k, (uint64_t)i + 1};
        if (pthread_create(&th[i], NULL, sender_main, &s[i]) != 0)
            _exit(2);
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(2);
    for (;;)
        pause();
}

/* ---------------------------------------------------------------- the parent */

/* One round: returns the acks checked; adds the entries recovered. */
static size_t crash_round(unsigned seed, int round, size_t *recovered)
{
    char env[64], ack_path[64];
    int ready;
    pid_t pid = crash_start("/tmp/hy-pcrash-XXXXXX", env, ack_path, child_main, &ready);
    crash_kill(pid, ready, round, seed, ack_path, sizeof(ack), 20000);

    if (access(env, F_OK) != 0) {
        remove_cur_dir(NULL); /* killed before the journal existed */
        return 0;
    }
    /* Reopen and make each actor recover: a probe message creates it. */
    hy_kernel *k;
    int rc = open_kernel(env, &k);
    if (rc)
        fail_msg("round %d: reopen: %s: %s", round, hy_err_name(rc), hy_errdetail());
    for (int a = 0; a < ACTORS; a++) {
        char path[32];
        snprintf(path, sizeof path, "crash://acct/%d/probe", a);
        rc = hy_send(k, path, NULL, 0);
        if (rc)
            fail_msg("round %d: probe %d: %s: %s", round, a, hy_err_name(rc), hy_errdetail());
    }
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    if (st.journal_corrupt || st.journal_replay_skipped)
        fail_msg("round %d: %llu corrupt, %llu skipped entries", round,
                 (unsigned long long)st.journal_corrupt,
                 (unsigned long long)st.journal_replay_skipped);

    /* Each actor's history (read after the drain, before close frees it): no
     * number twice, each sender's in order, each one of this actor's series. */
    uint64_t *sorted[ACTORS];
    size_t count[ACTORS];
    for (int a = 0; a < ACTORS; a++) {
        history *h = atomic_load(&latest[a]);
        assert_non_null(h);
        count[a] = h->n;
        *recovered += h->n;
        uint64_t prev[SENDERS + 1] = {0};
        bool any[SENDERS + 1] = {0};
        for (size_t i = 0; i < h->n; i++) {
            uint64_t v = h->nums[i], who = v >> 32;
            if (who < 1 || who > SENDERS || (v & 0xffffffffu) % ACTORS != (uint64_t)a)
                fail_msg("round %d: actor %d holds foreign number %llx", round, a,
                         (unsigned long long)v);
            if (any[who] && v <= prev[who])
                fail_msg("round %d: actor %d: sender %llu out of order (%llx after %llx)",
                         round, a, (unsigned long long)who, (unsigned long long)v,
                         (unsigned long long)prev[who]);
            prev[who] = v;
            any[who] = true;
        }
        sorted[a] = malloc((h->n + 1) * sizeof *sorted[a]);
        if (h->n)
            memcpy(sorted[a], h->nums, h->n * sizeof *sorted[a]);
        qsort(sorted[a], h->n, sizeof *sorted[a], cmp_u64);
        for (size_t i = 1; i < h->n; i++)
            if (sorted[a][i] == sorted[a][i - 1])
                fail_msg("round %d: actor %d applied %llx twice", round, a,
                         (unsigned long long)sorted[a][i]);
    }
    hy_kernel_close(k);

    /* Every acknowledged number is there; acks of a sender come in order. */
    size_t nacks = 0;
    int fd = open(ack_path, O_RDONLY);
    if (fd >= 0) {
        uint64_t last[ACTORS][SENDERS + 1] = {{0}};
        ack a;
        ssize_t got;
        while ((got = read(fd, &a, sizeof a)) == (ssize_t)sizeof a) {
            uint64_t who = a.num >> 32;
            if (a.actor >= ACTORS || who < 1 || who > SENDERS)
                fail_msg("round %d: bad ack (%llu, %llx)", round,
                         (unsigned long long)a.actor, (unsigned long long)a.num);
            if (!bsearch(&a.num, sorted[a.actor], count[a.actor], sizeof(uint64_t), cmp_u64))
                fail_msg("round %d: acknowledged %llx to actor %llu is lost (%zu recovered)",
                         round, (unsigned long long)a.num, (unsigned long long)a.actor,
                         count[a.actor]);
            if (last[a.actor][who] && a.num <= last[a.actor][who])
                fail_msg("round %d: acks out of order", round);
            last[a.actor][who] = a.num;
            nacks++;
        }
        assert_true(got >= 0); /* a torn last record is not an ack */
        close(fd);
    }
    for (int a = 0; a < ACTORS; a++)
        free(sorted[a]);
    remove_cur_dir(NULL);
    return nacks;
}

static void test_acknowledged_messages_survive_sigkill_once_in_order(void **state)
{
    (void)state;
    crash_run("persistent crash", "messages all recovered exactly once", crash_round);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_acknowledged_messages_survive_sigkill_once_in_order,
                                  remove_cur_dir),
    };
    return cmocka_run_group_tests_name("persistent_crash", tests, NULL, NULL);
}
