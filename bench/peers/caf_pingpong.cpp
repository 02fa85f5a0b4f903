/* caf-pingpong: the CAF 0.17 peer of hypha's "pingpong" throughput scenario
 * (bench/peers/run.sh runs the two in alternating rounds).
 *
 * Two actors bounce one message N times. A round trip is ping -> pong -> ping,
 * so msgs_per_s here counts round trips per second ("unit":"round_trips"), two
 * messages each. The payload is the round-trip number, which ping checks on
 * every return, so a lost or duplicated message is a failure, not a fast run.
 * Only one message is ever in flight: this measures per-message latency through
 * CAF's mailboxes and scheduler, not batching.
 *
 *   caf_pingpong [--messages N] [--workers W]   N round trips; defaults 1000000, 2 */
#include <caf/all.hpp>

#include "peer.h"

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using done_atom = caf::atom_constant<caf::atom("done")>;

/* Replies with an explicit send rather than a handler return value, so both
 * directions cost the same plain asynchronous send. */
caf::behavior pong(caf::event_based_actor *self)
{
    return {
        [=](ping_atom, uint64_t v) {
            self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                       pong_atom::value, v);
        },
    };
}

struct ping_state {
    uint64_t expect = 1;
    bool ok = true;
};

/* *t0 is written before the first send and read by main only after "done",
 * which the message chain orders after it. */
caf::behavior ping(caf::stateful_actor<ping_state> *self, caf::actor peer, uint64_t n,
                   caf::actor done_to, uint64_t *t0)
{
    return {
        [=](go_atom) {
            *t0 = peer_now_ns();
            self->send(peer, ping_atom::value, uint64_t{1});
        },
        [=](pong_atom, uint64_t v) {
            auto &s = self->state;
            if (v != s.expect)
                s.ok = false;
            if (v >= n || !s.ok) {
                self->send(done_to, done_atom::value, s.ok ? v : uint64_t{0});
                self->send_exit(peer, caf::exit_reason::user_shutdown);
                self->quit();
                return;
            }
            s.expect = v + 1;
            self->send(peer, ping_atom::value, v + 1);
        },
    };
}

} // namespace

int main(int argc, char **argv)
{
    uint64_t n = 1000000, workers = 2;
    const peer_opt opts[] = {{"--messages", &n, UINT64_MAX}, {"--workers", &workers, 1024}};
    if (peer_parse_args(argc, argv, opts, 2, "caf_pingpong [--messages N] [--workers W]") != 0)
        return 2;

    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", static_cast<size_t>(workers));
    caf::actor_system sys{cfg};

    uint64_t t0 = 0, trips = 0;
    caf::scoped_actor self{sys};
    auto po = sys.spawn(pong);
    auto pi = sys.spawn(ping, po, n, caf::actor{self}, &t0);
    self->send(pi, go_atom::value);
    self->receive([&](done_atom, uint64_t v) { trips = v; });
    uint64_t t1 = peer_now_ns();

    double seconds = static_cast<double>(t1 - t0) / 1e9;
    std::printf("{\"bench\":\"peers\",\"scenario\":\"caf-pingpong\",\"msgs_per_s\":%.0f,"
                "\"seconds\":%.3f,\"unit\":\"round_trips\",\"messages\":%" PRIu64
                ",\"workers\":%" PRIu64 ",\"ns_per_round_trip\":%.0f}\n",
                static_cast<double>(n) / seconds, seconds, n, workers,
                static_cast<double>(t1 - t0) / static_cast<double>(n));
    std::fflush(stdout);
    if (trips != n) {
        std::fprintf(stderr, "caf_pingpong: round trip out of order or lost\n");
        return 1;
    }
    return 0;
}
