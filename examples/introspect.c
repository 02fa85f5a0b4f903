/* introspect: asking the kernel about itself.
 *
 * Introspection is a built-in subsystem: it costs nothing until attached, and
 * once attached kernel://stats, kernel://routes and kernel://actors answer
 * hy_ask with JSON. Here one subsystem handles a few messages, then
 * kernel://stats says so. (Written to compile as C and as C++.) */
#include <stdio.h>
#include <string.h>

#include "hypha.h"

static int greet(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    return 0; /* handled: counted, nothing else to do */
}

/* The number after "key": in json, searched from `from`; -1 if absent. */
static long long figure(const char *from, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = from ? strstr(from, pat) : NULL;
    long long v = -1;
    if (at)
        sscanf(at + strlen(pat), "%lld", &v);
    return v;
}

int main(void)
{
    hy_kernel *k;
    if (hy_kernel_open(&k, NULL) != 0)
        return 1;
    /* NULL opts: all three routes. */
    int rc = hy_introspect_attach(k, NULL);

    hy_route routes[1];
    memset(routes, 0, sizeof routes);
    routes[0].pattern = "hello/{name}";
    routes[0].handler = greet;
    hy_subsystem_def def;
    memset(&def, 0, sizeof def);
    def.routes = routes;
    def.nroutes = 1;
    if (rc == 0)
        rc = hy_subsystem_register(k, "greet", &def);

    const char *names[] = {"ann", "bob", "cy"};
    for (int i = 0; rc == 0 && i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "greet://hello/%s", names[i]);
        rc = hy_send(k, path, NULL, 0);
    }
    /* Drained, the figures are exact; while messages flow they are a
     * moment's approximation. */
    if (rc == 0)
        rc = hy_kernel_drain(k, 5000);

    void *reply = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = hy_ask(k, "kernel://stats", NULL, 0, &reply, &len, 5000);
    if (rc == 0) {
        /* The reply is not NUL-terminated: copy it into a string. */
        char json[8192];
        size_t n = len < sizeof json - 1 ? len : sizeof json - 1;
        memcpy(json, (const char *)reply, n);
        json[n] = '\0';
        /* Totals count the stats request itself: sent, and queued while it
         * is being answered. */
        printf("total: sent %lld, handled %lld, queued %lld\n", figure(json, "sent"),
               figure(json, "handled"), figure(json, "queued"));
        const char *entry = strstr(json, "{\"name\":\"greet\",");
        printf("greet: sent %lld, handled %lld, actors %lld\n", figure(entry, "sent"),
               figure(entry, "handled"), figure(entry, "actors"));
    } else {
        printf("error: %s\n", hy_strerror(rc));
    }
    hy_free(reply);
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
