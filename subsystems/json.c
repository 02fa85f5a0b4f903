/* The JSON both introspection and the HTTP gateway write (json.h). Moved
 * here from introspect.c unchanged, so kernel://stats and GET /stats are the
 * same bytes. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"
#include "json.h"

/* ------------------------------------------------------------ JSON buffer */

bool hyj_reserve(hyj_buf *b, size_t more)
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

void hyj_printf(hyj_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !hyj_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void hyj_str(hyj_buf *b, const char *s)
{
    if (!hyj_reserve(b, 2 + strlen(s) * 6))
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

/* ------------------------------------------------------------ kernel://stats */

static const char *const dead_names[HY_DEAD__COUNT] = {
#define DEAD_NAME_ROW(name, text) #name,
    HY_DEAD_TABLE(DEAD_NAME_ROW)
#undef DEAD_NAME_ROW
};

void hyj_dead_name(int reason, char name[32])
{
    size_t i = 0;
    for (const char *c = dead_names[reason]; *c && i + 1 < 32; c++)
        name[i++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    name[i] = '\0';
}

static void dead_name(hyj_buf *b, int reason)
{
    char name[32];
    hyj_dead_name(reason, name);
    hyj_str(b, name);
}

/* One subsystem's figures, as hy_subsystem_stats_get gives them. */
static void subsys_stats(hyj_buf *b, const hy_subsystem_info *s)
{
    hyj_printf(b, "{\"name\":");
    hyj_str(b, s->name);
    hyj_printf(b,
              ",\"sent\":%llu,\"handled\":%llu,\"failed\":%llu,\"dead\":%llu,"
              "\"queued\":%llu,\"actors\":%llu,\"refused\":%llu}",
              (unsigned long long)s->stats.sent, (unsigned long long)s->stats.handled,
              (unsigned long long)s->stats.failed, (unsigned long long)s->stats.dead,
              (unsigned long long)s->stats.queued, (unsigned long long)s->stats.actors,
              (unsigned long long)s->stats.refused);
}

void hyj_stats(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n)
{
    hy_stats s;
    hy_kernel_stats(k, &s);
    hyj_printf(b,
              "{\"sent\":%llu,\"handled\":%llu,\"failed\":%llu,\"queued\":%llu,\"dead\":{",
              (unsigned long long)s.sent, (unsigned long long)s.handled,
              (unsigned long long)s.failed, (unsigned long long)s.queued);
    for (int r = 0; r < HY_DEAD__COUNT; r++) {
        hyj_printf(b, r ? "," : "");
        dead_name(b, r);
        hyj_printf(b, ":%llu", (unsigned long long)s.dead[r]);
    }
    hyj_printf(b,
              "},\"restarts\":%llu,\"stopped\":%llu,\"subsystems\":%llu,\"actors\":%llu,"
              "\"workers\":%u,\"steals\":%llu,\"parks\":%llu,"
              "\"pool\":{\"created\":%llu,\"reused\":%llu,\"in_use\":%llu,\"peak\":%llu,"
              "\"bytes_reserved\":%llu,\"reuse_rate\":%.4f},"
              "\"journal\":{\"commits\":%llu,\"entries\":%llu,\"failed_commits\":%llu,"
              "\"map_used\":%llu,\"map_max\":%llu,\"writer_cpu_ns\":%llu},"
              "\"passivation\":{\"active\":%llu,\"passivations\":%llu},\"per_subsystem\":[",
              (unsigned long long)s.restarts, (unsigned long long)s.stopped,
              (unsigned long long)s.subsystems, (unsigned long long)s.actors, s.workers,
              (unsigned long long)s.steals, (unsigned long long)s.parks,
              (unsigned long long)s.pool_created, (unsigned long long)s.pool_reused,
              (unsigned long long)s.pool_in_use, (unsigned long long)s.pool_peak,
              (unsigned long long)s.pool_bytes_reserved, s.pool_reuse_rate,
              (unsigned long long)s.journal_commits, (unsigned long long)s.journal_entries,
              (unsigned long long)s.journal_failed_commits,
              (unsigned long long)s.journal_map_used, (unsigned long long)s.journal_map_max,
              (unsigned long long)s.journal_writer_cpu_ns,
              (unsigned long long)s.actors_active, (unsigned long long)s.passivations);
    for (size_t i = 0; i < n; i++) {
        hyj_printf(b, i ? "," : "");
        subsys_stats(b, &subs[i]);
    }
    hyj_printf(b, "]}");
}

/* ------------------------------------------------------------ kernel://routes */

void hyj_routes(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n)
{
    (void)k;
    hyj_printf(b, "{\"subsystems\":[");
    for (size_t i = 0; i < n; i++) {
        hyj_printf(b, "%s{\"name\":", i ? "," : "");
        hyj_str(b, subs[i].name);
        hyj_printf(b, ",\"routes\":[");
        for (size_t r = 0; r < subs[i].nroutes; r++) {
            hyj_printf(b, r ? "," : "");
            hyj_str(b, subs[i].routes[r]);
        }
        /* the scope each route requires, in the same order; null: none */
        hyj_printf(b, "],\"scopes\":[");
        for (size_t r = 0; r < subs[i].nroutes; r++) {
            hyj_printf(b, r ? "," : "");
            if (subs[i].scopes[r])
                hyj_str(b, subs[i].scopes[r]);
            else
                hyj_printf(b, "null");
        }
        /* which routes are read-only (never journaled), in the same order */
        hyj_printf(b, "],\"read_only\":[");
        for (size_t r = 0; r < subs[i].nroutes; r++)
            hyj_printf(b, "%s%s", r ? "," : "", subs[i].read_only[r] ? "true" : "false");
        hyj_printf(b, "]}");
    }
    hyj_printf(b, "]}");
}

/* ------------------------------------------------------------ kernel://actors */

void hyj_actors(hyj_buf *b, hy_kernel *k, const hy_subsystem_info *subs, size_t n)
{
    (void)k;
    uint64_t total = 0;
    hyj_printf(b, "{\"subsystems\":[");
    for (size_t i = 0; i < n; i++) {
        const hy_subsystem_info *s = &subs[i];
        /* actors: its own and its active keyed ones (the kernel's keyed
         * actors are its subscriptions), so keyed is all but one */
        uint64_t keyed = s->stats.actors - 1;
        total += s->stats.actors;
        hyj_printf(b, "%s{\"name\":", i ? "," : "");
        hyj_str(b, s->name);
        hyj_printf(b,
                  ",\"actors\":%llu,\"keyed\":%llu,\"active\":%llu,\"activations\":%llu,"
                  "\"passivations\":%llu,\"idle_timeout_ms\":%u,\"max_active\":%llu}",
                  (unsigned long long)s->stats.actors, (unsigned long long)keyed,
                  (unsigned long long)keyed, (unsigned long long)s->stats.activations,
                  (unsigned long long)s->stats.passivations, (unsigned)s->idle_timeout_ms,
                  (unsigned long long)s->max_active);
    }
    hyj_printf(b, "],\"total\":%llu}", (unsigned long long)total);
}

int hyj_document(hyj_buf *b, hy_kernel *k, hyj_emit_fn emit)
{
    hy_subsystem_info *subs;
    size_t n;
    int rc = hy_subsystems_list(k, &subs, &n);
    if (rc != 0)
        return rc;
    emit(b, k, subs, n);
    hy_free(subs);
    if (b->oom) {
        free(b->p);
        *b = (hyj_buf){0};
        return HY_ENOMEM;
    }
    return 0;
}
