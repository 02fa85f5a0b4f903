/* timers: an order that expires unless it is paid.
 *
 * Placing an order ("shop://order/{id}/place") arms a timer with
 * hy_send_after: in 50 ms it sends "shop://order/{id}/expire" to the same
 * keyed actor. Paying cancels that timer with hy_timer_cancel, which says
 * whether it was still pending; if it was not, the order has expired
 * already and the payment is refused. The main thread paces the story so
 * the output is always the same: order 1 is paid in time, order 2 is not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hypha.h"

typedef struct order {
    uint64_t timer; /* the expiry timer, while the order is open */
    int state;      /* 0 open, 1 paid, 2 expired */
} order;

static int order_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(order));
    return *state ? 0 : -1;
}

static void order_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int on_place(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    order *o = (order *)hy_state(ctx);
    size_t len;
    const char *id = hy_actor_key(ctx, &len);
    char path[64];
    snprintf(path, sizeof path, "shop://order/%.*s/expire", (int)len, id);
    printf("order %.*s: placed, expires in 50 ms unless paid\n", (int)len, id);
    return hy_send_after(hy_ctx_kernel(ctx), path, NULL, 0, 50, &o->timer);
}

static int on_pay(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    order *o = (order *)hy_state(ctx);
    size_t len;
    const char *id = hy_actor_key(ctx, &len);
    /* 1: the timer was pending and now never fires; 0: it fired already */
    if (hy_timer_cancel(hy_ctx_kernel(ctx), o->timer) == 1) {
        o->state = 1;
        printf("order %.*s: paid, expiry cancelled\n", (int)len, id);
    } else {
        printf("order %.*s: payment refused, the order has expired\n", (int)len, id);
    }
    return 0;
}

static int on_expire(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    order *o = (order *)hy_state(ctx);
    size_t len;
    const char *id = hy_actor_key(ctx, &len);
    o->state = 2;
    printf("order %.*s: expired\n", (int)len, id);
    return 0;
}

/* Wait until the timers have fired `n` times in all. */
static void wait_fired(hy_kernel *k, uint64_t n)
{
    hy_timer_stats ts;
    for (int i = 0; i < 5000; i++) {
        hy_timer_stats_get(k, &ts);
        if (ts.fired >= n)
            break;
        usleep(1000);
    }
    hy_kernel_drain(k, 5000);
}

int main(void)
{
    hy_kernel *k;
    if (hy_kernel_open(&k, NULL) != 0)
        return 1;
    hy_route routes[] = {
        {.pattern = "order/{id}/place", .handler = on_place, .key = "id"},
        {.pattern = "order/{id}/pay", .handler = on_pay, .key = "id"},
        {.pattern = "order/{id}/expire", .handler = on_expire, .key = "id"},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 3, .state_init = order_new,
                            .state_free = order_free};
    if (hy_subsystem_register(k, "shop", &def) != 0)
        return 1;

    hy_send(k, "shop://order/1/place", NULL, 0);
    hy_kernel_drain(k, 5000);
    hy_send(k, "shop://order/2/place", NULL, 0);
    hy_kernel_drain(k, 5000);
    hy_send(k, "shop://order/1/pay", NULL, 0); /* in time */
    hy_kernel_drain(k, 5000);
    wait_fired(k, 1);                          /* order 2's timer */
    hy_send(k, "shop://order/2/pay", NULL, 0); /* too late */
    hy_kernel_drain(k, 5000);

    hy_timer_stats ts;
    hy_timer_stats_get(k, &ts);
    printf("timers: fired %llu, cancelled %llu, pending %llu\n", (unsigned long long)ts.fired,
           (unsigned long long)ts.cancelled, (unsigned long long)ts.pending);
    hy_kernel_close(k);
    return 0;
}
