#!/usr/bin/env escript
%% erl-count: the Erlang/OTP peer of hypha's "count" throughput scenario
%% (bench/peers/run.sh runs the two in alternating rounds), in the shape of
%% caf_count.cpp.
%%
%% One sender process sends N integers to one counting process, in slices of
%% 1024: after each slice it sends itself {slice, Next} and takes it from its
%% own mailbox, so it goes back behind whatever else is queued, as a CAF actor
%% re-queueing itself does. The clock runs from the sender's first send until
%% the main process holds the counter's "done". The counter sums the payloads,
%% so a lost or duplicated message is a failure, not a fast run. Mailboxes are
%% unbounded, as CAF's are.
%%
%% The VM's defaults otherwise (erlang-base, no +s tuning); --workers sets the
%% online schedulers, as hypha's and CAF's worker threads.
%%
%%   erl_count [--messages N] [--workers W]     defaults: 10000000, 2
-mode(compile).

-define(SLICE, 1024).

main(Args) ->
    Opts = peer_args(Args, #{"--messages" => 10000000, "--workers" => 2},
                     "erl_count [--messages N] [--workers W]"),
    N = maps:get("--messages", Opts),
    Workers = online_schedulers(maps:get("--workers", Opts)),
    Main = self(),
    Counter = spawn(fun() -> counter(N, 0, Main) end),
    Sender = spawn(fun() -> sender(Counter, N, Main) end),
    Sender ! {slice, 1},
    Sum = receive {done, S} -> S end,
    T1 = erlang:monotonic_time(nanosecond),
    T0 = receive {started, T} -> T end,
    Seconds = (T1 - T0) / 1.0e9,
    io:format("{\"bench\":\"peers\",\"scenario\":\"erl-count\",\"msgs_per_s\":~b,"
              "\"seconds\":~.3f,\"messages\":~b,\"workers\":~b,\"slice\":~b,\"otp\":\"~s\"}~n",
              [round(N / Seconds), Seconds, N, Workers, ?SLICE, erlang:system_info(otp_release)]),
    case N * (N + 1) div 2 of
        Sum -> halt(0);
        Want -> io:format(standard_error, "erl_count: payload sum ~b, expected ~b~n", [Sum, Want]),
                halt(1)
    end.

counter(0, Sum, Main) ->
    Main ! {done, Sum};
counter(Left, Sum, Main) ->
    receive
        V -> counter(Left - 1, Sum + V, Main)
    end.

sender(Counter, N, Main) ->
    receive
        {slice, First} ->
            First =:= 1 andalso (Main ! {started, erlang:monotonic_time(nanosecond)}),
            Last = min(First + ?SLICE - 1, N),
            send_range(Counter, First, Last),
            if
                Last < N -> self() ! {slice, Last + 1}, sender(Counter, N, Main);
                true -> ok
            end
    end.

send_range(Counter, I, Last) when I =< Last ->
    Counter ! I,
    send_range(Counter, I + 1, Last);
send_range(_, _, _) ->
    ok.

%% What every Erlang peer shares (kept in each file: an escript is one file).
%% "--name value" pairs of positive integers, as bench/peers/peer.h parses them.
peer_args([], Opts, _Usage) ->
    Opts;
peer_args([Name, Value | Rest], Opts, Usage) when is_map_key(Name, Opts) ->
    case string:to_integer(Value) of
        {V, ""} when V > 0 -> peer_args(Rest, Opts#{Name := V}, Usage);
        _ -> usage(Usage)
    end;
peer_args(_, _, Usage) ->
    usage(Usage).

usage(Usage) ->
    io:format(standard_error, "usage: ~s~n", [Usage]),
    halt(2).

online_schedulers(Wanted) ->
    W = min(Wanted, erlang:system_info(schedulers)),
    erlang:system_flag(schedulers_online, W),
    W.
