/* Sending: hy_send, hy_send_durable, hy_send_batch and hyi_deliver.
 *
 * A send validates and routes the path (the router does both in one pass),
 * takes one pooled object for the whole message, copies path and payload into
 * it, finds the actor, asks a bounded mailbox for room, and delivers.
 * Everything a send reads of the kernel is either immutable after registration
 * or atomic, and the whole send runs inside a router read section so
 * hy_kernel_shutdown can wait it out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel.h"

/* The actor a message for this route goes to. */
static inline __attribute__((always_inline)) int
route_actor(hy_kernel *k, hyi_route_binding *route, const hy_msg *msg, hyi_actor **out)
{
    if (route->key_index < 0) {
        *out = route->sub->actor;
        return 0;
    }
    hyi_slice key = msg->params[route->key_index];
    return hyi_actor_get(k, route->sub, hyi_msg_path(msg) + key.off, key.len, out);
}

/* hyi_deliver, inlined into the send path. */
static inline __attribute__((always_inline)) void
deliver(hy_kernel *k, hyi_actor *actor, hy_msg *first, hy_msg *last, uint64_t n)
{
    /* relaxed: drain compares sent with handled; handled's release/acquire
     * pair carries the ordering it needs, and `sent` only has to be counted
     * before the message can be handled, which the push below ensures. */
    atomic_fetch_add_explicit(&first->route->sub->sent, n, memory_order_relaxed);
    hyi_actor_push(k, actor, &first->link, &last->link);
}

void hyi_deliver(hy_kernel *k, hyi_actor *actor, hy_msg *first, hy_msg *last, uint64_t n)
{
    deliver(k, actor, first, last, n);
}

static inline __attribute__((always_inline)) int
check_send_args(hy_kernel *k, const char *path, const void *payload,
                           size_t len, size_t *path_len)
{
    if (HY_UNLIKELY(!k || !path || (!payload && len)))
        return hyi_fail(HY_EINVAL, "hy_send: NULL kernel, path or payload");
    if (HY_UNLIKELY(len > k->max_payload))
        return hyi_fail(HY_ETOOBIG, "payload of %zu bytes; this kernel's limit is %zu",
                        len, k->max_payload);
    /* One byte past the limit is enough to call the path too long. */
    *path_len = strnlen(path, HYI_PATH_MAX + 1);
    return 0;
}

static inline __attribute__((always_inline)) bool kernel_closed(hy_kernel *k)
{
    /* seq_cst: ordered after our read-section entry, so a shutdown that set
     * closed and then synchronised either waits for us or is seen here. */
    return atomic_load_explicit(&k->closed, memory_order_seq_cst) != 0;
}

/* Build the message for a matched path and find its actor; the caller admits
 * and delivers. On failure nothing is left allocated. */
static inline __attribute__((always_inline)) int
place(hy_kernel *k, const hyi_match *m, const char *path, size_t path_len,
                 const void *payload, size_t len, const char *reply_to, bool slot,
                 const hyi_stamp *stamp, hy_msg **msg_out, hyi_actor **actor_out)
{
    hyi_route_binding *route = m->route;
    /* A route without a scope pays this one branch. */
    if (HY_UNLIKELY(route->scope) && !hyi_principal_holds(stamp->principal, route->scope))
        return hyi_refuse(route, stamp->principal);
    hy_msg *msg =
            hyi_msg_build(k, route, m, path, path_len, payload, len, reply_to, slot, stamp);
    if (HY_UNLIKELY(!msg))
        return hyi_fail(HY_ENOMEM, "message pool at its cap");
    int rc = route_actor(k, route, msg, actor_out);
    if (HY_UNLIKELY(rc != 0)) {
        /* state_init refused the actor: the sender gets the error, and the
         * message counts as failed (as hypha.h says); it was never accepted,
         * so it is not a dead letter. relaxed: a statistic */
        if (rc == HY_EHANDLER)
            atomic_fetch_add_explicit(&route->sub->failed, 1, memory_order_relaxed);
        hyi_msg_release(k, msg);
        return rc;
    }
    *msg_out = msg;
    return 0;
}

/* HY_OVERFLOW_BLOCK: wait (polling with a growing pause) until the mailbox has
 * room, then take it. A sender waits, never a worker. */
int hyi_wait_for_room(hyi_actor *a, const char *name, int64_t capacity, int timeout_ms)
{
    uint64_t deadline = hyi_deadline_ns(timeout_ms);
    long pause_ns = 1000;
    hyi_schedule_flush(); /* a worker makes the room: wake it if this thread put that off */
    for (;;) {
        /* relaxed: a hint; the fetch_add below decides */
        if (atomic_load_explicit(&a->depth, memory_order_relaxed) < capacity) {
            /* relaxed: the count only bounds the mailbox; the push orders the
             * message itself */
            if (atomic_fetch_add_explicit(&a->depth, 1, memory_order_relaxed) < capacity)
                return 0;
            atomic_fetch_sub_explicit(&a->depth, 1, memory_order_relaxed);
        }
        if (hyi_now_ns() >= deadline)
            return hyi_fail(HY_EFULL, "mailbox of '%s' stayed full for %d ms", name,
                            timeout_ms);
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 1000000)
            pause_ns *= 2;
    }
}

/* Admission to an actor of sub, under the subsystem's bound. */
static inline __attribute__((always_inline)) int admit(hy_kernel *k, hyi_subsys *sub,
                                                       hyi_actor *a)
{
    return hyi_admit(k, sub->name, &sub->bound, a);
}

/* Admit one message: 1 when the caller may deliver it, 0 when the policy
 * took it and dropped it, or an error (the message is released). */
static inline __attribute__((always_inline)) int
admit_msg(hy_kernel *k, hyi_actor *actor, hy_msg *msg)
{
    hyi_subsys *sub = msg->route->sub;
    int rc = admit(k, sub, actor);
    if (HY_LIKELY(rc == HYI_ADMIT))
        return 1;
    if (rc == HYI_ADMIT_DROP) {
        /* Accepted by policy and dropped at once: sent, and a dead letter. */
        atomic_fetch_add_explicit(&sub->sent, 1, memory_order_relaxed);
        if (HY_UNLIKELY(sub->persistent))
            hyi_persist_dropped(msg);
        hyi_dead_letter_msg(k, msg, HY_DEAD_DROPPED);
        hyi_msg_release(k, msg);
        return 0;
    }
    if (rc == HY_EFULL)
        hyi_dead_letter(k, hyi_msg_path(msg), msg->path_len, hyi_msg_payload(msg),
                        msg->payload_len, HY_DEAD_FULL);
    hyi_msg_release(k, msg);
    return rc;
}

/* Admit and deliver one message (a persistent subsystem's: journal it, it
 * is delivered once durable), or account for why not. */
static inline __attribute__((always_inline)) int
admit_and_deliver(hy_kernel *k, hyi_actor *actor, hy_msg *msg, bool persistent)
{
    int rc = admit_msg(k, actor, msg);
    if (HY_UNLIKELY(rc != 1))
        return rc;
    if (HY_UNLIKELY(persistent))
        return msg->route->read_only ? hyi_persist_deliver_read(k, actor, msg)
                                     : hyi_persist_submit(k, actor, msg);
    deliver(k, actor, msg, msg, 1);
    return 0;
}

/* What a send that matches no route is, as a dead letter: HY_DEAD_NOROUTE
 * unless this thread said otherwise (hy_ext_noroute_reason: a built-in's own
 * thread, such as the timer thread). Read on the failure path only. */
static _Thread_local hy_dead_reason tl_noroute_reason = HY_DEAD_NOROUTE;

void hy_ext_noroute_reason(hy_dead_reason reason)
{
    tl_noroute_reason = (unsigned)reason < HY_DEAD__COUNT ? reason : HY_DEAD_NOROUTE;
}

/* HY_EBADPATH with a detail that names the limit a path broke, if one. */
static int bad_path(const char *path, size_t path_len)
{
    if (path_len > HY_PATH_MAX)
        return hyi_fail(HY_EBADPATH, "path longer than HY_PATH_MAX (%d bytes): '%.40s...'",
                        HY_PATH_MAX, path);
    const char *sep = memmem(path, path_len, "://", 3);
    size_t segments = 1;
    for (const char *c = sep ? sep + 3 : path; c < path + path_len; c++)
        segments += *c == '/';
    if (sep && segments > HY_MAX_SEGMENTS)
        return hyi_fail(HY_EBADPATH, "path of %zu segments, more than HY_MAX_SEGMENTS (%d): "
                        "'%.*s'", segments, HY_MAX_SEGMENTS, (int)path_len, path);
    /* The router said why (router/path.c); keep it. */
    char why[128];
    snprintf(why, sizeof why, "%s", hyi_errdetail());
    return hyi_fail(HY_EBADPATH, "malformed path '%.*s': %s; want subsystem://segments, the "
                    "name [a-z][a-z0-9_-]*, segments of printable bytes (valid UTF-8) but "
                    "/ ? # { } *",
                    (int)path_len, path, why[0] ? why : "bad byte");
}

static int match(hy_kernel *k, const char *path, size_t path_len, const void *payload,
                 size_t len, hyi_match *m)
{
    int rc = hyi_router_match(k->router, path, path_len, m);
    if (HY_UNLIKELY(rc == HY_EBADPATH))
        return bad_path(path, path_len);
    if (HY_LIKELY(rc != HY_ENOROUTE))
        return rc;
    hyi_dead_letter(k, path, path_len, payload, len, tl_noroute_reason);
    return m->subsystem
                   ? hyi_fail(rc, "no route of its subsystem matches '%.*s'", (int)path_len, path)
                   : hyi_fail(rc, "no subsystem for path '%.*s'", (int)path_len, path);
}

/* The last few paths this thread routed, and the matches they got. A sender
 * usually repeats a few paths (one, or two for a request and its reply);
 * while the bytes and the router's generation are the same, routing would give
 * the same answer. The last 8 bytes of the path reject most other entries
 * with one compare, so a sender that never repeats pays little. */
#define ROUTE_CACHE_WAYS 4
/* An entry of 256 bytes on LP64, so finding the last way is a shift. */
#define ROUTE_CACHE_PATH 144

typedef struct route_entry {
    uint64_t generation; /* 0: empty; unique to one table of one router */
    uint64_t tail;   /* the path's last 8 bytes (fewer for short paths) */
    size_t len;
    hyi_match m;
    char path[ROUTE_CACHE_PATH];
} route_entry;

/* A thread whose last ROUTE_MISS_LIMIT lookups all missed (it cycles through
 * many paths: keyed actors, fan-out) stops using the cache for the next
 * ROUTE_BYPASS sends, so it pays one branch instead of the misses. */
#define ROUTE_MISS_LIMIT 64
#define ROUTE_BYPASS 1024

static _Thread_local struct {
    route_entry way[ROUTE_CACHE_WAYS];
    unsigned next;      /* round-robin victim */
    unsigned last;      /* the way that answered last */
    unsigned misses;    /* in a row */
    unsigned bypass;    /* sends left that skip the cache */
} tl_routes;

static inline uint64_t path_tail(const char *path, size_t len)
{
    uint64_t t = 0;
    /* A constant size is one load; a variable one a call or a byte loop. */
    if (HY_LIKELY(len >= 8))
        memcpy(&t, path + len - 8, 8);
    else
        memcpy(&t, path, len);
    return t;
}

/* Two paths of len bytes whose path_tail values are equal: compares the
 * bytes before the tail, 8 at a time (a library memcmp call costs more than
 * the comparison for paths of a few words). */
static inline bool path_head_equal(const char *a, const char *b, size_t len)
{
    /* The last word compared ends before len; the tail covers the rest. */
    for (size_t i = 0; i + 8 < len; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return false;
    }
    return true;
}

/* A lookup the cache could not answer: route the path, and cache the match
 * unless this thread is bypassing the cache. Out of line, so the hit path
 * inlined into each send saves no registers for it. */
static __attribute__((noinline)) int
match_uncached(hy_kernel *k, const char *path, size_t path_len, const void *payload,
               size_t len, uint64_t generation, const hyi_match **out)
{
    route_entry *e;
    if (HY_UNLIKELY(tl_routes.bypass)) {
        tl_routes.bypass--;
        e = &tl_routes.way[0];
        e->generation = 0; /* used as scratch, not as a cache entry */
        *out = &e->m;
        return match(k, path, path_len, payload, len, &e->m);
    }
    if (++tl_routes.misses == ROUTE_MISS_LIMIT) {
        tl_routes.misses = 0;
        tl_routes.bypass = ROUTE_BYPASS;
    }
    unsigned victim = tl_routes.next++ % ROUTE_CACHE_WAYS;
    e = &tl_routes.way[victim];
    e->generation = 0; /* invalid until refilled */
    int rc = match(k, path, path_len, payload, len, &e->m);
    if (rc != 0)
        return rc;
    if (path_len <= ROUTE_CACHE_PATH) {
        memcpy(e->path, path, path_len);
        e->len = path_len;
        e->tail = path_tail(path, path_len);
        e->generation = generation;
        tl_routes.last = victim;
    }
    *out = &e->m;
    return 0;
}

static inline __attribute__((always_inline)) bool
entry_matches(const route_entry *e, const char *path, size_t path_len, uint64_t tail,
              uint64_t generation)
{
    /* No kernel to compare: a generation names one table of one router. */
    return e->tail == tail && e->len == path_len && e->generation == generation &&
           path_head_equal(e->path, path, path_len);
}

/* The match for path: a cached one, or a fresh one (then cached). Call inside
 * a read section. The result is valid only until this thread's next send (a
 * state_init callback may send): read it before calling out. The way that
 * answered last is tried first: a sender usually repeats its last path. */
static inline __attribute__((always_inline)) int
match_cached(hy_kernel *k, const char *path, size_t path_len, const void *payload,
             size_t len, const hyi_match **out)
{
    uint64_t generation = hyi_router_generation(k->router);
    if (HY_LIKELY(!tl_routes.bypass)) {
        uint64_t tail = path_tail(path, path_len);
        unsigned last = tl_routes.last;
        route_entry *e = &tl_routes.way[last];
        if (HY_LIKELY(entry_matches(e, path, path_len, tail, generation))) {
            tl_routes.misses = 0;
            *out = &e->m;
            return 0;
        }
        for (unsigned i = 0; i < ROUTE_CACHE_WAYS; i++) {
            e = &tl_routes.way[i];
            if (i != last && entry_matches(e, path, path_len, tail, generation)) {
                tl_routes.misses = 0;
                tl_routes.last = i;
                *out = &e->m;
                return 0;
            }
        }
    }
    return match_uncached(k, path, path_len, payload, len, generation, out);
}

/* A request (hook: its waiter) to a forwarding subsystem: its reply duty
 * goes with it, and *hooked says the request's reference is taken. */
static int forward_ask(hy_kernel *k, const hy_ext_forward_ops *ops, hyi_route_binding *route,
                       const char *path, size_t path_len, const void *payload, size_t len,
                       hyi_msg_hook *hook, bool *hooked)
{
    if (!ops->ask)
        return HY_EXT_FORWARD_DECLINE;
    int64_t deadline_ms;
    hy_ext_reply *r = hyi_reply_take(k, hook, &deadline_ms);
    if (!r)
        return HY_EXT_FORWARD_DECLINE;
    if (ops->ask(route->sub->fwd_self, route->udata, path, path_len, payload, len, r,
                 deadline_ms) == HY_EXT_FORWARD_DECLINE) {
        hyi_reply_untake(r);
        return HY_EXT_FORWARD_DECLINE;
    }
    if (hooked)
        *hooked = true;
    return 0;
}

/* A subsystem that forwards (hy_ext_forward_set) takes a plain or durable
 * send, or a request, on this thread; HY_EXT_FORWARD_DECLINE: deliver it as
 * usual. */
static __attribute__((noinline)) int
forward_to(hy_kernel *k, const hy_ext_forward_ops *ops, const hyi_match *m, const char *path,
           size_t path_len, const void *payload, size_t len, bool durable,
           void (*on_durable)(void *, int), void *udata, hyi_msg_hook *hook, bool *hooked)
{
    hyi_route_binding *route = m->route;
    if (hook)
        return forward_ask(k, ops, route, path, path_len, payload, len, hook, hooked);
    if (durable)
        return ops->send_durable ? ops->send_durable(route->sub->fwd_self, route->udata, path,
                                                     path_len, payload, len, on_durable, udata)
                                 : HY_EXT_FORWARD_DECLINE;
    return ops->send ? ops->send(route->sub->fwd_self, route->udata, path, path_len, payload,
                                 len)
                     : HY_EXT_FORWARD_DECLINE;
}

/* Inline: a subsystem that does not forward costs one load and a branch. */
static inline __attribute__((always_inline)) int
forward(hy_kernel *k, const hyi_match *m, const char *path, size_t path_len,
        const void *payload, size_t len, bool durable, void (*on_durable)(void *, int),
        void *udata, hyi_msg_hook *hook, bool *hooked)
{
    hyi_route_binding *route = m->route;
    /* acquire: pairs with hy_ext_forward_set's release (fwd_self) */
    const hy_ext_forward_ops *ops = atomic_load_explicit(&route->sub->fwd, memory_order_acquire);
    if (HY_LIKELY(!ops))
        return HY_EXT_FORWARD_DECLINE;
    return forward_to(k, ops, m, path, path_len, payload, len, durable, on_durable, udata, hook,
                      hooked);
}

/* hyi_send, and hy_send_durable when durable is set. Inlined into each
 * caller: hy_send passes constants for most arguments, and the call itself
 * (twelve arguments, the saved registers of a large body) cost about a tenth
 * of a static send's instructions. */
static inline __attribute__((always_inline)) int
send_one(hy_kernel *k, hy_principal *const *as, const char *path,
                    const void *payload, size_t len, const char *reply_to, hyi_msg_hook *hook,
                    bool *hooked, bool durable, void (*on_durable)(void *, int), void *udata,
                    uint8_t flags)
{
    /* read once: the stamp needs it too */
    hy_ctx *running = hyi_running;
    if (HY_UNLIKELY(running && running->replaying))
        return hyi_persist_suppressed(k); /* as HYI_SUPPRESS_IF_REPLAYING */
    size_t path_len = 0;
    int rc = check_send_args(k, path, payload, len, &path_len);
    if (HY_UNLIKELY(rc == 0 && as && *as && (*as)->k != k))
        rc = hyi_fail(HY_EINVAL, "principal '%s' belongs to another kernel", (*as)->name);
    if (HY_UNLIKELY(rc != 0))
        return rc;
    rc = hyi_router_read_enter(k->router);
    if (HY_UNLIKELY(rc != 0))
        return rc;
    if (HY_UNLIKELY(kernel_closed(k))) {
        hyi_router_read_exit(k->router);
        return hyi_fail(HY_ECLOSED, "the kernel is shut down");
    }
    const hyi_match *m = NULL;
    hy_msg *msg = NULL;
    hyi_actor *actor;
    rc = match_cached(k, path, path_len, payload, len, &m);
    if (HY_LIKELY(rc == 0) && !reply_to && !flags) {
        int f = forward(k, m, path, path_len, payload, len, durable, on_durable, udata, hook,
                        hooked);
        if (f != HY_EXT_FORWARD_DECLINE) {
            hyi_router_read_exit(k->router);
            return f;
        }
    }
    hyi_stamp stamp;
    hyi_stamp_take_in(k, running, &stamp);
    if (HY_UNLIKELY(as != NULL))
        stamp.principal = *as;
    /* Read once (fixed at registration): the checks below would each load
     * it again, the compiler cannot tell that the stores between leave it. */
    bool persistent = false;
    if (HY_LIKELY(rc == 0)) {
        persistent = ((hyi_route_binding *)m->route)->sub->persistent;
        rc = place(k, m, path, path_len, payload, len, reply_to, hook != NULL, &stamp, &msg,
                   &actor);
    }
    if (HY_UNLIKELY(rc == 0 && flags))
        msg->flags |= flags;
    if (HY_UNLIKELY(rc == 0 && hook)) {
        /* held from here on: every path below releases or delivers msg */
        *hyi_msg_slot(msg) = hook;
        if (hooked)
            *hooked = true;
    }
    if (HY_UNLIKELY(rc == 0 && (durable || persistent))) {
        rc = hyi_persist_prepare(k, actor, msg, durable, on_durable, udata);
        if (rc != 0)
            hyi_msg_release(k, msg);
    }
    if (HY_LIKELY(rc == 0))
        rc = admit_and_deliver(k, actor, msg, persistent);
    hyi_router_read_exit(k->router);
    return rc;
}

int hyi_send(hy_kernel *k, hy_principal *const *as, const char *path, const void *payload,
             size_t len, const char *reply_to, hyi_msg_hook *hook, bool *hooked)
{
    return send_one(k, as, path, payload, len, reply_to, hook, hooked, false, NULL, NULL, 0);
}

int hyi_send_flagged(hy_kernel *k, const char *path, const void *payload, size_t len,
                     uint8_t flags)
{
    return send_one(k, NULL, path, payload, len, NULL, NULL, NULL, false, NULL, NULL, flags);
}

int hy_send_durable(hy_kernel *k, const char *path, const void *payload, size_t len,
                    void (*on_durable)(void *udata, int status), void *udata)
{
    return send_one(k, NULL, path, payload, len, NULL, NULL, NULL, true, on_durable, udata, 0);
}

int hy_send_durable_as(hy_kernel *k, hy_principal *p, const char *path, const void *payload,
                       size_t len, void (*on_durable)(void *udata, int status), void *udata)
{
    return send_one(k, &p, path, payload, len, NULL, NULL, NULL, true, on_durable, udata, 0);
}

int hy_send(hy_kernel *k, const char *path, const void *payload, size_t len)
{
    return send_one(k, NULL, path, payload, len, NULL, NULL, NULL, false, NULL, NULL, 0);
}

int hy_send_as(hy_kernel *k, hy_principal *p, const char *path, const void *payload,
               size_t len)
{
    return send_one(k, &p, path, payload, len, NULL, NULL, NULL, false, NULL, NULL, 0);
}

/* hy_send_batch keeps one open chain per destination actor, in first-seen
 * order, and pushes each chain once at the end (or when the table is full), so
 * messages to one actor stay in order and each actor is woken once. */
#define BATCH_CHAINS 16

typedef struct chain {
    hyi_actor *actor;
    hy_msg *first, *last;
    uint64_t n;
} chain;

static void flush_chains(hy_kernel *k, chain *chains, unsigned *nchains)
{
    for (unsigned i = 0; i < *nchains; i++)
        hyi_deliver(k, chains[i].actor, chains[i].first, chains[i].last, chains[i].n);
    *nchains = 0;
}

static void chain_add(hy_kernel *k, chain *chains, unsigned *nchains, hyi_actor *actor,
                      hy_msg *msg)
{
    for (unsigned i = 0; i < *nchains; i++) {
        if (chains[i].actor == actor) {
            hyi_mpscq_link(&chains[i].last->link, &msg->link);
            chains[i].last = msg;
            chains[i].n++;
            return;
        }
    }
    if (*nchains == BATCH_CHAINS)
        flush_chains(k, chains, nchains);
    chains[(*nchains)++] = (chain){actor, msg, msg, 1};
}

/* The messages of a batch that go to persistent subsystems, submitted to
 * the journal together at the end (one group commit). */
typedef struct journal_group {
    hy_msg **msgs;
    size_t n, first_item; /* first_item: the batch index of msgs[0] */
    hy_msg *inline_msgs[32];
} journal_group;

/* Room for one more (before admission, so a failure leaves nothing to undo). */
static int group_reserve(journal_group *g, size_t batch_n)
{
    if (g->n < HY_ARRAY_LEN(g->inline_msgs) || g->msgs != g->inline_msgs)
        return 0;
    hy_msg **m = malloc(batch_n * sizeof *m);
    if (!m)
        return hyi_fail(HY_ENOMEM, "hy_send_batch: no memory for the journal group");
    memcpy(m, g->msgs, g->n * sizeof *m);
    g->msgs = m;
    return 0;
}

/* Admit a persistent message into the group; 0 or an error (released). */
static int group_add(hy_kernel *k, journal_group *g, hyi_actor *actor, hy_msg *msg,
                     size_t item, size_t batch_n)
{
    int rc = hyi_persist_prepare(k, actor, msg, false, NULL, NULL);
    if (rc == 0)
        rc = group_reserve(g, batch_n);
    if (rc != 0) {
        hyi_msg_release(k, msg);
        return rc;
    }
    rc = admit_msg(k, actor, msg);
    if (rc != 1)
        return rc;
    if (g->n == 0)
        g->first_item = item;
    g->msgs[g->n++] = msg;
    return 0;
}

/* Submit the group's messages to the journal and empty it. On failure
 * (nothing of the group accepted) *done goes back to its first item. */
static int group_submit(hy_kernel *k, journal_group *g, size_t *done)
{
    int rc = hyi_persist_submit_batch(k, g->msgs, g->n);
    if (HY_UNLIKELY(rc != 0))
        *done = g->first_item;
    g->n = 0;
    return rc;
}

static int send_batch(hy_kernel *k, hy_principal *const *as, const hy_send_item *items,
                      size_t n, size_t *accepted)
{
    size_t done = 0;
    int rc = 0;
    if (accepted)
        *accepted = 0;
    if (HY_UNLIKELY(hyi_running && hyi_running->replaying)) {
        /* persistent.c: as it went live, without sending anything */
        if (accepted)
            *accepted = n;
        return hyi_persist_suppressed(k);
    }
    if (!k || (n && !items))
        return hyi_fail(HY_EINVAL, "hy_send_batch: NULL kernel or items");
    if (as && *as && (*as)->k != k)
        return hyi_fail(HY_EINVAL, "principal '%s' belongs to another kernel", (*as)->name);
    rc = hyi_router_read_enter(k->router);
    if (rc != 0)
        return rc;
    if (kernel_closed(k)) {
        hyi_router_read_exit(k->router);
        return hyi_fail(HY_ECLOSED, "the kernel is shut down");
    }
    chain chains[BATCH_CHAINS];
    unsigned nchains = 0;
    hyi_stamp stamp; /* one moment for the whole batch */
    hyi_stamp_take(k, &stamp);
    if (as)
        stamp.principal = *as;
    journal_group group;
    group.msgs = group.inline_msgs;
    group.n = group.first_item = 0;
    /* The last route looked up, reused while the path repeats. */
    const char *last_path = NULL;
    size_t last_len = 0;
    hyi_match m;
    for (; done < n; done++) {
        const hy_send_item *it = &items[done];
        size_t path_len = 0;
        rc = check_send_args(k, it->path, it->payload, it->len, &path_len);
        if (rc != 0)
            break;
        bool same = last_path && path_len == last_len &&
                    (it->path == last_path || memcmp(it->path, last_path, path_len) == 0);
        if (!same) {
            rc = match(k, it->path, path_len, it->payload, it->len, &m);
            if (rc != 0)
                break;
            last_path = it->path;
            last_len = path_len;
        }
        /* a forwarding subsystem's items go out back to back from here */
        rc = forward(k, &m, it->path, path_len, it->payload, it->len, false, NULL, NULL, NULL,
                     NULL);
        if (rc != HY_EXT_FORWARD_DECLINE) {
            if (rc != 0)
                break;
            continue;
        }
        hy_msg *msg = NULL;
        hyi_actor *actor;
        rc = place(k, &m, it->path, path_len, it->payload, it->len, NULL, false, &stamp,
                   &msg, &actor);
        if (rc != 0)
            break;
        hyi_subsys *sub = msg->route->sub;
        if (HY_UNLIKELY(sub->persistent && msg->route->read_only)) {
            /* It comes after the journaled messages before it (their
             * tickets): submit those first. */
            rc = group_submit(k, &group, &done);
            if (rc == 0)
                rc = hyi_persist_prepare(k, actor, msg, false, NULL, NULL);
            if (rc != 0) {
                hyi_msg_release(k, msg);
                break;
            }
            rc = admit_and_deliver(k, actor, msg, true);
            if (rc != 0)
                break;
            continue;
        }
        if (HY_UNLIKELY(sub->persistent)) {
            rc = group_add(k, &group, actor, msg, done, n);
            if (rc != 0)
                break;
            continue;
        }
        /* Bounded or stopped actors take messages one at a time, through the
         * same admission as hy_send. relaxed: as in admit() */
        if (sub->bound.capacity || atomic_load_explicit(&actor->stopped, memory_order_relaxed)) {
            rc = admit_and_deliver(k, actor, msg, false);
            if (rc != 0)
                break;
            continue;
        }
        chain_add(k, chains, &nchains, actor, msg);
    }
    flush_chains(k, chains, &nchains);
    int jrc = group_submit(k, &group, &done);
    if (HY_UNLIKELY(jrc != 0))
        rc = jrc;
    if (group.msgs != group.inline_msgs)
        free(group.msgs);
    hyi_router_read_exit(k->router);
    if (accepted)
        *accepted = done;
    return rc;
}

int hy_send_batch(hy_kernel *k, const hy_send_item *items, size_t n, size_t *accepted)
{
    return send_batch(k, NULL, items, n, accepted);
}

int hy_send_batch_as(hy_kernel *k, hy_principal *p, const hy_send_item *items, size_t n,
                     size_t *accepted)
{
    return send_batch(k, &p, items, n, accepted);
}
