/* Benchmark family "actors": keyed actors' activation and passivation
 * (docs/ARCHITECTURE.md §5).
 *
 * Scenarios (all by default, or one with --scenario):
 *   activate      1,000,000 (--messages) keyed actors of a non-persistent,
 *                 stateless subsystem, one message each, sent from one thread:
 *                 activations/s (send through drain), the kernel's activation
 *                 latency p50/p99 (hyi_actor_new inside the sender's send, over
 *                 the last 1024), and bytes per active actor from RSS (its rise
 *                 less the message pool's) and from sizes (the actor struct
 *                 with its key, as the allocator rounds it, plus its share of
 *                 the table's slots)
 *   passivate     then all of them passivated by a short idle timeout: the
 *                 time from the first passivation to the last (it follows the
 *                 spread of the activations, as each waits out its timeout),
 *                 and RSS after against the kernel's baseline (before the
 *                 activations), as the allocator left it and after asking
 *                 jemalloc to purge (when linked); the message pool keeps the
 *                 slabs the activations' messages grew it by (pool_growth).
 *                 With jemalloc, what it says it holds for the program
 *                 (heap_allocated_*: live allocations) and for itself
 *                 (allocator_metadata_*), at the baseline and after the
 *                 purge, say which side holds what RSS did not give back;
 *                 actor_slabs_after is what the actors' slabs still hold.
 *                 RSS is read once the passivation thread says it is done
 *                 (settled: a sweep ended after the last passivation and
 *                 its limbo is empty; settle_ms: how long that took after
 *                 the last actor left the table; limbo_after: actors still
 *                 in it)
 *   reactivate    100,000 persistent actors (nosync journal) that were
 *                 passivated (one snapshot each) in an earlier kernel,
 *                 activated again by one message each in a new kernel, so each
 *                 activation reads its snapshot from LMDB: activations/s and
 *                 the p50/p99 of the sends that activated (the activation runs
 *                 inside the send), measured by the sender
 * Temporary journals live under /tmp and are removed. */
#include <ftw.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "blocks.h"
#include "kernel.h"

#define DEFAULT_ACTORS     1000000
#define REACTIVATE_ACTORS  100000
#define IDLE_MS            4000  /* activate: long enough not to start early */
#define CHUNK              20000 /* sends between drains, to bound the pool */

/* jemalloc's control call, when the bench is linked with it (not under SAN). */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int on_msg(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    return 0;
}

static const hy_route dev_routes[] = {{.pattern = "d/{id}", .handler = on_msg, .key = "id"}};

static hy_stats stats_of(hy_kernel *k)
{
    hy_stats s;
    hy_kernel_stats(k, &s);
    return s;
}

static bool wait_active_at_most(hy_kernel *k, uint64_t n, long timeout_ms)
{
    for (long t = 0; t < timeout_ms; t += 5) {
        if (stats_of(k).actors_active <= n)
            return true;
        sleep_ms(5);
    }
    return false;
}

/* Wait until passivation's memory is back: a whole sweep ended after no
 * actor was active (its frees, pool trim and cache flush done; the kick
 * starts one now rather than a period later) and no passivated actor waits
 * in the limbo for the workers' quiescence. */
static bool wait_passivation_settled(hy_kernel *k, long timeout_ms)
{
    uint64_t sweeps = hyi_janitor_sweeps(k);
    hyi_janitor_kick(k);
    for (long t = 0; t < timeout_ms; t++) {
        if (hyi_janitor_sweeps(k) > sweeps && hyi_janitor_limbo_count(k) == 0)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* Send one message to each of keys [0, n) of prefix, draining every CHUNK. */
static int send_keys(hy_kernel *k, const char *prefix, uint64_t n, const char *label,
                     uint64_t *lat_ns)
{
    char path[64];
    for (uint64_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s%llu", prefix, (unsigned long long)i);
        uint64_t t0 = lat_ns ? bench_now_ns() : 0;
        int rc = hy_send(k, path, "x", 1);
        if (lat_ns)
            lat_ns[i] = bench_now_ns() - t0;
        if (rc != 0) {
            fprintf(stderr, "actors bench: send %s: %s: %s\n", path, hy_err_name(rc),
                    hy_errdetail());
            return -1;
        }
        if ((i + 1) % CHUNK == 0) {
            hy_kernel_drain(k, -1);
            bench_progress(label, i + 1, n);
        }
    }
    return hy_kernel_drain(k, -1);
}

static void purge(void)
{
    if (mallctl)
        mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* MALLCTL_ARENAS_ALL */
    else
        malloc_trim(0);
}

/* A jemalloc statistic ("stats.allocated": bytes the program holds;
 * "stats.resident": pages jemalloc has resident, its metadata included),
 * refreshed; 0 without jemalloc. */
static uint64_t heap_stat(const char *name)
{
    if (!mallctl)
        return 0;
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
    size_t v = 0;
    len = sizeof v;
    return mallctl(name, &v, &len, NULL, 0) == 0 ? v : 0;
}

/* Bytes of the table's slot arrays. Only while nothing else uses the table. */
static uint64_t slot_bytes(hy_kernel *k)
{
    uint64_t b = 0;
    for (int i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        pthread_mutex_lock(&k->segments[i].lock);
        b += k->segments[i].cap * sizeof(hyi_actor_slot);
        pthread_mutex_unlock(&k->segments[i].lock);
    }
    return b;
}

/* ---------------------------------------------------------------- activate / passivate */

static int run_activate_passivate(const bench_opts *o, bool report_activate,
                                  bool report_passivate)
{
    uint64_t n = o->messages ? o->messages : DEFAULT_ACTORS;
    hy_config cfg = {.workers = o->workers, .idle_timeout_ms = IDLE_MS};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    hy_subsystem_def def = {.routes = dev_routes, .nroutes = 1,
                            .passivate = hy_passivate_discard};
    if (rc == 0)
        rc = hy_subsystem_register(k, "dev", &def);
    if (rc != 0) {
        fprintf(stderr, "actors bench: %s: %s\n", hy_err_name(rc), hy_errdetail());
        return -1;
    }
    /* Warm the pool and the route, then take the baseline. */
    if (send_keys(k, "dev://d/w", 1000, "warm-up", NULL) != 0)
        return -1;
    if (!wait_active_at_most(k, 0, 4 * IDLE_MS) || !wait_passivation_settled(k, 10000))
        return -1;
    purge();
    uint64_t rss0 = bench_rss_bytes(), pool0 = stats_of(k).pool_bytes_reserved;
    uint64_t heap0 = heap_stat("stats.allocated"), meta0 = heap_stat("stats.metadata");
    uint64_t slots0 = slot_bytes(k);

    uint64_t t0 = bench_now_ns();
    if (send_keys(k, "dev://d/", n, "activate", NULL) != 0)
        return -1;
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    hy_stats s = stats_of(k);
    uint64_t rss1 = bench_rss_bytes();
    uint64_t active = s.actors_active;
    uint64_t pool_delta = s.pool_bytes_reserved > pool0 ? s.pool_bytes_reserved - pool0 : 0;
    double rss_per = active ? ((double)rss1 - (double)rss0 - (double)pool_delta) / (double)active
                            : 0;
    /* Sizes: the struct with an average key (decimal, ~6 digits) and its NUL,
     * as malloc rounds it, plus the table slots each actor adds. */
    size_t key_avg = 6, raw = HYI_ACTOR_SIZE(key_avg, false);
    /* actors come from 64 KiB slabs of exactly that size (pool/blocks.h),
     * whose first 64 bytes are the slab's header */
    size_t usable = raw + (raw * 64 + 65535) / 65536;
    double slots_per = active ? (double)(slot_bytes(k) - slots0) / (double)active : 0;
    if (report_activate) {
        char extra[512];
        snprintf(extra, sizeof extra,
                 "\"actors\":%llu,\"active\":%llu,\"activation_p50_ns\":%llu,"
                 "\"activation_p99_ns\":%llu,\"bytes_per_actor_rss\":%.1f,"
                 "\"bytes_per_actor_sizeof\":%.1f,\"actor_struct\":%zu,\"actor_alloc\":%zu,"
                 "\"rss_baseline\":%llu,\"rss_bytes\":%llu,\"workers\":%u",
                 (unsigned long long)n, (unsigned long long)active,
                 (unsigned long long)s.activation_p50_ns, (unsigned long long)s.activation_p99_ns,
                 rss_per, (double)usable + slots_per, sizeof(hyi_actor), usable,
                 (unsigned long long)rss0, (unsigned long long)rss1, s.workers);
        bench_report(o, "actors", "activate", BENCH_OPS, (double)n / secs, secs, extra);
    }

    /* Passivate them all: no more messages, the idle timeout does it. The
     * clock runs from the first passivation seen to the last. */
    uint64_t before = s.passivations, first = 0;
    bool all = false;
    for (long t = 0; t < 60000 && !all; t++) {
        hy_stats p = stats_of(k);
        if (!first && p.passivations > before)
            first = bench_now_ns();
        all = p.actors_active == 0;
        if (!all)
            sleep_ms(1);
    }
    double psecs = first ? (double)(bench_now_ns() - first) / 1e9 : 0;
    uint64_t settle0 = bench_now_ns();
    bool settled = all && wait_passivation_settled(k, 10000);
    double settle_ms = (double)(bench_now_ns() - settle0) / 1e6;
    size_t limbo = hyi_janitor_limbo_count(k);
    uint64_t rss2 = bench_rss_bytes();
    purge();
    uint64_t rss3 = bench_rss_bytes();
    uint64_t heap3 = heap_stat("stats.allocated"), meta3 = heap_stat("stats.metadata");
    s = stats_of(k);
    if (report_passivate) {
        char extra[1024];
        snprintf(extra, sizeof extra,
                 "\"actors\":%llu,\"passivations\":%llu,\"all_passivated\":%s,"
                 "\"idle_timeout_ms\":%d,\"rss_baseline\":%llu,\"rss_active\":%llu,"
                 "\"rss_after\":%llu,\"rss_after_purge\":%llu,\"rss_after_vs_baseline\":%.3f,"
                 "\"rss_after_purge_vs_baseline\":%.3f,\"pool_growth\":%llu,"
                 "\"rss_after_purge_less_pool_vs_baseline\":%.3f,"
                 "\"heap_allocated_baseline\":%llu,\"heap_allocated_after_purge\":%llu,"
                 "\"allocator_metadata_baseline\":%llu,\"allocator_metadata_after_purge\":%llu,"
                 "\"actor_slabs_after\":%zu,\"pool_bytes_after\":%llu,"
                 "\"settled\":%s,\"settle_ms\":%.1f,\"limbo_after\":%zu",
                 (unsigned long long)n, (unsigned long long)s.passivations, all ? "true" : "false",
                 IDLE_MS, (unsigned long long)rss0, (unsigned long long)rss1,
                 (unsigned long long)rss2, (unsigned long long)rss3,
                 (double)rss2 / (double)rss0, (double)rss3 / (double)rss0,
                 (unsigned long long)pool_delta, ((double)rss3 - (double)pool_delta) / (double)rss0,
                 (unsigned long long)heap0, (unsigned long long)heap3, (unsigned long long)meta0,
                 (unsigned long long)meta3, hyi_blocks_reserved(),
                 (unsigned long long)s.pool_bytes_reserved, settled ? "true" : "false", settle_ms, limbo);
        bench_report(o, "actors", "passivate", BENCH_OPS, psecs > 0 ? (double)n / psecs : 0,
                     psecs, extra);
    }
    hy_kernel_close(k);
    return all && settled ? 0 : -1;
}

static int sc_activate(const bench_opts *o)
{
    return run_activate_passivate(o, true, true);
}

/* ---------------------------------------------------------------- reactivate */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int c_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(uint64_t));
    return *state ? 0 : -1;
}

static void c_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int c_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    *bytes = malloc(sizeof(uint64_t));
    if (!*bytes)
        return -1;
    memcpy(*bytes, state, sizeof(uint64_t));
    *len = sizeof(uint64_t);
    return 0;
}

static int c_load(void *udata, const char *key, size_t key_len, const void *bytes, size_t len,
                  void **state)
{
    (void)udata, (void)key, (void)key_len;
    if (len != sizeof(uint64_t) || !(*state = malloc(len)))
        return -1;
    memcpy(*state, bytes, len);
    return 0;
}

static int on_count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    uint64_t *c = hy_state(ctx);
    ++*c;
    return 0;
}

static const hy_route acct_routes[] = {{.pattern = "a/{id}", .handler = on_count, .key = "id"}};

static hy_kernel *open_persistent(const bench_opts *o, const char *env, uint32_t idle_ms)
{
    hy_config cfg = {.workers = o->workers, .journal_path = env,
                     .durability = HY_DURABILITY_NOSYNC, .journal_map_size = (size_t)1 << 30,
                     .idle_timeout_ms = idle_ms};
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    hy_subsystem_def def = {.routes = acct_routes, .nroutes = 1, .state_init = c_init,
                            .state_free = c_free, .persistent = 1, .state_save = c_save,
                            .state_load = c_load};
    if (rc == 0)
        rc = hy_subsystem_register(k, "acct", &def);
    if (rc != 0) {
        fprintf(stderr, "actors bench: %s: %s\n", hy_err_name(rc), hy_errdetail());
        if (k)
            hy_kernel_close(k);
        return NULL;
    }
    return k;
}

static int sc_reactivate(const bench_opts *o)
{
    uint64_t n = o->messages ? o->messages / 10 : REACTIVATE_ACTORS;
    char dir[] = "/tmp/hy-bench-actors-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char env[64];
    snprintf(env, sizeof env, "%s/env", dir);
    int ret = -1;
    uint64_t *lat = malloc(n * sizeof *lat);
    /* An earlier kernel: activate, then passivate all (a snapshot each). */
    hy_kernel *k = open_persistent(o, env, 200);
    if (!k || !lat)
        goto out;
    if (send_keys(k, "acct://a/", n, "prepare", NULL) != 0 ||
        !wait_active_at_most(k, 0, 60000)) {
        hy_kernel_close(k);
        goto out;
    }
    uint64_t snaps = stats_of(k).snapshots;
    hy_kernel_close(k);
    /* A new kernel: each first message restores its actor from LMDB. */
    k = open_persistent(o, env, 0);
    if (!k)
        goto out;
    uint64_t t0 = bench_now_ns();
    if (send_keys(k, "acct://a/", n, "reactivate", lat) != 0) {
        hy_kernel_close(k);
        goto out;
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    hy_stats s = stats_of(k);
    hy_kernel_close(k);
    uint64_t p50 = bench_quantile(lat, n, 0.50), p99 = bench_quantile(lat, n, 0.99);
    char extra[512];
    snprintf(extra, sizeof extra,
             "\"actors\":%llu,\"snapshots\":%llu,\"activations\":%llu,\"replayed\":%llu,"
             "\"p50_ns\":%llu,\"p99_ns\":%llu,\"activation_p50_ns\":%llu,"
             "\"activation_p99_ns\":%llu,\"durability\":\"nosync\"",
             (unsigned long long)n, (unsigned long long)snaps,
             (unsigned long long)s.activations, (unsigned long long)s.journal_replayed,
             (unsigned long long)p50, (unsigned long long)p99,
             (unsigned long long)s.activation_p50_ns, (unsigned long long)s.activation_p99_ns);
    bench_report(o, "actors", "reactivate-lmdb", BENCH_OPS, (double)n / secs, secs, extra);
    ret = s.activations == n ? 0 : -1;
out:
    free(lat);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return ret;
}

/* ---------------------------------------------------------------- the family */

static const struct scenario {
    const char *name;
    int (*run)(const bench_opts *);
} scenarios[] = {
    {"activate", sc_activate}, /* activate, then passivate */
    {"reactivate", sc_reactivate},
};

static int bench_actors(const bench_opts *o)
{
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const struct scenario *s = &scenarios[i];
        if (o->scenario && strcmp(o->scenario, s->name) != 0 &&
            !(strcmp(o->scenario, "passivate") == 0 && s->run == sc_activate))
            continue;
        ran++;
        if (s->run(o) != 0) {
            fprintf(stderr, "actors bench: scenario %s failed\n", s->name);
            failed = 1;
        }
    }
    if (!ran) {
        fprintf(stderr, "actors bench: no scenario '%s'; have: activate passivate reactivate\n",
                o->scenario);
        return 1;
    }
    return failed;
}

HY_BENCH_FAMILY(actors, bench_actors,
                "keyed actors: activation, passivation, reactivation from LMDB")
