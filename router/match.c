/* Matching a split path against a compiled table, most specific first.
 *
 * A fully static route is looked up by one hash of the whole path: it beats
 * every other candidate, so a hit ends the search. Otherwise a depth-first
 * walk tries, per segment: the static child, the regex edges, the {param}
 * child, the * child, then a ** at this node; a branch that fails further down
 * falls through to the next candidate (backtracking). The first route found in
 * that order is the most specific, except between regex edges of one node:
 * two can both match, so all are tried and the routes they lead to compared
 * (segment kinds after this one, then registration order). Each trie node is
 * visited at most once per match (it is a tree), so the walk is bounded by the
 * table, never exponential. No allocation: captures go straight into the
 * caller's hyi_match. */
#include "router_int.h"

typedef struct mctx {
    const hyi_table *t;
    const char *path;
    const hyi_path *p;
    pcre2_match_data *md;
    hyi_slice *caps;
    uint32_t hashed;                    /* bit i: seghash[i] is computed */
    uint64_t seghash[HYI_MAX_SEGMENTS];
} mctx;

static inline __attribute__((always_inline)) uint32_t find_static(mctx *c, uint32_t parent,
                                                                  unsigned i)
{
    const hyi_table *t = c->t;
    hyi_slice sg = c->p->seg[i];
    const char *s = c->path + sg.off;
    if (!(c->hashed & (1u << i))) {
        c->seghash[i] = hyi_seg_hash(s, sg.len);
        c->hashed |= 1u << i;
    }
    uint64_t h = hyi_edge_hash(c->seghash[i], parent);
    uint64_t packed = sg.len <= 8 ? hyi_pack(s, sg.len) : 0;
    for (uint32_t k = (uint32_t)h & t->edge_mask;; k = (k + 1) & t->edge_mask) {
        const hyi_edge *e = &t->edges[k];
        if (!e->child)
            return 0;
        if (e->hash == (uint32_t)h && e->parent == parent && e->key_len == sg.len &&
            (sg.len <= 8 ? e->k.packed == packed : hyi_eq(e->k.ptr, s, sg.len)))
            return e->child;
    }
}

/* The static child of nd (node n) for segment i, or 0. */
static inline __attribute__((always_inline)) uint32_t static_child(mctx *c, const hyi_node *nd,
                                                                   uint32_t n, unsigned i)
{
    if (nd->one_child) {
        hyi_slice sg = c->p->seg[i];
        return hyi_key_eq(nd->one_key, nd->one_len, c->path + sg.off, sg.len) ? nd->one_child
                                                                               : 0;
    }
    return nd->has_static ? find_static(c, n, i) : 0;
}

static inline int kind_at(const hyi_route_rec *r, unsigned j)
{
    return j < r->nseg ? r->seg[j].kind : HYI_K_END;
}

/* Is a more specific than b from segment `from` on (both matched the same
 * path through the same nodes before it)? A true tie: the earlier route. */
static bool better(const hyi_route_rec *a, const hyi_route_rec *b, unsigned from)
{
    for (unsigned j = from; j <= HYI_MAX_SEGMENTS; j++) {
        int ka = kind_at(a, j), kb = kind_at(b, j);
        if (ka != kb)
            return ka < kb;
        if (ka == HYI_K_END || ka == HYI_K_DSTAR)
            break;
    }
    return a->seq < b->seq;
}

static inline bool rx_ok(const hyi_rx *x, const char *s, size_t len, pcre2_match_data *md)
{
    if (x->fast)
        return hyi_fastrx_match(x->fast, s, len);
    return hyi_rx_match(x->code, x->jit, s, len, md);
}

static const hyi_route_rec *walk(mctx *c, uint32_t n, unsigned i, unsigned nc)
{
    const hyi_table *t = c->t;
    const hyi_path *p = c->p;
    const hyi_route_rec *r;
    /* Candidates are tried in precedence order; each but the last takes a
     * recursive call (a frame to come back to), the last one is followed in
     * this loop, so a chain with one way on costs no call at all. */
    for (;;) {
        const hyi_node *nd = &t->nodes[n];
        if (i == p->nseg) {
            if (nd->route)
                return nd->route;
            if (nd->dstar) {
                c->caps[nc] = (hyi_slice){p->len, 0};
                return nd->dstar;
            }
            return NULL;
        }
        hyi_slice sg = p->seg[i];
        uint32_t child = static_child(c, nd, n, i);
        if (child) {
            if (!nd->rx_count && !nd->param && !nd->star && !nd->dstar) {
                n = child;
                i++;
                continue;
            }
            if ((r = walk(c, child, i + 1, nc)))
                return r;
        }
        if (nd->rx_count) {
            const hyi_route_rec *best = NULL;
            hyi_slice saved[HYI_MAX_PARAMS];
            for (uint32_t k = 0; k < nd->rx_count; k++) {
                const hyi_rx *x = &t->rx[nd->rx_first + k];
                if (!rx_ok(x, c->path + sg.off, sg.len, c->md))
                    continue;
                c->caps[nc] = sg;
                if (!(r = walk(c, x->child, i + 1, nc + 1)))
                    continue;
                if (nd->rx_count == 1)
                    return r;
                if (!best || better(r, best, i + 1)) {
                    best = r;
                    memcpy(saved + nc, c->caps + nc, (r->nparams - nc) * sizeof *saved);
                }
            }
            if (best) {
                memcpy(c->caps + nc, saved + nc, (best->nparams - nc) * sizeof *saved);
                return best;
            }
        }
        if (nd->param) {
            c->caps[nc] = sg;
            if (!nd->star && !nd->dstar) {
                n = nd->param;
                i++;
                nc++;
                continue;
            }
            if ((r = walk(c, nd->param, i + 1, nc + 1)))
                return r;
        }
        if (nd->star) {
            c->caps[nc] = sg;
            if (!nd->dstar) {
                n = nd->star;
                i++;
                nc++;
                continue;
            }
            if ((r = walk(c, nd->star, i + 1, nc + 1)))
                return r;
        }
        if (nd->dstar) {
            c->caps[nc] = (hyi_slice){sg.off, (uint16_t)(p->len - sg.off)};
            return nd->dstar;
        }
        return NULL;
    }
}

int hyi_table_match(const hyi_table *t, const char *path, const hyi_path *p,
                    pcre2_match_data *md, hyi_match *m)
{
    if (t->statics) {
        const char *rest = path + p->rest;
        size_t rl = (size_t)(p->len - p->rest);
        uint64_t h = hyi_hash(rest, rl, HYI_STATIC_SEED);
        for (uint32_t k = (uint32_t)h & t->static_mask;; k = (k + 1) & t->static_mask) {
            const hyi_sroute *s = &t->statics[k];
            if (!s->rec)
                break;
            if (s->hash == h && s->rec->text_len == rl && hyi_eq(s->rec->text, rest, rl)) {
                m->route = s->rec->udata;
                m->nparams = 0;
                return 0;
            }
        }
        if (t->only_static)
            goto none;
    }
    mctx c;
    c.t = t;
    c.path = path;
    c.p = p;
    c.md = md;
    c.caps = m->params;
    c.hashed = 0;
    const hyi_route_rec *r = walk(&c, 0, 0, 0);
    if (r) {
        m->route = r->udata;
        m->nparams = r->nparams;
        return 0;
    }
none:
    m->route = NULL;
    m->nparams = 0;
    return HY_ENOROUTE;
}
