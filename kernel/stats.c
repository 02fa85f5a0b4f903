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
}

int hy_kernel_stats(hy_kernel *k, hy_stats *out)
{
    if (!k || !out)
        return hyi_fail(HY_EINVAL, "hy_kernel_stats: NULL argument");
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&k->registry_lock);
    uint64_t dead_accepted = 0;
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
