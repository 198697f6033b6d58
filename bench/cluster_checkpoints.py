# SPDX-License-Identifier: MIT
"""What checkpoints cost etcd (docs/cluster.md, "Checkpoints"): one ssmd
member with --checkpoint-s, N streams pushed at real time, a real etcd.

  /usr/bin/python3 bench/cluster_checkpoints.py SSMD SSM_PUSH [MODEL] [--streams 100] [--period 1]
      [--seconds 20] [--warmup 5] [--spread 2] [--ssmd-args "..."] [--etcd-args "..."]

It starts etcd on loopback (a temporary data dir, so its disk is this
machine's /tmp), one ssmd registered with it (--checkpoint-s PERIOD), and N
ssm-push clients (C: the load generator should cost little) that push a
noise file at the model's rate (checkpointed streams run at it) in 100 ms
messages paced at real time (-r) for SECONDS, reading every result; the
clients start over SPREAD seconds.  Over the
window after WARMUP seconds it reports, from the daemon's `cluster` reply and
etcd's /metrics:
  checkpoints_per_s, checkpoint_bytes       stored, and the size of one
  etcd_txns_per_s                           transactions (up to 32 checkpoints each)
  payload_mb_per_s                          checkpoint bytes stored per second (the
                                            gateway carries them in base64: x4/3)
  superseded, failed, retried               replaced before stored (etcd or the daemon behind), lost,
                                            rounds etcd did not answer in time (retried at the next tick)
  thread_busy                               the cluster thread's share of wall time in writes
  etcd_cpu, ssmd_cpu                        CPU seconds per wall second
  etcd_fsyncs_per_s, etcd_fsync_ms          WAL fsyncs and their mean duration
  etcd_db_growth_mb_per_s, etcd_db_mb       backend size growth (no compaction: each
                                            revision is kept until compacted)
  acked_streams                             streams with a stored checkpoint at the end
  read_ms_p50, _p99, _max                   a linearizable etcd read (what a claim makes)
                                            every 100 ms: the latency the writes cause others
One JSON line, with the machine (bench/machine.py: CPU model, caches, load
average).  Never asserts a time.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import machine  # noqa: E402  (bench/machine.py: CPU model, caches, load average on every line)


def proc_cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#") or " " not in line:
                continue
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def revision(port):
    body = json.dumps({"key": base64.b64encode(b"/ssmd/").decode()}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/range", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return int(json.load(r)["header"]["revision"])


def snapshot(ctl, etcd_proc, ssmd_proc, port):
    c = ctl.cluster()["checkpoints"]
    m = metrics(port)
    return dict(t=time.time(), ck=c, m=m, rev=revision(port), etcd_cpu=proc_cpu_s(etcd_proc.pid),
                ssmd_cpu=proc_cpu_s(ssmd_proc.pid))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ssmd")
    ap.add_argument("ssm_push")
    ap.add_argument("model", nargs="?", default="")
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--period", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--spread", type=float, default=2.0)
    ap.add_argument("--ssmd-args", default="")
    ap.add_argument("--etcd-args", default="")
    a = ap.parse_args()
    etcd_bin = shutil.which("etcd") or "/usr/bin/etcd"
    from ssmd import Control, Pusher
    with tempfile.TemporaryDirectory(prefix="ssmd-ckpt-bench-") as tmp:
        cport, pport = free_port(), free_port()
        c, p = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
        etcd = subprocess.Popen([etcd_bin, "--name", "b", "--data-dir", os.path.join(tmp, "etcd"),
                                 "--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls", p,
                                 "--initial-advertise-peer-urls", p, "--initial-cluster", f"b={p}",
                                 *a.etcd_args.split()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ports = [free_port() for _ in range(3)]
        pub, ing, ctl_ep = (f"tcp://127.0.0.1:{q}" for q in ports)
        cmd = [a.ssmd, "--pub", pub, "--ingest", ing, "--control", ctl_ep, "--cluster", f"etcd://127.0.0.1:{cport}",
               "--node", "bench", "--checkpoint-s", str(a.period), "--max-streams", str(max(64, a.streams)),
               "--log-level", "warn", *a.ssmd_args.split()]
        if a.model:
            cmd += ["--model", a.model]
        ssmd = None
        pushers = []
        try:
            for _ in range(100):
                try:
                    revision(cport)
                    break
                except OSError:
                    time.sleep(0.2)
            log = open(os.path.join(tmp, "ssmd.log"), "w+")
            ssmd = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, HOME=tmp))
            ctl = Control(ctl_ep)
            for _ in range(100):
                if ssmd.poll() is not None:
                    sys.exit(f"cluster_checkpoints: ssmd exited: {open(log.name).read().strip()}")
                try:
                    if ctl.cluster()["healthy"]:
                        break
                except Exception:
                    pass
                time.sleep(0.2)
            probe = Pusher(ing, "probe", timeout=30)  # the model's rate, from a stream's meta
            probe.push(np.zeros(480, np.float32), 48000)
            probe.finish()
            probe.collect()
            rate, state_bytes = probe.meta["model_rate_hz"], probe.meta["state_bytes"]
            probe.close()
            import soundfile
            wav = os.path.join(tmp, "in.wav")
            rng = np.random.default_rng(1)
            soundfile.write(wav, (0.05 * rng.standard_normal(rate * a.seconds)).astype(np.float32), rate,
                            subtype="PCM_16")
            t0 = time.time()
            for i in range(a.streams):  # started over --spread seconds, as streams of many clients are
                time.sleep(max(0.0, t0 + a.spread * i / a.streams - time.time()))
                pushers.append(subprocess.Popen([a.ssm_push, "-e", ing, "-s", f"s{i:03d}", "-r", "-c",
                                                 str(rate // 10), "-t", "60", wav], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE, text=True))
            time.sleep(max(0.0, t0 + a.warmup - time.time()))
            first = snapshot(ctl, etcd, ssmd, cport)
            lat = []  # a linearizable read every 100 ms, as a claim makes: what the writes cost others
            while time.time() < t0 + a.seconds - 1:
                t1 = time.time()
                revision(cport)
                lat.append(time.time() - t1)
                time.sleep(max(0.0, 0.1 - (time.time() - t1)))
            last = snapshot(ctl, etcd, ssmd, cport)
            acked = sum(1 for s_ in ctl.request("streams")[0]["streams"] if s_.get("checkpoint"))
            bad = [q.stderr.read().strip() for q in pushers if q.wait(120) != 0]
            dt = last["t"] - first["t"]
            d = {k: last["ck"][k] - first["ck"][k] for k in ("stored", "bytes", "txns", "superseded", "failed",
                                                             "retried")}
            fs = "etcd_disk_wal_fsync_duration_seconds_count"
            fsum = "etcd_disk_wal_fsync_duration_seconds_sum"
            n_fs = last["m"].get(fs, 0) - first["m"].get(fs, 0)
            db = "etcd_mvcc_db_total_size_in_bytes"
            out = dict(bench="cluster_checkpoints", model=os.path.basename(a.model) or "default",
                       streams=a.streams, period_s=a.period, rate_hz=rate, window_s=round(dt, 2),
                       state_bytes=state_bytes,
                       checkpoint_bytes=int(d["bytes"] / d["stored"]) if d["stored"] else None,
                       checkpoints_per_s=round(d["stored"] / dt, 1), etcd_txns_per_s=round(d["txns"] / dt, 1),
                       payload_mb_per_s=round(d["bytes"] / dt / 1e6, 2), superseded=d["superseded"],
                       failed=d["failed"], retried=d["retried"], revisions_per_s=round((last["rev"] - first["rev"]) / dt, 1),
                       thread_busy=round((last["ck"]["write_s"] - first["ck"]["write_s"]) / dt, 3),
                       etcd_cpu=round((last["etcd_cpu"] - first["etcd_cpu"]) / dt, 3),
                       ssmd_cpu=round((last["ssmd_cpu"] - first["ssmd_cpu"]) / dt, 3),
                       etcd_fsyncs_per_s=round(n_fs / dt, 1),
                       etcd_fsync_ms=round(1e3 * (last["m"].get(fsum, 0) - first["m"].get(fsum, 0)) / n_fs, 2)
                       if n_fs else None,
                       etcd_db_growth_mb_per_s=round((last["m"].get(db, 0) - first["m"].get(db, 0)) / dt / 1e6, 2),
                       etcd_db_mb=round(last["m"].get(db, 0) / 1e6, 1), acked_streams=acked,
                       read_ms_p50=round(1e3 * float(np.percentile(lat, 50)), 1),
                       read_ms_p99=round(1e3 * float(np.percentile(lat, 99)), 1), read_ms_max=round(1e3 * max(lat), 1),
                       refused_streams=len(bad), refusal=bad[0][:160] if bad else None,
                       cluster_refused=ctl.cluster()["refused"], ssmd_args=a.ssmd_args, etcd_args=a.etcd_args)
            print(machine.line(out), flush=True)
        finally:
            for proc in pushers + [ssmd, etcd]:
                if proc and proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)


if __name__ == "__main__":
    main()
