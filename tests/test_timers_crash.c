/* Crash test of persistent timers: a timer to a persistent subsystem,
 * acknowledged as journaled, fires exactly once across a kill -9 and the
 * recovery that follows.
 *
 * Each round forks a child that opens a kernel with a journal, registers the
 * persistent subsystem "acct" (its one actor's state: every number it was
 * sent, snapshotted every 16 messages), attaches the timers and, from one
 * thread, schedules timer n (a delay of 0..29 ms, payload n) to
 * acct://fire, then sends a durable mark: the journal commits in submission
 * order, so when the mark's on_durable runs, timer n's arming is durable
 * too, and the callback writes n to a side file with one write(2). Every
 * tenth timer is cancelled right away; a cancel that came first is
 * acknowledged the same way (a durable mark after it). The parent
 * SIGKILLs the child, reopens the journal, registers "acct", attaches the
 * timers (re-arming what was pending; overdue ones fire at once), waits
 * until none is pending, and checks: no number reached acct twice (before
 * and after the crash together), every acknowledged number reached it, and
 * no acknowledged cancelled one did.
 *
 * Rounds: HY_CRASH_ROUNDS (default 20); seed: HY_CRASH_SEED. */
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crash.h"
#include "support.h"

#include "hypha.h"

static history *_Atomic latest;

static int s_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    history *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    atomic_store(&latest, h);
    *state = h;
    return 0;
}

static void s_free(void *udata, void *state)
{
    (void)udata;
    history *h = state, *cur = h;
    atomic_compare_exchange_strong(&latest, &cur, NULL);
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
    (void)udata, (void)key, (void)key_len;
    history *h = history_load(bytes, len);
    if (!h)
        return -1;
    atomic_store(&latest, h);
    *state = h;
    return 0;
}

static const hy_route routes[] = {
    {.pattern = "fire", .handler = history_apply},
    {.pattern = "mark", .handler = history_ignore},
};

static int open_kernel(const char *env, hy_kernel **k)
{
    hy_config cfg = {.workers = 2, .journal_path = env, .durability = HY_DURABILITY_NOSYNC,
                     .snapshot_every = 16};
    int rc = hy_kernel_open(k, &cfg);
    if (rc)
        return rc;
    hy_subsystem_def def = {.routes = routes, .nroutes = 2, .state_init = s_init,
                            .state_free = s_free, .persistent = 1, .state_save = s_save,
                            .state_load = s_load};
    rc = hy_subsystem_register(*k, "acct", &def);
    if (rc == 0)
        rc = hy_timer_attach(*k, NULL); /* after "acct": overdue ones fire at once */
    if (rc)
        hy_kernel_close(*k);
    return rc;
}

/* ---------------------------------------------------------------- the child */

static int ack_fd = -1;

#define CANCELLED ((uint64_t)1 << 63)

static void on_durable(void *udata, int status)
{
    if (status != 0)
        _exit(5);
    uint64_t v = (uint64_t)(uintptr_t)udata;
    if (write(ack_fd, &v, sizeof v) != (ssize_t)sizeof v)
        _exit(3);
}

static void child_main(const char *env, const char *ack_path, int ready_fd)
{
    alarm(30);
    ack_fd = open(ack_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (ack_fd < 0)
        _exit(2);
    hy_kernel *k;
    if (open_kernel(env, &k) != 0) {
        dprintf(2, "child: open: %s\n", hy_errdetail());
        _exit(2);
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(2);
    for (uint64_t n = 1;; n++) {
        uint64_t id;
        if (hy_send_after(k, "acct://fire", &n, sizeof n, (int64_t)(n * 7 % 30), &id) != 0)
            _exit(4);
        uint64_t ack = n;
        if (n % 10 == 0) {
            /* acknowledged as cancelled (top bit) once the cancel is
             * durable, if it came before the firing */
            int rc = hy_timer_cancel(k, id);
            if (rc < 0)
                _exit(4);
            if (rc == 0)
                continue;
            ack |= CANCELLED;
        }
        if (hy_send_durable(k, "acct://mark", NULL, 0, on_durable, (void *)(uintptr_t)ack) != 0)
            _exit(4);
        if (n % 64 == 0)
            usleep(500); /* let timers come due while we run */
    }
}

/* ---------------------------------------------------------------- the parent */

static size_t crash_round(unsigned seed, int round, size_t *recovered)
{
    char env[64], ack_path[64];
    int ready;
    pid_t pid = crash_start("/tmp/hy-tcrash-XXXXXX", env, ack_path, child_main, &ready);
    crash_kill(pid, ready, round, seed, ack_path, sizeof(uint64_t), 20000);
    if (access(env, F_OK) != 0) {
        remove_cur_dir(NULL);
        return 0;
    }
    hy_kernel *k;
    int rc = open_kernel(env, &k);
    if (rc)
        fail_msg("round %d: reopen: %s: %s", round, hy_err_name(rc), hy_errdetail());
    hy_timer_stats ts;
    uint64_t deadline = mono_ns() + 10000000000ull;
    do {
        assert_int_equal(hy_timer_stats_get(k, &ts), 0);
        if (ts.pending == 0)
            break;
        usleep(1000);
    } while (mono_ns() < deadline);
    if (ts.pending)
        fail_msg("round %d: %llu timers still pending", round, (unsigned long long)ts.pending);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    static uint64_t rearmed;
    rearmed += ts.recovered;
    if (round == 0)
        rearmed = ts.recovered;
    history *h = atomic_load(&latest);
    assert_non_null(h);
    uint64_t *sorted = malloc((h->n + 1) * sizeof *sorted);
    if (h->n)
        memcpy(sorted, h->nums, h->n * sizeof *sorted);
    qsort(sorted, h->n, sizeof *sorted, cmp_u64);
    for (size_t i = 1; i < h->n; i++)
        if (sorted[i] == sorted[i - 1])
            fail_msg("round %d: timer %llu fired twice", round, (unsigned long long)sorted[i]);
    size_t count = h->n;
    *recovered += count;
    hy_kernel_close(k);
    if (round % 5 == 4)
        printf("round %d: %zu fired in all, %llu re-armed at recovery so far\n", round, count,
               (unsigned long long)rearmed);

    size_t nacks = 0;
    int fd = open(ack_path, O_RDONLY);
    if (fd >= 0) {
        uint64_t v;
        while (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
            if (v & CANCELLED) {
                v &= ~CANCELLED;
                if (bsearch(&v, sorted, count, sizeof *sorted, cmp_u64))
                    fail_msg("round %d: timer %llu fired after a durable cancel", round,
                             (unsigned long long)v);
                continue; /* not counted: crash_run compares acks with what fired */
            }
            if (!bsearch(&v, sorted, count, sizeof *sorted, cmp_u64))
                fail_msg("round %d: acknowledged timer %llu never fired (%zu fired)", round,
                         (unsigned long long)v, count);
            nacks++;
        }
        close(fd);
    }
    free(sorted);
    remove_cur_dir(NULL);
    return nacks;
}

static void test_journaled_timers_fire_exactly_once_across_sigkill(void **state)
{
    (void)state;
    crash_run("timers crash", "timers all fired exactly once", crash_round);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_journaled_timers_fire_exactly_once_across_sigkill,
                                  remove_cur_dir),
    };
    return cmocka_run_group_tests_name("timers_crash", tests, NULL, NULL);
}
