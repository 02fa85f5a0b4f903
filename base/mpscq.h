/* mpscq.h: the actor mailbox, an intrusive multi-producer single-consumer queue.
 *
 * What: Dmitry Vyukov's intrusive MPSC node-based queue. A message embeds a
 * hyi_mpsc_node; pushing links it in with one atomic exchange on `head` and one
 * store to the previous node's `next`, so a push never loops, never allocates
 * and never waits for the consumer or another producer. The consumer walks from
 * `tail` with plain loads. A `stub` node inside the queue keeps the list
 * non-empty, so producers never touch `tail` and the consumer never touches
 * `head` except to confirm the last element.
 *
 * Why: every message goes through here (docs/ARCHITECTURE.md §3), so it is header-only
 * static inline, costs one cache-line transfer per push in the common case,
 * and keeps producer (head) and consumer (tail, stub) state at least a cache
 * line apart without needing an aligned allocation for the struct that embeds it.
 *
 * The catch (Vyukov's "inconsistent" window): between a producer's exchange and
 * its store to prev->next, the nodes behind it are unreachable for the
 * consumer. hyi_mpscq_pop() then returns NULL although the queue is not empty;
 * hyi_mpscq_is_empty() says false in that window. A consumer that gets NULL
 * from pop and false from is_empty must treat it as "retry later" (reschedule
 * the actor, do not spin and do not drop it): the producer finishes its push
 * in a few instructions unless it is preempted.
 *
 * References:
 *  - D. Vyukov, "Intrusive MPSC node-based queue", 1024cores.net,
 *    https://www.1024cores.net/home/lock-free-algorithms/queues/intrusive-mpsc-node-based-queue
 *  - ponyc src/libponyrt/actor/messageq.c (the same queue as an actor mailbox).
 *
 * Rules: one consumer thread at a time (hand-over between consumers needs a
 * happens-before edge, e.g. the actor's scheduled flag or a deque steal);
 * a hyi_mpscq must not be moved or copied after hyi_mpscq_init (the stub's
 * address is in the list); a node must not be pushed again until pop has
 * returned it. Once pop returns a node, no producer touches it any more, so
 * the consumer may free or reuse it at once; a node from pop_keep only once
 * it comes back as `retired` or from unhold (see there). */
#ifndef HYI_MPSCQ_H
#define HYI_MPSCQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "hy_common.h"

typedef struct hyi_mpsc_node {
    _Atomic(struct hyi_mpsc_node *) next;
} hyi_mpsc_node;

typedef struct hyi_mpscq {
    _Atomic(hyi_mpsc_node *) head; /* newest node; producers exchange here */
    /* head and tail are HY_CACHE_LINE bytes apart, so on different lines at
     * any alignment of the enclosing struct. */
    char pad[HY_CACHE_LINE - sizeof(_Atomic(hyi_mpsc_node *))];
    hyi_mpsc_node *tail;  /* oldest node; consumer only */
    hyi_mpsc_node stub;   /* placeholder that keeps the list non-empty */
    /* Consumer only: the node hyi_mpscq_pop_keep handed out last while it
     * was the newest, kept as tail in the stub's place; NULL when none. */
    hyi_mpsc_node *held;
} hyi_mpscq;

/* Empty queue: head = tail = &stub. Not thread-safe; publish q to other threads
 * afterwards through some release/acquire edge (thread creation, a mutex, ...). */
static inline void hyi_mpscq_init(hyi_mpscq *q)
{
    /* relaxed: q is not shared yet; its publication provides the ordering. */
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    /* relaxed: same, not shared yet. */
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
    q->held = NULL;
}

/* Sets a->next = b, to build a chain for hyi_mpscq_push_chain (the chain is
 * private to the caller until pushed). */
static inline void hyi_mpscq_link(hyi_mpsc_node *a, hyi_mpsc_node *b)
{
    /* relaxed: the chain is private; push_chain's release publishes it. */
    atomic_store_explicit(&a->next, b, memory_order_relaxed);
}

/* Pushes the chain first..last (already linked through next; last->next is set
 * to NULL here) with one atomic exchange: the chain stays contiguous and in
 * order with respect to other producers. Any thread.
 *
 * Returns true if the queue was empty just before this push. That is a hint
 * (the kernel keeps its own "scheduled" flag and schedules an actor only when
 * its CAS 0->1 on that flag succeeds):
 *  - false negatives cannot happen: if every node pushed before was already
 *    popped, this push returns true (of concurrent pushes into an empty queue
 *    exactly the first in head order returns true);
 *  - false positives can: a push right after the consumer re-parked the stub
 *    behind a node it has not returned yet sees "empty".
 * A push that returns false has a predecessor the consumer has not returned
 * yet, so the consumer will reach this node before it can see the queue empty;
 * hence "push, and only if it returns true try the CAS on the flag" is sound,
 * provided the consumer ends its turn with the handshake described at
 * hyi_mpscq_is_empty. */
static inline bool hyi_mpscq_push_chain(hyi_mpscq *q, hyi_mpsc_node *first,
                                        hyi_mpsc_node *last)
{
    /* relaxed: last is not reachable by the consumer until the release store
     * below; that store (and the exchange's release half) publishes it. */
    atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
    /* seq_cst (acquire+release would do for the queue alone): release publishes
     * the chain's links and the messages' contents to the producer that links
     * after us and gets `last` as its prev; acquire pairs with that previous
     * producer's release so we may write prev->next. seq_cst in addition makes
     * this exchange part of the single total order with the kernel's seq_cst
     * "scheduled" flag ops and hyi_mpscq_is_empty's seq_cst load of head (a
     * store-buffering handshake: consumer "clear flag; check queue", producer
     * "push; CAS flag" -- at least one must see the other). On x86-64 (LOCK
     * XCHG) and arm64 (SWPAL, or LDAXR/STLXR) it is the same instruction as
     * acq_rel, so it costs nothing. */
    hyi_mpsc_node *prev = atomic_exchange_explicit(&q->head, last,
                                                   memory_order_seq_cst);
    bool was_empty = prev == &q->stub;
    /* release: the consumer's acquire load of prev->next then sees first..last
     * fully linked and the messages' contents. */
    atomic_store_explicit(&prev->next, first, memory_order_release);
    return was_empty;
}

/* Pushes one node. Any thread. Returns the "was empty" hint described at
 * hyi_mpscq_push_chain. */
static inline bool hyi_mpscq_push(hyi_mpscq *q, hyi_mpsc_node *n)
{
    return hyi_mpscq_push_chain(q, n, n);
}

/* Consumer only. Returns the oldest node, or NULL when the queue is empty OR
 * when a producer is in the middle of a push (the inconsistent window, see the
 * top of this file). After NULL, hyi_mpscq_is_empty() tells them apart: false
 * means "not empty, retry later". Nodes come out in push order per producer
 * (and a chain stays contiguous). */
static inline hyi_mpsc_node *hyi_mpscq_pop(hyi_mpscq *q)
{
    hyi_mpsc_node *tail = q->tail;
    /* acquire: pairs with the producer's release store of this next pointer,
     * so the node we move to (and its message) is fully visible. */
    hyi_mpsc_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &q->stub) {
        if (next == NULL)
            return NULL; /* empty, or the first push after empty is in flight */
        q->tail = next; /* skip the stub */
        tail = next;
        /* acquire: as above. */
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (HY_LIKELY(next != NULL)) {
        q->tail = next;
        return tail;
    }
    /* tail looks like the last node. If head has moved on, a producer has
     * exchanged but not linked yet: inconsistent, retry later. relaxed: head is
     * only compared, never dereferenced. A stale head == tail is harmless (the
     * stub then goes behind the newer nodes and the re-load of tail->next
     * decides), and coherence with our own last stub exchange means we never
     * see head == tail while the stub is still queued behind tail, so the stub
     * is never pushed twice. */
    hyi_mpsc_node *head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (tail != head)
        return NULL;
    /* tail is the last node: put the stub behind it so that tail can be
     * returned without leaving the list empty. */
    hyi_mpscq_push(q, &q->stub);
    /* acquire: pairs with the release store of the stub push, or of a producer
     * that exchanged between our load of head and the stub push. */
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    return NULL; /* a producer got in before the stub and has not linked yet */
}

/* Consumer only: pop for a consumer that keeps up with its producers.
 *
 * hyi_mpscq_pop finishes with the newest node by reading `head` and pushing
 * the stub behind it: two touches of the line every producer exchanges, for
 * every message when the consumer is as fast as they are. pop_keep hands the
 * newest node out but leaves it in the list as tail, in the stub's place
 * (q->held): the next push links behind it, and the pop after that moves past
 * it and returns it in *retired, for the caller to free then. Until then the
 * caller must not free or reuse a node it got while hyi_mpscq_holding() says
 * so. A consumer that lets the queue go (to another consumer, or to clear a
 * scheduled flag) first ends the hold with hyi_mpscq_unhold.
 *
 * Returns NULL when there is nothing new (or a push is in flight); *retired
 * may be set either way. Same ordering and per-producer order as pop. */
static inline hyi_mpsc_node *hyi_mpscq_pop_keep(hyi_mpscq *q, hyi_mpsc_node **retired)
{
    hyi_mpsc_node *tail = q->tail;
    /* acquire: as in pop. */
    hyi_mpsc_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == q->held) {
        if (next == NULL)
            return NULL; /* nothing behind the held node yet */
        *retired = tail; /* no producer writes it any more: its next is set */
        q->held = NULL;
        q->tail = tail = next;
        /* acquire: as above. */
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (tail == &q->stub) {
        if (next == NULL)
            return NULL;
        q->tail = tail = next;
        /* acquire: as above. */
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (next == NULL)
        q->held = tail; /* the newest node: keep it as the list's tail */
    else
        q->tail = next;
    return tail;
}

/* Consumer only: a node handed out by pop_keep still serves as tail. */
static inline bool hyi_mpscq_holding(const hyi_mpscq *q)
{
    return q->held != NULL;
}

/* Consumer only: ends a hold, as pop ends with its newest node: if nothing
 * was pushed behind the held node, the stub goes behind it. Returns the held
 * node, now out of the list (the caller frees it), or NULL when a push is in
 * flight right behind it (retry once it has linked: hyi_mpscq_linked). */
static inline hyi_mpsc_node *hyi_mpscq_unhold(hyi_mpscq *q)
{
    hyi_mpsc_node *held = q->held;
    /* acquire: as in pop. */
    hyi_mpsc_node *next = atomic_load_explicit(&held->next, memory_order_acquire);
    if (next == NULL) {
        /* relaxed, and the stub is pushed at most once: as in pop. Once the
         * stub is behind the held node, head never equals it again. */
        if (atomic_load_explicit(&q->head, memory_order_relaxed) == held)
            hyi_mpscq_push(q, &q->stub);
        /* acquire: pairs with the stub push's release store, or a producer's. */
        next = atomic_load_explicit(&held->next, memory_order_acquire);
        if (next == NULL)
            return NULL;
    }
    q->held = NULL;
    q->tail = next;
    return held;
}

/* Consumer only: true when nothing is queued and no push is in flight.
 *
 * The turn-end handshake with the actor's "scheduled" flag. Once the consumer
 * clears the flag, a sender may schedule the actor on another worker, which
 * then owns tail: so the consumer reads tail (hyi_mpscq_consumed) BEFORE it
 * clears the flag, and only head (hyi_mpscq_head_at_stub) after:
 *   consumer: pop until NULL;
 *             if (!hyi_mpscq_consumed(q)) keep the actor, retry later
 *                 (a push is in flight behind a node still queued);
 *             store scheduled = 0 (seq_cst);
 *             if (!hyi_mpscq_head_at_stub(q) && !exchange(scheduled, 1))
 *                 take the actor back (a message arrived meanwhile);
 *   producer: if (push(q, m) && !exchange(scheduled, 1)) schedule the actor.
 * With the seq_cst exchange in push and the seq_cst load of head, either the
 * consumer sees the new head or the producer sees the cleared flag, so no
 * message is stranded in an unscheduled mailbox. is_empty is the two checks
 * at once, for a consumer that holds the queue throughout.
 *
 * From another thread q->tail must not be read (it is a plain field), and
 * head alone cannot tell "empty": after the consumer re-parks the stub behind a
 * node pushed meanwhile, head == stub while that node still waits. A queue
 * that other threads must see as non-empty needs a count beside it (the
 * kernel's inject queue keeps one). */
static inline bool hyi_mpscq_is_empty(hyi_mpscq *q)
{
    /* seq_cst: as in hyi_mpscq_head_at_stub. Any node other than the
     * stub at tail is queued; with the stub at tail, head == stub means no node
     * was pushed behind it (not even one still being linked). */
    return q->tail == &q->stub &&
           atomic_load_explicit(&q->head, memory_order_seq_cst) == &q->stub;
}

/* Consumer only: the consumer has taken everything it can reach (its tail is
 * the stub). A push may still be in flight; a consumer that then gives the queue
 * up (clears its scheduled flag) checks hyi_mpscq_head_at_stub afterwards, and
 * must not read tail any more, since another consumer may own it by then. */
static inline bool hyi_mpscq_consumed(const hyi_mpscq *q)
{
    return q->tail == &q->stub;
}

/* Consumer only, after hyi_mpscq_consumed(): a push has linked a node behind
 * the stub since (every push into a consumed queue writes stub.next). A cheap
 * poll of the consumer's own line while it waits for more. acquire: pairs
 * with the push's release store, so the pop that follows sees the node. */
static inline bool hyi_mpscq_refilled(hyi_mpscq *q)
{
    return atomic_load_explicit(&q->stub.next, memory_order_acquire) != NULL;
}

/* Consumer only, after pop returned NULL with !hyi_mpscq_consumed(), or while
 * holding (pop_keep): a push has linked a node behind tail, so the next pop
 * makes progress.
 * It polls the line that push writes (tail's next), not `head`: reading head
 * while producers exchange it would pull their line away from them on every
 * poll. acquire: pairs with the push's release store, as in pop. */
static inline bool hyi_mpscq_linked(hyi_mpscq *q)
{
    return atomic_load_explicit(&q->tail->next, memory_order_acquire) != NULL;
}

/* Any thread: no node has been pushed behind the stub. Means "empty" only
 * together with hyi_mpscq_consumed() seen by the consumer (see is_empty).
 * seq_cst: the load half of the turn-end handshake described at is_empty. */
static inline bool hyi_mpscq_head_at_stub(hyi_mpscq *q)
{
    return atomic_load_explicit(&q->head, memory_order_seq_cst) == &q->stub;
}

#endif /* HYI_MPSCQ_H */
