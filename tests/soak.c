/* Soak: mixed load for a while, watching memory and the message counts.
 *
 *   soak [SECONDS]      (default 600; make soak sets SOAK_SECONDS)
 *
 * One kernel with a journal (NOSYNC) runs, round after round until the time
 * is up: single sends, batches, asks (hy_ask from this thread), publishes to a
 * subscription, messages to persistent keyed actors spread over more keys
 * than stay active (they are passivated when idle: a snapshot, then activated
 * again by a later message), and registration churn: each round unregisters
 * the oldest of LIVE_CHURN subsystems (keyed actors with a state, passivated
 * when idle) once what it was sent is handled, and registers a new one under
 * one of CHURN_NAMES names, so names are reused; the live ones take messages
 * too. An unregistered subsystem's memory is freed in the background, so the
 * churn must leave the resident set flat like the rest.
 *
 * Every 10 s the resident set is sampled and printed as one JSON line, with
 * the journal's used size (its pages are mapped, so they count in RSS once
 * read) and the passivations so far:
 *   {"bench":"soak","scenario":"rss","seconds":T,"rss_bytes":N,
 *    "journal_bytes":J,"passivations":P}
 * It fails (exit 1) when the peak of the last minute exceeds the peak of the
 * first full minute by more than 10 % (for runs under two minutes: the last
 * third of the samples against the first third), or when a count is off:
 * each kind of message this program had accepted must have reached its
 * handler exactly once (no handler here fails, so none may be a dead letter),
 * and the kernel's own books must balance (sent == handled + dead letters of
 * accepted messages, nothing queued), or when unregistered subsystems are
 * not all freed a while after the load stops. A summary line closes the run. */
#include <ftw.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hypha.h"
#include "support.h"

#define SAMPLE_SECONDS 10
#define LIVE_CHURN     8      /* churned subsystems registered at a time */
#define CHURN_NAMES    64     /* the names they cycle through */
#define KEYS           4000   /* persistent keyed actors, more than stay active */
/* The window of persistent keys comes back to a key about every 40 ms, so
 * with 10 ms nearly every visit finds the actor passivated: millions of
 * snapshots and recoveries in ten minutes. */
#define IDLE_MS        10

enum { C_JOB, C_BATCH, C_ASK, C_PUB, C_ACCT, C_REG, C__N };
static const char *const cname[C__N] = {"send", "batch", "ask", "publish", "persistent",
                                         "registered"};
static _Atomic uint64_t handled[C__N];
static uint64_t accepted[C__N];

static int on_job(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    atomic_fetch_add(&handled[(intptr_t)hy_route_udata(ctx)], 1);
    return 0;
}

static int on_ask(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    atomic_fetch_add(&handled[C_ASK], 1);
    return hy_reply(ctx, p, len);
}

static int on_pub(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add(&handled[C_PUB], 1);
    return 0;
}

/* Persistent keyed actors: a counter, snapshotted and replayed. */
static int acct_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(uint64_t));
    return *state ? 0 : -1;
}

static void acct_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int acct_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    if (!(*bytes = malloc(sizeof(uint64_t))))
        return -1;
    memcpy(*bytes, state, sizeof(uint64_t));
    *len = sizeof(uint64_t);
    return 0;
}

static int acct_load(void *udata, const char *key, size_t key_len, const void *bytes,
                     size_t len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    if (len != sizeof(uint64_t) || !(*state = malloc(len)))
        return -1;
    memcpy(*state, bytes, len);
    return 0;
}

static int on_acct(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    uint64_t *n = hy_state(ctx);
    ++*n;
    if (!hy_is_replaying(ctx))
        atomic_fetch_add(&handled[C_ACCT], 1);
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "soak: %s: %s (%s)\n", what, hy_strerror(rc), hy_errdetail());
        exit(1);
    }
    return rc;
}

static uint64_t peak(const uint64_t *v, size_t from, size_t to)
{
    uint64_t m = 0;
    for (size_t i = from; i < to; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

int main(int argc, char **argv)
{
    long seconds = argc > 1 ? atol(argv[1]) : 600;
    if (seconds < 30) {
        fprintf(stderr, "soak: run for at least 30 s (three samples)\n");
        return 2;
    }
    char dir[] = "/tmp/hypha-soak-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("soak: mkdtemp");
        return 1;
    }
    char jpath[64];
    snprintf(jpath, sizeof jpath, "%s/journal", dir);

    hy_config cfg = {.workers = 2, .journal_path = jpath,
                     .durability = HY_DURABILITY_NOSYNC, .idle_timeout_ms = IDLE_MS,
                     .snapshot_every = 50};
    hy_kernel *k;
    check(hy_kernel_open(&k, &cfg), "kernel_open");

    static const hy_route work_routes[] = {
        {.pattern = "job/{n}", .handler = on_job, .udata = (void *)(intptr_t)C_JOB},
        {.pattern = "batch/{n}", .handler = on_job, .udata = (void *)(intptr_t)C_BATCH},
        {.pattern = "ask/{n}", .handler = on_ask},
    };
    hy_subsystem_def work = {.routes = work_routes, .nroutes = 3};
    check(hy_subsystem_register(k, "work", &work), "register work");
    static const hy_route acct_routes[] = {
        {.pattern = "acct/{id}", .handler = on_acct, .key = "id"},
    };
    hy_subsystem_def acct = {.routes = acct_routes, .nroutes = 1, .persistent = 1,
                             .state_init = acct_init, .state_free = acct_free,
                             .state_save = acct_save, .state_load = acct_load};
    check(hy_subsystem_register(k, "acct", &acct), "register acct");
    check(hy_subscribe(k, "news://**", on_pub, NULL, NULL), "subscribe");
    static const hy_route reg_routes[] = {
        {.pattern = "r/{n}", .handler = on_job, .udata = (void *)(intptr_t)C_REG, .key = "n"},
    };
    hy_subsystem_def reg = {.routes = reg_routes, .nroutes = 1, .state_init = acct_init,
                            .state_free = acct_free, .passivate = hy_passivate_discard};
    hy_stats st0;
    check(hy_kernel_stats(k, &st0), "stats");

    size_t nsamples = (size_t)(seconds / SAMPLE_SECONDS);
    uint64_t *rss = calloc(nsamples + 1, sizeof *rss);
    size_t got = 0;
    uint64_t start = mono_ns(), next_sample = start + SAMPLE_SECONDS * 1000000000ull;
    uint64_t end = start + (uint64_t)seconds * 1000000000ull;
    uint64_t nreg = 0, nunreg = 0; /* live churned subsystems: [nunreg, nreg) */
    char name[32];
    uint64_t round = 0, key = 0;
    char path[96];
    char bpaths[64][32];
    hy_send_item items[64];

    while (got < nsamples) {
        uint64_t t = mono_ns();
        if (t >= next_sample) {
            rss[got++] = rss_bytes();
            hy_stats now;
            check(hy_kernel_stats(k, &now), "stats");
            printf("{\"bench\":\"soak\",\"scenario\":\"rss\",\"seconds\":%zu,\"rss_bytes\":%llu,"
                   "\"journal_bytes\":%llu,\"passivations\":%llu}\n",
                   got * SAMPLE_SECONDS, (unsigned long long)rss[got - 1],
                   (unsigned long long)now.journal_map_used,
                   (unsigned long long)now.passivations);
            fflush(stdout);
            next_sample += SAMPLE_SECONDS * 1000000000ull;
            continue;
        }
        if (t >= end)
            break;
        /* Churn: the oldest goes (the last round's drain had its messages
         * handled: no time limit needed), a new one comes. */
        if (nreg - nunreg == LIVE_CHURN) {
            snprintf(name, sizeof name, "reg%u", (unsigned)(nunreg % CHURN_NAMES));
            check(hy_subsystem_unregister(k, name, -1), "unregister");
            nunreg++;
        }
        snprintf(name, sizeof name, "reg%u", (unsigned)(nreg % CHURN_NAMES));
        check(hy_subsystem_register(k, name, &reg), "register");
        nreg++;
        round++;
        for (int i = 0; i < 200; i++) {
            snprintf(path, sizeof path, "work://job/%d", i % 16);
            if (check(hy_send(k, path, "j", 1), "send") == 0)
                accepted[C_JOB]++;
        }
        for (int i = 0; i < 64; i++) {
            snprintf(bpaths[i], sizeof bpaths[i], "work://batch/%d", i % 8);
            items[i] = (hy_send_item){bpaths[i], "b", 1};
        }
        size_t acc = 0;
        check(hy_send_batch(k, items, 64, &acc), "send_batch");
        accepted[C_BATCH] += acc;
        for (int i = 0; i < 4; i++) {
            void *reply;
            size_t rlen;
            snprintf(path, sizeof path, "work://ask/%d", i);
            check(hy_ask(k, path, "q", 1, &reply, &rlen, 10000), "ask");
            accepted[C_ASK]++;
            if (rlen != 1 || memcmp(reply, "q", 1) != 0) {
                fprintf(stderr, "soak: ask: wrong reply\n");
                return 1;
            }
            hy_free(reply);
        }
        for (int i = 0; i < 8; i++) {
            size_t delivered = 0;
            snprintf(path, sizeof path, "news://topic/%d", i);
            check(hy_publish(k, path, "p", 1, &delivered), "publish");
            accepted[C_PUB] += delivered;
        }
        /* Persistent keyed actors: a window that moves over KEYS keys, so
         * the ones it left go idle and are passivated, and come back. */
        for (int i = 0; i < 40; i++) {
            snprintf(path, sizeof path, "acct://acct/k%llu", (unsigned long long)(key++ % KEYS));
            check(hy_send(k, path, "a", 1), "send persistent");
            accepted[C_ACCT]++;
        }
        for (unsigned i = 0; i < 16; i++) {
            uint64_t live = nunreg + (round + i) % (nreg - nunreg);
            snprintf(path, sizeof path, "reg%u://r/%u", (unsigned)(live % CHURN_NAMES), i % 5);
            check(hy_send(k, path, "r", 1), "send registered");
            accepted[C_REG]++;
        }
        check(hy_kernel_drain(k, 30000), "drain");
    }
    check(hy_kernel_drain(k, 30000), "final drain");
    /* Every unregistered subsystem is freed in the background soon after:
     * only the ones registered at the start and the live churned ones stay. */
    hy_stats st;
    uint64_t want = st0.subsystems + (nreg - nunreg);
    for (int i = 0; i < 1000; i++) {
        check(hy_kernel_stats(k, &st), "stats");
        if (st.subsystems == want)
            break;
        usleep(10000);
    }

    int fail = 0;
    for (int c = 0; c < C__N; c++) {
        uint64_t h = atomic_load(&handled[c]);
        if (h != accepted[c]) {
            fprintf(stderr, "soak: %s: %llu accepted, %llu handled\n", cname[c],
                    (unsigned long long)accepted[c], (unsigned long long)h);
            fail = 1;
        }
    }
    if (st.subsystems != want) {
        fprintf(stderr, "soak: %llu subsystems still registered, want %llu\n",
                (unsigned long long)st.subsystems, (unsigned long long)want);
        fail = 1;
    }
    uint64_t dead = st.dead[HY_DEAD_FAILED] + st.dead[HY_DEAD_DROPPED] +
                    st.dead[HY_DEAD_STOPPED] + st.dead[HY_DEAD_JOURNAL];
    if (st.sent != st.handled + dead || st.queued != 0 || dead != 0 || st.failed != 0) {
        fprintf(stderr,
                "soak: kernel books: sent %llu, handled %llu, dead %llu, failed %llu, queued %llu\n",
                (unsigned long long)st.sent, (unsigned long long)st.handled,
                (unsigned long long)dead, (unsigned long long)st.failed,
                (unsigned long long)st.queued);
        fail = 1;
    }

    /* Memory: the first full minute against the last (or thirds). */
    size_t a0, a1, b0, b1;
    if (seconds >= 120) {
        size_t per_min = 60 / SAMPLE_SECONDS;
        a0 = 0, a1 = per_min;
        b0 = got - per_min, b1 = got;
    } else {
        size_t third = got / 3 ? got / 3 : 1;
        a0 = 0, a1 = third;
        b0 = got - third, b1 = got;
    }
    uint64_t first = peak(rss, a0, a1), last = peak(rss, b0, b1);
    double growth = first ? (double)last / (double)first - 1.0 : 0.0;
    if (got < 3 || last * 10 > first * 11) {
        fprintf(stderr, "soak: RSS peak grew from %llu to %llu bytes (%+.1f%%; limit +10%%)\n",
                (unsigned long long)first, (unsigned long long)last, growth * 100);
        fail = 1;
    }
    printf("{\"bench\":\"soak\",\"scenario\":\"summary\",\"seconds\":%ld,\"rounds\":%llu,"
           "\"sent\":%llu,\"handled\":%llu,\"dead\":%llu,\"activations\":%llu,"
           "\"passivations\":%llu,\"subsystems\":%llu,\"registrations\":%llu,"
           "\"unregistrations\":%llu,\"rss_first_peak\":%llu,"
           "\"rss_last_peak\":%llu,\"rss_growth\":%.4f,\"ok\":%s}\n",
           seconds, (unsigned long long)round, (unsigned long long)st.sent,
           (unsigned long long)st.handled, (unsigned long long)dead,
           (unsigned long long)st.activations, (unsigned long long)st.passivations,
           (unsigned long long)st.subsystems, (unsigned long long)nreg,
           (unsigned long long)nunreg, (unsigned long long)first,
           (unsigned long long)last, growth, fail ? "false" : "true");
    hy_kernel_close(k);
    free(rss);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return fail;
}
