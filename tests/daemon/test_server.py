# SPDX-License-Identifier: MIT
"""Integration tests of the ssmd daemon on loopback (docs/protocol.md), with
random free ports and a temporary HOME.  Each check prints what it measured.
Usage: test_server.py SSMD_EXE STREAM_RUN_EXE MODEL_DIR [--slow]"""
import json
import multiprocessing
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from ssmd import protocol as P  # noqa: E402
import named_tests  # noqa: E402

SSMD, STREAM_RUN, MODELS = sys.argv[1], sys.argv[2], sys.argv[3]
SLOW = "--slow" in sys.argv
# --only NAME runs that one test (registered as its own meson test);
# --ssm-sub PATH is the C subscriber client for the tests that use it
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
SSM_SUB = sys.argv[sys.argv.index("--ssm-sub") + 1] if "--ssm-sub" in sys.argv else None
SSM_PUSH = sys.argv[sys.argv.index("--ssm-push") + 1] if "--ssm-push" in sys.argv else None
MODEL = os.path.join(MODELS, "random.safetensors")
TMP = tempfile.mkdtemp(prefix="ssmd-it-")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wav(path, x, rate):
    from scipy.io import wavfile
    wavfile.write(path, rate, x.astype(np.float32))


FLOAT = ["--output-format", "float"]  # file jobs compared bit for bit (the default, pcm16, rounds)


def read_wav(path):
    from scipy.io import wavfile
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate, x = wavfile.read(path)
    return rate, x


def test_signal(n, rate, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
            + 0.02 * rng.standard_normal(n)).astype(np.float32)


class Daemon:
    def __init__(self, *args, model=MODEL, env_extra=None):
        self.ports = [free_port() for _ in range(3)]
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{p}" for p in self.ports)
        env = dict(os.environ, HOME=TMP, **(env_extra or {}))
        self.proc = subprocess.Popen(
            [SSMD, "--model", model, "--pub", self.pub, "--ingest", self.ingest,
             "--control", self.control, "--log-level", "warn", *args],
            stderr=subprocess.PIPE, env=env)
        self.ctx = zmq.Context.instance()
        time.sleep(0.3)

    def ctl(self, req, extra=None, timeout=5000):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, timeout)
        s.connect(self.control)
        body = req if isinstance(req, bytes) else json.dumps(req).encode()
        if extra is None:
            s.send(body)
        else:
            s.send_multipart([body, extra])
        frames = s.recv_multipart()
        s.close()
        return json.loads(frames[0]), frames[1:]

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        t0 = time.time()
        try:
            err = self.proc.communicate(timeout=timeout)[1].decode()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("daemon did not exit within %d s" % timeout)
        return self.proc.returncode, time.time() - t0, err


def push_stream(endpoint, name, x, rate, chunk=1000, timeout=20):
    """Pushes x as stream `name`; returns the processed audio sent back."""
    ctx = zmq.Context.instance()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(endpoint)
    topic = P.format_topic(name, "audio").encode()
    seq = 0
    for i in range(0, max(len(x), 1), chunk):
        part = x[i:i + chunk]
        last = i + chunk >= len(x)
        h = P.Header(kind=1, dtype=1, sample_rate_hz=rate, rows=len(part), cols=1, seq=seq,
                     first_sample=i, flags=P.FLAG_END_OF_STREAM if last else 0)
        d.send_multipart([topic, P.encode_header(h), part.astype("<f4").tobytes()])
        seq += 1
    out, seqs = [], []
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not d.poll(500):
            continue
        t, hb, payload = d.recv_multipart()
        h = P.decode_header(hb, len(payload))
        if t == P.format_topic(name, "meta").encode():
            continue  # the daemon's first reply: the stream's meta
        assert t == topic, t
        out.append(np.frombuffer(payload, "<f4"))
        seqs.append(h.seq)
        if h.flags & P.FLAG_END_OF_STREAM:
            d.close()
            assert seqs == list(range(len(seqs))), "reply seq not contiguous"
            return np.concatenate(out) if out else np.zeros(0, np.float32)
    d.close()
    raise AssertionError(f"{name}: no end-of-stream back within {timeout} s")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def t_file_job_bit_exact():
    """file -> daemon -> file equals the in-process pipeline (one ssm_step per frame), bit for
    bit, same length, whether the daemon runs the lone stream in chunks of frames through
    ssm_forward (the default, and 7) or frame by frame (--chunk-frames 1); with int8 and f16
    weights the chunked and frame-by-frame jobs agree bit for bit too."""
    for rate, n in ((16000, 40000), (44100, 50021)):
        x = test_signal(n, rate, 1)
        src = os.path.join(TMP, f"in{rate}.wav")
        write_wav(src, x, rate)
        ref = os.path.join(TMP, f"ref{rate}.raw")
        subprocess.run([STREAM_RUN, MODEL, src, ref], check=True)
        y_ref = np.fromfile(ref, "<f4")
        for extra in ([], ["--chunk-frames", "1"], ["--chunk-frames", "7"]):
            out = os.path.join(TMP, f"out{rate}.wav")
            r = subprocess.run([SSMD, "--model", MODEL, src, "-o", out, *FLOAT] + extra, capture_output=True)
            check(r.returncode == 0, r.stderr.decode())
            _, y = read_wav(out)
            check(len(y) == n and len(y_ref) == n, f"lengths {len(y)} {len(y_ref)} != {n}")
            diff = int(np.sum(y.view("<u4") != y_ref.view("<u4")))
            print(f"file job {rate} Hz {' '.join(extra) or '(default chunk)'}: {n} samples, daemon vs "
                  f"in-process: {diff} samples differ (bit-exact required)")
            check(diff == 0, "daemon output differs from in-process processing")
    for w in ("int8", "f16"):
        ys = []
        for extra in ([], ["--chunk-frames", "1"]):
            out = os.path.join(TMP, f"out_{w}.wav")
            r = subprocess.run([SSMD, "--model", MODEL, src, "-o", out, *FLOAT, "--weights", w] + extra,
                               capture_output=True)
            check(r.returncode == 0, r.stderr.decode())
            ys.append(read_wav(out)[1])
        diff = int(np.sum(ys[0].view("<u4") != ys[1].view("<u4")))
        print(f"file job, {w} weights: chunked vs frame by frame: {diff} samples differ (bit-exact required)")
        check(diff == 0, f"{w}: chunked file job differs from frame by frame")


def file_job_variants(model, tag, seed, variants):
    """x (2 s of the test signal at 16 kHz) and {name: output} of the offline job run on x with
    each variant's extra options."""
    rate, n = 16000, 32000
    x = 0.1 * test_signal(n, rate, seed)
    src = os.path.join(TMP, f"{tag}_in.wav")
    write_wav(src, x, rate)
    outs = {}
    for name, extra in variants:
        out = os.path.join(TMP, f"{tag}_{name}.wav")
        r = subprocess.run([SSMD, "--model", os.path.join(MODELS, model), src, "-o", out, *FLOAT] + extra,
                           capture_output=True)
        check(r.returncode == 0, r.stderr.decode())
        outs[name] = read_wav(out)[1].astype(np.float64)
    return x, outs


def t_atten_lim():
    """--atten-lim-db with a model whose gains are ~0.0025 (~50 dB down): 0 passes the input
    through, 6 turns it down by 6 dB, the default (100) lets the model's 50 dB through."""
    x, outs = file_job_variants("quiet.safetensors", "atten", 7,
                                [(lim, ["--atten-lim-db", lim] if lim else []) for lim in ("0", "6", None, "60", "200")])
    e = lambda v: float(np.sum(v[2000:] ** 2))  # noqa: E731
    pass_err = float(np.max(np.abs(outs["0"] - x)))
    att6, att_def = 10 * np.log10(e(x) / e(outs["6"])), 10 * np.log10(e(x) / e(outs[None]))
    print(f"atten-lim 0: max |out - in| {pass_err:.3g}; atten-lim 6: {att6:.2f} dB down; default: {att_def:.2f} dB down")
    check(pass_err < 1e-5, "--atten-lim-db 0 must pass the input through")
    check(abs(att6 - 6.0) <= 0.5, "--atten-lim-db 6 must turn the input down by 6 dB")
    att60, att200 = 10 * np.log10(e(x) / e(outs["60"])), 10 * np.log10(e(x) / e(outs["200"]))
    print(f"atten-lim 60: {att60:.2f} dB down; 200: {att200:.2f} dB down (the model's own gains)")
    check(att_def > 40.0, "the default limit must let the model turn the input down by ~50 dB")
    check(abs(att_def - att200) < 0.01 and abs(att60 - att200) < 0.01,
          "limits above the model's attenuation must leave its gains alone")


def t_vad_gate():
    """--vad-gate with the all-pass model (voice activity always below 100 %): after the grace the
    gains fall to the attenuation limit; before it, and with the gate off, the input passes."""
    lim = ["--atten-lim-db", "30"]
    x, res = file_job_variants("allpass.safetensors", "gate", 8,
                               (("off", lim), ("grace0", lim + ["--vad-gate", "100", "--vad-grace-ms", "0"]),
                                ("grace500", lim + ["--vad-gate", "100", "--vad-grace-ms", "500"])))
    n = len(x)
    db = lambda y, a, b: 10 * np.log10(np.sum(x[a:b] ** 2) / np.sum(y[a:b] ** 2))  # noqa: E731
    off, g0 = db(res["off"], 0, n), db(res["grace0"], 1000, n)
    early, late = db(res["grace500"], 0, 6400), db(res["grace500"], 10400, n)
    print(f"vad gate: off {off:.2f} dB down; grace 0: {g0:.2f} dB; grace 500 ms: {early:.2f} dB in the "
          f"first 0.4 s, {late:.2f} dB after 0.65 s (limit 30 dB)")
    check(abs(off) < 0.01, "gate off: the all-pass model must pass the input")
    check(abs(g0 - 30.0) < 0.5, "gate with no grace: the output must sit at the 30 dB limit")
    check(abs(early) < 0.01 and abs(late - 30.0) < 0.5, "gate with 500 ms grace: open first, closed after")


def t_python_push_large():
    """One Pusher.push() of 2.4 M samples (9.6 MB, over the daemon's 8 MiB per message) and one
    of 60 s at 48 kHz, and ssm-push --chunk 2097152 of that 60 s file, against a daemon whose
    ingest cap is set to 64 KiB: the daemon advertises the cap (status limits, the stream's
    meta reply), both clients split to it, and every sample comes back, in order (a push over
    the cap used to be dropped by the socket, silently)."""
    from ssmd import Pusher
    n, rate = 16000 * 150, 16000  # the all-pass model's rate: output = input
    x = (0.05 * test_signal(n, rate, 9)).astype(np.float32)
    n48, rate48 = 48000 * 60, 48000
    x48 = (0.05 * test_signal(n48, rate48, 10)).astype(np.float32)
    cap = 65536
    d = Daemon("--input", "none", "--ingest-max-payload", str(cap),
               model=os.path.join(MODELS, "allpass.safetensors"))
    try:
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        with Pusher(d.ingest, "big50", connect_timeout=10, timeout=60) as p:
            p.push(x, rate)
            p.finish()
            y = p.collect()
        with Pusher(d.ingest, "big48k", connect_timeout=10, timeout=60) as p48:
            p48.push(x48, rate48, end=True)
            y48 = p48.collect()
        pushed = None
        if SSM_PUSH:
            src = os.path.join(TMP, "push60s48k.wav")
            write_wav(src, x48, rate48)
            out = os.path.join(TMP, "push60s48k-out.wav")
            r = subprocess.run([SSM_PUSH, "-e", d.ingest, "-s", "cli48k", "--chunk", "2097152", "-v", "-o", out,
                                src], capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, f"ssm-push failed: {r.stderr.strip()}")
            pushed = (len(read_wav(out)[1]), r.stderr.strip())
    finally:
        d.stop()
    advertised = st.get("limits", {}).get("ingest_max_payload_bytes")
    err = float(np.max(np.abs(y[:, 0] - x))) if len(y) == n else float("inf")
    print(f"daemon with a {cap}-byte ingest cap: status advertises {advertised}, the meta reply "
          f"{p.max_message_bytes}; python push of {n} samples ({n * 4 / 2**20:.1f} MiB) in one call: "
          f"{len(y)} came back (all-pass model: max |out - in| {err:.3g}), sent as {p.seq} messages; "
          f"60 s at 48 kHz: {len(y48)} of {n48} back in {p48.seq} messages")
    check(advertised == cap, f"status advertises {advertised}, not the configured {cap}")
    check(p.max_message_bytes == cap and p48.max_message_bytes == cap,
          f"the Pusher did not learn the cap: {p.max_message_bytes}")
    check(len(y) == n, f"{len(y)} of {n} samples came back")
    check(p.seq >= n * 4 // cap, "the push was not split to the cap")
    check(err < 1e-5, "the samples came back changed or out of order")
    check(len(y48) == n48, f"60 s at 48 kHz: {len(y48)} of {n48} samples came back")
    check(np.all(np.isfinite(y48)), "60 s at 48 kHz: non-finite samples came back")
    if SSM_PUSH:
        print(f"ssm-push --chunk 2097152 of the 60 s file: {pushed[0]} samples written ({pushed[1]})")
        check(pushed[0] == n48, f"ssm-push: {pushed[0]} of {n48} samples came back")


def t_reply_backpressure():
    """A client that pushes 300 s of audio as fast as it can (64 KiB messages) without
    reading its results, then reads: the daemon stops reading its ingest while the results
    cannot leave (back-pressure) instead of dropping them, so every sample comes back with
    contiguous seq, status counts no dropped reply and no lost sample, and the daemon's
    memory stays bounded.  A second client that never reads is given up after push_idle_s
    held: loudly (the stream's error event, push_lost_samples > 0), and a third client's
    push is served afterwards.  Before, replies over the client's queues were dropped:
    samples missing, replies_dropped counting them."""
    rate, block = 16000, 16000
    n_blocks = 300
    x = (0.05 * test_signal(rate * n_blocks, rate, 12)).astype(np.float32)
    d = Daemon("--input", "none", "--push-idle-s", "4", model=os.path.join(MODELS, "allpass.safetensors"))
    ctx = d.ctx
    try:
        cl = ctx.socket(zmq.DEALER)
        cl.setsockopt(zmq.LINGER, 0)
        cl.setsockopt(zmq.SNDHWM, 4)       # our own queue: small, so the daemon's pace shows
        cl.setsockopt(zmq.RCVHWM, 16)      # and results pile up on the daemon's side
        cl.setsockopt(zmq.RCVBUF, 65536)
        cl.connect(d.ingest)
        topic = b"bp/audio/"

        def msg(i):
            h = P.Header(kind=1, dtype=1, sample_rate_hz=rate, rows=block, cols=1, seq=i,
                         first_sample=i * block, flags=P.FLAG_END_OF_STREAM if i == n_blocks - 1 else 0)
            return [topic, P.encode_header(h), x[i * block:(i + 1) * block].tobytes()]

        # phase 1: push without reading, as long as the daemon takes it (1.5 s without progress)
        sent, last_progress = 0, time.monotonic()
        rss0 = rss_kb(d.proc.pid)
        while sent < n_blocks and time.monotonic() - last_progress < 1.5:
            try:
                cl.send_multipart(msg(sent), flags=zmq.DONTWAIT)
                sent += 1
                last_progress = time.monotonic()
            except zmq.Again:
                time.sleep(0.01)
        rss1 = rss_kb(d.proc.pid)
        held_at = sent
        # phase 2: read the results, pushing the rest
        out, seqs, ended = [], [], False
        deadline = time.monotonic() + 120
        while not ended and time.monotonic() < deadline:
            if sent < n_blocks:
                try:
                    cl.send_multipart(msg(sent), flags=zmq.DONTWAIT)
                    sent += 1
                except zmq.Again:
                    pass
            if cl.poll(10):
                t, hb, payload = cl.recv_multipart()
                h = P.decode_header(hb, len(payload))
                if t != topic:
                    continue
                out.append(np.frombuffer(payload, "<f4"))
                seqs.append(h.seq)
                ended = bool(h.flags & P.FLAG_END_OF_STREAM)
        cl.close()
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        y = np.concatenate(out) if out else np.zeros(0, np.float32)
        c = st["counters"]
        print(f"reply back-pressure: {held_at} of {n_blocks} one-second messages taken before the daemon "
              f"stopped reading (the results waiting for the client); then {len(y)} of {len(x)} samples "
              f"came back, seq contiguous: {seqs == list(range(len(seqs)))}; counters: replies_dropped "
              f"{c['replies_dropped']}, reply_stalls {c.get('reply_stalls')}, push_lost_samples "
              f"{c.get('push_lost_samples')}; daemon RSS {rss0} -> {rss1} kB while held")
        check(len(y) == len(x), f"{len(y)} of {len(x)} samples came back")
        check(seqs == list(range(len(seqs))), "reply seq has gaps")
        check(float(np.max(np.abs(y - x))) < 1e-5, "the results differ from the input (all-pass model)")
        check(c["replies_dropped"] == 0 and c.get("push_lost_samples") == 0, f"counters {c}")
        check(c.get("reply_stalls", 0) > 0, "the daemon never held the stream: the test did not stall it")
        check(held_at < n_blocks, "every message was taken while the client read nothing")
        check(rss1 - rss0 < 64 * 1024, f"daemon memory grew {rss0} -> {rss1} kB")

        # a client that never reads: given up after push_idle_s held, loudly
        sub_ev = ctx.socket(zmq.SUB)
        sub_ev.setsockopt(zmq.SUBSCRIBE, b"stuck/event/")
        sub_ev.connect(d.pub)
        stuck = ctx.socket(zmq.DEALER)
        stuck.setsockopt(zmq.LINGER, 0)
        stuck.setsockopt(zmq.SNDHWM, 4)
        stuck.setsockopt(zmq.RCVHWM, 16)
        stuck.setsockopt(zmq.RCVBUF, 65536)
        stuck.connect(d.ingest)
        time.sleep(0.3)
        topic = b"stuck/audio/"
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 8.0 and i < n_blocks:
            try:
                stuck.send_multipart(msg(i), flags=zmq.DONTWAIT)
                i += 1
            except zmq.Again:
                time.sleep(0.05)
        events = []
        while sub_ev.poll(200):
            events.append(json.loads(sub_ev.recv_multipart()[2]))
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        y3 = push_stream(d.ingest, "after", x[:32000], rate)
        stuck.close()
        sub_ev.close()
    finally:
        rc, _, err = d.stop()
    c = st["counters"]
    errors = [e for e in events if e.get("event") == "error"]
    print(f"stuck client: {i} messages taken; events {[e.get('event') for e in events]}; push_lost_samples "
          f"{c.get('push_lost_samples')}; log: {[l for l in err.splitlines() if 'stuck' in l][:1]}; a push "
          f"afterwards got {len(y3)} of 32000 back")
    check(errors and "did not read" in errors[0].get("reason", ""), f"no error event for the stuck client: {events}")
    check(c.get("push_lost_samples", 0) > 0, "the stuck client's samples were not counted as lost")
    check(any("stuck" in l and "did not read" in l for l in err.splitlines()), "no log line for the stuck client")
    check(len(y3) == 32000, "the daemon did not serve a push after giving up the stuck client")


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def t_huge_subscription():
    """A subscriber announcing a 1 GiB subscription message and sending 300 MiB of it (raw
    ZMTP, tests/daemon/zmtp_oversize.py) is dropped, not buffered: the daemon's resident memory
    grows by less than 16 MiB (it grew by 300 MB before) and it still serves pushes."""
    d = Daemon("--input", "none")
    try:
        time.sleep(0.3)
        before = rss_kb(d.proc.pid)
        attacker = subprocess.Popen([sys.executable, os.path.join(HERE, "zmtp_oversize.py"), "127.0.0.1",
                                     d.pub.rsplit(":", 1)[1], str(1 << 30), str(300 << 20), "0"],
                                    stdout=subprocess.PIPE, text=True)
        said = attacker.communicate(timeout=30)[0]
        after = rss_kb(d.proc.pid)
        print(said.strip())
        check("connection closed after" in said, "the daemon did not drop the oversized subscriber")
        y = push_stream(d.ingest, "still", test_signal(8000, 16000, 2), 16000)
        print(f"1 GiB subscription message: daemon RSS {before} -> {after} KiB; a push afterwards got "
              f"{len(y)} samples back")
        check(after - before < 16 * 1024, "the daemon buffered the oversized subscription")
        check(len(y) == 8000, "the daemon stopped serving after the oversized subscription")
    finally:
        d.stop()


def t_subscriber_gets_every_frame():
    n, rate = 48000, 16000
    x = test_signal(n, rate, 2)
    src = os.path.join(TMP, "sub.wav")
    write_wav(src, x, rate)
    d = Daemon(src, "--serve", "yes", "--wait-subscribers", "1")
    sub = d.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.setsockopt(zmq.SUBSCRIBE, b"sub.wav/")
    sub.connect(d.pub)
    got = {}
    meta = None
    audio = []
    try:
        while True:
            t, hb, payload = sub.recv_multipart()
            h = P.decode_header(hb, len(payload))
            stream, kind = P.parse_topic(t)
            got.setdefault(kind, []).append(h.seq)
            if kind == 7:
                meta = json.loads(payload)
            if kind == 1:
                audio.append(np.frombuffer(payload, "<f4"))
            if kind == 8 and json.loads(payload).get("event") == "end":
                break
    except zmq.Again:
        raise AssertionError("subscriber timed out")
    rc, _, err = d.stop()
    frames = -(-n // 256)  # frames until the last input sample, plus the flush
    for kind in (2, 3):
        seqs = got.get(kind, [])
        check(seqs == list(range(len(seqs))), f"kind {kind}: seq not contiguous")
        check(len(seqs) >= frames, f"kind {kind}: {len(seqs)} frames < {frames}")
    check(meta and meta["stream"] == "sub.wav" and meta["hop_samples"] == 256, f"meta {meta}")
    y = np.concatenate(audio)
    check(len(y) == n, f"published audio {len(y)} samples, expected {n}")
    print(f"subscriber: meta ok, {len(got[2])} feature and {len(got[3])} vad messages with contiguous seq, "
          f"{len(y)} audio samples = input length")


def subscribe_file_job(model, n, rate, seed):
    """Runs a file job with model, subscribed; returns {kind: [(seq, first_sample, payload)]} and the
    job's summary line (stderr)."""
    x = test_signal(n, rate, seed)
    src = os.path.join(TMP, "la.wav")
    write_wav(src, x, rate)
    d = Daemon(src, "--serve", "yes", "--wait-subscribers", "1", "--log-level", "info", model=model)
    sub = d.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.setsockopt(zmq.SUBSCRIBE, b"la.wav/")
    sub.connect(d.pub)
    got = {}
    try:
        while True:
            t, hb, payload = sub.recv_multipart()
            h = P.decode_header(hb, len(payload))
            _, kind = P.parse_topic(t)
            got.setdefault(kind, []).append((h.seq, h.first_sample, payload))
            if kind == 8 and json.loads(payload).get("event") == "end":
                break
    except zmq.Again:
        raise AssertionError("subscriber timed out")
    sub.close()
    rc, _, err = d.stop()
    check(rc == 0, f"exit {rc}: {err}")
    return got, err


def t_lookahead_vad_frames():
    """A model with frontend.lookahead_frames 2 (the random model's weights): its vad rows describe the
    frame two steps back, so they start at seq 0 / first_sample 0 two steps late, one per frame of
    the input, and equal the rows the same weights without lookahead give two steps later; the meta
    reports the latency with the lookahead."""
    n, rate, hop = 16000, 16000, 256
    la, err_la = subscribe_file_job(os.path.join(MODELS, "random_la2.safetensors"), n, rate, 5)
    l0, _ = subscribe_file_job(MODEL, n, rate, 5)
    feats, vad, vad0 = la[2], la[3], l0[3]
    check([f for _, f, _ in feats] == [k * hop for k in range(len(feats))], "features first_sample")
    check([q for q, _, _ in vad] == list(range(len(vad))), "vad seq not contiguous")
    check([f for _, f, _ in vad] == [k * hop for k in range(len(vad))], "vad first_sample is not its frame's")
    check(len(vad) == len(feats) - 2 and len(vad) == len(vad0), f"{len(vad)} vad rows, {len(feats)} steps, "
          f"{len(vad0)} without lookahead")
    v = np.array([np.frombuffer(p, "<f4")[0] for _, _, p in vad])
    v0 = np.array([np.frombuffer(p, "<f4")[0] for _, _, p in vad0])
    meta = json.loads(la[7][0][2])
    check(meta["latency_samples"] == 512 - hop + 2 * hop, f"latency_samples {meta['latency_samples']}")
    # the last two rows of the run without lookahead have no counterpart (their steps are padding)
    check(np.array_equal(v[:-2], v0[2:]) and not np.array_equal(v[:-2], v0[:-2]),
          "the vad rows are not the same weights' rows two steps later")
    check("mean voice activity" in err_la, err_la)
    print(f"lookahead 2: {len(feats)} steps, {len(vad)} vad rows from first_sample 0 (= without lookahead), "
          f"row k = row k + 2 without lookahead, latency {meta['latency_samples']} samples")


def backlog_bound_msgs(pub_hwm, pub_sndbuf, rcvhwm, rcvbuf, msg_bytes):
    """The backlog bound of docs/protocol.md ("Slow subscribers"): the most messages that
    can wait between the daemon and a reader: pub_hwm + rcvhwm in ZeroMQ's queues, plus
    what fits in both kernel buffers (Linux reserves twice the size set) and ZeroMQ's two
    8 KiB batching buffers at msg_bytes a message.  A reader taking 1/r s a message
    reads data at most backlog / r seconds old."""
    return pub_hwm + rcvhwm + (2 * pub_sndbuf + 2 * rcvbuf + 2 * 8192) / msg_bytes


def t_slow_subscriber_age():
    """A real-time stream (--realtime file, --pub-hwm 5) and two deliberately slow
    subscribers to its audio topic, reading 20 of the 62.5 messages a second: ssm-sub
    (the C client, its stdout drained slowly through a 4 KiB pipe) and the Python
    Subscriber, both with their default receive buffers.  Each must see seq gaps
    (drops) and the age of what it reads (receive time against the stream time of
    first_sample, relative to the first message) must stay under the documented bound:
    the backlog bound (messages, from the configuration) over the rate it reads at.  Before ZMQ_SNDBUF/ZMQ_RCVBUF were set the kernel
    buffers absorbed the backlog: no gaps, and the age grew by ~0.7 s every second."""
    import fcntl
    from ssmd import Subscriber
    from ssmd.subscriber import RCVBUF_BYTES, RCVHWM
    assert SSM_SUB, "needs --ssm-sub PATH"
    seconds, rate, hop, model_rate, read_per_s, pub_hwm = 16, 48000, 256, 16000, 20.0, 5
    src = os.path.join(TMP, "slow.wav")
    write_wav(src, test_signal(seconds * rate, rate, 11), rate)
    d = Daemon(src, "--serve", "yes", "--realtime", "--wait-subscribers", "2", "--pub-hwm",
               str(pub_hwm), "--resample-quality", "fast")
    msgs_per_s = model_rate / hop
    msg_bytes = hop * rate // model_rate * 4 + P.HEADER_BYTES  # payload + header, topic not counted
    pub_sndbuf = 65536  # the daemon's default (ssmd --help)
    backlog = backlog_bound_msgs(pub_hwm, pub_sndbuf, RCVHWM, RCVBUF_BYTES, msg_bytes)
    results, procs = {}, {}

    def ages(samples):
        """samples: [(receive time, seq, first_sample)] -> (max age s, gaps, messages,
        messages read a second)."""
        t0, _, f0 = samples[0]
        worst = max((t - t0) - (f - f0) / rate for t, _, f in samples)
        gaps = sum(1 for a, b in zip(samples, samples[1:]) if b[1] != a[1] + 1)
        return worst, gaps, len(samples), (len(samples) - 1) / (samples[-1][0] - t0)

    def c_client():
        got = results["C ssm-sub"] = []
        proc = procs["C ssm-sub"] = subprocess.Popen(
            [SSM_SUB, "-e", d.pub, "-j", "--until-end", "slow.wav/audio/"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        fcntl.fcntl(proc.stdout.fileno(), 1031, 4096)  # F_SETPIPE_SZ: no big pipe backlog
        for line in proc.stdout:
            j = json.loads(line)
            got.append((time.monotonic(), j["seq"], j["first_sample"]))
            time.sleep(1.0 / read_per_s)

    def py_client():
        got = results["Python Subscriber"] = []
        with Subscriber(d.pub, ["slow.wav/audio/"], timeout=5) as sub:
            for _, h, _ in sub:
                got.append((time.monotonic(), h.seq, h.first_sample))
                if h.flags & P.FLAG_END_OF_STREAM:
                    break
                time.sleep(1.0 / read_per_s)

    # a reader whose backlog is not bounded is still reading long after the stream
    # ended: what it read until the deadline is judged
    threads = [threading.Thread(target=f, daemon=True) for f in (c_client, py_client)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + seconds + 12  # a reader that lost the end-of-stream message stops here
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        d.stop()
        for proc in procs.values():
            proc.kill()
    print(f"slow subscribers of a real-time stream ({msgs_per_s:.1f} audio messages/s of {msg_bytes} bytes, "
          f"reading {read_per_s:.0f}/s, pub_hwm {pub_hwm}, pub_sndbuf {pub_sndbuf}, rcvbuf {RCVBUF_BYTES}, "
          f"rcvhwm {RCVHWM}): documented backlog bound {backlog:.0f} messages")
    failures = []
    for name in ("C ssm-sub", "Python Subscriber"):
        if len(results.get(name, [])) < 2:
            failures.append(f"{name}: received nothing")
            continue
        worst, gaps, n, read_rate = ages(list(results[name]))
        bound = backlog / read_rate
        generous = 1.5 * bound + 0.5
        print(f"  {name}: {n} messages read at {read_rate:.1f}/s, {gaps} seq gaps, oldest message "
              f"{worst:.2f} s old; documented bound {bound:.2f} s (checked against {generous:.2f} s)")
        if gaps == 0:
            failures.append(f"{name}: no seq gaps: the backlog was buffered instead of dropped")
        if worst >= generous:
            failures.append(f"{name}: messages {worst:.2f} s old, over the bound {generous:.2f} s")
    check(not failures, "; ".join(failures))


def t_push_and_five_clients():
    d = Daemon("--input", "none")
    try:
        x = test_signal(30000, 16000, 3)
        y = push_stream(d.ingest, "one", x, 16000)
        check(len(y) == len(x), f"pushed {len(x)}, got back {len(y)}")
        # the same processing offline gives the same result
        src = os.path.join(TMP, "push.wav")
        write_wav(src, x, 16000)
        ref = os.path.join(TMP, "push.raw")
        subprocess.run([STREAM_RUN, MODEL, src, ref], check=True)
        diff = int(np.sum(np.fromfile(ref, "<f4").view("<u4") != y.view("<u4")))
        print(f"push: {len(x)} samples back, {diff} differ from in-process (bit-exact required)")
        check(diff == 0, "pushed result differs")
        # 20 s in one message and 30 s in 1000-sample messages sent as fast as possible:
        # far more than the daemon's 4 s of pending input, nothing may be lost
        big = test_signal(16000 * 20, 16000, 4)
        y_big = push_stream(d.ingest, "big", big, 16000, chunk=len(big))
        fast = test_signal(16000 * 30, 16000, 5)
        y_fast = push_stream(d.ingest, "fast", fast, 16000, chunk=1000)
        check(len(y_big) == len(big) and len(y_fast) == len(fast),
              f"fast pushes lost samples: {len(y_big)}/{len(big)}, {len(y_fast)}/{len(fast)}")
        print(f"push faster than real time: 20 s in one message and 30 s in 1000-sample messages "
              f"came back complete ({len(y_big)}, {len(y_fast)} samples)")
        results = {}

        def worker(k):
            xk = test_signal(20000 + 977 * k, 48000 if k % 2 else 16000, 10 + k)
            results[k] = (len(xk), push_stream(d.ingest, f"client{k}", xk, 48000 if k % 2 else 16000))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(len(results) == 5, "a client failed")
        for k, (n, y) in sorted(results.items()):
            check(len(y) == n, f"client{k}: {len(y)} != {n}")
        st, _ = d.ctl({"version": 1, "cmd": "status", "id": 7})
        check(st["ok"] and st["id"] == 7 and st["counters"]["frames"] > 0, st)
        cp = st.get("compute", {})
        check(cp.get("backend") == "cpu" and cp.get("weights") == "f32" and cp.get("threads") == 2
              and cp.get("max_streams", 0) >= 5 and cp.get("kernels") in ("avx512", "avx2", "scalar"),
              f"status compute: {cp}")
        print(f"five clients at once: all results complete ({[r[0] for r in results.values()]} samples); "
              f"status frames={st['counters']['frames']}, compute {cp}")
    finally:
        rc, el, err = d.stop()
        check(rc == 0, f"exit {rc}: {err}")


def t_status_during_push_burst():
    """Twelve clients each push 250 s of audio in two messages as fast as they can while 50
    `status` requests are timed: the daemon bounds its work per loop iteration (reading pushed
    messages, stepping the model), so control is answered between batches. Before, one read of
    the ingest socket ran the model over everything pushed (a message larger than the pending
    input was stepped through inside the read) and `status` waited seconds. The bound below is
    generous (1 s: the machine may be shared); every pushed sample must still come back, and one
    stream bit-exact with the in-process run."""
    d = Daemon("--input", "none", "--max-streams", "16")
    n_clients, n, msg = 12, 4000000, 2000000  # 8 MB a message: under the 8 MiB ingest cap
    results, lat = {}, []
    try:
        xs = [test_signal(n, 16000, 40 + k) for k in range(n_clients)]

        def pushers():  # in a child process: its threads do not hold this one's GIL
            def worker(k):
                try:
                    np.save(os.path.join(TMP, f"burst{k}.npy"),
                            push_stream(d.ingest, f"burst{k}", xs[k], 16000, chunk=msg, timeout=300))
                except AssertionError as e:
                    print(f"burst{k}: {e}")
            threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_clients)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

        for k in range(n_clients):
            if os.path.exists(os.path.join(TMP, f"burst{k}.npy")):
                os.remove(os.path.join(TMP, f"burst{k}.npy"))
        child = multiprocessing.get_context("fork").Process(target=pushers)
        child.start()
        time.sleep(0.3)
        busy = child.is_alive()
        # a context of its own: the clients' context has one I/O thread, busy with their sends
        ctx = zmq.Context()
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 20000)
        req.connect(d.control)
        for i in range(50):
            t0 = time.perf_counter()
            req.send(json.dumps({"version": 1, "cmd": "status", "id": i}).encode())
            st = json.loads(req.recv())
            lat.append(time.perf_counter() - t0)
            check(st["ok"] and st["id"] == i, st)
            time.sleep(0.02)
        req.close()
        ctx.term()
        child.join()
    finally:
        rc, _, err = d.stop()
    lat_ms = sorted(1e3 * v for v in lat)
    print(f"status during a push burst ({n_clients} x {n} samples in {n // msg} messages each; "
          f"clients pushing at the first request: {busy}): max {lat_ms[-1]:.1f} ms, "
          f"median {lat_ms[len(lat_ms) // 2]:.1f} ms; in order: {[round(1e3 * v) for v in lat]}")
    check(rc == 0, f"exit {rc}: {err}")
    for k in range(n_clients):
        path = os.path.join(TMP, f"burst{k}.npy")
        y = results[k] = np.load(path) if os.path.exists(path) else None
        check(isinstance(y, np.ndarray) and len(y) == n,
              f"burst{k}: {y if not isinstance(y, np.ndarray) else len(y)} samples back of {n}")
    src = os.path.join(TMP, "burst0.wav")
    write_wav(src, xs[0], 16000)
    ref = os.path.join(TMP, "burst0.raw")
    subprocess.run([STREAM_RUN, MODEL, src, ref], check=True)
    diff = int(np.sum(np.fromfile(ref, "<f4").view("<u4") != results[0].view("<u4")))
    print(f"burst0: {diff} samples differ from the in-process run (bit-exact required)")
    check(diff == 0, "a stream pushed in one large message differs from the in-process run")
    check(busy > 0, "the clients finished before the first request: the burst did not overlap them")
    # before the bound on the work per iteration: 4.2-8.8 s on a 2-core machine shared with a
    # training job; after it: 0.26-0.58 s there (the daemon's iterations stay under ~70 ms; the
    # rest is the clients, the I/O threads and the other job competing for the cores); 1.76 s once
    # with a soak run and the CI's sanitizer builds on the same 2 cores: the bound sits between
    # that and the unbounded loop's seconds
    check(lat_ms[-1] < 3000, f"status took up to {lat_ms[-1]:.0f} ms while clients pushed (bound 3000 ms)")


DEFAULT_MODEL = os.path.join(HERE, "..", "..", "models", "default.safetensors")


def t_live_first_under_bulk():
    """Live streams first (docs/reliability.md, "Live streams first"). One client pushes 16 kHz
    audio through the default model in 100 ms messages at real-time pace (live) for 12 s; after
    QUIET_S seconds alone, eight clients start pushing as fast as they can (the Python Pusher, 4 s
    messages: bulk), which keeps the daemon busy for the rest of the run. The live stream's lag
    is the audio it has pushed and not yet received back, taken when each result arrives: a
    measure in audio, not a wall-clock deadline. Alone, it is the pipeline's delay (the
    resamplers' look-ahead, the framer) plus up to one message. Under the bulk load the rule
    allows live_backlog_ms (500 ms) of unprocessed input more; the test allows LAG_MARGIN_S
    beyond that for a loaded machine (a result in flight, the client's and the daemon's threads
    waiting for a core). Before the rule the live stream waited behind the bulk ones: the ingest
    socket was not read while any pushed stream held more than 2 s (half its 4 s) of input, and
    then one message a turn, fair-queued among the nine clients, so the live client's 100 ms got
    the turn a bulk client used for 4 s; its lag grew through the run (2.1 s median, 3.8 s at
    8 s on the development machine). Nothing pushed may be lost, and the live stream and a bulk
    one equal the daemon's file job bit for bit."""
    from ssmd import Pusher
    rate, chunk, RT_S, QUIET_S, n_bulk, LAG_MARGIN_S = 16000, 1600, 12.0, 2.0, 8, 1.0
    bulk_msg = 4 * rate
    d = Daemon("--input", "none", "--max-streams", "16", model=DEFAULT_MODEL)
    stop = multiprocessing.get_context("fork").Event()
    xb = [test_signal(3 * bulk_msg, rate, 60 + k) for k in range(n_bulk)]  # pushed over and over

    def bulk():  # a child process: its threads do not hold this one's GIL
        def worker(k):
            try:
                with Pusher(d.ingest, f"bulk{k}", connect_timeout=10, timeout=120) as p:
                    o = 0
                    while not stop.is_set():
                        p.push(xb[k][o % len(xb[k]):o % len(xb[k]) + bulk_msg], rate)
                        o += bulk_msg
                    p.finish()
                    np.save(os.path.join(TMP, f"bulk{k}.npy"), p.collect()[:, 0])
                    np.save(os.path.join(TMP, f"bulk{k}-in.npy"), np.resize(xb[k], o))
            except Exception as e:  # noqa: BLE001 - reported by the missing file
                print(f"bulk{k}: {type(e).__name__}: {e}")
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_bulk)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    for k in range(n_bulk):
        for f in (f"bulk{k}.npy", f"bulk{k}-in.npy"):
            if os.path.exists(os.path.join(TMP, f)):
                os.remove(os.path.join(TMP, f))
    x = test_signal(int(rate * RT_S), rate, 59)
    quiet, loaded, out, child, st0 = [], [], [], None, {}
    try:
        sock = d.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(d.ingest)
        topic = P.format_topic("live", "audio").encode()
        pushed = received = 0
        t0 = time.time()
        ended = False
        while not ended and time.time() < t0 + RT_S + 60:
            now = time.time()
            if child is None and now >= t0 + QUIET_S:
                child = multiprocessing.get_context("fork").Process(target=bulk)
                child.start()
                st0, _ = d.ctl({"version": 1, "cmd": "status"})
            if pushed < len(x) and now >= t0 + pushed / rate:
                part = x[pushed:pushed + chunk]
                last = pushed + len(part) >= len(x)
                h = P.Header(kind=1, dtype=1, sample_rate_hz=rate, rows=len(part), cols=1, seq=pushed // chunk,
                             first_sample=pushed, flags=P.FLAG_END_OF_STREAM if last else 0)
                sock.send_multipart([topic, P.encode_header(h), part.astype("<f4").tobytes()])
                pushed += len(part)
            due = t0 + pushed / rate if pushed < len(x) else time.time() + 0.5
            if not sock.poll(max(1, int(1000 * (due - time.time())))):
                continue
            t, hb, payload = sock.recv_multipart()
            h = P.decode_header(hb, len(payload))
            if t == P.format_topic("live", "meta").encode():
                continue
            check(t == topic, f"unexpected reply {t}: {payload[:200]}")
            out.append(np.frombuffer(payload, "<f4"))
            received += h.rows
            el = time.time() - t0
            if 0.5 <= el < QUIET_S:  # alone (after its first results)
                quiet.append((pushed - received) / rate)
            elif el >= QUIET_S + 2.0 and pushed < len(x):  # the bulk streams are running
                loaded.append((pushed - received) / rate)
            ended = bool(h.flags & P.FLAG_END_OF_STREAM)
        sock.close()
        st1, _ = d.ctl({"version": 1, "cmd": "status"})
    finally:
        stop.set()
        if child is not None:
            child.join(180)
        rc, _, err = d.stop(timeout=30)
    y = np.concatenate(out) if out else np.zeros(0, np.float32)
    quiet_max = max(quiet or [np.inf])
    bound = quiet_max + 0.5 + LAG_MARGIN_S
    lag = np.array(loaded or [np.inf])
    c0, c1 = st0.get("counters", {}), st1.get("counters", {})
    print(f"live stream (100 ms messages at real-time pace) alone: lag up to {quiet_max:.3f} s; beside "
          f"{n_bulk} bulk pushes through the default model: median {np.median(lag):.3f} s, p99 "
          f"{np.percentile(lag, 99):.3f} s, max {lag.max():.3f} s (bound {bound:.2f} s = alone + 0.5 s "
          f"live_backlog_ms + {LAG_MARGIN_S} s); {len(y)} of {len(x)} samples back; meanwhile the daemon "
          f"stepped {c1.get('frames', 0) - c0.get('frames', 0)} frames (live "
          f"{c1.get('live_frames', 0) - c0.get('live_frames', 0)}, bulk "
          f"{c1.get('bulk_frames', 0) - c0.get('bulk_frames', 0)}), the ingest socket was left unread "
          f"{c1.get('ingest_blocked_ms', 0) - c0.get('ingest_blocked_ms', 0)} ms")
    check(rc == 0, f"exit {rc}: {err}")
    check(len(y) == len(x), f"live: {len(y)} of {len(x)} samples came back")
    check(lag.max() <= bound, f"the live stream fell {lag.max():.2f} s of audio behind (bound {bound:.2f} s)")
    diffs = []
    for k, (name, yk, xk) in enumerate([("live", y, x)] + [
            (f"bulk{k}", *(np.load(os.path.join(TMP, f"{f}.npy")) if os.path.exists(os.path.join(TMP, f"{f}.npy"))
                           else None for f in (f"bulk{k}", f"bulk{k}-in"))) for k in range(n_bulk)]):
        check(yk is not None and xk is not None, f"{name}: the pusher failed (its output above)")
        check(len(yk) == len(xk) and len(xk) > 0, f"{name}: {len(yk)} of {len(xk)} samples came back")
        if k > 1:
            continue  # the live stream and one bulk stream are compared with the file job
        # the reference: the same audio as a file job of the daemon (file job = pushed stream;
        # stream_run leaves out the attenuation limit, which bites with this model)
        src, ref = os.path.join(TMP, f"{name}.wav"), os.path.join(TMP, f"{name}-ref.wav")
        write_wav(src, xk, rate)
        r = subprocess.run([SSMD, "--model", DEFAULT_MODEL, src, "-o", ref, *FLOAT], capture_output=True)
        check(r.returncode == 0, r.stderr.decode())
        y_ref = read_wav(ref)[1]
        diffs.append(int(np.sum(y_ref.view("<u4") != yk.view("<u4"))) if len(y_ref) == len(yk) else -1)
    print(f"bulk pushes: every sample back; live and bulk0 differ from the file job in {diffs} samples")
    check(diffs == [0, 0], f"samples differ from the file job: {diffs}")


def t_malformed_messages():
    d = Daemon("--input", "none")
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVTIMEO, 3000)
        dealer.connect(d.ingest)
        good = P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=4, cols=1))
        cases = [
            ("BAD_FRAMES", [b"x/audio/", good]),
            ("BAD_TOPIC", [b"no-slash", good, b"\0" * 16]),
            ("BAD_MAGIC", [b"m/audio/", b"XXXX" + good[4:], b"\0" * 16]),
            ("SHORT", [b"m/audio/", good[:20], b"\0" * 16]),
            ("BAD_SIZE", [b"m/audio/", good, b"\0" * 15]),
            ("BAD_SIZE", [b"m/audio/", P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000,
                                                                 rows=0xFFFFFFFF, cols=0xFFFFFFFF)), b""]),
            ("BAD_KIND", [b"m/features/", good, b"\0" * 16]),
            ("BAD_TOPIC", [b"_ssmd/audio/", good, b"\0" * 16]),
            ("BAD_SIZE", [b"slow/audio/", P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=1,
                                                                    rows=4, cols=1)), b"\0" * 16]),
        ]
        echoed = {1: "topic 'no-slash'", 6: "topic 'm/features/'", 7: "topic '_ssmd/audio/'"}  # the bad value is named
        for i, (code, frames) in enumerate(cases):
            dealer.send_multipart(frames)
            t, hb, payload = dealer.recv_multipart()
            ev = json.loads(payload)
            check(t == b"_ssmd/event/" and ev["error"] == code, f"expected {code}, got {ev}")
            check(echoed.get(i, "") in ev["message"], f"expected {echoed.get(i)!r} in {ev['message']!r}")
        bad_ctl = [
            (b"not json", "BAD_JSON"),
            (json.dumps([1, 2]).encode(), "BAD_JSON"),
            (json.dumps({"cmd": "status"}).encode(), "BAD_VERSION"),
            (json.dumps({"version": 1}).encode(), "MISSING_FIELD"),
            (json.dumps({"version": 1, "cmd": "frobnicate"}).encode(), "UNKNOWN_COMMAND"),
            (json.dumps({"version": 1, "cmd": "reset", "stream": "nope"}).encode(), "NO_SUCH_STREAM"),
            (b'{"version": 1, "cmd": "status", "cmd": "stop"}', "BAD_JSON"),
            (json.dumps({"version": 1, "cmd": "reset", "stream": "\u20ac" * 100}).encode(), "NO_SUCH_STREAM"),
            (json.dumps({"version": 1, "cmd": "\u20ac" * 80}).encode(), "UNKNOWN_COMMAND"),
            (json.dumps({"version": 1, "cmd": 5}).encode(), "MISSING_FIELD"),
            (json.dumps({"version": 1, "cmd": "reset"}).encode(), "MISSING_FIELD"),
            (json.dumps({"version": 1, "cmd": "snapshot", "stream": [42]}).encode(), "MISSING_FIELD"),
        ]
        echoed_ctl = {3: "got nothing", 9: "got 5", 10: "reset needs \"stream\"", 11: "got [42]"}
        for i, (body, code) in enumerate(bad_ctl):
            rep, _ = d.ctl(body)
            check(rep["ok"] is False and rep["error"] == code, f"expected {code}, got {rep}")
            check(echoed_ctl.get(i, "") in rep["message"], f"expected {echoed_ctl.get(i)!r} in {rep['message']!r}")
            if i in echoed_ctl:
                print(f"{code}: {rep['message']}")
        # a stray frame after the JSON: refused for every command but restore (stop used to stop)
        for cmd in ("status", "reset", "stop"):
            rep, _ = d.ctl({"version": 1, "cmd": cmd, "stream": "x"}, extra=b"junk")
            print(f"{cmd} + a stray frame: {rep.get('error')}: {rep.get('message')}")
            check(rep["ok"] is False and rep["error"] == "BAD_JSON" and "takes one JSON frame, got 2" in rep["message"],
                  f"{cmd} with a stray frame: {rep}")
        bad_ctl += [None] * 3  # counted below
        # still serving: a valid push works, counters saw the bad ones
        y = push_stream(d.ingest, "after", test_signal(5000, 16000), 16000)
        check(len(y) == 5000, "push after malformed input failed")
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        c = st["counters"]
        check(c["bad_messages"] == len(cases) and c["bad_requests"] == len(bad_ctl), c)
        print(f"malformed: {len(cases)} ingest and {len(bad_ctl)} control errors answered with their codes, "
              f"counted ({c['bad_messages']}, {c['bad_requests']}); daemon kept serving")
    finally:
        rc, el, err = d.stop()
        check(rc == 0, f"exit {rc}: {err}")



def t_channels_changed():
    """A later message of a pushed stream with another channel count than its first is refused
    (CHANNELS_CHANGED, naming both counts), counted, and changes nothing; the stream goes on with
    its channel count.  A stereo message used to be downmixed into a mono stream silently."""
    d = Daemon("--input", "none")
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.connect(d.ingest)

        def push(seq, first, cols, rows=480):
            h = P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=rows, cols=cols, seq=seq,
                                         first_sample=first))
            x = np.tile(np.array([0.5, -0.5][:cols], np.float32), rows)
            dealer.send_multipart([b"cc/audio/", h, x.tobytes()])

        def error_reply(timeout_s=3.0):
            end = time.time() + timeout_s
            while time.time() < end:
                if dealer.poll(200):
                    t, _, payload = dealer.recv_multipart()
                    if t == b"_ssmd/event/":
                        return json.loads(payload)
            return None

        push(0, 0, 1)
        check(error_reply(1.0) is None, "the stream's first message was refused")
        push(1, 480, 2)
        ev = error_reply()
        print(f"stereo message to a mono stream: {ev}")
        check(ev is not None and ev["error"] == "CHANNELS_CHANGED" and "1 channels" in ev["message"]
              and "says 2" in ev["message"], f"expected CHANNELS_CHANGED, got {ev}")
        push(1, 480, 1)  # the same seq again, mono: accepted, the stream continues
        check(error_reply(1.0) is None, "the mono continuation was refused")
        # an end-of-stream without samples may say any channel count (ssm-push's says 1)
        h = P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=0, cols=2, seq=2,
                                     first_sample=960, flags=P.FLAG_END_OF_STREAM))
        dealer.send_multipart([b"cc/audio/", h, b""])
        check(error_reply(1.0) is None, "an end-of-stream of 0 rows and 2 channels was refused")
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        check(st["counters"]["bad_messages"] == 1, st["counters"])
        dealer.close(0)
    finally:
        rc, el, err = d.stop()
        check(rc == 0, f"exit {rc}: {err}")


def t_push_continuity():
    """A stream's pushed messages must follow each other (docs/protocol.md,
    "Ingest"): seq 0, 1, 2, ... and first_sample 0, then the previous
    first_sample + rows.  A gap (a message lost), a repeat, a first_sample
    that skips or overlaps samples, and a stream's first message that is not
    seq 0 / first_sample 0 are each refused with DISCONTINUITY naming the
    stream, what was expected and what came, and counted; nothing of them is
    processed.  Resending the expected message continues the stream, whose
    result equals the contiguous push of the same audio bit for bit.  Before,
    every one was accepted and its samples glued on."""
    d = Daemon("--input", "none")
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVTIMEO, 5000)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(d.ingest)
        x = test_signal(4000, 16000, 7)

        def send(name, seq, first, rows, eos=False):
            h = P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=rows, cols=1, seq=seq, first_sample=first,
                         flags=P.FLAG_END_OF_STREAM if eos else 0)
            part = x[first:first + rows] if first + rows <= len(x) else np.zeros(rows, np.float32)
            dealer.send_multipart([P.format_topic(name, "audio").encode(), P.encode_header(h),
                                   part.astype("<f4").tobytes()])

        replies = []

        def error_reply():
            """The next error reply; the stream's meta and results are kept in replies."""
            while True:
                t, hb, payload = dealer.recv_multipart()
                if t == b"_ssmd/event/":
                    return json.loads(payload)
                replies.append((t, P.decode_header(hb, len(payload)), payload))

        send("gap", 0, 0, 1000)
        send("gap", 1, 1000, 1000)
        cases = [  # (seq, first_sample, expected and got, named in the message)
            (3, 3000, ["'gap'", "seq 3", "first_sample 3000", "expected seq 2", "first_sample 2000",
                       "1 message(s) missing", "a gap of 1000 samples"]),
            (1, 1000, ["seq 1", "expected seq 2", "a message repeated or out of order", "an overlap of 1000"]),
            (2, 2500, ["seq 2", "first_sample 2500", "expected seq 2", "first_sample 2000", "a gap of 500"]),
            (2, 1500, ["first_sample 1500", "an overlap of 500 samples"]),
        ]
        for seq, first, words in cases:
            send("gap", seq, first, 1000)
            ev = error_reply()
            print(f"seq {seq}, first_sample {first}: {ev.get('error')}: {ev.get('message')}")
            check(ev.get("error") == "DISCONTINUITY" and ev.get("stream") == "gap"
                  and all(w in ev.get("message", "") for w in words),
                  f"seq {seq}, first_sample {first}: expected DISCONTINUITY naming {words}, got {ev}")
        # a stream's first message must start it
        send("late", 5, 5000, 100)
        ev = error_reply()
        print(f"a new stream at seq 5: {ev.get('error')}: {ev.get('message')}")
        check(ev.get("error") == "DISCONTINUITY" and "'late'" in ev.get("message", "")
              and "expected seq 0, first_sample 0" in ev.get("message", ""), ev)
        lst, _ = d.ctl({"version": 1, "cmd": "streams"})
        check([s["name"] for s in lst["streams"]] == ["gap"], f"a refused first message opened a stream: {lst}")
        # the expected messages continue the stream: nothing of the refused ones is in it
        send("gap", 2, 2000, 1000)
        send("gap", 3, 3000, 1000, eos=True)
        deadline = time.time() + 20
        while not (replies and replies[-1][0] == b"gap/audio/" and replies[-1][1].flags & P.FLAG_END_OF_STREAM):
            check(time.time() < deadline, "no end-of-stream back")
            try:
                t, hb, payload = dealer.recv_multipart()
            except zmq.Again:
                continue
            check(t != b"_ssmd/event/", f"error after the expected messages: {payload[:300]}")
            replies.append((t, P.decode_header(hb, len(payload)), payload))
        y = np.concatenate([np.frombuffer(p, "<f4") for t, h, p in replies if t == b"gap/audio/"])
        ref = push_stream(d.ingest, "whole", x, 16000, chunk=4000)
        print(f"after the expected messages: {len(y)} samples back, {int(np.sum(y != ref))} differ from the "
              f"contiguous push")
        check(len(y) == len(x) and np.array_equal(y, ref), "the resumed stream differs from the contiguous push")
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        c = st["counters"]
        check(c["push_discontinuities"] == 5 and c["bad_messages"] == 5, c)
    finally:
        rc, el, err = d.stop()
    warned = [line for line in err.splitlines() if "does not follow" in line]
    print(f"counted: push_discontinuities 5; log: {warned}")
    check(rc == 0, f"exit {rc}: {err}")
    check(len(warned) == 1, f"expected one warning for the one break: {warned}")


def t_status_while_loop_blocked():
    """status is answered by the control thread, whatever the loop thread is
    doing: here the loop is blocked (a SIGHUP reload reading a config file
    that is a FIFO nobody writes yet), so a streams request, which the loop
    answers, waits; status is answered meanwhile.  Before, both waited for
    the loop."""
    conf = os.path.join(TMP, "blocking.conf")
    with open(conf, "w") as f:
        f.write("vad_grace_ms = 200\n")
    d = Daemon("--input", "none", "-c", conf)
    try:
        d.ctl({"version": 1, "cmd": "status"})  # serving
        os.unlink(conf)
        os.mkfifo(conf)
        d.proc.send_signal(signal.SIGHUP)
        deadline, w = time.time() + 20, None
        while w is None:  # the loop has opened the FIFO: it now waits in read() for our text
            check(time.time() < deadline, "the daemon did not open its config file on SIGHUP")
            try:
                w = os.open(conf, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
        loop_req = d.ctx.socket(zmq.DEALER)
        loop_req.setsockopt(zmq.LINGER, 0)
        loop_req.connect(d.control)
        loop_req.send_multipart([b"", json.dumps({"version": 1, "cmd": "streams", "id": 1}).encode()])
        st, _ = d.ctl({"version": 1, "cmd": "status", "id": 2}, timeout=15000)
        check(st["ok"] and st["id"] == 2 and "counters" in st, st)
        waited = not loop_req.poll(500)
        print(f"loop blocked in the reload: status answered; streams answered meanwhile: {not waited}")
        check(waited, "streams was answered while the loop was blocked: the test did not block it")
        os.write(w, b"vad_grace_ms = 300\n")
        os.close(w)
        check(loop_req.poll(15000), "streams not answered after the reload went on")
        rep = json.loads(loop_req.recv_multipart()[1])
        check(rep["ok"] and rep["id"] == 1 and rep["streams"] == [], rep)
        loop_req.close()
    finally:
        rc, el, err = d.stop()
    check(rc == 0 and "reload: vad_grace_ms changed" in err, f"exit {rc}: {err}")


def t_oversize_message():
    """A pushed message just over the ingest cap (it still passes the socket's
    limit, cap + 4 KiB) and a header announcing more than the cap: BAD_SIZE
    whose message names the cap and the size; a payload that differs from its
    header names both lengths."""
    cap = 65536
    d = Daemon("--input", "none", "--ingest-max-payload", str(cap))
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVTIMEO, 3000)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(d.ingest)
        rows = cap // 4 + 1  # 65540 bytes of f32
        over = P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=rows, cols=1))
        cases = [("payload over the cap", [b"big/audio/", over, b"\0" * (rows * 4)], [str(cap), str(rows * 4)]),
                 ("header over the cap", [b"big/audio/", over, b"\0" * 16], [str(cap), str(rows * 4)]),
                 ("payload shorter than its header",
                  [b"big/audio/", P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=4, cols=1)),
                   b"\0" * 15], ["16", "15"])]
        for what, frames, numbers in cases:
            dealer.send_multipart(frames)
            t, hb, payload = dealer.recv_multipart()
            ev = json.loads(payload)
            msg = ev.get("message", "")
            print(f"{what}: {ev.get('error')}: {msg}")
            check(ev.get("error") == "BAD_SIZE" and all(n in msg for n in numbers),
                  f"{what}: expected BAD_SIZE naming {numbers}, got {ev}")
    finally:
        rc, el, err = d.stop()
        check(rc == 0, f"exit {rc}: {err}")


def t_ipc_sockets_removed():
    """ipc:// endpoints: the socket files the daemon bound are gone after a
    clean stop (SIGTERM and SIGINT); a file it did not bind stays."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = tempfile.mkdtemp(prefix="ipc", dir=TMP)
        paths = [os.path.join(d, f"{k}.sock") for k in ("pub", "ingest", "control")]
        other = os.path.join(d, "unrelated.sock")
        open(other, "w").close()
        p = subprocess.Popen([SSMD, "--model", MODEL, "--input", "none", "--log-level", "warn",
                              *[a for k, q in zip(("--pub", "--ingest", "--control"), paths) for a in (k, "ipc://" + q)]],
                             stderr=subprocess.PIPE, env=dict(os.environ, HOME=TMP))
        deadline = time.time() + 10
        while not all(os.path.exists(q) for q in paths) and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        bound = [os.path.basename(q) for q in paths if os.path.exists(q)]
        ctl = zmq.Context.instance().socket(zmq.REQ)
        ctl.setsockopt(zmq.LINGER, 0)
        ctl.setsockopt(zmq.RCVTIMEO, 5000)
        ctl.connect("ipc://" + paths[2])
        ctl.send(json.dumps({"version": 1, "cmd": "status"}).encode())
        ok = json.loads(ctl.recv())["ok"]
        ctl.close()
        p.send_signal(sig)
        err = p.communicate(timeout=10)[1].decode()
        left = sorted(os.listdir(d))
        print(f"{signal.Signals(sig).name}: bound {bound}, status ok {ok}, exit {p.returncode}; left in the "
              f"directory: {left}")
        check(len(bound) == 3 and ok and p.returncode == 0, f"daemon on ipc:// endpoints: {err}")
        check(left == ["unrelated.sock"], f"socket files left behind after {signal.Signals(sig).name}: {left}")

def t_snapshot_restore_reset():
    d = Daemon("--input", "none")
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.connect(d.ingest)
        x = test_signal(16000, 16000, 5)
        h = P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=len(x), cols=1)
        dealer.send_multipart([b"snap/audio/", P.encode_header(h), x.tobytes()])
        time.sleep(0.5)
        rep, extra = d.ctl({"version": 1, "cmd": "snapshot", "stream": "snap"})
        check(rep["ok"] and len(extra) == 1 and len(extra[0]) == rep["bytes"], rep)
        rep2, _ = d.ctl({"version": 1, "cmd": "restore", "stream": "snap"}, extra=extra[0])
        check(rep2["ok"], rep2)
        bad = bytearray(extra[0])
        bad[20] ^= 0xFF
        rep3, _ = d.ctl({"version": 1, "cmd": "restore", "stream": "snap"}, extra=bytes(bad))
        check(not rep3["ok"] and rep3["error"] in ("SNAPSHOT_MISMATCH", "BAD_SNAPSHOT"), rep3)
        rep5, _ = d.ctl({"version": 1, "cmd": "restore", "stream": "snap"}, extra=extra[0][:-3])
        print(f"a snapshot cut short: {rep5.get('error')}: {rep5.get('message')}")
        check(not rep5["ok"] and rep5["error"] == "BAD_SNAPSHOT"
              and f"of {rep['bytes'] - 3} bytes (this model's are {rep['bytes']} bytes)" in rep5["message"], rep5)
        rep4, _ = d.ctl({"version": 1, "cmd": "reset", "stream": "snap"})
        check(rep4["ok"], rep4)
        lst, _ = d.ctl({"version": 1, "cmd": "streams"})
        check([s["name"] for s in lst["streams"]] == ["snap"], lst)
        print(f"control: snapshot {rep['bytes']} bytes, restore ok, corrupted snapshot refused "
              f"({rep3['error']}), reset ok, streams lists 'snap'")
    finally:
        d.stop()


def t_sigterm_mid_file():
    n, rate = 16000 * 60, 16000
    src = os.path.join(TMP, "long.wav")
    write_wav(src, test_signal(n, rate, 6), rate)
    out = os.path.join(TMP, "long_out.wav")
    p = subprocess.Popen([SSMD, "--model", MODEL, src, "-o", out, "--realtime"], stderr=subprocess.PIPE)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    t0 = time.time()
    err = p.communicate(timeout=5)[1].decode()
    el = time.time() - t0
    check(p.returncode == 0, f"exit {p.returncode}: {err}")
    check(el < 2.0, f"shutdown took {el:.2f} s")
    rate_out, y = read_wav(out)
    check(rate_out == rate and 0 < len(y) < n, f"partial output of {len(y)} samples")
    print(f"SIGTERM after 1.5 s of a paced 60 s job: exit 0 in {el:.2f} s, output valid WAV with "
          f"{len(y)} samples ({len(y) / rate:.2f} s)")


def t_stalled_subscriber():
    """One subscriber reads nothing while the daemon publishes 15 s of 48 kHz audio paced at real
    time (--realtime; ~400 messages a second, ~4 MB): the other subscriber gets every message,
    the daemon's memory stays flat, the stalled one sees seq gaps.  (Paced: a job published as
    fast as it runs outpaces a Python reader, which would then lose messages at pub_hwm too.)"""
    n, rate = 48000 * 15, 48000
    src = os.path.join(TMP, "stall.wav")
    write_wav(src, test_signal(n, rate, 7), rate)
    d = Daemon(src, "--serve", "yes", "--wait-subscribers", "2", "--publish-mask", "--realtime")
    ctx = d.ctx
    stalled = ctx.socket(zmq.SUB)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(d.pub)
    good = ctx.socket(zmq.SUB)
    good.setsockopt(zmq.SUBSCRIBE, b"")
    good.setsockopt(zmq.RCVHWM, 0)
    good.setsockopt(zmq.RCVTIMEO, 10000)
    good.connect(d.pub)
    seqs, rss = {}, []
    t0 = time.time()
    ended = False
    n_bytes = 0
    while not ended:
        t, hb, payload = good.recv_multipart()
        n_bytes += len(payload)
        h = P.decode_header(hb, len(payload))
        _, kind = P.parse_topic(t)
        seqs.setdefault(kind, []).append(h.seq)
        if kind == 8 and json.loads(payload)["event"] == "end":
            ended = True
        if (time.time() - t0) * 10 > len(rss) and d.proc.poll() is None:
            with open(f"/proc/{d.proc.pid}/status") as f:
                rss += [int(l.split()[1]) for l in f if l.startswith("VmRSS")]
    job_s = time.time() - t0
    for kind in (1, 2, 4):
        s_ = seqs[kind]
        check(s_ == list(range(len(s_))), f"good subscriber missed messages of kind {kind}: " + str(next(((i, a) for i, a in enumerate(s_) if a != i), None)) + f" of {len(s_)}")
    print(f"stalled subscriber: job published {n_bytes / 1e6:.1f} MB in {job_s:.1f} s; the other subscriber "
          f"got every message ({len(seqs[2])} frames, contiguous seq); daemon RSS {min(rss)} -> {max(rss)} kB")
    check(max(rss) - min(rss) < 20000, f"daemon memory grew {min(rss)} -> {max(rss)} kB")
    stalled.setsockopt(zmq.RCVTIMEO, 1000)
    late = []
    try:
        while True:
            t, hb, payload = stalled.recv_multipart()
            if P.parse_topic(t)[1] == 2:
                late.append(P.decode_header(hb, len(payload)).seq)
    except zmq.Again:
        pass
    gaps = sum(1 for a, b in zip(late, late[1:]) if b != a + 1)
    span = f"seq {late[0]}..{late[-1]}" if late else "nothing"
    print(f"after the job the stalled subscriber read {len(late)} of {len(seqs[2])} feature messages "
          f"({span}, {gaps} gaps): the rest was dropped for it alone")
    check(len(late) < len(seqs[2]), "stalled subscriber lost nothing: the test did not stall it")
    d.stop()
    stalled.close()
    good.close()


def t_virtual_mic():
    """The virtual microphone (ALSA file PCM, tests/daemon/vmic) is captured,
    processed and published; the monitor plays the result."""
    vdir = tempfile.mkdtemp(prefix="vmic-", dir=TMP)
    rate = 16000
    t = np.arange(rate * 3) / rate
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype("<f4")
    x.tofile(os.path.join(vdir, "mono.f32"))
    stereo = np.stack([x, 0.25 * x], 1).astype("<f4")
    stereo.tofile(os.path.join(vdir, "stereo.f32"))
    rc_text = open(os.path.join(HERE, "vmic", "asoundrc.in")).read().replace("@DIR@", vdir)
    with open(os.path.join(vdir, "asoundrc"), "w") as f:
        f.write(rc_text)
    # the template is a whole ALSA configuration (it defines pcm.default), see vmic/README.md
    env = {"ALSA_CONFIG_PATH": os.path.join(vdir, "asoundrc")}
    # a virtual ALSA PCM reports 128 channels: --max-streams 2 bounds 'split' to the file's two
    for channels, device, names in (("mono", "ssmd_vmic", ["mic"]),
                                    ("split", "ssmd_stereo_mic", ["mic.0", "mic.1"])):
        d = Daemon("--input", "mic", "--device", device, "--channels", channels, "--max-streams", "2",
                   "--monitor", "ssmd_vout", env_extra=env)
        sub = d.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"mic")
        sub.setsockopt(zmq.RCVTIMEO, 5000)
        sub.connect(d.pub)
        metas, audio, flags, frames = {}, {n: [] for n in names}, 0, {n: 0 for n in names}
        t0 = time.time()
        while time.time() - t0 < 3 and min(len(a) for a in audio.values()) < 40:
            topic, hb, payload = sub.recv_multipart()
            h = P.decode_header(hb, len(payload))
            stream, kind = P.parse_topic(topic)
            if kind == 7:
                metas[stream] = json.loads(payload)
            elif kind == 1:
                audio[stream].append(np.frombuffer(payload, "<f4"))
                flags |= h.flags
                check(h.capture_ns > 0, "live audio without a capture time")
            elif kind == 2:
                frames[stream] += 1
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        rc, el, err = d.stop()
        check(rc == 0 and el < 2.0, f"exit {rc} after {el:.2f} s: {err}")
        for i, n in enumerate(names):
            y = np.concatenate(audio[n])[1024:5000]
            rms = float(np.sqrt(np.mean(y ** 2)))
            want = 0.5 / np.sqrt(2) * (1.0 if i == 0 else 0.25)
            check(metas.get(n, {}).get("source") == "mic", f"{n}: meta {metas.get(n)}")
            check(0.7 * want < rms < 1.3 * want, f"{n}: output RMS {rms:.3f}, expected about {want:.3f}")
        dev = st["device"]
        check(dev["name"] == device and dev["running"], dev)
        print(f"virtual mic ({channels}): streams {names}, {sum(frames.values())} frames, output RMS "
              f"matches the captured sine, device '{dev['name']}' at {dev['sample_rate_hz']} Hz, "
              f"{dev['capture_dropped']} frames dropped by the unpaced device "
              f"(overflow flag {'seen' if flags & P.FLAG_OVERFLOW else 'not seen'}), "
              f"monitor dropped {st['counters']['monitor_dropped']}")
    r = subprocess.run([SSMD, "--model", MODEL, "--input", "mic", "--device", "no-such-device"],
                       capture_output=True, text=True, env=dict(os.environ, **env), timeout=20)
    check(r.returncode != 0 and "no-such-device" in r.stderr, r.stderr)
    print("unknown capture device: " + r.stderr.strip().splitlines()[-1])


def t_stereo_only_mic_mono():
    """A microphone that opens with exactly 2 channels (vmic ssmd_2ch_mic, a
    stereo-only device) in --channels mono is captured with both channels and
    downmixed: the one 'mic' stream equals (left + right) / 2 computed here
    (the all-pass model returns its input within 1e-5 of the peak), not the
    left channel alone.  The unpaced device delivers the file in milliseconds,
    before a subscriber could join, so the processed audio is read from the
    monitor's file (vmic ssmd_vout): a monitor ring longer than the file keeps
    every output sample of it, in order, between runs of zeros (underruns)."""
    vdir = tempfile.mkdtemp(prefix="vmic2-", dir=TMP)
    rate, n = 16000, 16000
    t = np.arange(n) / rate
    left = (0.4 * np.sin(2 * np.pi * 440 * t)).astype("<f4")
    right = (0.3 * np.sin(2 * np.pi * 1250 * t + 0.7)).astype("<f4")
    np.stack([left, right], 1).astype("<f4").tofile(os.path.join(vdir, "two_ch.f32"))
    want = ((left + right) / np.float32(2)).astype(np.float32)
    rc_text = open(os.path.join(HERE, "vmic", "asoundrc.in")).read().replace("@DIR@", vdir)
    with open(os.path.join(vdir, "asoundrc"), "w") as f:
        f.write(rc_text)
    env = {"ALSA_CONFIG_PATH": os.path.join(vdir, "asoundrc")}
    # rings longer than the file: the capture receives all of it, the monitor queues all of it
    d = Daemon("--input", "mic", "--device", "ssmd_2ch_mic", "--channels", "mono", "--ring-ms", "3000",
               "--monitor", "ssmd_vout", "--log-level", "info",
               model=os.path.join(MODELS, "allpass.safetensors"), env_extra=env)
    sub = d.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.connect(d.pub)
    streams = set()
    t0 = time.time()
    while time.time() - t0 < 1.0:
        topic, hb, payload = sub.recv_multipart()
        streams.add(P.parse_topic(topic)[0])
    st, _ = d.ctl({"version": 1, "cmd": "status"})
    rc, el, err = d.stop()
    sub.close()
    check(rc == 0, f"exit {rc}: {err}")
    check(streams == {"mic"}, f"streams {sorted(streams)}, expected only 'mic'")
    played = np.fromfile(os.path.join(vdir, "played.f32"), "<f4")
    y = played[played != 0]  # underruns wrote exact zeros; the signal has none
    m = n - 2048  # away from the file's end (after it the device repeats stale data)
    check(len(y) >= m + 4096, f"the monitor played only {len(y)} non-zero samples")
    # the live stream is not aligned: its output lags by the pipeline's latency
    errs = [float(np.max(np.abs(y[lag:lag + m] - want[:m]))) for lag in range(4096)]
    lag = int(np.argmin(errs))
    e_mean = errs[lag]
    e_left = min(float(np.max(np.abs(y[k:k + m] - left[:m]))) for k in range(4096))
    print(f"stereo-only mic, --channels mono: {m} samples at lag {lag}: max |out - (L+R)/2| = "
          f"{e_mean:.2e} (tolerance 1e-4); the left channel alone is {e_left:.3g} away; device "
          f"channels opened: {st['device']['channels']}")
    check(e_mean <= 1e-4, f"the output is not the mean of the channels: max error {e_mean:.3g} "
                          f"(the left channel alone: {e_left:.3g})")
    check(st["device"]["channels"] == 2, f"opened {st['device']['channels']} channels, expected 2")
    log = [ln for ln in err.splitlines() if "capturing 'ssmd_2ch_mic'" in ln]
    check(log and "has 2 input channels, opened 2 (1 asked), downmixed" in log[0], f"log: {err}")
    print("  log: " + log[0].split("ssmd: ")[-1].strip())


def t_curve_and_reload():
    """Non-loopback binds need CURVE; with CURVE only allowlisted client keys get
    in; SIGHUP re-reads the allowlist (a reloadable option)."""
    port = free_port()
    r = subprocess.run([SSMD, "--model", MODEL, "--input", "none", "--pub", f"tcp://0.0.0.0:{port}"],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and "not a loopback address" in r.stderr, r.stderr)
    keys = {}
    for who in ("server", "alice", "mallory"):
        pre = os.path.join(TMP, who)
        for ext in (".key", ".pub"):
            if os.path.exists(pre + ext):
                os.remove(pre + ext)
        subprocess.run([SSMD, "--curve-keygen", pre], check=True, capture_output=True)
        keys[who] = (open(pre + ".pub").read().strip(), open(pre + ".key").read().strip())
    allow = os.path.join(TMP, "allow.txt")
    with open(allow, "w") as f:
        f.write("# clients\n" + keys["alice"][0] + "\n")
    conf = os.path.join(TMP, "curve.conf")
    with open(conf, "w") as f:
        f.write(f"curve_secret_file = {os.path.join(TMP, 'server.key')}\ncurve_allow_file = {allow}\n"
                f"publish_mask = false\n")
    d = Daemon("--input", "none", "-c", conf)

    def ask(who):
        s_ = d.ctx.socket(zmq.REQ)
        s_.setsockopt(zmq.LINGER, 0)
        s_.setsockopt(zmq.RCVTIMEO, 1500)
        if who:
            s_.curve_serverkey = keys["server"][0].encode()
            s_.curve_publickey = keys[who][0].encode()
            s_.curve_secretkey = keys[who][1].encode()
        s_.connect(d.control)
        s_.send(json.dumps({"version": 1, "cmd": "status"}).encode())
        try:
            return json.loads(s_.recv())
        except zmq.Again:
            return None
        finally:
            s_.close()

    try:
        a = ask("alice")
        check(a and a["ok"] and a["curve"]["allowed_keys"] == 1, f"alice: {a}")
        check(ask("mallory") is None, "a key outside the allowlist got an answer")
        check(ask(None) is None, "a plain (no CURVE) client got an answer")
        with open(allow, "a") as f:
            f.write(keys["mallory"][0] + "\n")
        with open(conf, "a") as f:
            f.write("publish_mask = true\nmax_streams = 3\n")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        m = ask("mallory")
        check(m and m["ok"] and m["curve"]["allowed_keys"] == 2, f"after SIGHUP: {m}")
        print(f"CURVE: 0.0.0.0 without keys refused; allowlisted key admitted, other key and plain "
              f"client refused (refused={m['curve']['refused']}); SIGHUP re-read the allowlist")
    finally:
        rc, el, err = d.stop()
    check("reload: curve allowlist has 2 keys" in err and "reload: publish_mask changed" in err
          and "max_streams changed but needs a restart" in err, err)


def t_robustness():
    """Found by the adversarial review: the input file as output, abandoned
    push streams, a subscription storm."""
    src = os.path.join(TMP, "same.wav")
    write_wav(src, test_signal(16000, 16000), 16000)
    before = open(src, "rb").read()
    r = subprocess.run([SSMD, "--model", MODEL, src, "-o", src], capture_output=True, text=True)
    check(r.returncode != 0 and "is the input file" in r.stderr, r.stderr)
    check(open(src, "rb").read() == before, "the input file was modified")
    link = os.path.join(TMP, "link.wav")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(src, link)
    r = subprocess.run([SSMD, "--model", MODEL, src, "-o", link], capture_output=True, text=True)
    check(r.returncode != 0 and open(src, "rb").read() == before and os.path.islink(link), r.stderr)

    d = Daemon("--input", "none", "--max-streams", "2", "--push-idle-s", "1")
    try:
        dealer = d.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 2000)  # the messages leave before the socket closes
        dealer.connect(d.ingest)
        h = P.encode_header(P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=160, cols=1))
        for name in (b"a0", b"a1"):
            dealer.send_multipart([name + b"/audio/", h, b"\0" * 640])
        dealer.close()  # abandoned without end-of-stream
        time.sleep(0.3)
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        check(st["streams"] == 2, st)
        time.sleep(1.5)
        st, _ = d.ctl({"version": 1, "cmd": "status"})
        check(st["streams"] == 0, f"abandoned streams still held: {st['streams']}")
        y = push_stream(d.ingest, "a0", test_signal(3200, 16000), 16000)
        check(len(y) == 3200, "slot not usable after the idle timeout")
        # subscription storm: the daemon keeps answering and stops in time
        for k in range(2):
            dealer = d.ctx.socket(zmq.DEALER)
            dealer.connect(d.ingest)
            dealer.send_multipart([f"live{k}/audio/".encode(), h, b"\0" * 640])
        time.sleep(0.2)
        subs = []
        for i in range(200):
            sub = d.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.connect(d.pub)
            for j in range(20):
                sub.setsockopt(zmq.SUBSCRIBE, b"")
                sub.setsockopt(zmq.SUBSCRIBE, b"live")
                sub.setsockopt(zmq.UNSUBSCRIBE, b"")
            subs.append(sub)
        t0 = time.time()
        st, _ = d.ctl({"version": 1, "cmd": "status"}, timeout=10000)
        answer_s = time.time() - t0
        check(st["ok"], st)
    finally:
        rc, el, err = d.stop()
    for sub in subs:
        sub.close()
    check(rc == 0 and el < 2.0, f"exit {rc} after {el:.2f} s")
    print(f"robustness: input-as-output refused (also via a symlink), abandoned pushes freed after "
          f"push_idle_s, status answered {answer_s:.2f} s into a 12000-subscription storm, exit in {el:.2f} s")


def t_wait_subscribers_first_messages():
    """--wait-subscribers N: subscribers that connect before the job starts
    (a raw SUB on the stream's prefix and the Python Subscriber on
    everything) each receive the stream's first meta/ (seq 0) and its start
    event (seq 0) before any data; repeated to give a race a chance."""
    from ssmd import Subscriber
    n, rate = 8000, 16000
    src = os.path.join(TMP, "waited.wav")
    write_wav(src, test_signal(n, rate, 4), rate)
    runs = 5
    for run in range(runs):
        d = Daemon(src, "--serve", "yes", "--wait-subscribers", "2")
        raw = d.ctx.socket(zmq.SUB)
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.RCVTIMEO, 5000)
        raw.setsockopt(zmq.SUBSCRIBE, b"waited.wav/")
        raw.connect(d.pub)
        pysub = Subscriber(d.pub, timeout=5.0)
        seen = {"raw": [], "python": []}
        try:
            while not (seen["raw"] and seen["raw"][-1][1] == "end"):
                t, hb, payload = raw.recv_multipart()
                h = P.decode_header(hb, len(payload))
                stream, kind = P.parse_topic(t)
                ev = json.loads(payload)["event"] if kind == 8 else None
                seen["raw"].append((kind, ev, h.seq))
            for topic, h, value in pysub:
                stream, kind = P.parse_topic(topic)
                if stream != "waited.wav":
                    continue
                ev = value["event"] if kind == 8 else None
                seen["python"].append((kind, ev, h.seq))
                if ev == "end":
                    break
        except zmq.Again:
            raise AssertionError(f"run {run}: raw subscriber timed out after {seen['raw'][:3]}")
        finally:
            raw.close()
            pysub.close()
            rc, _, err = d.stop()
        for who, msgs in seen.items():
            first = msgs[:2]
            print(f"run {run}: {who}: first messages (kind, event, seq) {first}, {len(msgs)} in all")
            check(msgs and msgs[0][0] == 7 and msgs[0][2] == 0,
                  f"run {run}: {who}: the first message is not the stream's first meta/ (seq 0): {first}")
            check(len(msgs) > 1 and msgs[1] == (8, "start", 0),
                  f"run {run}: {who}: the start event (seq 0) does not follow the meta: {first}")
            check(msgs[-1][1] == "end", f"run {run}: {who}: no end event")


def main():
    tests = [t_file_job_bit_exact, t_atten_lim, t_vad_gate, t_python_push_large, t_huge_subscription, t_subscriber_gets_every_frame,
             t_lookahead_vad_frames,
             t_wait_subscribers_first_messages, t_push_and_five_clients, t_status_during_push_burst,
             t_malformed_messages, t_channels_changed, t_oversize_message, t_ipc_sockets_removed, t_snapshot_restore_reset, t_sigterm_mid_file, t_virtual_mic, t_stereo_only_mic_mono,
             t_curve_and_reload, t_robustness]
    if SLOW:  # the 12 s stalled-subscriber run is registered as its own test
        tests = [t_stalled_subscriber]
    only = [a for a in sys.argv[4:] if a.startswith("t_")]  # run only these (by name)
    if ONLY:
        tests = [globals()[ONLY]]
    elif only:
        tests = [t for t in tests + [t_stalled_subscriber] if t.__name__ in only]
    named_tests.run(tests)


if __name__ == "__main__":
    main()
