#!/usr/bin/env python3
"""The output flood of issue #20: clients that never read, senders of 4 KB
SAYs into their rooms, and what everyone else sees meanwhile.

    python3 tools/flood-bench.py                       # 5,000 non-readers, 3 rounds each way
    python3 tools/flood-bench.py --clients 1000 --rounds 1

One round starts a release server and, logged in and joined before the
flood starts:
  non-readers  --clients connections (SO_RCVBUF 4 KiB) that LOGIN, JOIN one
               of --senders rooms (--clients / --senders each, at most 255
               with the sender) and never read again;
  senders      one per room, sending SAYs of 4,000 bytes, one at a time
               (the next after the reply; after -ERR RATE_LIMITED it waits
               10 ms, as a client that is told to slow down does; closed
               for flooding, it reconnects);
  prober       alone in another room: a PING every 20 ms, its round trip
               timed (p50, p99, max);
  admin        a STATUS every second on a new connection, 5 s to answer.
The flood lasts --seconds; then every non-reader and sender closes, and
the server's RSS (/proc/PID/status VmRSS) is sampled for --after seconds
more. RSS is sampled every 0.25 s throughout.

Two configurations, alternated round by round (before, after, before, ...):
  before  --max-output-total 4 TiB, --rate-fan-out-bytes 0 and
          --memory-trim-after 0: no total budget, requests counted but not
          their fan-out, no malloc_trim (what main did before issue #20)
  after   the defaults
Each row is the median over its rounds. Needs the release build
(`swift build -c release`); raises its open-file limit to the hard one
(the server inherits it). Hold the shared build lock while it runs, so
another build does not distort the numbers.
"""
import socket
import sys
import threading
import time

from benchlib import SERVER, admin_status, arg_parser, fields, median, percentile, raise_nofile, rss_kib, start, stop

BEFORE = ("--max-output-total", str(4 << 40), "--rate-fan-out-bytes", "0", "--memory-trim-after", "0")
CALM = ("--game-setting", "round_seconds=3600", "--game-setting", "afk_seconds=86400",
        "--game-setting", "gem_respawn_ms=3600000")
TEXT = "x" * 4000


def read_reply(sock: socket.socket, pending: bytearray) -> str:
    """The next reply line (+ or -), skipping pushed events (>)."""
    while True:
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            text = line.decode(errors="replace").strip()
            if not text.startswith(">"):
                return text
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        pending += chunk


def login_and_join(port: int, name: str, room: str, receive_buffer: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"LOGIN {name}\nJOIN {room}\n".encode())
    pending = bytearray()
    read_reply(sock, pending)
    joined = read_reply(sock, pending)
    if not joined.startswith("+JOINED"):
        raise SystemExit(f"{name}: JOIN {room}: {joined}")
    return sock


class Sender(threading.Thread):
    def __init__(self, port: int, index: int, stop_event: threading.Event):
        super().__init__(daemon=True)
        self.port, self.index, self.stop_event = port, index, stop_event
        self.said = self.limited = self.closed = 0
        self.sock = login_and_join(port, f"sender{index}", f"room{index}")

    def run(self) -> None:
        line = f"SAY {TEXT}\n".encode()
        pending = bytearray()
        while not self.stop_event.is_set():
            try:
                self.sock.sendall(line)
                reply = read_reply(self.sock, pending)
            except OSError:
                self.closed += 1
                if self.stop_event.is_set():
                    break
                try:
                    self.sock = login_and_join(self.port, f"sender{self.index}", f"room{self.index}")
                except (OSError, SystemExit):
                    time.sleep(0.1)
                pending = bytearray()
                continue
            if reply == "+OK":
                self.said += 1
            else:
                self.limited += 1
                if "closing" not in reply:
                    time.sleep(0.01)


def prober(port: int, stop_event: threading.Event, times: list) -> None:
    sock = login_and_join(port, "prober", "quiet")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = bytearray()
    while not stop_event.is_set():
        started = time.monotonic()
        sock.sendall(b"PING\n")
        read_reply(sock, pending)
        times.append((time.monotonic() - started) * 1000)
        time.sleep(0.02)
    sock.close()


def admin_prober(admin_port: int, stop_event: threading.Event, answers: list) -> None:
    while not stop_event.is_set():
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as sock:
                sock.settimeout(5)
                sock.sendall(b"STATUS\n")
                line = sock.makefile().readline()
            answers.append((time.monotonic() - started) * 1000 if line.startswith("+STATUS") else None)
        except OSError:
            answers.append(None)
        stop_event.wait(1)


def sampler(pid: int, stop_event: threading.Event, samples: list) -> None:
    started = time.monotonic()
    while not stop_event.is_set():
        try:
            samples.append((time.monotonic() - started, rss_kib(pid) / 1024))
        except OSError:
            return
        stop_event.wait(0.25)


def one_round(config: str, args) -> dict:
    flags = CALM + (BEFORE if config == "before" else ()) + tuple(args.flag)
    process, port, admin_port = start(*flags, server=args.server)
    try:
        per_room = -(-args.clients // args.senders)
        if per_room > 255:
            raise SystemExit(f"{args.clients} non-readers in {args.senders} rooms: more than 255 a room")
        flood_stop, probe_stop, sample_stop = threading.Event(), threading.Event(), threading.Event()
        senders = [Sender(port, index, flood_stop) for index in range(args.senders)]
        readers = [login_and_join(port, f"deaf{index}", f"room{index % args.senders}", receive_buffer=4096)
                   for index in range(args.clients)]
        time.sleep(1)
        rss_start = rss_kib(process.pid) / 1024
        samples, pings, answers = [], [], []
        threads = [threading.Thread(target=sampler, args=(process.pid, sample_stop, samples), daemon=True),
                   threading.Thread(target=prober, args=(port, probe_stop, pings), daemon=True),
                   threading.Thread(target=admin_prober, args=(admin_port, probe_stop, answers), daemon=True)]
        for thread in threads:
            thread.start()
        for sender in senders:
            sender.start()
        time.sleep(args.seconds)
        status = fields(admin_status(admin_port))
        flood_stop.set()
        probe_stop.set()
        for sender in senders:
            sender.join(10)
        flood_pings = list(pings)
        left_at = time.monotonic()
        for sock in readers:
            sock.close()
        for sender in senders:
            sender.sock.close()
        peak = max((rss for _, rss in samples), default=0)
        time.sleep(args.after)
        sample_stop.set()
        after_samples = [rss for _, rss in samples[-8:]]
        answered = [a for a in answers if a is not None]
        end_status = fields(admin_status(admin_port))
        return {
            "rss_start": rss_start, "rss_peak": peak, "rss_end": median(after_samples),
            "ping_p50": percentile(flood_pings, 0.5), "ping_p99": percentile(flood_pings, 0.99),
            "ping_max": max(flood_pings, default=0), "pings": len(flood_pings),
            "status_answered": f"{len(answered)}/{len(answers)}",
            "status_ms_max": max(answered, default=0),
            "says": sum(s.said for s in senders), "limited": sum(s.limited for s in senders),
            "sender_closes": sum(s.closed for s in senders),
            "budget_drops": int(status.get("output_budget_drops", 0)),
            "overflows": int(status.get("output_overflows", 0)),
            "queued_mb_at_end": int(status.get("output_queued", 0)) / (1 << 20),
            "memory_trims": int(end_status.get("memory_trims", 0)),
            "left_s": time.monotonic() - left_at,
        }
    finally:
        stop(process, timeout=30)


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--clients", type=int, default=5000, help="non-readers (default 5000)")
    parser.add_argument("--senders", type=int, default=20, help="senders, one room each (default 20)")
    parser.add_argument("--seconds", type=float, default=20, help="flood duration (default 20)")
    parser.add_argument("--after", type=float, default=60, help="seconds sampled after everyone left (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each configuration (default 3)")
    parser.add_argument("--only", choices=["before", "after"], help="run one configuration only")
    parser.add_argument("--server", default=SERVER, help=f"the server binary (default {SERVER})")
    parser.add_argument("--flag", action="append", default=[], help="one more server flag (repeat; e.g. --flag=--max-output-total=268435456)")
    args = parser.parse_args()
    raise_nofile()
    configs = [args.only] if args.only else ["before", "after"]
    results = {config: [] for config in configs}
    for round_number in range(args.rounds):
        for config in configs:
            result = one_round(config, args)
            results[config].append(result)
            print(f"round {round_number + 1} {config}: " + " ".join(
                f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}" for key, value in result.items()),
                flush=True)
    print()
    keys = [key for key in results[configs[0]][0] if key != "status_answered"]
    print(f"{'median of ' + str(args.rounds):<18}" + "".join(f"{config:>12}" for config in configs))
    for key in keys:
        print(f"{key:<18}" + "".join(f"{median(r[key] for r in results[config]):>12.1f}" for config in configs))
    print(f"{'status_answered':<18}" + "".join(f"{' '.join(r['status_answered'] for r in results[config]):>12}" for config in configs))


if __name__ == "__main__":
    sys.exit(main())
