/* orders: route parameters and keyed actors.
 *
 * "orders://item/{id}/add" is keyed by id: each item is its own actor with its
 * own state (a quantity), created by its first message. Messages to one item
 * are handled one at a time and in order, while different items run in
 * parallel on the workers. At the end each item's actor reports its total. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"

typedef struct item {
    char id[32];
    long quantity;
} item;

static int item_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata;
    if (!key) { /* the subsystem's own actor has no item */
        *state = NULL;
        return 0;
    }
    item *it = (item *)calloc(1, sizeof *it);
    if (!it)
        return -1;
    snprintf(it->id, sizeof it->id, "%.*s", (int)key_len, key);
    *state = it;
    return 0;
}

static void item_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int item_add(hy_ctx *ctx, const hy_msg *msg)
{
    item *it = (item *)hy_state(ctx);
    size_t len;
    const char *amount = (const char *)hy_msg_payload(msg, &len);
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)len, amount);
    it->quantity += atol(buf);
    return 0;
}

static int item_report(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    item *it = (item *)hy_state(ctx);
    printf("item %s: %ld\n", it->id, it->quantity);
    return 0;
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

int main(void)
{
    hy_kernel *k;
    if (check(hy_kernel_open(&k, NULL), "open") != 0)
        return 1;
    hy_route routes[] = {
        {.pattern = "item/{id:[0-9]+}/add", .handler = item_add, .key = "id"},
        {.pattern = "item/{id:[0-9]+}/report", .handler = item_report, .key = "id"},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 2,
                            .state_init = item_new, .state_free = item_free};
    int rc = check(hy_subsystem_register(k, "orders", &def), "register");

    /* Three items, each gets 1+2+...+10 = 55. */
    char path[64];
    for (int n = 1; rc == 0 && n <= 10; n++)
        for (int id = 1; rc == 0 && id <= 3; id++) {
            char amount[8];
            snprintf(path, sizeof path, "orders://item/%d/add", id);
            snprintf(amount, sizeof amount, "%d", n);
            rc = check(hy_send(k, path, amount, strlen(amount)), "send");
        }
    /* A path no route accepts is refused at send time. */
    if (rc == 0 && hy_send(k, "orders://item/abc/add", "1", 1) == HY_ENOROUTE)
        printf("orders://item/abc/add: %s\n", hy_strerror(HY_ENOROUTE));
    if (rc == 0)
        rc = check(hy_kernel_drain(k, 5000), "drain");
    /* Reports one at a time, so the output order is fixed. */
    for (int id = 1; rc == 0 && id <= 3; id++) {
        snprintf(path, sizeof path, "orders://item/%d/report", id);
        rc = check(hy_send(k, path, NULL, 0), "send");
        if (rc == 0)
            rc = check(hy_kernel_drain(k, 5000), "drain");
    }
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
