/* The router family: how fast paths resolve to routes, per table and per route
 * kind, side by side with r3 (the C router hypha is measured against).
 *
 * Tables: "mixed" (1000 routes of every kind: 250 users/{id}/posts/{pid},
 * 250 users/me, 100 {year:\d{4}}/{slug} regexes, 100 .../latest, 300 deep
 * static files), "static100k" (100,000 static routes, wide and deep) and
 * "param10k" (10,000 routes with two {params} each). Every probe is checked
 * first (route and captures): a wrong hypha result fails the family. On the
 * mixed table hypha and r3 run in alternating rounds and the medians are
 * compared (hypha/r3 > 1 means hypha is faster). The hypha table lives under
 * one subsystem: hypha matches "bench://svc3/users/42/posts/7", r3 gets
 * "/svc3/users/42/posts/7". r3 is used as its README shows, with a match_entry
 * to get captures; the entry is reused and only its captured strings freed. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HAVE_STRNDUP
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <r3/r3.h>
#pragma GCC diagnostic pop
/* r3 allocates through its own zmalloc (a size header per block): captured
 * strings must go back through zfree, and zmalloc_used_memory gives its bytes. */
void zfree(void *ptr);
size_t zmalloc_used_memory(void);

#include "bench.h"
#include "router.h"

#define ROUNDS 5
#define PREFIX "bench:/" /* hypha path = PREFIX + r3 path */

enum { K_STATIC, K_PARAM, K_REGEX, K_NKINDS };
static const char *const kind_name[] = {"static", "param", "regex"};

typedef struct probe {
    char path[112];
    uint16_t len;
    uint8_t kind;
    uint8_t ncap;
    uint32_t route;          /* expected route udata - 1 */
    char cap[2][24];
} probe;

typedef struct table {
    const char *name;
    size_t n;
    char (*hy_pat)[96];      /* hypha patterns */
    char (*r3_pat)[96];      /* r3 patterns ("" when r3 is not run) */
    uint8_t *kind;
    probe *probes;           /* probes[i] targets route i */
} table;

static void table_alloc(table *t, const char *name, size_t n)
{
    t->name = name;
    t->n = n;
    t->hy_pat = calloc(n, sizeof *t->hy_pat);
    t->r3_pat = calloc(n, sizeof *t->r3_pat);
    t->kind = calloc(n, 1);
    t->probes = calloc(n, sizeof *t->probes);
    if (!t->hy_pat || !t->r3_pat || !t->kind || !t->probes) {
        fprintf(stderr, "router bench: out of memory\n");
        exit(2);
    }
}

static void table_free(table *t)
{
    free(t->hy_pat);
    free(t->r3_pat);
    free(t->kind);
    free(t->probes);
}

static void probe_set(table *t, size_t i, int kind, const char *path, const char *c0,
                      const char *c1)
{
    probe *p = &t->probes[i];
    snprintf(p->path, sizeof p->path, PREFIX "%s", path);
    p->len = (uint16_t)strlen(p->path);
    p->kind = (uint8_t)kind;
    p->route = (uint32_t)i;
    p->ncap = (uint8_t)((c0 != NULL) + (c1 != NULL));
    if (c0)
        snprintf(p->cap[0], sizeof p->cap[0], "%s", c0);
    if (c1)
        snprintf(p->cap[1], sizeof p->cap[1], "%s", c1);
    t->kind[i] = (uint8_t)kind;
}

/* Route i: the hypha pattern fmt, and r3's, which is the same after a '/'. */
__attribute__((format(printf, 3, 4))) static void route_set(table *t, size_t i,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->hy_pat[i], sizeof t->hy_pat[i], fmt, ap);
    va_end(ap);
    snprintf(t->r3_pat[i], sizeof t->r3_pat[i], "/%s", t->hy_pat[i]);
}

/* Table 1: the mix of the brief, one probe per route. */
static void build_mixed(table *t)
{
    table_alloc(t, "mixed", 1000);
    size_t i = 0;
    char path[96], c0[24], c1[24];
    for (int k = 0; k < 250; k++, i++) {
        route_set(t, i, "svc%d/users/{id}/posts/{pid}", k);
        snprintf(c0, sizeof c0, "%d", 42 + k);
        snprintf(c1, sizeof c1, "%d", 7 * k);
        snprintf(path, sizeof path, "/svc%d/users/%s/posts/%s", k, c0, c1);
        probe_set(t, i, K_PARAM, path, c0, c1);
    }
    for (int k = 0; k < 250; k++, i++) {
        route_set(t, i, "svc%d/users/me", k);
        probe_set(t, i, K_STATIC, t->r3_pat[i], NULL, NULL);
    }
    for (int k = 0; k < 100; k++, i++) {
        route_set(t, i, "arc%d/{year:\\d{4}}/{slug:[a-z0-9-]+}", k);
        snprintf(c0, sizeof c0, "%d", 1990 + k % 40);
        snprintf(c1, sizeof c1, "hello-world-%d", k);
        snprintf(path, sizeof path, "/arc%d/%s/%s", k, c0, c1);
        probe_set(t, i, K_REGEX, path, c0, c1);
    }
    for (int k = 0; k < 100; k++, i++) {
        route_set(t, i, "arc%d/latest", k);
        probe_set(t, i, K_STATIC, t->r3_pat[i], NULL, NULL);
    }
    for (int k = 0; k < 300; k++, i++) {
        route_set(t, i, "static/%d/a/b/c/file.css", k);
        probe_set(t, i, K_STATIC, t->r3_pat[i], NULL, NULL);
    }
}

/* Table 2: 100,000 static routes: 64 top-level names, 256 under each, then
 * leaves; every other route three segments deeper. */
static void build_static100k(table *t)
{
    table_alloc(t, "static100k", 100000);
    char path[96];
    for (size_t i = 0; i < t->n; i++) {
        snprintf(path, sizeof path, "/top%zu/dir%zu/leaf%zu%s", i % 64, (i / 64) % 256, i,
                 i % 2 ? "/deeper/still/file.txt" : "");
        snprintf(t->hy_pat[i], 96, "%s", path + 1);
        probe_set(t, i, K_STATIC, path, NULL, NULL);
    }
}

/* Table 3: 10,000 routes with two {params} each. */
static void build_param10k(table *t)
{
    table_alloc(t, "param10k", 10000);
    char path[96], c0[24], c1[24];
    for (size_t i = 0; i < t->n; i++) {
        snprintf(t->hy_pat[i], 96, "p%zu/{a}/q%zu/{b}", i % 100, i / 100);
        snprintf(c0, sizeof c0, "A%zu", i);
        snprintf(c1, sizeof c1, "b%zu", i * 31 % 977);
        snprintf(path, sizeof path, "/p%zu/%s/q%zu/%s", i % 100, c0, i / 100, c1);
        probe_set(t, i, K_PARAM, path, c0, c1);
    }
}

/* ------------------------------------------------------------------ hypha */

/* Build a router with the routes of `t` whose kind passes `want` (-1: all).
 * Returns the build time in ns through *ns. */
static hyi_router *hy_build(const table *t, int want, uint64_t *ns, size_t *nroutes)
{
    static int subsystem_tag;
    hyi_router *r;
    hyi_route_spec *specs = calloc(t->n, sizeof *specs);
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (want < 0 || t->kind[i] == want)
            specs[n++] = (hyi_route_spec){t->hy_pat[i], (void *)(uintptr_t)(i + 1)};
    uint64_t t0 = bench_now_ns();
    hyi_route_error err = {0};
    size_t failed = 0;
    if (hyi_router_create(&r) != 0 || hyi_router_add_subsystem(r, "bench", &subsystem_tag) != 0 ||
        hyi_router_add_routes(r, "bench", specs, n, &err, &failed) != 0) {
        fprintf(stderr, "router bench: cannot build %s: %s (%s at %ld)\n", t->name,
                hy_errdetail(), err.message, err.offset);
        exit(2);
    }
    *ns = bench_now_ns() - t0;
    *nroutes = n;
    free(specs);
    return r;
}

static int hy_verify(hyi_router *r, probe *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const probe *p = list[i];
        hyi_match m;
        int rc = hyi_router_match(r, p->path, p->len, &m);
        bool ok = rc == 0 && m.route == (void *)(uintptr_t)(p->route + 1) &&
                  m.nparams == p->ncap;
        for (unsigned c = 0; ok && c < p->ncap; c++)
            ok = m.params[c].len == strlen(p->cap[c]) &&
                 memcmp(p->path + m.params[c].off, p->cap[c], m.params[c].len) == 0;
        if (!ok) {
            fprintf(stderr, "router bench: WRONG result for %s: rc %d route %p nparams %u\n",
                    p->path, rc, m.route, m.nparams);
            return 1;
        }
    }
    return 0;
}

static uintptr_t sink;

static double hy_rate(hyi_router *r, probe *const *list, size_t n, uint64_t total)
{
    uintptr_t sum = 0;
    uint64_t done = 0;
    uint64_t t0 = bench_now_ns();
    while (done < total) {
        for (size_t i = 0; i < n; i++) {
            hyi_match m;
            hyi_router_match(r, list[i]->path, list[i]->len, &m);
            sum += (uintptr_t)m.route + m.params[0].off;
        }
        done += n;
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    sink += sum;
    return (double)done / secs;
}

/* ------------------------------------------------------------------ r3 */

static node *r3_build(const table *t, uint64_t *ns, size_t *bytes)
{
    size_t m0 = zmalloc_used_memory();
    uint64_t t0 = bench_now_ns();
    node *tree = r3_tree_create(10);
    for (size_t i = 0; i < t->n; i++)
        r3_tree_insert_path(tree, t->r3_pat[i], (void *)(uintptr_t)(i + 1));
    char *errstr = NULL;
    if (r3_tree_compile(tree, &errstr) != 0) {
        fprintf(stderr, "router bench: r3 compile: %s\n", errstr ? errstr : "?");
        exit(2);
    }
    *ns = bench_now_ns() - t0;
    *bytes = zmalloc_used_memory() - m0;
    return tree;
}

static void r3_entry_reset(match_entry *e)
{
    for (int i = 0; i < e->vars->len; i++)
        zfree(e->vars->tokens[i]);
    e->vars->len = 0;
}

/* r3's wrong results are reported, not fatal: it is the peer, not us. */
static size_t r3_verify(node *tree, match_entry *e, probe *const *list, size_t n)
{
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        const probe *p = list[i];
        const char *path = p->path + strlen(PREFIX);
        node *hit = r3_tree_matchl(tree, path, p->len - (int)strlen(PREFIX), e);
        bool ok = hit && hit->data == (void *)(uintptr_t)(p->route + 1) &&
                  e->vars->len == p->ncap;
        for (unsigned c = 0; ok && c < p->ncap; c++)
            ok = strcmp(e->vars->tokens[c], p->cap[c]) == 0;
        wrong += !ok;
        r3_entry_reset(e);
    }
    return wrong;
}

static double r3_rate(node *tree, match_entry *e, probe *const *list, size_t n, uint64_t total)
{
    uintptr_t sum = 0;
    uint64_t done = 0;
    const size_t skip = strlen(PREFIX);
    uint64_t t0 = bench_now_ns();
    while (done < total) {
        for (size_t i = 0; i < n; i++) {
            const probe *p = list[i];
            node *hit = r3_tree_matchl(tree, p->path + skip, p->len - (int)skip, e);
            sum += hit ? (uintptr_t)hit->data : 0;
            r3_entry_reset(e);
        }
        done += n;
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    sink += sum;
    return (double)done / secs;
}

/* ------------------------------------------------------------------ driver */

/* Probes of one kind (-1: all), shuffled so the order is not the trie's. */
static probe **select_probes(const table *t, int kind, size_t *n)
{
    probe **list = calloc(t->n, sizeof *list);
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++)
        if (kind < 0 || t->kind[i] == kind)
            list[k++] = &t->probes[i];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = k; i > 1; i--) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t j = (size_t)(s % i);
        probe *tmp = list[i - 1];
        list[i - 1] = list[j];
        list[j] = tmp;
    }
    *n = k;
    return list;
}

static bool want_scenario(const bench_opts *o, const char *name)
{
    return !o->scenario || strcmp(o->scenario, name) == 0 ||
           strncmp(o->scenario, name, strlen(name)) == 0;
}

/* One line per kind of the mixed table, hypha and r3 in alternating rounds. */
static int run_mixed(const bench_opts *o, uint64_t total)
{
    table t;
    build_mixed(&t);
    uint64_t hy_ns, r3_ns;
    size_t nroutes;
    hyi_router *r = hy_build(&t, -1, &hy_ns, &nroutes);
    size_t bytes_all = hyi_router_memory(r);
    size_t r3_bytes;
    node *tree = r3_build(&t, &r3_ns, &r3_bytes);
    match_entry *e = match_entry_createl("", 0);
    int rc = 0;

    for (int kind = -1; kind < K_NKINDS && rc == 0; kind++) {
        const char *kname = kind < 0 ? "mixed" : kind_name[kind];
        char scen[64];
        snprintf(scen, sizeof scen, "mixed/%s", kname);
        if (o->scenario && strcmp(o->scenario, "mixed") != 0 && strcmp(o->scenario, scen) != 0)
            continue;
        size_t n;
        probe **list = select_probes(&t, kind, &n);
        if ((rc = hy_verify(r, list, n)) != 0) {
            free(list);
            break;
        }
        size_t r3_wrong = r3_verify(tree, e, list, n);
        /* Compile time and bytes for this kind's routes alone. */
        uint64_t kind_ns = hy_ns;
        size_t kind_routes = nroutes, kind_bytes = bytes_all;
        if (kind >= 0) {
            hyi_router *rk = hy_build(&t, kind, &kind_ns, &kind_routes);
            kind_bytes = hyi_router_memory(rk);
            hyi_router_destroy(rk);
        }
        double hy[ROUNDS], r3[ROUNDS], hy_secs = 0;
        for (int round = 0; round < ROUNDS; round++) {
            uint64_t t0 = bench_now_ns();
            hy[round] = hy_rate(r, list, n, total);
            hy_secs += (double)(bench_now_ns() - t0) / 1e9;
            r3[round] = r3_rate(tree, e, list, n, total);
            bench_progress(scen, (uint64_t)round + 1, ROUNDS);
        }
        double hm = bench_median(hy, ROUNDS), rm = bench_median(r3, ROUNDS);
        char extra[512];
        snprintf(extra, sizeof extra,
                 "\"table\":\"mixed\",\"kind\":\"%s\",\"routes\":%zu,\"probes\":%zu,"
                 "\"compile_ms\":%.3f,\"bytes_per_route\":%.0f,\"r3_ops_per_s\":%.0f,"
                 "\"r3_compile_ms\":%.3f,\"r3_bytes_per_route\":%.0f,\"ratio_vs_r3\":%.2f,"
                 "\"r3_wrong\":%zu",
                 kname, kind_routes, n, (double)kind_ns / 1e6,
                 (double)kind_bytes / (double)kind_routes, rm, (double)r3_ns / 1e6,
                 (double)r3_bytes / (double)t.n, hm / rm, r3_wrong);
        bench_report(o, "router", scen, BENCH_OPS, hm, hy_secs / ROUNDS, extra);
        free(list);
    }
    match_entry_free(e);
    r3_tree_free(tree);
    hyi_router_destroy(r);
    table_free(&t);
    return rc;
}

/* A hypha-only table: build, verify every probe, median rate. */
static int run_table(const bench_opts *o, table *t, uint64_t total)
{
    uint64_t ns;
    size_t nroutes;
    hyi_router *r = hy_build(t, -1, &ns, &nroutes);
    size_t n;
    probe **list = select_probes(t, -1, &n);
    int rc = hy_verify(r, list, n);
    if (rc == 0) {
        double hy[ROUNDS], secs = 0;
        for (int round = 0; round < ROUNDS; round++) {
            uint64_t t0 = bench_now_ns();
            hy[round] = hy_rate(r, list, n, total);
            secs += (double)(bench_now_ns() - t0) / 1e9;
            bench_progress(t->name, (uint64_t)round + 1, ROUNDS);
        }
        char extra[256];
        snprintf(extra, sizeof extra,
                 "\"table\":\"%s\",\"routes\":%zu,\"compile_ms\":%.3f,\"bytes_per_route\":%.0f",
                 t->name, nroutes, (double)ns / 1e6,
                 (double)hyi_router_memory(r) / (double)nroutes);
        bench_report(o, "router", t->name, BENCH_OPS, bench_median(hy, ROUNDS), secs / ROUNDS,
                     extra);
    }
    free(list);
    hyi_router_destroy(r);
    return rc;
}

static int bench_router(const bench_opts *o)
{
    uint64_t total = o->messages ? o->messages : 1000000;
    int rc = 0;
    if (want_scenario(o, "mixed"))
        rc |= run_mixed(o, total);
    if (want_scenario(o, "static100k")) {
        table t;
        build_static100k(&t);
        rc |= run_table(o, &t, total);
        table_free(&t);
    }
    if (want_scenario(o, "param10k")) {
        table t;
        build_param10k(&t);
        rc |= run_table(o, &t, total);
        table_free(&t);
    }
    return rc;
}

HY_BENCH_FAMILY(router, bench_router,
                "path -> route matching: mixed/{static,param,regex,mixed} vs r3, "
                "static100k, param10k")
