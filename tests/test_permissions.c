/* Principals and scopes through the public API: a send whose principal lacks
 * a route's scope is refused with HY_EPERM before anything is queued or
 * journaled, whatever the way of sending; a handler's sends act as the
 * principal of the message it handles (unless its subsystem is trusted);
 * principals outlive their owner while their messages are in flight; a
 * journaled message keeps its principal's name across a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>

#include <cmocka.h>

#include "hypha.h"
#include "support.h"

/* ------------------------------------------------------------ fixtures */

/* What the handlers of a test saw. */
typedef struct seen {
    _Atomic int handled;
    _Atomic int relayed_ok;      /* relay handler: its own send returned 0 */
    _Atomic int relayed_eperm;   /* ... returned HY_EPERM */
    char principal[64];          /* the last handled message's principal */
} seen;

static int count_handler(hy_ctx *ctx, const hy_msg *msg)
{
    seen *s = (seen *)hy_route_udata(ctx);
    const char *p = hy_msg_principal(msg);
    snprintf(s->principal, sizeof s->principal, "%s", p ? p : "(trusted)");
    atomic_fetch_add(&s->handled, 1);
    return 0;
}

/* For subscriptions: their actors run beside the vault's, so they only count
 * (count_handler's principal is written by one actor at a time). */
static int subscriber_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    seen *s = (seen *)hy_route_udata(ctx);
    atomic_fetch_add(&s->handled, 1);
    return 0;
}

static int reply_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    count_handler(ctx, msg);
    return hy_reply(ctx, "ok", 2);
}

/* Forwards its message to the scoped route: the send acts as the principal
 * of the message being handled. */
static int relay_handler(hy_ctx *ctx, const hy_msg *msg)
{
    seen *s = (seen *)hy_route_udata(ctx);
    (void)msg;
    int rc = hy_send(hy_ctx_kernel(ctx), "vault://open", "x", 1);
    atomic_fetch_add(rc == 0 ? &s->relayed_ok : &s->relayed_eperm, 1);
    return 0;
}

/* "vault": open requires "vault:open"; peek has no scope. "relay": forwards
 * to vault://open; "trusted-relay" does the same from a trusted subsystem. */
static hy_kernel *open_vault(seen *s, const char *journal)
{
    hy_config cfg = {.workers = 2, .journal_path = journal};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_route vault[] = {
        {.pattern = "open", .handler = reply_handler, .udata = s, .scope = "vault:open"},
        {.pattern = "peek", .handler = reply_handler, .udata = s},
    };
    hy_subsystem_def vdef = {.routes = vault, .nroutes = 2};
    assert_int_equal(hy_subsystem_register(k, "vault", &vdef), 0);
    hy_route relay[] = {{.pattern = "go", .handler = relay_handler, .udata = s}};
    hy_subsystem_def rdef = {.routes = relay, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "relay", &rdef), 0);
    hy_subsystem_def tdef = {.routes = relay, .nroutes = 1, .trusted = 1};
    assert_int_equal(hy_subsystem_register(k, "trusted-relay", &tdef), 0);
    return k;
}

static uint64_t refused(hy_kernel *k, const char *sub)
{
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, sub, &ss), 0);
    return ss.refused;
}

/* ------------------------------------------------------------ the table */

enum who { TRUSTED, WITH_SCOPE, WITHOUT_SCOPE };
enum how { SEND, ASK, PUBLISH, BATCH, DURABLE, FROM_HANDLER };

static const char *const who_name[] = {"trusted", "with scope", "without scope"};
static const char *const how_name[] = {"send", "ask", "publish", "batch", "durable send",
                                       "send from a handler"};

static void on_durable(void *udata, int status)
{
    (void)udata;
    (void)status;
}

/* One way of sending to a scoped destination, as one principal (NULL: the
 * plain call, which from outside a handler acts as the trusted principal). */
static int send_one_way(hy_kernel *k, hy_principal *p, enum how how, seen *s)
{
    switch (how) {
    case SEND:
        return p ? hy_send_as(k, p, "vault://open", "x", 1) : hy_send(k, "vault://open", "x", 1);
    case ASK: {
        void *reply = NULL;
        int rc = p ? hy_ask_as(k, p, "vault://open", "x", 1, &reply, NULL, WAIT_MS)
                   : hy_ask(k, "vault://open", "x", 1, &reply, NULL, WAIT_MS);
        hy_free(reply);
        return rc;
    }
    case PUBLISH:
        return p ? hy_publish_as(k, p, "news://vault", "x", 1, NULL)
                 : hy_publish(k, "news://vault", "x", 1, NULL);
    case BATCH: {
        hy_send_item items[] = {{.path = "vault://peek", .payload = "x", .len = 1},
                                {.path = "vault://open", .payload = "x", .len = 1}};
        size_t accepted = 99;
        int rc = p ? hy_send_batch_as(k, p, items, 2, &accepted)
                   : hy_send_batch(k, items, 2, &accepted);
        /* the batch stops at the refused item: the first went through */
        assert_int_equal(accepted, rc == 0 ? 2 : 1);
        return rc;
    }
    case DURABLE:
        return p ? hy_send_durable_as(k, p, "ledger://entry", "x", 1, on_durable, NULL)
                 : hy_send_durable(k, "ledger://entry", "x", 1, on_durable, NULL);
    case FROM_HANDLER: {
        int before = atomic_load(&s->relayed_ok) + atomic_load(&s->relayed_eperm);
        int ok = atomic_load(&s->relayed_ok);
        int rc = p ? hy_send_as(k, p, "relay://go", NULL, 0) : hy_send(k, "relay://go", NULL, 0);
        assert_int_equal(rc, 0); /* the relay itself has no scope */
        assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
        assert_int_equal(atomic_load(&s->relayed_ok) + atomic_load(&s->relayed_eperm),
                         before + 1);
        return atomic_load(&s->relayed_ok) > ok ? 0 : HY_EPERM;
    }
    }
    return HY_EINVAL;
}

static int ledger_entry(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    return 0;
}

static void every_principal_and_way_gets_the_expected_code(void **state)
{
    (void)state;
    char dir[] = "/tmp/hypha-perm-XXXXXX";
    assert_non_null(mkdtemp(dir));
    seen s = {0};
    hy_kernel *k = open_vault(&s, dir);
    hy_route ledger[] = {{.pattern = "entry", .handler = ledger_entry}};
    hy_subsystem_def ldef = {.routes = ledger, .nroutes = 1, .persistent = 1,
                             .scope = "vault:open"};
    assert_int_equal(hy_subsystem_register(k, "ledger", &ldef), 0);
    assert_int_equal(hy_subscribe_scoped(k, "news://vault", "vault:open", subscriber_handler,
                                         &s, NULL),
                     0);
    const char *open_scope[] = {"vault:open", "misc"};
    const char *other_scope[] = {"misc"};
    hy_principal *with, *without;
    assert_int_equal(hy_principal_create(k, "opener", open_scope, 2, &with), 0);
    assert_int_equal(hy_principal_create(k, "visitor", other_scope, 1, &without), 0);
    hy_principal *as[] = {NULL, with, without};
    for (int who = TRUSTED; who <= WITHOUT_SCOPE; who++) {
        for (int how = SEND; how <= FROM_HANDLER; how++) {
            int want = who == WITHOUT_SCOPE ? HY_EPERM : 0;
            int got = send_one_way(k, as[who], (enum how)how, &s);
            if (got != want)
                fail_msg("%s, %s: got %s, want %s", who_name[who], how_name[how],
                         hy_err_name(got), hy_err_name(want));
            if (got == HY_EPERM && how != FROM_HANDLER)
                /* the detail names the route and the scope */
                assert_non_null(strstr(hy_errdetail(), "vault:open"));
        }
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    /* Refusals are counted where they happen: vault (send, ask, batch, the
     * relay's send), ledger (durable), kernel (the scoped subscription). */
    assert_int_equal(refused(k, "vault"), 4);
    assert_int_equal(refused(k, "ledger"), 1);
    assert_int_equal(refused(k, "kernel"), 1);
    hy_principal_destroy(with);
    hy_principal_destroy(without);
    hy_kernel_close(k);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ behaviours */

static void a_refused_send_queues_nothing(void **state)
{
    (void)state;
    seen s = {0};
    hy_kernel *k = open_vault(&s, NULL);
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "nobody", NULL, 0, &p), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(hy_send_as(k, p, "vault://open", "x", 1), HY_EPERM);
    assert_non_null(strstr(hy_errdetail(), "principal 'nobody' lacks scope 'vault:open'"));
    assert_non_null(strstr(hy_errdetail(), "route 'open' of 'vault'"));
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "vault", &ss), 0);
    assert_int_equal(ss.sent, 0);
    assert_int_equal(ss.refused, 10);
    assert_int_equal(atomic_load(&s.handled), 0);
    hy_principal_destroy(p);
    hy_kernel_close(k);
}

static void a_route_without_scope_takes_anyone(void **state)
{
    (void)state;
    seen s = {0};
    hy_kernel *k = open_vault(&s, NULL);
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "nobody", NULL, 0, &p), 0);
    assert_int_equal(hy_send_as(k, p, "vault://peek", "x", 1), 0);
    assert_int_equal(hy_send(k, "vault://peek", "x", 1), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&s.handled), 2);
    assert_int_equal(refused(k, "vault"), 0);
    hy_principal_destroy(p);
    hy_kernel_close(k);
}

static void a_handler_cannot_lend_its_reach(void **state)
{
    (void)state;
    seen s = {0};
    hy_kernel *k = open_vault(&s, NULL);
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "visitor", NULL, 0, &p), 0);
    /* the visitor may reach the relay, but the relay's send acts as the
     * visitor, who lacks vault:open */
    assert_int_equal(hy_send_as(k, p, "relay://go", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&s.relayed_eperm), 1);
    assert_int_equal(atomic_load(&s.handled), 0);
    /* a trusted subsystem's handler acts as itself */
    assert_int_equal(hy_send_as(k, p, "trusted-relay://go", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&s.relayed_ok), 1);
    assert_int_equal(atomic_load(&s.handled), 1);
    assert_string_equal(s.principal, "(trusted)");
    hy_principal_destroy(p);
    hy_kernel_close(k);
}

static void a_handler_reads_its_messages_principal(void **state)
{
    (void)state;
    seen s = {0};
    hy_kernel *k = open_vault(&s, NULL);
    const char *scopes[] = {"vault:open"};
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "billing", scopes, 1, &p), 0);
    assert_int_equal(hy_send_as(k, p, "vault://open", "x", 1), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_string_equal(s.principal, "billing");
    /* the relay forwards as billing, who holds the scope */
    assert_int_equal(hy_send_as(k, p, "relay://go", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&s.relayed_ok), 1);
    assert_string_equal(s.principal, "billing");
    hy_principal_destroy(p);
    hy_kernel_close(k);
}

static void a_subsystem_scope_covers_routes_that_name_none(void **state)
{
    (void)state;
    seen s = {0};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, NULL), 0);
    hy_route routes[] = {
        {.pattern = "a", .handler = count_handler, .udata = &s},
        {.pattern = "b", .handler = count_handler, .udata = &s, .scope = "b:own"},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 2, .scope = "sub:all"};
    assert_int_equal(hy_subsystem_register(k, "scoped", &def), 0);
    const char *all[] = {"sub:all"};
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "p", all, 1, &p), 0);
    assert_int_equal(hy_send_as(k, p, "scoped://a", NULL, 0), 0);
    /* a route's own scope replaces the subsystem's */
    assert_int_equal(hy_send_as(k, p, "scoped://b", NULL, 0), HY_EPERM);
    assert_non_null(strstr(hy_errdetail(), "b:own"));
    hy_principal_destroy(p);
    hy_kernel_close(k);
}

static void bad_principals_and_scopes_are_refused(void **state)
{
    (void)state;
    hy_kernel *k, *other;
    assert_int_equal(hy_kernel_open(&k, NULL), 0);
    assert_int_equal(hy_kernel_open(&other, NULL), 0);
    hy_principal *p = NULL;
    const char *empty[] = {""};
    assert_int_equal(hy_principal_create(k, "", NULL, 0, &p), HY_EINVAL);
    assert_int_equal(hy_principal_create(k, NULL, NULL, 0, &p), HY_EINVAL);
    assert_int_equal(hy_principal_create(NULL, "a", NULL, 0, &p), HY_EINVAL);
    assert_int_equal(hy_principal_create(k, "a", NULL, 1, &p), HY_EINVAL);
    assert_int_equal(hy_principal_create(k, "a", empty, 1, &p), HY_EINVAL);
    assert_null(p);
    hy_route r = {.pattern = "x", .handler = count_handler, .scope = ""};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "bad", &def), HY_EINVAL);
    assert_int_equal(hy_subscribe_scoped(k, "a://b", "", count_handler, NULL, NULL), HY_EINVAL);
    /* a principal of another kernel */
    hy_route ok = {.pattern = "x", .handler = count_handler};
    hy_subsystem_def okdef = {.routes = &ok, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "ok", &okdef), 0);
    assert_int_equal(hy_principal_create(other, "stranger", NULL, 0, &p), 0);
    assert_int_equal(hy_send_as(k, p, "ok://x", NULL, 0), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "another kernel"));
    hy_principal_destroy(p);
    hy_principal_destroy(NULL);
    hy_kernel_close(other);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ lifetimes */

static int slow_handler(hy_ctx *ctx, const hy_msg *msg)
{
    gate *g = (gate *)hy_route_udata(ctx);
    gate_pass(g);
    /* the principal is still readable after its owner destroyed it */
    const char *name = hy_msg_principal(msg);
    return name && strcmp(name, "ephemeral") == 0 ? 0 : -1;
}

static void a_destroyed_principal_lives_while_its_messages_do(void **state)
{
    (void)state;
    hy_kernel *k;
    hy_config cfg = {.workers = 1};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    gate g = {0};
    hy_route r = {.pattern = "x", .handler = slow_handler, .udata = &g, .scope = "s"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "slow", &def), 0);
    const char *scopes[] = {"s"};
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "ephemeral", scopes, 1, &p), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(hy_send_as(k, p, "slow://x", NULL, 0), 0);
    assert_true(wait_for(&g.entered, 1));
    hy_principal_destroy(p); /* 100 messages still hold it */
    gate_open(&g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.handled, 100);
    assert_int_equal(st.failed, 0);
    hy_kernel_close(k);
}

static void messages_left_at_close_drop_their_principal(void **state)
{
    (void)state;
    hy_kernel *k;
    hy_config cfg = {.workers = 1};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    gate g = {0};
    hy_route r = {.pattern = "x", .handler = slow_handler, .udata = &g};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "slow", &def), 0);
    hy_principal *p;
    assert_int_equal(hy_principal_create(k, "ephemeral", NULL, 0, &p), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(hy_send_as(k, p, "slow://x", NULL, 0), 0);
    assert_true(wait_for(&g.entered, 1));
    gate_open(&g);
    /* close with messages queued, the principal destroyed after: ASan and
     * LeakSanitizer see either a use after free or a leak if a count is off */
    hy_kernel_close(k);
    hy_principal_destroy(p);
}

#define CHURN_THREADS 8
#ifdef SANITIZED
#define CHURN_ROUNDS 200
#else
#define CHURN_ROUNDS 2000
#endif

typedef struct churn {
    hy_kernel *k;
    _Atomic int *sent;
    int index;
} churn;

static void *churn_thread(void *arg)
{
    churn *c = (churn *)arg;
    const char *scopes[] = {"s", "t"};
    char name[32];
    int rounds = CHURN_ROUNDS;
    for (int i = 0; i < rounds; i++) {
        snprintf(name, sizeof name, "p%d-%d", c->index, i);
        hy_principal *p;
        if (hy_principal_create(c->k, name, scopes, (size_t)(i % 2) + 1, &p) != 0)
            return (void *)1;
        /* with scope "s" only every other principal may reach x */
        for (int j = 0; j < 4; j++)
            if (hy_send_as(c->k, p, "busy://x", NULL, 0) == 0)
                atomic_fetch_add(c->sent, 1);
        hy_principal_destroy(p);
    }
    return NULL;
}

static int principal_reading_handler(hy_ctx *ctx, const hy_msg *msg)
{
    _Atomic int *handled = (_Atomic int *)hy_route_udata(ctx);
    const char *name = hy_msg_principal(msg);
    if (!name || name[0] != 'p')
        return -1;
    atomic_fetch_add(handled, 1);
    return 0;
}

static void principals_made_and_destroyed_by_many_threads_while_sending(void **state)
{
    (void)state;
    hy_kernel *k;
    hy_config cfg = {.workers = 2};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    _Atomic int handled = 0, sent = 0;
    hy_route r = {.pattern = "x", .handler = principal_reading_handler, .udata = &handled,
                  .scope = "t"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "busy", &def), 0);
    pthread_t th[CHURN_THREADS];
    churn c[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++) {
        c[i] = (churn){k, &sent, i};
        assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &c[i]), 0);
    }
    for (int i = 0; i < CHURN_THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    int rounds = CHURN_ROUNDS;
    /* half the principals hold "t": 4 sends each */
    assert_int_equal(atomic_load(&sent), CHURN_THREADS * rounds / 2 * 4);
    assert_int_equal(atomic_load(&handled), atomic_load(&sent));
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "busy", &ss), 0);
    assert_int_equal(ss.refused, (uint64_t)CHURN_THREADS * rounds / 2 * 4);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ the journal */

/* The principals of replayed entries, in replay order (one actor: one at a
 * time). */
static char replayed_principal[4][64];
static _Atomic int replays;

static int remember_principal(hy_ctx *ctx, const hy_msg *msg)
{
    int i = atomic_load(&replays);
    if (hy_is_replaying(ctx) && i < 4) {
        const char *p = hy_msg_principal(msg);
        snprintf(replayed_principal[i], sizeof replayed_principal[i], "%s",
                 p ? p : "(trusted)");
        atomic_fetch_add(&replays, 1);
    }
    return 0;
}

static void a_journaled_message_keeps_its_principal_across_a_restart(void **state)
{
    (void)state;
    char dir[] = "/tmp/hypha-perm-XXXXXX";
    assert_non_null(mkdtemp(dir));
    hy_route r = {.pattern = "entry", .handler = remember_principal, .scope = "ledger:write"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .persistent = 1};
    hy_config cfg = {.workers = 2, .journal_path = dir};
    const char *scopes[] = {"ledger:write"};
    for (int run = 0; run < 2; run++) {
        hy_kernel *k;
        assert_int_equal(hy_kernel_open(&k, &cfg), 0);
        /* the second run replays run one's entry at registration */
        assert_int_equal(hy_subsystem_register(k, "ledger", &def), 0);
        if (run == 0) {
            hy_principal *p;
            assert_int_equal(hy_principal_create(k, "accountant", scopes, 1, &p), 0);
            assert_int_equal(hy_send_as(k, p, "ledger://entry", "1", 1), 0);
            assert_int_equal(hy_send(k, "ledger://entry", "2", 1), 0);
            hy_principal_destroy(p);
            assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
            assert_int_equal(atomic_load(&replays), 0);
        }
        hy_kernel_close(k);
    }
    assert_int_equal(atomic_load(&replays), 2);
    assert_string_equal(replayed_principal[0], "accountant");
    assert_string_equal(replayed_principal[1], "(trusted)");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_principal_and_way_gets_the_expected_code),
        cmocka_unit_test(a_refused_send_queues_nothing),
        cmocka_unit_test(a_route_without_scope_takes_anyone),
        cmocka_unit_test(a_handler_cannot_lend_its_reach),
        cmocka_unit_test(a_handler_reads_its_messages_principal),
        cmocka_unit_test(a_subsystem_scope_covers_routes_that_name_none),
        cmocka_unit_test(bad_principals_and_scopes_are_refused),
        cmocka_unit_test(a_destroyed_principal_lives_while_its_messages_do),
        cmocka_unit_test(messages_left_at_close_drop_their_principal),
        cmocka_unit_test(principals_made_and_destroyed_by_many_threads_while_sending),
        cmocka_unit_test(a_journaled_message_keeps_its_principal_across_a_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
