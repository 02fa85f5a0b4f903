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
#include <unistd.h>

#include "journal_int.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_MAP_MAX ((size_t)1 << 40)
#define DEFAULT_MAX_BATCH 4096u
#define DEFAULT_MAX_PENDING 65536u

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

int hyi_lmdb_fail(const hyi_journal *j, int rc, const char *what)
{
    return fail_path(j->path, rc, what);
}

static size_t round_page(size_t n, size_t page)
{
    return (n + page - 1) / page * page;
}

/* ---------------------------------------------------------------- growth */

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

static void publish_overlay(hyi_journal *j)
{
    pthread_mutex_lock(&j->cache_lock);
    for (size_t i = 0; i < j->overlay.cap; i++) {
        const struct hyi_seqslot *s = &j->overlay.slots[i];
        /* On ENOMEM the actor just stays out of the cache and its sequence is
         * loaded from LMDB (where it is committed) on next use: still correct. */
        if (s->used)
            (void)hyi_seqmap_put_max(&j->cache, s->actor, s->seq);
    }
    pthread_mutex_unlock(&j->cache_lock);
}

int hyi_env_write(hyi_journal *j, hyi_write_op op, void *arg, const char *what)
{
    int rc;
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
        hyi_seqmap_clear(&j->overlay);
        hyi_wtxn w = {.j = j, .txn = txn};
        rc = op(&w, arg);
        if (rc == 0) {
            rc = mdb_txn_commit(txn); /* frees txn on success and on failure */
        } else {
            mdb_txn_abort(txn);
        }
        if (rc == 0) {
            publish_overlay(j);
            /* Relaxed: statistics, no other data is published through them. */
            atomic_fetch_add_explicit(&j->st_commits, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&j->st_entries, w.entries, memory_order_relaxed);
            atomic_fetch_add_explicit(&j->st_bytes, w.bytes, memory_order_relaxed);
            break;
        }
        if (rc == MDB_MAP_FULL) {
            if ((rc = grow_map(j, what)) != 0)
                break;
            continue;
        }
        rc = hyi_lmdb_fail(j, rc, what);
        break;
    }
    if (rc)
        atomic_fetch_add_explicit(&j->st_failed, 1, memory_order_relaxed); /* stat */
    pthread_mutex_unlock(&j->write_lock);
    return rc;
}

int hyi_env_read_begin(hyi_journal *j, MDB_txn **txn)
{
    for (int resized = 0;;) {
        pthread_rwlock_rdlock(&j->map_lock);
        int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn);
        if (rc == 0)
            return 0;
        pthread_rwlock_unlock(&j->map_lock);
        if (rc == MDB_MAP_RESIZED && resized++ < 3) {
            if ((rc = adopt_map_size(j, false)) != 0)
                return rc;
            continue;
        }
        return hyi_lmdb_fail(j, rc, "begin a read transaction");
    }
}

void hyi_env_read_end(hyi_journal *j, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&j->map_lock);
}

/* ---------------------------------------------------------------- sequences */

int hyi_seq_load(hyi_journal *j, MDB_txn *txn, uint64_t actor, uint64_t *seq)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, j->db_journal, &c);
    if (rc)
        return hyi_lmdb_fail(j, rc, "open a journal cursor");
    /* The first key >= (actor, max) is past the actor's entries; the one
     * before it is the actor's last entry, if it has one. */
    unsigned char kb[HYI_KEY_LEN];
    hyi_key_encode(kb, actor, UINT64_MAX);
    MDB_val k = {sizeof kb, kb}, v;
    uint64_t a = 0, s = 0, found = 0;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && (hyi_key_decode(&k, &a, &s) != 0 || a != actor))
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0) {
        if (hyi_key_decode(&k, &a, &s) != 0) {
            mdb_cursor_close(c);
            return hyi_fail(HY_ECORRUPT, "journal %s: a journal key near actor %llu "
                            "is %zu bytes, not 16", j->path,
                            (unsigned long long)actor, k.mv_size);
        }
        if (a == actor)
            found = s;
    } else if (rc != MDB_NOTFOUND) {
        mdb_cursor_close(c);
        return hyi_lmdb_fail(j, rc, "find the highest sequence");
    }
    mdb_cursor_close(c);

    /* A snapshot may cover entries that were truncated away. */
    unsigned char ak[8];
    hyi_actor_key_encode(ak, actor);
    MDB_val sk = {sizeof ak, ak}, sv;
    rc = mdb_get(txn, j->db_snap, &sk, &sv);
    if (rc == 0) {
        uint64_t sseq;
        const void *st;
        size_t len;
        const char *why;
        if (hyi_snap_decode(actor, &sv, &sseq, &st, &len, &why) != 0)
            return hyi_fail(HY_ECORRUPT, "journal %s: snapshot of actor %llu is "
                            "corrupt: %s", j->path, (unsigned long long)actor, why);
        if (sseq > found)
            found = sseq;
    } else if (rc != MDB_NOTFOUND) {
        return hyi_lmdb_fail(j, rc, "read a snapshot");
    }
    *seq = found;
    return 0;
}

int hyi_seq_next(hyi_wtxn *w, uint64_t actor, uint64_t *seq)
{
    hyi_journal *j = w->j;
    uint64_t cur;
    if (!hyi_seqmap_get(&j->overlay, actor, &cur)) {
        pthread_mutex_lock(&j->cache_lock);
        bool hit = hyi_seqmap_get(&j->cache, actor, &cur);
        pthread_mutex_unlock(&j->cache_lock);
        if (!hit) {
            int rc = hyi_seq_load(j, w->txn, actor, &cur);
            if (rc)
                return rc;
        }
    }
    if (cur >= UINT64_MAX - 1)
        return hyi_fail(HY_EJOURNAL, "journal %s: actor %llu has used every sequence",
                        j->path, (unsigned long long)actor);
    *seq = cur + 1;
    if (hyi_seqmap_put_max(&j->overlay, actor, *seq) != 0)
        return hyi_fail(HY_ENOMEM, "journal %s: no memory for the sequence table",
                        j->path);
    return 0;
}

/* ---------------------------------------------------------------- puts */

/* The journal DB's last key into last (zeros if empty). LMDB code. */
static int journal_last_key(MDB_cursor *c, unsigned char last[HYI_KEY_LEN])
{
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    memset(last, 0, HYI_KEY_LEN);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0)
        memcpy(last, k.mv_data, k.mv_size < HYI_KEY_LEN ? k.mv_size : HYI_KEY_LEN);
    return rc;
}

/* Put one entry under (actor, seq) through cursor c, with MDB_APPEND when the
 * key is past *last (updated). Returns an LMDB code, or HY_EJOURNAL. */
static int entry_put(hyi_wtxn *w, MDB_cursor *c, unsigned char last[HYI_KEY_LEN],
                     uint64_t actor, uint64_t seq, uint64_t ts, uint16_t flags,
                     const void *path, size_t path_len, const void *payload,
                     size_t payload_len)
{
    unsigned char kb[HYI_KEY_LEN];
    hyi_key_encode(kb, actor, seq);
    size_t size = HYI_ENTRY_HDR + path_len + payload_len;
    MDB_val k = {sizeof kb, kb}, v = {size, NULL};
    /* Past the DB's last key, MDB_APPEND skips the tree search and fills pages
     * completely; anywhere else a normal put, which must not overwrite. */
    bool append = memcmp(kb, last, HYI_KEY_LEN) > 0;
    unsigned fl = MDB_RESERVE | (append ? MDB_APPEND : MDB_NOOVERWRITE);
    int rc = mdb_cursor_put(c, &k, &v, fl);
    if (rc == MDB_KEYEXIST)
        return hyi_fail(HY_EJOURNAL, "journal %s: entry (actor %llu, seq %llu) "
                        "already exists", w->j->path, (unsigned long long)actor,
                        (unsigned long long)seq);
    if (rc)
        return rc;
    hyi_entry_encode(v.mv_data, actor, seq, ts, flags, path, (uint32_t)path_len,
                     payload, (uint32_t)payload_len);
    if (append)
        memcpy(last, kb, HYI_KEY_LEN);
    w->entries++;
    w->bytes += HYI_KEY_LEN + size;
    return 0;
}

int hyi_entries_put(hyi_wtxn *w, hyi_rec_iter next, void *it)
{
    MDB_cursor *c;
    unsigned char last[HYI_KEY_LEN];
    int rc = mdb_cursor_open(w->txn, w->j->db_journal, &c);
    if (rc)
        return rc;
    if ((rc = journal_last_key(c, last)) != 0)
        goto out;
    uint64_t now = 0; /* one clock read for all entries without a timestamp */
    hyi_journal_rec r;
    uint64_t *seq;
    while (next(it, &r, &seq)) {
        uint64_t ts = r.timestamp_ns;
        if (!ts)
            ts = now ? now : (now = hyi_wall_ns());
        if ((rc = hyi_seq_next(w, r.actor, seq)) != 0)
            goto out;
        rc = entry_put(w, c, last, r.actor, *seq, ts, r.flags, r.path, r.path_len, r.payload,
                       r.payload_len);
        if (rc)
            goto out;
    }
out:
    mdb_cursor_close(c);
    return rc;
}

int hyi_truncate_in(hyi_wtxn *w, uint64_t actor, uint64_t limit, uint64_t *removed)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, w->j->db_journal, &c);
    if (rc)
        return rc;
    unsigned char kb[HYI_KEY_LEN];
    hyi_key_encode(kb, actor, 0);
    MDB_val k = {sizeof kb, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        uint64_t a, s;
        if (hyi_key_decode(&k, &a, &s) != 0 || a != actor || s >= limit)
            break;
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        ++*removed;
        /* After a delete the cursor already sits on the next item; MDB_NEXT
         * returns it without stepping (LMDB's C_DEL rule). */
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
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

struct open_dbs_arg {
    MDB_dbi *journal, *snap;
};

static int open_dbs(hyi_wtxn *w, void *arg)
{
    struct open_dbs_arg *a = arg;
    int rc = mdb_dbi_open(w->txn, "journal", MDB_CREATE, a->journal);
    if (rc == 0)
        rc = mdb_dbi_open(w->txn, "snapshots", MDB_CREATE, a->snap);
    return rc;
}

static void free_journal(hyi_journal *j)
{
    if (j->env)
        mdb_env_close(j->env);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the flock */
    hyi_seqmap_free(&j->cache);
    hyi_seqmap_free(&j->overlay);
    pthread_mutex_destroy(&j->write_lock);
    pthread_rwlock_destroy(&j->map_lock);
    pthread_mutex_destroy(&j->cache_lock);
    pthread_mutex_destroy(&j->q_lock);
    pthread_cond_destroy(&j->q_work);
    pthread_cond_destroy(&j->q_room);
    pthread_cond_destroy(&j->q_done);
    pthread_mutex_destroy(&j->ring_lock);
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
    if ((rc = mdb_env_set_maxdbs(j->env, 4)) != 0 ||
        (rc = mdb_env_set_mapsize(j->env, j->cfg.map_size)) != 0 ||
        (j->cfg.max_readers && (rc = mdb_env_set_maxreaders(j->env, j->cfg.max_readers)) != 0))
        goto fail;
    if ((rc = mdb_env_open(j->env, path, flags, 0640)) != 0)
        goto fail;
    struct open_dbs_arg a = {&j->db_journal, &j->db_snap};
    if ((rc = hyi_env_write(j, open_dbs, &a, "open the databases")) != 0)
        goto fail;
    /* Opening is not a journal commit: keep the counters about entries. */
    atomic_store_explicit(&j->st_commits, 0, memory_order_relaxed); /* no reader yet */
    *out = j;
    return 0;
fail:
    rc = fail_path(path, rc, "open");
    free_journal(j);
    return rc;
}

void hyi_journal_close(hyi_journal *j)
{
    if (!j)
        return;
    hyi_writer_stop(j);
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
    MDB_envinfo info;
    MDB_stat st;
    pthread_rwlock_rdlock(&j->map_lock); /* me_mapsize changes only under wrlock */
    if (mdb_env_info(j->env, &info) == 0) {
        out->map_size = info.me_mapsize;
        if (mdb_env_stat(j->env, &st) == 0)
            out->map_used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    }
    pthread_rwlock_unlock(&j->map_lock);
    out->map_max = j->cfg.map_size_max;
    pthread_mutex_lock(&j->q_lock);
    out->pending = j->q_len;
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
