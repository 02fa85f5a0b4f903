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
 * moves (and, once per 255 blocks of 256 bytes, a slab allocation or free). */
#ifndef HY_BLOCKS_H
#define HY_BLOCKS_H

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

#endif
