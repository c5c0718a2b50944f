#!/usr/bin/env python3
"""Counts heap allocations per request on the server's hot path.

Starts the release gameserver under valgrind twice: once answering 100
requests of each kind, once answering 2,100. The difference in valgrind's
"total heap usage" allocation count, divided by 2,000, is what one request
costs in mallocs (the target is 0). Only loopback traffic.

    swift build -c release && python3 tools/alloc-check.py
    python3 tools/alloc-check.py --metrics-port 0 --metrics-sample-every 1

    python3 tools/alloc-check.py --time

Arguments are passed to the server (above: metrics on, every call timed).
With --time it counts what firing a timer and a room's tick costs instead:
the TimeProbeModule fixture sets a 1 ms periodic timer and a 60 Hz room
tick that do nothing, for 2 s and then for 6 s; the difference in
allocations over the difference in fires (timers + ticks, from STATUS).
"""
import re
import subprocess
import sys
import time

import os

from benchlib import MODULE, SERVER, admin_status, arg_parser, connect, play_batches, start

PROBE = os.path.join(os.path.dirname(MODULE), "libTimeProbeModule.so")

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
    play_batches(port, command, batches)
    proc.send_signal(2)
    proc.wait()
    proc.log_tail.thread.join(10)
    rest = proc.log_tail.text()
    match = re.search(r"total heap usage: ([\d,]+) allocs", rest)
    if not match:
        sys.exit("no valgrind summary:\n" + rest)
    return int(match.group(1).replace(",", ""))


def timer_allocations(seconds: float, server_args: list) -> tuple:
    """(allocations, fires) of a server whose module fires a 1 ms timer and
    a 60 Hz tick for `seconds`."""
    subprocess.run(["strip", "--strip-debug", "-o", STRIPPED, SERVER], check=True)
    proc, port, admin_port = start("--module", PROBE, "--flush-interval", "60000", *server_args,
                                   wrapper=("valgrind", "--tool=memcheck", "--leak-check=no"), server=STRIPPED)
    player = connect(port)
    player.sendall(b"JOIN r\nTICK 60\nTIMER me 1 1 quiet\n")
    time.sleep(seconds)
    status = dict(field.split("=", 1) for field in admin_status(admin_port).split()[1:] if "=" in field)
    fires = int(status["timers_fired"]) + int(status["ticks"])
    player.close()
    time.sleep(0.3)
    proc.send_signal(2)
    proc.wait()
    proc.log_tail.thread.join(10)
    match = re.search(r"total heap usage: ([\d,]+) allocs", proc.log_tail.text())
    if not match:
        sys.exit("no valgrind summary:\n" + proc.log_tail.text())
    return int(match.group(1).replace(",", "")), fires


def main() -> None:
    # Every argument but --help goes to the server.
    parser = arg_parser(__doc__, usage="%(prog)s [-h] [--time] [GAMESERVER-FLAG ...]", allow_abbrev=False)
    parser.add_argument("--time", action="store_true", help="count allocations per fired timer and tick")
    options, server_args = parser.parse_known_args()
    if options.time:
        short, long = timer_allocations(2, server_args), timer_allocations(6, server_args)
        per_fire = (long[0] - short[0]) / max(1, long[1] - short[1])
        print(f"fires {short[1]} then {long[1]}; allocations {short[0]} then {long[0]}")
        print(f"{'timer+tick fire':<18} {per_fire:>15.3f}")
        sys.exit(0 if per_fire < 0.01 else 1)
    print(f"{'request':<18} {'allocs/request':>15}")
    worst = 0.0
    for command in COMMANDS:
        per_request = (allocations(command, 21, server_args) - allocations(command, 1, server_args)) / 2000
        worst = max(worst, per_request)
        print(f"{command:<18} {per_request:>15.3f}")
    sys.exit(0 if worst < 0.01 else 1)


if __name__ == "__main__":
    main()
