/* The kernel's own subsystem, "kernel", and its routes: kernel://stats,
 * kernel://routes and kernel://actors answer hy_ask with JSON.
 *
 * They are ordinary routes of an ordinary (internal) subsystem, so a request
 * takes the normal send path and its handler runs on a worker like any other;
 * the answer goes back through hy_reply. The same subsystem owns every
 * subscription's actor (pubsub.c), which is why it exists from kernel open on.
 *
 * Handlers read the subsystem and route lists under k->registry_lock (held
 * only briefly by registration, stats and drain) and format into a growing
 * buffer, then reply; a plain hy_send to these paths is answered by nobody and
 * is still counted as handled.
 *
 * Figures are read without stopping the kernel (relaxed loads): a moment's
 * approximation, as hy_kernel_stats says. The request being answered is
 * itself sent and not yet handled, so it shows in the totals and in the
 * "kernel" entry (sent, queued). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

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

static uint64_t load_relaxed(_Atomic uint64_t *v)
{
    /* relaxed: statistics are a moment's approximation by contract */
    return atomic_load_explicit(v, memory_order_relaxed);
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

/* One subsystem's figures, as hy_subsystem_stats_get gives them. Caller holds
 * registry_lock. */
static void jb_subsys_stats(jbuf *b, hyi_subsys *s)
{
    uint64_t sent = load_relaxed(&s->sent), handled = load_relaxed(&s->handled);
    uint64_t dead = load_relaxed(&s->dead), done = handled + dead;
    jb_printf(b, "{\"name\":");
    jb_str(b, s->name);
    jb_printf(b,
              ",\"sent\":%llu,\"handled\":%llu,\"failed\":%llu,\"dead\":%llu,"
              "\"queued\":%llu,\"actors\":%llu}",
              (unsigned long long)sent, (unsigned long long)handled,
              (unsigned long long)load_relaxed(&s->failed), (unsigned long long)dead,
              (unsigned long long)(sent > done ? sent - done : 0),
              (unsigned long long)(1 + load_relaxed(&s->keyed_actors)));
}

static int stats_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    hy_kernel *k = hy_ctx_kernel(ctx);
    hy_stats s;
    hy_kernel_stats(k, &s);
    jbuf b = {0};
    jb_printf(&b,
              "{\"sent\":%llu,\"handled\":%llu,\"failed\":%llu,\"queued\":%llu,\"dead\":{",
              (unsigned long long)s.sent, (unsigned long long)s.handled,
              (unsigned long long)s.failed, (unsigned long long)s.queued);
    for (int r = 0; r < HY_DEAD__COUNT; r++) {
        jb_printf(&b, r ? "," : "");
        jb_dead_name(&b, r);
        jb_printf(&b, ":%llu", (unsigned long long)s.dead[r]);
    }
    jb_printf(&b,
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
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *sub = k->subsystems; sub; sub = sub->next) {
        jb_printf(&b, sub != k->subsystems ? "," : "");
        jb_subsys_stats(&b, sub);
    }
    pthread_mutex_unlock(&k->registry_lock);
    jb_printf(&b, "]}");
    return jb_reply(ctx, &b);
}

/* ------------------------------------------------------------ kernel://routes */

/* A subsystem's route patterns in registration order (k->routes is newest
 * first). Caller holds registry_lock. */
static void jb_patterns(jbuf *b, hy_kernel *k, hyi_subsys *sub)
{
    size_t n = 0;
    for (hyi_route_binding *r = k->routes; r; r = r->next)
        n += r->sub == sub;
    hyi_route_binding **v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        b->oom = true;
        return;
    }
    size_t i = n;
    for (hyi_route_binding *r = k->routes; r; r = r->next)
        if (r->sub == sub)
            v[--i] = r;
    jb_printf(b, "[");
    for (i = 0; i < n; i++) {
        jb_printf(b, i ? "," : "");
        jb_str(b, v[i]->pattern);
    }
    jb_printf(b, "]");
    free(v);
}

static int routes_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    hy_kernel *k = hy_ctx_kernel(ctx);
    jbuf b = {0};
    jb_printf(&b, "{\"subsystems\":[");
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *sub = k->subsystems; sub; sub = sub->next) {
        jb_printf(&b, "%s{\"name\":", sub != k->subsystems ? "," : "");
        jb_str(&b, sub->name);
        jb_printf(&b, ",\"routes\":");
        jb_patterns(&b, k, sub);
        jb_printf(&b, "}");
    }
    pthread_mutex_unlock(&k->registry_lock);
    jb_printf(&b, "]}");
    return jb_reply(ctx, &b);
}

/* ------------------------------------------------------------ kernel://actors */

static int actors_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    hy_kernel *k = hy_ctx_kernel(ctx);
    jbuf b = {0};
    uint64_t total = 0;
    jb_printf(&b, "{\"subsystems\":[");
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *sub = k->subsystems; sub; sub = sub->next) {
        uint64_t keyed = load_relaxed(&sub->keyed_actors);
        total += 1 + keyed;
        jb_printf(&b, "%s{\"name\":", sub != k->subsystems ? "," : "");
        jb_str(&b, sub->name);
        /* keyed: active keyed actors (the kernel's: subscriptions);
         * activations and passivations of keyed actors so far */
        jb_printf(&b,
                  ",\"actors\":%llu,\"keyed\":%llu,\"active\":%llu,\"activations\":%llu,"
                  "\"passivations\":%llu,\"idle_timeout_ms\":%u,\"max_active\":%llu}",
                  (unsigned long long)(1 + keyed), (unsigned long long)keyed,
                  (unsigned long long)keyed,
                  (unsigned long long)load_relaxed(&sub->activations),
                  (unsigned long long)load_relaxed(&sub->passivations),
                  sub->can_passivate ? sub->idle_timeout_ms : 0,
                  (unsigned long long)(sub->can_passivate ? sub->max_active : 0));
    }
    pthread_mutex_unlock(&k->registry_lock);
    jb_printf(&b, "],\"total\":%llu}", (unsigned long long)total);
    return jb_reply(ctx, &b);
}

/* ------------------------------------------------------------ registration */

int hyi_kernel_routes_init(hy_kernel *k)
{
    static const hy_route routes[] = {
        {.pattern = "stats", .handler = stats_route},
        {.pattern = "routes", .handler = routes_route},
        {.pattern = "actors", .handler = actors_route},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = HY_ARRAY_LEN(routes)};
    return hyi_subsystem_register_internal(k, "kernel", &def, &k->kernel_sub);
}
