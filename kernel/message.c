/* Messages: their metadata stamp and clock, releasing them, and the handler's
 * accessors. (Building one, hyi_msg_new_stamped, lives in send.c beside its
 * hot caller so the compiler can inline it there.)
 *
 * Metadata costs little on the hot path: the trace id and sender come from the
 * thread's running handler, the send time from the coarse clock (see
 * hyi_send_time_ns), and a batch takes one stamp for all. */
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "kernel.h"

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

hy_msg *hyi_msg_new(hy_kernel *k, hyi_route_binding *route, const hyi_match *m,
                    const char *path, size_t path_len, const void *payload, size_t len,
                    const char *reply_to, bool slot)
{
    hyi_stamp stamp;
    hyi_stamp_take(k, &stamp);
    return hyi_msg_new_stamped(k, route, m, path, path_len, payload, len, reply_to, slot,
                               &stamp);
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
    return msg->sent_ns;
}

uint64_t hy_msg_sender(const hy_msg *msg)
{
    return msg->sender;
}
