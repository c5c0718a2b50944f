#!/usr/bin/env python3
"""Alternating rounds of the same load against two or more server builds.

    python3 tools/compare-builds.py --rounds 5 \\
        before=/work/old/.build/release/gameserver after=.build/release/gameserver

Each build serves its own libGameLogic.so (beside the binary) on free ports
(given explicitly, so that builds older than --ready-file work too).
Every round runs each scenario once against each build, in turn, so the
machine's drift hits all builds alike; the report gives the medians over the
rounds of throughput and of the server's CPU per request (utime + stime from
/proc/PID/stat over the run), and each build's ratio to the first. Scenarios:
loadtest ping with 50 clients at -P 16, and loadtest chat (20 rooms of 10,
-P 4), whose throughput is deliveries per second, and loadtest play (10
rooms of 16 walking the board: MOVE, with gems taken and scores changing)."""
import json
import statistics
import subprocess
import tempfile

from benchlib import LOADTEST, arg_parser, cpu_seconds, free_port, wait_for

SCENARIOS = {
    "ping -P16": (["ping", "--clients", "50", "--pipeline", "16"], "throughput", "requests"),
    "chat 20x10": (["chat", "--rooms", "20", "--members", "10", "--pipeline", "4"], "deliveries_per_second", "requests"),
    "play 10x16": (["play", "--rooms", "10", "--members", "16", "--walk", "sweep"], "throughput", "requests"),
}


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("builds", nargs="+", help="name=path/to/gameserver")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    servers = []
    for spec in args.builds:
        name, path = spec.split("=", 1)
        port, admin = free_port(), free_port()
        # Each in a directory of its own: a build with durable players opens
        # hotswap.sqlite in its working directory, and a second server on
        # the same file refuses to start (builds without it ignore it).
        process = subprocess.Popen([path, "--port", str(port), "--admin-port", str(admin), "--rate-limit", "0",
                                    # Sessions end with their connection: a scenario's players
                                    # left "away" would hold their names from the next one.
                                    "--resume-grace", "0", "--log-level", "warning"], stderr=subprocess.DEVNULL,
                                   cwd=tempfile.mkdtemp(prefix="hotswap-compare-"))
        servers.append((name, process, port))
    for _, _, port in servers:
        wait_for(port)
    results = {(name, scenario): [] for name, _, _ in servers for scenario in SCENARIOS}
    try:
        for round_index in range(args.rounds):
            for scenario, (arguments, metric, count) in SCENARIOS.items():
                for name, process, port in servers:
                    with tempfile.NamedTemporaryFile(suffix=".json") as out:
                        before = cpu_seconds(process.pid)
                        subprocess.run([LOADTEST, *arguments, "--port", str(port), "--duration", str(args.seconds),
                                        "--quiet", "--json", out.name], check=False, stdout=subprocess.DEVNULL)
                        used = cpu_seconds(process.pid) - before
                        report = json.load(open(out.name))
                    rate = report[metric]
                    per_request = used * 1e6 / max(report[count], 1)
                    results[(name, scenario)].append((rate, per_request))
                    print(f"round {round_index} {scenario:<11} {name:<10} {rate:>12.0f}/s  server {per_request:.3f} us/request",
                          flush=True)
    finally:
        for _, process, _ in servers:
            process.terminate()
            process.wait()
    print(f"\nmedians of {args.rounds} alternating rounds ({args.seconds:g} s each)")
    print(f"{'scenario':<12} {'build':<10} {'per second':>12} {'ratio':>7} {'us/request':>11} {'ratio':>7}")
    for scenario in SCENARIOS:
        first = None
        for name, _, _ in servers:
            rate = statistics.median(r for r, _ in results[(name, scenario)])
            cost = statistics.median(c for _, c in results[(name, scenario)])
            first = first or (rate, cost)
            print(f"{scenario:<12} {name:<10} {rate:>12.0f} {rate / first[0]:>7.3f} {cost:>11.3f} {cost / first[1]:>7.3f}")


if __name__ == "__main__":
    main()
