/* hypha: an in-process message-routing kernel.
 *
 * This header is the whole public API and its manual. Conventions, as in libuv
 * and LMDB:
 *  - every fallible call returns int: 0 on success or a negative hy_err code;
 *    hy_strerror(code) gives its text, hy_err_name(code) its name;
 *  - when a call can say more (which pattern, at which byte), the text is
 *    available from hy_errdetail() on the same thread until its next failing call;
 *  - handles are opaque; the caller owns what it passes in and the kernel copies
 *    what it keeps. */
#ifndef HYPHA_H
#define HYPHA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HY_VERSION_MAJOR 0
#define HY_VERSION_MINOR 1
#define HY_VERSION_PATCH 0
#define HY_VERSION_HEX \
    ((HY_VERSION_MAJOR << 16) | (HY_VERSION_MINOR << 8) | HY_VERSION_PATCH)

#if defined(__GNUC__)
#define HY_API __attribute__((visibility("default")))
#else
#define HY_API
#endif

/* ---------------------------------------------------------------- errors */

/* The one table of error codes: X(NAME, code, text). It expands into the hy_err
 * enum below and into hy_strerror()/hy_err_name(), so a code, its name and its
 * text cannot drift apart. Codes are negative; a published code keeps its number. */
#define HY_ERR_TABLE(X)                                                        \
    X(EINVAL,      -1, "invalid argument")                                     \
    X(ENOMEM,      -2, "out of memory: the pool cap or the allocator refused")  \
    X(EBADPATH,    -3, "malformed path")                                       \
    X(ENOROUTE,    -4, "no route matches the path")                            \
    X(EBADPATTERN, -5, "invalid route pattern")                                \
    X(EEXIST,      -6, "already registered")                                   \
    X(ENOENT,      -7, "not found")                                            \
    X(ECLOSED,     -8, "kernel is closed")                                     \
    X(EFULL,       -9, "mailbox is full")                                      \
    X(ETOOBIG,    -10, "payload too large")                                    \
    X(ETIMEDOUT,  -11, "timed out")                                            \
    X(EJOURNAL,   -12, "journal error")                                        \
    X(EMAPFULL,   -13, "journal map is full and at its size cap")              \
    X(ECORRUPT,   -14, "corrupt journal entry")                                \
    X(EREADERS,   -15, "journal reader table is full")                         \
    X(EDISKFULL,  -16, "no space left on the journal's device")                \
    X(EHANDLER,   -17, "handler returned an error")                            \
    X(ESTOPPED,   -18, "actor is stopped")                                     \
    X(EPERM,      -19, "permission denied")                                    \
    X(EBUSY,      -20, "resource busy")                                        \
    X(ESYS,       -21, "system call failed")


typedef enum hy_err {
    HY_OK = 0,
#define HY_ERR_ENUM_ROW(name, code, text) HY_##name = (code),
    HY_ERR_TABLE(HY_ERR_ENUM_ROW)
#undef HY_ERR_ENUM_ROW
} hy_err;

/* Text for an error code ("unknown error" for a code not in the table). */
HY_API const char *hy_strerror(int err);
/* Name of an error code, e.g. "HY_EBADPATH" ("HY_UNKNOWN" if not in the table). */
HY_API const char *hy_err_name(int err);
/* Details of the most recent failure on this thread (e.g. a pattern and the byte
 * offset of its error), or "" when the failing call had nothing to add. */
HY_API const char *hy_errdetail(void);

/* Version of the library that is linked (HY_VERSION_HEX of its build). */
HY_API unsigned hy_version(void);

/* ---------------------------------------------------------------- kernel */

typedef struct hy_kernel hy_kernel; /* one running kernel: workers, routes, pool */
typedef struct hy_ctx hy_ctx;       /* what a handler knows about its actor */
typedef struct hy_msg hy_msg;       /* a message, as a handler reads it */

/* Configuration. A zeroed hy_config (or NULL) gives good defaults. */
typedef struct hy_config {
    unsigned workers;      /* worker threads; 0: the number of online CPUs */
    unsigned batch;        /* messages an actor handles per turn before others
                              get a go; 0: 64 */
    size_t pool_cap_bytes; /* bytes the message pool may reserve; 0: no cap.
                              Past it, sends fail with HY_ENOMEM */
    size_t max_payload;    /* largest payload accepted; 0: 64 KiB; at most
                              HY_MAX_PAYLOAD. Larger sends fail with HY_ETOOBIG */
} hy_config;

/* The largest max_payload a kernel accepts (the pool's largest object less a
 * message's header and path). */
#define HY_MAX_PAYLOAD ((size_t)1 << 19)

/* Start a kernel: its pool, router and worker threads.
 * Returns 0, HY_EINVAL (out NULL, a config value out of range), HY_ENOMEM or
 * HY_ESYS (a thread could not be started). */
HY_API int hy_kernel_open(hy_kernel **out, const hy_config *config);

/* Wait until every message sent so far has been handled, including the messages
 * handlers send meanwhile. timeout_ms < 0 waits without limit. Returns 0 or
 * HY_ETIMEDOUT. Safe from any thread except a handler (which would wait on
 * itself: HY_EINVAL). */
HY_API int hy_kernel_drain(hy_kernel *k, int timeout_ms);

/* Stop accepting messages (every send from now on returns HY_ECLOSED), wait for
 * sends already under way, handle everything accepted, then stop the workers.
 * Safe while other threads are still sending; idempotent. Returns 0, or
 * HY_EINVAL when called from a handler. */
HY_API int hy_kernel_shutdown(hy_kernel *k);

/* Shut down (as hy_kernel_shutdown) if not done yet, then free everything the
 * kernel holds, actors' states through their subsystem's state_free. No other
 * thread may use k during or after this call. k may be NULL. */
HY_API void hy_kernel_close(hy_kernel *k);

/* ---------------------------------------------------------------- subsystems */

/* A handler runs on a worker thread, one message at a time per actor. It returns
 * 0, or a negative code to report a failure (counted as failed). msg and
 * everything read through it or ctx is valid only until the handler returns. */
typedef int (*hy_handler)(hy_ctx *ctx, const hy_msg *msg);

/* One route of a subsystem. Patterns are relative to the subsystem:
 *   create              a static path          orders://create
 *   item/{id}           a parameter: one segment
 *   item/{id:[0-9]+}    a typed parameter: PCRE2, anchored to the whole segment
 *   files/ *            (no space) any one segment
 *   files/ **           (no space) the rest: zero or more segments, last only
 *   the empty pattern   the subsystem's root, orders://
 * Precedence per segment, most specific first: static, typed, {param}, *, **;
 * a branch that fails further down falls back to the next; on a tie the route
 * registered first wins. */
typedef struct hy_route {
    const char *pattern;
    hy_handler handler;
    void *udata;        /* hy_route_udata(ctx) gives it back */
    const char *key;    /* NULL: messages go to the subsystem's one actor.
                           A capture's name ("id"): each distinct value of it is
                           its own actor, created by its first message */
} hy_route;

typedef struct hy_subsystem_def {
    const hy_route *routes;
    size_t nroutes;
    void *udata;        /* hy_subsystem_udata(ctx) gives it back */
    /* Optional: make a new actor's state (the subsystem's actor at registration,
     * a keyed actor at its first message; key is NULL/0 for the former). A
     * non-zero return refuses the actor: its message counts as failed. */
    int (*state_init)(void *udata, const char *key, size_t key_len, void **state);
    /* Optional: free a state, when the kernel closes. */
    void (*state_free)(void *udata, void *state);
} hy_subsystem_def;

/* Register a subsystem and its routes. The kernel copies name, patterns and
 * keys; def may go away after the call. Safe while messages flow.
 * Returns 0, HY_EINVAL (bad name: [a-z][a-z0-9_-]{0,63}; a route without a
 * handler; a key that is not a capture of its pattern), HY_EEXIST (name taken,
 * "kernel" is reserved; or a duplicate pattern), HY_EBADPATTERN (with
 * hy_errdetail() naming the pattern, the byte offset and the reason),
 * HY_ENOMEM, HY_ECLOSED. On error nothing is registered. */
HY_API int hy_subsystem_register(hy_kernel *k, const char *name,
                                 const hy_subsystem_def *def);

/* ---------------------------------------------------------------- sending */

/* Send a message to a path. The payload is copied; the call does not wait for
 * the handler. Returns 0 once the message is in its actor's mailbox, or
 * HY_EBADPATH, HY_ENOROUTE, HY_ETOOBIG, HY_ENOMEM (pool cap), HY_ECLOSED,
 * HY_EINVAL (NULL path, or NULL payload with len > 0). From inside a handler the
 * woken actor runs on the same worker (locality). */
HY_API int hy_send(hy_kernel *k, const char *path, const void *payload, size_t len);

typedef struct hy_send_item {
    const char *path;
    const void *payload;
    size_t len;
} hy_send_item;

/* Send n messages: one route lookup per distinct path in a run of equal paths,
 * one mailbox push per destination actor, one wake-up per actor. Messages are
 * accepted in order until the first that fails; *accepted (may be NULL) is how
 * many were, and the return value is the first error (0 if all went). */
HY_API int hy_send_batch(hy_kernel *k, const hy_send_item *items, size_t n,
                         size_t *accepted);

/* ---------------------------------------------------------------- in a handler */

/* The message's path (NUL-terminated) and payload; len may be NULL. */
HY_API const char *hy_msg_path(const hy_msg *msg, size_t *len);
HY_API const void *hy_msg_payload(const hy_msg *msg, size_t *len);

/* A capture of the matched route by name ("id" for {id}, "*" / "**" for
 * wildcards), as a slice of the path: NOT NUL-terminated; *len is its length.
 * NULL when the route has no such capture. */
HY_API const char *hy_param(hy_ctx *ctx, const char *name, size_t *len);

/* The actor's state: set by state_init or by the handler, kept across messages. */
HY_API void *hy_state(hy_ctx *ctx);
HY_API void hy_set_state(hy_ctx *ctx, void *state);
/* A keyed actor's key (NULL for a subsystem's actor); len may be NULL. */
HY_API const char *hy_actor_key(hy_ctx *ctx, size_t *len);
HY_API void *hy_route_udata(hy_ctx *ctx);
HY_API void *hy_subsystem_udata(hy_ctx *ctx);
HY_API hy_kernel *hy_ctx_kernel(hy_ctx *ctx);

/* ---------------------------------------------------------------- inspection */

#define HY_MAX_PARAMS 16

/* Which route a path resolves to, without sending. Slices point into `path`. */
typedef struct hy_match_result {
    const char *subsystem; /* valid while the kernel is open */
    const char *pattern;   /* valid while the kernel is open */
    unsigned nparams;
    struct {
        const char *name;  /* valid while the kernel is open */
        const char *value; /* into path, not NUL-terminated */
        size_t len;
    } params[HY_MAX_PARAMS];
} hy_match_result;

/* Returns 0, HY_EBADPATH, HY_ENOROUTE, HY_EINVAL, HY_ECLOSED. */
HY_API int hy_match(hy_kernel *k, const char *path, hy_match_result *out);

typedef struct hy_stats {
    uint64_t sent;          /* messages accepted by a send */
    uint64_t handled;       /* handlers run (including those that failed) */
    uint64_t failed;        /* handlers that returned an error */
    uint64_t queued;        /* accepted and not yet handled */
    uint64_t subsystems;
    uint64_t actors;        /* live actors: one per subsystem plus keyed ones */
    uint64_t steals;        /* actors a worker took from another's deque */
    uint64_t parks;         /* times a worker went to sleep for lack of work */
    unsigned workers;
    uint64_t pool_created;  /* message objects carved fresh */
    uint64_t pool_reused;   /* message objects served from the free lists */
    uint64_t pool_in_use;
    uint64_t pool_peak;
    uint64_t pool_bytes_reserved;
    double pool_reuse_rate;
} hy_stats;

/* Kernel-wide figures. Counters are read without stopping the kernel, so under
 * load they are a moment's approximation. Returns 0 or HY_EINVAL. */
HY_API int hy_kernel_stats(hy_kernel *k, hy_stats *out);

typedef struct hy_subsystem_stats {
    uint64_t sent, handled, failed;
    uint64_t queued;  /* mailbox depth summed over the subsystem's actors */
    uint64_t actors;
} hy_subsystem_stats;

/* Returns 0, HY_ENOENT (no such subsystem) or HY_EINVAL. */
HY_API int hy_subsystem_stats_get(hy_kernel *k, const char *name,
                                  hy_subsystem_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* HYPHA_H */
