#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ssm-sub against the fake daemon: every message of a scripted stream in
order with contiguous seq, values as sent (text and JSON), meta re-sent on
subscription, --output audio exact, drops reported and filled with silence,
--count / --seconds, --play on a virtual ALSA device.  Usage: test_sub.py SSM_SUB"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Fake, check, finish, read_wav, rogue_messages, rogue_publisher,  # noqa: E402
                     rogue_valid, run, tmpdir, wav_format_tag)

SUB = sys.argv[1]
T = tmpdir()
FRAMES = 20


def parse_text(line):
    """'topic seq=.. first_sample=.. RxC dtype rate=.. flags=.. rest' -> dict."""
    parts = line.split(" ", 7)
    d = {"topic": parts[0], "seq": int(parts[1][4:]), "first_sample": int(parts[2][13:]),
         "shape": parts[3], "dtype": parts[4], "rate": int(parts[5][5:]), "flags": parts[6][6:],
         "rest": parts[7] if len(parts) > 7 else ""}
    return d


def check_order(recs, what):
    """seq contiguous from 0 per topic, topics in the fake's publishing order."""
    seqs = {}
    ok = True
    for r in recs:
        exp = seqs.get(r["topic"], 0)
        ok &= r["seq"] == exp
        seqs[r["topic"]] = r["seq"] + 1
    check(ok, f"{what}: seq contiguous from 0 on every topic ({seqs})")


# 1. text lines: the whole scripted stream, in order
with Fake(T, "--frames", str(FRAMES)) as f:
    r = run([SUB, "-e", f.ep["pub"], "--until-end"])
    check(r.returncode == 0, f"text: exit 0 (got {r.returncode}, stderr {r.stderr.strip()!r})")
    lines = [parse_text(x) for x in r.stdout.splitlines()]
    log = f.records()
check(len(lines) == len(log) == 3 + 3 * FRAMES,
      f"text: {len(lines)} lines for {len(log)} published (expected {3 + 3 * FRAMES})")
check(bool(lines) and lines[0]["topic"] == "demo/meta/", "text: meta first")
check([x["topic"] for x in lines] == [x["topic"] for x in log], "text: topics in publishing order")
check([x["seq"] for x in lines] == [x["seq"] for x in log], "text: seq as published")
check([x["first_sample"] for x in lines] == [x["first_sample"] for x in log],
      "text: first_sample as published")
check_order(lines, "text")
worst = 0.0
for got, exp in zip(lines, log):
    if got["topic"].endswith(("/features/", "/vad/")):
        v = np.array([float(t) for t in got["rest"].split()])
        e = np.array(exp["values"])
        worst = max(worst, float(np.max(np.abs(v - e))) if v.shape == e.shape else 1e9)
print(f"text: worst |printed - sent| feature/vad value {worst:.3g} (printed with 6 digits)")
check(worst <= 5e-6, "text: feature and vad values as sent (6 significant digits)")
eos = [x for x in lines if x["flags"] == "end-of-stream"]
check(len(eos) == 3 and all(x["seq"] == FRAMES - 1 for x in eos),
      "text: last audio/features/vad flagged end-of-stream")

# 2. JSON lines: exact values
import json  # noqa: E402
with Fake(T, "--frames", str(FRAMES)) as f:
    r = run([SUB, "-e", f.ep["pub"], "--json", "--until-end"])
    log = f.records()
check(r.returncode == 0, f"json: exit 0 (got {r.returncode})")
recs = [json.loads(x) for x in r.stdout.splitlines()]
check(len(recs) == len(log), f"json: {len(recs)} lines for {len(log)} published")
worst = 0.0
same_hdr = True
for got, exp in zip(recs, log):
    for k in ("topic", "seq", "first_sample", "flags", "rows", "cols", "sample_rate_hz"):
        same_hdr &= got[k] == exp[k]
    if "values" in exp:
        g = np.array(got["values"], np.float32)
        e = np.array(exp["values"], np.float32)
        worst = max(worst, float(np.max(np.abs(g - e))) if g.shape == e.shape else 1e9)
    else:
        same_hdr &= got.get("json") == exp["json"]
print(f"json: worst |value - sent| {worst:.3g} over audio/features/vad (float32 round trip)")
check(same_hdr, "json: header fields and meta/event JSON as published")
check(worst == 0.0, "json: values exact")
check_order(recs, "json")
check(all(x["epoch"].startswith("0x") and len(x["epoch"]) == 18 for x in recs),
      "json: epoch as 0x + 16 hex digits")

# 3. meta re-sent to a late subscriber (the stream started before it came);
#    other topics' data may arrive before it, so meta alone is checked first
with Fake(T, "--frames", "0", "--start", "now", "--interval", "0.01") as f:
    time.sleep(0.5)
    r = run([SUB, "-e", f.ep["pub"], "--count", "1", "demo/meta/"])
    r2 = run([SUB, "-e", f.ep["pub"], "--count", "6", "demo/meta/", "demo/vad/"])
lines = [parse_text(x) for x in r.stdout.splitlines()]
check(r.returncode == 0 and len(lines) == 1 and lines[0]["topic"] == "demo/meta/"
      and lines[0]["seq"] >= 1 and '"stream": "demo"' in lines[0]["rest"],
      f"late: the meta is re-sent on subscription ({r.stdout.strip()[:60]!r})")
lines = [parse_text(x) for x in r2.stdout.splitlines()]
check(r2.returncode == 0 and len(lines) == 6, f"late: --count 6 gives 6 lines (got {len(lines)})")
check(sum(x["topic"] == "demo/meta/" for x in lines) == 1
      and all(x["topic"] in ("demo/meta/", "demo/vad/") for x in lines),
      "late: one meta, otherwise only the subscribed vad topic")

# 4. --output: the audio of the stream, exact, and the file ends at end-of-stream
out = os.path.join(T, "sub.wav")
with Fake(T, "--frames", str(FRAMES)) as f:
    r = run([SUB, "-e", f.ep["pub"], "-q", "--output", out, "--output-format", "float", "demo/audio/"])
    log = f.records()
check(r.returncode == 0, f"output: exit 0 (stderr {r.stderr.strip()!r})")
sent = np.concatenate([np.array(x["values"], np.float32) for x in log
                       if x["topic"] == "demo/audio/"])
rate, got = read_wav(out)
err = float(np.max(np.abs(got[:, 0] - sent))) if got.shape[0] == sent.shape[0] else float("inf")
print(f"output: {got.shape[0]} samples for {sent.shape[0]} sent, worst error {err:.3g}")
check(rate == 16000 and got.shape == (FRAMES * 256, 1) and err == 0.0,
      "output: rate, exact length and values")

# 4b. the default output format (pcm16, ssmd's): a live stream of unknown length
# gives plain WAVE_FORMAT_PCM (not EXTENSIBLE) that Python's wave opens, mono
# and stereo; the samples are the sent ones rounded to 16 bits
import wave  # noqa: E402
for ch in (1, 2):
    out = os.path.join(T, f"sub_pcm{ch}.wav")
    with Fake(T, "--frames", str(FRAMES), "--channels", str(ch)) as f:
        r = run([SUB, "-e", f.ep["pub"], "-q", "--output", out, "demo/audio/"])
    check(r.returncode == 0, f"pcm16 {ch} ch: exit 0 (stderr {r.stderr.strip()!r})")
    tag = wav_format_tag(out)
    try:
        with wave.open(out) as w:
            shape = (w.getnchannels(), w.getsampwidth(), w.getnframes())
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    except Exception as e:  # reported by the check
        shape, x = str(e), np.zeros((0, ch))
    n = np.arange(FRAMES * 256)
    sent = 0.25 * np.sin(2 * np.pi * 440.0 * n / 16000)[:, None] / np.arange(1, ch + 1)
    err = float(np.max(np.abs(x / 32768.0 - sent))) if x.shape == sent.shape else float("inf")
    print(f"default format, {ch} channel(s), unknown length: format tag {tag}, wave reads "
          f"(channels, bytes, frames) {shape}, worst error {err:.3g} (<= 2^-15)")
    check(tag == 1 and shape == (ch, 2, FRAMES * 256) and err <= 2.0 ** -15,
          f"pcm16 {ch} ch: plain 16-bit PCM WAV with the sent audio")

# 5. drops: seq 3 and 4 of demo/audio/ never sent
out = os.path.join(T, "drop.wav")
with Fake(T, "--frames", str(FRAMES), "--drop-seq", "3", "--drop-seq", "4") as f:
    r = run([SUB, "-e", f.ep["pub"], "--until-end", "--output", out])
check(r.returncode == 0, "drops: exit 0")
check("demo/audio/: 2 messages dropped (seq 3..4)" in r.stderr,
      f"drops: gap reported on stderr ({r.stderr.strip()!r})")
check(sum(1 for x in r.stdout.splitlines() if x.startswith("demo/audio/")) == FRAMES - 2,
      "drops: the other audio messages printed")
rate, got = read_wav(out)
check(got.shape[0] == FRAMES * 256 and not got[3 * 256:5 * 256].any() and got[5 * 256:].any(),
      f"drops: {got.shape[0]} samples, the dropped ones as silence")

# 6. --seconds stops a quiet subscription
with Fake(T, "--start", "never") as f:
    r = run([SUB, "-e", f.ep["pub"], "--seconds", "0.5"])
check(r.returncode == 0 and 0.4 < r.elapsed < 5 and r.stdout == "",
      f"--seconds 0.5: exit 0 after {r.elapsed:.2f} s")

# 6b. Ctrl-C (SIGINT) during --output leaves a complete file and exit 0
import signal  # noqa: E402
import subprocess  # noqa: E402
out = os.path.join(T, "interrupted.wav")
with Fake(T, "--frames", "0", "--start", "now", "--interval", "0.005", log=False) as f:
    p = subprocess.Popen([SUB, "-e", f.ep["pub"], "-q", "--output", out, "demo/audio/"],
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()  # interrupt once audio is being written (a sanitizer build starts slowly)
    while time.time() - t0 < 15 and not (os.path.exists(out) and os.path.getsize(out) > 4096):
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
try:
    rate, got = read_wav(out)
except Exception as e:  # reported by the check
    rate, got = 0, np.zeros((0, 1))
    print(f"interrupted: cannot read {out}: {e}")
check(rc == 0 and rate == 16000 and got.shape[0] > 0 and got.shape[0] % 256 == 0,
      f"SIGINT: exit {rc}, a valid file of {got.shape[0]} samples")

# 7. malformed messages from a publisher are skipped with one line each
bad = rogue_messages()
ep, th, ctx = rogue_publisher([m for _, m in bad] + [rogue_valid()])
r = run([SUB, "-e", ep, "--count", "1"])
th.join(5)
ctx.term()
skipped = [x for x in r.stderr.splitlines() if x.startswith("ssm-sub: skipping a malformed message")]
check(r.returncode == 0 and r.stdout.startswith("r/vad/ seq=0 ") and r.stdout.endswith(" 0.5\n")
      and len(skipped) == len(bad),
      f"malformed: {len(skipped)} of {len(bad)} skipped with a message, then the valid one printed")

# 7b. --until-end with --output waits for the end of the stream it writes: the
# other channel of a stereo file (x.1) may end while the last audio of x.0 is
# still on its way (seen with ssmd: a file 44160 of 48000 samples long, exit 0)
import struct  # noqa: E402


def audio_msg(stream, seq, first, n, value, flags=0):
    h = struct.pack("<4sHHHHIIIIIQQQQ", b"SSMD", 1, 64, 1, 1, flags, 16000, n, 1, 256, seq, first, 0, 7)
    return [f"{stream}/audio/".encode(), h, np.full(n, value, "<f4").tobytes()]


def end_event(stream):
    body = ('{"event":"end","stream":"%s"}' % stream).encode()
    h = struct.pack("<4sHHHHIIIIIQQQQ", b"SSMD", 1, 64, 8, 4, 0, 16000, 1, len(body), 256, 0, 0, 0, 7)
    return [f"{stream}/event/".encode(), h, body]


EOS_FLAG = 1 << 3
interleaved = [audio_msg("x.0", 0, 0, 512, 0.25), audio_msg("x.1", 0, 0, 512, 0.5),
               audio_msg("x.1", 1, 512, 512, 0.5, EOS_FLAG), end_event("x.1"),
               audio_msg("x.0", 1, 512, 512, 0.25, EOS_FLAG), end_event("x.0")]
for args in (["--stream", "x.0"], []):
    out = os.path.join(T, "until_end.wav")
    if os.path.exists(out):
        os.remove(out)
    ep, th, ctx = rogue_publisher(interleaved)
    r = run([SUB, "-e", ep, "-q", "--until-end", "--output-format", "float", "-o", out] + args, timeout=20)
    th.join(5)
    ctx.term()
    try:
        rate, got = read_wav(out)
    except Exception as e:  # reported by the check
        rate, got = 0, np.zeros((0, 1))
        print(f"until-end: cannot read {out}: {e}")
    print(f"--until-end -o {' '.join(args) or '(first stream)'}: exit {r.returncode}, {got.shape[0]} samples "
          f"of x.0 written (1024 sent; x.1 ended before its last message)")
    check(r.returncode == 0 and got.shape == (1024, 1) and np.all(got == 0.25),
          f"--until-end -o {' '.join(args)}: the whole stream written, not stopped by the other stream's end")

# 8. --play on a virtual ALSA sink (tests/daemon/vmic: what is played lands in played.f32)
alsa = os.path.join(T, "alsa")
os.mkdir(alsa)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon", "vmic",
                       "asoundrc.in")) as fh:
    conf = fh.read().replace("@DIR@", alsa)
with open(os.path.join(alsa, "asoundrc"), "w") as fh:
    fh.write(conf)
for name in ("mono.f32", "stereo.f32"):        # the capture PCMs need their files to open
    open(os.path.join(alsa, name), "wb").close()
aenv = dict(os.environ, ALSA_CONFIG_PATH=os.path.join(alsa, "asoundrc"), HOME=alsa)
with Fake(T, "--frames", str(FRAMES)) as f:
    r = run([SUB, "-e", f.ep["pub"], "-q", "--play", "--device", "ssmd_vout", "demo/audio/"],
            env=aenv)
    log = f.records()
sent = np.concatenate([np.array(x["values"], np.float32) for x in log
                       if x["topic"] == "demo/audio/"])
played_path = os.path.join(alsa, "played.f32")
played = np.fromfile(played_path, "<f4") if os.path.exists(played_path) else np.zeros(0, np.float32)
found = any(np.array_equal(played[o:o + len(sent)], sent) for o in range(len(played) - len(sent) + 1))
print(f"play: {len(played)} samples reached the device for {len(sent)} sent")
check(r.returncode == 0 and found and "playing demo (16000 Hz, 1 channel) on 'ssmd_vout'" in r.stderr,
      f"play: every sample played in order (exit {r.returncode})")
with Fake(T, "--frames", "3") as f:
    r = run([SUB, "-e", f.ep["pub"], "-q", "--play", "--device", "nosuch"], env=aenv)
check(r.returncode == 1 and "ssm-sub: --play: no output device matches 'nosuch'" in r.stderr,
      f"play: unknown device refused (exit {r.returncode}, {r.stderr.strip().splitlines()[-1:]!r})")

finish("test_sub")
