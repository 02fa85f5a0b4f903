/* A kernel whose dead letters and escalations are recorded, for the tests
 * that check what was not handled and why, and a one-route registration
 * those tests share. Header-only like support.h; include it after cmocka.h,
 * hypha.h and support.h. */
#ifndef HY_TEST_DEAD_LETTERS_H
#define HY_TEST_DEAD_LETTERS_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Everything the dead_letter callback saw. */
#define DL_MAX 64

typedef struct dl_entry {
    hy_dead_reason reason;
    char path[64];
    char payload[64];
} dl_entry;

typedef struct dl_log {
    pthread_mutex_t lock;
    int by_reason[HY_DEAD__COUNT];
    int n;
    dl_entry e[DL_MAX];
    /* escalations */
    int escalations;
    char esc_subsystem[64];
    char esc_key[64];
    bool esc_key_null;
    int esc_err;
} dl_log;

static inline void dl_record(void *udata, const char *path, size_t path_len,
                             const void *payload, size_t len, hy_dead_reason reason)
{
    dl_log *log = udata;
    pthread_mutex_lock(&log->lock);
    log->by_reason[reason]++;
    if (log->n < DL_MAX) {
        dl_entry *e = &log->e[log->n];
        e->reason = reason;
        snprintf(e->path, sizeof e->path, "%.*s", (int)path_len, path);
        snprintf(e->payload, sizeof e->payload, "%.*s", (int)len, (const char *)payload);
    }
    log->n++;
    pthread_mutex_unlock(&log->lock);
}

static inline void esc_record(void *udata, const char *subsystem, const char *key,
                              size_t key_len, int err)
{
    dl_log *log = udata;
    /* A slow callback: a drain that returned before supervision finished
     * would read the log before this records anything. */
    usleep(20 * 1000);
    pthread_mutex_lock(&log->lock);
    log->escalations++;
    snprintf(log->esc_subsystem, sizeof log->esc_subsystem, "%s", subsystem);
    log->esc_key_null = key == NULL;
    snprintf(log->esc_key, sizeof log->esc_key, "%.*s", key ? (int)key_len : 0,
             key ? key : "");
    log->esc_err = err;
    pthread_mutex_unlock(&log->lock);
}

static inline void dl_init(dl_log *log)
{
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->lock, NULL);
}

static inline int dl_count(dl_log *log, hy_dead_reason reason)
{
    pthread_mutex_lock(&log->lock);
    int n = log->by_reason[reason];
    pthread_mutex_unlock(&log->lock);
    return n;
}

/* A kernel whose dead letters and escalations go to log. */
static inline hy_kernel *open_logged(dl_log *log, hy_config cfg)
{
    dl_init(log);
    cfg.workers = cfg.workers ? cfg.workers : 2;
    cfg.dead_letter = dl_record;
    cfg.escalate = esc_record;
    cfg.udata = log;
    hy_kernel *k = NULL;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    return k;
}

static inline void close_logged(hy_kernel *k, dl_log *log)
{
    hy_kernel_close(k);
    pthread_mutex_destroy(&log->lock);
}

/* k's stats once everything sent is handled or dead (within WAIT_MS). */
static inline hy_stats drained_stats(hy_kernel *k)
{
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    return s;
}

/* Register subsystem `name` with one route; a failure fails the test. */
static inline void add_route(hy_kernel *k, const char *name, const char *pattern, hy_handler h,
                             void *udata)
{
    hy_route r = {.pattern = pattern, .handler = h};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .udata = udata};
    int rc = hy_subsystem_register(k, name, &def);
    if (rc != 0)
        fail_msg("register %s/%s: %s: %s", name, pattern, hy_strerror(rc), hy_errdetail());
}

#endif
