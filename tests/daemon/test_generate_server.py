# SPDX-License-Identifier: MIT
"""Generation served by the daemon (ssmd --generate-s S --generate-publish,
docs/protocol.md "generated streams"), on loopback with random free ports and
a temporary HOME.  Each check prints what it measured.

Usage: test_generate_server.py SSMD_EXE SSM_CTL_EXE LM_MODEL OTHER_MODEL

1. 3 s x 2 streams published on the daemon's data socket: a subscriber gets
   gen0/meta/ and gen1/meta/, 48000 samples per stream with contiguous seq,
   paced (the audio spans >= 2.5 s of wall time: a generous bound), equal to
   the -o file of the same run, which is byte-identical to a file-only run
   with the same seed.  ssm-ctl status/streams list the streams while they
   run; a pushed stream is refused with NOT_SUPPORTED.
2. ssm-ctl stop (and SIGTERM) during a 30 s run: exit 0, a valid file holding
   exactly what was published, a prefix of the same seed's offline run.
3. Bad input: a non-token model, a non-loopback pub without CURVE, --serve no:
   exit 2 with one line naming the problem.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from ssmd import protocol as P  # noqa: E402

SSMD, SSM_CTL, LM, OTHER = sys.argv[1:5]
TMP = tempfile.mkdtemp(prefix="ssmd-gen-")
ENV = dict(os.environ, HOME=TMP)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def read_wav(path):
    from scipy.io import wavfile
    return wavfile.read(path)


def ctl(endpoint, *args):
    r = subprocess.run([SSM_CTL, "-e", endpoint, *args], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, f"ssm-ctl {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


class GenDaemon:
    """ssmd --generate-publish on random loopback ports."""

    def __init__(self, seconds, streams, out, *extra):
        ports = [free_port() for _ in range(3)]
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{p}" for p in ports)
        self.proc = subprocess.Popen(
            [SSMD, "--model", LM, "--generate-s", str(seconds), "--generate-streams", str(streams),
             "--seed", "5", "--generate-publish", "--pub", self.pub, "--ingest", self.ingest,
             "--control", self.control, "--wait-subscribers", "1", "-o", out, "--log-level", "warn", *extra],
            stderr=subprocess.PIPE, env=ENV)
        self.ctx = zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"gen")
        self.sub.connect(self.pub)
        self.meta, self.audio, self.seqs, self.t_audio, self.ended = {}, {}, {}, {}, set()

    def receive(self, until_end=True, seconds=None, timeout=30):
        """Collects messages until every stream sent end-of-stream (or for
        `seconds`); returns False on a timeout."""
        t_stop = time.time() + (seconds if seconds is not None else timeout)
        while time.time() < t_stop:
            if not self.sub.poll(200):
                continue
            t, hb, payload = self.sub.recv_multipart()
            h = P.decode_header(hb, len(payload))
            name, kind = P.parse_topic(t)
            if kind == 7:
                self.meta[name] = json.loads(payload)
            elif kind == 1:
                self.audio.setdefault(name, []).append(np.frombuffer(payload, "<f4"))
                self.seqs.setdefault(name, []).append(h.seq)
                self.t_audio.setdefault(name, []).append(time.monotonic())
                if h.flags & P.FLAG_END_OF_STREAM:
                    self.ended.add(name)
            if until_end and self.meta and self.ended >= set(self.meta):
                return True
        return seconds is not None

    def samples(self, name):
        return np.concatenate(self.audio.get(name, [np.zeros(0, np.float32)]))

    def finish(self, timeout=10):
        try:
            err = self.proc.communicate(timeout=timeout)[1].decode()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"daemon did not exit within {timeout} s")
        self.sub.close()
        return self.proc.returncode, err


def file_equals_published(path, d, n_streams):
    """The -o file (16-bit PCM) holds what was published: every sample within
    one LSB of the published float (adjacent mu-law levels are >= 5.6 LSB
    apart, so this is the same code; libsndfile's own rounding decides the
    last bit).  Returns the file's samples."""
    rate, y = read_wav(path)
    y = y.reshape(len(y), -1)
    check(rate == 16000 and y.shape[1] == n_streams, f"file {path}: {rate} Hz, shape {y.shape}")
    for i in range(n_streams):
        x = d.samples(f"gen{i}")
        check(len(x) == len(y), f"gen{i}: {len(x)} samples published, file has {len(y)}")
        dev = np.abs(x.astype(np.float64) * 32768 - y[:, i]).max() if len(x) else 0.0
        check(dev < 1.0, f"gen{i}: a published sample is {dev:.2f} LSB from the file's")
    return y


def offline(seconds, streams, path):
    r = subprocess.run([SSMD, "--model", LM, "--generate-s", str(seconds), "--generate-streams", str(streams),
                        "--seed", "5", "-o", path], capture_output=True, text=True, env=ENV, timeout=300)
    check(r.returncode == 0, f"offline run: exit {r.returncode}: {r.stderr}")


def t_publish_paced_equals_file():
    out = os.path.join(TMP, "pub.wav")
    d = GenDaemon(3, 2, out)
    d.receive(until_end=False, seconds=1.0)  # the first blocks are on their way
    status = ctl(d.control, "status")
    streams = ctl(d.control, "streams")["streams"]
    names = sorted(s["name"] for s in streams)
    check(status["streams"] == 2 and names == ["gen0", "gen1"], f"status {status['streams']}, streams {names}")
    # compute describes the generator's runner (it was "none" / 1 thread before)
    comp = status["compute"]
    check(comp["kernels"] in ("avx512", "avx2", "scalar", "cuda") and comp["weights"] == "f32"
          and comp["threads"] >= 1, f"status compute {comp}")
    check(all(s["source"] == "generate" and s["sample_rate_hz"] == 16000 for s in streams), f"{streams}")
    # a push is refused with one error reply; nothing else changes
    dealer = d.ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(d.ingest)
    h = P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=160, cols=1)
    dealer.send_multipart([b"mine/audio/", P.encode_header(h), np.zeros(160, "<f4").tobytes()])
    check(dealer.poll(5000), "no reply to a push")
    t, hb, payload = dealer.recv_multipart()
    reply = json.loads(payload)
    dealer.close()
    check(t == b"_ssmd/event/" and reply["error"] == "NOT_SUPPORTED", f"push reply {t} {reply}")
    check(d.receive(), "subscriber timed out before end-of-stream on gen0 and gen1")
    rc, err = d.finish()
    check(rc == 0, f"exit {rc}: {err}")
    check(sorted(d.meta) == ["gen0", "gen1"], f"meta for {sorted(d.meta)}")
    for i in range(2):
        m = d.meta[f"gen{i}"]
        check(m["source"] == "generate" and m["sample_rate_hz"] == 16000 and m["seed"] == 5 + i
              and m["features"]["kind"] == "mulaw", f"gen{i} meta {m}")
        seqs = d.seqs[f"gen{i}"]
        check(seqs == list(range(len(seqs))), f"gen{i}: seq not contiguous: {seqs[:5]}..{seqs[-5:]}")
        n = len(d.samples(f"gen{i}"))
        span = d.t_audio[f"gen{i}"][-1] - d.t_audio[f"gen{i}"][0]
        print(f"gen{i}: meta ok, audio seq 0..{seqs[-1]} contiguous, {n} samples, "
              f"first to last message {span:.2f} s of wall time")
        check(n == 48000, f"gen{i}: {n} of 48000 samples")
        check(span >= 2.5, f"gen{i}: 3 s of audio arrived within {span:.2f} s: not paced")
    file_equals_published(out, d, 2)
    ref = os.path.join(TMP, "offline.wav")
    offline(3, 2, ref)
    same = open(out, "rb").read() == open(ref, "rb").read()
    print(f"published = -o file (2 x 48000 samples); -o file {'byte-identical' if same else 'DIFFERS'} "
          f"to the file-only run with the same seed; status/streams listed gen0, gen1; push refused: "
          f"{reply['message']}")
    check(same, "the served run's file differs from the file-only run with the same seed")
    print("  " + err.strip().splitlines()[-1])


def t_stop_and_sigterm():
    ref = os.path.join(TMP, "offline.wav")
    if not os.path.exists(ref):
        offline(3, 2, ref)
    _, yref = read_wav(ref)
    for how in ("ssm-ctl stop", "SIGTERM"):
        out = os.path.join(TMP, f"stop_{how[-4:]}.wav")
        d = GenDaemon(30, 2, out)
        d.receive(until_end=False, seconds=1.5)
        t0 = time.time()
        if how == "SIGTERM":
            d.proc.send_signal(signal.SIGTERM)
        else:
            ctl(d.control, "stop")
        check(d.receive(timeout=5), f"{how}: no end-of-stream on every stream")
        rc, err = d.finish()
        el = time.time() - t0
        check(rc == 0 and el < 3.0, f"{how}: exit {rc} after {el:.2f} s: {err}")
        y = file_equals_published(out, d, 2)
        check(0 < len(y) < len(yref), f"{how}: {len(y)} samples in the file")
        check(np.array_equal(y, yref[:len(y)]), f"{how}: the file is not a prefix of the offline run")
        print(f"{how} after 1.5 s of a 30 s run: exit 0 in {el:.2f} s, {len(y)} samples per stream published, "
              f"the same in the valid -o file, a prefix of the offline run")


def t_bad_input():
    port = free_port()
    cases = (
        ("non-token model", ["--model", OTHER], "token model"),
        ("non-loopback pub", ["--model", LM, "--pub", f"tcp://0.0.0.0:{port}"], "not a loopback address"),
        ("--serve no", ["--model", LM, "--serve", "no"], "--serve no"),
    )
    for what, args, needle in cases:
        r = subprocess.run([SSMD, *args, "--generate-s", "1", "--generate-publish",
                            "-o", os.path.join(TMP, "bad.wav")], capture_output=True, text=True, env=ENV,
                           timeout=30)
        line = r.stderr.strip()
        check(r.returncode == 2 and needle in line and line.count("\n") == 0,
              f"{what}: exit {r.returncode}: {r.stderr!r}")
        check(not os.path.exists(os.path.join(TMP, "bad.wav")), f"{what}: left an output file behind")
        print(f"{what}: exit 2: {line}")
    # a failed start leaves an existing output file alone (the file is opened last)
    keep = os.path.join(TMP, "keep.wav")
    for what, extra in (("non-loopback pub", ["--pub", f"tcp://0.0.0.0:{port}"]),
                        ("bind conflict", ["--pub", f"tcp://127.0.0.1:{port}",
                                           "--ingest", f"tcp://127.0.0.1:{port}"])):
        with open(keep, "wb") as f:
            f.write(b"precious bytes")
        r = subprocess.run([SSMD, "--model", LM, *extra, "--generate-s", "1", "--generate-publish",
                            "-o", keep], capture_output=True, text=True, env=ENV, timeout=30)
        with open(keep, "rb") as f:
            kept = f.read()
        check(r.returncode == 2 and kept == b"precious bytes",
              f"{what} with an existing -o: exit {r.returncode}, file now {len(kept)} bytes: {r.stderr!r}")
        print(f"{what} with an existing -o file: exit 2, the file is untouched")
    # the prompt file itself as output is refused (file-only and published runs)
    prompt = os.path.join(TMP, "prompt_same.wav")
    from scipy.io import wavfile
    wavfile.write(prompt, 16000, (np.sin(np.arange(1600) * 0.05) * 8000).astype(np.int16))
    before = open(prompt, "rb").read()
    for pub in ([], ["--generate-publish", "--pub", f"tcp://127.0.0.1:{free_port()}",
                     "--ingest", f"tcp://127.0.0.1:{free_port()}",
                     "--control", f"tcp://127.0.0.1:{free_port()}"]):
        r = subprocess.run([SSMD, "--model", LM, "--generate-s", "1", "--prompt", prompt, *pub,
                            "-o", prompt], capture_output=True, text=True, env=ENV, timeout=60)
        line = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        check(r.returncode == 2 and "is the prompt file" in line and open(prompt, "rb").read() == before,
              f"prompt as output ({'published' if pub else 'file only'}): exit {r.returncode}: {r.stderr!r}")
        print(f"prompt as output ({'published' if pub else 'file only'}): exit 2: {line}")


def main():
    tests = [t_publish_paced_equals_file, t_stop_and_sigterm, t_bad_input]
    failed = 0
    for t in tests:
        try:
            t()
            print(f"ok   {t.__name__}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, then exit non-zero
            failed += 1
            print(f"FAIL {t.__name__}: {e}", flush=True)
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
