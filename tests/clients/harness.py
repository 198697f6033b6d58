# SPDX-License-Identifier: MIT
"""Shared pieces of the client tests: a fake daemon per test (tests/clients/
fake_daemon.py, free ports, a temporary directory), running the C clients
with a deadline, and failing with one clear line."""
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
FAILURES = []


def check(cond, what):
    """Records a failed check (the test goes on, then exits 1)."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def finish(name):
    if FAILURES:
        print(f"{name}: {len(FAILURES)} check(s) failed: " + "; ".join(FAILURES))
        sys.exit(1)
    print(f"{name}: all checks passed")


class Fake:
    """Runs fake_daemon.py with extra args in tmpdir; .ep = bound endpoints."""

    def __init__(self, tmpdir, *args, log=True):
        self.ready = os.path.join(tmpdir, f"ready{time.monotonic_ns()}.json")
        self.log = os.path.join(tmpdir, f"fake{time.monotonic_ns()}.log") if log else None
        cmd = [PY, os.path.join(HERE, "fake_daemon.py"), "--ready", self.ready, *args]
        if self.log:
            cmd += ["--log", self.log]
        self.proc = subprocess.Popen(cmd)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake daemon did not start: {cmd}")
            time.sleep(0.02)
        with open(self.ready) as f:
            self.ep = json.load(f)

    def records(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(cmd, timeout=30, **kw):
    """Runs a client; returns CompletedProcess (text) with .elapsed."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        r = subprocess.CompletedProcess(cmd, -999, e.stdout or "", f"TIMEOUT after {timeout} s")
        if isinstance(r.stdout, bytes):
            r.stdout = r.stdout.decode(errors="replace")
    r.elapsed = time.monotonic() - t0
    return r


def free_endpoint():
    """A tcp endpoint nobody listens on (the port was free a moment ago)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


def tmpdir():
    """A temporary directory removed when the test exits."""
    d = tempfile.mkdtemp(prefix="ssmd-clients-")
    atexit.register(shutil.rmtree, d, True)
    return d


def write_wav_i16(path, data, rate):
    """data: int16 array (frames, channels), written with the stdlib wave module."""
    import wave
    import numpy as np
    data = np.asarray(data, np.int16)
    if data.ndim == 1:
        data = data[:, None]
    with wave.open(path, "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2").tobytes())


def read_wav(path):
    """(rate, float32 array (frames, channels)) of a WAV the clients wrote."""
    import numpy as np
    from scipy.io import wavfile
    rate, x = wavfile.read(path)
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    return rate, x


def wav_format_tag(path):
    """The wFormatTag of a RIFF WAV file's fmt chunk (1 PCM, 3 float, 0xFFFE
    EXTENSIBLE), or None when the file is not RIFF WAVE."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(head):
        cid, size = head[at:at + 4], int.from_bytes(head[at + 4:at + 8], "little")
        if cid == b"fmt ":
            return int.from_bytes(head[at + 8:at + 10], "little")
        at += 8 + size + (size & 1)
    return None


def read_au(path):
    """(rate, float32 array (frames, channels)) of a float AU file (Sun/NeXT:
    big-endian header .snd, offset, size, encoding 6 = float32, rate, channels)."""
    import struct
    import numpy as np
    with open(path, "rb") as f:
        b = f.read()
    magic, off, _, enc, rate, ch = struct.unpack(">4sIIIII", b[:24])
    assert magic == b".snd" and enc == 6, f"{path}: not a float AU file"
    return rate, np.frombuffer(b[off:], ">f4").astype(np.float32).reshape(-1, ch)


def rogue_messages():
    """Malformed data-plane messages (one per rejection rule a subscriber
    applies), then nothing else: [(why, frames)]."""
    import struct
    good_h = struct.pack("<4sHHHHIIIIIQQQQ", b"SSMD", 1, 64, 3, 1, 0, 16000, 1, 1, 256, 0, 0, 0, 0)
    pay = struct.pack("<f", 0.5)

    def h(**kw):
        f = dict(magic=b"SSMD", version=1, hb=64, kind=3, dtype=1, rows=1, cols=1)
        f.update(kw)
        return struct.pack("<4sHHHHIIIIIQQQQ", f["magic"], f["version"], f["hb"], f["kind"],
                           f["dtype"], 0, 16000, f["rows"], f["cols"], 256, 0, 0, 0, 0)
    return [
        ("two frames", [b"r/vad/", good_h]),
        ("four frames", [b"r/vad/", good_h, pay, b"x"]),
        ("bad topic", [b"r/nokind/", good_h, pay]),
        ("short header", [b"r/vad/", good_h[:40], pay]),
        ("bad magic", [b"r/vad/", h(magic=b"XXXX"), pay]),
        ("bad version", [b"r/vad/", h(version=9), pay]),
        ("bad length", [b"r/vad/", h(hb=200), pay]),
        ("bad kind", [b"r/vad/", h(kind=99), pay]),
        ("bad dtype", [b"r/vad/", h(dtype=9), pay]),
        ("bad size", [b"r/vad/", h(rows=1000), pay]),
        ("kind differs from topic", [b"r/audio/", good_h, pay]),
    ]


def rogue_valid():
    """One valid r/vad/ message, value 0.5, seq 0."""
    import struct
    return [b"r/vad/", struct.pack("<4sHHHHIIIIIQQQQ", b"SSMD", 1, 64, 3, 1, 0, 16000, 1, 1, 256,
                                   0, 0, 0, 0), struct.pack("<f", 0.5)]


def rogue_publisher(send_after_sub):
    """Binds an XPUB on a free port; a thread waits for the first
    subscription, then sends send_after_sub (list of frame lists).  Returns
    (endpoint, thread, context)."""
    import threading
    import zmq
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")

    def serve():
        if pub.poll(20000):
            pub.recv()
            time.sleep(0.05)
            for frames in send_after_sub:
                pub.send_multipart(frames)
        time.sleep(0.5)
        pub.close(0)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return f"tcp://127.0.0.1:{port}", t, ctx
