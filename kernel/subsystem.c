/* Registering subsystems and their routes, and hy_match.
 *
 * Registration checks everything it can before publishing anything (names,
 * handlers, every pattern, every key), then makes the subsystem's actor, then
 * publishes the subsystem and its routes to the router. A route can be matched
 * from the moment it is published, so everything it points to is complete by
 * then. If the router refuses a route (a duplicate), what was published is
 * withdrawn again: a failed registration leaves nothing behind.
 *
 * hy_kernel_routes_add (hypha_ext.h) takes the same steps for routes alone,
 * adding them to the kernel's own subsystem, so built-ins serve kernel://
 * paths by the same checks and the same all-or-none publication. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hypha_ext.h"
#include "kernel.h"

void hyi_route_binding_free(hyi_route_binding *r)
{
    for (uint32_t i = 0; i < r->nparams; i++)
        free(r->param_names[i]);
    free(r->scope_name);
    free(r->pattern);
    free(r);
}

int hyi_route_binding_scope(hy_kernel *k, hyi_route_binding *r, const char *scope)
{
    if (!scope)
        return 0;
    int rc = hyi_scope_intern(k, scope, &r->scope);
    if (rc == 0 && !(r->scope_name = strdup(scope)))
        rc = HY_ENOMEM;
    if (rc != 0)
        r->scope = 0; /* a binding with a scope id always has its name */
    return rc;
}

/* Every route has a pattern and a handler. */
static int check_routes(const char *name, const hy_route *routes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!routes[i].pattern || !routes[i].handler)
            return hyi_fail(HY_EINVAL, "route %zu of '%s' has no pattern or no handler", i,
                            name);
    return 0;
}

static int check_def(const char *name, const hy_subsystem_def *def)
{
    if (!name || !def || (def->nroutes && !def->routes))
        return hyi_fail(HY_EINVAL, "hy_subsystem_register: NULL name, def or routes");
    if (strcmp(name, "kernel") == 0)
        return hyi_fail(HY_EEXIST, "subsystem name 'kernel' is reserved");
    if (def->overflow > HY_OVERFLOW_DROP_NEWEST || def->strategy > HY_SUPERVISE_ESCALATE)
        return hyi_fail(HY_EINVAL, "subsystem '%s': overflow or strategy out of range", name);
    return check_routes(name, def->routes, def->nroutes);
}

int hyi_route_binding_make(hyi_subsys *sub, const char *pattern, const hyi_param_names *names,
                           hy_handler handler, void *udata, const char *key,
                           hyi_route_binding **out)
{
    hyi_route_binding *r = calloc(1, sizeof *r);
    if (!r)
        return HY_ENOMEM;
    r->sub = sub;
    r->handler = handler;
    r->udata = udata;
    r->key_index = -1;
    r->pattern = strdup(pattern);
    int rc = r->pattern ? 0 : HY_ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < names->n; i++) {
        r->param_names[i] = strdup(names->name[i]);
        if (!r->param_names[i])
            rc = HY_ENOMEM;
        else
            r->nparams = i + 1;
        if (key && strcmp(key, names->name[i]) == 0)
            r->key_index = (int)i;
    }
    if (rc == 0 && key && r->key_index < 0)
        rc = hyi_fail(HY_EINVAL, "key '%s' is not a capture of pattern '%s'", key, pattern);
    if (rc != 0) {
        hyi_route_binding_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Parse one route of a definition into a binding (not yet published);
 * default_scope: the subsystem's, for a route that names none. */
static int binding_new(hyi_subsys *sub, const hy_route *def, const char *default_scope,
                       hyi_route_binding **out)
{
    hyi_param_names names;
    hyi_route_error err;
    int rc = hyi_pattern_parse(def->pattern, &names, &err);
    if (rc == HY_EBADPATTERN)
        return hyi_fail(rc, "pattern '%s' of '%s': %s (at byte %ld)", def->pattern, sub->name,
                        err.message, err.offset);
    if (rc != 0)
        return rc;
    rc = hyi_route_binding_make(sub, def->pattern, &names, def->handler, def->udata,
                                def->key, out);
    if (rc == 0)
        (*out)->read_only = def->read_only != 0;
    if (rc == 0 && (rc = hyi_route_binding_scope(sub->k, *out,
                                                 def->scope ? def->scope : default_scope))) {
        hyi_route_binding_free(*out);
        *out = NULL; /* the caller frees what it finds */
    }
    return rc;
}

static void bindings_free(hyi_route_binding **b, size_t n)
{
    for (size_t i = 0; b && i < n; i++)
        if (b[i])
            hyi_route_binding_free(b[i]);
    free(b);
}

/* Bindings for n routes of sub, not yet published: all or none (*out NULL
 * on error). */
static int bindings_new(hyi_subsys *sub, const hy_route *routes, size_t n,
                        const char *default_scope, hyi_route_binding ***out)
{
    *out = NULL;
    hyi_route_binding **b = calloc(n ? n : 1, sizeof *b);
    if (!b)
        return HY_ENOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = binding_new(sub, &routes[i], default_scope, &b[i]);
    if (rc != 0) {
        bindings_free(b, n);
        return rc;
    }
    *out = b;
    return 0;
}

/* Publish n bindings of an already published subsystem in one all-or-none
 * rebuild of its table. On error the router is unchanged. */
static int publish_routes(hy_kernel *k, hyi_subsys *sub, hyi_route_binding **b, size_t n)
{
    hyi_route_spec *specs = calloc(n ? n : 1, sizeof *specs);
    if (!specs)
        return HY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        specs[i] = (hyi_route_spec){b[i]->pattern, b[i]};
    hyi_route_error err;
    size_t at = 0;
    int rc = hyi_router_add_routes(k->router, sub->name, specs, n, &err, &at);
    free(specs);
    if (rc == HY_EEXIST)
        rc = hyi_fail(rc, "pattern '%s' of '%s' duplicates an earlier route", b[at]->pattern,
                      sub->name);
    else if (rc == HY_EBADPATTERN)
        rc = hyi_fail(rc, "pattern '%s' of '%s': %s (at byte %ld)", b[at]->pattern, sub->name,
                      err.message, err.offset);
    return rc;
}

/* Published bindings join the kernel's list (freed at close). Caller holds
 * registry_lock. */
static void link_routes(hy_kernel *k, hyi_route_binding **b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        b[i]->next = k->routes;
        k->routes = b[i];
    }
}

static hyi_subsys *subsys_new(hy_kernel *k, const char *name, const hy_subsystem_def *def)
{
    size_t size = (sizeof(hyi_subsys) + HY_CACHE_LINE - 1) & ~(size_t)(HY_CACHE_LINE - 1);
    hyi_subsys *sub = aligned_alloc(HY_CACHE_LINE, size);
    if (!sub)
        return NULL;
    memset(sub, 0, sizeof *sub);
    sub->k = k;
    sub->udata = def->udata;
    sub->state_init = def->state_init;
    sub->state_free = def->state_free;
    const hy_config *c = &k->config;
    sub->bound.capacity = def->mailbox_capacity ? def->mailbox_capacity : c->mailbox_capacity;
    sub->bound.overflow = def->mailbox_capacity ? def->overflow : c->overflow;
    sub->bound.block_timeout_ms = def->block_timeout_ms > 0 ? def->block_timeout_ms
                                                            : c->block_timeout_ms;
    sub->strategy = def->strategy;
    sub->max_restarts = def->max_restarts;
    sub->restart_window_ms = def->restart_window_ms;
    sub->trusted = def->trusted != 0;
    hyi_passivation_setup(k, sub, def);
    strncpy(sub->name, name, HYI_NAME_MAX);
    return sub;
}

/* Publish the subsystem, then all its routes in one all-or-none rebuild;
 * withdraw the subsystem if the routes are refused. */
static int publish(hy_kernel *k, hyi_subsys *sub, hyi_route_binding **b, size_t n)
{
    int rc = hyi_router_add_subsystem(k->router, sub->name, sub);
    if (rc == HY_EEXIST)
        return hyi_fail(rc, "subsystem '%s' is already registered", sub->name);
    if (rc == HY_EINVAL)
        return hyi_fail(rc, "bad subsystem name '%s': want [a-z][a-z0-9_-]{0,63}", sub->name);
    if (rc != 0)
        return rc;
    rc = publish_routes(k, sub, b, n);
    if (rc != 0)
        /* The router waits out any sender that matched in between, so the
         * caller may free what these routes point to once this returns. */
        hyi_router_remove_subsystem(k->router, sub->name);
    return rc;
}

/* Registration proper, once the definition is checked. internal: the kernel's
 * own subsystem, whose mailboxes stay unbounded whatever hy_config says. */
static int register_subsystem(hy_kernel *k, const char *name, const hy_subsystem_def *def,
                              bool internal, hyi_subsys **out)
{
    int rc = 0;
    if (strlen(name) > HYI_NAME_MAX)
        return hyi_fail(HY_EINVAL, "subsystem name '%s' is longer than %d bytes", name,
                        HYI_NAME_MAX);
    hyi_subsys *sub = subsys_new(k, name, def);
    if (!sub)
        return HY_ENOMEM;
    if (internal) {
        sub->bound.capacity = 0;
        sub->can_passivate = false; /* subscriptions are not keyed actors */
    }
    hyi_route_binding **b = NULL;
    rc = bindings_new(sub, def->routes, def->nroutes, def->scope, &b);
    /* persistent.c: before the actor, which is recovered from the journal */
    if (rc == 0 && def->persistent)
        rc = hyi_persist_subsys_init(k, sub, def, b, def->nroutes);
    if (rc == 0)
        rc = hyi_actor_new(k, sub, NULL, 0, 0, &sub->actor);

    pthread_mutex_lock(&k->registry_lock);
    /* relaxed: registry_lock orders it against shutdown, which sets it under
     * the same lock */
    if (rc == 0 && atomic_load_explicit(&k->closed, memory_order_relaxed))
        rc = hyi_fail(HY_ECLOSED, "subsystem '%s': the kernel is shut down", name);
    /* passivate.c: the first subsystem that can passivate starts its thread
     * (under registry_lock, so shutdown cannot miss it) */
    if (rc == 0 && sub->can_passivate)
        rc = hyi_janitor_start(k);
    if (rc == 0)
        rc = publish(k, sub, b, def->nroutes);
    if (rc == 0) {
        link_routes(k, b, def->nroutes);
        sub->next = k->subsystems;
        k->subsystems = sub;
        k->nsubsystems++;
    }
    pthread_mutex_unlock(&k->registry_lock);
    if (rc != 0) {
        if (sub->actor)
            hyi_actor_free(k, sub->actor);
        hyi_persist_subsys_free(sub);
        free(sub);
        bindings_free(b, def->nroutes);
        return rc;
    }
    free(b);
    if (out)
        *out = sub;
    return 0;
}

int hy_subsystem_register(hy_kernel *k, const char *name, const hy_subsystem_def *def)
{
    if (!k)
        return hyi_fail(HY_EINVAL, "hy_subsystem_register: NULL kernel");
    int rc = check_def(name, def);
    if (rc != 0)
        return rc;
    return register_subsystem(k, name, def, false, NULL);
}

/* As quiescent() in kernel.c, for one subsystem. */
bool hyi_subsys_quiescent(hyi_subsys *s)
{
    /* acquire: pairs with the release adds at the end of a turn and in
     * hyi_dead_letter_msg */
    uint64_t done = atomic_load_explicit(&s->handled, memory_order_acquire) +
                    atomic_load_explicit(&s->dead, memory_order_acquire);
    /* relaxed: ordered after the acquire loads above */
    return atomic_load_explicit(&s->sent, memory_order_relaxed) == done;
}

static uint64_t sub_done(hyi_subsys *s)
{
    /* relaxed: a progress hint only */
    return atomic_load_explicit(&s->handled, memory_order_relaxed) +
           atomic_load_explicit(&s->dead, memory_order_relaxed);
}

/* Poll until sub is quiescent or the deadline (UINT64_MAX: none) passes. */
static bool wait_quiescent(hyi_subsys *sub, uint64_t deadline)
{
    long pause_ns = 1000;
    while (!hyi_subsys_quiescent(sub)) {
        if (deadline != UINT64_MAX && hyi_now_ns() >= deadline)
            return false;
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 1000000)
            pause_ns *= 2;
    }
    return true;
}

/* Past the timeout the workers dead-letter what is left, which takes no
 * handler: wait for that as long as it progresses, but not for a handler
 * that is still running (blocked, typically): no message done for this long
 * gives up (HY_EBUSY). */
#define UNREGISTER_STALL_MS 1000

static bool wait_dead_lettered(hyi_subsys *sub)
{
    uint64_t done = sub_done(sub);
    uint64_t stall_end = hyi_deadline_ns(UNREGISTER_STALL_MS);
    for (;;) {
        uint64_t step = hyi_deadline_ns(1);
        if (wait_quiescent(sub, step < stall_end ? step : stall_end))
            return true;
        uint64_t now_done = sub_done(sub);
        if (now_done != done) {
            done = now_done;
            stall_end = hyi_deadline_ns(UNREGISTER_STALL_MS);
        } else if (hyi_now_ns() >= stall_end) {
            return false;
        }
    }
}

/* The subsystem named `name`, withdrawn from the router: no send reaches it
 * any more. Caller holds registry_lock. */
static int withdraw(hy_kernel *k, const char *name, hyi_subsys **out)
{
    /* relaxed: registry_lock orders it against shutdown, as in registration */
    if (atomic_load_explicit(&k->closed, memory_order_relaxed))
        return hyi_fail(HY_ECLOSED, "hy_subsystem_unregister: the kernel is shut down");
    hyi_subsys *sub = NULL;
    for (hyi_subsys *s = k->subsystems; s && !sub; s = s->next)
        if (!s->withdrawn && s != k->kernel_sub && strcmp(s->name, name) == 0)
            sub = s;
    if (!sub)
        return hyi_fail(HY_ENOENT, "subsystem '%s' is not registered", name);
    /* Returns once no send can still reach the subsystem: every send that
     * matched its routes has counted itself in `sent` by then. */
    int rc = hyi_router_remove_subsystem(k->router, name);
    if (rc != 0)
        return rc;
    sub->withdrawn = true;
    /* The passivation thread frees it (reclaim.c) once nothing can reach
     * it; if the thread cannot start, it is freed at close instead. */
    (void)hyi_janitor_start(k);
    *out = sub;
    return 0;
}

/* The subsystem leaves the kernel's list only once freed (reclaim.c): until
 * then drain and stats count it, and nothing that may still hold a pointer
 * to it (a sender's match, a worker's turn, the passivation thread, a
 * journal completion) sees it freed. */
int hy_subsystem_unregister(hy_kernel *k, const char *name, int timeout_ms)
{
    if (!k || !name)
        return hyi_fail(HY_EINVAL, "hy_subsystem_unregister: NULL kernel or name");
    if (strcmp(name, "kernel") == 0)
        return hyi_fail(HY_EINVAL, "the kernel's own subsystem cannot be unregistered");
    if (hyi_current_worker(k))
        return hyi_fail(HY_EINVAL, "hy_subsystem_unregister from a handler would wait on "
                                   "itself");
    uint64_t deadline = hyi_deadline_ns(timeout_ms);
    hyi_subsys *sub = NULL;
    pthread_mutex_lock(&k->registry_lock);
    int rc = withdraw(k, name, &sub);
    pthread_mutex_unlock(&k->registry_lock);
    if (rc != 0)
        return rc;
    if (!wait_quiescent(sub, deadline)) {
        /* seq_cst: a plain flag; whatever the workers take from now on
         * becomes a dead letter, which the wait below counts */
        atomic_store_explicit(&sub->unregistered, 1, memory_order_seq_cst);
        if (wait_dead_lettered(sub))
            rc = hyi_fail(HY_ETIMEDOUT, "subsystem '%s': messages still queued after %d ms "
                                        "were dead-lettered",
                          name, timeout_ms);
        else
            rc = hyi_fail(HY_EBUSY, "subsystem '%s': a handler still runs %d ms after the "
                                    "timeout of %d ms; the rest is dead-lettered and the "
                                    "subsystem freed once it returns",
                          name, UNREGISTER_STALL_MS, timeout_ms);
    }
    /* The books balanced (or will): the passivation thread takes it from
     * here, so this thread must not read it any more. */
    pthread_mutex_lock(&k->registry_lock);
    sub->reclaimable = true;
    pthread_mutex_unlock(&k->registry_lock);
    hyi_janitor_kick(k);
    return rc;
}

int hyi_subsystem_register_internal(hy_kernel *k, const char *name,
                                    const hy_subsystem_def *def, hyi_subsys **out)
{
    return register_subsystem(k, name, def, true, out);
}

int hy_kernel_routes_add(hy_kernel *k, const hy_route *routes, size_t n)
{
    if (!k || (n && !routes))
        return hyi_fail(HY_EINVAL, "hy_kernel_routes_add: NULL kernel or routes");
    int rc = check_routes("kernel", routes, n);
    hyi_route_binding **b = NULL;
    if (rc == 0)
        rc = bindings_new(k->kernel_sub, routes, n, NULL, &b);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&k->registry_lock);
    /* relaxed: registry_lock orders it against shutdown, as in registration */
    if (atomic_load_explicit(&k->closed, memory_order_relaxed))
        rc = hyi_fail(HY_ECLOSED, "hy_kernel_routes_add: the kernel is shut down");
    if (rc == 0)
        rc = publish_routes(k, k->kernel_sub, b, n);
    if (rc == 0)
        link_routes(k, b, n);
    pthread_mutex_unlock(&k->registry_lock);
    if (rc != 0) {
        bindings_free(b, n);
        return rc;
    }
    free(b);
    return 0;
}

int hy_match(hy_kernel *k, const char *path, hy_match_result *out)
{
    if (!k || !path || !out)
        return hyi_fail(HY_EINVAL, "hy_match: NULL argument");
    memset(out, 0, sizeof *out);
    size_t len = strnlen(path, HYI_PATH_MAX + 1);
    hyi_match m;
    int rc = hyi_router_read_enter(k->router);
    if (rc != 0)
        return rc;
    /* Inside a read section: a binding is freed (reclaim.c) only after a
     * synchronize, so it stays valid while it is copied out. */
    rc = hyi_router_match(k->router, path, len, &m);
    if (rc != 0) {
        hyi_router_read_exit(k->router);
        return rc == HY_ENOROUTE && !m.subsystem
                   ? hyi_fail(rc, "no subsystem for path '%s'", path)
                   : rc;
    }
    hyi_route_binding *r = m.route;
    out->subsystem = r->sub->name;
    out->pattern = r->pattern;
    out->nparams = m.nparams;
    for (uint32_t i = 0; i < m.nparams; i++) {
        out->params[i].name = r->param_names[i];
        out->params[i].value = path + m.params[i].off;
        out->params[i].len = m.params[i].len;
    }
    hyi_router_read_exit(k->router);
    return 0;
}

int hy_ext_path_persistent(hy_kernel *k, const char *path)
{
    if (!k || !path)
        return hyi_fail(HY_EINVAL, "hy_ext_path_persistent: NULL argument");
    hyi_match m;
    int rc = hyi_router_read_enter(k->router);
    if (rc != 0)
        return rc;
    /* inside a read section: see hy_match */
    rc = hyi_router_match(k->router, path, strnlen(path, HYI_PATH_MAX + 1), &m);
    if (rc == 0)
        rc = ((hyi_route_binding *)m.route)->sub->persistent ? 1 : 0;
    hyi_router_read_exit(k->router);
    return rc;
}

int hy_ext_forward_set(hy_kernel *k, const char *name, const hy_ext_forward_ops *ops,
                       void *self)
{
    if (!k || !name || !ops)
        return hyi_fail(HY_EINVAL, "hy_ext_forward_set: NULL argument");
    int rc = hyi_fail(HY_ENOENT, "no subsystem '%s'", name);
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *s = k->subsystems; s; s = s->next) {
        if (s->withdrawn || strcmp(s->name, name) != 0)
            continue;
        if (s->persistent)
            rc = hyi_fail(HY_EINVAL, "'%s' is persistent: its messages are journaled here", name);
        else if (atomic_load_explicit(&s->fwd, memory_order_relaxed))
            rc = hyi_fail(HY_EEXIST, "'%s' forwards already", name);
        else {
            s->fwd_self = self;
            /* release: a sender that sees ops sees self */
            atomic_store_explicit(&s->fwd, ops, memory_order_release);
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&k->registry_lock);
    return rc;
}
