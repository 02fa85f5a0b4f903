/* Benchmark family "journal": the persist layer on its own, against raw LMDB.
 *
 * Scenarios (all by default, or one with --scenario):
 *   raw-lmdb-sync / raw-lmdb-nosync   the baseline: 64-byte values, 1000 appends
 *                                     per write txn, MDB_APPEND, fsync or not
 *   group-commit-sync / -nosync       hypha's writer thread fed by one submitting
 *                                     thread, 64-byte payloads; a message counts
 *                                     when its completion callback ran. Run in
 *                                     alternating rounds with the raw baseline of
 *                                     the same durability; medians; reports the
 *                                     ratio, the commit batch p50 and bytes per
 *                                     message on disk (data.mdb size / entries)
 *   recovery                          read_from over 1 M entries (entries/s)
 *   snapshot                          save / load of a 1 KB state, nosync:
 *                                     p50/p99 latency
 *   static / keyed                    the kernel end to end: one thread sends
 *                                     64-byte messages (hy_send) to a persistent
 *                                     subsystem's one actor ("static") or to
 *                                     1000 keyed actors ("keyed"); the clock stops
 *                                     when drain says all were handled, each
 *                                     after its entry was durable. Under sync
 *                                     and nosync, in alternating rounds with the
 *                                     raw LMDB baseline of the same durability;
 *                                     medians; reports the ratio to it, the
 *                                     commit batch p50 and bytes per message on
 *                                     disk ("persistent-static-sync" against
 *                                     "raw-lmdb-sync" is the target ratio)
 *   keyed-nosync (opt-in)             "keyed" under nosync only (profiling)
 *   keyed-100k-nosync, keyed-1m-nosync (opt-in)
 *                                     their nosync half alone (profiling)
 *   keyed-100k / keyed-1m (opt-in)    "keyed" with 100,000 and 1,000,000 actors
 *                                     (persistent-keyed-100k-*, -1m-*); at least
 *                                     2 messages per actor, so half of the 1 M
 *                                     run's messages are activations
 *                                     Every keyed line also has the same sends
 *                                     to a subsystem that is not persistent, in
 *                                     a kernel without a journal, as a third side
 *                                     of each round (no_journal_msgs_per_s,
 *                                     no_journal_cpu_ns_per_msg): what the
 *                                     kernel's actors cost at that many actors
 *                                     before the journal adds anything
 *   retention                         steady load with snapshots: 1000 actors,
 *                                     3 M messages, each actor snapshotted every
 *                                     1000 of its entries; the journal's file
 *                                     size (max, at 10% and at the end), log
 *                                     entries, disk_bytes_per_msg
 *   retention-10m (opt-in)            the same over 10 M messages
 *   group-commit-keyed[-100k|-1m]     (opt-in) the journal alone, no kernel:
 *                                     one thread submits to 1000 / 100k / 1M
 *                                     actors round-robin, sync and nosync, in
 *                                     alternating rounds with raw LMDB
 *
 * disk_bytes_per_msg is data.mdb's size over the messages written.
 * Every scenario works in its own directory under /tmp, removed afterwards. */
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "clock.h"
#include "journal.h"

#define PAYLOAD 64
#define ROUNDS 3

/* ---------------------------------------------------------------- helpers */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

typedef struct tmpdir {
    char dir[32];
    char env[48];
} tmpdir;

static int tmp_make(tmpdir *t)
{
    strcpy(t->dir, "/tmp/hy-bench-XXXXXX");
    if (!mkdtemp(t->dir)) {
        fprintf(stderr, "journal bench: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(t->env, sizeof t->env, "%s/env", t->dir);
    return 0;
}

static void tmp_remove(tmpdir *t)
{
    nftw(t->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static uint64_t data_file_bytes(const char *env)
{
    char p[96];
    struct stat st;
    snprintf(p, sizeof p, "%s/data.mdb", env);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void key_be(unsigned char *k, uint64_t actor, uint64_t seq)
{
    for (int i = 7; i >= 0; i--, actor >>= 8, seq >>= 8) {
        k[i] = (unsigned char)actor;
        k[8 + i] = (unsigned char)seq;
    }
}

/* ---------------------------------------------------------------- raw LMDB */

typedef struct result {
    double rate, seconds;
    uint64_t bytes_on_disk, batch_p50;
    /* per message: CPU time of the sending thread, of the journal's writer
     * thread, and of the whole process (sender, writer, workers) from the
     * first send to drained */
    double sender_cpu_ns, writer_cpu_ns, cpu_ns;
    double sender_waits; /* per message: the sending thread's voluntary switches */
} result;

static uint64_t thread_waits(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (uint64_t)ru.ru_nvcsw;
}

#define RAW_CHECK(call)                                                        \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) {                                                             \
            fprintf(stderr, "journal bench: %s: %s\n", #call, mdb_strerror(rc_)); \
            goto out;                                                          \
        }                                                                      \
    } while (0)

static int raw_round(bool sync, uint64_t n, result *res)
{
    tmpdir t;
    if (tmp_make(&t))
        return -1;
    int ok = -1;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    if (mkdir(t.env, 0750) != 0)
        goto out;
    RAW_CHECK(mdb_env_create(&env));
    RAW_CHECK(mdb_env_set_maxdbs(env, 4));
    RAW_CHECK(mdb_env_set_mapsize(env, (size_t)4 << 30));
    RAW_CHECK(mdb_env_open(env, t.env, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0640));
    RAW_CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    RAW_CHECK(mdb_dbi_open(txn, "journal", MDB_CREATE, &dbi));
    RAW_CHECK(mdb_txn_commit(txn));
    txn = NULL;
    unsigned char kb[16], val[PAYLOAD];
    memset(val, 0x5a, sizeof val);
    uint64_t t0 = bench_now_ns();
    for (uint64_t done = 0; done < n;) {
        RAW_CHECK(mdb_txn_begin(env, NULL, 0, &txn));
        for (int i = 0; i < 1000 && done < n; i++) {
            done++;
            key_be(kb, 1, done);
            MDB_val k = {sizeof kb, kb}, v = {sizeof val, val};
            RAW_CHECK(mdb_put(txn, dbi, &k, &v, MDB_APPEND));
        }
        int rc = mdb_txn_commit(txn);
        txn = NULL;
        RAW_CHECK(rc);
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    *res = (result){.rate = (double)n / secs, .seconds = secs,
                    .bytes_on_disk = data_file_bytes(t.env), .batch_p50 = 1000};
    ok = 0;
out:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    tmp_remove(&t);
    return ok;
}

/* ---------------------------------------------------------------- group commit */

typedef struct gc_state {
    _Atomic uint64_t done; /* callbacks seen */
    _Atomic uint64_t failed;
} gc_state;

static void gc_done(void *user, uint64_t actor, uint64_t seq, int status)
{
    gc_state *g = user;
    (void)actor, (void)seq;
    /* Relaxed: counters read after hyi_journal_flush, which orders them. */
    if (status)
        atomic_fetch_add_explicit(&g->failed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g->done, 1, memory_order_relaxed);
}

static int open_journal(tmpdir *t, hyi_durability d, hyi_journal **j)
{
    hyi_journal_config cfg = {.path = t->env, .durability = d,
                              .map_size = (size_t)1 << 30};
    int rc = hyi_journal_open(j, &cfg);
    if (rc)
        fprintf(stderr, "journal bench: open: %s\n", hy_errdetail());
    return rc;
}

/* actors: how many actors the entries go to, round-robin (1: one actor). */
static int gc_round(bool sync, uint64_t n, uint64_t actors, result *res)
{
    tmpdir t;
    if (tmp_make(&t))
        return -1;
    hyi_journal *j;
    if (open_journal(&t, sync ? HYI_DUR_SYNC : HYI_DUR_NOSYNC, &j)) {
        tmp_remove(&t);
        return -1;
    }
    gc_state g = {0};
    unsigned char payload[PAYLOAD];
    memset(payload, 0x5a, sizeof payload);
    hyi_journal_rec r = {.actor = 1, .payload = payload, .payload_len = PAYLOAD};
    int rc = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        r.actor = 1 + i % actors;
        rc = hyi_journal_submit(j, &r, gc_done, &g);
        if ((i & 0xffff) == 0)
            bench_progress(sync ? "group-commit-sync" : "group-commit-nosync", i, n);
    }
    hyi_journal_flush(j);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    bench_progress(sync ? "group-commit-sync" : "group-commit-nosync", n, n);
    hyi_journal_stats st;
    hyi_journal_get_stats(j, &st);
    hyi_journal_close(j);
    if (rc || atomic_load(&g.failed) || atomic_load(&g.done) != n || st.entries != n) {
        fprintf(stderr, "journal bench: group commit lost or failed entries (%s)\n",
                rc ? hy_errdetail() : "callbacks");
        tmp_remove(&t);
        return -1;
    }
    *res = (result){.rate = (double)n / secs, .seconds = secs,
                    .bytes_on_disk = data_file_bytes(t.env), .batch_p50 = st.batch_p50};
    tmp_remove(&t);
    return 0;
}

/* Alternating rounds of raw LMDB and group commit at one durability, so drift
 * of the machine (page cache, other load) hits both alike; medians reported. */
static int run_pair_actors(const bench_opts *o, bool sync, bool want_raw, bool want_gc,
                           uint64_t actors)
{
    uint64_t n = o->messages ? o->messages : sync ? 200000 : 1000000;
    if (!o->messages && n < 2 * actors)
        n = 2 * actors;
    double raw_rate[ROUNDS], gc_rate[ROUNDS], raw_s[ROUNDS], gc_s[ROUNDS];
    double raw_bpm[ROUNDS], gc_bpm[ROUNDS], gc_p50[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        result a = {0}, b = {0};
        if (raw_round(sync, n, &a) || (want_gc && gc_round(sync, n, actors, &b)))
            return -1;
        raw_rate[r] = a.rate;
        raw_s[r] = a.seconds;
        raw_bpm[r] = (double)a.bytes_on_disk / (double)n;
        if (want_gc) {
            gc_rate[r] = b.rate;
            gc_s[r] = b.seconds;
            gc_bpm[r] = (double)b.bytes_on_disk / (double)n;
            gc_p50[r] = (double)b.batch_p50;
        }
    }
    char extra[256];
    double raw_med = bench_median(raw_rate, ROUNDS);
    if (want_raw) {
        snprintf(extra, sizeof extra,
                 "\"messages\":%llu,\"value_bytes\":%d,\"per_txn\":1000,"
                 "\"bytes_per_msg\":%.1f,\"rounds\":%d",
                 (unsigned long long)n, PAYLOAD, bench_median(raw_bpm, ROUNDS), ROUNDS);
        bench_report(o, "journal", sync ? "raw-lmdb-sync" : "raw-lmdb-nosync",
                     BENCH_MSGS | BENCH_PEER, raw_med, bench_median(raw_s, ROUNDS), extra);
    }
    if (want_gc) {
        double gc_med = bench_median(gc_rate, ROUNDS);
        snprintf(extra, sizeof extra,
                 "\"messages\":%llu,\"payload_bytes\":%d,\"actors\":%llu,"
                 "\"raw_lmdb_%s\":%.0f,\"ratio_to_raw\":%.3f,\"batch_p50\":%.0f,"
                 "\"bytes_per_msg\":%.1f,\"disk_bytes_per_msg\":%.1f,\"rounds\":%d",
                 (unsigned long long)n, PAYLOAD, (unsigned long long)actors,
                 sync ? "sync" : "nosync", raw_med, gc_med / raw_med,
                 bench_median(gc_p50, ROUNDS), bench_median(gc_bpm, ROUNDS),
                 bench_median(gc_bpm, ROUNDS), ROUNDS);
        char name[48];
        const char *size = actors == 1000       ? "-keyed"
                           : actors == 100000   ? "-keyed-100k"
                           : actors == 1000000  ? "-keyed-1m"
                                                : "";
        snprintf(name, sizeof name, "group-commit%s-%s", size, sync ? "sync" : "nosync");
        bench_report(o, "journal", name, BENCH_MSGS, gc_med, bench_median(gc_s, ROUNDS), extra);
    }
    return 0;
}

static int run_pair(const bench_opts *o, bool sync, bool want_raw, bool want_gc)
{
    return run_pair_actors(o, sync, want_raw, want_gc, 1);
}

/* The journal alone (no kernel) with entries spread over many actors: how the
 * layout scales with them, activations aside. */
static int sc_gc_keyed(const bench_opts *o)
{
    return run_pair_actors(o, true, false, true, 1000) |
           run_pair_actors(o, false, false, true, 1000);
}

static int sc_gc_keyed_100k(const bench_opts *o)
{
    return run_pair_actors(o, true, false, true, 100000) |
           run_pair_actors(o, false, false, true, 100000);
}

static int sc_gc_keyed_1m(const bench_opts *o)
{
    return run_pair_actors(o, true, false, true, 1000000) |
           run_pair_actors(o, false, false, true, 1000000);
}

static int sc_raw_sync(const bench_opts *o) { return run_pair(o, true, true, false); }
static int sc_raw_nosync(const bench_opts *o) { return run_pair(o, false, true, false); }
static int sc_gc_sync(const bench_opts *o) { return run_pair(o, true, false, true); }
static int sc_gc_nosync(const bench_opts *o) { return run_pair(o, false, false, true); }
/* The default run pairs each durability once and prints both lines. */
static int sc_pair_sync(const bench_opts *o) { return run_pair(o, true, true, true); }
static int sc_pair_nosync(const bench_opts *o) { return run_pair(o, false, true, true); }

/* ---------------------------------------------------------------- recovery */

typedef struct replay {
    uint64_t n, bytes;
} replay;

static int replay_one(void *user, const hyi_journal_entry *e)
{
    replay *r = user;
    r->n++;
    r->bytes += e->payload_len + e->path_len;
    return 0;
}

static int sc_recovery(const bench_opts *o)
{
    uint64_t n = o->messages ? o->messages : 1000000;
    tmpdir t;
    if (tmp_make(&t))
        return -1;
    hyi_journal *j;
    int ret = -1;
    if (open_journal(&t, HYI_DUR_NOSYNC, &j)) {
        tmp_remove(&t);
        return -1;
    }
    enum { CHUNK = 10000 };
    hyi_journal_rec *recs = malloc(CHUNK * sizeof *recs);
    unsigned char payload[PAYLOAD];
    memset(payload, 0x5a, sizeof payload);
    for (int i = 0; i < CHUNK; i++)
        recs[i] = (hyi_journal_rec){.actor = 1, .path = "orders://item/42",
                                    .path_len = 16, .payload = payload,
                                    .payload_len = PAYLOAD};
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
        if (hyi_journal_append_many(j, recs, k, NULL)) {
            fprintf(stderr, "journal bench: fill: %s\n", hy_errdetail());
            goto out;
        }
        done += k;
        bench_progress("recovery: fill", done, n);
    }
    /* Reopen so the read starts from the file (page cache warm, as after a
     * process restart on the same machine). */
    hyi_journal_close(j);
    if (open_journal(&t, HYI_DUR_NOSYNC, &j)) {
        j = NULL;
        goto out;
    }
    double rates[ROUNDS], secs[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        replay rp = {0};
        uint64_t t0 = bench_now_ns();
        int rc = hyi_journal_read_from(j, 1, 1, replay_one, &rp, NULL);
        secs[r] = (double)(bench_now_ns() - t0) / 1e9;
        if (rc || rp.n != n) {
            fprintf(stderr, "journal bench: replay read %llu of %llu: %s\n",
                    (unsigned long long)rp.n, (unsigned long long)n, hy_errdetail());
            goto out;
        }
        rates[r] = (double)n / secs[r];
    }
    char extra[160];
    snprintf(extra, sizeof extra,
             "\"entries\":%llu,\"payload_bytes\":%d,\"bytes_per_msg\":%.1f,\"rounds\":%d",
             (unsigned long long)n, PAYLOAD,
             (double)data_file_bytes(t.env) / (double)n, ROUNDS);
    bench_report(o, "journal", "recovery", BENCH_MSGS, bench_median(rates, ROUNDS),
                 bench_median(secs, ROUNDS), extra);
    ret = 0;
out:
    free(recs);
    hyi_journal_close(j);
    tmp_remove(&t);
    return ret;
}

/* ---------------------------------------------------------------- snapshots */

static int sc_snapshot(const bench_opts *o)
{
    uint64_t n = o->messages ? o->messages : 20000;
    tmpdir t;
    if (tmp_make(&t))
        return -1;
    hyi_journal *j;
    if (open_journal(&t, HYI_DUR_NOSYNC, &j)) {
        tmp_remove(&t);
        return -1;
    }
    int ret = -1;
    uint64_t *save_ns = malloc(n * sizeof *save_ns), *load_ns = malloc(n * sizeof *load_ns);
    unsigned char state[1024];
    memset(state, 0x33, sizeof state);
    /* 64 actors, each with one entry for its snapshot to cover. */
    for (uint64_t a = 0; a < 64; a++) {
        hyi_journal_rec r = {.actor = a, .payload = "x", .payload_len = 1};
        if (hyi_journal_append(j, &r, NULL))
            goto out;
    }
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t s = bench_now_ns();
        if (hyi_snapshot_save(j, i % 64, 1, state, sizeof state)) {
            fprintf(stderr, "journal bench: snapshot save: %s\n", hy_errdetail());
            goto out;
        }
        save_ns[i] = bench_now_ns() - s;
    }
    double save_secs = (double)(bench_now_ns() - t0) / 1e9;
    t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq, s = bench_now_ns();
        void *st;
        size_t len;
        if (hyi_snapshot_load(j, i % 64, &seq, &st, &len) || len != sizeof state) {
            fprintf(stderr, "journal bench: snapshot load: %s\n", hy_errdetail());
            goto out;
        }
        load_ns[i] = bench_now_ns() - s;
        free(st);
    }
    double load_secs = (double)(bench_now_ns() - t0) / 1e9;
    char extra[160];
    snprintf(extra, sizeof extra,
             "\"state_bytes\":1024,\"ops\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu",
             (unsigned long long)n, (unsigned long long)bench_quantile(save_ns, n, 0.5),
             (unsigned long long)bench_quantile(save_ns, n, 0.99));
    bench_report(o, "journal", "snapshot-save-nosync", BENCH_OPS,
                 (double)n / save_secs, save_secs, extra);
    snprintf(extra, sizeof extra,
             "\"state_bytes\":1024,\"ops\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu",
             (unsigned long long)n, (unsigned long long)bench_quantile(load_ns, n, 0.5),
             (unsigned long long)bench_quantile(load_ns, n, 0.99));
    bench_report(o, "journal", "snapshot-load-nosync", BENCH_OPS,
                 (double)n / load_secs, load_secs, extra);
    ret = 0;
out:
    free(save_ns);
    free(load_ns);
    hyi_journal_close(j);
    tmp_remove(&t);
    return ret;
}

/* ---------------------------------------------------------------- retention */

/* Steady load with snapshots: 1000 actors, round-robin, one append_many of
 * 1000 entries (one per actor) per round, nosync; each actor snapshots every
 * 1000 of its entries (staggered: one actor per round), as the kernel does at
 * snapshot_every = 1000, with the default retention (covered entries are
 * reclaimed). The journal's file size is sampled every 1/10 of the run: it
 * must level off instead of growing with the messages. */
static int retention_run(const bench_opts *o, uint64_t n, const char *name)
{
    enum { ACTORS = 1000, EVERY = 1000 };
    tmpdir t;
    if (tmp_make(&t))
        return -1;
    hyi_journal *j;
    if (open_journal(&t, HYI_DUR_NOSYNC, &j)) {
        tmp_remove(&t);
        return -1;
    }
    int ret = -1;
    hyi_journal_rec recs[ACTORS];
    uint64_t seqs[ACTORS];
    unsigned char payload[PAYLOAD], state[64];
    memset(payload, 0x5a, sizeof payload);
    memset(state, 0x33, sizeof state);
    for (int a = 0; a < ACTORS; a++)
        recs[a] = (hyi_journal_rec){.actor = (uint64_t)a + 1, .path = "bench://acct/x",
                                    .path_len = 14, .payload = payload,
                                    .payload_len = PAYLOAD};
    uint64_t rounds = n / ACTORS, sample_every = rounds / 10 ? rounds / 10 : 1;
    uint64_t bytes_max = 0, entries_max = 0, bytes_at_10pct = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t r = 1; r <= rounds; r++) {
        if (hyi_journal_append_many(j, recs, ACTORS, seqs)) {
            fprintf(stderr, "journal bench: retention: append: %s\n", hy_errdetail());
            goto out;
        }
        uint64_t a = (EVERY - r % EVERY) % EVERY; /* (seq + a) % EVERY == 0 */
        if (a < ACTORS && seqs[a] >= EVERY &&
            hyi_snapshot_save(j, a + 1, seqs[a], state, sizeof state)) {
            fprintf(stderr, "journal bench: retention: snapshot: %s\n", hy_errdetail());
            goto out;
        }
        if (r % sample_every == 0) {
            hyi_journal_stats st;
            hyi_journal_get_stats(j, &st);
            uint64_t bytes = data_file_bytes(t.env);
            if (bytes > bytes_max)
                bytes_max = bytes;
            if (st.log_entries > entries_max)
                entries_max = st.log_entries;
            if (r == sample_every)
                bytes_at_10pct = bytes;
            bench_progress(name, r * ACTORS, n);
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    hyi_journal_stats st;
    hyi_journal_get_stats(j, &st);
    uint64_t bytes = data_file_bytes(t.env), msgs = rounds * ACTORS;
    char extra[512];
    snprintf(extra, sizeof extra,
             "\"messages\":%llu,\"payload_bytes\":%d,\"actors\":%d,\"snapshot_every\":%d,"
             "\"journal_bytes\":%llu,\"journal_bytes_max\":%llu,"
             "\"journal_bytes_at_10pct\":%llu,\"log_entries\":%llu,\"log_entries_max\":%llu,"
             "\"disk_bytes_per_msg\":%.2f,\"bytes_written\":%llu",
             (unsigned long long)msgs, PAYLOAD, ACTORS, EVERY, (unsigned long long)bytes,
             (unsigned long long)bytes_max, (unsigned long long)bytes_at_10pct,
             (unsigned long long)st.log_entries, (unsigned long long)entries_max,
             (double)bytes / (double)msgs, (unsigned long long)st.bytes);
    bench_report(o, "journal", name, BENCH_MSGS, (double)msgs / secs, secs, extra);
    ret = 0;
out:
    hyi_journal_close(j);
    tmp_remove(&t);
    return ret;
}

static int sc_retention(const bench_opts *o)
{
    return retention_run(o, o->messages ? o->messages : 3000000, "retention");
}

static int sc_retention_10m(const bench_opts *o)
{
    return retention_run(o, o->messages ? o->messages : 10000000, "retention-10m");
}

/* ---------------------------------------------------------------- kernel level */

static _Atomic uint64_t k_handled;

static int k_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    /* relaxed: read after hy_kernel_drain, which orders it */
    atomic_fetch_add_explicit(&k_handled, 1, memory_order_relaxed);
    return 0;
}

/* "bench://acct/<n>" into path (room for any u64): written by hand, since
 * snprintf cost the sending thread about 800 instructions a message, half as
 * much as the hy_send it feeds, and would be measured as the kernel's. */
static void acct_path(char *path, uint64_t n)
{
    static const char prefix[] = "bench://acct/";
    char digits[20];
    size_t len = 0;
    do
        digits[len++] = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    memcpy(path, prefix, sizeof prefix - 1);
    char *p = path + sizeof prefix - 1;
    while (len)
        *p++ = digits[--len];
    *p = '\0';
}

/* actors: 0 for the static actor, else the number of keyed actors the
 * messages go to, round-robin. journaled false: the same subsystem, not
 * persistent, in a kernel without a journal. */
static int kernel_round(const bench_opts *o, bool sync, bool journaled, uint64_t actors,
                        uint64_t n, result *res)
{
    bool keyed = actors > 0;
    tmpdir t;
    if (tmp_make(&t))
        return -1;
    hy_config cfg = {.workers = o->workers, .journal_path = journaled ? t.env : NULL,
                     .durability = sync ? HY_DURABILITY_SYNC : HY_DURABILITY_NOSYNC,
                     .journal_map_size = (size_t)1 << 30};
    hy_kernel *k = NULL;
    int ret = -1;
    static const hy_route routes[] = {
        {.pattern = "static", .handler = k_handler},
        {.pattern = "acct/{id}", .handler = k_handler, .key = "id"},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 2, .persistent = journaled};
    if (hy_kernel_open(&k, &cfg) || hy_subsystem_register(k, "bench", &def)) {
        fprintf(stderr, "journal bench: kernel: %s\n", hy_errdetail());
        goto out;
    }
    unsigned char payload[PAYLOAD];
    memset(payload, 0x5a, sizeof payload);
    atomic_store(&k_handled, 0);
    const char *label = keyed ? "persistent-keyed" : "persistent-static";
    hy_stats st;
    hy_kernel_stats(k, &st);
    uint64_t t0 = bench_now_ns(), cpu0 = hyi_clock_read_ns(CLOCK_THREAD_CPUTIME_ID),
             all0 = hyi_clock_read_ns(CLOCK_PROCESS_CPUTIME_ID), waits0 = thread_waits(),
             writer0 = st.journal_writer_cpu_ns;
    char path[40] = "bench://static";
    for (uint64_t i = 0; i < n; i++) {
        if (keyed)
            acct_path(path, i % actors);
        if (hy_send(k, path, payload, sizeof payload)) {
            fprintf(stderr, "journal bench: send: %s\n", hy_errdetail());
            goto out;
        }
        if ((i & 0xffff) == 0)
            bench_progress(label, i, n);
    }
    double sender_cpu = (double)(hyi_clock_read_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / (double)n;
    double sender_waits = (double)(thread_waits() - waits0) / (double)n;
    if (hy_kernel_drain(k, -1))
        goto out;
    double all_cpu = (double)(hyi_clock_read_ns(CLOCK_PROCESS_CPUTIME_ID) - all0) / (double)n;
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    bench_progress(label, n, n);
    hy_kernel_stats(k, &st);
    if (atomic_load(&k_handled) != n || st.journal_entries != (journaled ? n : 0)) {
        fprintf(stderr, "journal bench: %s: %llu handled, %llu journaled of %llu\n", label,
                (unsigned long long)atomic_load(&k_handled),
                (unsigned long long)st.journal_entries, (unsigned long long)n);
        goto out;
    }
    hy_kernel_close(k);
    k = NULL;
    *res = (result){.rate = (double)n / secs,
                    .seconds = secs,
                    .bytes_on_disk = data_file_bytes(t.env),
                    .batch_p50 = st.journal_batch_p50,
                    .sender_cpu_ns = sender_cpu,
                    .writer_cpu_ns = (double)(st.journal_writer_cpu_ns - writer0) / (double)n,
                    .cpu_ns = all_cpu,
                    .sender_waits = sender_waits};
    ret = 0;
out:
    hy_kernel_close(k);
    tmp_remove(&t);
    return ret;
}

/* Alternating rounds of raw LMDB and the kernel at one durability; medians.
 * Each keyed actor gets at least 2 messages, so the figure is about appends
 * more than about activations. */
static int run_kernel(const bench_opts *o, uint64_t actors, bool sync)
{
    uint64_t n = o->messages ? o->messages : sync ? 200000 : 500000;
    if (!o->messages && n < 2 * actors)
        n = 2 * actors;
    double raw_rate[ROUNDS], rate[ROUNDS], secs[ROUNDS], bpm[ROUNDS], p50[ROUNDS],
            sender_cpu[ROUNDS], writer_cpu[ROUNDS], all_cpu[ROUNDS], waits[ROUNDS],
            nojournal_rate[ROUNDS], nojournal_cpu[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        result a = {0}, b = {0}, c = {0};
        if (raw_round(sync, n, &a) || kernel_round(o, sync, true, actors, n, &b) ||
            (actors && kernel_round(o, sync, false, actors, n, &c)))
            return -1;
        nojournal_rate[r] = c.rate;
        nojournal_cpu[r] = c.cpu_ns;
        raw_rate[r] = a.rate;
        rate[r] = b.rate;
        secs[r] = b.seconds;
        bpm[r] = (double)b.bytes_on_disk / (double)n;
        p50[r] = (double)b.batch_p50;
        sender_cpu[r] = b.sender_cpu_ns;
        writer_cpu[r] = b.writer_cpu_ns;
        all_cpu[r] = b.cpu_ns;
        waits[r] = b.sender_waits;
    }
    double raw_med = bench_median(raw_rate, ROUNDS), med = bench_median(rate, ROUNDS);
    char extra[512], nojournal[96] = "", name[48];
    if (actors)
        snprintf(nojournal, sizeof nojournal, ",\"no_journal_msgs_per_s\":%.0f,"
                 "\"no_journal_cpu_ns_per_msg\":%.0f",
                 bench_median(nojournal_rate, ROUNDS), bench_median(nojournal_cpu, ROUNDS));
    snprintf(extra, sizeof extra,
             "\"messages\":%llu,\"payload_bytes\":%d,\"actors\":%llu,\"raw_lmdb_%s\":%.0f,"
             "\"ratio_to_raw\":%.3f,\"batch_p50\":%.0f,\"bytes_per_msg\":%.1f,"
             "\"disk_bytes_per_msg\":%.1f,\"sender_cpu_ns_per_msg\":%.0f,"
             "\"writer_cpu_ns_per_msg\":%.0f,"
             "\"cpu_ns_per_msg\":%.0f,\"sender_waits_per_msg\":%.4f%s,\"rounds\":%d",
             (unsigned long long)n, PAYLOAD, (unsigned long long)(actors ? actors : 1),
             sync ? "sync" : "nosync", raw_med, med / raw_med, bench_median(p50, ROUNDS),
             bench_median(bpm, ROUNDS), bench_median(bpm, ROUNDS),
             bench_median(sender_cpu, ROUNDS), bench_median(writer_cpu, ROUNDS),
             bench_median(all_cpu, ROUNDS),
             bench_median(waits, ROUNDS), nojournal, ROUNDS);
    const char *size = actors == 100000 ? "-100k" : actors == 1000000 ? "-1m" : "";
    snprintf(name, sizeof name, "persistent-%s%s-%s", actors ? "keyed" : "static", size,
             sync ? "sync" : "nosync");
    bench_report(o, "journal", name, BENCH_MSGS, med, bench_median(secs, ROUNDS), extra);
    return 0;
}

static int sc_static(const bench_opts *o)
{
    return run_kernel(o, 0, true) | run_kernel(o, 0, false);
}

static int sc_keyed(const bench_opts *o)
{
    return run_kernel(o, 1000, true) | run_kernel(o, 1000, false);
}

/* One durability alone, for profiling the kernel's glue without the fsync's
 * idle time in the same run. */
static int sc_keyed_nosync(const bench_opts *o) { return run_kernel(o, 1000, false); }

static int sc_keyed_100k(const bench_opts *o)
{
    return run_kernel(o, 100000, true) | run_kernel(o, 100000, false);
}

static int sc_keyed_1m(const bench_opts *o)
{
    return run_kernel(o, 1000000, true) | run_kernel(o, 1000000, false);
}

static int sc_keyed_100k_nosync(const bench_opts *o) { return run_kernel(o, 100000, false); }

static int sc_keyed_1m_nosync(const bench_opts *o) { return run_kernel(o, 1000000, false); }

/* ---------------------------------------------------------------- the family */

static const struct scenario {
    const char *name;
    int (*run)(const bench_opts *);
    bool by_default;
} scenarios[] = {
    {"raw-lmdb-sync", sc_raw_sync, false},
    {"raw-lmdb-nosync", sc_raw_nosync, false},
    {"group-commit-sync", sc_gc_sync, false},
    {"group-commit-nosync", sc_gc_nosync, false},
    {"sync", sc_pair_sync, true},     /* raw-lmdb-sync + group-commit-sync */
    {"nosync", sc_pair_nosync, true}, /* raw-lmdb-nosync + group-commit-nosync */
    {"recovery", sc_recovery, true},
    {"snapshot", sc_snapshot, true},
    {"static", sc_static, true}, /* persistent-static-sync and -nosync */
    {"keyed", sc_keyed, true},   /* persistent-keyed-sync and -nosync, 1000 actors */
    {"keyed-nosync", sc_keyed_nosync, false}, /* opt-in: persistent-keyed-nosync alone */
    {"keyed-100k", sc_keyed_100k, true},
    {"keyed-1m", sc_keyed_1m, false}, /* opt-in: about 100 s */
    {"keyed-100k-nosync", sc_keyed_100k_nosync, false}, /* opt-in: a nosync half alone */
    {"keyed-1m-nosync", sc_keyed_1m_nosync, false},
    {"retention", sc_retention, true},          /* 3 M messages */
    {"retention-10m", sc_retention_10m, false}, /* 10 M: opt-in, --scenario */
    {"group-commit-keyed", sc_gc_keyed, false},
    {"group-commit-keyed-100k", sc_gc_keyed_100k, false},
    {"group-commit-keyed-1m", sc_gc_keyed_1m, false},
};

static int bench_journal(const bench_opts *o)
{
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const struct scenario *s = &scenarios[i];
        if (o->scenario ? strcmp(o->scenario, s->name) != 0 : !s->by_default)
            continue;
        ran++;
        if (s->run(o) != 0) {
            fprintf(stderr, "journal bench: scenario %s failed\n", s->name);
            failed = 1;
        }
    }
    if (!ran) {
        fprintf(stderr, "journal bench: no scenario '%s'; have:", o->scenario);
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            fprintf(stderr, " %s", scenarios[i].name);
        fprintf(stderr, "\n");
        return 1;
    }
    return failed;
}

HY_BENCH_FAMILY(journal, bench_journal,
                "persist layer: raw LMDB vs group commit, recovery, snapshots")
