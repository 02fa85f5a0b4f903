/* Snapshots: the latest state of an actor and the sequence it covers, one per
 * actor, overwritten by each save. A save and the floor its retention raises
 * are one transaction, so a crash never leaves entries removed without the
 * snapshot that replaced them. */
#include <stdlib.h>
#include <string.h>

#include "journal_int.h"

static int save_one(hyi_wtxn *w, const hyi_snapshot_item *a)
{
    hyi_journal *j = w->j;
    hyi_head head;
    int rc = hyi_head_get(w, a->actor, &head);
    if (rc)
        return rc;
    uint64_t high = head.seq;
    if (a->seq > high)
        return hyi_fail(HY_EINVAL, "journal %s: snapshot of actor %llu at seq %llu is "
                        "past its highest sequence %llu", j->path,
                        (unsigned long long)a->actor, (unsigned long long)a->seq,
                        (unsigned long long)high);
    unsigned char ak[8];
    hyi_actor_key_encode(ak, a->actor);
    MDB_val k = {sizeof ak, ak}, v;
    /* An older snapshot must not replace a newer one: after truncation the
     * newer one may be what the floor was raised for. */
    rc = mdb_get(w->txn, j->db_snap, &k, &v);
    if (rc == 0) {
        uint64_t cur;
        const void *st;
        size_t n;
        const char *why;
        if (hyi_snap_decode(a->actor, &v, &cur, &st, &n, &why) == 0 && a->seq < cur)
            return hyi_fail(HY_EINVAL, "journal %s: snapshot of actor %llu at seq %llu "
                            "is older than the stored one (seq %llu)", j->path,
                            (unsigned long long)a->actor, (unsigned long long)a->seq,
                            (unsigned long long)cur);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    v = (MDB_val){hyi_snap_size(a->len), NULL};
    if ((rc = mdb_put(w->txn, j->db_snap, &k, &v, MDB_RESERVE)) != 0)
        return rc;
    hyi_snap_encode(v.mv_data, a->actor, a->seq, a->state, (uint32_t)a->len);
    hyi_env_mark_seen(j, a->actor); /* at seq 0 the actor may have no head */
    w->bytes += sizeof ak + v.mv_size;
    if (j->cfg.retention == HYI_RETAIN_TRUNCATE && a->seq > j->cfg.retain_entries) {
        /* Entries <= seq - retain_entries go: the floor moves in this
         * transaction (reads stop there at once) and the sweep deletes them
         * from the log later. The head keeps the sequence, so even the newest
         * entry may go. */
        uint64_t removed = 0;
        rc = hyi_floor_raise(w, a->actor, a->seq - j->cfg.retain_entries + 1, &removed);
    }
    return rc;
}

struct save_many_arg {
    hyi_snapshot_item *items;
    size_t n;
};

/* An item refused by its own checks (HY_EINVAL, before it wrote anything)
 * keeps its code and the others go on; any other failure undoes the whole
 * transaction, which hyi_env_write may run again after growing the map (the
 * refused items are refused again: they are skipped). */
static int save_many_op(hyi_wtxn *w, void *arg)
{
    struct save_many_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        if (a->items[i].rc)
            continue;
        int rc = save_one(w, &a->items[i]);
        if (rc != 0 && rc != HY_EINVAL)
            return rc;
        a->items[i].rc = rc;
    }
    return 0;
}

int hyi_snapshot_save_many(hyi_journal *j, hyi_snapshot_item *items, size_t n)
{
    if (!j || (n && !items))
        return hyi_fail(HY_EINVAL, "journal: NULL journal or items");
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) {
        hyi_snapshot_item *it = &items[i];
        it->rc = 0;
        if (it->len && !it->state)
            it->rc = hyi_fail(HY_EINVAL, "journal %s: snapshot of actor %llu has no state",
                              j->path, (unsigned long long)it->actor);
        else if (it->len > UINT32_MAX - HYI_SNAP_HDR)
            it->rc = hyi_fail(HY_EINVAL, "journal %s: snapshot of actor %llu is over 4 GiB",
                              j->path, (unsigned long long)it->actor);
        else
            valid++;
    }
    struct save_many_arg a = {items, n};
    const char *what = n == 1 ? "save a snapshot" : "save snapshots";
    int rc = valid ? hyi_env_write(j, save_many_op, &a, what) : 0;
    if (rc)
        for (size_t i = 0; i < n; i++)
            if (items[i].rc == 0)
                items[i].rc = rc;
    return rc;
}

int hyi_snapshot_save(hyi_journal *j, uint64_t actor, uint64_t seq, const void *state,
                      size_t len)
{
    if (!j)
        return hyi_fail(HY_EINVAL, "journal: NULL journal");
    hyi_snapshot_item it = {.actor = actor, .seq = seq, .state = state, .len = len};
    int rc = hyi_snapshot_save_many(j, &it, 1);
    return rc ? rc : it.rc;
}

int hyi_snapshot_load(hyi_journal *j, uint64_t actor, uint64_t *seq_out,
                      void **state_out, size_t *len_out)
{
    if (!j || !seq_out || !state_out || !len_out)
        return hyi_fail(HY_EINVAL, "journal: NULL journal or output");
    *seq_out = 0;
    *state_out = NULL;
    *len_out = 0;
    MDB_txn *txn;
    int rc = hyi_env_read_begin(j, &txn);
    if (rc)
        return rc;
    unsigned char ak[8];
    hyi_actor_key_encode(ak, actor);
    MDB_val k = {sizeof ak, ak}, v;
    rc = mdb_get(txn, j->db_snap, &k, &v);
    if (rc == MDB_NOTFOUND) {
        rc = hyi_fail(HY_ENOENT, "journal %s: actor %llu has no snapshot", j->path,
                      (unsigned long long)actor);
    } else if (rc) {
        rc = hyi_lmdb_fail(j, rc, "load a snapshot");
    } else {
        uint64_t seq;
        const void *state;
        size_t len;
        const char *why;
        if (hyi_snap_decode(actor, &v, &seq, &state, &len, &why) != 0) {
            rc = hyi_fail(HY_ECORRUPT, "journal %s: snapshot of actor %llu is corrupt: %s",
                          j->path, (unsigned long long)actor, why);
        } else {
            void *copy = NULL;
            if (len && !(copy = malloc(len))) {
                rc = hyi_fail(HY_ENOMEM, "journal %s: no memory for a %zu-byte snapshot",
                              j->path, len);
            } else {
                if (len)
                    memcpy(copy, state, len);
                *seq_out = seq;
                *state_out = copy;
                *len_out = len;
            }
        }
    }
    hyi_env_read_end(j, txn);
    return rc;
}
