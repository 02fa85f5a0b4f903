/* persistent: counters that survive a restart of the process.
 *
 * Usage: persistent JOURNAL_DIR. Run it twice on one directory: the second run
 * starts from the totals the first one left.
 *
 * "counters" is a persistent subsystem (hy_subsystem_def.persistent, with
 * hy_config.journal_path): every message to it is written to the journal
 * before its handler runs. Each counter name is a keyed actor; when one is
 * made (its first message in this process) the kernel rebuilds its state: the
 * latest snapshot through state_load, then the journal entries after it
 * through the handlers, with hy_is_replaying() true. state_save writes the
 * snapshots, every hy_config.snapshot_every handled messages.
 * Look at hy_subsystem_def.persistent/state_save/state_load, hy_send_durable,
 * hy_is_replaying, hy_config.journal_path/snapshot_every and the journal's
 * figures in hy_stats (journal_entries, journal_writer_cpu_ns). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypha.h"

typedef struct counter {
    long long total;
    int recovered; /* made from the journal rather than from nothing (not saved) */
} counter;

static int counter_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata, (void)key, (void)key_len;
    *state = calloc(1, sizeof(counter));
    return *state ? 0 : HY_ENOMEM;
}

static void counter_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

/* A snapshot is the total alone: the bytes must mean the same to a later run. */
static int counter_save(void *udata, void *state, void **bytes, size_t *len)
{
    (void)udata;
    *bytes = malloc(sizeof(long long)); /* freed by the kernel with free() */
    if (!*bytes)
        return HY_ENOMEM;
    memcpy(*bytes, &((counter *)state)->total, sizeof(long long));
    *len = sizeof(long long);
    return 0;
}

static int counter_load(void *udata, const char *key, size_t key_len, const void *bytes,
                        size_t len, void **state)
{
    if (len != sizeof(long long) || counter_new(udata, key, key_len, state) != 0)
        return HY_ECORRUPT;
    counter *c = (counter *)*state;
    memcpy(&c->total, bytes, sizeof(long long));
    c->recovered = 1;
    return 0;
}

/* Deterministic in the state and the message, so a replay rebuilds the total. */
static int add(hy_ctx *ctx, const hy_msg *msg)
{
    counter *c = (counter *)hy_state(ctx);
    size_t len;
    const char *p = (const char *)hy_msg_payload(msg, &len);
    char buf[24];
    snprintf(buf, sizeof buf, "%.*s", (int)len, p);
    c->total += atoll(buf);
    if (hy_is_replaying(ctx))
        c->recovered = 1;
    return 0;
}

/* Reads are messages too, so they are journaled as well (and replayed
 * harmlessly: a replaying handler's reply is not sent). */
static int get(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    counter *c = (counter *)hy_state(ctx);
    if (hy_is_replaying(ctx))
        c->recovered = 1;
    return hy_reply(ctx, c, sizeof *c);
}

/* on_durable runs on the journal's thread: count under a lock. */
static pthread_mutex_t durable_lock = PTHREAD_MUTEX_INITIALIZER;
static int durable_ok, durable_failed;

static void on_durable(void *udata, int status)
{
    (void)udata;
    pthread_mutex_lock(&durable_lock);
    ++*(status == 0 ? &durable_ok : &durable_failed);
    pthread_mutex_unlock(&durable_lock);
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

static const char *const names[] = {"apples", "pears", "plums"};

/* Asks each counter for its state, one at a time, and prints it; the very
 * first ask of the process is the first message its actor handles live. */
static int print_totals(hy_kernel *k, const char *when, int first)
{
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "counters://%s/get", names[i]);
        void *reply = NULL;
        size_t len = 0;
        int rc = check(hy_ask(k, path, NULL, 0, &reply, &len, 5000), "ask");
        if (rc != 0)
            return rc;
        counter c;
        memcpy(&c, reply, sizeof c < len ? sizeof c : len);
        hy_free(reply);
        if (first && i == 0)
            printf("first message of this run saw recovered state: %s\n",
                   c.recovered ? "yes" : "no");
        printf("%s %s: %lld\n", when, names[i], c.total);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s JOURNAL_DIR\n", argv[0]);
        return 2;
    }
    /* snapshot_every is small so both snapshots and replay take part. */
    hy_config cfg = {.workers = 2, .journal_path = argv[1], .snapshot_every = 4};
    hy_kernel *k;
    if (check(hy_kernel_open(&k, &cfg), "open") != 0)
        return 1;
    hy_route routes[] = {{.pattern = "{name}/add", .handler = add, .key = "name"},
                         {.pattern = "{name}/get", .handler = get, .key = "name"}};
    hy_subsystem_def def = {.routes = routes, .nroutes = 2,
                            .state_init = counter_new, .state_free = counter_free,
                            .persistent = 1,
                            .state_save = counter_save, .state_load = counter_load};
    int rc = check(hy_subsystem_register(k, "counters", &def), "register");
    if (rc == 0)
        rc = print_totals(k, "recovered", 1);

    /* apples +1 +2 +3, pears +10 +20, plums +5: each run adds 6, 30 and 5. */
    const struct {
        const char *path, *amount;
    } adds[] = {{"counters://apples/add", "1"}, {"counters://apples/add", "2"},
                {"counters://apples/add", "3"}, {"counters://pears/add", "10"},
                {"counters://pears/add", "20"}, {"counters://plums/add", "5"}};
    for (int i = 0; rc == 0 && i < 6; i++)
        rc = check(hy_send_durable(k, adds[i].path, adds[i].amount, strlen(adds[i].amount),
                                   on_durable, NULL),
                   "send");
    /* on_durable comes before the handler runs, so after the drain all are in. */
    if (rc == 0)
        rc = check(hy_kernel_drain(k, 10000), "drain");
    if (rc == 0) {
        pthread_mutex_lock(&durable_lock);
        printf("durable adds: %d of 6, failed %d\n", durable_ok, durable_failed);
        pthread_mutex_unlock(&durable_lock);
        /* The journal's one writer thread did the writing: its CPU time is
         * how to tell whether it bounds the rate of persistent sends. */
        hy_stats st;
        hy_kernel_stats(k, &st);
        printf("journal: %llu entries this run, writer thread busy: %s\n",
               (unsigned long long)st.journal_entries,
               st.journal_writer_cpu_ns > 0 ? "yes" : "no");
        rc = print_totals(k, "now", 0);
    }
    hy_kernel_close(k); /* the journal is closed with every entry written */
    return rc == 0 ? 0 : 1;
}
