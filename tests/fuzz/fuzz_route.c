/* libFuzzer target: the router against a slow reference matcher.
 *
 * The input is read as a stream of choices: a table of routes of every
 * segment kind (static, {p}, {p:REGEX} from a fixed set, *, ** last) under one
 * subsystem, and a set of paths made of a small vocabulary of segments (so
 * routes and paths collide often). Each path is matched by the router and by
 * the reference below; any disagreement, on the route chosen or on a capture,
 * aborts with the table and the path.
 *
 * The reference is written for clarity, not speed, straight from router.h's
 * rules. A route matches a path when each of its segments matches one path
 * segment in turn (static: same bytes; {p:REGEX}: PCRE2 matches the whole
 * segment; {p} and *: any segment) and the path has no segment left, except
 * that a final ** takes whatever remains, nothing included. Among the routes
 * that match, precedence per segment with backtracking amounts to this: give
 * each route its vector of segment kinds, most specific smallest (the end of
 * the route before every kind, so a route that ends beats a ** that matches
 * nothing), compare
 * the vectors lexicographically up to the first end or **, and take the
 * smallest; on a true tie, the route added first. Captures: one per non-static
 * segment, the segment itself; a ** takes the rest of the path from its first
 * segment, or (path length, 0) when it matched nothing.
 *
 * Some routes are removed again before matching, so the table the paths see
 * was rebuilt, and registration order must survive the rebuild. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Kinds, most specific first; END sorts before all of them. */
enum { K_END, K_STATIC, K_REGEX, K_PARAM, K_STAR, K_DSTAR };

/* Segment vocabularies shared by patterns and paths, so they meet. The last
 * two are longer than 8 bytes: the router keeps such static keys apart (by
 * pointer, not packed in a word), and they share their first and last bytes. */
static const char *const words[] = {"a", "b", "ab", "1", "12", "2024", "x-y", "abc",
                                    "caf\xc3\xa9", "A1", "segment-0001", "segment-1001"};
#define NWORDS (sizeof words / sizeof words[0])
/* Safe regexes: some the router reduces to a byte-class test, some it leaves
 * to PCRE2; several overlap, so true ties and backtracking happen. */
static const char *const regexes[] = {
    "\\d+", "[0-9]+", "\\d{4}", "[a-z]+", "[a-z0-9-]+", "a|ab", "(?:a|b)+",
    "\\w*", ".+", "[ab]", "1.*", "x-y", "[^/]{2,3}", ".",
};
#define NREGEXES (sizeof regexes / sizeof regexes[0])

#define MAX_ROUTES 12
#define MAX_SEGS 5
#define MAX_PATHS 16

typedef struct seg {
    int kind;
    int ix; /* word (STATIC) or regex (REGEX) index */
} seg;

typedef struct route {
    int nseg;
    seg s[MAX_SEGS];
    char text[256];
    int seq;      /* registration order */
    int live;
} route;

typedef struct input {
    const uint8_t *d;
    size_t n, at;
} input;

static unsigned take(input *in, unsigned mod)
{
    unsigned v = in->at < in->n ? in->d[in->at++] : 0;
    return v % mod;
}

static pcre2_code *ref_rx[NREGEXES];
static pcre2_match_data *ref_md;

static void ref_init(void)
{
    if (ref_md)
        return;
    for (size_t i = 0; i < NREGEXES; i++) {
        int ec;
        PCRE2_SIZE eo;
        ref_rx[i] = pcre2_compile((PCRE2_SPTR)regexes[i], PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &ec, &eo,
                                  NULL);
        if (!ref_rx[i])
            abort();
    }
    ref_md = pcre2_match_data_create(4, NULL);
}

static void render(route *r, int pnum)
{
    size_t n = 0;
    for (int j = 0; j < r->nseg; j++) {
        if (j)
            r->text[n++] = '/';
        const seg *s = &r->s[j];
        switch (s->kind) {
        case K_STATIC:
            n += (size_t)sprintf(r->text + n, "%s", words[s->ix]);
            break;
        case K_REGEX:
            n += (size_t)sprintf(r->text + n, "{p%d:%s}", pnum + j, regexes[s->ix]);
            break;
        case K_PARAM:
            n += (size_t)sprintf(r->text + n, "{q%d}", pnum + j);
            break;
        case K_STAR:
            n += (size_t)sprintf(r->text + n, "*");
            break;
        default:
            n += (size_t)sprintf(r->text + n, "**");
            break;
        }
    }
    r->text[n] = 0;
}

/* Same shape: the router's duplicate rule (names do not count). */
static int same_shape(const route *a, const route *b)
{
    if (a->nseg != b->nseg)
        return 0;
    for (int j = 0; j < a->nseg; j++) {
        if (a->s[j].kind != b->s[j].kind)
            return 0;
        if ((a->s[j].kind == K_STATIC || a->s[j].kind == K_REGEX) && a->s[j].ix != b->s[j].ix)
            return 0;
    }
    return 1;
}

typedef struct path {
    char text[128];
    size_t len;
    size_t rest;
    int nseg;
    hyi_slice seg[MAX_SEGS + 1];
} path;

static int seg_matches(const seg *s, const char *p, size_t len)
{
    switch (s->kind) {
    case K_STATIC:
        return strlen(words[s->ix]) == len && memcmp(words[s->ix], p, len) == 0;
    case K_REGEX:
        return pcre2_match(ref_rx[s->ix], (PCRE2_SPTR)p, len, 0, 0, ref_md, NULL) >= 0;
    default:
        return 1;
    }
}

/* Does r match pa? Fills caps (one per non-static segment). */
static int ref_route_matches(const route *r, const path *pa, hyi_slice *caps, int *ncaps)
{
    int nc = 0;
    for (int j = 0; j < r->nseg; j++) {
        const seg *s = &r->s[j];
        if (s->kind == K_DSTAR) {
            caps[nc++] = j < pa->nseg
                             ? (hyi_slice){pa->seg[j].off, (uint16_t)(pa->len - pa->seg[j].off)}
                             : (hyi_slice){(uint16_t)pa->len, 0};
            *ncaps = nc;
            return 1;
        }
        if (j >= pa->nseg || !seg_matches(s, pa->text + pa->seg[j].off, pa->seg[j].len))
            return 0;
        if (s->kind != K_STATIC)
            caps[nc++] = pa->seg[j];
    }
    *ncaps = nc;
    return r->nseg == pa->nseg;
}

static int kind_at(const route *r, int j)
{
    return j < r->nseg ? r->s[j].kind : K_END;
}

/* Is a preferred to b? */
static int ref_better(const route *a, const route *b)
{
    for (int j = 0;; j++) {
        int ka = kind_at(a, j), kb = kind_at(b, j);
        if (ka != kb)
            return ka < kb;
        if (ka == K_END || ka == K_DSTAR)
            break;
    }
    return a->seq < b->seq;
}

static void dump_and_abort(const route *rs, int nr, const path *pa, const char *fmt, ...)
{
    fprintf(stderr, "fuzz_route: disagreement on path \"%.*s\": ", (int)pa->len, pa->text);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntable (registration order):\n");
    for (int i = 0; i < nr; i++)
        if (rs[i].live)
            fprintf(stderr, "  [%d] \"%s\"\n", rs[i].seq, rs[i].text);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hyi_router *r;
    static int sub_tag;
    ref_init();
    if (!r && (hyi_router_create(&r) != 0 || hyi_router_add_subsystem(r, "s", &sub_tag) != 0))
        abort();
    input in = {data, size, 0};

    /* The table. */
    route rs[MAX_ROUTES];
    int nr = 1 + (int)take(&in, MAX_ROUTES);
    int seq = 0;
    hyi_route_spec specs[MAX_ROUTES];
    int nspecs = 0;
    route *order[MAX_ROUTES];
    for (int i = 0; i < nr; i++) {
        route *rt = &rs[i];
        memset(rt, 0, sizeof *rt);
        rt->nseg = (int)take(&in, MAX_SEGS + 1);
        for (int j = 0; j < rt->nseg; j++) {
            seg *s = &rt->s[j];
            s->kind = K_STATIC + (int)take(&in, 5);
            if (s->kind == K_DSTAR && j + 1 < rt->nseg)
                s->kind = K_STAR;
            s->ix = s->kind == K_STATIC   ? (int)take(&in, NWORDS)
                    : s->kind == K_REGEX ? (int)take(&in, NREGEXES)
                                         : 0;
        }
        render(rt, i * MAX_SEGS);
        int dup = 0;
        for (int k = 0; k < nspecs; k++)
            dup |= same_shape(order[k], rt);
        if (dup)
            continue;
        rt->seq = seq++;
        rt->live = 1;
        order[nspecs] = rt;
        specs[nspecs++] = (hyi_route_spec){rt->text, rt};
    }
    /* Half the time one batch, else one by one (each a rebuild). */
    hyi_route_error err;
    if (take(&in, 2)) {
        size_t failed;
        if (hyi_router_add_routes(r, "s", specs, (size_t)nspecs, &err, &failed) != 0) {
            fprintf(stderr, "add_routes: route %zu \"%s\": %s\n", failed, specs[failed].pattern,
                    err.message);
            abort();
        }
    } else {
        for (int k = 0; k < nspecs; k++) {
            if (hyi_router_add_route(r, "s", specs[k].pattern, specs[k].udata, &err) != 0) {
                fprintf(stderr, "add_route \"%s\": %s\n", specs[k].pattern, err.message);
                abort();
            }
            /* A duplicate shape is refused, whatever the parameter names. */
            route again = *order[k];
            render(&again, 100);
            int rc = hyi_router_add_route(r, "s", again.text, &again, NULL);
            if (rc != HY_EEXIST) {
                fprintf(stderr, "add_route \"%s\" after \"%s\": %d, not HY_EEXIST\n",
                        again.text, specs[k].pattern, rc);
                abort();
            }
        }
    }
    /* Remove a few. */
    unsigned nremove = take(&in, 3);
    for (unsigned k = 0; k < nremove && nspecs; k++) {
        route *victim = order[take(&in, (unsigned)nspecs)];
        if (!victim->live)
            continue;
        if (hyi_router_remove_route(r, "s", victim->text) != 0)
            abort();
        victim->live = 0;
    }

    /* The paths. */
    int np = 1 + (int)take(&in, MAX_PATHS);
    for (int q = 0; q < np; q++) {
        path pa;
        memcpy(pa.text, "s://", 4);
        pa.len = pa.rest = 4;
        pa.nseg = (int)take(&in, MAX_SEGS + 2);
        for (int j = 0; j < pa.nseg; j++) {
            const char *w = words[take(&in, NWORDS)];
            if (j)
                pa.text[pa.len++] = '/';
            size_t wl = strlen(w);
            pa.seg[j] = (hyi_slice){(uint16_t)pa.len, (uint16_t)wl};
            memcpy(pa.text + pa.len, w, wl);
            pa.len += wl;
        }

        /* Reference. */
        const route *best = NULL;
        hyi_slice bcaps[HYI_MAX_PARAMS];
        int bn = 0;
        for (int i = 0; i < nr; i++) {
            hyi_slice caps[HYI_MAX_PARAMS];
            int nc;
            if (!rs[i].live || !ref_route_matches(&rs[i], &pa, caps, &nc))
                continue;
            if (!best || ref_better(&rs[i], best)) {
                best = &rs[i];
                memcpy(bcaps, caps, sizeof caps);
                bn = nc;
            }
        }

        /* Router. */
        hyi_match m;
        int rc = hyi_router_match(r, pa.text, pa.len, &m);
        if (m.subsystem != &sub_tag)
            dump_and_abort(rs, nr, &pa, "subsystem udata wrong (rc %d)", rc);
        if (!best) {
            if (rc != HY_ENOROUTE)
                dump_and_abort(rs, nr, &pa, "router rc %d route \"%s\", reference: no route", rc,
                               rc == 0 && m.route ? ((route *)m.route)->text : "-");
            continue;
        }
        if (rc != 0)
            dump_and_abort(rs, nr, &pa, "router rc %d, reference route \"%s\"", rc, best->text);
        if (m.route != best)
            dump_and_abort(rs, nr, &pa, "router route \"%s\", reference route \"%s\"",
                           ((route *)m.route)->text, best->text);
        if ((int)m.nparams != bn)
            dump_and_abort(rs, nr, &pa, "route \"%s\": router %u captures, reference %d",
                           best->text, m.nparams, bn);
        for (int c = 0; c < bn; c++)
            if (m.params[c].off != bcaps[c].off || m.params[c].len != bcaps[c].len)
                dump_and_abort(rs, nr, &pa,
                               "route \"%s\" capture %d: router (%u,%u) \"%.*s\", reference (%u,%u)",
                               best->text, c, m.params[c].off, m.params[c].len,
                               (int)m.params[c].len, pa.text + m.params[c].off, bcaps[c].off,
                               bcaps[c].len);
    }

    /* A fresh subsystem for the next input. */
    if (hyi_router_remove_subsystem(r, "s") != 0 || hyi_router_add_subsystem(r, "s", &sub_tag) != 0)
        abort();
    return 0;
}
