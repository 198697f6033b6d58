# SPDX-License-Identifier: MIT
"""The daemon under concurrent clients, for the ThreadSanitizer build
(.ci/run's TSan pass; registered only when b_sanitize=thread): 36 pushing
clients at once (so batches of 32 or more streams are split over the step
workers, --threads 2), 3 subscribers, control requests and a SIGHUP while
they run.  Passes when every pushed sample comes back, every subscriber
receives (a subscriber behind by pub_hwm messages loses some: counted,
not failed; contiguity is bench/soak.py's check), the daemon exits 0 on
SIGTERM and its stderr holds no ThreadSanitizer report (tests/tsan.supp
holds the libzmq hand-offs TSan cannot see).
Usage: tsan_daemon.py SSMD MODEL"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
from ssmd.pusher import Pusher  # noqa: E402
from ssmd.subscriber import Subscriber  # noqa: E402

SSMD, MODEL = sys.argv[1], sys.argv[2]  # or --sub PUB: one subscriber process
RATE, SECONDS, CLIENTS = 16000, 2.0, 36


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subscriber(pub):
    """Counts messages and seq gaps until a line arrives on stdin."""
    sub = Subscriber(pub, ["c"], connect_timeout=30)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    n = 0
    while not stop.is_set():
        if sub.recv(timeout=0.2) is not None:
            n += 1
    print(n, sub.dropped, flush=True)


def main():
    pub, ingest, control = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    err = tempfile.TemporaryFile(mode="w+")
    env = dict(os.environ)
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tsan.supp")
    env.setdefault("TSAN_OPTIONS", f"halt_on_error=0:second_deadlock_stack=1:suppressions={supp}")
    d = subprocess.Popen([SSMD, "--model", MODEL, "--input", "none", "--pub", pub, "--ingest", ingest,
                          "--control", control, "--max-streams", "64", "--threads", "2",
                          "--log-level", "warn"], stderr=err, env=env)
    ctx = zmq.Context.instance()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(control)

    def ctl(cmd):
        req.send(json.dumps({"version": 1, "cmd": cmd}).encode())
        if not req.poll(60000):
            raise SystemExit(f"tsan_daemon: no answer to {cmd}")
        return json.loads(req.recv())

    ctl("status")
    # subscribers in processes of their own (in this one the pushers' threads
    # would starve them of the GIL)
    subs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sub", pub], stdout=subprocess.PIPE,
                             stdin=subprocess.PIPE, text=True) for _ in range(3)]
    for p in subs:
        p.stdout.readline()  # "ready"
    time.sleep(0.5)
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal(int(SECONDS * RATE))).astype(np.float32)
    results = [None] * CLIENTS
    go = threading.Barrier(CLIENTS)

    def client(i):
        try:
            p = Pusher(ingest, f"c{i}", timeout=120, connect_timeout=30)
            go.wait()
            for o in range(0, len(x), RATE // 4):
                p.push(x[o:o + RATE // 4], RATE)
            p.finish()
            results[i] = len(p.collect())
            p.close()
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = repr(e)

    pushers = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in pushers:
        t.start()
    time.sleep(1.0)
    d.send_signal(signal.SIGHUP)
    streams_seen = 0
    while any(t.is_alive() for t in pushers):
        streams_seen = max(streams_seen, ctl("status")["streams"])
        time.sleep(0.2)
    for t in pushers:
        t.join()
    time.sleep(1.0)
    sub_counts, gaps = [], []
    for p in subs:
        got, lost = p.communicate("stop\n", timeout=120)[0].split()
        sub_counts.append(int(got))
        gaps.append(int(lost))
    req.close()
    d.send_signal(signal.SIGTERM)
    rc = d.wait(timeout=60)
    err.seek(0)
    text = err.read()
    reports = text.count("WARNING: ThreadSanitizer")
    ok = (all(r == len(x) for r in results) and rc == 0 and reports == 0
          and min(sub_counts) > 0)
    print(f"tsan_daemon: {CLIENTS} pushers, {sum(r for r in results if isinstance(r, int))} of "
          f"{CLIENTS * len(x)} samples back, at most {streams_seen} streams at once, subscribers got "
          f"{sub_counts} messages with {gaps} lost, exit {rc}, {reports} ThreadSanitizer reports")
    if not ok:
        bad = [r for r in results if r != len(x)][:5]
        print("failures:", bad, "\n" + text[-20000:])
        sys.exit(1)


if sys.argv[1] == "--sub":
    subscriber(sys.argv[2])
else:
    main()
