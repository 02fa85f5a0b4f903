/* The slab object pool: every message comes from here.
 *
 * Objects come in a few fixed size classes carved from slabs; larger requests
 * (up to HYI_POOL_MAX_OBJECT) go straight to the allocator's size classes. Each
 * thread keeps a private cache per pool, so acquire and release on the fast path
 * take no lock and no atomic read-modify-write. A release on another thread than
 * the acquiring one (the normal case: a sender acquires, a worker releases) goes
 * to the releasing thread's cache; when a cache grows past its limit, a whole
 * batch moves to the pool's shared list in one operation, and a thread whose
 * cache is empty takes a whole batch back.
 *
 * The cap bounds the bytes the pool reserves from the allocator; past it acquire
 * returns NULL (HY_ENOMEM to the caller), never aborts. */
#ifndef HY_POOL_H
#define HY_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "hy_common.h"
#include "hypha.h"

/* Largest object the pool hands out; the kernel bounds payloads with it. */
#define HYI_POOL_MAX_OBJECT ((size_t)1 << 20)

typedef struct hyi_pool hyi_pool;

typedef struct hyi_pool_stats {
    uint64_t created;        /* objects carved fresh (never used before), less
                                those of slabs hyi_pool_trim gave back */
    uint64_t reused;         /* acquisitions served by a recycled object */
    uint64_t in_use;         /* acquired and not yet released */
    uint64_t peak_in_use;    /* highest in_use seen (approximate across threads) */
    uint64_t bytes_reserved; /* slab and large-object bytes held from the allocator */
    double reuse_rate;       /* reused / (created + reused), 0 when nothing acquired */
} hyi_pool_stats;

/* Create a pool. cap_bytes bounds bytes_reserved; 0 means no cap.
 * Returns 0, HY_EINVAL (out NULL) or HY_ENOMEM. */
int hyi_pool_create(hyi_pool **out, size_t cap_bytes);

/* Free every slab and object of the pool, whichever thread's cache holds them.
 * No thread may use the pool during or after this call. */
void hyi_pool_destroy(hyi_pool *pool);

/* An object of at least `size` bytes, 16-byte aligned, uninitialised; NULL when
 * size > HYI_POOL_MAX_OBJECT or the cap would be exceeded. Sizes up to 4096 come
 * from the classes 64, 128, ..., 4096 (size 0 gets 64 bytes); larger ones are
 * allocated one by one and given back to the allocator on release. */
void *hyi_pool_acquire(hyi_pool *pool, size_t size);

/* A hint for a caller that fills what it acquires and acquires again soon:
 * start fetching, for writing, the lines of the object the calling thread's
 * next hyi_pool_acquire(pool, size) will return. That object was most likely
 * released on another core, so the transfer then overlaps the caller's work
 * instead of stalling its next fill. Changes nothing else: no object is taken
 * and no count moves. */
void hyi_pool_prefetch_next(hyi_pool *pool, size_t size);

/* hyi_pool_acquire followed by hyi_pool_prefetch_next, in one call: a
 * sender's message costs one look-up of its thread's cache, not two. */
void *hyi_pool_acquire_prefetch(hyi_pool *pool, size_t size);

/* Give an object back; any thread may release any object of this pool. NULL is
 * ignored. Debug builds (no NDEBUG) abort with a message on a double release or
 * a pointer that did not come from this pool. */
void hyi_pool_release(hyi_pool *pool, void *obj);

/* Give back to the allocator every slab whose objects are all free in the
 * pool's shared lists (not in a thread's cache): what a burst grew the pool
 * by, once its messages are released. Returns the bytes freed. Thread-safe;
 * takes each class's lock in turn, for a walk over its free objects. */
size_t hyi_pool_trim(hyi_pool *pool);

/* Move the calling thread's cached free objects to the pool's shared lists
 * (where hyi_pool_trim can give their slabs back): for a thread about to
 * sleep long. Its uncarved reserve stays. Nothing to do for a thread that
 * never used the pool. */
void hyi_pool_flush_cache(hyi_pool *pool);

/* Usable size of an object returned by hyi_pool_acquire (>= the size asked). */
size_t hyi_pool_object_size(const void *obj);

/* A consistent-enough snapshot: counters are summed over threads with relaxed
 * loads, so concurrent activity may make them lag by a few objects. Counts of
 * exited threads are kept. peak_in_use is sampled on each call and whenever a
 * thread refills its cache from the shared lists, so a short spike between two
 * samples may be missed by up to a cache's worth of objects per thread. */
void hyi_pool_get_stats(hyi_pool *pool, hyi_pool_stats *out);

#endif
