/* actor -> highest sequence: a small open-addressing hash map (linear probing,
 * power-of-two capacity, at most half full). Used twice by the journal: as the
 * cache of committed sequences and as a write transaction's overlay, so the
 * next sequence of an actor costs a hash probe instead of a cursor walk. There
 * is no delete: the cache holds one slot per actor ever written (24 bytes). */
#include <stdlib.h>
#include <string.h>

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

void hyi_seqmap_free(hyi_seqmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

void hyi_seqmap_clear(hyi_seqmap *m)
{
    if (m->len)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->len = 0;
}

bool hyi_seqmap_get(const hyi_seqmap *m, uint64_t actor, uint64_t *seq)
{
    if (!m->cap)
        return false;
    for (size_t i = mix(actor) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct hyi_seqslot *s = &m->slots[i];
        if (!s->used)
            return false;
        if (s->actor == actor) {
            *seq = s->seq;
            return true;
        }
    }
}

static void insert_raw(struct hyi_seqslot *slots, size_t cap, uint64_t actor,
                       uint64_t seq)
{
    size_t i = mix(actor) & (cap - 1);
    while (slots[i].used)
        i = (i + 1) & (cap - 1);
    slots[i] = (struct hyi_seqslot){actor, seq, 1};
}

int hyi_seqmap_put_max(hyi_seqmap *m, uint64_t actor, uint64_t seq)
{
    if (m->cap) {
        for (size_t i = mix(actor) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
            struct hyi_seqslot *s = &m->slots[i];
            if (!s->used)
                break;
            if (s->actor == actor) {
                if (seq > s->seq)
                    s->seq = seq;
                return 0;
            }
        }
    }
    if ((m->len + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        struct hyi_seqslot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return HY_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].used)
                insert_raw(ns, ncap, m->slots[i].actor, m->slots[i].seq);
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    insert_raw(m->slots, m->cap, actor, seq);
    m->len++;
    return 0;
}
