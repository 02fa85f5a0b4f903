/* Timers, a built-in subsystem: hy_send_after, hy_send_every,
 * hy_timer_cancel, and the timer provider behind hy_ask_async_timeout. The
 * public contract is in hypha.h (section "Timers").
 *
 * Why a built-in: firing is a hy_send from a thread of our own, and
 * persistence is a persistent subsystem ("timers") written on the public API.
 * What the public header cannot express comes from hypha_ext.h, each piece
 * documented there: the per-kernel slot that holds this state (stopped at
 * shutdown, before the kernel closes, so the thread is joined while its last
 * sends are still accepted; freed at close), the timer provider the core's
 * hy_ask_async_timeout calls, the dead-letter reason of the timer thread's
 * unrouted sends, whether a path is persistent, and whether the caller is
 * replaying. A kernel that never schedules a timer has no slot set, no thread
 * and no subsystem: hy_send_after attaches on first use (once, under a
 * process-wide mutex taken only then).
 *
 * The wheel. Time is counted in ticks of 2^18 ns since attach. Six levels:
 * level 0 has 256 slots of one tick, levels 1..5 have 64 slots each covering
 * 2^(8+6(L-1)) ticks: 2^38 ticks in all, far beyond HY_TIMER_MAX_MS. A timer
 * goes to the level its distance from `cur` (the next tick to process) asks
 * for, in the slot named by its expiry's digit there (the classic cascading
 * wheel); when `cur` crosses a level-L slot boundary, that slot's timers are
 * re-inserted lower down. Each slot is a doubly linked list and each level
 * has a bitmap of non-empty slots, so schedule and cancel are O(1), and the
 * next thing to do (a level-0 expiry or a cascade) is found by a few
 * count-trailing-zeros, which is what the thread sleeps until; with nothing
 * pending it sleeps on its condition variable without a timeout. Expiry
 * ticks are rounded up, so a timer never fires before its deadline.
 *
 * Records. Every timer is a 128-byte record in a table of 4096-record chunks
 * (addresses stable, chunks made on demand, never freed before close), with
 * the path and payload inline when they fit in 64 bytes (else one malloc).
 * Free records form a LIFO list. An id is epoch:16 | generation:24 |
 * index:24: the index finds the record without a search, the generation
 * (bumped at each reuse of the record) makes a stale id miss, and the epoch
 * (kept in the journal, bumped at each attach with a journal) keeps ids
 * unique across restarts. At most 2^24 timers are pending at once.
 *
 * One mutex guards the wheel, the table and the figures. Schedule and cancel
 * hold it for a few dozen instructions; the thread takes the due timers out
 * under it (state FIRING), sends them without it, and takes it again to
 * re-arm the periodic ones and free the rest. A cancel that finds a timer
 * FIRING cannot stop that firing (it returns 0 for a one-shot timer) but
 * stops a periodic one's later firings (1). The thread is woken by a
 * schedule only when the new expiry is earlier than the tick it sleeps
 * until.
 *
 * Persistence (hypha.h says what is promised). With a journal, attach
 * registers the persistent subsystem "timers", whose one actor keeps a book
 * of the pending persistent timers (id -> wall-clock deadline, period, path,
 * payload), fed by messages: arm, fired (the next deadline, or 0: gone),
 * cancel, boot (the epoch). Registration recovers the book (snapshot, then
 * replay); attach reads it before sending anything there, bumps the epoch
 * and re-arms each timer under its own id. An arm is sent before the timer
 * enters the wheel, so the journal never holds its "fired" first. A firing
 * goes out as one hy_send_batch of the message and its "fired" record: one
 * group commit, so after a crash either both are in the journal (the target
 * has it, the book does not re-arm it) or neither (it fires again, the
 * first time as far as anyone recovered can tell). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hypha.h"
#include "hypha_ext.h"

/* ------------------------------------------------------------ constants */

#define TICK_SHIFT 18 /* 262,144 ns */
#define TICK_NS ((uint64_t)1 << TICK_SHIFT)
#define L0_BITS 8
#define LN_BITS 6
#define NLEVELS 6
#define NHEADS (256 + (NLEVELS - 1) * 64)
#define NBITMAPS (NHEADS / 64)

#define INDEX_BITS 24
#define GEN_BITS 24
#define INDEX_MASK (((uint64_t)1 << INDEX_BITS) - 1)
#define GEN_MASK (((uint64_t)1 << GEN_BITS) - 1)
#define MAX_RECORDS ((uint64_t)1 << INDEX_BITS)
#define CHUNK_BITS 12
#define CHUNK_RECS ((uint32_t)1 << CHUNK_BITS)
#define NCHUNKS (MAX_RECORDS / CHUNK_RECS)

#define REC_SIZE 128
#define REC_INLINE 56

#define LATE_NS (1000000u + TICK_NS)
#define NSAMPLES 4096

#define BOOK_NAME "timers"

/* ------------------------------------------------------------ records */

typedef struct tlink {
    struct tlink *next, *prev;
} tlink;

enum { T_FREE, T_RESERVED, T_PENDING, T_FIRING };
enum {
    F_PERSIST = 2,   /* journaled in the book */
    F_HEAP = 4,      /* path and payload in a malloc'd block */
    F_CALLBACK = 8,  /* a provider timer: fn(arg, status), no message */
};

typedef struct trec {
    tlink link;            /* wheel slot list, free list, or firing list */
    uint64_t id;           /* the current id (the last one while free) */
    uint64_t expires;      /* tick */
    uint64_t deadline_ns;  /* monotonic, exact */
    uint64_t wall_ns;      /* persistent: the deadline in CLOCK_REALTIME */
    uint32_t period_ms;    /* 0: one-shot */
    uint32_t payload_len;
    uint16_t path_len;
    uint16_t where;        /* its wheel head while pending */
    uint8_t state, flags;  /* flags: fixed while the record is in use */
    /* A periodic timer cancelled while firing: not re-armed. Its own byte,
     * written under the lock while the thread reads flags without it. */
    uint8_t cancelled;
    /* The firing's outcome, written by the thread without the lock: 0 sent,
     * 1 refused, 2 no route. Nobody else reads it. */
    uint8_t outcome;
    /* The principal that scheduled it (a reference; NULL: the trusted one):
     * the timer fires as it, so a handler cannot reach through a timer a
     * route its request's principal could not. */
    hy_principal *as;
    union {
        char inline_data[REC_INLINE]; /* path, NUL, payload */
        char *heap;
        struct {
            hy_ext_timer_fn fn;
            void *arg;
        } cb;
    } u;
} trec;

_Static_assert(sizeof(trec) == REC_SIZE, "a timer record is two cache lines");

#define REC_OF(l) ((trec *)((char *)(l) - offsetof(trec, link)))

static const char *rec_path(const trec *r)
{
    return r->flags & F_HEAP ? r->u.heap : r->u.inline_data;
}

static const void *rec_payload(const trec *r)
{
    return rec_path(r) + r->path_len + 1;
}

/* ------------------------------------------------------------ the book (persistence) */

/* One pending persistent timer, as journaled. */
typedef struct bentry {
    struct bentry *next;
    uint64_t id, wall_ns;
    uint32_t period_ms, payload_len;
    uint16_t path_len;
    char data[]; /* path, NUL, payload */
} bentry;

typedef struct book {
    uint32_t epoch;
    size_t count, nbuckets; /* nbuckets: a power of two */
    bentry **buckets;
} book;

/* The arm message's fixed part, then path and payload. */
typedef struct arm_rec {
    uint64_t id, wall_ns;
    uint32_t period_ms, payload_len;
    uint16_t path_len, pad[3];
} arm_rec;

typedef struct fired_rec {
    uint64_t id, next_wall_ns; /* 0: it is gone */
} fired_rec;

static size_t book_bucket(const book *b, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (b->nbuckets - 1);
}

static bentry **book_find(book *b, uint64_t id)
{
    bentry **p = &b->buckets[book_bucket(b, id)];
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    return p;
}

static int book_add(book *b, bentry *e)
{
    if (b->count + 1 > b->nbuckets) {
        size_t n = b->nbuckets ? b->nbuckets * 2 : 64;
        bentry **nb = calloc(n, sizeof *nb);
        if (!nb)
            return HY_ENOMEM;
        bentry **old = b->buckets;
        size_t on = b->nbuckets;
        b->buckets = nb;
        b->nbuckets = n;
        for (size_t i = 0; i < on; i++)
            for (bentry *x = old[i], *next; x; x = next) {
                next = x->next;
                size_t h = book_bucket(b, x->id);
                x->next = nb[h];
                nb[h] = x;
            }
        free(old);
    }
    bentry **p = book_find(b, e->id);
    if (*p) { /* the same arm twice: keep the first */
        free(e);
        return 0;
    }
    e->next = NULL;
    *p = e;
    b->count++;
    return 0;
}

static void book_free(book *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nbuckets; i++)
        for (bentry *x = b->buckets[i], *next; x; x = next) {
            next = x->next;
            free(x);
        }
    free(b->buckets);
    free(b);
}

static bentry *bentry_make(const arm_rec *a, const char *data)
{
    size_t n = (size_t)a->path_len + 1 + a->payload_len;
    bentry *e = malloc(sizeof *e + n);
    if (!e)
        return NULL;
    e->id = a->id;
    e->wall_ns = a->wall_ns;
    e->period_ms = a->period_ms;
    e->payload_len = a->payload_len;
    e->path_len = a->path_len;
    memcpy(e->data, data, n);
    return e;
}

/* ------------------------------------------------------------ the timer state */

typedef struct timers {
    hy_kernel *k;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool thread_started;
    bool closed;            /* stop began: calls fail with HY_ECLOSED */
    uint64_t base_ns;       /* monotonic time of tick 0 */
    uint64_t cur;           /* the next tick to process */
    uint64_t sleep_until;   /* the thread sleeps until this tick; 0: awake */
    tlink heads[NHEADS];
    uint64_t bitmap[NBITMAPS];
    trec *chunks[NCHUNKS];
    uint32_t nrecs;         /* records carved so far */
    tlink *free_list;       /* through link.next */
    uint64_t epoch;         /* the top 16 bits of new ids */
    bool journaled;         /* "timers" is registered: persistent timers */
    book *book;             /* the "timers" actor's state (its handlers own it) */
    /* figures, under lock */
    uint64_t pending, fired, cancelled, late, failed, noroute, recovered;
    uint64_t samples[NSAMPLES];
    uint64_t nsamples;
} timers;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static trec *rec_at(timers *t, uint64_t index)
{
    return &t->chunks[index >> CHUNK_BITS][index & (CHUNK_RECS - 1)];
}

/* Carve the next chunk onto the free list. Lock held. */
static int grow(timers *t)
{
    if (t->nrecs >= MAX_RECORDS)
        return HY_ENOMEM;
    uint32_t c = t->nrecs >> CHUNK_BITS;
    trec *chunk = t->chunks[c];
    if (!chunk) {
        chunk = aligned_alloc(64, CHUNK_RECS * sizeof(trec));
        if (!chunk)
            return HY_ENOMEM;
        memset(chunk, 0, CHUNK_RECS * sizeof(trec));
        t->chunks[c] = chunk;
    }
    /* pushed in reverse, so the lowest index is handed out first */
    for (uint32_t i = CHUNK_RECS; i-- > 0;) {
        trec *r = &chunk[i];
        if (r->state != T_FREE)
            continue; /* placed by recovery */
        if (r->id == 0) /* never used: its index is its place */
            r->id = (uint64_t)c << CHUNK_BITS | i;
        r->link.next = t->free_list;
        t->free_list = &r->link;
    }
    t->nrecs += CHUNK_RECS;
    return 0;
}

static trec *rec_alloc(timers *t)
{
    if (!t->free_list && grow(t) != 0)
        return NULL;
    trec *r = REC_OF(t->free_list);
    t->free_list = r->link.next;
    uint64_t gen = ((r->id >> INDEX_BITS) + 1) & GEN_MASK;
    if (gen == 0)
        gen = 1;
    /* the record's index is in every id it ever had (grow set the first) */
    r->id = (t->epoch << (INDEX_BITS + GEN_BITS)) | (gen << INDEX_BITS) | (r->id & INDEX_MASK);
    r->flags = 0;
    r->cancelled = 0;
    r->as = NULL;
    r->state = T_RESERVED;
    return r;
}

static void rec_free(timers *t, trec *r)
{
    if (r->flags & F_HEAP)
        free(r->u.heap);
    hy_ext_principal_release(r->as);
    r->as = NULL;
    r->flags = 0;
    r->state = T_FREE;
    r->link.next = t->free_list;
    t->free_list = &r->link;
}

/* ------------------------------------------------------------ the wheel */

static void list_init(tlink *h)
{
    h->next = h->prev = h;
}

static unsigned head_for(timers *t, uint64_t e)
{
    if (e < t->cur)
        e = t->cur; /* overdue: the next tick processed */
    uint64_t diff = e - t->cur;
    if (diff < 256)
        return (unsigned)(e & 255);
    for (unsigned l = 1; l < NLEVELS; l++) {
        unsigned shift = L0_BITS + LN_BITS * (l - 1);
        if (diff < (uint64_t)1 << (shift + LN_BITS) || l == NLEVELS - 1)
            return 256 + (l - 1) * 64 + (unsigned)((e >> shift) & 63);
    }
    return 0; /* not reached */
}

static void wheel_insert(timers *t, trec *r)
{
    unsigned h = head_for(t, r->expires);
    tlink *head = &t->heads[h];
    r->where = (uint16_t)h;
    r->link.prev = head->prev;
    r->link.next = head;
    head->prev->next = &r->link;
    head->prev = &r->link;
    t->bitmap[h >> 6] |= (uint64_t)1 << (h & 63);
}

static void wheel_remove(timers *t, trec *r)
{
    r->link.prev->next = r->link.next;
    r->link.next->prev = r->link.prev;
    tlink *head = &t->heads[r->where];
    if (head->next == head)
        t->bitmap[r->where >> 6] &= ~((uint64_t)1 << (r->where & 63));
}

/* Move the whole list of head h to the tail of `to`, emptying it. */
static void list_take(timers *t, unsigned h, tlink *to)
{
    tlink *head = &t->heads[h];
    if (head->next == head)
        return;
    head->next->prev = to->prev;
    to->prev->next = head->next;
    head->prev->next = to;
    to->prev = head->prev;
    list_init(head);
    t->bitmap[h >> 6] &= ~((uint64_t)1 << (h & 63));
}

static uint64_t rotr64(uint64_t x, unsigned n)
{
    n &= 63;
    return n ? (x >> n) | (x << (64 - n)) : x;
}

/* The first tick >= t->cur at which something happens: a level-0 slot with
 * timers comes due, or an occupied slot of a higher level cascades.
 * UINT64_MAX when nothing is pending. */
static uint64_t next_event(const timers *t)
{
    uint64_t best = UINT64_MAX;
    uint64_t cur = t->cur;
    /* level 0: 256 slots, the first non-empty one from cur's, circularly */
    unsigned i0 = (unsigned)(cur & 255);
    for (unsigned step = 0; step < 5; step++) {
        unsigned w = ((i0 >> 6) + step) & 3;
        uint64_t bits = t->bitmap[w];
        if (step == 0)
            bits &= ~(uint64_t)0 << (i0 & 63);
        else if (step == 4)
            bits &= ((uint64_t)1 << (i0 & 63)) - 1;
        if (bits) {
            unsigned slot = w * 64 + (unsigned)__builtin_ctzll(bits);
            best = cur + ((slot - i0) & 255);
            break;
        }
    }
    for (unsigned l = 1; l < NLEVELS; l++) {
        uint64_t bits = t->bitmap[4 + (l - 1)];
        if (!bits)
            continue;
        unsigned shift = L0_BITS + LN_BITS * (l - 1);
        uint64_t span = (uint64_t)1 << shift;
        uint64_t b = (cur + span - 1) & ~(span - 1); /* the next boundary */
        unsigned i = (unsigned)((b >> shift) & 63);
        unsigned d = (unsigned)__builtin_ctzll(rotr64(bits, i));
        uint64_t when = b + ((uint64_t)d << shift);
        if (when < best)
            best = when;
    }
    return best;
}

/* Process every tick up to now_tick: cascade what crosses a boundary, and
 * append what comes due to `due`. */
static void advance(timers *t, uint64_t now_tick, tlink *due)
{
    while (t->cur <= now_tick) {
        uint64_t when = next_event(t);
        if (when > now_tick) {
            t->cur = now_tick + 1;
            return;
        }
        t->cur = when;
        for (unsigned l = 1; l < NLEVELS; l++) {
            unsigned shift = L0_BITS + LN_BITS * (l - 1);
            if (when & (((uint64_t)1 << shift) - 1))
                break;
            tlink moved;
            list_init(&moved);
            list_take(t, 256 + (l - 1) * 64 + (unsigned)((when >> shift) & 63), &moved);
            while (moved.next != &moved) {
                trec *r = REC_OF(moved.next);
                moved.next = r->link.next;
                moved.next->prev = &moved;
                wheel_insert(t, r);
            }
        }
        list_take(t, (unsigned)(when & 255), due);
        t->cur = when + 1;
    }
}

static uint64_t expiry_tick(const timers *t, uint64_t deadline_ns)
{
    if (deadline_ns <= t->base_ns)
        return 0;
    return (deadline_ns - t->base_ns + TICK_NS - 1) >> TICK_SHIFT;
}

/* Put a reserved record in the wheel; wake the thread if it sleeps past it. */
static void arm_locked(timers *t, trec *r)
{
    r->expires = expiry_tick(t, r->deadline_ns);
    r->state = T_PENDING;
    t->pending++;
    wheel_insert(t, r);
    if (t->sleep_until && r->expires < t->sleep_until) {
        t->sleep_until = 0;
        pthread_cond_signal(&t->wake);
    }
}

/* ------------------------------------------------------------ firing */

/* The record's message (persistent: with its "fired" record in the same
 * batch). Lock not held; the record is FIRING, so nobody else touches it. */
static int fire_send(timers *t, trec *r, uint64_t next_wall)
{
    const char *path = rec_path(r);
    const void *payload = rec_payload(r);
    if (!(r->flags & F_PERSIST))
        return hy_send_as(t->k, r->as, path, payload, r->payload_len);
    fired_rec f = {r->id, next_wall};
    hy_send_item items[2] = {{path, payload, r->payload_len},
                             {BOOK_NAME "://fired", &f, sizeof f}};
    size_t accepted = 0;
    int rc = hy_send_batch_as(t->k, r->as, items, 2, &accepted);
    if (accepted == 0) /* it will not fire again after a restart either */
        (void)hy_send(t->k, BOOK_NAME "://fired", &f, sizeof f);
    return rc;
}

/* The next deadline of a periodic timer: one period on, or, when that is
 * past already, the first period after now (missed ones are skipped). */
static uint64_t next_deadline(uint64_t deadline, uint64_t period_ns, uint64_t now,
                              uint64_t *skipped)
{
    uint64_t next = deadline + period_ns;
    *skipped = 0;
    if (next <= now) {
        *skipped = (now - next) / period_ns + 1;
        next += *skipped * period_ns;
    }
    return next;
}

static void fire_all(timers *t, tlink *due)
{
    uint64_t now = mono_ns();
    /* Unlocked: the records are FIRING. The list itself is ours. */
    pthread_mutex_unlock(&t->lock);
    for (tlink *l = due->next; l != due; l = l->next) {
        trec *r = REC_OF(l);
        if (r->flags & F_CALLBACK) {
            r->u.cb.fn(r->u.cb.arg, 0);
            continue;
        }
        uint64_t next_wall = 0;
        if (r->period_ms && (r->flags & F_PERSIST)) {
            uint64_t skipped, period_ns = (uint64_t)r->period_ms * 1000000u;
            next_deadline(r->deadline_ns, period_ns, now, &skipped);
            next_wall = r->wall_ns + (skipped + 1) * period_ns;
        }
        int rc = fire_send(t, r, next_wall);
        r->outcome = rc == 0 ? 0 : rc == HY_ENOROUTE ? 2 : 1;
    }
    pthread_mutex_lock(&t->lock);
    while (due->next != due) {
        trec *r = REC_OF(due->next);
        due->next = r->link.next;
        uint64_t lateness = now > r->deadline_ns ? now - r->deadline_ns : 0;
        t->fired++;
        if (lateness > LATE_NS)
            t->late++;
        t->samples[t->nsamples++ % NSAMPLES] = lateness;
        if (!(r->flags & F_CALLBACK) && r->outcome) {
            t->failed++;
            t->noroute += r->outcome == 2;
        }
        r->outcome = 0;
        if (r->period_ms && !r->cancelled && !t->closed) {
            uint64_t skipped, period_ns = (uint64_t)r->period_ms * 1000000u;
            r->deadline_ns = next_deadline(r->deadline_ns, period_ns, now, &skipped);
            r->wall_ns += (skipped + 1) * period_ns;
            t->pending--; /* arm_locked counts it again */
            arm_locked(t, r);
        } else {
            /* a periodic one cancelled while firing was uncounted then */
            t->pending -= r->period_ms && r->cancelled ? 0 : 1;
            rec_free(t, r);
        }
    }
    due->prev = due;
}

static void *timer_thread(void *arg)
{
    timers *t = arg;
    hy_ext_noroute_reason(HY_DEAD_TIMER_NOROUTE);
    pthread_mutex_lock(&t->lock);
    while (!t->closed) {
        uint64_t now = mono_ns();
        tlink due;
        list_init(&due);
        advance(t, (now - t->base_ns) >> TICK_SHIFT, &due);
        if (due.next != &due) {
            for (tlink *l = due.next; l != &due; l = l->next)
                REC_OF(l)->state = T_FIRING;
            fire_all(t, &due);
            continue;
        }
        uint64_t next = next_event(t);
        if (next == UINT64_MAX) {
            t->sleep_until = UINT64_MAX;
            pthread_cond_wait(&t->wake, &t->lock);
        } else {
            t->sleep_until = next;
            uint64_t at = t->base_ns + (next << TICK_SHIFT);
            struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
            pthread_cond_timedwait(&t->wake, &t->lock, &ts);
        }
        t->sleep_until = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* ------------------------------------------------------------ the "timers" subsystem */

static int book_init(void *udata, const char *key, size_t key_len, void **state)
{
    (void)key, (void)key_len;
    timers *t = udata;
    book *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    t->book = b;
    *state = b;
    return 0;
}

static void book_state_free(void *udata, void *state)
{
    (void)udata;
    book_free(state);
}

static int on_arm(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    arm_rec a;
    if (len < sizeof a)
        return 0; /* not ours: ignored, as every malformed record */
    memcpy(&a, p, sizeof a);
    if (len != sizeof a + a.path_len + 1 + a.payload_len)
        return 0;
    bentry *e = bentry_make(&a, p + sizeof a);
    if (e && book_add(hy_state(ctx), e) != 0)
        free(e);
    return 0;
}

static void book_remove(book *b, uint64_t id)
{
    if (!b->nbuckets)
        return;
    bentry **p = book_find(b, id);
    if (*p) {
        bentry *e = *p;
        *p = e->next;
        free(e);
        b->count--;
    }
}

static int on_fired(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    fired_rec f;
    if (len != sizeof f)
        return 0;
    memcpy(&f, p, sizeof f);
    book *b = hy_state(ctx);
    if (f.next_wall_ns == 0) {
        book_remove(b, f.id);
    } else if (b->nbuckets) {
        bentry *e = *book_find(b, f.id);
        if (e)
            e->wall_ns = f.next_wall_ns;
    }
    return 0;
}

static int on_cancel(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    uint64_t id;
    if (len != sizeof id)
        return 0;
    memcpy(&id, p, sizeof id);
    book_remove(hy_state(ctx), id);
    return 0;
}

static int on_boot(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    uint32_t epoch;
    if (len != sizeof epoch)
        return 0;
    memcpy(&epoch, p, sizeof epoch);
    ((book *)hy_state(ctx))->epoch = epoch;
    return 0;
}

/* Snapshot: epoch, count, then each entry as an arm record. */
static int book_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    book *b = state;
    size_t n = 12;
    for (size_t i = 0; i < b->nbuckets; i++)
        for (bentry *e = b->buckets[i]; e; e = e->next)
            n += sizeof(arm_rec) + e->path_len + 1 + e->payload_len;
    char *out = malloc(n);
    if (!out)
        return -1;
    uint64_t count = b->count;
    memcpy(out, &b->epoch, 4);
    memcpy(out + 4, &count, 8);
    size_t off = 12;
    for (size_t i = 0; i < b->nbuckets; i++)
        for (bentry *e = b->buckets[i]; e; e = e->next) {
            arm_rec a = {.id = e->id, .wall_ns = e->wall_ns, .period_ms = e->period_ms,
                         .payload_len = e->payload_len, .path_len = e->path_len};
            memcpy(out + off, &a, sizeof a);
            off += sizeof a;
            size_t d = (size_t)e->path_len + 1 + e->payload_len;
            memcpy(out + off, e->data, d);
            off += d;
        }
    *bytes = out;
    *len = n;
    return 0;
}

static int book_load(void *udata, const char *key, size_t key_len, const void *bytes,
                     size_t len, void **state)
{
    (void)key, (void)key_len;
    timers *t = udata;
    const char *p = bytes;
    if (len < 12)
        return -1;
    book *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    uint64_t count;
    memcpy(&b->epoch, p, 4);
    memcpy(&count, p + 4, 8);
    size_t off = 12;
    for (uint64_t i = 0; i < count; i++) {
        arm_rec a;
        if (len - off < sizeof a)
            goto bad;
        memcpy(&a, p + off, sizeof a);
        off += sizeof a;
        size_t d = (size_t)a.path_len + 1 + a.payload_len;
        if (len - off < d)
            goto bad;
        bentry *e = bentry_make(&a, p + off);
        if (!e || book_add(b, e) != 0) {
            free(e);
            goto bad;
        }
        off += d;
    }
    t->book = b;
    *state = b;
    return 0;
bad:
    book_free(b);
    return -1;
}

static const hy_route book_routes[] = {
    {.pattern = "arm", .handler = on_arm},
    {.pattern = "fired", .handler = on_fired},
    {.pattern = "cancel", .handler = on_cancel},
    {.pattern = "boot", .handler = on_boot},
};

/* Put a recovered timer back in the table at its own index and id. Before
 * the thread starts and the slot is set: nobody else sees t. */
static int rearm_recovered(timers *t, const bentry *e, uint64_t now_mono, uint64_t now_wall)
{
    uint64_t index = e->id & INDEX_MASK;
    uint32_t c = (uint32_t)(index >> CHUNK_BITS);
    if (!t->chunks[c]) {
        t->chunks[c] = aligned_alloc(64, CHUNK_RECS * sizeof(trec));
        if (!t->chunks[c])
            return HY_ENOMEM;
        memset(t->chunks[c], 0, CHUNK_RECS * sizeof(trec));
    }
    trec *r = rec_at(t, index);
    if (r->state != T_FREE)
        return 0; /* cannot happen: ids are unique */
    size_t d = (size_t)e->path_len + 1 + e->payload_len;
    r->flags = F_PERSIST;
    if (d > REC_INLINE) {
        if (!(r->u.heap = malloc(d)))
            return HY_ENOMEM;
        r->flags |= F_HEAP;
    }
    memcpy(r->flags & F_HEAP ? r->u.heap : r->u.inline_data, e->data, d);
    r->id = e->id;
    r->path_len = e->path_len;
    r->payload_len = e->payload_len;
    r->period_ms = e->period_ms;
    r->wall_ns = e->wall_ns;
    r->deadline_ns = now_mono + (e->wall_ns > now_wall ? e->wall_ns - now_wall : 0);
    arm_locked(t, r);
    t->recovered++;
    return 0;
}

/* Register "timers" (with a journal), recover the book, bump the epoch and
 * re-arm what it holds. No journal: nothing to do. */
static int recover(timers *t)
{
    hy_subsystem_def def = {.routes = book_routes,
                            .nroutes = sizeof book_routes / sizeof book_routes[0],
                            .udata = t,
                            .state_init = book_init,
                            .state_free = book_state_free,
                            .persistent = 1,
                            .state_save = book_save,
                            .state_load = book_load};
    int rc = hy_subsystem_register(t->k, BOOK_NAME, &def);
    /* The one HY_EINVAL this def can get is "persistent without a journal"
     * (the public API has no other way to ask): then timers are not
     * journaled. */
    if (rc == HY_EINVAL)
        return 0;
    if (rc != 0)
        return rc;
    t->journaled = true;
    /* Registration recovered the actor on this thread; nothing is sent
     * there yet, so reading its state here races with no handler. */
    book *b = t->book;
    uint32_t epoch = (b->epoch + 1) & 0xffff;
    if (epoch == 0)
        epoch = 1;
    t->epoch = epoch;
    uint64_t now_mono = mono_ns(), now_wall = wall_ns();
    uint64_t max_index = 0;
    for (size_t i = 0; i < b->nbuckets; i++)
        for (bentry *e = b->buckets[i]; e; e = e->next) {
            if ((rc = rearm_recovered(t, e, now_mono, now_wall)) != 0)
                return rc;
            if ((e->id & INDEX_MASK) + 1 > max_index)
                max_index = (e->id & INDEX_MASK) + 1;
        }
    /* The free list: every chunk up to the highest recovered index, less
     * the recovered records (grow skips them). */
    while (t->nrecs < max_index)
        if ((rc = grow(t)) != 0)
            return rc;
    return hy_send(t->k, BOOK_NAME "://boot", &epoch, sizeof epoch);
}

/* ------------------------------------------------------------ the provider (hy_ask_async_timeout) */

static int schedule_locked_check(timers *t)
{
    return t->closed ? HY_ECLOSED : 0;
}

static int provider_arm(void *self, int64_t delay_ms, hy_ext_timer_fn fn, void *arg,
                        uint64_t *id)
{
    timers *t = self;
    if (delay_ms < 0 || delay_ms > HY_TIMER_MAX_MS)
        return hy_ext_fail(HY_EINVAL, "timeout of %lld ms: want 0 to HY_TIMER_MAX_MS",
                           (long long)delay_ms);
    uint64_t deadline = mono_ns() + (uint64_t)delay_ms * 1000000u;
    pthread_mutex_lock(&t->lock);
    int rc = schedule_locked_check(t);
    trec *r = rc == 0 ? rec_alloc(t) : NULL;
    if (rc == 0 && !r)
        rc = HY_ENOMEM;
    if (rc == 0) {
        r->flags = F_CALLBACK;
        r->u.cb.fn = fn;
        r->u.cb.arg = arg;
        r->period_ms = 0;
        r->deadline_ns = deadline;
        *id = r->id;
        arm_locked(t, r);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static int cancel_impl(timers *t, uint64_t id, bool *persist);

static int provider_cancel(void *self, uint64_t id)
{
    bool persist;
    int rc = cancel_impl(self, id, &persist);
    return rc == 1 ? 1 : 0;
}

static const hy_ext_timer_ops provider_ops = {provider_arm, provider_cancel};

/* ------------------------------------------------------------ stop and free */

/* Shutdown: join the thread, drop what is pending (a provider's timers
 * hear HY_ECLOSED). Persistent timers stay in the journal. */
static void timers_stop(hy_kernel *k, void *state)
{
    (void)k;
    timers *t = state;
    pthread_mutex_lock(&t->lock);
    t->closed = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    if (t->thread_started)
        pthread_join(t->thread, NULL);
    tlink dropped;
    list_init(&dropped);
    pthread_mutex_lock(&t->lock);
    for (unsigned h = 0; h < NHEADS; h++)
        list_take(t, h, &dropped);
    t->pending = 0;
    pthread_mutex_unlock(&t->lock);
    while (dropped.next != &dropped) {
        trec *r = REC_OF(dropped.next);
        dropped.next = r->link.next;
        if (r->flags & F_CALLBACK)
            r->u.cb.fn(r->u.cb.arg, HY_ECLOSED);
        pthread_mutex_lock(&t->lock);
        rec_free(t, r);
        pthread_mutex_unlock(&t->lock);
    }
}

static void timers_free(hy_kernel *k, void *state)
{
    (void)k;
    timers *t = state;
    for (uint32_t c = 0; c < NCHUNKS; c++) {
        if (!t->chunks[c])
            continue;
        for (uint32_t i = 0; i < CHUNK_RECS; i++) {
            trec *r = &t->chunks[c][i];
            if (r->state != T_FREE && (r->flags & F_HEAP))
                free(r->u.heap);
        }
        free(t->chunks[c]);
    }
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* ------------------------------------------------------------ attach */

static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;

static timers *timers_new(hy_kernel *k)
{
    timers *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->k = k;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned h = 0; h < NHEADS; h++)
        list_init(&t->heads[h]);
    t->base_ns = mono_ns();
    return t;
}

/* Attach under attach_lock; *out is the timers (new, or already there when
 * lazy). */
static int attach(hy_kernel *k, bool lazy, timers **out)
{
    pthread_mutex_lock(&attach_lock);
    timers *t = hy_ext_slot_get(k, HY_EXT_SLOT_TIMERS);
    if (t) {
        pthread_mutex_unlock(&attach_lock);
        *out = t;
        return lazy ? 0 : HY_EEXIST;
    }
    int rc = HY_ENOMEM;
    t = timers_new(k);
    if (t)
        rc = recover(t);
    if (rc == 0) {
        rc = pthread_create(&t->thread, NULL, timer_thread, t) == 0 ? 0 : HY_ESYS;
        t->thread_started = rc == 0;
    }
    static const hy_ext_slot_ops ops = {timers_stop, timers_free};
    if (rc == 0)
        rc = hy_ext_slot_set(k, HY_EXT_SLOT_TIMERS, t, &ops);
    if (rc == 0) /* fails only if provided already: keep that one */
        (void)hy_ext_timer_provide(k, &provider_ops, t);
    if (rc != 0 && t && !hy_ext_slot_get(k, HY_EXT_SLOT_TIMERS)) {
        timers_stop(k, t);
        timers_free(k, t);
        t = NULL;
    }
    pthread_mutex_unlock(&attach_lock);
    *out = t;
    return rc;
}

int hy_timer_attach(hy_kernel *k, const hy_timer_opts *opts)
{
    (void)opts;
    if (!k)
        return hy_ext_fail(HY_EINVAL, "hy_timer_attach: NULL kernel");
    timers *t;
    return attach(k, false, &t);
}

/* ------------------------------------------------------------ the public calls */

static int schedule(hy_kernel *k, const char *path, const void *payload, size_t len,
                    int64_t delay_ms, uint32_t period_ms, uint64_t *id)
{
    if (id)
        *id = 0;
    if (!k || !path || (!payload && len))
        return hy_ext_fail(HY_EINVAL, "hy_send_after/hy_send_every: NULL kernel, path or "
                           "payload");
    if (delay_ms < 0 || delay_ms > HY_TIMER_MAX_MS)
        return hy_ext_fail(HY_EINVAL, "delay of %lld ms: want 0 to HY_TIMER_MAX_MS",
                           (long long)delay_ms);
    if (len > HY_MAX_PAYLOAD)
        return hy_ext_fail(HY_ETOOBIG, "timer payload of %zu bytes; at most HY_MAX_PAYLOAD "
                           "(%zu)", len, (size_t)HY_MAX_PAYLOAD);
    if (hy_ext_is_replaying(k))
        return 0; /* scheduled live; a persistent one is in the book */
    timers *t = hy_ext_slot_get(k, HY_EXT_SLOT_TIMERS);
    if (!t) {
        int rc = attach(k, true, &t);
        if (rc != 0)
            return rc;
    }
    /* The path is checked now and routed at firing time. */
    int persistent = hy_ext_path_persistent(k, path);
    if (persistent == HY_ENOROUTE)
        persistent = 0;
    else if (persistent == HY_EBADPATH)
        return hy_ext_fail(persistent, "timer path '%.80s' is malformed: %s", path,
                           hy_errdetail());
    else if (persistent < 0)
        return persistent;
    bool persist = persistent && t->journaled;
    size_t path_len = strlen(path);
    size_t d = path_len + 1 + len;
    char *heap = NULL;
    if (d > REC_INLINE && !(heap = malloc(d)))
        return HY_ENOMEM;
    uint64_t now = mono_ns();
    uint64_t deadline = now + (uint64_t)delay_ms * 1000000u;
    pthread_mutex_lock(&t->lock);
    int rc = schedule_locked_check(t);
    trec *r = rc == 0 ? rec_alloc(t) : NULL;
    if (rc == 0 && !r)
        rc = HY_ENOMEM;
    if (rc != 0) {
        pthread_mutex_unlock(&t->lock);
        free(heap);
        return rc;
    }
    char *dst = r->u.inline_data;
    if (heap) {
        r->u.heap = dst = heap;
        r->flags |= F_HEAP;
    }
    memcpy(dst, path, path_len + 1);
    if (len)
        memcpy(dst + path_len + 1, payload, len);
    r->path_len = (uint16_t)path_len;
    r->payload_len = (uint32_t)len;
    r->period_ms = period_ms;
    r->deadline_ns = deadline;
    r->as = hy_ext_principal_hold(k);
    uint64_t tid = r->id;
    if (!persist) {
        arm_locked(t, r);
        pthread_mutex_unlock(&t->lock);
        if (id)
            *id = tid;
        return 0;
    }
    /* Persistent: the arm goes to the journal's queue before the timer can
     * fire (so its "fired" follows it there). The record is RESERVED
     * meanwhile: its id is not out yet, so no cancel can name it. */
    r->flags |= F_PERSIST;
    r->wall_ns = wall_ns() + (uint64_t)delay_ms * 1000000u;
    arm_rec a = {.id = tid, .wall_ns = r->wall_ns, .period_ms = period_ms,
                 .payload_len = (uint32_t)len, .path_len = (uint16_t)path_len};
    pthread_mutex_unlock(&t->lock);
    char stack[512];
    size_t alen = sizeof a + d;
    char *msg = alen <= sizeof stack ? stack : malloc(alen);
    rc = msg ? 0 : HY_ENOMEM;
    if (rc == 0) {
        memcpy(msg, &a, sizeof a);
        memcpy(msg + sizeof a, path, path_len + 1);
        if (len)
            memcpy(msg + sizeof a + path_len + 1, payload, len);
        rc = hy_send(k, BOOK_NAME "://arm", msg, alen);
        if (msg != stack)
            free(msg);
    }
    pthread_mutex_lock(&t->lock);
    if (rc == 0)
        rc = schedule_locked_check(t); /* shut down meanwhile: stays journaled */
    if (rc == 0)
        arm_locked(t, r);
    else
        rec_free(t, r);
    pthread_mutex_unlock(&t->lock);
    if (rc == 0 && id)
        *id = tid;
    return rc;
}

int hy_send_after(hy_kernel *k, const char *path, const void *payload, size_t len,
                  int64_t delay_ms, uint64_t *id)
{
    return schedule(k, path, payload, len, delay_ms, 0, id);
}

int hy_send_every(hy_kernel *k, const char *path, const void *payload, size_t len,
                  int64_t period_ms, uint64_t *id)
{
    if (period_ms < 1 || period_ms > HY_TIMER_MAX_MS) {
        if (id)
            *id = 0;
        return hy_ext_fail(HY_EINVAL, "period of %lld ms: want 1 to HY_TIMER_MAX_MS",
                           (long long)period_ms);
    }
    return schedule(k, path, payload, len, period_ms, (uint32_t)period_ms, id);
}

/* 1 cancelled, 0 not, or HY_ECLOSED. *persist: journal the cancel. */
static int cancel_impl(timers *t, uint64_t id, bool *persist)
{
    *persist = false;
    uint64_t index = id & INDEX_MASK;
    pthread_mutex_lock(&t->lock);
    int rc = 0;
    if (t->closed) {
        rc = HY_ECLOSED;
    } else if (id && index < t->nrecs) {
        trec *r = rec_at(t, index);
        if (r->id == id && r->state == T_PENDING) {
            wheel_remove(t, r);
            *persist = (r->flags & F_PERSIST) != 0;
            t->pending--;
            rec_free(t, r);
            rc = 1;
        } else if (r->id == id && r->state == T_FIRING && r->period_ms && !r->cancelled) {
            r->cancelled = 1;
            *persist = (r->flags & F_PERSIST) != 0;
            t->pending--;
            rc = 1;
        }
        if (rc == 1)
            t->cancelled++;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int hy_timer_cancel(hy_kernel *k, uint64_t id)
{
    if (!k)
        return hy_ext_fail(HY_EINVAL, "hy_timer_cancel: NULL kernel");
    if (hy_ext_is_replaying(k))
        return 0;
    timers *t = hy_ext_slot_get(k, HY_EXT_SLOT_TIMERS);
    if (!t)
        return 0; /* never attached: no such timer */
    bool persist;
    int rc = cancel_impl(t, id, &persist);
    if (rc == 1 && persist)
        (void)hy_send(k, BOOK_NAME "://cancel", &id, sizeof id);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int hy_timer_stats_get(hy_kernel *k, hy_timer_stats *out)
{
    if (!k || !out)
        return hy_ext_fail(HY_EINVAL, "hy_timer_stats_get: NULL argument");
    memset(out, 0, sizeof *out);
    timers *t = hy_ext_slot_get(k, HY_EXT_SLOT_TIMERS);
    if (!t)
        return 0;
    uint64_t *s = malloc(NSAMPLES * sizeof *s);
    pthread_mutex_lock(&t->lock);
    out->pending = t->pending;
    out->fired = t->fired;
    out->cancelled = t->cancelled;
    out->late = t->late;
    out->failed = t->failed;
    out->noroute = t->noroute;
    out->recovered = t->recovered;
    uint64_t n = t->nsamples < NSAMPLES ? t->nsamples : NSAMPLES;
    if (s)
        memcpy(s, t->samples, n * sizeof *s);
    pthread_mutex_unlock(&t->lock);
    if (s && n) {
        qsort(s, n, sizeof *s, cmp_u64);
        out->lateness_p50_ns = s[(n - 1) / 2];
        out->lateness_p99_ns = s[(uint64_t)((double)(n - 1) * 0.99 + 0.5)];
    }
    free(s);
    return 0;
}
