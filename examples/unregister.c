/* unregister: take a subsystem away while the kernel runs, and register
 * another under its name. What it had accepted is handled first; later sends
 * get HY_ENOROUTE; its actors and their state are freed in the background. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hypha.h"

static int count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    int *n = (int *)hy_state(ctx); /* one counter per key */
    ++*n;
    return 0;
}

static int counter_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(int));
    return *state ? 0 : -1;
}

/* States freed, and the counts they held: state_free runs on the kernel's
 * background thread, hence the lock. */
static pthread_mutex_t freed_lock = PTHREAD_MUTEX_INITIALIZER;
static int freed, freed_counts;

static void counter_free(void *udata, void *state)
{
    (void)udata;
    pthread_mutex_lock(&freed_lock);
    freed++;
    freed_counts += *(int *)state;
    pthread_mutex_unlock(&freed_lock);
    free(state);
}

static int greet(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    printf("the new jobs subsystem got a message\n");
    return 0;
}

int main(void)
{
    hy_kernel *k;
    hy_config cfg = {.workers = 2};
    if (hy_kernel_open(&k, &cfg) != 0)
        return 1;
    hy_route routes[] = {{.pattern = "count/{id}", .handler = count, .key = "id"}};
    hy_subsystem_def def = {.routes = routes, .nroutes = 1, .state_init = counter_init,
                            .state_free = counter_free};
    int rc = hy_subsystem_register(k, "jobs", &def);
    for (int i = 0; rc == 0 && i < 5; i++)
        rc = hy_send(k, i % 2 ? "jobs://count/a" : "jobs://count/b", NULL, 0);
    /* Up to 5 s for what was accepted; HY_ETIMEDOUT would mean the rest were
     * dead letters, HY_EBUSY that a handler still ran. */
    if (rc == 0)
        rc = hy_subsystem_unregister(k, "jobs", 5000);
    printf("unregister: %s\n", hy_err_name(rc));
    printf("send after: %s\n", hy_err_name(hy_send(k, "jobs://count/a", NULL, 0)));

    /* The name is free at once. */
    hy_route groutes[] = {{.pattern = "hello", .handler = greet}};
    hy_subsystem_def gdef = {.routes = groutes, .nroutes = 1};
    rc = hy_subsystem_register(k, "jobs", &gdef);
    if (rc == 0)
        rc = hy_send(k, "jobs://hello", NULL, 0);
    if (rc == 0)
        rc = hy_kernel_drain(k, 5000);

    /* The old subsystem is freed in the background: wait for the count. */
    hy_stats st = {0};
    for (int i = 0; i < 5000 && rc == 0; i++) {
        hy_kernel_stats(k, &st);
        if (st.subsystems == 1)
            break;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    /* Three states: keys a and b, and the subsystem's own actor's. */
    printf("subsystems: %llu, messages handled: %llu\n", (unsigned long long)st.subsystems,
           (unsigned long long)st.handled);
    pthread_mutex_lock(&freed_lock);
    printf("states freed: %d, holding %d counts\n", freed, freed_counts);
    pthread_mutex_unlock(&freed_lock);
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
