/* Actors and the keyed-actor table.
 *
 * An actor is a mailbox, a scheduled flag and a state pointer (see kernel.h);
 * a keyed actor also carries its key inline, so one allocation holds it all.
 *
 * The table maps (subsystem, key) to the keyed actor. It is split into
 * HYI_ACTOR_SEGMENTS segments, each an open-addressing hash table (linear
 * probing, the key hash stored in the slot) under its own mutex: a lookup
 * locks one segment for a few dozen instructions, so senders to different
 * keys rarely meet, and a segment grows by itself (doubling) without stopping
 * the others, and shrinks as passivation or an unregistered subsystem
 * empties it. The high bits of the hash pick the segment, the low bits the
 * slot. A probe reads an actor only when its stored hash is equal, and a
 * resize reads none, so a miss among a million actors costs one cache line
 * of the table, not a walk through actors scattered over memory.
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

#define INITIAL_SLOTS 16

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
    hyi_actor *a = hyi_block_alloc(HYI_ACTOR_SIZE(key_len, sub->persistent));
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
        hyi_block_free(a, HYI_ACTOR_SIZE(key_len, sub->persistent));
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
    if (actor->sub->persistent)
        hyi_persist_actor_free(k, actor);
    hyi_block_free(actor, HYI_ACTOR_SIZE(actor->key_len, actor->sub->persistent));
}

int hyi_actor_table_init(hy_kernel *k)
{
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        hyi_actor_segment *s = &k->segments[i];
        s->slots = hyi_array_zalloc(INITIAL_SLOTS * sizeof *s->slots, &s->slots_mapped);
        if (!s->slots)
            return HY_ENOMEM; /* hyi_actor_table_free copes with the rest NULL */
        s->cap = INITIAL_SLOTS;
        s->count = 0;
        pthread_mutex_init(&s->lock, NULL);
    }
    return 0;
}

static hyi_actor_segment *segment_of(hy_kernel *k, uint64_t hash)
{
    return &k->segments[hash >> 56 & (HYI_ACTOR_SEGMENTS - 1)];
}

/* The slot holding (sub, key), or the empty slot where it would go. */
static hyi_actor_slot *segment_find(hyi_actor_segment *s, hyi_subsys *sub, const char *key,
                                    size_t len, uint64_t hash)
{
    size_t mask = s->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        hyi_actor_slot *slot = &s->slots[i];
        hyi_actor *a = slot->actor;
        if (!a || (slot->hash == hash && a->sub == sub && a->key_len == len &&
                   memcmp(a->key, key, len) == 0))
            return slot;
    }
}

/* Into a table with room, by hash alone (its actor is not there yet). */
static void slot_put(hyi_actor_slot *slots, size_t cap, uint64_t hash, hyi_actor *a)
{
    size_t i = hash & (cap - 1);
    while (slots[i].actor)
        i = (i + 1) & (cap - 1);
    slots[i] = (hyi_actor_slot){hash, a};
}

/* Rehash a segment into n slots (a power of two): doubled before an insert
 * would pass 3/4 used, shrunk (segment_shrink) when removals left it under
 * 1/4. Large slot arrays are mappings of their own (hyi_array_zalloc): one
 * freed by the passivation thread's shrinking went into that thread's
 * allocator cache and stayed there. If the allocation fails the table keeps
 * its size: a shrink just waits, and an insert that needs the room fails
 * (HY_ENOMEM). */
static void segment_resize(hyi_actor_segment *s, size_t n)
{
    bool mapped;
    hyi_actor_slot *slots = hyi_array_zalloc(n * sizeof *slots, &mapped);
    if (!slots)
        return;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].actor)
            slot_put(slots, n, s->slots[i].hash, s->slots[i].actor);
    hyi_array_free(s->slots, s->cap * sizeof *s->slots, s->slots_mapped);
    s->slots = slots;
    s->cap = n;
    s->slots_mapped = mapped;
}

/* Empty slot i, moving back the entries of its probe run that may sit
 * earlier, so a probe never meets a hole inside a run. */
static void segment_remove_at(hyi_actor_segment *s, size_t i)
{
    size_t mask = s->cap - 1;
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!s->slots[j].actor)
            break;
        if (hyi_probe_may_move(s->slots[j].hash & mask, i, j)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = (hyi_actor_slot){0, NULL};
    s->count--;
    s->removals++;
}

/* Fewer actors than a quarter of n slots (and more than the initial
 * slots): worth shrinking. */
static inline bool segment_sparse(const hyi_actor_segment *s, size_t n)
{
    return n > INITIAL_SLOTS && s->count < n / 4;
}

/* After removals: when sparse, shrink in one rehash to the size that has the
 * slots at most half used (not below the initial size), so an emptied
 * segment is back at its initial size without a rehash per halving. */
static void segment_shrink(hyi_actor_segment *s)
{
    size_t n = s->cap;
    while (segment_sparse(s, n))
        n /= 2;
    if (n != s->cap)
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
    hyi_actor *a = claim_found(segment_find(s, sub, key, key_len, hash)->actor);
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
        hyi_actor_slot *slot = segment_find(s, sub, key, key_len, hash);
        a = claim_found(slot->actor);
        bool stale = !a && s->removals != removals, full = false;
        if (!a && !stale && (s->count + 1) * 4 > s->cap * 3) {
            segment_resize(s, s->cap * 2);
            slot = segment_find(s, sub, key, key_len, hash);
            /* Could not grow: one empty slot must stay, or probes never end. */
            full = s->count + 2 > s->cap;
        }
        if (!a && !stale && !full) {
            *slot = (hyi_actor_slot){hash, fresh};
            s->count++;
            /* relaxed: a statistic (and the cap's trigger, a hint) */
            active = atomic_fetch_add_explicit(&sub->keyed_actors, 1, memory_order_relaxed) + 1;
            a = fresh;
            fresh = NULL;
        }
        removals = s->removals;
        pthread_mutex_unlock(&s->lock);
        if (fresh)
            hyi_actor_free(k, fresh);
        if (full)
            return hyi_fail(HY_ENOMEM, "no memory to grow the actor table for key '%.*s'",
                            (int)(key_len > 64 ? 64 : key_len), key);
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
        size_t mask = s->cap - 1, i = a->key_hash & mask;
        while (s->slots[i].actor && s->slots[i].actor != a)
            i = (i + 1) & mask;
        if (s->slots[i].actor) {
            segment_remove_at(s, i);
            if (HY_UNLIKELY(segment_sparse(s, s->cap)))
                segment_shrink(s);
            /* relaxed: a statistic */
            atomic_fetch_sub_explicit(&a->sub->keyed_actors, 1, memory_order_relaxed);
            removed = true;
        }
        a->passivating = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return removed;
}

void hyi_actor_take_all(hy_kernel *k, hyi_subsys *sub, hyi_actor **list)
{
    for (size_t si = 0; si < HYI_ACTOR_SEGMENTS; si++) {
        hyi_actor_segment *s = &k->segments[si];
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->cap;) {
            hyi_actor *a = s->slots[i].actor;
            if (!a || a->sub != sub) {
                i++;
                continue;
            }
            a->table_next = *list;
            *list = a;
            /* Slot i now holds what moved back into it (seen again: only
             * actors of other subsystems can be seen twice, when a run wraps
             * round the end). A sender making an actor of this segment
             * meanwhile makes it again (hyi_actor_get): harmless. */
            segment_remove_at(s, i);
            /* relaxed: a statistic */
            atomic_fetch_sub_explicit(&sub->keyed_actors, 1, memory_order_relaxed);
        }
        segment_shrink(s); /* a large subsystem gone leaves the segment sparse */
        pthread_mutex_unlock(&s->lock);
    }
}

/* Every keyed actor freed, and the table; no concurrent use. */
void hyi_actor_table_free(hy_kernel *k)
{
    for (size_t si = 0; si < HYI_ACTOR_SEGMENTS; si++) {
        hyi_actor_segment *s = &k->segments[si];
        if (!s->slots)
            continue;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].actor)
                hyi_actor_free(k, s->slots[i].actor);
        hyi_array_free(s->slots, s->cap * sizeof *s->slots, s->slots_mapped);
        s->slots = NULL;
        pthread_mutex_destroy(&s->lock);
    }
}
