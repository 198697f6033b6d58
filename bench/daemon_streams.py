# SPDX-License-Identifier: MIT
"""Real-time 48 kHz streams per core through the ssmd daemon, RNNoise in the same run.

  /usr/bin/python3 bench/daemon_streams.py SSMD[,SSMD...] [MODEL] [--streams 64,256] [--seconds 10]
      [--cpu N] [--rounds 2] [--ssmd-args "--weights int8"] [--peer rnnoise|none]

For each stream count N: ssmd serves (--threads 1, pinned with taskset to --cpu),
N clients push S seconds of 48 kHz audio each (white noise + tones, 100 ms
messages, round-robin, from this process on another core) and collect every
processed sample back.  Figures:
  cpu_rt_streams   N·S / (daemon user+system CPU seconds over the job): real-time
                   streams one core sustains (the daemon's whole pipeline: ingest,
                   resample when needed, STFT, model step batched over the streams
                   with a frame ready, iSTFT, publish, replies)
  wall_rt_streams  N·S / wall seconds from the first push to the last result
Peer, interleaved with ssmd (ssmd, RNNoise, ssmd, RNNoise ... --rounds times):
RNNoise (@shiguredo/rnnoise-wasm under Node, train/rnnoise/peer.mjs, pinned to
the same core) on the same audio, one state per stream: real-time streams per
core = audio seconds / the CPU seconds of its processing loop (the peer reports
them; Node's start-up and file I/O are not counted).
Several SSMD builds (comma-separated) run interleaved within each round (A, B, A, B
... under the same load: an A/B comparison on a busy machine); --peer none leaves
RNNoise out.  One JSON line per figure.  Never asserts a time.
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import machine  # noqa: E402  (bench/machine.py: CPU model, caches, load average on every line)
SR = 48000


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def proc_cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signal(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (0.05 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def run_ssmd(ssmd, model, n_streams, seconds, cpu, extra):
    from ssmd import Pusher
    ports = [free_port() for _ in range(3)]
    pub, ing, ctl = (f"tcp://127.0.0.1:{p}" for p in ports)
    cmd = ["taskset", "-c", str(cpu), ssmd, "--input", "none", "--serve", "yes", "--pub", pub, "--ingest", ing,
           "--control", ctl, "--threads", "1", "--max-streams", str(n_streams), "--log-level", "error"]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            sys.exit(f"daemon_streams: ssmd exited: {proc.stderr.read().strip()}")
        x = signal(SR * seconds, 1)
        ps = [Pusher(ing, f"b{i}", connect_timeout=10, timeout=60) for i in range(n_streams)]
        chunk = SR // 10
        c0, t0 = proc_cpu_s(proc.pid), time.time()
        for o in range(0, len(x), chunk):
            for p in ps:
                p.push(x[o:o + chunk], SR)
        for p in ps:
            p.finish()
        got = [len(p.collect()) for p in ps]
        wall, cpu_s = time.time() - t0, proc_cpu_s(proc.pid) - c0
        for p in ps:
            p.close()
        if any(g != len(x) for g in got):
            sys.exit(f"daemon_streams: {sum(g != len(x) for g in got)} streams came back short")
        return cpu_s, wall
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_rnnoise(n_streams, seconds, cpu, work):
    peer = os.path.join(ROOT, "train", "rnnoise", "peer.mjs")
    x = np.tile(signal(SR * seconds, 1), n_streams)
    src = os.path.join(work, "in.f32")
    x.tofile(src)
    r = subprocess.run(["taskset", "-c", str(cpu), "node", peer, src, str(n_streams), str(SR * seconds),
                        os.path.join(work, "out.f32"), os.path.join(work, "vad.f32")], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"daemon_streams: RNNoise peer failed: {r.stderr.strip()}")
    t = json.loads(r.stdout.strip().splitlines()[-1])  # its processing loop alone
    return t["cpu_s"], t["wall_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ssmd")
    ap.add_argument("model", nargs="?", default="")
    ap.add_argument("--streams", default="64,256")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ssmd-args", default="")
    ap.add_argument("--peer", choices=("rnnoise", "none"), default="rnnoise")
    a = ap.parse_args()
    if a.peer == "rnnoise" and not os.path.isdir(os.path.join(ROOT, "train", "rnnoise", "node_modules", "@shiguredo")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", os.path.join(ROOT, "train", "rnnoise")],
                       check=True, capture_output=True)
    base = dict(bench="daemon_streams", cpu=cpu_model(), seconds_per_stream=a.seconds,
                model=os.path.basename(a.model) if a.model else "default")
    with tempfile.TemporaryDirectory() as work:
        for n in (int(s) for s in a.streams.split(",")):
            for rnd in range(a.rounds):
                for ssmd in a.ssmd.split(","):
                    cpu_s, wall = run_ssmd(ssmd, a.model, n, a.seconds, a.cpu, a.ssmd_args.split())
                    print(machine.line(dict(base, system="ssmd", ssmd=ssmd, ssmd_args=a.ssmd_args, streams=n, round=rnd,
                                          cpu_s=round(cpu_s, 3), wall_s=round(wall, 3),
                                          cpu_rt_streams=round(n * a.seconds / cpu_s, 1),
                                          wall_rt_streams=round(n * a.seconds / wall, 1))), flush=True)
                if a.peer == "none":
                    continue
                rc, rw = run_rnnoise(n, a.seconds, a.cpu, work)
                print(machine.line(dict(base, system="rnnoise-wasm", streams=n, round=rnd, cpu_s=round(rc, 3),
                                      wall_s=round(rw, 3), cpu_rt_streams=round(n * a.seconds / rc, 1),
                                      wall_rt_streams=round(n * a.seconds / rw, 1))), flush=True)


if __name__ == "__main__":
    main()
