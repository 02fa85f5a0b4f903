/* The kill -9 harness the crash tests share: each round makes a fresh
 * directory, forks a child that writes and acknowledges until it is killed,
 * kills it with SIGKILL at a moment that depends on the round, and reaps it;
 * the test then checks what survived; and the actor state both tests keep.
 * Include after cmocka.h. */
#ifndef HY_TEST_CRASH_H
#define HY_TEST_CRASH_H

#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hypha.h"

/* ---------------------------------------------------------------- history */

/* An actor's state in both crash tests: every number it applied, in order.
 * Saved and loaded as the raw array (state_save/state_load's bytes). */
typedef struct history {
    uint64_t *nums;
    size_t n, cap;
} history;

static inline int history_push(history *h, uint64_t v)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        uint64_t *p = realloc(h->nums, cap * sizeof *p);
        if (!p)
            return -1;
        h->nums = p;
        h->cap = cap;
    }
    h->nums[h->n++] = v;
    return 0;
}

static inline void history_free(history *h)
{
    free(h->nums);
    free(h);
}

/* A copy of h's numbers for a snapshot: 0, or -1 when out of memory. */
static inline int history_save(const history *h, void **bytes, size_t *len)
{
    *len = h->n * sizeof *h->nums;
    if (!(*bytes = malloc(*len ? *len : 1)))
        return -1;
    if (*len)
        memcpy(*bytes, h->nums, *len);
    return 0;
}

/* A history made from a snapshot's bytes; NULL when they are not whole
 * numbers or memory runs out. */
static inline history *history_load(const void *bytes, size_t len)
{
    history *h = len % sizeof(uint64_t) ? NULL : (history *)calloc(1, sizeof *h);
    for (size_t i = 0; h && i < len / sizeof(uint64_t); i++) {
        uint64_t v;
        memcpy(&v, (const char *)bytes + i * sizeof v, sizeof v);
        if (history_push(h, v) != 0) {
            history_free(h);
            h = NULL;
        }
    }
    return h;
}

/* The handler that applies a number (an 8-byte payload) to the actor's
 * history; any other payload fails. */
static inline int history_apply(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, p, sizeof v);
    return history_push((history *)hy_state(ctx), v);
}

/* A handler that does nothing: a message sent only to be journaled. */
static inline int history_ignore(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    return 0;
}

/* ---------------------------------------------------------------- rounds */

/* The current round's directory, so a failed assertion (which leaves the
 * round early) still has it removed by the teardown. */
static char cur_dir[32];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int remove_cur_dir(void **state)
{
    (void)state;
    if (cur_dir[0])
        nftw(cur_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    cur_dir[0] = 0;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The child: opens what it writes under env, appends each acknowledged record
 * to acks (write(2), no buffering), says "ready" on ready_fd once it is
 * writing, and never returns. */
typedef void (*crash_child_fn)(const char *env, const char *acks, int ready_fd);

/* Start a round: a fresh directory (template such as "/tmp/hy-crash-XXXXXX"),
 * env and acks paths inside it, the child forked. Returns its pid; *ready_fd
 * is the read end of its ready pipe. */
static pid_t crash_start(const char *dir_template, char env[64], char acks[64],
                         crash_child_fn child, int *ready_fd)
{
    char *dir = strcpy(cur_dir, dir_template);
    assert_non_null(mkdtemp(dir));
    snprintf(env, 64, "%s/env", dir);
    snprintf(acks, 64, "%s/acks", dir);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        child(env, acks, ready[1]);
    }
    close(ready[1]);
    *ready_fd = ready[0];
    return pid;
}

/* Kill the child at the round's moment and reap it. Every fifth round at a
 * random moment from fork on, within early_us (it may hit the open itself);
 * every fifth plus one as soon as the child is ready; the rest 0..40 ms after
 * its first acknowledgement (acks reaching ack_size bytes). Waiting on the
 * child's own progress keeps slow sanitizer builds meaningful too. */
static void crash_kill(pid_t pid, int ready_fd, int round, unsigned seed, const char *acks,
                       size_t ack_size, long early_us)
{
    unsigned r = (seed + (unsigned)round) * 2654435761u;
    r ^= r >> 15;
    char c;
    if (round % 5 != 0 && read(ready_fd, &c, 1) != 1)
        fail_msg("round %d: child died before it was ready", round);
    if (round % 5 >= 2) {
        struct stat st;
        struct timespec tick = {0, 200000};
        for (int i = 0; i < 25000; i++) { /* at most ~5 s */
            if (stat(acks, &st) == 0 && st.st_size >= (off_t)ack_size)
                break;
            nanosleep(&tick, NULL);
        }
    }
    long us = round % 5 == 0 ? (long)(r % (unsigned)early_us) : round % 5 == 1 ? 0 : (long)(r % 40000);
    struct timespec d = {0, us * 1000L};
    nanosleep(&d, NULL);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(ready_fd); /* only now: an unread pipe must not SIGPIPE the child */
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("round %d: child ended by itself (status 0x%x)", round, status);
}

/* One round: survivors checked, the count of acknowledgements it found
 * returned; *total grows by what the round recovered in all. */
typedef size_t (*crash_round_fn)(unsigned seed, int round, size_t *total);

/* Run HY_CRASH_ROUNDS rounds (20 by default) from seed HY_CRASH_SEED (else
 * time and pid, printed so a failure can be replayed), then check that some
 * round got as far as an acknowledgement (else the test proved nothing) and
 * that everything acknowledged was among what was recovered. `what` names
 * the acknowledged items in the summary line. */
static void crash_run(const char *label, const char *what, crash_round_fn round_fn)
{
    const char *e = getenv("HY_CRASH_ROUNDS");
    int rounds = e && atoi(e) > 0 ? atoi(e) : 20;
    e = getenv("HY_CRASH_SEED");
    unsigned seed = e ? (unsigned)strtoul(e, NULL, 10)
                      : (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("%s: %d rounds, HY_CRASH_SEED=%u\n", label, rounds, seed);
    size_t acks = 0, total = 0;
    int with_acks = 0;
    for (int r = 0; r < rounds; r++) {
        size_t n = round_fn(seed, r, &total);
        acks += n;
        with_acks += n > 0;
    }
    printf("%s: %d rounds (%d with acks), %zu acknowledged %s, %zu recovered in total\n",
           label, rounds, with_acks, acks, what, total);
    assert_true(acks > 0);
    assert_true(total >= acks);
}

#endif
