/* ask: requests that expect an answer.
 *
 * From outside the kernel (here main), hy_ask sends a request and waits, up to
 * a timeout, for the handler's hy_reply. A handler must never wait, so inside
 * one hy_ask_async is used instead: the answer comes back later as an ordinary
 * message at the reply_to path given with the request.
 * Shown too: a handler that finishes without replying (the asker gets
 * HY_ENOENT at once, not at its timeout) and one too slow for its asker
 * (HY_ETIMEDOUT; its reply, when it comes, is a dead letter HY_DEAD_LATE_REPLY).
 *
 * In hypha.h: hy_ask, hy_ask_async, hy_reply, hy_free, hy_err_name,
 * hy_strerror, hy_stats.dead. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "hypha.h"

/* prices://quote/{item}: answers known items, stays silent on others. */
static int quote(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    static const struct { const char *item; int cents; } table[] = {
        {"apple", 30}, {"pear", 45}};
    size_t len;
    const char *item = hy_param(ctx, "item", &len); /* not NUL-terminated */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].item) == len && memcmp(table[i].item, item, len) == 0) {
            char buf[64];
            int n = snprintf(buf, sizeof buf, "%s costs %d", table[i].item, table[i].cents);
            return hy_reply(ctx, buf, (size_t)n); /* to whoever asked, either way */
        }
    return 0; /* no reply: a hy_ask caller gets HY_ENOENT */
}

/* prices://slow waits for main to open this gate before it replies, so the
 * asker's timeout surely passes first. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;

static int slow(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    pthread_mutex_lock(&gate_lock);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return hy_reply(ctx, "too late", 8); /* 0: its asker gave up, not an error */
}

/* shop://order/{item} asks for a price without waiting for it; the answers
 * arrive at shop://priced. Both routes are the shop's one actor, so the
 * answers list needs no lock; main reads it after a drain. */
static char answers[256];

static int order(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    size_t len;
    const char *item = hy_param(ctx, "item", &len);
    char path[64];
    snprintf(path, sizeof path, "prices://quote/%.*s", (int)len, item);
    return hy_ask_async(ctx, path, NULL, 0, "shop://priced");
}

static int priced(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    size_t used = strlen(answers);
    snprintf(answers + used, sizeof answers - used, "  %.*s\n", (int)len, p);
    return 0;
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

/* hy_ask from main, printing the answer or why there is none. */
static void ask(hy_kernel *k, const char *path, int timeout_ms)
{
    void *reply = NULL;
    size_t len = 0;
    int rc = hy_ask(k, path, NULL, 0, &reply, &len, timeout_ms);
    if (rc == 0)
        printf("%s: %.*s\n", path, (int)len, (const char *)reply);
    else
        printf("%s: %s (%s)\n", path, hy_err_name(rc), hy_strerror(rc));
    hy_free(reply); /* a malloc'd copy of the reply; NULL when there was none */
}

int main(void)
{
    hy_kernel *k;
    if (check(hy_kernel_open(&k, NULL), "open") != 0)
        return 1;
    hy_route prices[] = {{.pattern = "quote/{item}", .handler = quote},
                         {.pattern = "slow", .handler = slow}};
    hy_route shop[] = {{.pattern = "order/{item}", .handler = order},
                       {.pattern = "priced", .handler = priced}};
    hy_subsystem_def prices_def = {.routes = prices, .nroutes = 2};
    hy_subsystem_def shop_def = {.routes = shop, .nroutes = 2};
    int rc = check(hy_subsystem_register(k, "prices", &prices_def), "register prices");
    if (rc == 0)
        rc = check(hy_subsystem_register(k, "shop", &shop_def), "register shop");
    if (rc != 0) {
        hy_kernel_close(k);
        return 1;
    }

    printf("hy_ask from main:\n");
    ask(k, "prices://quote/apple", 1000);
    ask(k, "prices://quote/kiwi", 1000); /* ENOENT as soon as quote returns */
    ask(k, "prices://slow", 100);        /* ETIMEDOUT after 100 ms */

    /* Let the slow handler reply now: nobody waits for it any more. */
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);

    /* One sender, one actor each way: the answers come back in order. No
     * answer ever comes for kiwi, and nothing tells the shop: an async ask
     * has no timeout, so a handler that needs one must keep its own. */
    const char *const items[] = {"pear", "kiwi", "apple"};
    char path[64];
    for (int i = 0; rc == 0 && i < 3; i++) {
        snprintf(path, sizeof path, "shop://order/%s", items[i]);
        rc = check(hy_send(k, path, NULL, 0), "send");
    }
    if (rc == 0)
        rc = check(hy_kernel_drain(k, 5000), "drain");
    if (rc == 0)
        printf("hy_ask_async from the shop, answers at shop://priced:\n%s", answers);

    hy_stats st;
    if (rc == 0)
        rc = check(hy_kernel_stats(k, &st), "stats");
    if (rc == 0)
        printf("late replies %llu, failed handlers %llu\n",
               (unsigned long long)st.dead[HY_DEAD_LATE_REPLY],
               (unsigned long long)st.failed);
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
