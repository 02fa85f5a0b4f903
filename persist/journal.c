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

static void append_restart(void *it)
{
    struct append_it *a = it;
    a->i = 0;
}

static int append_op(hyi_wtxn *w, void *arg)
{
    return hyi_entries_put(w, append_next, append_restart, arg);
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

/* An actor's entries are found from its head backwards: each entry names the
 * log key of the actor's previous one. Delivery is forwards, so a read walks
 * the chain twice: once to check it and note every SEG-th log key, then
 * segment by segment (oldest first), each walked back into a SEG-entry buffer
 * and delivered in order. Memory stays at SEG entries plus one key per SEG,
 * however long the actor's history. */
#define SEG 1024

struct reader {
    hyi_journal *j;
    MDB_txn *txn;
    uint64_t actor;
    hyi_journal_read_fn fn;
    void *user;
    uint64_t last;      /* last delivered sequence */
    int stopped;        /* fn's non-zero return */
    MDB_cursor *c;      /* on the log, at log key at (when at != 0) */
    uint64_t at;
};

/* How far a cursor steps rather than searching the tree again: an actor's
 * entries often sit close together in the log (one busy actor, few actors),
 * and a step to a neighbour costs far less than a search from the root. */
#define NEAR 16

/* The log entry at key g into *v, through the reader's cursor: stepping when g
 * is near where the cursor is, searching otherwise. 0, MDB_NOTFOUND, or an
 * LMDB code. */
static int log_seek(struct reader *r, uint64_t g, MDB_val *v)
{
    MDB_val k;
    int rc;
    if (!g)
        return MDB_NOTFOUND;
    if (r->at && g != r->at && (g > r->at ? g - r->at : r->at - g) <= NEAR) {
        MDB_cursor_op op = g > r->at ? MDB_NEXT : MDB_PREV;
        for (;;) {
            if ((rc = mdb_cursor_get(r->c, &k, v, op)) != 0 ||
                (rc = hyi_log_key_decode(&k, &r->at)) != 0) {
                r->at = 0;
                break; /* an odd key: search from the root instead */
            }
            if (r->at == g)
                return 0;
            if (op == MDB_NEXT ? r->at > g : r->at < g)
                return MDB_NOTFOUND; /* stepped over it: not there */
        }
    }
    unsigned char kb[HYI_LOG_KEY_LEN];
    hyi_log_key_encode(kb, g);
    k = (MDB_val){sizeof kb, kb};
    if (r->at == g)
        return mdb_cursor_get(r->c, &k, v, MDB_GET_CURRENT);
    rc = mdb_cursor_get(r->c, &k, v, MDB_SET_KEY);
    r->at = rc == 0 ? g : 0;
    return rc;
}

/* The entry at log key g, expected to be (actor, seq): 0, MDB_NOTFOUND when
 * it is missing, or -1 with *why when it is corrupt or not the one expected. */
static int chain_get(struct reader *r, uint64_t g, uint64_t seq, hyi_journal_entry *e,
                     hyi_entry_ids *ids, const char **why)
{
    unsigned char kb[HYI_LOG_KEY_LEN];
    hyi_log_key_encode(kb, g);
    MDB_val k = {sizeof kb, kb}, v;
    int rc = log_seek(r, g, &v);
    if (rc)
        return rc;
    if (hyi_entry_decode(&k, &v, e, ids, why) != 0)
        return -1;
    if (ids->actor != r->actor || ids->seq != seq)
        return *why = "the previous-entry link leads to another entry", -1;
    return 0;
}

/* The link from the entry at log key g, expected to be (actor, seq), to the
 * previous one, without the checksum (checked when the entry is delivered): a
 * link leads to the one entry that carries (actor, seq - 1), or the walk
 * stops. 0, MDB_NOTFOUND when missing, or -1 with *why. */
static int chain_link(struct reader *r, uint64_t g, uint64_t seq, uint64_t *prev,
                      const char **why)
{
    MDB_val v;
    uint64_t actor, s;
    int rc = log_seek(r, g, &v);
    if (rc)
        return rc;
    if (hyi_entry_peek(&v, &actor, &s, prev) != 0)
        return *why = "bad header", -1;
    if (actor != r->actor || s != seq)
        return *why = "the previous-entry link leads to another entry", -1;
    return 0;
}

static int deliver(struct reader *r, const hyi_journal_entry *e)
{
    r->last = e->seq;
    int x = r->fn(r->user, e);
    if (x)
        r->stopped = x;
    return x;
}

/* The chain is broken at seq `broken` (log key g): deliver the entries before
 * it by scanning the log in order (slow, only on corruption), then report. */
static int deliver_by_scan(struct reader *r, uint64_t from, uint64_t broken, uint64_t g,
                           int why_rc, const char *why)
{
    hyi_journal *j = r->j;
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, j->db_log, &c);
    if (rc)
        return hyi_lmdb_fail(j, rc, "open a log cursor");
    MDB_val k, v;
    uint64_t want = from;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && want < broken;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        hyi_journal_entry e;
        hyi_entry_ids ids;
        const char *w;
        if (hyi_entry_decode(&k, &v, &e, &ids, &w) != 0 || ids.actor != r->actor ||
            ids.seq < want)
            continue; /* another actor's entry, or one we cannot read */
        if (ids.seq != want)
            break; /* a gap before the break: reported as the break below */
        if (deliver(r, &e)) {
            mdb_cursor_close(c);
            return r->stopped < 0 ? r->stopped : 0;
        }
        want++;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return hyi_lmdb_fail(j, rc, "scan the log");
    if (want < broken || why_rc == MDB_NOTFOUND)
        return hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) is missing "
                        "(log key %llu); last good seq %llu", j->path,
                        (unsigned long long)r->actor, (unsigned long long)want,
                        (unsigned long long)(want < broken ? 0 : g),
                        (unsigned long long)(want - 1));
    return hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) at log key %llu "
                    "is corrupt: %s; last good seq %llu", j->path,
                    (unsigned long long)r->actor, (unsigned long long)broken,
                    (unsigned long long)g, why, (unsigned long long)(broken - 1));
}

/* The actor's entries fill at least half of the log between its first wanted
 * entry (log key first_g) and its head (one busy actor, or few): one forward
 * cursor pass over that stretch, delivering this actor's entries (each checked
 * in full), costs less than walking the links again. The links were walked in
 * pass 1, so the entries found must be from..head.seq in order; a gap or a
 * bad entry is reported where it is met. */
static int deliver_dense(struct reader *r, uint64_t first_g, hyi_head head, uint64_t from)
{
    hyi_journal *j = r->j;
    MDB_val k, v;
    uint64_t want = from;
    int rc = log_seek(r, first_g, &v);
    while (rc == 0) {
        uint64_t actor, seq, prev, g = r->at;
        if (hyi_entry_peek(&v, &actor, &seq, &prev) == 0 && actor == r->actor) {
            hyi_journal_entry e;
            hyi_entry_ids ids;
            const char *why;
            unsigned char kb[HYI_LOG_KEY_LEN];
            hyi_log_key_encode(kb, g);
            MDB_val key = {sizeof kb, kb};
            if (seq != want)
                break;
            if (hyi_entry_decode(&key, &v, &e, &ids, &why) != 0)
                return hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) at log "
                                "key %llu is corrupt: %s; last good seq %llu", j->path,
                                (unsigned long long)r->actor, (unsigned long long)want,
                                (unsigned long long)g, why, (unsigned long long)(want - 1));
            if (deliver(r, &e))
                return r->stopped < 0 ? r->stopped : 0;
            if (++want > head.seq)
                return 0;
        }
        if ((rc = mdb_cursor_get(r->c, &k, &v, MDB_NEXT)) == 0 &&
            hyi_log_key_decode(&k, &r->at) != 0)
            rc = MDB_NOTFOUND;
    }
    if (rc && rc != MDB_NOTFOUND)
        return hyi_lmdb_fail(j, rc, "read the log");
    return hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) is missing; "
                    "last good seq %llu", j->path, (unsigned long long)r->actor,
                    (unsigned long long)want, (unsigned long long)(want - 1));
}

/* Deliver the actor's entries from seq `from` to head.seq, in order. */
static int read_chain(struct reader *r, hyi_head head, uint64_t from)
{
    hyi_journal *j = r->j;
    uint64_t n = head.seq - from + 1, nseg = (n + SEG - 1) / SEG;
    uint64_t *seg_end = malloc(nseg * sizeof *seg_end);
    uint64_t *keys = malloc((n < SEG ? n : SEG) * sizeof *keys);
    int rc = mdb_cursor_open(r->txn, j->db_log, &r->c);
    if (rc) {
        r->c = NULL;
        rc = hyi_lmdb_fail(j, rc, "open a log cursor");
        goto out;
    }
    r->at = 0;
    if (!seg_end || !keys) {
        rc = hyi_fail(HY_ENOMEM, "journal %s: no memory to read actor %llu", j->path,
                      (unsigned long long)r->actor);
        goto out;
    }
    /* Pass 1: walk the whole chain's links, noting the newest log key of
     * each segment [from + i*SEG, from + (i+1)*SEG). A broken link: the
     * entries before it are found by a scan. */
    uint64_t g = head.gseq;
    for (uint64_t seq = head.seq; seq >= from; seq--) {
        const char *why = "";
        if (seq == head.seq || (seq - from + 1) % SEG == 0)
            seg_end[(seq - from) / SEG] = g;
        if (seq - from < SEG)
            keys[seq - from] = g; /* the oldest segment: pass 2 needs no walk */
        uint64_t prev;
        int x = chain_link(r, g, seq, &prev, &why);
        if (x == -1 || x == MDB_NOTFOUND) {
            rc = deliver_by_scan(r, from, seq, g, x, why);
            goto out;
        }
        if (x) {
            rc = hyi_lmdb_fail(j, x, "read the log");
            goto out;
        }
        g = prev;
    }
    if (nseg > 1 && head.gseq - keys[0] < 2 * n) {
        rc = deliver_dense(r, keys[0], head, from);
        goto out;
    }
    /* Pass 2: each segment's log keys into keys (walking back from its newest
     * entry), then its entries, each checked in full (checksum) right before
     * it is delivered: the first bad one stops the read there. The links were
     * walked in pass 1, in this same transaction; a failure is still handled,
     * never assumed away. */
    for (uint64_t s = 0; s < nseg; s++) {
        uint64_t first = from + s * SEG, last = first + SEG - 1;
        if (last > head.seq)
            last = head.seq;
        g = seg_end[s];
        for (uint64_t seq = last; s > 0 && seq >= first; seq--) {
            const char *why = "";
            uint64_t prev;
            keys[seq - first] = g;
            int x = chain_link(r, g, seq, &prev, &why);
            if (x) {
                /* Earlier segments are delivered: scan from this one's start. */
                rc = x == -1 || x == MDB_NOTFOUND ? deliver_by_scan(r, first, seq, g, x, why)
                                                  : hyi_lmdb_fail(j, x, "read the log");
                goto out;
            }
            g = prev;
        }
        for (uint64_t seq = first; seq <= last; seq++) {
            hyi_journal_entry e;
            hyi_entry_ids ids;
            const char *why = "";
            int x = chain_get(r, keys[seq - first], seq, &e, &ids, &why);
            if (x) {
                rc = x == -1 || x == MDB_NOTFOUND
                         ? deliver_by_scan(r, seq, seq, keys[seq - first], x, why)
                         : hyi_lmdb_fail(j, x, "read the log");
                goto out;
            }
            if (deliver(r, &e)) {
                rc = r->stopped < 0 ? r->stopped : 0;
                goto out;
            }
        }
    }
out:
    if (r->c)
        mdb_cursor_close(r->c);
    r->c = NULL;
    free(seg_end);
    free(keys);
    return rc;
}

/* Entries of actor from from_seq on, inside txn, given its head. When
 * expect_first is non-zero the first entry must carry that sequence (recovery
 * after a snapshot). */
static int read_in(struct reader *r, hyi_head head, uint64_t from_seq, uint64_t expect_first)
{
    /* Never appended to: nothing to read whatever the floor, so no lookup of
     * it (every first activation of a keyed actor comes here). */
    if (head.seq == 0)
        return 0;
    uint64_t floor;
    int rc = hyi_floor_get(r->j, r->txn, r->actor, &floor);
    if (rc)
        return hyi_lmdb_fail(r->j, rc, "read an actor's floor");
    uint64_t from = from_seq > floor ? from_seq : floor;
    if (from == 0)
        from = 1;
    if (head.seq < from)
        return 0;
    if (expect_first && from > expect_first)
        return hyi_fail(HY_ECORRUPT, "journal %s: entry (actor %llu, seq %llu) is missing "
                        "(removed up to seq %llu); last good seq %llu", r->j->path,
                        (unsigned long long)r->actor, (unsigned long long)expect_first,
                        (unsigned long long)(floor - 1),
                        (unsigned long long)(expect_first - 1));
    return read_chain(r, head, from);
}

int hyi_journal_read_from(hyi_journal *j, uint64_t actor, uint64_t from_seq,
                          hyi_journal_read_fn fn, void *user, uint64_t *last_seq_out)
{
    if (last_seq_out)
        *last_seq_out = 0;
    if (!j || !fn)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or callback");
    struct reader r = {.j = j, .actor = actor, .fn = fn, .user = user};
    hyi_head head;
    int rc = hyi_env_read_head(j, actor, &r.txn, &head);
    if (rc)
        return rc;
    rc = read_in(&r, head, from_seq, 0);
    hyi_env_read_end(j, r.txn);
    if (last_seq_out)
        *last_seq_out = r.last;
    return rc;
}

int hyi_journal_highest(hyi_journal *j, uint64_t actor, uint64_t *seq_out)
{
    if (!j || !seq_out)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or output");
    MDB_txn *txn;
    hyi_head head;
    int rc = hyi_env_read_head(j, actor, &txn, &head);
    if (rc)
        return rc;
    hyi_env_read_end(j, txn);
    *seq_out = head.seq;
    return 0;
}

/* ---------------------------------------------------------------- truncation */

struct trunc_arg {
    uint64_t actor, seq, removed;
};

static int trunc_op(hyi_wtxn *w, void *arg)
{
    struct trunc_arg *a = arg;
    hyi_head h;
    int rc = hyi_head_get(w, a->actor, &h);
    if (rc)
        return rc;
    /* Keep the newest entry, as callers of this API expect; the floor is
     * raised here and the sweep deletes the entries under it later. */
    uint64_t limit = a->seq < h.seq ? a->seq : h.seq;
    return hyi_floor_raise(w, a->actor, limit, &a->removed);
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

bool hyi_journal_surely_new(hyi_journal *j, uint64_t actor)
{
    return j && hyi_env_never_written(j, actor);
}

int hyi_journal_recover(hyi_journal *j, uint64_t actor, hyi_snapshot_fn on_snapshot,
                        hyi_journal_read_fn on_entry, void *user,
                        uint64_t *last_seq_out)
{
    if (last_seq_out)
        *last_seq_out = 0;
    if (!j || !on_entry)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or entry callback");
    /* A new actor (the first activation of a keyed actor, most often) needs
     * no read transaction when the journal can tell it has no history. */
    if (hyi_journal_surely_new(j, actor))
        return 0;
    /* relaxed: a statistic */
    atomic_fetch_add_explicit(&j->st_recover_reads, 1, memory_order_relaxed);
    struct reader r = {.j = j, .actor = actor, .fn = on_entry, .user = user};
    hyi_head head;
    int rc = hyi_env_read_head(j, actor, &r.txn, &head);
    if (rc)
        return rc;
    uint64_t snap_seq = 0, last = 0;
    unsigned char ak[8];
    hyi_actor_key_encode(ak, actor);
    MDB_val sk = {sizeof ak, ak}, sv;
    rc = mdb_get(r.txn, j->db_snap, &sk, &sv);
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
    rc = read_in(&r, head, snap_seq + 1, snap_seq ? snap_seq + 1 : 0);
    if (r.last)
        last = r.last;
out:
    hyi_env_read_end(j, r.txn);
    if (last_seq_out)
        *last_seq_out = last;
    return rc;
}
