/* hypha-bench nats: subsystems across processes through NATS
 * (subsystems/nats.c) against raw libnats, alternating in the same run
 * against one nats-server started here on a free loopback port.
 *
 *   remote-static  one process sends MESSAGES 16-byte messages, another
 *                  handles them. hypha: hy_send to an imported subsystem,
 *                  whose exporter (a forked process) counts them in a
 *                  handler; raw ("raw-pubsub"): natsConnection_Publish to a
 *                  subscriber callback that counts. Timed from the first
 *                  send to the receiver's last message.
 *   remote-ask     MESSAGES/10 sequential round trips. hypha: hy_ask on an
 *                  imported path answered by hy_reply in the other process;
 *                  raw ("raw-request"): natsConnection_Request answered by
 *                  natsConnection_Publish to the reply subject, both
 *                  connections "send ASAP" as hypha's request connection
 *                  (with libnats' default buffering a raw round trip waits
 *                  for the flusher: under 1 k/s here).
 *
 * Like with like: 16-byte payloads, subjects of the same depth ("hypha.
 * bench.t" and "raw.bench.t"), one sending process, one receiving process
 * and the server, started afresh each round, the two sides alternating.
 *
 * ROUNDS rounds, one JSON line per contender and round (with
 * cpu_ns_per_msg: the CPU time of the sending process and the receiving
 * one, not the server's, per message: a busy machine disturbs it less than
 * the rate; and their voluntary and involuntary context switches per
 * message, vcsw_per_msg and ivcsw_per_msg), then median-* lines and ratio-* lines (hypha / raw of the
 * medians, and cpu_ratio: raw's CPU per message over hypha's; the target is
 * 0.80, reported, never asserted). A round fails when a message is lost.
 *
 * --alone: one round of one side only, for counting what a round trip costs
 * the operating system (perf stat, strace): --scenario remote-ask or
 * remote-static runs hypha's side, raw-request or raw-pubsub the raw one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bench.h"
#include "hypha.h"

#define ROUNDS 5

static char url[64];
static uint64_t target;
static _Atomic uint64_t count;
static int done_fd = -1;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &l) != 0) {
        close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static void counted(void)
{
    if (atomic_fetch_add_explicit(&count, 1, memory_order_relaxed) + 1 == target) {
        char c = 'd';
        if (write(done_fd, &c, 1) != 1)
            _exit(1);
    }
}

/* ------------------------------------------------------------ receivers */

static int on_t(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    counted();
    return 0;
}

static int on_echo(hy_ctx *ctx, const hy_msg *msg)
{
    size_t len;
    const void *p = hy_msg_payload(msg, &len);
    return hy_reply(ctx, p, len);
}

static void raw_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)sub, (void)arg;
    const char *reply = natsMsg_GetReply(m);
    if (reply)
        natsConnection_Publish(nc, reply, natsMsg_GetData(m), natsMsg_GetDataLength(m));
    else
        counted();
    natsMsg_Destroy(m);
}

/* A raw connection; asap: each publish written at once (as hypha's
 * request connection), else libnats' default buffering with its flusher. */
static natsStatus raw_connect(natsConnection **nc, bool asap)
{
    natsOptions *o;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, asap);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    return s;
}

/* A receiver process: hypha (an exporting kernel) or raw; writes 'r' when
 * subscribed, 'd' when it counted target messages; killed after. */
static pid_t receiver(bool hypha, unsigned workers, int *rfd)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(p[1]);
        *rfd = p[0];
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(p[0]);
    done_fd = p[1];
    if (hypha) {
        hy_config cfg = {.workers = workers};
        hy_kernel *k;
        const char *servers[] = {url};
        hy_nats_opts o = {.servers = servers, .nservers = 1};
        hy_route r[] = {{.pattern = "t", .handler = on_t}, {.pattern = "echo", .handler = on_echo}};
        hy_subsystem_def d = {.routes = r, .nroutes = 2};
        if (hy_kernel_open(&k, &cfg) || hy_nats_attach(k, &o) ||
            hy_subsystem_register(k, "bench", &d) || hy_nats_export(k, "bench", NULL))
            _exit(1);
    } else {
        natsConnection *nc;
        natsSubscription *s1, *s2;
        if (raw_connect(&nc, true) != NATS_OK ||
            natsConnection_Subscribe(&s1, nc, "raw.bench.t", raw_on_msg, NULL) != NATS_OK ||
            natsConnection_Subscribe(&s2, nc, "raw.bench.echo", raw_on_msg, NULL) != NATS_OK ||
            natsSubscription_SetPendingLimits(s1, -1, -1) != NATS_OK ||
            natsConnection_Flush(nc) != NATS_OK)
            _exit(1);
    }
    char c = 'r';
    if (write(done_fd, &c, 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

/* What a round cost both ends: CPU time (user + system) and context
 * switches (voluntary: a thread waited; involuntary: it was preempted) of
 * this process and of its reaped children (the receivers; the server is
 * reaped only after the last round). */
typedef struct round_cost {
    uint64_t cpu_ns, vcsw, ivcsw;
} round_cost;

static void cost_add(int who, round_cost *c)
{
    struct rusage u;
    getrusage(who, &u);
    c->cpu_ns += ((uint64_t)u.ru_utime.tv_sec + (uint64_t)u.ru_stime.tv_sec) * 1000000000u +
                 ((uint64_t)u.ru_utime.tv_usec + (uint64_t)u.ru_stime.tv_usec) * 1000u;
    c->vcsw += (uint64_t)u.ru_nvcsw;
    c->ivcsw += (uint64_t)u.ru_nivcsw;
}

static round_cost cost_now(void)
{
    round_cost c = {0, 0, 0};
    cost_add(RUSAGE_SELF, &c);
    cost_add(RUSAGE_CHILDREN, &c);
    return c;
}

/* The CPU both ends of the last round used (the sender's threads, the
 * receiver process; not the server's), per message: a figure a busy machine
 * disturbs less than the rate; and their context switches per message. Set
 * by each round. */
static double last_cpu_ns_per_msg, last_vcsw_per_msg, last_ivcsw_per_msg;
static round_cost round_cost0;

static void round_cpu_begin(void)
{
    round_cost0 = cost_now();
}

static void receiver_stop(pid_t pid, int rfd)
{
    close(rfd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void round_cpu_end(uint64_t n)
{
    round_cost now = cost_now();
    last_cpu_ns_per_msg = (double)(now.cpu_ns - round_cost0.cpu_ns) / (double)n;
    last_vcsw_per_msg = (double)(now.vcsw - round_cost0.vcsw) / (double)n;
    last_ivcsw_per_msg = (double)(now.ivcsw - round_cost0.ivcsw) / (double)n;
}

/* ------------------------------------------------------------ rounds */

static const char payload[16] = "0123456789abcdef";

/* Returns the rate, or -1. ask: round trips; else one-way messages. */
static double round_hypha(bool ask, uint64_t n, unsigned workers)
{
    target = n;
    int rfd;
    round_cpu_begin();
    pid_t pid = receiver(true, workers, &rfd);
    char c;
    if (pid < 0 || read(rfd, &c, 1) != 1)
        return -1;
    hy_config cfg = {.workers = workers};
    hy_kernel *k;
    const char *servers[] = {url};
    hy_nats_opts o = {.servers = servers, .nservers = 1};
    if (hy_kernel_open(&k, &cfg) || hy_nats_attach(k, &o) || hy_nats_import(k, "bench", NULL)) {
        receiver_stop(pid, rfd);
        return -1;
    }
    double rate = -1;
    uint64_t t0 = bench_now_ns();
    if (ask) {
        uint64_t i;
        for (i = 0; i < n; i++) {
            void *rep;
            size_t rl;
            if (hy_ask(k, "bench://echo", payload, sizeof payload, &rep, &rl, 5000) != 0 ||
                rl != sizeof payload)
                break;
            hy_free(rep);
        }
        if (i == n)
            rate = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    } else {
        uint64_t i;
        for (i = 0; i < n; i++) {
            int rc;
            while ((rc = hy_send(k, "bench://t", payload, sizeof payload)) == HY_EFULL ||
                   rc == HY_ENOMEM)
                sleep_ms(1);
            if (rc != 0)
                break;
        }
        if (i == n && read(rfd, &c, 1) == 1)
            rate = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    }
    hy_kernel_close(k);
    receiver_stop(pid, rfd);
    round_cpu_end(n);
    return rate;
}

static double round_raw(bool ask, uint64_t n)
{
    target = n;
    int rfd;
    round_cpu_begin();
    pid_t pid = receiver(false, 0, &rfd);
    char c;
    if (pid < 0 || read(rfd, &c, 1) != 1)
        return -1;
    natsConnection *nc;
    if (raw_connect(&nc, ask) != NATS_OK) {
        receiver_stop(pid, rfd);
        return -1;
    }
    double rate = -1;
    uint64_t t0 = bench_now_ns();
    uint64_t i;
    if (ask) {
        for (i = 0; i < n; i++) {
            natsMsg *rep;
            if (natsConnection_Request(&rep, nc, "raw.bench.echo", payload, sizeof payload,
                                       5000) != NATS_OK)
                break;
            natsMsg_Destroy(rep);
        }
        if (i == n)
            rate = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    } else {
        for (i = 0; i < n; i++)
            if (natsConnection_Publish(nc, "raw.bench.t", payload, sizeof payload) != NATS_OK)
                break;
        if (i == n && natsConnection_Flush(nc) == NATS_OK && read(rfd, &c, 1) == 1)
            rate = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    }
    natsConnection_Destroy(nc);
    receiver_stop(pid, rfd);
    round_cpu_end(n);
    return rate;
}

static int run_nats(const bench_opts *opts)
{
    const char *sc = opts->scenario;
    bool raw_alone = opts->alone && sc &&
                     (strcmp(sc, "raw-pubsub") == 0 || strcmp(sc, "raw-request") == 0);
    bool do_static = !sc || strcmp(sc, "remote-static") == 0 || strcmp(sc, "raw-pubsub") == 0;
    bool do_ask = !sc || strcmp(sc, "remote-ask") == 0 || strcmp(sc, "raw-request") == 0;
    if ((!do_static && !do_ask) || (!opts->alone && sc && strncmp(sc, "raw-", 4) == 0)) {
        fprintf(stderr, "nats: no scenario '%s'\n", opts->scenario);
        return 2;
    }
    const char *server = access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server"
                                                                    : "/usr/bin/nats-server";
    if (access(server, X_OK) != 0) {
        fprintf(stderr, "nats: nats-server is not installed (apt-get install nats-server)\n");
        return 1;
    }
    int port = free_port();
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    pid_t srv = fork();
    if (srv == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        execl(server, server, "-a", "127.0.0.1", "-p", p, (char *)NULL);
        _exit(127);
    }
    natsConnection *probe = NULL;
    for (int i = 0; i < 200 && natsConnection_ConnectTo(&probe, url) != NATS_OK; i++)
        sleep_ms(10);
    if (!probe) {
        fprintf(stderr, "nats: the server did not start\n");
        kill(srv, SIGKILL);
        waitpid(srv, NULL, 0);
        return 1;
    }
    natsConnection_Destroy(probe);
    uint64_t n = opts->messages ? opts->messages : 500000;
    uint64_t nask = n / 10 ? n / 10 : 1;
    unsigned workers = opts->workers ? opts->workers : 2;
    int fail = 0;
    for (int s = 0; s < 2 && !fail; s++) {
        bool ask = s == 1;
        if ((ask && !do_ask) || (!ask && !do_static))
            continue;
        const char *name = ask ? "remote-ask" : "remote-static";
        const char *raw = ask ? "raw-request" : "raw-pubsub";
        unsigned unit = ask ? BENCH_ROUND_TRIPS : BENCH_MSGS;
        uint64_t cnt = ask ? nask : n;
        double hy[ROUNDS], rw[ROUNDS], hy_cpu[ROUNDS], rw_cpu[ROUNDS];
        char extra[200];
        if (opts->alone) {
            double rate = raw_alone ? round_raw(ask, cnt) : round_hypha(ask, cnt, workers);
            fail = rate < 0;
            snprintf(extra, sizeof extra,
                     "\"messages\":%llu,\"cpu_ns_per_msg\":%.0f,\"vcsw_per_msg\":%.2f,"
                     "\"ivcsw_per_msg\":%.2f%s",
                     (unsigned long long)cnt, last_cpu_ns_per_msg, last_vcsw_per_msg,
                     last_ivcsw_per_msg, ask ? ",\"unit\":\"round_trips\"" : "");
            if (!fail)
                bench_report(opts, "nats", raw_alone ? raw : name,
                             raw_alone ? unit | BENCH_PEER : unit, rate, (double)cnt / rate,
                             extra);
            continue;
        }
        for (int r = 0; r < ROUNDS; r++) {
            hy[r] = round_hypha(ask, cnt, workers);
            hy_cpu[r] = last_cpu_ns_per_msg;
            double hy_vcsw = last_vcsw_per_msg, hy_ivcsw = last_ivcsw_per_msg;
            rw[r] = round_raw(ask, cnt);
            rw_cpu[r] = last_cpu_ns_per_msg;
            if (hy[r] < 0 || rw[r] < 0) {
                fprintf(stderr, "nats: %s round %d failed\n", name, r);
                fail = 1;
                break;
            }
            const char *fmt = "\"messages\":%llu,\"round\":%d,\"cpu_ns_per_msg\":%.0f,"
                              "\"vcsw_per_msg\":%.2f,\"ivcsw_per_msg\":%.2f%s";
            snprintf(extra, sizeof extra, fmt, (unsigned long long)cnt, r, hy_cpu[r], hy_vcsw,
                     hy_ivcsw, ask ? ",\"unit\":\"round_trips\"" : "");
            bench_report(opts, "nats", name, unit, hy[r], (double)cnt / hy[r], extra);
            snprintf(extra, sizeof extra, fmt, (unsigned long long)cnt, r, rw_cpu[r],
                     last_vcsw_per_msg, last_ivcsw_per_msg,
                     ask ? ",\"unit\":\"round_trips\"" : "");
            bench_report(opts, "nats", raw, unit | BENCH_PEER, rw[r], (double)cnt / rw[r], extra);
        }
        if (fail)
            break;
        double mh = bench_median(hy, ROUNDS), mr = bench_median(rw, ROUNDS);
        char label[64];
        snprintf(extra, sizeof extra, "\"rounds\":%d%s", ROUNDS,
                 ask ? ",\"unit\":\"round_trips\"" : "");
        snprintf(label, sizeof label, "median-%s", name);
        bench_report(opts, "nats", label, unit, mh, 0, extra);
        snprintf(label, sizeof label, "median-%s", raw);
        bench_report(opts, "nats", label, unit | BENCH_PEER, mr, 0, extra);
        snprintf(label, sizeof label, "ratio-%s-vs-%s", name, raw);
        /* cpu_ratio: raw's CPU per message over hypha's (medians), so 1 is
         * "costs the same" and lower is costlier, as the rate ratio */
        snprintf(extra, sizeof extra, "\"ratio\":%.2f,\"target\":0.80,\"cpu_ratio\":%.2f",
                 mh / mr, bench_median(rw_cpu, ROUNDS) / bench_median(hy_cpu, ROUNDS));
        bench_report(opts, "nats", label, unit, mh, 0, extra);
    }
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    return fail;
}

HY_BENCH_FAMILY(nats, run_nats,
                "remote-static, remote-ask: hy_send/hy_ask across processes over NATS, "
                "against raw libnats pub/sub and request/reply")
