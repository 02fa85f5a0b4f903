/* The work-stealing scheduler.
 *
 * Each worker owns a run-next slot and a Chase-Lev deque of runnable actors.
 * An actor woken by a handler goes into its worker's slot, pushing the slot's
 * previous actor onto the deque (the data is hot in that core's cache); an
 * actor woken from outside goes onto the kernel's inject queue. A worker looks
 * for work in that order: its slot, its own deque (LIFO), the inject queue,
 * then steals (deque's FIFO end, else the slot) from the others, starting at
 * a random victim.
 *
 * A worker with nothing to do spins briefly, then parks on a futex through an
 * event count, so an idle kernel burns no CPU and a wake-up costs a syscall
 * only when somebody is actually asleep. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "futex.h"
#include "kernel.h"

/* Spin rounds before parking (w->spin_budget), between IDLE_SPINS_MIN and
 * HYI_IDLE_SPINS (kernel.h): the full budget catches the next message of a
 * steady stream and still lets an idle worker sleep within microseconds. But
 * where messages come a network round trip apart (an ask answered by another
 * process), every spin is wasted, and on a machine whose cores the other
 * processes need it slows them: so the budget is learned. A park that lasted
 * SHORT_PARK_NS or more halves it; a shorter one (a longer spin might have
 * caught that message) doubles it; a message found while spinning restores it
 * in full. The floor of a few rounds still catches a message that comes at
 * once, which then restores the budget. */
#define IDLE_SPINS_MIN 8
#define SHORT_PARK_NS 50000u

/* Initial-exec (as hyi_running): every send from a handler reads it in
 * hyi_schedule, and the general-dynamic access of -fPIC code is a call that
 * makes the caller save its registers around it. */
static _Thread_local hyi_worker *tl_worker __attribute__((tls_model("initial-exec")));

hyi_worker *hyi_current_worker(hy_kernel *k)
{
    hyi_worker *w = tl_worker;
    return (w && w->k == k) ? w : NULL;
}

/* Wake one parked worker if `sleepers` (read as the callers below explain)
 * says there is one. */
static void wake_if_sleeping(hy_kernel *k, uint32_t sleepers)
{
    if (sleepers == 0)
        return;
    /* release: a woken worker that reads the new value sees the work too. */
    atomic_fetch_add_explicit(&k->wake_seq, 1, memory_order_release);
    hyi_futex_wake(&k->wake_seq, 1);
}

/* Inject pushes whose wake a non-worker thread put off (see
 * hyi_schedule_defer): the kernel, and how many. */
static _Thread_local struct {
    hy_kernel *k;
    uint32_t pushes;
} tl_deferred __attribute__((tls_model("initial-exec")));

/* After a seq_cst publication (the inject push's exchange): a seq_cst load of
 * sleepers pairs with park()'s seq_cst increment and its seq_cst look at the
 * inject queue, so either we see the sleeper or it sees the work. A deferred
 * wake loads sleepers later, still after the push: the pairing holds. */
static void wake_one_after_inject(hy_kernel *k)
{
    if (tl_deferred.k == k) {
        tl_deferred.pushes++;
        return;
    }
    wake_if_sleeping(k, atomic_load_explicit(&k->sleepers, memory_order_seq_cst));
}

void hyi_schedule_defer(hy_kernel *k)
{
    if (tl_deferred.k)
        hyi_schedule_flush(); /* nested, or another kernel's: settle those first */
    tl_deferred.k = k;
}

void hyi_schedule_flush(void)
{
    hy_kernel *k = tl_deferred.k;
    uint32_t pushes = tl_deferred.pushes;
    tl_deferred.k = NULL;
    tl_deferred.pushes = 0;
    if (pushes == 0)
        return;
    /* seq_cst: as in wake_one_after_inject */
    uint32_t sleepers = atomic_load_explicit(&k->sleepers, memory_order_seq_cst);
    if (sleepers == 0)
        return;
    /* release: as in wake_if_sleeping. One wake per push at most, as if each
     * push had woken its own. */
    atomic_fetch_add_explicit(&k->wake_seq, 1, memory_order_release);
    hyi_futex_wake(&k->wake_seq, (int)(pushes < sleepers ? pushes : sleepers));
}

static void wake_all(hy_kernel *k)
{
    /* release: pairs with park()'s acquire load of wake_seq. */
    atomic_fetch_add_explicit(&k->wake_seq, 1, memory_order_release);
    hyi_futex_wake(&k->wake_seq, INT_MAX);
}

static void inject_push(hy_kernel *k, hyi_actor *actor)
{
    /* The push's seq_cst exchange of head is the first half of the Dekker
     * pair with park(): a parked-to-be worker sees head != stub. */
    hyi_mpscq_push(&k->inject, &actor->inject_link);
}

/* Anything in the inject queue? head != stub says a push happened since the
 * stub was last parked; inject_more covers a node waiting before the stub.
 * `order`: relaxed for a cheap look, seq_cst for park()'s last look. */
static bool inject_nonempty(hy_kernel *k, memory_order order)
{
    return atomic_load_explicit(&k->inject.head, order) != &k->inject.stub ||
           atomic_load_explicit(&k->inject_more, order) != 0;
}

static hyi_actor *inject_pop(hy_kernel *k)
{
    if (!inject_nonempty(k, memory_order_relaxed))
        return NULL;
    /* acquire: the pop below reads what the previous holder's pops left. */
    if (atomic_flag_test_and_set_explicit(&k->inject_lock, memory_order_acquire))
        return NULL; /* another worker is taking from it; look elsewhere */
    hyi_mpsc_node *n = hyi_mpscq_pop(&k->inject);
    /* The holder sees the queue exactly. A worker that leaves a node behind
     * the stub (more = 1) looks again itself before it can park, so no other
     * thread depends on seeing the flag in time: relaxed, and written only
     * when it changes, so the common "nothing left" costs a load. */
    uint32_t more = !hyi_mpscq_is_empty(&k->inject);
    if (atomic_load_explicit(&k->inject_more, memory_order_relaxed) != more)
        atomic_store_explicit(&k->inject_more, more, memory_order_relaxed);
    /* release: publishes our consumer-side updates to the next holder. */
    atomic_flag_clear_explicit(&k->inject_lock, memory_order_release);
    if (!n)
        return NULL; /* a push still being linked: head != stub, retry */
    return (hyi_actor *)((char *)n - offsetof(hyi_actor, inject_link));
}

/* The run-next slot.
 *
 * An actor woken by a handler goes into its worker's `next` slot; the one it
 * displaces (if any) goes onto the deque. The worker runs the slot's actor
 * first when its turn ends. In ping-pong that is the whole scheduling cost:
 * a plain store and an exchange per hop, where the deque took a push, a pop
 * with its seq_cst store and load, and a look at its size.
 *
 * Nothing waits on the slot longer than on the deque it replaces:
 *  - the slot holds one actor; a second one pushes the first onto the deque,
 *    and then (two actors waiting for one worker) a sleeper is woken exactly
 *    as a second deque item did;
 *  - the slot is stealable: a thief that finds the victim's deque empty takes
 *    the slot's actor with an exchange (whoever exchanges it out runs it), so
 *    an idle worker takes it while its owner is in a long handler, as it took
 *    a lone deque item;
 *  - a lone woken actor wakes nobody (as a lone deque item did not): its own
 *    worker runs it as soon as the current turn ends;
 *  - the chain "run the slot, whose handler refills the slot" (ping-pong on
 *    one worker) could keep the deque and the inject queue waiting for ever:
 *    after NEXT_STREAK_MAX slot turns in a row, if anything else waits for
 *    this worker, the slot's actor goes behind it through the inject queue.
 * The actor in the slot holds its scheduled flag like one on a deque, so the
 * handshake and passivation's claims (which need the flag clear) are
 * unchanged. */
#define NEXT_STREAK_MAX 64

/* The owner's take, or a thief's: whoever exchanges the actor out runs it.
 * acquire: pairs with the owner's release store or exchange that filled it,
 * so a thief sees the actor as the scheduling handler left it. */
static hyi_actor *next_take(hyi_worker *w)
{
    /* relaxed: a cheap look first; the exchange decides */
    if (!atomic_load_explicit(&w->next, memory_order_relaxed))
        return NULL;
    return atomic_exchange_explicit(&w->next, NULL, memory_order_acquire);
}

bool hyi_others_waiting(hyi_worker *w)
{
    /* relaxed: a heuristic; whatever it misses is run in a later turn */
    return atomic_load_explicit(&w->next, memory_order_relaxed) != NULL ||
           hyi_deque_size_approx(&w->deque) > 0 || inject_nonempty(w->k, memory_order_relaxed);
}

/* hyi_schedule's other cases, out of line so that the common one (an empty
 * slot) saves no registers. */
static __attribute__((noinline)) void schedule_slow(hy_kernel *k, hyi_worker *w,
                                                    hyi_actor *actor)
{
    if (w) {
        /* acq_rel: publishes actor (as in hyi_schedule) and takes the one it
         * displaces as a thief would */
        hyi_actor *prev = atomic_exchange_explicit(&w->next, actor, memory_order_acq_rel);
        if (!prev)
            return; /* stolen meanwhile */
        if (hyi_deque_push(&w->deque, prev)) {
            /* Two actors now wait for this worker: let a sleeper steal one.
             * The deque publishes with a release store only, so read sleepers
             * with a seq_cst RMW: it is ordered with park()'s RMW on the same
             * variable, and if it comes first, park's RMW acquires it and the
             * push is visible to park's look at the deques. */
            wake_if_sleeping(k, atomic_fetch_add_explicit(&k->sleepers, 0,
                                                          memory_order_seq_cst));
            return;
        }
        actor = prev; /* the deque could not grow: the inject queue takes it */
    }
    inject_push(k, actor);
    wake_one_after_inject(k);
}

void hyi_schedule(hy_kernel *k, hyi_actor *actor)
{
    hyi_worker *w = hyi_current_worker(k);
    /* relaxed: only this worker fills its slot, so an empty one stays empty
     * until the store below. release: a thief's acquire exchange then sees
     * the actor as this handler left it. */
    if (HY_LIKELY(w != NULL) && !atomic_load_explicit(&w->next, memory_order_relaxed)) {
        atomic_store_explicit(&w->next, actor, memory_order_release);
        return;
    }
    schedule_slow(k, w, actor);
}

void hyi_actor_release(hy_kernel *k, hyi_actor *actor)
{
    if (hyi_actor_give_up(actor))
        hyi_schedule(k, actor);
}

void hyi_schedule_yielded(hy_kernel *k, hyi_actor *actor)
{
    inject_push(k, actor);
    wake_one_after_inject(k);
}

static uint64_t next_random(hyi_worker *w)
{
    /* xorshift64: cheap, and only spreads victims, so quality hardly matters */
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static hyi_actor *steal(hyi_worker *w)
{
    hy_kernel *k = w->k;
    unsigned n = k->nworkers;
    if (n < 2)
        return NULL;
    unsigned start = (unsigned)(next_random(w) % n);
    for (unsigned i = 0; i < n; i++) {
        hyi_worker *victim = &k->workers[(start + i) % n];
        if (victim == w)
            continue;
        hyi_actor *a = hyi_deque_steal(&victim->deque);
        if (!a)
            a = next_take(victim);
        if (a) {
            /* relaxed: a statistic written only by this worker */
            atomic_store_explicit(&w->steals,
                                  atomic_load_explicit(&w->steals, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            return a;
        }
    }
    return NULL;
}

static hyi_actor *find_work(hyi_worker *w)
{
    hyi_actor *a = next_take(w);
    if (a) {
        if (HY_LIKELY(++w->next_streak < NEXT_STREAK_MAX))
            return a;
        /* The streak is up: others first, if any wait (see NEXT_STREAK_MAX). */
        if (!hyi_others_waiting(w)) {
            w->next_streak = 0;
            return a;
        }
        hyi_schedule_yielded(w->k, a);
    }
    w->next_streak = 0;
    a = hyi_deque_pop(&w->deque);
    if (!a)
        a = inject_pop(w->k);
    if (!a)
        a = steal(w);
    return a;
}

/* park()'s last look, after its seq_cst increment of sleepers. The inject
 * queue is read seq_cst (the pair of inject_push + wake_one_after_inject); the
 * deques may be read relaxed because a pusher's RMW on sleepers synchronises
 * with ours. */
static bool work_visible(hy_kernel *k)
{
    if (inject_nonempty(k, memory_order_seq_cst))
        return true;
    for (unsigned i = 0; i < k->nworkers; i++)
        if (hyi_deque_size_approx(&k->workers[i].deque) > 0 ||
            atomic_load_explicit(&k->workers[i].next, memory_order_relaxed))
            return true;
    return false;
}

/* How long a parked worker sleeps before it gives its pool cache back. */
static const struct timespec long_sleep = {0, 100 * 1000 * 1000};

/* Sleep until woken, unless work or a stop is visible; returns how long it
 * slept in ns (0: did not sleep). */
static uint64_t park(hyi_worker *w)
{
    uint64_t slept = 0;
    hy_kernel *k = w->k;
    /* acquire: if a waker bumps wake_seq after this, the futex sees the change */
    uint32_t seq = atomic_load_explicit(&k->wake_seq, memory_order_acquire);
    /* seq_cst: the pair of the wakers' seq_cst reads of sleepers: either the waker sees us
     * counted, or our check below sees its work. */
    atomic_fetch_add_explicit(&k->sleepers, 1, memory_order_seq_cst);
    /* acquire: pairs with the release store of stopping in hyi_sched_stop */
    if (!work_visible(k) && !atomic_load_explicit(&k->stopping, memory_order_acquire)) {
        atomic_store_explicit(&w->parks,
                              atomic_load_explicit(&w->parks, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        /* release: a quiescent point (hyi_sched_quiesced acquires it): this
         * worker's accesses to the actors it ran happen before. */
        atomic_store_explicit(&w->parked, 1, memory_order_release);
        /* A sleep that lasts gives this worker's pool cache back first, so
         * the pool can return an idle kernel's slabs (hyi_pool_trim). A
         * short one pays nothing more. */
        uint64_t t0 = hyi_now_ns();
        hyi_futex_wait(&k->wake_seq, seq, &long_sleep);
        /* relaxed: a wake bumps it; a stale look only flushes early or late */
        if (atomic_load_explicit(&k->wake_seq, memory_order_relaxed) == seq) {
            hyi_pool_flush_cache(k->pool);
            hyi_futex_wait(&k->wake_seq, seq, NULL);
        }
        /* relaxed: only this worker's later turns follow, and they end in
         * quiescent points of their own */
        atomic_store_explicit(&w->parked, 0, memory_order_relaxed);
        slept = hyi_now_ns() - t0 + 1;
    }
    /* relaxed: only the count matters; no data is published through it */
    atomic_fetch_sub_explicit(&k->sleepers, 1, memory_order_relaxed);
    return slept;
}

/* After a park of `slept` ns: a long wait shrinks the spin budget, a short
 * one grows it (see IDLE_SPINS_MIN). */
static void learn_from_park(hyi_worker *w, uint64_t slept)
{
    if (slept == 0)
        return;
    unsigned b = w->spin_budget;
    if (slept < SHORT_PARK_NS)
        b = b * 2 > HYI_IDLE_SPINS ? HYI_IDLE_SPINS : b * 2;
    else
        b = b / 2 < IDLE_SPINS_MIN ? IDLE_SPINS_MIN : b / 2;
    w->spin_budget = b;
}

static void *worker_main(void *arg)
{
    hyi_worker *w = arg;
    hy_kernel *k = w->k;
    tl_worker = w;
    unsigned idle = 0;
    for (;;) {
        hyi_actor *a = find_work(w);
        if (a) {
            if (idle)
                w->spin_budget = HYI_IDLE_SPINS; /* the spin paid */
            idle = 0;
            hyi_actor_run(w, a);
            /* release: a quiescent point (see hyi_sched_quiesced): the turn's
             * last touches of the actor happen before. Only this thread
             * writes it, so a relaxed load for the increment. */
            atomic_store_explicit(&w->quiescent,
                                  atomic_load_explicit(&w->quiescent, memory_order_relaxed) + 1,
                                  memory_order_release);
            continue;
        }
        /* acquire: pairs with hyi_sched_stop's release store */
        if (atomic_load_explicit(&k->stopping, memory_order_acquire))
            break;
        unsigned budget = w->spin_budget;
        if (++idle < budget) {
            hyi_cpu_relax();
            continue;
        }
        /* with the full budget, a stream is likely: let a preempted sender
         * run before we sleep */
        if (idle == budget && budget == HYI_IDLE_SPINS) {
            sched_yield();
            continue;
        }
        idle = 0;
        learn_from_park(w, park(w));
    }
    tl_worker = NULL;
    return NULL;
}

void hyi_sched_qs_snapshot(hy_kernel *k, uint64_t *snap)
{
    for (unsigned i = 0; i < k->nworkers; i++)
        /* acquire: as in hyi_sched_quiesced */
        snap[i] = atomic_load_explicit(&k->workers[i].quiescent, memory_order_acquire);
}

bool hyi_sched_quiesced(hy_kernel *k, const uint64_t *snap)
{
    for (unsigned i = 0; i < k->nworkers; i++) {
        hyi_worker *w = &k->workers[i];
        /* acquire: pairs with the worker's release stores, so what it did to
         * an actor before that point happens before the caller frees it. */
        if (atomic_load_explicit(&w->quiescent, memory_order_acquire) == snap[i] &&
            !atomic_load_explicit(&w->parked, memory_order_acquire))
            return false;
    }
    return true;
}

int hyi_sched_start(hy_kernel *k, unsigned nworkers)
{
    hyi_mpscq_init(&k->inject);
    atomic_flag_clear(&k->inject_lock);
    /* relaxed: no worker runs yet; thread creation publishes it */
    atomic_store_explicit(&k->inject_more, 0, memory_order_relaxed);
    k->workers = calloc(nworkers, sizeof *k->workers);
    if (!k->workers)
        return HY_ENOMEM;
    for (unsigned i = 0; i < nworkers; i++) {
        hyi_worker *w = &k->workers[i];
        w->k = k;
        w->index = i;
        w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        w->spin_budget = HYI_IDLE_SPINS;
        /* relaxed: published to the workers by thread creation */
        atomic_store_explicit(&w->next, NULL, memory_order_relaxed);
        if (!hyi_deque_init(&w->deque, 64)) {
            for (unsigned j = 0; j < i; j++)
                hyi_deque_destroy(&k->workers[j].deque);
            free(k->workers);
            k->workers = NULL;
            return HY_ENOMEM;
        }
    }
    k->nworkers = nworkers;
    for (unsigned i = 0; i < nworkers; i++) {
        int rc = pthread_create(&k->workers[i].thread, NULL, worker_main, &k->workers[i]);
        if (rc != 0) {
            for (unsigned j = i; j < nworkers; j++)
                hyi_deque_destroy(&k->workers[j].deque);
            k->nworkers = i; /* stop only the ones that started */
            hyi_sched_stop(k);
            return hyi_fail(HY_ESYS, "starting worker %u: %s", i, strerror(rc));
        }
    }
    return 0;
}

void hyi_sched_stop(hy_kernel *k)
{
    /* release: workers that see stopping also see everything before it */
    atomic_store_explicit(&k->stopping, 1, memory_order_release);
    wake_all(k);
    for (unsigned i = 0; i < k->nworkers; i++)
        pthread_join(k->workers[i].thread, NULL);
    for (unsigned i = 0; i < k->nworkers; i++)
        hyi_deque_destroy(&k->workers[i].deque);
    free(k->workers);
    k->workers = NULL;
    k->nworkers = 0;
}
