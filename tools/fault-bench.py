#!/usr/bin/env python3
"""What a contained fault costs: time and resident memory.

    swift build -c release && python3 tools/fault-bench.py [--faults 10000]

For the C fixture (FAULT null: a NULL write) and the Swift fixture (FAULT
fatal: fatalError), it starts a release server with that module, logs a
player in, sends --faults faulting requests pipelined 100 at a time, and
reports the time per contained fault (each is answered -ERR INTERNAL and
undone) and the growth of the server's resident memory per fault: what the
abandoned module frames held (a jump out of a frame releases nothing)."""
import time

from benchlib import RELEASE, arg_parser, connect, rss_kib, start, stop

KINDS = (("FaultyModule", "null"), ("FaultySwiftModule", "fatal"), ("FaultySwiftModule", "index"))


def lines(sock, buffer, count):
    got = []
    while len(got) < count:
        while b"\n" not in buffer[0]:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("server closed the connection")
            buffer[0] += chunk
        line, buffer[0] = buffer[0].split(b"\n", 1)
        got.append(line.rstrip(b"\r").decode())
    return got


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--faults", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{'module':<18} {'fault':<7} {'faults':>7} {'us/fault':>9} {'RSS before':>11} {'RSS after':>10} {'bytes/fault':>12}")
    for module, kind in KINDS:
        server, port, _ = start("--rate-limit", "0", "--log-level", "critical",
                                "--module", f"{RELEASE}/lib{module}.so")
        try:
            sock = connect(port)
            buffer = [b""]
            sock.sendall(b"LOGIN bench\r\nJOIN r\r\nSET 5\r\n")
            lines(sock, buffer, 3)
            # Warm up: the first faults map the unwinder and fill caches.
            sock.sendall(f"FAULT {kind}\r\n".encode() * 100)
            lines(sock, buffer, 100)
            before = rss_kib(server.pid)
            started = time.perf_counter()
            batch = f"FAULT {kind}\r\n".encode() * 100
            for _ in range(args.faults // 100):
                sock.sendall(batch)
                replies = lines(sock, buffer, 100)
                if not all(reply.startswith("-ERR INTERNAL") for reply in replies):
                    raise SystemExit(f"unexpected reply: {replies[0]}")
            elapsed = time.perf_counter() - started
            after = rss_kib(server.pid)
            sock.sendall(b"GET\r\n")
            assert lines(sock, buffer, 1) == ["+VALUE 5"]
            print(f"{module:<18} {kind:<7} {args.faults:>7} {elapsed * 1e6 / args.faults:>9.1f} {before:>8} KiB "
                  f"{after:>6} KiB {(after - before) * 1024 / args.faults:>12.1f}")
        finally:
            stop(server)


if __name__ == "__main__":
    main()
