#!/usr/bin/env python3
"""What write-behind persistence costs under play, against a release
gameserver on loopback: the same `loadtest play` run against a server with
its database on (a file in a temporary directory) and with
`--database :memory:`, in alternating rounds.

    swift build -c release && python3 tools/persist-bench.py [--clients 4000] [--seconds 10] [--rounds 5] [-- loadtest flags]

Players walk with `--walk sweep` (over the whole board, row after row), so
they keep taking gems and every few seconds each one's score changes: the
database has real writes to do (the default square walk soon stops
scoring). `--walk square` measures the other case.

Per round: throughput (replies/s), p50/p99 latency, server CPU per reply
(utime+stime from /proc over the run), and with the database on the flushes
per second and records per flush (from STATUS before and after). Medians of
the rounds per mode and the throughput ratio are printed at the end. The
load tool and the server share the machine: compare the two modes within
one run, not with numbers from elsewhere.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

from benchlib import LOADTEST, admin_status, arg_parser, cpu_seconds, fields, start, stop


def status(admin_port: int) -> dict:
    return fields(admin_status(admin_port))


def one_round(database: str, args, extra: list) -> dict:
    process, port, admin_port = start("--database", database, "--rate-limit", "0", "--login-timeout", "0",
                                      "--idle-timeout", "0", "--max-connections", str(args.clients + 100))
    try:
        output = tempfile.mktemp(suffix=".json")
        before_status, before_cpu = status(admin_port), cpu_seconds(process.pid)
        subprocess.run([LOADTEST, "play", "--port", str(port), "--admin-port", str(admin_port),
                        "--clients", str(args.clients), "--duration", str(args.seconds), "--json", output, "--quiet",
                        "--walk", args.walk,
                        *extra], check=False, stdout=subprocess.DEVNULL)  # game errors (BLOCKED) exit 1
        after_status, after_cpu = status(admin_port), cpu_seconds(process.pid)
        with open(output) as file:
            report = json.load(file)
        os.unlink(output)
    finally:
        stop(process, 60)
    replies = max(report["replies"], 1)
    result = {"throughput": report["throughput"], "p50_us": report["latency_us"].get("p50", 0),
              "p99_us": report["latency_us"].get("p99", 0), "errors": report["errors"],
              "cpu_us_per_reply": (after_cpu - before_cpu) * 1e6 / replies}
    if "flushes" in after_status:
        flushes = int(after_status["flushes"]) - int(before_status["flushes"])
        records = int(after_status["records_flushed"]) - int(before_status["records_flushed"])
        result["flushes_per_s"] = flushes / report["seconds"]
        result["records_per_flush"] = records / max(flushes, 1)
        result["last_flush_ms"] = float(after_status["last_flush_ms"])
        result["db_errors"] = int(after_status["db_errors"])
    return result


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--clients", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--walk", default="sweep", choices=["sweep", "square"], help="how players walk (loadtest --walk)")
    parser.add_argument("extra", nargs="*", help="flags passed to loadtest (after --)")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="hotswap-persist-")
    modes = {"database": os.path.join(scratch, "bench.sqlite"), "memory": ":memory:"}
    results = {mode: [] for mode in modes}
    for round_index in range(args.rounds):
        for mode, database in modes.items():  # alternating
            result = one_round(database, args, args.extra)
            results[mode].append(result)
            print(f"round {round_index + 1} {mode:>8}: " + " ".join(f"{k}={v:.2f}" for k, v in result.items()), flush=True)
    print("\nmedians of the rounds:")
    medians = {}
    for mode, rows in results.items():
        medians[mode] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{mode:>8}: " + " ".join(f"{k}={v:.2f}" for k, v in medians[mode].items()))
    ratio = medians["database"]["throughput"] / medians["memory"]["throughput"]
    cpu = medians["database"]["cpu_us_per_reply"] / medians["memory"]["cpu_us_per_reply"]
    print(f"database/memory: throughput {ratio:.3f}, server CPU per reply {cpu:.3f}")


if __name__ == "__main__":
    sys.exit(main())
