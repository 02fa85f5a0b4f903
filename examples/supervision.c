/* supervision: what a handler's failure does to its actor.
 *
 * Four subsystems share one handler, which counts the messages its actor has
 * handled (the state) and fails on the payload "fail". They differ only in
 * hy_subsystem_def.strategy:
 *   resume    the state is kept, the next message goes on from it;
 *   restart   the state is freed and made anew by state_init; more than
 *             max_restarts within restart_window_ms stops the actor;
 *   stop      the actor is stopped: later sends return HY_ESTOPPED;
 *   escalate  hy_config.escalate is told (subsystem, key, error), then on.
 * Look at hy_supervision, hy_subsystem_def.strategy/max_restarts/
 * restart_window_ms, hy_config.escalate and hy_stats.restarts/stopped.
 * Every send is followed by a drain, so the handlers' lines come in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"

static int count_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(int)); /* the subsystem's actor gets one too */
    return *state ? 0 : HY_ENOMEM;
}

static void count_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int work(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    if (len == 4 && memcmp(p, "fail", 4) == 0) {
        printf("  %-4.*s -> fails\n", (int)len, p);
        return HY_EINVAL; /* any negative code is a failure */
    }
    int *handled = (int *)hy_state(ctx);
    printf("  %-4.*s -> handled, count %d\n", (int)len, p, ++*handled);
    return 0;
}

/* Called on the worker whose handler failed; the drain after the send waits
 * for it, so printing here keeps the order. */
static void on_escalate(void *udata, const char *subsystem, const char *key, size_t key_len,
                        int err)
{
    (void)udata;
    printf("  escalated: subsystem %s, key %.*s, %s (%s)\n", subsystem, (int)key_len, key,
           hy_err_name(err), hy_strerror(err));
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

/* Sends each payload to path and waits for it; an HY_ESTOPPED refusal is
 * expected once a stop happened, and printed. */
static int run(hy_kernel *k, const char *path, const char *const *payloads, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = hy_send(k, path, payloads[i], strlen(payloads[i]));
        if (rc == HY_ESTOPPED) {
            printf("  %-4s -> refused: %s\n", payloads[i], hy_strerror(rc));
            continue;
        }
        if (check(rc, "send") != 0 || check(hy_kernel_drain(k, 5000), "drain") != 0)
            return -1;
    }
    return 0;
}

int main(void)
{
    hy_config cfg = {.workers = 2, .escalate = on_escalate};
    hy_kernel *k;
    if (check(hy_kernel_open(&k, &cfg), "open") != 0)
        return 1;
    /* Keyed by account: each account is its own actor with its own count. */
    hy_route routes[] = {{.pattern = "acct/{id}", .handler = work, .key = "id"}};
    const struct {
        const char *name;
        hy_supervision strategy;
    } subs[] = {{"resume", HY_SUPERVISE_RESUME}, {"restart", HY_SUPERVISE_RESTART},
                {"stop", HY_SUPERVISE_STOP}, {"escalate", HY_SUPERVISE_ESCALATE}};
    /* ok, ok, fail, ok, fail, ok, fail, ok */
    const char *const msgs[] = {"a", "b", "fail", "c", "fail", "d", "fail", "e"};
    int rc = 0;
    for (int i = 0; rc == 0 && i < 4; i++) {
        /* restart: two restarts are allowed per minute; the third failure
         * within it stops the actor instead (a restart storm is cut off). */
        hy_subsystem_def def = {.routes = routes, .nroutes = 1,
                                .state_init = count_new, .state_free = count_free,
                                .strategy = subs[i].strategy,
                                .max_restarts = 2, .restart_window_ms = 60000};
        rc = check(hy_subsystem_register(k, subs[i].name, &def), "register");
        char path[64];
        snprintf(path, sizeof path, "%s://acct/7", subs[i].name);
        if (rc == 0) {
            printf("%s:\n", subs[i].name);
            rc = run(k, path, msgs, 8);
        }
    }

    hy_stats st;
    if (rc == 0 && check(hy_kernel_stats(k, &st), "stats") == 0)
        printf("failed %llu (dead letters %llu), restarts %llu, actors stopped %llu\n",
               (unsigned long long)st.failed, (unsigned long long)st.dead[HY_DEAD_FAILED],
               (unsigned long long)st.restarts, (unsigned long long)st.stopped);
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
