#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Soak and fault harness for ssmd (docs/reliability.md, "Fuzzing, sanitizers
and soak").  Not part of the default test run.

Starts one daemon (TCP on loopback, the paced virtual microphone of
tests/daemon/vmic as --input mic, max_streams 64, push_idle_s 3) and, for --minutes:
  - 32 pushing clients (bench/soak.py --role pushers, 8 threads a process,
    the Python Pusher): half paced at real time in 100 ms chunks, half as fast
    as possible in 1 s chunks; each pushes streams of 3-20 s of audio one
    after another and checks that every sample comes back;
  - 8 subscribers (the Python Subscriber) of the real-time streams: 5 fast
    with docs/protocol.md's lossless settings (rcvhwm 0, rcvbuf 0; no gap
    allowed), 2 slow with the default buffers (read 50 messages/s; the age of
    what they read must stay below the documented bound for the daemon's
    pub_hwm and pub_sndbuf, or --age-bound-s), 1 stopped with SIGSTOP for a
    while, then continued (it must receive again);
  - a client killed with SIGKILL mid-stream every 20 s (its stream must be
    expired by push_idle_s, so slots are not leaked);
  - control requests every 0.25 s (status; streams, reset, snapshot/restore
    of the microphone stream now and then), each timed; SIGHUP reloads every
    30 s (the config file's vad_grace_ms toggles);
  - RSS and CPU time of the daemon sampled every second, frames from status.
At the end the daemon gets SIGTERM and must exit 0.  Prints one JSON summary
and exits 1 when a check fails: every pushed sample returned, fast
subscribers contiguous, slow ones within the age bound, the stopped one
resumed, killed clients' streams expired, RSS and CPU time per frame flat
(last tenth of the run against the first, after --warmup-s), every status answered within
--status-ms (50), the daemon's exit status and stderr clean.

Usage: nice -n 19 /usr/bin/python3 bench/soak.py --ssmd build/daemon/ssmd \
         --model build/tests/daemon/random.safetensors --minutes 60
(--model defaults to models/default.safetensors; the microphone is
tests/daemon/vmic's paced device, built as
BUILD/tests/daemon/libasound_module_pcm_ssmd_paced.so; --unpaced-vmic takes
the unpaced one, --no-vmic leaves it out.)  Uses Debian's python3 with numpy and zmq.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from ssmd.pusher import Pusher  # noqa: E402
from ssmd.subscriber import RCVBUF_BYTES, RCVHWM, Subscriber  # noqa: E402

RATE = 16000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signal_source(seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


# ---- child roles -------------------------------------------------------------

def role_pushers(a):
    """Threads of pushing clients; prints one JSON line of totals."""
    src = signal_source(20, a.index)
    deadline = time.time() + a.seconds
    lock = threading.Lock()
    tot = {"streams": 0, "pushed": 0, "returned": 0, "failures": [], "max_send_gap_s": 0.0}

    def client(j):
        k = 0
        rnd = random.Random(a.index * 100 + j)
        while time.time() < deadline:
            n = int(rnd.uniform(3, 20) * RATE)
            t0 = time.time()
            name = f"{a.kind}{a.index}x{j}-{k}-{int(t0 * 1000)}"
            k += 1
            try:
                p = Pusher(a.ingest, name, timeout=60)
                chunk = RATE // 10 if a.kind == "rt" else RATE
                t_sent = None
                for o in range(0, n, chunk):
                    p.push(src[o:min(o + chunk, n)], RATE)
                    if t_sent is not None:  # the longest a client went between two sends
                        tot["max_send_gap_s"] = max(tot["max_send_gap_s"], time.time() - t_sent)
                    t_sent = time.time()
                    if a.kind == "rt":
                        wait = t0 + (o + chunk) / RATE - time.time()
                        if wait > 0:
                            time.sleep(wait)
                p.finish()
                got = len(p.collect(timeout=60))
                p.close()
                ok = got == n == p.pushed
                with lock:
                    tot["streams"] += 1
                    tot["pushed"] += n
                    tot["returned"] += got
                    if not ok:
                        tot["failures"].append(f"{name}: pushed {n}, returned {got}")
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with lock:
                    tot["streams"] += 1
                    tot["pushed"] += n
                    tot["failures"].append(f"{name}: {type(e).__name__}: {e}")

    th = [threading.Thread(target=client, args=(j,)) for j in range(a.threads)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    print(json.dumps(tot), flush=True)


def role_sub(a):
    """One subscriber; slow ones read at most 50 messages/s.  Prints one
    JSON line: messages, dropped (seq gaps), max age (s) of real-time and
    microphone audio, messages after a SIGCONT."""
    # lossless ("fast") subscribers take docs/protocol.md's settings for a consumer that must not
    # lose anything while it keeps up on average: no client queue limit, the kernel's autotuned
    # receive buffer; the others keep the Subscriber's defaults (a bounded backlog)
    rcvbuf, rcvhwm = (0, 0) if a.lossless else (RCVBUF_BYTES, RCVHWM)
    sub = Subscriber(a.pub, a.topics.split(","), connect_timeout=10, rcvbuf=rcvbuf, rcvhwm=rcvhwm)
    deadline = time.time() + a.seconds
    res = {"messages": 0, "dropped": 0, "max_age_s": 0.0, "after_cont": 0, "ages_over": 0,
           "rcvbuf": rcvbuf, "rcvhwm": rcvhwm, "min_audio_msg_bytes": None, "read_s": 0.0}
    ages = {"rt": [], "mic": []}  # per audio message: the real-time streams', the microphone's
    t_first = None
    conts = []
    signal.signal(signal.SIGCONT, lambda *_: conts.append(time.time()))
    while time.time() < deadline:
        m = sub.recv(timeout=0.5)
        if m is None:
            continue
        topic, h, payload = m
        res["messages"] += 1
        if t_first is None:
            t_first = time.time()
        res["read_s"] = time.time() - t_first
        if conts:
            res["after_cont"] += 1
        if h.kind == 1 and h.rows:
            mb = len(payload) + 64  # the header frame (docs/protocol.md: m = payload + 64 bytes)
            res["min_audio_msg_bytes"] = min(res["min_audio_msg_bytes"] or mb, mb)
            now = time.time()
            name = topic.split("/")[0]
            if h.capture_ns:
                age = now - h.capture_ns * 1e-9 - h.rows / h.sample_rate_hz
                ages["mic"].append(age)
            elif name.startswith("rt"):
                t0 = int(name.rsplit("-", 1)[1]) / 1000.0
                age = now - (t0 + (h.first_sample + h.rows) / h.sample_rate_hz)
                ages["rt"].append(age)
            else:
                age = 0.0
            res["max_age_s"] = max(res["max_age_s"], age)
            res["ages_over"] += a.age_bound_s > 0 and age > a.age_bound_s
        if a.slow:
            time.sleep(0.02)
    res["dropped"] = sub.dropped
    for k, v in ages.items():  # the age distribution (s) of what it read, per kind of stream
        if v:
            res[f"{k}_age_p50_s"], res[f"{k}_age_p99_s"] = (round(float(x), 3) for x in np.percentile(v, [50, 99]))
            res[f"{k}_age_max_s"] = round(float(max(v)), 3)
    sub.close()
    print(json.dumps(res), flush=True)


def role_victim(a):
    """A client that pushes at real time until it is killed."""
    name = f"victim{a.index}-{int(time.time() * 1000)}"
    print(name, flush=True)
    p = Pusher(a.ingest, name)
    src = signal_source(20, a.index)
    t0 = time.time()
    for o in range(0, len(src), 1600):
        p.push(src[o:o + 1600], RATE)
        time.sleep(max(0.0, t0 + (o + 1600) / RATE - time.time()))
    time.sleep(3600)


# ---- the conductor -----------------------------------------------------------

class Daemon:
    def __init__(self, a, workdir):
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
        self.conf = os.path.join(workdir, "ssmd.conf")
        self.write_conf(200)
        env = dict(os.environ)
        if a.control_trace:
            env["SSMD_CONTROL_TRACE"] = "1"
        args = [a.ssmd, "--model", a.model, "--pub", self.pub, "--ingest", self.ingest,
                "--control", self.control, "-c", self.conf, "--max-streams", "64",
                "--threads", str(a.threads), "--push-idle-s", "3", "--log-level", a.log_level]
        if a.pub_hwm:
            args += ["--pub-hwm", str(a.pub_hwm)]
        if a.vmic:
            src = signal_source(60, 99)
            src.astype("<f4").tofile(os.path.join(workdir, "mono.f32"))
            vdir = os.path.join(ROOT, "tests", "daemon", "vmic")
            text = open(os.path.join(vdir, "asoundrc.in")).read()
            if not a.unpaced_vmic:  # the paced device (vmic/pcm_paced.c): real time, as a sound card
                text += open(os.path.join(vdir, "paced.asoundrc.in")).read().replace(
                    "@PACED_LIB@", os.path.abspath(a.paced_lib))
            with open(os.path.join(workdir, "asoundrc"), "w") as f:
                f.write(text.replace("@DIR@", workdir))
            env.update(ALSA_CONFIG_PATH=os.path.join(workdir, "asoundrc"), HOME=workdir)
            args += ["--input", "mic", "--device", "ssmd_vmic" if a.unpaced_vmic else "ssmd_paced_mic"]
        else:
            args += ["--input", "none"]
        self.errpath = os.path.join(workdir, "ssmd.stderr")
        self.proc = subprocess.Popen(args, stderr=open(self.errpath, "w"), env=env)
        self.ctx = zmq.Context.instance()
        self.req = None
        self.traces = []

    def write_conf(self, grace_ms):
        with open(self.conf, "w") as f:
            f.write(f"vad_grace_ms = {grace_ms}\n")

    def ctl(self, req, extra=None, timeout=2.0, trace=False):
        """Returns (reply dict, extra frames, seconds), or (None, [], timeout); trace: keep the
        parts of the round trip when the reply carries them (--control-trace)."""
        if self.req is None:
            self.req = self.ctx.socket(zmq.REQ)
            self.req.setsockopt(zmq.LINGER, 0)
            self.req.connect(self.control)
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.req.send_multipart([json.dumps(req).encode()] + ([extra] if extra is not None else []))
        if not self.req.poll(int(timeout * 1000)):
            self.req.close()
            self.req = None
            return None, [], timeout
        frames = self.req.recv_multipart()
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        reply = json.loads(frames[0])
        tr = reply.get("trace") if isinstance(reply, dict) else None
        if tr and trace:  # --control-trace: where the round trip went (CLOCK_MONOTONIC, the daemon's clock too)
            self.traces.append({"rtt": t1 - t0, "in": tr["read_ns"] - t0, "handle": tr["reply_ns"] - tr["read_ns"],
                                "out": t1 - tr["reply_ns"],
                                "gap": tr["read_ns"] - max(t0, tr["idle_ns"]),
                                "cpu": min(tr["cpu_ns"], tr["read_ns"] - max(t0, tr["idle_ns"]))})
        return reply, frames[1:], (t1 - t0) * 1e-9

    def thread_cpu(self):
        """CPU seconds of each of the daemon's threads, in creation order (tid): the loop thread
        (tid = pid) first; ZeroMQ's are named ZMQbg/..., the step workers and PortAudio's callback
        thread keep the process's name (created in that order)."""
        out = []
        tck = os.sysconf("SC_CLK_TCK")
        for tid in sorted(int(t) for t in os.listdir(f"/proc/{self.proc.pid}/task")):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{self.proc.pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            out.append({"tid": tid, "comm": comm, "cpu_s": round((int(fields[11]) + int(fields[12])) / tck, 2)})
        return out

    def proc_sample(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, cpu


def child(a, role, *extra):
    # The load (pushers, killed clients) runs --load-nice below the harness: the daemon and
    # its subscribers are what is measured, and a subscriber starved by the load generator
    # on the same cores would lose messages that a consumer on its own core would not.
    nice = a.load_nice if role in ("pushers", "victim") else 0
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", role,
                             "--seconds", str(a.seconds), *extra],
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)


def tenth_means(series, key):
    """Means of key over the first and the last tenth of series."""
    n = max(1, len(series) // 10)
    first = [s[key] for s in series[:n]]
    last = [s[key] for s in series[-n:]]
    return float(np.mean(first)), float(np.mean(last))


def age_bound(a, limits, r):
    """The age bound of a slow subscriber (seconds): --age-bound-s when set, else docs/protocol.md's
    backlog = pub_hwm + rcvhwm + (2*pub_sndbuf + 2*rcvbuf + 16384) / m messages (m: the smallest
    audio message it received, so the largest backlog) read at the rate it read (messages over
    the seconds it read), plus --age-slack-s for the processing and scheduling delay."""
    if a.age_bound_s > 0:
        return a.age_bound_s
    m, hwm, sndbuf = r.get("min_audio_msg_bytes"), limits.get("pub_hwm"), limits.get("pub_sndbuf")
    if not m or hwm is None or not sndbuf or not r.get("rcvbuf") or r["read_s"] <= 0:
        return None  # an unbounded buffer somewhere, or nothing read: no documented bound
    backlog = hwm + r["rcvhwm"] + (2 * sndbuf + 2 * r["rcvbuf"] + 16384) / m
    rate = r["messages"] / r["read_s"]
    return round(backlog / rate + a.age_slack_s, 2)


def conduct(a):
    a.seconds = a.minutes * 60.0
    workdir = tempfile.mkdtemp(prefix="ssmd-soak-")
    d = Daemon(a, workdir)
    t_start = time.time()
    first_status = None
    for _ in range(100):
        first_status, _, _ = d.ctl({"version": 1, "cmd": "status"}, timeout=0.2)
        if first_status:
            break
        if d.proc.poll() is not None:
            sys.exit("soak: the daemon exited at start: " + open(d.errpath).read())
    common = ["--pub", d.pub, "--ingest", d.ingest, "--age-bound-s", str(a.age_bound_s)]
    subs = []
    for i in range(a.subscribers):
        kind = "slow" if i in (5, 6) else "stopped" if i == 7 else "fast"
        topics = "rt0x,rt1x,mic/audio/" if kind == "slow" else "rt"
        subs.append((kind, child(a, "sub", "--topics", topics, *(["--slow"] if kind == "slow" else []),
                                 *(["--lossless"] if kind == "fast" else []), *common)))
    time.sleep(1.0)  # subscriptions in place before the first stream
    per = 8
    pushers = []
    n_proc = max(1, a.pushers // per)
    for i in range(n_proc):
        kind = "rt" if i < n_proc // 2 or n_proc == 1 else "ff"
        if kind == "ff" and a.no_bulk:
            continue
        pushers.append(child(a, "pushers", "--kind", kind, "--index", str(i), "--threads",
                             str(min(per, a.pushers - i * per)), *common))
    series, lat, timeouts, errors, victims, killed = [], [], 0, [], [], 0
    stopped = next((p for k, p in subs if k == "stopped"), None)
    stop_at, cont_at = a.seconds * 0.3, a.seconds * 0.3 + min(20.0, a.seconds / 5)
    stop_state = 0
    next_hup, next_victim, next_sample, tick, hups = 30.0, 10.0, 0.0, 0, 0
    victim = None
    while time.time() - t_start < a.seconds:
        now = time.time() - t_start
        if d.proc.poll() is not None:
            errors.append(f"daemon exited with {d.proc.returncode} at {now:.0f} s")
            break
        r, _, dt = d.ctl({"version": 1, "cmd": "status"}, trace=True)
        if r is None:
            timeouts += 1
        else:
            lat.append(dt)
        tick += 1
        if now >= next_sample and r is not None:
            rss, cpu = d.proc_sample()
            series.append({"t": now, "rss": rss, "cpu": cpu, "frames": r["counters"]["frames"],
                           "streams": r["streams"]})
            next_sample = now + 1.0
        if tick % 10 == 0:
            sr, _, _ = d.ctl({"version": 1, "cmd": "streams"})
            names = [s["name"] for s in (sr or {}).get("streams", [])]
            if names and tick % 20 == 0:
                d.ctl({"version": 1, "cmd": "reset", "stream": random.choice(names)})
            if "mic" in names and tick % 40 == 0:
                sn, extra, _ = d.ctl({"version": 1, "cmd": "snapshot", "stream": "mic"})
                if sn and sn.get("ok") and extra:
                    rr, _, _ = d.ctl({"version": 1, "cmd": "restore", "stream": "mic"}, extra[0])
                    if rr is None:
                        timeouts += 1  # unanswered: counted with the status requests
                    elif not rr.get("ok"):
                        errors.append(f"restore of mic failed: {rr}")
        if now >= next_hup:
            hups += 1
            d.write_conf(200 if hups % 2 == 0 else 300)
            d.proc.send_signal(signal.SIGHUP)
            next_hup += 30.0
        if now >= next_victim and now < a.seconds - 10:
            if victim is not None:
                victim.kill()
                victim.wait()
                killed += 1
            victim = child(a, "victim", "--index", str(len(victims)), *common)
            victims.append(victim.stdout.readline().strip())
            next_victim += random.uniform(1.0, 4.0) if len(victims) % 2 else 20.0
        if stopped and stop_state == 0 and now >= stop_at:
            stopped.send_signal(signal.SIGSTOP)
            stop_state = 1
        if stopped and stop_state == 1 and now >= cont_at:
            stopped.send_signal(signal.SIGCONT)
            stop_state = 2
        time.sleep(a.status_interval_s)
    if victim is not None:
        victim.kill()
        victim.wait()
        killed += 1
    if stopped and stop_state == 1:
        stopped.send_signal(signal.SIGCONT)
    # the pushers finish the stream they are in
    push_res = []
    for p in pushers:
        out, _ = p.communicate(timeout=180)
        push_res.append(json.loads(out.strip().splitlines()[-1]) if out.strip() else None)
    sub_res = []
    for k, p in subs:
        out, _ = p.communicate(timeout=60)
        sub_res.append((k, json.loads(out.strip().splitlines()[-1]) if out.strip() else None))
    time.sleep(5.0)  # push_idle_s (3) + a margin: the killed clients' streams expire
    sr, _, _ = d.ctl({"version": 1, "cmd": "streams"})
    left = [s["name"] for s in (sr or {}).get("streams", []) if s["name"].startswith("victim")]
    final_status, _, _ = d.ctl({"version": 1, "cmd": "status"})
    threads_cpu = d.thread_cpu() if d.proc.poll() is None else []
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        rc = "timeout"
    err = open(d.errpath).read()
    if a.keep_stderr:
        shutil.copy(d.errpath, a.keep_stderr)
    shutil.rmtree(workdir, ignore_errors=True)

    checks = {}
    ok_push = [r for r in push_res if r]
    pushed = sum(r["pushed"] for r in ok_push)
    returned = sum(r["returned"] for r in ok_push)
    failures = [f for r in ok_push for f in r["failures"]]
    checks["every_pushed_sample_returned"] = (len(ok_push) == len(pushers) and not failures
                                              and pushed == returned and pushed > 0)
    fast = [r for k, r in sub_res if k == "fast"]
    checks["fast_subscribers_contiguous"] = (all(r and r["dropped"] == 0 and r["messages"] > 0 for r in fast)
                                             and len(fast) > 0)
    slow = [r for k, r in sub_res if k == "slow"]
    limits = (first_status or {}).get("limits", {})
    for r in slow:
        if r:
            r["age_bound_s"] = age_bound(a, limits, r)
    checks["slow_subscribers_within_age_bound"] = all(r and r["age_bound_s"] is not None
                                                      and r["max_age_s"] <= r["age_bound_s"] for r in slow)
    stp = [r for k, r in sub_res if k == "stopped"]
    checks["stopped_subscriber_resumed"] = all(r and r["after_cont"] > 0 for r in stp)
    checks["killed_clients_expired"] = sr is not None and not left
    # the first --warmup-s (streams opening, allocator pools filling) is left
    # out of the comparison of the first and last tenths
    steady = [x for x in series if x["t"] >= a.warmup_s] or series
    rss0, rss1 = tenth_means(steady, "rss")
    checks["rss_flat"] = rss1 <= rss0 * (1 + a.rss_tolerance) + 8 * 2 ** 20
    n = max(2, len(steady) // 10)
    head, tail = steady[:n], steady[-n:]

    def cpu_per_frame(s):
        f = s[-1]["frames"] - s[0]["frames"]
        return (s[-1]["cpu"] - s[0]["cpu"]) / f if f > 0 else float("nan")
    fr0, fr1 = cpu_per_frame(head), cpu_per_frame(tail)
    checks["frame_time_flat"] = bool(fr1 <= fr0 * (1 + a.frame_tolerance))
    if a.vmic and not a.unpaced_vmic:
        # a live microphone with a clock must not overflow its capture ring
        dev = (final_status or {}).get("device") or {}
        checks["mic_nothing_dropped"] = dev.get("capture_dropped") == 0 and bool(dev.get("running"))
    checks["status_within_ms"] = timeouts == 0 and bool(lat) and max(lat) * 1000 <= a.status_ms
    checks["daemon_exit_clean"] = (rc == 0 and not errors and "ERROR" not in err
                                   and "Sanitizer" not in err)
    trace = {}
    if d.traces:  # --control-trace: percentiles (ms) of each part of the status round trips
        for k in d.traces[0]:
            v = np.array([t[k] for t in d.traces]) * 1e-6
            trace[k] = {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2),
                        "max": round(float(v.max()), 2)}
        idle = np.array([t["gap"] - t["cpu"] for t in d.traces]) * 1e-6
        trace["gap_not_running"] = {"p50": round(float(np.percentile(idle, 50)), 2),
                                    "p99": round(float(np.percentile(idle, 99)), 2), "max": round(float(idle.max()), 2)}
    summary = {
        "minutes": a.minutes, "model": a.model, "load_nice": a.load_nice,
        "vmic": ("unpaced" if a.unpaced_vmic else "paced") if a.vmic else None, "bulk": not a.no_bulk, "pushers": a.pushers,
        "subscribers": a.subscribers, "age_bound_s": a.age_bound_s,
        "pushed_streams": sum(r["streams"] for r in ok_push), "pushed_samples": pushed,
        "pusher_max_send_gap_s": [round(r["max_send_gap_s"], 3) for r in ok_push],
        "returned_samples": returned, "push_failures": failures[:10],
        "subscribers_result": [{"kind": k, **(r or {})} for k, r in sub_res],
        "victims_killed": killed, "victim_streams_left": left, "sighups": hups,
        "status_requests": len(lat), "control_timeouts_2s": timeouts,
        "status_max_ms": round(max(lat) * 1000, 2) if lat else None,
        "status_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2) if lat else None,
        "status_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2) if lat else None,
        "status_trace_ms": trace,
        "warmup_s": a.warmup_s, "rss_first_tenth_mib": round(rss0 / 2 ** 20, 1), "rss_last_tenth_mib": round(rss1 / 2 ** 20, 1),
        "cpu_ms_per_frame_first_tenth": round(fr0 * 1000, 4),
        "cpu_ms_per_frame_last_tenth": round(fr1 * 1000, 4),
        "frames": series[-1]["frames"] if series else 0, "max_streams_seen": max((s["streams"] for s in series),
                                                                                default=0),
        "final_counters": (final_status or {}).get("counters"), "threads_cpu_s": threads_cpu, "device": (final_status or {}).get("device"),
        "daemon_exit": rc, "errors": errors, "daemon_stderr_tail": err.strip().splitlines()[-5:],
        "checks": checks, "ok": all(checks.values()),
    }
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ssmd", default=os.path.join(ROOT, "build", "daemon", "ssmd"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default.safetensors"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--pushers", type=int, default=32)
    ap.add_argument("--subscribers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="the daemon's --threads")
    ap.add_argument("--pub-hwm", type=int, default=0, help="the daemon's --pub-hwm (0: its default)")
    ap.add_argument("--age-bound-s", type=float, default=0.0,
                    help="largest age of what a slow subscriber reads; 0 (default): the bound "
                         "docs/protocol.md gives for the daemon's pub_hwm/pub_sndbuf and the "
                         "subscriber's buffers, message size and read rate, plus --age-slack-s")
    ap.add_argument("--age-slack-s", type=float, default=2.0,
                    help="added to the computed age bound: processing and scheduling delay")
    ap.add_argument("--status-ms", type=float, default=50.0)
    ap.add_argument("--status-interval-s", type=float, default=0.25,
                    help="the pause between two rounds of control requests")
    ap.add_argument("--control-trace", action="store_true",
                    help="run the daemon with SSMD_CONTROL_TRACE=1 and split each status round trip "
                         "into its parts (status_trace_ms)")
    ap.add_argument("--rss-tolerance", type=float, default=0.10)
    ap.add_argument("--frame-tolerance", type=float, default=0.5)
    ap.add_argument("--warmup-s", type=float, default=30.0,
                    help="seconds at the start left out of the RSS and frame-time comparison")
    ap.add_argument("--load-nice", type=int, default=10,
                    help="niceness of the pushing and killed clients above the harness's own (the "
                         "daemon, its subscribers and the conductor keep the harness's)")
    ap.add_argument("--no-vmic", dest="vmic", action="store_false")
    ap.add_argument("--unpaced-vmic", action="store_true",
                    help="the unpaced virtual microphone (ALSA file + null: no clock, its capture "
                         "callback spins) instead of the paced one")
    ap.add_argument("--paced-lib", default="",
                    help="the paced microphone's ALSA module (default: BUILD/tests/daemon/"
                         "libasound_module_pcm_ssmd_paced.so beside --ssmd's BUILD/daemon)")
    ap.add_argument("--log-level", default="warn", help="the daemon's --log-level")
    ap.add_argument("--keep-stderr", metavar="PATH", help="copy the daemon's stderr there at the end")
    ap.add_argument("--no-bulk", action="store_true",
                    help="leave out the pushers that push as fast as possible (the real-time half only)")
    # child roles
    ap.add_argument("--role", default="conduct", choices=["conduct", "pushers", "sub", "victim"])
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--pub")
    ap.add_argument("--ingest")
    ap.add_argument("--kind", default="rt")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--topics", default="")
    ap.add_argument("--slow", action="store_true")
    ap.add_argument("--lossless", action="store_true", help="rcvhwm 0, rcvbuf 0 (docs/protocol.md)")
    a = ap.parse_args()
    if a.role == "conduct" and a.vmic and not a.unpaced_vmic:
        if not a.paced_lib:
            a.paced_lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.ssmd))),
                                       "tests", "daemon", "libasound_module_pcm_ssmd_paced.so")
        if not os.path.isfile(a.paced_lib):
            sys.exit(f"soak: the paced microphone module {a.paced_lib} is missing: build it with "
                     f"ninja -C BUILD tests/daemon/libasound_module_pcm_ssmd_paced.so, or give "
                     f"--paced-lib, --unpaced-vmic or --no-vmic")
    if a.role == "pushers":
        role_pushers(a)
    elif a.role == "sub":
        role_sub(a)
    elif a.role == "victim":
        role_victim(a)
    else:
        sys.exit(conduct(a))


if __name__ == "__main__":
    main()
