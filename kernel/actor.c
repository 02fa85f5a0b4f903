/* Actors and the keyed-actor table.
 *
 * An actor is a mailbox, a scheduled flag and a state pointer (see kernel.h);
 * a keyed actor also carries its key inline, so one allocation holds it all.
 *
 * The table maps (subsystem, key) to the keyed actor. It is split into
 * HYI_ACTOR_SEGMENTS segments, each a chained hash table under its own mutex:
 * a lookup locks one segment for a few dozen instructions, so senders to
 * different keys rarely meet, and a segment grows by itself (doubling) without
 * stopping the others, and shrinks as passivation empties it. The high bits
 * of the hash pick the segment, the low bits the bucket.
 *
 * Passivation (passivate.c) removes actors through the same locks: it marks an
 * actor (`passivating`) under its segment lock, and takes it out only if the
 * mark is still there. A sender that finds a marked actor clears the mark,
 * which calls the passivation off, and uses the actor as usual: the lookup
 * costs one more load, made under the lock it already holds. */
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "kernel.h"

#define INITIAL_BUCKETS 16

/* FNV-1a over the key, mixed with the subsystem's address so equal keys of
 * different subsystems spread apart; then a final avalanche so both the high
 * (segment) and low (bucket) bits are usable. */
static uint64_t key_hash(const hyi_subsys *sub, const char *key, size_t len)
{
    uint64_t h = hyi_fnv1a(HYI_FNV1A_SEED ^ (uint64_t)(uintptr_t)sub, key, len);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int hyi_actor_new(hy_kernel *k, hyi_subsys *sub, const char *key, size_t key_len,
                  uint64_t hash, hyi_actor **out)
{
    if (key_len > UINT16_MAX)
        return hyi_fail(HY_EINVAL, "key of %zu bytes", key_len);
    /* From 64 KiB slabs that go back to the allocator once empty (blocks.h):
     * a million actors passivated leave no allocator bookkeeping behind. */
    hyi_actor *a = hyi_block_alloc(HYI_ACTOR_SIZE(key_len));
    if (!a)
        return HY_ENOMEM;
    hyi_mpscq_init(&a->mailbox);
    /* relaxed: the actor is not shared yet; publishing it (table insert under
     * a mutex, or registration) orders this. */
    atomic_store_explicit(&a->scheduled, 0, memory_order_relaxed);
    a->key_len = (uint16_t)key_len;
    a->sub = sub;
    a->state = NULL;
    a->key_hash = hash;
    a->table_next = NULL;
    /* relaxed: ids need only be unique */
    a->id = atomic_fetch_add_explicit(&k->next_actor_id, 1, memory_order_relaxed);
    /* relaxed: not shared yet (as scheduled above) */
    atomic_store_explicit(&a->depth, 0, memory_order_relaxed);
    atomic_store_explicit(&a->stopped, 0, memory_order_relaxed);
    a->restarts_in_window = 0;
    a->bound = sub->bound;
    a->restart_window_start_ms = 0;
    a->arrival_gap = 0;
    if (key_len)
        memcpy(a->key, key, key_len);
    a->key[key_len] = '\0';
    int rc = hyi_actor_state_reset(a, key != NULL);
    if (rc != 0) {
        hyi_block_free(a, HYI_ACTOR_SIZE(key_len));
        return rc;
    }
    a->journal_id = a->journal_seq = 0;
    a->since_snapshot = 0;
    /* relaxed: not shared yet (as scheduled above); the clock is a hint */
    atomic_store_explicit(&a->last_active_ms,
                          atomic_load_explicit(&k->coarse_ms, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&a->journal_submitted, 0, memory_order_relaxed);
    atomic_store_explicit(&a->journal_completed, 0, memory_order_relaxed);
    a->held_last = NULL;
    a->passivating = 0;
    /* A persistent actor is rebuilt from the journal before anyone sees it. */
    if (HY_UNLIKELY(sub->recover != NULL)) {
        rc = sub->recover(k, a, key != NULL);
        if (rc != 0) {
            hyi_actor_free(k, a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

void hyi_actor_free(hy_kernel *k, hyi_actor *actor)
{
    hyi_mpsc_node *n;
    /* A message handled and still held in the list (a turn put back while
     * a push was in flight): no push is in flight any more, so this ends. */
    if (hyi_mpscq_holding(&actor->mailbox) && (n = hyi_mpscq_unhold(&actor->mailbox)) != NULL)
        hyi_msg_release(k, HYI_MSG_OF(n));
    while ((n = hyi_mpscq_pop(&actor->mailbox)) != NULL)
        hyi_msg_release(k, HYI_MSG_OF(n));
    if (actor->sub->state_free && actor->state)
        actor->sub->state_free(actor->sub->udata, actor->state);
    hyi_block_free(actor, HYI_ACTOR_SIZE(actor->key_len));
}

int hyi_actor_table_init(hy_kernel *k)
{
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        hyi_actor_segment *s = &k->segments[i];
        s->buckets = hyi_array_zalloc(INITIAL_BUCKETS * sizeof *s->buckets, &s->buckets_mapped);
        if (!s->buckets)
            return HY_ENOMEM; /* hyi_actor_table_free copes with the rest NULL */
        s->nbuckets = INITIAL_BUCKETS;
        s->count = 0;
        pthread_mutex_init(&s->lock, NULL);
    }
    return 0;
}

static hyi_actor_segment *segment_of(hy_kernel *k, uint64_t hash)
{
    return &k->segments[hash >> 56 & (HYI_ACTOR_SEGMENTS - 1)];
}

static hyi_actor *segment_find(hyi_actor_segment *s, hyi_subsys *sub, const char *key,
                               size_t len, uint64_t hash)
{
    for (hyi_actor *a = s->buckets[hash & (s->nbuckets - 1)]; a; a = a->table_next)
        if (a->key_hash == hash && a->sub == sub && a->key_len == len &&
            memcmp(a->key, key, len) == 0)
            return a;
    return NULL;
}

/* Rehash a segment into n buckets (a power of two): doubled when the chains
 * average more than one actor, shrunk (see segment_shrink) when passivation
 * left them mostly empty. Large bucket arrays are mappings of their own
 * (hyi_array_zalloc): one freed by the passivation thread's shrinking went
 * into that thread's allocator cache and stayed there. If the allocation
 * fails the table just keeps its size: still correct. */
static void segment_resize(hyi_actor_segment *s, size_t n)
{
    bool mapped;
    hyi_actor **b = hyi_array_zalloc(n * sizeof *b, &mapped);
    if (!b)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        hyi_actor *a = s->buckets[i];
        while (a) {
            hyi_actor *next = a->table_next;
            a->table_next = b[a->key_hash & (n - 1)];
            b[a->key_hash & (n - 1)] = a;
            a = next;
        }
    }
    hyi_array_free(s->buckets, s->nbuckets * sizeof *s->buckets, s->buckets_mapped);
    s->buckets = b;
    s->nbuckets = n;
    s->buckets_mapped = mapped;
}

/* Fewer actors than a quarter of the buckets (and more than the initial
 * buckets): worth shrinking. */
static inline bool segment_sparse(const hyi_actor_segment *s, size_t n)
{
    return n > INITIAL_BUCKETS && s->count < n / 4;
}

/* After removals: when sparse, shrink in one rehash to the size that has the
 * buckets at most half used (not below the initial count), so an emptied
 * segment is back at its initial size. */
void hyi_actor_segment_shrink(hyi_actor_segment *s)
{
    size_t n = s->nbuckets;
    while (segment_sparse(s, n))
        n /= 2;
    if (n != s->nbuckets)
        segment_resize(s, n);
}

/* Under s->lock: a sender found `a`. A mark means the passivation thread means
 * to passivate it; clearing the mark calls that off (see the top). */
static inline hyi_actor *claim_found(hyi_actor *a)
{
    if (HY_UNLIKELY(a && a->passivating))
        a->passivating = 0;
    return a;
}

int hyi_actor_get(hy_kernel *k, hyi_subsys *sub, const char *key, size_t key_len,
                  hyi_actor **out)
{
    uint64_t hash = key_hash(sub, key, key_len);
    hyi_actor_segment *s = segment_of(k, hash);
    pthread_mutex_lock(&s->lock);
    hyi_actor *a = claim_found(segment_find(s, sub, key, key_len, hash));
    uint64_t removals = s->removals;
    pthread_mutex_unlock(&s->lock);
    if (HY_LIKELY(a != NULL)) {
        *out = a;
        return 0;
    }
    for (;;) {
        /* First message to this key (or the first since its passivation).
         * state_init and recovery are user code and I/O: run them outside the
         * lock, then insert unless another sender won the race. */
        hyi_actor *fresh;
        uint64_t t0 = hyi_clock_ticks();
        int rc = hyi_actor_new(k, sub, key, key_len, hash, &fresh);
        if (rc != 0)
            return rc;
        uint64_t took = hyi_clock_ticks() - t0;
        uint64_t active = 0;
        pthread_mutex_lock(&s->lock);
        a = claim_found(segment_find(s, sub, key, key_len, hash));
        bool stale = !a && s->removals != removals;
        if (!a && !stale) {
            hyi_actor **bucket = &s->buckets[hash & (s->nbuckets - 1)];
            fresh->table_next = *bucket;
            *bucket = fresh;
            if (++s->count > s->nbuckets)
                segment_resize(s, s->nbuckets * 2);
            /* relaxed: a statistic (and the cap's trigger, a hint) */
            active = atomic_fetch_add_explicit(&sub->keyed_actors, 1, memory_order_relaxed) + 1;
            a = fresh;
            fresh = NULL;
        }
        removals = s->removals;
        pthread_mutex_unlock(&s->lock);
        if (fresh)
            hyi_actor_free(k, fresh);
        if (stale)
            continue; /* an actor of this segment was passivated meanwhile: its
                         key's saved state may be newer than what we loaded */
        if (active)
            hyi_janitor_activated(k, sub, took, active);
        *out = a;
        return 0;
    }
}

void hyi_actor_unmark(hy_kernel *k, hyi_actor *a)
{
    hyi_actor_segment *s = segment_of(k, a->key_hash);
    pthread_mutex_lock(&s->lock);
    a->passivating = 0;
    pthread_mutex_unlock(&s->lock);
}

bool hyi_actor_remove_marked(hy_kernel *k, hyi_actor *a)
{
    hyi_actor_segment *s = segment_of(k, a->key_hash);
    bool removed = false;
    pthread_mutex_lock(&s->lock);
    if (a->passivating) {
        hyi_actor **p = &s->buckets[a->key_hash & (s->nbuckets - 1)];
        while (*p && *p != a)
            p = &(*p)->table_next;
        if (*p) {
            *p = a->table_next;
            a->table_next = NULL;
            s->count--;
            s->removals++;
            if (HY_UNLIKELY(segment_sparse(s, s->nbuckets)))
                hyi_actor_segment_shrink(s);
            /* relaxed: a statistic */
            atomic_fetch_sub_explicit(&a->sub->keyed_actors, 1, memory_order_relaxed);
            removed = true;
        }
        a->passivating = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return removed;
}

/* Call fn on every keyed actor; no concurrent use of the table. */
static void actor_table_each(hy_kernel *k, void (*fn)(hy_kernel *, hyi_actor *))
{
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        hyi_actor_segment *s = &k->segments[i];
        for (size_t b = 0; s->buckets && b < s->nbuckets; b++) {
            hyi_actor *a = s->buckets[b];
            while (a) {
                hyi_actor *next = a->table_next; /* fn may free a */
                fn(k, a);
                a = next;
            }
        }
    }
}

void hyi_actor_table_free(hy_kernel *k)
{
    actor_table_each(k, hyi_actor_free);
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        hyi_actor_segment *s = &k->segments[i];
        if (!s->buckets)
            continue;
        hyi_array_free(s->buckets, s->nbuckets * sizeof *s->buckets, s->buckets_mapped);
        s->buckets = NULL;
        pthread_mutex_destroy(&s->lock);
    }
}
