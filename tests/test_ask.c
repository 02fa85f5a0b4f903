/* Requests and their answers, and what the kernel stamps on every message:
 * hy_ask / hy_ask_async / hy_reply, and the metadata accessors (id, trace id,
 * sender, send time). Each test opens its own kernel; every wait is bounded
 * (WAIT_MS), so a bug fails a test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hypha.h"
#include "support.h"
#include "dead_letters.h"

/* ------------------------------------------------------------ helpers */

/* ------------------------------------------------------------ handlers */

/* Replies "pong:" + the request's payload. */
static int pong(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    char buf[128];
    int n = snprintf(buf, sizeof buf, "pong:%.*s", (int)len, p);
    return hy_reply(ctx, buf, (size_t)n);
}

/* Replies with the request's payload reversed. */
static int reverse(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    char buf[128];
    if (len > sizeof buf)
        return HY_EINVAL;
    for (size_t i = 0; i < len; i++)
        buf[i] = p[len - 1 - i];
    return hy_reply(ctx, buf, len);
}

static int no_reply(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    return 0;
}

static int fail_without_reply(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    return HY_EPERM;
}

static int empty_reply(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    return hy_reply(ctx, NULL, 0);
}

/* ------------------------------------------------------------ hy_ask */

static void ask_returns_the_reply_payload(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "ping", pong, NULL);
    void *reply = (void *)1;
    size_t len = 0;
    assert_int_equal(hy_ask(k, "svc://ping", "hello", 5, &reply, &len, WAIT_MS), 0);
    assert_non_null(reply);
    assert_int_equal(len, 10);
    assert_memory_equal(reply, "pong:hello", 10);
    hy_free(reply);
    hy_stats s = drained_stats(k);
    assert_int_equal(s.sent, 1);
    assert_int_equal(s.handled, 1);
    close_logged(k, &log);
}

static void ask_with_an_empty_reply_gives_null_and_zero(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "empty", empty_reply, NULL);
    void *reply = (void *)1;
    size_t len = 99;
    assert_int_equal(hy_ask(k, "svc://empty", NULL, 0, &reply, &len, WAIT_MS), 0);
    assert_null(reply);
    assert_int_equal(len, 0);
    close_logged(k, &log);
}

/* Waits at the gate when the payload is "slow", then replies with its payload. */
typedef struct slow {
    gate g;
    _Atomic int reply_rc;
    _Atomic int replies;
} slow;

static int slow_echo(hy_ctx *ctx, const hy_msg *msg)
{
    slow *s = hy_subsystem_udata(ctx);
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    if (len == 4 && memcmp(p, "slow", 4) == 0)
        gate_pass(&s->g);
    atomic_store(&s->reply_rc, hy_reply(ctx, p, len));
    atomic_fetch_add(&s->replies, 1);
    return 0;
}

static void ask_times_out_and_the_late_reply_is_a_dead_letter(void **state)
{
    (void)state;
    dl_log log;
    slow s = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "slow", slow_echo, &s);
    void *reply = (void *)1;
    size_t len = 99;
    assert_int_equal(hy_ask(k, "svc://slow", "slow", 4, &reply, &len, 50), HY_ETIMEDOUT);
    assert_null(reply);
    assert_int_equal(len, 0);
    atomic_store(&s.g.open, 1);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&s.replies), 1);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.dead[HY_DEAD_LATE_REPLY], 1);
    /* The request itself was handled: it is no dead letter. */
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.dead[HY_DEAD_FAILED] + st.dead[HY_DEAD_DROPPED] +
                             st.dead[HY_DEAD_STOPPED], 0);
    pthread_mutex_lock(&log.lock);
    assert_int_equal(log.by_reason[HY_DEAD_LATE_REPLY], 1);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.e[0].payload, "slow");
    pthread_mutex_unlock(&log.lock);
    close_logged(k, &log);
}

typedef struct asker_arg {
    hy_kernel *k;
    const char *path;
    char payload[32];
    int timeout_ms;
    int rc;
    void *reply;
    size_t len;
} asker_arg;

static void *ask_in_thread(void *p)
{
    asker_arg *a = p;
    a->rc = hy_ask(a->k, a->path, a->payload, strlen(a->payload), &a->reply, &a->len,
                   a->timeout_ms);
    return NULL;
}

static void late_reply_never_reaches_the_next_asker(void **state)
{
    (void)state;
    dl_log log;
    slow s = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "slow", slow_echo, &s);
    void *reply = NULL;
    assert_int_equal(hy_ask(k, "svc://slow", "slow", 4, &reply, NULL, 50), HY_ETIMEDOUT);
    /* A second request queues behind the first, which is still at the gate:
     * the first one's reply comes while the second asker waits. */
    asker_arg a = {.k = k, .path = "svc://slow", .payload = "second", .timeout_ms = WAIT_MS};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ask_in_thread, &a), 0);
    usleep(20 * 1000);
    atomic_store(&s.g.open, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.len, 6);
    assert_memory_equal(a.reply, "second", 6);
    hy_free(a.reply);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.dead[HY_DEAD_LATE_REPLY], 1);
    close_logged(k, &log);
}

#if defined(__SANITIZE_THREAD__)
#define ASKS_PER_THREAD 100
#else
#define ASKS_PER_THREAD 500
#endif

typedef struct concurrent_arg {
    hy_kernel *k;
    int thread;
    _Atomic int wrong;
    int rc;
} concurrent_arg;

static void *ask_many(void *p)
{
    concurrent_arg *a = p;
    char req[32], want[32];
    for (int i = 0; i < ASKS_PER_THREAD; i++) {
        int n = snprintf(req, sizeof req, "t%d-req-%d", a->thread, i);
        for (int j = 0; j < n; j++)
            want[j] = req[n - 1 - j];
        void *reply = NULL;
        size_t len = 0;
        int rc = hy_ask(a->k, "svc://rev", req, (size_t)n, &reply, &len, WAIT_MS);
        if (rc != 0) {
            a->rc = rc;
            return NULL;
        }
        if (len != (size_t)n || memcmp(reply, want, len) != 0)
            atomic_fetch_add(&a->wrong, 1);
        hy_free(reply);
    }
    return NULL;
}

static void concurrent_asks_each_get_their_own_reply(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "rev", reverse, NULL);
    pthread_t th[5];
    concurrent_arg args[5];
    for (int i = 0; i < 5; i++) {
        args[i] = (concurrent_arg){.k = k, .thread = i};
        assert_int_equal(pthread_create(&th[i], NULL, ask_many, &args[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].rc, 0);
        assert_int_equal(atomic_load(&args[i].wrong), 0);
    }
    hy_stats s = drained_stats(k);
    assert_int_equal(s.handled, 5 * ASKS_PER_THREAD);
    assert_int_equal(s.dead[HY_DEAD_LATE_REPLY], 0);
    close_logged(k, &log);
}

static void ask_without_a_reply_returns_enoent_before_the_timeout(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "mute", no_reply, NULL);
    void *reply = (void *)1;
    uint64_t t0 = mono_ns();
    /* A timeout far beyond the check below: ENOENT must come from the handler
     * finishing, not from the clock. */
    assert_int_equal(hy_ask(k, "svc://mute", "x", 1, &reply, NULL, 6 * WAIT_MS), HY_ENOENT);
    assert_true(mono_ns() - t0 < (uint64_t)WAIT_MS * 1000000u);
    assert_null(reply);
    close_logged(k, &log);
}

static void ask_to_a_failing_handler_returns_ehandler(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "bad", fail_without_reply, NULL);
    void *reply = (void *)1;
    uint64_t t0 = mono_ns();
    assert_int_equal(hy_ask(k, "svc://bad", "x", 1, &reply, NULL, 6 * WAIT_MS), HY_EHANDLER);
    assert_true(mono_ns() - t0 < (uint64_t)WAIT_MS * 1000000u);
    assert_null(reply);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    pthread_mutex_lock(&log.lock);
    assert_int_equal(log.by_reason[HY_DEAD_FAILED], 1);
    pthread_mutex_unlock(&log.lock);
    close_logged(k, &log);
}

static void ask_returns_send_errors(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "ping", pong, NULL);
    void *reply = (void *)1;
    assert_int_equal(hy_ask(k, "svc://nothing", "x", 1, &reply, NULL, WAIT_MS), HY_ENOROUTE);
    assert_null(reply);
    assert_int_equal(hy_ask(k, "svc:/bad", "x", 1, &reply, NULL, WAIT_MS), HY_EBADPATH);
    assert_int_equal(hy_ask(k, "svc://ping", "x", 1, NULL, NULL, WAIT_MS), HY_EINVAL);
    assert_int_equal(hy_ask(NULL, "svc://ping", "x", 1, &reply, NULL, WAIT_MS), HY_EINVAL);
    close_logged(k, &log);
}

static void ask_to_a_stopped_actor_returns_estopped(void **state)
{
    (void)state;
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    hy_route r = {.pattern = "bad", .handler = fail_without_reply};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .strategy = HY_SUPERVISE_STOP};
    assert_int_equal(hy_subsystem_register(k, "svc", &def), 0);
    void *reply = NULL;
    assert_int_equal(hy_ask(k, "svc://bad", "x", 1, &reply, NULL, WAIT_MS), HY_EHANDLER);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(hy_ask(k, "svc://bad", "x", 1, &reply, NULL, WAIT_MS), HY_ESTOPPED);
    assert_null(reply);
    close_logged(k, &log);
}

/* Calls hy_ask from inside a handler and records what it returned. */
typedef struct inner_ask {
    _Atomic int rc;
    _Atomic int done;
    void *reply;
} inner_ask;

static int ask_from_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    inner_ask *ia = hy_subsystem_udata(ctx);
    void *reply = (void *)1;
    int rc = hy_ask(hy_ctx_kernel(ctx), "svc://ping", "x", 1, &reply, NULL, 100);
    ia->reply = reply;
    atomic_store(&ia->rc, rc);
    atomic_store(&ia->done, 1);
    return 0;
}

static void ask_from_a_handler_is_einval(void **state)
{
    (void)state;
    dl_log log;
    inner_ask ia = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "ping", pong, NULL);
    add_route(k, "inner", "go", ask_from_handler, &ia);
    assert_int_equal(hy_send(k, "inner://go", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&ia.done), 1);
    assert_int_equal(atomic_load(&ia.rc), HY_EINVAL);
    assert_null(ia.reply);
    /* Nothing was sent on its behalf. */
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.sent, 1);
    close_logged(k, &log);
}

/* ------------------------------------------------------------ hy_ask_async */

typedef struct async_log {
    _Atomic int ask_rc;
    _Atomic int reply_rc;
    _Atomic int second_reply_rc;
    _Atomic int answers;
    char answer[64];
    uint64_t front_self;
    uint64_t back_self;
    uint64_t answer_sender;
    uint64_t start_trace;
    uint64_t answer_trace;
    int bad_reply_to_rc;
    int null_reply_to_rc;
} async_log;

static int front_start(hy_ctx *ctx, const hy_msg *msg)
{
    async_log *a = hy_subsystem_udata(ctx);
    a->front_self = hy_self(ctx);
    a->start_trace = hy_msg_trace_id(msg);
    a->bad_reply_to_rc = hy_ask_async(ctx, "back://double", "21", 2, "not a path");
    a->null_reply_to_rc = hy_ask_async(ctx, "back://double", "21", 2, NULL);
    atomic_store(&a->ask_rc, hy_ask_async(ctx, "back://double", "21", 2, "front://answer"));
    return 0;
}

static int back_double(hy_ctx *ctx, const hy_msg *msg)
{
    async_log *a = hy_subsystem_udata(ctx);
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)len, p);
    int n = snprintf(buf, sizeof buf, "%d", 2 * atoi(buf));
    a->back_self = hy_self(ctx);
    atomic_store(&a->reply_rc, hy_reply(ctx, buf, (size_t)n));
    atomic_store(&a->second_reply_rc, hy_reply(ctx, "again", 5));
    return 0;
}

static int front_answer(hy_ctx *ctx, const hy_msg *msg)
{
    async_log *a = hy_subsystem_udata(ctx);
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    snprintf(a->answer, sizeof a->answer, "%.*s", (int)len, p);
    a->answer_sender = hy_msg_sender(msg);
    a->answer_trace = hy_msg_trace_id(msg);
    atomic_fetch_add(&a->answers, 1);
    return 0;
}

static void ask_async_reply_arrives_as_a_message_at_reply_to(void **state)
{
    (void)state;
    dl_log log;
    async_log a = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    hy_route front[] = {{.pattern = "start", .handler = front_start},
                        {.pattern = "answer", .handler = front_answer}};
    hy_subsystem_def def = {.routes = front, .nroutes = 2, .udata = &a};
    assert_int_equal(hy_subsystem_register(k, "front", &def), 0);
    add_route(k, "back", "double", back_double, &a);
    assert_int_equal(hy_send(k, "front://start", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&a.ask_rc), 0);
    assert_int_equal(a.bad_reply_to_rc, HY_EBADPATH);
    assert_int_equal(a.null_reply_to_rc, HY_EINVAL);
    assert_int_equal(atomic_load(&a.reply_rc), 0);
    assert_int_equal(atomic_load(&a.second_reply_rc), HY_EEXIST);
    assert_int_equal(atomic_load(&a.answers), 1);
    assert_string_equal(a.answer, "42");
    /* The answer is an ordinary message from the replying actor, in the chain
     * the first message started. */
    assert_int_equal(a.answer_sender, a.back_self);
    assert_true(a.back_self != a.front_self);
    assert_int_equal(a.answer_trace, a.start_trace);
    close_logged(k, &log);
}

/* ------------------------------------------------------------ hy_reply */

typedef struct reply_twice_log {
    _Atomic int first;
    _Atomic int second;
} reply_twice_log;

static int reply_twice(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    reply_twice_log *r = hy_subsystem_udata(ctx);
    atomic_store(&r->first, hy_reply(ctx, "one", 3));
    atomic_store(&r->second, hy_reply(ctx, "two", 3));
    return 0;
}

static void reply_twice_is_eexist_and_the_first_reply_wins(void **state)
{
    (void)state;
    dl_log log;
    reply_twice_log r = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "twice", reply_twice, &r);
    void *reply = NULL;
    size_t len = 0;
    assert_int_equal(hy_ask(k, "svc://twice", NULL, 0, &reply, &len, WAIT_MS), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(reply, "one", 3);
    hy_free(reply);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&r.first), 0);
    assert_int_equal(atomic_load(&r.second), HY_EEXIST);
    close_logged(k, &log);
}

typedef struct plain_reply_log {
    _Atomic int rc;
    _Atomic int done;
} plain_reply_log;

static int reply_to_plain(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    plain_reply_log *p = hy_subsystem_udata(ctx);
    atomic_store(&p->rc, hy_reply(ctx, "x", 1));
    atomic_store(&p->done, 1);
    return 0;
}

static void reply_to_a_plain_message_is_enoent(void **state)
{
    (void)state;
    dl_log log;
    plain_reply_log p = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    add_route(k, "svc", "plain", reply_to_plain, &p);
    assert_int_equal(hy_send(k, "svc://plain", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&p.done), 1);
    assert_int_equal(atomic_load(&p.rc), HY_ENOENT);
    close_logged(k, &log);
}

/* ------------------------------------------------------------ metadata */

#define ID_THREADS 2
#define ID_PER_THREAD 2000
#define ID_TOTAL (ID_THREADS * ID_PER_THREAD * 2)

typedef struct id_log {
    _Atomic int n;
    uint64_t ids[ID_TOTAL];
    _Atomic int zero;
} id_log;

static id_log g_ids;

/* Records the message's id; "ids://ext" also forwards one message, so ids made
 * on workers are checked alongside ids made on sender threads. */
static int record_id(hy_ctx *ctx, const hy_msg *msg)
{
    uint64_t id = hy_msg_id(msg);
    if (id == 0)
        atomic_fetch_add(&g_ids.zero, 1);
    int i = atomic_fetch_add(&g_ids.n, 1);
    if (i < ID_TOTAL)
        g_ids.ids[i] = id;
    size_t plen;
    const char *path = hy_msg_path(msg, &plen);
    if (strcmp(path, "ids://ext") == 0)
        return hy_send(hy_ctx_kernel(ctx), "ids://int", NULL, 0);
    return 0;
}

static void *send_ids(void *p)
{
    hy_kernel *k = p;
    for (int i = 0; i < ID_PER_THREAD; i++)
        if (hy_send(k, "ids://ext", NULL, 0) != 0)
            return (void *)1;
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void message_ids_are_unique_and_nonzero(void **state)
{
    (void)state;
    memset(&g_ids, 0, sizeof g_ids);
    dl_log log;
    hy_kernel *k = open_logged(&log, (hy_config){0});
    hy_route r[] = {{.pattern = "ext", .handler = record_id},
                    {.pattern = "int", .handler = record_id}};
    hy_subsystem_def def = {.routes = r, .nroutes = 2};
    assert_int_equal(hy_subsystem_register(k, "ids", &def), 0);
    pthread_t th[ID_THREADS];
    for (int i = 0; i < ID_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, send_ids, k), 0);
    for (int i = 0; i < ID_THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&g_ids.n), ID_TOTAL);
    assert_int_equal(atomic_load(&g_ids.zero), 0);
    qsort(g_ids.ids, ID_TOTAL, sizeof g_ids.ids[0], cmp_u64);
    for (int i = 1; i < ID_TOTAL; i++)
        if (g_ids.ids[i] == g_ids.ids[i - 1])
            fail_msg("id %llu given twice", (unsigned long long)g_ids.ids[i]);
    close_logged(k, &log);
}

/* Three hops: a://x sends to b://x, which sends to c://x. Each records its
 * message's metadata and its own actor id. */
typedef struct hop {
    uint64_t id, trace, sender, self, sent_ns, handled_ns;
} hop;

typedef struct hops {
    hop a, b, c;
    _Atomic int done;
} hops;

static void record_hop(hy_ctx *ctx, const hy_msg *msg, hop *h)
{
    h->sent_ns = hy_msg_sent_ns(msg);
    h->id = hy_msg_id(msg);
    h->trace = hy_msg_trace_id(msg);
    h->sender = hy_msg_sender(msg);
    h->self = hy_self(ctx);
    h->handled_ns = mono_ns();
}

static int hop_a(hy_ctx *ctx, const hy_msg *msg)
{
    hops *h = hy_subsystem_udata(ctx);
    record_hop(ctx, msg, &h->a);
    return hy_send(hy_ctx_kernel(ctx), "b://x", NULL, 0);
}

static int hop_b(hy_ctx *ctx, const hy_msg *msg)
{
    hops *h = hy_subsystem_udata(ctx);
    record_hop(ctx, msg, &h->b);
    return hy_send(hy_ctx_kernel(ctx), "c://x", NULL, 0);
}

static int hop_c(hy_ctx *ctx, const hy_msg *msg)
{
    hops *h = hy_subsystem_udata(ctx);
    record_hop(ctx, msg, &h->c);
    atomic_store(&h->done, 1);
    return 0;
}

static hy_kernel *open_hops(dl_log *log, hops *h)
{
    hy_kernel *k = open_logged(log, (hy_config){0});
    add_route(k, "a", "x", hop_a, h);
    add_route(k, "b", "x", hop_b, h);
    add_route(k, "c", "x", hop_c, h);
    return k;
}

static void trace_id_follows_the_chain_across_three_hops(void **state)
{
    (void)state;
    dl_log log;
    hops h = {0};
    hy_kernel *k = open_hops(&log, &h);
    assert_int_equal(hy_send(k, "a://x", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&h.done), 1);
    assert_int_equal(h.b.trace, h.a.id);
    assert_int_equal(h.c.trace, h.a.id);
    assert_true(h.b.id != h.a.id && h.c.id != h.a.id && h.c.id != h.b.id);
    /* A second chain is a different trace. */
    uint64_t first_trace = h.c.trace;
    atomic_store(&h.done, 0);
    assert_int_equal(hy_send(k, "a://x", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(h.c.trace, h.a.id);
    assert_true(h.c.trace != first_trace);
    close_logged(k, &log);
}

static void external_send_is_its_own_trace(void **state)
{
    (void)state;
    dl_log log;
    hops h = {0};
    hy_kernel *k = open_hops(&log, &h);
    assert_int_equal(hy_send(k, "c://x", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_true(h.c.id != 0);
    assert_int_equal(h.c.trace, h.c.id);
    close_logged(k, &log);
}

static void sender_is_zero_outside_and_the_sending_actor_inside(void **state)
{
    (void)state;
    dl_log log;
    hops h = {0};
    hy_kernel *k = open_hops(&log, &h);
    assert_int_equal(hy_send(k, "a://x", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(h.a.sender, 0);
    assert_true(h.a.self != 0);
    assert_int_equal(h.b.sender, h.a.self);
    assert_int_equal(h.c.sender, h.b.self);
    assert_true(h.a.self != h.b.self && h.b.self != h.c.self);
    close_logged(k, &log);
}

/* The send time comes from the coarse clock: it may lag CLOCK_MONOTONIC by a
 * few ticks (a tickless kernel updates it when a CPU takes a tick), never
 * lead it. */
static void sent_ns_lies_between_send_and_handling(void **state)
{
    (void)state;
    dl_log log;
    hops h = {0};
    hy_kernel *k = open_hops(&log, &h);
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    uint64_t tick = (uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec;
    uint64_t lag = 2 * tick > 10000000u ? 2 * tick : 10000000u;
    for (int round = 0; round < 3; round++) {
        atomic_store(&h.done, 0);
        uint64_t before = mono_ns();
        assert_int_equal(hy_send(k, "a://x", NULL, 0), 0);
        assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
        uint64_t after = mono_ns();
        assert_int_equal(atomic_load(&h.done), 1);
        /* Each hop was sent after (within the lag) the one before it, and
         * before its own handler read the clock. */
        assert_in_range(h.a.sent_ns, before - lag, h.a.handled_ns);
        assert_in_range(h.b.sent_ns, h.a.sent_ns, h.b.handled_ns);
        assert_in_range(h.c.sent_ns, h.b.sent_ns, h.c.handled_ns);
        assert_true(h.c.handled_ns <= after);
        usleep(20 * 1000); /* a later round: the clock has moved on */
    }
    close_logged(k, &log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ask_returns_the_reply_payload),
        cmocka_unit_test(ask_with_an_empty_reply_gives_null_and_zero),
        cmocka_unit_test(ask_times_out_and_the_late_reply_is_a_dead_letter),
        cmocka_unit_test(late_reply_never_reaches_the_next_asker),
        cmocka_unit_test(concurrent_asks_each_get_their_own_reply),
        cmocka_unit_test(ask_without_a_reply_returns_enoent_before_the_timeout),
        cmocka_unit_test(ask_to_a_failing_handler_returns_ehandler),
        cmocka_unit_test(ask_returns_send_errors),
        cmocka_unit_test(ask_to_a_stopped_actor_returns_estopped),
        cmocka_unit_test(ask_from_a_handler_is_einval),
        cmocka_unit_test(ask_async_reply_arrives_as_a_message_at_reply_to),
        cmocka_unit_test(reply_twice_is_eexist_and_the_first_reply_wins),
        cmocka_unit_test(reply_to_a_plain_message_is_enoent),
        cmocka_unit_test(message_ids_are_unique_and_nonzero),
        cmocka_unit_test(trace_id_follows_the_chain_across_three_hops),
        cmocka_unit_test(external_send_is_its_own_trace),
        cmocka_unit_test(sender_is_zero_outside_and_the_sending_actor_inside),
        cmocka_unit_test(sent_ns_lies_between_send_and_handling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
