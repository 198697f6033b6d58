#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every client socket that reads from the daemon caps the frames it accepts
(ZMQ_MAXMSGSIZE = SSMD_CLIENT_MAX_FRAME_BYTES, 64 MiB, docs/reliability.md):
a hostile endpoint speaking raw ZMTP 3.0 (RFC 23) as a PUB or ROUTER announces
one frame of 1 GiB and streams 256 MiB of it.  Each client (ssm-sub, ssm-push,
ssm-ctl, the Python Subscriber, Pusher and Control) must drop the connection
early (within the kernel's buffers, under 64 MiB) instead of reading it.
Before the caps the clients read all 256 MiB.
Usage: test_hostile_daemon.py SSM_SUB SSM_PUSH SSM_CTL"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, tmpdir, write_wav_i16  # noqa: E402

SUB, PUSH, CTL = sys.argv[1:4]
ANNOUNCED = 1 << 30
SEND = 256 << 20
T = tmpdir()
wav = os.path.join(T, "ok.wav")
write_wav_i16(wav, [[0]] * 16000, 16000)


def rss_kb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


class Hostile:
    """Accepts one connection on a free port as socket type `stype` (b"PUB" or
    b"ROUTER"), then sends a frame header announcing ANNOUNCED bytes and streams
    up to SEND bytes of it.  .sent: bytes sent when the peer closed (or SEND)."""

    def __init__(self, stype):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.ep = f"tcp://127.0.0.1:{self.srv.getsockname()[1]}"
        self.stype, self.sent, self.closed = stype, 0, False
        self.th = threading.Thread(target=self._serve, daemon=True)
        self.th.start()

    def _serve(self):
        c, _ = self.srv.accept()
        c.settimeout(20)
        try:
            c.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") +
                      b"\x00" + b"\x00" * 31)
            got = b""
            while len(got) < 64:
                got += c.recv(64 - len(got))
            body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(self.stype)) + self.stype
            c.sendall(bytes([0x04, len(body)]) + body)
            c.sendall(bytes([0x02]) + struct.pack(">Q", ANNOUNCED))
            chunk = b"a" * (1 << 20)
            while self.sent < SEND:
                c.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            self.closed = True
        finally:
            c.close()
            self.srv.close()

    def wait(self, timeout=20):
        self.th.join(timeout)
        return self.closed


def judge(name, h, grew_kb=None):
    closed = h.wait()
    extra = f" (this process's resident memory grew {grew_kb} kB)" if grew_kb is not None else ""
    what = f"connection dropped after {h.sent >> 20} MiB" if closed else f"all {h.sent >> 20} MiB read"
    check(closed and h.sent < 64 << 20,
          f"{name}: a 1 GiB frame from a hostile daemon: {what} of {SEND >> 20} MiB{extra}")


# the C clients
for name, stype, cmd in (
        ("ssm-sub", b"PUB", lambda ep: [SUB, "-e", ep, "-q", "-s", "4"]),
        ("ssm-push", b"ROUTER", lambda ep: [PUSH, "-e", ep, "-s", "x", "-t", "4", wav]),
        ("ssm-ctl", b"ROUTER", lambda ep: [CTL, "-e", ep, "-t", "4", "status"])):
    h = Hostile(stype)
    p = subprocess.Popen(cmd(h.ep), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    judge(name, h)
    p.kill()
    p.wait()

# the Python clients (in this process)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
from ssmd import Control, Pusher, Subscriber  # noqa: E402

for name, stype, make in (("Python Subscriber", b"PUB", lambda ep: Subscriber(ep, ["x/"])),
                          ("Python Pusher", b"ROUTER", lambda ep: Pusher(ep, "x")),
                          ("Python Control", b"ROUTER", lambda ep: Control(ep))):
    h = Hostile(stype)
    before = rss_kb()
    client = make(h.ep)
    h.wait()
    time.sleep(0.2)
    grew = rss_kb() - before
    client.close()
    judge(name, h, grew)

finish("clients_hostile_daemon")
