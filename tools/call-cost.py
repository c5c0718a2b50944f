#!/usr/bin/env python3
"""Instructions per request inside the module call, for one or more builds
of the game (what the SDK costs against hand-written logic, exactly).

    python3 tools/call-cost.py hand=/tmp/old/libGameLogic.so sdk=.build/release/libGameLogic.so

Runs the release gameserver under valgrind's callgrind, counting only
inside `hotswap_handle` (the module's code and the table calls it makes
into the engine), twice per request kind: 100 and 2,100 requests. The
difference divided by 2,000 is one request's cost, free of the start-up,
the LOGIN and JOIN before, and the first calls' one-time work (metadata and
conformance caches). Instruction counts do not drift with the machine's
load, unlike CPU time (tools/compare-builds.py measures that)."""
import os
import re
import subprocess
import sys
import tempfile
import time

from benchlib import SERVER, arg_parser, play_batches, start

COMMANDS = ["PING", "SAY hello there", "LOOK", "WHO", "SCORE", "ROOMS", "MOVE N"]
STRIPPED = "/tmp/gameserver-no-debuginfo"


def instructions(module: str, command: str, batches: int) -> int:
    out = tempfile.mktemp(prefix="callgrind-", suffix=".out")
    # valgrind cannot read the DWARF 5 clang writes for BoringSSL (alloc-check.py).
    subprocess.run(["strip", "--strip-debug", "-o", STRIPPED, SERVER], check=True)
    proc, port, _ = start("--module", module, "--flush-interval", "60000", "--resume-grace", "0",
                          wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                   "--toggle-collect=hotswap_handle"), server=STRIPPED)
    play_batches(port, command, batches, settle=0.3)
    proc.send_signal(2)
    proc.wait()
    with open(out) as handle:
        match = re.search(r"^summary: (\d+)", handle.read(), re.M)
    os.unlink(out)
    if not match:
        sys.exit("no callgrind summary")
    return int(match.group(1))


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("modules", nargs="+", help="name=path/to/libGameLogic.so")
    parser.add_argument("--command", action="append", help="a request line (default: a set of seven)")
    args = parser.parse_args()
    commands = args.command or COMMANDS
    modules = [spec.split("=", 1) for spec in args.modules]
    print(f"{'request':<18}" + "".join(f"{name:>12}" for name, _ in modules) + "   (instructions per request)")
    for command in commands:
        costs = [(instructions(path, command, 21) - instructions(path, command, 1)) / 2000 for _, path in modules]
        print(f"{command:<18}" + "".join(f"{cost:>12.0f}" for cost in costs)
              + ("" if len(costs) < 2 else f"   ratio {costs[-1] / max(costs[0], 1):.2f}"), flush=True)


if __name__ == "__main__":
    main()
