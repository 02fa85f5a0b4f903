/* The benchmark driver's contract with each family (docs/ARCHITECTURE.md §6).
 *
 * A family lives in its own bench/<family>.c and registers itself with
 * HY_BENCH_FAMILY; the driver (bench/main.c) parses the command line and calls it.
 * Families print one JSON object per result line on stdout with --json, and a
 * human table otherwise; they never assert a speed, only report it. A family
 * returns 0, or non-zero when a scenario found wrong results (lost or duplicated
 * messages, a wrong match): that is a failure, not a slow run. */
#ifndef HY_BENCH_H
#define HY_BENCH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bench_opts {
    const char *scenario;  /* NULL: the family's default scenarios */
    bool json;             /* one JSON object per line on stdout */
    uint64_t messages;     /* 0: the family's default size */
    unsigned workers;      /* 0: the family's default (online CPUs) */
    uint64_t routes;       /* 0: the default route count of a scenario that
                              varies it (throughput routes) */
    bool alone;            /* a scenario that alternates with a baseline in
                              its own run (throughput static, with bare) runs
                              once without it: what bench/peers/counters.sh
                              counts per message */
} bench_opts;

typedef int (*bench_family_fn)(const bench_opts *opts);

void bench_register(const char *name, bench_family_fn fn, const char *summary);

#define HY_BENCH_FAMILY(name, fn, summary)                                   \
    __attribute__((constructor)) static void bench_register_##name(void)     \
    {                                                                        \
        bench_register(#name, fn, summary);                                  \
    }

/* Monotonic time in nanoseconds. */
uint64_t bench_now_ns(void);
/* Process CPU time (user + system) in nanoseconds. */
uint64_t bench_cpu_ns(void);
/* Resident set size of this process, in bytes. */
uint64_t bench_rss_bytes(void);
/* The median of n figures (sorts v): what the families that alternate
 * hypha with a peer over rounds report. */
double bench_median(double *v, int n);
/* Sort a sample array and return its q-quantile (0 <= q <= 1). */
uint64_t bench_quantile(uint64_t *samples, uint64_t n, double q);
/* Progress on stderr, only when stderr is a terminal: the label, the percent
 * done and the time left, on one line rewritten in place (at most ten times a
 * second, so a family may call it often) and cleared by the next result row. */
void bench_progress(const char *label, uint64_t done, uint64_t total);

/* What a result's rate counts. The JSON key is "msgs_per_s" for messages and
 * round trips (the peers' run.sh reads pingpong's there; its extra fields say
 * "unit":"round_trips"), "ops_per_s" for operations; the table names the unit. */
typedef enum bench_unit {
    BENCH_MSGS,        /* "msgs_per_s", msgs/s */
    BENCH_OPS,         /* "ops_per_s", ops/s */
    BENCH_ROUND_TRIPS, /* "msgs_per_s", round trips/s */
} bench_unit;
/* Or'ed into a bench_unit: the line is a peer's or a baseline's (jemalloc, raw
 * LMDB), not hypha's, so the table's closing summary leaves it out of "best". */
#define BENCH_PEER 0x100

/* Result line: the fields every line has, then extra "key":value pairs given as
 * a pre-formatted flat JSON fragment (may be NULL), e.g. "\"p50_ns\":120". With
 * --json it prints the object. Otherwise a row of the human table: the rate
 * with k/M suffixes and its unit, the time, and one short line of details made
 * from the extra fields (latencies first, *_ns shown in ns/us/ms/s; inputs such
 * as "messages" only in the JSON). After the family, the driver closes the table
 * with the best figures and, for throughput, the last bench-peers ratios. */
void bench_report(const bench_opts *opts, const char *bench, const char *scenario,
                  unsigned unit, double rate, double seconds, const char *extra_json);

#endif
