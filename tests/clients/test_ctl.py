#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ssm-ctl against the fake daemon: each command, the snapshot -> reset ->
restore round trip of the bytes, error replies (NO_SUCH_STREAM,
BAD_SNAPSHOT, SNAPSHOT_MISMATCH) printed with exit 1, stop ends the daemon.
Usage: test_ctl.py SSM_CTL"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fake, check, finish, run, tmpdir  # noqa: E402

CTL = sys.argv[1]
T = tmpdir()


def ctl(ep, *args):
    r = run([CTL, "-e", ep, "--timeout", "5", *args])
    try:
        r.reply = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        r.reply = None
    return r


def read(p):
    with open(p, "rb") as f:
        return f.read()


with Fake(T, "--start", "now", "--frames", "0", "--interval", "0.05") as f:
    ep = f.ep["control"]
    r = ctl(ep, "status")
    check(r.returncode == 0 and r.reply and r.reply["ok"] is True, f"status: ok, exit 0 ({r.stderr!r})")
    check(r.reply and set(r.reply["counters"]) >= {"frames", "bad_messages", "state_resets"}
          and r.reply["streams"] == 1, "status: counters and stream count")
    check(r.stdout.startswith("{\n  \""), "status: pretty-printed JSON")

    r = ctl(ep, "streams")
    check(r.returncode == 0 and r.reply and [s["name"] for s in r.reply["streams"]] == ["demo"],
          "streams: lists demo")

    a, b, c = (os.path.join(T, n) for n in ("a.snap", "b.snap", "c.snap"))
    r = ctl(ep, "snapshot", "--stream", "demo", "--file", a)
    check(r.returncode == 0 and os.path.exists(a) and r.reply["bytes"] == len(read(a)) > 12,
          f"snapshot: file written with the announced {r.reply and r.reply.get('bytes')} bytes")
    r = ctl(ep, "reset", "--stream", "demo")
    check(r.returncode == 0 and r.reply["ok"] is True, "reset: ok")
    ctl(ep, "snapshot", "--stream", "demo", "--file", b)
    check(read(b) != read(a), "reset: the state changed (snapshot after reset differs)")
    r = ctl(ep, "restore", "--stream", "demo", "--file", a)
    check(r.returncode == 0 and r.reply["ok"] is True, f"restore: ok ({r.stderr.strip()!r})")
    ctl(ep, "snapshot", "--stream", "demo", "--file", c)
    check(read(c) == read(a), f"snapshot -> restore -> snapshot: same {len(read(a))} bytes")

    r = ctl(ep, "reset", "--stream", "nosuch")
    check(r.returncode == 1 and "NO_SUCH_STREAM" in r.stderr and r.reply["ok"] is False,
          f"reset of an unknown stream: error printed, exit 1 ({r.stderr.strip()!r})")
    junk = os.path.join(T, "junk.snap")
    with open(junk, "wb") as fh:
        fh.write(b"not a snapshot at all")
    r = ctl(ep, "restore", "--stream", "demo", "--file", junk)
    check(r.returncode == 1 and "BAD_SNAPSHOT" in r.stderr, f"restore junk: {r.stderr.strip()!r}")
    other = os.path.join(T, "other.snap")
    snap = read(a)
    with open(other, "wb") as fh:
        fh.write(snap[:4] + struct.pack("<Q", 42) + snap[12:])
    r = ctl(ep, "restore", "--stream", "demo", "--file", other)
    check(r.returncode == 1 and "SNAPSHOT_MISMATCH" in r.stderr,
          f"restore another model's state: {r.stderr.strip()!r}")
    r = ctl(ep, "restore", "--stream", "demo", "--file", os.path.join(T, "missing.snap"))
    check(r.returncode == 1 and "missing.snap" in r.stderr and r.stderr.count("\n") == 1,
          f"restore a missing file: one line, exit 1 ({r.stderr.strip()!r})")
    r = ctl(ep, "snapshot", "--stream", "demo", "--file", os.path.join(T, "no", "dir.snap"))
    check(r.returncode == 1 and "cannot write" in r.stderr, f"snapshot to a bad path: {r.stderr.strip()!r}")

    r = ctl(ep, "stop")
    check(r.returncode == 0 and r.reply["ok"] is True, "stop: ok")
    try:
        f.proc.wait(5)
    except Exception:
        pass
    check(f.proc.poll() is not None, "stop: the daemon exited")

finish("test_ctl")
