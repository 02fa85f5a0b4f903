/* Permissions: a route that requires a scope, and principals with and
 * without it.
 *
 * "bank://transfer" requires the scope "bank:transfer"; "bank://balance"
 * requires none. A teller holds the scope, a visitor does not. Sends from
 * outside any handler with plain hy_send act as the kernel's trusted
 * principal; hy_send_as sends as a given one. A handler's own sends act as
 * the principal of the message it handles, so the visitor cannot reach the
 * transfer route by going through "desk://forward".
 *
 * Calls to look at in hypha.h: hy_route.scope, hy_principal_create,
 * hy_send_as, hy_msg_principal, hy_principal_destroy, and
 * hy_subsystem_stats.refused. */
#include <stdio.h>

#include "hypha.h"

static int transfer(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    const char *who = hy_msg_principal(msg);
    /* one actor: handlers of this subsystem run one at a time */
    printf("transfer by %s\n", who ? who : "the program itself");
    return 0;
}

static int balance(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    const char *who = hy_msg_principal(msg);
    printf("balance read by %s\n", who ? who : "the program itself");
    return 0;
}

/* Forwards to the transfer route: acts as whoever sent the forwarded message. */
static int forward(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    int rc = hy_send(hy_ctx_kernel(ctx), "bank://transfer", NULL, 0);
    printf("desk forwarded: %s\n", rc == 0 ? "accepted" : hy_strerror(rc));
    return 0;
}

/* Send and say what came of it. Drain first, so the output is in order. */
static void attempt(hy_kernel *k, hy_principal *as, const char *label, const char *path)
{
    int rc = as ? hy_send_as(k, as, path, NULL, 0) : hy_send(k, path, NULL, 0);
    if (rc != 0)
        printf("%s -> %s: %s (%s)\n", label, path, hy_strerror(rc), hy_errdetail());
    hy_kernel_drain(k, 5000);
}

int main(void)
{
    hy_kernel *k;
    if (hy_kernel_open(&k, NULL) != 0)
        return 1;
    hy_route bank[] = {
        {.pattern = "transfer", .handler = transfer, .scope = "bank:transfer"},
        {.pattern = "balance", .handler = balance},
    };
    hy_subsystem_def bank_def = {.routes = bank, .nroutes = 2};
    hy_route desk[] = {{.pattern = "forward", .handler = forward}};
    hy_subsystem_def desk_def = {.routes = desk, .nroutes = 1};
    int rc = hy_subsystem_register(k, "bank", &bank_def);
    if (rc == 0)
        rc = hy_subsystem_register(k, "desk", &desk_def);
    const char *teller_scopes[] = {"bank:transfer"};
    hy_principal *teller = NULL, *visitor = NULL;
    if (rc == 0)
        rc = hy_principal_create(k, "teller", teller_scopes, 1, &teller);
    if (rc == 0)
        rc = hy_principal_create(k, "visitor", NULL, 0, &visitor);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", hy_strerror(rc), hy_errdetail());
        return 1;
    }

    attempt(k, NULL, "program", "bank://transfer");  /* trusted: allowed */
    attempt(k, teller, "teller", "bank://transfer"); /* holds the scope */
    attempt(k, visitor, "visitor", "bank://balance"); /* no scope needed */
    attempt(k, visitor, "visitor", "bank://transfer"); /* refused */
    attempt(k, visitor, "visitor", "desk://forward");  /* refused one hop later */

    hy_subsystem_stats ss;
    if (hy_subsystem_stats_get(k, "bank", &ss) == 0)
        printf("bank: handled %llu, refused %llu\n", (unsigned long long)ss.handled,
               (unsigned long long)ss.refused);
    hy_principal_destroy(teller);
    hy_principal_destroy(visitor);
    hy_kernel_close(k);
    return 0;
}
