/* Blocks (contract in blocks.h).
 *
 * Each class (a size) keeps a list of its slabs that have a free block, and
 * all its slabs sorted by address, so a block finds its slab by a binary
 * search (on free only: passivation and close, never a send). Slabs are
 * page-aligned mappings of their own (map_slab says why), not aligned to
 * their size: a 64 KiB-aligned request from the allocator doubled the
 * address space it retained. The slab's first cache line is its header (class, free
 * list, counts, list links); blocks follow from the first 64-byte boundary,
 * carved on first use (a bump index), then recycled through the slab's free
 * list. A slab whose last block comes back is freed at once: passivating
 * every actor leaves nothing held here.
 *
 * Which slab a block comes from: the head of the class's list, where a slab
 * goes when it stops being full. Blocks freed recently are reused first, so
 * a steady population stays in few slabs.
 *
 * A class's index of slabs halves when a quarter full, and goes with its
 * last slab: a million actors' worth of entries does not outlive them.
 *
 * Sanitizers: under ASan a free or uncarved block is poisoned (its first
 * word, the free-list link, excepted), so a use after free is reported as
 * with malloc. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "blocks.h"
#include "hy_common.h"
#include "poison.h"

#define SLAB_BYTES ((size_t)64 * 1024)
#define PAGE_BYTES ((size_t)4096)
#define NCLASS (HYI_BLOCKS_MAX / HYI_BLOCK_ALIGN)
#define ALL_MIN 64 /* slabs the index of a class starts with */

typedef struct bclass bclass;

typedef struct slab {
    struct slab *prev, *next; /* the class's list of slabs with a free block */
    char *blocks;             /* the first block: 64-byte aligned */
    void *free;               /* freed blocks, linked through their first word */
    uint32_t used;            /* blocks handed out */
    uint32_t carved;          /* blocks carved so far; the rest follow */
    uint32_t nblocks;
    uint32_t size;
    bool listed;
    bool mapped; /* from mmap, else from the allocator */
} slab;


/* A cache line each: classes' locks do not share one, and a class is found
 * by a shift. */
struct bclass {
    HY_CACHE_ALIGNED pthread_mutex_t lock;
    slab *open; /* slabs with a free block, most recently opened first */
    slab **all; /* every slab, by address */
    size_t n, cap;
    /* relaxed: a statistic, cap in bytes (written under lock, read without) */
    _Atomic size_t index_bytes;
};

static bclass classes[NCLASS];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;
/* relaxed: a statistic */
static _Atomic size_t reserved;

static void classes_init(void)
{
    for (size_t i = 0; i < NCLASS; i++)
        pthread_mutex_init(&classes[i].lock, NULL);
}

static void list_add(bclass *c, slab *s)
{
    s->prev = NULL;
    s->next = c->open;
    if (c->open)
        c->open->prev = s;
    c->open = s;
    s->listed = true;
}

static void list_remove(bclass *c, slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->open = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->listed = false;
}

/* Where slab s goes (or is) in c->all. */
static size_t slab_rank(const bclass *c, const void *addr)
{
    size_t lo = 0, hi = c->n; /* first slab above addr */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((const void *)c->all[mid] <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for one more slab in c->all; false when out of memory. */
static bool all_reserve(bclass *c)
{
    if (c->n < c->cap)
        return true;
    size_t cap = c->cap ? c->cap * 2 : ALL_MIN;
    slab **a = realloc(c->all, cap * sizeof *a);
    if (!a)
        return false;
    c->all = a;
    c->cap = cap;
    /* relaxed: a statistic */
    atomic_store_explicit(&c->index_bytes, cap * sizeof *a, memory_order_relaxed);
    return true;
}

/* Slabs are mapped directly: through jemalloc, its metadata after
 * passivating a million actors and purging stayed about 0.5 MB higher, and
 * RSS after purge 1.16x the baseline instead of 1.10x (hypha-bench actors,
 * 7 runs each way). When
 * the process runs out of mappings (vm.max_map_count), the allocator
 * serves them instead. */
static slab *map_slab(void)
{
    void *p = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static slab *slab_new(bclass *c, size_t size)
{
    if (!all_reserve(c))
        return NULL;
    slab *s = map_slab();
    bool mapped = s != NULL;
    if (!mapped && !(s = aligned_alloc(PAGE_BYTES, SLAB_BYTES)))
        return NULL;
    char *first = (char *)(((uintptr_t)s + sizeof *s + HYI_BLOCK_ALIGN - 1) &
                           ~(uintptr_t)(HYI_BLOCK_ALIGN - 1));
    *s = (slab){.blocks = first,
                .nblocks = (uint32_t)(((char *)s + SLAB_BYTES - first) / size),
                .size = (uint32_t)size,
                .mapped = mapped};
    POISON(first, (char *)s + SLAB_BYTES - first);
    size_t at = slab_rank(c, s);
    memmove(&c->all[at + 1], &c->all[at], (c->n - at) * sizeof *c->all);
    c->all[at] = s;
    c->n++;
    atomic_fetch_add_explicit(&reserved, SLAB_BYTES, memory_order_relaxed);
    return s;
}

/* After a removal from c->all: give back what a burst grew it by. Halved
 * when a quarter full (so a steady count never reallocates back and forth),
 * freed with the class's last slab. A failed shrink keeps the larger array. */
static void all_shrink(bclass *c)
{
    if (c->n == 0) {
        free(c->all);
        c->all = NULL;
        c->cap = 0;
        atomic_store_explicit(&c->index_bytes, 0, memory_order_relaxed);
        return;
    }
    size_t cap = c->cap;
    while (cap > ALL_MIN && c->n < cap / 4)
        cap /= 2;
    if (cap == c->cap)
        return;
    slab **a = realloc(c->all, cap * sizeof *a);
    if (!a)
        return;
    c->all = a;
    c->cap = cap;
    atomic_store_explicit(&c->index_bytes, cap * sizeof *a, memory_order_relaxed);
}

static void slab_free(bclass *c, slab *s)
{
    size_t at = slab_rank(c, s) - 1; /* s itself */
    memmove(&c->all[at], &c->all[at + 1], (c->n - at - 1) * sizeof *c->all);
    c->n--;
    all_shrink(c);
    UNPOISON(s->blocks, (char *)s + SLAB_BYTES - s->blocks);
    atomic_fetch_sub_explicit(&reserved, SLAB_BYTES, memory_order_relaxed);
    if (s->mapped)
        munmap(s, SLAB_BYTES);
    else
        free(s);
}

static bool small(size_t size)
{
    return size && size <= HYI_BLOCKS_MAX && size % HYI_BLOCK_ALIGN == 0;
}

void *hyi_block_alloc(size_t size)
{
    if (!small(size))
        return aligned_alloc(HYI_BLOCK_ALIGN,
                             (size + HYI_BLOCK_ALIGN - 1) & ~(size_t)(HYI_BLOCK_ALIGN - 1));
    pthread_once(&classes_once, classes_init);
    bclass *c = &classes[size / HYI_BLOCK_ALIGN - 1];
    pthread_mutex_lock(&c->lock);
    slab *s = c->open;
    if (!s && (s = slab_new(c, size)) != NULL)
        list_add(c, s);
    void *p = NULL;
    if (s) {
        if (s->free) {
            p = s->free;
            UNPOISON(p, size);
            s->free = *(void **)p;
        } else {
            p = s->blocks + (size_t)s->carved++ * size;
            UNPOISON(p, size);
        }
        if (++s->used == s->nblocks)
            list_remove(c, s);
    }
    pthread_mutex_unlock(&c->lock);
    return p;
}

void hyi_block_free(void *p, size_t size)
{
    if (!p)
        return;
    if (!small(size)) {
        free(p);
        return;
    }
    bclass *c = &classes[size / HYI_BLOCK_ALIGN - 1];
    pthread_mutex_lock(&c->lock);
    slab *s = c->all[slab_rank(c, p) - 1]; /* the last slab at or below p */
    *(void **)p = s->free;
    s->free = p;
    POISON((char *)p + sizeof(void *), size - sizeof(void *));
    bool was_full = !s->listed;
    if (--s->used == 0) {
        /* empty: back to the allocator at once */
        if (!was_full)
            list_remove(c, s);
        slab_free(c, s);
    } else if (was_full) {
        list_add(c, s);
    }
    pthread_mutex_unlock(&c->lock);
}

size_t hyi_blocks_reserved(void)
{
    return atomic_load_explicit(&reserved, memory_order_relaxed);
}

/* ---------------------------------------------------------------- arrays */

void *hyi_array_zalloc(size_t size, bool *mapped)
{
    *mapped = false;
    if (size >= HYI_ARRAY_MAPPED_MIN) {
        /* Populated: pages first read (a probe) and then written would each
         * map the shared zero page and then copy it, and replacing that
         * mapping flushes the TLB of every core running a thread of this
         * process (an interrupt each); a table's pages are all written soon
         * anyway. */
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p != MAP_FAILED) {
            *mapped = true;
            return p; /* zero-filled */
        }
        /* out of mappings (vm.max_map_count): the allocator serves it */
    }
    return calloc(1, size);
}

void hyi_array_free(void *p, size_t size, bool mapped)
{
    if (!p)
        return;
    if (mapped)
        munmap(p, size);
    else
        free(p);
}

/* jemalloc's control call, when it is the allocator (not under SAN). */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

void hyi_thread_cache_flush(void)
{
    if (mallctl)
        mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
}

size_t hyi_blocks_index_bytes(void)
{
    size_t b = 0;
    for (size_t i = 0; i < NCLASS; i++)
        b += atomic_load_explicit(&classes[i].index_bytes, memory_order_relaxed);
    return b;
}
