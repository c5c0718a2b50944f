#!/usr/bin/env python3
"""What resume costs (--resume-grace, ABI 1.4), against a release gameserver
on loopback.

    swift build -c release && python3 tools/resume-bench.py [--sessions 10000] [--resumes 1000] [--rounds 5]

Memory: resident memory (VmRSS) added by `--sessions` logged-in players,
  connected: each keeps its connection open after LOGIN;
  away:      each connects, logs in and drops its connection (close without
             QUIT), so only its away session stays (waited for in STATUS).
  Each round starts a fresh server per case; rounds alternate between the
  cases. RSS is read once the server is ready and once the sessions are
  there; the difference over the sessions is the cost per session.
Round trip: `--resumes` times, a player's connection is dropped, the server
  is seen to make it away (STATUS sessions_away=1), and a new connection
  sends RESUME with the last token; timed from the request to the +RESUMED
  line. Alternating with rounds of LOGIN on a fresh connection (then QUIT)
  as the floor it compares with. Medians of the rounds' p50 and p99 are
  printed.
"""
import socket
import statistics
import sys
import time

from benchlib import arg_parser, connect, fields, percentile, raise_nofile, rss_kib, start, stop

FLAGS = ("--resume-grace", "3600", "--login-timeout", "0", "--idle-timeout", "0", "--rate-limit", "0")


def status(admin: int) -> dict:
    with socket.create_connection(("127.0.0.1", admin)) as sock:
        sock.sendall(b"STATUS\n")
        return fields(sock.makefile().readline())


def wait_status(admin: int, key: str, value: str) -> None:
    deadline = time.monotonic() + 120
    while status(admin).get(key) != value:
        if time.monotonic() > deadline:
            raise SystemExit(f"STATUS never showed {key}={value}")
        time.sleep(0.01)


def login(port: int, name: str) -> tuple:
    sock = connect(port, nodelay=True)
    reader = sock.makefile("rb")
    sock.sendall(f"LOGIN {name}\r\n".encode())
    reply = reader.readline().decode().strip()
    if not reply.startswith("+WELCOME"):
        raise SystemExit(f"LOGIN {name}: {reply}")
    return sock, reader, reply


def memory(case: str, sessions: int) -> float:
    process, port, admin = start(*FLAGS, "--max-connections", str(sessions + 100))
    try:
        time.sleep(0.2)
        before = rss_kib(process.pid)
        kept = []
        for index in range(sessions):
            sock, reader, _ = login(port, f"p{index}")
            if case == "connected":
                kept.append((sock, reader))
            else:
                reader.close()
                sock.close()
        if case == "away":
            wait_status(admin, "sessions_away", str(sessions))
        else:
            wait_status(admin, "sessions", str(sessions))
        time.sleep(0.2)
        after = rss_kib(process.pid)
        for sock, reader in kept:
            reader.close()
            sock.close()
        return (after - before) * 1024 / sessions
    finally:
        stop(process, 60)


def round_trips(case: str, count: int) -> list:
    process, port, admin = start(*FLAGS)
    times = []
    try:
        sock, reader, reply = login(port, "alice")
        token = reply.split()[-1]
        for index in range(count):
            if case == "resume":
                reader.close()
                sock.close()
                wait_status(admin, "sessions_away", "1")
                sock = connect(port, nodelay=True)
                reader = sock.makefile("rb")
                started = time.perf_counter_ns()
                sock.sendall(f"RESUME {token}\r\n".encode())
                reply = reader.readline().decode().strip()
                times.append((time.perf_counter_ns() - started) / 1000)
                if not reply.startswith("+RESUMED alice"):
                    raise SystemExit(f"RESUME: {reply}")
                token = reply.split()[-1]
            else:
                other = connect(port, nodelay=True)
                other_reader = other.makefile("rb")
                started = time.perf_counter_ns()
                other.sendall(f"LOGIN bob{index}\r\n".encode())
                reply = other_reader.readline().decode().strip()
                times.append((time.perf_counter_ns() - started) / 1000)
                if not reply.startswith("+WELCOME"):
                    raise SystemExit(f"LOGIN: {reply}")
                other.sendall(b"QUIT\r\n")
                other_reader.readline()
                other_reader.close()
                other.close()
    finally:
        stop(process, 60)
    return times


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--resumes", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    raise_nofile()
    per_session = {"connected": [], "away": []}
    trips = {"resume": [], "login": []}
    for index in range(args.rounds):
        for case in per_session:
            per_session[case].append(memory(case, args.sessions))
            print(f"round {index + 1} memory {case}: {per_session[case][-1]:.0f} B/session", flush=True)
        for case in trips:
            times = round_trips(case, args.resumes)
            trips[case].append((percentile(times, 0.5), percentile(times, 0.99)))
            print(f"round {index + 1} {case}: p50 {trips[case][-1][0]:.1f} us p99 {trips[case][-1][1]:.1f} us", flush=True)
    print("\nmedians of the rounds:")
    for case, values in per_session.items():
        print(f"  RSS per {case} session: {statistics.median(values):.0f} B ({args.sessions} sessions)")
    for case, values in trips.items():
        print(f"  {case} round trip: p50 {statistics.median(v[0] for v in values):.1f} us, "
              f"p99 {statistics.median(v[1] for v in values):.1f} us ({args.resumes} per round)")


if __name__ == "__main__":
    sys.exit(main())
