/* keyed: one actor per key, each with its own state.
 *
 * "bank://account/{id}/deposit" is keyed by id: the first message to an id
 * makes its actor, and state_init gives it a fresh account. Deposits to one
 * account are handled one at a time, so its handler updates the state without
 * a lock; different accounts run in parallel. The balances are read back by
 * asking each account on a second route keyed by the same id, which replies
 * with its total: the reply comes from the actor that owns the state, so
 * nothing is shared between threads.
 *
 * In hypha.h: hy_route.key, hy_subsystem_def.state_init/state_free, hy_state,
 * hy_actor_key, hy_ask, hy_reply, hy_subsystem_stats_get. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"

typedef struct account {
    long total;
    int deposits;
} account;

static int account_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata;
    (void)key_len;
    /* Called for the subsystem's own actor too (key NULL): it has no account. */
    *state = key ? calloc(1, sizeof(account)) : NULL;
    return key && !*state ? HY_ENOMEM : 0; /* non-zero refuses the actor */
}

static void account_free(void *udata, void *state)
{
    (void)udata;
    free(state); /* every account, at hy_kernel_close */
}

static int deposit(hy_ctx *ctx, const hy_msg *msg)
{
    account *a = (account *)hy_state(ctx);
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)len, p); /* the payload has no NUL */
    a->total += atol(buf);
    a->deposits++;
    return 0;
}

static int balance(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    const account *a = (const account *)hy_state(ctx);
    size_t key_len;
    const char *key = hy_actor_key(ctx, &key_len); /* the id, not NUL-terminated */
    char buf[96];
    int n = snprintf(buf, sizeof buf, "%.*s: %ld in %d deposits", (int)key_len, key,
                     a->total, a->deposits);
    return hy_reply(ctx, buf, (size_t)n);
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
        {.pattern = "account/{id}/deposit", .handler = deposit, .key = "id"},
        {.pattern = "account/{id}/balance", .handler = balance, .key = "id"},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 2,
                            .state_init = account_new, .state_free = account_free};
    int rc = check(hy_subsystem_register(k, "bank", &def), "register");

    /* Round n deposits n to alice, 2n to bob and 3n to carol, interleaved. */
    static const char *const ids[] = {"alice", "bob", "carol"};
    char path[64], amount[16];
    for (int n = 1; rc == 0 && n <= 10; n++)
        for (int i = 0; rc == 0 && i < 3; i++) {
            snprintf(path, sizeof path, "bank://account/%s/deposit", ids[i]);
            int len = snprintf(amount, sizeof amount, "%d", n * (i + 1));
            rc = check(hy_send(k, path, amount, (size_t)len), "send");
        }

    /* No drain needed first: an ask queues behind the deposits already in
     * that account's mailbox, so its answer counts them all.
     * Ask one account at a time, so the output order is fixed. "dave" never
     * got a deposit: asking is a message too, so it makes his actor, empty. */
    static const char *const asked[] = {"alice", "bob", "carol", "dave"};
    for (int i = 0; rc == 0 && i < 4; i++) {
        void *reply = NULL;
        size_t reply_len = 0;
        snprintf(path, sizeof path, "bank://account/%s/balance", asked[i]);
        rc = check(hy_ask(k, path, NULL, 0, &reply, &reply_len, 5000), "ask");
        if (rc == 0)
            printf("%.*s\n", (int)reply_len, (const char *)reply);
        hy_free(reply); /* the reply is a malloc'd copy; NULL is fine */
    }

    /* hy_ask returns once the reply is made, which may be before the handler
     * has returned and been counted: drain again for exact figures. */
    hy_subsystem_stats st;
    if (rc == 0)
        rc = check(hy_kernel_drain(k, 5000), "drain");
    if (rc == 0)
        rc = check(hy_subsystem_stats_get(k, "bank", &st), "stats");
    if (rc == 0)
        printf("handled %llu, actors %llu (the subsystem's own and %llu accounts)\n",
               (unsigned long long)st.handled, (unsigned long long)st.actors,
               (unsigned long long)st.activations);
    hy_kernel_close(k); /* frees each account through account_free */
    return rc == 0 ? 0 : 1;
}
