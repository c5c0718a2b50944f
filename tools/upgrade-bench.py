#!/usr/bin/env python3
"""Measures what an engine upgrade costs, against a release gameserver on loopback.

    swift build -c release && python3 tools/upgrade-bench.py [--sessions N] [--upgrades K] [--database FILE]

It logs N sessions into rooms of 100, keeps one more player (the probe)
sending PING in a closed loop on its own thread, then sends UPGRADE K times
(the server's own path: the release build executing itself again, which is
what installing a rebuilt engine and running `gamectl upgrade` does), and
reports, as medians over the K upgrades (and the worst):
  - the hold the server measures (`last_upgrade_held_us`): from the last
    byte the old engine wrote to the moment the new one has restored
    everything and queues its first bytes, split by the log into writing
    the handoff, exec and start-up of the new program, and restoring; and
    until the new loop's first poll returned (`last_upgrade_first_poll_us`:
    every socket registered with the new epoll instance, input read from
    there), the server's closest measure of what a player sees;
  - the probe's longest PING round trip across each upgrade, against the
    longest in as long a steady stretch: what a player sees;
  - the UPGRADE round trip (the candidate's check included, during which
    the game is served);
  - resident memory before and after; with --reloads N, N reloads first
    (alternating two copies of the release module that differ in a padding
    byte: each is a real swap whose image stays mapped), and the memory
    at start, after them and after the first upgrade, which maps only the
    current and previous images again.
Then it runs `loadtest ping --upgrade-at` (--lt-clients connections,
pipelined) while the N sessions stay connected, with --lt-upgrades
upgrades in a row, and prints its accounting: lost, duplicated,
out-of-order replies, dropped connections, and the longest gap between
replies across the upgrades. Only loopback traffic; stops what it started.
"""
import os
import re
import subprocess
import threading
import time

from benchlib import LOADTEST, RELEASE, arg_parser, call, connect, median, padded_copy, raise_nofile, rss_kib, start, stop


class Probe(threading.Thread):
    """A player that sends PING, waits for +PONG, and records each round trip."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = connect(port, nodelay=True)
        call(self.sock, "LOGIN probe")
        self.samples = []  # (finished at, round trip in us)
        self.lock = threading.Lock()
        self.running = True

    def run(self) -> None:
        while self.running:
            started = time.perf_counter()
            if call(self.sock, "PING") != "+PONG":
                raise RuntimeError("probe: unexpected reply")
            done = time.perf_counter()
            with self.lock:
                self.samples.append((done, (done - started) * 1e6))

    def worst_between(self, begin: float, end: float) -> float:
        with self.lock:
            window = [rtt for at, rtt in self.samples if begin <= at <= end]
        return max(window, default=0.0)


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--upgrades", type=int, default=20)
    parser.add_argument("--lt-clients", type=int, default=50)
    parser.add_argument("--lt-pipeline", type=int, default=8)
    parser.add_argument("--lt-upgrades", type=int, default=10)
    parser.add_argument("--reloads", type=int, default=0)
    parser.add_argument("--database", help="a SQLite file for the server (default: a fresh file in a temporary directory): the upgrade's final flush runs")
    args = parser.parse_args()
    raise_nofile()

    database = ["--database", args.database] if args.database else []
    server, game_port, admin_port = start("--max-connections", str(args.sessions + 1000), "--rate-limit", "0",
                                          "--login-timeout", "0", "--idle-timeout", "0", *database)
    try:
        players = []
        for index in range(args.sessions):
            sock = connect(game_port)
            call(sock, f"LOGIN p{index}")
            call(sock, f"JOIN room{index // 100}")
            sock.setblocking(False)  # they never read: their join events stay queued
            players.append(sock)
        probe = Probe(game_port)
        probe.start()
        admin = connect(admin_port)
        time.sleep(1.0)
        before = rss_kib(server.pid)
        if args.reloads:
            builds = [padded_copy(f"{RELEASE}/upgrade-bench-{padding}-libGameLogic.so", padding) for padding in (1, 2)]
            try:
                for index in range(args.reloads):
                    reply = call(admin, f"RELOAD {os.path.abspath(builds[index % 2])}")
                    if not reply.startswith("+OK gems"):
                        raise SystemExit(f"reload refused: {reply}")
            finally:
                for path in builds:
                    os.remove(path)
            time.sleep(0.5)
            reloaded = rss_kib(server.pid)
            images = re.search(r" images=(\d+)", call(admin, "STATUS")).group(1)
            if not call(admin, "UPGRADE").startswith("+OK engine"):
                raise SystemExit("upgrade refused")
            time.sleep(0.5)
            upgraded = rss_kib(server.pid)
            images_after = re.search(r" images=(\d+)", call(admin, "STATUS")).group(1)
            print(f"RSS at start {before} KiB, after {args.reloads} reloads {reloaded} KiB (images={images}), "
                  f"after an upgrade {upgraded} KiB (images={images_after})")
            before = upgraded

        held, first_poll, written, startup, restore, probe_worst, steady_worst, round_trips = [], [], [], [], [], [], [], []
        pattern = re.compile(r"written in (\d+) us")
        split = re.compile(r"resumed in (\d+) us \(until this program started (\d+) us, then restoring (\d+) us\)")
        first = 2 if args.reloads else 1
        for number in range(first, first + args.upgrades):
            # A steady stretch as long as an upgrade takes, for comparison.
            calm = time.perf_counter()
            time.sleep(0.3)
            steady_worst.append(probe.worst_between(calm, time.perf_counter()))
            began = time.perf_counter()
            reply = call(admin, "UPGRADE")
            ended = time.perf_counter()
            if not reply.startswith("+OK engine"):
                raise SystemExit(f"upgrade refused: {reply}")
            round_trips.append((ended - began) * 1e3)
            time.sleep(0.3)  # let the probe's first replies after it come in
            probe_worst.append(probe.worst_between(began, time.perf_counter()))
            status = call(admin, "STATUS")
            held.append(int(re.search(r"last_upgrade_held_us=(\d+)", status).group(1)))
            poll = re.search(r"last_upgrade_first_poll_us=(\d+)", status)
            if poll:
                first_poll.append(int(poll.group(1)))
            # The log arrives through a pipe and a thread: wait for this
            # upgrade's lines.
            deadline = time.monotonic() + 10
            while len(split.findall(server.log_tail.text())) < number and time.monotonic() < deadline:
                time.sleep(0.01)
            log = server.log_tail.text()
            written.append(int(pattern.findall(log)[-1]))
            parts = split.findall(log)[-1]
            startup.append(int(parts[1]) - written[-1])
            restore.append(int(parts[2]))
        after = rss_kib(server.pid)
        probe.running = False
        log = server.log_tail.text()
        cloexec = [int(m) for m in re.findall(r"descriptors close-on-exec again in (\d+) us", log)][-args.upgrades:]
        flushed = re.findall(r"the final flush wrote (\d+) records in ([\d.]+) ms", log)[-args.upgrades:]
        sessions = re.search(r" sessions=(\d+)", call(admin, "STATUS")).group(1)

        print(f"sessions {args.sessions} + probe (STATUS sessions={sessions}), {args.upgrades} upgrades, release build")
        print(f"hold (server)            p50 {median(held) / 1000:.1f} ms   max {max(held) / 1000:.1f} ms")
        print(f"  handoff written        p50 {median(written) / 1000:.2f} ms")
        print(f"  exec + start-up        p50 {median(startup) / 1000:.1f} ms")
        print(f"  restore                p50 {median(restore) / 1000:.1f} ms")
        if first_poll:
            print(f"until the first poll     p50 {median(first_poll) / 1000:.1f} ms   max {max(first_poll) / 1000:.1f} ms "
                  f"(server: every socket registered, input read from here)")
        print(f"probe worst PING RTT     p50 {median(probe_worst) / 1000:.1f} ms across an upgrade, "
              f"{median(steady_worst) / 1000:.2f} ms in a steady 300 ms")
        print(f"UPGRADE round trip       p50 {median(round_trips):.1f} ms (check and final flush included)")
        if cloexec:
            print(f"close-on-exec again      p50 {median(cloexec) / 1000:.2f} ms on a worker, after the hold")
        if flushed:
            print(f"final flush (database)   {len(flushed)} upgrades wrote {sum(int(n) for n, _ in flushed)} records, "
                  f"p50 {median([float(t) for _, t in flushed]):.1f} ms, before the hold")
        print(f"RSS                      {before} -> {after} KiB")

        run = subprocess.run([LOADTEST, "ping", "--port", str(game_port), "--admin-port",
                              str(admin_port), "--clients", str(args.lt_clients), "--pipeline", str(args.lt_pipeline),
                              "--duration", "3", "--upgrade-at", "1", "--upgrades", str(args.lt_upgrades), "--quiet"],
                             capture_output=True, text=True)
        print(f"loadtest ping --clients {args.lt_clients} --pipeline {args.lt_pipeline} "
              f"--upgrade-at 1 --upgrades {args.lt_upgrades} (exit {run.returncode}):")
        print(run.stdout.strip())
        for sock in players:
            sock.close()
    finally:
        stop(server, 30)


if __name__ == "__main__":
    main()
