/* Reclamation for the router's published tables: a small epoch scheme.
 *
 * A matching thread brackets its use of a table with hyi_epoch_enter/leave;
 * a writer that has swapped in a new table calls hyi_epoch_synchronize, which
 * returns once every reader that might still hold the old one has left, so the
 * old one can be freed. Readers never wait and never take a lock. Reader slots
 * are per thread and process-wide (all routers share them), registered on a
 * thread's first match and given back when the thread exits. */
#ifndef HY_EPOCH_H
#define HY_EPOCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hy_common.h"

/* pcre2_match_data with 8-bit code units, named without pcre2.h, so that the
 * inline section below costs its includers nothing. */
struct pcre2_real_match_data_8;

typedef struct hyi_reader {
    /* 0 while quiescent; otherwise the global epoch read on entry. Own cache
     * line: written by its thread on every match, read by writers. */
    HY_CACHE_ALIGNED _Atomic uint64_t epoch;
    /* 1 while a thread owns this slot. */
    atomic_int in_use;
    /* The thread's regex scratch: created once, reused by every match. */
    struct pcre2_real_match_data_8 *md;
    /* Next slot in the registry; fixed before the slot is published. */
    struct hyi_reader *next;
    /* Nesting depth of read sections; only the owning thread touches it. */
    unsigned depth;
} hyi_reader;

/* The calling thread's slot (NULL until its first section) and the global
 * epoch, for the inline enter and leave below: a send opens a section every
 * time, and two calls cost it more than the section itself. */
/* Initial-exec: one access with no call (a general-dynamic access in -fPIC
 * code is a call, and the send path would spill its registers around it). */
extern _Thread_local hyi_reader *hyi_epoch_tls __attribute__((tls_model("initial-exec")));
extern _Atomic uint64_t hyi_epoch_global;
/* Set once before main (epoch.c) when writers can make every thread of the
 * process pass a full barrier (Linux membarrier): readers then announce with
 * a plain store instead of a locked one. */
extern bool hyi_epoch_asymmetric;
/* A thread's first section: take a free slot or make one (epoch.c). */
hyi_reader *hyi_epoch_attach(void);

/* Enter a read-side section on this thread: NULL only if the thread's first
 * call cannot allocate its slot. Sections nest; only the outermost announces.
 * The caller then loads the published pointer with memory_order_seq_cst (that
 * load must follow the announcement). epoch.c says why the orders suffice. */
static inline __attribute__((always_inline)) hyi_reader *hyi_epoch_enter(void)
{
    hyi_reader *rd = hyi_epoch_tls;
    if (HY_UNLIKELY(!rd) && !(rd = hyi_epoch_attach()))
        return NULL;
    if (rd->depth++)
        return rd; /* nested: the outer section already protects us */
    /* acquire: reading a writer's increment makes its table store visible to
     * our table load (the e >= target case in epoch.c). */
    uint64_t e = atomic_load_explicit(&hyi_epoch_global, memory_order_acquire);
    if (HY_LIKELY(hyi_epoch_asymmetric)) {
        /* relaxed, and only the compiler kept from moving the caller's loads
         * above it: the writer's membarrier orders the pair (epoch.c). */
        atomic_store_explicit(&rd->epoch, e, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        /* seq_cst: must be ordered before the caller's seq_cst table load (a
         * store-load pair, which only seq_cst orders). */
        atomic_store_explicit(&rd->epoch, e, memory_order_seq_cst);
    }
    return rd;
}

static inline __attribute__((always_inline)) void hyi_epoch_leave(hyi_reader *rd)
{
    if (--rd->depth)
        return;
    /* release: our reads of the table happen before a writer that sees 0. */
    atomic_store_explicit(&rd->epoch, 0, memory_order_release);
}

/* This thread's slot if it has one (NULL otherwise): no registration. */
static inline hyi_reader *hyi_epoch_self(void)
{
    return hyi_epoch_tls;
}
/* Call after the new pointer is stored (seq_cst); returns once no reader can
 * still be using what the old pointer pointed to. Never call it inside a
 * read-side section. */
void hyi_epoch_synchronize(void);

#endif
