# SPDX-License-Identifier: MIT
"""Cluster mode against a real etcd (docs/cluster.md): the test starts etcd on
loopback (temporary data dir, random free ports) and ssmd daemons with
--cluster, talks to them over their sockets and prints what it measured.

Usage: test_cluster.py SSMD_EXE MODEL --only membership|placement|outage|checkpoint|failover|frozen
                        [--ssm-ctl EXE] [--ssm-push EXE] [--ssm-sub EXE] [--streams N (failover, default 300)]

  membership  registration; kill -9 leaves the member list within TTL + slack;
              a restart under the same node name keeps the node's streams and
              placement; a clean stop leaves at once; standalone daemons and
              bad options
  placement   3 daemons, 30 streams placed by rendezvous hashing (checked
              against an independent Python version of docs/cluster.md's
              weight), each owned by exactly one; pushes to the wrong daemon
              refused naming the owner; a 4th daemon moves about a quarter of
              new placements and none of the running streams
  outage      etcd stopped: running streams keep being served, new ones are
              refused with one line (CLUSTER_UNAVAILABLE); etcd back: new
              streams are placed again and the old owners are still listed
  checkpoint  --checkpoint-s: checkpoints at the period's frame boundaries
              with the right input and output sample, acknowledged to the
              client, in etcd (inline) or in --checkpoint-dir (file); a
              member taking the stream over after the owner was killed
              resumes from the last one and, fed the rest of the input,
              gives output bit-identical to an uninterrupted run (inline:
              another member after the TTL; file: a restart under the same
              name); keys and files go when the stream ends; REPLAY_GAP;
              resampled streams are not checkpointed; bad option values
  failover    3 daemons with checkpoints, 300 streams pushed by the Python
              ClusterPusher (and 3 by ssm-push --cluster), kill -9 of the
              daemon with the most streams mid-stream: every stream finds its
              new owner after the lease TTL, replays from its acknowledged
              checkpoint, and its output equals a single standalone daemon's
              bit for bit; recovery time per stream printed; the killed
              member restarted and a 4th joining take the running streams
              placed on them by hand-over (and about a quarter of new
              placements go to the 4th only); the 4th stopped with SIGTERM
              hands its streams over to the other three before it exits 0
  frozen      the owner of two streams (a ClusterPusher, an ssm-push --cluster)
              frozen (SIGSTOP) longer than the lease TTL, then thawed: the
              streams fail over, the thawed member closes its stale copies
              (never two members processing one stream), takes the streams
              back by hand-over; outputs bit-identical, every sample back

SSMD_TEST_KEEP=DIR copies the daemons' and etcd's logs there at the end.

Exits 77 (SKIP) when the etcd binary is missing (scripts/setup.sh installs
etcd-server)."""
import json
import os
import re
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
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from ssmd import protocol as P  # noqa: E402

SSMD, MODEL = sys.argv[1], sys.argv[2]
ONLY = sys.argv[sys.argv.index("--only") + 1]
# the C clients, for the placement test
SSM_CTL = sys.argv[sys.argv.index("--ssm-ctl") + 1] if "--ssm-ctl" in sys.argv else None
SSM_PUSH = sys.argv[sys.argv.index("--ssm-push") + 1] if "--ssm-push" in sys.argv else None
SSM_SUB = sys.argv[sys.argv.index("--ssm-sub") + 1] if "--ssm-sub" in sys.argv else None
TTL = 4
ETCD = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None)
if ETCD is None:
    print("SKIP: no etcd binary (Debian etcd-server; scripts/setup.sh installs it)")
    sys.exit(77)
TMP = tempfile.mkdtemp(prefix="ssmd-cluster-")
CTX = zmq.Context.instance()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for(fn, timeout, what, step=0.1):
    """Polls fn() until it returns a true value; returns (value, seconds)."""
    t0 = time.time()
    while True:
        v = fn()
        if v:
            return v, time.time() - t0
        if time.time() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


def hrw_weight(member, stream):
    """docs/cluster.md, "Placement": FNV-1a 64 over member, a 0 byte and
    stream, then the splitmix64 finalizer (written from the doc, not the C)."""
    m64 = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for b in member.encode() + b"\0" + stream.encode():
        h = ((h ^ b) * 0x100000001b3) & m64
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & m64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & m64
    return h ^ (h >> 31)


def hrw_key(stream):
    """docs/cluster.md: the name without a trailing .<digits> (a file's channels go together)."""
    m = re.fullmatch(r"(.+)\.[0-9]+", stream)
    return m.group(1) if m else stream


def hrw_pick(stream, members):
    return max(sorted(members), key=lambda m: hrw_weight(m, hrw_key(stream)))


class Etcd:
    def __init__(self):
        self.client, self.peer = free_port(), free_port()
        self.url = f"etcd://127.0.0.1:{self.client}"
        self.data = os.path.join(TMP, "etcd")
        self.proc = None
        self.start()

    def start(self):
        c, p = f"http://127.0.0.1:{self.client}", f"http://127.0.0.1:{self.peer}"
        self.log = open(os.path.join(TMP, "etcd.log"), "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "t", "--data-dir", self.data, "--listen-client-urls", c,
             "--advertise-client-urls", c, "--listen-peer-urls", p,
             "--initial-advertise-peer-urls", p, "--initial-cluster", f"t={p}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.ready, 20, "etcd answering")

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client}/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except Exception:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def ctl_at(endpoint, cmd, timeout_ms=5000, **fields):
    """One control request; raises zmq.Again without a reply in time."""
    s = CTX.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    s.send(json.dumps(dict(version=1, cmd=cmd, **fields)).encode())
    try:
        return json.loads(s.recv())
    finally:
        s.close()


class Daemon:
    def __init__(self, etcd, node, *args):
        self.node, self.etcd_url = node, etcd.url
        self.args = args
        # free_port() cannot reserve a port: another process (a parallel test) may bind it
        # before the daemon does; such a start exits with "Address already in use" and is
        # tried again on other ports (a restart, start(), keeps its ports)
        for attempt in range(3):
            self.ports = [free_port() for _ in range(3)]
            self.start()
            if self.wait_up() or attempt == 2 or "Address already in use" not in self.log():
                break
            self.err.close()
            print(f"{node}: a port was taken before the daemon bound it; starting on others")

    def wait_up(self, timeout=30):
        """True once the control socket answers; False if the process exits first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                ctl_at(self.control, "status", timeout_ms=200)
                return True
            except zmq.Again:
                pass
        return False

    def start(self):
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{p}" for p in self.ports)
        self.errpath = os.path.join(TMP, f"{self.node}.log")
        self.err = open(self.errpath, "ab")
        self.proc = subprocess.Popen(
            [SSMD, "--model", MODEL, "--pub", self.pub, "--ingest", self.ingest, "--control", self.control,
             "--cluster", self.etcd_url, "--node", self.node, "--cluster-ttl-s", str(TTL),
             "--log-level", "info", *self.args],
            stderr=self.err, env=dict(os.environ, HOME=TMP))

    def ctl(self, cmd, **fields):
        return ctl_at(self.control, cmd, **fields)

    def healthy(self):
        return self.cluster()["healthy"]

    def cluster(self):
        r = self.ctl("cluster")
        check(r["ok"], r)
        return r["cluster"]

    def members(self):
        return sorted(m["node"] for m in self.cluster()["members"])

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(10)
        self.err.close()
        return rc

    def log(self):
        return open(self.errpath, errors="replace").read()


class Pusher:
    """One client (a DEALER) pushing one stream."""

    def __init__(self, daemon, name):
        self.name, self.topic = name, P.format_topic(name, "audio").encode()
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(daemon.ingest)
        self.sent = 0
        self.seq = 0       # messages sent: a stream's messages are numbered (docs/protocol.md)
        self.received = 0  # audio samples counted by drain()
        self.events = []   # <stream>/event/ replies (checkpoint acknowledgements)

    def push(self, n=960, eos=False):
        x = (0.1 * np.sin(np.arange(self.sent, self.sent + n) * 0.05)).astype("<f4")
        h = P.Header(kind=1, dtype=1, sample_rate_hz=48000, rows=n, cols=1, seq=self.seq, first_sample=self.sent,
                     flags=P.FLAG_END_OF_STREAM if eos else 0)
        self.sock.send_multipart([self.topic, P.encode_header(h), x.tobytes()])
        self.sent += n
        self.seq += 1

    def reply(self, timeout=5.0):
        """The next reply: ("meta"|"audio"|"event"|"error", topic, payload-as-JSON-or-bytes);
        events (checkpoints) are also kept in self.events."""
        check(self.sock.poll(int(timeout * 1000)), f"{self.name}: no reply within {timeout} s")
        t, hb, payload = self.sock.recv_multipart()
        self._last_header = hb
        if t == b"_ssmd/event/":
            return "error", t, json.loads(payload)
        if t.endswith(b"/meta/"):
            return "meta", t, json.loads(payload)
        if t.endswith(b"/event/"):
            self.events.append(json.loads(payload))
            return "event", t, self.events[-1]
        return "audio", t, payload

    def drain(self):
        """Reads every reply waiting; returns the audio samples among them."""
        n = 0
        while self.sock.poll(0):
            kind, _, body = self.reply()
            check(kind != "error", f"{self.name}: {body}")
            n += len(body) // 4 if kind == "audio" else 0
        self.received += n
        return n

    def finish(self, timeout=10.0):
        """Ends the stream; returns the audio samples received in all."""
        self.push(0, eos=True)
        t0 = time.time()
        n = self.received
        while True:
            kind, _, body = self.reply(timeout - (time.time() - t0))
            check(kind != "error", f"{self.name}: {body}")
            if kind == "audio":
                n += len(body) // 4
                if P.decode_header(self._last_header, len(body)).flags & P.FLAG_END_OF_STREAM:
                    return n

    def first(self):
        """Pushes one message of a new stream; returns its first reply."""
        self.push()
        return self.reply()

    def close(self):
        self.sock.close()


def open_stream(daemon, name):
    """Opens `name` on daemon (which must own it); returns its Pusher."""
    p = Pusher(daemon, name)
    kind, _, body = p.first()
    check(kind == "meta", f"{name} on {daemon.node}: expected the stream's meta, got {kind} {body}")
    return p


def expect_refused(daemon, name, code):
    p = Pusher(daemon, name)
    kind, _, body = p.first()
    p.close()
    check(kind == "error" and body["error"] == code, f"{name} on {daemon.node}: expected {code}, got {kind} {body}")
    check("\n" not in body["message"], "one line")
    return body


def wait_members(daemons, names, timeout=10):
    want = sorted(names)
    for d in daemons:
        wait_for(lambda: d.members() == want, timeout, f"{d.node} listing {want}")


def owners(daemon):
    return {o["stream"]: o["node"] for o in daemon.cluster()["owners"]}


# ---- membership -------------------------------------------------------------

def t_membership():
    etcd = Etcd()
    n1, n2 = Daemon(etcd, "n1"), Daemon(etcd, "n2")
    try:
        wait_members([n1, n2], ["n1", "n2"])
        c = n1.cluster()
        check(c["healthy"] and c["ttl_s"] == TTL and c["node"] == "n1", c)
        m2 = next(m for m in c["members"] if m["node"] == "n2")
        check(m2["ingest"] == n2.ingest and m2["pub"] == n2.pub and m2["control"] == n2.control, m2)
        check(m2["max_streams"] == 64 and not m2["self"], m2)
        print(f"registered: n1 lists {n1.members()} with n2's endpoints {m2['ingest']}")

        # a stream placed on n2, then n2 killed: the member and its owner key
        # leave within the TTL (+ slack: renewal period, list refresh)
        name = next(f"s{i}" for i in range(100) if hrw_pick(f"s{i}", ["n1", "n2"]) == "n2")
        p = open_stream(n2, name)
        check(owners(n1).get(name) == "n2", owners(n1))
        placements = {f"p{i}": n1.ctl("locate", stream=f"p{i}")["node"] for i in range(20)}
        n2.proc.kill()
        n2.proc.wait()
        _, dt = wait_for(lambda: n1.members() == ["n1"], TTL + 4, "n2 gone after kill -9")
        check(name not in owners(n1), "owner key gone with the lease")
        print(f"kill -9 n2: left n1's member list after {dt:.1f} s (TTL {TTL} s), its stream's owner key too")
        p.close()

        # a restart under the same name, before the old lease expires: the
        # old owner key (node n2) is taken over, placement is unchanged
        n2.start()
        wait_for(n2.healthy, 10, "n2 registered again")
        p = open_stream(n2, name)
        n2.proc.kill()
        n2.proc.wait()
        n2.start()
        wait_for(n2.healthy, 10, "n2 registered again")
        check(owners(n1).get(name) == "n2", "the killed run's owner key still names n2")
        refused = expect_refused(n1, name, "NOT_OWNER")
        check(refused["owner"] == {"node": "n2", "ingest": n2.ingest}, refused)
        p.close()
        p = open_stream(n2, name)
        after = {k: n1.ctl("locate", stream=k)["node"] for k in placements}
        check(after == placements, f"placement changed across a restart: {placements} -> {after}")
        print(f"restart of n2 within the TTL: it takes its stream {name} back (n1 refuses it naming n2), "
              f"20 placements unchanged")

        # a clean stop revokes the lease: gone at once
        t0 = time.time()
        check(n2.stop() == 0, "clean exit")
        _, dt = wait_for(lambda: n1.members() == ["n1"], 2, "n2 gone after SIGTERM")
        check(name not in owners(n1), "owner key revoked")
        print(f"SIGTERM n2: left after {time.time() - t0:.1f} s (lease revoked), owner key too")
        p.close()

        # a full member refuses a new stream before claiming it: no owner key
        # appears (it used to be written, then deleted a moment later)
        nf = Daemon(etcd, "nf", "--max-streams", "1")
        try:
            wait_members([n1, nf], ["n1", "nf"])
            on_nf = [f"f{i}" for i in range(200) if hrw_pick(f"f{i}", ["n1", "nf"]) == "nf"][:2]
            pf = open_stream(nf, on_nf[0])
            refused = expect_refused(nf, on_nf[1], "TOO_MANY_STREAMS")
            check(on_nf[1] not in owners(n1), f"a refused stream left an owner key: {owners(n1)}")
            print(f"full member nf: {on_nf[1]} refused ({refused['error']}) without an owner key")
            pf.close()
        finally:
            nf.stop(signal.SIGKILL)

        # a second live daemon under n1's name (other endpoints): it stays
        # unregistered and refuses new streams, n1's entry is untouched;
        # when n1 stops, it registers
        dup = Daemon(etcd, "n1")
        try:
            c, dt = wait_for(lambda: (lambda c: c if "in use" in c.get("error", "") else None)(dup.cluster()),
                             10, "the duplicate's refusal")
            check(not c["healthy"], c)
            m1 = [m for m in n1.cluster()["members"] if m["node"] == "n1"]
            check(len(m1) == 1 and m1[0]["ingest"] == n1.ingest, f"n1's member entry changed: {m1}")
            refused = expect_refused(dup, "dupstream", "CLUSTER_UNAVAILABLE")
            print(f"a second daemon named n1: not registered ({c['error']}); a push to it: "
                  f"{refused['error']}; n1's entry keeps its endpoints")
            check(n1.stop() == 0, "n1 clean exit")
            wait_for(dup.healthy, 2 * TTL, "the duplicate registered once n1 left")
            m = [m for m in dup.cluster()["members"] if m["node"] == "n1"]
            check(len(m) == 1 and m[0]["ingest"] == dup.ingest, m)
            print("n1 stopped: the second daemon named n1 registered with its own endpoints")
        finally:
            dup.stop(signal.SIGKILL)
    finally:
        for d in (n1, n2):
            d.stop(signal.SIGKILL)
        etcd.stop()

    # standalone daemons: no cluster request; bad options: one line, exit 2
    ports = [free_port() for _ in range(3)]
    eps = ["--pub", f"tcp://127.0.0.1:{ports[0]}", "--ingest", f"tcp://127.0.0.1:{ports[1]}",
           "--control", f"tcp://127.0.0.1:{ports[2]}"]
    proc = subprocess.Popen([SSMD, "--model", MODEL, *eps], stderr=subprocess.DEVNULL)
    try:
        r = ctl_at(eps[5], "cluster")
        check(not r["ok"] and r["error"] == "NOT_CLUSTERED", r)
        print(f"standalone: cluster -> {r['error']}: {r['message']}")
    finally:
        proc.terminate()
        proc.wait(10)
    nconf = os.path.join(TMP, "node.conf")
    with open(nconf, "w") as f:
        f.write("# a cluster member\ncluster = etcd://127.0.0.1:2379\nnode = .dot\n")
    uconf = os.path.join(TMP, "url.conf")
    with open(uconf, "w") as f:
        f.write("cluster = http://127.0.0.1:1\n")
    for bad, want in ((["--cluster", "http://127.0.0.1:1"], "--cluster: expected etcd://"),
                      (["--cluster", "etcd://127.0.0.1:2379", "--node", "a/b"], "--node: 'a/b' is not a valid"),
                      (["--config", nconf], f"{nconf}:3: node: '.dot' is not a valid node name"),
                      (["--config", uconf], f"{uconf}:1: cluster: expected etcd://"),
                      (["--node", "n1"], "--node: only used in cluster mode"),
                      (["--cluster-ttl-s", "5"], "--cluster-ttl-s: only used in cluster mode")):
        r = subprocess.run([SSMD, "--model", MODEL, *eps, *bad], capture_output=True, text=True, timeout=30)
        lines = r.stderr.strip().split("\n")
        check(r.returncode == 2 and len(lines) == 1 and want in lines[0], (r.returncode, r.stderr))
        print(f"{' '.join(bad)}: exit 2, {lines[0]}")


# ---- placement --------------------------------------------------------------

def t_placement():
    etcd = Etcd()
    ds = {n: Daemon(etcd, n) for n in ("n1", "n2", "n3")}
    pushers = []
    try:
        wait_members(ds.values(), ds)
        names = [f"room{i:02d}" for i in range(30)]
        placed = {n: hrw_pick(n, list(ds)) for n in names}
        for n in names:
            pushers.append(open_stream(ds[placed[n]], n))
        # each one owned by exactly one daemon, the one HRW picked
        own = owners(ds["n1"])
        check(own == placed, f"owners {own} != HRW {placed}")
        for node, d in ds.items():
            running = sorted(s["name"] for s in d.ctl("streams")["streams"])
            check(running == sorted(n for n in names if placed[n] == node), (node, running))
            check(sorted(d.cluster()["owned"]) == running, "owned set")
        counts = {node: sum(1 for n in names if placed[n] == node) for node in ds}
        print(f"30 streams placed by HRW {counts}; owners in etcd match; each daemon runs exactly its own")

        # a push to the wrong daemon names the owner; nothing opens there
        refusals = 0
        for n in names[:10]:
            for node, d in ds.items():
                if node == placed[n]:
                    continue
                body = expect_refused(d, n, "NOT_OWNER")
                check(body["owner"] == {"node": placed[n], "ingest": ds[placed[n]].ingest}, body)
                check(ds[placed[n]].ingest in body["message"], body["message"])
                refusals += 1
        fresh = next(f"new{i}" for i in range(100) if hrw_pick(f"new{i}", list(ds)) != "n1")
        body = expect_refused(ds["n1"], fresh, "NOT_OWNER")
        check(body["owner"]["node"] == hrw_pick(fresh, list(ds)), body)
        check(fresh not in owners(ds["n1"]), "a refused stream is not claimed")
        print(f"{refusals} pushes to the wrong daemon refused, e.g. {body['message']!r}")
        clients(ds, placed)

        # a 4th member: about a quarter of new placements move, all to it;
        # running streams stay with their owners
        probe = [f"later{i:03d}" for i in range(120)]
        before = {n: ds["n1"].ctl("locate", stream=n)["node"] for n in probe}
        check(before == {n: hrw_pick(n, list(ds)) for n in probe}, "locate == HRW over 3")
        ds["n4"] = Daemon(etcd, "n4")
        wait_members(ds.values(), ds)
        after = {n: ds["n2"].ctl("locate", stream=n)["node"] for n in probe}
        moved = [n for n in probe if before[n] != after[n]]
        check(all(after[n] == "n4" for n in moved), "moves go to the new member only")
        check(0.12 <= len(moved) / len(probe) <= 0.40, f"{len(moved)} of {len(probe)} moved")
        check(after == {n: hrw_pick(n, list(ds)) for n in probe}, "locate == HRW over 4")
        for n in names:
            r = ds["n4"].ctl("locate", stream=n)
            check(r["node"] == placed[n] and r["by"] == "owner", r)
        stay = [n for n in names if hrw_pick(n, list(ds)) == "n4"]
        for n in stay:
            body = expect_refused(ds["n4"], n, "NOT_OWNER")
            check(body["owner"]["node"] == placed[n], body)
        newly = next(n for n in moved)
        open_stream(ds["n4"], newly).close()
        print(f"n4 joined: {len(moved)} of {len(probe)} new placements moved ({len(moved) / len(probe):.2f}), "
              f"all to n4; {len(stay)} running streams HRW now maps to n4 stay with their owners")

        # streams that end release their owner keys
        for p in pushers:
            p.push(0, eos=True)
        wait_for(lambda: not set(names) & set(owners(ds["n1"])), 10, "owner keys released")
        print("30 streams ended: their owner keys are gone")
    finally:
        for p in pushers:
            p.close()
        for d in ds.values():
            d.stop(signal.SIGKILL)
        etcd.stop()


def clients(ds, placed):
    """The clients' side: ssm-ctl cluster/locate, ssm-push refused by the
    wrong daemon, the Python Control.cluster()/locate() and Pusher."""
    from ssmd import Control, Pusher
    from ssmd.pusher import DaemonError
    name = "room00"
    owner = placed[name]
    wrong = next(n for n in ds if n != owner)
    r = subprocess.run([SSM_CTL, "-e", ds["n1"].control, "cluster"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, r.stderr)
    c = json.loads(r.stdout)["cluster"]
    check(len(c["members"]) == 3 and len(c["owners"]) == 30 and c["healthy"], c)
    r = subprocess.run([SSM_CTL, "-e", ds[wrong].control, "locate", "-s", name], capture_output=True, text=True,
                       timeout=30)
    loc = json.loads(r.stdout)
    check(r.returncode == 0 and loc["node"] == owner and loc["by"] == "owner", r)
    print(f"ssm-ctl cluster: {len(c['members'])} members, {len(c['owners'])} owners; "
          f"ssm-ctl locate -s {name} on {wrong}: {loc['node']} {loc['ingest']} (by {loc['by']})")
    wav = os.path.join(TMP, "in.wav")
    import wave
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, "<i2").tobytes())
    r = subprocess.run([SSM_PUSH, "-e", ds[wrong].ingest, "-s", name, wav], capture_output=True, text=True,
                       timeout=30)
    lines = r.stderr.strip().split("\n")
    check(r.returncode == 1 and "NOT_OWNER" in r.stderr and ds[owner].ingest in r.stderr, (r.returncode, r.stderr))
    print(f"ssm-push to {wrong}: exit 1, {lines[-1]}")
    ctl = Control(ds[wrong].control)
    check(ctl.locate(name)["node"] == owner and len(ctl.cluster()["members"]) == 3, "Python Control")
    ctl.close()
    p = Pusher(ds[wrong].ingest, name)
    try:
        p.push(np.zeros(1600, np.float32), 16000)
        p.finish()
        p.collect(timeout=5)
        raise AssertionError("the wrong daemon accepted the stream")
    except DaemonError as e:
        check(e.code == "NOT_OWNER" and e.owner == {"node": owner, "ingest": ds[owner].ingest}, e)
        print(f"Python Pusher to {wrong}: DaemonError {e.code}, owner {e.owner}")
    finally:
        p.close()
    # ssm-push --cluster interrupted mid-stream says how much it pushed (it said "after 0
    # samples" whatever it had pushed: --cluster counts per stream)
    wav3 = os.path.join(TMP, "in3.wav")
    with wave.open(wav3, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((1000 * np.sin(np.arange(48000) * 0.05)).astype("<i2").tobytes())
    proc = subprocess.Popen([SSM_PUSH, "--cluster", ds[owner].etcd_url, "-s", "interrupted", "--realtime", wav3],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    m = re.search(r"interrupted by SIGINT after (\d+) samples", err)
    check(proc.returncode == 1 and m and int(m.group(1)) > 0, (proc.returncode, err))
    print(f"ssm-push --cluster interrupted: {err.strip().splitlines()[-1]}")


# ---- outage -----------------------------------------------------------------

def t_outage():
    etcd = Etcd()
    ds = {n: Daemon(etcd, n) for n in ("n1", "n2")}
    pushers = {}
    try:
        wait_members(ds.values(), ds)
        names = [f"live{i}" for i in range(6)]
        placed = {n: hrw_pick(n, list(ds)) for n in names}
        for n in names:
            pushers[n] = open_stream(ds[placed[n]], n)
        leases = {node: d.cluster()["lease"] for node, d in ds.items()}
        etcd.stop()
        t0 = time.time()
        for d in ds.values():
            wait_for(lambda: not d.cluster()["healthy"], 2 * TTL, f"{d.node} noticing etcd is gone")
        print(f"etcd stopped: both daemons report it unhealthy within {time.time() - t0:.1f} s")

        # running streams are served; new ones refused with one line
        def frames():
            return {s["name"]: s["frames"] for d in ds.values() for s in d.ctl("streams")["streams"]}
        frames0 = frames()
        down_s = 2 * TTL  # longer than the lease TTL
        while time.time() - t0 < down_s:
            for p in pushers.values():
                p.push(4800)
                p.drain()
            time.sleep(0.2)
        frames1 = wait_for(lambda: (lambda f: f if all(f[n] > frames0[n] for n in names) else None)(frames()), 5,
                           "frames processed during the outage")[0]
        body = expect_refused(ds["n1"], "newcomer", "CLUSTER_UNAVAILABLE")
        print(f"etcd down {time.time() - t0:.1f} s: the 6 running streams went on "
              f"({sum(frames1.values()) - sum(frames0.values())} frames); a new stream: {body['message']!r}")
        check("etcd" in body["message"] and "running streams continue" in body["message"], body)
        for d in ds.values():
            c = d.cluster()
            check(c["owners"] is None and sorted(c["owned"]) == sorted(n for n in names if placed[n] == d.node), c)
            check("refusing new ones" in d.log(), "the outage is logged")
        # locate while etcd is away: the placement over the last member list, marked unverified
        loc = ds["n1"].ctl("locate", stream=names[0])
        check(loc["ok"] and loc["by"] == "placement" and loc["node"] == placed[names[0]] and
              loc.get("unverified") and loc["checkpoint"] is None, loc)
        print(f"locate with etcd down: by {loc['by']}, node {loc['node']}, unverified: {loc['unverified']!r}")

        # etcd returns: placement works again, the owners are still listed
        etcd.start()
        t1 = time.time()
        for d in ds.values():
            wait_for(lambda: d.cluster()["healthy"], 3 * TTL, f"{d.node} reconnecting")
        print(f"etcd back: daemons healthy again after {time.time() - t1:.1f} s")
        own = wait_for(lambda: owners(ds["n1"]) if set(owners(ds["n1"])) == set(names) else None, 3 * TTL,
                       "owners listed again")[0]
        check(own == placed, f"{own} != {placed}")
        # etcd extends the leases when it starts again: the same ones, nothing re-registered
        check({node: d.cluster()["lease"] for node, d in ds.items()} == leases, "leases kept")
        wait_members(ds.values(), ds)
        fresh = "newcomer"
        p = open_stream(ds[hrw_pick(fresh, list(ds))], fresh)
        p.close()
        # every sample pushed before, during and after the outage came back
        for n, q in pushers.items():
            got = q.finish()
            check(got == q.sent, f"{n}: {got} samples back of {q.sent}")
        print(f"after the outage: the 6 running streams kept their owners and returned every sample "
              f"({sum(q.sent for q in pushers.values())}), {fresh} placed on {hrw_pick(fresh, list(ds))}")
    finally:
        for p in pushers.values():
            p.close()
        for d in ds.values():
            d.stop(signal.SIGKILL)
        etcd.stop()


# ---- checkpoint --------------------------------------------------------------

RATE = 16000  # the test model's rate: checkpointed streams run at it
HOP, LATENCY = 256, 256  # the test model's hop and latency (n_fft 512)


def etcd_get(etcd, key, prefix=False):
    """{key: value bytes} of key (or of every key under it) through etcd's JSON gateway."""
    import base64
    body = {"key": base64.b64encode(key.encode()).decode()}
    if prefix:
        body["range_end"] = base64.b64encode(key[:-1].encode() + bytes([ord(key[-1]) + 1])).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{etcd.client}/v3/kv/range", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        j = json.load(r)
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")) for kv in j.get("kvs", [])}


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & ((1 << 64) - 1)
    return h


def due_points(period_s, n):
    """The input samples of the first n checkpoints: the first frame boundary
    (a multiple of the hop) at or after each multiple of the period."""
    p = period_s * RATE
    return [-(-m * p // HOP) * HOP for m in range(1, n + 1)]


class Feeder(Pusher):
    """A pusher of given samples: keeps the results by their first sample."""

    def __init__(self, daemon, name, rate=RATE):
        super().__init__(daemon, name)
        self.rate, self.out, self.metas, self.errors, self.ended = rate, {}, [], [], False

    def send(self, x, first, eos=False):
        # numbered as the ingest requires (docs/protocol.md: contiguous messages); a replay to a
        # member that resumed the stream may start anywhere up to its resume point
        h = P.Header(kind=1, dtype=1, sample_rate_hz=self.rate, rows=len(x), cols=1, seq=self.seq, first_sample=first,
                     flags=P.FLAG_END_OF_STREAM if eos else 0)
        self.seq += 1
        self.sock.send_multipart([self.topic, P.encode_header(h), np.asarray(x, "<f4").tobytes()])

    def pump(self, timeout=0.0):
        """Reads the replies waiting (the first one waits up to timeout s)."""
        while self.sock.poll(int(timeout * 1000)):
            timeout = 0
            kind, _, body = self.reply()
            if kind == "audio":
                h = P.decode_header(self._last_header, len(body))
                self.out[h.first_sample] = np.frombuffer(body, "<f4")
                self.ended |= bool(h.flags & P.FLAG_END_OF_STREAM)
            elif kind == "meta":
                self.metas.append(body)
            elif kind == "error":
                self.errors.append(body)

    def wait_event(self, input_sample, timeout=10):
        t0 = time.time()
        while not any(e.get("input_sample") == input_sample for e in self.events):
            check(time.time() - t0 < timeout, f"{self.name}: no checkpoint event at {input_sample} "
                  f"within {timeout} s (events {self.events}, errors {self.errors})")
            self.pump(0.2)
        return next(e for e in self.events if e.get("input_sample") == input_sample)

    def feed(self, x, start, stop, eos=False, chunk=1600, due=()):
        """Sends x[start:stop] in chunks; when the input passes a point of due,
        waits for its checkpoint event before sending more (so no checkpoint is
        replaced by the next before it was stored)."""
        due = list(due)
        for a in range(start, stop, chunk):
            b = min(stop, a + chunk)
            self.send(x[a:b], a, eos and b == stop)
            self.pump()
            while due and b >= due[0]:
                self.wait_event(due.pop(0))
        while due and due[0] <= stop:
            self.wait_event(due.pop(0))

    def output(self, begin):
        """The contiguous output from sample begin on."""
        parts, at = [], begin
        for k in sorted(self.out):
            if k < begin:
                continue
            check(k == at, f"{self.name}: output gap at {at} (next message at {k})")
            parts.append(self.out[k])
            at += len(self.out[k])
        return np.concatenate(parts) if parts else np.zeros(0, "<f4")

    def collect(self, timeout=20):
        t0 = time.time()
        while not self.ended:
            check(time.time() - t0 < timeout, f"{self.name}: no end-of-stream within {timeout} s")
            self.pump(0.2)


def test_signal(n):
    t = np.arange(n) / RATE
    rng = np.random.default_rng(3)
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t))
    return (x + 0.01 * rng.standard_normal(n)).astype("<f4")


def same_bits(a, b):
    return len(a) == len(b) and np.array_equal(a.view("<u4"), b.view("<u4"))


def ckpt_keys(etcd, name):
    return etcd_get(etcd, f"/ssmd/checkpoints/{name}/", prefix=True)


def t_checkpoint():
    etcd = Etcd()
    blobs = os.path.join(TMP, "blobs")
    os.makedirs(blobs)
    n = int(5.5 * RATE)
    x = test_signal(n)
    c1 = Daemon(etcd, "c1", "--checkpoint-s", "1")
    c2 = Daemon(etcd, "c2", "--checkpoint-s", "1")
    c3 = None
    try:
        wait_members([c1, c2], ["c1", "c2"])
        ds = {"c1": c1, "c2": c2}
        # the uninterrupted run (checkpointed too: checkpoints must not change the output)
        ref_name = "ref"
        ref = Feeder(ds[hrw_pick(ref_name, list(ds))], ref_name)
        ref.feed(x, 0, n, eos=True)
        ref.collect()
        y = ref.output(0)
        check(len(y) == n, f"reference: {len(y)} samples of {n}")
        ref.close()

        # 1. inline checkpoints every 1 s on c1, at the frame boundaries due_points says
        name = next(f"ck{i}" for i in range(100) if hrw_pick(f"ck{i}", ["c1", "c2"]) == "c1")
        p = Feeder(c1, name)
        pts = due_points(1, 3)
        p.feed(x, 0, int(3.5 * RATE), due=pts)
        meta = p.metas[0]
        check(meta["checkpoint_s"] == 1 and meta["checkpoint"] is None and "resumed" not in meta, meta)
        got = [(e["input_sample"], e["output_sample"]) for e in p.events]
        check(got == [(i, i - LATENCY) for i in pts], f"checkpoint events {got}, expected {pts}")
        check(all(e["stored"] == "etcd" and e["stream"] == name for e in p.events), p.events)
        kv = ckpt_keys(etcd, name)
        m = json.loads(kv[f"/ssmd/checkpoints/{name}/meta"])
        state = kv[f"/ssmd/checkpoints/{name}/state"]
        check(m["input_sample"] == pts[-1] and m["output_sample"] == pts[-1] - LATENCY and m["node"] == "c1" and
              m["stored"] == "etcd" and m["bytes"] == len(state) and int(m["checksum"], 16) == fnv1a64(state) and
              m["sample_rate_hz"] == RATE, m)
        ckpt_bytes = m["bytes"]
        print(f"checkpoints of {name} on c1 every 1 s: events at input samples {[e[0] for e in got]} "
              f"(output {[e[1] for e in got]}), in etcd: {m['bytes']} bytes, checksum ok")
        st = next(s for s in c1.ctl("streams")["streams"] if s["name"] == name)
        check(st["checkpoint"]["input_sample"] == pts[-1], st)
        r = subprocess.run([SSM_CTL, "-e", c2.control, "locate", "-s", name], capture_output=True, text=True,
                           timeout=30)
        loc = json.loads(r.stdout)
        check(r.returncode == 0 and loc["node"] == "c1" and loc["checkpoint"]["input_sample"] == pts[-1] and
              loc["checkpoint"]["age_s"] >= 0 and loc["checkpoint"]["node"] == "c1", loc)
        print(f"ssm-ctl locate -s {name}: owner {loc['node']}, checkpoint at input sample "
              f"{loc['checkpoint']['input_sample']}, {loc['checkpoint']['age_s']:.1f} s old")
        before = p.output(0)
        check(same_bits(before, y[:len(before)]), "c1's output before the kill differs from the reference")

        # 2. c1 killed: after its lease, c2 takes the stream over from the checkpoint
        c1.proc.kill()
        c1.proc.wait()
        wait_for(lambda: c2.members() == ["c2"], TTL + 6, "c1 gone")
        p.close()
        last = pts[-1]
        q = Feeder(c2, name)
        q.send(x[last + 100:last + 1700], last + 100)  # a gap: refused, the stream stays
        q.pump(5)
        wait_for(lambda: q.pump(0.2) or q.errors, 5, "the REPLAY_GAP error")
        res = q.metas[0].get("resumed")
        check(res and res["input_sample"] == last and res["output_sample"] == last - LATENCY and
              res["node"] == "c1", q.metas[0])
        check(q.errors[0]["error"] == "REPLAY_GAP" and str(last) in q.errors[0]["message"], q.errors)
        print(f"c1 killed: c2 resumed {name} from c1's checkpoint at input sample {last}; "
              f"a push from {last + 100}: {q.errors[0]['error']}: {q.errors[0]['message']!r}")
        replay = last - 1000  # the client kept a little more than it had to
        q.feed(x, replay, n - 16000)

        def resumed_info():
            return next(s for s in c2.ctl("streams")["streams"] if s["name"] == name)["resumed"]
        # the messages just sent may still wait in c2's ingest socket when `streams` is answered
        # (control is served between the loop's phases): wait until the replay went in
        wait_for(lambda: q.pump(0.05) or resumed_info()["replay_skipped"] >= 1000, 20,
                 "the replay's first 1000 samples (repeats of what the checkpoint holds) skipped")
        st = resumed_info()
        check(st["replay_skipped"] == 1000, st)
        q.feed(x, n - 16000, n, eos=True)
        q.collect()
        after = q.output(last - LATENCY)
        check(len(after) == n - (last - LATENCY), f"{len(after)} samples after the resume")
        check(same_bits(after, y[last - LATENCY:]), "the resumed output differs from the uninterrupted run")
        print(f"resumed on c2 (replayed from {replay}, {st['replay_skipped']} samples dropped): output "
              f"from sample {last - LATENCY} on bit-identical to the uninterrupted run ({len(after)} samples)")
        wait_for(lambda: not ckpt_keys(etcd, name), 10, "checkpoint keys deleted at the end")
        print(f"{name} ended: its checkpoint keys are gone")
        q.close()

        # 3. a checkpoint larger than --checkpoint-inline-bytes (here one byte more) goes
        #    to the checkpoint directory; a restart under the same name resumes from the file
        c3 = Daemon(etcd, "c3", "--checkpoint-s", "1", "--checkpoint-inline-bytes", str(ckpt_bytes - 1),
                    "--checkpoint-dir", blobs)
        wait_members([c2, c3], ["c2", "c3"])
        name = next(f"fk{i}" for i in range(100) if hrw_pick(f"fk{i}", ["c2", "c3"]) == "c3")
        p = Feeder(c3, name)
        pts = due_points(1, 2)
        p.feed(x, 0, int(2.5 * RATE), due=pts)
        check([e["input_sample"] for e in p.events] == pts and all(e["stored"] == "file" for e in p.events),
              p.events)
        kv = ckpt_keys(etcd, name)
        m = json.loads(kv[f"/ssmd/checkpoints/{name}/meta"])
        check(f"/ssmd/checkpoints/{name}/state" not in kv, "no state key for a file checkpoint")
        files = sorted(f for f in os.listdir(blobs) if f.startswith(name + "."))
        check(files == [f"{name}.{pts[-1]}.ckpt"] and m["path"] == os.path.join(blobs, files[0]), (files, m))
        blob = open(m["path"], "rb").read()
        check(m["stored"] == "file" and len(blob) == m["bytes"] and fnv1a64(blob) == int(m["checksum"], 16), m)
        print(f"checkpoint_inline_bytes {ckpt_bytes - 1}: {name}'s checkpoints in {blobs} ({files}, {len(blob)} "
              f"bytes, the earlier one removed), etcd holds the path and checksum")
        c3.proc.kill()
        c3.proc.wait()
        p.close()
        c3.start()
        wait_for(c3.healthy, 10, "c3 registered again")
        last = pts[-1]
        q = Feeder(c3, name)
        q.feed(x, last, n, eos=True)
        q.collect()
        res = q.metas[0]["resumed"]
        check(res["input_sample"] == last and res["node"] == "c3", q.metas[0])
        after = q.output(last - LATENCY)
        check(same_bits(after, y[last - LATENCY:]), "the output resumed from the file differs")
        print(f"c3 killed and restarted: resumed {name} from its file at input sample {last}; output from "
              f"{last - LATENCY} on bit-identical ({len(after)} samples)")
        wait_for(lambda: not ckpt_keys(etcd, name) and not [f for f in os.listdir(blobs) if f.startswith(name + ".")],
                 10, "checkpoint keys and file removed at the end")
        print(f"{name} ended: its keys and its checkpoint file are gone")
        q.close()

        # 4. a stream at another rate than the model's resamples: not checkpointed
        p = Feeder(c2, "resampled", rate=48000) if hrw_pick("resampled", ["c2", "c3"]) == "c2" else \
            Feeder(c3, "resampled", rate=48000)
        x48 = np.repeat(x[:RATE * 2], 3)
        p.feed(x48, 0, len(x48), eos=True, chunk=4800)
        p.collect()
        meta = p.metas[0]
        check(meta["checkpoint_s"] == 0 and "48000 Hz" in meta["checkpoint_off"] and not p.events, meta)
        check(not ckpt_keys(etcd, "resampled"), "no keys for a resampled stream")
        print(f"a 48 kHz push on the 16 kHz model: no checkpoints ({meta['checkpoint_off']})")
        p.close()

        # 5. only a replay resumes: a stream pushed from sample 0 starts afresh even though a killed
        #    owner left a checkpoint of that name (a new session must not inherit an old one's
        #    state and lose its first samples), and a replay with no checkpoint is refused
        name = next(f"st{i}" for i in range(100) if hrw_pick(f"st{i}", ["c2", "c3"]) == "c3")
        p = Feeder(c3, name)
        pts = due_points(1, 2)
        p.feed(x, 0, int(2.5 * RATE), due=pts)
        c3.proc.kill()
        c3.proc.wait()
        p.close()
        c3.start()
        wait_for(c3.healthy, 10, "c3 registered again")
        check(ckpt_keys(etcd, name), f"{name}: the killed owner's checkpoint is in etcd")
        q = Feeder(c3, name)
        q.feed(x, 0, n, eos=True)
        q.collect()
        check("resumed" not in q.metas[0] and not q.errors, (q.metas[0], q.errors))
        check(same_bits(q.output(0), y), f"{name}: a stream pushed from 0 differs from the reference")
        print(f"{name} pushed again from sample 0 after its owner was killed: started afresh, output "
              f"bit-identical to the reference ({n} samples), the old checkpoint not used")
        q.close()
        name = next(f"nk{i}" for i in range(100) if hrw_pick(f"nk{i}", ["c2", "c3"]) == "c3")
        q = Feeder(c3, name)
        q.seq = 5
        q.send(x[3200:4800], 3200)
        wait_for(lambda: q.pump(0.2) or q.errors, 5, "the DISCONTINUITY error")
        check(q.errors[0]["error"] == "DISCONTINUITY" and "no checkpoint" in q.errors[0]["message"], q.errors)
        wait_for(lambda: name not in [s["name"] for s in c3.ctl("streams")["streams"]], 5, f"{name} closed")
        print(f"a replay from 3200 with no checkpoint: {q.errors[0]['error']}: {q.errors[0]['message']!r}")
        q.close()
    finally:
        for d in (c1, c2, c3):
            if d:
                d.stop(signal.SIGKILL)
        etcd.stop()

    # bad values: one line naming the option, exit 2 (no etcd needed)
    ports = [free_port() for _ in range(3)]
    eps = ["--pub", f"tcp://127.0.0.1:{ports[0]}", "--ingest", f"tcp://127.0.0.1:{ports[1]}",
           "--control", f"tcp://127.0.0.1:{ports[2]}"]
    cl = ["--cluster", f"etcd://127.0.0.1:{free_port()}"]
    afile = os.path.join(TMP, "afile")
    open(afile, "w").close()
    conf = os.path.join(TMP, "bad.conf")
    with open(conf, "w") as f:
        f.write("checkpoint_s = soon\n")
    for bad, want in ((["--checkpoint-s", "-1"], "--checkpoint-s: expected an integer in [0, 86400], got '-1'"),
                      (["--checkpoint-s", "1"], "--checkpoint-s: checkpoints are stored in the cluster's etcd"),
                      (cl + ["--checkpoint-s", "1", "--checkpoint-dir", "/nonexistent"],
                       "--checkpoint-dir: '/nonexistent': No such file or directory"),
                      (cl + ["--checkpoint-s", "1", "--checkpoint-dir", afile], "--checkpoint-dir: '" + afile),
                      (["--checkpoint-inline-bytes", "2000000"],
                       "--checkpoint-inline-bytes: expected an integer in [0, 1048576]"),
                      (cl + ["--checkpoint-s", "1", "--checkpoint-inline-bytes", "1000"],
                       "--checkpoint-inline-bytes: this model's checkpoints are"),
                      (["--config", conf], "checkpoint_s: expected an integer")):
        r = subprocess.run([SSMD, "--model", MODEL, *eps, *bad], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, HOME=TMP))
        lines = r.stderr.strip().split("\n")
        check(r.returncode == 2 and len(lines) == 1 and want in lines[0], (bad, r.returncode, r.stderr))
        print(f"{' '.join(bad[-2:])}: exit 2, {lines[0]}")


# ---- failover ----------------------------------------------------------------

def failover_signals(k, n):
    """k different test signals of n samples (tones and noise of their own)."""
    t = np.arange(n) / RATE
    out = []
    for i in range(k):
        rng = np.random.default_rng(100 + i)
        f = 110 * (i + 1)
        x = 0.2 * np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * (0.7 + 0.3 * i) * t))
        out.append((x + 0.02 * rng.standard_normal(n)).astype("<f4"))
    return out


def write_float_wav(path, x, rate=RATE):
    """x (float32, (frames,) or (frames, channels)) as a WAVE_FORMAT_IEEE_FLOAT file, read back
    bit for bit by libsndfile."""
    import struct
    x = np.asarray(x, "<f4")
    ch = 1 if x.ndim == 1 else x.shape[1]
    data = x.tobytes()
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 3, ch, rate, 4 * ch * rate, 4 * ch, 32) + b"data" +
                struct.pack("<I", len(data)))
        f.write(data)


def ckpt_input(etcd, name):
    """The input_sample of name's checkpoint in etcd, 0 when there is none."""
    kv = etcd_get(etcd, f"/ssmd/checkpoints/{name}/meta")
    return json.loads(kv[f"/ssmd/checkpoints/{name}/meta"])["input_sample"] if kv else 0


def reference_outputs(signals):
    """Each signal pushed whole to one standalone daemon (no --cluster) by the
    plain Pusher: the uninterrupted single-daemon outputs."""
    from ssmd import Pusher as PlainPusher
    ports = [free_port() for _ in range(3)]
    eps = [f"tcp://127.0.0.1:{p}" for p in ports]
    err = open(os.path.join(TMP, "single.log"), "ab")
    proc = subprocess.Popen([SSMD, "--model", MODEL, "--pub", eps[0], "--ingest", eps[1], "--control", eps[2]],
                            stderr=err, env=dict(os.environ, HOME=TMP))
    try:
        outs = []
        for i, x in enumerate(signals):
            with PlainPusher(eps[1], f"ref{i}", timeout=30) as p:
                p.push(x, RATE)
                p.finish()
                outs.append(p.collect()[:, 0].copy())
            check(len(outs[-1]) == len(x), f"reference {i}: {len(outs[-1])} of {len(x)} samples")
        return outs
    finally:
        proc.terminate()
        proc.wait(10)
        err.close()


def t_failover():
    """3 daemons with --checkpoint-s 1, N cluster-aware Python pushers, one
    daemon killed (-9) mid-stream: every stream's output equals the
    single-daemon run bit for bit; the recovery time of each stream that
    lost its owner is measured; a 4th daemon joining moves no running
    stream and about a quarter of new placements."""
    import resource
    from ssmd.cluster import ClusterPusher, ClusterSubscriber, Directory
    n_streams = int(sys.argv[sys.argv.index("--streams") + 1]) if "--streams" in sys.argv else 300
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8 * n_streams:  # a socket, its monitor and their mailboxes per pusher
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * n_streams + 256), hard))
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 4 * n_streams + 64)
    n = 3 * RATE  # 3 s each: checkpoints at 16 128 and 32 000
    chunk = 1600
    kinds = 8
    sigs = failover_signals(kinds, n)
    t0 = time.time()
    long_sig = failover_signals(kinds + 1, 8 * RATE)[kinds]  # 8 s: an ssm-push run across a join
    refs = reference_outputs(sigs + [long_sig])
    long_ref = refs.pop()
    print(f"reference: {kinds} signals of {n} samples and one of {len(long_sig)} through one standalone daemon in "
          f"{time.time() - t0:.1f} s")

    etcd = Etcd()
    nodes = ["f1", "f2", "f3"]
    ds = {nd: Daemon(etcd, nd, "--checkpoint-s", "1", "--max-streams", str(n_streams + 16)) for nd in nodes}
    pushers, sub, csub = [], None, None
    try:
        wait_members(ds.values(), ds, timeout=30)  # 4 daemons starting on a loaded machine
        directory = Directory(etcd.url)
        names = [f"fo{i:03d}" for i in range(n_streams)]
        pushers = [ClusterPusher(directory, nm, timeout=10, failover_timeout=60, context=ctx) for nm in names]
        placed = {nm: hrw_pick(nm, nodes) for nm in names}
        counts = {nd: sum(1 for nm in names if placed[nm] == nd) for nd in nodes}
        victim = max(nodes, key=lambda nd: counts[nd])  # the member that will be killed
        # a subscriber that follows two of the victim's streams across the switch, the first of
        # them one that a 4th member will be the placement of (so that it also moves at f4's
        # join and at f4's clean stop, 4b), when there is one
        on_f4 = [nm for nm in names if placed[nm] == victim and hrw_pick(nm, nodes + ["f4"]) == "f4"]
        watched = (on_f4[:1] + [nm for nm in names if placed[nm] == victim and nm not in on_f4[:1]])[:2]
        sub = ClusterSubscriber(directory, [f"{nm}/audio/" for nm in watched], rcvbuf=0, rcvhwm=0, context=ctx)
        heard = {nm: [] for nm in watched}
        # and ssm-sub --cluster writing the first of them to a file across every owner change
        cname = watched[0]
        csub_out, csub_err = (os.path.join(TMP, f"{cname}.sub.{x}") for x in ("raw", "err"))
        csub = subprocess.Popen([SSM_SUB, "--cluster", etcd.url, "-q", "--until-end", "-o", csub_out,
                                 "--output-format", "float", f"{cname}/audio/", f"{cname}/event/"],
                                stdout=subprocess.DEVNULL, stderr=open(csub_err, "w"))
        wait_for(lambda: "following the streams of 3 members" in open(csub_err).read(), 10,
                 "ssm-sub --cluster connected to the 3 members")
        wait_for(lambda: len(sub.endpoints) == 3, 10, "the subscriber connected to the 3 members")
        time.sleep(1.0)  # subscriptions reach the daemons asynchronously

        def pump_all(timeout=0.0):
            for p in pushers:
                p.pump()
            while True:
                m = sub.recv(0)
                if m is None:
                    break
                heard[P.parse_topic(m[0])[0]].append(m[1:])
            if timeout:
                time.sleep(timeout)

        def push_until(upto):
            """Every stream's input pushed up to sample upto, chunk by chunk, round robin."""
            a = pushers[0].pushed
            while a < upto:
                b = min(a + chunk, upto)
                for i, p in enumerate(pushers):
                    p.push(sigs[i % kinds][a:b], RATE, block=False)
                pump_all()
                a = b

        # 1. 1.25 s of every stream; wait until each has its first checkpoint acknowledged
        t1 = time.time()
        push_until(20000)
        try:
            wait_for(lambda: pump_all(0.02) or all(p.checkpoint for p in pushers), 60,
                     "every stream's first checkpoint acknowledged")
        except AssertionError:
            slow = [p for p in pushers if not p.checkpoint]
            print(f"{len(slow)} without a checkpoint: " + ", ".join(
                f"{p.stream} on {p.owner and p.owner['node']}: sent {getattr(p, '_sent', None)} received {p.received} "
                f"meta {p.meta is not None} pending {p._ckpt_pending}" for p in slow[:8]))
            for d in ds.values():
                print(d.node, json.dumps(d.cluster()["checkpoints"]))
            raise
        own = owners(ds["f1"])
        check(own == placed, "owners in etcd == HRW over the 3 members")
        check(all(p.owner["node"] == placed[p.stream] for p in pushers), "each pusher on its HRW owner")
        print(f"{n_streams} streams on {counts} (HRW), 1.25 s pushed, first checkpoints acknowledged "
              f"(input sample {pushers[0].checkpoint['input_sample']}) after {time.time() - t1:.1f} s")

        # 2. kill -9 the member with the most streams, halfway through a round of pushes; with
        #    them, 3 ssm-push --cluster runs at real time of streams it owns (the third a stereo
        #    file: streams NAME.0 and NAME.1, placed together), once their second checkpoint is
        #    stored (the first one acknowledged to them long before)
        lost = [p for p in pushers if placed[p.stream] == victim]
        cnames = [nm for nm in (f"cpush{i}" for i in range(300)) if hrw_pick(nm, nodes) == victim][:3]
        cruns = []
        for j, nm in enumerate(cnames):
            wav, out = os.path.join(TMP, f"{nm}.wav"), os.path.join(TMP, f"{nm}.raw")
            write_float_wav(wav, sigs[j] if j < 2 else np.stack([sigs[2], sigs[3]], axis=1))
            cruns.append((nm, j, out, subprocess.Popen(
                [SSM_PUSH, "--cluster", etcd.url, "-s", nm, "--realtime", "-c", "1600", "-o", out, "--output-format",
                 "float", "-v", wav], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        cstreams = cnames[:2] + [cnames[2] + ".0", cnames[2] + ".1"]
        wait_for(lambda: pump_all(0.02) or all(ckpt_input(etcd, nm) >= 32000 for nm in cstreams), 60,
                 "the ssm-push runs' second checkpoints")
        check(all(c[3].poll() is None for c in cruns), "an ssm-push run ended before the kill")
        half = len(pushers) // 2
        b = pushers[0].pushed + chunk
        for i, p in enumerate(pushers[:half]):
            p.push(sigs[i % kinds][b - chunk:b], RATE, block=False)
        before = {p.stream: p.received for p in lost}
        ds[victim].proc.kill()
        t_kill = time.monotonic()
        ds[victim].proc.wait()
        for i, p in enumerate(pushers[half:], half):
            p.push(sigs[i % kinds][b - chunk:b], RATE, block=False)
        print(f"kill -9 {victim} ({len(lost)} streams) at input sample {b} (output received: "
              f"{min(before.values())}..{max(before.values())})")
        push_until(36000)  # 2.25 s, as the lost streams wait for their new owners

        # 3. every lost stream finds its new owner (after the TTL), replays and resumes
        survivors = [nd for nd in nodes if nd != victim]
        wait_for(lambda: pump_all(0.02) or all(p.failovers and p.failovers[0]["t_output"] for p in lost),
                 TTL + 40, "every lost stream resumed on a new owner")
        for p in pushers:
            if p in lost:
                check(len(p.failovers) == 1, f"{p.stream}: {p.failovers}")
                fo = p.failovers[0]
                check(p.owner["node"] == hrw_pick(p.stream, survivors) == fo["to"] and fo["from"] == victim, fo)
                check(fo["resumed"] and fo["resumed"]["node"] == victim and
                      fo["resumed"]["input_sample"] >= fo["replay_from"] > 0, fo)
            else:
                check(not p.failovers and p.owner["node"] == placed[p.stream], f"{p.stream} moved: {p.failovers}")
        rec = sorted(p.failovers[0]["t_output"] - t_kill for p in lost)
        att = sorted(p.failovers[0]["t_attached"] - t_kill for p in lost)
        replayed = [p.failovers[0]["replayed"] for p in lost]
        skipped = [p.failovers[0]["resumed"]["input_sample"] - p.failovers[0]["replay_from"] for p in lost]
        print(f"recovery of the {len(lost)} streams of {victim} (kill -9 -> first new output sample), lease TTL "
              f"{TTL} s: min {rec[0]:.2f} s, median {rec[len(rec) // 2]:.2f} s, p90 {rec[int(len(rec) * 0.9)]:.2f} s, "
              f"max {rec[-1]:.2f} s (resumed meta after {att[0]:.2f}..{att[-1]:.2f} s)")
        print("per-stream recovery s: " + " ".join(f"{p.stream}={p.failovers[0]['t_output'] - t_kill:.2f}"
                                                   for p in lost))
        print(f"replays: from the acknowledged checkpoint, {min(replayed)}..{max(replayed)} samples kept and sent "
              f"again; the new owners resumed from input samples "
              f"{sorted(set(p.failovers[0]['resumed']['input_sample'] for p in lost))} "
              f"({sum(1 for s in skipped if s)} resumed past the acknowledged one)")

        # the ssm-push runs end (before the killed member comes back and their streams would move)
        for nm, j, out, proc in cruns:
            _, err = proc.communicate(timeout=60)
            y = np.fromfile(out, "<f4") if os.path.exists(out) else np.zeros(0, "<f4")
            want = refs[j] if j < 2 else np.stack([refs[2], refs[3]], axis=1).reshape(-1)  # interleaved
            check(proc.returncode == 0 and same_bits(y, want), f"ssm-push --cluster -s {nm}: exit "
                  f"{proc.returncode}, {len(y)} samples, bit-identical {same_bits(y, want)}; stderr:\n{err}")
            check("1 failover(s)" in err and "resumed from input sample" in err, err)
            print(f"ssm-push --cluster -s {nm} --realtime{' (stereo)' if j == 2 else ''}: " +
                  err.strip().split("\n")[-1].replace("ssm-push: ", "") +
                  f"; output bit-identical to the single-daemon run ({len(want)} samples)")

        # 4. the killed member comes back under its name, then a 4th member joins, while the
        #    streams run: the running streams whose placement is now the newcomer move to it
        #    (checkpoint, hand-over, the client's replay, resumed there), the others stay; and
        #    about a quarter of new placements go to the 4th
        def settle(members, upto, what):
            """Pushes on, a little at a time (a stream moves at a frame boundary, and a resumed
            stream left without input for push_idle_s would end), and waits until every stream
            runs on its placement over members; then pushes up to upto (when not beyond it
            already); returns the streams that moved."""
            n_before = {p.stream: len(p.failovers) for p in pushers}

            def settled():
                return all(p.owner and p.meta and p.owner["node"] == hrw_pick(p.stream, members) and
                           (not p.failovers or p.failovers[-1]["t_output"] is not None) for p in pushers)
            t0 = time.time()
            while not settled():
                if time.time() - t0 > 40:
                    for p in [p for p in pushers if not (p.owner and p.meta and
                                                         p.owner["node"] == hrw_pick(p.stream, members))][:5]:
                        print(f"{p.stream}: owner {p.owner}, meta {p.meta is not None}, lost {p._lost}, "
                              f"failovers {[f['reason'] for f in p.failovers]}, sent {getattr(p, '_sent', None)}, "
                              f"received {p.received}, pushed {p.pushed}")
                    raise AssertionError(f"{what}: not within 40 s")
                # past upto when the moves take longer (they start SSMD_MOVE_DELAY_S after a
                # join): a moved stream's first output on its new owner needs new input
                a = pushers[0].pushed
                if a < n - 1600:
                    for i, p in enumerate(pushers):
                        p.push(sigs[i % kinds][a:a + 64], RATE, block=False)
                pump_all(0.05)
            push_until(upto)
            moved = [p for p in pushers if len(p.failovers) > n_before[p.stream]]
            for p in moved:
                fo = p.failovers[-1]
                check(len(p.failovers) == n_before[p.stream] + 1 and fo["reason"].startswith("moved to ") and
                      fo["resumed"] and fo["replay_from"] > 0 and fo["resumed"]["input_sample"] >= fo["replay_from"],
                      f"{p.stream}: {p.failovers}")
            return moved

        def registered():
            try:
                return ds[victim].healthy()
            except zmq.Again:  # not answering yet: starting on a loaded machine
                return False
        own_before = owners(ds[survivors[0]])
        # plain Pushers (no FOLLOWS flag: they cannot follow a move) of streams that the
        # restarted member will be the placement of: they stay where they are
        from ssmd import Pusher as PlainPusher
        plain = [nm for nm in (f"plain{i}" for i in range(100)) if hrw_pick(nm, survivors) != hrw_pick(nm, nodes)][:2]
        plain_p = [PlainPusher(ds[hrw_pick(nm, survivors)].ingest, nm, timeout=30, context=ctx) for nm in plain]
        for j, q in enumerate(plain_p):
            q.push(sigs[j][:n // 2], RATE)
        ds[victim].start()
        wait_for(registered, 30, f"{victim} registered again")
        wait_members(ds.values(), nodes, timeout=30)
        back = settle(nodes, 38400, f"streams back on {victim}")
        check(sorted(p.stream for p in back) == sorted(nm for nm in names if placed[nm] != own_before[nm]),
              "exactly the streams placed on the restarted member moved back")
        own_plain = owners(ds[victim])
        check(all(own_plain.get(nm) == hrw_pick(nm, survivors) for nm in plain),
              f"a plain client's stream moved: {({nm: own_plain.get(nm) for nm in plain})}")
        for j, q in enumerate(plain_p):
            q.push(sigs[j][n // 2:], RATE)
            q.finish()
            check(same_bits(q.collect(timeout=30)[:, 0], refs[j]), f"{plain[j]}: the plain client's output differs")
            q.close()
        print(f"{victim} restarted: the {len(back)} streams placed on it moved back to it (hand-over at a checkpoint, "
              f"replay, resume); the other {n_streams - len(back)} stayed, and so did {len(plain)} streams of plain "
              f"Pushers placed on it now (no FOLLOWS flag), their output bit-identical")

        probe = [f"new{i:03d}" for i in range(200)]
        before = {nm: ds[victim].ctl("locate", stream=nm)["node"] for nm in probe}
        check(before == {nm: hrw_pick(nm, nodes) for nm in probe}, "locate == HRW over the 3 members")
        live = nodes + ["f4"]
        # and an ssm-push --cluster run of a stream the 4th member will be the placement of,
        # running at real time when it joins (past its first checkpoint): it follows the move
        mname = next(nm for nm in (f"cmove{i}" for i in range(300)) if hrw_pick(nm, live) == "f4")
        mwav, mout = os.path.join(TMP, f"{mname}.wav"), os.path.join(TMP, f"{mname}.raw")
        write_float_wav(mwav, long_sig)
        mproc = subprocess.Popen([SSM_PUSH, "--cluster", etcd.url, "-s", mname, "--realtime", "-c", "1600", "-o", mout,
                                  "--output-format", "float", "-v", mwav], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)

        def trickle():
            """A little more input for every stream (a resumed stream idle for push_idle_s ends)."""
            a = pushers[0].pushed
            if a < 40000:
                for i, p in enumerate(pushers):
                    p.push(sigs[i % kinds][a:a + 160], RATE, block=False)
            pump_all(0.05)
        wait_for(lambda: trickle() or ckpt_input(etcd, mname) >= 16128, 30, f"{mname}'s first checkpoint")
        ds["f4"] = Daemon(etcd, "f4", "--checkpoint-s", "1", "--max-streams", str(n_streams + 16))
        wait_for(lambda: trickle() or all(d.members() == live for d in ds.values()), 30, "4 members listed")
        check(mproc.poll() is None, f"ssm-push -s {mname} ended before f4 joined")
        t_join = time.monotonic()
        to_f4 = settle(live, 41600, "streams on f4")
        _, err = mproc.communicate(timeout=60)
        y = np.fromfile(mout, "<f4") if os.path.exists(mout) else np.zeros(0, "<f4")
        check(mproc.returncode == 0 and same_bits(y, long_ref) and f"{mname} moved from node" in err and
              "to node f4" in err, f"ssm-push --cluster -s {mname}: exit {mproc.returncode}, {len(y)} samples; "
              f"stderr:\n{err}")
        print(f"ssm-push --cluster -s {mname} --realtime across f4's join: " +
              [ln for ln in err.split("\n") if "moved from" in ln][0].replace("ssm-push: ", "") +
              f"; output bit-identical to the single-daemon run ({len(y)} samples)")
        want = sorted(nm for nm in names if hrw_pick(nm, live) == "f4")
        check(sorted(p.stream for p in to_f4) == want, "exactly the streams placed on f4 moved")
        check(owners(ds["f4"]) == {nm: hrw_pick(nm, live) for nm in names}, "owner keys == HRW over the 4 members")
        check(0.15 <= len(to_f4) / n_streams <= 0.35, f"{len(to_f4)} of {n_streams} streams moved to f4")
        mv = sorted(p.failovers[-1]["t_output"] - t_join for p in to_f4)
        after = {nm: ds["f4"].ctl("locate", stream=nm)["node"] for nm in probe}
        moved_new = [nm for nm in probe if before[nm] != after[nm]]
        check(after == {nm: hrw_pick(nm, live) for nm in probe}, "locate == HRW over the 4 members")
        check(all(after[nm] == "f4" for nm in moved_new), "new placements move to f4 only")
        check(0.15 <= len(moved_new) / len(probe) <= 0.35, f"{len(moved_new)} of {len(probe)} new placements moved")
        print(f"f4 joined: {len(to_f4)} of {n_streams} running streams ({len(to_f4) / n_streams:.2f}) moved to it "
              f"(from the join to each one's first output there: {mv[0]:.2f}..{mv[-1]:.2f} s, median "
              f"{mv[len(mv) // 2]:.2f} s), none elsewhere, the other {n_streams - len(to_f4)} stayed; "
              f"{len(moved_new)} of {len(probe)} new placements ({len(moved_new) / len(probe):.2f}) go to f4")

        # 4b. a clean stop (SIGTERM) of f4 while the streams run: it leaves the member list
        #     first and hands each of its streams over to its placement among the other three
        #     (checkpoint, `moved`, the client's replay, resumed there), then exits 0
        t_term = time.monotonic()
        ds["f4"].proc.send_signal(signal.SIGTERM)
        away = settle(nodes, 43200, "streams handed over by f4's clean stop")
        rc4 = ds["f4"].stop()
        log4 = ds["f4"].log()
        check(rc4 == 0, f"f4 exit status {rc4} after SIGTERM")
        check(sorted(p.stream for p in away) == want, "exactly f4's streams moved away at its stop")
        check(f"handing {len(want)} streams over to the other members first" in log4 and
              "not handed over" not in log4, "f4's log: " + "\n".join(log4.splitlines()[-8:]))
        check(owners(ds[victim]) == {nm: hrw_pick(nm, nodes) for nm in names}, "owner keys == HRW over 3 members")
        mv = sorted(p.failovers[-1]["t_output"] - t_term for p in away)
        print(f"f4 stopped (SIGTERM): its {len(away)} streams were handed over to the other members before it "
              f"exited 0 (from the signal to each one's first output on its new member: {mv[0]:.2f}..{mv[-1]:.2f} s, "
              f"median {mv[len(mv) // 2]:.2f} s); the other {n_streams - len(away)} did not move")
        del ds["f4"]

        # 5. the rest, the end, and every output against the single-daemon run
        push_until(n)
        for p in pushers:
            p.finish(block=False)
        wait_for(lambda: pump_all(0.02) or all(p.ended for p in pushers), 120, "every stream's end")
        bad = [p.stream for i, p in enumerate(pushers) if not same_bits(p.output()[:, 0], refs[i % kinds])]
        check(not bad, f"{len(bad)} streams differ from the single-daemon run: {bad[:10]}")
        kept = max(p.pushed - p.kept_from for p in pushers)
        wait_for(lambda: pump_all(0.05) or all(heard[nm] and heard[nm][-1][0].flags & P.FLAG_END_OF_STREAM
                                                for nm in watched), 20, "the subscriber's end of stream")
        for j, nm in enumerate(watched):
            hs = [h for h, _ in heard[nm]]
            y = np.concatenate([v[:, 0] for _, v in heard[nm]])
            ref = refs[names.index(nm) % kinds]
            check([h.seq for h in hs] == list(range(len(hs))) and hs[0].first_sample == 0, f"{nm}: subscriber seq")
            gaps = [(a, b) for t, a, b in sub.gaps if t.startswith(f"{nm}/")]
            if not gaps:
                check(same_bits(y, ref), f"{nm}: the subscriber's audio differs")
                continue
            # a member's PUB socket drops what it published before this SUB had (re)connected to
            # it (a restarted or joining member can replay a client's kept input faster than
            # that): each such hole is flagged (DISCONTINUITY, .gaps), and every sample that did
            # arrive must still be the single-daemon run's, at its place
            at, ok = 0, True
            for h, v in heard[nm]:
                ok &= h.first_sample >= at and same_bits(v[:, 0], ref[h.first_sample:h.first_sample + len(v)])
                ok &= h.first_sample == at or (at, h.first_sample) in gaps
                at = h.first_sample + len(v)
            missed = sum(b - a for a, b in gaps)
            check(ok and at == len(ref) and len(y) + missed == len(ref),
                  f"{nm}: subscriber audio vs the single-daemon run with flagged gaps {gaps}")
            print(f"{nm}: the subscriber was not connected to the new owner in time: {missed} samples missed, "
                  f"flagged at {gaps}; every sample received is the single-daemon run's")
        check(sub.dropped == sum(b - a for _, a, b in sub.gaps) and sub.duplicates > 0,
              (sub.gaps, sub.dropped, sub.duplicates))
        # ssm-sub --cluster: its file is the single-daemon run's output, except the samples it
        # reports missed (silence there), and it stopped at the stream's true end, not at the
        # `end` of an owner that handed the stream over
        csub.wait(timeout=30)
        cerr = open(csub_err).read()
        y = np.fromfile(csub_out, "<f4") if os.path.exists(csub_out) else np.zeros(0, "<f4")
        ref = refs[names.index(cname) % kinds]
        holes = [tuple(int(v) for v in re.search(r"samples (\d+)\.\.(\d+) missed", ln).groups())
                 for ln in cerr.splitlines() if " missed" in ln and "samples" in ln and ".." in ln]
        mask = np.ones(len(ref), bool)
        for a, b in holes:
            mask[a:b + 1] = False
        missed = sum(b - a + 1 for a, b in holes)
        check(csub.returncode == 0 and len(y) == len(ref) and same_bits(y[mask], ref[mask]) and
              not y[~mask].any() and missed <= 8192,
              f"ssm-sub --cluster: exit {csub.returncode}, {len(y)} of {len(ref)} samples, holes {holes}; "
              f"stderr:\n{cerr}")
        summary = [ln for ln in cerr.splitlines() if ln.startswith("ssm-sub: --cluster: ") and "owner change" in ln]
        changes = int(re.search(r"--cluster: (\d+) owner change", summary[0]).group(1)) if summary else 0
        want_changes = 2 + 2 * (hrw_pick(cname, live) == "f4")  # the audio topic alone has these
        check(changes >= want_changes, f"ssm-sub --cluster: {changes} owner changes, at least {want_changes} "
              f"expected; stderr:\n{cerr}")
        print(f"ssm-sub --cluster on {cname} (audio, events): {summary[0].replace('ssm-sub: --cluster: ', '')}; "
              f"the file is the single-daemon run's output" +
              (f" except the {missed} samples reported missed (silence)" if holes else ""))
        # each watched stream changed owner at the kill, back to the restarted member, and to f4
        # when it is placed there, and away from f4 at its stop
        want = sorted(t for nm in watched for t in (2 + 2 * (hrw_pick(nm, live) == "f4")) * [f"{nm}/audio/"])
        check(sorted(t for t, _, _ in sub.switches) == want, sub.switches)
        print(f"a ClusterSubscriber on {', '.join(watched)}/audio/ across the switch: "
              f"{' and '.join(str(len(heard[nm])) for nm in watched)} messages, seq 0.. without a gap or a repeat, "
              f"{sub.duplicates} samples the new owners published again dropped, {len(sub.switches)} owner changes; "
              f"the audio bit-identical to the single-daemon run")
        print(f"all {n_streams} streams ended: every output ({n} samples each) bit-identical to the "
              f"single-daemon run, {len(lost)} of them across the failover; at most {kept} input samples kept "
              f"at the end; {time.time() - t1:.1f} s")
        wait_for(lambda: not set(names) & set(owners(ds[victim])), 20, "owner keys released")
    finally:
        for p in pushers:
            p.close()
        if sub is not None:
            sub.close()
        if csub is not None and csub.poll() is None:
            csub.kill()
        for d in ds.values():
            d.stop(signal.SIGKILL)
        etcd.stop()
        ctx.destroy(linger=0)


def t_frozen():
    """The owner frozen (SIGSTOP) longer than the lease TTL and the clients' timeout, then
    thawed (docs/cluster.md, "Failure behaviour": the lease was lost): the clients (Python
    ClusterPusher, ssm-push --cluster) fail over to another member, which resumes the streams
    from the checkpoint; the thawed member registers again under a new lease, finds the streams
    claimed by the other member and closes its stale copies at once (no stream processed by
    two members); it is their placement again, so they are handed back to it, and the clients
    go there although they had marked it dead.  Every output is bit-identical to a single
    daemon's, every sample comes back."""
    global TTL
    from ssmd.cluster import ClusterPusher
    TTL = 2
    n = 12 * RATE  # pushed at real time: 4 s left after the thaw, for the hand-over back
    x_py, x_c = failover_signals(2, n)
    ref_py, ref_c = reference_outputs([x_py, x_c])
    etcd = Etcd()
    nodes = ["z1", "z2", "z3"]
    ds = {nd: Daemon(etcd, nd, "--checkpoint-s", "1") for nd in nodes}
    victim = "z1"
    cand = [f"frz{i}" for i in range(200)]
    py_name, c_name = [nm for nm in cand if hrw_pick(nm, nodes) == victim][:2]
    proc = None
    try:
        wait_members(ds.values(), ds, timeout=30)
        wav, out = os.path.join(TMP, "frozen.wav"), os.path.join(TMP, "frozen.raw")
        write_float_wav(wav, x_c)
        proc = subprocess.Popen([SSM_PUSH, "--cluster", etcd.url, "-s", c_name, "--realtime", "-c", "1600", "-t", "3",
                                 "--failover-timeout", "30", "-o", out, "--output-format", "float", "-v", wav],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        p = ClusterPusher(etcd.url, py_name, timeout=3, failover_timeout=30)
        chunk, k, t0 = 1600, 0, time.monotonic()
        stopped = thawed = None
        seen_twice = []

        def holders(name):
            """The members whose `streams` list name (the live ones)."""
            return [nd for nd, d in ds.items() if any(s["name"] == name for s in d.ctl("streams")["streams"])]

        while k < n or not p.ended:
            if k < n:
                p.push(x_py[k:k + chunk], RATE, block=False)
                k += chunk
                if k >= n:
                    p.finish(block=False)
            t_next = time.monotonic() + 0.1
            while time.monotonic() < t_next:
                p.pump(0.02)
            now = time.monotonic() - t0
            if stopped is None and now > 2.0:
                check(p.owner and p.owner["node"] == victim, f"{py_name}: pushed to {p.owner}, not {victim}")
                ds[victim].proc.send_signal(signal.SIGSTOP)
                stopped = now
                print(f"SIGSTOP {victim} at {now:.1f} s (lease TTL {TTL} s, client timeout 3 s)")
            elif stopped is not None and thawed is None and now > stopped + 6:
                ds[victim].proc.send_signal(signal.SIGCONT)
                thawed = now
                print(f"SIGCONT {victim} at {now:.1f} s")
            elif thawed is not None and now > thawed + 1.0:
                for nm in (py_name, c_name):
                    h = holders(nm)
                    if len(h) > 1:
                        seen_twice.append((round(now, 1), nm, h))
            check(now < 60, f"{py_name}: not done after 60 s: owner {p.owner}, failovers {p.failovers}")
        y = p.output()[:, 0]
        print(f"{py_name} (ClusterPusher): failovers " +
              ", ".join(f"{f['from']}->{f['to']} ({f['reason']})" for f in p.failovers))
        check(len(y) == n and same_bits(y, ref_py), f"{py_name}: {len(y)} of {n} samples, bit-identical "
              f"{same_bits(y, ref_py)}")
        _, err = proc.communicate(timeout=60)
        yc = np.fromfile(out, "<f4") if os.path.exists(out) else np.zeros(0, "<f4")
        check(proc.returncode == 0 and same_bits(yc, ref_c), f"ssm-push --cluster -s {c_name}: exit {proc.returncode}, "
              f"{len(yc)} of {n} samples, bit-identical {same_bits(yc, ref_c)}; stderr:\n{err}")
        print(f"ssm-push --cluster -s {c_name}: " + err.strip().split("\n")[-1].replace("ssm-push: ", ""))
        check(not seen_twice, f"streams processed by two members after the thaw: {seen_twice}")
        left = {nd: [s["name"] for s in d.ctl("streams")["streams"]] for nd, d in ds.items()}
        check(not any(left.values()), f"streams still open after the end: {left}")
        c = ds[victim].cluster()
        log = ds[victim].log()
        check(c["stale_closed"] == 2 and log.count("closing this node's stale copy") == 2,
              f"{victim}: stale_closed {c['stale_closed']}; log:\n{log[-3000:]}")
        check("both process it" not in log, log[-3000:])
        check(all(f["to"] != f["from"] for f in p.failovers) and p.failovers[-1]["to"] == victim, p.failovers)
        print(f"{victim} closed its 2 stale copies (stale_closed {c['stale_closed']}); both streams handed back to "
              f"it; outputs bit-identical to the single-daemon run ({n} samples each)")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for d in ds.values():
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
                d.stop()
        etcd.stop()


def main():
    tests = {"membership": t_membership, "placement": t_placement, "outage": t_outage, "checkpoint": t_checkpoint,
             "failover": t_failover, "frozen": t_frozen}
    t0 = time.time()
    try:
        tests[ONLY]()
    except Exception:
        for f in sorted(os.listdir(TMP)):
            if f.endswith(".log"):
                print(f"--- {f}:\n" + open(os.path.join(TMP, f), errors="replace").read()[-3000:])
        raise
    finally:
        if os.environ.get("SSMD_TEST_KEEP"):  # the logs, for a look after a failure
            shutil.copytree(TMP, os.environ["SSMD_TEST_KEEP"], dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("etcd", "*.ckpt"))
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"{ONLY}: ok in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
