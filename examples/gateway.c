/* gateway: the kernel over HTTP.
 *
 * hy_http_attach starts an HTTP/1.1 server on 127.0.0.1 (here on a port the
 * OS picks, read back with hy_http_port). POST /send/orders/item/42 becomes
 * hy_send to orders://item/42, POST /ask/... an hy_ask whose reply is the
 * response body, GET /health and /metrics report on the kernel. The example
 * is its own client (libcurl), so what it prints does not depend on the
 * port. (Written to compile as C and as C++.)
 *
 * "gateway serve SECONDS" makes the same requests, then prints the
 * dashboard's URL and stays up that long, every GET endpoint open (it
 * listens on loopback only): open the URL in a browser.
 *
 * From a shell, against a gateway on port PORT:
 *   curl -X POST --data 'two mugs' http://127.0.0.1:PORT/send/orders/item/42
 *   curl -X POST --data '?' 'http://127.0.0.1:PORT/ask/orders/item/42?timeout_ms=500' */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "hypha.h"

static int orders_seen;

/* orders://item/{id}: counts, and answers an ask with the item's id. */
static int item(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    orders_seen++; /* one actor: one message at a time */
    size_t len;
    const char *id = hy_param(ctx, "id", &len);
    char reply[64];
    int n = snprintf(reply, sizeof reply, "item %.*s: in stock", (int)len, id);
    int rc = hy_reply(ctx, reply, (size_t)n);
    return rc == HY_ENOENT ? 0 : rc; /* a plain send has nobody to answer */
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    char *out = (char *)ud;
    size_t have = strlen(out), add = size * n;
    if (have + add < 512) {
        memcpy(out + have, p, add);
        out[have + add] = '\0';
    }
    return add;
}

/* One request; prints its method, path, status and (short) body. */
static void request(int port, const char *method, const char *path, const char *body)
{
    char url[256], out[512] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    if (!c)
        return;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    printf("%s %s -> %ld %s\n", method, path, status, out);
}

int main(int argc, char **argv)
{
    int serve = argc > 2 && strcmp(argv[1], "serve") == 0 ? atoi(argv[2]) : 0;
    hy_kernel *k;
    if (hy_kernel_open(&k, NULL) != 0)
        return 1;
    hy_route routes[1];
    memset(routes, 0, sizeof routes);
    routes[0].pattern = "item/{id}";
    routes[0].handler = item;
    hy_subsystem_def def;
    memset(&def, 0, sizeof def);
    def.routes = routes;
    def.nroutes = 1;
    int rc = hy_subsystem_register(k, "orders", &def);

    hy_http_opts opts;
    memset(&opts, 0, sizeof opts); /* 127.0.0.1, a port the OS picks */
    if (serve) /* no tokens: the stats and the page need none */
        opts.open = HY_HTTP_OPEN_STATS | HY_HTTP_OPEN_DASHBOARD | HY_HTTP_OPEN_METRICS |
                    HY_HTTP_OPEN_HEALTH;
    if (rc == 0)
        rc = hy_http_attach(k, &opts);
    if (rc != 0) {
        printf("failed: %s %s\n", hy_err_name(rc), hy_errdetail());
        hy_kernel_close(k);
        return 1;
    }
    int port = hy_http_port(k);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    request(port, "POST", "/send/orders/item/42", "two mugs");
    request(port, "POST", "/ask/orders/item/7?timeout_ms=1000", "in stock?");
    request(port, "POST", "/send/orders/nothing", "?");
    request(port, "GET", "/health", NULL);
    hy_kernel_drain(k, 5000);
    printf("orders handled %d\n", orders_seen);
    if (serve > 0) {
        printf("dashboard: http://127.0.0.1:%d/\n", port);
        fflush(stdout);
        sleep((unsigned)serve);
    }
    curl_global_cleanup();
    hy_kernel_close(k);
    return 0;
}
