/* Publish/subscribe: in progress. */
#include "kernel.h"

void hyi_publish_released(hy_kernel *k, hy_msg *msg)
{
    (void)k;
    (void)msg;
}
