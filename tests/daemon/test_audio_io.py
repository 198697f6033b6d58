# SPDX-License-Identifier: MIT
"""Audio input/output promises of the daemon (docs/reliability.md, "Audio input
and output"): clipping counted and reported, stereo in -> stereo out, output
headers valid after kill -9, clear errors for unreadable inputs.  Every
expected value is computed here with numpy/soundfile from the data, not
copied from a run.  Each check prints what it measured.
Usage: test_audio_io.py SSMD_EXE MODEL_DIR [TEST_NAME ...]"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave

import numpy as np
import soundfile as sf
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "clients"))
from harness import wav_format_tag  # noqa: E402  (the fmt chunk reader the client tests use)
from ssmd import protocol as P  # noqa: E402
import named_tests  # noqa: E402

SSMD, MODELS = sys.argv[1], sys.argv[2]
ONLY = sys.argv[3:]
MODEL = os.path.join(MODELS, "random.safetensors")
TMP = tempfile.mkdtemp(prefix="ssmd-aio-")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signal_(n, rate, seed=0, amp=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (amp * np.sin(2 * np.pi * 220 * t + seed) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
            + 0.02 * amp * rng.standard_normal(n)).astype(np.float32)


def run_job(src, out, *extra):
    r = subprocess.run([SSMD, "--model", MODEL, src, "-o", out, *extra], capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stderr


def run_float(src, out, *extra):
    """run_job with --output-format float: the model's samples bit for bit (the
    default, pcm16, rounds them)."""
    return run_job(src, out, "--output-format", "float", *extra)


def summary_counts(err, stream=None):
    """(input beyond full scale, output clipped) from the summary line(s)."""
    res = []
    for line in err.splitlines():
        m = re.search(r"(\d+) input samples beyond full scale, (\d+) output samples clipped", line)
        if m and (stream is None or line.startswith(f"ssmd: {stream} ")):
            res.append((int(m.group(1)), int(m.group(2))))
    check(res, f"no summary line with clipping counters in: {err}")
    return res


def bits_differ(a, b):
    return int(np.sum(np.asarray(a, "<f4").view("<u4") != np.asarray(b, "<f4").view("<u4")))


# ---------------------------------------------------------------- item 1

def t_clipping_file():
    """A float file far above full scale: warned about at open with its peak,
    counted in the summary; --normalize-float / --input-gain-db scale it
    exactly like a pre-scaled file; an integer output counts what it clips."""
    rate, n = 16000, 32000
    x = signal_(n, rate, 1)
    hot = (x * np.float32(1e5)).astype(np.float32)  # integer-scaled float
    src = os.path.join(TMP, "hot.wav")
    sf.write(src, hot, rate, subtype="FLOAT")
    peak = float(np.max(np.abs(hot)))
    rc, err = run_float(src, os.path.join(TMP, "hot_out.wav"))
    check(rc == 0, err)
    warn = [ln for ln in err.splitlines() if "warning" in ln and "peak" in ln]
    check(len(warn) == 1, f"expected one warning line naming the peak, got: {err}")
    m = re.search(r"peak at ([0-9.e+]+)", warn[0])
    check(m and abs(float(m.group(1)) - peak) <= 1e-5 * peak, f"peak {peak} not in: {warn[0]}")
    check("--normalize-float" in warn[0] and "--input-gain-db" in warn[0], warn[0])
    n_in, n_out = summary_counts(err)[0]
    y = sf.read(os.path.join(TMP, "hot_out.wav"), dtype="float32")[0]
    want_in, want_out = int(np.sum(np.abs(hot) > 1)), int(np.sum(np.abs(y) > 1))
    print(f"hot float file: peak {peak:.1f}, warning: {warn[0]}")
    print(f"  summary: {n_in} input / {n_out} output samples beyond full scale; numpy: {want_in} / {want_out}")
    check((n_in, n_out) == (want_in, want_out), "clipping counters differ from numpy's counts")
    check(want_in > 0 and want_out > 0, "test signal should clip")

    # --normalize-float equals the job on the file scaled by float32(1/peak)
    g = np.float32(1.0 / peak)
    pre = os.path.join(TMP, "hot_prescaled.wav")
    sf.write(pre, hot * g, rate, subtype="FLOAT")
    rc, err_n = run_float(src, os.path.join(TMP, "hot_norm.wav"), "--normalize-float")
    check(rc == 0 and "warning" not in err_n, err_n)
    rc, err_p = run_float(pre, os.path.join(TMP, "hot_pre.wav"))
    check(rc == 0, err_p)
    a = sf.read(os.path.join(TMP, "hot_norm.wav"), dtype="float32")[0]
    b = sf.read(os.path.join(TMP, "hot_pre.wav"), dtype="float32")[0]
    d = bits_differ(a, b)
    print(f"  --normalize-float vs pre-scaled file: {d} samples differ (bit-exact required), "
          f"counters {summary_counts(err_n)[0]}")
    check(d == 0 and summary_counts(err_n)[0][0] == 0, "normalize-float differs from a pre-scaled input")

    # one infinite sample must not hide the peak of the others (libsndfile's peak is then inf):
    # still warned about with the finite peak, and --normalize-float still scales by it
    inf_src = os.path.join(TMP, "hot_inf.wav")
    hot_inf = hot.copy()
    hot_inf[1000] = np.inf
    sf.write(inf_src, hot_inf, rate, subtype="FLOAT")
    rc, err_i = run_float(inf_src, os.path.join(TMP, "hot_inf_out.wav"))
    warn_i = [ln for ln in err_i.splitlines() if "warning" in ln and "peak" in ln]
    m = re.search(r"peak at ([0-9.e+]+)", warn_i[0]) if len(warn_i) == 1 else None
    finite_peak = float(np.max(np.abs(np.delete(hot, 1000))))
    print(f"  with one +inf sample: {warn_i[0] if warn_i else 'no warning'}")
    check(rc == 0 and m and abs(float(m.group(1)) - finite_peak) <= 1e-5 * finite_peak,
          f"an infinite sample hid the peak warning (finite peak {finite_peak}): {err_i}")
    rc, err_in = run_float(inf_src, os.path.join(TMP, "hot_inf_norm.wav"), "--normalize-float")
    y = sf.read(os.path.join(TMP, "hot_inf_norm.wav"), dtype="float32")[0]
    print(f"  with one +inf sample and --normalize-float: output peak {np.max(np.abs(y)):.3f}")
    check(rc == 0 and np.max(np.abs(y)) < 4.0, f"--normalize-float did not scale a file with an inf sample: {err_in}")

    # --input-gain-db -100 equals the job on the file scaled by float32(10^(-100/20))
    g = np.float32(10.0 ** (-100 / 20))
    sf.write(pre, hot * g, rate, subtype="FLOAT")
    rc, err_g = run_float(src, os.path.join(TMP, "hot_gain.wav"), "--input-gain-db", "-100")
    check(rc == 0, err_g)
    rc, err_p = run_float(pre, os.path.join(TMP, "hot_pre.wav"))
    a = sf.read(os.path.join(TMP, "hot_gain.wav"), dtype="float32")[0]
    b = sf.read(os.path.join(TMP, "hot_pre.wav"), dtype="float32")[0]
    d = bits_differ(a, b)
    print(f"  --input-gain-db -100 vs pre-scaled file: {d} samples differ (bit-exact required)")
    check(d == 0, "input gain differs from a pre-scaled input")
    rc, err_b = run_job(src, os.path.join(TMP, "x.wav"), "--input-gain-db", "loud")
    check(rc != 0 and len(err_b.strip().splitlines()) == 1 and "input_gain_db" in err_b, err_b)
    print(f"  bad gain: {err_b.strip()}")

    # a 16-bit output clips exactly the samples beyond full scale
    mild = (x * np.float32(4)).astype(np.float32)
    sf.write(src, mild, rate, subtype="FLOAT")
    rc, err_f = run_float(src, os.path.join(TMP, "mild.wav"))
    rc2, err_i = run_job(src, os.path.join(TMP, "mild.flac"))  # FLAC holds no float: PCM_16
    check(rc == 0 and rc2 == 0, err_f + err_i)
    yf = sf.read(os.path.join(TMP, "mild.wav"), dtype="float32")[0]
    yi = sf.read(os.path.join(TMP, "mild.flac"), dtype="float32")[0]
    want = int(np.sum(np.abs(yf) > 1))
    got = summary_counts(err_i)[0][1]
    print(f"  16-bit FLAC output: summary says {got} clipped, numpy counts {want} float samples beyond "
          f"+-1; FLAC peak {np.max(np.abs(yi)):.5f}")
    check(want > 0 and got == want and "(in the file)" in err_i, err_i)
    check(np.max(np.abs(yi)) <= 1.0, "FLAC output exceeds full scale")


class Daemon:
    def __init__(self, *args):
        self.ports = [free_port() for _ in range(3)]
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{p}" for p in self.ports)
        self.proc = subprocess.Popen(
            [SSMD, "--model", MODEL, "--pub", self.pub, "--ingest", self.ingest,
             "--control", self.control, "--log-level", "warn", *args],
            stderr=subprocess.PIPE, env=dict(os.environ, HOME=TMP))
        self.ctx = zmq.Context.instance()
        time.sleep(0.3)

    def ctl(self, req):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 5000)
        s.connect(self.control)
        s.send(json.dumps(req).encode())
        r = json.loads(s.recv_multipart()[0])
        s.close()
        return r

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.communicate(timeout=10)[1].decode()


def t_clipping_push_flags():
    """A pushed stream with samples beyond +-1: status and streams count them,
    and exactly the reply messages with output samples beyond +-1 carry CLIPPED."""
    rate, n = 16000, 16000
    x = signal_(n, rate, 3) * np.float32(5)
    d = Daemon()
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(d.ingest)
        topic = P.format_topic("hot", "audio").encode()
        chunk, seq = 1600, 0
        for i in range(0, n, chunk):
            h = P.Header(kind=1, dtype=1, sample_rate_hz=rate, rows=chunk, cols=1, seq=seq, first_sample=i,
                         flags=0)
            dealer.send_multipart([topic, P.encode_header(h), x[i:i + chunk].astype("<f4").tobytes()])
            seq += 1
        msgs = []
        while sum(len(m[1]) for m in msgs) < n - 2048:
            check(dealer.poll(5000), "no reply")
            t, hb, payload = dealer.recv_multipart()
            if t.split(b"/")[1:2] == [b"meta"]:
                continue  # the daemon's first reply: the stream's meta
            msgs.append((P.decode_header(hb, len(payload)).flags, np.frombuffer(payload, "<f4")))
        streams = d.ctl({"version": 1, "cmd": "streams"})["streams"]
        h = P.Header(kind=1, dtype=1, sample_rate_hz=rate, rows=0, cols=1, seq=seq, first_sample=n,
                     flags=P.FLAG_END_OF_STREAM)
        dealer.send_multipart([topic, P.encode_header(h), b""])
        while not (msgs and msgs[-1][0] & P.FLAG_END_OF_STREAM):
            check(dealer.poll(5000), "no end of stream")
            t, hb, payload = dealer.recv_multipart()
            if t.split(b"/")[1:2] == [b"meta"]:
                continue  # the daemon's first reply: the stream's meta
            msgs.append((P.decode_header(hb, len(payload)).flags, np.frombuffer(payload, "<f4")))
        st = d.ctl({"version": 1, "cmd": "status"})
    finally:
        d.stop()
    want_in = int(np.sum(np.abs(x) > 1))
    want_out = sum(int(np.sum(np.abs(y) > 1)) for _, y in msgs)
    wrong = [i for i, (f, y) in enumerate(msgs) if bool(f & P.FLAG_CLIPPED) != bool(np.any(np.abs(y) > 1))]
    c = st["counters"]
    s0 = [s for s in streams if s["name"] == "hot"][0]
    print(f"pushed hot stream: status input_clipped {c['input_clipped']} (numpy {want_in}), output_clipped "
          f"{c['output_clipped']} (numpy {want_out}); streams: {s0['input_clipped']} in, "
          f"{s0['output_clipped']} out so far; {len(msgs)} replies, "
          f"{sum(1 for f, _ in msgs if f & P.FLAG_CLIPPED)} flagged CLIPPED, {len(wrong)} flagged wrongly")
    check(c["input_clipped"] == want_in and c["output_clipped"] == want_out, c)
    check(s0["input_clipped"] == want_in and 0 < s0["output_clipped"] <= want_out, s0)
    check(not wrong and want_out > 0, f"messages flagged wrongly: {wrong}")



def t_nonfinite_file():
    """NaN and +-Inf samples in a float input file are zeroed and counted: per
    stream in the end-of-job summary (a stereo file: per channel; --channels
    mono: all of them) and in status (nonfinite_samples) and streams while the
    job runs.  The counts come from numpy."""
    rate, n = 16000, 32000
    st = np.stack([signal_(n, rate, 40), signal_(n, rate, 41)], 1)
    for i, v in ((100, np.nan), (2000, np.inf), (3000, -np.inf)):
        st[i, 0] = v
    st[500, 1] = np.nan
    src = os.path.join(TMP, "nonfinite.wav")
    sf.write(src, st, rate, subtype="FLOAT")
    want = [int(np.sum(~np.isfinite(st[:, k]))) for k in range(2)]
    rc, err = run_job(src, os.path.join(TMP, "nonfinite_out.wav"))
    got = []
    for k in range(2):
        m = [re.search(r"(\d+) non-finite input samples", ln) for ln in err.splitlines()
             if ln.startswith(f"ssmd: nonfinite.wav.{k} ")]
        got.append(int(m[0].group(1)) if m and m[0] else None)
    print(f"stereo float file with {want} non-finite samples per channel: summary says {got}")
    check(rc == 0 and got == want, f"summary counts {got}, numpy {want}: {err}")
    rc, err = run_job(src, os.path.join(TMP, "nonfinite_mono.wav"), "--channels", "mono")
    m = re.search(r"(\d+) non-finite input samples", err)
    print(f"  --channels mono: summary says {m.group(1) if m else None} (numpy {sum(want)})")
    check(rc == 0 and m and int(m.group(1)) == sum(want), err)
    # served and paced: status and streams count them while the job runs
    d = Daemon(src, "--serve", "yes", "--realtime", "--channels", "mono")
    try:
        time.sleep(1.0)  # the samples at 0.2 s and before have been read
        c = d.ctl({"version": 1, "cmd": "status"})["counters"]
        streams = d.ctl({"version": 1, "cmd": "streams"})["streams"]
    finally:
        d.stop()
    per = [s.get("nonfinite_samples") for s in streams]
    print(f"  served: status nonfinite_samples {c['nonfinite_samples']}, streams {per} (numpy {sum(want)})")
    check(c["nonfinite_samples"] == sum(want) and per == [sum(want)], f"status {c}, streams {streams}")

# ---------------------------------------------------------------- item 3

def t_kill9_header():
    """kill -9 during a file job: sox, soundfile and wave read the output up to
    about its last second, and what they read is the start of the full output."""
    rate, n = 16000, 16000 * 60
    x = signal_(n, rate, 5)
    src = os.path.join(TMP, "long.wav")
    sf.write(src, x, rate, subtype="PCM_16")
    full = os.path.join(TMP, "long_full.wav")
    rc, err = run_job(src, full)
    check(rc == 0, err)
    with wave.open(full) as w:
        check(w.getnframes() == n and w.getsampwidth() == 2, "full output is not plain 16-bit PCM")
    ref = sf.read(full, dtype="int16")[0]
    out = os.path.join(TMP, "long_killed.wav")
    p = subprocess.Popen([SSMD, "--model", MODEL, src, "-o", out, "--realtime"], stderr=subprocess.DEVNULL)
    time.sleep(4.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    size = os.path.getsize(out)
    on_disk = (size - 44) // 2  # frames whose bytes reached the file (44-byte header at most)
    got_sf = sf.read(out, dtype="int16")[0]
    with wave.open(out) as w:
        nw = w.getnframes()
        got_wave = np.frombuffer(w.readframes(nw), "<i2")
    res = [f"soundfile {len(got_sf)}", f"wave {nw}"]
    readers = [got_sf, got_wave]
    if shutil.which("sox"):
        raw = subprocess.run(["sox", out, "-t", "raw", "-e", "signed", "-b", "16", "-"], capture_output=True)
        check(raw.returncode == 0, raw.stderr.decode())
        got_sox = np.frombuffer(raw.stdout, "<i2")
        res.append(f"sox {len(got_sox)}")
        readers.append(got_sox)
    else:
        res.append("sox not installed (scripts/setup.sh installs it): skipped")
    print(f"kill -9 after 4.5 s: {size} bytes on disk (~{on_disk} frames); frames read: {', '.join(res)}")
    for y in readers:
        check(len(y) >= on_disk - rate and len(y) > rate, f"read {len(y)} of ~{on_disk} frames on disk")
        check(np.array_equal(y, ref[:len(y)]), "what was read differs from the full run's output")


# ---------------------------------------------------------------- item 5

def t_stereo_split():
    """Stereo in -> stereo out: channel k is the mono job on channel k, bit for
    bit; --channels mono still downmixes (mean); too many channels: one line."""
    rate, n = 16000, 24000
    st = np.stack([signal_(n, rate, 7), signal_(n, rate, 8, 0.1)], 1)
    src = os.path.join(TMP, "st.wav")
    sf.write(src, st, rate, subtype="FLOAT")
    out = os.path.join(TMP, "st_out.wav")
    rc, err = run_float(src, out)
    check(rc == 0, err)
    y, r = sf.read(out, dtype="float32", always_2d=True)
    check(y.shape == (n, 2) and r == rate, f"output shape {y.shape} at {r} Hz, want ({n}, 2)")
    for k in range(2):
        mono = os.path.join(TMP, f"st_ch{k}.wav")
        sf.write(mono, st[:, k], rate, subtype="FLOAT")
        rc, err = run_float(mono, os.path.join(TMP, f"st_ch{k}_out.wav"))
        check(rc == 0, err)
        ref = sf.read(os.path.join(TMP, f"st_ch{k}_out.wav"), dtype="float32")[0]
        d = bits_differ(y[:, k], ref)
        print(f"stereo split: channel {k}: {d} of {n} samples differ from the mono job on it (bit-exact required)")
        check(d == 0, f"channel {k} differs")
    rc, err = run_float(src, os.path.join(TMP, "st_down.wav"), "--channels", "mono")
    check(rc == 0, err)
    yd = sf.read(os.path.join(TMP, "st_down.wav"), dtype="float32")[0]
    mean = ((np.float32(0) + st[:, 0]) + st[:, 1]) / np.float32(2)
    sf.write(os.path.join(TMP, "st_mean.wav"), mean, rate, subtype="FLOAT")
    run_float(os.path.join(TMP, "st_mean.wav"), os.path.join(TMP, "st_mean_out.wav"))
    d = bits_differ(yd, sf.read(os.path.join(TMP, "st_mean_out.wav"), dtype="float32")[0])
    print(f"--channels mono: mono output ({yd.ndim} dim), {d} samples differ from the job on the mean")
    check(yd.ndim == 1 and d == 0, "downmix differs")
    # int16 stereo: plain PCM WAV that Python's wave reads
    src16 = os.path.join(TMP, "st16.wav")
    sf.write(src16, st, rate, subtype="PCM_16")
    rc, err = run_job(src16, os.path.join(TMP, "st16_out.wav"))
    check(rc == 0, err)
    with wave.open(os.path.join(TMP, "st16_out.wav")) as w:
        print(f"int16 stereo output: wave reads {w.getnchannels()} channels, {w.getnframes()} frames")
        check(w.getnchannels() == 2 and w.getnframes() == n, "wave cannot read the stereo output")
    three = os.path.join(TMP, "three.wav")
    sf.write(three, np.zeros((1000, 3), np.float32), rate)
    rc, err = run_job(three, os.path.join(TMP, "three_out.wav"), "--max-streams", "2")
    lines = err.strip().splitlines()
    print(f"3 channels, 2 streams allowed: exit {rc}: {err.strip()}")
    check(rc != 0 and len(lines) == 1 and "--channels mono" in err and "3 channels" in err, err)
    check(not os.path.exists(os.path.join(TMP, "three_out.wav")), "output left behind")


# ---------------------------------------------------------------- output formats
# (wav_format_tag: the clients' test harness, tests/clients/harness.py)

def t_output_format():
    """--output-format: pcm16 by default (also for a float input), pcm24 and
    float on request; float is the model's output bit for bit and pcm16 is it
    rounded to 16 bits; bad values and float in FLAC: one line, no file."""
    rate, n = 16000, 16000
    x = signal_(n, rate, 11)
    src = os.path.join(TMP, "fmt_in.wav")
    sf.write(src, x, rate, subtype="FLOAT")
    got = {}
    for fmt in (None, "pcm16", "pcm24", "float"):
        out = os.path.join(TMP, f"fmt_{fmt}.wav")
        rc, err = run_job(src, out, *(["--output-format", fmt] if fmt else []))
        check(rc == 0, err)
        info = sf.info(out)
        got[fmt] = sf.read(out, dtype="float32")[0]
        print(f"float input, --output-format {fmt or '(default)'}: {info.subtype}, "
              f"format tag {wav_format_tag(out)}, {info.frames} frames")
        want = {None: "PCM_16", "pcm16": "PCM_16", "pcm24": "PCM_24", "float": "FLOAT"}[fmt]
        check(info.subtype == want and info.frames == n, f"{fmt}: {info.subtype}, want {want}")
    with wave.open(os.path.join(TMP, "fmt_None.wav")) as w:
        check(w.getsampwidth() == 2 and w.getnframes() == n, "default output is not 16-bit PCM for wave")
    e16 = float(np.max(np.abs(got["pcm16"] - np.clip(got["float"], -1, 1))))
    e24 = float(np.max(np.abs(got["pcm24"] - np.clip(got["float"], -1, 1))))
    print(f"  max |pcm16 - float| = {e16:.3g} (<= 2^-15), |pcm24 - float| = {e24:.3g} (<= 2^-23)")
    check(e16 <= 2.0 ** -15 and e24 <= 2.0 ** -23, "integer outputs are not the float output rounded")
    check(bits_differ(got[None], got["pcm16"]) == 0, "default differs from pcm16")
    # the generator's --output follows the same option (the bundled mu-law model)
    for fmt, want in ((None, "PCM_16"), ("pcm24", "PCM_24"), ("float", "FLOAT")):
        gen = os.path.join(TMP, f"gen_{fmt}.wav")
        r = subprocess.run([SSMD, "--generate-s", "1", "--seed", "1", "-o", gen,
                            *(["--output-format", fmt] if fmt else [])], capture_output=True, text=True, timeout=120)
        got_sub = sf.info(gen).subtype if r.returncode == 0 else r.stderr.strip()
        print(f"  --generate-s 1, --output-format {fmt or '(default)'}: {got_sub}")
        check(got_sub == want, f"generator output {got_sub}, want {want}")
    for extra, out, words in ((["--output-format", "pcm12"], "bad.wav", ["--output-format", "pcm16|pcm24|float"]),
                              (["--output-format", "float"], "f.flac", ["flac", "float"])):
        dst = os.path.join(TMP, out)
        rc, err = run_job(src, dst, *extra)
        lines = err.strip().splitlines()
        print(f"  {' '.join(extra)} -> {out}: exit {rc}: {err.strip()}")
        check(rc == 2 and len(lines) == 1 and all(w.lower() in err.lower() for w in words), err)
        check(not os.path.exists(dst), "output left behind")


def t_output_mp3():
    """.mp3 output (libsndfile's MPEG Layer III writer): mono and stereo keep
    their channels and length; a rate MPEG cannot hold: one line."""
    rate, n = 48000, 48000
    for c in (1, 2):
        st = np.stack([signal_(n, rate, 20 + k) for k in range(c)], 1)
        src = os.path.join(TMP, f"mp3_in{c}.wav")
        sf.write(src, st, rate, subtype="PCM_16")
        out = os.path.join(TMP, f"mp3_out{c}.mp3")
        rc, err = run_job(src, out)
        check(rc == 0, err)
        info = sf.info(out)
        y = sf.read(out, dtype="float32", always_2d=True)[0]
        print(f"{c} channel(s) -> .mp3: {info.format_info} / {info.subtype_info}, {info.channels} ch, "
              f"{info.frames} frames (input {n}), rms {float(np.sqrt(np.mean(y ** 2))):.3f}")
        check(info.format == "MP3" and info.channels == c and abs(info.frames - n) <= 1152, "mp3 output")
    src = os.path.join(TMP, "mp3_in7k.wav")
    sf.write(src, signal_(7000, 7000, 3), 7000, subtype="PCM_16")
    rc, err = run_job(src, os.path.join(TMP, "mp3_7k.mp3"))
    print(f"7000 Hz -> .mp3: exit {rc}: {err.strip()}")
    check(rc != 0 and len(err.strip().splitlines()) == 1 and "7000 Hz" in err and "MP3" in err, err)


def t_output_mp3_fifo():
    """An MP3 written to a named pipe: the job ends (exit 0) and the reader gets the stream.
    The close's check of an MP3 against its header used to open the FIFO for reading after
    the write end closed, and waited there forever."""
    rate = 16000
    src = os.path.join(TMP, "fifo_in.wav")
    sf.write(src, signal_(2 * rate, rate, 11), rate, subtype="PCM_16")
    fifo = os.path.join(TMP, "fifo_out.mp3")
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    try:
        r = subprocess.run([SSMD, "--model", MODEL, src, "-o", fifo, "--progress", "never"], capture_output=True,
                           text=True, timeout=30)
        rc = r.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
        try:  # let a reader still waiting end (none may be left: never block here)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    reader.join(10)
    n = len(got[0]) if got else 0
    print(f"ssmd IN -o FIFO.mp3: exit {rc}, the reader got {n} bytes")
    check(rc == 0 and n > 1000, f"exit {rc}, {n} bytes read")


def t_channels_auto():
    """--channels auto on 1, 2 and 6 channel files: the output has the input's
    channel count, channel k is the mono job on channel k bit for bit (float),
    and the default (pcm16) WAV is plain WAVE_FORMAT_PCM that Python's wave
    module opens with that many channels."""
    rate, n = 16000, 8000
    for c in (1, 2, 6):
        st = np.stack([signal_(n, rate, 30 + k, 0.05 + 0.05 * k) for k in range(c)], 1)
        src = os.path.join(TMP, f"ch{c}.wav")
        sf.write(src, st, rate, subtype="FLOAT")
        out16 = os.path.join(TMP, f"ch{c}_out16.wav")
        rc, err = run_job(src, out16)
        check(rc == 0, err)
        with wave.open(out16) as w:
            shape = (w.getnchannels(), w.getsampwidth(), w.getnframes())
        tag = wav_format_tag(out16)
        outf = os.path.join(TMP, f"ch{c}_outf.wav")
        rc, err = run_float(src, outf)
        check(rc == 0, err)
        y = sf.read(outf, dtype="float32", always_2d=True)[0]
        diffs = []
        for k in range(c):
            mono = os.path.join(TMP, f"ch{c}_{k}.wav")
            sf.write(mono, st[:, k], rate, subtype="FLOAT")
            rc, err = run_float(mono, os.path.join(TMP, f"ch{c}_{k}_out.wav"))
            check(rc == 0, err)
            diffs.append(bits_differ(y[:, k], sf.read(os.path.join(TMP, f"ch{c}_{k}_out.wav"), dtype="float32")[0]))
        print(f"{c} channel(s) in: wave reads (channels, bytes, frames) {shape}, format tag {tag}; "
              f"float output {y.shape}, samples differing from the mono job per channel: {diffs}")
        check(shape == (c, 2, n) and tag == 1, f"{c} channels: not plain 16-bit PCM with {c} channels")
        check(y.shape == (n, c) and diffs == [0] * c, f"{c} channels: channels differ from the mono jobs")



def t_low_rate_file():
    """Files below 2 048 Hz, whose 4 s of pending input hold less than two of
    the file source's reads: every sample is processed (output length = input
    length, 0 dropped).  A version that read ahead to fill whole model chunks
    dropped half of an 8 s file at 1 000 Hz and cut a 1 500 Hz file mid-way."""
    for rate, secs in ((1000, 8), (1500, 30), (1024, 12)):
        n = rate * secs
        src = os.path.join(TMP, f"low{rate}.wav")
        sf.write(src, signal_(n, rate, 7), rate, subtype="PCM_16")
        out = os.path.join(TMP, f"low{rate}_out.wav")
        rc, err = run_job(src, out)
        check(rc == 0, err)
        m = re.search(r"(\d+) samples dropped", err)
        got = sf.info(out).frames
        print(f"{rate} Hz, {n} samples in: {got} out, {m.group(1) if m else '?'} dropped")
        check(m and int(m.group(1)) == 0, f"{rate} Hz: samples dropped: {err}")
        check(got == n, f"{rate} Hz: {got} samples out for {n} in")


def t_empty_input():
    """An input with 0 samples: every container that can hold nothing gets a
    file that soundfile (libsndfile) opens as 0 frames; MP3, FLAC and
    Ogg/Opus, which libsndfile writes as 0 bytes or as a file no reader opens
    (a bare FLAC header fails in soundfile: "psf_fseek failed"), get one error
    line naming the output, exit 1 and no file."""
    src = os.path.join(TMP, "empty_in.wav")
    sf.write(src, np.zeros((0, 1), np.float32), 48000, subtype="PCM_16")
    failed = []
    for ext in ("wav", "flac", "ogg", "au", "aiff", "w64", "mp3", "opus"):
        out = os.path.join(TMP, f"empty_out.{ext}")
        rc, err = run_job(src, out)
        errs = [ln for ln in err.splitlines() if "no audio to write" in ln]
        if ext in ("mp3", "flac", "opus"):
            ok = rc == 1 and len(errs) == 1 and out in errs[0] and not os.path.exists(out)
            print(f"empty input -> .{ext}: exit {rc}: {errs[0] if errs else err.strip()}"
                  f"{'; file left behind' if os.path.exists(out) else ''}")
        else:
            try:
                frames = len(sf.read(out)[0])
            except Exception as e:  # noqa: BLE001  (reported below)
                frames = f"unreadable: {e}"
            ok = rc == 0 and frames == 0
            print(f"empty input -> .{ext}: exit {rc}, soundfile reads {frames} frames")
        if not ok:
            failed.append(f".{ext}: {err.strip()}")
    check(not failed, "; ".join(failed))

# ---------------------------------------------------------------- jobs that would lose their result

def run_ssmd(*args, timeout=60):
    """ssmd with the test model, a temporary HOME and loopback endpoints on free
    ports (a job that does start must not collide with another daemon)."""
    ports = [free_port() for _ in range(3)]
    eps = [f"tcp://127.0.0.1:{p}" for p in ports]
    r = subprocess.run([SSMD, "--model", MODEL, "--ingest", eps[1], "--control", eps[2], "--progress", "never",
                        *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ, HOME=TMP))
    return r.returncode, r.stderr


def t_no_output_named():
    """A job whose result would go nowhere is refused before anything runs:
    a file input without -o (and not published: no --serve yes,
    --wait-subscribers or --pub), or with --serve no; -o with an input that
    writes no file (mic, none).  Exit 2, one line naming the input or output
    and how to write or publish it; with a sink named, the job runs."""
    rate, n = 16000, 4000
    src = os.path.join(TMP, "nosink_in.wav")
    sf.write(src, signal_(n, rate, 7), rate, subtype="PCM_16")
    out = os.path.join(TMP, "nosink_out.wav")
    failed = []
    for extra, names, words in (([src], src, ["no output file named", "-o OUT.wav", "--serve yes"]),
                                ([src, "--serve", "no"], src, ["no output file named", "-o OUT.wav"]),
                                (["--input", "none", "-o", out], out, ["--output", "writes no file", "ssm-sub -o"]),
                                (["--input", "mic", "-o", out], out, ["--output", "writes no file"])):
        rc, err = run_ssmd(*extra, timeout=15)  # without the check, --input none serves until stopped
        lines = err.strip().splitlines()
        print(f"ssmd {' '.join(os.path.basename(a) for a in extra)}: exit {rc}: {err.strip()}")
        if not (rc == 2 and len(lines) == 1 and names in lines[0] and all(w in lines[0] for w in words)
                and not os.path.exists(out)):
            failed.append(f"{extra}: exit {rc}: {err!r}")
    # a file input with another sink runs: published (--serve yes, or a --pub
    # endpoint named) or written
    for extra in (["--serve", "yes", "--pub", f"tcp://127.0.0.1:{free_port()}"],
                  ["--pub", f"tcp://127.0.0.1:{free_port()}"], ["-o", out]):
        rc, err = run_ssmd(src, *extra)
        print(f"ssmd IN {' '.join(os.path.basename(a) for a in extra)}: exit {rc}")
        if rc != 0:
            failed.append(f"{extra}: a job with a sink failed: {err!r}")
    check(not failed, "\n".join(failed))


def t_wait_subscribers_file_to_file():
    """IN -o OUT --wait-subscribers 1 binds its sockets (serve auto) and runs once a subscriber
    arrives: the output is written and the subscriber receives the stream.  It used to bind
    nothing in a file-to-file job and wait forever."""
    rate, n = 16000, 8000
    src = os.path.join(TMP, "ws_in.wav")
    sf.write(src, signal_(n, rate, 9), rate, subtype="PCM_16")
    out = os.path.join(TMP, "ws_out.wav")
    ports = [free_port() for _ in range(3)]
    pub = f"tcp://127.0.0.1:{ports[0]}"
    p = subprocess.Popen([SSMD, "--model", MODEL, src, "-o", out, "--wait-subscribers", "1", "--pub", pub,
                          "--ingest", f"tcp://127.0.0.1:{ports[1]}", "--control", f"tcp://127.0.0.1:{ports[2]}",
                          "--progress", "never"], stderr=subprocess.PIPE, text=True, env=dict(os.environ, HOME=TMP))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub)
    got = 0
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None:
        if sub.poll(200):
            sub.recv_multipart()
            got += 1
    while sub.poll(200):
        sub.recv_multipart()
        got += 1
    sub.close(0)
    ctx.term()
    if p.poll() is None:
        p.kill()
    err = p.communicate()[1]
    frames = sf.info(out).frames if os.path.exists(out) else -1
    print(f"ssmd IN -o OUT --wait-subscribers 1: exit {p.returncode}, {frames} frames written, {got} messages received")
    check(p.returncode == 0 and frames == n and got > 0, f"exit {p.returncode}, {frames} frames, {got} messages: {err}")


def t_no_control_bytes_on_stderr():
    """Errors quote config values and paths with their control bytes as '?': a terminal escape
    in a config file's input or model reached the terminal raw."""
    failed = []
    for body, extra in (("input = a\033[2Jb.wav\n", []), ("model = /no\033[2Jpe\n", ["-o", "x.wav"])):
        conf = os.path.join(TMP, "esc.conf")
        with open(conf, "w") as f:
            f.write(body)
        args = [SSMD, "-c", conf, *extra] if "model" not in body else [SSMD, "-c", conf, os.path.join(TMP, "nx.wav"),
                                                                       *extra]
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        print(f"{body.strip()!r}: exit {r.returncode}: {r.stderr.strip()!r}")
        if r.returncode == 0 or "\033" in r.stderr or "?[2J" not in r.stderr:
            failed.append(f"{body!r}: {r.stderr!r}")
    check(not failed, "\n".join(failed))


def t_output_format_does_nothing():
    """--output-format that would do nothing (no -o: a published file job, a
    published generation; or an .ogg/.opus/.mp3 output, whose codec sets the
    samples) is refused from the command line with one line naming the format
    and why, exit 2, no output (as ssm-push and ssm-sub do); the same key in a
    config file gets one warning line and the job runs; the default is never
    an error."""
    rate, n = 16000, 4000
    src = os.path.join(TMP, "ofnop_in.wav")
    sf.write(src, signal_(n, rate, 8), rate, subtype="PCM_16")
    pub = ["--pub", f"tcp://127.0.0.1:{free_port()}"]
    failed = []
    cases = [([src, "--serve", "yes", *pub, "--output-format", "float"], None, "no output file"),
             (["--model", os.path.join(HERE, "..", "..", "models", "mulaw_lm.safetensors"), "--generate-s", "1",
               "--generate-publish", *pub, "--output-format", "pcm24"], None, "no output file"),
             ([src, "--output-format", "float"], "ofnop.mp3", "codec"),
             ([src, "--output-format", "pcm24"], "ofnop.opus", "codec"),
             ([src, "--output-format", "pcm16"], "ofnop.ogg", "codec")]
    for extra, out, why in cases:
        dst = os.path.join(TMP, out) if out else None
        rc, err = run_ssmd(*extra, *(["-o", dst] if dst else []))
        lines = err.strip().splitlines()
        fmt = extra[extra.index("--output-format") + 1]
        print(f"--output-format {fmt} {'-> ' + out if out else '(no -o)'}: exit {rc}: {err.strip()}")
        if not (rc == 2 and len(lines) == 1 and f"--output-format {fmt}" in lines[0] and why in lines[0]
                and (dst is None or (dst in lines[0] and not os.path.exists(dst)))):
            failed.append(f"{extra} {out}: exit {rc}: {err!r}")
    # from a config file: a warning, and the job runs (the codec's samples)
    conf = os.path.join(TMP, "ofnop.conf")
    with open(conf, "w") as f:
        f.write("output_format = float\n")
    dst = os.path.join(TMP, "ofnop_conf.mp3")
    rc, err = run_ssmd("-c", conf, src, "-o", dst, "--log-level", "warn")
    warns = [ln for ln in err.splitlines() if "output_format = float" in ln]
    print(f"config output_format = float -> .mp3: exit {rc}: {warns[0] if warns else err.strip()}")
    if not (rc == 0 and len(warns) == 1 and "warning" in warns[0] and "codec" in warns[0] and os.path.exists(dst)):
        failed.append(f"config file, .mp3: exit {rc}: {err!r}")
    rc, err = run_ssmd("-c", conf, src, "--serve", "yes", *pub, "--log-level", "warn")
    warns = [ln for ln in err.splitlines() if "output_format = float" in ln]
    print(f"config output_format = float, no -o: exit {rc}: {warns[0] if warns else err.strip()}")
    if not (rc == 0 and len(warns) == 1 and "no output file" in warns[0]):
        failed.append(f"config file, no -o: exit {rc}: {err!r}")
    # where it applies, or left at its default: no word about it
    for extra in (["--output-format", "float", "-o", os.path.join(TMP, "ofnop.wav")],
                  ["-o", os.path.join(TMP, "ofnop_default.mp3")]):
        rc, err = run_ssmd(src, *extra, "--log-level", "warn")
        print(f"{' '.join(os.path.basename(a) for a in extra)}: exit {rc}")
        if rc != 0 or "output-format" in err or "output_format" in err:
            failed.append(f"{extra}: exit {rc}: {err!r}")
    check(not failed, "\n".join(failed))

# ---------------------------------------------------------------- file errors

def t_file_errors():
    """Unreadable inputs and unwritable outputs of a file job: exit status
    non-zero, exactly one line on stderr, naming the file and what is wrong
    (never libsndfile's vague texts), and no output left behind."""
    rate, n = 16000, 8000
    ok = os.path.join(TMP, "fe_ok.wav")
    sf.write(ok, signal_(n, rate, 3), rate, subtype="PCM_16")
    body = open(ok, "rb").read()

    def put(name, data):
        p = os.path.join(TMP, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    flac = os.path.join(TMP, "fe_ok.flac")
    sf.write(flac, signal_(n, rate, 4), rate)
    r44 = os.path.join(TMP, "fe_44k.wav")
    sf.write(r44, signal_(4410, 44100, 5), 44100, subtype="PCM_16")
    r300k = os.path.join(TMP, "fe_300k.wav")
    sf.write(r300k, signal_(30000, 300000, 6), 300000, subtype="PCM_16")
    nine = os.path.join(TMP, "fe_nine.wav")
    sf.write(nine, np.zeros((2000, 9), np.float32), rate, subtype="PCM_16")
    os.makedirs(os.path.join(TMP, "fe_dir.wav"), exist_ok=True)
    out = os.path.join(TMP, "fe_out.wav")
    vague = ("Unspecified internal error", "SF_INFO struct incomplete", "Format not recognised",
             "unimplemented format", "file is malformed", "System error")
    # (input, output, extra options, which file the line names, words it must hold (any case));
    # words None: a control case that must succeed
    I, O = "in", "out"
    cases = [
        (put("fe_notes.txt", b"this is a text file, not audio\n" * 40), out, [], I,
         ["not an audio file", "readable:", "wav", "flac"]),
        (put("fe_empty.wav", b""), out, [], I, ["empty file"]),
        (put("fe_cut.wav", body[:30]), out, [], I, ["truncated wav header", "30 bytes"]),
        (put("fe_cut.flac", open(flac, "rb").read()[:20]), out, [], I, ["truncated flac header"]),
        (put("fe_junk.wav", b"RIFF" + bytes(300)), out, [], I, ["damaged or truncated wav"]),
        (put("fe_junk.ogg", b"OggS" + bytes(300)), out, [], I, ["damaged or truncated ogg"]),
        (put("fe_samples.raw", body[44:]), out, [], I, ["headerless", "sox -t raw"]),
        (put("fe_samples.pcm", body[44:]), out, [], I, ["headerless"]),
        (os.path.join(TMP, "fe_dir.wav"), out, [], I, ["directory"]),
        (os.path.join(TMP, "fe_missing.wav"), out, [], I, ["no such file"]),
        (ok, os.path.join(TMP, "fe_out.opus"), [], O, None),  # 16 kHz Opus is fine
        (r44, os.path.join(TMP, "fe_out.opus"), [], O, ["ogg/opus", "sample rate of 44100 hz", "48000"]),
        (r300k, os.path.join(TMP, "fe_out.ogg"), [], O, ["ogg/vorbis", "sample rate of 300000 hz"]),
        (nine, os.path.join(TMP, "fe_out.flac"), ["--max-streams", "16"], O, ["flac", "9 channels", "at most 8"]),
        (ok, os.path.join(TMP, "no-such-dir", "x.wav"), [], O, ["cannot create", "no such file"]),
        (ok, os.path.join(TMP, "fe_out.xyz"), [], O, ["cannot tell the audio format"]),
    ]
    # permission denied: root reads anything, so as root the job runs as nobody
    noread = put("fe_noread.wav", body)
    os.chmod(noread, 0)
    as_user = []
    if os.geteuid() == 0 and shutil.which("setpriv"):
        os.chmod(TMP, 0o755)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if os.geteuid() != 0 or as_user:
        cases.append((noread, out, [], I, ["permission denied"]))
    else:
        print("skip the permission case: root without setpriv")
    failed = []
    for src, dst, extra, names, words in cases:
        prefix = as_user if src == noread else []
        if os.path.exists(dst):
            os.unlink(dst)
        r = subprocess.run([*prefix, SSMD, "--model", MODEL, src, "-o", dst, *extra], capture_output=True,
                           text=True, timeout=120)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if words is None:
            print(f"control {os.path.basename(src)} -> {os.path.basename(dst)}: exit {r.returncode}")
            if r.returncode != 0 or not os.path.exists(dst):
                failed.append(f"control case failed: {r.stderr}")
            continue
        named = src if names == I else dst
        line = lines[0] if lines else ""
        low = line.lower()
        print(f"{os.path.basename(src)} -> {os.path.basename(dst)}: exit {r.returncode}: {line}")
        why = []
        if r.returncode == 0:
            why.append("exit status 0")
        if len(lines) != 1:
            why.append(f"{len(lines)} lines")
        if named not in line:
            why.append(f"does not name {named}")
        why += [f"lacks '{w}'" for w in words if w not in low]
        why += [f"vague text '{v}'" for v in vague if v.lower() in low]
        if os.path.exists(dst):
            why.append("output left behind")
        if why:
            failed.append(f"{os.path.basename(src)} -> {os.path.basename(dst)}: {', '.join(why)}: {r.stderr!r}")
    # a file-size limit (as a full disk: writes fail) reached mid-job: one line naming the
    # output and why, no partial file; it used to kill the job with SIGXFSZ, and an MP3 used
    # to end "successfully" holding a third of the audio (libsndfile's encoder hides the error)
    longer = os.path.join(TMP, "fe_long.wav")
    sf.write(longer, signal_(10 * rate, rate, 8), rate, subtype="PCM_16")
    full_mp3 = os.path.join(TMP, "fe_full.mp3")
    subprocess.run([SSMD, "--model", MODEL, longer, "-o", full_mp3, "--progress", "never"], capture_output=True,
                   timeout=120, check=True)
    # the MP3 one byte short: only the encoder's last frames, written inside the close, fail
    for ext, limit, words in (("wav", 12000, "file too large"), ("flac", 12000, "file too large"),
                              ("ogg", 12000, "file too large"), ("mp3", 12000, "file too large"),
                              ("mp3", os.path.getsize(full_mp3) - 1, "the file is incomplete")):
        dst = os.path.join(TMP, f"fe_limited.{ext}")
        r = subprocess.run([SSMD, "--model", MODEL, longer, "-o", dst, "--progress", "never"], capture_output=True,
                           text=True, timeout=120,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        print(f"fe_long.wav -> {os.path.basename(dst)} with a {limit}-byte file-size limit: exit {r.returncode}: "
              f"{lines[0] if lines else ''}")
        if not (r.returncode > 0 and len(lines) == 1 and dst in lines[0] and words in lines[0].lower()
                and not os.path.exists(dst)):
            failed.append(f"file-size limit {limit}, .{ext}: exit {r.returncode}: {r.stderr!r}")
    check(not failed, "\n".join(failed))


def main():
    tests = [t_clipping_file, t_clipping_push_flags, t_nonfinite_file, t_kill9_header, t_stereo_split, t_output_format, t_output_mp3, t_output_mp3_fifo,
             t_channels_auto, t_low_rate_file, t_empty_input, t_no_output_named, t_wait_subscribers_file_to_file, t_no_control_bytes_on_stderr,
             t_output_format_does_nothing, t_file_errors]
    if ONLY:
        tests = [t for t in tests if t.__name__ in ONLY]
    named_tests.run(tests, cleanup=lambda: shutil.rmtree(TMP, ignore_errors=True))


if __name__ == "__main__":
    main()
