"""Shared helpers for the Python tools: start a release gameserver on free
ports and read its resident memory."""
import re
import subprocess

SERVER = ".build/release/gameserver"


def start(*flags: str, wrapper: tuple = (), server: str = SERVER) -> tuple:
    """Starts the server (optionally under `wrapper`, e.g. valgrind) on free
    ports; returns (process, game port, admin port)."""
    process = subprocess.Popen([*wrapper, server, "--port", "0", "--admin-port", "0", *flags],
                               stderr=subprocess.PIPE, text=True)
    ports = {}
    log = []
    for line in process.stderr:
        log.append(line)
        for kind, pattern in (("game", r"\] listening on [^\s]+:(\d+)"), ("admin", r"admin listening on [^\s]+:(\d+)")):
            match = re.search(pattern, line)
            if match:
                ports[kind] = int(match.group(1))
        if len(ports) == 2:
            return process, ports["game"], ports["admin"]
    raise SystemExit("server did not start:\n" + "".join(log))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
