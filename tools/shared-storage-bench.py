#!/usr/bin/env python3
"""Players shared through PostgreSQL (issue #22) against SQLite, on a
release gameserver on loopback, with a throwaway PostgreSQL cluster this
tool starts itself (initdb into a temporary directory, durable settings:
fsync and synchronous_commit on, the defaults) and always stops.

    flock /tmp/hotswap-build.lock swift build -c release --product gameserver
    flock /tmp/hotswap-build.lock swift build -c release --product GameLogic
    flock -o /tmp/hotswap-build.lock python3 tools/shared-storage-bench.py [--rounds 5] [--only login,flush,steady,moves]

Four parts, in one run:

login   LOGIN round trips, PostgreSQL (a claim: one statement, one commit,
        on a worker, before the answer) against SQLite (every player in
        memory). Rounds alternate between the two; each starts a server on a
        fresh database and, for each `--clients` value, runs two phases of
        `--logins` LOGIN/QUIT cycles from that many concurrent clients
        (asyncio, a new connection per cycle, each name once per phase):
        first new names, then, once the releases are flushed (STATUS
        leases_held=0), the same names again in another order (existing
        players). LOGIN is timed from the request to its reply. Per phase:
        p50, p99, p99.9, logins/s, server CPU and PostgreSQL CPU per
        LOGIN/QUIT cycle; medians of the rounds.
flush   What the write-behind writes per second. Per round and backend
        (alternating), `--flush-players` players log in and stay, each in a
        room of its own; the flush interval is 60 s (the longest) and the
        lease an hour, so only the admin's SAVE flushes, and SAVE's
        `records=N write_ms=F` (the worker's time for the batch, one
        transaction) gives rows per second for batches of a known size:
        (1) every player new, (2) every player's score changed (each walked
        to a gem), (3) nothing changed (PostgreSQL: every lease held
        renewed; no write_ms, so SAVE's round trip), (4) after every player
        QUIT (PostgreSQL: the leases given back). Medians of the rounds.
steady  What the write-behind costs each second with `--flush-players`
        players online, the default flush interval (200 ms) and lease
        (15 s): a window with nothing changing (idle), and one with a
        LOGIN/QUIT every 200 ms (trickle: every flush has something to
        write). Flushes/s, server and PostgreSQL CPU, WAL bytes/s
        (pg_current_wal_lsn). `--steady-rounds` alternating rounds.
moves   Two servers A and B (`--server-name a`, `b`) on one database, the
        default flush interval (200 ms) and lease (15 s). `--players` players,
        `--movers` at once: each logs in on A, JOINs a room of its own and
        walks to a gem, QUITs, then logs in on B, retrying a refused LOGIN
        every `--retry-ms` until B takes it, and so on along `--pattern`
        (AB by default; ABAB moves back, AAB logs out and straight back in
        on A before moving). Every WELCOME must show the score the
        previous hop ended with (nothing lost); one player in
        `--probe-every`, while logged in, also tries the other server, which
        must refuse it (NAME_TAKEN ... another server: never held by both).
        Reports moves/s, LOGIN p50/p99 on each server, the wait from +BYE on
        one server to +WELCOME on the other, refusals, and at the end checks
        the database (no owner left, epoch = logins, score = logins) and both
        servers' STATUS (leases_held=0, leases_lost=0, db_errors=0). Then
        `--races` existing and as many new names are each sent to both
        servers at the same moment: exactly one must welcome it. One run
        per `--movers` value, each on a fresh database. A LOGIN answered
        BUSY (the server's login queue is full) is retried and counted.

Exits 1 if a check fails (a lost or duplicated player, a hang, an
unexpected refusal). Needs PostgreSQL's server binaries (initdb, pg_ctl;
`make deps`) and psql/createdb. As root the cluster runs as `postgres`.
"""
import asyncio
import atexit
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import (arg_parser, cpu_seconds_precise, fields, median, percentile, raise_nofile, start, stop,
                      wait_quiet)

# Flags every server gets: no throttles in the way of a load tool.
COMMON = ("--rate-limit", "0", "--login-timeout", "0", "--idle-timeout", "0", "--max-rooms", "100000")
# A refusal because another server holds the player.
ELSEWHERE = "-ERR NAME_TAKEN that player is online on another server"
# A refusal because the server's login queue is full (AuthDesk.maxQueued).
BUSY = "-ERR BUSY"
# How long one reply may take before the tool calls it a hang.
REPLY_TIMEOUT = 30.0


# --- The throwaway cluster ----------------------------------------------------

def pg_bindir() -> str:
    """PostgreSQL's server binaries: pg_config's, else the newest Debian one."""
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir and os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    except OSError:
        pass
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[-2].split(".") if x.isdigit()], reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    raise SystemExit("no PostgreSQL server binaries (initdb): make deps (apt-get install postgresql)")


class Cluster:
    """A PostgreSQL cluster in a temporary directory on 127.0.0.1 (user `hs`,
    trust authentication), durable (fsync and synchronous_commit at their
    defaults, on), stopped and removed by stop() (registered with atexit)."""

    USER = "hs"

    def __init__(self, settings: list):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="hotswap-pg-")
        self.data = os.path.join(self.dir, "data")
        self.as_owner = []
        if os.geteuid() == 0:
            owner = "postgres"
            try:
                subprocess.run(["id", owner], check=True, capture_output=True)
            except subprocess.CalledProcessError:
                owner = "nobody"
            shutil.chown(self.dir, owner)
            self.as_owner = ["runuser", "-u", owner, "--"]
        self.port = None
        atexit.register(self.stop)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", self.USER, "-E", "UTF8", "--no-locale")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n")
            for setting in settings:
                key, value = setting.split("=", 1)
                conf.write(f"{key} = {value}\n")
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low = int(ports.read().split()[0])
        log = os.path.join(self.dir, "postgres.log")
        for _ in range(10):
            port = random.randrange(10000, max(low, 11000))  # below the ephemeral range
            try:
                self._run("pg_ctl", "-D", self.data, "-l", log, "-o", f"-p {port}", "-w", "-t", "60", "start")
                self.port = port
                break
            except SystemExit:
                with open(log) as text:
                    if "could not bind" not in text.read():
                        raise
        if self.port is None:
            with open(log) as text:
                raise SystemExit("postgres did not start: " + text.read())
        with open(os.path.join(self.data, "postmaster.pid")) as pidfile:
            self.postmaster = int(pidfile.readline())
        self.databases = 0

    def _run(self, tool: str, *args: str) -> str:
        result = subprocess.run([*self.as_owner, os.path.join(self.bindir, tool), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{tool} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def show(self, name: str) -> str:
        return self.psql("postgres", f"SHOW {name}")

    def new_database(self) -> str:
        """A fresh database; its URL."""
        self.databases += 1
        name = f"bench{self.databases}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, name)
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{name}"

    def psql(self, database: str, query: str) -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, "-d", database.rsplit("/", 1)[-1],
                         "-Atc", query).strip()

    def cpu_seconds(self) -> float:
        """CPU time of the postmaster and all its children so far (a backend
        that exited meanwhile is not counted: the servers' connections live
        as long as the servers)."""
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                if int(entry) == self.postmaster or ppid == self.postmaster:
                    total += cpu_seconds_precise(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return total

    def wal_bytes(self, url: str) -> int:
        """Bytes of WAL written since the cluster began (exact, unlike
        pg_stat_wal, which backends report late)."""
        return int(self.psql(url, "SELECT pg_current_wal_lsn() - '0/0'"))

    def stop(self) -> None:
        if self.dir is None:
            return
        if self.port is not None:
            subprocess.run([*self.as_owner, os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                            "-t", "30", "stop"], capture_output=True)
            self.port = None
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the tool through its finally blocks (and
    atexit), as Ctrl-C does: the cluster and the servers are stopped."""
    def handler(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# --- Servers and clients -------------------------------------------------------

class Server:
    """A release gameserver on free ports (benchlib.start)."""

    def __init__(self, *flags: str):
        self.process, self.port, self.admin = start(*COMMON, *flags)

    def status(self) -> dict:
        return fields(self.admin_call("STATUS"))

    def admin_call(self, line: str, timeout: float = 300) -> str:
        with socket.create_connection(("127.0.0.1", self.admin), timeout=timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            return sock.makefile().readline().strip()

    def wait(self, what: str, ok, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if ok(status):
                return status
            if time.monotonic() > deadline:
                raise Failure(f"STATUS never showed {what} in {timeout} s: {status}")
            time.sleep(0.02)

    def settled(self, shared: bool) -> dict:
        """Waits until nothing is dirty, no flush is under way and (shared)
        every lease is given back."""
        return self.wait("a settled write-behind", lambda s: s.get("dirty") == "0" and s.get("in_flight") == "0"
                         and s.get("flush") in ("idle", None) and (not shared or s.get("leases_held") == "0"))

    def cpu(self) -> float:
        return cpu_seconds_precise(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            stop(self.process, 60)


class Failure(Exception):
    """A check that failed: reported, and the tool exits 1."""


class Conn:
    """One game connection (asyncio); call() skips `>` event lines."""

    @classmethod
    async def open(cls, port: int) -> "Conn":
        self = cls()
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def call(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), REPLY_TIMEOUT)
            except asyncio.TimeoutError:
                raise Failure(f"no reply to {line!r} in {REPLY_TIMEOUT} s (a hang)")
            if not raw:
                raise Failure(f"connection closed while waiting for the reply to {line!r}")
            reply = raw.decode().strip()
            if not reply.startswith(">"):
                return reply

    async def timed(self, line: str) -> tuple:
        started = time.perf_counter_ns()
        reply = await self.call(line)
        return (time.perf_counter_ns() - started) / 1000, reply

    async def quit(self) -> None:
        reply = await self.call("QUIT")
        if reply != "+BYE":
            raise Failure(f"QUIT: {reply}")
        self.close()

    def close(self) -> None:
        self.writer.close()


def welcome_score(reply: str) -> int:
    words = reply.split()
    return int(words[words.index("score") + 1])


async def walk_to_gem(conn: Conn, room: str) -> int:
    """JOINs `room` (a room of its own: a fresh board of 6 gems) and walks
    the board (west and north to the corner, then row by row) until a MOVE
    takes a gem; returns the score the +GEM reply gives."""
    reply = await conn.call(f"JOIN {room}")
    if not reply.startswith("+JOINED"):
        raise Failure(f"JOIN {room}: {reply}")
    words = reply.split()
    x, y = int(words[3]), int(words[4])
    path = ["W"] * x + ["N"] * y
    for row in range(8):
        path += ["E" if row % 2 == 0 else "W"] * 7
        if row < 7:
            path.append("S")
    for step in path:
        reply = await conn.call(f"MOVE {step}")
        if reply.startswith("+GEM"):
            return int(reply.split()[-1])
        if not reply.startswith("+MOVED"):
            raise Failure(f"MOVE {step}: {reply}")
    raise Failure(f"no gem on the board of room {room}")


async def pool(items, workers: int, job) -> None:
    """Runs job(item) for every item, `workers` at a time; the first
    failure cancels the rest."""
    queue = list(items)
    queue.reverse()

    async def worker():
        while queue:
            await job(queue.pop())

    tasks = [asyncio.create_task(worker()) for _ in range(min(workers, len(queue)) or 1)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def stats(latencies: list) -> dict:
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "p99.9": percentile(latencies, 0.999), "max": max(latencies) if latencies else 0}


# --- 1. LOGIN latency ------------------------------------------------------------

async def login_cycles(server: Server, names: list, clients: int) -> list:
    latencies = []

    async def cycle(name):
        conn = await Conn.open(server.port)
        elapsed, reply = await conn.timed(f"LOGIN {name}")
        if not reply.startswith("+WELCOME"):
            raise Failure(f"LOGIN {name}: {reply}")
        latencies.append(elapsed)
        await conn.quit()

    await pool(names, clients, cycle)
    return latencies


def login_phase(server: Server, cluster, names: list, clients: int) -> dict:
    cpu, pg_cpu = server.cpu(), cluster.cpu_seconds() if cluster else 0
    started = time.perf_counter()
    latencies = asyncio.run(login_cycles(server, names, clients))
    elapsed = time.perf_counter() - started
    result = {f"login_{k}_us": v for k, v in stats(latencies).items()}
    result["logins_per_s"] = len(names) / elapsed
    result["server_cpu_us"] = (server.cpu() - cpu) / len(names) * 1e6
    if cluster:
        result["pg_cpu_us"] = (cluster.cpu_seconds() - pg_cpu) / len(names) * 1e6
    return result


def login_round(backend: str, cluster, args) -> dict:
    """One server on a fresh database; per concurrency, the new names, then
    the same names again once their leases are given back."""
    shared = backend == "postgresql"
    database = cluster.new_database() if shared else os.path.join(tempfile.mkdtemp(prefix="hotswap-"), "bench.sqlite")
    extra = ("--server-name", "a") if shared else ()
    server = Server("--database", database, *extra)
    results = {}
    try:
        wait_quiet()
        for clients in args.clients:
            names = [f"c{clients}p{i}" for i in range(args.logins)]
            results[f"new/{clients}"] = login_phase(server, cluster if shared else None, names, clients)
            server.settled(shared)
            random.Random(len(names)).shuffle(names)
            results[f"existing/{clients}"] = login_phase(server, cluster if shared else None, names, clients)
            server.settled(shared)
        status = server.status()
        if status.get("db_errors", "0") != "0":
            raise Failure(f"{backend}: db_errors in STATUS: {status}")
        return results
    finally:
        server.stop()


# --- 2. Flush throughput ------------------------------------------------------------

def save(server: Server) -> tuple:
    """SAVE; (records, write_ms, the round trip in ms)."""
    started = time.perf_counter()
    reply = server.admin_call("SAVE")
    elapsed = (time.perf_counter() - started) * 1000
    if not reply.startswith("+OK saved"):
        raise Failure(f"SAVE: {reply}")
    values = fields(reply)
    return int(values["records"]), float(values["write_ms"]), elapsed


async def flush_batches(server: Server, players: int, shared: bool, cluster) -> dict:
    conns = {}

    async def log_in(index):
        conn = await Conn.open(server.port)
        reply = await conn.call(f"LOGIN f{index}")
        if not reply.startswith("+WELCOME"):
            raise Failure(f"LOGIN f{index}: {reply}")
        conns[index] = conn

    async def take_gem(index):
        await walk_to_gem(conns[index], f"room{index}")

    # The schema and the first lease check go in a flush of their own.
    await log_in(-1)
    save(server)
    result = {}

    def measure(label: str, expected: int) -> None:
        pg_cpu = cluster.cpu_seconds() if cluster else 0
        before = server.status()
        records, write_ms, round_trip = save(server)
        after = server.status()
        if expected and records < expected:
            raise Failure(f"SAVE after {label}: records={records}, expected at least {expected}")
        if int(after["flushes"]) - int(before["flushes"]) > 1:
            raise Failure(f"SAVE after {label}: another flush ran meanwhile: {before['flushes']} -> {after['flushes']}")
        released = int(after.get("leases_released", 0)) - int(before.get("leases_released", 0))
        if shared and label == "quit" and released != players + 1:  # and the warm-up player
            raise Failure(f"SAVE after every player quit gave back {released} leases, expected {players + 1}")
        count = expected or players
        if not cluster and not expected:
            count = 0  # SQLite: nothing to renew or give back
        # A SAVE with nothing to write runs the file check (with PostgreSQL:
        # renewing every lease held), whose time only the round trip shows.
        result[label] = {"records": records, "write_ms": write_ms,
                         "rows_per_s": count / (write_ms or round_trip) * 1000 if count else 0, "save_ms": round_trip}
        if cluster:
            result[label]["pg_cpu_us_per_row"] = (cluster.cpu_seconds() - pg_cpu) / count * 1e6

    await pool(range(players), 64, log_in)
    measure("new", players)
    await pool(range(players), 64, take_gem)
    measure("changed", players)
    measure("unchanged", 0)
    for conn in conns.values():
        conn.writer.write(b"QUIT\r\n")
    for conn in conns.values():
        await conn.writer.drain()
    await asyncio.sleep(0)
    server.wait("every session gone", lambda s: s.get("sessions") == "0", 120)
    for conn in conns.values():
        conn.close()
    measure("quit", 0)
    if shared:
        status = server.status()
        if status.get("leases_held") != "0":
            raise Failure(f"leases still held after SAVE: {status}")
    return result


def flush_round(backend: str, cluster, args) -> dict:
    shared = backend == "postgresql"
    database = cluster.new_database() if shared else os.path.join(tempfile.mkdtemp(prefix="hotswap-"), "bench.sqlite")
    extra = ("--server-name", "a", "--lease-seconds", "3600") if shared else ()
    # The longest interval the server takes: only SAVE flushes in a round.
    server = Server("--database", database, "--flush-interval", "60000",
                    "--max-connections", str(args.flush_players + 100), *extra)
    try:
        wait_quiet()
        return asyncio.run(flush_batches(server, args.flush_players, shared, cluster if shared else None))
    finally:
        server.stop()


async def steady_windows(server: Server, players: int, seconds: float, cluster, url: str) -> dict:
    conns = []

    async def log_in(index):
        conn = await Conn.open(server.port)
        reply = await conn.call(f"LOGIN s{index}")
        if not reply.startswith("+WELCOME"):
            raise Failure(f"LOGIN s{index}: {reply}")
        conns.append(conn)

    await pool(range(players), 64, log_in)
    server.settled(False)
    await asyncio.sleep(1)
    result = {}
    for label, trickle in (("idle", False), ("trickle", True)):
        before, cpu, started = server.status(), server.cpu(), time.perf_counter()
        pg_cpu, wal = (cluster.cpu_seconds(), cluster.wal_bytes(url)) if cluster else (0, 0)
        cycles = 0
        while time.perf_counter() - started < seconds:
            if trickle:
                # One LOGIN/QUIT of an existing player per 200 ms: every
                # flush has something to write (the global login count).
                conn = await Conn.open(server.port)
                reply = await conn.call(f"LOGIN s{players + cycles % 5}")
                if not reply.startswith("+WELCOME"):
                    raise Failure(f"LOGIN: {reply}")
                await conn.quit()
                cycles += 1
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        after = server.status()
        values = {"flushes_per_s": (int(after["flushes"]) - int(before["flushes"])) / elapsed,
                  "last_flush_ms": float(after["last_flush_ms"]), "server_cpu_pct": (server.cpu() - cpu) / elapsed * 100}
        if cluster:
            values["pg_cpu_pct"] = (cluster.cpu_seconds() - pg_cpu) / elapsed * 100
            values["wal_kib_per_s"] = (cluster.wal_bytes(url) - wal) / elapsed / 1024
        result[label] = values
    for conn in conns:
        conn.close()
    return result


def steady_round(backend: str, cluster, args) -> dict:
    """`--flush-players` players online, the default flush interval and
    lease: what the write-behind costs each second while nothing changes
    (idle) and while one LOGIN every 200 ms gives every flush something to
    write (trickle)."""
    shared = backend == "postgresql"
    database = cluster.new_database() if shared else os.path.join(tempfile.mkdtemp(prefix="hotswap-"), "bench.sqlite")
    extra = ("--server-name", "a") if shared else ()
    server = Server("--database", database, "--max-connections", str(args.flush_players + 100), *extra)
    try:
        wait_quiet()
        return asyncio.run(steady_windows(server, args.flush_players, args.steady_seconds, cluster if shared else None,
                                          database))
    finally:
        server.stop()


# --- 3. Players moving between two servers ----------------------------------------

async def move_players(servers: list, args, movers: int, report: dict) -> None:
    hop_logins = {name: [] for name in ("a", "b")}
    waits, refusals, busy, probes = [], [0], [0], [0]

    async def move(index):
        name = f"m{index}"
        score = 0
        left_at, left = None, None
        for hop, letter in enumerate(args.pattern):
            here, there = (servers[0], servers[1]) if letter == "A" else (servers[1], servers[0])
            conn = await Conn.open(here.port)
            asked = time.perf_counter()
            while True:
                elapsed, reply = await conn.timed(f"LOGIN {name}")
                if reply.startswith("+WELCOME"):
                    break
                if reply.startswith(BUSY):
                    # The server's login queue is full: retry in a moment,
                    # as the reply says.
                    busy[0] += 1
                elif reply.startswith(ELSEWHERE) and left is there:
                    refusals[0] += 1
                else:
                    raise Failure(f"LOGIN {name} on {here.name} (hop {hop + 1}): {reply}")
                if time.perf_counter() - asked > args.lease_seconds + 5:
                    raise Failure(f"{name}: still refused on {here.name} {time.perf_counter() - asked:.1f} s after its "
                                  f"first LOGIN there (+BYE on {there.name}: a lease never given back?): {reply}")
                await asyncio.sleep(args.retry_ms / 1000)
            if left is there:
                waits.append((time.perf_counter() - left_at) * 1e6)
            hop_logins[here.name].append(elapsed)
            if welcome_score(reply) != score:
                raise Failure(f"{name} on {here.name} (hop {hop + 1}): {reply}, expected score {score} (lost an update)")
            if args.probe_every and index % args.probe_every == 0:
                probe = await Conn.open(there.port)
                answer = await probe.call(f"LOGIN {name}")
                while answer.startswith(BUSY):
                    busy[0] += 1
                    await asyncio.sleep(args.retry_ms / 1000)
                    answer = await probe.call(f"LOGIN {name}")
                probe.close()
                if not answer.startswith(ELSEWHERE):
                    raise Failure(f"{name} is logged in on {here.name}, and {there.name} answered LOGIN with: {answer} "
                                  "(held by both)")
                probes[0] += 1
            score = await walk_to_gem(conn, f"room{index}")
            if score != hop + 1:
                raise Failure(f"{name}: score {score} after hop {hop + 1}")
            await conn.quit()
            left_at, left = time.perf_counter(), here

    started = time.perf_counter()
    await pool(range(args.players), movers, move)
    elapsed = time.perf_counter() - started
    report.update(movers=movers, elapsed_s=elapsed, moves_per_s=args.players * args.changes / elapsed,
                  logins_per_s=args.players * args.hops / elapsed, refusals=refusals[0], busy=busy[0], probes=probes[0],
                  login_a=stats(hop_logins["a"]), login_b=stats(hop_logins["b"]), wait=stats(waits))


async def races(servers: list, names: list) -> dict:
    """Each name's LOGIN sent to both servers at once: exactly one may
    answer +WELCOME, the other must say the player is on another server.
    The winner QUITs."""
    outcome = {"a": 0, "b": 0}

    async def race(name):
        conns = [await Conn.open(server.port) for server in servers]
        replies = await asyncio.gather(*(conn.call(f"LOGIN {name}") for conn in conns))
        winners = [i for i, reply in enumerate(replies) if reply.startswith("+WELCOME")]
        if len(winners) != 1 or not all(reply.startswith(ELSEWHERE) for i, reply in enumerate(replies) if i not in winners):
            raise Failure(f"LOGIN {name} sent to a and b at once: {replies} (expected one +WELCOME, one refusal)")
        outcome[servers[winners[0]].name] += 1
        await conns[winners[0]].quit()
        conns[1 - winners[0]].close()

    await pool(names, 50, race)
    return outcome


def moves(cluster, args, movers: int) -> dict:
    url = cluster.new_database()
    servers = []
    try:
        for name in ("a", "b"):
            server = Server("--database", url, "--server-name", name, "--lease-seconds", str(args.lease_seconds),
                            "--max-connections", str(2 * movers + 200))
            server.name = name
            servers.append(server)
        report = {}
        wait_quiet()
        cpu = [s.cpu() for s in servers]
        pg_cpu = cluster.cpu_seconds()
        asyncio.run(move_players(servers, args, movers, report))
        moved = args.players * args.changes
        report["server_cpu_us_per_move"] = [round((s.cpu() - c) / moved * 1e6, 1) for s, c in zip(servers, cpu)]
        report["pg_cpu_us_per_move"] = (cluster.cpu_seconds() - pg_cpu) / moved * 1e6
        if args.races:
            # Existing players (all given back by now: a flush interval) and new ones.
            servers[0].settled(True)
            servers[1].settled(True)
            names = [f"m{i}" for i in range(min(args.races, args.players))] + [f"r{i}" for i in range(args.races)]
            report["races_won"] = asyncio.run(races(servers, names))
        statuses = [s.settled(True) for s in servers]
        for server, status in zip(servers, statuses):
            for key in ("leases_lost", "db_errors", "leases_held"):
                if status.get(key) != "0":
                    raise Failure(f"server {server.name}: {key}={status.get(key)}: {status}")
        report["status"] = {s.name: {k: st.get(k) for k in ("leases_claimed", "leases_released", "logins_elsewhere",
                                                             "leases_lost", "flushes", "records_flushed", "db_errors")}
                            for s, st in zip(servers, statuses)}
        rows = cluster.psql(url, 'SELECT count(*), count(owner), min(epoch), max(epoch), min("score:int"), '
                                 'max("score:int"), bool_and(written) FROM players WHERE key LIKE \'m%\'')
        count, owned, min_epoch, max_epoch, min_score, max_score, written = rows.split("|")
        report["database"] = rows
        # A race's winner claimed its player once more: its epoch is one higher.
        raced = min(args.races, args.players)
        top = args.hops + (1 if raced else 0)
        low = args.hops + (1 if raced == args.players else 0)
        expected = (str(args.players), "0", str(low), str(top), str(args.hops), str(args.hops), "t")
        if args.changes + 1 < args.hops:
            # A login back on the server that still holds the player takes
            # no new lease: epochs are not counted.
            expected = expected[:2] + (min_epoch, max_epoch) + expected[4:]
        if (count, owned, min_epoch, max_epoch, min_score, max_score, written) != expected:
            raise Failure("database after the moves: count, owned, min/max epoch, min/max score, written = "
                          f"{rows}, expected {'|'.join(expected)}")
        return report
    finally:
        for server in servers:
            server.stop()


# --- Reporting -----------------------------------------------------------------------

def medians(rows: list) -> dict:
    """The median of each key over the rounds (nested dicts too)."""
    first = rows[0]
    if isinstance(first, dict):
        return {key: medians([row[key] for row in rows]) for key in first}
    return median(rows)


def line(values: dict) -> str:
    return " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def main() -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the login and flush parts")
    parser.add_argument("--only", default="login,flush,steady,moves", help="which parts, comma-separated")
    parser.add_argument("--clients", default="1,32", help="login: concurrent clients, comma-separated (each a phase pair)")
    parser.add_argument("--logins", type=int, default=3000, help="login: LOGIN/QUIT cycles per phase")
    parser.add_argument("--flush-players", type=int, default=10000, help="flush: players in each batch")
    parser.add_argument("--steady-rounds", type=int, default=3, help="steady: alternating rounds")
    parser.add_argument("--steady-seconds", type=float, default=5, help="steady: length of each window")
    parser.add_argument("--players", type=int, default=10000, help="moves: players")
    parser.add_argument("--movers", default="32,200", help="moves: players moving at once, comma-separated (a run each)")
    parser.add_argument("--races", type=int, default=1000,
                        help="moves: afterwards, N existing and N new names each sent to both servers at once")
    parser.add_argument("--pattern", default="AB",
                        help="moves: the servers each player logs in on, in order (AB: A then B; ABAB; AAB logs out "
                             "and straight back in on A before moving)")
    parser.add_argument("--probe-every", type=int, default=10, help="moves: 1 player in N also tries the other server")
    parser.add_argument("--retry-ms", type=float, default=20, help="moves: wait before retrying a refused LOGIN")
    parser.add_argument("--lease-seconds", type=int, default=15, help="moves: --lease-seconds of both servers")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a postgresql.conf line for the cluster (e.g. synchronous_commit=off); none by default")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    args.clients = [int(c) for c in args.clients.split(",")]
    args.movers = [int(c) for c in args.movers.split(",")]
    args.pattern = args.pattern.upper()
    if not args.pattern or set(args.pattern) - {"A", "B"}:
        parser.error("--pattern takes the letters A and B")
    args.hops = len(args.pattern)
    args.changes = sum(1 for x, y in zip(args.pattern, args.pattern[1:]) if x != y)
    raise_nofile()
    stop_on_signals()
    cluster = Cluster(args.pg_setting)
    print(f"cluster: PostgreSQL {cluster.show('server_version')} on 127.0.0.1:{cluster.port}, fsync={cluster.show('fsync')} "
          f"synchronous_commit={cluster.show('synchronous_commit')} shared_buffers={cluster.show('shared_buffers')} "
          f"wal_sync_method={cluster.show('wal_sync_method')}", flush=True)
    backends = ("postgresql", "sqlite")
    try:
        if "login" in parts:
            rounds = {b: [] for b in backends}
            for index in range(args.rounds):
                for backend in backends:  # alternating
                    result = login_round(backend, cluster, args)
                    rounds[backend].append(result)
                    for phase, values in result.items():
                        print(f"login round {index + 1} {backend:<10} {phase:<12} {line(values)}", flush=True)
            print(f"\nlogin: medians of {args.rounds} rounds, {args.logins} LOGIN/QUIT per phase (new/C, existing/C: C clients at once):")
            for backend in backends:
                for phase, values in medians(rounds[backend]).items():
                    print(f"  {backend:<10} {phase:<12} {line(values)}")
            print(flush=True)
        if "flush" in parts:
            rounds = {b: [] for b in backends}
            for index in range(args.rounds):
                for backend in backends:
                    result = flush_round(backend, cluster, args)
                    rounds[backend].append(result)
                    for batch, values in result.items():
                        print(f"flush round {index + 1} {backend:<10} {batch:<9} {line(values)}", flush=True)
            print(f"\nflush: medians of {args.rounds} rounds, batches of {args.flush_players} players:")
            for backend in backends:
                for batch, values in medians(rounds[backend]).items():
                    print(f"  {backend:<10} {batch:<9} {line(values)}")
            print(flush=True)
        if "steady" in parts:
            rounds = {b: [] for b in backends}
            for index in range(args.steady_rounds):
                for backend in backends:
                    result = steady_round(backend, cluster, args)
                    rounds[backend].append(result)
                    for window, values in result.items():
                        print(f"steady round {index + 1} {backend:<10} {window:<8} {line(values)}", flush=True)
            print(f"\nsteady: medians of {args.steady_rounds} rounds, {args.flush_players} players online, "
                  f"{args.steady_seconds:g} s windows:")
            for backend in backends:
                for window, values in medians(rounds[backend]).items():
                    print(f"  {backend:<10} {window:<8} {line(values)}")
            print(flush=True)
        if "moves" in parts:
            for movers in args.movers:
                report = moves(cluster, args, movers)
                print(f"moves: {args.players} players, logins on {args.pattern}, {movers} at once:")
                for key, value in report.items():
                    if isinstance(value, float):
                        shown = f"{value:.1f}"
                    elif isinstance(value, dict) and all(isinstance(v, float) for v in value.values()):
                        shown = line(value)
                    else:
                        shown = json.dumps(value)
                    print(f"  {key}: {shown}", flush=True)
        return 0
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
