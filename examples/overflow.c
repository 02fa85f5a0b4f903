/* overflow: bounded mailboxes and what a send into a full one does.
 *
 * Each policy gets its own kernel and a subsystem whose actor's mailbox holds
 * 3 messages. The first message, "hold", parks the actor's handler at a gate
 * that main opens later; once the handler is in it the mailbox is empty, so
 * the five messages sent next meet a mailbox with room for exactly three,
 * whatever the timing. Every message not handled is a dead letter: reported to
 * hy_config.dead_letter and counted by reason in hy_stats.dead.
 *
 * In hypha.h: hy_overflow, hy_subsystem_def.mailbox_capacity/overflow/
 * block_timeout_ms, hy_config.dead_letter, hy_kernel_stats, hy_dead_reason_str. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hypha.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int started, opened; /* the gate, under lock */
static char handled[64];    /* written by the one actor, read after a drain */
static char dead[256];      /* under lock: senders and workers both report */

static int box(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    if (len == 4 && memcmp(p, "hold", 4) == 0) {
        pthread_mutex_lock(&lock);
        started = 1;
        pthread_cond_broadcast(&cond);
        while (!opened)
            pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        return 0;
    }
    size_t used = strlen(handled);
    snprintf(handled + used, sizeof handled - used, " %.*s", (int)len, p);
    return 0;
}

static void open_gate(void)
{
    pthread_mutex_lock(&lock);
    opened = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Opens the gate a little later, while main is blocked in a send. */
static void *open_gate_soon(void *arg)
{
    (void)arg;
    usleep(20 * 1000);
    open_gate();
    return NULL;
}

/* Runs on whichever thread gave up on the message: keep it short. */
static void on_dead(void *udata, const char *path, size_t path_len, const void *payload,
                    size_t len, hy_dead_reason reason)
{
    (void)udata;
    (void)path;
    (void)path_len;
    pthread_mutex_lock(&lock);
    size_t used = strlen(dead);
    snprintf(dead + used, sizeof dead - used, "    dead letter %.*s: %s\n", (int)len,
             (const char *)payload, hy_dead_reason_str(reason));
    pthread_mutex_unlock(&lock);
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

typedef struct policy {
    const char *name;
    hy_overflow overflow;
    int block_timeout_ms; /* only BLOCK waits */
    int open_meanwhile;   /* open the gate from another thread during the sends */
} policy;

static int run(const policy *pol)
{
    started = opened = 0; /* no kernel runs between two policies */
    handled[0] = dead[0] = '\0';
    hy_config cfg = {.dead_letter = on_dead};
    hy_kernel *k;
    if (check(hy_kernel_open(&k, &cfg), "open") != 0)
        return 1;
    hy_route routes[] = {{.pattern = "m", .handler = box}};
    hy_subsystem_def def = {.routes = routes, .nroutes = 1, .mailbox_capacity = 3,
                            .overflow = pol->overflow,
                            .block_timeout_ms = pol->block_timeout_ms};
    int rc = check(hy_subsystem_register(k, "box", &def), "register");
    if (rc == 0)
        rc = check(hy_send(k, "box://m", "hold", 4), "send hold");
    /* Wait until the handler holds "hold": it no longer takes mailbox room. */
    pthread_mutex_lock(&lock);
    while (rc == 0 && !started)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    pthread_t opener;
    if (rc == 0 && pol->open_meanwhile && pthread_create(&opener, NULL, open_gate_soon, NULL)) {
        fprintf(stderr, "pthread_create failed\n");
        rc = 1;
    }
    int accepted = 0, refused = 0;
    for (int i = 1; rc == 0 && i <= 5; i++) {
        char payload[2] = {(char)('0' + i), '\0'};
        int err = hy_send(k, "box://m", payload, 1);
        if (err == 0)
            accepted++;
        else if (err == HY_EFULL) /* FAIL at once, BLOCK after its timeout */
            refused++;
        else
            rc = check(err, "send");
    }
    if (rc == 0 && pol->open_meanwhile)
        pthread_join(opener, NULL);
    open_gate();
    if (rc == 0)
        rc = check(hy_kernel_drain(k, 5000), "drain");
    hy_stats st;
    if (rc == 0)
        rc = check(hy_kernel_stats(k, &st), "stats");
    if (rc == 0) {
        printf("%s: sent 1..5, accepted %d, %s %d\n  handled%s\n%s", pol->name, accepted,
               hy_err_name(HY_EFULL), refused, handled, dead);
        /* sent counts accepted messages only, "hold" too: sent == handled +
         * DROPPED here; FULL counts the refusals. */
        printf("  stats: sent %llu, handled %llu, dead FULL %llu, DROPPED %llu\n",
               (unsigned long long)st.sent, (unsigned long long)st.handled,
               (unsigned long long)st.dead[HY_DEAD_FULL],
               (unsigned long long)st.dead[HY_DEAD_DROPPED]);
    }
    hy_kernel_close(k);
    return rc;
}

int main(void)
{
    static const policy policies[] = {
        /* 4 and 5 are refused at once. */
        {"FAIL", HY_OVERFLOW_FAIL, 0, 0},
        /* 4 and 5 each wait 50 ms for room that never comes, then are refused. */
        {"BLOCK, 50 ms, gate shut", HY_OVERFLOW_BLOCK, 50, 0},
        /* 4 waits until the handler makes room; the timeout is only a bound. */
        {"BLOCK, 5 s, gate opened meanwhile", HY_OVERFLOW_BLOCK, 5000, 1},
        /* Every send succeeds; 1 and 2 are dropped when the worker reaches
         * them, so a stalled actor's mailbox holds all five until then. */
        {"DROP_OLDEST", HY_OVERFLOW_DROP_OLDEST, 0, 0},
        /* Every send succeeds; 4 and 5 are dropped at once. */
        {"DROP_NEWEST", HY_OVERFLOW_DROP_NEWEST, 0, 0},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof policies / sizeof policies[0]; i++)
        rc = run(&policies[i]);
    return rc == 0 ? 0 : 1;
}
