# SPDX-License-Identifier: MIT
"""A hostile subscriber for tests/daemon/test_server.py: connects to a ZeroMQ
PUB/XPUB endpoint speaking raw ZMTP 3.0 (RFC 23) as a SUB socket, announces one
subscription message of SIZE bytes and streams SEND bytes of it, then waits.
(A real XSUB socket cannot send one: libzmq inserts it into its own trie first.)

  zmtp_oversize.py HOST PORT SIZE SEND [WAIT_S]"""
import socket, struct, sys, time
host, port, size, send = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection((host, port))
greet = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
s.sendall(greet)
got = b""
while len(got) < 64:
    got += s.recv(64 - len(got))
body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 3) + b"SUB"
s.sendall(bytes([0x04, len(body)]) + body)
s.sendall(bytes([0x02]) + struct.pack(">Q", size) + b"\x01")
chunk = b"a" * (1 << 20)
sent = 1
try:
    while sent < send:
        s.sendall(chunk)
        sent += len(chunk)
except OSError as e:
    print(f"attacker: connection closed after {sent >> 20} MiB ({e})", flush=True)
else:
    print(f"attacker: sent {sent >> 20} MiB, connection still open", flush=True)
time.sleep(float(sys.argv[5]) if len(sys.argv) > 5 else 2)
