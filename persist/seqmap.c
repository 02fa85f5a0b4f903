/* actor -> head (newest sequence and its log key): a small open-addressing
 * hash map (linear probing, power-of-two capacity, at most half full,
 * backward-shift deletion). Used twice by the journal: as the bounded cache of
 * committed heads and as a write transaction's overlay, so the next sequence
 * of an actor costs a hash probe instead of a B-tree lookup.
 *
 * The cache's bound: at max entries an insert evicts one clean entry found by
 * a clock hand (an entry read since the hand last passed has its ref bit
 * cleared and is spared once); the hand moves by a large odd stride. Evicting
 * is safe because a clean head is in the heads DB, where the writer finds it
 * again. Dirty heads are never evicted (the journal checkpoints them before
 * they reach seven eighths of max, half once the map is full, so an eviction
 * finds a clean entry within a few steps), nor leased ones (their owner
 * lives). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "journal_int.h"

static size_t mix(uint64_t x)
{
    /* splitmix64's finaliser: consecutive actor ids spread over the table. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

static void table_free(struct hyi_seqslot *slots, size_t cap);

void hyi_seqmap_free(hyi_seqmap *m)
{
    table_free(m->slots, m->cap);
    size_t max = m->max;
    memset(m, 0, sizeof *m);
    m->max = max;
}

void hyi_seqmap_clear(hyi_seqmap *m)
{
    if (m->len)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->len = 0;
    m->dirty = 0;
    m->leased = 0;
}

/* The actor's slot, or the empty one ending its probe run (where it would
 * go): one walk for a lookup and an insert, which with a million actors is
 * one cache miss instead of two. */
static struct hyi_seqslot *find_or_hole(const hyi_seqmap *m, uint64_t actor)
{
    for (size_t i = mix(actor) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct hyi_seqslot *s = &m->slots[i];
        if (!s->used || s->actor == actor)
            return s;
    }
}

static struct hyi_seqslot *find(const hyi_seqmap *m, uint64_t actor)
{
    struct hyi_seqslot *s = m->cap ? find_or_hole(m, actor) : NULL;
    return s && s->used ? s : NULL;
}

bool hyi_seqmap_get(hyi_seqmap *m, uint64_t actor, hyi_head *h)
{
    struct hyi_seqslot *s = find(m, actor);
    if (!s || hyi_seqslot_leased(s))
        return false;
    s->ref = 1;
    *h = (hyi_head){s->seq, s->gseq};
    return true;
}

static void insert_raw(struct hyi_seqslot *slots, size_t cap, const struct hyi_seqslot *from)
{
    size_t i = mix(from->actor) & (cap - 1);
    while (slots[i].used)
        i = (i + 1) & (cap - 1);
    slots[i] = *from;
}

/* Remove slot i, shifting back the entries of its probe run that may sit
 * earlier, so lookups never meet a hole inside a run. */
static void remove_at(hyi_seqmap *m, size_t i)
{
    size_t mask = m->cap - 1;
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].used)
            break;
        if (hyi_probe_may_move(mix(m->slots[j].actor) & mask, i, j)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof m->slots[i]);
    m->len--;
}

/* One clean entry evicted (clock); false when every entry is dirty. */
static bool evict_one(hyi_seqmap *m)
{
    /* Held entries (live actors) are not evicted: with about as many live
     * actors as max, a walk would pass nearly the whole table for each
     * insert. Grow past max instead when fewer than one entry in sixteen
     * could go (dirty and held entries may overlap: counted twice, which
     * only grows sooner). */
    if (m->dirty + m->leased + m->len / 16 > m->len)
        return false;
    for (size_t step = 0; step < 2 * m->cap; step++) {
        size_t i = m->hand;
        /* An odd stride visits every slot once per cap steps, like a plain
         * hand, but spreads the holes evictions leave over the table: a hand
         * moving by 1 empties one region while inserts crowd the rest, and
         * linear probing's runs there grow long. */
        m->hand = (m->hand + (size_t)0x9e3779b97f4a7c15ull) & (m->cap - 1);
        struct hyi_seqslot *s = &m->slots[i];
        if (!s->used || hyi_seqslot_dirty(m, s) || hyi_seqslot_leased(s))
            continue;
        if (s->ref) {
            s->ref = 0;
            continue;
        }
        remove_at(m, i);
        m->evictions++;
        return true;
    }
    return false;
}

#define HUGE_PAGE ((size_t)2 << 20)

/* A zeroed table of cap slots. From 2 MiB up it is a mapping of its own,
 * aligned to and advised into huge pages where the system allows (a lookup in
 * a table of a million actors is a random access, and with 4 KiB pages most
 * of them also miss the TLB), and zero as mapped: clearing a 64 MiB table the
 * system had just cleared was a tenth of the writer's time as a million
 * actors' table grew. */
static struct hyi_seqslot *table_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(struct hyi_seqslot);
    if (bytes < HUGE_PAGE)
        return calloc(cap, sizeof(struct hyi_seqslot));
    /* bytes is a multiple of 2 MiB: map one huge page more, trim to align */
    char *p = mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    munmap(start + bytes, (size_t)(p + HUGE_PAGE - start)); /* the rest of the extra */
#ifdef MADV_HUGEPAGE
    (void)madvise(start, bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
#endif
#ifdef MADV_POPULATE_WRITE
    /* Filled now (advice too): a probe's read of an untouched page maps the
     * zero page, and the write after it replaces that page, a copy and a TLB
     * flush on every core running a thread of this process. */
    (void)madvise(start, bytes, MADV_POPULATE_WRITE);
#endif
    return (struct hyi_seqslot *)start;
}

static void table_free(struct hyi_seqslot *slots, size_t cap)
{
    size_t bytes = cap * sizeof(struct hyi_seqslot);
    if (bytes < HUGE_PAGE)
        free(slots);
    else
        munmap(slots, bytes);
}

static int grow(hyi_seqmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct hyi_seqslot *ns = table_alloc(ncap);
    if (!ns)
        return HY_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].used)
            insert_raw(ns, ncap, &m->slots[i]);
    table_free(m->slots, m->cap);
    m->slots = ns;
    m->cap = ncap;
    m->hand = 0;
    return 0;
}


/* put's work; the actor's slot, or NULL with *rc set (HY_ENOMEM). */
static struct hyi_seqslot *put_slot(hyi_seqmap *m, uint64_t actor, hyi_head h, bool dirty,
                                    int *rc)
{
    struct hyi_seqslot *s = m->cap ? find_or_hole(m, actor) : NULL;
    *rc = 0;
    if (s && hyi_seqslot_leased(s))
        return s; /* its lease has the head, newer (see hyi_journal_release_leases) */
    if (s && s->used) {
        if (h.seq >= s->seq) {
            s->seq = h.seq;
            s->gseq = h.gseq;
        }
        if (dirty && !hyi_seqslot_dirty(m, s)) {
            s->dirty_mark = m->epoch + 1;
            m->dirty++;
        }
        return s;
    }
    if (m->max && m->len >= m->max) {
        (void)evict_one(m); /* all dirty: grow past max rather than lose one */
        s = NULL;           /* entries moved */
    }
    if ((m->len + 1) * 2 > m->cap) {
        if ((*rc = grow(m)) != 0)
            return NULL;
        s = NULL;
    }
    if (!s)
        s = find_or_hole(m, actor);
    *s = (struct hyi_seqslot){.actor = actor, .seq = h.seq, .gseq = h.gseq,
                              .dirty_mark = dirty ? m->epoch + 1 : 0, .used = 1};
    m->len++;
    m->dirty += dirty;
    return s;
}

int hyi_seqmap_put(hyi_seqmap *m, uint64_t actor, hyi_head h, bool dirty)
{
    int rc;
    (void)put_slot(m, actor, h, dirty, &rc);
    return rc;
}

struct hyi_seqslot *hyi_seqmap_find(hyi_seqmap *m, uint64_t actor)
{
    return find(m, actor);
}

int hyi_seqmap_lease(hyi_seqmap *m, uint64_t actor, hyi_head h, hyi_head_lease *l)
{
    int rc;
    struct hyi_seqslot *s = put_slot(m, actor, h, false, &rc);
    if (s)
        hyi_seqmap_hold(m, s, l);
    return rc;
}

void hyi_seqmap_hold(hyi_seqmap *m, struct hyi_seqslot *s, hyi_head_lease *l)
{
    m->leased += !hyi_seqslot_leased(s);
    s->lease = l;
    s->used = HYI_SLOT_LEASED;
}

void hyi_seqmap_unhold(hyi_seqmap *m, struct hyi_seqslot *s, hyi_head h)
{
    if (!hyi_seqslot_leased(s))
        return;
    m->leased--;
    *s = (struct hyi_seqslot){.actor = s->actor, .seq = h.seq, .gseq = h.gseq,
                              .dirty_mark = s->dirty_mark, .used = 1, .ref = 1};
}

void hyi_seqmap_mark_clean(hyi_seqmap *m)
{
    if (!m->dirty)
        return;
    m->dirty = 0;
    if (++m->epoch != UINT32_MAX)
        return;
    /* Every 4 Gi checkpoints the next mark would be 0, a clean slot's:
     * start the marks again from a table with none set. */
    for (size_t i = 0; i < m->cap; i++)
        m->slots[i].dirty_mark = 0;
    m->epoch = 0;
}

void hyi_seqmap_prefetch(const hyi_seqmap *m, uint64_t actor)
{
    if (m->cap)
        __builtin_prefetch(&m->slots[mix(actor) & (m->cap - 1)]);
}
