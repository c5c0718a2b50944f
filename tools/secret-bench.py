#!/usr/bin/env python3
"""What a player's secret costs at LOGIN, and what it does not cost
everyone else, against a release gameserver on loopback.

    swift build -c release && python3 tools/secret-bench.py [--logins 200] [--rounds 3] [--cost 14]

Each round starts a server (`--secret-cost`, the engine's default 14:
scrypt N = 2^14, 16 MiB) and measures, in this order:
  - guest: LOGIN name (no secret) round trips, one client at a time;
  - create: LOGIN name secret for new names (the engine hashes the secret);
  - verify: LOGIN name secret again for the same names (hashed and
    compared);
  - wrong: LOGIN name wrong-secret (the same cost, then BAD_SECRET);
  - storm: 16 clients logging in with secrets at once, for logins/s,
    while a prober that never logs in sends PING after PING: its p99 is
    what the check costs the loop (it runs on a worker, so: little).
Each step reports p50/p99 round trips (connect, LOGIN, QUIT) and the
server's CPU per login. Medians of the rounds are printed. The per-address
limits are off (loopback is exempt) and the per-player one is raised so
the wrong secrets are checked, not throttled.
"""
import statistics
import sys
import threading
import time

from benchlib import TimedClient as Client, arg_parser, cpu_seconds_precise, percentile, raise_nofile, start, stop


def login_once(port: int, line: str, expect: str) -> float:
    client = Client(port)
    micros, reply = client.call(line)
    if not reply.startswith(expect):
        raise SystemExit(f"{line!r}: {reply!r}")
    client.call("QUIT")
    client.close()
    return micros


def step(server, port: int, lines: list, expect: str) -> dict:
    before = cpu_seconds_precise(server.pid)
    times = [login_once(port, line, expect) for line in lines]
    cpu = cpu_seconds_precise(server.pid) - before
    return {"p50": percentile(times, 0.5), "p99": percentile(times, 0.99), "cpu_us": cpu * 1e6 / len(lines)}


def storm(server, port: int, round_index: int, per_client: int, clients: int = 16) -> dict:
    stop_probe = threading.Event()
    pings = []

    def probe() -> None:
        client = Client(port)
        while not stop_probe.is_set():
            micros, reply = client.call("PING")
            pings.append(micros)
        client.close()

    def worker(index: int) -> None:
        for n in range(per_client):
            login_once(port, f"LOGIN s{round_index}x{index}x{n} secret-{n}", "+WELCOME")

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.2)
    idle = len(pings)
    idle_p99 = percentile(pings[:idle], 0.99)
    before = cpu_seconds_precise(server.pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds_precise(server.pid) - before
    stop_probe.set()
    prober.join()
    during = pings[idle:]
    return {"logins_per_s": clients * per_client / elapsed, "ping_p99_idle": idle_p99,
            "ping_p50": percentile(during, 0.5), "ping_p99": percentile(during, 0.99),
            "cpu_us": cpu * 1e6 / (clients * per_client)}


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cost", type=int, default=14)
    args = parser.parse_args()
    raise_nofile()
    results = []
    for round_index in range(args.rounds):
        server, port, _ = start("--secret-cost", str(args.cost), "--max-failed-logins-per-player", "1000000")
        try:
            names = [f"r{round_index}p{n}" for n in range(args.logins)]
            result = {
                "guest": step(server, port, [f"LOGIN g{round_index}x{n}" for n in range(args.logins)], "+WELCOME"),
                "create": step(server, port, [f"LOGIN {name} secret-{name}" for name in names], "+WELCOME"),
                "verify": step(server, port, [f"LOGIN {name} secret-{name}" for name in names], "+WELCOME"),
                "wrong": step(server, port, [f"LOGIN {name} not-the-secret" for name in names], "-ERR BAD_SECRET"),
                "storm": storm(server, port, round_index, max(args.logins // 16, 4)),
            }
        finally:
            stop(server)
        results.append(result)
        print(f"round {round_index + 1}: " + "; ".join(
            f"{kind} " + " ".join(f"{key}={value:.0f}" for key, value in numbers.items())
            for kind, numbers in result.items()), flush=True)
    print(f"\nmedians of {args.rounds} rounds, --secret-cost {args.cost}:")
    for kind in results[0]:
        keys = results[0][kind].keys()
        print(f"  {kind:7} " + "  ".join(f"{key}={statistics.median(r[kind][key] for r in results):.0f}" for key in keys))


if __name__ == "__main__":
    sys.exit(main())
