#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The C clients against the real ssmd (random model of tests/daemon) on free
loopback ports: ssm-push gets back exactly as many samples as it pushed, and
the same audio as the daemon's offline file job (within the 16-bit
quantisation of that job's WAV output) at 16 kHz (stereo: two streams, stereo
back, as the file job) and, resampled, at 48 kHz; a stereo file whose
channels differ comes back stereo, each channel exactly what pushing that
channel alone as a mono file gives;
ssm-sub sees the stream's meta first, contiguous seq per topic and the same
audio as ssm-push got back; ssm-ctl status/streams/snapshot/restore/reset/
stop and its error replies; NAME_IN_USE printed by ssm-push.
Usage: test_real_daemon.py SSM_SUB SSM_PUSH SSM_CTL SSMD MODEL"""
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, free_endpoint, read_wav, run, tmpdir  # noqa: E402

SUB, PUSH, CTL, SSMD, MODEL = sys.argv[1:6]
T = tmpdir()
rng = np.random.default_rng(11)


def write_wav_f32(path, x, rate):
    from scipy.io import wavfile
    wavfile.write(path, rate, np.asarray(x, np.float32))


def signal(n, rate, channels):
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((n, channels))
    return x.astype(np.float32)


def subscriptions():
    """The daemon's count of subscriptions received (None when it has none)."""
    r = run([CTL, "-e", con, "status"])
    try:
        return json.loads(r.stdout)["counters"].get("subscriptions")
    except (ValueError, KeyError, TypeError):
        return None


def wait_subscribed(before):
    """Waits until the daemon has seen a new subscription (or 1 s without the counter)."""
    if before is None:
        time.sleep(1.0)
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (subscriptions() or 0) <= before:
        time.sleep(0.05)


pub, ing, con = free_endpoint(), free_endpoint(), free_endpoint()
env = dict(os.environ, HOME=T)
daemon = subprocess.Popen([SSMD, "--model", MODEL, "--input", "none", "--pub", pub,
                           "--ingest", ing, "--control", con, "--log-level", "warn"],
                          stderr=subprocess.PIPE, text=True, env=env)
try:
    deadline = time.monotonic() + 20
    while True:
        r = run([CTL, "-e", con, "--timeout", "1", "status"])
        if r.returncode == 0 or time.monotonic() > deadline or daemon.poll() is not None:
            break
    check(r.returncode == 0 and json.loads(r.stdout)["ok"], f"ssmd is up, status ok ({r.stderr.strip()!r})")

    for rate, channels, chunk in ((16000, 2, 700), (48000, 1, 4096)):
        n = int(rate * 1.3) + 17
        x = signal(n, rate, channels)
        src = os.path.join(T, f"in{rate}.wav")
        write_wav_f32(src, x, rate)
        name = f"take{rate}"
        watched = name if channels == 1 else f"{name}.0"  # a stereo push is streams NAME.0, NAME.1
        sub_log = os.path.join(T, f"sub{rate}.jsonl")
        n_subs = subscriptions()
        sub = subprocess.Popen([SUB, "-e", pub, "--json", "--until-end", f"{watched}/"],
                               stdout=open(sub_log, "w"), stderr=subprocess.PIPE, text=True)
        wait_subscribed(n_subs)
        out = os.path.join(T, f"push{rate}.wav")
        r = run([PUSH, "-e", ing, "--stream", name, "--chunk", str(chunk), "--output-format", "float", "-o", out,
                 src])  # float: compared exactly with what ssm-sub receives
        check(r.returncode == 0, f"{rate} Hz push: exit 0 ({r.stderr.strip()!r})")
        orate, y = read_wav(out)
        check(orate == rate and y.shape == (n, channels) and np.isfinite(y).all(),
              f"{rate} Hz push: {y.shape} back for {(n, channels)} pushed, at {orate} Hz")
        off = os.path.join(T, f"off{rate}.wav")
        r = run([SSMD, "--model", MODEL, "--log-level", "warn", src, "-o", off], env=env)
        _, z = read_wav(off)
        off_dtype = z.dtype
        z = z.astype(np.float32) / 32768.0 if z.dtype == np.int16 else z.astype(np.float32)
        err = float(np.max(np.abs(y - z))) if z.shape == y.shape else float("inf")
        print(f"{rate} Hz: worst |pushed result - offline job| {err:.3g} "
              f"(offline WAV holds {off_dtype}; allowed: 2 LSB of 16 bits)")
        check(err <= 2.0 / 32768, f"{rate} Hz push: same audio as the offline file job")
        try:
            sub.wait(15)
        except subprocess.TimeoutExpired:
            sub.kill()
        recs = [json.loads(line) for line in open(sub_log)]
        check(sub.returncode == 0 and recs and recs[0]["topic"] == f"{watched}/meta/",
              f"{rate} Hz sub: exit 0, meta first ({len(recs)} messages)")
        seqs, ok = {}, True
        for m in recs:
            ok &= m["seq"] == seqs.get(m["topic"], 0)
            seqs[m["topic"]] = m["seq"] + 1
        check(ok, f"{rate} Hz sub: seq contiguous from 0 per topic {seqs}")
        audio = np.array([v for m in recs if m["kind"] == "audio" for v in m["values"]], np.float32)
        e2 = float(np.max(np.abs(audio - y[:, 0]))) if audio.shape[0] == n else float("inf")
        print(f"{rate} Hz sub: {audio.shape[0]} published audio samples, worst |pub - push| {e2:.3g}")
        check(e2 == 0.0, f"{rate} Hz sub: published audio = the audio ssm-push got back")
        check(recs and recs[-1]["kind"] == "event" and recs[-1]["json"].get("event") == "end",
              f"{rate} Hz sub: ends with the end event")

    # a stereo file whose channels differ: two streams, stereo back, each
    # channel what pushing that channel alone gives (float output: exact)
    n = 16000 + 333
    t = np.arange(n) / 16000
    st = np.stack([0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(n),
                   0.2 * np.sin(2 * np.pi * 1210 * t) + 0.1 * rng.standard_normal(n)], 1).astype(np.float32)
    src = os.path.join(T, "stereo.wav")
    write_wav_f32(src, st, 16000)
    out = os.path.join(T, "stereo_out.wav")
    r = run([PUSH, "-e", ing, "--stream", "st", "--chunk", "1500", "--output-format", "float", "-o", out, src])
    check(r.returncode == 0, f"stereo push: exit 0 ({r.stderr.strip()!r})")
    _, y = read_wav(out) if os.path.exists(out) else (0, np.zeros((0, 1), np.float32))
    alone = []
    for c in range(2):
        one = os.path.join(T, f"ch{c}.wav")
        write_wav_f32(one, st[:, c], 16000)
        o = os.path.join(T, f"ch{c}_out.wav")
        r = run([PUSH, "-e", ing, "--stream", f"ch{c}", "--output-format", "float", "-o", o, one])
        check(r.returncode == 0, f"channel {c} alone: exit 0 ({r.stderr.strip()!r})")
        alone.append(read_wav(o)[1][:, 0] if os.path.exists(o) else np.zeros(0, np.float32))
    ok_shape = y.shape == (n, 2) and all(a.shape == (n,) for a in alone)
    errs = [float(np.max(np.abs(y[:, c] - alone[c]))) if ok_shape else float("inf") for c in range(2)]
    diff = float(np.max(np.abs(y[:, 0] - y[:, 1]))) if ok_shape else 0.0
    print(f"stereo push: {y.shape} back for ({n}, 2); worst |channel - that channel pushed alone| "
          f"{errs[0]:.3g}, {errs[1]:.3g} (allowed 0); the two channels differ by up to {diff:.3g}")
    check(ok_shape and max(errs) == 0.0 and diff > 0.01,
          "stereo push: stereo back, each channel = that channel pushed alone")

    # control while a stream runs (a real-time push of 12 s: the seven ssm-ctl/ssm-push runs below
    # must all happen while it lasts, also in the sanitizer build on a busy machine)
    long_src = os.path.join(T, "long.wav")
    write_wav_f32(long_src, signal(16000 * 12, 16000, 1), 16000)
    bg = subprocess.Popen([PUSH, "-e", ing, "--stream", "live", "--realtime", long_src],
                          stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)
    r = run([CTL, "-e", con, "streams"])
    names = [s.get("name") for s in json.loads(r.stdout).get("streams", [])] if r.returncode == 0 else []
    check("live" in names, f"ctl streams: lists the live push ({names})")
    snap = os.path.join(T, "live.snap")
    r = run([CTL, "-e", con, "snapshot", "--stream", "live", "--file", snap])
    size = os.path.getsize(snap) if os.path.exists(snap) else 0
    check(r.returncode == 0 and size == json.loads(r.stdout).get("bytes", -1) and size > 0,
          f"ctl snapshot: {size} bytes written as announced")
    r = run([CTL, "-e", con, "restore", "--stream", "live", "--file", snap])
    check(r.returncode == 0, f"ctl restore of its own snapshot: ok ({r.stderr.strip()!r})")
    junk = os.path.join(T, "junk.snap")
    open(junk, "wb").write(b"junk" * 10)
    r = run([CTL, "-e", con, "restore", "--stream", "live", "--file", junk])
    check(r.returncode == 1 and ("BAD_SNAPSHOT" in r.stderr or "SNAPSHOT_MISMATCH" in r.stderr),
          f"ctl restore of junk: refused ({r.stderr.strip()!r})")
    r = run([CTL, "-e", con, "reset", "--stream", "live"])
    check(r.returncode == 0, "ctl reset: ok")
    r = run([CTL, "-e", con, "reset", "--stream", "nosuch"])
    check(r.returncode == 1 and "NO_SUCH_STREAM" in r.stderr, f"ctl reset nosuch: {r.stderr.strip()!r}")
    r = run([PUSH, "-e", ing, "--stream", "live", long_src])
    check(r.returncode == 1 and "daemon error NAME_IN_USE" in r.stderr,
          f"second pusher of the same name: {r.stderr.strip()!r}")
    try:
        bg.wait(40)
    except subprocess.TimeoutExpired:
        bg.kill()
    check(bg.returncode == 0, f"the real-time push completed ({bg.stderr.read().strip()!r})")

    r = run([CTL, "-e", con, "stop"])
    check(r.returncode == 0, "ctl stop: ok")
    try:
        daemon.wait(10)
    except subprocess.TimeoutExpired:
        pass
    check(daemon.poll() is not None, f"ssmd exited after stop (status {daemon.poll()})")
finally:
    if daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    err = daemon.stderr.read()
    if err.strip():
        print("ssmd stderr:", err.strip()[-2000:])

finish("test_real_daemon")
