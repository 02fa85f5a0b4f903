/* caf-count: the CAF 0.17 peer of hypha's "count" throughput scenario
 * (bench/peers/run.sh runs the two in alternating rounds); erl_count.erl is
 * the same program in Erlang.
 *
 * One sender actor sends N integers to one counting receiver. The clock runs
 * from the sender's first send until the receiver has counted all N; the
 * receiver's "done" reaches main, which reads the clock. The receiver also sums
 * the payloads, so a lost or duplicated message is a failure, not a fast run.
 *
 * The sender sends in slices of 1024 and re-queues itself between them (it
 * sends itself the next slice's start), as a well-behaved CAF actor does, so
 * it never holds a worker for the whole run; main only starts it and waits.
 * CAF mailboxes are unbounded: when the receiver falls behind, its mailbox
 * grows; max_rss_bytes in the result shows by how much.
 *
 *   caf_count [--messages N] [--workers W]     defaults: 10000000, 2 */
#include <caf/all.hpp>

#include "peer.h"

#include <sys/resource.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;
using done_atom = caf::atom_constant<caf::atom("done")>;

constexpr uint64_t batch = 1024;

struct receiver_state {
    uint64_t count = 0;
    uint64_t sum = 0;
};

caf::behavior receiver(caf::stateful_actor<receiver_state> *self, uint64_t n,
                       caf::actor done_to)
{
    return {
        [=](uint64_t v) {
            auto &s = self->state;
            s.sum += v;
            if (++s.count == n) {
                self->send(done_to, done_atom::value, s.sum);
                self->quit();
            }
        },
    };
}

/* `first` is the payload of the next message (1..n); *t0 is written before the
 * first send and read by main only after "done", which the message chain
 * orders after it. */
caf::behavior sender(caf::event_based_actor *self, caf::actor dst, uint64_t n,
                     uint64_t *t0)
{
    return {
        [=](go_atom, uint64_t first) {
            if (first == 1)
                *t0 = peer_now_ns();
            uint64_t last = first + batch - 1 < n ? first + batch - 1 : n;
            for (uint64_t v = first; v <= last; ++v)
                self->send(dst, v);
            if (last < n)
                self->send(self, go_atom::value, last + 1);
            else
                self->quit();
        },
    };
}

uint64_t max_rss_bytes()
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? static_cast<uint64_t>(ru.ru_maxrss) * 1024 : 0;
}

} // namespace

int main(int argc, char **argv)
{
    uint64_t n = 10000000, workers = 2;
    const peer_opt opts[] = {{"--messages", &n, UINT64_MAX}, {"--workers", &workers, 1024}};
    if (peer_parse_args(argc, argv, opts, 2, "caf_count [--messages N] [--workers W]") != 0)
        return 2;

    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", static_cast<size_t>(workers));
    caf::actor_system sys{cfg};

    uint64_t t0 = 0, sum = 0;
    caf::scoped_actor self{sys};
    auto rx = sys.spawn(receiver, n, caf::actor{self});
    auto tx = sys.spawn(sender, rx, n, &t0);
    self->send(tx, go_atom::value, uint64_t{1});
    self->receive([&](done_atom, uint64_t s) { sum = s; });
    uint64_t t1 = peer_now_ns();

    double seconds = static_cast<double>(t1 - t0) / 1e9;
    std::printf("{\"bench\":\"peers\",\"scenario\":\"caf-count\",\"msgs_per_s\":%.0f,"
                "\"seconds\":%.3f,\"messages\":%" PRIu64 ",\"workers\":%" PRIu64
                ",\"max_rss_bytes\":%" PRIu64 "}\n",
                static_cast<double>(n) / seconds, seconds, n, workers, max_rss_bytes());
    std::fflush(stdout);
    /* n(n+1)/2 computed mod 2^64, as the receiver's sum is. */
    uint64_t want = n % 2 == 0 ? (n / 2) * (n + 1) : n * ((n + 1) / 2);
    if (sum != want) {
        std::fprintf(stderr, "caf_count: payload sum %" PRIu64 ", expected %" PRIu64 "\n",
                     sum, want);
        return 1;
    }
    return 0;
}
