/* readroutes: queries that cost no journal write.
 *
 * An order service keeps each order's total in a persistent keyed actor.
 * "order/{id}/add" changes the total: it is journaled (written, fsynced)
 * before it is handled, and replayed at recovery. "order/{id}/total" only
 * reads it: marked read_only, it is neither journaled nor replayed, however
 * often it is asked. A read still comes after the writes its sender sent
 * before it, so asking right after adding sees the addition.
 *
 * Run twice on one journal directory (examples/readroutes.run): the second
 * run rebuilds the orders from their writes alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"

static int order_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(long));
    return *state ? 0 : -1;
}

static void order_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int order_add(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const char *amount = (const char *)hy_msg_payload(msg, &len);
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)len, amount);
    *(long *)hy_state(ctx) += atol(buf);
    return 0;
}

static int order_total(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    long total = *(const long *)hy_state(ctx); /* read, never changed */
    return hy_reply(ctx, &total, sizeof total);
}

static long ask_total(hy_kernel *k, int id)
{
    char path[64];
    snprintf(path, sizeof path, "orders://order/%d/total", id);
    void *reply = NULL;
    size_t len = 0;
    long total = -1;
    if (hy_ask(k, path, NULL, 0, &reply, &len, 5000) == 0 && len == sizeof total)
        memcpy(&total, reply, sizeof total);
    hy_free(reply);
    return total;
}

static hy_stats stats(hy_kernel *k)
{
    hy_stats s;
    memset(&s, 0, sizeof s);
    hy_kernel_stats(k, &s);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s JOURNAL_DIR\n", argv[0]);
        return 2;
    }
    hy_config cfg = {0};
    cfg.journal_path = argv[1];
    hy_kernel *k;
    int rc = hy_kernel_open(&k, &cfg);
    if (rc != 0) {
        fprintf(stderr, "open: %s %s\n", hy_strerror(rc), hy_errdetail());
        return 1;
    }
    hy_route routes[] = {
        {.pattern = "order/{id}/add", .handler = order_add, .key = "id"},
        {.pattern = "order/{id}/total", .handler = order_total, .key = "id", .read_only = 1},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 2,
                            .state_init = order_new, .state_free = order_free,
                            .persistent = 1};
    rc = hy_subsystem_register(k, "orders", &def);
    if (rc != 0) {
        fprintf(stderr, "register: %s %s\n", hy_strerror(rc), hy_errdetail());
        hy_kernel_close(k);
        return 1;
    }
    for (int id = 1; id <= 2; id++)
        printf("order %d: %ld at start\n", id, ask_total(k, id));
    /* Only the writes come back: the previous run's 102 asks left nothing. */
    printf("entries replayed: %llu\n", (unsigned long long)stats(k).journal_replayed);

    /* Add, then ask at once: the read waits for the write to be durable. */
    for (int id = 1; id <= 2; id++) {
        char path[64];
        snprintf(path, sizeof path, "orders://order/%d/add", id);
        hy_send(k, path, "25", 2);
        printf("order %d: %ld after adding 25\n", id, ask_total(k, id));
    }
    uint64_t before = stats(k).journal_entries;
    for (int i = 0; i < 100; i++)
        ask_total(k, 1 + i % 2);
    printf("journal entries written by 100 more asks: %llu\n",
           (unsigned long long)(stats(k).journal_entries - before));
    hy_kernel_close(k);
    return 0;
}
