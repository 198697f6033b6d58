#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""clients/python/examples/live_spectrogram.py draws a PNG headless from the
fake daemon's features/ and vad/ topics; and fails clearly with no daemon.
Usage: test_example.py live_spectrogram.py"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PY, Fake, check, finish, free_endpoint, run, tmpdir  # noqa: E402

EXAMPLE = sys.argv[1]
T = tmpdir()
png = os.path.join(T, "spec.png")
env = dict(os.environ, MPLBACKEND="Agg")
with Fake(T, "--start", "now", "--frames", "0", "--interval", "0.005", "--n-features", "40",
          log=False) as f:
    r = run([PY, EXAMPLE, "--endpoint", f.ep["pub"], "--stream", "demo", "--save", png,
             "--seconds", "1.5"], timeout=120, env=env)
check(r.returncode == 0, f"example: exit 0 ({r.stdout.strip()!r} {r.stderr.strip()[-300:]!r})")
data = open(png, "rb").read() if os.path.exists(png) else b""
ok = data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
w, h = struct.unpack(">II", data[16:24]) if ok else (0, 0)
print(f"example: {len(data)} bytes, {w} x {h} pixels")
check(ok and len(data) > 10000 and w >= 500 and h >= 300,
      "example: a valid PNG of non-trivial size")

r = run([PY, EXAMPLE, "--endpoint", free_endpoint(), "--stream", "demo", "--save", png,
         "--timeout", "0.5"], timeout=60, env=env)
check(r.returncode == 1 and "no connection" in r.stderr,
      f"example, no daemon: exit 1 ({r.stderr.strip()!r})")
finish("test_example")
