/* Scale-out through NATS, a built-in subsystem (docs/ARCHITECTURE.md §8).
 *
 * hy_nats_attach connects the kernel to a NATS server (libnats, its own
 * threads). hy_nats_export subscribes to a local subsystem's subjects and
 * injects what arrives, on a reader thread per subscription: plain sends in
 * batches (hy_send_batch), durable sends with hy_send_durable, requests with
 * hy_ext_ask_cb (answered from the replying worker; nothing waits).
 * hy_nats_import registers a local subsystem that forwards: plain and
 * durable sends, and requests (hy_ask, hy_ext_ask_cb), are published on the
 * sender's thread (hy_ext_forward_set), no message is queued locally. A
 * request goes out with a reply subject under the import's inbox, its reply
 * duty handed over (hy_ext_forward_ops.ask; a hy_ask_async request, through
 * the subsystem's handler and hy_ext_reply_defer); the inbox's subscription
 * finishes it when the answer comes (or the sweeper when the deadline
 * passes), so no worker ever waits on the network.
 *
 * Metadata travels in NATS headers: Hy-Durable (a durable send to ack),
 * Hy-Error (the hypha error of a failed request), Hy-Status (the durable
 * ack's status). The payload is the hypha payload. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "hypha_ext.h"

/* ------------------------------------------------------------ subjects */

static bool plain_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n < b->cap)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* The subject of path, with the partition token when part >= 0. */
static int subject_of(const char *path, long part, char *out, size_t cap)
{
    if (!path || !out)
        return HY_EINVAL;
    const char *sep = strstr(path, "://");
    if (!sep || !name_ok(path, (size_t)(sep - path)))
        return HY_EBADPATH;
    sbuf b = {out, cap, 0};
    if (part >= 0) {
        char t[32];
        sb_put(&b, "hyphap.", 7);
        sb_put(&b, path, (size_t)(sep - path));
        sb_put(&b, t, (size_t)snprintf(t, sizeof t, ".%ld", part));
    } else {
        sb_put(&b, "hypha.", 6);
        sb_put(&b, path, (size_t)(sep - path));
    }
    const char *rest = sep + 3;
    if (*rest) {
        static const char hex[] = "0123456789ABCDEF";
        bool tok_start = true;
        for (const unsigned char *c = (const unsigned char *)rest;; c++) {
            if (tok_start) {
                sb_put(&b, ".", 1);
                if (*c == '/' || *c == 0)
                    sb_put(&b, "~", 1); /* an empty segment */
                tok_start = false;
            }
            if (*c == 0)
                break;
            if (*c == '/') {
                tok_start = true;
            } else if (plain_byte(*c)) {
                sb_put(&b, (const char *)c, 1);
            } else {
                char e[3] = {'~', hex[*c >> 4], hex[*c & 15]};
                sb_put(&b, e, 3);
            }
        }
    }
    if (b.len >= cap)
        return HY_ETOOBIG;
    out[b.len] = 0;
    return (int)b.len;
}

int hy_nats_subject(const char *path, char *out, size_t cap)
{
    return subject_of(path, -1, out, cap);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode the tokens of subj (after the name) into path: the inverse of
 * subject_of, and only of it (a subject it would not write is refused, so
 * the mapping is one-to-one both ways). */
static int path_of(const char *name, size_t name_len, const char *toks, char *out, size_t cap)
{
    sbuf b = {out, cap, 0};
    sb_put(&b, name, name_len);
    sb_put(&b, "://", 3);
    if (*toks) {
        if (*toks != '.')
            return HY_EBADPATH;
        toks++;
        bool first = true;
        for (;;) {
            const char *end = strchr(toks, '.');
            size_t n = end ? (size_t)(end - toks) : strlen(toks);
            if (n == 0)
                return HY_EBADPATH;
            if (!(n == 1 && toks[0] == '~')) {
                for (size_t i = 0; i < n; i++) {
                    unsigned char c = (unsigned char)toks[i];
                    if (c == '~') {
                        if (i + 2 >= n)
                            return HY_EBADPATH;
                        int hi = hexval(toks[i + 1]), lo = hexval(toks[i + 2]);
                        if (hi < 0 || lo < 0)
                            return HY_EBADPATH;
                        char v = (char)(hi << 4 | lo);
                        if (v == 0 || v == '/' || plain_byte((unsigned char)v))
                            return HY_EBADPATH;
                        sb_put(&b, &v, 1);
                        i += 2;
                    } else if (plain_byte(c)) {
                        sb_put(&b, (const char *)&c, 1);
                    } else {
                        return HY_EBADPATH;
                    }
                }
            }
            /* "NAME://" has no token: a lone empty one is not a subject
             * the mapping writes */
            if (!end && first && n == 1 && toks[0] == '~')
                return HY_EBADPATH;
            first = false;
            if (!end)
                break;
            sb_put(&b, "/", 1);
            toks = end + 1;
        }
    }
    if (b.len >= cap)
        return HY_ETOOBIG;
    out[b.len] = 0;
    return (int)b.len;
}

int hy_nats_path(const char *subject, char *out, size_t cap)
{
    if (!subject || !out)
        return HY_EINVAL;
    if (strncmp(subject, "hypha.", 6) != 0)
        return HY_EBADPATH;
    const char *name = subject + 6;
    const char *end = strchr(name, '.');
    size_t n = end ? (size_t)(end - name) : strlen(name);
    if (!name_ok(name, n))
        return HY_EBADPATH;
    return path_of(name, n, name + n, out, cap);
}

/* hyphap.NAME.PART.tokens: the path, and the partition in *part. */
static int keyed_path(const char *subject, char *out, size_t cap, long *part)
{
    if (strncmp(subject, "hyphap.", 7) != 0)
        return HY_EBADPATH;
    const char *name = subject + 7;
    const char *dot = strchr(name, '.');
    if (!dot || !name_ok(name, (size_t)(dot - name)))
        return HY_EBADPATH;
    char *e;
    errno = 0;
    long p = strtol(dot + 1, &e, 10);
    if (e == dot + 1 || errno || p < 0 || (*e && *e != '.'))
        return HY_EBADPATH;
    *part = p;
    return path_of(name, (size_t)(dot - name), e, out, cap);
}

/* A stream repeats its paths (many messages to one route), so each thread
 * keeps the last mapping it made, each way, and reuses it when the same
 * input comes again: the importer's worker and the exporter's delivery
 * thread then skip the encoding. */
#define MAP_MAX 1024
typedef struct map_memo {
    size_t in_len;      /* 0: empty */
    long part;
    int out_len;        /* what the mapping returned */
    char in[MAP_MAX];
    char out[MAP_MAX];
} map_memo;
static _Thread_local map_memo tl_to_subject, tl_to_path;

/* subject_of through this thread's memo; *out points into the memo (valid
 * until this thread's next call). */
static int subject_memo(const char *path, size_t path_len, long part, const char **out)
{
    map_memo *m = &tl_to_subject;
    if (!(m->in_len == path_len && m->part == part && memcmp(m->in, path, path_len) == 0)) {
        if (path_len >= MAP_MAX)
            return HY_ETOOBIG;
        m->in_len = 0;
        int rc = subject_of(path, part, m->out, sizeof m->out);
        if (rc < 0)
            return rc;
        memcpy(m->in, path, path_len);
        m->in_len = path_len;
        m->part = part;
        m->out_len = rc;
    }
    *out = m->out;
    return m->out_len;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

uint32_t hy_nats_partition(const char *key, size_t key_len, uint32_t partitions)
{
    if (!key || partitions == 0)
        return 0;
    return (uint32_t)(fnv1a(key, key_len) % partitions);
}

/* The path (and partition, -1 for none) of an exported subject, through
 * this thread's memo; *out points into the memo. */
static int path_memo(const char *subj, long *part, const char **out)
{
    map_memo *m = &tl_to_path;
    size_t n = strnlen(subj, MAP_MAX);
    if (!(m->in_len == n && memcmp(m->in, subj, n) == 0)) {
        if (n >= MAP_MAX)
            return HY_EBADPATH;
        m->in_len = 0;
        long p = -1;
        int rc = subj[5] == 'p' ? keyed_path(subj, m->out, sizeof m->out, &p)
                                : hy_nats_path(subj, m->out, sizeof m->out);
        if (rc < 0)
            return rc;
        memcpy(m->in, subj, n);
        m->in_len = n;
        m->part = p;
        m->out_len = rc;
    }
    *part = m->part;
    *out = m->out;
    return m->out_len;
}

/* ------------------------------------------------------------ state */

#define SUBJ_MAX 1024
#define PATH_MAX_ 1024

typedef struct nstats {
    _Atomic uint64_t published, received, acked, dropped;
} nstats;

typedef struct nats_state nats_state;

typedef struct endpoint {
    struct endpoint *next;
    nats_state *n;
    char name[65];
    bool import;
    bool bridge;                /* hy_nats_bridge_publish */
    nstats st;
    /* export */
    natsSubscription *subs[2 + 2 * 64];
    unsigned nsubs;
    /* an export reads each subscription on a thread of its own (export_main) */
    pthread_t readers[2 + 2 * 64];
    unsigned nreaders;
    _Atomic int closing;        /* the readers stop once their queue is empty */
    uint32_t partitions;
    /* import */
    char key[64];
    char key_pattern[256];
    uint64_t key_route;         /* the udata that marks the keyed route */
} endpoint;

/* An outstanding request of an import: a deferred ask or a durable send. */
typedef struct pending {
    struct pending *next;
    uint64_t id;
    uint64_t deadline_ns;
    endpoint *ep;
    hy_ext_reply *reply;                 /* an ask */
    void (*on_durable)(void *, int);     /* a durable send */
    void *udata;
} pending;

struct nats_state {
    hy_kernel *k;
    natsConnection *nc;
    /* Requests and answers go on a second connection that writes each
     * message at once (libnats' "send ASAP"): on the buffered one each would
     * wait for its flusher. Plain sends stay buffered, for throughput; so a
     * request may overtake plain sends published just before it. */
    natsConnection *fast;
    _Atomic int stopped;
    _Atomic uint32_t refs;             /* the slot's, and each durable ack's */
    _Atomic uint64_t reconnects;
    int buf_bytes;                     /* reconnect buffer; < 0: none */
    int ask_timeout_ms;
    pthread_mutex_t mu;                /* endpoints, pending */
    endpoint *eps;
    pending *pend;
    uint64_t next_id;
    char inbox[128];                   /* _INBOX.<nuid>: replies come to .<id> */
    natsSubscription *inbox_sub;
    pthread_t sweeper;
    bool sweeper_started;
    pthread_cond_t cv;
    hy_principal *from_nats;           /* what bridged publishes act as */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int nats_err(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_NO_MEMORY:
        return HY_ENOMEM;
    case NATS_TIMEOUT:
        return HY_ETIMEDOUT;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_STALE_CONNECTION:
        return HY_EDISCONNECTED;
    case NATS_MAX_PAYLOAD:
        return HY_ETOOBIG;
    default:
        return HY_ESYS;
    }
}

static void state_unref(nats_state *n)
{
    if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) != 1)
        return;
    natsConnection_Destroy(n->nc);
    natsConnection_Destroy(n->fast);
    for (endpoint *e = n->eps, *nx; e; e = nx) {
        nx = e->next;
        for (unsigned i = 0; i < e->nsubs; i++)
            natsSubscription_Destroy(e->subs[i]);
        free(e);
    }
    natsSubscription_Destroy(n->inbox_sub);
    if (n->from_nats)
        hy_principal_destroy(n->from_nats);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

static nats_state *state_of(hy_kernel *k)
{
    return k ? hy_ext_slot_get(k, HY_EXT_SLOT_NATS) : NULL;
}

/* Publishing is refused at once while disconnected with no reconnect
 * buffer; with one, libnats buffers it (and fails when the buffer is full).
 * 0: go ahead. */
static int publish_ready(nats_state *n, natsConnection *nc)
{
    if (atomic_load_explicit(&n->stopped, memory_order_acquire))
        return HY_ECLOSED;
    if (n->buf_bytes < 0 && natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED)
        return HY_EDISCONNECTED;
    return 0;
}

/* ------------------------------------------------------------ pending requests */

static pending *pending_take(nats_state *n, uint64_t id)
{
    pthread_mutex_lock(&n->mu);
    pending **pp = &n->pend, *p;
    while ((p = *pp) && p->id != id)
        pp = &p->next;
    if (p)
        *pp = p->next;
    pthread_mutex_unlock(&n->mu);
    return p;
}

static void pending_finish(pending *p, int err, const void *data, size_t len)
{
    /* counted first: whoever the answer wakes sees it counted */
    if (err == 0)
        atomic_fetch_add_explicit(&p->ep->st.acked, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&p->ep->st.dropped, 1, memory_order_relaxed);
    if (p->reply) {
        hy_ext_reply_finish(p->reply, err, data, len);
    } else if (p->on_durable) {
        p->on_durable(p->udata, err);
    }
    free(p);
}

/* The import inbox: the answer to a request. */
static void on_inbox(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)nc, (void)sub;
    nats_state *n = arg;
    const char *subj = natsMsg_GetSubject(m);
    const char *dot = strrchr(subj, '.');
    uint64_t id = dot ? strtoull(dot + 1, NULL, 10) : 0;
    pending *p = id ? pending_take(n, id) : NULL;
    if (p) {
        atomic_fetch_add_explicit(&p->ep->st.received, 1, memory_order_relaxed);
        int err = 0;
        const char *v = NULL;
        if (natsMsg_IsNoResponders(m))
            err = HY_ENOROUTE;
        else if (natsMsgHeader_Get(m, "Hy-Error", &v) == NATS_OK && v)
            err = atoi(v);
        else if (p->on_durable && natsMsgHeader_Get(m, "Hy-Status", &v) == NATS_OK && v)
            err = atoi(v);
        pending_finish(p, err, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    }
    natsMsg_Destroy(m);
}

/* Requests past their deadline time out; at stop, all of them close. */
static void *sweeper_main(void *arg)
{
    nats_state *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        bool stop = atomic_load_explicit(&n->stopped, memory_order_acquire);
        uint64_t now = now_ns();
        pending *expired = NULL;
        for (pending **pp = &n->pend, *p; (p = *pp);) {
            if (stop || p->deadline_ns <= now) {
                *pp = p->next;
                p->next = expired;
                expired = p;
            } else {
                pp = &p->next;
            }
        }
        pthread_mutex_unlock(&n->mu);
        for (pending *p = expired, *nx; p; p = nx) {
            nx = p->next;
            pending_finish(p, stop ? HY_ECLOSED : HY_ETIMEDOUT, NULL, 0);
        }
        pthread_mutex_lock(&n->mu);
        if (stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Publish a request for p (registered first, so the answer always finds it). */
static int request(nats_state *n, pending *p, const char *subj, const void *data, size_t len,
                   bool durable)
{
    char reply[160];
    /* p is the sweeper's or the inbox's to finish (and free) from the
     * unlock on: only the id is read after */
    pthread_mutex_lock(&n->mu);
    if (atomic_load_explicit(&n->stopped, memory_order_relaxed)) {
        /* the sweeper is gone (or going): nobody would finish it */
        pthread_mutex_unlock(&n->mu);
        return HY_ECLOSED;
    }
    uint64_t id = p->id = ++n->next_id;
    p->next = n->pend;
    n->pend = p;
    pthread_mutex_unlock(&n->mu);
    snprintf(reply, sizeof reply, "%s.%" PRIu64, n->inbox, id);
    int rc = publish_ready(n, n->fast);
    if (rc == 0 && !durable) {
        /* No header: no natsMsg, which libnats frees on its collector
         * thread, a wake-up per request. */
        rc = nats_err(natsConnection_PublishRequest(n->fast, subj, reply, data, (int)len));
    } else if (rc == 0) {
        natsMsg *m = NULL;
        rc = nats_err(natsMsg_Create(&m, subj, reply, data, (int)len));
        if (rc == 0)
            rc = nats_err(natsMsgHeader_Set(m, "Hy-Durable", "1"));
        if (rc == 0)
            rc = nats_err(natsConnection_PublishMsg(n->fast, m));
        natsMsg_Destroy(m);
    }
    if (rc != 0 && !pending_take(n, id))
        return 0; /* the sweeper took it meanwhile and finishes it */
    return rc;
}

/* ------------------------------------------------------------ export */

typedef struct ack {
    nats_state *n;
    endpoint *ep;
    char reply[];
} ack;

static void reply_status(nats_state *n, const char *reply, const char *hdr, int err,
                         const void *data, size_t len)
{
    if (!hdr) { /* no header: no natsMsg to build */
        (void)natsConnection_Publish(n->fast, reply, data, (int)len);
        return;
    }
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, reply, NULL, data, (int)len) != NATS_OK)
        return;
    char v[16];
    snprintf(v, sizeof v, "%d", err);
    natsMsgHeader_Set(m, hdr, v);
    (void)natsConnection_PublishMsg(n->fast, m);
    natsMsg_Destroy(m);
}

static ack *ack_new(nats_state *n, endpoint *ep, const char *reply)
{
    size_t rl = strlen(reply);
    ack *a = malloc(sizeof *a + rl + 1);
    if (!a)
        return NULL;
    a->n = n;
    a->ep = ep;
    memcpy(a->reply, reply, rl + 1);
    /* the connection outlives every answer still to publish */
    atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
    return a;
}

static void ack_free(ack *a)
{
    state_unref(a->n);
    free(a);
}

/* On the worker that replied (or released the request): publish the answer
 * to a request from the other process. */
static void on_answer(void *udata, int err, const void *data, size_t len)
{
    ack *a = udata;
    reply_status(a->n, a->reply, err ? "Hy-Error" : NULL, err, data, len);
    atomic_fetch_add_explicit(err ? &a->ep->st.dropped : &a->ep->st.acked, 1,
                              memory_order_relaxed);
    ack_free(a);
}

/* On the journal's thread: the durable send is journaled (or will not be). */
static void on_journaled(void *udata, int status)
{
    ack *a = udata;
    reply_status(a->n, a->reply, "Hy-Status", status, NULL, 0);
    if (status == 0)
        atomic_fetch_add_explicit(&a->ep->st.acked, 1, memory_order_relaxed);
    ack_free(a);
}

/* One message from NATS for an export: a plain send, a durable send or a
 * request. Destroys m. */
static void export_one(endpoint *ep, natsMsg *m)
{
    nats_state *n = ep->n;
    hy_kernel *k = n->k;
    const char *subj = natsMsg_GetSubject(m);
    const char *reply = natsMsg_GetReply(m);
    const void *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    const char *path = NULL;
    long part = -1;
    int rc = path_memo(subj, &part, &path);
    if (rc >= 0 && part >= (long)ep->partitions && part >= 0)
        rc = HY_EBADPATH;
    atomic_fetch_add_explicit(&ep->st.received, 1, memory_order_relaxed);
    const char *v = NULL;
    if (rc < 0) {
        rc = HY_EBADPATH;
    } else if (reply && *reply) {
        /* A durable send is acked from the journal's thread, a request
         * answered from the replying worker: this thread never waits. */
        bool durable = natsMsgHeader_Get(m, "Hy-Durable", &v) == NATS_OK;
        ack *a = ack_new(n, ep, reply);
        if (!a)
            rc = HY_ENOMEM;
        else if (durable)
            rc = hy_send_durable(k, path, data, len, on_journaled, a);
        else
            rc = hy_ext_ask_cb(k, path, data, len, on_answer, a);
        if (rc == 0) {
            natsMsg_Destroy(m);
            return;
        }
        if (a)
            ack_free(a);
    } else {
        rc = hy_send(k, path, data, len);
    }
    if (rc != 0) {
        atomic_fetch_add_explicit(&ep->st.dropped, 1, memory_order_relaxed);
        /* The kernel reports what it refused by route (no route, full); a
         * subject that is no path, or a payload over max_payload, is ours. */
        if (rc == HY_EBADPATH || rc == HY_ETOOBIG)
            hy_ext_dead_letter(k, subj, strlen(subj), data, len, HY_DEAD_REMOTE);
        if (reply && *reply)
            reply_status(n, reply, v ? "Hy-Status" : "Hy-Error", rc, NULL, 0);
    }
    natsMsg_Destroy(m);
}

#define EXPORT_BATCH 64
#define EXPORT_ARENA (64 * 1024)

typedef struct export_reader {
    endpoint *ep;
    natsSubscription *sub;
    natsMsg *held[EXPORT_BATCH];
    hy_send_item items[EXPORT_BATCH];
    size_t n, used;
    char arena[EXPORT_ARENA];   /* the items' paths */
} export_reader;

/* Send the plain messages gathered so far as one hy_send_batch (one route
 * lookup per run of one path, one push and wake-up per actor); an item the
 * kernel refuses is counted and skipped, as hy_send's refusal would be. */
static void export_flush(export_reader *r)
{
    endpoint *ep = r->ep;
    hy_kernel *k = ep->n->k;
    for (size_t off = 0; off < r->n;) {
        size_t acc = 0;
        int rc = hy_send_batch(k, r->items + off, r->n - off, &acc);
        if (rc == 0)
            break;
        size_t bad = off + acc;
        atomic_fetch_add_explicit(&ep->st.dropped, 1, memory_order_relaxed);
        if (rc == HY_EBADPATH || rc == HY_ETOOBIG) {
            const char *subj = natsMsg_GetSubject(r->held[bad]);
            hy_ext_dead_letter(k, subj, strlen(subj), r->items[bad].payload, r->items[bad].len,
                               HY_DEAD_REMOTE);
        }
        off = bad + 1;
    }
    for (size_t i = 0; i < r->n; i++)
        natsMsg_Destroy(r->held[i]);
    r->n = r->used = 0;
}

/* Gather m into the batch if it is a plain send to a path; false if not. */
static bool export_gather(export_reader *r, natsMsg *m)
{
    const char *reply = natsMsg_GetReply(m);
    if (reply && *reply)
        return false;
    const char *path;
    long part = -1;
    int rc = path_memo(natsMsg_GetSubject(m), &part, &path);
    if (rc < 0 || (part >= 0 && part >= (long)r->ep->partitions) ||
        r->used + (size_t)rc + 1 > EXPORT_ARENA)
        return false;
    char *copy = r->arena + r->used;
    memcpy(copy, path, (size_t)rc + 1);
    r->used += (size_t)rc + 1;
    r->items[r->n] = (hy_send_item){copy, natsMsg_GetData(m),
                                    (size_t)natsMsg_GetDataLength(m)};
    r->held[r->n++] = m;
    atomic_fetch_add_explicit(&r->ep->st.received, 1, memory_order_relaxed);
    return true;
}

/* An export's subscription, read here rather than by a libnats callback:
 * what is already queued when a message comes is taken with it, and the
 * plain sends among them go to the kernel as one batch, in order (a request
 * or a durable send first flushes what was gathered before it). Ends when
 * the subscription does, or once closing with nothing queued. */
static void *export_main(void *arg)
{
    export_reader *r = arg;
    endpoint *ep = r->ep;
    for (;;) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, r->sub, 100);
        if (s == NATS_TIMEOUT) {
            if (atomic_load_explicit(&ep->closing, memory_order_acquire))
                break;
            continue;
        }
        if (s != NATS_OK)
            break;
        for (;;) {
            if (!export_gather(r, m)) {
                export_flush(r);
                export_one(ep, m);
            } else if (r->n == EXPORT_BATCH) {
                export_flush(r);
            }
            int queued = 0;
            if (natsSubscription_GetPending(r->sub, &queued, NULL) != NATS_OK || queued <= 0 ||
                natsSubscription_NextMsg(&m, r->sub, 100) != NATS_OK)
                break;
        }
        export_flush(r);
    }
    free(r);
    return NULL;
}

/* Stop the readers of e (after its subscriptions were drained or
 * unsubscribed) and wait for them. */
static void export_readers_join(endpoint *e)
{
    atomic_store_explicit(&e->closing, 1, memory_order_release);
    for (unsigned i = 0; i < e->nreaders; i++)
        pthread_join(e->readers[i], NULL);
    e->nreaders = 0;
}

/* Start a reader per subscription of e. */
static int export_readers_start(endpoint *e)
{
    for (unsigned i = 0; i < e->nsubs; i++) {
        export_reader *r = malloc(sizeof *r);
        if (!r)
            return HY_ENOMEM;
        r->ep = e;
        r->sub = e->subs[i];
        r->n = r->used = 0;
        if (pthread_create(&e->readers[e->nreaders], NULL, export_main, r) != 0) {
            free(r);
            return hy_ext_fail(HY_ESYS, "NATS: cannot start an export's reader thread");
        }
        e->nreaders++;
    }
    return 0;
}

/* ------------------------------------------------------------ import */

/* A plain send: no headers, so straight from the payload, no natsMsg. */
static int publish_plain(endpoint *ep, const char *subj, const void *data, size_t len)
{
    nats_state *n = ep->n;
    int rc = publish_ready(n, n->nc);
    if (rc == 0)
        rc = nats_err(natsConnection_Publish(n->nc, subj, data, (int)len));
    atomic_fetch_add_explicit(rc ? &ep->st.dropped : &ep->st.published, 1,
                              memory_order_relaxed);
    return rc;
}

/* A durable send: a request the owner acks once journaled. */
static int durable_request(endpoint *e, const char *subj, const void *payload, size_t len,
                           void (*on_durable)(void *, int), void *udata)
{
    nats_state *n = e->n;
    if (atomic_load_explicit(&n->stopped, memory_order_acquire))
        return HY_ECLOSED;
    if (n->buf_bytes < 0 && natsConnection_Status(n->fast) != NATS_CONN_STATUS_CONNECTED)
        return hy_ext_fail(HY_EDISCONNECTED, "NATS: not connected");
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return HY_ENOMEM;
    p->ep = e;
    p->on_durable = on_durable;
    p->udata = udata;
    p->deadline_ns = now_ns() + (uint64_t)n->ask_timeout_ms * 1000000u;
    int rc = request(n, p, subj, payload, len, true);
    if (rc != 0) {
        free(p);
        atomic_fetch_add_explicit(&e->st.dropped, 1, memory_order_relaxed);
        return rc;
    }
    atomic_fetch_add_explicit(&e->st.published, 1, memory_order_relaxed);
    return 0;
}

/* Publish a request whose reply duty r carries (finished when the answer
 * comes, at the deadline, or here at once if it cannot be sent). */
static void ask_remote(endpoint *ep, const char *subj, const void *data, size_t len,
                       hy_ext_reply *r, int64_t deadline_ms)
{
    nats_state *n = ep->n;
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        hy_ext_reply_finish(r, HY_ENOMEM, NULL, 0);
        return;
    }
    p->ep = ep;
    p->reply = r;
    if (deadline_ms < 0 || deadline_ms > n->ask_timeout_ms)
        deadline_ms = n->ask_timeout_ms;
    p->deadline_ns = now_ns() + (uint64_t)deadline_ms * 1000000u;
    int rc = request(n, p, subj, data, len, false);
    if (rc != 0) {
        pending_finish(p, rc, NULL, 0);
        return;
    }
    atomic_fetch_add_explicit(&ep->st.published, 1, memory_order_relaxed);
}

/* What reaches the import's actor: a request made with hy_ask_async (the
 * others are forwarded, below), or a message sent before forwarding began. */
static int import_handler(hy_ctx *ctx, const hy_msg *msg)
{
    endpoint *ep = hy_subsystem_udata(ctx);
    size_t len, path_len;
    const char *path = hy_msg_path(msg, &path_len);
    const void *data = hy_msg_payload(msg, &len);
    long part = -1;
    if (hy_route_udata(ctx) == &ep->key_route && ep->partitions) {
        size_t kl;
        const char *key = hy_param(ctx, ep->key, &kl);
        if (key)
            part = (long)hy_nats_partition(key, kl, ep->partitions);
    }
    const char *subj;
    int rc = subject_memo(path, path_len, part, &subj);
    if (rc < 0)
        return rc;
    int64_t deadline_ms = -1;
    hy_ext_reply *r = hy_ext_reply_defer(ctx, &deadline_ms);
    if (r) {
        ask_remote(ep, subj, data, len, r, deadline_ms);
        return 0;
    }
    return publish_plain(ep, subj, data, len);
}

/* The partition of a keyed path of ep (hy_match: the import's key route
 * names the key), or -1. */
static long partition_of(endpoint *ep, const char *path)
{
    if (!ep->partitions)
        return -1;
    hy_match_result mr;
    if (hy_match(ep->n->k, path, &mr) != 0 || strcmp(mr.pattern, ep->key_pattern) != 0)
        return -1;
    for (unsigned i = 0; i < mr.nparams; i++)
        if (strcmp(mr.params[i].name, ep->key) == 0)
            return (long)hy_nats_partition(mr.params[i].value, mr.params[i].len,
                                           ep->partitions);
    return -1;
}

/* hy_send to an imported path, on the sender's thread (hy_ext_forward_set):
 * published at once, with no message built or queued here. What cannot be
 * published is refused to the sender and kept as a dead letter. */
static int forward_send(void *self, void *route_udata, const char *path, size_t path_len,
                        const void *payload, size_t len)
{
    endpoint *ep = self;
    long part = route_udata == &ep->key_route ? partition_of(ep, path) : -1;
    const char *subj;
    int rc = subject_memo(path, path_len, part, &subj);
    if (rc >= 0)
        rc = publish_plain(ep, subj, payload, len);
    if (rc != 0)
        hy_ext_dead_letter(ep->n->k, path, path_len, payload, len, HY_DEAD_REMOTE);
    return rc;
}

static int forward_durable(void *self, void *route_udata, const char *path, size_t path_len,
                           const void *payload, size_t len,
                           void (*on_durable)(void *, int), void *udata)
{
    endpoint *ep = self;
    long part = route_udata == &ep->key_route ? partition_of(ep, path) : -1;
    const char *subj;
    int rc = subject_memo(path, path_len, part, &subj);
    if (rc < 0)
        return rc;
    return durable_request(ep, subj, payload, len, on_durable, udata);
}

/* hy_ask (or hy_ext_ask_cb) on an imported path, on the asker's thread:
 * published at once, as a send is, so no worker comes between the asker and
 * the network; the answer finishes r from the inbox's thread. */
static int forward_ask(void *self, void *route_udata, const char *path, size_t path_len,
                       const void *payload, size_t len, hy_ext_reply *r, int64_t deadline_ms)
{
    endpoint *ep = self;
    long part = route_udata == &ep->key_route ? partition_of(ep, path) : -1;
    const char *subj;
    int rc = subject_memo(path, path_len, part, &subj);
    if (rc < 0)
        hy_ext_reply_finish(r, rc, NULL, 0);
    else
        ask_remote(ep, subj, payload, len, r, deadline_ms);
    return 0;
}

static const hy_ext_forward_ops import_forward = {forward_send, forward_durable, forward_ask};

/* ------------------------------------------------------------ attach */

static void on_reconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    nats_state *n = arg;
    atomic_fetch_add_explicit(&n->reconnects, 1, memory_order_relaxed);
}

static void nats_stop(hy_kernel *k, void *state)
{
    (void)k;
    nats_state *n = state;
    pthread_mutex_lock(&n->mu);
    atomic_store_explicit(&n->stopped, 1, memory_order_release);
    pthread_cond_broadcast(&n->cv);
    endpoint *eps = n->eps;
    pthread_mutex_unlock(&n->mu);
    if (n->sweeper_started)
        pthread_join(n->sweeper, NULL);
    /* Drain each subscription (the server stops sending to it; what is
     * queued is still handled): the bridges' callbacks finish, the
     * exports' readers end once their queues are empty. Then the inbox. */
    for (endpoint *e = eps; e; e = e->next)
        for (unsigned i = 0; i < e->nsubs; i++)
            if (natsSubscription_Drain(e->subs[i]) == NATS_OK && e->nreaders == 0)
                (void)natsSubscription_WaitForDrainCompletion(e->subs[i], 2000);
    for (endpoint *e = eps; e; e = e->next)
        export_readers_join(e);
    (void)natsConnection_FlushTimeout(n->nc, 1000);
    (void)natsConnection_FlushTimeout(n->fast, 1000);
    if (n->inbox_sub && natsSubscription_Drain(n->inbox_sub) == NATS_OK)
        (void)natsSubscription_WaitForDrainCompletion(n->inbox_sub, 1000);
}

static void nats_free(hy_kernel *k, void *state)
{
    (void)k;
    nats_state *n = state;
    natsConnection_Close(n->nc);
    natsConnection_Close(n->fast);
    state_unref(n);
}

int hy_nats_attach(hy_kernel *k, const hy_nats_opts *opts)
{
    static const hy_nats_opts defaults = {0};
    if (!k)
        return hy_ext_fail(HY_EINVAL, "hy_nats_attach: NULL kernel");
    if (!opts)
        opts = &defaults;
    if (hy_ext_slot_get(k, HY_EXT_SLOT_NATS))
        return hy_ext_fail(HY_EEXIST, "NATS is attached already");
    nats_state *n = calloc(1, sizeof *n);
    if (!n)
        return HY_ENOMEM;
    n->k = k;
    atomic_init(&n->refs, 1);
    n->buf_bytes = opts->reconnect_buf_bytes ? opts->reconnect_buf_bytes : 8 << 20;
    n->ask_timeout_ms = opts->ask_timeout_ms > 0 ? opts->ask_timeout_ms : 5000;
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);

    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    static const char *const local[] = {"nats://127.0.0.1:4222"};
    const char *const *servers = opts->servers && opts->nservers ? opts->servers : local;
    int nservers = opts->servers && opts->nservers ? (int)opts->nservers : 1;
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)servers, nservers);
    if (s == NATS_OK && opts->name)
        s = natsOptions_SetName(o, opts->name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, opts->max_reconnect ? opts->max_reconnect : -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, opts->reconnect_wait_ms ? opts->reconnect_wait_ms
                                                                    : 100);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(o, n->buf_bytes > 0 ? n->buf_bytes : 0);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, opts->connect_timeout_ms ? opts->connect_timeout_ms
                                                               : 2000);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(o, false, NULL, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, n);
    if (s == NATS_OK && opts->token)
        s = natsOptions_SetToken(o, opts->token);
    if (s == NATS_OK && opts->user)
        s = natsOptions_SetUserInfo(o, opts->user, opts->password);
    if (s == NATS_OK && opts->creds_file)
        s = natsOptions_SetUserCredentialsFromFiles(o, opts->creds_file, NULL);
    if (s == NATS_OK && (opts->tls || opts->ca_file))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && opts->ca_file)
        s = natsOptions_LoadCATrustedCertificates(o, opts->ca_file);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPendingMsgs(o, 1 << 20);
    /* a bridged publish must not come back to the process that made it */
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(o, true);
    if (s == NATS_OK)
        s = natsConnection_Connect(&n->nc, o);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK)
        s = natsConnection_Connect(&n->fast, o);
    natsOptions_Destroy(o);
    int rc = 0;
    if (s != NATS_OK) {
        rc = hy_ext_fail(s == NATS_NO_SERVER ? HY_EDISCONNECTED : nats_err(s),
                         "NATS connect: %s", natsStatus_GetText(s));
        goto fail;
    }
    natsInbox *ib = NULL;
    if ((s = natsInbox_Create(&ib)) != NATS_OK) {
        rc = nats_err(s);
        goto fail;
    }
    snprintf(n->inbox, sizeof n->inbox, "%s", (const char *)ib);
    natsInbox_Destroy(ib);
    char wild[160];
    snprintf(wild, sizeof wild, "%s.*", n->inbox);
    if ((s = natsConnection_Subscribe(&n->inbox_sub, n->fast, wild, on_inbox, n)) != NATS_OK ||
        (s = natsSubscription_SetPendingLimits(n->inbox_sub, -1, -1)) != NATS_OK) {
        rc = nats_err(s);
        goto fail;
    }
    if (pthread_create(&n->sweeper, NULL, sweeper_main, n) != 0) {
        rc = hy_ext_fail(HY_ESYS, "NATS: cannot start the sweeper thread");
        goto fail;
    }
    n->sweeper_started = true;
    static const hy_ext_slot_ops ops = {nats_stop, nats_free};
    if ((rc = hy_ext_slot_set(k, HY_EXT_SLOT_NATS, n, &ops)) != 0) {
        nats_stop(k, n);
        goto fail;
    }
    return 0;
fail:
    if (n->sweeper_started && !atomic_load(&n->stopped)) {
        nats_stop(k, n);
    }
    if (n->nc)
        natsConnection_Close(n->nc);
    if (n->fast)
        natsConnection_Close(n->fast);
    state_unref(n);
    return rc;
}

static endpoint *endpoint_find(nats_state *n, const char *name, bool import)
{
    pthread_mutex_lock(&n->mu);
    endpoint *e = n->eps;
    while (e && !(!e->bridge && e->import == import && strcmp(e->name, name) == 0))
        e = e->next;
    pthread_mutex_unlock(&n->mu);
    return e;
}

static endpoint *endpoint_new(nats_state *n, const char *name, bool import)
{
    endpoint *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->n = n;
    e->import = import;
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

static void endpoint_add(nats_state *n, endpoint *e)
{
    pthread_mutex_lock(&n->mu);
    e->next = n->eps;
    n->eps = e;
    pthread_mutex_unlock(&n->mu);
}

static int ready(hy_kernel *k, const char *name, nats_state **out)
{
    if (!k || !name)
        return hy_ext_fail(HY_EINVAL, "NATS: NULL kernel or name");
    if (!name_ok(name, strlen(name)))
        return hy_ext_fail(HY_EINVAL, "NATS: '%s' is not a subsystem name", name);
    nats_state *n = state_of(k);
    if (!n)
        return hy_ext_fail(HY_EINVAL, "NATS is not attached (hy_nats_attach)");
    if (atomic_load_explicit(&n->stopped, memory_order_acquire))
        return HY_ECLOSED;
    *out = n;
    return 0;
}

static int subscribe(endpoint *e, const char *subj, const char *queue)
{
    if (e->nsubs >= sizeof e->subs / sizeof e->subs[0])
        return hy_ext_fail(HY_EINVAL, "NATS: at most 64 owned partitions per process");
    natsSubscription *sub = NULL;
    natsStatus s = queue ? natsConnection_QueueSubscribeSync(&sub, e->n->nc, subj, queue)
                         : natsConnection_SubscribeSync(&sub, e->n->nc, subj);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s != NATS_OK) {
        natsSubscription_Destroy(sub);
        return hy_ext_fail(nats_err(s), "NATS subscribe '%s': %s", subj, natsStatus_GetText(s));
    }
    e->subs[e->nsubs++] = sub;
    return 0;
}

int hy_nats_export(hy_kernel *k, const char *name, const hy_nats_export_opts *opts)
{
    static const hy_nats_export_opts defaults = {0};
    nats_state *n;
    int rc = ready(k, name, &n);
    if (rc)
        return rc;
    if (!opts)
        opts = &defaults;
    if (endpoint_find(n, name, false))
        return hy_ext_fail(HY_EEXIST, "'%s' is exported already", name);
    for (size_t i = 0; i < opts->nowned; i++)
        if (!opts->owned || opts->owned[i] >= opts->partitions)
            return hy_ext_fail(HY_EINVAL, "partition %zu is not below %u", i, opts->partitions);
    endpoint *e = endpoint_new(n, name, false);
    if (!e)
        return HY_ENOMEM;
    e->partitions = opts->partitions;
    char subj[160], queue[160];
    snprintf(queue, sizeof queue, "%s", opts->queue ? opts->queue : "");
    if (!*queue)
        snprintf(queue, sizeof queue, "hypha.%s", name);
    snprintf(subj, sizeof subj, "hypha.%s", name);
    rc = subscribe(e, subj, queue);
    snprintf(subj, sizeof subj, "hypha.%s.>", name);
    if (rc == 0)
        rc = subscribe(e, subj, queue);
    for (size_t i = 0; rc == 0 && i < opts->nowned; i++) {
        snprintf(subj, sizeof subj, "hyphap.%s.%u.>", name, opts->owned[i]);
        rc = subscribe(e, subj, NULL);
        /* a path with no segment after the key: hyphap.NAME.P */
        snprintf(subj, sizeof subj, "hyphap.%s.%u", name, opts->owned[i]);
        if (rc == 0)
            rc = subscribe(e, subj, NULL);
    }
    if (rc == 0)
        rc = nats_err(natsConnection_FlushTimeout(n->nc, 2000));
    if (rc == 0)
        rc = export_readers_start(e);
    if (rc != 0) {
        for (unsigned i = 0; i < e->nsubs; i++)
            natsSubscription_Unsubscribe(e->subs[i]);
        export_readers_join(e);
        for (unsigned i = 0; i < e->nsubs; i++)
            natsSubscription_Destroy(e->subs[i]);
        free(e);
        return rc;
    }
    endpoint_add(n, e);
    return 0;
}

int hy_nats_import(hy_kernel *k, const char *name, const hy_nats_import_opts *opts)
{
    static const hy_nats_import_opts defaults = {0};
    nats_state *n;
    int rc = ready(k, name, &n);
    if (rc)
        return rc;
    if (!opts)
        opts = &defaults;
    if (opts->partitions && (!opts->key_pattern || !opts->key || strlen(opts->key) >= 64 ||
                             strlen(opts->key_pattern) >= 256))
        return hy_ext_fail(HY_EINVAL, "a partitioned import needs key_pattern (under 256 "
                                      "bytes) and key (under 64)");
    endpoint *e = endpoint_new(n, name, true);
    if (!e)
        return HY_ENOMEM;
    e->partitions = opts->partitions;
    if (opts->partitions) {
        snprintf(e->key, sizeof e->key, "%s", opts->key);
        snprintf(e->key_pattern, sizeof e->key_pattern, "%s", opts->key_pattern);
    }
    hy_route routes[2];
    memset(routes, 0, sizeof routes);
    size_t nr = 0;
    if (opts->partitions) {
        routes[nr].pattern = opts->key_pattern;
        routes[nr].handler = import_handler;
        routes[nr].udata = &e->key_route;
        nr++;
    }
    routes[nr].pattern = "**";
    routes[nr].handler = import_handler;
    nr++;
    hy_subsystem_def def;
    memset(&def, 0, sizeof def);
    def.routes = routes;
    def.nroutes = nr;
    def.udata = e;
    def.trusted = 1;
    rc = hy_subsystem_register(k, name, &def);
    if (rc != 0) {
        free(e);
        return rc;
    }
    endpoint_add(n, e);
    /* from here on plain and durable sends skip the actor; until then they
     * went through the handler, which carries them as well */
    return hy_ext_forward_set(k, name, &import_forward, e);
}

/* ------------------------------------------------------------ publish bridge */

#define FROM_NATS "nats"

/* A local publish under NAME:// goes out as hyphapub.NAME...; one that came
 * in from NATS (published as the "nats" principal) does not go back. */
static int bridge_out(hy_ctx *ctx, const hy_msg *msg)
{
    endpoint *ep = hy_route_udata(ctx);
    nats_state *n = ep->n;
    const char *who = hy_msg_principal(msg);
    if (who && strcmp(who, FROM_NATS) == 0)
        return 0;
    size_t len;
    const void *data = hy_msg_payload(msg, &len);
    char subj[SUBJ_MAX + 8];
    int rc = subject_of(hy_msg_path(msg, NULL), -1, subj + 3, SUBJ_MAX);
    if (rc < 0)
        return rc;
    memcpy(subj, "hyphapub.", 9); /* over "hyp" + "hypha." */
    rc = atomic_load_explicit(&n->stopped, memory_order_acquire)
             ? HY_ECLOSED
             : nats_err(natsConnection_Publish(n->nc, subj, data, (int)len));
    atomic_fetch_add_explicit(rc ? &ep->st.dropped : &ep->st.published, 1,
                              memory_order_relaxed);
    return rc;
}

static void on_bridge_in(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)nc, (void)sub;
    endpoint *ep = arg;
    nats_state *n = ep->n;
    const char *subj = natsMsg_GetSubject(m);
    char alt[SUBJ_MAX], path[PATH_MAX_];
    const void *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    atomic_fetch_add_explicit(&ep->st.received, 1, memory_order_relaxed);
    /* hyphapub.NAME... reads as hypha.NAME... */
    int rc = (size_t)snprintf(alt, sizeof alt, "hypha%s", subj + 8) < sizeof alt
                 ? hy_nats_path(alt, path, sizeof path)
                 : HY_ETOOBIG;
    if (rc >= 0)
        rc = hy_publish_as(n->k, n->from_nats, path, data, len, NULL);
    if (rc < 0) {
        atomic_fetch_add_explicit(&ep->st.dropped, 1, memory_order_relaxed);
        if (rc == HY_EBADPATH || rc == HY_ETOOBIG)
            hy_ext_dead_letter(n->k, subj, strlen(subj), data, len, HY_DEAD_REMOTE);
    }
    natsMsg_Destroy(m);
}

int hy_nats_bridge_publish(hy_kernel *k, const char *name)
{
    nats_state *n;
    int rc = ready(k, name, &n);
    if (rc)
        return rc;
    endpoint *e = endpoint_new(n, name, false);
    if (!e)
        return HY_ENOMEM;
    e->bridge = true;
    pthread_mutex_lock(&n->mu);
    if (!n->from_nats)
        rc = hy_principal_create(k, FROM_NATS, NULL, 0, &n->from_nats);
    pthread_mutex_unlock(&n->mu);
    char subj[160];
    for (int i = 0; rc == 0 && i < 2; i++) {
        snprintf(subj, sizeof subj, i ? "hyphapub.%s.>" : "hyphapub.%s", name);
        natsSubscription *sub = NULL;
        natsStatus st = natsConnection_Subscribe(&sub, n->nc, subj, on_bridge_in, e);
        if (st == NATS_OK)
            st = natsSubscription_SetPendingLimits(sub, -1, -1);
        if (st != NATS_OK) {
            natsSubscription_Destroy(sub);
            rc = hy_ext_fail(nats_err(st), "NATS subscribe '%s'", subj);
        } else {
            e->subs[e->nsubs++] = sub;
        }
    }
    char pattern[80];
    snprintf(pattern, sizeof pattern, "%s://**", name);
    if (rc == 0)
        rc = hy_subscribe(k, pattern, bridge_out, e, NULL);
    if (rc == 0)
        rc = nats_err(natsConnection_FlushTimeout(n->nc, 2000));
    if (rc != 0) {
        for (unsigned i = 0; i < e->nsubs; i++) {
            natsSubscription_Unsubscribe(e->subs[i]);
            natsSubscription_Destroy(e->subs[i]);
        }
        free(e);
        return rc;
    }
    endpoint_add(n, e);
    return 0;
}

int hy_nats_send_durable(hy_kernel *k, const char *path, const void *payload, size_t len,
                         void (*on_durable)(void *udata, int status), void *udata)
{
    if (!k || !path || (!payload && len))
        return hy_ext_fail(HY_EINVAL, "hy_nats_send_durable: NULL argument");
    nats_state *n = state_of(k);
    if (!n)
        return hy_ext_fail(HY_EINVAL, "NATS is not attached (hy_nats_attach)");
    if (atomic_load_explicit(&n->stopped, memory_order_acquire))
        return HY_ECLOSED;
    const char *sep = strstr(path, "://");
    char name[65];
    if (!sep || (size_t)(sep - path) >= sizeof name)
        return hy_ext_fail(HY_EBADPATH, "'%s' is not a path", path);
    memcpy(name, path, (size_t)(sep - path));
    name[sep - path] = 0;
    endpoint *e = endpoint_find(n, name, true);
    if (!e)
        return hy_ext_fail(HY_ENOROUTE, "'%s' is not imported", name);
    char subj[SUBJ_MAX];
    int rc = subject_of(path, partition_of(e, path), subj, sizeof subj);
    if (rc < 0)
        return rc;
    return durable_request(e, subj, payload, len, on_durable, udata);
}

int hy_nats_stats_get(hy_kernel *k, const char *name, hy_nats_stats *out)
{
    if (!k || !out)
        return HY_EINVAL;
    memset(out, 0, sizeof *out);
    nats_state *n = state_of(k);
    if (!n)
        return HY_ENOENT;
    out->reconnects = atomic_load_explicit(&n->reconnects, memory_order_relaxed);
    bool found = name == NULL;
    pthread_mutex_lock(&n->mu);
    for (endpoint *e = n->eps; e; e = e->next) {
        if (name && strcmp(e->name, name) != 0)
            continue;
        found = true;
        out->published += atomic_load_explicit(&e->st.published, memory_order_relaxed);
        out->received += atomic_load_explicit(&e->st.received, memory_order_relaxed);
        out->acked += atomic_load_explicit(&e->st.acked, memory_order_relaxed);
        out->dropped += atomic_load_explicit(&e->st.dropped, memory_order_relaxed);
    }
    pthread_mutex_unlock(&n->mu);
    return found ? 0 : HY_ENOENT;
}
