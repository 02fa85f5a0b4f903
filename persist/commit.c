/* Group commit: one writer thread turns many small appends into one write
 * transaction and one fsync.
 *
 * Submitters copy their entry (path + payload) into a pending node and link it
 * to a FIFO under q_lock; a batch submit links a whole chain in one step, so its
 * entries are contiguous. The writer takes everything queued, writes it in
 * transactions of up to max_batch entries (cut only at a submit call's
 * boundary, so a batch is never split), assigns
 * sequences in queue order inside the transaction (so sequence order is commit
 * order), commits (fsync under HYI_DUR_SYNC), and then calls each node's
 * callback in queue order with its status. While it commits, new submissions
 * pile up and form the next batch: the slower the disk, the larger the batch.
 *
 * A mutex-protected queue rather than a lock-free one: a submitter holds the
 * lock for a few pointer writes, the writer for a list splice, and the cost
 * that matters is the commit, not the lock. The writer is signalled only when it
 * is asleep. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "journal_int.h"

struct hyi_pending {
    hyi_journal_done_fn done;           /* NULL: done_many */
    hyi_journal_done_many_fn done_many;
    void *ctx;                          /* done_many's */
    void *user;
    hyi_head_lease *lease;
    uint64_t actor, seq, timestamp_ns;
    uint32_t path_len, payload_len;
    uint64_t ring_end; /* a ring node's end in the ring (see RING_BYTES) */
    uint16_t flags;
    bool group_end; /* last node of one submit call: the writer may cut after it */
    bool ringed;    /* carved from the ring; else malloc'd */
    unsigned char data[]; /* path, then payload */
};

/* Nodes are carved from a ring of RING_BYTES (allocated at the first submit)
 * under q_lock, and given back in bulk when the writer has completed a
 * transaction: the writer takes and completes entries in the order they
 * were queued, so the ring's space comes back in the order it was taken.
 * No malloc on the submitter, no cross-thread free on the writer, and
 * nodes sit one after another in memory. A node larger than RING_NODE_MAX,
 * or one that finds the ring full, is malloc'd (and freed once completed). */
#define RING_BYTES ((size_t)4 << 20)
#define RING_NODE_MAX ((size_t)1024)

/* ---------------------------------------------------------------- the writer */

/* How many nodes ahead the writer fetches as it walks a batch: they were
 * written by the submitters on other cores, and the addresses are known
 * (an array), so the misses overlap instead of following one another. */
#define NODES_AHEAD 8

/* The batch being written: n pending entries, in order. */
struct batch_it {
    hyi_pending *const *v;
    size_t n, i;
};

static bool batch_next(void *it, hyi_journal_rec *rec, uint64_t **seq)
{
    struct batch_it *b = it;
    if (b->i == b->n)
        return false;
    if (b->i + NODES_AHEAD < b->n)
        __builtin_prefetch(b->v[b->i + NODES_AHEAD]);
    hyi_pending *p = b->v[b->i++];
    *rec = (hyi_journal_rec){.actor = p->actor,
                             .lease = p->lease,
                             .flags = p->flags,
                             .timestamp_ns = p->timestamp_ns,
                             .path = (const char *)p->data,
                             .path_len = p->path_len,
                             .payload = p->data + p->path_len,
                             .payload_len = p->payload_len};
    *seq = &p->seq;
    return true;
}

static void batch_restart(void *it)
{
    struct batch_it *b = it;
    b->i = 0;
}

static int batch_op(hyi_wtxn *w, void *arg)
{
    return hyi_entries_put(w, batch_next, batch_restart, arg);
}

static void record_batch(hyi_journal *j, size_t n)
{
    pthread_mutex_lock(&j->ring_lock);
    j->ring[j->ring_n++ % HYI_JOURNAL_BATCH_RING] = (uint32_t)n;
    pthread_mutex_unlock(&j->ring_lock);
    /* Relaxed: statistics; only this thread writes batch_max. */
    atomic_fetch_add_explicit(&j->st_writer_commits, 1, memory_order_relaxed);
    if (n > atomic_load_explicit(&j->st_batch_max, memory_order_relaxed))
        atomic_store_explicit(&j->st_batch_max, n, memory_order_relaxed);
}

/* Room for n items in the writer's completion array; false when it cannot
 * grow (then the caller hands over what fits, in several calls). */
static bool done_room(hyi_journal *j, size_t n)
{
    hyi_journal_done_item *v = hyi_grow_array(j->done_items, &j->done_cap, n, sizeof *v, 256);
    if (!v)
        return false;
    j->done_items = v;
    return true;
}

/* Call the completions of one transaction's entries (v[0..n)), in order,
 * and free them. A run of entries with the same done_many and ctx goes in
 * one call (several if the item array cannot grow to hold it). Returns the
 * end of the last ring node among them (0: none): the ring is free up to
 * there, for the caller to give back under q_lock. */
static uint64_t complete(hyi_journal *j, hyi_pending *const *v, size_t n, int rc)
{
    uint64_t ring_end = 0;
    for (size_t i = 0; i < n;) {
        hyi_pending *p = v[i];
        if (p->done) {
            p->done(p->user, p->actor, rc ? 0 : p->seq, rc);
            if (p->ringed)
                ring_end = p->ring_end;
            else
                free(p);
            i++;
            continue;
        }
        size_t end = i + 1;
        while (end < n && !v[end]->done && v[end]->done_many == p->done_many &&
               v[end]->ctx == p->ctx)
            end++;
        hyi_journal_done_many_fn fn = p->done_many;
        void *ctx = p->ctx;
        /* No memory for the items array: one item on the stack at a time. */
        hyi_journal_done_item one, *items = &one;
        size_t room = 1;
        if (done_room(j, end - i) || j->done_cap) {
            items = j->done_items;
            room = j->done_cap;
        }
        while (i < end) {
            size_t m = end - i < room ? end - i : room;
            for (size_t k = 0; k < m; k++, i++) {
                items[k] = (hyi_journal_done_item){v[i]->user, rc ? 0 : v[i]->seq};
                if (v[i]->ringed)
                    ring_end = v[i]->ring_end;
                else
                    free(v[i]);
            }
            fn(ctx, items, m, rc);
        }
    }
    return ring_end;
}

static void *writer_main(void *arg)
{
    hyi_journal *j = arg;
    pthread_mutex_lock(&j->q_lock);
    for (;;) {
        while (!j->q_len && !j->stopping) {
            j->writer_waiting = true;
            pthread_cond_wait(&j->q_work, &j->q_lock);
            j->writer_waiting = false;
        }
        if (!j->q_len)
            break; /* stopping, and everything is written */
        /* Take the whole queue in O(1), leaving the spare array (empty) to the
         * submitters: cutting it into batches happens outside the lock. */
        hyi_pending **v = j->q_vec;
        size_t taken = j->q_len, cap = j->q_cap;
        j->q_vec = j->spare_vec;
        j->q_cap = j->spare_cap;
        j->q_len = 0;
        j->spare_vec = NULL;
        j->spare_cap = 0;
        if (j->room_waiters)
            pthread_cond_broadcast(&j->q_room);
        pthread_mutex_unlock(&j->q_lock);

        uint64_t ring_end = 0;
        for (size_t at = 0; at < taken;) {
            /* One transaction: up to max_batch entries, extended to the end of
             * a submit call so a batch submit is never split. */
            size_t end = at + (taken - at < j->cfg.max_batch ? taken - at : j->cfg.max_batch);
            while (end < taken && !v[end - 1]->group_end)
                end++;
            struct batch_it b = {v + at, end - at, 0};
            int rc = hyi_env_write(j, batch_op, &b, "group commit");
            record_batch(j, end - at);
            uint64_t freed = complete(j, v + at, end - at, rc);
            at = end;
            if (freed)
                ring_end = freed;
            if (freed && at < taken) { /* more to write: give the ring back now */
                pthread_mutex_lock(&j->q_lock);
                j->ring_tail = freed;
                pthread_mutex_unlock(&j->q_lock);
            }
        }

        pthread_mutex_lock(&j->q_lock);
        if (ring_end)
            j->ring_tail = ring_end;
        /* Every node given back: carve from the ring's start again, so a
         * light load keeps reusing its first pages instead of touching all
         * RING_BYTES (which then stay resident) on its way round. */
        if (j->ring_tail == j->ring_head) {
            uint64_t start = (j->ring_head + RING_BYTES - 1) & ~(uint64_t)(RING_BYTES - 1);
            j->ring_head = j->ring_tail = start;
        }
        /* The array comes back as the spare (the larger one is kept). */
        if (cap > j->spare_cap) {
            free(j->spare_vec);
            j->spare_vec = v;
            j->spare_cap = cap;
        } else {
            free(v);
        }
        j->completed += taken;
        if (j->flush_waiters)
            pthread_cond_broadcast(&j->q_done);
    }
    /* Under q_lock, so a reader of the live clock (hyi_writer_cpu_ns) holds
     * the lock only while this thread has not got here, and is alive. */
    j->writer_cpu_final = hyi_clock_read_ns(CLOCK_THREAD_CPUTIME_ID);
    j->writer_done = true;
    pthread_mutex_unlock(&j->q_lock);
    return NULL;
}

uint64_t hyi_writer_cpu_ns(hyi_journal *j)
{
    clockid_t clock;
    if (j->writer_started && !j->writer_done && pthread_getcpuclockid(j->writer, &clock) == 0)
        return hyi_clock_read_ns(clock);
    return j->writer_cpu_final;
}

void hyi_writer_stop(hyi_journal *j)
{
    pthread_mutex_lock(&j->q_lock);
    j->stopping = true;
    bool started = j->writer_started;
    pthread_cond_signal(&j->q_work);
    pthread_cond_broadcast(&j->q_room);
    pthread_mutex_unlock(&j->q_lock);
    if (started)
        pthread_join(j->writer, NULL); /* it drains the queue before leaving */
}

/* ---------------------------------------------------------------- submit */

/* Fill node p with r (a copy of its path and payload) and its completion. */
static void node_fill(hyi_pending *p, const hyi_journal_rec *r, hyi_journal_done_fn done,
                      hyi_journal_done_many_fn done_many, void *ctx, void *user)
{
    p->done = done;
    p->done_many = done_many;
    p->ctx = ctx;
    p->user = user;
    p->actor = r->actor;
    p->lease = r->lease;
    p->seq = 0;
    p->timestamp_ns = r->timestamp_ns;
    p->path_len = (uint32_t)r->path_len;
    p->payload_len = (uint32_t)r->payload_len;
    p->flags = r->flags;
    p->group_end = false;
    if (r->path_len)
        memcpy(p->data, r->path, r->path_len);
    if (r->payload_len)
        memcpy(p->data + r->path_len, r->payload, r->payload_len);
}

/* Under q_lock: a node of sz bytes (a multiple of 8) from the ring, or NULL
 * (too large, the ring full, or no memory for it). */
static hyi_pending *ring_take(hyi_journal *j, size_t sz)
{
    if (sz > RING_NODE_MAX || j->ring_failed)
        return NULL;
    if (!j->node_ring && !(j->node_ring = malloc(RING_BYTES))) {
        j->ring_failed = true; /* malloc'd nodes only, then */
        return NULL;
    }
    uint64_t head = j->ring_head;
    size_t pos = (size_t)(head & (RING_BYTES - 1));
    if (pos + sz > RING_BYTES) /* no room before the end: skip to the start */
        head += RING_BYTES - pos;
    if (head + sz - j->ring_tail > RING_BYTES)
        return NULL;
    hyi_pending *p = (hyi_pending *)(void *)(j->node_ring + (head & (RING_BYTES - 1)));
    j->ring_head = head + sz;
    p->ring_end = j->ring_head;
    p->ringed = true;
    return p;
}

/* Take q_lock, start the writer if need be and wait for room for n entries.
 * 0 with the lock held, or an error without it. */
static int lock_for_room(hyi_journal *j, size_t n)
{
    pthread_mutex_lock(&j->q_lock);
    if (!j->writer_started && !j->stopping) {
        if (pthread_create(&j->writer, NULL, writer_main, j) != 0) {
            pthread_mutex_unlock(&j->q_lock);
            return hyi_fail(HY_ESYS, "journal %s: cannot start the writer thread", j->path);
        }
        j->writer_started = true;
    }
    /* Wait for room, except on the writer thread itself (a completion callback
     * submitting more), which would wait for itself. A batch larger than
     * max_pending is admitted once the queue is empty. */
    bool on_writer = pthread_equal(pthread_self(), j->writer);
    while (!j->stopping && !on_writer && j->q_len > 0 &&
           j->q_len + n > j->cfg.max_pending) {
        j->room_waiters++;
        pthread_cond_wait(&j->q_room, &j->q_lock);
        j->room_waiters--;
    }
    if (j->stopping) {
        pthread_mutex_unlock(&j->q_lock);
        return hyi_fail(HY_ECLOSED, "journal %s: closing, submit refused", j->path);
    }
    if (j->q_len + n > j->q_cap) {
        size_t cap = j->q_cap ? j->q_cap : 1024;
        while (cap < j->q_len + n)
            cap *= 2;
        hyi_pending **v = realloc(j->q_vec, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&j->q_lock);
            return hyi_fail(HY_ENOMEM, "journal %s: no memory to queue an entry", j->path);
        }
        j->q_vec = v;
        j->q_cap = cap;
    }
    return 0;
}

/* Queue n entries with one of the two kinds of completion. Nodes are made
 * and filled under q_lock (a copy of a small entry costs less than a
 * malloc), in the order the writer will take them. */
static int submit(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                  hyi_journal_done_fn done, hyi_journal_done_many_fn done_many, void *ctx,
                  void *const *users)
{
    if (!j || (!done && !done_many) || (n && !recs))
        return hyi_fail(HY_EINVAL, "journal: NULL journal, callback or records");
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int rc = hyi_rec_check(j, &recs[i]);
        if (rc)
            return rc;
    }
    int rc = lock_for_room(j, n);
    if (rc)
        return rc;
    hyi_pending **v = j->q_vec + j->q_len;
    uint64_t ring_mark = j->ring_head;
    for (size_t i = 0; i < n; i++) {
        size_t len = recs[i].path_len + recs[i].payload_len;
        hyi_pending *p = ring_take(j, (sizeof *p + len + 7) & ~(size_t)7);
        if (!p && (p = malloc(sizeof *p + len)) != NULL)
            p->ringed = false;
        if (!p) { /* all or none: give back what this call took */
            for (size_t k = 0; k < i; k++)
                if (!v[k]->ringed)
                    free(v[k]);
            j->ring_head = ring_mark;
            pthread_mutex_unlock(&j->q_lock);
            return hyi_fail(HY_ENOMEM, "journal %s: no memory to queue an entry", j->path);
        }
        node_fill(p, &recs[i], done, done_many, ctx, users ? users[i] : NULL);
        v[i] = p;
    }
    v[n - 1]->group_end = true;
    j->q_len += n;
    j->submitted += n;
    if (j->writer_waiting)
        pthread_cond_signal(&j->q_work);
    pthread_mutex_unlock(&j->q_lock);
    return 0;
}

int hyi_journal_submit_batch(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                             hyi_journal_done_fn done, void *const *users)
{
    return submit(j, recs, n, done, NULL, NULL, users);
}

int hyi_journal_submit_many(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                            hyi_journal_done_many_fn done, void *ctx, void *const *users)
{
    return submit(j, recs, n, NULL, done, ctx, users);
}

int hyi_journal_submit(hyi_journal *j, const hyi_journal_rec *rec,
                       hyi_journal_done_fn done, void *user)
{
    if (!rec)
        return hyi_fail(HY_EINVAL, "journal: NULL record");
    return hyi_journal_submit_batch(j, rec, 1, done, &user);
}

void hyi_journal_flush(hyi_journal *j)
{
    pthread_mutex_lock(&j->q_lock);
    uint64_t target = j->submitted;
    while (j->completed < target) {
        j->flush_waiters++;
        pthread_cond_wait(&j->q_done, &j->q_lock);
        j->flush_waiters--;
    }
    pthread_mutex_unlock(&j->q_lock);
}
