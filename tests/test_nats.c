/* The NATS scale-out (subsystems/nats.c) against a real nats-server on
 * 127.0.0.1, started here on a free port; other processes are forks. The
 * subject mapping both ways; a keyed subsystem split over 3 processes,
 * 100 k keyed messages, each key handled in order by exactly one process;
 * ask across processes (reply, no exporter, remote timeout); a durable send
 * acknowledged after the owner journaled it; malformed and oversized
 * messages from NATS dead-lettered; the server killed and restarted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nats/nats.h>

#include "hypha.h"
#include "hypha_ext.h"

#define SERVER "/usr/sbin/nats-server"

static int g_port;
static pid_t g_server;
static char g_url[64];

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static void server_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    g_server = fork();
    if (g_server == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        execl(SERVER, SERVER, "-a", "127.0.0.1", "-p", port, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !port_open(g_port); i++)
        sleep_ms(10);
    assert_true(port_open(g_port));
}

static void server_stop(void)
{
    kill(g_server, SIGKILL);
    waitpid(g_server, NULL, 0);
}

static hy_kernel *kernel_nats_opts(const hy_config *cfg, int bufbytes, int reconnect_wait_ms,
                                   int ask_timeout_ms)
{
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, cfg), 0);
    const char *servers[] = {g_url};
    hy_nats_opts o = {.servers = servers, .nservers = 1, .reconnect_wait_ms = reconnect_wait_ms,
                      .reconnect_buf_bytes = bufbytes, .ask_timeout_ms = ask_timeout_ms};
    assert_int_equal(hy_nats_attach(k, &o), 0);
    return k;
}

static hy_kernel *kernel_with_nats(const hy_config *cfg, int bufbytes)
{
    return kernel_nats_opts(cfg, bufbytes, 50, 2000);
}

/* Start this program again in a role (fork and exec): the test process
 * holds libnats threads and locks by then, which a bare fork would copy in
 * whatever state they are (and TSan refuses threads after such a fork).
 * The pipe ends stay open across exec. */
static pid_t spawn(const char *role, const char *arg, int wfd, int wfd2)
{
    pid_t pid = fork();
    if (pid == 0) {
        char port[16], a[16], b[16];
        snprintf(port, sizeof port, "%d", g_port);
        snprintf(a, sizeof a, "%d", wfd);
        snprintf(b, sizeof b, "%d", wfd2);
        execl("/proc/self/exe", "test_nats", role, arg, port, a, b, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* ------------------------------------------------------------ mapping */

static void roundtrip(const char *path, const char *want)
{
    char subj[512], back[512];
    int n = hy_nats_subject(path, subj, sizeof subj);
    assert_true(n > 0);
    if (want)
        assert_string_equal(subj, want);
    assert_true(hy_nats_path(subj, back, sizeof back) > 0);
    assert_string_equal(back, path);
}

static void test_subject_mapping(void **st)
{
    (void)st;
    roundtrip("orders://item/42/add", "hypha.orders.item.42.add");
    roundtrip("orders://", "hypha.orders");
    roundtrip("orders://a.b/*/>/x y", "hypha.orders.a~2Eb.~2A.~3E.x~20y");
    roundtrip("orders://a//b/", "hypha.orders.a.~.b.~");
    roundtrip("orders://~/\x01\xff", "hypha.orders.~7E.~01~FF");
    char out[64];
    assert_int_equal(hy_nats_path("hypha.orders.~41", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_path("hypha.orders.~2e", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_path("hypha.orders..x", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_path("hypha.Orders.x", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_path("other.orders.x", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_path("hypha.orders.~2", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_path("hypha.orders.~", out, sizeof out), HY_EBADPATH);
    roundtrip("orders:///", "hypha.orders.~.~");
    assert_int_equal(hy_nats_path("hypha.orders.a~2Fb", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_subject("nopath", out, sizeof out), HY_EBADPATH);
    assert_int_equal(hy_nats_subject("orders://item/42", out, 8), HY_ETOOBIG);
    /* random paths round-trip */
    srand(7);
    for (int i = 0; i < 20000; i++) {
        char p[80] = "x://";
        int n = rand() % 60;
        for (int j = 0; j < n; j++)
            p[4 + j] = (char)(1 + rand() % 255);
        p[4 + n] = 0;
        roundtrip(p, NULL);
    }
}

/* ------------------------------------------------------------ keyed, 3 processes */

#define KEYS 100
#define PER_KEY 1000
#define PARTS 6

static int32_t g_last[KEYS];
static _Atomic uint64_t g_handled, g_bad;

static int keyed_handler(hy_ctx *ctx, const hy_msg *msg)
{
    size_t kl, len;
    const char *key = hy_param(ctx, "id", &kl);
    const int32_t *seq = hy_msg_payload(msg, &len);
    int id = atoi(key);
    int32_t s;
    memcpy(&s, seq, sizeof s);
    if (id < 0 || id >= KEYS || len != sizeof s || s != g_last[id] + 1)
        atomic_fetch_add(&g_bad, 1);
    else
        g_last[id] = s;
    atomic_fetch_add(&g_handled, 1);
    return 0;
}

static void keyed_child(int idx, int wfd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 0; i < KEYS; i++)
        g_last[i] = -1;
    hy_kernel *k = kernel_with_nats(NULL, 0);
    hy_route r[] = {{.pattern = "item/{id}/add", .handler = keyed_handler}};
    hy_subsystem_def d = {.routes = r, .nroutes = 1};
    if (hy_subsystem_register(k, "orders", &d) != 0)
        _exit(2);
    uint32_t owned[PARTS / 3];
    for (int i = 0; i < PARTS / 3; i++)
        owned[i] = (uint32_t)(idx + 3 * i);
    hy_nats_export_opts eo = {.partitions = PARTS, .owned = owned, .nowned = PARTS / 3};
    if (hy_nats_export(k, "orders", &eo) != 0)
        _exit(3);
    char c = 'r';
    if (write(wfd, &c, 1) != 1)
        _exit(4);
    /* until nothing came for 500 ms (and something came), or 20 s */
    uint64_t prev = 0;
    int quiet = 0;
    for (int i = 0; i < 400 && quiet < 10; i++) {
        sleep_ms(50);
        uint64_t h = atomic_load(&g_handled);
        quiet = (h == prev && h > 0) ? quiet + 1 : 0;
        prev = h;
    }
    hy_kernel_drain(k, 1000);
    int64_t rep[3] = {(int64_t)atomic_load(&g_handled), (int64_t)atomic_load(&g_bad), 0};
    for (int i = 0; i < KEYS; i++)
        rep[2] += g_last[i] + 1; /* a complete key counts PER_KEY */
    if (write(wfd, rep, sizeof rep) != sizeof rep)
        _exit(5);
    hy_kernel_close(k);
    _exit(0);
}

static void test_keyed_three_processes(void **st)
{
    (void)st;
    int fds[3][2];
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        if (pids[i] == 0) {
            close(fds[i][0]);
            keyed_child(i, fds[i][1]);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < 3; i++) {
        char c;
        assert_int_equal(read(fds[i][0], &c, 1), 1);
    }
    hy_kernel *k = kernel_with_nats(NULL, 0);
    hy_nats_import_opts io = {.partitions = PARTS, .key_pattern = "item/{id}/add", .key = "id"};
    assert_int_equal(hy_nats_import(k, "orders", &io), 0);
    for (int32_t s = 0; s < PER_KEY; s++)
        for (int key = 0; key < KEYS; key++) {
            char path[64];
            snprintf(path, sizeof path, "orders://item/%d/add", key);
            int rc;
            while ((rc = hy_send(k, path, &s, sizeof s)) == HY_EFULL || rc == HY_ENOMEM)
                sleep_ms(1);
            assert_int_equal(rc, 0);
        }
    assert_int_equal(hy_kernel_drain(k, 10000), 0);
    int64_t handled = 0, bad = 0, complete = 0;
    int busy = 0;
    for (int i = 0; i < 3; i++) {
        int64_t rep[3];
        assert_int_equal(read(fds[i][0], rep, sizeof rep), (ssize_t)sizeof rep);
        handled += rep[0];
        bad += rep[1];
        complete += rep[2];
        busy += rep[0] > 0;
        int status;
        waitpid(pids[i], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    hy_nats_stats ns;
    assert_int_equal(hy_nats_stats_get(k, "orders", &ns), 0);
    assert_int_equal(ns.published, KEYS * PER_KEY);
    assert_int_equal(handled, KEYS * PER_KEY);
    assert_int_equal(bad, 0);
    assert_int_equal(complete, KEYS * PER_KEY); /* every key whole, at one process */
    assert_int_equal(busy, 3);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ ask, durable, malformed */

static _Atomic uint64_t g_dead_remote;

static void on_dead(void *ud, const char *path, size_t pl, const void *p, size_t len,
                    hy_dead_reason r)
{
    (void)ud, (void)path, (void)pl, (void)p, (void)len;
    if (r == HY_DEAD_REMOTE)
        atomic_fetch_add(&g_dead_remote, 1);
}

static int echo(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    return hy_reply(ctx, p, len);
}

static int slow(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    sleep_ms(400);
    return 0;
}

static int deadcount(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    uint64_t n = atomic_load(&g_dead_remote);
    return hy_reply(ctx, &n, sizeof n);
}

static _Atomic uint64_t g_journaled, g_ticks;

static int journaled(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    if (!hy_is_replaying(ctx))
        atomic_fetch_add(&g_journaled, 1);
    return 0;
}

static int tick(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add(&g_ticks, 1);
    return 0;
}

/* calc://count/ticks and calc://count/journaled: the child's figures */
static int count(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    size_t l;
    const char *what = hy_param(ctx, "what", &l);
    uint64_t n = l == 5 && memcmp(what, "ticks", 5) == 0 ? atomic_load(&g_ticks)
                                                         : atomic_load(&g_journaled);
    return hy_reply(ctx, &n, sizeof n);
}

static char g_dir[64];

static void calc_child(int wfd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    hy_config cfg = {.dead_letter = on_dead, .journal_path = g_dir, .max_payload = 1024};
    hy_kernel *k = kernel_with_nats(&cfg, 0);
    hy_route r[] = {{.pattern = "echo", .handler = echo},
                    {.pattern = "slow", .handler = slow},
                    {.pattern = "dead", .handler = deadcount},
                    {.pattern = "tick", .handler = tick},
                    {.pattern = "count/{what}", .handler = count}};
    hy_subsystem_def d = {.routes = r, .nroutes = 5};
    hy_route rj[] = {{.pattern = "put", .handler = journaled}};
    hy_subsystem_def dj = {.routes = rj, .nroutes = 1, .persistent = 1};
    if (hy_subsystem_register(k, "calc", &d) || hy_subsystem_register(k, "ledger", &dj) ||
        hy_nats_export(k, "calc", NULL) || hy_nats_export(k, "ledger", NULL))
        _exit(2);
    char c = 'r';
    if (write(wfd, &c, 1) != 1)
        _exit(4);
    pause(); /* killed by the parent */
    _exit(0);
}

typedef struct dur {
    _Atomic int done;
    _Atomic int status;
} dur;

static void on_durable(void *ud, int status)
{
    dur *d = ud;
    atomic_store(&d->status, status);
    atomic_store(&d->done, 1);
}

static void test_ask_durable_malformed(void **st)
{
    (void)st;
    snprintf(g_dir, sizeof g_dir, "/tmp/hy-nats-test-%d", (int)getpid());
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t child = spawn("calc", g_dir, fd[1], -1);
    close(fd[1]);
    char c;
    assert_int_equal(read(fd[0], &c, 1), 1);
    hy_kernel *k = kernel_with_nats(NULL, 0);
    assert_int_equal(hy_nats_import(k, "calc", NULL), 0);
    assert_int_equal(hy_nats_import(k, "ledger", NULL), 0);
    assert_int_equal(hy_nats_import(k, "nobody", NULL), 0);
    void *rep;
    size_t rl;
    for (int i = 0; i < 100; i++) {
        char q[32];
        int n = snprintf(q, sizeof q, "ping %d", i);
        assert_int_equal(hy_ask(k, "calc://echo", q, (size_t)n, &rep, &rl, 2000), 0);
        assert_int_equal(rl, (size_t)n);
        assert_memory_equal(rep, q, (size_t)n);
        hy_free(rep);
    }
    assert_int_equal(hy_ask(k, "nobody://x", "a", 1, &rep, &rl, 1000), HY_ENOROUTE);
    assert_int_equal(hy_ask(k, "calc://slow", "a", 1, &rep, &rl, 100), HY_ETIMEDOUT);
    /* a remote handler that does not reply: its error crosses */
    assert_int_equal(hy_ask(k, "calc://nothere", "a", 1, &rep, &rl, 1000), HY_ENOROUTE);

    dur d = {0};
    assert_int_equal(hy_nats_send_durable(k, "ledger://put", "x", 1, on_durable, &d), 0);
    for (int i = 0; i < 300 && !atomic_load(&d.done); i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&d.done), 1);
    assert_int_equal(atomic_load(&d.status), 0);
    dur d2 = {0};
    /* calc is not persistent: the owner refuses, the ack says why */
    assert_int_equal(hy_nats_send_durable(k, "calc://echo", "x", 1, on_durable, &d2), 0);
    for (int i = 0; i < 300 && !atomic_load(&d2.done); i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&d2.status), HY_EINVAL);

    /* malformed and oversized, straight from NATS */
    natsConnection *nc;
    assert_int_equal(natsConnection_ConnectTo(&nc, g_url), NATS_OK);
    assert_int_equal(natsConnection_PublishString(nc, "hypha.calc.~ZZ", "bad"), NATS_OK);
    assert_int_equal(natsConnection_PublishString(nc, "hypha.calc.a~2e", "bad"), NATS_OK);
    static char big[4096];
    assert_int_equal(natsConnection_Publish(nc, "hypha.calc.echo", big, sizeof big), NATS_OK);
    natsConnection_Flush(nc);
    natsConnection_Destroy(nc);
    uint64_t dead = 0;
    for (int i = 0; i < 100 && dead < 3; i++) {
        sleep_ms(10);
        assert_int_equal(hy_ask(k, "calc://dead", NULL, 0, &rep, &rl, 1000), 0);
        memcpy(&dead, rep, sizeof dead);
        hy_free(rep);
    }
    assert_int_equal(dead, 3);
    /* and it still answers */
    assert_int_equal(hy_ask(k, "calc://echo", "z", 1, &rep, &rl, 1000), 0);
    hy_free(rep);

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    hy_kernel_close(k);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ ownership moves */

static int whoami(hy_ctx *ctx, const hy_msg *msg)
{
    (void)msg;
    const char *who = hy_subsystem_udata(ctx);
    return hy_reply(ctx, who, strlen(who));
}

/* A process owning every partition of "own" (2 of them); it answers asks
 * with its name. Started with fork and exec of this program: the test
 * process holds live libnats connections (threads, locks) by then, which a
 * bare fork would copy in whatever state they are. */
static void owner_main(const char *who, int wfd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    hy_kernel *k = kernel_with_nats(NULL, 0);
    hy_route r[] = {{.pattern = "item/{id}", .handler = whoami}};
    hy_subsystem_def d = {.routes = r, .nroutes = 1, .udata = (void *)who};
    /* "P<n>": only partition n */
    static const uint32_t owned[] = {0, 1};
    static uint32_t one;
    hy_nats_export_opts eo = {.partitions = 2, .owned = owned, .nowned = 2};
    if (who[0] == 'P') {
        one = (uint32_t)(who[1] - '0');
        eo.owned = &one;
        eo.nowned = 1;
    }
    if (hy_subsystem_register(k, "own", &d) || hy_nats_export(k, "own", &eo))
        _exit(2);
    char c = 'r';
    if (write(wfd, &c, 1) != 1)
        _exit(4);
    for (;;)
        pause();
}

static pid_t owner_start(const char *who)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = spawn("owner", who, fd[1], -1);
    close(fd[1]);
    char c;
    assert_int_equal(read(fd[0], &c, 1), 1);
    close(fd[0]);
    return pid;
}

static void ask_all(hy_kernel *k, const char *want, int want_rc)
{
    for (int key = 0; key < 20; key++) {
        char path[64];
        snprintf(path, sizeof path, "own://item/%d", key);
        void *rep = NULL;
        size_t rl = 0;
        int rc = hy_ask(k, path, NULL, 0, &rep, &rl, 3000);
        if (rc != want_rc)
            fprintf(stderr, "ask %s (want %s): %s\n", path, want ? want : "-", hy_err_name(rc));
        assert_int_equal(rc, want_rc);
        if (rc == 0) {
            assert_int_equal(rl, strlen(want));
            assert_memory_equal(rep, want, rl);
        }
        hy_free(rep);
    }
}

/* Ownership is static: when the owner leaves, its partitions have no
 * subscriber (asks: HY_ENOROUTE) until another process exports the
 * subsystem owning them; from then on every key reaches the new owner. */
static void test_ownership_moves(void **st)
{
    (void)st;
    pid_t a = owner_start("A");
    hy_kernel *k = kernel_with_nats(NULL, 0);
    hy_nats_import_opts io = {.partitions = 2, .key_pattern = "item/{id}", .key = "id"};
    assert_int_equal(hy_nats_import(k, "own", &io), 0);
    ask_all(k, "A", 0);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    sleep_ms(100); /* the server notices the closed connection */
    ask_all(k, NULL, HY_ENOROUTE);
    pid_t b = owner_start("B");
    ask_all(k, "B", 0);
    kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ pub/sub */

static _Atomic int g_got;

static int on_event(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx;
    size_t len;
    const char *p = hy_msg_payload(msg, &len);
    if (len == 5 && memcmp(p, "hello", 5) == 0 &&
        strcmp(hy_msg_path(msg, NULL), "events://user/7/login") == 0)
        atomic_fetch_add(&g_got, 1);
    return 0;
}

static void pubsub_main(int wfd, int wfd2)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    hy_kernel *k = kernel_with_nats(NULL, 0);
    if (hy_subscribe(k, "events://user/{id}/login", on_event, NULL, NULL) ||
        hy_nats_bridge_publish(k, "events"))
        _exit(2);
    char c = 'r';
    if (write(wfd, &c, 1) != 1)
        _exit(4);
    for (int i = 0; i < 300 && atomic_load(&g_got) < 3; i++)
        sleep_ms(10);
    int got = atomic_load(&g_got);
    hy_publish(k, "events://user/7/login", "hello", 5, NULL);
    if (write(wfd2, &got, sizeof got) != sizeof got)
        _exit(5);
    sleep_ms(300);
    _exit(0);
}

/* A publish in one process reaches a subscriber in another; the other's
 * reach ours; neither gets its own back twice. */
static void test_pubsub_across(void **st)
{
    (void)st;
    int fd[2], back[2];
    assert_int_equal(pipe(fd), 0);
    assert_int_equal(pipe(back), 0);
    pid_t child = spawn("pubsub", "-", fd[1], back[1]);
    close(fd[1]);
    close(back[1]);
    char c;
    assert_int_equal(read(fd[0], &c, 1), 1);
    hy_kernel *k = kernel_with_nats(NULL, 0);
    assert_int_equal(hy_subscribe(k, "events://**", on_event, NULL, NULL), 0);
    assert_int_equal(hy_nats_bridge_publish(k, "events"), 0);
    atomic_store(&g_got, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hy_publish(k, "events://user/7/login", "hello", 5, NULL), 0);
    int got = 0;
    assert_int_equal(read(back[0], &got, sizeof got), (ssize_t)sizeof got);
    assert_int_equal(got, 3); /* the child saw all three */
    for (int i = 0; i < 300 && atomic_load(&g_got) < 4; i++)
        sleep_ms(10);
    sleep_ms(50);
    /* ours three, locally, and the child's one: no echo */
    assert_int_equal(atomic_load(&g_got), 4);
    waitpid(child, NULL, 0);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ server restart */

static void test_server_restart(void **st)
{
    (void)st;
    snprintf(g_dir, sizeof g_dir, "/tmp/hy-nats-test-r%d", (int)getpid());
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t child = spawn("calc", g_dir, fd[1], -1);
    close(fd[1]);
    char c;
    assert_int_equal(read(fd[0], &c, 1), 1);
    hy_kernel *k = kernel_with_nats(NULL, -1); /* no reconnect buffer */
    assert_int_equal(hy_nats_import(k, "calc", NULL), 0);
    assert_int_equal(hy_nats_import(k, "ledger", NULL), 0);
    void *rep;
    size_t rl;
    assert_int_equal(hy_ask(k, "calc://echo", "a", 1, &rep, &rl, 1000), 0);
    hy_free(rep);
    server_stop();
    sleep_ms(100);
    assert_int_equal(hy_ask(k, "calc://echo", "a", 1, &rep, &rl, 1000), HY_EDISCONNECTED);
    assert_int_equal(hy_nats_send_durable(k, "ledger://put", "x", 1, on_durable, NULL),
                     HY_EDISCONNECTED);
    /* a plain send is published on the sender's thread: refused at once,
     * and kept as a dead letter */
    hy_stats s0, s1;
    assert_int_equal(hy_kernel_stats(k, &s0), 0);
    assert_int_equal(hy_send(k, "calc://echo", "a", 1), HY_EDISCONNECTED);
    hy_send_item items[2] = {{"calc://echo", "a", 1}, {"calc://echo", "b", 1}};
    size_t accepted = 9;
    assert_int_equal(hy_send_batch(k, items, 2, &accepted), HY_EDISCONNECTED);
    assert_int_equal(accepted, 0);
    assert_int_equal(hy_kernel_stats(k, &s1), 0);
    assert_int_equal(s1.dead[HY_DEAD_REMOTE], s0.dead[HY_DEAD_REMOTE] + 2);
    server_start();
    int rc = -1;
    for (int i = 0; i < 300 && rc != 0; i++) {
        sleep_ms(20);
        rc = hy_ask(k, "calc://echo", "b", 1, &rep, &rl, 500);
        if (rc == 0)
            hy_free(rep);
    }
    assert_int_equal(rc, 0);
    dur d = {0};
    assert_int_equal(hy_nats_send_durable(k, "ledger://put", "x", 1, on_durable, &d), 0);
    for (int i = 0; i < 300 && !atomic_load(&d.done); i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&d.status), 0);
    hy_nats_stats ns;
    assert_int_equal(hy_nats_stats_get(k, NULL, &ns), 0);
    assert_true(ns.reconnects >= 1);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    hy_kernel_close(k);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ outages */

static pid_t calc_start(const char *dir_tag)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/hy-nats-test-%s%d", dir_tag, (int)getpid());
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t child = spawn("calc", g_dir, fd[1], -1);
    close(fd[1]);
    char c;
    assert_int_equal(read(fd[0], &c, 1), 1);
    close(fd[0]);
    return child;
}

static void calc_stop(pid_t child)
{
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
}

/* One of the child's figures (calc://count/WHAT), asked until it answers. */
static uint64_t calc_count(hy_kernel *k, const char *what)
{
    char path[64];
    snprintf(path, sizeof path, "calc://count/%s", what);
    for (int i = 0; i < 300; i++) {
        void *rep = NULL;
        size_t rl = 0;
        if (hy_ask(k, path, NULL, 0, &rep, &rl, 500) == 0 && rl == sizeof(uint64_t)) {
            uint64_t n;
            memcpy(&n, rep, sizeof n);
            hy_free(rep);
            return n;
        }
        hy_free(rep);
        sleep_ms(20);
    }
    fail_msg("calc://count/%s never answered", what);
    return 0;
}

static uint64_t calc_count_until(hy_kernel *k, const char *what, uint64_t want)
{
    uint64_t n = 0;
    for (int i = 0; i < 300 && (n = calc_count(k, what)) < want; i++)
        sleep_ms(20);
    return n;
}

/* What the local subsystem "calc" (the import) was sent through its actor. */
static uint64_t calc_local_sent(hy_kernel *k)
{
    hy_subsystem_info *subs = NULL;
    size_t nsubs = 0;
    assert_int_equal(hy_subsystems_list(k, &subs, &nsubs), 0);
    uint64_t sent = UINT64_MAX;
    for (size_t i = 0; i < nsubs; i++)
        if (strcmp(subs[i].name, "calc") == 0)
            sent = subs[i].stats.sent;
    hy_free(subs);
    assert_true(sent != UINT64_MAX);
    return sent;
}

/* Plain sends during an outage wait in libnats' reconnect buffer and go out
 * after the restart; once the buffer is full they are refused
 * (HY_EDISCONNECTED) and dead-lettered. What was accepted is delivered,
 * exactly that. The importer reconnects later than the exporter (500 ms
 * against 50), so nothing is replayed before the exporter subscribed. */
static void test_buffered_outage(void **st)
{
    (void)st;
    pid_t child = calc_start("b");
    hy_kernel *k = kernel_nats_opts(NULL, 4096, 500, 2000);
    assert_int_equal(hy_nats_import(k, "calc", NULL), 0);
    assert_int_equal(calc_count(k, "ticks"), 0);
    /* a batch to an imported path: every item published, back to back, on
     * this thread; none passes through the local subsystem's actor */
    hy_send_item items[100];
    for (int i = 0; i < 100; i++)
        items[i] = (hy_send_item){"calc://tick", "0123456789abcdef", 16};
    hy_nats_stats n0, n1;
    assert_int_equal(hy_nats_stats_get(k, "calc", &n0), 0);
    uint64_t local_sent = calc_local_sent(k);
    size_t accepted_batch = 0;
    assert_int_equal(hy_send_batch(k, items, 100, &accepted_batch), 0);
    assert_int_equal(accepted_batch, 100);
    assert_int_equal(hy_nats_stats_get(k, "calc", &n1), 0);
    assert_int_equal(n1.published - n0.published, 100);
    assert_int_equal(calc_local_sent(k), local_sent);
    uint64_t before = calc_count_until(k, "ticks", 100);
    assert_int_equal(before, 100);
    server_stop();
    sleep_ms(100);
    hy_stats s0, s1;
    assert_int_equal(hy_kernel_stats(k, &s0), 0);
    uint64_t accepted = 0, refused = 0;
    for (int i = 0; i < 1000; i++) {
        int rc = hy_send(k, "calc://tick", "0123456789abcdef", 16);
        if (rc == 0)
            accepted++;
        else if (rc == HY_EDISCONNECTED)
            refused++;
        else
            fail_msg("send during the outage: %s", hy_err_name(rc));
    }
    assert_true(accepted > 0);
    assert_true(refused > 0); /* 4 KiB hold fewer than 1000 */
    assert_int_equal(hy_kernel_stats(k, &s1), 0);
    assert_int_equal(s1.dead[HY_DEAD_REMOTE] - s0.dead[HY_DEAD_REMOTE], refused);
    server_start();
    assert_int_equal(calc_count_until(k, "ticks", before + accepted), before + accepted);
    sleep_ms(100);
    assert_int_equal(calc_count(k, "ticks"), before + accepted); /* and no more */
    hy_kernel_close(k);
    calc_stop(child);
}

typedef struct dur_set {
    dur d[8];
} dur_set;

static int wait_done(dur *d, int n)
{
    int done = 0;
    for (int i = 0; i < 500; i++) {
        done = 0;
        for (int j = 0; j < n; j++)
            done += atomic_load(&d[j].done);
        if (done == n)
            break;
        sleep_ms(10);
    }
    return done;
}

/* hy_send_durable (the kernel's own call) to an imported persistent
 * subsystem crosses processes: acknowledged only once the owner journaled
 * it. During an outage nothing is acknowledged: the sends wait in the
 * reconnect buffer and time out; after the restart, whatever is
 * acknowledged has been journaled by the owner. */
static void test_durable_outage(void **st)
{
    (void)st;
    pid_t child = calc_start("d");
    hy_kernel *k = kernel_nats_opts(NULL, 0, 500, 1000);
    assert_int_equal(hy_nats_import(k, "calc", NULL), 0);
    assert_int_equal(hy_nats_import(k, "ledger", NULL), 0);
    dur ok = {0};
    assert_int_equal(hy_send_durable(k, "ledger://put", "x", 1, on_durable, &ok), 0);
    assert_int_equal(wait_done(&ok, 1), 1);
    assert_int_equal(atomic_load(&ok.status), 0);
    assert_true(calc_count_until(k, "journaled", 1) >= 1);
    /* the local subsystem is not persistent: without the import's hook this
     * would be HY_EINVAL; a path the import does not have is refused */
    assert_int_equal(hy_send_durable(k, "nowhere://x", "x", 1, on_durable, &ok), HY_ENOROUTE);

    server_stop();
    sleep_ms(100);
    dur_set out = {0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(hy_send_durable(k, "ledger://put", "y", 1, on_durable, &out.d[i]), 0);
    assert_int_equal(wait_done(out.d, 8), 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(atomic_load(&out.d[i].status), HY_ETIMEDOUT);

    /* sent while down, the server back before their deadline */
    dur_set back = {0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(hy_send_durable(k, "ledger://put", "z", 1, on_durable, &back.d[i]),
                         0);
    server_start();
    assert_int_equal(wait_done(back.d, 8), 8);
    uint64_t acked = 1;
    for (int i = 0; i < 8; i++) {
        int stt = atomic_load(&back.d[i].status);
        assert_true(stt == 0 || stt == HY_ETIMEDOUT || stt == HY_ENOROUTE);
        acked += stt == 0;
    }
    /* and one more once all is up again, so something is acknowledged */
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        dur d = {0};
        assert_int_equal(hy_send_durable(k, "ledger://put", "w", 1, on_durable, &d), 0);
        assert_int_equal(wait_done(&d, 1), 1);
        rc = atomic_load(&d.status);
        if (rc != 0)
            sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    acked++;
    /* every acknowledgement stands for a journaled message (the timed-out
     * ones may have been journaled as well: their fate is unknown) */
    assert_true(calc_count_until(k, "journaled", acked) >= acked);
    hy_kernel_close(k);
    calc_stop(child);
}

/* ------------------------------------------------------------ asks without waiting */

#define ASYNC_N 3
static _Atomic int g_async_state[ASYNC_N]; /* 0 none, 1 reply "ping", 2 timeout, 3 other */

static int async_go(hy_ctx *ctx, const hy_msg *msg)
{
    size_t n, len;
    const char *id = hy_param(ctx, "n", &n);
    const char *target = hy_msg_payload(msg, &len);
    char path[64], reply_to[64];
    snprintf(path, sizeof path, "%.*s", (int)len, target);
    snprintf(reply_to, sizeof reply_to, "client://reply/%.*s", (int)n, id);
    return hy_ask_async_timeout(ctx, path, "ping", 4, reply_to, 1500);
}

static int async_reply(hy_ctx *ctx, const hy_msg *msg)
{
    size_t n, len;
    const char *id = hy_param(ctx, "n", &n);
    int i = id[0] - '0';
    const void *p = hy_msg_payload(msg, &len);
    int v = hy_msg_is_timeout(msg) ? 2 : len == 4 && memcmp(p, "ping", 4) == 0 ? 1 : 3;
    if (i >= 0 && i < ASYNC_N)
        atomic_store(&g_async_state[i], v);
    return 0;
}

typedef struct answer {
    _Atomic int done;
    int err;
    char data[16];
    size_t len;
} answer;

static void on_answer(void *udata, int err, const void *payload, size_t len)
{
    answer *a = udata;
    a->err = err;
    a->len = len < sizeof a->data ? len : sizeof a->data;
    if (a->len)
        memcpy(a->data, payload, a->len);
    atomic_store(&a->done, 1);
}

static answer *ask_cb(hy_kernel *k, const char *path, answer *a)
{
    memset(a, 0, sizeof *a);
    assert_int_equal(hy_ext_ask_cb(k, path, "ping", 4, on_answer, a), 0);
    for (int i = 0; i < 500 && !atomic_load(&a->done); i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&a->done), 1);
    return a;
}

/* Asks that do not wait on imported paths. From a handler,
 * hy_ask_async_timeout: the remote reply arrives at reply_to; a remote
 * handler that never replies ends in the timeout message. Answered by a
 * call (hy_ext_ask_cb, what the exporter uses): the reply, HY_ETIMEDOUT at
 * the import's deadline, HY_ENOROUTE when no process serves the path, and
 * HY_EDISCONNECTED while the server is down (no reconnect buffer). */
static void test_ask_async_imported(void **st)
{
    (void)st;
    pid_t child = calc_start("a");
    hy_kernel *k = kernel_nats_opts(NULL, -1, 50, 250);
    assert_int_equal(hy_timer_attach(k, NULL), 0);
    assert_int_equal(hy_nats_import(k, "calc", NULL), 0);
    assert_int_equal(hy_nats_import(k, "nobody", NULL), 0);
    hy_route r[] = {{.pattern = "go/{n}", .handler = async_go},
                    {.pattern = "reply/{n}", .handler = async_reply}};
    hy_subsystem_def d = {.routes = r, .nroutes = 2};
    assert_int_equal(hy_subsystem_register(k, "client", &d), 0);

    assert_int_equal(hy_send(k, "client://go/0", "calc://echo", 11), 0);
    assert_int_equal(hy_send(k, "client://go/1", "calc://slow", 11), 0);
    assert_int_equal(hy_send(k, "client://go/2", "nobody://x", 10), 0);
    for (int i = 0; i < 300; i++) {
        int all = 1;
        for (int j = 0; j < ASYNC_N; j++)
            all &= atomic_load(&g_async_state[j]) != 0;
        if (all)
            break;
        sleep_ms(10);
    }
    assert_int_equal(atomic_load(&g_async_state[0]), 1);
    assert_int_equal(atomic_load(&g_async_state[1]), 2);
    assert_int_equal(atomic_load(&g_async_state[2]), 2);

    answer a;
    ask_cb(k, "calc://echo", &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.len, 4);
    assert_memory_equal(a.data, "ping", 4);
    assert_int_equal(ask_cb(k, "calc://slow", &a)->err, HY_ETIMEDOUT);
    assert_int_equal(ask_cb(k, "nobody://x", &a)->err, HY_ENOROUTE);
    server_stop();
    sleep_ms(100);
    assert_int_equal(ask_cb(k, "calc://echo", &a)->err, HY_EDISCONNECTED);
    server_start();
    int rc = -1;
    for (int i = 0; i < 300 && rc != 0; i++) {
        sleep_ms(20);
        rc = ask_cb(k, "calc://echo", &a)->err;
    }
    assert_int_equal(rc, 0);
    hy_kernel_close(k);
    calc_stop(child);
}

/* hy_ask and hy_ext_ask_cb on an imported path are published on the
 * asker's thread: nothing passes through the import's actor, each is
 * counted as published and acked by the import, and a keyed ask reaches the
 * process owning its key's partition (another partition, owned by nobody:
 * HY_ENOROUTE). */
static void test_ask_forwarded(void **st)
{
    (void)st;
    pid_t child = calc_start("f");
    hy_kernel *k = kernel_with_nats(NULL, 0);
    assert_int_equal(hy_nats_import(k, "calc", NULL), 0);
    uint64_t local_sent = calc_local_sent(k);
    hy_nats_stats n0, n1;
    assert_int_equal(hy_nats_stats_get(k, "calc", &n0), 0);
    for (int i = 0; i < 50; i++) {
        char q[16];
        int n = snprintf(q, sizeof q, "q%d", i);
        void *rep;
        size_t rl;
        assert_int_equal(hy_ask(k, "calc://echo", q, (size_t)n, &rep, &rl, 2000), 0);
        assert_int_equal(rl, (size_t)n);
        assert_memory_equal(rep, q, rl);
        hy_free(rep);
    }
    answer a;
    ask_cb(k, "calc://echo", &a);
    assert_int_equal(a.err, 0);
    assert_memory_equal(a.data, "ping", 4);
    assert_int_equal(calc_local_sent(k), local_sent);
    assert_int_equal(hy_nats_stats_get(k, "calc", &n1), 0);
    assert_int_equal(n1.published - n0.published, 51);
    assert_int_equal(n1.acked - n0.acked, 51);
    calc_stop(child);

    pid_t owner = owner_start("P1");
    hy_nats_import_opts io = {.partitions = 2, .key_pattern = "item/{id}", .key = "id"};
    assert_int_equal(hy_nats_import(k, "own", &io), 0);
    int answered = 0;
    for (int key = 0; key < 20; key++) {
        char id[8], path[32];
        snprintf(id, sizeof id, "%d", key);
        snprintf(path, sizeof path, "own://item/%s", id);
        void *rep = NULL;
        size_t rl = 0;
        int rc = hy_ask(k, path, NULL, 0, &rep, &rl, 2000);
        if (hy_nats_partition(id, strlen(id), 2) == 1) {
            assert_int_equal(rc, 0);
            assert_int_equal(rl, 2);
            assert_memory_equal(rep, "P1", 2);
            answered++;
        } else {
            assert_int_equal(rc, HY_ENOROUTE);
        }
        hy_free(rep);
    }
    assert_true(answered > 0 && answered < 20);
    kill(owner, SIGKILL);
    waitpid(owner, NULL, 0);
    hy_kernel_close(k);
}

int main(int argc, char **argv)
{
    if (argc == 6) { /* a role of spawn() */
        g_port = atoi(argv[3]);
        snprintf(g_url, sizeof g_url, "nats://127.0.0.1:%d", g_port);
        if (strcmp(argv[1], "owner") == 0)
            owner_main(argv[2], atoi(argv[4]));
        if (strcmp(argv[1], "pubsub") == 0)
            pubsub_main(atoi(argv[4]), atoi(argv[5]));
        if (strcmp(argv[1], "calc") == 0) {
            snprintf(g_dir, sizeof g_dir, "%s", argv[2]);
            calc_child(atoi(argv[4]));
        }
        return 2;
    }
    if (access(SERVER, X_OK) != 0) {
        printf("SKIP test_nats: %s is missing (make test installs nats-server)\n", SERVER);
        printf("[  PASSED  ] 0 test(s).\n");
        return 0;
    }
    g_port = free_port();
    snprintf(g_url, sizeof g_url, "nats://127.0.0.1:%d", g_port);
    server_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_mapping),
        cmocka_unit_test(test_keyed_three_processes),
        cmocka_unit_test(test_ask_durable_malformed),
        cmocka_unit_test(test_ownership_moves),
        cmocka_unit_test(test_pubsub_across),
        cmocka_unit_test(test_server_restart),
        cmocka_unit_test(test_buffered_outage),
        cmocka_unit_test(test_durable_outage),
        cmocka_unit_test(test_ask_async_imported),
        cmocka_unit_test(test_ask_forwarded),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    server_stop();
    return rc;
}
