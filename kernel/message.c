/* Messages: ids, releasing one through its hook, and the handler's
 * accessors. The layout and the builder itself are in
 * kernel.h's message.c section, inline, since the send path is their caller.
 *
 * Metadata costs little on the hot path: the trace id and sender come from the
 * thread's running handler, the send time from the coarse clock (see
 * base/clock.h), and a batch takes one stamp for all. */
#include <string.h>

#include "kernel.h"

/* Message ids: a per-thread block of a global counter, one atomic add per 2^20
 * messages. Starts at one block so that no id is 0. */
#define ID_BLOCK ((uint64_t)1 << 20)

static _Atomic uint64_t next_id_block = ID_BLOCK;
_Thread_local uint64_t hyi_tl_next_id, hyi_tl_id_end;

uint64_t hyi_msg_id_block(void)
{
    /* relaxed: only uniqueness matters, which the RMW gives */
    hyi_tl_next_id = atomic_fetch_add_explicit(&next_id_block, ID_BLOCK, memory_order_relaxed);
    hyi_tl_id_end = hyi_tl_next_id + ID_BLOCK;
    return hyi_tl_next_id++;
}

/* A message with a slot or a principal: out of line, so the usual release
 * below saves no registers and tail-calls the pool. */
static __attribute__((noinline)) void release_with_extras(hy_kernel *k, hy_msg *msg)
{
    if (msg->flags & HYI_MSG_SLOT) {
        hyi_msg_hook *hook = *hyi_msg_slot(msg);
        if (hook)
            hook->released(k, msg, hook);
    }
    if (msg->principal != NULL)
        hyi_principal_unref(msg->principal);
    hyi_pool_release(k->pool, msg);
}

void hyi_msg_release(hy_kernel *k, hy_msg *msg)
{
    if (HY_LIKELY(!(msg->flags & HYI_MSG_SLOT) && msg->principal == NULL))
        hyi_pool_release(k->pool, msg);
    else
        release_with_extras(k, msg);
}

/* The accessors below run for every message a handler reads: a message that
 * holds its own path and payload takes the short way, and a publish
 * envelope's (whose body is found through its slot) a call, so the short way
 * saves no registers. */
static inline const char *path_in(const hy_msg *b, size_t *len)
{
    if (len)
        *len = b->path_len;
    return (const char *)&b->params[b->nparams];
}

static inline const void *payload_in(const hy_msg *b, size_t *len)
{
    if (len)
        *len = b->payload_len;
    return (const char *)b + hyi_msg_payload_off(b->nparams, b->path_len);
}

static __attribute__((noinline)) const char *shared_path(const hy_msg *msg, size_t *len)
{
    return path_in(hyi_msg_body(msg), len);
}

static __attribute__((noinline)) const void *shared_payload(const hy_msg *msg, size_t *len)
{
    return payload_in(hyi_msg_body(msg), len);
}

const char *hy_msg_path(const hy_msg *msg, size_t *len)
{
    if (HY_UNLIKELY(msg->flags & HYI_MSG_SHARED))
        return shared_path(msg, len);
    return path_in(msg, len);
}

const void *hy_msg_payload(const hy_msg *msg, size_t *len)
{
    if (HY_UNLIKELY(msg->flags & HYI_MSG_SHARED))
        return shared_payload(msg, len);
    return payload_in(msg, len);
}

uint64_t hy_msg_id(const hy_msg *msg)
{
    return msg->id;
}

uint64_t hy_msg_trace_id(const hy_msg *msg)
{
    return msg->trace_id;
}

uint64_t hy_msg_sent_ns(const hy_msg *msg)
{
    return msg->sent_ns;
}

uint64_t hy_msg_sender(const hy_msg *msg)
{
    return msg->sender;
}

int hy_msg_is_timeout(const hy_msg *msg)
{
    return msg && (msg->flags & HYI_MSG_TIMEOUT) != 0;
}
