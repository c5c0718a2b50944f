#!/usr/bin/env python3
"""Shared helpers for the Python tools in tools/ (imported, not run: every
tool that needs one imports it from here, so there is one copy of each).

  servers     start() a release gameserver on free ports (learned from its
              --ready-file, not its log; its stderr drained by a thread into
              process.log_tail), stop() it, rss_kib(), padded_copy() of the
              game module, sql() and seed_players() for its SQLite file;
  CPU time    cpu_ticks() / cpu_seconds() of a process from /proc/PID/stat,
              cpu_seconds_precise() from its threads' schedstat (ns),
              voluntary_switches(), busy_ticks() of the whole machine and
              wait_quiet() for a quiet one;
  statistics  percentile() and median();
  sockets     connect(), call() (one request line, one reply line), drain(),
              fields() of a KEY=VALUE reply, admin_status(), free_port(),
              wait_for() a listener;
  arguments   arg_parser() (an argparse parser whose --help shows the tool's
              docstring) and raise_nofile().

Paths are relative to the repository root, where the tools are run from:
    python3 tools/NAME.py --help
"""
import argparse
import collections
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# The release build's products, relative to the repository root.
RELEASE = ".build/release"
SERVER = f"{RELEASE}/gameserver"
MODULE = f"{RELEASE}/libGameLogic.so"
LOADTEST = f"{RELEASE}/loadtest"
# The repository root as an absolute path (for tools that may be run from
# elsewhere).
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# Log lines kept per server (the rest is read and discarded).
LOG_LINES = 1000
# Clock ticks per second, the unit of /proc/PID/stat's CPU times.
TICKS = os.sysconf("SC_CLK_TCK")


# --- Arguments ---------------------------------------------------------------

def arg_parser(doc: str, **kwargs) -> argparse.ArgumentParser:
    """An argument parser whose --help starts with the tool's docstring,
    line breaks kept."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def raise_nofile() -> None:
    """Raises the soft limit on open files to the hard one (thousands of
    connections; children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- Servers -----------------------------------------------------------------

class _LogTail:
    """The last LOG_LINES lines of a server's stderr, filled by a daemon
    thread that reads until the server closes it: a pipe nobody reads would
    fill and stall whoever writes to it."""

    def __init__(self, stream):
        self._lines = collections.deque(maxlen=LOG_LINES)
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)


def start(*flags: str, wrapper: tuple = (), server: str = SERVER, timeout: float = 60) -> tuple:
    """Starts the server (optionally under `wrapper`, e.g. valgrind) on free
    ports; returns (process, game port, admin port). `process.log_tail.text()`
    is the last LOG_LINES lines of its log, `process.ready` its ready file.
    Without --database among the flags it gets a fresh database file."""
    scratch = tempfile.mkdtemp(prefix="hotswap-")
    ready = os.path.join(scratch, "ready.json")
    # A fresh database per run (not hotswap.sqlite in the working directory).
    if "--database" not in flags:
        flags = (*flags, "--database", os.path.join(scratch, "hotswap.sqlite"))
    process = subprocess.Popen([*wrapper, server, "--port", "0", "--admin-port", "0", "--ready-file", ready, *flags],
                               stderr=subprocess.PIPE, text=True)
    process.log_tail = _LogTail(process.stderr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            with open(ready) as handle:
                info = json.load(handle)
            # The whole ready file (the metrics port, with --metrics-port).
            process.ready = info
            return process, info["game"]["port"], info["admin"]["port"]
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    raise SystemExit("server did not start:\n" + process.log_tail.text())


def stop(process: subprocess.Popen, timeout: float = None) -> None:
    """SIGTERM, then waits for the process to exit."""
    process.terminate()
    process.wait(timeout=timeout)


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def padded_copy(path: str, padding: int, source: str = MODULE) -> str:
    """Copies the game module to `path` with `padding` zero bytes appended:
    the same code in a different file, so a RELOAD of it is a real swap
    (reloading the file already serving answers `+OK unchanged`)."""
    shutil.copyfile(source, path)
    with open(path, "ab") as handle:
        handle.write(b"\0" * padding)
    return path


def sql(database: str, script: str) -> str:
    """Runs a script with the sqlite3 shell; returns its output."""
    return subprocess.run(["sqlite3", database, script], check=True, capture_output=True, text=True).stdout.strip()


def seed_players(database: str, players: int, *flags: str, server: str = SERVER, timeout: float = 30) -> None:
    """Lets a server create the database's layout and columns (started with
    `flags`, then stopped), then inserts `players` offline players
    player0, player1, ... with an int score."""
    process, _, _ = start("--database", database, *flags, server=server)
    stop(process, timeout)
    if players:
        sql(database, f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {players})
            INSERT INTO players (key, "score:int") SELECT 'player' || i, i % 97 FROM n;""")


# --- CPU time ----------------------------------------------------------------

def cpu_ticks(pid: int) -> tuple:
    """(utime, stime) of a process in clock ticks: fields 14 and 15 of
    /proc/PID/stat (counted after the command name, which may hold blanks)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, in seconds."""
    return sum(cpu_ticks(pid)) / TICKS


def cpu_seconds_precise(pid: int) -> float:
    """The process's CPU time at nanosecond resolution: /proc/PID/schedstat's
    first field, summed over its threads (cpu_seconds counts 10 ms ticks,
    too coarse for tens of milliseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def voluntary_switches(pid: int) -> int:
    """How often a process went to sleep (voluntary context switches)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def busy_ticks() -> int:
    """Clock ticks the whole machine spent not idle (all CPUs, /proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4]  # idle, iowait


def wait_quiet() -> None:
    """Waits (at most 20 s) for a half second in which the machine used less
    than 0.1 s of CPU: other sessions share it."""
    for _ in range(40):
        before = busy_ticks()
        time.sleep(0.5)
        if (busy_ticks() - before) / TICKS < 0.1:
            return


# --- Statistics --------------------------------------------------------------

def percentile(values, fraction: float) -> float:
    """The value below which `fraction` of the values lie (nearest rank,
    rounded down; 0.5 is the upper median); 0 when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0


def median(values) -> float:
    """statistics.median, 0 when there are no values."""
    values = list(values)
    return statistics.median(values) if values else 0


# --- Sockets -----------------------------------------------------------------

def connect(port: int, host: str = "127.0.0.1", nodelay: bool = False) -> socket.socket:
    """A TCP connection to a local port; with nodelay, TCP_NODELAY on (a
    client timing round trips)."""
    sock = socket.create_connection((host, port))
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def call(sock: socket.socket, line: str) -> str:
    """Sends one request line and returns its one-line reply."""
    sock.sendall(line.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data.decode().strip()


class TimedClient:
    """A blocking client with TCP_NODELAY that times each request's round
    trip: `call` returns (microseconds, the reply line)."""

    def __init__(self, port: int):
        self.sock = connect(port, nodelay=True)
        self.file = self.sock.makefile("rb")

    def call(self, line: str) -> tuple:
        started = time.perf_counter_ns()
        self.sock.sendall(line.encode() + b"\r\n")
        reply = self.file.readline()
        return (time.perf_counter_ns() - started) / 1000, reply.decode().strip()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def drain(sock: socket.socket) -> None:
    """Reads and discards whatever the socket has received, without waiting
    for more."""
    sock.setblocking(False)
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        pass
    sock.setblocking(True)


def play_batches(port: int, command: str, batches: int, settle: float = 0.2) -> None:
    """Two players LOGIN and JOIN room r; the first sends `batches` batches of
    100 `command` lines, each waited for (the second's events drained), then
    both leave and the server is given `0.3 s` to see it. What alloc-check.py
    and call-cost.py count is the difference between two batch counts."""
    players = [connect(port) for _ in range(2)]
    for index, player in enumerate(players):
        player.sendall(f"LOGIN p{index}\nJOIN r\n".encode())
        time.sleep(settle)
        player.recv(65536)
    batch = (command + "\n").encode() * 100
    for _ in range(batches):
        players[0].sendall(batch)
        received = b""
        while received.count(b"\n") < 100:
            received += players[0].recv(1 << 20)
        drain(players[1])
    for player in players:
        player.close()
    time.sleep(0.3)


def fields(line: str) -> dict:
    """The KEY=VALUE words of a reply line (STATUS, RELOAD), as a dict."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def admin_status(admin_port: int) -> str:
    """One STATUS on a connection of its own; the reply line."""
    with socket.create_connection(("127.0.0.1", admin_port)) as sock:
        sock.sendall(b"STATUS\n")
        return sock.makefile().readline().strip()


def free_port() -> int:
    """A TCP port nobody listens on now (for servers without --ready-file)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int) -> None:
    """Waits (at most about 30 s) until something accepts on the port."""
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"no server on port {port}")


if __name__ == "__main__":
    arg_parser(__doc__).parse_args()
    print(__doc__.strip())
