/* Persistent subsystems: the kernel's side of the journal (docs/ARCHITECTURE.md §4).
 *
 * A message to a persistent subsystem goes, after admission, to the journal's
 * group-commit writer (persist/commit.c) instead of the mailbox. The writer
 * commits a batch (fsync under HY_DURABILITY_SYNC) and calls each message's
 * completion, in submission order: it stores the entry's sequence in the
 * message's trailer (hyi_durable, kernel.h), tells the sender (on_durable),
 * and only then pushes the message to its actor (hyi_actor_push). So a handler runs only on a
 * durable message, and an actor's mailbox order is its journal order. A
 * message the journal fails to write is a dead letter (HY_DEAD_JOURNAL).
 *
 * Accounting: a journaled message is counted in `sent` when it is submitted
 * (the push then counts nothing), so hy_kernel_drain waits for it while it
 * is in the journal's queue, and sent == handled + dead still holds.
 *
 * Actor ids: the journal key of an actor is a 64-bit FNV-1a hash of
 * "subsystem\0key" (key empty for the subsystem's own actor), stable across
 * runs. Two actors collide with probability about n^2 / 2^65 for n actors
 * (3e-8 for a million). A collision would mix two actors' entries under one
 * key, so recovery checks each entry: its path must match one of the
 * subsystem's routes and, for a keyed actor, capture exactly the actor's key
 * (for the subsystem's actor, match a route without a key); an entry that
 * does not is skipped and counted (journal_replay_skipped). Snapshots carry
 * "subsystem\0key" before the state bytes and are checked the same way.
 *
 * Recovery runs when the actor is made, before anyone else can see it (a
 * keyed actor before it enters the actor table, the subsystem's actor before
 * its routes are published): latest snapshot through state_load, then each
 * later entry through its route's handler (replay_handler), on
 * the creating thread. Entries are matched with the subsystem's own replay
 * router (its routes only), so recovery never depends on the kernel's routing
 * table nor runs a router writer inside a sender's read section. A corrupt
 * entry stops the replay at the last good one (HY_ECORRUPT in hy_errdetail(),
 * journal_corrupt counted); the actor starts with what was recovered and,
 * when it can be snapshotted, is snapshotted at once so the corrupt tail is
 * dropped and later entries replay cleanly next time.
 *
 * Snapshots: after snapshot_every handled messages the worker saves the
 * actor's state (state_save) covering the sequence of the last message it
 * handled (its trailer's seq: messages are handled in sequence order). The
 * journal's retention (truncate covered entries) then applies.
 *
 * Passivation (passivate.c): a keyed actor is passivated only when no message
 * of it waits in the journal's queue (journal_submitted - journal_completed:
 * from submit to the end of the completion, whose delivery is its last use
 * of the actor; a held read waits only while that is not 0), with a
 * snapshot of its state when anything was applied since the last one
 * (hyi_persist_passivate_many, a batch of actors to one transaction); its
 * next activation is an ordinary recovery.
 *
 * Read-only routes (hy_route.read_only) are not journaled: their messages
 * go to the mailbox at once, or, while journaled messages submitted before
 * them are in flight, wait for those (see "read-only routes" below).
 *
 * Map full: once a commit fails with HY_EMAPFULL (the map is at
 * journal_map_max), persistent sends are refused at once with HY_EMAPFULL
 * until the kernel is reopened; non-persistent subsystems are unaffected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "kernel.h"

/* Record flags (the journal keeps them for the kernel). JREC_PRINCIPAL: the
 * message was sent as a principal, whose name is stored before the path,
 * "name\0path", so the journal's format needs no field of its own for it and
 * entries written before principals existed read as the trusted one's. */
#define JREC_PRINCIPAL 1

#define DEFAULT_SNAPSHOT_EVERY 1000

/* Locks striped over actors: held briefly, by a read-only send that finds
 * journaled messages in flight and by each completion. */
#define READ_LOCKS 64

/* The writer thread's grouping of one transaction's messages by actor (see
 * "delivery"): an open-addressed table from actor to its run, and the runs
 * in order of first appearance. Only the journal's writer thread uses it. */
typedef struct actor_run {
    hyi_actor *actor;
    hy_msg *first, *last; /* linked through their mailbox links */
    uint32_t n;
} actor_run;

typedef struct run_slot {
    hyi_actor *actor;
    uint32_t gen;         /* the slot is in use for this call's gen only */
    uint32_t run;
} run_slot;

typedef struct grouping {
    run_slot *slots;      /* a power of two, at least twice the runs */
    size_t nslots;
    uint32_t gen;
    actor_run *runs;
    size_t cap;
} grouping;

struct hyi_persist {
    hyi_journal *j;
    uint32_t snapshot_every;
    /* 0, or HY_EMAPFULL once a commit hit the map cap. relaxed: a hint that
     * turns later sends away early; a send that misses it still gets the
     * journal's own error through its completion. */
    _Atomic int refused;
    /* relaxed counters: statistics only */
    _Atomic uint64_t replayed, replay_skipped, corrupt, snapshots, snapshot_failures,
        suppressed;
    /* Read-only routes: an actor's held reads and journal_completed are
     * under read_locks[read_lock_of(actor)] (see "read-only routes"). */
    pthread_mutex_t read_locks[READ_LOCKS];
    grouping group; /* the writer thread's */
};

/* ---------------------------------------------------------------- open / close */

int hyi_persist_open(hy_kernel *k)
{
    const hy_config *c = &k->config;
    if (!c->journal_path)
        return 0;
    if (c->durability > HY_DURABILITY_OFF)
        return hyi_fail(HY_EINVAL, "durability = %d is not a hy_durability", (int)c->durability);
    hyi_persist *p = calloc(1, sizeof *p);
    if (!p)
        return HY_ENOMEM;
    static const hyi_durability dur[] = {
        [HY_DURABILITY_SYNC] = HYI_DUR_SYNC,
        [HY_DURABILITY_NOSYNC] = HYI_DUR_NOSYNC,
        [HY_DURABILITY_OFF] = HYI_DUR_OFF,
    };
    hyi_journal_config jc = {
        .path = c->journal_path,
        .map_size = c->journal_map_size,
        .map_size_max = c->journal_map_max,
        .durability = dur[c->durability],
    };
    int rc = hyi_journal_open(&p->j, &jc);
    if (rc != 0) {
        free(p);
        char why[512];
        snprintf(why, sizeof why, "%s", hy_errdetail());
        return hyi_fail(rc, "hy_kernel_open: journal_path '%s': %s", c->journal_path, why);
    }
    p->snapshot_every = c->snapshot_every ? c->snapshot_every : DEFAULT_SNAPSHOT_EVERY;
    for (size_t i = 0; i < READ_LOCKS; i++)
        pthread_mutex_init(&p->read_locks[i], NULL);
    k->persist = p;
    return 0;
}

void hyi_persist_close(hy_kernel *k)
{
    /* Subsystems registered before a journal failure still own a router. */
    for (hyi_subsys *s = k->subsystems; s; s = s->next)
        hyi_persist_subsys_free(s);
    hyi_persist *p = k->persist;
    if (!p)
        return;
    hyi_journal_close(p->j); /* flushes: every completion has run */
    for (size_t i = 0; i < READ_LOCKS; i++)
        pthread_mutex_destroy(&p->read_locks[i]);
    free(p->group.slots);
    free(p->group.runs);
    free(p);
    k->persist = NULL;
}

/* ---------------------------------------------------------------- registration */

static int recover(hy_kernel *k, hyi_actor *a, bool keyed);

int hyi_persist_subsys_init(hy_kernel *k, hyi_subsys *sub, const hy_subsystem_def *def,
                            hyi_route_binding *const *routes, size_t n)
{
    /* Patterns were parsed already (binding_new); what the replay router can
     * still refuse is what the kernel's would refuse at publish: a bad name
     * or a duplicate pattern, reported here the same way. */
    if (!def->persistent)
        return 0;
    if (!k->persist)
        return hyi_fail(HY_EINVAL,
                        "subsystem '%s' is persistent but the kernel has no journal "
                        "(hy_config.journal_path)", sub->name);
    if (!def->state_save != !def->state_load)
        return hyi_fail(HY_EINVAL, "subsystem '%s': state_save and state_load go together",
                        sub->name);
    if (sub->bound.capacity && sub->bound.overflow == HY_OVERFLOW_DROP_OLDEST)
        return hyi_fail(HY_EINVAL,
                        "subsystem '%s' is persistent: DROP_OLDEST would drop journaled "
                        "messages unhandled", sub->name);
    sub->persistent = true;
    sub->recover = recover;
    sub->state_save = def->state_save;
    sub->state_load = def->state_load;
    hyi_route_spec *specs = calloc(n ? n : 1, sizeof *specs);
    int rc = specs ? hyi_router_create(&sub->replay_router) : HY_ENOMEM;
    if (rc == 0)
        rc = hyi_router_add_subsystem(sub->replay_router, sub->name, sub);
    for (size_t i = 0; rc == 0 && i < n; i++)
        specs[i] = (hyi_route_spec){routes[i]->pattern, routes[i]};
    size_t at = n;
    if (rc == 0)
        rc = hyi_router_add_routes(sub->replay_router, sub->name, specs, n, NULL, &at);
    free(specs);
    if (rc != 0)
        hyi_persist_subsys_free(sub);
    if (rc == HY_EEXIST && at < n)
        return hyi_fail(rc, "pattern '%s' of '%s' duplicates an earlier route",
                        routes[at]->pattern, sub->name);
    if (rc == HY_EINVAL)
        return hyi_fail(rc, "bad subsystem name '%s': want [a-z][a-z0-9_-]{0,63}", sub->name);
    return rc;
}

void hyi_persist_subsys_free(hyi_subsys *sub)
{
    if (sub->replay_router)
        hyi_router_destroy(sub->replay_router);
    sub->replay_router = NULL;
}

/* ---------------------------------------------------------------- actor ids */

/* An actor's identity: "subsystem\0key" for a keyed actor, "subsystem" for
 * the subsystem's own (so an empty key, which a ** capture allows, is still
 * another actor). Its length, 0 if it does not fit cap; *nlen gets the
 * name's. */
static size_t ident_len(const hyi_actor *a, bool keyed, size_t cap, size_t *nlen)
{
    *nlen = strlen(a->sub->name);
    size_t len = *nlen + (keyed ? 1 + a->key_len : 0);
    return len > cap || len > 0xffff ? 0 : len;
}

/* The identity into out; its length, 0 if it does not fit cap. */
static size_t actor_ident(const hyi_actor *a, bool keyed, unsigned char *out, size_t cap)
{
    size_t nlen, len = ident_len(a, keyed, cap, &nlen);
    if (!len)
        return 0;
    memcpy(out, a->sub->name, nlen);
    if (keyed) {
        out[nlen] = '\0';
        memcpy(out + nlen + 1, a->key, a->key_len);
    }
    return len;
}

/* Big enough for any identity: a name and a key no longer than a path. */
#define IDENT_MAX (HYI_NAME_MAX + 1 + HYI_PATH_MAX)

/* The actor's id in the journal: the hash of its identity (actor_ident),
 * computed over the pieces, so asking the journal about a new actor needs
 * no identity buffer. */
static uint64_t journal_id_of(const hyi_actor *a, bool keyed)
{
    size_t nlen;
    if (!ident_len(a, keyed, IDENT_MAX, &nlen))
        return HYI_FNV1A_SEED; /* the hash of actor_ident's nothing */
    uint64_t h = hyi_fnv1a(HYI_FNV1A_SEED, a->sub->name, nlen);
    return keyed ? hyi_fnv1a(hyi_fnv1a(h, "", 1), a->key, a->key_len) : h;
}

/* ---------------------------------------------------------------- recovery */

typedef struct recovery {
    hy_kernel *k;
    hyi_actor *a;
    bool keyed;
    uint64_t replayed;
    size_t ilen;
    unsigned char ident[IDENT_MAX];
} recovery;

static void count(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int on_snapshot(void *user, uint64_t id, uint64_t seq, const void *state, size_t len)
{
    (void)id, (void)seq;
    recovery *r = user;
    hyi_actor *a = r->a;
    hyi_subsys *sub = a->sub;
    size_t ilen = r->ilen;
    const unsigned char *b = state;
    /* A snapshot we cannot check (or of another actor) is not applied. */
    if (!ilen || len < 2 || (size_t)(b[0] | b[1] << 8) != ilen || len < 2 + ilen ||
        memcmp(b + 2, r->ident, ilen) != 0 || !sub->state_load) {
        count(&r->k->persist->replay_skipped, 1);
        return 0;
    }
    void *fresh = NULL;
    int rc = sub->state_load(sub->udata, r->keyed ? a->key : NULL, r->keyed ? a->key_len : 0,
                             b + 2 + ilen, len - 2 - ilen, &fresh);
    if (rc != 0)
        return hyi_fail(HY_EHANDLER, "state_load of '%s' refused a snapshot (%d)", sub->name,
                        rc);
    if (sub->state_free && a->state)
        sub->state_free(sub->udata, a->state);
    a->state = fresh;
    return 0;
}

/* Does this match address actor a? */
static bool belongs(const recovery *r, const hyi_match *m, const char *path)
{
    const hyi_route_binding *b = m->route;
    if (!b || b->sub != r->a->sub)
        return false;
    if (!r->keyed)
        return b->key_index < 0;
    if (b->key_index < 0)
        return false;
    hyi_slice s = m->params[b->key_index];
    return s.len == r->a->key_len && memcmp(path + s.off, r->a->key, s.len) == 0;
}

/* Run a replayed entry's handler as the actor, outside any worker's turn
 * (hy_is_replaying true, sends suppressed). The caller has the actor to
 * itself. Returns the handler's result. */
static int replay_handler(hy_kernel *k, hyi_actor *actor, hy_msg *msg)
{
    hy_ctx ctx = {.k = k,
                  .actor = actor,
                  .msg = msg,
                  .sub = actor->sub,
                  .key_len = actor->key_len,
                  /* relaxed: the caller has the actor to itself */
                  .stopped = atomic_load_explicit(&actor->stopped, memory_order_relaxed),
                  .replaying = true};
    /* A replay may start inside a live handler (its send made a keyed actor):
     * put that handler's context back afterwards. */
    hy_ctx *outer = hyi_running;
    hyi_running = &ctx;
    int rc = msg->route->handler(&ctx, msg);
    hyi_running = outer;
    return rc;
}

/* An entry's path, and the principal it was sent as (NULL: the trusted one):
 * see JREC_PRINCIPAL. False when the prefix is malformed. */
static bool entry_path(const hyi_journal_entry *e, const char **path, size_t *path_len,
                       hy_principal **principal)
{
    *path = e->path;
    *path_len = e->path_len;
    *principal = NULL;
    if (!(e->flags & JREC_PRINCIPAL))
        return true;
    const char *nul = memchr(e->path, '\0', e->path_len);
    if (!nul)
        return false;
    size_t name_len = (size_t)(nul - e->path);
    *path = nul + 1;
    *path_len = e->path_len - name_len - 1;
    /* NULL when out of memory: the entry then replays as the trusted
     * principal's, which replayed handlers cannot tell apart but by name */
    *principal = hyi_principal_transient(e->path, name_len);
    return true;
}

static int on_entry(void *user, const hyi_journal_entry *e)
{
    recovery *r = user;
    hyi_subsys *sub = r->a->sub;
    hyi_match m;
    const char *path;
    size_t path_len;
    hy_principal *principal;
    if (!entry_path(e, &path, &path_len, &principal) || path_len > HYI_PATH_MAX ||
        hyi_router_match(sub->replay_router, path, path_len, &m) != 0 ||
        !belongs(r, &m, path)) {
        if (principal)
            hyi_principal_unref(principal);
        count(&r->k->persist->replay_skipped, 1);
        return 0;
    }
    /* The stamp of the replay, but the principal of the entry (not checked
     * again: it was, when the message was sent). */
    hyi_stamp stamp;
    hyi_stamp_take(r->k, &stamp);
    stamp.principal = principal;
    hy_msg *msg = hyi_msg_build(r->k, m.route, &m, path, path_len, e->payload,
                                e->payload_len, NULL, false, &stamp);
    if (principal)
        hyi_principal_unref(principal); /* the message holds its own */
    if (!msg)
        return hyi_fail(HY_ENOMEM, "replay of '%s': message pool at its cap", sub->name);
    int rc = replay_handler(r->k, r->a, msg);
    hyi_msg_release(r->k, msg);
    if (rc != 0) {
        /* relaxed: a statistic */
        atomic_fetch_add_explicit(&sub->failed, 1, memory_order_relaxed);
        /* as live supervision restarts it (a refused init leaves no state) */
        if (sub->strategy == HY_SUPERVISE_RESTART)
            hyi_actor_state_reset(r->a, r->keyed);
    }
    r->replayed++;
    return 0;
}

static int snapshot(hy_kernel *k, hyi_actor *a, bool keyed, uint64_t seq);

_Static_assert(sizeof(hyi_head_lease) <= HYI_LEASE_SPACE, "HYI_LEASE_SPACE too small");

/* The actor's journal lease, after its key (HYI_ACTOR_SIZE): the writer
 * appends to the actor through it without the journal's head cache. */
static hyi_head_lease *lease_of(hyi_actor *a)
{
    return (hyi_head_lease *)((char *)a + HYI_ACTOR_KEY_END(a->key_len));
}

void hyi_persist_actor_free(hy_kernel *k, hyi_actor *a)
{
    /* No entry of a is in flight (it is being freed), so the hint is exact.
     * After hyi_persist_close the journal is gone, and held nothing more. */
    hyi_head_lease *l = lease_of(a);
    if (k->persist && hyi_head_lease_held(l))
        hyi_journal_release_leases(k->persist->j, &(hyi_lease_ref){a->journal_id, l}, 1);
}

static int recover(hy_kernel *k, hyi_actor *a, bool keyed)
{
    hyi_persist *p = k->persist;
    memset(lease_of(a), 0, sizeof(hyi_head_lease)); /* the journal takes it later */
    a->journal_id = journal_id_of(a, keyed);
    /* Most activations among a million new keys: nothing to read. */
    if (hyi_journal_surely_new(p->j, a->journal_id)) {
        a->journal_seq = 0;
        a->since_snapshot = 0;
        return 0;
    }
    recovery *r = malloc(sizeof *r); /* the identity buffer is large for a stack */
    if (!r)
        return HY_ENOMEM;
    r->k = k;
    r->a = a;
    r->keyed = keyed;
    r->replayed = 0;
    r->ilen = actor_ident(a, keyed, r->ident, sizeof r->ident);
    uint64_t last = 0;
    int rc = hyi_journal_recover(p->j, a->journal_id, on_snapshot, on_entry, r, &last);
    count(&p->replayed, r->replayed);
    a->journal_seq = last;
    a->since_snapshot = (uint32_t)(r->replayed < UINT32_MAX ? r->replayed : UINT32_MAX);
    free(r);
    if (rc == HY_ECORRUPT) {
        count(&p->corrupt, 1);
        char why[400];
        snprintf(why, sizeof why, "%s", hy_errdetail());
        uint64_t high = 0;
        /* Keep what was recovered as the truth: a snapshot at the highest
         * sequence drops the corrupt tail (see the top of this file). */
        if (a->sub->state_save && hyi_journal_highest(p->j, a->journal_id, &high) == 0 &&
            high > last)
            snapshot(k, a, keyed, high);
        hyi_fail(HY_ECORRUPT, "subsystem '%s' key '%.*s': replay stopped after seq %llu: %s",
                 a->sub->name, (int)(a->key_len < 64 ? a->key_len : 64), a->key,
                 (unsigned long long)last, why);
        return 0; /* the actor starts with the state recovered so far */
    }
    return rc;
}

/* ---------------------------------------------------------------- sending */

int hyi_persist_suppressed(hy_kernel *k)
{
    if (k && k->persist)
        count(&k->persist->suppressed, 1);
    return 0;
}

int hyi_persist_prepare(hy_kernel *k, hyi_actor *a, hy_msg *msg, bool durable,
                        void (*on_durable)(void *, int), void *udata)
{
    if (!a->sub->persistent)
        return durable ? hyi_fail(HY_EINVAL, "hy_send_durable: subsystem '%s' is not persistent",
                                  a->sub->name)
                       : 0;
    hyi_persist *p = k->persist;
    /* relaxed: see `refused`. A read-only route writes nothing: not refused. */
    if (HY_UNLIKELY(atomic_load_explicit(&p->refused, memory_order_relaxed)) &&
        !msg->route->read_only)
        return hyi_fail(HY_EMAPFULL,
                        "journal '%s' reached its map cap (journal_map_max); persistent "
                        "sends are refused until the kernel is reopened",
                        hyi_journal_path(p->j));
    hyi_durable *d = hyi_msg_durable(msg);
    *d = (hyi_durable){a, on_durable, udata, 0};
    return 0;
}

/* Undo admission of a message that never reaches the mailbox. */
static void unadmit(hyi_actor *a)
{
    if (a->sub->bound.capacity)
        /* relaxed: the count only bounds the mailbox (see admit() in send.c) */
        atomic_fetch_sub_explicit(&a->depth, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- read-only routes
 *
 * A read-only route's message skips the journal (it changes nothing to
 * replay), but must not overtake the journaled messages its sender sent to
 * the same actor before it, which reach the mailbox only once durable. Each
 * actor counts messages submitted to its journal (journal_submitted, by the
 * sender) and completions ended (journal_completed, by the writer, under the
 * actor's read lock). A read takes as its ticket the submitted count, which
 * includes every journaled message its sender sent before it: when every
 * submitted message has completed and no read is held, it goes straight to
 * the mailbox; otherwise it is held, in order (a ring through the reads'
 * mailbox links: held_last, whose link is the first), until journal_completed
 * reaches its ticket. The journal completes in submission order, so by then
 * the messages the ticket counted are in the mailbox. Held reads go in
 * ticket order (tickets only grow under the lock), and a later read joins
 * the queue while any is held, so reads keep their senders' order too. */

/* The next of a held read (linked through its mailbox link). */
static hy_msg *held_next(hy_msg *m)
{
    /* relaxed: linked under the read lock, which we hold or took after */
    return HYI_MSG_OF(atomic_load_explicit(&m->link.next, memory_order_relaxed));
}

/* Has the read's ticket been reached by `done` completions? */
static bool ticket_reached(hy_msg *m, uint32_t done)
{
    return (int32_t)((uint32_t)hyi_msg_durable(m)->seq - done) <= 0;
}

static pthread_mutex_t *read_lock_of(hy_kernel *k, const hyi_actor *a)
{
    /* actors are cache-line aligned: the low 6 bits say nothing */
    return &k->persist->read_locks[((uintptr_t)a >> 6) % READ_LOCKS];
}

/* Deliver reads first..last (linked, admitted, counted as sent) to a. */
static void push_reads(hy_kernel *k, hyi_actor *a, hy_msg *first, hy_msg *last)
{
    for (hy_msg *m = first;; m = held_next(m)) {
        hyi_durable *d = hyi_msg_durable(m);
        if (d->on_durable) /* nothing to write: as durable as it will be */
            d->on_durable(d->udata, 0);
        if (m == last)
            break;
    }
    hyi_actor_push(k, a, &first->link, &last->link);
}

int hyi_persist_deliver_read(hy_kernel *k, hyi_actor *a, hy_msg *msg)
{
    /* relaxed: counted before the message can be handled (as in submit) */
    atomic_fetch_add_explicit(&a->sub->sent, 1, memory_order_relaxed);
    pthread_mutex_t *lock = read_lock_of(k, a);
    pthread_mutex_lock(lock);
    /* relaxed: our own earlier submits are ordered by program order, the
     * completions' count by the lock */
    uint32_t ticket = atomic_load_explicit(&a->journal_submitted, memory_order_relaxed);
    bool now = !a->held_last &&
               ticket == atomic_load_explicit(&a->journal_completed, memory_order_relaxed);
    if (!now) {
        hyi_msg_durable(msg)->seq = ticket; /* a read has no sequence: its ticket */
        /* the ring's last links to its first */
        hy_msg *first = a->held_last ? held_next(a->held_last) : msg;
        if (a->held_last)
            hyi_mpscq_link(&a->held_last->link, &msg->link);
        hyi_mpscq_link(&msg->link, &first->link);
        a->held_last = msg;
    }
    pthread_mutex_unlock(lock);
    /* Out of the lock: only another sender's message can come between. */
    if (now)
        push_reads(k, a, msg, msg);
    return 0;
}

/* A message of a is in the journal's queue (inside the sender's read
 * section, so passivation's synchronize sees it), then no longer. */
static void entered_journal(hyi_actor *a)
{
    /* relaxed: the sender's read section orders it before passivation's look
     * (which follows a synchronize); a read's ticket, taken later by this
     * thread or under a lock after it, sees it */
    atomic_fetch_add_explicit(&a->journal_submitted, 1, memory_order_relaxed);
}

static void left_journal(hy_kernel *k, hyi_actor *a)
{
    pthread_mutex_t *lock = read_lock_of(k, a);
    pthread_mutex_lock(lock);
    /* relaxed: written under this lock only */
    uint32_t done = atomic_load_explicit(&a->journal_completed, memory_order_relaxed) + 1;
    hy_msg *held = a->held_last, *first = held ? held_next(held) : NULL, *last = NULL;
    for (hy_msg *m = first; m && ticket_reached(m, done); m = m == held ? NULL : held_next(m))
        last = m;
    if (last) {
        if (last == held) /* all of them */
            a->held_last = NULL;
        else /* the ring closes over those left */
            hyi_mpscq_link(&held->link, &held_next(last)->link);
        push_reads(k, a, first, last);
    }
    /* release: the delivery (the push into the mailbox, and the reads'
     * pushes) happens before a passivation that reads the count (acquire)
     * and then frees the actor. This is the completion's last use of a. */
    atomic_store_explicit(&a->journal_completed, done, memory_order_release);
    pthread_mutex_unlock(lock);
}

/* A message the journal failed to write: a dead letter (see the top). */
static void failed(hy_kernel *k, hy_msg *msg, int status)
{
    hyi_durable *d = hyi_msg_durable(msg);
    hyi_actor *a = d->actor;
    if (status == HY_EMAPFULL)
        /* relaxed: see `refused` */
        atomic_store_explicit(&k->persist->refused, HY_EMAPFULL, memory_order_relaxed);
    unadmit(a);
    if (d->on_durable)
        d->on_durable(d->udata, status);
    msg->flags |= HYI_MSG_FAILED; /* an asker learns HY_EHANDLER */
    hyi_dead_letter_msg(k, msg, HY_DEAD_JOURNAL);
    hyi_msg_release(k, msg);
    left_journal(k, a);
}

/* ---------------------------------------------------------------- delivery
 *
 * The journal hands the kernel a whole transaction's completions at once
 * (committed, on its writer thread). Each message's sender hears first
 * (on_durable), in submission order; then each actor's messages of the
 * transaction, linked in order, go to its mailbox in one push, and its
 * journal_completed grows by their number in one step under its read lock:
 * one lock, one push and at most one schedule per actor and transaction
 * instead of per message. An actor with reads held behind these messages
 * takes them one by one (deliver_each), so each read still lands right
 * after the journaled messages its ticket counted. */

/* Push one message of a at a time, releasing held reads as their tickets
 * are reached. The chain first..last is read before each push: a pushed
 * message may be handled and freed at once. */
static void deliver_each(hy_kernel *k, hyi_actor *a, hy_msg *first, hy_msg *last)
{
    for (hy_msg *m = first, *next;; m = next) {
        next = m == last ? NULL : held_next(m);
        hyi_actor_push(k, a, &m->link, &m->link);
        left_journal(k, a); /* the last one is the completion's last use of a */
        if (!next)
            break;
    }
}

/* Deliver a run of n journaled messages of a (linked first..last). */
static void deliver_run(hy_kernel *k, hyi_actor *a, hy_msg *first, hy_msg *last, uint32_t n)
{
    pthread_mutex_t *lock = read_lock_of(k, a);
    pthread_mutex_lock(lock);
    if (HY_UNLIKELY(a->held_last != NULL)) {
        pthread_mutex_unlock(lock);
        deliver_each(k, a, first, last);
        return;
    }
    /* No read is held, and none can be held behind these messages while we
     * hold the lock: push them, then count them completed (as left_journal:
     * release, the completion's last use of a). A read that comes later has
     * a ticket past them and finds them completed. */
    hyi_actor_push(k, a, &first->link, &last->link);
    /* relaxed load: written under this lock only */
    uint32_t done = atomic_load_explicit(&a->journal_completed, memory_order_relaxed) + n;
    atomic_store_explicit(&a->journal_completed, done, memory_order_release);
    pthread_mutex_unlock(lock);
}

/* Room in the grouping for n messages; false when it cannot grow. */
static bool group_room(grouping *g, size_t n)
{
    actor_run *runs = hyi_grow_array(g->runs, &g->cap, n, sizeof *runs, 1024);
    if (!runs)
        return false;
    g->runs = runs;
    if (2 * n > g->nslots) {
        size_t nslots = g->nslots ? g->nslots : 2048;
        while (nslots < 2 * n)
            nslots *= 2;
        run_slot *slots = calloc(nslots, sizeof *slots);
        if (!slots)
            return false;
        free(g->slots);
        g->slots = slots;
        g->nslots = nslots;
        g->gen = 0;
    }
    if (++g->gen == 0) { /* wrapped: forget every slot's old gen */
        memset(g->slots, 0, g->nslots * sizeof *g->slots);
        g->gen = 1;
    }
    return true;
}

/* The run of actor a in this call, made if new (runs: how many so far). */
static actor_run *group_of(grouping *g, hyi_actor *a, size_t *runs)
{
    /* actors are cache-line aligned: the low 6 bits say nothing */
    size_t mask = g->nslots - 1;
    size_t i = (size_t)((((uintptr_t)a >> 6) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    for (;; i = (i + 1) & mask) {
        run_slot *s = &g->slots[i];
        if (s->gen != g->gen) {
            *s = (run_slot){a, g->gen, (uint32_t)*runs};
            actor_run *r = &g->runs[(*runs)++];
            r->actor = a;
            r->first = NULL;
            r->n = 0;
            return r;
        }
        if (s->actor == a)
            return &g->runs[s->run];
    }
}

/* How far ahead committed fetches: a message's first line 2 * AHEAD entries
 * ahead, its trailer AHEAD entries ahead (found through the first line). The
 * sender wrote them long ago on another core. */
#define AHEAD 16

/* The journal's completion of a transaction's messages, on its writer
 * thread, in submission order (see "delivery"). */
static void committed(void *ctx, hyi_journal_done_item *items, size_t n, int status)
{
    hy_kernel *k = ctx;
    if (HY_UNLIKELY(status != 0)) {
        for (size_t i = 0; i < n; i++)
            failed(k, items[i].user, status);
        return;
    }
    grouping *g = &k->persist->group;
    if (HY_UNLIKELY(!group_room(g, n))) {
        /* No memory to group them: deliver each alone, as a run of one. */
        for (size_t i = 0; i < n; i++) {
            hy_msg *msg = items[i].user;
            hyi_durable *d = hyi_msg_durable(msg);
            d->seq = items[i].seq;
            if (d->on_durable)
                d->on_durable(d->udata, 0);
            deliver_run(k, d->actor, msg, msg, 1);
        }
        return;
    }
    size_t runs = 0;
    /* One wake for the commit's actors, not a futex call for each. */
    hyi_schedule_defer(k);
    for (size_t i = 0; i < n; i++) {
        if (i + 2 * AHEAD < n)
            __builtin_prefetch(items[i + 2 * AHEAD].user, 1);
        if (i + AHEAD < n)
            __builtin_prefetch(hyi_msg_durable(items[i + AHEAD].user), 1);
        hy_msg *msg = items[i].user;
        hyi_durable *d = hyi_msg_durable(msg);
        d->seq = items[i].seq;
        /* First the sender, then the handler: by the time drain sees the
         * message handled, its on_durable has returned. */
        if (d->on_durable)
            d->on_durable(d->udata, 0);
        actor_run *r = group_of(g, d->actor, &runs);
        if (r->first)
            hyi_mpscq_link(&r->last->link, &msg->link);
        else
            r->first = msg;
        r->last = msg;
        r->n++;
    }
    for (size_t i = 0; i < runs; i++) {
        if (i + AHEAD < runs) {
            hyi_actor *ahead = g->runs[i + AHEAD].actor;
            __builtin_prefetch(&ahead->mailbox, 1);
            __builtin_prefetch(&ahead->held_last, 1);
        }
        actor_run *r = &g->runs[i];
        /* counted as sent at submit (hyi_persist_submit): push only */
        deliver_run(k, r->actor, r->first, r->last, r->n);
    }
    hyi_schedule_flush();
}

/* Bytes rec_of needs in buf for msg: its principal's name, a NUL, its path. */
static size_t rec_extra(const hy_msg *msg)
{
    return msg->principal ? strlen(msg->principal->name) + 1 + msg->path_len : 0;
}

/* The journal record of msg. A principal's name goes before the path in buf
 * (rec_extra(msg) bytes; the journal copies the record before submit returns). */
static hyi_journal_rec rec_of(hy_msg *msg, char *buf)
{
    hyi_durable *d = hyi_msg_durable(msg);
    hyi_journal_rec rec = {
        .actor = d->actor->journal_id,
        .lease = lease_of(d->actor),
        .path = hyi_msg_path(msg),
        .path_len = msg->path_len,
        .payload = hyi_msg_payload(msg),
        .payload_len = msg->payload_len,
    };
    if (msg->principal) {
        size_t name_len = strlen(msg->principal->name);
        memcpy(buf, msg->principal->name, name_len + 1);
        memcpy(buf + name_len + 1, rec.path, rec.path_len);
        rec.path = buf;
        rec.path_len += name_len + 1;
        rec.flags = JREC_PRINCIPAL;
    }
    return rec;
}

int hyi_persist_submit(hy_kernel *k, hyi_actor *a, hy_msg *msg)
{
    /* relaxed: counted before the message can be handled, which the journal's
     * queue lock and the mailbox push order (as in hyi_actor_push) */
    atomic_fetch_add_explicit(&a->sub->sent, 1, memory_order_relaxed);
    entered_journal(a);
    char buf[HYI_NAME_MAX + 1 + HYI_PATH_MAX];
    hyi_journal_rec rec = rec_of(msg, buf);
    void *user = msg;
    int rc = hyi_journal_submit_many(k->persist->j, &rec, 1, committed, k, &user);
    if (HY_UNLIKELY(rc != 0)) {
        /* relaxed: as above; drain can only have seen it as not yet done */
        atomic_fetch_sub_explicit(&a->sub->sent, 1, memory_order_relaxed);
        unadmit(a);
        left_journal(k, a);
        hyi_msg_release(k, msg);
    }
    return rc;
}

int hyi_persist_submit_batch(hy_kernel *k, hy_msg **msgs, size_t n)
{
    if (n == 0)
        return 0;
    if (n == 1)
        return hyi_persist_submit(k, hyi_msg_durable(msgs[0])->actor, msgs[0]);
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += rec_extra(msgs[i]);
    hyi_journal_rec *recs = malloc(n * sizeof *recs + extra);
    char *buf = recs ? (char *)(recs + n) : NULL;
    int rc = recs ? 0 : HY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        hyi_actor *a = hyi_msg_durable(msgs[i])->actor;
        /* relaxed: as in hyi_persist_submit */
        atomic_fetch_add_explicit(&a->sub->sent, 1, memory_order_relaxed);
        entered_journal(a);
        if (recs) {
            recs[i] = rec_of(msgs[i], buf);
            buf += rec_extra(msgs[i]);
        }
    }
    if (rc == 0)
        rc = hyi_journal_submit_many(k->persist->j, recs, n, committed, k, (void *const *)msgs);
    free(recs);
    if (HY_UNLIKELY(rc != 0)) {
        for (size_t i = 0; i < n; i++) {
            hyi_actor *a = hyi_msg_durable(msgs[i])->actor;
            /* relaxed: as in hyi_persist_submit */
            atomic_fetch_sub_explicit(&a->sub->sent, 1, memory_order_relaxed);
            unadmit(a);
            left_journal(k, a);
            hyi_msg_release(k, msgs[i]);
        }
    }
    return rc;
}

void hyi_persist_dropped(hy_msg *msg)
{
    hyi_durable *d = hyi_msg_durable(msg);
    if (d->on_durable)
        d->on_durable(d->udata, HY_EFULL);
}

/* ---------------------------------------------------------------- snapshots */

/* The snapshot of a's state as the journal stores it: its identity (so
 * recovery can name it), then state_save's bytes. *out is malloc'd. */
static int snapshot_bytes(hyi_actor *a, bool keyed, unsigned char **out, size_t *out_len)
{
    hyi_subsys *sub = a->sub;
    void *bytes = NULL;
    size_t len = 0;
    unsigned char *buf = NULL;
    int rc = sub->state_save(sub->udata, a->state, &bytes, &len);
    if (rc != 0) /* the callback's own code means nothing to a hypha caller */
        rc = hyi_fail(HY_EHANDLER, "state_save of '%s' failed (%d)", sub->name, rc);
    else if (!(buf = malloc(2 + IDENT_MAX + len)))
        rc = HY_ENOMEM;
    /* an identity always fits IDENT_MAX: a name and a key no longer than a path */
    size_t ilen = rc == 0 ? actor_ident(a, keyed, buf + 2, IDENT_MAX) : 0;
    if (rc == 0) {
        buf[0] = (unsigned char)ilen;
        buf[1] = (unsigned char)(ilen >> 8);
        if (len)
            memcpy(buf + 2 + ilen, bytes, len);
        *out = buf;
        *out_len = 2 + ilen + len;
    }
    free(bytes);
    return rc;
}

static void snapshot_done(hyi_persist *p, hyi_actor *a, int rc)
{
    count(rc == 0 ? &p->snapshots : &p->snapshot_failures, 1);
    if (rc == 0)
        a->since_snapshot = 0;
}

static int snapshot(hy_kernel *k, hyi_actor *a, bool keyed, uint64_t seq)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = snapshot_bytes(a, keyed, &buf, &len);
    if (rc == 0)
        rc = hyi_snapshot_save(k->persist->j, a->journal_id, seq, buf, len);
    free(buf);
    snapshot_done(k->persist, a, rc);
    return rc;
}

/* Nothing applied since the last snapshot (or none ever, and no entry):
 * recovery rebuilds this state as it is. Without state_save the whole
 * journal rebuilds it. */
static bool needs_snapshot(const hyi_actor *a)
{
    return a->sub->state_save && a->since_snapshot != 0;
}

void hyi_persist_passivate_many(hy_kernel *k, hyi_actor *const *actors, size_t n, int *rcs)
{
    hyi_snapshot_item *items = calloc(n, sizeof *items);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        rcs[i] = 0;
        if (!needs_snapshot(actors[i]))
            continue;
        unsigned char *buf = NULL;
        size_t len = 0;
        rcs[i] = items ? snapshot_bytes(actors[i], true, &buf, &len) : HY_ENOMEM;
        if (rcs[i] != 0) {
            snapshot_done(k->persist, actors[i], rcs[i]);
            continue;
        }
        items[m++] = (hyi_snapshot_item){.actor = actors[i]->journal_id,
                                         .seq = actors[i]->journal_seq,
                                         .state = buf,
                                         .len = len};
    }
    (void)hyi_snapshot_save_many(k->persist->j, items, m); /* each item has its code */
    /* The leases go back before the actors leave the table, so a sender that
     * makes one of them again finds its head in the journal's cache. */
    hyi_lease_ref refs[64];
    for (size_t i = 0; i < n;) {
        size_t r = 0;
        for (; i < n && r < sizeof refs / sizeof refs[0]; i++)
            if (hyi_head_lease_held(lease_of(actors[i])))
                refs[r++] = (hyi_lease_ref){actors[i]->journal_id, lease_of(actors[i])};
        hyi_journal_release_leases(k->persist->j, refs, r);
    }
    for (size_t i = 0, it = 0; it < m; i++) {
        if (!needs_snapshot(actors[i]) || rcs[i] != 0)
            continue;
        rcs[i] = items[it].rc;
        snapshot_done(k->persist, actors[i], rcs[i]);
        free((void *)items[it++].state);
    }
    free(items);
}

void hyi_persist_applied(hy_kernel *k, hyi_actor *a, hy_msg *msg)
{
    if (msg->route->read_only)
        return; /* not journaled: nothing applied (its seq is a ticket) */
    a->journal_seq = hyi_msg_durable(msg)->seq;
    if (++a->since_snapshot >= k->persist->snapshot_every && a->sub->state_save)
        snapshot(k, a, a != a->sub->actor, a->journal_seq);
}

/* ---------------------------------------------------------------- stats */

void hyi_persist_stats(hy_kernel *k, hy_stats *out)
{
    hyi_persist *p = k->persist;
    if (!p)
        return;
    hyi_journal_stats js;
    hyi_journal_get_stats(p->j, &js);
    out->journal_commits = js.commits;
    out->journal_entries = js.entries;
    out->journal_bytes = js.bytes;
    out->journal_batch_p50 = js.batch_p50;
    out->journal_failed_commits = js.failed_commits;
    out->journal_map_used = js.map_used;
    out->journal_map_max = js.map_max;
    out->journal_writer_cpu_ns = js.writer_cpu_ns;
    out->journal_replayed = hyi_stat_load(&p->replayed);
    out->journal_replay_skipped = hyi_stat_load(&p->replay_skipped);
    out->journal_corrupt = hyi_stat_load(&p->corrupt);
    out->snapshots = hyi_stat_load(&p->snapshots);
    out->snapshot_failures = hyi_stat_load(&p->snapshot_failures);
    out->replay_suppressed = hyi_stat_load(&p->suppressed);
}
