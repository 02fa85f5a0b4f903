/* Journal entries: synchronous appends, reading an actor's entries in order,
 * its highest sequence, truncation, and recovery (snapshot + entries after it).
 *
 * Reads run in one read transaction and hand the caller pointers into LMDB's
 * map, so replay copies nothing. Every value is checked (header, lengths,
 * checksum) before the callback sees it, and sequences must follow each other:
 * the first bad or missing entry stops the read with HY_ECORRUPT naming its key,
 * after the callback has seen every good entry before it. */
#include <stdlib.h>
#include <string.h>

#include "journal_int.h"

/* ---------------------------------------------------------------- appends */

struct append_it {
    const hyi_journal_rec *recs;
    size_t n, i;
    uint64_t *seqs;   /* may be NULL: then scratch */
    uint64_t scratch;
};

static bool append_next(void *p, hyi_journal_rec *rec, uint64_t **seq)
{
    struct append_it *a = p;
    if (a->i == a->n)
        return false;
    *rec = a->recs[a->i];
    *seq = a->seqs ? &a->seqs[a->i] : &a->scratch;
    a->i++;
    return true;
}

static int append_op(hyi_wtxn *w, void *arg)
{
    struct append_it *a = arg;
    a->i = 0; /* an op runs again after the map grows */
    return hyi_entries_put(w, append_next, a);
}

int hyi_journal_append_many(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                            uint64_t *seqs_out)
{
    if (!j || (n && !recs))
        return hyi_fail(HY_EINVAL, "journal: NULL journal or records");
    for (size_t i = 0; i < n; i++) {
        int rc = hyi_rec_check(j, &recs[i]);
        if (rc)
            return rc;
    }
    if (n == 0)
        return 0;
    struct append_it a = {.recs = recs, .n = n, .seqs = seqs_out};
    return hyi_env_write(j, append_op, &a, "append");
}

int hyi_journal_append(hyi_journal *j, const hyi_journal_rec *rec, uint64_t *seq_out)
{
    return hyi_journal_append_many(j, rec, rec ? 1 : 0, seq_out);
}

/* ---------------------------------------------------------------- reads */

/* Entries of actor from from_seq on, inside txn. When expect_first is non-zero
 * the first entry must carry that sequence (recovery after a snapshot). */
static int read_in(hyi_journal *j, MDB_txn *txn, uint64_t actor, uint64_t from_seq,
                   uint64_t expect_first, hyi_journal_read_fn fn, void *user,
                   uint64_t *last_seq)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, j->db_journal, &c);
    if (rc)
        return hyi_lmdb_fail(j, rc, "open a journal cursor");
    unsigned char kb[HYI_KEY_LEN];
    hyi_key_encode(kb, actor, from_seq);
    MDB_val k = {sizeof kb, kb}, v;
    uint64_t prev = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        hyi_journal_entry e;
        const char *why;
        uint64_t a, s;
        if (hyi_key_decode(&k, &a, &s) == 0 && a != actor) {
            rc = MDB_NOTFOUND; /* past this actor's entries */
            break;
        }
        if (hyi_entry_decode(&k, &v, &e, &why) != 0) {
            rc = hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) is "
                          "corrupt: %s; last good seq %llu", j->path,
                          (unsigned long long)actor,
                          (unsigned long long)(k.mv_size == HYI_KEY_LEN ? s : prev + 1),
                          why, (unsigned long long)prev);
            break;
        }
        uint64_t want = prev ? prev + 1 : expect_first;
        if (want && e.seq != want) {
            rc = hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) is "
                          "missing (next found: seq %llu); last good seq %llu",
                          j->path, (unsigned long long)actor, (unsigned long long)want,
                          (unsigned long long)e.seq, (unsigned long long)prev);
            break;
        }
        prev = e.seq;
        *last_seq = e.seq;
        int r = fn(user, &e);
        if (r) {
            rc = r < 0 ? r : MDB_NOTFOUND;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return 0;
    return hyi_lmdb_fail(j, rc, "read the journal");
}

int hyi_journal_read_from(hyi_journal *j, uint64_t actor, uint64_t from_seq,
                          hyi_journal_read_fn fn, void *user, uint64_t *last_seq_out)
{
    uint64_t last = 0;
    if (last_seq_out)
        *last_seq_out = 0;
    if (!j || !fn)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or callback");
    MDB_txn *txn;
    int rc = hyi_env_read_begin(j, &txn);
    if (rc)
        return rc;
    rc = read_in(j, txn, actor, from_seq, 0, fn, user, &last);
    hyi_env_read_end(j, txn);
    if (last_seq_out)
        *last_seq_out = last;
    return rc;
}

int hyi_journal_highest(hyi_journal *j, uint64_t actor, uint64_t *seq_out)
{
    if (!j || !seq_out)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or output");
    pthread_mutex_lock(&j->cache_lock);
    bool hit = hyi_seqmap_get(&j->cache, actor, seq_out);
    pthread_mutex_unlock(&j->cache_lock);
    if (hit)
        return 0;
    MDB_txn *txn;
    int rc = hyi_env_read_begin(j, &txn);
    if (rc)
        return rc;
    rc = hyi_seq_load(j, txn, actor, seq_out);
    hyi_env_read_end(j, txn);
    if (rc == 0 && *seq_out) {
        /* put_max: a writer may have committed a higher one meanwhile. Without
         * memory the actor is simply loaded again next time. */
        pthread_mutex_lock(&j->cache_lock);
        (void)hyi_seqmap_put_max(&j->cache, actor, *seq_out);
        pthread_mutex_unlock(&j->cache_lock);
    }
    return rc;
}

/* ---------------------------------------------------------------- truncation */

struct trunc_arg {
    uint64_t actor, seq, removed;
};

static int trunc_op(hyi_wtxn *w, void *arg)
{
    struct trunc_arg *a = arg;
    uint64_t high;
    a->removed = 0;
    int rc = hyi_seq_load(w->j, w->txn, a->actor, &high);
    if (rc)
        return rc;
    /* Keep the newest entry: with no snapshot it is all that records the
     * actor's sequence across a restart. */
    uint64_t limit = a->seq < high ? a->seq : high;
    return hyi_truncate_in(w, a->actor, limit, &a->removed);
}

int hyi_journal_truncate_before(hyi_journal *j, uint64_t actor, uint64_t seq,
                                uint64_t *removed_out)
{
    if (removed_out)
        *removed_out = 0;
    if (!j)
        return hyi_fail(HY_EINVAL, "journal: NULL journal");
    struct trunc_arg a = {actor, seq, 0};
    int rc = hyi_env_write(j, trunc_op, &a, "truncate");
    if (rc == 0 && removed_out)
        *removed_out = a.removed;
    return rc;
}

/* ---------------------------------------------------------------- recovery */

int hyi_journal_recover(hyi_journal *j, uint64_t actor, hyi_snapshot_fn on_snapshot,
                        hyi_journal_read_fn on_entry, void *user,
                        uint64_t *last_seq_out)
{
    if (last_seq_out)
        *last_seq_out = 0;
    if (!j || !on_entry)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or entry callback");
    MDB_txn *txn;
    int rc = hyi_env_read_begin(j, &txn);
    if (rc)
        return rc;
    uint64_t snap_seq = 0, last = 0;
    unsigned char ak[8];
    hyi_actor_key_encode(ak, actor);
    MDB_val sk = {sizeof ak, ak}, sv;
    rc = mdb_get(txn, j->db_snap, &sk, &sv);
    if (rc == 0) {
        const void *state;
        size_t len;
        const char *why;
        if (hyi_snap_decode(actor, &sv, &snap_seq, &state, &len, &why) != 0) {
            rc = hyi_fail(HY_ECORRUPT, "journal %s: snapshot of actor %llu is corrupt: %s",
                          j->path, (unsigned long long)actor, why);
            goto out;
        }
        last = snap_seq;
        if (on_snapshot && (rc = on_snapshot(user, actor, snap_seq, state, len)) != 0) {
            rc = rc < 0 ? rc : 0;
            goto out;
        }
    } else if (rc != MDB_NOTFOUND) {
        rc = hyi_lmdb_fail(j, rc, "read a snapshot");
        goto out;
    }
    /* After a snapshot the next entry, if any, must be snap_seq + 1: the
     * journal only ever loses a prefix, so a later first entry means a loss. */
    uint64_t got = 0;
    rc = read_in(j, txn, actor, snap_seq + 1, snap_seq ? snap_seq + 1 : 0, on_entry,
                 user, &got);
    if (got)
        last = got;
out:
    hyi_env_read_end(j, txn);
    if (last_seq_out)
        *last_seq_out = last;
    return rc;
}
