#!/usr/bin/env python3
"""What a reload that retypes a player field costs the game, with many
stored players, against release gameservers on loopback.

    swift build -c release && python3 tools/migrate-bench.py [--stored 100000] [--rounds 3] \
        [--server NAME=PATH ...] [--hold-write-lock SECONDS]

One database is seeded with `--stored` offline players (the sqlite3 shell,
into the layout the server created). Each round, for each server in turn
(alternating), a copy of it is served by that build with the default game:
one probe player sends PINGs back to back from a thread while an admin
RELOADs GameLogicV3, which turns every player's `score` into a string
(`hotswap_migrate` for each stored player, online or not). Reported:
  - the reload's reply: held_us (the loop held for the commit) and, for a
    build that migrates stored players between messages, staged, slices,
    slice_max_us and staged_ms;
  - the probe's worst PING round trip while the reload was in flight (what
    a player feels), and the reload's round trip;
  - the first flush after it, which writes every migrated row: records,
    its time on the worker and the longest loop turn spent copying it out;
    and the probe's worst round trip from the RELOAD until that flush is
    written (the whole disruption).
With --hold-write-lock, another connection holds SQLite's write lock for
that long (past the server's 5 s busy timeout) from the RELOAD's reply on,
so the first flush of the migrated rows fails and is retried: db_errors,
and the worst round trip until the retry is written, show what a failed
flush of that size costs the game.
Medians of the rounds are printed per server. Needs sqlite3 on PATH.
"""
import os
import sqlite3
import shutil
import statistics
import tempfile
import threading
import time

from benchlib import MODULE, RELEASE, SERVER, arg_parser, call, connect, fields, seed_players, start, stop

V3 = f"{RELEASE}/libGameLogicV3.so"


class Probe(threading.Thread):
    """PING back to back; keeps (sent, round trip) of every one."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = connect(port, nodelay=True)
        self.file = self.sock.makefile("rb")
        self.samples = []
        self.running = True

    def run(self) -> None:
        while self.running:
            sent = time.monotonic()
            self.sock.sendall(b"PING\r\n")
            self.file.readline()
            self.samples.append((sent, time.monotonic() - sent))


def one_round(server: str, seeded: str, scratch: str, stored: int, hold_lock: float) -> dict:
    database = os.path.join(scratch, "round.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(database + suffix):
            os.remove(database + suffix)
    shutil.copy(seeded, database)
    process, port, admin_port = start("--database", database, "--module", MODULE, "--max-connections", "100", "--max-players", str(stored + 100),
                                      server=server, timeout=300)
    try:
        login = connect(port)
        call(login, "LOGIN probe")
        probe = Probe(port)
        call(probe.sock, "LOGIN probe2")
        probe.start()
        time.sleep(0.3)
        admin = connect(admin_port)
        status = fields(call(admin, "STATUS"))
        flushes = int(status["flushes"])
        began = time.monotonic()
        admin.sendall(f"RELOAD {os.path.abspath(V3)}\n".encode())
        reply = b""
        while True:
            while not reply.endswith(b"\n"):
                reply += admin.recv(65536)
            lines = reply.decode().splitlines()
            final = [line for line in lines if not line.startswith(">")]
            if final:
                break
            reply = b""
        ended = time.monotonic()
        answer = final[0]
        if hold_lock:
            blocker = sqlite3.connect(database, timeout=30, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            time.sleep(hold_lock)
            blocker.execute("ROLLBACK")
            blocker.close()
        if not answer.startswith("+OK"):
            raise SystemExit(f"{server}: {answer}")
        result = fields(answer)
        result["reload_ms"] = (ended - began) * 1000
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = fields(call(admin, "STATUS"))
            if int(status["flushes"]) > flushes and status["dirty"] == "0" and int(status["last_flush_records"]) > 1:
                break
            time.sleep(0.05)
        flushed = time.monotonic()
        time.sleep(0.1)
        probe.running = False
        probe.join()
        after = [rtt for sent, rtt in probe.samples if sent + rtt >= began and sent <= flushed]
        result["worst_ping_to_flush_ms"] = max(after) * 1000 if after else 0
        result["flush_records"] = status["last_flush_records"]
        result["flush_ms"] = status["last_flush_ms"]
        result["flush_held_us"] = status["last_flush_held_us"]
        result["db_errors"] = status["db_errors"]
        during = [rtt for sent, rtt in probe.samples if sent + rtt >= began and sent <= ended]
        result["worst_ping_ms"] = max(during) * 1000 if during else 0
        result["pings_during"] = len(during)
        return result
    finally:
        stop(process, 120)


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold-write-lock", type=float, default=0, metavar="SECONDS",
                        help="hold SQLite's write lock this long after the RELOAD (the flush fails, then is retried)")
    parser.add_argument("--server", action="append", default=[],
                        help="NAME=PATH of a gameserver build (default: this one)")
    args = parser.parse_args()
    servers = [tuple(item.split("=", 1)) for item in args.server] or [("current", SERVER)]
    scratch = tempfile.mkdtemp(prefix="hotswap-migrate-")
    seeded = os.path.join(scratch, "seeded.sqlite")
    seed_players(seeded, args.stored, "--module", MODULE, server=servers[0][1], timeout=60)
    keys = ["held_us", "migrated", "staged", "remigrated", "slices", "slice_max_us", "staged_ms",
            "worst_ping_ms", "reload_ms", "pings_during", "flush_records", "flush_ms", "flush_held_us",
            "worst_ping_to_flush_ms", "db_errors"]
    results = {name: [] for name, _ in servers}
    for round_number in range(args.rounds):
        for name, path in servers:
            result = one_round(path, seeded, scratch, args.stored, args.hold_write_lock)
            results[name].append(result)
            print(f"round {round_number + 1} {name}: " + " ".join(f"{k}={result[k]}" for k in keys if k in result),
                  flush=True)
    print(f"\nmedians of {args.rounds} rounds, {args.stored} stored players:")
    for name, rounds in results.items():
        medians = []
        for key in keys:
            values = [float(r[key]) for r in rounds if key in r and r[key] not in ("all", "")]
            if values:
                medians.append(f"{key}={statistics.median(values):g}")
        print(f"  {name}: " + " ".join(medians))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
