/* hypha's extension API: for the built-in subsystems in subsystems/, which
 * are written on the public header and this one alone.
 *
 * Not installed and not part of the stable API: what a built-in needs beyond
 * hypha.h, and nothing an application should rely on. It may change with
 * any release. Conventions are hypha.h's. */
#ifndef HYPHA_EXT_H
#define HYPHA_EXT_H

#include "hypha.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Add routes to the kernel's own subsystem, "kernel", so that a built-in
 * serves paths under kernel:// (the name is reserved: hy_subsystem_register
 * cannot). Patterns, keys and handlers are as in hy_route, relative to
 * kernel://; the kernel copies patterns and keys. Handlers run on the
 * kernel's subsystem's actor (or its keyed actors), one message at a time,
 * and their messages are counted under "kernel". All or none: on error no
 * route is added. Safe while messages flow; a route stays until close.
 * Returns 0, HY_EINVAL (k NULL, routes NULL with n > 0, a route without a
 * pattern or handler, a key that is not a capture of its pattern),
 * HY_EBADPATTERN (hy_errdetail() names the pattern, the byte offset and the
 * reason), HY_EEXIST (a pattern already served, or given twice; detail names
 * it), HY_ECLOSED (after hy_kernel_shutdown) or HY_ENOMEM. */
HY_API int hy_kernel_routes_add(hy_kernel *k, const hy_route *routes, size_t n);

/* Set the calling thread's hy_errdetail() text (printf format, cut at 255
 * bytes) and return err: for a built-in's own failures, so they explain
 * themselves as the core's do: return hy_ext_fail(HY_EINVAL, "line %d", n). */
HY_API int hy_ext_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- per-kernel state */

/* A built-in's state hangs on the kernel in a slot of its own: one fixed
 * index per built-in, so finding it is one load. */
enum {
    HY_EXT_SLOT_TIMERS = 0, /* subsystems/timer.c */
    HY_EXT_SLOT_HTTP = 1,   /* subsystems/http.c (stops before the timers) */
    HY_EXT_SLOT_NATS = 2,   /* subsystems/nats.c (stops before the gateway) */
    HY_EXT_SLOTS = 4
};

typedef struct hy_ext_slot_ops {
    /* Called once by hy_kernel_shutdown (or hy_kernel_close), first thing:
     * before the kernel stops accepting messages, while the workers run. It
     * must stop the built-in's threads and make its calls fail (HY_ECLOSED)
     * from then on; the state stays readable until free. May be NULL. */
    void (*stop)(hy_kernel *k, void *state);
    /* Called once by hy_kernel_close after the workers stopped and before
     * the journal closes: free the state. May be NULL. */
    void (*free)(hy_kernel *k, void *state);
} hy_ext_slot_ops;
/* Slots stop in decreasing index order, and are freed in the same order. */

/* Hang state on slot (ops is copied). Once per slot and kernel. Returns 0,
 * HY_EINVAL (k NULL, slot out of range, state NULL), HY_EEXIST (the slot is
 * taken) or HY_ECLOSED (shutdown has begun: the state was not taken, the
 * caller still owns it). */
HY_API int hy_ext_slot_set(hy_kernel *k, unsigned slot, void *state,
                           const hy_ext_slot_ops *ops);
/* The state on slot, or NULL (acquire: what the setter wrote before setting
 * it is visible). */
HY_API void *hy_ext_slot_get(hy_kernel *k, unsigned slot);

/* ---------------------------------------------------------------- timers */

/* What the core's hy_ask_async_timeout needs of the timers (the core does
 * not know subsystems/timer.c by name; the timers register this at attach).
 * arm: call fn(arg, 0) on the timer thread delay_ms from now; *id for
 * cancel. cancel: 1 when the timer was pending and fn will never be called,
 * 0 otherwise (fired or firing: fn is, or will be, called). A timer still
 * pending at shutdown is dropped with fn(arg, HY_ECLOSED) from the slot's
 * stop. */
typedef void (*hy_ext_timer_fn)(void *arg, int status);
typedef struct hy_ext_timer_ops {
    int (*arm)(void *self, int64_t delay_ms, hy_ext_timer_fn fn, void *arg, uint64_t *id);
    int (*cancel)(void *self, uint64_t id);
} hy_ext_timer_ops;

/* Register the timer provider of k (ops must outlive the kernel; self stays
 * valid until close). Once: HY_EEXIST after; HY_EINVAL for NULLs. */
HY_API int hy_ext_timer_provide(hy_kernel *k, const hy_ext_timer_ops *ops, void *self);

/* ---------------------------------------------------------------- sending on a built-in's behalf */

/* From now on, a message the calling thread sends (hy_send, hy_send_batch)
 * that matches no route is a dead letter with this reason rather than
 * HY_DEAD_NOROUTE: for a built-in's own thread (the timer thread), so its
 * dead letters say why. Per thread; the default is HY_DEAD_NOROUTE. */
HY_API void hy_ext_noroute_reason(hy_dead_reason reason);

/* Whether path routes to a persistent subsystem: 1 yes, 0 no, or
 * HY_ENOROUTE, HY_EBADPATH, HY_EINVAL (NULLs). One route lookup. */
HY_API int hy_ext_path_persistent(hy_kernel *k, const char *path);

/* Non-zero when the calling thread is running a handler of k that replays a
 * journal entry (hy_is_replaying, for calls that take no hy_ctx): a
 * built-in's calls then do nothing, as hy_send does. */
HY_API int hy_ext_is_replaying(hy_kernel *k);

/* The principal the calling thread's sends act as now (the principal of the
 * message its handler of k runs, unless that subsystem is trusted), with a
 * reference the caller gives back with hy_ext_principal_release; NULL for
 * the trusted principal (nothing to give back). A built-in that sends later
 * on a caller's behalf (a timer) sends as it with the *_as calls, so nothing
 * reaches a route through it that its caller could not. */
HY_API hy_principal *hy_ext_principal_hold(hy_kernel *k);
HY_API void hy_ext_principal_release(hy_principal *p);

/* ---------------------------------------------------------------- deferred replies */

/* A handler that forwards a request elsewhere (the NATS import forwards it
 * to another process) cannot reply while it runs, and must not wait for the
 * answer on a worker. It takes the reply duty instead: hy_ext_reply_defer
 * returns a handle, the handler returns, and hy_ext_reply_finish answers
 * later from any thread. Without this, hy_ask on such a path could only end
 * in HY_ENOENT (released without a reply): the core must know the request is
 * still being answered, which the public API cannot say.
 *
 * defer: NULL when the message carries no reply address, was replied to
 * already, or is being replayed (nothing to do), or on ENOMEM. After it,
 * hy_reply on the message returns HY_EEXIST. *deadline_ms (may be NULL):
 * the milliseconds a hy_ask caller still waits, -1 for no limit or another
 * kind of request. From the handler whose ctx it is, only.
 *
 * finish: exactly once per handle (it frees it), from any thread. err 0
 * delivers payload as hy_reply would (a reply after the asker gave up is a
 * HY_DEAD_LATE_REPLY dead letter); a non-zero err makes hy_ask return err
 * (a hy_ask_async request gets no reply: its timeout reports it). Returns 0
 * or the error of sending the reply to a reply_to path. */
typedef struct hy_ext_reply hy_ext_reply;
/* Count and report a message a built-in received from outside that it could
 * not deliver (as the core's dead letters: hy_config.dead_letter, and
 * hy_stats by reason). path may be any bytes of path_len. */
HY_API void hy_ext_dead_letter(hy_kernel *k, const char *path, size_t path_len,
                               const void *payload, size_t len, hy_dead_reason reason);
HY_API hy_ext_reply *hy_ext_reply_defer(hy_ctx *ctx, int64_t *deadline_ms);
HY_API int hy_ext_reply_finish(hy_ext_reply *r, int err, const void *payload, size_t len);

/* ---------------------------------------------------------------- asks answered by a call */

/* A request whose answer is a call rather than a wait, for a built-in's own
 * thread that must never block (the NATS exporter answers requests from
 * libnats' delivery thread). As hy_ask without a timeout: the request goes
 * to path; when its handler replies, fn(udata, 0, payload, len) runs at once
 * on the replying thread (the payload is valid during the call only); when
 * it is released without a reply, fn(udata, HY_ENOENT or HY_EHANDLER, NULL,
 * 0); a handler that defers its reply (hy_ext_reply_defer) calls fn through
 * hy_ext_reply_finish. Returns 0 (fn will be called exactly once, perhaps
 * already) or the error of hy_send (fn is never called). fn must be short
 * and must not wait; it may send. Thread-safe; not from a handler of k
 * needing the answer before it returns (it returns at once anyway). */
typedef void (*hy_ext_answer_fn)(void *udata, int err, const void *payload, size_t len);
HY_API int hy_ext_ask_cb(hy_kernel *k, const char *path, const void *payload, size_t len,
                         hy_ext_answer_fn fn, void *udata);

/* ---------------------------------------------------------------- forwarding subsystems */

/* A subsystem whose messages are carried elsewhere (the NATS import) may
 * take them on the sender's thread rather than through its actor: no
 * message is built, queued or handled here, so a forwarded send costs what
 * the carrying costs. Plain sends (hy_send, hy_send_as, hy_send_batch),
 * durable ones (hy_send_durable, _as) and waited-for requests (hy_ask,
 * hy_ask_as, hy_ext_ask_cb) are offered; hy_ask_async and replies go
 * through the actor as ever. The hooks run inside the send, so they must not
 * wait long; they see the path after routing (the route's udata says which
 * route matched) and never a replaying handler's sends (suppressed first).
 * A forwarded message is not counted in the subsystem's sent / handled
 * figures (it never reaches its actor): the built-in counts its own.
 *
 * send: 0 (taken), an HY_E* code (the sender gets it; the hook counts or
 * dead-letters it), or HY_EXT_FORWARD_DECLINE (deliver it to the actor as
 * usual: e.g. a keyed route the hook leaves to its handler). The items of
 * a hy_send_batch it takes are offered one after the other, on the
 * sender's thread, with nothing in between.
 * send_durable: as hy_send_durable's contract: 0 and on_durable(udata, ...)
 * exactly once later, or an error and never; HY_EXT_FORWARD_DECLINE as for
 * send. NULL: hy_send_durable to the subsystem is refused as for any
 * non-persistent one.
 * ask: the request's reply duty, handed over as hy_ext_reply_defer would
 * (deadline_ms the same), with no message built: 0 (taken: r is finished
 * exactly once, perhaps already, with an error too) or
 * HY_EXT_FORWARD_DECLINE (r untouched: the request goes to the actor). NULL:
 * every request goes to the actor. */
#define HY_EXT_FORWARD_DECLINE 1
typedef struct hy_ext_forward_ops {
    int (*send)(void *self, void *route_udata, const char *path, size_t path_len,
                const void *payload, size_t len);
    int (*send_durable)(void *self, void *route_udata, const char *path, size_t path_len,
                        const void *payload, size_t len,
                        void (*on_durable)(void *udata, int status), void *udata);
    int (*ask)(void *self, void *route_udata, const char *path, size_t path_len,
               const void *payload, size_t len, hy_ext_reply *r, int64_t deadline_ms);
} hy_ext_forward_ops;

/* Make the registered subsystem name forward through ops (which must
 * outlive the kernel) with self. Once per subsystem. Returns 0, HY_EINVAL
 * (NULLs, or a persistent subsystem: its messages must be journaled here),
 * HY_ENOENT (no such subsystem) or HY_EEXIST. */
HY_API int hy_ext_forward_set(hy_kernel *k, const char *name, const hy_ext_forward_ops *ops,
                              void *self);

#ifdef __cplusplus
}
#endif
#endif /* HYPHA_EXT_H */
