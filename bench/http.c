/* hypha-bench http: the HTTP gateway (subsystems/http.c) against
 * libmicrohttpd's own minimal responder, alternating in the same run so
 * both see the same machine state.
 *
 *   send-64c   POST /send/bench/t with a 16-byte body, driven by wrk on
 *              loopback: 2 threads, 64 connections (keep-alive), SECONDS
 *              seconds a round. hypha: the gateway, a hy_send_as per
 *              request to a subsystem that counts; the peer
 *              ("mhd-minimal-send-64c"): a bare MHD daemon with the same
 *              threads and limits that reads the body and answers 202 with
 *              the same JSON, touching no kernel.
 *
 * ROUNDS rounds, one JSON line per contender and round (requests/s as
 * "msgs_per_s"), then "median-*" lines and "ratio-send-64c-vs-mhd" (hypha /
 * minimal, of the medians; the target is 0.70 or better, reported, never
 * asserted). A round fails when wrk saw a non-2xx answer or a socket error,
 * or when the kernel did not handle every accepted send. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "bench.h"
#include "hypha.h"

#define ROUNDS 3
#define SECONDS 3
#define CONNECTIONS 64
#define SERVER_THREADS 4

static const char accepted_body[] = "{\"status\":\"accepted\"}";

/* ------------------------------------------------------------ wrk */

typedef struct wrk_result {
    double rps;
    unsigned long long requests, non2xx, socket_errors;
} wrk_result;

static int run_wrk(int port, const char *script, wrk_result *out)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "wrk -t2 -c%d -d%ds -s %s http://127.0.0.1:%d/send/bench/t 2>&1", CONNECTIONS,
             SECONDS, script, port);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    memset(out, 0, sizeof *out);
    char line[512];
    bool saw = false;
    while (fgets(line, sizeof line, p)) {
        unsigned long long a, b, c, d;
        if (sscanf(line, "Requests/sec: %lf", &out->rps) == 1)
            saw = true;
        else if (sscanf(line, " %llu requests in", &a) == 1)
            out->requests = a;
        else if (sscanf(line, " Non-2xx or 3xx responses: %llu", &a) == 1)
            out->non2xx = a;
        else if (sscanf(line, " Socket errors: connect %llu, read %llu, write %llu, timeout %llu",
                        &a, &b, &c, &d) == 4)
            out->socket_errors = a + b + c + d;
    }
    int rc = pclose(p);
    return saw && rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ contenders */

static _Atomic uint64_t handled;

static int on_send(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    return 0;
}

static int round_hypha(unsigned workers, const char *script, wrk_result *w)
{
    hy_config cfg = {.workers = workers};
    hy_kernel *k;
    if (hy_kernel_open(&k, &cfg) != 0)
        return -1;
    hy_route r = {.pattern = "t", .handler = on_send};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1};
    hy_http_opts ho = {.threads = SERVER_THREADS};
    if (hy_subsystem_register(k, "bench", &def) != 0 || hy_http_attach(k, &ho) != 0) {
        hy_kernel_close(k);
        return -1;
    }
    atomic_store(&handled, 0);
    int rc = run_wrk(hy_http_port(k), script, w);
    hy_kernel_drain(k, 10000);
    hy_stats s;
    hy_kernel_stats(k, &s);
    /* every accepted send handled, at least as many as wrk counted */
    if (rc == 0 && (s.handled != s.sent || atomic_load(&handled) < w->requests)) {
        fprintf(stderr, "http: %llu sent, %llu handled, wrk counted %llu\n",
                (unsigned long long)s.sent, (unsigned long long)s.handled, w->requests);
        rc = -1;
    }
    hy_kernel_close(k);
    return rc;
}

static enum MHD_Result minimal(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    static int first;
    if (!*con_cls) {
        *con_cls = &first;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof accepted_body - 1, (void *)accepted_body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_ACCEPTED, r);
    MHD_destroy_response(r);
    return rc;
}

static int round_minimal(const char *script, wrk_result *w)
{
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, minimal, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)SERVER_THREADS, MHD_OPTION_CONNECTION_LIMIT,
        256u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)32 * 1024, MHD_OPTION_END);
    if (!d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int rc = info ? run_wrk(info->port, script, w) : -1;
    MHD_stop_daemon(d);
    return rc;
}

/* ------------------------------------------------------------ driver */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void report(const bench_opts *opts, const char *scenario, unsigned unit,
                   const wrk_result *w, int round)
{
    char extra[192];
    snprintf(extra, sizeof extra,
             "\"unit\":\"requests\",\"requests\":%llu,\"connections\":%d,\"server_threads\":%d,"
             "\"round\":%d",
             w->requests, CONNECTIONS, SERVER_THREADS, round);
    bench_report(opts, "http", scenario, unit, w->rps, SECONDS, extra);
}

static int run_http(const bench_opts *opts)
{
    if (opts->scenario && strcmp(opts->scenario, "send-64c") != 0) {
        fprintf(stderr, "http: no scenario '%s'\n", opts->scenario);
        return 2;
    }
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        fprintf(stderr, "http: wrk is not installed (make bench-deps)\n");
        return 1;
    }
    unsigned workers = opts->workers ? opts->workers : 2;
    char script[] = "/tmp/hypha-bench-wrk-XXXXXX";
    int fd = mkstemp(script);
    if (fd < 0)
        return 1;
    static const char lua[] = "wrk.method = \"POST\"\n"
                              "wrk.body = \"0123456789abcdef\"\n"
                              "wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n";
    bool ok = write(fd, lua, sizeof lua - 1) == (ssize_t)(sizeof lua - 1);
    close(fd);
    double hy[ROUNDS], mhd[ROUNDS];
    for (int r = 0; ok && r < ROUNDS; r++) {
        wrk_result w;
        if (round_hypha(workers, script, &w) != 0 || w.non2xx || w.socket_errors) {
            fprintf(stderr, "http: hypha round %d failed (%llu non-2xx, %llu socket errors)\n",
                    r, w.non2xx, w.socket_errors);
            ok = false;
            break;
        }
        report(opts, "send-64c", BENCH_MSGS, &w, r);
        hy[r] = w.rps;
        if (round_minimal(script, &w) != 0 || w.non2xx || w.socket_errors) {
            fprintf(stderr, "http: minimal round %d failed\n", r);
            ok = false;
            break;
        }
        report(opts, "mhd-minimal-send-64c", BENCH_MSGS | BENCH_PEER, &w, r);
        mhd[r] = w.rps;
    }
    unlink(script);
    if (!ok)
        return 1;
    double mh = median(hy, ROUNDS), mm = median(mhd, ROUNDS);
    char extra[128];
    snprintf(extra, sizeof extra, "\"unit\":\"requests\",\"rounds\":%d,\"connections\":%d",
             ROUNDS, CONNECTIONS);
    bench_report(opts, "http", "median-send-64c", BENCH_MSGS, mh, SECONDS, extra);
    bench_report(opts, "http", "median-mhd-minimal-send-64c", BENCH_MSGS | BENCH_PEER, mm,
                 SECONDS, extra);
    snprintf(extra, sizeof extra, "\"ratio\":%.2f,\"target\":0.70,\"connections\":%d", mh / mm,
             CONNECTIONS);
    bench_report(opts, "http", "ratio-send-64c-vs-mhd", BENCH_MSGS, mh, 0, extra);
    return 0;
}

HY_BENCH_FAMILY(http, run_http,
                "send-64c: POST /send with wrk, 64 connections, against a minimal MHD responder")
