#!/usr/bin/env python3
"""What one scrape of /metrics costs the server, and what scraping does to
a player meanwhile.

Starts the release gameserver with --metrics-port and --sessions idle player
connections (held by tools/hold-connections.py), then:
  1. --scrapes GET /metrics over one kept-alive connection, back to back:
     the server's CPU per scrape (utime+stime from /proc/PID/stat over all
     of them, divided) and the client's round trip p50 / max;
  2. a player's PING round trip (p50 / p99 / max over --pings), first with
     nobody scraping, then while a second client scrapes back to back.

    swift build -c release && python3 tools/scrape-cost.py --sessions 10000
"""
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time

from benchlib import MODULE, arg_parser, connect, cpu_seconds, start, stop

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Scraper:
    """One kept-alive connection that scrapes and reads each response whole."""

    def __init__(self, port: int):
        self.sock = connect(port, nodelay=True)
        self.buffer = b""

    def scrape(self) -> int:
        self.sock.sendall(REQUEST)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        self.buffer = self.buffer[length:]
        return length


def scrape_loop(port: int, stopping, done) -> None:
    scraper = Scraper(port)
    while not stopping.is_set():
        scraper.scrape()
        with done.get_lock():
            done.value += 1


def ping_rtts(player: socket.socket, count: int) -> list:
    rtts = []
    for _ in range(count):
        started = time.perf_counter()
        player.sendall(b"PING\n")
        received = b""
        while not received.endswith(b"\n"):
            received += player.recv(4096)
        rtts.append((time.perf_counter() - started) * 1e6)
        time.sleep(0.001)
    return sorted(rtts)


def summary(rtts: list) -> str:
    # Its p99 is the element before benchlib.percentile's (kept: the
    # numbers in BENCHMARKS.md were measured with it).
    return (f"p50 {statistics.median(rtts):.0f} µs, p99 {rtts[int(len(rtts) * 0.99) - 1]:.0f} µs, "
            f"max {rtts[-1]:.0f} µs")


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--scrapes", type=int, default=2000)
    parser.add_argument("--pings", type=int, default=2000)
    args = parser.parse_args()
    proc, game_port, _ = start("--module", MODULE, "--metrics-port", "0",
                               "--max-connections", str(args.sessions + 100), "--login-timeout", "0",
                               "--log-level", "warning")
    metrics_port = proc.ready["metrics"]["port"]
    holder = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "hold-connections.py"),
                               str(args.sessions), "127.0.0.1", str(game_port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if args.sessions:
            holder.stdout.readline()
        time.sleep(0.5)
        scraper = Scraper(metrics_port)
        size = scraper.scrape()
        rtts = []
        before = cpu_seconds(proc.pid)
        for _ in range(args.scrapes):
            started = time.perf_counter()
            scraper.scrape()
            rtts.append((time.perf_counter() - started) * 1e6)
        spent = cpu_seconds(proc.pid) - before
        rtts.sort()
        print(f"{args.sessions} idle sessions, exposition {size} bytes")
        print(f"server CPU per scrape: {spent / args.scrapes * 1e6:.1f} µs ({args.scrapes} scrapes, one connection)")
        print(f"scrape round trip: {summary(rtts)}")

        player = connect(game_port, nodelay=True)
        player.sendall(b"LOGIN pinger\n")
        player.recv(4096)
        quiet = ping_rtts(player, args.pings)
        # The scraper in a process of its own: in a thread it would share
        # Python's interpreter lock with the pinging player.
        stopping = multiprocessing.Event()
        done = multiprocessing.Value("i", 0)
        other = multiprocessing.Process(target=scrape_loop, args=(metrics_port, stopping, done), daemon=True)
        other.start()
        while done.value == 0:
            time.sleep(0.01)
        busy = ping_rtts(player, args.pings)
        stopping.set()
        other.join()
        print(f"player PING round trip, nobody scraping: {summary(quiet)}")
        print(f"player PING round trip, scraped back to back ({done.value} scrapes meanwhile): {summary(busy)}")
    finally:
        holder.stdin.close()
        holder.wait()
        stop(proc)


if __name__ == "__main__":
    main()
