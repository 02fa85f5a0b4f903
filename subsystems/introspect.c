/* Introspection, a built-in subsystem: kernel://stats, kernel://routes and
 * kernel://actors answer hy_ask with JSON (the shapes are in hypha.h, at
 * hy_introspect_attach).
 *
 * Why a built-in and not the core: nothing here needs the kernel's insides.
 * The figures come from hy_kernel_stats and hy_subsystems_list, the answer
 * goes back through hy_reply, and the routes are added to the kernel's own
 * subsystem with hy_kernel_routes_add (hypha_ext.h), the one door a built-in
 * has to kernel:// paths. So a kernel that does not attach it carries no
 * route and no code path for it, and this file, compiled with only the
 * public headers on its include path, shows the public API is enough to
 * build it.
 *
 * A request takes the normal send path and its handler runs on a worker like
 * any other, one at a time on the kernel subsystem's actor. Each handler
 * formats into a growing buffer, then replies; a plain hy_send to these
 * paths is answered by nobody and is still counted as handled.
 *
 * Figures are read without stopping the kernel: a moment's approximation, as
 * hy_kernel_stats says. The request being answered is itself sent and not
 * yet handled, so it shows in the totals and in the "kernel" entry (sent,
 * queued). kernel://stats takes its totals and its per-subsystem list in two
 * calls, so under load the two may differ by what happened in between. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"
#include "hypha_ext.h"

/* ------------------------------------------------------------ JSON buffer */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;
} jbuf;

static bool jb_reserve(jbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void jb_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !jb_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A JSON string: quotes, backslash and control characters escaped; bytes
 * >= 0x80 pass through (patterns and names are UTF-8). */
static void jb_str(jbuf *b, const char *s)
{
    if (!jb_reserve(b, 2 + strlen(s) * 6))
        return;
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"':  *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (*c < 0x20 || *c == 0x7f)
                o += sprintf(o, "\\u%04x", *c);
            else
                *o++ = (char)*c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

/* Send the buffer as the reply. Nobody to answer (a plain hy_send) is fine. */
static int jb_reply(hy_ctx *ctx, jbuf *b)
{
    int rc = b->oom ? HY_ENOMEM : hy_reply(ctx, b->p, b->len);
    free(b->p);
    return rc == HY_ENOENT ? 0 : rc;
}

/* ------------------------------------------------------------ kernel://stats */

static const char *const dead_names[HY_DEAD__COUNT] = {
#define DEAD_NAME_ROW(name, text) #name,
    HY_DEAD_TABLE(DEAD_NAME_ROW)
#undef DEAD_NAME_ROW
};

/* A dead-letter reason's name in lower case: "late_reply". */
static void jb_dead_name(jbuf *b, int reason)
{
    char name[32];
    size_t i = 0;
    for (const char *c = dead_names[reason]; *c && i + 1 < sizeof name; c++)
        name[i++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    name[i] = '\0';
    jb_str(b, name);
}

/* One subsystem's figures, as hy_subsystem_stats_get gives them. */
static void jb_subsys_stats(jbuf *b, const hy_subsystem_info *s)
{
    jb_printf(b, "{\"name\":");
    jb_str(b, s->name);
    jb_printf(b,
              ",\"sent\":%llu,\"handled\":%llu,\"failed\":%llu,\"dead\":%llu,"
              "\"queued\":%llu,\"actors\":%llu,\"refused\":%llu}",
              (unsigned long long)s->stats.sent, (unsigned long long)s->stats.handled,
              (unsigned long long)s->stats.failed, (unsigned long long)s->stats.dead,
              (unsigned long long)s->stats.queued, (unsigned long long)s->stats.actors,
              (unsigned long long)s->stats.refused);
}

/* What each route writes, from one snapshot of the subsystems. */
typedef void (*jb_emit_fn)(jbuf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n);

/* Take the snapshot, let emit write the answer, reply with it. */
static int reply_with_subsystems(hy_ctx *ctx, jb_emit_fn emit)
{
    hy_kernel *k = hy_ctx_kernel(ctx);
    hy_subsystem_info *subs;
    size_t n;
    int rc = hy_subsystems_list(k, &subs, &n);
    if (rc != 0)
        return rc;
    jbuf b = {0};
    emit(&b, k, subs, n);
    hy_free(subs);
    return jb_reply(ctx, &b);
}

static void emit_stats(jbuf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n)
{
    hy_stats s;
    hy_kernel_stats(k, &s);
    jb_printf(b,
              "{\"sent\":%llu,\"handled\":%llu,\"failed\":%llu,\"queued\":%llu,\"dead\":{",
              (unsigned long long)s.sent, (unsigned long long)s.handled,
              (unsigned long long)s.failed, (unsigned long long)s.queued);
    for (int r = 0; r < HY_DEAD__COUNT; r++) {
        jb_printf(b, r ? "," : "");
        jb_dead_name(b, r);
        jb_printf(b, ":%llu", (unsigned long long)s.dead[r]);
    }
    jb_printf(b,
              "},\"restarts\":%llu,\"stopped\":%llu,\"subsystems\":%llu,\"actors\":%llu,"
              "\"workers\":%u,\"steals\":%llu,\"parks\":%llu,"
              "\"pool\":{\"created\":%llu,\"reused\":%llu,\"in_use\":%llu,\"peak\":%llu,"
              "\"bytes_reserved\":%llu,\"reuse_rate\":%.4f},\"per_subsystem\":[",
              (unsigned long long)s.restarts, (unsigned long long)s.stopped,
              (unsigned long long)s.subsystems, (unsigned long long)s.actors, s.workers,
              (unsigned long long)s.steals, (unsigned long long)s.parks,
              (unsigned long long)s.pool_created, (unsigned long long)s.pool_reused,
              (unsigned long long)s.pool_in_use, (unsigned long long)s.pool_peak,
              (unsigned long long)s.pool_bytes_reserved, s.pool_reuse_rate);
    for (size_t i = 0; i < n; i++) {
        jb_printf(b, i ? "," : "");
        jb_subsys_stats(b, &subs[i]);
    }
    jb_printf(b, "]}");
}

static int stats_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return reply_with_subsystems(ctx, emit_stats);
}

/* ------------------------------------------------------------ kernel://routes */

static void emit_routes(jbuf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n)
{
    (void)k;
    jb_printf(b, "{\"subsystems\":[");
    for (size_t i = 0; i < n; i++) {
        jb_printf(b, "%s{\"name\":", i ? "," : "");
        jb_str(b, subs[i].name);
        jb_printf(b, ",\"routes\":[");
        for (size_t r = 0; r < subs[i].nroutes; r++) {
            jb_printf(b, r ? "," : "");
            jb_str(b, subs[i].routes[r]);
        }
        /* the scope each route requires, in the same order; null: none */
        jb_printf(b, "],\"scopes\":[");
        for (size_t r = 0; r < subs[i].nroutes; r++) {
            jb_printf(b, r ? "," : "");
            if (subs[i].scopes[r])
                jb_str(b, subs[i].scopes[r]);
            else
                jb_printf(b, "null");
        }
        jb_printf(b, "]}");
    }
    jb_printf(b, "]}");
}

static int routes_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return reply_with_subsystems(ctx, emit_routes);
}

/* ------------------------------------------------------------ kernel://actors */

static void emit_actors(jbuf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n)
{
    (void)k;
    uint64_t total = 0;
    jb_printf(b, "{\"subsystems\":[");
    for (size_t i = 0; i < n; i++) {
        const hy_subsystem_info *s = &subs[i];
        /* actors: its own and its active keyed ones (the kernel's keyed
         * actors are its subscriptions), so keyed is all but one */
        uint64_t keyed = s->stats.actors - 1;
        total += s->stats.actors;
        jb_printf(b, "%s{\"name\":", i ? "," : "");
        jb_str(b, s->name);
        jb_printf(b,
                  ",\"actors\":%llu,\"keyed\":%llu,\"active\":%llu,\"activations\":%llu,"
                  "\"passivations\":%llu,\"idle_timeout_ms\":%u,\"max_active\":%llu}",
                  (unsigned long long)s->stats.actors, (unsigned long long)keyed,
                  (unsigned long long)keyed, (unsigned long long)s->stats.activations,
                  (unsigned long long)s->stats.passivations, (unsigned)s->idle_timeout_ms,
                  (unsigned long long)s->max_active);
    }
    jb_printf(b, "],\"total\":%llu}", (unsigned long long)total);
}

static int actors_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return reply_with_subsystems(ctx, emit_actors);
}

/* ------------------------------------------------------------ attach */

int hy_introspect_attach(hy_kernel *k, const hy_introspect_opts *opts)
{
    /* In this order: kernel://routes lists them as added. */
    static const struct {
        unsigned bit;
        hy_route route;
    } all[] = {
        {HY_INTROSPECT_STATS, {.pattern = "stats", .handler = stats_route}},
        {HY_INTROSPECT_ROUTES, {.pattern = "routes", .handler = routes_route}},
        {HY_INTROSPECT_ACTORS, {.pattern = "actors", .handler = actors_route}},
    };
    enum { NALL = sizeof all / sizeof all[0] };
    const unsigned every = HY_INTROSPECT_STATS | HY_INTROSPECT_ROUTES | HY_INTROSPECT_ACTORS;
    unsigned want = opts && opts->routes ? opts->routes : every;
    if (want & ~every)
        return HY_EINVAL;
    hy_route routes[NALL];
    size_t n = 0;
    for (size_t i = 0; i < NALL; i++)
        if (want & all[i].bit)
            routes[n++] = all[i].route;
    /* All or none; a route already served (a second attach) is HY_EEXIST. */
    return hy_kernel_routes_add(k, routes, n);
}
