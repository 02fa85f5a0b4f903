/* When messages are not handled: bounded mailboxes and their overflow
 * policies, supervision strategies, and dead letters counted by reason.
 *
 * Many tests hold an actor's handler at a gate so that its mailbox fills while
 * the first message is being handled; a gate opens from the test thread and
 * every wait is bounded (WAIT_MS), so a bug fails a test instead of hanging
 * it. Each test opens its own kernel. */
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

#ifdef SANITIZED
#define STRESS_PER_THREAD 25000u
#else
#define STRESS_PER_THREAD 250000u
#endif

/* ------------------------------------------------------------ helpers */

static int send_str(hy_kernel *k, const char *path, const char *s)
{
    return hy_send(k, path, s, strlen(s));
}

/* The bounded-mailbox case of every policy: "1", "2" and "3" fill box://m's
 * mailbox of 3 (each must be accepted), then "4" meets the policy: its code. */
static int send_1_2_3_then_4(hy_kernel *k)
{
    static const char *const first[] = {"1", "2", "3"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(send_str(k, "box://m", first[i]), 0);
    return send_str(k, "box://m", "4");
}

/* ------------------------------------------------------------ the recording actor */

/* One actor's view: payloads it handled, in order. The payload "gate" waits
 * at the gate; "fail" makes the handler return HY_EPERM. Payloads are
 * NUL-free strings. */
#define BOX_MAX 64

typedef struct box {
    gate g;
    _Atomic int handled;   /* payloads recorded (not the gate's own message) */
    _Atomic int failures;  /* handler calls that returned an error */
    char seen[BOX_MAX][16];
    int generation[BOX_MAX]; /* the state's generation when each was handled */
    int count_in_state[BOX_MAX];
    _Atomic int inits;
    _Atomic int frees;
} box;

/* A state made by box_init: which init made it, and what it has counted. */
typedef struct box_state {
    int generation;
    int count;
} box_state;

static int box_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)key;
    (void)key_len;
    box *b = udata;
    box_state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->generation = atomic_fetch_add(&b->inits, 1) + 1;
    *state = s;
    return 0;
}

static void box_free(void *udata, void *state)
{
    box *b = udata;
    atomic_fetch_add(&b->frees, 1);
    free(state);
}

static int box_handler(hy_ctx *ctx, const hy_msg *msg)
{
    box *b = hy_subsystem_udata(ctx);
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    if (len == 4 && memcmp(p, "gate", 4) == 0) {
        gate_pass(&b->g);
        return 0;
    }
    box_state *s = hy_state(ctx);
    if (s)
        s->count++;
    if (len == 4 && memcmp(p, "fail", 4) == 0) {
        atomic_fetch_add(&b->failures, 1);
        return HY_EPERM;
    }
    int i = atomic_load(&b->handled);
    if (i < BOX_MAX) {
        snprintf(b->seen[i], sizeof b->seen[i], "%.*s", (int)len, p);
        b->generation[i] = s ? s->generation : 0;
        b->count_in_state[i] = s ? s->count : 0;
    }
    /* release: the test thread reads seen[i] after it sees the count */
    atomic_store(&b->handled, i + 1);
    return 0;
}

typedef struct box_opts {
    uint32_t capacity;
    hy_overflow overflow;
    int block_timeout_ms;
    hy_supervision strategy;
    uint32_t max_restarts;
    uint32_t restart_window_ms;
    bool with_state;
    const char *key; /* route "m/{id}" keyed by id when set, else route "m" */
} box_opts;

static void register_box(hy_kernel *k, const char *name, box *b, box_opts o)
{
    hy_route r = {.pattern = o.key ? "m/{id}" : "m", .handler = box_handler, .key = o.key};
    hy_subsystem_def def = {
        .routes = &r,
        .nroutes = 1,
        .udata = b,
        .state_init = o.with_state ? box_init : NULL,
        .state_free = o.with_state ? box_free : NULL,
        .mailbox_capacity = o.capacity,
        .overflow = o.overflow,
        .block_timeout_ms = o.block_timeout_ms,
        .strategy = o.strategy,
        .max_restarts = o.max_restarts,
        .restart_window_ms = o.restart_window_ms,
    };
    int rc = hy_subsystem_register(k, name, &def);
    if (rc != 0)
        fail_msg("register %s: %s: %s", name, hy_strerror(rc), hy_errdetail());
}

/* Send "gate" to path and wait until the handler holds it: from then on the
 * mailbox holds only what the test sends next. */
static void hold_actor(hy_kernel *k, const char *path, box *b)
{
    assert_int_equal(send_str(k, path, "gate"), 0);
    assert_true(wait_for(&b->g.entered, 1));
}

static void assert_seen(box *b, const char *const *want, int n)
{
    assert_int_equal(atomic_load(&b->handled), n);
    for (int i = 0; i < n; i++)
        assert_string_equal(b->seen[i], want[i]);
}

/* ------------------------------------------------------------ bounded mailboxes */

static void fail_policy_refuses_fourth_message_with_efull(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.capacity = 3, .overflow = HY_OVERFLOW_FAIL});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_1_2_3_then_4(k), HY_EFULL);
    /* The refusal is a dead letter at once, on the sender's thread. */
    assert_int_equal(dl_count(&log, HY_DEAD_FULL), 1);
    assert_string_equal(log.e[0].payload, "4");
    assert_string_equal(log.e[0].path, "box://m");
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2", "3"};
    assert_seen(&b, want, 3);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.sent, 4); /* gate, 1, 2, 3: the refused one was not accepted */
    assert_int_equal(s.handled, 4);
    assert_int_equal(s.dead[HY_DEAD_FULL], 1);
    assert_int_equal(s.dead[HY_DEAD_DROPPED], 0);
    assert_int_equal(log.n, 1);
    close_logged(k, &log);
}

static void fail_policy_has_room_again_once_the_mailbox_drains(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.capacity = 2, .overflow = HY_OVERFLOW_FAIL});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(send_str(k, "box://m", "2"), 0);
    assert_int_equal(send_str(k, "box://m", "x"), HY_EFULL);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    /* Every slot was given back: a full mailbox's worth fits again. */
    assert_int_equal(send_str(k, "box://m", "3"), 0);
    assert_int_equal(send_str(k, "box://m", "4"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2", "3", "4"};
    assert_seen(&b, want, 4);
    assert_int_equal(dl_count(&log, HY_DEAD_FULL), 1);
    close_logged(k, &log);
}

static void drop_oldest_keeps_newest_and_dead_letters_the_oldest(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.capacity = 3, .overflow = HY_OVERFLOW_DROP_OLDEST});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_1_2_3_then_4(k), 0);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"2", "3", "4"};
    assert_seen(&b, want, 3);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.e[0].reason, HY_DEAD_DROPPED);
    assert_string_equal(log.e[0].payload, "1");
    assert_string_equal(log.e[0].path, "box://m");
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.sent, 5);
    assert_int_equal(s.handled, 4);
    assert_int_equal(s.dead[HY_DEAD_DROPPED], 1);
    assert_int_equal(s.dead[HY_DEAD_FULL], 0);
    assert_int_equal(s.queued, 0);
    close_logged(k, &log);
}

static void drop_newest_keeps_oldest_and_dead_letters_the_new_one(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.capacity = 3, .overflow = HY_OVERFLOW_DROP_NEWEST});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_1_2_3_then_4(k), 0);
    /* Dropped at the send, before the actor moves on. */
    assert_int_equal(dl_count(&log, HY_DEAD_DROPPED), 1);
    assert_string_equal(log.e[0].payload, "4");
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2", "3"};
    assert_seen(&b, want, 3);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.sent, 5);
    assert_int_equal(s.handled, 4);
    assert_int_equal(s.dead[HY_DEAD_DROPPED], 1);
    assert_int_equal(s.sent - s.handled, s.dead[HY_DEAD_DROPPED]);
    assert_int_equal(log.n, 1);
    close_logged(k, &log);
}

typedef struct sender_arg {
    hy_kernel *k;
    const char *path;
    const char *payload;
    int rc;
    _Atomic int done;
} sender_arg;

static void *send_in_thread(void *p)
{
    sender_arg *a = p;
    a->rc = send_str(a->k, a->path, a->payload);
    atomic_store(&a->done, 1);
    return NULL;
}

static void block_policy_sender_waits_until_room_then_succeeds(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    /* A timeout longer than any wait here: the send must succeed by room. */
    register_box(k, "box", &b,
                 (box_opts){.capacity = 3, .overflow = HY_OVERFLOW_BLOCK,
                            .block_timeout_ms = 4 * WAIT_MS});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(send_str(k, "box://m", "2"), 0);
    assert_int_equal(send_str(k, "box://m", "3"), 0);
    sender_arg a = {.k = k, .path = "box://m", .payload = "4"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_in_thread, &a), 0);
    usleep(100 * 1000);
    /* The gate is closed, so the mailbox cannot have room yet. */
    assert_int_equal(atomic_load(&a.done), 0);
    gate_open(&b.g);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2", "3", "4"};
    assert_seen(&b, want, 4);
    assert_int_equal(log.n, 0);
    close_logged(k, &log);
}

static void block_policy_times_out_with_efull(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b,
                 (box_opts){.capacity = 1, .overflow = HY_OVERFLOW_BLOCK,
                            .block_timeout_ms = 100});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    uint64_t t0 = mono_ns();
    assert_int_equal(send_str(k, "box://m", "2"), HY_EFULL);
    /* It did wait out its timeout (a lower bound only: no speed is asserted). */
    assert_true(mono_ns() - t0 >= 100u * 1000000u);
    assert_int_equal(dl_count(&log, HY_DEAD_FULL), 1);
    assert_string_equal(log.e[0].payload, "2");
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1"};
    assert_seen(&b, want, 1);
    close_logged(k, &log);
}

static void block_policy_timeout_defaults_from_config(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){.block_timeout_ms = 150});
    register_box(k, "box", &b, (box_opts){.capacity = 1, .overflow = HY_OVERFLOW_BLOCK});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    uint64_t t0 = mono_ns();
    assert_int_equal(send_str(k, "box://m", "2"), HY_EFULL);
    assert_true(mono_ns() - t0 >= 150u * 1000000u);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    close_logged(k, &log);
}

/* Forwards its payload to box://m and records what the send returned. */
typedef struct forwarder {
    _Atomic int rc;
    _Atomic int done;
} forwarder;

static int forward_to_box(hy_ctx *ctx, const hy_msg *msg)
{
    forwarder *f = hy_subsystem_udata(ctx);
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    atomic_store(&f->rc, hy_send(hy_ctx_kernel(ctx), "box://m", p, len));
    atomic_store(&f->done, 1);
    return 0;
}

static void block_policy_inside_a_handler_fails_at_once(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    forwarder f = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    /* A block timeout far past WAIT_MS: a handler that blocked would be seen. */
    register_box(k, "box", &b,
                 (box_opts){.capacity = 1, .overflow = HY_OVERFLOW_BLOCK,
                            .block_timeout_ms = 3 * WAIT_MS});
    hy_route r = {.pattern = "in", .handler = forward_to_box};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = &f};
    assert_int_equal(hy_subsystem_register(k, "fwd", &def), 0);
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(send_str(k, "fwd://in", "2"), 0);
    /* The forwarding handler finished while the box was still full. */
    assert_true(wait_for(&f.done, 1));
    assert_int_equal(atomic_load(&b.g.open), 0);
    assert_int_equal(atomic_load(&f.rc), HY_EFULL);
    assert_int_equal(dl_count(&log, HY_DEAD_FULL), 1);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1"};
    assert_seen(&b, want, 1);
    close_logged(k, &log);
}

static void config_capacity_applies_to_subsystems_that_set_none(void **state)
{
    (void)state;
    dl_log log;
    box b = {0}, own = {0};
    hy_kernel *k = open_logged(
            &log, (hy_config){.mailbox_capacity = 2, .overflow = HY_OVERFLOW_FAIL});
    register_box(k, "box", &b, (box_opts){0});
    /* A subsystem's own bound wins over the config's, with its own policy. */
    register_box(k, "own", &own,
                 (box_opts){.capacity = 3, .overflow = HY_OVERFLOW_DROP_NEWEST});
    hold_actor(k, "box://m", &b);
    hold_actor(k, "own://m", &own);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(send_str(k, "box://m", "2"), 0);
    assert_int_equal(send_str(k, "box://m", "3"), HY_EFULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_str(k, "own://m", "o"), 0);
    assert_int_equal(send_str(k, "own://m", "x"), 0);
    assert_int_equal(dl_count(&log, HY_DEAD_DROPPED), 1);
    gate_open(&b.g);
    gate_open(&own.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2"};
    assert_seen(&b, want, 2);
    assert_int_equal(atomic_load(&own.handled), 3);
    close_logged(k, &log);
}

static void unbounded_by_default(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){0});
    hold_actor(k, "box://m", &b);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(send_str(k, "box://m", "m"), 0);
    gate_open(&b.g);
    hy_stats s = drained_stats(k);
    assert_int_equal(s.handled, 1001);
    assert_int_equal(log.n, 0);
    close_logged(k, &log);
}

static void batch_send_respects_the_mailbox_bound(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.capacity = 2, .overflow = HY_OVERFLOW_FAIL});
    hold_actor(k, "box://m", &b);
    hy_send_item items[3] = {{"box://m", "1", 1}, {"box://m", "2", 1}, {"box://m", "3", 1}};
    size_t accepted = 99;
    assert_int_equal(hy_send_batch(k, items, 3, &accepted), HY_EFULL);
    assert_int_equal(accepted, 2);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2"};
    assert_seen(&b, want, 2);
    close_logged(k, &log);
}

/* ------------------------------------------------------------ supervision */

static void resume_dead_letters_the_failure_and_goes_on(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.with_state = true}); /* strategy 0: resume */
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(send_str(k, "box://m", "fail"), 0);
    assert_int_equal(send_str(k, "box://m", "2"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "2"};
    assert_seen(&b, want, 2);
    /* Same state throughout: resume neither frees nor re-makes it. */
    assert_int_equal(atomic_load(&b.inits), 1);
    assert_int_equal(b.count_in_state[1], 3);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.e[0].reason, HY_DEAD_FAILED);
    assert_string_equal(log.e[0].payload, "fail");
    assert_string_equal(log.e[0].path, "box://m");
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.dead[HY_DEAD_FAILED], 1);
    assert_int_equal(s.restarts, 0);
    assert_int_equal(s.stopped, 0);
    close_logged(k, &log);
}

static void restart_makes_fresh_state_and_keeps_the_queue_in_order(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b,
                 (box_opts){.strategy = HY_SUPERVISE_RESTART, .with_state = true});
    assert_int_equal(atomic_load(&b.inits), 1); /* the subsystem's actor, at registration */
    hold_actor(k, "box://m", &b);
    const char *queue[] = {"1", "fail", "3", "4", "5"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(send_str(k, "box://m", queue[i]), 0);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1", "3", "4", "5"};
    assert_seen(&b, want, 4);
    assert_int_equal(atomic_load(&b.inits), 2);
    assert_int_equal(atomic_load(&b.frees), 1);
    /* 1 ran on the first state; 3, 4, 5 on the new one, which counts from 0. */
    assert_int_equal(b.generation[0], 1);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(b.generation[i], 2);
        assert_int_equal(b.count_in_state[i], i);
    }
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.restarts, 1);
    assert_int_equal(s.stopped, 0);
    assert_int_equal(s.dead[HY_DEAD_FAILED], 1);
    close_logged(k, &log);
    assert_int_equal(atomic_load(&b.frees), 2); /* close frees the live state */
}

static void restart_of_a_keyed_actor_passes_its_key_to_state_init(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b,
                 (box_opts){.strategy = HY_SUPERVISE_RESTART, .with_state = true,
                            .key = "id"});
    assert_int_equal(send_str(k, "box://m/a", "1"), 0);
    assert_int_equal(send_str(k, "box://m/a", "fail"), 0);
    assert_int_equal(send_str(k, "box://m/a", "2"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    /* subsystem actor + key "a" + its restart */
    assert_int_equal(atomic_load(&b.inits), 3);
    const char *want[] = {"1", "2"};
    assert_seen(&b, want, 2);
    assert_int_equal(b.count_in_state[1], 1);
    close_logged(k, &log);
}

static void restart_storm_stops_the_actor(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    /* A window no test run outlasts: every restart here is inside it. */
    register_box(k, "box", &b,
                 (box_opts){.strategy = HY_SUPERVISE_RESTART, .with_state = true,
                            .max_restarts = 2, .restart_window_ms = 600000});
    hold_actor(k, "box://m", &b);
    const char *queue[] = {"fail", "fail", "1", "fail", "2", "3"};
    for (int i = 0; i < 6; i++)
        assert_int_equal(send_str(k, "box://m", queue[i]), 0);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    /* Two restarts are allowed; the third failure is one too many. */
    const char *want[] = {"1"};
    assert_seen(&b, want, 1);
    assert_int_equal(atomic_load(&b.failures), 3);
    assert_int_equal(atomic_load(&b.inits), 3);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.restarts, 2);
    assert_int_equal(s.stopped, 1);
    assert_int_equal(s.dead[HY_DEAD_FAILED], 3);
    assert_int_equal(s.dead[HY_DEAD_STOPPED], 2); /* "2" and "3", queued behind */
    assert_int_equal(dl_count(&log, HY_DEAD_STOPPED), 2);
    assert_string_equal(log.e[log.n - 1].payload, "3");
    assert_int_equal(log.e[log.n - 1].reason, HY_DEAD_STOPPED);
    /* Once stopped, sends are refused. */
    assert_int_equal(send_str(k, "box://m", "4"), HY_ESTOPPED);
    assert_int_equal(s.sent - s.handled,
                     s.dead[HY_DEAD_FAILED] + s.dead[HY_DEAD_DROPPED] + s.dead[HY_DEAD_STOPPED]);
    close_logged(k, &log);
}

static void restarts_outside_the_window_do_not_stop_the_actor(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b,
                 (box_opts){.strategy = HY_SUPERVISE_RESTART, .with_state = true,
                            .max_restarts = 1, .restart_window_ms = 50});
    for (int i = 0; i < 3; i++) {
        assert_int_equal(send_str(k, "box://m", "fail"), 0);
        assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
        usleep(120 * 1000); /* past the window: the count starts again */
    }
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1"};
    assert_seen(&b, want, 1);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.restarts, 3);
    assert_int_equal(s.stopped, 0);
    close_logged(k, &log);
}

static void stop_dead_letters_later_messages_and_refuses_sends(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.strategy = HY_SUPERVISE_STOP});
    hold_actor(k, "box://m", &b);
    assert_int_equal(send_str(k, "box://m", "1"), 0);
    assert_int_equal(send_str(k, "box://m", "fail"), 0);
    assert_int_equal(send_str(k, "box://m", "2"), 0);
    assert_int_equal(send_str(k, "box://m", "3"), 0);
    gate_open(&b.g);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"1"};
    assert_seen(&b, want, 1);
    assert_int_equal(dl_count(&log, HY_DEAD_FAILED), 1);
    assert_int_equal(dl_count(&log, HY_DEAD_STOPPED), 2);
    assert_string_equal(log.e[1].payload, "2");
    assert_string_equal(log.e[2].payload, "3");
    assert_int_equal(send_str(k, "box://m", "4"), HY_ESTOPPED);
    hy_send_item item = {"box://m", "5", 1};
    size_t accepted = 9;
    assert_int_equal(hy_send_batch(k, &item, 1, &accepted), HY_ESTOPPED);
    assert_int_equal(accepted, 0);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.stopped, 1);
    assert_int_equal(s.dead[HY_DEAD_STOPPED], 2);
    /* Refused sends were never accepted: the books still balance. */
    assert_int_equal(s.sent - s.handled,
                     s.dead[HY_DEAD_FAILED] + s.dead[HY_DEAD_DROPPED] + s.dead[HY_DEAD_STOPPED]);
    close_logged(k, &log);
}

static void stop_of_one_keyed_actor_leaves_the_others_running(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.strategy = HY_SUPERVISE_STOP, .key = "id"});
    assert_int_equal(send_str(k, "box://m/a", "fail"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(send_str(k, "box://m/a", "1"), HY_ESTOPPED);
    assert_int_equal(send_str(k, "box://m/b", "2"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    const char *want[] = {"2"};
    assert_seen(&b, want, 1);
    close_logged(k, &log);
}

static void escalate_reports_subsystem_key_and_error(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "esc", &b, (box_opts){.strategy = HY_SUPERVISE_ESCALATE, .key = "id"});
    assert_int_equal(send_str(k, "esc://m/k42", "fail"), 0);
    assert_int_equal(send_str(k, "esc://m/k42", "1"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(log.escalations, 1);
    assert_string_equal(log.esc_subsystem, "esc");
    assert_false(log.esc_key_null);
    assert_string_equal(log.esc_key, "k42");
    assert_int_equal(log.esc_err, HY_EPERM);
    /* Then it goes on, and the failure is still a dead letter. */
    const char *want[] = {"1"};
    assert_seen(&b, want, 1);
    assert_int_equal(dl_count(&log, HY_DEAD_FAILED), 1);
    close_logged(k, &log);
}

static void escalate_from_a_subsystem_actor_gives_a_null_key(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "esc", &b, (box_opts){.strategy = HY_SUPERVISE_ESCALATE});
    assert_int_equal(send_str(k, "esc://m", "fail"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(log.escalations, 1);
    assert_string_equal(log.esc_subsystem, "esc");
    assert_true(log.esc_key_null);
    assert_int_equal(log.esc_err, HY_EPERM);
    close_logged(k, &log);
}

/* ------------------------------------------------------------ dead letters */

static void dead_letters_are_counted_by_reason(void **state)
{
    (void)state;
    dl_log log;
    box b = {0}, drop = {0}, full = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){0});
    register_box(k, "drop", &drop, (box_opts){.capacity = 1, .overflow = HY_OVERFLOW_DROP_NEWEST});
    register_box(k, "full", &full, (box_opts){.capacity = 1, .overflow = HY_OVERFLOW_FAIL});
    hold_actor(k, "drop://m", &drop);
    hold_actor(k, "full://m", &full);
    assert_int_equal(send_str(k, "box://m", "fail"), 0);
    assert_int_equal(send_str(k, "box://m", "fail"), 0);
    assert_int_equal(send_str(k, "drop://m", "1"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_str(k, "drop://m", "d"), 0);
    assert_int_equal(send_str(k, "full://m", "1"), 0);
    assert_int_equal(send_str(k, "full://m", "f"), HY_EFULL);
    assert_int_equal(send_str(k, "nowhere://m", "n"), HY_ENOROUTE);
    gate_open(&drop.g);
    gate_open(&full.g);
    hy_stats s = drained_stats(k);
    assert_int_equal(s.dead[HY_DEAD_FAILED], 2);
    assert_int_equal(s.dead[HY_DEAD_DROPPED], 3);
    assert_int_equal(s.dead[HY_DEAD_STOPPED], 0);
    assert_int_equal(s.dead[HY_DEAD_NOROUTE], 1);
    assert_int_equal(s.dead[HY_DEAD_FULL], 1);
    assert_int_equal(s.dead[HY_DEAD_LATE_REPLY], 0);
    for (int r = 0; r < HY_DEAD__COUNT; r++)
        assert_int_equal(dl_count(&log, (hy_dead_reason)r), (int)s.dead[r]);
    hy_subsystem_stats ss;
    assert_int_equal(hy_subsystem_stats_get(k, "drop", &ss), 0);
    assert_int_equal(ss.dead, 3);
    assert_int_equal(hy_subsystem_stats_get(k, "full", &ss), 0);
    assert_int_equal(ss.dead, 0); /* the refused one was never its message */
    close_logged(k, &log);
}

static void dead_letter_callback_sees_path_payload_and_reason(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){.key = "id"});
    assert_int_equal(send_str(k, "box://m/seven", "fail"), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.e[0].path, "box://m/seven");
    assert_string_equal(log.e[0].payload, "fail");
    assert_int_equal(log.e[0].reason, HY_DEAD_FAILED);
    close_logged(k, &log);
}

static void unknown_route_is_a_noroute_dead_letter(void **state)
{
    (void)state;
    dl_log log;
    box b = {0};
    hy_kernel *k = open_logged(&log, (hy_config){0});
    register_box(k, "box", &b, (box_opts){0});
    assert_int_equal(send_str(k, "nosuch://thing", "p1"), HY_ENOROUTE);
    assert_int_equal(send_str(k, "box://other", "p2"), HY_ENOROUTE);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.e[0].reason, HY_DEAD_NOROUTE);
    assert_string_equal(log.e[0].path, "nosuch://thing");
    assert_string_equal(log.e[0].payload, "p1");
    assert_int_equal(log.e[1].reason, HY_DEAD_NOROUTE);
    assert_string_equal(log.e[1].path, "box://other");
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.dead[HY_DEAD_NOROUTE], 2);
    assert_int_equal(s.sent, 0);
    close_logged(k, &log);
}

static void dead_letter_reasons_have_text(void **state)
{
    (void)state;
    for (int r = 0; r < HY_DEAD__COUNT; r++) {
        assert_non_null(hy_dead_reason_str(r));
        assert_string_not_equal(hy_dead_reason_str(r), "unknown reason");
    }
    assert_string_equal(hy_dead_reason_str(HY_DEAD__COUNT), "unknown reason");
}

/* Stress: four senders over a mix of routes whose handlers fail by payload, a
 * bounded drop-newest subsystem, a drop-oldest one, restart and stop
 * strategies. After the drain the books must balance exactly. */
typedef struct stress {
    hy_kernel *k;
    unsigned thread;
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused_stopped;
    _Atomic uint64_t unexpected;
    _Atomic uint64_t ok;     /* handler returned 0 */
    _Atomic uint64_t failed; /* handler returned an error */
    _Atomic uint64_t cb[HY_DEAD__COUNT];
} stress;

static stress g_stress;

static void stress_dead_letter(void *udata, const char *path, size_t path_len,
                               const void *payload, size_t len, hy_dead_reason reason)
{
    (void)path;
    (void)path_len;
    (void)payload;
    (void)len;
    stress *s = udata;
    atomic_fetch_add_explicit(&s->cb[reason], 1, memory_order_relaxed);
}

static uint32_t payload_u32(const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    uint32_t v = 0;
    if (len == sizeof v)
        memcpy(&v, p, sizeof v);
    return v;
}

/* Fails on one payload in seven (deterministic by payload). */
static int stress_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    uint32_t v = payload_u32(msg);
    if (v % 7 == 3) {
        atomic_fetch_add_explicit(&g_stress.failed, 1, memory_order_relaxed);
        return HY_EPERM;
    }
    atomic_fetch_add_explicit(&g_stress.ok, 1, memory_order_relaxed);
    return 0;
}

static void *stress_sender(void *p)
{
    unsigned t = *(unsigned *)p;
    hy_kernel *k = g_stress.k;
    char path[64];
    for (uint32_t j = 0; j < STRESS_PER_THREAD; j++) {
        uint32_t v = t * STRESS_PER_THREAD + j;
        switch (j % 6) {
        case 0: snprintf(path, sizeof path, "flaky://m/%u", v % 16); break;
        case 1: snprintf(path, sizeof path, "restart://m/%u", v % 8); break;
        case 2: snprintf(path, sizeof path, "newest://m"); break;
        case 3: snprintf(path, sizeof path, "oldest://m"); break;
        case 4: snprintf(path, sizeof path, "stopper://m"); break;
        default: snprintf(path, sizeof path, "flaky://m/%u", v % 3); break;
        }
        int rc = hy_send(k, path, &v, sizeof v);
        if (rc == 0)
            atomic_fetch_add_explicit(&g_stress.accepted, 1, memory_order_relaxed);
        else if (rc == HY_ESTOPPED)
            atomic_fetch_add_explicit(&g_stress.refused_stopped, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&g_stress.unexpected, 1, memory_order_relaxed);
    }
    return NULL;
}

static void stress_register(hy_kernel *k, const char *name, const char *key, uint32_t cap,
                            hy_overflow ov, hy_supervision strategy)
{
    hy_route r = {.pattern = key ? "m/{id}" : "m", .handler = stress_handler, .key = key};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .mailbox_capacity = cap,
                            .overflow = ov, .strategy = strategy};
    assert_int_equal(hy_subsystem_register(k, name, &def), 0);
}

static void stress_sent_minus_handled_equals_dead_letters(void **state)
{
    (void)state;
    memset(&g_stress, 0, sizeof g_stress);
    hy_config cfg = {.workers = 2, .dead_letter = stress_dead_letter, .udata = &g_stress};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    g_stress.k = k;
    stress_register(k, "flaky", "id", 0, HY_OVERFLOW_FAIL, HY_SUPERVISE_RESUME);
    stress_register(k, "restart", "id", 0, HY_OVERFLOW_FAIL, HY_SUPERVISE_RESTART);
    stress_register(k, "newest", NULL, 8, HY_OVERFLOW_DROP_NEWEST, HY_SUPERVISE_RESUME);
    stress_register(k, "oldest", NULL, 8, HY_OVERFLOW_DROP_OLDEST, HY_SUPERVISE_ESCALATE);
    stress_register(k, "stopper", NULL, 0, HY_OVERFLOW_FAIL, HY_SUPERVISE_STOP);
    pthread_t th[4];
    unsigned ids[4];
    for (unsigned i = 0; i < 4; i++) {
        ids[i] = i;
        assert_int_equal(pthread_create(&th[i], NULL, stress_sender, &ids[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    int drained = hy_kernel_drain(k, 6 * WAIT_MS);
    if (drained != 0) {
        /* Say where the messages are stuck before failing. */
        const char *names[] = {"flaky", "restart", "newest", "oldest", "stopper"};
        for (int i = 0; i < 5; i++) {
            hy_subsystem_stats ss;
            hy_subsystem_stats_get(k, names[i], &ss);
            print_message("%s: sent %llu handled %llu failed %llu dead %llu queued %llu\n",
                          names[i], (unsigned long long)ss.sent,
                          (unsigned long long)ss.handled, (unsigned long long)ss.failed,
                          (unsigned long long)ss.dead, (unsigned long long)ss.queued);
        }
    }
    assert_int_equal(drained, 0);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(atomic_load(&g_stress.unexpected), 0);
    assert_int_equal(s.sent, atomic_load(&g_stress.accepted));
    assert_int_equal(s.sent + atomic_load(&g_stress.refused_stopped), 4u * STRESS_PER_THREAD);
    assert_int_equal(s.handled, atomic_load(&g_stress.ok));
    assert_int_equal(s.failed, atomic_load(&g_stress.failed));
    assert_int_equal(s.queued, 0);
    uint64_t dead = s.dead[HY_DEAD_FAILED] + s.dead[HY_DEAD_DROPPED] + s.dead[HY_DEAD_STOPPED];
    assert_int_equal(s.sent - s.handled, dead);
    uint64_t cb = atomic_load(&g_stress.cb[HY_DEAD_FAILED]) +
                  atomic_load(&g_stress.cb[HY_DEAD_DROPPED]) +
                  atomic_load(&g_stress.cb[HY_DEAD_STOPPED]);
    assert_int_equal(cb, dead);
    for (int r = 0; r < HY_DEAD__COUNT; r++)
        assert_int_equal(atomic_load(&g_stress.cb[r]), s.dead[r]);
    assert_int_equal(s.dead[HY_DEAD_FAILED], atomic_load(&g_stress.failed));
    /* Each part of the mix did its share. */
    assert_true(s.dead[HY_DEAD_FAILED] > 0);
    assert_true(s.dead[HY_DEAD_STOPPED] + atomic_load(&g_stress.refused_stopped) > 0);
    assert_int_equal(s.stopped >= 1, 1);
    assert_int_equal(s.dead[HY_DEAD_NOROUTE] + s.dead[HY_DEAD_FULL], 0);
    hy_kernel_close(k);
}

int main(int argc, char **argv)
{
    /* An argument runs only the tests whose names match it (a glob). */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_policy_refuses_fourth_message_with_efull),
        cmocka_unit_test(fail_policy_has_room_again_once_the_mailbox_drains),
        cmocka_unit_test(drop_oldest_keeps_newest_and_dead_letters_the_oldest),
        cmocka_unit_test(drop_newest_keeps_oldest_and_dead_letters_the_new_one),
        cmocka_unit_test(block_policy_sender_waits_until_room_then_succeeds),
        cmocka_unit_test(block_policy_times_out_with_efull),
        cmocka_unit_test(block_policy_timeout_defaults_from_config),
        cmocka_unit_test(block_policy_inside_a_handler_fails_at_once),
        cmocka_unit_test(config_capacity_applies_to_subsystems_that_set_none),
        cmocka_unit_test(unbounded_by_default),
        cmocka_unit_test(batch_send_respects_the_mailbox_bound),
        cmocka_unit_test(resume_dead_letters_the_failure_and_goes_on),
        cmocka_unit_test(restart_makes_fresh_state_and_keeps_the_queue_in_order),
        cmocka_unit_test(restart_of_a_keyed_actor_passes_its_key_to_state_init),
        cmocka_unit_test(restart_storm_stops_the_actor),
        cmocka_unit_test(restarts_outside_the_window_do_not_stop_the_actor),
        cmocka_unit_test(stop_dead_letters_later_messages_and_refuses_sends),
        cmocka_unit_test(stop_of_one_keyed_actor_leaves_the_others_running),
        cmocka_unit_test(escalate_reports_subsystem_key_and_error),
        cmocka_unit_test(escalate_from_a_subsystem_actor_gives_a_null_key),
        cmocka_unit_test(dead_letters_are_counted_by_reason),
        cmocka_unit_test(dead_letter_callback_sees_path_payload_and_reason),
        cmocka_unit_test(unknown_route_is_a_noroute_dead_letter),
        cmocka_unit_test(dead_letter_reasons_have_text),
        cmocka_unit_test(stress_sent_minus_handled_equals_dead_letters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
