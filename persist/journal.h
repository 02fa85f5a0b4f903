/* The persist layer: hypha's journal and snapshots on LMDB (docs/ARCHITECTURE.md §4).
 *
 * One hyi_journal is one LMDB environment (a directory) holding five named
 * databases (layout "format 2"):
 *  - "log":       key = global sequence (u64 BE), one per entry in commit
 *                 order, so every append is past the last key (MDB_APPEND)
 *                 however many actors write. Value = a 48-byte versioned
 *                 header (format version, header length, flags, CRC32C,
 *                 timestamp, actor, actor sequence, log key of the actor's
 *                 previous entry, path length, payload length) + path +
 *                 payload. The CRC covers key, header and body, so a flipped
 *                 byte or a value under the wrong key is caught.
 *  - "heads":     actor (u64 BE) -> its newest sequence and that entry's log
 *                 key, where reads start walking the actor's chain backwards.
 *                 Written at checkpoints (see cache_actors, checkpoint_entries);
 *                 newer heads are in memory, and rebuilt from the log at open.
 *  - "floors":    actor (u64 BE) -> its lowest live sequence: snapshots and
 *                 truncation raise it, and a sweep inside later appends deletes
 *                 the log entries below it.
 *  - "snapshots": key = actor id (u64 BE); value = a 24-byte header (version,
 *                 CRC32C, covered sequence, state length) + state bytes. One (the
 *                 latest) snapshot per actor.
 *  - "meta":      "format" (2) and "heads_through" (the log key the heads DB is
 *                 complete up to). A directory of the actor-keyed layout
 *                 (format 1, a "journal" database) is refused at open.
 *
 * Sequences start at 1 per actor and are gap-free. They are assigned under the
 * journal's write lock, so the order of sequences is the order of commits. An
 * actor's highest sequence survives truncation (its head keeps it).
 *
 * Writes go one of two ways:
 *  - synchronously on the calling thread (hyi_journal_append, _append_many,
 *    hyi_snapshot_save, hyi_journal_truncate_before): one write transaction each;
 *  - through the group-commit writer (hyi_journal_submit, _submit_batch): a
 *    thread, started on the first submit, takes every pending entry, writes them
 *    all in one transaction, commits (fsync under HYI_DUR_SYNC), then calls each
 *    entry's completion callback, in submission order. This is how many small
 *    appends share one fsync.
 *
 * Errors are negative hy_err codes (kernel/hypha.h); on every failure the
 * thread's hy_errdetail() names the journal's path, the actor/sequence concerned
 * where there is one, and LMDB's own message (mdb_strerror):
 *   HY_EINVAL     bad argument (NULL, lengths over 4 GiB, snapshot past highest)
 *   HY_ENOMEM     allocation failed
 *   HY_EMAPFULL   the map is at map_size_max and the write does not fit
 *   HY_EDISKFULL  ENOSPC from the file system, or a short write (EIO) when the
 *                 file system has no room left
 *   HY_EREADERS   LMDB's reader table is full (raise max_readers)
 *   HY_ECORRUPT   LMDB reports a corrupt file (MDB_CORRUPTED, MDB_PAGE_NOTFOUND,
 *                 MDB_INVALID, MDB_VERSION_MISMATCH) or an entry/snapshot fails
 *                 its checksum or header check; at open also: a journal of
 *                 another layout (format 1, or an unknown one), or a corrupt
 *                 log entry past the last heads checkpoint
 *   HY_EPERM      the path is not accessible (EACCES/EPERM)
 *   HY_ENOENT     no such snapshot
 *   HY_ECLOSED    submit after close began
 *   HY_ESYS       a thread could not be created
 *   HY_EJOURNAL   any other LMDB or I/O failure (EIO, not a directory, ...)
 * No LMDB return code is ignored.
 *
 * Threads: every function may be called from any thread, concurrently, except
 * hyi_journal_close (exactly once, when no other call is running). Callbacks
 * (read, snapshot and completion) must not call back into the same journal's
 * write or read functions: readers hold a read lock that map growth waits for,
 * and completion callbacks run on the writer thread. The one exception:
 * a completion callback may call hyi_journal_submit/_submit_batch/_submit_many
 * (it never waits for queue room on the writer thread). */
#ifndef HY_JOURNAL_H
#define HY_JOURNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hy_common.h"
#include "hypha.h"

typedef struct hyi_journal hyi_journal;

/* ---------------------------------------------------------------- config */

typedef enum hyi_durability {
    /* Default. Every commit is fsync'd before it returns (before completion
     * callbacks run): an acknowledged entry survives kill -9 and power loss. */
    HYI_DUR_SYNC = 0,
    /* MDB_NOSYNC: commits reach the OS page cache, the OS flushes them later.
     * Survives kill -9 of the process; the last commits may be lost on power
     * loss or an OS crash (the database stays consistent). */
    HYI_DUR_NOSYNC,
    /* MDB_NOSYNC|MDB_NOMETASYNC|MDB_WRITEMAP|MDB_MAPASYNC: the journal is still
     * written (through a writable map, cheapest) and a clean close or kill -9
     * keeps it, but nothing is flushed, and on an OS crash the file may be left
     * inconsistent. The file's blocks under the map are reserved at open and
     * before the map grows (a write through the map into a sparse file on a
     * full disk would be SIGBUS), so a full disk is HY_EDISKFULL there, and the
     * file takes the map's size on disk from the start. A kernel that wants "no journal at all" simply does not
     * open one; this mode is for "journal, but never wait for the disk". */
    HYI_DUR_OFF,
} hyi_durability;

typedef enum hyi_retention {
    /* Default. hyi_snapshot_save removes the journal entries its snapshot
     * covers, except the newest retain_entries of them. */
    HYI_RETAIN_TRUNCATE = 0,
    /* Snapshots never remove journal entries (hyi_journal_truncate_before still
     * does). */
    HYI_RETAIN_ALL,
} hyi_retention;

/* A zeroed config (plus a path) gives good defaults. */
typedef struct hyi_journal_config {
    const char *path;        /* the environment's directory; created (0750) if
                                missing, its parent must exist. Required. */
    size_t map_size;         /* initial map size in bytes; 0: 64 MiB. Rounded up
                                to the page size. */
    size_t map_size_max;     /* cap for map growth; 0: 1 TiB (address space only;
                                the file grows with the data). Raised to map_size
                                when smaller. */
    unsigned max_readers;    /* concurrent read transactions; 0: 126 (LMDB's) */
    hyi_durability durability;
    hyi_retention retention;
    uint64_t retain_entries; /* see HYI_RETAIN_TRUNCATE; 0: keep none */
    unsigned max_batch;      /* writer: entries per commit before it cuts a batch
                                (never inside one submit_batch call); 0: 4096 */
    unsigned max_pending;    /* submit blocks while this many entries wait in the
                                queue (the writer may hold as many again while it
                                writes them; a batch larger than it is admitted
                                when the queue is empty); 0: 65536 */
    size_t cache_actors;     /* actors whose head (newest seq, log key) is kept
                                in memory (64 bytes each at most); 0: 1 Mi.
                                Beyond it clean heads are evicted and read from
                                the heads DB again when needed (live actors'
                                leased heads are not: the cache grows past it
                                when more actors live). A checkpoint
                                comes when seven eighths of it are heads newer
                                than the heads DB (half once it is full), so
                                larger means fewer checkpoints. */
    uint64_t checkpoint_entries; /* the heads DB is brought up to date at least
                                every this many log entries (and as
                                cache_actors says); open replays at most this
                                much log. 0: 1 Mi */
} hyi_journal_config;

/* Open (creating if needed) the environment at cfg->path and its two databases.
 * No thread is started until the first submit. On failure *out is NULL and the
 * detail names the path and LMDB's message: HY_EINVAL, HY_ENOMEM, HY_EPERM,
 * HY_ECORRUPT (not an LMDB file, wrong version, corrupt), HY_EREADERS,
 * HY_EDISKFULL, HY_EJOURNAL (not a directory, other I/O errors). */
int hyi_journal_open(hyi_journal **out, const hyi_journal_config *cfg);

/* Flush: every submitted entry is written and its callback called; then stop
 * and join the writer, close the environment and free j. NULL is a no-op.
 * No other call on j may run during or after this one (nor from a callback). */
void hyi_journal_close(hyi_journal *j);

/* The path the journal was opened at (owned by j). */
const char *hyi_journal_path(const hyi_journal *j);

/* ---------------------------------------------------------------- entries */

/* An actor's head held by the actor's owner while it lives (the kernel keeps
 * one in each persistent actor), so the writer appends to that actor without
 * a lookup in the journal's head cache nor a publish into it after the
 * commit: see "leases" in env.c. The owner zeroes it before a record first
 * names it; after that only the journal touches it, until the owner hands it
 * back with hyi_journal_release_leases, which it must do before the memory
 * goes (and before another lease of the same actor may start afresh). */
typedef struct hyi_head_lease {
    uint64_t seq, gseq;     /* the actor's newest entry and its log key */
    uint32_t dirty_at;      /* its place in the journal's list of changed heads */
    _Atomic uint32_t mark;  /* bit 0: held by the journal; above: that list's epoch */
} hyi_head_lease;

/* One entry to append. The caller owns path and payload; they are copied (into
 * LMDB, or into the writer's queue on submit) before the call returns. */
typedef struct hyi_journal_rec {
    uint64_t actor;
    hyi_head_lease *lease;   /* NULL, or the actor's lease (see above) */
    uint16_t flags;          /* opaque to the journal; returned on read */
    uint64_t timestamp_ns;   /* 0: CLOCK_REALTIME at write time */
    const char *path;        /* may be NULL when path_len is 0 */
    size_t path_len;         /* < 4 GiB */
    const void *payload;     /* may be NULL when payload_len is 0 */
    size_t payload_len;      /* < 4 GiB */
} hyi_journal_rec;

/* One entry as read. Pointers are into LMDB's map and valid only during the
 * callback that receives them (copy what you keep). */
typedef struct hyi_journal_entry {
    uint64_t actor;
    uint64_t seq;
    uint64_t timestamp_ns;
    uint16_t flags;
    const char *path;
    size_t path_len;
    const void *payload;
    size_t payload_len;
} hyi_journal_entry;

/* Read callback: return 0 to continue, non-zero to stop. A negative return is
 * passed through as the reader's result (so a callback can fail with an hy_err);
 * a positive one stops with result 0. */
typedef int (*hyi_journal_read_fn)(void *user, const hyi_journal_entry *e);

/* Append one entry to rec->actor in its own write transaction (fsync under
 * HYI_DUR_SYNC). *seq_out (may be NULL) gets its sequence. The map grows on
 * demand (doubling) up to map_size_max. Errors: HY_EINVAL, HY_EMAPFULL,
 * HY_EDISKFULL, HY_ECORRUPT, HY_EJOURNAL, HY_ENOMEM; on error nothing is
 * written and no sequence is used. */
int hyi_journal_append(hyi_journal *j, const hyi_journal_rec *rec, uint64_t *seq_out);

/* Append n entries (any mix of actors) in one write transaction: all or none.
 * seqs_out (may be NULL) gets n sequences, in order. Errors as append. */
int hyi_journal_append_many(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                            uint64_t *seqs_out);

/* Call fn for each entry of actor with sequence >= from_seq, in order, in one
 * read transaction (a consistent view). *last_seq_out (may be NULL) gets the
 * sequence of the last entry delivered (0 if none). Returns 0 (also when there
 * is nothing to read or fn stopped with a positive value), fn's negative value,
 * HY_EREADERS, or HY_ECORRUPT when an entry fails its checks or a sequence is
 * missing between two entries: the detail names (actor, seq) and the last good
 * sequence, fn has seen every entry before it, and reading stops there. */
int hyi_journal_read_from(hyi_journal *j, uint64_t actor, uint64_t from_seq,
                          hyi_journal_read_fn fn, void *user, uint64_t *last_seq_out);

/* An actor and its lease, to hand back. */
typedef struct hyi_lease_ref {
    uint64_t actor;
    hyi_head_lease *lease;
} hyi_lease_ref;

/* Each held lease's head goes back into the journal's head cache (the lease
 * is not held any more; a later record naming it takes it again). No entry
 * naming a lease may be in flight (submitted and not completed). Takes the
 * write lock once for all n. */
void hyi_journal_release_leases(hyi_journal *j, const hyi_lease_ref *refs, size_t n);

/* True while the journal holds the lease; exact when no entry naming it is
 * in flight (then nothing changes it), a hint otherwise. */
bool hyi_head_lease_held(hyi_head_lease *l);

/* *seq_out = the actor's highest sequence, 0 for an actor never appended to.
 * Counts committed entries only (not ones waiting in the writer's queue). */
int hyi_journal_highest(hyi_journal *j, uint64_t actor, uint64_t *seq_out);

/* Remove the actor's entries with sequence < seq: reads stop short of them at
 * once, the log reclaims their space later. The newest entry is never removed
 * (seq is clamped to the highest). *removed_out (may be NULL) gets the number
 * removed. */
int hyi_journal_truncate_before(hyi_journal *j, uint64_t actor, uint64_t seq,
                                uint64_t *removed_out);

/* ---------------------------------------------------------------- snapshots */

/* Store state as the actor's latest snapshot, covering entries <= seq, and, with
 * HYI_RETAIN_TRUNCATE, remove covered entries but the newest retain_entries of
 * them (as truncate_before), in the same transaction. seq must be <= the actor's highest sequence
 * (HY_EINVAL otherwise). Other errors as append. */
int hyi_snapshot_save(hyi_journal *j, uint64_t actor, uint64_t seq,
                      const void *state, size_t len);

/* Several actors' snapshots (distinct actors), each as hyi_snapshot_save, in
 * one write transaction: what passivating a batch of actors costs once
 * instead of once per actor. Each item's rc gets its own outcome (HY_EINVAL
 * for one refused by its checks, the others are still saved). Returns 0 when
 * the transaction committed, else its code, which every item not refused by
 * its own checks also gets. */
typedef struct hyi_snapshot_item {
    uint64_t actor, seq;
    const void *state;
    size_t len;
    int rc; /* out */
} hyi_snapshot_item;
int hyi_snapshot_save_many(hyi_journal *j, hyi_snapshot_item *items, size_t n);

/* The actor's latest snapshot: *seq_out gets its covered sequence, *state_out a
 * malloc'd copy of the state (free() it; NULL when len is 0), *len_out its
 * length. HY_ENOENT when the actor has none; HY_ECORRUPT when it fails its
 * checks (the detail names the actor). */
int hyi_snapshot_load(hyi_journal *j, uint64_t actor, uint64_t *seq_out,
                      void **state_out, size_t *len_out);

/* ---------------------------------------------------------------- recovery */

/* Snapshot callback for recovery: state is valid only during the call. A
 * negative return aborts recovery with that value. */
typedef int (*hyi_snapshot_fn)(void *user, uint64_t actor, uint64_t seq,
                               const void *state, size_t len);

/* True when the journal can tell without a read that actor has no entry and
 * no snapshot (hyi_journal_recover would call nothing and give 0); false when
 * it may have some. */
bool hyi_journal_surely_new(hyi_journal *j, uint64_t actor);

/* Recover an actor in one read transaction: if it has a snapshot, call
 * on_snapshot (may be NULL) with it, then call on_entry for every entry after
 * the snapshot's sequence (all entries without a snapshot), as read_from.
 * *last_seq_out (may be NULL) gets the last sequence applied (the snapshot's
 * when no entry follows; 0 for a fresh actor). Errors as read_from; a corrupt
 * snapshot is HY_ECORRUPT before any callback. */
int hyi_journal_recover(hyi_journal *j, uint64_t actor, hyi_snapshot_fn on_snapshot,
                        hyi_journal_read_fn on_entry, void *user,
                        uint64_t *last_seq_out);

/* ---------------------------------------------------------------- group commit */

/* Completion callback: runs on the writer thread once per submitted entry, in
 * submission order, after its transaction committed (status 0, seq its
 * sequence) or failed (status < 0, seq 0; hy_errdetail() on this thread says
 * why, and every entry of that transaction gets the same status). */
typedef void (*hyi_journal_done_fn)(void *user, uint64_t actor, uint64_t seq, int status);

/* Queue one entry for the writer (copied now; started on first use). Blocks
 * while max_pending entries are queued. Returns 0 (done will be called exactly
 * once), or HY_EINVAL, HY_ENOMEM, HY_ECLOSED, HY_ESYS (done is never called). */
int hyi_journal_submit(hyi_journal *j, const hyi_journal_rec *rec,
                       hyi_journal_done_fn done, void *user);

/* Queue n entries at once: they are contiguous in the queue and land in one
 * commit (a batch is never split). users (may be NULL: all NULL) gives entry
 * i's user pointer. All-or-none: on error no entry is queued. */
int hyi_journal_submit_batch(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                             hyi_journal_done_fn done, void *const *users);

/* One entry of a transaction, for a done_many callback: the user pointer it
 * was submitted with and its sequence (0 when the transaction failed). */
typedef struct hyi_journal_done_item {
    void *user;
    uint64_t seq;
} hyi_journal_done_item;

/* Completion of many entries at once: runs on the writer thread once per
 * transaction for each run of consecutive entries submitted with the same
 * (done, ctx), in submission order, with their items in submission order;
 * status as for hyi_journal_done_fn. It may rewrite items (the array is the
 * writer's, reused after the call). Seeing a transaction's entries together
 * lets a caller deliver them per destination in one pass, and fetch the
 * memory it will touch ahead of use. */
typedef void (*hyi_journal_done_many_fn)(void *ctx, hyi_journal_done_item *items, size_t n,
                                         int status);

/* submit_batch with a done_many completion: users (may be NULL: all NULL)
 * gives entry i's user pointer, ctx is passed to every call. */
int hyi_journal_submit_many(hyi_journal *j, const hyi_journal_rec *recs, size_t n,
                            hyi_journal_done_many_fn done, void *ctx, void *const *users);

/* Wait until every entry submitted before this call has been written and its
 * callback has returned. Must not be called from a completion callback. */
void hyi_journal_flush(hyi_journal *j);

/* ---------------------------------------------------------------- stats */

#define HYI_JOURNAL_BATCH_RING 1024

typedef struct hyi_journal_stats {
    uint64_t commits;        /* successful write transactions (all paths) */
    uint64_t entries;        /* entries committed */
    uint64_t bytes;          /* key + value bytes of committed entries */
    uint64_t failed_commits; /* transactions that ended in an error */
    uint64_t map_grows;      /* times the map was enlarged */
    uint64_t map_size;       /* current map size */
    uint64_t map_used;       /* bytes of the map in use (pages up to the last) */
    uint64_t map_max;        /* the cap the map may grow to */
    uint64_t pending;        /* entries queued for the writer now */
    uint64_t batch_p50;      /* median entries per writer commit, over the last
                                HYI_JOURNAL_BATCH_RING writer commits (0: none) */
    uint64_t batch_max;      /* largest writer commit since open */
    uint64_t writer_commits; /* writer transactions (successful or not) */
    uint64_t log_entries;    /* entries physically in the log now (reclaimed
                                ones are gone; ones under a floor may wait) */
    uint64_t heads_cached;   /* actors whose head is in memory now */
    uint64_t heads_dirty;    /* of those, ones newer than the heads DB */
    uint64_t recover_reads;  /* recoveries that read the journal (the others
                                knew the actor had no history) */
    uint64_t writer_cpu_ns;  /* CPU time of the writer thread since it started
                                (0 before the first submit) */
} hyi_journal_stats;

/* Counters are read with relaxed loads: a snapshot that may lag by a commit. */
void hyi_journal_get_stats(hyi_journal *j, hyi_journal_stats *out);

/* CRC32C (Castagnoli) of buf, continuing from crc (0 to start): the SSE4.2
 * instruction when the CPU has it, else tables. Exposed for tests and tools
 * that check journal values; _portable always takes the table path. */
uint32_t hyi_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t hyi_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
