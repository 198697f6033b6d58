# SPDX-License-Identifier: MIT
"""A member of an ssmd cluster killed mid-stream (docs/cluster.md, "Clients
across a failover"): how long its streams are without output, what the
checkpoints cost, and whether every output is still the uninterrupted one.

  /usr/bin/python3 bench/cluster_failover.py SSMD [MODEL] [--members 3] [--streams 300]
      [--ttl 4] [--period 1] [--seconds 12] [--kill-at 5] [--signal KILL|TERM]
      [--ssmd-args "..."] [--keep DIR]

It starts etcd on loopback (a temporary data dir, random free ports) and
MEMBERS ssmd daemons with --cluster, --cluster-ttl-s TTL and --checkpoint-s
PERIOD (as tests/cluster/test_cluster.py does), then pushes STREAMS streams
of SECONDS seconds each with the Python ClusterPusher (clients/python/ssmd/
cluster.py), paced at real time in 100 ms messages from one thread, every
result read.  KILL-AT seconds after the start it sends SIGNAL to the member
that owns the most streams (KILL: a crash; TERM: a clean stop).  The
reference is each signal pushed whole to one standalone daemon (no
--cluster).  One JSON line (bench/machine.py adds the CPU model, caches,
load average):
  streams, members, ttl_s, checkpoint_s, rate_hz, seconds
  lost_streams                  the streams of the killed member
  recovery_s {min,median,p90,max}   per lost stream: from the signal to its
                                first output sample beyond what had come
                                back before (ClusterPusher.failovers' t_output)
  attached_s {min,median,max}   from the signal to the new owner's meta
  member_gone_s                 from the signal until a survivor's member
                                list no longer has the killed member
  checkpoint_bytes              the size of one checkpoint
  checkpoint_bps_per_stream, checkpoint_bps_total   bytes stored per second
                                (all members' `cluster` counters over the
                                window before the signal), per stream and in all
  checkpoints_per_s, superseded, failed
  replayed_samples {min,max}    input kept and sent again to the new owner
  bit_identical                 every stream's output == the standalone
                                daemon's, bit for bit (false when any differs
                                or did not finish; errors says why)
  claim_s                       the time every stream took to be claimed (the clock starts then)
  round_max_s                   the longest round of the pushing thread over every stream
                                (pushes are due every 0.1 s: more means the client lagged)
Never asserts a time; exits 1 only when it could not run.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
sys.path.insert(0, HERE)
import machine  # noqa: E402  (bench/machine.py)
from ssmd import Control, Pusher  # noqa: E402
from ssmd.cluster import ClusterPusher, Directory, hrw_pick  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout, what, step=0.1):
    t0 = time.time()
    while True:
        try:
            if fn():
                return
        except Exception:
            pass
        if time.time() - t0 > timeout:
            sys.exit(f"cluster_failover: {what}: not within {timeout} s")
        time.sleep(step)


def signals(k, n, rate):
    """k different test signals of n samples (tones and noise, as tests/cluster's)."""
    t = np.arange(n) / rate
    out = []
    for i in range(k):
        rng = np.random.default_rng(100 + i)
        x = 0.2 * np.sin(2 * np.pi * 110 * (i + 1) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * (0.7 + 0.3 * i) * t))
        out.append((x + 0.02 * rng.standard_normal(n)).astype("<f4"))
    return out


def stats(v, keys=("min", "median", "p90", "max")):
    if not v:
        return None
    v = sorted(v)
    f = {"min": v[0], "median": v[len(v) // 2], "p90": v[min(len(v) - 1, int(len(v) * 0.9))], "max": v[-1]}
    return {k: round(f[k], 2) for k in keys}


class Daemon:
    def __init__(self, ssmd, tmp, name, args):
        self.ports = [free_port() for _ in range(3)]
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{p}" for p in self.ports)
        self.log = open(os.path.join(tmp, f"{name}.log"), "ab")
        self.proc = subprocess.Popen([ssmd, "--pub", self.pub, "--ingest", self.ingest, "--control", self.control,
                                      "--log-level", "info", *args], stderr=self.log,
                                     env=dict(os.environ, HOME=tmp))
        self.ctl = Control(self.control, timeout=5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def reference(ssmd, model, tmp, sigs, rate):
    """Each signal pushed whole to one standalone daemon: the uninterrupted outputs."""
    d = Daemon(ssmd, tmp, "standalone", ["--model", model] if model else [])
    try:
        outs = []
        for i, x in enumerate(sigs):
            with Pusher(d.ingest, f"ref{i}", timeout=60) as p:
                p.push(x, rate)
                p.finish()
                outs.append(p.collect()[:, 0].copy())
        return outs
    finally:
        d.stop()


def model_rate(ssmd, model, tmp):
    d = Daemon(ssmd, tmp, "probe", ["--model", model] if model else [])
    try:
        with Pusher(d.ingest, "probe", timeout=60) as p:
            p.push(np.zeros(480, np.float32), 48000)
            p.finish()
            p.collect()
            return p.meta["model_rate_hz"]
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ssmd")
    ap.add_argument("model", nargs="?", default="")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--streams", type=int, default=300)
    ap.add_argument("--ttl", type=int, default=4)
    ap.add_argument("--period", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--kill-at", type=float, default=5.0)
    ap.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    ap.add_argument("--ssmd-args", default="")
    ap.add_argument("--keep", default="", help="copy the daemons' and etcd's logs to this directory")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("cluster_failover: terminated"))  # clean up below
    etcd_bin = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(etcd_bin, os.X_OK):
        sys.exit("cluster_failover: no etcd binary (Debian etcd-server; scripts/setup.sh installs it)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8 * a.streams + 256:  # a socket, its monitor and their mailboxes per pusher
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * a.streams + 256), hard))
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 4 * a.streams + 64)
    tmp = tempfile.mkdtemp(prefix="ssmd-failover-bench-")
    etcd = None
    members = {}
    pushers = []
    try:
        rate = model_rate(a.ssmd, a.model, tmp)
        n = int(a.seconds * rate)
        chunk = rate // 10
        kinds = 8
        sigs = signals(kinds, n, rate)
        t_ref = time.time()
        refs = reference(a.ssmd, a.model, tmp, sigs, rate)
        t_ref = time.time() - t_ref

        cport, pport = free_port(), free_port()
        c, p = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
        elog = open(os.path.join(tmp, "etcd.log"), "ab")
        etcd = subprocess.Popen([etcd_bin, "--name", "b", "--data-dir", os.path.join(tmp, "etcd"),
                                 "--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls", p,
                                 "--initial-advertise-peer-urls", p, "--initial-cluster", f"b={p}"],
                                stdout=elog, stderr=subprocess.STDOUT)
        wait_for(lambda: json.load(urllib.request.urlopen(f"{c}/health", timeout=1)).get("health") == "true",
                 30, "etcd answering")
        url = f"etcd://127.0.0.1:{cport}"
        nodes = [f"m{i + 1}" for i in range(a.members)]
        for nd in nodes:
            members[nd] = Daemon(a.ssmd, tmp, nd, (["--model", a.model] if a.model else []) + [
                "--cluster", url, "--node", nd, "--cluster-ttl-s", str(a.ttl), "--checkpoint-s", str(a.period),
                "--max-streams", str(a.streams + 16), *a.ssmd_args.split()])
        for d in members.values():
            wait_for(lambda: sorted(m["node"] for m in d.ctl.cluster()["members"]) == nodes, 60,
                     "every member listed")

        directory = Directory(url)
        names = [f"fo{i:03d}" for i in range(a.streams)]
        pushers = [ClusterPusher(directory, nm, timeout=10, failover_timeout=60, context=ctx) for nm in names]
        placed = {nm: hrw_pick(nm, nodes) for nm in names}
        victim = max(nodes, key=lambda nd: sum(1 for nm in names if placed[nm] == nd))
        survivor = next(nd for nd in nodes if nd != victim)
        lost = [q for q in pushers if placed[q.stream] == victim]
        errors = {}
        live = list(pushers)

        def counters():
            tot = {"stored": 0, "bytes": 0, "superseded": 0, "failed": 0}
            for nd, d in members.items():
                if nd == victim and t_kill is not None:
                    continue
                ck = d.ctl.cluster()["checkpoints"]
                for k in tot:
                    tot[k] += ck[k]
            return time.monotonic(), tot

        # every stream claimed first (a claim is one to three etcd round trips on its owner's
        # loop thread: 300 at once take seconds), then the real-time clock starts
        for i, q in enumerate(pushers):
            q.push(sigs[i % kinds][:chunk], rate, block=False)
        t_claim = time.monotonic()
        while not all(q.meta for q in pushers) and time.monotonic() - t_claim < 120:
            for q in pushers:
                q.pump()
            time.sleep(0.01)
        t_claim = time.monotonic() - t_claim
        t_kill = None
        window = []      # (t, counters) at 1/4 of the time before the signal, and just before it
        member_gone = None
        behind = 0.0
        t0 = time.monotonic() - chunk / rate
        deadline = t0 + a.seconds + a.ttl + 90
        while live and time.monotonic() < deadline:
            now = time.monotonic()
            upto = min(n, int((now - t0) * rate) // chunk * chunk)
            for q in list(live):
                i = int(q.stream[2:])
                try:
                    if not q.finished and q.pushed < upto:
                        if upto == n:
                            q.finish(sigs[i % kinds][q.pushed:n], rate, block=False)
                        else:
                            q.push(sigs[i % kinds][q.pushed:upto], rate, block=False)
                    else:
                        q.pump()
                except Exception as e:  # a stream the cluster could not continue: reported, not fatal
                    errors[q.stream] = f"{type(e).__name__}: {e}"
                    live.remove(q)
                    continue
                if q.ended:
                    live.remove(q)
            behind = max(behind, time.monotonic() - now)  # one round over every stream
            if t_kill is None and not window and now - t0 >= a.kill_at / 4:
                window.append(counters())
            if t_kill is None and now - t0 >= a.kill_at:
                window.append(counters())
                os.kill(members[victim].proc.pid, getattr(signal, "SIG" + a.signal))
                t_kill = time.monotonic()
            if t_kill is not None and member_gone is None:
                try:
                    if victim not in [m["node"] for m in members[survivor].ctl.cluster()["members"]]:
                        member_gone = time.monotonic() - t_kill
                except Exception:
                    pass
            time.sleep(0.005)
        for q in live:
            errors.setdefault(q.stream, f"not ended within the run ({q.received} of {q.pushed} samples back)")
        members[victim].proc.wait(30)

        same = 0
        for i, q in enumerate(pushers):
            if q.stream in errors:
                continue
            y, want = q.output()[:, 0], refs[i % kinds]
            if len(y) == len(want) and np.array_equal(y.view("<u4"), want.view("<u4")):
                same += 1
            else:
                errors[q.stream] = f"output differs ({len(y)} samples, {len(want)} wanted)"
        fos = [q.failovers[0] for q in lost if q.failovers]
        rec = [f["t_output"] - t_kill for f in fos if f["t_output"]]
        att = [f["t_attached"] - t_kill for f in fos if f.get("t_attached")]
        (ta, ca), (tb, cb) = window
        dt = tb - ta
        stored = cb["stored"] - ca["stored"]
        bps = (cb["bytes"] - ca["bytes"]) / dt
        ckb = round((cb["bytes"] - ca["bytes"]) / stored) if stored else None
        out = dict(bench="cluster_failover", model=os.path.basename(a.model) or "default", signal=a.signal,
                   streams=a.streams, members=a.members, ttl_s=a.ttl, checkpoint_s=a.period, rate_hz=rate,
                   seconds=a.seconds, kill_at_s=a.kill_at, victim=victim, lost_streams=len(lost),
                   resumed_streams=sum(1 for f in fos if f.get("resumed")),
                   recovery_s=stats(rec), attached_s=stats(att, ("min", "median", "max")),
                   member_gone_s=round(member_gone, 2) if member_gone is not None else None,
                   checkpoint_bytes=ckb, checkpoint_window_s=round(dt, 2),
                   checkpoints_per_s=round(stored / dt, 1),
                   checkpoint_bps_per_stream=round(bps / a.streams), checkpoint_bps_total=round(bps),
                   superseded=cb["superseded"] - ca["superseded"], failed=cb["failed"] - ca["failed"],
                   replayed_samples={"min": min(f["replayed"] for f in fos), "max": max(f["replayed"] for f in fos)}
                   if fos else None,
                   bit_identical=same == a.streams and not errors, identical_streams=same,
                   errors=len(errors), error=next(iter(errors.items()), None),
                   round_max_s=round(behind, 3), claim_s=round(t_claim, 1), reference_s=round(t_ref, 1), ssmd_args=a.ssmd_args)
        print(machine.line(out), flush=True)
    finally:
        for q in pushers:
            q.close()
        for d in members.values():
            d.stop()
        if etcd and etcd.poll() is None:
            etcd.terminate()
            etcd.wait(15)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for f in os.listdir(tmp):
                if f.endswith(".log"):
                    shutil.copy(os.path.join(tmp, f), a.keep)
        shutil.rmtree(tmp, ignore_errors=True)
        ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
