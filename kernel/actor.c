/* Actors and the keyed-actor table.
 *
 * An actor is a mailbox, a scheduled flag and a state pointer (see kernel.h);
 * a keyed actor also carries its key inline, so one allocation holds it all.
 *
 * The table maps (subsystem, key) to the keyed actor. It is split into
 * HYI_ACTOR_SEGMENTS segments, each a chained hash table under its own mutex:
 * a lookup locks one segment for a few dozen instructions, so senders to
 * different keys rarely meet, and a segment grows by itself (doubling) without
 * stopping the others. The high bits of the hash pick the segment, the low
 * bits the bucket. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#define INITIAL_BUCKETS 16

/* FNV-1a over the key, mixed with the subsystem's address so equal keys of
 * different subsystems spread apart; then a final avalanche so both the high
 * (segment) and low (bucket) bits are usable. */
static uint64_t key_hash(const hyi_subsys *sub, const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)sub;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int hyi_actor_new(hy_kernel *k, hyi_subsys *sub, const char *key, size_t key_len,
                  uint64_t hash, hyi_actor **out)
{
    hyi_actor *a = malloc(sizeof *a + key_len + 1);
    if (!a)
        return HY_ENOMEM;
    hyi_mpscq_init(&a->mailbox);
    /* relaxed: the actor is not shared yet; publishing it (table insert under
     * a mutex, or registration) orders this. */
    atomic_store_explicit(&a->scheduled, 0, memory_order_relaxed);
    a->key_len = (uint32_t)key_len;
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
    a->restart_window_start_ms = 0;
    if (key_len)
        memcpy(a->key, key, key_len);
    a->key[key_len] = '\0';
    if (sub->state_init) {
        int rc = sub->state_init(sub->udata, key_len || key ? a->key : NULL, key_len,
                                 &a->state);
        if (rc != 0) {
            free(a);
            return hyi_fail(HY_EHANDLER, "state_init of subsystem '%s' refused the actor (%d)",
                            sub->name, rc);
        }
    }
    a->journal_id = a->journal_seq = 0;
    a->since_snapshot = 0;
    /* A persistent actor is rebuilt from the journal before anyone sees it. */
    if (HY_UNLIKELY(sub->persistent)) {
        int rc = hyi_persist_recover(k, a, key != NULL);
        if (rc != 0) {
            hyi_actor_free(k, a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

/* Release whatever is still queued (only at close, when no worker runs) and
 * free the actor and its state. */
void hyi_actor_free(hy_kernel *k, hyi_actor *actor)
{
    hyi_mpsc_node *n;
    while ((n = hyi_mpscq_pop(&actor->mailbox)) != NULL)
        hyi_msg_release(k, HYI_MSG_OF(n));
    if (actor->sub->state_free && actor->state)
        actor->sub->state_free(actor->sub->udata, actor->state);
    free(actor);
}

int hyi_actor_table_init(hy_kernel *k)
{
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        hyi_actor_segment *s = &k->segments[i];
        s->buckets = calloc(INITIAL_BUCKETS, sizeof *s->buckets);
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

/* Double the buckets when the chains average more than one actor. If the
 * allocation fails the table just stays denser: still correct. */
static void segment_grow(hyi_actor_segment *s)
{
    size_t n = s->nbuckets * 2;
    hyi_actor **b = calloc(n, sizeof *b);
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
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

int hyi_actor_get(hy_kernel *k, hyi_subsys *sub, const char *key, size_t key_len,
                  hyi_actor **out)
{
    uint64_t hash = key_hash(sub, key, key_len);
    hyi_actor_segment *s = segment_of(k, hash);
    pthread_mutex_lock(&s->lock);
    hyi_actor *a = segment_find(s, sub, key, key_len, hash);
    pthread_mutex_unlock(&s->lock);
    if (HY_LIKELY(a != NULL)) {
        *out = a;
        return 0;
    }
    /* First message to this key. state_init is user code: run it outside the
     * lock, then insert unless another sender won the race. */
    hyi_actor *fresh;
    int rc = hyi_actor_new(k, sub, key, key_len, hash, &fresh);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&s->lock);
    a = segment_find(s, sub, key, key_len, hash);
    if (!a) {
        hyi_actor **bucket = &s->buckets[hash & (s->nbuckets - 1)];
        fresh->table_next = *bucket;
        *bucket = fresh;
        if (++s->count > s->nbuckets)
            segment_grow(s);
        /* relaxed: a statistic */
        atomic_fetch_add_explicit(&sub->keyed_actors, 1, memory_order_relaxed);
        a = fresh;
        fresh = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (fresh)
        hyi_actor_free(k, fresh);
    *out = a;
    return 0;
}

void hyi_actor_table_each(hy_kernel *k, void (*fn)(hy_kernel *, hyi_actor *))
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
    hyi_actor_table_each(k, hyi_actor_free);
    for (size_t i = 0; i < HYI_ACTOR_SEGMENTS; i++) {
        if (!k->segments[i].buckets)
            continue;
        free(k->segments[i].buckets);
        k->segments[i].buckets = NULL;
        pthread_mutex_destroy(&k->segments[i].lock);
    }
}
