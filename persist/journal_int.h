/* Internals shared by the persist/ files: the hyi_journal struct, the on-disk
 * formats (format.c), the actor -> head cache (seqmap.c) and the
 * write/read transaction helpers with map growth and error mapping (env.c).
 * Nothing outside persist/ includes this. */
#ifndef HY_JOURNAL_INT_H
#define HY_JOURNAL_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "journal.h"

/* ---------------------------------------------------------------- formats */

#define HYI_FORMAT 2            /* the layout (meta "format"); 1 was actor-keyed */
#define HYI_LOG_KEY_LEN 8       /* global sequence, BE */
#define HYI_ENTRY_VERSION 2
#define HYI_ENTRY_HDR 48        /* ver u8, hdrlen u8, flags u16, crc u32, ts u64,
                                   actor u64, seq u64, prev u64, path_len u32,
                                   payload_len u32 (little-endian) */
#define HYI_HEAD_LEN 16         /* heads value: seq u64, gseq u64 (LE) */
#define HYI_SNAP_VERSION 1
#define HYI_SNAP_HDR 24         /* ver u8, hdrlen u8, pad u16, crc u32, seq u64,
                                   state_len u32, pad u32 */

/* Where an entry sits: its log key (gseq), its actor and per-actor sequence,
 * and the log key of the actor's previous entry (0: none). */
typedef struct hyi_entry_ids {
    uint64_t gseq, actor, seq, prev;
} hyi_entry_ids;

void hyi_log_key_encode(unsigned char key[HYI_LOG_KEY_LEN], uint64_t gseq);
/* 0, or HY_ECORRUPT when the key is not 8 bytes. */
int hyi_log_key_decode(const MDB_val *k, uint64_t *gseq);
void hyi_actor_key_encode(unsigned char key[8], uint64_t actor);
/* An actor key (heads, floors, snapshots) back to its actor; HY_ECORRUPT if
 * it is not 8 bytes. */
int hyi_actor_key_decode(const MDB_val *k, uint64_t *actor);
void hyi_le64_put(unsigned char *p, uint64_t v);
uint64_t hyi_le64_get(const unsigned char *p);

/* Write the value of an entry into out (HYI_ENTRY_HDR + path_len + payload_len
 * bytes); the CRC covers the log key ids->gseq too. */
void hyi_entry_encode(void *out, const hyi_entry_ids *ids, uint64_t ts, uint16_t flags,
                      const void *path, uint32_t path_len, const void *payload,
                      uint32_t payload_len);
/* Check and decode a stored entry: 0, or a static reason string's pointer in
 * *why and -1. */
int hyi_entry_decode(const MDB_val *key, const MDB_val *val, hyi_journal_entry *e,
                     hyi_entry_ids *ids, const char **why);
/* Actor, sequence and previous entry's log key from the header without the
 * checksum (for reclamation, which only deletes, and for walking a chain whose
 * entries are checked in full when delivered): 0, or -1 when the header is
 * not one. */
int hyi_entry_peek(const MDB_val *val, uint64_t *actor, uint64_t *seq, uint64_t *prev);

size_t hyi_snap_size(size_t state_len);
void hyi_snap_encode(void *out, uint64_t actor, uint64_t seq, const void *state,
                     uint32_t len);
int hyi_snap_decode(uint64_t actor, const MDB_val *val, uint64_t *seq,
                    const void **state, size_t *len, const char **why);

uint64_t hyi_wall_ns(void);

/* ---------------------------------------------------------------- seqmap */

/* An actor's newest entry: its sequence and its log key. */
typedef struct hyi_head {
    uint64_t seq, gseq;
} hyi_head;

/* Open-addressing map actor -> head (linear probing, backward-shift delete).
 * With max set it is a cache: at max entries an insert evicts a clean entry
 * chosen by a clock hand (entries read since the hand last passed are spared);
 * dirty entries (not yet in the heads DB) are never evicted. Not thread-safe.
 *
 * An entry is dirty when its dirty_mark equals the map's epoch + 1, so making
 * every entry clean is one increment: a walk over a million actors' table at
 * each checkpoint cost as much as the checkpoint's own walk. */
typedef struct hyi_seqmap {
    struct hyi_seqslot {
        uint64_t actor;
        union {
            struct {
                uint64_t seq, gseq;
            };
            /* used == HYI_SLOT_LEASED (the cache only): the live owner's
             * lease holds this actor's head (see leases in env.c); the entry
             * is never evicted. In place of the head, so a slot stays 32
             * bytes, two to a cache line. */
            hyi_head_lease *lease;
        };
        uint32_t dirty_mark;
        uint8_t used, ref; /* used: 0 empty, 1 a head, HYI_SLOT_LEASED */
    } *slots;
    size_t cap;   /* power of two, or 0 */
    size_t len;
    size_t max;   /* 0: unbounded */
    size_t dirty; /* dirty entries */
    size_t hand;
    size_t evictions; /* since it was made */
    size_t leased;    /* entries held by a lease (hyi_seqmap_hold) */
    uint32_t epoch;   /* bumped by hyi_seqmap_mark_clean */
} hyi_seqmap;

static inline bool hyi_seqslot_dirty(const hyi_seqmap *m, const struct hyi_seqslot *s)
{
    return s->dirty_mark == m->epoch + 1;
}

#define HYI_SLOT_LEASED 2

static inline bool hyi_seqslot_leased(const struct hyi_seqslot *s)
{
    return s->used == HYI_SLOT_LEASED;
}

void hyi_seqmap_free(hyi_seqmap *m);
void hyi_seqmap_clear(hyi_seqmap *m);
/* true and *h when present and not leased (marks the entry recently used). */
bool hyi_seqmap_get(hyi_seqmap *m, uint64_t actor, hyi_head *h);
/* The actor's entry, or NULL. */
struct hyi_seqslot *hyi_seqmap_find(hyi_seqmap *m, uint64_t actor);
/* The actor's entry (inserted with h, clean, when absent) held by lease l
 * from now on (its head is then l's); HY_ENOMEM when it cannot grow. */
int hyi_seqmap_lease(hyi_seqmap *m, uint64_t actor, hyi_head h, hyi_head_lease *l);
/* Entry s held by lease l from now on; hyi_seqmap_unhold gives it head h
 * back and makes it evictable again. */
void hyi_seqmap_hold(hyi_seqmap *m, struct hyi_seqslot *s, hyi_head_lease *l);
void hyi_seqmap_unhold(hyi_seqmap *m, struct hyi_seqslot *s, hyi_head h);
/* Set actor's head when h is newer (higher seq) than the stored one, and mark
 * it dirty if dirty; HY_ENOMEM when it cannot grow. */
int hyi_seqmap_put(hyi_seqmap *m, uint64_t actor, hyi_head h, bool dirty);
/* Every entry is in the heads DB now. */
void hyi_seqmap_mark_clean(hyi_seqmap *m);
/* Start loading actor's home slot into the CPU cache (no effect otherwise). */
void hyi_seqmap_prefetch(const hyi_seqmap *m, uint64_t actor);

/* ---------------------------------------------------------------- the journal */

typedef struct hyi_pending hyi_pending;

struct hyi_journal {
    MDB_env *env;
    MDB_dbi db_log, db_heads, db_floors, db_snap, db_meta;
    char *path;
    /* The owner's lock: an exclusive flock on <path>/hypha.lock, held while
     * the journal is open (-1: none). */
    int lock_fd;
    hyi_journal_config cfg;
    size_t page_size;

    /* Serialises this process's write transactions, so the sequence cache and
     * the overlay below are only touched by one writer, and a transaction's
     * sequences are published to the cache before the next writer looks. */
    pthread_mutex_t write_lock;
    /* Read transactions hold it shared; map growth (mdb_env_set_mapsize needs
     * no live transaction in the process) holds it exclusive. Writer-preferring
     * so a stream of readers cannot starve growth. */
    pthread_rwlock_t map_lock;

    /* Committed heads (actor -> newest seq and its log key); guarded by
     * cache_lock (short holds). Bounded by cfg.cache_actors: clean entries
     * (equal to the heads DB) are evicted, dirty ones (newer than the heads
     * DB, committed in the log only) stay until the next checkpoint. Only
     * the writer (under write_lock) inserts, so nothing stale gets in. */
    pthread_mutex_t cache_lock;
    /* Set once at open, before any reader: every actor with history then
     * has its bit in `seen` (the journal was empty, or its heads and
     * snapshots were marked: mark_history). While it holds, an actor whose
     * bit is clear was never appended to and has no snapshot:
     * hyi_env_never_written. */
    bool heads_whole;
    /* Two bits per hash of an actor id, set (relaxed) before anything of that
     * actor can be read back: at open for each actor with history, then by
     * whoever holds write_lock, for each head it publishes and each snapshot
     * it saves. Never cleared, so a set bit only means "maybe". Read without a lock by senders activating an actor: the
     * activation happens after whatever made the actor's history (its
     * messages were delivered, or it was passivated) through the kernel's
     * locks and queues, which carries the bit with it. NULL: no filter (no
     * memory at open), so no short cut. */
    _Atomic uint64_t *seen;
    uint64_t seen_mask; /* number of bits - 1 (a power of two) */
    hyi_seqmap cache;
    /* Heads changed in the current write transaction; write_lock only.
     * Folded into cache on commit, dropped on abort. */
    hyi_seqmap overlay;
    /* Leased heads changed since the last checkpoint (write_lock only): one
     * entry per actor, the lease remembering where (dirty_at, and the epoch
     * in its mark), so the writer finds them without the cache and a
     * checkpoint writes them. dlog_epoch counts checkpoints (never 0); the
     * entries up to dlog_committed are committed (cache_lock, for stats). */
    struct hyi_seqslot *dlog;
    size_t dlog_len, dlog_cap, dlog_committed;
    uint32_t dlog_epoch;
    /* What the current write transaction changed in leases and the list,
     * undone if it fails (write_lock only). */
    struct hyi_lease_undo {
        hyi_head_lease *lease;
        uint64_t seq, gseq, entry_seq, entry_gseq;
        uint32_t dirty_at, mark;
        bool in_place; /* the list's entry at dirty_at was overwritten */
    } *undo;
    size_t undo_len, undo_cap, dlog_len_at_begin;

    /* write_lock only. The log's last key; the log key up to which the heads
     * DB is complete (meta "heads_through"): entries past it are replayed at
     * open. */
    uint64_t gseq_last, heads_through;
    /* A dirty head could not be kept after its commit (no memory): writes and
     * head reads refuse until reopen, which rebuilds heads from the log.
     * Written under write_lock and cache_lock; read under either. */
    bool heads_lost;
    /* Reclamation (write_lock only): the sweep visits the log from sweep_at
     * on, deleting entries under their actor's floor; debt counts entries put
     * under a floor and not yet deleted; full asks for one whole pass (after
     * open, when the debt is unknown). */
    struct hyi_sweep {
        uint64_t at, debt, deleted_in_pass;
        bool full;
    } sweep;

    /* Group-commit queue; q_lock guards all of these. */
    pthread_mutex_t q_lock;
    pthread_cond_t q_work;   /* writer waits for entries or stop */
    pthread_cond_t q_room;   /* submitters wait for room */
    pthread_cond_t q_done;   /* flush waits for completions */
    /* The queue: an array of nodes in submission order (so the writer knows
     * every address at once and can fetch ahead); the writer swaps it for
     * the spare (empty) one and gives it back as the next spare. */
    hyi_pending **q_vec, **spare_vec;
    size_t q_len, q_cap, spare_cap;
    /* Where small nodes are carved from (commit.c, RING_BYTES): taken at
     * ring_head, given back up to ring_tail (positions count bytes ever). */
    unsigned char *node_ring;
    uint64_t ring_head, ring_tail;
    bool ring_failed;
    uint64_t submitted, completed;
    bool writer_started, stopping, writer_waiting, writer_done;
    unsigned room_waiters, flush_waiters;
    pthread_t writer;
    uint64_t writer_cpu_final; /* the writer's CPU time once writer_done */
    /* The writer's own: a transaction's completions for a done_many callback
     * (grown as needed; freed at close). */
    hyi_journal_done_item *done_items;
    size_t done_cap;

    /* Stats: plain counters with relaxed atomics (nothing is ordered by them). */
    _Atomic uint64_t st_commits, st_entries, st_bytes, st_failed, st_grows,
        st_writer_commits, st_batch_max, st_recover_reads;
    pthread_mutex_t ring_lock;
    uint32_t ring[HYI_JOURNAL_BATCH_RING];
    size_t ring_n;
};

/* ---------------------------------------------------------------- env.c */

/* Map an LMDB/errno code to an hy_err and set the detail:
 * "journal <path>: <what>: <mdb_strerror(rc)>". Codes already in the hy_err
 * range (-1..-999) are passed through unchanged (their detail is already set). */
int hyi_lmdb_fail(const hyi_journal *j, int rc, const char *what);

/* One write transaction's context for a write op. */
typedef struct hyi_wtxn {
    hyi_journal *j;
    MDB_txn *txn;
    size_t entries, bytes;   /* the op adds what it wrote, for stats */
    uint64_t gseq;           /* the log's last key as of this transaction */
    bool checkpointed;       /* every head went to the heads DB */
} hyi_wtxn;

/* A write op: returns 0, an LMDB/errno code (map-full triggers growth and a
 * retry of the whole op), or a negative hy_err with its detail set. It must be
 * safe to run again from the start after an abort. */
typedef int (*hyi_write_op)(hyi_wtxn *w, void *arg);

/* Run op in a write transaction under write_lock, growing the map and retrying
 * on MDB_MAP_FULL up to map_size_max; commit; publish the overlay to the cache.
 * Returns 0 or an hy_err with the detail set (what names the operation). */
int hyi_env_write(hyi_journal *j, hyi_write_op op, void *arg, const char *what);

/* Begin/end a read transaction (holds map_lock shared). */
int hyi_env_read_begin(hyi_journal *j, MDB_txn **txn);
void hyi_env_read_end(hyi_journal *j, MDB_txn *txn);

/* Within a write op: the actor's head (overlay, a live owner's lease, cache,
 * then the heads DB; {0, 0} for an actor never written). */
int hyi_head_get(hyi_wtxn *w, uint64_t actor, hyi_head *h);
/* The actor's floor: its entries below it are logically removed (1 when none
 * were). LMDB code or 0. */
int hyi_floor_get(hyi_journal *j, MDB_txn *txn, uint64_t actor, uint64_t *floor);
/* Within a write op: raise the actor's floor to at most its head + 1; *removed
 * gets how many entries that removes (they are deleted later by the sweep). */
int hyi_floor_raise(hyi_wtxn *w, uint64_t actor, uint64_t floor, uint64_t *removed);
/* A read transaction and the actor's committed head as of it: the cache is
 * read under cache_lock while the transaction begins, so everything the cache
 * says is visible in it; the heads DB is consulted too and the newer wins. */
int hyi_env_read_head(hyi_journal *j, uint64_t actor, MDB_txn **txn, hyi_head *h);
/* True when the actor surely has no committed entry and no snapshot (see
 * heads_whole and seen), without a read transaction or a lock; false when it
 * may have. */
bool hyi_env_never_written(hyi_journal *j, uint64_t actor);
/* The actor may have history from now on (see seen); under write_lock, or
 * at open. */
void hyi_env_mark_seen(hyi_journal *j, uint64_t actor);

/* Yields the next record to write (false when done) and where its sequence
 * goes. */
typedef bool (*hyi_rec_iter)(void *it, hyi_journal_rec *rec, uint64_t **seq);
/* Starts an iterator over from its first record. */
typedef void (*hyi_rec_restart)(void *it);
/* Within a write op: every record the iterator yields, each under its actor's
 * next sequence, appended to the log (MDB_APPEND) under the next global
 * sequence; then a bounded step of reclamation, and a checkpoint of the heads
 * when the cache's dirty entries or the log since the last one demand it. A
 * record without a timestamp gets the write time. LMDB or hypha code. The
 * iterator is restarted here (it is walked twice: see prefetch_heads), so an
 * op that runs again after the map grew needs nothing more. */
int hyi_entries_put(hyi_wtxn *w, hyi_rec_iter next, hyi_rec_restart restart, void *it);

/* Validate a record's lengths (HY_EINVAL with detail). */
int hyi_rec_check(const hyi_journal *j, const hyi_journal_rec *rec);

/* Stop the writer (flush first) and free the queue; commit.c, called by close. */
void hyi_writer_stop(hyi_journal *j);

/* CPU time the writer thread has used (its final figure once it stopped);
 * under q_lock. */
uint64_t hyi_writer_cpu_ns(hyi_journal *j);

#endif
