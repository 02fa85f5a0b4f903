/* Passivation of keyed actors (docs/ARCHITECTURE.md §5): the janitor thread.
 *
 * Keyed actors are virtual: hyi_actor_get makes one at the first message to
 * its key (state_init, or a persistent actor's recovery), and this thread
 * passivates the ones that are idle or over their subsystem's cap: it saves
 * the state (a snapshot, or the subsystem's passivate callback), takes the
 * actor out of the table and frees it. The next message makes it again.
 *
 * Cost on the hot path: none per message. A worker copies the kernel's coarse
 * clock (k->coarse_ms, which this thread advances at each sweep) into the actor
 * once per turn; a sender's table lookup reads one more byte under the lock it
 * already holds.
 *
 * The sweep wakes every quarter of the smallest idle timeout (at least 10 ms,
 * 100 ms when only caps are set), or at once when an activation takes a
 * subsystem over its cap. It walks the table segment by segment and marks
 * candidates: idle longer than the timeout, or, for a subsystem over its cap
 * (or when the pool is near its cap), the least recently used (an age
 * threshold chosen by quickselect over the subsystem's ages) until it is back
 * under. Then, per batch of marked actors:
 *   1. mark: under the segment lock, `passivating` = 1 (skipping actors that
 *      are scheduled, stopped, or have messages in the journal's queue);
 *   2. hyi_router_synchronize: every send runs in a router read section, so
 *      afterwards each sender that found the actor before the mark has
 *      finished its push; a sender that finds it from now on sees the mark
 *      and clears it (the passivation is called off, see actor.c);
 *   3. claim: CAS scheduled 0 -> 1, so no worker runs it and no sender
 *      schedules it (a failed claim: busy, unmark). As the mailbox's consumer
 *      now, check it is empty and no journal delivery is pending; save the
 *      state (persistent actors' snapshots are saved SAVE_CHUNK at a time,
 *      in one journal transaction, the actors staying claimed till then);
 *      then, under the segment lock, take it out of the table if the mark
 *      is still there. Whatever goes wrong (a message, a failed save, a
 *      sender that called it off) gives the actor back with the end-of-turn
 *      handshake (hyi_actor_release), which schedules it if a message came.
 *   4. free, once every worker has passed a quiescent point (a worker that
 *      ended a turn of this actor just before the claim may still be reading
 *      its mailbox head in that handshake).
 * Not marked actors are never touched by this thread beyond the look under
 * the segment lock. The mark is held across the synchronize but the claim is
 * not: so a sender blocked in a bounded mailbox (inside its read section)
 * never waits for this thread, and messages meanwhile flow as usual.
 *
 * Why nothing is lost or reordered: a message pushed before the claim is seen
 * by step 3's emptiness check; one pushed after it comes from a sender that
 * found the actor either before the mark (step 2 waited for it: impossible)
 * or after (it cleared the mark: the removal is refused). A sender that finds
 * no actor makes a new one whose state is what step 3 saved (a sender that
 * began making its actor before a removal of its segment makes it again, see
 * hyi_actor_get). One sender's messages go through one lookup after another,
 * so they reach the old actor, then the new one, in order. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blocks.h"
#include "futex.h"
#include "kernel.h"

#define MIN_PERIOD_MS      10
#define CAP_ONLY_PERIOD_MS 100
#define BATCH              4096     /* marked actors per synchronize */
#define SAVE_CHUNK         256      /* persistent actors per snapshot transaction */
#define LAT_RING           1024     /* recent activation latencies kept */
#define PRESSURE_PERCENT   90       /* of pool_cap_bytes */
#define TRIM_MIN_BYTES     ((uint64_t)256 * 1024) /* a pool this small is not trimmed */

/* This round's view of one subsystem that can passivate. */
typedef struct jsub {
    hyi_subsys *sub;
    uint64_t quota;     /* LRU passivations still wanted this round */
    uint32_t threshold; /* LRU: ages >= this one are candidates */
    uint32_t *ages;     /* LRU scratch */
    size_t nages, cap_ages;
} jsub;

/* The batch and the limbo. Given back whenever a sweep leaves them empty:
 * a mass passivation grows them to thousands of entries, which idle rounds
 * do not need. Their storage comes from hyi_array_zalloc, so a large one
 * freed goes back to the system rather than into this thread's allocator
 * cache (where nothing this thread allocates later would reuse it). */
typedef struct vec {
    hyi_actor **v;
    size_t n, cap;
    bool mapped;
} vec;

struct hyi_janitor {
    pthread_t thread;
    bool started;
    _Atomic int stop;
    /* futex word: bumped by kicks and stop; the thread sleeps on it */
    _Atomic uint32_t seq;
    _Atomic uint32_t kicked;        /* 1 while a kick is pending */
    uint64_t origin_ns;             /* CLOCK_MONOTONIC_COARSE at open */
    uint32_t period_ms;

    /* thread-only scratch */
    jsub *subs;
    size_t nsubs, cap_subs;
    vec batch;
    vec limbo;                      /* passivated, waiting for quiescence */
    hyi_actor *claimed[SAVE_CHUNK]; /* claimed, their snapshots not yet saved */
    size_t nclaimed;
    uint64_t *limbo_qs;             /* workers' quiescent counts after them */

    /* relaxed counters: statistics only */
    _Atomic uint64_t activations, passivations, failed, aborted;
    /* sweeps ended (release) and the limbo's size then (relaxed): for a
     * caller that waits for passivation's memory to be back */
    _Atomic uint64_t sweeps;
    _Atomic size_t limbo_count;
    _Atomic uint64_t lat_next;
    _Atomic uint32_t lat[LAT_RING]; /* activation time, ticks (saturated) */
};

/* ---------------------------------------------------------------- policy */

int hy_passivate_discard(void *udata, const char *key, size_t key_len, void *state)
{
    (void)udata, (void)key, (void)key_len, (void)state;
    return 0;
}

void hyi_passivation_setup(hy_kernel *k, hyi_subsys *sub, const hy_subsystem_def *def)
{
    const hy_config *c = &k->config;
    uint32_t idle = def->idle_timeout_ms ? def->idle_timeout_ms : c->idle_timeout_ms;
    uint64_t cap = def->max_active_actors ? def->max_active_actors : c->max_active_actors;
    sub->idle_timeout_ms = idle == UINT32_MAX ? 0 : idle;
    sub->max_active = cap == UINT64_MAX ? 0 : cap;
    sub->passivate = def->persistent ? NULL : def->passivate;
    sub->can_passivate = (def->persistent || def->passivate) &&
                         (sub->idle_timeout_ms || sub->max_active);
    sub->jan_slot = -1;
}

/* ---------------------------------------------------------------- clock */

static uint32_t tick_clock(hy_kernel *k)
{
    uint32_t now = (uint32_t)((hyi_coarse_ns() - k->janitor->origin_ns) / 1000000u);
    /* relaxed: see coarse_ms in kernel.h */
    atomic_store_explicit(&k->coarse_ms, now, memory_order_relaxed);
    return now;
}

/* ---------------------------------------------------------------- activations */

void hyi_janitor_activated(hy_kernel *k, hyi_subsys *sub, uint64_t ticks, uint64_t active)
{
    hyi_janitor *j = k->janitor;
    /* relaxed: statistics; the ring's slots are independent samples */
    atomic_fetch_add_explicit(&j->activations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sub->activations, 1, memory_order_relaxed);
    uint64_t i = atomic_fetch_add_explicit(&j->lat_next, 1, memory_order_relaxed);
    atomic_store_explicit(&j->lat[i % LAT_RING], ticks > UINT32_MAX ? UINT32_MAX : (uint32_t)ticks,
                          memory_order_relaxed);
    if (HY_UNLIKELY(sub->can_passivate && sub->max_active && active > sub->max_active))
        hyi_janitor_kick(k); /* over the cap */
}

void hyi_janitor_kick(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    /* Once per round. relaxed exchange: the flag only limits wake-ups; the
     * futex word's release bump is what the thread's wait compares. */
    if (!atomic_exchange_explicit(&j->kicked, 1, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&j->seq, 1, memory_order_release);
        hyi_futex_wake(&j->seq, 1);
    }
}

uint64_t hyi_janitor_sweeps(hy_kernel *k)
{
    /* acquire: pairs with sweep's release increment, after its frees */
    return atomic_load_explicit(&k->janitor->sweeps, memory_order_acquire);
}

size_t hyi_janitor_limbo_count(hy_kernel *k)
{
    /* relaxed: a statistic; read after hyi_janitor_sweeps for a sweep's */
    return atomic_load_explicit(&k->janitor->limbo_count, memory_order_relaxed);
}

bool hyi_janitor_limbo_holds(hy_kernel *k, const hyi_subsys *sub)
{
    hyi_janitor *j = k->janitor;
    for (size_t i = 0; i < j->limbo.n; i++)
        if (j->limbo.v[i]->sub == sub)
            return true;
    return false;
}

void hyi_janitor_stats(hy_kernel *k, hy_stats *out)
{
    hyi_janitor *j = k->janitor;
    if (!j)
        return;
    /* relaxed: statistics are a moment's approximation */
    out->activations = atomic_load_explicit(&j->activations, memory_order_relaxed);
    out->passivations = atomic_load_explicit(&j->passivations, memory_order_relaxed);
    out->passivate_failed = atomic_load_explicit(&j->failed, memory_order_relaxed);
    out->passivate_aborted = atomic_load_explicit(&j->aborted, memory_order_relaxed);
    uint64_t n = atomic_load_explicit(&j->lat_next, memory_order_relaxed);
    if (n > LAT_RING)
        n = LAT_RING;
    if (n == 0)
        return;
    uint32_t *v = malloc(n * sizeof *v);
    if (!v)
        return;
    for (uint64_t i = 0; i < n; i++)
        v[i] = atomic_load_explicit(&j->lat[i], memory_order_relaxed);
    qsort(v, n, sizeof *v, hyi_cmp_u32);
    uint64_t p50 = v[(n - 1) / 2], p99 = v[(n - 1) * 99 / 100];
    free(v);
    /* ticks -> ns: the difference of two conversions is a span's length */
    const hyi_clock_origin *o = &k->clock_origin;
    uint64_t base = hyi_ticks_ns(o, o->ticks);
    out->activation_p50_ns = hyi_ticks_ns(o, o->ticks + p50) - base;
    out->activation_p99_ns = hyi_ticks_ns(o, o->ticks + p99) - base;
}

/* ---------------------------------------------------------------- helpers */

static bool vec_push(vec *v, hyi_actor *a)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        bool mapped;
        hyi_actor **p = hyi_array_zalloc(cap * sizeof *p, &mapped);
        if (!p)
            return false;
        if (v->n)
            memcpy(p, v->v, v->n * sizeof *p);
        hyi_array_free(v->v, v->cap * sizeof *p, v->mapped);
        v->v = p;
        v->cap = cap;
        v->mapped = mapped;
    }
    v->v[v->n++] = a;
    return true;
}

/* Its storage back, if it holds nothing. */
static void vec_give_back(vec *v)
{
    if (v->n || !v->v)
        return;
    hyi_array_free(v->v, v->cap * sizeof *v->v, v->mapped);
    *v = (vec){0};
}

/* The limbo's storage back if empty, and its size published. */
static void limbo_tidy(hyi_janitor *j)
{
    vec_give_back(&j->limbo);
    /* relaxed: see limbo_count */
    atomic_store_explicit(&j->limbo_count, j->limbo.n, memory_order_relaxed);
}

static void count(_Atomic uint64_t *c)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Free the limbo once no worker can still touch its actors; wait for that
 * only when `wait` (else try for a moment: a worker in a long handler keeps
 * the limbo, and passivation goes on, until it ends its turn). */
static void flush_limbo(hy_kernel *k, bool wait)
{
    hyi_janitor *j = k->janitor;
    if (!j->limbo.n)
        return;
    for (unsigned tries = 0; !hyi_sched_quiesced(k, j->limbo_qs); tries++) {
        if (!wait && tries >= 8)
            return;
        if (tries < 16) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    for (size_t i = 0; i < j->limbo.n; i++)
        hyi_actor_free(k, j->limbo.v[i]);
    j->limbo.n = 0;
}

/* After a batch: the limbo's snapshot is taken anew (it covers every claim so
 * far, and a worker that passed a quiescent point since the old one passes
 * the next as soon), and the limbo freed if the workers allow it now. */
static void settle_limbo(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    if (!j->limbo.n)
        return;
    hyi_sched_qs_snapshot(k, j->limbo_qs);
    flush_limbo(k, false);
}

/* The subsystems that can passivate, with this round's LRU quota; the
 * period until the next round. */
static void load_subsystems(hy_kernel *k, bool pressure)
{
    hyi_janitor *j = k->janitor;
    j->nsubs = 0;
    uint32_t period = 0;
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *s = k->subsystems; s; s = s->next) {
        s->jan_slot = -1;
        if (!s->can_passivate)
            continue;
        if (j->nsubs == j->cap_subs) {
            size_t cap = j->cap_subs ? j->cap_subs * 2 : 8;
            jsub *p = realloc(j->subs, cap * sizeof *p);
            if (!p)
                break;
            memset(p + j->cap_subs, 0, (cap - j->cap_subs) * sizeof *p);
            j->subs = p;
            j->cap_subs = cap;
        }
        jsub *js = &j->subs[j->nsubs];
        s->jan_slot = (int)j->nsubs++;
        js->sub = s;
        js->nages = 0;
        /* relaxed: a statistic, good enough for a quota */
        uint64_t active = atomic_load_explicit(&s->keyed_actors, memory_order_relaxed);
        js->quota = s->max_active && active > s->max_active ? active - s->max_active : 0;
        uint64_t eighth = active / 8 ? active / 8 : active;
        if (pressure && eighth > js->quota)
            js->quota = eighth;
        if (s->idle_timeout_ms) {
            uint32_t p = s->idle_timeout_ms / 4 > MIN_PERIOD_MS ? s->idle_timeout_ms / 4
                                                                 : MIN_PERIOD_MS;
            if (!period || p < period)
                period = p;
        }
    }
    pthread_mutex_unlock(&k->registry_lock);
    j->period_ms = period ? period : CAP_ONLY_PERIOD_MS;
}

/* The pool near its cap with most of its objects live (it never gives slabs
 * back, so bytes reserved alone would stay "near the cap" after one burst). */
static bool pool_pressure(hy_kernel *k)
{
    size_t cap = k->config.pool_cap_bytes;
    if (!cap)
        return false;
    hyi_pool_stats ps;
    hyi_pool_get_stats(k->pool, &ps);
    return ps.bytes_reserved > cap / 100 * PRESSURE_PERCENT && ps.in_use * 2 > ps.created;
}

/* quickselect (Hoare's FIND): the value of rank r (0-based, ascending) in
 * v[0..n), n > 0; reorders v. */
static uint32_t select_rank(uint32_t *v, size_t n, size_t r)
{
    long lo = 0, hi = (long)n - 1, want = (long)r;
    while (lo < hi) {
        uint32_t pivot = v[want];
        long i = lo, jj = hi;
        do {
            while (v[i] < pivot)
                i++;
            while (pivot < v[jj])
                jj--;
            if (i <= jj) {
                uint32_t t = v[i];
                v[i] = v[jj];
                v[jj] = t;
                i++;
                jj--;
            }
        } while (i <= jj);
        if (jj < want)
            lo = i;
        if (want < i)
            hi = jj;
    }
    return v[want];
}

static uint32_t age_of(hyi_actor *a, uint32_t now)
{
    /* relaxed: an age hint (see last_active_ms) */
    return now - atomic_load_explicit(&a->last_active_ms, memory_order_relaxed);
}

/* For each subsystem over its cap: the age from which its actors go. */
static void choose_lru(hy_kernel *k, uint32_t now)
{
    hyi_janitor *j = k->janitor;
    bool any = false;
    for (size_t i = 0; i < j->nsubs; i++)
        any |= j->subs[i].quota > 0;
    if (!any)
        return;
    for (size_t si = 0; si < HYI_ACTOR_SEGMENTS; si++) {
        hyi_actor_segment *s = &k->segments[si];
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->cap; i++) {
            hyi_actor *a = s->slots[i].actor;
            if (a) {
                int slot = a->sub->jan_slot;
                if (slot < 0 || !j->subs[slot].quota)
                    continue;
                jsub *js = &j->subs[slot];
                if (js->nages == js->cap_ages) {
                    size_t cap = js->cap_ages ? js->cap_ages * 2 : 1024;
                    uint32_t *p = realloc(js->ages, cap * sizeof *p);
                    if (!p)
                        continue;
                    js->ages = p;
                    js->cap_ages = cap;
                }
                js->ages[js->nages++] = age_of(a, now);
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    for (size_t i = 0; i < j->nsubs; i++) {
        jsub *js = &j->subs[i];
        if (!js->quota || !js->nages) {
            js->quota = 0;
            continue;
        }
        if (js->quota > js->nages)
            js->quota = js->nages;
        /* the quota oldest: ages of rank >= nages - quota */
        js->threshold = select_rank(js->ages, js->nages, js->nages - js->quota);
    }
    /* A wave of cap passivations over, give back the ages it grew. */
    for (size_t i = 0; i < j->nsubs; i++) {
        jsub *js = &j->subs[i];
        if (js->cap_ages > 1024 && js->cap_ages / 4 > js->nages) {
            free(js->ages);
            js->ages = NULL;
            js->cap_ages = 0;
        }
    }
}

/* ---------------------------------------------------------------- passivation */

/* Claim a marked actor (step 3): false, with the actor given back, when it is
 * busy, has a message or a journal delivery pending. */
static bool claim_idle(hy_kernel *k, hyi_actor *a)
{
    hyi_janitor *j = k->janitor;
    uint32_t expected = 0;
    /* seq_cst: the claim, in the same total order as the senders' flag
     * exchange and the workers' end-of-turn handshake; its acquire half
     * makes the last turn's state visible here. */
    if (!atomic_compare_exchange_strong_explicit(&a->scheduled, &expected, 1,
                                                 memory_order_seq_cst, memory_order_relaxed)) {
        hyi_actor_unmark(k, a); /* busy: running or queued */
        return false;
    }
    /* acquire (inside): pairs with the journal completion's release
     * count, so its push (and any read it released) is visible to the
     * emptiness check below. */
    if (!hyi_mpscq_is_empty(&a->mailbox) || hyi_persist_in_journal(a) != 0) {
        hyi_actor_unmark(k, a);
        hyi_actor_release(k, a);
        count(&j->aborted);
        return false;
    }
    return true;
}

/* The rest of step 3 for a claimed actor whose state was saved (save_rc 0):
 * out of the table unless a sender called it off, then into the limbo. */
static void finish_passivation(hy_kernel *k, hyi_actor *a, int save_rc)
{
    hyi_janitor *j = k->janitor;
    if (save_rc != 0) {
        hyi_actor_unmark(k, a);
        hyi_actor_release(k, a);
        count(&j->failed);
        return;
    }
    if (!hyi_actor_remove_marked(k, a)) {
        hyi_actor_release(k, a); /* a sender called it off */
        count(&j->aborted);
        return;
    }
    if (!vec_push(&j->limbo, a)) {
        /* No room to defer the free: wait for the workers now (a new
         * snapshot also covers the limbo's actors). */
        hyi_sched_qs_snapshot(k, j->limbo_qs);
        while (!hyi_sched_quiesced(k, j->limbo_qs))
            sched_yield();
        hyi_actor_free(k, a);
    }
    count(&j->passivations);
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&a->sub->passivations, 1, memory_order_relaxed);
}

/* Claimed persistent actors: their snapshots in one journal transaction
 * (one per actor made the journal's write rate, and with it the pages LMDB
 * cannot reuse while a reader is descheduled, grow with passivations). */
static void save_claimed(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    if (!j->nclaimed)
        return;
    int rcs[SAVE_CHUNK];
    hyi_persist_passivate_many(k, j->claimed, j->nclaimed, rcs);
    for (size_t i = 0; i < j->nclaimed; i++)
        finish_passivation(k, j->claimed[i], rcs[i]);
    j->nclaimed = 0;
}

/* Steps 2 and 3 of the top comment for the marked actors in the batch.
 * Persistent actors stay claimed until SAVE_CHUNK of them are saved together;
 * a message to one meanwhile waits in its mailbox (the release schedules
 * it). */
static void passivate_batch(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    if (!j->batch.n)
        return;
    hyi_router_synchronize(k->router);
    for (size_t i = 0; i < j->batch.n; i++) {
        hyi_actor *a = j->batch.v[i];
        if (!claim_idle(k, a))
            continue;
        if (!a->sub->persistent) {
            int rc = a->sub->passivate(a->sub->udata, a->key, a->key_len, a->state);
            finish_passivation(k, a, rc ? HY_EHANDLER : 0);
            continue;
        }
        j->claimed[j->nclaimed++] = a;
        if (j->nclaimed == SAVE_CHUNK)
            save_claimed(k);
    }
    save_claimed(k);
    j->batch.n = 0;
}

/* After passivations: give the allocator back the message pool's slabs
 * that hold nothing live, when most of the pool is free (what a burst grew
 * it by). The walk is over the free objects under each class's lock, so it
 * is not run while the pool is mostly in use. */
static void trim_pool(hy_kernel *k)
{
    hyi_pool_stats ps;
    hyi_pool_get_stats(k->pool, &ps);
    /* what is in use, each object counted at the smallest class's 80 bytes
     * (64 and a header), fills under a quarter of it */
    if (ps.bytes_reserved > TRIM_MIN_BYTES && ps.in_use * 80 * 4 < ps.bytes_reserved)
        hyi_pool_trim(k->pool);
}

/* One sweep over the table. */
static void sweep(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    /* relaxed: this thread's own counter */
    uint64_t passivations_before = atomic_load_explicit(&j->passivations, memory_order_relaxed);
    flush_limbo(k, false);
    uint32_t now = tick_clock(k);
    load_subsystems(k, pool_pressure(k));
    if (!j->nsubs)
        return;
    choose_lru(k, now);
    for (size_t si = 0; si < HYI_ACTOR_SEGMENTS; si++) {
        hyi_actor_segment *s = &k->segments[si];
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->cap; i++) {
            hyi_actor *a = s->slots[i].actor;
            if (a) {
                hyi_subsys *sub = a->sub;
                if (sub->jan_slot < 0 || a->passivating)
                    continue;
                jsub *js = &j->subs[sub->jan_slot];
                uint32_t age = age_of(a, now);
                bool idle = sub->idle_timeout_ms && age > sub->idle_timeout_ms;
                bool lru = !idle && js->quota && age >= js->threshold;
                if (!idle && !lru)
                    continue;
                /* relaxed: hints that skip busy actors early; step 3 decides */
                if (atomic_load_explicit(&a->scheduled, memory_order_relaxed) ||
                    atomic_load_explicit(&a->stopped, memory_order_relaxed) ||
                    hyi_persist_in_journal(a))
                    continue;
                if (!vec_push(&j->batch, a))
                    continue;
                a->passivating = 1;
                if (lru)
                    js->quota--;
                else if (js->quota && age >= js->threshold)
                    js->quota--; /* idle and among the oldest: counts for both */
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (j->batch.n >= BATCH) {
            passivate_batch(k);
            settle_limbo(k);
        }
        /* acquire: pairs with hyi_janitor_stop's release store */
        if (atomic_load_explicit(&j->stop, memory_order_acquire))
            break;
    }
    passivate_batch(k);
    settle_limbo(k);
    vec_give_back(&j->batch);
    if (atomic_load_explicit(&j->passivations, memory_order_relaxed) != passivations_before) {
        trim_pool(k);
        /* What the sweep freed (shrunk slot arrays, the batch's and the pool's
         * arrays) would otherwise wait in this thread's allocator cache
         * until the next passivation. */
        hyi_thread_cache_flush();
    }
}

/* Some subsystem still over its cap (busy actors were skipped): sweep again
 * soon rather than after a whole period. */
static bool still_over(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    for (size_t i = 0; i < j->nsubs; i++) {
        hyi_subsys *s = j->subs[i].sub;
        /* relaxed: a statistic, good enough for a hint */
        if (s->max_active &&
            atomic_load_explicit(&s->keyed_actors, memory_order_relaxed) > s->max_active)
            return true;
    }
    return false;
}

/* Sleep ms until the next round, or less if kicked or stopped (a bump of
 * j->seq from `seq`). Actors left in the limbo (a worker was between
 * quiescent points when the round ended) are freed as soon as the workers
 * allow: every MIN_PERIOD_MS meanwhile, rather than a whole period later,
 * which with a long idle timeout kept their memory for seconds. */
static void wait_next_round(hy_kernel *k, uint32_t seq, uint32_t ms)
{
    hyi_janitor *j = k->janitor;
    /* relaxed: a kick's or stop's bump, read to end the wait early */
    while (j->limbo.n && ms > MIN_PERIOD_MS &&
           atomic_load_explicit(&j->seq, memory_order_relaxed) == seq) {
        struct timespec ts = {0, MIN_PERIOD_MS * 1000000L};
        hyi_futex_wait(&j->seq, seq, &ts);
        ms -= MIN_PERIOD_MS;
        flush_limbo(k, false);
        limbo_tidy(j);
    }
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    hyi_futex_wait(&j->seq, seq, &ts);
}

static void *janitor_main(void *arg)
{
    hy_kernel *k = arg;
    hyi_janitor *j = k->janitor;
    /* acquire: pairs with hyi_janitor_stop's release store */
    while (!atomic_load_explicit(&j->stop, memory_order_acquire)) {
        /* relaxed: the flag only limits kicks (see hyi_janitor_activated) */
        atomic_store_explicit(&j->kicked, 0, memory_order_relaxed);
        /* acquire: a kick's bump after this makes the wait return at once */
        uint32_t seq = atomic_load_explicit(&j->seq, memory_order_acquire);
        /* Before the sweep, which reloads its view of the subsystems: none
         * it holds from the last round is freed under it. */
        bool reclaiming = hyi_reclaim_run(k);
        sweep(k);
        limbo_tidy(j);
        /* release: what this sweep freed happens before a reader's acquire */
        atomic_fetch_add_explicit(&j->sweeps, 1, memory_order_release);
        uint32_t ms = still_over(k) ? 1 : j->period_ms;
        if (reclaiming && ms > MIN_PERIOD_MS)
            ms = MIN_PERIOD_MS;
        wait_next_round(k, seq, ms);
    }
    flush_limbo(k, true); /* the workers still run: they reach quiescent points */
    return NULL;
}

/* ---------------------------------------------------------------- life */

int hyi_janitor_init(hy_kernel *k)
{
    hyi_janitor *j = calloc(1, sizeof *j);
    if (!j)
        return HY_ENOMEM;
    j->origin_ns = hyi_coarse_ns();
    j->period_ms = CAP_ONLY_PERIOD_MS;
    k->janitor = j;
    return 0;
}

int hyi_janitor_start(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    if (j->started)
        return 0;
    if (!j->limbo_qs) {
        j->limbo_qs = calloc(k->nworkers ? k->nworkers : 1, sizeof *j->limbo_qs);
        if (!j->limbo_qs)
            return HY_ENOMEM;
    }
    int rc = pthread_create(&j->thread, NULL, janitor_main, k);
    if (rc != 0)
        return hyi_fail(HY_ESYS, "starting the passivation thread: %s", strerror(rc));
    j->started = true;
    return 0;
}

void hyi_janitor_stop(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    if (!j || !j->started)
        return;
    /* release: the thread that sees stop sees everything before it */
    atomic_store_explicit(&j->stop, 1, memory_order_release);
    /* release: as a kick's bump */
    atomic_fetch_add_explicit(&j->seq, 1, memory_order_release);
    hyi_futex_wake(&j->seq, 1);
    pthread_join(j->thread, NULL);
    j->started = false;
}

void hyi_janitor_free(hy_kernel *k)
{
    hyi_janitor *j = k->janitor;
    if (!j)
        return;
    for (size_t i = 0; i < j->cap_subs; i++)
        free(j->subs[i].ages);
    free(j->subs);
    hyi_array_free(j->batch.v, j->batch.cap * sizeof *j->batch.v, j->batch.mapped);
    hyi_array_free(j->limbo.v, j->limbo.cap * sizeof *j->limbo.v, j->limbo.mapped);
    free(j->limbo_qs);
    free(j);
    k->janitor = NULL;
}
