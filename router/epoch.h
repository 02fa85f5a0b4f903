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

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hy_common.h"

typedef struct hyi_reader {
    /* 0 while quiescent; otherwise the global epoch read on entry. Own cache
     * line: written by its thread on every match, read by writers. */
    HY_CACHE_ALIGNED _Atomic uint64_t epoch;
    /* 1 while a thread owns this slot. */
    atomic_int in_use;
    /* The thread's regex scratch: created once, reused by every match. */
    pcre2_match_data *md;
    /* Next slot in the registry; fixed before the slot is published. */
    struct hyi_reader *next;
    /* Nesting depth of read sections; only the owning thread touches it. */
    unsigned depth;
} hyi_reader;

/* Enter a read-side section on this thread: NULL only if the thread's first
 * call cannot allocate its slot. Sections nest; only the outermost announces.
 * The caller then loads the published pointer with memory_order_seq_cst (that
 * load must follow the announcement). */
hyi_reader *hyi_epoch_enter(void);
void hyi_epoch_leave(hyi_reader *rd);
/* This thread's slot if it has one (NULL otherwise): no registration. */
hyi_reader *hyi_epoch_self(void);
/* Call after the new pointer is stored (seq_cst); returns once no reader can
 * still be using what the old pointer pointed to. Never call it inside a
 * read-side section. */
void hyi_epoch_synchronize(void);

#endif
