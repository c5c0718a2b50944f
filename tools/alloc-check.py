#!/usr/bin/env python3
"""Counts heap allocations per request on the server's hot path.

Starts the release gameserver under valgrind twice: once answering 100
requests of each kind, once answering 2,100. The difference in valgrind's
"total heap usage" allocation count, divided by 2,000, is what one request
costs in mallocs (the target is 0). Only loopback traffic.

    swift build -c release && python3 tools/alloc-check.py
    python3 tools/alloc-check.py --metrics-port 0 --metrics-sample-every 1

Arguments are passed to the server (above: metrics on, every call timed).
"""
import re
import subprocess
import sys
import time

from benchlib import MODULE, SERVER, arg_parser, connect, drain, start

STRIPPED = "/tmp/gameserver-no-debuginfo"
COMMANDS = ["PING", "LOOK", "SAY hello there", "MOVE N", "WHO", "SCORE", "ROOMS"]


def allocations(command: str, batches: int, server_args: list) -> int:
    # valgrind 3.19 cannot read the DWARF 5 that clang writes for the
    # bundled BoringSSL, so it runs a copy without debug info.
    subprocess.run(["strip", "--strip-debug", "-o", STRIPPED, SERVER], check=True)
    # The database is on (a fresh file), but the write-behind interval is
    # longer than the run: both runs then do the same flushes (the final
    # one), and the difference is the hot path alone. A flush allocates per
    # batch, never per message.
    proc, port, _ = start("--module", MODULE, "--flush-interval", "60000", *server_args,
                          wrapper=("valgrind", "--tool=memcheck", "--leak-check=no"), server=STRIPPED)
    players = [connect(port) for _ in range(2)]
    for index, player in enumerate(players):
        player.sendall(f"LOGIN p{index}\nJOIN r\n".encode())
        time.sleep(0.2)
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
    proc.send_signal(2)
    proc.wait()
    proc.log_tail.thread.join(10)
    rest = proc.log_tail.text()
    match = re.search(r"total heap usage: ([\d,]+) allocs", rest)
    if not match:
        sys.exit("no valgrind summary:\n" + rest)
    return int(match.group(1).replace(",", ""))


def main() -> None:
    # Every argument but --help goes to the server.
    _, server_args = arg_parser(__doc__, usage="%(prog)s [-h] [GAMESERVER-FLAG ...]", allow_abbrev=False).parse_known_args()
    print(f"{'request':<18} {'allocs/request':>15}")
    worst = 0.0
    for command in COMMANDS:
        per_request = (allocations(command, 21, server_args) - allocations(command, 1, server_args)) / 2000
        worst = max(worst, per_request)
        print(f"{command:<18} {per_request:>15.3f}")
    sys.exit(0 if worst < 0.01 else 1)


if __name__ == "__main__":
    main()
