#!/usr/bin/env python3
"""What durable players cost at LOGIN and at start, against a release
gameserver on loopback.

    swift build -c release && python3 tools/login-bench.py [--stored 100000] [--logins 5000] [--rounds 5]

Two databases: one with `--stored` players (seeded with the sqlite3 shell
into the layout the server itself created) and one with none. Rounds
alternate between them; each round starts a server on its database and
reports:
  - start-up: from spawn to the ready file (the whole database is read
    into memory before the server listens), and resident memory once ready;
  - LOGIN round trips (a blocking client, LOGIN of an existing player or a
    new one, then QUIT), p50/p99/max, and the same for PING as a floor.
Medians of the rounds are printed per database. Needs sqlite3 on PATH.
"""
import os
import random
import statistics
import sys
import tempfile
import time

from benchlib import TimedClient as Client, arg_parser, percentile, rss_kib, seed_players, start, stop


def round_trip(database: str, stored: int, logins: int) -> dict:
    spawned = time.perf_counter()
    process, port, _ = start("--database", database, "--login-timeout", "0", "--rate-limit", "0")
    start_ms = (time.perf_counter() - spawned) * 1000
    rss = rss_kib(process.pid)
    login_us, ping_us = [], []
    rng = random.Random(7)
    try:
        for index in range(logins):
            client = Client(port)
            # Existing players when there are any, else new ones.
            name = f"player{rng.randrange(stored)}" if stored else f"fresh{index}"
            elapsed, reply = client.call(f"LOGIN {name}")
            if not reply.startswith("+WELCOME"):
                raise SystemExit(f"LOGIN {name}: {reply}")
            login_us.append(elapsed)
            ping_us.append(client.call("PING")[0])
            client.call("QUIT")
            client.sock.close()
    finally:
        stop(process, 30)
    return {"start_ms": start_ms, "rss_mib": rss / 1024,
            "login_p50": percentile(login_us, 0.5), "login_p99": percentile(login_us, 0.99), "login_max": max(login_us),
            "ping_p50": percentile(ping_us, 0.5), "ping_p99": percentile(ping_us, 0.99)}


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--logins", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="hotswap-login-")
    databases = {0: os.path.join(scratch, "empty.sqlite"), args.stored: os.path.join(scratch, "stored.sqlite")}
    for count, path in databases.items():
        seed_players(path, count)
    print(f"seeded {args.stored} players: {os.path.getsize(databases[args.stored]) / 1048576:.1f} MiB file")
    results = {count: [] for count in databases}
    for round_index in range(args.rounds):
        for count, path in databases.items():  # alternating
            result = round_trip(path, count, args.logins)
            results[count].append(result)
            print(f"round {round_index + 1} stored={count}: " + " ".join(f"{k}={v:.1f}" for k, v in result.items()),
                  flush=True)
    print("\nmedians of the rounds:")
    for count, rows in results.items():
        keys = rows[0].keys()
        print(f"stored={count:>7}: " + " ".join(f"{k}={statistics.median(r[k] for r in rows):.1f}" for k in keys))


if __name__ == "__main__":
    sys.exit(main())
