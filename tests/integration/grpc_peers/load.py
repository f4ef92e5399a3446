"""Steady gRPC load (grpcio from PyPI) on server.py's `redline.test.Echo`, for the canary
judge's tests: one call every --interval-ms, for --seconds or until stdin closes, the calls
taken in turn from a fixed mix, each started without waiting for the previous one (slow
calls do not hold the pace back).

Usage: load.py --target HOST:PORT [--interval-ms 20] [--seconds 120] MIX...
  MIX is `WEIGHT:SCENARIO[:ARG]`, e.g. `8:unary` `2:fail:NOT_FOUND` `1:sleep:300`:
    unary            /Unary with payload `x`
    fail:CODE        /Fail with `CODE` (a grpc.StatusCode name)
    sleep:MS         /Sleep for MS milliseconds
  Out of every sum-of-weights calls, WEIGHT are that scenario, interleaved evenly.

Prints `READY` once the channel is connected and, at the end, one JSON object: the number of
calls per status code name ({"OK": 812, "NOT_FOUND": 203, ...}).
"""

import argparse
import json
import sys
import threading
import time

import grpc

SERVICE = "/redline.test.Echo/"


def parse_mix(specs):
    mix = []
    for spec in specs:
        weight, _, rest = spec.partition(":")
        scenario, _, arg = rest.partition(":")
        if scenario == "unary":
            call = ("Unary", b"x")
        elif scenario == "fail":
            call = ("Fail", arg.encode())
        elif scenario == "sleep":
            call = ("Sleep", arg.encode())
        else:
            raise SystemExit(f"unknown scenario {scenario!r} in {spec!r}")
        mix.append((int(weight), call))
    # Interleave evenly: scenario i's k-th call at position (k + 0.5) / weight_i.
    order = sorted(
        ((k + 0.5) / w, i, call) for i, (w, call) in enumerate(mix) for k in range(w)
    )
    return [call for _, _, call in order]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("mix", nargs="+")
    a = p.parse_args()
    calls = parse_mix(a.mix)

    channel = grpc.insecure_channel(a.target)
    grpc.channel_ready_future(channel).result(timeout=30)
    stubs = {m: channel.unary_unary(SERVICE + m) for m in ("Unary", "Fail", "Sleep")}
    codes = {}
    lock = threading.Condition()

    def done(future):
        code = future.code()
        name = code.name if code is not None else "NONE"
        with lock:
            codes[name] = codes.get(name, 0) + 1
            lock.notify_all()

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("READY", flush=True)

    start = time.monotonic()
    i = 0
    while not stop.is_set() and time.monotonic() - start < a.seconds:
        method, payload = calls[i % len(calls)]
        stubs[method].future(payload, timeout=10).add_done_callback(done)
        i += 1
        pause = start + i * a.interval_ms / 1000 - time.monotonic()
        if pause > 0:
            stop.wait(pause)
    # Every call issued has ended (each has a 10 s deadline) before the counts are printed.
    with lock:
        lock.wait_for(lambda: sum(codes.values()) >= i, timeout=15)
        print(json.dumps(codes), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
