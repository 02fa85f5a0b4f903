/* batch: many messages in one call.
 *
 * hy_send_batch looks a route up once per run of equal paths, pushes one chain
 * per destination actor and wakes each actor once. It stops at the first
 * message it cannot take and says how many it accepted. */
#include <stdio.h>

#include "hypha.h"

static long total;

static int add(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    const int *v = (const int *)hy_msg_payload(msg, NULL);
    total += *v; /* one actor: handlers run one at a time */
    return 0;
}

int main(void)
{
    hy_kernel *k;
    if (hy_kernel_open(&k, NULL) != 0)
        return 1;
    hy_route routes[] = {{.pattern = "add", .handler = add}};
    hy_subsystem_def def = {.routes = routes, .nroutes = 1};
    int rc = hy_subsystem_register(k, "sum", &def);

    int values[100];
    hy_send_item items[100];
    for (int i = 0; i < 100; i++) {
        values[i] = i + 1;
        items[i] = (hy_send_item){.path = "sum://add", .payload = &values[i],
                                  .len = sizeof values[i]};
    }
    size_t accepted = 0;
    if (rc == 0)
        rc = hy_send_batch(k, items, 100, &accepted);
    printf("accepted %zu of 100\n", accepted);

    /* The fourth item has a bad path: three are accepted, the error returned. */
    items[3].path = "sum://nowhere";
    int err = hy_send_batch(k, items, 10, &accepted);
    printf("accepted %zu of 10: %s\n", accepted, hy_strerror(err));

    if (rc == 0)
        rc = hy_kernel_drain(k, 5000);
    printf("total %ld\n", total);
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
