/* passivation: keyed actors that come and go, and keep their state.
 *
 * Keyed actors are virtual: the first message to a key activates one (through
 * state_init), and the kernel's passivation thread frees it again when its
 * subsystem has more than max_active_actors of them (least recently used
 * first) or when it had no message for idle_timeout_ms. A non-persistent
 * subsystem passivates only if it sets the passivate callback, which saves the
 * state somewhere; state_init loads it back at the next activation.
 *   "users"    max_active_actors 4, passivate saves each user's touch count
 *              in a table here: a reactivated user has its count back;
 *   "sessions" idle_timeout_ms 30, hy_passivate_discard: a reactivated
 *              session starts afresh.
 * Passivation runs in the background, so the program waits for it by polling
 * hy_subsystem_stats_get (with a deadline), then prints exact counts.
 * Look at hy_subsystem_def.max_active_actors/idle_timeout_ms/passivate,
 * hy_passivate_discard and hy_subsystem_stats.activations/passivations. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hypha.h"

typedef struct user {
    int touches;
    int restored; /* made from a saved state */
} user;

/* The saved states of users, by key: an entry stays once written, since
 * state_init may be called more than once for one activation (see user_new). */
static pthread_mutex_t saved_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char key[16]; /* "": slot free */
    int touches;
    int passivated; /* saved and not activated since */
} saved[16];

/* The slot of key, or a free one; -1 when the table is full. Under saved_lock. */
static int slot_of(const char *key, size_t key_len)
{
    int free_slot = -1;
    for (int i = 0; i < 16; i++) {
        if (strlen(saved[i].key) == key_len && memcmp(saved[i].key, key, key_len) == 0)
            return i;
        if (!saved[i].key[0] && free_slot < 0)
            free_slot = i;
    }
    return free_slot;
}

/* On the passivation thread: copy the state out; the kernel then frees it. */
static int user_passivate(void *udata, const char *key, size_t key_len, void *state)
{
    (void)udata;
    if (key_len >= sizeof saved[0].key)
        return HY_EINVAL; /* refused: the actor stays active */
    pthread_mutex_lock(&saved_lock);
    int i = slot_of(key, key_len);
    if (i >= 0) {
        memcpy(saved[i].key, key, key_len);
        saved[i].key[key_len] = '\0';
        saved[i].touches = ((user *)state)->touches;
        saved[i].passivated = 1;
    }
    pthread_mutex_unlock(&saved_lock);
    return i >= 0 ? 0 : HY_ENOMEM;
}

/* At each activation: load the saved state, if any. It copies and leaves the
 * entry in place: should a passivation elsewhere race with this activation,
 * the kernel drops the state made here and calls state_init again. */
static int user_new(void *udata, const char *key, size_t key_len, void **state)
{
    (void)udata;
    user *u = (user *)calloc(1, sizeof *u); /* the subsystem's own actor too */
    if (!u)
        return HY_ENOMEM;
    pthread_mutex_lock(&saved_lock);
    int i = key && key_len < sizeof saved[0].key ? slot_of(key, key_len) : -1;
    if (i >= 0 && saved[i].key[0]) {
        u->touches = saved[i].touches;
        u->restored = 1;
        saved[i].passivated = 0;
    }
    pthread_mutex_unlock(&saved_lock);
    *state = u;
    return 0;
}

static void user_free(void *udata, void *state)
{
    (void)udata;
    free(state);
}

static int touch(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    user *u = (user *)hy_state(ctx);
    u->touches++;
    return hy_reply(ctx, u, sizeof *u);
}

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "%s: %s %s\n", what, hy_strerror(rc), hy_errdetail());
    return rc;
}

/* Touch sub://key/touch and wait for the handler's answer (its state). */
static int touch_key(hy_kernel *k, const char *sub, const char *key, user *out)
{
    char path[64];
    snprintf(path, sizeof path, "%s://%s/touch", sub, key);
    void *reply = NULL;
    size_t len = 0;
    int rc = check(hy_ask(k, path, NULL, 0, &reply, &len, 5000), "ask");
    if (rc == 0 && len == sizeof *out)
        memcpy(out, reply, sizeof *out);
    hy_free(reply);
    return rc;
}

/* Poll until the subsystem has passivated `want` actors in all and its
 * counts agree (active = activations - passivations); gives up after 10000
 * polls 1 ms apart. */
static int wait_passivations(hy_kernel *k, const char *sub, uint64_t want,
                             hy_subsystem_stats *st)
{
    const struct timespec pause = {0, 1000000}; /* 1 ms */
    for (int polls = 0; polls < 10000; polls++) {
        int rc = check(hy_subsystem_stats_get(k, sub, st), "stats");
        if (rc != 0 || (st->passivations >= want &&
                        st->actors - 1 == st->activations - st->passivations))
            return rc;
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "%s: %llu passivations after 10000 polls, want %llu\n", sub,
            (unsigned long long)st->passivations, (unsigned long long)want);
    return HY_ETIMEDOUT;
}

static void print_stats(const char *sub, const hy_subsystem_stats *st)
{
    printf("  %s: activations %llu, passivations %llu, active %llu\n", sub,
           (unsigned long long)st->activations, (unsigned long long)st->passivations,
           (unsigned long long)(st->actors - 1)); /* less the subsystem's own actor */
}

int main(void)
{
    hy_kernel *k;
    hy_config cfg = {.workers = 2};
    if (check(hy_kernel_open(&k, &cfg), "open") != 0)
        return 1;
    hy_route routes[] = {{.pattern = "{id}/touch", .handler = touch, .key = "id"}};
    hy_subsystem_def users = {.routes = routes, .nroutes = 1, .state_init = user_new,
                              .state_free = user_free, .max_active_actors = 4,
                              .passivate = user_passivate};
    hy_subsystem_def sessions = {.routes = routes, .nroutes = 1, .state_init = user_new,
                                 .state_free = user_free, .idle_timeout_ms = 30,
                                 .passivate = hy_passivate_discard};
    int rc = check(hy_subsystem_register(k, "users", &users), "register");
    if (rc == 0)
        rc = check(hy_subsystem_register(k, "sessions", &sessions), "register");

    /* Ten users, one touch each: six of them must go to get back to four. */
    hy_subsystem_stats st;
    user u = {0, 0};
    char key[16];
    for (int i = 0; rc == 0 && i < 10; i++) {
        snprintf(key, sizeof key, "u%d", i);
        rc = touch_key(k, "users", key, &u);
    }
    if (rc == 0 && (rc = wait_passivations(k, "users", 6, &st)) == 0) {
        printf("10 users touched once, cap 4:\n");
        print_stats("users", &st);
    }

    /* Which six went depends on timing; any of them will do. */
    key[0] = '\0';
    pthread_mutex_lock(&saved_lock);
    for (int i = 0; i < 16 && !key[0]; i++)
        if (saved[i].passivated)
            memcpy(key, saved[i].key, sizeof key); /* both 16 bytes */
    pthread_mutex_unlock(&saved_lock);
    if (rc == 0 && (rc = touch_key(k, "users", key, &u)) == 0) {
        printf("a passivated user touched again: touches %d, state %s\n", u.touches,
               u.restored ? "restored" : "lost");
        rc = wait_passivations(k, "users", 7, &st);
    }
    if (rc == 0)
        print_stats("users", &st);

    /* Five sessions, left idle until all are passivated, then touched again. */
    for (int i = 0; rc == 0 && i < 5; i++) {
        snprintf(key, sizeof key, "s%d", i);
        rc = touch_key(k, "sessions", key, &u);
    }
    if (rc == 0 && (rc = wait_passivations(k, "sessions", 5, &st)) == 0) {
        printf("5 sessions touched once, then idle for 30 ms:\n");
        print_stats("sessions", &st);
    }
    int afresh = 0;
    for (int i = 0; rc == 0 && i < 5; i++) {
        snprintf(key, sizeof key, "s%d", i);
        if ((rc = touch_key(k, "sessions", key, &u)) == 0)
            afresh += u.touches == 1 && !u.restored;
    }
    if (rc == 0 && check(rc = hy_subsystem_stats_get(k, "sessions", &st), "stats") == 0) {
        printf("touched again: %d of 5 started afresh (hy_passivate_discard)\n", afresh);
        printf("  sessions: activations %llu\n", (unsigned long long)st.activations);
    }
    hy_kernel_close(k);
    return rc == 0 ? 0 : 1;
}
