/* The kernel through its public API: lifecycle, registration, sending, batching,
 * ordering, every send-time error, and the scheduler under load. Each test
 * opens its own kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hypha.h"
#include "support.h"

/* Sanitizers slow everything 5-20x; the stress sizes shrink under them so the
 * suite stays within CI's budget. The logic checked is the same. */
#ifdef SANITIZED
#define STRESS_MESSAGES 1000000u
#else
#define STRESS_MESSAGES 10000000u
#endif

static hy_kernel *open_kernel(unsigned workers)
{
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = workers};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    return k;
}

static void register_route(hy_kernel *k, const char *name, const char *pattern, hy_handler h,
                           const char *key, void *udata)
{
    hy_route r = {.pattern = pattern, .handler = h, .key = key};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = udata};
    int rc = hy_subsystem_register(k, name, &def);
    if (rc != 0)
        fail_msg("register %s/%s: %s: %s", name, pattern, hy_strerror(rc), hy_errdetail());
}

/* ------------------------------------------------------------ handlers */

typedef struct counter {
    _Atomic uint64_t n;
    char last_path[64];
    char last_payload[64];
    char last_param[64];
} counter;

static int count_message(hy_ctx *ctx, const hy_msg *msg)
{
    counter *c = hy_subsystem_udata(ctx);
    size_t plen, len;
    const char *path = hy_msg_path(msg, &plen);
    const char *payload = hy_msg_payload(msg, &len);
    snprintf(c->last_path, sizeof c->last_path, "%.*s", (int)plen, path);
    snprintf(c->last_payload, sizeof c->last_payload, "%.*s", (int)len, payload);
    const char *id = hy_param(ctx, "id", &len);
    snprintf(c->last_param, sizeof c->last_param, "%.*s", id ? (int)len : 0, id ? id : "");
    atomic_fetch_add(&c->n, 1);
    return 0;
}

/* For handlers of many actors sharing one counter: only the atomic count. */
static int count_only(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    counter *c = hy_subsystem_udata(ctx);
    atomic_fetch_add(&c->n, 1);
    return 0;
}

static int fail_message(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    counter *c = hy_subsystem_udata(ctx);
    atomic_fetch_add(&c->n, 1);
    return HY_EINVAL;
}

/* ------------------------------------------------------------ lifecycle */

static void open_with_zero_config_uses_defaults(void **state)
{
    (void)state;
    hy_kernel *k = NULL;
    assert_int_equal(hy_kernel_open(&k, NULL), 0);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(s.sent, 0);
    hy_kernel_close(k);
}

static void open_rejects_bad_config(void **state)
{
    (void)state;
    hy_kernel *k = (hy_kernel *)1;
    hy_config cfg = {.workers = 5000};
    assert_int_equal(hy_kernel_open(&k, &cfg), HY_EINVAL);
    assert_null(k);
    cfg = (hy_config){.max_payload = HY_MAX_PAYLOAD + 1};
    assert_int_equal(hy_kernel_open(&k, &cfg), HY_EINVAL);
    assert_int_equal(hy_kernel_open(NULL, NULL), HY_EINVAL);
    /* each refusal names the field */
    cfg = (hy_config){.durability = (hy_durability)9};
    assert_int_equal(hy_kernel_open(&k, &cfg), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "durability"));
    cfg = (hy_config){.block_timeout_ms = -5};
    assert_int_equal(hy_kernel_open(&k, &cfg), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "block_timeout_ms"));
    cfg = (hy_config){.journal_map_size = 2 << 20, .journal_map_max = 1 << 20};
    assert_int_equal(hy_kernel_open(&k, &cfg), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "journal_map_size"));
    assert_null(k);
}

/* A malformed path's detail is its own (not an earlier failure's) and names
 * the limit it broke. */
static void bad_paths_say_why(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    counter c = {0};
    register_route(k, "p", "**", count_message, NULL, &c);
    assert_int_equal(hy_send(k, "p://nowhere/near", NULL, 0), 0);
    assert_int_equal(hy_send(k, "q://x", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_send(k, "p:/x", NULL, 0), HY_EBADPATH);
    assert_non_null(strstr(hy_errdetail(), "'p:/x'"));
    char path[HY_PATH_MAX + 64] = "p://";
    memset(path + 4, 'a', HY_PATH_MAX);
    path[HY_PATH_MAX + 4] = '\0';
    assert_int_equal(hy_send(k, path, NULL, 0), HY_EBADPATH);
    assert_non_null(strstr(hy_errdetail(), "HY_PATH_MAX"));
    strcpy(path, "p://");
    for (int i = 0; i < HY_MAX_SEGMENTS + 1; i++)
        strcat(path, i ? "/s" : "s");
    assert_int_equal(hy_send(k, path, NULL, 0), HY_EBADPATH);
    assert_non_null(strstr(hy_errdetail(), "HY_MAX_SEGMENTS"));
    hy_kernel_close(k);
}

static void send_reaches_handler_with_path_and_payload(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "orders", "create", count_message, NULL, &c);
    assert_int_equal(hy_send(k, "orders://create", "hello", 5), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&c.n), 1);
    assert_string_equal(c.last_path, "orders://create");
    assert_string_equal(c.last_payload, "hello");
    hy_kernel_close(k);
}

static void params_are_slices_of_the_path(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    register_route(k, "orders", "item/{id}", count_message, NULL, &c);
    assert_int_equal(hy_send(k, "orders://item/42", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_string_equal(c.last_param, "42");
    hy_kernel_close(k);
}

static void empty_payload_is_allowed(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    register_route(k, "a", "b", count_message, NULL, &c);
    assert_int_equal(hy_send(k, "a://b", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_string_equal(c.last_payload, "");
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ keyed actors */

typedef struct keyed_seen {
    _Atomic int actors_created;
    _Atomic int messages;
    _Atomic int wrong_state;
} keyed_seen;

static int keyed_init(void *udata, const char *key, size_t key_len, void **out)
{
    keyed_seen *seen = udata;
    if (!key) { /* the subsystem's own actor */
        *out = NULL;
        return 0;
    }
    atomic_fetch_add(&seen->actors_created, 1);
    char *copy = malloc(key_len + 1);
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    *out = copy;
    return 0;
}

static void keyed_free(void *udata, void *st)
{
    (void)udata;
    free(st);
}

static int keyed_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    keyed_seen *seen = hy_subsystem_udata(ctx);
    size_t klen, plen;
    const char *key = hy_actor_key(ctx, &klen);
    const char *id = hy_param(ctx, "id", &plen);
    const char *st = hy_state(ctx);
    /* The state made for this key must be the one this message's key gets. */
    if (!key || klen != plen || memcmp(key, id, klen) != 0 || strcmp(st, key) != 0)
        atomic_fetch_add(&seen->wrong_state, 1);
    atomic_fetch_add(&seen->messages, 1);
    return 0;
}

static void each_key_gets_its_own_actor_and_state(void **state)
{
    (void)state;
    keyed_seen seen = {0};
    hy_kernel *k = open_kernel(2);
    hy_route r = {.pattern = "item/{id}", .handler = keyed_handler, .key = "id"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = &seen,
                            .state_init = keyed_init, .state_free = keyed_free};
    assert_int_equal(hy_subsystem_register(k, "orders", &def), 0);
    char path[64];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 100; i++) {
            snprintf(path, sizeof path, "orders://item/%d", i);
            assert_int_equal(hy_send(k, path, NULL, 0), 0);
        }
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&seen.actors_created), 100);
    assert_int_equal(atomic_load(&seen.messages), 300);
    assert_int_equal(atomic_load(&seen.wrong_state), 0);
    hy_stats s;
    hy_kernel_stats(k, &s);
    assert_int_equal(s.actors, 101);
    hy_kernel_close(k); /* state_free frees the 100 key copies (ASan checks) */
}

static int refuse_init(void *udata, const char *key, size_t key_len, void **out)
{
    (void)udata;
    (void)key_len;
    *out = NULL;
    return key ? -1 : 0;
}

static void refused_actor_fails_the_send(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    hy_route r = {.pattern = "item/{id}", .handler = count_message, .key = "id"};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = &c, .state_init = refuse_init};
    assert_int_equal(hy_subsystem_register(k, "orders", &def), 0);
    assert_int_equal(hy_send(k, "orders://item/1", NULL, 0), HY_EHANDLER);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "orders", &ss), 0);
    /* Refused at send: counted as failed (as hypha.h says), not accepted,
     * so neither sent nor a dead letter. */
    assert_int_equal(ss.failed, 1);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.failed, 1);
    assert_int_equal(ss.dead, 0);
    assert_int_equal(ss.sent, 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ errors */

static void send_time_errors_are_returned(void **state)
{
    (void)state;
    counter c = {0};
    hy_config cfg = {.workers = 1, .max_payload = 100};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    register_route(k, "orders", "create", count_message, NULL, &c);
    char big[101] = {0};
    assert_int_equal(hy_send(k, "orders//create", NULL, 0), HY_EBADPATH);
    assert_int_equal(hy_send(k, "", NULL, 0), HY_EBADPATH);
    assert_int_equal(hy_send(k, "orders://a//b", NULL, 0), HY_EBADPATH);
    assert_int_equal(hy_send(k, "orders://create?x", NULL, 0), HY_EBADPATH);
    assert_int_equal(hy_send(k, "nobody://create", NULL, 0), HY_ENOROUTE);
    assert_non_null(strstr(hy_errdetail(), "nobody://create"));
    assert_int_equal(hy_send(k, "orders://delete", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_send(k, "orders://create", big, sizeof big), HY_ETOOBIG);
    assert_int_equal(hy_send(k, "orders://create", big, 100), 0);
    assert_int_equal(hy_send(k, NULL, NULL, 0), HY_EINVAL);
    assert_int_equal(hy_send(k, "orders://create", NULL, 3), HY_EINVAL);
    assert_int_equal(hy_send(NULL, "orders://create", NULL, 0), HY_EINVAL);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&c.n), 1); /* only the good one */
    assert_int_equal(hy_kernel_shutdown(k), 0);
    assert_int_equal(hy_send(k, "orders://create", NULL, 0), HY_ECLOSED);
    hy_kernel_close(k);
}

static _Atomic int release_gate;

static int wait_at_gate(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    while (!atomic_load(&release_gate))
        usleep(100);
    return 0;
}

static void pool_cap_gives_enomem_not_a_crash(void **state)
{
    (void)state;
    hy_config cfg = {.workers = 1, .pool_cap_bytes = 1 << 20};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    register_route(k, "slow", "in", wait_at_gate, NULL, NULL);
    atomic_store(&release_gate, 0);
    char payload[1000] = {0};
    int rc = 0;
    int accepted = 0;
    /* The handler holds the worker, so the queue only grows until the cap. */
    for (int i = 0; i < 100000 && rc == 0; i++) {
        rc = hy_send(k, "slow://in", payload, sizeof payload);
        accepted += rc == 0;
    }
    assert_int_equal(rc, HY_ENOMEM);
    assert_true(accepted > 10);
    atomic_store(&release_gate, 1);
    assert_int_equal(hy_kernel_drain(k, 30000), 0);
    hy_subsystem_stats ss;
    hy_subsystem_stats_get(k, "slow", &ss);
    assert_int_equal(ss.handled, (uint64_t)accepted);
    /* Memory came back: sending works again. */
    assert_int_equal(hy_send(k, "slow://in", payload, sizeof payload), 0);
    hy_kernel_close(k);
}

static void registration_errors_name_the_problem(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    register_route(k, "orders", "create", count_message, NULL, &c);

    hy_route r = {.pattern = "create", .handler = count_message};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "orders", &def), HY_EEXIST);
    assert_int_equal(hy_subsystem_register(k, "kernel", &def), HY_EEXIST);
    assert_int_equal(hy_subsystem_register(k, "Bad", &def), HY_EINVAL);
    assert_int_equal(hy_subsystem_register(k, "", &def), HY_EINVAL);

    hy_route bad = {.pattern = "item/{id:[0-9}", .handler = count_message};
    def.routes = &bad;
    assert_int_equal(hy_subsystem_register(k, "items", &def), HY_EBADPATTERN);
    assert_non_null(strstr(hy_errdetail(), "item/{id:[0-9}"));
    assert_non_null(strstr(hy_errdetail(), "at byte"));

    hy_route nokey = {.pattern = "item/{id}", .handler = count_message, .key = "sku"};
    def.routes = &nokey;
    assert_int_equal(hy_subsystem_register(k, "items", &def), HY_EINVAL);

    hy_route nohandler = {.pattern = "item/{id}"};
    def.routes = &nohandler;
    assert_int_equal(hy_subsystem_register(k, "items", &def), HY_EINVAL);

    /* A duplicate pattern inside one definition refuses the whole subsystem. */
    hy_route dup[2] = {{.pattern = "a", .handler = count_message},
                       {.pattern = "a", .handler = count_message}};
    def.routes = dup;
    def.nroutes = 2;
    assert_int_equal(hy_subsystem_register(k, "items", &def), HY_EEXIST);
    hy_match_result m;
    assert_int_equal(hy_match(k, "items://a", &m), HY_ENOROUTE);

    /* Nothing was left behind: the name is free for a good definition. */
    def.nroutes = 1;
    assert_int_equal(hy_subsystem_register(k, "items", &def), 0);
    assert_int_equal(hy_match(k, "items://a", &m), 0);
    hy_kernel_close(k);
}

/* hy_send reuses a thread's last route while the table is unchanged: a path
 * that failed must route once its subsystem exists, and a cached path must
 * keep routing correctly across registrations. */
static void route_reuse_follows_registrations(void **state)
{
    (void)state;
    counter a = {0}, b = {0};
    hy_kernel *k = open_kernel(1);
    assert_int_equal(hy_send(k, "late://in", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_send(k, "late://in", NULL, 0), HY_ENOROUTE);
    register_route(k, "late", "in", count_only, NULL, &a);
    assert_int_equal(hy_send(k, "late://in", NULL, 0), 0);
    register_route(k, "other", "in", count_only, NULL, &b);
    assert_int_equal(hy_send(k, "late://in", NULL, 0), 0);
    assert_int_equal(hy_send(k, "other://in", NULL, 0), 0);
    assert_int_equal(hy_send(k, "late://in", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&a.n), 3);
    assert_int_equal(atomic_load(&b.n), 1);
    hy_kernel_close(k);
    /* A new kernel, possibly at the same address: nothing carries over. */
    k = open_kernel(1);
    assert_int_equal(hy_send(k, "late://in", NULL, 0), HY_ENOROUTE);
    hy_kernel_close(k);
}

/* Two kernels open at once, with the same path: a thread's cached route of
 * one is never used for the other (each table has its own generation). */
static void route_reuse_tells_kernels_apart(void **state)
{
    (void)state;
    counter a = {0}, b = {0};
    hy_kernel *ka = open_kernel(1), *kb = open_kernel(1);
    register_route(ka, "twin", "in", count_only, NULL, &a);
    register_route(kb, "twin", "in", count_only, NULL, &b);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(hy_send(ka, "twin://in", NULL, 0), 0);
        assert_int_equal(hy_send(ka, "twin://in", NULL, 0), 0);
        assert_int_equal(hy_send(kb, "twin://in", NULL, 0), 0);
    }
    /* Gone from one kernel only: the other's cached route still serves. */
    assert_int_equal(hy_subsystem_unregister(kb, "twin", 10000), 0);
    assert_int_equal(hy_send(kb, "twin://in", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_send(ka, "twin://in", NULL, 0), 0);
    assert_int_equal(hy_send(kb, "twin://in", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_kernel_drain(ka, 10000), 0);
    assert_int_equal(hy_kernel_drain(kb, 10000), 0);
    assert_int_equal(atomic_load(&a.n), 21);
    assert_int_equal(atomic_load(&b.n), 10);
    hy_kernel_close(ka);
    hy_kernel_close(kb);
}

/* Senders (more than the cores) repeat a few paths, so their routes come
 * from their caches, while another thread registers and unregisters a
 * subsystem on each of two kernels: every send to a route that stays is
 * handled by its own kernel, and a send to the churned one is either handled
 * or refused with HY_ENOROUTE, never misrouted. */
typedef struct churn_sender {
    hy_kernel *k[2];
    _Atomic int *stop;
    uint64_t sent[2], churn_ok;
    int bad;
} churn_sender;

static void *send_across_churn(void *arg)
{
    churn_sender *s = arg;
    for (unsigned i = 0; !atomic_load(s->stop) || i < 2000; i++) {
        int which = (i / 3) % 2; /* runs of three sends per kernel */
        if (hy_send(s->k[which], "stay://in", NULL, 0) == 0)
            s->sent[which]++;
        else
            s->bad++;
        int rc = hy_send(s->k[which], "churn://in", NULL, 0);
        if (rc == 0)
            s->churn_ok++;
        else if (rc != HY_ENOROUTE)
            s->bad++;
    }
    return NULL;
}

static void route_reuse_survives_churn_on_two_kernels(void **state)
{
    (void)state;
    enum { SENDERS = 6 };
    counter stay[2] = {{0}, {0}}, churned = {0};
    hy_kernel *k[2] = {open_kernel(2), open_kernel(2)};
    for (int i = 0; i < 2; i++)
        register_route(k[i], "stay", "in", count_only, NULL, &stay[i]);
    _Atomic int stop = 0;
    churn_sender s[SENDERS];
    pthread_t th[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        s[i] = (churn_sender){.k = {k[0], k[1]}, .stop = &stop};
        pthread_create(&th[i], NULL, send_across_churn, &s[i]);
    }
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 2; i++) {
            register_route(k[i], "churn", "in", count_only, NULL, &churned);
            sched_yield();
            assert_int_equal(hy_subsystem_unregister(k[i], "churn", 10000), 0);
        }
    }
    atomic_store(&stop, 1);
    uint64_t sent[2] = {0, 0}, churn_ok = 0;
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].bad, 0);
        sent[0] += s[i].sent[0];
        sent[1] += s[i].sent[1];
        churn_ok += s[i].churn_ok;
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hy_kernel_drain(k[i], 10000), 0);
        assert_int_equal(atomic_load(&stay[i].n), sent[i]);
    }
    /* unregister waits out every accepted message: all were handled */
    assert_int_equal(atomic_load(&churned.n), churn_ok);
    hy_kernel_close(k[0]);
    hy_kernel_close(k[1]);
}

static void match_reports_route_and_params(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    hy_route routes[] = {
        {.pattern = "users/me", .handler = count_message},
        {.pattern = "users/{id:\\d+}/posts/*", .handler = count_message},
        {.pattern = "users/{name}/settings", .handler = count_message},
    };
    hy_subsystem_def def = {.routes = routes, .nroutes = 3};
    assert_int_equal(hy_subsystem_register(k, "users", &def), 0);
    hy_match_result m;
    assert_int_equal(hy_match(k, "users://users/42/posts/x", &m), 0);
    assert_string_equal(m.subsystem, "users");
    assert_string_equal(m.pattern, "users/{id:\\d+}/posts/*");
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0].name, "id");
    assert_int_equal(m.params[0].len, 2);
    assert_memory_equal(m.params[0].value, "42", 2);
    assert_string_equal(m.params[1].name, "*");
    assert_memory_equal(m.params[1].value, "x", 1);
    /* users/me has no settings child: falls back to {name}. */
    assert_int_equal(hy_match(k, "users://users/me/settings", &m), 0);
    assert_string_equal(m.pattern, "users/{name}/settings");
    assert_int_equal(hy_match(k, "users://nothing", &m), HY_ENOROUTE);
    assert_int_equal(hy_match(k, "users:/x", &m), HY_EBADPATH);
    hy_kernel_close(k);
}

static void failing_handler_is_counted(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    register_route(k, "f", "x", fail_message, NULL, &c);
    for (int i = 0; i < 10; i++)
        assert_int_equal(hy_send(k, "f://x", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_stats s;
    hy_kernel_stats(k, &s);
    assert_int_equal(s.sent, 10);
    assert_int_equal(s.handled, 0); /* handled counts successes only */
    assert_int_equal(s.failed, 10);
    assert_int_equal(s.dead[HY_DEAD_FAILED], 10);
    assert_int_equal(s.queued, 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ batches */

typedef struct order_log {
    int seen[3][100];
    int n[3];
} order_log;

static int log_order(hy_ctx *ctx, const hy_msg *msg)
{
    order_log *log = hy_subsystem_udata(ctx);
    size_t len;
    const char *id = hy_param(ctx, "id", &len);
    int dest = id[0] - '0';
    const int *v = hy_msg_payload(msg, NULL);
    log->seen[dest][log->n[dest]++] = *v;
    return 0;
}

static void batch_keeps_order_per_actor_and_reports_accepted(void **state)
{
    (void)state;
    order_log log = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "b", "d/{id}", log_order, "id", &log);
    static const char *const paths[] = {"b://d/0", "b://d/1", "b://d/2"};
    hy_send_item items[90];
    int values[90];
    for (int i = 0; i < 90; i++) {
        values[i] = i;
        items[i] = (hy_send_item){paths[i % 3], &values[i], sizeof values[i]};
    }
    size_t accepted = 0;
    assert_int_equal(hy_send_batch(k, items, 90, &accepted), 0);
    assert_int_equal(accepted, 90);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    for (int d = 0; d < 3; d++) {
        assert_int_equal(log.n[d], 30);
        for (int j = 0; j < 30; j++)
            assert_int_equal(log.seen[d][j], j * 3 + d);
    }
    hy_kernel_close(k);
}

static void batch_stops_at_first_error(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    register_route(k, "b", "x", count_message, NULL, &c);
    hy_send_item items[8];
    for (int i = 0; i < 8; i++)
        items[i] = (hy_send_item){"b://x", "v", 1};
    items[5].path = "b://nowhere";
    size_t accepted = 99;
    assert_int_equal(hy_send_batch(k, items, 8, &accepted), HY_ENOROUTE);
    assert_int_equal(accepted, 5);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&c.n), 5);
    assert_int_equal(hy_send_batch(k, NULL, 3, &accepted), HY_EINVAL);
    assert_int_equal(hy_send_batch(k, items, 0, &accepted), 0);
    assert_int_equal(accepted, 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ handler sends */

typedef struct relay {
    _Atomic uint64_t hops;
    _Atomic int drain_rc;
} relay;

static int relay_on(hy_ctx *ctx, const hy_msg *msg)
{
    relay *r = hy_subsystem_udata(ctx);
    const uint32_t *left = hy_msg_payload(msg, NULL);
    atomic_fetch_add(&r->hops, 1);
    atomic_store(&r->drain_rc, hy_kernel_drain(hy_ctx_kernel(ctx), 0));
    if (*left == 0)
        return 0;
    uint32_t next = *left - 1;
    return hy_send(hy_ctx_kernel(ctx), (next & 1) ? "odd://hop" : "even://hop", &next,
                   sizeof next);
}

static void drain_waits_for_messages_sent_by_handlers(void **state)
{
    (void)state;
    relay r = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "odd", "hop", relay_on, NULL, &r);
    register_route(k, "even", "hop", relay_on, NULL, &r);
    uint32_t hops = 10000;
    assert_int_equal(hy_send(k, "even://hop", &hops, sizeof hops), 0);
    assert_int_equal(hy_kernel_drain(k, 30000), 0);
    assert_int_equal(atomic_load(&r.hops), 10001);
    /* A handler may not drain: it would wait on itself. */
    assert_int_equal(atomic_load(&r.drain_rc), HY_EINVAL);
    hy_kernel_close(k);
}

static void drain_times_out_while_a_handler_is_stuck(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    register_route(k, "slow", "in", wait_at_gate, NULL, NULL);
    atomic_store(&release_gate, 0);
    assert_int_equal(hy_send(k, "slow://in", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 20), HY_ETIMEDOUT);
    atomic_store(&release_gate, 1);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ scheduling */

typedef struct fifo_check {
    uint64_t next[8];
    uint64_t wrong;
    uint64_t n;
} fifo_check;

typedef struct stamped {
    uint32_t sender;
    uint64_t seq;
} stamped;

static int check_fifo(hy_ctx *ctx, const hy_msg *msg)
{
    fifo_check *f = hy_subsystem_udata(ctx);
    const stamped *s = hy_msg_payload(msg, NULL);
    if (s->seq != f->next[s->sender])
        f->wrong++;
    f->next[s->sender] = s->seq + 1;
    f->n++;
    return 0;
}

typedef struct sender_arg {
    hy_kernel *k;
    uint32_t id;
    uint64_t count;
    const char *path;
    uint64_t accepted;
    int last_rc;
} sender_arg;

static void *send_stamped(void *p)
{
    sender_arg *a = p;
    for (uint64_t i = 0; i < a->count; i++) {
        stamped s = {a->id, i};
        int rc;
        while ((rc = hy_send(a->k, a->path, &s, sizeof s)) == HY_ENOMEM)
            sched_yield();
        if (rc != 0) {
            a->last_rc = rc;
            return NULL;
        }
        a->accepted++;
    }
    return NULL;
}

/* 8 senders on 2 cores (more threads than CPUs), one actor: each sender's
 * messages arrive in its order, none lost, none twice. */
static void stress_no_loss_no_duplicate_order_per_sender(void **state)
{
    (void)state;
    fifo_check *f = calloc(1, sizeof *f);
    hy_config cfg = {.workers = 2, .pool_cap_bytes = (size_t)64 << 20};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    register_route(k, "s", "in", check_fifo, NULL, f);
    pthread_t th[8];
    sender_arg args[8];
    for (uint32_t i = 0; i < 8; i++) {
        args[i] = (sender_arg){k, i, STRESS_MESSAGES / 8, "s://in", 0, 0};
        pthread_create(&th[i], NULL, send_stamped, &args[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(hy_kernel_drain(k, 300000), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(args[i].last_rc, 0);
        assert_int_equal(f->next[i], STRESS_MESSAGES / 8);
    }
    assert_int_equal(f->n, STRESS_MESSAGES / 8 * 8);
    assert_int_equal(f->wrong, 0);
    hy_kernel_close(k);
    free(f);
}

/* Keyed actors spread over 4 workers with 8 senders: steals and wake-ups race
 * constantly; every key's count must come out exact. */
typedef struct key_counts {
    _Atomic uint64_t per_key[64];
} key_counts;

static int count_per_key(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    key_counts *kc = hy_subsystem_udata(ctx);
    size_t len;
    const char *id = hy_param(ctx, "id", &len);
    int v = atoi(id);
    /* relaxed would do (one actor per key), seq_cst keeps the test simple */
    atomic_fetch_add(&kc->per_key[v], 1);
    return 0;
}

static void *send_to_keys(void *p)
{
    sender_arg *a = p;
    char path[32];
    for (uint64_t i = 0; i < a->count; i++) {
        snprintf(path, sizeof path, "k://n/%u", (unsigned)(i % 64));
        int rc;
        while ((rc = hy_send(a->k, path, NULL, 0)) == HY_ENOMEM)
            sched_yield();
        if (rc != 0) {
            a->last_rc = rc;
            return NULL;
        }
    }
    return NULL;
}

static void stress_keyed_actors_across_workers(void **state)
{
    (void)state;
    key_counts *kc = calloc(1, sizeof *kc);
    hy_kernel *k = open_kernel(4);
    register_route(k, "k", "n/{id}", count_per_key, "id", kc);
    enum { PER_SENDER = 64 * 2000 };
    pthread_t th[8];
    sender_arg args[8];
    for (uint32_t i = 0; i < 8; i++) {
        args[i] = (sender_arg){k, i, PER_SENDER, NULL, 0, 0};
        pthread_create(&th[i], NULL, send_to_keys, &args[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(hy_kernel_drain(k, 300000), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(args[i].last_rc, 0);
    for (int key = 0; key < 64; key++)
        assert_int_equal(atomic_load(&kc->per_key[key]), 8 * PER_SENDER / 64);
    hy_stats s;
    hy_kernel_stats(k, &s);
    assert_int_equal(s.handled, 8 * PER_SENDER);
    hy_kernel_close(k);
    free(kc);
}

static void *send_until_closed(void *p)
{
    sender_arg *a = p;
    for (;;) {
        int rc = hy_send(a->k, a->path, NULL, 0);
        if (rc == HY_ECLOSED)
            return NULL;
        if (rc == 0)
            a->accepted++;
        else if (rc != HY_ENOMEM) {
            a->last_rc = rc;
            return NULL;
        }
    }
}

/* Shutdown while 4 threads send: every send that returned 0 is handled, the
 * rest get HY_ECLOSED. */
static void shutdown_while_senders_send_loses_nothing(void **state)
{
    (void)state;
    counter c = {0};
    hy_config cfg = {.workers = 2, .pool_cap_bytes = (size_t)32 << 20};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    register_route(k, "s", "in", count_message, NULL, &c);
    pthread_t th[4];
    sender_arg args[4];
    for (uint32_t i = 0; i < 4; i++) {
        args[i] = (sender_arg){k, i, 0, "s://in", 0, 0};
        pthread_create(&th[i], NULL, send_until_closed, &args[i]);
    }
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(hy_kernel_shutdown(k), 0);
    uint64_t accepted = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].last_rc, 0);
        accepted += args[i].accepted;
    }
    assert_true(accepted > 0);
    assert_int_equal(atomic_load(&c.n), accepted);
    assert_int_equal(hy_kernel_shutdown(k), 0); /* idempotent */
    hy_kernel_close(k);
}

typedef struct late_registrations {
    hy_kernel *k;
    counter *c;
} late_registrations;

static void *register_many(void *p)
{
    late_registrations *late = p;
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "late%d", i);
        hy_route r = {.pattern = "in", .handler = count_only};
        hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = late->c};
        if (hy_subsystem_register(late->k, name, &def) != 0)
            return (void *)1;
    }
    return NULL;
}

static void registering_while_sending_is_safe(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "s", "in", count_message, NULL, &c);
    pthread_t reg, snd;
    sender_arg a = {k, 0, 200000, "s://in", 0, 0};
    pthread_create(&snd, NULL, send_stamped, &a);
    late_registrations late = {k, &c};
    pthread_create(&reg, NULL, register_many, &late);
    void *reg_failed;
    pthread_join(reg, &reg_failed);
    pthread_join(snd, NULL);
    assert_null(reg_failed);
    assert_int_equal(a.last_rc, 0);
    for (int i = 0; i < 100; i++) {
        char path[32];
        snprintf(path, sizeof path, "late%d://in", i);
        assert_int_equal(hy_send(k, path, NULL, 0), 0);
    }
    assert_int_equal(hy_kernel_drain(k, 60000), 0);
    assert_int_equal(atomic_load(&c.n), 200000 + 100);
    hy_kernel_close(k);
}

/* One actor's handler blocks its worker; the other worker must still run the
 * other actors (it steals them or takes them from the inject queue). */
static void slow_handler_does_not_stall_other_actors(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "slow", "in", wait_at_gate, NULL, NULL);
    register_route(k, "fast", "in/{id}", count_message, "id", &c);
    atomic_store(&release_gate, 0);
    assert_int_equal(hy_send(k, "slow://in", NULL, 0), 0);
    char path[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(path, sizeof path, "fast://in/%d", i % 10);
        assert_int_equal(hy_send(k, path, NULL, 0), 0);
    }
    /* Bounded wait for progress, not a timing assertion: a stalled kernel
     * never gets there. */
    for (int i = 0; i < 20000 && atomic_load(&c.n) < 1000; i++)
        usleep(1000);
    uint64_t handled_while_blocked = atomic_load(&c.n);
    atomic_store(&release_gate, 1);
    assert_int_equal(handled_while_blocked, 1000);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_kernel_close(k);
}

static void idle_workers_park(void **state)
{
    (void)state;
    counter c = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "s", "in", count_message, NULL, &c);
    assert_int_equal(hy_send(k, "s://in", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_stats s = {0};
    for (int i = 0; i < 5000 && s.parks < 2; i++) {
        usleep(1000);
        hy_kernel_stats(k, &s);
    }
    assert_true(s.parks >= 2);
    hy_kernel_close(k);
}

/* Pairs of actors bouncing one message each, on more workers than cores:
 * every hop wakes the partner from a handler, the scheduler's run-next path
 * (sched.c), and idle workers steal those actors from it. Every 8th hop also
 * wakes a sink actor, so a handler wakes two actors and the slot's occupant
 * is pushed aside onto the deque. Each actor checks that its partner's
 * sequence numbers come one after the other; the counts are plain memory,
 * written by whichever worker runs the actor, so a sanitizer checks that
 * successive turns on different workers are ordered. */
#define PP_PAIRS 64
#define PP_WORKERS 4
#ifdef SANITIZED
#define PP_HOPS 400u
#else
#define PP_HOPS 4000u
#endif

typedef struct pp_msg {
    uint32_t pair;
    uint32_t seq;
} pp_msg;

static uint32_t pp_next_seq[PP_PAIRS][2]; /* [pair][side]: the seq it expects */
static _Atomic int pp_out_of_order;
static _Atomic int pp_pairs_done;
static _Atomic uint64_t pp_sink_handled;

static int pp_sink(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    atomic_fetch_add(&pp_sink_handled, 1);
    return 0;
}

static int pp_hop(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len, klen;
    const pp_msg *in = hy_msg_payload(msg, &len);
    const char *key = hy_actor_key(ctx, &klen);
    if (len != sizeof *in || !key || in->pair >= PP_PAIRS)
        return -1;
    int side = key[0] == 'b';
    if (in->seq != pp_next_seq[in->pair][side])
        atomic_fetch_add(&pp_out_of_order, 1);
    pp_next_seq[in->pair][side] = in->seq + 2;
    if (in->seq + 1 >= PP_HOPS) {
        atomic_fetch_add(&pp_pairs_done, 1);
        return 0;
    }
    pp_msg out = {in->pair, in->seq + 1};
    char path[32];
    snprintf(path, sizeof path, "pp://p/%c%u", side ? 'a' : 'b', in->pair);
    if (hy_send(hy_ctx_kernel(ctx), path, &out, sizeof out) != 0)
        return -1;
    if (in->seq % 8 == 0) {
        snprintf(path, sizeof path, "ppsink://s/%u", in->pair % 8);
        if (hy_send(hy_ctx_kernel(ctx), path, NULL, 0) != 0)
            return -1;
    }
    return 0;
}

static void stress_ping_pong_pairs_across_workers(void **state)
{
    (void)state;
    memset(pp_next_seq, 0, sizeof pp_next_seq);
    for (unsigned i = 0; i < PP_PAIRS; i++)
        pp_next_seq[i][1] = 1; /* b sees the odd hops */
    atomic_store(&pp_out_of_order, 0);
    atomic_store(&pp_pairs_done, 0);
    atomic_store(&pp_sink_handled, 0);
    hy_kernel *k = open_kernel(PP_WORKERS);
    register_route(k, "pp", "p/{id}", pp_hop, "id", NULL);
    register_route(k, "ppsink", "s/{id}", pp_sink, "id", NULL);
    char path[32];
    for (uint32_t i = 0; i < PP_PAIRS; i++) {
        pp_msg first = {i, 0};
        snprintf(path, sizeof path, "pp://p/a%u", i);
        assert_int_equal(hy_send(k, path, &first, sizeof first), 0);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&pp_pairs_done), PP_PAIRS);
    assert_int_equal(atomic_load(&pp_out_of_order), 0);
    for (unsigned i = 0; i < PP_PAIRS; i++) {
        /* the last hop, PP_HOPS - 1, was handled by the side of its parity */
        unsigned last_side = (PP_HOPS - 1) % 2;
        assert_int_equal(pp_next_seq[i][last_side], PP_HOPS + 1);
    }
    assert_int_equal(atomic_load(&pp_sink_handled), (uint64_t)PP_PAIRS * (PP_HOPS / 8));
    hy_stats st = {0};
    hy_kernel_stats(k, &st);
    assert_int_equal(st.failed, 0);
    hy_kernel_close(k);
}

/* One worker, two actors bouncing a message for as long as they like: each
 * hop wakes the partner into the worker's run-next slot, and that chain must
 * still let others run. An actor woken from outside (the inject queue) and
 * one woken by a handler (the deque) are both handled while the bouncing
 * goes on; the second one stops it. A starved actor would never stop it and
 * the drain would time out. */
static _Atomic int endless_stop;
static _Atomic uint64_t endless_hops;
static _Atomic int endless_outside_seen;

static int endless_hop(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    size_t klen;
    const char *key = hy_actor_key(ctx, &klen);
    atomic_fetch_add(&endless_hops, 1);
    if (atomic_load(&endless_stop))
        return 0;
    hy_kernel *k = hy_ctx_kernel(ctx);
    /* once the outside actor ran, wake one from here as well (a deque entry
     * behind the slot) */
    if (atomic_load(&endless_outside_seen) == 1 && key[0] == 'a') {
        atomic_store(&endless_outside_seen, 2);
        if (hy_send(k, "endside://in/deque", NULL, 0) != 0)
            return -1;
    }
    return hy_send(k, key[0] == 'a' ? "endpp://p/b" : "endpp://p/a", NULL, 0);
}

static int endless_side(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    size_t klen;
    const char *key = hy_actor_key(ctx, &klen);
    if (klen == 7 && memcmp(key, "outside", 7) == 0)
        atomic_store(&endless_outside_seen, 1);
    else
        atomic_store(&endless_stop, 1);
    return 0;
}

static void ping_pong_on_one_worker_does_not_starve_others(void **state)
{
    (void)state;
    atomic_store(&endless_stop, 0);
    atomic_store(&endless_hops, 0);
    atomic_store(&endless_outside_seen, 0);
    hy_kernel *k = open_kernel(1);
    register_route(k, "endpp", "p/{id}", endless_hop, "id", NULL);
    register_route(k, "endside", "in/{id}", endless_side, "id", NULL);
    assert_int_equal(hy_send(k, "endpp://p/a", NULL, 0), 0);
    /* the bouncing is under way before the outside message comes */
    for (int i = 0; i < WAIT_MS && atomic_load(&endless_hops) < 1000; i++)
        usleep(1000);
    assert_true(atomic_load(&endless_hops) >= 1000);
    assert_int_equal(hy_send(k, "endside://in/outside", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&endless_outside_seen), 2);
    assert_int_equal(atomic_load(&endless_stop), 1);
    hy_kernel_close(k);
}

/* Senders streaming into one actor, more threads than cores: a worker that
 * keeps up holds the newest message in the mailbox until the next arrives
 * (worker.c), so this checks that every message is handled once and in each
 * sender's order, and that by the time drain returns every one of them went
 * back to the pool: none is left held. */
#define STREAM_SENDERS 4
#define STREAM_PER_SENDER 50000

typedef struct stream_msg {
    uint32_t sender;
    uint32_t seq;
} stream_msg;

typedef struct stream_state {
    uint64_t next_seq[STREAM_SENDERS]; /* the actor's own: one handler at a time */
    uint64_t handled, out_of_order;
} stream_state;

typedef struct stream_sender {
    hy_kernel *k;
    uint32_t id;
    int rc;
} stream_sender;

static int stream_handler(hy_ctx *ctx, const hy_msg *msg)
{
    stream_state *st = hy_subsystem_udata(ctx);
    const stream_msg *m = hy_msg_payload(msg, NULL);
    if (m->seq != st->next_seq[m->sender])
        st->out_of_order++;
    st->next_seq[m->sender] = m->seq + 1;
    st->handled++;
    return 0;
}

static void *stream_sender_main(void *arg)
{
    stream_sender *s = arg;
    for (uint32_t i = 0; i < STREAM_PER_SENDER && s->rc == 0; i++) {
        stream_msg m = {s->id, i};
        s->rc = hy_send(s->k, "stream://in", &m, sizeof m);
        if ((i & 1023) == 0)
            sched_yield(); /* let the mailbox run empty now and then */
    }
    return NULL;
}

static void streams_are_handled_in_order_and_nothing_stays_held(void **state)
{
    (void)state;
    stream_state st = {0};
    hy_kernel *k = open_kernel(2);
    register_route(k, "stream", "in", stream_handler, NULL, &st);
    pthread_t th[STREAM_SENDERS];
    stream_sender senders[STREAM_SENDERS];
    for (uint32_t i = 0; i < STREAM_SENDERS; i++) {
        senders[i] = (stream_sender){k, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, stream_sender_main, &senders[i]), 0);
    }
    for (uint32_t i = 0; i < STREAM_SENDERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(senders[i].rc, 0);
    }
    assert_int_equal(hy_kernel_drain(k, 60000), 0);
    hy_stats s = {0};
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(st.handled, (uint64_t)STREAM_SENDERS * STREAM_PER_SENDER);
    assert_int_equal(st.out_of_order, 0);
    for (uint32_t i = 0; i < STREAM_SENDERS; i++)
        assert_int_equal(st.next_seq[i], STREAM_PER_SENDER);
    assert_int_equal(s.handled, (uint64_t)STREAM_SENDERS * STREAM_PER_SENDER);
    assert_int_equal(s.pool_in_use, 0);
    hy_kernel_close(k);
}

/* hy_subsystem_stats.queued is sent - (handled + dead), as hypha.h says: the
 * message a handler is running on counts. One message held at a gate with
 * nothing behind it: queued 1 (its mailbox is empty); two more behind it: 3;
 * all through: 0. A mailbox depth would say 0, then 2. */
static gate queued_gate;

static int queued_gated(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    gate_pass(&queued_gate);
    return 0;
}

static void queued_counts_the_message_being_handled(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    register_route(k, "held", "x", queued_gated, NULL, NULL);
    hy_subsystem_stats ss;
    assert_int_equal(hy_send(k, "held://x", "a", 1), 0);
    assert_true(wait_for(&queued_gate.entered, 1));
    assert_int_equal(hy_subsystem_stats_get(k, "held", &ss), 0);
    assert_int_equal(ss.sent, 1);
    assert_int_equal(ss.handled, 0);
    assert_int_equal(ss.queued, 1);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.queued, 1);
    assert_int_equal(hy_send(k, "held://x", "b", 1), 0);
    assert_int_equal(hy_send(k, "held://x", "c", 1), 0);
    assert_int_equal(hy_subsystem_stats_get(k, "held", &ss), 0);
    assert_int_equal(ss.queued, 3);
    gate_open(&queued_gate);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(hy_subsystem_stats_get(k, "held", &ss), 0);
    assert_int_equal(ss.queued, 0);
    assert_int_equal(ss.handled, 3);
    hy_kernel_close(k);
}

/* Many subsystems: every one routes to its own route, and a duplicate name
 * is still refused (the registry is a hash, not a list to scan). Correctness
 * only; the register bench measures the time. */
static void many_subsystems_all_route(void **state)
{
    (void)state;
    enum { N = 20000 };
    counter c = {0};
    hy_kernel *k = open_kernel(1);
    char name[32], path[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "many%d", i);
        register_route(k, name, i % 2 ? "in/{id}" : "in", count_message, NULL, &c);
    }
    hy_route r = {.pattern = "in", .handler = count_message};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "many777", &def), HY_EEXIST);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "many%d", i);
        snprintf(path, sizeof path, "many%d://in%s", i, i % 2 ? "/7" : "");
        hy_match_result m;
        assert_int_equal(hy_match(k, path, &m), 0);
        assert_string_equal(m.subsystem, name);
        assert_string_equal(m.pattern, i % 2 ? "in/{id}" : "in");
    }
    assert_int_equal(hy_send(k, "nosuch://in", NULL, 0), HY_ENOROUTE);
    for (int i = 0; i < N; i += 97) {
        snprintf(path, sizeof path, "many%d://in%s", i, i % 2 ? "/7" : "");
        assert_int_equal(hy_send(k, path, NULL, 0), 0);
    }
    assert_int_equal(hy_kernel_drain(k, 60000), 0);
    assert_int_equal(atomic_load(&c.n), (N + 96) / 97);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ unregistering */

typedef struct unreg_counts {
    _Atomic uint64_t handled;
    _Atomic uint64_t dead_unregistered;
    _Atomic uint64_t dead_other;
} unreg_counts;

static void count_dead(void *udata, const char *path, size_t path_len, const void *payload,
                       size_t len, hy_dead_reason reason)
{
    (void)path, (void)path_len, (void)payload, (void)len;
    unreg_counts *c = udata;
    if (reason == HY_DEAD_UNREGISTERED)
        atomic_fetch_add(&c->dead_unregistered, 1);
    else if (reason != HY_DEAD_NOROUTE) /* refused sends, not accepted ones */
        atomic_fetch_add(&c->dead_other, 1);
}

/* Slow enough that senders build a queue the unregistering must deal with. */
static int count_slowly(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    unreg_counts *c = hy_subsystem_udata(ctx);
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&c->handled, 1);
    return 0;
}

static hy_kernel *open_counting_dead(unreg_counts *c)
{
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = 2, .dead_letter = count_dead, .udata = c};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    return k;
}

static void register_victim(hy_kernel *k, unreg_counts *c)
{
    hy_route r[] = {{.pattern = "own", .handler = count_slowly},
                    {.pattern = "k/{id}", .handler = count_slowly, .key = "id"}};
    hy_subsystem_def def = {.routes = r, .nroutes = 2, .udata = c};
    assert_int_equal(hy_subsystem_register(k, "victim", &def), 0);
}

typedef struct unreg_sender {
    hy_kernel *k;
    _Atomic uint64_t accepted; /* read by the main thread while it grows */
    int last_rc;
    unsigned seed;
} unreg_sender;

/* Sends until the subsystem is gone (HY_ENOROUTE) or something else fails. */
static void *send_until_gone(void *arg)
{
    unreg_sender *s = arg;
    char path[32];
    for (uint64_t i = 0;; i++) {
        if (i % 3 == 0)
            snprintf(path, sizeof path, "victim://own");
        else
            snprintf(path, sizeof path, "victim://k/%u", (unsigned)((i * s->seed) % 50));
        int rc = hy_send(s->k, path, &i, sizeof i);
        if (rc != 0) {
            s->last_rc = rc;
            return NULL;
        }
        /* relaxed: a count; the join orders the final value */
        atomic_fetch_add_explicit(&s->accepted, 1, memory_order_relaxed);
    }
}

/* Senders hammer a subsystem (its own actor and 50 keyed ones) while it is
 * unregistered with no time to finish: every accepted message is either
 * handled or a dead letter HY_DEAD_UNREGISTERED, later sends get
 * HY_ENOROUTE, and the name can be registered again. */
static void unregister_while_senders_send_loses_nothing(void **state)
{
    (void)state;
    enum { SENDERS = 3 };
    unreg_counts c = {0};
    hy_kernel *k = open_counting_dead(&c);
    register_victim(k, &c);
    pthread_t th[SENDERS];
    unreg_sender snd[SENDERS];
    for (unsigned i = 0; i < SENDERS; i++) {
        snd[i].k = k;
        atomic_init(&snd[i].accepted, 0);
        snd[i].last_rc = 0;
        snd[i].seed = 7 + 2 * i;
        pthread_create(&th[i], NULL, send_until_gone, &snd[i]);
    }
    /* Let a queue build up (not a timing assertion: any amount will do). */
    for (int i = 0; i < 2000 && atomic_load(&snd[0].accepted) + atomic_load(&snd[1].accepted) <
                                    20000;
         i++)
        usleep(1000);
    int rc = hy_subsystem_unregister(k, "victim", 0);
    assert_true(rc == 0 || rc == HY_ETIMEDOUT);
    uint64_t accepted = 0;
    for (unsigned i = 0; i < SENDERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(snd[i].last_rc, HY_ENOROUTE);
        accepted += atomic_load(&snd[i].accepted);
    }
    /* Every count is final once unregister returned and the senders ended. */
    uint64_t handled = atomic_load(&c.handled), dead = atomic_load(&c.dead_unregistered);
    print_message("accepted %lu: handled %lu, dead-lettered %lu (rc %d)\n",
                  (unsigned long)accepted, (unsigned long)handled, (unsigned long)dead, rc);
    assert_int_equal(handled + dead, accepted);
    assert_int_equal(atomic_load(&c.dead_other), 0);
    if (rc == 0)
        assert_int_equal(dead, 0);
    else
        assert_true(dead > 0);
    assert_int_equal(hy_send(k, "victim://own", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_subsystem_unregister(k, "victim", 0), HY_ENOENT);

    /* The name is free again; the new subsystem starts from nothing. */
    unreg_counts c2 = {0};
    hy_route r = {.pattern = "own", .handler = count_slowly};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = &c2};
    assert_int_equal(hy_subsystem_register(k, "victim", &def), 0);
    assert_int_equal(hy_send(k, "victim://own", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, 60000), 0);
    assert_int_equal(atomic_load(&c2.handled), 1);
    assert_int_equal(atomic_load(&c.handled), handled);
    hy_kernel_close(k);
}

/* With time enough, everything queued is handled and nothing is a dead
 * letter; "kernel" and unknown names are refused. */
static void unregister_with_time_handles_everything(void **state)
{
    (void)state;
    unreg_counts c = {0};
    hy_kernel *k = open_counting_dead(&c);
    register_victim(k, &c);
    char path[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof path, i % 2 ? "victim://k/%d" : "victim://own", i % 20);
        assert_int_equal(hy_send(k, path, NULL, 0), 0);
    }
    assert_int_equal(hy_subsystem_unregister(k, "victim", 60000), 0);
    assert_int_equal(atomic_load(&c.handled), 3000);
    assert_int_equal(atomic_load(&c.dead_unregistered), 0);
    assert_int_equal(hy_send(k, "victim://own", NULL, 0), HY_ENOROUTE);
    assert_int_equal(hy_subsystem_unregister(k, "kernel", 0), HY_EINVAL);
    assert_int_equal(hy_subsystem_unregister(k, "nosuch", 0), HY_ENOENT);
    assert_int_equal(hy_subsystem_unregister(k, NULL, 0), HY_EINVAL);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_with_zero_config_uses_defaults),
        cmocka_unit_test(queued_counts_the_message_being_handled),
        cmocka_unit_test(open_rejects_bad_config),
        cmocka_unit_test(bad_paths_say_why),
        cmocka_unit_test(send_reaches_handler_with_path_and_payload),
        cmocka_unit_test(params_are_slices_of_the_path),
        cmocka_unit_test(empty_payload_is_allowed),
        cmocka_unit_test(each_key_gets_its_own_actor_and_state),
        cmocka_unit_test(refused_actor_fails_the_send),
        cmocka_unit_test(send_time_errors_are_returned),
        cmocka_unit_test(pool_cap_gives_enomem_not_a_crash),
        cmocka_unit_test(registration_errors_name_the_problem),
        cmocka_unit_test(match_reports_route_and_params),
        cmocka_unit_test(route_reuse_follows_registrations),
        cmocka_unit_test(route_reuse_tells_kernels_apart),
        cmocka_unit_test(route_reuse_survives_churn_on_two_kernels),
        cmocka_unit_test(failing_handler_is_counted),
        cmocka_unit_test(batch_keeps_order_per_actor_and_reports_accepted),
        cmocka_unit_test(batch_stops_at_first_error),
        cmocka_unit_test(drain_waits_for_messages_sent_by_handlers),
        cmocka_unit_test(drain_times_out_while_a_handler_is_stuck),
        cmocka_unit_test(stress_no_loss_no_duplicate_order_per_sender),
        cmocka_unit_test(stress_keyed_actors_across_workers),
        cmocka_unit_test(shutdown_while_senders_send_loses_nothing),
        cmocka_unit_test(registering_while_sending_is_safe),
        cmocka_unit_test(slow_handler_does_not_stall_other_actors),
        cmocka_unit_test(idle_workers_park),
        cmocka_unit_test(stress_ping_pong_pairs_across_workers),
        cmocka_unit_test(ping_pong_on_one_worker_does_not_starve_others),
        cmocka_unit_test(streams_are_handled_in_order_and_nothing_stays_held),
        cmocka_unit_test(many_subsystems_all_route),
        cmocka_unit_test(unregister_while_senders_send_loses_nothing),
        cmocka_unit_test(unregister_with_time_handles_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
