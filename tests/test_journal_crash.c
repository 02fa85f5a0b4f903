/* Crash test of the group-commit journal (docs/ARCHITECTURE.md §4: no acknowledged entry
 * is ever lost, including under kill -9).
 *
 * Each round forks a child that submits appends through the writer from two
 * threads to three actors (single entries and small batches) under
 * HYI_DUR_SYNC. Each completion callback writes the acknowledged (actor, seq,
 * payload id) to a side file with one unbuffered write(2). The parent SIGKILLs
 * the child after a random delay, reopens the environment and checks: every
 * acknowledged entry is in the journal at its sequence with its payload, each
 * payload appears exactly once, acknowledgements per actor come in sequence
 * order, each sender's entries keep their order, and every actor's sequences
 * are gap-free from 1. Half the children run with a 2-actor head cache and a
 * checkpoint every 50 entries.
 *
 * Rounds: HY_CRASH_ROUNDS (default 20); seed: HY_CRASH_SEED (default from the
 * clock, printed so a failure can be replayed). The parent forks before it
 * creates any thread (it never submits, so no writer thread starts in it):
 * fork + threads stays valid under TSan. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crash.h"

#include "journal.h"

#define ACTORS 3
#define SENDERS 2
#define PAYLOAD 64

typedef struct ack {
    uint64_t actor, seq, id;
} ack;

/* ---------------------------------------------------------------- the child */

static int ack_fd = -1;

static void on_ack(void *user, uint64_t actor, uint64_t seq, int status)
{
    ack a = {actor, status == 0 ? seq : 0, (uint64_t)(uintptr_t)user};
    /* One write(2) per ack, nothing buffered in the process: whatever the
     * callback got to write survives the SIGKILL. */
    if (write(ack_fd, &a, sizeof a) != (ssize_t)sizeof a)
        _exit(3);
}

typedef struct sender {
    hyi_journal *j;
    uint64_t id;
} sender;

static void make_payload(unsigned char *p, uint64_t id)
{
    memset(p, 0xA5, PAYLOAD);
    memcpy(p, &id, sizeof id);
}

static void *sender_main(void *arg)
{
    sender *s = arg;
    unsigned char payload[5][PAYLOAD];
    for (uint64_t i = 0;; i++) {
        /* id: sender in the top bits, its own counter below; unique overall,
         * increasing per sender. */
        uint64_t id = s->id << 48 | i;
        uint64_t actor = 1 + i % ACTORS;
        if (i % 7 == 0) {
            /* A batch of 5 to one actor: five consecutive ids. */
            hyi_journal_rec r[5];
            void *users[5];
            for (int k = 0; k < 5; k++) {
                make_payload(payload[k], id + (uint64_t)k);
                r[k] = (hyi_journal_rec){.actor = actor, .path = "crash://b",
                                         .path_len = 9, .payload = payload[k],
                                         .payload_len = PAYLOAD};
                users[k] = (void *)(uintptr_t)(id + (uint64_t)k);
            }
            if (hyi_journal_submit_batch(s->j, r, 5, on_ack, users) != 0)
                _exit(4);
            i += 4;
        } else {
            make_payload(payload[0], id);
            hyi_journal_rec r = {.actor = actor, .path = "crash://one", .path_len = 11,
                                 .payload = payload[0], .payload_len = PAYLOAD};
            if (hyi_journal_submit(s->j, &r, on_ack, (void *)(uintptr_t)id) != 0)
                _exit(4);
        }
    }
    return NULL;
}

static void child_main(const char *env_path, const char *ack_path, int ready_fd)
{
    alarm(30); /* never outlive a parent that failed to kill us */
    ack_fd = open(ack_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (ack_fd < 0)
        _exit(2);
    hyi_journal *j;
    /* Every other child keeps heads for 2 actors only and checkpoints every
     * 50 entries, so kills land in evictions and checkpoints; the others never
     * checkpoint before the kill, so the reopen rebuilds every head from the
     * log. The child's pid picks (the parent's round is not passed down). */
    bool tiny = getpid() % 2;
    hyi_journal_config cfg = {.path = env_path, .durability = HYI_DUR_SYNC,
                              .max_pending = 2048,
                              .cache_actors = tiny ? 2 : 0,
                              .checkpoint_entries = tiny ? 50 : 0};
    if (hyi_journal_open(&j, &cfg) != 0) {
        dprintf(2, "child: open: %s\n", hy_errdetail());
        _exit(2);
    }
    pthread_t th[SENDERS];
    sender s[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        s[i] = (sender){j, (uint64_t)i + 1};
        if (pthread_create(&th[i], NULL, sender_main, &s[i]) != 0)
            _exit(2);
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(2);
    for (;;)
        pause();
}

/* ---------------------------------------------------------------- the parent */

typedef struct journaled {
    uint64_t *ids; /* ids[seq - 1] */
    size_t n, cap;
} journaled;

static int collect(void *user, const hyi_journal_entry *e)
{
    journaled *jd = user;
    if (e->payload_len != PAYLOAD)
        fail_msg("seq %llu: payload of %zu bytes", (unsigned long long)e->seq,
                 e->payload_len);
    if (e->seq != jd->n + 1)
        fail_msg("seq %llu where %zu was due", (unsigned long long)e->seq, jd->n + 1);
    if (jd->n == jd->cap) {
        jd->cap = jd->cap ? jd->cap * 2 : 1024;
        jd->ids = realloc(jd->ids, jd->cap * sizeof *jd->ids);
    }
    memcpy(&jd->ids[jd->n++], e->payload, sizeof(uint64_t));
    return 0;
}

/* One round: returns the number of acks checked; adds journaled entries. */
static size_t crash_round(unsigned seed, int round, size_t *journal_total)
{
    char env_path[64], ack_path[64];
    int ready;
    pid_t pid = crash_start("/tmp/hy-crash-XXXXXX", env_path, ack_path, child_main, &ready);
    crash_kill(pid, ready, round, seed, ack_path, sizeof(ack), 40000);

    hyi_journal *j;
    hyi_journal_config cfg = {.path = env_path, .durability = HYI_DUR_SYNC};
    int rc = hyi_journal_open(&j, &cfg);
    if (rc == HY_EJOURNAL && access(env_path, F_OK) != 0) {
        /* killed before it created the directory: nothing to check */
        remove_cur_dir(NULL);
        return 0;
    }
    if (rc)
        fail_msg("round %d: reopen: %s", round, hy_errdetail());

    journaled jd[ACTORS + 1] = {{0}};
    for (uint64_t a = 1; a <= ACTORS; a++) {
        uint64_t last = 0, high = 0;
        rc = hyi_journal_read_from(j, a, 0, collect, &jd[a], &last);
        if (rc)
            fail_msg("round %d: read actor %llu: %s", round, (unsigned long long)a,
                     hy_errdetail());
        assert_int_equal(hyi_journal_highest(j, a, &high), 0);
        assert_int_equal(high, jd[a].n); /* gap-free from 1 (collect checks) */
        *journal_total += jd[a].n;

        /* Exactly once: no payload id twice. */
        uint64_t *sorted = malloc((jd[a].n + 1) * sizeof *sorted);
        if (jd[a].n)
            memcpy(sorted, jd[a].ids, jd[a].n * sizeof *sorted);
        qsort(sorted, jd[a].n, sizeof *sorted, cmp_u64);
        for (size_t i = 1; i < jd[a].n; i++)
            if (sorted[i] == sorted[i - 1])
                fail_msg("round %d: actor %llu: payload %llx journaled twice", round,
                         (unsigned long long)a, (unsigned long long)sorted[i]);
        free(sorted);
        /* Each sender's entries keep their submission order. */
        uint64_t prev[SENDERS + 1] = {0};
        for (size_t i = 0; i < jd[a].n; i++) {
            uint64_t id = jd[a].ids[i], who = id >> 48;
            if (who < 1 || who > SENDERS)
                fail_msg("round %d: foreign payload id %llx", round, (unsigned long long)id);
            if (prev[who] && id <= prev[who])
                fail_msg("round %d: sender %llu reordered", round, (unsigned long long)who);
            prev[who] = id;
        }
    }
    hyi_journal_close(j);

    /* Every acknowledged entry is there, at its sequence, acks in seq order. */
    size_t nacks = 0;
    int fd = open(ack_path, O_RDONLY);
    if (fd >= 0) {
        uint64_t last_ack[ACTORS + 1] = {0};
        ack a;
        ssize_t got;
        while ((got = read(fd, &a, sizeof a)) == (ssize_t)sizeof a) {
            if (a.actor < 1 || a.actor > ACTORS || a.seq == 0)
                fail_msg("round %d: bad ack (actor %llu, seq %llu)", round,
                         (unsigned long long)a.actor, (unsigned long long)a.seq);
            if (a.seq > jd[a.actor].n)
                fail_msg("round %d: acked (actor %llu, seq %llu) is lost: journal "
                         "ends at %zu", round, (unsigned long long)a.actor,
                         (unsigned long long)a.seq, jd[a.actor].n);
            if (jd[a.actor].ids[a.seq - 1] != a.id)
                fail_msg("round %d: (actor %llu, seq %llu) holds %llx, acked %llx", round,
                         (unsigned long long)a.actor, (unsigned long long)a.seq,
                         (unsigned long long)jd[a.actor].ids[a.seq - 1],
                         (unsigned long long)a.id);
            if (a.seq <= last_ack[a.actor])
                fail_msg("round %d: acks out of order", round);
            last_ack[a.actor] = a.seq;
            nacks++;
        }
        /* A torn last record (killed mid-write) is not an ack. */
        assert_true(got >= 0);
        close(fd);
    }
    for (int a = 1; a <= ACTORS; a++)
        free(jd[a].ids);
    remove_cur_dir(NULL);
    return nacks;
}

static void test_acknowledged_entries_survive_sigkill(void **state)
{
    (void)state;
    crash_run("crash", "entries all found", crash_round);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_acknowledged_entries_survive_sigkill,
                                  remove_cur_dir),
    };
    return cmocka_run_group_tests_name("journal_crash", tests, NULL, NULL);
}
