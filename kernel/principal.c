/* Principals and scopes: who sends, and what a route requires of them.
 *
 * A scope name is interned once per kernel into a small id (1, 2, ...; 0 is
 * "none"), at registration for a route and at creation for a principal, so a
 * send checks a route's scope with one bit test against its principal's set,
 * never a string compare; a route without a scope costs one branch.
 *
 * A principal lives as long as its owner or any message made as it: its
 * reference count holds one for the owner (until hy_principal_destroy) and
 * one per message. A message's sender takes a reference while it holds one
 * itself (the owner's, or the handled message's when a handler sends), so
 * the count never climbs back from zero. The kernel's trusted principal is
 * NULL: it holds every scope and is never counted. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha_ext.h"
#include "kernel.h"

/* ---------------------------------------------------------------- scopes */

int hyi_scope_intern(hy_kernel *k, const char *name, uint32_t *id)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > HYI_NAME_MAX)
        return hyi_fail(HY_EINVAL, "scope '%s': want 1 to %d bytes", name ? name : "(null)",
                        HYI_NAME_MAX);
    pthread_mutex_lock(&k->scope_lock);
    int rc = 0;
    uint32_t i = 0;
    while (i < k->nscopes && strcmp(k->scope_names[i], name) != 0)
        i++;
    if (i == k->nscopes) {
        char **names = realloc(k->scope_names, (i + 1) * sizeof *names);
        char *copy = strdup(name);
        if (names)
            k->scope_names = names;
        if (!names || !copy) {
            free(copy);
            rc = HY_ENOMEM;
        } else {
            names[i] = copy;
            k->nscopes++;
        }
    }
    pthread_mutex_unlock(&k->scope_lock);
    if (rc == 0)
        *id = i + 1;
    return rc;
}

void hyi_scopes_free(hy_kernel *k)
{
    for (uint32_t i = 0; i < k->nscopes; i++)
        free(k->scope_names[i]);
    free(k->scope_names);
    k->scope_names = NULL;
    k->nscopes = 0;
}

int hyi_refuse(hyi_route_binding *route, const hy_principal *p)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&route->sub->refused, 1, memory_order_relaxed);
    return hyi_fail(HY_EPERM, "principal '%s' lacks scope '%s' for route '%s' of '%s'",
                    p->name, route->scope_name, route->pattern, route->sub->name);
}

/* ---------------------------------------------------------------- principals */

static hy_principal *principal_new(const char *name, size_t name_len, uint32_t nwords)
{
    size_t size = sizeof(hy_principal) + nwords * sizeof(uint64_t);
    /* aligned: refs keeps a cache line to itself */
    hy_principal *p = aligned_alloc(HY_CACHE_LINE, (size + HY_CACHE_LINE - 1) &
                                                       ~(size_t)(HY_CACHE_LINE - 1));
    if (!p)
        return NULL;
    memset(p, 0, size);
    memcpy(p->name, name, name_len);
    p->name[name_len] = '\0';
    p->nwords = nwords;
    /* relaxed: not shared until returned */
    atomic_store_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

int hy_principal_create(hy_kernel *k, const char *name, const char *const *scopes,
                        size_t nscopes, hy_principal **out)
{
    if (out)
        *out = NULL;
    if (!k || !name || !out || (nscopes && !scopes))
        return hyi_fail(HY_EINVAL, "hy_principal_create: NULL kernel, name, scopes or out");
    size_t len = strlen(name);
    if (len == 0 || len > HYI_NAME_MAX)
        return hyi_fail(HY_EINVAL, "principal name '%s': want 1 to %d bytes", name,
                        HYI_NAME_MAX);
    uint32_t *ids = calloc(nscopes ? nscopes : 1, sizeof *ids);
    if (!ids)
        return HY_ENOMEM;
    int rc = 0;
    uint32_t top = 0;
    for (size_t i = 0; rc == 0 && i < nscopes; i++) {
        rc = hyi_scope_intern(k, scopes[i], &ids[i]);
        if (rc == 0 && ids[i] > top)
            top = ids[i];
    }
    hy_principal *p = rc == 0 ? principal_new(name, len, top / 64 + 1) : NULL;
    if (rc == 0 && !p)
        rc = HY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nscopes; i++)
        p->bits[ids[i] / 64] |= (uint64_t)1 << (ids[i] % 64);
    free(ids);
    if (rc != 0)
        return rc;
    p->k = k;
    *out = p;
    return 0;
}

hy_principal *hyi_principal_transient(const char *name, size_t len)
{
    if (len > HYI_NAME_MAX)
        len = HYI_NAME_MAX;
    return principal_new(name, len, 0);
}

void hyi_principal_unref_n(hy_principal *p, uint64_t n)
{
    /* acq_rel: the last one out sees every use the others made before */
    if (atomic_fetch_sub_explicit(&p->refs, n, memory_order_acq_rel) == n)
        free(p);
}

void hyi_principal_unref(hy_principal *p)
{
    hyi_principal_unref_n(p, 1);
}

/* ---------------------------------------------------------------- credits */

/* References a thread takes at a time: one locked add per this many messages
 * sent as one principal. */
#define CREDIT_BATCH 64

_Thread_local hyi_principal_credit hyi_credit;

/* A thread that took credit must give it back when it exits: a key whose
 * destructor does, set the first time the thread takes any. */
static pthread_key_t credit_key;
static pthread_once_t credit_once = PTHREAD_ONCE_INIT;
static _Thread_local bool credit_key_set;

static void credit_return(void)
{
    if (hyi_credit.left)
        hyi_principal_unref_n(hyi_credit.principal, hyi_credit.left);
    hyi_credit.principal = NULL;
    hyi_credit.left = 0;
}

static void credit_at_exit(void *unused)
{
    (void)unused;
    credit_return();
}

static void credit_key_make(void)
{
    /* If the key cannot be made, a thread's last credit is kept until the
     * process ends: a principal's memory, never a use after free. */
    if (pthread_key_create(&credit_key, credit_at_exit) != 0)
        credit_key = 0;
}

void hyi_principal_credit_refill(hy_principal *p)
{
    if (!credit_key_set) {
        pthread_once(&credit_once, credit_key_make);
        /* any non-NULL value: the destructor runs only for those */
        pthread_setspecific(credit_key, &hyi_credit);
        credit_key_set = true;
    }
    /* relaxed: the caller holds a reference, so p is alive and its count is
     * not 0; the acq_rel of the drops orders the rest */
    atomic_fetch_add_explicit(&p->refs, CREDIT_BATCH, memory_order_relaxed);
    credit_return();
    hyi_credit.principal = p;
    hyi_credit.left = CREDIT_BATCH - 1;
}

void hy_principal_destroy(hy_principal *p)
{
    if (!p)
        return;
    /* this thread's stock goes back now, so a principal made and destroyed
     * on one thread is freed once its messages are */
    if (hyi_credit.principal == p)
        credit_return();
    hyi_principal_unref(p);
}

hy_principal *hy_ext_principal_hold(hy_kernel *k)
{
    hy_ctx *c = hyi_running;
    if (!c || c->k != k || c->sub->trusted || !c->msg->principal)
        return NULL;
    /* relaxed: the running message holds a reference, so the count is not 0 */
    atomic_fetch_add_explicit(&c->msg->principal->refs, 1, memory_order_relaxed);
    return c->msg->principal;
}

void hy_ext_principal_release(hy_principal *p)
{
    if (p)
        hyi_principal_unref(p);
}

const char *hy_msg_principal(const hy_msg *msg)
{
    return msg && msg->principal ? msg->principal->name : NULL;
}
