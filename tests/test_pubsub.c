/* Publish/subscribe through the public API: delivery counts, the one shared
 * payload, captures of subscription patterns, unsubscribe, errors, shutdown,
 * drain, and publishing while others subscribe and unsubscribe (run it under
 * TSan). Each test opens its own kernel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hypha.h"
#include "support.h"

static hy_kernel *open_kernel(unsigned workers)
{
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = workers};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    return k;
}

static void subscribe(hy_kernel *k, const char *pattern, hy_handler h, void *udata,
                      uint64_t *id)
{
    int rc = hy_subscribe(k, pattern, h, udata, id);
    if (rc != 0)
        fail_msg("subscribe %s: %s: %s", pattern, hy_strerror(rc), hy_errdetail());
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ handlers */

/* What one subscriber saw: written by its own actor only (one message at a
 * time), read after drain. */
typedef struct seen {
    _Atomic uint64_t n;
    const void *payload_ptr;
    char path[64];
    char payload[64];
    char id[32];
    char kind[32];
    char rest[64];
    uint64_t msg_id;
    uint64_t sent_ns;
} seen;

static void copy_param(hy_ctx *ctx, const char *name, char *out, size_t cap)
{
    size_t len;
    const char *v = hy_param(ctx, name, &len);
    snprintf(out, cap, "%.*s", v ? (int)len : 0, v ? v : "");
}

static int record(hy_ctx *ctx, const hy_msg *msg)
{
    seen *s = hy_route_udata(ctx);
    size_t plen, len;
    const char *path = hy_msg_path(msg, &plen);
    const void *payload = hy_msg_payload(msg, &len);
    snprintf(s->path, sizeof s->path, "%.*s", (int)plen, path);
    snprintf(s->payload, sizeof s->payload, "%.*s", (int)len, (const char *)payload);
    s->payload_ptr = payload;
    copy_param(ctx, "id", s->id, sizeof s->id);
    copy_param(ctx, "kind", s->kind, sizeof s->kind);
    copy_param(ctx, "**", s->rest, sizeof s->rest);
    s->msg_id = hy_msg_id(msg);
    s->sent_ns = hy_msg_sent_ns(msg);
    atomic_fetch_add(&s->n, 1);
    return 0;
}

static int count_only(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    atomic_fetch_add((_Atomic uint64_t *)hy_route_udata(ctx), 1);
    return 0;
}

/* ------------------------------------------------------------ delivery */

static void publish_to_no_subscriber_delivers_nothing(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    size_t delivered = 99;
    assert_int_equal(hy_publish(k, "news://sports", "x", 1, &delivered), 0);
    assert_int_equal(delivered, 0);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.pool_in_use, 0);
    hy_kernel_close(k);
}

static void publish_to_one_subscriber_delivers_path_and_payload(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    seen s = {0};
    uint64_t id = 0;
    subscribe(k, "news://sports", record, &s, &id);
    assert_true(id != 0);
    size_t delivered = 0;
    assert_int_equal(hy_publish(k, "news://sports", "goal", 4, &delivered), 0);
    assert_int_equal(delivered, 1);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&s.n), 1);
    assert_string_equal(s.path, "news://sports");
    assert_string_equal(s.payload, "goal");
    assert_true(s.msg_id != 0);
    assert_true(s.sent_ns != 0);
    hy_kernel_close(k);
}

#define MANY 1000

static void publish_to_1000_subscribers_shares_one_payload(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(4);
    seen *s = calloc(MANY, sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < MANY; i++)
        subscribe(k, "news://**", record, &s[i], NULL);
    /* A payload too large for a small pool class: copying it per subscriber
     * would show in the pointers below. */
    char payload[2048];
    memset(payload, 'p', sizeof payload);
    memcpy(payload, "headline", 8);
    size_t delivered = 0;
    assert_int_equal(hy_publish(k, "news://world/europe", payload, sizeof payload, &delivered),
                     0);
    assert_int_equal(delivered, MANY);
    assert_int_equal(hy_kernel_drain(k, 30000), 0);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(atomic_load(&s[i].n), 1);
        assert_true(strncmp(s[i].payload, "headline", 8) == 0);
        assert_string_equal(s[i].rest, "world/europe");
        /* One copy of the payload shared by all of them. */
        assert_ptr_equal(s[i].payload_ptr, s[0].payload_ptr);
    }
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.sent, MANY);
    assert_int_equal(st.handled, MANY);
    assert_int_equal(st.actors, MANY); /* one actor per subscription */
    assert_int_equal(st.pool_in_use, 0); /* envelopes and the body went back */
    hy_kernel_close(k);
    free(s);
}

static void publish_delivers_only_to_matching_patterns(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    seen sports = {0}, any_news = {0}, weather = {0}, root = {0};
    subscribe(k, "news://sports/*", record, &sports, NULL);
    subscribe(k, "news://**", record, &any_news, NULL);
    subscribe(k, "weather://**", record, &weather, NULL);
    subscribe(k, "news://", record, &root, NULL);
    size_t d;
    assert_int_equal(hy_publish(k, "news://sports/tennis", NULL, 0, &d), 0);
    assert_int_equal(d, 2);
    assert_int_equal(hy_publish(k, "news://politics", NULL, 0, &d), 0);
    assert_int_equal(d, 1);
    assert_int_equal(hy_publish(k, "newsroom://sports/tennis", NULL, 0, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&sports.n), 1);
    assert_int_equal(atomic_load(&any_news.n), 2);
    assert_int_equal(atomic_load(&weather.n), 0);
    assert_int_equal(atomic_load(&root.n), 0);
    hy_kernel_close(k);
}

static void subscription_captures_are_params(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    seen a = {0}, b = {0};
    subscribe(k, "orders://item/{id:[0-9]+}/{kind}", record, &a, NULL);
    subscribe(k, "orders://item/{id}/**", record, &b, NULL);
    size_t d;
    assert_int_equal(hy_publish(k, "orders://item/42/book", "x", 1, &d), 0);
    assert_int_equal(d, 2);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    /* Each envelope carries its own captures of the same shared path. */
    assert_string_equal(a.id, "42");
    assert_string_equal(a.kind, "book");
    assert_string_equal(a.rest, "");
    assert_string_equal(b.id, "42");
    assert_string_equal(b.kind, "");
    assert_string_equal(b.rest, "book");
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ unsubscribe */

static void unsubscribe_stops_delivery(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    _Atomic uint64_t n = 0;
    uint64_t id;
    subscribe(k, "news://x", count_only, &n, &id);
    size_t d;
    assert_int_equal(hy_publish(k, "news://x", NULL, 0, &d), 0);
    assert_int_equal(d, 1);
    assert_int_equal(hy_unsubscribe(k, id), 0);
    assert_int_equal(hy_publish(k, "news://x", NULL, 0, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&n), 1);
    assert_int_equal(hy_unsubscribe(k, id), HY_ENOENT);
    assert_int_equal(hy_unsubscribe(k, 12345678), HY_ENOENT);
    hy_kernel_close(k);
}

typedef struct gated {
    _Atomic int open;
    _Atomic uint64_t n;
} gated;

static int wait_for_gate(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    gated *g = hy_route_udata(ctx);
    while (!atomic_load(&g->open))
        sleep_ms(1);
    atomic_fetch_add(&g->n, 1);
    return 0;
}

static void unsubscribe_keeps_queued_messages(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    gated g = {0};
    uint64_t id;
    subscribe(k, "news://x", wait_for_gate, &g, &id);
    for (int i = 0; i < 10; i++)
        assert_int_equal(hy_publish(k, "news://x", &i, sizeof i, NULL), 0);
    assert_int_equal(hy_unsubscribe(k, id), 0);
    atomic_store(&g.open, 1);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&g.n), 10);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ errors */

/* The byte offset hy_errdetail() names, or -1. */
static long detail_offset(void)
{
    const char *at = strstr(hy_errdetail(), "(at byte ");
    long off = -1;
    if (at)
        sscanf(at, "(at byte %ld)", &off);
    return off;
}

static void bad_pattern_is_refused_with_pattern_and_offset(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    uint64_t id = 7;
    const char *unclosed = "orders://item/{id";
    assert_int_equal(hy_subscribe(k, unclosed, count_only, NULL, &id), HY_EBADPATTERN);
    assert_int_equal(id, 0);
    assert_non_null(strstr(hy_errdetail(), unclosed));
    long off = detail_offset();
    /* The fault is in the route part, so past "orders://". */
    assert_true(off >= (long)strlen("orders://") && off <= (long)strlen(unclosed));

    const char *regex = "orders://item/{id:[0-9}";
    assert_int_equal(hy_subscribe(k, regex, count_only, NULL, NULL), HY_EBADPATTERN);
    assert_non_null(strstr(hy_errdetail(), regex));
    assert_true(detail_offset() >= (long)strlen("orders://"));

    assert_int_equal(hy_subscribe(k, "no-separator", count_only, NULL, NULL), HY_EBADPATTERN);
    assert_non_null(strstr(hy_errdetail(), "no-separator"));
    assert_int_equal(hy_subscribe(k, "Orders://x", count_only, NULL, NULL), HY_EBADPATTERN);
    assert_int_equal(detail_offset(), 0);
    assert_int_equal(hy_subscribe(k, "://x", count_only, NULL, NULL), HY_EBADPATTERN);
    assert_int_equal(hy_subscribe(k, "news://x", NULL, NULL, NULL), HY_EINVAL);

    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.actors, 0); /* nothing half-made stays behind */
    hy_kernel_close(k);
}

static void publish_refuses_bad_path_and_big_payload(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    _Atomic uint64_t n = 0;
    subscribe(k, "news://**", count_only, &n, NULL);
    size_t d = 5;
    assert_int_equal(hy_publish(k, "news:/x", NULL, 0, &d), HY_EBADPATH);
    assert_int_equal(d, 0);
    assert_int_equal(hy_publish(k, "news://a b", NULL, 0, NULL), HY_EBADPATH);
    assert_int_equal(hy_publish(k, NULL, NULL, 0, NULL), HY_EINVAL);
    assert_int_equal(hy_publish(k, "news://x", NULL, 3, NULL), HY_EINVAL);
    static char big[(64 << 10) + 1];
    assert_int_equal(hy_publish(k, "news://x", big, sizeof big, NULL), HY_ETOOBIG);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&n), 0);
    hy_kernel_close(k);
}

static void publish_after_shutdown_is_closed(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    _Atomic uint64_t n = 0;
    subscribe(k, "news://x", count_only, &n, NULL);
    assert_int_equal(hy_kernel_shutdown(k), 0);
    size_t d = 3;
    assert_int_equal(hy_publish(k, "news://x", "x", 1, &d), HY_ECLOSED);
    assert_int_equal(d, 0);
    assert_int_equal(hy_subscribe(k, "news://y", count_only, &n, NULL), HY_ECLOSED);
    assert_int_equal(atomic_load(&n), 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ drain and stats */

static int slow_count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    sleep_ms(1);
    atomic_fetch_add((_Atomic uint64_t *)hy_route_udata(ctx), 1);
    return 0;
}

static void drain_waits_for_subscribers(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    _Atomic uint64_t a = 0, b = 0;
    subscribe(k, "news://x", slow_count, &a, NULL);
    subscribe(k, "news://x", slow_count, &b, NULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(hy_publish(k, "news://x", NULL, 0, NULL), 0);
    assert_int_equal(hy_kernel_drain(k, 30000), 0);
    assert_int_equal(atomic_load(&a), 50);
    assert_int_equal(atomic_load(&b), 50);
    hy_kernel_close(k);
}

static int failing(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    return -1;
}

static void subscriber_failures_are_counted(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    _Atomic uint64_t n = 0;
    subscribe(k, "news://x", failing, NULL, NULL);
    subscribe(k, "news://x", count_only, &n, NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(hy_publish(k, "news://x", NULL, 0, NULL), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "kernel", &ss), 0);
    assert_int_equal(ss.sent, 10);
    assert_int_equal(ss.handled, 5);
    assert_int_equal(ss.failed, 5);
    assert_int_equal(ss.queued, 0);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.dead[HY_DEAD_FAILED], 5);
    assert_int_equal(atomic_load(&n), 5);
    hy_kernel_close(k);
}

/* A message published from a handler carries that handler's trace and
 * sender, like any send from a handler. */
typedef struct relay {
    uint64_t first_trace;
    uint64_t relay_actor;
    uint64_t got_trace;
    uint64_t got_sender;
    _Atomic int done;
} relay;

static int relay_on(hy_ctx *ctx, const hy_msg *msg)
{
    relay *r = hy_route_udata(ctx);
    r->first_trace = hy_msg_trace_id(msg);
    r->relay_actor = hy_self(ctx);
    return hy_publish(hy_ctx_kernel(ctx), "news://relayed", NULL, 0, NULL);
}

static int relay_end(hy_ctx *ctx, const hy_msg *msg)
{
    relay *r = hy_route_udata(ctx);
    r->got_trace = hy_msg_trace_id(msg);
    r->got_sender = hy_msg_sender(msg);
    atomic_store(&r->done, 1);
    return 0;
}

static void publish_from_a_handler_keeps_the_trace(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(2);
    relay r = {0};
    uint64_t relay_id;
    subscribe(k, "news://start", relay_on, &r, &relay_id);
    subscribe(k, "news://relayed", relay_end, &r, NULL);
    assert_int_equal(hy_publish(k, "news://start", NULL, 0, NULL), 0);
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    assert_int_equal(atomic_load(&r.done), 1);
    assert_int_equal(r.got_trace, r.first_trace);
    assert_int_equal(r.got_sender, r.relay_actor);
    assert_int_equal(r.relay_actor, relay_id); /* a subscription's id is its actor's */
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ concurrency */

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define PUBLISHES 2000
#else
#define PUBLISHES 20000
#endif

typedef struct publisher {
    hy_kernel *k;
    uint64_t delivered;
    int errors;
} publisher;

static void *publish_loop(void *arg)
{
    publisher *p = arg;
    for (int i = 0; i < PUBLISHES; i++) {
        size_t d = 0;
        if (hy_publish(p->k, "news://live", &i, sizeof i, &d) != 0)
            p->errors++;
        p->delivered += d;
    }
    return NULL;
}

static void publish_from_4_threads_while_subscribing_and_unsubscribing(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(4);
    _Atomic uint64_t steady = 0, churn = 0;
    subscribe(k, "news://live", count_only, &steady, NULL);
    publisher p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (publisher){.k = k};
        assert_int_equal(pthread_create(&t[i], NULL, publish_loop, &p[i]), 0);
    }
    int cycles = 0;
    for (; cycles < 100; cycles++) {
        uint64_t id;
        subscribe(k, cycles & 1 ? "news://{topic}" : "news://**", count_only, &churn, &id);
        assert_int_equal(hy_unsubscribe(k, id), 0);
    }
    uint64_t total = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(p[i].errors, 0);
        total += p[i].delivered;
    }
    assert_int_equal(hy_kernel_drain(k, 60000), 0);
    /* The steady subscriber got every publish exactly once; every delivery a
     * publish reported was handled by someone. */
    assert_int_equal(atomic_load(&steady), 4 * PUBLISHES);
    assert_int_equal(atomic_load(&steady) + atomic_load(&churn), total);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.sent, total);
    assert_int_equal(st.actors, 1);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ bounded subscriptions */

static gate sub_gate;
static _Atomic int gated_seen;

static int gated_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    gate_pass(&sub_gate);
    atomic_fetch_add(&gated_seen, 1);
    return 0;
}

static _Atomic int plain_seen;

static int plain_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    atomic_fetch_add(&plain_seen, 1);
    return 0;
}

static void gate_reset(void)
{
    atomic_store(&sub_gate.entered, 0);
    atomic_store(&sub_gate.open, 0);
    atomic_store(&gated_seen, 0);
    atomic_store(&plain_seen, 0);
}

/* hy_config's default bound (2, FAIL) applies to a plain subscription: a
 * subscriber held in its handler takes 2 more, the other 97 are refused
 * (HY_EFULL, dead letters HY_DEAD_FULL). Before subscriptions had bounds it
 * accepted all 100. */
static void config_bound_applies_to_subscriptions(void **state)
{
    (void)state;
    gate_reset();
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = 2, .mailbox_capacity = 2, .overflow = HY_OVERFLOW_FAIL};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    subscribe(k, "news://**", gated_handler, NULL, NULL);
    size_t d = 0;
    assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), 0);
    assert_int_equal(d, 1);
    assert_true(wait_for(&sub_gate.entered, 1));
    int accepted = 1, refused = 0;
    for (int i = 1; i < 100; i++) {
        int rc = hy_publish(k, "news://a", "x", 1, &d);
        if (rc == 0) {
            assert_int_equal(d, 1);
            accepted++;
        } else {
            assert_int_equal(rc, HY_EFULL);
            assert_int_equal(d, 0);
            assert_non_null(strstr(hy_errdetail(), "1 subscription(s) refused it"));
            refused++;
        }
    }
    assert_int_equal(accepted, 3);
    assert_int_equal(refused, 97);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.dead[HY_DEAD_FULL], 97);
    gate_open(&sub_gate);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&gated_seen), 3);
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.sent, st.handled);
    hy_kernel_close(k);
}

/* A bounded subscription beside an unbounded one: the full one refuses, the
 * other still gets every message; the publish says HY_EFULL with *delivered
 * counting the one that took it. */
static void full_subscription_does_not_starve_the_others(void **state)
{
    (void)state;
    gate_reset();
    hy_kernel *k = open_kernel(2);
    hy_subscribe_opts o = {.mailbox_capacity = 1, .overflow = HY_OVERFLOW_FAIL};
    uint64_t id = 0;
    assert_int_equal(hy_subscribe_ex(k, "news://**", &o, gated_handler, NULL, &id), 0);
    assert_true(id != 0);
    subscribe(k, "news://**", plain_handler, NULL, NULL);
    size_t d = 0;
    assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), 0);
    assert_int_equal(d, 2);
    assert_true(wait_for(&sub_gate.entered, 1));
    assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), 0); /* fills it */
    assert_int_equal(d, 2);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), HY_EFULL);
        assert_int_equal(d, 1);
    }
    gate_open(&sub_gate);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&plain_seen), 22);
    assert_int_equal(atomic_load(&gated_seen), 2);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.dead[HY_DEAD_FULL], 20);
    hy_kernel_close(k);
}

/* DROP_NEWEST: the publish succeeds, the copy is dropped (sent, a dead
 * letter HY_DEAD_DROPPED) and not counted as delivered. */
static void drop_newest_subscription_drops_and_counts(void **state)
{
    (void)state;
    gate_reset();
    hy_kernel *k = open_kernel(2);
    hy_subscribe_opts o = {.mailbox_capacity = 1, .overflow = HY_OVERFLOW_DROP_NEWEST};
    assert_int_equal(hy_subscribe_ex(k, "news://**", &o, gated_handler, NULL, NULL), 0);
    size_t d = 0;
    assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), 0);
    assert_true(wait_for(&sub_gate.entered, 1));
    assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), 0);
    assert_int_equal(d, 1);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(hy_publish(k, "news://a", "x", 1, &d), 0);
        assert_int_equal(d, 0);
    }
    gate_open(&sub_gate);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&gated_seen), 2);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.dead[HY_DEAD_DROPPED], 9);
    assert_int_equal(st.sent, st.handled + st.dead[HY_DEAD_DROPPED]);
    hy_kernel_close(k);
}

/* Bad options are refused before anything is made. */
static void subscribe_ex_refuses_bad_options(void **state)
{
    (void)state;
    hy_kernel *k = open_kernel(1);
    hy_subscribe_opts o = {.mailbox_capacity = 1, .overflow = (hy_overflow)9};
    assert_int_equal(hy_subscribe_ex(k, "news://**", &o, plain_handler, NULL, NULL),
                     HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "overflow"));
    o = (hy_subscribe_opts){.block_timeout_ms = -1};
    assert_int_equal(hy_subscribe_ex(k, "news://**", &o, plain_handler, NULL, NULL),
                     HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "block_timeout_ms"));
    assert_int_equal(hy_subscribe_ex(k, "news://**", NULL, plain_handler, NULL, NULL), 0);
    hy_kernel_close(k);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publish_to_no_subscriber_delivers_nothing),
        cmocka_unit_test(publish_to_one_subscriber_delivers_path_and_payload),
        cmocka_unit_test(publish_to_1000_subscribers_shares_one_payload),
        cmocka_unit_test(publish_delivers_only_to_matching_patterns),
        cmocka_unit_test(subscription_captures_are_params),
        cmocka_unit_test(unsubscribe_stops_delivery),
        cmocka_unit_test(unsubscribe_keeps_queued_messages),
        cmocka_unit_test(bad_pattern_is_refused_with_pattern_and_offset),
        cmocka_unit_test(publish_refuses_bad_path_and_big_payload),
        cmocka_unit_test(publish_after_shutdown_is_closed),
        cmocka_unit_test(drain_waits_for_subscribers),
        cmocka_unit_test(subscriber_failures_are_counted),
        cmocka_unit_test(publish_from_a_handler_keeps_the_trace),
        cmocka_unit_test(publish_from_4_threads_while_subscribing_and_unsubscribing),
        cmocka_unit_test(config_bound_applies_to_subscriptions),
        cmocka_unit_test(full_subscription_does_not_starve_the_others),
        cmocka_unit_test(drop_newest_subscription_drops_and_counts),
        cmocka_unit_test(subscribe_ex_refuses_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
