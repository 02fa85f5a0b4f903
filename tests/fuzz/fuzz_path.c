/* libFuzzer target for the path parser and the matcher: any bytes as a path,
 * checked and matched against a small fixed table of every segment kind. The
 * two must agree (a path the checker accepts is never HY_EBADPATH to the
 * matcher) and every capture must lie inside the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hyi_router *table(void)
{
    static hyi_router *r;
    static int tag;
    if (r)
        return r;
    static const char *const patterns[] = {
        "",       "item/{id}",          "item/{id:\\d+}",  "item/me",
        "users/{id}/posts/{pid}",       "users/me/settings", "arc/{y:\\d{4}}/{slug:[a-z0-9-]+}",
        "files/*", "files/*/meta",      "files/**",        "{a}/{b}/{c}/**",
        "caf\xc3\xa9/{x:.+}",
    };
    if (hyi_router_create(&r) != 0 || hyi_router_add_subsystem(r, "orders", &tag) != 0 ||
        hyi_router_add_subsystem(r, "a", &tag) != 0)
        abort();
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (hyi_router_add_route(r, "orders", patterns[i], (void *)patterns[i], NULL) != 0 ||
            hyi_router_add_route(r, "a", patterns[i], (void *)patterns[i], NULL) != 0)
            abort();
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hyi_router *r = table();
    const char *path = (const char *)data;
    int ok = hyi_path_check(path, size);
    if (ok != 0 && ok != HY_EBADPATH)
        abort();
    hyi_match m;
    int rc = hyi_router_match(r, path, size, &m);
    if ((ok == HY_EBADPATH) != (rc == HY_EBADPATH))
        abort();
    if (rc == 0) {
        if (!m.route || m.nparams > HYI_MAX_PARAMS)
            abort();
        for (uint32_t i = 0; i < m.nparams; i++)
            if ((size_t)m.params[i].off + m.params[i].len > size)
                abort();
    } else if (rc != HY_ENOROUTE && rc != HY_EBADPATH) {
        abort();
    }
    return 0;
}
