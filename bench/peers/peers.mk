# bench-peers: CAF 0.17, Erlang/OTP and ZeroMQ programs measured against the
# matching hypha throughput scenarios in one run (bench/peers/run.sh says how). Included by the
# GNUmakefile, whose BUILD, WARN, PEER_DEPS and install_missing it uses.
#
#   make bench-peers                        full sizes, 5 rounds
#   make bench-peers ROUNDS=1 PEER_MESSAGES=1000000 PEER_ROUNDTRIPS=100000
#
# The peers: caf_count.cpp, caf_pingpong.cpp (CAF), erl_count.erl,
# erl_pingpong.erl (Erlang/OTP escripts), zmq_pushpull.c (ZeroMQ); the bare
# MPSC floor is hypha-bench's own "bare" scenario.
#
# Peers are built with plain -O2 whatever SAN= says: they are timed, not checked.

PEER_BINS := $(BUILD)/peers/caf_count $(BUILD)/peers/caf_pingpong \
             $(BUILD)/peers/zmq_pushpull \
             $(BUILD)/peers/erl_count $(BUILD)/peers/erl_pingpong

.PHONY: peer-deps
peer-deps:
	$(call install_missing,$(PEER_DEPS))

# Only caf_core: the peers use local actors, not CAF's network layer (caf_io).
$(BUILD)/peers/caf_%: bench/peers/caf_%.cpp bench/peers/peer.h | peer-deps
	@mkdir -p $(dir $@)
	g++ -O2 -std=c++17 -Wall -Wextra -pthread $< -o $@ -lcaf_core

$(BUILD)/peers/zmq_pushpull: bench/peers/zmq_pushpull.c bench/peers/peer.h | peer-deps
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 $(WARN) -pthread $< -o $@ -lzmq

# The Erlang peers are escripts (compiled by escript when they start, outside
# the clock): copied beside the others so run.sh finds every peer in one place.
$(BUILD)/peers/erl_%: bench/peers/erl_%.erl | peer-deps
	@mkdir -p $(dir $@)
	cp $< $@ && chmod +x $@

bench-peers: peer-deps $(PEER_BINS) $(BUILD)/hypha-bench
	BUILD=$(BUILD) sh bench/peers/run.sh

# bench-counters: context switches, CPU migrations and futex calls per message
# of static, count, bare and pingpong (and of the peers already built), from
# perf stat (bench/peers/counters.sh says how).
#   make bench-counters                     2,000,000 messages, 3 runs each
#   make bench-counters MESSAGES=500000 ROUNDS=1
COUNTER_DEPS := linux-perf:/usr/bin/perf strace:/usr/bin/strace

.PHONY: bench-counters counter-deps
counter-deps:
	$(call install_missing,$(COUNTER_DEPS))

bench-counters: counter-deps $(BUILD)/hypha-bench
	BUILD=$(BUILD) sh bench/peers/counters.sh
