/* Messages: building one from a send, stamping its metadata, releasing it, and
 * the handler's accessors.
 *
 * Metadata costs little on the hot path: ids come from a per-thread block of a
 * global counter (one atomic add per 2^20 messages), the trace id and sender
 * from the thread's running handler, the timestamp from the TSC (a few ns;
 * converted to nanoseconds only when read). */
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "kernel.h"

#define ID_BLOCK ((uint64_t)1 << 20)

/* Starts at one block so that no id is 0. */
static _Atomic uint64_t next_id_block = ID_BLOCK;
static _Thread_local uint64_t tl_next_id, tl_id_end;

static uint64_t next_message_id(void)
{
    if (HY_UNLIKELY(tl_next_id == tl_id_end)) {
        /* relaxed: only uniqueness matters, which the RMW gives */
        tl_next_id = atomic_fetch_add_explicit(&next_id_block, ID_BLOCK, memory_order_relaxed);
        tl_id_end = tl_next_id + ID_BLOCK;
    }
    return tl_next_id++;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hyi_clock_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return monotonic_ns();
#endif
}

/* Ticks to CLOCK_MONOTONIC ns, calibrated against the pair taken at kernel open
 * and a pair taken now: no start-up calibration delay, and the longer the
 * kernel has run, the better the ratio. */
uint64_t hyi_clock_ns(hy_kernel *k, uint64_t ticks)
{
#if defined(__x86_64__) || defined(__i386__)
    uint64_t now_ticks = __rdtsc(), now_ns = monotonic_ns();
    if (now_ticks <= k->clock_origin_tsc)
        return now_ns;
    double ns_per_tick = (double)(now_ns - k->clock_origin_ns) /
                         (double)(now_ticks - k->clock_origin_tsc);
    double back = (double)(now_ticks - ticks) * ns_per_tick;
    return ticks <= now_ticks && back < (double)now_ns ? now_ns - (uint64_t)back : now_ns;
#else
    (void)k;
    return ticks;
#endif
}

void hyi_stamp_take(hy_kernel *k, hyi_stamp *stamp)
{
    stamp->ticks = hyi_clock_ticks();
    hyi_actor *current_actor = NULL;
    const hy_msg *current = hyi_current_msg(k, &current_actor);
    stamp->trace_id = current ? current->trace_id : 0;
    stamp->sender = current_actor ? current_actor->id : 0;
}

hy_msg *hyi_msg_new_stamped(hy_kernel *k, hyi_route_binding *route, const hyi_match *m,
                            const char *path, size_t path_len, const void *payload,
                            size_t len, const char *reply_to, const hyi_stamp *stamp)
{
    size_t nparams = m ? m->nparams : 0;
    size_t payload_off = hyi_msg_payload_off((uint32_t)nparams, path_len);
    size_t reply_len = reply_to ? strlen(reply_to) + 1 : 0;
    size_t size = payload_off + len + reply_len;
    /* A persistent subsystem's message carries its journal trailer
     * (hyi_durable, persistent.c). */
    if (HY_UNLIKELY(route && route->sub->persistent))
        size = hyi_durable_off(size) + sizeof(hyi_durable);
    hy_msg *msg = hyi_pool_acquire(k->pool, size);
    if (HY_UNLIKELY(!msg))
        return NULL;
    msg->route = route;
    msg->id = next_message_id();
    msg->sent_tsc = stamp->ticks;
    msg->trace_id = stamp->trace_id ? stamp->trace_id : msg->id;
    msg->sender = stamp->sender;
    msg->ext = NULL;
    msg->payload_len = (uint32_t)len;
    msg->path_len = (uint16_t)path_len;
    msg->nparams = (uint8_t)nparams;
    msg->flags = reply_to ? HYI_MSG_REPLY_TO : 0;
    for (size_t i = 0; i < nparams; i++)
        msg->params[i] = m->params[i];
    char *p = (char *)&msg->params[nparams];
    memcpy(p, path, path_len);
    p[path_len] = '\0';
    if (len)
        memcpy((char *)msg + payload_off, payload, len);
    if (reply_len)
        memcpy((char *)msg + payload_off + len, reply_to, reply_len);
    return msg;
}

hy_msg *hyi_msg_new(hy_kernel *k, hyi_route_binding *route, const hyi_match *m,
                    const char *path, size_t path_len, const void *payload, size_t len,
                    const char *reply_to)
{
    hyi_stamp stamp;
    hyi_stamp_take(k, &stamp);
    return hyi_msg_new_stamped(k, route, m, path, path_len, payload, len, reply_to, &stamp);
}

void hyi_msg_release(hy_kernel *k, hy_msg *msg)
{
    if (HY_UNLIKELY(msg->flags & (HYI_MSG_ASKER | HYI_MSG_SHARED))) {
        if (msg->flags & HYI_MSG_ASKER)
            hyi_ask_released(k, msg);
        if (msg->flags & HYI_MSG_SHARED)
            hyi_publish_released(k, msg);
    }
    hyi_pool_release(k->pool, msg);
}

const char *hy_msg_path(const hy_msg *msg, size_t *len)
{
    if (len)
        *len = hyi_msg_body(msg)->path_len;
    return hyi_msg_path(msg);
}

const void *hy_msg_payload(const hy_msg *msg, size_t *len)
{
    if (len)
        *len = hyi_msg_body(msg)->payload_len;
    return hyi_msg_payload(msg);
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
    return hyi_clock_ns(msg->route->sub->k, msg->sent_tsc);
}

uint64_t hy_msg_sender(const hy_msg *msg)
{
    return msg->sender;
}
