#!/usr/bin/env escript
%% erl-pingpong: the Erlang/OTP peer of hypha's "pingpong" throughput scenario
%% (bench/peers/run.sh runs the two in alternating rounds), in the shape of
%% caf_pingpong.cpp.
%%
%% Two processes bounce one message N times. A round trip is ping -> pong ->
%% ping, so msgs_per_s counts round trips per second ("unit":"round_trips"),
%% two messages each. The payload is the round-trip number, which ping checks
%% on every return, so a lost or duplicated message is a failure, not a fast
%% run. Only one message is ever in flight.
%%
%% The VM's defaults otherwise; --workers sets the online schedulers.
%%
%%   erl_pingpong [--messages N] [--workers W]   N round trips; defaults 1000000, 2
-mode(compile).

main(Args) ->
    Opts = peer_args(Args, #{"--messages" => 1000000, "--workers" => 2},
                     "erl_pingpong [--messages N] [--workers W]"),
    N = maps:get("--messages", Opts),
    Workers = online_schedulers(maps:get("--workers", Opts)),
    Main = self(),
    Pong = spawn(fun pong/0),
    Ping = spawn(fun() -> ping(Pong, N, Main) end),
    Ping ! go,
    {Trips, T0} = receive {done, V, T} -> {V, T} end,
    T1 = erlang:monotonic_time(nanosecond),
    Seconds = (T1 - T0) / 1.0e9,
    io:format("{\"bench\":\"peers\",\"scenario\":\"erl-pingpong\",\"msgs_per_s\":~b,"
              "\"seconds\":~.3f,\"unit\":\"round_trips\",\"messages\":~b,\"workers\":~b,"
              "\"ns_per_round_trip\":~b,\"otp\":\"~s\"}~n",
              [round(N / Seconds), Seconds, N, Workers, round((T1 - T0) / N),
               erlang:system_info(otp_release)]),
    case Trips of
        N -> halt(0);
        _ -> io:format(standard_error, "erl_pingpong: round trip out of order or lost~n", []),
             halt(1)
    end.

pong() ->
    receive
        {ping, From, V} -> From ! {pong, V}, pong();
        stop -> ok
    end.

ping(Pong, N, Main) ->
    receive
        go ->
            T0 = erlang:monotonic_time(nanosecond),
            Pong ! {ping, self(), 1},
            ping_loop(Pong, N, 1, Main, T0)
    end.

ping_loop(Pong, N, Expect, Main, T0) ->
    receive
        {pong, V} when V =/= Expect; V >= N ->
            Main ! {done, if V =:= Expect -> V; true -> 0 end, T0},
            Pong ! stop;
        {pong, V} ->
            Pong ! {ping, self(), V + 1},
            ping_loop(Pong, N, V + 1, Main, T0)
    end.

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
