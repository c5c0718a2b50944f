#!/usr/bin/env python3
"""Measures what a hot swap costs, against a release gameserver on loopback.

    swift build -c release && python3 tools/reload-bench.py [--sessions N] [--reloads N]

It logs N sessions into rooms, then reloads `--reloads` times, alternating
between two copies of the release module that differ only in a padding byte
(a reload of the file already serving answers `+OK unchanged` and swaps
nothing; each of these is a real swap of a fresh private copy, never
unmapped), and reports:
  - resident memory (VmRSS) before and after, and per reload;
  - the loop stall per swap (`held_us` from the server's own reply), p50/max;
  - a player's PING round trip right after each swap vs. in steady state,
    which shows the cost of the first call into a new image (the Swift
    runtime's caches start empty for it);
  - the RELOAD round trip as the operator sees it (copy, checks, the probe
    process, dlopen, swap).
`--server-args "--probe-timeout 0"` compares with the probe off.
Only loopback traffic; stops the server it started.
"""
import os
import re
import statistics
import sys
import time

from benchlib import RELEASE, arg_parser, call, connect, drain, padded_copy, raise_nofile, rss_kib, start, stop


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--server-args", default="", help="extra gameserver flags, e.g. \"--probe-timeout 0\"")
    args = parser.parse_args()
    raise_nofile()

    server, game_port, admin_port = start(*args.server_args.split())
    ports = {"game": game_port, "admin": admin_port}
    try:
        players = []
        for index in range(args.sessions):
            sock = connect(ports["game"])
            call(sock, f"LOGIN p{index}")
            call(sock, f"JOIN room{index % 100}")
            players.append(sock)
        probe = players[0]
        drain(probe)  # join events
        for sock in players[1:]:
            sock.setblocking(False)  # others never read; their events stay small

        admin = connect(ports["admin"])
        steady = []
        for _ in range(200):
            started = time.perf_counter()
            call(probe, "PING")
            steady.append((time.perf_counter() - started) * 1e6)
        before = rss_kib(server.pid)
        held, after_swap, round_trips = [], [], []
        builds = [padded_copy(os.path.abspath(f"{RELEASE}/libGameLogic-rebuilt{padding}.so"), padding)
                  for padding in (1, 2)]
        for index in range(args.reloads):
            started = time.perf_counter()
            reply = call(admin, f"RELOAD {builds[index % 2]}")
            round_trips.append((time.perf_counter() - started) * 1e3)
            if not reply.startswith("+OK") or reply.startswith("+OK unchanged"):
                sys.exit(f"reload failed: {reply}")
            held.append(int(re.search(r"held_us=(\d+)", reply).group(1)))
            started = time.perf_counter()
            call(probe, "PING")
            after_swap.append((time.perf_counter() - started) * 1e6)
        after = rss_kib(server.pid)
        status = call(admin, "STATUS")
        first_call = re.search(r"first_call_ns=(\d+)", status)

        print(f"sessions                     {args.sessions}")
        print(f"reloads                      {args.reloads}")
        print(f"RSS before / after           {before} KiB / {after} KiB")
        print(f"RSS per reload               {(after - before) / args.reloads:.1f} KiB")
        print(f"loop held per swap (us)      p50 {statistics.median(held):.0f}  max {max(held)}")
        print(f"RELOAD round trip (ms)       p50 {statistics.median(round_trips):.1f}  max {max(round_trips):.1f}")
        print(f"PING RTT steady (us)         p50 {statistics.median(steady):.0f}  max {max(steady):.0f}")
        print(f"PING RTT after swap (us)     p50 {statistics.median(after_swap):.0f}  max {max(after_swap):.0f}")
        if first_call:
            print(f"first handle call, last swap {first_call.group(1)} ns (server-side)")
    finally:
        stop(server, 10)


if __name__ == "__main__":
    main()
