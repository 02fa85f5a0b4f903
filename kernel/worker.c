/* Running an actor: a worker's turn with one actor, and the handler's view of
 * it (hy_ctx and the accessors of hypha.h's "in a handler" section).
 *
 * A turn handles up to `batch` messages, then either gives the actor up (its
 * mailbox is empty: the scheduled flag is cleared, with the re-check that keeps
 * a racing sender's message from being stranded) or puts it back for later, so
 * one busy actor cannot starve the others on its worker. */
#include <string.h>

#include "kernel.h"

struct hy_ctx {
    hy_kernel *k;
    hyi_actor *actor;
    const hy_msg *msg;
};

static void count_turn(hyi_subsys *sub, uint64_t handled, uint64_t failed)
{
    if (failed)
        /* relaxed: a statistic; nothing is published through it */
        atomic_fetch_add_explicit(&sub->failed, failed, memory_order_relaxed);
    /* release: hy_kernel_drain reads handled (acquire) before sent, so the
     * sends these handlers made are counted in sent by then. */
    atomic_fetch_add_explicit(&sub->handled, handled, memory_order_release);
}

/* Put a still-busy actor behind the others: straight on if nothing else is
 * waiting for this worker, else through the inject queue (FIFO). */
static bool others_waiting(hyi_worker *w)
{
    return hyi_deque_size_approx(&w->deque) > 0 || !hyi_mpscq_maybe_empty(&w->k->inject);
}

/* The mailbox is empty as far as this worker can see: give the actor up, then
 * look at the head once more. seq_cst on both, against the sender's seq_cst
 * push and flag exchange, so one of us sees the other. From the store on, the
 * consumer side may belong to another worker: only head is read. Returns true
 * when a message arrived meanwhile and this worker took the actor back. */
static bool release_or_reclaim(hyi_actor *actor)
{
    atomic_store_explicit(&actor->scheduled, 0, memory_order_seq_cst);
    if (hyi_mpscq_head_at_stub(&actor->mailbox))
        return false;
    /* seq_cst: the flag's RMW in the same handshake; 1 means a sender has
     * scheduled it again already, so it is not ours any more. */
    return !atomic_exchange_explicit(&actor->scheduled, 1, memory_order_seq_cst);
}

void hyi_actor_run(hyi_worker *w, hyi_actor *actor)
{
    hy_kernel *k = w->k;
    hyi_subsys *sub = actor->sub;
    hy_ctx ctx = {.k = k, .actor = actor};
    for (;;) {
        uint64_t handled = 0, failed = 0;
        while (handled < k->batch) {
            hyi_mpsc_node *node = hyi_mpscq_pop(&actor->mailbox);
            if (!node)
                break;
            hy_msg *msg = HYI_MSG_OF(node);
            ctx.msg = msg;
            if (msg->route->handler(&ctx, msg) != 0)
                failed++;
            hyi_pool_release(k->pool, msg);
            handled++;
        }
        if (handled)
            count_turn(sub, handled, failed);
        /* Still ours with work left: a full turn, a push half done (its node
         * not linked yet), or a message that arrived as we gave it up. */
        bool more = handled == k->batch || !hyi_mpscq_consumed(&actor->mailbox) ||
                    release_or_reclaim(actor);
        if (!more)
            return;
        if (others_waiting(w)) {
            hyi_schedule_yielded(k, actor);
            return;
        }
    }
}

const char *hy_msg_path(const hy_msg *msg, size_t *len)
{
    if (len)
        *len = msg->path_len;
    return hyi_msg_path(msg);
}

const void *hy_msg_payload(const hy_msg *msg, size_t *len)
{
    if (len)
        *len = msg->payload_len;
    return hyi_msg_payload(msg);
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
    ctx->actor->state = state;
}

const char *hy_actor_key(hy_ctx *ctx, size_t *len)
{
    hyi_actor *a = ctx->actor;
    bool keyed = a != a->sub->actor;
    if (len)
        *len = keyed ? a->key_len : 0;
    return keyed ? a->key : NULL;
}

void *hy_route_udata(hy_ctx *ctx)
{
    return ctx->msg->route->udata;
}

void *hy_subsystem_udata(hy_ctx *ctx)
{
    return ctx->actor->sub->udata;
}

hy_kernel *hy_ctx_kernel(hy_ctx *ctx)
{
    return ctx->k;
}
