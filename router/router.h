/* The router: turns a path into (subsystem, route, captured params).
 *
 * Paths: "subsystem://seg/seg/...". Route patterns (relative to a subsystem):
 * static segments, {name} (one segment), {name:REGEX} (PCRE2, JIT, anchored to
 * the whole segment), * (one segment), ** (zero or more remaining segments, last
 * only); "" is the subsystem's root route ("orders://").
 * Precedence per segment, most specific first: static, {name:REGEX}, {name}, *,
 * **; a branch that fails further down backtracks to the next candidate; on a
 * true tie the route added first wins.
 *
 * Readers never block: a change builds a new immutable table and publishes it
 * with one atomic pointer swap; the old table is freed only when no reader can
 * still hold it. */
#ifndef HY_ROUTER_H
#define HY_ROUTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "epoch.h"
#include "hy_common.h"
#include "hypha.h"

#define HYI_PATH_MAX      HY_PATH_MAX     /* bytes, whole path (hypha.h) */
#define HYI_MAX_SEGMENTS  HY_MAX_SEGMENTS
#define HYI_MAX_PARAMS    16   /* captures per route */
#define HYI_NAME_MAX      64   /* subsystem name and param name, bytes */

typedef struct hyi_router hyi_router;

/* The part of a router the inline readers below see; router.c's struct
 * begins with it. */
typedef struct hyi_router_head {
    _Atomic uint64_t generation; /* changes with every published table */
} hyi_router_head;

/* A capture: a slice of the matched path, no copy. */
typedef struct hyi_slice {
    uint16_t off;
    uint16_t len;
} hyi_slice;

/* Result of a match. Captures are in pattern order, one for each {name},
 * {name:REGEX}, * and ** segment (a ** that matched nothing has len 0). */
typedef struct hyi_match {
    void *subsystem;  /* udata of the subsystem, set whenever the subsystem exists */
    void *route;      /* udata of the matched route; NULL when none matched */
    uint32_t nparams;
    hyi_slice params[HYI_MAX_PARAMS];
} hyi_match;

/* The names of a pattern's captures, in the same order as hyi_match.params:
 * "id" for {id} and {id:\d+}, "*" for *, "**" for **. */
typedef struct hyi_param_names {
    uint32_t n;
    char name[HYI_MAX_PARAMS][HYI_NAME_MAX + 1];
} hyi_param_names;

/* Why a registration failed: a message and the byte offset in the pattern
 * (-1 when no position applies). PCRE2's own message is included for regexes. */
typedef struct hyi_route_error {
    long offset;
    char message[256];
} hyi_route_error;

int hyi_router_create(hyi_router **out);
/* No reader may use the router during or after this call. */
void hyi_router_destroy(hyi_router *r);

/* Subsystems. Names: [a-z][a-z0-9_-]{0,63}. HY_EINVAL for a bad name,
 * HY_EEXIST for a duplicate, HY_ENOMEM. */
int hyi_router_add_subsystem(hyi_router *r, const char *name, void *udata);

/* Routes. HY_EBADPATTERN (err says what and where), HY_EEXIST for a duplicate
 * pattern in that subsystem, HY_ENOENT for an unknown subsystem, HY_ENOMEM.
 * err may be NULL.
 * Duplicates are by shape: parameter names do not count, so "item/{a}" then
 * "item/{b}" (or "{a:\d+}" then "{b:\d+}", same regex source) is HY_EEXIST;
 * "item/{a:\d+}" and "item/{b:[0-9]+}" are two routes (a true tie when both
 * match: the first added wins).
 * Each change rebuilds the subsystem's table (O(its routes)); to register many
 * routes, hyi_router_add_routes does it once. Changes never block matchers;
 * they return once no match can still see the table they replaced. */
int hyi_router_add_route(hyi_router *r, const char *subsystem, const char *pattern,
                         void *udata, hyi_route_error *err);

typedef struct hyi_route_spec {
    const char *pattern;
    void *udata;
} hyi_route_spec;

/* Add n routes to one subsystem, all or none, with a single rebuild. Errors as
 * hyi_router_add_route; *failed (may be NULL) is the index of the route at
 * fault. Registration order (for ties) is the array order. */
int hyi_router_add_routes(hyi_router *r, const char *subsystem, const hyi_route_spec *routes,
                          size_t n, hyi_route_error *err, size_t *failed);

/* Remove the route registered with exactly this pattern text. HY_ENOENT when
 * the subsystem or the pattern is not registered. The route's udata is the
 * caller's to free once this returns: no match, even one already under way,
 * returns it any more. */
int hyi_router_remove_route(hyi_router *r, const char *subsystem, const char *pattern);

/* Parse a pattern without registering it: checks it fully (regexes compiled) and
 * gives its capture names. HY_EBADPATTERN with err filled. */
int hyi_pattern_parse(const char *pattern, hyi_param_names *names, hyi_route_error *err);

/* Match a path of len bytes (len need not be followed by a NUL). Returns 0,
 * HY_EBADPATH (malformed; nothing allocated) or HY_ENOROUTE (m->subsystem tells
 * whether the subsystem exists). Thread-safe against concurrent changes; no
 * allocation, except a thread's first match, which registers the thread's
 * reader slot (HY_ENOMEM if that fails; released when the thread exits). */
int hyi_router_match(hyi_router *r, const char *path, size_t len, hyi_match *m);

/* A read-side section around a match and the use of its result: while a
 * thread is inside one, no route udata it matched is removed from under it
 * (remove_route and remove_subsystem wait for it) and hyi_router_synchronize
 * waits for it. Sections nest (hyi_router_match opens its own inside) and
 * never block. enter returns HY_ENOMEM only if the thread's first section
 * cannot allocate its slot; exit is then a no-op. Never call a writer function
 * (add, remove, synchronize) inside a section: it would wait for itself. */
static inline __attribute__((always_inline)) int hyi_router_read_enter(hyi_router *r)
{
    (void)r; /* slots are process-wide: one section covers every router */
    return hyi_epoch_enter() ? 0 : HY_ENOMEM;
}

static inline __attribute__((always_inline)) void hyi_router_read_exit(hyi_router *r)
{
    (void)r;
    hyi_reader *rd = hyi_epoch_self();
    if (HY_LIKELY(rd && rd->depth))
        hyi_epoch_leave(rd);
}
/* Wait until every read section that was open when this was called has
 * closed. A seq_cst store made before it is seen by every section that opens
 * after it returns and by every section it did not wait for. */
void hyi_router_synchronize(hyi_router *r);

/* The current table's generation: it changes with every change to any route
 * or subsystem, and no two tables (of any router in the process) share one.
 * Read inside a read section, it lets a caller reuse a match it made at the
 * same generation until the section ends: a writer that changed the table
 * afterwards still waits for the section before freeing anything. */
static inline uint64_t hyi_router_generation(hyi_router *r)
{
    /* seq_cst: ordered after the caller's section entry (router.c, changed) */
    return atomic_load_explicit(&((hyi_router_head *)r)->generation, memory_order_seq_cst);
}

/* Remove a subsystem and all its routes. HY_ENOENT if it is not registered.
 * Its udata and its routes' udata are the caller's once this returns. */
int hyi_router_remove_subsystem(hyi_router *r, const char *name);

/* Validate a path alone (the rules hyi_router_match applies first). */
int hyi_path_check(const char *path, size_t len);

/* Bytes held by the current table (tries, regex code, names), for the bench. */
size_t hyi_router_memory(hyi_router *r);

#endif
