/* hypha-bench: the benchmark driver. Parses the command line of docs/ARCHITECTURE.md §6,
 * runs a family, and provides the shared timing, sampling and reporting helpers
 * so every family prints the same JSON-lines contract. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "clock.h"

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
    return hyi_now_ns();
}

uint64_t bench_cpu_ns(void)
{
    return hyi_clock_read_ns(CLOCK_PROCESS_CPUTIME_ID);
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

uint64_t bench_quantile(uint64_t *samples, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(samples, n, sizeof *samples, cmp_u64);
    uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
    return samples[i < n ? i : n - 1];
}

/* ------------------------------------------------------------------ formatting */

static const char *const si_units[] = {"", " k", " M", " G", " T"};
static const char *const time_units[] = {" ns", " µs", " ms", " s"};
static const char *const byte_units[] = {" B", " KiB", " MiB", " GiB", " TiB"};

/* The one number formatter of the table: v divided by `step` until it is below
 * 1000, with its unit; one decimal below 100 ("15.2 M", "8.6 µs"), none above
 * ("812 k"); a whole count (no unit) below 10000 as it is ("1024") and
 * without decimals when scaling leaves it whole ("10 k"). */
static void fmt_scaled(char *buf, size_t len, double v, double step,
                       const char *const *unit, size_t nunits)
{
    bool count = !*unit[0];
    bool whole = count && v == (double)(long long)v;
    size_t u = 0;
    while (!(u == 0 && whole && v < 10000 && v > -10000) && (v >= 999.5 || v <= -999.5) &&
           u + 1 < nunits) {
        v /= step;
        u++;
        whole = count && v == (double)(long long)v;
    }
    snprintf(buf, len, (v < 99.95 && v > -99.95 && !whole) ? "%.1f%s" : "%.0f%s", v, unit[u]);
}

#define FMT(buf, v, units, step) \
    fmt_scaled(buf, sizeof buf, v, step, units, sizeof units / sizeof units[0])

static void fmt_ratio(char *buf, size_t len, double r)
{
    snprintf(buf, len, r < 10 ? "%.2fx" : "%.1fx", r);
}

/* Columns on a terminal: UTF-8 continuation bytes take none. */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void put_cell(const char *s, int width, bool right)
{
    int pad = width - text_width(s);
    if (right && pad > 0)
        printf("%*s", pad, "");
    fputs(s, stdout);
    if (!right && pad > 0)
        printf("%*s", pad, "");
}

/* ------------------------------------------------------------------ progress */

static struct {
    int tty;            /* -1: not asked yet */
    bool shown;         /* a progress line is on the terminal */
    char label[64];
    uint64_t t0, shown_at, last_done;
} progress = {.tty = -1};

static void progress_clear(void)
{
    if (progress.shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        progress.shown = false;
    }
}

void bench_progress(const char *label, uint64_t done, uint64_t total)
{
    if (progress.tty < 0)
        progress.tty = isatty(STDERR_FILENO);
    if (!progress.tty)
        return;
    uint64_t now = bench_now_ns();
    if (strncmp(label, progress.label, sizeof progress.label - 1) != 0 ||
        done < progress.last_done) { /* a new run: restart the clock */
        snprintf(progress.label, sizeof progress.label, "%s", label);
        progress.t0 = now;
    }
    progress.last_done = done;
    if (done >= total) {
        progress_clear();
        return;
    }
    if (progress.shown && now - progress.shown_at < 100000000u)
        return; /* ten lines a second are plenty */
    char left[48] = "";
    if (done > 0 && now - progress.t0 > 200000000u) {
        char t[24];
        FMT(t, (double)(now - progress.t0) * (double)(total - done) / (double)done,
            time_units, 1000);
        snprintf(left, sizeof left, "  ~%s left", t);
    }
    fprintf(stderr, "\r%s  %3.0f%%%s\033[K", progress.label,
            100.0 * (double)done / (double)total, left);
    fflush(stderr);
    progress.shown = true;
    progress.shown_at = now;
}

/* ------------------------------------------------------------------ details */

/* One "key":value pair of a flat JSON fragment; text is the value's own
 * characters (a string without its quotes). */
typedef struct field {
    char key[48];
    char text[48];
    bool number;
    double num;
} field;

static int parse_fields(const char *json, field *f, int max)
{
    int n = 0;
    const char *p = json ? json : "";
    while (n < max) {
        while (*p == ',' || *p == ' ')
            p++;
        if (*p++ != '"')
            break;
        const char *k = p;
        while (*p && *p != '"')
            p++;
        if (*p != '"' || p[1] != ':')
            break;
        snprintf(f[n].key, sizeof f[n].key, "%.*s", (int)(p - k), k);
        p += 2;
        bool quoted = *p == '"';
        const char *v = p += quoted;
        while (*p && (quoted ? *p != '"' : *p != ','))
            p += (quoted && *p == '\\' && p[1]) ? 2 : 1;
        snprintf(f[n].text, sizeof f[n].text, "%.*s", (int)(p - v), v);
        p += quoted && *p;
        char *end;
        f[n].num = strtod(f[n].text, &end);
        f[n].number = !quoted && end != f[n].text;
        n++;
    }
    return n;
}

/* Fields that are a scenario's inputs or raw figures behind one shown: in the
 * JSON, left out of the table's one line. */
static const char *const table_hides[] = {
    "unit", "messages", "pairs", "entries", "ops", "probes", "rounds", "allocator", "table",
    "kind", "object_bytes", "value_bytes", "payload_bytes", "state_bytes", "per_txn", "burst",
    "ring", "capacity", "attempts", "durability", "idle_timeout_ms", "actor_struct",
    "actor_alloc", "rss_baseline", "rss_bytes", "rss_active", "rss_after", "rss_after_purge",
    "cpu_seconds", "pool_bytes_reserved", "r3_compile_ms", "r3_bytes_per_route", "snapshots",
    "replayed", "slice",
};

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The first n characters of a key as words ("p50_ns", 3 -> "p50"). */
static const char *words(char *buf, size_t len, const char *key, size_t n)
{
    snprintf(buf, len, "%.*s", (int)n, key);
    for (char *c = buf; *c; c++)
        if (*c == '_')
            *c = ' ';
    return buf;
}

/* 0 a latency or time, 1 a ratio, 2 anything else, -1 not in the table. */
static int field_rank(const field *f)
{
    for (size_t i = 0; i < sizeof table_hides / sizeof table_hides[0]; i++)
        if (strcmp(f->key, table_hides[i]) == 0)
            return -1;
    if (strcmp(f->key, "r3_wrong") == 0 && f->num == 0)
        return -1;
    if (!f->number)
        return 2;
    if (ends(f->key, "_ns") || starts(f->key, "ns_per_"))
        return 0;
    if (starts(f->key, "ratio") || strstr(f->key, "_vs_"))
        return 1;
    return 2;
}

/* A field as a person reads it: "p99 127 µs", "vs r3 1.42x", "233 B/actor",
 * "r3 4.5 M ops/s", "cpu 0.12% of one core". */
static void field_text(const field *f, char *out, size_t len)
{
    const char *k = f->key;
    size_t kl = strlen(k);
    char v[32], w[48], w2[48];
    const char *pct = strstr(k, "percent");
    if (!f->number) {
        snprintf(out, len, "%s %s", words(w, sizeof w, k, kl), f->text);
    } else if (starts(k, "ns_per_")) {
        FMT(v, f->num, time_units, 1000);
        snprintf(out, len, "%s/%s", v, words(w, sizeof w, k + 7, kl - 7));
    } else if (ends(k, "_ns")) {
        FMT(v, f->num, time_units, 1000);
        snprintf(out, len, "%s %s", words(w, sizeof w, k, kl - 3), v);
    } else if (ends(k, "_ms")) {
        FMT(v, f->num * 1e6, time_units, 1000);
        snprintf(out, len, "%s %s", words(w, sizeof w, k, kl - 3), v);
    } else if (ends(k, "_seconds")) {
        FMT(v, f->num * 1e9, time_units, 1000);
        snprintf(out, len, "%s %s", words(w, sizeof w, k, kl - 8), v);
    } else if (starts(k, "bytes_per_")) {
        FMT(v, f->num, byte_units, 1024);
        snprintf(out, len, "%s/%s", v, words(w, sizeof w, k + 10, kl - 10));
    } else if (starts(k, "fraction_of_")) { /* "fraction_of_bare": "10.4% of bare" */
        snprintf(out, len, "%.1f%% of %s", f->num * 100, words(w, sizeof w, k + 12, kl - 12));
    } else if (starts(k, "ratio") || strstr(k, "_vs_")) {
        fmt_ratio(v, sizeof v, f->num);
        size_t skip = starts(k, "ratio_") ? 6 : 0;
        snprintf(out, len, "%s %s", words(w, sizeof w, k + skip, kl - skip), v);
    } else if (ends(k, "_per_s")) { /* "r3_ops_per_s": "r3 4.5 M ops/s" */
        size_t bl = kl - 6, cut = bl;
        while (cut > 0 && k[cut - 1] != '_')
            cut--;
        FMT(v, f->num, si_units, 1000);
        snprintf(out, len, "%s%s%s %s/s", words(w, sizeof w, k, cut ? cut - 1 : 0),
                 cut ? " " : "", v, words(w2, sizeof w2, k + cut, bl - cut));
    } else if (pct) { /* "cpu_percent_of_one_core": "cpu 0.12% of one core" */
        size_t before = (size_t)(pct - k) - (pct > k), after = (size_t)(pct - k) + 7;
        after += k[after] == '_';
        int prec = f->num < 0.1 ? 3 : f->num < 10 ? 2 : 0;
        snprintf(out, len, "%s %.*f%% %s", words(w, sizeof w, k, before), prec, f->num,
                 words(w2, sizeof w2, k + after, kl - after));
    } else {
        if (starts(k, "rss") || strstr(k, "bytes"))
            FMT(v, f->num, byte_units, 1024);
        else
            FMT(v, f->num, si_units, 1000);
        snprintf(out, len, "%s %s", words(w, sizeof w, k, kl), v);
    }
}

/* The details cell: latencies, then ratios, then the rest, two spaces apart,
 * in at most `cap` columns; "..." when a field did not fit. */
static void details_text(const char *json, char *out, size_t len, int cap)
{
    field f[48];
    int n = parse_fields(json, f, 48), used = 0;
    bool cut = false;
    out[0] = '\0';
    for (int rank = 0; rank <= 2; rank++)
        for (int i = 0; i < n; i++) {
            if (field_rank(&f[i]) != rank)
                continue;
            char t[160];
            field_text(&f[i], t, sizeof t);
            int w = text_width(t) + (used ? 2 : 0);
            if (used + w > cap - 2) {
                cut = true;
                continue;
            }
            size_t at = strlen(out);
            snprintf(out + at, len - at, "%s%s", used ? "  " : "", t);
            used += w;
        }
    if (cut) {
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s…", used ? " " : "");
    }
}

/* ------------------------------------------------------------------ the table */

#define COL_SCENARIO 24
#define COL_RATE     7  /* "99.9 M", "999 k" */
#define COL_UNIT     13 /* "round trips/s" */
#define COL_TIME     7  /* "999 ms" */
#define COLS_BEFORE_DETAILS (COL_SCENARIO + 2 + COL_RATE + 1 + COL_UNIT + 2 + COL_TIME + 2)

static const char *const unit_name[] = {"msgs/s", "ops/s", "round trips/s"}; /* by bench_unit */
#define NUNITS (sizeof unit_name / sizeof unit_name[0])

static struct {
    char bench[32];          /* the family whose header is printed */
    struct best {
        double rate;
        char scenario[64];
    } best[NUNITS];          /* per bench_unit; rate 0: none */
    char seen[64][48];       /* the throughput scenarios reported: the peers' ratios
                              * shown are those of these */
    int nseen;
} table;

static int details_cap(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col - COLS_BEFORE_DETAILS > 30 ? ws.ws_col - COLS_BEFORE_DETAILS - 1 : 30;
    return 96;
}

static void table_row(const char *bench, const char *scenario, bench_unit unit, bool peer,
                      double rate, double seconds, const char *extra_json)
{
    if (strcmp(table.bench, bench) != 0) {
        snprintf(table.bench, sizeof table.bench, "%s", bench);
        put_cell(bench, COL_SCENARIO, false);
        printf("  ");
        put_cell("rate", COL_RATE, true);
        printf(" %*s  ", COL_UNIT, "");
        put_cell("time", COL_TIME, true);
        printf("  details\n");
    }
    char r[24], t[24], d[512];
    FMT(r, rate, si_units, 1000);
    FMT(t, seconds * 1e9, time_units, 1000);
    details_text(extra_json, d, sizeof d, details_cap());
    put_cell(scenario, COL_SCENARIO, false);
    printf("  ");
    put_cell(r, COL_RATE, true);
    printf(" ");
    put_cell(unit_name[unit], COL_UNIT, false);
    printf("  ");
    put_cell(t, COL_TIME, true);
    printf("  %s\n", d);

    struct best *b = &table.best[unit];
    if (!peer && rate > b->rate) {
        b->rate = rate;
        snprintf(b->scenario, sizeof b->scenario, "%s", scenario);
    }
    if (strcmp(bench, "throughput") == 0 && table.nseen < 64)
        snprintf(table.seen[table.nseen++], sizeof table.seen[0], "%s", scenario);
}

void bench_report(const bench_opts *opts, const char *bench, const char *scenario,
                  unsigned unit, double rate, double seconds, const char *extra_json)
{
    bench_unit u = (unit & 0xff) < NUNITS ? (bench_unit)(unit & 0xff) : BENCH_MSGS;
    progress_clear();
    if (opts->json)
        printf("{\"bench\":\"%s\",\"scenario\":\"%s\",\"%s\":%.0f,\"seconds\":%.3f%s%s}\n",
               bench, scenario, u == BENCH_OPS ? "ops_per_s" : "msgs_per_s", rate, seconds,
               extra_json && *extra_json ? "," : "", extra_json ? extra_json : "");
    else
        table_row(bench, scenario, u, unit & BENCH_PEER, rate, seconds, extra_json);
    fflush(stdout);
}

/* ------------------------------------------------------------------ summary */

/* Where `make bench-peers` leaves its medians and ratios: bench/peers/run.sh
 * writes $BUILD/peers/last-ratios.jsonl, next to this binary's $BUILD. */
static void ratios_path(const char *argv0, char *buf, size_t len)
{
    char exe[4096];
    const char *self = argv0;
    if (!strchr(argv0, '/')) { /* found on PATH: ask the kernel where */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        self = exe;
    }
    const char *slash = strrchr(self, '/');
    snprintf(buf, len, "%.*s/peers/last-ratios.jsonl", slash ? (int)(slash - self) : 1,
             slash ? self : ".");
}

static bool json_string(const char *line, const char *key, char *out, size_t len)
{
    field f[32];
    int n = parse_fields(line[0] == '{' ? line + 1 : line, f, 32);
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0) {
            snprintf(out, len, "%s", f[i].text);
            return true;
        }
    return false;
}

static const char *peer_name(const char *contender)
{
    return starts(contender, "caf")   ? "CAF"
           : starts(contender, "erl") ? "Erlang"
           : starts(contender, "zmq") ? "ZeroMQ"
                                      : contender;
}

/* "count vs CAF 4.51x, vs Erlang 2.90x; pingpong vs CAF 1.23x", for the
 * throughput scenarios this run reported, with where and how old. */
static void print_peer_ratios(const char *argv0)
{
    char path[4200], line[1024], out[512] = "", last[96] = "", rounds[16] = "?";
    ratios_path(argv0, path, sizeof path);
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char scen[96], ratio[32];
        if (!json_string(line, "scenario", scen, sizeof scen) || !starts(scen, "ratio-") ||
            !json_string(line, "ratio", ratio, sizeof ratio))
            continue;
        char *vs = strstr(scen, "-vs-");
        if (!vs)
            continue;
        *vs = '\0';
        const char *hypha = scen + 6, *peer = vs + 4;
        bool seen = false;
        for (int i = 0; i < table.nseen; i++)
            seen |= strcmp(table.seen[i], hypha) == 0;
        if (!seen)
            continue;
        json_string(line, "rounds", rounds, sizeof rounds);
        char r[16];
        fmt_ratio(r, sizeof r, strtod(ratio, NULL));
        size_t at = strlen(out);
        if (strcmp(last, hypha) != 0)
            snprintf(out + at, sizeof out - at, "%s%s vs %s %s", *last ? "; " : "", hypha,
                     peer_name(peer), r);
        else
            snprintf(out + at, sizeof out - at, ", vs %s %s", peer_name(peer), r);
        snprintf(last, sizeof last, "%s", hypha);
    }
    if (*out && fstat(fileno(f), &st) == 0) {
        long age = (long)(time(NULL) - st.st_mtime);
        char when[32];
        if (age < 90)
            snprintf(when, sizeof when, "%ld s", age < 0 ? 0 : age);
        else if (age < 90 * 60)
            snprintf(when, sizeof when, "%ld min", age / 60);
        else if (age < 48 * 3600)
            snprintf(when, sizeof when, "%ld h", age / 3600);
        else
            snprintf(when, sizeof when, "%ld days", age / 86400);
        printf("peers: %s\n       (medians of %s round%s of make bench-peers, %s ago: %s)\n",
               out, rounds, strcmp(rounds, "1") ? "s" : "", when, path);
    }
    fclose(f);
}

/* After the last row: the best figure of each unit, and for throughput the
 * ratios the last bench-peers run measured. */
static void print_summary(const char *argv0)
{
    char best[256] = "";
    for (size_t u = 0; u < NUNITS; u++) {
        if (table.best[u].rate <= 0)
            continue;
        char r[24];
        FMT(r, table.best[u].rate, si_units, 1000);
        size_t at = strlen(best);
        snprintf(best + at, sizeof best - at, "%s%s %s (%s)", *best ? ", " : "", r,
                 unit_name[u], table.best[u].scenario);
    }
    if (*best)
        printf("\nbest:  %s\n", best);
    if (table.nseen)
        print_peer_ratios(argv0);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: hypha-bench [FAMILY] [--scenario NAME] [--json] "
                "[--messages N] [--workers W] [--routes N] [--alone]\nfamilies:\n");
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
        } else if (strcmp(a, "--alone") == 0) {
            opts.alone = true;
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
    int rc = f->fn(&opts);
    progress_clear();
    if (!opts.json)
        print_summary(argv[0]);
    return rc == 0 ? 0 : 1;
}
