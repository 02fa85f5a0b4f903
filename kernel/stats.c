/* The kernel's figures: hy_kernel_stats, hy_subsystem_stats_get and
 * hy_subsystems_list.
 *
 * Every figure is read without stopping the kernel (relaxed loads of counters
 * that senders and workers bump), so under load it is a moment's
 * approximation, as the public header says. The subsystem list is walked
 * under registry_lock, which registration holds while it links a subsystem
 * in: the walk sees whole subsystems only. One function turns a subsystem's
 * counters into a hy_subsystem_stats, so every caller reports the same
 * figures. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

/* One subsystem's figures. Caller holds registry_lock (s stays on the list). */
static void subsys_stats(hyi_subsys *s, hy_subsystem_stats *out)
{
    out->sent = hyi_stat_load(&s->sent);
    out->handled = hyi_stat_load(&s->handled);
    out->failed = hyi_stat_load(&s->failed);
    out->dead = hyi_stat_load(&s->dead);
    /* Loaded apart, sent may lag what was handled since: never below 0. */
    uint64_t done = out->handled + out->dead;
    out->queued = out->sent > done ? out->sent - done : 0;
    out->actors = 1 + hyi_stat_load(&s->keyed_actors);
    out->activations = hyi_stat_load(&s->activations);
    out->passivations = hyi_stat_load(&s->passivations);
    out->refused = hyi_stat_load(&s->refused);
}

int hy_kernel_stats(hy_kernel *k, hy_stats *out)
{
    if (!k || !out)
        return hyi_fail(HY_EINVAL, "hy_kernel_stats: NULL argument");
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&k->registry_lock);
    /* Subsystems unregistered and freed since still count (reclaim.c). */
    out->sent = k->retired_sent;
    out->handled = k->retired_handled;
    out->failed = k->retired_failed;
    uint64_t dead_accepted = k->retired_dead;
    for (hyi_subsys *s = k->subsystems; s; s = s->next) {
        /* The internal "kernel" subsystem's messages count, but not it nor
         * its service actor: only its subscription actors (keyed_actors). */
        bool internal = s == k->kernel_sub;
        out->subsystems += !internal;
        out->sent += hyi_stat_load(&s->sent);
        out->handled += hyi_stat_load(&s->handled);
        out->failed += hyi_stat_load(&s->failed);
        dead_accepted += hyi_stat_load(&s->dead);
        out->actors += !internal + hyi_stat_load(&s->keyed_actors);
        if (!internal)
            out->actors_active += hyi_stat_load(&s->keyed_actors);
    }
    for (int r = 0; r < HY_DEAD__COUNT; r++)
        out->dead[r] = hyi_stat_load(&k->dead[r]);
    out->restarts = hyi_stat_load(&k->restarts);
    out->stopped = hyi_stat_load(&k->stopped);
    for (unsigned i = 0; i < k->nworkers; i++) {
        out->steals += hyi_stat_load(&k->workers[i].steals);
        out->parks += hyi_stat_load(&k->workers[i].parks);
    }
    out->workers = k->nworkers;
    pthread_mutex_unlock(&k->registry_lock);
    uint64_t done = out->handled + dead_accepted;
    out->queued = out->sent > done ? out->sent - done : 0;
    hyi_pool_stats ps;
    hyi_pool_get_stats(k->pool, &ps);
    out->pool_created = ps.created;
    out->pool_reused = ps.reused;
    out->pool_in_use = ps.in_use;
    out->pool_peak = ps.peak_in_use;
    out->pool_bytes_reserved = ps.bytes_reserved;
    out->pool_reuse_rate = ps.reuse_rate;
    hyi_persist_stats(k, out);
    hyi_janitor_stats(k, out);
    return 0;
}

int hy_subsystem_stats_get(hy_kernel *k, const char *name, hy_subsystem_stats *out)
{
    if (!k || !name || !out)
        return hyi_fail(HY_EINVAL, "hy_subsystem_stats_get: NULL argument");
    int rc = HY_ENOENT;
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *s = k->subsystems; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            subsys_stats(s, out);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&k->registry_lock);
    return rc == 0 ? 0 : hyi_fail(rc, "no subsystem '%s'", name);
}

/* Copy str to *text (advanced past it); NULL stays NULL. The list's strings
 * live in its own allocation: an unregistered subsystem is freed in the
 * background (reclaim.c), maybe while the caller still reads them. */
static const char *copy_text(char **text, const char *str)
{
    if (!str)
        return NULL;
    size_t n = strlen(str) + 1;
    char *p = memcpy(*text, str, n);
    *text += n;
    return p;
}

/* A subsystem's route patterns into v, their scopes into scopes and
 * read-only flags into read_only, the strings copied to *text, in
 * registration order (k->routes is newest first); returns how many. Caller
 * holds registry_lock. O(routes) per subsystem, as the registry keeps no
 * index by subsystem: fine for what lists them. */
static size_t subsys_patterns(hy_kernel *k, hyi_subsys *s, const char **v,
                              const char **scopes, unsigned char *read_only, char **text)
{
    size_t n = 0;
    for (hyi_route_binding *r = k->routes; r; r = r->next)
        n += r->sub == s;
    size_t i = n;
    for (hyi_route_binding *r = k->routes; r; r = r->next) {
        if (r->sub == s) {
            v[--i] = copy_text(text, r->pattern);
            scopes[i] = copy_text(text, r->scope_name);
            read_only[i] = r->read_only;
        }
    }
    return n;
}

int hy_subsystems_list(hy_kernel *k, hy_subsystem_info **out, size_t *n)
{
    if (!out || !n)
        return hyi_fail(HY_EINVAL, "hy_subsystems_list: NULL argument");
    *out = NULL;
    *n = 0;
    if (!k)
        return hyi_fail(HY_EINVAL, "hy_subsystems_list: NULL kernel");
    pthread_mutex_lock(&k->registry_lock);
    /* Sized and filled under one hold of the lock, so the snapshot is of one
     * moment: registration cannot add a subsystem or route in between. */
    size_t nsubs = 0, nroutes = 0, ntext = 0;
    for (hyi_subsys *s = k->subsystems; s; s = s->next, nsubs++)
        ntext += strlen(s->name) + 1;
    for (hyi_route_binding *r = k->routes; r; r = r->next, nroutes++)
        ntext += strlen(r->pattern) + 1 + (r->scope_name ? strlen(r->scope_name) + 1 : 0);
    /* The info array, then every subsystem's route array, then the strings:
     * the struct holds pointers, so the arrays after it are aligned. */
    size_t size = nsubs * sizeof(hy_subsystem_info) + 2 * nroutes * sizeof(const char *) +
                  nroutes + ntext;
    hy_subsystem_info *info = malloc(size ? size : 1);
    if (!info) {
        pthread_mutex_unlock(&k->registry_lock);
        return hyi_fail(HY_ENOMEM, "hy_subsystems_list: %zu bytes", size);
    }
    const char **patterns = (const char **)(info + nsubs);
    const char **scopes = patterns + nroutes;
    unsigned char *read_only = (unsigned char *)(scopes + nroutes);
    char *text = (char *)(read_only + nroutes);
    size_t i = 0;
    for (hyi_subsys *s = k->subsystems; s; s = s->next, i++) {
        hy_subsystem_info *e = &info[i];
        memset(e, 0, sizeof *e);
        e->name = copy_text(&text, s->name);
        subsys_stats(s, &e->stats);
        e->routes = patterns;
        e->scopes = scopes;
        e->read_only = read_only;
        e->nroutes = subsys_patterns(k, s, patterns, scopes, read_only, &text);
        patterns += e->nroutes;
        scopes += e->nroutes;
        read_only += e->nroutes;
        e->internal = s == k->kernel_sub;
        e->idle_timeout_ms = s->can_passivate ? s->idle_timeout_ms : 0;
        e->max_active = s->can_passivate ? s->max_active : 0;
    }
    pthread_mutex_unlock(&k->registry_lock);
    *out = info;
    *n = nsubs;
    return 0;
}
