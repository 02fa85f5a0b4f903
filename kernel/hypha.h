/** @file
 * hypha: an in-process message-routing kernel.
 *
 * This header is the whole public API and its manual. Conventions, as in libuv
 * and LMDB:
 *  - every fallible call returns int: 0 on success or a negative hy_err code;
 *    hy_strerror(code) gives its text, hy_err_name(code) its name;
 *  - when a call can say more (which pattern, at which byte), the text is
 *    available from hy_errdetail() on the same thread until its next failing call;
 *  - handles are opaque; the caller owns what it passes in and the kernel copies
 *    what it keeps;
 *  - threads: each call's comment (for the calls of "in a handler", that
 *    section's opening comment) ends by saying whether it is thread-safe
 *    (callable from any thread, concurrently with any other call on the
 *    same kernel) and whether a handler may call it. In short, every
 *    call is thread-safe except hy_kernel_close; the calls of "in a handler",
 *    hy_ask_async and hy_reply take the hy_ctx or hy_msg of a running handler
 *    and are for that handler alone; a handler may make any call except
 *    hy_ask, hy_kernel_drain, hy_kernel_shutdown (each returns HY_EINVAL) and
 *    hy_kernel_close. */
#ifndef HYPHA_H
#define HYPHA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @{ */
/** The version of this header: major, minor, patch, and all three in one
 * number, 0xMMmmpp, to compare with hy_version(). */
#define HY_VERSION_MAJOR 0
#define HY_VERSION_MINOR 1
#define HY_VERSION_PATCH 0
#define HY_VERSION_HEX \
    ((HY_VERSION_MAJOR << 16) | (HY_VERSION_MINOR << 8) | HY_VERSION_PATCH)
/** @} */

#if defined(__GNUC__)
#define HY_API __attribute__((visibility("default")))
#else
#define HY_API
#endif

/* ---------------------------------------------------------------- errors */

/** The one table of error codes: X(NAME, code, text). It expands into the hy_err
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
    X(ESYS,       -21, "system call failed")                                  \
    X(EDISCONNECTED, -22, "not connected to the NATS server")

/** Error codes: HY_OK (0) and HY_<NAME> for each row of HY_ERR_TABLE. */
typedef enum hy_err {
    HY_OK = 0,
#define HY_ERR_ENUM_ROW(name, code, text) HY_##name = (code),
    HY_ERR_TABLE(HY_ERR_ENUM_ROW)
#undef HY_ERR_ENUM_ROW
} hy_err;

/** Text for an error code ("unknown error" for a code not in the table).
 * Thread-safe. From a handler: yes. */
HY_API const char *hy_strerror(int err);
/** Name of an error code, e.g. "HY_EBADPATH" ("HY_UNKNOWN" if not in the table).
 * Thread-safe. From a handler: yes. */
HY_API const char *hy_err_name(int err);
/** Details of the most recent failure on this thread (e.g. a pattern and the byte
 * offset of its error), or "" when the failing call had nothing to add.
 * Thread-safe (each thread has its own). From a handler: yes. */
HY_API const char *hy_errdetail(void);

/** Version of the library that is linked (HY_VERSION_HEX of its build).
 * Thread-safe. From a handler: yes. */
HY_API unsigned hy_version(void);

/* ---------------------------------------------------------------- kernel */

typedef struct hy_kernel hy_kernel; /**< one running kernel: workers, routes, pool */
typedef struct hy_ctx hy_ctx;       /**< what a handler knows about its actor */
typedef struct hy_msg hy_msg;       /**< a message, as a handler reads it */

/** What a send into a full mailbox does. */
typedef enum hy_overflow {
    HY_OVERFLOW_FAIL = 0,     /**< the send returns HY_EFULL; nothing is queued */
    HY_OVERFLOW_BLOCK,        /**< the sender waits for room (block_timeout_ms, then
                                 HY_EFULL); from inside a handler it acts as FAIL,
                                 so a worker never blocks */
    HY_OVERFLOW_DROP_OLDEST,  /**< the send succeeds; the oldest queued message is
                                 dropped (dead letter HY_DEAD_DROPPED) when the
                                 worker reaches it: a stalled actor's mailbox
                                 still grows, up to the pool cap */
    HY_OVERFLOW_DROP_NEWEST,  /**< the send succeeds; the new message is dropped
                                 (dead letter HY_DEAD_DROPPED) */
} hy_overflow;

/** Why a message was not handled: X(NAME, text). The first four are messages
 * a send accepted (counted in hy_stats.sent), so once the kernel is idle
 * sent == handled + FAILED + DROPPED + STOPPED + JOURNAL. The others were never accepted:
 * refused at send time (the sender also got the error), or a reply nobody
 * waited for any more. */
#define HY_DEAD_TABLE(X)                                                       \
    X(FAILED,     "its handler returned an error")                            \
    X(DROPPED,    "dropped by its mailbox's overflow policy")                 \
    X(STOPPED,    "its actor was stopped by supervision")                     \
    X(JOURNAL,    "its persistent subsystem's journal failed to write it")    \
    X(NOROUTE,    "no route matched its path (refused at send)")              \
    X(FULL,       "its mailbox was full (refused at send)")                   \
    X(LATE_REPLY, "a reply that arrived after its asker gave up")             \
    X(TIMER_NOROUTE, "a timer fired to a path no route matched")                \
    X(UNREGISTERED, "its subsystem was unregistered before it was handled")    \
    X(REMOTE,     "a message NATS could not carry (bad subject, too large, not connected)")

/** Dead-letter reasons: HY_DEAD_<NAME> for each row of HY_DEAD_TABLE, in its
 * order, then HY_DEAD__COUNT, their number. */
typedef enum hy_dead_reason {
#define HY_DEAD_ENUM_ROW(name, text) HY_DEAD_##name,
    HY_DEAD_TABLE(HY_DEAD_ENUM_ROW)
#undef HY_DEAD_ENUM_ROW
    HY_DEAD__COUNT
} hy_dead_reason;

/** Text for a dead-letter reason. Thread-safe. From a handler: yes. */
HY_API const char *hy_dead_reason_str(int reason);

/** A message that was not handled: its path and payload (valid during the call
 * only) and why. */
typedef void (*hy_dead_letter_fn)(void *udata, const char *path, size_t path_len,
                                  const void *payload, size_t len, hy_dead_reason reason);
/** A failure escalated by a subsystem: its name, the actor's key (NULL for the
 * subsystem's own actor) and the handler's error. */
typedef void (*hy_escalate_fn)(void *udata, const char *subsystem, const char *key,
                               size_t key_len, int err);

/** How hard a persistent subsystem's journal holds on to a message before its
 * handler runs (see hy_config.journal_path). */
typedef enum hy_durability {
    HY_DURABILITY_SYNC = 0, /**< default: each group commit is fsync'd; an
                               acknowledged message survives kill -9 and power loss */
    HY_DURABILITY_NOSYNC,   /**< committed to the OS page cache: survives kill -9 of
                               the process, the last commits may be lost on an OS
                               crash or power loss */
    HY_DURABILITY_OFF,      /**< written through a writable map, never flushed:
                               survives kill -9; an OS crash may leave the journal
                               inconsistent. The map's size is reserved on disk at
                               open and as it grows (a full disk is HY_EDISKFULL) */
} hy_durability;

/** Configuration. A zeroed hy_config (or NULL) gives good defaults. */
typedef struct hy_config {
    unsigned workers;      /**< worker threads; 0: the number of online CPUs */
    unsigned batch;        /**< messages an actor handles per turn before others
                              get a go; 0: 64 */
    size_t pool_cap_bytes; /**< bytes the message pool may reserve; 0: no cap.
                              Past it, sends fail with HY_ENOMEM */
    size_t max_payload;    /**< largest payload accepted; 0: 64 KiB; at most
                              HY_MAX_PAYLOAD. Larger sends fail with HY_ETOOBIG */

    /** Default mailbox bound for subsystems that set none: 0 = unbounded. */
    uint32_t mailbox_capacity;
    hy_overflow overflow;          /**< what a send into a full mailbox does */
    int block_timeout_ms;          /**< HY_OVERFLOW_BLOCK: longest wait; 0: 1000 */

    /** Every message that is not handled ends here (if set), on the thread where
     * it happened (a worker or a sender): keep it short and thread-safe. It may
     * not send. Whether set or not, each is counted by reason in hy_stats. */
    hy_dead_letter_fn dead_letter;
    /** A subsystem with HY_SUPERVISE_ESCALATE reports its failures here, on the
     * worker that ran the failed handler. */
    hy_escalate_fn escalate;
    void *udata;                   /**< given to dead_letter and escalate */

    /** Persistence (docs/ARCHITECTURE.md §4). journal_path: the directory of the
     * kernel's LMDB journal, created (0750) if missing, its parent must exist;
     * NULL: no journal, and persistent subsystems are refused. */
    const char *journal_path;
    hy_durability durability;      /**< see hy_durability; 0: HY_DURABILITY_SYNC */
    size_t journal_map_size;       /**< initial map size; 0: 64 MiB */
    size_t journal_map_max;        /**< the map grows (doubling) up to this cap;
                                      0: 1 TiB. At the cap, persistent sends fail
                                      with HY_EMAPFULL (see hy_send) */
    uint32_t snapshot_every;       /**< the kernel snapshots a persistent actor (with
                                      its subsystem's state_save) every this many
                                      handled messages; 0: 1000 */

    /** Passivation of keyed actors (docs/ARCHITECTURE.md §5): the defaults of every
     * subsystem that can passivate (see hy_subsystem_def.passivate). A keyed
     * actor with no message for about idle_timeout_ms is passivated (the sweep
     * is coarse: it runs every quarter of the timeout, at least every 10 ms, so
     * an actor may go that much early or late); 0: never for idleness. When
     * a subsystem has more than max_active_actors active keyed actors, the
     * least recently used are passivated until it has no more; 0: no cap. When
     * pool_cap_bytes is set and the pool holds more than 90% of it, most of
     * it in live messages, the least recently used eighth of those
     * subsystems' actors is passivated at each sweep too. (That relieves the
     * process, not the pool: actors live outside it, and only actors without
     * queued messages are passivated.)
     * A background thread (one per kernel) does it, started once some
     * subsystem can passivate.
     * @{ */
    uint32_t idle_timeout_ms;
    uint64_t max_active_actors;
    /** @} */
} hy_config;

/** The largest max_payload a kernel accepts (the pool's largest object less a
 * message's header and path). */
#define HY_MAX_PAYLOAD ((size_t)1 << 19)

/** The longest path, in bytes, and the most segments one may have (after
 * "subsystem://"): a longer path is HY_EBADPATH, with hy_errdetail() naming
 * the limit. A ** capture can therefore hold at most HY_MAX_SEGMENTS - 1
 * segments after a static one. @{ */
#define HY_PATH_MAX 1024
#define HY_MAX_SEGMENTS 32
/** @} */

/** Start a kernel: its pool, router, journal (when journal_path is set) and
 * worker threads.
 * Returns 0, HY_EINVAL (out NULL, a config value out of range), HY_ENOMEM or
 * HY_ESYS (a thread could not be started); when the journal cannot be opened,
 * its error (HY_EPERM, HY_ECORRUPT, HY_EREADERS, HY_EDISKFULL, HY_EJOURNAL),
 * with hy_errdetail() naming the path and LMDB's message; HY_EBUSY when
 * another kernel, of this process or another, has the journal open (one
 * kernel per journal; the detail names the holder's process id; the lock
 * goes with its process, so a killed one does not keep it).
 * Thread-safe (each call makes its own kernel). From a handler: yes. */
HY_API int hy_kernel_open(hy_kernel **out, const hy_config *config);

/** Wait until every message sent so far has been handled, including the messages
 * handlers send meanwhile. timeout_ms < 0 waits without limit. Returns 0 or
 * HY_ETIMEDOUT. Safe from any thread except a handler (which would wait on
 * itself: HY_EINVAL); HY_EINVAL too when k is NULL.
 * Thread-safe. From a handler: no (HY_EINVAL). */
HY_API int hy_kernel_drain(hy_kernel *k, int timeout_ms);

/** Stop accepting messages (every send from now on returns HY_ECLOSED), wait for
 * sends already under way, handle everything accepted, then stop the workers.
 * Safe while other threads are still sending; idempotent. Returns 0, or
 * HY_EINVAL when called from a handler (nothing is done) or with k NULL.
 * Thread-safe: a call made while another is under way returns 0 at once,
 * before the workers have stopped. From a handler: no (HY_EINVAL). */
HY_API int hy_kernel_shutdown(hy_kernel *k);

/** Shut down (as hy_kernel_shutdown) if not done yet, then free everything the
 * kernel holds, actors' states through their subsystem's state_free, and close
 * the journal (every submitted entry written first). No other thread may use k
 * during or after this call. k may be NULL.
 * Not thread-safe. From a handler: never: it cannot refuse, and would free
 * the kernel under the worker running the handler. */
HY_API void hy_kernel_close(hy_kernel *k);

/* ---------------------------------------------------------------- subsystems */

/** A handler runs on a worker thread, one message at a time per actor. It returns
 * 0, or a negative code to report a failure (counted as failed). msg and
 * everything read through it or ctx is valid only until the handler returns. */
typedef int (*hy_handler)(hy_ctx *ctx, const hy_msg *msg);

/** One route of a subsystem. Patterns are relative to the subsystem:
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
    const char *pattern; /**< relative to the subsystem; the kernel copies it */
    hy_handler handler;  /**< runs each message the route matches */
    void *udata;        /**< hy_route_udata(ctx) gives it back */
    const char *key;    /**< NULL: messages go to the subsystem's one actor.
                           A capture's name ("id"): each distinct value of it is
                           its own actor, created by its first message */
    const char *scope;  /**< NULL: the subsystem's scope (hy_subsystem_def.scope).
                           A scope ("orders:write"): only a sender whose
                           principal holds it may send here; see "principals" */
    /** 0 (default): in a persistent subsystem, each message is journaled
     * before it is handled and replayed at recovery. Non-zero: the handler
     * only reads the actor's state (a query: "order/{id}/total"), so its
     * messages are neither journaled nor replayed, and cost no write.
     *
     * Order: a read-only message still comes after every message its sender
     * sent to the same actor before it: when some of the actor's journaled
     * messages are not yet durable it waits (not written) until those
     * submitted before it are delivered, so a read sent after a write sees
     * the write. hy_send_durable to such a route acknowledges with status 0
     * at that moment (nothing is written).
     *
     * Its handler must not change the state: a change is never replayed, so
     * it would be lost at the next recovery or passivation and the actor's
     * state would differ from what the journal rebuilds. hy_set_state from it
     * is refused: the state stays, and the message fails (HY_EINVAL, a dead
     * letter HY_DEAD_FAILED; an asker gets HY_EHANDLER). A change in place
     * through hy_state's pointer cannot be seen: do not make one. Use a
     * journaled route (the default) for anything that changes state, even
     * rarely. Ignored in a subsystem that is not persistent. */
    int read_only;
} hy_route;

/** Supervision strategies, for a handler that returns an error. */
typedef enum hy_supervision {
    HY_SUPERVISE_RESUME = 0,  /**< go on with the next message */
    HY_SUPERVISE_RESTART,     /**< free the actor's state and make it anew with
                                 state_init; queued messages are kept, in order */
    HY_SUPERVISE_STOP,        /**< stop the actor: messages already queued become
                                 dead letters (HY_DEAD_STOPPED); later sends to
                                 it are refused with HY_ESTOPPED (the sender
                                 has the error; they are not dead letters) */
    HY_SUPERVISE_ESCALATE,    /**< call hy_config.escalate, then go on */
} hy_supervision;

/** A subsystem: its routes, its actors' state and mailboxes, its supervision,
 * persistence and passivation (see hy_subsystem_register). A zeroed field
 * takes its default. */
typedef struct hy_subsystem_def {
    const hy_route *routes; /**< its routes; the kernel copies what it keeps */
    size_t nroutes;         /**< how many routes */
    void *udata;        /**< hy_subsystem_udata(ctx) gives it back */
    /** Optional: make a new actor's state (the subsystem's actor at registration,
     * a keyed actor at each activation: its first message, and the first after
     * each passivation; key is NULL/0 for the former). A
     * non-zero return refuses the actor: its message counts as failed and the
     * send returns HY_EHANDLER. For a keyed actor it runs on the sending
     * thread, in the middle of that send: it may send, but must not register
     * subsystems or subscribe (those wait for sends under way to finish). */
    int (*state_init)(void *udata, const char *key, size_t key_len, void **state);
    /** Optional: free a state, when the kernel closes or an actor restarts. */
    void (*state_free)(void *udata, void *state);

    /** Mailbox bound of each of this subsystem's actors; 0 takes hy_config's. */
    uint32_t mailbox_capacity;
    hy_overflow overflow;          /**< used when mailbox_capacity != 0 */
    int block_timeout_ms;          /**< 0 takes hy_config's */

    /** What a handler's failure (a non-zero return) does. Every failed message
     * is a dead letter (HY_DEAD_FAILED) whatever the strategy. */
    hy_supervision strategy;
    /** HY_SUPERVISE_RESTART: more than max_restarts restarts within one window
     * of restart_window_ms stop the actor; 0: 5 restarts, 1000 ms. Windows
     * are fixed (a new one starts with the first restart after the last one
     * ended).
     * @{ */
    uint32_t max_restarts;
    uint32_t restart_window_ms;
    /** @} */

    /** Persistence (needs hy_config.journal_path). A persistent subsystem's
     * messages are written to the journal (group commit) before their handler
     * runs: a message acknowledged by hy_send_durable is never lost and never
     * applied twice. Each actor (the subsystem's own, and each keyed one) is
     * rebuilt when it is created (at registration, or at a key's first
     * message): its latest snapshot through state_load, then every later
     * journal entry through its route's handler, in journal order, with
     * hy_is_replaying() true and every send suppressed. Handlers must be
     * deterministic in the state and the message for this to rebuild it.
     * A replay's failed handler counts as failed (a RESTART strategy makes the
     * state anew, as it did live); the overflow policy DROP_OLDEST is refused
     * (it drops journaled messages unhandled, which a replay would apply). */
    int persistent;
    /** Optional (both or neither): the kernel snapshots each actor every
     * hy_config.snapshot_every handled messages. state_save serialises state
     * into *bytes (malloc'd by the callback, freed by the kernel with free)
     * and *len; state_load makes a state from those bytes (key NULL/0 for the
     * subsystem's actor), after which the state state_init made is freed with
     * state_free. A non-zero return: save skips this snapshot (counted); load
     * fails the actor's creation (HY_EHANDLER). Without them an actor is
     * rebuilt from its whole journal.
     * @{ */
    int (*state_save)(void *udata, void *state, void **bytes, size_t *len);
    int (*state_load)(void *udata, const char *key, size_t key_len, const void *bytes,
                      size_t len, void **state);
    /** @} */

    /** Passivation (docs/ARCHITECTURE.md §5). Keyed actors are virtual: one is
     * made (activated) by the first message to its key, and may be passivated
     * when idle or over the cap (hy_config's idle_timeout_ms and
     * max_active_actors; these two override them, 0 takes the config's,
     * UINT32_MAX / UINT64_MAX turn the policy off for this subsystem). A
     * passivated actor costs no memory; the next message to its key activates
     * it again, and a message that arrives while it is being passivated is
     * delivered (in order per sender) to it or to its next activation: nothing
     * is lost, reordered or handled twice. Passivation never runs while the
     * actor has queued messages or is running; a subsystem's own actor and
     * subscriptions are never passivated; nor is an actor stopped by
     * supervision (it keeps refusing messages).
     *
     * Only a subsystem that can keep its actors' state passivates them:
     *  - a persistent one: the kernel snapshots the state (state_save; not if
     *    nothing was applied since the last snapshot) and frees it; activation
     *    is the usual recovery (snapshot, then journal replay). Without
     *    state_save the actor is rebuilt from its whole journal;
     *  - any other one that sets passivate: it is called with the actor's key
     *    and state, on the kernel's passivation thread, to save the state
     *    wherever the subsystem keeps it (it must not free nor change it);
     *    0 means saved: the kernel then frees the state with state_free and
     *    the actor. Activation calls state_init, which loads what passivate
     *    saved. Stateless actors can use hy_passivate_discard.
     * A non-zero return of passivate, or a snapshot that fails (state_save's
     * refusal or the journal's error), keeps the actor active with its state
     * and counts it (hy_stats.passivate_failed); it is tried again later.
     * passivate is not called for persistent subsystems. It may run just
     * before a message calls the passivation off: the actor then goes on with
     * its state, and a later passivation calls passivate again.
     * @{ */
    uint32_t idle_timeout_ms;
    uint64_t max_active_actors;
    int (*passivate)(void *udata, const char *key, size_t key_len, void *state);
    /** @} */

    /** Permissions (see "principals"). scope: the scope of every route that
     * names none; NULL: none. trusted: its handlers act as themselves, with
     * the kernel's trusted principal, instead of as the principal of the
     * message they handle. @{ */
    const char *scope;
    int trusted;
    /** @} */
} hy_subsystem_def;

/** A passivate callback for actors whose state need not be kept: returns 0.
 * Thread-safe. From a handler: yes. */
HY_API int hy_passivate_discard(void *udata, const char *key, size_t key_len, void *state);

/** Register a subsystem and its routes. The kernel copies name, patterns and
 * keys; def may go away after the call. Safe while messages flow. A persistent
 * subsystem's own actor is recovered from the journal here, before its routes
 * are published.
 * Returns 0, HY_EINVAL (bad name: [a-z][a-z0-9_-]{0,63}; a route without a
 * handler; a key that is not a capture of its pattern; persistent without a
 * journal, with DROP_OLDEST, or with only one of state_save/state_load),
 * a journal error of the recovery (HY_EREADERS, HY_EJOURNAL, HY_EHANDLER from
 * state_load; a corrupt entry does not fail it, see hy_stats.journal_corrupt),
 * HY_EEXIST (name taken,
 * "kernel" is reserved; or a duplicate pattern), HY_EBADPATTERN (with
 * hy_errdetail() naming the pattern, the byte offset and the reason),
 * HY_ENOMEM, HY_ECLOSED, HY_ESYS (the first subsystem that can passivate
 * starts the passivation thread, which failed). On error nothing is
 * registered.
 * Thread-safe. From a handler: yes, though not from a replaying one nor from
 * state_init (either may run inside a send, which this waits for). */
HY_API int hy_subsystem_register(hy_kernel *k, const char *name,
                                 const hy_subsystem_def *def);

/** Unregister a subsystem. Its routes are withdrawn first: once this has begun
 * withdrawing them, a send to the subsystem either was accepted before or gets
 * HY_ENOROUTE, and the name may be registered again once this returns. The
 * messages already accepted (queued, or waiting on the journal) are then
 * handled for up to timeout_ms (negative: no limit); past it, every one not
 * yet handled becomes a dead letter HY_DEAD_UNREGISTERED, so none is dropped
 * silently, and no handler of it starts again. A handler already running is
 * not interrupted, nor waited for without limit: when no message of the
 * subsystem has been handled or dead-lettered for a second past the timeout,
 * this returns HY_EBUSY, and what is left is dead-lettered once that handler
 * returns.
 * The subsystem's memory (its actors, keyed ones included, their states
 * through state_free, its route bindings) is freed in the background once
 * nothing can reach it any more (with HY_EBUSY: after the running handler
 * returns; at the latest at hy_kernel_close), on a thread of the kernel's own,
 * which calls state_free. Until then it still appears in
 * hy_stats and hy_subsystems_list; its counters keep counting in hy_stats'
 * totals after. The strings of a hy_match result that point into it are
 * valid until it is unregistered.
 * Returns 0 (everything accepted was handled), HY_ETIMEDOUT (unregistered, the
 * rest dead-lettered before it returned), HY_EBUSY (unregistered, a handler
 * still running: the rest is dead-lettered and the memory freed after it),
 * HY_EINVAL (NULL argument, "kernel", or called from a handler, which would
 * wait on itself), HY_ENOENT (no such subsystem), HY_ECLOSED.
 * Thread-safe. From a handler: no (HY_EINVAL). */
HY_API int hy_subsystem_unregister(hy_kernel *k, const char *name, int timeout_ms);

/* ---------------------------------------------------------------- sending */

/** Send a message to a path. The payload is copied; the call does not wait for
 * the handler. Returns 0 once the message is in its actor's mailbox (for a
 * persistent subsystem: queued for the journal, and put in the mailbox once
 * durable; if the journal then fails, it is a dead letter HY_DEAD_JOURNAL), or
 * HY_EBADPATH, HY_ENOROUTE, HY_ETOOBIG, HY_ENOMEM (pool cap), HY_ECLOSED,
 * HY_EINVAL (NULL path, or NULL payload with len > 0), HY_EFULL, HY_ESTOPPED,
 * HY_EMAPFULL (persistent subsystem: the journal reached journal_map_max; from
 * then on, until the kernel is reopened, its persistent sends are refused at
 * once while non-persistent subsystems go on), or the error of a keyed
 * persistent actor's recovery. From inside a handler the woken actor runs on
 * the same worker (locality). A send made by a replaying handler (see
 * hy_is_replaying) returns 0 and sends nothing; so do hy_send_batch,
 * hy_publish, hy_ask_async and hy_reply.
 * Thread-safe. From a handler: yes (HY_OVERFLOW_BLOCK then acts as FAIL). */
HY_API int hy_send(hy_kernel *k, const char *path, const void *payload, size_t len);

/** hy_send to a persistent subsystem, telling the sender when the message is
 * durable: on_durable(udata, 0) once its journal entry is committed (under
 * HY_DURABILITY_SYNC: fsync'd), before its handler runs, or on_durable(udata,
 * err) when it will not be (the journal's error, e.g. HY_EMAPFULL or
 * HY_EDISKFULL; HY_EFULL when the DROP_NEWEST policy dropped it). Called
 * exactly once when this returns 0, never otherwise; on the journal's thread
 * (or this one for a drop): keep it short, it may not call into the kernel.
 * on_durable may be NULL. Errors as hy_send, and HY_EINVAL when the path's
 * subsystem is not persistent (nothing is sent: a durability promise the
 * kernel cannot keep is refused rather than faked). A replaying handler's
 * call returns 0 without sending or calling on_durable (as hy_send).
 * Thread-safe. From a handler: yes, as hy_send. */
HY_API int hy_send_durable(hy_kernel *k, const char *path, const void *payload, size_t len,
                           void (*on_durable)(void *udata, int status), void *udata);

/** One message of hy_send_batch, as hy_send's arguments. */
typedef struct hy_send_item {
    const char *path;    /**< where to */
    const void *payload; /**< copied; NULL only when len is 0 */
    size_t len;          /**< payload bytes */
} hy_send_item;

/** Send n messages: one route lookup per distinct path in a run of equal paths,
 * one mailbox push per destination actor, one wake-up per actor; the messages
 * to persistent subsystems are submitted to the journal together at the end
 * and land in one group commit (a message of a read-only route submits those
 * before it first, so it comes after them: see hy_route.read_only). Messages
 * are accepted in order until the first that fails; *accepted (may be NULL)
 * is how many were, and the return value is the first error (0 if all went).
 * Should the journal refuse a submission (HY_ENOMEM, HY_ESYS: rare),
 * *accepted stops before its first message, though messages after it to
 * non-persistent subsystems were delivered.
 * Thread-safe. From a handler: yes, as hy_send. */
HY_API int hy_send_batch(hy_kernel *k, const hy_send_item *items, size_t n,
                         size_t *accepted);

/* ---------------------------------------------------------------- in a handler */

/* Every call of this section takes the hy_ctx or hy_msg given to a running
 * handler, and is for that handler alone: on its thread, until it returns.
 * They never fail and never block. */

/** @{ */
/** The message's path (NUL-terminated) and payload; len may be NULL. */
HY_API const char *hy_msg_path(const hy_msg *msg, size_t *len);
HY_API const void *hy_msg_payload(const hy_msg *msg, size_t *len);
/** @} */

/** A capture of the matched route by name ("id" for {id}, "*" / "**" for
 * wildcards), as a slice of the path: NOT NUL-terminated; *len is its length.
 * NULL when the route has no such capture. */
HY_API const char *hy_param(hy_ctx *ctx, const char *name, size_t *len);

/** Non-zero when the handler is replaying a journal entry to rebuild a
 * persistent actor's state (see hy_subsystem_def.persistent), not handling a
 * live message. Replay runs on the thread that creates the actor (a sender's,
 * or the registering one), with exclusive access to the actor. */
HY_API int hy_is_replaying(hy_ctx *ctx);

/** @{ */
/** The actor's state: set by state_init or by the handler, kept across messages.
 * hy_set_state from a read-only route of a persistent subsystem is refused
 * (the message fails; see hy_route.read_only). */
HY_API void *hy_state(hy_ctx *ctx);
HY_API void hy_set_state(hy_ctx *ctx, void *state);
/** @} */
/** A keyed actor's key (NULL for a subsystem's actor); len may be NULL. */
HY_API const char *hy_actor_key(hy_ctx *ctx, size_t *len);
/** The udata of the route that matched (hy_route.udata). */
HY_API void *hy_route_udata(hy_ctx *ctx);
/** The running actor's id: unique within the kernel, never 0. */
HY_API uint64_t hy_self(hy_ctx *ctx);
/** The udata of the actor's subsystem (hy_subsystem_def.udata). */
HY_API void *hy_subsystem_udata(hy_ctx *ctx);
/** The kernel running the handler, for the calls that take one (hy_send...). */
HY_API hy_kernel *hy_ctx_kernel(hy_ctx *ctx);

/* Message metadata, set by the kernel at send time. */
/** Unique per kernel process run; never 0. */
HY_API uint64_t hy_msg_id(const hy_msg *msg);
/** The id of the message that started a chain: a message sent by a handler
 * inherits the trace id of the message it is handling; any other gets its own. */
HY_API uint64_t hy_msg_trace_id(const hy_msg *msg);
/** When it was sent, in CLOCK_MONOTONIC nanoseconds, read from the coarse
 * clock (CLOCK_MONOTONIC_COARSE): its resolution is the system tick, a few ms,
 * and it may lag CLOCK_MONOTONIC by a few ticks. A fine clock on every send
 * cost about a third of single-sender throughput where hypha is measured;
 * time what needs finer grain yourself. */
HY_API uint64_t hy_msg_sent_ns(const hy_msg *msg);
/** The actor that sent it (its hy_self), or 0 when sent from outside a handler. */
HY_API uint64_t hy_msg_sender(const hy_msg *msg);

/* ---------------------------------------------------------------- ask / reply */

/** Send a request and wait for its reply, from a thread outside the kernel.
 * On 0, *reply is a malloc'd copy of the reply's payload (free it with
 * hy_free; NULL when the reply was empty) and *reply_len its length.
 * Errors: those of hy_send; HY_ETIMEDOUT (no reply within timeout_ms; a reply
 * that comes later is dropped and counted as HY_DEAD_LATE_REPLY); HY_ENOENT
 * (the handler finished without replying, or the request became a dead letter
 * before a handler ran: dropped or stopped); HY_EHANDLER (the handler failed);
 * HY_EINVAL from inside a handler (a worker must not wait: use hy_ask_async).
 * Thread-safe. From a handler: no (HY_EINVAL). */
HY_API int hy_ask(hy_kernel *k, const char *path, const void *payload, size_t len,
                  void **reply, size_t *reply_len, int timeout_ms);

/** From inside a handler: send a request whose reply arrives as an ordinary
 * message at reply_to (a path this kernel routes). Errors as hy_send, and
 * HY_EINVAL (ctx or reply_to NULL) or HY_EBADPATH for a malformed reply_to.
 * Only from the handler whose ctx it is. */
HY_API int hy_ask_async(hy_ctx *ctx, const char *path, const void *payload, size_t len,
                        const char *reply_to);

/** hy_ask_async with a timeout: exactly one of two messages reaches reply_to,
 * the reply (if the handler replies within timeout_ms) or the timeout
 * message, sent timeout_ms after the request by the kernel's timer thread.
 * The timeout message has an empty payload and hy_msg_is_timeout(msg) != 0
 * (a reply never has it); its hy_msg_sender is 0. Tell several outstanding
 * asks apart by their reply_to paths (a keyed route, e.g. .../reply/{n}). A
 * reply that comes after the timeout is not delivered: it is a dead letter
 * HY_DEAD_LATE_REPLY and hy_reply returns 0. A request whose handler ends
 * without replying still gets its timeout message at the deadline.
 * timeout_ms < 0: no timeout, as hy_ask_async. Needs the timers attached
 * (hy_timer_attach, or any earlier hy_send_after / hy_send_every on the
 * kernel): otherwise HY_EINVAL. Errors as hy_send, plus HY_EINVAL (timeout
 * over HY_TIMER_MAX_MS) and HY_ECLOSED; on an error nothing is sent (with a
 * timeout of 0 the timeout message may already be on its way).
 * Thread-safe. From a handler: only there (it takes the handler's context). */
HY_API int hy_ask_async_timeout(hy_ctx *ctx, const char *path, const void *payload,
                                size_t len, const char *reply_to, int64_t timeout_ms);

/** Non-zero for the timeout message of hy_ask_async_timeout; 0 for any other.
 * Thread-safe. From a handler: yes. */
HY_API int hy_msg_is_timeout(const hy_msg *msg);

/** Reply to the message being handled: to its hy_ask caller or its reply_to
 * path. 0 also when the hy_ask caller has already given up (the reply is then
 * counted as HY_DEAD_LATE_REPLY). HY_ENOENT when it carries no reply address;
 * HY_EEXIST when already replied to; otherwise as hy_send.
 * Only from the handler whose ctx it is. */
HY_API int hy_reply(hy_ctx *ctx, const void *payload, size_t len);

/** Free memory the kernel gave the caller (hy_ask's reply). NULL is fine.
 * Thread-safe. From a handler: yes. */
HY_API void hy_free(void *p);

/* ---------------------------------------------------------------- publish / subscribe */

/** Subscribe a handler to every published path that matches pattern, a full
 * path pattern with the route syntax (orders://item/{id}, or orders:// followed by two stars).
 * Each subscription is its own actor: its handler runs one message at a time.
 * *id (may be NULL) names it for hy_unsubscribe. HY_EBADPATTERN, HY_ENOMEM,
 * HY_ECLOSED, HY_EINVAL (k, pattern or handler NULL).
 * Thread-safe. From a handler: yes, though not from a replaying one nor from
 * state_init (either may run inside a send, which this waits for). */
HY_API int hy_subscribe(hy_kernel *k, const char *pattern, hy_handler handler, void *udata,
                        uint64_t *id);
/** Options of hy_subscribe_ex; a zeroed struct (or NULL) gives hy_subscribe. */
typedef struct hy_subscribe_opts {
    const char *scope;          /**< as hy_subscribe_scoped's; NULL: none */
    /** The subscription's mailbox bound, as a subsystem's
     * (hy_subsystem_def.mailbox_capacity): 0 takes hy_config's
     * mailbox_capacity and overflow (so hy_subscribe's subscriptions are
     * bounded as a subsystem that sets none). */
    uint32_t mailbox_capacity;
    hy_overflow overflow;       /**< used when mailbox_capacity != 0 */
    int block_timeout_ms;       /**< HY_OVERFLOW_BLOCK; 0 takes hy_config's */
} hy_subscribe_opts;

/** hy_subscribe with options (opts may be NULL: hy_subscribe). A bounded
 * subscription admits a publish as a mailbox admits a send: see hy_publish
 * for what a full one does. Errors as hy_subscribe's, and HY_EINVAL
 * (overflow not a hy_overflow, block_timeout_ms < 0).
 * Thread-safe. From a handler: yes, as hy_subscribe. */
HY_API int hy_subscribe_ex(hy_kernel *k, const char *pattern, const hy_subscribe_opts *opts,
                           hy_handler handler, void *udata, uint64_t *id);
/** End a subscription: once this returns, no publish delivers to it.
 * HY_ENOENT when no such subscription. Messages already queued to it are still
 * handled. HY_EINVAL (k NULL), HY_ENOMEM.
 * Thread-safe. From a handler: yes, as hy_subscribe. */
HY_API int hy_unsubscribe(hy_kernel *k, uint64_t id);
/** Deliver to every subscription whose pattern matches path: one copy of the
 * payload shared by all of them. *delivered (may be NULL) is how many
 * subscriptions' mailboxes took it. Publishing to no subscriber is not an
 * error. A bounded subscription (hy_subscribe_opts, or hy_config's default
 * bound) that is full applies its overflow policy, as a send to a full
 * mailbox: HY_OVERFLOW_FAIL (and BLOCK past its timeout, or from a
 * handler) refuses it, a dead letter HY_DEAD_FULL; the publish still goes
 * to every other subscription, then returns HY_EFULL (hy_errdetail() says
 * how many refused and how many got it), *delivered counting those that
 * did. DROP_NEWEST takes it and drops it (counted sent, a dead letter
 * HY_DEAD_DROPPED, not in *delivered: the call returns 0); DROP_OLDEST
 * delivers it and drops the oldest when the worker gets there. BLOCK makes
 * a publisher outside a handler wait for room at each full subscription in
 * turn. Other errors: HY_EBADPATH, HY_ETOOBIG,
 * HY_ECLOSED, HY_EINVAL (k or path NULL, or NULL payload with len > 0);
 * HY_ENOMEM when the pool refuses part way, with *delivered saying how many
 * subscribers did get it.
 * Thread-safe. From a handler: yes. */
HY_API int hy_publish(hy_kernel *k, const char *path, const void *payload, size_t len,
                      size_t *delivered);

/* ---------------------------------------------------------------- inspection */

/** The most captures a route can have (hy_match_result.params). */
#define HY_MAX_PARAMS 16

/** Which route a path resolves to, without sending. Slices point into `path`. */
typedef struct hy_match_result {
    const char *subsystem; /**< valid until the subsystem is unregistered */
    const char *pattern;   /**< valid until the subsystem is unregistered */
    unsigned nparams;      /**< how many of params are set */
    /** The route's captures, in pattern order. */
    struct {
        const char *name;  /**< valid until the subsystem is unregistered */
        const char *value; /**< into path, not NUL-terminated */
        size_t len;
    } params[HY_MAX_PARAMS];
} hy_match_result;

/** Returns 0, HY_EBADPATH, HY_ENOROUTE or HY_EINVAL; it still answers after
 * hy_kernel_shutdown (until hy_kernel_close).
 * Thread-safe. From a handler: yes. */
HY_API int hy_match(hy_kernel *k, const char *path, hy_match_result *out);

/** Kernel-wide figures, as hy_kernel_stats gives them. */
typedef struct hy_stats {
    uint64_t sent;          /**< messages accepted by a send */
    uint64_t handled;       /**< handlers that ran and returned 0 */
    uint64_t failed;        /**< handlers that returned an error */
    uint64_t queued;        /**< accepted, neither handled nor a dead letter yet
                                 (the messages being handled included; see
                                 hy_subsystem_stats.queued) */
    uint64_t dead[HY_DEAD__COUNT]; /**< dead letters by hy_dead_reason */
    uint64_t restarts;      /**< actor restarts by supervision */
    uint64_t stopped;       /**< actors stopped by supervision */
    uint64_t subsystems;    /**< registered, the kernel's own not counted */
    uint64_t actors;        /**< live actors: one per subsystem plus keyed ones */
    uint64_t steals;        /**< actors a worker took from another's deque or run-next slot */
    uint64_t parks;         /**< times a worker went to sleep for lack of work */
    unsigned workers;       /**< worker threads */
    uint64_t pool_created;  /**< message objects carved fresh */
    uint64_t pool_reused;   /**< message objects served from the free lists */
    uint64_t pool_in_use;   /**< message objects taken and not yet given back */
    uint64_t pool_peak;     /**< the most in use at once (approximate) */
    uint64_t pool_bytes_reserved; /**< bytes the pool holds (what pool_cap_bytes caps) */
    double pool_reuse_rate; /**< pool_reused / (pool_created + pool_reused) */

    /* The journal (all 0 without hy_config.journal_path). */
    uint64_t journal_commits;        /**< successful write transactions */
    uint64_t journal_entries;        /**< entries committed */
    uint64_t journal_bytes;          /**< key + value bytes committed */
    uint64_t journal_batch_p50;      /**< median entries per group commit (recent) */
    uint64_t journal_failed_commits; /**< write transactions that failed */
    uint64_t journal_replayed;       /**< entries replayed into actors at recovery */
    uint64_t journal_replay_skipped; /**< entries (or snapshots) not applied because
                                        they name another actor (an id collision) */
    uint64_t journal_corrupt;        /**< recoveries stopped early by a corrupt entry */
    uint64_t journal_map_used;       /**< bytes of the journal's map in use */
    uint64_t journal_map_max;        /**< the size the map may grow to
                                          (hy_config.journal_map_max) */
    uint64_t journal_writer_cpu_ns;  /**< CPU time the journal's writer thread has
                                          used: near the elapsed time, the writer
                                          is what bounds persistent throughput */
    uint64_t snapshots;              /**< snapshots saved by the kernel */
    uint64_t snapshot_failures;      /**< state_save or the journal refused one */
    uint64_t replay_suppressed;      /**< sends made by replaying handlers, dropped */

    /* Passivation of keyed actors (see hy_subsystem_def.passivate). */
    uint64_t actors_active;          /**< keyed actors active now (of subsystems;
                                        subscriptions are not keyed actors) */
    uint64_t activations;            /**< keyed actors made: first message to a key,
                                        or the first after its passivation */
    uint64_t passivations;           /**< keyed actors passivated, in total */
    uint64_t passivate_failed;       /**< passivations refused by passivate or by a
                                        failed snapshot: the actor stayed active */
    uint64_t passivate_aborted;      /**< passivations called off because a message
                                        arrived meanwhile */
    /** Time to make a keyed actor (state_init, or recovery), over the last
     * 1024 activations: median and 99th percentile.
     * @{ */
    uint64_t activation_p50_ns;
    uint64_t activation_p99_ns;
    /** @} */
} hy_stats;

/** Kernel-wide figures. Counters are read without stopping the kernel, so under
 * load they are a moment's approximation. Returns 0 or HY_EINVAL.
 * Thread-safe. From a handler: yes. */
HY_API int hy_kernel_stats(hy_kernel *k, hy_stats *out);

/** One subsystem's figures, as hy_subsystem_stats_get gives them. */
typedef struct hy_subsystem_stats {
    /** As in hy_stats, for the messages sent to this subsystem. @{ */
    uint64_t sent, handled, failed;
    /** @} */
    uint64_t dead;    /**< dead letters among the messages it accepted */
    /** Messages accepted for it (sent) and not yet through a handler nor a
     * dead letter (a failed one is a dead letter too): sent - (handled +
     * dead). Not the mailbox depth: the message a handler is running on is
     * included (an actor held in its handler with nothing behind it counts
     * 1), and so are those its worker already ran in the turn under way
     * (handled is counted at the end of each turn, at most hy_config.batch
     * messages), and, for a persistent subsystem, those still in the
     * journal's queue. Summed over its actors. */
    uint64_t queued;
    uint64_t actors;  /**< its own actor plus its active keyed actors */
    /** Of its keyed actors, as in hy_stats. @{ */
    uint64_t activations, passivations;
    /** @} */
    uint64_t refused; /**< sends refused with HY_EPERM: a scope their principal lacks */
} hy_subsystem_stats;

/** Returns 0, HY_ENOENT (no such subsystem) or HY_EINVAL.
 * Thread-safe. From a handler: yes. */
HY_API int hy_subsystem_stats_get(hy_kernel *k, const char *name,
                                  hy_subsystem_stats *out);

/** One registered subsystem, as hy_subsystems_list describes it. */
typedef struct hy_subsystem_info {
    const char *name;          /**< in the list's allocation */
    hy_subsystem_stats stats;  /**< as hy_subsystem_stats_get gives them */
    size_t nroutes;            /**< how many routes it has */
    const char *const *routes; /**< its nroutes patterns, in registration order;
                                  the strings are in the list's allocation */
    int internal;              /**< 1 for the kernel's own subsystem, "kernel" (it
                                  owns every subscription's actor, and the
                                  routes built-ins add under kernel://) */
    /** Its passivation policy; 0 = none, and both are 0 when it cannot
     * passivate. @{ */
    uint32_t idle_timeout_ms;
    uint64_t max_active;
    /** @} */
    const char *const *scopes; /**< the scope each route requires, parallel to
                                    routes; NULL where none */
    const unsigned char *read_only; /**< 1 where the route is read-only
                                         (hy_route.read_only), parallel to
                                         routes */
} hy_subsystem_info;

/** Every registered subsystem, newest registered first, "kernel" (the oldest)
 * included: a snapshot taken at one moment of the registry (the figures in
 * it are, as ever, a moment's approximation). *out is one allocation, the
 * array and the route arrays it points to, that the caller frees with
 * hy_free; *n is its length. Names and patterns are copies in it.
 * Returns 0, HY_EINVAL (a NULL argument) or HY_ENOMEM; on error *out is NULL
 * and *n is 0.
 * Thread-safe. From a handler: yes. */
HY_API int hy_subsystems_list(hy_kernel *k, hy_subsystem_info **out, size_t *n);

/* ---------------------------------------------------------------- principals */

/** @name Principals
 * Who sends. A principal is a name and a set of scopes; a route may require a
 * scope (hy_route.scope, or its subsystem's hy_subsystem_def.scope), and a
 * send, ask, publish or batch whose principal lacks it fails at once with
 * HY_EPERM, hy_errdetail() naming the route and the missing scope: nothing is
 * queued or journaled, and the subsystem counts the refusal
 * (hy_subsystem_stats.refused). A route without a scope costs nothing more.
 *
 * Who a message's principal is:
 *  - hy_send, hy_ask, hy_publish, hy_send_batch, hy_send_durable called from
 *    outside any handler act as the kernel's trusted principal, which holds
 *    every scope: a program that holds the kernel is trusted;
 *  - the *_as calls below act as the principal given (NULL: the trusted one);
 *  - inside a handler, every send (hy_send, hy_ask_async, hy_reply,
 *    hy_publish, ...) acts as the principal of the message being handled, so
 *    a request from outside cannot reach a route it lacks the scope for by
 *    going through a handler; unless the handler's subsystem is registered
 *    trusted (hy_subsystem_def.trusted), whose handlers act as the trusted
 *    principal. A *_as call inside a handler acts as the principal it names.
 * Messages to a persistent subsystem keep their principal's name in the
 * journal; a replayed message carries a principal of that name (with no
 * scopes: replayed handlers send nothing) and is not checked again. */
/** @{ */
/** A principal: opaque, made by hy_principal_create. */
typedef struct hy_principal hy_principal;

/** Make a principal of kernel k: name (1 to 64 bytes, copied) and nscopes
 * scopes (copied; each 1 to 64 bytes).
 * Returns 0, HY_EINVAL (NULL or empty name or scope, scopes NULL with nscopes
 * > 0), HY_ENOMEM.
 * Thread-safe. From a handler: yes. */
HY_API int hy_principal_create(hy_kernel *k, const char *name, const char *const *scopes,
                               size_t nscopes, hy_principal **out);

/** Give up a principal. Its messages already sent keep it alive until they are
 * handled (or dead letters); the caller must not pass it to another call.
 * NULL is a no-op. May be called before or after hy_kernel_close. Its
 * memory goes once its messages are handled and each other thread that sent
 * as it (a worker whose handler's sends acted as it, say) has since sent as
 * another principal or exited: a thread keeps a small stock of references to
 * the last principal it sent as, so a send need not take one each time.
 * Thread-safe (for distinct principals). From a handler: yes. */
HY_API void hy_principal_destroy(hy_principal *p);

/** The name of the principal a message was sent as; NULL for the kernel's
 * trusted principal. Valid while the message is (during its handler).
 * Thread-safe. From a handler: yes. */
HY_API const char *hy_msg_principal(const hy_msg *msg);

/** hy_send, hy_send_durable, hy_send_batch, hy_ask, hy_publish, acting as p
 * (NULL: the trusted principal). Same errors, and HY_EPERM (a scope p lacks),
 * HY_EINVAL (p belongs to another kernel). Thread-safe; from a handler as the
 * call each mirrors (hy_ask_as: no). @{ */
HY_API int hy_send_as(hy_kernel *k, hy_principal *p, const char *path, const void *payload,
                      size_t len);
HY_API int hy_send_durable_as(hy_kernel *k, hy_principal *p, const char *path,
                              const void *payload, size_t len,
                              void (*on_durable)(void *udata, int status), void *udata);
HY_API int hy_send_batch_as(hy_kernel *k, hy_principal *p, const hy_send_item *items,
                            size_t n, size_t *accepted);
HY_API int hy_ask_as(hy_kernel *k, hy_principal *p, const char *path, const void *payload,
                     size_t len, void **reply, size_t *reply_len, int timeout_ms);
HY_API int hy_publish_as(hy_kernel *k, hy_principal *p, const char *path,
                         const void *payload, size_t len, size_t *delivered);

/** @} */

/** hy_subscribe whose subscription requires scope (NULL: none): a publish
 * whose principal lacks it fails with HY_EPERM and delivers to nobody.
 * Errors as hy_subscribe's. Thread-safe. From a handler: yes. */
HY_API int hy_subscribe_scoped(hy_kernel *k, const char *pattern, const char *scope,
                               hy_handler handler, void *udata, uint64_t *id);
/** @} */

/* ---------------------------------------------------------------- built-in subsystems */

/* Optional subsystems that ship with the library, written on this header
 * alone (subsystems/). Each is attached to a kernel with hy_<name>_attach(k,
 * opts), opts NULL for the defaults, and costs nothing until then: no route,
 * no thread, no work on any send. */

/** @name Introspection
 * Introspection: routes that answer hy_ask with JSON (through hy_reply),
 * built from hy_kernel_stats and hy_subsystems_list. Subsystems are listed
 * newest registered first, the kernel's own, "kernel", included (it owns
 * every subscription's actor, and these routes). Lower-case names below are
 * keys, each with a number unless said otherwise:
 *   kernel://stats   the figures of hy_kernel_stats:
 *     {sent, handled, failed, queued,
 *      dead: {failed, dropped, stopped, journal, noroute, full, late_reply,
 *             timer_noroute}
 *            (hy_dead_reason's names in lower case),
 *      restarts, stopped, subsystems, actors, workers, steals, parks,
 *      pool: {created, reused, in_use, peak, bytes_reserved, reuse_rate},
 *      journal: {commits, entries, failed_commits, map_used, map_max}
 *               (all 0 without a journal),
 *      passivation: {active, passivations} (keyed actors active now, and
 *               passivated in all),
 *      per_subsystem: [{name: string, sent, handled, failed, dead, queued,
 *                       actors, refused}, ...]}
 *   kernel://routes  {subsystems: [{name: string, routes: [pattern, ...],
 *                     scopes: [scope or null, ...]}, ...]},
 *                    each subsystem's patterns in registration order, and
 *                    the scope each requires (null: none)
 *   kernel://actors  {subsystems: [{name: string, actors, keyed, active,
 *                     activations, passivations, idle_timeout_ms,
 *                     max_active}, ...], total}
 *                    actors: its own and its active keyed ones (keyed and
 *                    active: those); the passivation policy, 0 = none;
 *                    total: the actors summed
 * Figures are read without stopping the kernel: a moment's approximation.
 * The request being answered is itself counted (sent and queued, under
 * "kernel"). A plain hy_send to these paths is handled and answered by
 * nobody. Handlers run one at a time (on the "kernel" subsystem's actor).
 * @{ */
#define HY_INTROSPECT_STATS  1u /**< kernel://stats */
#define HY_INTROSPECT_ROUTES 2u /**< kernel://routes */
#define HY_INTROSPECT_ACTORS 4u /**< kernel://actors */

/** What hy_introspect_attach serves. */
typedef struct hy_introspect_opts {
    unsigned routes; /**< the routes to serve, HY_INTROSPECT_* or'ed; 0 = all */
} hy_introspect_opts;

/** Serve the introspection routes on k; opts may be NULL (all of them). All or
 * none: on error no route is added. Returns 0, HY_EINVAL (k NULL, a bit in
 * opts->routes that is not an HY_INTROSPECT_*), HY_EEXIST (a selected route
 * is already served: attaching twice; hy_errdetail() names it), HY_ECLOSED
 * (after hy_kernel_shutdown) or HY_ENOMEM.
 * Thread-safe. From a handler: yes, though not from a replaying one nor from
 * state_init (either may run inside a send, which this waits for). */
HY_API int hy_introspect_attach(hy_kernel *k, const hy_introspect_opts *opts);
/** @} */


/** @name Timers
 * A message sent to a path after a delay (hy_send_after) or every
 * period (hy_send_every), and the timeouts of hy_ask_async_timeout. One
 * thread per kernel keeps them in a hierarchical timing wheel (schedule and
 * cancel are O(1)) and sleeps until the next deadline: no tick while nothing
 * is pending. Ticks are 2^18 ns (about 262 us): a timer fires at or after
 * its deadline (never before), normally within a tick plus the thread's
 * wake-up; the figures are in hy_timer_stats.
 *
 * At schedule time the path is checked (HY_EBADPATH) and the payload copied;
 * the path is routed when the timer fires, so it may name a subsystem
 * registered later. Firing is a hy_send from the timer thread: a path that
 * then matches no route is a dead letter HY_DEAD_TIMER_NOROUTE (not
 * HY_DEAD_NOROUTE); a refused send (HY_EFULL, HY_ESTOPPED, ...) is counted
 * as the kernel counts it for any sender, and in hy_timer_stats.failed. A
 * bounded mailbox with HY_OVERFLOW_BLOCK makes the timer thread wait, and
 * every other timer with it: prefer FAIL or DROP_* for timer targets.
 *
 * Persistence: on a kernel with a journal (hy_config.journal_path), a timer
 * whose path routes, when it is scheduled, to a persistent subsystem is
 * journaled, and survives a restart: attaching the timers on the next open
 * re-arms it with its id and its deadline (wall-clock time); one that should
 * have fired while the process was down fires at once, once (a periodic
 * one then goes on from its next period; missed periods are not made up).
 * Its firing message and the record that it fired are written in one group
 * commit, so a crash never makes it fire twice nor lose it. The arming is
 * queued for the journal before hy_send_after returns (like hy_send to a
 * persistent subsystem): a later acknowledged hy_send_durable on this kernel
 * means it is durable too. A cancel is durable at the next group commit.
 * For this the timers register a persistent subsystem of their own,
 * "timers", at attach: the name is then taken. Attach them after
 * registering the subsystems the recovered timers target (an overdue timer
 * fires at attach), and attach explicitly at open if timers may be pending
 * from an earlier run (otherwise they wait for the first hy_send_after).
 * Timer ids stay unique across restarts (an id holds a boot epoch kept in
 * the journal). Timers of other subsystems are lost with the process.
 *
 * A timer fires as the principal its scheduler's sends acted as (see
 * "principals": a handler's timer acts as the principal of the message it
 * handled, so a timer reaches no route its request could not); a journaled
 * timer re-armed after a restart fires as the trusted principal.
 *
 * A replaying handler (hy_is_replaying) schedules and cancels nothing: the
 * calls return 0 (and *id 0), like hy_send. At hy_kernel_shutdown, before
 * the kernel stops accepting messages, the timer thread is joined and
 * pending timers are dropped unfired (persistent ones stay journaled). */
/** @{ */

/** The longest delay or period: 2^32 - 1 ms, about 49.7 days. */
#define HY_TIMER_MAX_MS ((int64_t)0xffffffff)

/** Options of hy_timer_attach. */
typedef struct hy_timer_opts {
    int reserved; /**< none yet: NULL or a zeroed struct */
} hy_timer_opts;

/** Start k's timers: the timer thread, and with a journal the "timers"
 * subsystem (recovering and re-arming journaled timers). hy_send_after and
 * hy_send_every attach them by themselves on first use (once, thread-safe);
 * until then timers cost nothing. Returns 0, HY_EINVAL (k NULL), HY_EEXIST
 * (attached already), HY_ECLOSED (shut down), HY_ENOMEM, HY_ESYS (thread),
 * or an error of registering "timers" (HY_EEXIST if the name is taken).
 * Thread-safe. From a handler: no (registration waits for sends under way). */
HY_API int hy_timer_attach(hy_kernel *k, const hy_timer_opts *opts);

/** Send payload to path once, delay_ms from now (0: as soon as the timer
 * thread gets to it). *id (may be NULL) names it for hy_timer_cancel; ids
 * are never 0. Usable from any thread and from handlers. Returns 0,
 * HY_EINVAL (k or path NULL, payload NULL with len > 0, delay_ms < 0 or
 * over HY_TIMER_MAX_MS), HY_EBADPATH, HY_ETOOBIG (over HY_MAX_PAYLOAD; the
 * kernel's own max_payload is applied when it fires, as for any send),
 * HY_ENOMEM (memory, or 2^24 timers pending), HY_ECLOSED (shut down), or an
 * attach error. Payloads up to 64 bytes with the path live in the timer's
 * own pooled record; larger ones take one allocation.
 * Thread-safe. From a handler: yes (the first call, which attaches the
 * timers, not from a handler of a kernel with a journal). */
HY_API int hy_send_after(hy_kernel *k, const char *path, const void *payload, size_t len,
                         int64_t delay_ms, uint64_t *id);

/** Send payload to path every period_ms, the first time period_ms from now,
 * until cancelled. Deadlines are start + n * period, so a late firing does
 * not delay the next ones (no drift); a timer that falls more than a period
 * behind skips the periods it missed. Errors as hy_send_after (period_ms
 * must be at least 1). Thread-safe. From a handler: as hy_send_after. */
HY_API int hy_send_every(hy_kernel *k, const char *path, const void *payload, size_t len,
                         int64_t period_ms, uint64_t *id);

/** Cancel a timer: 1 when it was pending and will not fire (a periodic one:
 * will not fire again; a firing under way still completes), 0 when it has
 * fired already (a one-shot timer), was cancelled already, or the id is
 * unknown (0, or not this kernel's). HY_ECLOSED after shutdown, HY_EINVAL
 * for a NULL k. Thread-safe. From a handler: yes. */
HY_API int hy_timer_cancel(hy_kernel *k, uint64_t id);

/** A kernel's timer figures. */
typedef struct hy_timer_stats {
    uint64_t pending;     /**< scheduled and not yet fired nor cancelled */
    uint64_t fired;       /**< firings (each period counts) */
    uint64_t cancelled;   /**< hy_timer_cancel calls that returned 1 */
    uint64_t late;        /**< firings more than 1 ms + one tick after the deadline */
    uint64_t failed;      /**< firings whose send was refused (no route included) */
    uint64_t noroute;     /**< of those, to a path no route matched */
    uint64_t recovered;   /**< journaled timers re-armed at attach */
    /** Firing time minus deadline, over the last 4096 firings. @{ */
    uint64_t lateness_p50_ns;
    uint64_t lateness_p99_ns;
    /** @} */
} hy_timer_stats;

/** k's timer figures (all 0 when the timers are not attached). Returns 0 or
 * HY_EINVAL. Thread-safe. From a handler: yes. */
HY_API int hy_timer_stats_get(hy_kernel *k, hy_timer_stats *out);
/** @} */


/** @name HTTP gateway
 * An embedded HTTP/1.1 server (libmicrohttpd) in front of the kernel. It
 * runs on threads of its own (a small pool polling the sockets), never on a
 * worker; a request is one hy_send_as or hy_ask_as from such a thread.
 *
 * Endpoints (the URL path is percent-decoded by the server first):
 *  - POST /send/SUBSYSTEM/REST: hy_send to "SUBSYSTEM://REST", the
 *    request body as the payload: POST /send/orders/item/42 sends to
 *    orders://item/42. 202 with {"status":"accepted"} when accepted.
 *  - POST /ask/SUBSYSTEM/REST?timeout_ms=N: hy_ask to the same path;
 *    200 with the reply as the body (application/octet-stream). timeout_ms
 *    defaults to hy_http_opts.ask_timeout_ms, and is capped at max_ask_ms.
 *  - GET /stats, /routes, /actors: the JSON documents of kernel://stats,
 *    kernel://routes and kernel://actors (see "Introspection"; the same code
 *    writes them, whether introspection is attached or not).
 *  - GET /metrics: the figures in the Prometheus text exposition format
 *    0.0.4: counters and gauges named hypha_*, per subsystem with a
 *    subsystem="name" label, dead letters with reason="name", the pool,
 *    the journal, passivation, the timers when attached, and the gateway's
 *    own hypha_http_* figures.
 *  - GET /health: 200 {"status":"ok"}, or 503 {"status":"unhealthy",
 *    "reasons":[...]} naming each reason: "journal" (journal_failed_commits
 *    rose, or a send through the gateway was refused with HY_EMAPFULL or
 *    HY_EDISKFULL, within the last journal_window_ms), "stalled" (two or
 *    more /health or /metrics requests at least stall_ms apart all saw
 *    messages queued and hy_stats.handled not moving between them), "map"
 *    (the journal's map more than 90% used of the size it may grow to:
 *    hy_stats.journal_map_used against journal_map_max).
 *  - GET /: the dashboard page, compiled into the library.
 *
 * Errors of a send or ask map to a status, with {"error":"HY_ENOROUTE",
 * "code":-4,"message":...,"detail":...} as the body: HY_EBADPATH and
 * HY_EINVAL 400, HY_ENOROUTE 404, HY_EPERM 403, HY_ETOOBIG (or a body over
 * max_body) 413, HY_EFULL 429, HY_ECLOSED, HY_ESTOPPED and HY_ENOMEM 503,
 * HY_ETIMEDOUT 504, HY_EMAPFULL and HY_EDISKFULL 507, HY_ENOENT (an ask
 * whose handler sent no reply) and HY_EHANDLER 502, any other 500. An
 * unknown path is 404, a known path with the wrong method 405.
 *
 * Authentication: bearer tokens ("Authorization: Bearer TOKEN") from
 * hy_http_opts.tokens_file, one per line: "TOKEN PRINCIPAL [SCOPE,SCOPE...]"
 * (blank lines and lines starting with # are skipped). Tokens are kept as
 * SHA-256 digests only, and compared in constant time. A request with a
 * valid token acts as its principal (a hy_principal with its scopes); one
 * without an Authorization header acts as the principal "anonymous", which
 * has no scopes (it reaches only routes that require none); a request with
 * an unknown token is 401. /send and /ask are open to anyone (the route's
 * scope decides); /stats, /routes, /actors and / need a valid token, and
 * /metrics and /health none, unless hy_http_opts.open says otherwise.
 *
 * Limits: body size (413 before the body is read when Content-Length says
 * so), the memory a connection may use for its headers, concurrent
 * connections (further ones are accepted and closed at once), idle time of
 * a connection; a slow client holds a connection, never a worker. The
 * server listens on 127.0.0.1 unless told otherwise.
 *
 * It stops at hy_kernel_shutdown (before the kernel stops accepting
 * messages): no new connection is accepted and requests under way finish.
 * @{ */
#define HY_HTTP_OPEN_METRICS   1u  /**< GET /metrics without a token */
#define HY_HTTP_OPEN_HEALTH    2u  /**< GET /health without a token */
#define HY_HTTP_OPEN_STATS     4u  /**< GET /stats, /routes, /actors without a token */
#define HY_HTTP_OPEN_DASHBOARD 8u  /**< GET / without a token */
#define HY_HTTP_OPEN_NONE      0x100u /**< or'ed in: exactly the bits given (so
                                         HY_HTTP_OPEN_NONE alone opens nothing) */

/** Options of hy_http_attach; a zeroed struct (or NULL) gives the defaults. */
typedef struct hy_http_opts {
    const char *address;    /**< numeric IPv4 or IPv6 address to listen on;
                               NULL: "127.0.0.1" */
    uint16_t port;          /**< 0: one the OS picks (see hy_http_port) */
    const char *tokens_file; /**< bearer tokens (format above); NULL: none */
    unsigned open;          /**< HY_HTTP_OPEN_* bits; 0: METRICS | HEALTH */
    size_t max_body;        /**< largest request body; 0: 64 KiB */
    size_t max_header_bytes; /**< memory per connection for the request line
                                and headers; 0: 32 KiB (at least 4 KiB) */
    unsigned max_connections; /**< concurrent connections; 0: 256 */
    unsigned timeout_s;     /**< a connection idle this long is closed; 0: 10 */
    unsigned threads;       /**< server threads; 0: 4 */
    int ask_timeout_ms;     /**< /ask without timeout_ms; 0: 1000 */
    int max_ask_ms;         /**< the longest /ask wait; 0: 10000 */
    unsigned stall_ms;      /**< /health's "stalled" threshold; 0: 5000 */
    unsigned journal_window_ms; /**< /health's "journal" window; 0: 60000 */
} hy_http_opts;

/** Start k's HTTP gateway. Returns 0, HY_EINVAL (k NULL, a bad address, a
 * bad bit in open, a tokens_file line that does not parse: hy_errdetail()
 * names the line), HY_ENOENT (tokens_file cannot be read), HY_EEXIST
 * (attached already), HY_ECLOSED (shut down), HY_ENOMEM, or HY_ESYS (the
 * server could not start: the port is taken, say; hy_errdetail() says).
 * Thread-safe. From a handler: yes. */
HY_API int hy_http_attach(hy_kernel *k, const hy_http_opts *opts);

/** The port k's gateway listens on (the one the OS picked for port 0), or
 * HY_ENOENT when no gateway is attached, HY_EINVAL when k is NULL.
 * Thread-safe. From a handler: yes. */
HY_API int hy_http_port(hy_kernel *k);

/** The gateway's figures (what /metrics shows as hypha_http_*). */
typedef struct hy_http_stats {
    uint64_t requests;         /**< requests answered */
    uint64_t status_2xx;       /**< of those, with a 2xx status */
    uint64_t status_4xx;       /**< ... 4xx (401 included) */
    uint64_t status_5xx;       /**< ... 5xx */
    uint64_t unauthorized;     /**< 401s: an unknown token, or none where needed */
    uint64_t connections;      /**< open now */
    uint64_t connections_peak; /**< the most open at once */
    uint64_t connections_total; /**< accepted in all */
} hy_http_stats;

/** k's gateway figures (all 0 when none is attached). Returns 0 or
 * HY_EINVAL. Thread-safe. From a handler: yes. */
HY_API int hy_http_stats_get(hy_kernel *k, hy_http_stats *out);
/** @} */

/** @name NATS: subsystems served by other processes
 * hy_nats_attach connects the kernel to a NATS server (libnats; its threads,
 * never a worker, do the network). hy_nats_export serves a local subsystem
 * to other processes; hy_nats_import registers a local subsystem whose
 * handler forwards every message to whoever exports it, so hy_send and
 * hy_ask on its paths work unchanged.
 *
 * Subjects: "NAME://a/b" is "hypha.NAME.a.b": one token per path segment.
 * In a segment, A-Z a-z 0-9 '-' '_' stand for themselves and every other
 * byte ('.', '*', '>', '~', space, and all else NATS forbids or reserves)
 * is "~XX", its value in two upper-case hex digits; an empty segment is the
 * token "~" ("NAME://" has no token, "NAME:///" two "~"). A subject the
 * mapping would not write (lower-case hex, an escaped plain byte or '/',
 * a lone "~") is refused. The mapping is one-to-one both ways
 * (hy_nats_subject, hy_nats_path; fuzzed by tests/fuzz/fuzz_subject.c).
 * Keyed paths of a partitioned import go to "hyphap.NAME.P.a.b", P the
 * partition of the key (hy_nats_partition: FNV-1a of the key modulo the
 * partitions).
 *
 * Delivery: unkeyed paths reach one of the exporting processes (a queue
 * group, "hypha.NAME"); partition P reaches the process(es) that own it
 * (hy_nats_export_opts.owned) in publish order, so every key is handled in
 * order by one process when each partition has exactly one owner.
 * Ownership is static: when an owner leaves, its partitions have no
 * subscriber (sends to them are lost, asks fail with HY_ENOROUTE) until
 * another process exports the subsystem owning them; that is how
 * ownership moves. Two owners of one partition would both handle its
 * messages.
 *
 * Plain sends are at most once, published on the sender's thread (no
 * local actor is involved; hy_send_batch's items go out back to back and
 * libnats writes them together): libnats buffers them; during an outage up
 * to reconnect_buf_bytes, replayed after the reconnect; beyond it, or with
 * no buffer, hy_send returns HY_EDISCONNECTED and the message is a dead
 * letter HY_DEAD_REMOTE (counted as dropped). A request (hy_ask,
 * hy_ask_async) goes through the import's actor and becomes a NATS request,
 * answered by the exporter from the worker that replied (its reading
 * thread never waits): the caller gets the reply, or HY_ETIMEDOUT,
 * HY_ENOROUTE (no process exports it), HY_EDISCONNECTED (not connected, no
 * reconnect buffer), or the remote error (HY_ENOENT, HY_EHANDLER...); a
 * hy_ask_async caller gets the reply or, on any error, its timeout
 * message. hy_send_durable (and hy_nats_send_durable) to an imported path
 * is the durable send across processes: on_durable(udata, 0) only after
 * the exporting process journaled the message; HY_ETIMEDOUT (its fate
 * unknown: it may be journaled later, e.g. replayed from the reconnect
 * buffer) is never retried for you, since a resend could journal it twice.
 * hy_nats_bridge_publish carries publish/subscribe across processes. A
 * message from NATS whose subject is no path or whose payload is too large
 * is a dead letter HY_DEAD_REMOTE.
 *
 * Trust: what arrives from NATS is sent as the kernel's trusted principal
 * (the sender's principal does not travel), so whoever may publish to
 * hypha.NAME reaches every route of an exported NAME: secure the server
 * (credentials, TLS, subject permissions).
 *
 * It stops at hy_kernel_shutdown: subscriptions drain, outstanding requests
 * end with HY_ECLOSED; the connection closes at hy_kernel_close.
 * @{ */

/** Options of hy_nats_attach; a zeroed struct (or NULL) gives the defaults. */
typedef struct hy_nats_opts {
    const char *const *servers; /**< server URLs; NULL: nats://127.0.0.1:4222 */
    size_t nservers;        /**< how many in servers */
    const char *name;       /**< the connection's name (server monitoring) */
    int max_reconnect;      /**< reconnect attempts; 0 or < 0: forever */
    int reconnect_wait_ms;  /**< between attempts; 0: 100 */
    int reconnect_buf_bytes; /**< publishes buffered while reconnecting; 0: 8
                                MiB; < 0: none (sends fail HY_EDISCONNECTED) */
    int connect_timeout_ms; /**< 0: 2000 */
    int ask_timeout_ms;     /**< longest wait of a forwarded request or
                               durable send for its answer; 0: 5000 */
    const char *user;       /**< user and password; NULL: none @{ */
    const char *password;   /** @} */
    const char *token;      /**< a token; NULL: none */
    const char *creds_file; /**< a NATS .creds file; NULL: none */
    int tls;                /**< non-zero: require TLS */
    const char *ca_file;    /**< CA certificates for TLS; NULL: the system's */
} hy_nats_opts;

/** Connect k to NATS. Returns 0, HY_EINVAL, HY_EEXIST (attached already),
 * HY_EDISCONNECTED (no server answered; hy_errdetail() says), HY_ECLOSED,
 * HY_ENOMEM or HY_ESYS. Thread-safe. From a handler: yes, though it waits
 * for the connection. */
HY_API int hy_nats_attach(hy_kernel *k, const hy_nats_opts *opts);

/** Options of hy_nats_export; zeroed: unpartitioned. */
typedef struct hy_nats_export_opts {
    uint32_t partitions;    /**< the partitions keyed paths are split in (as
                               the importers' hy_nats_import_opts.partitions) */
    const uint32_t *owned;  /**< the partitions this process serves (< partitions) */
    size_t nowned;          /**< how many in owned; at most 64 */
    const char *queue;      /**< queue group of the unkeyed subjects; NULL: "hypha.NAME" */
} hy_nats_export_opts;

/** Serve the local subsystem name to other processes (it need not be
 * registered yet: a message that finds no route is refused as any send).
 * Returns 0 once the server has the subscriptions, HY_EINVAL (NATS not
 * attached, bad name or partition), HY_EEXIST, HY_ECLOSED, HY_EDISCONNECTED.
 * Thread-safe. From a handler: yes. */
HY_API int hy_nats_export(hy_kernel *k, const char *name, const hy_nats_export_opts *opts);

/** Options of hy_nats_import; zeroed: unpartitioned. */
typedef struct hy_nats_import_opts {
    uint32_t partitions;     /**< as the exporters'; 0: none */
    const char *key_pattern; /**< paths matching it are keyed (e.g. "item/{id}/tail", or ending in two stars) */
    const char *key;         /**< the capture of key_pattern that is the key */
} hy_nats_import_opts;

/** Register the local subsystem name, forwarding to its exporters. Errors
 * as hy_subsystem_register, and HY_EINVAL (NATS not attached; partitions
 * without key_pattern and key). Thread-safe. From a handler: yes. */
HY_API int hy_nats_import(hy_kernel *k, const char *name, const hy_nats_import_opts *opts);

/** The durable send across processes, to an imported persistent subsystem
 * (as hy_send_durable on an imported path):
 * on_durable(udata, 0) once the exporting process journaled the message,
 * or on_durable(udata, err): its error, HY_ETIMEDOUT (no ack within
 * ask_timeout_ms: it may or may not be journaled), HY_ENOROUTE (no
 * exporter), HY_ECLOSED. Called once when this returns 0, on a libnats or
 * the sweeper thread; never on success of a send that was not journaled.
 * Returns 0, HY_EINVAL, HY_EBADPATH, HY_ENOROUTE (not imported),
 * HY_EDISCONNECTED, HY_ECLOSED. Thread-safe. From a handler: yes. */
HY_API int hy_nats_send_durable(hy_kernel *k, const char *path, const void *payload,
                                size_t len, void (*on_durable)(void *udata, int status),
                                void *udata);

/** Publish/subscribe on name:// across processes: from now on a hy_publish
 * to a path under name:// here also reaches the subscribers of every other
 * process that bridges name (as subject "hyphapub." and the mapping's
 * tokens), and theirs reach the subscribers here, published as the
 * principal "nats". At most once, as plain sends; a process does not get
 * its own publishes back. Returns 0, HY_EINVAL (NATS not attached, bad
 * name), HY_ECLOSED, HY_EDISCONNECTED, HY_ENOMEM. Call it once per name.
 * Thread-safe. From a handler: yes. */
HY_API int hy_nats_bridge_publish(hy_kernel *k, const char *name);

/** The subject of path (mapping above) into out (cap bytes, NUL included).
 * Returns its length, HY_EBADPATH (no "NAME://"), HY_ETOOBIG (out too
 * small) or HY_EINVAL. Thread-safe. From a handler: yes. */
HY_API int hy_nats_subject(const char *path, char *out, size_t cap);
/** The path of subject: the inverse of hy_nats_subject; HY_EBADPATH for a
 * subject it would not write. Thread-safe. From a handler: yes. */
HY_API int hy_nats_path(const char *subject, char *out, size_t cap);
/** The partition of a key. Thread-safe. From a handler: yes. */
HY_API uint32_t hy_nats_partition(const char *key, size_t key_len, uint32_t partitions);

/** Figures of the imports and exports. */
typedef struct hy_nats_stats {
    uint64_t published;  /**< messages and requests sent to NATS */
    uint64_t received;   /**< messages and answers from NATS */
    uint64_t acked;      /**< requests answered, durable sends acknowledged */
    uint64_t dropped;    /**< sends that failed, requests that failed */
    uint64_t reconnects; /**< of the connection */
} hy_nats_stats;

/** The figures of name's import and export (NULL: all). Returns 0,
 * HY_ENOENT (not attached, or name neither imported nor exported) or
 * HY_EINVAL. Thread-safe. From a handler: yes. */
HY_API int hy_nats_stats_get(hy_kernel *k, const char *name, hy_nats_stats *out);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* HYPHA_H */
