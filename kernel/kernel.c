/* The kernel's life: open, drain, shutdown, close. (Its statistics: stats.c.)
 * Also the built-ins' per-kernel slots and the timer provider (hypha_ext.h),
 * since their hooks run at shutdown and close.
 *
 * Shutdown is the one delicate step: sends may be under way on other threads.
 * It first stops the built-ins (their slots' stop hooks: the timer thread is
 * joined while the kernel still accepts its last sends), then sets `closed` (new sends see it and return HY_ECLOSED), waits for every
 * router read section that began before (each send runs inside one, so the
 * sends that missed the flag have finished their push), drains, stops the
 * passivation thread, and only then stops the workers. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel.h"

static int apply_config(hy_kernel *k, const hy_config *cfg, unsigned *workers)
{
    hy_config c = cfg ? *cfg : (hy_config){0};
    if (c.workers > 1024)
        return hyi_fail(HY_EINVAL, "workers = %u; at most 1024", c.workers);
    if (c.max_payload > HY_MAX_PAYLOAD)
        return hyi_fail(HY_EINVAL, "max_payload = %zu; at most %zu", c.max_payload,
                        (size_t)HY_MAX_PAYLOAD);
    if (c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.workers = n > 0 ? (unsigned)(n < 1024 ? n : 1024) : 1;
    }
    if (c.overflow > HY_OVERFLOW_DROP_NEWEST)
        return hyi_fail(HY_EINVAL, "overflow = %d is not a hy_overflow", (int)c.overflow);
    if (c.durability > HY_DURABILITY_OFF)
        return hyi_fail(HY_EINVAL, "durability = %d is not a hy_durability", (int)c.durability);
    if (c.block_timeout_ms < 0)
        return hyi_fail(HY_EINVAL, "block_timeout_ms = %d; want 0 (the default) or more",
                        c.block_timeout_ms);
    if (c.journal_map_max && c.journal_map_size > c.journal_map_max)
        return hyi_fail(HY_EINVAL, "journal_map_size = %zu is over journal_map_max = %zu",
                        c.journal_map_size, c.journal_map_max);
    if (c.block_timeout_ms <= 0)
        c.block_timeout_ms = HYI_DEFAULT_BLOCK_TIMEOUT_MS;
    *workers = c.workers;
    k->config = c;
    k->batch = c.batch ? c.batch : HYI_DEFAULT_BATCH;
    k->max_payload = c.max_payload ? c.max_payload : HYI_DEFAULT_MAX_PAYLOAD;
    return hyi_pool_create(&k->pool, c.pool_cap_bytes);
}

int hy_kernel_open(hy_kernel **out, const hy_config *config)
{
    if (!out)
        return hyi_fail(HY_EINVAL, "hy_kernel_open: out is NULL");
    *out = NULL;
    hy_kernel *k = aligned_alloc(HY_CACHE_LINE, (sizeof *k + HY_CACHE_LINE - 1) &
                                                    ~(size_t)(HY_CACHE_LINE - 1));
    if (!k)
        return HY_ENOMEM;
    memset(k, 0, sizeof *k);
    hyi_clock_origin_take(&k->clock_origin);
    /* relaxed: k is not shared yet */
    atomic_store_explicit(&k->next_actor_id, 1, memory_order_relaxed);
    unsigned workers = 0;
    int rc = apply_config(k, config, &workers);
    if (rc == 0)
        rc = hyi_router_create(&k->router);
    if (rc == 0)
        rc = hyi_actor_table_init(k);
    if (rc == 0)
        rc = hyi_janitor_init(k);
    if (rc != 0) {
        hyi_janitor_free(k);
        hyi_actor_table_free(k);
        if (k->router)
            hyi_router_destroy(k->router);
        if (k->pool)
            hyi_pool_destroy(k->pool);
        free(k);
        return rc;
    }
    pthread_mutex_init(&k->registry_lock, NULL);
    pthread_mutex_init(&k->scope_lock, NULL);
    rc = hyi_persist_open(k);
    /* The kernel's own subsystem, made with no route: built-ins add theirs
     * under kernel:// (hypha_ext.h). It owns every subscription's actor, so
     * it exists from open on and drain and stats count what is published. */
    if (rc == 0)
        rc = hyi_subsystem_register_internal(k, "kernel", &(hy_subsystem_def){0},
                                             &k->kernel_sub);
    if (rc == 0)
        rc = hyi_pubsub_init(k);
    if (rc == 0)
        rc = hyi_sched_start(k, workers);
    if (rc != 0) {
        k->shut_down = true; /* no workers left to stop */
        hy_kernel_close(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* Every message sent so far has been handled or dead-lettered. Those are
 * summed first, with acquire: a handler's own sends were counted in `sent`
 * before its message was counted as handled (or dead), so they are included in
 * the sum of sent read after. */
static bool quiescent(hy_kernel *k)
{
    uint64_t handled = 0, sent = 0;
    pthread_mutex_lock(&k->registry_lock);
    for (hyi_subsys *s = k->subsystems; s; s = s->next) {
        /* acquire: pairs with the release adds at the end of a turn and in
         * hyi_dead_letter_msg */
        handled += atomic_load_explicit(&s->handled, memory_order_acquire);
        handled += atomic_load_explicit(&s->dead, memory_order_acquire);
    }
    for (hyi_subsys *s = k->subsystems; s; s = s->next)
        /* relaxed: ordered after the acquire loads above */
        sent += atomic_load_explicit(&s->sent, memory_order_relaxed);
    pthread_mutex_unlock(&k->registry_lock);
    return sent == handled;
}

int hy_kernel_drain(hy_kernel *k, int timeout_ms)
{
    if (!k)
        return hyi_fail(HY_EINVAL, "hy_kernel_drain: NULL kernel");
    if (hyi_current_worker(k))
        return hyi_fail(HY_EINVAL, "hy_kernel_drain from a handler would wait on itself");
    uint64_t deadline = hyi_deadline_ns(timeout_ms);
    /* Poll with a growing pause: a drain that is almost done returns within
     * microseconds, a long one costs a wake-up a millisecond. */
    /* A thread that drains is done sending for now: its cached free
     * messages go where the pool can give their slabs back (hyi_pool_trim).
     * A few dozen pointers moved under a lock or two. */
    hyi_pool_flush_cache(k->pool);
    hyi_schedule_flush(); /* workers drain: wake them if this thread put that off */
    long pause_ns = 1000;
    while (!quiescent(k)) {
        if (hyi_now_ns() >= deadline)
            return hyi_fail(HY_ETIMEDOUT, "drain: messages still queued after %d ms", timeout_ms);
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 1000000)
            pause_ns *= 2;
    }
    return 0;
}

/* ------------------------------------------------------------ built-ins' slots */

int hy_ext_slot_set(hy_kernel *k, unsigned slot, void *state, const hy_ext_slot_ops *ops)
{
    if (!k || slot >= HY_EXT_SLOTS || !state)
        return hyi_fail(HY_EINVAL, "hy_ext_slot_set: NULL kernel or state, or slot %u", slot);
    int rc = 0;
    pthread_mutex_lock(&k->registry_lock);
    /* shut_down is set under this lock before the stop hooks run: a slot is
     * either set before (and stopped) or refused. */
    if (k->shut_down)
        rc = hyi_fail(HY_ECLOSED, "the kernel is shutting down");
    else if (atomic_load_explicit(&k->ext_state[slot], memory_order_relaxed))
        rc = hyi_fail(HY_EEXIST, "slot %u is taken", slot);
    if (rc == 0) {
        k->ext_ops[slot] = ops ? *ops : (hy_ext_slot_ops){0};
        /* release: ext_ops and whatever the setter wrote into state are
         * visible to whoever acquires the pointer */
        atomic_store_explicit(&k->ext_state[slot], state, memory_order_release);
    }
    pthread_mutex_unlock(&k->registry_lock);
    return rc;
}

void *hy_ext_slot_get(hy_kernel *k, unsigned slot)
{
    if (!k || slot >= HY_EXT_SLOTS)
        return NULL;
    /* acquire: pairs with the release in hy_ext_slot_set */
    return atomic_load_explicit(&k->ext_state[slot], memory_order_acquire);
}

int hy_ext_timer_provide(hy_kernel *k, const hy_ext_timer_ops *ops, void *self)
{
    if (!k || !ops || !ops->arm || !ops->cancel)
        return hyi_fail(HY_EINVAL, "hy_ext_timer_provide: NULL kernel or ops");
    int rc = 0;
    pthread_mutex_lock(&k->registry_lock);
    if (atomic_load_explicit(&k->timer_ops, memory_order_relaxed)) {
        rc = hyi_fail(HY_EEXIST, "a timer provider is registered already");
    } else {
        k->timer_self = self;
        /* release: timer_self is visible to whoever acquires ops (ask.c) */
        atomic_store_explicit(&k->timer_ops, ops, memory_order_release);
    }
    pthread_mutex_unlock(&k->registry_lock);
    return rc;
}

/* Stop (shutdown) or free (close) every built-in, highest slot first. The
 * slots are not set any more: shut_down is set. */
static void ext_slots_each(hy_kernel *k, bool stop)
{
    for (int i = HY_EXT_SLOTS - 1; i >= 0; i--) {
        /* relaxed: set under registry_lock, which this thread took since */
        void *state = atomic_load_explicit(&k->ext_state[i], memory_order_relaxed);
        if (!state)
            continue;
        void (*fn)(hy_kernel *, void *) = stop ? k->ext_ops[i].stop : k->ext_ops[i].free;
        if (fn)
            fn(k, state);
    }
}

/* ------------------------------------------------------------ shutdown */

int hy_kernel_shutdown(hy_kernel *k)
{
    if (!k)
        return hyi_fail(HY_EINVAL, "hy_kernel_shutdown: NULL kernel");
    if (hyi_current_worker(k))
        return hyi_fail(HY_EINVAL, "hy_kernel_shutdown from a handler would wait on itself");
    pthread_mutex_lock(&k->registry_lock);
    bool already = k->shut_down;
    k->shut_down = true;
    pthread_mutex_unlock(&k->registry_lock);
    if (already)
        return 0;
    /* Built-ins first, while the kernel still accepts messages: the timer
     * thread is joined here, so it never sends into a closed kernel, and a
     * handler's later hy_send_after gets HY_ECLOSED from the timers. */
    ext_slots_each(k, true);
    pthread_mutex_lock(&k->registry_lock);
    /* seq_cst: a send loads it (seq_cst) inside its read section; the
     * synchronize below then waits for every send that loaded 0. */
    atomic_store_explicit(&k->closed, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&k->registry_lock);
    hyi_router_synchronize(k->router);
    hy_kernel_drain(k, -1);
    /* Passivation ends before the workers: it may hand actors back to them,
     * and frees what it passivated once they pass quiescent points. No
     * registration can start it any more (closed is set under registry_lock). */
    hyi_janitor_stop(k);
    hyi_sched_stop(k);
    return 0;
}

void hy_kernel_close(hy_kernel *k)
{
    if (!k)
        return;
    hy_kernel_shutdown(k);
    ext_slots_each(k, false); /* no worker runs; the journal is still open */
    hyi_persist_close(k); /* no worker runs; every completion has run after it */
    hyi_pubsub_free(k);
    hyi_actor_table_free(k);
    hyi_janitor_free(k);
    for (hyi_subsys *s = k->subsystems, *next; s; s = next) {
        next = s->next;
        hyi_subsys_free(k, s); /* unregistered ones not yet reclaimed too */
    }
    for (hyi_route_binding *r = k->routes, *next; r; r = next) {
        next = r->next;
        hyi_route_binding_free(r);
    }
    hyi_router_destroy(k->router);
    hyi_pool_destroy(k->pool);
    pthread_mutex_destroy(&k->registry_lock);
    hyi_scopes_free(k);
    pthread_mutex_destroy(&k->scope_lock);
    free(k);
}
