/* hello: register a subsystem, send it a message, wait until it is handled.
 * Prints "hello, world" from the handler. */
#include <stdio.h>

#include "hypha.h"

static int greet(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    size_t len;
    const char *who = (const char *)hy_msg_payload(msg, &len);
    printf("hello, %.*s\n", (int)len, who);
    return 0;
}

int main(void)
{
    hy_kernel *k;
    int rc = hy_kernel_open(&k, NULL); /* NULL: default config */
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", hy_strerror(rc));
        return 1;
    }
    hy_route routes[] = {{.pattern = "greet", .handler = greet}};
    hy_subsystem_def def = {.routes = routes, .nroutes = 1};
    rc = hy_subsystem_register(k, "hello", &def);
    if (rc == 0)
        rc = hy_send(k, "hello://greet", "world", 5);
    if (rc == 0)
        rc = hy_kernel_drain(k, 5000);
    if (rc != 0)
        fprintf(stderr, "hello: %s %s\n", hy_strerror(rc), hy_errdetail());
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
