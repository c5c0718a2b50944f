#!/usr/bin/env python3
"""A bounded soak of the gameserver against hostile and well-behaved clients.

    swift build -c release && python3 tools/soak.py [--seconds 120] [--idle 3000] [--churn 400]

Starts a release server on loopback and, for --seconds, runs:
  - --good well-behaved players (logged in, in rooms) sending MOVE/LOOK/SAY/PING
    at a human pace and timing every reply;
  - --idle connections that connect and never send a byte (login timeout);
  - --churn concurrent misbehaving clients, each picking one misbehaviour,
    doing it and leaving: floods past the rate limit, over-long lines,
    invalid UTF-8 and control bytes, deaf readers in busy rooms, half-closes,
    resets in the middle of a write, and normal play followed by a quit.
Reports the server's resident memory at start, peak and end, the
well-behaved clients' latency percentiles and any error they saw, and the
server's own counters. Exits non-zero if a well-behaved client lost a reply
or a connection. Only loopback traffic; stops by itself.
"""
import asyncio
import random
import re
import socket
import time

from benchlib import admin_status, arg_parser, connect, percentile, raise_nofile, rss_kib, start, stop


class Soak:
    def __init__(self, args, port, admin_port, pid):
        self.args, self.port, self.admin_port, self.pid = args, port, admin_port, pid
        self.deadline = time.monotonic() + args.seconds
        self.latencies = []
        self.good_errors = []
        self.behaviours = {}
        self.peak_rss = 0

    async def open(self, **kwargs):
        return await asyncio.open_connection("127.0.0.1", self.port, **kwargs)

    async def good_player(self, index):
        reader, writer = await self.open()
        async def call(line):
            started = time.perf_counter()
            writer.write(line.encode() + b"\n")
            while True:
                reply = await asyncio.wait_for(reader.readline(), 5)
                if not reply:
                    raise ConnectionError("closed by server")
                if not reply.startswith(b">"):
                    self.latencies.append((time.perf_counter() - started) * 1e6)
                    return reply.decode().strip()
        try:
            await call(f"LOGIN good{index}")
            await call(f"JOIN arena{index % 10}")
            while time.monotonic() < self.deadline:
                reply = await call(random.choice(["MOVE N", "MOVE S", "MOVE E", "MOVE W", "LOOK", "PING", "SAY gg"]))
                if reply.startswith("-ERR") and not reply.startswith("-ERR BLOCKED"):
                    self.good_errors.append(reply)
                await asyncio.sleep(0.02)
        except Exception as error:  # a lost reply or a dropped connection
            self.good_errors.append(f"good{index}: {error!r}")
        writer.close()

    async def idle(self):
        try:
            reader, writer = await self.open()
            await asyncio.wait_for(reader.read(), self.args.seconds)
            writer.close()
            self.count("idle closed by server")
        except Exception:
            self.count("idle error")

    def count(self, name):
        self.behaviours[name] = self.behaviours.get(name, 0) + 1

    async def misbehave(self):
        kind = random.choice(["flood", "long line", "bad bytes", "deaf", "half close", "reset", "play and quit"])
        self.count(kind)
        try:
            if kind == "reset":
                sock = connect(self.port)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                try:
                    sock.send(b"LOGIN r%d\nJOIN arena0\n" % random.randrange(1 << 30) + b"LOOK\n" * 2000)
                except BlockingIOError:
                    pass
                await asyncio.sleep(0.05)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
                return
            reader, writer = await self.open()
            if kind == "flood":
                writer.write(b"PING\n" * 5000)
            elif kind == "long line":
                writer.write(b"SAY " + b"x" * 100_000 + b"\n")
            elif kind == "bad bytes":
                writer.write(b"LOGIN \xff\xfe\nSAY \x1b[2J\x00\x07\nLOGIN a\x00b\n\n   \n")
            elif kind == "deaf":
                name = f"deaf{random.randrange(1 << 30)}"
                writer.write(f"LOGIN {name}\nJOIN arena{random.randrange(10)}\n".encode())
                await asyncio.sleep(random.uniform(1, 5))  # never reads while the room talks
            elif kind == "half close":
                writer.write(b"PING\nHELP\n")
                writer.write_eof()
            else:
                name = f"p{random.randrange(1 << 30)}"
                writer.write(f"LOGIN {name}\nJOIN lobby{random.randrange(50)}\nMOVE N\nLOOK\nSAY hi\nQUIT\n".encode())
            if kind != "deaf":
                await asyncio.wait_for(reader.read(), 10)
            writer.close()
        except Exception:
            pass

    async def churn(self):
        while time.monotonic() < self.deadline:
            await self.misbehave()

    async def watch_memory(self):
        while time.monotonic() < self.deadline + 5:
            self.peak_rss = max(self.peak_rss, rss_kib(self.pid))
            await asyncio.sleep(0.5)

    async def run(self):
        tasks = [asyncio.create_task(self.good_player(i)) for i in range(self.args.good)]
        tasks += [asyncio.create_task(self.idle()) for _ in range(self.args.idle)]
        tasks += [asyncio.create_task(self.churn()) for _ in range(self.args.churn)]
        tasks.append(asyncio.create_task(self.watch_memory()))
        await asyncio.gather(*tasks)


def main():
    parser = arg_parser(__doc__)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--good", type=int, default=50)
    parser.add_argument("--idle", type=int, default=3000)
    parser.add_argument("--churn", type=int, default=400)
    args = parser.parse_args()
    raise_nofile()

    server, game_port, admin_port = start("--login-timeout", "10", "--max-output-bytes", "262144")
    ports = {"game": game_port, "admin": admin_port}
    try:
        start_rss = rss_kib(server.pid)
        soak = Soak(args, ports["game"], ports["admin"], server.pid)
        asyncio.run(soak.run())
        time.sleep(3)  # let lingering connections finish
        end_rss = rss_kib(server.pid)
        status = admin_status(ports["admin"])
        counters = " ".join(part for part in status.split() if re.match(
            r"(sessions|connections|line_too_long|server_full|output_overflows|rate_limited|rate_limit_closes|idle_closes)=", part))
        print(f"duration                 {args.seconds} s, {args.good} good players, {args.idle} idle, {args.churn} churning")
        print(f"misbehaviours           ", " ".join(f"{k}={v}" for k, v in sorted(soak.behaviours.items())))
        print(f"server RSS               start {start_rss} KiB, peak {soak.peak_rss} KiB, end {end_rss} KiB")
        print(f"good replies             {len(soak.latencies)}")
        if soak.latencies:
            print(f"good latency (us)        p50 {percentile(soak.latencies, 0.5):.0f}  p99 {percentile(soak.latencies, 0.99):.0f}"
                  f"  max {max(soak.latencies):.0f}")
        print(f"good errors              {len(soak.good_errors)} {soak.good_errors[:3]}")
        print(f"server counters          {counters}")
        raise SystemExit(1 if soak.good_errors else 0)
    finally:
        stop(server, 15)


if __name__ == "__main__":
    main()
