/* Publish/subscribe: hy_subscribe, hy_unsubscribe, hy_publish.
 *
 * A subscription is a full path pattern ("orders://item/{id}") compiled into a
 * private router of one subsystem and one route, a route binding (handler,
 * udata, capture names) and an actor of the kernel's internal "kernel"
 * subsystem, so its handler runs one message at a time like any actor's, and
 * drain and stats count what it is sent.
 *
 * A publish scans every live subscription: O(subscriptions) per publish, with a
 * byte compare of the subsystem name before the private router is asked. It is
 * not the hot path; an index by subsystem would be the next step if it became
 * one. The path and payload go once into a pooled, reference-counted body; each
 * matching subscription gets a small envelope (its own captures and metadata,
 * flag HYI_MSG_SHARED, its slot holding the body's release hook) delivered
 * with hyi_deliver.
 * The last envelope released frees the body.
 *
 * The live subscriptions are a copy-on-write array: publish reads it inside a
 * router read section without a lock; subscribe and unsubscribe (serialised by
 * a mutex) publish a new array and wait out the readers of the old one with the
 * router's epoch before freeing it. So once hy_unsubscribe returns, no publish
 * delivers to that subscription any more. A subscription itself, live or not,
 * is freed at kernel close: messages already queued to it are still handled.
 *
 * A subscription's mailbox has its own bound (hy_subscribe_opts, else
 * hy_config's default, as a subsystem that sets none), kept in its actor and
 * applied by the same admission as a send (hyi_admit, kernel.h): a full one
 * refuses (FAIL, BLOCK past its timeout: a dead letter HY_DEAD_FULL, the
 * publish goes on to the others and returns HY_EFULL), drops the new copy
 * (DROP_NEWEST: counted sent under "kernel", dead letter HY_DEAD_DROPPED) or
 * lets the worker drop the oldest. A subscriber whose handler fails is
 * counted under "kernel" (failed, dead FAILED) and goes on. On HY_ENOMEM
 * midway, *delivered still says how many got the message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

/* The body: this header, then (HYI_SHARED_BODY_OFF bytes in) a hy_msg
 * holding path and payload (no params). Each envelope's slot points at the
 * header's hook, which drops the envelope's reference. */
#define BODY_HEAD HYI_SHARED_BODY_OFF

typedef struct body_head {
    hyi_msg_hook hook;
    _Atomic uint32_t refs;
} body_head;

_Static_assert(sizeof(body_head) <= BODY_HEAD, "the body header outgrew its room");

typedef struct subscription {
    uint64_t id;                  /* its actor's id */
    char name[32];                /* "subscription N", for admission's errors */
    hyi_router *router;           /* private: one subsystem, one route */
    hyi_route_binding *binding;   /* handler, udata, capture names */
    hyi_actor *actor;
    size_t sys_len;               /* the pattern's subsystem name, for a cheap */
    char sys[HYI_NAME_MAX + 1];   /* first filter before the router */
    struct subscription *next_all;
} subscription;

/* An immutable array of the live subscriptions. */
typedef struct sub_set {
    size_t n;
    subscription *s[];
} sub_set;

struct hyi_pubsub {
    pthread_mutex_t lock;      /* serialises subscribe and unsubscribe */
    _Atomic(sub_set *) live;   /* NULL: none */
    subscription *all;         /* every subscription made, freed at close */
};

int hyi_pubsub_init(hy_kernel *k)
{
    hyi_pubsub *ps = calloc(1, sizeof *ps);
    if (!ps)
        return HY_ENOMEM;
    pthread_mutex_init(&ps->lock, NULL);
    /* relaxed: k is not shared yet */
    atomic_store_explicit(&ps->live, NULL, memory_order_relaxed);
    k->pubsub = ps;
    return 0;
}

static void subscription_free(hy_kernel *k, subscription *s)
{
    if (s->actor)
        hyi_actor_free(k, s->actor);
    if (s->router)
        hyi_router_destroy(s->router);
    if (s->binding)
        hyi_route_binding_free(s->binding);
    free(s);
}

void hyi_pubsub_free(hy_kernel *k)
{
    hyi_pubsub *ps = k->pubsub;
    if (!ps)
        return;
    for (subscription *s = ps->all, *next; s; s = next) {
        next = s->next_all;
        subscription_free(k, s);
    }
    /* relaxed: no other thread uses k any more (hy_kernel_close's contract) */
    free(atomic_load_explicit(&ps->live, memory_order_relaxed));
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    k->pubsub = NULL;
}

/* ------------------------------------------------------------ subscribe */

/* Fill the binding for the route part of a pattern: handler, udata, names. */
static int binding_new(hy_kernel *k, const char *pattern, const char *route, size_t route_at,
                       hy_handler handler, void *udata, hyi_route_binding **out)
{
    hyi_param_names names;
    hyi_route_error err;
    int rc = hyi_pattern_parse(route, &names, &err);
    if (rc == HY_EBADPATTERN)
        return hyi_fail(rc, "subscription pattern '%s': %s (at byte %ld)", pattern,
                        err.message, err.offset < 0 ? -1 : err.offset + (long)route_at);
    if (rc != 0)
        return rc;
    return hyi_route_binding_make(k->kernel_sub, pattern, &names, handler, udata, NULL, out);
}

/* Compile a pattern into a new, not yet live, subscription. */
static int subscription_new(hy_kernel *k, const char *pattern, const char *scope,
                            const hyi_bound *bound, hy_handler handler, void *udata,
                            subscription **out)
{
    const char *sep = strstr(pattern, "://");
    if (!sep)
        return hyi_fail(HY_EBADPATTERN,
                        "subscription pattern '%s': want subsystem://route (at byte %zu)",
                        pattern, strlen(pattern));
    size_t sys_len = (size_t)(sep - pattern);
    if (sys_len == 0 || sys_len > HYI_NAME_MAX)
        return hyi_fail(HY_EBADPATTERN,
                        "subscription pattern '%s': subsystem name of %zu bytes (at byte 0)",
                        pattern, sys_len);
    subscription *s = calloc(1, sizeof *s);
    if (!s)
        return HY_ENOMEM;
    memcpy(s->sys, pattern, sys_len);
    s->sys[sys_len] = '\0';
    s->sys_len = sys_len;
    const char *route = sep + 3;
    int rc = binding_new(k, pattern, route, sys_len + 3, handler, udata, &s->binding);
    if (rc == 0)
        rc = hyi_route_binding_scope(k, s->binding, scope);
    if (rc == 0)
        rc = hyi_router_create(&s->router);
    if (rc == 0) {
        rc = hyi_router_add_subsystem(s->router, s->sys, s->binding);
        if (rc == HY_EINVAL)
            rc = hyi_fail(HY_EBADPATTERN,
                          "subscription pattern '%s': bad subsystem name, want "
                          "[a-z][a-z0-9_-]{0,63} (at byte 0)",
                          pattern);
    }
    if (rc == 0) {
        hyi_route_error err;
        rc = hyi_router_add_route(s->router, s->sys, route, s->binding, &err);
        if (rc == HY_EBADPATTERN)
            rc = hyi_fail(rc, "subscription pattern '%s': %s (at byte %ld)", pattern,
                          err.message, err.offset < 0 ? -1 : err.offset + (long)sys_len + 3);
    }
    if (rc == 0)
        rc = hyi_actor_new(k, k->kernel_sub, NULL, 0, 0, &s->actor);
    if (rc != 0) {
        subscription_free(k, s);
        return rc;
    }
    s->id = s->actor->id;
    s->actor->bound = *bound; /* not shared yet: the set swap publishes it */
    snprintf(s->name, sizeof s->name, "subscription %llu", (unsigned long long)s->id);
    *out = s;
    return 0;
}

/* Make `next` the live set and free the old one once no publish can read it.
 * Called with ps->lock held, never inside a read section. */
static void set_swap(hy_kernel *k, hyi_pubsub *ps, sub_set *next)
{
    /* relaxed: only writers store `live`, and they hold ps->lock */
    sub_set *old = atomic_load_explicit(&ps->live, memory_order_relaxed);
    /* seq_cst: the store the router's epoch argument needs before its
     * synchronize (see router/epoch.c); it also releases the subscriptions
     * the new set points to */
    atomic_store_explicit(&ps->live, next, memory_order_seq_cst);
    hyi_router_synchronize(k->router);
    free(old);
}

int hy_subscribe(hy_kernel *k, const char *pattern, hy_handler handler, void *udata,
                 uint64_t *id)
{
    return hy_subscribe_ex(k, pattern, NULL, handler, udata, id);
}

int hy_subscribe_scoped(hy_kernel *k, const char *pattern, const char *scope,
                        hy_handler handler, void *udata, uint64_t *id)
{
    hy_subscribe_opts o = {.scope = scope};
    return hy_subscribe_ex(k, pattern, &o, handler, udata, id);
}

int hy_subscribe_ex(hy_kernel *k, const char *pattern, const hy_subscribe_opts *opts,
                    hy_handler handler, void *udata, uint64_t *id)
{
    if (id)
        *id = 0;
    if (!k || !pattern || !handler)
        return hyi_fail(HY_EINVAL, "hy_subscribe: NULL kernel, pattern or handler");
    hy_subscribe_opts o = opts ? *opts : (hy_subscribe_opts){0};
    if ((unsigned)o.overflow > HY_OVERFLOW_DROP_NEWEST)
        return hyi_fail(HY_EINVAL, "hy_subscribe: overflow = %d is not a hy_overflow",
                        (int)o.overflow);
    if (o.block_timeout_ms < 0)
        return hyi_fail(HY_EINVAL, "hy_subscribe: block_timeout_ms = %d is negative",
                        o.block_timeout_ms);
    /* As a subsystem's: 0 takes hy_config's bound and its policy. */
    const hy_config *c = &k->config;
    hyi_bound bound = {o.mailbox_capacity ? o.mailbox_capacity : c->mailbox_capacity,
                       o.mailbox_capacity ? o.overflow : c->overflow,
                       o.block_timeout_ms > 0 ? o.block_timeout_ms : c->block_timeout_ms};
    subscription *s;
    int rc = subscription_new(k, pattern, o.scope, &bound, handler, udata, &s);
    if (rc != 0)
        return rc;
    hyi_pubsub *ps = k->pubsub;
    pthread_mutex_lock(&ps->lock);
    /* relaxed: a subscribe racing shutdown may still slip in; harmless, since
     * publish checks `closed` itself and close frees every subscription */
    if (atomic_load_explicit(&k->closed, memory_order_relaxed)) {
        pthread_mutex_unlock(&ps->lock);
        subscription_free(k, s);
        return hyi_fail(HY_ECLOSED, "hy_subscribe: the kernel is shut down");
    }
    /* relaxed: writers hold ps->lock */
    sub_set *old = atomic_load_explicit(&ps->live, memory_order_relaxed);
    size_t n = old ? old->n : 0;
    sub_set *next = malloc(sizeof *next + (n + 1) * sizeof next->s[0]);
    if (!next) {
        pthread_mutex_unlock(&ps->lock);
        subscription_free(k, s);
        return HY_ENOMEM;
    }
    if (n)
        memcpy(next->s, old->s, n * sizeof next->s[0]);
    next->s[n] = s;
    next->n = n + 1;
    s->next_all = ps->all;
    ps->all = s;
    /* relaxed: a statistic (the subscription actors of hy_stats.actors) */
    atomic_fetch_add_explicit(&k->kernel_sub->keyed_actors, 1, memory_order_relaxed);
    set_swap(k, ps, next);
    pthread_mutex_unlock(&ps->lock);
    if (id)
        *id = s->id;
    return 0;
}

int hy_unsubscribe(hy_kernel *k, uint64_t id)
{
    if (!k)
        return hyi_fail(HY_EINVAL, "hy_unsubscribe: NULL kernel");
    hyi_pubsub *ps = k->pubsub;
    pthread_mutex_lock(&ps->lock);
    /* relaxed: writers hold ps->lock */
    sub_set *old = atomic_load_explicit(&ps->live, memory_order_relaxed);
    size_t n = old ? old->n : 0, at = n;
    for (size_t i = 0; i < n; i++)
        if (old->s[i]->id == id)
            at = i;
    if (at == n) {
        pthread_mutex_unlock(&ps->lock);
        return hyi_fail(HY_ENOENT, "no subscription %llu", (unsigned long long)id);
    }
    sub_set *next = NULL;
    if (n > 1) {
        next = malloc(sizeof *next + (n - 1) * sizeof next->s[0]);
        if (!next) {
            pthread_mutex_unlock(&ps->lock);
            return HY_ENOMEM;
        }
        memcpy(next->s, old->s, at * sizeof next->s[0]);
        memcpy(next->s + at, old->s + at + 1, (n - at - 1) * sizeof next->s[0]);
        next->n = n - 1;
    }
    /* relaxed: a statistic */
    atomic_fetch_sub_explicit(&k->kernel_sub->keyed_actors, 1, memory_order_relaxed);
    set_swap(k, ps, next);
    pthread_mutex_unlock(&ps->lock);
    return 0;
}

/* ------------------------------------------------------------ publish */

static hy_msg *body_of(body_head *h)
{
    return (hy_msg *)((char *)h + BODY_HEAD);
}

static void envelope_released(hy_kernel *k, hy_msg *msg, hyi_msg_hook *hook);

/* One pooled block: refcount, then a hy_msg with the path and payload. */
static hy_msg *body_new(hy_kernel *k, const char *path, size_t path_len, const void *payload,
                        size_t len)
{
    size_t payload_off = hyi_msg_payload_off(0, path_len);
    body_head *h = hyi_pool_acquire(k->pool, BODY_HEAD + payload_off + len);
    if (!h)
        return NULL;
    h->hook.released = envelope_released;
    /* relaxed: not shared until the first envelope is delivered */
    atomic_store_explicit(&h->refs, 1, memory_order_relaxed);
    hy_msg *b = body_of(h);
    memset(b, 0, sizeof *b);
    b->payload_len = (uint32_t)len;
    b->path_len = (uint16_t)path_len;
    char *p = (char *)&b->params[0];
    memcpy(p, path, path_len);
    p[path_len] = '\0';
    if (len)
        memcpy((char *)b + payload_off, payload, len);
    return b;
}

static void body_unref(hy_kernel *k, hy_msg *b)
{
    body_head *h = (body_head *)((char *)b - BODY_HEAD);
    /* acq_rel: every holder's reads of the body happen before the last one
     * frees it */
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
        hyi_pool_release(k->pool, h);
}

/* An envelope's release hook. */
static void envelope_released(hy_kernel *k, hy_msg *msg, hyi_msg_hook *hook)
{
    (void)msg;
    body_unref(k, body_of((body_head *)hook));
}

/* Build the envelope for one subscription: the publish's stamp (an empty
 * path of its own), its captures, and a reference to the body. */
static hy_msg *envelope_new(hy_kernel *k, subscription *s, const hyi_match *m, hy_msg *body,
                            const hyi_stamp *stamp)
{
    hy_msg *e = hyi_msg_build(k, s->binding, m, "", 0, NULL, 0, NULL, true, stamp);
    if (!e)
        return NULL;
    body_head *h = (body_head *)((char *)body - BODY_HEAD);
    /* relaxed: the publisher holds a reference, so the count cannot reach 0
     * meanwhile; the delivery's push publishes the envelope */
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    e->flags |= HYI_MSG_SHARED;
    *hyi_msg_slot(e) = &h->hook;
    return e;
}

static bool sys_matches(const subscription *s, const char *path, size_t sys_len)
{
    return s->sys_len == sys_len && memcmp(s->sys, path, sys_len) == 0;
}

/* HY_EPERM if a matching subscription requires a scope the principal lacks:
 * a publish reaches all its subscribers or none. Subscriptions without a
 * scope cost one branch. */
static int check_scopes(const sub_set *set, const char *path, size_t path_len, size_t sys_len,
                        const hy_principal *principal)
{
    for (size_t i = 0; set && i < set->n; i++) {
        subscription *s = set->s[i];
        hyi_match m;
        if (HY_LIKELY(!s->binding->scope) ||
            hyi_principal_holds(principal, s->binding->scope) ||
            !sys_matches(s, path, sys_len) || hyi_router_match(s->router, path, path_len, &m))
            continue;
        return hyi_refuse(s->binding, principal);
    }
    return 0;
}

/* Admit the envelope into s's mailbox and deliver it: 1 when delivered, 0
 * when its policy dropped it, or the refusal (a dead letter HY_DEAD_FULL). */
static int admit_envelope(hy_kernel *k, subscription *s, hy_msg *e, const char *path,
                          size_t path_len, const void *payload, size_t len)
{
    int rc = hyi_admit(k, s->name, &s->actor->bound, s->actor);
    if (HY_LIKELY(rc == HYI_ADMIT)) {
        hyi_deliver(k, s->actor, e, e, 1);
        return 1;
    }
    if (rc == HYI_ADMIT_DROP) {
        /* Accepted by policy and dropped at once: sent, and a dead letter
         * (as send.c's admit_msg). relaxed: a statistic */
        atomic_fetch_add_explicit(&k->kernel_sub->sent, 1, memory_order_relaxed);
        hyi_dead_letter_msg(k, e, HY_DEAD_DROPPED);
        hyi_msg_release(k, e);
        return 0;
    }
    if (rc == HY_EFULL)
        hyi_dead_letter(k, path, path_len, payload, len, HY_DEAD_FULL);
    hyi_msg_release(k, e);
    return rc;
}

/* Deliver to every live subscription that matches; *n counts them. A
 * subscription whose mailbox refuses does not stop the others: the first
 * refusal is returned once all were tried. */
static int deliver_all(hy_kernel *k, const sub_set *set, const char *path, size_t path_len,
                       const void *payload, size_t len, const hyi_stamp *stamp, size_t *n)
{
    const char *sep = strstr(path, "://"); /* the path is valid: it has one */
    size_t sys_len = (size_t)(sep - path);
    hy_msg *body = NULL;
    size_t refused = 0;
    int first_refusal = 0;
    int rc = check_scopes(set, path, path_len, sys_len, stamp->principal);
    if (rc != 0)
        return rc;
    for (size_t i = 0; set && i < set->n; i++) {
        subscription *s = set->s[i];
        hyi_match m;
        if (!sys_matches(s, path, sys_len) || hyi_router_match(s->router, path, path_len, &m))
            continue;
        if (!body && !(body = body_new(k, path, path_len, payload, len))) {
            rc = hyi_fail(HY_ENOMEM, "message pool at its cap");
            break;
        }
        hy_msg *e = envelope_new(k, s, &m, body, stamp);
        if (!e) {
            rc = hyi_fail(HY_ENOMEM, "message pool at its cap after %zu deliveries", *n);
            break;
        }
        int got = admit_envelope(k, s, e, path, path_len, payload, len);
        if (got > 0)
            ++*n;
        else if (got < 0 && refused++ == 0)
            first_refusal = got;
    }
    if (rc == 0 && refused)
        rc = hyi_fail(first_refusal, "hy_publish '%.*s': %zu subscription(s) refused it "
                      "(the first: %s), %zu got it", (int)path_len, path, refused,
                      hy_strerror(first_refusal), *n);
    if (body)
        body_unref(k, body); /* the publisher's own reference */
    return rc;
}

static int publish(hy_kernel *k, hy_principal *const *as, const char *path,
                   const void *payload, size_t len, size_t *delivered)
{
    size_t n = 0;
    if (delivered)
        *delivered = 0;
    HYI_SUPPRESS_IF_REPLAYING(k); /* persistent.c: a replaying handler's publish */
    if (!k || !path || (!payload && len))
        return hyi_fail(HY_EINVAL, "hy_publish: NULL kernel, path or payload");
    if (as && *as && (*as)->k != k)
        return hyi_fail(HY_EINVAL, "principal '%s' belongs to another kernel", (*as)->name);
    if (len > k->max_payload)
        return hyi_fail(HY_ETOOBIG, "payload of %zu bytes; this kernel's limit is %zu", len,
                        k->max_payload);
    size_t path_len = strnlen(path, HYI_PATH_MAX + 1);
    int rc = hyi_path_check(path, path_len);
    if (rc != 0)
        return hyi_fail(rc, "hy_publish: malformed path '%.*s'", (int)path_len, path);
    rc = hyi_router_read_enter(k->router);
    if (rc != 0)
        return rc;
    /* seq_cst: inside the read section, as in send.c, so a shutdown that set
     * `closed` either waits for this publish or is seen here */
    if (atomic_load_explicit(&k->closed, memory_order_seq_cst)) {
        hyi_router_read_exit(k->router);
        return hyi_fail(HY_ECLOSED, "hy_publish: the kernel is shut down");
    }
    /* seq_cst: the table load L of the epoch argument (router/epoch.c),
     * after the section's announcement */
    const sub_set *set = atomic_load_explicit(&k->pubsub->live, memory_order_seq_cst);
    hyi_stamp stamp; /* one moment, and one principal, for every envelope */
    hyi_stamp_take(k, &stamp);
    if (as)
        stamp.principal = *as;
    rc = deliver_all(k, set, path, path_len, payload, len, &stamp, &n);
    hyi_router_read_exit(k->router);
    if (delivered)
        *delivered = n;
    return rc;
}

int hy_publish(hy_kernel *k, const char *path, const void *payload, size_t len,
               size_t *delivered)
{
    return publish(k, NULL, path, payload, len, delivered);
}

int hy_publish_as(hy_kernel *k, hy_principal *p, const char *path, const void *payload,
                  size_t len, size_t *delivered)
{
    return publish(k, &p, path, payload, len, delivered);
}
