"""Shared helpers for the Python tools: start a release gameserver on free
ports, keep draining its log, and read its resident memory."""
import collections
import re
import subprocess
import threading

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


def start(*flags: str, wrapper: tuple = (), server: str = SERVER) -> tuple:
    """Starts the server (optionally under `wrapper`, e.g. valgrind) on free
    ports; returns (process, game port, admin port). Its stderr is read on
    for as long as it runs (a pipe nobody reads fills up, and the server
    then drops log lines); `log(process)` returns the last lines."""
    process = subprocess.Popen([*wrapper, server, "--port", "0", "--admin-port", "0", *flags],
                               stderr=subprocess.PIPE, text=True, errors="replace")
    ports = {}
    log_lines = []
    for line in process.stderr:
        log_lines.append(line)
        for kind, pattern in (("game", r"\] listening on [^\s]+:(\d+)"), ("admin", r"admin listening on [^\s]+:(\d+)")):
            match = re.search(pattern, line)
            if match:
                ports[kind] = int(match.group(1))
        if len(ports) == 2:
            process.log_tail = _LogTail(process.stderr, log_lines)
            return process, ports["game"], ports["admin"]
    raise SystemExit("server did not start:\n" + "".join(log_lines))


def log(process: subprocess.Popen, timeout: float = 30) -> str:
    """The last LOG_LINES lines `process` (from `start`) wrote to stderr;
    once it has exited, everything up to its end (or what arrived within
    `timeout` seconds, if something else still holds the pipe open)."""
    if process.poll() is not None:
        process.log_tail.thread.join(timeout)
    return process.log_tail.text()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
