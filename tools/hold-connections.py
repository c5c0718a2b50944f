#!/usr/bin/env python3
"""Opens N idle TCP connections to HOST:PORT and holds them until stdin closes.

    python3 tools/hold-connections.py 10000 127.0.0.1 7777

Prints "ready N" once all are connected (used by tools/bench.sh to measure
memory per idle connection and to load a server with sessions).
"""
import sys

from benchlib import arg_parser, connect, raise_nofile

parser = arg_parser(__doc__)
parser.add_argument("count", type=int, help="connections to open")
parser.add_argument("host")
parser.add_argument("port", type=int)
args = parser.parse_args()
raise_nofile()
held = []
for _ in range(args.count):
    held.append(connect(args.port, host=args.host))
print(f"ready {len(held)}", flush=True)
sys.stdin.read()
