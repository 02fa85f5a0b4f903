/* Running an actor: a worker's turn with one actor, and the handler's view of
 * it (hy_ctx and the accessors of hypha.h's "in a handler" section).
 *
 * A turn handles up to `batch` messages, then either gives the actor up (its
 * mailbox is empty: hyi_actor_give_up, the worker's half of the handshake in
 * kernel.h) or puts it back for later, so one busy actor cannot starve the
 * others on its worker. */
#include <string.h>

#include "kernel.h"

_Thread_local hy_ctx *hyi_running;

static void count_handled(hyi_subsys *sub, uint64_t handled)
{
    if (!handled)
        return;
    /* release: hy_kernel_drain reads handled (acquire) before sent, so the
     * sends these handlers made are counted in sent by then. */
    atomic_fetch_add_explicit(&sub->handled, handled, memory_order_release);
}

/* A message taken from a bounded mailbox: false when the drop-oldest policy
 * says it is one of the excess (it is then a dead letter). */
static bool keep_after_bound(hy_kernel *k, hyi_actor *actor, hy_msg *msg)
{
    const hyi_bound *b = &actor->bound;
    /* relaxed: only the count matters (see hyi_admit() in kernel.h) */
    int64_t before = atomic_fetch_sub_explicit(&actor->depth, 1, memory_order_relaxed);
    if (before <= (int64_t)b->capacity || b->overflow != HY_OVERFLOW_DROP_OLDEST)
        return true;
    hyi_dead_letter_msg(k, msg, HY_DEAD_DROPPED);
    return false;
}

static bool actor_stopped(hyi_actor *actor)
{
    /* relaxed: written by supervision on the worker running the actor, which
     * is this thread or one whose turn ended before ours began */
    return atomic_load_explicit(&actor->stopped, memory_order_relaxed) != 0;
}

static inline void prefetch_message(const hyi_mpsc_node *node)
{
    const hy_msg *next = HYI_MSG_OF(node);
    __builtin_prefetch(next);
    __builtin_prefetch((const char *)next + HY_CACHE_LINE);
}

/* Hand one message to its handler (or to the dead letters). True if handled.
 * `extras`: the subsystem has a bounded mailbox or a journal (decided once per
 * turn, so a plain subsystem's messages skip both checks). */
static bool handle(hy_kernel *k, hy_ctx *ctx, hy_msg *msg, bool extras)
{
    hyi_actor *actor = ctx->actor;
    if (HY_UNLIKELY(extras) && actor->bound.capacity && !keep_after_bound(k, actor, msg))
        return false;
    if (HY_UNLIKELY(ctx->stopped)) {
        hyi_dead_letter_msg(k, msg, HY_DEAD_STOPPED);
        return false;
    }
    /* relaxed: unregistering only needs every later message to see it, and
     * waits for the counts this adds to */
    if (HY_UNLIKELY(atomic_load_explicit(&ctx->sub->unregistered, memory_order_relaxed))) {
        hyi_dead_letter_msg(k, msg, HY_DEAD_UNREGISTERED);
        return false;
    }
    ctx->msg = msg;
    hyi_running = ctx;
    int rc = msg->route->handler(ctx, msg);
    hyi_running = NULL;
    /* hy_set_state refused (a read-only route): the message fails */
    if (HY_UNLIKELY(extras) && HY_UNLIKELY(msg->flags & HYI_MSG_FAILED) && rc == 0)
        rc = HY_EINVAL;
    if (HY_UNLIKELY(rc != 0)) {
        msg->flags |= HYI_MSG_FAILED;
        hyi_supervise(k, actor, msg, rc);
        ctx->stopped = actor_stopped(actor);
    }
    /* A journaled message counts as applied, failed or not (as it will be
     * when replayed), after supervision made its change to the state. */
    if (HY_UNLIKELY(extras) && ctx->sub->persistent)
        hyi_persist_applied(k, actor, msg);
    return rc == 0;
}

int hy_ext_is_replaying(hy_kernel *k)
{
    hy_ctx *c = hyi_running;
    return c && c->k == k && c->replaying;
}

int hy_is_replaying(hy_ctx *ctx)
{
    return ctx && ctx->replaying;
}

/* The references of consecutive messages of one principal, dropped with one
 * atomic op: the principal's count sits on a line its senders write with
 * every message, so dropping it once per message would pull that line here
 * each time. */
typedef struct principal_run {
    hy_principal *principal;
    uint64_t refs;
} principal_run;

static void principal_run_end(principal_run *run)
{
    if (run->refs)
        hyi_principal_unref_n(run->principal, run->refs);
    run->refs = 0;
}

/* Take msg's principal reference into the run (msg is released without it). */
static void principal_run_take(principal_run *run, hy_msg *msg)
{
    if (msg->principal != run->principal) {
        principal_run_end(run);
        run->principal = msg->principal;
    }
    run->refs++;
    msg->principal = NULL;
}

/* How long a worker stays with an emptied mailbox, in pause rounds (a pause
 * is 10 to 140 cycles by core; about 38 ns on the 2-core machine the benches
 * ran on). Never less than LINGER_MIN: a shorter wait moved workers into the
 * idle loop, whose look at the inject queue takes from every sender that
 * schedules an actor the line it exchanges (a sender cycling over a thousand
 * actors lost that way). Longer, up to LINGER_MAX, for an actor whose
 * messages have been arriving a few microseconds apart (actor->arrival_gap,
 * see linger): waiting for the next one costs less than giving the actor up
 * and having that message schedule it again. */
#define LINGER_MIN 100
#define LINGER_MAX 300
#define LINGER_GAPS 4

/* Pause rounds a worker waits for a push caught between its exchange and its
 * link: a few instructions for a running sender, so this only runs out when
 * the sender was preempted (the turn then simply goes on). */
#define LINK_WAIT_SPINS 64

/* Wait for the push in flight behind the mailbox's tail to link its node. */
static void await_link(hyi_actor *actor)
{
    for (int i = 0; i < LINK_WAIT_SPINS && !hyi_mpscq_linked(&actor->mailbox); i++)
        hyi_cpu_relax();
}

/* Before the worker lets go of the actor: the mailbox must not hold a message
 * it handed out (see hyi_mpscq_pop_keep), since that one is freed only once
 * the list has moved past it. False when a push is in flight right behind
 * it: after a short wait for its link, the turn goes on. */
static bool end_hold(hy_kernel *k, hyi_actor *actor)
{
    if (!hyi_mpscq_holding(&actor->mailbox))
        return true;
    hyi_mpsc_node *n = hyi_mpscq_unhold(&actor->mailbox);
    if (!n) {
        await_link(actor);
        return false;
    }
    hyi_msg_release_plain(k, HYI_MSG_OF(n));
    return true;
}

/* The mailbox is empty but a sender is likely mid-stream: wait briefly for
 * its next message, if no other actor is waiting for this worker. Giving the
 * actor up and having the next push schedule it again costs both sides far
 * more (the flag handshake, the inject queue, a wake-up) than the wait. True
 * when a message arrived.
 *
 * How long: a steady stream refills the mailbox within a gap or two, so a
 * worker that waited LINGER_GAPS times the usual gap in vain is looking at a
 * stream that stopped or was preempted. arrival_gap is a moving average of
 * the rounds a successful wait took; a wait in vain halves it, so the
 * extension past LINGER_MIN fades for an actor whose messages stop coming. */
static bool linger(hyi_worker *w, hyi_actor *actor)
{
    if (hyi_others_waiting(w))
        return false;
    unsigned gap = actor->arrival_gap;
    unsigned limit = LINGER_GAPS * gap + LINGER_MIN;
    if (limit > LINGER_MAX)
        limit = LINGER_MAX;
    /* A worker whose waits have been long (its spin budget shrank, sched.c)
     * lingers no longer than it would spin idle: messages a round trip over
     * the network apart never come within a linger. */
    if (w->spin_budget < HYI_IDLE_SPINS && limit > w->spin_budget)
        limit = w->spin_budget;
    for (unsigned i = 0; i < limit; i++) {
        if (hyi_mpscq_linked(&actor->mailbox)) {
            actor->arrival_gap = (uint16_t)((3 * gap + i + 2) / 4);
            return true;
        }
        hyi_cpu_relax();
    }
    actor->arrival_gap = (uint16_t)(gap / 2);
    return false;
}

void hyi_actor_run(hyi_worker *w, hyi_actor *actor)
{
    hy_kernel *k = w->k;
    hyi_subsys *sub = actor->sub;
    hy_ctx ctx = {.k = k,
                  .actor = actor,
                  .sub = sub,
                  .key_len = actor->key_len,
                  .stopped = actor_stopped(actor)};
    const bool extras = actor->bound.capacity != 0 || sub->persistent;
    /* Counted into the subsystem when the worker lets go of the actor, or
     * every batch: one atomic add per run of turns, not per turn (a worker
     * keeping up with a sender has turns of a message or two). */
    uint64_t handled = 0;
    for (;;) {
        unsigned taken = 0;
        principal_run run = {NULL, 0};
        for (; taken < k->batch; taken++) {
            /* pop_keep: a worker as fast as the sender leaves the newest
             * message in the list and never touches the line the sender
             * exchanges; that message is freed once the list moves past it. */
            hyi_mpsc_node *retired = NULL;
            hyi_mpsc_node *node = hyi_mpscq_pop_keep(&actor->mailbox, &retired);
            if (retired)
                hyi_msg_release_plain(k, HYI_MSG_OF(retired));
            if (!node)
                break;
            hy_msg *msg = HYI_MSG_OF(node);
            /* The next message was written on the sender's core: start
             * fetching both its lines now, so the miss overlaps this handler
             * instead of following it. */
            prefetch_message(actor->mailbox.tail);
            handled += handle(k, &ctx, msg, extras);
            if (HY_UNLIKELY(msg->principal != NULL))
                principal_run_take(&run, msg);
            if (node != actor->mailbox.held)
                hyi_msg_release_plain(k, msg);
        }
        principal_run_end(&run);
        if (handled >= k->batch) {
            count_handled(sub, handled);
            handled = 0;
        }
        /* The turn's end, for idle passivation: a copy of the kernel's coarse
         * clock, once per turn rather than per message. relaxed: an age hint,
         * read by the passivation thread under no ordering. */
        atomic_store_explicit(&actor->last_active_ms,
                              atomic_load_explicit(&k->coarse_ms, memory_order_relaxed),
                              memory_order_relaxed);
        /* Stay with the actor after a full turn or when a message came as
         * we lingered, unless others wait for this worker. */
        bool more = taken == k->batch || linger(w, actor);
        if (more && !hyi_others_waiting(w))
            continue;
        /* Leaving it (given up or put back): first the held message, then
         * the count, which goes in before another worker can run the actor
         * so drain never waits on this one. A push in flight right behind
         * the held message keeps the actor: its node comes in a moment, or,
         * if others wait, the hold goes with the actor to the next turn. */
        bool held_on = !end_hold(k, actor);
        if (held_on && !hyi_others_waiting(w))
            continue;
        count_handled(sub, handled);
        handled = 0;
        if (!more && !held_on) {
            /* Ending the hold may have found a message behind it; else the
             * handshake decides (true: one arrived as we gave it up). */
            if (!hyi_mpscq_consumed(&actor->mailbox))
                continue;
            if (!hyi_actor_give_up(actor))
                return;
            if (!hyi_others_waiting(w))
                continue;
        }
        hyi_schedule_yielded(k, actor);
        return;
    }
}

const char *hy_param(hy_ctx *ctx, const char *name, size_t *len)
{
    const hy_msg *m = ctx->msg;
    const hyi_route_binding *r = m->route;
    for (uint32_t i = 0; i < r->nparams; i++) {
        if (strcmp(r->param_names[i], name) == 0) {
            if (len)
                *len = m->params[i].len;
            return hyi_msg_path(m) + m->params[i].off;
        }
    }
    if (len)
        *len = 0;
    return NULL;
}

void *hy_state(hy_ctx *ctx)
{
    return ctx->actor->state;
}

void hy_set_state(hy_ctx *ctx, void *state)
{
    /* A read-only route's message is never replayed: a state it set would
     * vanish at the next recovery. Refused, and the message fails (handle). */
    const hy_msg *m = ctx->msg;
    if (HY_UNLIKELY(m && m->route->read_only && ctx->sub->persistent)) {
        ctx->msg->flags |= HYI_MSG_FAILED;
        hyi_fail(HY_EINVAL, "hy_set_state from read-only route '%s' of persistent subsystem "
                 "'%s': its messages are not journaled", m->route->pattern, ctx->sub->name);
        return;
    }
    ctx->actor->state = state;
}

const char *hy_actor_key(hy_ctx *ctx, size_t *len)
{
    /* Only keyed actors have a key: not a subsystem's own actor, nor a
     * subscription's (both have key_len 0; keys are never empty). */
    bool keyed = ctx->key_len > 0;
    if (len)
        *len = ctx->key_len;
    return keyed ? ctx->actor->key : NULL;
}

uint64_t hy_self(hy_ctx *ctx)
{
    return ctx->actor->id;
}

void *hy_route_udata(hy_ctx *ctx)
{
    return ctx->msg->route->udata;
}

void *hy_subsystem_udata(hy_ctx *ctx)
{
    return ctx->sub->udata;
}

hy_kernel *hy_ctx_kernel(hy_ctx *ctx)
{
    return ctx->k;
}
