/* The router's entry points and publishing.
 *
 * What readers see is one open-addressing map from subsystem name to that
 * subsystem's compiled table, whose slots are atomic pointers. A change
 * (serialized by the router's mutex) builds what it changes anew, one
 * subsystem's table, and stores it into that subsystem's slot in place: a
 * new subsystem fills an empty slot (or a tombstone), a removed one leaves a
 * tombstone, which probes step over. The writer then waits until no reader
 * can hold what the slot held before (epoch.c) and frees it. Only when the
 * map would pass half full, counting tombstones, is a new map built (twice
 * the live entries, at least), published with one atomic store and the old
 * one freed after the same wait. So a change costs O(routes of that
 * subsystem), amortized, whatever the number of subsystems, and matching
 * never waits.
 *
 * The writer's own view, the list of route records per subsystem in
 * registration order, hangs off each table (src) and is never touched by
 * readers. Route records (pattern text, compiled regexes) are shared between
 * consecutive tables and freed only after the last table using them. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "epoch.h"
#include "router_int.h"

#define NAME_SEED 0x6e616d65ull

/* Writer-side state of a subsystem, carried from table to table. */
typedef struct sub_src {
    hyi_route_rec **recs;  /* registration order */
    size_t n, cap;
} sub_src;

/* A subsystem as readers see it: immutable once published. */
typedef struct subtab {
    uint64_t hash;
    void *udata;
    sub_src *src;          /* the writer's; readers never follow it */
    hyi_table t;
    uint8_t name_len;
    char name[HYI_NAME_MAX + 1];
} subtab;

typedef struct snap {
    uint32_t mask;         /* slot has mask + 1 entries, at most half used */
    uint32_t count;        /* live entries; writer only */
    uint32_t used;         /* live entries and tombstones; writer only */
    _Atomic(subtab *) slot[];
} snap;

/* A removed subsystem's slot: never matches (no name is 255 bytes), so a
 * probe steps over it; refilled by a later add or dropped by a resize. */
static subtab tombstone = {.name_len = UINT8_MAX};
#define TOMB (&tombstone)

/* Generations come from one process-wide counter, so no two tables, even of
 * routers created at the same address, ever share a number. */
static _Atomic uint64_t generation_source = 1;

struct hyi_router {
    hyi_router_head head;  /* first: router.h's inline readers cast to it */
    _Atomic(snap *) cur;
    pthread_mutex_t lock;  /* serializes writers */
    uint64_t next_seq;
};

/* ------------------------------------------------------------------ snapshot */

/* A reader's lookup (inside a read section), and a writer's. */
static subtab *snap_find(const snap *s, const char *name, size_t len, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & s->mask;; i = (i + 1) & s->mask) {
        /* seq_cst: like the map load, ordered after the reader's announcement
         * (epoch.c), since what a slot held is freed after a synchronize. */
        subtab *st = atomic_load_explicit(&s->slot[i], memory_order_seq_cst);
        if (!st)
            return NULL;
        if (st->hash == h && st->name_len == len && hyi_eq(st->name, name, len))
            return st;
    }
}

/* The index of st's slot (st is in s). Writer only. */
static uint32_t snap_index(const snap *s, const subtab *st)
{
    uint32_t i = (uint32_t)st->hash & s->mask;
    /* relaxed: only writers store slots, and we hold the lock */
    while (atomic_load_explicit(&s->slot[i], memory_order_relaxed) != st)
        i = (i + 1) & s->mask;
    return i;
}

/* Put st into a map no reader sees yet. */
static void snap_put(snap *s, subtab *st)
{
    uint32_t i = (uint32_t)st->hash & s->mask;
    /* relaxed: s is not yet published; its publication releases it */
    while (atomic_load_explicit(&s->slot[i], memory_order_relaxed))
        i = (i + 1) & s->mask;
    atomic_store_explicit(&s->slot[i], st, memory_order_relaxed);
    s->count++;
    s->used++;
}

/* A new map holding old's live entries, with room for `extra` more while
 * staying at most a quarter full, so the next resize is as many adds away as
 * there are entries: amortized O(1) per add. */
static snap *snap_resized(const snap *old, uint32_t extra)
{
    uint64_t want = ((uint64_t)old->count + extra) * 4;
    uint64_t cap = 8;
    while (cap < want)
        cap *= 2;
    if (cap > ((uint64_t)1 << 31))
        return NULL;
    snap *s = calloc(1, sizeof *s + cap * sizeof s->slot[0]);
    if (!s)
        return NULL;
    s->mask = (uint32_t)cap - 1;
    for (uint32_t i = 0; i <= old->mask; i++) {
        /* relaxed: writer only, under the lock */
        subtab *st = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (st && st != TOMB)
            snap_put(s, st);
    }
    return s;
}

/* Readers are told of a change (the generation) and waited out. */
static void changed(hyi_router *r)
{
    /* seq_cst (both): after the slot or map store and before the wait below,
     * so a reader that still sees the old generation inside its section is one
     * that synchronize waits for, and a cached match stays usable until it
     * exits. */
    atomic_store_explicit(&r->head.generation,
                          atomic_fetch_add_explicit(&generation_source, 1, memory_order_seq_cst),
                          memory_order_seq_cst);
    hyi_epoch_synchronize();
}

/* Store `to` in slot i of the current map, in place; wait out every reader
 * that could still hold what the slot held. */
static void slot_publish(hyi_router *r, uint32_t i, subtab *to)
{
    /* relaxed: only writers store cur, and we hold the lock. */
    snap *s = atomic_load_explicit(&r->cur, memory_order_relaxed);
    /* seq_cst: S1 of epoch.c's argument; also releases the new table. */
    atomic_store_explicit(&s->slot[i], to, memory_order_seq_cst);
    changed(r);
}

/* Make s current, wait out the readers of the old one, free the old map. */
static void publish(hyi_router *r, snap *s)
{
    /* relaxed: only writers store cur, and we hold the lock. */
    snap *old = atomic_load_explicit(&r->cur, memory_order_relaxed);
    /* seq_cst: S1 of epoch.c's argument; also releases the new map. */
    atomic_store_explicit(&r->cur, s, memory_order_seq_cst);
    changed(r);
    free(old);
}

static void subtab_free(subtab *st, bool with_src)
{
    hyi_table_free(&st->t);
    if (with_src) {
        for (size_t i = 0; i < st->src->n; i++)
            hyi_route_rec_free(st->src->recs[i]);
        free(st->src->recs);
        free(st->src);
    }
    free(st);
}

/* ------------------------------------------------------------------ lifecycle */

int hyi_router_create(hyi_router **out)
{
    hyi_router *r = calloc(1, sizeof *r);
    snap *s = calloc(1, sizeof *s + 8 * sizeof s->slot[0]);
    if (!r || !s || pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        free(s);
        return hyi_fail(HY_ENOMEM, "router: out of memory");
    }
    s->mask = 7;
    atomic_init(&r->cur, s);
    /* relaxed: uniqueness is all that matters; r is published by the caller */
    atomic_init(&r->head.generation,
                atomic_fetch_add_explicit(&generation_source, 1, memory_order_relaxed));
    r->next_seq = 1;
    *out = r;
    return 0;
}

void hyi_router_destroy(hyi_router *r)
{
    if (!r)
        return;
    /* relaxed: the contract says no reader or writer runs any more. */
    snap *s = atomic_load_explicit(&r->cur, memory_order_relaxed);
    for (uint32_t i = 0; i <= s->mask; i++) {
        subtab *st = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (st && st != TOMB)
            subtab_free(st, true);
    }
    free(s);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The current snapshot, for a writer holding the lock. */
static snap *writer_snap(hyi_router *r)
{
    /* relaxed: writers are serialized by the lock, which orders them. */
    return atomic_load_explicit(&r->cur, memory_order_relaxed);
}

static subtab *writer_find(hyi_router *r, const char *name)
{
    size_t len = strnlen(name, HYI_NAME_MAX + 1);
    return snap_find(writer_snap(r), name, len, hyi_hash(name, len, NAME_SEED));
}

int hyi_router_add_subsystem(hyi_router *r, const char *name, void *udata)
{
    size_t len = name ? strnlen(name, HYI_NAME_MAX + 1) : 0;
    if (!r || !name || !hyi_subsystem_name_ok(name, len))
        return hyi_fail(HY_EINVAL, "subsystem name \"%.80s\" is not [a-z][a-z0-9_-]{0,63}",
                        name ? name : "(null)");
    subtab *st = calloc(1, sizeof *st);
    sub_src *src = calloc(1, sizeof *src);
    if (!st || !src || hyi_table_build(&st->t, NULL, 0, NULL) != 0) {
        free(st);
        free(src);
        return hyi_fail(HY_ENOMEM, "subsystem \"%s\": out of memory", name);
    }
    st->hash = hyi_hash(name, len, NAME_SEED);
    st->udata = udata;
    st->src = src;
    st->name_len = (uint8_t)len;
    memcpy(st->name, name, len + 1);

    int rc = 0;
    pthread_mutex_lock(&r->lock);
    snap *s = writer_snap(r);
    if (writer_find(r, name)) {
        rc = hyi_fail(HY_EEXIST, "subsystem \"%s\" is already registered", name);
    } else if ((uint64_t)(s->used + 1) * 2 > (uint64_t)s->mask + 1) {
        snap *ns = snap_resized(s, 1);
        if (!ns) {
            rc = hyi_fail(HY_ENOMEM, "subsystem \"%s\": out of memory", name);
        } else {
            snap_put(ns, st);
            publish(r, ns);
        }
    } else {
        /* In place: the first tombstone or empty slot of st's probe (st is
         * not in the map, so the probe reaches an empty slot). */
        uint32_t i = (uint32_t)st->hash & s->mask;
        subtab *at;
        /* relaxed: only writers store slots, and we hold the lock */
        while ((at = atomic_load_explicit(&s->slot[i], memory_order_relaxed)) && at != TOMB)
            i = (i + 1) & s->mask;
        s->count++;
        if (!at)
            s->used++;
        slot_publish(r, i, st);
    }
    pthread_mutex_unlock(&r->lock);
    if (rc)
        subtab_free(st, true);
    return rc;
}

/* ------------------------------------------------------------------ routes */

/* Publish a new table for st's subsystem built from recs[0..n). On success the
 * old table is gone and the caller owns nothing; recs becomes the src list. */
static int replace_table(hyi_router *r, subtab *st, hyi_route_rec **recs, size_t n,
                         size_t cap, size_t *dup)
{
    subtab *nt = malloc(sizeof *nt);
    if (!nt)
        return HY_ENOMEM;
    *nt = *st;
    int rc = hyi_table_build(&nt->t, recs, n, dup);
    if (rc) {
        free(nt);
        return rc;
    }
    slot_publish(r, snap_index(writer_snap(r), st), nt);
    /* No reader holds st any more; its records live on in the new table. */
    sub_src *src = st->src;
    if (src->recs != recs)
        free(src->recs);
    src->recs = recs;
    src->n = n;
    src->cap = cap;
    subtab_free(st, false);
    return 0;
}

static void fill_err(hyi_route_error *err, long off, const char *msg)
{
    if (err) {
        err->offset = off;
        snprintf(err->message, sizeof err->message, "%s", msg);
    }
}

int hyi_router_add_routes(hyi_router *r, const char *subsystem, const hyi_route_spec *routes,
                          size_t n, hyi_route_error *err, size_t *failed)
{
    if (!r || !subsystem || (n && !routes))
        return hyi_fail(HY_EINVAL, "router: NULL argument");
    /* Compile outside the lock: regexes (JIT) are the slow part, and pure. */
    hyi_route_rec **fresh = calloc(n ? n : 1, sizeof *fresh);
    if (!fresh)
        return hyi_fail(HY_ENOMEM, "router: out of memory");
    int rc = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if ((rc = hyi_pattern_compile(routes[i].pattern, &fresh[i], err)) != 0)
            goto out;
        fresh[i]->udata = routes[i].udata;
    }

    pthread_mutex_lock(&r->lock);
    subtab *st = writer_find(r, subsystem);
    if (!st) {
        pthread_mutex_unlock(&r->lock);
        fill_err(err, -1, "unknown subsystem");
        rc = hyi_fail(HY_ENOENT, "subsystem \"%.80s\" is not registered", subsystem);
        i = 0;
        goto out;
    }
    sub_src *src = st->src;
    size_t total = src->n + n, cap = src->cap;
    hyi_route_rec **recs = src->recs;
    if (total > cap) {
        cap = cap ? cap : 8;
        while (cap < total)
            cap *= 2;
        /* A fresh array: the old one stays valid if the build fails. */
        if (!(recs = malloc(cap * sizeof *recs))) {
            pthread_mutex_unlock(&r->lock);
            rc = hyi_fail(HY_ENOMEM, "router: out of memory");
            i = 0;
            goto out;
        }
        if (src->n)
            memcpy(recs, src->recs, src->n * sizeof *recs);
    }
    for (size_t k = 0; k < n; k++) {
        fresh[k]->seq = r->next_seq + k;
        recs[src->n + k] = fresh[k];
    }
    size_t dup = 0;
    rc = replace_table(r, st, recs, total, cap, &dup);
    if (rc == 0)
        r->next_seq += n;
    else if (recs != src->recs)
        free(recs);
    pthread_mutex_unlock(&r->lock);
    if (rc == HY_EEXIST) {
        i = dup - src->n;
        fill_err(err, -1, "a route of the same shape is already registered");
        rc = hyi_fail(HY_EEXIST, "pattern \"%.200s\": a route of the same shape is already "
                                 "registered in \"%.80s\"",
                      routes[i].pattern, subsystem);
        goto out;
    }
    if (rc) {
        i = 0;
        rc = hyi_fail(rc, "router: out of memory");
        goto out;
    }
    free(fresh);
    return 0;

out:
    if (failed)
        *failed = i;
    for (size_t k = 0; k < n; k++)
        hyi_route_rec_free(fresh[k]);
    free(fresh);
    return rc;
}

int hyi_router_add_route(hyi_router *r, const char *subsystem, const char *pattern,
                         void *udata, hyi_route_error *err)
{
    hyi_route_spec spec = {pattern, udata};
    return hyi_router_add_routes(r, subsystem, &spec, 1, err, NULL);
}

int hyi_router_remove_route(hyi_router *r, const char *subsystem, const char *pattern)
{
    if (!r || !subsystem || !pattern)
        return hyi_fail(HY_EINVAL, "router: NULL argument");
    int rc;
    pthread_mutex_lock(&r->lock);
    subtab *st = writer_find(r, subsystem);
    if (!st) {
        rc = hyi_fail(HY_ENOENT, "subsystem \"%.80s\" is not registered", subsystem);
        goto out;
    }
    sub_src *src = st->src;
    size_t k;
    for (k = 0; k < src->n && strcmp(src->recs[k]->text, pattern) != 0; k++)
        ;
    if (k == src->n) {
        rc = hyi_fail(HY_ENOENT, "pattern \"%.200s\" is not registered in \"%.80s\"", pattern,
                      subsystem);
        goto out;
    }
    hyi_route_rec **recs = malloc((src->n > 1 ? src->n - 1 : 1) * sizeof *recs);
    if (!recs) {
        rc = hyi_fail(HY_ENOMEM, "router: out of memory");
        goto out;
    }
    hyi_route_rec *gone = src->recs[k];
    memcpy(recs, src->recs, k * sizeof *recs);
    memcpy(recs + k, src->recs + k + 1, (src->n - k - 1) * sizeof *recs);
    rc = replace_table(r, st, recs, src->n - 1, src->n > 1 ? src->n - 1 : 1, NULL);
    if (rc) {
        free(recs);
        rc = hyi_fail(rc, "router: out of memory");
        goto out;
    }
    /* The old table, the last user of this record, is gone. */
    hyi_route_rec_free(gone);
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int hyi_router_remove_subsystem(hyi_router *r, const char *name)
{
    if (!r || !name)
        return hyi_fail(HY_EINVAL, "router: NULL argument");
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    subtab *st = writer_find(r, name);
    if (!st) {
        rc = hyi_fail(HY_ENOENT, "subsystem \"%.80s\" is not registered", name);
    } else {
        snap *s = writer_snap(r);
        s->count--;
        slot_publish(r, snap_index(s, st), TOMB);
        subtab_free(st, true);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ------------------------------------------------------------------ sections */

void hyi_router_synchronize(hyi_router *r)
{
    (void)r;
    hyi_epoch_synchronize();
}

/* ------------------------------------------------------------------ matching */

int hyi_router_match(hyi_router *r, const char *path, size_t len, hyi_match *m)
{
    hyi_path p;
    m->subsystem = NULL;
    m->route = NULL;
    m->nparams = 0;
    int rc = hyi_path_split(path, len, &p);
    if (HY_UNLIKELY(rc))
        return rc;
    uint64_t h = hyi_hash(path, p.name_len, NAME_SEED);
    hyi_reader *rd = hyi_epoch_enter();
    if (HY_UNLIKELY(!rd))
        return HY_ENOMEM;
    /* seq_cst: must follow the reader's announcement (epoch.c, load L). */
    const snap *s = atomic_load_explicit(&r->cur, memory_order_seq_cst);
    const subtab *st = snap_find(s, path, p.name_len, h);
    if (HY_UNLIKELY(!st)) {
        rc = HY_ENOROUTE;
    } else {
        m->subsystem = st->udata;
        rc = hyi_table_match(&st->t, path, &p, rd->md, m);
    }
    hyi_epoch_leave(rd);
    return rc;
}

size_t hyi_router_memory(hyi_router *r)
{
    pthread_mutex_lock(&r->lock);
    const snap *s = writer_snap(r);
    size_t b = sizeof *r + sizeof *s + (s->mask + 1ull) * sizeof s->slot[0];
    for (uint32_t i = 0; i <= s->mask; i++) {
        /* relaxed: we hold the lock, and only writers store slots */
        const subtab *st = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (!st || st == TOMB)
            continue;
        b += sizeof *st + st->t.bytes + sizeof *st->src + st->src->cap * sizeof(void *);
        for (size_t k = 0; k < st->src->n; k++)
            b += hyi_route_rec_bytes(st->src->recs[k]);
    }
    pthread_mutex_unlock(&r->lock);
    return b;
}
