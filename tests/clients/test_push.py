#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ssm-push against the fake daemon (which returns each pushed stream x 0.5):
exact length and values back, a stereo file as two streams NAME.0 and NAME.1
written back as stereo (--channels mono: one downmixed stream), five pushers
at once, --realtime pacing, an empty file, error replies printed (NAME_IN_USE,
TOO_MANY_STREAMS for a file with more channels than the daemon takes streams),
a daemon that never answers.
Usage: test_push.py SSM_PUSH"""
import os
import subprocess
import sys

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Fake, check, finish, read_au, read_wav, run, tmpdir, wav_format_tag,  # noqa: E402
                     write_wav_i16)

PUSH = sys.argv[1]
T = tmpdir()
rng = np.random.default_rng(7)


def make_input(name, frames, channels, rate=16000):
    x = rng.integers(-32768, 32768, size=(frames, channels)).astype(np.int16)
    path = os.path.join(T, name)
    write_wav_i16(path, x, rate)
    # independent expectation: libsndfile reads 16-bit PCM as s / 32768;
    # each channel is its own stream, the fake multiplies by 0.5
    xf = x.astype(np.float64) / 32768.0
    return path, (xf * 0.5).astype(np.float32)


def mono_of(expected):
    """The expectation of --channels mono: the mean of the channels x 0.5."""
    return expected.astype(np.float64).mean(axis=1, keepdims=True).astype(np.float32)


def compare(out, expected, what):
    if not os.path.exists(out):
        return check(False, f"{what}: no output file {out}")
    rate, got = read_au(out) if out.endswith(".au") else read_wav(out)
    n_ok = got.shape == expected.shape
    err = float(np.max(np.abs(got - expected))) if n_ok and expected.size else 0.0
    print(f"{what}: {got.shape} back for {expected.shape} pushed, worst error {err:.3g}")
    return check(n_ok and err <= 1e-7, f"{what}: exact length and channels, values x0.5")


FLOAT = ["--output-format", "float"]  # exact comparisons: the default, pcm16, rounds

with Fake(T, "--start", "never", "--hop-out", "256") as f:
    ing = f.ep["ingest"]
    # 1. stereo file, chunk not a multiple of the fake's block, odd length
    path, exp = make_input("in.wav", 10007, 2)
    out = os.path.join(T, "out.wav")
    r = run([PUSH, "-e", ing, *FLOAT, "--stream", "take1", "--chunk", "1000", "--output", out, "-v", path])
    check(r.returncode == 0, f"push: exit 0 (stderr {r.stderr.strip()!r})")
    compare(out, exp, "push")

    # 1b. --channels mono: one stream, the mean of the channels (as before, and as ssmd's)
    out = os.path.join(T, "out_mono.wav")
    r = run([PUSH, "-e", ing, *FLOAT, "--stream", "take1m", "--channels", "mono", "--chunk", "1000",
             "--output", out, path])
    check(r.returncode == 0, f"push --channels mono: exit 0 (stderr {r.stderr.strip()!r})")
    compare(out, mono_of(exp), "push --channels mono")
    r = run([PUSH, "-e", ing, "--stream", "x", "--channels", "split", path])
    check(r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--channels" in r.stderr,
          f"--channels split: one line, exit 2 ({r.returncode}, {r.stderr.strip()!r})")
    r = run([PUSH, "-e", ing, "--stream", "n" * 63, path])
    check(r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "--channels mono" in r.stderr,
          f"63-byte name, stereo file: NAME.0 is too long, one line, exit 1 ({r.stderr.strip()!r})")

    # 2. five pushers at once (mono and stereo, different lengths)
    jobs = []
    for i in range(5):
        p, e = make_input(f"in{i}.wav", 3000 + 777 * i, 1 + i % 2)
        o = os.path.join(T, f"out{i}.wav")
        cmd = [PUSH, "-e", ing, *FLOAT, "--stream", f"multi{i}", "--chunk", str(128 + 100 * i),
               "--output", o, p]
        jobs.append((subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), o, e))
    for i, (proc, o, e) in enumerate(jobs):
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -1
        check(rc == 0, f"pusher {i}: exit 0 (stderr {proc.stderr.read().strip()!r})")
        compare(o, e, f"pusher {i}")

    # 3. --realtime: 0.5 s of audio takes about 0.5 s
    path, exp = make_input("rt.wav", 8000, 1)
    out = os.path.join(T, "rt_out.wav")
    r = run([PUSH, "-e", ing, *FLOAT, "--stream", "rt", "--realtime", "--chunk", "800", "-o", out, path])
    check(r.returncode == 0 and 0.4 < r.elapsed < 10,
          f"realtime: exit 0 after {r.elapsed:.2f} s for 0.5 s of audio")
    compare(out, exp, "realtime")

    # 4. an empty file: one end-of-stream message, an empty result
    path, exp = make_input("empty.wav", 0, 1)
    out = os.path.join(T, "empty_out.au")
    r = run([PUSH, "-e", ing, *FLOAT, "--stream", "empty", "-o", out, path])
    check(r.returncode == 0, f"empty: exit 0 (stderr {r.stderr.strip()!r})")
    compare(out, exp, "empty")

    # 4b. the default output format (pcm16, as ssmd's and ssm-sub's): plain
    #     WAVE_FORMAT_PCM that Python's wave opens, the values rounded to 16 bits
    import wave  # noqa: E402
    path, exp = make_input("fmt.wav", 4000, 2)
    out = os.path.join(T, "fmt_out.wav")
    r = run([PUSH, "-e", ing, "--stream", "fmt", "-o", out, path])
    check(r.returncode == 0, f"default format: exit 0 (stderr {r.stderr.strip()!r})")
    try:
        with wave.open(out) as w:
            shape = (w.getnchannels(), w.getsampwidth(), w.getnframes())
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0
    except Exception as e:  # reported by the check
        shape, x = str(e), np.zeros(0)
    err = float(np.max(np.abs(x - exp.reshape(-1)))) if x.shape == exp.reshape(-1).shape else float("inf")
    print(f"default format: format tag {wav_format_tag(out)}, wave reads (channels, bytes, frames) {shape}, "
          f"worst error {err:.3g} (<= 2^-15)")
    check(wav_format_tag(out) == 1 and shape == (2, 2, 4000) and err <= 2.0 ** -15,
          "default format: plain 16-bit PCM WAV, the result rounded")
    r = run([PUSH, "-e", ing, "--stream", "fmt2", "--output-format", "pcm12", "-o", out, path])
    check(r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "pcm16|pcm24|float" in r.stderr,
          f"--output-format pcm12: one line, exit 2 ({r.returncode}, {r.stderr.strip()!r})")

    # an output name without a known extension is refused before anything is pushed (it used
    # to be found only when the first result came back, after the stream had opened and
    # taken its name for push_idle_s); the endpoint is unreachable, so only the early
    # check can answer
    r = run([PUSH, "-e", "ipc://" + os.path.join(tmpdir(), "nobody"), "--timeout", "1", "--stream", "noext",
             "-o", os.path.join(tmpdir(), "out.noext"), path])
    check(r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "out.noext" in r.stderr
          and "file name" in r.stderr,
          f"-o out.noext: refused before connecting, one line, exit 2 ({r.returncode}, {r.stderr.strip()!r})")

    # the output is checked whole before anything is pushed (not only its extension): a
    # format it cannot hold, an unwritable place; the endpoint is unreachable, so only the
    # early check can answer, and nothing is left behind
    p3, _ = make_input("three_ch.wav", 1000, 3)
    nowrite = os.path.join(T, "ro")
    os.makedirs(nowrite, exist_ok=True)
    os.chmod(nowrite, 0o500)
    as_user = []
    if os.geteuid() == 0:  # root writes anywhere: a directory that does not exist instead
        nowrite = os.path.join(T, "no-such-dir")
    for what, out, extra, src, words in (
            ("MP3 with 3 channels", os.path.join(T, "early.mp3"), [], p3, ["3 channels", "mp3"]),
            ("float in FLAC", os.path.join(T, "early.flac"), ["--output-format", "float"], path, ["flac", "float"]),
            ("an unwritable directory", os.path.join(nowrite, "early.wav"), [], path, ["cannot create"])):
        r = run([PUSH, "-e", "ipc://" + os.path.join(tmpdir(), "nobody"), "--timeout", "1", "--stream", "early",
                 *extra, "-o", out, src])
        line = r.stderr.strip()
        check(r.returncode == 1 and line.count("\n") == 0 and out in line and "no connection" not in line
              and all(w in line.lower() for w in words) and not os.path.exists(out),
              f"-o {what}: refused before connecting, one line naming it, nothing left ({r.returncode}, {line!r})")
    os.chmod(os.path.join(T, "ro"), 0o700)

    # --output-format that would do nothing: refused with one line naming it and why (ssm-sub too)
    SUB = os.path.join(os.path.dirname(PUSH), "ssm-sub")
    for prog, args, why in ((PUSH, ["--stream", "f", "--output-format", "float", path], "no output file"),
                            (PUSH, ["--stream", "f", "--output-format", "float", "-o", os.path.join(T, "f.mp3"), path],
                             "codec"),
                            (SUB, ["--output-format", "pcm24"], "no output file"),
                            (SUB, ["--output-format", "pcm24", "-o", os.path.join(T, "f.opus")], "codec")):
        r = run([prog, "-e", "ipc://" + os.path.join(tmpdir(), "nobody"), *args])
        line = r.stderr.strip()
        check(r.returncode == 2 and line.count("\n") == 0 and "--output-format" in line and why in line,
              f"{os.path.basename(prog)} {' '.join(args[-4:])}: refused, one line ({r.returncode}, {line!r})")

    # SIGINT / SIGTERM while pushing: the streams opened on the daemon get their
    # end-of-stream at once (the fake publishes their end event), one line, no output file
    import signal  # noqa: E402
    import time  # noqa: E402
    for sig, channels in ((signal.SIGINT, 2), (signal.SIGTERM, 1)):
        name = f"sig{int(sig)}"
        src, _ = make_input(f"{name}.wav", 16000 * 8, channels)
        out = os.path.join(T, f"{name}_out.wav")
        proc = subprocess.Popen([PUSH, "-e", ing, "--realtime", "--chunk", "800", "--stream", name, "-o", out, src],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        proc.send_signal(sig)
        try:
            rc, err = proc.wait(10), proc.stderr.read().strip()
        except subprocess.TimeoutExpired:
            proc.kill()
            rc, err = -1, "did not exit"
        streams = [name] if channels == 1 else [f"{name}.{k}" for k in range(channels)]
        ended = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(ended) < len(streams):
            ended = {rec["topic"].split("/")[0] for rec in f.records()
                     if rec["topic"].endswith("/event/") and rec.get("json", {}).get("event") == "end"}
            time.sleep(0.05)
        ended &= set(streams)
        print(f"{signal.Signals(sig).name} after 1 s: exit {rc}: {err}; streams ended on the daemon: {sorted(ended)}")
        check(rc == 1 and err.count("\n") == 0 and "interrupted" in err and signal.Signals(sig).name in err,
              f"{signal.Signals(sig).name}: one line, exit 1 ({rc}, {err!r})")
        check(ended == set(streams), f"{signal.Signals(sig).name}: the daemon's streams {streams} ended at once "
              f"(ended: {sorted(ended)})")
        check(not os.path.exists(out), f"{signal.Signals(sig).name}: no output file left behind")

    # 5. an error reply: the scripted stream's name belongs to the daemon
    path, exp = make_input("busy.wav", 1000, 1)
    out = os.path.join(T, "busy_out.wav")
    r = run([PUSH, "-e", ing, *FLOAT, "--stream", "demo", "-o", out, path])
    check(r.returncode == 1 and "daemon error NAME_IN_USE" in r.stderr,
          f"error reply: printed, exit 1 (rc {r.returncode}, stderr {r.stderr.strip()!r})")
    check(not os.path.exists(out), "error reply: no output file left behind")

    # 6. pipes: "-" reads standard input and writes AU to standard output;
    #    two pushes in a row give x0.25 of the mono mix
    path, exp = make_input("pipe.wav", 5000, 2)
    out = os.path.join(T, "pipe_out.wav")
    first = subprocess.Popen([PUSH, "-e", ing, *FLOAT, "--stream", "pipe1", "-o", "-", "-"],
                             stdin=open(path, "rb"), stdout=subprocess.PIPE)
    r = run([PUSH, "-e", ing, *FLOAT, "--stream", "pipe2", "-o", out, "-"], stdin=first.stdout)
    first.stdout.close()
    rc1 = first.wait(30)
    check(rc1 == 0 and r.returncode == 0, f"pipes: both exit 0 ({rc1}, {r.returncode}, {r.stderr.strip()!r})")
    compare(out, (exp * np.float32(0.5)).astype(np.float32), "pipes (x0.25)")

# 6b. a file with more channels than the daemon takes streams: its refusal
#     (TOO_MANY_STREAMS) on one line that says why and what to do; the two
#     streams it had opened get their end-of-stream at once (the fake
#     publishes their end event), not after the daemon's push_idle_s (a real-time
#     push of 4 s in 800-frame chunks: the refusal comes while it is pushing)
with Fake(T, "--start", "never", "--max-streams", "2") as f:
    path, exp = make_input("three.wav", 16000 * 4, 3)
    out = os.path.join(T, "three_out.wav")
    r = run([PUSH, "-e", f.ep["ingest"], *FLOAT, "--realtime", "--chunk", "800", "--stream", "three", "-o", out,
             path])
    check(r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "TOO_MANY_STREAMS" in r.stderr
          and "3 channels" in r.stderr and "--channels mono" in r.stderr
          and "2 other streams ended on the daemon" in r.stderr,
          f"3 channels, 2 streams allowed: one line, exit 1 ({r.stderr.strip()!r})")
    check(not os.path.exists(out), "3 channels, 2 streams allowed: no output file left behind")
    import time  # noqa: E402
    ended, deadline = set(), time.monotonic() + 10
    while time.monotonic() < deadline and len(ended) < 2:
        ended = {rec["topic"].split("/")[0] for rec in f.records()
                 if rec["topic"].endswith("/event/") and rec.get("json", {}).get("event") == "end"}
        time.sleep(0.05)
    check(ended == {"three.0", "three.1"}, f"3 channels, 2 streams allowed: the two opened streams ended at once "
          f"(ended: {sorted(ended)})")
    r = run([PUSH, "-e", f.ep["ingest"], *FLOAT, "--stream", "three", "--channels", "mono", "-o", out, path])
    check(r.returncode == 0, f"3 channels --channels mono: exit 0 ({r.stderr.strip()!r})")
    compare(out, mono_of(exp), "3 channels --channels mono")

# 7. a daemon that takes the data but never answers
ctx = zmq.Context()
sink = ctx.socket(zmq.ROUTER)
port = sink.bind_to_random_port("tcp://127.0.0.1")
path, exp = make_input("mute.wav", 2000, 1)
r = run([PUSH, "-e", f"tcp://127.0.0.1:{port}", "--stream", "mute", "--timeout", "1", path])
check(r.returncode == 1 and "no answer from the daemon" in r.stderr and r.elapsed < 10,
      f"silent daemon: timeout message, exit 1 after {r.elapsed:.2f} s ({r.stderr.strip()!r})")
sink.close(0)
ctx.term()

finish("test_push")
