/* Tests of kernel/deque.c, the Chase-Lev work-stealing deque: the two ends
 * (LIFO pop, FIFO steal), growth past the initial capacity with and without
 * wrapped indices, then stress with more threads than cores: the owner pushes
 * and pops while seven thieves steal, on deques that start at capacity 1 so
 * they grow under the thieves' feet; every item must be taken exactly once.
 *
 * HY_STRESS=k in the environment multiplies the stress sizes (default 1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "deque.h"

static unsigned stress_scale(void)
{
    const char *s = getenv("HY_STRESS");
    int k = s ? atoi(s) : 1;
    return k > 0 ? (unsigned)k : 1;
}

/* Unit-test items are addresses inside one array, so an item maps back to its
 * index. */
static char item_base[1 << 16];
#define ITEM(i) ((void *)&item_base[(i)])
#define INDEX(p) ((size_t)((char *)(p) - item_base))

/* Stress items carry plain fields the owner writes just before pushing and the
 * taker reads, as an actor's fields would be: ThreadSanitizer then checks that
 * push/steal order them (a missing release or acquire is a reported race). */
typedef struct sitem {
    size_t index;
    unsigned round;
} sitem;
static sitem sitems[1 << 16];

/* ------------------------------------------------------------ single thread */

static void empty_deque_pops_and_steals_null(void **state)
{
    (void)state;
    hyi_deque d;
    assert_true(hyi_deque_init(&d, 8));
    assert_int_equal(hyi_deque_size_approx(&d), 0);
    assert_null(hyi_deque_pop(&d));
    assert_null(hyi_deque_steal(&d));
    assert_null(hyi_deque_pop(&d)); /* a pop on empty leaves it consistent */
    assert_int_equal(hyi_deque_size_approx(&d), 0);
    assert_true(hyi_deque_push(&d, ITEM(1)));
    assert_ptr_equal(hyi_deque_pop(&d), ITEM(1));
    assert_null(hyi_deque_pop(&d));
    assert_null(hyi_deque_steal(&d));
    hyi_deque_destroy(&d);
}

static void pop_takes_the_newest_item(void **state)
{
    (void)state;
    hyi_deque d;
    assert_true(hyi_deque_init(&d, 16));
    for (size_t i = 1; i <= 10; i++)
        assert_true(hyi_deque_push(&d, ITEM(i)));
    assert_int_equal(hyi_deque_size_approx(&d), 10);
    for (size_t i = 10; i >= 1; i--)
        assert_ptr_equal(hyi_deque_pop(&d), ITEM(i));
    assert_null(hyi_deque_pop(&d));
    hyi_deque_destroy(&d);
}

static void steal_takes_the_oldest_item(void **state)
{
    (void)state;
    hyi_deque d;
    assert_true(hyi_deque_init(&d, 16));
    for (size_t i = 1; i <= 10; i++)
        assert_true(hyi_deque_push(&d, ITEM(i)));
    for (size_t i = 1; i <= 10; i++) {
        assert_ptr_equal(hyi_deque_steal(&d), ITEM(i));
        assert_int_equal(hyi_deque_size_approx(&d), 10 - i);
    }
    assert_null(hyi_deque_steal(&d));
    assert_null(hyi_deque_pop(&d));
    hyi_deque_destroy(&d);
}

static void pop_and_steal_meet_in_the_middle(void **state)
{
    (void)state;
    hyi_deque d;
    assert_true(hyi_deque_init(&d, 4));
    for (size_t i = 1; i <= 4; i++)
        assert_true(hyi_deque_push(&d, ITEM(i)));
    assert_ptr_equal(hyi_deque_steal(&d), ITEM(1));
    assert_ptr_equal(hyi_deque_pop(&d), ITEM(4));
    assert_ptr_equal(hyi_deque_steal(&d), ITEM(2));
    assert_ptr_equal(hyi_deque_pop(&d), ITEM(3)); /* the last item, via the CAS */
    assert_null(hyi_deque_pop(&d));
    assert_null(hyi_deque_steal(&d));
    /* reusable after being emptied from both ends */
    assert_true(hyi_deque_push(&d, ITEM(5)));
    assert_ptr_equal(hyi_deque_steal(&d), ITEM(5));
    assert_int_equal(hyi_deque_size_approx(&d), 0);
    hyi_deque_destroy(&d);
}

static void growth_keeps_every_item(void **state)
{
    (void)state;
    enum { N = 5000 };
    hyi_deque d;
    assert_true(hyi_deque_init(&d, 2));
    for (size_t i = 0; i < N; i++)
        assert_true(hyi_deque_push(&d, ITEM(i)));
    assert_int_equal(hyi_deque_size_approx(&d), N);
    /* half from each end: steals in push order, pops in reverse */
    for (size_t i = 0; i < N / 2; i++)
        assert_ptr_equal(hyi_deque_steal(&d), ITEM(i));
    for (size_t i = N; i > N / 2; i--)
        assert_ptr_equal(hyi_deque_pop(&d), ITEM(i - 1));
    assert_null(hyi_deque_pop(&d));
    hyi_deque_destroy(&d);
}

/* Move top and bottom around the ring first, so the copy on growth starts
 * mid-array and wraps. */
static void growth_with_wrapped_indices_keeps_order(void **state)
{
    (void)state;
    hyi_deque d;
    assert_true(hyi_deque_init(&d, 4));
    size_t next_in = 0, next_out = 0;
    for (int k = 0; k < 11; k++) { /* 11 push/steal pairs: top = bottom = 11 */
        assert_true(hyi_deque_push(&d, ITEM(next_in++)));
        assert_ptr_equal(hyi_deque_steal(&d), ITEM(next_out++));
    }
    for (int k = 0; k < 100; k++) /* grows 4 -> 8 -> ... -> 128 from index 11 */
        assert_true(hyi_deque_push(&d, ITEM(next_in++)));
    while (next_out < next_in)
        assert_ptr_equal(hyi_deque_steal(&d), ITEM(next_out++));
    assert_null(hyi_deque_steal(&d));
    hyi_deque_destroy(&d);
}

static void capacity_is_rounded_up_and_zero_means_default(void **state)
{
    (void)state;
    size_t caps[] = {0, 1, 3, 5, 1000};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        hyi_deque d;
        assert_true(hyi_deque_init(&d, caps[c]));
        for (size_t i = 0; i < 300; i++)
            assert_true(hyi_deque_push(&d, ITEM(i)));
        for (size_t i = 300; i > 0; i--)
            assert_ptr_equal(hyi_deque_pop(&d), ITEM(i - 1));
        hyi_deque_destroy(&d);
    }
}

/* ------------------------------------------------------------ stress */

#define THIEVES 7

typedef struct stress {
    hyi_deque d;
    size_t n;                    /* items this round: sitems[0 .. n - 1] */
    unsigned round;
    atomic_uchar *taken;         /* per item: how many times it came out */
    atomic_bool round_done;      /* owner: nothing more will be pushed */
    atomic_bool quit;
    pthread_barrier_t start, end;
    atomic_ullong stolen[THIEVES];
    atomic_ullong bad;           /* not an item of this round, or torn */
} stress;

typedef struct thief_arg {
    stress *s;
    unsigned id;
} thief_arg;

static void take(stress *s, void *x)
{
    sitem *it = x;
    size_t i = (size_t)(it - sitems);
    if (i >= s->n || it->index != i || it->round != s->round) {
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    /* relaxed: counts are read after the round's barrier */
    atomic_fetch_add_explicit(&s->taken[i], 1, memory_order_relaxed);
}

static void *thief_main(void *p)
{
    thief_arg *a = p;
    stress *s = a->s;
    for (;;) {
        pthread_barrier_wait(&s->start);
        if (atomic_load(&s->quit))
            return NULL;
        unsigned long long mine = 0;
        unsigned misses = 0;
        for (;;) {
            void *x = hyi_deque_steal(&s->d);
            if (x != NULL) {
                take(s, x);
                mine++;
                misses = 0;
                continue;
            }
            /* done only when the owner is done and the deque is empty */
            if (atomic_load(&s->round_done) && hyi_deque_size_approx(&s->d) == 0)
                break;
            if (++misses % 4 == 0)
                sched_yield(); /* more threads than cores: let the owner run */
        }
        atomic_fetch_add(&s->stolen[a->id], mine);
        pthread_barrier_wait(&s->end);
    }
}

/* One round: a fresh deque of capacity 1; the owner pushes n items in bursts,
 * popping up to half of each burst (LIFO races with the thieves at the bottom),
 * then pops until empty (the last-item race). Returns the largest size seen. */
static size_t run_round(stress *s, size_t n, unsigned round,
                        unsigned long long *popped)
{
    assert_true(hyi_deque_init(&s->d, 1));
    s->n = n;
    s->round = round;
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&s->taken[i], 0, memory_order_relaxed);
    atomic_store(&s->round_done, false);
    pthread_barrier_wait(&s->start);

    /* odd rounds: long bursts, the deque grows big; even rounds: one or two
     * items at a time, so pops and steals keep meeting at the last item */
    size_t pushed = 0, max_size = 0, max_burst = round % 2 ? 256 : 2;
    unsigned rnd = 12345u + round * 7919u;
    while (pushed < n) {
        rnd = rnd * 1103515245u + 12345u;
        size_t burst = 1 + (rnd >> 16) % max_burst;
        if (burst > n - pushed)
            burst = n - pushed;
        for (size_t k = 0; k < burst; k++, pushed++) {
            sitems[pushed].index = pushed;
            sitems[pushed].round = round;
            assert_true(hyi_deque_push(&s->d, &sitems[pushed]));
        }
        size_t sz = hyi_deque_size_approx(&s->d);
        if (sz > max_size)
            max_size = sz;
        rnd = rnd * 1103515245u + 12345u;
        size_t pops = (rnd >> 16) % (burst / 2 + 1);
        for (size_t k = 0; k < pops; k++) {
            void *x = hyi_deque_pop(&s->d);
            if (x == NULL)
                break;
            take(s, x);
            (*popped)++;
        }
    }
    for (void *x; (x = hyi_deque_pop(&s->d)) != NULL;) {
        take(s, x);
        (*popped)++;
    }
    atomic_store(&s->round_done, true);
    pthread_barrier_wait(&s->end);

    unsigned long long lost = 0, dup = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = atomic_load_explicit(&s->taken[i], memory_order_relaxed);
        lost += c == 0;
        dup += c > 1;
    }
    assert_int_equal(lost, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(atomic_load(&s->bad), 0);
    assert_null(hyi_deque_steal(&s->d));
    assert_null(hyi_deque_pop(&s->d));
    hyi_deque_destroy(&s->d);
    return max_size;
}

static void owner_and_seven_thieves_take_every_item_exactly_once(void **state)
{
    (void)state;
    const size_t per_round = HY_ARRAY_LEN(sitems); /* 65536 */
    const unsigned rounds = 16 * stress_scale();  /* ~1 M items */
    stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->taken = calloc(per_round, sizeof *s->taken);
    assert_non_null(s->taken);
    atomic_init(&s->quit, false);
    atomic_init(&s->bad, 0);
    for (unsigned t = 0; t < THIEVES; t++)
        atomic_init(&s->stolen[t], 0);
    assert_int_equal(pthread_barrier_init(&s->start, NULL, THIEVES + 1), 0);
    assert_int_equal(pthread_barrier_init(&s->end, NULL, THIEVES + 1), 0);
    pthread_t th[THIEVES];
    thief_arg args[THIEVES];
    for (unsigned t = 0; t < THIEVES; t++) {
        args[t] = (thief_arg){s, t};
        assert_int_equal(pthread_create(&th[t], NULL, thief_main, &args[t]), 0);
    }

    unsigned long long popped = 0;
    size_t max_size = 0;
    for (unsigned r = 0; r < rounds; r++) {
        size_t m = run_round(s, per_round, r, &popped);
        if (m > max_size)
            max_size = m;
    }

    atomic_store(&s->quit, true);
    pthread_barrier_wait(&s->start);
    for (unsigned t = 0; t < THIEVES; t++)
        pthread_join(th[t], NULL);

    unsigned long long stolen = 0;
    for (unsigned t = 0; t < THIEVES; t++)
        stolen += atomic_load(&s->stolen[t]);
    print_message("  %u rounds x %zu items: owner popped %llu, thieves stole %llu, "
                  "largest size %zu\n",
                  rounds, per_round, popped, stolen, max_size);
    assert_int_equal(popped + stolen, (unsigned long long)rounds * per_round);
    /* the deques started at capacity 1: they grew while being stolen from */
    assert_true(max_size > 1);
    pthread_barrier_destroy(&s->start);
    pthread_barrier_destroy(&s->end);
    free(s->taken);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_deque_pops_and_steals_null),
        cmocka_unit_test(pop_takes_the_newest_item),
        cmocka_unit_test(steal_takes_the_oldest_item),
        cmocka_unit_test(pop_and_steal_meet_in_the_middle),
        cmocka_unit_test(growth_keeps_every_item),
        cmocka_unit_test(growth_with_wrapped_indices_keeps_order),
        cmocka_unit_test(capacity_is_rounded_up_and_zero_means_default),
        cmocka_unit_test(owner_and_seven_thieves_take_every_item_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
