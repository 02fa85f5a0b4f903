/* hypha-bench timers: the timer wheel (subsystems/timer.c) against libuv's
 * timers, alternating in the same run so both see the same machine state.
 *
 *   schedule-cancel-1m   with 1 M timers pending (far deadlines), N times:
 *                        hy_send_after then hy_timer_cancel of that timer;
 *                        libuv: uv_timer_start then uv_timer_stop, on one
 *                        loop thread (this one), 1 M handles started first
 *   schedule-fire-1m     with 1 M pending, N timers due at once, timed until
 *                        the last has fired (hypha: handled by its actor;
 *                        libuv: its callback ran, uv_run(UV_RUN_NOWAIT) loops)
 *   lateness-100k        hypha only: 100,000 timers a second for a second,
 *                        each 10 ms out; lateness = firing minus deadline,
 *                        seen by the timer thread (hy_timer_stats, its last
 *                        4096) and by the handler (p50_ns, p99_ns)
 *
 * ROUNDS rounds (3; --messages sets N, default 1,000,000), one JSON line per
 * contender and round, then "median-*" lines and "ratio-*-vs-libuv" lines
 * (hypha / libuv of the medians). Results are checked (every timer fired
 * once, every cancel said 1); speed is reported, never asserted. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"
#include "hypha.h"

#define PENDING 1000000u
#define ROUNDS 3
#define FAR_MS (3600 * 1000)

static _Atomic uint64_t handled;

static int on_count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    return 0;
}

static hy_kernel *open_bench_kernel(unsigned workers)
{
    hy_config cfg = {.workers = workers};
    hy_kernel *k;
    if (hy_kernel_open(&k, &cfg) != 0)
        return NULL;
    hy_route r = {.pattern = "t", .handler = on_count};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    if (hy_subsystem_register(k, "bench", &def) != 0) {
        hy_kernel_close(k);
        return NULL;
    }
    return k;
}

/* 1 M timers far out. */
static int fill_hypha(hy_kernel *k)
{
    for (uint64_t i = 0; i < PENDING; i++)
        if (hy_send_after(k, "bench://t", &i, sizeof i, FAR_MS + (int64_t)(i % 100000), NULL))
            return -1;
    return 0;
}

/* ------------------------------------------------------------ hypha */

static double hypha_schedule_cancel(unsigned workers, uint64_t n)
{
    hy_kernel *k = open_bench_kernel(workers);
    if (!k || fill_hypha(k))
        return -1;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t id;
        if (hy_send_after(k, "bench://t", &i, sizeof i, 1000 + (int64_t)(i & 1023), &id) != 0 ||
            hy_timer_cancel(k, id) != 1) {
            hy_kernel_close(k);
            return -1;
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    hy_kernel_close(k);
    return secs;
}

static double hypha_schedule_fire(unsigned workers, uint64_t n)
{
    hy_kernel *k = open_bench_kernel(workers);
    if (!k || fill_hypha(k))
        return -1;
    atomic_store(&handled, 0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (hy_send_after(k, "bench://t", &i, sizeof i, 0, NULL) != 0) {
            hy_kernel_close(k);
            return -1;
        }
    uint64_t deadline = t0 + 60ull * 1000000000u;
    while (atomic_load_explicit(&handled, memory_order_relaxed) < n &&
           bench_now_ns() < deadline)
        usleep(100);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    bool ok = atomic_load(&handled) == n;
    hy_kernel_drain(k, 10000);
    ok = ok && atomic_load(&handled) == n;
    hy_kernel_close(k);
    return ok ? secs : -1;
}

/* ------------------------------------------------------------ libuv */

static uint64_t uv_fired;

static void uv_noop(uv_timer_t *h)
{
    (void)h;
}

static void uv_count(uv_timer_t *h)
{
    (void)h;
    uv_fired++;
}

typedef struct uvb {
    uv_loop_t loop;
    uv_timer_t *pending;
    uv_timer_t *extra;
} uvb;

static int uv_setup(uvb *b, uint64_t nextra)
{
    if (uv_loop_init(&b->loop))
        return -1;
    b->pending = malloc(PENDING * sizeof *b->pending);
    b->extra = malloc(nextra * sizeof *b->extra);
    if (!b->pending || !b->extra)
        return -1;
    for (uint64_t i = 0; i < PENDING; i++) {
        uv_timer_init(&b->loop, &b->pending[i]);
        uv_timer_start(&b->pending[i], uv_noop, FAR_MS + (i % 100000), 0);
    }
    for (uint64_t i = 0; i < nextra; i++)
        uv_timer_init(&b->loop, &b->extra[i]);
    return 0;
}

static void on_uv_closed(uv_handle_t *h)
{
    (void)h;
}

static void uv_teardown(uvb *b, uint64_t nextra)
{
    for (uint64_t i = 0; i < PENDING; i++)
        uv_close((uv_handle_t *)&b->pending[i], on_uv_closed);
    for (uint64_t i = 0; i < nextra; i++)
        uv_close((uv_handle_t *)&b->extra[i], on_uv_closed);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
    free(b->pending);
    free(b->extra);
}

#define UV_HANDLES 1024

static double uv_schedule_cancel(uint64_t n)
{
    uvb b;
    if (uv_setup(&b, UV_HANDLES))
        return -1;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uv_timer_t *h = &b.extra[i & (UV_HANDLES - 1)];
        uv_timer_start(h, uv_noop, 1000 + (i & 1023), 0);
        uv_timer_stop(h);
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    uv_teardown(&b, UV_HANDLES);
    return secs;
}

static double uv_schedule_fire(uint64_t n)
{
    uvb b;
    if (uv_setup(&b, n))
        return -1;
    uv_fired = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        uv_timer_start(&b.extra[i], uv_count, 0, 0);
    while (uv_fired < n)
        uv_run(&b.loop, UV_RUN_NOWAIT); /* never blocks on the far timers */
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    uv_teardown(&b, n);
    return uv_fired == n ? secs : -1;
}

/* ------------------------------------------------------------ lateness */

#define LAT_RATE 100000u
#define LAT_DELAY_MS 10

typedef struct lat_payload {
    uint64_t deadline_ns;
} lat_payload;

static uint64_t *lat_samples;
static _Atomic uint64_t lat_n;

static int on_lateness(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    lat_payload p;
    memcpy(&p, hy_msg_payload(msg, NULL), sizeof p);
    uint64_t now = bench_now_ns();
    uint64_t i = atomic_load_explicit(&lat_n, memory_order_relaxed);
    lat_samples[i] = now > p.deadline_ns ? now - p.deadline_ns : 0;
    atomic_store_explicit(&lat_n, i + 1, memory_order_relaxed);
    return 0;
}

static int run_lateness(const bench_opts *opts, unsigned workers)
{
    hy_config cfg = {.workers = workers};
    hy_kernel *k;
    if (hy_kernel_open(&k, &cfg) != 0)
        return 1;
    hy_route r = {.pattern = "t", .handler = on_lateness};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    if (hy_subsystem_register(k, "lat", &def) != 0)
        return 1;
    uint64_t n = LAT_RATE; /* one second */
    lat_samples = calloc(n, sizeof *lat_samples);
    atomic_store(&lat_n, 0);
    uint64_t t0 = bench_now_ns();
    /* 100 every 1 ms, paced against the clock */
    for (uint64_t i = 0; i < n; i++) {
        if (i % 100 == 0) {
            uint64_t due = t0 + (i / 100) * 1000000u;
            while (bench_now_ns() < due)
                usleep(50);
        }
        lat_payload p = {bench_now_ns() + LAT_DELAY_MS * 1000000ull};
        if (hy_send_after(k, "lat://t", &p, sizeof p, LAT_DELAY_MS, NULL) != 0)
            return 1;
    }
    double sched_secs = (double)(bench_now_ns() - t0) / 1e9;
    uint64_t deadline = bench_now_ns() + 30ull * 1000000000u;
    while (atomic_load(&lat_n) < n && bench_now_ns() < deadline)
        usleep(1000);
    hy_kernel_drain(k, 10000);
    hy_timer_stats ts;
    hy_timer_stats_get(k, &ts);
    bool ok = atomic_load(&lat_n) == n && ts.fired == n;
    uint64_t p50 = bench_quantile(lat_samples, n, 0.5), p99 = bench_quantile(lat_samples, n, 0.99);
    char extra[256];
    snprintf(extra, sizeof extra,
             "\"timers\":%llu,\"delay_ms\":%d,\"p50_ns\":%llu,\"p99_ns\":%llu,"
             "\"timer_p50_ns\":%llu,\"timer_p99_ns\":%llu,\"late\":%llu,\"workers\":%u",
             (unsigned long long)n, LAT_DELAY_MS, (unsigned long long)p50,
             (unsigned long long)p99, (unsigned long long)ts.lateness_p50_ns,
             (unsigned long long)ts.lateness_p99_ns, (unsigned long long)ts.late, workers);
    bench_report(opts, "timers", "lateness-100k", BENCH_OPS, (double)n / sched_secs,
                 sched_secs, extra);
    hy_kernel_close(k);
    free(lat_samples);
    if (!ok)
        fprintf(stderr, "timers: lateness: %llu of %llu fired\n",
                (unsigned long long)atomic_load(&lat_n), (unsigned long long)n);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------ driver */

static void report_rate(const bench_opts *opts, const char *scenario, uint64_t n, double secs,
                        int round)
{
    char extra[128];
    snprintf(extra, sizeof extra, "\"pending\":%u,\"ops\":%llu,\"round\":%d", PENDING,
             (unsigned long long)n, round);
    bench_report(opts, "timers", scenario, BENCH_OPS, (double)n / secs, secs, extra);
}

static int pair(const bench_opts *opts, const char *name, unsigned workers, uint64_t n,
                double (*hy_fn)(unsigned, uint64_t), double (*uv_fn)(uint64_t))
{
    double hy_rate[ROUNDS], uv_rate[ROUNDS];
    char uv_name[64];
    snprintf(uv_name, sizeof uv_name, "libuv-%s", name);
    for (int r = 0; r < ROUNDS; r++) {
        double s = hy_fn(workers, n);
        if (s <= 0) {
            fprintf(stderr, "timers: %s failed\n", name);
            return 1;
        }
        report_rate(opts, name, n, s, r);
        hy_rate[r] = (double)n / s;
        s = uv_fn(n);
        if (s <= 0) {
            fprintf(stderr, "timers: %s failed\n", uv_name);
            return 1;
        }
        report_rate(opts, uv_name, n, s, r);
        uv_rate[r] = (double)n / s;
    }
    double mh = bench_median(hy_rate, ROUNDS), mu = bench_median(uv_rate, ROUNDS);
    char scen[96], extra[96];
    snprintf(extra, sizeof extra, "\"pending\":%u,\"ops\":%llu,\"rounds\":%d", PENDING,
             (unsigned long long)n, ROUNDS);
    snprintf(scen, sizeof scen, "median-%s", name);
    bench_report(opts, "timers", scen, BENCH_OPS, mh, (double)n / mh, extra);
    snprintf(scen, sizeof scen, "median-%s", uv_name);
    bench_report(opts, "timers", scen, BENCH_OPS | BENCH_PEER, mu, (double)n / mu, extra);
    snprintf(scen, sizeof scen, "ratio-%s-vs-libuv", name);
    snprintf(extra, sizeof extra, "\"ratio\":%.2f,\"pending\":%u", mh / mu, PENDING);
    bench_report(opts, "timers", scen, BENCH_OPS, mh, 0, extra);
    return 0;
}

static int run_timers(const bench_opts *opts)
{
    unsigned workers = opts->workers ? opts->workers : 2;
    uint64_t n = opts->messages ? opts->messages : 1000000;
    const char *s = opts->scenario;
    int rc = 0;
    if (!s || strcmp(s, "schedule-cancel-1m") == 0)
        rc |= pair(opts, "schedule-cancel-1m", workers, n, hypha_schedule_cancel,
                   uv_schedule_cancel);
    if (!s || strcmp(s, "schedule-fire-1m") == 0)
        rc |= pair(opts, "schedule-fire-1m", workers, n < 200000 ? n : 200000,
                   hypha_schedule_fire, uv_schedule_fire);
    if (!s || strcmp(s, "lateness-100k") == 0)
        rc |= run_lateness(opts, workers);
    if (s && strcmp(s, "schedule-cancel-1m") && strcmp(s, "schedule-fire-1m") &&
        strcmp(s, "lateness-100k")) {
        fprintf(stderr, "timers: no scenario '%s'\n", s);
        return 2;
    }
    return rc;
}

HY_BENCH_FAMILY(timers, run_timers,
                "schedule-cancel-1m, schedule-fire-1m (against libuv), lateness-100k")
