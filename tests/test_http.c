/* The HTTP gateway (subsystems/http.c): a real server on 127.0.0.1, on a
 * port the OS picks, and a real client (libcurl). Every status the
 * gateway maps an hy_err to, the tokens, the body limit, a thousand
 * connections against a small connection limit, /metrics against the
 * Prometheus text format's line grammar, /health's 200 and 503. No timing
 * is asserted: a "stall" is made by a handler held at a gate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "hypha.h"
#include "support.h"

/* ------------------------------------------------------------ client */

typedef struct resp {
    long status;
    char *body;
    size_t len;
} resp;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    resp *r = ud;
    size_t add = size * n;
    char *b = realloc(r->body, r->len + add + 1);
    assert_non_null(b);
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static int g_port;

/* method "GET" or "POST"; token NULL for none; chunked: send the body with
 * no Content-Length. */
static resp request_ex(const char *method, const char *path, const char *token,
                       const char *body, size_t len, bool chunked)
{
    resp r = {0};
    r.body = calloc(1, 1);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *hdr = NULL;
    char auth[256];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    if (chunked)
        hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        if (!chunked)
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return r;
}

static resp request(const char *method, const char *path, const char *token, const char *body)
{
    return request_ex(method, path, token, body, body ? strlen(body) : 0, false);
}

/* The status of a request; its body must contain want (NULL: anything). */
static void expect(const char *method, const char *path, const char *token, const char *body,
                   long status, const char *want)
{
    resp r = request(method, path, token, body);
    if (r.status != status || (want && !strstr(r.body, want)))
        fail_msg("%s %s: %ld %s (wanted %ld with %s)", method, path, r.status, r.body, status,
                 want ? want : "anything");
    free(r.body);
}

/* ------------------------------------------------------------ kernel */

static gate g_gate;
static _Atomic int g_gated;

static int echo(hy_ctx *ctx, const hy_msg *msg)
{
    size_t n;
    const void *p = hy_msg_payload(msg, &n);
    int rc = hy_reply(ctx, p, n);
    return rc == HY_ENOENT ? 0 : rc;
}

static int silent(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    return 0;
}

static int held(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    atomic_fetch_add(&g_gated, 1);
    gate_pass(&g_gate);
    return 0;
}

static int failing(hy_ctx *ctx, const hy_msg *msg)
{
    (void)ctx, (void)msg;
    return -1;
}

static char g_tokens[64];

typedef struct fixture {
    hy_kernel *k;
} fixture;

/* A kernel: orders (echo, a scoped route, a silent one), slow (one actor,
 * mailbox of 1, its handler held at the gate), doomed (stops on failure);
 * the gateway on an ephemeral port with the tokens file. */
static hy_kernel *start(const hy_http_opts *extra)
{
    memset(&g_gate, 0, sizeof g_gate);
    atomic_store(&g_gated, 0);
    hy_config cfg = {.workers = 2, .max_payload = 2048};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_route orders[] = {
        {.pattern = "item/{id}", .handler = echo},
        {.pattern = "secret", .handler = echo, .scope = "admin"},
        {.pattern = "silent", .handler = silent},
    };
    hy_subsystem_def od = {.routes = orders, .nroutes = 3};
    assert_int_equal(hy_subsystem_register(k, "orders", &od), 0);
    hy_route slow[] = {{.pattern = "hold", .handler = held}};
    hy_subsystem_def sd = {.routes = slow, .nroutes = 1, .mailbox_capacity = 1,
                           .overflow = HY_OVERFLOW_FAIL};
    assert_int_equal(hy_subsystem_register(k, "slow", &sd), 0);
    hy_route doomed[] = {{.pattern = "x", .handler = failing}};
    hy_subsystem_def dd = {.routes = doomed, .nroutes = 1, .strategy = HY_SUPERVISE_STOP};
    assert_int_equal(hy_subsystem_register(k, "doomed", &dd), 0);

    strcpy(g_tokens, "/tmp/hypha-http-tokensXXXXXX");
    int fd = mkstemp(g_tokens);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# token principal scopes\n\ns3cret-admin alice admin,ops\n"
               "plain-token bob\n");
    fclose(f);
    hy_http_opts o = extra ? *extra : (hy_http_opts){0};
    o.tokens_file = g_tokens;
    int rc = hy_http_attach(k, &o);
    if (rc)
        fail_msg("attach: %s %s", hy_err_name(rc), hy_errdetail());
    g_port = hy_http_port(k);
    assert_true(g_port > 0);
    unlink(g_tokens);
    return k;
}

static void stop(hy_kernel *k)
{
    gate_open(&g_gate);
    hy_kernel_close(k);
}

/* ------------------------------------------------------------ tests */

static void test_send_statuses(void **st)
{
    (void)st;
    hy_kernel *k = start(NULL);
    expect("POST", "/send/orders/item/42", NULL, "hello", 202, "accepted");
    expect("POST", "/send/orders/nothing/here", NULL, "x", 404, "HY_ENOROUTE");
    expect("POST", "/send/Bad%20Name/x", NULL, "x", 400, "HY_EBADPATH");
    expect("POST", "/send/orders/secret", NULL, "x", 403, "HY_EPERM");
    /* over the kernel's max_payload (2048), within the gateway's max_body */
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect("POST", "/send/orders/item/1", NULL, big, 413, "HY_ETOOBIG");
    /* a full mailbox: the first is held by the handler, the second queued */
    expect("POST", "/send/slow/hold", NULL, "1", 202, NULL);
    assert_true(wait_for(&g_gated, 1));
    expect("POST", "/send/slow/hold", NULL, "2", 202, NULL);
    expect("POST", "/send/slow/hold", NULL, "3", 429, "HY_EFULL");
    gate_open(&g_gate);
    /* a stopped actor */
    expect("POST", "/send/doomed/x", NULL, "x", 202, NULL);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    expect("POST", "/send/doomed/x", NULL, "x", 503, "HY_ESTOPPED");
    /* wrong method, unknown endpoint */
    expect("GET", "/send/orders/item/1", NULL, NULL, 405, NULL);
    expect("GET", "/nowhere", NULL, NULL, 404, "not_found");
    hy_http_stats hs;
    assert_int_equal(hy_http_stats_get(k, &hs), 0);
    assert_true(hs.requests >= 11 && hs.status_2xx >= 4 && hs.status_4xx >= 6 &&
                hs.status_5xx >= 1);
    stop(k);
}

static void test_ask(void **st)
{
    (void)st;
    hy_kernel *k = start(NULL);
    resp r = request("POST", "/ask/orders/item/7", NULL, "ping");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.body, "ping", 4);
    free(r.body);
    expect("POST", "/ask/orders/silent", NULL, "x", 502, "HY_ENOENT"); /* no reply */
    expect("POST", "/ask/slow/hold?timeout_ms=50", NULL, "x", 504, "HY_ETIMEDOUT");
    gate_open(&g_gate);
    /* over max_ask_ms: capped, not refused */
    expect("POST", "/ask/orders/item/8?timeout_ms=99999999", NULL, "y", 200, "y");
    expect("POST", "/ask/orders/item/7?timeout_ms=soon", NULL, "x", 400, "timeout_ms");
    expect("POST", "/ask/orders/missing", NULL, "x", 404, "HY_ENOROUTE");
    expect("POST", "/ask/orders/secret", "plain-token", "x", 403, "HY_EPERM");
    expect("POST", "/ask/orders/secret", "s3cret-admin", "ok", 200, "ok");
    stop(k);
}

static void test_auth(void **st)
{
    (void)st;
    hy_kernel *k = start(NULL);
    /* no token: anonymous, no scopes */
    expect("POST", "/send/orders/secret", NULL, "x", 403, "anonymous");
    /* bad token */
    expect("POST", "/send/orders/secret", "wrong", "x", 401, "unauthorized");
    expect("POST", "/send/orders/item/1", "wrong", "x", 401, NULL);
    /* a token without the scope */
    expect("POST", "/send/orders/secret", "plain-token", "x", 403, "bob");
    /* a good token */
    expect("POST", "/send/orders/secret", "s3cret-admin", "x", 202, NULL);
    /* /stats and / need a token by default; /metrics and /health do not */
    expect("GET", "/stats", NULL, NULL, 401, NULL);
    expect("GET", "/stats", "wrong", NULL, 401, NULL);
    expect("GET", "/stats", "plain-token", NULL, 200, "\"per_subsystem\":[");
    expect("GET", "/routes", "plain-token", NULL, 200, "\"secret\"");
    expect("GET", "/actors", "plain-token", NULL, 200, "\"total\":");
    expect("GET", "/", NULL, NULL, 401, NULL);
    expect("GET", "/", "plain-token", NULL, 200, "<");
    expect("GET", "/metrics", NULL, NULL, 200, "hypha_messages_sent_total");
    expect("GET", "/health", NULL, NULL, 200, "ok");
    hy_http_stats hs;
    hy_http_stats_get(k, &hs);
    assert_true(hs.unauthorized >= 5);
    stop(k);

    /* opened by option; closed by option */
    hy_http_opts o = {.open = HY_HTTP_OPEN_STATS | HY_HTTP_OPEN_DASHBOARD};
    k = start(&o);
    expect("GET", "/stats", NULL, NULL, 200, "\"sent\":");
    expect("GET", "/", NULL, NULL, 200, NULL);
    expect("GET", "/metrics", NULL, NULL, 401, NULL);
    expect("GET", "/health", NULL, NULL, 401, NULL);
    stop(k);
    o.open = HY_HTTP_OPEN_NONE;
    k = start(&o);
    expect("GET", "/health", NULL, NULL, 401, NULL);
    expect("GET", "/health", "plain-token", NULL, 200, NULL);
    stop(k);
}

static void test_body_limit(void **st)
{
    (void)st;
    hy_http_opts o = {.max_body = 1024};
    hy_kernel *k = start(&o);
    char body[4096];
    memset(body, 'b', sizeof body);
    /* Content-Length over the limit: refused before the body is read */
    resp r = request_ex("POST", "/send/orders/item/1", NULL, body, sizeof body, false);
    assert_int_equal(r.status, 413);
    free(r.body);
    /* chunked, no length given: read, dropped, refused */
    r = request_ex("POST", "/send/orders/item/1", NULL, "0123456789", 10, true);
    assert_int_equal(r.status, 202);
    free(r.body);
    char chunked[2048];
    memset(chunked, 'c', sizeof chunked - 1);
    chunked[sizeof chunked - 1] = '\0';
    r = request_ex("POST", "/send/orders/item/1", NULL, chunked, sizeof chunked - 1, true);
    assert_int_equal(r.status, 413);
    free(r.body);
    /* within it */
    r = request_ex("POST", "/send/orders/item/1", NULL, body, 1024, false);
    assert_int_equal(r.status, 202);
    free(r.body);
    expect("GET", "/health", NULL, NULL, 200, NULL);
    stop(k);
}

/* A thousand connections at once against a limit of 16: the limit holds
 * (the server never has more open), every transfer ends, and the server
 * still answers. */
static void test_many_connections(void **st)
{
    (void)st;
    enum { N = 1000, LIMIT = 16 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < N + 64 && rl.rlim_max >= N + 64) {
        rl.rlim_cur = N + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    hy_http_opts o = {.max_connections = LIMIT, .threads = 2};
    hy_kernel *k = start(&o);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    static CURL *easy[N];
    static resp rs[N];
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", g_port);
    for (int i = 0; i < N; i++) {
        rs[i] = (resp){0};
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &rs[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(easy[i], CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(m, easy[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    int ok = 0, refused = 0;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (msg->data.result == CURLE_OK) {
            long status;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            assert_int_equal(status, 200);
            ok++;
        } else {
            refused++;
        }
    }
    for (int i = 0; i < N; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        free(rs[i].body);
    }
    curl_multi_cleanup(m);
    assert_int_equal(ok + refused, N);
    assert_true(ok > 0);
    hy_http_stats hs;
    assert_int_equal(hy_http_stats_get(k, &hs), 0);
    print_message("1000 connections: %d answered, %d refused; peak %llu open (limit %d)\n", ok,
                  refused, (unsigned long long)hs.connections_peak, LIMIT);
    assert_true(hs.connections_peak <= LIMIT);
    expect("GET", "/health", NULL, NULL, 200, "ok");
    stop(k);
}

/* ------------------------------------------------------------ Prometheus text format */

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* A metric name at *p; its length (0: none). */
static size_t metric_name(const char *p)
{
    size_t n = 0;
    if (!name_start(p[0]))
        return 0;
    while (name_char(p[n]))
        n++;
    return n;
}

/* A float as the format allows (Go's ParseFloat, or NaN, +Inf, -Inf). */
static bool sample_value(const char *p, const char *end)
{
    char buf[64];
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (!strcmp(buf, "NaN") || !strcmp(buf, "+Inf") || !strcmp(buf, "-Inf"))
        return true;
    char *e;
    strtod(buf, &e);
    return *e == '\0';
}

/* Checks the exposition format 0.0.4 line by line: # HELP name text, # TYPE
 * name type (once per name, before its samples, type a known one), samples
 * name{label="value",...} value [timestamp] with escaped label values, and
 * every sample's family typed. Returns the number of samples, or -1 with the
 * bad line printed. */
static bool checker_quiet; /* while the checker's own self-test runs */

static int check_prometheus(const char *text)
{
    char typed[256][96];
    int ntyped = 0, samples = 0, lineno = 0;
    const char *line = text;
    while (*line) {
        lineno++;
        const char *eol = strchr(line, '\n');
        if (!eol) {
            if (!checker_quiet)
            print_error("line %d: no final newline\n", lineno);
            return -1;
        }
        const char *p = line;
        if (*p == '#') {
            p++;
            while (*p == ' ')
                p++;
            bool help = !strncmp(p, "HELP ", 5), type = !strncmp(p, "TYPE ", 5);
            if (help || type) {
                p += 5;
                size_t n = metric_name(p);
                if (!n || p[n] != ' ')
                    goto bad;
                if (type) {
                    const char *t = p + n + 1;
                    size_t tl = (size_t)(eol - t);
                    static const char *const types[] = {"counter", "gauge", "histogram",
                                                        "summary", "untyped"};
                    bool known = false;
                    for (size_t i = 0; i < 5; i++)
                        known |= tl == strlen(types[i]) && !strncmp(t, types[i], tl);
                    if (!known || n >= sizeof typed[0])
                        goto bad;
                    for (int i = 0; i < ntyped; i++)
                        if (strlen(typed[i]) == n && !strncmp(typed[i], p, n))
                            goto bad; /* typed twice */
                    if (ntyped == 256)
                        goto bad;
                    memcpy(typed[ntyped], p, n);
                    typed[ntyped++][n] = '\0';
                }
            }
        } else if (p != eol) {
            size_t n = metric_name(p);
            if (!n)
                goto bad;
            bool known = false;
            for (int i = 0; i < ntyped; i++)
                known |= strlen(typed[i]) == n && !strncmp(typed[i], p, n);
            if (!known)
                goto bad;
            p += n;
            if (*p == '{') {
                p++;
                while (*p != '}') {
                    size_t ln = metric_name(p);
                    if (!ln || p[ln] != '=' || p[ln + 1] != '"')
                        goto bad;
                    p += ln + 2;
                    while (*p != '"') {
                        if (p >= eol)
                            goto bad;
                        if (*p == '\\') {
                            if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                                goto bad;
                            p++;
                        }
                        p++;
                    }
                    p++;
                    if (*p == ',')
                        p++;
                    else if (*p != '}')
                        goto bad;
                }
                p++;
            }
            if (*p != ' ')
                goto bad;
            p++;
            const char *v = p;
            while (p < eol && *p != ' ')
                p++;
            if (!sample_value(v, p))
                goto bad;
            if (p < eol) { /* a timestamp: an integer */
                p++;
                if (p == eol)
                    goto bad;
                for (; p < eol; p++)
                    if (!((*p >= '0' && *p <= '9') || (*p == '-' && p == v)))
                        goto bad;
            }
            samples++;
        }
        line = eol + 1;
        continue;
    bad:
        if (!checker_quiet)
            print_error("line %d does not parse: %.*s\n", lineno, (int)(eol - line), line);
        return -1;
    }
    return samples;
}

static void test_metrics(void **st)
{
    (void)st;
    /* the checker itself refuses what it should */
    checker_quiet = true;
    assert_int_equal(check_prometheus("# TYPE a counter\na 1\n"), 1);
    assert_int_equal(check_prometheus("a 1\n"), -1);                          /* untyped */
    assert_int_equal(check_prometheus("# TYPE a counter\na{b=\"x} 1\n"), -1); /* quote */
    assert_int_equal(check_prometheus("# TYPE a counter\na one\n"), -1);
    assert_int_equal(check_prometheus("# TYPE a counte\na 1\n"), -1);
    assert_int_equal(check_prometheus("# TYPE a gauge\na{b=\"\\\"q\\\"\",c=\"\"} 1.5e3 17\n"), 1);
    assert_int_equal(check_prometheus("# TYPE a gauge\na 1"), -1); /* no newline */
    checker_quiet = false;

    hy_kernel *k = start(NULL);
    /* a subsystem whose name needs no escaping, timers attached, traffic */
    assert_int_equal(hy_timer_attach(k, NULL), 0);
    expect("POST", "/send/orders/item/1", NULL, "x", 202, NULL);
    expect("POST", "/send/orders/nothing", NULL, "x", 404, NULL);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    resp r = request("GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    int n = check_prometheus(r.body);
    assert_true(n > 50);
    const char *want[] = {
        "\nhypha_messages_sent_total 1\n",
        "hypha_dead_letters_total{reason=\"noroute\"} 1\n",
        "hypha_subsystem_messages_handled_total{subsystem=\"orders\"} 1\n",
        "\n# TYPE hypha_pool_bytes_reserved gauge\n",
        "\n# TYPE hypha_journal_failed_commits_total counter\n",
        "\n# TYPE hypha_journal_writer_cpu_seconds_total counter\n",
        "\n# TYPE hypha_passivations_total counter\n",
        "\n# TYPE hypha_timers_pending gauge\n",
        "\n# TYPE hypha_http_requests_total counter\n",
        "\nhypha_healthy 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("/metrics lacks %s", want[i]);
    free(r.body);
    stop(k);
}

static void test_health(void **st)
{
    (void)st;
    hy_http_opts o = {.stall_ms = 20};
    hy_kernel *k = start(&o);
    expect("GET", "/health", NULL, NULL, 200, "\"ok\"");
    /* hold the one actor of "slow" with a message queued behind it: handled
     * stops moving while queued > 0 */
    expect("POST", "/send/slow/hold", NULL, "1", 202, NULL);
    assert_true(wait_for(&g_gated, 1));
    expect("POST", "/send/slow/hold", NULL, "2", 202, NULL);
    expect("GET", "/health", NULL, NULL, 200, NULL); /* the first stuck sample */
    usleep(50 * 1000);                               /* at least stall_ms later */
    expect("GET", "/health", NULL, NULL, 503, "\"stalled\"");
    expect("GET", "/metrics", NULL, NULL, 200, "\nhypha_healthy 0\n");
    gate_open(&g_gate);
    assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    expect("GET", "/health", NULL, NULL, 200, "\"ok\"");
    stop(k);
}

/* A kernel whose journal map is 256 KiB and may not grow, with a persistent
 * subsystem "ledger" (route "add") and the gateway; healthy to begin with.
 * dir: a mkdtemp template, filled in; journal_close removes it. */
static hy_kernel *open_small_journal(char *dir)
{
    assert_non_null(mkdtemp(dir));
    char env[64];
    snprintf(env, sizeof env, "%s/j", dir);
    hy_config cfg = {.workers = 2, .journal_path = env, .durability = HY_DURABILITY_NOSYNC,
                     .journal_map_size = 256 << 10, .journal_map_max = 256 << 10};
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, &cfg), 0);
    hy_route r = {.pattern = "add", .handler = silent};
    hy_subsystem_def def = {.routes = &r, .nroutes = 1, .persistent = 1};
    assert_int_equal(hy_subsystem_register(k, "ledger", &def), 0);
    assert_int_equal(hy_http_attach(k, NULL), 0);
    g_port = hy_http_port(k);
    expect("GET", "/health", NULL, NULL, 200, "\"ok\"");
    return k;
}

static void journal_close(hy_kernel *k, const char *dir)
{
    hy_kernel_close(k);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A journal whose map is at its cap: persistent sends through the gateway
 * are refused with HY_EMAPFULL (507), and /health says "journal". */
static void test_health_journal(void **st)
{
    (void)st;
    char dir[] = "/tmp/hypha-http-journalXXXXXX";
    hy_kernel *k = open_small_journal(dir);
    static char big[8193];
    memset(big, 'j', sizeof big - 1);
    long status = 202;
    for (int i = 0; i < 1000 && status == 202; i++) {
        resp x = request("POST", "/send/ledger/add", NULL, big);
        status = x.status;
        if (status != 202 && !strstr(x.body, "HY_EMAPFULL"))
            fail_msg("send %d: %ld %s", i, x.status, x.body);
        free(x.body);
        if (i % 8 == 7)
            assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
    }
    assert_int_equal(status, 507);
    expect("GET", "/health", NULL, NULL, 503, "\"journal\"");
    expect("GET", "/metrics", NULL, NULL, 200, "\nhypha_healthy 0\n");
    journal_close(k, dir);
}

/* A journal's map over 90% of the size it may grow to: /health says "map"
 * before any send is refused. */
static void test_health_map_near_cap(void **st)
{
    (void)st;
    char dir[] = "/tmp/hypha-http-mapXXXXXX";
    hy_kernel *k = open_small_journal(dir);
    static char small[1024];
    memset(small, 'm', sizeof small);
    hy_stats s;
    assert_int_equal(hy_kernel_stats(k, &s), 0);
    assert_int_equal(s.journal_map_max, 256 << 10);
    for (int i = 0; i < 1000 && s.journal_map_used <= s.journal_map_max / 10 * 9; i++) {
        assert_int_equal(hy_send(k, "ledger://add", small, sizeof small), 0);
        assert_int_equal(hy_kernel_drain(k, WAIT_MS), 0);
        assert_int_equal(hy_kernel_stats(k, &s), 0);
    }
    assert_true(s.journal_map_used > s.journal_map_max / 10 * 9);
    expect("GET", "/health", NULL, NULL, 503, "\"map\"");
    journal_close(k, dir);
}

/* Slow clients hold connections, never the server: with one server thread
 * and twenty connections sending half a request line, a full request is
 * still answered. */
static void test_slow_clients(void **st)
{
    (void)st;
    enum { SLOW = 20 };
    hy_http_opts o = {.threads = 1, .max_connections = 64};
    hy_kernel *k = start(&o);
    int fds[SLOW];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < SLOW; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
        static const char half[] = "POST /send/orders/item/1 HTTP/1.1\r\nHost: x\r\nContent-Le";
        assert_true(write(fds[i], half, sizeof half - 1) == (ssize_t)(sizeof half - 1));
    }
    expect("POST", "/send/orders/item/2", NULL, "x", 202, NULL);
    expect("GET", "/health", NULL, NULL, 200, NULL);
    hy_http_stats hs;
    hy_http_stats_get(k, &hs);
    assert_true(hs.connections_peak >= SLOW);
    for (int i = 0; i < SLOW; i++)
        close(fds[i]);
    stop(k);
}

/* Headers over max_header_bytes are refused by the server (431, or the
 * connection closed), and it goes on serving. */
static void test_header_limit(void **st)
{
    (void)st;
    hy_http_opts o = {.max_header_bytes = 4096};
    hy_kernel *k = start(&o);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", g_port);
    static char hdr[16384];
    strcpy(hdr, "X-Big: ");
    memset(hdr + 7, 'h', sizeof hdr - 8);
    CURL *c = curl_easy_init();
    struct curl_slist *l = curl_slist_append(NULL, hdr);
    resp r = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    print_message("16 KiB header against 4 KiB: %s, status %ld\n", curl_easy_strerror(cc), status);
    assert_true(cc != CURLE_OK || status >= 400);
    curl_slist_free_all(l);
    curl_easy_cleanup(c);
    free(r.body);
    expect("GET", "/health", NULL, NULL, 200, NULL);
    stop(k);
}

static void test_attach_api(void **st)
{
    (void)st;
    hy_kernel *k;
    assert_int_equal(hy_kernel_open(&k, NULL), 0);
    assert_int_equal(hy_http_port(k), HY_ENOENT);
    assert_int_equal(hy_http_port(NULL), HY_EINVAL);
    hy_http_stats hs;
    assert_int_equal(hy_http_stats_get(k, &hs), 0);
    assert_int_equal(hs.requests, 0);
    hy_http_opts bad = {.address = "localhost"};
    assert_int_equal(hy_http_attach(k, &bad), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "localhost"));
    hy_http_opts missing = {.tokens_file = "/nonexistent/tokens"};
    assert_int_equal(hy_http_attach(k, &missing), HY_ENOENT);
    char path[] = "/tmp/hypha-http-badXXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "lonely\n", 7) == 7);
    close(fd);
    hy_http_opts badfile = {.tokens_file = path};
    assert_int_equal(hy_http_attach(k, &badfile), HY_EINVAL);
    assert_non_null(strstr(hy_errdetail(), "line 1"));
    unlink(path);
    hy_http_opts badbits = {.open = 0x4000};
    assert_int_equal(hy_http_attach(k, &badbits), HY_EINVAL);
    assert_int_equal(hy_http_attach(k, NULL), 0);
    assert_true(hy_http_port(k) > 0);
    assert_int_equal(hy_http_attach(k, NULL), HY_EEXIST);
    /* the same port again, on a second kernel: taken */
    hy_kernel *k2;
    assert_int_equal(hy_kernel_open(&k2, NULL), 0);
    hy_http_opts same = {.port = (uint16_t)hy_http_port(k)};
    assert_int_equal(hy_http_attach(k2, &same), HY_ESYS);
    hy_kernel_close(k2);
    /* shutdown stops the server; the port stays readable until close */
    assert_int_equal(hy_kernel_shutdown(k), 0);
    assert_int_equal(hy_http_attach(k, NULL), HY_EEXIST);
    hy_kernel_close(k);
    hy_kernel *k3;
    assert_int_equal(hy_kernel_open(&k3, NULL), 0);
    assert_int_equal(hy_kernel_shutdown(k3), 0);
    assert_int_equal(hy_http_attach(k3, NULL), HY_ECLOSED);
    hy_kernel_close(k3);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_statuses), cmocka_unit_test(test_ask),
        cmocka_unit_test(test_auth),          cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_many_connections), cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_health),        cmocka_unit_test(test_health_journal),
        cmocka_unit_test(test_health_map_near_cap),
        cmocka_unit_test(test_slow_clients),  cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_attach_api),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
