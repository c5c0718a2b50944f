"""Shared helpers for the Python tools: start a release gameserver on free
ports (learned from its --ready-file, not its log) and read its resident
memory. The server's stderr is drained by a thread for as long as it runs:
a pipe nobody reads would fill and stall whoever writes to it."""
import collections
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

SERVER = ".build/release/gameserver"
# Log lines kept per server (the rest is read and discarded).
LOG_LINES = 1000


class _LogTail:
    """The last LOG_LINES lines of a server's stderr, filled by a daemon
    thread that reads until the server closes it."""

    def __init__(self, stream, lines: list):
        self._lines = collections.deque(lines, maxlen=LOG_LINES)
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
    ports; returns (process, game port, admin port). `process.log_tail` holds
    the last 1,000 log lines."""
    scratch = tempfile.mkdtemp(prefix="hotswap-")
    ready = os.path.join(scratch, "ready.json")
    # A fresh database per run (not hotswap.sqlite in the working directory).
    if "--database" not in flags:
        flags = (*flags, "--database", os.path.join(scratch, "hotswap.sqlite"))
    process = subprocess.Popen([*wrapper, server, "--port", "0", "--admin-port", "0", "--ready-file", ready, *flags],
                               stderr=subprocess.PIPE, text=True)
    process.log_tail = collections.deque(maxlen=1000)

    def drain():
        for line in process.stderr:
            process.log_tail.append(line)

    process.drain_thread = threading.Thread(target=drain, daemon=True)
    process.drain_thread.start()
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
    raise SystemExit("server did not start:\n" + "".join(process.log_tail))


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


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
