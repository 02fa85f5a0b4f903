/* The kernel's internal contract: one section per file of kernel/, each
 * holding the types that file owns and the calls it offers the others.
 *
 * The path of a message: hy_send (send.c) builds a hy_msg in one pooled
 * object (message.c: header, captured params, path, payload), the router names
 * its route, the route names its actor (the subsystem's, or a keyed one from
 * the actor table, actor.c), and hyi_deliver pushes it onto the actor's MPSC
 * mailbox and schedules the actor if it was idle (sched.c). A worker runs the
 * actor (worker.c): up to `batch` messages, each handed to its route's
 * handler and then released to the pool.
 *
 * Dependencies run one way, from the sections further down to those above,
 * with two pairs that need each other by nature:
 *   - sched.c and worker.c: a worker runs what the scheduler hands it, and at
 *     the end of a turn gives the actor back to the scheduler (or keeps it);
 *   - actor.c and passivate.c: a sender's table lookup calls a passivation
 *     off, and the passivation thread takes out what lookups put in.
 * kernel.c opens and closes everything, so it calls into every section.
 * A message never calls up to the code that made it: ask.c and pubsub.c hang
 * a release hook in its slot (message.c) instead.
 *
 * Everything a sender touches is either immutable after registration (routes,
 * subsystems) or atomic (mailboxes, counters, the actor table's locks). */
#ifndef HY_KERNEL_H
#define HY_KERNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clock.h"
#include "deque.h"
#include "hy_common.h"
#include "hypha.h"
#include "hypha_ext.h"
#include "mpscq.h"
#include "pool.h"
#include "router.h"

typedef struct hyi_subsys hyi_subsys;
typedef struct hyi_actor hyi_actor;
typedef struct hyi_worker hyi_worker;
typedef struct hyi_pubsub hyi_pubsub;
typedef struct hyi_persist hyi_persist;
typedef struct hyi_janitor hyi_janitor;

/* A mailbox bound: what admission (hyi_admit) and the worker apply. */
typedef struct hyi_bound {
    uint32_t capacity;          /* 0 = none */
    hy_overflow overflow;
    int block_timeout_ms;
} hyi_bound;

/* ================================================================ subsystem.c
 * Registering subsystems and their routes; hy_match. */

/* A registered route: immutable once published to the router; freed with its
 * subsystem, once unregistered and nothing can reach it (reclaim.c: queued
 * messages point to it), or at close. */
typedef struct hyi_route_binding {
    hyi_subsys *sub;
    hy_handler handler;
    void *udata;
    int key_index;              /* capture that keys actors, -1 for none */
    bool read_only;             /* hy_route.read_only: never journaled */
    uint32_t nparams;
    uint32_t scope;             /* interned scope a sender must hold; 0: none */
    char *scope_name;           /* its name, for errors and introspection */
    char *pattern;
    char *param_names[HYI_MAX_PARAMS];
    struct hyi_route_binding *next; /* the kernel's list of every route, for close */
} hyi_route_binding;

int hyi_route_binding_make(hyi_subsys *sub, const char *pattern, const hyi_param_names *names,
                           hy_handler handler, void *udata, const char *key,
                           hyi_route_binding **out);
/* Give a binding the scope its senders must hold (NULL: none). */
int hyi_route_binding_scope(hy_kernel *k, hyi_route_binding *r, const char *scope);
void hyi_route_binding_free(hyi_route_binding *r);

/* A subsystem. Its counters sit on their own cache lines: senders bump `sent`,
 * workers bump `handled` once per turn, and neither should slow the other. */
struct hyi_subsys {
    HY_CACHE_ALIGNED _Atomic uint64_t sent;
    HY_CACHE_ALIGNED _Atomic uint64_t handled;
    _Atomic uint64_t failed;
    _Atomic uint64_t dead;      /* accepted messages that became dead letters */
    _Atomic uint64_t keyed_actors;
    HY_CACHE_ALIGNED hy_kernel *k;
    /* hy_subsystem_unregister gave up waiting: workers dead-letter what is
     * left (HY_DEAD_UNREGISTERED) instead of handling it */
    _Atomic int unregistered;
    bool withdrawn;             /* routes withdrawn; under registry_lock */
    void *udata;
    int (*state_init)(void *udata, const char *key, size_t key_len, void **state);
    void (*state_free)(void *udata, void *state);
    hyi_actor *actor;           /* the subsystem's own actor */
    hyi_subsys *next;           /* the kernel's list, newest first */
    hyi_bound bound;            /* its actors' mailbox bound; each actor copies it */
    hy_supervision strategy;
    uint32_t max_restarts;
    uint32_t restart_window_ms;
    /* Persistent subsystems (persistent.c): a router holding only this
     * subsystem's routes, to replay journal entries without the kernel's. */
    bool persistent;
    int (*state_save)(void *udata, void *state, void **bytes, size_t *len);
    int (*state_load)(void *udata, const char *key, size_t key_len, const void *bytes,
                      size_t len, void **state);
    hyi_router *replay_router;
    /* Set by persistent.c: rebuild a new actor, not yet published, from the
     * journal (actor.c calls it; a hook, since recovery sits above actors). */
    int (*recover)(hy_kernel *k, hyi_actor *actor, bool keyed);
    /* Passivation (passivate.c): fixed at registration. can_passivate: the
     * subsystem keeps state across passivation (persistent, or passivate set)
     * and has a policy; 0 for a policy means none. */
    bool can_passivate;
    uint32_t idle_timeout_ms;
    uint64_t max_active;
    int (*passivate)(void *udata, const char *key, size_t key_len, void *state);
    int jan_slot;               /* the passivation thread's own (this round's index) */
    /* relaxed counters: statistics only */
    _Atomic uint64_t activations, passivations;
    _Atomic uint64_t refused;   /* sends refused for a scope (principal.c) */
    /* Its handlers' sends act as the trusted principal (hy_subsystem_def.trusted). */
    bool trusted;
    /* Reclamation once unregistered (reclaim.c, on the passivation thread):
     * its actors, own and keyed (taken out of the table), linked by
     * table_next, first those not yet claimed, then those claimed; the
     * workers' quiescent counts taken once all are claimed (NULL before). */
    bool reclaimable;           /* unregister returned; under registry_lock */
    bool reclaim_taken;
    hyi_actor *reclaim_unclaimed;
    hyi_actor *reclaim_claimed;
    uint64_t *reclaim_qs;
    /* hy_ext_forward_set: plain and durable sends taken on the sender's
     * thread (send.c); fwd_self is written before fwd is published. */
    _Atomic(const hy_ext_forward_ops *) fwd;
    void *fwd_self;
    char name[HYI_NAME_MAX + 1];
};

/* Every message the subsystem accepted has been handled or dead-lettered. */
bool hyi_subsys_quiescent(hyi_subsys *s);

/* ================================================================ reclaim.c
 * Freeing unregistered subsystems once nothing can reach them. */

/* The passivation thread, once a round: move each unregistered subsystem
 * along (take its actors, claim them, wait for the workers) and free those
 * nothing can reach any more. True while some are still waiting. */
bool hyi_reclaim_run(hy_kernel *k);
/* Free a subsystem and every actor it still owns (at close, or reclaimed);
 * its route bindings are the caller's. */
void hyi_subsys_free(hy_kernel *k, hyi_subsys *s);

/* Register a subsystem of the kernel's own (no reserved-name check; mailboxes
 * unbounded, so deliveries need no admission). *out is the subsystem. */
int hyi_subsystem_register_internal(hy_kernel *k, const char *name,
                                    const hy_subsystem_def *def, hyi_subsys **out);

/* ================================================================ principal.c
 * Principals and scopes: who sends, and what a route requires. */

struct hy_principal {
    /* One for its owner until hy_principal_destroy, one per message made as
     * it: the last reference frees it. On a line of its own: senders and
     * workers both write it, while the read-only part below is read by
     * every send's scope check. */
    HY_CACHE_ALIGNED _Atomic uint64_t refs;
    HY_CACHE_ALIGNED const hy_kernel *k; /* compared, never followed: scope ids are per kernel */
    uint32_t nwords;            /* bit i of bits: it holds scope id i */
    char name[HYI_NAME_MAX + 1];
    uint64_t bits[];
};

/* The id of a scope name, made on first use (1, 2, ...). HY_EINVAL for an
 * empty or too long name, HY_ENOMEM. */
int hyi_scope_intern(hy_kernel *k, const char *name, uint32_t *id);
void hyi_scopes_free(hy_kernel *k);

/* Does p (NULL: the trusted principal) hold scope id (not 0)? */
static inline bool hyi_principal_holds(const hy_principal *p, uint32_t scope)
{
    if (!p)
        return true;
    uint32_t word = scope / 64;
    return word < p->nwords && (p->bits[word] >> (scope % 64) & 1);
}

/* A thread's stock of references to one principal, taken in bulk: a locked
 * add per message would drain the sender's store buffer once more per send
 * (principal.c). What is left goes back when the thread sends as another
 * principal, destroys this one, or exits. */
typedef struct hyi_principal_credit {
    hy_principal *principal;
    uint64_t left;
} hyi_principal_credit;
extern _Thread_local hyi_principal_credit hyi_credit;
void hyi_principal_credit_refill(hy_principal *p);

/* A reference for a message made as p; the caller holds one already. */
static inline void hyi_principal_ref(hy_principal *p)
{
    if (!p)
        return;
    if (HY_LIKELY(hyi_credit.principal == p && hyi_credit.left)) {
        hyi_credit.left--;
        return;
    }
    hyi_principal_credit_refill(p);
}
void hyi_principal_unref(hy_principal *p);
/* Drop n references at once (a worker's run of one principal's messages). */
void hyi_principal_unref_n(hy_principal *p, uint64_t n);
/* A principal with this name and no scope, owned by its one reference: what
 * a replayed message carries. NULL when out of memory. */
hy_principal *hyi_principal_transient(const char *name, size_t len);
/* A send to route refused for p: counted, HY_EPERM with the detail. */
int hyi_refuse(hyi_route_binding *route, const hy_principal *p);

/* ================================================================ actor.c
 * Actors and the keyed-actor table. */

/* An actor: a mailbox, a flag that says whether it is scheduled, its state. A
 * subsystem's own actor has no key; a keyed actor carries its key inline. */
struct hyi_actor {
    /* ---- cache line 0: what senders touch (the actor is 64-byte aligned).
     * Read-mostly fields beside the mailbox head that every push writes, so a
     * send costs no line the worker keeps writing. */
    hyi_subsys *sub;
    uint64_t key_hash;
    hyi_actor *table_next;      /* link in a reclaim list (reclaim.c) */
    /* Bounded mailboxes only: messages pushed and not yet taken. Senders add
     * before they push; the worker subtracts as it takes. */
    _Atomic int64_t depth;
    /* 1 from the moment a sender (or the actor's last run) claims the right to
     * schedule it until a worker finds its mailbox empty: an actor is in at
     * most one deque or inject queue at a time. */
    _Atomic uint32_t scheduled;
    /* Set by supervision (on the worker), read by senders: stopped actors
     * refuse messages. */
    _Atomic uint32_t stopped;
    /* Messages to this (persistent) actor handed to the journal (counted by
     * their senders); journal_completed below counts those whose completion
     * ended. The difference is what waits in the journal's queue, not yet in
     * the mailbox: passivation waits for 0 (persistent.c keeps both). */
    _Atomic uint32_t journal_submitted;
    uint16_t key_len;           /* a capture's length: at most a path's */
    /* 1 while the passivation thread means to passivate this actor. Under the
     * actor's table segment lock only: a sender that finds it set clears it,
     * which calls the passivation off (passivate.c). */
    uint8_t passivating;
    /* The mailbox: its head (written by every push) ends line 0; its padding
     * puts the consumer's tail and stub on line 1. */
    hyi_mpscq mailbox;
    /* ---- from here on: what the worker that runs the actor writes or reads. */
    uint64_t id;
    void *state;
    hyi_mpsc_node inject_link;  /* link in the kernel's inject queue */
    uint32_t restarts_in_window;
    uint32_t restart_window_start_ms; /* low 32 bits of a monotonic ms clock */
    /* Passivation (passivate.c). The kernel's coarse clock (k->coarse_ms) when
     * a turn of this actor last ended: stored by the worker once per turn. */
    _Atomic uint32_t last_active_ms;
    uint32_t since_snapshot;
    /* Pause rounds the worker has lately waited for this actor's next message
     * on an emptied mailbox (a moving average): how long it lingers (worker.c). */
    uint16_t arrival_gap;
    /* The bound the worker applies as it takes messages (drop-oldest): the
     * subsystem's, copied at creation, or a subscription's own (pubsub.c). */
    hyi_bound bound;
    /* Persistent subsystems (persistent.c): the actor's journal key, stable
     * across runs (a hash of subsystem and key), and the sequence of the last
     * entry applied to its state (since_snapshot: messages handled since its
     * last snapshot). Worker-owned once the actor is published. */
    uint64_t journal_id;
    uint64_t journal_seq;
    /* Read-only routes' messages held until the journaled messages submitted
     * before them are in the mailbox (persistent.c): a FIFO, as a ring
     * through their mailbox links (the last links to the first, so one
     * pointer: an actor keys of up to 43 bytes fit in 256), under the
     * actor's read lock, as is the increment of journal_completed (read by
     * passivation without it). */
    hy_msg *held_last;
    _Atomic uint32_t journal_completed; /* after the pointer: the key packs after it */
    char key[];                 /* key_len bytes and a NUL; an actor is allocated
                                   up to its key only (HYI_ACTOR_SIZE) */
};

/* An actor's allocation: the struct up to its key, the key and a NUL (the
 * struct's tail padding is not needed: 8 bytes fewer for short keys). */
/* Whole cache lines, for aligned_alloc and so no actor shares a line with
 * another's. */
/* A persistent actor keeps its journal lease (persistent.c, hyi_head_lease)
 * right after its key, in the line the journal's writer touches anyway to
 * deliver to it. */
#define HYI_LEASE_SPACE 24
#define HYI_ACTOR_KEY_END(key_len) ((offsetof(hyi_actor, key) + (key_len) + 1 + 7) & ~(size_t)7)
#define HYI_ACTOR_SIZE(key_len, persistent)                                              \
    ((HYI_ACTOR_KEY_END(key_len) + ((persistent) ? HYI_LEASE_SPACE : 0) + HY_CACHE_LINE - 1) & \
     ~(size_t)(HY_CACHE_LINE - 1))

/* The keyed-actor table: (subsystem, key) -> actor. Segments with a lock each
 * keep contention low without a lock-free table's reclamation problem;
 * passivation (which removes actors) will reuse the same locks. */
#define HYI_ACTOR_SEGMENTS 256

/* A slot of a segment: the actor's key hash beside it, so a probe compares
 * hashes in the table's own cache line and touches an actor only when they
 * are equal (with a million actors every actor touched is a cache miss). */
typedef struct hyi_actor_slot {
    uint64_t hash;
    hyi_actor *actor;           /* NULL: empty */
} hyi_actor_slot;

typedef struct hyi_actor_segment {
    HY_CACHE_ALIGNED pthread_mutex_t lock;
    hyi_actor_slot *slots;      /* open addressing, linear probing */
    size_t cap;                 /* a power of two; at most 3/4 used */
    size_t count;
    bool slots_mapped;          /* see hyi_array_zalloc */
    /* Actors passivated out of this segment: a sender that made an actor
     * while this changed makes it again (its state may predate a save). */
    uint64_t removals;
} hyi_actor_segment;

int hyi_actor_new(hy_kernel *k, hyi_subsys *sub, const char *key, size_t key_len,
                  uint64_t key_hash, hyi_actor **out);
/* Release whatever is still queued (only at close, when no worker runs) and
 * free the actor and its state. */
void hyi_actor_free(hy_kernel *k, hyi_actor *actor);
int hyi_actor_table_init(hy_kernel *k);
void hyi_actor_table_free(hy_kernel *k);
/* The keyed actor for (sub, key), created on first use. */
int hyi_actor_get(hy_kernel *k, hyi_subsys *sub, const char *key, size_t key_len,
                  hyi_actor **out);
/* For passivate.c: clear a mark (a passivation called off), and take a
 * still-marked actor out of the table (false: a sender called it off). */
void hyi_actor_unmark(hy_kernel *k, hyi_actor *actor);
bool hyi_actor_remove_marked(hy_kernel *k, hyi_actor *actor);
/* For reclaim.c: take every keyed actor of sub out of the table, pushing each
 * onto *list through table_next, and shrink the segments it leaves sparse. */
void hyi_actor_take_all(hy_kernel *k, hyi_subsys *sub, hyi_actor **list);

/* Free the actor's state (if any) and make it anew with state_init (keyed:
 * pass it the key): a new actor, or a restart (supervision, replay). 0, or
 * HY_EHANDLER when state_init refused (the state is then NULL). Inline so
 * that supervision and recovery, which actor creation sits above, need no
 * call back into actor.c. */
static inline int hyi_actor_state_reset(hyi_actor *a, bool keyed)
{
    hyi_subsys *sub = a->sub;
    if (sub->state_free && a->state)
        sub->state_free(sub->udata, a->state);
    a->state = NULL;
    if (!sub->state_init)
        return 0;
    /* The callback's own code says nothing to a hypha caller: it is kept in
     * the detail, and the error is HY_EHANDLER. */
    int rc = sub->state_init(sub->udata, keyed ? a->key : NULL, keyed ? a->key_len : 0,
                             &a->state);
    if (rc == 0)
        return 0;
    a->state = NULL;
    return hyi_fail(HY_EHANDLER, "state_init of subsystem '%s' refused the actor (%d)",
                    sub->name, rc);
}

/* ================================================================ sched.c
 * The work-stealing scheduler, and the scheduled-flag handshake. */

struct hyi_worker {
    HY_CACHE_ALIGNED hyi_deque deque;
    /* The run-next slot (sched.c): the last actor a handler on this worker
     * woke, run as soon as the current turn ends. Only this worker fills it;
     * it and idle workers (stealing) empty it. */
    _Atomic(hyi_actor *) next;
    /* Turns in a row this worker took from `next` (sched.c bounds them). */
    unsigned next_streak;
    hy_kernel *k;
    pthread_t thread;
    unsigned index;
    uint64_t rng;
    /* Written only by this worker (relaxed stores), summed by hy_kernel_stats. */
    _Atomic uint64_t steals;
    _Atomic uint64_t parks;
    /* Quiescent points for the passivation thread (sched.c): `quiescent`
     * counts actor turns ended (this worker holds no actor between them);
     * `parked` is 1 while it sleeps. Written only by this worker. */
    _Atomic uint64_t quiescent;
    _Atomic uint32_t parked;
    /* Rounds this worker spins with nothing to do before it parks (sched.c:
     * learned from how long its recent waits were); it also caps the linger
     * on an emptied mailbox (worker.c). Only this worker touches it. */
    unsigned spin_budget;
};

/* A worker's spin budget when spinning pays (waits are short). */
#define HYI_IDLE_SPINS 200

int hyi_sched_start(hy_kernel *k, unsigned nworkers);
void hyi_sched_stop(hy_kernel *k);
/* The worker the calling thread is, if it is one of k's; NULL otherwise. */
hyi_worker *hyi_current_worker(hy_kernel *k);
/* Queue an actor whose scheduled flag the caller holds: on the calling
 * worker's deque, else on the inject queue. */
void hyi_schedule(hy_kernel *k, hyi_actor *actor);
/* On a thread that is not a worker, about to schedule many actors (the
 * journal's writer delivering a commit): the inject pushes between these two
 * calls wake parked workers once, at the flush, instead of one futex call per
 * push. A wait for a worker in between (hyi_wait_for_room, an ask, a drain)
 * flushes first. */
void hyi_schedule_defer(hy_kernel *k);
void hyi_schedule_flush(void);
/* Re-queue an actor that used up its turn behind everything already waiting. */
void hyi_schedule_yielded(hy_kernel *k, hyi_actor *actor);
/* Actors wait for this worker: in its run-next slot, on its deque, or in
 * the inject queue (a heuristic for fairness decisions). */
bool hyi_others_waiting(hyi_worker *w);
/* Give up an actor whose scheduled flag the caller holds and whose mailbox it
 * has consumed (the worker half of the handshake, below); schedules it if a
 * message arrived meanwhile. */
void hyi_actor_release(hy_kernel *k, hyi_actor *actor);
/* Quiescent points of the workers. A snapshot taken after a claim (the CAS of
 * an actor's scheduled flag) is quiesced once every worker has ended a turn
 * or parked since: no worker still touches that actor. snap has k->nworkers
 * entries. */
void hyi_sched_qs_snapshot(hy_kernel *k, uint64_t *snap);
bool hyi_sched_quiesced(hy_kernel *k, const uint64_t *snap);

/* ================================================================ kernel.c
 * Open, drain, shutdown, close. */

#define HYI_DEFAULT_BATCH       64
#define HYI_DEFAULT_MAX_PAYLOAD ((size_t)64 << 10)
#define HYI_DEFAULT_BLOCK_TIMEOUT_MS 1000

struct hy_kernel {
    hyi_pool *pool;
    hyi_router *router;
    unsigned batch;
    size_t max_payload;
    hy_config config;           /* as given, for the defaults subsystems take */
    hyi_clock_origin clock_origin; /* activation latencies convert from here */
    _Atomic uint64_t next_actor_id;
    /* relaxed counters: statistics only */
    _Atomic uint64_t dead[HY_DEAD__COUNT];
    _Atomic uint64_t restarts;
    _Atomic uint64_t stopped;

    /* Sends check `closed` inside a router read section, so shutdown can set it
     * and then wait out every send already past the check. */
    _Atomic int closed;
    _Atomic int stopping;

    /* Actors scheduled from outside any worker. Producers are any thread; the
     * consumer is whichever worker holds inject_lock. The queue's head alone
     * cannot say "empty" to others: a node may wait before a stub that the
     * last consumer re-parked. Only the lock holder can see that, so before
     * unlocking it writes `inject_more`: whether anything is left. */
    HY_CACHE_ALIGNED hyi_mpscq inject;
    HY_CACHE_ALIGNED atomic_flag inject_lock;
    _Atomic uint32_t inject_more;

    /* Parking: an event count. A worker announces itself in `sleepers`, checks
     * for work once more, then waits on `wake_seq`; a waker that sees a sleeper
     * bumps wake_seq and wakes one. */
    HY_CACHE_ALIGNED _Atomic uint32_t wake_seq;
    _Atomic uint32_t sleepers;

    unsigned nworkers;
    hyi_worker *workers;

    pthread_mutex_t registry_lock; /* serialises registration and shutdown */
    /* Interned scope names (principal.c): id i + 1 is scope_names[i]. */
    pthread_mutex_t scope_lock;
    char **scope_names;
    uint32_t nscopes;
    hyi_subsys *subsystems;        /* read by stats under registry_lock */
    uint64_t nsubsystems;
    hyi_route_binding *routes;
    /* The counters of subsystems unregistered and freed since (reclaim.c),
     * so the kernel's figures never go back; under registry_lock. */
    uint64_t retired_sent, retired_handled, retired_failed, retired_dead;
    bool shut_down;
    /* The internal "kernel" subsystem (kernel.c): serves built-ins' kernel://
     * routes, and every subscription's actor belongs to it, so drain and stats
     * count published messages. On `subsystems`; set once at open. */
    hyi_subsys *kernel_sub;
    hyi_pubsub *pubsub;            /* pubsub.c: the subscriptions */
    hyi_persist *persist;          /* persistent.c: the journal; NULL without */
    hyi_janitor *janitor;          /* passivate.c: always made at open; its thread
                                      starts once a subsystem can passivate or
                                      one is unregistered (reclaim.c) */
    /* ms since open, updated by the passivation thread at each sweep (0
     * without it); workers stamp actors with it. relaxed everywhere: a clock
     * that may lag, read for ages only. */
    _Atomic uint32_t coarse_ms;

    /* Built-ins' state (hypha_ext.h): each slot set once, under
     * registry_lock, before shutdown begins; read with acquire. ext_ops[i]
     * is written before ext_state[i] is published. */
    void *_Atomic ext_state[HY_EXT_SLOTS];
    hy_ext_slot_ops ext_ops[HY_EXT_SLOTS];
    /* The timer provider for hy_ask_async_timeout (ask.c): timer_self is
     * written before timer_ops is published (release). */
    const hy_ext_timer_ops *_Atomic timer_ops;
    void *timer_self;

    hyi_actor_segment segments[HYI_ACTOR_SEGMENTS];
};

/* ================================================================ worker.c
 * A worker's turn with an actor, and the handler's view of it (hy_ctx). */

struct hy_ctx {
    hy_kernel *k;
    hyi_actor *actor;
    hy_msg *msg;
    /* Copies of the actor's line-0 fields, read once per turn: senders write
     * that line with every push, so a read per message would pull it across
     * cores each time. Only this worker changes `stopped` while it runs the
     * actor (supervision), so its copy follows it exactly. */
    hyi_subsys *sub;
    uint16_t key_len;
    bool stopped;
    bool replaying;     /* a journal entry rebuilding the actor (persistent.c) */
};

/* The handler context this thread is running, if any. */
/* Initial-exec (as the pool's caches): every send reads it, and the
 * general-dynamic access of -fPIC code is a call that makes the send path
 * spill its registers around it. */
extern _Thread_local hy_ctx *hyi_running __attribute__((tls_model("initial-exec")));

/* Run up to `batch` messages of a scheduled actor. */
void hyi_actor_run(hyi_worker *w, hyi_actor *actor);

/* ================================================================ message.c
 * The message: its layout, building one, releasing it. */

/* One pooled block: this 64-byte header, nparams slices, the path and its
 * NUL, then the payload at a 16-byte boundary, then the rare parts, named by
 * flags: for a request made with hy_ask_async, the reply-to path and its NUL;
 * then, 8-byte aligned, the slot (a release hook, see below) and a persistent
 * subsystem's trailer (hyi_durable). Every header byte travels between cores
 * with each message, so what few messages need stays out of it. */
enum {
    HYI_MSG_SHARED = 1,   /* a publish envelope: its hook heads the shared body */
    HYI_MSG_TIMEOUT = 2,  /* hy_ask_async_timeout's timeout message (ask.c) */
    HYI_MSG_REPLY_TO = 4, /* the reply-to path follows the payload */
    HYI_MSG_REPLIED = 8,  /* hy_reply was called while handling it */
    HYI_MSG_FAILED = 16,  /* its handler returned an error */
    HYI_MSG_SLOT = 32,    /* it has the slot */
};

struct hy_msg {
    hyi_mpsc_node link;         /* mailbox link: intrusive, no allocation */
    hyi_route_binding *route;
    uint64_t id;
    uint64_t trace_id;
    uint64_t sent_ns;           /* CLOCK_MONOTONIC_COARSE at send */
    uint64_t sender;            /* actor id, 0 from outside the kernel */
    hy_principal *principal;    /* NULL: the trusted principal; else a reference */
    uint32_t payload_len;
    uint16_t path_len;
    uint8_t nparams;
    uint8_t flags;
    hyi_slice params[];
};

#define HYI_MSG_OF(node) ((hy_msg *)((char *)(node) - offsetof(hy_msg, link)))

/* What a message's slot points to: code above message.c (ask.c's waiter,
 * pubsub.c's shared body) that must hear when the message is released, so
 * releasing never calls up into it by name. hyi_msg_release calls `released`
 * once, before the message goes back to the pool. */
typedef struct hyi_msg_hook hyi_msg_hook;
struct hyi_msg_hook {
    void (*released)(hy_kernel *k, hy_msg *msg, hyi_msg_hook *hook);
};

/* A publish envelope's body (a hy_msg holding path and payload) follows its
 * hook at this offset, which keeps the body's payload 16-byte aligned. */
#define HYI_SHARED_BODY_OFF 16

static inline size_t hyi_msg_payload_off(uint32_t nparams, size_t path_len)
{
    size_t head = offsetof(hy_msg, params) + nparams * sizeof(hyi_slice) + path_len + 1;
    return (head + 15) & ~(size_t)15;
}

/* Where a message's rare parts go: the next 8-byte boundary. */
static inline size_t hyi_msg_tail_off(size_t end)
{
    return (end + 7) & ~(size_t)7;
}

/* The end of a message's own payload and reply-to path. */
static inline size_t hyi_msg_end(const hy_msg *m)
{
    size_t end = hyi_msg_payload_off(m->nparams, m->path_len) + m->payload_len;
    if (m->flags & HYI_MSG_REPLY_TO)
        end += strlen((const char *)m + end) + 1;
    return end;
}

/* The slot of a message built with one (HYI_MSG_SLOT). */
static inline hyi_msg_hook **hyi_msg_slot(const hy_msg *m)
{
    return (hyi_msg_hook **)((char *)m + hyi_msg_tail_off(hyi_msg_end(m)));
}

/* The message that holds path and payload: a publish envelope's shared body. */
static inline const hy_msg *hyi_msg_body(const hy_msg *m)
{
    if (!(m->flags & HYI_MSG_SHARED))
        return m;
    return (const hy_msg *)((const char *)*hyi_msg_slot(m) + HYI_SHARED_BODY_OFF);
}

static inline const char *hyi_msg_path(const hy_msg *m)
{
    const hy_msg *b = hyi_msg_body(m);
    return (const char *)&b->params[b->nparams];
}

static inline const void *hyi_msg_payload(const hy_msg *m)
{
    const hy_msg *b = hyi_msg_body(m);
    return (const char *)b + hyi_msg_payload_off(b->nparams, b->path_len);
}

/* The trailer of a message to a persistent subsystem (persistent.c), after
 * the payload (and reply-to path and slot), 8-byte aligned, so a journaled
 * message needs no allocation besides its own block. Between submit and
 * completion only the journal thread touches it; `seq` is then read by the
 * worker that handles the message (the mailbox push orders it). */
typedef struct hyi_durable {
    hyi_actor *actor;                        /* where it goes once durable */
    void (*on_durable)(void *udata, int status); /* hy_send_durable's, or NULL */
    void *udata;
    uint64_t seq;                            /* its journal sequence */
} hyi_durable;

/* A persistent subsystem's message's trailer (never a publish envelope). */
static inline hyi_durable *hyi_msg_durable(hy_msg *m)
{
    size_t off = hyi_msg_tail_off(hyi_msg_end(m));
    if (m->flags & HYI_MSG_SLOT)
        off += sizeof(void *);
    return (hyi_durable *)((char *)m + off);
}

/* What every message sent at one moment by one thread shares: the time, and
 * the trace and sender of the handler running (if any). A batch takes it
 * once. */
typedef struct hyi_stamp {
    uint64_t sent_ns;
    uint64_t trace_id; /* 0: each message starts its own trace */
    uint64_t sender;
    hy_principal *principal; /* NULL: the trusted principal */
} hyi_stamp;

/* A handler's sends act as the principal of the message it handles, unless
 * its subsystem is trusted; sends from outside act as the trusted one. */
static inline void hyi_stamp_take_in(hy_kernel *k, hy_ctx *c, hyi_stamp *stamp)
{
    stamp->sent_ns = hyi_coarse_ns(); /* see clock.h: a fine clock costs a third */
    if (HY_LIKELY(!c || c->k != k)) {
        stamp->trace_id = 0;
        stamp->sender = 0;
        stamp->principal = NULL;
        return;
    }
    stamp->trace_id = c->msg->trace_id;
    stamp->sender = c->actor->id;
    stamp->principal = c->sub->trusted ? NULL : c->msg->principal;
}

/* hyi_stamp_take_in for the handler running on this thread, if any; a
 * caller that has read hyi_running already passes it (one TLS read less). */
static inline void hyi_stamp_take(hy_kernel *k, hyi_stamp *stamp)
{
    hyi_stamp_take_in(k, hyi_running, stamp);
}

/* Message ids: a per-thread block of a global counter, one atomic add per
 * block (message.c). */
/* Initial-exec: see hyi_running. */
extern _Thread_local uint64_t hyi_tl_next_id __attribute__((tls_model("initial-exec")));
extern _Thread_local uint64_t hyi_tl_id_end __attribute__((tls_model("initial-exec")));
uint64_t hyi_msg_id_block(void);

static inline uint64_t hyi_msg_next_id(void)
{
    if (HY_UNLIKELY(hyi_tl_next_id == hyi_tl_id_end))
        return hyi_msg_id_block();
    return hyi_tl_next_id++;
}

/* Build a message in one pooled block: route (NULL for a shared body's
 * holder) and m's captures, path, payload; reply_to: NULL, or the path to
 * carry after the payload; slot: give the message a slot (NULL until set).
 * NULL when the pool is at its cap. Inline: it is the send path's body. */
static inline __attribute__((always_inline)) hy_msg *
hyi_msg_build(hy_kernel *k, hyi_route_binding *route, const hyi_match *m, const char *path,
              size_t path_len, const void *payload, size_t len, const char *reply_to,
              bool slot, const hyi_stamp *stamp)
{
    size_t nparams = m ? m->nparams : 0;
    size_t payload_off = hyi_msg_payload_off((uint32_t)nparams, path_len);
    size_t reply_len = reply_to ? strlen(reply_to) + 1 : 0;
    size_t end = payload_off + len + reply_len;
    size_t size = end;
    if (HY_UNLIKELY(slot))
        size = hyi_msg_tail_off(size) + sizeof(void *);
    if (HY_UNLIKELY(route && route->sub->persistent))
        size = hyi_msg_tail_off(size) + sizeof(hyi_durable);
    /* A sender usually sends again soon, into an object a worker released on
     * its core: the pool starts fetching that one now, while this message is
     * filled and pushed. */
    hy_msg *msg = hyi_pool_acquire_prefetch(k->pool, size);
    if (HY_UNLIKELY(!msg))
        return NULL;
    msg->route = route;
    msg->id = hyi_msg_next_id();
    msg->sent_ns = stamp->sent_ns;
    msg->trace_id = stamp->trace_id ? stamp->trace_id : msg->id;
    msg->sender = stamp->sender;
    msg->principal = stamp->principal;
    hyi_principal_ref(stamp->principal);
    msg->payload_len = (uint32_t)len;
    msg->path_len = (uint16_t)path_len;
    msg->nparams = (uint8_t)nparams;
    msg->flags = (uint8_t)((reply_to ? HYI_MSG_REPLY_TO : 0) | (slot ? HYI_MSG_SLOT : 0));
    for (size_t i = 0; i < nparams; i++)
        msg->params[i] = m->params[i];
    char *p = (char *)&msg->params[nparams];
    hyi_copy_short(p, path, path_len);
    p[path_len] = '\0';
    if (len)
        hyi_copy_short((char *)msg + payload_off, payload, len);
    if (reply_len)
        memcpy((char *)msg + payload_off + len, reply_to, reply_len);
    if (HY_UNLIKELY(slot))
        *(void **)((char *)msg + hyi_msg_tail_off(end)) = NULL;
    return msg;
}

/* Call the slot's hook, if any, and give the block back to the pool. */
void hyi_msg_release(hy_kernel *k, hy_msg *msg);

/* hyi_msg_release with its usual case inline: a message with no slot and no
 * principal goes straight back to the pool (the worker releases one per
 * message it handles). */
static inline void hyi_msg_release_plain(hy_kernel *k, hy_msg *msg)
{
    if (HY_LIKELY(!(msg->flags & HYI_MSG_SLOT) && msg->principal == NULL))
        hyi_pool_release(k->pool, msg);
    else
        hyi_msg_release(k, msg);
}

/* ================================================================ sched.c (cont.)
 * The scheduled-flag handshake, both halves side by side.
 *
 * An actor is in at most one run queue: `scheduled` is 1 from the moment a
 * sender (or the actor's last turn) claims the right to schedule it until a
 * worker finds its mailbox empty. The race to avoid is a message pushed just
 * as the worker gives the actor up, which nobody would then schedule. Both
 * sides use seq_cst on the mailbox head and the flag, so of "push, then look
 * at the flag" and "clear the flag, then look at the head", at least one sees
 * the other: either the sender finds the flag clear and schedules, or the
 * worker finds the message and takes the actor back. */

/* Sender half: push a chain (linked first..last) onto the actor's mailbox and
 * schedule the actor if the push found it idle. */
static inline void hyi_actor_push(hy_kernel *k, hyi_actor *actor, hyi_mpsc_node *first,
                                  hyi_mpsc_node *last)
{
    bool was_empty = hyi_mpscq_push_chain(&actor->mailbox, first, last);
    /* Only a push into an empty mailbox can find the actor unscheduled (see
     * mpscq.h); then the flag decides who schedules it. seq_cst: the sender's
     * side of the handshake. */
    if (was_empty && !atomic_exchange_explicit(&actor->scheduled, 1, memory_order_seq_cst))
        hyi_schedule(k, actor);
}

/* Worker half: the mailbox is empty as far as this worker can see; give the
 * actor up, then look at the head once more. From the store on, the consumer
 * side may belong to another worker: only head is read. True when a message
 * arrived meanwhile and the caller took the actor back. */
static inline bool hyi_actor_give_up(hyi_actor *actor)
{
    /* seq_cst: the worker's side of the handshake */
    atomic_store_explicit(&actor->scheduled, 0, memory_order_seq_cst);
    if (hyi_mpscq_head_at_stub(&actor->mailbox))
        return false;
    /* seq_cst: the flag's RMW in the same handshake; 1 means a sender has
     * scheduled it again already, so it is not ours any more. */
    return !atomic_exchange_explicit(&actor->scheduled, 1, memory_order_seq_cst);
}

/* ================================================================ send.c
 * hy_send, hy_send_durable, hy_send_batch: routing, admission, delivery. */

/* hy_send acting as *as (as NULL: as the context decides, see hyi_stamp_take)
 * with an optional reply-to path (hy_ask_async) or release hook
 * (hy_ask's waiter), which the message holds from the moment it is built:
 * *hooked (may be NULL) says whether it was, so the caller knows whether
 * the hook's `released` will be called. */
int hyi_send(hy_kernel *k, hy_principal *const *as, const char *path, const void *payload,
             size_t len, const char *reply_to, hyi_msg_hook *hook, bool *hooked);
/* For a forwarding subsystem's ask (send.c): the reply duty of a request
 * whose hook is hy_ask's or hy_ext_ask_cb's, as a deferred reply that takes
 * over the reference the request would hold (ask.c). NULL for another kind
 * of hook, or on ENOMEM. hyi_reply_untake: declined after all; the hook is
 * the request's again. */
hy_ext_reply *hyi_reply_take(hy_kernel *k, hyi_msg_hook *hook, int64_t *deadline_ms);
void hyi_reply_untake(hy_ext_reply *r);
/* hy_send of a message carrying extra HYI_MSG_* flags (HYI_MSG_TIMEOUT). */
int hyi_send_flagged(hy_kernel *k, const char *path, const void *payload, size_t len,
                     uint8_t flags);
/* Count n messages (all for this actor, linked first..last) as sent to its
 * subsystem and push them (hyi_actor_push). The one place where a sent
 * message reaches an actor; journaled messages skip the count (persistent.c
 * counts them when they are submitted, so drain waits for them while they
 * are in the journal's queue). */
void hyi_deliver(hy_kernel *k, hyi_actor *actor, hy_msg *first, hy_msg *last, uint64_t n);

/* Admission into a bounded mailbox, for hy_send and hy_publish alike.
 * hyi_admit: HYI_ADMIT (room taken, or no bound), HYI_ADMIT_DROP (taken and
 * dropped by the drop-newest policy: the caller counts it as sent and
 * dead-letters it), HY_EFULL or HY_ESTOPPED (hy_errdetail names `name`).
 * Unbounded mailboxes cost one relaxed load of the stopped flag. A sender
 * outside a handler waits under HY_OVERFLOW_BLOCK (hyi_wait_for_room); a
 * worker never does. */
enum { HYI_ADMIT = 0, HYI_ADMIT_DROP = 1 };
int hyi_wait_for_room(hyi_actor *a, const char *name, int64_t capacity, int timeout_ms);

static inline __attribute__((always_inline)) int
hyi_admit(hy_kernel *k, const char *name, const hyi_bound *b, hyi_actor *a)
{
    /* relaxed: a stop racing with this send is caught by the worker, which
     * dead-letters what reaches a stopped actor */
    if (HY_UNLIKELY(atomic_load_explicit(&a->stopped, memory_order_relaxed)))
        return hyi_fail(HY_ESTOPPED, "an actor of '%s' was stopped by supervision", name);
    if (HY_LIKELY(b->capacity == 0))
        return HYI_ADMIT;
    int64_t cap = b->capacity;
    /* relaxed: the count only bounds the mailbox; the push orders the
     * message itself */
    if (atomic_fetch_add_explicit(&a->depth, 1, memory_order_relaxed) < cap)
        return HYI_ADMIT;
    if (b->overflow == HY_OVERFLOW_DROP_OLDEST)
        return HYI_ADMIT; /* the worker drops from the old end while over */
    /* No room: give the slot back. relaxed: as above */
    atomic_fetch_sub_explicit(&a->depth, 1, memory_order_relaxed);
    if (b->overflow == HY_OVERFLOW_DROP_NEWEST)
        return HYI_ADMIT_DROP;
    if (b->overflow == HY_OVERFLOW_BLOCK && !hyi_current_worker(k))
        return hyi_wait_for_room(a, name, cap, b->block_timeout_ms);
    /* FAIL, and BLOCK inside a handler: a worker never waits */
    return hyi_fail(HY_EFULL, "mailbox of '%s' is full (%u)", name, b->capacity);
}

/* ================================================================ pubsub.c
 * hy_subscribe, hy_unsubscribe, hy_publish. */

/* At open (after the "kernel" subsystem is made), and at close once no worker
 * runs (frees every subscription, live or not). */
int hyi_pubsub_init(hy_kernel *k);
void hyi_pubsub_free(hy_kernel *k);

/* ================================================================ failure.c
 * Dead letters and supervision. */

void hyi_dead_letter(hy_kernel *k, const char *path, size_t path_len, const void *payload,
                     size_t len, hy_dead_reason reason);
/* A message accepted by its actor's subsystem that will not be handled. */
void hyi_dead_letter_msg(hy_kernel *k, hy_msg *msg, hy_dead_reason reason);
/* A handler returned err: dead-letter its message and apply the strategy. */
void hyi_supervise(hy_kernel *k, hyi_actor *actor, hy_msg *msg, int err);

/* ================================================================ persistent.c
 * The journal and persistent subsystems (docs/ARCHITECTURE.md §4). */

/* At open / close (close: after the workers stopped; flushes first). */
int hyi_persist_open(hy_kernel *k);
void hyi_persist_close(hy_kernel *k);
/* Registration: check def and build the subsystem's replay router, before
 * its actor is made; _free undoes it when registration fails. */
int hyi_persist_subsys_init(hy_kernel *k, hyi_subsys *sub, const hy_subsystem_def *def,
                            hyi_route_binding *const *routes, size_t n);
void hyi_persist_subsys_free(hyi_subsys *sub);
/* Before admission (send.c): fill msg's trailer; HY_EMAPFULL when the journal
 * is known full, HY_EINVAL for a durable send to a non-persistent subsystem. */
int hyi_persist_prepare(hy_kernel *k, hyi_actor *actor, hy_msg *msg, bool durable,
                        void (*on_durable)(void *, int), void *udata);
/* An admitted message: counted as sent and queued for the journal. On error
 * the message is released and nothing is counted. */
int hyi_persist_submit(hy_kernel *k, hyi_actor *actor, hy_msg *msg);
/* An admitted message of a read-only route (hy_route.read_only): counted as
 * sent and delivered without the journal, once every message submitted to
 * the actor's journal before it is in the mailbox (held until then). 0. */
int hyi_persist_deliver_read(hy_kernel *k, hyi_actor *actor, hy_msg *msg);
/* Messages submitted to actor's journal whose completion has not ended
 * (passivate.c waits for 0). Acquire: a completion's delivery happens before
 * a 0 read here. */
static inline uint32_t hyi_persist_in_journal(hyi_actor *a)
{
    uint32_t done = atomic_load_explicit(&a->journal_completed, memory_order_acquire);
    return atomic_load_explicit(&a->journal_submitted, memory_order_relaxed) - done;
}
/* n admitted messages (hy_send_batch) in one group commit; all or none as
 * hyi_persist_submit. */
int hyi_persist_submit_batch(hy_kernel *k, hy_msg **msgs, size_t n);
/* An admitted persistent message the DROP_NEWEST policy dropped. */
void hyi_persist_dropped(hy_msg *msg);
/* A send from a replaying handler: counted, and 0 returned. */
int hyi_persist_suppressed(hy_kernel *k);
/* worker.c: msg was handled (or failed) by its persistent actor. */
void hyi_persist_applied(hy_kernel *k, hyi_actor *actor, hy_msg *msg);
/* passivate.c: save claimed persistent actors' states before passivation (a
 * snapshot of each that applied anything since its last), all in one journal
 * transaction; rcs[i] gets actor i's outcome, 0 or the error. */
void hyi_persist_passivate_many(hy_kernel *k, hyi_actor *const *actors, size_t n, int *rcs);
/* actor.c: a persistent actor is freed; its journal lease goes back first if
 * the journal still holds it (passivation gave it back earlier). */
void hyi_persist_actor_free(hy_kernel *k, hyi_actor *actor);
/* stats.c: the journal's figures. */
void hyi_persist_stats(hy_kernel *k, hy_stats *out);

/* A send made by a replaying handler is suppressed (0, nothing sent). */
#define HYI_SUPPRESS_IF_REPLAYING(k)                              \
    do {                                                          \
        if (HY_UNLIKELY(hyi_running && hyi_running->replaying))   \
            return hyi_persist_suppressed(k);                     \
    } while (0)

/* ================================================================ passivate.c
 * The passivation thread (docs/ARCHITECTURE.md §5). */

int hyi_janitor_init(hy_kernel *k);            /* at open: state, no thread */
int hyi_janitor_start(hy_kernel *k);           /* idempotent; registry_lock held */
void hyi_janitor_stop(hy_kernel *k);           /* shutdown, before the workers */
void hyi_janitor_free(hy_kernel *k);           /* close */
/* Set a subsystem's policy from its def and the config (registration). */
void hyi_passivation_setup(hy_kernel *k, hyi_subsys *sub, const hy_subsystem_def *def);
/* actor.c: a keyed actor was made in `ticks` (hyi_clock_ticks) and published;
 * active: its subsystem's count of them now. */
void hyi_janitor_activated(hy_kernel *k, hyi_subsys *sub, uint64_t ticks, uint64_t active);
/* stats.c: activation latencies and passivation figures. */
void hyi_janitor_stats(hy_kernel *k, hy_stats *out);
/* Wake the thread for a round now (an unregistered subsystem to reclaim). */
void hyi_janitor_kick(hy_kernel *k);
/* On the thread: does its limbo still hold an actor of sub? */
bool hyi_janitor_limbo_holds(hy_kernel *k, const hyi_subsys *sub);
/* From any thread, for benchmarks and tests: sweeps ended so far (each ends
 * after its passivations' frees, pool trim and cache flush), and passivated
 * actors not freed yet (waiting for the workers' quiescence), as of the last
 * sweep's end or limbo retry. */
uint64_t hyi_janitor_sweeps(hy_kernel *k);
size_t hyi_janitor_limbo_count(hy_kernel *k);

#endif
