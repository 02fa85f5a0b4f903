/* Freeing unregistered subsystems (docs/ARCHITECTURE.md §3, "Unregistering").
 *
 * hy_subsystem_unregister withdraws a subsystem's routes and leaves it on the
 * kernel's list, marked `withdrawn`, then `reclaimable` as it returns. The
 * passivation thread, once a round, moves each such subsystem through three
 * steps and frees it after the last:
 *   1. its books balance (sent == handled + dead): every message it accepted
 *      has been taken from a mailbox or out of the journal's queue. Until
 *      then a handler may be running (unregister may have returned
 *      HY_EBUSY); the step is retried next round. Then its keyed actors are
 *      taken out of the actor table (no sender can look them up: the routes
 *      that lead to them are gone) and joined to its own actor.
 *   2. every actor is claimed as passivation claims one (CAS of `scheduled`
 *      0 -> 1, then the mailbox empty and no journal completion pending):
 *      no worker runs it, none will, and no queue holds it. A failed claim
 *      (a worker still ending its turn, or an actor yielded into a queue)
 *      is retried next round. Once all are claimed, the workers' quiescent
 *      counts are taken.
 *   3. every worker has passed a quiescent point since (so none still reads
 *      a mailbox head in the end-of-turn handshake, or a route binding of a
 *      message it released), and the passivation limbo holds none of its
 *      actors. A router synchronize then waits out hy_match calls that read
 *      a binding, and the subsystem, its actors, its replay router and its
 *      bindings are freed, its counters folded into the kernel's `retired_*`
 *      so hy_kernel_stats never goes back.
 * Running on the passivation thread makes every step sequential with its
 * sweeps: the sweep's marks, batch and view of the subsystems never see a
 * subsystem freed under them. */
#include <stdlib.h>

#include "kernel.h"

/* Step 1's second half: the subsystem's keyed actors out of the table, onto
 * its unclaimed list with its own actor. */
static void take_actors(hy_kernel *k, hyi_subsys *sub)
{
    for (size_t si = 0; si < HYI_ACTOR_SEGMENTS; si++) {
        hyi_actor_segment *s = &k->segments[si];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets; b++) {
            for (hyi_actor **p = &s->buckets[b]; *p;) {
                hyi_actor *a = *p;
                if (a->sub != sub) {
                    p = &a->table_next;
                    continue;
                }
                *p = a->table_next;
                a->table_next = sub->reclaim_unclaimed;
                sub->reclaim_unclaimed = a;
                s->count--;
                /* a sender making an actor of this segment meanwhile makes it
                 * again (hyi_actor_get): harmless, and keeps the rule simple */
                s->removals++;
                /* relaxed: a statistic */
                atomic_fetch_sub_explicit(&sub->keyed_actors, 1, memory_order_relaxed);
            }
        }
        hyi_actor_segment_shrink(s); /* a large subsystem gone leaves buckets empty */
        pthread_mutex_unlock(&s->lock);
    }
    if (sub->actor) {
        sub->actor->table_next = sub->reclaim_unclaimed;
        sub->reclaim_unclaimed = sub->actor;
        sub->actor = NULL;
    }
    sub->reclaim_taken = true;
}

/* Claim a as passivation does (passivate.c, step 3): true when no worker
 * runs it or will. */
static bool claim(hy_kernel *k, hyi_actor *a)
{
    uint32_t expected = 0;
    /* seq_cst: the same total order as the workers' end-of-turn handshake;
     * its acquire half makes the last turn's writes visible here. */
    if (!atomic_compare_exchange_strong_explicit(&a->scheduled, &expected, 1,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return false;
    /* acquire (inside): pairs with the journal completion's release count,
     * its last use of the actor */
    if (hyi_mpscq_is_empty(&a->mailbox) && hyi_persist_in_journal(a) == 0)
        return true;
    hyi_actor_release(k, a); /* not idle after all: a later round tries again */
    return false;
}

/* Step 2: claim what is not claimed yet; true once all are. */
static bool claim_actors(hy_kernel *k, hyi_subsys *sub)
{
    hyi_actor **p = &sub->reclaim_unclaimed;
    while (*p) {
        hyi_actor *a = *p;
        if (!claim(k, a)) {
            p = &a->table_next;
            continue;
        }
        *p = a->table_next;
        a->table_next = sub->reclaim_claimed;
        sub->reclaim_claimed = a;
    }
    return sub->reclaim_unclaimed == NULL;
}

/* Steps 1 to 3 as far as they go now: true when sub may be freed. */
static bool reclaim_step(hy_kernel *k, hyi_subsys *sub)
{
    if (!sub->reclaim_qs) {
        if (!hyi_subsys_quiescent(sub))
            return false;
        if (!sub->reclaim_taken)
            take_actors(k, sub);
        if (!claim_actors(k, sub))
            return false;
        sub->reclaim_qs = malloc((k->nworkers ? k->nworkers : 1) * sizeof *sub->reclaim_qs);
        if (!sub->reclaim_qs)
            return false;
        hyi_sched_qs_snapshot(k, sub->reclaim_qs);
    }
    return hyi_sched_quiesced(k, sub->reclaim_qs) && !hyi_janitor_limbo_holds(k, sub);
}

static void free_actor_list(hy_kernel *k, hyi_actor *a)
{
    while (a) {
        hyi_actor *next = a->table_next;
        hyi_actor_free(k, a);
        a = next;
    }
}

/* Its actors and their states (state_free). */
static void free_actors(hy_kernel *k, hyi_subsys *s)
{
    if (s->actor)
        hyi_actor_free(k, s->actor);
    s->actor = NULL;
    free_actor_list(k, s->reclaim_unclaimed);
    free_actor_list(k, s->reclaim_claimed);
    s->reclaim_unclaimed = s->reclaim_claimed = NULL;
}

void hyi_subsys_free(hy_kernel *k, hyi_subsys *s)
{
    free_actors(k, s);
    hyi_persist_subsys_free(s);
    free(s->reclaim_qs);
    free(s);
}

/* Take sub off the kernel's lists (its bindings onto *routes) and fold its
 * counters into the retired ones. Caller holds registry_lock. */
static void unlink_subsys(hy_kernel *k, hyi_subsys *sub, hyi_route_binding **routes)
{
    for (hyi_subsys **p = &k->subsystems; *p; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    }
    k->nsubsystems--;
    for (hyi_route_binding **p = &k->routes; *p;) {
        hyi_route_binding *r = *p;
        if (r->sub != sub) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        r->next = *routes;
        *routes = r;
    }
    k->retired_sent += hyi_stat_load(&sub->sent);
    k->retired_handled += hyi_stat_load(&sub->handled);
    k->retired_failed += hyi_stat_load(&sub->failed);
    k->retired_dead += hyi_stat_load(&sub->dead);
}

/* The subsystems to reclaim (unregistered, and their unregister has
 * returned: it reads their counters until then), into a new array (*n of them); NULL when none or
 * out of memory (then *n says how many wait). */
static hyi_subsys **reclaimable_list(hy_kernel *k, size_t *n)
{
    *n = 0;
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *s = k->subsystems; s; s = s->next)
        *n += s->reclaimable;
    hyi_subsys **v = *n ? malloc(*n * sizeof *v) : NULL;
    size_t i = 0;
    for (hyi_subsys *s = k->subsystems; v && s; s = s->next)
        if (s->reclaimable)
            v[i++] = s;
    pthread_mutex_unlock(&k->registry_lock);
    return v;
}

bool hyi_reclaim_run(hy_kernel *k)
{
    size_t n;
    hyi_subsys **v = reclaimable_list(k, &n);
    if (!v)
        return n > 0;
    size_t ready = 0;
    for (size_t i = 0; i < n; i++)
        if (reclaim_step(k, v[i]))
            v[ready++] = v[i];
    bool waiting = ready < n;
    if (ready) {
        /* hy_match reads a binding inside a read section: wait those out */
        hyi_router_synchronize(k->router);
        /* States first: once stats no longer list it, its states are freed */
        for (size_t i = 0; i < ready; i++)
            free_actors(k, v[i]);
        hyi_route_binding *routes = NULL;
        pthread_mutex_lock(&k->registry_lock);
        for (size_t i = 0; i < ready; i++)
            unlink_subsys(k, v[i], &routes);
        pthread_mutex_unlock(&k->registry_lock);
        for (size_t i = 0; i < ready; i++)
            hyi_subsys_free(k, v[i]);
        while (routes) {
            hyi_route_binding *next = routes->next;
            hyi_route_binding_free(routes);
            routes = next;
        }
    }
    free(v);
    return waiting;
}
