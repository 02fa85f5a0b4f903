/* Building a subsystem's immutable compiled table from its route records.
 *
 * The table is a trie in flat arrays: nodes; static edges, a lone static
 * child inline in its node and the children of wider nodes in one
 * open-addressing hash keyed by (parent node, segment bytes), so a node with
 * 10,000 children is one probe; per node a run of regex edges (in the order
 * their first route was registered), one {param} child, one * child, and the
 * routes that end or whose ** starts there. Fully static routes also go in a
 * hash of their whole text: such a route beats everything else on its path,
 * so one lookup settles it.
 *
 * Edges are identified by shape: {a} and {b} at the same position are the same
 * edge, as are {a:\d+} and {b:\d+} (same regex source). Two routes that differ
 * only in parameter names therefore end at the same node; the second is a
 * duplicate (HY_EEXIST). Long keys and regex code are borrowed from the
 * records, which outlive every table built from them. */
#include <stdlib.h>

#include "router_int.h"

/* Regex edges collected per node while building, flattened at the end. */
typedef struct rx_build {
    const hyi_pseg *seg;
    const char *text;
    uint32_t child;
    uint32_t next;      /* index + 1 of the next edge of the same node, 0 = end */
} rx_build;

typedef struct builder {
    hyi_table *t;
    rx_build *rxb;
    uint32_t nrxb;
    uint32_t *rx_head;  /* per node: index + 1 of its first regex edge */
    uint32_t *rx_tail;
} builder;

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 8;
    while (c < n)
        c <<= 1;
    return c;
}

static uint32_t new_node(builder *b)
{
    return b->t->nnodes++; /* nodes were sized for the worst case up front */
}

static uint32_t static_child(builder *b, uint32_t parent, const char *key, uint32_t len)
{
    hyi_table *t = b->t;
    uint64_t h = hyi_edge_hash(hyi_seg_hash(key, len), parent);
    uint64_t packed = len <= 8 ? hyi_pack(key, len) : 0;
    for (uint32_t i = (uint32_t)h & t->edge_mask;; i = (i + 1) & t->edge_mask) {
        hyi_edge *e = &t->edges[i];
        if (e->child == 0) {
            e->parent = parent;
            e->child = new_node(b);
            e->key_len = len;
            e->hash = (uint32_t)h;
            if (len <= 8)
                e->k.packed = packed;
            else
                e->k.ptr = key;
            t->nodes[parent].has_static = 1;
            return e->child;
        }
        if (e->hash == (uint32_t)h && e->parent == parent && e->key_len == len &&
            (len <= 8 ? e->k.packed == packed : hyi_eq(e->k.ptr, key, len)))
            return e->child;
    }
}

static uint32_t regex_child(builder *b, uint32_t parent, const hyi_route_rec *rec,
                            const hyi_pseg *sg)
{
    for (uint32_t k = b->rx_head[parent]; k; k = b->rxb[k - 1].next) {
        rx_build *x = &b->rxb[k - 1];
        if (x->seg->len == sg->len &&
            memcmp(x->text + x->seg->off, rec->text + sg->off, sg->len) == 0)
            return x->child;
    }
    uint32_t k = ++b->nrxb;
    b->rxb[k - 1] = (rx_build){sg, rec->text, new_node(b), 0};
    if (b->rx_tail[parent])
        b->rxb[b->rx_tail[parent] - 1].next = k;
    else
        b->rx_head[parent] = k;
    b->rx_tail[parent] = k;
    return b->rxb[k - 1].child;
}

static void static_route(hyi_table *t, const hyi_route_rec *rec)
{
    uint64_t h = hyi_hash(rec->text, rec->text_len, HYI_STATIC_SEED);
    uint32_t i = (uint32_t)h & t->static_mask;
    while (t->statics[i].rec)
        i = (i + 1) & t->static_mask;
    t->statics[i] = (hyi_sroute){h, rec};
}

/* Walk or extend the trie along one record; HY_EEXIST if its end is taken. */
static int insert(builder *b, const hyi_route_rec *rec)
{
    hyi_table *t = b->t;
    uint32_t cur = 0;
    for (unsigned s = 0; s < rec->nseg; s++) {
        const hyi_pseg *sg = &rec->seg[s];
        hyi_node *nd = &t->nodes[cur];
        switch (sg->kind) {
        case HYI_K_STATIC:
            cur = static_child(b, cur, rec->text + sg->off, sg->len);
            break;
        case HYI_K_REGEX:
            cur = regex_child(b, cur, rec, sg);
            break;
        case HYI_K_PARAM:
            if (!nd->param)
                nd->param = new_node(b);
            cur = t->nodes[cur].param;
            break;
        case HYI_K_STAR:
            if (!nd->star)
                nd->star = new_node(b);
            cur = t->nodes[cur].star;
            break;
        default: /* HYI_K_DSTAR, always last */
            if (nd->dstar)
                return HY_EEXIST;
            nd->dstar = rec;
            return 0;
        }
    }
    if (t->nodes[cur].route)
        return HY_EEXIST;
    t->nodes[cur].route = rec;
    if (rec->all_static)
        static_route(t, rec);
    return 0;
}

/* Move lone static children into their nodes and keep in the hash only the
 * edges of nodes with two or more. */
static int split_edges(hyi_table *t)
{
    if (!t->edges)
        return 0;
    uint32_t *count = calloc(t->nnodes, sizeof *count);
    if (!count)
        return HY_ENOMEM;
    size_t wide = 0;
    for (uint32_t i = 0; i <= t->edge_mask; i++)
        if (t->edges[i].child)
            count[t->edges[i].parent]++;
    for (uint32_t i = 0; i <= t->edge_mask; i++) {
        const hyi_edge *e = &t->edges[i];
        if (!e->child)
            continue;
        hyi_node *nd = &t->nodes[e->parent];
        if (count[e->parent] == 1) {
            nd->one_key = e->k;
            nd->one_len = e->key_len;
            nd->one_child = e->child;
            nd->has_static = 0;
        } else {
            wide++;
        }
    }
    free(count);
    hyi_edge *old = t->edges;
    uint32_t old_mask = t->edge_mask;
    t->edges = NULL;
    t->edge_mask = 0;
    if (wide) {
        uint32_t cap = pow2_at_least(wide * 2);
        if (!(t->edges = calloc(cap, sizeof *t->edges))) {
            t->edges = old; /* hyi_table_free releases it */
            t->edge_mask = old_mask;
            return HY_ENOMEM;
        }
        t->edge_mask = cap - 1;
        for (uint32_t i = 0; i <= old_mask; i++) {
            const hyi_edge *e = &old[i];
            if (!e->child || !t->nodes[e->parent].has_static)
                continue;
            uint32_t k = e->hash & t->edge_mask;
            while (t->edges[k].child)
                k = (k + 1) & t->edge_mask;
            t->edges[k] = *e;
        }
    }
    free(old);
    return 0;
}

void hyi_table_free(hyi_table *t)
{
    free(t->nodes);
    free(t->edges);
    free(t->statics);
    free(t->rx);
    memset(t, 0, sizeof *t);
}

int hyi_table_build(hyi_table *t, hyi_route_rec *const *recs, size_t n, size_t *dup)
{
    memset(t, 0, sizeof *t);
    size_t max_nodes = 1, nstatic_seg = 0, nrx = 0, nall_static = 0;
    for (size_t r = 0; r < n; r++) {
        const hyi_route_rec *rec = recs[r];
        for (unsigned s = 0; s < rec->nseg; s++) {
            uint8_t k = rec->seg[s].kind;
            max_nodes += k != HYI_K_DSTAR;
            nstatic_seg += k == HYI_K_STATIC;
            nrx += k == HYI_K_REGEX;
        }
        nall_static += rec->all_static;
    }
    if (max_nodes > UINT32_MAX / 2)
        return HY_ENOMEM;

    builder b = {.t = t};
    int rc = HY_ENOMEM;
    t->nodes = calloc(max_nodes, sizeof *t->nodes);
    b.rx_head = calloc(max_nodes, sizeof *b.rx_head);
    b.rx_tail = calloc(max_nodes, sizeof *b.rx_tail);
    b.rxb = calloc(nrx ? nrx : 1, sizeof *b.rxb);
    if (!t->nodes || !b.rx_head || !b.rx_tail || !b.rxb)
        goto out;
    if (nstatic_seg) {
        /* Load at most one half: short probe runs for misses too. */
        uint32_t cap = pow2_at_least(nstatic_seg * 2);
        t->edge_mask = cap - 1;
        if (!(t->edges = calloc(cap, sizeof *t->edges)))
            goto out;
    }
    if (nall_static) {
        uint32_t cap = pow2_at_least(nall_static * 2);
        t->static_mask = cap - 1;
        if (!(t->statics = calloc(cap, sizeof *t->statics)))
            goto out;
    }
    t->nnodes = 1; /* the root */
    for (size_t r = 0; r < n; r++) {
        if (insert(&b, recs[r]) != 0) {
            if (dup)
                *dup = r;
            rc = HY_EEXIST;
            goto out;
        }
    }
    t->nroutes = (uint32_t)n;
    t->only_static = nall_static == n;

    /* Regex edges: one contiguous run per node, in first-registered order. */
    if (b.nrxb) {
        if (!(t->rx = malloc(b.nrxb * sizeof *t->rx)))
            goto out;
        for (uint32_t nd = 0; nd < t->nnodes; nd++) {
            if (!b.rx_head[nd])
                continue;
            t->nodes[nd].rx_first = t->nrx;
            for (uint32_t k = b.rx_head[nd]; k; k = b.rxb[k - 1].next) {
                const rx_build *x = &b.rxb[k - 1];
                t->rx[t->nrx++] = (hyi_rx){x->seg->code, x->seg->fast, x->child, x->seg->jit};
                t->nodes[nd].rx_count++;
            }
        }
    }
    if (split_edges(t) != 0)
        goto out;
    /* Shed the worst-case slack (every segment a new node). */
    hyi_node *shrunk = realloc(t->nodes, t->nnodes * sizeof *t->nodes);
    if (shrunk)
        t->nodes = shrunk;
    t->bytes = t->nnodes * sizeof *t->nodes +
               (t->edges ? (t->edge_mask + 1ull) * sizeof *t->edges : 0) +
               (t->statics ? (t->static_mask + 1ull) * sizeof *t->statics : 0) +
               t->nrx * sizeof *t->rx;
    rc = 0;
out:
    free(b.rx_head);
    free(b.rx_tail);
    free(b.rxb);
    if (rc)
        hyi_table_free(t);
    return rc;
}
