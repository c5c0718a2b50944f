#!/usr/bin/env python3
"""Room chat fan-out against redis pub/sub, in alternating rounds: the same
`loadtest chat` (rooms of members, every message to every other member)
against the release gameserver and against redis-server, one after the
other, N times; the medians of deliveries per second and of their ratio.

    swift build -c release && python3 tools/chat-rounds.py --rounds 5
    python3 tools/chat-rounds.py --rounds 5 --server-args "--game-setting batch_hz=20"

Run it under the shared lock: flock -o /tmp/hotswap-build.lock python3 tools/chat-rounds.py
"""
import json
import os
import shlex
import statistics
import subprocess
import tempfile
import time

from benchlib import ROOT, arg_parser, free_port, start, wait_for

LOADTEST = os.path.join(ROOT, ".build", "release", "loadtest")


def chat(port: int, target: str, seconds: float, extra: list) -> float:
    out = tempfile.mktemp(suffix=".json")
    subprocess.run([LOADTEST, "chat", "--port", str(port), "--target", target, "--rooms", "20", "--members", "10",
                    "--pipeline", "4", "--duration", str(seconds), "--quiet", "--json", out] + extra,
                   check=False, stdout=subprocess.DEVNULL)
    report = json.load(open(out))
    os.unlink(out)
    return report["deliveries_per_second"]


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--server-args", default="", help="extra gameserver flags")
    options = parser.parse_args()
    proc, port, _ = start("--database", ":memory:", *shlex.split(options.server_args))
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
                              "--loglevel", "warning"], stdout=subprocess.DEVNULL)
    wait_for(redis_port)
    ours, theirs = [], []
    try:
        for round_index in range(options.rounds):
            ours.append(chat(port, "hotswap", options.seconds, []))
            theirs.append(chat(redis_port, "redis", options.seconds, []))
            print(f"round {round_index}: hotswap {ours[-1]:,.0f}/s  redis {theirs[-1]:,.0f}/s  "
                  f"ratio {ours[-1] / theirs[-1]:.2f}x", flush=True)
            time.sleep(1)
    finally:
        proc.send_signal(2)
        proc.wait()
        redis.terminate()
        redis.wait()
    ratios = [a / b for a, b in zip(ours, theirs)]
    print(f"MEDIANS of {options.rounds} alternating rounds: hotswap {statistics.median(ours):,.0f}/s  "
          f"redis {statistics.median(theirs):,.0f}/s  ratio {statistics.median(ratios):.2f}x "
          f"(rounds {[round(r, 2) for r in ratios]})")


if __name__ == "__main__":
    main()
