/* Introspection, a built-in subsystem: kernel://stats, kernel://routes and
 * kernel://actors answer hy_ask with JSON (the shapes are in hypha.h, at
 * hy_introspect_attach).
 *
 * Why a built-in and not the core: nothing here needs the kernel's insides.
 * The figures come from hy_kernel_stats and hy_subsystems_list, the answer
 * goes back through hy_reply, and the routes are added to the kernel's own
 * subsystem with hy_kernel_routes_add (hypha_ext.h), the one door a built-in
 * has to kernel:// paths. So a kernel that does not attach it carries no
 * route and no code path for it, and this file, compiled with only the
 * public headers on its include path, shows the public API is enough to
 * build it.
 *
 * The JSON writer and the documents live in json.c, shared with the HTTP
 * gateway (GET /stats serves the same document).
 *
 * A request takes the normal send path and its handler runs on a worker like
 * any other, one at a time on the kernel subsystem's actor. Each handler
 * formats into a growing buffer, then replies; a plain hy_send to these
 * paths is answered by nobody and is still counted as handled.
 *
 * Figures are read without stopping the kernel: a moment's approximation, as
 * hy_kernel_stats says. The request being answered is itself sent and not
 * yet handled, so it shows in the totals and in the "kernel" entry (sent,
 * queued). kernel://stats takes its totals and its per-subsystem list in two
 * calls, so under load the two may differ by what happened in between. */
#include <stdlib.h>

#include "hypha.h"
#include "hypha_ext.h"
#include "json.h"

/* ------------------------------------------------------------ routes */

/* Write the document, reply with it. Nobody to answer (a plain hy_send) is
 * fine. */
static int reply_with(hy_ctx *ctx, hyj_emit_fn emit)
{
    hyj_buf b = {0};
    int rc = hyj_document(&b, hy_ctx_kernel(ctx), emit);
    if (rc != 0)
        return rc;
    rc = hy_reply(ctx, b.p, b.len);
    free(b.p);
    return rc == HY_ENOENT ? 0 : rc;
}

static int stats_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return reply_with(ctx, hyj_stats);
}

static int routes_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return reply_with(ctx, hyj_routes);
}

static int actors_route(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return reply_with(ctx, hyj_actors);
}

/* ------------------------------------------------------------ attach */

int hy_introspect_attach(hy_kernel *k, const hy_introspect_opts *opts)
{
    /* In this order: kernel://routes lists them as added. */
    static const struct {
        unsigned bit;
        hy_route route;
    } all[] = {
        {HY_INTROSPECT_STATS, {.pattern = "stats", .handler = stats_route}},
        {HY_INTROSPECT_ROUTES, {.pattern = "routes", .handler = routes_route}},
        {HY_INTROSPECT_ACTORS, {.pattern = "actors", .handler = actors_route}},
    };
    enum { NALL = sizeof all / sizeof all[0] };
    const unsigned every = HY_INTROSPECT_STATS | HY_INTROSPECT_ROUTES | HY_INTROSPECT_ACTORS;
    unsigned want = opts && opts->routes ? opts->routes : every;
    if (want & ~every)
        return HY_EINVAL;
    hy_route routes[NALL];
    size_t n = 0;
    for (size_t i = 0; i < NALL; i++)
        if (want & all[i].bit)
            routes[n++] = all[i].route;
    /* All or none; a route already served (a second attach) is HY_EEXIST. */
    return hy_kernel_routes_add(k, routes, n);
}
