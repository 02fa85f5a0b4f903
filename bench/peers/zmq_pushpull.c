/* zmq-inproc: the ZeroMQ peer of hypha's "static" throughput scenario
 * (bench/peers/run.sh runs the two in alternating rounds).
 *
 * One pusher thread sends N 32-byte messages over an inproc PUSH/PULL pair to
 * one puller thread. The clock runs from the pusher's first send until the
 * puller has received all N. Each message carries its sequence number, which
 * the puller checks, so a lost, reordered or duplicated message is a failure,
 * not a fast run.
 *
 * High-water marks: both sockets are set to 1000 messages, ZeroMQ's own
 * default, written out so the figure does not move with the library's default.
 * An inproc pipe holds about SNDHWM + RCVHWM messages, so the pusher blocks
 * when the puller is ~2000 behind: bounded memory, unlike an unbounded mailbox.
 * 32 bytes fits ZeroMQ's inline "very small message", so no send allocates.
 *
 *   zmq_pushpull [--messages N] [--hwm H]      defaults: 10000000, 1000 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define MSG_BYTES 32
#define ENDPOINT "inproc://hypha-peer"

struct run {
    void *ctx;
    uint64_t n;
    int hwm;
    pthread_barrier_t start;
    uint64_t t0, t1; /* each written by one thread, read by main after join */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "zmq_pushpull: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void *pusher(void *arg)
{
    struct run *r = arg;
    void *s = zmq_socket(r->ctx, ZMQ_PUSH);
    if (!s || zmq_setsockopt(s, ZMQ_SNDHWM, &r->hwm, sizeof r->hwm) != 0 ||
        zmq_connect(s, ENDPOINT) != 0)
        die("push socket");
    unsigned char buf[MSG_BYTES] = {0};
    pthread_barrier_wait(&r->start);
    r->t0 = now_ns();
    for (uint64_t i = 0; i < r->n; i++) {
        memcpy(buf, &i, sizeof i);
        if (zmq_send(s, buf, sizeof buf, 0) != MSG_BYTES)
            die("zmq_send");
    }
    /* Linger until the puller has everything: closing must not drop the tail. */
    int linger = -1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
    return NULL;
}

static void *puller(void *arg)
{
    struct run *r = arg;
    void *s = zmq_socket(r->ctx, ZMQ_PULL);
    if (!s || zmq_setsockopt(s, ZMQ_RCVHWM, &r->hwm, sizeof r->hwm) != 0 ||
        zmq_bind(s, ENDPOINT) != 0)
        die("pull socket");
    unsigned char buf[MSG_BYTES];
    pthread_barrier_wait(&r->start);
    for (uint64_t i = 0; i < r->n; i++) {
        if (zmq_recv(s, buf, sizeof buf, 0) != MSG_BYTES)
            die("zmq_recv");
        uint64_t seq;
        memcpy(&seq, buf, sizeof seq);
        if (seq != i) {
            fprintf(stderr, "zmq_pushpull: got message %" PRIu64 ", expected %" PRIu64 "\n",
                    seq, i);
            exit(1); /* the pusher may be blocked on a full pipe: no join */
        }
    }
    r->t1 = now_ns();
    zmq_close(s);
    return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct run r = {.n = 10000000, .hwm = 1000};
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc &&
            parse_u64(argv[i + 1], &r.n) == 0) {
            i++;
        } else if (strcmp(argv[i], "--hwm") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) == 0 && v <= 1000000000) {
            r.hwm = (int)v;
            i++;
        } else {
            fprintf(stderr, "usage: zmq_pushpull [--messages N] [--hwm H]\n");
            return 2;
        }
    }

    if (!(r.ctx = zmq_ctx_new()))
        die("zmq_ctx_new");
    /* Both threads set up their socket before the barrier (inproc allows the
     * connect to precede the bind), so the clock never includes setup. */
    pthread_barrier_init(&r.start, NULL, 2);
    pthread_t tpush, tpull;
    if (pthread_create(&tpull, NULL, puller, &r) != 0 ||
        pthread_create(&tpush, NULL, pusher, &r) != 0) {
        fprintf(stderr, "zmq_pushpull: pthread_create failed\n");
        return 1;
    }
    pthread_join(tpush, NULL);
    pthread_join(tpull, NULL);
    pthread_barrier_destroy(&r.start);
    zmq_ctx_term(r.ctx);

    double seconds = (double)(r.t1 - r.t0) / 1e9;
    printf("{\"bench\":\"peers\",\"scenario\":\"zmq-inproc\",\"msgs_per_s\":%.0f,"
           "\"seconds\":%.3f,\"messages\":%" PRIu64 ",\"workers\":2,\"msg_bytes\":%d,"
           "\"hwm\":%d}\n",
           (double)r.n / seconds, seconds, r.n, MSG_BYTES, r.hwm);
    fflush(stdout);
    return 0;
}
