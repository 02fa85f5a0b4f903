/* Fault injection: the kernel under a resource that runs out.
 *  - the message pool's cap (hy_config.pool_cap_bytes): HY_ENOMEM, and every
 *    message a send accepted is still handled;
 *  - LMDB's reader table (hy_config does not expose max_readers: through the
 *    journal's own API, as tests/test_journal.c does): HY_EREADERS;
 *  - the journal's file system full (a 1 MiB tmpfs): HY_EDISKFULL through
 *    on_durable, non-persistent subsystems go on, and every acknowledged
 *    message is there after the tmpfs is remounted bigger and the kernel
 *    reopened; the same under HY_DURABILITY_OFF, whose writes through a map
 *    would otherwise be SIGBUS, and a map larger than the room refused at
 *    open;
 *  - the journal's file system turned read-only while the kernel runs (an
 *    ext4 image on a loop device, mounted errors=remount-ro, made to report
 *    an error): persistent sends fail with HY_EPERM or HY_EJOURNAL, the rest
 *    goes on, opening the journal then names its path and "read-only", and
 *    every acknowledged message is there once it is writable again (fsck,
 *    mount, reopen).
 * The last two need root (mount, loop devices); otherwise each prints a SKIP
 * line and is reported skipped (never passed). Every mount and loop device is
 * undone in the teardown, pass or fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hypha.h"
#include "journal.h"
#include "support.h"

/* ------------------------------------------------------------ pool cap */

static gate pool_gate;
static _Atomic int pool_handled;

static int pool_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    gate_pass(&pool_gate);
    atomic_fetch_add(&pool_handled, 1);
    return 0;
}

static void pool_cap_refuses_with_enomem_and_loses_nothing(void **state)
{
    (void)state;
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = 2, .pool_cap_bytes = 1 << 20};
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_route r = {.pattern = "x", .handler = pool_handler};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "slow", &def), 0);
    static char payload[4000];
    int accepted = 0, rc = 0;
    for (int i = 0; i < 100000; i++) {
        rc = hy_send(k, "slow://x", payload, sizeof payload);
        if (rc != 0)
            break;
        accepted++;
        if (accepted == 1)
            assert_true(wait_for(&pool_gate.entered, 1)); /* held: the rest queue */
    }
    assert_int_equal(rc, HY_ENOMEM);
    assert_non_null(strstr(hy_errdetail(), "pool"));
    assert_true(accepted > 10);
    gate_open(&pool_gate);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&pool_handled), accepted);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_int_equal(st.sent, (uint64_t)accepted);
    assert_int_equal(st.handled, (uint64_t)accepted);
    /* Room again once the queue drained. */
    assert_int_equal(hy_send(k, "slow://x", payload, sizeof payload), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    printf("pool cap: %d accepted before HY_ENOMEM, all %d handled\n", accepted, accepted);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ reader table */

typedef struct reader_hold {
    hyi_journal *j;
    _Atomic int inside;
    _Atomic int release;
    int rc;
} reader_hold;

static int hold_reader(void *user, const hyi_journal_entry *e)
{
    (void)e;
    reader_hold *h = user;
    atomic_store(&h->inside, 1);
    wait_for(&h->release, 1);
    return 1; /* stop */
}

static void *reader_thread(void *p)
{
    reader_hold *h = p;
    h->rc = hyi_journal_read_from(h->j, 7, 0, hold_reader, h, NULL);
    return NULL;
}

static int count_entry(void *user, const hyi_journal_entry *e)
{
    (void)e;
    ++*(int *)user;
    return 0;
}

static void reader_table_full_is_ereaders(void **state)
{
    (void)state;
    char dir[64] = "/tmp/hy-faults-XXXXXX", path[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/env", dir);
    hyi_journal *j = NULL;
    hyi_journal_config cfg = {.path = path, .durability = HYI_DUR_NOSYNC, .max_readers = 1};
    int rc = hyi_journal_open(&j, &cfg);
    if (rc)
        fail_msg("open: %s: %s", hy_err_name(rc), hy_errdetail());
    hyi_journal_rec rec = {.actor = 7, .path = "a://b", .path_len = 5};
    assert_int_equal(hyi_journal_append(j, &rec, NULL), 0);
    reader_hold h = {.j = j};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader_thread, &h), 0);
    assert_true(wait_for(&h.inside, 1));
    int n = 0;
    rc = hyi_journal_read_from(j, 7, 0, count_entry, &n, NULL);
    const char *detail = hy_errdetail();
    printf("second reader with max_readers 1: %s '%s'\n", hy_err_name(rc), detail);
    atomic_store(&h.release, 1);
    pthread_join(t, NULL);
    assert_int_equal(h.rc, 0);
    assert_int_equal(rc, HY_EREADERS);
    /* Once the slot is free, reading works again. */
    n = 0;
    assert_int_equal(hyi_journal_read_from(j, 7, 0, count_entry, &n, NULL), 0);
    assert_int_equal(n, 1);
    hyi_journal_close(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ a tmpfs journal */

typedef struct mnt {
    char dir[64];     /* the mount point */
    char journal[96]; /* the journal directory inside it */
    bool mounted;
} mnt;

static int mnt_setup(void **state)
{
    mnt *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    strcpy(m->dir, "/tmp/hy-faults-mnt-XXXXXX");
    if (!mkdtemp(m->dir))
        return -1;
    snprintf(m->journal, sizeof m->journal, "%s/journal", m->dir);
    *state = m;
    return 0;
}

static int mnt_teardown(void **state)
{
    mnt *m = *state;
    if (m->mounted && umount2(m->dir, MNT_DETACH) != 0)
        fprintf(stderr, "umount %s: %s\n", m->dir, strerror(errno));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", m->dir);
    int rc = system(cmd);
    free(m);
    return rc == 0 ? 0 : -1;
}

/* Mount a tmpfs of `size` on m->dir; when not root or the mount is refused
 * (a container without CAP_SYS_ADMIN), a SKIP line and cmocka's skip(),
 * which leaves the test (counted as skipped, not passed). */
static bool mount_tmpfs(mnt *m, const char *size, const char *test)
{
    if (geteuid() != 0) {
        printf("SKIP %s: needs root to mount a tmpfs; nothing checked\n", test);
        skip();
    }
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    if (mount("tmpfs", m->dir, "tmpfs", 0, opts) != 0) {
        printf("SKIP %s: mount -t tmpfs refused (%s); nothing checked\n", test,
               strerror(errno));
        skip();
    }
    m->mounted = true;
    return true;
}

/* A persistent subsystem whose handler marks the id (the payload's first 4
 * bytes) it applied, live or replayed; a plain one that counts. */
#define MAX_IDS 4096
static _Atomic uint8_t applied[MAX_IDS];
static _Atomic int plain_count;

static int apply_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    size_t len;
    const uint8_t *p = hy_msg_payload(msg, &len);
    uint32_t id;
    memcpy(&id, p, sizeof id);
    if (id < MAX_IDS)
        atomic_store(&applied[id], 1);
    return 0;
}

static int plain_handler(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    (void)msg;
    atomic_fetch_add(&plain_count, 1);
    return 0;
}

static hy_kernel *open_journaled_as(const char *journal, hy_durability durability,
                                    size_t map_size)
{
    hy_kernel *k = NULL;
    hy_config cfg = {.workers = 2, .journal_path = journal, .journal_map_size = map_size,
                     .durability = durability};
    int rc = hy_kernel_open(&k, &cfg);
    if (rc != 0)
        fail_msg("open %s: %s: %s", journal, hy_err_name(rc), hy_errdetail());
    hy_route r = {.pattern = "put", .handler = apply_handler};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .persistent = 1};
    rc = hy_subsystem_register(k, "store", &def);
    if (rc != 0)
        fail_msg("register store: %s: %s", hy_err_name(rc), hy_errdetail());
    hy_route pr = {.pattern = "ping", .handler = plain_handler};
    hy_subsystem_def pdef = {.routes = &pr, .nroutes = 1};
    assert_int_equal(hy_subsystem_register(k, "plain", &pdef), 0);
    return k;
}

static hy_kernel *open_journaled(const char *journal)
{
    return open_journaled_as(journal, HY_DURABILITY_SYNC, 1 << 22);
}

/* What on_durable said for each id: 0 not yet, 1 durable, else the error. */
static _Atomic int durable_status[MAX_IDS];
static _Atomic int durable_calls;

static void on_durable(void *udata, int status)
{
    uintptr_t id = (uintptr_t)udata;
    atomic_store(&durable_status[id], status == 0 ? 1 : status);
    atomic_fetch_add(&durable_calls, 1);
}

static void reset_marks(void)
{
    for (int i = 0; i < MAX_IDS; i++) {
        atomic_store(&applied[i], 0);
        atomic_store(&durable_status[i], 0);
    }
    atomic_store(&durable_calls, 0);
    atomic_store(&plain_count, 0);
}

/* Send id with a payload of `size` bytes; returns hy_send_durable's code. */
static int send_id(hy_kernel *k, uint32_t id, size_t size)
{
    static uint8_t buf[16384];
    memset(buf, (int)id, size);
    memcpy(buf, &id, sizeof id);
    return hy_send_durable(k, "store://put", buf, size, on_durable, (void *)(uintptr_t)id);
}

/* 8 KiB messages, one at a time (each waits for its verdict, so a failure
 * is seen where it happens), until one fails: its code in *first_error.
 * Returns how many were acknowledged. */
static uint32_t send_until_refused(hy_kernel *k, int *first_error, const char *what)
{
    uint32_t sent = 0;
    *first_error = 0;
    for (; sent < 1000; sent++) {
        int rc = send_id(k, sent, 8192);
        if (rc != 0) {
            *first_error = rc;
            break;
        }
        uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 1000000u;
        while (atomic_load(&durable_status[sent]) == 0 && mono_ns() < deadline)
            usleep(100);
        int st = atomic_load(&durable_status[sent]);
        if (st != 1) {
            *first_error = st; /* `sent` stays the number acknowledged */
            break;
        }
    }
    printf("%s: %u acknowledged, then %s\n", what, sent, hy_err_name(*first_error));
    return sent;
}

/* The rest of the kernel goes on: 50 messages to the plain subsystem. */
static void plain_goes_on(hy_kernel *k)
{
    for (int i = 0; i < 50; i++)
        assert_int_equal(hy_send(k, "plain://ping", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&plain_count), 50);
}

/* After more room and a reopen: every acknowledged id replayed, and the
 * journal takes writes again. */
static void acknowledged_replayed(hy_kernel *k, uint32_t sent)
{
    for (uint32_t i = 0; i < sent; i++)
        if (!atomic_load(&applied[i]))
            fail_msg("acknowledged id %u was not replayed", i);
    atomic_store(&durable_status[sent], 0);
    assert_int_equal(send_id(k, sent, 8192), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&durable_status[sent]), 1);
}

static void disk_full_is_ediskfull_and_acknowledged_messages_survive(void **state)
{
    mnt *m = *state;
    if (!mount_tmpfs(m, "1m", "disk full"))
        return;
    reset_marks();
    hy_kernel *k = open_journaled(m->journal);
    int first_error;
    /* 8 KiB each: a 1 MiB file system fills within ~120 of them. */
    uint32_t sent = send_until_refused(k, &first_error, "disk full");
    assert_int_equal(first_error, HY_EDISKFULL);
    assert_true(sent > 10);
    plain_goes_on(k);
    hy_stats st;
    assert_int_equal(hy_kernel_stats(k, &st), 0);
    assert_true(st.journal_failed_commits >= 1);
    hy_kernel_close(k);

    /* More room, reopen: every acknowledged message is replayed. */
    assert_int_equal(mount(NULL, m->dir, NULL, MS_REMOUNT, "size=16m"), 0);
    for (int i = 0; i < MAX_IDS; i++)
        atomic_store(&applied[i], 0);
    k = open_journaled(m->journal);
    acknowledged_replayed(k, sent);
    hy_kernel_close(k);
}

/* HY_DURABILITY_OFF writes through a writable map of a file LMDB leaves
 * sparse: a page the file system cannot back when first written would be
 * SIGBUS in the writer thread, killing the process. The journal reserves
 * the map's blocks first, so a full file system is HY_EDISKFULL: at open
 * when the map does not fit, at the commit that needed the map to grow
 * otherwise, and what was acknowledged before is replayed later. */
static void disk_full_with_durability_off_is_ediskfull_not_a_crash(void **state)
{
    mnt *m = *state;
    if (!mount_tmpfs(m, "1m", "disk full, durability off"))
        return;
    reset_marks();
    /* A map larger than the file system: refused at open, naming the path. */
    hy_kernel *k = NULL;
    hy_config big = {.workers = 2, .journal_path = m->journal, .journal_map_size = 4 << 20,
                     .durability = HY_DURABILITY_OFF};
    assert_int_equal(hy_kernel_open(&k, &big), HY_EDISKFULL);
    assert_null(k);
    assert_non_null(strstr(hy_errdetail(), m->journal));
    assert_non_null(strstr(hy_errdetail(), "no room on disk"));

    /* A map that fits, then messages until it must grow past the room. */
    k = open_journaled_as(m->journal, HY_DURABILITY_OFF, 256 << 10);
    int first_error;
    uint32_t sent = send_until_refused(k, &first_error, "disk full, durability off");
    assert_int_equal(first_error, HY_EDISKFULL);
    assert_true(sent > 10);
    plain_goes_on(k);
    hy_kernel_close(k);

    assert_int_equal(mount(NULL, m->dir, NULL, MS_REMOUNT, "size=16m"), 0);
    for (int i = 0; i < MAX_IDS; i++)
        atomic_store(&applied[i], 0);
    k = open_journaled_as(m->journal, HY_DURABILITY_OFF, 256 << 10);
    acknowledged_replayed(k, sent);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ a file system gone read-only */

/* An ext4 image on a loop device, mounted errors=remount-ro: an error the
 * kernel reports through /sys/fs/ext4/<dev>/trigger_fs_error makes ext4
 * remount it read-only with the journal's files open for writing, as a disk
 * error does in production (mount -o remount,ro refuses that: EBUSY). */
typedef struct loopfs {
    char dir[64];      /* holds the image and the mount point */
    char image[96];
    char mnt[96];
    char journal[128];
    char dev[64];      /* /dev/loopN once attached */
    bool attached, mounted;
} loopfs;

static int loopfs_setup(void **state)
{
    loopfs *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    strcpy(l->dir, "/tmp/hy-faults-ro-XXXXXX");
    if (!mkdtemp(l->dir))
        return -1;
    snprintf(l->image, sizeof l->image, "%s/ext4.img", l->dir);
    snprintf(l->mnt, sizeof l->mnt, "%s/mnt", l->dir);
    snprintf(l->journal, sizeof l->journal, "%s/journal", l->mnt);
    *state = l;
    return 0;
}

/* Whatever the test got to: unmount, detach, remove, pass or fail. A kernel
 * a failed assertion left open still holds files: the lazy unmount lets
 * that be, and the loop device goes once the last of them closes. */
static int loopfs_teardown(void **state)
{
    loopfs *l = *state;
    int bad = 0;
    if (l->mounted && umount(l->mnt) != 0 && umount2(l->mnt, MNT_DETACH) != 0) {
        fprintf(stderr, "umount %s: %s\n", l->mnt, strerror(errno));
        bad = 1;
    }
    char cmd[256];
    if (l->attached) {
        snprintf(cmd, sizeof cmd, "losetup -d '%s'", l->dev);
        bad |= system(cmd) != 0;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", l->dir);
    bad |= system(cmd) != 0;
    free(l);
    return bad ? -1 : 0;
}

/* Skip (one printed line, cmocka's skip) unless root with loop devices and
 * mkfs.ext4; else attach an ext4 image and mount it errors=remount-ro. */
static void loopfs_mount(loopfs *l, const char *test)
{
    if (geteuid() != 0) {
        printf("SKIP %s: needs root for a loop device; nothing checked\n", test);
        skip();
    }
    if (access("/dev/loop-control", W_OK) != 0) {
        printf("SKIP %s: no /dev/loop-control (%s); nothing checked\n", test, strerror(errno));
        skip();
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "truncate -s 32M '%s' && mkfs.ext4 -q -F '%s' >/dev/null 2>&1", l->image,
             l->image);
    if (system(cmd) != 0) {
        printf("SKIP %s: cannot make an ext4 image (mkfs.ext4 missing?); nothing checked\n",
               test);
        skip();
    }
    snprintf(cmd, sizeof cmd, "losetup --find --show '%s' 2>/dev/null", l->image);
    FILE *p = popen(cmd, "r");
    bool got = p && fgets(l->dev, sizeof l->dev, p) != NULL;
    if (p)
        pclose(p);
    l->dev[strcspn(l->dev, "\n")] = '\0';
    if (!got || strncmp(l->dev, "/dev/loop", 9) != 0) {
        printf("SKIP %s: no loop device could be attached; nothing checked\n", test);
        skip();
    }
    l->attached = true;
    if (mkdir(l->mnt, 0700) != 0 ||
        mount(l->dev, l->mnt, "ext4", 0, "errors=remount-ro") != 0) {
        printf("SKIP %s: mount of an ext4 loop device refused (%s); nothing checked\n", test,
               strerror(errno));
        skip();
    }
    l->mounted = true;
}

/* Creating a file is refused with EROFS. (Asked by trying: recent kernels
 * mark such a file system "emergency_ro" and leave statvfs's flag clear.) */
static bool is_read_only(const char *dir)
{
    char probe[160];
    snprintf(probe, sizeof probe, "%s/probe", dir);
    int fd = open(probe, O_CREAT | O_WRONLY, 0600);
    if (fd >= 0) {
        close(fd);
        unlink(probe);
        return false;
    }
    return errno == EROFS;
}

/* Wait for on_durable's verdict on id; 0 if none came. */
static int verdict(uint32_t id)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (atomic_load(&durable_status[id]) == 0 && mono_ns() < deadline)
        usleep(100);
    return atomic_load(&durable_status[id]);
}

static void read_only_journal_fails_persistent_sends_only(void **state)
{
    enum { ACKED = 64 };
    loopfs *l = *state;
    loopfs_mount(l, "read-only journal");
    char trigger[128];
    snprintf(trigger, sizeof trigger, "/sys/fs/ext4/%s/trigger_fs_error", l->dev + 5);
    if (access(trigger, W_OK) != 0) {
        printf("SKIP read-only journal: no %s (%s); nothing checked\n", trigger,
               strerror(errno));
        skip();
    }
    reset_marks();
    hy_kernel *k = open_journaled(l->journal);
    for (uint32_t id = 0; id < ACKED; id++) {
        assert_int_equal(send_id(k, id, 512), 0);
        assert_int_equal(verdict(id), 1);
    }

    /* An error ext4 cannot ignore: it remounts the file system read-only
     * under the open journal. */
    FILE *f = fopen(trigger, "w");
    assert_non_null(f);
    assert_true(fputs("1", f) >= 0);
    assert_int_equal(fclose(f), 0);
    for (int i = 0; i < 1000 && !is_read_only(l->mnt); i++)
        usleep(1000);
    assert_true(is_read_only(l->mnt));

    /* Persistent sends fail, refused at once or through on_durable. */
    int rc = send_id(k, ACKED, 512);
    if (rc == 0)
        rc = verdict(ACKED);
    printf("read-only journal: persistent send -> %s\n", rc == 1 ? "durable" : hy_err_name(rc));
    assert_true(rc == HY_EPERM || rc == HY_EJOURNAL);
    /* The rest of the kernel goes on. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(hy_send(k, "plain://ping", NULL, 0), 0);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    assert_int_equal(atomic_load(&plain_count), 20);
    hy_kernel_close(k);

    /* Opening the journal now says what is wrong, and where. */
    hy_kernel *k2 = NULL;
    hy_config cfg = {.workers = 1, .journal_path = l->journal};
    rc = hy_kernel_open(&k2, &cfg);
    printf("read-only journal: open -> %s: %s\n", hy_err_name(rc), hy_errdetail());
    assert_true(rc == HY_EPERM || rc == HY_EJOURNAL);
    assert_null(k2);
    assert_non_null(strstr(hy_errdetail(), l->journal));
    assert_non_null(strcasestr(hy_errdetail(), "read-only"));

    /* Writable again (unmount, fsck, mount): everything acknowledged is
     * replayed, and the journal takes writes. */
    assert_int_equal(umount(l->mnt), 0);
    l->mounted = false;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "e2fsck -fy '%s' >/dev/null 2>&1", l->image);
    int fsck = system(cmd);
    assert_true(WIFEXITED(fsck) && WEXITSTATUS(fsck) < 4); /* 0..3: clean or corrected */
    assert_int_equal(mount(l->dev, l->mnt, "ext4", 0, "errors=remount-ro"), 0);
    l->mounted = true;
    for (int i = 0; i < MAX_IDS; i++)
        atomic_store(&applied[i], 0);
    k = open_journaled(l->journal);
    for (uint32_t id = 0; id < ACKED; id++)
        if (!atomic_load(&applied[id]))
            fail_msg("acknowledged id %u was not replayed", id);
    atomic_store(&durable_status[ACKED + 1], 0);
    assert_int_equal(send_id(k, ACKED + 1, 512), 0);
    assert_int_equal(verdict(ACKED + 1), 1);
    hy_kernel_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_cap_refuses_with_enomem_and_loses_nothing),
        cmocka_unit_test(reader_table_full_is_ereaders),
        cmocka_unit_test_setup_teardown(disk_full_is_ediskfull_and_acknowledged_messages_survive,
                                        mnt_setup, mnt_teardown),
        cmocka_unit_test_setup_teardown(disk_full_with_durability_off_is_ediskfull_not_a_crash,
                                        mnt_setup, mnt_teardown),
        cmocka_unit_test_setup_teardown(read_only_journal_fails_persistent_sends_only,
                                        loopfs_setup, loopfs_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
