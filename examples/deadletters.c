/* deadletters: every message that is not handled, and why.
 *
 * hy_config.dead_letter is an observer called once per dead letter with its
 * path, payload and reason; hy_kernel_stats counts them by reason whether the
 * observer is set or not. This program makes one dead letter of each reason it
 * can make on purpose (all but HY_DEAD_JOURNAL, which takes a failing disk),
 * then prints what the observer saw and the counts.
 * Look at hy_dead_reason, hy_dead_letter_fn, hy_config.dead_letter,
 * hy_dead_reason_str, hy_stats.dead, and hy_overflow for the mailbox cases.
 *
 * To fill a mailbox on purpose, the "slow" handlers wait at a gate the main
 * thread opens: a message is taken out of its mailbox when its handler starts,
 * so with room for one, one running and one queued make the mailbox full. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include "hypha.h"

static sem_t started, go; /* handler -> main: I run; main -> handler: go on */

static void wait_sem(sem_t *s)
{
    while (sem_wait(s) != 0 && errno == EINTR)
        ;
}

/* What the observer saw, kept in arrival order (it runs on workers and on
 * senders, hence the lock; each step below finishes before the next begins,
 * so the order is fixed). */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[16][128];
static int nseen;

static void on_dead(void *udata, const char *path, size_t path_len, const void *payload,
                    size_t len, hy_dead_reason reason)
{
    (void)udata;
    pthread_mutex_lock(&seen_lock);
    if (nseen < 16)
        snprintf(seen[nseen++], sizeof seen[0], "%-22.*s \"%.*s\": %s", (int)path_len, path,
                 (int)len, (const char *)payload, hy_dead_reason_str(reason));
    pthread_mutex_unlock(&seen_lock);
}

static int order(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    return len == 3 && memcmp(p, "bad", 3) == 0 ? HY_EINVAL : 0;
}

static int slow(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    sem_post(&started);
    wait_sem(&go);
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    return len == 4 && memcmp(p, "fail", 4) == 0 ? HY_EINVAL : 0;
}

static int slow_ask(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    wait_sem(&go);
    return hy_reply(ctx, "receipt", 7); /* 0 even though nobody waits any more */
}

static int try_send(hy_kernel *k, const char *path, const char *payload)
{
    int rc = hy_send(k, path, payload, strlen(payload));
    printf("send %-16s %-6s -> %s\n", path, payload, rc ? hy_err_name(rc) : "ok");
    return rc;
}

static int drain(hy_kernel *k)
{
    int rc = hy_kernel_drain(k, 5000);
    if (rc != 0)
        fprintf(stderr, "drain: %s %s\n", hy_strerror(rc), hy_errdetail());
    while (sem_trywait(&started) == 0) /* forget the later handlers' signals */
        ;
    return rc;
}

/* One running (held at the gate), one queued, one more: the third does not fit. */
static int overfill(hy_kernel *k, const char *path, int want)
{
    if (try_send(k, path, "one") != 0)
        return -1;
    wait_sem(&started);
    if (try_send(k, path, "two") != 0 || try_send(k, path, "three") != want)
        return -1;
    sem_post(&go);
    sem_post(&go);
    return drain(k);
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

int main(void)
{
    sem_init(&started, 0, 0);
    sem_init(&go, 0, 0);
    hy_config cfg = {.workers = 2, .dead_letter = on_dead};
    hy_kernel *k;
    if (check(hy_kernel_open(&k, &cfg), "open") != 0)
        return 1;
    hy_route shop_routes[] = {{.pattern = "order/{id}", .handler = order}};
    hy_route slow_routes[] = {{.pattern = "job", .handler = slow},
                              {.pattern = "ask", .handler = slow_ask}};
    hy_subsystem_def shop = {.routes = shop_routes, .nroutes = 1};
    hy_subsystem_def full = {.routes = slow_routes, .nroutes = 2, .mailbox_capacity = 1,
                             .overflow = HY_OVERFLOW_FAIL};
    hy_subsystem_def lossy = {.routes = slow_routes, .nroutes = 1, .mailbox_capacity = 1,
                              .overflow = HY_OVERFLOW_DROP_NEWEST};
    hy_subsystem_def fragile = {.routes = slow_routes, .nroutes = 1,
                                .strategy = HY_SUPERVISE_STOP};
    int rc = check(hy_subsystem_register(k, "shop", &shop), "register shop");
    if (rc == 0)
        rc = check(hy_subsystem_register(k, "full", &full), "register full");
    if (rc == 0)
        rc = check(hy_subsystem_register(k, "lossy", &lossy), "register lossy");
    if (rc == 0)
        rc = check(hy_subsystem_register(k, "fragile", &fragile), "register fragile");

    /* NOROUTE: refused at send; FAILED: accepted, its handler fails. */
    if (rc == 0 && (try_send(k, "shop://nowhere", "x") != HY_ENOROUTE ||
                    try_send(k, "shop://order/1", "bad") != 0 || drain(k) != 0))
        rc = -1;
    /* FULL: the FAIL policy refuses the third; DROP_NEWEST takes it and drops it. */
    if (rc == 0 && (overfill(k, "full://job", HY_EFULL) != 0 ||
                    overfill(k, "lossy://job", 0) != 0))
        rc = -1;
    /* STOPPED: "queued" waits behind a message that fails under the STOP
     * strategy; a send after the stop is refused (an error, not a dead letter). */
    if (rc == 0 && try_send(k, "fragile://job", "fail") != 0)
        rc = -1;
    if (rc == 0) {
        wait_sem(&started);
        if (try_send(k, "fragile://job", "queued") != 0)
            rc = -1;
        sem_post(&go);
        if (rc == 0 && (drain(k) != 0 || try_send(k, "fragile://job", "later") != HY_ESTOPPED))
            rc = -1;
    }
    /* LATE_REPLY: the asker gives up before the handler may reply. */
    if (rc == 0) {
        void *reply = NULL;
        size_t reply_len;
        int ask = hy_ask(k, "full://ask", "q", 1, &reply, &reply_len, 20);
        printf("ask  %-16s %-6s -> %s\n", "full://ask", "q", ask ? hy_err_name(ask) : "ok");
        hy_free(reply);
        sem_post(&go);
        if (ask != HY_ETIMEDOUT || drain(k) != 0)
            rc = -1;
    }

    printf("the observer saw:\n");
    for (int i = 0; i < nseen; i++)
        printf("  %s\n", seen[i]);
    hy_stats st;
    if (rc == 0 && check(hy_kernel_stats(k, &st), "stats") == 0) {
        printf("counts by reason:\n");
        for (int r = 0; r < HY_DEAD__COUNT; r++)
            printf("  %llu  %s\n", (unsigned long long)st.dead[r], hy_dead_reason_str(r));
        /* The accepted ones add up: sent = handled + FAILED + DROPPED + STOPPED + JOURNAL. */
        printf("sent %llu = handled %llu + %llu dead after acceptance\n",
               (unsigned long long)st.sent, (unsigned long long)st.handled,
               (unsigned long long)(st.dead[HY_DEAD_FAILED] + st.dead[HY_DEAD_DROPPED] +
                                    st.dead[HY_DEAD_STOPPED] + st.dead[HY_DEAD_JOURNAL]));
    }
    hy_kernel_close(k);
    sem_destroy(&started);
    sem_destroy(&go);
    return rc == 0 ? 0 : 1;
}
