/* deque.h: a worker's run queue, a Chase-Lev work-stealing deque of void *.
 *
 * What: the owner (one worker thread) pushes and pops runnable actors at the
 * bottom, LIFO, with no atomic read-modify-write except when one item is left;
 * any thread steals from the top, FIFO, with one CAS. The buffer is a circular
 * array that doubles when full; a replaced array is kept on a retire list and
 * freed only by hyi_deque_destroy, because a thief may still be reading it.
 *
 * Why: docs/ARCHITECTURE.md §3: per-worker deques keep an actor woken by a handler on the
 * same core, and idle workers balance load by stealing the oldest work.
 *
 * Memory model: the C11 version of Lê, Pop, Cohen, Zappa Nardelli, "Correct and
 * Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), with each
 * seq_cst fence replaced by seq_cst operations on both sides of it, because
 * ThreadSanitizer ignores atomic_thread_fence. One code path for all builds.
 * See deque.c for the orders, and D. Chase, Y. Lev, "Dynamic Circular
 * Work-Stealing Deque" (SPAA 2005) for the algorithm.
 *
 * Layout: top (CAS'd by thieves) and bottom (written by the owner) are
 * HY_CACHE_LINE bytes apart, so on different cache lines whatever the
 * alignment of the enclosing struct (no aligned allocation needed). */
#ifndef HYI_DEQUE_H
#define HYI_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hy_common.h"

typedef struct hyi_deque_array hyi_deque_array; /* private to deque.c */

typedef struct hyi_deque {
    _Atomic int64_t top; /* next index to steal; thieves and the last pop CAS it */
    char pad0[HY_CACHE_LINE - sizeof(_Atomic int64_t)];
    _Atomic int64_t bottom;            /* next index to push; owner writes */
    _Atomic(hyi_deque_array *) array;  /* current buffer; owner replaces */
    hyi_deque_array *retired;          /* replaced buffers; owner only */
} hyi_deque;

/* An empty deque with room for initial_capacity_pow2 items before it grows
 * (rounded up to a power of two; 0 means a small default). Not thread-safe;
 * publish d to thieves afterwards through a release/acquire edge (e.g. thread
 * creation). False when out of memory (d is then untouched and needs no
 * destroy). */
bool hyi_deque_init(hyi_deque *d, size_t initial_capacity_pow2);

/* Frees the current and every retired buffer. No thread may be using d; items
 * still inside are not touched (the caller owns them). */
void hyi_deque_destroy(hyi_deque *d);

/* Owner only. Pushes item (non-NULL) at the bottom; doubles the buffer when
 * full. False when growth failed for want of memory (the deque is unchanged
 * and still valid: item was not pushed). */
bool hyi_deque_push(hyi_deque *d, void *item);

/* Owner only. Takes the most recently pushed item (LIFO); NULL when empty,
 * including when a thief won the race for the last item. */
void *hyi_deque_pop(hyi_deque *d);

/* Any thread. Takes the oldest item (FIFO); NULL when the deque is empty OR
 * when another thief or the owner took that item first (lost a race). The two
 * are not told apart: on NULL a scheduler moves on to its next victim; a lost
 * race means someone else got the work, so nothing is lost either way. */
void *hyi_deque_steal(hyi_deque *d);

/* Any thread. Number of items, approximate when others are pushing or taking
 * concurrently (never negative). For heuristics (pick a victim) and stats. */
/* Inline: the scheduler asks at the end of nearly every turn. */
static inline size_t hyi_deque_size_approx(const hyi_deque *d)
{
    /* relaxed (both): a snapshot for heuristics; nothing is read through it. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    return b > t ? (size_t)(b - t) : 0;
}

#endif /* HYI_DEQUE_H */
