#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Python package (clients/python/ssmd) against the fake daemon:
Subscriber gets the scripted stream in order with the meta on subscribe and
detects drops; Pusher gets exact results back (also five at once) and raises
DaemonError on an error reply; Control runs every command incl. the
snapshot -> restore round trip and raises ControlError; an absent daemon
raises DaemonUnreachable / TimeoutError.  Usage: test_python.py"""
import os
import sys
import threading
import time

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Fake, check, finish, free_endpoint, rogue_messages,  # noqa: E402
                     rogue_publisher, rogue_valid, tmpdir)

import ssmd  # noqa: E402  (PYTHONPATH=clients/python)
from ssmd import Control, ControlError, DaemonError, DaemonUnreachable, Pusher, Subscriber  # noqa: E402

T = tmpdir()
FRAMES = 20

# 1. Subscriber: the whole scripted stream, in order
with Fake(T, "--frames", str(FRAMES)) as f:
    got = []
    with Subscriber(f.ep["pub"], timeout=5) as sub:
        for topic, h, v in sub:
            got.append((topic, h, v))
            if topic == "demo/event/" and isinstance(v, dict) and v.get("event") == "end":
                break
        check(sub.dropped == 0 and sub.malformed == 0, "sub: no drops, nothing malformed")
    log = f.records()
check(len(got) == len(log) == 3 + 3 * FRAMES, f"sub: {len(got)} messages for {len(log)} published")
check(bool(got) and got[0][0] == "demo/meta/" and isinstance(got[0][2], dict)
      and got[0][2]["stream"] == "demo" and got[0][2]["sample_rate_hz"] == 16000,
      "sub: the meta first, as a dict")
check([(t, h.seq, h.first_sample, h.flags) for t, h, _ in got] ==
      [(r["topic"], r["seq"], r["first_sample"], r["flags"]) for r in log],
      "sub: topics, seq, first_sample and flags as published")
worst = 0.0
for (t, h, v), r in zip(got, log):
    if "values" in r:
        e = np.array(r["values"], np.float32).reshape(h.rows, h.cols)
        worst = max(worst, float(np.max(np.abs(v - e))) if v.shape == e.shape else 1e9)
print(f"sub: worst |value - sent| {worst:.3g}")
check(worst == 0.0, "sub: arrays exact, shape (rows, cols)")

# 2. Subscriber: drop detection (seq 5 of demo/audio/ never sent), prefix topics
drops = []
with Fake(T, "--frames", str(FRAMES), "--drop-seq", "5") as f:
    with Subscriber(f.ep["pub"], ["demo/audio/", "demo/event/"], timeout=5,
                    on_drop=lambda *a: drops.append(a)) as sub:
        kinds = set()
        for topic, h, v in sub:
            kinds.add(topic)
            if topic == "demo/event/" and v.get("event") == "end":
                break
        check(sub.dropped == 1 and sub.gaps == [("demo/audio/", 5, 6)] and drops == sub.gaps,
              f"sub: drop detected ({sub.gaps})")
        check(kinds == {"demo/audio/", "demo/event/"}, f"sub: only the subscribed topics ({kinds})")

# 2a. malformed messages are counted and skipped
bad = rogue_messages()
ep, th, ctx = rogue_publisher([m for _, m in bad] + [rogue_valid()])
with Subscriber(ep, timeout=5) as sub:
    m = sub.recv(timeout=10)
    check(m is not None and m[0] == "r/vad/" and m[2].tolist() == [[0.5]]
          and sub.malformed == len(bad),
          f"sub: {sub.malformed} of {len(bad)} malformed messages skipped, then the valid one")
th.join(5)
ctx.term()

# 2b. a late subscriber gets the meta re-sent (data of other topics may come
#     first: the subscription filter is live before the daemon reads it)
with Fake(T, "--frames", "0", "--start", "now", "--interval", "0.01", log=False) as f:
    time.sleep(0.5)
    with Subscriber(f.ep["pub"], ["demo/meta/", "demo/features/"], timeout=5) as sub:
        msgs = [sub.recv(timeout=5) for _ in range(8)]
    metas = [m for m in msgs if m is not None and m[0] == "demo/meta/"]
    feats = [m for m in msgs if m is not None and m[0] == "demo/features/"]
    check(len(metas) == 1 and metas[0][1].seq >= 1 and metas[0][2]["features"]["n"] == 8,
          "sub: late subscriber gets the meta re-sent (seq >= 1), once")
    check(len(feats) == 7 and all(m[2].shape == (1, 8) for m in feats),
          "sub: and features of shape (1, 8)")

# 3. Pusher and Control against one fake
with Fake(T, "--start", "now", "--frames", "0", "--interval", "0.05") as f:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(12345, 2)).astype(np.float32)
    with Pusher(f.ep["ingest"], "py1") as p:
        for i in range(0, len(x), 1000):
            p.push(x[i:i + 1000], 16000)
        p.finish()
        y = p.collect(timeout=10)
    exp = ((x[:, 0] + x[:, 1]) * np.float32(0.5)) * np.float32(0.5)
    err = float(np.max(np.abs(y[:, 0] - exp))) if y.shape == (len(x), 1) else float("inf")
    print(f"push: {y.shape[0]} samples back for {len(x)}, worst error {err:.3g}")
    check(err == 0.0, "push: exact length and values (x0.5 of the mono mix)")

    # int16 samples travel as i16
    xi = rng.integers(-32768, 32768, size=3001).astype(np.int16)
    with Pusher(f.ep["ingest"], "py16") as p:
        p.push(xi[:1500], 16000)
        p.finish(xi[1500:], 16000)
        y = p.collect(timeout=10)
    exp = (xi.astype(np.float64) / 32768 * 0.5).astype(np.float32)
    err = float(np.max(np.abs(y[:, 0] - exp))) if y.shape == (len(xi), 1) else float("inf")
    print(f"push i16: {y.shape[0]} samples back for {len(xi)}, worst error {err:.3g}")
    check(err == 0.0, "push: int16 samples sent as i16, exact")

    # five at once, from threads (one Pusher per thread)
    results = {}

    def job(i):
        n = 2000 + 333 * i
        s = np.sin(np.arange(n) * 0.01 * (i + 1)).astype(np.float32)
        try:
            with Pusher(f.ep["ingest"], f"th{i}") as pp:
                pp.push(s[: n // 2], 8000)
                pp.finish(s[n // 2:], 8000)
                out = pp.collect(timeout=10)
            results[i] = float(np.max(np.abs(out[:, 0] - s * np.float32(0.5)))) \
                if out.shape == (n, 1) else float("inf")
        except Exception as e:  # reported below
            results[i] = repr(e)
    threads = [threading.Thread(target=job, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    print(f"push x5: worst errors {results}")
    check(len(results) == 5 and all(v == 0.0 for v in results.values()),
          "push: five pushers at once, all exact")

    # an error reply raises DaemonError
    try:
        with Pusher(f.ep["ingest"], "demo") as p:
            p.push(np.zeros(100, np.float32), 16000)
            p.finish()
            p.collect(timeout=5)
        check(False, "push: NAME_IN_USE raised")
    except DaemonError as e:
        check(e.code == "NAME_IN_USE" and e.stream == "demo", f"push: DaemonError {e}")
    try:
        Pusher(f.ep["ingest"], "bad/name")
        check(False, "push: bad stream name refused")
    except ssmd.ProtocolError:
        check(True, "push: bad stream name refused")

    with Control(f.ep["control"]) as c:
        st = c.status()
        check(st["ok"] and st["streams"] == 1 and "frames" in st["counters"], "ctl: status")
        check([s["name"] for s in c.streams()] == ["demo"], "ctl: streams")
        a = c.snapshot("demo")
        check(isinstance(a, bytes) and len(a) > 12, f"ctl: snapshot gives {len(a)} bytes")
        check(c.reset("demo")["ok"], "ctl: reset")
        check(c.snapshot("demo") != a, "ctl: reset changed the state")
        check(c.restore("demo", a)["ok"], "ctl: restore")
        check(c.snapshot("demo") == a, "ctl: snapshot -> restore round trip of the bytes")
        try:
            c.reset("nosuch")
            check(False, "ctl: NO_SUCH_STREAM raised")
        except ControlError as e:
            check(e.code == "NO_SUCH_STREAM", f"ctl: ControlError {e}")
        try:
            c.restore("demo", b"junk")
            check(False, "ctl: BAD_SNAPSHOT raised")
        except ControlError as e:
            check(e.code == "BAD_SNAPSHOT", f"ctl: ControlError {e}")
        check(c.stop()["ok"], "ctl: stop")
    try:
        f.proc.wait(5)
    except Exception:
        pass
    check(f.proc.poll() is not None, "ctl: the daemon exited after stop")

# 4. no daemon
ep = free_endpoint()
for cls, args in ((Subscriber, dict(connect_timeout=0.5)), (Pusher, dict(stream="x", connect_timeout=0.5)),
                  (Control, dict(timeout=0.5))):
    t0 = time.monotonic()
    try:
        cls(ep, **args)
        check(False, f"{cls.__name__}: DaemonUnreachable raised")
    except DaemonUnreachable as e:
        check(isinstance(e, TimeoutError) and time.monotonic() - t0 < 5,
              f"{cls.__name__}: no daemon -> {e}")

# 5. a daemon that never answers: Pusher.results and Control time out
ctx = zmq.Context()
sink = ctx.socket(zmq.ROUTER)
port = sink.bind_to_random_port("tcp://127.0.0.1")
with Pusher(f"tcp://127.0.0.1:{port}", "mute", timeout=0.5) as p:
    p.finish(np.zeros(10, np.float32), 16000)
    try:
        p.collect()
        check(False, "push: TimeoutError raised")
    except TimeoutError as e:
        check("no answer" in str(e), f"push: {e}")
with Control(f"tcp://127.0.0.1:{port}", timeout=0.5) as c:
    try:
        c.status()
        check(False, "ctl: TimeoutError raised")
    except TimeoutError as e:
        check("no reply" in str(e), f"ctl: {e}")
sink.close(0)
ctx.term()

finish("test_python")
