/* The epoch scheme of epoch.h. Why it is safe, in the C11 single total order S
 * of seq_cst operations:
 *   writer: store(table, new) S1; fetch_add(epoch) -> target S2; for each slot
 *           load(slot) R until it reads 0 or >= target; free(old)
 *   reader: e = load_acquire(epoch); store(slot, e) W; load(table) L; ...;
 *           store_release(slot, 0)
 * If R read 0, either the reader had left (its reads of the old table happen
 * before that release store, which R acquires), or W comes after R in S, so
 * S1 < W < L and L reads the new table. If R read e >= target, the reader's
 * acquire load read S2 (or later), so S1 happens before L: new table again.
 * Otherwise the writer waits. A slot added after the writer read the list head
 * is announced after that read too, so the same argument holds.
 * Match path cost: one seq_cst store (and plain loads on x86).
 *
 * Asymmetric variant (Linux, where membarrier's private expedited command is
 * available; hyi_epoch_asymmetric): W is a relaxed store, and the writer calls
 * membarrier after S2 and before its first R. That makes every running thread
 * of the process pass a full barrier at some point of its execution (a thread
 * not running passes one when switched out). For a reader whose W precedes that
 * point, W is visible to R, and the argument above holds (R reads e and waits,
 * or 0 after the reader left). For one whose W follows it, so does its L, and
 * S1 was visible before the barrier: L reads the new table. The same holds for
 * every other seq_cst store a writer makes before synchronizing (the router's
 * generation, the kernel's closed flag) against the reader's loads of them.
 * A send thus pays a plain store instead of a locked exchange, which waits for
 * the sender's store buffer to drain (a whole message's stores); the writer
 * pays a system call per synchronize, which is rare (route changes, shutdown,
 * passivation batches). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "epoch.h"

static _Atomic(hyi_reader *) readers;      /* registry, push-only */
_Atomic uint64_t hyi_epoch_global = 1;     /* 0 is "quiescent" */
static pthread_key_t reader_key;
static int reader_key_ok;
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;
_Thread_local hyi_reader *hyi_epoch_tls;
bool hyi_epoch_asymmetric;

#if defined(__linux__) && defined(__NR_membarrier)
static int membarrier(int cmd)
{
    return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

/* Before main, so every thread reads the flag as it will stay. Both commands
 * the writer may need must be there: the expedited one (registered here),
 * and the global one, its fallback. */
__attribute__((constructor)) static void detect_membarrier(void)
{
    int cmds = membarrier(MEMBARRIER_CMD_QUERY);
    int want = MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_GLOBAL;
    if (cmds < 0 || (cmds & want) != want)
        return;
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
        return;
    hyi_epoch_asymmetric = true;
}

/* Every running thread of the process passes a full barrier (see the top). */
static void barrier_every_thread(void)
{
    if (!hyi_epoch_asymmetric || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        return;
    /* A fork()ed child's address space may not carry the registration. */
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        return;
    if (membarrier(MEMBARRIER_CMD_GLOBAL) == 0) /* slower, needs no registration */
        return;
    /* Readers announce without a barrier of their own: going on would free
     * what one of them may still read. The query said both work. */
    fprintf(stderr, "hypha: membarrier failed; cannot wait out readers safely\n");
    abort();
}
#else
static void barrier_every_thread(void)
{
}
#endif

/* Thread exit: give the slot back (its match data stays for the next owner). */
static void reader_release(void *p)
{
    hyi_reader *rd = p;
    /* release: this thread's last use of rd->md happens before the next owner
     * acquires the slot through its CAS on in_use. */
    atomic_store_explicit(&rd->in_use, 0, memory_order_release);
    hyi_epoch_tls = NULL;
}

static void reader_key_init(void)
{
    reader_key_ok = pthread_key_create(&reader_key, reader_release) == 0;
}

hyi_reader *hyi_epoch_attach(void)
{
    pthread_once(&reader_once, reader_key_init);
    if (!reader_key_ok)
        return NULL;
    /* acquire: slots are fully initialised before their push (release CAS). */
    hyi_reader *rd = atomic_load_explicit(&readers, memory_order_acquire);
    for (; rd; rd = rd->next) {
        int free_slot = 0;
        /* acq_rel: acquire pairs with reader_release, so the previous owner's
         * use of md is finished before we use it. */
        if (atomic_load_explicit(&rd->in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&rd->in_use, &free_slot, 1,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed))
            break;
    }
    if (!rd) {
        rd = aligned_alloc(HY_CACHE_LINE, sizeof *rd);
        if (!rd)
            return NULL;
        atomic_init(&rd->epoch, 0);
        atomic_init(&rd->in_use, 1);
        rd->depth = 0;
        rd->md = pcre2_match_data_create(1, NULL);
        if (!rd->md) {
            free(rd);
            return NULL;
        }
        hyi_reader *head = atomic_load_explicit(&readers, memory_order_relaxed);
        do {
            rd->next = head;
            /* seq_cst: a writer that read the head before this push is ordered
             * before our first announcement (see the top of the file); it also
             * releases the slot's initialisation to list walkers. */
        } while (!atomic_compare_exchange_weak_explicit(&readers, &head, rd,
                                                        memory_order_seq_cst,
                                                        memory_order_relaxed));
    }
    if (pthread_setspecific(reader_key, rd) != 0) {
        atomic_store_explicit(&rd->in_use, 0, memory_order_release); /* as in reader_release */
        return NULL;
    }
    hyi_epoch_tls = rd;
    return rd;
}

void hyi_epoch_synchronize(void)
{
    /* seq_cst: after the caller's table store in S, so a reader that sees the
     * new epoch sees the new table. */
    uint64_t target = atomic_fetch_add_explicit(&hyi_epoch_global, 1, memory_order_seq_cst) + 1;
    /* After S1 and S2, before the first R (see the top). */
    barrier_every_thread();
    /* seq_cst: a slot pushed after this load announces after it too. */
    hyi_reader *rd = atomic_load_explicit(&readers, memory_order_seq_cst);
    for (; rd; rd = rd->next) {
        for (unsigned spins = 0;; spins++) {
            /* seq_cst: the R of the argument above; acquire would not order it
             * against the reader's seq_cst announcement. */
            uint64_t e = atomic_load_explicit(&rd->epoch, memory_order_seq_cst);
            if (e == 0 || e >= target)
                break;
            if (spins > 32)
                sched_yield(); /* a reader is mid-match: it is short, let it run */
        }
    }
}
