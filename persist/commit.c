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

#include "journal_int.h"

struct hyi_pending {
    hyi_pending *next;
    hyi_journal_done_fn done;           /* NULL: done_many */
    hyi_journal_done_many_fn done_many;
    void *ctx;                          /* done_many's */
    void *user;
    uint64_t actor, seq, timestamp_ns;
    uint32_t path_len, payload_len;
    uint16_t flags;
    bool group_end; /* last node of one submit call: the writer may cut after it */
    unsigned char data[]; /* path, then payload */
};

/* ---------------------------------------------------------------- the writer */

/* The batch being written: a list of pending entries. */
struct batch_it {
    hyi_pending *head;
    hyi_pending *p;
};

static bool batch_next(void *it, hyi_journal_rec *rec, uint64_t **seq)
{
    struct batch_it *b = it;
    hyi_pending *p = b->p;
    if (!p)
        return false;
    *rec = (hyi_journal_rec){.actor = p->actor,
                             .flags = p->flags,
                             .timestamp_ns = p->timestamp_ns,
                             .path = (const char *)p->data,
                             .path_len = p->path_len,
                             .payload = p->data + p->path_len,
                             .payload_len = p->payload_len};
    *seq = &p->seq;
    b->p = p->next;
    return true;
}

static void batch_restart(void *it)
{
    struct batch_it *b = it;
    b->p = b->head;
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
    if (n <= j->done_cap)
        return true;
    size_t cap = j->done_cap ? j->done_cap : 256;
    while (cap < n)
        cap *= 2;
    hyi_journal_done_item *v = realloc(j->done_items, cap * sizeof *v);
    if (!v)
        return false;
    j->done_items = v;
    j->done_cap = cap;
    return true;
}

/* Call the completions of one transaction's entries (head...), in order, and
 * free them. A run of entries with the same done_many and ctx goes in one
 * call (several if the item array cannot grow to hold it). */
static void complete(hyi_journal *j, hyi_pending *head, int rc)
{
    for (hyi_pending *p = head, *next; p; p = next) {
        if (p->done) {
            next = p->next;
            p->done(p->user, p->actor, rc ? 0 : p->seq, rc);
            free(p);
            continue;
        }
        size_t n = 1;
        for (hyi_pending *q = p->next; q && !q->done && q->done_many == p->done_many &&
                                       q->ctx == p->ctx;
             q = q->next)
            n++;
        if (!done_room(j, n) && !done_room(j, 1)) {
            /* No memory for even one item: one on the stack at a time. */
            hyi_journal_done_item one;
            for (size_t i = 0; i < n; i++, p = next) {
                next = p->next;
                one = (hyi_journal_done_item){p->user, rc ? 0 : p->seq};
                p->done_many(p->ctx, &one, 1, rc);
                free(p);
            }
            continue;
        }
        while (n) {
            size_t m = n < j->done_cap ? n : j->done_cap;
            hyi_journal_done_many_fn fn = p->done_many;
            void *ctx = p->ctx;
            for (size_t i = 0; i < m; i++, p = next) {
                next = p->next;
                j->done_items[i] = (hyi_journal_done_item){p->user, rc ? 0 : p->seq};
                free(p);
            }
            fn(ctx, j->done_items, m, rc);
            n -= m;
        }
        next = p;
    }
}

static void *writer_main(void *arg)
{
    hyi_journal *j = arg;
    pthread_mutex_lock(&j->q_lock);
    for (;;) {
        while (!j->q_head && !j->stopping) {
            j->writer_waiting = true;
            pthread_cond_wait(&j->q_work, &j->q_lock);
            j->writer_waiting = false;
        }
        if (!j->q_head)
            break; /* stopping, and everything is written */
        /* Take the whole queue in O(1): walking it to cut a batch happens below,
         * outside the lock, so submitters are never held up by it. */
        hyi_pending *rest = j->q_head;
        size_t taken = j->q_len;
        j->q_head = j->q_tail = NULL;
        j->q_len = 0;
        if (j->room_waiters)
            pthread_cond_broadcast(&j->q_room);
        pthread_mutex_unlock(&j->q_lock);

        while (rest) {
            /* One transaction: up to max_batch entries, extended to the end of
             * a submit call so a batch submit is never split. */
            hyi_pending *head = rest, *tail = head;
            size_t n = 1;
            while (tail->next && (n < j->cfg.max_batch || !tail->group_end)) {
                tail = tail->next;
                n++;
            }
            rest = tail->next;
            tail->next = NULL;
            struct batch_it a = {head, head};
            int rc = hyi_env_write(j, batch_op, &a, "group commit");
            record_batch(j, n);
            complete(j, head, rc);
        }

        pthread_mutex_lock(&j->q_lock);
        j->completed += taken;
        if (j->flush_waiters)
            pthread_cond_broadcast(&j->q_done);
    }
    pthread_mutex_unlock(&j->q_lock);
    return NULL;
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

static void free_chain(hyi_pending *p)
{
    while (p) {
        hyi_pending *next = p->next;
        free(p);
        p = next;
    }
}

static hyi_pending *make_node(const hyi_journal_rec *r, hyi_journal_done_fn done,
                              hyi_journal_done_many_fn done_many, void *ctx, void *user)
{
    hyi_pending *p = malloc(sizeof *p + r->path_len + r->payload_len);
    if (!p)
        return NULL;
    p->next = NULL;
    p->done = done;
    p->done_many = done_many;
    p->ctx = ctx;
    p->user = user;
    p->actor = r->actor;
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
    return p;
}

/* Queue n entries with one of the two kinds of completion. */
static int submit(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                  hyi_journal_done_fn done, hyi_journal_done_many_fn done_many, void *ctx,
                  void *const *users)
{
    if (!j || (!done && !done_many) || (n && !recs))
        return hyi_fail(HY_EINVAL, "journal: NULL journal, callback or records");
    if (n == 0)
        return 0;
    hyi_pending *head = NULL, *tail = NULL;
    for (size_t i = 0; i < n; i++) {
        int rc = hyi_rec_check(j, &recs[i]);
        hyi_pending *p =
            rc ? NULL : make_node(&recs[i], done, done_many, ctx, users ? users[i] : NULL);
        if (!p) {
            free_chain(head);
            return rc ? rc : hyi_fail(HY_ENOMEM, "journal %s: no memory to queue an entry",
                                      j->path);
        }
        if (tail)
            tail->next = p;
        else
            head = p;
        tail = p;
    }
    tail->group_end = true;

    pthread_mutex_lock(&j->q_lock);
    if (!j->writer_started && !j->stopping) {
        if (pthread_create(&j->writer, NULL, writer_main, j) != 0) {
            pthread_mutex_unlock(&j->q_lock);
            free_chain(head);
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
        free_chain(head);
        return hyi_fail(HY_ECLOSED, "journal %s: closing, submit refused", j->path);
    }
    if (j->q_tail)
        j->q_tail->next = head;
    else
        j->q_head = head;
    j->q_tail = tail;
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
