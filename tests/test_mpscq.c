/* Tests of kernel/mpscq.h, the intrusive MPSC mailbox queue: single-thread
 * behaviour (order, chains, the was-empty hint, the in-flight window), then
 * stress with more producers than cores: per-producer order and an exact count,
 * and the actor scheduling handshake (no message left in an idle mailbox).
 *
 * HY_STRESS=k in the environment multiplies the stress sizes (default 1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mpscq.h"

typedef struct item {
    hyi_mpsc_node node;       /* first member: node pointer == item pointer */
    unsigned producer;
    unsigned chain_pos;       /* 0 for a single push or a chain's first node */
    uint64_t seq;
} item;

static item *item_of(hyi_mpsc_node *n)
{
    return (item *)n;
}

static unsigned stress_scale(void)
{
    const char *s = getenv("HY_STRESS");
    int k = s ? atoi(s) : 1;
    return k > 0 ? (unsigned)k : 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ single thread */

static void new_queue_is_empty_and_pop_returns_null(void **state)
{
    (void)state;
    hyi_mpscq q;
    hyi_mpscq_init(&q);
    assert_true(hyi_mpscq_is_empty(&q));
    assert_null(hyi_mpscq_pop(&q));
    assert_null(hyi_mpscq_pop(&q));
    assert_true(hyi_mpscq_is_empty(&q));
}

static void push_reports_was_empty_only_for_the_first_node(void **state)
{
    (void)state;
    hyi_mpscq q;
    item a = {.seq = 0}, b = {.seq = 1}, c = {.seq = 2};
    hyi_mpscq_init(&q);
    assert_true(hyi_mpscq_push(&q, &a.node));
    assert_false(hyi_mpscq_is_empty(&q));
    assert_false(hyi_mpscq_push(&q, &b.node));
    assert_false(hyi_mpscq_push(&q, &c.node));
    assert_ptr_equal(hyi_mpscq_pop(&q), &a.node);
    assert_ptr_equal(hyi_mpscq_pop(&q), &b.node);
    assert_false(hyi_mpscq_is_empty(&q));
    assert_ptr_equal(hyi_mpscq_pop(&q), &c.node);
    assert_true(hyi_mpscq_is_empty(&q));
    assert_null(hyi_mpscq_pop(&q));
    /* drained: the next push sees an empty queue again */
    assert_true(hyi_mpscq_push(&q, &a.node));
    assert_ptr_equal(hyi_mpscq_pop(&q), &a.node);
    assert_true(hyi_mpscq_is_empty(&q));
}

static void one_producer_gets_fifo_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    static item it[N];
    hyi_mpscq q;
    hyi_mpscq_init(&q);
    for (int round = 0; round < 3; round++) {
        for (unsigned i = 0; i < N; i++) {
            it[i].seq = i;
            bool was_empty = hyi_mpscq_push(&q, &it[i].node);
            assert_int_equal(was_empty, i == 0);
        }
        for (unsigned i = 0; i < N; i++) {
            hyi_mpsc_node *n = hyi_mpscq_pop(&q);
            assert_non_null(n);
            assert_int_equal(item_of(n)->seq, i);
        }
        assert_null(hyi_mpscq_pop(&q));
        assert_true(hyi_mpscq_is_empty(&q));
    }
}

static void interleaved_push_and_pop_keep_order(void **state)
{
    (void)state;
    enum { N = 64 };
    item it[N];
    hyi_mpscq q;
    hyi_mpscq_init(&q);
    uint64_t next_out = 0;
    for (unsigned i = 0; i < N; i++) {
        it[i].seq = i;
        hyi_mpscq_push(&q, &it[i].node);
        if (i % 3 == 2) { /* pop two of every three, so the queue empties at times */
            for (int k = 0; k < 2; k++) {
                hyi_mpsc_node *n = hyi_mpscq_pop(&q);
                assert_non_null(n);
                assert_int_equal(item_of(n)->seq, next_out++);
            }
        }
    }
    for (hyi_mpsc_node *n; (n = hyi_mpscq_pop(&q)) != NULL;)
        assert_int_equal(item_of(n)->seq, next_out++);
    assert_int_equal(next_out, N);
    assert_true(hyi_mpscq_is_empty(&q));
}

static void push_chain_enqueues_the_chain_in_order(void **state)
{
    (void)state;
    item single = {.seq = 0}, chain[5], after = {.seq = 6};
    hyi_mpscq q;
    hyi_mpscq_init(&q);
    for (unsigned i = 0; i < 5; i++) {
        chain[i].seq = i + 1;
        if (i > 0)
            hyi_mpscq_link(&chain[i - 1].node, &chain[i].node);
    }
    /* last->next holds garbage: push_chain must terminate the chain itself */
    hyi_mpscq_link(&chain[4].node, &single.node);

    assert_true(hyi_mpscq_push(&q, &single.node));
    assert_false(hyi_mpscq_push_chain(&q, &chain[0].node, &chain[4].node));
    assert_false(hyi_mpscq_push(&q, &after.node));
    for (uint64_t want = 0; want <= 6; want++) {
        hyi_mpsc_node *n = hyi_mpscq_pop(&q);
        assert_non_null(n);
        assert_int_equal(item_of(n)->seq, want);
    }
    assert_null(hyi_mpscq_pop(&q));

    /* a chain into an empty queue reports was-empty, a chain of one works */
    for (unsigned i = 1; i < 5; i++)
        hyi_mpscq_link(&chain[i - 1].node, &chain[i].node);
    assert_true(hyi_mpscq_push_chain(&q, &chain[0].node, &chain[4].node));
    assert_false(hyi_mpscq_push_chain(&q, &single.node, &single.node));
    for (unsigned i = 0; i < 5; i++)
        assert_ptr_equal(hyi_mpscq_pop(&q), &chain[i].node);
    assert_ptr_equal(hyi_mpscq_pop(&q), &single.node);
    assert_true(hyi_mpscq_is_empty(&q));
}

/* A producer stopped between its exchange and its link: pop must return NULL
 * but is_empty must say "not empty" (retry later); once the producer links,
 * everything comes out in order. Done by hand here, on the queue's fields. */
static void pop_is_null_but_queue_not_empty_while_a_push_is_in_flight(void **state)
{
    (void)state;
    hyi_mpscq q;
    item a = {.seq = 1}, b = {.seq = 2};
    hyi_mpscq_init(&q);

    /* in flight into an empty queue */
    atomic_store(&a.node.next, NULL);
    hyi_mpsc_node *prev = atomic_exchange(&q.head, &a.node);
    assert_ptr_equal(prev, &q.stub);
    assert_null(hyi_mpscq_pop(&q));
    assert_null(hyi_mpscq_pop(&q)); /* retrying while still in flight is harmless */
    assert_false(hyi_mpscq_is_empty(&q));
    atomic_store(&prev->next, &a.node); /* the producer resumes */
    assert_ptr_equal(hyi_mpscq_pop(&q), &a.node);
    assert_true(hyi_mpscq_is_empty(&q));

    /* in flight behind a queued node */
    hyi_mpscq_push(&q, &a.node);
    atomic_store(&b.node.next, NULL);
    prev = atomic_exchange(&q.head, &b.node);
    assert_ptr_equal(prev, &a.node);
    assert_null(hyi_mpscq_pop(&q)); /* a cannot be handed out before it is linked on */
    assert_null(hyi_mpscq_pop(&q)); /* nor on a retry (the stub must not go in twice) */
    assert_false(hyi_mpscq_is_empty(&q));
    atomic_store(&prev->next, &b.node);
    assert_ptr_equal(hyi_mpscq_pop(&q), &a.node);
    assert_ptr_equal(hyi_mpscq_pop(&q), &b.node);
    assert_null(hyi_mpscq_pop(&q));
    assert_true(hyi_mpscq_is_empty(&q));
}

/* pop_keep hands the newest node out but keeps it as the list's tail: it
 * comes back as `retired` only once the pop after it moved past it, and
 * unhold puts the stub behind it (or waits for a push in flight). */
static void pop_keep_retires_the_newest_node_only_after_the_list_moves_on(void **state)
{
    (void)state;
    hyi_mpscq q;
    item a = {.seq = 1}, b = {.seq = 2}, c = {.seq = 3};
    hyi_mpsc_node *retired = NULL;
    hyi_mpscq_init(&q);

    hyi_mpscq_push(&q, &a.node);
    assert_ptr_equal(hyi_mpscq_pop_keep(&q, &retired), &a.node);
    assert_null(retired);
    assert_true(hyi_mpscq_holding(&q)); /* a is the newest: kept as tail */
    assert_false(hyi_mpscq_linked(&q));
    assert_null(hyi_mpscq_pop_keep(&q, &retired)); /* nothing new */
    assert_null(retired);

    /* b links behind a; the next pop retires a and holds b */
    assert_false(hyi_mpscq_push(&q, &b.node));
    assert_true(hyi_mpscq_linked(&q));
    assert_ptr_equal(hyi_mpscq_pop_keep(&q, &retired), &b.node);
    assert_ptr_equal(retired, &a.node);
    assert_true(hyi_mpscq_holding(&q));

    /* unhold puts the stub behind b: b is out, the queue is empty */
    assert_ptr_equal(hyi_mpscq_unhold(&q), &b.node);
    assert_false(hyi_mpscq_holding(&q));
    assert_true(hyi_mpscq_is_empty(&q));

    /* unhold with a push in flight right behind the held node */
    hyi_mpscq_push(&q, &a.node);
    retired = NULL;
    assert_ptr_equal(hyi_mpscq_pop_keep(&q, &retired), &a.node);
    atomic_store(&c.node.next, NULL);
    hyi_mpsc_node *prev = atomic_exchange(&q.head, &c.node);
    assert_ptr_equal(prev, &a.node);
    assert_null(hyi_mpscq_unhold(&q)); /* a cannot go before c is linked on */
    assert_null(hyi_mpscq_unhold(&q)); /* nor on a retry */
    assert_true(hyi_mpscq_holding(&q));
    atomic_store(&prev->next, &c.node); /* the producer resumes */
    assert_ptr_equal(hyi_mpscq_unhold(&q), &a.node);
    assert_false(hyi_mpscq_is_empty(&q));
    retired = NULL;
    assert_ptr_equal(hyi_mpscq_pop_keep(&q, &retired), &c.node);
    assert_null(retired);
    assert_ptr_equal(hyi_mpscq_unhold(&q), &c.node);
    assert_true(hyi_mpscq_is_empty(&q));
    assert_null(hyi_mpscq_pop(&q));
}

/* ------------------------------------------------------------ stress: order */

#define PRODUCERS 8
#define CHAIN_MAX 8

typedef struct stress {
    hyi_mpscq q;
    item *items[PRODUCERS];
    unsigned per_producer;
    atomic_uint ready;
    atomic_bool go;
} stress;

typedef struct producer_arg {
    stress *s;
    unsigned id;
} producer_arg;

static void wait_for_go(stress *s)
{
    atomic_fetch_add(&s->ready, 1);
    while (!atomic_load(&s->go))
        sched_yield();
}

/* Even producers push one node at a time; odd ones push chains of 1..CHAIN_MAX. */
static void *producer_main(void *p)
{
    producer_arg *a = p;
    stress *s = a->s;
    item *it = s->items[a->id];
    unsigned rnd = a->id * 2654435761u + 1;
    wait_for_go(s);
    for (unsigned i = 0; i < s->per_producer;) {
        unsigned len = 1;
        if (a->id % 2) {
            rnd = rnd * 1103515245u + 12345u;
            len = 1 + (rnd >> 16) % CHAIN_MAX;
            if (len > s->per_producer - i)
                len = s->per_producer - i;
        }
        for (unsigned k = 0; k < len; k++) {
            it[i + k].producer = a->id;
            it[i + k].seq = i + k;
            it[i + k].chain_pos = k;
            if (k > 0)
                hyi_mpscq_link(&it[i + k - 1].node, &it[i + k].node);
        }
        hyi_mpscq_push_chain(&s->q, &it[i].node, &it[i + len - 1].node);
        i += len;
        if ((i & 255) < len)
            sched_yield(); /* let the scheduler interleave producers mid-run */
    }
    return NULL;
}

static void producers_keep_order_and_nothing_is_lost_or_duplicated(void **state)
{
    (void)state;
    stress s;
    s.per_producer = 100000 * stress_scale();
    hyi_mpscq_init(&s.q);
    atomic_init(&s.ready, 0);
    atomic_init(&s.go, false);
    pthread_t th[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (unsigned p = 0; p < PRODUCERS; p++) {
        s.items[p] = calloc(s.per_producer, sizeof(item));
        assert_non_null(s.items[p]);
        args[p] = (producer_arg){&s, p};
        assert_int_equal(pthread_create(&th[p], NULL, producer_main, &args[p]), 0);
    }
    while (atomic_load(&s.ready) < PRODUCERS)
        sched_yield();
    atomic_store(&s.go, true);

    uint64_t next_seq[PRODUCERS] = {0};
    uint64_t total = 0, want = (uint64_t)PRODUCERS * s.per_producer;
    uint64_t nulls = 0, in_flight = 0, bad_order = 0, bad_chain = 0;
    item *last = NULL;
    double deadline = now_s() + 120;
    while (total < want) {
        hyi_mpsc_node *n = hyi_mpscq_pop(&s.q);
        if (n == NULL) {
            nulls++;
            if (!hyi_mpscq_is_empty(&s.q))
                in_flight++;
            if (now_s() > deadline)
                break;
            sched_yield();
            continue;
        }
        item *it = item_of(n);
        assert_true(it->producer < PRODUCERS);
        if (it->seq != next_seq[it->producer])
            bad_order++;
        next_seq[it->producer] = it->seq + 1;
        /* a chain comes out contiguous: its k-th node right after its (k-1)-th */
        if (it->chain_pos > 0 &&
            (last == NULL || last->producer != it->producer || last->seq + 1 != it->seq))
            bad_chain++;
        last = it;
        total++;
    }
    for (unsigned p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    print_message("  %llu items, %llu empty pops (%llu with a push in flight)\n",
                  (unsigned long long)total, (unsigned long long)nulls,
                  (unsigned long long)in_flight);
    assert_int_equal(total, want);
    assert_int_equal(bad_order, 0);
    assert_int_equal(bad_chain, 0);
    for (unsigned p = 0; p < PRODUCERS; p++)
        assert_int_equal(next_seq[p], s.per_producer);
    /* nothing extra: no duplicate or stray node left behind */
    assert_null(hyi_mpscq_pop(&s.q));
    assert_true(hyi_mpscq_is_empty(&s.q));
    for (unsigned p = 0; p < PRODUCERS; p++)
        free(s.items[p]);
}

/* ------------------------------------------- stress: the scheduling handshake
 *
 * The protocol documented at hyi_mpscq_is_empty, as the kernel runs it for an
 * actor, with two workers that take turns being its consumer:
 *   producer: if (push(q, m) && !exchange(scheduled, 1)) schedule(actor)
 *   worker:   take a schedule token; pop until NULL; if (!consumed) go again;
 *             store scheduled = 0; if (!head_at_stub && !exchange(scheduled, 1))
 *             go again; else done.
 * "schedule" adds a token that either worker may take, so the consumer side
 * moves between threads: ThreadSanitizer checks that the flag hands tail and
 * the consumer's own state from one to the other. A message left in an
 * unscheduled mailbox shows up as no progress after the producers are done. */

#define HS_WORKERS 2

typedef struct handshake {
    hyi_mpscq q;
    atomic_int scheduled;
    atomic_uint tokens;          /* times the actor was scheduled */
    atomic_uint claimed;         /* tokens taken by a worker */
    item *items[PRODUCERS];
    unsigned per_producer;
    atomic_uint ready;
    atomic_bool go;
    atomic_uint producers_done;
    atomic_bool stop;
    atomic_ullong progress;      /* consumed, published for the watchdog */
    /* the actor's state: touched only by the worker that holds the actor */
    uint64_t next_seq[PRODUCERS];
    uint64_t consumed, bad_order, turns, reclaims, retries;
    bool keep;                   /* consume with pop_keep, as the kernel does */
    uint64_t retired;            /* keep: nodes the list moved past */
} handshake;

/* What a retired node's next is set to: a producer that linked behind a node
 * after the consumer retired it would overwrite it. */
static hyi_mpsc_node retired_mark;

static void hs_retire(handshake *h, hyi_mpsc_node *n)
{
    atomic_store(&n->next, &retired_mark);
    h->retired++;
}

/* keep: end the hold before giving the actor up; false while a push is in
 * flight right behind the held node. */
static bool hs_end_hold(handshake *h)
{
    if (!h->keep || !hyi_mpscq_holding(&h->q))
        return true;
    hyi_mpsc_node *n = hyi_mpscq_unhold(&h->q);
    if (!n)
        return false;
    hs_retire(h, n);
    return true;
}

typedef struct hs_arg {
    handshake *h;
    unsigned id;
} hs_arg;

static void *hs_producer_main(void *p)
{
    hs_arg *a = p;
    handshake *h = a->h;
    atomic_fetch_add(&h->ready, 1);
    while (!atomic_load(&h->go))
        sched_yield();
    for (unsigned i = 0; i < h->per_producer; i++) {
        item *it = &h->items[a->id][i];
        it->producer = a->id;
        it->seq = i;
        /* seq_cst exchange: the producer half of the handshake */
        if (hyi_mpscq_push(&h->q, &it->node) && !atomic_exchange(&h->scheduled, 1))
            atomic_fetch_add(&h->tokens, 1);
        if ((i & 15) == 0)
            sched_yield(); /* small bursts, so the actor goes idle often */
    }
    atomic_fetch_add(&h->producers_done, 1);
    return NULL;
}

/* One scheduled period of the actor, possibly several turns. */
static void hs_run_actor(handshake *h)
{
    for (;;) {
        h->turns++;
        hyi_mpsc_node *n;
        for (;;) {
            if (h->keep) {
                hyi_mpsc_node *retired = NULL;
                n = hyi_mpscq_pop_keep(&h->q, &retired);
                if (retired)
                    hs_retire(h, retired);
            } else {
                n = hyi_mpscq_pop(&h->q);
            }
            if (!n)
                break;
            item *it = item_of(n);
            if (it->seq != h->next_seq[it->producer])
                h->bad_order++;
            h->next_seq[it->producer] = it->seq + 1;
            h->consumed++;
            if (h->keep && n != h->q.held)
                hs_retire(h, n); /* already behind the tail: done with */
        }
        /* relaxed: only the watchdog reads it */
        atomic_store_explicit(&h->progress, h->consumed, memory_order_relaxed);
        if (!hs_end_hold(h) || !hyi_mpscq_consumed(&h->q)) {
            h->retries++; /* a push in flight behind a queued node */
            sched_yield();
            continue;
        }
        /* seq_cst: the consumer half of the handshake; from here on, tail and
         * the actor's state may belong to the other worker */
        atomic_store(&h->scheduled, 0);
        if (!hyi_mpscq_head_at_stub(&h->q) && !atomic_exchange(&h->scheduled, 1)) {
            h->reclaims++; /* a message came in meanwhile: ours again */
            continue;
        }
        return;
    }
}

static void *hs_worker_main(void *p)
{
    handshake *h = p;
    while (!atomic_load(&h->stop)) {
        unsigned c = atomic_load(&h->claimed);
        if (c < atomic_load(&h->tokens) &&
            atomic_compare_exchange_strong(&h->claimed, &c, c + 1))
            hs_run_actor(h);
        else
            sched_yield();
    }
    return NULL;
}

static void run_handshake(bool keep)
{
    handshake *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->keep = keep;
    h->per_producer = 50000 * stress_scale();
    hyi_mpscq_init(&h->q);
    pthread_t th[PRODUCERS], wk[HS_WORKERS];
    hs_arg args[PRODUCERS];
    for (unsigned p = 0; p < PRODUCERS; p++) {
        h->items[p] = calloc(h->per_producer, sizeof(item));
        assert_non_null(h->items[p]);
        args[p] = (hs_arg){h, p};
        assert_int_equal(pthread_create(&th[p], NULL, hs_producer_main, &args[p]), 0);
    }
    for (unsigned w = 0; w < HS_WORKERS; w++)
        assert_int_equal(pthread_create(&wk[w], NULL, hs_worker_main, h), 0);
    while (atomic_load(&h->ready) < PRODUCERS)
        sched_yield();
    atomic_store(&h->go, true);

    /* watchdog: all consumed, or no progress for 10 s once producers are done */
    uint64_t want = (uint64_t)PRODUCERS * h->per_producer;
    unsigned long long last = 0;
    double last_change = now_s();
    bool stranded = false;
    for (;;) {
        unsigned long long got = atomic_load_explicit(&h->progress, memory_order_relaxed);
        if (got == want)
            break;
        if (got != last) {
            last = got;
            last_change = now_s();
        } else if (atomic_load(&h->producers_done) == PRODUCERS &&
                   now_s() - last_change > 10) {
            stranded = true;
            break;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    for (unsigned p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    /* wait for the actor to go idle, then stop the workers */
    while (!stranded && atomic_load(&h->claimed) != atomic_load(&h->tokens))
        sched_yield();
    while (!stranded && atomic_load(&h->scheduled) != 0)
        sched_yield();
    atomic_store(&h->stop, true);
    for (unsigned w = 0; w < HS_WORKERS; w++)
        pthread_join(wk[w], NULL);

    print_message("  %llu items in %llu turns (%u schedules, %llu reclaims, "
                  "%llu in-flight retries)\n",
                  (unsigned long long)h->consumed, (unsigned long long)h->turns,
                  atomic_load(&h->tokens), (unsigned long long)h->reclaims,
                  (unsigned long long)h->retries);
    assert_false(stranded);
    assert_int_equal(h->consumed, want);
    assert_int_equal(h->bad_order, 0);
    for (unsigned p = 0; p < PRODUCERS; p++)
        assert_int_equal(h->next_seq[p], h->per_producer);
    /* at the end the actor is idle and empty, and was never scheduled twice */
    assert_int_equal(atomic_load(&h->scheduled), 0);
    assert_int_equal(atomic_load(&h->claimed), atomic_load(&h->tokens));
    assert_true(hyi_mpscq_is_empty(&h->q));
    if (keep) {
        /* every node retired once, and none written to after it was */
        assert_int_equal(h->retired, want);
        for (unsigned p = 0; p < PRODUCERS; p++)
            for (unsigned i = 0; i < h->per_producer; i++)
                assert_ptr_equal(atomic_load(&h->items[p][i].node.next), &retired_mark);
    }
    for (unsigned p = 0; p < PRODUCERS; p++)
        free(h->items[p]);
    free(h);
}

static void schedule_handshake_never_strands_a_message(void **state)
{
    (void)state;
    run_handshake(false);
}

/* The same with pop_keep and unhold at the end of each period: nothing
 * stranded, and no node retired while a producer could still link behind it. */
static void schedule_handshake_with_pop_keep_never_strands_or_retires_early(void **state)
{
    (void)state;
    run_handshake(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_queue_is_empty_and_pop_returns_null),
        cmocka_unit_test(push_reports_was_empty_only_for_the_first_node),
        cmocka_unit_test(one_producer_gets_fifo_order),
        cmocka_unit_test(interleaved_push_and_pop_keep_order),
        cmocka_unit_test(push_chain_enqueues_the_chain_in_order),
        cmocka_unit_test(pop_is_null_but_queue_not_empty_while_a_push_is_in_flight),
        cmocka_unit_test(pop_keep_retires_the_newest_node_only_after_the_list_moves_on),
        cmocka_unit_test(producers_keep_order_and_nothing_is_lost_or_duplicated),
        cmocka_unit_test(schedule_handshake_never_strands_a_message),
        cmocka_unit_test(schedule_handshake_with_pop_keep_never_strands_or_retires_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
