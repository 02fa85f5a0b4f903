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
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "peer.h"

#define MSG_BYTES 32
#define ENDPOINT "inproc://hypha-peer"

struct run {
    void *ctx;
    uint64_t n;
    int hwm;
    pthread_barrier_t start;
    uint64_t t0, t1; /* each written by one thread, read by main after join */
};

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
    r->t0 = peer_now_ns();
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
    r->t1 = peer_now_ns();
    zmq_close(s);
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = {.n = 10000000, .hwm = 1000};
    uint64_t hwm = (uint64_t)r.hwm;
    const peer_opt opts[] = {{"--messages", &r.n, UINT64_MAX}, {"--hwm", &hwm, 1000000000}};
    if (peer_parse_args(argc, argv, opts, 2, "zmq_pushpull [--messages N] [--hwm H]") != 0)
        return 2;
    r.hwm = (int)hwm;

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
