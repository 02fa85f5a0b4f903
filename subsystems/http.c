/* The HTTP gateway, a built-in subsystem: hy_http_attach serves the kernel
 * over HTTP/1.1 with libmicrohttpd. The public contract (endpoints, status
 * mapping, tokens, limits) is in hypha.h, section "HTTP gateway".
 *
 * Why a built-in: a request is a hy_send_as or hy_ask_as made on one of
 * the server's threads, the figures come from hy_kernel_stats,
 * hy_subsystems_list and hy_timer_stats_get, and the JSON documents are
 * json.c's, the same code introspection answers kernel://stats with. What
 * the public header cannot express comes from hypha_ext.h: the per-kernel
 * slot (stopped at shutdown before the kernel refuses sends, so requests
 * under way finish; freed at close), whether the timers are attached, and
 * hy_ext_fail for attach's error details.
 *
 * Threads. libmicrohttpd runs a pool of opts.threads threads, each polling
 * its share of the connections (epoll where there is one); a connection is
 * served by one of them from accept to close. HTTP parsing, header and
 * connection limits and idle timeouts are all libmicrohttpd's. A send costs
 * the thread one hy_send_as; an ask blocks it up to the request's timeout
 * (capped at max_ask_ms), and the other connections of that thread wait
 * that long: size the pool for the asks you expect. No kernel worker ever
 * waits on a socket.
 *
 * A request's body is gathered (up to max_body; beyond it the rest is read
 * and dropped, and the answer is 413; a Content-Length over it is answered
 * 413 at once), then the whole request is handled in the final call of the
 * access handler.
 *
 * Tokens: each line of the tokens file gives a token, a principal name and
 * its scopes. Attach makes one hy_principal per line and keeps the token's
 * SHA-256 digest (nettle), never the token. A request's token is hashed and
 * compared with every digest by nettle's memeql_sec, all of them each time,
 * so the time taken does not depend on which matched. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include "hypha.h"
#include "hypha_ext.h"
#include "json.h"

/* The dashboard page, subsystems/dashboard.html made into a C array by the
 * build ($(BUILD)/gen/dashboard_html.c). */
extern const unsigned char hy_dashboard_html[];
extern const size_t hy_dashboard_html_len;

/* ------------------------------------------------------------ state */

typedef struct token {
    uint8_t digest[SHA256_DIGEST_SIZE];
    hy_principal *principal;
} token;

typedef struct http {
    hy_kernel *k;
    struct MHD_Daemon *daemon;
    uint16_t port;
    token *tokens;
    size_t ntokens;
    hy_principal *anonymous;

    unsigned open; /* HY_HTTP_OPEN_* without NONE */
    size_t max_body;
    int ask_timeout_ms, max_ask_ms;
    uint64_t stall_ns, journal_window_ns;

    _Atomic uint64_t requests, s2xx, s4xx, s5xx, unauthorized;
    _Atomic uint64_t conns, conns_peak, conns_total;
    _Atomic uint64_t journal_refused_ns; /* last HY_EMAPFULL/EDISKFULL seen, 0: never */

    /* /health's samples, under health_mu */
    pthread_mutex_t health_mu;
    uint64_t journal_failed;    /* journal_failed_commits last seen */
    uint64_t journal_change_ns; /* when it last rose; 0: never */
    bool have_sample;
    uint64_t prev_handled, prev_queued, prev_ns;
    uint64_t stuck_since_ns; /* 0: not stuck */
} http;

/* One request: its body so far. */
typedef struct req {
    char *body;
    size_t len, cap;
    bool too_big;
    bool answered; /* a response was queued early (413 by Content-Length) */
} req;

enum { HEALTH_JOURNAL = 1, HEALTH_STALLED = 2, HEALTH_MAP = 4 };

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ responses */

static enum MHD_Result respond_mem(http *h, struct MHD_Connection *c, unsigned status,
                                   const char *type, const void *body, size_t len,
                                   enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
    if (status >= 200 && status < 300)
        atomic_fetch_add_explicit(&h->s2xx, 1, memory_order_relaxed);
    else if (status >= 400 && status < 500)
        atomic_fetch_add_explicit(&h->s4xx, 1, memory_order_relaxed);
    else if (status >= 500)
        atomic_fetch_add_explicit(&h->s5xx, 1, memory_order_relaxed);
    if (status == MHD_HTTP_UNAUTHORIZED)
        atomic_fetch_add_explicit(&h->unauthorized, 1, memory_order_relaxed);
    return rc;
}

static enum MHD_Result respond(http *h, struct MHD_Connection *c, unsigned status,
                               const char *type, const void *body, size_t len)
{
    return respond_mem(h, c, status, type, body, len, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result respond_json(http *h, struct MHD_Connection *c, unsigned status,
                                    hyj_buf *b)
{
    enum MHD_Result rc;
    if (b->oom) {
        static const char oom[] = "{\"error\":\"HY_ENOMEM\"}";
        rc = respond(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", oom,
                     sizeof oom - 1);
    } else {
        rc = respond(h, c, status, "application/json", b->p ? b->p : "", b->len);
    }
    free(b->p);
    return rc;
}

/* {"error":name,"message":text} for the gateway's own refusals. */
static enum MHD_Result respond_error(http *h, struct MHD_Connection *c, unsigned status,
                                     const char *name, const char *message)
{
    hyj_buf b = {0};
    hyj_printf(&b, "{\"error\":");
    hyj_str(&b, name);
    hyj_printf(&b, ",\"message\":");
    hyj_str(&b, message);
    hyj_printf(&b, "}");
    return respond_json(h, c, status, &b);
}

/* The status an hy_err code maps to (hypha.h lists them). */
static unsigned status_of(int err)
{
    switch (err) {
    case HY_EBADPATH:
    case HY_EINVAL:
        return MHD_HTTP_BAD_REQUEST;
    case HY_ENOROUTE:
        return MHD_HTTP_NOT_FOUND;
    case HY_EPERM:
        return MHD_HTTP_FORBIDDEN;
    case HY_ETOOBIG:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case HY_EFULL:
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case HY_ECLOSED:
    case HY_ESTOPPED:
    case HY_ENOMEM:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case HY_ETIMEDOUT:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    case HY_EMAPFULL:
    case HY_EDISKFULL:
        return MHD_HTTP_INSUFFICIENT_STORAGE;
    case HY_ENOENT:   /* an ask whose handler sent no reply */
    case HY_EHANDLER: /* ... or failed */
        return MHD_HTTP_BAD_GATEWAY;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* A failed send or ask: its status, and its name, code, text and detail
 * (read at once: the detail is this thread's, of its last failing call). */
static enum MHD_Result respond_hy_error(http *h, struct MHD_Connection *c, int err)
{
    if (err == HY_EMAPFULL || err == HY_EDISKFULL)
        atomic_store_explicit(&h->journal_refused_ns, mono_ns(), memory_order_relaxed);
    hyj_buf b = {0};
    hyj_printf(&b, "{\"error\":");
    hyj_str(&b, hy_err_name(err));
    hyj_printf(&b, ",\"code\":%d,\"message\":", err);
    hyj_str(&b, hy_strerror(err));
    hyj_printf(&b, ",\"detail\":");
    hyj_str(&b, hy_errdetail());
    hyj_printf(&b, "}");
    return respond_json(h, c, status_of(err), &b);
}

/* ------------------------------------------------------------ auth */

typedef enum auth { AUTH_ANONYMOUS, AUTH_TOKEN, AUTH_BAD } auth;

/* Who the request acts as: a token's principal, the anonymous one (no
 * Authorization header), or nobody (a header without a known token). */
static auth authenticate(http *h, struct MHD_Connection *c, hy_principal **who)
{
    *who = h->anonymous;
    const char *a =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a)
        return AUTH_ANONYMOUS;
    if (strncasecmp(a, "Bearer ", 7) != 0)
        return AUTH_BAD;
    a += 7;
    while (*a == ' ')
        a++;
    size_t len = strlen(a);
    while (len && a[len - 1] == ' ')
        len--;
    if (!len)
        return AUTH_BAD;
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx sc;
    sha256_init(&sc);
    sha256_update(&sc, len, (const uint8_t *)a);
    sha256_digest(&sc, sizeof digest, digest);
    hy_principal *found = NULL;
    for (size_t i = 0; i < h->ntokens; i++)
        if (memeql_sec(digest, h->tokens[i].digest, sizeof digest))
            found = h->tokens[i].principal;
    if (!found)
        return AUTH_BAD;
    *who = found;
    return AUTH_TOKEN;
}

/* ------------------------------------------------------------ health */

/* Sample the figures; the reasons the kernel is unhealthy now (0: none). */
static unsigned health_check(http *h, const hy_stats *s)
{
    uint64_t now = mono_ns();
    unsigned why = 0;
    pthread_mutex_lock(&h->health_mu);
    if (s->journal_failed_commits != h->journal_failed) {
        h->journal_failed = s->journal_failed_commits;
        h->journal_change_ns = now;
    }
    if (h->journal_change_ns && now - h->journal_change_ns < h->journal_window_ns)
        why |= HEALTH_JOURNAL;
    uint64_t refused = atomic_load_explicit(&h->journal_refused_ns, memory_order_relaxed);
    if (refused && now - refused < h->journal_window_ns)
        why |= HEALTH_JOURNAL;
    /* Near the cap: more than 90% of what the map may grow to is in use, so
     * persistent sends will soon be refused with HY_EMAPFULL. */
    if (s->journal_map_max && s->journal_map_used > s->journal_map_max / 10 * 9)
        why |= HEALTH_MAP;

    /* Stalled: this sample and the one before both saw messages queued and
     * the same handled count, so nothing was handled in between; stuck since
     * the first sample of such a run. */
    if (h->have_sample && s->queued > 0 && h->prev_queued > 0 &&
        s->handled == h->prev_handled) {
        if (!h->stuck_since_ns)
            h->stuck_since_ns = h->prev_ns;
        if (now - h->stuck_since_ns >= h->stall_ns)
            why |= HEALTH_STALLED;
    } else {
        h->stuck_since_ns = 0;
    }
    h->have_sample = true;
    h->prev_handled = s->handled;
    h->prev_queued = s->queued;
    h->prev_ns = now;
    pthread_mutex_unlock(&h->health_mu);
    return why;
}

static enum MHD_Result serve_health(http *h, struct MHD_Connection *c)
{
    hy_stats s;
    hy_kernel_stats(h->k, &s);
    unsigned why = health_check(h, &s);
    hyj_buf b = {0};
    if (!why) {
        hyj_printf(&b, "{\"status\":\"ok\"}");
        return respond_json(h, c, MHD_HTTP_OK, &b);
    }
    hyj_printf(&b, "{\"status\":\"unhealthy\",\"reasons\":[");
    const char *sep = "";
    if (why & HEALTH_JOURNAL) {
        hyj_printf(&b, "%s\"journal\"", sep);
        sep = ",";
    }
    if (why & HEALTH_STALLED) {
        hyj_printf(&b, "%s\"stalled\"", sep);
        sep = ",";
    }
    if (why & HEALTH_MAP)
        hyj_printf(&b, "%s\"map\"", sep);
    hyj_printf(&b, "],\"journal_failed_commits\":%llu,\"queued\":%llu,\"handled\":%llu}",
               (unsigned long long)s.journal_failed_commits, (unsigned long long)s.queued,
               (unsigned long long)s.handled);
    return respond_json(h, c, MHD_HTTP_SERVICE_UNAVAILABLE, &b);
}

/* ------------------------------------------------------------ metrics */

static void family(hyj_buf *b, const char *name, const char *type, const char *help)
{
    hyj_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(hyj_buf *b, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    family(b, name, type, help);
    hyj_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void metric_f(hyj_buf *b, const char *name, const char *type, const char *help,
                     double v)
{
    family(b, name, type, help);
    hyj_printf(b, "%s %.9g\n", name, v);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(hyj_buf *b, const char *s)
{
    hyj_printf(b, "\"");
    for (; *s; s++) {
        if (*s == '\\')
            hyj_printf(b, "\\\\");
        else if (*s == '"')
            hyj_printf(b, "\\\"");
        else if (*s == '\n')
            hyj_printf(b, "\\n");
        else
            hyj_printf(b, "%c", *s);
    }
    hyj_printf(b, "\"");
}

#define SUBSYS_FIELDS(X)                                                                    \
    X(sent, "hypha_subsystem_messages_sent_total", "counter", "Messages accepted for the subsystem.") \
    X(handled, "hypha_subsystem_messages_handled_total", "counter", "The subsystem's handlers that returned 0.") \
    X(failed, "hypha_subsystem_messages_failed_total", "counter", "The subsystem's handlers that returned an error.") \
    X(dead, "hypha_subsystem_dead_letters_total", "counter", "Dead letters among the messages the subsystem accepted.") \
    X(queued, "hypha_subsystem_messages_queued", "gauge", "Mailbox depth summed over the subsystem's actors.") \
    X(actors, "hypha_subsystem_actors", "gauge", "The subsystem's own actor plus its active keyed actors.") \
    X(activations, "hypha_subsystem_activations_total", "counter", "Keyed actors of the subsystem made.") \
    X(passivations, "hypha_subsystem_passivations_total", "counter", "Keyed actors of the subsystem passivated.") \
    X(refused, "hypha_subsystem_refused_total", "counter", "Sends to the subsystem refused for a missing scope.")

static void write_metrics(http *h, hyj_buf *b, const hy_stats *s, unsigned why,
                          const hy_subsystem_info *subs, size_t n)
{
    metric(b, "hypha_messages_sent_total", "counter", "Messages accepted by a send.", s->sent);
    metric(b, "hypha_messages_handled_total", "counter", "Handlers that ran and returned 0.",
           s->handled);
    metric(b, "hypha_messages_failed_total", "counter", "Handlers that returned an error.",
           s->failed);
    metric(b, "hypha_messages_queued", "gauge", "Accepted, neither handled nor dead yet.",
           s->queued);
    family(b, "hypha_dead_letters_total", "counter", "Dead letters by reason.");
    for (int r = 0; r < HY_DEAD__COUNT; r++) {
        char name[32];
        hyj_dead_name(r, name);
        hyj_printf(b, "hypha_dead_letters_total{reason=\"%s\"} %llu\n", name,
                   (unsigned long long)s->dead[r]);
    }
    metric(b, "hypha_actor_restarts_total", "counter", "Actor restarts by supervision.",
           s->restarts);
    metric(b, "hypha_actors_stopped_total", "counter", "Actors stopped by supervision.",
           s->stopped);
    metric(b, "hypha_subsystems", "gauge", "Registered subsystems, the kernel's own not counted.",
           s->subsystems);
    metric(b, "hypha_actors", "gauge", "Live actors.", s->actors);
    metric(b, "hypha_workers", "gauge", "Worker threads.", s->workers);
    metric(b, "hypha_steals_total", "counter", "Actors a worker took from another's deque.",
           s->steals);
    metric(b, "hypha_parks_total", "counter", "Times a worker slept for lack of work.",
           s->parks);

    metric(b, "hypha_pool_objects_created_total", "counter", "Message objects carved fresh.",
           s->pool_created);
    metric(b, "hypha_pool_objects_reused_total", "counter",
           "Message objects served from the free lists.", s->pool_reused);
    metric(b, "hypha_pool_objects_in_use", "gauge", "Message objects taken and not given back.",
           s->pool_in_use);
    metric(b, "hypha_pool_objects_peak", "gauge", "The most message objects in use at once.",
           s->pool_peak);
    metric(b, "hypha_pool_bytes_reserved", "gauge", "Bytes the message pool holds.",
           s->pool_bytes_reserved);

    metric(b, "hypha_journal_commits_total", "counter", "Successful journal write transactions.",
           s->journal_commits);
    metric(b, "hypha_journal_entries_total", "counter", "Journal entries committed.",
           s->journal_entries);
    metric(b, "hypha_journal_bytes_total", "counter", "Key and value bytes committed.",
           s->journal_bytes);
    metric(b, "hypha_journal_batch_p50", "gauge", "Median entries per group commit (recent).",
           s->journal_batch_p50);
    metric(b, "hypha_journal_failed_commits_total", "counter",
           "Journal write transactions that failed.", s->journal_failed_commits);
    metric(b, "hypha_journal_map_used_bytes", "gauge", "Bytes of the journal's map in use.",
           s->journal_map_used);
    metric(b, "hypha_journal_map_max_bytes", "gauge",
           "The size the journal's map may grow to.", s->journal_map_max);
    metric_f(b, "hypha_journal_writer_cpu_seconds_total", "counter",
             "CPU time the journal's writer thread has used.",
             (double)s->journal_writer_cpu_ns / 1e9);
    metric(b, "hypha_journal_replayed_total", "counter", "Entries replayed at recovery.",
           s->journal_replayed);
    metric(b, "hypha_journal_replay_skipped_total", "counter",
           "Entries not applied at recovery because they name another actor.",
           s->journal_replay_skipped);
    metric(b, "hypha_journal_corrupt_total", "counter",
           "Recoveries stopped early by a corrupt entry.", s->journal_corrupt);
    metric(b, "hypha_snapshots_total", "counter", "Snapshots saved.", s->snapshots);
    metric(b, "hypha_snapshot_failures_total", "counter", "Snapshots refused.",
           s->snapshot_failures);
    metric(b, "hypha_replay_suppressed_total", "counter",
           "Sends made by replaying handlers, dropped.", s->replay_suppressed);

    metric(b, "hypha_actors_active", "gauge", "Keyed actors active now.", s->actors_active);
    metric(b, "hypha_activations_total", "counter", "Keyed actors made.", s->activations);
    metric(b, "hypha_passivations_total", "counter", "Keyed actors passivated.",
           s->passivations);
    metric(b, "hypha_passivate_failed_total", "counter", "Passivations refused.",
           s->passivate_failed);
    metric(b, "hypha_passivate_aborted_total", "counter",
           "Passivations called off by a message.", s->passivate_aborted);
    metric_f(b, "hypha_activation_p50_seconds", "gauge",
             "Median time to make a keyed actor (last 1024).", (double)s->activation_p50_ns / 1e9);
    metric_f(b, "hypha_activation_p99_seconds", "gauge",
             "99th percentile time to make a keyed actor (last 1024).",
             (double)s->activation_p99_ns / 1e9);

#define SUBSYS_FAMILY(field, mname, type, help)                                              \
    family(b, mname, type, help);                                                            \
    for (size_t i = 0; i < n; i++) {                                                         \
        hyj_printf(b, "%s{subsystem=", mname);                                              \
        label_value(b, subs[i].name);                                                        \
        hyj_printf(b, "} %llu\n", (unsigned long long)subs[i].stats.field);                 \
    }
    SUBSYS_FIELDS(SUBSYS_FAMILY)
#undef SUBSYS_FAMILY

    if (hy_ext_slot_get(h->k, HY_EXT_SLOT_TIMERS)) {
        hy_timer_stats t;
        hy_timer_stats_get(h->k, &t);
        metric(b, "hypha_timers_pending", "gauge", "Timers scheduled, not fired nor cancelled.",
               t.pending);
        metric(b, "hypha_timers_fired_total", "counter", "Timer firings.", t.fired);
        metric(b, "hypha_timers_cancelled_total", "counter", "Timers cancelled.", t.cancelled);
        metric(b, "hypha_timers_late_total", "counter", "Firings over a tick late.", t.late);
        metric(b, "hypha_timers_failed_total", "counter", "Firings whose send was refused.",
               t.failed);
        metric(b, "hypha_timers_noroute_total", "counter", "Firings to a path without a route.",
               t.noroute);
        metric(b, "hypha_timers_recovered_total", "counter", "Journaled timers re-armed.",
               t.recovered);
        metric_f(b, "hypha_timers_lateness_p50_seconds", "gauge",
                 "Median firing lateness (last 4096).", (double)t.lateness_p50_ns / 1e9);
        metric_f(b, "hypha_timers_lateness_p99_seconds", "gauge",
                 "99th percentile firing lateness (last 4096).", (double)t.lateness_p99_ns / 1e9);
    }

    family(b, "hypha_http_responses_total", "counter", "Gateway responses by status class.");
    hyj_printf(b,
               "hypha_http_responses_total{class=\"2xx\"} %llu\n"
               "hypha_http_responses_total{class=\"4xx\"} %llu\n"
               "hypha_http_responses_total{class=\"5xx\"} %llu\n",
               (unsigned long long)atomic_load(&h->s2xx), (unsigned long long)atomic_load(&h->s4xx),
               (unsigned long long)atomic_load(&h->s5xx));
    metric(b, "hypha_http_requests_total", "counter", "Gateway requests answered.",
           atomic_load(&h->requests));
    metric(b, "hypha_http_unauthorized_total", "counter", "Gateway requests answered 401.",
           atomic_load(&h->unauthorized));
    metric(b, "hypha_http_connections", "gauge", "Gateway connections open now.",
           atomic_load(&h->conns));
    metric(b, "hypha_http_connections_peak", "gauge", "The most gateway connections open at once.",
           atomic_load(&h->conns_peak));
    metric(b, "hypha_http_connections_total", "counter", "Gateway connections accepted.",
           atomic_load(&h->conns_total));
    metric(b, "hypha_healthy", "gauge", "1 when GET /health would answer 200.", why ? 0 : 1);
}

static enum MHD_Result serve_metrics(http *h, struct MHD_Connection *c)
{
    hy_stats s;
    hy_kernel_stats(h->k, &s);
    unsigned why = health_check(h, &s);
    hy_subsystem_info *subs;
    size_t n;
    int rc = hy_subsystems_list(h->k, &subs, &n);
    if (rc != 0)
        return respond_hy_error(h, c, rc);
    hyj_buf b = {0};
    write_metrics(h, &b, &s, why, subs, n);
    hy_free(subs);
    enum MHD_Result r;
    if (b.oom)
        r = respond_hy_error(h, c, HY_ENOMEM);
    else
        r = respond(h, c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    free(b.p);
    return r;
}

/* ------------------------------------------------------------ send, ask */

/* "/send/orders/item/42" (rest "orders/item/42") -> "orders://item/42".
 * malloc'ed; NULL when out of memory. */
static char *hypha_path(const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t sub = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *tail = slash ? slash + 1 : "";
    size_t tl = strlen(tail);
    char *p = malloc(sub + 3 + tl + 1);
    if (!p)
        return NULL;
    memcpy(p, rest, sub);
    memcpy(p + sub, "://", 3);
    memcpy(p + sub + 3, tail, tl + 1);
    return p;
}

static enum MHD_Result serve_send(http *h, struct MHD_Connection *c, hy_principal *who,
                                  const char *rest, req *r)
{
    char *path = hypha_path(rest);
    if (!path)
        return respond_hy_error(h, c, HY_ENOMEM);
    int rc = hy_send_as(h->k, who, path, r->body, r->len);
    free(path);
    if (rc != 0)
        return respond_hy_error(h, c, rc);
    static const char ok[] = "{\"status\":\"accepted\"}";
    return respond(h, c, MHD_HTTP_ACCEPTED, "application/json", ok, sizeof ok - 1);
}

static enum MHD_Result serve_ask(http *h, struct MHD_Connection *c, hy_principal *who,
                                 const char *rest, req *r)
{
    int timeout = h->ask_timeout_ms;
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "timeout_ms");
    if (t) {
        char *end;
        long v = strtol(t, &end, 10);
        if (end == t || *end || v < 0)
            return respond_error(h, c, MHD_HTTP_BAD_REQUEST, "HY_EINVAL",
                                 "timeout_ms must be a number of milliseconds >= 0");
        timeout = v > h->max_ask_ms ? h->max_ask_ms : (int)v;
    }
    char *path = hypha_path(rest);
    if (!path)
        return respond_hy_error(h, c, HY_ENOMEM);
    void *reply = NULL;
    size_t reply_len = 0;
    int rc = hy_ask_as(h->k, who, path, r->body, r->len, &reply, &reply_len, timeout);
    free(path);
    if (rc != 0)
        return respond_hy_error(h, c, rc);
    enum MHD_Result res =
        respond(h, c, MHD_HTTP_OK, "application/octet-stream", reply ? reply : "", reply_len);
    hy_free(reply);
    return res;
}

/* ------------------------------------------------------------ dispatch */

static enum MHD_Result serve_document(http *h, struct MHD_Connection *c, hyj_emit_fn emit)
{
    hyj_buf b = {0};
    int rc = hyj_document(&b, h->k, emit);
    if (rc != 0)
        return respond_hy_error(h, c, rc);
    return respond_json(h, c, MHD_HTTP_OK, &b);
}

static enum MHD_Result dispatch(http *h, struct MHD_Connection *c, const char *url,
                                const char *method, req *r)
{
    hy_principal *who;
    auth a = authenticate(h, c, &who);
    if (a == AUTH_BAD)
        return respond_error(h, c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                             "unknown bearer token");
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    bool has_token = a == AUTH_TOKEN;

    bool is_send = strncmp(url, "/send/", 6) == 0, is_ask = strncmp(url, "/ask/", 5) == 0;
    if (is_send || is_ask) {
        if (!post)
            return respond_error(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method", "use POST");
        if (r->too_big)
            return respond_hy_error(h, c, HY_ETOOBIG);
        return is_send ? serve_send(h, c, who, url + 6, r) : serve_ask(h, c, who, url + 5, r);
    }

    static const struct {
        const char *url;
        unsigned open_bit;
        int what;
    } gets[] = {
        {"/stats", HY_HTTP_OPEN_STATS, 0},      {"/routes", HY_HTTP_OPEN_STATS, 1},
        {"/actors", HY_HTTP_OPEN_STATS, 2},     {"/metrics", HY_HTTP_OPEN_METRICS, 3},
        {"/health", HY_HTTP_OPEN_HEALTH, 4},    {"/", HY_HTTP_OPEN_DASHBOARD, 5},
        {"/index.html", HY_HTTP_OPEN_DASHBOARD, 5},
    };
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        if (strcmp(url, gets[i].url) != 0)
            continue;
        if (!get)
            return respond_error(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method", "use GET");
        if (!has_token && !(h->open & gets[i].open_bit))
            return respond_error(h, c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                 "a bearer token is required");
        switch (gets[i].what) {
        case 0:
            return serve_document(h, c, hyj_stats);
        case 1:
            return serve_document(h, c, hyj_routes);
        case 2:
            return serve_document(h, c, hyj_actors);
        case 3:
            return serve_metrics(h, c);
        case 4:
            return serve_health(h, c);
        default:
            return respond_mem(h, c, MHD_HTTP_OK, "text/html; charset=utf-8", hy_dashboard_html,
                               hy_dashboard_html_len, MHD_RESPMEM_PERSISTENT);
        }
    }
    return respond_error(h, c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}

/* libmicrohttpd's access handler: called once with the headers, then with
 * each piece of the body, then once more with none (where we answer). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    http *h = cls;
    req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *con_cls = r;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->max_body) {
            r->too_big = r->answered = true;
            return respond_hy_error(h, c, HY_ETOOBIG);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || r->answered)
            return MHD_YES;
        if (r->len + n > h->max_body) {
            r->too_big = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 1024;
            while (cap < r->len + n)
                cap *= 2;
            char *p = realloc(r->body, cap);
            if (!p)
                return MHD_NO;
            r->body = p;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    r->answered = true;
    return dispatch(h, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    req *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)c, (void)socket_context;
    http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&h->conns_total, 1);
        uint64_t now = atomic_fetch_add(&h->conns, 1) + 1;
        uint64_t peak = atomic_load(&h->conns_peak);
        while (now > peak && !atomic_compare_exchange_weak(&h->conns_peak, &peak, now))
            ;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&h->conns, 1);
    }
}

/* ------------------------------------------------------------ tokens */

static int load_tokens(http *h, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return hy_ext_fail(HY_ENOENT, "tokens_file %s: cannot be read", file);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *save, *tok = strtok_r(line, " \t\r\n", &save);
        if (!tok || tok[0] == '#')
            continue;
        char *name = strtok_r(NULL, " \t\r\n", &save);
        char *scopes = strtok_r(NULL, " \t\r\n", &save);
        if (!name || strtok_r(NULL, " \t\r\n", &save)) {
            rc = hy_ext_fail(HY_EINVAL,
                             "tokens_file %s line %d: want \"token principal [scope,...]\"",
                             file, lineno);
            break;
        }
        const char *list[64];
        size_t nscopes = 0;
        char *ssave;
        for (char *sc = scopes ? strtok_r(scopes, ",", &ssave) : NULL; sc;
             sc = strtok_r(NULL, ",", &ssave)) {
            if (nscopes == sizeof list / sizeof list[0]) {
                rc = hy_ext_fail(HY_EINVAL, "tokens_file %s line %d: over 64 scopes", file,
                                 lineno);
                break;
            }
            list[nscopes++] = sc;
        }
        if (rc)
            break;
        token *t = realloc(h->tokens, (h->ntokens + 1) * sizeof *t);
        if (!t) {
            rc = HY_ENOMEM;
            break;
        }
        h->tokens = t;
        t = &h->tokens[h->ntokens];
        struct sha256_ctx sc;
        sha256_init(&sc);
        sha256_update(&sc, strlen(tok), (const uint8_t *)tok);
        sha256_digest(&sc, sizeof t->digest, t->digest);
        rc = hy_principal_create(h->k, name, list, nscopes, &t->principal);
        if (rc) {
            rc = hy_ext_fail(rc, "tokens_file %s line %d: bad principal or scope", file, lineno);
            break;
        }
        h->ntokens++;
    }
    if (line) /* the token's text is not kept */
        memset(line, 0, cap);
    free(line);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------ attach */

static void http_free(hy_kernel *k, void *state)
{
    (void)k;
    http *h = state;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    for (size_t i = 0; i < h->ntokens; i++)
        hy_principal_destroy(h->tokens[i].principal);
    free(h->tokens);
    hy_principal_destroy(h->anonymous);
    pthread_mutex_destroy(&h->health_mu);
    free(h);
}

/* At shutdown, first thing: stop accepting, let requests under way finish
 * (the kernel still takes their sends), join the server's threads. */
static void http_stop(hy_kernel *k, void *state)
{
    (void)k;
    http *h = state;
    if (h->daemon) {
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
    }
}

static int listen_addr(const char *address, uint16_t port, struct sockaddr_storage *ss,
                       bool *v6)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *v6 = false;
        return 0;
    }
    if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *v6 = true;
        return 0;
    }
    return hy_ext_fail(HY_EINVAL, "address %s: not a numeric IPv4 or IPv6 address", address);
}

int hy_http_attach(hy_kernel *k, const hy_http_opts *opts)
{
    static const hy_http_opts defaults = {0};
    if (!k)
        return hy_ext_fail(HY_EINVAL, "hy_http_attach: NULL kernel");
    if (!opts)
        opts = &defaults;
    const unsigned every = HY_HTTP_OPEN_METRICS | HY_HTTP_OPEN_HEALTH | HY_HTTP_OPEN_STATS |
                           HY_HTTP_OPEN_DASHBOARD | HY_HTTP_OPEN_NONE;
    if (opts->open & ~every)
        return hy_ext_fail(HY_EINVAL, "hy_http_attach: open = %#x has bits that are not "
                           "HY_HTTP_OPEN_*", opts->open);
    if (opts->ask_timeout_ms < 0 || opts->max_ask_ms < 0)
        return hy_ext_fail(HY_EINVAL, "hy_http_attach: ask_timeout_ms or max_ask_ms < 0");
    if (hy_ext_slot_get(k, HY_EXT_SLOT_HTTP))
        return hy_ext_fail(HY_EEXIST, "hy_http_attach: a gateway is attached already");

    struct sockaddr_storage ss;
    bool v6 = false;
    int rc = listen_addr(opts->address ? opts->address : "127.0.0.1", opts->port, &ss, &v6);
    if (rc)
        return rc;

    http *h = calloc(1, sizeof *h);
    if (!h)
        return HY_ENOMEM;
    h->k = k;
    pthread_mutex_init(&h->health_mu, NULL);
    h->open = opts->open ? opts->open & ~HY_HTTP_OPEN_NONE
                         : HY_HTTP_OPEN_METRICS | HY_HTTP_OPEN_HEALTH;
    h->max_body = opts->max_body ? opts->max_body : 64 * 1024;
    h->ask_timeout_ms = opts->ask_timeout_ms ? opts->ask_timeout_ms : 1000;
    h->max_ask_ms = opts->max_ask_ms ? opts->max_ask_ms : 10000;
    if (h->ask_timeout_ms > h->max_ask_ms)
        h->ask_timeout_ms = h->max_ask_ms;
    h->stall_ns = (uint64_t)(opts->stall_ms ? opts->stall_ms : 5000) * 1000000u;
    h->journal_window_ns =
        (uint64_t)(opts->journal_window_ms ? opts->journal_window_ms : 60000) * 1000000u;
    hy_stats s;
    hy_kernel_stats(k, &s);
    h->journal_failed = s.journal_failed_commits;

    if ((rc = hy_principal_create(k, "anonymous", NULL, 0, &h->anonymous)) != 0 ||
        (opts->tokens_file && (rc = load_tokens(h, opts->tokens_file)) != 0)) {
        http_free(k, h);
        return rc;
    }

    unsigned threads = opts->threads ? opts->threads : 4;
    unsigned conns = opts->max_connections ? opts->max_connections : 256;
    if (threads > conns)
        threads = conns;
    size_t mem = opts->max_header_bytes ? opts->max_header_bytes : 32 * 1024;
    if (mem < 4096)
        mem = 4096;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (v6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(
        flags, opts->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, conns, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(opts->timeout_s ? opts->timeout_s : 10), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        mem, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, h, MHD_OPTION_END);
    if (!h->daemon) {
        http_free(k, h);
        return hy_ext_fail(HY_ESYS, "cannot listen on %s port %u",
                           opts->address ? opts->address : "127.0.0.1", (unsigned)opts->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : opts->port;

    static const hy_ext_slot_ops ops = {http_stop, http_free};
    if ((rc = hy_ext_slot_set(k, HY_EXT_SLOT_HTTP, h, &ops)) != 0) {
        http_free(k, h);
        return rc;
    }
    return 0;
}

int hy_http_port(hy_kernel *k)
{
    if (!k)
        return hy_ext_fail(HY_EINVAL, "hy_http_port: NULL kernel");
    http *h = hy_ext_slot_get(k, HY_EXT_SLOT_HTTP);
    return h ? (int)h->port : hy_ext_fail(HY_ENOENT, "hy_http_port: no gateway attached");
}

int hy_http_stats_get(hy_kernel *k, hy_http_stats *out)
{
    if (!k || !out)
        return hy_ext_fail(HY_EINVAL, "hy_http_stats_get: NULL argument");
    memset(out, 0, sizeof *out);
    http *h = hy_ext_slot_get(k, HY_EXT_SLOT_HTTP);
    if (!h)
        return 0;
    out->requests = atomic_load(&h->requests);
    out->status_2xx = atomic_load(&h->s2xx);
    out->status_4xx = atomic_load(&h->s4xx);
    out->status_5xx = atomic_load(&h->s5xx);
    out->unauthorized = atomic_load(&h->unauthorized);
    out->connections = atomic_load(&h->conns);
    out->connections_peak = atomic_load(&h->conns_peak);
    out->connections_total = atomic_load(&h->conns_total);
    return 0;
}
