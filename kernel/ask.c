/* Ask and reply.
 *
 * hy_ask (a thread outside the kernel waits for an answer) pairs the request
 * with a small asker record shared, by reference count, between the waiting
 * thread and the request message. The record's state word is also the futex
 * the asker sleeps on. Whoever moves the state away from WAITING first decides
 * the outcome: the handler's reply, the request's release without a reply, or
 * the asker's timeout. So a late reply can never reach another asker (each has
 * its own record), and is counted as a dead letter instead of delivered.
 *
 * hy_ask_async (a handler asks another actor) carries a reply-to path in the
 * request; hy_reply then simply sends to it.
 *
 * hy_ask_async_timeout adds a timer (the timers' provider, registered through
 * hypha_ext.h: the core never names subsystems/timer.c) and a second small
 * record in the request's slot, shared by the request and the timer. Its
 * state decides, as the asker's does: hy_reply moves it to REPLIED (and
 * cancels the timer), the timer to TIMED_OUT (and sends the timeout message);
 * whoever loses does nothing, or, for a reply, becomes a LATE_REPLY dead
 * letter. So exactly one of them reaches reply_to. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "futex.h"
#include "kernel.h"

enum { ASK_WAITING, ASK_REPLIED, ASK_NO_REPLY, ASK_FAILED, ASK_ABANDONED, ASK_ERROR };

typedef struct hyi_asker {
    hyi_msg_hook hook;          /* in the request's slot: its release settles */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    /* Set by hy_ext_reply_defer on the handler's thread, before the request's
     * release (same thread): the release then leaves the outcome to the
     * deferred reply. */
    bool deferred;
    int err;                    /* ASK_ERROR: the code hy_ask returns */
    uint64_t deadline_ns;       /* when the asker gives up */
    void *reply;
    size_t reply_len;
} hyi_asker;

static void asker_unref(hyi_asker *a)
{
    /* acq_rel: the last owner sees every write the others made */
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1) {
        /* acquire (by the RMW above): a reply nobody took is ours to free */
        if (atomic_load_explicit(&a->state, memory_order_relaxed) == ASK_ABANDONED)
            free(a->reply);
        free(a);
    }
}

/* Move WAITING -> to; true if this caller decided the outcome. */
static bool asker_settle(hyi_asker *a, uint32_t to)
{
    uint32_t waiting = ASK_WAITING;
    /* release: the reply fields written before are visible to the asker that
     * acquires the new state; acquire on failure is not needed (we only learn
     * someone else settled it) */
    if (!atomic_compare_exchange_strong_explicit(&a->state, &waiting, to, memory_order_release,
                                                 memory_order_relaxed))
        return false;
    hyi_futex_wake(&a->state, 1);
    return true;
}

/* The request's hook: released without a reply (or after one: then the
 * settle is a no-op), the request drops its reference. */
static void asker_released(hy_kernel *k, hy_msg *msg, hyi_msg_hook *hook)
{
    (void)k;
    hyi_asker *a = (hyi_asker *)hook;
    if (!a->deferred)
        asker_settle(a, (msg->flags & HYI_MSG_FAILED) ? ASK_FAILED : ASK_NO_REPLY);
    asker_unref(a);
}

/* The hook in msg's slot if its release function is `released` (so the hook
 * is that kind of record), else NULL. */
static hyi_msg_hook *hook_of(const hy_msg *msg,
                             void (*released)(hy_kernel *, hy_msg *, hyi_msg_hook *))
{
    if (!(msg->flags & HYI_MSG_SLOT))
        return NULL;
    hyi_msg_hook *hook = *hyi_msg_slot(msg);
    return hook && hook->released == released ? hook : NULL;
}

/* The waiter of a request made by hy_ask, or NULL. */
static hyi_asker *asker_of(const hy_msg *msg)
{
    return (hyi_asker *)hook_of(msg, asker_released);
}

/* Sleep until the state leaves WAITING or the deadline passes. */
static uint32_t asker_wait(hyi_asker *a, int timeout_ms)
{
    uint64_t deadline = hyi_deadline_ns(timeout_ms);
    hyi_schedule_flush(); /* a worker answers: wake it if this thread put that off */
    for (;;) {
        /* acquire: pairs with asker_settle's release */
        uint32_t st = atomic_load_explicit(&a->state, memory_order_acquire);
        if (st != ASK_WAITING)
            return st;
        uint64_t now = hyi_now_ns();
        if (now >= deadline)
            return ASK_WAITING;
        uint64_t left = deadline - now;
        struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        hyi_futex_wait(&a->state, ASK_WAITING, timeout_ms < 0 ? NULL : &ts);
    }
}

static int ask(hy_kernel *k, hy_principal *const *as, const char *path, const void *payload,
               size_t len, void **reply, size_t *reply_len, int timeout_ms)
{
    if (!k || !reply)
        return hyi_fail(HY_EINVAL, "hy_ask: NULL kernel or reply");
    *reply = NULL;
    if (reply_len)
        *reply_len = 0;
    /* hyi_running: a handler replaying a journal entry, off the workers */
    if (hyi_current_worker(k) || hyi_running)
        return hyi_fail(HY_EINVAL, "hy_ask from a handler would block a worker; use hy_ask_async");
    hyi_asker *a = calloc(1, sizeof *a);
    if (!a)
        return HY_ENOMEM;
    a->hook.released = asker_released;
    /* relaxed: not shared until the request is sent. Two references: ours,
     * and the request's, dropped by its release hook. */
    atomic_store_explicit(&a->refs, 2, memory_order_relaxed);
    atomic_store_explicit(&a->state, ASK_WAITING, memory_order_relaxed);
    a->deadline_ns = timeout_ms < 0 ? UINT64_MAX : hyi_deadline_ns(timeout_ms);
    bool hooked = false;
    int rc = hyi_send(k, as, path, payload, len, NULL, &a->hook, &hooked);
    if (!hooked)
        asker_unref(a); /* no request was built: the hook will never run */
    if (rc == 0) {
        uint32_t st = asker_wait(a, timeout_ms);
        /* The timeout and a reply may race: the CAS decides. */
        if (st == ASK_WAITING && asker_settle(a, ASK_ABANDONED))
            rc = hyi_fail(HY_ETIMEDOUT, "no reply from '%s' within %d ms", path, timeout_ms);
        else
            /* acquire: the outcome another thread settled, with its reply */
            st = atomic_load_explicit(&a->state, memory_order_acquire);
        if (rc == 0 && st == ASK_REPLIED) {
            *reply = a->reply;
            if (reply_len)
                *reply_len = a->reply_len;
            a->reply = NULL;
        } else if (rc == 0 && st == ASK_ERROR) {
            rc = hyi_fail(a->err, "the request to '%s' failed: %s", path, hy_strerror(a->err));
        } else if (rc == 0 && st == ASK_FAILED) {
            rc = hyi_fail(HY_EHANDLER, "the handler of '%s' failed", path);
        } else if (rc == 0) {
            rc = hyi_fail(HY_ENOENT, "the handler of '%s' sent no reply", path);
        }
    }
    asker_unref(a);
    return rc;
}

int hy_ask(hy_kernel *k, const char *path, const void *payload, size_t len, void **reply,
           size_t *reply_len, int timeout_ms)
{
    return ask(k, NULL, path, payload, len, reply, reply_len, timeout_ms);
}

int hy_ask_as(hy_kernel *k, hy_principal *p, const char *path, const void *payload,
              size_t len, void **reply, size_t *reply_len, int timeout_ms)
{
    return ask(k, &p, path, payload, len, reply, reply_len, timeout_ms);
}

int hy_ask_async(hy_ctx *ctx, const char *path, const void *payload, size_t len,
                 const char *reply_to)
{
    if (!ctx || !reply_to)
        return hyi_fail(HY_EINVAL, "hy_ask_async: NULL context or reply_to");
    int rc = hyi_path_check(reply_to, strnlen(reply_to, HYI_PATH_MAX + 1));
    if (rc != 0)
        return hyi_fail(rc, "reply_to '%s' is not a valid path", reply_to);
    return hyi_send(ctx->k, NULL, path, payload, len, reply_to, NULL, NULL);
}

/* ------------------------------------------------------------ hy_ask_async_timeout */

enum { AT_WAITING, AT_REPLIED, AT_TIMED_OUT, AT_ABANDONED };

typedef struct hyi_async_ask {
    hyi_msg_hook hook;          /* in the request's slot */
    _Atomic uint32_t state;
    /* The request's, the timer's, and the asker's own while it sets up. */
    _Atomic uint32_t refs;
    hy_kernel *k;
    uint64_t timer_id;          /* written before the request is sent */
    char reply_to[];            /* where the timeout message goes */
} hyi_async_ask;

static void async_ask_unref(hyi_async_ask *a)
{
    /* acq_rel: the last owner sees every write the others made */
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
        free(a);
}

static bool async_ask_settle(hyi_async_ask *a, uint32_t to)
{
    uint32_t waiting = AT_WAITING;
    /* relaxed: the state only decides who acts; nothing is published by it */
    return atomic_compare_exchange_strong_explicit(&a->state, &waiting, to,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* The request was released (handled or not): it drops its reference. A
 * request released without a reply still gets its timeout at the deadline. */
static void async_ask_released(hy_kernel *k, hy_msg *msg, hyi_msg_hook *hook)
{
    (void)k, (void)msg;
    async_ask_unref((hyi_async_ask *)hook);
}

/* The timer: fired (status 0) or dropped at shutdown. */
static void async_ask_timer(void *arg, int status)
{
    hyi_async_ask *a = arg;
    if (status == 0 && async_ask_settle(a, AT_TIMED_OUT))
        /* Its own failure (no route, full) is counted by the send itself. */
        (void)hyi_send_flagged(a->k, a->reply_to, NULL, 0, HYI_MSG_TIMEOUT);
    async_ask_unref(a);
}

static hyi_async_ask *async_ask_of(const hy_msg *msg)
{
    return (hyi_async_ask *)hook_of(msg, async_ask_released);
}

int hy_ask_async_timeout(hy_ctx *ctx, const char *path, const void *payload, size_t len,
                         const char *reply_to, int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return hy_ask_async(ctx, path, payload, len, reply_to);
    if (!ctx || !reply_to)
        return hyi_fail(HY_EINVAL, "hy_ask_async_timeout: NULL context or reply_to");
    hy_kernel *k = ctx->k;
    HYI_SUPPRESS_IF_REPLAYING(k);
    if (timeout_ms > HY_TIMER_MAX_MS)
        return hyi_fail(HY_EINVAL, "timeout of %lld ms; at most %lld", (long long)timeout_ms,
                        (long long)HY_TIMER_MAX_MS);
    size_t rlen = strnlen(reply_to, HYI_PATH_MAX + 1);
    int rc = hyi_path_check(reply_to, rlen);
    if (rc != 0)
        return hyi_fail(rc, "reply_to '%s' is not a valid path", reply_to);
    /* acquire: pairs with hy_ext_timer_provide's release (timer_self) */
    const hy_ext_timer_ops *ops = atomic_load_explicit(&k->timer_ops, memory_order_acquire);
    if (!ops)
        return hyi_fail(HY_EINVAL, "hy_ask_async_timeout: the timers are not attached "
                                   "(hy_timer_attach)");
    hyi_async_ask *a = malloc(sizeof *a + rlen + 1);
    if (!a)
        return HY_ENOMEM;
    a->hook.released = async_ask_released;
    a->k = k;
    memcpy(a->reply_to, reply_to, rlen + 1);
    /* relaxed: not shared until armed */
    atomic_store_explicit(&a->state, AT_WAITING, memory_order_relaxed);
    atomic_store_explicit(&a->refs, 3, memory_order_relaxed);
    /* Armed before the request is sent, so a reply always finds timer_id. */
    rc = ops->arm(k->timer_self, timeout_ms, async_ask_timer, a, &a->timer_id);
    if (rc != 0) {
        free(a);
        return rc;
    }
    bool hooked = false;
    rc = hyi_send(k, NULL, path, payload, len, reply_to, &a->hook, &hooked);
    if (!hooked)
        async_ask_unref(a); /* no request holds it */
    if (rc != 0 && async_ask_settle(a, AT_ABANDONED) &&
        ops->cancel(k->timer_self, a->timer_id) == 1)
        async_ask_unref(a); /* the timer will never call back */
    async_ask_unref(a);
    return rc;
}

/* hy_reply to a hy_ask_async_timeout request: first to settle wins. */
static int reply_async_ask(hy_kernel *k, hyi_async_ask *a, hy_msg *msg, const void *payload,
                           size_t len)
{
    if (!async_ask_settle(a, AT_REPLIED)) {
        const hy_msg *body = hyi_msg_body(msg);
        const char *reply_to = (const char *)hyi_msg_payload(msg) + body->payload_len;
        hyi_dead_letter(k, reply_to, strlen(reply_to), payload, len, HY_DEAD_LATE_REPLY);
        return 0;
    }
    /* acquire: pairs with the release in hy_ext_timer_provide */
    const hy_ext_timer_ops *ops = atomic_load_explicit(&k->timer_ops, memory_order_acquire);
    if (ops->cancel(k->timer_self, a->timer_id) == 1)
        async_ask_unref(a); /* the timer's reference: it will never call back */
    const hy_msg *body = hyi_msg_body(msg);
    const char *reply_to = (const char *)hyi_msg_payload(msg) + body->payload_len;
    return hyi_send(k, NULL, reply_to, payload, len, NULL, NULL, NULL);
}

/* Hand a copy of the reply to the asker; if it gave up already, the reply
 * is a dead letter (path: the request's, for the record). 0 or HY_ENOMEM. */
static int answer_asker(hy_kernel *k, hyi_asker *a, const char *path, size_t path_len,
                        const void *payload, size_t len)
{
    void *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return HY_ENOMEM;
        memcpy(copy, payload, len);
    }
    a->reply = copy;
    a->reply_len = len;
    if (!asker_settle(a, ASK_REPLIED)) {
        a->reply = NULL;
        free(copy);
        hyi_dead_letter(k, path, path_len, payload, len, HY_DEAD_LATE_REPLY);
    }
    return 0;
}

static int reply_to_asker(hy_kernel *k, hyi_asker *a, hy_msg *msg, const void *payload,
                          size_t len)
{
    return answer_asker(k, a, hyi_msg_path(msg), hyi_msg_body(msg)->path_len, payload, len);
}

typedef struct hyi_cb_ask hyi_cb_ask;
static hyi_cb_ask *cb_ask_of(const hy_msg *msg);
static int reply_cb_ask(hyi_cb_ask *a, const void *payload, size_t len);

int hy_reply(hy_ctx *ctx, const void *payload, size_t len)
{
    if (!ctx || (!payload && len))
        return hyi_fail(HY_EINVAL, "hy_reply: NULL context or payload");
    hy_msg *msg = ctx->msg;
    hy_kernel *k = ctx->k;
    if (HY_UNLIKELY(ctx->replaying)) /* persistent.c: the reply was sent live */
        return hyi_persist_suppressed(k);
    if (msg->flags & HYI_MSG_REPLIED)
        return hyi_fail(HY_EEXIST, "this message was already replied to");
    int rc;
    hyi_asker *asker = asker_of(msg);
    hyi_async_ask *async = asker ? NULL : async_ask_of(msg);
    hyi_cb_ask *cb = asker || async ? NULL : cb_ask_of(msg);
    if (asker) {
        rc = reply_to_asker(k, asker, msg, payload, len);
    } else if (cb) {
        rc = reply_cb_ask(cb, payload, len);
    } else if (async) {
        rc = reply_async_ask(k, async, msg, payload, len);
    } else if (msg->flags & HYI_MSG_REPLY_TO) {
        const hy_msg *body = hyi_msg_body(msg);
        const char *reply_to = (const char *)hyi_msg_payload(msg) + body->payload_len;
        rc = hyi_send(k, NULL, reply_to, payload, len, NULL, NULL, NULL);
    } else {
        return hyi_fail(HY_ENOENT, "this message carries no reply address");
    }
    if (rc == 0)
        msg->flags |= HYI_MSG_REPLIED;
    return rc;
}

/* ------------------------------------------------------------ hy_ext_ask_cb */

/* A request answered by a call rather than a wake-up: for a built-in's
 * network thread, which must not wait (the NATS exporter). hy_reply calls
 * fn on the replying worker at once; a release without a reply reports
 * NO_REPLY through the last of the two references (the caller's, the
 * request's), so a request that fails inside hyi_send is reported by the
 * return value alone, never also through fn. */
enum { CB_WAITING, CB_REPLIED, CB_NO_REPLY, CB_ABANDONED };

struct hyi_cb_ask {
    hyi_msg_hook hook;          /* in the request's slot */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    bool deferred;              /* hy_ext_reply_defer took the reply duty */
    bool suppress;              /* the send failed: its caller reports it */
    int err;                    /* CB_NO_REPLY: HY_ENOENT or HY_EHANDLER */
    hy_ext_answer_fn fn;
    void *udata;
};

static bool cb_ask_settle(hyi_cb_ask *a, uint32_t to)
{
    uint32_t waiting = CB_WAITING;
    /* acq_rel: err written before is visible to the last unref */
    return atomic_compare_exchange_strong_explicit(&a->state, &waiting, to,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire);
}

static void cb_ask_unref(hyi_cb_ask *a)
{
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (atomic_load_explicit(&a->state, memory_order_acquire) == CB_NO_REPLY && !a->suppress)
        a->fn(a->udata, a->err, NULL, 0);
    free(a);
}

static void cb_ask_released(hy_kernel *k, hy_msg *msg, hyi_msg_hook *hook)
{
    (void)k;
    hyi_cb_ask *a = (hyi_cb_ask *)hook;
    if (!a->deferred) {
        a->err = (msg->flags & HYI_MSG_FAILED) ? HY_EHANDLER : HY_ENOENT;
        (void)cb_ask_settle(a, CB_NO_REPLY);
    }
    cb_ask_unref(a);
}

static hyi_cb_ask *cb_ask_of(const hy_msg *msg)
{
    return (hyi_cb_ask *)hook_of(msg, cb_ask_released);
}

int hy_ext_ask_cb(hy_kernel *k, const char *path, const void *payload, size_t len,
                  hy_ext_answer_fn fn, void *udata)
{
    if (!k || !fn)
        return hyi_fail(HY_EINVAL, "hy_ext_ask_cb: NULL kernel or callback");
    hyi_cb_ask *a = calloc(1, sizeof *a);
    if (!a)
        return HY_ENOMEM;
    a->hook.released = cb_ask_released;
    a->fn = fn;
    a->udata = udata;
    /* relaxed: not shared until the request is sent */
    atomic_store_explicit(&a->state, CB_WAITING, memory_order_relaxed);
    atomic_store_explicit(&a->refs, 2, memory_order_relaxed);
    bool hooked = false;
    int rc = hyi_send(k, NULL, path, payload, len, NULL, &a->hook, &hooked);
    if (!hooked)
        cb_ask_unref(a); /* no request was built: the hook will never run */
    if (rc != 0) {
        if (atomic_load_explicit(&a->state, memory_order_acquire) == CB_REPLIED)
            rc = 0; /* answered already: fn has been called */
        else if (!cb_ask_settle(a, CB_ABANDONED))
            a->suppress = true; /* released without reply: ours to report */
    }
    cb_ask_unref(a);
    return rc;
}

static int reply_cb_ask(hyi_cb_ask *a, const void *payload, size_t len)
{
    if (cb_ask_settle(a, CB_REPLIED))
        a->fn(a->udata, 0, payload, len);
    return 0;
}

/* ------------------------------------------------------------ deferred replies */

/* hy_ext_reply_defer: the handler hands its reply duty to a handle that may
 * be finished later, on any thread (a built-in's network thread). It holds a
 * reference on whatever the reply settles: the hy_ask record, or the
 * hy_ask_async_timeout record, or a copy of the reply_to path. */
struct hy_ext_reply {
    hy_kernel *k;
    hyi_asker *asker;
    hyi_async_ask *async;
    hyi_cb_ask *cb;
    char reply_to[];            /* plain hy_ask_async: where the reply goes */
};

/* The milliseconds a hy_ask caller still waits, into *deadline_ms (may be
 * NULL): -1 for no limit or another kind of request (asker NULL). */
static void ms_left(const hyi_asker *asker, int64_t *deadline_ms)
{
    if (!deadline_ms)
        return;
    *deadline_ms = -1;
    if (asker && asker->deadline_ns != UINT64_MAX) {
        uint64_t now = hyi_now_ns();
        *deadline_ms = asker->deadline_ns > now
                           ? (int64_t)((asker->deadline_ns - now) / 1000000u) : 0;
    }
}

hy_ext_reply *hyi_reply_take(hy_kernel *k, hyi_msg_hook *hook, int64_t *deadline_ms)
{
    bool is_asker = hook->released == asker_released;
    if (!is_asker && hook->released != cb_ask_released)
        return NULL;
    hy_ext_reply *r = malloc(sizeof *r + 1);
    if (!r)
        return NULL;
    /* No message will hold the hook: the handle takes its reference, and no
     * release will run to settle the request (so nothing is marked
     * deferred). */
    hyi_asker *asker = is_asker ? (hyi_asker *)hook : NULL;
    *r = (hy_ext_reply){.k = k, .asker = asker, .cb = is_asker ? NULL : (hyi_cb_ask *)hook};
    r->reply_to[0] = 0;
    ms_left(asker, deadline_ms);
    return r;
}

void hyi_reply_untake(hy_ext_reply *r)
{
    free(r);
}

hy_ext_reply *hy_ext_reply_defer(hy_ctx *ctx, int64_t *deadline_ms)
{
    if (!ctx || ctx->replaying)
        return NULL;
    hy_msg *msg = ctx->msg;
    if (msg->flags & HYI_MSG_REPLIED)
        return NULL;
    hyi_asker *asker = asker_of(msg);
    hyi_async_ask *async = asker ? NULL : async_ask_of(msg);
    hyi_cb_ask *cb = asker || async ? NULL : cb_ask_of(msg);
    const char *reply_to = "";
    if (!asker && !async && !cb) {
        if (!(msg->flags & HYI_MSG_REPLY_TO))
            return NULL;
        const hy_msg *body = hyi_msg_body(msg);
        reply_to = (const char *)hyi_msg_payload(msg) + body->payload_len;
    }
    size_t rlen = strlen(reply_to);
    hy_ext_reply *r = malloc(sizeof *r + rlen + 1);
    if (!r)
        return NULL;
    r->k = ctx->k;
    r->asker = asker;
    r->async = async;
    r->cb = cb;
    memcpy(r->reply_to, reply_to, rlen + 1);
    ms_left(asker, deadline_ms);
    if (asker) {
        /* relaxed: the request's reference keeps it alive meanwhile */
        atomic_fetch_add_explicit(&asker->refs, 1, memory_order_relaxed);
        asker->deferred = true;
    } else if (async) {
        atomic_fetch_add_explicit(&async->refs, 1, memory_order_relaxed);
    } else if (cb) {
        atomic_fetch_add_explicit(&cb->refs, 1, memory_order_relaxed);
        cb->deferred = true;
    }
    msg->flags |= HYI_MSG_REPLIED;
    return r;
}

int hy_ext_reply_finish(hy_ext_reply *r, int err, const void *payload, size_t len)
{
    if (!r)
        return HY_EINVAL;
    int rc = 0;
    hy_kernel *k = r->k;
    if (r->asker) {
        hyi_asker *a = r->asker;
        if (err == 0)
            err = answer_asker(k, a, "", 0, payload, len);
        if (err != 0) {
            a->err = err;
            asker_settle(a, ASK_ERROR);
        }
        asker_unref(a);
    } else if (r->async) {
        hyi_async_ask *a = r->async;
        /* An error is not delivered: the timeout message reports it. */
        if (err == 0) {
            if (async_ask_settle(a, AT_REPLIED)) {
                const hy_ext_timer_ops *ops =
                    atomic_load_explicit(&k->timer_ops, memory_order_acquire);
                if (ops->cancel(k->timer_self, a->timer_id) == 1)
                    async_ask_unref(a);
                rc = hyi_send(k, NULL, a->reply_to, payload, len, NULL, NULL, NULL);
            } else {
                hyi_dead_letter(k, a->reply_to, strlen(a->reply_to), payload, len,
                                HY_DEAD_LATE_REPLY);
            }
        }
        async_ask_unref(a);
    } else if (r->cb) {
        hyi_cb_ask *a = r->cb;
        if (err != 0) {
            a->err = err;
            (void)cb_ask_settle(a, CB_NO_REPLY);
        } else {
            (void)reply_cb_ask(a, payload, len);
        }
        cb_ask_unref(a);
    } else if (err == 0) {
        rc = hyi_send(k, NULL, r->reply_to, payload, len, NULL, NULL, NULL);
    }
    free(r);
    return rc;
}

void hy_ext_dead_letter(hy_kernel *k, const char *path, size_t path_len, const void *payload,
                        size_t len, hy_dead_reason reason)
{
    if (k)
        hyi_dead_letter(k, path ? path : "", path ? path_len : 0, payload, len, reason);
}

void hy_free(void *p)
{
    free(p);
}
