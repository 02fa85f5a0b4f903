/* Messages: their metadata stamp and clock, releasing them, and the handler's
 * accessors. (Building one, hyi_msg_new_stamped, lives in send.c beside its
 * hot caller so the compiler can inline it there.)
 *
 * Metadata costs little on the hot path: the trace id and sender come from the
 * thread's running handler, the send time from the coarse clock (see
 * hyi_send_time_ns), and a batch takes one stamp for all. */
#include <string.h>

#include "kernel.h"

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
