/* The LMDB environment: open/close, LMDB error mapping, the write-transaction
 * runner (map growth and retry), read transactions, sequence assignment, and
 * the shared entry put/truncate steps used by journal.c, snapshot.c, commit.c.
 *
 * Map growth: LMDB fails a put with MDB_MAP_FULL when the map is used up. The
 * runner then aborts the transaction, doubles the map (mdb_env_set_mapsize,
 * which requires that no transaction is live in this process: write_lock
 * excludes writers, map_lock exclusive excludes readers) and runs the whole
 * write op again, up to map_size_max; past that the write fails HY_EMAPFULL and
 * the environment stays usable for reads and for smaller writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "journal_int.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_MAP_MAX ((size_t)1 << 40)
#define DEFAULT_MAX_BATCH 4096u
#define DEFAULT_MAX_PENDING 65536u
#define DEFAULT_CACHE_ACTORS ((size_t)1 << 20)
#define DEFAULT_CHECKPOINT_ENTRIES ((uint64_t)1 << 20)

static int map_code(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
        return HY_EMAPFULL;
    case MDB_READERS_FULL:
        return HY_EREADERS;
    case ENOSPC:
    case EDQUOT:
        return HY_EDISKFULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return HY_ECORRUPT;
    case EACCES:
    case EPERM:
    case EROFS:
        return HY_EPERM;
    case ENOMEM:
        return HY_ENOMEM;
    default:
        return HY_EJOURNAL;
    }
}

/* hy_err codes are small negatives; LMDB's are <= -30600 and errno's positive,
 * so one int can carry either without ambiguity. */
static bool is_hy_err(int rc)
{
    return rc < 0 && rc > -1000;
}

static int fail_path(const char *path, int rc, const char *what)
{
    if (is_hy_err(rc))
        return rc;
    return hyi_fail(map_code(rc), "journal %s: %s: %s", path, what, mdb_strerror(rc));
}

/* LMDB reports a short write as EIO; when the file system has no room left,
 * that is a full disk. */
static bool disk_is_full(const char *path)
{
    struct statvfs sv;
    return statvfs(path, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < ((uint64_t)1 << 16);
}

int hyi_lmdb_fail(const hyi_journal *j, int rc, const char *what)
{
    if (rc == EIO && disk_is_full(j->path))
        return hyi_fail(HY_EDISKFULL, "journal %s: %s: short write, the file system is "
                        "full (%s)", j->path, what, mdb_strerror(rc));
    return fail_path(j->path, rc, what);
}

static size_t round_page(size_t n, size_t page)
{
    return (n + page - 1) / page * page;
}

/* ---------------------------------------------------------------- growth */

/* HYI_DUR_OFF writes through a writable shared map, and LMDB sizes the file
 * to the map with ftruncate, which leaves it sparse: a page the file system
 * cannot back when it is first written raises SIGBUS in the thread that
 * wrote it, where every other mode gets ENOSPC from write(2). So that mode
 * reserves the file's blocks [from, to) before the map may use them, and a
 * full file system fails the open or the growth instead. On failure the
 * file is cut back to `from`, giving back what a partial reservation took
 * (nothing the journal uses lies past it). errno code or 0. */
static int reserve_map(hyi_journal *j, size_t from, size_t to)
{
    if (j->cfg.durability != HYI_DUR_OFF || to <= from)
        return 0;
    int fd;
    int rc = mdb_env_get_fd(j->env, &fd);
    if (rc)
        return rc;
    /* glibc writes a byte per block where the file system has no fallocate */
    rc = posix_fallocate(fd, (off_t)from, (off_t)(to - from));
    if (rc && ftruncate(fd, (off_t)from) != 0)
        rc = errno;
    return rc;
}

/* The first bytes of the data file the journal uses now (to its last page). */
static size_t map_in_use(hyi_journal *j)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(j->env, &info) != 0 || mdb_env_stat(j->env, &st) != 0)
        return 0;
    return ((size_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* Called with write_lock held and no write transaction live. */
static int grow_map(hyi_journal *j, const char *what)
{
    MDB_envinfo info;
    int rc = mdb_env_info(j->env, &info);
    if (rc)
        return hyi_lmdb_fail(j, rc, "read map size");
    size_t cur = info.me_mapsize, cap = j->cfg.map_size_max;
    if (cur >= cap)
        return hyi_fail(HY_EMAPFULL,
                        "journal %s: %s: map full at its cap of %zu bytes "
                        "(map_size_max); raise the cap or truncate the journal",
                        j->path, what, cap);
    size_t next = cur > cap / 2 ? cap : round_page(cur * 2, j->page_size);
    if (next > cap)
        next = cap;
    if ((rc = reserve_map(j, cur, next)) != 0)
        return hyi_fail(map_code(rc), "journal %s: %s: no room on disk to grow the map "
                        "from %zu to %zu bytes (durability off reserves it first): %s",
                        j->path, what, cur, next, strerror(rc));
    pthread_rwlock_wrlock(&j->map_lock);
    rc = mdb_env_set_mapsize(j->env, next);
    pthread_rwlock_unlock(&j->map_lock);
    if (rc)
        return hyi_lmdb_fail(j, rc, "grow the map");
    /* Relaxed: a statistic, read alone. */
    atomic_fetch_add_explicit(&j->st_grows, 1, memory_order_relaxed);
    return 0;
}

/* Another process grew the map (MDB_MAP_RESIZED): adopt its size. Takes both
 * locks itself, in the global order write_lock, then map_lock. */
static int adopt_map_size(hyi_journal *j, bool hold_write_lock)
{
    if (!hold_write_lock)
        pthread_mutex_lock(&j->write_lock);
    pthread_rwlock_wrlock(&j->map_lock);
    int rc = mdb_env_set_mapsize(j->env, 0);
    pthread_rwlock_unlock(&j->map_lock);
    if (!hold_write_lock)
        pthread_mutex_unlock(&j->write_lock);
    return rc ? hyi_lmdb_fail(j, rc, "adopt the map size") : 0;
}

/* ---------------------------------------------------------------- transactions */

/* An actor's two bits in seen, in one word so one load tests both; from a
 * multiplicative hash's high bits, since actor ids are FNV-1a hashes whose
 * low bits alone spread less well. With one bit, about one new actor in
 * nine at the cache's size was taken for one with history and read the
 * journal for nothing; with two, about one in twenty. */
typedef struct seen_bits {
    _Atomic uint64_t *word;
    uint64_t mask;
} seen_bits;

static inline seen_bits seen_bits_of(const hyi_journal *j, uint64_t actor)
{
    uint64_t h = actor * 0x9e3779b97f4a7c15ull;
    /* the word from bits 26..55 (at most 2^30 words), the bits from 20..25
     * and 58..63 */
    return (seen_bits){&j->seen[(h >> 26) & (j->seen_mask >> 6)],
                       1ull << (h >> 20 & 63) | 1ull << (h >> 58)};
}

void hyi_env_mark_seen(hyi_journal *j, uint64_t actor)
{
    if (!j->seen)
        return;
    seen_bits b = seen_bits_of(j, actor);
    /* Only this thread writes bits now (write_lock), so a load and a store
     * do: a locked read-modify-write stalled the writer on every new
     * actor's word. relaxed: see `seen` in journal_int.h for what orders it */
    uint64_t w = atomic_load_explicit(b.word, memory_order_relaxed);
    if ((w & b.mask) != b.mask)
        atomic_store_explicit(b.word, w | b.mask, memory_order_relaxed);
}

static void prefetch_seen(const hyi_journal *j, uint64_t actor)
{
    if (j->seen)
        __builtin_prefetch(seen_bits_of(j, actor).word, 1);
}

/* After a commit: the transaction's heads become the cache's (dirty unless
 * the transaction checkpointed them). */
static void publish_overlay(hyi_journal *j, bool checkpointed)
{
    for (size_t i = 0; i < j->overlay.cap; i++)
        if (j->overlay.slots[i].used) { /* as in prefetch_heads */
            hyi_seqmap_prefetch(&j->cache, j->overlay.slots[i].actor);
            prefetch_seen(j, j->overlay.slots[i].actor);
        }
    pthread_mutex_lock(&j->cache_lock);
    if (checkpointed) {
        hyi_seqmap_mark_clean(&j->cache);
        j->dlog_len = 0; /* every lease's mark names an older epoch now */
        if ((++j->dlog_epoch & 0x7fffffffu) == 0)
            j->dlog_epoch = 1;
        if (j->dlog_cap > 65536) { /* a million actors' list: tens of MB idle */
            free(j->dlog);
            j->dlog = NULL;
            j->dlog_cap = 0;
        }
    }
    j->dlog_committed = j->dlog_len;
    for (size_t i = 0; i < j->overlay.cap; i++) {
        const struct hyi_seqslot *s = &j->overlay.slots[i];
        if (!s->used)
            continue;
        hyi_env_mark_seen(j, s->actor);
        hyi_head h = {s->seq, s->gseq};
        if (hyi_seqmap_put(&j->cache, s->actor, h, !checkpointed) != 0 && !checkpointed)
            j->heads_lost = true; /* only the log has it now: see hyi_env_write */
    }
    pthread_mutex_unlock(&j->cache_lock);
}

static int sweep_step(hyi_wtxn *w, size_t budget);

/* One transaction that runs the sweep over the whole log (write_lock held).
 * LMDB code or 0; the sweep state is restored when it fails. */
static int reclaim_all(hyi_journal *j)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(j->env, NULL, 0, &txn);
    if (rc)
        return rc;
    struct hyi_sweep saved = j->sweep;
    hyi_wtxn w = {.j = j, .txn = txn, .gseq = j->gseq_last};
    j->sweep.full = true;
    j->sweep.deleted_in_pass = 0;
    j->sweep.at = 0;
    rc = sweep_step(&w, SIZE_MAX);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    if (rc)
        j->sweep = saved;
    return rc;
}

/* ---------------------------------------------------------------- leases
 *
 * With many actors, each append looked its actor's head up in the cache (a
 * cache miss in tens of MB) and published the new head there after the
 * commit (the same miss again). An actor that lives in the kernel has a
 * lease instead, in its own memory, which the kernel touches anyway to
 * deliver the message: the first record naming it takes the actor's head
 * from the cache (or the heads DB) into the lease and marks the cache's
 * entry as held by it; later records read and advance the lease alone. A
 * changed lease's head is also kept, once per actor until the next
 * checkpoint, in a list (dlog) that checkpoints write, so the cache is not
 * touched. Releasing the lease (passivation, the actor's end) puts its head
 * back into the cache entry, dirty while the list still has it.
 *
 * One head per actor id, whatever happens: the cache entry names the lease
 * that holds it, and a record whose own lease is not held appends through
 * the holder (two live owners of one id: a hash collision, or a subsystem
 * registered again while its old actors still have entries in flight). A
 * reader of a held actor's head reads the lease under write_lock, when it
 * holds only committed heads. A failed transaction's lease changes are
 * undone (undo), as its overlay is dropped. */

#define LEASE_HELD 1u

static uint32_t lease_mark(hyi_head_lease *l)
{
    /* relaxed: changed under write_lock only; read without it only as a hint
     * (hyi_head_lease_held) */
    return atomic_load_explicit(&l->mark, memory_order_relaxed);
}

static void lease_set_mark(hyi_head_lease *l, uint32_t mark)
{
    atomic_store_explicit(&l->mark, mark, memory_order_relaxed); /* as lease_mark */
}

bool hyi_head_lease_held(hyi_head_lease *l)
{
    return lease_mark(l) & LEASE_HELD;
}

/* Under write_lock: l's entry in the list of changed heads, or NULL. */
static struct hyi_seqslot *lease_listed(hyi_journal *j, uint64_t actor, hyi_head_lease *l)
{
    if (lease_mark(l) >> 1 != (j->dlog_epoch & 0x7fffffffu) || l->dirty_at >= j->dlog_len)
        return NULL;
    struct hyi_seqslot *d = &j->dlog[l->dirty_at];
    return d->actor == actor ? d : NULL;
}

/* Under write_lock: l's head becomes (seq, gseq) in this transaction, listed
 * for the next checkpoint, with what undoes both. */
static int lease_advance(hyi_journal *j, uint64_t actor, hyi_head_lease *l, uint64_t seq,
                         uint64_t gseq)
{
    struct hyi_lease_undo *undo =
        hyi_grow_array(j->undo, &j->undo_cap, j->undo_len + 1, sizeof *undo, 1024);
    if (undo)
        j->undo = undo;
    struct hyi_seqslot *dlog =
        undo ? hyi_grow_array(j->dlog, &j->dlog_cap, j->dlog_len + 1, sizeof *dlog, 1024) : NULL;
    if (!dlog)
        return hyi_fail(HY_ENOMEM, "journal %s: no memory for the list of changed heads",
                        j->path);
    j->dlog = dlog;
    struct hyi_seqslot *d = lease_listed(j, actor, l);
    struct hyi_lease_undo *u = &j->undo[j->undo_len++];
    *u = (struct hyi_lease_undo){.lease = l, .seq = l->seq, .gseq = l->gseq,
                                 .dirty_at = l->dirty_at, .mark = lease_mark(l),
                                 .in_place = d != NULL};
    if (d) {
        u->entry_seq = d->seq;
        u->entry_gseq = d->gseq;
    } else {
        l->dirty_at = (uint32_t)j->dlog_len;
        lease_set_mark(l, (j->dlog_epoch << 1) | LEASE_HELD);
        d = &j->dlog[j->dlog_len++];
        *d = (struct hyi_seqslot){.actor = actor, .used = 1};
    }
    d->seq = l->seq = seq;
    d->gseq = l->gseq = gseq;
    return 0;
}

/* After a failed transaction (write_lock held): its lease changes undone. */
static void leases_undo(hyi_journal *j)
{
    while (j->undo_len) {
        const struct hyi_lease_undo *u = &j->undo[--j->undo_len];
        if (u->in_place) {
            j->dlog[u->dirty_at].seq = u->entry_seq;
            j->dlog[u->dirty_at].gseq = u->entry_gseq;
        }
        u->lease->seq = u->seq;
        u->lease->gseq = u->gseq;
        u->lease->dirty_at = u->dirty_at;
        lease_set_mark(u->lease, u->mark);
    }
    j->dlog_len = j->dlog_len_at_begin;
}

/* Under write_lock and cache_lock: the head of the lease holding entry s. */
static hyi_head lease_head(const struct hyi_seqslot *s)
{
    return (hyi_head){s->lease->seq, s->lease->gseq};
}

static int head_load(hyi_journal *j, MDB_txn *txn, uint64_t actor, hyi_head *h);

/* Within a write op: the head record r appends after, and the lease it
 * appends through (see the top), or NULL for the overlay and the cache (a
 * record without a lease, or one whose actor this transaction already wrote
 * without one). One lookup in the cache at most, none for a lease held. */
static int rec_head(hyi_wtxn *w, const hyi_journal_rec *r, hyi_head_lease **out, hyi_head *h)
{
    hyi_journal *j = w->j;
    hyi_head_lease *l = r->lease;
    *out = NULL;
    if (l && (lease_mark(l) & LEASE_HELD)) {
        *out = l;
        *h = (hyi_head){l->seq, l->gseq};
        return 0;
    }
    if (hyi_seqmap_get(&j->overlay, r->actor, h))
        return 0;
    /* An actor never written has no entry (an entry is leased only once its
     * actor is marked seen, below): no lookup, nor of the heads DB. */
    bool fresh = hyi_env_never_written(j, r->actor);
    *h = (hyi_head){0, 0};
    if (fresh && !l)
        return 0;
    bool taken = false; /* l holds the entry found */
    pthread_mutex_lock(&j->cache_lock);
    struct hyi_seqslot *s = fresh ? NULL : hyi_seqmap_find(&j->cache, r->actor);
    if (s && hyi_seqslot_leased(s)) {
        *out = s->lease;
        *h = lease_head(s);
    } else if (s) {
        *h = (hyi_head){s->seq, s->gseq};
        s->ref = 1;
        if (l) {
            hyi_seqmap_hold(&j->cache, s, l);
            taken = true;
        }
    }
    pthread_mutex_unlock(&j->cache_lock);
    if (s && !taken) /* another's lease, or none wanted */
        return 0;
    int rc;
    if (!s && !fresh) {
        /* Not cached, so not dirty: the heads DB has it (or the actor is new). */
        if ((rc = head_load(j, w->txn, r->actor, h)) != 0)
            return rc;
        if (!l && h->seq) {
            pthread_mutex_lock(&j->cache_lock);
            (void)hyi_seqmap_put(&j->cache, r->actor, *h, false); /* on ENOMEM: loaded again */
            pthread_mutex_unlock(&j->cache_lock);
        }
    }
    if (!l)
        return 0;
    if (!s) {
        hyi_env_mark_seen(j, r->actor); /* a failed transaction leaves a "maybe" */
        pthread_mutex_lock(&j->cache_lock);
        rc = hyi_seqmap_lease(&j->cache, r->actor, *h, l);
        pthread_mutex_unlock(&j->cache_lock);
        if (rc)
            return hyi_fail(HY_ENOMEM, "journal %s: no memory for the head table", j->path);
    }
    l->seq = h->seq;
    l->gseq = h->gseq;
    lease_set_mark(l, LEASE_HELD); /* epoch 0: not listed */
    *out = l;
    return 0;
}

/* Under write_lock and cache_lock, no transaction open: entry `at` out of
 * the list of changed heads, the last taking its place (every entry is a
 * held lease's: its cache entry names the lease, which learns where). So the
 * list holds at most one entry per live lease, however often actors are
 * passivated and made again between two checkpoints. */
static void dlog_remove(hyi_journal *j, uint32_t at)
{
    size_t last = --j->dlog_len;
    if (at != last) {
        j->dlog[at] = j->dlog[last];
        struct hyi_seqslot *s = hyi_seqmap_find(&j->cache, j->dlog[at].actor);
        if (s && hyi_seqslot_leased(s))
            s->lease->dirty_at = at;
    }
    j->dlog_committed = j->dlog_len;
}

void hyi_journal_release_leases(hyi_journal *j, const hyi_lease_ref *refs, size_t n)
{
    if (!j || !n)
        return;
    pthread_mutex_lock(&j->write_lock);
    pthread_mutex_lock(&j->cache_lock);
    for (size_t i = 0; i < n; i++) {
        hyi_head_lease *l = refs[i].lease;
        if (!(lease_mark(l) & LEASE_HELD))
            continue;
        /* A held lease's entry is never evicted: found, and put needs no room. */
        struct hyi_seqslot *s = hyi_seqmap_find(&j->cache, refs[i].actor);
        if (s && hyi_seqslot_leased(s) && s->lease == l)
            hyi_seqmap_unhold(&j->cache, s, (hyi_head){l->seq, l->gseq});
        bool listed = lease_listed(j, refs[i].actor, l) != NULL;
        if (hyi_seqmap_put(&j->cache, refs[i].actor, (hyi_head){l->seq, l->gseq}, listed) != 0 &&
            listed)
            j->heads_lost = true; /* only the log has it now: see hyi_env_write */
        else if (listed) /* the cache's entry is dirty with it now */
            dlog_remove(j, l->dirty_at);
        lease_set_mark(l, 0);
    }
    pthread_mutex_unlock(&j->cache_lock);
    pthread_mutex_unlock(&j->write_lock);
}

int hyi_env_write(hyi_journal *j, hyi_write_op op, void *arg, const char *what)
{
    int rc, reclaimed = 0;
    pthread_mutex_lock(&j->write_lock);
    for (int resized = 0;;) {
        MDB_txn *txn;
        rc = mdb_txn_begin(j->env, NULL, 0, &txn);
        if (rc == MDB_MAP_RESIZED && resized++ < 3) {
            if ((rc = adopt_map_size(j, true)) != 0)
                break;
            continue;
        }
        if (rc) {
            rc = hyi_lmdb_fail(j, rc, what);
            break;
        }
        if (j->heads_lost) {
            mdb_txn_abort(txn);
            rc = hyi_fail(HY_ENOMEM, "journal %s: %s: a head did not fit in memory after "
                          "its commit; reopen the journal (it rebuilds heads from the log)",
                          j->path, what);
            break;
        }
        /* After a large transaction, small ones would each zero and walk
         * (twice, in publish_overlay) the table it grew, whole: with a
         * million actors the writer commits ~150 entries at a time into a
         * table sized for 4096. Give such a table back instead. */
        if (j->overlay.cap > 1024 && j->overlay.len < j->overlay.cap / 16)
            hyi_seqmap_free(&j->overlay);
        else
            hyi_seqmap_clear(&j->overlay);
        hyi_wtxn w = {.j = j, .txn = txn, .gseq = j->gseq_last};
        struct hyi_sweep sweep = j->sweep; /* the op's sweep step may be undone */
        uint64_t through = j->heads_through;
        j->undo_len = 0;
        j->dlog_len_at_begin = j->dlog_len;
        rc = op(&w, arg);
        if (rc == 0) {
            rc = mdb_txn_commit(txn); /* frees txn on success and on failure */
        } else {
            mdb_txn_abort(txn);
        }
        if (rc != 0)
            leases_undo(j);
        if (rc == 0) {
            j->gseq_last = w.gseq;
            if (w.checkpointed)
                j->heads_through = w.gseq;
            publish_overlay(j, w.checkpointed);
            /* Relaxed: statistics, no other data is published through them. */
            atomic_fetch_add_explicit(&j->st_commits, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&j->st_entries, w.entries, memory_order_relaxed);
            atomic_fetch_add_explicit(&j->st_bytes, w.bytes, memory_order_relaxed);
            break;
        }
        j->sweep = sweep;
        j->heads_through = through;
        if (rc == MDB_MAP_FULL) {
            if ((rc = grow_map(j, what)) == 0)
                continue;
            /* At the cap: entries under floors are still owed to the sweep;
             * delete them all in a transaction of their own, then retry. */
            if (rc == HY_EMAPFULL && j->sweep.debt && !reclaimed++ &&
                reclaim_all(j) == 0)
                continue;
            break;
        }
        rc = hyi_lmdb_fail(j, rc, what);
        break;
    }
    if (rc)
        atomic_fetch_add_explicit(&j->st_failed, 1, memory_order_relaxed); /* stat */
    pthread_mutex_unlock(&j->write_lock);
    return rc;
}

/* Begin a read transaction; with lock non-NULL, lock is taken before it and
 * held on success (the caller releases it). */
static int read_begin(hyi_journal *j, MDB_txn **txn, pthread_mutex_t *lock)
{
    for (int resized = 0;;) {
        if (lock)
            pthread_mutex_lock(lock);
        pthread_rwlock_rdlock(&j->map_lock);
        int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn);
        if (rc == 0)
            return 0;
        pthread_rwlock_unlock(&j->map_lock);
        if (lock)
            pthread_mutex_unlock(lock);
        if (rc == MDB_MAP_RESIZED && resized++ < 3) {
            if ((rc = adopt_map_size(j, false)) != 0)
                return rc;
            continue;
        }
        return hyi_lmdb_fail(j, rc, "begin a read transaction");
    }
}

int hyi_env_read_begin(hyi_journal *j, MDB_txn **txn)
{
    return read_begin(j, txn, NULL);
}

void hyi_env_read_end(hyi_journal *j, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&j->map_lock);
}

/* ---------------------------------------------------------------- heads */

/* The actor's head in the heads DB as seen by txn ({0, 0} when absent). */
static int head_load(hyi_journal *j, MDB_txn *txn, uint64_t actor, hyi_head *h)
{
    unsigned char ak[8];
    hyi_actor_key_encode(ak, actor);
    MDB_val k = {sizeof ak, ak}, v;
    *h = (hyi_head){0, 0};
    int rc = mdb_get(txn, j->db_heads, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return hyi_lmdb_fail(j, rc, "read an actor's head");
    if (v.mv_size != HYI_HEAD_LEN)
        return hyi_fail(HY_ECORRUPT, "journal %s: head of actor %llu is %zu bytes, not %d",
                        j->path, (unsigned long long)actor, v.mv_size, HYI_HEAD_LEN);
    h->seq = hyi_le64_get(v.mv_data);
    h->gseq = hyi_le64_get((const unsigned char *)v.mv_data + 8);
    return 0;
}

/* No lock: the sender of a first message to each of a million actors asked
 * this under the head cache's lock, which the writer holds while it
 * publishes every commit's heads, and so slept on it about once per
 * activation. */
bool hyi_env_never_written(hyi_journal *j, uint64_t actor)
{
    if (!j->heads_whole || !j->seen)
        return false;
    seen_bits b = seen_bits_of(j, actor);
    /* relaxed: as in hyi_env_mark_seen */
    return (atomic_load_explicit(b.word, memory_order_relaxed) & b.mask) != b.mask;
}

/* The head a lease holds, read under write_lock (no transaction is open, so
 * it is committed), or the cache entry's if the lease went meanwhile. */
static hyi_head held_head(hyi_journal *j, uint64_t actor)
{
    hyi_head h = {0, 0};
    pthread_mutex_lock(&j->write_lock);
    pthread_mutex_lock(&j->cache_lock);
    const struct hyi_seqslot *s = hyi_seqmap_find(&j->cache, actor);
    if (s)
        h = hyi_seqslot_leased(s) ? lease_head(s) : (hyi_head){s->seq, s->gseq};
    pthread_mutex_unlock(&j->cache_lock);
    pthread_mutex_unlock(&j->write_lock);
    return h;
}

int hyi_env_read_head(hyi_journal *j, uint64_t actor, MDB_txn **txn, hyi_head *h)
{
    hyi_head cached = {0, 0};
    int rc = read_begin(j, txn, &j->cache_lock);
    if (rc)
        return rc;
    const struct hyi_seqslot *s = hyi_seqmap_find(&j->cache, actor);
    if (s && hyi_seqslot_leased(s)) {
        /* Another owner of this id lives (see leases): its lease has the head,
         * readable under write_lock, which must not be taken under
         * cache_lock. Committed before the transaction begun after it. */
        pthread_mutex_unlock(&j->cache_lock);
        hyi_env_read_end(j, *txn);
        hyi_head held = held_head(j, actor);
        if ((rc = read_begin(j, txn, &j->cache_lock)) != 0)
            return rc;
        (void)hyi_seqmap_get(&j->cache, actor, &cached);
        if (held.seq > cached.seq)
            cached = held;
    } else {
        (void)hyi_seqmap_get(&j->cache, actor, &cached);
    }
    bool lost = j->heads_lost;
    pthread_mutex_unlock(&j->cache_lock);
    if (lost) {
        hyi_env_read_end(j, *txn);
        return hyi_fail(HY_ENOMEM, "journal %s: a head did not fit in memory after its "
                        "commit; reopen the journal", j->path);
    }
    if ((rc = head_load(j, *txn, actor, h)) != 0) {
        hyi_env_read_end(j, *txn);
        return rc;
    }
    if (cached.seq > h->seq)
        *h = cached;
    return 0;
}

int hyi_head_get(hyi_wtxn *w, uint64_t actor, hyi_head *h)
{
    hyi_head_lease *holder; /* a live owner's lease has the head: rec_head reads it */
    return rec_head(w, &(hyi_journal_rec){.actor = actor}, &holder, h);
}

/* append: the actor's key is past every key of the heads DB, so LMDB may
 * put it at the end without searching the tree (MDB_APPEND). */
static int head_put(MDB_cursor *c, uint64_t actor, uint64_t seq, uint64_t gseq, bool append)
{
    unsigned char ak[8], hv[HYI_HEAD_LEN];
    hyi_actor_key_encode(ak, actor);
    hyi_le64_put(hv, seq);
    hyi_le64_put(hv + 8, gseq);
    MDB_val k = {sizeof ak, ak}, v = {sizeof hv, hv};
    return mdb_cursor_put(c, &k, &v, append ? MDB_APPEND : 0);
}

/* Stable LSD radix sort of n slots by the low `bytes` bytes of their actor,
 * a byte per pass, skipping bytes all actors share (small ids need 2-3
 * passes). tmp holds n slots. Returns the sorted array (a or tmp). */
static struct hyi_seqslot *radix_sort_low(struct hyi_seqslot *a, struct hyi_seqslot *tmp,
                                          size_t n, int bytes)
{
    for (int shift = 0; shift < 8 * bytes; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            count[(a[i].actor >> shift) & 0xff]++;
        if (n == 0 || count[(a[0].actor >> shift) & 0xff] == n)
            continue; /* every actor has the same byte here */
        size_t at = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = count[b];
            count[b] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(a[i].actor >> shift) & 0xff]++] = a[i];
        struct hyi_seqslot *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* Sort slots by actor, stably (an actor's later slot stays after its earlier
 * one). A checkpoint sorts up to 7/8 of cache_actors heads, where qsort's
 * comparisons were a visible share of the writer's time. Many slots are
 * split by their top byte first, and each part (small enough to stay in the
 * CPU cache) sorted by the other seven: eight passes over all of them, tens
 * of MB each with a million actors, were a twentieth of the writer's time.
 * tmp holds n slots. Returns the sorted array (a or tmp). */
static struct hyi_seqslot *sort_by_actor(struct hyi_seqslot *a, struct hyi_seqslot *tmp,
                                         size_t n)
{
    if (n < 65536)
        return radix_sort_low(a, tmp, n, 8);
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++)
        start[(a[i].actor >> 56) + 1]++;
    for (int b = 0; b < 256; b++)
        start[b + 1] += start[b];
    size_t at[256];
    memcpy(at, start, sizeof at);
    for (size_t i = 0; i < n; i++)
        tmp[at[a[i].actor >> 56]++] = a[i];
    for (int b = 0; b < 256; b++) {
        size_t from = start[b], len = start[b + 1] - from;
        struct hyi_seqslot *s = radix_sort_low(tmp + from, a + from, len, 7);
        if (s != tmp + from)
            memcpy(tmp + from, s, len * sizeof *s);
    }
    return tmp;
}

static int meta_put_u64(hyi_wtxn *w, const char *name, uint64_t value)
{
    unsigned char b[8];
    hyi_le64_put(b, value);
    MDB_val k = {strlen(name), (void *)name}, v = {sizeof b, b};
    return mdb_put(w->txn, w->j->db_meta, &k, &v, 0);
}

/* Checkpoint: write every dirty head (the cache's and this transaction's) to
 * the heads DB in actor order (neighbouring keys share pages) and record that
 * the heads DB is complete through this transaction's last log key. */
static int heads_checkpoint(hyi_wtxn *w)
{
    hyi_journal *j = w->j;
    pthread_mutex_lock(&j->cache_lock);
    size_t n = 0, cap = j->cache.dirty + j->dlog_len + j->overlay.len;
    struct hyi_seqslot *all = malloc(2 * (cap ? cap : 1) * sizeof *all);
    if (all) {
        for (size_t i = 0; i < j->cache.cap; i++) {
            const struct hyi_seqslot *s = &j->cache.slots[i];
            if (!s->used || !hyi_seqslot_dirty(&j->cache, s))
                continue;
            all[n] = *s;
            if (hyi_seqslot_leased(s)) { /* dirty before its lease: the lease's is newer */
                all[n].seq = s->lease->seq;
                all[n].gseq = s->lease->gseq;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&j->cache_lock);
    if (!all)
        return hyi_fail(HY_ENOMEM, "journal %s: no memory to checkpoint %zu heads",
                        j->path, cap);
    if (j->dlog_len)
        memcpy(all + n, j->dlog, j->dlog_len * sizeof *all);
    n += j->dlog_len;
    for (size_t i = 0; i < j->overlay.cap; i++)
        if (j->overlay.slots[i].used)
            all[n++] = j->overlay.slots[i];
    /* An actor in more than one of them: the highest sequence is newest. */
    struct hyi_seqslot *sorted = sort_by_actor(all, all + (cap ? cap : 1), n);
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(w->txn, j->db_heads, &c);
    /* Heads past the DB's last key (all of them in a new journal) go in
     * with MDB_APPEND: no search from the root, and full pages. */
    MDB_val lk, lv;
    uint64_t top = 0;
    bool empty = false;
    if (rc == 0) {
        rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
        if (rc == MDB_NOTFOUND)
            empty = true, rc = 0;
        else if (rc == 0 && hyi_actor_key_decode(&lk, &top) != 0)
            rc = hyi_fail(HY_ECORRUPT, "journal %s: a key of the heads table is %zu bytes, "
                          "not 8", j->path, lk.mv_size);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct hyi_seqslot *s = &sorted[i];
        for (; i + 1 < n && sorted[i + 1].actor == s->actor; i++)
            if (sorted[i + 1].seq > s->seq)
                s = &sorted[i + 1];
        bool append = empty || s->actor > top;
        rc = head_put(c, s->actor, s->seq, s->gseq, append);
        if (append)
            top = s->actor, empty = false;
    }
    if (c)
        mdb_cursor_close(c);
    free(all);
    if (rc == 0)
        rc = meta_put_u64(w, "heads_through", w->gseq);
    if (rc == 0)
        w->checkpointed = true;
    return rc;
}

/* Each checkpoint with a million actors rewrites most of the heads DB's
 * leaf pages, however few of its heads changed, so fewer checkpoints are
 * what makes them cheaper. Dirty heads may fill the cache to seven eighths
 * while it still has room; once it is full an insert must evict a clean
 * head, and half of it stays clean for that. */
static bool checkpoint_due(hyi_wtxn *w)
{
    hyi_journal *j = w->j;
    pthread_mutex_lock(&j->cache_lock);
    size_t dirty = j->cache.dirty, cached = j->cache.len;
    pthread_mutex_unlock(&j->cache_lock);
    size_t max = j->cfg.cache_actors, newer = dirty + j->dlog_len + j->overlay.len;
    bool full = cached >= max;
    return newer > max - max / 8 || (full && newer > max / 2) ||
           w->gseq - j->heads_through >= j->cfg.checkpoint_entries;
}

/* ---------------------------------------------------------------- floors */

int hyi_floor_get(hyi_journal *j, MDB_txn *txn, uint64_t actor, uint64_t *floor)
{
    unsigned char ak[8];
    hyi_actor_key_encode(ak, actor);
    MDB_val k = {sizeof ak, ak}, v;
    *floor = 1;
    int rc = mdb_get(txn, j->db_floors, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return hyi_fail(HY_ECORRUPT, "journal %s: floor of actor %llu is %zu bytes, not 8",
                        j->path, (unsigned long long)actor, v.mv_size);
    *floor = hyi_le64_get(v.mv_data);
    return 0;
}

int hyi_floor_raise(hyi_wtxn *w, uint64_t actor, uint64_t floor, uint64_t *removed)
{
    hyi_journal *j = w->j;
    hyi_head h;
    uint64_t cur;
    *removed = 0;
    int rc = hyi_head_get(w, actor, &h);
    if (rc == 0)
        rc = hyi_floor_get(j, w->txn, actor, &cur);
    if (rc)
        return rc;
    if (floor > h.seq + 1)
        floor = h.seq + 1;
    if (floor <= cur)
        return 0;
    unsigned char ak[8], fv[8];
    hyi_actor_key_encode(ak, actor);
    hyi_le64_put(fv, floor);
    MDB_val k = {sizeof ak, ak}, v = {sizeof fv, fv};
    if ((rc = mdb_put(w->txn, j->db_floors, &k, &v, 0)) != 0)
        return rc;
    *removed = floor - cur;
    j->sweep.debt += *removed;
    return 0;
}

/* ---------------------------------------------------------------- reclamation */

/* One bounded step of reclamation: visit up to budget log entries from
 * sweep.at on, deleting those under their actor's floor. The newest entry is
 * never deleted, so the log's last key (the next global sequence) survives a
 * restart. The sweep runs only while something is owed (or once after open);
 * a pass that deletes nothing settles the debt. */
static int sweep_step(hyi_wtxn *w, size_t budget)
{
    hyi_journal *j = w->j;
    struct hyi_sweep *sw = &j->sweep;
    if (!sw->debt && !sw->full)
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, j->db_log, &c);
    if (rc)
        return rc;
    unsigned char kb[HYI_LOG_KEY_LEN];
    hyi_log_key_encode(kb, sw->at);
    MDB_val k = {sizeof kb, kb}, v;
    uint64_t last_actor = 0, last_floor = 1;
    bool have_floor = false;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && budget; budget--) {
        uint64_t g, actor, seq, prev;
        if (hyi_log_key_decode(&k, &g) != 0 || g >= w->gseq) {
            rc = MDB_NOTFOUND; /* the end of the log: the pass is over */
            break;
        }
        sw->at = g + 1;
        if (hyi_entry_peek(&v, &actor, &seq, &prev) == 0) {
            if (!have_floor || actor != last_actor) {
                if ((rc = hyi_floor_get(j, w->txn, actor, &last_floor)) != 0)
                    break;
                last_actor = actor;
                have_floor = true;
            }
            if (seq < last_floor) {
                if ((rc = mdb_cursor_del(c, 0)) != 0)
                    break;
                sw->debt -= sw->debt > 0;
                sw->deleted_in_pass++;
            }
        }
        /* After a delete the cursor already sits on the next item; MDB_NEXT
         * returns it without stepping (LMDB's C_DEL rule). */
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) {
        if (!sw->deleted_in_pass)
            sw->debt = 0;
        sw->full = false;
        sw->deleted_in_pass = 0;
        sw->at = 0;
        rc = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- puts */

/* With many actors, each head lookup is a cache miss in a table of megabytes;
 * asking for all of a batch's slots first lets the misses overlap instead of
 * queueing one behind the other. Only this thread (the writer, under
 * write_lock) moves the table, so reading its shape here is race-free; the
 * prefetches themselves read nothing. */
static void prefetch_heads(hyi_journal *j, hyi_rec_iter next, hyi_rec_restart restart,
                           void *it)
{
    hyi_journal_rec r;
    uint64_t *seq;
    /* The seen bits and the leases decide which slots to fetch: fetch those
     * first (a lease is in its owner's memory, written on another core). */
    restart(it);
    while (next(it, &r, &seq)) {
        prefetch_seen(j, r.actor);
        if (r.lease)
            __builtin_prefetch(r.lease, 1);
    }
    restart(it);
    while (next(it, &r, &seq)) {
        if (r.lease && (lease_mark(r.lease) & LEASE_HELD)) {
            /* its head is in the lease; its entry in the list of changed
             * heads (a million actors': tens of MB) is overwritten */
            if (lease_mark(r.lease) >> 1 == (j->dlog_epoch & 0x7fffffffu) &&
                r.lease->dirty_at < j->dlog_len)
                __builtin_prefetch(&j->dlog[r.lease->dirty_at], 1);
            continue;
        }
        /* a new actor is not looked up, but a lease of one inserts its entry */
        if (r.lease || !hyi_env_never_written(j, r.actor))
            hyi_seqmap_prefetch(&j->cache, r.actor);
    }
    restart(it);
}

int hyi_entries_put(hyi_wtxn *w, hyi_rec_iter next, hyi_rec_restart restart, void *it)
{
    hyi_journal *j = w->j;
    MDB_cursor *c;
    prefetch_heads(j, next, restart, it);
    int rc = mdb_cursor_open(w->txn, j->db_log, &c);
    if (rc)
        return rc;
    uint64_t now = 0; /* one clock read for all entries without a timestamp */
    size_t n = 0;
    hyi_journal_rec r;
    uint64_t *seq;
    while (next(it, &r, &seq)) {
        uint64_t ts = r.timestamp_ns;
        if (!ts)
            ts = now ? now : (now = hyi_wall_ns());
        hyi_head_lease *lease;
        hyi_head h;
        if ((rc = rec_head(w, &r, &lease, &h)) != 0)
            break;
        if (h.seq >= UINT64_MAX - 1) {
            rc = hyi_fail(HY_EJOURNAL, "journal %s: actor %llu has used every sequence",
                          j->path, (unsigned long long)r.actor);
            break;
        }
        hyi_entry_ids ids = {w->gseq + 1, r.actor, h.seq + 1, h.gseq};
        unsigned char kb[HYI_LOG_KEY_LEN];
        hyi_log_key_encode(kb, ids.gseq);
        size_t size = HYI_ENTRY_HDR + r.path_len + r.payload_len;
        MDB_val k = {sizeof kb, kb}, v = {size, NULL};
        /* Global sequences only grow: every put is past the last key, so
         * MDB_APPEND skips the tree search and fills pages completely, however
         * many actors share the log. */
        if ((rc = mdb_cursor_put(c, &k, &v, MDB_RESERVE | MDB_APPEND)) != 0) {
            if (rc == MDB_KEYEXIST)
                rc = hyi_fail(HY_ECORRUPT, "journal %s: log key %llu is not past the "
                              "log's last key", j->path, (unsigned long long)ids.gseq);
            break;
        }
        hyi_entry_encode(v.mv_data, &ids, ts, r.flags, r.path, (uint32_t)r.path_len,
                         r.payload, (uint32_t)r.payload_len);
        w->gseq = ids.gseq;
        *seq = ids.seq;
        if (lease) {
            if ((rc = lease_advance(j, r.actor, lease, ids.seq, ids.gseq)) != 0)
                break;
        } else if (hyi_seqmap_put(&j->overlay, r.actor, (hyi_head){ids.seq, ids.gseq},
                                  true) != 0) {
            rc = hyi_fail(HY_ENOMEM, "journal %s: no memory for the head table", j->path);
            break;
        }
        w->entries++;
        w->bytes += HYI_LOG_KEY_LEN + size;
        n++;
    }
    mdb_cursor_close(c);
    /* Reclaim at twice the append rate: a pass over a log of L entries takes
     * L/2 appends, so an entry waits at most that long once covered. */
    if (rc == 0)
        rc = sweep_step(w, 2 * n + 16);
    if (rc == 0 && checkpoint_due(w))
        rc = heads_checkpoint(w);
    return rc;
}

int hyi_rec_check(const hyi_journal *j, const hyi_journal_rec *rec)
{
    if (!rec)
        return hyi_fail(HY_EINVAL, "journal %s: NULL record", j->path);
    if (rec->path_len > UINT32_MAX || rec->payload_len > UINT32_MAX ||
        rec->path_len + rec->payload_len > UINT32_MAX)
        return hyi_fail(HY_EINVAL, "journal %s: entry for actor %llu is over 4 GiB",
                        j->path, (unsigned long long)rec->actor);
    if ((rec->path_len && !rec->path) || (rec->payload_len && !rec->payload))
        return hyi_fail(HY_EINVAL, "journal %s: NULL path or payload with a length",
                        j->path);
    return 0;
}

/* ---------------------------------------------------------------- open/close */

static int meta_get_u64(hyi_journal *j, MDB_txn *txn, const char *name, uint64_t *value)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, j->db_meta, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return hyi_fail(HY_ECORRUPT, "journal %s: meta record '%s' is %zu bytes, not 8",
                        j->path, name, v.mv_size);
    *value = hyi_le64_get(v.mv_data);
    return 0;
}

/* Open the databases and check the layout. A directory written by the
 * actor-keyed layout (format 1: a "journal" database keyed by actor and
 * sequence) is refused, not guessed at: its entries have no global order to
 * rebuild the log from without a full rewrite. */
static int open_dbs(hyi_wtxn *w, void *arg)
{
    hyi_journal *j = w->j;
    MDB_dbi old;
    (void)arg;
    int rc = mdb_dbi_open(w->txn, "journal", 0, &old);
    if (rc == 0)
        return hyi_fail(HY_ECORRUPT, "journal %s: format 1 (entries keyed by actor and "
                        "sequence) found; this version reads format %d (one log in commit "
                        "order). Recover its actors with the version that wrote it and "
                        "snapshot them, or move the directory away to start afresh",
                        j->path, HYI_FORMAT);
    if (rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_dbi_open(w->txn, "log", MDB_CREATE, &j->db_log)) != 0 ||
        (rc = mdb_dbi_open(w->txn, "heads", MDB_CREATE, &j->db_heads)) != 0 ||
        (rc = mdb_dbi_open(w->txn, "floors", MDB_CREATE, &j->db_floors)) != 0 ||
        (rc = mdb_dbi_open(w->txn, "snapshots", MDB_CREATE, &j->db_snap)) != 0 ||
        (rc = mdb_dbi_open(w->txn, "meta", MDB_CREATE, &j->db_meta)) != 0)
        return rc;
    MDB_stat log, heads, snaps;
    if ((rc = mdb_stat(w->txn, j->db_log, &log)) != 0 ||
        (rc = mdb_stat(w->txn, j->db_heads, &heads)) != 0 ||
        (rc = mdb_stat(w->txn, j->db_snap, &snaps)) != 0)
        return rc;
    /* no reader yet */
    j->heads_whole = log.ms_entries == 0 && heads.ms_entries == 0 && snaps.ms_entries == 0;
    uint64_t format = 0;
    rc = meta_get_u64(j, w->txn, "format", &format);
    if (rc == MDB_NOTFOUND)
        return meta_put_u64(w, "format", HYI_FORMAT);
    if (rc)
        return rc;
    if (format != HYI_FORMAT)
        return hyi_fail(HY_ECORRUPT, "journal %s: format %llu found; this version reads "
                        "format %d only", j->path, (unsigned long long)format, HYI_FORMAT);
    return 0;
}

/* Rebuild the heads the last run had not checkpointed, from the log entries
 * past heads_through (at most checkpoint_entries of them), and checkpoint
 * them. A corrupt entry there fails the open: its actor cannot be told, so
 * its sequence could be handed out twice. */
static int replay_tail(hyi_wtxn *w, void *arg)
{
    hyi_journal *j = w->j;
    (void)arg;
    uint64_t through = 0;
    int rc = meta_get_u64(j, w->txn, "heads_through", &through);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(w->txn, j->db_log, &c)) != 0)
        return rc;
    unsigned char kb[HYI_LOG_KEY_LEN];
    hyi_log_key_encode(kb, through + 1);
    MDB_val k = {sizeof kb, kb}, v;
    uint64_t last = through;
    MDB_val lk, lv;
    rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
    if (rc == 0 && hyi_log_key_decode(&lk, &last) != 0)
        rc = hyi_fail(HY_ECORRUPT, "journal %s: the log's last key is %zu bytes, not 8",
                      j->path, lk.mv_size);
    for (rc = rc == MDB_NOTFOUND ? rc : rc ? rc : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
         rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        hyi_journal_entry e;
        hyi_entry_ids ids;
        const char *why;
        if (hyi_entry_decode(&k, &v, &e, &ids, &why) != 0) {
            uint64_t g = 0;
            (void)hyi_log_key_decode(&k, &g);
            rc = hyi_fail(HY_ECORRUPT, "journal %s: log entry at key %llu (past the last "
                          "head checkpoint) is corrupt: %s; its actor cannot be told",
                          j->path, (unsigned long long)g, why);
            break;
        }
        if (hyi_seqmap_put(&j->overlay, ids.actor, (hyi_head){ids.seq, ids.gseq}, true)) {
            rc = hyi_fail(HY_ENOMEM, "journal %s: no memory to rebuild heads", j->path);
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    w->gseq = last > through ? last : through;
    return heads_checkpoint(w);
}

/* Eight bits per actor the head cache holds (a power of two, at least
 * 64 KiB), two set for each: at the cache's size about one activation in
 * twenty takes the slow path for nothing. Pages are touched only as bits
 * are set. */
static void seen_alloc(hyi_journal *j)
{
    uint64_t bits = (uint64_t)1 << 19;
    while (bits < (uint64_t)j->cfg.cache_actors * 8 && bits < (uint64_t)1 << 36)
        bits <<= 1;
    j->seen = calloc(bits / 64, sizeof *j->seen);
    j->seen_mask = bits - 1;
}

/* A journal opened with history: every actor with a head or a snapshot gets
 * its seen bit, so actors new to it still recover without a read. After
 * replay_tail the heads DB holds every head. Skipped (the short cut stays
 * off, which is only slower) when the actors are so many that most bits
 * would be set, or when a read fails. */
static void mark_history(hyi_journal *j)
{
    MDB_txn *txn;
    if (j->heads_whole || !j->seen || hyi_env_read_begin(j, &txn) != 0)
        return;
    MDB_dbi dbs[] = {j->db_heads, j->db_snap};
    MDB_stat st;
    uint64_t actors = 0;
    bool complete = true;
    for (size_t d = 0; d < 2 && complete; d++)
        if ((complete = mdb_stat(txn, dbs[d], &st) == 0))
            actors += st.ms_entries;
    complete = complete && actors <= (j->seen_mask + 1) / 8;
    for (size_t d = 0; d < 2 && complete; d++) {
        MDB_cursor *c;
        if (mdb_cursor_open(txn, dbs[d], &c) != 0) {
            complete = false;
            break;
        }
        MDB_val k, v;
        uint64_t actor;
        int rc;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (hyi_actor_key_decode(&k, &actor) != 0)
                break;
            hyi_env_mark_seen(j, actor);
        }
        complete = rc == MDB_NOTFOUND;
        mdb_cursor_close(c);
    }
    hyi_env_read_end(j, txn);
    j->heads_whole = complete;
}

static void free_journal(hyi_journal *j)
{
    if (j->env)
        mdb_env_close(j->env);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the flock */
    hyi_seqmap_free(&j->cache);
    hyi_seqmap_free(&j->overlay);
    free(j->dlog);
    free(j->undo);
    free((void *)j->seen);
    pthread_mutex_destroy(&j->write_lock);
    pthread_rwlock_destroy(&j->map_lock);
    pthread_mutex_destroy(&j->cache_lock);
    pthread_mutex_destroy(&j->q_lock);
    pthread_cond_destroy(&j->q_work);
    pthread_cond_destroy(&j->q_room);
    pthread_cond_destroy(&j->q_done);
    pthread_mutex_destroy(&j->ring_lock);
    free(j->done_items);
    free(j->q_vec); /* empty: close flushed the queue */
    free(j->spare_vec);
    free(j->node_ring);
    free(j->path);
    free(j);
}

static int errno_fail(const char *path, const char *what)
{
    int e = errno;
    return hyi_fail(map_code(e), "journal %s: %s: %s", path, what, strerror(e));
}

/* One owner per journal: an exclusive flock on <path>/hypha.lock. flock
 * conflicts between open file descriptions, so a second kernel of this
 * process is refused as well as another process; the kernel releases it when
 * the process dies, so a kill -9 leaves nothing that blocks the next open.
 * The owner writes its pid into the file so a refusal can name it. */
static int take_ownership(hyi_journal *j)
{
    char name[4096];
    snprintf(name, sizeof name, "%s/hypha.lock", j->path);
    int fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return errno_fail(j->path, "open its lock file");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
        close(fd);
        if (e != EWOULDBLOCK) {
            errno = e;
            return errno_fail(j->path, "lock");
        }
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return hyi_fail(HY_EBUSY, "journal %s is open already, by process %s (one kernel "
                        "per journal)", j->path, *pid ? pid : "(unknown)");
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* the pid is only for the refusal's detail: the lock is what counts */
    }
    j->lock_fd = fd;
    return 0;
}

/* After mdb_env_open: the whole map reserved on disk (HYI_DUR_OFF only).
 * hy_err with the detail set, or 0. */
static int reserve_open_map(hyi_journal *j)
{
    MDB_envinfo info = {0};
    int rc = mdb_env_info(j->env, &info);
    if (rc == 0)
        rc = reserve_map(j, map_in_use(j), info.me_mapsize);
    if (rc == 0)
        return 0;
    return hyi_fail(map_code(rc), "journal %s: open: no room on disk for the map's %zu "
                    "bytes (durability off reserves them first, since a write through "
                    "the map to a file system that is full would be SIGBUS): %s",
                    j->path, info.me_mapsize, strerror(rc));
}

int hyi_journal_open(hyi_journal **out, const hyi_journal_config *cfg)
{
    if (!out)
        return hyi_fail(HY_EINVAL, "journal: NULL output handle");
    *out = NULL;
    if (!cfg || !cfg->path || !*cfg->path)
        return hyi_fail(HY_EINVAL, "journal: no path in the config");
    if (cfg->durability > HYI_DUR_OFF || cfg->retention > HYI_RETAIN_ALL)
        return hyi_fail(HY_EINVAL, "journal %s: unknown durability or retention",
                        cfg->path);
    const char *path = cfg->path;
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return errno_fail(path, "create the directory");
    struct stat st;
    if (stat(path, &st) != 0)
        return errno_fail(path, "stat");
    if (!S_ISDIR(st.st_mode))
        return hyi_fail(HY_EJOURNAL, "journal %s: not a directory", path);

    hyi_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return hyi_fail(HY_ENOMEM, "journal %s: out of memory", path);
    }
    j->cfg = *cfg;
    j->cfg.path = j->path;
    j->lock_fd = -1;
    long ps = sysconf(_SC_PAGESIZE);
    j->page_size = ps > 0 ? (size_t)ps : 4096;
    if (!j->cfg.map_size)
        j->cfg.map_size = DEFAULT_MAP_SIZE;
    if (!j->cfg.map_size_max)
        j->cfg.map_size_max = DEFAULT_MAP_MAX;
    j->cfg.map_size = round_page(j->cfg.map_size, j->page_size);
    j->cfg.map_size_max = round_page(j->cfg.map_size_max, j->page_size);
    if (j->cfg.map_size_max < j->cfg.map_size)
        j->cfg.map_size_max = j->cfg.map_size;
    if (!j->cfg.max_batch)
        j->cfg.max_batch = DEFAULT_MAX_BATCH;
    if (!j->cfg.max_pending)
        j->cfg.max_pending = DEFAULT_MAX_PENDING;
    if (!j->cfg.cache_actors)
        j->cfg.cache_actors = DEFAULT_CACHE_ACTORS;
    if (!j->cfg.checkpoint_entries)
        j->cfg.checkpoint_entries = DEFAULT_CHECKPOINT_ENTRIES;
    j->cache.max = j->cfg.cache_actors;
    j->dlog_epoch = 1; /* a zeroed lease (epoch 0) is listed nowhere */
    seen_alloc(j);

    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&j->map_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&j->write_lock, NULL);
    pthread_mutex_init(&j->cache_lock, NULL);
    pthread_mutex_init(&j->q_lock, NULL);
    pthread_cond_init(&j->q_work, NULL);
    pthread_cond_init(&j->q_room, NULL);
    pthread_cond_init(&j->q_done, NULL);
    pthread_mutex_init(&j->ring_lock, NULL);

    int rc = take_ownership(j);
    if (rc) {
        free_journal(j);
        return rc;
    }
    rc = mdb_env_create(&j->env);
    if (rc) {
        j->env = NULL;
        goto fail;
    }
    unsigned flags = MDB_NOTLS; /* read txns are not tied to threads */
    if (j->cfg.durability == HYI_DUR_NOSYNC)
        flags |= MDB_NOSYNC;
    else if (j->cfg.durability == HYI_DUR_OFF)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP | MDB_MAPASYNC;
    if ((rc = mdb_env_set_maxdbs(j->env, 8)) != 0 ||
        (rc = mdb_env_set_mapsize(j->env, j->cfg.map_size)) != 0 ||
        (j->cfg.max_readers && (rc = mdb_env_set_maxreaders(j->env, j->cfg.max_readers)) != 0))
        goto fail;
    if ((rc = mdb_env_open(j->env, path, flags, 0640)) != 0)
        goto fail;
    if ((rc = reserve_open_map(j)) != 0) {
        free_journal(j);
        return rc;
    }
    if ((rc = hyi_env_write(j, open_dbs, NULL, "open the databases")) != 0 ||
        (rc = hyi_env_write(j, replay_tail, NULL, "rebuild heads")) != 0)
        goto fail;
    mark_history(j);
    j->sweep.full = true; /* what the last run owed is unknown */
    /* Opening is not a journal commit: keep the counters about entries. */
    atomic_store_explicit(&j->st_commits, 0, memory_order_relaxed); /* no reader yet */
    *out = j;
    return 0;
fail:
    rc = fail_path(path, rc, "open");
    free_journal(j);
    return rc;
}

static int close_checkpoint(hyi_wtxn *w, void *arg)
{
    (void)arg;
    if (w->gseq == w->j->heads_through && !w->j->cache.dirty)
        return 0;
    return heads_checkpoint(w);
}

void hyi_journal_close(hyi_journal *j)
{
    if (!j)
        return;
    hyi_writer_stop(j);
    /* Checkpoint the heads so the next open has no log tail to replay; if it
     * fails, that replay does the same work. */
    (void)hyi_env_write(j, close_checkpoint, NULL, "checkpoint heads at close");
    free_journal(j);
}

const char *hyi_journal_path(const hyi_journal *j)
{
    return j->path;
}

/* ---------------------------------------------------------------- stats */

void hyi_journal_get_stats(hyi_journal *j, hyi_journal_stats *out)
{
    memset(out, 0, sizeof *out);
    /* Relaxed loads: independent counters, no data is read through them. */
    out->commits = atomic_load_explicit(&j->st_commits, memory_order_relaxed);
    out->entries = atomic_load_explicit(&j->st_entries, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&j->st_bytes, memory_order_relaxed);
    out->failed_commits = atomic_load_explicit(&j->st_failed, memory_order_relaxed);
    out->map_grows = atomic_load_explicit(&j->st_grows, memory_order_relaxed);
    out->writer_commits = atomic_load_explicit(&j->st_writer_commits, memory_order_relaxed);
    out->batch_max = atomic_load_explicit(&j->st_batch_max, memory_order_relaxed);
    out->recover_reads = atomic_load_explicit(&j->st_recover_reads, memory_order_relaxed);
    MDB_envinfo info;
    MDB_stat st;
    pthread_rwlock_rdlock(&j->map_lock); /* me_mapsize changes only under wrlock */
    if (mdb_env_info(j->env, &info) == 0) {
        out->map_size = info.me_mapsize;
        if (mdb_env_stat(j->env, &st) == 0)
            out->map_used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    }
    pthread_rwlock_unlock(&j->map_lock);
    MDB_txn *txn;
    if (hyi_env_read_begin(j, &txn) == 0) {
        if (mdb_stat(txn, j->db_log, &st) == 0)
            out->log_entries = st.ms_entries;
        hyi_env_read_end(j, txn);
    }
    pthread_mutex_lock(&j->cache_lock);
    out->heads_cached = j->cache.len;
    out->heads_dirty = j->cache.dirty + j->dlog_committed;
    pthread_mutex_unlock(&j->cache_lock);
    out->map_max = j->cfg.map_size_max;
    pthread_mutex_lock(&j->q_lock);
    out->pending = j->q_len;
    out->writer_cpu_ns = hyi_writer_cpu_ns(j);
    pthread_mutex_unlock(&j->q_lock);

    uint32_t tmp[HYI_JOURNAL_BATCH_RING];
    pthread_mutex_lock(&j->ring_lock);
    size_t n = j->ring_n < HYI_JOURNAL_BATCH_RING ? j->ring_n : HYI_JOURNAL_BATCH_RING;
    memcpy(tmp, j->ring, n * sizeof *tmp);
    pthread_mutex_unlock(&j->ring_lock);
    if (n) {
        qsort(tmp, n, sizeof *tmp, hyi_cmp_u32);
        out->batch_p50 = tmp[n / 2];
    }
}
