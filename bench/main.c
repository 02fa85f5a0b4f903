/* hypha-bench: the benchmark driver. Parses the command line of docs/ARCHITECTURE.md §6,
 * runs a family, and provides the shared timing, sampling and reporting helpers
 * so every family prints the same JSON-lines contract. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_FAMILIES 16

static struct family {
    const char *name;
    bench_family_fn fn;
    const char *summary;
} families[MAX_FAMILIES];
static int nfamilies;

void bench_register(const char *name, bench_family_fn fn, const char *summary)
{
    if (nfamilies == MAX_FAMILIES) {
        fprintf(stderr, "hypha-bench: too many families\n");
        exit(2);
    }
    families[nfamilies++] = (struct family){name, fn, summary};
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t bench_quantile(uint64_t *samples, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(samples, n, sizeof *samples, cmp_u64);
    uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
    return samples[i < n ? i : n - 1];
}

void bench_progress(const char *label, uint64_t done, uint64_t total)
{
    if (!isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r%-40s %llu/%llu%s", label, (unsigned long long)done,
            (unsigned long long)total, done >= total ? "\n" : "");
    fflush(stderr);
}

static int table_header_printed;

void bench_report(const bench_opts *opts, const char *bench, const char *scenario,
                  const char *rate_key, double rate, double seconds,
                  const char *extra_json)
{
    if (opts->json) {
        printf("{\"bench\":\"%s\",\"scenario\":\"%s\",\"%s\":%.0f,\"seconds\":%.3f%s%s}\n",
               bench, scenario, rate_key, rate, seconds,
               extra_json && *extra_json ? "," : "", extra_json ? extra_json : "");
    } else {
        if (!table_header_printed) {
            printf("%-12s %-28s %16s %9s  %s\n", "bench", "scenario", "rate/s",
                   "seconds", "details");
            table_header_printed = 1;
        }
        printf("%-12s %-28s %16.0f %9.3f  %s\n", bench, scenario, rate, seconds,
               extra_json ? extra_json : "");
    }
    fflush(stdout);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: hypha-bench [FAMILY] [--scenario NAME] [--json] "
                "[--messages N] [--workers W] [--routes N]\nfamilies:\n");
    for (int i = 0; i < nfamilies; i++)
        fprintf(to, "  %-12s %s\n", families[i].name, families[i].summary);
}

static const struct family *find_family(const char *name)
{
    for (int i = 0; i < nfamilies; i++)
        if (strcmp(families[i].name, name) == 0)
            return &families[i];
    return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts opts = {0};
    const char *family = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        if (strcmp(a, "--json") == 0) {
            opts.json = true;
        } else if (strcmp(a, "--scenario") == 0 && i + 1 < argc) {
            opts.scenario = argv[++i];
        } else if (strcmp(a, "--messages") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) == 0 && v > 0) {
            opts.messages = v;
            i++;
        } else if (strcmp(a, "--workers") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) == 0 && v > 0 && v <= 1024) {
            opts.workers = (unsigned)v;
            i++;
        } else if (strcmp(a, "--routes") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) == 0 && v > 0 && v <= 10000000) {
            opts.routes = v;
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && !family) {
            family = a;
        } else {
            fprintf(stderr, "hypha-bench: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    /* The default family is the user's main job, message throughput; until a
     * family exists the driver says so rather than pretending. */
    const struct family *f = find_family(family ? family : "throughput");
    if (!f) {
        fprintf(stderr, "hypha-bench: no family '%s'\n", family ? family : "throughput");
        usage(stderr);
        return 2;
    }
    return f->fn(&opts) == 0 ? 0 : 1;
}
