#!/usr/bin/env python3
"""A tiny line client for the game or admin port (docs/WRITING-GAMES.md).

    tools/say.py PORT LINE...     sends each line, prints the lines that
                                  came back up to its reply (+... or -...)
    tools/say.py PORT -           the same for each line read from stdin,
                                  on one connection kept open until EOF

Events (>...) that arrive before a reply are printed too. Exits 1 when a
reply is an -ERR, 2 when the server cannot be reached or does not answer.
"""
import socket
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    port = int(sys.argv[1])
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as error:
        print(f"say: cannot connect to 127.0.0.1:{port}: {error}", file=sys.stderr)
        return 2
    reader = conn.makefile("rb")
    lines = sys.stdin if sys.argv[2:] == ["-"] else sys.argv[2:]
    failed = False
    for line in lines:
        line = line.rstrip("\r\n")
        conn.sendall(line.encode() + b"\r\n")
        while True:
            try:
                got = reader.readline()
            except OSError:
                got = b""
            if not got:
                print(f"say: no reply to {line!r}", file=sys.stderr)
                return 2
            text = got.decode(errors="replace").rstrip("\r\n")
            print(text, flush=True)
            if text[:1] in ("+", "-"):
                failed |= text.startswith("-")
                break
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
