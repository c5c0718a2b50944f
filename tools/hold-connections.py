#!/usr/bin/env python3
"""Opens N idle TCP connections to HOST:PORT and holds them until stdin closes.

    python3 tools/hold-connections.py 10000 127.0.0.1 7777

Prints "ready N" once all are connected (used by tools/bench.sh to measure
memory per idle connection and to load a server with sessions).
"""
import resource
import socket
import sys

count, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(count):
    held.append(socket.create_connection((host, port)))
print(f"ready {len(held)}", flush=True)
sys.stdin.read()
