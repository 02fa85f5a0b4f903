/* Internals shared by the persist/ files: the hyi_journal struct, the on-disk
 * formats (format.c), the actor -> highest-sequence table (seqmap.c) and the
 * write/read transaction helpers with map growth and error mapping (env.c).
 * Nothing outside persist/ includes this. */
#ifndef HY_JOURNAL_INT_H
#define HY_JOURNAL_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "journal.h"

/* ---------------------------------------------------------------- formats */

#define HYI_KEY_LEN 16          /* actor BE ‖ seq BE */
#define HYI_ENTRY_VERSION 1
#define HYI_ENTRY_HDR 24        /* ver u8, hdrlen u8, flags u16, crc u32, ts u64,
                                   path_len u32, payload_len u32 (little-endian) */
#define HYI_SNAP_VERSION 1
#define HYI_SNAP_HDR 24         /* ver u8, hdrlen u8, pad u16, crc u32, seq u64,
                                   state_len u32, pad u32 */

void hyi_key_encode(unsigned char key[HYI_KEY_LEN], uint64_t actor, uint64_t seq);
/* 0, or HY_ECORRUPT when the key is not 16 bytes. */
int hyi_key_decode(const MDB_val *k, uint64_t *actor, uint64_t *seq);
void hyi_actor_key_encode(unsigned char key[8], uint64_t actor);

/* Write the value for rec under key (actor, seq) into out (HYI_ENTRY_HDR +
 * path_len + payload_len bytes). */
void hyi_entry_encode(void *out, uint64_t actor, uint64_t seq, uint64_t ts,
                      uint16_t flags, const void *path, uint32_t path_len,
                      const void *payload, uint32_t payload_len);
/* Check and decode a stored entry: 0, or a static reason string's pointer in
 * *why and -1. e->actor/seq are taken from the key. */
int hyi_entry_decode(const MDB_val *key, const MDB_val *val, hyi_journal_entry *e,
                     const char **why);

size_t hyi_snap_size(size_t state_len);
void hyi_snap_encode(void *out, uint64_t actor, uint64_t seq, const void *state,
                     uint32_t len);
int hyi_snap_decode(uint64_t actor, const MDB_val *val, uint64_t *seq,
                    const void **state, size_t *len, const char **why);

uint64_t hyi_wall_ns(void);

/* ---------------------------------------------------------------- seqmap */

/* Open-addressing map actor -> highest sequence. Not thread-safe by itself. */
typedef struct hyi_seqmap {
    struct hyi_seqslot { uint64_t actor, seq; uint8_t used; } *slots;
    size_t cap;  /* power of two, or 0 */
    size_t len;
} hyi_seqmap;

void hyi_seqmap_free(hyi_seqmap *m);
void hyi_seqmap_clear(hyi_seqmap *m);
/* true and *seq when present. */
bool hyi_seqmap_get(const hyi_seqmap *m, uint64_t actor, uint64_t *seq);
/* Set actor's value to max(current, seq); HY_ENOMEM when it cannot grow. */
int hyi_seqmap_put_max(hyi_seqmap *m, uint64_t actor, uint64_t seq);

/* ---------------------------------------------------------------- the journal */

typedef struct hyi_pending hyi_pending;

struct hyi_journal {
    MDB_env *env;
    MDB_dbi db_journal, db_snap;
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

    /* Committed highest sequence per actor; guarded by cache_lock (short holds),
     * updated with max() so a reader's late insert cannot move it backwards. */
    pthread_mutex_t cache_lock;
    hyi_seqmap cache;
    /* Sequences assigned in the current write transaction; write_lock only.
     * Folded into cache on commit, dropped on abort. */
    hyi_seqmap overlay;

    /* Group-commit queue; q_lock guards all of these. */
    pthread_mutex_t q_lock;
    pthread_cond_t q_work;   /* writer waits for entries or stop */
    pthread_cond_t q_room;   /* submitters wait for room */
    pthread_cond_t q_done;   /* flush waits for completions */
    hyi_pending *q_head, *q_tail;
    size_t q_len;
    uint64_t submitted, completed;
    bool writer_started, stopping, writer_waiting;
    unsigned room_waiters, flush_waiters;
    pthread_t writer;

    /* Stats: plain counters with relaxed atomics (nothing is ordered by them). */
    _Atomic uint64_t st_commits, st_entries, st_bytes, st_failed, st_grows,
        st_writer_commits, st_batch_max;
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

/* The actor's highest sequence as seen by txn (journal's last key for the actor,
 * or the snapshot's sequence if larger): for cache misses. */
int hyi_seq_load(hyi_journal *j, MDB_txn *txn, uint64_t actor, uint64_t *seq);
/* Within a write op: the next sequence for actor (overlay, cache, then LMDB),
 * recorded in the overlay. */
int hyi_seq_next(hyi_wtxn *w, uint64_t actor, uint64_t *seq);

/* Yields the next record to write (false when done) and where its sequence
 * goes. */
typedef bool (*hyi_rec_iter)(void *it, hyi_journal_rec *rec, uint64_t **seq);
/* Within a write op: every record the iterator yields, each under its actor's
 * next sequence, through one cursor (MDB_APPEND past the DB's last key). A
 * record without a timestamp gets the write time. LMDB or hypha code. A write
 * op may run more than once (after the map grows): start the iterator anew in
 * the op, not before it. */
int hyi_entries_put(hyi_wtxn *w, hyi_rec_iter next, void *it);

/* Delete actor's entries with seq < limit inside a write op; adds to *removed. */
int hyi_truncate_in(hyi_wtxn *w, uint64_t actor, uint64_t limit, uint64_t *removed);

/* Validate a record's lengths (HY_EINVAL with detail). */
int hyi_rec_check(const hyi_journal *j, const hyi_journal_rec *rec);

/* Stop the writer (flush first) and free the queue; commit.c, called by close. */
void hyi_writer_stop(hyi_journal *j);

#endif
