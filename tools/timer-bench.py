#!/usr/bin/env python3
"""What timers cost in the release server: memory per pending timer, the
cost of setting one and of setting and cancelling one (inside a module call,
through the state table), and of firing one (the module call included).

The TimeProbeModule fixture sets N timers in one request (`TIMERS N delay
event [cancel]`), so the request's time is the engine's work for N timers
plus one module call; its reply comes when all are set. Rounds alternate
the measurements; medians are reported.

    swift build -c release && python3 tools/timer-bench.py --timers 100000 --rounds 5
"""
import os
import statistics
import time

from benchlib import MODULE, arg_parser, call, connect, cpu_seconds_precise, rss_kib, start

PROBE = os.path.join(os.path.dirname(MODULE), "libTimeProbeModule.so")


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    n = options.timers
    proc, port, _ = start("--module", PROBE, "--database", ":memory:", "--max-timers-per-owner", str(n),
                          "--max-timers", str(n), "--call-timeout", "0")
    sock = connect(port)
    call(sock, "PING")
    results = {"set_ns": [], "set_cancel_ns": [], "fire_ns": [], "bytes_per_timer": []}
    for round_index in range(options.rounds):
        # Set N pending first (memory is read on a fresh table), then set
        # and cancel (the slots come back, nothing stays pending).
        rss_before = rss_kib(proc.pid)
        started = time.perf_counter_ns()
        reply = call(sock, f"TIMERS {n} 1500 quietfire")
        assert reply == f"+TIMERS set={n} status=0", reply
        results["set_ns"].append((time.perf_counter_ns() - started) / n)
        # Memory: the first round only (later ones reuse the freed slots).
        if not results["bytes_per_timer"]:
            results["bytes_per_timer"].append((rss_kib(proc.pid) - rss_before) * 1024 / n)
        # They fire together 1.5 s after they were set: the server's CPU
        # over the 2 s around it (idle otherwise), per fire.
        time.sleep(0.5)
        cpu_before = cpu_seconds_precise(proc.pid)
        time.sleep(2.0)
        cpu = cpu_seconds_precise(proc.pid) - cpu_before
        results["fire_ns"].append(cpu * 1e9 / n)
        started = time.perf_counter_ns()
        reply = call(sock, f"TIMERS {n} 600000 pair cancel")
        assert reply == f"+TIMERS set={n} status=0", reply
        results["set_cancel_ns"].append((time.perf_counter_ns() - started) / n)
    proc.send_signal(2)
    proc.wait()
    print(f"{n} timers, {options.rounds} rounds (medians; every round in brackets)")
    for key, values in results.items():
        print(f"{key:<18} {statistics.median(values):>10.0f}   {[round(v) for v in values]}")


if __name__ == "__main__":
    main()
