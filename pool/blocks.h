/* Blocks: fixed-size, cache-line-aligned blocks carved from 64 KiB slabs
 * that go back to the allocator the moment their last block is freed.
 *
 * For objects that come and go by the million and must leave nothing behind
 * once gone: keyed actors, which passivation frees in bulk. Allocated one by
 * one from malloc, a million 256-byte objects leave the allocator with about
 * 8 MB of bookkeeping for the small slabs they lived in, which it keeps
 * resident after every block is freed and purged; 64 KiB slabs cost it one
 * large extent each (about 0.5 MB for the same million, measured with
 * jemalloc 5.3).
 *
 * Sizes are multiples of HYI_BLOCK_ALIGN up to HYI_BLOCKS_MAX, one class per
 * size; a larger size is an ordinary aligned allocation. free takes the size
 * alloc was given. Thread-safe: one mutex per class, held for a few pointer
 * moves (and, once per 255 blocks of 256 bytes, a slab allocation or free).
 *
 * For the same bulk frees, two more ways to leave nothing behind: arrays
 * mapped on their own from a page up (tables that grow and shrink in
 * bursts), and a flush of the calling thread's allocator cache. */
#ifndef HY_BLOCKS_H
#define HY_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>

#define HYI_BLOCK_ALIGN 64
#define HYI_BLOCKS_MAX 1024

/* A block of size bytes (a multiple of HYI_BLOCK_ALIGN), 64-byte aligned,
 * uninitialised; NULL when out of memory. */
void *hyi_block_alloc(size_t size);

/* Give back a block of hyi_block_alloc(size). NULL is ignored. */
void hyi_block_free(void *p, size_t size);

/* Bytes the blocks module holds from the allocator now (slabs, and the
 * large blocks not counted). For benchmarks and tests. */
size_t hyi_blocks_reserved(void);

/* Bytes of the classes' slab indexes (an index shrinks as its slabs go).
 * For tests. */
size_t hyi_blocks_index_bytes(void);

/* A zeroed array of size bytes, for tables that grow and shrink in bursts
 * (the actor table's buckets). From HYI_ARRAY_MAPPED_MIN bytes up it is a
 * mapping of its own, its pages filled at once (a table's pages are all
 * written soon): when freed it goes back to the system at once, not
 * into the freeing thread's allocator cache, and the allocator keeps no
 * bookkeeping for it. Smaller ones come from the allocator, which reuses
 * their pages: mapped from 4 KiB up, a million activations faulted in every
 * intermediate bucket array afresh and ran about 10% slower (a mapping,
 * touched and unmapped, costs 40-70 us on a virtual machine). *mapped says
 * which it is (hyi_array_free needs it). NULL when out of memory. */
#define HYI_ARRAY_MAPPED_MIN ((size_t)32768)
void *hyi_array_zalloc(size_t size, bool *mapped);

/* Give back a hyi_array_zalloc(size, &mapped) array. NULL is ignored. */
void hyi_array_free(void *p, size_t size, bool mapped);

/* Hand what the calling thread's allocator cache holds back to the
 * allocator (jemalloc's tcache; a no-op under another malloc). For a thread
 * that has freed in bulk and may now idle: until it allocates again, what
 * sits in its cache stays counted as in use and resident. */
void hyi_thread_cache_flush(void);

#endif
