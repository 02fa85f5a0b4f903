/* hypha-bench throughput: messages per second through the whole kernel.
 *
 * Every scenario times from the first send until hy_kernel_drain returns (every
 * message handled), checks its own counts (a lost, duplicated or reordered
 * message fails the run loudly), and samples send-to-handler latency on one
 * message in SAMPLE_EVERY: the sender stamps it, the handler records now - stamp
 * (in keyed, whichever of the many actors it went to).
 *
 *   static    one sender thread -> a static route; alternated STATIC_ROUNDS
 *             times with bare in the same run, the median round reported with
 *             "bare_msgs_per_s" and "fraction_of_bare" (static / bare);
 *             --alone: one round of static only
 *   bare      the physical floor under static: the same intrusive MPSC queue
 *             (base/mpscq.h) between two threads, no routing, no pool, no
 *             scheduler; the consumer waits as a hypha worker does (see
 *             bare_consume)
 *   count     the shape of the CAF and Erlang counting peers: a sender actor
 *             sends N messages to one counting actor in slices of COUNT_SLICE,
 *             sending itself the next slice's start in between; no thread
 *             outside the kernel sends
 *   static-scoped  the same, to a route that requires a scope, sent with
 *             hy_send_as by a principal that holds it
 *   param     one sender -> a {id} route (1000 distinct paths)
 *   regex     one sender -> a typed route {year:\d{4}}
 *   fanout    one sender -> 1000 subsystems in turn
 *   keyed     one sender -> 100,000 keyed actors; also bytes per actor
 *   batch     hy_send_batch of 64 -> a static route
 *   multi     one sender per worker -> one static route
 *   routes    one sender -> one static route of a subsystem holding --routes N
 *             static routes (default 1000): how the table's size costs a send
 *   pingpong  two actors bouncing one message; msgs_per_s is round trips/s
 *             (the table says "round trips/s")
 *   full-fail, full-block, full-drop-oldest, full-drop-newest
 *             one sender into a bounded mailbox kept full by a slow handler,
 *             under each overflow policy; msgs_per_s counts messages handled
 *   idle      CPU time an idle kernel uses in one second
 *   register  registering 100,000 subsystems of one route each; ops_per_s is
 *             registrations/s, and every one must route afterwards */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "clock.h"
#include "futex.h"
#include "hypha.h"
#include "mpscq.h"

#define SAMPLE_EVERY 1024
#define MAX_SAMPLES  (1u << 16)
#define MAX_SENDERS  64
#define FANOUT_SUBSYSTEMS 1000
#define KEYED_ACTORS 100000
#define PARAM_PATHS  1000
#define REGEX_PATHS  100
#define DEFAULT_ROUTES 1000
#define PROGRESS_EVERY 0xffff /* bench_progress is called when (i & this) == 0 */

/* The progress line's label: the scenario running, set by run_scenario. */
static char progress_label[64];

/* What every message carries: who sent it, its number, and a send time when
 * it is sampled (0 otherwise). */
typedef struct payload {
    uint32_t sender;
    uint32_t pad;
    uint64_t seq;
    uint64_t sent_ns;
} payload;

/* Shared by a scenario's handlers. Handlers of one actor run one at a time, so
 * the per-sender expectations need no lock; the keyed counts are one slot per
 * actor; a sample's slot is claimed with an atomic add, as keyed actors record
 * on several workers at once. The main thread reads all of it after
 * hy_kernel_drain. */
typedef struct run_state {
    uint64_t handled;
    uint64_t next_seq[MAX_SENDERS];
    uint64_t out_of_order;
    uint64_t *per_key;          /* keyed: messages seen per key */
    uint64_t samples[MAX_SAMPLES];
    _Atomic uint32_t nsamples;  /* claimed; may pass MAX_SAMPLES */
    /* pingpong */
    uint64_t round_trips;
    uint64_t round_trips_wanted;
    /* fanout: per-subsystem counts live here, indexed by the route's udata */
    uint64_t *per_subsystem;
    /* count: the messages wanted, the clock's two ends (stamped by the sender's
     * first slice and the counter's last message) and a failed send */
    uint64_t count_wanted;
    uint64_t count_t0, count_t1;
    int count_error;
} run_state;

static void record_latency(run_state *st, const payload *p)
{
    if (!p->sent_ns)
        return;
    /* relaxed: the slot is only read after hy_kernel_drain, which orders it */
    uint32_t i = atomic_fetch_add_explicit(&st->nsamples, 1, memory_order_relaxed);
    if (i < MAX_SAMPLES)
        st->samples[i] = bench_now_ns() - p->sent_ns;
}

/* One message of a sender that must arrive in order: counted, checked,
 * sampled. Shared by the handlers and the bare consumer, so both do the same
 * work per message. */
static void take_ordered(run_state *st, const payload *p)
{
    if (p->seq != st->next_seq[p->sender])
        st->out_of_order++;
    st->next_seq[p->sender] = p->seq + 1;
    st->handled++;
    record_latency(st, p);
}

static int on_ordered(hy_ctx *ctx, const hy_msg *msg)
{
    take_ordered(hy_subsystem_udata(ctx), hy_msg_payload(msg, NULL));
    return 0;
}

static int on_fanout(hy_ctx *ctx, const hy_msg *msg)
{
    run_state *st = hy_subsystem_udata(ctx);
    const payload *p = hy_msg_payload(msg, NULL);
    st->per_subsystem[(uintptr_t)hy_route_udata(ctx)]++;
    /* Subsystems run in parallel: only the first one records samples. */
    if ((uintptr_t)hy_route_udata(ctx) == 0)
        record_latency(st, p);
    return 0;
}

static int on_keyed(hy_ctx *ctx, const hy_msg *msg)
{
    run_state *st = hy_subsystem_udata(ctx);
    size_t len;
    const char *key = hy_param(ctx, "id", &len);
    uint64_t id = 0;
    for (size_t i = 0; i < len; i++)
        id = id * 10 + (uint64_t)(key[i] - '0');
    st->per_key[id]++;
    /* Every actor records its own samples: the sampled messages fall on
     * KEYED_ACTORS / 32 keys in turn (32 is all SAMPLE_EVERY and KEYED_ACTORS
     * share), not on one. */
    record_latency(st, hy_msg_payload(msg, NULL));
    return 0;
}

static int on_ping(hy_ctx *ctx, const hy_msg *msg)
{
    run_state *st = hy_subsystem_udata(ctx);
    (void)msg;
    if ((++st->round_trips & PROGRESS_EVERY) == 0)
        bench_progress(progress_label, st->round_trips, st->round_trips_wanted);
    if (st->round_trips < st->round_trips_wanted)
        return hy_send(hy_ctx_kernel(ctx), "pong://ball", NULL, 0);
    return 0;
}

static int on_pong(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return hy_send(hy_ctx_kernel(ctx), "ping://ball", NULL, 0);
}

/* ------------------------------------------------------------------ senders */

typedef struct sender {
    hy_kernel *k;
    uint32_t id;
    uint64_t count;
    const char *const *paths;   /* cycled through */
    size_t npaths;
    size_t batch;               /* 0: hy_send, else hy_send_batch of this size */
    int error;
    hy_principal *as;           /* NULL: plain hy_send; else hy_send_as */
} sender;

static int send_one(hy_kernel *k, hy_principal *as, const char *path, payload *p)
{
    for (;;) {
        int rc = as ? hy_send_as(k, as, path, p, sizeof *p) : hy_send(k, path, p, sizeof *p);
        if (rc != HY_ENOMEM)
            return rc;
        /* The pool is at its cap: the workers are behind. Let them catch up. */
        sched_yield();
    }
}

static void *sender_main(void *arg)
{
    sender *s = arg;
    payload p = {.sender = s->id};
    size_t pi = 0;
    for (uint64_t i = 0; i < s->count; i++) {
        p.seq = i;
        p.sent_ns = (i % SAMPLE_EVERY == 0) ? bench_now_ns() : 0;
        int rc = send_one(s->k, s->as, s->paths[pi], &p);
        if (rc != 0) {
            s->error = rc;
            return NULL;
        }
        if (++pi == s->npaths)
            pi = 0;
        if (s->id == 0 && (i & PROGRESS_EVERY) == 0)
            bench_progress(progress_label, i, s->count);
    }
    return NULL;
}

static void *batch_sender_main(void *arg)
{
    sender *s = arg;
    payload ps[256];
    hy_send_item items[256];
    uint64_t i = 0;
    while (i < s->count) {
        size_t n = s->batch;
        if (n > s->count - i)
            n = (size_t)(s->count - i);
        for (size_t j = 0; j < n; j++) {
            ps[j] = (payload){.sender = s->id, .seq = i + j,
                              .sent_ns = ((i + j) % SAMPLE_EVERY == 0) ? bench_now_ns() : 0};
            items[j] = (hy_send_item){s->paths[0], &ps[j], sizeof ps[j]};
        }
        size_t done = 0;
        while (done < n) {
            size_t accepted;
            int rc = hy_send_batch(s->k, items + done, n - done, &accepted);
            done += accepted;
            if (rc == HY_ENOMEM)
                sched_yield();
            else if (rc != 0) {
                s->error = rc;
                return NULL;
            }
        }
        i += n;
        if (s->id == 0 && (i & PROGRESS_EVERY) < n)
            bench_progress(progress_label, i, s->count);
    }
    return NULL;
}

/* ------------------------------------------------------------------ scenarios */

typedef struct scenario_result {
    uint64_t messages;
    double seconds;
    char extra[256];
} scenario_result;

/* pool_cap_bytes: 0 for none */
static hy_kernel *open_kernel_capped(const bench_opts *o, size_t pool_cap_bytes)
{
    hy_kernel *k;
    hy_config cfg = {.workers = o->workers, .pool_cap_bytes = pool_cap_bytes};
    int rc = hy_kernel_open(&k, &cfg);
    if (rc != 0) {
        fprintf(stderr, "hy_kernel_open: %s %s\n", hy_strerror(rc), hy_errdetail());
        return NULL;
    }
    return k;
}

static hy_kernel *open_kernel(const bench_opts *o)
{
    /* A cap keeps a sender that outruns the workers from filling memory. */
    return open_kernel_capped(o, (size_t)256 << 20);
}

static int register_scoped(hy_kernel *k, const char *name, const char *pattern,
                           hy_handler h, const char *key, void *sub_udata, void *route_udata,
                           const char *scope)
{
    hy_route r = {.pattern = pattern, .handler = h, .udata = route_udata, .key = key,
                  .scope = scope};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = sub_udata};
    int rc = hy_subsystem_register(k, name, &def);
    if (rc != 0)
        fprintf(stderr, "register %s: %s %s\n", name, hy_strerror(rc), hy_errdetail());
    return rc;
}

static int register_one(hy_kernel *k, const char *name, const char *pattern,
                        hy_handler h, const char *key, void *sub_udata, void *route_udata)
{
    return register_scoped(k, name, pattern, h, key, sub_udata, route_udata, NULL);
}

/* Run `nsenders` sender threads and time until everything is handled. */
static int run_senders(hy_kernel *k, sender *senders, unsigned nsenders, double *seconds)
{
    pthread_t th[MAX_SENDERS];
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < nsenders; i++)
        pthread_create(&th[i], NULL, senders[i].batch ? batch_sender_main : sender_main,
                       &senders[i]);
    for (unsigned i = 0; i < nsenders; i++)
        pthread_join(th[i], NULL);
    int rc = hy_kernel_drain(k, 120000);
    *seconds = (double)(bench_now_ns() - t0) / 1e9;
    for (unsigned i = 0; i < nsenders; i++)
        if (senders[i].error) {
            fprintf(stderr, "sender %u: %s %s\n", i, hy_strerror(senders[i].error),
                        hy_errdetail());
            return senders[i].error;
        }
    if (rc != 0)
        fprintf(stderr, "drain: %s\n", hy_strerror(rc));
    return rc;
}

static void latency_fields(run_state *st, char *buf, size_t len)
{
    uint32_t n = st->nsamples;
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    uint64_t p50 = bench_quantile(st->samples, n, 0.50);
    uint64_t p99 = bench_quantile(st->samples, n, 0.99);
    snprintf(buf, len, "\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64, p50, p99);
}

static int check(bool ok, const char *scenario, const char *what)
{
    if (!ok)
        fprintf(stderr, "throughput %s: WRONG RESULT: %s\n", scenario, what);
    return ok ? 0 : -1;
}

/* n paths, fmt formatted with first, first + 1, ...: one block, one free(). */
#define PATH_MAX_LEN 32
static const char **numbered_paths(size_t n, const char *fmt, int first)
{
    const char **paths = malloc(n * (sizeof *paths + PATH_MAX_LEN));
    if (!paths)
        return NULL;
    char *text = (char *)(paths + n);
    for (size_t i = 0; i < n; i++) {
        paths[i] = text + i * PATH_MAX_LEN;
        snprintf(text + i * PATH_MAX_LEN, PATH_MAX_LEN, fmt, first + (int)i);
    }
    return paths;
}

/* A sender cycling through len destinations sent n messages: each counter
 * holds base plus its share (the first n % len one more). */
static bool counts_even(const uint64_t *counts, size_t len, uint64_t n, uint64_t base)
{
    for (size_t i = 0; i < len; i++)
        if (counts[i] != base + n / len + (i < n % len))
            return false;
    return true;
}

/* static, param, regex, batch and multi: senders to one subsystem's actor.
 * scope: NULL, or the route requires it and the senders send as a principal
 * that holds it (static-scoped). */
static int ordered_scenario_as(const bench_opts *o, const char *name, const char *pattern,
                               const char *scope, const char *const *paths, size_t npaths,
                               unsigned nsenders, size_t batch, uint64_t total,
                               scenario_result *res)
{
    run_state *st = calloc(1, sizeof *st);
    hy_kernel *k = open_kernel(o);
    hy_principal *as = NULL;
    int rc = (st && k) ? 0 : -1;
    if (rc == 0)
        rc = register_scoped(k, "bench", pattern, on_ordered, NULL, st, NULL, scope);
    if (rc == 0 && scope)
        rc = hy_principal_create(k, "bench", &scope, 1, &as);
    sender senders[MAX_SENDERS];
    for (unsigned i = 0; i < nsenders; i++)
        senders[i] = (sender){k, i, total / nsenders, paths, npaths, batch, 0, as};
    if (rc == 0)
        rc = run_senders(k, senders, nsenders, &res->seconds);
    res->messages = total / nsenders * nsenders;
    if (rc == 0)
        rc = check(st->handled == res->messages, name, "handled count differs from sent");
    if (rc == 0)
        rc = check(st->out_of_order == 0, name, "a sender's messages arrived out of order");
    if (rc == 0)
        latency_fields(st, res->extra, sizeof res->extra);
    hy_kernel_close(k);
    hy_principal_destroy(as);
    free(st);
    return rc;
}

static int ordered_scenario(const bench_opts *o, const char *name, const char *pattern,
                            const char *const *paths, size_t npaths, unsigned nsenders,
                            size_t batch, uint64_t total, scenario_result *res)
{
    return ordered_scenario_as(o, name, pattern, NULL, paths, npaths, nsenders, batch, total,
                               res);
}

static int scenario_bare(const bench_opts *o, uint64_t n, scenario_result *res);

/* Rounds of static, each right after a round of bare, so the fraction compares
 * the two under the same machine state. */
#define STATIC_ROUNDS 3

static double rate_of(const scenario_result *r)
{
    return r->seconds > 0 ? (double)r->messages / r->seconds : 0;
}

/* The round whose rate is the median of the `rounds`. */
static const scenario_result *median_round(const scenario_result *r, int rounds)
{
    const scenario_result *m = &r[0];
    for (int i = 0; i < rounds; i++) {
        int below = 0, above = 0;
        for (int j = 0; j < rounds; j++) {
            below += j != i && rate_of(&r[j]) < rate_of(&r[i]);
            above += j != i && rate_of(&r[j]) > rate_of(&r[i]);
        }
        if (below <= rounds / 2 && above <= rounds / 2)
            m = &r[i];
    }
    return m;
}

static int scenario_static(const bench_opts *o, uint64_t n, scenario_result *res)
{
    static const char *const paths[] = {"bench://count"};
    if (o->alone)
        return ordered_scenario(o, "static", "count", paths, 1, 1, 0, n, res);
    scenario_result routed[STATIC_ROUNDS] = {{0}}, bare[STATIC_ROUNDS] = {{0}};
    int rc = 0;
    for (int r = 0; rc == 0 && r < STATIC_ROUNDS; r++) {
        rc = scenario_bare(o, n, &bare[r]);
        if (rc == 0)
            rc = ordered_scenario(o, "static", "count", paths, 1, 1, 0, n, &routed[r]);
    }
    if (rc != 0)
        return rc;
    *res = *median_round(routed, STATIC_ROUNDS);
    double bare_rate = rate_of(median_round(bare, STATIC_ROUNDS));
    size_t at = strlen(res->extra);
    snprintf(res->extra + at, sizeof res->extra - at,
             ",\"rounds\":%d,\"bare_msgs_per_s\":%.0f,\"fraction_of_bare\":%.3f", STATIC_ROUNDS,
             bare_rate, bare_rate > 0 ? rate_of(res) / bare_rate : 0);
    return 0;
}

/* static, to a route that requires a scope, sent as a principal holding it:
 * what the scope check and the principal's reference cost a send. */
static int scenario_static_scoped(const bench_opts *o, uint64_t n, scenario_result *res)
{
    static const char *const paths[] = {"bench://count"};
    return ordered_scenario_as(o, "static-scoped", "count", "bench:write", paths, 1, 1, 0, n,
                               res);
}

static int scenario_param(const bench_opts *o, uint64_t n, scenario_result *res)
{
    const char **paths = numbered_paths(PARAM_PATHS, "bench://item/%d", 0);
    int rc = paths ? ordered_scenario(o, "param", "item/{id}", paths, PARAM_PATHS, 1, 0, n, res)
                   : -1;
    free(paths);
    return rc;
}

static int scenario_regex(const bench_opts *o, uint64_t n, scenario_result *res)
{
    const char **paths = numbered_paths(REGEX_PATHS, "bench://year/%d", 1950);
    int rc = paths ? ordered_scenario(o, "regex", "year/{year:\\d{4}}", paths, REGEX_PATHS, 1,
                                      0, n, res)
                   : -1;
    free(paths);
    return rc;
}

static int scenario_batch(const bench_opts *o, uint64_t n, scenario_result *res)
{
    static const char *const paths[] = {"bench://count"};
    return ordered_scenario(o, "batch", "count", paths, 1, 1, 64, n, res);
}

/* routes: N static routes r/0 .. r/N-1, every one to the same handler; the
 * sender targets the middle one, so neither end of the table is favoured. */
static uint64_t route_count(const bench_opts *o)
{
    return o->routes ? o->routes : DEFAULT_ROUTES;
}

static int scenario_routes(const bench_opts *o, uint64_t n, scenario_result *res)
{
    size_t nroutes = (size_t)route_count(o);
    const char **patterns = numbered_paths(nroutes, "r/%d", 0);
    hy_route *routes = calloc(nroutes, sizeof *routes);
    run_state *st = calloc(1, sizeof *st);
    hy_kernel *k = (patterns && routes && st) ? open_kernel(o) : NULL;
    int rc = k ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nroutes; i++)
        routes[i] = (hy_route){.pattern = patterns[i], .handler = on_ordered};
    if (rc == 0) {
        hy_subsystem_def def = {.routes = routes, .nroutes = nroutes, .udata = st};
        rc = hy_subsystem_register(k, "bench", &def);
        if (rc != 0)
            fprintf(stderr, "register bench (%zu routes): %s %s\n", nroutes, hy_strerror(rc),
                    hy_errdetail());
    }
    char target[PATH_MAX_LEN];
    snprintf(target, sizeof target, "bench://r/%zu", nroutes / 2);
    const char *const paths[] = {target};
    sender s = {k, 0, n, paths, 1, 0, 0, NULL};
    if (rc == 0)
        rc = run_senders(k, &s, 1, &res->seconds);
    res->messages = n;
    if (rc == 0)
        rc = check(st->handled == n, "routes", "handled count differs from sent");
    if (rc == 0)
        rc = check(st->out_of_order == 0, "routes", "messages arrived out of order");
    if (rc == 0) {
        char lat[128];
        latency_fields(st, lat, sizeof lat);
        snprintf(res->extra, sizeof res->extra, "%s,\"routes\":%zu", lat, nroutes);
    }
    hy_kernel_close(k);
    free(st);
    free(routes);
    free(patterns);
    return rc;
}

static unsigned worker_count(const bench_opts *o)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned w = o->workers ? o->workers : (unsigned)(cpus > 0 ? cpus : 1);
    return w > MAX_SENDERS ? MAX_SENDERS : w;
}

static int scenario_multi(const bench_opts *o, uint64_t n, scenario_result *res)
{
    static const char *const paths[] = {"bench://count"};
    return ordered_scenario(o, "multi", "count", paths, 1, worker_count(o), 0, n, res);
}

static int scenario_fanout(const bench_opts *o, uint64_t n, scenario_result *res)
{
    run_state *st = calloc(1, sizeof *st);
    uint64_t *counts = calloc(FANOUT_SUBSYSTEMS, sizeof *counts);
    const char **paths = numbered_paths(FANOUT_SUBSYSTEMS, "fan%d://in", 0);
    hy_kernel *k = open_kernel(o);
    int rc = (st && counts && paths && k) ? 0 : -1;
    if (rc == 0)
        st->per_subsystem = counts;
    for (uintptr_t i = 0; rc == 0 && i < FANOUT_SUBSYSTEMS; i++) {
        char name[32];
        snprintf(name, sizeof name, "fan%u", (unsigned)i);
        rc = register_one(k, name, "in", on_fanout, NULL, st, (void *)i);
    }
    sender s = {k, 0, n, paths, FANOUT_SUBSYSTEMS, 0, 0, NULL};
    if (rc == 0)
        rc = run_senders(k, &s, 1, &res->seconds);
    res->messages = n;
    if (rc == 0)
        rc = check(counts_even(counts, FANOUT_SUBSYSTEMS, n, 0), "fanout",
                   "a subsystem's count differs from sent");
    if (rc == 0)
        latency_fields(st, res->extra, sizeof res->extra);
    hy_kernel_close(k);
    free(paths);
    free(counts);
    free(st);
    return rc;
}

static int scenario_keyed(const bench_opts *o, uint64_t n, scenario_result *res)
{
    run_state *st = calloc(1, sizeof *st);
    uint64_t *counts = calloc(KEYED_ACTORS, sizeof *counts);
    const char **paths = numbered_paths(KEYED_ACTORS, "keyed://item/%d", 0);
    int rc = (st && counts && paths) ? 0 : -1;
    uint64_t rss_before = bench_rss_bytes();
    hy_kernel *k = rc == 0 ? open_kernel(o) : NULL;
    if (!k)
        rc = -1;
    if (rc == 0) {
        st->per_key = counts;
        rc = register_one(k, "keyed", "item/{id}", on_keyed, "id", st, NULL);
    }
    /* Activate every actor once, untimed, to measure what they cost. */
    sender warm = {k, 0, KEYED_ACTORS, paths, KEYED_ACTORS, 0, 0, NULL};
    double warm_s;
    if (rc == 0)
        rc = run_senders(k, &warm, 1, &warm_s);
    uint64_t rss_after = bench_rss_bytes();
    hy_stats stats = {0};
    if (k)
        hy_kernel_stats(k, &stats);
    if (st)
        st->nsamples = 0;
    sender s = {k, 0, n, paths, KEYED_ACTORS, 0, 0, NULL};
    if (rc == 0)
        rc = run_senders(k, &s, 1, &res->seconds);
    res->messages = n;
    /* 1 each from the warm-up, then the timed run's share */
    if (rc == 0)
        rc = check(counts_even(counts, KEYED_ACTORS, n, 1), "keyed",
                   "a key's count differs from sent");
    if (rc == 0)
        rc = check(stats.actors == KEYED_ACTORS + 1, "keyed", "actor count is not one per key");
    if (rc == 0) {
        char lat[128];
        latency_fields(st, lat, sizeof lat);
        snprintf(res->extra, sizeof res->extra, "%s,\"actors\":%d,\"bytes_per_actor\":%.0f", lat,
                 KEYED_ACTORS,
                 (double)(rss_after > rss_before ? rss_after - rss_before : 0) / KEYED_ACTORS);
    }
    hy_kernel_close(k);
    free(paths);
    free(counts);
    free(st);
    return rc;
}

static int scenario_pingpong(const bench_opts *o, uint64_t n, scenario_result *res)
{
    run_state *st = calloc(1, sizeof *st);
    hy_kernel *k = open_kernel(o);
    int rc = (st && k) ? 0 : -1;
    if (rc == 0) {
        st->round_trips_wanted = n;
        rc = register_one(k, "ping", "ball", on_ping, NULL, st, NULL);
    }
    if (rc == 0)
        rc = register_one(k, "pong", "ball", on_pong, NULL, st, NULL);
    uint64_t t0 = bench_now_ns();
    if (rc == 0)
        rc = hy_send(k, "pong://ball", NULL, 0);
    if (rc == 0)
        rc = hy_kernel_drain(k, 120000);
    res->seconds = (double)(bench_now_ns() - t0) / 1e9;
    res->messages = n;
    if (rc == 0)
        rc = check(st->round_trips == n, "pingpong", "round trips differ from wanted");
    if (rc == 0)
        snprintf(res->extra, sizeof res->extra, "\"unit\":\"round_trips\",\"ns_per_round_trip\":%.0f",
                 res->seconds * 1e9 / (double)n);
    hy_kernel_close(k);
    free(st);
    return rc;
}

/* ------------------------------------------------------------------ count */

/* Messages a sender sends per turn before it re-queues itself: the CAF and
 * Erlang counting peers send in slices of the same size. */
#define COUNT_SLICE 1024

static int on_counted(hy_ctx *ctx, const hy_msg *msg)
{
    run_state *st = hy_subsystem_udata(ctx);
    take_ordered(st, hy_msg_payload(msg, NULL));
    if (st->handled == st->count_wanted)
        st->count_t1 = bench_now_ns();
    return 0;
}

/* One slice: the payload is the first message's number. The next slice goes
 * through this actor's own mailbox, behind whatever else is queued there, as
 * the peers' "next slice" message does. */
static int on_slice(hy_ctx *ctx, const hy_msg *msg)
{
    run_state *st = hy_subsystem_udata(ctx);
    hy_kernel *k = hy_ctx_kernel(ctx);
    uint64_t first;
    memcpy(&first, hy_msg_payload(msg, NULL), sizeof first);
    if (first == 0)
        st->count_t0 = bench_now_ns();
    uint64_t end = first + COUNT_SLICE < st->count_wanted ? first + COUNT_SLICE
                                                          : st->count_wanted;
    payload p = {0};
    int rc = 0;
    for (uint64_t i = first; rc == 0 && i < end; i++) {
        p.seq = i;
        p.sent_ns = (i % SAMPLE_EVERY == 0) ? bench_now_ns() : 0;
        rc = hy_send(k, "count://in", &p, sizeof p);
    }
    if ((first & PROGRESS_EVERY) == 0)
        bench_progress(progress_label, first, st->count_wanted);
    if (rc == 0 && end < st->count_wanted)
        rc = hy_send(k, "sender://slice", &end, sizeof end);
    if (rc != 0)
        st->count_error = rc;
    return rc;
}

static uint64_t max_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
}

/* The kernel has no pool cap here: a handler that meets HY_ENOMEM has no
 * thread of its own to wait on, and the peers' mailboxes are unbounded too.
 * max_rss_bytes says how far the counter fell behind (the process's peak, so
 * run it alone to read it). */
static int scenario_count(const bench_opts *o, uint64_t n, scenario_result *res)
{
    run_state *st = calloc(1, sizeof *st);
    hy_kernel *k = st ? open_kernel_capped(o, 0) : NULL;
    int rc = k ? 0 : -1;
    if (rc == 0) {
        st->count_wanted = n;
        rc = register_one(k, "count", "in", on_counted, NULL, st, NULL);
    }
    if (rc == 0)
        rc = register_one(k, "sender", "slice", on_slice, NULL, st, NULL);
    uint64_t first = 0;
    if (rc == 0)
        rc = hy_send(k, "sender://slice", &first, sizeof first);
    if (rc == 0)
        rc = hy_kernel_drain(k, 120000);
    res->messages = n;
    if (rc == 0)
        rc = check(st->count_error == 0, "count", "the sender actor's hy_send failed");
    if (rc == 0)
        rc = check(st->handled == n, "count", "handled count differs from sent");
    if (rc == 0)
        rc = check(st->out_of_order == 0, "count", "messages arrived out of order");
    if (rc == 0) {
        res->seconds = (double)(st->count_t1 - st->count_t0) / 1e9;
        char lat[128];
        latency_fields(st, lat, sizeof lat);
        snprintf(res->extra, sizeof res->extra, "%s,\"slice\":%d,\"max_rss_bytes\":%" PRIu64,
                 lat, COUNT_SLICE, max_rss_bytes());
    }
    hy_kernel_close(k);
    free(st);
    return rc;
}

/* ------------------------------------------------------------------ bare */

/* A message of bare: the queue's link and static's payload, nothing else. */
typedef struct bare_msg {
    hyi_mpsc_node node;
    payload p;
} bare_msg;

/* The messages are a ring the producer reuses once the consumer is past
 * them, in place of the pool: the producer waits when it is a whole ring
 * ahead, as static's sender waits at the pool's cap. */
#define BARE_RING (1u << 16)

/* How the consumer waits, copied from the worker loop so the floor is a fair
 * one: kernel/worker.c lingers 100 pause rounds on an emptied mailbox
 * (LINGER_SPINS), kernel/sched.c then spins 200 more (IDLE_SPINS), yields
 * once and parks on a futex event count, and a sender wakes it only when a
 * sleeper is counted. */
#define BARE_SPINS (100 + 200)

typedef struct bare_run {
    hyi_mpscq q;
    bare_msg *ring;
    uint64_t n;
    run_state *st;                      /* the consumer's counts and samples */
    uint64_t t1, parks;                 /* the consumer's, read after join */
    HY_CACHE_ALIGNED _Atomic uint64_t consumed; /* the consumer's progress */
    HY_CACHE_ALIGNED _Atomic uint32_t sleepers;
    _Atomic uint32_t wake_seq;
} bare_run;

/* The worker's park(): count ourselves, look once more, sleep. seq_cst on
 * the count and in is_empty pairs with the producer's seq_cst push and its
 * seq_cst read of sleepers: either it sees us or we see its message. */
static void bare_park(bare_run *b)
{
    /* acquire: a wake after this load changes wake_seq, so the wait returns */
    uint32_t seq = atomic_load_explicit(&b->wake_seq, memory_order_acquire);
    atomic_fetch_add_explicit(&b->sleepers, 1, memory_order_seq_cst);
    if (hyi_mpscq_is_empty(&b->q)) {
        b->parks++;
        hyi_futex_wait(&b->wake_seq, seq, NULL);
    }
    /* relaxed: a count only */
    atomic_fetch_sub_explicit(&b->sleepers, 1, memory_order_relaxed);
}

static void *bare_consume(void *arg)
{
    bare_run *b = arg;
    unsigned idle = 0;
    while (b->st->handled < b->n) {
        hyi_mpsc_node *node = hyi_mpscq_pop(&b->q);
        if (node) {
            idle = 0;
            take_ordered(b->st, &((bare_msg *)node)->p);
            /* release: the producer may rewrite this message once it sees it */
            atomic_store_explicit(&b->consumed, b->st->handled, memory_order_release);
            continue;
        }
        if (++idle < BARE_SPINS) {
            hyi_cpu_relax();
            continue;
        }
        if (idle == BARE_SPINS) {
            sched_yield();
            continue;
        }
        idle = 0;
        bare_park(b);
    }
    b->t1 = bench_now_ns();
    return NULL;
}

static void *bare_produce(void *arg)
{
    bare_run *b = arg;
    uint64_t limit = BARE_RING;
    for (uint64_t i = 0; i < b->n; i++) {
        while (i >= limit) {
            sched_yield();
            /* acquire: pairs with the consumer's release of `consumed` */
            limit = atomic_load_explicit(&b->consumed, memory_order_acquire) + BARE_RING;
        }
        bare_msg *m = &b->ring[i & (BARE_RING - 1)];
        m->p = (payload){.seq = i, .sent_ns = (i % SAMPLE_EVERY == 0) ? bench_now_ns() : 0};
        /* seq_cst read of sleepers after the seq_cst push: see bare_park */
        if (hyi_mpscq_push(&b->q, &m->node) &&
            atomic_load_explicit(&b->sleepers, memory_order_seq_cst)) {
            /* release: the woken consumer that reads the new value sees the push */
            atomic_fetch_add_explicit(&b->wake_seq, 1, memory_order_release);
            hyi_futex_wake(&b->wake_seq, 1);
        }
        if ((i & PROGRESS_EVERY) == 0)
            bench_progress(progress_label, i, b->n);
    }
    return NULL;
}

/* Timed as run_senders times static: the consumer is already waiting (as
 * the workers are), the clock runs from the producer's start to the last
 * message taken. */
static int scenario_bare(const bench_opts *o, uint64_t n, scenario_result *res)
{
    (void)o;
    bare_run *b = aligned_alloc(HY_CACHE_LINE, sizeof *b);
    run_state *st = calloc(1, sizeof *st);
    bare_msg *ring = calloc(BARE_RING, sizeof *ring);
    int rc = (b && st && ring) ? 0 : -1;
    pthread_t consumer, producer;
    if (rc == 0) {
        memset(b, 0, sizeof *b);
        hyi_mpscq_init(&b->q);
        b->ring = ring;
        b->n = n;
        b->st = st;
        rc = pthread_create(&consumer, NULL, bare_consume, b) == 0 ? 0 : -1;
    }
    if (rc == 0) {
        uint64_t t0 = bench_now_ns();
        if (pthread_create(&producer, NULL, bare_produce, b) == 0)
            pthread_join(producer, NULL);
        else
            bare_produce(b); /* no second thread: produce from this one */
        pthread_join(consumer, NULL);
        res->seconds = (double)(b->t1 - t0) / 1e9;
    }
    res->messages = n;
    if (rc == 0)
        rc = check(st->handled == n, "bare", "taken count differs from pushed");
    if (rc == 0)
        rc = check(st->out_of_order == 0, "bare", "messages came out of order");
    if (rc == 0) {
        char lat[128];
        latency_fields(st, lat, sizeof lat);
        snprintf(res->extra, sizeof res->extra, "%s,\"ring\":%u,\"parks\":%" PRIu64, lat,
                 BARE_RING, b->parks);
    }
    free(ring);
    free(st);
    free(b);
    return rc;
}

/* full-*: one sender against a handler several times slower, into a mailbox
 * of FULL_CAPACITY, so the mailbox is full nearly all the time and the policy
 * decides every send. msgs_per_s counts messages handled; the extra fields say
 * what happened to every attempt, and the counts must add up. */
#define FULL_CAPACITY 1024
#define FULL_HANDLER_ROUNDS 256

static int on_slow(hy_ctx *ctx, const hy_msg *msg)
{
    run_state *st = hy_subsystem_udata(ctx);
    const payload *p = hy_msg_payload(msg, NULL);
    /* Dropped messages leave gaps; what arrives must still be in send order. */
    if (p->seq < st->next_seq[0])
        st->out_of_order++;
    st->next_seq[0] = p->seq + 1;
    st->handled++;
    record_latency(st, p);
    volatile uint64_t h = p->seq;
    for (int i = 0; i < FULL_HANDLER_ROUNDS; i++)
        h = h * 0x9E3779B97F4A7C15ull + (uint64_t)i;
    return 0;
}

static int full_scenario(const bench_opts *o, const char *name, hy_overflow policy,
                         uint64_t n, scenario_result *res)
{
    run_state *st = calloc(1, sizeof *st);
    hy_kernel *k = open_kernel(o);
    int rc = (st && k) ? 0 : -1;
    if (rc == 0) {
        hy_route r = {.pattern = "in", .handler = on_slow};
        hy_subsystem_def def = {.routes = &r,
                                .nroutes = 1,
                                .udata = st,
                                .mailbox_capacity = FULL_CAPACITY,
                                .overflow = policy,
                                .block_timeout_ms = 60000};
        rc = hy_subsystem_register(k, "full", &def);
        if (rc != 0)
            fprintf(stderr, "register full: %s %s\n", hy_strerror(rc), hy_errdetail());
    }
    uint64_t accepted = 0, rejected = 0;
    uint64_t t0 = bench_now_ns();
    payload p = {0};
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        p.seq = i;
        p.sent_ns = (i % SAMPLE_EVERY == 0) ? bench_now_ns() : 0;
        int src;
        while ((src = hy_send(k, "full://in", &p, sizeof p)) == HY_ENOMEM)
            sched_yield(); /* the pool is at its cap: let the worker catch up */
        if (src == 0)
            accepted++;
        else if (src == HY_EFULL)
            rejected++;
        else {
            fprintf(stderr, "%s: hy_send: %s %s\n", name, hy_strerror(src), hy_errdetail());
            rc = -1;
        }
        if ((i & PROGRESS_EVERY) == 0)
            bench_progress(progress_label, i, n);
    }
    double send_seconds = (double)(bench_now_ns() - t0) / 1e9;
    if (rc == 0)
        rc = hy_kernel_drain(k, 120000);
    res->seconds = (double)(bench_now_ns() - t0) / 1e9;
    res->messages = st ? st->handled : 0;
    hy_stats stats = {0};
    if (rc == 0)
        rc = hy_kernel_stats(k, &stats);
    uint64_t dropped = stats.dead[HY_DEAD_DROPPED];
    if (rc == 0)
        rc = check(accepted + rejected == n, name, "an attempt is neither accepted nor refused");
    if (rc == 0)
        rc = check(st->handled + dropped == accepted,
                   name, "accepted messages are neither handled nor dropped");
    if (rc == 0)
        rc = check(stats.dead[HY_DEAD_FULL] == rejected, name,
                   "refused sends and full-mailbox dead letters differ");
    if (rc == 0)
        rc = check(st->out_of_order == 0, name, "messages arrived out of order");
    if (rc == 0)
        rc = check(policy != HY_OVERFLOW_BLOCK || st->handled == n, name,
                   "a blocking sender lost a message");
    if (rc == 0) {
        char lat[128];
        latency_fields(st, lat, sizeof lat);
        snprintf(res->extra, sizeof res->extra,
                 "%s,\"capacity\":%d,\"attempts\":%" PRIu64 ",\"attempts_per_s\":%.0f,"
                 "\"accepted\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"dropped\":%" PRIu64,
                 lat, FULL_CAPACITY, n, (double)n / send_seconds, accepted, rejected, dropped);
    }
    hy_kernel_close(k);
    free(st);
    return rc;
}

static int scenario_full_fail(const bench_opts *o, uint64_t n, scenario_result *res)
{
    return full_scenario(o, "full-fail", HY_OVERFLOW_FAIL, n, res);
}

static int scenario_full_block(const bench_opts *o, uint64_t n, scenario_result *res)
{
    return full_scenario(o, "full-block", HY_OVERFLOW_BLOCK, n, res);
}

static int scenario_full_drop_oldest(const bench_opts *o, uint64_t n, scenario_result *res)
{
    return full_scenario(o, "full-drop-oldest", HY_OVERFLOW_DROP_OLDEST, n, res);
}

static int scenario_full_drop_newest(const bench_opts *o, uint64_t n, scenario_result *res)
{
    return full_scenario(o, "full-drop-newest", HY_OVERFLOW_DROP_NEWEST, n, res);
}

static int scenario_idle(const bench_opts *o, uint64_t n, scenario_result *res)
{
    (void)n;
    hy_kernel *k = open_kernel(o);
    if (!k)
        return -1;
    run_state *st = calloc(1, sizeof *st);
    int rc = st ? register_one(k, "bench", "count", on_ordered, NULL, st, NULL) : -1;
    /* Wake the workers once, then leave the kernel alone for a second. */
    payload p = {0};
    if (rc == 0)
        rc = hy_send(k, "bench://count", &p, sizeof p);
    if (rc == 0)
        rc = hy_kernel_drain(k, 10000);
    struct timespec settle = {0, 50 * 1000000};
    nanosleep(&settle, NULL);
    uint64_t cpu0 = bench_cpu_ns(), t0 = bench_now_ns();
    struct timespec one_second = {1, 0};
    nanosleep(&one_second, NULL);
    uint64_t cpu = bench_cpu_ns() - cpu0;
    res->seconds = (double)(bench_now_ns() - t0) / 1e9;
    res->messages = 0;
    snprintf(res->extra, sizeof res->extra,
             "\"cpu_seconds\":%.6f,\"cpu_percent_of_one_core\":%.3f", (double)cpu / 1e9,
             (double)cpu / 1e9 / res->seconds * 100.0);
    hy_kernel_close(k);
    free(st);
    return rc;
}

/* register: n subsystems of one static route each ("r0" .. "r<n-1>", all to
 * one handler), timed from the first registration to the last; then every one
 * must route (hy_match), outside the timing. Measures the registry, not
 * messaging: a registration that is linear in the subsystems already there
 * makes this quadratic. */
static int scenario_register(const bench_opts *o, uint64_t n, scenario_result *res)
{
    hy_kernel *k = open_kernel(o);
    if (!k)
        return -1;
    hy_route r = {.pattern = "count", .handler = on_ordered};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    char name[32];
    int rc = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        snprintf(name, sizeof name, "r%" PRIu64, i);
        rc = hy_subsystem_register(k, name, &def);
        if (rc != 0)
            fprintf(stderr, "register %s: %s %s\n", name, hy_strerror(rc), hy_errdetail());
    }
    res->seconds = (double)(bench_now_ns() - t0) / 1e9;
    res->messages = n;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        char path[48];
        hy_match_result m;
        snprintf(path, sizeof path, "r%" PRIu64 "://count", i);
        rc = check(hy_match(k, path, &m) == 0, "register", "a registered subsystem does not route");
    }
    if (rc == 0)
        snprintf(res->extra, sizeof res->extra, "\"subsystems\":%" PRIu64, n);
    hy_kernel_close(k);
    return rc;
}

typedef struct scenario {
    const char *name;
    int (*run)(const bench_opts *, uint64_t, scenario_result *);
    uint64_t default_messages;
    unsigned unit; /* a bench_unit, or'ed with BENCH_PEER for a baseline */
} scenario;

static const scenario scenarios[] = {
    {"static", scenario_static, 10000000, BENCH_MSGS},
    {"bare", scenario_bare, 10000000, BENCH_MSGS | BENCH_PEER},
    {"count", scenario_count, 10000000, BENCH_MSGS},
    {"static-scoped", scenario_static_scoped, 10000000, BENCH_MSGS},
    {"param", scenario_param, 5000000, BENCH_MSGS},
    {"regex", scenario_regex, 5000000, BENCH_MSGS},
    {"fanout", scenario_fanout, 5000000, BENCH_MSGS},
    {"keyed", scenario_keyed, 2000000, BENCH_MSGS},
    {"batch", scenario_batch, 10000000, BENCH_MSGS},
    {"multi", scenario_multi, 10000000, BENCH_MSGS},
    {"routes", scenario_routes, 10000000, BENCH_MSGS},
    {"pingpong", scenario_pingpong, 1000000, BENCH_ROUND_TRIPS},
    {"full-fail", scenario_full_fail, 1000000, BENCH_MSGS},
    {"full-block", scenario_full_block, 1000000, BENCH_MSGS},
    {"full-drop-oldest", scenario_full_drop_oldest, 1000000, BENCH_MSGS},
    {"full-drop-newest", scenario_full_drop_newest, 1000000, BENCH_MSGS},
    {"idle", scenario_idle, 0, BENCH_MSGS},
    {"register", scenario_register, 100000, BENCH_OPS},
};

#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

static int run_scenario(const bench_opts *o, const scenario *sc)
{
    scenario_result res = {0};
    if (o->scenario)
        snprintf(progress_label, sizeof progress_label, "throughput %s", sc->name);
    else
        snprintf(progress_label, sizeof progress_label, "throughput %s (%d/%d)", sc->name,
                 (int)(sc - scenarios) + 1, (int)NSCENARIOS);
    uint64_t n = o->messages ? o->messages : sc->default_messages;
    int rc = sc->run(o, n, &res);
    if (rc != 0) {
        fprintf(stderr, "throughput %s: failed\n", sc->name);
        return rc;
    }
    char extra[384];
    snprintf(extra, sizeof extra, "\"workers\":%u,\"messages\":%" PRIu64 "%s%s",
             worker_count(o), res.messages, res.extra[0] ? "," : "", res.extra);
    double rate = res.seconds > 0 ? (double)res.messages / res.seconds : 0;
    bench_report(o, "throughput", sc->name, sc->unit, rate, res.seconds, extra);
    return 0;
}

static int bench_throughput(const bench_opts *o)
{
    int failures = 0;
    bool found = false;
    for (size_t i = 0; i < NSCENARIOS; i++) {
        if (o->scenario && strcmp(o->scenario, scenarios[i].name) != 0)
            continue;
        found = true;
        failures += run_scenario(o, &scenarios[i]) != 0;
    }
    if (!found) {
        fprintf(stderr, "throughput: no scenario '%s'\n", o->scenario);
        return 2;
    }
    return failures ? 1 : 0;
}

HY_BENCH_FAMILY(throughput, bench_throughput,
                "messages/s through the kernel: static bare count param regex fanout keyed batch multi routes pingpong "
                "full-{fail,block,drop-oldest,drop-newest} idle register")
