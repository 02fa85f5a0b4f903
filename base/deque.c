/* deque.c: the Chase-Lev work-stealing deque (see deque.h for the contract).
 *
 * Indices top and bottom grow forever (int64_t: 2^63 pushes will not happen);
 * items live in [top, bottom) at slot[i & mask] of the current array. Signed
 * indices because pop computes bottom - 1, which is -1 on a fresh deque (the
 * paper's size_t version misreads an empty deque there).
 *
 * Orders, following Lê et al. (PPoPP 2013), Fig. 1, with fences turned into
 * operations so that ThreadSanitizer sees every synchronisation:
 *  - paper: pop "store bottom (relaxed); fence(seq_cst); load top (relaxed)"
 *    here: "store bottom (seq_cst); load top (seq_cst)";
 *  - paper: steal "load top (acquire); fence(seq_cst); load bottom (acquire)"
 *    here: "load top (seq_cst); load bottom (seq_cst)";
 *  - paper: push "store slot; fence(release); store bottom (relaxed)"
 *    here: "store slot (relaxed); store bottom (release)";
 *  - the CAS on top is seq_cst in both.
 * The seq_cst fences exist to order a store of bottom before a load of top in
 * pop against a load of top before a load of bottom in steal (a store-buffering
 * pattern); with all four accesses seq_cst they take part in the single total
 * order S, so owner and thief cannot both miss each other's update. Slots are
 * _Atomic (relaxed) because a thief may read a slot the owner is rewriting; it
 * then loses its CAS on top and discards what it read, but the read itself
 * must not be a data race.
 *
 * Growth: the owner copies [top, bottom) into an array twice the size and
 * publishes it with a release store; the old array stays on `retired` until
 * destroy, since a thief that loaded the old pointer may still read from it
 * (its slots for live indices are never rewritten after the switch). Total
 * memory is under twice the largest array. */
#include <stdlib.h>

#include "deque.h"

struct hyi_deque_array {
    size_t mask;                    /* capacity - 1; capacity is a power of two */
    struct hyi_deque_array *retired; /* next older retired array; owner only */
    _Atomic(void *) slot[];
};

#define HYI_DEQUE_DEFAULT_CAPACITY 64

static hyi_deque_array *array_new(size_t capacity)
{
    if (capacity > (SIZE_MAX - sizeof(hyi_deque_array)) / sizeof(_Atomic(void *)))
        return NULL;
    /* calloc: every slot starts as a valid (NULL) atomic object. */
    hyi_deque_array *a = calloc(1, sizeof *a + capacity * sizeof(_Atomic(void *)));
    if (a == NULL)
        return NULL;
    a->mask = capacity - 1;
    a->retired = NULL;
    return a;
}

bool hyi_deque_init(hyi_deque *d, size_t initial_capacity_pow2)
{
    size_t cap = initial_capacity_pow2 ? initial_capacity_pow2
                                       : HYI_DEQUE_DEFAULT_CAPACITY;
    size_t pow2 = 1;
    while (pow2 < cap) {
        if (pow2 > SIZE_MAX / 2)
            return false;
        pow2 <<= 1;
    }
    hyi_deque_array *a = array_new(pow2);
    if (a == NULL)
        return false;
    /* relaxed (all three): d is not shared yet; its publication orders them. */
    atomic_store_explicit(&d->top, 0, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, 0, memory_order_relaxed);
    atomic_store_explicit(&d->array, a, memory_order_relaxed);
    d->retired = NULL;
    return true;
}

void hyi_deque_destroy(hyi_deque *d)
{
    /* relaxed: no other thread uses d any more (the caller's contract). */
    free(atomic_load_explicit(&d->array, memory_order_relaxed));
    hyi_deque_array *r = d->retired;
    while (r != NULL) {
        hyi_deque_array *older = r->retired;
        free(r);
        r = older;
    }
    atomic_store_explicit(&d->array, NULL, memory_order_relaxed); /* relaxed: as above */
    d->retired = NULL;
}

/* Owner only: replace a (holding [t, b)) by an array twice its size. */
static hyi_deque_array *grow(hyi_deque *d, hyi_deque_array *a, int64_t t, int64_t b)
{
    size_t cap = a->mask + 1;
    if (cap > SIZE_MAX / 2)
        return NULL;
    hyi_deque_array *n = array_new(cap * 2);
    if (n == NULL)
        return NULL;
    for (int64_t i = t; i < b; i++) {
        /* relaxed: the owner wrote these slots itself; thieves only read them. */
        void *x = atomic_load_explicit(&a->slot[(size_t)i & a->mask],
                                       memory_order_relaxed);
        /* relaxed: n is published by the release store of array below. */
        atomic_store_explicit(&n->slot[(size_t)i & n->mask], x, memory_order_relaxed);
    }
    /* release: a thief that loads n (acquire) sees the copied slots. */
    atomic_store_explicit(&d->array, n, memory_order_release);
    a->retired = d->retired;
    d->retired = a;
    return n;
}

bool hyi_deque_push(hyi_deque *d, void *item)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: pairs with the CAS (release half) of every thief that moved top
     * past a slot, so its read of that slot happens before we rewrite it. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    /* relaxed: only the owner writes array. */
    hyi_deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);

    if (HY_UNLIKELY(b - t > (int64_t)a->mask)) { /* full */
        a = grow(d, a, t, b);
        if (a == NULL)
            return false;
    }
    /* relaxed: published by the release store of bottom below. */
    atomic_store_explicit(&a->slot[(size_t)b & a->mask], item, memory_order_relaxed);
    /* release: a thief whose load of bottom reads b + 1 sees the slot, the array
     * it lives in, and whatever the caller wrote into the item before pushing. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return true;
}

void *hyi_deque_pop(hyi_deque *d)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    /* relaxed: only the owner writes array. */
    hyi_deque_array *a = atomic_load_explicit(&d->array, memory_order_relaxed);
    /* seq_cst: reserve slot b before looking at top; with the seq_cst load of
     * top below and the thieves' seq_cst loads (top, then bottom) this is the
     * paper's fence pair: a thief either sees the smaller bottom or we see its
     * larger top. */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    /* seq_cst: the other half of the store-buffering pair above. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);

    if (t > b) { /* it was empty */
        /* release: restore bottom; keeps our earlier pushes visible to a thief
         * that reads this value. */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
        return NULL;
    }
    /* relaxed: the owner wrote this slot itself. */
    void *x = atomic_load_explicit(&a->slot[(size_t)b & a->mask], memory_order_relaxed);
    if (t == b) {
        /* The last item: thieves may be after it too; whoever moves top wins.
         * seq_cst: total order with the thieves' CAS and loads; relaxed on
         * failure: we then read nothing more through top. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            x = NULL; /* a thief won */
        /* release: as above; the deque is now empty with top == bottom. */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    }
    return x;
}

void *hyi_deque_steal(hyi_deque *d)
{
    /* seq_cst: the paper's acquire load plus fence(seq_cst): top is read before
     * bottom in the total order (pairs with pop's store bottom / load top), and
     * acquire pairs with the CAS of the thief or owner that last moved top. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    /* seq_cst: the second half of that pair; acquire pairs with push's release
     * store of bottom, so the slots below it and the current array are visible. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return NULL; /* empty */
    /* acquire (the paper's consume): pairs with grow's release store, so the
     * copied slots of a newer array are visible. */
    hyi_deque_array *a = atomic_load_explicit(&d->array, memory_order_acquire);
    /* relaxed: may race with the owner rewriting the slot after wrap-around; the
     * CAS below then fails and the value is discarded. */
    void *x = atomic_load_explicit(&a->slot[(size_t)t & a->mask], memory_order_relaxed);
    /* seq_cst: claims index t against other thieves and the owner's last-item
     * CAS; release half lets the owner's acquire load of top in push order our
     * slot read before it rewrites the slot. relaxed on failure: x is dropped. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL; /* lost the race */
    return x;
}
