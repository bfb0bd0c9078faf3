#!/usr/bin/env python3
"""Receives COUNT datagrams on an AF_UNIX SOCK_DGRAM socket (a path, or an
abstract name starting with '@'), prints "ready" once bound, then one line per
datagram: its bytes in hex. Exits 2 if nothing arrives within TIMEOUT seconds."""
import socket
import sys

address, count = sys.argv[1], int(sys.argv[2])
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
print("ready", flush=True)
sock.settimeout(timeout)
try:
    for _ in range(count):
        print(sock.recv(1 << 20).hex(), flush=True)
except socket.timeout:
    print(f"timeout after {timeout}s", file=sys.stderr, flush=True)
    sys.exit(2)
