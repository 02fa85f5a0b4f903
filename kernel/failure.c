/* When a message is not handled: dead letters, and supervision of the actor
 * whose handler failed.
 *
 * Every message a send accepted ends exactly one way: handled, or a dead
 * letter counted by reason (and shown to hy_config.dead_letter). That is what
 * lets hy_kernel_drain compare sent with handled + dead, and what the
 * "nothing disappears without a count" promise rests on.
 *
 * Supervision runs on the worker, between two messages of the actor, so a
 * restart (state freed and made anew) never races the actor's own handler and
 * the mailbox keeps its order. Restart storms are cut off: more than
 * max_restarts within restart_window_ms stops the actor. */
#include <time.h>

#include "kernel.h"

#define DEFAULT_MAX_RESTARTS 5
#define DEFAULT_RESTART_WINDOW_MS 1000

const char *hy_dead_reason_str(int reason)
{
    switch (reason) {
#define HY_DEAD_TEXT_ROW(name, text) \
    case HY_DEAD_##name:             \
        return text;
        HY_DEAD_TABLE(HY_DEAD_TEXT_ROW)
#undef HY_DEAD_TEXT_ROW
    default:
        return "unknown reason";
    }
}

void hyi_dead_letter(hy_kernel *k, const char *path, size_t path_len, const void *payload,
                     size_t len, hy_dead_reason reason)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&k->dead[reason], 1, memory_order_relaxed);
    if (k->config.dead_letter)
        k->config.dead_letter(k->config.udata, path, path_len, payload, len, reason);
}

void hyi_dead_letter_msg(hy_kernel *k, hy_msg *msg, hy_dead_reason reason)
{
    const hy_msg *body = hyi_msg_body(msg);
    hyi_dead_letter(k, hyi_msg_path(msg), body->path_len, hyi_msg_payload(msg),
                    body->payload_len, reason);
    /* release: like `handled`, drain reads it (acquire) before `sent` */
    atomic_fetch_add_explicit(&msg->route->sub->dead, 1, memory_order_release);
}

static void stop_actor(hy_kernel *k, hyi_actor *actor)
{
    /* relaxed: senders read it as a hint; whatever still reaches the mailbox
     * is dead-lettered by the worker, which wrote this flag itself */
    atomic_store_explicit(&actor->stopped, 1, memory_order_relaxed);
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&k->stopped, 1, memory_order_relaxed);
}

/* Within the storm limit? Counts this restart in the actor's window. */
static bool restart_allowed(const hyi_subsys *sub, hyi_actor *actor)
{
    uint32_t max = sub->max_restarts ? sub->max_restarts : DEFAULT_MAX_RESTARTS;
    uint32_t window = sub->restart_window_ms ? sub->restart_window_ms
                                             : DEFAULT_RESTART_WINDOW_MS;
    uint32_t now = (uint32_t)(hyi_now_ns() / 1000000u); /* wraps: compared by difference */
    if ((uint32_t)(now - actor->restart_window_start_ms) >= window) {
        actor->restart_window_start_ms = now;
        actor->restarts_in_window = 0;
    }
    return ++actor->restarts_in_window <= max;
}

/* Free the state and make it anew; an init that fails stops the actor. */
static void restart_actor(hy_kernel *k, hyi_actor *actor)
{
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&k->restarts, 1, memory_order_relaxed);
    if (hyi_actor_state_reset(actor, actor != actor->sub->actor) != 0)
        stop_actor(k, actor);
}

void hyi_supervise(hy_kernel *k, hyi_actor *actor, hy_msg *msg, int err)
{
    hyi_subsys *sub = actor->sub;
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&sub->failed, 1, memory_order_relaxed);
    switch (sub->strategy) {
    case HY_SUPERVISE_RESTART:
        if (restart_allowed(sub, actor))
            restart_actor(k, actor);
        else
            stop_actor(k, actor);
        break;
    case HY_SUPERVISE_STOP:
        stop_actor(k, actor);
        break;
    case HY_SUPERVISE_ESCALATE:
        if (k->config.escalate) {
            bool keyed = actor != sub->actor;
            k->config.escalate(k->config.udata, sub->name, keyed ? actor->key : NULL,
                               keyed ? actor->key_len : 0, err);
        }
        break;
    case HY_SUPERVISE_RESUME:
    default:
        break;
    }
    /* Last: counting the dead letter (a release add) is what lets
     * hy_kernel_drain return, so the strategy's work (escalate callback,
     * state_free/state_init of a restart, the stop flag) must be done by
     * then. Counted first, a drain could return while escalate was still
     * running or a restart was half done. */
    hyi_dead_letter_msg(k, msg, HY_DEAD_FAILED);
}
